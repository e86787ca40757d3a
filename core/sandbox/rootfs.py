"""Build the container's filesystem view inside its new mount namespace.

Order (as runc does it): make propagation private/slave, bind the rootfs onto itself, mount
each spec mount (destinations resolved *inside* the rootfs, symlinks included, so a hostile
image cannot aim a mount at the host), create /dev nodes and links, then pivot_root. Masked
paths, read-only paths and a read-only root come after the pivot.
"""

from __future__ import annotations

import errno
import os
import stat

from mrun.errors import MrunError
from mrun.kernel import inroot
from mrun.kernel import syscalls as sc

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_FLAGS: dict[str, tuple[bool, int]] = {  # option -> (clear?, flag)
    "ro": (False, sc.MS_RDONLY),
    "rw": (True, sc.MS_RDONLY),
    "nosuid": (False, sc.MS_NOSUID),
    "suid": (True, sc.MS_NOSUID),
    "nodev": (False, sc.MS_NODEV),
    "dev": (True, sc.MS_NODEV),
    "noexec": (False, sc.MS_NOEXEC),
    "exec": (True, sc.MS_NOEXEC),
    "sync": (False, sc.MS_SYNCHRONOUS),
    "async": (True, sc.MS_SYNCHRONOUS),
    "dirsync": (False, sc.MS_DIRSYNC),
    "remount": (False, sc.MS_REMOUNT),
    "mand": (False, sc.MS_MANDLOCK),
    "nomand": (True, sc.MS_MANDLOCK),
    "noatime": (False, sc.MS_NOATIME),
    "atime": (True, sc.MS_NOATIME),
    "nodiratime": (False, sc.MS_NODIRATIME),
    "diratime": (True, sc.MS_NODIRATIME),
    "relatime": (False, sc.MS_RELATIME),
    "norelatime": (True, sc.MS_RELATIME),
    "strictatime": (False, sc.MS_STRICTATIME),
    "nostrictatime": (True, sc.MS_STRICTATIME),
    "nosymfollow": (False, sc.MS_NOSYMFOLLOW),
    "symfollow": (True, sc.MS_NOSYMFOLLOW),
    # runc's too: as filesystem data the kernel refused them ("defaults": EINVAL on a tmpfs)
    "defaults": (False, 0),
    "acl": (False, sc.MS_POSIXACL),
    "noacl": (True, sc.MS_POSIXACL),
    "iversion": (False, sc.MS_I_VERSION),
    "noiversion": (True, sc.MS_I_VERSION),
    "lazytime": (False, sc.MS_LAZYTIME),
    "nolazytime": (True, sc.MS_LAZYTIME),
    "silent": (False, sc.MS_SILENT),
    "loud": (True, sc.MS_SILENT),
    "bind": (False, sc.MS_BIND),
    "rbind": (False, sc.MS_BIND | sc.MS_REC),
}
PROPAGATION = {
    "private": sc.MS_PRIVATE,
    "rprivate": sc.MS_PRIVATE | sc.MS_REC,
    "shared": sc.MS_SHARED,
    "rshared": sc.MS_SHARED | sc.MS_REC,
    "slave": sc.MS_SLAVE,
    "rslave": sc.MS_SLAVE | sc.MS_REC,
    "unbindable": sc.MS_UNBINDABLE,
    "runbindable": sc.MS_UNBINDABLE | sc.MS_REC,
}
_IGNORED = {"tmpcopyup", "idmap", "ridmap"}
# runc's recursive options: mount_setattr over the mount and every mount below it (Linux 5.12),
# each (clear, attribute) as _FLAGS. Passed on as filesystem data they were nothing: a bind
# mount ignores its data, so an `rnoexec` bind ran what it held.
RECURSIVE_ATTRS = {
    "rro": (False, sc.MOUNT_ATTR_RDONLY), "rrw": (True, sc.MOUNT_ATTR_RDONLY),
    "rnosuid": (False, sc.MOUNT_ATTR_NOSUID), "rsuid": (True, sc.MOUNT_ATTR_NOSUID),
    "rnodev": (False, sc.MOUNT_ATTR_NODEV), "rdev": (True, sc.MOUNT_ATTR_NODEV),
    "rnoexec": (False, sc.MOUNT_ATTR_NOEXEC), "rexec": (True, sc.MOUNT_ATTR_NOEXEC),
    "rnodiratime": (False, sc.MOUNT_ATTR_NODIRATIME), "rdiratime": (True, sc.MOUNT_ATTR_NODIRATIME),
    "rrelatime": (False, sc.MOUNT_ATTR_RELATIME), "rnorelatime": (True, sc.MOUNT_ATTR_RELATIME),
    "rnoatime": (False, sc.MOUNT_ATTR_NOATIME), "ratime": (True, sc.MOUNT_ATTR_NOATIME),
    "rstrictatime": (False, sc.MOUNT_ATTR_STRICTATIME), "rnostrictatime": (True, sc.MOUNT_ATTR_STRICTATIME),
    "rnosymfollow": (False, sc.MOUNT_ATTR_NOSYMFOLLOW), "rsymfollow": (True, sc.MOUNT_ATTR_NOSYMFOLLOW),
}


def recursive_attrs(options: list[str]) -> tuple[int, int]:
    """A mount's recursive options as one mount_setattr's (set, clear), in order, as runc reads
    them; an access-time mode set clears the others (mount_setattr(2) asks for MOUNT_ATTR__ATIME)."""
    attr_set, attr_clr = 0, 0
    for opt in options:
        if opt not in RECURSIVE_ATTRS:
            continue
        clear, attr = RECURSIVE_ATTRS[opt]
        if clear:
            attr_clr, attr_set = attr_clr | attr, attr_set & ~attr
        else:
            attr_set, attr_clr = attr_set | attr, attr_clr & ~attr
            if attr & sc.MOUNT_ATTR__ATIME == attr:  # relatime (0), noatime, strictatime
                attr_clr |= sc.MOUNT_ATTR__ATIME
    return attr_set, attr_clr


# statvfs flags that a bind remount must keep (they are locked in a user namespace).
_LOCKED = (
    (os.ST_NOSUID, sc.MS_NOSUID),
    (os.ST_NODEV, sc.MS_NODEV),
    (os.ST_NOEXEC, sc.MS_NOEXEC),
    (os.ST_NOATIME, sc.MS_NOATIME),
    (os.ST_NODIRATIME, sc.MS_NODIRATIME),
    (os.ST_RELATIME, sc.MS_RELATIME),
)


def parse_options(options: list[str]) -> tuple[int, int, str]:
    """-> (flags, propagation flags, data string for the filesystem)."""
    flags, prop, data = 0, 0, []
    for opt in options:
        if opt in _FLAGS:
            clear, bit = _FLAGS[opt]
            flags = flags & ~bit if clear else flags | bit
        elif opt in PROPAGATION:
            prop |= PROPAGATION[opt]
        elif opt not in _IGNORED and opt not in RECURSIVE_ATTRS:
            data.append(opt)
    return flags, prop, ",".join(data)


def locked_flags(path: str) -> int:
    f = os.statvfs(path).f_flag
    return sum(ms for st_flag, ms in _LOCKED if f & st_flag)


def remount_readonly(path: str, recursive: bool = False) -> None:
    extra = sc.MS_REC if recursive else 0
    sc.mount(None, path, None, sc.MS_BIND | sc.MS_REMOUNT | sc.MS_RDONLY | extra | locked_flags(path))


# What runc lets a mount cover inside /proc (checkProcMount): the files lxcfs emulates.
PROC_MOUNTS_ALLOWED = frozenset((
    "/proc/cpuinfo", "/proc/diskstats", "/proc/meminfo", "/proc/stat", "/proc/swaps", "/proc/uptime",
    "/proc/loadavg", "/proc/slabinfo", "/proc/net/dev", "/proc/sys/kernel/ns_last_pid",
))


def _refuse_on_proc(target: str, dest: str, source: str | int, is_bind: bool, index: int) -> None:
    """runc's rule (checkProcMount): nothing is mounted over what procfs shows (/proc/sys, a
    process's attr/ that AppArmor is set through...) but lxcfs's files, and over /proc itself
    only a procfs. Judged on the destination's handle, after its resolution inside the rootfs,
    so no link leads around it."""
    if sc.fs_type(target) != sc.PROC_SUPER_MAGIC or inroot.clean(dest) in PROC_MOUNTS_ALLOWED:
        return
    source_type = sc.fd_fs_type(source) if isinstance(source, int) else sc.fs_type(source)
    if is_bind and inroot.clean(dest) == "/proc" and source_type == sc.PROC_SUPER_MAGIC:
        return
    raise MrunError(f"mounts[{index}].destination: {dest} is inside /proc, where only lxcfs's files may be "
                    "mounted over (as runc refuses)")


def _refuse_unless_a_directory(root_fd: int, dest: str, kind: str, index: int) -> None:
    """runc's rule: proc and sysfs go on an ordinary directory or nowhere. An image's ``/proc``
    that is a link (to /tmp, say) moved the container's procfs to where it led, away from /proc
    and from what later mounts over that place leave visible."""
    parent, name = inroot.parent_and_name(root_fd, dest)
    try:
        st = os.stat(name, dir_fd=parent, follow_symlinks=False)
    except FileNotFoundError:
        return
    finally:
        os.close(parent)
    if not stat.S_ISDIR(st.st_mode):
        what = "a symbolic link" if stat.S_ISLNK(st.st_mode) else "not a directory"
        raise MrunError(f"mounts[{index}] ({kind} on {dest}): {dest} in the rootfs is {what}; {kind} is mounted "
                        "on an ordinary directory only (as runc requires)")


def mount_one(
    root_fd: int,
    m: dict[str, Any],
    index: int,
    cgroup_paths: dict[str, str] | None,
    new_cgroupns: bool,
    in_userns: bool = False,
    detached: int | None = None,
) -> None:
    """One spec mount; the destination is resolved inside the rootfs and mounted on through a
    handle, then reopened for each later step (a remount must see the new mount, not the old).
    ``detached``: the host's clone of a bind source (``sandbox.host_mounts``: idmapped, or one a
    user namespace's root may not reach), moved into place instead of binding the source."""
    kind = m.get("type") or ""
    options = m.get("options") or []
    flags, prop, data = parse_options(options)
    source = m.get("source") or kind
    dest = m["destination"]
    is_bind = kind == "bind" or flags & sc.MS_BIND
    try:
        if is_bind:
            if detached is not None:
                is_dir = stat.S_ISDIR(os.fstat(detached).st_mode)
            elif not os.path.isabs(source):
                raise MrunError(f"mounts[{index}].source: bind source {source!r} must be an absolute path")
            elif not os.path.exists(source):
                raise MrunError(f"mounts[{index}].source: {source} does not exist")
            else:
                is_dir = os.path.isdir(source)
            place = inroot.at(root_fd, dest, create="dir" if is_dir else "file")
            with place as target:
                _refuse_on_proc(target, dest, source if detached is None else detached, True, index)
                if detached is None:
                    sc.mount(source, target, None, sc.MS_BIND | (flags & sc.MS_REC))
                else:
                    sc.move_mount(detached, place.fd)
            rest = flags & ~(sc.MS_BIND | sc.MS_REC | sc.MS_REMOUNT)
            if rest:
                with inroot.at(root_fd, dest) as target:
                    sc.mount(None, target, None, sc.MS_BIND | sc.MS_REMOUNT | rest | locked_flags(target))
        elif kind == "cgroup":
            mount_cgroup(root_fd, dest, flags, cgroup_paths or {}, new_cgroupns, in_userns)
        else:
            if kind in ("proc", "sysfs"):
                _refuse_unless_a_directory(root_fd, dest, kind, index)
            with inroot.at(root_fd, dest, create="dir") as target:
                if kind == "sysfs":
                    try:
                        sc.mount(source, target, kind, flags, data or None)
                    except OSError as e:
                        if e.errno != errno.EPERM:
                            raise
                        sc.mount("/sys", target, None, sc.MS_BIND | sc.MS_REC)  # no netns of our own
                else:
                    if kind not in ("proc", "tmpfs"):  # runc checks neither (a tmpfs hides, it shows nothing)
                        _refuse_on_proc(target, dest, source, False, index)
                    sc.mount(source, target, kind, flags, data or None)
        if prop:
            with inroot.at(root_fd, dest) as target:
                sc.mount(None, target, None, prop)
        if any(o in RECURSIVE_ATTRS for o in options):
            with inroot.at(root_fd, dest) as target:
                sc.mount_setattr(target, *recursive_attrs(options))
    except OSError as e:
        if e.errno == errno.ENOSYS:
            asked = ", ".join(o for o in options if o in RECURSIVE_ATTRS)
            raise MrunError(f"mounts[{index}].options: recursive options ({asked}) need Linux 5.12 or newer "
                            "(mount_setattr)")
        if e.errno == errno.ENOTDIR and is_bind:  # the kernel's words named our descriptor, not the path
            raise MrunError(f"mounts[{index}] (bind on {dest}): a directory mounts only on a directory and a file "
                            f"on a file; {dest} in the rootfs is not what the source is")
        raise MrunError(f"mounts[{index}] ({kind or 'bind'} on {dest}): {e.strerror or e}")


def mount_cgroup(
    root_fd: int, dest: str, flags: int, cgroup_paths: dict[str, str], new_cgroupns: bool, in_userns: bool = False
) -> None:
    """Give the container its own cgroup view: cgroup2 directly, or v1 as a tmpfs of hierarchies."""
    ro = flags & sc.MS_RDONLY
    base = sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC
    if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        with inroot.at(root_fd, dest, create="dir") as target:
            if new_cgroupns:
                sc.mount("cgroup2", target, "cgroup2", base | ro)
            else:
                sc.mount(cgroup_paths.get("", "/sys/fs/cgroup"), target, None, sc.MS_BIND | sc.MS_REC)
        return
    with inroot.at(root_fd, dest, create="dir") as target:
        sc.mount("tmpfs", target, "tmpfs", base, "mode=755")
    by_dir: dict[str, list[str]] = {}
    for ctrl, path in cgroup_paths.items():
        if ctrl:  # not a hybrid host's cgroup2 hierarchy ("" in the paths): runc does not mount it either
            by_dir.setdefault(path, []).append(ctrl)
    with inroot.at(root_fd, dest) as top:  # our fresh tmpfs: nothing in it but what we make
        for path, ctrls in by_dir.items():
            mountpoint = _hierarchy_name(path)
            target = os.path.join(top, mountpoint)
            os.makedirs(target, exist_ok=True)
            if new_cgroupns and not in_userns:
                sc.mount("cgroup", target, "cgroup", base | ro, ",".join(sorted(ctrls)))
            else:  # v1 hierarchies cannot be mounted from a user namespace: bind the container's own
                sc.mount(path, target, None, sc.MS_BIND)  # and with the flags a mount of it has, as runc's
                sc.mount(None, target, None, sc.MS_BIND | sc.MS_REMOUNT | base | ro | locked_flags(target))
            for ctrl in ctrls:  # cpu -> cpu,cpuacct; a named hierarchy (name=systemd) has no such link
                if ctrl != mountpoint and not ctrl.startswith("name=") and not os.path.lexists(os.path.join(top, ctrl)):
                    os.symlink(mountpoint, os.path.join(top, ctrl))
    if ro:
        with inroot.at(root_fd, dest) as target:
            remount_readonly(target)


def _hierarchy_name(path: str) -> str:
    """'/sys/fs/cgroup/cpu,cpuacct/x/y' -> 'cpu,cpuacct' (the hierarchy's mount directory name)."""
    rel = os.path.relpath(path, "/sys/fs/cgroup")
    return rel.split("/")[0]


def prepare_root(rootfs: str, propagation: str) -> None:
    prop = PROPAGATION.get(propagation or "rslave")
    if prop is None:
        raise MrunError(f"linux.rootfsPropagation: unknown propagation {propagation!r}")
    try:
        sc.mount(None, "/", None, prop)
    except OSError as e:
        raise MrunError(f"linux.rootfsPropagation: cannot make the mount tree {propagation or 'rslave'}: {e.strerror}")
    if prop not in (sc.MS_SLAVE | sc.MS_REC, sc.MS_PRIVATE | sc.MS_REC):
        _make_parent_mount_private(rootfs)  # a recursive slave or private tree has no shared mount left
    try:
        sc.mount(rootfs, rootfs, None, sc.MS_BIND | sc.MS_REC)
    except OSError as e:
        hint = " (in a user namespace, the mapped root must be able to reach it)" if e.errno == 13 else ""
        raise MrunError(f"root.path: cannot bind {rootfs} onto itself: {e.strerror}{hint}")


def _make_parent_mount_private(rootfs: str) -> None:
    """pivot_root refuses a new root whose parent mount is shared, which `rootfsPropagation:
    shared` (or a host whose / is shared) makes it: the mount holding the rootfs is made private
    in our namespace for the pivot, and the asked-for propagation applied to the new / after it
    (``apply_root_propagation``), as runc does."""
    best, shared = "", False
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            point = fields[4].replace("\\040", " ")
            inside = rootfs == point or rootfs.startswith(point.rstrip("/") + "/")
            if inside and len(point) >= len(best):
                best = point
                shared = any(opt.startswith("shared:") for opt in fields[6 : fields.index("-")])
    if best and shared:
        try:
            sc.mount(None, best, None, sc.MS_PRIVATE)
        except OSError as e:
            raise MrunError(f"linux.rootfsPropagation: cannot make {best} private for pivot_root: {e.strerror}")


def apply_root_propagation(propagation: str) -> None:
    """After the pivot: the asked-for propagation on the container's own /, unless private
    (the parent was made private already)."""
    prop = PROPAGATION.get(propagation or "")
    if prop and not prop & sc.MS_PRIVATE:
        try:
            sc.mount(None, "/", None, prop)
        except OSError as e:
            raise MrunError(f"linux.rootfsPropagation: cannot apply {propagation} to /: {e.strerror}")


def pivot(rootfs: str, no_pivot: bool) -> None:
    os.chdir(rootfs)
    if no_pivot:
        sc.mount(rootfs, "/", None, sc.MS_MOVE)
        os.chroot(".")
    else:
        # pivot_root(".", ".") stacks the old root on the new one; detach it right away. From a
        # handle on the old root, as runc does: "." is still the new root, and the rslave meant
        # for the old tree (its unmount must not reach the host) was made the container's whole
        # tree's, overriding each mount's own propagation (rshared, an rslave of the host's).
        old_root = os.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
        try:
            sc.pivot_root(".", ".")
            os.fchdir(old_root)
        finally:
            os.close(old_root)
        sc.mount(None, ".", None, sc.MS_SLAVE | sc.MS_REC)  # never propagate the unmount to the host
        sc.umount2(".", sc.MNT_DETACH)
    os.chdir("/")


# Masked and read-only paths are applied after pivot_root: "/" is then the container's own root,
# so the kernel resolves them (symlinks and ".." included) inside it, and plain paths are safe.
def mask_paths(paths: list[str]) -> None:
    """Each file masked with the null device, each directory with an empty read-only tmpfs. The
    null device is the container's /dev/null only once it is seen to be one (char 1:3, not a
    link), and mounted from that very handle: a /dev/null that leads elsewhere (a /dev bound from
    a shared directory, where a link can be put) had the masked path become a writable view of
    what it led to, /proc/sys/kernel/core_pattern say (runc's CVE-2025-31133)."""
    null = -1
    try:
        for p in paths:
            try:
                st = os.stat(p)
            except OSError:
                continue
            try:
                if stat.S_ISDIR(st.st_mode):
                    sc.mount("tmpfs", p, "tmpfs", sc.MS_RDONLY, "size=0")
                    continue
                if null < 0:
                    null = _null_device()
                sc.mount(inroot.fd_path(null), p, None, sc.MS_BIND)
            except OSError as e:
                raise MrunError(f"linux.maskedPaths: {p}: {e.strerror}")
    finally:
        if null >= 0:
            os.close(null)


def _null_device() -> int:
    try:
        fd = os.open("/dev/null", os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as e:  # a /dev bound in (`-v /dev`, an image's VOLUME /dev) makes no devices: runc's rule
        raise MrunError(f"linux.maskedPaths: the container's /dev/null: {e.strerror} (a /dev bound from a volume "
                        "or the host has no devices made in it): nothing to mask them with") from None
    st = os.fstat(fd)
    if not stat.S_ISCHR(st.st_mode) or st.st_rdev != os.makedev(1, 3):
        os.close(fd)
        raise MrunError("linux.maskedPaths: the container's /dev/null is not the null device (char 1:3): "
                        "nothing is masked with it")
    return fd


def reopen_null_streams() -> None:
    """A standard stream that is the null device becomes the container's own /dev/null, opened
    read and write, as runc's reOpenDevNull makes it. The caller's (conmon hands its runtime a
    read-only one) is a node of the host's /dev, a mount the container cannot see, and a program
    writing to a stream it was given as input (a shell's `echo >&0`) was refused (EBADF). Only a
    /dev/null seen to be the null device is used; without one the streams stay as they came."""
    streams = []
    for fd in (0, 1, 2):
        try:
            st = os.fstat(fd)
        except OSError:
            continue
        if stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 3):
            streams.append(fd)
    if not streams:
        return
    try:
        null = _null_device()
    except MrunError:
        return
    try:  # through /proc: never blocking, never a terminal of ours, and checked again once open
        ours = os.open(inroot.fd_path(null), os.O_RDWR | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError:  # no /proc to reopen it through
        return
    finally:
        os.close(null)
    st = os.fstat(ours)
    if not stat.S_ISCHR(st.st_mode) or st.st_rdev != os.makedev(1, 3):
        os.close(ours)
        return
    os.set_blocking(ours, True)
    for fd in streams:
        os.dup2(ours, fd)
    os.close(ours)


def readonly_paths(paths: list[str]) -> None:
    """Each path bound onto itself through one handle (source and target the same object
    whatever the path's links do meanwhile), then remounted read-only through a handle opened
    anew, which sees the bind on top."""
    for p in paths:
        try:
            fd = os.open(p, os.O_PATH | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            try:
                sc.mount(inroot.fd_path(fd), inroot.fd_path(fd), None, sc.MS_BIND | sc.MS_REC)
            finally:
                os.close(fd)
            fd = os.open(p, os.O_PATH | os.O_CLOEXEC)
            try:
                remount_readonly(inroot.fd_path(fd), recursive=True)
            finally:
                os.close(fd)
        except OSError as e:
            raise MrunError(f"linux.readonlyPaths: {p}: {e.strerror}")


def write_sysctls(sysctl: dict[str, str]) -> None:
    """Keys were checked at create (spec.check_sysctls): only ones the container's namespaces own."""
    for key, value in sysctl.items():
        path = "/proc/sys/" + key.replace(".", "/")
        try:
            sc.write_procfs(path, os.fsencode(value))
        except OSError as e:
            raise MrunError(f"linux.sysctl.{key}: cannot set to {value!r}: {e.strerror}")

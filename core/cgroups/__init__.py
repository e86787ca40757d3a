"""cgroups v1 and v2 behind one interface, chosen at run time.

``detect()`` looks at the host: a pure v2 host has ``/sys/fs/cgroup/cgroup.controllers``;
anything else (v1, or "hybrid" with an empty cgroup2 mount beside v1 controllers, as on the
test machines) is driven through v1. The chosen driver and its paths are saved in the
container's state, so later commands never re-detect or re-compute paths.
"""

from __future__ import annotations

import os

from mrun.cgroups.base import Cgroup
from mrun.errors import InvalidSpec

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~6 ms (it imports re) on the lifecycle verbs' hot path
    from typing import Any

CGROUP_ROOT = "/sys/fs/cgroup"


def detect(root: str = CGROUP_ROOT) -> int:
    return 2 if os.path.exists(os.path.join(root, "cgroup.controllers")) else 1


def host_offers(v1: tuple[str, ...], v2: tuple[str, ...]) -> bool:
    """Whether this host's cgroups have one of the files a setting is written to: on v1
    ``(controller, file, other file...)``, on v2 ``(file, other file...)``; looked for in the
    cgroup we run in or, where that is a root (which lacks most files: BFQ's weight, v2's
    memory.swap.max), in the root and its children. What docker asks before it drops a setting
    the host cannot apply."""
    from mrun.cgroups.v1 import mounts, own_paths

    if detect() == 1:
        top, names = mounts().get(v1[0], ""), v1[1:]
        own = own_paths().get(v1[0], "/")
        if not top:
            return False
    else:
        top, names, own = CGROUP_ROOT, v2, own_paths().get("", "/")
    if own != "/":
        candidates = [os.path.join(top, own.lstrip("/"))]
    else:
        candidates = [top, *(e.path for e in os.scandir(top) if e.is_dir(follow_symlinks=False))]
    return any(os.path.exists(os.path.join(d, name)) for d in candidates for name in names)


def resolve_path(cgroups_path: str, container_id: str, systemd: bool = False) -> tuple[str, bool]:
    """Return (path, relative) for an OCI ``linux.cgroupsPath``.

    Absolute paths are taken from the hierarchy root; relative ones from the cgroup mrun
    itself runs in (as runc does); none at all means ``/mrun/<id>``. With ``--systemd-cgroup``
    the ``slice:prefix:name`` form is expanded the way systemd lays it out on disk, and none at
    all means ``system.slice:mrun:<id>`` (runc's is ``:runc:<id>``).
    """
    if systemd:
        return _systemd_path(cgroups_path or f":mrun:{container_id}"), False
    if not cgroups_path:
        return f"/mrun/{container_id}", False
    norm = os.path.normpath(cgroups_path)
    if norm.startswith("..") or "/../" in f"/{norm}/":
        raise InvalidSpec(f"linux.cgroupsPath: {cgroups_path!r} climbs out of the hierarchy")
    if norm in ("/", "//"):
        raise InvalidSpec(f"linux.cgroupsPath: {cgroups_path!r} is the root cgroup, which a container never gets")
    _within_kernel_limits(norm)
    return norm, not cgroups_path.startswith("/")


PATH_ROOM = 3800  # of PATH_MAX (4096): what a hierarchy's mount point and the file names written there leave


def _within_kernel_limits(norm: str) -> None:
    """A path the kernel cannot take fails one mkdir deep in the tree: refused here, naming the
    field, before anything is made."""
    if "\n" in norm:  # cgroup_mkdir's own refusal (EINVAL), which named a controller's path only
        raise InvalidSpec(f"linux.cgroupsPath: {norm!r}: a cgroup's name may not hold a line break")
    size = len(os.fsencode(norm))  # a byte that is not UTF-8 is that byte (jsonio.loads)
    if size > PATH_ROOM:
        raise InvalidSpec(f"linux.cgroupsPath: {size} bytes long; cgroup paths are at most {PATH_ROOM}")
    longest = max(norm.split("/"), key=lambda part: len(os.fsencode(part)))
    if len(os.fsencode(longest)) > 255:
        raise InvalidSpec(f"linux.cgroupsPath: {longest[:40]!r}... is longer than a name may be (255 bytes)")


def _systemd_path(cgroups_path: str) -> str:
    """``slice:prefix:name`` laid out as systemd nests it on disk, with runc's rules: three
    parts or a refusal (a plain path was taken as a cgroupfs one), a slice named ``*.slice``
    (default ``system.slice``), a ``name`` that is a slice used as it is, else ``prefix-name.scope``.
    None of the pieces may hold '/' or be '.' or '..': they would lead mrun's mkdirs elsewhere."""
    parts = cgroups_path.split(":")
    if len(parts) != 3:
        raise InvalidSpec(f'linux.cgroupsPath: {cgroups_path!r}: with --systemd-cgroup it is "slice:prefix:name" '
                          "(as runc requires)")
    slice_, prefix, name = parts
    for what, part in (("slice", slice_), ("prefix", prefix), ("name", name)):
        if "/" in part or part in (".", "..") or "\0" in part:  # each is one path component's piece
            raise InvalidSpec(f"linux.cgroupsPath: {cgroups_path!r}: the {what} {part!r} is not a unit name")
    if not name:
        raise InvalidSpec(f"linux.cgroupsPath: {cgroups_path!r}: slice:prefix:name needs a name")
    slice_ = slice_ or "system.slice"
    stem = slice_.removesuffix(".slice")
    if stem == "-":  # systemd's root slice
        return "/" + _unit(prefix, name)
    if not slice_.endswith(".slice") or not stem or "--" in stem or stem.startswith("-") or stem.endswith("-"):
        raise InvalidSpec(f"linux.cgroupsPath: {cgroups_path!r}: {slice_!r} is not a slice name (NAME.slice, "
                          "its parents joined by single dashes)")
    dirs, acc = [], ""
    for piece in stem.split("-"):
        acc = f"{acc}-{piece}" if acc else piece
        dirs.append(acc + ".slice")
    return "/" + "/".join(dirs + [_unit(prefix, name)])


def _unit(prefix: str, name: str) -> str:
    return name if name.endswith(".slice") else f"{prefix}-{name}.scope" if prefix else f"{name}.scope"


def new_cgroup(cgroups_path: str, container_id: str, systemd: bool = False) -> Cgroup:
    path, relative = resolve_path(cgroups_path, container_id, systemd)
    if detect() == 2:
        from mrun.cgroups.v2 import CgroupV2

        return CgroupV2.at(path, relative)
    from mrun.cgroups.v1 import CgroupV1

    return CgroupV1.at(path, relative)


def _inside_hierarchy(path: object, version: int) -> bool:
    """A cgroup directory below a hierarchy's root (never the root itself), with no tricks."""
    if not isinstance(path, str) or os.path.normpath(path) != path or not path.startswith(CGROUP_ROOT + "/"):
        return False
    parts = path[len(CGROUP_ROOT) + 1 :].split("/")
    if version == 2 and parts[0] == "unified":  # a hybrid host's cgroup2 mount
        parts = parts[1:]
    return len(parts) >= (1 if version == 2 else 2)


def saved_problem(saved: dict[str, Any]) -> str:
    """What is wrong with a cgroup record read from a state file, or ""."""
    version = saved.get("version")
    if version == 2:
        dirs = [saved.get("path")]
    elif version == 1:
        paths = saved.get("paths")
        if not isinstance(paths, dict) or not paths:
            return "paths: not an object of controller directories"
        dirs = list(paths.values())
    else:
        return f"version: {version!r} is not 1 or 2"
    for d in dirs:
        if not _inside_hierarchy(d, version):
            return f"{d!r} is not a container cgroup below {CGROUP_ROOT}"
    created, inodes = saved.get("created") or [], saved.get("inodes") or {}
    if not isinstance(created, list) or not all(isinstance(c, str) for c in created):
        return "created: not a list of directories"
    if not isinstance(inodes, dict) or any(k not in dirs or not isinstance(v, int) for k, v in inodes.items()):
        return "inodes: not the container's directories"
    if not isinstance(saved.get("marks") or "", str):
        return "marks: not a path"
    return ""


def open_cgroup(saved: dict[str, Any]) -> Cgroup:
    """Rebuild a driver from what ``Cgroup.to_dict()`` saved in the state."""
    if saved.get("version") == 2:
        from mrun.cgroups.v2 import CgroupV2

        return CgroupV2(saved["path"], saved)
    from mrun.cgroups.v1 import CgroupV1

    return CgroupV1(saved["paths"], saved)


__all__ = ["Cgroup", "detect", "new_cgroup", "open_cgroup", "resolve_path"]


_primer: Any = None  # a lock held by the thread prime_moves started, until it is done


def prime_moves() -> None:
    """Start paying, on a thread and while this process does other work, the wait that the first
    move of a process into a cgroup makes. Every move takes the kernel's global
    cgroup_threadgroup_rwsem for writing, and the first writer after a quiet spell waits for an
    RCU grace period: 10-15 ms on the test VM (0.04 ms for a move right after another; none on
    hierarchies mounted with favordynmods). A move of this process into the cgroup it is already
    in is a no-op that takes the lock: the container's move soon after finds it warm. Called where
    a create or exec begins whose process will be moved, not born in its cgroup
    (operations.builder.warm_the_move: an intermediate's child);
    ``primed`` waits for it (launch.spawn does, before it forks).
    ``_thread``, not ``threading``: the lifecycle verbs do not pay threading's import.

    Only where there is a cgroup2 hierarchy (v2, or a hybrid host's beside v1): in a v1 one a
    container's process moves itself thread-wise (``Cgroup.thread_files``), which takes no such
    lock, and on a pure v1 host a primer would only cost the wait ``primed`` then makes."""
    global _primer
    import _thread

    if _primer is not None and _primer.locked():
        return
    done = _thread.allocate_lock()
    done.acquire()

    def move_nowhere() -> None:
        try:
            target = _own_procs_file()  # read on the thread too: /proc/self/cgroup waits for
            if target is None:  # cgroup_mutex, which another process's warming may hold
                return
            fd = os.open(target, os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.write(fd, b"0")
            finally:
                os.close(fd)
        except OSError:
            pass  # the lock was taken all the same, or there is nothing to gain
        finally:
            done.release()

    _primer = done
    _thread.start_new_thread(move_nowhere, ())


def primed() -> None:
    """Wait for ``prime_moves``' thread, if one runs: no thread of ours runs while we fork."""
    global _primer
    if _primer is not None:
        _primer.acquire()
        _primer = None


def cgroup2_here() -> bool:
    """Whether this process is in a cgroup2 hierarchy (v2, or a hybrid host's beside v1)."""
    return _own_procs_file() is not None


def _own_procs_file() -> str | None:
    """cgroup.procs of the cgroup this process is in, in the cgroup2 hierarchy (the lock is
    global); None where there is none."""
    try:
        if detect() == 2:
            from mrun.cgroups.v2 import MOUNT, own_path

            candidates = [os.path.join(MOUNT, own_path().lstrip("/"))]
        else:
            from mrun.cgroups.v1 import UNIFIED, mounts, own_paths

            where, paths = mounts(), own_paths()
            if UNIFIED not in where or UNIFIED not in paths:
                return None
            candidates = [os.path.join(where[UNIFIED], paths[UNIFIED].lstrip("/"))]
    except OSError:
        return None
    return next((os.path.join(d, "cgroup.procs") for d in candidates if os.path.isdir(d)), None)

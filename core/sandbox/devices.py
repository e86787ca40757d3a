"""/dev inside the container: the default nodes, the spec's linux.devices, and the usual links."""

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

DEFAULT_DEVICES: list[dict[str, Any]] = [
    {"path": "/dev/null", "type": "c", "major": 1, "minor": 3},
    {"path": "/dev/zero", "type": "c", "major": 1, "minor": 5},
    {"path": "/dev/full", "type": "c", "major": 1, "minor": 7},
    {"path": "/dev/random", "type": "c", "major": 1, "minor": 8},
    {"path": "/dev/urandom", "type": "c", "major": 1, "minor": 9},
    {"path": "/dev/tty", "type": "c", "major": 5, "minor": 0},
]
LINKS = (
    ("/proc/self/fd", "fd"),
    ("/proc/self/fd/0", "stdin"),
    ("/proc/self/fd/1", "stdout"),
    ("/proc/self/fd/2", "stderr"),
)
_TYPES = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}


def create(rootfs: str, devices: list[dict[str, Any]], in_userns: bool, dev_is_bind: bool) -> None:
    """Make device nodes under ``rootfs``/dev, every path resolved inside the rootfs.

    In a user namespace mknod is not allowed, so nodes are bind mounts of the host's (what runc
    does too). When the spec bind-mounts the host's /dev, only the links are added.
    """
    root = inroot.open_root(rootfs)
    try:
        wanted = [] if dev_is_bind else DEFAULT_DEVICES
        seen = {d["path"] for d in devices}
        for d in [x for x in wanted if x["path"] not in seen] + list(devices):
            _node(root, d, in_userns)
        dev = inroot.walk(root, "/dev", create="dir")
        try:
            _links(dev)
        finally:
            os.close(dev)
    finally:
        os.close(root)


def _links(dev: int) -> None:
    links = list(LINKS)
    if os.path.exists("/proc/kcore"):
        links.append(("/proc/kcore", "core"))
    try:
        if stat.S_ISDIR(os.stat("pts", dir_fd=dev, follow_symlinks=False).st_mode):
            links.append(("pts/ptmx", "ptmx"))
    except FileNotFoundError:
        pass
    for target, name in links:
        try:
            os.symlink(target, name, dir_fd=dev)
        except FileExistsError:
            pass


def _node(root: int, d: dict[str, Any], in_userns: bool) -> None:
    where = f"linux.devices: {d['path']}"
    if in_userns:
        _bind_host_node(root, d, where)
        return
    try:
        parent, name = inroot.parent_and_name(root, d["path"])
    except OSError as e:
        raise MrunError(f"{where}: cannot make its directory inside the container: {e.strerror}")
    try:
        _mknod(parent, name, d, where)
    finally:
        os.close(parent)


def _bind_host_node(root: int, d: dict[str, Any], where: str) -> None:
    try:
        with inroot.at(root, d["path"], create="file") as target:
            sc.mount(d["path"], target, None, sc.MS_BIND)
    except OSError as e:
        raise MrunError(f"{where}: cannot bind the host's node: {e.strerror}")


def _mknod(parent: int, name: str, d: dict[str, Any], where: str) -> None:
    """mknodat in the in-root parent: the name itself is never followed, whatever it is now."""
    mode = d.get("fileMode", 0o666) & 0o7777  # the type is ``type``'s, whatever bits podman's st_mode has
    try:
        try:
            old = os.stat(name, dir_fd=parent, follow_symlinks=False)
            if stat.S_ISDIR(old.st_mode):
                raise MrunError(f"{where}: the image has a directory there")
            os.unlink(name, dir_fd=parent)  # the rootfs's own entry (a file, a link): replaced
        except FileNotFoundError:
            pass
        os.mknod(name, mode | _TYPES[d["type"]], os.makedev(d.get("major", 0), d.get("minor", 0)), dir_fd=parent)
        node = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
        try:
            os.chmod(inroot.fd_path(node), mode)  # mknod's mode went through the umask
            if d.get("uid") is not None or d.get("gid") is not None:
                os.chown(inroot.fd_path(node), d.get("uid", 0), d.get("gid", 0))
        finally:
            os.close(node)
    except OSError as e:
        if e.errno == errno.EPERM:
            raise MrunError(f"{where}: mknod not permitted (no CAP_MKNOD?)")
        raise MrunError(f"{where}: {e.strerror}")

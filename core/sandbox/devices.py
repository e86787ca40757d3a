"""/dev inside the container: the default nodes, the spec's linux.devices, and the usual links."""

from __future__ import annotations

import errno
import os
import stat
from typing import Any

from mrun.errors import MrunError
from mrun.sandbox import syscalls as sc

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
    """Make device nodes under ``rootfs``/dev.

    In a user namespace mknod is not allowed, so nodes are bind mounts of the host's (what runc
    does too). When the spec bind-mounts the host's /dev, only the links are added.
    """
    dev = os.path.join(rootfs, "dev")
    os.makedirs(dev, exist_ok=True)
    wanted = [] if dev_is_bind else DEFAULT_DEVICES
    seen = {d["path"] for d in devices}
    for d in [x for x in wanted if x["path"] not in seen] + list(devices):
        _node(rootfs, d, in_userns)
    for target, name in LINKS:
        _link(target, os.path.join(dev, name))
    if os.path.exists("/proc/kcore"):
        _link("/proc/kcore", os.path.join(dev, "core"))
    if os.path.isdir(os.path.join(dev, "pts")) and not os.path.exists(os.path.join(dev, "ptmx")):
        _link("pts/ptmx", os.path.join(dev, "ptmx"))


def _link(target: str, path: str) -> None:
    try:
        os.symlink(target, path)
    except FileExistsError:
        pass


def _node(rootfs: str, d: dict[str, Any], in_userns: bool) -> None:
    rel = d["path"].lstrip("/")
    path = os.path.join(rootfs, rel)
    if os.path.realpath(os.path.dirname(path)) != os.path.realpath(os.path.join(rootfs, os.path.dirname(rel))):
        raise MrunError(f"linux.devices: {d['path']} resolves outside the container")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    mode = d.get("fileMode", 0o666) & 0o7777
    if in_userns:
        if not os.path.lexists(path):
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644))
        try:
            sc.mount(d["path"], path, None, sc.MS_BIND)
        except OSError as e:
            raise MrunError(f"linux.devices: cannot bind {d['path']} from the host: {e.strerror}")
        return
    try:
        if os.path.lexists(path):
            os.unlink(path)
        os.mknod(path, mode | _TYPES[d["type"]], os.makedev(d.get("major", 0), d.get("minor", 0)))
        os.chmod(path, mode)
        if d.get("uid") is not None or d.get("gid") is not None:
            os.chown(path, d.get("uid", 0), d.get("gid", 0))
    except OSError as e:
        if e.errno == errno.EPERM:
            raise MrunError(f"linux.devices: mknod {d['path']}: not permitted (no CAP_MKNOD?)")
        raise MrunError(f"linux.devices: {d['path']}: {e.strerror}")

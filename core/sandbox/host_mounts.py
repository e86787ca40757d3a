"""Bind mount sources the host makes ready for a container's init, as detached mounts it
inherits and moves into place (``rootfs.mount_one``) on a destination resolved inside the rootfs
like every other mount's.

Two cases need the host's hand. An idmapped mount (runtime-spec 1.2's ``mounts[].uidMappings``/
``gidMappings`` and the ``idmap``/``ridmap`` options): idmapping needs CAP_SYS_ADMIN in the initial
user namespace, which an init in a user namespace of its own no longer has; the host clones the
source (open_tree) and idmaps the clone through a user namespace made for the mappings. And every
bind mount of a container with a user namespace: its mapped root may not reach the source (a
containerd bundle or CRI sandbox directory is 0700 root), so the host clones it, as runc opens
mount sources before the init enters its user namespace.
"""

from __future__ import annotations

import os

from mrun.errors import MrunError
from mrun.kernel import syscalls as sc
from mrun.spec import idmapping

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def prepare(mounts: list[dict[str, Any]], linux: dict[str, Any]) -> dict[int, int]:
    """{index in ``mounts``: a detached mount's descriptor} for each bind mount the host must make
    ready (``wanted``); the caller closes them once the init has them. On a failure none stays open."""
    made: dict[int, int] = {}
    namespaces: dict[str, int] = {}  # one user namespace per set of mappings
    try:
        for i, m in enumerate(mounts):
            if not wanted(m, linux, i):
                continue
            mapping = idmapping(m, linux, i)
            userns = -1
            if mapping is not None:
                uids, gids, _recursive = mapping
                key = repr((uids, gids))
                if key not in namespaces:
                    namespaces[key] = user_namespace(uids, gids, f"mounts[{i}]")
                userns = namespaces[key]
            made[i] = _detached(m, i, userns, mapping is not None and mapping[2])
    except BaseException:
        for fd in made.values():
            os.close(fd)
        raise
    finally:
        for fd in namespaces.values():
            os.close(fd)
    return made


def wanted(m: dict[str, Any], linux: dict[str, Any], index: int) -> bool:
    """Is ``m`` a bind mount the host makes ready: idmapped, or in a container with a user namespace."""
    if idmapping(m, linux, index) is not None:
        return True
    options = m.get("options") or []
    is_bind = m.get("type") == "bind" or "bind" in options or "rbind" in options
    return is_bind and any(ns.get("type") == "user" for ns in linux.get("namespaces") or [])


def _detached(m: dict[str, Any], index: int, userns_fd: int, recursive: bool) -> int:
    """A clone of the mount ``m`` binds, idmapped through ``userns_fd`` unless it is -1."""
    source, dest = m.get("source") or "", m["destination"]
    if not os.path.isabs(source):
        raise MrunError(f"mounts[{index}].source: bind source {source!r} must be an absolute path")
    if not os.path.exists(source):
        raise MrunError(f"mounts[{index}].source: {source} does not exist")
    try:
        fd = sc.open_tree_clone(source, "rbind" in (m.get("options") or []))
    except OSError as e:
        raise MrunError(f"mounts[{index}].source: cannot bind {source} on {dest}: {e.strerror}")
    if userns_fd < 0:
        return fd
    try:
        sc.idmap_mount(fd, userns_fd, recursive)
    except OSError as e:
        os.close(fd)
        why = e.strerror
        if e.errno == 22:  # EINVAL: the filesystem (or one below, with ridmap) takes no idmapping
            why += " (its filesystem cannot be idmapped, or the mappings are not valid)"
        raise MrunError(f"mounts[{index}] (idmapped bind of {source} on {dest}): {why}")
    return fd


def user_namespace(uids: list[dict[str, int]], gids: list[dict[str, int]], what: str,
                   fields: tuple[str, str] = (".uidMappings", ".gidMappings")) -> int:
    """A user namespace with these mappings, as a descriptor: a child unshares one and waits
    while the mappings are written from here and its namespace opened, then leaves (the
    namespace lives on in the descriptor). The child also leaves if we die: its pipe ends."""
    from mrun.cgroups import primed
    from mrun.sandbox.launch import write_id_map

    primed()  # no thread of ours runs while we fork
    ready_r, ready_w = os.pipe()
    hold_r, hold_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(ready_r)
            os.close(hold_w)
            sc.unshare(sc.CLONE_NEWUSER)
            os.write(ready_w, b"1")
            os.read(hold_r, 1)
        finally:
            os._exit(0)
    os.close(ready_w)
    os.close(hold_r)
    try:
        if os.read(ready_r, 1) != b"1":
            raise MrunError(f"{what}: cannot make a user namespace for its mappings")
        for name, field, maps in (("uid_map", fields[0], uids), ("gid_map", fields[1], gids)):
            try:
                write_id_map(pid, name, maps)
            except OSError as e:
                raise MrunError(f"{what}{field}: cannot be used: {e.strerror}")
        return os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(ready_r)
        os.close(hold_w)
        os.waitpid(pid, 0)

"""A task's root filesystem as containerd hands it over (``CreateTaskRequest.rootfs``): an
overlay of the snapshot's layers, or a bind mount, mounted on the bundle's ``rootfs``.

A user-namespaced pod's snapshot (Kubernetes' ``hostUsers: false``) comes with containerd 2.x's
``uidmap=C:H:N`` and ``gidmap=`` options: the layers, owned by the image's ids on disk, are to be
seen through the pod's mappings. As containerd's own mount code does, each layer is cloned into a
detached mount idmapped through a user namespace with those mappings, and overlayfs stacks the
clones (named ``/proc/self/fd/N``). Making the user namespace forks, which the shim daemon (a
threaded ttrpc server) must not: such a rootfs is mounted by the create worker instead.
"""

from __future__ import annotations

import os

from mrun.errors import MrunError
from mrun.units import decimal

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_DIRS = ("lowerdir", "upperdir", "workdir")
_MAPS = ("uidmap", "gidmap")


def describe(mounts: list[Any]) -> list[dict[str, Any]]:
    """containerd's Mount messages as plain data, which travels to the create worker."""
    return [{"type": m.type, "source": m.source, "options": list(m.options)} for m in mounts]


def idmapped(mounts: list[dict[str, Any]]) -> bool:
    return any(o.partition("=")[0] in _MAPS for m in mounts for o in m["options"])


def mount(mounts: list[dict[str, Any]], target: str) -> bool:
    """Mount each in turn on ``target``; -> whether anything was to be mounted."""
    from mrun.kernel import overlay
    from mrun.kernel import syscalls as sc
    from mrun.sandbox.rootfs import parse_options

    for m in mounts:
        pairs = [o.partition("=") for o in m["options"]]
        dirs = {key: value for key, _, value in pairs if key in _DIRS}
        maps = {key: value for key, _, value in pairs if key in _MAPS}
        flags, _prop, data = parse_options([o for o in m["options"] if o.partition("=")[0] not in (*_DIRS, *_MAPS)])
        overlaid, bound = m["type"] == "overlay" and "lowerdir" in dirs, bool(flags & sc.MS_BIND)
        userns = _user_namespace(m, maps, overlaid or bound) if maps else -1
        clones: list[int] = []  # each layer, or the bind source, idmapped through ``userns``
        try:
            if overlaid:  # as many layers as overlayfs stacks
                lower = dirs["lowerdir"].split(":")
                for layer in lower if userns >= 0 else ():
                    clones.append(_idmapped_clone(layer, userns, False))
                overlay.mount(target, [f"/proc/self/fd/{fd}" for fd in clones] or lower, dirs.get("upperdir", ""),
                              dirs.get("workdir", ""), [data] if data else [], flags)
            elif bound:
                if userns >= 0:
                    clones.append(_idmapped_clone(m["source"], userns, bool(flags & sc.MS_REC)))
                    place = os.open(target, os.O_PATH | os.O_CLOEXEC)
                    try:
                        sc.move_mount(clones[-1], place)
                    finally:
                        os.close(place)
                else:
                    sc.mount(m["source"], target, None, sc.MS_BIND | (flags & sc.MS_REC))
                rest = flags & ~(sc.MS_BIND | sc.MS_REC)
                if rest:  # ro and the like: a bind takes no other flag when it is made, only on a remount
                    sc.mount(None, target, None, sc.MS_BIND | sc.MS_REMOUNT | rest)
            else:
                sc.mount(m["source"], target, m["type"], flags, data or None)
        except OSError as e:
            raise MrunError(f"mounting the rootfs ({m['type']} {m['source']}) on {target}: {e.strerror}")
        finally:
            for fd in (*clones, userns) if userns >= 0 else ():
                os.close(fd)
    return bool(mounts)


def _user_namespace(m: dict[str, Any], maps: dict[str, str], idmappable: bool) -> int:
    """A user namespace of the snapshot's uidmap=/gidmap= mappings, as a descriptor."""
    from mrun.sandbox.host_mounts import user_namespace

    if set(maps) != set(_MAPS):
        raise MrunError(f"the rootfs ({m['type']} {m['source']}): {', '.join(maps)} without "
                        f"{', '.join(set(_MAPS) - set(maps))}: containerd sends both or neither")
    if not idmappable:
        raise MrunError(f"the rootfs ({m['type']} {m['source']}): uidmap/gidmap on a {m['type']} mount: "
                        "only an overlay's layers or a bind mount can be idmapped")
    return user_namespace(_mappings(maps["uidmap"], "uidmap"), _mappings(maps["gidmap"], "gidmap"),
                          "the rootfs", ("'s uidmap", "'s gidmap"))


def _idmapped_clone(path: str, userns: int, recursive: bool) -> int:
    from mrun.kernel import syscalls as sc

    fd = sc.open_tree_clone(path, recursive)
    try:
        sc.idmap_mount(fd, userns, recursive)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _mappings(text: str, option: str) -> list[dict[str, int]]:
    """``C:H:N[,C:H:N...]`` (containerd's form: container id, host id, count)."""
    out = []
    for entry in text.split(","):
        ids = [decimal(part, (1 << 32) - 1) for part in entry.split(":")]  # (str.isdigit took "²", int() not)
        if len(ids) != 3 or None in ids:
            raise MrunError(f"the rootfs's {option}={text!r}: expected container-id:host-id:size")
        out.append({"containerID": ids[0], "hostID": ids[1], "size": ids[2]})
    return out

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
        overlaid = m["type"] == "overlay" and "lowerdir" in dirs
        try:
            if maps:
                _mount_idmapped(m, dirs, maps, flags, data, target)
            elif overlaid:  # as many layers as overlayfs stacks
                overlay.mount(target, dirs["lowerdir"].split(":"), dirs.get("upperdir", ""), dirs.get("workdir", ""),
                              [data] if data else [], flags)
            else:
                sc.mount(m["source"], target, None if flags & sc.MS_BIND else m["type"], flags, data or None)
        except OSError as e:
            raise MrunError(f"mounting the rootfs ({m['type']} {m['source']}) on {target}: {e.strerror}")
    return bool(mounts)


def _mount_idmapped(m: dict[str, Any], dirs: dict[str, str], maps: dict[str, str], flags: int, data: str,
                    target: str) -> None:
    from mrun.kernel import overlay
    from mrun.kernel import syscalls as sc
    from mrun.sandbox.host_mounts import user_namespace

    if set(maps) != set(_MAPS):
        raise MrunError(f"the rootfs ({m['type']} {m['source']}): {', '.join(maps)} without "
                        f"{', '.join(set(_MAPS) - set(maps))}: containerd sends both or neither")
    userns = user_namespace(_mappings(maps["uidmap"], "uidmap"), _mappings(maps["gidmap"], "gidmap"),
                            "the rootfs", ("'s uidmap", "'s gidmap"))
    clones: list[int] = []
    try:
        if m["type"] == "overlay" and "lowerdir" in dirs:
            for layer in dirs["lowerdir"].split(":"):
                clones.append(sc.open_tree_clone(layer, False))
                sc.idmap_mount(clones[-1], userns, False)
            overlay.mount(target, [f"/proc/self/fd/{fd}" for fd in clones], dirs.get("upperdir", ""),
                          dirs.get("workdir", ""), [data] if data else [], flags)
        elif flags & sc.MS_BIND:
            clones.append(sc.open_tree_clone(m["source"], bool(flags & sc.MS_REC)))
            sc.idmap_mount(clones[-1], userns, bool(flags & sc.MS_REC))
            place = os.open(target, os.O_PATH | os.O_CLOEXEC)
            try:
                sc.move_mount(clones[-1], place)
            finally:
                os.close(place)
            rest = flags & ~(sc.MS_BIND | sc.MS_REC)
            if rest:  # ro and the like, as a plain bind's remount applies them
                sc.mount(None, target, None, sc.MS_BIND | sc.MS_REMOUNT | rest)
        else:
            raise MrunError(f"the rootfs ({m['type']} {m['source']}): uidmap/gidmap on a {m['type']} mount: "
                            "only an overlay's layers or a bind mount can be idmapped")
    finally:
        for fd in (*clones, userns):
            os.close(fd)


def _mappings(text: str, option: str) -> list[dict[str, int]]:
    """``C:H:N[,C:H:N...]`` (containerd's form: container id, host id, count)."""
    out = []
    for entry in text.split(","):
        parts = entry.split(":")
        if len(parts) != 3 or not all(p.isdigit() for p in parts):
            raise MrunError(f"the rootfs's {option}={text!r}: expected container-id:host-id:size")
        out.append({"containerID": int(parts[0]), "hostID": int(parts[1]), "size": int(parts[2])})
    return out

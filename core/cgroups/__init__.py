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


def resolve_path(cgroups_path: str, container_id: str, systemd: bool = False) -> tuple[str, bool]:
    """Return (path, relative) for an OCI ``linux.cgroupsPath``.

    Absolute paths are taken from the hierarchy root; relative ones from the cgroup mrun
    itself runs in (as runc does); none at all means ``/mrun/<id>``. With ``--systemd-cgroup``
    the ``slice:prefix:name`` form is expanded the way systemd lays it out on disk.
    """
    if systemd and cgroups_path.count(":") == 2:
        slice_, prefix, name = cgroups_path.split(":")
        parts, acc = [], ""
        for piece in (slice_ or "system.slice").removesuffix(".slice").split("-"):
            acc = f"{acc}-{piece}" if acc else piece
            parts.append(acc + ".slice")
        unit = f"{prefix}-{name}.scope" if prefix else f"{name}.scope"
        return "/" + "/".join(parts + [unit]), False
    if not cgroups_path:
        return f"/mrun/{container_id}", False
    norm = os.path.normpath(cgroups_path)
    if norm.startswith("..") or "/../" in f"/{norm}/":
        raise InvalidSpec(f"linux.cgroupsPath: {cgroups_path!r} climbs out of the hierarchy")
    if norm in ("/", "//"):
        raise InvalidSpec(f"linux.cgroupsPath: {cgroups_path!r} is the root cgroup, which a container never gets")
    return norm, not cgroups_path.startswith("/")


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

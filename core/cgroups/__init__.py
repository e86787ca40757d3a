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
    return norm, not cgroups_path.startswith("/")


def new_cgroup(cgroups_path: str, container_id: str, systemd: bool = False) -> Cgroup:
    path, relative = resolve_path(cgroups_path, container_id, systemd)
    if detect() == 2:
        from mrun.cgroups.v2 import CgroupV2

        return CgroupV2.at(path, relative)
    from mrun.cgroups.v1 import CgroupV1

    return CgroupV1.at(path, relative)


def open_cgroup(saved: dict[str, Any]) -> Cgroup:
    """Rebuild a driver from what ``Cgroup.to_dict()`` saved in the state."""
    if saved.get("version") == 2:
        from mrun.cgroups.v2 import CgroupV2

        return CgroupV2(saved["path"], saved.get("created", []))
    from mrun.cgroups.v1 import CgroupV1

    return CgroupV1(saved["paths"], saved.get("created", []))


__all__ = ["Cgroup", "detect", "new_cgroup", "open_cgroup", "resolve_path"]

"""Translate OCI ``linux.resources`` into cgroup file writes, for v1 and for v2.

Pure functions: they return the ordered writes, so the translation is testable anywhere and
each driver only has to write files. Order matters (cpu period before quota; the device
deny-all before the allows) and is encoded here.
"""

from __future__ import annotations

from mrun.errors import InvalidSpec, Unsupported
from mrun.schema import DEV_MAJOR_MAX, DEV_MINOR_MAX

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    Write = tuple[str, str, str]  # (v1 controller or "" on v2, file name, value)


# The device nodes every container gets (see sandbox.devices), allowed in the device cgroup.
DEFAULT_DEVICE_RULES: list[dict[str, Any]] = [
    {"allow": True, "type": "c", "major": -1, "minor": -1, "access": "m"},
    {"allow": True, "type": "b", "major": -1, "minor": -1, "access": "m"},
    {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},  # null
    {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "rwm"},  # zero
    {"allow": True, "type": "c", "major": 1, "minor": 7, "access": "rwm"},  # full
    {"allow": True, "type": "c", "major": 1, "minor": 8, "access": "rwm"},  # random
    {"allow": True, "type": "c", "major": 1, "minor": 9, "access": "rwm"},  # urandom
    {"allow": True, "type": "c", "major": 5, "minor": 0, "access": "rwm"},  # tty
    {"allow": True, "type": "c", "major": 5, "minor": 1, "access": "rwm"},  # console
    {"allow": True, "type": "c", "major": 5, "minor": 2, "access": "rwm"},  # ptmx
    {"allow": True, "type": "c", "major": 136, "minor": -1, "access": "rwm"},  # pts/*
]


# cgroup v2's core files that are not limits: which processes are in, frozen or killed, the type
# and the controllers below. A bundle's linux.resources.unified never writes them.
MANAGED_FILES = frozenset(
    ("cgroup.procs", "cgroup.threads", "cgroup.kill", "cgroup.freeze", "cgroup.subtree_control", "cgroup.type")
)


# Which linux.resources field each cgroup file a translation writes comes from, so a write the
# kernel refuses names the field asked for (the file's path is only how mrun applied it).
_FIELD_OF_FILE = {
    "memory.limit_in_bytes": "memory.limit", "memory.max": "memory.limit",
    "memory.memsw.limit_in_bytes": "memory.swap", "memory.swap.max": "memory.swap",
    "memory.soft_limit_in_bytes": "memory.reservation", "memory.low": "memory.reservation",
    "memory.kmem.tcp.limit_in_bytes": "memory.kernelTCP", "memory.swappiness": "memory.swappiness",
    "memory.oom_control": "memory.disableOOMKiller",
    "cpu.shares": "cpu.shares", "cpu.weight": "cpu.shares", "cpu.cfs_period_us": "cpu.period",
    "cpu.cfs_quota_us": "cpu.quota", "cpu.max": "cpu.quota/period", "cpu.cfs_burst_us": "cpu.burst",
    "cpu.max.burst": "cpu.burst", "cpu.rt_period_us": "cpu.realtimePeriod", "cpu.rt_runtime_us": "cpu.realtimeRuntime",
    "cpu.idle": "cpu.idle", "cpuset.cpus": "cpu.cpus", "cpuset.mems": "cpu.mems", "pids.max": "pids.limit",
    "blkio.weight": "blockIO.weight", "blkio.bfq.weight": "blockIO.weight", "io.weight": "blockIO.weight",
    "io.bfq.weight": "blockIO.weight", "blkio.leaf_weight": "blockIO.leafWeight",
    "blkio.weight_device": "blockIO.weightDevice", "blkio.bfq.weight_device": "blockIO.weightDevice",
    "blkio.leaf_weight_device": "blockIO.weightDevice",
    "blkio.throttle.read_bps_device": "blockIO.throttleReadBpsDevice",
    "blkio.throttle.write_bps_device": "blockIO.throttleWriteBpsDevice",
    "blkio.throttle.read_iops_device": "blockIO.throttleReadIOPSDevice",
    "blkio.throttle.write_iops_device": "blockIO.throttleWriteIOPSDevice", "io.max": "blockIO.throttle*",
    "net_cls.classid": "network.classID", "net_prio.ifpriomap": "network.priorities", "rdma.max": "rdma",
    "devices.allow": "devices", "devices.deny": "devices",
}


def _rdma_lines(res: dict[str, Any]) -> list[str]:
    """linux.resources.rdma as runc writes rdma.max: a line per device, its HCA handles and
    objects where given. A device's name is one word (the kernel's: mlx5_0)."""
    lines = []
    for device, limits in (res.get("rdma") or {}).items():
        if not device or not device.isprintable() or any(c.isspace() for c in device):
            raise InvalidSpec(f"linux.resources.rdma: {device!r} is not an RDMA device's name")
        line = device
        for key, word in (("hcaHandles", "hca_handle"), ("hcaObjects", "hca_object")):
            if (limits or {}).get(key) is not None:
                line += f" {word}={limits[key]}"
        lines.append(line)
    return lines


def field_of(file_name: str, v2: bool) -> str:
    """The linux.resources field a write of ``file_name`` applies (v2: a file no field maps to
    came from linux.resources.unified)."""
    if file_name.startswith("hugetlb."):
        return "linux.resources.hugepageLimits"
    field = _FIELD_OF_FILE.get(file_name)
    if field is None:
        return f"linux.resources.unified.{file_name}" if v2 else "linux.resources"
    return f"linux.resources.{field}"


def _num(v: int | None) -> str:
    return "*" if v is None or v < 0 else str(v)


def device_rules(resources: dict[str, Any], devices: list[dict[str, Any]]) -> list[str]:
    """v1 ``devices.allow``/``devices.deny`` lines, prefixed 'allow ' or 'deny '. A whitelist
    whatever the spec says, as runc's (its device emulator starts from "deny all"): the spec's
    rules, the devices it makes and the defaults over that. mrun added nothing to a spec with no
    rules, whose container could then open every device of the host: a disk made with mknod.
    ``resources`` without "devices" (an update's: runtime.update) leaves the rules as they are."""
    if "devices" not in resources:
        return []
    rules = list(resources.get("devices") or [])
    # a spec's usual first rule is that "deny all" already (the line of an "a" rule has no access)
    denies_all = bool(rules) and not rules[0].get("allow") and (rules[0].get("type") or "a") == "a"
    rules += [
        {
            "allow": True,
            "type": d["type"],
            "major": d.get("major", -1),
            "minor": d.get("minor", -1),
            "access": "rwm",
        }
        for d in devices
        if d.get("type") in ("c", "b")
    ]
    rules += DEFAULT_DEVICE_RULES
    out = []
    for i, r in enumerate(rules):
        kind = r.get("type") or "a"
        if kind not in ("a", "b", "c"):
            raise InvalidSpec(f"linux.resources.devices[{i}].type: must be a, b or c")
        for field, top in (("major", DEV_MAJOR_MAX), ("minor", DEV_MINOR_MAX)):
            value = r.get(field)
            if value is not None and not -1 <= value <= top:  # -1 (or none): any
                raise InvalidSpec(f"linux.resources.devices[{i}].{field}: {value} is not a device number (0..{top}, "
                                  "or -1 for any)")
        access = r.get("access") or "rwm"
        if set(access) - set("rwm"):
            raise InvalidSpec(f"linux.resources.devices[{i}].access: only r, w and m are allowed")
        line = "a" if kind == "a" else f"{kind} {_num(r.get('major'))}:{_num(r.get('minor'))} {access}"
        out.append(("allow " if r.get("allow") else "deny ") + line)
    return out if denies_all else ["deny a", *out]


def v1_writes(
    resources: dict[str, Any], devices: list[dict[str, Any]] | None = None, has_swap: bool = True
) -> list[Write]:
    """runtime-spec resources -> v1 (controller, file, value) writes. Long on purpose: one flat
    table read top to bottom, field by field as runc's fs/ package orders them; split up, the
    mapping would be scattered over helpers that each hold three lines of it."""
    res = resources or {}
    w: list[Write] = []
    mem = res.get("memory") or {}
    if mem.get("limit") is not None:
        w.append(("memory", "memory.limit_in_bytes", str(mem["limit"])))
    if mem.get("swap") is not None:
        if has_swap:
            w.append(("memory", "memory.memsw.limit_in_bytes", str(mem["swap"])))
        elif mem["swap"] != -1 and mem["swap"] != mem.get("limit"):
            raise Unsupported(
                "linux.resources.memory.swap: this kernel has no swap accounting "
                "(memory.memsw.* is missing; boot with swapaccount=1)"
            )
    if mem.get("reservation") is not None:
        w.append(("memory", "memory.soft_limit_in_bytes", str(mem["reservation"])))
    if mem.get("kernelTCP") is not None:
        w.append(("memory", "memory.kmem.tcp.limit_in_bytes", str(mem["kernelTCP"])))
    if mem.get("swappiness") is not None:
        if mem["swappiness"] > 100:
            raise InvalidSpec("linux.resources.memory.swappiness: must be 0 to 100")
        w.append(("memory", "memory.swappiness", str(mem["swappiness"])))
    if mem.get("disableOOMKiller"):
        w.append(("memory", "memory.oom_control", "1"))
    cpu = res.get("cpu") or {}
    if cpu.get("shares"):
        w.append(("cpu", "cpu.shares", str(_shares(cpu))))
    if cpu.get("period"):
        w.append(("cpu", "cpu.cfs_period_us", str(cpu["period"])))
    if cpu.get("quota") is not None and cpu["quota"] != 0:
        w.append(("cpu", "cpu.cfs_quota_us", str(cpu["quota"])))
    if cpu.get("burst") is not None:
        w.append(("cpu", "cpu.cfs_burst_us", str(cpu["burst"])))
    if cpu.get("realtimePeriod"):
        w.append(("cpu", "cpu.rt_period_us", str(cpu["realtimePeriod"])))
    if cpu.get("realtimeRuntime"):
        w.append(("cpu", "cpu.rt_runtime_us", str(cpu["realtimeRuntime"])))
    if cpu.get("idle") is not None:
        w.append(("cpu", "cpu.idle", str(cpu["idle"])))
    if cpu.get("cpus"):
        w.append(("cpuset", "cpuset.cpus", cpu["cpus"]))
    if cpu.get("mems"):
        w.append(("cpuset", "cpuset.mems", cpu["mems"]))
    pids = res.get("pids") or {}
    if pids.get("limit") is not None:
        w.append(("pids", "pids.max", "max" if pids["limit"] <= 0 else str(pids["limit"])))
    blk = res.get("blockIO") or {}
    if blk.get("weight"):
        w.append(("blkio", "blkio.weight", str(blk["weight"])))
    if blk.get("leafWeight"):
        w.append(("blkio", "blkio.leaf_weight", str(blk["leafWeight"])))
    for d in blk.get("weightDevice") or []:
        if d.get("weight"):
            w.append(("blkio", "blkio.weight_device", f"{d['major']}:{d['minor']} {d['weight']}"))
        if d.get("leafWeight"):
            w.append(("blkio", "blkio.leaf_weight_device", f"{d['major']}:{d['minor']} {d['leafWeight']}"))
    for key, name in (
        ("throttleReadBpsDevice", "read_bps_device"),
        ("throttleWriteBpsDevice", "write_bps_device"),
        ("throttleReadIOPSDevice", "read_iops_device"),
        ("throttleWriteIOPSDevice", "write_iops_device"),
    ):
        for d in blk.get(key) or []:
            w.append(("blkio", f"blkio.throttle.{name}", f"{d['major']}:{d['minor']} {d['rate']}"))
    for h in res.get("hugepageLimits") or []:  # faults, then reservations (see base.RESERVATION)
        for kind in ("", ".rsvd"):
            w.append(("hugetlb", f"hugetlb.{h['pageSize']}{kind}.limit_in_bytes", str(h["limit"])))
    w += [("rdma", "rdma.max", line) for line in _rdma_lines(res)]
    net = res.get("network") or {}
    if net.get("classID") is not None:
        w.append(("net_cls", "net_cls.classid", str(net["classID"])))
    for p in net.get("priorities") or []:
        w.append(("net_prio", "net_prio.ifpriomap", f"{p['name']} {p['priority']}"))
    if res.get("unified"):
        raise Unsupported("linux.resources.unified: needs cgroup v2, and this host uses cgroup v1")
    for rule in device_rules(res, devices or []):
        kind, line = rule.split(" ", 1)
        w.append(("devices", "devices.allow" if kind == "allow" else "devices.deny", line))
    return w


MIN_SHARES, MAX_SHARES = 2, 1 << 18  # the kernel's (sched): v1 clamps cpu.shares to them without a word


def _shares(cpu: dict[str, Any]) -> int:
    """cpu.shares within the kernel's range, as runc holds it (it reads v1's back and refuses a
    clamped value); on v2 the weight it converts to would be out of cpu.weight's range."""
    shares = cpu["shares"]
    if not MIN_SHARES <= shares <= MAX_SHARES:
        raise InvalidSpec(f"linux.resources.cpu.shares: must be {MIN_SHARES} to {MAX_SHARES} (the kernel's range), "
                          f"got {shares}")
    return int(shares)


def shares_to_weight(shares: int) -> int:
    """cgroup v1 cpu.shares (2..262144) to v2 cpu.weight (1..10000), as runc (#4785) and crun
    convert since 2025: a quadratic in log2(shares) through the ends and the defaults (1024 is
    v2's default weight, 100). The linear map before made 1024 weight 39: every container of a
    Kubernetes node weighed less than each host service at its default (kubernetes#131216)."""
    if shares == 0:
        return 0
    if shares <= MIN_SHARES:
        return 1
    if shares >= MAX_SHARES:
        return 10000
    import math

    octaves = math.log2(shares)
    return math.ceil(math.pow(10, (octaves * octaves + 125 * octaves) / 612.0 - 7.0 / 34.0))


def blkio_to_io_weight(weight: int) -> int:
    """v1 blkio.weight (10..1000) to v2 io.weight (1..10000)."""
    return 1 + (weight - 10) * 9999 // 990


def v2_writes(resources: dict[str, Any]) -> list[Write]:
    """runtime-spec resources -> v2 writes (controller "" : the unified hierarchy). Long for the
    same reason as v1_writes: one flat field-to-file table, with v2's conversions inline."""
    res = resources or {}
    w: list[Write] = []
    mem = res.get("memory") or {}
    limit = mem.get("limit")
    if limit is not None:
        w.append(("", "memory.max", "max" if limit == -1 else str(limit)))
    if mem.get("reservation") is not None:
        w.append(("", "memory.low", "max" if mem["reservation"] == -1 else str(mem["reservation"])))
    swap = mem.get("swap")
    if swap is not None:
        # OCI swap is memory+swap; v2's memory.swap.max counts swap alone.
        if swap == -1:
            w.append(("", "memory.swap.max", "max"))
        elif limit is None or limit == -1:
            raise InvalidSpec("linux.resources.memory.swap: on cgroup v2 it needs memory.limit as well")
        elif swap < limit:
            raise InvalidSpec("linux.resources.memory.swap: must be at least memory.limit (it counts both)")
        else:
            w.append(("", "memory.swap.max", str(swap - limit)))
    if mem.get("disableOOMKiller"):
        raise Unsupported("linux.resources.memory.disableOOMKiller: cgroup v2 cannot disable the OOM killer")
    cpu = res.get("cpu") or {}
    if cpu.get("shares"):
        w.append(("", "cpu.weight", str(shares_to_weight(_shares(cpu)))))
    quota, period = cpu.get("quota"), cpu.get("period")
    if quota not in (None, 0) or period:
        q = "max" if quota in (None, 0) or quota < 0 else str(quota)
        w.append(("", "cpu.max", f"{q} {period or 100000}"))
    if cpu.get("burst") is not None:
        w.append(("", "cpu.max.burst", str(cpu["burst"])))
    if cpu.get("idle") is not None:
        w.append(("", "cpu.idle", str(cpu["idle"])))
    if cpu.get("realtimeRuntime") or cpu.get("realtimePeriod"):
        raise Unsupported("linux.resources.cpu.realtime*: cgroup v2 has no real-time CPU controller")
    if cpu.get("cpus"):
        w.append(("", "cpuset.cpus", cpu["cpus"]))
    if cpu.get("mems"):
        w.append(("", "cpuset.mems", cpu["mems"]))
    pids = res.get("pids") or {}
    if pids.get("limit") is not None:
        w.append(("", "pids.max", "max" if pids["limit"] <= 0 else str(pids["limit"])))
    blk = res.get("blockIO") or {}
    if blk.get("weight"):
        w.append(("", "io.weight", f"default {blkio_to_io_weight(blk['weight'])}"))
    for d in blk.get("weightDevice") or []:
        if d.get("weight"):
            w.append(("", "io.weight", f"{d['major']}:{d['minor']} {blkio_to_io_weight(d['weight'])}"))
    for key, name in (
        ("throttleReadBpsDevice", "rbps"),
        ("throttleWriteBpsDevice", "wbps"),
        ("throttleReadIOPSDevice", "riops"),
        ("throttleWriteIOPSDevice", "wiops"),
    ):
        for d in blk.get(key) or []:
            w.append(("", "io.max", f"{d['major']}:{d['minor']} {name}={d['rate'] or 'max'}"))
    for h in res.get("hugepageLimits") or []:  # faults, then reservations (see base.RESERVATION)
        for kind in ("", ".rsvd"):
            w.append(("", f"hugetlb.{h['pageSize']}{kind}.max", str(h["limit"])))
    w += [("", "rdma.max", line) for line in _rdma_lines(res)]
    if res.get("network"):
        raise Unsupported("linux.resources.network: net_cls/net_prio do not exist on cgroup v2")
    for key, value in (res.get("unified") or {}).items():
        if "/" in key or key.startswith("."):
            raise InvalidSpec(f"linux.resources.unified.{key}: not a cgroup file name")
        if key in MANAGED_FILES:
            raise InvalidSpec(f"linux.resources.unified.{key}: mrun manages this file itself (a pid written to "
                              "cgroup.procs would become the container's, to be frozen and killed with it)")
        w.append(("", key, value))
    return w


def v2_controllers(writes: list[Write]) -> set[str]:
    """Controllers that must be enabled in the parent's cgroup.subtree_control."""
    return {
        f.split(".")[0] for _, f, _ in writes
        if f.split(".")[0] in ("memory", "cpu", "cpuset", "pids", "io", "hugetlb", "rdma")
    }

"""A container's cgroup figures laid out as `runc events` prints them (runc's types.Stats), for
the runc verb: go-runc's Stats and Events and scripts reading `runc events --stats` parse that
layout. Fields runc marks omitempty are left out when zero or empty, as its JSON encoder leaves
them out. mrun's own layout (``Cgroup.stats``) stays what the shim and `mrun stats` read."""

from __future__ import annotations

import os

from mrun.cgroups.base import keyed, read

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

UINT64_MAX = (1 << 64) - 1  # what runc reports for v2's "max"

CPUSET_FLAGS = ("cpu_exclusive", "mem_hardwall", "mem_exclusive", "memory_migrate", "memory_spread_page",
                "memory_spread_slab", "memory_pressure", "sched_load_balance", "sched_relax_domain_level")
NOT_MEASURED = {"intel_rdt": {}, "network_interfaces": None}  # as runc prints them without RDT or a network


def _omit(doc: dict[str, Any], *keys: str) -> dict[str, Any]:
    """runc's omitempty: ``keys`` left out where zero or empty."""
    return {k: v for k, v in doc.items() if k not in keys or v}


def _number(path: str) -> int:
    try:
        text = read(path)
    except OSError:
        return 0
    return UINT64_MAX if text == "max" else int(text) if text.lstrip("-").isdigit() else 0


def _ranges(text: str) -> list[int]:
    """cpuset's "0-3,6" -> [0, 1, 2, 3, 6]."""
    out: list[int] = []
    for part in filter(None, text.split(",")):
        low, _, high = part.partition("-")
        out += range(int(low), int(high or low) + 1)
    return out


def _entry(limit: int, usage: int, peak: int, failcnt: int) -> dict[str, int]:
    return _omit({"limit": limit, "usage": usage, "max": peak, "failcnt": failcnt}, "usage", "max")


def _no_memory() -> dict[str, Any]:
    """Where there is no memory controller: runc's entries all zero (structs are never left out)."""
    return {kind: _entry(0, 0, 0, 0) for kind in ("usage", "swap", "kernel", "kernelTCP")}


def _blkio_entries(lines: list[str], ops: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """v1 "MAJ:MIN Op value" lines (a last "Total" line has no device) or, with ``ops``, v2
    io.stat's "MAJ:MIN key=value ..." lines, whose keys ``ops`` names."""
    out = []
    for line in lines:
        fields = line.split()
        if len(fields) < 2 or ":" not in fields[0]:
            continue
        major, _, minor = fields[0].partition(":")
        pairs = ([(ops[k], v) for k, _, v in (f.partition("=") for f in fields[1:]) if k in ops] if ops
                 else [(fields[1], fields[2])] if len(fields) == 3 else [])
        for op, value in pairs:
            out.append(_omit({"major": int(major), "minor": int(minor), "op": op, "value": int(value)},
                             "major", "minor", "op", "value"))
    return out


def _lines(path: str) -> list[str]:
    try:
        return read(path).splitlines()
    except OSError:
        return []


def of_v1(paths: dict[str, str]) -> dict[str, Any]:
    """A v1 cgroup's, from its directory per controller."""
    acct, cpu, cpuset, mem = (paths.get(c, "") for c in ("cpuacct", "cpu", "cpuset", "memory"))
    usage: dict[str, Any] = {"total": 0, "percpu": [], "percpu_kernel": [], "percpu_user": [], "kernel": 0, "user": 0}
    if acct:
        tick_ns = 1_000_000_000 // os.sysconf("SC_CLK_TCK")
        ticks = keyed(os.path.join(acct, "cpuacct.stat"))
        rows = [row.split() for row in _lines(os.path.join(acct, "cpuacct.usage_all"))[1:]]  # "cpu user system"
        usage.update(total=_number(os.path.join(acct, "cpuacct.usage")),
                     percpu=[int(n) for n in " ".join(_lines(os.path.join(acct, "cpuacct.usage_percpu"))).split()],
                     percpu_kernel=[int(row[2]) for row in rows if len(row) == 3],
                     percpu_user=[int(row[1]) for row in rows if len(row) == 3],
                     kernel=ticks.get("system", 0) * tick_ns, user=ticks.get("user", 0) * tick_ns)
    throttled = keyed(os.path.join(cpu, "cpu.stat")) if cpu else {}
    sets: dict[str, Any] = {}
    if cpuset:
        sets = {"cpus": _ranges(read(os.path.join(cpuset, "cpuset.cpus"))),
                "mems": _ranges(read(os.path.join(cpuset, "cpuset.mems")))}
        sets.update({flag: _number(os.path.join(cpuset, f"cpuset.{flag}")) for flag in CPUSET_FLAGS})
    memory = _no_memory()
    if mem:
        raw = keyed(os.path.join(mem, "memory.stat"))

        def entry(prefix: str) -> dict[str, int]:
            return _entry(*(_number(os.path.join(mem, f"{prefix}{name}"))
                            for name in ("limit_in_bytes", "usage_in_bytes", "max_usage_in_bytes", "failcnt")))

        memory = {"cache": raw.get("cache", 0), "usage": entry("memory."), "swap": entry("memory.memsw."),
                  "kernel": entry("memory.kmem."), "kernelTCP": entry("memory.kmem.tcp."), "raw": raw}
    blkio: dict[str, Any] = {}
    if paths.get("blkio"):
        # runc's order: the CFQ scheduler's figures, BFQ's, else the throttling policy's
        for prefix in ("blkio.io_", "blkio.bfq.io_", "blkio.throttle.io_"):
            served = _lines(os.path.join(paths["blkio"], f"{prefix}serviced_recursive"))
            if _blkio_entries(served) or prefix == "blkio.throttle.io_":
                blkio = _omit({"ioServiceBytesRecursive": _blkio_entries(
                    _lines(os.path.join(paths["blkio"], f"{prefix}service_bytes_recursive"))),
                    "ioServicedRecursive": _blkio_entries(served)}, "ioServiceBytesRecursive", "ioServicedRecursive")
                break
    hugetlb = {}
    if paths.get("hugetlb"):
        for name in sorted(os.listdir(paths["hugetlb"])):
            if name.startswith("hugetlb.") and name.endswith(".usage_in_bytes"):
                size, base = name.split(".")[1], os.path.join(paths["hugetlb"], name.rsplit(".", 1)[0])
                hugetlb[size] = _omit({"usage": _number(base + ".usage_in_bytes"),
                                       "max": _number(base + ".max_usage_in_bytes"),
                                       "failcnt": _number(base + ".failcnt")}, "usage", "max")
    return {
        "cpu": {"usage": _omit(usage, "total", "percpu", "percpu_kernel", "percpu_user"),
                "throttling": _throttling(throttled.get("nr_periods", 0), throttled.get("nr_throttled", 0),
                                          throttled.get("throttled_time", 0))},
        "cpuset": sets,
        "memory": _omit(memory, "cache", "raw"),
        "pids": _pids(paths.get("pids", "")),
        "blkio": blkio,
        "hugetlb": hugetlb,
        **NOT_MEASURED,
    }


def _throttling(periods: int, throttled: int, time_ns: int) -> dict[str, int]:
    return _omit({"periods": periods, "throttledPeriods": throttled, "throttledTime": time_ns},
                 "periods", "throttledPeriods", "throttledTime")


def _pids(d: str) -> dict[str, int]:
    if not d:
        return {}
    limit = _number(os.path.join(d, "pids.max"))
    return _omit({"current": _number(os.path.join(d, "pids.current")), "limit": 0 if limit == UINT64_MAX else limit},
                  "current", "limit")


def of_v2(d: str) -> dict[str, Any]:
    """A v2 cgroup's, from its directory."""
    st = keyed(os.path.join(d, "cpu.stat"))
    usage = _omit({"total": st.get("usage_usec", 0) * 1000, "kernel": st.get("system_usec", 0) * 1000,
                   "user": st.get("user_usec", 0) * 1000}, "total")
    sets: dict[str, Any] = {}
    if os.path.exists(os.path.join(d, "cpuset.cpus.effective")):
        sets = {"cpus": _ranges(read(os.path.join(d, "cpuset.cpus.effective"))),
                "mems": _ranges(read(os.path.join(d, "cpuset.mems.effective")))}
    memory = _no_memory()
    if os.path.exists(os.path.join(d, "memory.current")):
        raw = keyed(os.path.join(d, "memory.stat"))
        current, limit = _number(os.path.join(d, "memory.current")), _number(os.path.join(d, "memory.max"))
        memory.update(cache=raw.get("file", 0), raw=raw, usage=_entry(
            limit, current, _number(os.path.join(d, "memory.peak")),
            keyed(os.path.join(d, "memory.events")).get("max", 0)))
        if os.path.exists(os.path.join(d, "memory.swap.current")):
            # runc's rule: v1's swap figures were memory and swap together, so v2's are reported so too
            swap_limit = _number(os.path.join(d, "memory.swap.max"))
            memory["swap"] = _entry(swap_limit if swap_limit == UINT64_MAX else min(swap_limit + limit, UINT64_MAX),
                                    _number(os.path.join(d, "memory.swap.current")) + current, 0,
                                    keyed(os.path.join(d, "memory.swap.events")).get("max", 0))
    io = _lines(os.path.join(d, "io.stat"))
    blkio = _omit({"ioServiceBytesRecursive": _blkio_entries(io, {"rbytes": "Read", "wbytes": "Write"}),
                   "ioServicedRecursive": _blkio_entries(io, {"rios": "Read", "wios": "Write"})},
                  "ioServiceBytesRecursive", "ioServicedRecursive")
    hugetlb = {}
    for name in sorted(os.listdir(d)) if os.path.isdir(d) else []:
        if name.startswith("hugetlb.") and name.endswith(".current") and name.count(".") == 2:
            size = name.split(".")[1]
            hugetlb[size] = _omit({"usage": _number(os.path.join(d, name)),
                                   "failcnt": keyed(os.path.join(d, f"hugetlb.{size}.events")).get("max", 0)}, "usage")
    return {
        "cpu": {"usage": usage, "throttling": _throttling(st.get("nr_periods", 0), st.get("nr_throttled", 0),
                                                          st.get("throttled_usec", 0) * 1000)},
        "cpuset": sets,
        "memory": _omit(memory, "cache", "raw"),
        "pids": _pids(d if os.path.exists(os.path.join(d, "pids.current")) else ""),
        "blkio": blkio,
        "hugetlb": hugetlb,
        **NOT_MEASURED,
    }

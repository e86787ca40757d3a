"""docker's resource flags of `run` (memory, swap, CPU, cpuset, block I/O, processes) as
``linux.resources``, with docker's rules: what it refuses is refused naming the flag; what it
fills in is filled in (swap twice the memory limit); what the host cannot do is dropped with
docker's warning, as docker drops it (swappiness and the OOM killer switch on cgroup v2, swap
without swap accounting, a weight without a weight file).
"""

from __future__ import annotations

import os

from mrun import cgroups
from mrun.errors import InvalidSpec
from mrun.units import INT64_MAX, decimal, ram_in_bytes

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

MIN_MEMORY = 6 << 20  # docker's least --memory ("Minimum memory limit allowed is 6MB")
# The flags, as the CLI's keyword arguments name them (a value of None or "" was not given).
FLAGS = ("memory", "memory_swap", "memory_reservation", "memory_swappiness", "oom_kill_disable", "kernel_memory",
         "cpus", "cpu_shares", "cpu_period", "cpu_quota", "cpu_rt_period", "cpu_rt_runtime", "cpuset_cpus",
         "cpuset_mems", "blkio_weight", "pids_limit",
         "blkio_weight_device", "device_read_bps", "device_write_bps", "device_read_iops", "device_write_iops")
# docker's per-device limits: the flag, its blockIO list, its v1 and v2 files, and docker's word for it
THROTTLES = (
    ("device_read_bps", "throttleReadBpsDevice", "blkio.throttle.read_bps_device", "BPS Block I/O read limit"),
    ("device_write_bps", "throttleWriteBpsDevice", "blkio.throttle.write_bps_device", "BPS Block I/O write limit"),
    ("device_read_iops", "throttleReadIOPSDevice", "blkio.throttle.read_iops_device", "IOPS Block I/O read limit"),
    ("device_write_iops", "throttleWriteIOPSDevice", "blkio.throttle.write_iops_device",
     "IOPS Block I/O write limit"),
)


def _in_int64(kw: dict[str, Any]) -> None:
    """A number flag past Go's int64 is refused naming the flag, as docker's CLI refuses it ("value
    out of range"); it reached the spec's own check, which named the container's config.json."""
    for flag in ("pids_limit", "cpu_quota", "cpu_shares", "cpu_period", "cpu_rt_period", "cpu_rt_runtime",
                 "memory_swappiness", "blkio_weight"):
        value = kw.get(flag)
        if isinstance(value, int) and not -INT64_MAX - 1 <= value <= INT64_MAX:
            raise InvalidSpec(f"--{flag.replace('_', '-')} {value}: out of range (a 64-bit number)")


def resources(kw: dict[str, Any], warn: Callable[[str], None] | None) -> dict[str, Any]:
    """The flags in ``kw`` as linux.resources (empty when none was given)."""
    say = warn if callable(warn) else (lambda _msg: None)
    _in_int64(kw)
    res: dict[str, Any] = {}
    memory = _memory(res, kw, say)
    _cpu(res, kw)
    if kw.get("blkio_weight"):
        weight = kw["blkio_weight"]
        if not 10 <= weight <= 1000:
            raise InvalidSpec(f"--blkio-weight {weight}: the range of blkio weight is from 10 to 1000")
        # BFQ's weight file is not on a hierarchy's root (a bare VM has no other cgroup); its statistics are
        if cgroups.host_offers(("blkio", "blkio.weight", "blkio.bfq.weight", "blkio.bfq.io_serviced"),
                               ("io.weight", "io.bfq.weight")):
            res["blockIO"] = {"weight": weight}
        else:
            say("your kernel does not support Block I/O weight or the cgroup is not mounted: --blkio-weight discarded")
    _per_device(res, kw, say)
    if kw.get("pids_limit") is not None:
        res["pids"] = {"limit": kw["pids_limit"]}
    if memory.get("disableOOMKiller") and not memory.get("limit"):
        say("disabling the OOM killer on a container without a -m/--memory limit may be dangerous")
    return res


def _memory(res: dict[str, Any], kw: dict[str, Any], say: Callable[[str], None]) -> dict[str, Any]:
    mem: dict[str, Any] = {}
    limit = parse_memory(kw["memory"]) if kw.get("memory") else None
    swap = ram_in_bytes("memory-swap", kw["memory_swap"]) if kw.get("memory_swap") else 0
    reservation = ram_in_bytes("memory-reservation", kw["memory_reservation"]) if kw.get("memory_reservation") else 0
    if kw.get("kernel_memory"):
        ram_in_bytes("kernel-memory", kw["kernel_memory"])
        say("--kernel-memory is ignored: the kernel deprecated kernel memory limits")
    if swap and not limit and swap != -1:
        raise InvalidSpec("--memory-swap: set the memory limit (-m/--memory) as well; it counts memory and swap")
    if swap < -1:
        raise InvalidSpec(f"--memory-swap {kw['memory_swap']!r}: a size, or -1 for unlimited swap")
    if limit and 0 < swap < limit:
        raise InvalidSpec(f"--memory-swap {kw['memory_swap']}: must be at least --memory {kw['memory']} "
                          "(it counts both)")
    if reservation < 0 or 0 < reservation < MIN_MEMORY:
        raise InvalidSpec(f"--memory-reservation {kw['memory_reservation']}: the minimum memory reservation is 6MB")
    if limit and reservation > limit:
        raise InvalidSpec(f"--memory-reservation {kw['memory_reservation']}: must be at most --memory {kw['memory']}")
    if limit:
        mem["limit"] = limit
        if swap == 0:
            swap = 2 * limit  # docker's default: as much swap as memory
        if swap != -1 and not cgroups.host_offers(("memory", "memory.memsw.limit_in_bytes"), ("memory.swap.max",)):
            say("your kernel does not support swap limit capabilities or the cgroup is not mounted: "
                "memory limited without swap")
            swap = -1
        mem["swap"] = swap
    elif swap == -1:
        mem["swap"] = -1
    if reservation:
        mem["reservation"] = reservation
    swappiness = kw.get("memory_swappiness")
    if swappiness is not None and swappiness != -1:  # docker's -1: the host's default
        if not 0 <= swappiness <= 100:
            raise InvalidSpec(f"--memory-swappiness {swappiness}: the range is 0 to 100")
        if cgroups.detect() == 1:
            mem["swappiness"] = swappiness
        else:
            say("cgroup v2 has no memory swappiness: --memory-swappiness discarded")
    if kw.get("oom_kill_disable"):
        if cgroups.detect() == 1:
            mem["disableOOMKiller"] = True
        else:
            say("cgroup v2 cannot disable the OOM killer: --oom-kill-disable discarded")
    if mem:
        res["memory"] = mem
    return mem


def _realtime(cpu: dict[str, Any], period: int, runtime: int) -> None:
    """docker's --cpu-rt-period and --cpu-rt-runtime: the cgroup's real-time budget (cgroup v1's
    cpu.rt_period_us and cpu.rt_runtime_us), which a process of the container needs to take a
    real-time scheduler (SCHED_FIFO, with --cap-add SYS_NICE). Refused in docker's words where
    the host has none (cgroup v2; a kernel without RT group scheduling); the budget must come out
    of the cgroup parent's, as docker's daemon's --cpu-rt-runtime gives its parent one."""
    if not (period or runtime):
        return
    if period < 0 or runtime < -1:
        raise InvalidSpec(f"--cpu-rt-{'period' if period < 0 else 'runtime'}: a number of microseconds")
    flag = "--cpu-rt-period" if period else "--cpu-rt-runtime"
    if not cgroups.host_offers(("cpu", "cpu.rt_runtime_us"), ()):
        raise InvalidSpec(f"{flag}: Your kernel does not support cgroup cpu real-time "
                          f"{'period' if period else 'runtime'} (no cpu.rt_runtime_us: cgroup v2 has none)")
    if period and runtime > period:
        raise InvalidSpec(f"--cpu-rt-runtime {runtime}: cannot be higher than --cpu-rt-period {period}")
    if period:
        cpu["realtimePeriod"] = period
    if runtime:
        cpu["realtimeRuntime"] = runtime


def _cpu(res: dict[str, Any], kw: dict[str, Any]) -> None:
    cpu: dict[str, Any] = {}
    cpus = parse_cpus(kw["cpus"]) if kw.get("cpus") else None
    period, quota = kw.get("cpu_period") or 0, kw.get("cpu_quota") or 0
    if cpus and period:
        raise InvalidSpec("--cpus and --cpu-period: conflicting options, give one or the other")
    if cpus and quota:
        raise InvalidSpec("--cpus and --cpu-quota: conflicting options, give one or the other")
    if period and not 1000 <= period <= 1000000:
        raise InvalidSpec(f"--cpu-period {period}: from 1000 (1 ms) to 1000000 (1 s)")
    if quota and quota != -1 and quota < 1000:
        raise InvalidSpec(f"--cpu-quota {quota}: at least 1000 (1 ms), or -1 for none")
    if cpus:
        cpu.update(cpus_quota(cpus))
    if period:
        cpu["period"] = period
    if quota:
        cpu["quota"] = quota
    _realtime(cpu, kw.get("cpu_rt_period") or 0, kw.get("cpu_rt_runtime") or 0)
    shares = kw.get("cpu_shares")
    if shares:
        if shares < 0:
            raise InvalidSpec(f"--cpu-shares {shares}: a relative weight, 0 or more")
        cpu["shares"] = min(max(shares, 2), 262144)  # what docker makes of it on cgroup v1
    for flag, field, available in (("cpuset_cpus", "cpus", "/sys/devices/system/cpu/online"),
                                   ("cpuset_mems", "mems", "/sys/devices/system/node/online")):
        if kw.get(flag):
            cpu[field] = _cpu_list(flag.replace("_", "-"), kw[flag], available)
    if cpu:
        res["cpu"] = cpu


def _cpu_list(flag: str, text: str, available_file: str) -> str:
    """A cpuset list (``0-3,8``), each number among the host's ("0" where the file is missing:
    a host without NUMA nodes listed has node 0)."""
    wanted = _numbers(text)
    if wanted is None:
        raise InvalidSpec(f"--{flag} {text!r}: a list such as 0-3,8 expected")
    try:
        with open(available_file) as f:
            shown = f.read().strip()
    except OSError:
        shown = "0"
    if not wanted <= (_numbers(shown) or set()):
        what = "CPUs" if flag == "cpuset-cpus" else "memory nodes"
        raise InvalidSpec(f"--{flag} {text}: requested {what} are not available here (available: {shown})")
    return text


def _numbers(text: str) -> set[int] | None:
    out: set[int] = set()
    for part in text.split(","):
        low, dash, high = part.partition("-")
        first, last = decimal(low, (1 << 16) - 1), decimal(high if dash else low, (1 << 16) - 1)
        if first is None or last is None or last < first:
            return None
        out.update(range(first, last + 1))
    return out


def parse_memory(text: str) -> int | None:
    """``--memory`` as docker takes it (go-units' RAMInBytes), 0 for no limit, else 6 MiB at least
    (less was an init the OOM killer ended as it set the container up). Not float(): it read
    "৯g" as 9g, and "1_0m", "1e3m" and " 64m" as sizes, which docker refuses."""
    try:
        size = ram_in_bytes("memory", text)  # (-1 for "-1", docker's unlimited elsewhere: refused here)
    except InvalidSpec:
        size = -1
    if size < 0:
        raise InvalidSpec(f"--memory {text!r}: a size such as 64m or 1g expected")
    if 0 < size < MIN_MEMORY:
        raise InvalidSpec(f"--memory {text}: the minimum memory limit is 6MB (as docker's)")
    return size or None


CFS_PERIOD = 100000  # microseconds: docker's period for --cpus


def cpus_quota(cpus: float) -> dict[str, int]:
    """``--cpus`` as the CFS quota and period docker gives it (run's and update's)."""
    return {"quota": int(cpus * CFS_PERIOD), "period": CFS_PERIOD}


def parse_cpus(text: str) -> float | None:
    """``--cpus`` as docker takes it: 0 for no limit, else from 0.01 to the host's CPUs."""
    try:  # (float() alone took "৯" as 9, "0_5" and spaces: docker's decimal number is ASCII)
        cpus = float(text) if text and set(text) <= set("0123456789.eE+-") else float("nan")
    except ValueError:
        cpus = float("nan")
    if cpus != cpus or cpus in (float("inf"), float("-inf")):
        raise InvalidSpec(f"--cpus {text!r}: a number expected")
    if cpus == 0:
        return None
    available = os.cpu_count() or 1
    if not 0.01 <= cpus <= available:
        raise InvalidSpec(
            f"--cpus {text}: the range of CPUs is from 0.01 to {available}.00, as there are only {available} "
            "CPUs available"
        )
    return cpus


def _per_device(res: dict[str, Any], kw: dict[str, Any], say: Callable[[str], None]) -> None:
    """--blkio-weight-device and --device-{read,write}-{bps,iops}, DEVICE:VALUE each, the device a
    block device on the host (its numbers are what the cgroup takes), as docker reads them."""
    weights = {}  # text -> weight
    for text in kw.get("blkio_weight_device") or ():
        value = _on_device("blkio-weight-device", text, "WEIGHT")
        weight = decimal(value, 1000)
        if weight is None or 0 < weight < 10:
            raise InvalidSpec(f"--blkio-weight-device {text!r}: the weight is 10 to 1000 (0: none)")
        weights[text] = weight
    if weights:
        if cgroups.host_offers(("blkio", "blkio.weight_device", "blkio.bfq.weight_device"),
                               ("io.weight", "io.bfq.weight")):
            res.setdefault("blockIO", {})["weightDevice"] = [
                dict(zip(("major", "minor"), _device_numbers("blkio-weight-device", text), strict=True),
                     weight=weight) for text, weight in weights.items()]
        else:
            say("your kernel does not support Block I/O weight_device or the cgroup is not mounted: "
                "--blkio-weight-device discarded")
    for key, field, v1_file, words in THROTTLES:
        flag = key.replace("_", "-")
        limits = []
        for text in kw.get(key) or ():
            value = _on_device(flag, text, "RATE")
            if key.endswith("bps"):
                rate = ram_in_bytes(flag, value)
                if rate < 0:
                    raise InvalidSpec(f"--{flag} {text!r}: a rate of 0 or more bytes per second expected")
            else:
                rate = decimal(value)
                if rate is None:
                    raise InvalidSpec(f"--{flag} {text!r}: the rate is a number of operations per second")
            major, minor = _device_numbers(flag, text)
            limits.append({"major": major, "minor": minor, "rate": rate})
        if not limits:
            continue
        if cgroups.host_offers(("blkio", v1_file), ("io.max",)):
            res.setdefault("blockIO", {})[field] = limits
        else:
            say(f"your kernel does not support {words} or the cgroup is not mounted: {words} discarded")


def _on_device(flag: str, text: str, what: str) -> str:
    """DEVICE:VALUE -> VALUE, DEVICE a path under /dev/ as docker requires."""
    path, sep, value = text.rpartition(":")
    if not sep or not path.startswith("/dev/") or not value:
        raise InvalidSpec(f"--{flag} {text!r}: DEVICE:{what} expected, DEVICE a path under /dev/")
    return value


def _device_numbers(flag: str, text: str) -> tuple[int, int]:
    """The major and minor numbers of the block device ``text`` names (DEVICE:VALUE)."""
    import stat

    path = text.rpartition(":")[0]
    try:
        st = os.stat(path)
    except OSError as e:
        raise InvalidSpec(f"--{flag} {text!r}: {path}: {e.strerror}") from None
    if not stat.S_ISBLK(st.st_mode):
        raise InvalidSpec(f"--{flag} {text!r}: {path} is not a block device")
    return os.major(st.st_rdev), os.minor(st.st_rdev)

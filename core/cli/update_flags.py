"""``update``'s flags, as runc takes them, into the linux.resources object they stand for.

runc parses sizes with docker's go-units (``64m``, ``1.5g``, ``512KiB``; binary units), the CPU
periods and shares as unsigned and the quotas as signed numbers, and ignores every flag when
``-r`` gives the resources as JSON. A value it would refuse is refused here before any cgroup
file is written, naming the flag.
"""

from __future__ import annotations

from mrun.errors import InvalidSpec
from mrun.units import decimal, go_int, ram_in_bytes

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


def _number(signed: bool) -> Callable[[str, str], int]:
    def parse(flag: str, text: str) -> int:
        value = go_int(text) if signed else decimal(text, (1 << 64) - 1)
        if value is not None:
            return value
        digits = text[1:] if signed and text[:1] in "+-" else text
        if not (digits.isascii() and digits.isdigit()):
            kind = "an integer" if signed else "a non-negative integer"
            raise InvalidSpec(f"--{flag}: {text!r} is not {kind}")
        raise InvalidSpec(f"--{flag}: {text[:30]!r}{'...' if len(text) > 30 else ''} is out of range")

    return parse


_UNSIGNED, _SIGNED = _number(False), _number(True)

# flag -> (resources section, field, parser); the order is runc's.
FLAGS: dict[str, tuple[str, str, Callable[[str, str], Any]]] = {
    "cpuset-cpus": ("cpu", "cpus", lambda _flag, text: text),
    "cpuset-mems": ("cpu", "mems", lambda _flag, text: text),
    "cpu-idle": ("cpu", "idle", _SIGNED),
    "cpu-burst": ("cpu", "burst", _UNSIGNED),
    "cpu-period": ("cpu", "period", _UNSIGNED),
    "cpu-rt-period": ("cpu", "realtimePeriod", _UNSIGNED),
    "cpu-share": ("cpu", "shares", _UNSIGNED),
    "cpu-quota": ("cpu", "quota", _SIGNED),
    "cpu-rt-runtime": ("cpu", "realtimeRuntime", _SIGNED),
    "memory": ("memory", "limit", ram_in_bytes),
    "memory-swap": ("memory", "swap", ram_in_bytes),
    "memory-reservation": ("memory", "reservation", ram_in_bytes),
}
KERNEL_MEMORY = ("kernel-memory", "kernel-memory-tcp")
INTEL_RDT = ("l3-cache-schema", "mem-bw-schema")


def resources_from_flags(values: dict[str, str], blkio_weight: int, pids_limit: int,
                         warn: Callable[[str], None] | None) -> dict[str, Any]:
    """The flags given (``values``: flag -> text, "" when absent) as linux.resources. As with
    runc, 0 leaves the blkio weight and the pids limit alone; kernel memory is ignored with a
    warning (runc 1.2: the kernel deprecated it); Intel RDT is refused, as mrun has none."""
    for flag in INTEL_RDT:
        if values.get(flag):
            raise InvalidSpec(f"--{flag}: mrun does not support Intel RDT")
    if any(values.get(flag) for flag in KERNEL_MEMORY) and warn is not None:
        warn("kernel memory settings are ignored (--kernel-memory, --kernel-memory-tcp)")
    res: dict[str, Any] = {}
    for flag, (section, field, parse) in FLAGS.items():
        text = values.get(flag) or ""
        if text:
            res.setdefault(section, {})[field] = parse(flag, text)
    if (res.get("memory") or {}).get("limit") == -1 and "swap" not in res["memory"]:
        res["memory"]["swap"] = -1  # unlimited memory with a swap limit left below it is refused
    if blkio_weight:
        if not 0 < blkio_weight < 1 << 16:  # what the kernel takes is its to say (BFQ: 1 to 1000)
            raise InvalidSpec(f"--blkio-weight: {blkio_weight} is not a weight")
        res["blockIO"] = {"weight": blkio_weight}
    if pids_limit:
        res["pids"] = {"limit": pids_limit}
    return res

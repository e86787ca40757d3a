"""Capability sets: names to bits, and applying bounding/effective/permitted/inheritable/ambient."""

from __future__ import annotations

import sys

from mrun.errors import InvalidSpec
from mrun.kernel import syscalls as sc
from mrun.kernel.capnames import BITS, NAMES
from mrun.kernel.proc import status_field

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def last_cap() -> int:
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except OSError:
        return len(NAMES) - 1


def current_permitted() -> int:
    permitted = status_field("CapPrm")
    return int(permitted, 16) if permitted else 0


def to_mask(names: list[str] | None, unknown: list[str]) -> int:
    """The names' bits; a name this kernel table does not know goes to ``unknown``."""
    mask = 0
    for name in names or []:
        if name in BITS:
            mask |= 1 << BITS[name]
        elif name not in unknown:
            unknown.append(name)
    return mask


class CapPlan:
    """Masks computed on the host (where errors can still be reported), applied in the sandbox."""

    def __init__(self, caps: dict[str, Any] | None, field: str = "process.capabilities") -> None:
        caps = caps or {}
        self.present, self.field = caps is not None, field
        usable = current_permitted() & ((1 << (last_cap() + 1)) - 1)
        self.masks = {}
        dropped, unknown = 0, []
        for name in ("bounding", "effective", "permitted", "inheritable", "ambient"):
            mask = to_mask(caps.get(name), unknown)
            dropped |= mask & ~usable
            self.masks[name] = mask & usable
        if unknown:  # the runtime-spec (1.1): logged as a warning, the container not failed; runc's too
            names = ", ".join(repr(name)[:80] for name in unknown)  # quoted: a config's text, newlines and all
            print(f"mrun: warning: {field}: unknown capabilities, left out: {names}", file=sys.stderr)
        if dropped:
            missing = [n for n, b in BITS.items() if dropped >> b & 1]
            print(
                f"mrun: warning: capabilities not available to mrun here, left out: {', '.join(missing)}",
                file=sys.stderr,
            )
        # capset(2) refuses an effective capability outside the permitted set (EPERM): refused
        # here, naming it, where runc's process fails its capset ("operation not permitted")
        unpermitted = self.masks["effective"] & ~self.masks["permitted"]
        if unpermitted:
            names = sorted({n for n, b in BITS.items() if unpermitted >> b & 1 and n.startswith("CAP_")})
            raise InvalidSpec(f"{field}.effective: {', '.join(names)} not in {field}.permitted: the kernel takes "
                              "no effective capability that is not permitted")
        # The kernel raises an ambient capability only when it is both permitted and inheritable.
        # `runc spec` lists ambient without inheritable; runc warns and carries on, and so do we
        # (on the host, at create, rather than failing in the container after start).
        unraisable = self.masks["ambient"] & ~(self.masks["permitted"] & self.masks["inheritable"])
        if unraisable:
            names = [n for n, b in BITS.items() if unraisable >> b & 1 and n.startswith("CAP_")]
            print(
                f"mrun: warning: {field}.ambient: {', '.join(sorted(set(names)))} not both permitted and "
                "inheritable, so the kernel cannot raise it: left out",
                file=sys.stderr,
            )
            self.masks["ambient"] &= ~unraisable

    def drop_bounding(self) -> None:
        keep = self.masks["bounding"]
        for bit in range(last_cap() + 1):
            if not keep >> bit & 1:
                try:
                    sc.prctl(sc.PR_CAPBSET_DROP, bit)
                except OSError:
                    pass  # already absent from the bounding set

    def apply(self) -> None:
        m = self.masks
        try:
            sc.capset(m["effective"], m["permitted"], m["inheritable"])
        except OSError as e:  # an inheritable one outside the bounding set, say
            raise OSError(f"{self.field}: the kernel refuses these sets (capset: {e.strerror})") from None
        sc.prctl(sc.PR_CAP_AMBIENT, sc.PR_CAP_AMBIENT_CLEAR_ALL)
        for bit in range(last_cap() + 1):
            if m["ambient"] >> bit & 1:
                sc.prctl(sc.PR_CAP_AMBIENT, sc.PR_CAP_AMBIENT_RAISE, bit)

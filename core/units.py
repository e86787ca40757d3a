"""Numbers, sizes and durations as docker's and runc's command lines write them (Go's Atoi,
go-units' RAMInBytes, time.ParseDuration)."""

from __future__ import annotations

from mrun.errors import InvalidSpec

INT64_MAX = 2**63 - 1  # Go's int64: docker parses flags, durations and image numbers into it


def decimal(text: str, most: int = INT64_MAX) -> int | None:
    """The number ``text`` writes in ASCII digits (Go's Atoi, unsigned), if it is at most ``most``;
    None for anything else. Not ``str.isdigit()`` then ``int()``: isdigit takes "²", which int()
    refuses, and "৯", which int() reads as 9; and int() refuses more than 4300 digits. Past
    twenty digits (as many as 2**64 has) a number is refused, leading zeros or not."""
    if not (text.isascii() and text.isdigit()) or len(text) > 20:
        return None
    number = int(text)
    return number if number <= most else None


def go_int(text: str) -> int | None:
    """Go's strconv.Atoi on a 64-bit host (runc's and docker's integer flags): an optional sign,
    then ASCII digits, within int64; None for anything else. Python's int() also takes "৯", "1_0"
    and spaces around."""
    sign, digits = (text[:1], text[1:]) if text[:1] in ("+", "-") else ("", text)
    number = decimal(digits, INT64_MAX + (sign == "-"))
    return None if number is None else -number if sign == "-" else number


_SIZE_UNITS = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def ram_in_bytes(flag: str, text: str) -> int:
    """go-units' RAMInBytes (``<number>[ ][kmgtp][i][b]``, case-insensitive), or -1 (unlimited)."""
    if text == "-1":
        return -1
    rest = text
    for suffixes in ("bB", "iI"):
        if rest[-1:] and rest[-1] in suffixes:
            rest = rest[:-1]
    factor = 1
    unit = rest[-1:]
    if unit.isascii() and unit.lower() in _SIZE_UNITS:  # (str.lower reads the Kelvin sign as k)
        factor, rest = _SIZE_UNITS[unit.lower()], rest[:-1]
    rest = rest.removesuffix(" ")
    whole, dot, fraction = rest.partition(".")
    if not (whole.isascii() and whole.isdigit()) or (dot and not (fraction.isascii() and fraction.isdigit())):
        raise InvalidSpec(f"--{flag}: invalid size {text!r} (a number of bytes, or with k, m, g, t or p)")
    number = float(rest) * factor  # (400 digits are inf here, which int() cannot take)
    if number >= 1 << 63:
        raise InvalidSpec(f"--{flag}: {text[:40]!r} is too large")
    return int(number)


# Go's limit, in seconds: a duration is an int64 of nanoseconds (about 292 years); past it (400
# digits made float's inf, which int() cannot take) Go says invalid, and so does go_duration
MAX_DURATION = ((1 << 63) - 1) / 1e9
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def go_duration(text: str) -> float | None:
    """Go's time.ParseDuration (``1h30m``, ``500ms``, ``0``) in seconds, None if ``text`` is none."""
    if text == "0":
        return 0.0
    total, rest = 0.0, text
    while rest:
        digits = len(rest) - len(rest.lstrip("0123456789."))
        number, rest = rest[:digits], rest[digits:]
        unit = next((u for u in ("ns", "us", "µs", "ms", "h", "m", "s") if rest.startswith(u)), None)
        if not number or number.count(".") > 1 or number == "." or unit is None:
            return None
        total, rest = total + float(number) * _DURATION_UNITS[unit], rest[len(unit):]
    return total if text and total <= MAX_DURATION else None

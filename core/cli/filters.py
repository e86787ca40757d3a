"""The filters docker's listing and prune verbs share: label=KEY[=VALUE], label!=..., and the
times (--since, --until, until=) given as a date, a Unix time or a duration before now."""

from __future__ import annotations

from mrun.cli.common import filter_pairs
from mrun.errors import InvalidSpec

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable


def labelled(labels: dict[str, str], wanted: str) -> bool:
    """docker's label filter: ``wanted`` is KEY (the label is there) or KEY=VALUE (with that value)."""
    name, eq, expected = wanted.partition("=")
    return name in labels and (not eq or labels[name] == expected)


def log_time(flag: str, text: str, now_ns: int) -> int:
    """docker's --since/--until value in ns since the epoch: an RFC 3339 time (a date alone, or
    no zone: the local time), a Unix time (1700000000.5), or a Go duration before now (10m, 1h30m)."""
    import re

    from mrun.units import go_duration

    ago = go_duration(text) if text != "0" else None  # "0" is a Unix time here, as docker reads it
    if ago is not None:
        return now_ns - int(ago * 1e9)
    if re.fullmatch(r"[0-9]{1,20}(\.[0-9]{1,9})?", text):  # (\d takes "৯", and 4300 digits are int()'s most)
        whole, _, fraction = text.partition(".")
        return int(whole) * 1_000_000_000 + int((fraction + "000000000")[:9])
    from datetime import datetime

    # the fraction apart: through a float, a nanosecond time came back up to 256 ns off, and a
    # line's own time given back as --since could leave that line out
    parts = re.fullmatch(r"([0-9]{4}-[0-9]{2}-[0-9]{2}(?:[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2})?)?)(?:\.([0-9]{1,9}))?"
                         r"(Z|[+-][0-9]{2}:?[0-9]{2})?", text)
    try:
        if parts is None:
            raise ValueError(text)
        zone = "+00:00" if parts[3] == "Z" else parts[3] or ""
        seconds = int(datetime.fromisoformat(parts[1] + zone).timestamp())  # whole seconds: exact
    except ValueError:
        raise InvalidSpec(f"{flag} {text[:60]!r}: a time (2026-01-02T15:04:05Z), a Unix time, or a duration (10m)") \
            from None
    return seconds * 1_000_000_000 + int(((parts[2] or "") + "000000000")[:9])


def labels_pass(own: dict[str, str], labels: list[str], not_labels: list[str]) -> bool:
    """A prune filter's label=KEY[=VALUE] (each must match) and label!=KEY[=VALUE] (none may)."""
    return all(labelled(own, v) for v in labels) and not any(labelled(own, v) for v in not_labels)


def prune_filter(filters: list[str], what: str) -> Callable[[dict[str, str], str], bool]:
    """docker's ``container prune --filter`` and ``image prune --filter``: label=KEY[=VALUE] (each
    must match), label!=KEY[=VALUE] (none may), until=TIME (made before it; a time, a Unix time or
    a duration before now). Any other key is refused: a filter passed over would remove what it
    was there to keep. -> chosen(labels, created: RFC 3339)."""
    import time

    labels: list[str] = []
    not_labels: list[str] = []
    until = 0
    for text, key, value in filter_pairs(filters, ("label", "label!", "until"),
                                         f"{what} prune takes label=KEY[=VALUE], label!=KEY[=VALUE] or until=TIME"):
        if key == "until":
            until = log_time(f"--filter {text!r}:", value, time.time_ns())
        else:
            (labels if key == "label" else not_labels).append(value)

    def chosen(own: dict[str, str], created: str) -> bool:
        if not labels_pass(own, labels, not_labels):
            return False
        if until:
            try:
                return log_time("created", created, 0) < until
            except InvalidSpec:
                return False  # no time it was made: not shown to be before
        return True

    return chosen

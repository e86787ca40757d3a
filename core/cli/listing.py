"""docker's ``--format`` for a listing (``ps``, ``images``, ``volume ls``, ``network ls``):
``table`` and ``json`` are each verb's own; anything else is a Go template rendered once per row
(``{{.Names}}``), and ``table TEMPLATE`` adds a header line and aligns the columns, as docker's
tabwriter does. ``\\t`` and ``\\n`` written in the template are a tab and a newline, as docker
reads them. The template language is ``cli.template``'s (Go's text/template): what it does not
know is refused in one line, never printed wrong. Also docker's way of saying how long ago (``3 minutes``)."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# docker's formatter: tabwriter.NewWriter(out, 10, 1, 3, ' ', 0)
_MIN_WIDTH, _PADDING = 10, 3


def filters_and_format(given: tuple[str, ...] | list[str], fmt: str) -> tuple[list[str], str]:
    """docker's ``-f`` is ``--filter``; mrun's (as runc's ``ps -f json ID``) was ``--format``: a
    value of ``-f`` that is a template, ``json`` or ``table`` is still read as the format."""
    filters = []
    for text in given:
        if "{{" in text or text in ("json", "table") or text.startswith(("table ", "table\t")):
            fmt = text
        else:
            filters.append(text)
    return filters, fmt


def inspect_format(verb: str, given: tuple[str, ...] | list[str], fmt: str) -> str:
    """An inspect's format: docker's ``-f`` there is ``--format`` (a listing's is ``--filter``,
    as mrun's verbs share the flag); "" for mrun's own JSON document."""
    left, fmt = filters_and_format(given, fmt)
    if left:
        from mrun.errors import InvalidSpec

        raise InvalidSpec(f"{verb}: -f {left[0]!r}: a Go template ({{{{.Name}}}}) or json")
    return "" if fmt in ("table", "json", "") else fmt


def formatted(fmt: str, rows: list[dict[str, Any]], headers: dict[str, str]) -> list[str]:
    """The lines docker prints for ``--format fmt``: each row through the template, after a header
    line when it begins with ``table``. ``headers``: every field the verb offers, with its column
    title; a template naming another is refused, rows or none."""
    from mrun.cli.template import Row, Template, header_label  # json: not on the verbs' path beside

    if fmt == "json":  # docker's --format json (23.0): each row as {{json .}}, a line each
        fmt = "{{json .}}"
    table = fmt.startswith(("table ", "table\t"))
    template = Template((fmt[len("table"):] if table else fmt).strip(" ").replace("\\t", "\t").replace("\\n", "\n"))
    # its fields are known ones, checked before anything prints; docker's rows with Labels have Label "KEY"
    template.check_fields(set(headers) | ({"Label"} if "Labels" in headers else set()))
    lines = [template.render(row) for row in rows]
    return _aligned([template.render(Row(headers, {"Label": header_label})), *lines]) if table else lines


def _aligned(lines: list[str]) -> list[str]:
    """tabwriter's columns: every tab-ended cell padded to its column's widest plus three, ten at
    least; a line's last cell is as it is."""
    rows = [line.split("\t") for line in "\n".join(lines).split("\n")]
    widths: list[int] = []
    for cells in rows:
        for i, cell in enumerate(cells[:-1]):
            need = max(_MIN_WIDTH, len(cell) + _PADDING)
            if i == len(widths):
                widths.append(need)
            else:
                widths[i] = max(widths[i], need)
    return ["".join(c.ljust(widths[i]) for i, c in enumerate(cells[:-1])) + cells[-1] for cells in rows]


def human_duration(seconds: float) -> str:
    """go-units' HumanDuration, which docker's ps and images print ("About a minute")."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = s // 60
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(seconds / 3600 + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600) // 24 // 365} years"


def human_size(size: float) -> str:
    """go-units' HumanSizeWithPrecision(size, 3) (powers of 1000): docker's image and I/O sizes."""
    return _custom_size(size, 1000, ("B", "kB", "MB", "GB", "TB", "PB", "EB"), 3)


def bytes_size(size: float) -> str:
    """go-units' BytesSize (four significant digits, powers of 1024): docker's memory figures."""
    return _custom_size(size, 1024, ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"), 4)


def _custom_size(size: float, base: int, units: tuple[str, ...], digits: int) -> str:
    i = 0
    while size >= base and i < len(units) - 1:
        size, i = size / base, i + 1
    return f"{size:.{digits}g}{units[i]}"


def epoch_of(rfc3339: str) -> float | None:
    """Seconds since the epoch of a time mrun wrote (``2026-12-01T12:51:12.123456789Z``)."""
    import calendar
    import time

    whole, _, fraction = rfc3339.rstrip("Z").partition(".")
    try:
        t = calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return None
    digits = "".join(ch for ch in fraction if ch in "0123456789")  # (isdigit takes "²", which int() refuses)
    return t + (int(digits) / 10 ** len(digits) if digits else 0.0)


def docker_time(rfc3339: str) -> str:
    """How docker prints a CreatedAt: ``2026-12-01 12:51:12 +0000 UTC``."""
    whole = rfc3339.partition(".")[0].rstrip("Z")
    return whole.replace("T", " ") + " +0000 UTC" if whole else ""

"""JSON for the hot path, straight on CPython's C accelerator ``_json``.

``import json`` costs ~18 ms on the test machines, almost all of it ``re`` (json.decoder and
json.encoder compile regexes at import), and mrun's lifecycle verbs are short-lived processes
that each read and write a state file. The C scanner and encoder need no regex. Where
``_json`` is missing (not CPython) this falls back to the json module.
"""

from __future__ import annotations

import errno
import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


try:
    import _json
except ImportError:  # pragma: no cover - other interpreters
    _json = None

_WS = " \t\n\r"


class _NoNumber(Exception):
    """A number JSON has not, or no double holds: (its text, why). Not a ValueError: the
    scanner's own error path (``_parse``) must not take it for one."""


MAX_DIGITS = 4300  # what int() reads (sys.get_int_max_str_digits' default); past it, a ValueError
_HUGE = float("inf")


def _int(text: str) -> int:
    if len(text) > MAX_DIGITS:
        raise _NoNumber(text, f"a number of {len(text)} digits, more than {MAX_DIGITS}")
    return int(text)


def _float(text: str) -> float:
    """Go's decoder (runc's, containerd's, docker's) refuses a number past a double's range: float()
    made it inf, which a duration, a timeout or a size then carried on into the code."""
    number = float(text)
    if number in (_HUGE, -_HUGE):
        raise _NoNumber(text, f"the number {text[:40]} is out of a double's range")
    return number


def _constant(text: str) -> float:
    """NaN, Infinity and -Infinity are Python's, not JSON's: Go's decoder refuses them."""
    raise _NoNumber(text, f"{text} is no JSON value")


class _Context:
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = staticmethod(_float)
    parse_int = staticmethod(_int)
    parse_constant = staticmethod(_constant)
    memo: dict[str, str] = {}


def _default(o: Any) -> Any:
    raise TypeError(f"Object of type {o.__class__.__name__} is not JSON serializable")


if _json is not None:
    _scan = _json.make_scanner(_Context())
    # (allow_nan off: what mrun writes, it and Go can read back; a NaN written is a ValueError there)
    _encode = _json.make_encoder({}, _default, _json.encode_basestring_ascii, None, ": ", ", ", False, False, False)


class DecodeError(ValueError):
    """Malformed JSON: ``msg`` with ``lineno`` and ``colno``, like json.JSONDecodeError."""

    def __init__(self, msg: str, doc: str, pos: int) -> None:
        self.msg, self.pos = msg, pos
        self.lineno = doc.count("\n", 0, pos) + 1
        self.colno = pos - doc.rfind("\n", 0, pos)
        super().__init__(f"{msg}: line {self.lineno} column {self.colno} (char {pos})")


def _skip(s: str, i: int) -> int:
    n = len(s)
    while i < n and s[i] in _WS:
        i += 1
    return i


def loads(s: str | bytes) -> Any:
    """The document ``s``, whose every string ``os.fsencode`` can give the kernel: bytes that are
    not UTF-8 are kept as those bytes (surrogateescape: "\\udcff" is how mrun writes them back),
    and a lone surrogate escape, which names no bytes, is U+FFFD as Go's decoder reads it."""
    if isinstance(s, bytes):
        s = s.decode("utf-8-sig", "surrogateescape")
    try:
        obj = _parse(s)
        # fewer brackets than the limit cannot nest past it: a document's depth is looked at
        # only where it could be too deep (two C-speed counts, ~1 us for a config.json)
        deep = s.count("[") + s.count("{") > MAX_DEPTH and _too_deep(obj)
    except RecursionError:
        deep = True
    if deep:
        raise DecodeError(f"arrays and objects nested more than {MAX_DEPTH} deep", s, _deepest(s))
    if "\\ud" in s or "\\uD" in s:  # only an escape makes a surrogate no bytes stand for
        obj = _named_bytes(obj)
    return obj


# Deeper than any config, image or record nests (10 levels at most): a document nested past it
# is refused, where everything reading it recursively (a pretty-printer, a copy, a check) would
# run out of Python's stack, an internal error. Go's decoder (runc's) refuses past 10000.
MAX_DEPTH = 128


def _too_deep(obj: Any) -> bool:
    stack = [(obj, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            value = value.values()
        elif not isinstance(value, list):
            continue
        if depth > MAX_DEPTH:
            return True
        stack += [(v, depth + 1) for v in value if isinstance(v, (dict, list))]
    return False


def _deepest(s: str) -> int:
    """Where ``s`` is nested deepest (an error's position: read only then)."""
    depth = most = at = 0
    quoted = escaped = False
    for i, c in enumerate(s):
        if quoted:
            escaped, quoted = (False, True) if escaped else (c == "\\", c != '"')
        elif c == '"':
            quoted = True
        elif c in "[{":
            depth += 1
            if depth > most:
                most, at = depth, i
        elif c in "]}":
            depth -= 1
    return at


def _named_bytes(obj: Any) -> Any:
    if isinstance(obj, str):
        try:
            obj.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:
            return "".join("\ufffd" if "\ud800" <= c <= "\udfff" and not "\udc80" <= c <= "\udcff" else c for c in obj)
        return obj
    if isinstance(obj, list):
        return [_named_bytes(v) for v in obj]
    if isinstance(obj, dict):
        return {_named_bytes(k): _named_bytes(v) for k, v in obj.items()}
    return obj


def _parse(s: str) -> Any:
    if _json is None:  # pragma: no cover
        import json

        return json.loads(s)
    i = _skip(s, 0)
    try:
        obj, end = _scan(s, i)
    except StopIteration as e:
        raise DecodeError("Expecting value", s, e.value)
    except _NoNumber as e:  # a number of 5,000 digits was int()'s ValueError: an internal error
        raise DecodeError(e.args[1], s, s.find(e.args[0]))
    except (ValueError, SystemError):
        # The C scanner builds its error from json.decoder, and only if that is already imported
        # (else: SystemError). Malformed input is rare: let the json module say what is wrong.
        import json

        try:
            json.loads(s)
        except json.JSONDecodeError as e:
            raise DecodeError(e.msg, s, e.pos)
        raise
    end = _skip(s, end)
    if end != len(s):
        raise DecodeError("Extra data", s, end)
    return obj


def dumps(obj: Any, indent: int | None = None) -> str:
    if _json is None:  # pragma: no cover
        import json

        return json.dumps(obj, indent=indent)
    if indent is None:
        return "".join(_encode(obj, 0))
    return _pretty(obj, indent, 0)


def _pretty(obj: Any, indent: int, level: int) -> str:
    pad, inner = " " * (indent * level), " " * (indent * (level + 1))
    if isinstance(obj, dict) and obj:
        items = (f"{inner}{dumps(str(k))}: {_pretty(v, indent, level + 1)}" for k, v in obj.items())
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    if isinstance(obj, (list, tuple)) and obj:
        return "[\n" + ",\n".join(inner + _pretty(v, indent, level + 1) for v in obj) + f"\n{pad}]"
    return dumps(obj)


def load_file(path: str) -> Any:
    with open(path, "rb") as f:
        return loads(f.read())


def load_object(path: str) -> dict[str, Any] | None:
    """A record mrun keeps beside a container (image.json, net.json, its bundle's config), read
    as input like any other: its JSON object, or None when it is missing, unreadable, cut short
    or not an object (damaged by hand or by the disk). A listing then shows the rest, never an
    internal error."""
    try:
        doc = load_file(path)
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def write_file(path: str, obj: Any, indent: int | None = None) -> None:
    """``obj`` as a new ``path``. A write that fails (a full disk: the error comes at close,
    naming no file) names the file: "run: No space left on device" said nothing of where."""
    try:
        with open(path, "w") as f:
            f.write(dumps(obj, indent))
    except OSError as e:
        if e.filename is None:  # errors.name_the_file's rule (a sibling at layer 0: not importable here)
            e.filename = path
        raise


def replace_file(path: str, obj: Any, indent: int | None = None, tmp: str = "", spare: str = "") -> None:
    """``obj`` as ``path``, whole or not at all: written beside it (``tmp``, by default
    ``.NAME.tmp``), then renamed over it. A write that fails (the disk is full: the error comes
    at close, naming no file) names the file and leaves no part of it behind. With ``spare``
    (room ``set_aside`` kept while there was some), a full disk still takes the file: it is
    written into that room, which is then renamed over it."""
    tmp = tmp or os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.tmp")
    text = dumps(obj, indent)
    try:
        with open(tmp, "w") as f:
            f.write(text)
    except OSError as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if e.filename is None:
            e.filename = path
        if not (spare and e.errno in (errno.ENOSPC, errno.EDQUOT) and _write_into(spare, text.encode())):
            raise
        os.rename(spare, path)
        return
    os.rename(tmp, path)


def set_aside(spare: str, size: int) -> None:
    """Room for a later ``replace_file(..., spare=spare)`` on a full disk, taken while the disk
    has it (blocks allocated, not just a length). Best effort: without it, that write fails."""
    try:
        fd = os.open(spare, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)  # as open(path, "w")
    except OSError:
        return
    try:
        if os.fstat(fd).st_size < size:
            os.posix_fallocate(fd, 0, size)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_into(spare: str, data: bytes) -> bool:
    """``data`` into the blocks ``spare`` holds (nothing new to allocate), cut to its length."""
    try:
        fd = os.open(spare, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        if os.fstat(fd).st_size < len(data):
            return False
        os.pwrite(fd, data, 0)
        os.ftruncate(fd, len(data))
        return True
    except OSError:
        return False
    finally:
        os.close(fd)

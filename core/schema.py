"""A tiny schema language for the JSON mrun reads from others (config.json, image index,
manifest and config): a type name, ``("list", item)``, ``("map", value)`` or ``{field: schema}``;
a field whose name ends in "!" is required. Every refusal names the field path of the first
problem (``process.user.uid: must be ...``), so bad input gets one clear line, never a traceback.

Numbers carry the width the kernel takes (as runc's Go types do), so 2**80 is refused instead of
wrapping to 0 in a cgroup file, and strings never hold a NUL byte.
"""

from __future__ import annotations

from mrun import jsonio
from mrun.errors import MrunError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

INT, UINT, STR, BOOL = "int", "uint", "str", "bool"
U32, MODE, OOM = "u32", "mode", "oom"
# A name in a vocabulary like an image's platform (linux, amd64, v8, 10.0.20348.2113): it is shown
# in refusals and listings, so a newline or a space in one would forge a line or a column.
WORD = "word"
# The kernel's dev_t (12 bits of major, 20 of minor): a larger number names no device, and
# mknod would truncate it into another device's (linux.devices, linux.resources.devices).
DEV_MAJOR_MAX, DEV_MINOR_MAX = (1 << 12) - 1, (1 << 20) - 1


def _is_word(v: Any) -> bool:
    return isinstance(v, str) and len(v) <= 128 and all(c.isascii() and (c.isalnum() or c in "._+-") for c in v)


def _int_in(lo: int, hi: int) -> Any:
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi


_TYPE_CHECKS = {
    STR: (lambda v: isinstance(v, str) and "\0" not in v, "a string without NUL bytes"),
    BOOL: (lambda v: isinstance(v, bool), "true or false"),
    WORD: (_is_word, "a word of at most 128 letters, digits, '.', '_', '+' or '-'"),
    INT: (_int_in(-(2**63), 2**63 - 1), "an integer that fits in 64 bits"),
    UINT: (_int_in(0, 2**64 - 1), "a non-negative integer that fits in 64 bits"),
    U32: (_int_in(0, 2**32 - 1), "a non-negative integer that fits in 32 bits"),
    MODE: (_int_in(0, 0o7777), "a file mode from 0 to 0o7777"),
    OOM: (_int_in(-1000, 1000), "an integer from -1000 to 1000"),
}


def check(value: Any, schema: Any, path: str, error: type[MrunError] = MrunError) -> None:
    """Raise ``error`` naming the first field of ``value`` that does not fit ``schema``. A field
    the schema knows that is null is absent, as Go's decoder (runc's, containerd's) leaves such a
    field unset: it is taken out of ``value``, so that a reader's ``get(key, default)`` has the
    default (``"major": null`` in linux.devices reached a comparison with None: an internal
    error, found by the fuzzer)."""
    if isinstance(schema, str):
        ok, what = _TYPE_CHECKS[schema]
        if not ok(value):
            raise error(f"{path}: must be {what}, got {jsonio.dumps(value)[:60]}")
    elif isinstance(schema, tuple):
        kind, item = schema
        if kind == "list":
            if not isinstance(value, list):
                raise error(f"{path}: must be an array")
            for i, v in enumerate(value):
                check(v, item, f"{path}[{i}]", error)
        else:
            if not isinstance(value, dict):
                raise error(f"{path}: must be an object")
            for k, v in value.items():
                if "\0" in k:
                    raise error(f"{path}: a key holds a NUL byte")
                check(v, item, f"{path}.{k}", error)
    else:
        if not isinstance(value, dict):
            raise error(f"{path}: must be an object")
        for field, sub in schema.items():
            key = field.rstrip("!")
            where = f"{path}.{key}" if path else key
            if key in value and value[key] is not None:
                check(value[key], sub, where, error)
            elif field.endswith("!"):
                raise error(f"{where}: missing (required)")
            else:
                value.pop(key, None)



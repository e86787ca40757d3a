"""Names for what mrun makes or removes out of the way: a directory being made before it takes
its name, one renamed away before it is removed. Such a name is a prefix of mrun's own and 16
random hex digits, and a sweep takes only that shape: in a root shared by mistake
(``--image-root /var/lib/docker``), a name someone else chose is never taken for a leftover."""

from __future__ import annotations

import os

_RANDOM_DIGITS = 16


def scratch_name(prefix: str) -> str:
    return prefix + os.urandom(_RANDOM_DIGITS // 2).hex()


def is_scratch(name: str, prefix: str) -> bool:
    """Whether ``name`` is one ``scratch_name(prefix)`` makes."""
    return prefixed_hex(name, prefix, _RANDOM_DIGITS)


def prefixed_hex(name: str, prefix: str, digits: int) -> bool:
    """Whether ``name`` is ``prefix`` and ``digits`` lowercase hex digits, the shape of every
    name mrun derives from a random number or a hash (a digest, a cache key)."""
    rest = name.removeprefix(prefix)
    return name.startswith(prefix) and len(rest) == digits and all(c in "0123456789abcdef" for c in rest)

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
    digits = name.removeprefix(prefix)
    return (name.startswith(prefix) and len(digits) == _RANDOM_DIGITS
            and all(c in "0123456789abcdef" for c in digits))

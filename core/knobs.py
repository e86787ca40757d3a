"""Numbers an operator or a test sets through mrun's environment (``MRUN_WARM_IDLE``,
``MRUN_SHIM_UNCALLED_EXIT``, ``MRUN_SPARE_IDLE``). Each is read by a long-lived process at its
start, where a value it cannot use would kill it: a typo there must mean the default, not a
template, shim daemon or fork helper that dies and takes every later call with it."""

from __future__ import annotations

import os


def seconds(name: str, default: float) -> float:
    """``$name`` as seconds to wait; ``default`` when unset, not a number, negative, nan or
    inf (which no timeout takes)."""
    try:
        value = float(os.environ.get(name) or default)
    except ValueError:
        return default
    return value if 0 <= value < 1e6 else default


def positive(name: str, default: float) -> float:
    """``$name`` as an amount above zero (seconds of CPU, MiB); ``default`` when unset, not a
    number, not above zero, nan or inf."""
    try:
        value = float(os.environ.get(name) or default)
    except ValueError:
        return default
    return value if 0 < value < 1e12 else default

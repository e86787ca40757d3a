"""Numbers an operator or a test sets through mrun's environment (``MRUN_WARM_IDLE``,
``MRUN_SHIM_UNCALLED_EXIT``, ``MRUN_SPARE_IDLE``). Each is read by a long-lived process at its
start, where a value it cannot use would kill it: a typo there must mean the default, not a
template, shim daemon or fork helper that dies and takes every later call with it."""

from __future__ import annotations

import os


def seconds(name: str, default: float) -> float:
    """``$name`` as seconds to wait; ``default`` when unset, not a number, negative, nan or
    inf (which no timeout takes)."""
    value = _number(name, default)
    return value if 0 <= value < 1e6 else default


def positive(name: str, default: float) -> float:
    """``$name`` as an amount above zero (seconds of CPU, MiB); ``default`` when unset, not a
    number, not above zero, nan or inf."""
    value = _number(name, default)
    return value if 0 < value < 1e12 else default


def _number(name: str, default: float) -> float:
    """``$name`` as a float (nan compares false with every bound); ``default`` when unset or not a number."""
    try:
        return float(os.environ.get(name) or default)
    except ValueError:
        return default

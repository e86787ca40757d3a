"""Numbers and directories an operator or a test sets through mrun's environment.

Numbers (``MRUN_WARM_IDLE``, ``MRUN_SHIM_UNCALLED_EXIT``, ``MRUN_SPARE_IDLE``) are read by a
long-lived process at its start, where a value it cannot use would kill it: a typo there must
mean the default, not a template, shim daemon or fork helper that dies and takes every later call
with it. Directories are read by processes that work in / (a template, a supervisor, a shim
daemon): a relative one means the caller's directory, made absolute where the caller is."""

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


# Directories mrun's own environment names; relative ones are the caller's (absolute_directories)
DIRECTORIES = ("MRUN_WARM_DIR", "MRUN_NETWORK_ROOT", "MRUN_CACHE_DIR", "MRUN_SHIM_ROOT")


def absolute_directories() -> None:
    """Each of ``DIRECTORIES`` set relative made absolute in this process's environment, once, in
    the caller's working directory (as runc makes its --root absolute): what this process starts
    or forks, working in /, then reads the same directory."""
    for name in DIRECTORIES:
        value = os.environ.get(name)
        if value and not os.path.isabs(value):
            os.environ[name] = os.path.abspath(value)


def cache_home() -> str:
    """$XDG_CACHE_HOME, else the home's .cache. A relative XDG_CACHE_HOME is ignored, as the XDG
    spec asks, and an empty or relative HOME means the home passwd names (Python reads an empty
    HOME as /: mrun's caches went to /.cache)."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    if os.path.isabs(xdg):
        return xdg
    home = os.environ.get("HOME", "")
    if not os.path.isabs(home):
        import pwd

        try:
            home = pwd.getpwuid(os.geteuid()).pw_dir
        except KeyError:  # a uid passwd does not name
            home = "/"
    return os.path.join(home, ".cache")


def _number(name: str, default: float) -> float:
    """``$name`` as a float (nan compares false with every bound); ``default`` when unset or not a number."""
    try:
        return float(os.environ.get(name) or default)
    except ValueError:
        return default

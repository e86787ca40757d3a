"""What is installed, as a cache key: the interpreter and the modification times of the
``sys.path`` directories (installing or removing a distribution touches its directory). Keys
the entry-point cache (plugins.manager) and the shim's ``-info`` answer (shims.info)."""

from __future__ import annotations

import os
import sys


def installed_key() -> list[object]:
    key: list[object] = [sys.version]
    # sys.path[0] is the script's directory or the cwd (unless -P): not where distributions live,
    # and its mtime changes all the time.
    for p in sys.path if sys.flags.safe_path else sys.path[1:]:
        try:
            key.append([p, os.stat(p or ".").st_mtime_ns])
        except OSError:
            key.append([p, 0])
    return key

"""Ending a short-lived mrun process without the interpreter's teardown.

Every `mrun` verb that containerd's runc shim or podman runs, and both actions of the shim
binary, is a process of its own on somebody's critical path. Python's finalization (collecting
every module, running finalizers) takes 1.5-3.5 ms here and has nothing left to do once the
command has returned: files are written inside ``with`` blocks, and the work is done. Only
standard streams may still hold bytes, and a thread that is not a daemon would be waited for:
with one alive, the ordinary exit is taken.
"""

from __future__ import annotations

import os
import sys


def finish(code: object) -> None:
    """Flush the standard streams and end the process with ``code``. Never returns."""
    if not isinstance(code, int):
        sys.exit(code)  # what sys.exit makes of anything else (None: 0, text: printed, 1)
    threading = sys.modules.get("threading")
    if threading is not None and any(t.is_alive() and not t.daemon and t is not threading.main_thread()
                                     for t in threading.enumerate()):
        sys.exit(code)  # the interpreter waits for it, as it would have
    flush_standard_streams()
    os._exit(code)


def flush_standard_streams() -> None:
    """What sys.stdout and sys.stderr hold, written; a closed one (its reader gone) is passed over."""
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            pass

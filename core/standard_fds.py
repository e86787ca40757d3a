"""/dev/null for a standard descriptor the caller closed (`mrun run -d ... <&- >&- 2>&-`, as a
daemon may call it), as bin/launcher.c does before Python starts and Go's runtime does for runc.

Otherwise the first files mrun opens take the numbers 0, 1 and 2: a message meant for stderr is
written into a container's state file, a container is handed a file of mrun's as its stdio, and
Python, which found the descriptor closed, has no ``sys.stdout`` (``print`` to a closed stderr
goes to stdout)."""

from __future__ import annotations

import os
import sys


def reopen_closed() -> None:
    for fd, name, mode in ((0, "stdin", "r"), (1, "stdout", "w"), (2, "stderr", "w")):
        try:
            os.fstat(fd)
            continue
        except OSError:
            os.open("/dev/null", os.O_RDWR)  # the lowest free number: this one
        if getattr(sys, name) is None:
            setattr(sys, name, open(fd, mode, closefd=False))  # noqa: SIM115 - the process's own, for its life

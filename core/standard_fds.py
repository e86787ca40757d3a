"""Standard descriptors as Python needs them, whatever the caller left.

A closed one gets /dev/null (`mrun run -d ... <&- >&- 2>&-`, as a daemon may call it), as
bin/launcher.c does before Python starts and Go's runtime does for runc. Otherwise the first
files mrun opens take the numbers 0, 1 and 2: a message meant for stderr is written into a
container's state file, a container is handed a file of mrun's as its stdio, and Python, which
found the descriptor closed, has no ``sys.stdout`` (``print`` to a closed stderr goes to stdout).

One opened for reading only (containerd's runc shim hands a pod sandbox's create /dev/null so,
as all three) keeps its number, the container's to inherit as runc leaves it; Python's stream
on it writes to /dev/null instead. Its writes failed (EBADF), and the first message, a warning
or an error, ended mrun before its --log record: containerd could say only "unable to retrieve
OCI runtime error"."""

from __future__ import annotations

import fcntl
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
    for fd, name in ((1, "stdout"), (2, "stderr")):
        if not writable(fd):
            setattr(sys, name, open(os.devnull, "w"))  # noqa: SIM115 - likewise


def writable(fd: int) -> bool:
    try:
        return fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE != os.O_RDONLY
    except OSError:
        return False

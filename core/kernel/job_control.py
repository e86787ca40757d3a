"""Job control of a terminal read for another process: the caller's, by a process outside its
session (the warm template's child, a cold run's child: each has a session of its own).

The kernel stops a job in its terminal's background that reads the terminal (SIGTTIN) or changes
its modes (SIGTTOU), until its shell brings it to the foreground (`fg`): `mrun run -ti IMAGE sh &`
done in the caller itself was stopped at once, as docker's client is. A process outside the
terminal's session is not checked: the relay made the shell's terminal raw and read the keys
meant for the shell. So the relay asks first, on its caller's behalf (``wait_for_foreground``),
and stops the caller's job as the kernel would have.
"""

from __future__ import annotations

import os
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

STOP_SEEN_WITHIN = 1.0  # seconds: a job not stopped by then is one the kernel does not stop (orphaned)


def in_background(caller: int, terminal: int) -> int:
    """The caller's process group if the caller's job is in the background of ``terminal``, its
    controlling terminal; 0 if it is in the foreground, or the terminal is not its controlling
    one (no job control applies), or the caller is gone."""
    try:
        with open(f"/proc/{caller}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()  # state ppid pgrp session tty_nr tpgid ...
        rdev = os.fstat(terminal).st_rdev
    except OSError:
        return 0
    pgrp, tty_nr, foreground = int(fields[2]), int(fields[4]), int(fields[5])
    major, minor = (tty_nr >> 8) & 0xFFF, (tty_nr & 0xFF) | ((tty_nr >> 12) & 0xFFF00)
    if (major, minor) != (os.major(rdev), os.minor(rdev)) or foreground in (-1, pgrp):
        return 0
    return pgrp


def wait_for_foreground(caller: int, terminal: int, signum: int, give_up: Callable[[], bool]) -> bool:
    """Until the caller's job is in the foreground of ``terminal`` (if it is its controlling
    one), having stopped the job with ``signum`` as the kernel stops one that reads its terminal
    (SIGTTIN) or changes its modes (SIGTTOU). -> False where the kernel would have refused the
    read or change (EIO): the caller ignores or blocks SIGTTIN (SIGTTOU: the change is let
    through, as the kernel lets it), or its job is one the kernel does not stop (orphaned: no
    shell is left to bring it back). ``give_up()``: checked while waiting; True ends it, False."""
    import signal

    signalled = was_stopped = False
    since = 0.0
    while pgrp := in_background(caller, terminal):
        if give_up():
            return False
        if _stopped(caller):
            was_stopped = True
        elif not signalled or was_stopped:  # not stopped yet, or stopped and since let go on in the background (`bg`)
            if _ignored_or_blocked(caller, signum):
                return signum == signal.SIGTTOU
            try:
                os.killpg(pgrp, signum)
            except OSError:
                return False
            signalled, was_stopped, since = True, False, time.monotonic()
        elif time.monotonic() - since > STOP_SEEN_WITHIN:  # signalled, never stopped: the kernel's EIO
            return False
        time.sleep(0.05)
    return True


def _ignored_or_blocked(pid: int, signum: int) -> bool:
    bit = 1 << (signum - 1)
    try:
        with open(f"/proc/{pid}/status") as f:
            masks = {k: int(v, 16) for k, _, v in (line.partition(":\t") for line in f) if k in ("SigBlk", "SigIgn")}
    except (OSError, ValueError):
        return False
    return any(mask & bit for mask in masks.values())


def _stopped(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] in (b"T", b"t")
    except OSError:
        return False

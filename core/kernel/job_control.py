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

from mrun.kernel import proc

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

STOP_SEEN_WITHIN = 1.0  # seconds: a job not stopped by then is one the kernel does not stop (orphaned)


def in_background(caller: int, terminal: int) -> bool:
    """Whether the caller's job is in the background of ``terminal``, its controlling terminal
    (not when the terminal is not its controlling one: no job control applies; nor once the
    caller is gone)."""
    return _background_job(caller, terminal) is not None


def _background_job(caller: int, terminal: int) -> tuple[int, bool] | None:
    """(its process group, whether the caller is stopped) where ``in_background``, else None."""
    fields = proc.stat_fields(caller)  # state ppid pgrp session tty_nr tpgid ...
    try:
        rdev = os.fstat(terminal).st_rdev
    except OSError:
        return None
    if fields is None:
        return None
    pgrp, tty_nr, foreground = int(fields[2]), int(fields[4]), int(fields[5])
    major, minor = (tty_nr >> 8) & 0xFFF, (tty_nr & 0xFF) | ((tty_nr >> 12) & 0xFFF00)
    if (major, minor) != (os.major(rdev), os.minor(rdev)) or foreground in (-1, pgrp):
        return None
    return pgrp, fields[0] in (b"T", b"t")


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
    while job := _background_job(caller, terminal):
        pgrp, stopped = job
        if give_up():
            return False
        if stopped:
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
        return any(int(proc.status_field(mask, pid) or "0", 16) & bit for mask in ("SigBlk", "SigIgn"))
    except (OSError, ValueError):
        return False

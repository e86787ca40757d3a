"""An flock waited for no longer than a bound: a holder stuck for good (a start stuck in a hook,
an export writing into a pipe nobody reads, a template that never answers) must not hold its
waiter for good too."""

from __future__ import annotations

import fcntl
import time


def taken_within(fd: int, kind: int, seconds: float, poll: float) -> bool:
    """``fd``'s flock of ``kind`` (LOCK_SH, LOCK_EX) taken, looking again every ``poll`` seconds
    for ``seconds`` at most. -> whether it was."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            fcntl.flock(fd, kind | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() > deadline:
                return False
            time.sleep(poll)

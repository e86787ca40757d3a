"""A process that does its caller's work learns of its caller's end: the warm template's child
(its caller's connection) and a cold foreground run's child (a socket pair with its caller).

The caller killed (SIGKILL, which it cannot pass on) must stop the work as it would have stopped
the caller's own, until the work asks to see its end whatever becomes of the caller (a
foreground run whose container runs: its exit code is noted, as docker's daemon notes it).
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

F_SETSIG = 10  # fcntl.h; Python's fcntl module does not name these
F_SETOWN_EX, F_OWNER_TID = 15, 0

HANGUP_SIGNAL = 34 + 6  # SIGRTMIN+6: what the kernel sends us on an event of the caller's connection


def die_with_caller(reply: int, outlive: Callable[[], bool]) -> None:
    """The kernel signals us on every event of the caller's connection ``reply`` (O_ASYNC), and
    we SIGKILL ourselves when it is the caller's end closing, unless ``outlive()`` says the work
    goes on to its end. Not SIGKILL from the kernel itself, as first built: that fired on any
    event, and a suite's tracing caught one with POLL_IN (data, not a hang-up) killing a child
    that then left its live caller "ended without an exit status"."""
    import fcntl
    import signal
    import struct

    armed = os.getpid()

    def on_event(signum: int, _frame: Any) -> None:
        if os.getpid() != armed:  # a process of ours forked since (inherited): the default, as before
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
        elif caller_gone(reply):
            if outlive():  # the work goes on to its end: no more events of a closed connection
                disarm(reply)
            else:
                os.kill(armed, signal.SIGKILL)

    signal.signal(HANGUP_SIGNAL, on_event)
    # To our main thread (its tid is our pid): a signal another thread took would not interrupt
    # the main thread's wait, and Python runs handlers only there.
    fcntl.fcntl(reply, F_SETOWN_EX, struct.pack("ii", F_OWNER_TID, armed))
    fcntl.fcntl(reply, F_SETSIG, HANGUP_SIGNAL)
    fcntl.fcntl(reply, fcntl.F_SETFL, fcntl.fcntl(reply, fcntl.F_GETFL) | os.O_ASYNC)
    if caller_gone(reply):  # it went before we armed: no event comes for that
        os.kill(os.getpid(), signal.SIGKILL)


def disarm(reply: int) -> None:
    """No more signals for events of the caller's connection (die_with_caller's): the caller's
    leaving kills us no longer."""
    import fcntl

    fcntl.fcntl(reply, fcntl.F_SETFL, fcntl.fcntl(reply, fcntl.F_GETFL) & ~os.O_ASYNC)


def caller_gone(reply: int) -> bool:
    """Whether the caller's end of the connection has closed (hung up), as opposed to readable."""
    import select

    poller = select.poll()
    poller.register(reply, select.POLLRDHUP)
    try:
        return any(events & (select.POLLHUP | select.POLLRDHUP | select.POLLERR) for _fd, events in poller.poll(0))
    except OSError:
        return False

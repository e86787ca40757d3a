"""A cold foreground `mrun run IMAGE` done by a child of ours, as the warm template's child does it.

Done in the calling process itself, the container's init was that process's child: killed
(`timeout -s KILL`, the OOM killer) while the container ran, nothing was left to reap the init,
and its exit code was lost (`wait` could only say so; `inspect` said 0). Now the caller only
passes its signals on and returns the child's status; the child has a session of its own (the
terminal's signals are the caller's to pass on, once), dies with its caller until the container
runs, and from then on sees the container's end whatever becomes of the caller: it notes the exit
code and removes a --rm container, as the warm template's child does. With -t the child relays
the terminal too, and lets it go once the caller is gone (console.TerminalProxy.let_go).
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable


def run_in_child(work: Callable[[], int]) -> int:
    """``work()`` in a forked child; -> its status, or this process ends as the child did (of a
    signal it was passed)."""
    import _signal as signal  # the C module: `signal` would import enum for the same calls
    import _socket

    import mrun.warm.client as warm
    from mrun.exiting import finish, flush_standard_streams
    from mrun.kernel.hangup import die_with_caller

    relayed = warm.forwarded_signals()
    ours, theirs = (end.detach() for end in _socket.socketpair(_socket.AF_UNIX,
                                                                 _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC))
    flush_standard_streams()  # or the child would write them again
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, relayed)  # until the relay is in place: none is lost
    caller = os.getpid()
    pid = os.fork()
    if pid == 0:  # never returns: whatever fails here, the caller must not go on as if it were the work
        code = 255
        try:
            os.close(ours)
            warm.caller = caller
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)  # pending signals stay the caller's
            os.setsid()
            die_with_caller(theirs, warm.outliving)
            warm.release = lambda status: _release(theirs, status)
            code = work()
        except KeyboardInterrupt:  # ^C before the work had its own handling
            code = 130
        except BaseException as e:  # noqa: BLE001 - one line, as every failure
            from mrun.errors import one_line

            print(f"mrun: run: {e.__class__.__name__}: {one_line(str(e))}", file=sys.stderr)
        finally:
            finish(code)
    os.close(theirs)
    try:
        return _relay_until_it_ends(pid, blocked, ours)
    finally:
        os.close(ours)


def _release(theirs: int, status: int) -> None:
    """The caller goes now with ``status`` while the work goes on (a `run -it` detached by its
    keys): our leaving-with-the-caller disarmed first, or its exit would end us."""
    from mrun.exiting import flush_standard_streams
    from mrun.kernel.hangup import disarm

    flush_standard_streams()
    disarm(theirs)
    os.write(theirs, b"%d\n" % status)


def _relay_until_it_ends(pid: int, blocked: set[int], ours: int) -> int:
    """The child's exit status, or the one it releases us with (``_release``) while it goes on."""
    import _signal as signal
    import select

    import mrun.warm.client as warm

    pidfd = os.pidfd_open(pid)
    previous = warm.relay_signals(pidfd)
    signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
    try:
        if ours in select.select([pidfd, ours], [], [])[0]:
            said = os.read(ours, 16)
            if said.strip().isdigit():  # released: it goes on without us
                return int(said)
        _, status = os.waitpid(pid, 0)  # else it ends (its end of the pair closed with it)
    finally:
        warm.restore_signals(previous)
        os.close(pidfd)
    if os.WIFSIGNALED(status):  # it died of a signal (ours, passed on): so do we, as the work would have made us
        warm.die_of(os.WTERMSIG(status))
        return 128 + os.WTERMSIG(status)
    return os.waitstatus_to_exitcode(status)

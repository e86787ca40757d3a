"""The log of a container `mrun run` runs in the foreground and keeps (no ``--rm``), as docker's.

docker's daemon reads every container's output: a foreground one's goes to the client and to its
log, so `docker logs NAME` shows what it printed. Ours went straight to the caller's descriptors
and `mrun logs` had nothing. Here a tee is forked before the container is made: the container
writes to the relay's pipes (``log_relay.Relay``, as a detached container's supervisor reads
them), and the tee copies each piece to the caller's stdout or stderr and to the log, until
both pipes end. As docker's, the container's stdout is then a pipe, not the caller's terminal.
Not with ``-t``: the terminal's relay (sandbox/console), which reads the caller's window, logs
what it shows (``Relay.note``, no pipes); nor with ``--rm`` (nothing is kept to read a log
from, and that path stays direct).
"""

from __future__ import annotations

import _signal  # the C module: `signal` imports enum
import os

from mrun.exiting import flush_standard_streams

HIDE = _signal.SIGUSR1  # to the tee: show no more (Tee.let_go)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from mrun.images.log_relay import Relay


class Tee:
    """The tee's pid, and the caller's stdout and stderr while the pipes stand in for them."""

    def __init__(self, pid: int, saved: tuple[int, int]) -> None:
        self.pid, self.saved = pid, saved

    def let_go(self) -> None:
        """The caller has gone ahead (`run --sig-proxy=false` given a signal): the tee shows no
        more, but goes on reading (and logging), and nothing of ours holds the caller's stdout
        or stderr (``end`` then gives back /dev/null)."""
        try:
            os.kill(self.pid, HIDE)
        except ProcessLookupError:
            pass
        null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        for fd in self.saved:
            os.dup2(null, fd, inheritable=False)
        os.close(null)

    def end(self) -> None:
        """Our stdout and stderr back; the tee's end awaited (the container's output all out
        before our caller's prompt comes back)."""
        flush_standard_streams()
        os.dup2(self.saved[0], 1)
        os.dup2(self.saved[1], 2)
        os.close(self.saved[0])
        os.close(self.saved[1])
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:  # reaped by the run's wait for any child (it ended early)
            pass


def start(bundle: str, shown: tuple[int, ...] = (1, 2), keep: bool = True) -> Tee:
    """The tee forked, and our stdout and stderr (what the container inherits) its pipes.
    ``shown``: the streams copied to our caller (`run -a`: the others are logged only);
    ``keep``: False where no log is kept (--rm, --log-driver none), the tee then only choosing."""
    from mrun.images.log_relay import Relay
    from mrun.images.supervisor import log_options

    relay = Relay(bundle, **{**log_options(bundle), **({} if keep else {"keep": False})}, echo=shown)
    flush_standard_streams()
    unheld = _signal.pthread_sigmask(_signal.SIG_BLOCK, {HIDE})  # until the tee's handler is in place
    pid = os.fork()
    if pid == 0:
        _serve(relay, unheld)
    _signal.pthread_sigmask(_signal.SIG_SETMASK, unheld)
    writers = relay.writers.values()
    for fd in relay.fds():  # the pipes' read ends and the log are the tee's
        if fd not in writers:
            os.close(fd)
    saved = (os.dup(1), os.dup(2))
    for fd in saved:
        os.set_inheritable(fd, False)
    os.dup2(relay.writers[1], 1)
    os.dup2(relay.writers[2], 2)
    for fd in relay.writers.values():
        os.close(fd)
    return Tee(pid, saved)


def _serve(relay: Relay, unheld: set[int]) -> None:
    """In the tee: until both pipes end. A ^C at the terminal, a hang-up or a SIGTERM goes to the
    container (its runner passes them on); the tee ends with the container's output. HIDE: what
    it echoes goes to /dev/null from then on. Never returns."""
    import select
    import signal

    from mrun.images.supervisor import close_all_but

    def hide(_signum: int, _frame: object) -> None:
        null = os.open(os.devnull, os.O_WRONLY)
        for fd in (1, 2):
            os.dup2(null, fd)
        os.close(null)

    try:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
            signal.signal(sig, signal.SIG_IGN)
        signal.signal(HIDE, hide)
        signal.pthread_sigmask(signal.SIG_SETMASK, unheld)
        close_all_but(relay.fds())  # the runner's run.lock, a template's socket: not the tee's
        for fd in relay.writers.values():  # the container's ends: their closing is the tee's EOF
            os.close(fd)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        while relay.streams:
            for fd in select.select(list(relay.streams), [], [])[0]:
                if not relay.pump(fd) and fd in relay.streams:
                    os.close(fd)
                    del relay.streams[fd]
    finally:
        os._exit(0)


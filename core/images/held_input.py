"""A detached container's terminal and standard input, held by its supervisor while it runs
(docker's `run -dt`, `run -dit`, `run -di`, `create -it` then `start`; and the second start of
a container first run in the foreground with -t or -i).

docker keeps such a container's input open with nobody writing, so its shell waits for a line
instead of reading an end and leaving, and it takes a terminal's output into the log. For each
run of the container the supervisor holds:

* with ``process.terminal``: the pty's master, sent by the init over a console socket of ours
  (mrun.sandbox.console) before its create returns, and read into the log as its stdout;
* with -i (``annotations.STDIN``) and no terminal: the write end of a pipe that is its stdin.

With -i it also listens on ``ATTACH_SOCKET`` in the bundle (made mode 0600 by root; the peer's
uid is checked too) and hands whoever connects that master or write end (SCM_RIGHTS) to type
into: `mrun attach`, `mrun start -ai` (mrun.cli.attach). Their output comes from the log, as
every attach's does, so the log stays its one reader and record.
"""

from __future__ import annotations

import os
import socket
import stat

from mrun import annotations as ann
from mrun import jsonio

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

ATTACH_SOCKET = "attach.sock"
TERMINAL, PIPE, NOT_RUNNING = b"t", b"p", b"-"  # what an attacher is told with the descriptor (or without one)


def wanted(config: dict[str, Any]) -> tuple[bool, bool]:
    """(a terminal, an open stdin) of a bundle's config: what its supervisor holds."""
    process = config.get("process") if isinstance(config.get("process"), dict) else {}
    annotations = config.get("annotations") if isinstance(config.get("annotations"), dict) else {}
    return process.get("terminal") is True, annotations.get(ann.STDIN) == "open"


class HeldInput:
    def __init__(self, bundle: str, terminal: bool, open_stdin: bool) -> None:
        self.bundle, self.terminal, self.open_stdin = bundle, terminal, open_stdin
        self.master = -1  # this run's pty master
        self.writer = -1  # this run's stdin pipe's write end
        self.listener: socket.socket | None = None
        self._console: socket.socket | None = None  # our end, while the container is made

    @classmethod
    def of(cls, bundle: str) -> HeldInput | None:
        """What the bundle's container needs held, if anything (most need nothing)."""
        config = jsonio.load_object(os.path.join(bundle, "config.json")) or {}
        terminal, open_stdin = wanted(config)
        return cls(bundle, terminal, open_stdin) if terminal or open_stdin else None

    def listen(self) -> None:
        """The attach socket, once per supervisor, with -i. Through the bundle's descriptor: a
        socket's path is limited to 107 bytes, an image root's is not. A socket left there is a
        dead supervisor's (one supervisor per container at a time: supervisor.start_again)."""
        if not self.open_stdin:
            return
        dir_fd = os.open(self.bundle, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            path = _remove_socket(dir_fd)
            from mrun.kernel.fdpass import bind_private

            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK)
            bind_private(sock, path)
            sock.listen(8)
        finally:
            os.close(dir_fd)
        self.listener = sock

    def prepare(self, opts: Any) -> None:
        """Before each create: a console socket for the pty's master, or the stdin pipe's read
        end on our fd 0, which the container inherits (the supervisor's own is /dev/null again
        once it is made)."""
        self.end_run()
        if self.terminal:
            self._console, opts.console = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        elif self.open_stdin:
            r, self.writer = os.pipe2(os.O_CLOEXEC)
            os.dup2(r, 0)
            os.close(r)

    def made(self, opts: Any) -> None:
        """After each create (made or not): the master it sent taken, our console ends closed."""
        if opts.console is not None:
            opts.console.close()
            opts.console = None
        ours, self._console = self._console, None
        if ours is None:
            return
        from mrun.sandbox.console import receive_fd

        try:
            ours.setblocking(False)  # sent before the create returned; a failed one sent nothing
            self.master = receive_fd(ours)
            os.set_blocking(self.master, False)
        except OSError:
            self.master = -1
        finally:
            ours.close()

    def fds(self) -> list[int]:
        """What the supervisor keeps open for it."""
        return [fd for fd in (self.master, self.writer, self.listener.fileno() if self.listener else -1) if fd >= 0]

    def readable(self) -> list[int]:
        """What the supervisor's wait selects on for it: the pty's output, attachers."""
        return [fd for fd in (self.master, self.listener.fileno() if self.listener else -1) if fd >= 0]

    def pump(self, fd: int, relay: Any) -> None:
        if fd == self.master:
            self._read_terminal(relay)
        elif self.listener is not None and fd == self.listener.fileno():
            self.hand_over()

    def _read_terminal(self, relay: Any) -> None:
        """What the pty has now, into the log; its end (EIO: every holder of the container's
        side has closed it) closes our master."""
        while self.master >= 0:
            try:
                data = os.read(self.master, 1 << 16)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                os.close(self.master)
                self.master = -1
                return
            relay.note(1, data)

    def fileno(self) -> int:
        """The listener's (selected on by a foreground run's relay once detached)."""
        return self.listener.fileno() if self.listener is not None else -1

    def hand_over(self) -> None:
        """One attacher: this run's master or write end, to root alone."""
        from mrun.kernel import fdpass

        try:
            conn, _ = self.listener.accept()  # type: ignore[union-attr]
        except OSError:  # gone before we took it
            return
        with conn:
            try:
                if fdpass.peer_uid(conn) != os.geteuid():
                    return
                target = self.master if self.terminal else self.writer
                if target < 0:
                    conn.send(NOT_RUNNING)
                    return
                conn.sendmsg([TERMINAL if self.terminal else PIPE], fdpass.rights([target]))
            except OSError:  # the attacher went meanwhile
                pass

    def stop_listening(self) -> None:
        """No more attachers: the listener closed and its socket gone from the bundle (a
        foreground run's, whose container has ended; a supervisor's goes with the process)."""
        if self.listener is None:
            return
        self.listener.close()
        self.listener = None
        try:
            dir_fd = os.open(self.bundle, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            return
        try:
            _remove_socket(dir_fd)
        except OSError:
            pass
        finally:
            os.close(dir_fd)

    def end_run(self, relay: Any = None) -> None:
        """The run has ended: the rest of its terminal's output logged, this run's ends closed."""
        if relay is not None and self.master >= 0:
            self._read_terminal(relay)
        for fd in (self.master, self.writer):
            if fd >= 0:
                os.close(fd)
        self.master = self.writer = -1
        if self._console is not None:  # a restart that failed before its create
            self._console.close()
            self._console = None


def _remove_socket(dir_fd: int) -> str:
    """The bundle's attach socket (the bundle held by ``dir_fd``) unlinked if one is there, never
    a file of another kind. -> its path through the descriptor."""
    path = f"/proc/self/fd/{dir_fd}/{ATTACH_SOCKET}"
    try:
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            os.unlink(path)
    except FileNotFoundError:
        pass
    return path


def connect(bundle: str) -> tuple[int, bool] | None:
    """An attacher's side: the running container's input from its supervisor -> (the descriptor
    to write into, whether it is a terminal's master), or None where nobody holds one (the
    container has ended, or its supervisor has; it was run by an mrun without this)."""
    from mrun.kernel import fdpass

    try:
        dir_fd = os.open(bundle, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        sock.settimeout(10)  # a supervisor stopped (SIGSTOP) never answers
        sock.connect(f"/proc/self/fd/{dir_fd}/{ATTACH_SOCKET}")
        if fdpass.peer_uid(sock) != os.geteuid():
            return None
        kind, ancdata, _, _ = sock.recvmsg(1, fdpass.space(1))
        fds = fdpass.received(ancdata)
        if kind in (TERMINAL, PIPE) and len(fds) == 1:
            os.set_inheritable(fds[0], False)
            return fds[0], kind == TERMINAL
        for fd in fds:
            os.close(fd)
        return None
    except OSError:  # no socket (no supervisor listens), refused, timed out
        return None
    finally:
        sock.close()
        os.close(dir_fd)

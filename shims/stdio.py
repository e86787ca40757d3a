"""A task's stdio between containerd's fifos and the container.

stdout and stderr need no copying: the container writes straight into containerd's fifos, of
which the shim holds a read end it never reads (``held_reader``), as containerd's runc shim does.
stdin goes through a pipe the shim feeds (``StdinPump``), because CloseIO must be able to give
the process EOF while someone (CRI keeps the fifo open for later attaches) still holds the
fifo's write end. A terminal (``TtyRelay``) is a pty made inside the container: the shim holds
its master and copies fifo -> master and master -> fifo, and ResizePty sets its window size.
"""

from __future__ import annotations

import errno
import fcntl
import os
import select
import stat
import struct
import termios
import threading
import time

CHUNK = 65536
READER_WAIT = 10.0  # seconds a fifo's write end waits for its reader to open it


def open_stdio(path: str, write: bool) -> int:
    """A fifo path (containerd's default), ``file://`` (append) or nothing (/dev/null); ``binary://``
    is binary_log's."""
    if not path:
        return os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    if path.startswith("file://"):  # its directory made, as containerd's runc shim makes it
        os.makedirs(os.path.dirname(path[7:]) or "/", 0o755, exist_ok=True)
        return os.open(path[7:], os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
    path = path.removeprefix("fifo://")
    fifo = _fifo_itself(path)
    try:
        return _opened_fifo(fifo, path, write)
    finally:
        os.close(fifo)


def _fifo_itself(path: str) -> int:
    """An O_PATH descriptor of the fifo at ``path``, opened through it once it is known to be one.
    A regular file there was opened as the fifo would have been: the program's output overwrote
    it from its first byte, or it became the program's stdin (/etc/shadow); a device's open is
    not even side-effect free. O_PATH opens nothing but the name."""
    fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    mode = os.fstat(fd).st_mode
    if not stat.S_ISFIFO(mode):
        os.close(fd)
        from mrun.kernel.replacing import node_named

        kind = ("a regular file" if stat.S_ISREG(mode) else "a directory" if stat.S_ISDIR(mode)
                else node_named(mode) or "not a fifo")
        raise OSError(errno.EINVAL, f"{kind}, not a fifo (a task's stdio is a fifo, or file:// for a log file)")
    return fd


def _opened_fifo(fifo: int, name: str, write: bool) -> int:
    """The fifo (an O_PATH descriptor; ``name``, its path, for what is said) opened for reading
    or writing, through /proc/self/fd: the very fifo checked, whatever its path names by now."""
    path = f"/proc/self/fd/{fifo}"
    flags = (os.O_WRONLY if write else os.O_RDONLY) | os.O_NONBLOCK | os.O_CLOEXEC
    # Non-blocking, so a client that never opens its end cannot hang the shim. A read end opens
    # at once; a write end fails (ENXIO) until a reader has the fifo open. containerd's clients
    # open their read ends from a goroutine that may not have run yet (ctr under load did not,
    # an exec's Start failed): as containerd's runc shim blocks for the reader, we wait for it.
    deadline, pause = None, 0.0005
    while True:
        try:
            fd = os.open(path, flags)
            break
        except OSError as e:
            if e.errno != errno.ENXIO:
                raise
            now = time.monotonic()
            deadline = deadline or now + READER_WAIT
            if now >= deadline:
                raise OSError(e.errno, f"no reader opened it within {READER_WAIT:g} s", name) from None
            time.sleep(pause)
            pause = min(pause * 2, 0.02)
    os.set_blocking(fd, True)
    return fd


def held_reader(fd: int) -> int:
    """A read end of the output fifo ``fd`` writes to (-1 for a file or /dev/null), for the shim
    to hold as long as the process may write. A client that goes (ctr killed; containerd
    restarting, under CRI the reader of every container's log) then leaves the writers a fifo to
    fill and wait on until a reader comes back, as under containerd's runc shim; without it their
    writes failed (EPIPE) and a program that does not catch SIGPIPE died of it; a terminal's
    relay (TtyRelay) lost the rest of its output. Reopened through the descriptor: the fifo the
    process writes to, whatever its path names by now."""
    try:
        if stat.S_ISFIFO(os.fstat(fd).st_mode):
            return os.open(f"/proc/self/fd/{fd}", os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        pass  # out of descriptors: the process runs as before, its writers with no fallback reader
    return -1


def _wait(fd: int, events: int, stop_fd: int) -> bool:
    """Block until fd is ready (or hung up); False when stop_fd was written to. poll, not select:
    a shim with many tasks has fds above select's 1024."""
    poller = select.poll()
    poller.register(fd, events)
    poller.register(stop_fd, select.POLLIN)
    while True:
        ready = dict(poller.poll())
        if stop_fd in ready:
            return False
        if fd in ready:
            return True


def _write_all(fd: int, data: bytes, stop_fd: int) -> bool:
    """Write everything to a non-blocking fd unless asked to stop; False when the reader is gone or we stopped."""
    view = memoryview(data)
    while view:
        if not _wait(fd, select.POLLOUT, stop_fd):
            return False
        try:
            view = view[os.write(fd, view) :]
        except BlockingIOError:
            continue
        except OSError:
            return False
    return True


class StdinPump:
    """The stdin fifo -> a pipe whose read end is the process's fd 0."""

    def __init__(self, path: str) -> None:
        self.fifo = open_stdio(path, False)
        self.reader, self.writer = os.pipe2(os.O_CLOEXEC)
        os.set_blocking(self.writer, False)
        self._stop_r, self._stop_w = os.pipe2(os.O_CLOEXEC)
        self._thread = threading.Thread(target=self._run, name="stdin", daemon=True)
        self._started = False

    def start(self) -> None:
        """Once the process holds the read end: ours is closed then, so EOF can reach it."""
        os.close(self.reader)
        self._started = True
        self._thread.start()

    def _run(self) -> None:
        try:
            while True:
                if not _wait(self.fifo, select.POLLIN, self._stop_r):
                    break
                data = os.read(self.fifo, CHUNK)
                if not data or not _write_all(self.writer, data, self._stop_r):
                    break  # every writer of the fifo closed it, or the process closed its stdin
        finally:
            for fd in (self.fifo, self.writer, self._stop_r):
                os.close(fd)

    def close(self) -> None:
        """CloseIO: the process reads EOF now, whatever is still unread in the fifo."""
        if self._stop_w < 0:
            return
        if not self._started:
            for fd in (self.fifo, self.writer, self.reader, self._stop_r):
                os.close(fd)  # the process never got its end (a failed create)
        else:
            try:
                os.write(self._stop_w, b"x")
            except OSError:
                pass  # the pump has ended already
            self._thread.join(5)
        os.close(self._stop_w)
        self._stop_w = -1


class TtyRelay:
    """A pty master <-> containerd's stdin and stdout fifos (a terminal has no separate stderr)."""

    def __init__(self, master: int, stdin: int, stdout: int) -> None:
        """``stdin``, ``stdout``: the fifos opened (-1 for none), which the relay closes."""
        self.master = master
        self.lock = threading.Lock()
        self.stdin, self.stdout = stdin, stdout
        self._stop_r, self._stop_w = os.pipe2(os.O_CLOEXEC)
        self.drained = threading.Event()
        self._released = self._input_done = False  # under the lock: who closes the stdin fifo
        threading.Thread(target=self._output, name="tty-out", daemon=True).start()
        if self.stdin >= 0:
            threading.Thread(target=self._input, name="tty-in", daemon=True).start()

    def _output(self) -> None:
        """Until the last slave fd closes (the master then reads EIO); a gone reader only discards."""
        try:
            while True:
                try:
                    data = os.read(self.master, CHUNK)
                except OSError as e:
                    if e.errno == errno.EINTR:
                        continue
                    break
                if not data:
                    break
                if self.stdout >= 0:
                    try:
                        os.write(self.stdout, data)
                    except OSError:
                        os.close(self.stdout)
                        self.stdout = -1
        finally:
            if self.stdout >= 0:
                os.close(self.stdout)
            with self.lock:
                os.close(self.master)
                self.master = -1
            if self.stdin >= 0:
                try:
                    os.write(self._stop_w, b"x")  # ends the input side too
                except OSError:
                    pass  # it has ended already
            else:
                os.close(self._stop_r)
            self.drained.set()

    def _input(self) -> None:
        try:
            while True:
                if not _wait(self.stdin, select.POLLIN, self._stop_r):
                    break
                data = os.read(self.stdin, CHUNK)
                if not data:
                    break
                with self.lock:
                    if self.master < 0:
                        break
                    master = os.dup(self.master)  # outlives a concurrent close by _output
                try:
                    os.write(master, data)
                except OSError:
                    break
                finally:
                    os.close(master)
        finally:
            os.close(self._stop_r)
            with self.lock:
                self._input_done = True
                if self._released:
                    os.close(self.stdin)
                    self.stdin = -1
                # else the fifo stays open, unread, until the process is deleted (release), as
                # under containerd's runc shim: a client's input that comes after the process
                # ended (a terminal's ^D) must not fail with EPIPE, on which CRI's exec stops
                # copying the terminal's output too, and `kubectl exec -it` lost what it printed

    def resize(self, width: int, height: int) -> None:
        with self.lock:
            if self.master >= 0:
                fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))

    def close_stdin(self) -> None:
        """CloseIO: stop copying input and type end-of-file, which is what EOF is on a terminal."""
        if self.stdin >= 0:
            try:
                os.write(self._stop_w, b"x")
            except OSError:
                pass
        with self.lock:
            if self.master >= 0:
                eof = termios.tcgetattr(self.master)[6][termios.VEOF]
                os.write(self.master, eof if isinstance(eof, bytes) else bytes([eof]))

    def release(self) -> None:
        """Delete: the process is gone and its output drained (or given up on)."""
        if self._stop_w >= 0:
            os.close(self._stop_w)
            self._stop_w = -1
        with self.lock:
            self._released = True
            if self._input_done and self.stdin >= 0:
                os.close(self.stdin)
                self.stdin = -1

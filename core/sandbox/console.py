"""Terminals: a pty made inside the container, its master sent over ``--console-socket``."""

from __future__ import annotations

import _signal  # the C module: `signal` would import enum for two numbers
import errno
import fcntl
import os
import select
import socket
import stat
import struct
import sys
import termios
import threading
import time

from mrun.errors import MrunError
from mrun.kernel import fdpass, inroot
from mrun.kernel import syscalls as sc

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


def connect(path: str) -> socket.socket:
    """Connect on the host, before pivot_root hides the socket's path."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError as e:
        sock.close()
        raise OSError(e.errno, f"--console-socket {path}: {e.strerror}")
    return sock


def make_controlling_pty(sock: socket.socket, size: dict[str, int] | None, console: bool = False) -> None:
    """Open a pty in the container's devpts, send the master, make the slave our stdio; with
    ``console`` (a terminal init with a root of its own), the slave is /dev/console too, as runc
    makes it (what getty, init systems and `ls /dev/console` expect)."""
    master, slave = os.openpty()
    if size and size.get("height") and size.get("width"):
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", size["height"], size["width"], 0, 0))
    if console:
        _bind_console(slave)
    name = os.ttyname(slave)
    sock.sendmsg([name.encode()], fdpass.rights([master]))
    sock.close()
    os.close(master)
    fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
    for fd in (0, 1, 2):
        os.dup2(slave, fd)
    if slave > 2:
        os.close(slave)


def _bind_console(slave: int) -> None:
    """/dev/console resolved inside our root (made an empty file if missing) and the pty bound
    onto that very handle: a /dev/console that is a link (a /dev bound from a shared directory)
    never leads the bind elsewhere (runc's CVE-2025-52565)."""
    target = inroot.open_in("/", "/dev/console", create="file")
    try:
        mode = os.fstat(target).st_mode
        if not (stat.S_ISREG(mode) or stat.S_ISCHR(mode)):
            raise MrunError("process.terminal: /dev/console in the container is neither a file nor a device")
        sc.mount(inroot.fd_path(slave), inroot.fd_path(target), None, sc.MS_BIND)
    except OSError as e:
        raise MrunError(f"process.terminal: cannot make /dev/console the container's terminal: {e.strerror}")
    finally:
        os.close(target)


def receive_fd(sock: socket.socket) -> int:
    """The other side: take the pty master a container sent."""
    _, ancdata, _, _ = sock.recvmsg(4096, fdpass.space(1))
    fds = fdpass.received(ancdata)
    if not fds:
        raise OSError("no file descriptor received on the console socket")
    return fds[0]


class Escape:
    """docker's detach keys in what is typed: the bytes of a partial match held back until the
    next one shows whether it is the sequence, then given back if it is not (moby's EscapeProxy)."""

    def __init__(self, keys: bytes) -> None:
        self.keys, self.held = keys, b""

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """-> (what goes on to the container, whether the keys were typed)."""
        if not self.held and self.keys[:1] not in data:
            return data, False
        out = bytearray()
        for i in range(len(data)):
            self.held += data[i : i + 1]
            while self.held and not self.keys.startswith(self.held):
                out += self.held[:1]
                self.held = self.held[1:]
            if self.held == self.keys:
                self.held = b""
                return bytes(out), True
        return bytes(out), False


def parse_detach_keys(text: str, flag: str = "--detach-keys") -> bytes:
    """docker's form: keys separated by commas, each a character or ``ctrl-X`` (X one of a-z, @,
    [, \\, ], ^, _). "" is docker's default, ctrl-p,ctrl-q."""
    from mrun.errors import InvalidSpec

    keys = bytearray()
    for key in (text or "ctrl-p,ctrl-q").split(","):
        if len(key) == 1 and key.isascii():
            keys.append(ord(key))
        elif len(key) == 6 and key.lower().startswith("ctrl-") and (key[5].isascii() and key[5].isalpha()
                                                                     or key[5] in "@[\\]^_"):
            keys.append(ord(key[5].upper()) - 64)
        else:
            raise InvalidSpec(f"{flag} {text!r}: {key!r} is not a key (a character, or ctrl- and one of a-z, @, [, "
                              "\\, ], ^, _)")
    return bytes(keys)


JOB_LOOK = 0.5  # seconds: how often a relay for its caller looks whether the caller's job is in the background
TIOCGPTPEER = 0x5441  # a descriptor of a pty master's other side (Linux 4.13), whatever devpts it is in
INPUT_HELD = 1 << 20  # bytes of our stdin held for a container not reading it, before we stop reading more


class TerminalProxy:
    """Foreground ``run`` of a terminal container: our stdio <-> the container's pty master.

    With a terminal on our stdin it goes raw (keys, ^C included, reach the container's pty)
    and the window size follows ours; both are restored at the end. ``let_go``: the caller was
    killed while the container runs on; its terminal is its shell's again, and the container's
    output goes on into the log alone."""

    def __init__(self, master: int, log: Callable[[bytes], None] | None = None, caller: int = 0,
                 output: bool = True, raw: bool = True, detach_keys: bytes = b"",
                 on_detach: Callable[[int], Any] | None = None, detach_said: bytes = b"") -> None:
        """``log``: given each piece of the container's output too (`mrun run -t` keeping its log).
        ``caller``: the process whose terminal this is, where it is not us (a child doing its work,
        in a session of its own): the terminal's job control is done for it (kernel.job_control).
        An attach's input alone (mrun.cli.attach): ``output`` False (the container's comes from its
        log), ``master`` may be a pipe's write end (``raw`` False: no terminal of the container's),
        and ``detach_keys`` typed end the relay with ``detached`` set, as docker's ctrl-p ctrl-q.
        ``on_detach``: a foreground `run -it`'s detach instead. The keys typed (or ``detach``
        asked), our terminal is given back (as ``let_go`` does), then ``on_detach(master, status)``
        lets the caller go with ``status`` and returns a listener (its ``fileno()``; ``hand_over()``
        once readable: mrun.images.held_input) the relay serves, or None; the container's output
        goes on into the log, as a detached one's.
        ``detach_said``: written on our terminal once its mode is given back (`exec -it`'s words)."""
        self.master, self.log, self.caller = master, log, caller
        self.output, self.raw_wanted = output, raw
        self.escape = Escape(detach_keys) if detach_keys else None
        self.on_detach, self.detach_said = on_detach, detach_said
        self.listener: Any = None  # after a run's detach: attachers, handed the master
        self.detached = False
        self.detach_status: int | None = None  # ``detach`` asked, with the caller's status
        self.settled = threading.Event()  # our terminal's mode is set (raw, or left as it was)
        self.saved: list | None = None
        self.raw: list | None = None  # the mode we gave the terminal
        self.leaving = self.ending = False
        self.wake_up, self.waker = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self.thread = threading.Thread(target=self._copy, daemon=True)

    def begin(self) -> None:
        self.resize()
        self.thread.start()

    def _make_raw(self) -> None:
        import tty

        if self.leaving or not os.isatty(0) or not self._in_foreground(_signal.SIGTTOU):
            return
        while True:
            try:
                saved = termios.tcgetattr(0)
                tty.setraw(0, termios.TCSANOW)  # not its default TCSAFLUSH: what was typed ahead is the container's
                self.saved, self.raw = saved, termios.tcgetattr(0)
                return
            except termios.error as e:
                # EINTR: stopped in the background (SIGTTOU) and let go on by `fg`, whose SIGCONT
                # we pass on (a handler: the change is not restarted); anything else (EIO: an
                # orphaned job), the relay goes on with the terminal's mode as it is
                if e.args[0] != errno.EINTR:
                    return

    def _in_foreground(self, signum: int) -> bool:
        """Whether we may read the terminal (SIGTTIN) or change its mode (SIGTTOU) as our
        caller's job, once it is in the foreground (waiting until then, the job stopped)."""
        if not self.caller:  # we are the caller: the kernel sees to it
            return True
        from mrun.kernel.job_control import wait_for_foreground

        return wait_for_foreground(self.caller, 0, signum, lambda: self.leaving or self.ending)

    def let_go(self) -> None:
        """The caller is gone (`timeout -s KILL`, the OOM killer) and the container runs on, as
        docker's does when its client is killed: the relay stops reading and writing the
        caller's terminal and gives it its mode back (where docker's killed client leaves it
        raw). Safe in a signal handler: the relay's thread does it."""
        self.leaving = True
        try:
            os.write(self.waker, b"!")
        except OSError:  # already woken
            pass

    def detach(self, status: int) -> None:
        """`run -t --sig-proxy=false` given a signal: the caller goes with ``status``, as its
        detach keys would let it go (its terminal given back first; the container's output into
        its log alone; attachers served). Safe in a signal handler: the relay's thread does it."""
        self.detach_status = status
        try:
            os.write(self.waker, b"!")
        except OSError:  # already woken
            pass

    def resize(self) -> bool:
        """Our window's size onto the container's pty (whose kernel signals SIGWINCH if it
        changed). -> True: the pty took it."""
        if self.leaving:  # the caller's window is no longer the container's
            return True
        for ours in (0, 1):  # stdin's; stdout's where stdin is none (docker's -t without -i)
            try:
                size = fcntl.ioctl(ours, termios.TIOCGWINSZ, b"\0" * 8)
            except OSError:
                continue
            try:
                fcntl.ioctl(self.master, termios.TIOCSWINSZ, size)
                return True
            except OSError:
                return False
        return False

    def _copy(self) -> None:
        """Both ways at once: what we read of our stdin waits here (up to INPUT_HELD) while the
        container is not reading it, and its output is still copied meanwhile. Written to the
        pty as it came, a paste or a file larger than the pty takes at once held the relay in
        that write while the container, echoing or printing, waited for us to read its output:
        neither ever went on."""
        if self.raw_wanted:
            self._make_raw()
        self.settled.set()
        os.set_blocking(self.master, False)  # ours alone; never our stdio, which others share
        inputs = [self.master, self.wake_up, 0] if self.output else [self.wake_up, 0]
        typed = bytearray()  # read from our stdin, not yet taken by the pty
        ended_a_line = True  # what we read of our stdin so far ends with a newline (or is nothing)
        shown = True  # the container's output goes to our stdout
        looked = time.monotonic()  # when the caller's job was last seen in the foreground
        while True:
            if self.ending and not self.output:  # an attach's input: nothing of the container's to drain
                return
            if self.detach_status is not None and not self.detached and self.on_detach is not None:
                self._hand_over(inputs, self.detach_status)
                shown = False
                continue
            if self.leaving and shown:
                shown = False
                if 0 in inputs:
                    inputs.remove(0)
                self._give_back()
            if self.caller and 0 in inputs and time.monotonic() - looked > JOB_LOOK:
                # As a read of the terminal would be stopped in the background (after `bg`)
                if not self._in_foreground(_signal.SIGTTIN):
                    inputs.remove(0)  # the kernel's EIO: no more input
                looked = time.monotonic()
                continue
            reading = [fd for fd in inputs if fd != 0 or len(typed) < INPUT_HELD]
            try:
                ready, writable, _ = select.select(reading, [self.master] if typed else [], [],
                                                   JOB_LOOK if self.caller and 0 in inputs else None)
            except (OSError, ValueError):
                return
            if writable:
                try:
                    del typed[:os.write(self.master, typed)]  # from the front: no copy of the rest
                except BlockingIOError:
                    pass
                except OSError:  # the container's side of its terminal is gone: its last output is still to be read
                    typed.clear()
                    if 0 in inputs:
                        inputs.remove(0)
            if self.master in ready:
                try:
                    data = os.read(self.master, 65536)
                except BlockingIOError:
                    data = None
                except OSError:  # EIO: every holder of the pty's other side is gone
                    return
                if data == b"":
                    return
                if data and shown:
                    try:
                        fdpass.write_all(1, data)  # a signal taken by this thread may cut a write short
                    except OSError:  # our terminal hung up: the container's output goes on, into its log
                        shown = False
                if data and self.log is not None:
                    try:
                        self.log(data)
                    except OSError:  # no room for the log: the terminal goes on without it
                        self.log = None
            if 0 in ready and self.caller and not self._in_foreground(_signal.SIGTTIN):
                inputs.remove(0)
            elif 0 in ready:
                looked = time.monotonic()
                try:
                    data = os.read(0, 65536)
                except OSError:  # EIO: our terminal hung up
                    data = b""
                if data and self.escape is not None:
                    data, self.detached = self.escape.feed(data)
                if self.detached:  # what came before the keys is still the container's
                    typed += data
                    try:
                        os.write(self.master, typed)
                    except OSError:
                        pass
                    if self.on_detach is None:
                        return
                    typed.clear()
                    self._hand_over(inputs, 0, self.detach_said)
                    shown = False
                    continue
                if data:
                    typed += data
                    ended_a_line = data.endswith(b"\n")
                else:
                    inputs.remove(0)  # our stdin ended; the container keeps its terminal
                    typed += self._end_of_input(ended_a_line)
            if self.wake_up in ready:
                try:
                    os.read(self.wake_up, 64)
                except OSError:
                    pass
            if self.listener is not None and self.listener.fileno() in ready:
                self.listener.hand_over()

    def _hand_over(self, inputs: list[int], status: int, said: bytes = b"") -> None:
        """A run's detach (its keys, or ``detach``): our terminal given back, ``said`` on it, and
        the caller let go with ``status`` (``on_detach``); from then on the relay serves
        attachers, the container's output into its log alone."""
        self.detached = self.leaving = True
        if 0 in inputs:
            inputs.remove(0)
        self._give_back(said)
        self.listener = self.on_detach(self.master, status)  # type: ignore[misc]
        if self.listener is not None:
            inputs.append(self.listener.fileno())

    def _end_of_input(self, ended_a_line: bool) -> bytes:
        """Our stdin, a pipe or a file (`mrun run -ti IMAGE cat < file`), ended: the container is
        told so as a user at its terminal would tell it, with the terminal's end-of-file
        character (twice after an unfinished line: the first ends the line), where the terminal
        is in canonical mode; a program that made it raw reads bytes, and gets none. Left out,
        `cat` never ended (podman's hangs so; docker's refuses -ti without a terminal). Not for
        a terminal of ours, whose end is a hang-up, nor /dev/null: docker's -t without -i gives
        the container a terminal nobody types into."""
        try:
            ours = os.fstat(0).st_mode
            if not (stat.S_ISFIFO(ours) or stat.S_ISREG(ours) or stat.S_ISSOCK(ours)):
                return b""
            peer = fcntl.ioctl(self.master, TIOCGPTPEER, os.O_RDONLY | os.O_NOCTTY | os.O_CLOEXEC)
        except OSError:
            return b""
        try:
            mode = termios.tcgetattr(peer)  # the container's side: the master's own mode is another
        except termios.error:
            return b""
        finally:
            os.close(peer)
        if not mode[3] & termios.ICANON:
            return b""
        eof = mode[6][termios.VEOF]
        return eof if ended_a_line else eof + eof

    def _give_back(self, said: bytes = b"") -> None:
        """The caller's terminal as the caller found it, and none of our stdio on it: a message
        of ours after the caller would land in its shell's prompt, and a terminal closed later
        is nothing of ours. ``said``: our last words on it, first."""
        if self.raw is not None and self._mode() == self.raw:  # not where the shell has set its own since
            self._restore_mode(termios.TCSANOW)
        if said:
            try:
                os.write(2, said)
            except OSError:
                pass
        null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        try:
            for fd in (0, 1, 2):
                if os.isatty(fd):
                    os.dup2(null, fd)
        finally:
            os.close(null)

    def _mode(self) -> list | None:
        try:
            return termios.tcgetattr(0)
        except (termios.error, OSError):
            return None

    def _restore_mode(self, when: int) -> None:
        saved, self.saved = self.saved, None
        if saved is not None:
            try:
                termios.tcsetattr(0, when, saved)
            except (termios.error, OSError):  # the terminal went meanwhile
                pass

    def end(self) -> None:
        self.ending = True
        if not self.output:
            try:
                os.write(self.waker, b"!")
            except OSError:  # already woken
                pass
        if self.thread.is_alive() or self.thread.ident is not None:
            self.thread.join(timeout=2)
        self.log = None  # a relay still copying (a process elsewhere holds the pty) logs no more
        if self.caller:
            from mrun.kernel.job_control import in_background

            if in_background(self.caller, 0):  # the shell has the terminal, and its own mode on it
                self.saved = None
        self._restore_mode(termios.TCSADRAIN)
        sys.stdout.flush()
        os.close(self.master)
        os.close(self.wake_up)
        os.close(self.waker)

"""Process facts read from /proc, robust against pid reuse."""

from __future__ import annotations

import os

from mrun.errors import MrunError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator

# Linux signal numbers (the generic table x86_64 and arm64 share). A table rather than the
# signal module, whose import builds enums (~7 ms) on every kill/delete.
SIGNALS = {
    "SIGHUP": 1,
    "SIGINT": 2,
    "SIGQUIT": 3,
    "SIGILL": 4,
    "SIGTRAP": 5,
    "SIGABRT": 6,
    "SIGIOT": 6,
    "SIGBUS": 7,
    "SIGFPE": 8,
    "SIGKILL": 9,
    "SIGUSR1": 10,
    "SIGSEGV": 11,
    "SIGUSR2": 12,
    "SIGPIPE": 13,
    "SIGALRM": 14,
    "SIGTERM": 15,
    "SIGSTKFLT": 16,
    "SIGCHLD": 17,
    "SIGCLD": 17,
    "SIGCONT": 18,
    "SIGSTOP": 19,
    "SIGTSTP": 20,
    "SIGTTIN": 21,
    "SIGTTOU": 22,
    "SIGURG": 23,
    "SIGXCPU": 24,
    "SIGXFSZ": 25,
    "SIGVTALRM": 26,
    "SIGPROF": 27,
    "SIGWINCH": 28,
    "SIGIO": 29,
    "SIGPOLL": 29,
    "SIGPWR": 30,
    "SIGSYS": 31,
}
SIGKILL = 9
SIGRTMIN, SIGRTMAX, NSIG = 34, 64, 65  # glibc keeps 32 and 33 for itself


_boot: list[str] = []


def boot_id() -> str:
    """This boot's id (the kernel's, new at each boot); "" where /proc does not say."""
    if not _boot:
        try:
            with open("/proc/sys/kernel/random/boot_id") as f:
                _boot.append(f.read().strip())
        except OSError:
            _boot.append("")
    return _boot[0]


def status_field(name: str, pid: int | str = "self") -> str | None:
    """The value of ``name`` in /proc/PID/status ("Threads", "CapPrm"...), stripped; None where
    the kernel shows no such field."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key == name:
                return value.strip()
    return None


def stat_fields(pid: int) -> list[bytes] | None:
    """/proc/PID/stat's fields after the command's name (state, ppid, pgrp, session, tty_nr,
    tpgid, ...: proc(5)'s third on), or None if the process is gone. The name may hold spaces
    and parentheses: the fields start after its last ')'."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    return data[data.rindex(b")") + 2 :].split()


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks, or None if it is gone or a zombie.

    Comparing start times is how a stored pid is told apart from a new process that
    reused the number; a zombie has finished, so it counts as gone.
    """
    if pid <= 0:
        return None
    fields = stat_fields(pid)
    if fields is None or fields[0] in (b"Z", b"X"):
        return None
    return int(fields[19])


def is_alive(pid: int, started: int | None) -> bool:
    """Is ``pid`` still the process that started at ``started``? Without a recorded start time
    the process cannot be told from a stranger that reused the number: it counts as gone, and
    nothing is ever signalled on its behalf."""
    return started is not None and start_time(pid) == started


def signal_if_same(pid: int, started: int | None, sig: int) -> None:
    """Send ``sig`` to ``pid`` only while it is the process that started at ``started``; else
    ProcessLookupError. The process is pinned (a pidfd) before its start time is compared: a
    number freed and taken by another process between the comparison and a kill by number would
    have the stranger signalled, and with pid_max at 32768 (the kernel's default) numbers come
    round within minutes on a busy node."""
    fd = pin_if_same(pid, started)
    try:
        send(fd, pid, sig)
    finally:
        if fd >= 0:
            os.close(fd)


def pin_if_same(pid: int, started: int | None) -> int:
    """``pin``, kept only while ``pid`` is still the process that started at ``started`` (compared
    once pinned); else ProcessLookupError, nothing left open."""
    fd = pin(pid)
    if not is_alive(pid, started):
        if fd >= 0:
            os.close(fd)
        raise ProcessLookupError(pid)
    return fd


def pin(pid: int) -> int:
    """A pidfd of the process that has the number ``pid`` now (-1 on a kernel without pidfds,
    before Linux 5.3: ``send`` then signals by number); ProcessLookupError if there is none."""
    if pid <= 0:
        raise ProcessLookupError(pid)
    try:
        return os.pidfd_open(pid)
    except OSError as e:
        if e.errno == 38:  # ENOSYS
            return -1
        raise


def send(fd: int, pid: int, sig: int) -> None:
    """``sig`` to the process ``fd`` pins (by number where ``fd`` is -1); ProcessLookupError once
    it has ended."""
    if fd < 0:
        os.kill(pid, sig)
        return
    import _signal  # the C module: `signal` builds enums (~7 ms)

    _signal.pidfd_send_signal(fd, sig)


def _decimal(text: str) -> bool:
    """ASCII digits only: str.isdigit takes "²" (which int() refuses) and "৯" (which it reads
    as 9), and Go's Atoi, runc's, neither."""
    return text.isascii() and text.isdigit()


def _number(text: str) -> int:
    """``text``'s ASCII digits with an optional sign, as int; past 20 digits (past every signal,
    and past 4300 int() refuses them) one past the last signal."""
    return int(text) if len(text.lstrip("+-")) <= 20 else NSIG


def parse_signal(text: str | int, probe: bool = False) -> int:
    """`KILL`, `SIGKILL`, `sigkill` and `9` all mean SIGKILL; anything else is an error.
    ``probe``: 0 too, kill(2)'s "is it there" (runc's kill takes it); never a signal to stop with."""
    raw = str(text).strip()
    shown = repr(raw if len(raw) <= 40 else raw[:40] + "...")
    if _decimal(raw):
        num = _number(raw)
        if 0 < num < NSIG or (probe and num == 0):
            return num
        raise MrunError(f"invalid signal {shown}: numbers go from {0 if probe else 1} to {NSIG - 1}")
    name = raw.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    if name.startswith(("SIGRTMIN", "SIGRTMAX")):
        base = SIGRTMIN if name.startswith("SIGRTMIN") else SIGRTMAX
        rest = name[8:]
        if rest == "" or _decimal(rest[1:] if rest[:1] in "+-" else rest):
            num = base + (_number(rest) if rest else 0)
            if SIGRTMIN <= num <= SIGRTMAX:
                return num
        raise MrunError(f"invalid signal {shown}: real-time signals go from SIGRTMIN to SIGRTMAX")
    if name not in SIGNALS:
        raise MrunError(f"invalid signal {shown}: not a signal name or number")
    return SIGNALS[name]


def reaped() -> Iterator[tuple[int, int]]:
    """Each child that has ended, reaped as it is yielded: (pid, waitpid status); nothing waited for."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        yield pid, status


def exit_code(status: int) -> int:
    """A waitpid status as a shell would report it: the code, or 128 + signal."""
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def rewrite_area(area: str, raw: bytes) -> bool:
    """Make /proc/self/cmdline (``area`` "arg") or /proc/self/environ ("env") read ``raw`` (NUL-
    separated strings) as exec would have: written over the process's own area, the rest zeroed
    (read as trailing empty strings). Moving an area needs CAP_SYS_RESOURCE; this needs none but
    only fits if the area the process was started with is large enough. -> whether it fit.
    Overwrite "env" only once nothing points into it (after os.environ was replaced)."""
    with open("/proc/self/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    first = 45 if area == "arg" else 47  # arg_start, arg_end, env_start, env_end: fields 48 to 51
    start, end = int(fields[first]), int(fields[first + 1])
    if not raw.endswith(b"\0"):
        raw += b"\0"
    if len(raw) > end - start:
        return False
    with open("/proc/self/mem", "r+b", buffering=0) as mem:
        mem.seek(start)
        mem.write(raw + b"\0" * (end - start - len(raw)))
    return True

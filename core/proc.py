"""Process facts read from /proc, robust against pid reuse."""

from __future__ import annotations

import os
import signal

from mrun.errors import MrunError


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks, or None if it is gone or a zombie.

    Comparing start times is how a stored pid is told apart from a new process that
    reused the number; a zombie has finished, so it counts as gone.
    """
    if pid <= 0:
        return None
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rindex(b")") + 2:].split()
    if fields[0] in (b"Z", b"X"):
        return None
    return int(fields[19])


def is_alive(pid: int, started: int | None) -> bool:
    now = start_time(pid)
    return now is not None and (started is None or now == started)


def parse_signal(text: str | int) -> int:
    """`KILL`, `SIGKILL`, `sigkill` and `9` all mean SIGKILL; anything else is an error."""
    raw = str(text).strip()
    if raw.isdigit():
        num = int(raw)
        if 0 < num < signal.NSIG:
            return num
        raise MrunError(f"invalid signal {raw!r}: numbers go from 1 to {signal.NSIG - 1}")
    name = raw.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    if name.startswith(("SIGRTMIN", "SIGRTMAX")):
        base = signal.SIGRTMIN if name.startswith("SIGRTMIN") else signal.SIGRTMAX
        rest = name[8:]
        if rest == "" or rest.lstrip("+-").isdigit():
            num = int(base) + (int(rest) if rest else 0)
            if signal.SIGRTMIN <= num <= signal.SIGRTMAX:
                return num
        raise MrunError(f"invalid signal {raw!r}: real-time signals go from SIGRTMIN to SIGRTMAX")
    sig = getattr(signal.Signals, name, None) if name.isidentifier() else None
    if sig is None:
        raise MrunError(f"invalid signal {raw!r}: not a signal name or number")
    return int(sig)


def exit_code(status: int) -> int:
    """A waitpid status as a shell would report it: the code, or 128 + signal."""
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)

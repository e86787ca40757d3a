"""Where a container's time goes, step by step, when a developer asks: with ``$MRUN_TRACE`` set
to an absolute file name, each step below appends one line to it,

    <pid> <start, CLOCK_MONOTONIC ns> <duration ns> <step>

from whichever mrun process ran it (the CLI, the warm template's child, the shim daemon, its
create worker), so that one file holds a whole ``ctr run`` and ``bench/timeline.py`` can sum it.
Steps: ``cli VERB``, ``shim start``, ``ttrpc METHOD`` (the shim's handlers), ``worker``
(a create worker's request), ``create STEP`` (``Create.STEPS``), ``run PHASE`` (prepare, start, wait, delete:
`mrun run`'s own), ``warm become`` (a child of the warm template, from its fork or hand-over until it
has become its caller: descriptors, cgroups, environment, argv).

Why in the code and not in perf: the steps are Python's; perf sees an interpreter. Unset, a
step costs one environment lookup. Only host-side processes record: nothing runs it once a
process is inside a container's root, where the name would resolve in the container's files.
The file is opened per line, append-only, close-on-exec, and never through a symbolic link.
"""

from __future__ import annotations

import os
import stat
import time

VARIABLE = "MRUN_TRACE"


class span:  # noqa: N801 - used as a statement: ``with trace.span("create claim_cgroup"):``
    """Times its block; records it (also when the block raises) if ``$MRUN_TRACE`` is set now.
    The environment is read at the end, not at import: a process forked from the warm template
    has its caller's environment, set after the import."""

    __slots__ = ("name", "start")

    def __init__(self, name: str) -> None:
        self.name = name
        self.start = 0

    def __enter__(self) -> span:
        self.start = time.monotonic_ns()
        return self

    def __exit__(self, *_exc: object) -> None:
        since(self.name, self.start)


def since(name: str, start: int, env: dict[str, str] | None = None) -> None:
    """Record ``name`` from ``start`` (monotonic ns) to now, if ``$MRUN_TRACE`` is set now: for a
    step a ``with`` cannot enclose (the shim's start, which may go on as the daemon). ``env``:
    the caller's environment, where the warm template answers a call itself."""
    path = (os.environ if env is None else env).get(VARIABLE)
    if isinstance(path, str) and path:  # a caller's environment is whatever it sent
        record(path, name, start, time.monotonic_ns() - start)


def record(path: str, name: str, start: int, duration: int) -> None:
    """One line, written whole (O_APPEND: lines of concurrent processes do not interleave). A
    relative name, a symbolic link, a file not our own, with another name (a hard link someone
    made to one of ours) or not a regular one (a fifo would hold us up): nothing, and the step
    goes on."""
    if not path.startswith("/"):
        return
    line = f"{os.getpid()} {start} {duration} {' '.join(name.split())}\n".encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK, 0o600)
    except OSError:
        return
    try:
        st = os.fstat(fd)
        if stat.S_ISREG(st.st_mode) and st.st_uid == os.geteuid() and st.st_nlink == 1:
            os.write(fd, line)
    except OSError:
        pass
    finally:
        os.close(fd)

"""mrun's own files are never writable by others, whatever umask its caller has.

A caller's umask of 000 (some service managers' and daemons') made mrun's state.json, image
index, blobs, network files and cgroup directories writable by any local user: a pid forged in a
state.json is a process `kill` signals and `delete --force` kills, as root. runc passes safe modes
at each write; here each entry point (the CLI, the shim, a warm template's child) takes the
caller's umask with 022 added (``adopt``), one rule for every write present and to come. A
process whose config names no umask then gets runc's: an exec'd one the caller's own back
(``callers``), as runc's exec inherits it, and an init whose root the sandbox made 022, as runc's
finalizeRootfs sets it whatever its caller's."""

from __future__ import annotations

import os

OWN = 0o022  # added to the caller's: group and others never write what mrun makes

_callers: int | None = None


def adopt(callers: int) -> None:
    """Work for a caller whose umask is ``callers``: ours is that plus ``OWN``."""
    global _callers
    _callers = callers
    os.umask(callers | OWN)


def own_files() -> None:
    """At an entry point: adopt this process's umask as the caller's (once: a warm template's
    child has adopted its caller's already)."""
    if _callers is None:
        adopt(current())


def current() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def ours_alone(st: os.stat_result) -> bool:
    """Whether a file or directory is the caller's (or root's) and writable by no one else: what
    mrun reads code or the names of code from (compiled modules, the backends' entry points)."""
    return st.st_uid in (os.geteuid(), 0) and not st.st_mode & 0o022


def callers() -> int:
    """The caller's umask, for a container's process and for a hand-over to the warm template."""
    return _callers if _callers is not None else current()

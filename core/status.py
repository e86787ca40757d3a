"""A container's status, and which operation each status allows: one table, one guard.

The runtime-spec's states (creating, created, running, stopped) plus paused, as runc reports
it. The status is never stored: ``state.Store.status`` reads it off the process, the exec fifo
and the freezer. Every verb asks ``require`` before it acts, so what a client can do in which
status is written here once (youki's ``can_*`` guards, as a table).
"""

from __future__ import annotations

from mrun.errors import InvalidState


class Status(str):
    """A ``str``: it prints, compares and serialises as the runtime-spec's word for it. Not an
    ``enum.Enum``: importing ``enum`` costs every mrun verb 3.4 ms here, and no verb needs more
    than these five named values."""

    __slots__ = ()
    # set below, once the class exists (annotations only: importing typing costs 8 ms)
    CREATING: Status
    CREATED: Status
    RUNNING: Status
    PAUSED: Status
    STOPPED: Status


Status.CREATING, Status.CREATED, Status.RUNNING = Status("creating"), Status("created"), Status("running")
Status.PAUSED, Status.STOPPED = Status("paused"), Status("stopped")


C, R, P, S = Status.CREATED, Status.RUNNING, Status.PAUSED, Status.STOPPED
NOT_RUNNING = "cannot {op} container {id!r}: container not running"  # runc's words, which clients match
# operation -> (the statuses it is allowed in, what a refusal says)
ALLOWED: dict[str, tuple[frozenset[Status], str]] = {
    "start": (frozenset({C}), "cannot start container {id!r}: it is {status}, not created"),
    "kill": (frozenset({C, R, P}), NOT_RUNNING),
    "pause": (frozenset({C, R}), "cannot pause container {id!r}: it is {status}, not running"),  # runc: created too
    "resume": (frozenset({P}), "cannot resume container {id!r}: it is {status}, not paused"),
    "exec": (frozenset({C, R}), "cannot exec in container {id!r}: it is {status}"),
    "update": (frozenset({C, R, P}), NOT_RUNNING),  # runc (libcontainer Set) refuses a stopped one
    "events": (frozenset({C, R, P}), "container {id!r} is not running"),  # runc's: a stopped one has no figures
    # --force deletes in any status
    "delete": (frozenset({C, S}), "cannot delete container {id!r}: it is {status}; stop it first or use --force"),
}


def allowed(operation: str, status: Status) -> bool:
    return status in ALLOWED[operation][0]


def require(operation: str, status: Status, container_id: str) -> None:
    """Raise InvalidState, one line naming the container and its status, unless allowed."""
    statuses, message = ALLOWED[operation]
    if status not in statuses:
        raise InvalidState(message.format(op=operation, id=container_id, status=status))

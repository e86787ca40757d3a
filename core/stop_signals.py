"""What ends a `mrun run` when SIGTERM, SIGHUP or ^C come while its container is being made.

Python raises an exception in whatever line runs when a handled signal comes: ^C's
KeyboardInterrupt anywhere in the making or the undoing of a container left half of it, and
SIGTERM and SIGHUP, unhandled, ended the process there, with an init left waiting for a `start`
forever and holding the caller's stdout (`timeout 5 mrun run ... | cat` never ended). runc's
`run` is never ended by them; here they are held while the container is made and end the run
at the points where stopping is clean (``raise_if_held``), which undo what was made
(``errors.Terminated``)."""

from __future__ import annotations

from mrun.errors import Terminated

_noted: list[int] = []  # stop signals held back while a container is being made
_STOP = ("SIGTERM", "SIGHUP")


def end_runs_on_termination() -> None:
    """From now on SIGTERM and SIGHUP raise ``Terminated``, as ^C raises KeyboardInterrupt: for
    work that nothing is lost by cutting short anywhere, as its clean-up runs (the part of a
    `run` before its container is made, a pull; the writers of cli.main.ENDED_AS_BY_CTRL_C)."""
    import signal

    def terminated(signum: int, _frame: object) -> None:
        raise Terminated(signum)

    for name in _STOP:
        signal.signal(getattr(signal, name), terminated)


def hold_termination() -> None:
    """From now on SIGTERM, SIGHUP and ^C are noted, not raised: an exception at any instant of
    making a container, or of undoing it, can leave half of it. ``raise_if_held`` stops at the
    points where stopping is clean; once the container runs they are passed on to it
    (``runtime.forward_signals``)."""
    import signal

    def note(signum: int, _frame: object) -> None:
        _noted.append(signum)

    for name in (*_STOP, "SIGINT"):
        signal.signal(getattr(signal, name), note)


def held_signals() -> list[int]:
    """The stop signals held back since, oldest first (and forget them)."""
    held = list(_noted)
    _noted.clear()
    return held


def stop_held() -> bool:
    """Whether a stop signal is held back now (they are kept for ``held_signals``)."""
    return bool(_noted)


def raise_if_held() -> None:
    if held := held_signals():
        raise Terminated(held[0])

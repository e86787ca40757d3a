"""Errors meant for people: each names what was attempted and why it failed."""


def in_words(error: BaseException) -> str:
    """An error as a person reads it: an OSError's own words and the file it names, not Python's
    repr of it ("[Errno 2] No such file or directory: '/x'")."""
    if isinstance(error, OSError) and error.strerror:
        return f"{error.strerror}: {error.filename}" if error.filename else error.strerror
    return str(error)


class MrunError(Exception):
    """A failure the CLI reports as one line and a non-zero exit."""

    exit_code = 1


class NotFound(MrunError):
    pass


class AlreadyExists(MrunError):
    pass


class InvalidSpec(MrunError):
    """config.json (or a process.json) is malformed; the message names the field path."""


class InvalidState(MrunError):
    """The container is in the wrong state for the request (e.g. deleting a running one)."""


class Unsupported(MrunError):
    pass


class SetUpDied(MrunError):
    """The container's process, or the one setting it up, ended before it could say why: killed
    (the OOM killer, for one: ``Create`` asks the cgroup and says so)."""


class Terminated(BaseException):
    """SIGTERM, SIGHUP or ^C to a `run` before its container runs (`timeout`, a terminal closed):
    what was made is undone. Dying of them left a container record and an init waiting for a
    `start` forever with the caller's stdout open."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


_noted: list[int] = []  # stop signals held back while a container is being made
_STOP = ("SIGTERM", "SIGHUP")


def end_runs_on_termination() -> None:
    """From now on SIGTERM and SIGHUP raise ``Terminated``, as ^C raises KeyboardInterrupt: for
    the part of a `run` that nothing is lost by cutting short anywhere (a pull)."""
    import signal

    def terminated(signum: int, _frame: object) -> None:
        raise Terminated(signum)

    for name in _STOP:
        signal.signal(getattr(signal, name), terminated)


def hold_termination() -> None:
    """From now on SIGTERM, SIGHUP and ^C are noted, not raised: an exception at any instant of
    making a container, or of undoing it, can leave half of it. ``raise_if_held`` stops at the
    points where stopping is clean; once the container runs they are passed on to it
    (``runtime.forward_signals`` sends what was held)."""
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


def raise_if_held() -> None:
    if held := held_signals():
        raise Terminated(held[0])

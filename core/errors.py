"""Errors meant for people: each names what was attempted and why it failed."""


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
    """SIGTERM or SIGHUP to a `run` before its container runs (`timeout`, a terminal closed):
    taken as ^C's KeyboardInterrupt is, so that what was made is undone. Dying of it left a
    container record and an init waiting for a `start` forever with the caller's stdout open."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def end_runs_on_termination() -> None:
    """From now on SIGTERM and SIGHUP raise ``Terminated`` (``forward_signals`` passes them to
    the container instead once it runs, and puts this back after)."""
    import signal

    def terminated(signum: int, _frame: object) -> None:
        raise Terminated(signum)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, terminated)

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

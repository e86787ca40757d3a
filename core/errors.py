"""Errors meant for people: each names what was attempted and why it failed."""


def in_words(error: BaseException) -> str:
    """An error as a person reads it: an OSError's own words and the file it names, not Python's
    repr of it ("[Errno 2] No such file or directory: '/x'")."""
    if isinstance(error, OSError) and error.strerror:
        return f"{error.strerror}: {error.filename}" if error.filename else error.strerror
    return str(error)


_CONTROLS: dict[int, str] = {}


def one_line(text: str) -> str:
    """``text`` as one line a terminal shows as it is: a line break, a carriage return or an escape
    sequence in a value it quotes (a path, a key of config.json, an image's word) is written as
    its escape, so a refusal stays one line and a hostile value cannot redraw the user's screen."""
    if not _CONTROLS:
        named = {0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t"}
        _CONTROLS.update({c: named.get(c, f"\\x{c:02x}") for c in (*range(0x20), *range(0x7F, 0xA0))})
    return text.translate(_CONTROLS)


def in_bytes(text: str) -> bytes:
    """``text`` for a write to a descriptor (a child's error line, where print is not at hand):
    a name's bytes that are not UTF-8 as they are (the surrogates jsonio and argv keep them as),
    never an exception of its own in place of the error it reports."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace")


def name_the_file(error: OSError, path: str) -> None:
    """An OSError that names no file (a write failing at close on a full disk, an os.write) names
    ``path``: "No space left on device" alone said nothing of where."""
    if error.filename is None:
        error.filename = path


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

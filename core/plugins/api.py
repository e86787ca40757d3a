"""What backends receive and return. Plain classes, no pluggy import: cheap to load anywhere."""

from __future__ import annotations

import errno
import os

from mrun.errors import MrunError
from mrun.kernel.inroot import open_regular, read_file, secure_join
from mrun.plugins.cli import Arg, Command, Flag  # noqa: F401 - for backends that add verbs (mrun_commands)
from mrun.units import decimal

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Protocol
else:  # structural types for type checkers, plain classes at run time: typing costs ~4 ms per create
    Protocol = object

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class Claim:
    """A backend's bid for a bundle: the highest priority wins; the reason is shown to users."""

    __slots__ = ("backend", "priority", "reason")

    def __init__(self, backend: str, priority: int, reason: str) -> None:
        self.backend, self.priority, self.reason = backend, priority, reason

    def __repr__(self) -> str:
        return f"Claim({self.backend!r}, {self.priority}, {self.reason!r})"


class Bundle:
    """A read-only view of a bundle for claims: its spec, and the entrypoint as the container sees it."""

    def __init__(self, spec: Any) -> None:
        self.spec = spec
        self.config: dict[str, Any] = spec.raw
        self.rootfs: str = spec.rootfs
        self.annotations: dict[str, str] = spec.annotations
        self.args: list[str] = list(spec.process.get("args") or [])
        self._magic: bytes | None = None

    def entrypoint(self) -> str | None:
        """Host path of process.args[0] resolved inside the rootfs (PATH searched), or None."""
        if not self.args:
            return None
        return find_program(self.rootfs, self.args[0].split("#", 1)[0], self.spec.process)

    def magic(self) -> bytes:
        """The first bytes of the entrypoint ('' if it cannot be read): ELF, '#!' or '\\0asm'."""
        if self._magic is None:
            self._magic = program_head(self.rootfs, self.entrypoint())
        return self._magic


def env_value(process: dict[str, Any], name: str, default: str = "") -> str:
    """A variable of an OCI process's env list; the last definition wins."""
    for entry in reversed(process.get("env") or []):
        key, _, value = entry.partition("=")
        if key == name:
            return value
    return default


def find_program(root: str, name: str, process: dict[str, Any], as_named: bool = False) -> str | None:
    """``name`` looked up under ``root`` as the process would: its PATH, its cwd. A name no file
    can have (past NAME_MAX or PATH_MAX) is found nowhere, as execvp finds it: it was an
    OSError's "[Errno 36]" line naming a PATH directory. ``as_named``: the path to give execve
    in the container (``resolve_in_root``), not the file's resolved path."""
    try:
        return resolve_in_root(root, name, _path_of(process), process.get("cwd") or "/", as_named)
    except OSError as e:
        if e.errno == errno.ENAMETOOLONG:
            return None
        raise


def not_runnable(root: str, name: str, process: dict[str, Any]) -> str:
    """Why ``name`` cannot be run, ``find_program`` having found nothing, in the words of runc's
    exec (Go's exec.LookPath), which podman and docker turn into exit codes: "executable file not
    found in $PATH" and "no such file or directory" are 127, "permission denied" 126 (anything
    else 255). A bare name was looked up along PATH; a path that exists is a directory or some
    other file no execve takes."""
    if "/" not in name:
        return f"executable file not found in $PATH ({_path_of(process)})"
    try:
        found = os.path.lexists(_named_path(root, name, process.get("cwd") or "/"))
    except OSError:
        found = False
    return "permission denied" if found else f"stat {name}: no such file or directory"


def table_rows(root: str, path: str) -> list[list[str]]:
    """The rows of /etc/passwd or /etc/group (``path``: "etc/passwd") under ``root``, read inside
    it (an image's /etc may be a link aimed at the host's); none where it is missing or no
    regular file."""
    try:
        text = read_file(root, path).decode(errors="replace")
    except OSError:
        return []
    return [line.split(":") for line in text.splitlines() if line.count(":") >= 3]


def home_of(passwd: list[list[str]], uid: int) -> str:
    """The home of ``uid``'s first row of ``passwd`` (its uid read as Go's Atoi reads it), "/"
    without one or for one that is no absolute path: HOME as runc sets it for a process whose
    env has none, and as docker sets it for an image's user."""
    row = next((r for r in passwd if decimal(r[2]) == uid), None)
    return row[5] if row and len(row) > 5 and row[5].startswith("/") else "/"


def _path_of(process: dict[str, Any]) -> str:
    return env_value(process, "PATH", DEFAULT_PATH)


def _named_path(root: str, name: str, cwd: str) -> str:
    """A name with a slash, under ``root``: absolute as it is, else from ``cwd``."""
    return secure_join(root, name if name.startswith("/") else os.path.join(cwd, name))


def open_program(root: str, host_path: str) -> int:
    """``host_path`` (``find_program``'s answer) opened for reading, resolved once more inside
    ``root``, as a regular file only: the rootfs may have changed since (a container sharing it
    put a link or a fifo in its place), and a string the host resolves would follow it."""
    prefix = root.rstrip("/") + "/"
    if not host_path.startswith(prefix):
        raise MrunError(f"{host_path}: not inside {root}")
    return open_regular(root, host_path[len(prefix) - 1:])


def program_head(root: str, host_path: str | None) -> bytes:
    """The first 8 bytes of ``host_path`` (``find_program``'s answer), read inside ``root``
    (``open_program``); b"" if there is none or it cannot be read."""
    if not host_path:
        return b""
    try:
        fd = open_program(root, host_path)
    except (OSError, MrunError):
        return b""
    try:
        return os.read(fd, 8)
    except OSError:
        return b""
    finally:
        os.close(fd)


def resolve_in_root(root: str, name: str, path_env: str, cwd: str = "/", as_named: bool = False) -> str | None:
    """Find ``name`` as execvp in the container would: a path as is, a bare name along PATH (a
    relative or empty directory is the working directory's, as the runtime-spec's execvp takes
    it; runc's Go refuses a program found there). The answer is the file under ``root``, links
    resolved; ``as_named``, the path execve is to be given in the container instead: the name
    as it is, or the PATH directory joined to it and cleaned, as Go's exec.LookPath gives runc.
    execve then follows the links, and the program's comm (ps, top, pkill) and a script's $0
    are the name's, not its target's."""
    if "/" in name:
        candidate = _named_path(root, name, cwd)
        return (name if as_named else candidate) if os.path.isfile(candidate) else None
    for d in path_env.split(":"):
        candidate = _named_path(root, os.path.join(d or ".", name), cwd)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return _go_join(d, name) if as_named else candidate
    return None


def _go_join(directory: str, name: str) -> str:
    """Go's filepath.Join: the parts joined and cleaned ("/usr/../bin" + "sh" is "/bin/sh")."""
    joined = os.path.normpath(os.path.join(directory, name)) if directory else name
    return "/" + joined.lstrip("/") if joined.startswith("//") else joined


class Container:
    """The container a backend prepares and runs; ``data`` is the backend's own scratch space,
    filled on the host in ``mrun_prepare`` and still there inside the sandbox: the same memory,
    or a copy, pickled, when the init is the shim worker's pristine copy (mrun.sandbox.pristine),
    made before the create wrote anything. A value that cannot be pickled means a plain fork."""

    def __init__(self, id: str, bundle: Bundle, state_dir: str, note: Any = None, limits: Any = None) -> None:
        self.id, self.bundle, self.state_dir = id, bundle, state_dir
        self.data: dict[str, Any] = {}
        # note(msg): a debug line for the runtime's log (`mrun --debug --log FILE`).
        self.note = note or _no_note
        # limits() -> (join(pid), killed(signal) -> words or None): the container's cgroup, from the core
        self._limits = limits

    def __getstate__(self) -> dict[str, Any]:
        """Sent to a pristine init (mrun.sandbox.pristine) without ``note``: the log is the host's."""
        return {**self.__dict__, "note": _no_note, "_limits": None}

    def contained(self, work: Any, what: str) -> bytes:
        """``work()`` (-> bytes) in a child process under this container's limits: host-side work
        on the image's content, such as compiling its module, costs what the container may spend.
        A failure is one ``MrunError`` line naming ``what``: what ``work`` raised, or the limit
        that stopped it (mrun.kernel.contained)."""
        if self._limits is None:
            return bounded(work, what)
        from mrun.kernel.contained import run_contained

        join, killed = self._limits()
        return run_contained(work, what, join=join, killed=killed)


def _no_note(_msg: str) -> None:
    pass


def bounded(work: Any, what: str) -> bytes:
    """``work()`` (-> bytes) in a child process under fixed bounds, for host-side work on an
    image's content before any container exists (precompiling at pull). Past the bounds it is
    ``LimitReached`` (mrun.kernel.contained), an ``MrunError``: skip the work, it happens again
    under a container's limits."""
    from mrun.kernel.contained import run_contained

    return run_contained(work, what, rlimits=True)


class Payload(Protocol):
    """What runs inside the finished sandbox. ``run`` returns an exit status, or never
    returns (execve)."""

    def run(self) -> int: ...


class SandboxDriver(Protocol):
    """The second tier of the backend contract: a backend that owns the sandbox itself (another
    OCI runtime, a microVM, a user-space kernel) returns one from ``mrun_sandbox``; mrun then
    keeps only its record of the container and hands every lifecycle verb to the driver. A
    backend that returns None runs inside mrun's own Linux sandbox (the default).

    ``create`` gets the bundle directory with the (possibly rewritten) config already written
    to its ``config.json`` and returns the container init's host pid; the other verbs take the
    container id. Errors are ``MrunError`` with one line."""

    def create(self, container_id: str, bundle: str, pid_file: str, console_socket: str) -> int: ...

    def start(self, container_id: str) -> None: ...

    def status(self, container_id: str) -> str: ...  # created, running, paused or stopped

    def kill(self, container_id: str, signal: int, all_processes: bool) -> None: ...

    def delete(self, container_id: str, force: bool) -> None: ...

    def exec(self, container_id: str, process: dict[str, Any], pid_file: str, console_socket: str) -> int: ...

    def pause(self, container_id: str) -> None: ...

    def resume(self, container_id: str) -> None: ...

    def update(self, container_id: str, resources: dict[str, Any]) -> None: ...

    def pids(self, container_id: str) -> list[int]: ...

    def stats(self, container_id: str) -> dict[str, Any]: ...

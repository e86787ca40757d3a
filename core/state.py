"""Durable container state under a root directory (``--root``, default /run/mrun).

One directory per container holds ``state.json`` (written atomically: a temp file, then rename;
no fsync, since the root is normally tmpfs and a host crash ends its containers anyway), a lock
file taken with flock by every command that changes the container, and the exec fifo while the
container is created but not started. The status is never trusted from disk alone: it is derived
from the init process (pid + start time), the fifo and the freezer, so it is right even after any
mrun process died.
"""

from __future__ import annotations

import errno
import fcntl
import os
import time

from mrun import OCI_VERSION, jsonio
from mrun.errors import AlreadyExists, MrunError, NotFound, in_words
from mrun.kernel.proc import is_alive
from mrun.scratch import is_scratch, scratch_name
from mrun.status import Status

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~6 ms (it imports re) on the lifecycle verbs' hot path
    from typing import Any


DEFAULT_ROOT = "/run/mrun"
_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+-.")
STATE_FILE = "state.json"
REMOVE_ATTEMPTS = 20  # passes over a state directory that a starting command keeps refilling (remove)
RESERVE_ATTEMPTS = 20  # makings of a new container's directory that a concurrent sweep may take (reserve)
MAKING = ".making-"  # a container's directory before its lock is held (Store.reserve)
EXEC_FIFO = "exec.fifo"
STARTED_FIFO = "started.fifo"  # held by the init until its payload runs (Runtime._wait_started)
PAUSED_BY = "paused-by.json"  # the process holding the container paused for a while (Runtime.paused_for)


NAME_MAX = 255  # a container id names its directory


def check_id(container_id: str) -> None:
    """runc's rule (ASCII letters, digits, ``_+-.``), less a leading dot: those names are mrun's
    own in the state root."""
    if (
        not isinstance(container_id, str)
        or not container_id
        or container_id.startswith(".")
        or not all(c in _ID_CHARS for c in container_id)
    ):
        shown = container_id[:300] if isinstance(container_id, str) else container_id
        raise MrunError(f"invalid container id {shown!r}: use ASCII letters, digits, '_', '+', '-' and '.' (not first)")
    if len(container_id) > NAME_MAX:  # it names the container's directory: a longer one failed its mkdir
        raise MrunError(f"invalid container id {container_id[:40]!r}...: at most {NAME_MAX} characters")


class Record:
    """What mrun remembers about one container. ``stage`` goes creating -> created -> running;
    "stopped" is never stored, it is read off the process."""

    FIELDS = (
        "id", "bundle", "rootfs", "config", "backend", "pid", "pid_start", "stage", "created", "owner", "cgroup",
        "owned",  # the backend owns the sandbox (a SandboxDriver): its verbs go to the backend
        "new_keyring",  # a session keyring of its own (not --no-new-keyring): exec joins it
    )

    def __init__(
        self,
        id: str,
        bundle: str,
        rootfs: str,
        config: dict[str, Any],
        backend: str = "linux",
        pid: int = 0,
        pid_start: int | None = None,
        stage: str = Status.CREATING,
        created: str = "",
        owner: str = "",
        cgroup: dict[str, Any] | None = None,
        owned: bool = False,
        new_keyring: bool = True,
    ) -> None:
        self.id, self.bundle, self.rootfs, self.config = id, bundle, rootfs, config
        self.owned, self.new_keyring = owned, new_keyring
        self.backend, self.pid, self.pid_start, self.stage = backend, pid, pid_start, stage
        self.created, self.owner, self.cgroup = created, owner, cgroup or {}

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.FIELDS}

    @property
    def annotations(self) -> dict[str, str]:
        return self.config.get("annotations") or {}


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 1 << 63


def shape_problem(data: object, container_id: str) -> str:
    """What is wrong with a state document, or "". A state file is input like any other: a
    damaged or forged one must neither crash a command nor aim a signal at a stranger."""
    if not isinstance(data, dict):
        return "not a JSON object"
    if data.get("id") != container_id:
        return f"id: {data.get('id')!r} is not {container_id!r}"
    for name in ("bundle", "rootfs", "backend", "created", "owner"):
        if not isinstance(data.get(name, ""), str):
            return f"{name}: not a string"
    if not isinstance(data.get("config"), dict) or not isinstance(data["config"].get("annotations") or {}, dict):
        return "config: not a runtime-spec object"
    pid, started = data.get("pid", 0), data.get("pid_start")
    if not _is_int(pid):
        return f"pid: {pid!r} is not a process id"
    if started is None and pid:
        return "pid_start: missing, so the process cannot be told from one that reused its pid"
    if started is not None and not _is_int(started):
        return f"pid_start: {started!r} is not a start time"
    if data.get("stage", "creating") not in (Status.CREATING, Status.CREATED, Status.RUNNING):
        return f"stage: {data.get('stage')!r} is not creating, created or running"
    for name in ("owned", "new_keyring"):
        if not isinstance(data.get(name, False), bool):
            return f"{name}: not true or false"
    cgroup = data.get("cgroup") or {}
    if not isinstance(cgroup, dict):
        return "cgroup: not an object"
    if cgroup:
        from mrun.cgroups import saved_problem

        problem = saved_problem(cgroup)
        if problem:
            return f"cgroup: {problem}"
    return ""


class Store:
    def __init__(self, root: str = DEFAULT_ROOT, host: Any = None) -> None:
        """``host``: the runtime's kernel seam (operations.host.Host); None reads the kernel directly."""
        self.root = os.path.abspath(root)
        self.host = host

    @property
    def cgroup_marks(self) -> str:
        """Where containers of this root mark the parent cgroups they made, and the cgroups of
        their supervisors (cgroups.base, cgroups.beside): removed by the last one out, or by
        `system prune` after a crash."""
        return os.path.join(self.root, ".cgroup-parents")

    def path(self, container_id: str, *parts: str) -> str:
        return os.path.join(self.root, container_id, *parts)

    def reserve(self, container_id: str) -> FileLock:
        """Claim the id atomically, its lock already held: -> that lock. A second create with the
        same id fails here.

        The directory is made under a name ``ids`` skips (``MAKING``), its lock taken, and only
        then renamed into place (never over anything, an empty directory included): no one
        (`system prune`, `delete --force`) ever sees a create's directory before its lock is
        held. Made in place, it was there unlocked for a moment, and a `system prune` then took
        it for a killed create's and removed it from under the create. ``sweep_making`` (every
        create, `system prune`, every `delete --force`, the shim's `delete` through it)
        removes what a create killed before its rename left; one swept from under us before we
        held it is made again."""
        check_id(container_id)
        os.makedirs(self.root, mode=0o711, exist_ok=True)
        self.sweep_making()  # a killed create's, so they never pile up where no prune runs (runc's clients)
        final = self.path(container_id)
        for _ in range(RESERVE_ATTEMPTS):
            if os.path.lexists(final):
                raise AlreadyExists(f"container {container_id!r} already exists")
            making = os.path.join(self.root, scratch_name(MAKING))
            os.mkdir(making, 0o711)
            try:
                lock = FileLock(os.path.join(making, "lock"), missing="swept", recheck=True).__enter__()
            except NotFound:
                continue  # swept before we held it: made anew
            try:
                _rename_noreplace(making, final)
            except FileExistsError:
                lock.__exit__()
                _remove_flat(making)
                raise AlreadyExists(f"container {container_id!r} already exists")
            except FileNotFoundError:
                lock.__exit__()  # swept meanwhile (it cannot be: held; but never claim a directory we lost)
                continue
            except BaseException:
                lock.__exit__()
                _remove_flat(making)
                raise
            lock.path = os.path.join(final, "lock")
            return lock
        raise MrunError(f"container {container_id!r}: its state directory kept being swept away; try again")

    def sweep_making(self) -> list[str]:
        """What creates killed before their directory was in place left (``reserve``): each one
        whose lock nobody holds."""
        swept = []
        try:
            entries = [e.name for e in os.scandir(self.root) if is_scratch(e.name, MAKING) and e.is_dir()]
        except FileNotFoundError:
            return []
        for name in entries:
            if _sweep_unheld(os.path.join(self.root, name)):
                swept.append(name)
        return swept

    def exists(self, container_id: str) -> bool:
        return os.path.isdir(self.path(container_id))

    def load(self, container_id: str) -> Record:
        check_id(container_id)
        try:
            data = jsonio.load_file(self.path(container_id, STATE_FILE))
        except FileNotFoundError:
            raise NotFound(f"container {container_id!r} does not exist")
        except (OSError, ValueError) as e:
            raise MrunError(
                f"container {container_id!r}: state file is unreadable ({in_words(e)}); "
                f"'mrun delete --force {container_id}' cleans it up"
            )
        problem = shape_problem(data, container_id)
        if problem:
            raise MrunError(
                f"container {container_id!r}: state file is malformed ({problem}); "
                f"'mrun delete --force {container_id}' removes it without signalling anything"
            )
        return Record(**{k: v for k, v in data.items() if k in Record.FIELDS})

    def save(self, record: Record) -> None:
        final = self.path(record.id, STATE_FILE)
        jsonio.replace_file(final, record.to_dict(), tmp=final + ".tmp")

    def write_back(self, record: Record) -> None:
        """The state of a live container, removed from under a process that kept its record (the
        shim: `rm -rf /run/mrun`, a tmpfiles clean-up), saved again. A created one's start gates,
        fifos its init still holds open, are linked back through /proc so `start` reaches it.
        Only for a container whose init the caller knows to be alive (its own unreaped child):
        the links name that pid's descriptors."""
        self.make_again(record.id)
        if record.stage == Status.CREATED:
            for name in (EXEC_FIFO, STARTED_FIFO):
                held = _held_by(record.pid, self.path(record.id, name))
                if held is not None:
                    os.symlink(held, self.path(record.id, name))
        self.save(record)

    def make_again(self, container_id: str) -> None:
        """The directory of a container whose state was removed from under it, made again with
        its lock file first, as every container's (``made_here``)."""
        os.makedirs(self.path(container_id), mode=0o711, exist_ok=True)
        os.close(os.open(self.path(container_id, "lock"), os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600))

    def lock(self, container_id: str) -> FileLock:
        """The container's lock; NotFound for an id whose directory mrun did not make (its lock
        file would be written into someone else's directory, and make it look like ours)."""
        check_id(container_id)
        missing = f"container {container_id!r} does not exist"
        if not self.made_here(container_id) and os.path.isdir(self.path(container_id)):
            raise NotFound(missing)
        return FileLock(self.path(container_id, "lock"), missing)

    def clear(self, container_id: str) -> None:
        """Empty the container's directory but for its state file and lock: a restart
        (``Runtime.recreate``) starts over in it while the last record stays readable."""
        _empty(list(os.scandir(self.path(container_id))), keep=(STATE_FILE, "lock"))

    def remove(self, container_id: str) -> None:
        """rm -r of the container's directory (flat: state, lock, fifo; no shutil import). A
        command on the same id that starts meanwhile opens the lock file with O_CREAT and may
        make it anew after it was unlinked: the directory is emptied again until it goes (that
        command then finds no state, or no directory)."""
        top = self.path(container_id)
        for attempt in range(REMOVE_ATTEMPTS):
            try:
                entries = list(os.scandir(top))
            except FileNotFoundError:
                return
            _empty(entries, keep=("lock",))
            _empty([e for e in entries if e.name == "lock"])  # last: what says mrun made it (``made_here``)
            try:
                os.rmdir(top)
                return
            except FileNotFoundError:
                return
            except OSError as e:
                if e.errno != errno.ENOTEMPTY or attempt == REMOVE_ATTEMPTS - 1:
                    raise

    def made_here(self, container_id: str) -> bool:
        """Whether mrun made the directory of this id: it holds the lock every create makes before
        the directory takes its name (``reserve``), which a removal takes last, or nothing (a
        removal killed before its rmdir). A state root shared by mistake (`--root /tmp`) holds
        others' directories: `system prune` took each for a killed create's and emptied it."""
        return made_with(self.path(container_id), "lock")

    def ids(self) -> list[str]:
        try:
            return sorted(e.name for e in os.scandir(self.root) if e.is_dir() and not e.name.startswith("."))
        except FileNotFoundError:
            return []

    def status(self, record: Record) -> Status:
        alive = self.host.alive if self.host is not None else is_alive
        if record.stage == Status.CREATING or not alive(record.pid, record.pid_start):
            return Status.STOPPED
        if self.host is not None:
            frozen = self.host.frozen(record.cgroup)
        else:
            from mrun.cgroups import open_cgroup

            frozen = bool(record.cgroup) and open_cgroup(record.cgroup).is_frozen()
        if frozen:  # a created container too: runc pauses one, and resume makes it created again
            return Status.PAUSED
        awaits = self.host.awaits_start if self.host is not None else awaits_start
        return Status.CREATED if awaits(self.path(record.id, EXEC_FIFO)) else Status.RUNNING


def awaits_start(fifo: str) -> bool:
    """Whether the init still waits for its start: its exec fifo is there and the init still holds
    it (a writer's open finds the init, which opened it read-write, as its reader). A start killed
    between its write and the fifo's removal left the fifo with no one reading it: the program
    runs, and was said to be created (as runc would say it), so that `delete` without --force
    took it for a created container and killed it. The probe writes nothing: the init's read
    waits on. A fifo linked back through /proc (``write_back``) is not followed: once the init
    has let go, its number may be a file of the program's; there the fifo's existence decides."""
    try:
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NOCTTY)
    except FileNotFoundError:
        return False
    except OSError as e:
        return e.errno != errno.ENXIO  # no reader: released already (ELOOP: a link, there)
    os.close(fd)
    return True


def _held_by(pid: int, path: str) -> str | None:
    """/proc/PID/fd/N of ``pid``'s descriptor on ``path`` since removed, if it has one."""
    fds = f"/proc/{pid}/fd"
    try:
        for fd in os.listdir(fds):
            if os.readlink(os.path.join(fds, fd)) == path + " (deleted)":
                return os.path.join(fds, fd)
    except OSError:  # it has ended: nothing to link
        pass
    return None


class FileLock:
    """flock on ``path`` for the duration of a ``with`` block. ``missing`` is the error to raise
    when the directory is gone (a container's lock: it must not come back); without it the
    directory is made (a store's lock). A ``transient`` lock file (one per blob download) is
    removed on release, so they do not pile up: whoever locks checks that the file it holds is
    still the one at ``path`` and starts again if a releaser removed it meanwhile."""

    def __init__(self, path: str, missing: str = "", transient: bool = False, recheck: bool = False) -> None:
        """``recheck``: as a transient lock's taker does, check that the file held is still the one
        at ``path`` (one swept away meanwhile is not held: ``Store.reserve``)."""
        self.path, self.missing, self.transient, self.fd = path, missing, transient, -1
        self.recheck = recheck or transient

    def __enter__(self) -> FileLock:
        if self.fd >= 0:
            return self  # held already (``Store.reserve`` hands its lock over held)
        if not self.missing:
            os.makedirs(os.path.dirname(self.path), mode=0o700, exist_ok=True)
        while True:
            try:
                self.fd = os.open(self.path, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
            except FileNotFoundError:
                self.fd = -1
                raise NotFound(self.missing)
            fcntl.flock(self.fd, fcntl.LOCK_EX)
            if not self.recheck or _same_file(self.fd, self.path):
                return self
            os.close(self.fd)

    def __exit__(self, *exc: object) -> None:
        if self.transient:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
        os.close(self.fd)
        self.fd = -1


def _same_file(fd: int, path: str) -> bool:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)


def made_with(directory: str, mark: str) -> bool:
    """Whether ``directory`` is one mrun made with the file ``mark`` in it first: it holds the
    mark, or nothing (a removal, which takes the mark last, killed before its rmdir; or a
    making killed before the mark). Checked with one stat where the mark is there."""
    if os.path.isfile(os.path.join(directory, mark)):
        return True
    try:
        with os.scandir(directory) as entries:
            return next(entries, None) is None
    except (FileNotFoundError, NotADirectoryError):
        return False


def held_by_someone(path: str) -> bool:
    """Is ``path`` flocked by a live process? (A writer holds a lock on its temporary file, so
    cleanup can tell a killed writer's leftovers from a write in progress.)"""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def oci_state(store: Store, record: Record, status: Status | None = None) -> dict[str, Any]:
    """The runtime-spec state document, plus runc's extra fields (rootfs, created, owner)."""
    status = status or store.status(record)
    return {
        "ociVersion": OCI_VERSION,
        "id": record.id,
        "pid": record.pid if status != Status.STOPPED else 0,
        "status": str(status),
        "bundle": record.bundle,
        "rootfs": record.rootfs,
        "created": record.created,
        "owner": record.owner,
        "annotations": record.annotations,
    }


def now_rfc3339() -> str:
    return rfc3339(time.time())


def rfc3339(t: float) -> str:
    """Seconds since the epoch as RFC 3339 in UTC, to the nanosecond (docker's and runc's form)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e9):09d}Z"


def _sweep_unheld(making: str) -> bool:
    """Remove a create's ``making`` directory if nobody holds its lock, holding that lock
    ourselves while we do. Looked at and then removed unheld, a create that took the lock
    between the look and the unlink went on with a lock file no longer in its directory, renamed
    it into place so, and its own next lock (its start's) found a directory mrun had not made:
    "does not exist" (seen once in ~20 runs of four concurrent `run --rm`). Held, such a
    create waits for us, finds its lock file gone (``FileLock`` recheck) and makes its directory
    anew. No lock file yet: a create between its mkdir and its lock, or one killed there; an
    empty directory goes (that create's lock then finds no directory, and it makes another).
    -> whether it was ours to take."""
    try:
        fd = os.open(os.path.join(making, "lock"), os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        try:
            os.rmdir(making)
            return True
        except OSError:
            return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # a live create's
        _remove_flat(making)
        return True
    finally:
        os.close(fd)


def _remove_flat(path: str) -> None:
    """A directory of files (a container's, flat) and the directory; gone already is fine, and
    so is one refilled meanwhile (a ``reserve`` whose lock file was swept makes it anew, and
    holds it: it is that create's again)."""
    try:
        _empty(list(os.scandir(path)))
        os.rmdir(path)
    except FileNotFoundError:
        pass
    except OSError as e:
        if e.errno != errno.ENOTEMPTY:
            raise


def _rename_noreplace(source: str, target: str) -> None:
    """``syscalls.rename_noreplace``; where the filesystem has no such rename (EINVAL), a plain
    one after a look (what a --root on such a filesystem gets: the look and the rename are two
    steps there)."""
    from mrun.kernel.syscalls import rename_noreplace

    try:
        rename_noreplace(source, target)
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.ENOSYS):
            raise
        if os.path.lexists(target):
            raise FileExistsError(errno.EEXIST, f"{target} exists")
        os.rename(source, target)


def _empty(entries: list[os.DirEntry[str]], keep: tuple[str, ...] = ()) -> None:
    """Remove ``entries`` of a container's directory (flat: its files, and directories of files)
    but those named in ``keep``; one already gone is fine."""
    for e in entries:
        if e.name in keep:
            continue
        try:
            if e.is_dir(follow_symlinks=False):
                for sub in os.scandir(e.path):
                    os.unlink(sub.path)
                os.rmdir(e.path)
            else:
                os.unlink(e.path)
        except FileNotFoundError:
            pass

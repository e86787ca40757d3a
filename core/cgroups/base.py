"""The interface both cgroup drivers implement, and what they share."""

from __future__ import annotations

import errno
import os
import time

from mrun.errors import InvalidSpec, MrunError
from mrun.kernel import proc
from mrun.kernel.proc import SIGKILL
from mrun.kernel.tree import directories

PIN_BATCH = 64  # processes pinned at once while signalling a cgroup's members

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~6 ms (it imports re) on the lifecycle verbs' hot path
    from typing import Any


def read(path: str) -> str:
    """A cgroup file's text, stripped. Bare descriptors, not ``open()``: its text layer costs five
    more system calls per file (fstat twice, an ioctl, two lseeks), and a create reads a cgroup
    file some 30 times (claim, cpuset, each limit's old value)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks).decode("utf-8", "surrogateescape").strip()


def write(path: str, value: str) -> None:
    """``value`` as its bytes were given (argv's and JSON's bytes that are not UTF-8 come as
    surrogate escapes), for the kernel to judge; a surrogate no byte stands for is refused here."""
    try:
        data = value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raise MrunError(f"cannot write {value!r} to {path}: it holds a character no bytes stand for")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise MrunError(f"cgroup file {path} does not exist (is that controller available here?)")
    try:
        os.write(fd, data)
    except OSError as e:
        raise MrunError(f"cannot write {value!r} to {path}: {e.strerror}")
    finally:
        os.close(fd)


def keyed(path: str) -> dict[str, int]:
    """Parse a flat keyed file such as memory.events or cpu.stat."""
    out: dict[str, int] = {}
    try:
        for line in read(path).splitlines():
            key, _, value = line.partition(" ")
            if value.strip().lstrip("-").isdigit():
                out[key] = int(value)
    except OSError:
        pass
    return out


HASHED = "#"  # a mark named by its path's hash, the path inside: one whose name would pass NAME_MAX


def _mark_name(marks: str, path: str) -> str:
    """The path itself, quoted; a path too long for a file name (a deep --cgroup-parent) by its
    hash, its file holding the path (``_marked_path``)."""
    name = path.strip("/").replace("%", "%25").replace("/", "%2F")
    if len(os.fsencode(name)) > 255:
        import hashlib

        name = HASHED + hashlib.sha256(os.fsencode(path)).hexdigest()
    return os.path.join(marks, name)


def _marked_path(marks: str, name: str) -> str | None:
    """``_mark_name`` undone; None for a hashed mark without its path (cut short by a crash)."""
    if not name.startswith(HASHED):
        return "/" + name.replace("%2F", "/").replace("%25", "%")
    try:
        with open(os.path.join(marks, name), "rb") as f:
            return f.read().decode(errors="surrogateescape") or None
    except OSError:
        return None


def mark(marks: str, path: str) -> None:
    """The directory of marks is made only when it is missing: a create marks every parent it
    makes twice, in each hierarchy (16 marks for one parent on v1). A hashed mark is written
    whole before it takes its name, so no crash leaves one without its path."""
    for attempt in range(4) if marks else ():
        name = _mark_name(marks, path)
        try:
            if os.path.basename(name).startswith(HASHED):
                tmp = f"{name}.tmp-{os.getpid()}"
                fd = os.open(tmp, os.O_CREAT | os.O_TRUNC | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
                try:
                    os.write(fd, path.encode(errors="surrogateescape"))
                finally:
                    os.close(fd)
                os.rename(tmp, name)
            else:
                os.close(os.open(name, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o600))
            return
        except FileNotFoundError:  # none yet, or removed as empty by a concurrent release
            if attempt == 3:
                raise
            os.makedirs(marks, mode=0o700, exist_ok=True)


def marked(marks: str, path: str) -> bool:
    """Whether ``path`` carries mrun's mark: made by a command of this state root."""
    return bool(marks) and os.path.lexists(_mark_name(marks, path))


def unmark(marks: str, path: str) -> None:
    """``path``'s mark gone, once the directory is."""
    try:
        os.unlink(_mark_name(marks, path))
    except FileNotFoundError:
        pass


def make_parents(path: str, marks: str) -> None:
    """mkdir -p of ``path``'s parents. Each parent mrun makes is marked in ``marks`` (before the
    mkdir, so a crash leaves a mark and never an unmarked directory; and again after, in case a
    concurrent release removed the mark): whichever container of this state root leaves last
    removes it (``release_parents``), so concurrent or killed creates leave no empty parents."""
    missing = []
    p = os.path.dirname(path)
    while not os.path.isdir(p):
        missing.append(p)
        p = os.path.dirname(p)
    for d in reversed(missing):
        mark(marks, d)
        try:
            os.mkdir(d)
        except FileExistsError:
            pass
        mark(marks, d)


def release_parents(path: str, marks: str) -> None:
    """Remove ``path``'s empty parents that carry mrun's mark, bottom up; stop at the first in use.
    Then the directory of marks, if nothing is marked any more: also when this finds no mark at
    all, for a release killed after unlinking the last one left that directory behind."""
    if not marks:
        return
    p = os.path.dirname(path)
    while p not in ("/", ""):
        mark_file = _mark_name(marks, p)
        if not os.path.exists(mark_file):
            if os.path.lexists(p):
                break  # not made by us: neither it nor what is above it is ours to remove
            p = os.path.dirname(p)  # never made (a create that failed on its way down)
            continue
        try:
            os.rmdir(p)
        except FileNotFoundError:
            pass
        except OSError:
            return  # another container still uses it: the last one out removes it
        try:
            os.unlink(mark_file)
        except FileNotFoundError:
            pass
        if os.path.isdir(p):  # a concurrent create made it again between our rmdir and unlink
            mark(marks, p)
            return
        p = os.path.dirname(p)
    try:
        os.rmdir(marks)  # nothing marked any more: leave the state root as it was
    except OSError:
        pass


def release_marked(marks: str) -> list[str]:
    """Remove every marked parent that no container uses any more, whichever container made it
    (`mrun system prune`, after crashes), the deepest first: a parent's marked child is removed
    before the parent is tried. -> the cgroups removed."""
    found = []
    for name in os.listdir(marks) if os.path.isdir(marks) else []:
        path = _marked_path(marks, name)
        if path is None or ".tmp-" in name and name.startswith(HASHED):  # a hashed mark cut short
            os.unlink(os.path.join(marks, name))
        else:
            found.append((path, name))
    removed = []
    for path, name in sorted(found, key=lambda pair: len(pair[0]), reverse=True):
        try:
            os.rmdir(path)
            removed.append(path)
        except FileNotFoundError:
            pass
        except OSError:
            continue  # still holds a container
        os.unlink(os.path.join(marks, name))
    try:
        os.rmdir(marks)
    except OSError:
        pass
    return removed


# A huge page limit is written twice, as runc writes it: for faults, and for reservations
# (hugetlb.SIZE.rsvd.*), which mmap charges. With the first alone a container reserved pages
# past its limit, out of the node's pool for every other container. Kernels before 5.7 have
# no reservation files: there the fault limit is all there is.
RESERVATION = ".rsvd."
# Files that have no old value to read back (v1's device rules: a read says EINVAL, after three
# system calls per rule, 13 rules for a default container).
WRITE_ONLY = frozenset({"devices.allow", "devices.deny"})


def write_all(writes: list[tuple[str, str]], v2: bool = False) -> None:
    """Write each (file, value) in order, or none of them: on a failure the files already written
    get their old values back (in reverse), so an update is all-or-nothing, as the CRI expects.
    The error names the linux.resources field whose write the kernel refused."""
    done: list[tuple[str, str]] = []
    path = ""
    try:
        for path, value in writes:
            if RESERVATION in os.path.basename(path) and not os.path.exists(path):
                continue
            old = None
            if os.path.basename(path) not in WRITE_ONLY:
                try:
                    old = read(path)
                except OSError:
                    pass
            write(path, value)
            if old is not None:
                done.append((path, old))
    except MrunError as e:
        for done_path, old in reversed(done):
            try:
                write(done_path, old)
            except MrunError:
                pass  # a file whose old form the kernel will not take back (e.g. a keyed list)
        from mrun.cgroups.resources import field_of

        raise MrunError(f"{field_of(os.path.basename(path), v2)}: {e}") from None


def procs_in(path: str) -> list[int]:
    """The processes in the cgroup ``path``; none where it is gone, or going: a cgroup removed
    while its file is opened or read answers ENODEV (`rm` watching a supervisor that removes its
    own cgroup as it leaves it said "rm: No such device")."""
    try:
        return [int(x) for x in read(os.path.join(path, "cgroup.procs")).split()]
    except FileNotFoundError:
        return []
    except OSError as e:
        if e.errno == errno.ENODEV:
            return []
        raise


class Cgroup:
    """A container's cgroup; v1 spans several hierarchies, v2 is one directory.

    Ownership is explicit, because a cgroup is shared with the rest of the host: ``created``
    lists the container's directories that did not exist before it (recorded before the mkdir:
    only these are ever removed); ``inodes`` records, once a directory was found empty and
    claimed, its identity. Processes are signalled only in a claimed directory whose inode
    still matches, so a stale or forged state file cannot aim a kill at someone else's cgroup.
    """

    version = 0
    created: list[str]
    inodes: dict[str, int]
    marks: str

    def _init_ownership(self, saved: dict[str, Any] | None) -> None:
        saved = saved or {}
        # Only the container's own directories: an older mrun also listed parents here.
        self.created = [d for d in saved.get("created") or [] if d in self._dirs()]
        self.inodes = dict(saved.get("inodes") or {})
        self.marks = saved.get("marks") or ""

    def _ownership(self) -> dict[str, Any]:
        return {"created": self.created, "inodes": self.inodes, "marks": self.marks}

    def plan(self, marks: str) -> None:
        """Before anything is made: which of the container's directories it will create."""
        self.marks = marks
        self.created = [d for d in self._dirs() if not os.path.isdir(d)]

    def _make_dirs(self, prepare_leaf: Any = None) -> None:
        """Each leaf with its parents; once a leaf exists its parents cannot be removed (a
        cgroup with children is busy), so ``prepare_leaf`` runs with them in place."""
        for leaf in self._dirs():
            for attempt in range(5):
                try:
                    make_parents(leaf, self.marks)
                    try:
                        os.mkdir(leaf)
                    except FileExistsError:
                        pass
                    if prepare_leaf is not None:
                        prepare_leaf(leaf)
                    break
                except FileNotFoundError:  # a parent removed under us by a concurrent release
                    if attempt == 4:
                        raise

    def claim(self) -> None:
        """Refuse a cgroup that already holds processes (runc does too): mrun must never kill or
        remove what the container does not own. Then record each directory's identity."""
        for d in self._dirs():
            pids = procs_in(d)
            if pids:
                shown = " ".join(str(p) for p in pids[:5]) + (" ..." if len(pids) > 5 else "")
                raise InvalidSpec(
                    f"linux.cgroupsPath: {d} already holds {len(pids)} process(es) ({shown}); "
                    "a container needs a cgroup of its own"
                )
        self.inodes = {d: os.stat(d).st_ino for d in self._dirs()}

    def make(self) -> None:
        """Its directories, made and claimed, no limit written yet (``create`` writes them; a
        cgroup for a process of mrun's own, cgroups.beside, has none)."""
        self._make_dirs(self._prepare_leaf)
        self.claim()

    def _prepare_leaf(self, leaf: str) -> None:
        """What a new directory needs before a process may join it (v1's cpuset: its cpus)."""

    def dirs(self) -> list[str]:
        """Its directories, one per hierarchy."""
        return self._dirs()

    def hierarchy_roots(self) -> list[str]:
        """The root directory of each hierarchy it spans."""
        raise NotImplementedError

    def owned(self) -> list[str]:
        """The directories this container claimed and that are still the same ones."""
        out = []
        for d in self._dirs():
            try:
                if self.inodes.get(d) == os.stat(d).st_ino:
                    out.append(d)
            except FileNotFoundError:
                continue
        return out

    def apply(self, resources: dict[str, Any], devices: list[dict[str, Any]] | None = None) -> None:
        raise NotImplementedError

    def add(self, pid: int, born: bool = False) -> None:
        """Move ``pid`` into every hierarchy; ``born``: it was born in ``birth_dir()``, which it
        is then not moved into again (a move there, even to where it is, takes the global lock)."""
        raise NotImplementedError

    def birth_dir(self) -> str | None:
        """The cgroup2 directory a process can be born in (clone3's CLONE_INTO_CGROUP,
        kernel.syscalls.fork_into_cgroup), where it then needs no move; None: no cgroup2 one."""
        return None

    def within(self, requests: list[str]) -> Cgroup:
        """runc's ``exec --cgroup [CONTROLLER:]PATH``: the same container's existing sub-cgroup(s)
        for one process (with no controller, every controller's)."""
        raise NotImplementedError

    def thread_files(self, born: bool = False) -> list[str]:
        """Files a single-threaded process writes "0" to, to move itself in without the kernel's
        global threadgroup lock (launch._join_threadwise); [] where there are none. ``born``: as
        ``add``'s."""
        return []

    def _procs_dir(self) -> str:
        """The directory whose cgroup.procs lists the container's processes."""
        raise NotImplementedError

    def _freezer_dir(self) -> str:
        """The directory whose freezer stops them ("" where there is none)."""
        raise NotImplementedError

    def pids(self) -> list[int]:
        """Every process of the container's cgroup, those in its sub-cgroups too (a container's
        systemd, or any process with the cgroup tree writable, makes some): as runc's
        GetAllPids. Only the top ones were signalled, and the rest outlived `delete --force`."""
        return [pid for d in directories(self._procs_dir()) for pid in procs_in(d)]

    def set_frozen(self, frozen: bool) -> None:
        raise NotImplementedError

    def is_frozen(self) -> bool:
        raise NotImplementedError

    def stats(self) -> dict[str, Any]:
        raise NotImplementedError

    def runc_stats(self) -> dict[str, Any]:
        """The figures as `runc events` lays them out (``mrun.cgroups.runc_stats``)."""
        raise NotImplementedError

    def oom_kills(self) -> int:
        """The memory controller's OOM kill count; one file, not all the stats (every delete asks)."""
        path = self._oom_file()
        try:
            return int(keyed(path).get("oom_kill", 0)) if path else 0
        except FileNotFoundError:
            return 0

    def _oom_file(self) -> str:
        """The keyed file that counts OOM kills ("" without a memory controller)."""
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def _dirs(self) -> list[str]:
        raise NotImplementedError

    def exists(self) -> bool:
        return any(os.path.isdir(d) for d in self._dirs())

    def kill_all(self, sig: int = SIGKILL) -> None:
        """Signal every process of a claimed cgroup; SIGKILL is sent frozen, so a fork bomb cannot
        outrun it. An unclaimed or replaced cgroup is someone else's: nothing is signalled, and
        nothing is frozen, unless the very directory the pids (or the freezer) come from is claimed."""
        owned = self.owned()
        if self._procs_dir() not in owned:
            return
        freeze = sig == SIGKILL and self._freezer_dir() in owned
        if freeze:
            try:
                self.set_frozen(True)
            except MrunError:
                freeze = False  # no freezer here: signal them running
        try:
            self._signal_members(sig)
        finally:
            if freeze and self.is_frozen():
                self.set_frozen(False)  # killed tasks die only once thawed

    def _signal_members(self, sig: int) -> None:
        """Each process listed is pinned (a pidfd), then the list is read again: a pinned process
        listed again is a member, and the signal goes to it alone. Killed by number, one that
        ended between the reading and its signal could have had its number taken by a stranger
        outside the cgroup. Pinned a batch at a time: a fork bomb's thousands would exhaust the
        descriptors."""
        listed = self.pids()
        for first in range(0, len(listed), PIN_BATCH):
            pinned: dict[int, int] = {}
            try:
                for pid in listed[first : first + PIN_BATCH]:
                    try:
                        pinned[pid] = proc.pin(pid)
                    except ProcessLookupError:
                        pass
                members = set(self.pids()) if pinned else set()
                for pid, fd in pinned.items():
                    if pid in members:
                        try:
                            proc.send(fd, pid, sig)
                        except ProcessLookupError:
                            pass
            finally:
                for fd in pinned.values():
                    if fd >= 0:
                        os.close(fd)

    def destroy(self, timeout: float = 10.0) -> None:
        """Kill what is left in a claimed cgroup, then remove what the container created (leaf
        first) and the marked parents nobody uses any more."""
        deadline = time.monotonic() + timeout
        delay = 0.001
        while self._procs_dir() in self.owned() and self.pids():
            self.kill_all(SIGKILL)
            if time.monotonic() > deadline:
                raise MrunError(f"processes in {self._dirs()[0]} did not die within {timeout:.0f}s")
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
        owned = self.owned()
        for d in sorted(self.created, key=len, reverse=True):
            # the sub-cgroups the container made below its own go first, leaf first, the directory
            # itself last (they were left, and with them the directory, which rmdir refused)
            for path in directories(d, leaves_first=True) if d in owned else [d]:
                rmdir_cgroup(path)
        for d in self._dirs():
            release_parents(d, self.marks)


def rmdir_cgroup(path: str, wait: bool = True) -> bool:
    """rmdir of an empty cgroup; ``wait``: a while for its last process to finish leaving.
    -> False where it is still in use."""
    for attempt in range(50 if wait else 1):
        if attempt:
            time.sleep(0.01)  # the last killed task is still leaving
        try:
            os.rmdir(path)
            return True
        except FileNotFoundError:
            return True
        except OSError as e:
            if e.errno != errno.EBUSY:
                return True
    return False


def sub_request(text: str) -> tuple[str, str]:
    """``exec --cgroup``'s ``[CONTROLLER:]PATH`` -> (controllers, a path below the container's
    cgroup): never its root, never above it."""
    ctrl, _, rel = text.rpartition(":")
    norm = os.path.normpath(rel.strip("/") or ".")
    if norm == "." or norm == ".." or norm.startswith("../") or "\0" in norm:
        raise InvalidSpec(f"--cgroup {text}: a sub-cgroup of the container's cgroup expected")
    return ctrl, norm

"""Host side of starting a process in a sandbox: fork, join or create namespaces, hand back a pid.

Only a child forked *after* unshare(CLONE_NEWPID) (or setns into a PID namespace) lives in
that PID namespace. Usually the host itself does that for its next child only, forks the
container's process straight into it, and goes back to its own (``_direct``):

    mrun (host) --unshare(PID), fork, setns(own PID ns)--> sandboxed process: joins/unshares the rest

A user namespace (a new one must own the namespaces made after it and needs its maps written
from outside) or a time namespace (which, like PID, only takes children) keeps a middle
process, as runc has:

    mrun (host) --fork--> intermediate: joins/unshares namespaces --fork--> sandboxed process
                                          (reports the pid, exits)

One fork fewer is one copy and one teardown fewer of the host's page tables, 1-2 ms of CPU
when the host is a warm template's child. A direct fork is born in the container's cgroup2
cgroup where there is one (``_fork_born``: clone3's CLONE_INTO_CGROUP, no move, no global lock);
into the rest (a hybrid host's v1 hierarchies, or all of them for a process not born there) the
sandboxed process moves itself where the driver lets it, else the host moves it, before it
unshares the cgroup namespace. Everything travels as JSON lines over a pair of pipes; the sandboxed process
reports errors the same way, so a failure inside the container is one clear line on the host.
"""

from __future__ import annotations

import os

from mrun import jsonio
from mrun.errors import MrunError, SetUpDied
from mrun.kernel import syscalls as sc
from mrun.kernel.proc import SIGKILL

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, NoReturn


class Channel:
    """One end of a bidirectional JSON-lines link made of two pipes."""

    def __init__(self, rfd: int, wfd: int) -> None:
        self.rfd, self.wfd = rfd, wfd
        self.buf = b""
        self.held: list[dict[str, Any]] = []  # messages that arrived before the one awaited
        self.seen: set[str] = set()  # keys the sandboxed process has had from the host (await_key)

    @staticmethod
    def pair() -> tuple[Channel, Channel]:
        a_r, b_w = os.pipe()
        b_r, a_w = os.pipe()
        return Channel(a_r, a_w), Channel(b_r, b_w)

    def send(self, **msg: Any) -> None:
        os.write(self.wfd, jsonio.dumps(msg).encode() + b"\n")

    def recv(self) -> dict[str, Any]:
        if self.held:
            return self.held.pop(0)
        while b"\n" not in self.buf:
            chunk = os.read(self.rfd, 65536)
            if not chunk:
                return {"eof": True}
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return jsonio.loads(line)

    def close(self) -> None:
        for fd in (self.rfd, self.wfd):
            try:
                os.close(fd)
            except OSError:
                pass


class Launch:
    """What the intermediate process does: namespaces to join (by path) or create ('')."""

    def __init__(
        self,
        namespaces: dict[str, str],
        child: Callable[[Channel], NoReturn],
        add_to_cgroup: Callable[[int], None] | None = None,
        uid_mappings: list[dict[str, int]] | None = None,
        gid_mappings: list[dict[str, int]] | None = None,
        close_in_child: tuple[int, ...] = (),
        thread_files: Callable[[], list[str]] | None = None,
        pristine: Any = None,
        time_offsets: dict[str, dict[str, int]] | None = None,
        oom_score_adj: int | None = None,
        rlimits: list[tuple[int, int, int]] | None = None,
        born_in: str | None = None,
    ) -> None:
        self.namespaces, self.child, self.add_to_cgroup = namespaces, child, add_to_cgroup
        # The cgroup driver's files through which a single-threaded process moves itself in
        # without the kernel's global lock (Cgroup.thread_files); else the host moves it.
        self.thread_files = thread_files
        self.uid_mappings, self.gid_mappings = uid_mappings or [], gid_mappings or []
        # Descriptors the host keeps but the container must not: e.g. the container's flock,
        # which a long-lived init would otherwise hold (flock follows the open file).
        self.close_in_child = close_in_child
        # A copy of the host made before it planned anything, to play the intermediate
        # (mrun.sandbox.pristine.Pristine), or None: fork.
        self.pristine = pristine
        # linux.timeOffsets: written once the new time namespace exists, before anything is in it
        self.time_offsets = time_offsets or {}
        # process.oomScoreAdj, set by the intermediate before it enters a user namespace (where
        # /proc/self/oom_score_adj is no longer its root's to write); the init inherits it
        self.oom_score_adj = oom_score_adj
        # process.rlimits as (resource, soft, hard): in a user namespace the process cannot raise a
        # hard limit itself (CAP_SYS_RESOURCE of the host's), so the host sets them (spawn)
        self.rlimits = rlimits or []
        # The cgroup2 directory the process is born in where the kernel lets it (Cgroup.birth_dir,
        # _fork_born): then it needs no move there, and ``born`` says so to both sides.
        self.born_in = born_in
        self.born = False

    def __getstate__(self) -> dict[str, Any]:
        """As a pristine copy gets it (mrun.sandbox.pristine): the host-side callables are the
        host's (moving the process, its cgroup's files: listed now); what the host keeps from the
        container the copy never had."""
        import functools

        state = dict(self.__dict__)
        state["add_to_cgroup"] = _moved_by_host if self.add_to_cgroup is not None else None
        if self.thread_files:  # for either answer to "born?", which the copy's fork gives
            listed = {born: self.thread_files(born) for born in (False, True)}
            state["thread_files"] = functools.partial(_listed, listed)
        state["close_in_child"] = ()
        state["pristine"] = None
        if self.pristine is None or self.pristine.pid_namespace:
            state["born_in"] = None  # the copy is the process, forked already: it moves
        return state

    @property
    def joins_itself(self) -> bool:
        """The sandboxed process tries to move itself into its cgroup, and says whether it did."""
        return self.add_to_cgroup is not None and self.thread_files is not None


def _moved_by_host(_pid: int, _born: bool = False) -> None:
    """A pristine copy's ``add_to_cgroup``: the host moves the process (a copy never calls it)."""


def _listed(files: dict[bool, list[str]], born: bool = False) -> list[str]:
    """A pristine copy's ``thread_files``: the host's lists, made before it was sent."""
    return files[born]


def set_oom_score_adj(value: int) -> None:
    path = "/proc/self/oom_score_adj"
    current = "value"
    try:
        with open(path) as f:
            current = f.read().strip()
        with open(path, "w") as f:
            f.write(str(value))
    except OSError as e:
        hint = f" (going below the current {current} needs CAP_SYS_RESOURCE)" if e.errno == 13 else ""
        raise MrunError(f"process.oomScoreAdj: cannot set {value}: {e.strerror}{hint}")


def _write_time_offsets(pid: int, launch: Launch) -> None:
    """linux.timeOffsets into the time namespace ``pid`` made for its children, before the first
    of them is in it. By the host, as runc does: in a new user namespace the intermediate is not
    dumpable, and its /proc files are not its own to write."""
    text = "".join(f"{clock} {o.get('secs', 0)} {o.get('nanosecs', 0)}\n" for clock, o in launch.time_offsets.items())
    try:
        with open(f"/proc/{pid}/timens_offsets", "w") as f:
            f.write(text)
    except OSError as e:
        raise MrunError(f"linux.timeOffsets: cannot set: {e.strerror}")


def write_id_map(pid: int, name: str, maps: list[dict[str, int]]) -> None:
    """``/proc/<pid>/<name>`` (uid_map, gid_map) of a user namespace ``pid`` made: the runtime-spec's
    mappings, all in one write, as the kernel takes them (OSError: refused)."""
    text = "".join(f"{m['containerID']} {m['hostID']} {m['size']}\n" for m in maps)
    with open(f"/proc/{pid}/{name}", "w") as f:
        f.write(text)


def _write_maps(pid: int, launch: Launch) -> None:
    for name, field_name, maps in (
        ("uid_map", "uidMappings", launch.uid_mappings),
        ("gid_map", "gidMappings", launch.gid_mappings),
    ):
        if not maps:
            continue
        try:
            write_id_map(pid, name, maps)
        except OSError as e:
            raise MrunError(f"linux.{field_name}: cannot write {name}: {e.strerror}")


def fail_in_child(ch: Channel, err: BaseException) -> NoReturn:
    try:
        ch.send(error=str(err) or err.__class__.__name__)
    finally:
        os._exit(1)


def await_key(ch: Channel, key: str, seen: set[str]) -> None:
    """Until the host has sent ``key`` (keys it sent earlier than awaited are remembered)."""
    while key not in seen:
        msg = ch.recv()
        if "eof" in msg:
            os._exit(1)
        seen.update(msg)


def _open_thread_files(launch: Launch) -> list[int] | None:
    """Opened here, as host root in the host's namespaces: the process that writes "0" to them
    is in the container's (a joined mount namespace, a user namespace), and the kernel checks the
    credentials they were opened with. None: the host moves the process instead."""
    if not launch.joins_itself:
        return None
    fds: list[int] = []
    try:
        for path in launch.thread_files(launch.born):
            fds.append(os.open(path, os.O_WRONLY | os.O_CLOEXEC))
    except OSError:
        for fd in fds:
            os.close(fd)
        return None
    return fds or None


def _join_threadwise(fds: list[int]) -> bool:
    """Move ourselves (one thread: a fork child) into the container's cgroup. A write of "0" to
    a v1 ``tasks`` file moves the writing thread without cgroup_threadgroup_rwsem, whose first
    writer waits for an RCU grace period (5-20 ms here, runc's create pays it); cgroup.procs takes
    that lock. -> whether every hierarchy took us (else the host moves us, as before)."""
    joined = bool(fds) and len(os.listdir("/proc/self/task")) == 1
    for fd in fds:
        if joined:
            try:
                os.write(fd, b"0")
            except OSError:
                joined = False
        os.close(fd)
    return joined


def _sandboxed(launch: Launch, ch: Channel, join_fds: list[int] | None, cgroupns: bool) -> NoReturn:
    """The container's process, forked into its namespaces: first into its cgroup, then (a new
    cgroup namespace is rooted at the cgroup its creator is in) into a cgroup namespace of its
    own, then whatever ``launch.child`` does."""
    try:
        if launch.joins_itself:
            ch.send(joined=_join_threadwise(join_fds or []))
        if cgroupns:
            if launch.add_to_cgroup is not None:
                await_key(ch, "cgrouped", ch.seen)
            sc.unshare(sc.NS_FLAGS["cgroup"])
        launch.child(ch)
    except BaseException as e:  # noqa: BLE001 - reported to the host, then exit
        fail_in_child(ch, e)
    os._exit(0)


def _open_namespaces(launch: Launch, kinds: set[str]) -> dict[str, int]:
    """Every namespace of ``kinds`` to join, opened first: once we joined a mount namespace,
    /proc is no longer the host's."""
    fds: dict[str, int] = {}
    try:
        for kind, path in launch.namespaces.items():
            if path and kind in kinds:
                try:
                    fds[kind] = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                except OSError as e:
                    raise MrunError(f"linux.namespaces: cannot open {kind} namespace {path}: {e.strerror}")
    except BaseException:
        for fd in fds.values():
            os.close(fd)
        raise
    return fds


def _join(launch: Launch, kind: str, fd: int) -> None:
    try:
        sc.setns(fd, sc.NS_FLAGS[kind])
    except OSError as e:
        raise MrunError(f"linux.namespaces: cannot join {kind} namespace {launch.namespaces[kind]}: {e.strerror}")
    finally:
        os.close(fd)


def _new_namespaces(launch: Launch, skip: set[str]) -> int:
    """The unshare(2) flags of the namespaces to create, but ``skip``."""
    flags = 0
    for kind, path in launch.namespaces.items():
        if not path and kind not in skip:
            flags |= sc.NS_FLAGS[kind]
    return flags


def _intermediate(launch: Launch, ch: Channel) -> NoReturn:
    try:
        seen: set[str] = set()
        await_key(ch, "go", seen)
        if launch.oom_score_adj is not None and "user" in launch.namespaces:
            set_oom_score_adj(launch.oom_score_adj)
        join_fds = _open_thread_files(launch)
        fds = _open_namespaces(launch, set(sc.NS_FLAGS))
        joined_user = fds.pop("user", None)  # joined last: as host root we may still join the others
        for kind, fd in fds.items():
            _join(launch, kind, fd)
        if joined_user is not None:
            _join(launch, "user", joined_user)
        elif launch.namespaces.get("user") == "":
            sc.unshare(sc.CLONE_NEWUSER)
            ch.send(userns=True)
            await_key(ch, "mapped", seen)
        if "user" in launch.namespaces:
            os.setresgid(0, 0, 0)
            os.setresuid(0, 0, 0)
        flags = _new_namespaces(launch, {"user", "cgroup"})  # a new cgroup one: in _sandboxed
        if flags:
            sc.unshare(flags)
        if launch.time_offsets:  # the host writes them, as it writes the user namespace's maps
            ch.send(timens=True)
            await_key(ch, "offsets", seen)
        pid = os.fork()
        if pid == 0:
            _sandboxed(launch, ch, join_fds, launch.namespaces.get("cgroup") == "")
        for fd in join_fds or ():
            os.close(fd)
        ch.send(pid=pid)
    except BaseException as e:  # noqa: BLE001
        fail_in_child(ch, e)
    os._exit(0)


def _direct_child(launch: Launch, ch: Channel, announce: bool = True) -> NoReturn:
    """Forked into the container's PID namespace already: the other namespaces, then as
    ``_sandboxed``. Says ``entered`` (or fails) before anything else, as the intermediate says
    ``pid``; not ``announce``: its forker (a pristine copy) says ``pid`` instead."""
    try:
        join_fds = _open_thread_files(launch)
        for kind, fd in _open_namespaces(launch, set(sc.NS_FLAGS) - {"pid"}).items():
            _join(launch, kind, fd)
        flags = _new_namespaces(launch, {"pid", "cgroup"})
        if flags:
            sc.unshare(flags)
        if announce:
            ch.send(entered=True)
    except BaseException as e:  # noqa: BLE001
        fail_in_child(ch, e)
    _sandboxed(launch, ch, join_fds, launch.namespaces.get("cgroup") == "")


def direct_from_copy(launch: Launch, ch: Channel) -> NoReturn:
    """A plain pristine copy's part in a direct launch: the fork the host would make (into the
    container's PID namespace, born in its cgroup2 cgroup: no move, no global lock), then the
    intermediate's report, the pid and whether it was born there, and its exit. A copy made in
    a PID namespace of its own is the process itself, but was made before the cgroup existed
    and had to be moved there: the move's grace period, waited holding cgroup_mutex, was ~10 ms
    of a wasm container's Create in the shim (bench/timeline.py)."""
    try:
        await_key(ch, "go", set())
        pid = _fork_into_pid_namespace(launch)
        if pid == 0:
            _direct_child(launch, ch, announce=False)
        ch.send(pid=pid, born=launch.born)
    except BaseException as e:  # noqa: BLE001
        fail_in_child(ch, e)
    os._exit(0)


def _direct(launch: Launch) -> bool:
    """No namespace that needs the middle process (see the module's docstring). A time namespace,
    joined or new, is entered by its creator's children only, as a PID one is."""
    return _direct_namespaces(launch.namespaces)


def _direct_namespaces(namespaces: dict[str, str]) -> bool:
    return "user" not in namespaces and "time" not in namespaces


def _fork_into_pid_namespace(launch: Launch) -> int:
    """Fork, the child into the container's PID namespace (new or joined) when it has one; we
    stay in ours: unshare/setns(CLONE_NEWPID) only sets where our *next* children go, and we
    set that back before anything else can fork."""
    if "pid" not in launch.namespaces:
        return _fork_born(launch, lambda: None)
    if launch.born_in is not None:
        sc.clone_into_cgroup_works()  # asked now, if not yet: the question is a clone3 the kernel refuses
    target = _open_namespaces(launch, {"pid"}).get("pid")
    ours = os.open("/proc/thread-self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    try:
        if target is not None:
            _join(launch, "pid", target)
            return fork_then_return(ours, lambda: _fork_born(launch, lambda: None))
        _new_pid_namespace()

        def afresh() -> None:
            """A first process that the kernel refused to make (a refused birth) leaves its new
            PID namespace taking no other (free_pid: ENOMEM for every later fork): another one,
            made from ours (unshare takes no PID namespace but from the active one)."""
            sc.setns(ours, sc.CLONE_NEWPID)
            _new_pid_namespace()

        return fork_then_return(ours, lambda: _fork_born(launch, afresh))
    finally:
        os.close(ours)


def _new_pid_namespace() -> None:
    try:
        sc.unshare(sc.CLONE_NEWPID)
    except OSError as e:
        raise MrunError(f"linux.namespaces: cannot create a pid namespace: {e.strerror}")


def _fork_born(launch: Launch, before_a_plain_fork: Callable[[], None]) -> int:
    """os.fork(), the child born in ``launch.born_in`` where the kernel lets it
    (syscalls.fork_into_cgroup; ``launch.born`` says so, in both); else, after a refused birth
    ``before_a_plain_fork()``, a plain fork, moved after as before."""
    if launch.born_in is None or not sc.clone_into_cgroup_works():
        return os.fork()
    try:
        pid = sc.fork_into_cgroup_at(launch.born_in)
    except OSError:  # refused (a seccomp filter, a cgroup that takes no process): as before
        before_a_plain_fork()
        return os.fork()
    if pid is None:  # gone: the move after reports it, as before
        return os.fork()
    launch.born = True  # in the child too
    return pid


def born_in_cgroup(namespaces: dict[str, str]) -> bool:
    """Whether a process with ``namespaces`` will be born in its cgroup2 cgroup (a direct fork,
    clone3 here) rather than moved there, a move that ``cgroups.prime_moves`` warms."""
    return _direct_namespaces(namespaces) and sc.clone_into_cgroup_works()


def fork_then_return(ours: int, fork: Callable[[], int] = os.fork) -> int:
    """Fork (``fork``) into the PID namespace set for our children, then (in the parent, or when
    the fork fails) set that back to ours: ``ours``, a descriptor of it."""
    try:
        pid = fork()
    except BaseException:
        sc.setns(ours, sc.CLONE_NEWPID)
        raise
    if pid:
        sc.setns(ours, sc.CLONE_NEWPID)
    return pid


def _joined(host: Channel, launch: Launch) -> bool:
    """Whether the sandboxed process moved itself into its cgroup: its first word, if it was
    given the files to. Other messages wait in ``held``; one that says it failed ends the wait."""
    if not launch.joins_itself:
        return False
    held = []
    try:
        while True:
            msg = host.recv()
            if "joined" in msg:
                return bool(msg["joined"])
            held.append(msg)
            if {"error", "eof"} & msg.keys():
                return True  # nothing left to move; the error is reported as before
    finally:
        host.held = held + host.held


DIED = "the sandbox set-up process died before starting the container"


def _tell(host: Channel, **msg: Any) -> None:
    """A word to the process being set up, which may have died (killed, or out of memory)."""
    try:
        host.send(**msg)
    except BrokenPipeError:
        raise SetUpDied(DIED) from None


def _from_intermediate(host: Channel, pidfd: int | None) -> dict[str, Any]:
    """``host.recv()`` for the intermediate's turn, watching it too (``pidfd``: None, without
    one). It forks the container's process, which inherits the channel and waits for our word:
    killed between that fork and its report, the intermediate would leave us waiting for good,
    the channel held open by a process waiting for us. Once it has died, what it wrote is in the
    pipe already: whatever is there is read, and then its death is the end of the channel."""
    import select

    if pidfd is None:
        return host.recv()
    while not host.held and b"\n" not in host.buf:
        ready = select.select([host.rfd, pidfd], [], [])[0]
        if host.rfd not in ready and not select.select([host.rfd], [], [], 0)[0]:
            return {"eof": True}  # dead, and nothing more of its in the pipe
        chunk = os.read(host.rfd, 65536)
        if not chunk:
            return {"eof": True}
        host.buf += chunk
    return host.recv()


def _pidfd(pid: int) -> int | None:
    """A pidfd of our unreaped child, or None (Linux < 5.3: we wait on the channel alone)."""
    try:
        return os.pidfd_open(pid)
    except OSError:
        return None


def _fork(launch: Launch, host: Channel, child: Channel) -> tuple[int, bool]:
    """-> (the process that goes on with ``child``: 0 in it, else its pid; whether it is the
    container's process itself). A pristine copy armed for this create becomes the container's
    process, or takes the intermediate's part (mrun.sandbox.pristine); else we fork, straight
    into the PID namespace where we can."""
    armed = launch.pristine
    if armed is not None and not armed.handed:
        # A copy in a PID namespace of its own can only be the process of a container that
        # asks for a new one (and goes direct); else it is let go, and we fork as before.
        fits = not armed.pid_namespace or (_direct(launch) and launch.namespaces.get("pid") == "")
        try:
            if fits and armed.hand_over(launch, child, (host.rfd, host.wfd, *launch.close_in_child)):
                return armed.pid, armed.pid_namespace
        finally:
            if not armed.handed:
                armed.let_go()  # it ends; its armer reaps it, after the create
    direct = _direct(launch)
    return (_fork_into_pid_namespace(launch) if direct else os.fork()), direct


def spawn(launch: Launch) -> tuple[int, Channel]:
    """Start the sandboxed process; return its host pid and the host end of the channel."""
    from mrun.cgroups import primed

    primed()
    host, child = Channel.pair()
    try:
        forked, direct = _fork(launch, host, child)
    except BaseException:
        host.close()
        child.close()
        raise
    if forked == 0:
        host.close()
        for fd in launch.close_in_child:
            os.close(fd)
        if direct:
            _direct_child(launch, child)
        _intermediate(launch, child)
    child.close()
    # Until it has said "pid", the intermediate's death ends the wait (_from_intermediate).
    watched = None if direct else _pidfd(forked)
    recv = host.recv if direct else (lambda: _from_intermediate(host, watched))
    try:
        if direct:
            msg = recv()
            pid = forked
        else:
            _tell(host, go=True)
            msg = recv()
            if msg.get("userns"):
                _write_maps(forked, launch)
                _tell(host, mapped=True)
                msg = recv()
            if msg.get("timens"):
                _write_time_offsets(forked, launch)
                _tell(host, offsets=True)
                msg = recv()
        # The sandboxed process may speak before the intermediate reports its pid.
        early = []
        while not ({"pid", "entered", "error", "eof"} & msg.keys()):
            early.append(msg)
            msg = recv()
        host.held = early + host.held
        if "error" in msg:
            raise MrunError(msg["error"])
        if "eof" in msg:
            raise SetUpDied(DIED)
        if not direct:
            pid = msg["pid"]
            launch.born = bool(msg.get("born"))  # a copy's fork, born in born_in
        # It moves itself into its cgroup where the driver lets it (_join_threadwise); else we
        # move it while it builds its root, for the first move waits for an RCU grace period
        # (5-20 ms here). It waits for "cgrouped" before it runs hooks or makes its payload, so
        # nothing it starts or allocates is outside.
        if launch.add_to_cgroup and not _joined(host, launch):
            launch.add_to_cgroup(pid, launch.born)
        if "user" in launch.namespaces:
            set_rlimits(pid, launch.rlimits)
        _tell(host, cgrouped=True)
        return pid, host
    except BaseException:
        host.close()
        if direct:
            _end_child(forked)
        raise
    finally:
        if watched is not None:
            os.close(watched)
        pristine = launch.pristine
        if not direct and not (pristine is not None and pristine.handed and pristine.pid == forked):
            os.waitpid(forked, 0)  # a pristine copy is reaped by its armer (disarm), off this path


def set_rlimits(pid: int, rlimits: list[tuple[int, int, int]]) -> None:
    """The process's rlimits, set from here (prlimit) in a user namespace while it waits for
    "cgrouped": it could not raise a hard limit itself. Its own setrlimit before it reports ready
    (ProcessPlan.apply) sets the same values, which needs nothing; without a user namespace that
    is where they are set, and a limit the kernel refuses fails the create, as runc's does."""
    import resource

    for num, soft, hard in rlimits:
        try:
            resource.prlimit(pid, num, (soft, hard))
        except (OSError, ValueError) as e:
            why = "raising a hard limit needs CAP_SYS_RESOURCE" if isinstance(e, PermissionError) else str(e)
            raise MrunError(f"process.rlimits: cannot set resource {num} to {soft}/{hard} ({why})")


def _end_child(pid: int) -> None:
    """Our own child, not yet anybody's container, after a failed start: killed and reaped. Only
    while it is unreaped is its pid surely its own (a host that ignores SIGCHLD has it reaped
    by the kernel, and then it is left alone)."""
    try:
        if os.waitpid(pid, os.WNOHANG)[0]:
            return
        os.kill(pid, SIGKILL)
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass

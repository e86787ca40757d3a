"""A pristine init: the container's process comes from a copy of the creating process made
before the create touched anything, and is sent its plan as data.

Why: a forked child shares its parent's pages until one of them writes; a page the parent wrote
after the fork stays the child's alone once the parent exits. The shim's create worker (forked
from the warm template through the daemon and its helper) writes ~3 MiB while it plans a
container — reference counts of everything it runs, the config it parses, the cgroup it makes —
and an init forked at the end inherited all of it as private memory: most of a waiting wasm
container's 5 MiB. A process forked at the worker's first instant shares only what the template
and the helper hold (shared by every container), and adds only what its own part writes.

How: ``arm()`` forks the copy, and the copy waits on a socket. ``launch.spawn`` hands it the
``Launch`` (pickled; the sandbox in it included) and the creating process's descriptors, which
it puts at the same numbers, so it is the process the creating one would have forked from. Where
a container's process can be born in its cgroup2 cgroup (clone3's CLONE_INTO_CGROUP, and a
cgroup2 hierarchy: ``births_here``), the copy is a plain one and makes that fork itself, as the
host would (``launch.direct_from_copy``: into the PID namespace, born in the cgroup), reports the
pid as an intermediate does and exits; or, for a user or time namespace, plays the intermediate
(``launch._intermediate``). The copy itself, made before the cgroup existed, would have to be
moved there: the move's grace period, waited holding cgroup_mutex, cost ~10 ms of a wasm
container's Create, the extra fork ~1. Elsewhere the copy is made PID 1 of a new PID namespace
and is the container's process itself (``launch._direct_child``) for one that asks for a new
PID namespace and no user or time one; any other is forked as before (and where no PID namespace
could be made for it, the plain copy is the intermediate). Anything that cannot travel (a
backend's unpicklable data, a terminal's socket, too many descriptors) means the copy is let
go and the create forks as before, with the same result. A wasm init keeps the template's pages
shared for its whole life; a Linux one, which execs and so drops them anyway, takes the copy
only where it cannot be born in its cgroup2 cgroup from the creating process's own fork
(operations.builder.pristine_copy_for). A backend makes its data travel with ``__reduce__`` (the
wasm backend sends a compiled module as a reference to the warm template's copy, which the
pristine process holds too). Pickle is safe here: both ends are the
same program, on a socketpair no one else holds.
"""

from __future__ import annotations

import _socket as socket  # the C module: ``socket`` imports enum, which a CLI create need not pay for
import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn

    from mrun.sandbox.launch import Channel, Launch

MAX_FDS = 250  # one SCM_RIGHTS message carries at most 253


class Pristine:
    """The waiting copy, from the creating process's side."""

    def __init__(self, pid: int, sock: socket.socket, modules: ModuleMark, pid_namespace: bool = False) -> None:
        self.pid, self.sock = pid, sock
        self.modules = modules  # what it has imported: ours when it was made
        # It is PID 1 of a PID namespace of its own: it can only be a container's init itself
        # (a new PID namespace, no user or time one), and once it is, it is nobody's to reap
        # but the container's reaper.
        self.pid_namespace = pid_namespace
        self.handed = False

    def hand_over(self, launch: Launch, ch: Channel, keep_out: tuple[int, ...]) -> bool:
        """Send ``launch``, the channel end ``ch`` it is to speak on, every descriptor of ours but
        ``keep_out``, and the modules we imported since it was made. -> False (it acts on nothing
        it got): the caller forks as before and lets it go."""
        import pickle

        from mrun.kernel import fdpass

        try:
            plan = pickle.dumps(launch, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:  # noqa: BLE001 - whatever cannot travel: the fork path has it all
            return False
        ours = {self.sock.fileno(), *keep_out}
        try:
            open_now = _open_fds()
        except OSError:  # no /proc here: which descriptors to send cannot be known
            return False
        fds = [fd for fd in open_now if fd not in ours]
        if len(fds) > MAX_FDS:
            return False
        modules = self.modules.imported_since()
        header = pickle.dumps((fds, [open_now[fd] for fd in fds], ch.rfd, ch.wfd, modules),
                              protocol=pickle.HIGHEST_PROTOCOL)
        body = len(header).to_bytes(4, "big") + header + len(plan).to_bytes(4, "big") + plan
        try:
            if self.sock.sendmsg([body[:1]], fdpass.rights(fds)) != 1:
                return False
            self.sock.sendall(body[1:])
        except OSError:  # it died waiting, or mid-way: it acts on nothing incomplete
            return False
        self.sock.close()
        self.handed = True
        return True

    def reap(self) -> None:
        """Wait for it to end (it is our child), once."""
        if self.pid:
            try:
                os.waitpid(self.pid, 0)
            except ChildProcessError:
                pass
            self.pid = 0

    def let_go(self) -> None:
        """Not to be used: it sees the end of its socket and exits (``dismiss`` reaps it)."""
        if self.sock.fileno() >= 0:
            self.sock.close()

    def dismiss(self) -> None:
        """Not used: let go, and reaped here, so no stray exit reaches the daemon that reaps what
        is reparented to it. Once only."""
        if self.handed or self.pid == 0:
            return
        self.let_go()
        self.reap()


_armed: Pristine | None = None


def arm() -> None:
    """Fork the waiting copy now, before this process plans anything: a plain one where births
    work (births_here: it forks the init born in its cgroup), else as PID 1 of a new PID
    namespace where we may make one, the namespace nearly every container asks for, so that the
    copy can become the container's init instead of forking it (that fork, and the copy's exit,
    were ~1 ms each on the create's path, and ~2 ms of CPU)."""
    global _armed
    disarm()
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    pid, pid_namespace = (os.fork(), False) if births_here() else _fork_into_new_pid_namespace()
    if pid == 0:
        ours.close()
        _wait_for_plan(theirs, pid_namespace)
    theirs.close()
    _armed = Pristine(pid, ours, ModuleMark(), pid_namespace)


class ModuleMark:
    """Where sys.modules ended when the copy was made, to tell which modules came after.

    Why not a set of the names: building one touches the reference count of every module's name
    (~1000 strings across ~200 pages the warm template shares with us), and each touched page is
    copied (measured: ~200 copy-on-write faults, ~1 ms of CPU per create). sys.modules keeps its
    insertion order, so what came after is read from its end, down to the mark."""

    def __init__(self) -> None:
        self.count = len(sys.modules)
        self.last = next(reversed(sys.modules), None)

    def imported_since(self) -> list[str]:
        """The modules added since the mark. Any other change (one removed, the mark among them)
        and every module is named: the copy imports those it lacks."""
        added = len(sys.modules) - self.count
        names: list[str] = []
        for name in reversed(sys.modules):
            if name == self.last or len(names) > added:
                break
            names.append(name)
        if len(names) != added or (added and self.last is not None and name != self.last):
            names = list(sys.modules)
        else:
            names.reverse()
        return [name for name in names if sys.modules.get(name) is not None]


_births: bool | None = None


def births_here() -> bool:
    """Whether a container's process can be born in its cgroup2 cgroup here (clone3's
    CLONE_INTO_CGROUP works, and there is a cgroup2 hierarchy): then the copy is a plain one,
    which forks the process born there (launch.direct_from_copy), for the copy itself, made
    before the cgroup was, would have to be moved. Asked once per process (the shim's helper
    asks before it forks its workers: shims.spawner.preload_create)."""
    global _births
    if _births is None:
        from mrun.cgroups import cgroup2_here
        from mrun.kernel import syscalls as sc

        _births = sc.clone_into_cgroup_works() and cgroup2_here()
    return _births


def _fork_into_new_pid_namespace() -> tuple[int, bool]:
    """-> (fork's result, whether the child is in a PID namespace of its own). We stay in ours:
    unshare(CLONE_NEWPID) only sets where our next child goes, and we set that back at once. No
    right to make one (a user namespace of another owner): a plain fork, the copy an
    intermediate as before."""
    from mrun.kernel import syscalls as sc
    from mrun.sandbox.launch import fork_then_return

    try:
        ours = os.open("/proc/thread-self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return os.fork(), False
    try:
        try:
            sc.unshare(sc.CLONE_NEWPID)
        except OSError:
            return os.fork(), False
        return fork_then_return(ours), True
    finally:
        os.close(ours)


def armed() -> Pristine | None:
    """The armed copy, for the next launch (``Launch.pristine``); ``disarm()`` ends it."""
    return _armed


def handed_over() -> bool:
    """Whether the armed copy took a container's launch."""
    return _armed is not None and _armed.handed


def disarm() -> None:
    """Once the create is over (the worker: after its answer went): a copy that played the
    intermediate is reaped (it exited once it had reported the container's pid, or when the
    launch failed: launch.spawn leaves that wait to us, so its teardown is not on the create's
    path); one that became the container's init is the container's (a failed set-up was
    reaped by launch.spawn); one that took nothing is let go, and reaped."""
    global _armed
    if _armed is not None:
        if not _armed.handed:
            _armed.dismiss()
        elif not _armed.pid_namespace:
            _armed.reap()
    _armed = None


def _wait_for_plan(sock: socket.socket, pid_namespace: bool) -> NoReturn:
    """In the copy: the plan, then the container's process's part (PID 1 of our own PID
    namespace already), or a plain copy's: the fork a direct launch's host makes, or the
    intermediate's. Never returns."""
    import gc
    import pickle

    from mrun.sandbox.launch import _direct, _direct_child, _intermediate, direct_from_copy, fail_in_child

    # What we inherited is never collected here: an unreachable object that held a descriptor
    # would close its number, which _install gives to one of the sender's. (It also keeps the
    # collector from writing to inherited pages.)
    gc.freeze()
    try:
        got = _receive(sock)
    except BaseException:  # noqa: BLE001 - the sender saw its send fail and forks instead
        os._exit(1)
    if got is None:
        os._exit(0)
    ch, plan, modules = got
    try:
        _import_missing(modules)
        launch = pickle.loads(plan)
    except BaseException as e:  # noqa: BLE001 - the host hears of it as of any set-up failure
        fail_in_child(ch, e)
    if pid_namespace:
        _direct_child(launch, ch)
    elif _direct(launch):
        direct_from_copy(launch, ch)
    else:
        _intermediate(launch, ch)


def _receive(sock: socket.socket) -> tuple[Channel, bytes, list[str]] | None:
    """-> (the channel, the pickled plan, the sender's modules), our descriptors already the
    sender's; None: dismissed."""
    import pickle

    from mrun.kernel import fdpass
    from mrun.sandbox.launch import Channel

    first, ancdata, _, _ = sock.recvmsg(1, fdpass.space(MAX_FDS))
    if not first:
        return None
    fds = fdpass.received(ancdata)
    sock.settimeout(5)  # the rest follows at once; a sender that died mid-way must not hold us
    parts = []
    for have in (first, b""):  # the header, then the plan; the first byte came with the descriptors
        head = fdpass.read_exact(sock, 4, have)
        part = None if head is None else fdpass.read_exact(sock, int.from_bytes(head, "big"))
        if part is None:
            raise EOFError("the creating process went away while handing over")
        parts.append(part)
    targets, flags, rfd, wfd, modules = pickle.loads(parts[0])
    sock.detach()  # _install closes it: all was read
    _install(fds, targets, flags)
    return Channel(rfd, wfd), parts[1], modules


def _import_missing(modules: list[str]) -> None:
    """What the sender imported since we were copied (a backend's ``mrun_prepare`` imports what
    its payload will need, since after pivot_root nothing can be imported): imported here too.
    Under the warm template that is nothing; a module that cannot be imported by name is left."""
    for name in modules:
        try:
            __import__(name)
        except Exception:  # noqa: BLE001 - one made at run time, not importable by name
            pass


def _install(got: list[int], targets: list[int], flags: list[bool]) -> None:
    """Our descriptors become exactly the sender's: ``got[i]`` at ``targets[i]`` (close-on-exec
    as ``flags[i]``), every other one closed (our socket to the sender included)."""
    import fcntl

    top = max([*targets, *got, 2]) + 1
    moved = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, top) for fd in got]
    for fd in set(_open_fds()) - set(moved):
        try:
            os.close(fd)
        except OSError:
            pass
    for fd, target, cloexec in zip(moved, targets, flags, strict=True):
        os.dup2(fd, target, inheritable=not cloexec)
        os.close(fd)


def _open_fds() -> dict[int, bool]:
    """Open now, each with whether it is close-on-exec (the listing's own descriptor, gone once
    it is read, is not among them)."""
    import fcntl

    found = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            found[int(name)] = bool(fcntl.fcntl(int(name), fcntl.F_GETFD) & fcntl.FD_CLOEXEC)
        except (OSError, ValueError):
            continue
    return dict(sorted(found.items()))

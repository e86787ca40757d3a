"""A child forked from the template becomes its caller, as far as the work can tell.

Descriptors (at the caller's numbers, inheritable as they were), environment, argv, working
directory (by descriptor), umask, resource limits, cgroups, scheduling (priorities, CPUs, I/O
class, OOM score, personality, login uid), process name, a session of its own, and signal
dispositions and stdio objects as a fresh interpreter sets them up. What the template had open is
closed. The template checked beforehand that the caller's namespaces, credentials and
confinement are its own (``peer``), so those need no adopting.
"""

from __future__ import annotations

import io
import os
import sys

from mrun import standard_fds, umask

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

HIGH_FD = 1000  # received descriptors are parked above this while the caller's numbers are set up


def reset_signals() -> None:
    """What a fresh interpreter sets from Python: SIGINT as KeyboardInterrupt, SIGPIPE and SIGXFSZ
    ignored, the rest at their defaults; nothing blocked.

    Only what was set from Python (the template's own SIGCHLD and SIGTERM) is reset. A handler a
    library installed natively stays, as a cold process that loaded the library has it: wasmtime's
    SIGSEGV/SIGBUS/SIGILL/SIGFPE handlers turn a wasm guard-page fault into a trap, and wasmtime
    installs them once per process, so a child without them dies of SIGSEGV where a cold process
    reports the trap. Python shows such a handler as None, or as the disposition it saw at start."""
    import _signal  # signal's C half, on ints: signal's own wraps every number in an enum (~0.2 ms here)

    fresh = {_signal.SIGINT: _signal.default_int_handler, _signal.SIGPIPE: _signal.SIG_IGN,
             _signal.SIGXFSZ: _signal.SIG_IGN}
    for sig in _signal.valid_signals():
        if sig in (_signal.SIGKILL, _signal.SIGSTOP) or sig >= _signal.SIGRTMIN:
            continue
        want = fresh.get(sig, _signal.SIG_DFL)
        current = _signal.getsignal(sig)
        if current is None or current == want:
            continue
        try:
            _signal.signal(sig, want)
        except (OSError, ValueError):
            pass
    _signal.pthread_sigmask(_signal.SIG_SETMASK, [])


def place_fds(received: list[int], numbers: list[int], keep: list[int]) -> None:
    """Put ``received[i]`` at ``numbers[i]``; close everything else but ``keep`` (moved high).
    Parking above the caller's numbers needs room there: F_DUPFD refuses a base at or over the
    soft limit (a template started from a shell with `ulimit -n 512` failed every warm call, exit
    255 and not a word), so the soft limit is raised to the hard one here; ``set_rlimits`` gives
    the process its caller's afterwards."""
    import fcntl
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    base = max(min(HIGH_FD, hard - len(received) - 1), max(numbers, default=2) + 1)
    parked = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, base) for fd in received]
    for fd in received:
        os.close(fd)
    wanted = set(parked) | set(keep)
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd not in wanted:
            try:
                os.close(fd)
            except OSError:
                pass
    for high, number in zip(parked, numbers, strict=True):
        os.dup2(high, number, inheritable=True)
        os.close(high)


def fresh_stdio(encodings: list[Any]) -> None:
    """New sys.stdin/stdout/stderr on 0/1/2, buffered as the caller's interpreter buffers them."""
    streams = []
    for fd, enc in enumerate(encodings):
        if enc is None:
            streams.append(None)
            continue
        try:
            interactive = os.isatty(fd)
            if fd == 0:
                raw: Any = open(fd, "rb", closefd=False)
                streams.append(io.TextIOWrapper(raw, encoding=enc[0], errors=enc[1]))
            else:
                raw = open(fd, "wb", closefd=False)
                if not standard_fds.writable(fd):  # read-only: the descriptor stays the work's to hand on
                    raw = open(os.devnull, "wb")  # noqa: SIM115 - the stream's, for the child's life
                streams.append(
                    io.TextIOWrapper(raw, encoding=enc[0], errors=enc[1], line_buffering=interactive or fd == 2)
                )
        except OSError:  # the caller had it closed
            streams.append(None)
    sys.stdin, sys.stdout, sys.stderr = streams  # type: ignore[assignment]
    sys.__stdin__, sys.__stdout__, sys.__stderr__ = streams  # type: ignore[misc]


def cgroup_moves(pid: int | str) -> list[list[str]]:
    """[hierarchy id, controllers, path] of each cgroup ``pid`` is in and we are not."""
    with open(f"/proc/{pid}/cgroup") as f:
        return _not_ours(f.read().splitlines())


def own_cgroups() -> list[str]:
    """Our /proc/self/cgroup lines ("hierarchy id:controllers:path")."""
    with open("/proc/self/cgroup") as f:
        return f.read().splitlines()


def _not_ours(lines: list[str]) -> list[list[str]]:
    ours = set(own_cgroups())
    return [line.split(":", 2) for line in lines if line not in ours]


def let_go(reply: int, home: list[str]) -> bool:
    """After the work, before its exit status: every descriptor but ``reply`` closed (the
    caller's stdio among them) and the caller's cgroups left for ``home`` (the template's), the
    caller need not wait for our exit; it would wait for nothing that was its own. Disarmed
    first (kernel.hangup.die_with_caller): the caller's leaving is no kill now; then no longer named as its
    command (argv, environment, comm in /proc). -> False, and nothing done,
    where a move back would take more than the exit it spares: another thread of ours (a move
    to ``tasks`` takes one thread), or a v2 cgroup (its move waits for an RCU grace period)."""

    from mrun.kernel.hangup import disarm
    from mrun.kernel.proc import rewrite_area, status_field
    from mrun.kernel.syscalls import set_comm

    moves = _not_ours(home)
    if any(not controllers for _hid, controllers, _path in moves) or int(status_field("Threads") or 0) != 1:
        return False
    mounts = cgroup_mounts() if moves else {}  # mountinfo read only for a caller in other cgroups
    if any(mounts.get(controllers) is None for _hid, controllers, _path in moves):
        return False
    disarm(reply)
    os.closerange(0, reply)
    os.closerange(reply + 1, os.sysconf("SC_OPEN_MAX"))
    try:
        for _hid, controllers, path in moves:
            with open(os.path.join(mounts[controllers], path.lstrip("/"), "tasks"), "w") as f:
                f.write("0")
    except OSError:  # the template's cgroup gone meanwhile: the caller waits for our exit, as before
        return False
    # What is left for a moment is the template's, not the caller's command: no longer its argv,
    # environment or name in /proc (a `ps` the moment the caller returned showed its command again)
    rewrite_area("arg", EXITING)
    rewrite_area("env", b"")
    set_comm(EXITING)
    return True


EXITING = b"mrun-warm-exit"  # a released child's command line and name, until it is gone


def join_cgroups(pid: int) -> None:
    """Into every cgroup ``pid`` is in, where ours differ (a shim belongs where containerd put
    the process it started, not where the template happens to run)."""
    moves = cgroup_moves(pid)
    if not moves:
        return
    mounts = cgroup_mounts()
    for _hid, controllers, path in moves:
        top = mounts.get(controllers)
        if top is None:
            raise OSError(f"cgroup hierarchy {controllers or 'unified'!r} of the caller is not mounted here")
        # We are one thread (a fork of the single-threaded template): in a v1 hierarchy "0" to
        # tasks moves us without the global lock whose first taker waits for an RCU grace period.
        # v2 has cgroup.procs only (cgroup.threads is for threaded subtrees).
        name, data = ("cgroup.procs", str(os.getpid())) if not controllers else ("tasks", "0")
        with open(os.path.join(top, path.lstrip("/"), name), "w") as f:
            f.write(data)


def cgroup_mounts() -> dict[str, str]:
    """controllers as /proc/PID/cgroup names them ("" for v2, "cpu,cpuacct", "name=systemd") ->
    the hierarchy's mount point (the first mount of its root)."""
    names = [line.split(":", 2)[1] for line in own_cgroups()]
    found: dict[str, str] = {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-")
            fstype, options = fields[sep + 1], set(fields[sep + 3].split(","))
            if fields[3] != "/":
                continue
            if fstype == "cgroup2":
                found.setdefault("", fields[4])
            elif fstype == "cgroup":
                for name in names:
                    if name and set(name.split(",")) <= options:
                        found.setdefault(name, fields[4])
    return found


def adopt_priorities(pid: int) -> None:
    """The caller's scheduling policy and priority, nice value, CPU affinity, I/O priority, timer
    slack, OOM score adjustment, personality and audit login uid. A fork inherits them all, so a
    cold mrun hands its own on to the daemon and containers it starts: ``nice``, ``chrt``,
    ``taskset``, ``ionice`` or ``setarch`` in front of ``mrun run``, containerd's own OOM score for
    its shims, the login that ran it. After ``join_cgroups``: the CPUs are the caller's, within its
    cpuset. Before ``place_fds``: a refusal is the template's to log, and the caller runs cold."""
    from mrun.kernel import syscalls as sc

    policy, param = os.sched_getscheduler(pid), os.sched_getparam(pid)
    if (policy, param) != (os.sched_getscheduler(0), os.sched_getparam(0)):
        os.sched_setscheduler(0, policy, param)
    nice = os.getpriority(os.PRIO_PROCESS, pid)
    if nice != os.getpriority(os.PRIO_PROCESS, 0):
        os.setpriority(os.PRIO_PROCESS, 0, nice)
    cpus = os.sched_getaffinity(pid)
    if cpus != os.sched_getaffinity(0):
        os.sched_setaffinity(0, cpus)
    io = sc.ioprio_get(pid)
    if io != sc.ioprio_get(0):
        sc.ioprio_set(io)
    for name in ("timerslack_ns", "oom_score_adj", "personality", "loginuid"):
        with open(f"/proc/{pid}/{name}") as f:
            theirs = f.read().strip()
        with open(f"/proc/self/{name}") as f:
            if f.read().strip() == theirs:
                continue
        if name == "timerslack_ns":  # the file sets another process's; prctl our own
            sc.prctl(sc.PR_SET_TIMERSLACK, int(theirs))
        elif name == "personality":  # setarch's flags (-R, linux32), hex
            sc.personality(int(theirs, 16))
        else:  # loginuid: whom the audit log names; a kernel that keeps it immutable refuses: cold
            with open(f"/proc/self/{name}", "w") as f:
                f.write(theirs)


def set_rlimits(pid: int) -> None:
    import resource

    for name in dir(resource):
        if name.startswith("RLIMIT_"):
            which = getattr(resource, name)
            try:
                limits = resource.prlimit(pid, which)
                if resource.getrlimit(which) != limits:
                    resource.setrlimit(which, limits)
            except (OSError, ValueError):
                pass


_prepared = False


def prepare() -> None:
    """What every child does whoever its caller is: a spare does it while it waits for one."""
    global _prepared
    from mrun.warm import client

    client.in_template_child = True
    reset_signals()
    _prepared = True


def adopt_environ(env: dict[str, str]) -> None:
    """The caller's environment, in os.environ and in the C library's (what getenv reads, and what
    a program exec'd without an environment of its own inherits). Every variable is set anew, also
    one the template already had with that value: the C library's entry for it pointed into the
    block the process was started with, which ``become`` then overwrites with the caller's (so
    that /proc/PID/environ reads as exec would have made it); left there, it read whatever the
    caller's layout put at that address."""
    for name in [n for n in os.environ if n not in env]:
        del os.environ[name]
    for name, value in env.items():
        if os.environ.get(name) != value:
            os.environ[name] = value
        else:
            os.putenv(name, value)  # a copy of its own (setenv), off the old block


def become(msg: dict[str, Any], received: list[int], peer_pid: int, keep: list[int]) -> None:
    """Everything but running the work. ``received``: the caller's descriptors for ``msg["fds"]``,
    then its working directory. ``keep``: our own descriptors (the connection)."""
    if not _prepared:
        prepare()
    received, cwd = received[:-1], received[-1]  # the caller's working directory, after its descriptors
    os.fchdir(cwd)
    os.close(cwd)
    os.setsid()
    join_cgroups(peer_pid)
    adopt_priorities(peer_pid)
    place_fds(received, msg["fds"], keep)
    set_rlimits(peer_pid)  # after: a caller's lower soft limit left no room to park its descriptors
    for fd in (0, 1, 2):
        if fd not in msg["fds"]:
            try:
                os.close(fd)
            except OSError:
                pass
    adopt_environ(msg["env"])
    if isinstance(msg.get("script_dir"), str) and os.path.isabs(msg["script_dir"]) and sys.path:
        sys.path[0] = msg["script_dir"]  # the caller's launcher directory, as its own sys.path[0]
    umask.adopt(msg["umask"])  # mrun's own files: writable by no one else (kernel.umask)
    sys.argv = list(msg["argv"])
    from mrun.kernel.proc import rewrite_area

    rewrite_area("arg", msg.get("cmdline", "").encode("latin-1"))  # what ps and /proc/PID/cmdline show
    rewrite_area("env", b"".join(f"{k}={v}\0".encode("latin-1", "replace") for k, v in msg["env"].items()))
    if msg.get("comm"):
        from mrun.kernel.syscalls import set_comm

        set_comm(msg["comm"].encode("latin-1"))
    if "tempfile" in sys.modules:
        sys.modules["tempfile"].tempdir = None  # derived from the environment on first use
    fresh_stdio(msg.get("stdio") or [None, None, None])

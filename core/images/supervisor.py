"""The supervisor of a detached container (`mrun run -d IMAGE`): its parent for as long as it runs.

A detached container's init would otherwise be reparented to the host's PID 1 when `mrun run -d`
returns, and its exit status would be lost. The supervisor is forked first, becomes a child
subreaper in a session of its own, creates and starts the container (so the init is its
descendant and comes back to it), tells the caller, then waits and writes ``exit.json`` beside
the container's log: `mrun ps` and `mrun inspect` show it as docker does ("exited (3)"), or,
for `mrun run -d --rm`, removes the container as docker does.
With a restart policy (``--restart``, docker's: always, unless-stopped, on-failure[:N]) it
creates and starts the container again, from the same files, after docker's back-off (100 ms,
doubled each time up to a minute, 100 ms again once a run lasted 10 s), until `mrun stop`,
`mrun rm` or a kill with SIGKILL or the stop signal says the user stopped it (``STOPPED_FILE``).
There is no daemon to restart containers when the host boots: always and unless-stopped differ
only there in docker, and are the same here.
It holds none of the caller's descriptors, and it outlives any mrun process.
"""

from __future__ import annotations

import os
import time

from mrun import annotations as ann
from mrun import jsonio
from mrun.errors import InvalidSpec, MrunError, NotFound, in_bytes, in_words
from mrun.units import decimal

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NoReturn

    from mrun.images.held_input import HeldInput

EXIT_FILE = "exit.json"
SUPERVISOR_FILE = "supervisor.json"  # its pid and start time: whether it still lives to note the exit
STOPPED_FILE = "stopped"  # in the bundle: the user stopped it, so its restart policy rests
START_LOCK = "start.lock"  # in the bundle: held by a `start` until its supervisor has the container running
RESTART_LOCK = "restart.lock"  # in the bundle: held by a supervisor from its last look for STOPPED_FILE on
BACKOFF_FIRST, BACKOFF_MAX, BACKOFF_RESET = 0.1, 60.0, 10.0  # docker's restart manager's seconds
SPARE_FILE, SPARE_SIZE = ".exit.json.spare", 4096  # room kept for the exit note: see set_aside
SUPERVISOR_SETTLE = 10.0  # seconds a start waits for a supervisor noting an exit to end


def restart_policy(text: str) -> str:
    """docker's --restart value, checked: no, always, unless-stopped, on-failure[:N], N as Go's Atoi
    reads it (one int() could not read failed the supervisor when the container exited)."""
    name, colon, count = text.partition(":")
    if name in ("no", "always", "unless-stopped") and not colon:
        return text
    if name == "on-failure" and (not colon or decimal(count) is not None):
        return text
    raise InvalidSpec(f"--restart {text!r}: no, always, unless-stopped or on-failure[:MAX-RETRIES]")


def policy_now(bundle: str, before: str = "no") -> str:
    """The container's restart policy as its bundle's config.json says now (docker's update
    --restart writes it there); ``before`` where that has none or a damaged one."""
    config = jsonio.load_object(os.path.join(bundle, "config.json")) or {}
    annotations = config.get("annotations")
    text = annotations.get(ann.RESTART) if isinstance(annotations, dict) else None
    try:
        return restart_policy(text) if isinstance(text, str) else before
    except InvalidSpec:
        return before


def wants_restart(policy: str, code: int | None, restarts: int) -> bool:
    """Whether a container that ended with ``code``, restarted ``restarts`` times so far, goes again."""
    name, _, count = policy.partition(":")
    if name in ("always", "unless-stopped"):
        return True
    if name == "on-failure":
        return code != 0 and (not count or restarts < int(count))
    return False


def mark_stopped(bundle: str) -> None:
    """The user stopped the container (stop, rm, a kill that ends it): no restart after this.
    Made while no start or restart is under way (``held_still``): the stop that follows finds
    the container running and stops it, where it found it stopped (a start or its restart policy's
    restart under way), returned, and the start went on: the container ran after the stop (`rm`
    after `stop` refused it), and a start took away a mark made meanwhile."""
    with held_still(bundle):
        try:
            os.close(os.open(os.path.join(bundle, STOPPED_FILE),
                             os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600))
        except OSError:
            pass  # no bundle (gone already): nothing will start it again


class held_still:  # noqa: N801 - used as a statement: ``with held_still(bundle):``
    """No start of the container (`start_again`, under START_LOCK) nor restart by its supervisor
    (under RESTART_LOCK) begins or is under way while held: what is changed under it (the user's
    stop mark, an update's limits for the next start) is read by the next start, or changed once
    the one under way has the container running (an update then writes its cgroup). Each wait is
    bounded (SUPERVISOR_SETTLE): a start stuck in a hook does not hold `rm -f` for good."""

    def __init__(self, bundle: str) -> None:
        self.bundle, self.fds = bundle, []

    def __enter__(self) -> held_still:
        import fcntl

        from mrun.kernel.flock import taken_within

        for name in (START_LOCK, RESTART_LOCK):  # in the order a start and its supervisor take them
            try:
                fd = os.open(os.path.join(self.bundle, name), os.O_RDONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                             0o600)
            except OSError:
                break  # no bundle (gone already): nothing will start it again
            self.fds.append(fd)
            taken_within(fd, fcntl.LOCK_EX, SUPERVISOR_SETTLE, 0.01)  # else on, as if it were
        return self

    def __exit__(self, *exc: object) -> None:
        for fd in self.fds:
            os.close(fd)


class _restarting:  # noqa: N801 - used as a statement: ``with _restarting(bundle):``
    """The supervisor's restart, from its last look for the user's stop to the container
    running again, under RESTART_LOCK (see mark_stopped)."""

    def __init__(self, bundle: str) -> None:
        self.fd = os.open(os.path.join(bundle, RESTART_LOCK), os.O_RDONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                          0o600)

    def __enter__(self) -> None:
        import fcntl

        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        import fcntl

        fcntl.flock(self.fd, fcntl.LOCK_UN)  # for every copy: the container's processes were forked holding it
        os.close(self.fd)


def stopped_by_user(runtime: Any, container_id: str, signal: int | None = None) -> None:
    """`mrun stop` and `mrun rm` (``signal`` None), or docker's kill: a restart policy rests from
    now on. A kill rests it only with SIGKILL or the container's stop signal; another signal
    (SIGHUP, SIGUSR1) leaves it in place."""
    from mrun.kernel.proc import parse_signal

    try:
        record = runtime.store.load(container_id)
    except MrunError:
        return
    if ann.IMAGE not in (record.config.get("annotations") or {}):
        return  # a runc bundle is the caller's directory, not ours to mark; it has no policy
    # Marked whatever its policy now: `update --restart` may give it one before it exits.
    if signal is not None:
        stop = (record.config.get("annotations") or {}).get(ann.STOP_SIGNAL) or "SIGTERM"
        try:
            fatal = signal in (9, parse_signal(stop))
        except MrunError:
            fatal = signal in (9, 15)
        if not fatal:
            return
    mark_stopped(record.bundle)


def restartable(record: Any) -> bool:
    """A `mrun run -d` container (its bundle is mrun's, with a log, older logs only after a
    rotation cut short, or none with --log-driver none but its exit noted): one a supervisor can keep."""
    from mrun.images.log_relay import rotated
    from mrun.images.unstarted import never_started

    bundle = record.bundle
    if ann.IMAGE not in (record.config.get("annotations") or {}):
        return False
    try:  # the note first: a first start's supervisor makes the log, then removes the note
        return (never_started(bundle) is not None or any(os.path.exists(os.path.join(bundle, n))
                                                         for n in ("log", EXIT_FILE)) or bool(rotated(bundle)))
    except OSError:  # its bundle gone
        return False


def start_again(runtime: Any, container_id: str, keep: bool = False, notify: bool = False) -> int:
    """docker's start of an exited `mrun run -d` container: made again in place, under a new
    supervisor, its restart policy back in force; likewise the first start of one of `create`.
    ``keep``: not removed once it exits, whatever its --rm (`start -a` reads its code first).
    ``notify``: as run_detached's. -> the new supervisor's pid; 0 where none was needed (it
    runs already, or its own supervisor starts it again)."""
    import fcntl

    from mrun.images.unstarted import never_started, started
    from mrun.status import Status

    record = runtime.store.load(container_id)
    # One start at a time (`mrun start c & mrun start c`): each forked a supervisor, and the
    # loser's note of itself replaced the winner's, so a running container's supervisor looked
    # gone. Held until ours has it running; the next start then finds it running.
    try:
        lock = os.open(os.path.join(record.bundle, START_LOCK), os.O_CREAT | os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC,
                       0o600)
    except FileNotFoundError:  # removed since we looked (`rm`): as if we had looked after
        raise NotFound(f"container {container_id!r} does not exist") from None
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        record = runtime.store.load(container_id)
        if runtime.status(record) != Status.STOPPED:
            return 0  # started by the start we waited for
        if not restartable(record):
            raise MrunError(f"container {container_id!r}: only a container of `mrun run -d` starts again")
        if _left_to_its_supervisor(runtime, container_id, record.bundle):
            return 0
        try:
            os.unlink(os.path.join(record.bundle, STOPPED_FILE))
        except FileNotFoundError:
            pass
        created = never_started(record.bundle)
        remove = bool((created or {}).get("remove")) and not keep
        supervisor = run_detached(runtime, container_id, record.bundle, remove=remove, again=True,
                                  close_in_child=lock, notify=notify)
        if created is not None:
            started(record.bundle)
        return supervisor
    finally:
        os.close(lock)


def _left_to_its_supervisor(runtime: Any, container_id: str, bundle: str) -> bool:
    """Whether the container's supervisor, still alive, starts it again itself (its restart
    policy's back-off: docker's "Restarting", whose start does nothing). Otherwise waits until
    that supervisor has ended (it is noting an exit, or was told to stop): a second one forked
    beside it replaced its note of itself and began the restart count again, and it could still
    start the container again under the new one."""
    from mrun.status import Status

    deadline = time.monotonic() + SUPERVISOR_SETTLE
    while supervisor_gone(bundle) is False:
        if runtime.status(runtime.store.load(container_id)) != Status.STOPPED:
            return True  # it started it again meanwhile
        noted = exit_of(bundle) or {}
        if noted.get("restarting") and not noted.get("pending") and not _told_to_stop(bundle):
            return True
        if time.monotonic() > deadline:
            raise MrunError(f"container {container_id!r}: its last supervisor has not ended in {SUPERVISOR_SETTLE:g} "
                            "seconds; try again")
        time.sleep(0.02)
    return False


def _told_to_stop(bundle: str) -> bool:
    """`mrun stop` (or rm) said so, or, in a supervisor, a stop signal came while no container ran."""
    return bool(STOPS.held) or os.path.exists(os.path.join(bundle, STOPPED_FILE)) or not os.path.isdir(bundle)


def run_detached(runtime: Any, container_id: str, bundle: str, remove: bool = False, again: bool = False,
                 close_in_child: int = -1, notify: bool = False) -> int:
    """Create and start ``container_id`` under a new supervisor; -> the supervisor's pid, once
    the container runs. With
    ``remove``, the supervisor deletes the container once it has exited; with ``again``, the
    container exists, stopped, and is made again in place (docker's start of an exited one).
    ``close_in_child``: a descriptor of ours (a lock) the supervisor must not keep. ``notify``:
    the container gets a socket for systemd's readiness (podman's --sdnotify=container), whose
    first READY= the supervisor notes (``READY_FILE``) for its run to pass on."""
    from mrun.cgroups import beside, primed

    primed()  # no thread of ours runs while we fork
    # Born in a cgroup of its own, not its caller's (a session's, a CI job's, a unit's), whose end
    # kills every process in it: before the caller hears that the container runs.
    cgroup = beside.prepare(bundle, runtime.store.cgroup_marks)
    r, w = os.pipe()
    pid = beside.fork_into(cgroup)
    if pid == 0:
        os.close(r)
        if close_in_child >= 0:
            os.close(close_in_child)
        _supervise(runtime, container_id, bundle, w, remove, again, cgroup, notify)
    os.close(w)
    answer = b""
    while chunk := os.read(r, 65536):
        answer += chunk
    os.close(r)
    if answer != b"ok":
        if not os.path.isdir(bundle):  # removed meanwhile (`rm`): what failed then named its files
            raise NotFound(f"container {container_id!r} does not exist")
        text = answer.decode(errors="replace").removeprefix("error:")
        raise MrunError(text or f"container {container_id!r}: its supervisor died before the container started")
    return pid


def _supervise(runtime: Any, container_id: str, bundle: str, report: int, remove: bool, again: bool = False,
               cgroup: Any = None, notify: bool = False) -> NoReturn:
    from mrun.images.held_input import HeldInput
    from mrun.images.log_relay import Relay
    from mrun.kernel import syscalls as sc
    from mrun.kernel.child import default_stop_signals

    try:
        default_stop_signals()
        STOPS.install()
        os.setsid()
        os.chdir("/")  # the caller's working directory is not ours to hold (its mount stayed busy)
        sc.prctl(sc.PR_SET_CHILD_SUBREAPER, 1)
        last_for_the_oom_killer()
        _note_self(bundle)
        set_aside(bundle)
        _write_conmon_pidfile(bundle)
        null = os.open(os.devnull, os.O_RDWR)
        os.dup2(null, 0)
        relay = Relay(bundle, **log_options(bundle, passthrough=True))
        held = HeldInput.of(bundle)  # a terminal, an open stdin (-t, -i): ours to hold while it runs
        if held is not None:
            held.listen()
        listener = _listener(notify)
        pid = _start(runtime, container_id, bundle, relay, again, held=held, listener=listener)
        annotations = runtime.store.load(container_id).config.get("annotations") or {}
        policy = annotations.get(ann.RESTART) or "no"
        checker = _checker(runtime, container_id, bundle, annotations.get(ann.HEALTH), annotations)
    except BaseException as e:  # noqa: BLE001 - reported to the caller, which prints it
        os.write(report, in_bytes(f"error:{in_words(e)}"))
        _end(cgroup, 1)
    os.write(report, b"ok")
    # nothing of the caller's is ours
    close_all_but([*relay.fds(), *(held.fds() if held is not None else ()), *_fds_of(listener)])
    restarts, delay = 0, 0.0
    while True:
        started = time.monotonic()
        code = _wait_relaying(pid, relay, checker, held, listener, lambda line: _note_ready(bundle, line))
        runtime.end_the_rest(container_id)  # a child left in another's PID namespace: no longer writing
        if held is not None:
            held.end_run(relay)
        relay.finish()
        if remove:
            record(bundle, code, restarts)  # read by a `wait` or `attach` its removal waits for (bundles.reading)
            try:
                remove_with_volumes(runtime, container_id)
            except BaseException:  # noqa: BLE001 - nobody to tell; `mrun system prune` finishes it
                pass
            _end(cgroup, 0)
        policy = policy_now(bundle, policy)  # `update --restart` meanwhile
        asked = checker is not None and checker.restart_asked  # --health-on-failure restart
        again = (wants_restart(policy, code, restarts) or asked) and not _told_to_stop(bundle)
        record(bundle, code, restarts, again)
        if not again:
            _end(cgroup, 0)
        ran_long = time.monotonic() - started >= BACKOFF_RESET
        delay = BACKOFF_FIRST if ran_long or not delay else min(delay * 2, BACKOFF_MAX)
        deadline = time.monotonic() + delay
        while time.monotonic() < deadline and not _told_to_stop(bundle):
            time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
        try:
            with _restarting(bundle):
                if _told_to_stop(bundle):
                    raise MrunError("stopped")
                if listener is not None:  # (the last run's, had it said nothing)
                    listener.close()
                listener = _listener(notify)
                pid = _start(runtime, container_id, bundle, relay, again=True, restarts=restarts + 1, held=held,
                             listener=listener)
            if checker is not None:
                checker.reset()
        except BaseException as e:  # noqa: BLE001 - stopped or removed meanwhile, or it cannot start again
            stopped = isinstance(e, MrunError) and _told_to_stop(bundle)
            record(bundle, code, restarts, False, "" if stopped else f"restarting: {in_words(e)}")
            _end(cgroup, 0)
        restarts += 1


SUPERVISOR_OOM_SCORE = -999  # containerd's shims' floor; podman's conmon runs at -1000


def last_for_the_oom_killer() -> None:
    """A supervisor the OOM killer takes leaves its container running unsupervised, its exit code
    lost: it goes last, as docker's shims and podman's conmon do; where the kernel refuses that
    (no CAP_SYS_RESOURCE: a process may not go below the floor its privileged ancestors set), as
    low as it may go, the floor found by halving. Its container's process does not inherit that:
    its spec says its caller's score (images.run_flags) or --oom-score-adj's."""
    try:
        fd = os.open("/proc/self/oom_score_adj", os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return
    try:
        allowed, refused = int(os.pread(fd, 16, 0)), SUPERVISOR_OOM_SCORE - 1
        while allowed - refused > 1:  # allowed: a score it may have; refused: one it may not
            tried = refused + 1 if refused == SUPERVISOR_OOM_SCORE - 1 else (allowed + refused) // 2
            try:
                os.pwrite(fd, str(tried).encode(), 0)
                allowed = tried
            except PermissionError:
                refused = tried
    except (OSError, ValueError):
        pass
    finally:
        os.close(fd)


def _end(cgroup: Any, status: int) -> NoReturn:
    """The supervisor's end: its cgroup left and removed (cgroups.beside), then its exit."""
    from mrun.cgroups import beside

    beside.leave(cgroup)
    os._exit(status)


def remove_with_volumes(runtime: Any, container_id: str) -> None:
    """docker's --rm: the container, its snapshot and network, and its anonymous volumes."""
    from mrun.images import volumes

    record = runtime.store.load(container_id)
    store_root = os.path.dirname(os.path.dirname(record.bundle))  # <image root>/containers/<id>
    used = volumes.of_container(store_root, record.config)
    runtime.delete(container_id, force=True)
    volumes.remove_anonymous(store_root, used)


def _start(runtime: Any, container_id: str, bundle: str, relay: Any, again: bool = False,
           restarts: int | None = None, held: HeldInput | None = None, listener: Any = None) -> int:
    """Create (``again``: once more, in place, its policy's restart number ``restarts``) and
    start the container with its output on the relay's pipes (ours goes nowhere after), its
    terminal or open stdin ``held``, its readiness socket bound by ``listener``. -> its process."""
    from mrun.images import kept
    from mrun.runtime import CreateOptions

    opts = CreateOptions()
    if held is not None:
        held.prepare(opts)
    if listener is not None:  # /run/notify/notify.sock in the container, bound by create
        opts.notify_socket, opts.notify_relay = os.environ.get("NOTIFY_SOCKET") or "supervisor", listener
    os.dup2(relay.writers[1], 1)  # the container inherits these: its output goes to its log
    os.dup2(relay.writers[2], 2)
    try:
        if again:
            from mrun.images.joined import rejoin

            rejoin(runtime, bundle)
            kept.write_back(runtime, bundle, container_id)  # removed during the back-off (images/kept)
            try:
                runtime.recreate(container_id, opts)
            finally:
                if held is not None:
                    held.made(opts)
            last = jsonio.load_object(os.path.join(bundle, EXIT_FILE))
            _running_again(bundle, restarts)  # before it can end: its end is this run's, not the last
            try:
                runtime.start(container_id)
            except BaseException:
                if last is not None:  # it did not run: the last run's note stands
                    _write_exit(bundle, last)
                else:
                    _forget_exit(bundle)
                raise
        else:
            try:
                runtime.run(container_id, bundle, opts, True, keep=True)
            finally:
                if held is not None:
                    held.made(opts)
        record = runtime.store.load(container_id)
        kept.keep(bundle, record, runtime.store.path(container_id))
        return record.pid
    except BaseException:
        if held is not None:
            held.end_run()
        raise
    finally:
        null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        for fd in (0, 1, 2):  # 0: an open stdin's read end, the container's alone now
            os.dup2(null, fd)
        os.close(null)


READY_FILE = "ready.json"  # in its bundle: {"said": the container's first READY= line} (--sdnotify=container)


def _listener(notify: bool) -> Any:
    from mrun.notify_socket import Listener

    return Listener() if notify else None


def _heard(listener: Any, said_ready: Any) -> None:
    """What the container said on its readiness socket: its first READY= given to ``said_ready``,
    and the socket closed (what it says after goes nowhere, as runc drops it); the rest dropped."""
    line = listener.ready_said()
    if line is not None:
        listener.close()
        said_ready(line)


def _fds_of(listener: Any) -> list[int]:
    return [listener.server.fileno()] if listener is not None and listener.server is not None else []


def _note_ready(bundle: str, line: bytes) -> None:
    """The container said it is ready: noted once, for its run to pass on (and a restart's is not
    news to systemd)."""
    path = os.path.join(bundle, READY_FILE)
    if not os.path.exists(path):
        try:
            jsonio.replace_file(path, {"said": line.decode(errors="replace")})
        except OSError:  # (removed meanwhile, a full disk): its run waits on, or for its end
            pass


def log_kept(bundle: str) -> bool:
    """Whether the container's output goes to its log (not --log-driver none)."""
    return log_options(bundle).get("keep", True)


def log_options(bundle: str, passthrough: bool = False) -> dict[str, Any]:
    """The log's bounds the container was made with (--log-driver, --log-opt: run_flags.log_options),
    read from its bundle's config (the container is not made yet when the relay is). With
    ``passthrough``: also whether its supervisor hands it the run's own stdout and stderr
    (--log-driver passthrough), for its relay."""
    try:
        noted = (jsonio.load_file(os.path.join(bundle, "config.json")).get("annotations") or {}).get(ann.LOG)
        options = jsonio.loads(noted) if isinstance(noted, str) else {}
    except (OSError, ValueError, AttributeError):
        options = {}
    if not isinstance(options, dict):
        options = {}
    out = {k: options[k] for k in ("keep", "max_size", "max_files")
           if k in options and isinstance(options[k], bool if k == "keep" else int)}
    if passthrough:
        out["passthrough"] = options.get("passthrough") is True
    return out


def _checker(runtime: Any, container_id: str, bundle: str, noted: str | None,
             annotations: dict[str, Any] | None = None) -> Any:
    """The container's health checker (images.health), if it has a check; ``annotations``: the
    container's, for the stop signal and timeout a --health-on-failure stop or restart uses."""
    if not noted:
        return None
    from mrun.images.health import Checker

    try:
        check = jsonio.loads(noted)
    except ValueError:
        return None
    numbers = ("interval", "timeout", "start_period", "retries")
    well_formed = (isinstance(check, dict) and isinstance(check.get("test"), list) and check["test"]
                   and all(isinstance(a, str) for a in check["test"])
                   and all(isinstance(check.get(k), (int, float)) and check[k] >= 0 for k in numbers)
                   and check["interval"] > 0
                   # absent in an older mrun's note (docker's 5 s then); never 0: checks without a pause
                   and ("start_interval" not in check or isinstance(check["start_interval"], (int, float))
                        and check["start_interval"] > 0))
    # a bundle's annotation written by hand may be anything: no check then, never a supervisor
    # that dies with its container running
    if not well_formed:
        return None
    return Checker(runtime, container_id, bundle, check, *stop_terms(annotations or {}),
                   rest_policy=lambda: mark_stopped(bundle))


def stop_terms(annotations: dict[str, Any]) -> tuple[int, float]:
    """The container's stop signal (its --stop-signal, else SIGTERM) and the seconds before
    SIGKILL (its --stop-timeout, else 10; -1: never), as `mrun stop` takes them."""
    from mrun.kernel.proc import parse_signal

    try:
        signum = parse_signal(annotations.get(ann.STOP_SIGNAL) or "SIGTERM")
    except MrunError:
        signum = 15
    own = annotations.get(ann.STOP_TIMEOUT, "")
    seconds = -1 if own == "-1" else decimal(own) if isinstance(own, str) else None
    return signum, 10.0 if seconds is None else float(seconds)


def _wait_relaying(pid: int, relay: Any, checker: Any = None, held: HeldInput | None = None, listener: Any = None,
                   said_ready: Any = None) -> int | None:
    """The exit code of ``pid`` (our descendant: we are a subreaper; others that end are reaped),
    its output relayed (its terminal's too), attachers given its input, its health checked and
    what it says on ``listener`` heard (``_heard``) meanwhile, and once more at its end. A
    child's end wakes the wait through SIGCHLD's wakeup pipe."""
    import select
    import signal

    from mrun.kernel.proc import exit_code

    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.signal(signal.SIGCHLD, lambda _signum, _frame: None)
    signal.set_wakeup_fd(wake_w)
    STOPS.running(pid)
    try:
        while True:
            while True:  # reaped before each wait: a child that ended before the handler was set counts
                try:
                    done, status = os.waitpid(-1, os.WNOHANG)
                except ChildProcessError:
                    return None
                if done == pid:
                    STOPS.ended()
                    if checker is not None:
                        checker.stop()
                    if listener is not None and listener.server is not None:  # said just before it ended
                        _heard(listener, said_ready)
                    return exit_code(status)
                if done == 0:
                    break
                if checker is not None:
                    checker.reaped(done, exit_code(status))
            if checker is not None:
                checker.tick(pid)
            listening = _fds_of(listener)
            try:
                ready = select.select([*relay.streams, *(checker.fds() if checker else ()),
                                       *(held.readable() if held is not None else ()), *listening, wake_r], [], [],
                                      checker.wait_for() if checker is not None else None)[0]
            except InterruptedError:
                continue
            for fd in ready:
                if fd in listening:
                    _heard(listener, said_ready)
                elif fd == wake_r:
                    while _drained(wake_r):
                        pass
                elif fd in relay.streams:
                    relay.pump(fd)
                elif held is not None and fd in held.readable():
                    held.pump(fd, relay)
                else:
                    checker.pump()
    finally:
        STOPS.ended()
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.close(wake_r)
        os.close(wake_w)


class StopSignals:
    """What a supervisor is told to end with (SIGTERM, SIGINT, SIGQUIT: systemd's stop of a unit
    whose main process it is, KillMode=mixed sending SIGTERM to it alone; an admin's kill), for
    its whole life. It died of them, and its container ran on unsupervised: output going
    nowhere, exit code never noted, --rm never done. Now each is passed on to the container
    (conmon's on_sig_exit), through a pidfd (never to a number reused once it is reaped): at
    once while it runs, else the moment it runs (one coming during its start); and no restart
    follows (``_told_to_stop``): the supervisor was told to end, and ends with its container."""

    SIGNALS = (15, 2, 3)

    def __init__(self) -> None:
        self.pid, self.pidfd = 0, -1
        self.held: list[int] = []  # every one it was told, in order (once each)

    def install(self) -> None:
        import signal

        for signum in self.SIGNALS:
            signal.signal(signum, lambda signum, _frame: self._got(signum))

    def running(self, pid: int) -> None:
        """``pid``, our child not yet reaped, is the container's process now."""
        from mrun.kernel.proc import pin

        try:
            self.pidfd = pin(pid)
        except ProcessLookupError:
            return
        self.pid = pid
        for signum in self.held:
            self._pass_on(signum)

    def ended(self) -> None:
        if self.pidfd >= 0:
            os.close(self.pidfd)
        self.pid, self.pidfd = 0, -1

    def _got(self, signum: int) -> None:
        if signum not in self.held:
            self.held.append(signum)
        if self.pid:
            self._pass_on(signum)

    def _pass_on(self, signum: int) -> None:
        from mrun.kernel.proc import send

        try:
            send(self.pidfd, self.pid, signum)
        except ProcessLookupError:
            pass


STOPS = StopSignals()  # a supervisor's (installed in it alone)


def _drained(fd: int) -> bool:
    try:
        return bool(os.read(fd, 512))
    except BlockingIOError:
        return False


def close_all_but(keep: list[int]) -> None:
    """Every descriptor of ours above 2 but ``keep`` (a supervisor's 0-2 are /dev/null by now)."""
    low = 3
    for fd in sorted(k for k in keep if k >= 3):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, 1 << 16)


def record(bundle: str, code: int | None, restarts: int = 0, restarting: bool = False, error: str = "") -> None:
    """The container's exit code, for `ps -a`, `inspect` and `wait`: by its supervisor, or by
    `mrun run` itself for a container it ran in the foreground. ``error``: why a restart its
    policy asked for did not happen (docker's State.Error); the supervisor has no one else to tell."""
    from mrun.state import now_rfc3339

    _write_exit(bundle, {"exit_code": code, "finished": now_rfc3339(), "restarts": restarts,
                         "restarting": restarting, **({"error": error} if error else {})})


def set_aside(bundle: str) -> None:
    """Room for the next exit note, taken while the disk has it: a container that fills the
    disk (its files, its log) is the one whose exit code must still be noted."""
    jsonio.set_aside(os.path.join(bundle, SPARE_FILE), SPARE_SIZE)


def _write_exit(bundle: str, doc: dict[str, Any]) -> None:
    try:
        jsonio.replace_file(os.path.join(bundle, EXIT_FILE), doc, spare=os.path.join(bundle, SPARE_FILE))
    except OSError:
        pass  # removed meanwhile (`mrun rm -f`), or no room even so: `ps` says "stopped", no code


def _running_again(bundle: str, restarts: int | None) -> None:
    """The last exit's note, no longer "restarting" and counting this restart (docker's
    RestartCount; ``None``: a `start`'s, which keeps the count): a later look at a stopped
    container must not take a stale flag for a back-off. It is "pending" until this run's exit
    is noted, and written before this run can end: between that end and its note, the last
    run's code was taken for this one's (`wait` and `start -a` returned it, and ps said "Exited"
    before the policy had started it again)."""
    noted = exit_of(bundle) or {}
    _write_exit(bundle, {**noted, "restarts": noted.get("restarts", 0) if restarts is None else restarts,
                         "restarting": False, "pending": True})
    set_aside(bundle)


def _forget_exit(bundle: str) -> None:
    try:
        os.unlink(os.path.join(bundle, EXIT_FILE))
    except FileNotFoundError:
        pass


def _write_conmon_pidfile(bundle: str) -> None:
    """podman's --conmon-pidfile: our pid, where its run or create asked, before the start that
    forked us returns (a unit of Type=forking reads its PIDFile then: `podman generate systemd`'s
    units without --new, whose ExecStart is `start`). Read from the bundle's config: a first
    run's container is not made yet."""
    config = jsonio.load_object(os.path.join(bundle, "config.json")) or {}
    annotations = config.get("annotations") if isinstance(config.get("annotations"), dict) else {}
    path = annotations.get(ann.CONMON_PIDFILE)
    if isinstance(path, str) and path:
        from mrun.operations.options import write_pid_file

        write_pid_file(path, os.getpid(), "--conmon-pidfile")


def _note_self(bundle: str) -> None:
    from mrun.kernel.proc import start_time

    jsonio.replace_file(os.path.join(bundle, SUPERVISOR_FILE), {"pid": os.getpid(), "start": start_time(os.getpid())})


def supervisor_gone(bundle: str) -> bool | None:
    """Whether the container's supervisor has ended (by its noted pid and start time, so never
    another process that took the pid); None where none was noted (a container of an older mrun,
    or not of `mrun run -d`)."""
    from mrun.kernel.proc import is_alive

    try:
        doc = jsonio.load_file(os.path.join(bundle, SUPERVISOR_FILE))
        pid, start = int(doc["pid"]), doc.get("start")
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return not is_alive(pid, start if isinstance(start, int) else None)


def exit_code(runtime: Any, container_id: str, bundle: str = "") -> int | None:
    """The container's exit code once it has stopped and its supervisor has noted it (`wait`,
    `attach`); None while it runs or the note is on its way. A container stopped for good
    without one (its supervisor killed before it could note it, or one not of `mrun run -d`)
    is an error: waiting for it would never end. Removed once stopped (`rm -f`, --rm), its
    code is read from its ``bundle``, which a waiter holds (bundles.reading) until it has read
    it: docker's `wait` says 137 for a container `rm -f` took, where ours said it was gone."""
    from mrun.errors import NotFound
    from mrun.status import Status

    try:
        record = runtime.store.load(container_id)
    except NotFound:  # removed once stopped (`rm -f`; by its supervisor, `mrun run -d --rm`)
        if bundle and os.path.isdir(bundle):
            if (code := _noted_code(bundle)) is not None:
                return code
            if supervisor_gone(bundle) is False:
                return None  # it is noting it
        raise MrunError(f"container {container_id!r} is gone (removed once it stopped, before its exit code was "
                        "read)") from None
    if runtime.status(record) != Status.STOPPED:
        return None
    if (code := _noted_code(record.bundle)) is not None:
        return code
    gone = supervisor_gone(record.bundle)
    if gone is False or (gone is None and _to_be_noted(record.bundle)):
        return None  # it is noting it, or it is yet to run
    if (code := _noted_code(record.bundle)) is not None:  # noted between our two looks
        return code
    if gone is None:
        raise MrunError(f"container {container_id!r} stopped, but no exit code was kept (its `mrun run` was "
                        "killed before it ended, or it was not run by `mrun run`)")
    raise MrunError(f"container {container_id!r} stopped, but its supervisor ended before it noted the exit code")


def being_run(bundle: str) -> bool:
    """Whether the `mrun run` (or create) that made the container still lives: it holds the
    bundle's run lock until it exits, however it ends."""
    from mrun.bundles import RUN_LOCK
    from mrun.state import held_by_someone

    return held_by_someone(os.path.join(bundle, RUN_LOCK))


def _to_be_noted(bundle: str) -> bool:
    """With no supervisor noted: whether the container's exit code may still come. From its
    foreground `mrun run`, which holds the run lock until it has noted it; or from the first
    supervisor of one made by `mrun create` and not yet started (docker's wait waits for it).
    A foreground run killed before it noted the code (`wait` waited for it for good) never will."""
    from mrun.images.unstarted import never_started

    return being_run(bundle) or never_started(bundle) is not None


def _noted_code(bundle: str) -> int | None:
    ended = exit_of(bundle)
    code = ended.get("exit_code") if ended is not None and not ended.get("pending") else None
    return code if isinstance(code, int) else None


def exit_of(bundle: str) -> dict[str, Any] | None:
    """What the supervisor recorded: {"exit_code": N (None if unknown), "finished": time,
    "restarts": N, "restarting": whether it will start the container again}. "restarting" only
    while that supervisor lives: one killed in its back-off starts nothing."""
    doc = jsonio.load_object(os.path.join(bundle, EXIT_FILE))
    if doc is not None and doc.get("pending"):  # the note of a run before the one now running or just ended
        if supervisor_gone(bundle) is False:
            doc["restarting"] = True  # its supervisor is noting this run's end, and may start it again
        else:
            doc.update(exit_code=None, restarting=False)  # this run's end was never noted
    elif doc is not None and doc.get("restarting") and supervisor_gone(bundle):
        doc["restarting"] = False
    return doc

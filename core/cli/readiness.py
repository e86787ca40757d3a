"""systemd's readiness (NOTIFY_SOCKET) through runc's run and start, and through the docker-like
run as podman's --sdnotify: the relay (mrun.notify_socket) put where each verb needs it. systemd
takes a unit's notifications from its main process, the verb's caller: runc's verbs speak in
their own process (the warm template serves no such start: warm.template.native_refusal); a
docker-like run's child (the warm template's, or a cold foreground run's) speaks for its caller."""

from __future__ import annotations

import os

from mrun.errors import InvalidSpec, MrunError
from mrun.status import require

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from mrun.runtime import CreateOptions


def relayed_by_run(runtime: Any, opts: CreateOptions, detach: bool) -> Any:
    """runc's run under NOTIFY_SOCKET: the program's READY= is passed on once it comes.

    A detached run waits for it, or for its init to end, or for a stop signal, and names the
    init as MAINPID. A foreground run names itself (the unit's main process still) and relays
    beside its wait; a READY= said just before the program ended is still passed on before the
    run returns. runc 1.1 relays before it waits, so its foreground run whose program never says
    it is ready waits forever; so does its detached run whose program ends without a word (the
    init is its own child, unreaped, still in /proc).
    -> the relay, for the caller to end (``relay_done``); None without one."""
    from mrun.notify_socket import relay_for

    relay = relay_for(opts.notify_socket, runtime.warn)
    if relay is None:
        return None
    opts.notify_relay = relay
    relay.on_behalf_of = caller = caller_pid()

    def started(record: Any) -> None:
        pidfd = _pinned(record)
        if detach:
            from mrun.stop_signals import stop_held

            try:
                _pass_on(relay, runtime, record.pid, pidfd, stop_held)
            finally:
                if pidfd >= 0:
                    os.close(pidfd)
            return
        import threading

        def beside() -> None:
            try:
                _pass_on(relay, runtime, caller, pidfd)
            finally:
                relay.close()
                if pidfd >= 0:
                    os.close(pidfd)

        import _signal  # the C module: `signal` builds enums (~7 ms)

        # Born with every signal blocked: one sent to the run must reach its main thread, asleep
        # in waitpid, whose handlers pass it on to the container; taken by this thread, it would
        # wait there until the container ended.
        mask = _signal.pthread_sigmask(_signal.SIG_BLOCK, _signal.valid_signals())
        try:
            relay.beside = threading.Thread(target=beside, name="notify-relay", daemon=True)
            relay.beside.start()
        finally:
            _signal.pthread_sigmask(_signal.SIG_SETMASK, mask)

    opts.when_started(started)
    return relay


def relay_done(relay: Any) -> None:
    """A foreground run's relay finishes what came before the program ended (its init is gone:
    the wait is over, a barrier's answer aside); a detached run's, or one never started, is closed."""
    if relay is None:
        return
    if relay.beside is not None:
        relay.beside.join()
    else:
        relay.close()


def _pinned(record: Any) -> int:
    """A pidfd of the container's init while it is still the process recorded; -1 once gone."""
    from mrun.kernel.proc import pin_if_same

    try:
        return pin_if_same(record.pid, record.pid_start)
    except ProcessLookupError:
        return -1


def _pass_on(relay: Any, runtime: Any, main_pid: int, pidfd: int, give_up: Any = None) -> None:
    _quietly(relay, runtime.warn, lambda: relay.pass_on(main_pid, pidfd, give_up, runtime.warn))


def _quietly(relay: Any, warn: Any, say: Any) -> None:
    """``say()`` through ``relay``. runc drops what goes wrong there (the container runs
    already); it is said, in one line, and nothing here may end the run (nor print a foreground
    run's thread's traceback)."""
    try:
        say()
    except MrunError as e:  # its words name NOTIFY_SOCKET
        warn(f"{e}: readiness not passed on")
    except Exception as e:  # noqa: BLE001 - see above
        said = getattr(e, "strerror", None) or f"{e.__class__.__name__}: {e}"
        warn(f"NOTIFY_SOCKET: {relay.host}: {said}: readiness not passed on")


def start_passing_readiness_on(runtime: Any, record: Any, host: str) -> None:
    """runc's start of ``record``'s container under NOTIFY_SOCKET (``host``): the container's
    socket is bound first, and the start returns once the program's READY= is passed on (then
    MAINPID: the init), or the init has ended. A manager that cannot be reached is said before
    the start, and the container stays created (runc starts it, then fails)."""
    from mrun.notify_socket import Relay

    container_id = record.id
    require("start", runtime.status(record), container_id)  # before its socket is bound
    relay = Relay(host)
    try:
        relay.bind(runtime.store.path(container_id), container_id)
        record = runtime.start(container_id)
        pidfd = _pinned(record)
        try:
            relay.pass_on(record.pid, pidfd, None, runtime.warn)
        except OSError as e:
            raise MrunError(f"NOTIFY_SOCKET: {host}: {e.strerror or e}: readiness not passed on") from None
        finally:
            if pidfd >= 0:
                os.close(pidfd)
    finally:
        relay.close()


SDNOTIFY_MODES = ("conmon", "container", "healthy", "ignore")


def docker_like_mode(mode: str | None, detach: bool) -> str:
    """podman's --sdnotify for `mrun run IMAGE`, under systemd's NOTIFY_SOCKET (else "ignore"):

    - conmon (the default): READY=1 once the container runs, with MAINPID the process that
      stays with it (a detached container's supervisor, or the foreground run itself); the
      container gets no socket;
    - container: the container's own READY= is passed on (its socket as runc's run gives it),
      with the same MAINPID; with -d the run returns once it has (as podman's);
    - healthy: READY=1 once its health check has passed, with -d (a detached container's
      supervisor runs the checks): the run returns then;
    - ignore: nothing."""
    mode = mode or "conmon"
    if mode not in SDNOTIFY_MODES:
        raise InvalidSpec(f"--sdnotify {mode!r}: must be conmon, container, healthy or ignore")
    if mode == "healthy" and not detach:
        raise InvalidSpec("--sdnotify healthy: needs -d (a detached container's supervisor runs its health checks)")
    return mode if os.environ.get("NOTIFY_SOCKET") else "ignore"


def caller_pid() -> int:
    """systemd's main process as far as this verb knows: the caller a child works for, or us."""
    import mrun.warm.client as warm  # (layer 1: the client alone)

    return warm.caller or os.getpid()


def tell_ready(main_pid: int, warn: Any) -> None:
    """--sdnotify=conmon: MAINPID and READY=1, in the caller's name; what goes wrong is said in
    one line and the container runs on (as a failed relay leaves it)."""
    from mrun.notify_socket import relay_for

    relay = relay_for(os.environ.get("NOTIFY_SOCKET", ""), warn)
    if relay is None:
        return
    relay.on_behalf_of = caller_pid()
    try:
        _quietly(relay, warn, lambda: relay.tell(f"MAINPID={main_pid}\nREADY=1\n".encode(), warn))
    finally:
        relay.close()


READY_LOOK = 0.05  # seconds between two looks at what the supervisor noted (health.json, ready.json)


def ready_once_noted(bundle: str, container_id: str, supervisor: int, mode: str, warn: Any) -> None:
    """A detached run under NOTIFY_SOCKET, as podman's run waits: --sdnotify=healthy until the
    supervisor has seen the container's health check pass, =container until it has read the
    container's READY= (its socket is the supervisor's: images.supervisor READY_FILE); then
    MAINPID (the supervisor) and READY=1, in the caller's name. The container ending first (its
    supervisor with it) is an error; a stop signal ends the wait, and the container runs on."""
    import time

    from mrun.stop_signals import held_signals

    if mode == "healthy":
        from mrun.images import health

        def noted() -> bool:
            return (health.read(bundle) or {}).get("Status") == "healthy"

        waited_for = "its health check passed"
    else:
        from mrun.images.supervisor import READY_FILE

        def noted() -> bool:
            return os.path.exists(os.path.join(bundle, READY_FILE))

        waited_for = "it said READY=1"
    while not noted():
        if held_signals():
            return
        try:
            ended = os.waitid(os.P_PID, supervisor, os.WEXITED | os.WNOHANG | os.WNOWAIT)  # our child
        except ChildProcessError:
            ended = None
        if ended is not None:
            raise MrunError(f"container {container_id!r} ended before {waited_for} (--sdnotify {mode})")
        time.sleep(READY_LOOK)
    tell_ready(supervisor, warn)

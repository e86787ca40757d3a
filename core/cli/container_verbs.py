"""docker's verbs on containers of `mrun run`: rm, stop, restart, wait, and `container ls|prune`."""

from __future__ import annotations

import os
import sys

from mrun import annotations as ann
from mrun.cli.common import _rt, each, remove_container
from mrun.cli.filters import prune_filter
from mrun.cli.ps_verb import list_containers
from mrun.cli.short_ids import as_typed
from mrun.errors import InvalidSpec, MrunError, NotFound, one_line
from mrun.status import Status

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def rm(g: dict[str, Any], container_ids: list[str], force: bool, volumes: bool = False, time: int | None = None,  # noqa: A002
       cidfile: tuple[str, ...] = (), ignore: bool = False) -> int:
    """Each container is removed as runc's delete removes it (and with -f, what a killed `mrun
    run` left); its name is printed once it is gone, as docker prints it. podman's -t (with -f):
    stopped first as `stop -t` stops it, its stop signal given time to work."""
    from mrun.images.supervisor import stopped_by_user

    if time is not None and not force:
        raise InvalidSpec("-t/--time: only with -f/--force (the time a running container is given to stop)")

    def one(cid: str) -> None:
        known = _rt(g).store.exists(cid) or os.path.isdir(os.path.join(g["image_root"], "containers", cid))
        if time is not None and _rt(g).store.exists(cid):
            _stop(g, cid, time)
        stopped_by_user(_rt(g), cid)  # its supervisor (--restart) must not start it again meanwhile
        used = _volumes_of(g, cid) if volumes else []
        remove_container(g, cid, force)
        if used:  # docker's rm -v: its anonymous volumes (named ones stay)
            from mrun.images.volumes import remove_anonymous

            remove_anonymous(g["image_root"], used)
        if known:
            print(as_typed(g, cid))

    return _each_named(container_ids, cidfile, ignore, "rm", one)


def replace(g: dict[str, Any], name: str) -> None:
    """podman's run --replace: the container of this name stopped (its stop signal, then SIGKILL
    after its stop timeout) and removed, as `rm -f -t` would, with what a killed run left of it
    (its snapshot after a crash: what a systemd unit's next start finds). Only one `mrun run` or
    `create` made: a runc verb's container of that name is its engine's, and is refused."""
    from mrun.images.supervisor import stopped_by_user
    from mrun.state import check_id

    check_id(name)
    runtime = _rt(g)
    ours = os.path.join(g["image_root"], "containers")
    if runtime.store.exists(name):
        bundle = runtime.store.load(name).bundle
        if os.path.dirname(bundle) != ours:
            raise InvalidSpec(f"--replace: container {name!r} was not made by `mrun run` or `create` (its bundle is "
                              f"{bundle}): not removed")
        try:
            _stop(g, name, None)
        except NotFound:  # removed meanwhile (its --rm)
            pass
    elif not os.path.isdir(os.path.join(ours, name)):
        return
    stopped_by_user(runtime, name)
    remove_container(g, name, True)


def _each_named(container_ids: list[str], cidfiles: tuple[str, ...], ignore: bool, verb: str, one: Any) -> int:
    """``one`` for each container named, or named by a --cidfile (podman's stop and rm); with
    --ignore, one not there is passed over, and cidfiles that name none are nothing to do."""
    named = _with_cidfiles(container_ids, cidfiles, ignore)
    return each(named, verb, _ignoring_absent(one, ignore)) if named or not cidfiles else 0


def _with_cidfiles(container_ids: list[str], cidfiles: tuple[str, ...], ignore: bool) -> list[str]:
    """podman's --cidfile FILE: the container whose id its first line holds (as `run --cidfile`
    wrote it), after those named; with --ignore a FILE that is not there, or empty, names none. Only a
    regular file is opened (a fifo's or a device's open and read waited for ever, or never ended)."""
    from mrun.kernel.inroot import open_regular_at

    named = list(container_ids)
    for path in cidfiles:
        try:
            fd = open_regular_at(None, path, follow=True)
        except FileNotFoundError:
            if ignore:
                continue
            raise InvalidSpec(f"--cidfile {path}: no such file") from None
        except OSError as e:
            raise InvalidSpec(f"--cidfile {path}: {e.strerror or e}") from None
        if fd is None:
            raise InvalidSpec(f"--cidfile {path}: not a regular file")
        try:
            first = os.read(fd, 4096).decode(errors="replace").split("\n", 1)[0].strip()
        finally:
            os.close(fd)
        if not first:  # (a run killed before it wrote the id): with --ignore, as podman, none
            if ignore:
                continue
            raise InvalidSpec(f"--cidfile {path}: it names no container")
        named.append(first)
    return named


def _ignoring_absent(one: Any, ignore: bool) -> Any:
    """podman's --ignore: a container that is not there (removed by hand, by its --rm, or never
    made) is passed over, not an error: a unit's ExecStop after its container has gone."""
    if not ignore:
        return one

    def each_one(cid: str) -> None:
        try:
            one(cid)
        except NotFound:
            pass

    return each_one


def _volumes_of(g: dict[str, Any], container_id: str) -> list[str]:
    from mrun.images.volumes import of_container

    try:
        return of_container(g["image_root"], _rt(g).store.load(container_id).config)
    except MrunError:
        return []


def container(g: dict[str, Any], action: str, force: bool = False, format: str = "table",  # noqa: A002
              quiet: bool = False, all: bool = False, filter: tuple[str, ...] = (),  # noqa: A002
              last: int = -1, latest: bool = False, no_trunc: bool = False, size: bool = False) -> int:
    """docker's container ls (`ps`) and prune: each stopped container `mrun run` or `create` made
    (its bundle mrun's own) removed as `mrun rm` removes it; one of the runc verbs, from an
    engine's bundle, is that engine's to delete."""
    if action in ("ls", "list"):
        return list_containers(g, format, list(filter), quiet, all, 1 if latest else last, no_trunc, size)
    if action != "prune":
        raise InvalidSpec(f"container: unknown action {action!r} (ls or prune)")
    from mrun.images.supervisor import exit_of
    from mrun.images.unstarted import as_docker_sees

    chosen = prune_filter(list(filter), "container")
    runtime = _rt(g)
    status = 0
    ours = os.path.join(g["image_root"], "containers")
    for state in map(as_docker_sees, runtime.list()):
        if os.path.dirname(state["bundle"]) != ours:
            continue
        if state["status"] not in (Status.STOPPED, Status.CREATED) or \
                (exit_of(state["bundle"]) or {}).get("restarting"):
            continue  # running, or about to start again (--restart): docker leaves both
        if not chosen(state.get("annotations") or {}, str(state.get("created") or "")):
            continue
        try:
            remove_container(g, state["id"], False)
            print(state["id"])
        except MrunError as e:  # removed meanwhile, or started again: the rest still go
            print(f"mrun: {one_line(str(e))}", file=sys.stderr)
            status = 1
    return status


def _signal_flag(signal: str) -> int | None:
    """docker's stop -s and restart -s, read before any container is touched."""
    from mrun.kernel.proc import parse_signal

    if not signal:
        return None
    try:
        return parse_signal(signal)
    except MrunError as e:
        raise InvalidSpec(f"--signal: {e}") from None


def stop(g: dict[str, Any], container_ids: list[str], time: int | None, signal: str = "",  # noqa: A002
         cidfile: tuple[str, ...] = (), ignore: bool = False) -> int:
    number = _signal_flag(signal)

    def one(cid: str) -> None:
        _stop(g, cid, time, number)
        print(as_typed(g, cid))

    return _each_named(container_ids, cidfile, ignore, "stop", one)


def restart(g: dict[str, Any], container_ids: list[str], time: int | None, signal: str = "") -> int:  # noqa: A002
    """docker's restart: stop (as `mrun stop`), then start again in place (as `mrun start`)."""
    from mrun.images.supervisor import restartable, start_again

    number = _signal_flag(signal)

    def one(cid: str) -> None:
        if not restartable(_rt(g).store.load(cid)):  # before it is stopped, not after
            raise MrunError(f"container {cid!r}: only a container of `mrun run -d` starts again")
        _stop(g, cid, time, number)
        start_again(_rt(g), cid)
        print(as_typed(g, cid))

    return each(container_ids, "restart", one)


def wait(g: dict[str, Any], container_ids: list[str]) -> int:
    """docker's wait: until each container stops, then its exit code (what its supervisor
    recorded: only a `mrun run -d` container has one)."""
    import time as clock

    from mrun import bundles
    from mrun.images.supervisor import exit_code

    def one(cid: str) -> None:
        runtime = _rt(g)
        bundle = runtime.store.load(cid).bundle  # one that is not there is said at once
        with bundles.reading(bundle, cid, runtime.store.root):  # its exit note stays until we have read it
            while (code := exit_code(runtime, cid, bundle)) is None:
                clock.sleep(0.05)
        print(code)

    return each(container_ids, "wait", one)


def _stop(g: dict[str, Any], container_id: str, time: int | None, signal: int | None = None) -> None:  # noqa: A002
    """As docker's stop: ``signal`` (-s), else the container's stop signal; SIGKILL after ``time``."""
    import time as clock

    from mrun.images.supervisor import stopped_by_user
    from mrun.kernel.proc import parse_signal

    runtime = _rt(g)
    stopped_by_user(runtime, container_id)  # before anything: its supervisor must not start it again
    record = runtime.store.load(container_id)
    if runtime.status(record) == Status.STOPPED:
        return
    annotations = record.config.get("annotations") or {}
    stop_signal = annotations.get(ann.STOP_SIGNAL) or "SIGTERM"
    if time is None:  # docker's: the container's --stop-timeout, else 10 seconds
        from mrun.images.supervisor import stop_terms

        time = int(stop_terms(annotations)[1])
    try:
        runtime.kill(container_id, parse_signal(stop_signal) if signal is None else signal)
    except NotFound:  # it ended and its supervisor removed it (run -d --rm) since we looked
        return
    deadline = clock.monotonic() + time if time >= 0 else float("inf")
    while not _stopped_or_gone(runtime, container_id):
        if clock.monotonic() > deadline:
            try:
                runtime.kill(container_id, 9, all_processes=True)
            except NotFound:  # removed meanwhile (run -d --rm: its supervisor did)
                break
            deadline = clock.monotonic() + 10
        clock.sleep(0.05)
    from mrun.images.supervisor import exit_of

    settle = clock.monotonic() + 2  # its supervisor writes the exit code a moment after the exit
    while os.path.exists(os.path.join(record.bundle, "log")) and exit_of(record.bundle) is None:
        if clock.monotonic() > settle:
            break
        clock.sleep(0.02)


def _stopped_or_gone(runtime: Any, container_id: str) -> bool:
    """Stopped, or removed by its supervisor once stopped (`mrun run -d --rm`)."""
    try:
        return runtime.status(runtime.store.load(container_id)) == Status.STOPPED
    except NotFound:
        return True

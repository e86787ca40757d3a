"""What each CLI verb does: parse nothing, print results, return the exit status.

Handlers receive the parsed global flags (``g``) and their own flags as keywords; both
front ends (fastparse and typer) call them the same way.
"""

from __future__ import annotations

import os
import sys

from mrun import annotations as ann
from mrun import jsonio
from mrun.cli.common import (  # noqa: F401 - the verbs' shared helpers
    _rt,
    each,
    names_a_container,
    no_stdin,
    os_error_words,
    print_table,
    remove_container,
)
from mrun.errors import InvalidSpec, MrunError
from mrun.runtime import CreateOptions
from mrun.status import Status, require
from mrun.units import decimal

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~6 ms (it imports re) on the lifecycle verbs' hot path
    from typing import Any


def _opts(
    g: dict[str, Any],
    pid_file: str = "",
    console_socket: str = "",
    preserve_fds: int = 0,
    no_pivot: bool = False,
    no_new_keyring: bool = False,
    **_: Any,
) -> CreateOptions:
    if preserve_fds < 0:
        raise MrunError("--preserve-fds: must not be negative")
    return CreateOptions(
        pid_file=pid_file,
        console_socket=console_socket,
        preserve_fds=preserve_fds,
        no_pivot=no_pivot,
        systemd_cgroup=g["systemd_cgroup"],
        no_new_keyring=no_new_keyring,
    )


def _socket_activation(opts: CreateOptions) -> CreateOptions:
    """systemd's socket activation, as runc's create and run take it: the LISTEN_FDS descriptors
    from 3 that the service manager gave this very process (LISTEN_PID) go on to the container's
    init at the same numbers, before --preserve-fds's, and its environment says so (LISTEN_FDS,
    LISTEN_PID=1, appended as runc appends them). A unit whose ExecStart is `runc run` served its
    container no socket under mrun."""
    count = decimal(os.environ.get("LISTEN_FDS", ""), 1 << 20)
    if not count or os.environ.get("LISTEN_PID") != str(os.getpid()):
        return opts
    opts.preserve_fds += count

    def tell(config: dict[str, Any]) -> None:
        process = config.get("process")
        if isinstance(process, dict) and isinstance(process.get("env", []), list):  # else its check says why
            process["env"] = [*process.get("env", []), f"LISTEN_FDS={count}", "LISTEN_PID=1"]

    opts.amend_config = tell
    return opts


def _notify_socket(opts: CreateOptions) -> CreateOptions:
    """systemd's NOTIFY_SOCKET, as runc's create and run take it: the container gets a socket of
    its own to say it is ready through (mrun.notify_socket)."""
    opts.notify_socket = os.environ.get("NOTIFY_SOCKET", "")  # set and not empty, as runc reads it
    return opts


def create(g: dict[str, Any], container_id: str, bundle: str, command: list[str], **kw: Any) -> int:
    """runc's create of ID from a bundle; docker's create of IMAGE [COMMAND...] (made, recorded,
    not started) where there is no bundle. A flag of the other form is refused, never ignored."""
    if docker_create({"bundle": bundle, "command": command, **kw}):
        used = _flags_used(kw, BUNDLE_RUN_FLAGS)
        try:
            if used:
                raise MrunError(f"create IMAGE: {' '.join(used)} applies to runc's `mrun create --bundle` only")
            from mrun.cli.run_verb import run_image

            return run_image(g, container_id, command, kw, create_only=True)
        except MrunError as e:
            e.exit_code = RUN_FAILED  # docker create's code for any failure
            raise
        except OSError as e:
            raise _failure("create", e, RUN_FAILED) from None
    _rt(g).create(container_id, bundle or ".", _notify_socket(_socket_activation(_opts(g, **kw))))
    return 0


def docker_create(params: dict[str, Any], look_here: bool = True) -> bool:
    """Whether `create` is docker's (of an IMAGE) or runc's (of a bundle): runc's has --bundle,
    or, as runc defaults to, a config.json in the working directory; docker's has none, or a
    COMMAND, or one of docker's flags. The warm template serves docker's only (runc's init must
    stay its caller's descendant), so it asks this too, without ``look_here``: its working
    directory is not the caller's, and a call it cannot tell without looking stays cold."""
    if params.get("bundle"):
        used = _flags_used(params, _docker_flags())
        if used or params.get("command"):
            raise MrunError(f"create --bundle: {' '.join(used) or 'a COMMAND'} applies to `mrun create IMAGE` only")
        return False
    if params.get("command") or _flags_used(params, _docker_flags()):
        return True
    return look_here and not os.path.exists("config.json")


def _docker_flags() -> list[str]:
    """What run IMAGE and create IMAGE take and the bundle forms have not (-i, a no-op, aside)."""
    from mrun.cli.commands import DOCKER_RUN_FLAGS

    return [f.dest for f in DOCKER_RUN_FLAGS if f.dest != "interactive"]


def _flags_used(kw: dict[str, Any], names: list[str]) -> list[str]:
    """``names`` (flag destinations) given a value other than their default, as --spelled (run
    and create share these flags, defaults included)."""
    from mrun.cli.commands import BY_NAME

    default = {f.dest: f.default for verb in ("create", "run") for f in BY_NAME[verb].flags}
    return [f"--{f.replace('_', '-')}" for f in names if kw.get(f, default.get(f)) not in (default.get(f), [], ())]


def _docker_made(record: Any) -> bool:
    """A container of `mrun run` (docker's verbs print its name once done; runc's print nothing)."""
    return ann.IMAGE in (record.config.get("annotations") or {})


class NotRunning(MrunError):
    """docker's refusal of exec and top on a container that is not running: its words, exit 1
    (runc's exec ends 255 for whatever kept the process from running)."""


def _docker_running(runtime: Any, record: Any, exec_: bool = False) -> None:
    """A container of docker's verbs must be running for its exec and top, as docker's: created
    or exited "is not running"; exec into a paused one is refused (docker has no --ignore-paused)."""
    status = runtime.status(record)
    if exec_ and status == Status.PAUSED:
        raise NotRunning(f"container {record.id!r} is paused, unpause the container before exec")
    if status not in (Status.RUNNING, Status.PAUSED):
        raise NotRunning(f"container {record.id!r} is not running")


def start(g: dict[str, Any], container_ids: list[str], attach: bool = False, interactive: bool = False,
          detach_keys: str = "") -> int:
    """runc's start of a created container; docker's of exited `mrun run -d` ones (several, as
    `docker start a b`), and with -a (or -i, our stdin its) of one, followed to its exit code."""
    if attach or interactive:
        if len(container_ids) != 1:
            raise InvalidSpec(f"start {'-a' if attach else '-i'}: one container at a time (docker's rule)")
        from mrun.cli.attach import start_attached

        return start_attached(g, container_ids[0], interactive, detach_keys)
    return each(container_ids, "start", lambda cid: _start_one(g, cid), one_raises=True)


def _start_one(g: dict[str, Any], container_id: str) -> int:
    runtime = _rt(g)
    record = runtime.store.load(container_id)
    if not _docker_made(record):  # runc's: of a created container, once
        host = os.environ.get("NOTIFY_SOCKET", "")
        if not host:
            runtime.start(container_id)
            return 0
        from mrun.cli.readiness import start_passing_readiness_on

        start_passing_readiness_on(runtime, record, host)
        return 0
    # docker's. Such a container is "created" only inside its supervisor, between that one's
    # create and start: runc's start from here ran it under the supervisor, which then failed
    # its own start and left it unsupervised (no log relay, no exit code).
    from mrun.images.supervisor import restartable, start_again

    if runtime.status(record) == Status.STOPPED:
        if not restartable(record):
            require("start", Status.STOPPED, container_id)  # runc's refusal: a container it made runs once
        from mrun.cli import readiness

        # under systemd (a unit's ExecStart), as its run would: create's --sdnotify, else conmon
        mode = readiness.docker_like_mode(record.annotations.get(ann.SDNOTIFY) or None, True)
        supervisor = start_again(runtime, container_id, notify=mode == "container")
        if supervisor and mode == "conmon":
            readiness.tell_ready(supervisor, runtime.warn)
        elif supervisor and mode in ("healthy", "container"):
            readiness.ready_once_noted(record.bundle, container_id, supervisor, mode, runtime.warn)
    from mrun.cli.short_ids import as_typed

    print(as_typed(g, container_id))  # as docker's start says it; of one running or starting, it does nothing
    return 0  # (`docker start X || docker run --name X ...` ran the second, which failed)


def state(g: dict[str, Any], container_id: str) -> int:
    print(jsonio.dumps(_rt(g).state(container_id), indent=2))
    return 0


def kill(g: dict[str, Any], container_id: str, signal_or_containers: list[str], all: bool,  # noqa: A002
         signal_flag: str = "") -> int:
    """runc's `kill ID [SIGNAL]`, as conmon and containerd's runc shim call it; docker's `kill
    [-s SIGNAL] CONTAINER...`, each name printed once signalled. A second word that is a signal
    is runc's signal (a container named like one is still killed by `-s`)."""
    from mrun.kernel.proc import parse_signal

    signal, more = None, signal_or_containers
    if len(more) == 1:
        try:
            parse_signal(more[0], probe=True)
        except MrunError:
            if not signal_flag and not names_a_container(_rt(g), more[0]):
                raise  # runc's `kill ID SIGNAL` with no such signal (a typo): nothing is signalled
        else:
            if not signal_flag:
                signal, more = more[0], []  # runc's form, whatever containers are named
            elif not names_a_container(_rt(g), more[0]):
                raise InvalidSpec(f"kill: the signal twice ({signal_flag} as -s, {more[0]} as an argument): give one")
    return each([container_id, *more], "kill", lambda cid: _kill_one(g, cid, signal or signal_flag, all),
                one_raises=True)


def _kill_one(g: dict[str, Any], container_id: str, signal: str, all: bool) -> None:  # noqa: A002
    from mrun.images.supervisor import stopped_by_user
    from mrun.kernel.proc import parse_signal

    runtime = _rt(g)
    try:
        docker_made = _docker_made(runtime.store.load(container_id))
    except MrunError:
        docker_made = False  # runtime.kill says what is wrong with the id
    # docker's kill, for a container of `mrun run IMAGE`: SIGKILL, which its PID 1 cannot ignore; runc's SIGTERM
    number = parse_signal(signal or ("SIGKILL" if docker_made else "SIGTERM"), probe=True)
    stopped_by_user(runtime, container_id, number)  # docker's: a kill that ends it rests --restart
    runtime.kill(container_id, number, all)
    if docker_made:
        from mrun.cli.short_ids import as_typed

        print(as_typed(g, container_id))  # as docker's kill says it


def delete(g: dict[str, Any], container_id: str, force: bool) -> int:
    remove_container(g, container_id, force)
    return 0


BUNDLE_RUN_FLAGS = "pid_file console_socket preserve_fds no_pivot no_new_keyring".split()  # what run IMAGE has not


# docker run's code for a failure of its own (no such image, a bad flag's value...), not the
# container's: a command's `exit 1` and "no such image" were both 1
RUN_FAILED = 125


def command_not_run_code(error: str) -> int | None:
    """docker run's exit code for a container whose command never ran, read from the payload's own
    line ("exec: 'NAME': REASON", backends' words after runc's; NAME as Python quotes it, so
    "NAME" when it holds a quote) as docker's CLI reads runc's: 127 when it cannot be found, 126
    when it cannot be invoked; None for any other failure."""
    if not error.startswith(("exec: '", 'exec: "')):
        return None
    if "executable file not found" in error or error.endswith("no such file or directory"):
        return 127
    return 126 if error.endswith("permission denied") else None


def run(
    g: dict[str, Any], container_id: str, command: list[str], bundle: str, detach: bool, keep: bool, **kw: Any
) -> int:
    """With --bundle, runc's run of ID; without, docker's run of IMAGE [COMMAND...]. A flag of
    the other form is refused, never ignored (a --pid-file nobody writes would fail later)."""
    from mrun.stop_signals import end_runs_on_termination

    end_runs_on_termination()

    used = _flags_used(kw, BUNDLE_RUN_FLAGS if not bundle else [*_docker_flags(), "sig_proxy", "sdnotify"])
    if not bundle:
        try:
            if used:
                raise MrunError(f"run IMAGE: {' '.join(used)} applies to runc's `mrun run --bundle` only")
            from mrun.cli.run_verb import run_image

            return run_image(g, container_id, command, {**kw, "detach": detach})
        except MrunError as e:
            e.exit_code = command_not_run_code(str(e)) or RUN_FAILED
            raise
        except OSError as e:
            raise _failure("run", e, RUN_FAILED) from None
    if command or used:
        raise MrunError(f"run --bundle: {' '.join(used) or 'a COMMAND'} applies to `mrun run IMAGE` only")
    from mrun.stop_signals import held_signals, hold_termination

    hold_termination()
    runtime, opts = _rt(g), _notify_socket(_socket_activation(_opts(g, **kw)))
    if not opts.notify_socket:
        code = runtime.run(container_id, bundle, opts, detach, keep)
    else:
        from mrun.cli.readiness import relay_done, relayed_by_run

        relay = relayed_by_run(runtime, opts, detach)
        try:
            code = runtime.run(container_id, bundle, opts, detach, keep)
        finally:
            relay_done(relay)
    held = held_signals()  # a detached one: it runs; the status says we were told to end
    return 128 + held[0] if held and detach else code


def list_(g: dict[str, Any], format: str, quiet: bool) -> int:  # noqa: A002
    states = _rt(g).list()
    if quiet:
        for s in states:
            print(s["id"])
    elif format == "json":
        print(jsonio.dumps(states))
    elif format == "table":
        rows = [("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER")]
        rows += [(s["id"], str(s["pid"]), s["status"], s["bundle"], s["created"], s["owner"]) for s in states]
        print_table(rows)
    else:
        raise MrunError(f"--format: {format!r} is not table or json")
    return 0


def ps(g: dict[str, Any], container_id: str | None, ps_args: list[str], format: str,  # noqa: A002
       all: bool = False, quiet: bool = False, filter: tuple[str, ...] = (), last: int = -1,  # noqa: A002
       latest: bool = False, no_trunc: bool = False, size: bool = False) -> int:
    """Without an id, docker's ps (the running containers; -a: every one); with one, runc's."""
    from mrun.cli.listing import filters_and_format

    filters, format = filters_and_format(filter, format)
    if container_id is None:
        from mrun.cli.ps_verb import list_containers

        return list_containers(g, format, filters, quiet, all, 1 if latest else last, no_trunc, size)
    listing = [flag for flag, given in (("-q", quiet), ("--filter", filters), ("-n", last >= 0), ("-l", latest),
                                        ("--no-trunc", no_trunc), ("-s", size)) if given]
    if listing:
        raise MrunError(f"ps {listing[0]} lists containers: give no container id")
    runtime = _rt(g)
    record = runtime.store.load(container_id)
    if _docker_made(record):  # docker's top; runc's ps lists a stopped one's (none)
        _docker_running(runtime, record)
    pids = runtime.pids(container_id)
    if format == "json":
        print(jsonio.dumps(pids))
        return 0
    if format != "table":
        raise MrunError(f"--format: {format!r} is not table or json")
    import subprocess

    out = subprocess.run(["ps", *(ps_args or ["-ef"])], capture_output=True, text=True, check=False)
    if out.returncode:
        said = next((line.strip() for line in out.stderr.splitlines() if line.strip()), f"exit {out.returncode}")
        raise MrunError(f"ps {' '.join(ps_args)}: {said}")  # its first line: then comes its usage
    lines = out.stdout.splitlines()
    if not lines:
        return 0
    header = lines[0].split()
    if "PID" not in header:
        raise MrunError("ps output has no PID column")
    col = header.index("PID")
    print(lines[0])
    wanted = set(pids)
    for line in lines[1:]:
        fields = line.split()
        if len(fields) > col and fields[col].isdigit() and int(fields[col]) in wanted:
            print(line)
    return 0


def _exec_process(
    g: dict[str, Any],
    container_id: str,
    command: list[str],
    env: list[str],
    cwd: str,
    tty: bool,
    user: str,
    additional_gids: list[str],
    cap: list[str],
    no_new_privs: bool,
    apparmor: str = "",
    process_label: str = "",
    workdir: str = "",
    privileged: bool = False,
    env_file: list[str] | None = None,
    **_: Any,
) -> dict[str, Any]:
    """runc's rule: start from the container's own process, then apply the flags. An AppArmor
    profile or SELinux label asked for is set as runc sets it: the runtime applies the profile, or
    refuses it (no AppArmor here) and the label, rather than run the process unconfined."""
    record = _rt(g).store.load(container_id)
    base = dict(record.config.get("process") or {})
    if not command:
        raise MrunError("exec: give a command, or --process FILE")
    base["args"] = list(command)
    if env_file:  # docker's exec --env-file: read as run reads it, before the -e values
        from mrun.cli.run_verb import read_env_file

        env = [line for path in env_file for line in read_env_file(path)] + list(env)
    # docker's `exec -e NAME`: the caller's value, or left out when the caller has none
    env = [e if "=" in e else f"{e}={os.environ[e]}" for e in env if "=" in e or e in os.environ]
    base["env"] = list(base.get("env") or []) + env
    base["terminal"] = tty
    if cwd or workdir:
        base["cwd"] = cwd or workdir
    if user:
        uid, _, gid = user.partition(":")
        number, group = decimal(uid), decimal(gid)  # (past 32 bits either way: refused as ids are, below)
        if number is not None and (group is not None or not gid) and ann.IMAGE not in record.annotations:
            # runc's uid[:gid]: without a gid the process keeps the container's, and its groups
            # (it was given 0, the root group, which a container running as 1000:1000 never had)
            had = base.get("user") or {}
            base["user"] = {**had, "uid": number, "gid": group if group is not None else int(had.get("gid") or 0)}
        else:
            # docker's exec -u NAME[:GROUP], and on a container of `mrun run IMAGE` its -u UID[:GID]
            # too: the container's own tables, read inside its rootfs (a uid without a row: gid 0,
            # no groups). runc's rule there gave uid 1000 the root container's gid and groups.
            from mrun.images.containers import user_ids

            root = (record.config.get("root") or {}).get("path") or "rootfs"
            uid_n, gid_n, extra = user_ids(os.path.join(record.bundle, root), user)
            base["user"] = {**(base.get("user") or {}), "uid": uid_n, "gid": gid_n, "additionalGids": extra}
    if additional_gids:  # added to the process's groups, as runc adds them ("Add additional group IDs")
        try:
            user = dict(base.get("user") or {})
            had = list(user.get("additionalGids") or [])
            user["additionalGids"] = had + [g for g in map(int, additional_gids) if g not in had]
            base["user"] = user
        except ValueError:
            raise MrunError(f"--additional-gids: {','.join(additional_gids)!r} holds a value that is not a group id")
    if cap:
        caps = {k: list(v) for k, v in (base.get("capabilities") or {}).items()}
        for name in ("bounding", "effective", "permitted"):
            caps[name] = sorted(set(caps.get(name, [])) | set(cap))
        base["capabilities"] = caps
    if privileged:  # docker's exec --privileged: every capability, whatever the container holds
        from mrun.images.run_flags import every_capability, set_capabilities

        set_capabilities(base, every_capability())
    if no_new_privs:
        base["noNewPrivileges"] = True
    if apparmor:
        base["apparmorProfile"] = apparmor
    if process_label:
        base["selinuxLabel"] = process_label
    return base


def exec_(g: dict[str, Any], container_id: str, command: list[str], process: str, detach: bool,
          ignore_paused: bool = False, cgroup: list[str] | None = None, **flags: Any) -> int:
    """``flags`` holds the process flags (-e, --cwd, -u, ...) and the stdio ones (--pid-file, ...),
    which a --process file overrides, as in runc. A failure before the process ran exits
    EXEC_FAILED, as runc's exec does, or for a container of `mrun run` (docker's exec) docker's
    127 (not found) or 126 (any other); the process's own status otherwise."""
    from mrun.sandbox.console import parse_detach_keys

    docker = False
    keys = parse_detach_keys(flags.pop("detach_keys", "") or "")
    try:
        runtime = _rt(g)
        record = runtime.store.load(container_id)
        docker = _docker_made(record) and not process
        if process:
            try:
                with open(process) as f:
                    proc = jsonio.loads(f.read())
            except (OSError, ValueError) as e:
                raise InvalidSpec(f"--process {process}: {e}")
            if not isinstance(proc, dict):
                raise InvalidSpec(f"--process {process}: must hold a JSON object")
        else:
            proc = _exec_process(g, container_id, command, **flags)
        opts = _opts(g, **flags)
        if _docker_made(record):
            _docker_running(runtime, record, exec_=True)
            opts.own_stdio = False  # docker's exec: the caller's files stay the caller's
            if not flags.get("interactive") and not detach:
                no_stdin()  # docker's exec without -i; runc's (a bundle's container) passes ours
            elif flags.get("tty") and not detach:
                _detachable(opts, keys)
        return runtime.exec(container_id, proc, opts, detach, ignore_paused, list(cgroup or []))
    except NotRunning:
        raise
    except MrunError as e:
        e.exit_code = (command_not_run_code(str(e)) or DOCKER_EXEC_FAILED) if docker else EXEC_FAILED
        raise
    except OSError as e:
        raise _failure("exec", e, DOCKER_EXEC_FAILED if docker else EXEC_FAILED) from None


def _detachable(opts: CreateOptions, keys: bytes) -> None:
    """docker's `exec -it` from a terminal: its detach keys leave the process running, as
    docker's do, with its words and status ("read escape sequence", 1). The child running the
    exec (the warm template's, or cold, cli.cold_child's) lets its caller go and drains the
    process's terminal until it ends; nothing can attach to it again (docker's cannot either)."""
    from mrun.cli.common import can_release, let_caller_go

    if not os.isatty(0) or not can_release():
        return
    opts.detach_keys, opts.detach_said = keys, b"read escape sequence\n"
    opts.on_detach = lambda _master, _status: let_caller_go(1)


EXEC_FAILED = 255  # runc's exec for whatever kept the process from running; its own status else
DOCKER_EXEC_FAILED = 126  # docker's daemon's for an exec that did not start (127 when its command was not found)


def _failure(verb: str, error: OSError, code: int) -> MrunError:
    """``error`` in the words `call` gives an OSError (os_error_words), ending the call with ``code``."""
    failed = MrunError(os_error_words(verb, error))
    failed.exit_code = code
    return failed


def pause(g: dict[str, Any], container_ids: list[str]) -> int:
    """runc's pause; docker's of several, each name printed once paused."""
    return each(container_ids, "pause", lambda cid: _freeze_one(g, cid, "pause"), one_raises=True)


def resume(g: dict[str, Any], container_ids: list[str]) -> int:
    """runc's resume; docker's unpause of several, each name printed once thawed."""
    return each(container_ids, "resume", lambda cid: _freeze_one(g, cid, "resume"), one_raises=True)


def _freeze_one(g: dict[str, Any], container_id: str, verb: str) -> int:
    runtime = _rt(g)
    getattr(runtime, verb)(container_id)
    if _docker_made(runtime.store.load(container_id)):
        from mrun.cli.short_ids import as_typed

        print(as_typed(g, container_id))  # as docker's pause and unpause say it
    return 0


def update(g: dict[str, Any], container_ids: list[str], resources: str, blkio_weight: int, pids_limit: int,
           cpus: str = "", restart: str = "", **flags: str) -> int:
    """runc's update: the resources from ``-r`` (JSON; the flags are then ignored, as runc
    ignores them) or from the flags. docker's too: several containers, -m, -c, --cpus,
    --restart; a container of `mrun run`/`create` keeps them over its restarts, as docker's does."""
    annotations = {}
    if restart:
        from mrun.images.supervisor import restart_policy

        annotations[ann.RESTART] = restart_policy(restart)
    if resources:
        try:
            res = jsonio.loads(sys.stdin.read()) if resources == "-" else jsonio.load_file(resources)
        except (OSError, ValueError) as e:
            raise InvalidSpec(f"--resources {resources}: {e}")
    else:
        from mrun.cli.update_flags import resources_from_flags

        values = {name.replace("_", "-"): text for name, text in flags.items()}
        values["cpu-share"] = values["cpu-share"] or values.pop("cpu-shares", "")
        res = resources_from_flags(values, blkio_weight, pids_limit, g.get("warn"))
        if cpus:
            from mrun.images.run_resources import CFS_PERIOD, cpus_quota, parse_cpus

            if values.get("cpu-period") or values.get("cpu-quota"):
                raise InvalidSpec("--cpus with --cpu-period or --cpu-quota: conflicting options, give one or the other")
            share = parse_cpus(cpus)  # 0: no limit, which an update must write (-1)
            res.setdefault("cpu", {}).update(cpus_quota(share) if share else {"quota": -1, "period": CFS_PERIOD})

    def one(container_id: str) -> None:
        from contextlib import nullcontext

        from mrun.images.supervisor import held_still

        runtime = _rt(g)
        record = runtime.store.load(container_id)
        # A docker container's: no start under way meanwhile, which would read its old limits
        # after we found it stopped and wrote them for its next start
        with held_still(record.bundle) if _docker_made(record) else nullcontext():
            _update_one(runtime, runtime.store.load(container_id), res, restart, annotations)
        if _docker_made(record):
            from mrun.cli.short_ids import as_typed

            print(as_typed(g, container_id))  # docker's update names each one

    return each(container_ids, "update", one, one_raises=True)


def _update_one(runtime: Any, record: Any, res: dict[str, Any], restart: str, annotations: dict[str, str]) -> None:
    """One container's update: its cgroup if it runs (a docker container stopped: checked, for
    its next start), and a docker container's config, which its next start reads."""
    container_id = record.id
    if restart:
        if not _docker_made(record):
            raise MrunError(f"--restart: container {container_id!r} was not made by `mrun run` or `mrun create`; "
                            "a bundle's container has no restart policy")
        if (record.config.get("annotations") or {}).get(ann.REMOVE) == "true":
            raise MrunError(f"container {container_id!r}: its restart policy cannot change: it is removed once "
                            "it ends (--rm), as docker refuses")
    if res or not restart:  # (--restart alone changes no limit)
        if _docker_made(record) and runtime.status(record) == Status.STOPPED:
            from mrun.spec import check_resources

            check_resources(res)  # docker's update of an exited or created one: for its next start
        else:
            runtime.update(container_id, res)
    if _docker_made(record):
        from mrun.images.containers import keep_update

        with runtime.store.lock(container_id):  # a restart reads the file under it
            keep_update(record.bundle, container_id, res, annotations)


OOM_POLL = 0.1  # seconds between looks at the OOM kill count, between two reports


def events(g: dict[str, Any], container_id: str, stats: bool, interval: str) -> int:
    """runc's `events`: the cgroup's figures in runc's layout, once (--stats) or every
    --interval (a Go duration, as runc and go-runc give it: "5s"; plain seconds too), with an
    "oom" event each time the OOM killer kills in the container, until it has stopped."""
    import time

    from mrun.units import MAX_DURATION, go_duration

    seconds = decimal(interval)
    every = float(seconds) if seconds is not None else go_duration(interval)
    if every is None or not 0 < every <= MAX_DURATION:  # (400 digits were float's inf, a sleep for ever)
        raise InvalidSpec(f"--interval {interval!r}: a duration greater than 0 expected (such as 5s or 500ms; "
                          "at most 2562047h, Go's)")
    rt = _rt(g)
    require("events", Status(rt.state(container_id)["status"]), container_id)

    def report(kind: str, **data: Any) -> None:
        print(jsonio.dumps({"type": kind, "id": container_id, **data}), flush=True)

    report("stats", data=rt.events_data(container_id))
    ooms, due = rt.oom_kills(container_id), time.monotonic() + every
    while not stats and rt.state(container_id)["status"] != Status.STOPPED:
        time.sleep(max(0.0, min(OOM_POLL, due - time.monotonic())))
        now = rt.oom_kills(container_id)
        if now > ooms:
            report("oom")
        ooms = now
        if time.monotonic() >= due:
            report("stats", data=rt.events_data(container_id))
            due += every
    return 0


def spec(g: dict[str, Any], bundle: str, rootless: bool) -> int:
    from mrun.defaults import default_spec

    path = os.path.join(bundle, "config.json")
    try:  # O_EXCL: a dangling link there is not followed to make its target (runc's stat is)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
    except FileExistsError:
        raise MrunError(f"{path} exists already: remove it first")
    with os.fdopen(fd, "w") as f:
        f.write(jsonio.dumps(default_spec(rootless, os.getuid(), os.getgid()), indent=2))
        f.write("\n")
    return 0


def features(g: dict[str, Any]) -> int:
    from mrun.features import features_document

    print(jsonio.dumps(features_document(), indent=2))
    return 0


def explain(g: dict[str, Any], bundle: str) -> int:
    from mrun.plugins.api import Bundle
    from mrun.plugins.manager import Backends
    from mrun.spec import load_bundle

    view = Bundle(load_bundle(bundle))
    backends = Backends.shared()
    chosen, why, claims = backends.choose(view)
    print(f"backend: {chosen}")
    print(f"because: {why}")
    for c in claims:
        print(f"  {c.backend:<10} priority {c.priority:>3}  {c.reason}")
    return 0


def unsupported(g: dict[str, Any], container_id: str, **_: Any) -> int:
    raise MrunError(f"checkpoint/restore of {container_id!r}: not implemented in mrun (no CRIU support)")


def version(g: dict[str, Any], format: str = "") -> int:  # noqa: A002
    """runc's lines; with --format, docker's document (`docker version -f '{{.Server.Version}}'`,
    which scripts and tools ask to learn that a runtime answers and which one), mrun both sides."""
    from mrun import OCI_VERSION, __version__

    if not format:  # podman and conmon probe with --version: nothing more imported for it
        print(f"mrun version {__version__}\nspec: {OCI_VERSION}\npython: {sys.version.split()[0]}")
        return 0
    import platform

    from mrun.cli.template import render

    side = {"Version": __version__, "ApiVersion": OCI_VERSION, "Os": "linux", "Arch": _docker_arch(platform.machine()),
            "KernelVersion": platform.release(), "GoVersion": f"python{sys.version.split()[0]}"}
    template = "{{json .}}" if format == "json" else format  # docker's json: the whole document
    print(render(template, {"Client": {**side, "Platform": {"Name": "mrun"}}, "Server": {**side, "Platform": {
        "Name": "mrun"}, "Components": [{"Name": "mrun", "Version": __version__}]}}))
    return 0


def _docker_arch(machine: str) -> str:
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm"}.get(machine, machine)

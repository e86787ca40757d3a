"""``mrun`` entry point: the fast path for machines, typer for people, one error format.

Errors are one line on stderr (``mrun: <what failed and why>``) and, with ``--log``, one
log record in runc's text or JSON format — containerd's runc shim reads the last JSON error
from that file to explain a failed create.
"""

from __future__ import annotations

import os
import sys

from mrun import jsonio, knobs, umask
from mrun.cli.commands import Command
from mrun.errors import MrunError, Terminated, one_line
from mrun.trace import span

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~6 ms (it imports re) on the lifecycle verbs' hot path
    from typing import Any


def _log(g: dict[str, Any], level: str, msg: str) -> None:
    if not g.get("log"):
        return
    from mrun.state import now_rfc3339  # not at the top: a call the warm template serves never logs here

    stamp = now_rfc3339()
    if g.get("log_format") == "json":
        line = jsonio.dumps({"level": level, "msg": msg, "time": stamp})
    else:
        line = f'time="{stamp}" level={level} msg={jsonio.dumps(msg)}'
    try:
        fd = os.open(g["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            os.write(fd, line.encode() + b"\n")
        finally:
            os.close(fd)
    except OSError:
        pass


# runc's verbs that never take docker's short ids (short_ids): create, always cold, pays no import for them
RUNC_ONLY = frozenset(("create", "state", "delete", "run", "events", "checkpoint", "restore", "spec", "features"))
# Verbs that may write for long (a blob, a layer, a staging directory, an archive): SIGTERM and
# SIGHUP end them as ^C does, through their clean-up, which they had skipped: `timeout 60 mrun
# import big.tar` left its partial layer (gigabytes) in the image root until a prune.
ENDED_AS_BY_CTRL_C = frozenset(("pull", "load", "import", "commit", "cp", "save", "export", "push"))


def call(g: dict[str, Any], cmd: Command, params: dict[str, Any]) -> int:
    """Run one verb with the shared error handling."""
    from mrun.cli import verbs

    if cmd.name in ENDED_AS_BY_CTRL_C:
        from mrun.stop_signals import end_runs_on_termination

        end_runs_on_termination()
    if g.get("log_format") not in ("text", "json"):
        print(f"mrun: --log-format: {g.get('log_format')!r} is not text or json", file=sys.stderr)
        return 2
    if g.get("debug"):
        _log(g, "debug", f"{cmd.name} {jsonio.dumps(params)}")
    for key in ("root", "image_root"):  # the caller's directory's, once (runc makes its --root absolute too):
        if g.get(key):  # paths made from them are written into bundles and read by processes elsewhere
            g[key] = os.path.abspath(g[key])
    knobs.absolute_directories()  # likewise the environment's, which a supervisor reads from /

    def warn(msg: str) -> None:
        print(f"mrun: warning: {one_line(msg)}", file=sys.stderr)
        _log(g, "warning", msg)

    from mrun.cli.commands import POLICY_ENV

    for dest, env in POLICY_ENV.items():  # the backend policy is read where a backend is chosen
        if g.get(dest):
            os.environ[env] = g[dest]
    g["warn"] = warn
    g["debug_log"] = (lambda msg: _log(g, "debug", msg)) if g.get("debug") else None
    try:
        if cmd.name not in RUNC_ONLY:  # docker's short ids (`mrun stop 3f2a`)
            from mrun.cli.short_ids import resolve_params

            params = resolve_params(g, cmd.name, params)
        if callable(cmd.handler):  # a backend's own verb (mrun_commands)
            return cmd.handler(g, **params)
        module, _, handler = cmd.handler.rpartition(".")
        where = __import__(f"mrun.cli.{module}", fromlist=[handler]) if module else verbs
        with span(f"cli {cmd.name}"):
            return getattr(where, handler)(g, **params)
    except MrunError as e:
        msg = one_line(str(e))
        print(f"mrun: {msg}", file=sys.stderr)
        _log(g, "error", msg)
        return e.exit_code
    except OSError as e:
        from mrun.cli.common import os_error_words, reader_gone

        if isinstance(e, BrokenPipeError) and reader_gone(1):  # `mrun logs web | head`: it has what it wanted
            return 141  # quietly, as docker's (a Go program ends by SIGPIPE there: 128 + 13 in the shell)
        msg = one_line(os_error_words(cmd.name, e))
        if g.get("debug"):  # an error the host gave: where it came from, for a report
            import traceback

            traceback.print_exc()
        print(f"mrun: {msg}", file=sys.stderr)
        _log(g, "error", msg)
        return 1
    except KeyboardInterrupt:
        return 130
    except Terminated as e:  # what was made is undone: the status of a process the signal ended
        return 128 + e.signum
    except Exception as e:  # noqa: BLE001 - a bug, or input nothing checked: still one line
        if isinstance(e.__cause__, KeyboardInterrupt):  # ^C in a class being made: Python 3.11 wraps it
            return 130
        import traceback

        msg = one_line(f"{cmd.name}: internal error: {e.__class__.__name__}: {e}")
        if g.get("debug"):
            traceback.print_exc()
            _log(g, "debug", traceback.format_exc())
        print(f"mrun: {msg} (mrun --debug shows where)", file=sys.stderr)
        _log(g, "error", msg)
        return 1


def main(argv: list[str] | None = None) -> int:
    """``argv`` None: this process is the `mrun` program (bin/mrun-python), whose caller may be
    killed under a foreground run (cli.cold_child); given, a verb run inside its caller's own
    process (the warm template's child, a test's driver), which does the work right here."""
    as_program = argv is None
    argv = sys.argv[1:] if argv is None else argv
    umask.own_files()
    from mrun.cli.fastparse import ParseError, parse, prune_flags

    argv = prune_flags(argv)

    try:
        g, cmd, params = parse(argv)
    except ParseError:
        code = _warm(argv)  # help and usage come from typer: imported in the template already
        if code is not None:
            return code
        from mrun.cli.typer_app import build

        return _through_typer(build(call), argv)
    if warm_worthy(cmd, params, argv):
        code = _warm(argv)
        if code is not None:
            return code
    if as_program and _outlives_its_caller(cmd, params):
        from mrun.cli.cold_child import run_in_child

        code = run_in_child(lambda: call(g, cmd, params))
    else:
        code = call(g, cmd, params)
    if cmd.name not in CLEANUP_VERBS and warm_worthy(cmd, params, argv, native=True):
        _template_for_next_time()
    return code


# runc's own verbs: a usage error exits 1 there (its CLI library's), and says why in --log too,
# from which containerd's runc shim explains a failed call. A docker-like verb's flag error is
# docker's: one line, 125 (its CLI's for every flag it cannot take); its other usage errors
# (a missing argument, an unknown verb) keep click's 2.
RUNC_VERBS = frozenset(
    ("checkpoint", "create", "delete", "events", "exec", "features", "kill", "list", "pause", "ps", "restore",
     "resume", "run", "spec", "start", "state", "update")
)


def _through_typer(app: Any, argv: list[str]) -> int:
    """Help and usage errors as click's standalone mode gives them, but a usage error of a runc
    verb is runc's: exit 1, its words in --log as well as on stderr; and no arguments at all is
    the help, exit 0, as runc and docker have it (click: stderr, exit 2)."""
    import click
    from mrun.cli.fastparse import verb_of

    try:
        code = app(args=argv, prog_name="mrun", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as e:  # `mrun` alone: its help on stdout, exit 0, as runc and docker
        try:
            print(e.ctx.get_help() if e.ctx is not None else e.format_message())
        except BrokenPipeError:  # `mrun | head`: the reader has what it wanted
            pass
        return 0
    except click.UsageError as e:
        verb = verb_of(argv) if argv else None
        if _flag_error(e) and verb is not None and (verb not in RUNC_VERBS or (
                verb in ("run", "create", "ps", "update") and _docker_form(argv, verb))):
            print(f"mrun: {verb}: {e.format_message()} (mrun {verb} --help)", file=sys.stderr)
            return RUN_FAILED
        e.show()
        if not argv or verb not in RUNC_VERBS:
            return e.exit_code
        root = e.ctx.find_root().obj if e.ctx is not None else None
        _log(root or {}, "error", e.format_message())  # none before the global flags were read: no --log yet
        return 1
    except click.ClickException as e:
        e.show()
        return e.exit_code
    except click.Abort:
        print("Aborted!", file=sys.stderr)
        return 1
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    return code if isinstance(code, int) else 0


RUN_FAILED = 125  # docker's CLI's code for its own failures, a flag it cannot take among them (cli.verbs.RUN_FAILED)


def _flag_error(e: Any) -> bool:
    """A flag unknown or given a value it cannot take, which docker's CLI answers with 125; not a
    missing argument (``mrun run`` alone), which it answers otherwise (1 there, as runc does)."""
    import click

    return isinstance(e, (click.NoSuchOption, click.BadOptionUsage, click.BadParameter)) and not isinstance(
        e, click.MissingParameter)


def _docker_form(argv: list[str], verb: str) -> bool:
    """Whether a run, create, ps or update that click refused is docker's (of an IMAGE; the
    listing; of containers by name) rather than runc's (of a bundle; a container's processes; its
    resources from a file), from its words alone: runc's callers (containerd's shim, conmon)
    pass --log, and --bundle to run and create; runc's
    create without --bundle uses a config.json in the working directory, as
    verbs.docker_create has it. A script must tell docker's 125 from its container's own 1."""
    from mrun.cli.fastparse import verb_index

    i = verb_index(argv)
    if "--log" in argv[:i] or any(a.startswith("--log=") for a in argv[:i]):
        return False
    if any(a in ("-b", "--bundle") or a.startswith(("--bundle=", "-b=")) for a in argv[i + 1:]):
        return False
    return verb != "create" or not os.path.exists("config.json")


# Docker-like verbs: no caller depends on being their process's ancestor.
WARM_VERBS = frozenset(
    ("load", "pull", "push", "save", "images", "rmi", "image", "inspect", "system", "network", "logs", "stop", "rm",
     "explain", "info", "history", "secret")
)


# Served to the native launcher, but never what brings a template up (as `create`): podman's
# clean-up (`podman container cleanup`, which conmon runs) calls them from conmon's cgroup, one
# per container, which a template started there would keep busy after the container.
CLEANUP_VERBS = frozenset(("state", "delete"))


def warm_worthy(cmd: Command, params: dict[str, Any], argv: list[str], native: bool = False) -> bool:
    """Whether the warm template may run this call. Never one that starts a container's process
    as conmon or containerd's runc shim call it: they are subreapers that must be the container's
    ancestors, so `create`, `run -b`, `exec --detach`/`--pid-file` and the rest stay in the
    calling process. ``native``: asked for the native launcher, which starts no interpreter;
    then the other runc verbs (start, state, kill, delete...) are served too. From a Python
    launcher they are not: the round trip costs more than the verb."""
    name = cmd.name
    if callable(cmd.handler) or name in WARM_VERBS:  # a backend's own verb (mrun cache) too
        return True
    if native and name not in ("create", "run", "exec", "restore"):
        return True
    if name == "run":
        return not (params.get("bundle") or params.get("pid_file") or params.get("console_socket")
                    or params.get("preserve_fds"))
    if name == "create":  # docker's of an IMAGE; runc's (of a bundle) makes a process, below its caller
        from mrun.cli.verbs import docker_create
        from mrun.errors import MrunError

        try:
            return docker_create(params, look_here=False)
        except MrunError:  # a mix of both forms: refused where it is called
            return False
    if name == "exec":
        return not (params.get("detach") or params.get("pid_file") or params.get("console_socket")
                    or params.get("preserve_fds") or params.get("process"))
    if name == "ps":
        return not params.get("container_id")  # the docker-like list; `ps ID` is runc's
    return False


def _outlives_its_caller(cmd: Command, params: dict[str, Any]) -> bool:
    """A foreground `mrun run IMAGE` done cold: by a child of ours, which sees the container's end
    should we be killed (cli.cold_child). With -t the child relays the terminal too, as the warm
    template's child does, and lets it go when we are gone. And `exec -it` at a terminal, whose
    detach keys let us go while the child drains the process's terminal, as warm."""
    if cmd.name == "exec":  # `exec -it` from a terminal: its child lets us go at the detach keys, as warm
        return bool(params.get("tty") and params.get("interactive") and not params.get("detach")
                    and not params.get("console_socket") and os.isatty(0))
    return cmd.name == "run" and not params.get("bundle") and not params.get("detach")


def _template_for_next_time() -> None:
    """A runc verb the native launcher found no template for (podman and containerd's runc shim
    call nothing else): done cold, it brings one up for the calls after it. Without this, only a
    docker-like verb or the shim started one, and a node that runs neither ran every call cold."""
    client = sys.modules.get("mrun.warm.client")  # imported only when the native launcher ran us
    if client is not None and client.launcher is not None:
        client.link_native()


def _warm(argv: list[str]) -> int | None:
    """None: run it here. Served by the template, this process ends with its status."""
    from mrun.exiting import finish
    from mrun.warm.client import run

    try:
        code = run("cli", argv)
    except KeyboardInterrupt:  # ^C before the child took over: what `call` answers to it
        finish(130)
    if code is not None:
        finish(code)
    return None


if __name__ == "__main__":
    sys.exit(main())

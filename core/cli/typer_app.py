"""The typer front end, generated from ``commands`` so that flags are defined only once."""

from __future__ import annotations

import inspect
from typing import Annotated, Any

import click
import typer
from mrun.cli.commands import COMMANDS, GLOBAL_FLAGS, Command, Flag
from mrun.units import go_int


def _option(flag: Flag) -> Any:
    decls = [f"--{flag.name}", *(f"--{other}" for other in flag.also)] + ([f"-{flag.short}"] if flag.short else [])
    kind: Any = {bool: bool, int: int, list: list[str]}.get(flag.kind, str)
    default = flag.default
    if flag.kind is int and default is None:
        kind = int | None
    if flag.kind is list:
        default = list(default or [])
    opt = typer.Option(*decls, help=flag.help, hidden=flag.hidden, show_default=flag.kind is not bool,
                       **({"click_type": GoInt()} if flag.kind is int else {}))
    return Annotated[kind, opt], default


class GoInt(click.ParamType):
    """click's INT as Go's strconv.Atoi reads (``units.go_int``): click's took what int() takes,
    "৯" as 9 and "1_0" as 10, where runc and docker refuse them."""

    name = "integer"

    def convert(self, value: Any, param: Any, ctx: Any) -> int:
        number = value if isinstance(value, int) and not isinstance(value, bool) else go_int(str(value))
        if number is None:
            text = str(value)
            digits = text[1:] if text[:1] in ("+", "-") else text
            why = "out of range" if digits.isascii() and digits.isdigit() else "not a valid integer"
            self.fail(f"{text if len(text) <= 40 else text[:40] + '...'!r} is {why}.", param, ctx)
        return number


def _command_function(cmd: Command, call: Any) -> Any:
    params = [inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context)]
    for a in cmd.args:
        kind: Any = list[str] if a.variadic else str
        default = ... if a.required and not a.variadic else None
        params.append(
            inspect.Parameter(
                a.dest,
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
                annotation=Annotated[kind, typer.Argument(help=a.help, show_default=False)],
                default=default,
            )
        )
    for f in cmd.flags:
        ann, default = _option(f)
        params.append(inspect.Parameter(f.dest, inspect.Parameter.KEYWORD_ONLY, annotation=ann, default=default))

    def handler(ctx: typer.Context, **kwargs: Any) -> None:
        for a in cmd.args:
            if a.variadic and kwargs.get(a.dest) is None:
                kwargs[a.dest] = []
        raise typer.Exit(call(ctx.obj, cmd, kwargs))

    handler.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    handler.__annotations__ = {p.name: p.annotation for p in params}
    handler.__name__ = cmd.name
    handler.__doc__ = cmd.help
    return handler


def build(call: Any) -> typer.Typer:
    """``call(globals, command, params) -> exit status`` runs a verb; main supplies it."""
    app = typer.Typer(
        no_args_is_help=True,
        add_completion=False,
        rich_markup_mode=None,
        suggest_commands=False,  # click (8.2+) suggests a close command name itself; typer's would say it twice
        context_settings={"help_option_names": ["-h", "--help"]},
        help="mrun: one runtime for Linux and WebAssembly containers (runc-compatible).",
    )
    gparams = [inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context)]
    for f in GLOBAL_FLAGS:
        ann, default = _option(f)
        gparams.append(inspect.Parameter(f.dest, inspect.Parameter.KEYWORD_ONLY, annotation=ann, default=default))

    def callback(ctx: typer.Context, **kwargs: Any) -> None:
        ctx.obj = kwargs

    callback.__signature__ = inspect.Signature(gparams)  # type: ignore[attr-defined]
    callback.__annotations__ = {p.name: p.annotation for p in gparams}
    app.callback()(callback)
    from mrun.cli.fastparse import backend_commands

    added = [c for name, c in backend_commands().items() if name == c.name and name not in {c.name for c in COMMANDS}]
    for cmd in (*COMMANDS, *added):
        fn = _command_function(cmd, call)
        # A verb whose last argument is a command line (exec ID CMD..., run IMAGE CMD...): the
        # options end at its first argument, as docker's and runc's do, and as fastparse reads
        # them; `exec -it ID sh -c x` gave sh's -c to mrun's --cap.
        settings: dict[str, Any] = {"allow_interspersed_args": False} if any(a.rest for a in cmd.args) else {}
        if any(f.short == "h" for f in cmd.flags):  # docker's run -h NAME is --hostname; its help is --help
            settings["help_option_names"] = ["--help"]
        app.command(cmd.name, help=cmd.help, context_settings=settings)(fn)
        for alias in cmd.aliases:
            app.command(alias, help=cmd.help, hidden=True, context_settings=settings)(fn)
    return app

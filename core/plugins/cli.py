"""The vocabulary of CLI verbs: the core's table (``mrun.cli.commands``) and a backend's own verbs
(``mrun_commands``) are made of these. Plain classes with no imports at all: the CLI loads this on
every call (dataclasses would pull in inspect, ~20 ms; typing, ~6 ms).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable


class Flag:
    """A flag; ``name`` is the long form without dashes, ``dest`` the handler's keyword.
    ``kind`` is str, int, bool, or list (a repeatable string). ``also``: other long forms it
    answers to (docker's older spellings: --net for --network)."""

    __slots__ = ("name", "help", "kind", "short", "default", "hidden", "dest", "also")

    def __init__(
        self, name: str, help: str, kind: type = str, short: str = "", default: object = None, hidden: bool = False,
        dest: str = "", also: tuple[str, ...] = (),
    ) -> None:
        self.name, self.help, self.kind, self.short = name, help, kind, short
        self.default, self.hidden, self.also = default, hidden, also
        self.dest = dest or name.replace("-", "_")  # another keyword where an argument has the flag's name


class Arg:
    """A positional argument. ``variadic``: it takes every word left; ``rest``: flags among them
    too (a command line: `run IMAGE sh -c ...`), where otherwise flags may follow the words, as
    docker's verbs take them (`rm ID -f`)."""

    __slots__ = ("name", "help", "required", "variadic", "rest", "dest")

    def __init__(self, name: str, help: str, required: bool = True, variadic: bool = False, rest: bool = False) -> None:
        self.name, self.help, self.required, self.variadic = name, help, required, variadic
        self.rest = rest
        self.dest = name.replace("-", "_")


class Command:
    """A verb: ``handler`` names its function in mrun.cli (``"verbs_module.function"``, or a bare
    name in mrun.cli.verbs), or, for a verb a backend adds (``mrun_commands``), is the function
    itself, called as ``handler(globals, **params)`` and returning the exit status."""

    __slots__ = ("name", "help", "handler", "args", "flags", "aliases")

    def __init__(
        self,
        name: str,
        help: str,
        handler: str | Callable[..., int],
        args: tuple[Arg, ...] = (),
        flags: tuple[Flag, ...] = (),
        aliases: tuple[str, ...] = (),
    ) -> None:
        self.name, self.help, self.handler = name, help, handler
        self.args, self.flags, self.aliases = args, flags, aliases

"""A small argv parser over ``commands``: runc's flag styles without typer's start-up cost.

Accepts ``--flag value``, ``--flag=value``, ``-f value``, Go's single-dash long form
(``-root /x``, as some callers pass), ``--bool=false``, repeatable flags, and ``--``. Flags may
come before or after positionals; once a command's variadic argument begins, the rest of argv
belongs to it. Anything it cannot make sense of raises ``ParseError`` and the typer front end
takes over, so people still get a proper usage message.
"""

from __future__ import annotations

from mrun.cli.commands import BY_NAME, GLOBAL_FLAGS, Command, Flag
from mrun.units import go_int

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~6 ms (it imports re) on the lifecycle verbs' hot path
    from typing import Any


class ParseError(Exception):
    pass


def _lookup(token: str, flags: tuple[Flag, ...]) -> tuple[Flag | None, str | None]:
    name, eq, value = token.lstrip("-").partition("=")
    for f in flags:
        if name == f.name or name in f.also or (f.short and name == f.short and not token.startswith("--")):
            return f, value if eq else None
    return None, None


# docker's management commands that are mrun verbs by another name (`docker container rm` is
# `docker rm`; `container create IMAGE` is create's docker form, which has no bundle).
MANAGEMENT = {
    "container": {name: name for name in ("rm", "stop", "logs", "exec", "inspect", "restart", "wait", "attach", "cp",
                                          "export", "diff", "commit", "port", "stats", "top", "pause", "start",
                                          "create", "run", "kill")}
    | {"unpause": "resume"},
    "image": {name: name for name in ("pull", "push", "save", "load", "import")},
}


PRUNING = ("container", "image", "network", "system", "volume")


def prune_flags(argv: list[str]) -> list[str]:
    """docker's ``system prune -f``, ``image prune -af``: for a prune, -f is --force (docker
    asks first without it). mrun's -f of these verbs is --format (info's, image ls's), so a
    prune's is renamed here, before either front end reads argv."""
    verb = verb_of(argv)
    if verb not in PRUNING:
        return argv
    at = argv.index(verb)
    action = next((t for t in argv[at + 1:] if not t.startswith("-")), None)
    if action != "prune" and (verb, action) != ("network", "disconnect"):  # docker's disconnect -f too
        return argv
    out, rest = argv[: at + 1], iter(argv[at + 1:])
    for token in rest:
        if token == "--":
            out += [token, *rest]
        elif token.startswith("-") and not token.startswith("--") and "f" in token and set(token[1:]) <= {"a", "f"}:
            out += ["--force" if letter == "f" else f"-{letter}" for letter in token[1:]]
        else:
            out.append(token)
    return out


def _bundled(token: str, flags: tuple[Flag, ...]) -> list[Flag] | None:
    """``-it`` as ``-i -t`` (getopt's and docker's bundling): every letter a short flag, all but
    the last of them boolean. None: not such a bundle."""
    if token.startswith("--") or len(token) < 3 or "=" in token:
        return None
    found = []
    for letter in token[1:]:
        flag = next((f for f in flags if f.short == letter), None)
        if flag is None:
            return None
        found.append(flag)
    return found if all(f.kind is bool for f in found[:-1]) else None


def _bool(text: str) -> bool:
    low = text.lower()
    if low in ("true", "1", "t", "yes"):
        return True
    if low in ("false", "0", "f", "no"):
        return False
    raise ParseError(f"invalid boolean {text!r}")


def _take(flag: Flag, value: str | None, argv: list[str], i: int, out: dict[str, Any]) -> int:
    if flag.kind is bool:
        out[flag.dest] = True if value is None else _bool(value)
        return i
    if value is None:
        if i >= len(argv):
            raise ParseError(f"flag --{flag.name} needs a value")
        value = argv[i]
        i += 1
    if flag.kind is int:
        number = go_int(value)  # (int() took "৯" as 9, and "1_0"; typer's click type is the same)
        if number is None:
            raise ParseError(f"--{flag.name}: {value!r} is not a number")
        out[flag.dest] = number
    elif flag.kind is list:
        out.setdefault(flag.dest, []).append(value)
    else:
        out[flag.dest] = value
    return i


def backend_commands() -> dict[str, Command]:
    """Verbs the installed backends add (``mrun_commands``): only looked for when a word is no
    core verb, so the core verbs never load the backends to parse."""
    from mrun.plugins.manager import Backends

    return Backends.shared().commands()


def defaults(flags: tuple[Flag, ...]) -> dict[str, Any]:
    return {f.dest: (list(f.default) if f.kind is list else f.default) for f in flags}


def verb_of(argv: list[str]) -> str | None:
    """The word after the global flags, as ``parse`` finds it, even where they hold one it does
    not know (taken to have no value): which verb a usage error is about."""
    i = verb_index(argv)
    return argv[i] if i < len(argv) else None


def verb_index(argv: list[str]) -> int:
    """Where ``verb_of`` finds the verb (len(argv): none)."""
    i = 0
    while i < len(argv) and argv[i].startswith("-") and argv[i] != "-":
        flag, value = _lookup(argv[i], GLOBAL_FLAGS)
        i += 2 if flag is not None and flag.kind is not bool and value is None else 1
    return i


def parse(argv: list[str]) -> tuple[dict[str, Any], Command, dict[str, Any]]:
    glob = defaults(GLOBAL_FLAGS)
    i = 0
    while i < len(argv) and argv[i].startswith("-") and argv[i] != "-":
        if argv[i] in ("--version", "-v"):  # runc's spelling; podman and conmon probe with it
            return glob, BY_NAME["version"], {}
        flag, value = _lookup(argv[i], GLOBAL_FLAGS)
        if flag is None:
            raise ParseError(f"unknown global flag {argv[i]}")
        i = _take(flag, value, argv, i + 1, glob)
    if i >= len(argv):
        raise ParseError("no command")
    cmd = BY_NAME.get(argv[i]) or backend_commands().get(argv[i])
    if cmd is None:
        raise ParseError(f"unknown command {argv[i]!r}")
    i += 1
    alias = MANAGEMENT.get(cmd.name, {}).get(argv[i]) if i < len(argv) else None
    if alias is not None:  # docker's `container rm ID`, `image pull REF`: the verb itself
        cmd = BY_NAME[alias]
        i += 1
    params = defaults(cmd.flags)
    positionals: list[str] = []
    fixed = [a for a in cmd.args if not a.variadic]
    variadic = next((a for a in cmd.args if a.variadic), None)
    while i < len(argv):
        token = argv[i]
        if variadic and variadic.rest and len(positionals) >= len(fixed) and positionals:
            positionals.extend(argv[i + 1 :] if token == "--" else argv[i:])
            break
        if token == "--":
            positionals.extend(argv[i + 1 :])
            break
        if token.startswith("-") and token != "-":
            if token == "--help" or token == "-h" and not any(f.short == "h" for f in cmd.flags):
                raise ParseError("help")  # (docker's run -h is --hostname)
            flag, value = _lookup(token, cmd.flags)
            bundled = _bundled(token, cmd.flags) if flag is None else None
            if bundled:  # docker's -it, -dit: each a short flag of its own, the last one may take a value
                for each in bundled[:-1]:
                    _take(each, None, argv, i + 1, params)
                i = _take(bundled[-1], None, argv, i + 1, params)
                continue
            if flag is None:
                flag, value = _lookup(token, GLOBAL_FLAGS)
                if flag is None:
                    raise ParseError(f"unknown flag {token}")
                i = _take(flag, value, argv, i + 1, glob)
                continue
            i = _take(flag, value, argv, i + 1, params)
            continue
        positionals.append(token)
        i += 1
    for a in fixed:
        if positionals:
            params[a.dest] = positionals.pop(0)
        elif a.required:
            raise ParseError(f"missing argument {a.name.upper()}")
        else:
            params[a.dest] = None
    if variadic:
        params[variadic.dest] = positionals
    elif positionals:
        raise ParseError(f"unexpected argument {positionals[0]!r}")
    return glob, cmd, params

"""docker's ``inspect -f``: the part of Go's text/template that scripts use, ``{{.Field.Sub}}``
and ``{{json .Field}}`` (``{{.}}`` and ``{{json .}}`` for the whole), with text around them as it
is. Anything else in braces (range, if, index, pipes) is refused in one line naming it, rather
than printed wrong."""

from __future__ import annotations

import json

from mrun.errors import InvalidSpec

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def render(template: str, data: Any) -> str:
    out, rest = [], template
    while "{{" in rest:
        before, _, after = rest.partition("{{")
        action, closed, rest = after.partition("}}")
        if not closed:
            raise InvalidSpec(f"--format {template!r}: an action is not closed with }}}}")
        out.append(before)
        out.append(_action(template, action.strip().strip("-").strip(), data))
    out.append(rest)
    return "".join(out)


def _action(template: str, action: str, data: Any) -> str:
    as_json = action.startswith("json ")
    path = action[5:].strip() if as_json else action
    if not path.startswith("."):
        raise InvalidSpec(f"--format {template!r}: {{{{{action}}}}} is not supported (only .Field.Sub and json)")
    value = data
    for name in filter(None, path[1:].split(".")):
        if not isinstance(value, dict):
            raise InvalidSpec(f"--format {template!r}: {path}: {name!r} is not a field here")
        key = name if name in value else next((k for k in value if k.lower() == name.lower()), None)
        if key is None:
            raise InvalidSpec(f"--format {template!r}: {path}: no field {name!r}")
        value = value[key]
    if as_json:
        return _json(value)
    if value is None:
        return "<no value>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{_go(v)}" for k, v in sorted(value.items())) + "]"
    if isinstance(value, list):
        return "[" + " ".join(_go(v) for v in value) + "]"
    return str(value)


def _go(value: Any) -> str:
    """A value inside a map or list (nested ones as JSON: near enough for a script to read)."""
    if isinstance(value, (dict, list)):
        return _json(value)
    return "true" if value is True else "false" if value is False else str(value)


def _json(value: Any) -> str:
    """As Go's encoding/json writes it: compact."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)

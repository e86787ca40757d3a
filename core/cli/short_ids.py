"""docker's short container ids: a container of `mrun run` or `mrun create` named by any prefix of
its id that no other container's id shares (`mrun stop 3f2a`, `mrun logs 3f`), as docker's verbs
take them. An exact name always wins; so does an image where a verb takes either (`inspect`
tries containers first, as docker's does, then the image store's own prefixes).

Only the 12-hex-digit ids `mrun run` and `mrun create` give unnamed containers are matched, and
only among those containers (their bundles under ``<image root>/containers``): a runc client's
verb (podman's, containerd's runc shim's) names containers of its own state root by their whole
id, and a missing one must stay missing, never turn into another container to signal or remove.
So runc's own verbs (create, state, delete, events) are left alone.
"""

from __future__ import annotations

import os

from mrun.errors import InvalidSpec

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

ID_LENGTH = 12  # `mrun run`'s ids: 48 random bits, as docker's short ones
HEX = frozenset("0123456789abcdef")

# verb -> its parameters that name containers
CONTAINER_PARAMS = {
    "start": ("container_ids",), "kill": ("container_id", "signal_or_containers"), "rm": ("container_ids",),
    "ps": ("container_id",), "inspect": ("names",), "stats": ("containers",), "export": ("container_id",),
    "diff": ("container_id",), "commit": ("container_id",), "port": ("container_id",), "logs": ("container_id",),
    "stop": ("container_ids",), "restart": ("container_ids",), "attach": ("container_id",),
    "wait": ("container_ids",), "exec": ("container_id",), "pause": ("container_ids",),
    "resume": ("container_ids",), "update": ("container_ids",),
}


# A prefix several ids share, among several containers named at once: its refusal, said when the
# verb comes to it (cli.common.each), the others done, as docker's verbs go on with the rest.
ambiguous: dict[str, str] = {}


def resolve_params(g: dict[str, Any], verb: str, params: dict[str, Any]) -> dict[str, Any]:
    """``params`` with each container named by a short id given its whole one."""
    ambiguous.clear()  # one verb's (a process may run several: a test's driver)
    names = CONTAINER_PARAMS.get(verb)
    if not names:
        return params
    out = dict(params)
    for name in names:
        value = out.get(name)
        if isinstance(value, str):
            out[name] = resolve(g, value)
        elif isinstance(value, (list, tuple)):
            # kill's runc form puts a signal there: a number or a name is left as it is
            keep = name == "signal_or_containers"
            out[name] = type(value)(v if not isinstance(v, str) or (keep and (v.isdigit() or not _hex(v)))
                                    else _one_of_several(g, v) for v in value)
    return out


def _one_of_several(g: dict[str, Any], given: str) -> str:
    try:
        return resolve(g, given)
    except InvalidSpec as e:
        ambiguous[given] = str(e)
        return given


def resolve(g: dict[str, Any], given: str) -> str:
    """The container whose id ``given`` begins, where ``given`` is a short id and names no
    container itself; else ``given`` as it is (the verb then says what it finds)."""
    if not (0 < len(given) < ID_LENGTH and _hex(given)):
        return given
    containers = os.path.join(g.get("image_root") or "", "containers")
    if os.path.lexists(os.path.join(g.get("root") or "", given)) or os.path.lexists(os.path.join(containers, given)):
        return given
    try:
        found = sorted(n for n in os.listdir(containers) if len(n) == ID_LENGTH and n.startswith(given) and _hex(n))
    except OSError:
        return given
    if len(found) > 1:
        raise InvalidSpec(f"multiple containers found with provided prefix: {given} ({', '.join(found)})")
    if found:
        g.setdefault("typed", {})[found[0]] = given
    return found[0] if found else given


def as_typed(g: dict[str, Any], container_id: str) -> str:
    """The name a verb echoes for a container it has done (stop, rm, kill...): what its caller
    typed, a short id too, as docker's verbs echo it."""
    return (g.get("typed") or {}).get(container_id, container_id)


def _hex(text: str) -> bool:
    return bool(text) and set(text) <= HEX

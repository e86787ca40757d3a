"""`mrun network create|ls|inspect|rm|prune`: bridge networks, their leases and rules."""

from __future__ import annotations

import sys

from mrun import jsonio
from mrun.cli.common import print_table
from mrun.errors import InvalidSpec, MrunError
from mrun.network.store import Networks

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def network(g: dict[str, Any], action: str, names: list[str] | None, subnet: str, gateway: str = "",
            driver: str = "bridge", quiet: bool = False, format: str = "table",  # noqa: A002
            force: bool = False) -> int:
    from mrun.network.recovery import hold_again

    hold_again(g["root"], g.get("warn"))  # what a removed network root lost, before it is read
    nets = Networks()
    names = list(names or [])
    if action in ("create", "inspect", "rm") and not names:
        raise InvalidSpec(f"network {action}: name the network")
    if len(names) > 1 and action != "rm":
        raise InvalidSpec(f"network {action}: one network at a time ({' '.join(names)})")
    name = names[0] if names else None
    if action == "create":
        if driver != "bridge":
            raise InvalidSpec(f"network create -d {driver!r}: bridge is the one driver here")
        doc = nets.create(name, subnet, gateway)  # type: ignore[arg-type]
        print(doc["name"])
    elif action == "ls" and (quiet or format not in ("table", "")):
        _list(nets, quiet, format)
    elif action == "ls":
        rows = [("NAME", "SUBNET", "GATEWAY", "BRIDGE", "CONTAINERS")]
        for n in nets.names():
            try:
                d = nets.get(n)
            except InvalidSpec as e:  # listed, and said why, so that it can be removed
                print(f"mrun: warning: {e}", file=sys.stderr)
                d = {"subnet": "?", "gateway": "?", "bridge": "?"}
            rows.append((n, d["subnet"], d["gateway"], d["bridge"], str(len(nets.leases(n)))))
        print_table(rows)
    elif action == "inspect":
        print(jsonio.dumps({**nets.get(name), "leases": nets.leases(name)}, indent=2))  # type: ignore[arg-type]
    elif action == "rm":  # docker's rm of several: each one that can go goes; the exit says if one could not
        failed = 0
        for each in names:
            try:
                _teardown(nets, each)
                print(each)
            except MrunError as e:
                print(f"mrun: {e}", file=sys.stderr)
                failed = 1
        return failed
    elif action == "prune":
        for what in prune(nets):
            print(f"removed {what}")
    else:
        raise InvalidSpec(f"network: unknown action {action!r} (create, ls, inspect, rm or prune)")
    return 0


def _teardown(nets: Networks, name: str) -> None:
    """The network's definition, then its rules and bridge (refused while containers use it)."""
    from mrun.network.store import take_down

    nets.remove(name, lambda: take_down(nets.root, name))


def prune(nets: Networks) -> list[str]:
    """Leases and port reservations whose container is gone, then networks nothing uses."""
    from mrun.network.store import lost_networks, take_down

    removed = prune_stale(nets) + [f"half-made network {n}" for n in nets.prune_half_made()]
    for name in nets.names():
        if not nets.leases(name):
            _teardown(nets, name)
            removed.append(f"network {name}")
    with nets.lock():  # (a create of the name meanwhile would define it: looked at under the lock)
        for name in lost_networks(nets.root, nets.names()):
            take_down(nets.root, name)
            removed.append(f"network {name}'s bridge and rules (its definition was lost)")
    return removed


def prune_stale(nets: Networks) -> list[str]:
    """Leases and port reservations whose container is gone (a killed run left them)."""
    return [what for path, what in nets.reservations() if nets.drop_if_dead(path)]


def _list(nets: Networks, quiet: bool, fmt: str) -> None:
    """``ls -q`` (the names) and ``ls --format`` (json, or docker's Go template over its fields)."""
    from mrun.cli.docker_rows import NETWORK_HEADERS, network_row
    from mrun.cli.listing import formatted

    if fmt not in ("table", "json") and not quiet:
        formatted(fmt, [], NETWORK_HEADERS)  # a template's fields checked before any network is read
    docs = []
    for n in nets.names():
        try:
            docs.append((n, nets.get(n)))
        except InvalidSpec as e:  # as in the table: said, and left out
            print(f"mrun: warning: {e}", file=sys.stderr)
    if quiet:
        for n, _doc in docs:
            print(n)
    elif fmt == "json":
        print(jsonio.dumps([{**doc, "leases": len(nets.leases(n))} for n, doc in docs]))
    else:
        for line in formatted(fmt, [network_row(n, doc) for n, doc in docs], NETWORK_HEADERS):
            print(line)

"""`mrun network create|ls|inspect|rm|prune|connect|disconnect`: bridge networks, their leases and
rules, and containers joining more of them (network.connect)."""

from __future__ import annotations

import sys

from mrun import jsonio
from mrun.cli.common import filter_pairs, filter_yes, print_table
from mrun.errors import InvalidSpec, MrunError, one_line
from mrun.network.store import Networks

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


def network(g: dict[str, Any], action: str, names: list[str] | None, subnet: str, gateway: str = "",
            internal: bool = False, driver: str = "bridge", quiet: bool = False, format: str = "table",  # noqa: A002
            force: bool = False, filter: tuple[str, ...] = (), label: tuple[str, ...] = (),  # noqa: A002
            ip: str = "", alias: tuple[str, ...] = (), opt: tuple[str, ...] = (), ip_range: str = "",
            aux_address: tuple[str, ...] = (), ignore: bool = False) -> int:
    from mrun.network.recovery import hold_again

    for given, flag in ((ip, "--ip"), (alias, "--alias")):
        if given and action != "connect":
            raise InvalidSpec(f"network {action}: {flag} is connect's")
    if action in ("connect", "disconnect"):  # docker's NETWORK CONTAINER
        if len(names or []) != 2:
            raise InvalidSpec(f"network {action}: NETWORK CONTAINER expected")
        from mrun.cli.common import _rt
        from mrun.cli.short_ids import resolve
        from mrun.network import connect

        hold_again(g["root"], g.get("warn"))
        network, container = names  # type: ignore[misc]
        container = resolve(g, container)
        runtime = _rt(g)

        def keep(record: Any, live: bool) -> None:
            """Its kept record's copy of its plans as they are now (images.kept): written back
            after a lost state root, it undoes the new one too."""
            if live:
                from mrun.images import kept

                kept.keep(record.bundle, record, runtime.store.path(record.id))

        if action == "connect":
            connect.connect(runtime, network, container, ip, list(alias), keep)
        else:
            connect.disconnect(runtime, network, container, keep)
        return 0
    template = ""
    if action == "inspect":  # docker's network inspect [-f|--format TEMPLATE] NAME
        from mrun.cli.listing import inspect_format

        template, filter = inspect_format("network inspect", filter, format), ()
    if filter and action not in ("ls", "list", "prune"):
        raise InvalidSpec(f"network {action}: --filter is ls's and prune's")
    for given, flag in ((internal, "--internal"), (label, "--label"), (opt, "-o/--opt"), (ip_range, "--ip-range"),
                        (aux_address, "--aux-address"), (ignore, "--ignore")):
        if given and action != "create":
            raise InvalidSpec(f"network {action}: {flag} is create's")
    chosen = _filter(list(filter), action == "prune")  # refused before anything is read or goes
    hold_again(g["root"], g.get("warn"))  # what a removed network root lost, before it is read
    nets = Networks()
    names = list(names or [])
    if action == "list":
        action = "ls"
    if action in ("create", "inspect", "rm") and not names:
        raise InvalidSpec(f"network {action}: name the network")
    if len(names) > 1 and action != "rm":
        raise InvalidSpec(f"network {action}: one network at a time ({' '.join(names)})")
    name = names[0] if names else None
    if action == "create":
        if driver != "bridge":
            raise InvalidSpec(f"network create -d {driver!r}: bridge is the one driver here")
        from mrun.images.run_flags import create_labels
        from mrun.network.options import driver_options

        own = create_labels(label)
        options = driver_options(list(opt))
        if ignore and name in nets.names():  # podman's --ignore: left as it is, whatever it was made with
            print(name)
            return 0
        try:
            doc = nets.create(name, subnet, gateway, internal, own, options,  # type: ignore[arg-type]
                              ip_range, _aux_addresses(aux_address))
        except MrunError:
            if ignore and name in nets.names():  # made by another create meanwhile
                print(name)
                return 0
            raise
        print(doc["name"])
    elif action == "ls" and (quiet or format not in ("table", "")):
        _list(nets, quiet, format, chosen)
    elif action == "ls":
        rows = [("NAME", "SUBNET", "GATEWAY", "BRIDGE", "CONTAINERS")]
        for n in _chosen_names(nets, chosen):
            try:
                d = nets.get(n)
            except InvalidSpec as e:  # listed, and said why, so that it can be removed
                print(f"mrun: warning: {one_line(str(e))}", file=sys.stderr)
                d = {"subnet": "?", "gateway": "?", "bridge": "?"}
            rows.append((n, d["subnet"], d["gateway"], d["bridge"], str(len(nets.leases(n)))))
        print_table(rows)
    elif action == "inspect":
        doc = {**nets.get(name), "leases": nets.leases(name)}  # type: ignore[arg-type]
        if template:
            from mrun.cli.docker_rows import network_view
            from mrun.cli.template import render

            print(render(template, {**network_view(name, doc, doc["leases"]), **doc}))  # type: ignore[arg-type]
        else:
            print(jsonio.dumps(doc, indent=2))
    elif action == "rm":  # docker's rm of several: each one that can go goes; the exit says if one could not
        failed = 0
        for each in names:
            try:
                _teardown(nets, each)
                print(each)
            except MrunError as e:
                print(f"mrun: {one_line(str(e))}", file=sys.stderr)
                failed = 1
        return failed
    elif action == "prune":
        for what in prune(nets, chosen):
            print(f"removed {what}")
    else:
        raise InvalidSpec(f"network: unknown action {action!r} (create, ls, inspect, rm, prune, connect or disconnect)")
    return 0


def _aux_addresses(given: tuple[str, ...]) -> dict[str, str]:
    """docker's --aux-address NAME=IP, each name once."""
    out: dict[str, str] = {}
    for item in given:
        key, eq, value = item.partition("=")
        if not eq or not key or not value:
            raise InvalidSpec(f"--aux-address {item!r}: NAME=IP expected")
        out[key] = value
    return out


def _teardown(nets: Networks, name: str) -> None:
    """The network's definition, then its rules and bridge (refused while containers use it)."""
    from mrun.network.store import take_down

    nets.remove(name, lambda: take_down(nets.root, name))


def prune(nets: Networks, chosen: Callable[[Networks, str], bool] | None = None) -> list[str]:
    """Leases and port reservations whose container is gone, then networks nothing uses (those
    ``chosen``, docker's --filter, chooses)."""
    from mrun.network.store import lost_networks, take_down

    removed = prune_stale(nets) + [f"half-made network {n}" for n in nets.prune_half_made()]
    for name in nets.names():
        if not nets.leases(name) and (chosen is None or chosen(nets, name)):
            _teardown(nets, name)
            removed.append(f"network {name}")
    with nets.lock():  # (a create of the name meanwhile would define it: looked at under the lock)
        for name in lost_networks(nets.root, nets.names()):
            take_down(nets.root, name)
            removed.append(f"network {name}'s bridge and rules (its definition was lost)")
    return removed


def prune_stale(nets: Networks) -> list[str]:
    """Leases and port reservations whose container is gone (a killed run left them); and,
    unlisted, what removed containers' ports left in the bridge table (portguard)."""
    removed = [what for path, what in nets.reservations() if nets.drop_if_dead(path)]
    from mrun.network import portguard

    portguard.sweep()
    return removed


def _filter(filters: list[str], pruning: bool) -> Callable[[Networks, str], bool]:
    """docker's ``network ls --filter``: name=TEXT (in its name), driver=bridge, type=custom or
    builtin (the default network, which mrun makes itself), dangling=true|false (no container
    on it, or one), label=KEY[=VALUE] (of `network create --label`); and ``network prune
    --filter``: until=TIME (defined before it), label=, label!=. Any other key is refused: a
    prune would take networks the filter was there to keep."""
    import time

    from mrun.network.store import DEFAULT_NETWORK

    keys = ("until", "label", "label!") if pruning else ("name", "driver", "type", "dangling", "label")
    tests: list[Callable[[Networks, str], bool]] = []
    for text, key, value in filter_pairs(filters, keys, f"network {'prune' if pruning else 'ls'} takes "
                                         f"{', '.join(k + '=' for k in keys)}"):
        if key == "type" and value not in ("custom", "builtin"):
            raise InvalidSpec(f"--filter {text!r}: custom or builtin")
        if key == "name":
            tests.append(lambda _nets, n, part=value: part in n)
        elif key == "driver":
            tests.append(lambda _nets, _n, driver=value: driver == "bridge")
        elif key == "type":
            tests.append(lambda _nets, n, kind=value: (n == DEFAULT_NETWORK) == (kind == "builtin"))
        elif key == "dangling":
            unused = filter_yes(text, value)
            tests.append(lambda nets, n, unused=unused: (not nets.leases(n)) == unused)
        elif key in ("label", "label!"):
            from mrun.cli.filters import labelled

            tests.append(lambda nets, n, wanted=value, present=key == "label":
                         labelled(_labels(nets, n), wanted) == present)
        elif key == "until":
            from mrun.cli.filters import log_time

            before = log_time(f"--filter {text!r}:", value, time.time_ns())
            tests.append(lambda nets, n, before=before: _defined_ns(nets, n) < before)
    return lambda nets, n: all(test(nets, n) for test in tests)


def _labels(nets: Networks, name: str) -> dict[str, str]:
    try:
        return nets.get(name).get("labels") or {}
    except InvalidSpec:  # a damaged definition: no labels to match
        return {}


def _defined_ns(nets: Networks, name: str) -> int:
    """When the network was defined: its definition's time (written once, renamed into place)."""
    import os

    try:
        return os.stat(nets.path(name, "network.json")).st_mtime_ns
    except (OSError, InvalidSpec):
        return 1 << 62  # not shown to be before


def _chosen_names(nets: Networks, chosen: Callable[[Networks, str], bool]) -> list[str]:
    return [n for n in nets.names() if chosen(nets, n)]


def _list(nets: Networks, quiet: bool, fmt: str, chosen: Callable[[Networks, str], bool]) -> None:
    """``ls -q`` (the names) and ``ls --format`` (json, or docker's Go template over its fields)."""
    from mrun.cli.docker_rows import NETWORK_HEADERS, network_row
    from mrun.cli.listing import formatted

    if fmt not in ("table", "json") and not quiet:
        formatted(fmt, [], NETWORK_HEADERS)  # a template's fields checked before any network is read
    docs = []
    for n in _chosen_names(nets, chosen):
        try:
            docs.append((n, nets.get(n)))
        except InvalidSpec as e:  # as in the table: said, and left out
            print(f"mrun: warning: {one_line(str(e))}", file=sys.stderr)
    if quiet:
        for n, _doc in docs:
            print(n)
    elif fmt == "json":
        print(jsonio.dumps([{**doc, "leases": len(nets.leases(n))} for n, doc in docs]))
    else:
        for line in formatted(fmt, [network_row(n, doc) for n, doc in docs], NETWORK_HEADERS):
            print(line)

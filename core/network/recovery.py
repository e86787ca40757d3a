"""Containers' addresses and published ports held again after the network root lost them.

A network's definition, its leases and the host port reservations live under the network root
(``/var/lib/mrun/networks``); each container's plan of what it holds (``net.json``, with a copy
of its network's definition) in its state directory. Someone removing the network root while
containers used it (an admin "resetting" networks, a root on a tmpfs that a clean-up empties)
left them running with nothing holding what they had: the next `run` made the default network
again on a new subnet beside the old one on the same bridge (and without a masquerade rule:
the old subnet's carried the network's comment), a published host port went to a second
container too (two DNAT rules, the first winning), `--ip` gave a live container's address out
again, and `network rm` took the bridge from under them. Every command looks (an open per
container, a stat or two per container on a network) and, where something is missing, defines
the network again from the plan's copy and holds the lease and reservations again, under the
container's lock (never for one being made or removed) and the network root's.
"""

from __future__ import annotations

import os

from mrun import jsonio
from mrun.network import PLAN

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


def hold_again(state_root: str, warn: Callable[[str], None] | None) -> None:
    """Each container of ``state_root`` on a network of this network root whose definition,
    lease or port reservation is gone: held again (what cannot be is warned about)."""
    try:
        entries = list(os.scandir(state_root))
    except OSError:
        return
    lost = []
    for entry in entries:
        if entry.name.startswith("."):
            continue
        plan = _plan(entry.path)  # (one open per container: None for most, which have no plan)
        if plan is not None and any(_missing(p) for p in [plan, *_more(entry.path)]):
            lost.append(entry)
    for entry in lost:
        _hold_again(entry.path, entry.name, warn)


def _more(state_dir: str) -> list[dict[str, Any]]:
    """Its plans on its other networks (attach.prepare_more), each checked as its first's is."""
    from mrun.network.attach import more_plans

    found = []
    for network, path in more_plans(state_dir).items():
        plan = _plan(state_dir, path)
        if plan is not None and plan["network"] == network and not plan.get("ports"):
            found.append(plan)
    return found


def _plan(state_dir: str, path: str = "") -> dict[str, Any] | None:
    """The container's plan (``path``: one on another network than its first), if it names an
    address on a network of this network root (and the container has its state: one without is
    a killed create's, whose files are no one's)."""
    plan = jsonio.load_object(path or os.path.join(state_dir, PLAN))
    if plan is None or not os.path.exists(os.path.join(state_dir, "state.json")):
        return None  # (most containers: before the store's import, ~7 ms a runc verb would pay)
    from mrun.network.store import network_root

    netroot, name, ip = plan.get("netroot"), plan.get("network"), plan.get("ip")
    if not (isinstance(netroot, str) and isinstance(name, str) and isinstance(ip, str) and ip and name):
        return None
    if os.path.abspath(netroot) != os.path.abspath(network_root()):
        return None  # another root's (a forged plan must not steer where mrun writes)
    from mrun.errors import InvalidSpec
    from mrun.network.store import check_name

    try:
        check_name(name)  # (a forged plan's name fails no command: it is not looked at)
    except InvalidSpec:
        return None
    if "/" in ip or not isinstance(plan.get("ports", []), list):
        return None
    return plan


def _reservations(plan: dict[str, Any]) -> list[str]:
    ports = plan.get("ports")
    return [p["reservation"] for p in ports if isinstance(p, dict) and isinstance(p.get("reservation"), str)] \
        if isinstance(ports, list) else []


def _missing(plan: dict[str, Any]) -> bool:
    network = os.path.join(plan["netroot"], plan["network"])
    return not os.path.exists(os.path.join(network, "network.json")) or \
        not os.path.lexists(os.path.join(network, "leases", plan["ip"])) or \
        not all(os.path.lexists(path) for path in _reservations(plan))


def _hold_again(state_dir: str, container_id: str, warn: Callable[[str], None] | None) -> None:
    import fcntl

    from mrun.errors import MrunError

    try:
        lock = os.open(os.path.join(state_dir, "lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError:
        return  # removed meanwhile
    try:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return  # being made, started or removed: the next command looks
        plan = _plan(state_dir)  # again, under the lock: a delete may have just detached it
        owner = {"root": os.path.dirname(os.path.abspath(state_dir)), "container": container_id}
        for one in [plan, *_more(state_dir)] if plan is not None else []:
            if not _missing(one):
                continue
            for problem in _held_again(one, owner):
                if callable(warn):
                    warn(f"container {container_id!r} lost its network's files: {problem}")
    except (OSError, MrunError) as e:
        if callable(warn):
            warn(f"container {container_id!r} lost its network's files and they cannot be made again: {e}")
    finally:
        os.close(lock)


def _held_again(plan: dict[str, Any], owner: dict[str, str]) -> list[str]:
    """Under the network root's lock: the definition, the lease, the reservations. -> what could not be."""
    import ipaddress

    from mrun.errors import InvalidSpec, NotFound
    from mrun.network.store import Networks

    nets = Networks(plan["netroot"])
    name, ip = plan["network"], plan["ip"]
    problems = []
    with nets.lock():
        definition = plan.get("definition") or _from_bridge(nets, name, ip)
        why = nets.define_again(definition) if definition else \
            f"the plan has no copy of it, and its bridge no subnet holding {ip}"
        if not os.path.exists(nets.path(name, "network.json")):
            return [f"network {name!r} cannot be defined again ({why})"]
        try:
            network = nets.get(name)
            ours = ipaddress.IPv4Address(ip) in ipaddress.ip_network(network["subnet"]) and ip != network["gateway"]
        except (InvalidSpec, NotFound, ValueError):
            ours = False
        if not ours:
            problems.append(f"its address {ip} is no address of network {name!r} as it is now")
        else:
            holder = nets.hold_again(nets.path(name, "leases", ip), owner)
            if holder:
                problems.append(f"its address {ip} on network {name!r}: {holder}")
        for p in plan.get("ports", []):
            path = _reservation_of(nets, p)
            if path is None:
                continue
            holder = nets.hold_again(path, owner)
            if holder:
                problems.append(f"its published port {p['host_port']}/{p['proto']}: {holder}")
    return problems


def _from_bridge(nets: Any, name: str, ip: str) -> dict[str, Any] | None:
    """A plan of an mrun that kept no copy of the definition: what the network's bridge still
    carries, the subnet routed on it that holds the container's address, and its address there."""
    import ipaddress

    from mrun.network.ifconfig import address
    from mrun.network.store import bridge_name, host_routes

    bridge = bridge_name(nets.root, name)
    try:
        subnet = next((r for r in host_routes(device=bridge) if ipaddress.IPv4Address(ip) in r), None)
    except ValueError:
        subnet = None
    gateway = address(bridge)
    if subnet is None or not gateway:
        return None
    return {"name": name, "subnet": str(subnet), "gateway": gateway, "bridge": bridge, "driver": "bridge"}


def _reservation_of(nets: Any, p: Any) -> str | None:
    """The reservation a port of the plan names, if it is the one its fields give (a forged plan
    names no other file)."""
    if not isinstance(p, dict) or not isinstance(p.get("reservation"), str):
        return None
    proto, host_ip, port = p.get("proto"), p.get("host_ip"), p.get("host_port")
    if proto not in ("tcp", "udp") or not isinstance(host_ip, str) or "/" in host_ip or type(port) is not int:
        return None
    path = nets.port_path(proto, host_ip, port)
    return path if p["reservation"] == path else None

"""A container on a bridge network, driven by its spec's annotations, for every way in:
``mrun run IMAGE --network NAME -p ...`` writes them, a bundle (runc CLI, containerd's shims)
may carry them itself.

- ``org.mrun.network``: the network's name (made on first use if it is the default, ``mrun``);
- ``org.mrun.network.ports``: ``[host_ip:][host_port[-end]:]container_port[-end][/tcp|udp]``, comma-separated
  (no host port: one the host chooses, recorded in ``net.json``);
- ``org.mrun.network.more``: the networks it joins besides (``more_of``), as eth1, eth2...

``prepare`` runs before the sandbox exists: it leases the address, reserves the ports and
writes ``/etc/hosts``, ``/etc/resolv.conf`` and ``/etc/hostname`` into the container's bundle
(`mrun run`'s; a runc client's state directory: ``names.place``), bind-mounted by the sandbox
(``prepare_more``: an address on each other network, in a plan of its own, ``net-NAME.json``).
``attach`` runs once the namespace exists, before ``start``: bridge, veth, eth0, routes, nftables.
``detach`` undoes whatever the plans say was done, so a crash at any point is cleaned up by
``delete --force``.
"""

from __future__ import annotations

import errno
import hashlib
import os
import socket

from mrun import annotations as ann
from mrun import jsonio
from mrun.errors import InvalidSpec, MrunError
from mrun.network import PLAN, more_plan_file, peers
from mrun.network import names as name_files
from mrun.network.store import DEFAULT_NETWORK, Networks, PortTaken, network_tag, veth_name
from mrun.units import decimal

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

NETWORK, PORTS = ann.NETWORK, ann.NETWORK_PORTS


def wanted(annotations: dict[str, str]) -> bool:
    return bool(annotations.get(NETWORK))


PORT_FORM = "[host_ip:][host_port[-end]:]container_port[-end][/tcp|udp]"


def parse_ports(text: str) -> list[dict[str, Any]]:
    """docker's -p forms. A host port left out (``80``, ``127.0.0.1::80``) is 0 here: the host
    chooses a free one when the container is made (``prepare``), as docker's -p and -P do.
    Ranges as docker takes them: ``8000-8002:80-82`` publishes three pairs (the two ranges as
    long), ``80-82`` three with host ports chosen, ``8000-8010:80`` one, on the first free host
    port of that range (``host_range``)."""
    ports = []
    for item in filter(None, (p.strip() for p in text.split(","))):
        spec, _, proto = item.partition("/")
        proto = proto or "tcp"
        parts = spec.split(":")
        if len(parts) == 2 and not parts[0]:
            parts = parts[1:]  # ":80", as docker takes it
        host = parts[-2] if len(parts) >= 2 else ""
        if proto not in ("tcp", "udp") or len(parts) > 3:
            raise InvalidSpec(f"-p {item!r}: {PORT_FORM} expected")
        host_ip = _host_ip(parts[0], item) if len(parts) == 3 else ""
        first, last = _port_range(parts[-1], item)
        if host:
            host_first, host_last = _port_range(host, item)
        else:
            host_first = host_last = 0
        entry = {"host_ip": host_ip, "proto": proto}
        if host and first == last and host_last > host_first:  # one port, the host's first free one in the range
            ports.append({**entry, "host_port": 0, "host_range": [host_first, host_last], "port": first})
            continue
        if host and host_last - host_first != last - first:
            raise InvalidSpec(f"-p {item!r}: the host's range and the container's are not as long")
        for offset in range(last - first + 1):
            ports.append({**entry, "host_port": host_first + offset if host else 0, "port": first + offset})
    return ports


def _port_range(text: str, item: str) -> tuple[int, int]:
    """'80' or '8000-8010' -> (first, last), each 1 to 65535, first at most last."""
    low, dash, high = text.partition("-")
    if not (low.isascii() and low.isdigit() and (not dash or high.isascii() and high.isdigit())):
        raise InvalidSpec(f"-p {item!r}: {PORT_FORM} expected")
    first, last = decimal(low, 65535), decimal(high if dash else low, 65535)
    if not first or not last:
        raise InvalidSpec(f"-p {item!r}: ports are 1 to 65535")
    if last < first:
        raise InvalidSpec(f"-p {item!r}: the range {text} ends before it starts")
    return first, last


def _host_ip(text: str, item: str) -> str:
    """A published port's host address, dotted decimal as Go's net.ParseIP (docker's) reads it,
    kept in that one spelling: inet_aton also took "127.1", "0x7f.1", "2130706433" and
    "127.0.0.1 anything", which were kept as written, so a loopback address slipped past the
    "127." test that keeps its DNAT to the host's own programs (firewall.publish), and the
    text went into the nft script as it was."""
    import ipaddress

    try:
        return str(ipaddress.IPv4Address(text))
    except ValueError:  # (argv's bytes that are not UTF-8 are no address either: a UnicodeError is one)
        raise InvalidSpec(f"-p {item!r}: {text!r} is not an IPv4 address") from None


HOST_GATEWAY = "host-gateway"  # docker's word for the host's address on the container's network


def _address(text: str, flag: str, item: str, gateway_ok: bool = False) -> str:
    import ipaddress

    if gateway_ok and text == HOST_GATEWAY:
        return text
    try:
        address = ipaddress.ip_address(text)
        # "fe80::1%eth0": Go's net.ParseIP (docker's) refuses a zone; Python's takes any, a line break too
        if getattr(address, "scope_id", None):
            raise ValueError(text)
        return str(address)
    except ValueError:
        either = " (or host-gateway)" if gateway_ok else ""
        raise InvalidSpec(f"{flag} {item!r}: {text!r} is not an IP address{either}")


def parse_mac(text: str) -> str:
    """docker's --mac-address: six octets in hex, colon-separated (dashes taken too), one a
    single interface may have: not multicast (the kernel refuses those), not all zeros."""
    octets = text.replace("-", ":").split(":")
    if len(octets) != 6 or not all(len(o) == 2 and all(c in "0123456789abcdefABCDEF" for c in o) for o in octets):
        raise InvalidSpec(f"--mac-address {text!r}: a MAC address expected (02:42:ac:11:00:02)")
    if int(octets[0], 16) & 1 or octets == ["00"] * 6:
        raise InvalidSpec(f"--mac-address {text}: a unicast address expected (its first octet even, not all zeros)")
    return ":".join(octets).lower()


def parse_extra_hosts(items: list[str]) -> list[tuple[str, str]]:
    """docker's --add-host NAME:IP (or NAME=IP; IP may be IPv6, or host-gateway) -> (name, ip)."""
    out = []
    for item in items:
        sep = "=" if "=" in item else ":"
        name, _, ip = item.partition(sep)
        if not name_files.name_like(name):
            raise InvalidSpec(f"--add-host {item!r}: NAME:IP expected, NAME a host name")
        out.append((name, _address(ip.strip("[]"), "--add-host", item, gateway_ok=True)))
    return out


def parse_dns(servers: list[str], search: list[str], options: list[str]) -> dict[str, list[str]]:
    """--dns, --dns-search, --dns-option, each checked as one field of its resolv.conf line."""
    for domain in search:
        if domain != "." and not name_files.name_like(domain):
            raise InvalidSpec(f"--dns-search {domain!r}: a domain name expected")
    for option in options:
        if not option or not option.isascii() or not all(c.isalnum() or c in "-_.:" for c in option):
            raise InvalidSpec(f"--dns-option {option!r}: an option of resolv.conf expected (ndots:2, edns0, ...)")
    return {"servers": [_address(s, "--dns", s) for s in servers], "search": list(search), "options": list(options)}


def _listed(annotations: dict[str, str], key: str) -> list[str]:
    return [item for item in (annotations.get(key) or "").split(",") if item]


def _check_free(p: dict[str, Any]) -> None:
    """Nobody on the host listens there already (a DNAT rule would silently steal their traffic)."""
    kind = socket.SOCK_STREAM if p["proto"] == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as s:
        try:
            s.bind((p["host_ip"] or "0.0.0.0", p["host_port"]))
        except OSError as e:
            where = f"{p['host_ip']}:{p['host_port']}" if p["host_ip"] else str(p["host_port"])
            if e.errno == errno.EADDRINUSE:
                raise PortTaken(f"-p {where}/{p['proto']}: port already in use on this host ({e.strerror})") from None
            why = "not an address of this host" if e.errno == errno.EADDRNOTAVAIL else "cannot be bound"
            raise MrunError(f"-p {where}/{p['proto']}: {why} ({e.strerror})") from None


CHOOSING_ATTEMPTS = 20


def _reserve_free(nets: Networks, p: dict[str, Any], owner: dict[str, str]) -> None:
    """A host port for ``p`` that nobody listens on and no container publishes: the kernel's
    choice of an ephemeral one (bound and let go, as a listener's port would be chosen), then
    reserved; one another container holds is passed over for the next choice."""
    kind = socket.SOCK_STREAM if p["proto"] == "tcp" else socket.SOCK_DGRAM
    for _ in range(CHOOSING_ATTEMPTS):
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind((p["host_ip"] or "0.0.0.0", 0))
            except OSError as e:
                where = p["host_ip"] or "0.0.0.0"
                why = "not an address of this host" if e.errno == errno.EADDRNOTAVAIL else "cannot be bound"
                raise MrunError(f"-p {where}::{p['port']}/{p['proto']}: {why} ({e.strerror})") from None
            p["host_port"] = s.getsockname()[1]
        try:
            p["reservation"] = nets.reserve_port(p["proto"], p["host_ip"], p["host_port"], owner)
            return
        except PortTaken:  # published by another container (its rule, no listener): choose again
            continue
    raise MrunError(f"-p {p['port']}/{p['proto']}: no free host port found in {CHOOSING_ATTEMPTS} choices")


def _reserve_in_range(nets: Networks, p: dict[str, Any], owner: dict[str, str]) -> None:
    """docker's ``-p 8000-8010:80``: the first host port of the range nobody listens on and no
    container publishes, reserved."""
    first, last = p.pop("host_range")
    for port in range(first, last + 1):
        p["host_port"] = port
        try:
            _check_free(p)
            p["reservation"] = nets.reserve_port(p["proto"], p["host_ip"], port, owner)
            return
        except PortTaken:  # by a listener or another container's rule: the next one (any other
            pass  # refusal, such as an address not of this host, goes out: no port of it would do)
    where = f"{p['host_ip']}:" if p["host_ip"] else ""
    raise MrunError(f"-p {where}{first}-{last}:{p['port']}/{p['proto']}: every host port of the range is in use")


def _take_ports(nets: Networks, ports: list[dict[str, Any]], owner: dict[str, str], plan: dict[str, Any],
                path: str) -> None:
    """Each port's host port reserved, and noted in ``plan`` (saved at ``path``) as it is taken."""
    for p in ports:
        if p.get("host_range"):
            _reserve_in_range(nets, p, owner)
        elif p["host_port"]:
            _check_free(p)
            p["reservation"] = nets.reserve_port(p["proto"], p["host_ip"], p["host_port"], owner)
        else:
            _reserve_free(nets, p, owner)
        plan["ports"].append(p)
        _save("", plan, path)


def _save(state_dir: str, plan: dict[str, Any], path: str = "") -> None:
    path = path or os.path.join(state_dir, PLAN)
    tmp = path + ".tmp"
    jsonio.write_file(tmp, plan)
    os.rename(tmp, path)


def _resolv_conf(dns: dict[str, list[str]] | None = None) -> str:
    """The host's resolvers, unless they are loopback ones (systemd-resolved's stub cannot be
    reached from another namespace): then its upstream list, or nothing. ``dns`` (--dns,
    --dns-search, --dns-option) replaces each kind of line it names, as docker's flags do."""
    dns = dns or {}
    servers: list[str] = []
    others: list[str] = []
    for path in ("/etc/resolv.conf", "/run/systemd/resolve/resolv.conf"):
        try:
            with open(path) as f:
                lines = f.read().splitlines()
        except OSError:
            continue
        servers = [line for line in lines if line.startswith("nameserver") and not line.split()[1].startswith("127.")]
        if servers:
            others = [line for line in lines if line.startswith(("search", "options"))]
            break
    if dns.get("servers"):
        servers = [f"nameserver {ip}" for ip in dns["servers"]]
    if dns.get("search"):
        others = [line for line in others if not line.startswith("search")]
        if dns["search"] != ["."]:
            others.append("search " + " ".join(d for d in dns["search"] if d != "."))
    if dns.get("options"):
        others = [line for line in others if not line.startswith("options")] + ["options " + " ".join(dns["options"])]
    return "\n".join([*servers, *others]) + "\n" if servers or others else ""


def prepare(spec: Any, state_dir: str, state_root: str, container_id: str) -> dict[str, Any]:
    annotations = spec.raw.get("annotations") or {}
    if spec.namespaces().get("network", None) != "":
        raise InvalidSpec(f"annotation {NETWORK}: the container needs a new network namespace (linux.namespaces)")
    nets = Networks()
    name = annotations[NETWORK]
    network = nets.ensure(name)  # an unknown network fails here, before anything is taken
    ports = parse_ports(annotations.get(PORTS, ""))
    if ports and network.get("internal"):
        raise InvalidSpec(f"-p: network {name!r} is internal (--internal): nothing from outside reaches it")
    # a bundle's annotations are read like the flags they stand for, and checked alike
    hosts = parse_extra_hosts(_listed(annotations, ann.NETWORK_HOSTS))
    dns = parse_dns(*(_listed(annotations, key) for key in (ann.NETWORK_DNS, ann.NETWORK_DNS_SEARCH,
                                                            ann.NETWORK_DNS_OPTIONS)))
    owner = {"root": state_root, "container": container_id}
    tag = _tag(state_root, container_id)
    mac = parse_mac(annotations[ann.NETWORK_MAC]) if annotations.get(ann.NETWORK_MAC) else ""
    names = resolved_names(name, container_id, _listed(annotations, ann.NETWORK_ALIASES))
    plan: dict[str, Any] = {"network": name, "veth": veth_name(state_root, container_id), "ip": "", "ports": []}
    if mac:
        plan["mac"] = mac
    if names:
        plan["names"] = names
    plan.update(tag=tag, netroot=nets.root, definition=network)  # its copy: network/recovery
    _save(state_dir, plan)
    plan["ip"] = nets.lease(name, owner, annotations.get(ann.NETWORK_IP, ""))
    from mrun.network import portguard

    plan.update(mac=mac or mac_of(plan["ip"]), held=portguard.held(spec.raw))
    _save(state_dir, plan)
    _take_ports(nets, ports, owner, plan, os.path.join(state_dir, PLAN))
    hostname = spec.raw.get("hostname") or container_id[:12]
    extra = "".join(f"{network['gateway'] if ip == HOST_GATEWAY else ip}\t{name}\n" for name, ip in hosts)
    files = {
        "hosts": f"{name_files.LOCALHOST}{plan['ip']}\t{hostname}\n{extra}",
        "resolv.conf": _resolv_conf(dns),
        "hostname": hostname + "\n",
    }
    place = name_files.place(state_dir, spec.bundle, container_id, state_root)
    for fname, content in files.items():
        name_files.write_and_bind(spec.raw.setdefault("mounts", []), place, fname, os.fsencode(content))
    if name != DEFAULT_NETWORK:  # docker's user-defined networks resolve their containers' names
        peers.join(nets, name, owner, plan["ip"], names)
    return plan


def prepare_detached(spec: Any, state_dir: str, state_root: str, container_id: str) -> None:
    """A container whose networks were all disconnected (``annotations.NETWORK_DETACHED``) starts
    with lo alone, as --network none's: an /etc/hosts naming localhost and its /etc/hostname."""
    place = name_files.place(state_dir, spec.bundle, container_id, state_root)
    name_files.own(spec.raw.setdefault("mounts", []), place, spec.raw.get("hostname") or container_id[:12])


def more_of(annotations: dict[str, str]) -> list[dict[str, Any]]:
    """The networks a container is on besides its first (``annotations.NETWORK_MORE``: docker's
    second --network, `network connect`), each {"name", "ip" (asked for, or ""), "aliases", and
    "mac" where one was asked for (docker's long --network form)}, in the order they were joined
    (eth1, eth2...). Read like any flag: a malformed entry is one line."""
    text = annotations.get(ann.NETWORK_MORE) or ""
    if not text:
        return []
    from mrun.network.store import check_name, requested_address

    bad = InvalidSpec(f"annotation {ann.NETWORK_MORE}: a JSON list of "
                      "{\"name\", \"ip\", \"aliases\", \"mac\"} expected")
    try:
        doc = jsonio.loads(text)
    except ValueError:
        raise bad from None
    if not isinstance(doc, list) or not all(isinstance(d, dict) for d in doc):
        raise bad
    out, seen = [], {annotations.get(NETWORK)}
    for d in doc:
        name, ip, aliases, mac = d.get("name"), d.get("ip", ""), d.get("aliases", []), d.get("mac", "")
        if not isinstance(name, str) or not isinstance(ip, str) or not isinstance(aliases, list) \
                or not all(isinstance(a, str) for a in aliases) or not isinstance(mac, str):
            raise bad
        check_name(name)
        if name in seen:
            raise InvalidSpec(f"annotation {ann.NETWORK_MORE}: network {name!r} twice (a container joins a "
                              "network once)")
        seen.add(name)
        if ip:
            requested_address(ip)
        out.append({"name": name, "ip": ip, "aliases": list(aliases), **({"mac": parse_mac(mac)} if mac else {})})
    return out


def more_plans(state_dir: str) -> dict[str, str]:
    """network -> plan file, for each network the container joined besides its first (by the
    files' names: written by mrun alone, in its state directory)."""
    from mrun.errors import InvalidSpec as Bad
    from mrun.network.store import check_name

    found = {}
    try:
        names = os.listdir(state_dir)
    except OSError:
        return {}
    for fname in names:
        if fname.startswith("net-") and fname.endswith(".json"):
            network = fname[len("net-") : -len(".json")]
            try:
                check_name(network)
            except Bad:
                continue
            found[network] = os.path.join(state_dir, fname)
    return found


def more_plans_read(state_dir: str) -> dict[str, dict[str, Any]]:
    """network -> plan, of the plans ``more_plans`` finds that can be read."""
    return {network: plan for network, path in more_plans(state_dir).items()
            if (plan := jsonio.load_object(path)) is not None}


def prepare_more(state_dir: str, state_root: str, container_id: str, want: dict[str, Any],
                 ifname: str, held: bool) -> dict[str, Any]:
    """Its place on one more network (``want``: an entry of ``more_of``): an address leased there
    and its names known to the others on it, as ``ifname``. No ports (published on its first
    network), no name files (its first network's). The plan is written before each thing it
    records is taken, so whatever a crash leaves, ``detach`` undoes. ``held``: its port is held
    to its addresses (``portguard.held`` of its config)."""
    nets = Networks()
    name = want["name"]
    network = nets.ensure(name)
    owner = {"root": state_root, "container": container_id}
    names = resolved_names(name, container_id, want.get("aliases") or [])
    plan: dict[str, Any] = {"network": name, "veth": more_veth(state_root, container_id, name), "ifname": ifname,
                            "ip": "", "ports": [], "tag": _tag(state_root, container_id), "netroot": nets.root,
                            "definition": network}
    if names:
        plan["names"] = names
    path = os.path.join(state_dir, more_plan_file(name))
    _save(state_dir, plan, path)
    plan["ip"] = nets.lease(name, owner, want.get("ip") or "")
    plan.update(mac=want.get("mac") or mac_of(plan["ip"]), held=held)
    _save(state_dir, plan, path)
    if name != DEFAULT_NETWORK:
        peers.join(nets, name, owner, plan["ip"], names)
    return plan


def more_veth(state_root: str, container_id: str, network: str) -> str:
    """The host end of its pair on a network besides its first: another name per network."""
    return veth_name(state_root, f"{container_id}\0{network}")


def free_ifname(state_dir: str) -> str:
    """eth1, eth2...: the first its plans do not name (its first network's too: eth0, or the name
    it had on its network before that became its first, ``promote``)."""
    paths = [*more_plans(state_dir).values(), os.path.join(state_dir, PLAN)]
    taken = {(jsonio.load_object(path) or {}).get("ifname") for path in paths}
    return next(f"eth{i}" for i in range(1, 1 + len(taken) + 1) if f"eth{i}" not in taken)


def resolved_names(network: str, container_id: str, aliases: list[str]) -> list[str]:
    """The names other containers on ``network`` know this one by: its own (if it is a host
    name) and its --network-alias names; none on the default network, where docker has none."""
    for alias in aliases:
        if not name_files.name_like(alias):
            raise InvalidSpec(f"--network-alias {alias!r}: a host name expected")
    if network == DEFAULT_NETWORK:
        if aliases:
            raise InvalidSpec("--network-alias: taken on networks of `mrun network create`, not the default one "
                              "(as docker's bridge)")
        return []
    return [n for n in dict.fromkeys([container_id, *aliases]) if name_files.name_like(n)]


def attach(plan: dict[str, Any], pid: int) -> None:
    from mrun.network import firewall, links, portguard

    nets = Networks(plan["netroot"])
    network = nets.get(plan["network"])
    with nets.lock():  # one bridge and one set of network rules, however many start at once
        firewall.add_network(network, network_tag(nets.root, plan["network"]), nets.path(plan["network"], "rules-seen"))
        links.ensure_bridge(network)
    first = "ifname" not in plan  # its first network: eth0, its default route, its ports
    seen = nets.path(plan["network"], "rules-seen")

    def hold() -> None:  # its port made, its end not up yet: it never says anything else
        firewall.ours_alone(seen, lambda: portguard.hold(plan["veth"], plan["mac"], plan["ip"]))

    links.plug(network, plan["veth"], pid, plan["ip"], plan.get("mac") or "", plan.get("ifname") or "eth0", first,
               hold if plan.get("held") else None)
    _publish(plan)


def _publish(plan: dict[str, Any]) -> None:
    from mrun.network import firewall

    for p in plan["ports"]:
        firewall.publish(plan["tag"], p["host_ip"], p["host_port"], p["proto"], plan["ip"], p["port"])
        if p["proto"] == "udp":  # a flow that reached the port before went on to the host: no more
            from mrun.network import conntrack

            conntrack.forget_port("udp", p["host_ip"], p["host_port"])


def detach(state_dir: str) -> None:
    """Undo what the plans record (its other networks' first, then its first's); each step
    tolerates its part being gone already.

    A plan is read like any input: the veth and the firewall tag are derived again from the
    container's own root and id (and, for another network, the plan file's own name, never
    from its content), and a lease or port reservation is removed only when it still names
    this container as its owner, so a damaged or forged plan cannot make mrun delete another
    link or file."""
    state_root, container_id = os.path.split(os.path.abspath(state_dir))
    for network, path in more_plans(state_dir).items():
        _detach_plan(path, state_root, container_id, more_veth(state_root, container_id, network), network)
    detach_first(state_dir)


def first_veth(state_root: str, container_id: str, plan: dict[str, Any] | None) -> str:
    """The host end of its first network's pair: its own name, or, where the plan was another
    network's until its first was disconnected (``promote``: it names its interface), that
    network's. Either is a name of this container's alone, whatever a plan says."""
    from mrun.errors import InvalidSpec as Bad
    from mrun.network.store import check_name

    network = plan.get("network") if plan is not None and plan.get("ifname") else None
    if isinstance(network, str):
        try:
            check_name(network)
            return more_veth(state_root, container_id, network)
        except Bad:
            pass
    return veth_name(state_root, container_id)


def promote(state_dir: str, state_root: str, container_id: str, network: str, ports: list[dict[str, Any]],
            pid: int, hostname: str) -> None:
    """`network disconnect` of a container's first network, docker's way: ``network``, the first
    of its others, takes the first's part. Its first place is undone and the other's plan becomes
    the first one (net.json); where it runs (``pid``), its published ``ports`` go to its address
    there and its default route through that network's gateway (none for an internal one), and
    its own /etc/hosts line names that address. Each step may be done again: a disconnect killed
    part-way is finished by the container's next `network connect` or `disconnect`."""
    first = os.path.join(state_dir, PLAN)
    current = jsonio.load_object(first)
    if current is not None and current.get("network") != network:
        _detach_plan(first, state_root, container_id, first_veth(state_root, container_id, current))
    other = os.path.join(state_dir, more_plan_file(network))
    if os.path.exists(other):
        os.replace(other, first)
    plan = jsonio.load_object(first)
    if plan is None or plan.get("network") != network or not pid:
        return
    from mrun.network import firewall, ifconfig

    owner = {"root": state_root, "container": container_id}
    nets = Networks()
    plan["tag"] = _tag(state_root, container_id)
    # What a killed promotion published and reserved (its first network's are let go by now, and
    # a reservation may be made before its plan names it), all taken again below.
    firewall.remove(plan["tag"])
    for reservation in nets.port_reservations():
        _remove_if_owned(reservation, owner)
    plan["ports"] = []
    _save("", plan, first)
    _take_ports(nets, [dict(p) for p in ports], owner, plan, first)
    _publish(plan)
    definition = nets.get(network)
    if not definition.get("internal"):
        ifconfig.default_route(pid, definition["gateway"], str(plan.get("ifname") or "eth0"))
    peers.readdress(nets, owner, hostname, plan["ip"])
    plan["promoted"] = True
    _save("", plan, first)


def detach_first(state_dir: str) -> None:
    """Its place on its first network (`network disconnect` of its only one)."""
    state_root, container_id = os.path.split(os.path.abspath(state_dir))
    first = os.path.join(state_dir, PLAN)
    _detach_plan(first, state_root, container_id, first_veth(state_root, container_id, jsonio.load_object(first)))


def detach_more(state_dir: str, network: str) -> None:
    """Its place on ``network``, one of its other networks (`network disconnect`)."""
    state_root, container_id = os.path.split(os.path.abspath(state_dir))
    _detach_plan(os.path.join(state_dir, more_plan_file(network)), state_root, container_id,
                 more_veth(state_root, container_id, network), network)


def _detach_plan(path: str, state_root: str, container_id: str, veth: str, network: str = "") -> None:
    """``network``: the one an other network's plan must name (its file's), or "" for the first's."""
    try:
        plan = jsonio.load_file(path)
    except (OSError, ValueError):
        return
    owner = {"root": state_root, "container": container_id}
    if not isinstance(plan, dict) or network and plan.get("network") != network:
        plan = {}
    ports = plan.get("ports") if isinstance(plan.get("ports"), list) and not network else []
    if ports:
        from mrun.network import firewall

        firewall.remove(_tag(state_root, container_id))
    if os.path.exists(f"/sys/class/net/{veth}"):
        from mrun.network import links

        links.remove_veth(veth)  # or the kernel does, with the container's namespace
    netroot = plan.get("netroot")
    nets = Networks(netroot if isinstance(netroot, str) and netroot else None)
    _release_ports(nets, ports, owner)
    ip, name = plan.get("ip"), plan.get("network")
    if isinstance(ip, str) and ip and isinstance(name, str) and "/" not in ip:
        try:
            if plan.get("names"):
                peers.leave(nets, name, owner, ip)
            lease = nets.path(name, "leases", ip)
            if _owned(lease, owner):  # its own address (a plan may be forged): its flows went on to
                from mrun.network import conntrack  # whoever took the address next; before that

                conntrack.forget_address(ip)
                _unlink(lease)
        except InvalidSpec:
            pass
    os.unlink(path)


def _release_ports(nets: Networks, ports: list[Any], owner: dict[str, str]) -> None:
    """The host ports a plan reserved, those reserved in this network root and by this container."""
    for p in ports:
        reservation = p.get("reservation") if isinstance(p, dict) else None
        if isinstance(reservation, str) and os.path.dirname(reservation) == os.path.join(nets.root, "ports"):
            _remove_if_owned(reservation, owner)


def mac_of(ip: str) -> str:
    """A container's MAC address on a network where none was asked for: docker's, 02:42 and its
    address (known before its interface is made, to hold its port to it: ``portguard``)."""
    return "02:42:" + ":".join(f"{int(octet):02x}" for octet in ip.split("."))


def _tag(state_root: str, container_id: str) -> str:
    return "mrun-ctr:" + hashlib.sha256(f"{state_root}\0{container_id}".encode()).hexdigest()[:16]


def _owned(path: str, owner: dict[str, str]) -> bool:
    try:
        return jsonio.load_file(path) == owner
    except (OSError, ValueError):
        return False


def _remove_if_owned(path: str, owner: dict[str, str]) -> None:
    if _owned(path, owner):
        _unlink(path)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass

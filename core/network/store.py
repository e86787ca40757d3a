"""Networks and their leases on disk, under ``$MRUN_NETWORK_ROOT`` (``/var/lib/mrun/networks``).

``<name>/network.json`` defines a network; ``<name>/leases/<ip>`` is one address in use, made
with O_EXCL (two concurrent starts can never get one address) and holding who has it (state
root and container id), so ``prune`` can tell a lease whose container is gone. Published
ports are reserved the same way in ``ports/<proto>-<host ip>-<port>``. Everything is plain
files, so it survives restarts of mrun and of the machine.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import shutil

from mrun import jsonio
from mrun.errors import InvalidSpec, MrunError, NotFound, in_words, name_the_file
from mrun.network.options import options_problem
from mrun.state import FileLock

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import Any

DEFAULT_NETWORK = "mrun"
DEFAULT_ROOT = "/var/lib/mrun/networks"


class PortTaken(MrunError):
    """A host port someone has: a listener on the host, or another container's publication. A
    range (``-p 8000-8010:80``) or a chosen port then tries the next one."""


def network_root() -> str:
    return os.environ.get("MRUN_NETWORK_ROOT") or DEFAULT_ROOT


def check_name(name: str, new: bool = False) -> None:
    """A name to look up (one an older mrun made may be any letters), or a ``new`` one: ASCII,
    as podman's and docker's names are. A network's name is in its rules' comments, which nft
    keeps to 128 bytes: 64 letters of two bytes each were taken by create, and every container
    started on that network was then refused by nft ("comment too long")."""
    if (not name or len(name) > 64 or not all(c.isalnum() or c in "-_." for c in name) or name[0] in "-."
            or (new and not name.isascii())):
        raise InvalidSpec(f"network name {name!r}: 1 to 64 {'ASCII ' if new else ''}letters, digits, '-', '_' "
                          "and '.' expected (not first '-' or '.')")


# Names a new network may not take: the store's own entries beside the networks' directories,
# and docker's predefined networks (modes of --network here, so a network so named could never
# be joined). Only at create: one an older mrun made can still be inspected and removed.
RESERVED = {"ports": "the network root's own", "lock": "the network root's own",
            "bridge": "docker's predefined network", "host": "docker's predefined network",
            "none": "docker's predefined network"}


def check_new_name(name: str) -> None:
    check_name(name, new=True)
    if name in RESERVED:
        raise InvalidSpec(f"network name {name!r}: reserved ({RESERVED[name]}); choose another")


def bridge_name(root: str, name: str) -> str:
    """IFNAMSIZ allows 15 characters: the default network's bridge is mrun0, others mrb-<hash>."""
    if name == DEFAULT_NETWORK and root == DEFAULT_ROOT:
        return "mrun0"
    return "mrb-" + hashlib.sha256(f"{root}\0{name}".encode()).hexdigest()[:10]


def network_tag(root: str, name: str) -> str:
    """The comment on a network's firewall rules, how they are found again: its name, and the
    hash of its root for a network root other than the default one (two roots can each have a
    network of one name, as their bridges' names already told apart: with the name alone, one's
    start added no rules for its subnet, finding the other's, and its rm deleted the other's)."""
    if root == DEFAULT_ROOT:
        return f"mrun-net:{name}"
    return f"mrun-net:{name}:" + hashlib.sha256(root.encode()).hexdigest()[:10]


def veth_name(state_root: str, container_id: str) -> str:
    return "mrv" + hashlib.sha256(f"{state_root}\0{container_id}".encode()).hexdigest()[:11]


def requested_address(text: str) -> ipaddress.IPv4Address:
    """docker's --ip: an IPv4 address, written as one (mrun's networks are IPv4)."""
    try:
        return ipaddress.IPv4Address(text)
    except ValueError:
        raise InvalidSpec(f"--ip {text!r}: an IPv4 address expected")


class Networks:
    def __init__(self, root: str | None = None) -> None:
        self.root = root or network_root()

    def lock(self) -> FileLock:
        return FileLock(os.path.join(self.root, "lock"))

    def path(self, name: str, *parts: str) -> str:
        check_name(name)
        return os.path.join(self.root, name, *parts)

    def names(self) -> list[str]:
        if not os.path.isdir(self.root):
            return []
        return sorted(n for n in os.listdir(self.root) if os.path.exists(os.path.join(self.root, n, "network.json")))

    def get(self, name: str) -> dict[str, Any]:
        where = self.path(name, "network.json")
        try:
            doc = jsonio.load_file(where)
        except FileNotFoundError:
            raise NotFound(f"network {name!r} not found (see `mrun network ls`)")
        except (OSError, ValueError) as e:
            raise InvalidSpec(f"{where}: unreadable ({in_words(e)}); `mrun network rm {name}` removes it") from None
        return self._checked(name, where, doc)

    def _checked(self, name: str, where: str, doc: Any) -> dict[str, Any]:
        """network.json as mrun wrote it, or one line naming the field that is not. Only root
        may write it, but a damaged or forged one must never steer the host: its subnet goes
        into an nft script, its bridge names the link mrun addresses, plugs into and deletes."""
        repair = f"; `mrun network rm {name}` removes it"
        if not isinstance(doc, dict):
            raise InvalidSpec(f"{where}: a JSON object expected{repair}")
        subnet, gateway = doc.get("subnet"), doc.get("gateway")
        try:
            net = ipaddress.ip_network(subnet, strict=True) if isinstance(subnet, str) else None
        except ValueError:
            net = None
        if net is None or net.version != 4 or str(net) != subnet or special_use(net):
            raise InvalidSpec(f"{where}: subnet {subnet!r}: an IPv4 network in canonical form expected{repair}")
        try:
            address = ipaddress.IPv4Address(gateway) if isinstance(gateway, str) else None
            ok = address is not None and str(address) == gateway and address in net
        except ValueError:
            ok = False
        if not ok:
            raise InvalidSpec(f"{where}: gateway {gateway!r}: an address in {net} expected{repair}")
        bridge = bridge_name(self.root, name)
        if doc.get("bridge") != bridge:
            raise InvalidSpec(f"{where}: bridge {doc.get('bridge')!r}: this network's bridge is {bridge}{repair}")
        if doc.get("name") != name:
            raise InvalidSpec(f"{where}: name {doc.get('name')!r}: {name!r} expected{repair}")
        if not isinstance(doc.get("internal", False), bool):
            raise InvalidSpec(f"{where}: internal {doc.get('internal')!r}: true or false expected{repair}")
        labels = doc.get("labels", {})
        if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
            raise InvalidSpec(f"{where}: labels: an object of strings expected{repair}")
        problem = options_problem(doc.get("options", {}))
        if problem:
            raise InvalidSpec(f"{where}: {problem}{repair}")
        pool, aux = doc.get("ip_range"), doc.get("aux_addresses")  # (checked only where written: a hot path)
        if "ip_range" in doc and not _holds(lambda: isinstance(pool, str) and str(_range_in(net, pool)) == pool):
            raise InvalidSpec(f"{where}: ip_range {pool!r}: a network within {net} in canonical form expected{repair}")
        if "aux_addresses" in doc and not _holds(lambda: isinstance(aux, dict) and _aux_in(net, gateway, aux) == aux):
            raise InvalidSpec(f"{where}: aux_addresses: an object of host addresses of {net} expected{repair}")
        return doc

    def create(self, name: str, subnet: str = "", gateway: str = "", internal: bool = False,
               labels: dict[str, str] | None = None, options: dict[str, str] | None = None, ip_range: str = "",
               aux: dict[str, str] | None = None) -> dict[str, Any]:
        """Under the lock: the subnet must overlap neither another network nor a host route. The
        gateway (the bridge's address) is the subnet's first host unless ``gateway`` (docker's
        --gateway, with --subnet) names another of its hosts. ``internal`` (docker's): nothing
        is forwarded between its bridge and anywhere else (``firewall.add_network``). ``labels``:
        docker's --label, notes for `network ls --filter label=`; ``options``: its -o
        (``driver_options``). ``ip_range`` and ``aux`` (docker's --ip-range and --aux-address NAME=IP,
        with --subnet): where containers' addresses are given from, and addresses given to none."""
        check_new_name(name)
        if gateway and not subnet:
            raise InvalidSpec(f"--gateway {gateway}: goes with --subnet, the network it is in")
        if (ip_range or aux) and not subnet:
            flag = f"--ip-range {ip_range}" if ip_range else "--aux-address"
            raise InvalidSpec(f"{flag}: goes with --subnet (docker's: every ip-range must have a corresponding "
                              "subnet)")
        with self.lock():
            if os.path.exists(self.path(name, "network.json")):
                raise MrunError(f"network {name!r} already exists")
            bridge = bridge_name(self.root, name)
            kept = self._left_bridge(name, bridge)
            taken = [ipaddress.ip_network(self.get(n)["subnet"]) for n in self.names()]
            taken += host_routes(other_than=bridge if kept else "")
            if kept and not subnet and not any(t.overlaps(kept[0]) for t in taken) and not special_use(kept[0]):
                from mrun.network.ifconfig import address

                subnet, on_it = str(kept[0]), address(bridge)  # the subnet its containers are on
                if on_it and ipaddress.IPv4Address(on_it) in kept[0]:
                    gateway = on_it  # and their gateway
            if subnet:
                try:
                    net = ipaddress.ip_network(subnet, strict=True)
                except ValueError as e:
                    raise InvalidSpec(f"--subnet {subnet!r}: {e}")
                if net.version != 4 or net.prefixlen > 29:
                    raise InvalidSpec(f"--subnet {subnet}: an IPv4 network of /29 or larger expected")
                special = special_use(net)
                if special:
                    raise InvalidSpec(f"--subnet {subnet}: overlaps {special}, never a bridge's")
                clash = next((t for t in taken if t.overlaps(net)), None)
                if clash is not None:
                    raise InvalidSpec(f"--subnet {subnet} overlaps {clash}, already used on this host")
            else:
                net = next(
                    (
                        n
                        for n in ipaddress.ip_network("10.89.0.0/16").subnets(new_prefix=24)
                        if not any(t.overlaps(n) for t in taken)
                    ),
                    None,
                )
                if net is None:
                    raise MrunError("no free /24 left in 10.89.0.0/16: give --subnet")
            if gateway:
                try:
                    chosen = ipaddress.IPv4Address(gateway)
                except ValueError:
                    raise InvalidSpec(f"--gateway {gateway!r}: an IPv4 address expected")
                if chosen not in net or chosen in (net.network_address, net.broadcast_address):
                    raise InvalidSpec(f"--gateway {gateway}: not a host address of --subnet {net}")
                gateway = str(chosen)
            else:
                gateway = str(next(net.hosts()))
            pool = _range_in(net, ip_range) if ip_range else None
            reserved = _aux_in(net, gateway, aux or {})
            doc = {
                "name": name,
                "subnet": str(net),
                "gateway": gateway,
                "bridge": bridge,
                "driver": "bridge",
                **({"ip_range": str(pool)} if pool else {}),
                **({"aux_addresses": reserved} if reserved else {}),
                **({"internal": True} if internal else {}),
                **({"labels": labels} if labels else {}),
                **({"options": options} if options else {}),
            }
            self._define(name, doc)
            return doc

    def _left_bridge(self, name: str, bridge: str) -> list[ipaddress.IPv4Network]:
        """Under the lock, for a network being defined: its bridge, if one was left when its
        definition was lost (the network root removed, the bridge not). Left as it was, it kept
        its old address beside the new subnet's, and its masquerade rule, whose comment is the
        network's, kept the new subnet's from being added (no way out for its containers). One
        that no container is plugged into goes with its rules; one that still carries
        containers (whose plans had no copy of the definition: network/recovery) is kept, and
        its subnets are returned for the network to take again."""
        if not os.path.isdir(f"/sys/class/net/{bridge}/bridge"):
            return []
        from mrun.network.links import carries_containers

        if carries_containers(bridge):
            return host_routes(device=bridge)
        take_down(self.root, name)
        return []

    def _define(self, name: str, doc: dict[str, Any]) -> None:
        """Under the lock, the network's directory and its definition, renamed into place last."""
        self._remove_half_made(name)
        os.makedirs(self.path(name, "leases"), mode=0o700)
        tmp = self.path(name, "network.json.tmp")
        jsonio.write_file(tmp, doc, indent=2)
        os.rename(tmp, self.path(name, "network.json"))

    def define_again(self, doc: Any) -> str:
        """Under the lock, a network whose definition was removed while containers used it (the
        network root removed: an admin's `rm -rf`, a clean-up) defined again from a container's
        copy of it (network/recovery), so that the next start finds it as it was, on the
        bridge that still carries its address, rather than a new subnet beside it. The copy is
        checked as network.json is, and never overlaps a network defined since. -> "" if it was
        (or is there already), else why not."""
        name = doc.get("name") if isinstance(doc, dict) else None
        try:
            check_name(name)  # type: ignore[arg-type]
            self._checked(name, "its copy", doc)  # type: ignore[arg-type]
        except InvalidSpec as e:
            return str(e).split(";")[0]
        if os.path.exists(self.path(name, "network.json")):  # type: ignore[arg-type]
            return ""
        subnet = ipaddress.ip_network(doc["subnet"])
        for other in self.names():
            try:
                clash = ipaddress.ip_network(self.get(other)["subnet"])
            except InvalidSpec:
                continue
            if clash.overlaps(subnet):
                return f"its subnet {subnet} is network {other!r}'s now"
        self._define(name, {k: doc[k] for k in ("name", "subnet", "gateway", "bridge", "driver") if k in doc})  # type: ignore[arg-type]
        return ""

    def _remove_half_made(self, name: str) -> bool:
        """Under the lock, a network's directory without its definition is what a create killed
        before its rename left, or a removal killed half-way: it held the name for good, every
        later create failing on it ("File exists"), also the default network's on every `run`.
        Only what those leave is taken (``_half_made``): in a network root shared by mistake
        (``MRUN_NETWORK_ROOT=/tmp``) any directory without a network.json was removed whole.
        -> whether one was removed."""
        if not self._half_made(name):
            return False
        shutil.rmtree(self.path(name))
        return True

    def _half_made(self, name: str) -> bool:
        """Its directory holds only what ``_define`` makes before network.json (``leases/``,
        ``network.json.tmp``), leases being files named by an address."""
        try:
            entries = os.listdir(self.path(name))
            leased = os.listdir(self.path(name, "leases")) if "leases" in entries else []
        except (FileNotFoundError, NotADirectoryError):
            return False
        if not set(entries) <= {"leases", "network.json.tmp"}:
            return False
        for address in leased:
            try:
                ipaddress.IPv4Address(address)
            except ValueError:
                return False
        return True

    def prune_half_made(self) -> list[str]:
        """The directories killed creates left (``_remove_half_made``). -> their names."""
        removed = []
        with self.lock():
            for entry in sorted(os.listdir(self.root)) if os.path.isdir(self.root) else []:
                if entry in RESERVED or not os.path.isdir(os.path.join(self.root, entry)):
                    continue
                try:
                    check_name(entry)
                except InvalidSpec:
                    continue
                if self._remove_half_made(entry):
                    removed.append(entry)
        return removed

    def ensure(self, name: str) -> dict[str, Any]:
        """The default network is made on first use; others must exist."""
        try:
            return self.get(name)
        except NotFound:
            if name != DEFAULT_NETWORK:
                raise
            try:
                return self.create(name)
            except MrunError as e:
                if "already exists" in str(e):
                    return self.get(name)
                raise

    def leases(self, name: str) -> dict[str, dict[str, str]]:
        out = {}
        d = self.path(name, "leases")
        for ip in os.listdir(d) if os.path.isdir(d) else []:
            out[ip] = _owner(os.path.join(d, ip))
        return out

    def lease(self, name: str, owner: dict[str, str], want: str = "") -> str:
        """An address of the network for ``owner``: ``want`` (docker's --ip) if it is one of the
        subnet's hosts, not the gateway and free, else the first free one. Under the lock that
        ``remove`` holds while it looks for leases: a network is never removed under a run taking
        its address (it was: the rm saw no lease yet, and took the leases directory from under
        the run)."""
        with self.lock():
            net = self.get(name)
            d = self.path(name, "leases")
            data = jsonio.dumps(owner).encode()
            subnet = ipaddress.ip_network(net["subnet"])
            kept = {net["gateway"], *(net.get("aux_addresses") or {}).values()}  # given to no container
            if want:
                asked = requested_address(want)
                if asked not in subnet or asked in (subnet.network_address, subnet.broadcast_address) \
                        or str(asked) in kept:
                    others = " ".join(sorted(kept - {net["gateway"]}))
                    raise InvalidSpec(f"--ip {want}: not an address network {name!r} gives out "
                                      f"({net['subnet']}, gateway {net['gateway']}"
                                      f"{', aux-addresses ' + others if others else ''})")
            for reclaim in (False, True):  # a dead container's address only when no other is free
                for host in [requested_address(want)] if want else _pool(subnet, net.get("ip_range")):
                    ip = str(host)
                    if ip in kept:
                        continue
                    path = os.path.join(d, ip)
                    if reclaim and os.path.lexists(path) and not owner_alive(_owner(path)):
                        os.unlink(path)  # a run killed before its plan named it, or a reboot
                    try:
                        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
                    except FileExistsError:
                        continue
                    _fill(fd, path, data)
                    return ip
        if want:
            holder = _owner(self.path(name, "leases", str(requested_address(want)))).get("container", "?")
            raise MrunError(f"--ip {want}: already the address of container {holder!r} on network {name!r}")
        raise MrunError(f"network {name!r}: no free address left in {net.get('ip_range') or net['subnet']}")

    def port_path(self, proto: str, host_ip: str, port: int) -> str:
        return os.path.join(self.root, "ports", f"{proto}-{host_ip or '0.0.0.0'}-{port}")

    def reserve_port(self, proto: str, host_ip: str, port: int, owner: dict[str, str]) -> str:
        """The host port's reservation for ``owner``, made whole under the lock (so one found
        empty or unreadable there was cut short by a kill); one whose container has no state any
        more (a run killed before its plan named it, a reboot) is taken over, as docker's next run
        takes the port."""
        path = self.port_path(proto, host_ip, port)
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        with self.lock():
            holder = _owner(path) if os.path.lexists(path) else None
            if holder is not None and owner_alive(holder):
                raise PortTaken(f"-p {port}/{proto}: port already published by container {holder['container']!r}")
            if holder is not None:
                os.unlink(path)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            _fill(fd, path, jsonio.dumps(owner).encode())
        return path

    def reservations(self) -> list[tuple[str, str]]:
        """Every address lease and host port reservation: (its path, what `network prune` calls it)."""
        found = [(self.path(name, "leases", ip), f"lease {ip} in {name}") for name in self.names()
                 for ip in self.leases(name)]
        return found + [(path, f"port reservation {os.path.basename(path)}") for path in self.port_reservations()]

    def port_reservations(self) -> list[str]:
        """Every host port reservation's path (no lease read). Anything else in the directory is
        not one: what a network called "ports" (an older mrun made one) holds."""
        ports = os.path.join(self.root, "ports")
        return [os.path.join(ports, entry) for entry in (os.listdir(ports) if os.path.isdir(ports) else [])
                if entry.startswith(("tcp-", "udp-", "sctp-")) and os.path.isfile(os.path.join(ports, entry))]

    def hold_again(self, path: str, owner: dict[str, str]) -> str:
        """Under the lock, ``owner``'s lease or port reservation at ``path`` made again after its
        file was removed (network/recovery); one a dead container's file holds is taken over, as
        ``lease`` and ``reserve_port`` take it. -> "" if held, else who holds it."""
        if os.path.lexists(path):
            holder = _owner(path)
            if holder == owner:
                return ""
            if owner_alive(holder):
                return f"container {holder.get('container')!r} has it"
            os.unlink(path)
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        _fill(fd, path, jsonio.dumps(owner).encode())
        return ""

    def drop_if_dead(self, path: str) -> bool:
        """Remove the reservation or lease at ``path`` if its container has no state any more
        (`network prune`, `system prune`); under the lock, so never one a run has just taken over."""
        with self.lock():
            if not os.path.lexists(path) or owner_alive(_owner(path)):
                return False
            os.unlink(path)
            return True

    def remove(self, name: str, take_down: Callable[[], None] | None = None) -> None:
        """The network's files, whatever state its definition is in (so a damaged one can go),
        then ``take_down`` (its rules and bridge), all under the lock: a `network create` of the
        same name waits until they are gone. Taken down after the lock, they were the new
        network's, which a container had made meanwhile."""
        with self.lock():
            if not os.path.exists(self.path(name, "network.json")):
                raise NotFound(f"network {name!r} not found (see `mrun network ls`)")
            leases = self.leases(name)
            if leases:
                raise MrunError(f"network {name!r} is in use by {len(leases)} container(s)")
            shutil.rmtree(self.path(name))
            if take_down is not None:
                take_down()


def _pool(subnet: ipaddress.IPv4Network, ip_range: str | None) -> Iterator[ipaddress.IPv4Address]:
    """The addresses containers are given, in order, lazily (a /8 has 16M): the subnet's hosts, or
    its --ip-range's addresses (the subnet's own network and broadcast addresses never)."""
    if not ip_range:
        yield from subnet.hosts()
        return
    pool = ipaddress.ip_network(ip_range)
    for i in range(pool.num_addresses):
        address = pool.network_address + i
        if address not in (subnet.network_address, subnet.broadcast_address):
            yield address  # type: ignore[misc]


def _holds(check: Callable[[], bool]) -> bool:
    """``check()``, a refusal counted as False."""
    try:
        return check()
    except InvalidSpec:
        return False


def _range_in(net: ipaddress.IPv4Network, text: str) -> ipaddress.IPv4Network:
    """docker's --ip-range: a network within ``net`` (host bits dropped, as docker's CIDR parse)."""
    try:
        pool = ipaddress.ip_network(text, strict=False)
    except ValueError as e:
        raise InvalidSpec(f"--ip-range {text!r}: {e}") from None
    if pool.version != 4 or not pool.subnet_of(net):  # type: ignore[arg-type]
        raise InvalidSpec(f"--ip-range {text}: no matching subnet for range {text} (--subnet {net})")
    return pool  # type: ignore[return-value]


def _aux_in(net: ipaddress.IPv4Network, gateway: str, aux: dict[str, str]) -> dict[str, str]:
    """docker's --aux-address NAME=IP: host addresses of ``net``, not its gateway, in canonical form."""
    out = {}
    for key, value in aux.items():
        try:
            address = ipaddress.IPv4Address(value) if isinstance(key, str) and isinstance(value, str) else None
        except ValueError:
            address = None
        if address is None or address not in net or address in (net.network_address, net.broadcast_address):
            raise InvalidSpec(f"--aux-address {key}={value}: no matching subnet for aux-address {value} "
                              f"(--subnet {net})")
        if str(address) == gateway:
            raise InvalidSpec(f"--aux-address {key}={value}: the network's gateway")
        out[key] = str(address)
    return out


def lost_networks(root: str, defined: list[str]) -> list[str]:
    """Networks of ``root`` whose definition was lost (the network root removed) while their
    rules and bridge stayed: named by their rules' comments (``network_tag``), none of them
    defined, no live container plugged into their bridge. Nothing else could find them again:
    only a create of the same name took them down."""
    from mrun.network import firewall
    from mrun.network.links import carries_containers

    lost = []
    for comment in sorted(firewall.comments()):
        name = comment.removeprefix("mrun-net:").split(":", 1)[0]
        if not comment.startswith("mrun-net:") or name in defined or network_tag(root, name) != comment:
            continue
        try:
            check_name(name)
        except InvalidSpec:
            continue
        if not carries_containers(bridge_name(root, name)):
            lost.append(name)
    return lost


def take_down(root: str, name: str) -> None:
    """A network's rules and bridge (its bridge the name derived for it, never the one a file
    says, and only if a bridge)."""
    from mrun.network import firewall, links, portguard

    firewall.remove(network_tag(root, name))
    portguard.sweep()  # (what its removed containers' ports left, and others')
    firewall.drop_table_if_unused()
    links.remove_bridge(bridge_name(root, name))


def host_routes(device: str = "", other_than: str = "") -> list[ipaddress.IPv4Network]:
    """Destinations routed on the host (not default): a new subnet must not shadow them. Those
    through ``device`` only, or through any other than ``other_than``."""
    out = []
    try:
        with open("/proc/net/route") as f:
            next(f)
            for line in f:
                fields = line.split()
                if (device and fields[0] != device) or (other_than and fields[0] == other_than):
                    continue
                dest, mask = int(fields[1], 16), int(fields[7], 16)
                if mask == 0:
                    continue
                net = ipaddress.ip_network(
                    (
                        ipaddress.IPv4Address(dest.to_bytes(4, "little")),
                        str(ipaddress.IPv4Address(mask.to_bytes(4, "little"))),
                    ),
                    strict=False,
                )
                out.append(net)
    except OSError:
        pass
    return out


# Addresses that are never a bridge's (RFC 6890): the host's loopback lives in its local routing
# table, which the overlap check with the host's routes does not read, and a bridge given
# 127.0.0.1/8 took the host's loopback traffic for that prefix; multicast and reserved ones are
# no interface's address.
SPECIAL_USE = ("0.0.0.0/8 (this network)", "127.0.0.0/8 (loopback)", "169.254.0.0/16 (link-local)",
               "224.0.0.0/4 (multicast)", "240.0.0.0/4 (reserved)")


def special_use(net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> str:
    """The special-use range ``net`` overlaps, named; "" for none."""
    return next((r for r in SPECIAL_USE if ipaddress.ip_network(r.split()[0]).overlaps(net)), "")


def _fill(fd: int, path: str, data: bytes) -> None:
    """A new lease or reservation's content, or none of it: one the disk could not take (full)
    is removed and named. Left empty, it counted as a container on the network (`network rm`
    refused) and its address went out only once every other had."""
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
    except OSError as e:
        os.unlink(path)
        name_the_file(e, path)
        raise


def _owner(path: str) -> dict[str, str]:
    """Whose a lease or port reservation is: {} for one cut short or damaged (no one's)."""
    return jsonio.load_object(path) or {}


def owner_alive(owner: dict[str, str]) -> bool:
    """Whether the container a lease or reservation names still has its state (alive, or
    stopped and not yet removed)."""
    root, cid = owner.get("root"), owner.get("container")
    return isinstance(root, str) and isinstance(cid, str) and bool(root and cid) and \
        os.path.exists(os.path.join(root, cid, "state.json"))

"""nftables rules in a table of mrun's own (``ip mrun``): written by the `nft` command, read
back over netlink.

Why nft: the kernel's own firewall, no daemon; one table that mrun creates and owns, so it
never edits anyone else's rules and removing a rule is deleting it by handle. Every rule carries
a comment naming its owner (``mrun-net:<network>`` or ``mrun-ctr:<state root hash>:<id>``),
which is how it is found again, after a crash too.

- masquerade: traffic from a network's subnet to anywhere else, and traffic from 127.0.0.0/8
  into its bridge (a port published on 127.0.0.1; the bridge has ``route_localnet=1``);
- a published port: DNAT in ``prerouting`` (from outside) and ``output`` (from this host).
"""

from __future__ import annotations

import os
import shutil
import subprocess

from mrun.errors import MrunError

TABLE = "ip mrun"
TABLE_NAME = TABLE.split()[1]
CHAINS = (  # numeric priorities: older nft accepts 'dstnat' for prerouting only (-100 is dstnat, 100 srcnat)
    ("prerouting", "type nat hook prerouting priority -100; policy accept;"),
    ("output", "type nat hook output priority -100; policy accept;"),
    ("postrouting", "type nat hook postrouting priority 100; policy accept;"),
)


def _nft() -> str:
    return shutil.which("nft") or "/usr/sbin/nft"  # root's PATH may lack /usr/sbin


def nft(script: str) -> str:
    try:
        r = subprocess.run([_nft(), "-f", "-"], input=script, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise MrunError("nft is missing: apt-get install -y nftables")
    if r.returncode:
        raise MrunError(f"nft: {r.stderr.strip().splitlines()[-1] if r.stderr.strip() else 'failed'}")
    return r.stdout


def _dump(what: str) -> list:
    """``get_rules`` or ``get_tables`` of the 'ip' family, read over netlink (pyroute2): no `nft`
    process per container start, and a rule's comment comes back as its user data."""
    from pyroute2 import NetlinkError
    from pyroute2.nftables.main import NFTables

    try:
        with NFTables(nfgen_family=2) as nl:  # NFPROTO_IPV4, the 'ip' family
            return getattr(nl, what)()
    except NetlinkError as e:
        raise MrunError(f"listing nftables {what.removeprefix('get_')}: {e.args[1] if len(e.args) > 1 else e}")


def _list() -> list[dict]:
    """mrun's rules as {"chain", "handle", "comment"}."""
    return [
        {"chain": r.get_attr("NFTA_RULE_CHAIN"), "handle": r.get_attr("NFTA_RULE_HANDLE"),
         "comment": r.get_attr("NFTA_RULE_USERDATA")}
        for r in _dump("get_rules")
        if r.get_attr("NFTA_RULE_TABLE") == TABLE_NAME
    ]


def _table_exists() -> bool:
    return any(t.get_attr("NFTA_TABLE_NAME") == TABLE_NAME for t in _dump("get_tables"))


def add_network(network: dict, record: str) -> None:
    """The table, its chains and the network's masquerade rules, unless already there.

    Checking takes a listing (3-4 ms); most starts skip it. The kernel numbers every version
    of the ruleset (its generation, bumped by any change to any table), so ``record`` keeps the
    generation at which these rules were last seen in place: while the generation is the same,
    nothing can have removed them. The record names the boot and the network namespace too."""
    before = _stamp()
    if before is not None and _read(record) == before:
        return
    tag = f"mrun-net:{network['name']}"
    added = not any(r.get("comment") == tag for r in _list())
    if added:
        subnet, bridge = network["subnet"], network["bridge"]
        nft(
            f"add table {TABLE}\n"
            + "".join(f"add chain {TABLE} {name} {{ {spec} }}\n" for name, spec in CHAINS)
            + f'add rule {TABLE} postrouting ip saddr {subnet} ip daddr != {subnet} masquerade comment "{tag}"\n'
            f'add rule {TABLE} postrouting ip saddr 127.0.0.0/8 oifname "{bridge}" masquerade comment "{tag}"\n'
        )
    after = _stamp()
    if before is not None and after is not None and after[-1] == before[-1] + int(added):
        _write(record, after)  # nobody else changed the ruleset meanwhile: what we saw is what there is


NLM_F_REQUEST = 1
NETLINK_NETFILTER, NFNL_SUBSYS_NFTABLES, NFT_MSG_NEWGEN, NFT_MSG_GETGEN, NFTA_GEN_ID = 12, 10, 15, 16, 1


def generation() -> int | None:
    """The nftables ruleset's generation number (NFT_MSG_GETGEN), or None if it cannot be read."""
    import socket
    import struct

    request = struct.pack("=IHHII", 20, (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETGEN, NLM_F_REQUEST, 1, 0)
    request += struct.pack("=BBH", socket.AF_UNSPEC, 0, 0)  # nfgenmsg: family, version, resource id
    try:
        with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_NETFILTER) as s:
            s.settimeout(1)
            s.send(request)
            answer = s.recv(4096)
    except OSError:
        return None
    if len(answer) < 20:
        return None
    length, kind = struct.unpack_from("=IH", answer)
    if kind != (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWGEN:
        return None
    offset = 20  # nlmsghdr, nfgenmsg; then the attributes
    while offset + 4 <= min(length, len(answer)):
        size, attr = struct.unpack_from("=HH", answer, offset)
        if size < 4:
            return None
        if attr & 0x3FFF == NFTA_GEN_ID and size >= 8:
            return struct.unpack_from(">I", answer, offset + 4)[0]
        offset += (size + 3) & ~3
    return None


def _stamp() -> tuple[str, int, int] | None:
    gen = generation()
    if gen is None:
        return None
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            boot = f.read().strip()
        netns = os.stat("/proc/self/ns/net").st_ino
    except OSError:
        return None
    return boot, netns, gen


def _read(record: str) -> tuple[str, int, int] | None:
    try:
        with open(record) as f:
            boot, netns, gen = f.read().split()
        return boot, int(netns), int(gen)
    except (OSError, ValueError):
        return None


def _write(record: str, stamp: tuple[str, int, int]) -> None:
    tmp = f"{record}.{os.getpid()}"
    try:
        with open(tmp, "w") as f:
            f.write(" ".join(str(part) for part in stamp))
        os.rename(tmp, record)
    except OSError:
        pass  # then the next start checks again


def publish(owner: str, host_ip: str, host_port: int, proto: str, ip: str, port: int) -> None:
    match = f"ip daddr {host_ip}" if host_ip else "fib daddr type local"
    rule = f'{match} {proto} dport {host_port} dnat to {ip}:{port} comment "{owner}"'
    nft(f"add rule {TABLE} prerouting {rule}\nadd rule {TABLE} output {rule}\n")


def remove(tag: str) -> int:
    """Delete every rule whose comment is ``tag``. -> how many."""
    rules = [r for r in _list() if r.get("comment") == tag]
    if rules:
        nft("".join(f"delete rule {TABLE} {r['chain']} handle {r['handle']}\n" for r in rules))
    return len(rules)


def drop_table_if_unused() -> None:
    """The table goes once no network has rules left in it."""
    if _table_exists() and not _list():
        nft(f"delete table {TABLE}\n")

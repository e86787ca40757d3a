"""nftables rules in a table of mrun's own (``ip mrun``): written by the `nft` command, read
back over netlink (nf_tables' own messages, spoken directly by ``netlink``).

Why nft: the kernel's own firewall, no daemon; one table that mrun creates and owns, so it
never edits anyone else's rules and removing a rule is deleting it by handle. Every rule carries
a comment naming its owner (``mrun-net:<network>[:<network root hash>]``, ``store.network_tag``, or
``mrun-ctr:<state root hash>:<id>``),
which is how it is found again, after a crash too.

- masquerade: traffic from a network's subnet to anywhere else, and traffic from 127.0.0.0/8
  into its bridge (a port published on 127.0.0.1; the bridge has ``route_localnet=1``);
- a published port: DNAT in ``prerouting`` (from outside; one on the loopback: from lo alone)
  and ``output`` (from this host);
- every network: ``forward`` drops what would cross from its bridge to another network's (docker's
  isolation of its networks from each other), but for a connection to a published port;
- an internal network (docker's ``--internal``): no masquerade, and ``forward`` drops what would
  cross between its bridge and any other interface (its containers reach each other and the
  host's own addresses, which are input, not forwarding);
- every network: ``guard`` (prerouting, before conntrack) drops what arrives on its bridge for
  127.0.0.0/8, which route_localnet would let the host take;
- a network that is not internal: ``inbound`` drops what the host would forward to its bridge
  from elsewhere but a published port's connections and the replies to its containers' own;
- every bridge port of a container's (a table of the 'bridge' family, ``bridge mrun``, shared by
  all networks): what it sends must come from its own MAC address, and be ARP or IPv4 from its
  own address (``PORTS``; ``portguard`` names each port's in the table's sets).
"""

from __future__ import annotations

import errno
import os
import shutil
import struct
import subprocess
from typing import TYPE_CHECKING

from mrun.errors import MrunError
from mrun.network import netlink as nl

if TYPE_CHECKING:
    from collections.abc import Callable

TABLE = "ip mrun"
TABLE_NAME = TABLE.split()[1]
CHAINS = (  # numeric priorities: older nft accepts 'dstnat' for prerouting only (-100 is dstnat, 100 srcnat)
    ("prerouting", "type nat hook prerouting priority -100; policy accept;"),
    ("output", "type nat hook output priority -100; policy accept;"),
    ("postrouting", "type nat hook postrouting priority 100; policy accept;"),
)
# the networks' isolation and an internal network's: it drops what its rules name, and accepts the rest
FORWARD = ("forward", "type filter hook forward priority 0; policy accept;")
# what arrives on a bridge as it came on the wire (raw priority: before conntrack and NAT)
GUARD = ("guard", "type filter hook prerouting priority -300; policy accept;")
# what the host would forward to a bridge from elsewhere: a published port's, or a reply
INBOUND = ("inbound", "type filter hook forward priority 0; policy accept;")
# Frames arriving on a bridge port that ``guarded`` names (a container's: ``portguard``) pass
# only as ARP or IPv4 from the MAC address and IPv4 address ``speakers`` pairs with that port.
# Ports by interface index, which the kernel never gives another link (until 2**31 have been
# made): what a removed port leaves holds nothing, and is swept later (``portguard``). Bridge
# priority -300: before anything else sees them. Made whole again wherever a chain lacks its
# rules (the sets keep their elements).
PORTS_TABLE = "bridge mrun"
PORTS = (f"add table {PORTS_TABLE}\n"
         f"add set {PORTS_TABLE} guarded {{ type iface_index; }}\n"
         f"add set {PORTS_TABLE} speakers {{ type iface_index . ether_addr . ipv4_addr; }}\n"
         f"add chain {PORTS_TABLE} ports {{ type filter hook prerouting priority -300; policy accept; }}\n"
         f"add chain {PORTS_TABLE} speaks\n"
         f"flush chain {PORTS_TABLE} ports\n"
         f"flush chain {PORTS_TABLE} speaks\n"
         f"add rule {PORTS_TABLE} ports iif @guarded jump speaks\n"
         f"add rule {PORTS_TABLE} speaks ether type arp iif . ether saddr . arp saddr ip @speakers "
         "iif . arp saddr ether . arp saddr ip @speakers accept\n"
         f"add rule {PORTS_TABLE} speaks ether type ip iif . ether saddr . ip saddr @speakers accept\n"
         f"add rule {PORTS_TABLE} speaks drop\n")
PORTS_RULES = {"ports": 1, "speaks": 3}
# the shape of network_rules (and PORTS), in the record of rules seen: a record of an older shape
# is checked again
RULES_SHAPE = "4"


def _nft() -> str:
    return shutil.which("nft") or "/usr/sbin/nft"  # root's PATH may lack /usr/sbin


def nft(script: str) -> str:
    try:
        r = subprocess.run([_nft(), "-f", "-"], input=script, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise MrunError("nft is missing: apt-get install -y nftables")
    if r.returncode:  # nft's error line, not the last: that one is a row of carets under the script's text
        lines = r.stderr.strip().splitlines()
        said = next((line.split(" Error: ", 1)[1] for line in lines if " Error: " in line), lines[-1] if lines else "")
        raise MrunError(f"nft: {said or 'failed'}")
    return r.stdout


NFNL_SUBSYS_NFTABLES = 10
NFT_MSG_GETTABLE, NFT_MSG_NEWRULE, NFT_MSG_GETRULE, NFT_MSG_NEWGEN, NFT_MSG_GETGEN = 1, 6, 7, 15, 16
NFT_MSG_NEWTABLE = 0
NFTA_TABLE_NAME, NFTA_GEN_ID = 1, 1
NFTA_RULE_TABLE, NFTA_RULE_CHAIN, NFTA_RULE_HANDLE, NFTA_RULE_EXPRESSIONS, NFTA_RULE_USERDATA = 1, 2, 3, 4, 7
# a "ct" expression's name attribute (NFTA_EXPR_NAME, 7 bytes: "ct" and its NUL) inside a rule's expressions
CT_EXPRESSION = b"\x07\x00\x01\x00ct\x00"
NFTNL_UDATA_RULE_COMMENT = 0  # libnftnl's type for a rule's comment in its user data
NFPROTO_IPV4, NFPROTO_BRIDGE = 2, 7  # the 'ip' and 'bridge' families


def nft_talk(message: int, flags: int, body: bytes = b"", family: int = NFPROTO_IPV4) -> list[tuple[int, bytes]]:
    """One nf_tables request of ``family`` (the 'ip' one) -> its replies' attributes (``netlink.nfnl``)."""
    return nl.nfnl(NFNL_SUBSYS_NFTABLES, message, flags, family, body)


def _comment(user_data: bytes | None) -> str | None:
    """The comment in a rule's user data: libnftnl's TLVs (a type byte, a length byte, the value)."""
    data = user_data or b""
    while len(data) >= 2:
        kind, length = data[0], data[1]
        if kind == NFTNL_UDATA_RULE_COMMENT:
            return data[2 : 2 + length].split(b"\0", 1)[0].decode(errors="replace")
        data = data[2 + length :]
    return None


def _list(family: int = NFPROTO_IPV4) -> list[dict]:
    """mrun's rules as {"chain", "handle", "comment", "ct"}: a dump of our table's rules only
    ("ct": whether the rule looks at the connection's state); of the 'ip' table, or ``family``'s."""
    try:
        replies = nft_talk(NFT_MSG_GETRULE, nl.NLM_F_DUMP, nl.name(NFTA_RULE_TABLE, TABLE_NAME), family)
    except OSError as e:
        if family != NFPROTO_IPV4 and e.errno == errno.ENOENT:
            return []  # (the 'ip' table's absence is looked for first, by _table_exists)
        raise MrunError(f"listing nftables rules: {e.strerror}")
    rules = []
    for kind, payload in replies:
        found = nl.attrs(payload)
        if kind != NFT_MSG_NEWRULE or nl.text(found.get(NFTA_RULE_TABLE)) != TABLE_NAME:
            continue
        handle = found.get(NFTA_RULE_HANDLE)
        rules.append({"chain": nl.text(found.get(NFTA_RULE_CHAIN)),
                      "handle": struct.unpack(">Q", handle[:8])[0] if handle and len(handle) >= 8 else None,
                      "comment": _comment(found.get(NFTA_RULE_USERDATA)),
                      "ct": CT_EXPRESSION in (found.get(NFTA_RULE_EXPRESSIONS) or b"")})
    return rules


def comments() -> set[str]:
    """The comments on mrun's rules (none if its table is not there)."""
    if not _table_exists():
        return set()
    return {r["comment"] for r in _list() if r.get("comment")}


def _table_exists(family: int = NFPROTO_IPV4) -> bool:
    try:
        replies = nft_talk(NFT_MSG_GETTABLE, nl.NLM_F_DUMP, family=family)
    except OSError as e:
        raise MrunError(f"listing nftables tables: {e.strerror}")
    return any(kind == NFT_MSG_NEWTABLE and nl.text(nl.attrs(payload).get(NFTA_TABLE_NAME)) == TABLE_NAME
               for kind, payload in replies)


def add_network(network: dict, tag: str, record: str) -> None:
    """The table, its chains and the network's rules (masquerade; an internal one's forward
    drops), unless already there.

    Checking takes a listing (3-4 ms); most starts skip it. The kernel numbers every version
    of the ruleset (its generation, bumped by any change to any table), so ``record`` keeps the
    generation at which these rules were last seen in place: while the generation is the same,
    nothing can have removed them. The record names the boot and the network namespace too."""
    before = _stamp()
    if before is not None and _read(record) == before:
        return
    ours = [r for r in _list() if r.get("comment") == tag]
    # an older mrun's isolation, which dropped connections to published ports too: made again
    stale = [] if network.get("internal") else [r for r in ours if r["chain"] == "forward" and not r.get("ct")]
    have = {r.get("chain") for r in ours if r not in stale}
    rules = [rule for rule in network_rules(network) if rule.split()[0] not in have]  # a chain's set, whole
    ports = _ports_guarded()
    added = bool(rules) or not ports  # one transaction: the generation moves by one
    if added:
        nft(f"add table {TABLE}\n" + "".join(f"add chain {TABLE} {name} {{ {spec} }}\n" for name, spec in
                                             (*CHAINS, FORWARD, GUARD, INBOUND))
            + "".join(f"delete rule {TABLE} forward handle {r['handle']}\n" for r in stale if r.get("handle"))
            + "".join(f'add rule {TABLE} {rule} comment "{tag}"\n' for rule in rules)
            + ("" if ports else PORTS))
    after = _stamp()
    if before is not None and after is not None and after[-1] == before[-1] + int(added):
        _write(record, after)  # nobody else changed the ruleset meanwhile: what we saw is what there is


def _ports_guarded() -> bool:
    """Whether the bridge table's chains hold their rules (PORTS_RULES), as PORTS made them."""
    counts: dict[str, int] = {}
    for rule in _list(NFPROTO_BRIDGE):
        counts[rule["chain"]] = counts.get(rule["chain"], 0) + 1
    return counts == PORTS_RULES


def network_rules(network: dict) -> list[str]:
    """A network's rules, each "CHAIN RULE". Its bridge forwards to no other network's bridge,
    as docker isolates its networks (its DOCKER-ISOLATION chains): a container reaches another
    network's only where it joins that network (`network connect`), never routed through the
    host. An internal network forwards to nothing at all, and is not masqueraded."""
    subnet, bridge = network["subnet"], network["bridge"]
    # The bridge has route_localnet=1 (a port published on 127.0.0.1 is DNAT'ed into it), which
    # lets the host take a packet for 127.0.0.0/8 arriving on it: a container with CAP_NET_RAW
    # reached every service bound to the host's loopback alone. None is ever sent there (the
    # replies of the host's connections come to the gateway's address, de-NAT'ed after this).
    guard = f'guard iifname "{bridge}" ip daddr 127.0.0.0/8 drop'
    if network.get("internal"):
        return [f'forward iifname "{bridge}" oifname != "{bridge}" drop',
                f'forward oifname "{bridge}" iifname != "{bridge}" drop', guard]
    # A connection to a port another network's container publishes (DNAT'ed on its way to it, the
    # replies too) is let through, as docker's own proxy passes it on: published is published.
    others = [f'forward iifname "{bridge}" oifname != "{bridge}" oifname "{pattern}" ct status & dnat == 0 drop'
              for pattern in ("mrb-*", "mrun0") if pattern != bridge]  # (store.bridge_name's names)
    # mrun turns forwarding on; a machine that routed the subnet through the host reached every
    # port of every container. From elsewhere, a bridge gets a published port's connections
    # (DNAT'ed) and the replies to its containers' own; nothing else (as docker 28's).
    inbound = (f'inbound oifname "{bridge}" iifname != "{bridge}" ct state & (established | related) == 0 '
               "ct status & dnat == 0 drop")
    from mrun.network.options import masqueraded

    out = [f"postrouting ip saddr {subnet} ip daddr != {subnet} masquerade"] if masqueraded(network) else []
    return [*out, f'postrouting ip saddr 127.0.0.0/8 oifname "{bridge}" masquerade', *others, guard, inbound]


def generation() -> int | None:
    """The nftables ruleset's generation number (NFT_MSG_GETGEN), or None if it cannot be read."""
    try:
        replies = nft_talk(NFT_MSG_GETGEN, nl.NLM_F_ACK)
    except OSError:
        return None
    for kind, payload in replies:
        raw = nl.attrs(payload).get(NFTA_GEN_ID) if kind == NFT_MSG_NEWGEN else None
        if raw and len(raw) >= 4:
            return struct.unpack(">I", raw[:4])[0]
    return None


def _stamp() -> tuple[str, int, int] | None:
    gen = generation()
    if gen is None:
        return None
    from mrun.kernel.proc import boot_id

    boot = boot_id()
    try:
        netns = os.stat("/proc/self/ns/net").st_ino
    except OSError:
        return None
    return (boot, netns, gen) if boot else None


def _read(record: str) -> tuple[str, int, int] | None:
    """The stamp last seen with the rules in place, if they were rules of today's shape."""
    try:
        with open(record) as f:
            boot, netns, gen, shape = f.read().split()
        return (boot, int(netns), int(gen)) if shape == RULES_SHAPE else None
    except (OSError, ValueError):
        return None


def _write(record: str, stamp: tuple[str, int, int]) -> None:
    tmp = f"{record}.{os.getpid()}"
    try:
        with open(tmp, "w") as f:
            f.write(" ".join(str(part) for part in (*stamp, RULES_SHAPE)))
        os.rename(tmp, record)
    except OSError:
        pass  # then the next start checks again


def ours_alone(record: str, change: Callable[[], None]) -> None:
    """``change()``, a change of mrun's own to the ruleset that leaves a network's rules as they
    were (a port's set elements): a record of them seen in place before it (``record``) still
    holds after it, if the generation moved by this change alone. Else the next start of a
    container on that network would take the listing (3-4 ms) again for nothing."""
    before = _stamp()
    change()
    after = _stamp()
    if before is not None and after is not None and after[-1] == before[-1] + 1 and _read(record) == before:
        _write(record, after)


def publish(owner: str, host_ip: str, host_port: int, proto: str, ip: str, port: int) -> None:
    """DNAT of a published port, for what comes in (prerouting) and what this host sends (output).
    One published on the loopback is for this host's own programs, whose packets come through
    output: in prerouting it takes only what comes in on lo. It took a packet for 127.0.0.1
    from anywhere, and DNAT comes before the routing that would drop it as a martian: any
    machine on the host's network reached the container through the host's MAC address."""
    match = f"ip daddr {host_ip}" if host_ip else "fib daddr type local"
    rule = f'{match} {proto} dport {host_port} dnat to {ip}:{port} comment "{owner}"'
    incoming = 'iifname "lo" ' if host_ip.startswith("127.") else ""
    nft(f"add rule {TABLE} prerouting {incoming}{rule}\nadd rule {TABLE} output {rule}\n")


def remove(tag: str) -> int:
    """Delete every rule whose comment is ``tag``. -> how many."""
    rules = [r for r in _list() if r.get("comment") == tag and r.get("handle") is not None]
    if rules:
        nft("".join(f"delete rule {TABLE} {r['chain']} handle {r['handle']}\n" for r in rules))
    return len(rules)


def drop_table_if_unused() -> None:
    """The tables go once no network has rules left in the 'ip' one (no container is on one then)."""
    ours = _table_exists()
    if ours and not _list():
        nft(f"delete table {TABLE}\n")
        ours = False
    if not ours and _table_exists(NFPROTO_BRIDGE):
        nft(f"delete table {PORTS_TABLE}\n")

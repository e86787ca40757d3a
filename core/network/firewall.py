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

import shutil
import subprocess

from mrun.errors import MrunError

TABLE = "ip mrun"
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


def _list() -> list[dict]:
    """mrun's rules as {"chain", "handle", "comment"}, read over netlink (pyroute2): no `nft`
    process per container start, and the comment comes back as the rule's user data."""
    from pyroute2 import NetlinkError
    from pyroute2.nftables.main import NFTables

    try:
        with NFTables(nfgen_family=2) as nl:  # NFPROTO_IPV4, the 'ip' family
            found = nl.get_rules()
    except NetlinkError as e:
        raise MrunError(f"listing nftables rules: {e.args[1] if len(e.args) > 1 else e}")
    table = TABLE.split()[1]
    return [
        {"chain": r.get_attr("NFTA_RULE_CHAIN"), "handle": r.get_attr("NFTA_RULE_HANDLE"),
         "comment": r.get_attr("NFTA_RULE_USERDATA")}
        for r in found
        if r.get_attr("NFTA_RULE_TABLE") == table
    ]


def _table_exists() -> bool:
    from pyroute2.nftables.main import NFTables

    table = TABLE.split()[1]
    with NFTables(nfgen_family=2) as nl:
        return any(t.get_attr("NFTA_TABLE_NAME") == table for t in nl.get_tables())


def add_network(network: dict) -> None:
    """The table, its chains and the network's masquerade rules, unless already there: one
    listing per container start, and one script only the first time."""
    tag = f"mrun-net:{network['name']}"
    if any(r.get("comment") == tag for r in _list()):
        return
    subnet, bridge = network["subnet"], network["bridge"]
    nft(
        f"add table {TABLE}\n"
        + "".join(f"add chain {TABLE} {name} {{ {spec} }}\n" for name, spec in CHAINS)
        + f'add rule {TABLE} postrouting ip saddr {subnet} ip daddr != {subnet} masquerade comment "{tag}"\n'
        f'add rule {TABLE} postrouting ip saddr 127.0.0.0/8 oifname "{bridge}" masquerade comment "{tag}"\n'
    )


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

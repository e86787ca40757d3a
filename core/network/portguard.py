"""What a container may say on its bridge port: frames from its own MAC address, and ARP and
IPv4 from its own address (``firewall.PORTS``, the rules; here, each port's elements in their sets).

Why: a container with CAP_NET_RAW (docker's default) can send any frame. It answered ARP for a
neighbour's address or the gateway's, and the host sent it the neighbour's traffic (a published
port's), the neighbour its way out: a man in the middle of both; and it sent packets from any
address. docker, podman's and containerd's CNI bridges let it; libvirt's clean-traffic and
Calico's anti-spoofing do not, nor does mrun. A container given CAP_NET_ADMIN may change its
addresses (a VPN's, a router's): it is not held to them, nor is one told to forward (the
``net.ipv4.ip_forward`` sysctl), whose packets carry others' addresses.

A port is named by its interface index, which the kernel gives no other link until 2**31 have
been made: what a removed container (or a killed run) leaves names no port, and holds nothing.
Removing an element costs the kernel an RCU grace period (12-15 ms here, as deleting a rule
does), so a container's removal leaves its elements, and the next ``hold`` takes them away once
``SWEEP_AT`` have gathered, as does ``sweep`` (`network rm`, `network prune`, `system prune`);
the table goes with the last network. The elements are written as one nfnetlink transaction
(``netlink.batch``): a fraction of a millisecond, where the `nft` command costs a process.
"""

from __future__ import annotations

import _socket
import errno
import struct
from typing import Any

from mrun.errors import MrunError
from mrun.network import firewall
from mrun.network import netlink as nl

NFT_MSG_NEWSETELEM, NFT_MSG_GETSETELEM, NFT_MSG_DELSETELEM = 12, 13, 14
NFTA_SET_ELEM_LIST_TABLE, NFTA_SET_ELEM_LIST_SET, NFTA_SET_ELEM_LIST_ELEMENTS = 1, 2, 3
NFTA_LIST_ELEM, NFTA_SET_ELEM_KEY, NFTA_DATA_VALUE = 1, 1, 1
GUARDED, SPEAKERS = "guarded", "speakers"  # (firewall.PORTS)
SWEEP_AT = 16  # elements of gone ports a hold leaves in place (one grace period per this many removals)
_INDEX = struct.Struct("=I")  # an iface_index as the kernel compares it: host order


def held(spec: dict[str, Any]) -> bool:
    """Whether a container of this config is held to its addresses: not if any of its
    capability sets holds CAP_NET_ADMIN, nor if its sysctls turn forwarding on."""
    process = spec.get("process") if isinstance(spec.get("process"), dict) else {}
    caps = process.get("capabilities") if isinstance(process.get("capabilities"), dict) else {}
    if any(isinstance(listed, list) and "CAP_NET_ADMIN" in listed for listed in caps.values()):
        return False
    linux = spec.get("linux") if isinstance(spec.get("linux"), dict) else {}
    sysctl = linux.get("sysctl") if isinstance(linux.get("sysctl"), dict) else {}
    return not any(_forwarding(str(key).replace("/", ".")) and str(value).strip() != "0"
                   for key, value in sysctl.items())


def _forwarding(key: str) -> bool:
    return key == "net.ipv4.ip_forward" or key.startswith("net.ipv4.conf.") and key.endswith(".forwarding")


def hold(veth: str, mac: str, ip: str) -> None:
    """The port ``veth`` (made, its container's end not yet up) may say MAC ``mac`` and
    address ``ip``, nothing else."""
    try:
        port = _INDEX.pack(_socket.if_nametoindex(veth))
    except OSError as e:
        raise MrunError(f"holding {veth} to its addresses: {e.strerror or 'no such link'}")
    speaker = port + bytes.fromhex(mac.replace(":", "")) + b"\0\0" + _socket.inet_aton(ip)
    _change(f"holding {veth} to its addresses", lambda gone: [
        *_removing(gone if max(map(len, gone)) >= SWEEP_AT else ([], [])),
        (NFT_MSG_NEWSETELEM, nl.NLM_F_CREATE, _elements(GUARDED, [port])),
        (NFT_MSG_NEWSETELEM, nl.NLM_F_CREATE, _elements(SPEAKERS, [speaker]))])


def sweep() -> None:
    """Every element of a port that is gone."""
    _change("sweeping the ports of removed containers", _removing)


def gone_ports() -> list[int]:
    """The interface indexes the sets name that are no link now: what removed ports left."""
    return sorted({_INDEX.unpack_from(key)[0] for key in _gone(GUARDED) + _gone(SPEAKERS)})


def _removing(gone: tuple[list[bytes], list[bytes]]) -> list[tuple[int, int, bytes]]:
    guarded, speakers = gone
    return ([(NFT_MSG_DELSETELEM, 0, _elements(GUARDED, guarded))] if guarded else []) + (
        [(NFT_MSG_DELSETELEM, 0, _elements(SPEAKERS, speakers))] if speakers else [])


def _change(doing: str, messages: Any) -> None:
    """One transaction of ``messages(gone)`` (``gone``: the elements of each set, guarded and
    speakers, whose port is gone), read and tried again once if another command changed the
    sets meanwhile (swept the same element: ENOENT)."""
    for attempt in (1, 2):
        try:
            batch = messages((_gone(GUARDED), _gone(SPEAKERS)))
            if batch:
                nl.batch(firewall.NFNL_SUBSYS_NFTABLES, [(firewall.NFNL_SUBSYS_NFTABLES << 8 | kind, flags, body)
                                                         for kind, flags, body in batch])
            return
        except OSError as e:
            if attempt == 1 and e.errno == errno.ENOENT:
                continue
            raise MrunError(f"{doing} (nftables table {firewall.PORTS_TABLE}): {e.strerror}")


def _gone(set_name: str) -> list[bytes]:
    """The keys in one of the sets whose port is no link now (none if the table is not there)."""
    gone = []
    for key in _keys(set_name):
        try:
            _socket.if_indextoname(_INDEX.unpack_from(key)[0])
        except OSError:
            gone.append(key)
    return gone


def _elements(set_name: str, keys: list[bytes]) -> bytes:
    """A set-element message's body: the bridge family, mrun's table, the set, its keys."""
    return (struct.pack("=BBH", firewall.NFPROTO_BRIDGE, 0, 0)
            + nl.name(NFTA_SET_ELEM_LIST_TABLE, firewall.TABLE_NAME) + nl.name(NFTA_SET_ELEM_LIST_SET, set_name)
            + nl.nested(NFTA_SET_ELEM_LIST_ELEMENTS, *(nl.nested(NFTA_LIST_ELEM, nl.nested(
                NFTA_SET_ELEM_KEY, nl.attr(NFTA_DATA_VALUE, key))) for key in keys)))


def _keys(set_name: str) -> list[bytes]:
    """The keys in one of the table's sets (none if the table or set is not there)."""
    try:
        replies = firewall.nft_talk(NFT_MSG_GETSETELEM, nl.NLM_F_DUMP,
                                    nl.name(NFTA_SET_ELEM_LIST_TABLE, firewall.TABLE_NAME)
                                    + nl.name(NFTA_SET_ELEM_LIST_SET, set_name), firewall.NFPROTO_BRIDGE)
    except OSError as e:
        if e.errno == errno.ENOENT:
            return []
        raise
    keys = []
    for kind, payload in replies:
        if kind != NFT_MSG_NEWSETELEM:
            continue
        for list_kind, element in nl.each(nl.attrs(payload).get(NFTA_SET_ELEM_LIST_ELEMENTS) or b""):
            key = nl.attrs(nl.attrs(element).get(NFTA_SET_ELEM_KEY) or b"").get(NFTA_DATA_VALUE)
            if list_kind == NFTA_LIST_ELEM and key and len(key) >= _INDEX.size:
                keys.append(key)
    return keys

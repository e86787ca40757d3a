"""The few rtnetlink requests mrun makes (rtnetlink(7)), spoken directly (``netlink``): a
network's bridge and its gateway address, a veth pair per container, and the namespace id that
tells a dying container's pair from a live one.

pyroute2's IPRoute cost 2-6 ms to open and about 1 ms per request here (an asyncio loop per
call), several times what the kernel takes, and ~14 MiB in every process that imported it.
"""

from __future__ import annotations

import _socket
import contextlib
import os
import struct

from mrun.network import netlink as nl

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator

RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK, RTM_NEWADDR, RTM_GETADDR, RTM_GETNSID = 16, 17, 18, 20, 22, 90
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_MASTER, IFLA_LINKINFO = 1, 3, 4, 10, 18
IFLA_NET_NS_FD, IFLA_LINK_NETNSID = 28, 37
IFLA_INFO_KIND, IFLA_INFO_DATA, VETH_INFO_PEER = 1, 2, 1
IFA_ADDRESS, IFA_LOCAL, IFA_FLAGS = 1, 2, 8
NETNSA_NSID = 1
IFF_UP = 0x1
AF_INET = 2

IFINFO = struct.Struct("=BxHiII")  # ifinfomsg: family, type, index, flags, change
IFADDR = struct.Struct("=BBBBi")  # ifaddrmsg: family, prefix length, flags, scope, index


def request(kind: int, flags: int, body: bytes) -> list[tuple[int, bytes]]:
    """One rtnetlink request, acknowledged (``netlink.talk``)."""
    return nl.talk(nl.NETLINK_ROUTE, kind, nl.NLM_F_ACK | flags, body)


def _mtu(mtu: int) -> bytes:
    return nl.attr(IFLA_MTU, struct.pack("=I", mtu)) if mtu else b""


def add_veth(name: str, master: int, peer: str, peer_netns_fd: int, peer_address: bytes = b"", mtu: int = 0) -> None:
    """``ip link add NAME master MASTER up [mtu MTU] type veth peer name PEER netns FD [address MAC]
    [mtu MTU]``."""
    peer_info = (IFINFO.pack(0, 0, 0, 0, 0) + nl.name(IFLA_IFNAME, peer)
                 + nl.attr(IFLA_NET_NS_FD, struct.pack("=I", peer_netns_fd))
                 + (nl.attr(IFLA_ADDRESS, peer_address) if peer_address else b"") + _mtu(mtu))
    info = nl.attr(IFLA_INFO_KIND, b"veth\0") + nl.attr(IFLA_INFO_DATA, nl.attr(VETH_INFO_PEER, peer_info))
    body = (IFINFO.pack(0, 0, 0, IFF_UP, IFF_UP) + nl.name(IFLA_IFNAME, name) + _mtu(mtu)
            + nl.attr(IFLA_MASTER, struct.pack("=I", master)) + nl.attr(IFLA_LINKINFO, info))
    request(RTM_NEWLINK, nl.NLM_F_CREATE | nl.NLM_F_EXCL, body)


def add_bridge(name: str) -> None:
    """``ip link add NAME type bridge``; OSError EEXIST if a link has that name."""
    kind = nl.attr(IFLA_LINKINFO, nl.attr(IFLA_INFO_KIND, b"bridge\0"))
    body = IFINFO.pack(0, 0, 0, 0, 0) + nl.name(IFLA_IFNAME, name) + kind
    request(RTM_NEWLINK, nl.NLM_F_CREATE | nl.NLM_F_EXCL, body)


def set_mtu(index: int, mtu: int) -> None:
    """``ip link set INDEX mtu MTU``."""
    request(RTM_NEWLINK, 0, IFINFO.pack(0, 0, index, 0, 0) + _mtu(mtu))


def add_ipv4(index: int, address: str, prefix_length: int) -> None:
    """``ip addr add ADDRESS/PREFIX dev INDEX``; OSError EEXIST if the link has it already."""
    add_address(index, AF_INET, _socket.inet_aton(address), prefix_length)


def add_address(index: int, family: int, raw: bytes, prefix_length: int) -> None:
    """``ip addr add ADDRESS/PREFIX dev INDEX``, of any family (``raw``: the address's bytes)."""
    body = IFADDR.pack(family, prefix_length, 0, 0, index) + nl.attr(IFA_LOCAL, raw) + nl.attr(IFA_ADDRESS, raw)
    request(RTM_NEWADDR, nl.NLM_F_CREATE | nl.NLM_F_EXCL, body)


def addresses(index: int) -> list[tuple[int, int, int, int, bytes]]:
    """``ip addr show dev INDEX``: each address as (family, prefix length, flags, scope, its bytes)."""
    found = []
    for mtype, payload in nl.talk(nl.NETLINK_ROUTE, RTM_GETADDR, nl.NLM_F_DUMP, IFADDR.pack(0, 0, 0, 0, 0)):
        if mtype != RTM_NEWADDR or len(payload) < IFADDR.size:
            continue
        family, prefix, flags, scope, where = IFADDR.unpack_from(payload)
        attributes = nl.attrs(payload[IFADDR.size:])
        if IFA_FLAGS in attributes:  # (the 32-bit flags; ifa_flags holds their low 8)
            flags = struct.unpack_from("=I", attributes[IFA_FLAGS])[0]
        raw = attributes.get(IFA_LOCAL) or attributes.get(IFA_ADDRESS)
        if where == index and raw:
            found.append((family, prefix, flags, scope, raw))
    return found


def move(index: int, name: str, netns_fd: int) -> None:
    """``ip link set INDEX netns FD name NAME``: moved and renamed in one request."""
    request(RTM_NEWLINK, 0, IFINFO.pack(0, 0, index, 0, 0) + nl.name(IFLA_IFNAME, name)
            + nl.attr(IFLA_NET_NS_FD, struct.pack("=I", netns_fd)))


def set_up(index: int) -> None:
    """``ip link set INDEX up``."""
    request(RTM_NEWLINK, 0, IFINFO.pack(0, 0, index, IFF_UP, IFF_UP))


def set_down(index: int) -> None:
    """``ip link set INDEX down``."""
    request(RTM_NEWLINK, 0, IFINFO.pack(0, 0, index, 0, IFF_UP))


@contextlib.contextmanager
def inside(netns: int) -> Iterator[None]:
    """This thread's requests go to the network namespace behind ``netns`` (a netlink socket is
    its opener's namespace's), and it comes back after, whatever happened."""
    from mrun.errors import MrunError
    from mrun.kernel import syscalls as sc  # os.setns is Python 3.12's

    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        sc.setns(netns, sc.CLONE_NEWNET)
        try:
            yield
        finally:
            try:
                sc.setns(own, sc.CLONE_NEWNET)
            except OSError as e:
                raise MrunError(f"returning to this process's network namespace: {e.strerror}")
    finally:
        os.close(own)


def delete_link(name: str) -> None:
    request(RTM_DELLINK, 0, IFINFO.pack(0, 0, 0, 0, 0) + nl.name(IFLA_IFNAME, name))


def _link(name: str) -> tuple[int, dict[int, bytes]] | None:
    """Link ``name``'s index and attributes; OSError ENODEV if there is none."""
    for mtype, payload in request(RTM_GETLINK, 0, IFINFO.pack(0, 0, 0, 0, 0) + nl.name(IFLA_IFNAME, name)):
        if mtype == RTM_NEWLINK and len(payload) >= IFINFO.size:
            return IFINFO.unpack_from(payload)[2], nl.attrs(payload[IFINFO.size :])
    return None


def link(name: str) -> tuple[int, str | None] | None:
    """Link ``name``'s index and kind ('bridge', 'veth'; None for a plain device), or None if
    there is no such link."""
    try:
        found = _link(name)
    except OSError as e:
        if e.errno == 19:  # ENODEV
            return None
        raise
    if not found:
        return None
    info = nl.attrs(found[1].get(IFLA_LINKINFO) or b"")
    return found[0], nl.text(info.get(IFLA_INFO_KIND))


def link_netnsid(name: str) -> int | None:
    """The id (in our namespace) of the namespace the other end of link ``name`` is in, or None
    where it has none (a link with both ends here). OSError ENODEV: no such link."""
    found = _link(name)
    raw = found[1].get(IFLA_LINK_NETNSID) if found else None
    nsid = struct.unpack("=i", raw[:4])[0] if raw and len(raw) >= 4 else -1
    return nsid if nsid >= 0 else None


def netnsid_resolves(nsid: int) -> bool:
    """Whether namespace id ``nsid`` still names a namespace: ENOENT once the namespace is being
    destroyed (its last holder gone)."""
    try:
        request(RTM_GETNSID, 0, struct.pack("=B3x", 0) + nl.attr(NETNSA_NSID, struct.pack("=i", nsid)))
    except OSError as e:
        if e.errno == 2:
            return False
        raise
    return True

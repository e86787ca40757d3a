"""The few rtnetlink requests a container's start and end make, spoken directly.

pyroute2's IPRoute costs 2-6 ms to open and about 1 ms per request here (an asyncio loop per
call), several times what the kernel takes; a veth pair per container start paid it three times.
This speaks the protocol (netlink(7), rtnetlink(7)) on a bare socket: one request, its answer
and its acknowledgement. The bridge and the firewall, set up once per network, stay pyroute2's.
"""

from __future__ import annotations

import _socket
import os
import struct

AF_NETLINK, NETLINK_ROUTE = 16, 0
NLMSG_ERROR = 2
NLM_F_REQUEST, NLM_F_ACK, NLM_F_EXCL, NLM_F_CREATE = 0x1, 0x4, 0x200, 0x400
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK, RTM_GETNSID = 16, 17, 18, 90
IFLA_IFNAME, IFLA_MASTER, IFLA_LINKINFO, IFLA_NET_NS_FD, IFLA_LINK_NETNSID = 3, 10, 18, 28, 37
IFLA_INFO_KIND, IFLA_INFO_DATA, VETH_INFO_PEER = 1, 2, 1
NETNSA_NSID = 1
IFF_UP = 0x1

_HEADER = struct.Struct("=IHHII")  # nlmsghdr: length, type, flags, sequence, port
_IFINFO = struct.Struct("=BxHiII")  # ifinfomsg: family, type, index, flags, change


def _attr(kind: int, data: bytes) -> bytes:
    raw = struct.pack("=HH", 4 + len(data), kind) + data
    return raw + b"\0" * (-len(raw) % 4)


def _name(kind: int, name: str) -> bytes:
    return _attr(kind, name.encode() + b"\0")


def _attrs(data: bytes) -> dict[int, bytes]:
    found = {}
    while len(data) >= 4:
        length, kind = struct.unpack_from("=HH", data)
        if length < 4:
            break
        found[kind & 0x3FFF] = data[4:length]
        data = data[(length + 3) & ~3 :]
    return found


def request(kind: int, flags: int, body: bytes) -> list[tuple[int, bytes]]:
    """Send one request and read until the kernel acknowledges it -> the replies before the
    acknowledgement as (type, payload). OSError with the kernel's errno if it refuses."""
    sock = _socket.socket(AF_NETLINK, _socket.SOCK_RAW | _socket.SOCK_CLOEXEC, NETLINK_ROUTE)
    try:
        sock.bind((0, 0))
        sock.send(_HEADER.pack(_HEADER.size + len(body), kind, NLM_F_REQUEST | NLM_F_ACK | flags, 1, 0) + body)
        replies = []
        while True:
            data = sock.recv(65536)
            while len(data) >= _HEADER.size:
                length, mtype, _flags, _seq, _port = _HEADER.unpack_from(data)
                payload = data[_HEADER.size : length]
                data = data[(length + 3) & ~3 :]
                if mtype == NLMSG_ERROR:
                    code = -struct.unpack_from("=i", payload)[0]
                    if code:
                        raise OSError(code, os.strerror(code))
                    return replies
                replies.append((mtype, payload))
    finally:
        sock.close()


def add_veth(name: str, master: int, peer: str, peer_netns_fd: int) -> None:
    """``ip link add NAME master MASTER up type veth peer name PEER netns FD``."""
    peer_info = (_IFINFO.pack(0, 0, 0, 0, 0) + _name(IFLA_IFNAME, peer)
                 + _attr(IFLA_NET_NS_FD, struct.pack("=I", peer_netns_fd)))
    info = _attr(IFLA_INFO_KIND, b"veth\0") + _attr(IFLA_INFO_DATA, _attr(VETH_INFO_PEER, peer_info))
    body = (_IFINFO.pack(0, 0, 0, IFF_UP, IFF_UP) + _name(IFLA_IFNAME, name)
            + _attr(IFLA_MASTER, struct.pack("=I", master)) + _attr(IFLA_LINKINFO, info))
    request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, body)


def delete_link(name: str) -> None:
    request(RTM_DELLINK, 0, _IFINFO.pack(0, 0, 0, 0, 0) + _name(IFLA_IFNAME, name))


def link_netnsid(name: str) -> int | None:
    """The id (in our namespace) of the namespace the other end of link ``name`` is in, or None
    where it has none (a link with both ends here). OSError ENODEV: no such link."""
    for mtype, payload in request(RTM_GETLINK, 0, _IFINFO.pack(0, 0, 0, 0, 0) + _name(IFLA_IFNAME, name)):
        if mtype == RTM_NEWLINK:
            raw = _attrs(payload[_IFINFO.size :]).get(IFLA_LINK_NETNSID)
            nsid = struct.unpack("=i", raw[:4])[0] if raw and len(raw) >= 4 else -1
            return nsid if nsid >= 0 else None
    return None


def netnsid_resolves(nsid: int) -> bool:
    """Whether namespace id ``nsid`` still names a namespace: ENOENT once the namespace is being
    destroyed (its last holder gone)."""
    try:
        request(RTM_GETNSID, 0, struct.pack("=B3x", 0) + _attr(NETNSA_NSID, struct.pack("=i", nsid)))
    except OSError as e:
        if e.errno == 2:
            return False
        raise
    return True

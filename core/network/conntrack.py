"""Connection-tracking entries that would send a flow to the wrong place (ctnetlink, spoken
directly on ``netlink``).

The kernel decides a flow's NAT once, at its first packet, and keeps the decision while packets
keep coming (a UDP flow's 30 s, renewed by each one: a syslog, statsd or DNS client on a fixed
port never lets it lapse). So:

- a removed container's flows kept going to its address: once another container took that
  address, it got what was sent to the port the first one published (and to it), even after a
  third published that port (moby#8795's kind; seen here). ``forget_address`` deletes every
  entry a container's address is an end of, before that address is given out again;
- a UDP flow that reached a host port before a container published it (no one listening) kept
  going to the host after the DNAT rule was in place. ``forget_port`` deletes the entries of
  such flows, the host's own (not NAT'ed), once the rule is in place.

Only the host's own table is read (each container's namespace has its own, gone with it), and
only these entries are deleted, by their original tuple as the kernel gave it.
"""

from __future__ import annotations

import _socket
import errno
import struct

from mrun.errors import MrunError
from mrun.network import netlink as nl

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

NFNL_SUBSYS_CTNETLINK = 1
IPCTNL_MSG_CT_NEW, IPCTNL_MSG_CT_GET, IPCTNL_MSG_CT_DELETE = 0, 1, 2
CTA_TUPLE_ORIG, CTA_TUPLE_REPLY, CTA_ZONE = 1, 2, 18
CTA_TUPLE_IP, CTA_TUPLE_PROTO = 1, 2
CTA_IP_V4_SRC, CTA_IP_V4_DST = 1, 2
CTA_PROTO_NUM, CTA_PROTO_DST_PORT = 1, 3
AF_INET = 2
PROTOCOLS = {"tcp": 6, "udp": 17}
LISTING = "/proc/net/nf_conntrack"


def forget_address(ip: str) -> int:
    """Delete every flow ``ip`` is an end of (as sent, or as the kernel's NAT made it). -> how many."""
    if not _mentioned(f"={ip} "):
        return 0
    address = _socket.inet_aton(ip)
    return _delete(lambda flow: address in (flow["orig_src"], flow["orig_dst"], flow["reply_src"],
                                            flow["reply_dst"]), f"the flows of {ip}")


def forget_port(proto: str, host_ip: str, port: int) -> int:
    """Delete the ``proto`` flows to host port ``port`` (on ``host_ip``, or any address) that the
    host took itself, not NAT'ed: made before the port was published. -> how many."""
    if not _mentioned(f"dport={port} "):
        return 0
    number, wanted = PROTOCOLS[proto], _socket.inet_aton(host_ip) if host_ip else None
    return _delete(lambda flow: flow["proto"] == number and flow["dport"] == port
                   and flow["reply_src"] == flow["orig_dst"] and wanted in (None, flow["orig_dst"]),
                   f"the {proto} flows to port {port}")


def _mentioned(text: str) -> bool:
    """Whether the kernel's listing of its flows holds ``text`` (or cannot be read): read before
    asking for the flows themselves. A dump over netlink takes each of the table's bucket locks
    in turn (10 ms for 262144 buckets here, however few flows), the listing none (0.7 ms)."""
    try:
        with open(LISTING, "rb") as f:
            return text.encode() in f.read()
    except OSError:  # no listing in this kernel (CONFIG_NF_CONNTRACK_PROCFS): ask it
        return True


def _delete(chosen: Callable[[dict], bool], what: str) -> int:
    deleted = 0
    try:
        for flow in _flows():
            if chosen(flow):
                try:
                    nl.nfnl(NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_DELETE, nl.NLM_F_ACK, AF_INET, flow["key"])
                    deleted += 1
                except FileNotFoundError:  # ended meanwhile
                    pass
    except OSError as e:
        if e.errno in (errno.EOPNOTSUPP, errno.EPROTONOSUPPORT, errno.ENOENT):  # no connection tracking here
            return deleted
        raise MrunError(f"deleting {what} from the connection-tracking table: {e.strerror}")
    return deleted


def _flows() -> list[dict]:
    """The host's IPv4 flows: each one's ends as sent and as replied, protocol, destination port,
    and ``key``, what deletes it (its original tuple and zone as the kernel gave them)."""
    flows = []
    for kind, payload in nl.nfnl(NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_GET, nl.NLM_F_DUMP, AF_INET):
        if kind != IPCTNL_MSG_CT_NEW:
            continue
        found = nl.attrs(payload)
        orig, reply = found.get(CTA_TUPLE_ORIG), found.get(CTA_TUPLE_REPLY)
        if not orig or not reply:
            continue
        (orig_src, orig_dst, proto, dport), (reply_src, reply_dst, _p, _d) = _tuple(orig), _tuple(reply)
        key = nl.nested(CTA_TUPLE_ORIG, orig)
        if CTA_ZONE in found:
            key += nl.attr(CTA_ZONE, found[CTA_ZONE])
        flows.append({"orig_src": orig_src, "orig_dst": orig_dst, "reply_src": reply_src, "reply_dst": reply_dst,
                      "proto": proto, "dport": dport, "key": key})
    return flows


def _tuple(raw: bytes) -> tuple[bytes, bytes, int, int]:
    """(source, destination, protocol, destination port) of one tuple."""
    found = nl.attrs(raw)
    ip, proto = nl.attrs(found.get(CTA_TUPLE_IP) or b""), nl.attrs(found.get(CTA_TUPLE_PROTO) or b"")
    number = proto.get(CTA_PROTO_NUM) or b"\0"
    port = proto.get(CTA_PROTO_DST_PORT) or b"\0\0"
    return (ip.get(CTA_IP_V4_SRC) or b"", ip.get(CTA_IP_V4_DST) or b"", number[0],
            struct.unpack(">H", port[:2])[0] if len(port) >= 2 else 0)

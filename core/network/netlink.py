"""Netlink spoken on a bare socket (netlink(7)): one request, the kernel's replies, and its
acknowledgement or end-of-dump; or an nfnetlink batch, applied whole or not at all. ``rtnl``
(links, addresses, namespace ids), ``firewall`` (nftables reads) and ``portguard`` (set
elements) build their few requests on it.

A library (pyroute2) would do the same with more, but its import alone is ~14 MiB of heap in
the warm template, which every fork of the template copies page tables for and every exit
tears down again (0.7 ms a fork here).
"""

from __future__ import annotations

import _socket
import os
import struct
import time

AF_NETLINK, NETLINK_ROUTE, NETLINK_NETFILTER = 16, 0, 12
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_ACK, NLM_F_DUMP, NLM_F_DUMP_INTR = 0x1, 0x4, 0x300, 0x10
NLM_F_EXCL, NLM_F_CREATE = 0x200, 0x400
NLA_F_NESTED = 0x8000
NFNL_MSG_BATCH_BEGIN, NFNL_MSG_BATCH_END = 0x10, 0x11
DUMP_ATTEMPTS = 30  # an nfnetlink dump another change interrupted is read again, this many times at most
TIMEOUT = 5.0  # seconds: the kernel answers at once; this only keeps a wedged call from hanging

HEADER = struct.Struct("=IHHII")  # nlmsghdr: length, type, flags, sequence, port
ATTR = struct.Struct("=HH")  # nlattr: length, type


def attr(kind: int, data: bytes) -> bytes:
    raw = ATTR.pack(ATTR.size + len(data), kind) + data
    return raw + b"\0" * (-len(raw) % 4)


def nested(kind: int, *parts: bytes) -> bytes:
    return attr(kind | NLA_F_NESTED, b"".join(parts))


def each(data: bytes) -> list[tuple[int, bytes]]:
    """The attributes in ``data`` in order, as (type, value): a list may repeat a type."""
    found = []
    while len(data) >= ATTR.size:
        length, kind = ATTR.unpack_from(data)
        if length < ATTR.size:
            break
        found.append((kind & 0x3FFF, data[ATTR.size : length]))
        data = data[(length + 3) & ~3 :]
    return found


def name(kind: int, text: str) -> bytes:
    return attr(kind, text.encode() + b"\0")


def attrs(data: bytes) -> dict[int, bytes]:
    """The attributes in ``data`` by type (the nested and byte-order flags masked off)."""
    return dict(each(data))


def text(raw: bytes | None) -> str | None:
    """A NUL-terminated string attribute."""
    return None if raw is None else raw.split(b"\0", 1)[0].decode(errors="replace")


def _socket_for(protocol: int) -> _socket.socket:
    sock = _socket.socket(AF_NETLINK, _socket.SOCK_RAW | _socket.SOCK_CLOEXEC, protocol)
    try:
        sock.settimeout(TIMEOUT)
        sock.bind((0, 0))
    except OSError:
        sock.close()
        raise
    return sock


def _answers(sock: _socket.socket) -> list[tuple[int, int, int, bytes]]:
    """The messages of the kernel's next datagram, each (type, flags, sequence, payload)."""
    try:
        data = sock.recv(1 << 16)
    except TimeoutError:  # raised without an errno: every caller reports strerror
        raise OSError(110, f"no answer from the kernel in {TIMEOUT:.0f} s") from None  # ETIMEDOUT
    if not data:
        raise OSError(5, os.strerror(5))  # EIO: the kernel closed on us
    found = []
    while len(data) >= HEADER.size:
        length, mtype, mflags, seq, _port = HEADER.unpack_from(data)
        if length < HEADER.size:
            raise OSError(5, "a malformed netlink message")
        found.append((mtype, mflags, seq, data[HEADER.size : length]))
        data = data[(length + 3) & ~3 :]
    return found


def _code(payload: bytes, short: int) -> None:
    """An NLMSG_ERROR's or NLMSG_DONE's errno, raised if any (``short``: one too short to say)."""
    code = -struct.unpack_from("=i", payload)[0] if len(payload) >= 4 else short
    if code:
        raise OSError(code, os.strerror(code))


def talk(protocol: int, kind: int, flags: int, body: bytes) -> list[tuple[int, bytes]]:
    """Send one request; -> the replies before the acknowledgement or the end of the dump, as
    (type, payload). OSError with the kernel's errno if it refuses; EINTR if a dump was
    interrupted by a change (NLM_F_DUMP_INTR: its parts may not agree), for the caller to retry.
    ``flags`` should hold NLM_F_ACK or NLM_F_DUMP, or the call waits for an end that never comes."""
    sock = _socket_for(protocol)
    try:
        sock.send(HEADER.pack(HEADER.size + len(body), kind, NLM_F_REQUEST | flags, 1, 0) + body)
        replies: list[tuple[int, bytes]] = []
        interrupted = False
        while True:
            for mtype, mflags, _seq, payload in _answers(sock):
                interrupted |= bool(mflags & NLM_F_DUMP_INTR)
                if mtype == NLMSG_ERROR:
                    _code(payload, 5)
                    return replies
                if mtype == NLMSG_DONE:
                    _code(payload, 0)
                    if interrupted:
                        raise OSError(4, "the dump was interrupted by a change")
                    return replies
                replies.append((mtype, payload))
    finally:
        sock.close()


def nfnl(subsystem: int, message: int, flags: int, family: int, body: bytes = b"") -> list[tuple[int, bytes]]:
    """One nfnetlink request of ``subsystem`` (nf_tables, conntrack) for ``family`` -> each reply
    as (its message, its attributes after nfgenmsg). A dump spans several of the kernel's passes,
    and a change between them (anyone's rule, another flow) marks it interrupted: 1 in 6 of
    nf_tables' under steady churn here. It is read again until whole; a pause lets a burst of
    changes pass."""
    header = struct.pack("=BBH", family, 0, 0)  # nfgenmsg: family, version, resource id
    attempt = 0
    while True:
        try:
            replies = talk(NETLINK_NETFILTER, subsystem << 8 | message, flags, header + body)
            return [(mtype & 0xFF, payload[4:]) for mtype, payload in replies]
        except InterruptedError:
            attempt += 1
            if attempt == DUMP_ATTEMPTS:
                raise
            if attempt > 2:
                time.sleep(0.001 * (attempt - 1))


def batch(subsystem: int, messages: list[tuple[int, int, bytes]]) -> None:
    """An nfnetlink transaction: ``messages`` (type, flags, body), applied all or none. The
    kernel runs a batch within the send, so every answer is waiting once it returns; each
    message asks for its acknowledgement. OSError with the kernel's errno if it refuses one
    (and so all)."""
    resource = struct.pack("=BBH", 0, 0, _socket.htons(subsystem))  # nfgenmsg: AF_UNSPEC, v0, res_id
    last = len(messages) + 2
    parts = [HEADER.pack(HEADER.size + len(resource), NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, 1, 0) + resource]
    for seq, (kind, flags, body) in enumerate(messages, 2):
        parts.append(HEADER.pack(HEADER.size + len(body), kind, NLM_F_REQUEST | NLM_F_ACK | flags, seq, 0) + body)
    parts.append(HEADER.pack(HEADER.size + len(resource), NFNL_MSG_BATCH_END, NLM_F_REQUEST, last, 0) + resource)
    sock = _socket_for(NETLINK_NETFILTER)
    try:
        sock.send(b"".join(parts))
        waiting = set(range(2, last))
        while waiting:
            for mtype, _flags, seq, payload in _answers(sock):
                if mtype == NLMSG_ERROR:
                    _code(payload, 5)
                    waiting.discard(seq)
    finally:
        sock.close()

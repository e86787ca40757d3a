"""Descriptors passed over unix sockets (SCM_RIGHTS), a stream read to an exact length and a
descriptor written whole: what the shim's fork helper and its workers, the pristine copy, the warm
template, a console's pty hand-over and the image writers (layers, logs, archives) share. Pure
Python on the bare ``_socket`` (no ``array``, no ``socket``): the pristine copy and the create path
import it. (``warm.client``, which every Python launcher imports, keeps its own two lines of each,
to import nothing more of mrun's than ``jsonio``.)"""

from __future__ import annotations

import _socket
import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_INT = 4  # bytes of a C int, a descriptor's size in SCM_RIGHTS on Linux


def bind_private(sock: Any, path: str) -> None:
    """A unix socket bound at ``path`` with mode 0600 from its first instant (the mode the kernel
    checks on connect: root's alone), never a moment anyone's under a looser umask."""
    old = os.umask(0o177)
    try:
        sock.bind(path)
    finally:
        os.umask(old)


def peer_uid(sock: Any) -> int:
    """The uid of the process at the other end of a unix socket (SO_PEERCRED: the kernel's word,
    which the peer cannot forge)."""
    raw = sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, 12)  # struct ucred: pid, uid, gid
    return int.from_bytes(raw[4:8], sys.byteorder, signed=True)


def rights(fds: list[int]) -> list[tuple[int, int, bytes]]:
    """The ancillary data that sends ``fds`` with a message: none for no descriptor."""
    data = b"".join(fd.to_bytes(_INT, sys.byteorder, signed=True) for fd in fds)
    return [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, data)] if fds else []


def space(count: int) -> int:
    """The ancillary buffer ``recvmsg`` needs for up to ``count`` descriptors."""
    return _socket.CMSG_SPACE(count * _INT)


def received(ancdata: list[tuple[int, int, bytes]]) -> list[int]:
    """The descriptors in what ``recvmsg`` returned (a partial one, cut short, is none)."""
    fds: list[int] = []
    for level, kind, data in ancdata:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
            whole = len(data) - len(data) % _INT
            fds += [int.from_bytes(data[i : i + _INT], sys.byteorder, signed=True) for i in range(0, whole, _INT)]
    return fds


def read_exact(source: Any, size: int, have: bytes = b"") -> bytes | None:
    """``size`` bytes from a stream socket, or from a descriptor (a pipe's, given as a number),
    ``have`` (already read) first; None at its end."""
    read = (lambda n: os.read(source, n)) if isinstance(source, int) else source.recv
    buf = bytearray(have)
    while len(buf) < size:
        chunk = read(min(size - len(buf), 1 << 20))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def write_all(fd: int, data: bytes) -> None:
    """All of ``data`` to ``fd``: a pipe or a full socket buffer takes part of a write."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]

"""Terminals: a pty made inside the container, its master sent over ``--console-socket``."""

from __future__ import annotations

import array
import fcntl
import os
import socket
import struct
import termios


def connect(path: str) -> socket.socket:
    """Connect on the host, before pivot_root hides the socket's path."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError as e:
        sock.close()
        raise OSError(e.errno, f"--console-socket {path}: {e.strerror}")
    return sock


def make_controlling_pty(sock: socket.socket, size: dict[str, int] | None) -> None:
    """Open a pty in the container's devpts, send the master, make the slave our stdio."""
    master, slave = os.openpty()
    if size and size.get("height") and size.get("width"):
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", size["height"], size["width"], 0, 0))
    name = os.ttyname(slave)
    sock.sendmsg([name.encode()], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [master]))])
    sock.close()
    os.close(master)
    fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
    for fd in (0, 1, 2):
        os.dup2(slave, fd)
    if slave > 2:
        os.close(slave)


def receive_fd(sock: socket.socket) -> int:
    """The other side: take the pty master a container sent."""
    fds = array.array("i")
    _, ancdata, _, _ = sock.recvmsg(4096, socket.CMSG_SPACE(fds.itemsize))
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - (len(data) % fds.itemsize)])
    if not fds:
        raise OSError("no file descriptor received on the console socket")
    return fds[0]

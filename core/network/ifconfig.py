"""IPv4 interface set-up through the classic ioctls (what ``ifconfig`` and ``route`` use):
the container's end of its veth pair configured from inside its network namespace (its IPv6
off, lo and eth0 up, eth0's address, the default route through the bridge), and an interface's
address read.

Ioctls on an AF_INET datagram socket, not netlink, because a socket keeps its namespace alive
while it exists, and a netlink socket exists one RCU grace period past its close (the kernel
frees it with call_rcu). A datagram socket that was never bound is freed at close. So once the
container's processes are gone its namespace is gone too, and the kernel removes the veth pair
with it: nothing of ours holds it (see ``links.remove_veth``).
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import socket
import struct

from mrun.errors import MrunError
from mrun.kernel import syscalls as sc

SIOCADDRT, SIOCGIFADDR = 0x890B, 0x8915
SIOCSIFADDR, SIOCSIFNETMASK = 0x8916, 0x891C
RTF_UP, RTF_GATEWAY = 0x1, 0x2
IFREQ_SIZE = 40  # struct ifreq on 64-bit; the kernel reads no more than its own size


class _RtEntry(ctypes.Structure):
    """struct rtentry (linux/route.h), for SIOCADDRT; its pointers make the layout per-ABI."""

    _fields_ = [
        ("rt_pad1", ctypes.c_ulong),
        ("rt_dst", ctypes.c_ubyte * 16),  # struct sockaddr; c_char would stop at the first NUL
        ("rt_gateway", ctypes.c_ubyte * 16),
        ("rt_genmask", ctypes.c_ubyte * 16),
        ("rt_flags", ctypes.c_ushort),
        ("rt_pad2", ctypes.c_short),
        ("rt_pad3", ctypes.c_ulong),
        ("rt_pad4", ctypes.c_void_p),
        ("rt_metric", ctypes.c_short),
        ("rt_dev", ctypes.c_char_p),
        ("rt_mtu", ctypes.c_ulong),
        ("rt_window", ctypes.c_ulong),
        ("rt_irtt", ctypes.c_ushort),
    ]


def _sockaddr_in(address: str) -> bytes:
    return struct.pack("=H2x4s8x", socket.AF_INET, socket.inet_aton(address))


def _sockaddr_field(address: str) -> ctypes.Array:
    return (ctypes.c_ubyte * 16).from_buffer_copy(_sockaddr_in(address))


def _ifreq(name: str, payload: bytes) -> bytes:
    return name.encode().ljust(16, b"\0") + payload.ljust(IFREQ_SIZE - 16, b"\0")


def _up(sock: socket.socket, name: str) -> None:
    sc.interface_up(sock.fileno(), name)


def _netmask(prefix: int) -> str:
    return socket.inet_ntoa(struct.pack("!I", (0xFFFFFFFF << (32 - prefix)) & 0xFFFFFFFF))


def address(name: str) -> str:
    """The interface's (primary) IPv4 address in this namespace, or "" if it has none or is absent."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        try:
            answer = fcntl.ioctl(sock, SIOCGIFADDR, _ifreq(name, b""))
        except OSError:
            return ""
    return socket.inet_ntoa(answer[20:24])  # ifr_addr: family, port, then the address


def _socket_in(netns: int, ipv6_off: str = "") -> socket.socket:
    """A datagram socket of the namespace behind ``netns``. This thread joins it only to open
    the socket and comes straight back; the socket keeps talking to that namespace. There, the
    interface ``ipv6_off`` (if named) is made to speak no IPv6 (``no_ipv6``)."""
    from mrun.network.rtnl import inside

    with inside(netns):
        if ipv6_off:
            no_ipv6(ipv6_off)
        return socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)


def no_ipv6(device: str) -> None:
    """``device`` of this thread's network namespace (/proc/sys/net is its opener's) speaks no
    IPv6: mrun's networks are IPv4 ones, and an interface left to IPv6 takes whatever router
    advertisement a container with CAP_NET_RAW sends onto the bridge: an address, and a default
    route through that container (CVE-2020-13401's kind). As docker's on a network without IPv6.
    A kernel without IPv6 has no such setting, and nothing to turn off."""
    try:
        with open(f"/proc/sys/net/ipv6/conf/{device}/disable_ipv6", "w") as f:
            f.write("1")
    except FileNotFoundError:
        if os.path.isdir("/proc/sys/net/ipv6/conf/all"):
            raise MrunError(f"turning IPv6 off on {device}: the interface is gone") from None


def configure(netns: int, ip: str, prefix: int, gateway: str, device: str = "eth0") -> None:
    """``netns``: a descriptor of the container's network namespace; ``gateway``: its default
    route ("": none)."""
    step = f"IPv6 off on {device}"
    try:
        sock = _socket_in(netns, ipv6_off=device)
    except OSError as e:
        raise MrunError(f"configuring the container's network ({step}): {e.strerror}")
    step = "lo up"
    try:
        with sock:
            _up(sock, "lo")
            step = f"address {ip}/{prefix} on {device}"
            fcntl.ioctl(sock, SIOCSIFADDR, _ifreq(device, _sockaddr_in(ip)))
            fcntl.ioctl(sock, SIOCSIFNETMASK, _ifreq(device, _sockaddr_in(_netmask(prefix))))
            step = f"{device} up"
            _up(sock, device)
            if not gateway:
                return
            step = f"default route via {gateway}"
            _add_default_route(sock, gateway, device)
    except OSError as e:
        raise MrunError(f"configuring the container's network ({step}): {e.strerror}")


def _add_default_route(sock: socket.socket, gateway: str, device: str) -> None:
    route = _RtEntry(rt_dst=_sockaddr_field("0.0.0.0"), rt_gateway=_sockaddr_field(gateway),
                     rt_genmask=_sockaddr_field("0.0.0.0"), rt_flags=RTF_UP | RTF_GATEWAY, rt_dev=device.encode())
    fcntl.ioctl(sock, SIOCADDRT, bytes(route))


def default_route(pid: int, gateway: str, device: str) -> None:
    """The default route of the network namespace of ``pid`` through ``gateway`` on ``device``
    (its first network's, given to another it is on: `network disconnect` of the first). One
    there already stays (a disconnect finished again)."""
    import errno

    netns = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        with _socket_in(netns) as sock:
            _add_default_route(sock, gateway, device)
    except OSError as e:
        if e.errno != errno.EEXIST:
            raise MrunError(f"configuring the container's network (default route via {gateway}): {e.strerror}")
    finally:
        os.close(netns)

"""runtime-spec 1.2's ``linux.netDevices``: host network devices moved into a container's network
namespace, as runc 1.3 moves them. Each is taken down on the host, moved and renamed in one
request (so no name is ever taken twice), given back its permanent addresses of global scope (a
move between namespaces drops every address; host- and link-scope ones, and those the kernel
made, mean nothing in another namespace) and set up there (one that fails there is sent home
with its addresses, and left down). Nothing is moved back: a precreated namespace's owner keeps
the device; a namespace of the container's own takes it along when it goes (a physical device
returns to the host's first namespace, a virtual one ends).
"""

from __future__ import annotations

import os

from mrun.errors import InvalidSpec, MrunError
from mrun.network import rtnl

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

IFNAMSIZ = 16
IFA_F_PERMANENT, RT_SCOPE_UNIVERSE = 0x80, 0


def planned(linux: dict[str, Any], namespaces: dict[str, str]) -> dict[str, str]:
    """The devices to move, host name -> name in the container, checked before anything is made."""
    devices = linux.get("netDevices") or {}
    if not devices:
        return {}
    if "network" not in namespaces:
        raise InvalidSpec("linux.netDevices: the container has no network namespace of its own (it shares the "
                          "host's): there is nowhere to move a device to")
    moves: dict[str, str] = {}
    for host_name, device in devices.items():
        _check_name(host_name, f"linux.netDevices: {host_name!r}")
        inside = (device or {}).get("name") or host_name
        _check_name(inside, f"linux.netDevices.{host_name}.name: {inside!r}")
        if inside in moves.values():
            raise InvalidSpec(f"linux.netDevices.{host_name}.name: {inside!r} is another device's name in the "
                              "container already")
        moves[host_name] = inside
    return moves


def _check_name(name: str, where: str) -> None:
    """The kernel's rule for a device name (dev_valid_name)."""
    if not name or len(os.fsencode(name)) >= IFNAMSIZ or name in (".", "..") \
            or any(c in "/:" or c.isspace() for c in name):
        raise InvalidSpec(f"{where} is no network device's name (1 to {IFNAMSIZ - 1} bytes, no '/', ':' or space)")


def move_all(moves: dict[str, str], pid: int) -> None:
    """Each device into the network namespace of ``pid`` (the container's init)."""
    if not moves:
        return
    netns = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        there, here = os.fstat(netns), os.fstat(home)
        if (there.st_dev, there.st_ino) == (here.st_dev, here.st_ino):  # joined by a path to the host's
            raise MrunError("linux.netDevices: the container's network namespace is the host's: there is nowhere "
                            "to move a device to")
        for host_name, inside in moves.items():
            try:
                _move(host_name, inside, netns, home)
            except OSError as e:
                why = "no such device on the host" if e.errno == 19 and not e.filename else e.strerror
                if e.errno == 17:  # EEXIST
                    why = f"the container's namespace has a device named {inside!r} already"
                raise MrunError(f"linux.netDevices.{host_name}: cannot move it into the container: {why}") from None
    finally:
        os.close(netns)
        os.close(home)


def _move(host_name: str, inside: str, netns: int, home: int) -> None:
    """One device. A name the namespace has already is refused before the move: the kernel
    would move the device under its own name and only then refuse the rename, leaving it there.
    A failure once it is there sends it home (with its addresses) before it is reported."""
    found = rtnl.link(host_name)
    if found is None:
        raise OSError(19, os.strerror(19))
    with rtnl.inside(netns):
        if rtnl.link(inside) is not None:
            raise OSError(17, os.strerror(17))
    index = found[0]
    rtnl.set_down(index)  # runc's order: nothing on the host sees it change name or place while up
    addresses = _global_addresses(index)
    rtnl.move(index, inside, netns)
    failed, returned = None, False
    with rtnl.inside(netns):
        moved = rtnl.link(inside)
        if moved is None:
            raise OSError(19, os.strerror(19), inside)  # taken away meanwhile
        try:
            _readdress(moved[0], addresses)
            rtnl.set_up(moved[0])
        except OSError as e:
            failed = e
            try:
                rtnl.move(moved[0], host_name, home)
                returned = True
            except OSError:
                pass  # it goes with the container's namespace
    if failed is not None:
        back = rtnl.link(host_name) if returned else None
        if back is not None:
            try:
                _readdress(back[0], addresses)
            except OSError:
                pass
        raise failed


def _readdress(index: int, addresses: list[tuple[int, int, bytes]]) -> None:
    for family, prefix, raw in addresses:
        rtnl.add_address(index, family, raw, prefix)


def _global_addresses(index: int) -> list[tuple[int, int, bytes]]:
    """The device's permanent addresses of global scope, any family: (family, prefix, address)."""
    return [(family, prefix, raw) for family, prefix, flags, scope, raw in rtnl.addresses(index)
            if scope == RT_SCOPE_UNIVERSE and flags & IFA_F_PERMANENT]

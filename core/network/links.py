"""Netlink work through pyroute2: the bridge, a veth pair per container, and the container's
side configured from inside its network namespace.

pyroute2 takes about 0.3 s to import, so this module is imported only when a container joins
a bridge network. The container side is configured by a child forked into the namespace
(``setns``), because a netlink socket talks to the namespace it was opened in.
"""

from __future__ import annotations

import os

from mrun.errors import MrunError


def _ipr():  # noqa: ANN202 - pyroute2's IPRoute
    from pyroute2 import IPRoute

    return IPRoute()


def _sysctl(path: str, value: str) -> None:
    with open(f"/proc/sys/{path}", "w") as f:
        f.write(value)


def ensure_bridge(network: dict) -> None:
    """The network's bridge, with the gateway address, up; route_localnet so 127.0.0.1 ports reach it."""
    from pyroute2 import NetlinkError

    bridge, prefix = network["bridge"], int(network["subnet"].split("/")[1])
    with _ipr() as ipr:
        found = ipr.link_lookup(ifname=bridge)
        if not found:
            try:
                ipr.link("add", ifname=bridge, kind="bridge")
            except NetlinkError as e:
                if e.code != 17:  # EEXIST: another start made it just now
                    raise MrunError(f"network {network['name']}: creating bridge {bridge}: {e.args[1]}")
            found = ipr.link_lookup(ifname=bridge)
        index = found[0]
        addrs = {a.get_attr("IFA_ADDRESS") for a in ipr.get_addr(index=index, family=2)}
        if network["gateway"] not in addrs:
            try:
                ipr.addr("add", index=index, address=network["gateway"], prefixlen=prefix)
            except NetlinkError as e:
                if e.code != 17:
                    raise MrunError(f"network {network['name']}: address on {bridge}: {e.args[1]}")
        ipr.link("set", index=index, state="up")
    _sysctl(f"net/ipv4/conf/{bridge}/route_localnet", "1")
    _sysctl("net/ipv4/ip_forward", "1")  # outbound traffic is forwarded, then masqueraded


def remove_link(name: str) -> None:
    if not os.path.exists(f"/sys/class/net/{name}"):
        return
    from pyroute2 import NetlinkError

    with _ipr() as ipr:
        try:
            ipr.link("del", ifname=name)
        except NetlinkError as e:
            if e.code != 19:  # ENODEV: gone with its namespace meanwhile
                raise MrunError(f"removing {name}: {e.args[1]}")


def plug(network: dict, veth: str, pid: int, ip: str) -> None:
    """A veth pair: ``veth`` on the bridge, its peer as eth0 in the namespace of ``pid``."""
    from pyroute2 import NetlinkError

    peer = f"{veth[:11]}p"
    with _ipr() as ipr:
        bridge = ipr.link_lookup(ifname=network["bridge"])
        if not bridge:
            raise MrunError(f"network {network['name']}: bridge {network['bridge']} is gone")
        try:
            ipr.link("add", ifname=veth, kind="veth", peer={"ifname": peer, "net_ns_pid": pid})
        except NetlinkError as e:
            raise MrunError(f"network {network['name']}: veth {veth}: {e.args[1]}")
        index = ipr.link_lookup(ifname=veth)[0]
        ipr.link("set", index=index, master=bridge[0], state="up")
    _configure_inside(pid, peer, ip, int(network["subnet"].split("/")[1]), network["gateway"])


def _configure_inside(pid: int, peer: str, ip: str, prefix: int, gateway: str) -> None:
    from mrun.kernel.child import ChildFailed, answer_from_child

    def inside() -> bytes:  # in a child: setns would move this process into the container's network
        from mrun.kernel import syscalls as sc  # os.setns is Python 3.12's

        fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        sc.setns(fd, sc.CLONE_NEWNET)
        with _ipr() as ipr:
            lo = ipr.link_lookup(ifname="lo")[0]
            ipr.link("set", index=lo, state="up")
            index = ipr.link_lookup(ifname=peer)[0]
            ipr.link("set", index=index, ifname="eth0")
            ipr.addr("add", index=index, address=ip, prefixlen=prefix)
            ipr.link("set", index=index, state="up")
            ipr.route("add", dst="0.0.0.0/0", gateway=gateway, oif=index)
        return b""

    try:
        answer_from_child(inside)
    except ChildFailed as e:
        raise MrunError(f"configuring eth0 in the container: {e}")

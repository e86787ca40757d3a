"""Netlink work on the host's side: a network's bridge, and a veth pair per container whose peer
is made as eth0 right inside the container's network namespace, both as rtnetlink requests
(``rtnl``); ``ifconfig`` configures eth0 there with ioctls.
"""

from __future__ import annotations

import errno
import os
import time
from typing import TYPE_CHECKING

from mrun.errors import MrunError
from mrun.kernel import syscalls as sc
from mrun.network import ifconfig

if TYPE_CHECKING:
    from collections.abc import Callable

GONE_WAIT = 10.0  # seconds the kernel may take to remove a dying namespace's veth pair
# A namespace whose last process has just been reaped can resolve a little longer: the kernel
# drops its last references later (milliseconds here; longer while others are being torn down).
SETTLE_WAIT = 0.5


def _sysctl(path: str, value: str) -> None:
    with open(f"/proc/sys/{path}", "w") as f:
        f.write(value)


def ensure_bridge(network: dict) -> None:
    """The network's bridge, with the gateway address, up; route_localnet so 127.0.0.1 ports reach it.
    Each step tolerates another start having done it just now."""
    if _bridge_ready(network):
        return
    from mrun.network import rtnl
    from mrun.network.options import mtu_of

    name, bridge, prefix = network["name"], network["bridge"], int(network["subnet"].split("/")[1])
    mtu = mtu_of(network)
    try:
        found = rtnl.link(bridge)
        if found is None:
            try:
                rtnl.add_bridge(bridge)
            except OSError as e:
                if e.errno != errno.EEXIST:
                    raise MrunError(f"network {name}: creating bridge {bridge}: {e.strerror}")
            found = rtnl.link(bridge)  # ours, or another start's made just now
        if found is None or found[1] != "bridge":
            raise MrunError(f"network {name}: {bridge} is {'gone' if found is None else 'a link but not a bridge'}")
        index = found[0]
        try:
            rtnl.add_ipv4(index, network["gateway"], prefix)
        except OSError as e:
            if e.errno != errno.EEXIST:
                raise MrunError(f"network {name}: address on {bridge}: {e.strerror}")
        if os.path.isdir(f"/proc/sys/net/ipv6/conf/{bridge}"):
            ifconfig.no_ipv6(bridge)  # before it is up: the host takes no IPv6 from its containers
        if mtu:  # set once made: so it is the bridge's own, kept when its last port leaves (as the
            rtnl.set_mtu(index, mtu)  # kernel keeps one set by hand), not the least of its ports
        rtnl.set_up(index)
    except OSError as e:
        raise MrunError(f"network {name}: bridge {bridge}: {e.strerror}")
    _sysctl(f"net/ipv4/conf/{bridge}/route_localnet", "1")
    _sysctl("net/ipv4/ip_forward", "1")  # outbound traffic is forwarded, then masqueraded


def _bridge_ready(network: dict) -> bool:
    """What every start after the first finds, read without netlink: the bridge is there and
    up, the gateway is its address, and the settings are on (its IPv6 off, where the kernel has
    IPv6: a bridge an older mrun made is set so by the next start)."""
    bridge = network["bridge"]
    try:
        with open(f"/sys/class/net/{bridge}/flags") as f:
            up = int(f.read(), 16) & sc.IFF_UP
        with open(f"/proc/sys/net/ipv4/conf/{bridge}/route_localnet") as f, open("/proc/sys/net/ipv4/ip_forward") as g:
            settings = f.read().strip() == g.read().strip() == "1"
        if os.path.isdir("/proc/sys/net/ipv6/conf/all"):
            with open(f"/proc/sys/net/ipv6/conf/{bridge}/disable_ipv6") as f:
                settings = settings and f.read().strip() == "1"
        from mrun.network.options import mtu_of

        if mtu := mtu_of(network):
            with open(f"/sys/class/net/{bridge}/mtu") as f:
                settings = settings and int(f.read()) == mtu
    except (OSError, ValueError):
        return False
    is_bridge = os.path.isdir(f"/sys/class/net/{bridge}/bridge")
    return bool(up) and settings and is_bridge and ifconfig.address(bridge) == network["gateway"]


def remove_link(name: str) -> None:
    if not os.path.exists(f"/sys/class/net/{name}"):
        return
    from mrun.network import rtnl

    try:
        rtnl.delete_link(name)
    except OSError as e:
        if e.errno != errno.ENODEV:  # gone with its namespace meanwhile
            raise MrunError(f"removing {name}: {e.strerror}")


def remove_bridge(name: str) -> None:
    """A network's bridge, if there is one by that name that is a bridge: a link of another kind
    that took the name is someone else's."""
    from mrun.network import rtnl

    try:
        found = rtnl.link(name)
    except OSError as e:
        raise MrunError(f"looking up {name}: {e.strerror}")
    if found is not None and found[1] == "bridge":
        remove_link(name)


def remove_veth(name: str) -> None:
    """The host end of a container's veth pair, unless the kernel is removing it already.

    When the last holder of the container's network namespace is gone (processes, bind mounts,
    open descriptors, sockets), the kernel destroys the namespace and every veth pair with an
    end in it, on its own time. Deleting it here as well would only wait for that (15-30 ms,
    RCU grace periods). The kernel says which case this is: a namespace id that no longer
    resolves (RTM_GETNSID answers ENOENT) names a namespace being destroyed. One that still
    resolves is alive, pinned by someone: then the pair is deleted here."""
    if not os.path.exists(f"/sys/class/net/{name}"):
        return
    if not peer_alive(name):
        return
    remove_link(name)


def peer_alive(name: str) -> bool:
    """True unless the kernel says the other end's namespace is being destroyed."""
    from mrun.network import rtnl

    try:
        nsid = rtnl.link_netnsid(name)
    except OSError as e:
        if e.errno == errno.ENODEV:
            return False
        raise MrunError(f"looking up {name}: {e.strerror}")
    if nsid is None:
        return True  # no id to ask about: treat as alive, delete it ourselves
    try:
        return rtnl.netnsid_resolves(nsid)
    except OSError as e:
        raise MrunError(f"looking up the namespace of {name}'s peer: {e.strerror}")


def carries_containers(bridge: str) -> bool:
    """Whether a live container is plugged into ``bridge`` (not a removed one's pair the kernel
    is still taking)."""
    try:
        plugged = os.listdir(f"/sys/class/net/{bridge}/brif")
    except OSError:
        return False
    return any(peer_alive(port) for port in plugged)


def plug(network: dict, veth: str, pid: int, ip: str, mac: str = "", ifname: str = "eth0", route: bool = True,
         made: Callable[[], None] | None = None) -> None:
    """A veth pair: ``veth`` on the bridge and up, its peer made as ``ifname`` right in the
    network namespace of ``pid`` (with ``mac`` as its address, if given), then addressed and
    (``route``: its first network) given its default route from inside it. Spoken as rtnetlink
    directly (``rtnl``): pyroute2 cost 3-5 ms of the ~1 ms the kernel takes. ``made()`` is
    called once the pair exists, before the peer is up (nothing can be sent from it before)."""
    import _socket

    from mrun.network import rtnl
    from mrun.network.options import mtu_of

    prefix = int(network["subnet"].split("/")[1])
    try:
        bridge = _socket.if_nametoindex(network["bridge"])
    except OSError:
        raise MrunError(f"network {network['name']}: bridge {network['bridge']} is gone")
    netns = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        for attempt in (1, 2):
            try:
                rtnl.add_veth(veth, bridge, ifname, netns, bytes.fromhex(mac.replace(":", "")), mtu_of(network))
                break
            except OSError as e:
                why = _await_dying(veth) if e.errno == errno.EEXIST and attempt == 1 else e.strerror
                if why:  # else a container of the same id just ended: its pair was on its way out
                    raise MrunError(f"network {network['name']}: veth {veth}: {why}")
        if made is not None:
            made()
        # an internal network's containers get no default route, as docker's: no way out is tried
        ifconfig.configure(netns, ip, prefix, "" if network.get("internal") or not route else network["gateway"],
                           ifname)
    finally:
        os.close(netns)


def _await_dying(name: str) -> str | None:
    """A leftover pair whose namespace is being destroyed: wait until the kernel has removed it
    (None), else say why it stays. One whose namespace still resolves is looked at again for
    ``SETTLE_WAIT`` before it is taken for someone's (see there)."""
    settled = time.monotonic() + SETTLE_WAIT
    while peer_alive(name):
        if time.monotonic() >= settled:
            return "File exists (a pair of that name whose namespace is in use)"
        time.sleep(0.005)
    deadline = time.monotonic() + GONE_WAIT
    while os.path.exists(f"/sys/class/net/{name}") and time.monotonic() < deadline:
        time.sleep(0.002)
    if os.path.exists(f"/sys/class/net/{name}"):
        return f"File exists (the kernel has not removed the last one of that name in {GONE_WAIT:g} s)"
    return None

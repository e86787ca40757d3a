"""Containers on one network of `mrun network create` know each other by name, as docker's
user-defined networks resolve them (a compose file's `db`, reached from `web` as `db`).

docker answers those names from a DNS server of its daemon; mrun has no daemon, so each
container's own /etc/hosts (mrun's file, bound into it) lists the others on its networks: its
name and its `--network-alias` names, each line ending in ``MARK``. A container that joins
reads the others' names from their plans and adds its line to their files; one that leaves
takes its line out of theirs. Both under the network root's lock, so two at once lose neither
line. The files are rewritten in place: each is bound into a running container by its inode.
As on docker, the default network (docker's `bridge`) resolves no names.

A peer's file is found from its lease (root and id), and written only when the directory there
holds a plan naming this network and that address: a forged or stale lease never makes mrun
write a file it did not make.
"""

from __future__ import annotations

import os

from mrun import jsonio
from mrun.network import PLAN

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

MARK = "# mrun: a container on network "
# What mrun writes into a hosts file is far less (a line per peer on its networks: 16 MiB is some
# 100,000 of them); one larger is its container's doing, read by mrun never (``_rewrite``).
MAX_HOSTS_FILE = 16 << 20


def names_of(plan: dict[str, Any]) -> list[str]:
    """The names a plan gives its container on its network (``plan["names"]``), those that are names."""
    from mrun.network.names import name_like

    names = plan.get("names")
    return [n for n in names if isinstance(n, str) and name_like(n)] if isinstance(names, list) else []


def line_of(network: str, ip: str, names: list[str]) -> str:
    return f"{ip}\t{' '.join(names)}\t{MARK}{network}\n"


def join(nets: Any, network: str, me: dict[str, str], ip: str, names: list[str]) -> None:
    """Under the network root's lock: this container's line added to each other container's file
    on ``network``, and theirs to its own (written already: one joining meanwhile adds its line
    there, or is read here)."""
    from mrun.network.store import owner_alive

    lines = []
    with nets.lock():
        for peer_ip, owner in sorted(nets.leases(network).items()):
            if owner == me or peer_ip == ip or not owner_alive(owner):
                continue
            plan = _plan_of(owner, network, peer_ip)
            if plan is None:
                continue
            if peer_names := names_of(plan):
                lines.append(line_of(network, peer_ip, peer_names))
            if names:
                _rewrite(owner, keep=lambda line: not _about(line, network, ip), add=line_of(network, ip, names))
        _rewrite(me, keep=lambda line: not line.endswith(f"{MARK}{network}\n"), add="".join(lines))


def leave(nets: Any, network: str, me: dict[str, str], ip: str) -> None:
    """Under the network root's lock: this container's line out of every other's file on ``network``."""
    with nets.lock():
        for peer_ip, owner in sorted(nets.leases(network).items()):
            if owner != me and peer_ip != ip and _plan_of(owner, network, peer_ip) is not None:
                _rewrite(owner, keep=lambda line: not _about(line, network, ip))


def readdress(nets: Any, me: dict[str, str], hostname: str, ip: str) -> None:
    """Under the network root's lock: its own line (its address and host name, as its first
    network's attach wrote it) names ``ip``, its address on the network that is its first now
    ("": none, its last network disconnected)."""
    own = f"\t{hostname}\n"

    def others(line: str) -> bool:
        return not (line.endswith(own) and line.count("\t") == 1 and not line.startswith(("127.", "::1\t")))

    with nets.lock():
        _rewrite(me, keep=others, add=f"{ip}{own}" if ip else "")


def _about(line: str, network: str, ip: str) -> bool:
    return line.endswith(f"{MARK}{network}\n") and line.split("\t", 1)[0] == ip


def _plan_of(owner: dict[str, str], network: str, ip: str) -> dict[str, Any] | None:
    """The plan in the lease owner's directory, if it is a container's on ``network`` at ``ip``."""
    from mrun.errors import MrunError
    from mrun.state import check_id

    root, cid = owner.get("root"), owner.get("container")
    if not isinstance(root, str) or not os.path.isabs(root):
        return None
    try:
        check_id(cid)  # type: ignore[arg-type]
    except MrunError:
        return None
    plan = jsonio.load_object(os.path.join(root, cid, PLAN))  # type: ignore[arg-type]
    if plan is not None and plan.get("network") != network:  # one of its other networks' (attach.prepare_more)
        from mrun.network import more_plan_file

        plan = jsonio.load_object(os.path.join(root, cid, more_plan_file(network)))  # type: ignore[arg-type]
    if plan is None or plan.get("network") != network or plan.get("ip") != ip:
        return None
    return plan


def _rewrite(owner: dict[str, str], keep: Any, add: str = "") -> None:
    """The owner's hosts file: the lines ``keep`` keeps, then ``add``; in place (its inode is
    bound into the container), never through a link, only a regular file. One its container
    filled past MAX_HOSTS_FILE is left as it is (its names go stale): read whole, a container's
    300 MB there made another's run on its network take 1.2 GB."""
    import stat

    from mrun.network.names import hosts_of

    path = hosts_of(owner)
    try:
        fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return  # not made yet (its start writes it with every line), or gone
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_HOSTS_FILE:
            return
        with os.fdopen(os.dup(fd), "r+b") as f:
            data = f.read(MAX_HOSTS_FILE + 1)  # (it may grow meanwhile)
            if len(data) > MAX_HOSTS_FILE:
                return
            text = data.decode(errors="replace")
            lines = [line for line in text.splitlines(keepends=True) if keep(line)]
            if lines and not lines[-1].endswith("\n"):
                lines[-1] += "\n"
            new = ("".join(lines) + add).encode()
            if new != text.encode():
                f.seek(0)
                f.write(new)
                f.truncate()
    except OSError:
        pass  # a full disk: that container keeps its file as it was
    finally:
        os.close(fd)

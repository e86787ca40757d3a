"""docker's `network connect NET CONTAINER` and `network disconnect NET CONTAINER`: a container
of `mrun run` (or `mrun create`) on one more network, or on one fewer.

The networks it is on besides its first are its bundle's ``annotations.NETWORK_MORE``, so each
of its starts joins them again (eth1, eth2...); a running (or created, or paused) one joins now
too, as `attach.prepare_more` and `attach.attach` join one at its create. Both under the
container's lock, which its create, start and delete take: a restart never reads the list
half changed.

Its first network (eth0, its default route and published ports) may be disconnected too, as
docker's: the first of its others takes that part (``attach.promote``): at once where it runs
(its ports published on its address there, its default route through that network's gateway),
and as its eth0 from its next start. Its only network disconnected, it has lo alone (as docker
leaves it; ``annotations.NETWORK_DETACHED``), and the network it is connected to next is its
first, its published ports there.
"""

from __future__ import annotations

import os

from mrun import annotations as ann
from mrun import jsonio
from mrun.errors import InvalidSpec, InvalidState, NotFound
from mrun.network import PLAN, attach, more_plan_file
from mrun.network.store import DEFAULT_NETWORK, Networks, check_name, requested_address
from mrun.status import Status

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

LIVE = (Status.CREATED, Status.RUNNING, Status.PAUSED)


def connect(runtime: Any, network: str, container_id: str, ip: str = "", aliases: list[str] | None = None,
            keep: Callable[[Any, bool], None] | None = None) -> None:
    """``keep(record, live)``: called last, under the container's lock (the caller's images.kept)."""
    network = _named(network)
    aliases = list(aliases or [])
    if ip:
        requested_address(ip)
        if network == DEFAULT_NETWORK:  # docker's rule, as run's --ip
            raise InvalidSpec(f"network connect --ip {ip}: taken on a network of `mrun network create`, not the "
                              "default one")
    attach.resolved_names(network, container_id, aliases)  # an alias that is no host name, or on the default network
    with runtime.store.lock(container_id):
        record, config, annotations, more = _ours(runtime, container_id, "connect")
        _finish_promotion(runtime, record, config, annotations)
        first = not annotations.get(ann.NETWORK)  # its networks all disconnected: this one is its first again
        if first and not annotations.get(ann.NETWORK_DETACHED):
            raise InvalidState(f"network connect {network} {container_id}: the container is on no bridge network "
                               "(--network none, host or container:), so it has no interfaces to add one to")
        if network == annotations.get(ann.NETWORK) or any(m["name"] == network for m in more):
            raise InvalidState(f"container {container_id!r} is already on network {network!r}")
        Networks().get(network)  # an unknown one: its one line, before anything is taken
        want = {"name": network, "ip": ip, "aliases": aliases}
        state_dir = runtime.store.path(container_id)
        attach.detach_more(state_dir, network)  # a plan the list does not name: a connect killed before its end
        _forget_unplanned(runtime, container_id, network)
        live = runtime.status(record) in LIVE
        if live:
            try:
                from mrun.network import portguard

                plan = attach.prepare_more(state_dir, runtime.store.root, container_id, want,
                                           attach.free_ifname(state_dir), portguard.held(config))
                attach.attach(plan, record.pid)
            except BaseException:
                attach.detach_more(state_dir, network)
                raise
        if first:  # config after the place it names (a connect killed before is undone by the next)
            _first_network(annotations, want)
            _write(record.bundle, config, annotations, [])
            _finish_promotion(runtime, record, config, annotations)  # its ports, route, own name line
        else:
            _write(record.bundle, config, annotations, [*more, want])
        if keep is not None:
            keep(record, live)


def disconnect(runtime: Any, network: str, container_id: str, keep: Callable[[Any, bool], None] | None = None) -> None:
    network = _named(network)
    with runtime.store.lock(container_id):
        record, config, annotations, more = _ours(runtime, container_id, "disconnect")
        _finish_promotion(runtime, record, config, annotations)
        if network == annotations.get(ann.NETWORK):
            _disconnect_first(runtime, record, config, annotations, more, network)
            if keep is not None:
                keep(record, runtime.status(record) in LIVE)
            return
        state_dir = runtime.store.path(container_id)
        joined = os.path.exists(os.path.join(state_dir, more_plan_file(network)))
        if not joined and not any(m["name"] == network for m in more):
            _forget_unplanned(runtime, container_id, network)
            raise NotFound(f"container {container_id!r} is not connected to network {network!r}")
        _write(record.bundle, config, annotations, [m for m in more if m["name"] != network])  # first: a crash
        if joined:  # after it leaves no start that would join it again
            attach.detach_more(state_dir, network)
        _forget_unplanned(runtime, container_id, network)
        if keep is not None:
            keep(record, runtime.status(record) in LIVE)


def _disconnect_first(runtime: Any, record: Any, config: dict[str, Any], annotations: dict[str, str],
                      more: list[dict[str, Any]], network: str) -> None:
    """Its first network off, the first of its others in that place (``attach.promote``). Its
    config first: a crash after it leaves no start that would join the first again, and the
    container's next connect or disconnect finishes the rest (``_finish_promotion``)."""
    container_id = record.id
    if not more:  # its only one: lo alone, as docker leaves it, until a `network connect`
        for key in (ann.NETWORK, ann.NETWORK_IP, ann.NETWORK_ALIASES, ann.NETWORK_MAC):
            annotations.pop(key, None)
        annotations[ann.NETWORK_DETACHED] = network
        _write(record.bundle, config, annotations, [])
        _finish_promotion(runtime, record, config, annotations)
        _forget_unplanned(runtime, container_id, network)
        return
    new = more[0]
    if annotations.get(ann.NETWORK_PORTS) and Networks().get(new["name"]).get("internal"):
        raise InvalidState(f"network disconnect {network} {container_id}: its published ports (-p) would go to "
                           f"network {new['name']!r}, which is internal (nothing from outside reaches it)")
    _first_network(annotations, new)
    _write(record.bundle, config, annotations, more[1:])
    _finish_promotion(runtime, record, config, annotations)
    _forget_unplanned(runtime, container_id, network)


def _first_network(annotations: dict[str, str], entry: dict[str, Any]) -> None:
    """``entry`` (one of ``attach.more_of``'s) as the container's first network in its config."""
    annotations[ann.NETWORK] = entry["name"]
    annotations.pop(ann.NETWORK_DETACHED, None)
    for key, value in ((ann.NETWORK_IP, entry.get("ip") or ""), (ann.NETWORK_ALIASES, ",".join(entry["aliases"])),
                       (ann.NETWORK_MAC, entry.get("mac") or "")):  # (a MAC asked for is its network's, docker's)
        if value:
            annotations[key] = value
        else:
            annotations.pop(key, None)


def _finish_promotion(runtime: Any, record: Any, config: dict[str, Any], annotations: dict[str, str]) -> None:
    """Where its config names a first network its first plan does not (a first network
    disconnected, or a disconnect of it killed part-way), that network takes the first's part;
    where its config names none (its last network disconnected), the first's place is undone."""
    state_dir = runtime.store.path(record.id)
    first = annotations.get(ann.NETWORK)
    plan = jsonio.load_object(os.path.join(state_dir, PLAN))
    if not first and annotations.get(ann.NETWORK_DETACHED) and plan is not None:
        from mrun.network import peers

        owner = {"root": runtime.store.root, "container": record.id}
        peers.readdress(Networks(), owner, config.get("hostname") or record.id[:12], "")  # (before: a kill
        attach.detach_first(state_dir)  # after the plan's removal would leave the line)
        return
    if not first or plan is None and not os.path.exists(os.path.join(state_dir, more_plan_file(first))):
        return
    if plan is not None and plan.get("network") == first and ("ifname" not in plan or plan.get("promoted")):
        return  # its first network's own plan, or one whose promotion was finished
    live = runtime.status(record) in LIVE
    ports = attach.parse_ports(annotations.get(ann.NETWORK_PORTS) or "")
    attach.promote(state_dir, runtime.store.root, record.id, first, ports, record.pid if live else 0,
                   config.get("hostname") or record.id[:12])


def _forget_unplanned(runtime: Any, container_id: str, network: str) -> None:
    """Its addresses on ``network`` that none of its plans names: a connect killed between
    taking one and noting it in its plan. The container lives, so nothing else would ever let
    them go; its next connect or disconnect of that network does."""
    state_dir = runtime.store.path(container_id)
    planned = {(jsonio.load_object(os.path.join(state_dir, name)) or {}).get("ip")
               for name in (PLAN, more_plan_file(network))}
    owner = {"root": runtime.store.root, "container": container_id}
    nets = Networks()
    with nets.lock():
        for ip, holder in nets.leases(network).items():
            if holder == owner and ip not in planned:
                try:
                    os.unlink(nets.path(network, "leases", ip))
                except FileNotFoundError:
                    pass


def _named(network: str) -> str:
    check_name(network)
    return DEFAULT_NETWORK if network == "bridge" else network  # docker's name for its default network


def _ours(runtime: Any, container_id: str, verb: str) -> tuple[Any, dict[str, Any], dict[str, str], list[Any]]:
    """Its record, bundle config, annotations and other networks; only a container whose bundle is
    mrun's own to change (`mrun run`'s, `mrun create`'s), never a runc bundle's config.json."""
    record = runtime.store.load(container_id)
    if ann.IMAGE not in record.annotations:
        raise InvalidState(f"network {verb}: container {container_id!r} is not of `mrun run` or `mrun create` "
                           "(its bundle's config is its maker's, not mrun's to change)")
    try:
        config = jsonio.load_file(os.path.join(record.bundle, "config.json"))
    except (OSError, ValueError) as e:
        raise InvalidState(f"network {verb}: container {container_id!r}: its config cannot be read ({e})") from None
    if not isinstance(config, dict):
        raise InvalidState(f"network {verb}: container {container_id!r}: its config is no JSON object")
    annotations = config.get("annotations") if isinstance(config.get("annotations"), dict) else {}
    return record, config, annotations, attach.more_of(annotations)


def _write(bundle: str, config: dict[str, Any], annotations: dict[str, str], more: list[Any]) -> None:
    if more:
        annotations[ann.NETWORK_MORE] = jsonio.dumps(more)
    else:
        annotations.pop(ann.NETWORK_MORE, None)
    config["annotations"] = annotations
    jsonio.replace_file(os.path.join(bundle, "config.json"), config)

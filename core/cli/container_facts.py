"""What the docker-like views (ps, inspect, port, run's --link) read of a container beside its
state: its network plan and the sizes of its layers."""

from __future__ import annotations

import os

from mrun import jsonio
from mrun.errors import MrunError
from mrun.network import PLAN

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def layer_sizes(runtime: Any, state: dict[str, Any]) -> tuple[int, int] | None:
    """(the writable layer's bytes, with its image's layers); None for a bundle's container,
    whose rootfs is its owner's, no layer of ours."""
    from mrun.bundles import image_of, made_for
    from mrun.cli.disk_usage import tree_size
    from mrun.images.store import ImageStore

    bundle = state.get("bundle") or ""
    if not made_for(bundle, state["id"], runtime.store.root):
        return None
    own = under = tree_size(os.path.join(bundle, "upper"))
    store = ImageStore(os.path.dirname(os.path.dirname(bundle)))
    for digest in (image_of(bundle) or {}).get("layers") or []:
        try:
            under += tree_size(store.layer_dir(digest))
        except (MrunError, TypeError):  # a damaged image.json: what can be counted is
            continue
    return own, under


def network_plan(runtime: Any, container_id: str) -> dict[str, Any] | None:
    """A container's net.json (its network, address and published ports), if it has one, with
    its plans on its other networks under "more" (network -> plan: `network connect`'s)."""
    plan = jsonio.load_object(runtime.store.path(container_id, PLAN))
    if plan is not None:
        from mrun.network.attach import more_plans_read

        if more := more_plans_read(runtime.store.path(container_id)):
            plan["more"] = dict(sorted(more.items()))
    return plan


def published_ports(annotations: dict[str, str]) -> set[tuple[int, str]]:
    """The container's ports it publishes (-p, -P), as (port, proto): docker's PortBindings keys."""
    from mrun import annotations as ann
    from mrun.network.attach import parse_ports

    try:
        return {(int(p["port"]), p["proto"]) for p in parse_ports(annotations.get(ann.NETWORK_PORTS) or "")}
    except MrunError:  # a runc client's bundle may carry anything: nothing published then
        return set()


def expose_named(annotations: dict[str, str]) -> list[str]:
    """What its --expose named, as run noted it: PORT/proto items."""
    from mrun import annotations as ann

    return [p for p in (annotations.get(ann.EXPOSE) or "").split(",") if p]


def exposed_ports(state: dict[str, Any], image_of: Any) -> set[tuple[int, str]]:
    """The ports a container exposes, docker's Config.ExposedPorts: its image's, --expose's, and
    those it publishes."""
    from mrun.images.run_flags import exposed

    annotations = state.get("annotations") or {}
    found = published_ports(annotations)
    named = expose_named(annotations)
    meta = image_of(state.get("bundle") or "") or {}
    if isinstance(meta.get("config"), str):
        from mrun.images.store import ImageStore

        store = ImageStore(os.path.dirname(os.path.dirname(state.get("bundle") or "")))
        try:
            config = store.read_json(meta["config"])
            image_ports = (config.get("config") or {}).get("ExposedPorts") if isinstance(config, dict) else None
            named += list(image_ports) if isinstance(image_ports, dict) else []
        except (MrunError, OSError, AttributeError):  # its image gone, or damaged: what else it exposes
            pass
    for item in named:
        try:
            ports = exposed([item], "ExposedPorts")
        except MrunError:  # not a port: nothing exposed by it
            continue
        found.update((int(port), proto) for port, _, proto in (p.partition("/") for p in ports))
    return found

"""`mrun system prune`: finish what killed or crashed commands left half done (`system df`:
cli/disk_usage; `system info`: cli/info).

Every resource mrun makes is recorded before it is made (state dirs, cgroups and their marked
parents, image bundles with their snapshot, network leases, partial downloads), so after a crash
at any instant this verb finds and removes it. It never touches a container that is alive or
being created (its lock is held); an image or a volume only when asked, as docker's -a and
--volumes ask.
"""

from __future__ import annotations

import os

from mrun.errors import MrunError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def system(g: dict[str, Any], action: str, format: str = "", force: bool = False,  # noqa: A002
           all: bool = False, volumes: bool = False, verbose: bool = False) -> int:  # noqa: A002
    """``force`` is docker's (it asks first; mrun does not). ``all``: every image no container
    was made from goes too; ``volumes``: the anonymous volumes no container uses, as docker's.
    ``verbose``: df's -v."""
    if action == "info":
        from mrun.cli.info import info

        return info(g, format)
    if action == "df":
        from mrun.cli.disk_usage import disk_usage

        return disk_usage(g, format, verbose)
    if format:
        raise MrunError(f"system {action}: --format is info's and df's")
    if action != "prune":
        raise MrunError(f"system: unknown action {action!r} (prune, df, info)")
    for what in prune(g):
        print(f"removed {what}")
    if volumes:
        from mrun.images import volumes as volume_store

        for name in volume_store.prune(g["image_root"]):
            print(f"removed volume {name}")
    if all and os.path.isdir(g["image_root"]):
        from mrun.cli.image_store_verbs import prune_images
        from mrun.images.store import ImageStore

        for what in prune_images(ImageStore(g["image_root"]), True):
            print(what)
    return 0


def prune(g: dict[str, Any]) -> list[str]:
    from mrun.cli.common import _rt
    from mrun.images.store import ImageStore

    runtime = _rt(g)
    removed = [f"container {cid}" for cid in _dead_containers(runtime)]
    removed += [f"half-made container directory {name}" for name in runtime.store.sweep_making()]
    from mrun.cgroups.base import release_marked

    removed += [f"cgroup {path}" for path in release_marked(runtime.store.cgroup_marks)]
    store = ImageStore(g["image_root"])
    if os.path.isdir(store.root):
        with store.lock():
            from mrun.images.containers import remove_orphans

            removed += [f"orphaned container {cid}" for cid in remove_orphans(store)] + store.sweep()
    from mrun.network.store import Networks

    nets = Networks()
    if os.path.isdir(nets.root):
        from mrun.cli.network_verbs import prune_stale

        removed += prune_stale(nets)
    return removed


def _dead_containers(runtime: Any) -> list[str]:
    """Containers a killed create left (stage "creating", nobody holding their lock), and state
    files that are malformed: removed as `delete --force` would, signalling nothing unverified."""
    from mrun.state import held_by_someone

    gone = []
    for cid in runtime.store.ids():
        if not runtime.store.made_here(cid):
            continue  # someone else's directory: not ours to remove
        if held_by_someone(runtime.store.path(cid, "lock")):
            continue  # a create, start or delete in progress
        try:
            record = runtime.store.load(cid)
        except MrunError:
            record = None
        if record is not None and record.stage != "creating":
            continue  # a container (running or exited): `mrun rm` is the user's call
        runtime.delete(cid, force=True)
        gone.append(cid)
    return gone

"""Image garbage collection: what no image and no container uses, and what killed commands left.

Its own module because it needs both the store and the containers made from it, which the
store itself must not import (containers are built on the store).
"""

from __future__ import annotations

import os

from mrun.images import leases
from mrun.images.containers import remove_orphans
from mrun.images.reference import is_digest
from mrun.images.store import ImageStore
from mrun.kernel.tree import remove_tree

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


def untag_unused(store: ImageStore, chosen: Callable[[str, dict[str, Any]], bool] | None = None) -> list[str]:
    """docker's ``image prune -a``: every name whose image no container was made from leaves the
    index (prune then removes its data); ``chosen`` (its --filter): only those it chooses.
    Called with the store's lock held. -> the names."""
    used = {meta.get("config") for meta in store.container_images().values()}
    index = store.index()
    gone = sorted(name for name, entry in index.items()
                  if entry["config"] not in used and (chosen is None or chosen(name, entry)))
    if gone:
        store.save_index({name: entry for name, entry in index.items() if name not in gone})
    return gone


def prune(store: ImageStore) -> list[str]:
    """Remove blobs and layers no image, no container and no reader (``leases``) refers to,
    and what killed commands left behind (orphaned containers' snapshots, partial writes).
    Called with the store's lock held. -> what was removed."""
    with leases.lock(store):
        return _prune(store)


def _prune(store: ImageStore) -> list[str]:
    removed = [f"orphaned container {cid}" for cid in remove_orphans(store)] + store.sweep()
    index = store.index()
    keep_blobs: set[str] = set()
    keep_layers: set[str] = set()
    for entry in index.values():
        keep_blobs.update(entry.get("blobs", []))
        keep_layers.update(entry.get("layers", []))
    for meta in store.container_images().values():  # an image untagged under it (rmi -f) stays whole
        keep_layers.update(meta.get("layers", []))
        if isinstance(meta.get("config"), str):
            keep_blobs.add(meta["config"])
    # only names a digest's hex: a download in progress (.partial, .lock) is resumable, a killed
    # writer's is the sweep's, and any other name is someone else's (an image root shared by mistake)
    for name in os.listdir(store.blobs) if os.path.isdir(store.blobs) else []:
        if is_digest(f"sha256:{name}") and f"sha256:{name}" not in keep_blobs and not leases.being_read(store, name):
            os.unlink(os.path.join(store.blobs, name))
            removed.append(f"blob sha256:{name}")
    for name in os.listdir(store.layers) if os.path.isdir(store.layers) else []:
        if is_digest(f"sha256:{name}") and f"sha256:{name}" not in keep_layers:
            remove_tree(os.path.join(store.layers, name))
            removed.append(f"layer sha256:{name}")
    return removed

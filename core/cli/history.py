"""docker's history (and `image history`): an image's build steps from its config's ``history``,
newest first, each non-empty one beside its layer. Sizes are the layers' blobs, as `mrun images`
counts them (docker's are unpacked sizes: mrun keeps no such figure per layer)."""

from __future__ import annotations

import time

from mrun.cli.listing import docker_time, epoch_of, formatted, human_duration, human_size
from mrun.errors import MrunError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

HEADERS = {"ID": "IMAGE", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "CreatedBy": "CREATED BY",
           "Size": "SIZE", "Comment": "COMMENT"}
SHOWN = 45  # docker's CREATED BY column, unless --no-trunc


def history(g: dict[str, Any], image: str, format: str = "", quiet: bool = False,  # noqa: A002
            no_trunc: bool = False, human: bool = True) -> int:
    from mrun.images.store import ImageStore

    rows = steps(ImageStore(g["image_root"]), image, no_trunc, human)
    if quiet:
        for row in rows:
            print(row["ID"])
        return 0
    fmt = format or "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"
    if not human and not format:
        fmt = "table {{.ID}}\t{{.CreatedAt}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"
    for line in formatted(fmt, rows, HEADERS):
        print(line)
    return 0


def steps(store: Any, image: str, no_trunc: bool = False, human: bool = True) -> list[dict[str, str]]:
    """docker's history rows: the image's id on the newest step, "<missing>" on the others (their
    own images are not kept apart), as docker shows a pulled image."""
    from mrun.images import leases

    with leases.reading(store, [image]) as [(_name, entry)]:  # an rmi meanwhile: they stay till read
        config = store.read_json(entry["config"])
        manifest = store.read_json(entry["manifest"])
    try:
        layers = [int(layer.get("size") or 0) for layer in manifest.get("layers") or []]
        history = config.get("history") or []
        if not isinstance(history, list) or not all(isinstance(h, dict) for h in history):
            raise TypeError("history")
    except (ValueError, KeyError, TypeError, AttributeError):
        raise MrunError(f"image {image!r}: its config or manifest in the store is not an image's")
    if not history:  # no steps noted: one row per layer, as docker does
        history = [{} for _ in layers]
    now = time.time()
    rows = []
    layer = 0
    for step in history:
        empty = bool(step.get("empty_layer"))
        size = 0 if empty or layer >= len(layers) else layers[layer]
        if not empty:
            layer += 1
        created = str(step.get("created") or "")
        by = " ".join(str(step.get("created_by") or "").split())
        if not no_trunc and len(by) > SHOWN:
            by = by[:SHOWN - 1] + "…"
        epoch = epoch_of(created)
        rows.append({
            "ID": "<missing>", "CreatedSince": f"{human_duration(now - epoch)} ago" if epoch is not None else "N/A",
            "CreatedAt": docker_time(created) if created else "N/A", "CreatedBy": by,
            "Size": human_size(size) if human else str(size), "Comment": str(step.get("comment") or ""),
        })
    rows.reverse()
    if rows:
        image_id = entry["config"].removeprefix("sha256:")
        rows[0]["ID"] = entry["config"] if no_trunc else image_id[:12]  # docker's: sha256:... whole
    return rows

"""docker's `system df`: the disk that images, containers and volumes take, and how much of it
a prune gives back.

Sizes are counted as docker counts them (its pkg/directory): each file's apparent size once,
hard links once, directories not at all. An image is its blobs (manifest, config, compressed
layers: kept for `save` and `push`) and its unpacked layers; its reclaimable part is what
`image prune -a` removes: what no image a container was made from, and no container, refers to
(docker's figure counts an in-use image's shared layers as reclaimable; this one does not).
A container's size is its writable layer; a stopped one's is reclaimable (`container prune`).
A volume's is reclaimable when no container mounts it. mrun has no build cache: its row is 0.
"""

from __future__ import annotations

import os
import stat

from mrun.errors import InvalidSpec

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

HEADERS = {"Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE", "Size": "SIZE", "Reclaimable": "RECLAIMABLE"}
IMAGE_HEADERS = {"Repository": "REPOSITORY", "Tag": "TAG", "ID": "IMAGE ID", "CreatedSince": "CREATED",
                 "Size": "SIZE", "SharedSize": "SHARED SIZE", "UniqueSize": "UNIQUE SIZE", "Containers": "CONTAINERS"}
CONTAINER_HEADERS = {"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "LocalVolumes": "LOCAL VOLUMES",
                     "Size": "SIZE", "RunningFor": "CREATED", "Status": "STATUS", "Names": "NAMES"}
VOLUME_HEADERS = {"Name": "VOLUME NAME", "Links": "LINKS", "Size": "SIZE"}


def tree_size(path: str) -> int:
    """Bytes under ``path``: every non-directory's apparent size, each inode once, no link
    followed (a container's or layer's links name its own files, not the host's)."""
    seen: set[int] = set()
    total = 0
    stack = [path]
    while stack:
        try:
            entries = os.scandir(stack.pop())
        except OSError:  # removed meanwhile, or not a directory
            continue
        with entries:
            for entry in entries:
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if stat.S_ISDIR(st.st_mode):
                    stack.append(entry.path)
                elif st.st_size and st.st_nlink == 1:  # (only a linked one is remembered: a container's
                    total += st.st_size  # million files held a million numbers in memory)
                elif st.st_size and st.st_ino not in seen:
                    seen.add(st.st_ino)
                    total += st.st_size
    return total


def _file_size(path: str) -> int:
    try:
        return os.lstat(path).st_size
    except OSError:
        return 0


def _reclaimable(part: int, whole: int) -> str:
    from mrun.cli.listing import human_size

    return f"{human_size(part)} ({part * 100 // whole}%)" if whole > 0 else human_size(part)


def _images(g: dict[str, Any]) -> tuple[dict[str, str], list[dict[str, str]]]:
    from mrun.cli.docker_rows import image_row
    from mrun.cli.listing import human_size
    from mrun.images.store import ImageStore

    store = ImageStore(g["image_root"])
    index = store.index() if os.path.isdir(store.root) else {}
    made_from = store.container_images().values()
    containers_of: dict[str, int] = {}
    for meta in made_from:
        if isinstance(meta.get("config"), str):
            containers_of[meta["config"]] = containers_of.get(meta["config"], 0) + 1
    parts: dict[str, int] = {}  # "blob:DIGEST" or "layer:DIGEST" -> bytes, each counted once
    for name in os.listdir(store.blobs) if os.path.isdir(store.blobs) else []:
        if "." not in name:  # a download in progress is no image's yet
            parts[f"blob:sha256:{name}"] = _file_size(os.path.join(store.blobs, name))
    for name in os.listdir(store.layers) if os.path.isdir(store.layers) else []:
        parts[f"layer:sha256:{name}"] = tree_size(os.path.join(store.layers, name))

    def parts_of(entry: dict[str, Any]) -> set[str]:
        return {f"blob:{d}" for d in entry.get("blobs") or []} | {f"layer:{d}" for d in entry.get("layers") or []}

    by_id = {entry["config"]: (name, entry) for name, entry in sorted(index.items())}  # tags of one image: one
    users: dict[str, int] = {}  # part -> how many images refer to it
    for _name, entry in by_id.values():
        for part in parts_of(entry):
            users[part] = users.get(part, 0) + 1
    kept = {part for image_id, (_n, entry) in by_id.items() if containers_of.get(image_id) for part in parts_of(entry)}
    for meta in made_from:  # an image untagged under its container (rmi -f) stays whole
        kept |= {f"layer:{d}" for d in meta.get("layers") or []} | {f"blob:{meta.get('config')}"}
    total = sum(parts.values())
    rows = []
    for image_id, (name, entry) in by_id.items():
        mine = [p for p in parts_of(entry) if p in parts]
        shared = sum(parts[p] for p in mine if users.get(p, 0) > 1)
        size = sum(parts[p] for p in mine)
        row = image_row(name, entry)
        rows.append({key: row[key] for key in ("Repository", "Tag", "ID", "CreatedSince")} | {
            "Size": human_size(size), "SharedSize": human_size(shared), "UniqueSize": human_size(size - shared),
            "Containers": str(containers_of.get(image_id, 0))})
    freed = sum(size for part, size in parts.items() if part not in kept)
    summary = {"Type": "Images", "TotalCount": str(len(by_id)),
               "Active": str(sum(1 for image_id in by_id if containers_of.get(image_id))),
               "Size": human_size(total), "Reclaimable": _reclaimable(freed, total)}
    return summary, rows


def _containers(g: dict[str, Any]) -> tuple[dict[str, str], list[dict[str, str]]]:
    from mrun.bundles import image_of, made_for
    from mrun.cli.common import _rt
    from mrun.cli.docker_rows import ps_row
    from mrun.cli.listing import human_size
    from mrun.errors import MrunError
    from mrun.images import volumes
    from mrun.images.supervisor import exit_of
    from mrun.images.unstarted import as_docker_sees
    from mrun.status import Status

    runtime = _rt(g)
    total = reclaimable = active = 0
    rows = []
    for state in runtime.list():
        try:
            record = runtime.store.load(state["id"])
        except MrunError:
            continue
        bundle = record.bundle or ""
        ours = made_for(bundle, state["id"], runtime.store.root)
        size = tree_size(os.path.join(bundle, "upper")) if ours else 0
        running = state["status"] in (Status.RUNNING, Status.PAUSED)
        total += size
        active += running
        reclaimable += 0 if running else size
        row = ps_row(as_docker_sees(state), record, ((image_of(bundle) or {}).get("image") or "") if ours else "",
                     exit_of(bundle) if ours else None, None)
        rows.append({key: row[key] for key in ("ID", "Image", "Command", "RunningFor", "Status", "Names")} | {
            "LocalVolumes": str(len(volumes.of_container(g["image_root"], record.config or {}))),
            "Size": human_size(size)})
    summary = {"Type": "Containers", "TotalCount": str(len(rows)), "Active": str(active),
               "Size": human_size(total), "Reclaimable": _reclaimable(reclaimable, total)}
    return summary, rows


def _volumes(g: dict[str, Any]) -> tuple[dict[str, str], list[dict[str, str]]]:
    from mrun import jsonio
    from mrun.bundles import container_ids
    from mrun.cli.listing import human_size
    from mrun.images import volumes

    root = g["image_root"]
    containers = os.path.join(root, "containers")
    links: dict[str, int] = {}
    for cid in container_ids(containers):
        for name in set(volumes.of_container(root, jsonio.load_object(os.path.join(containers, cid, "config.json"))
                                              or {})):
            links[name] = links.get(name, 0) + 1
    rows, total, reclaimable = [], 0, 0
    for name in volumes.names(root):
        size = tree_size(volumes.data(root, name))
        total += size
        reclaimable += 0 if links.get(name) else size
        rows.append({"Name": name, "Links": str(links.get(name, 0)), "Size": human_size(size)})
    summary = {"Type": "Local Volumes", "TotalCount": str(len(rows)),
               "Active": str(sum(1 for row in rows if row["Links"] != "0")),
               "Size": human_size(total), "Reclaimable": _reclaimable(reclaimable, total)}
    return summary, rows


BUILD_CACHE = {"Type": "Build Cache", "TotalCount": "0", "Active": "0", "Size": "0B", "Reclaimable": "0B"}


def disk_usage(g: dict[str, Any], format: str = "", verbose: bool = False) -> int:  # noqa: A002
    """`system df` (``verbose``: -v, each image, container and volume)."""
    from mrun import jsonio
    from mrun.cli.listing import formatted

    images, containers, volumes = _images(g), _containers(g), _volumes(g)
    if verbose:
        if format == "json":  # docker's one document
            print(jsonio.dumps({"Images": images[1], "Containers": containers[1], "Volumes": volumes[1],
                                "BuildCache": []}))
            return 0
        if format not in ("", "table"):
            raise InvalidSpec("system df: -v prints its tables, or one JSON document with --format json")
        for title, (_summary, rows), headers in (("Images space usage", images, IMAGE_HEADERS),
                                                 ("Containers space usage", containers, CONTAINER_HEADERS),
                                                 ("Local Volumes space usage", volumes, VOLUME_HEADERS)):
            print(f"{title}:\n")
            for line in formatted("table " + "\t".join(f"{{{{.{key}}}}}" for key in headers), rows, headers):
                print(line)
            print()
        print("Build cache usage: 0B\n")
        return 0
    rows = [images[0], containers[0], volumes[0], BUILD_CACHE]
    template = "{{json .}}" if format == "json" else format or "table " + "\t".join(f"{{{{.{k}}}}}" for k in HEADERS)
    for line in formatted(template, rows, HEADERS):
        print(line)
    return 0

"""docker's ``export`` (a container's files as a tar stream), ``diff`` (what it changed over
its image) and ``commit`` (those changes as a new image). They read the container's root
filesystem as the host holds it: its image's layers and its own changes, without the mounts
made inside the container (volumes, /proc), as docker's leave volumes out. Nothing the
container put there is followed or opened as a device: ``kernel.fdtar`` and ``images.changes``
walk by descriptor."""

from __future__ import annotations

import os
import sys

from mrun import bundles
from mrun.bundles import image_of
from mrun.cli.common import _rt
from mrun.errors import MrunError, NotFound, name_the_file, one_line
from mrun.network import PLAN

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def export(g: dict[str, Any], container_id: str, output: str = "") -> int:
    runtime = _rt(g)
    record = runtime.store.load(container_id)
    if not output and sys.stdout.isatty():
        raise MrunError("export: cowardly refusing to write a tar archive to a terminal; use -o FILE or redirect")
    with bundles.reading(record.bundle, container_id, runtime.store.root) as held:
        if held.released:  # removed since we looked (`rm -f`)
            raise NotFound(f"container {container_id!r} does not exist")
        code = _export(record, output)
        if held.released:  # while we read, after its release waited its longest: a part of it is no export
            if output:
                os.unlink(output)
            raise MrunError(f"export: container {container_id!r} was removed while it was exported")
    return code


def _export(record: Any, output: str) -> int:
    from mrun.kernel import fdtar, inroot

    if output:  # a half-written archive is removed below: never a node of the host's
        from mrun.kernel.replacing import check_replaceable

        check_replaceable(output, "export: -o")
    root = inroot.open_root(record.rootfs)
    try:
        out = open(output, "wb") if output else sys.stdout.buffer  # noqa: SIM115 - closed below, or stdout
        try:
            skipped = fdtar.write_tree(root, out)
            out.close() if output else out.flush()  # the last block is written here: a full disk says so here
        except BrokenPipeError:  # its reader went away (`| tar t | head`): as tar ends then, quietly
            return 141
        except BaseException as e:
            if output:  # a half-written archive is no export
                try:
                    out.close()
                except OSError:
                    pass
                os.unlink(output)
                if isinstance(e, OSError):
                    name_the_file(e, output)  # a full disk: say where
            raise
    finally:
        os.close(root)
    for line in skipped:
        print(f"mrun: export: {one_line(line)}", file=sys.stderr)
    return 0


def diff(g: dict[str, Any], container_id: str) -> int:
    from mrun.images.changes import Lower, changes, without_mount_points
    from mrun.images.store import ImageStore

    runtime = _rt(g)
    record, meta, upper = _snapshot(runtime, container_id, "diff")
    store = ImageStore(g["image_root"])
    lower = Lower([store.layer_dir(d) for d in reversed(meta.get("layers") or [])])
    with bundles.reading(record.bundle, container_id, runtime.store.root) as held:  # as export's
        if held.released:  # removed since we looked (`rm -f`)
            raise NotFound(f"container {container_id!r} does not exist")
        listed: list[tuple[str, str]] = []
        try:
            listed = without_mount_points(changes(upper, lower), _mounted_on(runtime, record))
        except FileNotFoundError:
            if not held.released:
                raise
        if held.released:  # while we read, after its release waited its longest: part of a list is none
            raise MrunError(f"diff: container {container_id!r} was removed while its changes were read")
    for kind, path in listed:
        print(f"{kind} {path}")
    return 0


def commit(g: dict[str, Any], container_id: str, name: str = "", message: str = "", author: str = "",
           change: tuple[str, ...] = (), pause: bool = True) -> int:
    """docker's commit: the container's changes as one more layer over its image, named ``name``.
    A running container is paused meanwhile (docker's default; --pause=false does not)."""
    from mrun.images.commit import check_name
    from mrun.images.commit import commit as make
    from mrun.images.secrets import left_out
    from mrun.images.store import ImageStore
    from mrun.status import Status

    check_name(name)
    runtime = _rt(g)
    record, meta, upper = _snapshot(runtime, container_id, "commit")
    change = (*_exposing(record.annotations), *change)
    resume = runtime.paused_for(container_id) if pause and runtime.status(record) == Status.RUNNING else None
    try:
        made = make(ImageStore(g["image_root"]), meta["config"], upper, name, _mounted_on(runtime, record),
                    left_out((record.config or {}).get("process") or {}, record.annotations), message, author,
                    list(change),
                    reading=bundles.reading(record.bundle, container_id, runtime.store.root))
    except OSError:
        if not os.path.isdir(record.bundle):  # removed before we read (`rm -f`): what failed named its files
            raise NotFound(f"commit: container {container_id!r} was removed while it was committed") from None
        raise
    finally:
        if resume is not None:
            try:
                resume()
            except NotFound:
                pass  # removed once its changes were read (`rm -f` waited for that): nothing to resume
    print(made)
    return 0


def _exposing(annotations: dict[str, str]) -> list[str]:
    """The ports the container exposes beyond its image's (--expose, and what it publishes), as
    a --change EXPOSE before the caller's own: docker's commit keeps its container's
    Config.ExposedPorts, where they are."""
    from mrun.cli.container_facts import expose_named, published_ports

    ports = expose_named(annotations)
    ports += [f"{port}/{proto}" for port, proto in sorted(published_ports(annotations))]
    return [f"EXPOSE {' '.join(dict.fromkeys(ports))}"] if ports else []


def _snapshot(runtime: Any, container_id: str, verb: str) -> tuple[Any, dict[str, Any], str]:
    """The container's record, its image.json and the upper directory of its overlay snapshot."""
    record = runtime.store.load(container_id)
    meta = image_of(record.bundle)
    upper = os.path.join(record.bundle, "upper")
    if meta is None or not os.path.isdir(upper) or not _overlay_snapshot(record.bundle):
        raise MrunError(f"{verb}: container {container_id!r} has no overlay snapshot over an image (a bundle's "
                        "container, or MRUN_SNAPSHOTTER=copy): its changes are not kept apart")
    return record, meta, upper


def _mounted_on(runtime: Any, record: Any) -> list[str]:
    """Where mrun (or the user) mounted something in the container: not its changes."""
    mounts = [m.get("destination", "") for m in (record.config or {}).get("mounts") or [] if isinstance(m, dict)]
    if os.path.exists(runtime.store.path(record.id, PLAN)):  # a bridge network's, bound at create
        mounts += ["/etc/hosts", "/etc/hostname", "/etc/resolv.conf"]
    return [d for d in mounts if isinstance(d, str) and d.startswith("/")]


def _overlay_snapshot(bundle: str) -> bool:
    """Its rootfs is an overlay mount, or not mounted and empty (its overlay unmounted since, by a
    reboot): then the upper directory holds its changes. A copied snapshot is a full directory."""
    rootfs = os.path.realpath(os.path.join(bundle, "rootfs"))
    kind = ""
    with open("/proc/self/mountinfo") as f:
        for line in f:  # the last mount on it is the one seen there
            fields = line.split()
            if len(fields) > 4 and fields[4] == rootfs and " - " in line:
                kind = line.split(" - ", 1)[1].split()[0]
    if kind:
        return kind == "overlay"
    try:
        return not os.listdir(rootfs)
    except OSError:
        return False

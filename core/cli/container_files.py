"""docker's ``export`` (a container's files as a tar stream), ``diff`` (what it changed over
its image) and ``commit`` (those changes as a new image). They read the container's root
filesystem as the host holds it: its image's layers and its own changes, without the mounts
made inside the container (volumes, /proc), as docker's leave volumes out. Nothing the
container put there is followed or opened as a device: ``kernel.fdtar`` and ``images.changes``
walk by descriptor."""

from __future__ import annotations

import os
import sys

from mrun.bundles import image_of
from mrun.cli.common import _rt
from mrun.errors import InvalidSpec, MrunError, NotFound

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def export(g: dict[str, Any], container_id: str, output: str = "") -> int:
    from mrun.kernel import fdtar, inroot

    record = _rt(g).store.load(container_id)
    if not output and sys.stdout.isatty():
        raise MrunError("export: cowardly refusing to write a tar archive to a terminal; use -o FILE or redirect")
    root = inroot.open_root(record.rootfs)
    try:
        out = open(output, "wb") if output else sys.stdout.buffer  # noqa: SIM115 - closed below, or stdout
        try:
            skipped = fdtar.write_tree(root, out)
        except BrokenPipeError:  # its reader went away (`| tar t | head`): as tar ends then, quietly
            return 141
        except BaseException:
            if output:  # a half-written archive is no export
                out.close()
                os.unlink(output)
            raise
        if output:
            out.close()
        else:
            out.flush()
    finally:
        os.close(root)
    for line in skipped:
        print(f"mrun: export: {line}", file=sys.stderr)
    return 0


def diff(g: dict[str, Any], container_id: str) -> int:
    from mrun.images.changes import Lower, changes, without_mount_points
    from mrun.images.store import ImageStore

    runtime = _rt(g)
    record, meta, upper = _snapshot(runtime, container_id, "diff")
    store = ImageStore(g["image_root"])
    lower = Lower([store.layer_dir(d) for d in reversed(meta.get("layers") or [])])
    for kind, path in without_mount_points(changes(upper, lower), _mounted_on(runtime, record)):
        print(f"{kind} {path}")
    return 0


def commit(g: dict[str, Any], container_id: str, name: str = "", message: str = "", author: str = "",
           change: tuple[str, ...] = (), pause: bool = True) -> int:
    """docker's commit: the container's changes as one more layer over its image, named ``name``.
    A running container is paused meanwhile (docker's default; --pause=false does not)."""
    from mrun.images.commit import check_name
    from mrun.images.commit import commit as make
    from mrun.images.store import ImageStore
    from mrun.status import Status

    check_name(name)
    runtime = _rt(g)
    record, meta, upper = _snapshot(runtime, container_id, "commit")
    resume = runtime.paused_for(container_id) if pause and runtime.status(record) == Status.RUNNING else None
    try:
        made = make(ImageStore(g["image_root"]), meta["config"], upper, name, _mounted_on(runtime, record),
                    (record.config or {}).get("process") or {}, message, author, list(change))
    finally:
        if resume is not None:
            resume()
    print(made)
    return 0


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
    if os.path.exists(runtime.store.path(record.id, "net.json")):  # a bridge network's, bound at create
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


def cp_stream(g: dict[str, Any], source: str, destination: str, archive: bool) -> int:
    """docker's ``cp CONTAINER:PATH -`` (PATH as a tar stream on stdout, named by its last
    component) and ``cp - CONTAINER:DIR`` (a tar stream on stdin unpacked into the directory DIR).
    The container's side is walked by descriptor as `cp` walks it. A stream in is first unpacked
    as a layer is (``images.unpack``: no name leaves it, nothing is written through a link) into
    a private directory of the image root, then copied in as `cp` copies a directory's contents,
    so the container cannot lead the writes out of its root while they run."""
    from mrun.cli.image_verbs import _container_path, _container_root, source_entry
    from mrun.kernel import inroot

    src_container, src_path = _container_path(source)
    dst_container, dst_path = _container_path(destination)
    if destination == "-" and src_container:
        if sys.stdout.isatty():
            raise MrunError("cp: cowardly refusing to write a tar archive to a terminal; redirect it")
        from mrun.kernel import fdtar

        parent, name = source_entry(src_path)
        root = _container_root(g, src_container)
        try:
            where = inroot.walk(root, parent)
            try:
                skipped = fdtar.write_entry(where, name, sys.stdout.buffer)
            finally:
                os.close(where)
            sys.stdout.flush()
        except FileNotFoundError:
            raise NotFound(f"cp: {source}: no such file or directory") from None
        except BrokenPipeError:  # its reader went away (`| tar t | head`): as tar ends then, quietly
            return 141
        finally:
            os.close(root)
    elif source == "-" and dst_container:
        skipped = _unpack_into(g, dst_container, dst_path, destination, archive)
    else:
        raise InvalidSpec("cp: - (a tar stream on stdin or stdout) goes with CONTAINER:PATH on the other side")
    for path in skipped:
        print(f"mrun: cp: {path}: left out", file=sys.stderr)
    return 0


def _unpack_into(g: dict[str, Any], container_id: str, path: str, destination: str, archive: bool) -> list[str]:
    import stat

    from mrun.cli.image_verbs import _container_root
    from mrun.images.store import ImageStore
    from mrun.images.unpack import unpack
    from mrun.kernel import fdcopy, inroot
    from mrun.kernel.tree import remove_tree

    root = _container_root(g, container_id)
    try:
        try:
            target = inroot.walk(root, path)
        except FileNotFoundError:
            raise NotFound(f"cp: {destination}: no such directory") from None
        try:
            if not stat.S_ISDIR(os.fstat(target).st_mode):
                raise InvalidSpec(f"cp: {destination}: a tar stream is unpacked into a directory; this is not one")
            store = ImageStore(g["image_root"])
            os.makedirs(store.root, exist_ok=True)
            staging = os.path.join(store.root, f"cp-{os.getpid()}.in")  # swept once this pid is gone
            os.mkdir(staging, 0o700)  # root's alone, as the layers are: a set-uid file may come in
            try:
                try:
                    unpack(sys.stdin.buffer, os.path.join(staging, "fs"))
                except MrunError as e:
                    raise MrunError(f"cp: stdin: {e}") from None
                held = os.open(os.path.join(staging, "fs"), os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
                try:
                    return fdcopy.copy(held, ".", target, ".", archive)
                finally:
                    os.close(held)
            finally:
                if os.path.isdir(staging):
                    remove_tree(staging)
        finally:
            os.close(target)
    finally:
        os.close(root)

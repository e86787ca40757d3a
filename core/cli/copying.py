"""docker's ``cp``: files between a container and here, both ways, and as tar streams (``-``).

The container's side is walked inside its root (a running one's through its process, so its
mounts are seen; a stopped one's rootfs), every name by descriptor (``kernel.fdcopy``,
``kernel.fdtar``): nothing in the container leads the copy out, and a source path is cleaned
before its last name is opened (``source_entry``)."""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager

from mrun.cli.common import _rt
from mrun.errors import InvalidSpec, MrunError, NotFound
from mrun.status import Status

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any


def cp(g: dict[str, Any], source: str, destination: str, archive: bool = False, quiet: bool = False,
       follow_link: bool = False) -> int:
    """docker's cp: ``CONTAINER:PATH DEST`` or ``SRC CONTAINER:PATH``. The container's side is
    walked inside its root (a running one's through its process, so its mounts are seen; a
    stopped one's rootfs), every name by descriptor (kernel.fdcopy): nothing in the container
    leads the copy out. ``archive`` (-a) keeps uids and gids; else the files are the caller's.
    ``follow_link`` (-L): a source that is a link is copied as what it leads to, under its name."""
    if "-" in (source, destination):
        return cp_stream(g, source, destination, archive, follow_link)
    src_container, src_path = _container_path(source)
    dst_container, dst_path = _container_path(destination)
    if bool(src_container) == bool(dst_container):
        raise InvalidSpec("cp: one of SRC and DEST is CONTAINER:PATH, the other a path here")
    from mrun.kernel import fdcopy, inroot

    parent, name = source_entry(src_path)
    contents = name == "."
    with _container_root(g, src_container or dst_container) as root:
        try:
            if src_container:
                src_dir = inroot.walk(root, parent)
            else:
                src_dir = os.open(parent, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                shown = name  # a followed link is copied under its own name
                if follow_link and not contents:
                    src_dir, name = _follow(root if src_container else None, src_dir, parent, name)
                try:
                    dst_dir, dst_name = _destination(root if dst_container else None, dst_path, shown, contents)
                except FileNotFoundError:
                    raise NotFound(f"cp: {destination}: its directory does not exist") from None
                try:
                    skipped = fdcopy.copy(src_dir, name, dst_dir, dst_name, archive)
                except FileNotFoundError as e:
                    if _exists_at(src_dir, name):  # not the source: the destination took no file there (/proc)
                        raise MrunError(f"cp: {destination}: cannot make {e.filename or dst_name!s} there: "
                                        f"{e.strerror}") from None
                    raise
                finally:
                    os.close(dst_dir)
            finally:
                os.close(src_dir)
        except FileNotFoundError:
            raise NotFound(f"cp: {source}: no such file or directory") from None
        except NotADirectoryError as e:
            raise InvalidSpec(f"cp: {e.filename or destination}: not a directory") from None
        except OSError as e:
            raise MrunError(f"cp: {e.filename or source}: {e.strerror or e}") from None
    for path in skipped:
        print(f"mrun: cp: {path}: not a file, directory or link; left out", file=sys.stderr)
    return 0


def _follow(root: int | None, src_dir: int, parent: str, name: str) -> tuple[int, str]:
    """docker's ``cp -L``: while the source ``name`` in ``src_dir`` (reached as ``parent``) is a
    link, what it leads to: a container's resolved inside its root (``root``), as the walk
    resolves any path there, a path here as the kernel does. -> (a handle on the directory that
    holds it, its name there; "." for a directory the link names as a whole: "/", ".."). The
    handle replaces ``src_dir``, which is closed once another is returned (left open on a failure,
    for its opener to close)."""
    import stat

    from mrun.kernel import inroot

    here = src_dir
    try:
        for _ in range(inroot.MAX_LINKS):
            try:
                if not stat.S_ISLNK(os.stat(name, dir_fd=here, follow_symlinks=False).st_mode):
                    break
            except FileNotFoundError:
                break  # the copy says it is missing
            target = os.readlink(name, dir_fd=here)
            path = target if target.startswith("/") else f"{parent}/{target}"
            parent, name = os.path.split(path.rstrip("/"))
            if name in ("", ".", ".."):
                parent, name = path, "."
            opened = (inroot.walk(root, parent or "/") if root is not None
                      else os.open(parent or ".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC))
            if here != src_dir:
                os.close(here)
            here = opened
        else:
            raise MrunError(f"cp: {name}: too many levels of symbolic links")
    except BaseException:
        if here != src_dir:
            os.close(here)
        raise
    if here != src_dir:
        os.close(src_dir)
    return here, name


def _exists_at(dir_fd: int, name: str) -> bool:
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        return True
    except OSError:
        return False


def source_entry(path: str) -> tuple[str, str]:
    """A cp source as (its directory, its name there); the name "." is the directory's contents
    (docker's SRC/., and a root). The path is cleaned first, as docker cleans it: a ".." never
    reaches the copy as a name, where it was opened from the directory's handle, and from a
    stopped container's root (a host directory) led to the directory above it."""
    contents = path.endswith("/.") or path.rstrip("/") in ("", ".")
    clean = os.path.normpath(path.removesuffix("/.") if path.endswith("/.") else path or ".")
    parent, name = os.path.split(clean)
    if contents or name in ("", ".", ".."):  # "/", ".", "..": a directory named by no entry of its own
        return clean, "."
    return parent or ".", name


def _container_path(text: str) -> tuple[str, str]:
    """docker's rule: NAME:PATH names a container's path unless it looks like a local path."""
    name, colon, path = text.partition(":")
    if not colon or not name or name.startswith((".", "/")) or "/" in name:
        return "", text
    return name, path if path.startswith("/") else "/" + path


@contextmanager
def _container_root(g: dict[str, Any], container_id: str) -> Iterator[int]:
    """A handle on the container's root: a live one's through /proc (its mounts, volumes
    included), checked to be the same process after it was opened; a stopped one's rootfs.
    Its files stay while it is held: an `rm -f` meanwhile waits (``bundles.reading``)."""
    from mrun.bundles import reading
    from mrun.cli.short_ids import resolve
    from mrun.kernel import inroot

    container_id = resolve(g, container_id)  # docker's short ids (`cp 3f2a:/etc/hosts .`)
    runtime = _rt(g)
    record = runtime.store.load(container_id)
    with reading(record.bundle, container_id, runtime.store.root) as held:
        if held.released:  # removed since we looked
            raise NotFound(f"container {container_id!r} does not exist")
        fd = -1
        if runtime.status(record) != Status.STOPPED and record.pid:
            fd = inroot.open_root(f"/proc/{record.pid}/root")
            if runtime.status(runtime.store.load(container_id)) == Status.STOPPED:
                os.close(fd)  # it ended as we opened it: its pid may be another's now
                fd = -1
        if fd < 0:
            fd = inroot.open_root(record.rootfs)
        try:
            yield fd
        finally:
            os.close(fd)
        if held.released:  # while we copied, after its release waited its longest: a part of it is no copy
            raise MrunError(f"cp: container {container_id!r} was removed while it was copied")


def _destination(root: int | None, path: str, name: str, contents: bool) -> tuple[int, str]:
    """docker's placing: into DEST when it is a directory (as NAME, or the contents for SRC/.),
    else as DEST, whose directory must exist. -> (handle on the directory, the name there)."""
    from mrun.kernel import inroot

    def open_dir(p: str) -> int:
        return inroot.walk(root, p) if root is not None else os.open(p or ".", os.O_PATH | os.O_CLOEXEC)

    try:
        target = open_dir(path)
    except FileNotFoundError:
        target = -1
    if target >= 0:
        import stat

        if stat.S_ISDIR(os.fstat(target).st_mode):
            return (target, ".") if contents else (target, name or ".")
        os.close(target)
        if contents:
            raise InvalidSpec(f"cp: {path}: cannot copy a directory to a file")
    elif path.endswith("/"):
        raise NotFound(f"cp: {path}: the destination directory does not exist")
    parent, last = os.path.split(path.rstrip("/"))
    where = open_dir(parent or ("/" if root is not None else "."))
    if contents:  # SRC/. to a new DEST: DEST made, the contents copied into it
        try:
            os.mkdir(last, 0o755, dir_fd=where)
            return os.open(last, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=where), "."
        finally:
            os.close(where)
    return where, last


def cp_stream(g: dict[str, Any], source: str, destination: str, archive: bool, follow_link: bool = False) -> int:
    """docker's ``cp CONTAINER:PATH -`` (PATH as a tar stream on stdout, named by its last
    component) and ``cp - CONTAINER:DIR`` (a tar stream on stdin unpacked into the directory DIR).
    The container's side is walked by descriptor as `cp` walks it. A stream in is first unpacked
    as a layer is (``images.unpack``: no name leaves it, nothing is written through a link) into
    a private directory of the image root, then copied in as `cp` copies a directory's contents,
    so the container cannot lead the writes out of its root while they run."""
    from mrun.kernel import inroot

    src_container, src_path = _container_path(source)
    dst_container, dst_path = _container_path(destination)
    if destination == "-" and src_container:
        if sys.stdout.isatty():
            raise MrunError("cp: cowardly refusing to write a tar archive to a terminal; redirect it")
        from mrun.kernel import fdtar

        parent, name = source_entry(src_path)
        with _container_root(g, src_container) as root:
            try:
                where, shown = inroot.walk(root, parent), name
                try:
                    if follow_link and name != ".":
                        where, name = _follow(root, where, parent, name)
                    skipped = fdtar.write_entry(where, name, sys.stdout.buffer, shown)
                finally:
                    os.close(where)
                sys.stdout.flush()
            except FileNotFoundError:
                raise NotFound(f"cp: {source}: no such file or directory") from None
            except BrokenPipeError:  # its reader went away (`| tar t | head`): as tar ends then, quietly
                return 141
    elif source == "-" and dst_container:
        skipped = _unpack_into(g, dst_container, dst_path, destination, archive)
    else:
        raise InvalidSpec("cp: - (a tar stream on stdin or stdout) goes with CONTAINER:PATH on the other side")
    for path in skipped:
        print(f"mrun: cp: {path}: left out", file=sys.stderr)
    return 0


def _unpack_into(g: dict[str, Any], container_id: str, path: str, destination: str, archive: bool) -> list[str]:
    import stat

    from mrun.images.store import ImageStore
    from mrun.images.unpack import unpack
    from mrun.kernel import fdcopy, inroot
    from mrun.kernel.tree import remove_tree

    with _container_root(g, container_id) as root:
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
            if os.path.lexists(staging):  # a killed cp's that had our pid: never anyone else's
                remove_tree(staging)
            os.mkdir(staging, 0o700)  # root's alone, as the layers are: a set-uid file may come in
            try:
                try:
                    unpack(sys.stdin.buffer, os.path.join(staging, "fs"))
                except MrunError as e:
                    raise MrunError(f"cp: stdin: {e}") from None
                held = os.open(os.path.join(staging, "fs"), os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
                try:
                    return fdcopy.copy(held, ".", target, ".", archive)
                except OSError as e:
                    raise MrunError(f"cp: {destination}: {e.strerror or e}") from None
                finally:
                    os.close(held)
            finally:
                if os.path.isdir(staging):
                    remove_tree(staging)
        finally:
            os.close(target)

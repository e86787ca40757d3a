"""A container's tree written as a tar stream by descriptor (`mrun export`).

The tree is walked as `mrun cp` walks it (``fdcopy``): every name opened relative to its
directory's handle with ``O_NOFOLLOW``, a link stored as a link and never followed, a regular
file held by an O_PATH handle and looked at before it is opened (``inroot.open_regular_at``),
so a container changing its files while the export runs can make an entry go missing, never
lead the walk out of its root or have the host open a device. Devices and fifos are stored as
nodes (their numbers), hard links as links to the first name, sockets left out; a directory on
another filesystem (something mounted there) is stored, its contents not (tar's
--one-file-system). A file that shrinks while it is read is padded with zeros to the size it
was opened with, one that grows is cut there, as the tar header already says. Sparse files are
written out whole, as docker's export writes them. A loop with a stack, depth at most
``MAX_DEPTH``."""

from __future__ import annotations

import os
import stat
import tarfile

from mrun.errors import MrunError
from mrun.kernel.inroot import open_regular_at
from mrun.kernel.overlay import is_opaque, is_whiteout

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import BinaryIO

MAX_DEPTH = 256
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NODES = {stat.S_IFCHR: tarfile.CHRTYPE, stat.S_IFBLK: tarfile.BLKTYPE, stat.S_IFIFO: tarfile.FIFOTYPE}


def write_tree(root_fd: int, out: BinaryIO, leave_out: frozenset[str] = frozenset(),
               whiteouts: bool = False) -> list[str]:
    """Everything below the directory ``root_fd`` into a tar stream on ``out``, named relative to
    it as docker's export names them (``etc/passwd``). ``leave_out``: such paths, and what is
    below them, are not written. ``whiteouts``: the tree is an overlay's upper directory, whose
    deletions (0/0 character devices) and opaque directories are written as an image layer says
    them (``.wh.NAME``, ``.wh..wh..opq``). -> the paths left out, and why."""
    skipped: list[str] = []
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        top = os.open(".", _DIR, dir_fd=root_fd)
        _walk(tar, [(top, "", iter(sorted(os.listdir(top))))], os.fstat(root_fd).st_dev, {}, skipped,
              leave_out, whiteouts)
    return skipped


def write_entry(parent_fd: int, name: str, out: BinaryIO, as_name: str = "") -> list[str]:
    """The entry ``name`` of the directory ``parent_fd`` (a directory with all below it) into a
    tar stream on ``out``, named as docker's ``cp CONTAINER:PATH -`` names it (``etc/passwd`` for
    /etc), or ``as_name`` (``cp -L``: a link's, for what it leads to); "." writes the directory's
    contents (``PATH/.``). What is mounted below is written too, as cp copies it. -> the paths
    left out, and why."""
    skipped: list[str] = []
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        if name == ".":
            top: int | None = os.open(".", _DIR, dir_fd=parent_fd)
            prefix = ""
        else:
            shown = as_name or name
            top, prefix = _entry(tar, parent_fd, name, shown, None, {}, skipped), f"{shown}/"
        if top is not None:
            _walk(tar, [(top, prefix, iter(sorted(os.listdir(top))))], None, {}, skipped)
    return skipped


def _walk(tar: tarfile.TarFile, stack: list, device: int | None, first_names: dict[tuple[int, int], str],
          skipped: list[str], leave_out: frozenset[str] = frozenset(), whiteouts: bool = False) -> None:
    """Each directory on ``stack`` (handle, its path in the archive with "/", its names) with all
    below it; the handles are closed. ``device``: the filesystem to stay on (None: any)."""
    try:
        while stack:
            handle, prefix, names = stack[-1]
            name = next(names, None)
            if name is None:
                os.close(stack.pop()[0])
                continue
            if prefix + name in leave_out:
                continue
            if whiteouts and _layer_marker(tar, handle, name, prefix):
                continue
            child = _entry(tar, handle, name, prefix + name, device, first_names, skipped)
            if child is not None and whiteouts and is_opaque(child):
                _empty_file(tar, f"{prefix}{name}/.wh..wh..opq")
            if child is not None:
                if len(stack) >= MAX_DEPTH:
                    os.close(child)
                    raise MrunError(f"{prefix}{name}: more than {MAX_DEPTH} directories deep; not exported")
                stack.append((child, f"{prefix}{name}/", iter(sorted(os.listdir(child)))))
    finally:
        for handle, _prefix, _names in stack:
            os.close(handle)


def _entry(tar: tarfile.TarFile, parent: int, name: str, path: str, device: int | None,
           first_names: dict[tuple[int, int], str], skipped: list[str]) -> int | None:
    """One entry into ``tar``. -> a handle on a directory whose contents are to follow, or None."""
    try:
        st = os.stat(name, dir_fd=parent, follow_symlinks=False)
    except FileNotFoundError:  # gone since the listing: the container changed it
        return None
    info = tarfile.TarInfo(path)
    info.mode, info.uid, info.gid, info.mtime = stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, int(st.st_mtime)
    kind = stat.S_IFMT(st.st_mode)
    if kind == stat.S_IFDIR:
        info.type = tarfile.DIRTYPE
        tar.addfile(info)
        if device is not None and st.st_dev != device:
            skipped.append(f"{path}: another filesystem is mounted there; its contents left out")
            return None
        try:
            return os.open(name, _DIR, dir_fd=parent)
        except OSError:  # swapped for something else since we looked
            skipped.append(f"{path}: changed while exported; its contents left out")
            return None
    if kind == stat.S_IFLNK:
        info.type, info.linkname = tarfile.SYMTYPE, os.readlink(name, dir_fd=parent)
        tar.addfile(info)
    elif kind in _NODES:
        info.type = _NODES[kind]
        info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        tar.addfile(info)
    elif kind == stat.S_IFREG:
        key = (st.st_dev, st.st_ino)
        if st.st_nlink > 1 and key in first_names:
            info.type, info.linkname = tarfile.LNKTYPE, first_names[key]
            tar.addfile(info)
            return None
        fd = open_regular_at(parent, name)
        if fd is None:
            skipped.append(f"{path}: changed while exported; left out")
            return None
        try:
            info.size = os.fstat(fd).st_size
            tar.addfile(info, _Exactly(fd, info.size))
        finally:
            os.close(fd)
        first_names[key] = path
    else:
        skipped.append(f"{path}: a socket; left out")
    return None


def _layer_marker(tar: tarfile.TarFile, parent: int, name: str, prefix: str) -> bool:
    """An overlay's deletion (a 0/0 character device) written as a layer's whiteout file."""
    try:
        st = os.stat(name, dir_fd=parent, follow_symlinks=False)
    except FileNotFoundError:
        return True
    if is_whiteout(st):
        _empty_file(tar, f"{prefix}.wh.{name}")
        return True
    return False


def _empty_file(tar: tarfile.TarFile, path: str) -> None:
    info = tarfile.TarInfo(path)
    info.mode = 0o644
    tar.addfile(info)


class _Exactly:
    """``size`` bytes of the file ``fd`` for tarfile, which must get as many as its header says."""

    def __init__(self, fd: int, size: int) -> None:
        self.fd, self.left = fd, size

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        data = b""
        while len(data) < n and (chunk := os.read(self.fd, n - len(data))):
            data += chunk
        if len(data) < n:  # it shrank meanwhile
            data += bytes(n - len(data))
        self.left -= len(data)
        return data

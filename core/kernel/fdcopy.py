"""Copying files between a container's root and the host through descriptors (`mrun cp`).

Both sides are walked by descriptor: every name is opened relative to its directory's handle
with ``O_NOFOLLOW``, so a link in the tree is copied as a link and never followed, and a
container that swaps a directory for a link while the copy runs makes that step fail instead
of leading it out of its root (where the copy starts inside a container is found by
``inroot.walk``). Regular files, directories and links are copied with their modes and
modification times; devices, fifos and sockets are left out and named. The copy is a loop
with a stack, not a recursion, and refuses trees deeper than ``MAX_DEPTH``.
"""

from __future__ import annotations

import os
import stat

from mrun.errors import MrunError
from mrun.kernel.inroot import open_regular_at
from mrun.kernel.replacing import node_named

MAX_DEPTH = 256
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def copy(src_dir: int, src_name: str, dst_dir: int, dst_name: str, keep_owner: bool = False) -> list[str]:
    """Copy the entry ``src_name`` of the directory ``src_dir`` (a handle) to ``dst_name`` in
    ``dst_dir``; ``src_name`` "." copies the directory's contents into ``dst_dir`` itself.
    ``keep_owner``: the source's uid and gid (docker's ``cp -a``), else the caller's.
    -> the paths left out (not a file, a directory or a link)."""
    skipped: list[str] = []
    if src_name == ".":  # into a directory that was there: its own mode and owner stay
        src = os.open(".", _DIR, dir_fd=src_dir)
        dst = os.open(".", _DIR, dir_fd=dst_dir)
        _copy_dir(src, dst, ".", keep_owner, skipped, finish_top=False)
    else:
        pushed = _copy_entry(src_dir, src_name, dst_dir, dst_name, src_name, keep_owner, skipped)
        if pushed is not None:
            _copy_dir(*pushed, keep_owner, skipped)
    return skipped


def _copy_dir(src: int, dst: int, path: str, keep_owner: bool, skipped: list[str], finish_top: bool = True) -> None:
    """Copy what the directory ``src`` holds into ``dst`` (both handles, closed here), depth first."""
    stack = [(src, dst, path, iter(sorted(os.listdir(src))))]
    try:
        while stack:
            s, d, where, names = stack[-1]
            name = next(names, None)
            if name is None:
                stack.pop()
                if stack or finish_top:
                    _finish_dir(s, d, keep_owner)
                else:
                    os.close(s)
                    os.close(d)
                continue
            pushed = _copy_entry(s, name, d, name, f"{where}/{name}", keep_owner, skipped)
            if pushed is not None:
                if len(stack) >= MAX_DEPTH:
                    for fd in pushed[:2]:
                        os.close(fd)
                    raise MrunError(f"{where}/{name}: more than {MAX_DEPTH} directories deep; not copied")
                stack.append((*pushed, iter(sorted(os.listdir(pushed[0])))))
    finally:
        for s, d, _, _ in stack:
            os.close(s)
            os.close(d)


def _copy_entry(sdir: int, name: str, ddir: int, dname: str, path: str, keep_owner: bool,
                skipped: list[str]) -> tuple[int, int, str] | None:
    """One entry. -> (source, destination, path) handles of a directory still to fill, or None."""
    st = os.stat(name, dir_fd=sdir, follow_symlinks=False)
    if stat.S_ISDIR(st.st_mode):
        try:
            os.mkdir(dname, 0o700, dir_fd=ddir)  # its own mode once filled (_finish_dir): writable meanwhile
        except FileExistsError:
            if not stat.S_ISDIR(os.stat(dname, dir_fd=ddir, follow_symlinks=False).st_mode):
                raise MrunError(f"{path}: cannot copy a directory over something that is not one") from None
        s = os.open(name, _DIR, dir_fd=sdir)
        try:
            d = os.open(dname, _DIR, dir_fd=ddir)
        except OSError:
            os.close(s)
            raise
        return s, d, path
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
        skipped.append(path)
        return None
    _replace_non_directory(ddir, dname, path)
    if stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(name, dir_fd=sdir), dname, dir_fd=ddir)
    else:
        src = open_regular_at(sdir, name)  # never an open of a device swapped in since we looked
        if src is None:
            skipped.append(path)
            return None
        try:
            dst = os.open(dname, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                          dir_fd=ddir)
            try:
                _copy_data(src, dst, st.st_size)
                if keep_owner:
                    os.fchown(dst, st.st_uid, st.st_gid)
                os.fchmod(dst, stat.S_IMODE(st.st_mode))  # after the chown, which clears set-id bits
            finally:
                os.close(dst)
        finally:
            os.close(src)
    if keep_owner and stat.S_ISLNK(st.st_mode):
        os.chown(dname, st.st_uid, st.st_gid, dir_fd=ddir, follow_symlinks=False)
    os.utime(dname, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=ddir, follow_symlinks=False)
    return None


def _copy_data(src: int, dst: int, size: int) -> None:
    """The file's data, its holes kept holes: a sparse file of a terabyte (a few blocks in the
    container) is a few blocks here too, not a terabyte of zeros written to the host's disk."""
    offset = 0
    while offset < size:
        try:
            start = os.lseek(src, offset, os.SEEK_DATA)
        except OSError:  # ENXIO: only a hole is left
            break
        try:
            end = os.lseek(src, start, os.SEEK_HOLE)
        except OSError:
            end = size
        os.lseek(src, start, os.SEEK_SET)
        os.lseek(dst, start, os.SEEK_SET)
        left = end - start
        while left > 0:
            sent = os.sendfile(dst, src, None, min(left, 1 << 30))
            if sent == 0:  # it shrank meanwhile
                left = 0
                break
            left -= sent
        offset = end
    os.ftruncate(dst, size)


def _replace_non_directory(ddir: int, dname: str, path: str) -> None:
    """A file or link already at ``dname`` is replaced (as tar replaces it); a directory is not,
    nor a device, fifo or socket: `cp CTR:/etc/passwd /dev/null` made the host's /dev/null a
    copy of it (docker's cp replaces it so)."""
    try:
        existing = os.stat(dname, dir_fd=ddir, follow_symlinks=False)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(existing.st_mode):
        raise MrunError(f"{path}: cannot copy over the directory that is there")
    node = node_named(existing.st_mode)
    if node:
        raise MrunError(f"{path}: cannot copy over {dname}, {node}: only a file or a link is replaced")
    os.unlink(dname, dir_fd=ddir)


def _finish_dir(src: int, dst: int, keep_owner: bool) -> None:
    """A filled directory gets its source's mode, owner (``keep_owner``) and times; closed."""
    try:
        st = os.fstat(src)
        if keep_owner:
            os.fchown(dst, st.st_uid, st.st_gid)
        os.fchmod(dst, stat.S_IMODE(st.st_mode))
        os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))
    finally:
        os.close(src)
        os.close(dst)

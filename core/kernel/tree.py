"""``rm -rf`` for trees a container or an image wrote: as deep as they like, never followed out.

Why not ``shutil.rmtree``: it recurses, a Python frame and an open descriptor per level, so a
container that nests directories a few thousand deep (``mkdir d; cd d`` in a loop, or ``mv``
to nest without long paths) made ``mrun rm`` fail with RecursionError, or EMFILE, and its
directory could never be removed. Here the walk is a loop holding one descriptor, going down
by name and back up by ``..``, each step checked against the identity (device, inode) recorded
on the way down; the tree's names are kept, not its descriptors. It never descends into another
filesystem: a mount left in the tree (a rootfs's overlay that would not unmount) is refused, not
emptied through. (A bind mount from the same filesystem has the same device: that is not seen.)
"""

from __future__ import annotations

import errno
import os
import stat

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def remove_tree(path: str, ignore_errors: bool = False) -> None:
    """Remove ``path`` (a file, a link or a directory tree); a missing path is fine."""
    try:
        _remove(path)
    except OSError:
        if not ignore_errors:
            raise


def _remove(path: str) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(path)
        return
    fd = os.open(path, _DIR_FLAGS)
    try:
        top = os.fstat(fd)
        if (top.st_dev, top.st_ino) != (st.st_dev, st.st_ino):
            raise OSError(errno.ESTALE, "replaced while it was being removed", path)
        # per level: (device, inode), its name in the level above, subdirectories still to visit
        levels: list[tuple[tuple[int, int], str, list[str]]] = [((top.st_dev, top.st_ino), "", _empty_but_dirs(fd))]
        while True:
            pending = levels[-1][2]
            if pending:
                name = pending.pop()
                child = _open_below(fd, name, top.st_dev, path)
                if child < 0:
                    continue
                os.close(fd)
                fd = child
                cst = os.fstat(fd)
                levels.append(((cst.st_dev, cst.st_ino), name, _empty_but_dirs(fd)))
                continue
            if len(levels) == 1:
                break
            _identity, name, _ = levels.pop()
            up = os.open("..", _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = up
            ust = os.fstat(fd)
            if (ust.st_dev, ust.st_ino) != levels[-1][0]:
                raise OSError(errno.ESTALE, "moved while it was being removed", path)
            os.rmdir(name, dir_fd=fd)
    finally:
        os.close(fd)
    os.rmdir(path)


def _empty_but_dirs(fd: int) -> list[str]:
    """Unlink every entry of the directory ``fd`` that is not a directory. -> the directories."""
    dirs = []
    with os.scandir(fd) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                dirs.append(entry.name)
            else:
                os.unlink(entry.name, dir_fd=fd)
    return dirs


def _open_below(fd: int, name: str, device: int, path: str) -> int:
    """The subdirectory ``name`` of ``fd``, opened; -1 if it is gone or was replaced by a
    non-directory meanwhile (then unlinked). Refuses one on another filesystem."""
    try:
        child = os.open(name, _DIR_FLAGS, dir_fd=fd)
    except FileNotFoundError:
        return -1
    except OSError as e:
        if e.errno not in (errno.ELOOP, errno.ENOTDIR):
            raise
        os.unlink(name, dir_fd=fd)
        return -1
    if os.fstat(child).st_dev != device:
        os.close(child)
        raise OSError(errno.EXDEV, "a mount point is in the tree; not removed", path)
    return child


def directories(top: str, leaves_first: bool = False) -> list[str]:
    """``top`` and every directory below it (links not followed), each before what it holds, or
    after with ``leaves_first``. A loop, not os.walk, which recurses a generator per level: a
    cgroup tree a container nested 1500 deep made `delete` an internal RecursionError."""
    found, pending = [], [top]
    while pending:
        d = pending.pop()
        try:
            with os.scandir(d) as entries:
                below = [e.path for e in entries if e.is_dir(follow_symlinks=False)]
        except OSError:  # gone meanwhile, or unreadable: left out, as os.walk leaves it out
            continue
        found.append(d)
        pending.extend(below)
    return found[::-1] if leaves_first else found

"""Paths inside a root, resolved the way the container would see them, acted on through handles.

Every place that creates, mounts on, writes, reads or chmods something inside a rootfs from the
host side comes through here, so a hostile image (``/dev -> /tmp/x``, ``/etc -> ../../../etc``)
cannot aim any of it at the host. A path is walked one component at a time from an ``O_PATH``
handle on the root: each step is opened with ``O_NOFOLLOW`` relative to the previous handle;
a symlink is read and its target spliced into the walk *inside* the root (an absolute target
restarts at the root, ``..`` pops a handle the walk itself opened and never climbs above the
root). The result is an open handle on an object inside the root, not a string the kernel would
resolve again through the host; callers act on it with ``*at`` calls or through
``/proc/self/fd/N`` (a mount target, a file to reopen), as runc does.

Why a walk and not ``openat2(RESOLVE_IN_ROOT)``: the walk also creates what is missing on the
way (mount targets, /dev's parents) with the same guarantees, and it is one mechanism on every
kernel, which the tests prove against symlinks, ``..`` and dangling links alike.
"""

from __future__ import annotations

import os
import stat

from mrun.errors import MrunError

MAX_LINKS = 40  # what the kernel allows in one lookup
_PATH_FLAGS = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC


def open_root(root: str) -> int:
    """An ``O_PATH`` handle on the root directory itself (the operator's path: trusted)."""
    return os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)


def fd_path(fd: int) -> str:
    """A path the kernel resolves to exactly the object behind ``fd`` (a mount target, say)."""
    return f"/proc/self/fd/{fd}"


def clean(path: str) -> str:
    """Go's filepath.Clean, as runc cleans a mount's destination: os.path.normpath, but a leading
    "//" (which POSIX lets mean something else, and normpath keeps) is "/": "//dev" is /dev to
    the kernel, and must be to every test of a destination too."""
    norm = os.path.normpath(path)
    return norm[1:] if norm.startswith("//") else norm


def _split(path: str) -> list[str]:
    return [p for p in path.split("/") if p and p != "."]


def walk(root_fd: int, path: str, create: str = "", mode: int = 0o755) -> int:
    """-> an ``O_PATH`` handle on ``path`` resolved inside the root behind ``root_fd``.

    ``create``: "" creates nothing (a missing component raises FileNotFoundError); "dir" makes
    every missing component a directory; "file" makes missing parents directories and a missing
    last component an empty regular file. A symlink as the last component is followed (inside
    the root) like any other.
    """
    parts = _split(path)
    stack = [os.dup(root_fd)]  # stack[0] is the root; stack[-1] the directory we are in
    links = 0
    try:
        while parts:
            part = parts.pop(0)
            if part == "..":
                if len(stack) > 1:
                    os.close(stack.pop())
                continue
            here = stack[-1]
            try:
                fd = os.open(part, _PATH_FLAGS, dir_fd=here)
            except FileNotFoundError:
                if not create:
                    raise
                fd = _make(here, part, "file" if create == "file" and not parts else "dir", mode)
            st = os.fstat(fd)
            if stat.S_ISLNK(st.st_mode):
                os.close(fd)
                links += 1
                if links > MAX_LINKS:
                    raise MrunError(f"{path}: too many levels of symbolic links inside the container's root")
                target = os.readlink(part, dir_fd=here)
                if target.startswith("/"):
                    for extra in stack[1:]:
                        os.close(extra)
                    del stack[1:]
                parts = _split(target) + parts
                continue
            if parts and not stat.S_ISDIR(st.st_mode):
                os.close(fd)
                raise NotADirectoryError(20, "Not a directory", path)
            stack.append(fd)
        return stack.pop() if len(stack) > 1 else os.dup(stack[0])
    finally:
        for fd in stack:
            os.close(fd)


def _make(dir_fd: int, name: str, kind: str, mode: int) -> int:
    """Create ``name`` in ``dir_fd`` (losing a race to another creator is fine) and open it."""
    try:
        if kind == "dir":
            os.mkdir(name, mode, dir_fd=dir_fd)
        else:
            os.close(os.open(name, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644,
                             dir_fd=dir_fd))
    except FileExistsError:
        pass
    return os.open(name, _PATH_FLAGS, dir_fd=dir_fd)


class at:  # noqa: N801 - used as ``with inroot.at(...)``, as the function it was
    """``with at(root, "/etc/hosts", create="file") as target: mount(src, target, ...)``:
    a path valid for the block that names the in-root object, whatever the rootfs's links say.
    A class, not contextlib's decorator: contextlib's import is ~1 ms of every create."""

    def __init__(self, root_fd: int, path: str, create: str = "", mode: int = 0o755) -> None:
        self.fd = walk(root_fd, path, create, mode)

    def __enter__(self) -> str:
        return fd_path(self.fd)

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)


def parent_and_name(root_fd: int, path: str) -> tuple[int, str]:
    """-> (handle on the in-root parent directory, made if missing; last component) for ``*at``
    calls on the last component itself (mknod, unlink, symlink), which must not follow it."""
    parts = _split(path)
    if not parts or parts[-1] == "..":
        raise MrunError(f"{path}: names no file inside the container's root")
    return walk(root_fd, "/".join(parts[:-1]), "dir"), parts[-1]


def open_in(root: str, path: str, create: str = "") -> int:
    """``walk`` from the root directory ``root`` (a path: "/" for our own root after the pivot)."""
    root_fd = open_root(root)
    try:
        return walk(root_fd, path, create)
    finally:
        os.close(root_fd)


def open_regular(root: str, path: str) -> int:
    """A regular file of the rootfs, opened for reading where the container would find it. Never
    a fifo (whose open waits for a writer) or a device (whose open acts on hardware): what the
    walk found is looked at before it is opened."""
    fd = open_in(root, path)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(21, "not a regular file", path)
        return os.open(fd_path(fd), os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK)
    finally:
        os.close(fd)


def open_regular_at(dir_fd: int | None, name: str, flags: int = os.O_RDONLY, follow: bool = False) -> int | None:
    """The regular file ``name`` of the directory ``dir_fd`` (None: a path of ours), opened with
    ``flags`` (for reading); None for anything else. Held first by an O_PATH handle (which opens
    nothing: no driver's open runs, no fifo waits), looked at, and only then opened through that
    handle: a device a container swaps in for a file between a look and an open by name is never
    opened by the host. A link at ``name`` is followed only with ``follow`` (else: None)."""
    held = os.open(name, os.O_PATH | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW), dir_fd=dir_fd)
    try:
        if not stat.S_ISREG(os.fstat(held).st_mode):
            return None
        return os.open(fd_path(held), flags | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK)
    finally:
        os.close(held)


def read_regular(path: str, limit: int, follow: bool = False) -> bytes | None:
    """At most ``limit`` bytes of the regular file ``path`` (a path of ours: open_regular_at's
    rules, so a fifo or a device is never opened); None for anything else. OSError as the open
    raises it (FileNotFoundError: nothing there)."""
    fd = open_regular_at(None, path, os.O_RDONLY, follow)
    if fd is None:
        return None
    with open(fd, "rb") as f:
        return f.read(limit)


def read_file(root: str, path: str, limit: int = 1 << 20) -> bytes:
    """A small file of the rootfs (an image's /etc/passwd), read where the container would read it."""
    rfd = open_regular(root, path)
    try:
        return os.read(rfd, limit)
    finally:
        os.close(rfd)


def secure_join(root: str, unsafe: str) -> str:
    """Resolve ``unsafe`` under ``root`` the way the container would see it, as a path string:
    ``..`` stops at the root and absolute symlinks restart from it. For *finding and reading*
    (which program an image runs); anything that creates or mounts uses ``walk``'s handles."""
    parts = [p for p in unsafe.split("/") if p]
    resolved: list[str] = []
    links = 0
    while parts:
        part = parts.pop(0)
        if part == ".":
            continue
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = os.path.join(root, *resolved, part)
        try:
            st = os.lstat(candidate)
        except FileNotFoundError:
            resolved.append(part)
            continue
        if stat.S_ISLNK(st.st_mode):
            links += 1
            if links > 40:
                raise MrunError(f"{unsafe}: too many levels of symbolic links")
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p] + parts
            continue
        resolved.append(part)
    return os.path.join(root, *resolved)

"""An overlay mount of as many layers as overlayfs stacks, whatever their paths.

The kernel takes one page of mount options. Named by their paths (an image's layers under
/var/lib/mrun, 88 characters each; containerd's snapshots, ~70), about 45 to 55 layers fit, and
beyond that the options were cut short: "No such file or directory". docker builds up to 125.
So the directories are named by their paths when those fit (what /proc/self/mountinfo then
shows), else by descriptor, ``/proc/self/fd/N`` (17 characters: ~220 layers fit), as
containerd's runc shim shortens them its own way (relative to a common directory, from a
chdir'd child). Descriptors too for a path holding one of overlay's separators (``,:\\``).
"""

from __future__ import annotations

import errno
import os
import stat

from mrun.kernel import syscalls as sc

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

PAGE_MAX = 4095  # the options' page, its last byte a NUL
OPAQUE_XATTR = "trusted.overlay.opaque"  # "y" on a directory: what lies below it is hidden


def is_whiteout(st: os.stat_result) -> bool:
    """overlayfs's deletion of a name: a 0/0 character device in a layer or an upper directory."""
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def is_opaque(dir_fd: int) -> bool:
    """Whether the directory held by ``dir_fd`` hides what the layers below hold under it."""
    try:
        return os.getxattr(f"/proc/self/fd/{dir_fd}", OPAQUE_XATTR) == b"y"
    except OSError:
        return False


def options(lower: Sequence[str], upper: str = "", work: str = "", other: Sequence[str] = ()) -> str:
    """``lower``: top first (an empty entry stays empty: ``::`` marks data-only layers)."""
    parts = [f"lowerdir={':'.join(lower)}"]
    if upper:
        parts.append(f"upperdir={upper}")
    if work:
        parts.append(f"workdir={work}")
    return ",".join([*parts, *other])


def topmost_once(lower: Sequence[str]) -> list[str]:
    """``lower`` (top first) with each directory at its topmost place only. An image may hold one
    layer twice (two commits that changed nothing, a build step repeated: layers are kept by
    digest), and overlayfs refuses a lower directory named twice ("Too many levels of symbolic
    links"). Nothing changes: the copy below is shadowed by the one above, whose whiteouts and
    opaque directories are its own, for every path either holds."""
    seen: set[str] = set()
    out = []
    for d in lower:
        if d and d in seen:
            continue
        seen.add(d)
        out.append(d)
    return out


def mount(
    target: str, lower: Sequence[str], upper: str = "", work: str = "", other: Sequence[str] = (), flags: int = 0
) -> None:
    lower = topmost_once(lower)
    plain = options(lower, upper, work, other)
    dirs = [*lower, upper, work]
    if len(plain) <= PAGE_MAX and not any(sep in d for d in dirs for sep in ",:\\"):
        sc.mount("overlay", target, "overlay", flags, plain)
        return
    fds: list[int] = []

    def by_descriptor(path: str) -> str:
        if not path:
            return path
        fds.append(os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC))
        return f"/proc/self/fd/{fds[-1]}"

    try:
        short = options([by_descriptor(d) for d in lower], by_descriptor(upper), by_descriptor(work), other)
        if len(short) > PAGE_MAX:
            raise OSError(errno.E2BIG, f"{len(lower)} layers: more than one overlay mount can stack here")
        sc.mount("overlay", target, "overlay", flags, short)
    finally:
        for fd in fds:
            os.close(fd)

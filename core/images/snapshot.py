"""A container's rootfs over its image's layers: an overlay mount, or a copy where overlay is
unavailable (a kernel without it, an image root on a filesystem overlay cannot use as a layer).

The layers are stored in overlay's form, so the copy reads that form back: a 0/0 character
device is a whiteout (the name is deleted), ``trusted.overlay.opaque=y`` on a directory hides
what lower layers had in it. ``MRUN_SNAPSHOTTER=copy`` forces the copy.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat

from mrun.errors import MrunError
from mrun.kernel import overlay
from mrun.kernel.overlay import OPAQUE_XATTR, is_whiteout
from mrun.kernel.tree import remove_tree


def mount_or_copy(layers: list[str], bundle: str, warn: object = None) -> str:
    """``layers`` bottom first. -> "overlay" or "copy" (what ``release`` must undo)."""
    rootfs = os.path.join(bundle, "rootfs")
    if os.environ.get("MRUN_SNAPSHOTTER", "overlay") != "copy":
        try:
            upper, work = os.path.join(bundle, "upper"), os.path.join(bundle, "work")
            overlay.mount(rootfs, list(reversed(layers)), upper, work)
            return "overlay"
        except OSError as e:
            if e.errno not in (errno.ENODEV, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOSYS):
                raise MrunError(f"mounting the image's layers (overlay) on {rootfs}: {e.strerror}")
            if callable(warn):
                warn(f"overlay is unavailable here ({e.strerror}): copying the image's layers instead")
    for layer in layers:
        apply_layer(layer, rootfs)
    return "copy"


def apply_layer(layer: str, rootfs: str) -> None:
    """Copy one stored layer over ``rootfs``, each directory before what it holds. A loop over a
    stack, not os.walk: that recurses a generator per level, and a layer nesting 1200
    directories made `mrun run` an internal RecursionError with the copy snapshotter."""
    pending = [""]
    while pending:
        rel = pending.pop()
        src_dir = os.path.join(layer, rel) if rel else layer
        dst_dir = os.path.join(rootfs, rel) if rel else rootfs
        if rel:
            try:
                opaque = os.getxattr(src_dir, OPAQUE_XATTR, follow_symlinks=False) == b"y"
            except OSError:
                opaque = False
            if opaque:
                remove_tree(dst_dir)
            if not os.path.isdir(dst_dir) or os.path.islink(dst_dir):
                remove_tree(dst_dir)
                os.mkdir(dst_dir)
            shutil.copystat(src_dir, dst_dir, follow_symlinks=False)
            st = os.lstat(src_dir)
            os.lchown(dst_dir, st.st_uid, st.st_gid)
        files = []
        with os.scandir(src_dir) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    pending.append(os.path.join(rel, entry.name) if rel else entry.name)
                else:
                    files.append(entry.name)
        for name in files:
            src, dst = os.path.join(src_dir, name), os.path.join(dst_dir, name)
            st = os.lstat(src)
            remove_tree(dst)
            if is_whiteout(st):
                continue  # the name is gone from here up
            if stat.S_ISLNK(st.st_mode):
                os.symlink(os.readlink(src), dst)
            elif stat.S_ISREG(st.st_mode):
                shutil.copy2(src, dst, follow_symlinks=False)
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) or stat.S_ISFIFO(st.st_mode):
                os.mknod(dst, st.st_mode, st.st_rdev)
            else:
                continue
            os.lchown(dst, st.st_uid, st.st_gid)
            if not stat.S_ISLNK(st.st_mode):
                os.chmod(dst, stat.S_IMODE(st.st_mode))

"""The bundle a containerd request names (CreateTaskRequest.bundle, CreateSandboxRequest.bundle_path):
containerd's own directory for that task or pod, where the shim mounts a task's snapshot
(``rootfs``) and writes a pod's files. Taken as it came, a mutated request's "/" had the pod's
files made in the node's root, and a task's snapshot mounted on "/rootfs", under the daemon's
working directory (a relative one), or wherever a link pointed.
"""

from __future__ import annotations

import os
import stat

from mrun.errors import InvalidSpec


def checked(path: str, field: str, required: bool) -> str:
    """``path`` if it is a bundle directory: absolute, without detours ('..', '//'), not / and
    not a link (as containerd makes them); ``""`` too unless ``required``. Else InvalidSpec naming
    ``field``."""
    if not path and not required:
        return path
    try:
        st = os.lstat(path)
    except (OSError, ValueError) as e:  # ValueError: a NUL in it
        raise InvalidSpec(f"{field}: {path!r}: {getattr(e, 'strerror', None) or e}") from None
    if not os.path.isabs(path) or os.path.normpath(path) != path or path == "/" or not stat.S_ISDIR(st.st_mode):
        raise InvalidSpec(f"{field}: {path!r}: not a bundle directory (absolute, no '..', not / nor a link)")
    return path


def _mount_id(path: str) -> int:
    """The id of the mount ``path`` (not followed if a link) is on, from its descriptor's fdinfo:
    a bind mount of a directory of the same filesystem has the same st_dev, so only this tells."""
    fd = os.open(path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        with open(f"/proc/self/fdinfo/{fd}") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key == "mnt_id":
                    return int(value)
    finally:
        os.close(fd)
    raise OSError(f"no mnt_id in the fdinfo of {path}")


def check_snapshot_target(rootfs: str) -> None:
    """``rootfs`` (<bundle>/rootfs) may take a task's snapshot: a directory (a link there had the
    mount land wherever it pointed, "/" included), with nothing mounted on it already (another
    task's: undoing ours, or a failed mount of ours, would take it too). Missing, the mount says so."""
    try:
        st = os.lstat(rootfs)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        raise InvalidSpec(f"bundle: {rootfs}: not a directory (a link?): a snapshot is mounted on the bundle's own")
    if _mount_id(rootfs) != _mount_id(os.path.dirname(rootfs)):
        raise InvalidSpec(f"bundle: {rootfs} has a mount on it already; a snapshot is mounted on an empty "
                          "rootfs of its task's own bundle")

"""Bundles mrun made for one container (``mrun run IMAGE``), and their release with it.

``images/`` prepares such a bundle (a directory under its ``containers/``, a snapshot mounted
on ``rootfs``, and ``image.json`` naming the image, the container and the state root); the
runtime releases it when it deletes that container, whoever asks for the delete (``mrun rm``,
``mrun delete``, podman). The runtime needs only this, not the image machinery above it.
"""

from __future__ import annotations

import os

from mrun import jsonio
from mrun.kernel.tree import remove_tree
from mrun.scratch import scratch_name

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

MARKER = "image.json"  # in a container's directory: the image it was made from
CIDFILE_RECORD = "cidfile.json"  # a --cidfile's {"path", "dev", "ino", "ctime"} (images.cidfile)
KEPT = "record.json"  # the runtime's record of it, kept by its supervisor (images/kept)
RUN_LOCK = "run.lock"  # flocked by the `mrun run` (or create) that made it, until that process exits
READERS_LOCK = "readers.lock"  # shared by commands reading its files, exclusive while release takes them
READERS_SETTLE = 10.0  # seconds a release waits for them: an export into a pipe nobody reads holds for good
GONE = ".gone-"  # a bundle being removed (``remove_bundle``): what a killed removal leaves, known by its name


def container_ids(containers: str) -> list[str]:
    """The containers whose bundles are under ``containers`` (an image root's): not one being
    removed (``GONE``) nor any other dot name."""
    try:
        return sorted(n for n in os.listdir(containers) if not n.startswith("."))
    except FileNotFoundError:
        return []


def image_of(bundle: str) -> dict[str, Any] | None:
    """Which image (and layers) a container was made from; None for a plain bundle."""
    return jsonio.load_object(os.path.join(bundle, MARKER))


def made_for(bundle: str, container_id: str = "", state_root: str = "") -> bool:
    """Whether ``bundle`` is a directory `prepare` made (for ``container_id``, of ``state_root``):
    mrun's to change or remove. A bundle path comes from a state file, input like any other."""
    meta = image_of(bundle)
    if os.path.basename(os.path.dirname(bundle)) != "containers" or meta is None:
        return False
    if container_id and meta.get("id", container_id) != container_id:
        return False
    return not (state_root and meta.get("root") and meta["root"] != os.path.abspath(state_root))


def unkeep(bundle: str, container_id: str, state_root: str) -> None:
    """The kept record removed before the container is taken down: no command (nor its
    supervisor, in a restart's back-off) writes its state back while it goes (images/kept)."""
    if made_for(bundle, container_id, state_root):
        try:
            os.unlink(os.path.join(bundle, KEPT))
        except FileNotFoundError:
            pass


def release(bundle: str, container_id: str = "", state_root: str = "") -> None:
    """After the runtime deleted a container made from an image: its snapshot and directory.
    Only a directory ``prepare`` made for this very container is touched (its bundle path comes
    from a state file, which is input like any other)."""
    from mrun.kernel import syscalls as sc

    if not made_for(bundle, container_id, state_root):
        return
    import fcntl

    from mrun.kernel.flock import taken_within

    try:  # a commit, export or cp reading its files finishes first (see reading)
        readers = os.open(os.path.join(bundle, READERS_LOCK), os.O_RDONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                          0o600)
    except OSError:
        readers = -1
    if readers >= 0:
        taken_within(readers, fcntl.LOCK_EX, READERS_SETTLE, 0.02)  # else on: the reader sees it was released
    try:
        sc.unmount_all(os.path.join(bundle, "rootfs"))
        remove_bundle(bundle)
    finally:
        if readers >= 0:
            os.close(readers)


def remove_bundle(bundle: str) -> None:
    """Renamed out of its id's way to a ``GONE`` name first, then removed, under an flock of the
    directory (a prune passes over one held: its remover lives). A removal killed half-way left
    a directory that only the absence of image.json (removed first) told apart from anyone
    else's in an image root shared by mistake, which a prune then removed whole."""
    import fcntl

    from mrun.cgroups import beside

    try:
        fd = os.open(bundle, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        _remove_cidfile(bundle)
        beside.remove(bundle)  # what a killed supervisor left of its cgroup; a live one removes its own
        gone = bundle
        if not os.path.basename(bundle).startswith(GONE):
            gone = os.path.join(os.path.dirname(bundle), scratch_name(GONE))
            try:
                os.rename(bundle, gone)
            except FileNotFoundError:
                return  # removed meanwhile
            except OSError:
                gone = bundle
        remove_tree(gone, ignore_errors=True)
    finally:
        os.close(fd)


def _remove_cidfile(bundle: str) -> None:
    """podman's: the container's `run --cidfile` goes with it (a unit's next run makes it again),
    if it is still the file that run made (images.cidfile)."""
    record = jsonio.load_object(os.path.join(bundle, CIDFILE_RECORD)) or {}
    path, identity = record.get("path"), (record.get("dev"), record.get("ino"), record.get("ctime"))
    if isinstance(path, str) and path.startswith("/") and all(isinstance(n, int) for n in identity):
        remove_if_made(path, identity)  # type: ignore[arg-type]


def made(st: os.stat_result) -> tuple[int, int, int]:
    """A file's identity as ``remove_if_made`` checks it: (device, inode, change time in ns)."""
    return st.st_dev, st.st_ino, st.st_ctime_ns


def remove_if_made(path: str, identity: tuple[int, int, int]) -> None:
    """``path`` removed if it is still the regular file ``identity`` (``made``); else left alone."""
    import stat

    try:
        st = os.lstat(path)
        if stat.S_ISREG(st.st_mode) and made(st) == identity:
            os.unlink(path)
    except OSError:
        pass


class reading:  # noqa: N801 - used as a statement: ``with bundles.reading(bundle, id, root) as held:``
    """A command reading a container's files (commit its changes, export its root, cp) while they
    stay: `rm -f` meanwhile took them away under it, and the commit made an image of what was
    left, the export an archive of it, the copy nothing, each saying yes. A release waits for
    the readers (READERS_SETTLE at most), and a reader looks at ``released`` once it has read:
    what it made of files taken from under it is no copy. Nothing is held for a bundle not made
    by ``prepare`` for this container (a runc bundle is its owner's, and is never released)."""

    def __init__(self, bundle: str, container_id: str, state_root: str) -> None:
        self.bundle, self.fd = bundle, -1
        self.ours = made_for(bundle, container_id, state_root)

    def __enter__(self) -> reading:
        import fcntl

        if self.ours:
            try:
                self.fd = os.open(os.path.join(self.bundle, READERS_LOCK),
                                  os.O_RDONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
                fcntl.flock(self.fd, fcntl.LOCK_SH)
            except FileNotFoundError:
                pass  # released already (``released``)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fd >= 0:
            os.close(self.fd)

    @property
    def released(self) -> bool:
        """Whether its files were taken: before we held them (a release that began first), or
        while we read (one that waited its longest)."""
        return self.ours and not os.path.isdir(self.bundle)

"""Images being read: what a `save`, `push`, `history` or `image inspect` reads stays until it is done.

Those verbs read an image's blobs without the store's lock (a push may take minutes, and a load
holds the lock for its whole archive). An `rmi` or a prune meanwhile took the blobs from under
them: the save or push failed half done. As docker's do, the removal goes on at once (the image
is untagged) and the reader reads the whole image; the next prune takes what it kept.

A reader holds a shared flock on each blob it reads, and a prune passes over a blob someone
holds. Nothing is written (a full disk still lets a save or an inspect run), and a killed
reader's locks go with it. The reader resolves the names and takes its locks under an flock of
the blobs directory, which a prune holds for its whole run: a reader either finds the image,
and every later prune sees its locks, or finds it gone.
"""

from __future__ import annotations

import fcntl
import os

from mrun.state import held_by_someone

TYPE_CHECKING = False
if TYPE_CHECKING:
    from contextlib import AbstractContextManager
    from typing import Any

    from mrun.images.store import ImageStore


class _Flocked:
    def __init__(self, path: str, kind: int, flags: int = 0) -> None:
        self.path, self.kind, self.flags, self.fd = path, kind, flags, -1

    def __enter__(self) -> _Flocked:
        try:
            self.fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC | self.flags)
        except FileNotFoundError:
            return self  # no blobs yet: nothing to read, nothing to prune
        fcntl.flock(self.fd, self.kind)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def lock(store: ImageStore) -> AbstractContextManager[Any]:
    """Held by a reader while it resolves names and locks its blobs, and by a prune throughout."""
    return _Flocked(store.blobs, fcntl.LOCK_EX, os.O_DIRECTORY)


class reading:  # noqa: N801 - used as a statement: ``with leases.reading(store, refs) as chosen:``
    """The images ``refs`` name, (name, entry) each once (busybox and busybox:latest: one),
    their blobs kept until the block ends."""

    def __init__(self, store: ImageStore, refs: list[str]) -> None:
        self.store, self.refs, self.held = store, refs, []

    def __enter__(self) -> list[tuple[str, dict[str, Any]]]:
        chosen: dict[str, dict[str, Any]] = {}
        with lock(self.store):
            for ref in self.refs:
                name, entry = self.store.image(ref)
                chosen.setdefault(name, entry)
            try:
                for digest in dict.fromkeys(d for e in chosen.values() for d in e.get("blobs") or []):
                    self.held.append(_Flocked(self.store.blob_path(digest), fcntl.LOCK_SH).__enter__())
            except BaseException:
                self.__exit__()
                raise
        return list(chosen.items())

    def __exit__(self, *exc: object) -> None:
        for held in self.held:
            held.__exit__()
        self.held = []


def being_read(store: ImageStore, name: str) -> bool:
    """Whether a reader holds blob ``name`` (its file name). Asked by a prune holding ``lock``."""
    return held_by_someone(os.path.join(store.blobs, name))

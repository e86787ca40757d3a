"""`run --cidfile FILE` (docker's and podman's): the file made, the id in it, before anything
else is, and removed with the container (podman's, which a systemd unit's next `run --cidfile`
needs: it refuses a file that is there).

mrun removes only the file it made: the bundle records its device, inode and change time
(bundles.CIDFILE_RECORD; a file made again at once may get the inode back), and a file at that
path that is not the same one (removed and made again by someone else, or a link put there) is
left alone."""

from __future__ import annotations

import os

from mrun import jsonio
from mrun.bundles import CIDFILE_RECORD, made, remove_if_made
from mrun.errors import InvalidSpec


class Claimed:
    """A --cidfile made (O_EXCL) with the id in it, still open; ``write`` records it in the
    container's bundle once that is made, ``drop`` removes it again (the container never came to
    be). The id goes in at once: a run killed before its bundle recorded the file leaves one that
    names its container, which the next `run --replace` of that name takes over."""

    def __init__(self, path: str, container_id: str, replacing: bool) -> None:
        self.path = os.path.abspath(path)  # (recorded: the removal may run in another directory)
        try:
            self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        except FileExistsError:
            self.fd = _left_by_the_replaced(path, container_id) if replacing else -1
            if self.fd < 0:
                raise InvalidSpec(f"--cidfile {path}: the file exists; is another container using it? Remove it "
                                  "first") from None
        except OSError as e:
            raise InvalidSpec(f"--cidfile {path}: {e.strerror or e}") from None
        os.write(self.fd, container_id.encode())
        self.made = made(os.fstat(self.fd))  # its change time too, as the write left it

    def write(self, bundle: str) -> None:
        dev, ino, ctime = self.made
        jsonio.write_file(os.path.join(bundle, CIDFILE_RECORD), {"path": self.path, "dev": dev, "ino": ino,
                                                                 "ctime": ctime})
        self._close()

    def drop(self) -> None:
        self._close()
        remove_if_made(self.path, self.made)

    def _close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def claim(path: str, container_id: str, replacing: bool = False) -> Claimed | None:
    return Claimed(path, container_id, replacing) if path else None


def _left_by_the_replaced(path: str, container_id: str) -> int:
    """With --replace: ``path`` opened, emptied, if it is a regular file (no link followed) that
    names exactly the container being replaced (its run was killed before its bundle recorded
    the file, so the removal left it); else -1."""
    from mrun.kernel.inroot import open_regular_at

    try:  # looked at before it is opened: no device's or fifo's open runs
        fd = open_regular_at(None, path, os.O_RDWR)
    except OSError:
        return -1
    if fd is None:
        return -1
    if os.read(fd, 4096).rstrip(b"\n") == container_id.encode():
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        return fd
    os.close(fd)
    return -1

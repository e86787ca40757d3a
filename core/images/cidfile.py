"""`run --cidfile FILE` (docker's and podman's): the file claimed before anything is made, the
id written once the container's bundle is, and the file removed with the container (podman's,
which a systemd unit's next `run --cidfile` needs: it refuses a file that is there).

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
    """A --cidfile made (O_EXCL) and still open; ``write`` puts the id in and records it in the
    bundle, ``drop`` removes it again (the container never came to be)."""

    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path)  # (recorded: the removal may run in another directory)
        try:
            self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        except FileExistsError:
            raise InvalidSpec(f"--cidfile {path}: the file exists; is another container using it? Remove it first") \
                from None
        except OSError as e:
            raise InvalidSpec(f"--cidfile {path}: {e.strerror or e}") from None
        self.made = made(os.fstat(self.fd))

    def write(self, container_id: str, bundle: str) -> None:
        os.write(self.fd, container_id.encode())
        self.made = made(os.fstat(self.fd))  # its change time, as the write left it
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


def claim(path: str) -> Claimed | None:
    return Claimed(path) if path else None

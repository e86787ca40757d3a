"""What a container changed over its image (docker's ``diff``): read from its overlay snapshot's
upper directory, which holds exactly the changes, against the image's layers below it.

- an entry of the upper directory that no layer below holds: ``A`` (added);
- one a layer below holds: ``C`` (changed; a directory is changed when anything in it is);
- a whiteout (a 0/0 character device): ``D`` (deleted);
- an opaque directory (``trusted.overlay.opaque``) over one a layer holds: ``C``, and ``D`` for
  each name of the layers' directory it hides and does not hold again.

Whether a layer holds a path is the overlay's own rule: from the top layer down, the first that
names the path decides (a whiteout there: deleted), and an opaque directory on the way hides
what lies below it. Both sides are walked by descriptor, never following a link (the upper
directory is the container's to fill). Paths are printed sorted, as docker prints them."""

from __future__ import annotations

import os
import stat

from mrun.errors import MrunError
from mrun.kernel.overlay import is_opaque, is_whiteout

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator

MAX_DEPTH = 256
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class Lower:
    """The image's layers (top first, as directories) as the overlay shows them below the upper one."""

    def __init__(self, layers_top_first: list[str]) -> None:
        self.layers = layers_top_first

    def _walk(self, layer: str, parts: list[str]) -> tuple[str, int | None]:
        """(what the layer says of the path, a handle on it if it is a directory there):
        "absent" (look lower), "deleted" or "hidden" (nothing lower counts), "present"."""
        try:
            fd = os.open(layer, _DIR)
        except OSError:
            return "absent", None
        try:
            hides = False  # an opaque directory of this layer on the way: what lies lower is hidden
            for i, part in enumerate(parts):
                hides = hides or (i > 0 and is_opaque(fd))
                try:
                    st = os.stat(part, dir_fd=fd, follow_symlinks=False)
                except FileNotFoundError:
                    return ("hidden" if hides else "absent"), None
                if is_whiteout(st):
                    return "deleted", None
                last = i == len(parts) - 1
                if not stat.S_ISDIR(st.st_mode):
                    return ("present" if last else "deleted"), None
                child = os.open(part, _DIR, dir_fd=fd)
                os.close(fd)
                fd = child
            held, fd = fd, -1
            return "present", held
        finally:
            if fd >= 0:
                os.close(fd)

    def exists(self, parts: list[str]) -> bool:
        for layer in self.layers:
            said, fd = self._walk(layer, parts)
            if fd is not None:
                os.close(fd)
            if said != "absent":
                return said == "present"
        return False

    def names(self, parts: list[str]) -> set[str]:
        """The names the layers' merged directory at ``parts`` holds."""
        found: set[str] = set()
        gone: set[str] = set()
        for layer in self.layers:
            said, fd = self._walk(layer, parts)
            if said == "absent":
                continue
            if fd is None:
                break  # deleted, or not a directory here: nothing lower shows through
            try:
                for name in os.listdir(fd):
                    st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                    if is_whiteout(st):
                        gone.add(name)
                    elif name not in gone:
                        found.add(name)
                if is_opaque(fd):
                    break
            finally:
                os.close(fd)
        return found


def changes(upper: str, lower: Lower) -> list[tuple[str, str, bool]]:
    """(kind, path, is a directory) for every change the upper directory holds, sorted by path."""
    out: list[tuple[str, str, bool]] = []
    top = os.open(upper, _DIR)
    stack = [(top, [], iter(sorted(os.listdir(top))))]
    try:
        while stack:
            fd, parts, entries = stack[-1]
            name = next(entries, None)
            if name is None:
                os.close(stack.pop()[0])
                continue
            path = [*parts, name]
            try:
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:  # gone since the listing: the container changed it
                continue
            shown = "/" + "/".join(path)
            if is_whiteout(st):
                out.append(("D", shown, False))
                continue
            below = lower.exists(path)
            out.append(("C" if below else "A", shown, stat.S_ISDIR(st.st_mode)))
            if not stat.S_ISDIR(st.st_mode):
                continue
            try:
                child = os.open(name, _DIR, dir_fd=fd)
            except OSError:  # swapped for something else since we looked
                continue
            if below and is_opaque(child):
                held = set(os.listdir(child))
                out += [("D", f"{shown}/{hidden}", False) for hidden in lower.names(path) if hidden not in held]
            if len(stack) >= MAX_DEPTH:
                os.close(child)
                raise MrunError(f"{shown}: more than {MAX_DEPTH} directories deep")
            stack.append((child, path, iter(sorted(os.listdir(child)))))
    finally:
        for fd, _parts, _entries in stack:
            os.close(fd)
    return sorted(out, key=lambda change: change[1])


def without_mount_points(found: list[tuple[str, str, bool]], destinations: list[str]) -> list[tuple[str, str]]:
    """``found`` less what the runtime made to mount on (docker keeps those in its init layer and
    volumes apart): each mount's destination and what lies below it, and a directory marked
    changed only for holding them."""
    tops = [d.rstrip("/") for d in destinations if d.startswith("/") and d.rstrip("/")]

    def mounted(path: str) -> bool:
        return any(path == top or path.startswith(top + "/") for top in tops)

    kept = [change for change in found if not mounted(change[1])]
    held_before, held_now = _ancestors(p for _k, p, _d in found), _ancestors(p for _k, p, _d in kept)
    return [(kind, path) for kind, path, is_dir in kept
            if not (kind == "C" and is_dir and path in held_before and path not in held_now)]


def _ancestors(paths: Iterator[str]) -> set[str]:
    """Every directory above one of ``paths``."""
    out = set()
    for path in paths:
        while (path := path.rpartition("/")[0]) and path not in out:
            out.add(path)
    return out

"""Is the template's code still the installed code? Checked before every fork.

A template must never serve stale code: after ``pip install`` of a new mrun (or of a backend
package) the next caller runs cold on the new code and the old template goes away. What is
compared: every file of mrun's own packages, loaded or not yet (a child that imported a
changed module lazily would mix old and new code), the ``RECORD`` of every distribution on
``sys.path`` (pip rewrites it on every install and it lists every file's hash), the
``sys.path`` directories themselves (a distribution added or removed) and the interpreter.
Each by inode, size, mtime and ctime: a few hundred ``stat`` calls (~0.5 ms), made only when
inotify, watching every one of those paths, has seen something happen since the last check (or
when inotify is unavailable); ``digest`` hashes mrun's files once, for the log.
"""

from __future__ import annotations

import os
import sys


def _mrun_dirs() -> list[str]:
    """Where the installed packages are (setuptools' package-dir can put them apart); located,
    not imported."""
    import importlib.util

    dirs = set()
    for name in ("mrun", "mrun.backends", "mrun.shims"):
        spec = importlib.util.find_spec(name)
        dirs.update(spec.submodule_search_locations or () if spec else ())
    return sorted(dirs)


def watched() -> list[str]:
    files = [os.path.realpath(sys.executable)]
    for top in _mrun_dirs():
        for dirpath, dirnames, names in os.walk(top):
            dirnames[:] = [d for d in dirnames if d != "__pycache__"]
            files.append(dirpath)
            files += [os.path.join(dirpath, n) for n in names if n.endswith((".py", ".so", ".json"))]
    for entry in sys.path[1:]:
        if not os.path.isdir(entry):
            continue
        files.append(entry)
        try:
            names = os.listdir(entry)
        except OSError:
            continue
        files += [os.path.join(entry, n, "RECORD") for n in names if n.endswith(".dist-info")]
    return sorted(set(files))


def _stat(path: str) -> tuple[int, int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class _Events:
    """inotify on every watched path: a change makes the kernel queue an event as it happens, so
    a quiet queue (one non-blocking read) means nothing changed, without a stat of every path."""

    MASK = 0x2 | 0x4 | 0x8 | 0x40 | 0x80 | 0x100 | 0x200 | 0x400 | 0x800  # modify, attrib,
    # close_write, moved_from, moved_to, create, delete, delete_self, move_self

    def __init__(self, paths: list[str]) -> None:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        self.fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        for path in paths:
            if libc.inotify_add_watch(self.fd, os.fsencode(path), self.MASK) < 0:
                os.close(self.fd)
                raise OSError(ctypes.get_errno(), f"inotify_add_watch {path}")

    def pending(self) -> bool:
        """Whether anything happened since the last call (read, so each event counts once)."""
        seen = False
        while True:
            try:
                seen = bool(os.read(self.fd, 65536)) or seen
            except BlockingIOError:
                return seen


class Fingerprint:
    def __init__(self, files: list[str] | None = None) -> None:
        self.files = watched() if files is None else files
        try:  # watched before the stats are taken: a change in between is an event
            self.events: _Events | None = _Events(self.files)
        except OSError:  # no inotify, or out of watches: every check stats every path
            self.events = None
        self.stats = [_stat(p) for p in self.files]
        self.found: str | None = None

    def changed(self) -> str | None:
        """The first watched path that changed since the template started, or None. Quiet
        inotify: None at once; else (or without inotify) every path is compared. Once a change
        is found it is the answer for good: the events that told of it are read and gone, and a
        quiet queue after them is no sign that the code is the template's again."""
        if self.found is not None:
            return self.found
        if self.events is not None and not self.events.pending():
            return None
        for path, before in zip(self.files, self.stats, strict=True):
            if _stat(path) != before:
                self.found = path
                return path
        return None

    def digest(self) -> str:
        import hashlib

        h = hashlib.sha256()
        for path in self.files:
            if os.path.isfile(path) and any(path.startswith(d + os.sep) for d in _mrun_dirs()):
                with open(path, "rb") as f:
                    h.update(path.encode() + b"\0" + hashlib.sha256(f.read()).digest())
        return h.hexdigest()

"""Compiled wasm modules and components, cached on disk and shared by all containers.

An entry is keyed by the module's sha256 plus the engine (wasmtime version and the Config mrun
uses) and the kind (module or component). It is written atomically (temp file + rename) as
``MAGIC + sha256(payload) + payload``. A truncated or corrupt entry fails its checksum and is
recompiled, never handed to wasmtime; one wasmtime refuses to deserialize (another version) is
recompiled too. A JSON sidecar records what the entry is, for ``mrun cache list``.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import time
from collections.abc import Callable

from mrun.umask import ours_alone

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

MAGIC = b"MRUNCWASM1"
SUFFIX = ".cwasm"
KEEP_ENTRIES = 64  # the most a warm template keeps deserialized in memory ...
KEEP_BYTES = 512 << 20  # ... and their size on disk

# (cache dir, key) -> (inode, size, compiled): entries deserialized in this process, in the
# warm template by keep_all, and inherited by every child forked from it.
_kept: dict[tuple[str, str], tuple[int, int, Any]] = {}


def kept_reference(compiled: Any) -> tuple[str, str] | None:
    """(cache dir, key) of ``compiled`` if it is an entry this process keeps, else None."""
    for ref, (_ino, _size, kept) in _kept.items():
        if kept is compiled:
            return ref
    return None


def kept_artifact(directory: str, key: str) -> Any:
    """The kept entry a ``kept_reference`` named, in a process that inherited the same entries."""
    entry = _kept.get((directory, key))
    if entry is None:
        raise LookupError(f"wasm: compiled entry {key[:16]} is not kept in this process")
    return entry[2]


def default_dir() -> str:
    env = os.environ.get("MRUN_CACHE_DIR")
    if env:
        return os.path.join(os.path.abspath(env), "wasm")
    if os.geteuid() == 0:
        return "/var/cache/mrun/wasm"
    from mrun.knobs import cache_home

    return os.path.join(cache_home(), "mrun", "wasm")


def _checked(blob: bytes) -> bytes | None:
    """An entry's payload, if its magic and checksum are right."""
    payload = blob[len(MAGIC) + 32 :]
    if blob[: len(MAGIC)] == MAGIC and hashlib.sha256(payload).digest() == blob[len(MAGIC) : len(MAGIC) + 32]:
        return payload
    return None


class ModuleCache:
    def __init__(self, directory: str | None = None, note: Callable[[str], None] | None = None) -> None:
        self.dir = directory or default_dir()
        self.note = note or (lambda _msg: None)

    def key(self, digest: str, kind: str, engine: str) -> str:
        return hashlib.sha256(f"{digest}\0{kind}\0{engine}".encode()).hexdigest()

    def _paths(self, key: str) -> tuple[str, str]:
        return os.path.join(self.dir, key + SUFFIX), os.path.join(self.dir, key + ".json")

    def load_or_compile(
        self,
        wasm: bytes,
        kind: str,
        engine: str,
        compile_fn: Callable[[bytes], bytes],
        deserialize_fn: Callable[[bytes], Any],
    ) -> Any:
        """The compiled artifact: kept, or from its entry, or ``compile_fn`` (-> the artifact
        serialized: it runs in a child under limits, mrun.kernel.contained) on a miss."""
        digest = hashlib.sha256(wasm).hexdigest()
        key = self.key(digest, kind, engine)
        path, meta = self._paths(key)
        kept = self._kept(key, path)
        if kept is not None:
            os.utime(path)
            self.note(f"wasm: {kind} sha256:{digest[:12]} from the cache, deserialized by the warm template")
            return kept
        found = self._read_entry(path)
        blob = found[0] if found is not None else None
        if blob is not None:
            payload = _checked(blob)
            if payload is not None:
                try:
                    compiled = deserialize_fn(payload)
                    os.utime(path)  # last use, for pruning
                    self.note(f"wasm: loaded {kind} sha256:{digest[:12]} from the cache ({path})")
                    return compiled
                except Exception as e:  # another engine build: recompile below
                    self.note(f"wasm: cache entry {path} was refused by the engine ({e}); recompiling")
            else:
                self.note(f"wasm: cache entry {path} is corrupt; recompiling")
        t0 = time.perf_counter()
        payload = compile_fn(wasm)
        compiled = deserialize_fn(payload)
        self.note(f"wasm: compiled {kind} sha256:{digest[:12]} in {(time.perf_counter() - t0) * 1000:.0f} ms")
        self._store(
            path,
            meta,
            payload,
            {"source_sha256": digest, "kind": kind, "engine": engine, "created": time.time(), "size": len(wasm)},
        )
        return compiled

    def _kept(self, key: str, path: str) -> Any:
        """A compiled entry this process already holds, while the file it came from is still there
        (``mrun cache prune`` removes both from use)."""
        entry = _kept.get((self.dir, key))
        if entry is None:
            return None
        try:
            st = os.stat(path)
        except OSError:
            return None
        return entry[2] if (st.st_ino, st.st_size) == entry[:2] else None

    def keep_all(self, engine: str, deserialize_fn: Callable[[str, bytes], Any]) -> int:
        """Deserialize the most recently used entries for ``engine`` into memory (the warm
        template), skipping those already kept. -> how many were added."""
        added, budget = 0, KEEP_BYTES
        for e in sorted(self.entries(), key=lambda e: -e["last_used"])[:KEEP_ENTRIES]:
            budget -= e["bytes"]
            if budget < 0:
                break
            if e.get("engine") != engine or self._kept(e["key"], e["path"]) is not None:
                continue
            try:
                found = self._read_entry(e["path"])
                payload = _checked(found[0]) if found is not None else None
                if found is None or payload is None:
                    continue
                st = found[1]
                _kept[(self.dir, e["key"])] = (st.st_ino, st.st_size, deserialize_fn(e.get("kind", "module"), payload))
                added += 1
            except Exception:  # noqa: BLE001 - a bad entry is the cold path's to report and replace
                continue
        return added

    def _sweep_dead_writers(self, dfd: int) -> None:
        """Temporary files whose writer died before its rename (``_store``'s NAME.PID.tmp): a kill
        there left them for good, tens of MB each. Removed by the next write and by ``prune``, in
        the directory ``_open_dir`` found ours (``dfd``); those of a live pid stay (a writer at
        work, or a pid taken since: a later sweep's)."""
        for name in os.listdir(dfd):
            target, _, pid = name.removesuffix(".tmp").rpartition(".") if name.endswith(".tmp") else ("", "", "")
            if not (pid.isascii() and pid.isdigit()) or int(pid) == 0 or not _entry_name(target):
                continue  # not a temporary file of ours
            try:
                os.kill(int(pid), 0)
                continue
            except ProcessLookupError:
                pass
            except (PermissionError, OverflowError):
                continue
            try:
                os.unlink(name, dir_fd=dfd)
            except OSError:
                pass

    def _open_dir(self) -> int | None:
        """The cache directory, if it may hold native code we run: ours (or root's) and writable
        by no one else (made so by ``_store``). Else None, and why in the log."""
        try:
            fd = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            return None
        if ours_alone(os.fstat(fd)):
            return fd
        os.close(fd)
        self.note(f"wasm: the cache {self.dir} is writable by others or not ours: not used (chmod go-w, or remove it)")
        return None

    def _read_entry(self, path: str) -> tuple[bytes, os.stat_result] | None:
        """The entry at ``path`` in the cache directory and its stat, if it may be trusted with native code:
        the directory and the file ours and writable by no one else, the file not a link. A
        compiled entry is machine code wasmtime maps as it is: an entry planted by another user
        under a module's key ran in that module's place."""
        dfd = self._open_dir()
        if dfd is None:
            return None
        try:
            fd = os.open(os.path.basename(path), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                         dir_fd=dfd)
        except OSError:
            return None
        finally:
            os.close(dfd)
        with open(fd, "rb") as f:
            st = os.fstat(f.fileno())
            if not (stat.S_ISREG(st.st_mode) and ours_alone(st)):
                self.note(f"wasm: cache entry {path} is writable by others or not ours: not used")
                return None
            return f.read(), st

    def _store(self, path: str, meta: str, payload: bytes, info: dict[str, Any]) -> None:
        try:
            os.makedirs(self.dir, mode=0o700, exist_ok=True)  # 0700 whatever the umask
            dfd = self._open_dir()
            if dfd is None:
                return
            try:
                self._sweep_dead_writers(dfd)
                for target, data in (
                    (path, MAGIC + hashlib.sha256(payload).digest() + payload),
                    (meta, json.dumps(info).encode()),
                ):
                    name, tmp = os.path.basename(target), f"{os.path.basename(target)}.{os.getpid()}.tmp"
                    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                                 dir_fd=dfd)
                    with open(fd, "wb") as f:
                        f.write(data)
                    os.rename(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
            finally:
                os.close(dfd)
        except OSError as e:  # a read-only cache is a slower start, not a failure
            self.note(f"wasm: cannot write the cache entry {path}: {e.strerror}")

    def entries(self) -> list[dict[str, Any]]:
        out = []
        try:
            names = sorted(os.listdir(self.dir))
        except FileNotFoundError:
            return []
        for name in names:
            if not (name.endswith(SUFFIX) and _is_key(name[: -len(SUFFIX)])):
                continue  # not an entry of ours: `cache prune` removed any *.cwasm put here
            path = os.path.join(self.dir, name)
            key = name[: -len(SUFFIX)]
            try:
                with open(os.path.join(self.dir, key + ".json")) as f:
                    info = json.load(f)
            except (OSError, ValueError):
                info = {}
            st = os.stat(path)
            out.append({"key": key, "path": path, "bytes": st.st_size, "last_used": st.st_mtime, **info})
        return out

    def prune(self, engine: str, everything: bool = False, unused_days: float | None = None) -> list[str]:
        """Remove entries of other engines (they can never be used), and optionally all or old ones;
        and what killed writers left (``_sweep_dead_writers``)."""
        dfd = self._open_dir()
        if dfd is not None:
            try:
                self._sweep_dead_writers(dfd)
            finally:
                os.close(dfd)
        removed = []
        now = time.time()
        for e in self.entries():
            stale = e.get("engine") != engine
            old = unused_days is not None and now - e["last_used"] > unused_days * 86400
            if everything or stale or old:
                for p in self._paths(e["key"]):
                    try:
                        os.unlink(p)
                    except FileNotFoundError:
                        pass
                removed.append(e["key"])
        return removed


def _is_key(text: str) -> bool:
    """A key as ``key`` makes it: 64 lowercase hex digits."""
    return len(text) == 64 and all(c in "0123456789abcdef" for c in text)


def _entry_name(name: str) -> bool:
    """An entry's file name (KEY.cwasm, KEY.json): what a temporary file of ours is named for."""
    key, dot, suffix = name.partition(".")
    return bool(dot) and f".{suffix}" in (SUFFIX, ".json") and _is_key(key)

"""Durable container state under a root directory (``--root``, default /run/mrun).

One directory per container holds ``state.json`` (written atomically: temp file, fsync,
rename), a lock file taken with flock by every command that changes the container, and
the exec fifo while the container is created but not started. The status is never trusted
from disk alone: it is derived from the init process (pid + start time), the fifo and the
freezer, so it is right even after any mrun process died.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from mrun import OCI_VERSION
from mrun.errors import AlreadyExists, MrunError, NotFound
from mrun.proc import is_alive

DEFAULT_ROOT = "/run/mrun"
_ID_RE = re.compile(r"^[\w+\-.]+$")
STATE_FILE = "state.json"
EXEC_FIFO = "exec.fifo"


def check_id(container_id: str) -> None:
    if not container_id or container_id in (".", "..") or not _ID_RE.match(container_id):
        raise MrunError(f"invalid container id {container_id!r}: use letters, digits, '_', '+', '-' and '.'")


@dataclass
class Record:
    """What mrun remembers about one container."""

    id: str
    bundle: str
    rootfs: str
    config: dict[str, Any]
    backend: str = "linux"
    pid: int = 0
    pid_start: int | None = None
    stage: str = "creating"  # creating -> created -> running; "stopped" comes from the process
    created: str = ""
    owner: str = ""
    cgroup: dict[str, Any] = field(default_factory=dict)
    exit_status: int | None = None

    @property
    def annotations(self) -> dict[str, str]:
        return self.config.get("annotations") or {}


class Store:
    def __init__(self, root: str = DEFAULT_ROOT) -> None:
        self.root = os.path.abspath(root)

    def path(self, container_id: str, *parts: str) -> str:
        return os.path.join(self.root, container_id, *parts)

    def reserve(self, container_id: str) -> None:
        """Claim the id atomically; a second create with the same id fails here."""
        check_id(container_id)
        os.makedirs(self.root, mode=0o711, exist_ok=True)
        try:
            os.mkdir(self.path(container_id), 0o711)
        except FileExistsError:
            raise AlreadyExists(f"container {container_id!r} already exists")

    def exists(self, container_id: str) -> bool:
        return os.path.isdir(self.path(container_id))

    def load(self, container_id: str) -> Record:
        check_id(container_id)
        try:
            with open(self.path(container_id, STATE_FILE), "rb") as f:
                data = json.load(f)
        except FileNotFoundError:
            raise NotFound(f"container {container_id!r} does not exist")
        except (OSError, ValueError) as e:
            raise MrunError(f"container {container_id!r}: state file is unreadable ({e}); "
                            f"'mrun delete --force {container_id}' cleans it up")
        return Record(**data)

    def save(self, record: Record) -> None:
        final = self.path(record.id, STATE_FILE)
        tmp = final + ".tmp"
        with open(tmp, "w") as f:
            json.dump(asdict(record), f)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, final)

    @contextlib.contextmanager
    def lock(self, container_id: str) -> Iterator[None]:
        check_id(container_id)
        try:
            fd = os.open(self.path(container_id, "lock"), os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
        except FileNotFoundError:
            raise NotFound(f"container {container_id!r} does not exist")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def remove(self, container_id: str) -> None:
        shutil.rmtree(self.path(container_id), ignore_errors=True)

    def ids(self) -> list[str]:
        try:
            return sorted(e.name for e in os.scandir(self.root) if e.is_dir())
        except FileNotFoundError:
            return []

    def status(self, record: Record) -> str:
        if record.stage == "creating" or not is_alive(record.pid, record.pid_start):
            return "stopped"
        if os.path.exists(self.path(record.id, EXEC_FIFO)):
            return "created"
        from mrun.cgroups import open_cgroup

        if record.cgroup and open_cgroup(record.cgroup).is_frozen():
            return "paused"
        return "running"


def oci_state(store: Store, record: Record, status: str | None = None) -> dict[str, Any]:
    """The runtime-spec state document, plus runc's extra fields (rootfs, created, owner)."""
    status = status or store.status(record)
    return {
        "ociVersion": OCI_VERSION,
        "id": record.id,
        "pid": record.pid if status != "stopped" else 0,
        "status": status,
        "bundle": record.bundle,
        "rootfs": record.rootfs,
        "created": record.created,
        "owner": record.owner,
        "annotations": record.annotations,
    }


def now_rfc3339() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e9):09d}Z"


def ignore_enoent(fn, *args) -> None:  # noqa: ANN001
    try:
        fn(*args)
    except OSError as e:
        if e.errno != errno.ENOENT:
            raise

"""The interface both cgroup drivers implement, and what they share."""

from __future__ import annotations

import errno
import os
import time

from mrun.errors import MrunError
from mrun.proc import SIGKILL

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~6 ms (it imports re) on the lifecycle verbs' hot path
    from typing import Any


def read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def write(path: str, value: str) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise MrunError(f"cgroup file {path} does not exist (is that controller available here?)")
    try:
        os.write(fd, value.encode())
    except OSError as e:
        raise MrunError(f"cannot write {value!r} to {path}: {e.strerror}")
    finally:
        os.close(fd)


def keyed(path: str) -> dict[str, int]:
    """Parse a flat keyed file such as memory.events or cpu.stat."""
    out: dict[str, int] = {}
    try:
        for line in read(path).splitlines():
            key, _, value = line.partition(" ")
            if value.strip().lstrip("-").isdigit():
                out[key] = int(value)
    except OSError:
        pass
    return out


def make_dirs(path: str, created: list[str]) -> list[str]:
    """mkdir -p, returning the directories this call created (parents first)."""
    new: list[str] = []
    missing = []
    p = path
    while not os.path.isdir(p):
        missing.append(p)
        p = os.path.dirname(p)
    for d in reversed(missing):
        try:
            os.mkdir(d)
            new.append(d)
        except FileExistsError:
            pass
    created.extend(new)
    return new


class Cgroup:
    """A container's cgroup; v1 spans several hierarchies, v2 is one directory."""

    version = 0
    created: list[str]

    def apply(self, resources: dict[str, Any], devices: list[dict[str, Any]] | None = None) -> None:
        raise NotImplementedError

    def add(self, pid: int) -> None:
        raise NotImplementedError

    def pids(self) -> list[int]:
        raise NotImplementedError

    def set_frozen(self, frozen: bool) -> None:
        raise NotImplementedError

    def is_frozen(self) -> bool:
        raise NotImplementedError

    def stats(self) -> dict[str, Any]:
        raise NotImplementedError

    def oom_kills(self) -> int:
        return int(self.stats().get("memory", {}).get("oom_kill", 0))

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def _dirs(self) -> list[str]:
        raise NotImplementedError

    def exists(self) -> bool:
        return any(os.path.isdir(d) for d in self._dirs())

    def kill_all(self, sig: int = SIGKILL) -> None:
        """Signal every process; SIGKILL is sent frozen, so a fork bomb cannot outrun it."""
        if sig == SIGKILL:
            try:
                self.set_frozen(True)
            except MrunError:
                pass  # no freezer here: signal them running
        try:
            for pid in self.pids():
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
        finally:
            if sig == SIGKILL and self.is_frozen():
                self.set_frozen(False)  # killed tasks die only once thawed

    def destroy(self, timeout: float = 10.0) -> None:
        """Kill what is left, then remove the directories mrun created (leaf first)."""
        if not self.exists():
            return
        deadline = time.monotonic() + timeout
        delay = 0.001
        while self.pids():
            self.kill_all(SIGKILL)
            if time.monotonic() > deadline:
                raise MrunError(f"processes in {self._dirs()[0]} did not die within {timeout:.0f}s")
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
        leaves = self._dirs()
        for d in leaves + sorted(set(self.created) - set(leaves), key=len, reverse=True):
            for _ in range(50):
                try:
                    os.rmdir(d)
                    break
                except FileNotFoundError:
                    break
                except OSError as e:
                    if d not in leaves or e.errno != errno.EBUSY:
                        break  # a shared parent still in use by someone else: leave it
                    time.sleep(0.01)

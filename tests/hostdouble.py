"""A recording double of the runtime's kernel seam (mrun.operations.host.Host): no fork, no
cgroup, no signal; every call is recorded, so the runtime's logic can be tested without root."""

from __future__ import annotations

import itertools
import os
from typing import Any


class FakeChannel:
    def __init__(self, messages: list[dict[str, Any]]) -> None:
        self.messages, self.sent, self.closed = list(messages), [], False

    def recv(self) -> dict[str, Any]:
        return self.messages.pop(0) if self.messages else {}

    def send(self, **msg: Any) -> None:
        self.sent.append(msg)

    def close(self) -> None:
        self.closed = True


class FakeCgroup:
    def __init__(self, host: RecordingHost, container_id: str) -> None:
        self.host, self.id = host, container_id
        self.paths: dict[str, str] = {}

    def _record(self, what: str, *args: Any) -> None:
        self.host.calls.append((f"cgroup.{what}", self.id, *args))

    def plan(self, marks: str) -> None:
        self._record("plan")

    def create(self, resources: dict[str, Any], devices: list[Any]) -> None:
        self._record("create")
        if self.host.fail_at == "cgroup.create":
            raise OSError(28, "No space left on device")

    def add(self, pid: int, born: bool = False) -> None:
        self._record("add", pid)

    def birth_dir(self) -> None:
        return None  # nothing is forked here to be born anywhere

    def thread_files(self, born: bool = False) -> list[str]:
        return []  # the host moves the process (add), as with cgroup v2

    def destroy(self) -> None:
        self._record("destroy")

    def set_frozen(self, frozen: bool) -> None:
        self._record("set_frozen", frozen)
        self.host.frozen_now = frozen

    def kill_all(self, sig: int) -> None:
        self._record("kill_all", sig)

    def exists(self) -> bool:
        return True

    def oom_kills(self) -> int:
        return 0

    def to_dict(self) -> dict[str, Any]:
        return {"version": 2, "path": f"/sys/fs/cgroup/mrun-unit/{self.id}"}


class RecordingHost:
    def __init__(self, init_says: list[dict[str, Any]] | None = None, fail_at: str = "") -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.running: set[int] = set()
        self.frozen_now = False
        self.init_says = init_says if init_says is not None else [{"ready": True}]
        self.fail_at = fail_at
        self._pids = itertools.count(40000)

    def alive(self, pid: int, started: int | None) -> bool:
        return pid in self.running

    def start_time(self, pid: int) -> int:
        return 1000 + pid

    def kill(self, pid: int, started: int | None, sig: int) -> None:
        self.calls.append(("kill", pid, sig))
        if pid not in self.running:
            raise ProcessLookupError(pid)
        if sig == 9:
            self.running.discard(pid)

    def new_cgroup(self, cgroups_path: str, container_id: str, systemd: bool) -> FakeCgroup:
        self.calls.append(("new_cgroup", cgroups_path))
        return FakeCgroup(self, container_id)

    def open_cgroup(self, saved: dict[str, Any]) -> FakeCgroup:
        return FakeCgroup(self, saved["path"].rsplit("/", 1)[-1])

    def awaits_start(self, exec_fifo: str) -> bool:
        return os.path.exists(exec_fifo)  # a fake init holds no fifo: its start removes it

    def frozen(self, saved: dict[str, Any]) -> bool:
        return self.frozen_now

    def spawn(self, launch: Any) -> tuple[int, FakeChannel]:
        pid = next(self._pids)
        self.calls.append(("spawn", pid, sorted(launch.namespaces)))
        self.running.add(pid)
        return pid, FakeChannel(self.init_says)


class FakeBackends:
    """The plugin manager's face the runtime uses: one backend, recording its hooks."""

    def __init__(self, host: RecordingHost) -> None:
        self.host = host

    def choose(self, bundle: Any) -> tuple[str, str, list[Any]]:
        return "fake", "the unit test says so", []

    def of(self, name: str) -> Any:
        host = self.host

        class Hooks:
            def mrun_modify_spec(self, **_: Any) -> None:
                return None

            def mrun_sandbox(self, **_: Any) -> None:
                return None

            def mrun_prepare(self, **_: Any) -> None:
                host.calls.append(("prepare", name))
                if host.fail_at == "prepare":
                    from mrun.errors import MrunError

                    raise MrunError("prepare: the backend refused")

            def mrun_payload(self, **_: Any) -> None:
                return None

        return Hooks()

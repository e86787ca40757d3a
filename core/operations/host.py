"""The seam between the runtime's logic and the kernel: every kernel operation the runtime, the
state store and the create/exec steps perform themselves goes through one ``Host`` object (real
by default), so the logic — status transitions, the undo order of a failed create, which verb
reaches which process — can be tested in-process without root against a recording double
(tests/hostdouble.py). What runs inside the sandbox (sandbox/) is the kernel's for real.
"""

from __future__ import annotations

from mrun.kernel import proc

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class Host:
    def alive(self, pid: int, started: int | None) -> bool:
        """``pid`` still runs and is the process that started at ``started`` (not a reuse)."""
        return proc.is_alive(pid, started)

    def start_time(self, pid: int) -> int | None:
        return proc.start_time(pid)

    def kill(self, pid: int, started: int | None, sig: int) -> None:
        """``sig`` to ``pid`` while it is the process that started at ``started`` (pinned, so a
        number reused meanwhile gets nothing); else ProcessLookupError."""
        proc.signal_if_same(pid, started, sig)

    def new_cgroup(self, cgroups_path: str, container_id: str, systemd: bool) -> Any:
        from mrun.cgroups import new_cgroup

        return new_cgroup(cgroups_path, container_id, systemd)

    def open_cgroup(self, saved: dict[str, Any]) -> Any:
        from mrun.cgroups import open_cgroup

        return open_cgroup(saved)

    def awaits_start(self, exec_fifo: str) -> bool:
        """A created container's init still waits on its exec fifo (state.awaits_start)."""
        from mrun.state import awaits_start

        return awaits_start(exec_fifo)

    def frozen(self, saved_cgroup: dict[str, Any]) -> bool:
        return bool(saved_cgroup) and self.open_cgroup(saved_cgroup).is_frozen()

    def spawn(self, launch: Any) -> tuple[int, Any]:
        """Fork into the namespaces (sandbox.launch). -> (the child's pid, its channel)"""
        from mrun.sandbox.launch import spawn

        return spawn(launch)


REAL = Host()

"""``exec``: another process in a running container, on the same builder as ``create``: the
backend prepares it, it joins every namespace the init has, and enters the container's cgroup."""

from __future__ import annotations

import os

from mrun.errors import InvalidState, MrunError
from mrun.operations.builder import SandboxBuilder, await_ready, warm_the_move
from mrun.operations.options import prepare_stdio, write_pid_file
from mrun.operations.undo import Undo

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from mrun.operations.options import CreateOptions
    from mrun.state import Record


def exec_process(runtime: Any, record: Record, process: dict[str, Any], opts: CreateOptions,
                 sub_cgroups: list[str] | None = None) -> int:
    """Start ``process`` in the container (in ``sub_cgroups`` of its cgroup: runc's --cgroup);
    -> its pid once it runs (its setup failed: raises)."""
    from mrun.sandbox.init import exec_child
    from mrun.spec import Spec

    if process.get("capabilities") is None:
        # runc's: a process that names no capabilities has the container's (its init's), and none
        # where that names none. Without this one (`exec -p` of a process.json with no capabilities
        # object) mrun kept its own, every capability, in a container allowed three.
        process = {**process, "capabilities": (record.config.get("process") or {}).get("capabilities") or {}}
    spec = Spec(record.config, record.bundle)
    warm_the_move(spec.namespaces())
    cgroup = runtime._cgroup(record) if record.cgroup else None
    if sub_cgroups:
        if cgroup is None:
            raise MrunError(f"--cgroup: container {record.id!r} has no cgroup")
        cgroup = cgroup.within(sub_cgroups)
    builder = SandboxBuilder(runtime, record.id, record.backend, spec, process, cgroup)
    builder.plan.own_stdio = opts.own_stdio
    builder.prepare_backend()
    with Undo() as undo:
        held: list[int] = []
        undo.callback(_close_all, held)  # once the process has joined them (or failed to)
        try:
            namespaces = joined_namespaces(record.pid, record.pid_start, held)
        except ProcessLookupError:
            raise stopped(record.id) from None
        console = prepare_stdio(process, opts)
        sandbox = builder.sandbox(namespaces, console, cgroup_paths={}, new_keyring=record.new_keyring)
        pid, ch = builder.launch(
            undo, namespaces=namespaces, child=lambda c: exec_child(sandbox, c),
            add_to_cgroup=cgroup.add if cgroup else None, thread_files=cgroup.thread_files if cgroup else None,
            born_in=cgroup.birth_dir() if cgroup else None,
            # the container's, as runc gives every exec'd process: not its caller's (a shim's
            # -998 made a `kubectl exec`'d process all but unkillable by the OOM killer)
            oom_score_adj=spec.process.get("oomScoreAdj"),
        )
        undo.callback(ch.close)
        if console is not None:
            console.close()

        def listener(number: int) -> None:
            from mrun.sandbox.seccomp_agent import hand_over
            from mrun.state import oci_state

            hand_over(builder.plan.seccomp.listener, pid, number, oci_state(runtime.store, record))

        await_ready(ch, listener=listener)
        if opts.pid_file:  # as runc: a pid file that cannot be written ends the process
            write_pid_file(opts.pid_file, pid)
        undo.pop_all()
        _close_all(held)
    ch.close()
    return pid


def stopped(container_id: str) -> InvalidState:
    return InvalidState(f"cannot exec in container {container_id!r}: it is stopped")


def joined_namespaces(pid: int, started: int | None, held: list[int]) -> dict[str, str]:
    """Every namespace of the container's process ``pid`` (started at ``started``) that is not
    ours, held open (appended to ``held``, which the caller closes) and named by its descriptor,
    ``/proc/self/fd/N``: the exec'd process joins the namespaces of the process checked here,
    whatever has the number by then. They are opened by number, so the process is checked before
    and after: alive with the same start time both times, it is the one they were opened from.
    ProcessLookupError once it has ended: a namespace it no longer has (an ended process keeps
    none but its PID namespace) was passed over as one this kernel lacks, and with none left the
    exec'd process stayed in the host's, where the command meant for the container ran as root."""
    from mrun.kernel import proc
    from mrun.kernel import syscalls as sc

    if not proc.is_alive(pid, started):
        raise ProcessLookupError(pid)
    namespaces = {}
    for kind, name in sc.NS_PROC.items():
        try:
            ours = os.stat(f"/proc/self/ns/{name}").st_ino
        except FileNotFoundError:
            continue  # a kind of namespace this kernel does not have
        try:
            fd = os.open(f"/proc/{pid}/ns/{name}", os.O_RDONLY | os.O_CLOEXEC)
        except (FileNotFoundError, ProcessLookupError):
            raise ProcessLookupError(pid) from None
        if os.fstat(fd).st_ino == ours:
            os.close(fd)
            continue
        held.append(fd)
        namespaces[kind] = f"/proc/self/fd/{fd}"
    if not proc.is_alive(pid, started):
        raise ProcessLookupError(pid)
    return namespaces


def _close_all(fds: list[int]) -> None:
    while fds:
        os.close(fds.pop())

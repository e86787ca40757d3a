"""``exec``: another process in a running container, on the same builder as ``create``: the
backend prepares it, it joins every namespace the init has, and enters the container's cgroup."""

from __future__ import annotations

import os

from mrun.errors import MrunError
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

    spec = Spec(record.config, record.bundle)
    warm_the_move(spec.namespaces())
    cgroup = runtime._cgroup(record) if record.cgroup else None
    if sub_cgroups:
        if cgroup is None:
            raise MrunError(f"--cgroup: container {record.id!r} has no cgroup")
        cgroup = cgroup.within(sub_cgroups)
    builder = SandboxBuilder(runtime, record.id, record.backend, spec, process, cgroup)
    builder.prepare_backend()
    namespaces = joined_namespaces(record.pid)
    console = prepare_stdio(process, opts)
    sandbox = builder.sandbox(namespaces, console, cgroup_paths={}, new_keyring=record.new_keyring)
    with Undo() as undo:
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
        await_ready(ch)
        if opts.pid_file:  # as runc: a pid file that cannot be written ends the process
            write_pid_file(opts.pid_file, pid)
        undo.pop_all()
    ch.close()
    return pid


def joined_namespaces(pid: int) -> dict[str, str]:
    """Every namespace of ``pid`` that is not ours, by path: the exec'd process joins them all."""
    from mrun.kernel import syscalls as sc

    namespaces = {}
    for kind, name in sc.NS_PROC.items():
        theirs = f"/proc/{pid}/ns/{name}"
        try:
            if os.stat(theirs).st_ino != os.stat(f"/proc/self/ns/{name}").st_ino:
                namespaces[kind] = theirs
        except FileNotFoundError:
            continue
    return namespaces

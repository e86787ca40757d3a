"""What ``create`` and ``exec`` share: the chosen backend's host-side preparation, the ``Sandbox``
its init (or the exec'd process) runs, and the launch into namespaces, whose undo is on the
caller's stack (``operations.undo.Undo``) so a failure later on kills what was launched."""

from __future__ import annotations

from mrun.errors import MrunError, SetUpDied
from mrun.kernel.proc import SIGKILL

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from mrun.operations.undo import Undo


class SandboxBuilder:
    def __init__(self, runtime: Any, container_id: str, backend: str, spec: Any, process: dict[str, Any],
                 cgroup: Any = None) -> None:
        """``cgroup``: the container's, where the backend's host-side work runs (Container.contained)."""
        from mrun.plugins.api import Bundle, Container
        from mrun.sandbox.process import ProcessPlan
        from mrun.spec import memory_policy, personality

        self.runtime, self.spec, self.process, self.backend = runtime, spec, process, backend
        self.hooks = runtime.backends().of(backend)
        # the container's personality and memory policy are every process's in it, an exec's too (runc's rule)
        self.plan = ProcessPlan(process, spec.linux.get("seccomp"), personality=personality(spec.linux),
                                memory_policy=memory_policy(spec.linux))
        self.container = Container(container_id, Bundle(spec), runtime.store.path(container_id), note=runtime.debug,
                                   limits=(lambda: _limits(cgroup, spec)) if cgroup is not None else None)

    def prepare_backend(self) -> None:
        """Host side, before any namespace: the backend loads or compiles what its payload needs."""
        self.hooks.mrun_prepare(container=self.container, process=self.process)

    def sandbox(self, namespaces: dict[str, str], console: Any, **extra: Any) -> Any:
        from mrun.sandbox.init import Sandbox

        return Sandbox(
            spec=self.spec,
            container=self.container,
            plan=self.plan,
            payload_hook=self.hooks.mrun_payload,
            namespaces=namespaces,
            console=console,
            **extra,
        )

    def launch(self, undo: Undo, **launch: Any) -> tuple[int, Any]:
        """Fork into the namespaces; the process is killed if a later step fails. -> (pid, channel)"""
        from mrun.sandbox.launch import Launch

        host = self.runtime.host
        copy = pristine_copy_for(self.runtime, self.backend, launch["namespaces"], launch.get("born_in"))
        pid, ch = host.spawn(Launch(**launch, pristine=copy, rlimits=self.plan.rlimits))
        self.pid_start = host.start_time(pid)
        undo.callback(kill_if_same, host, pid, self.pid_start)
        return pid, ch


def pristine_copy_for(runtime: Any, backend: str, namespaces: dict[str, str], born_in: str | None) -> Any:
    """The shim worker's armed copy (mrun.sandbox.pristine) if the launch is to take it, else
    None: a fork. The copy's gain is the template's pages, shared for the init's whole life by a
    backend whose init runs what the template loaded for it (it has an ``mrun_warm`` hook: wasm);
    an init that execs its payload drops them at once, and where it can be born in its cgroup2
    cgroup ``born_in`` from our own fork (sandbox.launch.born_in_cgroup) the copy adds nothing.
    Elsewhere (an intermediate's child; no cgroup2 one) the copy spares a fork."""
    copy = _armed_copy()
    if copy is None or (born_in is not None and not _moves(namespaces) and not _keeps_pages(runtime, backend)):
        return None  # an unused copy is let go with the worker's disarm, after the answer
    return copy


def _moves(namespaces: dict[str, str]) -> bool:
    """Whether the init is moved into its cgroup2 cgroup, not born there: it is an intermediate's
    child (sandbox.launch.born_in_cgroup says no). A pristine copy forks it born there too, where
    births are possible (sandbox.pristine.births_here); else the copy is the init and moves."""
    from mrun.sandbox.launch import born_in_cgroup

    return not born_in_cgroup(namespaces)


def _armed_copy() -> Any:
    import sys

    # Only the shim's create worker arms a copy, and it has the module loaded to do so: a CLI
    # create does not import it (1.4 ms of every `mrun create`, with the _socket it needs).
    pristine = sys.modules.get("mrun.sandbox.pristine")
    return pristine.armed() if pristine is not None else None


def _keeps_pages(runtime: Any, backend: str) -> bool:
    """Whether the backend's init runs what the warm template loaded for it (an ``mrun_warm`` hook)."""
    return "mrun_warm" in runtime.backends().impls.get(backend, {})


def warm_the_move(namespaces: dict[str, str]) -> None:
    """Warm the kernel's lock for a move (cgroups.prime_moves) where the process about to be made
    will be moved into its cgroup2 cgroup, not born there (sandbox.launch.born_in_cgroup: an
    intermediate's child): early, so that the wait runs beside the rest of the work. A warming
    not needed costs more than it saves: it waits for its grace period holding cgroup_mutex, and
    the cgroup's making waits. (Called before the cgroup is made: where it will have no cgroup2
    directory, prime_moves does nothing.)"""
    if _moves(namespaces):
        from mrun.cgroups import prime_moves

        prime_moves()


def warm_the_move_for(bundle: str) -> None:
    """For a create another process makes from ``bundle`` (the shim's worker), on a thread here:
    the move warmed where its init will be moved (warm_the_move's rule), before the worker has
    read the bundle. A bundle that cannot be read: nothing here (the worker says why)."""
    import _thread

    def read_and_warm() -> None:
        if init_will_move(bundle):
            from mrun.cgroups import prime_moves

            prime_moves()

    _thread.start_new_thread(read_and_warm, ())


def init_will_move(bundle: str) -> bool:
    """Whether the init a create makes from ``bundle`` will be moved into its cgroup, not born
    there: warm_the_move's rule. False for a bundle that cannot be read (a guess for speed only:
    the create decides)."""
    try:
        from mrun.spec import load_bundle

        return _moves(load_bundle(bundle).namespaces())
    except Exception:  # noqa: BLE001 - the create itself reports what is wrong
        return False


def kill_if_same(host: Any, pid: int, started: int | None) -> None:
    """SIGKILL ``pid`` unless it has died and its number gone to another process since."""
    try:
        host.kill(pid, started, SIGKILL)
    except ProcessLookupError:
        pass


def await_ready(ch: Any, on_hooks: Any = None, listener: Any = None) -> None:
    """The child reports ready, asks for the host-side hooks (create only), or fails with a line.
    A seccomp listener made (SCMP_ACT_NOTIFY rules): ``listener`` hands it to the agent (given
    the number of its descriptor in the child: ``seccomp_agent.hand_over``)."""
    while True:
        msg = ch.recv()
        if msg.get("hooks") and on_hooks is not None:
            on_hooks()
            ch.send(go=True)
        elif isinstance(msg.get("seccomp_listener"), int) and listener is not None:
            listener(msg["seccomp_listener"])
            ch.send(listener_taken=True)
        elif msg.get("ready"):
            return
        elif "error" in msg:
            raise MrunError(msg["error"])
        else:
            raise SetUpDied("the container's process died while setting up")


def _limits(cgroup: Any, spec: Any) -> tuple[Any, Any]:
    """(join, killed) for ``Container.contained``, made when a child is about to do work (not at
    every create: the OOM count is a file read): the child joins ``cgroup``; a kill while the
    cgroup counted a new OOM kill is worded as runc words an init's, naming the field."""
    before = cgroup.oom_kills()

    def killed(sig: int) -> str | None:
        if sig != SIGKILL or cgroup.oom_kills() <= before:
            return None
        limit = ((spec.linux.get("resources") or {}).get("memory") or {}).get("limit")
        return f"killed by the out-of-memory killer under linux.resources.memory.limit ({limit})"

    return cgroup.add, killed

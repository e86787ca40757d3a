"""``create``, as the named steps in ``Create.STEPS``, in that order. Each step that makes
something registers its undo on one stack: a failure (or a signal) at any step undoes exactly
what was done, last first, and a create that succeeds keeps everything.

The backend is chosen first and may rewrite the config (``mrun_modify_spec``) before anything
is derived from it: the process plan, the cgroup and the network all see the backend's version.
The state records that config, copied: what network set-up adds later is not saved over it.
"""

from __future__ import annotations

import os

from mrun import annotations as ann
from mrun import jsonio
from mrun.errors import InvalidSpec, MrunError, SetUpDied
from mrun.operations.builder import SandboxBuilder, await_ready, warm_the_move
from mrun.operations.options import prepare_stdio, write_pid_file
from mrun.operations.undo import Undo
from mrun.spec import idmapping as spec_idmapping
from mrun.state import EXEC_FIFO, STARTED_FIFO, Record, now_rfc3339, oci_state
from mrun.status import Status
from mrun.trace import span

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from mrun.operations.options import CreateOptions


class Create:
    STEPS = (
        "choose_backend",  # every backend bids; the winner is recorded
        "modify_spec",  # the winner may rewrite the config (mrun_modify_spec); revalidated
        "choose_sandbox",  # mrun's own, or the backend's (mrun_sandbox): then OWNED_STEPS follow
        "record_state",  # saved before anything is made: `delete --force` finds and removes it all
        "claim_cgroup",  # planned, recorded, made and claimed (refused if someone else's)
        "prepare_backend",  # host side: compile, open what the payload needs
        "prepare_network",  # bridge, veth, address (attached once the init exists)
        "make_fifos",  # exec fifo (start) and started fifo (start returns once the program runs)
        "open_host_mounts",  # bind sources the init cannot bind itself, cloned here (host_mounts)
        "spawn_init",  # fork into the namespaces, into the cgroup
        "move_net_devices",  # linux.netDevices: the host's devices into the init's network namespace
        "await_init",  # prestart/createRuntime hooks on request, then "ready"
        "attach_network",  # move the veth into the init's network namespace
        "mark_created",  # stage "created", pid file
    )
    # A backend that owns the sandbox: mrun records the container and hands the bundle over.
    OWNED_STEPS = ("record_state", "hand_over", "mark_created")

    def __init__(self, runtime: Any, container_id: str, spec: Any, opts: CreateOptions, lock_fd: int,
                 previous: Record | None = None) -> None:
        """``previous``: a stopped container's record, made again in place (``Runtime.recreate``):
        a create that fails leaves that record, not nothing."""
        self.runtime, self.store, self.id = runtime, runtime.store, container_id
        self.spec, self.opts, self.lock_fd, self.previous = spec, opts, lock_fd, previous
        self.record = Record(id=container_id, bundle=spec.bundle, rootfs=spec.rootfs, config=spec.raw,
                             created=now_rfc3339(), owner=owner_name(), new_keyring=not opts.no_new_keyring)
        self.cgroup: Any = None
        self.driver: Any = None  # a SandboxDriver when the backend owns the sandbox
        self.network: Any = None
        self.more_networks: list[Any] = []  # its plans on its other networks (eth1...)
        self.ch: Any = None
        self.detached: dict[int, int] = {}  # mount index -> the host's clone of its bind source (open_host_mounts)
        self.net_devices: dict[str, str] = {}  # linux.netDevices: host name -> name in the container

    def run(self) -> Record:
        try:
            with Undo() as undo:
                undo.callback(self._forget)  # the id was reserved (a state directory) before the first step
                warm_the_move(self.spec.namespaces())  # first: it waits beside every step
                steps = list(self.STEPS)
                while steps:
                    step = steps.pop(0)
                    with span(f"create {step}"):
                        try:
                            getattr(self, step)(undo)
                        except SetUpDied as e:
                            raise self._why_it_died(e) from None
                    if step == "choose_sandbox" and self.driver is not None:
                        steps = list(self.OWNED_STEPS)
                undo.pop_all()  # created: nothing is undone
            return self.record
        finally:
            if self.ch is not None:
                self.ch.close()

    def _why_it_died(self, died: SetUpDied) -> MrunError:
        """The init ended before it could say why: where its cgroup counted an OOM kill, runc's
        words for it, naming the field (a limit too low for the set-up itself)."""
        if self.cgroup is not None and self.cgroup.oom_kills():
            limit = ((self.spec.linux.get("resources") or {}).get("memory") or {}).get("limit")
            return InvalidSpec(
                f"linux.resources.memory.limit: {limit}: the container's init was OOM-killed while setting up "
                "(memory limit too low?)"
            )
        return died

    def choose_backend(self, undo: Undo) -> None:
        from mrun.plugins.api import Bundle

        if self.opts.annotations:  # the operator's (shim runtime options) over the bundle's
            self.spec.raw["annotations"] = {**self.spec.annotations, **self.opts.annotations}
        if self.opts.amend_config is not None:
            self.opts.amend_config(self.spec.raw)
        if self.opts.notify_socket:  # its directory is the state's: removed with it, by any undo or delete
            from mrun import notify_socket

            state_dir = self.store.path(self.id)
            notify_socket.add_to_config(self.spec.raw, state_dir)
            if self.opts.notify_relay is not None:
                self.opts.notify_relay.bind(state_dir, self.id)
        self.record.backend, _, _ = self.runtime.backends().choose(Bundle(self.spec))

    def modify_spec(self, undo: Undo) -> None:
        from mrun.plugins.api import Bundle
        from mrun.spec import Spec, validate

        config = jsonio.loads(jsonio.dumps(self.spec.raw))  # the backend gets a copy it may change
        changed = self.runtime.backends().of(self.record.backend).mrun_modify_spec(
            bundle=Bundle(self.spec), config=config
        )
        if changed is not None:
            try:
                validate(changed)
            except InvalidSpec as e:
                raise InvalidSpec(f"backend {self.record.backend!r} rewrote the config into an invalid one: {e}")
            self.spec = Spec(changed, self.spec.bundle)
            self.record.rootfs = self.spec.rootfs  # root.path may be among what it changed
        self.record.config = jsonio.loads(jsonio.dumps(self.spec.raw))  # saved as it is now, not as it changes

    def choose_sandbox(self, undo: Undo) -> None:
        from mrun.spec import check_applied

        hooks = self.runtime.backends().of(self.record.backend)
        self.driver = hooks.mrun_sandbox(container_id=self.id, state_dir=self.store.path(self.id))
        self.record.owned = self.driver is not None
        if self.driver is None:  # mrun builds the sandbox: it must apply all the config asks for
            check_applied(self.spec.raw)
            if self.spec.linux.get("netDevices"):
                from mrun.network import netdevices

                self.net_devices = netdevices.planned(self.spec.linux, self.spec.namespaces())

    def hand_over(self, undo: Undo) -> None:
        """The backend's runtime creates the container from a bundle holding the config as it is
        now (rewritten or not), its root the original rootfs."""
        bundle = self.store.path(self.id, "bundle")
        os.makedirs(bundle, exist_ok=True)
        config = jsonio.loads(jsonio.dumps(self.spec.raw))
        config["root"]["path"] = self.spec.rootfs
        jsonio.write_file(os.path.join(bundle, "config.json"), config)
        console, relay = self.opts.console_socket, None
        if self.opts.console is not None:  # a connected socket (the shim's, or `run -t`'s): relay onto it
            relay = ConsoleRelay(self.store.path(self.id, "console.sock"), self.opts.console)
            console = relay.path
        created = False
        try:
            self.record.pid = self.driver.create(self.id, bundle, self.opts.pid_file, console)
            undo.callback(self.driver.delete, self.id, True)
            created = True
        finally:
            if relay is not None:
                relay.finish(wait=created)
        self.record.pid_start = self.runtime.host.start_time(self.record.pid)

    def record_state(self, undo: Undo) -> None:
        self.store.save(self.record)  # undone by _forget, registered before the first step

    def _forget(self) -> None:
        self.runtime._detach_network(self.id)
        if self.previous is None:
            self.store.remove(self.id)
            return
        # Stopped as it was, so `start` can be asked again once the cause is mended (a bind source
        # back, a port free): removed, it was listed as orphaned and `start` said it did not exist.
        self.store.clear(self.id)
        self.store.save(self.previous)

    def claim_cgroup(self, undo: Undo) -> None:
        linux = self.spec.linux
        self.cgroup = self.runtime.host.new_cgroup(linux.get("cgroupsPath", ""), self.id, self.opts.systemd_cgroup)
        self.cgroup.plan(self.store.cgroup_marks)
        self.record.cgroup = self.cgroup.to_dict()
        self.store.save(self.record)  # planned directories recorded before they exist
        undo.callback(_destroy_quietly, self.cgroup)
        resources = linux.get("resources") or {}
        # "devices" named even where the spec has none: create's rules are a whitelist either way
        self.cgroup.create({**resources, "devices": resources.get("devices") or []}, linux.get("devices") or [])
        self.record.cgroup = self.cgroup.to_dict()
        self.store.save(self.record)  # claimed: from here on its processes may be killed

    def prepare_backend(self, undo: Undo) -> None:
        self.builder = SandboxBuilder(self.runtime, self.id, self.record.backend, self.spec, self.spec.process,
                                      self.cgroup)
        self.builder.plan.own_stdio = self.opts.own_stdio
        self.builder.prepare_backend()

    def prepare_network(self, undo: Undo) -> None:
        if self.spec.annotations.get(ann.NETWORK):
            from mrun.network import attach

            more = attach.more_of(self.spec.annotations)  # a malformed list fails before anything is taken
            state_dir = self.store.path(self.id)
            self.network = attach.prepare(self.spec, state_dir, self.store.root, self.id)
            held = self.network["held"]  # (its ports, on every network alike)
            self.more_networks = [attach.prepare_more(state_dir, self.store.root, self.id, want, f"eth{i}", held)
                                  for i, want in enumerate(more, 1)]
            # undone by _forget (detach), which already runs last
        elif self.spec.annotations.get(ann.NETWORK_MORE):
            raise InvalidSpec(f"annotation {ann.NETWORK_MORE}: more networks than a first one "
                              f"({ann.NETWORK}), which this container has not")
        elif self.spec.annotations.get(ann.NETWORK_DETACHED):
            from mrun.network import attach

            attach.prepare_detached(self.spec, self.store.path(self.id), self.store.root, self.id)

    def make_fifos(self, undo: Undo) -> None:
        """Opened here, inherited by the init: inside a user namespace it could not open these
        root-owned fifos itself. Read-write, so opening never blocks. The init holds the started
        fifo until its payload runs (closed by execve, or by the wasm payload once entered)."""
        fds = []
        for name in (EXEC_FIFO, STARTED_FIFO):
            path = self.store.path(self.id, name)
            os.mkfifo(path, 0o600)
            fds.append(os.open(path, os.O_RDWR | os.O_CLOEXEC))
            undo.callback(_close_quietly, fds[-1])  # the fifos themselves go with the state directory
        self.fifo_fd, self.started_fd = fds

    def spawn_init(self, undo: Undo) -> None:
        spec, record = self.spec, self.record
        console = prepare_stdio(spec.process, self.opts)
        sandbox = self.builder.sandbox(
            spec.namespaces(),
            console,
            cgroup_paths=getattr(self.cgroup, "paths", {}),
            exec_fifo=self.fifo_fd,
            starter_pidfd=self.opts.starter_pidfd,
            started_fd=self.started_fd,
            no_pivot=self.opts.no_pivot,
            new_keyring=record.new_keyring,
            hook_state=oci_state(self.store, record, Status.CREATING),
            detached=dict(self.detached),
        )
        try:
            record.pid, self.ch = self.builder.launch(
                undo,
                namespaces=spec.namespaces(),
                child=sandbox.init,
                add_to_cgroup=self.cgroup.add,
                thread_files=self.cgroup.thread_files,
                born_in=self.cgroup.birth_dir(),
                uid_mappings=spec.linux.get("uidMappings") or [],
                gid_mappings=spec.linux.get("gidMappings") or [],
                close_in_child=(self.lock_fd,),
                time_offsets=spec.linux.get("timeOffsets"),
                oom_score_adj=spec.process.get("oomScoreAdj"),
            )
            record.pid_start = self.builder.pid_start
            self.store.save(record)
        finally:
            for fd in (self.fifo_fd, self.started_fd):  # only the init may hold them now
                _close_quietly(fd)
            self._close_detached()
            if console is not None:
                console.close()

    def open_host_mounts(self, undo: Undo) -> None:
        """Bind sources the init cannot bind itself (idmapped ones; any, in a user namespace),
        cloned here as detached mounts it inherits and moves into place (mrun.sandbox.host_mounts)."""
        mounts, linux, namespaces = self.spec.raw.get("mounts") or [], self.spec.linux, self.spec.namespaces()
        if "mount" not in namespaces:
            return  # the caller's mount namespace: no mount is made (runc's rule, warned about)
        if "user" not in namespaces and not any(spec_idmapping(m, linux, i) for i, m in enumerate(mounts)):
            return  # the usual case: the module is not imported
        from mrun.sandbox import host_mounts

        self.detached = host_mounts.prepare(mounts, linux)
        undo.callback(self._close_detached)

    def _close_detached(self) -> None:
        while self.detached:
            _close_quietly(self.detached.popitem()[1])

    def move_net_devices(self, undo: Undo) -> None:
        """Before the hooks, as runc moves them: a createRuntime hook sees them in place. Nothing
        to undo: the init's namespace, killed with it, takes them along (netdevices)."""
        if self.net_devices:
            from mrun.network import netdevices

            netdevices.move_all(self.net_devices, self.record.pid)

    def await_init(self, undo: Undo) -> None:
        def host_hooks() -> None:
            from mrun.hooks import run_hooks

            state = oci_state(self.store, self.record, Status.CREATED)
            run_hooks("prestart", self.spec.hooks.get("prestart") or [], state)
            run_hooks("createRuntime", self.spec.hooks.get("createRuntime") or [], state)

        def listener(number: int) -> None:
            from mrun.sandbox.seccomp_agent import hand_over

            state = oci_state(self.store, self.record, Status.CREATING)
            hand_over(self.builder.plan.seccomp.listener, self.record.pid, number, state)

        # the init has its rlimits, user, capabilities (ProcessPlan.apply), and its seccomp listener if any
        await_ready(self.ch, host_hooks, listener)

    def attach_network(self, undo: Undo) -> None:
        if self.network is not None:
            from mrun.network import attach

            for plan in [self.network, *self.more_networks]:
                attach.attach(plan, self.record.pid)

    def mark_created(self, undo: Undo) -> None:
        self.record.stage = Status.CREATED
        self.store.save(self.record)
        if self.opts.pid_file and self.driver is None:  # a driver's runtime wrote it
            write_pid_file(self.opts.pid_file, self.record.pid)


def owner_name() -> str:
    """Who makes the container (runc's state `owner`)."""
    import pwd

    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


def _close_quietly(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


def _destroy_quietly(cgroup: Any) -> None:
    from mrun.errors import MrunError

    try:
        cgroup.destroy()
    except MrunError:
        pass


class ConsoleRelay:
    """A console socket path for another runtime whose pty master goes on to an already connected
    socket (what the shim and a foreground ``run -t`` hand mrun instead of a path)."""

    def __init__(self, path: str, onward: Any) -> None:
        import socket
        import threading

        self.path, self.onward = path, onward
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)
        self.listener.listen(1)
        self.listener.settimeout(60)
        self.thread = threading.Thread(target=self._relay, daemon=True)
        self.thread.start()

    def _relay(self) -> None:
        from mrun.kernel import fdpass
        from mrun.sandbox.console import receive_fd

        try:
            conn, _ = self.listener.accept()
            with conn:
                master = receive_fd(conn)
            try:
                self.onward.sendmsg([b"pty"], fdpass.rights([master]))
            finally:
                os.close(master)
        except OSError:
            pass  # the create fails, or its runtime says why

    def finish(self, wait: bool) -> None:
        """After a create that worked, the runtime has sent its pty (it may still sit in the
        listen queue): wait for it to go on. After one that failed, stop waiting for it."""
        if wait:
            self.thread.join(10)
        self.listener.close()
        self.thread.join(5)
        try:
            os.unlink(self.path)
        except OSError:
            pass

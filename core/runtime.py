"""The in-process runtime API: one container lifecycle behind the CLI and the shim.

Each method does one runtime-spec operation on the state root it was built with. Heavy
imports (pluggy and the backends, the sandbox) happen only in the methods that need them,
so ``start``, ``state``, ``kill`` and ``delete`` stay cheap for callers that spawn one
process per verb (containerd's runc shim, podman).
"""

from __future__ import annotations

import os
import time

from mrun import annotations as ann
from mrun import jsonio
from mrun.errors import InvalidSpec, InvalidState, MrunError, NotFound, one_line
from mrun.kernel import proc
from mrun.kernel.proc import SIGKILL, exit_code
from mrun.operations.options import CreateOptions
from mrun.state import EXEC_FIFO, PAUSED_BY, STARTED_FIFO, Record, Store, oci_state
from mrun.status import Status, require
from mrun.stop_signals import raise_if_held
from mrun.trace import span

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~6 ms (it imports re) on the lifecycle verbs' hot path
    from collections.abc import Callable
    from typing import Any

    from mrun.spec import Spec


def _print_warning(msg: str) -> None:
    import sys

    print(f"mrun: warning: {one_line(msg)}", file=sys.stderr)


class Runtime:
    """``warn`` receives things worth telling a person that are not errors (an OOM kill)."""

    def __init__(
        self,
        root: str,
        warn: Callable[[str], None] | None = None,
        debug: Callable[[str], None] | None = None,
        backends: Any = None,
        host: Any = None,
    ) -> None:
        from mrun.operations.host import REAL

        self.host = host or REAL  # the kernel seam: a recording double in the unit tests
        self.store = Store(root, self.host)
        self.warn = warn or _print_warning
        self.debug = debug or (lambda _msg: None)
        self._backends: Any = backends  # a loaded plugins.manager.Backends, or None to load on use

    def backends(self) -> Any:
        """The plugin manager, loaded on first use and kept: a long-lived caller (the shim,
        `mrun events`) asks for it on every stats call."""
        if self._backends is None:
            from mrun.plugins.manager import Backends

            self._backends = Backends.shared()
        return self._backends

    # -- create / start ----------------------------------------------------------------------

    def create(
        self, container_id: str, bundle: str, opts: CreateOptions | None = None, spec: Spec | None = None
    ) -> Record:
        """``spec``: the bundle's config as ``run`` already read and checked it (read once)."""
        from mrun.spec import check_sysctls, load_bundle

        opts = opts or CreateOptions()
        spec = spec or load_bundle(bundle)
        check_sysctls(spec)
        if "mount" not in spec.namespaces():  # the caller's mount namespace: runc's rules
            for field in ("maskedPaths", "readonlyPaths"):
                if spec.linux.get(field):
                    raise InvalidSpec(f"linux.{field}: needs a mount namespace of the container's own")
            if spec.raw.get("mounts") or spec.raw["root"].get("readonly"):
                self.warn("mounts, root.readonly: ignored: without a mount namespace the container shares the caller's")
        if (spec.linux.get("personality") or {}).get("flags"):
            self.warn("linux.personality.flags: ignored, as runc ignores them (the runtime-spec defines none yet)")
        with self.store.reserve(container_id) as lock:  # held from the start: start/delete wait until it is built
            from mrun.operations.create import Create

            return Create(self, container_id, spec, opts, lock.fd).run()

    def recreate(self, container_id: str, opts: CreateOptions | None = None) -> Record:
        """A stopped container made again from its bundle under the same id, its files kept (a
        `mrun run IMAGE` snapshot is the bundle's): what a restart policy needs. Its last record
        stays readable (ps, inspect) until the new create replaces it, and the id is never free
        in between. A backend that owns its sandbox is not restarted this way."""
        from mrun.operations.create import Create
        from mrun.spec import check_sysctls, load_bundle

        with self.store.lock(container_id) as lock:
            record = self.store.load(container_id)
            status = self.status(record)
            if status != Status.STOPPED:
                raise InvalidState(f"container {container_id!r} is {status}, not stopped")
            if record.owned:
                raise MrunError(f"container {container_id!r}: its backend owns the sandbox; it is not restarted")
            spec = load_bundle(record.bundle)
            check_sysctls(spec)
            self._take_down(record)
            self._detach_network(container_id)
            self.store.clear(container_id)
            return Create(self, container_id, spec, opts or CreateOptions(), lock.fd, previous=record).run()

    def _detach_network(self, container_id: str) -> None:
        from mrun.network import PLAN

        state_dir = self.store.path(container_id)
        if os.path.exists(os.path.join(state_dir, PLAN)) or any(
                n.startswith("net-") for n in _listdir(state_dir)):  # (its other networks': attach.more_plans)
            from mrun.network.attach import detach

            detach(state_dir)

    # -- the second tier: a backend that owns the sandbox gets the verbs ---------------------

    def _driver(self, record: Record) -> Any:
        """The backend's SandboxDriver for a container it owns (plugins.api), else None."""
        if not record.owned:
            return None
        hooks = self.backends().of(record.backend)
        return hooks.mrun_sandbox(container_id=record.id, state_dir=self.store.path(record.id))

    def status(self, record: Record) -> Status:
        """Read off the process, fifo and freezer (mrun's sandbox), or asked of the owning backend.
        A container held paused by a process that is gone (``paused_for``) is resumed first."""
        found = self._status(record)
        if found == Status.PAUSED and self._resume_abandoned(record):
            return self._status(record)
        return found

    def _status(self, record: Record) -> Status:
        driver = self._driver(record)
        if driver is None:
            return self.store.status(record)
        if record.stage == Status.CREATING:
            return Status.STOPPED
        said = driver.status(record.id)
        known = (Status.CREATED, Status.RUNNING, Status.PAUSED, Status.STOPPED)
        return next((s for s in known if s == said), Status.STOPPED)

    def start(self, container_id: str) -> Record:
        with self.store.lock(container_id):
            record = self.store.load(container_id)
            require("start", self.status(record), container_id)
            driver = self._driver(record)
            if driver is not None:  # its runtime runs the start hooks
                driver.start(container_id)
                record.stage = Status.RUNNING
                self.store.save(record)
                return record
            fifo = self.store.path(container_id, EXEC_FIFO)
            try:
                fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            except OSError:  # (one a killed start had written is running: status said so above)
                raise InvalidState(f"cannot start container {container_id!r}: its init process is gone")
            started = self._open_started(container_id)
            try:
                os.write(fd, b"0")
            finally:
                os.close(fd)
            os.unlink(fifo)
            record.stage = Status.RUNNING
            self.store.save(record)
            if started is not None:
                self._wait_started(record, started)
        poststart = (record.config.get("hooks") or {}).get("poststart")
        if poststart:
            from mrun.hooks import run_hooks

            try:
                run_hooks("poststart", poststart, oci_state(self.store, record, Status.RUNNING))
            except MrunError:
                # runtime-spec 1.3: an error, and the container stopped (runc's terminate): its
                # engine deletes it. The later poststart hooks do not run.
                self._kill(self.store.load(container_id), SIGKILL, False)
                raise
        return record

    def _open_started(self, container_id: str) -> int | None:
        try:
            fd = os.open(self.store.path(container_id, STARTED_FIFO), os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            return None  # made by an mrun before this one
        os.set_blocking(fd, True)
        return fd

    def _wait_started(self, record: Record, fd: int) -> None:
        """The runtime-spec's start: return once the user's program runs (EOF: execve closed the
        init's end, or the wasm payload entered the module). Signals the init caught meanwhile
        arrive as bytes; they are delivered now, to the program, instead of being swallowed."""
        data = b""
        try:
            while True:
                try:
                    chunk = os.read(fd, 256)
                except InterruptedError:
                    continue
                if not chunk:
                    break
                data += chunk
        finally:
            os.close(fd)
            try:
                os.unlink(self.store.path(record.id, STARTED_FIFO))
            except FileNotFoundError:
                pass
        for sig in data:
            try:
                self.host.kill(record.pid, record.pid_start, sig)
            except ProcessLookupError:
                break

    # -- inspection ----------------------------------------------------------------------

    def state(self, container_id: str) -> dict[str, Any]:
        """runc's state document; a container that the OOM killer ended also says so."""
        record = self.store.load(container_id)
        state = oci_state(self.store, record, self.status(record))
        if state["status"] == Status.STOPPED and self.oom_killed(record):
            state["oomKilled"] = True
        return state

    def list(self) -> list[dict[str, Any]]:
        out = []
        for cid in self.store.ids():
            try:
                out.append(self.state(cid))
            except NotFound:
                continue  # a create that has not written its state yet, or a delete in progress
            except MrunError as e:
                self.warn(str(e))  # one damaged container never hides the others

        return out

    def _cgroup(self, record: Record) -> Any:
        if not record.cgroup:
            raise MrunError(f"container {record.id!r} has no cgroup")
        return self.host.open_cgroup(record.cgroup)

    def pids(self, container_id: str) -> list[int]:
        record = self.store.load(container_id)
        driver = self._driver(record)
        if driver is not None:
            return driver.pids(container_id)
        if not record.cgroup and record.pid == 0:  # docker's create, never started: nothing runs, as after an exit
            return []
        return self._cgroup(record).pids()

    def stats(self, container_id: str) -> dict[str, Any]:
        """The cgroup's figures, plus what the container's backend reports under "backend"."""
        record = self.store.load(container_id)
        driver = self._driver(record)
        if driver is not None:
            return {"backend": {"name": record.backend, **driver.stats(container_id)}}
        stats = self._cgroup(record).stats()
        stats["cgroup_version"] = record.cgroup.get("version", 1)
        stats["backend"] = self._backend_figures(record)
        return stats

    def events_data(self, container_id: str) -> dict[str, Any]:
        """`runc events`' "data": the cgroup's figures as runc lays them out; mrun's backend
        figures and cgroup version beside them. A container another runtime runs: its own."""
        record = self.store.load(container_id)
        driver = self._driver(record)
        if driver is not None:
            theirs = driver.stats(container_id)
            data = dict((theirs.get("events") or {}).get("data") or {})
            data["backend"] = {"name": record.backend, "runtime": theirs.get("runtime")}
            return data
        data = self._cgroup(record).runc_stats()
        data["cgroup_version"] = record.cgroup.get("version", 1)
        data["backend"] = self._backend_figures(record)
        return data

    def _backend_figures(self, record: Record) -> dict[str, Any]:
        from mrun.plugins.api import Bundle, Container
        from mrun.spec import Spec

        container = Container(record.id, Bundle(Spec(record.config, record.bundle)), self.store.path(record.id))
        extra = self.backends().of(record.backend).mrun_stats(container=container)
        return {"name": record.backend, **(extra or {})}

    def oom_kills(self, container_id: str) -> int:
        """How many processes of the container the OOM killer has killed (0 without a cgroup)."""
        return self._oom_count(self.store.load(container_id))

    def oom_killed(self, record: Record) -> bool:
        return self._oom_count(record) > 0

    def _oom_count(self, record: Record) -> int:
        if self._driver(record) is not None or not record.cgroup:
            return 0
        try:
            return self._cgroup(record).oom_kills()
        except (MrunError, OSError):
            return 0

    # -- signals, pause ------------------------------------------------------------------------

    def kill(self, container_id: str, sig: int, all_processes: bool = False) -> None:
        """``all_processes``: every process of the container's cgroup, in any status (runc's
        rule): a stopped container that shared a PID namespace leaves processes the kernel did
        not end with its init, and containerd's runc shim kills them so."""
        self._kill(self.store.load(container_id), sig, all_processes)

    def _kill(self, record: Record, sig: int, all_processes: bool) -> None:
        container_id = record.id
        status = self.status(record)
        if not (all_processes and status == Status.STOPPED):
            require("kill", status, container_id)
        driver = self._driver(record)
        if driver is not None:
            driver.kill(container_id, sig, all_processes)
            return
        if all_processes:
            if not record.cgroup:
                return  # a stopped one whose cgroup was never made: nothing of it can be left
            let_go = self._hold_frozen(container_id) if sig == SIGKILL else None  # sent frozen
            try:
                self._cgroup(record).kill_all(sig)
            finally:
                if let_go is not None:
                    let_go()
            return
        try:
            self.host.kill(record.pid, record.pid_start, sig)
        except ProcessLookupError:
            raise InvalidState(f"cannot kill container {container_id!r}: container not running")
        if sig == SIGKILL and status == Status.PAUSED:
            self._cgroup(record).set_frozen(False)  # a frozen task cannot die until thawed

    def end_the_rest(self, container_id: str) -> None:
        """Once the container's init has exited: what it left in its cgroup is killed where its
        PID namespace is not its own (a pod's shared one, another container's, the host's); in a
        namespace of its own the kernel ended them with it. containerd's runc shim does so before
        it reports the exit (ShouldKillAllOnExit), so docker and Kubernetes do: a child left
        holding the container's output kept CRI's stop, or a caller's pipe, waiting."""
        from mrun.spec import Spec

        try:
            record = self.store.load(container_id)
            if Spec(record.config, record.bundle).namespaces().get("pid") == "":  # a new one: its own
                return
            self._kill(record, SIGKILL, all_processes=True)
        except (MrunError, OSError):
            pass  # its state or cgroup gone meanwhile (a delete --force): nothing is left to end

    def pause(self, container_id: str) -> None:
        self._freeze(container_id, "pause")

    def resume(self, container_id: str) -> None:
        self._freeze(container_id, "resume")

    def paused_for(self, container_id: str) -> Callable[[], None]:
        """Pause the container for a while (commit's default), noting first which process holds
        it so: killed before it resumes it, that process leaves it paused for good, and the next
        look at the container (``status``) resumes it. -> the function that resumes it."""
        let_go = self._hold_frozen(container_id)
        try:
            self._freeze(container_id, "pause", keep_marker=True)
        except BaseException:
            let_go()
            raise

        def resume() -> None:
            self._freeze(container_id, "resume", keep_marker=True)
            let_go()

        return resume

    def _hold_frozen(self, container_id: str) -> Callable[[], None]:
        """Note that this process may leave the container frozen for a while (``paused_for``, a
        SIGKILL sent frozen): the next ``status`` resumes it if we are killed before we let go.
        -> the function that lets go."""
        marker = self.store.path(container_id, PAUSED_BY)
        try:
            jsonio.replace_file(marker, {"pid": os.getpid(), "start": proc.start_time(os.getpid())})
        except OSError:  # its directory removed meanwhile (a concurrent delete): the kill goes on unnoted
            return lambda: None
        return lambda: _unlink_quietly(marker)

    def _resume_abandoned(self, record: Record) -> bool:
        """Whether the container was held paused by a process that has gone, and is resumed now."""
        marker = self.store.path(record.id, PAUSED_BY)
        try:
            holder = jsonio.load_file(marker)
        except (OSError, ValueError):
            return False
        if isinstance(holder, dict) and proc.is_alive(holder.get("pid") or 0, holder.get("start")):
            return False
        driver = self._driver(record)
        if driver is not None:
            driver.resume(record.id)
        else:
            self._cgroup(record).set_frozen(False)
        _unlink_quietly(marker)
        return True

    def _freeze(self, container_id: str, operation: str, keep_marker: bool = False) -> None:
        with self.store.lock(container_id):
            if not keep_marker:  # the user's own pause or resume: not one a process holds for a while
                _unlink_quietly(self.store.path(container_id, PAUSED_BY))
            record = self.store.load(container_id)
            require(operation, self._status(record), container_id)  # any note is gone or ours: nothing to resume
            driver = self._driver(record)
            if driver is not None:
                getattr(driver, operation)(container_id)
            else:
                self._cgroup(record).set_frozen(operation == "pause")

    def update(self, container_id: str, resources: dict[str, Any]) -> None:
        """runc's update: the cgroup's limits changed, and the record's spec with them (as runc
        keeps them in its state), so what is read of the container after says what it has."""
        from mrun.spec import check_resources, merge_resources

        check_resources(resources)
        # A container's device rules are create's, as under runc (whose update never reads them):
        # CRI sends the spec's whole linux.resources, devices included, with every update, and a
        # request's allow-all rule would give the container every host device (a disk, by mknod).
        resources = {field: value for field, value in resources.items() if field != "devices"}
        with self.store.lock(container_id):
            record = self.store.load(container_id)
            require("update", self.status(record), container_id)
            driver = self._driver(record)
            if driver is not None:
                driver.update(container_id, resources)
            else:
                self._cgroup(record).apply(resources)
            merge_resources(record.config, resources)
            self.store.save(record)

    # -- delete ---------------------------------------------------------------------------

    def delete(self, container_id: str, force: bool = False) -> None:
        if force:  # what creates killed before their directory was in place left (this id's too)
            self.store.sweep_making()
        if not self.store.exists(container_id):
            if force:
                return
            raise NotFound(f"container {container_id!r} does not exist")
        try:
            with self.store.lock(container_id):  # waits for a create of this id to finish
                self._delete_locked(container_id, force)
        except NotFound:
            if not force:
                raise  # with --force, gone is what was asked for (e.g. a failed create cleaned up)

    def _delete_locked(self, container_id: str, force: bool) -> None:
        try:
            record = self.store.load(container_id)
        except MrunError:
            if not force:
                raise
            self._detach_network(container_id)
            self.store.remove(container_id)  # a create that crashed before writing its state
            return
        if not force:
            require("delete", self.status(record), container_id)
        if ann.IMAGE in record.annotations:
            from mrun.bundles import unkeep

            unkeep(record.bundle, record.id, self.store.root)
        driver = self._driver(record)
        if driver is not None:  # its runtime stops it, removes its cgroup and runs poststop
            driver.delete(container_id, force)
        else:
            self._take_down(record)
        self._detach_network(container_id)
        self.store.remove(container_id)
        if ann.IMAGE in record.annotations:
            from mrun.bundles import release

            release(record.bundle, record.id, self.store.root)  # made by `mrun run IMAGE`: its snapshot goes too

    def _take_down(self, record: Record) -> None:
        """mrun's own sandbox: kill what is left, remove the cgroup, run the poststop hooks."""
        container_id = record.id
        # Its processes get SIGKILL frozen (_stop, destroy): noted, as a live one is killed
        alive = self.host.alive(record.pid, record.pid_start)
        let_go = self._hold_frozen(container_id) if alive else None
        try:
            if alive:
                self._stop(record)
            if record.cgroup:
                if self.oom_killed(record):
                    self.warn(f"container {container_id!r} had processes killed by the OOM killer")
                self._cgroup(record).destroy()
        finally:
            if let_go is not None:
                let_go()
        poststop = (record.config.get("hooks") or {}).get("poststop")
        if poststop:
            from mrun.hooks import run_hooks

            run_hooks("poststop", poststop, oci_state(self.store, record, Status.STOPPED))

    def _stop(self, record: Record, timeout: float = 10.0) -> None:
        """A live container's processes: SIGKILLed, and its init awaited."""
        if record.cgroup:
            cg = self._cgroup(record)
            if cg.exists():
                cg.kill_all(SIGKILL)
        try:
            self.host.kill(record.pid, record.pid_start, SIGKILL)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout
        while self.host.alive(record.pid, record.pid_start):
            try:  # reap it if it is our own child (run, exec without --detach)
                os.waitpid(record.pid, os.WNOHANG)
            except ChildProcessError:
                pass
            if time.monotonic() > deadline:
                raise MrunError(f"container {record.id!r}: init process {record.pid} did not die")
            time.sleep(0.002)

    # -- run and exec ---------------------------------------------------------------------

    def exec(self, container_id: str, process: dict[str, Any], opts: CreateOptions, detach: bool,
             ignore_paused: bool = False, sub_cgroups: list[str] | None = None) -> int:
        """runc's exec. In a paused container only with ``ignore_paused`` (runc's --ignore-paused):
        the process then joins the frozen cgroup and is frozen with it, so the call returns once
        the container is resumed, as runc's does."""
        from mrun.kernel import syscalls as sc
        from mrun.operations.exec import exec_process, stopped
        from mrun.spec import check_process, check_process_applied

        check_process(process)
        record = self.store.load(container_id)
        status = self.status(record)
        if status == Status.PAUSED and not ignore_paused:
            raise InvalidState(f"cannot exec in container {container_id!r}: it is paused (--ignore-paused overrides)")
        if status != Status.PAUSED:
            require("exec", status, container_id)
        if not detach:
            sc.prctl(sc.PR_SET_CHILD_SUBREAPER, 1)
        driver = self._driver(record)
        if driver is not None and sub_cgroups:
            raise InvalidSpec(f"--cgroup: container {container_id!r} is run by another runtime, which places "
                              "its processes itself")
        ours = None if driver is not None else _relayed_console("exec", process, opts, detach)
        try:
            if driver is not None:
                pid = driver.exec(container_id, process, opts.pid_file, opts.console_socket)
            else:
                check_process_applied(process)
                pid = exec_process(self, record, process, opts, sub_cgroups)
        except BaseException as e:
            if ours is not None:
                ours.close()
            if (driver is None and isinstance(e, (MrunError, OSError)) and not isinstance(e, InvalidState)
                    and not proc.is_alive(record.pid, record.pid_start)):
                # it ended while the process was set up: what failed then (a fork in its ended PID
                # namespace, ENOMEM; its cgroup removed; the set-up's death) would mislead
                raise stopped(container_id) from None
            raise
        finally:
            if ours is not None:
                opts.console.close()
        if detach:
            return 0
        if ours is None:
            return wait_forwarding(pid)
        proxy = _terminal_from(ours, None, opts)
        restore = forward_signals(pid, proxy.resize)
        try:
            proxy.begin()
            return wait_forwarding(pid, restore)
        finally:
            proxy.end()

    def run(self, container_id: str, bundle: str, opts: CreateOptions, detach: bool, keep: bool = False) -> int:
        """runc's ``run``: create + start, then (unless detached) wait, report, delete."""
        from mrun.kernel import syscalls as sc
        from mrun.spec import load_bundle

        spec = load_bundle(bundle)
        ours = _relayed_console("container", spec.process, opts, detach)
        if not detach:
            # The init is our child, or reparented to us when an intermediate exits: we can wait for it.
            sc.prctl(sc.PR_SET_CHILD_SUBREAPER, 1)
        opts.starter_pidfd = _own_pidfd()
        try:
            record = self.create(container_id, bundle, opts, spec)
        except BaseException:
            _forget_starter(opts)
            raise
        finally:
            if opts.console is not None:
                opts.console.close()
        proxy = None
        pending: list[int] = []  # a signal `run --sig-proxy=false` took before its terminal's relay was there

        def unproxied(signum: int) -> None:
            if ours is not None and proxy is None:
                pending.append(signum)
            else:
                opts.unproxied(signum, proxy)

        # Before start: a signal that comes once the process runs must reach it, not end us.
        # Our window changing resizes the container's pty, whose kernel then signals its
        # foreground process group (as a terminal does); without a pty it is passed on.
        restore = None if detach else forward_signals(record.pid, lambda: proxy is not None and proxy.resize(),
                                                      unproxied if opts.unproxied is not None else None)
        try:
            if ours is not None:
                proxy = _terminal_from(ours, opts.terminal_log, opts)
                if pending:
                    opts.unproxied(pending[0], proxy)
            raise_if_held()  # a stop signal `mrun run` held while it made the container: it ends here
            with span("run start"):
                started = self.start(container_id)
        except BaseException:
            if restore is not None:
                restore()
            self.delete(container_id, force=True)
            raise
        finally:
            _forget_starter(opts)
        if opts.started is not None:
            opts.started(started)
        if restore is None:
            return 0
        try:
            if proxy is not None:
                proxy.begin()
            with span("run wait"):
                code = wait_forwarding(record.pid, restore)
        except BaseException:  # a run that cannot be seen through leaves no container behind
            restore()
            self.delete(container_id, force=True)
            raise
        finally:
            if proxy is not None:
                proxy.end()
        if code == 128 + SIGKILL and self.oom_killed(record):
            self.warn(f"container {container_id!r} was killed by the OOM killer (memory limit reached)")
        if not keep:
            with span("run delete"):
                self.delete(container_id, force=True)
        return code


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except OSError:
        return []


def _own_pidfd() -> int:
    """A pidfd of this process for the init `run` makes: SIGKILLed (the OOM killer, `timeout -s
    KILL`) between its create and its start, nothing would start that init, which would wait
    for good holding our caller's stdout. -1 where the kernel has no pidfds (before 5.3)."""
    try:
        return os.pidfd_open(os.getpid())
    except (OSError, AttributeError):
        return -1


def _forget_starter(opts: CreateOptions) -> None:
    """Once the init is started (or gone with a failed run), it watches us no more."""
    if opts.starter_pidfd >= 0:
        os.close(opts.starter_pidfd)
        opts.starter_pidfd = -1


def _relayed_console(what: str, process: dict[str, Any], opts: CreateOptions, detach: bool) -> Any:
    """docker's `run -it` and `exec -it` from a terminal: the process wants a pty and no
    --console-socket (podman's, containerd's) takes it, so it comes to us, to relay. -> our end of
    the socket it arrives on (the other is ``opts.console``, handed to the process's set-up), or
    None when there is nothing to relay."""
    if not process.get("terminal") or opts.console_socket or opts.console is not None:
        return None
    if detach:
        raise InvalidSpec(f"process.terminal: a detached {what} needs --console-socket for its pty")
    import socket

    ours, opts.console = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    return ours


def _terminal_from(ours: Any, log: Any = None, opts: CreateOptions | None = None) -> Any:
    """The relay of the pty that came on ``ours`` (closed here), sized as our terminal before the
    program runs: its first look at the size must find ours. ``log``: given its output too;
    ``opts``: a run's or an exec's detach keys and what takes over once they are typed."""
    import mrun.warm.client as warm
    from mrun.sandbox.console import TerminalProxy, receive_fd

    try:
        proxy = TerminalProxy(receive_fd(ours), log, warm.caller, detach_keys=opts.detach_keys if opts else b"",
                              on_detach=opts.on_detach if opts else None, detach_said=opts.detach_said if opts else b"")
    finally:
        ours.close()
    if warm.caller:  # a child doing its caller's work: if the work outlives the caller, the terminal is let go
        warm.when_caller_gone.append(proxy.let_go)
    proxy.resize()
    return proxy


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def forward_signals(pid: int, on_winch: Callable[[], bool] | None = None,
                    unproxied: Callable[[int], None] | None = None) -> Callable[[], None]:
    """Pass the signals we get on to ``pid`` from now on; SIGWINCH goes to ``on_winch`` first,
    and is passed on only if that returns False (no terminal took it). ``unproxied``: given
    those that would end a process (not SIGCONT, SIGWINCH) instead, and from the first on none
    is passed on (`run --sig-proxy=false`). -> a function that stops it."""
    import signal

    forwarded = (
        signal.SIGHUP,
        signal.SIGINT,
        signal.SIGQUIT,
        signal.SIGTERM,
        signal.SIGUSR1,
        signal.SIGUSR2,
        signal.SIGALRM,
        signal.SIGCONT,
        signal.SIGWINCH,
    )

    try:  # pinned: a signal that comes after the reaping must not reach the number's next owner
        pinned = proc.pin(pid)
    except ProcessLookupError:
        pinned = -2  # gone already: nothing is passed on

    unproxying = unproxied is not None

    def forward(signum: int, _frame: Any) -> None:
        nonlocal unproxied
        if signum == signal.SIGWINCH and on_winch is not None and on_winch():
            return
        if unproxying:
            if unproxied is not None and signum not in (signal.SIGCONT, signal.SIGWINCH):
                take, unproxied = unproxied, None
                take(signum)
            return
        try:
            if pinned != -2:
                proc.send(pinned, pid, signum)
        except ProcessLookupError:
            pass

    old = {s: signal.signal(s, forward) for s in forwarded}

    def restore() -> None:
        nonlocal pinned
        for s, h in old.items():
            signal.signal(s, h)
        if pinned >= 0:
            os.close(pinned)
            pinned = -2

    return restore


def wait_forwarding(pid: int, restore: Callable[[], None] | None = None) -> int:
    """Wait for our child ``pid``, passing on signals we get; reap any orphan on the way.
    ``restore`` is from a ``forward_signals(pid)`` made earlier (before ``start``)."""
    restore = restore or forward_signals(pid)
    try:
        while True:
            try:
                done, status = os.waitpid(-1, 0)
            except ChildProcessError:
                return 255
            if done == pid:
                return exit_code(status)
    finally:
        restore()

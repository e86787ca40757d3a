"""containerd.task.v2.Task over ttrpc, on the same in-process runtime API as the CLI.

Every method of the service; Checkpoint answers Unimplemented, saying why. stdio: fifos,
``file://`` and terminals (see ``stdio``), ``binary://`` logging binaries (``binary_log``).
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable

from google.protobuf import timestamp_pb2
from mrun.annotations import OCI_RUNTIME
from mrun.errors import InvalidSpec, InvalidState, MrunError, NotFound, in_words
from mrun.kernel.proc import exit_code
from mrun.kernel.syscalls import unmount_all
from mrun.operations.builder import warm_the_move_for
from mrun.runtime import Runtime
from mrun.shims import bundle_dir, spawner
from mrun.shims import rootfs as rootfs_mounts
from mrun.shims.binary_log import Logger, is_binary
from mrun.shims.events import Publisher, now
from mrun.shims.proto import events_pb2, task_pb2, types_pb2
from mrun.shims.stdio import StdinPump, TtyRelay, held_reader, open_stdio
from mrun.shims.ttrpc import (
    ALREADY_EXISTS,
    FAILED_PRECONDITION,
    INVALID_ARGUMENT,
    NOT_FOUND,
    UNIMPLEMENTED,
    UNKNOWN,
    Server,
    TTRPCError,
)
from mrun.spec import check_process
from mrun.state import Record
from mrun.status import Status

# The same messages under two names: v2 for containerd 1.6/1.7 (and 2.x with a bare address),
# v3 for containerd 2.x after a BootstrapResult or JSON answer with version 3.
SERVICES = ("containerd.task.v2.Task", "containerd.task.v3.Task")
MAX_SIGNAL = 64  # SIGRTMAX: the last number kill(2) takes
MAX_TERMINAL_SIDE = 0xFFFF  # struct winsize's unsigned short (runc's shim cuts a wider one to it)
EARLY_EXIT_KEPT = 60.0  # seconds an exit nobody has claimed is remembered (an orphan's is never claimed)
TASK_STATUS = {
    Status.CREATING: types_pb2.UNKNOWN,
    Status.CREATED: types_pb2.CREATED,
    Status.RUNNING: types_pb2.RUNNING,
    Status.PAUSED: types_pb2.PAUSED,
    Status.STOPPED: types_pb2.STOPPED,
}


class Process:
    """A task's init or one of its exec'd processes: what Wait, State and Kill look at."""

    def __init__(self, container_id: str, exec_id: str, stdin: str, stdout: str, stderr: str, terminal: bool) -> None:
        self.container_id, self.exec_id = container_id, exec_id
        self.stdin, self.stdout, self.stderr, self.terminal = stdin, stdout, stderr, terminal
        self.pump: StdinPump | None = None
        self.relay: TtyRelay | None = None
        self.held: list[int] = []  # read ends of its output fifos (stdio.held_reader), until it is deleted
        self.logger: Logger | None = None  # its logging binary (binary:// stdout), stopped when it is deleted
        self.io_owner: tuple[int, int] | None = None  # containerd's io_uid/io_gid (its task's, for an exec)
        self.window: tuple[int, int] | None = None  # a ResizePty that came before the pty existed
        self.pid = 0
        self.exit_status = 0
        self.exited_at = timestamp_pb2.Timestamp()
        self.exited = threading.Event()
        self.reaped = False  # set with the reaping, under TaskService.lock: its pid is free from then on
        self.spec: dict | None = None  # an exec'd process's OCI process object


class Task(Process):
    def __init__(self, req: task_pb2.CreateTaskRequest) -> None:
        super().__init__(req.id, "", req.stdin, req.stdout, req.stderr, req.terminal)
        self.id, self.bundle = req.id, req.bundle
        self.execs: dict[str, Process] = {}
        self.kept: dict | None = None  # its state.json as last written (TaskService._written_back)
        self.deleting = False  # under TaskService.lock: its state goes now, and is not written back
        self.mounted = False  # its Create mounted its snapshot on <bundle>/rootfs, for its Delete to undo

    def release_stdio(self) -> None:
        for proc in (self, *self.execs.values()):
            _release(proc)


def _never_ran(proc: Process) -> None:
    """An exec'd process that will never run (its Start failed, or it is deleted unstarted): its
    Waits are answered (exit status 0 and no exit event, as from containerd's runc shim)."""
    if not proc.exited.is_set():
        proc.exited_at = now()
        proc.exited.set()


def _release(proc: Process) -> None:
    if proc.pump is not None:
        proc.pump.close()
    if proc.logger is not None:
        proc.logger.stop()
        proc.logger = None
    if proc.relay is not None:
        proc.relay.release()
    for fd in proc.held:
        os.close(fd)
    proc.held = []


class TaskService:
    def __init__(
        self,
        namespace: str,
        root: str,
        spawner_sock: socket.socket,
        publisher: Publisher | None,
        runtime: Runtime | None = None,  # the unit tests pass one on a recording kernel double
        grouped: bool = False,  # started for a pod (shims.main._group): more creates will come
    ) -> None:
        self.namespace = namespace
        self.grouped = grouped
        self.runtime = runtime or Runtime(root)
        self.spawner = spawner_sock
        self.spawner_lock = threading.Lock()
        self.helper: object = None  # a replacement helper's Popen (the first one is forked by main)
        self.helper_pids: set[int] = set()  # reaped like any child, but never taken for a task's exit
        self.publisher = publisher
        self.tasks: dict[str, Task] = {}
        self.creating: dict[str, str] = {}  # task id -> the rootfs its snapshot goes on ("": none), while made
        self.by_pid: dict[int, Process] = {}
        self.early_exits: dict[int, tuple[int, float]] = {}  # pid -> (status, when): reaped before recorded
        self.lock = threading.Lock()
        self.shutdown_requested = threading.Event()
        self.on_shutdown: Callable[[], None] | None = None  # before the event is set (main: unlink the socket)
        self.sandboxes: dict[str, object] = {}  # the pods this shim holds (shims/sandbox.py)
        self.watchers: dict[int, Callable[[int], None]] = {}  # other children whose exit someone awaits

    def register(self, server: Server) -> None:
        for name in (
            "Update",
            "CloseIO",
            "ResizePty",
            "Create",
            "Start",
            "Exec",
            "Wait",
            "State",
            "Kill",
            "Delete",
            "Pids",
            "Pause",
            "Resume",
            "Stats",
            "Connect",
            "Shutdown",
            "Checkpoint",
        ):
            for service in SERVICES:
                server.register(service, name, getattr(self, name.lower()))

    def _publish(self, event: object) -> None:
        if self.publisher is None:
            return
        try:
            self.publisher.publish(event)  # type: ignore[arg-type]
        except Exception as e:  # containerd also learns of exits through Wait
            print(f"mrun shim: publishing {type(event).__name__} failed: {e}", file=sys.stderr)

    def _task(self, task_id: str) -> Task:
        task = self.tasks.get(task_id)
        if task is None:
            raise TTRPCError(NOT_FOUND, f"task {task_id}: not found")
        self._written_back(task)
        return task

    def _written_back(self, task: Task) -> None:
        """The task's state, removed under us (`rm -rf /run/mrun`, a tmpfiles clean-up), written
        back from what we kept: without it the shim said a running task had stopped, could not
        signal its own child ("does not exist"), and a `ctr task rm -f` waited for ever while the
        cgroup stayed. One stat per call. The marks of the parent cgroups it made are not
        written back: those parents are left, as made by someone else (never removed unproven)."""
        store = self.runtime.store
        if task.kept is None or store.exists(task.id):
            return
        with self.lock:
            if task.deleting or store.exists(task.id):
                return
            store.write_back(Record(**task.kept))
        print(f"mrun shim: the state of task {task.id} was removed under it; written back", file=sys.stderr)

    def _process(self, task_id: str, exec_id: str) -> Process:
        task = self._task(task_id)
        if not exec_id:
            return task
        proc = task.execs.get(exec_id)
        if proc is None:
            raise TTRPCError(NOT_FOUND, f"exec {exec_id} in task {task_id}: not found")
        return proc

    def _ask_helper(self, msg: dict, fds: list[int]) -> dict:
        """One request to the fork helper. A helper that died since the last request is replaced
        and asked again (nothing was done); one that dies during a request is replaced, and
        that one call fails, since its create may be half done."""
        try:
            spawner.send(self.spawner, msg, fds)
        except OSError:  # EPIPE, ECONNRESET: it is gone
            self._replace_helper()
            spawner.send(self.spawner, msg, fds)
        try:
            got = spawner.recv(self.spawner)
        except OSError:
            got = None
        if got is None:
            self._replace_helper()
            raise TTRPCError(UNKNOWN, "OCI runtime failed: the shim's fork helper died during the request "
                                      "(a new one has taken its place; try again)")
        return got[0]

    def _replace_helper(self) -> None:
        print("mrun shim: the fork helper is gone; starting a new one", file=sys.stderr)
        self.spawner.close()
        self.spawner, self.helper = spawner.start_helper()
        self.helper_pids.add(self.helper.pid)  # type: ignore[attr-defined]

    def _spawn(self, msg: dict, proc: Process) -> dict:
        """Ask the fork helper for a create or an exec, wire up its stdio: -> its answer (the
        process's pid; a create's record too). Every stdio path is opened before the helper is
        asked, so a path that cannot be opened fails the request with nothing made; what fails
        after the process was made (its terminal never came) takes that process away again."""
        opened: list[int] = []
        held: list[int] = []
        console = pump = logger = None
        try:
            if is_binary(proc.stdout):  # its output to a logging binary (nerdctl's, --log-uri binary://)
                logger = self._start_logger(proc)
                opened += [logger.out, logger.err]  # ours closed once the process has its copies
            if proc.terminal:  # the container makes the pty and sends its master back on this pair
                stdout = logger.out if logger else _opened(proc, "stdout", True, opened)
                tty = [_opened(proc, "stdin", False, opened), stdout]
                held = [fd for fd in (held_reader(tty[1]),) if fd >= 0]  # as for the streams below
                opened += held
                console, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
                null = _opened(proc, "", False, opened)
                fds = [null, null, null, theirs.detach()]
                opened.append(fds[3])
                msg["terminal"] = True
            else:
                if proc.stdin:
                    try:
                        pump = StdinPump(proc.stdin)
                    except (OSError, ValueError) as e:
                        raise _unopenable(proc, "stdin", e)
                stdin = pump.reader if pump else _opened(proc, "", False, opened)
                if logger:
                    fds = [stdin, logger.out, logger.err]
                else:
                    fds = [stdin, _opened(proc, "stdout", True, opened), _opened(proc, "stderr", True, opened)]
                held = [fd for fd in map(held_reader, fds[1:]) if fd >= 0]
                opened += held  # closed with the rest, unless the process is made
                if proc.io_owner:
                    _give_streams(proc, fds)
            with self.spawner_lock:
                answer = self._ask_helper(msg, fds)
            if "error" in answer:
                raise TTRPCError(
                    UNKNOWN, f"OCI runtime {'exec' if msg.get('process') else 'create'} failed: {answer['error']}"
                )
            if console is not None:
                from mrun.sandbox.console import receive_fd

                try:
                    console.settimeout(10)
                    master = receive_fd(console)
                except OSError as e:
                    self._take_back(msg, proc, answer)
                    raise TTRPCError(UNKNOWN, f"the process's terminal never came: {in_words(e)}")
                proc.relay = TtyRelay(master, *tty)
                opened = [fd for fd in opened if fd not in tty]  # the relay's now
                if proc.window:
                    proc.relay.resize(*proc.window)
            proc.held, opened = held, [fd for fd in opened if fd not in held]
            proc.logger = logger
        except BaseException:
            if pump is not None:
                pump.close()
            if logger is not None:
                logger.stop()
            raise
        finally:
            for fd in opened:
                if fd >= 0:
                    os.close(fd)
            if console is not None:
                console.close()
        if pump is not None:
            pump.start()
            proc.pump = pump
        return answer

    def _start_logger(self, proc: Process) -> Logger:
        """The logging binary of ``proc``'s stdout URI, started and ready, and awaited by the
        reaper from its birth: spawned under the reaper's lock, so it is not reaped unrecorded."""
        try:
            with self.lock:
                logger = Logger(proc.stdout, proc.container_id, self.namespace)
                self.watchers[logger.pid] = lambda _status: None
            logger.signal = lambda sig: self._signal_awaited(logger.pid, sig)
            logger.wait_ready()
        except (OSError, ValueError) as e:
            raise _unopenable(proc, "stdout", e)
        return logger

    def _signal_awaited(self, pid: int, sig: int) -> None:
        """``sig`` to a child of ours the reaper still awaits (a logger): never to a reused pid."""
        with self.lock:
            if pid not in self.watchers:
                raise ProcessLookupError(pid)
            os.kill(pid, sig)

    def _take_back(self, msg: dict, proc: Process, answer: dict) -> None:
        """A process the helper made for a request that fails after all: a create's container is
        deleted (its state names it: pid and start time), an exec'd process is killed as our own
        child (recorded first, so its exit is reaped like any other, and never signalled after)."""
        if not msg.get("process"):
            try:
                self.runtime.delete(msg["id"], force=True)
            except MrunError as e:
                print(f"mrun shim: removing the half-made {msg['id']}: {e}", file=sys.stderr)
            return
        with self.lock:
            proc.pid = answer["pid"]
            self.by_pid[proc.pid] = proc
            proc.reaped = proc.pid in self.early_exits
        try:
            self.signal_child(proc, signal.SIGKILL)
        except ProcessLookupError:
            pass

    # -- the reaper ---------------------------------------------------------------------

    def reap_forever(self) -> None:
        """We are a child subreaper: container inits end up as our children. Each one is reaped
        under the lock that signals go out under (``signal_child``), once seen to have ended and
        not before: its number is its own until then, and freed for the next process after."""
        while True:
            try:
                ended = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOWAIT)
                with self.lock:
                    pid, status = os.waitpid(ended.si_pid, 0)
                    watcher = self.watchers.pop(pid, None)
                    if (proc := self.by_pid.get(pid)) is not None:
                        proc.reaped = True
            except ChildProcessError:  # none, or reaped by its other waiter (a helper's Popen)
                time.sleep(0.05)
                continue
            self._reaped(pid, status, watcher)

    def signal_child(self, proc: Process, sig: int) -> None:
        """``sig`` to one of our own children that has not been reaped: never to its number
        once another process may have it. ProcessLookupError once it has ended."""
        with self.lock:
            if proc.reaped or not proc.pid:
                raise ProcessLookupError(proc.pid)
            os.kill(proc.pid, sig)

    def _reaped(self, pid: int, status: int, watcher: Callable[[int], None] | None = None) -> None:
        """``watcher``: the one awaiting ``pid``, taken from ``watchers`` as it was reaped."""
        if pid in self.helper_pids:
            return
        if watcher is not None:
            watcher(status)
            return
        with self.lock:
            task = self.by_pid.get(pid)
            if task is None:
                now = time.monotonic()
                self.early_exits = {p: e for p, e in self.early_exits.items() if now - e[1] < EARLY_EXIT_KEPT}
                self.early_exits[pid] = (status, now)
                return
        self._exited(task, status)

    def _early_exit(self, pid: int, since: float) -> int | None:
        """The status of ``pid`` if it was reaped before its create or exec recorded it, and after
        that request began: an orphan reparented to us earlier (a dead helper's copy, an
        intermediate) may have had the same number."""
        status, when = self.early_exits.pop(pid, (None, 0.0))
        return status if when >= since else None

    def _exited(self, proc: Process, status: int) -> None:
        if isinstance(proc, Task):
            self._written_back(proc)
        if not proc.exec_id:
            self.runtime.end_the_rest(proc.container_id)  # before the exit is reported, as runc's shim
        if proc.relay is not None:
            proc.relay.drained.wait(2)  # the client reads all of a terminal's output before the exit
        proc.exit_status = exit_code(status)
        proc.exited_at = now()
        if not proc.exec_id and proc.exit_status == 137:
            try:
                if self.runtime.oom_killed(self.runtime.store.load(proc.container_id)):
                    self._publish(events_pb2.TaskOOM(container_id=proc.container_id))
            except MrunError:
                pass
        self._publish(
            events_pb2.TaskExit(
                container_id=proc.container_id,
                id=proc.exec_id or proc.container_id,
                pid=proc.pid,
                exit_status=proc.exit_status,
                exited_at=proc.exited_at,
            )
        )
        proc.exited.set()

    # -- methods ----------------------------------------------------------------------------

    def create(self, payload: bytes, _req: object) -> bytes:
        """The task's id is taken while it is made (``creating``), its snapshot's rootfs too: a
        second Create of the id (a retry on another connection) went ahead on the same bundle
        while the first ran its hooks, and one of another id could mount on that rootfs between
        the first's check and its mount."""
        req = task_pb2.CreateTaskRequest.FromString(payload)
        with self.lock:
            if req.id in self.tasks or req.id in self.creating:
                raise TTRPCError(ALREADY_EXISTS, f"task {req.id}: already exists")
            self.creating[req.id] = ""
        try:
            return self._create(req)
        finally:
            with self.lock:
                del self.creating[req.id]

    def _claim_rootfs(self, task_id: str, rootfs: str) -> None:
        with self.lock:
            others = [other for other, taken in self.creating.items() if taken == rootfs]
            if others:
                raise TTRPCError(INVALID_ARGUMENT, f"task {task_id}: bundle: {rootfs}: task {others[0]}'s create "
                                                   "is mounting its snapshot there")
            self.creating[task_id] = rootfs

    def _create(self, req: task_pb2.CreateTaskRequest) -> bytes:
        if req.checkpoint or req.parent_checkpoint:  # `ctr run --checkpoint`: a fresh start would pass for it
            raise TTRPCError(UNIMPLEMENTED, f"task {req.id}: checkpoint {req.checkpoint or req.parent_checkpoint!r}: "
                                            "containerd-shim-mrun-v2 cannot restore from a checkpoint (no CRIU)")
        mounts = rootfs_mounts.describe(req.rootfs)
        try:
            rootfs = os.path.join(bundle_dir.checked(req.bundle, "bundle", required=True), "rootfs")
            if mounts:
                self._claim_rootfs(req.id, rootfs)
                bundle_dir.check_snapshot_target(rootfs)
        except InvalidSpec as e:
            raise TTRPCError(INVALID_ARGUMENT, f"task {req.id}: {e}")
        by_worker = rootfs_mounts.idmapped(mounts)  # it forks: not from this threaded daemon
        mounted = bool(mounts)  # from here on, undone if the create fails (a mount of several too)
        task = Task(req)
        task.mounted = mounted
        task.io_owner = io_owner(req.options.type_url, req.options.value)
        asked = time.monotonic()
        try:
            if not by_worker:
                _mount_rootfs(mounts, rootfs)
            msg = {"id": req.id, "bundle": req.bundle, "root": self.runtime.store.root}
            if by_worker:
                msg["rootfs"] = mounts
            msg["annotations"] = runtime_options(req.options.type_url, req.options.value)
            pods = {sid: s.files for sid, s in self.sandboxes.items() if getattr(s, "files", None)}
            if pods:  # the shim is a pod: its containers share its files (pod_files.amend)
                msg["pod_files"] = pods
            warm_the_move_for(req.bundle)
            # A pod's shim: the helper readies a worker for the next create once this one is done.
            msg["more"] = self.grouped or bool(self.sandboxes) or bool(self.tasks)
            answer = self._spawn(msg, task)
        except BaseException:
            if mounted:
                unmount_all(rootfs)
            raise
        with self.lock:
            task.pid, task.kept = answer["pid"], answer.get("record")
            self.tasks[req.id] = task
            self.by_pid[task.pid] = task
            early = self._early_exit(task.pid, asked)
            task.reaped = early is not None
        self._publish(
            events_pb2.TaskCreate(
                container_id=req.id,
                bundle=req.bundle,
                rootfs=req.rootfs,
                pid=task.pid,
                io=events_pb2.TaskIO(stdin=req.stdin, stdout=req.stdout, stderr=req.stderr, terminal=req.terminal),
            )
        )
        if early is not None:
            self._exited(task, early)
        return task_pb2.CreateTaskResponse(pid=task.pid).SerializeToString()

    def start(self, payload: bytes, _req: object) -> bytes:
        req = task_pb2.StartRequest.FromString(payload)
        if req.exec_id:
            return self._start_exec(req.id, req.exec_id)
        task = self._task(req.id)
        try:
            task.kept = self.runtime.start(req.id).to_dict()
        except MrunError as e:
            raise TTRPCError(UNKNOWN, f"OCI runtime start failed: {e}")
        self._publish(events_pb2.TaskStart(container_id=req.id, pid=task.pid))
        return task_pb2.StartResponse(pid=task.pid).SerializeToString()

    def _start_exec(self, task_id: str, exec_id: str) -> bytes:
        proc = self._process(task_id, exec_id)
        if proc.pid:
            raise TTRPCError(ALREADY_EXISTS, f"exec {exec_id}: already started")
        if proc.exited.is_set():  # its Start failed: its Waits were answered, it will not run now
            raise TTRPCError(FAILED_PRECONDITION, f"exec {exec_id}: its start failed; delete it and exec anew")
        if proc.window and proc.spec is not None:  # sized before it runs, not just after
            proc.spec["consoleSize"] = {"width": proc.window[0], "height": proc.window[1]}
        asked = time.monotonic()
        try:
            pid = self._spawn({"id": task_id, "root": self.runtime.store.root, "process": proc.spec}, proc)["pid"]
        except BaseException:
            _never_ran(proc)  # as runc's shim: a Wait for it is answered at once
            raise
        with self.lock:
            proc.pid = pid
            self.by_pid[proc.pid] = proc
            early = self._early_exit(proc.pid, asked)
            proc.reaped = early is not None
        self._publish(events_pb2.TaskExecStarted(container_id=task_id, exec_id=exec_id, pid=proc.pid))
        if early is not None:
            self._exited(proc, early)
        return task_pb2.StartResponse(pid=proc.pid).SerializeToString()

    def exec(self, payload: bytes, _req: object) -> bytes:
        from mrun import jsonio

        req = task_pb2.ExecProcessRequest.FromString(payload)
        task = self._task(req.id)
        if req.exec_id in task.execs:
            raise TTRPCError(ALREADY_EXISTS, f"exec {req.exec_id}: already exists")
        proc = Process(req.id, req.exec_id, req.stdin, req.stdout, req.stderr, req.terminal)
        proc.io_owner = task.io_owner  # as runc's shim gives an exec its container's
        try:
            proc.spec = jsonio.loads(req.spec.value)  # containerd sends the OCI process object as JSON
            check_process(proc.spec)
        except ValueError as e:
            raise TTRPCError(INVALID_ARGUMENT, f"exec {req.exec_id}: the process spec is not JSON: {e}")
        except InvalidSpec as e:
            raise TTRPCError(INVALID_ARGUMENT, f"exec {req.exec_id}: {e}")
        task.execs[req.exec_id] = proc
        self._publish(events_pb2.TaskExecAdded(container_id=req.id, exec_id=req.exec_id))
        return b""

    def wait(self, payload: bytes, _req: object) -> bytes:
        req = task_pb2.WaitRequest.FromString(payload)
        proc = self._process(req.id, req.exec_id)
        proc.exited.wait()
        return task_pb2.WaitResponse(exit_status=proc.exit_status, exited_at=proc.exited_at).SerializeToString()

    def _status(self, proc: Process) -> int:
        """The task's status as the core reads it (mrun.status), not a second model kept here;
        an exec'd process has no record of its own: created until started, stopped once reaped."""
        if proc.exited.is_set():
            return types_pb2.STOPPED
        if proc.exec_id:
            return types_pb2.RUNNING if proc.pid else types_pb2.CREATED
        try:
            return TASK_STATUS[self.runtime.status(self.runtime.store.load(proc.container_id))]
        except MrunError:
            return types_pb2.STOPPED  # its state is gone: deleted, or never fully created

    def state(self, payload: bytes, _req: object) -> bytes:
        req = task_pb2.StateRequest.FromString(payload)
        task = self._task(req.id)
        proc = self._process(req.id, req.exec_id)
        return task_pb2.StateResponse(
            id=task.id,
            bundle=task.bundle,
            pid=proc.pid,
            status=self._status(proc),
            stdin=proc.stdin,
            stdout=proc.stdout,
            stderr=proc.stderr,
            terminal=proc.terminal,
            exit_status=proc.exit_status,
            exited_at=proc.exited_at,
            exec_id=req.exec_id,
        ).SerializeToString()

    def kill(self, payload: bytes, _req: object) -> bytes:
        req = task_pb2.KillRequest.FromString(payload)
        if req.signal > MAX_SIGNAL:  # runc's kill(2) says EINVAL; Python would not even make the call
            raise TTRPCError(INVALID_ARGUMENT, f"kill {req.exec_id or req.id}: {req.signal} is not a signal number")
        proc = self._process(req.id, req.exec_id)
        if not proc.pid:  # runc's shim's words; containerd's WithProcessKill takes it as done
            raise TTRPCError(FAILED_PRECONDITION, f"{req.exec_id or req.id}: process not created")
        if proc.exited.is_set():
            raise TTRPCError(NOT_FOUND, f"{req.exec_id or req.id}: process already finished")
        try:
            if req.exec_id:
                self.signal_child(proc, req.signal)
            else:
                self.runtime.kill(req.id, req.signal, req.all)
        except (InvalidState, NotFound, ProcessLookupError) as e:
            raise TTRPCError(NOT_FOUND, str(e))
        return b""

    def pause(self, payload: bytes, _req: object) -> bytes:
        return self._freeze(task_pb2.PauseRequest.FromString(payload).id, True)

    def resume(self, payload: bytes, _req: object) -> bytes:
        return self._freeze(task_pb2.ResumeRequest.FromString(payload).id, False)

    def _freeze(self, task_id: str, frozen: bool) -> bytes:
        self._task(task_id)
        try:
            (self.runtime.pause if frozen else self.runtime.resume)(task_id)
        except MrunError as e:
            raise TTRPCError(FAILED_PRECONDITION, str(e))
        self._publish(
            events_pb2.TaskPaused(container_id=task_id) if frozen else events_pb2.TaskResumed(container_id=task_id)
        )
        return b""

    def delete(self, payload: bytes, _req: object) -> bytes:
        req = task_pb2.DeleteRequest.FromString(payload)
        if req.exec_id:
            proc = self._process(req.id, req.exec_id)
            if proc.pid and not proc.exited.is_set():  # containerd's runc shim: it runs on, still ours
                raise TTRPCError(FAILED_PRECONDITION, f"exec {req.exec_id}: cannot delete a running process")
            self._task(req.id).execs.pop(req.exec_id, None)
            _release(proc)
            if not proc.pid:
                _never_ran(proc)  # a Wait for it must not hold its thread for ever
            with self.lock:
                self.by_pid.pop(proc.pid, None)
            return task_pb2.DeleteResponse(
                pid=proc.pid, exit_status=proc.exit_status, exited_at=proc.exited_at
            ).SerializeToString()
        task = self._task(req.id)
        status = self._status(task)
        if status in (types_pb2.RUNNING, types_pb2.PAUSED):  # runc's shim: a Delete never kills; Kill does
            word = "running" if status == types_pb2.RUNNING else "paused"
            raise TTRPCError(FAILED_PRECONDITION, f"task {req.id}: cannot delete a {word} process")
        with self.lock:
            task.deleting = True
        try:
            self.runtime.delete(req.id, force=True)
        except MrunError as e:
            task.deleting = False
            raise TTRPCError(UNKNOWN, f"OCI runtime delete failed: {e}")
        if task.mounted:  # its own snapshot only: a task of the bundle's own rootfs has none
            unmount_all(os.path.join(task.bundle, "rootfs"))
        task.release_stdio()
        with self.lock:
            self.tasks.pop(req.id, None)
            self.by_pid.pop(task.pid, None)
        self._publish(
            events_pb2.TaskDelete(
                container_id=req.id, id=req.id, pid=task.pid, exit_status=task.exit_status, exited_at=task.exited_at
            )
        )
        return task_pb2.DeleteResponse(
            pid=task.pid, exit_status=task.exit_status, exited_at=task.exited_at
        ).SerializeToString()

    def update(self, payload: bytes, _req: object) -> bytes:
        """New cgroup limits for a running task, as `runc update` takes them."""
        from mrun import jsonio

        req = task_pb2.UpdateTaskRequest.FromString(payload)
        self._task(req.id)
        if not req.resources.type_url.endswith("/LinuxResources"):
            raise TTRPCError(INVALID_ARGUMENT, f"update {req.id}: resources of type {req.resources.type_url!r}")
        try:
            resources = jsonio.loads(req.resources.value or b"{}")
        except ValueError as e:
            raise TTRPCError(INVALID_ARGUMENT, f"update {req.id}: the resources are not JSON: {e}")
        try:
            self.runtime.update(req.id, resources)
        except MrunError as e:
            raise TTRPCError(INVALID_ARGUMENT if isinstance(e, InvalidSpec) else UNKNOWN, f"update {req.id}: {e}")
        return b""

    def closeio(self, payload: bytes, _req: object) -> bytes:
        req = task_pb2.CloseIORequest.FromString(payload)
        proc = self._process(req.id, req.exec_id)
        if req.stdin:
            if proc.relay is not None:
                proc.relay.close_stdin()
            elif proc.pump is not None:
                proc.pump.close()
        return b""

    def resizepty(self, payload: bytes, _req: object) -> bytes:
        req = task_pb2.ResizePtyRequest.FromString(payload)
        if max(req.width, req.height) > MAX_TERMINAL_SIDE:
            raise TTRPCError(INVALID_ARGUMENT, f"resize {req.exec_id or req.id}: {req.width}x{req.height} is past "
                                               f"a terminal's {MAX_TERMINAL_SIDE} columns or rows")
        proc = self._process(req.id, req.exec_id)
        if not proc.terminal:
            raise TTRPCError(FAILED_PRECONDITION, f"{req.exec_id or req.id}: the process has no terminal")
        proc.window = (req.width, req.height)
        if proc.relay is not None:
            proc.relay.resize(req.width, req.height)
        return b""

    def pids(self, payload: bytes, _req: object) -> bytes:
        req = task_pb2.PidsRequest.FromString(payload)
        self._task(req.id)
        pids = self.runtime.pids(req.id)
        return task_pb2.PidsResponse(processes=[types_pb2.ProcessInfo(pid=p) for p in pids]).SerializeToString()

    def stats(self, payload: bytes, _req: object) -> bytes:
        """cgroup figures as io.containerd.cgroups.v1/v2.Metrics (what `ctr task metrics` decodes)."""
        from mrun.shims.metrics import metrics_any

        task_id = task_pb2.StatsRequest.FromString(payload).id
        self._task(task_id)
        try:
            stats = self.runtime.stats(task_id)
        except (MrunError, OSError) as e:
            raise TTRPCError(NOT_FOUND, f"stats {task_id}: {e}")
        if "cgroup_version" not in stats:  # another OCI runtime owns its sandbox (the oci backend)
            raise TTRPCError(UNIMPLEMENTED, f"stats {task_id}: its sandbox belongs to {stats['backend']['name']!r}")
        return task_pb2.StatsResponse(stats=metrics_any(stats, stats["cgroup_version"])).SerializeToString()

    def checkpoint(self, payload: bytes, _req: object) -> bytes:
        task_id = task_pb2.CheckpointTaskRequest.FromString(payload).id
        raise TTRPCError(UNIMPLEMENTED, f"checkpoint {task_id}: containerd-shim-mrun-v2 cannot checkpoint (no CRIU)")

    def connect(self, payload: bytes, _req: object) -> bytes:
        task = self.tasks.get(task_pb2.ConnectRequest.FromString(payload).id)
        return task_pb2.ConnectResponse(shim_pid=os.getpid(), task_pid=task.pid if task else 0).SerializeToString()

    def containerd_gone(self) -> None:
        """Every connection that called us has closed. With protocol 3 containerd sends no
        Shutdown after a task's Delete, and a containerd that died sends nothing: a shim with
        nothing left to serve exits; one with tasks or a pod waits for containerd to reconnect."""
        with self.lock:
            idle = not self.tasks and not self.sandboxes
        if idle:
            self.shut_down()

    def shutdown(self, payload: bytes, _req: object) -> bytes:
        if not self.tasks and not self.sandboxes:
            self.shut_down()  # the daemon exits once this reply is on its way
        return b""

    def shut_down(self) -> None:
        """Be found by nobody any more (``on_shutdown``), then let the daemon exit: before the
        Shutdown reply leaves, so a ``start`` or ``delete`` that follows never meets us."""
        if self.on_shutdown is not None and not self.shutdown_requested.is_set():
            self.on_shutdown()
        self.shutdown_requested.set()


def runtime_options(type_url: str, value: bytes) -> dict[str, str]:
    """The operator's choices containerd passes with each Create (its runtime's ``options``),
    as annotations for the core: which OCI runtime the ``oci`` backend hands the container to.

    - CRI, for a runtime type other than runc's: ``runtimeoptions.v1.Options`` (type_url 1,
      config_path 2, config_body 3): TOML with ``oci_runtime = "runsc"``, inline or in the file;
    - runc's own options (``containerd.runc.v1.Options``): ``BinaryName`` (field 6)."""
    from mrun.shims import wire

    name = ""
    try:
        fields = dict(wire.fields(value))
    except ValueError:
        raise TTRPCError(INVALID_ARGUMENT, f"options ({type_url}): not a protobuf message")
    if type_url.endswith("runtimeoptions.v1.Options"):
        body = fields.get(3, b"")
        path = fields.get(2, b"")
        if not body and isinstance(path, bytes) and path:
            try:
                with open(path.decode(), "rb") as f:
                    body = f.read()
            except OSError as e:
                raise TTRPCError(INVALID_ARGUMENT, f"options: config_path {path.decode()}: {e.strerror}")
        if isinstance(body, bytes) and body:
            import tomllib

            try:
                name = str(tomllib.loads(body.decode()).get("oci_runtime", ""))
            except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
                raise TTRPCError(INVALID_ARGUMENT, f"options: config_body: not TOML: {e}")
    elif type_url.endswith("runc.v1.Options"):
        binary = fields.get(6, b"")
        name = os.path.basename(binary.decode()) if isinstance(binary, bytes) else ""
    return {OCI_RUNTIME: name} if name else {}


def io_owner(type_url: str, value: bytes) -> tuple[int, int] | None:
    """runc's options' io_uid (4) and io_gid (5): who the process's I/O is to belong to. CRI names
    them for a user-namespaced container (its root as the host sees it; updateContainerIOOwner),
    so that it may open its streams again (/dev/stdout). None where neither is named."""
    if not type_url.endswith("runc.v1.Options"):
        return None
    from mrun.shims import wire

    try:
        fields = dict(wire.fields(value))
    except ValueError:
        return None  # runtime_options refuses it, in words
    uid, gid = fields.get(4, 0), fields.get(5, 0)
    if not isinstance(uid, int) or not isinstance(gid, int) or not (uid or gid):
        return None
    return uid, gid


def _give_streams(proc: Process, fds: list[int]) -> None:
    """The process's standard streams that are pipes or fifos (containerd's fifos, the stdin
    pump's and a logger's pipes; not /dev/null or a file) made ``proc.io_owner``'s, as runc's shim
    makes the pipes it hands a process. A fifo of containerd's changes owner: containerd, root,
    reads it as before, and no one else reaches its directory."""
    import stat

    uid, gid = proc.io_owner or (0, 0)
    for name, fd in zip(("stdin", "stdout", "stderr"), fds, strict=False):
        try:
            if stat.S_ISFIFO(os.fstat(fd).st_mode):
                os.fchown(fd, uid, gid)
        except OSError as e:
            raise _unopenable(proc, name, OSError(e.errno, f"giving it to io_uid {uid}: {e.strerror}"))


def _mount_rootfs(mounts: list[dict], target: str) -> None:
    try:
        rootfs_mounts.mount(mounts, target)
    except MrunError as e:
        raise TTRPCError(UNKNOWN, str(e))


def _unopenable(proc: Process, name: str, e: BaseException) -> TTRPCError:
    """A stdio path of ``proc`` that cannot be opened (no such fifo, a directory, a NUL in it,
    too long), refused in one line naming it."""
    path = getattr(proc, name) if name else os.devnull
    return TTRPCError(INVALID_ARGUMENT, f"{proc.exec_id or proc.container_id}: {name or 'stdio'} {path!r}: "
                                        f"{in_words(e)}")


def _opened(proc: Process, name: str, write: bool, opened: list[int]) -> int:
    """The stdio path ``name`` of ``proc`` opened (-1 for none; /dev/null for ``name`` ""), kept in
    ``opened``."""
    path = getattr(proc, name) if name else ""
    if name and proc.terminal and not path:
        return -1
    try:
        fd = open_stdio(path, write)
    except (OSError, ValueError) as e:
        raise _unopenable(proc, name, e)
    opened.append(fd)
    return fd

"""containerd.task.v2.Task over ttrpc, on the same in-process runtime API as the CLI.

Implemented: Create (rootfs mounts, stdio fifos or files), Start, Exec, Wait, State, Kill,
Delete, Pids, Pause, Resume, Stats (cgroup v1), Connect, Shutdown. Not yet: Update, CloseIO,
ResizePty and terminals (ttrpc answers Unimplemented for methods not registered here).
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time

from google.protobuf import timestamp_pb2
from mrun.errors import InvalidState, MrunError, NotFound
from mrun.proc import exit_code
from mrun.runtime import Runtime
from mrun.shims import spawner
from mrun.shims.events import Publisher, now
from mrun.shims.proto import events_pb2, task_pb2, types_pb2
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

SERVICE = "containerd.task.v2.Task"


class Process:
    """A task's init or one of its exec'd processes: what Wait, State and Kill look at."""

    def __init__(self, container_id: str, exec_id: str, stdin: str, stdout: str, stderr: str) -> None:
        self.container_id, self.exec_id = container_id, exec_id
        self.stdin, self.stdout, self.stderr = stdin, stdout, stderr
        self.pid = 0
        self.status = types_pb2.CREATED
        self.exit_status = 0
        self.exited_at = timestamp_pb2.Timestamp()
        self.exited = threading.Event()
        self.spec: dict | None = None  # an exec'd process's OCI process object


class Task(Process):
    def __init__(self, req: task_pb2.CreateTaskRequest, pid: int) -> None:
        super().__init__(req.id, "", req.stdin, req.stdout, req.stderr)
        self.id, self.bundle, self.pid = req.id, req.bundle, pid
        self.execs: dict[str, Process] = {}


def _open_stdio(path: str, write: bool) -> int:
    """A fifo path (containerd's default), ``file://`` (append) or nothing (/dev/null)."""
    if not path:
        return os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    if path.startswith("file://"):
        return os.open(path[7:], os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
    path = path.removeprefix("fifo://")
    # ctr opened its ends already; non-blocking opens cannot hang the shim if it did not.
    fd = os.open(path, (os.O_WRONLY if write else os.O_RDONLY) | os.O_NONBLOCK | os.O_CLOEXEC)
    os.set_blocking(fd, True)
    return fd


class TaskService:
    def __init__(self, namespace: str, root: str, spawner_sock: socket.socket, publisher: Publisher | None) -> None:
        self.namespace = namespace
        self.runtime = Runtime(root)
        self.spawner = spawner_sock
        self.spawner_lock = threading.Lock()
        self.publisher = publisher
        self.tasks: dict[str, Task] = {}
        self.by_pid: dict[int, Process] = {}
        self.early_exits: dict[int, int] = {}  # exits reaped before Create recorded the pid
        self.lock = threading.Lock()
        self.shutdown_requested = threading.Event()

    def register(self, server: Server) -> None:
        for name in (
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
        ):
            server.register(SERVICE, name, getattr(self, name.lower()))

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
        return task

    def _process(self, task_id: str, exec_id: str) -> Process:
        task = self._task(task_id)
        if not exec_id:
            return task
        proc = task.execs.get(exec_id)
        if proc is None:
            raise TTRPCError(NOT_FOUND, f"exec {exec_id} in task {task_id}: not found")
        return proc

    def _spawn(self, msg: dict, stdin: str, stdout: str, stderr: str) -> int:
        """Ask the fork helper for a create or an exec; returns the new process's pid."""
        fds = [_open_stdio(stdin, False), _open_stdio(stdout, True), _open_stdio(stderr, True)]
        try:
            with self.spawner_lock:
                spawner.send(self.spawner, msg, fds)
                got = spawner.recv(self.spawner)
        finally:
            for fd in fds:
                os.close(fd)
        if got is None:
            raise TTRPCError(UNKNOWN, "OCI runtime failed: the shim's fork helper is gone")
        answer, _ = got
        if "error" in answer:
            raise TTRPCError(
                UNKNOWN, f"OCI runtime {'exec' if msg.get('process') else 'create'} failed: {answer['error']}"
            )
        return answer["pid"]

    # -- the reaper ---------------------------------------------------------------------

    def reap_forever(self) -> None:
        """We are a child subreaper: container inits end up as our children."""
        while True:
            try:
                pid, status = os.waitpid(-1, 0)
            except ChildProcessError:
                time.sleep(0.05)
                continue
            with self.lock:
                task = self.by_pid.get(pid)
                if task is None:
                    self.early_exits[pid] = status
                    continue
            self._exited(task, status)

    def _exited(self, proc: Process, status: int) -> None:
        proc.exit_status = exit_code(status)
        proc.exited_at = now()
        proc.status = types_pb2.STOPPED
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
        req = task_pb2.CreateTaskRequest.FromString(payload)
        if req.id in self.tasks:
            raise TTRPCError(ALREADY_EXISTS, f"task {req.id}: already exists")
        if req.terminal:
            raise TTRPCError(UNIMPLEMENTED, "terminal tasks are not supported by containerd-shim-mrun-v2 yet")
        rootfs = os.path.join(req.bundle, "rootfs")
        mounted = _mount_rootfs(req.rootfs, rootfs)
        try:
            pid = self._spawn(
                {"id": req.id, "bundle": req.bundle, "root": self.runtime.store.root}, req.stdin, req.stdout, req.stderr
            )
        except BaseException:
            if mounted:
                _unmount(rootfs)
            raise
        task = Task(req, pid)
        with self.lock:
            self.tasks[req.id] = task
            self.by_pid[task.pid] = task
            early = self.early_exits.pop(task.pid, None)
        self._publish(
            events_pb2.TaskCreate(
                container_id=req.id,
                bundle=req.bundle,
                rootfs=req.rootfs,
                pid=task.pid,
                io=events_pb2.TaskIO(stdin=req.stdin, stdout=req.stdout, stderr=req.stderr),
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
            self.runtime.start(req.id)
        except MrunError as e:
            raise TTRPCError(UNKNOWN, f"OCI runtime start failed: {e}")
        if task.status == types_pb2.CREATED:
            task.status = types_pb2.RUNNING
        self._publish(events_pb2.TaskStart(container_id=req.id, pid=task.pid))
        return task_pb2.StartResponse(pid=task.pid).SerializeToString()

    def _start_exec(self, task_id: str, exec_id: str) -> bytes:
        proc = self._process(task_id, exec_id)
        if proc.pid:
            raise TTRPCError(ALREADY_EXISTS, f"exec {exec_id}: already started")
        proc.pid = self._spawn(
            {"id": task_id, "root": self.runtime.store.root, "process": proc.spec}, proc.stdin, proc.stdout, proc.stderr
        )
        proc.status = types_pb2.RUNNING
        with self.lock:
            self.by_pid[proc.pid] = proc
            early = self.early_exits.pop(proc.pid, None)
        self._publish(events_pb2.TaskExecStarted(container_id=task_id, exec_id=exec_id, pid=proc.pid))
        if early is not None:
            self._exited(proc, early)
        return task_pb2.StartResponse(pid=proc.pid).SerializeToString()

    def exec(self, payload: bytes, _req: object) -> bytes:
        import json

        req = task_pb2.ExecProcessRequest.FromString(payload)
        task = self._task(req.id)
        if req.exec_id in task.execs:
            raise TTRPCError(ALREADY_EXISTS, f"exec {req.exec_id}: already exists")
        if req.terminal:
            raise TTRPCError(UNIMPLEMENTED, "terminal exec is not supported by containerd-shim-mrun-v2 yet")
        proc = Process(req.id, req.exec_id, req.stdin, req.stdout, req.stderr)
        try:
            proc.spec = json.loads(req.spec.value)  # containerd sends the OCI process object as JSON
        except ValueError as e:
            raise TTRPCError(INVALID_ARGUMENT, f"exec {req.exec_id}: the process spec is not JSON: {e}")
        task.execs[req.exec_id] = proc
        self._publish(events_pb2.TaskExecAdded(container_id=req.id, exec_id=req.exec_id))
        return b""

    def wait(self, payload: bytes, _req: object) -> bytes:
        req = task_pb2.WaitRequest.FromString(payload)
        proc = self._process(req.id, req.exec_id)
        proc.exited.wait()
        return task_pb2.WaitResponse(exit_status=proc.exit_status, exited_at=proc.exited_at).SerializeToString()

    def state(self, payload: bytes, _req: object) -> bytes:
        req = task_pb2.StateRequest.FromString(payload)
        task = self._task(req.id)
        proc = self._process(req.id, req.exec_id)
        return task_pb2.StateResponse(
            id=task.id,
            bundle=task.bundle,
            pid=proc.pid,
            status=proc.status,
            stdin=proc.stdin,
            stdout=proc.stdout,
            stderr=proc.stderr,
            exit_status=proc.exit_status,
            exited_at=proc.exited_at,
            exec_id=req.exec_id,
        ).SerializeToString()

    def kill(self, payload: bytes, _req: object) -> bytes:
        req = task_pb2.KillRequest.FromString(payload)
        proc = self._process(req.id, req.exec_id)
        if proc.exited.is_set() or not proc.pid:
            raise TTRPCError(NOT_FOUND, f"{req.exec_id or req.id}: process already finished")
        try:
            if req.exec_id:
                os.kill(proc.pid, req.signal)
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
        task = self._task(task_id)
        try:
            (self.runtime.pause if frozen else self.runtime.resume)(task_id)
        except MrunError as e:
            raise TTRPCError(FAILED_PRECONDITION, str(e))
        task.status = types_pb2.PAUSED if frozen else types_pb2.RUNNING
        self._publish(
            events_pb2.TaskPaused(container_id=task_id) if frozen else events_pb2.TaskResumed(container_id=task_id)
        )
        return b""

    def delete(self, payload: bytes, _req: object) -> bytes:
        req = task_pb2.DeleteRequest.FromString(payload)
        if req.exec_id:
            proc = self._process(req.id, req.exec_id)
            self._task(req.id).execs.pop(req.exec_id, None)
            with self.lock:
                self.by_pid.pop(proc.pid, None)
            return task_pb2.DeleteResponse(
                pid=proc.pid, exit_status=proc.exit_status, exited_at=proc.exited_at
            ).SerializeToString()
        task = self._task(req.id)
        try:
            self.runtime.delete(req.id, force=True)
        except MrunError as e:
            raise TTRPCError(UNKNOWN, f"OCI runtime delete failed: {e}")
        _unmount(os.path.join(task.bundle, "rootfs"))
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

    def pids(self, payload: bytes, _req: object) -> bytes:
        req = task_pb2.PidsRequest.FromString(payload)
        self._task(req.id)
        pids = self.runtime.pids(req.id)
        return task_pb2.PidsResponse(processes=[types_pb2.ProcessInfo(pid=p) for p in pids]).SerializeToString()

    def stats(self, payload: bytes, _req: object) -> bytes:
        """cgroup figures as io.containerd.cgroups.v1.Metrics (what `ctr task metrics` decodes)."""
        from google.protobuf import any_pb2
        from mrun.shims.proto import metrics_pb2

        task_id = task_pb2.StatsRequest.FromString(payload).id
        self._task(task_id)
        record = self.runtime.store.load(task_id)
        if record.cgroup.get("version") != 1:
            raise TTRPCError(UNIMPLEMENTED, "metrics for cgroup v2 are not reported by containerd-shim-mrun-v2 yet")
        st = self.runtime.stats(task_id)
        mem, cpu, pids = st.get("memory", {}), st.get("cpu", {}), st.get("pids", {})
        metrics = metrics_pb2.Metrics(
            pids=metrics_pb2.PidsStat(current=pids.get("current", 0), limit=pids.get("limit", 0)),
            cpu=metrics_pb2.CPUStat(
                usage=metrics_pb2.CPUUsage(total=cpu.get("usage_ns", 0)),
                throttling=metrics_pb2.Throttle(
                    periods=cpu.get("periods", 0),
                    throttled_periods=cpu.get("throttled_periods", 0),
                    throttled_time=cpu.get("throttled_ns", 0),
                ),
            ),
            memory=metrics_pb2.MemoryStat(
                cache=mem.get("stat", {}).get("cache", 0),
                rss=mem.get("stat", {}).get("rss", 0),
                usage=metrics_pb2.MemoryEntry(
                    limit=max(mem.get("limit", 0), 0),
                    usage=mem.get("usage", 0),
                    max=mem.get("max_usage", 0),
                    failcnt=mem.get("failcnt", 0),
                ),
            ),
        )
        packed = any_pb2.Any(type_url="io.containerd.cgroups.v1.Metrics", value=metrics.SerializeToString())
        return task_pb2.StatsResponse(stats=packed).SerializeToString()

    def connect(self, payload: bytes, _req: object) -> bytes:
        task = self.tasks.get(task_pb2.ConnectRequest.FromString(payload).id)
        return task_pb2.ConnectResponse(shim_pid=os.getpid(), task_pid=task.pid if task else 0).SerializeToString()

    def shutdown(self, payload: bytes, _req: object) -> bytes:
        if not self.tasks:
            self.shutdown_requested.set()  # the daemon exits once this reply is on its way
        return b""


def _mount_rootfs(mounts: list, target: str) -> bool:
    from mrun.sandbox import syscalls as sc
    from mrun.sandbox.rootfs import parse_options

    for m in mounts:
        flags, _prop, data = parse_options(list(m.options))
        try:
            sc.mount(m.source, target, None if flags & sc.MS_BIND else m.type, flags, data or None)
        except OSError as e:
            raise TTRPCError(UNKNOWN, f"mounting the rootfs ({m.type} {m.source}) on {target}: {e.strerror}")
    return bool(mounts)


def _unmount(target: str) -> None:
    from mrun.sandbox import syscalls as sc

    while True:
        try:
            sc.umount2(target, sc.MNT_DETACH)
        except OSError:
            return  # nothing (more) mounted there

"""The shim binary driven over ttrpc exactly as containerd drives it, without containerd in the way:
for what `ctr` 1.6 cannot ask for (Update), or cannot ask for in a checkable way (CloseIO while
another writer keeps the stdin fifo open, ResizePty on an exec)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid

import pytest
from conftest import (
    cgroup_dirs,
    children_of,
    mrun_binary,
    open_to_others,
    processes_mentioning,
    running,
    warm_path,
    warm_served,
    warm_served_fresh,
    warm_since,
)
from google.protobuf import any_pb2
from mrun.cgroups import detect
from mrun.shims import ttrpc
from mrun.shims.proto import task_pb2, types_pb2
from mrun.warm import client

TASK = "containerd.task.v2.Task"


class Shim:
    """`containerd-shim-mrun-v2 start` in a bundle, and a ttrpc client on the daemon it started."""

    started: list[Shim] = []

    def __init__(self, h, bundle: str, cid: str, env: dict[str, str] | None = None, preexec_fn=None) -> None:
        self.h, self.bundle, self.cid = h, bundle, cid
        self.address = f"/nonexistent/{uuid.uuid4().hex}"  # containerd's: part of a pod shim's socket name
        self.state_root = os.path.join(h.tmp, "shim-state")
        binary = os.path.join(os.path.dirname(mrun_binary()), "containerd-shim-mrun-v2")
        env = {**os.environ, **(env or {}), "MRUN_SHIM_ROOT": self.state_root}
        env.pop("TTRPC_ADDRESS", None)
        args = [binary, "-namespace", "direct", "-address", self.address, "-id", cid, "start"]
        out = subprocess.run(args, cwd=bundle, env=env, capture_output=True, text=True, timeout=30, check=True,
                             preexec_fn=preexec_fn)
        self.socket = out.stdout.removeprefix("unix://")
        self.client = ttrpc.Client(self.socket)
        self.pid = task_pb2.ConnectResponse.FromString(self.call("Connect", task_pb2.ConnectRequest(id=cid))).shim_pid
        Shim.started.append(self)

    def call(self, method: str, msg, timeout: float = 10) -> bytes:
        return self.client.call(TASK, method, msg.SerializeToString(), timeout=timeout)

    def fifos(self, *names: str) -> list[str]:
        paths = []
        for name in names:
            path = os.path.join(self.h.tmp, f"{self.cid}-{name}")
            os.mkfifo(path)
            paths.append(path)
        return paths

    def binary_delete(self, named_bundle: bool = False) -> bytes:
        """`containerd-shim-mrun-v2 delete`, as containerd runs it after a shim disconnects: in the
        bundle, and with ``named_bundle`` also naming it (-bundle), as containerd 1.6 and 2.x do."""
        binary = os.path.join(os.path.dirname(mrun_binary()), "containerd-shim-mrun-v2")
        env = {**os.environ, "MRUN_SHIM_ROOT": self.state_root}
        args = [binary, "-namespace", "direct", "-address", "/nonexistent", "-id", self.cid,
                *(["-bundle", self.bundle] if named_bundle else []), "delete"]
        return subprocess.run(args, cwd=self.bundle, env=env, capture_output=True, timeout=30, check=True).stdout

    def finish(self, *task_ids: str) -> None:
        """Delete the tasks as `ctr task rm -f` does (a running or paused one killed and awaited
        first: a Delete never kills), shut the daemon down, and check it left nothing."""
        for task_id in task_ids:
            status = task_pb2.StateResponse.FromString(self.call("State", task_pb2.StateRequest(id=task_id))).status
            if status in (types_pb2.RUNNING, types_pb2.PAUSED):
                self.call("Kill", task_pb2.KillRequest(id=task_id, signal=9, all=True))
                self.call("Wait", task_pb2.WaitRequest(id=task_id), timeout=15)
            self.call("Delete", task_pb2.DeleteRequest(id=task_id))
        self.call("Shutdown", task_pb2.ShutdownRequest(id=self.cid))
        assert not os.path.exists(self.socket), "a shim told to shut down still answers at its socket"
        self.client.close()
        deadline = time.monotonic() + 10
        while running(self.pid):
            assert time.monotonic() < deadline, "the shim daemon did not exit after Shutdown"
            time.sleep(0.05)
        assert not os.path.exists(self.socket)
        state = os.path.join(self.state_root, "direct")
        assert not os.path.isdir(state) or not os.listdir(state)


@pytest.fixture(autouse=True)
def no_shim_outlives_its_test():
    """A failing test must not leave its shim daemon (and the container it holds) running."""
    started: list[Shim] = []
    Shim.started = started
    yield
    for shim in started:
        try:  # (a daemon that exits as it is looked at is gone: its stat file with it)
            with open(f"/proc/{shim.pid}/stat") as f:
                alive = f.read().rsplit(")", 1)[1].split()[0] != "Z"
        except FileNotFoundError:
            alive = False
        if alive:
            shim.client.close()
            os.kill(shim.pid, 9)  # our own daemon, by pid; then containerd's clean-up, as after a crash
            shim.binary_delete()


def sleeping_task(h, name: str, pod: str = "") -> tuple[Shim, str, int]:
    """A shim running one started `sleep 600` task (of ``pod``: its sandbox id annotation). -> (shim,
    task id, its init's pid)."""
    cid = h.cid(name)
    cfg = h.config(["sleep", "600"])
    if pod:
        cfg["annotations"] = {"io.kubernetes.cri.sandbox-id": pod}
    bundle = h.bundle(config=cfg)
    shim = Shim(h, bundle, cid)
    shim.call("Create", task_pb2.CreateTaskRequest(id=cid, bundle=bundle))
    pid = task_pb2.StartResponse.FromString(shim.call("Start", task_pb2.StartRequest(id=cid))).pid
    return shim, cid, pid


def started_with_stdout(h, cid: str, bundle: str) -> tuple[Shim, int]:
    """A shim with the task ``cid`` of ``bundle`` created and started, its stdout on a fifo. ->
    (shim, the fifo's read end, opened before Create as ctr opens it)."""
    shim = Shim(h, bundle, cid)
    (stdout,) = shim.fifos("stdout")
    out = reader(stdout)
    shim.call("Create", task_pb2.CreateTaskRequest(id=cid, bundle=bundle, stdout=stdout))
    shim.call("Start", task_pb2.StartRequest(id=cid))
    return shim, out


def reader(path: str) -> int:
    """Open a stdout fifo the way ctr does, before Create."""
    return os.open(path, os.O_RDONLY | os.O_NONBLOCK)


def read_until_eof(fd: int, timeout: float = 15) -> bytes:
    os.set_blocking(fd, True)
    out = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO-like ends
            break
        if not chunk:
            break
        out += chunk
    os.close(fd)
    return out


def wait_exit(shim: Shim, task_id: str, exec_id: str = "", timeout: float = 15) -> int:
    return task_pb2.WaitResponse.FromString(
        shim.call("Wait", task_pb2.WaitRequest(id=task_id, exec_id=exec_id), timeout=timeout)
    ).exit_status


@pytest.mark.parametrize("warm", ["1", "0"])
def test_the_daemon_and_its_tasks_have_their_callers_priorities_cpus_and_oom_score(h, warm):
    """A shim is started by containerd, and a cold one inherits containerd's nice value, CPUs,
    scheduling and I/O classes, OOM score, personality and login uid (so do the containers it
    starts); one forked by the warm template once had the template's instead. Its OOM score is
    then set one above containerd's, as containerd's shims set theirs."""
    import ctypes

    from test_warm import IDLE_IO, as_a_tuned_caller, tuned, tuned_as_expected

    before = warm_served_fresh()
    cid = h.cid("tuned")
    bundle = h.bundle(["sleep", "600"])
    shim = Shim(h, bundle, cid, env={"MRUN_WARM": warm}, preexec_fn=as_a_tuned_caller)
    if warm == "1":
        assert warm_since(before), "the template did not serve this start"
        # The child that served start is the daemon (no second fork, no wait for its end), and
        # it is not armed to die with its caller, which has gone.
        with open(f"/proc/{shim.pid}/stat") as f:
            parent = int(f.read().rsplit(")", 1)[1].split()[1])
        assert parent == client.status(warm_path())["pid"]
    shim.call("Create", task_pb2.CreateTaskRequest(id=cid, bundle=bundle))
    init = task_pb2.StartResponse.FromString(shim.call("Start", task_pb2.StartRequest(id=cid))).pid
    expected = tuned_as_expected()
    expected[3] = str(int(expected[3]) + 1)  # containerd's AdjustOOMScore
    libc = ctypes.CDLL(None, use_errno=True)
    ioprio_get = {"x86_64": 252, "aarch64": 31}[os.uname().machine]
    for pid in (shim.pid, init):
        assert tuned(pid) == expected, pid
        assert libc.syscall(ioprio_get, 1, pid) == IDLE_IO, pid
    shim.call("Kill", task_pb2.KillRequest(id=cid, signal=9))
    wait_exit(shim, cid)
    shim.finish(cid)


def test_closeio_ends_stdin_while_another_writer_holds_the_fifo(h):
    cid = h.cid("stdin")
    bundle = h.bundle(["cat"])
    shim = Shim(h, bundle, cid)
    stdin, stdout = shim.fifos("stdin", "stdout")
    out = reader(stdout)
    shim.call("Create", task_pb2.CreateTaskRequest(id=cid, bundle=bundle, stdin=stdin, stdout=stdout))
    writer = os.open(stdin, os.O_WRONLY)  # held open all along, as CRI holds it for later attaches
    try:
        shim.call("Start", task_pb2.StartRequest(id=cid))
        os.write(writer, b"through the pump\n")
        time.sleep(0.3)
        state = task_pb2.StateResponse.FromString(shim.call("State", task_pb2.StateRequest(id=cid)))
        assert state.status == 2, "cat ended before CloseIO"  # RUNNING: our writer keeps the fifo open
        shim.call("CloseIO", task_pb2.CloseIORequest(id=cid, stdin=True))
        assert wait_exit(shim, cid) == 0
    finally:
        os.close(writer)
    assert read_until_eof(out) == b"through the pump\n"
    shim.finish(cid)


def test_a_task_waits_for_a_stdout_reader_that_opens_late(h):
    """containerd's clients open their fifos' read ends from a goroutine; under load it may not
    have run by the time the shim opens the write end (an exec's Start failed so, with ENXIO). As
    containerd's runc shim does, the shim waits for the reader."""
    cid = h.cid("late")
    bundle = h.bundle(["echo", "seen"])
    shim = Shim(h, bundle, cid)
    (stdout,) = shim.fifos("stdout")
    opened: list[int] = []
    late = threading.Timer(0.5, lambda: opened.append(reader(stdout)))
    late.start()
    try:
        shim.call("Create", task_pb2.CreateTaskRequest(id=cid, bundle=bundle, stdout=stdout))
    finally:
        late.join()
    shim.call("Start", task_pb2.StartRequest(id=cid))
    assert wait_exit(shim, cid) == 0
    assert read_until_eof(opened[0]) == b"seen\n"
    shim.finish(cid)


def test_the_fork_helper_compiles_a_pods_seccomp_profile_once(h, tmp_path):
    """A pod's containers share a profile (CRI's RuntimeDefault): the worker that compiled it hands
    the program to the helper, whose next workers are forked with it. A real helper process (as the
    daemon starts one), two real creates through it."""
    import socket

    from mrun.shims import spawner

    profile = {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64"],
               "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}
    ours, theirs = socket.socketpair()
    helper = subprocess.Popen([sys.executable, "-c", "import sys; from mrun.shims.spawner import main; "
                               "main(int(sys.argv[1]))", str(theirs.fileno())], pass_fds=(theirs.fileno(),),
                              stdin=subprocess.DEVNULL, env={**os.environ, "MRUN_WARM": "0"})
    theirs.close()
    state = str(tmp_path / "shim-root")
    ids = [h.cid("sc1"), h.cid("sc2")]
    try:
        answers = []
        for cid in ids:
            cfg = h.config(["sh", "-c", "mkdir /tmp/x 2>&1; true"])
            cfg["linux"]["seccomp"] = profile
            bundle = h.bundle(config=cfg)
            with open(os.devnull, "rb") as null, open(tmp_path / f"{cid}.out", "wb") as out:
                spawner.send(ours, {"id": cid, "bundle": bundle, "root": state},
                             [null.fileno(), out.fileno(), out.fileno()])
            answers.append(spawner.recv(ours)[0])
        assert "pid" in answers[0] and "pid" in answers[1], answers
        assert answers[0].get("compiled_seccomp") == 1, answers[0]  # compiled by the first worker
        assert "compiled_seccomp" not in answers[1], answers[1]  # found compiled: the helper kept it
    finally:
        ours.close()
        helper.wait(timeout=10)  # it exits at EOF
        for cid in ids:
            subprocess.run([h.binary, "--root", state, "delete", "--force", cid], capture_output=True)


def test_update_reaches_the_cgroup_and_stats_report_it(h):
    shim, cid, _ = sleeping_task(h, "update")
    cgroups_path = json.load(open(os.path.join(shim.bundle, "config.json")))["linux"]["cgroupsPath"]
    url = "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources"
    resources = {"memory": {"limit": 48 << 20}, "pids": {"limit": 33}}
    shim.call(
        "Update",
        task_pb2.UpdateTaskRequest(id=cid, resources=any_pb2.Any(type_url=url, value=json.dumps(resources).encode())),
    )
    if detect() == 2:
        (group,) = cgroup_dirs(cgroups_path)
        assert open(os.path.join(group, "memory.max")).read().strip() == str(48 << 20)
        assert open(os.path.join(group, "pids.max")).read().strip() == "33"
    else:
        mem = next(d for d in cgroup_dirs(cgroups_path) if "/memory/" in d)
        pids = next(d for d in cgroup_dirs(cgroups_path) if "/pids/" in d)
        assert open(os.path.join(mem, "memory.limit_in_bytes")).read().strip() == str(48 << 20)
        assert open(os.path.join(pids, "pids.max")).read().strip() == "33"
    stats = task_pb2.StatsResponse.FromString(shim.call("Stats", task_pb2.StatsRequest(id=cid))).stats
    if detect() == 2:
        from mrun.shims.proto import metrics_v2_pb2 as metrics

        assert stats.type_url == "io.containerd.cgroups.v2.Metrics"
        m = metrics.Metrics.FromString(stats.value)
        assert m.memory.usage_limit == 48 << 20
    else:
        from mrun.shims.proto import metrics_pb2 as metrics

        assert stats.type_url == "io.containerd.cgroups.v1.Metrics"
        m = metrics.Metrics.FromString(stats.value)
        assert m.memory.usage.limit == 48 << 20
    assert (m.pids.current, m.pids.limit) == (1, 33)
    for bad, why in (
        (any_pb2.Any(type_url=url, value=b"{not json"), "not JSON"),
        (any_pb2.Any(type_url="types.containerd.io/WindowsResources", value=b"{}"), "WindowsResources"),
        (any_pb2.Any(type_url=url, value=b'{"memory": {"limit": "lots"}}'), "memory"),
    ):
        with pytest.raises(ttrpc.TTRPCError) as e:
            shim.call("Update", task_pb2.UpdateTaskRequest(id=cid, resources=bad))
        assert e.value.code == ttrpc.INVALID_ARGUMENT and why in e.value.message, e.value.message
    with pytest.raises(ttrpc.TTRPCError) as e:
        shim.call("Checkpoint", task_pb2.CheckpointTaskRequest(id=cid, path="/tmp/x"))
    assert e.value.code == ttrpc.UNIMPLEMENTED and "cannot checkpoint" in e.value.message
    shim.call("Kill", task_pb2.KillRequest(id=cid, signal=9))
    assert wait_exit(shim, cid) == 137
    shim.finish(cid)


def test_terminal_task_and_terminal_exec_with_resize(h):
    cid = h.cid("tty")
    config = h.config(["sh", "-c", "stty size; tty; read line; echo got $line; exit 5"])
    config["process"]["terminal"] = True
    bundle = h.bundle(config=config)
    shim = Shim(h, bundle, cid)
    stdin, stdout = shim.fifos("stdin", "stdout")
    out = reader(stdout)
    shim.call("Create", task_pb2.CreateTaskRequest(id=cid, bundle=bundle, terminal=True, stdin=stdin, stdout=stdout))
    writer = os.open(stdin, os.O_WRONLY)
    shim.call("ResizePty", task_pb2.ResizePtyRequest(id=cid, width=101, height=31))
    shim.call("Start", task_pb2.StartRequest(id=cid))
    state = task_pb2.StateResponse.FromString(shim.call("State", task_pb2.StateRequest(id=cid)))
    assert state.terminal
    got: dict[str, bytes] = {}
    t = threading.Thread(target=lambda: got.setdefault("out", read_until_eof(out)))
    t.start()
    time.sleep(0.3)
    os.write(writer, b"hello\n")
    os.close(writer)
    assert wait_exit(shim, cid) == 5
    t.join(10)
    text = got["out"].decode().replace("\r\n", "\n")
    assert "31 101\n" in text and "/dev/pts/" in text and "got hello\n" in text, text
    shim.finish(cid)


def test_a_terminal_task_s_output_waits_for_its_reader_to_come_back(h):
    """containerd restarting (under CRI, the reader of every container's log) leaves a terminal's
    output fifo without a reader for a while. containerd's runc shim holds a read end of it, so the
    copy waits and the output goes on once a reader is back; mrun's shim, which held one only for
    a task without a terminal, got EPIPE and dropped the rest of the container's output."""
    cid = h.cid("ttyback")
    config = h.config(["sh", "-c", "i=0; while [ $i -lt 40 ]; do echo line-$i; i=$((i+1)); sleep 0.05; done"])
    config["process"]["terminal"] = True
    bundle = h.bundle(config=config)
    shim = Shim(h, bundle, cid)
    (stdout,) = shim.fifos("stdout")
    out = reader(stdout)
    shim.call("Create", task_pb2.CreateTaskRequest(id=cid, bundle=bundle, terminal=True, stdout=stdout))
    shim.call("Start", task_pb2.StartRequest(id=cid))
    time.sleep(0.5)
    os.close(out)  # containerd goes
    time.sleep(0.5)
    back = reader(stdout)  # and comes back
    assert wait_exit(shim, cid) == 0
    assert "line-39" in read_until_eof(back).decode()
    shim.finish(cid)


def test_terminal_exec_sizes_before_start(h):
    shim, cid, _ = sleeping_task(h, "ttyexec")
    (stdout,) = shim.fifos("exec-stdout")
    out = reader(stdout)
    process = {"args": ["sh", "-c", "stty size; exit 7"], "cwd": "/", "env": ["PATH=/bin"], "terminal": True}
    spec = any_pb2.Any(
        type_url="types.containerd.io/opencontainers/runtime-spec/1/Process", value=json.dumps(process).encode()
    )
    shim.call("Exec", task_pb2.ExecProcessRequest(id=cid, exec_id="e1", terminal=True, stdout=stdout, spec=spec))
    shim.call("ResizePty", task_pb2.ResizePtyRequest(id=cid, exec_id="e1", width=77, height=22))
    shim.call("Start", task_pb2.StartRequest(id=cid, exec_id="e1"))
    assert wait_exit(shim, cid, "e1") == 7
    assert "22 77" in read_until_eof(out).decode()
    shim.call("Delete", task_pb2.DeleteRequest(id=cid, exec_id="e1"))
    with pytest.raises(ttrpc.TTRPCError) as e:
        shim.call("ResizePty", task_pb2.ResizePtyRequest(id=cid, width=1, height=1))
    assert e.value.code == ttrpc.FAILED_PRECONDITION
    shim.call("Kill", task_pb2.KillRequest(id=cid, signal=9))
    assert wait_exit(shim, cid) == 137
    shim.finish(cid)


def test_a_terminal_exec_s_stdin_takes_input_after_its_process_ended_until_it_is_deleted(h):
    """`kubectl exec -it ... -- sh -c 'echo HELLO'` through CRI: the client's terminal sends its
    input (a ^D) as the process ends. CRI copies it into the exec's stdin fifo, and on a write that
    fails (EPIPE) it stops copying the terminal's output as well. mrun's shim closed the fifo the
    moment the output ended, so the client often saw nothing of what the process printed; the
    runc shim keeps its end open until the process is deleted, and so does mrun's now."""
    shim, cid, _ = sleeping_task(h, "ttyin")
    stdin, stdout = shim.fifos("exec-stdin", "exec-stdout")
    out = reader(stdout)
    process = {"args": ["sh", "-c", "echo HELLO"], "cwd": "/", "env": ["PATH=/bin"], "terminal": True}
    spec = any_pb2.Any(
        type_url="types.containerd.io/opencontainers/runtime-spec/1/Process", value=json.dumps(process).encode()
    )
    shim.call("Exec", task_pb2.ExecProcessRequest(id=cid, exec_id="e1", terminal=True, stdin=stdin, stdout=stdout,
                                                  spec=spec))
    shim.call("Start", task_pb2.StartRequest(id=cid, exec_id="e1"))
    assert wait_exit(shim, cid, "e1") == 0
    assert "HELLO" in read_until_eof(out).decode()
    writer = os.open(stdin, os.O_WRONLY | os.O_NONBLOCK)  # containerd's end (ENXIO: no reader left)
    os.write(writer, b"\x04")  # no EPIPE: the shim still holds the fifo's read end
    shim.call("Delete", task_pb2.DeleteRequest(id=cid, exec_id="e1"))
    deadline = time.monotonic() + 5
    while True:  # deleted, the process's fifo is let go: the writer is alone on it
        try:
            os.write(writer, b"x")
        except BrokenPipeError:
            break
        assert time.monotonic() < deadline, "the deleted exec's stdin fifo is still read by the shim"
        time.sleep(0.05)
    os.close(writer)
    shim.call("Kill", task_pb2.KillRequest(id=cid, signal=9))
    assert wait_exit(shim, cid) == 137
    shim.finish(cid)


def test_binary_delete_cleans_up_after_a_killed_daemon_and_is_idempotent(h):
    import signal

    shim, cid, init = sleeping_task(h, "dead")
    shim.client.close()
    os.kill(shim.pid, signal.SIGKILL)
    response = task_pb2.DeleteResponse.FromString(shim.binary_delete())
    assert response.exit_status == 137 and response.exited_at.seconds > 0  # what containerd then publishes
    deadline = time.monotonic() + 10
    while os.path.exists(f"/proc/{init}") and open(f"/proc/{init}/stat").read().split()[2] != "Z":
        assert time.monotonic() < deadline, "the container outlived its cleanup"
        time.sleep(0.05)
    assert not os.listdir(os.path.join(shim.state_root, "direct")) and not os.path.exists(shim.socket)
    assert shim.binary_delete() == b""  # nothing left: the empty DeleteResponse


def test_a_delete_with_nothing_to_do_is_answered_by_the_template_itself(h):
    """Every normal run's `delete` (containerd's, after the daemon deleted its task and left)
    finds nothing: the template answers it without a child (its spare stays unused); one that
    finds something (a killed daemon's state) still goes to a child, which cleans up as before."""
    import signal

    from test_warm import spares_of

    warm_served()
    shim, cid, init = sleeping_task(h, "inplace")
    shim.client.close()
    os.kill(shim.pid, signal.SIGKILL)
    spare = spares_of(warm_path(), wait=5)
    before = warm_served()
    response = task_pb2.DeleteResponse.FromString(shim.binary_delete(named_bundle=True))
    assert response.exit_status == 137 and warm_since(before)
    assert spares_of(warm_path(), wait=5) != spare, "a delete with work to do was not handed to a child"
    deadline = time.monotonic() + 10
    while os.path.exists(f"/proc/{init}") and open(f"/proc/{init}/stat").read().split()[2] != "Z":
        assert time.monotonic() < deadline, "the container outlived its cleanup"
        time.sleep(0.05)
    spare = spares_of(warm_path(), wait=5)
    for _ in range(3):
        before = warm_served()
        assert shim.binary_delete(named_bundle=True) == b""
        assert warm_since(before), "the template did not answer the delete"
    assert spares_of(warm_path()) == spare, "the template forked a child for a delete with nothing to do"


def test_a_start_that_joins_a_running_pod_is_answered_by_the_template_itself(h):
    """A pod's second container: `start` finds the pod's shim and prints its address. The template
    answers that itself (its spare stays unused), with what a cold `start` prints and writes, for
    containerd 1.6 (nothing on stdin) and 2.x (BootstrapParams on stdin, a BootstrapResult out)."""
    from mrun.shims import wire
    from test_warm import spares_of

    warm_served()
    pod = f"pod-{uuid.uuid4().hex[:8]}"
    config = h.config(["sleep", "600"])
    config["annotations"] = {"io.kubernetes.cri.sandbox-id": pod}
    first = Shim(h, h.bundle(config=config), h.cid("podfirst"))
    binary = os.path.join(os.path.dirname(mrun_binary()), "containerd-shim-mrun-v2")
    address = f"unix://{first.socket}"
    second, cid = h.bundle(config=config), h.cid("podsecond")
    bootstrap = wire.field(1, cid) + wire.field(2, "direct") + wire.field(6, first.address)
    for stdin, expected in ((b"", address.encode()),
                            (bootstrap, wire.field(1, 3) + wire.field(2, address) + wire.field(3, "ttrpc"))):
        for warm in ("1", "0"):
            os.unlink(os.path.join(second, "address")) if os.path.exists(os.path.join(second, "address")) else None
            spare, before = spares_of(warm_path(), wait=5), warm_served()
            env = {**os.environ, "MRUN_SHIM_ROOT": first.state_root, "MRUN_WARM": warm}
            out = subprocess.run([binary, "-namespace", "direct", "-address", first.address, "-id", cid, "start"],
                                 cwd=second, env=env, input=stdin, capture_output=True, timeout=30)
            assert (out.returncode, out.stdout, out.stderr) == (0, expected, b""), (warm, out)
            assert open(os.path.join(second, "address")).read() == address
            if warm == "1":
                assert warm_since(before), "the template did not answer the start"
                assert spares_of(warm_path()) == spare, "the template forked a child for a pod's second start"
    # containerd's delete after the task's connection closes: the pod's shim is live, so its
    # socket is kept and said so (containerd logs it), warm without a child, as cold.
    kept = f"mrun shim delete: {first.socket} is served by a live shim (a pod's other tasks): kept\n".encode()
    for warm in ("1", "0"):
        spare, before = spares_of(warm_path(), wait=5), warm_served()
        env = {**os.environ, "MRUN_SHIM_ROOT": first.state_root, "MRUN_WARM": warm}
        out = subprocess.run([binary, "-namespace", "direct", "-address", first.address, "-id", cid, "-bundle", second,
                              "delete"], cwd=second, env=env, capture_output=True, timeout=30)
        assert (out.returncode, out.stdout, out.stderr) == (0, b"", kept), (warm, out)
        if warm == "1":
            assert warm_since(before) and spares_of(warm_path()) == spare, "a pod's delete was not answered in place"
    assert os.path.exists(first.socket)
    first.finish()


@pytest.mark.parametrize("trap", ["config.json", "address", "address-start", "stdin"])
def test_a_hostile_bundle_or_stdin_never_holds_the_template(h, tmp_path, trap):
    """What the template reads and writes for a call it may answer itself comes from the caller:
    a fifo as config.json or address (an open that blocks), or a stdin that never ends. The
    template must not wait on them for good: the next caller is served at once."""
    import threading

    from mrun.shims import wire

    warm_served()
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    cid = h.cid("trap")
    if trap in ("stdin", "address-start"):
        (bundle / "config.json").write_text(json.dumps(h.config(["true"])))
    if trap != "stdin":
        os.mkfifo(bundle / trap.removesuffix("-start"))
    binary = os.path.join(os.path.dirname(mrun_binary()), "containerd-shim-mrun-v2")
    env = {**os.environ, "MRUN_SHIM_ROOT": str(tmp_path / "shim-root"), "MRUN_SHIM_UNCALLED_EXIT": "1"}
    args = [binary, "-namespace", "direct", "-address", "/nonexistent", "-id", cid]
    r, w = os.pipe()
    os.write(w, wire.field(1, cid) + wire.field(2, "direct") + wire.field(9, str(tmp_path / "s")))
    if trap != "stdin":  # containerd's own: all of it at once, then the end
        os.close(w)
        w = -1
    action = ["-bundle", str(bundle), "delete"] if trap == "address" else ["start"]
    caller = subprocess.Popen([*args, *action], cwd=bundle, env=env, stdin=r, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
    os.close(r)
    try:
        time.sleep(1)  # the caller is being served (or held) by now
        answered = threading.Event()
        threading.Thread(target=lambda: client.status(warm_path()) and answered.set(), daemon=True).start()
        assert answered.wait(3), f"the template was held by a {trap} it read for a caller"
    finally:
        if w >= 0:
            os.close(w)
        for name in ("config.json", "address"):  # a blocked open (ours, or a cold start's) ends
            path = bundle / name
            if path.exists() and not path.is_file():
                fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
                time.sleep(0.2)
                os.close(fd)
        try:
            _out, err = caller.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            caller.kill()
            _out, err = caller.communicate()
    if trap == "address-start":  # a start that cannot write its address file: one line, no daemon
        assert caller.returncode == 1 and b"cannot write" in err and b"Traceback" not in err, err
    # a daemon it may have made leaves: it is never called (MRUN_SHIM_UNCALLED_EXIT)
    deadline = time.monotonic() + 10
    while (tmp_path / "s").exists() and any(name.endswith(".sock") for name in os.listdir(tmp_path / "s")):
        assert time.monotonic() < deadline, "an uncalled shim daemon stayed"
        time.sleep(0.1)


def test_what_a_delete_would_find_is_what_decides_it_is_answered_in_place(h, tmp_path):
    """``delete_answer`` only looks, and says no (None) at anything a ``delete`` would act on; a
    pod's live shim at the address is in the test above."""
    import socket

    from mrun.shims.main import delete_answer

    bundle = tmp_path / "bundle"
    (bundle / "rootfs").mkdir(parents=True)
    env = {"MRUN_SHIM_ROOT": str(tmp_path / "shim-root")}
    argv = ["-namespace", "ns", "-address", "/a", "-id", "c1", "-bundle", str(bundle), "delete"]
    assert "" == delete_answer(argv, env)
    assert None is delete_answer([a for a in argv if a not in ("-bundle", str(bundle))], env)  # the cwd's
    assert None is delete_answer([*argv[:-1], "start"], env)
    (tmp_path / "shim-root" / "ns" / "c1").mkdir(parents=True)
    assert None is delete_answer(argv, env), "a container's state was there"
    assert "" == delete_answer(argv, {"MRUN_SHIM_ROOT": str(tmp_path / "elsewhere")})  # the caller's env decides
    sock_path = tmp_path / f"{'a' * 32}.sock"
    (bundle / "address").write_text(f"unix://{sock_path}")
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(sock_path))
    try:
        assert None is delete_answer(argv, {"MRUN_SHIM_ROOT": str(tmp_path / "elsewhere")}), "a socket of ours"
    finally:
        listener.close()
    os.unlink(sock_path)
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(bundle / "rootfs")], check=True)
    try:
        assert None is delete_answer(argv, {"MRUN_SHIM_ROOT": str(tmp_path / "elsewhere")}), "a mounted rootfs"
    finally:
        subprocess.run(["umount", str(bundle / "rootfs")], check=True)
    assert "" == delete_answer(argv, {"MRUN_SHIM_ROOT": str(tmp_path / "elsewhere")})


def _helper_of(shim: Shim) -> int:
    """The daemon's fork helper: its child that is a Python process (the daemon forked or exec'd it),
    not a container's init. A child is listed under the thread that made it: a replacement helper
    is started by the thread serving the call, which lives on to serve the next."""
    children = []
    for thread in os.listdir(f"/proc/{shim.pid}/task"):
        try:
            with open(f"/proc/{shim.pid}/task/{thread}/children") as f:
                children += [int(p) for p in f.read().split()]
        except FileNotFoundError:
            continue  # a thread that served a call and ended since the listing
    for pid in children:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read()
        except FileNotFoundError:
            continue  # gone since
        if b"sleep" not in cmd:
            return pid
    raise AssertionError(f"no fork helper among {children}")


def test_a_dead_fork_helper_is_replaced(h):
    """Killed between requests (twice: the forked helper, then its exec'd replacement), the next
    exec still works: the shim notices the dead helper and starts a new one. A pod's shim: each
    helper holds a spare worker (and its armed copy) when it is killed; they see the helper's end
    go and leave, and the replacement readies its own."""
    shim, cid, _ = sleeping_task(h, "helper", pod="helper-pod")
    process = {"args": ["sh", "-c", "exit 5"], "cwd": "/", "env": ["PATH=/bin"]}
    spec = any_pb2.Any(
        type_url="types.containerd.io/opencontainers/runtime-spec/1/Process", value=json.dumps(process).encode()
    )
    for round_ in range(2):
        helper = _helper_of(shim)
        deadline = time.monotonic() + 5
        while not children_of(helper):
            assert time.monotonic() < deadline, "the pod's fork helper keeps no spare worker"
            time.sleep(0.02)
        os.kill(helper, 9)  # our shim's own helper, by pid
        deadline = time.monotonic() + 5
        while os.path.exists(f"/proc/{helper}"):
            assert time.monotonic() < deadline, "the daemon did not reap its helper"
            time.sleep(0.02)
        exec_id = f"e{round_}"
        shim.call("Exec", task_pb2.ExecProcessRequest(id=cid, exec_id=exec_id, spec=spec))
        shim.call("Start", task_pb2.StartRequest(id=cid, exec_id=exec_id), timeout=30)
        assert wait_exit(shim, cid, exec_id) == 5
        shim.call("Delete", task_pb2.DeleteRequest(id=cid, exec_id=exec_id))
    bad = any_pb2.Any(type_url=spec.type_url, value=json.dumps({"args": "not a list"}).encode())
    with pytest.raises(ttrpc.TTRPCError) as e:
        shim.call("Exec", task_pb2.ExecProcessRequest(id=cid, exec_id="bad", spec=bad))
    assert e.value.code == ttrpc.INVALID_ARGUMENT and "process.args" in str(e.value)
    shim.call("Kill", task_pb2.KillRequest(id=cid, signal=9))
    assert wait_exit(shim, cid) == 137
    shim.finish(cid)


def test_stats_carry_what_kubelet_and_cri_read(h, tmp_path):
    """kubelet's working set is usage - total_inactive_file; CRI's rss_bytes and page faults are
    total_rss and total_pg_fault/total_pg_maj_fault. A container that wrote 32 MiB of page cache
    must not look like it holds 32 MiB more than it does."""
    data = tmp_path / "data"
    data.mkdir()
    cid = h.cid("stats")
    cfg = h.config(["sh", "-c", "dd if=/dev/zero of=/data/f bs=1M count=32 2>/dev/null; touch /data/done; sleep 600"])
    cfg["mounts"].append({"destination": "/data", "type": "bind", "source": str(data), "options": ["rbind"]})
    bundle = h.bundle(config=cfg)
    shim = Shim(h, bundle, cid)
    shim.call("Create", task_pb2.CreateTaskRequest(id=cid, bundle=bundle))
    shim.call("Start", task_pb2.StartRequest(id=cid))
    deadline = time.monotonic() + 15
    while not (data / "done").exists():
        assert time.monotonic() < deadline, "the container did not write its file"
        time.sleep(0.05)
    stats = task_pb2.StatsResponse.FromString(shim.call("Stats", task_pb2.StatsRequest(id=cid))).stats
    if detect() == 2:
        from mrun.shims.proto import metrics_v2_pb2 as metrics

        m = metrics.Metrics.FromString(stats.value).memory
        usage, inactive_file, rss, faults = m.usage, m.inactive_file, m.anon, m.pgfault
    else:
        from mrun.shims.proto import metrics_pb2 as metrics

        whole = metrics.Metrics.FromString(stats.value)
        m = whole.memory
        usage, inactive_file, rss, faults = m.usage.usage, m.total_inactive_file, m.total_rss, m.total_pg_fault
        assert len(whole.cpu.usage.per_cpu) >= 1  # ctr task metrics: cpuacct.usage_percpu
    assert inactive_file >= 16 << 20, inactive_file  # the page cache written is inactive file memory
    assert usage - inactive_file < 16 << 20, (usage, inactive_file)  # the working set leaves it out
    assert rss > 0 and faults > 0, (rss, faults)
    shim.call("Kill", task_pb2.KillRequest(id=cid, signal=9))
    assert wait_exit(shim, cid) == 137
    shim.finish(cid)


def test_update_raises_memory_with_swap_as_kubernetes_does(h):
    """CRI's UpdateContainerResources over ttrpc: 48 -> 96 MiB with swap = memory (containerd's
    rule) and a CPU quota in the same request; both land (swap is written first when raising)."""
    cid = h.cid("raise")
    cfg = h.config(["sleep", "600"])
    cfg["linux"]["resources"] = {"memory": {"limit": 48 << 20, "swap": 48 << 20}}
    bundle = h.bundle(config=cfg)
    shim = Shim(h, bundle, cid)
    shim.call("Create", task_pb2.CreateTaskRequest(id=cid, bundle=bundle))
    shim.call("Start", task_pb2.StartRequest(id=cid))
    url = "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources"
    resources = {"memory": {"limit": 96 << 20, "swap": 96 << 20}, "cpu": {"quota": 50000, "period": 100000}}
    shim.call("Update", task_pb2.UpdateTaskRequest(id=cid, resources=any_pb2.Any(
        type_url=url, value=json.dumps(resources).encode())))
    if detect() == 1:
        mem = next(d for d in cgroup_dirs(cfg["linux"]["cgroupsPath"]) if "/memory/" in d)
        cpu = next(d for d in cgroup_dirs(cfg["linux"]["cgroupsPath"]) if d.split("/")[4].startswith("cpu,")
                   or "/cpu/" in d)
        assert open(os.path.join(mem, "memory.limit_in_bytes")).read().strip() == str(96 << 20)
        assert open(os.path.join(cpu, "cpu.cfs_quota_us")).read().strip() == "50000"
    shim.call("Kill", task_pb2.KillRequest(id=cid, signal=9))
    assert wait_exit(shim, cid) == 137
    shim.finish(cid)


def test_a_task_s_idmapped_mount_in_a_user_namespace_as_containerd_sends_it(h):
    """Kubernetes' user-namespaced pods through the shim: containerd 2.x names each volume's
    mappings on its mount. The shim's create worker hands its init to a pristine copy with the
    worker's descriptors, the idmapped copies among them: the volume's root-owned files are the
    container's root's, not the overflow id."""
    from test_sandbox import _in_a_user_namespace, _owned_tree

    src = _owned_tree(h)
    cid = h.cid("idmap")
    cfg = h.config(["stat", "-c", "%u:%g", "/root/zero", "/root/five"])
    _in_a_user_namespace(h, cfg)
    maps = cfg["linux"]["uidMappings"]
    cfg["mounts"].append({"destination": "/root", "type": "bind", "source": src, "options": ["rbind", "ro"],
                          "uidMappings": maps, "gidMappings": maps})
    shim, out = started_with_stdout(h, cid, h.bundle(config=cfg))
    assert wait_exit(shim, cid) == 0
    assert read_until_eof(out).split() == [b"0:0", b"5:7"]
    shim.finish(cid)


def test_a_user_namespaced_task_s_streams_are_the_io_owner_s_containerd_names(h):
    """Kubernetes' hostUsers: false: CRI asks the shim (runc's options, io_uid 4 and io_gid 5) to
    give the I/O to the container's root as the host sees it. containerd's runc shim makes its
    pipes that user's; mrun's shim handed containerd's root-owned fifos over as they were, and in
    the pod `echo > /dev/stdout` (nginx's logs are links to it) failed with EACCES, in the init and
    in an exec'd process alike. Its stdin pipe too."""
    from google.protobuf import any_pb2
    from mrun.shims import wire
    from test_sandbox import _in_a_user_namespace

    cid = h.cid("ioowner")
    cfg = h.config(["sh", "-c", "echo init > /dev/stdout && echo err > /dev/stderr && read x < /dev/stdin; "
                    "echo rc=$?; sleep 600"])
    _in_a_user_namespace(h, cfg)
    bundle = h.bundle(config=cfg)
    shim = Shim(h, bundle, cid)
    stdin, stdout, stderr, exec_out = shim.fifos("stdin", "stdout", "stderr", "exec-stdout")
    out, err, eout = reader(stdout), reader(stderr), reader(exec_out)
    options = any_pb2.Any(type_url="containerd.runc.v1.Options", value=wire.field(4, 200000) + wire.field(5, 200000))
    shim.call("Create", task_pb2.CreateTaskRequest(id=cid, bundle=bundle, stdin=stdin, stdout=stdout, stderr=stderr,
                                                   options=options))
    writer = os.open(stdin, os.O_WRONLY)
    os.write(writer, b"line\n")
    shim.call("Start", task_pb2.StartRequest(id=cid))
    process = {"args": ["sh", "-c", "echo exec > /dev/stdout"], "cwd": "/", "env": ["PATH=/bin"]}
    spec = any_pb2.Any(
        type_url="types.containerd.io/opencontainers/runtime-spec/1/Process", value=json.dumps(process).encode()
    )
    shim.call("Exec", task_pb2.ExecProcessRequest(id=cid, exec_id="e1", stdout=exec_out, spec=spec))
    shim.call("Start", task_pb2.StartRequest(id=cid, exec_id="e1"))
    assert wait_exit(shim, cid, "e1") == 0
    assert read_until_eof(eout) == b"exec\n"
    shim.call("Delete", task_pb2.DeleteRequest(id=cid, exec_id="e1"))
    os.close(writer)
    shim.call("Kill", task_pb2.KillRequest(id=cid, signal=9))
    assert wait_exit(shim, cid) == 137
    assert read_until_eof(out) == b"init\nrc=0\n" and read_until_eof(err) == b"err\n"
    shim.finish(cid)


@pytest.mark.parametrize("kind", ["overlay", "bind"])
def test_a_user_namespaced_snapshot_is_mounted_idmapped_by_the_create_worker(h, kind):
    """containerd 2.x's overlay snapshot of a user-namespaced pod names the pod's mappings in
    uidmap=/gidmap= options, which are no overlayfs option: the create failed, "Invalid argument".
    Each layer is cloned idmapped (in the create worker: the user namespace is forked, which the
    threaded daemon must not), so the image's root-owned files are the container's root's; a bind
    snapshot (the native snapshotter's) is cloned idmapped whole. Only one of the two options is
    refused in one line, nothing left mounted."""

    from test_sandbox import _in_a_user_namespace

    maps = "0:300000:65536"
    for options, want in (([f"uidmap={maps}", f"gidmap={maps}"], None), ([f"uidmap={maps}"], "gidmap")):
        cid = h.cid("snap")
        bundle = os.path.join(h.tmp, f"bundle-{cid}")
        for d in ("rootfs", "upper", "work"):
            os.makedirs(os.path.join(bundle, d))
        for d in ("upper", "work"):  # the pod's root's, as containerd makes a remapped snapshot's
            os.chown(os.path.join(bundle, d), 300000, 300000)
        script = "cat /proc/self/uid_map; stat -c %u:%g /bin/sh; touch /probe 2>&1 | grep -o Read-only; exit 0"
        cfg = h.config(["sh", "-c", script], root={"path": "rootfs", "readonly": False})  # the snapshot's ro shows
        _in_a_user_namespace(h, cfg)
        ids = [{"containerID": 0, "hostID": 300000, "size": 65536}]
        cfg["linux"]["uidMappings"] = cfg["linux"]["gidMappings"] = ids
        with open(os.path.join(bundle, "config.json"), "w") as f:
            json.dump(cfg, f)
        open_to_others(bundle)  # the mapped root reaches its bundle, as containerd's (0711) lets it
        if kind == "overlay":
            rootfs = types_pb2.Mount(type="overlay", source="overlay", options=[
                f"lowerdir={h.rootfs}", f"upperdir={bundle}/upper", f"workdir={bundle}/work", *options])
        else:
            rootfs = types_pb2.Mount(type="bind", source=h.rootfs, options=["rbind", "ro", *options])
        shim = Shim(h, bundle, cid)
        (stdout,) = shim.fifos("stdout")
        out = reader(stdout)
        if want:
            with pytest.raises(ttrpc.TTRPCError) as e:
                shim.call("Create", task_pb2.CreateTaskRequest(id=cid, bundle=bundle, stdout=stdout, rootfs=[rootfs]))
            assert want in e.value.message and "\n" not in e.value.message, e.value.message
            assert f"{bundle}/rootfs" not in open("/proc/self/mountinfo").read()
            os.close(out)
            shim.finish()
            continue
        shim.call("Create", task_pb2.CreateTaskRequest(id=cid, bundle=bundle, stdout=stdout, rootfs=[rootfs]))
        shim.call("Start", task_pb2.StartRequest(id=cid))
        assert wait_exit(shim, cid) == 0
        ro = [b"Read-only"] if kind == "bind" else []  # the bind snapshot asked ro; the overlay one rw
        assert read_until_eof(out).split() == [b"0", b"300000", b"65536", b"0:0", *ro]
        shim.finish(cid)
        assert f"{bundle}/rootfs" not in open("/proc/self/mountinfo").read()


def test_a_read_only_bind_snapshot_is_read_only(h):
    """A bind rootfs with "ro" (containerd's read-only snapshot views, the native snapshotter): a
    bind mount takes no flag but MS_REC when it is made, so ro needs the remount a bundle's bind
    mounts get; the rootfs was writable."""


    cid = h.cid("robind")
    bundle = os.path.join(h.tmp, f"bundle-{cid}")
    os.makedirs(os.path.join(bundle, "rootfs"))
    cfg = h.config(["sh", "-c", "touch /probe 2>&1 | grep -o Read-only; exit 0"], root={"path": "rootfs",
                                                                                     "readonly": False})
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(cfg, f)
    rootfs = types_pb2.Mount(type="bind", source=h.rootfs, options=["rbind", "ro"])
    shim = Shim(h, bundle, cid)
    (stdout,) = shim.fifos("stdout")
    out = reader(stdout)
    shim.call("Create", task_pb2.CreateTaskRequest(id=cid, bundle=bundle, stdout=stdout, rootfs=[rootfs]))
    shim.call("Start", task_pb2.StartRequest(id=cid))
    assert wait_exit(shim, cid) == 0
    assert read_until_eof(out).split() == [b"Read-only"]
    assert not os.path.exists(os.path.join(h.rootfs, "probe"))
    shim.finish(cid)


def test_a_full_state_root_refuses_a_create_in_words_and_keeps_what_runs(h):
    """/run is a tmpfs, often small: full, a Create was refused as Python's repr ("OSError: [Errno
    28] No space left on device: '…/state.json'"); it names the file in words and leaves nothing,
    a task already running ends with its status, and once there is room again a Create works."""
    root = os.path.join(h.tmp, "shim-state")
    os.makedirs(root)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", root], check=True)
    try:
        shim, cid, _ = sleeping_task(h, "running")
        with open(os.path.join(root, "fill"), "wb", buffering=0) as f:
            with pytest.raises(OSError, match="No space left"):
                while True:
                    f.write(b"\0" * 65536)
        before = sorted(os.listdir(os.path.join(root, "direct")))
        refused = h.cid("refused")
        cfg = h.config(["true"])
        other = Shim(h, h.bundle(config=cfg), refused)
        with pytest.raises(ttrpc.TTRPCError) as e:
            other.call("Create", task_pb2.CreateTaskRequest(id=refused, bundle=other.bundle))
        message = e.value.message
        assert "No space left on device: " + os.path.join(root, "direct", refused) in message, message
        assert "Errno" not in message and "OSError" not in message and "\n" not in message, message
        assert sorted(os.listdir(os.path.join(root, "direct"))) == before, "the refused create left its state"
        assert not cgroup_dirs(cfg["linux"]["cgroupsPath"])

        shim.call("Kill", task_pb2.KillRequest(id=cid, signal=9))
        waited = task_pb2.WaitResponse.FromString(shim.call("Wait", task_pb2.WaitRequest(id=cid)))
        assert waited.exit_status == 137
        shim.finish(cid)  # the disk still full
        other.finish()
        os.unlink(os.path.join(root, "fill"))
        again = Shim(h, h.bundle(["true"]), refused)
        again.call("Create", task_pb2.CreateTaskRequest(id=refused, bundle=again.bundle))
        again.finish(refused)
    finally:
        subprocess.run(["umount", "-l", root], check=True)


@pytest.mark.parametrize("started", [True, False], ids=["running", "created"])
def test_state_removed_under_a_running_shim_is_written_back_from_what_it_kept(h, started):
    """/run/mrun/.shim removed while tasks run (`rm -rf /run/mrun`, a tmpfiles clean-up): the shim
    said a running task was STOPPED, Kill failed "does not exist" (its own child, alive), and
    `ctr task rm -f` waited for an exit that never came, leaving the cgroup. The shim kept each
    task's record: the next call writes it back, and every verb works as before."""
    import shutil

    cid = h.cid("lost")
    cfg = h.config(["sleep", "600"])
    shim = Shim(h, h.bundle(config=cfg), cid)
    shim.call("Create", task_pb2.CreateTaskRequest(id=cid, bundle=shim.bundle))
    if started:
        shim.call("Start", task_pb2.StartRequest(id=cid))
    shutil.rmtree(shim.state_root)
    state = task_pb2.StateResponse.FromString(shim.call("State", task_pb2.StateRequest(id=cid)))
    assert state.status == (types_pb2.RUNNING if started else types_pb2.CREATED)
    assert os.path.exists(os.path.join(shim.state_root, "direct", cid, "state.json"))
    if started:
        pids = task_pb2.PidsResponse.FromString(shim.call("Pids", task_pb2.PidsRequest(id=cid)))
        assert [p.pid for p in pids.processes] == [state.pid]
    shutil.rmtree(shim.state_root)
    if not started:  # its start gate, a fifo its init holds, linked back
        shim.call("Start", task_pb2.StartRequest(id=cid))
        state = task_pb2.StateResponse.FromString(shim.call("State", task_pb2.StateRequest(id=cid)))
        assert state.status == types_pb2.RUNNING
        shutil.rmtree(shim.state_root)
    shim.call("Kill", task_pb2.KillRequest(id=cid, signal=9))
    assert wait_exit(shim, cid) == 137
    shutil.rmtree(shim.state_root)
    shim.finish(cid)
    assert not cgroup_dirs(cfg["linux"]["cgroupsPath"]), "the task's cgroup outlived its delete"


@pytest.mark.parametrize("pod", ["", "notify-pod"])
def test_seccomp_notify_through_the_shim_hands_the_listener_from_its_worker(h, tmp_path, pod):
    """The shim's create worker is the host's half (its init forked by the worker's pristine copy,
    in a pod), and the daemon's exec path too: the agent gets the init's listener (creating) and
    the exec'd process's (running), and answers their mkdir on a read-only root."""
    from test_runc_compat import MADE_OR_NOT, SeccompAgent, _notifying

    agent = SeccompAgent(str(tmp_path / "agent.sock"))
    try:
        cid = h.cid("notify")
        cfg = _notifying(agent.path, ["mkdir", "mkdirat"], False, ["sh", "-c", f"{MADE_OR_NOT}; sleep 600"], h)
        if pod:
            cfg["annotations"] = {"io.kubernetes.cri.sandbox-id": pod}
        shim, out = started_with_stdout(h, cid, h.bundle(config=cfg))
        process = {"args": ["sh", "-c", MADE_OR_NOT.replace("made", "again")], "cwd": "/", "env": ["PATH=/bin"]}
        spec = any_pb2.Any(type_url="types.containerd.io/opencontainers/runtime-spec/1/Process",
                           value=json.dumps(process).encode())
        (exec_out,) = shim.fifos("exec-stdout")
        exec_reader = reader(exec_out)
        shim.call("Exec", task_pb2.ExecProcessRequest(id=cid, exec_id="e1", stdout=exec_out, spec=spec))
        shim.call("Start", task_pb2.StartRequest(id=cid, exec_id="e1"))
        assert wait_exit(shim, cid, "e1") == 0
        assert read_until_eof(exec_reader).split() == [b"said-again", b"not-there"]
        shim.call("Delete", task_pb2.DeleteRequest(id=cid, exec_id="e1"))
        shim.call("Kill", task_pb2.KillRequest(id=cid, signal=9))
        assert wait_exit(shim, cid) == 137
        assert read_until_eof(out).split() == [b"said-made", b"not-there"]
        assert [state["state"]["status"] for state, _fds in agent.received] == ["creating", "running"]
        shim.finish(cid)
    finally:
        agent.close()


def test_requests_containerd_could_not_mean_are_refused_in_words_and_leave_nothing(h):
    """What fuzzing the task API found (tests/test_fuzz.py): each was an "internal error" (a
    Python exception's words), and three left things behind. Each is refused as invalid now,
    naming what is wrong, and nothing is left: a payload that is no message of its method; a
    signal past SIGRTMAX; a terminal wider than struct winsize holds; an exec's process or an
    update's resources nested 100000 deep; a Create's stdio path that cannot be opened (opened
    after the container was made for a terminal task: the container stayed, created, with its
    cgroup); a Create's second rootfs mount that fails (the first stayed mounted)."""
    from google.protobuf import any_pb2

    shim, cid, _ = sleeping_task(h, "refusals")
    url = "types.containerd.io/opencontainers/runtime-spec/1/"
    deep = b"[" * 100000

    def refused(method: str, payload: bytes, *words: str) -> str:
        with pytest.raises(ttrpc.TTRPCError) as e:
            shim.client.call(TASK, method, payload)
        message = e.value.message
        assert e.value.code == ttrpc.INVALID_ARGUMENT and "internal error" not in message, (e.value.code, message)
        assert all(w in message for w in words) and "\n" not in message, message
        return message

    refused("State", b"\xff\xff\xff", "malformed request")
    refused("Kill", task_pb2.KillRequest(id=cid, signal=2**31).SerializeToString(), "not a signal number")
    refused("ResizePty", task_pb2.ResizePtyRequest(id=cid, width=70000, height=1).SerializeToString(), "65535")
    spec = any_pb2.Any(type_url=url + "Process", value=deep)
    refused("Exec", task_pb2.ExecProcessRequest(id=cid, exec_id="deep", spec=spec).SerializeToString(), "deep")
    resources = any_pb2.Any(type_url=url + "LinuxResources", value=deep)
    refused("Update", task_pb2.UpdateTaskRequest(id=cid, resources=resources).SerializeToString(), "deep")

    def containerd_bundle() -> tuple[str, dict]:
        cfg = h.config(["true"], root={"path": "rootfs"})
        cfg["process"]["terminal"] = True
        bundle = h.bundle(config=cfg)
        os.mkdir(os.path.join(bundle, "rootfs"))
        return bundle, cfg

    good = types_pb2.Mount(type="bind", source=h.rootfs, options=["rbind", "ro"])
    never_ready = os.path.join(h.tmp, "never-ready-logger")
    with open(never_ready, "w") as f:
        f.write("#!/bin/sh\nexec sleep 6017\n")  # holds fd 5 open, never closes it: never ready
    os.chmod(never_ready, 0o755)
    for changes, words in [
        ({"terminal": True, "stdout": "/nonexistent/fifo"}, ("stdout", "/nonexistent/fifo", "No such file")),
        ({"stdout": "out\0"}, ("stdout", "null")),
        ({"stdout": "binary://relative/logger"}, ("stdout", "absolute path")),
        ({"stdout": "binary:///nonexistent/logger"}, ("stdout", "/nonexistent/logger", "No such file")),
        ({"stdout": f"binary://{never_ready}", "terminal": True}, ("stdout", never_ready, "not ready within")),
        ({"rootfs": [good, types_pb2.Mount(type="bind", source="/nonexistent", options=["rbind"])]}, ("/nonexistent",)),
    ]:
        bundle, cfg = containerd_bundle()
        other = h.cid("refused")
        request = task_pb2.CreateTaskRequest(id=other, bundle=bundle, **{"rootfs": [good], **changes})
        with pytest.raises(ttrpc.TTRPCError) as e:
            shim.call("Create", request, timeout=30)  # a logger is given 10 s to be ready
        assert "internal error" not in e.value.message and all(w in e.value.message for w in words), e.value.message
        assert not os.path.exists(os.path.join(shim.state_root, "direct", other)), "the refused create left its state"
        assert not cgroup_dirs(cfg["linux"]["cgroupsPath"]), "the refused create left its cgroup"
        assert not os.path.ismount(os.path.join(bundle, "rootfs")), "the refused create left its rootfs mounted"
    deadline = time.monotonic() + 5
    while processes_mentioning("sleep\x006017"):
        assert time.monotonic() < deadline, "the logging binary that was never ready was left running"
        time.sleep(0.05)
    state = task_pb2.StateResponse.FromString(shim.call("State", task_pb2.StateRequest(id=cid)))
    assert state.status == types_pb2.RUNNING
    shim.call("Kill", task_pb2.KillRequest(id=cid, signal=9))
    assert wait_exit(shim, cid) == 137
    shim.finish(cid)


def test_an_exec_that_never_started_is_waited_for_at_once_and_not_killed(h):
    """A liveness probe of a program the image lacks: the exec's Start fails. containerd 1.6's
    CRI then deletes it with WithProcessKill: Wait, then Kill. containerd's runc shim answers that
    Wait at once and the Kill with FailedPrecondition ("process not created"); mrun's shim held
    the Wait for ever and said NotFound, so CRI waited out its 60 s deferred context for each
    failed probe, and the Wait's thread was never let go. An exec deleted without a start lets a
    pending Wait go too."""
    shim, cid, _ = sleeping_task(h, "nostart")
    process = {"args": ["/nonexistent"], "cwd": "/", "env": ["PATH=/bin"]}
    spec = any_pb2.Any(
        type_url="types.containerd.io/opencontainers/runtime-spec/1/Process", value=json.dumps(process).encode()
    )
    for exec_id, start in (("failed", True), ("unstarted", False)):
        shim.call("Exec", task_pb2.ExecProcessRequest(id=cid, exec_id=exec_id, spec=spec))
        waited: dict[str, object] = {}

        def wait(exec_id: str = exec_id, waited: dict[str, object] = waited) -> None:
            try:
                waited["answer"] = shim.call("Wait", task_pb2.WaitRequest(id=cid, exec_id=exec_id), timeout=20)
            except ttrpc.TTRPCError as e:  # sent after the Delete: NotFound, also not held
                waited["answer"] = e

        waiter = threading.Thread(target=wait)
        waiter.start()
        time.sleep(0.3)  # the Wait is in the shim by then, as CRI's is before its Start
        if start:
            with pytest.raises(ttrpc.TTRPCError) as e:
                shim.call("Start", task_pb2.StartRequest(id=cid, exec_id=exec_id))
            assert "/nonexistent" in e.value.message
            with pytest.raises(ttrpc.TTRPCError) as e:
                shim.call("Kill", task_pb2.KillRequest(id=cid, exec_id=exec_id, signal=9, all=True))
            assert e.value.code == ttrpc.FAILED_PRECONDITION, e.value
            waiter.join(5)
            assert "answer" in waited, "the Wait for an exec that failed to start was not answered"
            with pytest.raises(ttrpc.TTRPCError) as e:  # its Waits answered: it will not run after all
                shim.call("Start", task_pb2.StartRequest(id=cid, exec_id=exec_id))
            assert e.value.code == ttrpc.FAILED_PRECONDITION, e.value
        shim.call("Delete", task_pb2.DeleteRequest(id=cid, exec_id=exec_id))
        waiter.join(5)
        assert "answer" in waited, f"{exec_id}: a Wait outlived its exec's Delete"
    shim.call("Kill", task_pb2.KillRequest(id=cid, signal=9))
    assert wait_exit(shim, cid) == 137
    shim.finish(cid)


def test_a_delete_never_kills_a_running_task_or_exec(h):
    """containerd's runc shim refuses to Delete a running or paused process ("cannot delete a
    running process"): only Kill ends one, and containerd's client kills and waits first (`ctr
    task rm -f`, CRI's RemoveContainer). Ours deleted it by force, killing it. A created one is
    deleted as runc's shim deletes it (its init ends with it)."""
    from google.protobuf import any_pb2

    shim, cid, pid = sleeping_task(h, "nodelete")
    spec = any_pb2.Any(type_url="types.containerd.io/opencontainers/runtime-spec/1/Process",
                       value=json.dumps({"args": ["sleep", "600"], "cwd": "/", "env": ["PATH=/bin"]}).encode())
    shim.call("Exec", task_pb2.ExecProcessRequest(id=cid, exec_id="e1", spec=spec))
    exec_pid = task_pb2.StartResponse.FromString(shim.call("Start", task_pb2.StartRequest(id=cid, exec_id="e1"))).pid
    for request, word in [(task_pb2.DeleteRequest(id=cid, exec_id="e1"), "running"),
                          (task_pb2.DeleteRequest(id=cid), "running")]:
        with pytest.raises(ttrpc.TTRPCError) as e:
            shim.call("Delete", request)
        assert e.value.code == ttrpc.FAILED_PRECONDITION and f"cannot delete a {word} process" in e.value.message
    shim.call("Pause", task_pb2.PauseRequest(id=cid))
    with pytest.raises(ttrpc.TTRPCError) as e:
        shim.call("Delete", task_pb2.DeleteRequest(id=cid))
    assert e.value.code == ttrpc.FAILED_PRECONDITION and "cannot delete a paused process" in e.value.message
    shim.call("Resume", task_pb2.ResumeRequest(id=cid))
    assert running(pid) and running(exec_pid), "a refused Delete killed what it was refused for"
    shim.call("Kill", task_pb2.KillRequest(id=cid, exec_id="e1", signal=9))
    assert wait_exit(shim, cid, "e1") == 137
    shim.call("Delete", task_pb2.DeleteRequest(id=cid, exec_id="e1"))
    created = h.cid("created")
    shim.call("Create", task_pb2.CreateTaskRequest(id=created, bundle=h.bundle(["sleep", "600"])))
    created_pid = task_pb2.StateResponse.FromString(shim.call("State", task_pb2.StateRequest(id=created))).pid
    shim.call("Delete", task_pb2.DeleteRequest(id=created))
    assert not running(created_pid), "a deleted created task's init lives on"
    shim.finish(cid)


def _snapshot_bundle(h, cid: str, args: list[str]) -> str:
    """A bundle as containerd lays one out: config.json and an empty rootfs/ for the snapshot."""
    bundle = os.path.join(h.tmp, f"bundle-{cid}")
    os.makedirs(os.path.join(bundle, "rootfs"))
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(h.config(args, root={"path": "rootfs", "readonly": True}), f)
    return bundle


def _mounted_at(path: str) -> int:
    with open("/proc/self/mountinfo") as f:
        return sum(line.split(" ", 5)[4] == path for line in f)


@pytest.mark.parametrize("bundle", ["", "/", "../../..", "relative", "/tmp/../tmp", "link", "rootfs link"])
def test_a_task_s_bundle_that_is_not_one_is_refused_before_anything_is_mounted(h, tmp_path, bundle):
    """CreateTaskRequest.bundle is containerd's own directory for the task: absolute, without
    detours, not / and not a link, as a sandbox's bundle_path. Anything else was taken as it
    came: the snapshot mounted on "/rootfs", on "rootfs" under the daemon's working directory (""
    made a task there), or through a link wherever it pointed. It is refused in one line naming
    the field (INVALID_ARGUMENT), nothing mounted."""
    cid = h.cid("badbundle")
    real = _snapshot_bundle(h, cid, ["true"])
    if bundle == "link":
        bundle = str(tmp_path / "link")
        os.symlink(real, bundle)
    elif bundle == "rootfs link":  # its rootfs a link to a directory of the node's: the mount went there
        bundle = str(tmp_path / "linked-bundle")
        os.makedirs(os.path.join(tmp_path, "elsewhere"))
        os.makedirs(bundle)
        os.symlink(os.path.join(tmp_path, "elsewhere"), os.path.join(bundle, "rootfs"))
        with open(os.path.join(bundle, "config.json"), "w") as f:
            json.dump(h.config(["true"], root={"path": "rootfs", "readonly": True}), f)
    shim = Shim(h, real, cid)
    snapshot = types_pb2.Mount(type="bind", source=h.rootfs, options=["rbind", "ro"])
    try:
        with pytest.raises(ttrpc.TTRPCError) as refused:
            shim.call("Create", task_pb2.CreateTaskRequest(id=cid, bundle=bundle, rootfs=[snapshot]))
        message = refused.value.message
        assert refused.value.code == ttrpc.INVALID_ARGUMENT and f"{cid}: bundle: " in message, message
        assert "\n" not in message, message
        for place in ("/rootfs", os.path.join(real, "rootfs"), os.path.join(shim.bundle, "rootfs"),
                      os.path.join(tmp_path, "elsewhere")):
            assert not _mounted_at(place), f"{place} was mounted by a refused create"
    finally:
        shim.finish()


def test_a_create_in_another_task_s_bundle_never_unmounts_that_task_s_rootfs(h):
    """A task's snapshot is mounted on <bundle>/rootfs by its Create, and only that mount is the
    shim's to take away. A second Create naming the same bundle (containerd never sends one; a
    mutated request can) took the first task's rootfs with it: a snapshot that failed to mount
    was undone by detaching everything stacked there, and a second task made without a snapshot
    (two containers of one bundle, as runc allows) detached it at its Delete. Now a Create whose
    rootfs is already a mount is refused before it mounts anything, and a Delete detaches only
    what its own Create mounted: the first task keeps running on its rootfs."""
    first = h.cid("owner")
    bundle = _snapshot_bundle(h, first, ["sleep", "600"])
    rootfs = os.path.join(bundle, "rootfs")
    shim = Shim(h, bundle, first)
    snapshot = types_pb2.Mount(type="bind", source=h.rootfs, options=["rbind", "ro"])
    shim.call("Create", task_pb2.CreateTaskRequest(id=first, bundle=bundle, rootfs=[snapshot]))
    shim.call("Start", task_pb2.StartRequest(id=first))
    assert _mounted_at(rootfs) == 1
    second, third = h.cid("intruder"), h.cid("sharer")
    try:
        missing = types_pb2.Mount(type="bind", source=os.path.join(h.tmp, "no-such-snapshot"), options=["rbind"])
        for mounts in ([missing], [snapshot]):
            with pytest.raises(ttrpc.TTRPCError) as refused:
                shim.call("Create", task_pb2.CreateTaskRequest(id=second, bundle=bundle, rootfs=mounts))
            assert _mounted_at(rootfs) == 1, "a refused create touched the running task's rootfs"
            message = refused.value.message
            assert refused.value.code == ttrpc.INVALID_ARGUMENT and f"{rootfs}" in message, message
            assert "already" in message and "\n" not in message, message

        with open(os.path.join(bundle, "config.json"), "w") as f:  # a cgroup of its own, the same rootfs
            json.dump(h.config(["sleep", "600"], root={"path": "rootfs", "readonly": True}), f)
        shim.call("Create", task_pb2.CreateTaskRequest(id=third, bundle=bundle))  # no snapshot: the bundle's own
        shim.call("Start", task_pb2.StartRequest(id=third))
        shim.call("Kill", task_pb2.KillRequest(id=third, signal=9))
        assert wait_exit(shim, third) == 137
        shim.call("Delete", task_pb2.DeleteRequest(id=third))
        assert _mounted_at(rootfs) == 1, "deleting a task that mounted nothing detached another task's rootfs"
        state = task_pb2.StateResponse.FromString(shim.call("State", task_pb2.StateRequest(id=first)))
        assert state.status == types_pb2.RUNNING
    finally:
        shim.finish(first)
    assert not _mounted_at(rootfs), "the task's own rootfs was left mounted after its Delete"


@pytest.mark.parametrize("stream", ["stdout", "stderr", "stdin"])
@pytest.mark.parametrize("kind", ["file", "link to a file", "directory"])
def test_a_stdio_path_that_is_not_a_fifo_is_refused_and_left_as_it_was(h, tmp_path, stream, kind):
    """A task's stdin, stdout and stderr are containerd's fifos (``file://`` names a log file
    explicitly). A path that named a regular file was opened as the fifo would have been: the
    program's output overwrote the file from its first byte, or the file became the program's
    stdin (/etc/shadow, read in the container). Only a fifo is opened; anything else is refused in
    one line naming the stream (INVALID_ARGUMENT), and the file is left as it was."""
    cid = h.cid("notfifo")
    bundle = h.bundle(["sh", "-c", "cat; echo overwritten; echo overwritten >&2"])
    victim = tmp_path / "precious"
    victim.write_text("secret\n")
    path = str(victim)
    if kind == "link to a file":
        path = str(tmp_path / "link")
        os.symlink(victim, path)
    elif kind == "directory":
        path = str(tmp_path)
    shim = Shim(h, bundle, cid)
    try:
        with pytest.raises(ttrpc.TTRPCError) as refused:
            shim.call("Create", task_pb2.CreateTaskRequest(id=cid, bundle=bundle, **{stream: path}))
        message = refused.value.message
        assert refused.value.code == ttrpc.INVALID_ARGUMENT and f"{stream} {path!r}" in message, message
        assert "fifo" in message and "\n" not in message, message
        assert victim.read_text() == "secret\n"
    finally:
        shim.finish()


@pytest.mark.parametrize("field", ["checkpoint", "parent_checkpoint"])
def test_a_create_from_a_checkpoint_is_refused_not_started_afresh(h, tmp_path, field):
    """`ctr run --checkpoint` asks for a restore: Create named the image's checkpoint directory
    and mrun started the bundle's program afresh, as if it were restored. It cannot restore (no
    CRIU, as its Checkpoint says): refused (UNIMPLEMENTED) before anything is made."""
    cid = h.cid("restore")
    bundle = h.bundle(["sh", "-c", f"touch {tmp_path}/ran"])
    shim = Shim(h, bundle, cid)
    try:
        with pytest.raises(ttrpc.TTRPCError) as refused:
            shim.call("Create", task_pb2.CreateTaskRequest(id=cid, bundle=bundle, **{field: str(tmp_path / "cp")}))
        message = refused.value.message
        assert refused.value.code == ttrpc.UNIMPLEMENTED and "cannot restore from a checkpoint" in message, message
        with pytest.raises(ttrpc.TTRPCError):
            shim.call("Start", task_pb2.StartRequest(id=cid))
        assert not (tmp_path / "ran").exists()
    finally:
        shim.finish()


@pytest.mark.parametrize("snapshot", [True, False])
def test_a_second_create_of_a_task_still_being_created_is_already_exists_and_touches_nothing(h, snapshot):
    """Two Creates of one task id at once (containerd sends one; a retry on another connection,
    or a mutated request, may not): the id was only taken once the first had finished, so the
    second went ahead on the same bundle while the first ran its hooks. It is refused at once,
    ALREADY_EXISTS, and the first task is made and runs, on its own rootfs mount."""
    cid = h.cid("twice")
    bundle = _snapshot_bundle(h, cid, ["sleep", "600"])
    rootfs = os.path.join(bundle, "rootfs")
    cfg = h.config(["sleep", "600"], root={"path": "rootfs" if snapshot else h.rootfs, "readonly": True})
    cfg["hooks"] = {"createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", "sleep 1.5"]}]}
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(cfg, f)
    shim = Shim(h, bundle, cid)
    mounts = [types_pb2.Mount(type="bind", source=h.rootfs, options=["rbind", "ro"])] if snapshot else []
    request = task_pb2.CreateTaskRequest(id=cid, bundle=bundle, rootfs=mounts)
    first: list = []
    creating = threading.Thread(target=lambda: first.append(shim.call("Create", request, timeout=30)))
    try:
        creating.start()
        time.sleep(0.5)  # the first is in its createRuntime hook
        began = time.monotonic()
        with pytest.raises(ttrpc.TTRPCError) as refused:
            shim.call("Create", request, timeout=30)
        assert refused.value.code == ttrpc.ALREADY_EXISTS, refused.value.message
        assert time.monotonic() - began < 0.5, "the second create waited for the first"
        creating.join(30)
        assert first, "the first create failed"
        assert _mounted_at(rootfs) == (1 if snapshot else 0)
        shim.call("Start", task_pb2.StartRequest(id=cid))
        state = task_pb2.StateResponse.FromString(shim.call("State", task_pb2.StateRequest(id=cid)))
        assert state.status == types_pb2.RUNNING
    finally:
        creating.join(30)
        shim.finish(*([cid] if first else []))
    assert not _mounted_at(rootfs)

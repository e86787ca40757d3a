"""The runtime's logic in-process, without root: the kernel seam (mrun.operations.host) is a
recording double (hostdouble.py), so these tests see the order of what the runtime asks of the
kernel — the steps of a create, the undo of a failed one, which process a verb signals — and the
status transitions, in milliseconds. The real-kernel tests stay (test_lifecycle, test_sandbox...)."""

from __future__ import annotations

import json
import os

import pytest
from hostdouble import FakeBackends, RecordingHost
from mrun.defaults import default_spec
from mrun.errors import InvalidState, MrunError
from mrun.runtime import Runtime
from mrun.status import Status


@pytest.fixture
def world(tmp_path):
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir()
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    spec = default_spec()
    spec["process"]["terminal"] = False
    spec["root"] = {"path": str(rootfs)}
    spec["linux"]["cgroupsPath"] = "/mrun-unit/c1"
    (bundle / "config.json").write_text(json.dumps(spec))

    def make(**host_args):
        host = RecordingHost(**host_args)
        return Runtime(str(tmp_path / "state"), backends=FakeBackends(host), host=host), host, str(bundle)

    return make


def test_create_runs_its_steps_in_order_and_ends_created(world):
    rt, host, bundle = world()
    record = rt.create("c1", bundle)
    names = [c[0] for c in host.calls]
    assert names == ["new_cgroup", "cgroup.plan", "cgroup.create", "prepare", "spawn"]
    assert rt.status(rt.store.load("c1")) == Status.CREATED
    assert record.pid in host.running and record.pid_start == 1000 + record.pid


@pytest.mark.parametrize(
    "fail_at, undone",
    [
        ("cgroup.create", ["cgroup.destroy"]),
        ("prepare", ["cgroup.destroy"]),
        ("init", ["kill", "cgroup.destroy"]),  # the init reported an error: it is killed, then the rest
    ],
)
def test_a_failed_create_undoes_exactly_what_was_done_last_first(world, fail_at, undone):
    init_says = [{"error": "process.args: no such file"}] if fail_at == "init" else None
    rt, host, bundle = world(fail_at=fail_at, init_says=init_says)
    with pytest.raises((MrunError, OSError)):
        rt.create("c1", bundle)
    made = {"cgroup.create": 3, "prepare": 4, "init": 5}[fail_at]
    assert [c[0] for c in host.calls[made:]] == undone
    assert not os.path.exists(rt.store.path("c1")), "the state directory outlived the failed create"
    assert not host.running


def test_status_follows_the_process_the_fifo_and_the_freezer(world):
    rt, host, bundle = world()
    record = rt.create("c1", bundle)
    os.unlink(rt.store.path("c1", "exec.fifo"))  # what `start` does once the init read it
    assert rt.status(record) == Status.RUNNING
    rt.pause("c1")
    assert ("cgroup.set_frozen", "c1", True) in host.calls and rt.status(record) == Status.PAUSED
    with pytest.raises(InvalidState, match="it is paused, not running"):
        rt.pause("c1")
    rt.resume("c1")
    assert rt.status(record) == Status.RUNNING
    rt.kill("c1", 15)
    assert host.calls[-1] == ("kill", record.pid, 15)  # the init, by the pid the state recorded
    rt.kill("c1", 9)
    assert rt.status(record) == Status.STOPPED
    with pytest.raises(InvalidState, match="container not running"):
        rt.kill("c1", 15)
    rt.delete("c1")
    assert ("cgroup.destroy", "c1") in host.calls and not os.path.exists(rt.store.path("c1"))


def test_delete_force_of_a_running_container_kills_then_destroys(world):
    rt, host, bundle = world()
    record = rt.create("c1", bundle)
    os.unlink(rt.store.path("c1", "exec.fifo"))
    with pytest.raises(InvalidState, match="stop it first or use --force"):
        rt.delete("c1")
    rt.delete("c1", force=True)
    tail = [c[0] for c in host.calls[-3:]]
    assert tail == ["cgroup.kill_all", "kill", "cgroup.destroy"] and record.pid not in host.running


def test_the_shim_task_service_in_process(world):
    """containerd.task.v2/v3 over the same double: Create through a stand-in fork helper, State
    read off the core's status, Kill to the recorded pid, an exit, Delete — no root, no fork."""
    import socket
    import threading

    from mrun.shims import spawner
    from mrun.shims.proto import task_pb2, types_pb2
    from mrun.shims.service import TaskService

    rt, host, bundle = world()
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)

    def helper() -> None:  # the fork helper's protocol, answered in-process
        try:
            while (got := spawner.recv(theirs)) is not None:
                msg, fds = got
                for fd in fds:
                    os.close(fd)
                try:
                    answer = {"pid": rt.create(msg["id"], msg["bundle"]).pid}
                except Exception as e:  # noqa: BLE001 - the service reports it: the test fails, not hangs
                    answer = {"error": f"{e.__class__.__name__}: {e}"}
                spawner.send(theirs, answer, [])
        except BaseException:
            theirs.shutdown(socket.SHUT_RDWR)  # a helper that dies is EOF to the service, as a real one's
            raise

    thread = threading.Thread(target=helper, daemon=True)
    thread.start()
    service = TaskService("unit", rt.store.root, ours, None, runtime=rt)
    created = task_pb2.CreateTaskResponse.FromString(
        service.create(task_pb2.CreateTaskRequest(id="c1", bundle=bundle).SerializeToString(), None)
    )
    state = task_pb2.StateResponse.FromString(service.state(task_pb2.StateRequest(id="c1").SerializeToString(), None))
    assert (state.pid, state.status) == (created.pid, types_pb2.CREATED)
    service.kill(task_pb2.KillRequest(id="c1", signal=9).SerializeToString(), None)
    assert host.calls[-1] == ("kill", created.pid, 9)
    service._exited(service.tasks["c1"], 9)  # what the reaper does with waitpid's status
    state = task_pb2.StateResponse.FromString(service.state(task_pb2.StateRequest(id="c1").SerializeToString(), None))
    assert (state.status, state.exit_status) == (types_pb2.STOPPED, 137)
    deleted = task_pb2.DeleteResponse.FromString(
        service.delete(task_pb2.DeleteRequest(id="c1").SerializeToString(), None)
    )
    assert deleted.exit_status == 137 and "c1" not in service.tasks and not os.path.exists(rt.store.path("c1"))
    ours.close()
    thread.join(10)  # it reads EOF and stops: not closed under its read
    theirs.close()


def test_an_orphans_exit_is_never_taken_for_a_later_tasks(world):
    """The shim is a subreaper: orphans reparented to it (the pristine copy of a fork helper that
    died, an intermediate) are reaped like its tasks. An exit reaped before a Create began is not
    that Create's init's, even with the same number; one reaped during it (an init that ended
    before its pid was recorded) is."""
    import socket
    import threading

    from mrun.shims import spawner
    from mrun.shims.proto import task_pb2, types_pb2
    from mrun.shims.service import TaskService

    rt, _host, bundle = world()
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    service = TaskService("unit", rt.store.root, ours, None, runtime=rt)

    def helper() -> None:  # the fork helper's protocol, answered in-process
        while (got := spawner.recv(theirs)) is not None:
            msg, fds = got
            for fd in fds:
                os.close(fd)
            pid = rt.create(msg["id"], msg["bundle"]).pid
            if msg["id"] == "ends-at-once":
                service._reaped(pid, 3 << 8)  # reaped before the answer: exit status 3
            spawner.send(theirs, {"pid": pid}, [])

    thread = threading.Thread(target=helper, daemon=True)
    thread.start()

    def state(cid: str) -> tuple[int, int]:
        got = task_pb2.StateResponse.FromString(service.state(task_pb2.StateRequest(id=cid).SerializeToString(), None))
        return got.status, got.exit_status

    try:
        service._reaped(40000, 0)  # an orphan that had the number the double gives the next init
        for cid in ("lives", "ends-at-once"):
            created = task_pb2.CreateTaskResponse.FromString(
                service.create(task_pb2.CreateTaskRequest(id=cid, bundle=bundle).SerializeToString(), None))
            assert created.pid == {"lives": 40000, "ends-at-once": 40001}[cid]
        assert state("lives")[0] == types_pb2.CREATED, "an orphan's exit was taken for the task's"
        assert state("ends-at-once") == (types_pb2.STOPPED, 3)
    finally:
        ours.close()  # the helper thread reads its end, and stops
        thread.join(10)
        theirs.close()  # not under its read: that was EBADF in the thread, reported by a later test

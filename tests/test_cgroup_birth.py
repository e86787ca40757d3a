"""A container's process, and an exec'd one, is born in its cgroup2 cgroup (clone3 with
CLONE_INTO_CGROUP, as runc and crun start theirs) instead of being forked in its creator's and
moved: a move there takes the kernel's global threadgroup lock, whose first writer after a quiet
spell waits an RCU grace period holding cgroup_mutex (~10 ms of every create on a v2 or hybrid
host; bench/lifecycle.py). Where the kernel refuses the birth (before 5.7, under a seccomp filter,
a cgroup that takes no process) the process is forked and moved as before, with the same result.

Driven through mrun.sandbox.launch itself, with the move recorded instead of made: where the
process is when its own code first runs can then only be where it was born."""

from __future__ import annotations

import os
import time
import uuid

import pytest
from conftest import running


def _cgroup2_mount() -> str | None:
    with open("/proc/self/mountinfo") as f:  # read here, not through the code under test
        for line in f:
            fields, _, fs = line.partition(" - ")
            if fs.split()[0] == "cgroup2":
                return fields.split()[4]
    return None


def _own_cgroup2_path(pid: str = "self") -> str:
    with open(f"/proc/{pid}/cgroup") as f:
        return next(line.split("::", 1)[1].strip() for line in f if line.startswith("0::"))


@pytest.fixture
def cgroup2_dir():
    """A cgroup of the test's own in the cgroup2 hierarchy (a hybrid host's or a v2 host's)."""
    mount = _cgroup2_mount()
    if mount is None:
        pytest.skip("no cgroup2 hierarchy on this host (pure cgroup v1): nothing to be born in")
    path = os.path.join(mount, f"mrun-test-birth-{uuid.uuid4().hex[:8]}")
    os.mkdir(path)
    try:
        yield path
    finally:
        os.rmdir(path)


def _says_its_cgroup(ch) -> None:
    """The container's process in miniature: where it is, the first thing its own code does;
    then it waits for the host's last word, as an init does."""
    from mrun.sandbox.launch import await_key

    ch.send(cgroup2=_own_cgroup2_path())
    await_key(ch, "cgrouped", ch.seen)


def _spawn(namespaces: dict[str, str], born_in: str, copy=None) -> tuple[str, list[tuple[int, bool]], bool]:
    """-> (the cgroup2 path the process saw, the moves the host was asked for, launch.born).
    ``copy``: a pristine copy (mrun.sandbox.pristine) to take the launch."""
    from mrun.sandbox import launch

    moves: list[tuple[int, bool]] = []
    plan = launch.Launch(namespaces, _says_its_cgroup, add_to_cgroup=lambda pid, born: moves.append((pid, born)),
                         thread_files=lambda born: [], born_in=born_in, pristine=copy)
    pid, ch = launch.spawn(plan)
    try:
        msg = ch.recv()
        while "cgroup2" not in msg:
            assert not {"eof", "error"} & msg.keys(), msg
            msg = ch.recv()
    finally:
        ch.close()
        if copy is None:
            os.waitpid(pid, 0)
        else:  # the copy's child, whose reaper is ours: it ends once it sees the channel closed
            assert copy.handed and pid != copy.pid
            _wait_gone(pid)
    assert [p for p, _ in moves] == [pid]
    return msg["cgroup2"], moves, plan.born


def _wait_gone(pid: int) -> None:
    deadline = time.monotonic() + 10
    while running(pid):
        assert time.monotonic() < deadline, f"{pid} did not end"
        time.sleep(0.01)


@pytest.mark.parametrize("namespaces", [{}, {"pid": ""}], ids=["its caller's PID namespace", "a new PID namespace"])
@pytest.mark.parametrize("where", ["its cgroup", "no cgroup"])
def test_a_pristine_copy_forks_the_process_born_in_its_cgroup2_cgroup(tmp_path, cgroup2_dir, namespaces, where,
                                                                      monkeypatch):
    """The shim worker's pristine copy (mrun.sandbox.pristine), made before the container's cgroup
    was, is a plain copy where births work: it forks the container's process born in the cgroup,
    as the host would, and says so; the host moves it nowhere there (the copy itself would have
    to be moved: ~10 ms of a wasm Create, the grace period's). A refused birth (a directory that
    is no cgroup): a fork, moved by the host, told so."""
    from mrun.sandbox import pristine

    monkeypatch.setattr(pristine, "_births", None)  # asked afresh, of this host
    pristine.arm()
    copy = pristine.armed()
    try:
        assert not copy.pid_namespace, "births work here, and the copy was made PID 1 of its own PID namespace"
        target = cgroup2_dir if where == "its cgroup" else str(tmp_path)
        seen, moves, born = _spawn(namespaces, target, copy)
    finally:
        pristine.disarm()
    if where == "its cgroup":
        assert seen == "/" + os.path.basename(cgroup2_dir), "the process was not born in its cgroup2 cgroup"
        assert born and moves[0][1] is True, "the host was not told that no move into the cgroup2 cgroup is needed"
    else:
        assert seen == _own_cgroup2_path()
        assert not born and moves[0][1] is False


@pytest.mark.parametrize("namespaces", [{}, {"pid": ""}], ids=["its caller's PID namespace", "a new PID namespace"])
def test_the_process_is_born_in_its_cgroup2_cgroup(cgroup2_dir, namespaces):
    from mrun.kernel import syscalls

    assert syscalls.clone_into_cgroup_works(), "Linux >= 5.7 here: clone3 must take CLONE_INTO_CGROUP"
    seen, moves, born = _spawn(namespaces, cgroup2_dir)
    assert seen == "/" + os.path.basename(cgroup2_dir), "the process was not born in its cgroup2 cgroup"
    assert born and moves[0][1] is True, "the host was not told that no move into the cgroup2 cgroup is needed"


@pytest.mark.parametrize("namespaces", [{}, {"pid": ""}], ids=["its caller's PID namespace", "a new PID namespace"])
def test_a_refused_birth_is_a_fork_and_a_move_as_before(tmp_path, cgroup2_dir, namespaces):
    """A directory that is no cgroup: clone3 refuses it (EBADF), as it refuses any birth it cannot
    make; the process is forked where its creator is, and the host moves it, told so. A refused
    first process leaves a new PID namespace taking no other (the fork after it failed, ENOMEM):
    the fork goes into a fresh one."""
    seen, moves, born = _spawn(namespaces, str(tmp_path))
    assert seen == _own_cgroup2_path()
    assert not born and moves[0][1] is False


def test_with_another_thread_alive_the_process_is_forked_by_glibc_and_moved(cgroup2_dir):
    """A raw clone3 skips glibc's fork, which takes malloc's and stdio's locks so that no other
    thread holds one in the child: with a thread alive, the birth is not tried."""
    import threading

    release = threading.Event()
    thread = threading.Thread(target=release.wait)
    thread.start()
    try:
        seen, moves, born = _spawn({"pid": ""}, cgroup2_dir)
    finally:
        release.set()
        thread.join()
    assert seen == _own_cgroup2_path()
    assert not born and moves[0][1] is False


def test_the_v1_and_v2_drivers_move_a_born_process_into_the_rest_only(tmp_path):
    """Born in the cgroup2 directory (birth_dir), a process is still moved into a hybrid host's
    v1 hierarchies, through their thread-wise files; never again into the cgroup2 one."""
    from mrun.cgroups.v1 import UNIFIED, CgroupV1
    from mrun.cgroups.v2 import CgroupV2
    from mrun.errors import MrunError

    v1 = CgroupV1({"memory": "/sys/fs/cgroup/memory/x", "pids": "/sys/fs/cgroup/pids/x",
                   UNIFIED: "/sys/fs/cgroup/unified/x"})
    assert v1.birth_dir() == "/sys/fs/cgroup/unified/x"
    assert v1.thread_files(born=True) == ["/sys/fs/cgroup/memory/x/tasks", "/sys/fs/cgroup/pids/x/tasks"]
    assert "/sys/fs/cgroup/unified/x/cgroup.procs" in v1.thread_files()
    assert CgroupV1({"memory": "/sys/fs/cgroup/memory/x"}).birth_dir() is None  # a pure v1 host
    v2 = CgroupV2(str(tmp_path / "c"))
    assert v2.birth_dir() == str(tmp_path / "c")
    v2.add(os.getpid(), born=True)  # nothing to move: no write (the directory does not even exist)
    with pytest.raises(MrunError, match="cgroup.procs does not exist"):
        v2.add(os.getpid())  # not born there: moved

"""A pristine init (mrun.sandbox.pristine): the shim's create worker forks a copy of itself before
it plans anything, and once it has, sends the copy the plan; the copy, PID 1 of a PID namespace
made for it, becomes the container's process (or, where none could be made, plays the
intermediate and forks it).
What the container sees must be what a fork at that moment gives: the same descriptors at the
same numbers, nothing of the copy's own; whatever cannot travel (a compiled module the warm
template does not keep), or a copy that died, means a fork as before; the worker reaps its copy,
used or not, so none is ever left to the daemon."""

from __future__ import annotations

import functools
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest
from conftest import children_of, open_to_others
from test_wasm import example, example_path, make, wasm_bundle


def _open_descriptors() -> dict[str, str]:
    """Number -> what it is (the listing's own descriptor, gone once read, left out)."""
    fds = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            fds[name] = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            pass
    return fds


def _host_ids() -> tuple[int, int]:
    """(our pid, our parent's) as the host sees them: /proc here is still the host's, which
    shows them in its own PID namespace (inside a new one, getpid() says 1 and getppid() 0)."""
    fields = open("/proc/self/stat").read().rsplit(")", 1)[1].split()
    return int(open("/proc/self/stat").read().split()[0]), int(fields[1])


def _says_its_descriptors(ch) -> None:
    """A container's process in miniature (launch.Launch.child): its descriptors, by number, and
    what each is, back to the host; then, as an init does, it waits for the host's last word
    (which would find the pipe closed if it had gone). Module-level: it is pickled by name."""
    from mrun.sandbox.launch import await_key

    me, parent = _host_ids()
    ch.send(fds=_open_descriptors(), me=me, parent=parent)  # "pid" is the intermediate's word
    await_key(ch, "cgrouped", ch.seen)


def _said(ch) -> dict:
    """The child's report (messages before it are the launch's own)."""
    msg = ch.recv()
    while "fds" not in msg:
        assert "eof" not in msg and "error" not in msg, msg
        msg = ch.recv()
    return msg


def _launch(copy, child=_says_its_descriptors, namespaces=None):
    """A launch into a new PID namespace (what nearly every container asks for), the copy's to take."""
    from mrun.sandbox.launch import Launch

    return Launch({"pid": ""} if namespaces is None else namespaces, functools.partial(child), pristine=copy)


@pytest.fixture(params=["PID 1 of its own PID namespace", "plain"])
def copy_kind(request, monkeypatch) -> str:
    """Which copy ``pristine.arm`` makes: a plain one where a container's process can be born in
    its cgroup2 cgroup (the copy forks it: pristine.births_here), else one made PID 1 of a PID
    namespace of its own, which is the container's process itself. Both, on any host."""
    from mrun.sandbox import pristine

    monkeypatch.setattr(pristine, "_births", request.param == "plain")
    return request.param


def test_the_copy_holds_the_senders_descriptors_at_their_numbers_and_nothing_of_its_own(copy_kind):
    """Descriptors opened after the copy was made reach it at the same numbers (inheritable ones
    and close-on-exec ones alike: a fork would have passed both); its socket to the sender does
    not; and the copy, PID 1 of the PID namespace it was made in, is the container's process
    itself, or, a plain copy, forks it into a new one as the host would; the process answers on
    the channel; the create's end does not wait for either."""
    from mrun.sandbox import launch, pristine

    pristine.arm()
    copy = pristine.armed()
    assert copy.pid_namespace is (copy_kind != "plain")
    was_subreaper = _subreaper(False)  # an orphan must not come to us (see "not forked by the copy")
    late_r, late_w = os.pipe()  # after the copy was made: it can only have them by hand-over
    os.set_inheritable(late_w, True)
    free = max(int(fd) for fd in os.listdir("/proc/self/fd")) + 10  # a number nothing holds (was 77, which
    moved = os.dup2(late_r, free, inheritable=False)  # earlier tests' descriptors could reach in one process)
    try:
        pid, ch = launch.spawn(_launch(copy))
        ours = _open_descriptors()  # the channel's pipes still open at our end too
        msg = _said(ch)
        ch.close()
        assert copy.handed and pristine.handed_over()
        if copy.pid_namespace:
            assert msg["me"] == pid == copy.pid, "the container's process is not the copy"
        else:
            # The copy, or whoever took its orphan once it had gone (it exits once it has said "pid",
            # as an intermediate does, and may be gone before the process reads its parent): not us
            assert msg["me"] == pid != copy.pid and msg["parent"] != os.getpid(), "not forked by the copy"
        assert os.readlink(f"/proc/{pid}/ns/pid") != os.readlink("/proc/self/ns/pid")
        assert open(f"/proc/{pid}/status").read().split("NSpid:")[1].split()[1] == "1"
        seen = msg["fds"]
        for fd in (late_w, moved, 0, 1, 2):
            assert seen.get(str(fd)) == os.readlink(f"/proc/self/fd/{fd}"), (fd, seen)
        assert copy.sock.fileno() == -1
        assert set(seen.values()) <= set(ours.values()), seen  # nothing of its own
        copy_pid = copy.pid
        pristine.disarm()  # the container's now: not reaped here (it may have ended: we closed its channel)
        os.kill(pid, signal.SIGKILL)
        if copy_kind == "plain":  # the copy exited once it had said the pid; disarm reaped it
            with pytest.raises(ChildProcessError):
                os.waitpid(copy_pid, 0)
        else:  # our test's container: its reaper (here, us) waits
            assert os.waitpid(pid, 0)[0] == pid, "disarm reaped the container's process"
    finally:
        pristine.disarm()
        for fd in (late_r, late_w, moved):
            os.close(fd)
        _subreaper(was_subreaper)


def _subreaper(on: bool) -> bool:
    """Set whether this process is a child subreaper (an in-process test of exec may have made
    it one); -> whether it was."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    was = ctypes.c_int(0)
    assert libc.prctl(37, ctypes.byref(was), 0, 0, 0) == 0  # PR_GET_CHILD_SUBREAPER
    assert libc.prctl(36, ctypes.c_ulong(int(on)), 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER
    return bool(was.value)


def test_where_no_pid_namespace_can_be_made_for_it_the_copy_forks_the_containers_process(monkeypatch):
    """unshare(CLONE_NEWPID) refused when the copy is made (as in a user namespace we do not own):
    a plain copy, which plays the intermediate: it makes the container's PID namespace and forks
    the process into it, and is reaped by ``disarm``."""
    from mrun.kernel import syscalls as sc
    from mrun.sandbox import launch, pristine

    real, us = sc.unshare, os.getpid()
    monkeypatch.setattr(pristine, "_births", False)  # else the copy is a plain one anyway

    def refuse_pid(flags: int) -> None:
        if flags == sc.CLONE_NEWPID and os.getpid() == us:  # the copy, forked with this, may
            raise PermissionError(1, "Operation not permitted")
        real(flags)

    monkeypatch.setattr(sc, "unshare", refuse_pid)
    pristine.arm()
    monkeypatch.setattr(sc, "unshare", real)
    copy = pristine.armed()
    assert not copy.pid_namespace
    assert os.readlink(f"/proc/{copy.pid}/ns/pid_for_children") == os.readlink("/proc/self/ns/pid")
    try:
        pid, ch = launch.spawn(_launch(copy))
        msg = _said(ch)
        ch.close()
        assert copy.handed and msg["me"] == pid != copy.pid  # its parent, the copy, may have gone by now
        assert open(f"/proc/{pid}/status").read().split("NSpid:")[1].split()[1] == "1"
        copy_pid = copy.pid
        pristine.disarm()  # reaps the intermediate: it exited once it had said the pid
        with pytest.raises(ChildProcessError):
            os.waitpid(copy_pid, 0)
        os.kill(pid, signal.SIGKILL)  # reparented to our reaper (init): ours ends with the test
    finally:
        pristine.disarm()


@pytest.mark.parametrize("case", ["copy died waiting", "plan cannot travel", "too many descriptors",
                                  "no new PID namespace"])
def test_what_cannot_be_handed_over_means_a_fork_as_before(case, monkeypatch):
    """The host forks the process itself; the copy is let go, and reaped by ``disarm``. A copy
    made in a PID namespace of its own can be no other container's process (the host's PID
    namespace, or one joined, is not below its own)."""
    from mrun.sandbox import launch, pristine

    monkeypatch.setattr(pristine, "_births", False)  # the copy made PID 1 of its own PID namespace
    pristine.arm()
    copy = pristine.armed()
    assert copy.pid_namespace
    child, many, namespaces = _says_its_descriptors, [], None
    if case == "copy died waiting":
        os.kill(copy.pid, signal.SIGKILL)
        while open(f"/proc/{copy.pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z":  # dead before the hand-over
            time.sleep(0.01)
    elif case == "plan cannot travel":
        child = lambda ch: _says_its_descriptors(ch)  # noqa: E731 - a lambda: pickle refuses it
    elif case == "too many descriptors":
        many = [os.open(os.devnull, os.O_RDONLY) for _ in range(pristine.MAX_FDS + 5)]
    else:
        namespaces = {}
    copy_pid = copy.pid
    try:
        pid, ch = launch.spawn(_launch(copy, child=child, namespaces=namespaces))
        msg = _said(ch)
        ch.close()
        assert msg["parent"] == os.getpid(), "not forked by the host"
        assert not copy.handed and copy.sock.fileno() == -1, "the copy was not let go"
        pristine.disarm()  # reaps it: not on the create's path
        with pytest.raises(ChildProcessError):
            os.waitpid(copy_pid, 0)
        os.waitpid(pid, 0)
    finally:
        pristine.disarm()
        for fd in many:
            os.close(fd)


def test_an_intermediate_killed_after_its_fork_does_not_leave_the_host_waiting():
    """The copy (or the userns intermediate) forks the container's process, which holds the
    channel and waits for the host; killed before it reported that process's pid, it used to leave
    the host waiting for good (a create that never answered: seen once in 40 runs of the kill test
    below). Its death now ends the wait as the end of the channel would."""
    from mrun.sandbox import launch

    host, child = launch.Channel.pair()
    said_r, said_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the intermediate
        host.close()
        os.close(said_r)
        grandchild = os.fork()
        if grandchild == 0:  # the container's process: it outlives the intermediate, channel open
            time.sleep(30)
            os._exit(0)
        os.write(said_w, str(grandchild).encode())
        os._exit(0)  # dies without a word
    child.close()
    os.close(said_w)
    grandchild = int(os.read(said_r, 32))
    os.close(said_r)
    watched = launch._pidfd(pid)
    assert watched is not None, "no pidfd_open here (Linux < 5.3): the wait cannot watch the intermediate"
    try:
        started = time.monotonic()
        assert launch._from_intermediate(host, watched) == {"eof": True}
        assert time.monotonic() - started < 5
        host.held.append({"pid": 7})  # and what came first is read first, as host.recv reads it
        assert launch._from_intermediate(host, watched) == {"pid": 7}
    finally:
        os.close(watched)
        os.kill(grandchild, signal.SIGKILL)
        os.waitpid(pid, 0)
        host.close()


# -- through a real fork helper, as the shim daemon starts one ---------------------------------


def _helper(env: dict[str, str], warm_wasm: bool) -> tuple[socket.socket, subprocess.Popen]:
    """A fork helper (mrun.shims.spawner), with the wasm cache deserialized in it first as the warm
    template does (``warm_wasm``): then a compiled module can travel to the copy."""
    ours, theirs = socket.socketpair()
    code = "import sys; from mrun.shims.spawner import main; main(int(sys.argv[1]))"
    if warm_wasm:
        code = "from mrun.backends.wasm import mrun_warm; mrun_warm(); " + code
    helper = subprocess.Popen([sys.executable, "-c", code, str(theirs.fileno())], pass_fds=(theirs.fileno(),),
                              stdin=subprocess.DEVNULL, env={**os.environ, "MRUN_WARM": "0", **env})
    theirs.close()
    return ours, helper


def _descriptors(pid: int, cid: str) -> list[tuple[int, str]]:
    """What ``pid`` holds, by number; the kernel's object numbers and the container's id left out."""
    out = []
    for name in sorted(os.listdir(f"/proc/{pid}/fd"), key=int):
        target = re.sub(r"\[\d+\]", "[]", os.readlink(f"/proc/{pid}/fd/{name}")).replace(cid, "ID")
        out.append((int(name), target))
    return out


def _run(h, ours, state: str, cid: str, bundle: str, out_path: str, more: bool = False
         ) -> tuple[dict, list[tuple[int, str]], str]:
    """Create through the helper, look at the waiting init, start it, let it end. -> (the helper's
    answer, the init's descriptors before start, what it wrote). ``more``: as a pod's shim asks."""
    from mrun.shims import spawner

    with open(os.devnull, "rb") as null, open(out_path, "wb") as out:
        spawner.send(ours, {"id": cid, "bundle": bundle, "root": state, "more": more},
                     [null.fileno(), out.fileno(), out.fileno()])
    answer = spawner.recv(ours)[0]
    assert "pid" in answer, answer
    # Once settled: the answer may come a moment before the init has closed everything it is to
    # close (seen on a loaded machine: two pipes listed, gone when their holders were looked up).
    # Pipes that stay are still a difference, and fail below.
    fds, deadline = _descriptors(answer["pid"], cid), time.monotonic() + 5
    while (again := _descriptors(answer["pid"], cid)) != fds or any(t == "pipe:[]" for _, t in fds):
        if time.monotonic() > deadline:
            break
        fds = again
        time.sleep(0.05)
    subprocess.run([h.binary, "--root", state, "start", cid], check=True, capture_output=True, timeout=30)
    deadline = time.monotonic() + 20
    while os.path.exists(f"/proc/{answer['pid']}") and open(f"/proc/{answer['pid']}/stat").read().split()[2] != "Z":
        assert time.monotonic() < deadline, "the container did not end"
        time.sleep(0.02)
    subprocess.run([h.binary, "--root", state, "delete", "--force", cid], check=True, capture_output=True)
    with open(out_path) as f:
        return answer, fds, f.read()


def _precompile(env: dict[str, str], path: str) -> None:
    """Into the cache a helper made with ``warm_wasm`` deserializes: as the warm template has it."""
    subprocess.run([sys.executable, "-c", "import sys; from mrun.backends.wasm import mrun_precompile; "
                    "assert mrun_precompile(sys.argv[1])", path], env={**os.environ, **env}, check=True)


@pytest.mark.parametrize("kind", ["wasm", "wasm-userns", "linux"])
def test_an_init_from_the_copy_is_the_init_a_fork_makes(h, tmp_path, kind):
    """The same container through a helper with copies and through one without (MRUN_PRISTINE=0):
    the same output, and before `start` the same descriptors. A wasm module travels when kept by
    the process the copy came from (the warm template's cache). In a user namespace (which must
    own the container's PID namespace, made after it) the copy, made in a PID namespace of its
    own, cannot be the container's process: it is forked as before. A Linux init, which execs and
    keeps none of the copy's pages, is born in its cgroup2 cgroup where the host has one (cheaper
    than the copy's move there: operations.builder.pristine_copy_for) and comes from the copy
    where it has none; either way what it execs sees what a fork's would (descriptors, output).
    Where processes can be born in their cgroup2 cgroup the copy is a plain one, which forks the
    container's process (born there) or, in a user namespace, plays the intermediate."""
    from mrun.kernel.syscalls import clone_into_cgroup_works
    from test_cgroup_birth import _cgroup2_mount

    births = _cgroup2_mount() is not None and clone_into_cgroup_works()
    born = kind == "linux" and births
    env = {"MRUN_CACHE_DIR": str(tmp_path / "cache")}
    _precompile(env, example_path("hello.wasm"))
    state = str(tmp_path / "shim-root")
    results = {}
    for variant, extra in (("pristine", {}), ("fork", {"MRUN_PRISTINE": "0"})):
        ours, helper = _helper({**env, **extra}, warm_wasm=True)
        cid = h.cid(f"{kind[0]}{variant[0]}")
        try:
            if kind == "linux":
                bundle = h.bundle(config=h.config(["sh", "-c", "ls /proc/self/fd; echo done"]))
            else:
                cfg, base = wasm_bundle(h, example("hello.wasm"), args=["/app.wasm", "0"])
                if kind == "wasm-userns":
                    open_to_others(cfg["root"]["path"])  # the mapped root must reach the rootfs: pytest's dirs are 0700
                    cfg["linux"]["namespaces"].append({"type": "user"})
                    cfg["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 200000, "size": 65536}]
                    cfg["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 200000, "size": 65536}]
                bundle = make(h, cfg, base)
            results[variant] = _run(h, ours, state, cid, bundle, str(tmp_path / f"{cid}.out"))
        finally:
            ours.close()
            helper.wait(timeout=10)
    (answer, fds, out), (answer_fork, fds_fork, out_fork) = results["pristine"], results["fork"]
    assert answer.get("pristine") is (None if (kind == "wasm-userns" and not births) or born else True), \
        (answer, born)
    assert "pristine" not in answer_fork, answer_fork
    expected = "0\n1\n2\n3\ndone\n" if kind == "linux" else "hello from wasm32-wasi: [/app.wasm] [0]\n"
    assert out == out_fork and out.startswith(expected), (out, out_fork)
    # The same stdio, and the same files besides: above 2 the numbers are whatever was free when
    # each was opened, and a worker beside a waiting copy holds one descriptor more (its socket).
    assert fds[:3] == fds_fork[:3] and sorted(t for _, t in fds[3:]) == sorted(t for _, t in fds_fork[3:]), \
        "\n".join(map(str, [*fds, "--", *fds_fork]))


def test_a_pods_next_create_finds_its_worker_forked_and_its_copy_armed(h, tmp_path):
    """A pod's creates (the daemon says "more": another will come) are served by a worker the
    helper forked ahead, its pristine copy already armed, with the output a worker forked on
    request gives. A spare that died waiting is passed over (a worker is forked as before); after
    a create that says no more, no spare is kept; a helper that goes takes its spare along."""
    env = {"MRUN_CACHE_DIR": str(tmp_path / "cache")}
    _precompile(env, example_path("hello.wasm"))
    state = str(tmp_path / "shim-root")
    ours, helper = _helper(env, warm_wasm=True)

    def create(i: int, more: bool) -> dict:
        cid = h.cid(f"s{i}")
        bundle = make(h, *wasm_bundle(h, example("hello.wasm"), ["/app.wasm", str(i)]))
        answer, _fds, out = _run(h, ours, state, cid, bundle, str(tmp_path / f"{cid}.out"), more=more)
        assert out.startswith(f"hello from wasm32-wasi: [/app.wasm] [{i}]"), (answer, out)
        time.sleep(0.2)  # the worker is reaped, and the next spare forked, after the answer
        return answer

    try:
        create(0, more=True)
        answer = create(1, more=True)
        assert answer.get("spare") and answer.get("pristine"), answer
        (waiting,) = children_of(helper.pid)
        os.kill(waiting, signal.SIGKILL)
        time.sleep(0.2)
        answer = create(2, more=True)
        assert "spare" not in answer and answer.get("pristine"), answer
        answer = create(3, more=False)
        assert answer.get("spare"), answer
        assert children_of(helper.pid) == [], "a spare was kept after a create that said no more"
        create(4, more=True)
        (waiting,) = children_of(helper.pid)
    finally:
        ours.close()
        helper.wait(timeout=10)
    assert not os.path.exists(f"/proc/{waiting}"), "the helper's spare outlived it"


def test_a_spare_nobody_takes_is_let_go(h, tmp_path):
    """A spare waits MRUN_SPARE_IDLE seconds for a create (an idle pair costs a pod ~2 MiB), then
    goes with its copy, reaped by the helper; the next create is forked as before."""
    env = {"MRUN_CACHE_DIR": str(tmp_path / "cache"), "MRUN_SPARE_IDLE": "0.5"}
    _precompile(env, example_path("hello.wasm"))
    ours, helper = _helper(env, warm_wasm=True)
    try:
        deadline = time.monotonic() + 10
        while not children_of(helper.pid):  # the one a helper forks once it has loaded (slower on a busy node)
            assert time.monotonic() < deadline, "the helper forked no spare"
            time.sleep(0.01)
        (waiting,) = children_of(helper.pid)
        deadline = time.monotonic() + 10
        while children_of(helper.pid):
            assert time.monotonic() < deadline, "the unused spare was kept"
            time.sleep(0.05)
        assert not os.path.exists(f"/proc/{waiting}")
        cid = h.cid("late")
        bundle = make(h, *wasm_bundle(h, example("hello.wasm"), ["/app.wasm", "7"]))
        answer, _fds, out = _run(h, ours, str(tmp_path / "shim-root"), cid, bundle, str(tmp_path / "out"))
        assert "spare" not in answer and out.startswith("hello from wasm32-wasi: [/app.wasm] [7]"), (answer, out)
    finally:
        ours.close()
        helper.wait(timeout=10)


def test_a_wasm_module_nobody_keeps_does_not_travel_and_the_create_forks_as_before(h, tmp_path):
    """A helper without the warm template's kept modules: the init is forked as before, and the
    copy made for the create is let go and reaped."""
    env = {"MRUN_CACHE_DIR": str(tmp_path / "cache")}
    ours, helper = _helper(env, warm_wasm=False)
    cid = h.cid("unkept")
    try:
        cfg, base = wasm_bundle(h, example("hello.wasm"), args=["/app.wasm", "0"])
        answer, _fds, out = _run(h, ours, str(tmp_path / "shim-root"), cid, make(h, cfg, base),
                                 str(tmp_path / "out"))
        time.sleep(0.2)  # the answer goes before the worker and the copy are reaped
        assert children_of(helper.pid) == [], "the worker or the unused copy outlived the create"
    finally:
        ours.close()
        helper.wait(timeout=10)
    assert "pristine" not in answer and "hello from wasm32-wasi" in out


def test_a_failed_create_leaves_no_copy_behind(h, tmp_path):
    """A create that fails before its init exists (a module that does not compile), and one that
    fails inside it, after the copy took the launch (a module whose import nobody provides): one
    line back each time, and the worker and its copy gone, reaped, never left to the daemon
    (which reaps what is reparented to it)."""
    import wasmtime
    from mrun.shims import spawner
    from test_wasm import MISSING_IMPORT

    env = {"MRUN_CACHE_DIR": str(tmp_path / "cache")}
    unlinkable = tmp_path / "unlinkable.wasm"
    unlinkable.write_bytes(wasmtime.wat2wasm(MISSING_IMPORT))
    _precompile(env, str(unlinkable))
    ours, helper = _helper(env, warm_wasm=True)
    try:
        for module, said, handed in ((b"\0asm\x01\0\0\0not-really", "invalid module", None),
                                     (unlinkable.read_bytes(), "nobody_provides_this", True)):
            cid = h.cid("bad")
            cfg, base = wasm_bundle(h, module, args=["/app.wasm"])
            with open(os.devnull, "rb") as null:
                spawner.send(ours, {"id": cid, "bundle": make(h, cfg, base), "root": str(tmp_path / "shim-root")},
                             [null.fileno(), null.fileno(), null.fileno()])
            answer = spawner.recv(ours)[0]
            assert said in answer.get("error", "") and answer.get("pristine") is handed, answer
            time.sleep(0.2)
            assert children_of(helper.pid) == [], "the worker or its copy outlived the failed create"
    finally:
        ours.close()
        helper.wait(timeout=10)


def test_a_create_killed_at_any_instant_leaves_what_delete_force_removes(h, tmp_path):
    """SIGKILL, at seeded random instants of a wasm create through the helper, the worker or its
    copy (before, during or after the hand-over, after which it is the container's process; the
    worker a spare forked ahead, as a pod's shim has, or one forked for the request once a spare
    died waiting): the helper answers (an error, or a pid: the copy died before it took
    anything, or the container's process ended after its create), `delete --force` removes
    whatever was made (the harness checks state, cgroups, mounts and processes), and the same
    helper then creates and runs the container."""
    import random
    import threading

    from mrun.shims import spawner

    env = {"MRUN_CACHE_DIR": str(tmp_path / "cache")}
    _precompile(env, example_path("hello.wasm"))
    ours, helper = _helper(env, warm_wasm=True)
    rng = random.Random(int(os.environ.get("MRUN_FAULT_SEED", "20261130")))

    def descendants(depth: int) -> list[int]:
        level = [helper.pid]
        for _ in range(depth):
            level = [c for p in level for c in children_of(p)]
        return level

    def kill_later(delay: float, depth: int, killed: list[int]) -> None:
        """Once the victim exists, ``delay`` later: SIGKILL."""
        deadline = time.monotonic() + 2
        while not descendants(depth) and time.monotonic() < deadline:
            time.sleep(0.0002)
        time.sleep(delay)
        for pid in descendants(depth):
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except ProcessLookupError:
                pass

    def create(cid: str, out: str) -> dict:
        cfg, base = wasm_bundle(h, example("hello.wasm"), args=["/app.wasm", "0"])
        with open(os.devnull, "rb") as null, open(out, "wb") as sink:
            spawner.send(ours, {"id": cid, "bundle": make(h, cfg, base), "root": h.root, "more": True},
                         [null.fileno(), sink.fileno(), sink.fileno()])
        return spawner.recv(ours)[0]

    try:
        hits = set()
        for i in range(16):
            cid, depth, killed = h.cid(f"k{i}"), 1 + i % 2, []  # the worker, its copy
            killer = threading.Thread(target=kill_later, args=(rng.uniform(0, 0.012), depth, killed))
            killer.start()
            answer = create(cid, str(tmp_path / f"{cid}.out"))
            killer.join()
            if killed:
                hits.add(depth)
            assert "pid" in answer or answer.get("error") in (
                "the create worker died", "the sandbox set-up process died before starting the container",
                "the container's process died while setting up"), answer
            subprocess.run([h.binary, "--root", h.root, "delete", "--force", cid], capture_output=True, timeout=30)
            assert not os.path.exists(os.path.join(h.root, cid)), f"{cid}: delete --force left its state"
        assert hits == {1, 2}, f"kills landed only at depths {hits}"
        cid = h.cid("after")
        bundle = make(h, *wasm_bundle(h, example("hello.wasm"), ["/app.wasm", "0"]))
        answer, _fds, out = _run(h, ours, h.root, cid, bundle, str(tmp_path / "after.out"))
        assert answer.get("pristine") and out.startswith("hello from wasm32-wasi"), (answer, out)
    finally:
        ours.close()
        helper.wait(timeout=10)


def test_the_copy_is_told_each_module_imported_since_it_was_made_and_on_any_other_change_all():
    """After pivot_root nothing can be imported: what the creating process imported after the copy
    was made (a backend's mrun_prepare imports its payload's needs) must be named to it, in import
    order. The mark reads them from sys.modules' end; a module removed meanwhile (the order no
    longer tells) means every module is named, for the copy to import what it lacks."""
    import types

    from mrun.sandbox.pristine import ModuleMark

    names = ["mrun_test_mark_a", "mrun_test_mark_b", "mrun_test_mark_c"]
    try:
        mark = ModuleMark()
        assert mark.imported_since() == []
        for name in names[:2]:
            sys.modules[name] = types.ModuleType(name)
        sys.modules["mrun_test_mark_none"] = None  # a failed import's marker is no module
        assert mark.imported_since() == names[:2]

        later = ModuleMark()
        sys.modules[names[2]] = types.ModuleType(names[2])
        assert later.imported_since() == names[2:]
        del sys.modules[names[0]]  # one of the earlier ones gone: every module is named
        everything = later.imported_since()
        assert names[1] in everything and names[2] in everything and "os" in everything
        assert everything == [n for n in sys.modules if sys.modules[n] is not None]
    finally:
        for name in [*names, "mrun_test_mark_none"]:
            sys.modules.pop(name, None)


def test_the_shim_daemon_warms_the_move_only_for_an_init_that_will_move(h, monkeypatch):
    """The shim's daemon, at Create, reads the bundle before the worker does and warms the
    kernel's lock for the init's move only where it will be moved (operations.builder
    .init_will_move): an intermediate's child (a user namespace), or any init where none can be
    born in its cgroup2 cgroup. An init born there, Linux or wasm (a plain pristine copy forks it
    born), gets no warming: its grace period, waited holding cgroup_mutex, held up the worker's
    claim_cgroup, and the worker's own reading of /proc/self/cgroup (bench/timeline.py: ~10 ms
    of a wasm Create). A bundle that cannot be read: no warming, and no error (the worker
    reports it)."""
    from mrun import cgroups
    from mrun.operations.builder import init_will_move, warm_the_move_for
    from mrun.sandbox.launch import born_in_cgroup

    cfg, base = wasm_bundle(h, example("hello.wasm"), args=["/app.wasm"])
    wasm = make(h, cfg, base)
    linux = h.bundle(config=h.config(["true"]))
    userns_cfg = h.config(["true"])
    userns_cfg["linux"]["namespaces"].append({"type": "user"})
    userns_cfg["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    userns_cfg["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    userns = h.bundle(config=userns_cfg)
    born = born_in_cgroup({"pid": "", "mount": ""})
    assert init_will_move(userns) is True
    assert init_will_move(linux) is (not born)
    assert init_will_move(wasm) is (not born)
    assert init_will_move(os.path.join(h.tmp, "no-such-bundle")) is False

    warmed = []
    monkeypatch.setattr(cgroups, "prime_moves", lambda: warmed.append(True))
    for bundle in (wasm, userns):
        warm_the_move_for(bundle)  # on a thread: the daemon's Create goes on
    for _ in range(100):
        if warmed:
            break
        time.sleep(0.05)
    time.sleep(0.2)  # and the other thread has had its time
    assert warmed == ([True] if born else [True, True])

"""mrun never signals, kills, removes or writes what it did not create: cgroups it does not own,
host sysctls, and processes named by a stale, damaged or forged state file."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time

import pytest
from conftest import CGROUP_ROOT, cgroup_dirs


def one_line(r, *needles):
    assert r.returncode != 0, r
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("mrun: "), r.stderr
    for n in needles:
        assert n in r.stderr, (n, r.stderr)


@pytest.fixture
def sentinel():
    """A process of the test's own that mrun must never touch."""
    proc = subprocess.Popen(["sleep", "300"])
    yield proc
    alive = proc.poll() is None
    proc.kill()
    proc.wait()
    assert alive, "mrun killed a process it did not create"


def _foreign_cgroup(h, name: str, pid: int) -> list[str]:
    """A cgroup below the test's parent, made by the test (not mrun), holding ``pid``."""
    made = []
    if os.path.exists(os.path.join(CGROUP_ROOT, "cgroup.controllers")):
        bases = [CGROUP_ROOT]
    else:
        bases = [os.path.join(CGROUP_ROOT, c) for c in ("pids", "memory", "freezer") if os.path.isdir(
            os.path.join(CGROUP_ROOT, c))]
    for base in bases:
        d = os.path.join(base, h.cgroup_parent.lstrip("/"), name)
        os.makedirs(d, exist_ok=True)
        made.append(d)
        with open(os.path.join(d, "cgroup.procs"), "w") as f:
            f.write(str(pid))
    return made


def _release(pid: int, dirs: list[str]) -> None:
    """Put ``pid`` back where the test runs and remove the test's own cgroups."""
    for d in dirs:
        hierarchy_root = d[: d.index(CGROUP_ROOT) + len(CGROUP_ROOT)] if "cgroup.controllers" in os.listdir(
            CGROUP_ROOT) else os.path.join(CGROUP_ROOT, d[len(CGROUP_ROOT) + 1 :].split("/")[0])
        own = _own_cgroup(os.path.basename(hierarchy_root))
        try:
            with open(os.path.join(hierarchy_root, own.lstrip("/"), "cgroup.procs"), "w") as f:
                f.write(str(pid))
        except OSError:
            pass
    for d in sorted(dirs, key=len, reverse=True):
        try:
            os.rmdir(d)
        except OSError:
            pass


def _own_cgroup(controller: str) -> str:
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            if controller in ctrls.split(",") or (ctrls == "" and controller == "cgroup"):
                return path
    return "/"


def test_cgroup_holding_a_foreign_process_is_refused(h, sentinel):
    dirs = _foreign_cgroup(h, "taken", sentinel.pid)
    try:
        cfg = h.config(["true"])
        cfg["linux"]["cgroupsPath"] = f"{h.cgroup_parent}/taken"
        one_line(h.mrun("run", "-b", h.bundle(config=cfg), h.cid()), "linux.cgroupsPath", "already holds")
        assert all(os.path.isdir(d) for d in dirs), "mrun removed a cgroup it did not create"
        assert h.mrun("list", "-q").stdout.strip() == ""
    finally:
        _release(sentinel.pid, dirs)


def test_root_cgroup_is_refused(h, sentinel):
    cfg = h.config(["true"])
    cfg["linux"]["cgroupsPath"] = "/"
    one_line(h.mrun("run", "-b", h.bundle(config=cfg), h.cid()), "linux.cgroupsPath", "root cgroup")


@pytest.mark.parametrize("part", ["slice", "name"])
def test_a_systemd_cgroups_path_cannot_climb_out_of_the_hierarchy(h, tmp_path, part):
    """--systemd-cgroup's slice:prefix:name is laid out as systemd would; a piece with '/' or '..'
    aimed mrun's mkdirs and cgroup writes out of /sys/fs/cgroup (here: into a test directory)."""
    escape = "../" * 8 + str(tmp_path / "outside").lstrip("/")
    path = f"{escape}:p:n" if part == "slice" else f"system.slice:p:{escape}"
    cfg = h.config(["true"])
    cfg["linux"]["cgroupsPath"] = path
    one_line(h.mrun("--systemd-cgroup", "run", "-b", h.bundle(config=cfg), h.cid()), "linux.cgroupsPath",
             f"the {part}")
    # where the old layout landed: a "p-.." cgroup under a new system.slice, and *.slice directories
    # made on the way out (the slice's pieces are expanded as systemd nests them)
    assert not cgroup_dirs("system.slice/p-..")
    made = [str(p) for top in (tmp_path, *tmp_path.parents[:3]) for p in top.glob("*.slice")]
    assert not made, f"mrun made directories outside the cgroup hierarchy: {made}"


def test_a_plain_cgroups_path_under_systemd_cgroup_is_refused_as_runc_refuses_it(h):
    """It was taken as a cgroupfs path, silently: runc wants slice:prefix:name there."""
    cfg = h.config(["true"])
    cfg["linux"]["cgroupsPath"] = "/mrun-test-plain/c1"
    one_line(h.mrun("--systemd-cgroup", "run", "-b", h.bundle(config=cfg), h.cid()), "linux.cgroupsPath",
             '"slice:prefix:name"')
    assert not cgroup_dirs("mrun-test-plain")


def test_delete_leaves_a_pre_existing_empty_cgroup_alone(h):
    """A cgroup someone else made (empty) may be used, but delete does not remove it."""
    dirs = [d for d in cgroup_dirs(h.cgroup_parent)]
    made = []
    for base in ([CGROUP_ROOT] if os.path.exists(os.path.join(CGROUP_ROOT, "cgroup.controllers"))
                 else [os.path.join(CGROUP_ROOT, c) for c in ("pids", "memory")]):
        d = os.path.join(base, h.cgroup_parent.lstrip("/"), "premade")
        os.makedirs(d)
        made.append(d)
    try:
        cfg = h.config(["true"])
        cfg["linux"]["cgroupsPath"] = f"{h.cgroup_parent}/premade"
        h.ok("run", "-b", h.bundle(config=cfg), h.cid())
        assert all(os.path.isdir(d) for d in made)
    finally:
        for d in made:
            os.rmdir(d)
    del dirs


@pytest.mark.parametrize(
    ("key", "namespaces", "needle"),
    [
        ("vm.swappiness", None, "would change the host"),
        ("kernel.pid_max", None, "would change the host"),
        ("net.ipv4.ip_forward", ["pid", "ipc", "uts", "mount"], "host's network namespace"),
        ("kernel.shmmax", ["pid", "network", "uts", "mount"], "host's ipc namespace"),
        ("kernel.hostname", None, "hostname"),
    ],
)
def test_host_sysctls_are_refused_at_create(h, key, namespaces, needle):
    path = "/proc/sys/" + key.replace(".", "/")
    before = open(path).read()
    cfg = h.config(["true"])
    cfg["linux"]["sysctl"] = {key: "1"}
    if namespaces is not None:
        cfg["linux"]["namespaces"] = [{"type": t} for t in namespaces]
    one_line(h.mrun("create", "-b", h.bundle(config=cfg), h.cid()), f"linux.sysctl.{key}", needle)
    assert open(path).read() == before


def test_namespaced_sysctls_still_work(h):
    cfg = h.config(["cat", "/proc/sys/kernel/shmmni", "/proc/sys/net/ipv4/ip_default_ttl"])
    cfg["linux"]["sysctl"] = {"kernel.shmmni": "1234", "net.ipv4.ip_default_ttl": "42"}
    r = h.ok("run", "-b", h.bundle(config=cfg), h.cid())
    assert r.stdout.split() == ["1234", "42"]


def _saved(h, cid: str) -> dict:
    with open(os.path.join(h.root, cid, "state.json")) as f:
        return json.load(f)


def _scrub(state: dict) -> None:
    """What a forged or damaged state file made mrun leave (it signals nothing it cannot verify):
    the real init and its cgroups, removed by the test that forged it."""
    from mrun.cgroups.base import release_parents

    try:
        os.kill(state["pid"], 9)
    except ProcessLookupError:
        pass
    cg = state["cgroup"]
    leaves = sorted(set(cg["paths"].values())) if cg["version"] == 1 else [cg["path"]]
    for d in leaves:
        for _ in range(100):
            try:
                os.rmdir(d)
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.01)
        release_parents(d, cg["marks"])


def _forge(h, cid: str, **changes) -> None:
    path = os.path.join(h.root, cid, "state.json")
    with open(path) as f:
        state = json.load(f)
    state.update(changes)
    with open(path, "w") as f:
        json.dump(state, f)


@pytest.mark.parametrize("target", ["sentinel", "pid1"])
def test_forged_state_never_aims_a_signal(h, sentinel, target):
    cid = h.cid()
    h.ok("create", "-b", h.bundle(["sleep", "60"]), cid)
    real = _saved(h, cid)
    pid = sentinel.pid if target == "sentinel" else 1
    _forge(h, cid, pid=pid, pid_start=None)
    one_line(h.mrun("kill", cid, "KILL"), "state file is malformed", "pid_start")
    r = h.mrun("delete", "--force", cid)
    assert r.returncode == 0, r.stderr
    assert not os.path.exists(os.path.join(h.root, cid))
    _scrub(real)


def test_stale_pid_reused_by_a_stranger(h, sentinel):
    """A recorded pid whose start time differs is someone else now: not signalled."""
    cid = h.cid()
    h.ok("create", "-b", h.bundle(["sleep", "60"]), cid)
    _forge(h, cid, pid=sentinel.pid, pid_start=1)
    assert h.ok("state", cid).stdout and json.loads(h.ok("state", cid).stdout)["status"] == "stopped"
    h.ok("delete", cid)  # stopped: a plain delete, and it kills what is in its own cgroup only


def test_forged_cgroup_paths_are_refused(h, sentinel):
    cid = h.cid()
    h.ok("create", "-b", h.bundle(["sleep", "60"]), cid)
    with open(os.path.join(h.root, cid, "state.json")) as f:
        state = json.load(f)
    real = state["cgroup"]
    forged = dict(real)
    if real["version"] == 1:
        forged["paths"] = {c: os.path.join(CGROUP_ROOT, c) for c in real["paths"]}
    else:
        forged["path"] = CGROUP_ROOT
    _forge(h, cid, cgroup=forged)
    one_line(h.mrun("kill", cid, "KILL"), "state file is malformed", "cgroup")
    _forge(h, cid, cgroup=real)
    h.ok("delete", "--force", cid)


@pytest.mark.parametrize("doc", ["{}", '{"config": []}', '{"pid": "abc"}', "[]", '"x"', '{"cgroup": {"version": 1, '
                                 '"paths": {"pids": "/sys/fs/cgroup/pids/../.."}}}'])
def test_malformed_state_file(h, doc):
    good = h.cid("good")
    h.ok("create", "-b", h.bundle(["sleep", "60"]), good)
    bad = h.cid("bad")
    h.ok("create", "-b", h.bundle(["sleep", "60"]), bad)
    state = _saved(h, bad)
    real = dict(state)
    doc_value = json.loads(doc)
    if isinstance(doc_value, dict) and doc_value:
        state.update(doc_value)
        doc_value = state
    with open(os.path.join(h.root, bad, "state.json"), "w") as f:
        json.dump(doc_value, f)
    r = h.mrun("list")
    assert r.returncode == 0 and good in r.stdout and "Traceback" not in r.stderr, r
    assert "malformed" in r.stderr
    one_line(h.mrun("state", bad), "malformed")
    h.ok("delete", "--force", bad)
    assert not os.path.exists(os.path.join(h.root, bad))
    _scrub(real)
    h.ok("delete", "--force", good)


def test_forged_network_plan_removes_nothing_it_does_not_own(h, tmp_path):
    """net.json names a host link, a foreign lease and an arbitrary file: delete removes none."""
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    netroot = tmp_path / "nets"
    (netroot / "x" / "leases").mkdir(parents=True)
    lease = netroot / "x" / "leases" / "10.0.0.9"
    lease.write_text(json.dumps({"root": "/elsewhere", "container": "other"}))
    cid = h.cid()
    h.ok("create", "-b", h.bundle(["sleep", "60"]), cid)
    plan = {"network": "x", "veth": "lo", "ip": "10.0.0.9", "tag": "mrun-net:x", "netroot": str(netroot),
            "ports": [{"reservation": str(victim)}]}
    with open(os.path.join(h.root, cid, "net.json"), "w") as f:
        json.dump(plan, f)
    h.ok("delete", "--force", cid)
    assert victim.read_text() == "keep me" and lease.exists()
    assert os.path.exists("/sys/class/net/lo")


@pytest.mark.parametrize("forged", [
    {"network": "../../etc", "ip": "10.0.0.9"},  # a name that is none: a path
    {"network": "x y", "ip": "10.0.0.9"},  # a name no network has (no path either)
    {"network": "x", "ip": "10.0.0.9", "ports": 5, "definition": "valid"},  # ports not a list
    {"network": "x", "ip": "10.0.0.9", "ports": [{"reservation": "/etc/passwd", "proto": "tcp", "host_ip": "",
                                                   "host_port": 80}]},
    {"network": "x", "ip": "10.0.0.9", "definition": {"name": "x", "subnet": "127.0.0.0/8", "gateway": "127.0.0.1"}},
])
def test_a_forged_plan_fails_no_command_and_writes_nothing_when_lost_files_are_held_again(h, tmp_path, forged):
    """Every command looks for containers whose network files were lost (network/recovery) and
    holds them again from their plans: a forged plan must neither fail the command (a traceback,
    or a refusal of every verb) nor have a file written anywhere but its network root's, nor a
    network defined from a bad copy."""
    from mrun.network.store import bridge_name

    netroot = tmp_path / "nets"
    env = {"MRUN_NETWORK_ROOT": str(netroot)}
    if forged.get("definition") == "valid":
        forged = {**forged, "definition": {"name": "x", "subnet": "10.0.0.0/24", "gateway": "10.0.0.1",
                                           "bridge": bridge_name(str(netroot), "x"), "driver": "bridge"}}
    cid = h.cid()
    h.ok("create", "-b", h.bundle(["sleep", "60"]), cid)
    try:
        with open(os.path.join(h.root, cid, "net.json"), "w") as f:
            json.dump({"netroot": str(netroot), **forged}, f)
        before = open("/etc/passwd").read()
        r = h.mrun("state", cid, env=env)
        assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
        r = h.mrun("network", "ls", env=env)
        assert r.returncode == 0 and "Traceback" not in r.stderr and "x " not in r.stdout, r.stdout + r.stderr
        assert open("/etc/passwd").read() == before
        assert not os.path.exists(netroot / "x" / "network.json")
    finally:
        h.ok("delete", "--force", cid)


def test_concurrent_creates_leave_no_empty_parent_cgroup(h):
    """Eight containers racing to make the same parent cgroup: the last one out removes it."""
    from concurrent.futures import ThreadPoolExecutor

    bundle = h.bundle(["true"])

    def one(i: int) -> int:
        cfg = h.config(["true"])
        cfg["linux"]["cgroupsPath"] = f"{h.cgroup_parent}/shared-parent/c{i}"
        b = h.bundle(config=cfg)
        r = h.mrun("run", "-b", b, f"par{i}")
        return r.stderr if r.returncode else ""

    with ThreadPoolExecutor(8) as pool:
        errors = [e for e in pool.map(one, range(8)) if e]
    assert not errors, errors
    assert cgroup_dirs(h.cgroup_parent) == [], "a parent cgroup mrun made was left behind"
    del bundle


def test_an_orphaned_snapshot_is_listed_and_removed(images, busybox_archive):
    """What a `mrun run` killed before the runtime recorded the container leaves: a mounted
    snapshot and no state. ps lists it (-aq too: docker's `rm -f $(docker ps -aq)` idiom), rmi
    names it, rm -f removes it."""
    from conftest import IMAGE, img, img_ok, run_args

    h = images
    img_ok(h, "load", busybox_archive)
    img_ok(h, *run_args(h, "-d", "--name", "orph", IMAGE, "sleep", "60"))
    state = _saved(h, "orph")
    _scrub(state)  # the container and its cgroups gone ...
    import shutil

    shutil.rmtree(os.path.join(h.root, "orph"))  # ... and its state, as if never recorded
    # (so no supervisor kept a copy of the record either: one that had would be written back)
    os.unlink(os.path.join(h.image_root, "containers", "orph", "record.json"))
    assert "Orphaned" in img_ok(h, "ps", "-a").stdout
    assert img_ok(h, "ps", "-aq").stdout.split() == ["orph"]  # `mrun rm -f $(mrun ps -aq)` takes it too
    r = img(h, "rmi", IMAGE)
    assert r.returncode != 0 and "orph" in r.stderr
    img_ok(h, "rm", "-f", "orph")
    assert not os.path.exists(os.path.join(h.image_root, "containers", "orph"))
    with open("/proc/self/mountinfo") as f:
        assert h.image_root not in f.read()
    img_ok(h, "rmi", IMAGE)


def test_a_forged_pids_directory_is_not_signalled(h, sentinel):
    """cgroup v1: the pids hierarchy's directory (where the processes are listed) swapped for a
    foreign cgroup while the other hierarchies stay the container's: delete signals no one there."""
    if os.path.exists(os.path.join(CGROUP_ROOT, "cgroup.controllers")):
        pytest.skip("cgroup v2 has a single directory: covered by test_forged_cgroup_paths_are_refused")
    dirs = _foreign_cgroup(h, "foreign", sentinel.pid)
    try:
        cid = h.cid()
        h.ok("create", "-b", h.bundle(["sleep", "60"]), cid)
        real = _saved(h, cid)
        forged = json.loads(json.dumps(real["cgroup"]))
        own_pids = forged["paths"]["pids"]
        forged["paths"]["pids"] = next(d for d in dirs if "/pids/" in d)
        forged["inodes"].pop(own_pids, None)
        forged["created"] = [c for c in forged["created"] if c != own_pids]
        _forge(h, cid, cgroup=forged)
        h.ok("delete", "--force", cid)  # the init dies by its verified pid; the foreign cgroup is left alone
        assert all(os.path.isdir(d) for d in dirs)
        _scrub(real)
    finally:
        _release(sentinel.pid, dirs)


# A stranger given a container's number between mrun's check that the container still runs and
# its signal. Numbers come round (pid_max is 32768 by default; a busy node wraps it in minutes), so
# the window is real; here it is made certain: the test runs in a PID namespace of its own, where
# ns_last_pid chooses the next number, and the check itself (proc.start_time) lets the victim end
# and the stranger take its number before it answers.
REUSE_SCRIPT = r"""
import json, os, subprocess, sys, time
from mrun.kernel import proc

def stranger_at(pid):
    with open("/proc/sys/kernel/ns_last_pid", "w") as f:
        f.write(str(pid - 1))
    p = subprocess.Popen(["sleep", "60"])
    assert p.pid == pid, (p.pid, pid)
    return p

def reused_while_checked(victim, after_calls=0):
    real, calls, strangers = proc.start_time, [0], []
    def start_time(pid):
        value = real(pid)
        if pid == victim.pid and not strangers:
            calls[0] += 1
            if calls[0] > after_calls:
                victim.kill()
                victim.wait()
                strangers.append(stranger_at(pid))
        return value
    proc.start_time = start_time
    return strangers, lambda: setattr(proc, "start_time", real)

def outcome(strangers):
    time.sleep(0.2)
    alive = bool(strangers) and strangers[0].poll() is None
    for s in strangers:
        s.kill()
        s.wait()
    return "reused" if not strangers else ("spared" if alive else "killed")

which, cgroup_dir = sys.argv[1], sys.argv[2]
victim = subprocess.Popen(["sleep", "60"])
started = proc.start_time(victim.pid)
if which == "kill_if_same":
    from mrun.operations.builder import kill_if_same
    from mrun.operations.host import Host
    strangers, undo = reused_while_checked(victim)
    kill_if_same(Host(), victim.pid, started)
    undo()
elif which == "shim-exec":  # the shim has reaped an exec'd process and not yet noted its exit
    import socket, threading
    from mrun.shims.proto import task_pb2
    from mrun.shims.service import Process, Task, TaskService
    from mrun.shims.ttrpc import TTRPCError
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    service = TaskService("unit", cgroup_dir, ours, None)
    task = Task(task_pb2.CreateTaskRequest(id="t"))
    proc = task.execs["e"] = Process("t", "e", "", "", "", False)
    service.tasks["t"] = task
    victim.kill()  # that Popen's; this one is the shim's own child
    victim.wait()
    proc.pid = os.posix_spawn("/bin/sleep", ["sleep", "60"], os.environ)
    service.by_pid[proc.pid] = proc
    noting = threading.Event()
    service._exited = lambda p, status: noting.wait()  # the exit being noted: its relay drained
    threading.Thread(target=service.reap_forever, daemon=True).start()
    os.kill(proc.pid, 9)
    while os.path.exists(f"/proc/{proc.pid}"):
        time.sleep(0.01)
    strangers = [stranger_at(proc.pid)]
    try:
        service.kill(task_pb2.KillRequest(id="t", exec_id="e", signal=15).SerializeToString(), None)
    except TTRPCError:
        pass
else:  # a cgroup's members, listed and then signalled
    from mrun.cgroups.v1 import CgroupV1
    from mrun.cgroups.v2 import CgroupV2
    with open(os.path.join(cgroup_dir, "cgroup.procs"), "w") as f:
        f.write(str(victim.pid))
    cg = CgroupV2(cgroup_dir) if which == "v2" else CgroupV1({"pids": cgroup_dir})
    cg.inodes = {cgroup_dir: os.stat(cgroup_dir).st_ino}  # claimed, as create claims it
    listed, strangers = cg.pids, []
    def pids_then_reuse():
        found = listed()
        if not strangers and victim.pid in found:
            victim.kill()
            victim.wait()
            strangers.append(stranger_at(victim.pid))
        return found
    cg.pids = pids_then_reuse
    cg.kill_all(15)
print(json.dumps(outcome(strangers)))
"""


def _reuse_in_a_pid_namespace(which: str, cgroup_dir: str = "") -> str:
    import sys

    r = subprocess.run(
        ["unshare", "--pid", "--fork", "--mount-proc", sys.executable, "-c", REUSE_SCRIPT, which, cgroup_dir],
        capture_output=True, text=True, timeout=60,
    )
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_a_number_taken_between_the_check_and_the_signal_gets_nothing():
    """Every signal mrun sends to a container's process by its recorded number (kill, stop,
    delete, a failed create's undo) pins the process before it compares the start time; a kill
    by number after the comparison reached the stranger."""
    assert _reuse_in_a_pid_namespace("kill_if_same") == "spared"


def test_the_shim_signals_no_exec_it_has_reaped(tmp_path):
    """containerd's Kill of an exec'd process that has ended: the shim reaps it at once, but
    notes its exit only after its output is drained (up to 2 s), and a Kill by number meanwhile
    reached whichever process had taken the number."""
    assert _reuse_in_a_pid_namespace("shim-exec", str(tmp_path)) == "spared"


def test_a_cgroup_member_gone_before_its_signal_is_not_replaced_by_a_stranger(h):
    """`kill --all`, `delete --force` and `stop` signal every process the container's cgroup
    lists; one that ended after the listing could have its number taken by a process outside
    the cgroup, which then got the signal."""
    v2 = os.path.exists(os.path.join(CGROUP_ROOT, "cgroup.controllers"))
    base = CGROUP_ROOT if v2 else os.path.join(CGROUP_ROOT, "pids")
    if not os.path.isdir(base):
        pytest.fail(f"no pids hierarchy at {base}: this test needs one")
    d = os.path.join(base, h.cgroup_parent.lstrip("/"), "reuse")
    os.makedirs(d)
    try:
        assert _reuse_in_a_pid_namespace("v2" if v2 else "v1", d) == "spared"
    finally:
        os.rmdir(d)


def test_a_caller_s_umask_of_000_leaves_nothing_others_can_write(images, busybox_archive, tmp_path):
    """A caller's umask of 000 (some service managers' and daemons') made mrun's own files what
    it gives: state.json, the image index, blobs, network files and the containers' cgroup
    directories writable by any local user (a pid forged in state.json is a process `delete
    --force` kills as root). mrun's own files take the caller's umask with 022 added. As under
    runc, an exec'd process still gets the caller's own (0000), and an init whose root the
    sandbox made gets 022 (runc's finalizeRootfs), whatever the caller's."""
    from conftest import IMAGE, img, img_ok, run_args

    h = images
    env = {"MRUN_NETWORK_ROOT": str(tmp_path / "networks"), "MRUN_CACHE_DIR": str(tmp_path / "cache")}
    module = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples", "wasm",
                          "hello.wasm")
    mask = os.umask(0)
    try:
        img_ok(h, "load", busybox_archive, env=env)
        img_ok(h, *run_args(h, "-d", "--name", "u", "-v", "vol0:/data", IMAGE, "sleep", "600"), env=env)
        seen = img_ok(h, "exec", "u", "sh", "-c", "umask; grep Umask /proc/1/status", env=env).stdout.split()
        img_ok(h, "network", "create", "umasknet", env=env)
        img_ok(h, *run_args(h, "--rm", "--network", "umasknet", IMAGE, "true"), env=env)
        img_ok(h, "image", "wasm", module, "localhost/umask-wasm:1", env=env)
        assert img(h, *run_args(h, "--rm", "localhost/umask-wasm:1", "2"), env=env).returncode == 2
        bundle = h.bundle(["sleep", "600"])
        cid = h.cid()
        h.ok("create", "-b", bundle, cid)
        writable = []
        for top in (h.root, h.image_root, env["MRUN_NETWORK_ROOT"], env["MRUN_CACHE_DIR"]):
            for dirpath, dirs, files in os.walk(top):
                # what a container's root or a volume holds is the image's and the container's
                dirs[:] = [d for d in dirs if not (d in ("rootfs", "upper", "work", "data")
                                                   or os.path.basename(dirpath) == "layers")]
                for name in [*dirs, *files]:
                    st = os.lstat(os.path.join(dirpath, name))
                    if not os.path.islink(os.path.join(dirpath, name)) and st.st_mode & 0o002:
                        writable.append(os.path.join(dirpath, name))
        for parent in cgroup_dirs(h.cgroup_parent):
            writable += [d for d, _, _ in os.walk(parent) if os.stat(d).st_mode & 0o002]
    finally:
        os.umask(mask)
        h.mrun("delete", "--force", cid)
        img(h, "rm", "-f", "u", env=env)
        img(h, "volume", "rm", "vol0", env=env)
        img(h, "network", "rm", "umasknet", env=env)
        img(h, "rmi", "localhost/umask-wasm:1", env=env)
    assert not writable, writable
    assert seen == ["0000", "Umask:", "0022"], seen


# Kills the container's init right after `mrun exec` has checked that it runs (the first read
# of its /proc/PID/stat), and waits until it is reaped, then lets exec go on.
STOPPED_UNDER_EXEC = r"""
import os, signal, sys, time

victim, ours, checked, done = int(os.environ.pop("VICTIM")), os.getpid(), [False], [False]


def hook(event, args):
    if os.getpid() != ours or done[0]:
        return
    if not checked[0]:
        checked[0] = event == "open" and args[0] == f"/proc/{victim}/stat"
        return
    done[0] = True
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while os.path.isdir(f"/proc/{victim}") and time.monotonic() < deadline:  # until it is reaped
        time.sleep(0.005)


sys.addaudithook(hook)
sys.argv = ["mrun", *sys.argv[1:]]
from mrun.cli.main import main
sys.exit(main())
"""


def test_an_exec_into_a_container_that_stops_meanwhile_never_runs_on_the_host(h, tmp_path):
    """The container's init ends between `exec`'s check that it runs and the exec'd process
    joining its namespaces (it exits on its own, or a `kill` or `rm -f` comes at that moment).
    The namespaces were looked up by the init's number, and each one no longer there was
    passed over, as a kind of namespace this kernel lacks: with none there, the process stayed
    in the host's, and the command meant for the container ran on the host, as root (here it
    read a file of the host's). Seen once in 40 execs racing a container's own exit. Now every
    namespace is held open while the init is pinned and checked before and after, and the exec
    is refused in one line."""
    import sys

    host_only = tmp_path / "host-only"
    host_only.write_text("the host's file\n")
    cid = h.cid()
    h.ok("create", "-b", h.bundle(["sleep", "60"]), cid)
    h.ok("start", cid)
    pid = json.loads(h.ok("state", cid).stdout)["pid"]
    try:
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            code = subprocess.run(
                [sys.executable, "-c", STOPPED_UNDER_EXEC, "--root", h.root, "exec", cid, "cat", str(host_only)],
                stdin=subprocess.DEVNULL, stdout=out, stderr=err, timeout=60,
                env={**os.environ, "MRUN_WARM": "0", "VICTIM": str(pid)},
            ).returncode
            out.seek(0)
            err.seek(0)
            r = subprocess.CompletedProcess([], code, out.read(), err.read())
    finally:
        h.ok("delete", "--force", cid)
    assert "the host's file" not in r.stdout, "the exec'd command ran on the host"
    one_line(r, f"cannot exec in container {cid!r}: it is stopped")
    assert r.returncode == 255  # runc's exec status for a process that never ran


def test_a_cgroup_removed_while_its_processes_are_read_holds_none(h, monkeypatch):
    """A cgroup removed between the open of its cgroup.procs and the read (a supervisor removing
    its own as it leaves, while `rm` watches it) answers ENODEV: `rm -f` said "rm: No such
    device" (seen once in CI). It holds no process, as a cgroup already gone holds none."""
    import mrun.cgroups.base as base

    d = cgroup_dirs("/")[0] + h.cgroup_parent.rstrip("/") + "-going"
    os.mkdir(d)
    real = base.read

    def removed_meanwhile(path: str) -> str:
        with open(path) as f:
            if os.path.isdir(d):
                os.rmdir(d)
            return f.read().strip()

    monkeypatch.setattr(base, "read", removed_meanwhile)
    try:
        assert base.procs_in(d) == []
    finally:
        monkeypatch.setattr(base, "read", real)
        if os.path.isdir(d):
            os.rmdir(d)

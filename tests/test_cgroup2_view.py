"""mrun on cgroup v2, which most users have, on a host that runs v1 controllers: each command runs
in a mount namespace of its own where /sys/fs/cgroup is the host's (single) cgroup2 hierarchy, so
mrun detects v2 and uses its v2 driver for real. The hierarchy has no resource controllers here
(the host's v1 hierarchies hold them); what v2 does without them is tested, next to the host."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import time

import pytest
from conftest import one_line_error

# Run a command where /sys/fs/cgroup is a cgroup2 mount (on a pure v2 host: the same hierarchy).
CGROUP2_VIEW = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                'mount -t cgroup2 cgroup2 /sys/fs/cgroup && exec "$@"', "cgroup2-view"]


def on(view: str, argv: list[str]) -> list[str]:
    return [*CGROUP2_VIEW, *argv] if view == "cgroup2" else argv


@pytest.fixture(params=["host", "cgroup2"])
def viewed(request, h):
    """The harness, its mrun run as is on the host, or every call in a cgroup2 view (cold: a
    template belongs to its caller's mount namespace). The harness's own checks (state, cgroups
    in every hierarchy, the unified one included, mounts, processes) hold either way."""
    h.view = request.param
    if request.param == "cgroup2":
        wrapper = os.path.join(h.tmp, "mrun-cgroup2")
        with open(wrapper, "w") as f:
            f.write(f"#!/bin/sh\nexec {shlex.join([*CGROUP2_VIEW, h.binary])} \"$@\"\n")
        os.chmod(wrapper, 0o755)
        h.binary = wrapper
        h.base_env["MRUN_WARM"] = "0"
    return h


def test_the_lifecycle_through_the_v2_driver(viewed):
    """create, start, ps, pause/resume (cgroup.freeze), stats, exec, kill --all, delete."""
    h = viewed
    cid = h.cid()
    h.ok("create", "-b", h.bundle(["sh", "-c", "sleep 60 & sleep 60"]), cid)
    h.ok("start", cid)
    assert h.status(cid) == "running"
    deadline = time.monotonic() + 5
    while len(json.loads(h.ok("ps", "-f", "json", cid).stdout)) < 2:
        assert time.monotonic() < deadline, "the container's processes never showed in its cgroup"
        time.sleep(0.02)
    h.ok("pause", cid)
    assert h.status(cid) == "paused"
    h.ok("resume", cid)
    assert h.status(cid) == "running"
    stats = json.loads(h.ok("events", "--stats", cid).stdout)["data"]
    assert stats["cgroup_version"] == (2 if h.view == "cgroup2" else 1)
    assert h.ok("exec", cid, "sh", "-c", "echo in").stdout == "in\n"
    h.ok("kill", "--all", cid, "KILL")
    h.wait_status(cid, "stopped")
    h.ok("delete", cid)
    assert h.status(cid) == "gone"


def test_delete_force_ends_every_process_of_a_running_container(viewed):
    h = viewed
    cid = h.cid()
    h.ok("run", "-d", "-b", h.bundle(["sh", "-c", "sleep 60 & sleep 60 & wait"]), cid)
    h.ok("delete", "--force", cid)
    assert h.status(cid) == "gone"


def test_a_limit_whose_controller_is_missing_is_one_line_and_leaves_nothing(viewed):
    """The cgroup2 view has no resource controllers here (the host's v1 hierarchies hold them):
    a memory limit is refused naming the controller, as on a v2 host that does not delegate it."""
    h = viewed
    if h.view != "cgroup2":
        pytest.skip("the host's v1 hierarchies have every controller")
    cfg = h.config(["true"])
    cfg["linux"]["resources"]["memory"] = {"limit": 64 << 20}
    r = h.mrun("run", "-b", h.bundle(config=cfg), h.cid())
    one_line_error(r, "memory", "not available")


@pytest.mark.parametrize("view", ["host", "cgroup2"])
def test_a_container_cannot_open_a_device_its_rules_deny(h, view):
    """Device rules are enforced on both hierarchies (on v2 by an eBPF program mrun attaches):
    a container allowed to mknod (docker's and podman's default capabilities include CAP_MKNOD)
    makes a node for a device it is not allowed, and opening it is refused; /dev/null works. The
    device is /dev/net/tun's (10:200), whose open asks for no capability (a disk's would not either:
    that is what the rules keep from a container)."""
    cfg = h.config(["sh", "-c", "mknod /dev/probe c 10 200 && echo made; (: < /dev/probe) 2>&1; : > /dev/null && "
                                "echo null-ok"])
    for kind in ("bounding", "effective", "permitted"):
        cfg["process"]["capabilities"][kind].append("CAP_MKNOD")
    bundle = h.bundle(config=cfg)
    cid = h.cid("dev")
    env = {"MRUN_WARM": "0"}  # a template is of the caller's mount namespace
    r = subprocess.run(on(view, [h.binary, "--root", h.root, "run", "-b", bundle, cid]), capture_output=True,
                       text=True, timeout=60, env={**os.environ, **env}, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "made" and "Operation not permitted" in lines[1] and lines[2] == "null-ok", r.stdout
    assert "warning" not in r.stderr, r.stderr
    gone = subprocess.run(on(view, ["sh", "-c", f"test ! -e /sys/fs/cgroup/{h.cgroup_parent.strip('/')}"]))
    assert gone.returncode == 0, "the container's cgroup parent was left behind"


def test_an_update_never_changes_a_container_s_device_rules(viewed):
    """runc's update leaves the device rules create set (it takes memory, CPU, pids, blkio weight
    and unified from the request, never devices). containerd's CRI sends the spec's whole
    linux.resources, devices included, with every UpdateContainerResources; `ctr task update` and
    `mrun update -r` send whatever file they are given. mrun applied the request's devices: an
    allow-all rule gave the container every host device (a disk, with CAP_MKNOD), and a
    config.json's own list took away the devices its linux.devices had allowed. The rest of the
    request still applies (pids, where the view has the controller)."""
    h = viewed
    cfg = h.config(["sh", "-c", "mknod /dev/probe c 10 201 && sleep 60"])
    for kind in ("bounding", "effective", "permitted"):
        cfg["process"]["capabilities"][kind].append("CAP_MKNOD")
    cfg["linux"]["devices"] = [{"path": "/dev/net/tun", "type": "c", "major": 10, "minor": 200, "fileMode": 0o666}]
    cid = h.cid("upd")
    h.ok("run", "-d", "-b", h.bundle(config=cfg), cid)
    deadline = time.monotonic() + 10
    while h.mrun("exec", cid, "test", "-e", "/dev/probe").returncode != 0:
        assert time.monotonic() < deadline, "the container never made its node"
        time.sleep(0.05)
    probe = "(: < /dev/probe) 2>&1; (: < /dev/net/tun) 2>&1; echo done"
    before = h.ok("exec", cid, "sh", "-c", probe).stdout
    assert before.count("Operation not permitted") == 1 and "/dev/probe" in before, before
    path = os.path.join(h.tmp, "resources.json")
    for devices in ([{"allow": True, "access": "rwm"}],  # every device
                    [{"allow": False, "access": "rwm"}]):  # a config.json's list: none but the defaults
        resources: dict = {"devices": devices}
        if h.view == "host":
            resources["pids"] = {"limit": 77}
        with open(path, "w") as f:
            json.dump(resources, f)
        h.ok("update", "-r", path, cid)
        after = h.ok("exec", cid, "sh", "-c", probe).stdout
        assert after == before, f"update {devices} changed what the container may open: {after!r}"
    if h.view == "host":
        with open(os.path.join(h.root, cid, "state.json")) as f:
            pids_dir = json.load(f)["cgroup"]["paths"]["pids"]
        with open(os.path.join(pids_dir, "pids.max")) as f:
            assert f.read().strip() == "77"
    h.ok("delete", "--force", cid)


def test_the_shim_under_containerd_on_cgroup_v2(busybox_archive, containerd2, tmp_path_factory):
    """containerd 2.3 in a cgroup2 view, so it and every shim and container it starts see v2:
    the mrun shim runs a Linux and a wasm task, pauses, reports v2 metrics and removes a
    running one, and leaves no cgroup in the unified hierarchy."""
    from conftest import IMAGE, cgroup_dirs
    from test_containerd import WASM_IMAGE, Containerd, build_wasm_archive, shim_run_args

    ctd = Containerd(busybox_archive, containerd2, env={"MRUN_WARM": "0"}, wrap=CGROUP2_VIEW)

    def run_args(cid: str) -> list[str]:  # ctr's default cpu shares need the cpu controller, absent here
        return [*shim_run_args(ctd, cid), "--cpu-shares", "0"]

    try:
        ctd.ctr("image", "import", build_wasm_archive(tmp_path_factory.mktemp("wasm-image")))
        assert ctd.ctr(*run_args("echo"), "--rm", IMAGE, "echo", "/bin/echo", "hi").stdout == "hi\n"
        r = ctd.ctr(*run_args("wasm"), "--rm", WASM_IMAGE, "wasm", "/hello.wasm", "3", check=False)
        assert r.returncode == 3, r.stderr
        ctd.ctr(*run_args("sleeper"), "-d", IMAGE, "sleeper", "sleep", "60")
        ctd.ctr("task", "pause", "sleeper")
        assert "PAUSED" in ctd.ctr("task", "ls").stdout
        ctd.ctr("task", "resume", "sleeper")
        metrics = ctd.ctr("task", "metrics", "sleeper").stdout
        assert "cpu.usage_usec" in metrics, metrics  # ctr's table of v2 Metrics (v1's has no usec rows)
        ctd.ctr("task", "rm", "-f", "sleeper")
        ctd.ctr("container", "rm", "sleeper")
        assert not cgroup_dirs(f"/{ctd.ns}"), "cgroups left in the unified hierarchy"
    finally:
        ctd.stop()


def test_unified_never_writes_the_files_that_say_whose_processes_are_in(viewed):
    """linux.resources.unified writes files of the container's cgroup; "cgroup.procs" there would
    move any process into it, and `delete` would then kill it as the container's. Refused, with
    the other core files that are not limits (threads, kill, freeze, subtree_control, type)."""
    h = viewed
    if h.view != "cgroup2":
        pytest.skip("linux.resources.unified is v2's; v1 refuses it whole")
    bystander = subprocess.Popen(["sleep", "60"])  # ours, by pid: a process that is not the container's
    try:
        before = open(f"/proc/{bystander.pid}/cgroup").read()
        cfg = h.config(["true"])
        cfg["linux"]["resources"]["unified"] = {"cgroup.procs": str(bystander.pid)}
        r = h.mrun("run", "-b", h.bundle(config=cfg), h.cid())
        one_line_error(r, "linux.resources.unified.cgroup.procs")
        assert bystander.poll() is None, "the bystander was killed as the container's"
        assert open(f"/proc/{bystander.pid}/cgroup").read() == before
    finally:
        bystander.kill()
        bystander.wait()


def test_a_create_killed_at_any_instant_on_v2_leaves_what_delete_force_removes(viewed):
    """SIGKILL at random instants (seeded) of a create whose device rules become an eBPF program
    on v2 (attached between the cgroup's claim and the init's fork): `delete --force` in the same
    view then leaves no state, cgroup (in any hierarchy, the unified one included), mount or
    process, and the next create works. The program goes with its cgroup."""
    import random

    from test_fault_injection import kill_at_random, timed

    h = viewed
    rng = random.Random(20261130)
    bundle = h.bundle(["sleep", "60"])
    env = {**os.environ, **h.base_env}
    span = 1.2 * timed([h.binary, "--root", h.root, "create", "-b", bundle, "probe"], env=env)
    h.ok("delete", "--force", "probe")
    for i in range(10):
        cid = f"k{i}"
        kill_at_random([h.binary, "--root", h.root, "create", "-b", bundle, cid], rng, span, env=env)
        r = h.mrun("delete", "--force", cid)
        assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
        left = h.leftovers()
        assert not left, f"kill {i}: {left}"
    cid = h.cid()
    h.ok("create", "-b", bundle, cid)
    h.ok("delete", "--force", cid)


RESERVE = r"""
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
int main(void) {  /* reserve two 2 MiB huge pages (mmap charges the reservation), touch none */
    void *p = mmap(0, 4 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
    printf("%s\n", p == MAP_FAILED ? strerror(errno) : "reserved");
    return 0;
}
"""


def test_a_hugepage_limit_bounds_reservations_too_as_runc_s(viewed, tmp_path):
    """linux.resources.hugepageLimits (the kubelet sets one for every page size, 0 where a pod
    asked for none): mrun wrote only the fault limit (hugetlb.SIZE.max), so a container could
    still reserve huge pages past it with mmap, taking them out of the node's pool for every
    other container (a pod that asked for huge pages then failed its own mmap), to die of SIGBUS
    if it touched them. runc writes the reservation limit too (hugetlb.SIZE.rsvd.max; v1's
    rsvd.limit_in_bytes) where the kernel has one (5.7 and later): so does mrun. The hugetlb
    controller is not in the host's v1 hierarchies here but is in its cgroup2 one: there the
    container's mmap of two pages past a one-page limit is refused while the node has them free;
    on v1 the limit is refused in one line naming the field."""
    h = viewed
    source = tmp_path / "reserve.c"
    source.write_text(RESERVE)
    binary = tmp_path / "bin" / "reserve"
    binary.parent.mkdir()
    subprocess.run(["cc", "-static", "-O2", "-o", str(binary), str(source)], check=True)
    cfg = h.config(["/tmp/reserve"])
    cfg["mounts"].append({"destination": "/tmp", "type": "bind", "source": str(binary.parent), "options": ["rbind"]})
    cfg["linux"]["resources"]["hugepageLimits"] = [{"pageSize": "2MB", "limit": 2 << 20}]
    if h.view != "cgroup2":
        one_line_error(h.mrun("run", "-b", h.bundle(config=cfg), h.cid()), "linux.resources.hugepageLimits",
                       "hugetlb")
        return
    pool = "/proc/sys/vm/nr_hugepages"
    before = open(pool).read().strip()
    try:
        with open(pool, "w") as f:
            f.write("4")  # 8 MiB the kernel may not find at once: asked for, then checked
        assert int(open("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages").read()) >= 2
        r = h.ok("run", "-b", h.bundle(config=cfg), h.cid())
        assert r.stdout == "Cannot allocate memory\n", r.stdout
        cfg["linux"]["resources"]["hugepageLimits"] = [{"pageSize": "2MB", "limit": 4 << 20}]
        assert h.ok("run", "-b", h.bundle(config=cfg), h.cid()).stdout == "reserved\n"  # within its limit
    finally:
        with open(pool, "w") as f:
            f.write(before)


def test_an_rdma_limit_where_no_hierarchy_has_the_controller_is_one_line(viewed):
    """linux.resources.rdma was passed over without a word: the container ran with no limit on
    its HCA handles and objects. runc writes rdma.max, and refuses where it cannot (this host's
    kernel has no rdma controller, in either hierarchy): so does mrun, naming the field."""
    h = viewed
    assert "rdma" not in open("/proc/cgroups").read(), "this host has an rdma controller: test its limits for real"
    cfg = h.config(["true"])
    cfg["linux"]["resources"]["rdma"] = {"mlx5_0": {"hcaHandles": 3}}
    one_line_error(h.mrun("run", "-b", h.bundle(config=cfg), h.cid()), "linux.resources.rdma: ", "rdma")


def test_a_controller_below_a_cgroup_with_processes_is_one_line_naming_the_field(h):
    """A relative cgroupsPath (runc's: under the caller's cgroup; podman's --cgroups split makes
    one) whose limit needs a controller enabled in the caller's cgroup, which holds the caller: v2
    allows no controllers below a domain cgroup with processes, and the write was refused as "cannot
    write '+hugetlb' to .../cgroup.subtree_control: Device or resource busy", naming neither the
    field nor why. (hugetlb is this host's one cgroup2 controller.) Nothing is left."""
    unified = "/sys/fs/cgroup/unified"
    if not os.path.isfile(os.path.join(unified, "cgroup.controllers")) or "hugetlb" not in open(
            os.path.join(unified, "cgroup.controllers")).read():
        pytest.skip("a host without a cgroup2 hierarchy offering hugetlb beside v1 (on pure v2: the same, untested)")
    caller = os.path.join(unified, h.cgroup_parent.lstrip("/"), "caller")
    os.makedirs(caller)
    try:
        cfg = h.config(["true"])
        cfg["linux"]["cgroupsPath"] = "split-" + h.cid()
        cfg["linux"]["resources"]["hugepageLimits"] = [{"pageSize": "2MB", "limit": 0}]
        argv = [*CGROUP2_VIEW, h.binary, "--root", h.root, "run", "-b", h.bundle(config=cfg), h.cid()]
        r = subprocess.run(["sh", "-c", f'echo $$ > {caller}/cgroup.procs && exec "$@"', "caller", *argv],
                           env={**os.environ, "MRUN_WARM": "0"}, capture_output=True, text=True, timeout=60)
        one_line_error(r, "linux.resources.hugepageLimits: ", "hugetlb", f"{h.cgroup_parent}/caller: it holds "
                       "processes")
        assert [e.name for e in os.scandir(caller) if e.is_dir()] == []
    finally:
        os.rmdir(caller)
    assert not h.leftovers()

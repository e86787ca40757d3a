"""The sandbox and its limits, checked from inside the container and in the cgroup's own
statistics (no wall-clock assertions)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time

import pytest
from conftest import cgroup_dirs, one_line_error, open_to_others
from mrun.kernel.capnames import BITS

MB = 1024 * 1024
TMPFS_TMP = {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev"]}


def _cgroup_file(cfg, controller: str, name: str) -> str:
    rel = cfg["linux"]["cgroupsPath"]
    if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        return os.path.join("/sys/fs/cgroup", rel.lstrip("/"), name)
    return os.path.join("/sys/fs/cgroup", controller, rel.lstrip("/"), name)


def test_memory_limit_oom_kill_is_reported(h):
    cfg = h.config(["dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"])
    cfg["linux"]["resources"]["memory"] = {"limit": 32 * MB, "swap": 32 * MB}
    cid = h.cid()
    log = os.path.join(h.tmp, "log.json")
    r = h.mrun("--log", log, "--log-format", "json", "run", "--keep", "-b", h.bundle(config=cfg), cid)
    assert r.returncode == 137, r.stderr
    assert "OOM" in r.stderr and cid in r.stderr
    state = json.loads(h.ok("state", cid).stdout)
    assert state["status"] == "stopped" and state["oomKilled"] is True
    record = json.loads(open(log).read().splitlines()[-1])
    assert record["level"] == "warning" and "OOM" in record["msg"]
    h.ok("delete", cid)


def test_memory_limit_reaches_the_cgroup_and_state_stays_honest(h):
    cfg = h.config(["sleep", "60"])
    cfg["linux"]["resources"]["memory"] = {"limit": 48 * MB}
    cid = h.cid()
    h.ok("run", "-d", "-b", h.bundle(config=cfg), cid)
    stats = json.loads(h.ok("events", "--stats", cid).stdout)["data"]
    assert stats["memory"]["usage"]["limit"] == 48 * MB  # runc's layout of `events`
    h.ok("delete", "--force", cid)


def test_fork_bomb_stops_at_pids_limit(h):
    # the bomb in a shell of its own: a shell that cannot fork ends, and the container's init
    # must outlive it (`events` refuses a stopped container, as runc's)
    bomb = "i=0; while [ $i -lt 40 ]; do sleep 30 & i=$((i+1)); done; echo spawned; wait"
    cfg = h.config(["sh", "-c", f"sh -c '{bomb}'; exec sleep 60"])
    cfg["linux"]["resources"]["pids"] = {"limit": 10}
    cid = h.cid()
    h.ok("run", "-d", "-b", h.bundle(config=cfg), cid)
    events = _cgroup_file(cfg, "pids", "pids.events")
    deadline = time.monotonic() + 10
    while "max 0" in open(events).read():
        assert time.monotonic() < deadline, "the pids limit was never hit"
        time.sleep(0.05)
    stats = json.loads(h.ok("events", "--stats", cid).stdout)["data"]
    assert stats["pids"]["limit"] == 10
    assert stats["pids"]["current"] <= 10
    assert len(json.loads(h.ok("ps", "-f", "json", cid).stdout)) <= 10
    h.ok("delete", "--force", cid)


def test_cpu_quota_throttles(h):
    cfg = h.config(["sh", "-c", "while :; do :; done"])
    cfg["linux"]["resources"]["cpu"] = {"quota": 20000, "period": 100000}
    cid = h.cid()
    h.ok("run", "-d", "-b", h.bundle(config=cfg), cid)
    deadline = time.monotonic() + 20
    while True:
        cpu = json.loads(h.ok("events", "--stats", cid).stdout)["data"]["cpu"]
        if cpu["throttling"].get("throttledPeriods", 0) >= 3:
            break
        assert time.monotonic() < deadline, f"no throttling seen: {cpu}"
        time.sleep(0.1)
    assert cpu["throttling"]["throttledTime"] > 0
    h.ok("delete", "--force", cid)


def test_capabilities_and_no_new_privileges(h):
    cfg = h.config(["sh", "-c", "grep -E '^(CapEff|CapBnd|NoNewPrivs)' /proc/self/status"])
    caps = ["CAP_KILL", "CAP_NET_RAW", "CAP_CHOWN"]
    cfg["process"]["capabilities"] = {k: caps for k in ("bounding", "effective", "permitted")}
    out = dict(line.split(":\t") for line in h.ok("run", "-b", h.bundle(config=cfg), h.cid()).stdout.splitlines())
    want = sum(1 << BITS[c] for c in caps)
    assert int(out["CapEff"], 16) == want
    assert int(out["CapBnd"], 16) == want
    assert out["NoNewPrivs"] == "1"


def test_readonly_rootfs_masked_and_readonly_paths(h):
    secret = os.path.join(h.tmp, "secret")
    os.makedirs(secret)
    open(os.path.join(secret, "key"), "w").write("hunter2")
    script = (
        "exec 2>&1; touch /new-file; echo secret=$(ls /secret | wc -l); echo group=$(cat /etc/group | wc -c); "
        "echo 1 > /proc/sys/kernel/domainname 2>&1; echo done"
    )
    cfg = h.config(["sh", "-c", script])
    cfg["mounts"].append({"destination": "/secret", "type": "bind", "source": secret, "options": ["rbind"]})
    cfg["linux"]["maskedPaths"] += ["/etc/group", "/secret"]
    out = h.ok("run", "-b", h.bundle(config=cfg), h.cid()).stdout
    assert "Read-only file system" in out.splitlines()[0]
    assert "secret=0" in out and "group=0" in out
    assert out.count("Read-only file system") == 2, out


def test_user_groups_umask_rlimits_cwd_env(h):
    cfg = h.config(["sh", "-c", "id; umask; ulimit -n; pwd; echo $GREETING"])
    cfg["process"]["user"] = {"uid": 1000, "gid": 1001, "additionalGids": [5, 7], "umask": 0o027}
    cfg["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 100, "hard": 200}]
    cfg["process"]["cwd"] = "/tmp"
    cfg["process"]["env"] = ["PATH=/bin", "GREETING=hello there"]
    cfg["mounts"].append(TMPFS_TMP)
    lines = h.ok("run", "-b", h.bundle(config=cfg), h.cid()).stdout.splitlines()
    assert lines[0].startswith("uid=1000 gid=1001") and "groups=5,7" in lines[0]
    assert lines[1:] == ["0027", "100", "/tmp", "hello there"]


def test_an_unlimited_rlimit_is_the_spec_s_2_to_the_64_minus_1(h):
    """RLIM_INFINITY in config.json is 2**64-1 (docker's --ulimit core=-1, runc's own tests): it
    was "Python int too large to convert to C long" and no container."""
    cfg = h.config(["sh", "-c", "ulimit -c; ulimit -Hc; ulimit -s"])
    cfg["process"]["rlimits"] = [{"type": "RLIMIT_CORE", "soft": 2**64 - 1, "hard": 2**64 - 1},
                                 {"type": "RLIMIT_STACK", "soft": 8 << 20, "hard": 2**64 - 1}]
    assert h.ok("run", "-b", h.bundle(config=cfg), h.cid()).stdout.split() == ["unlimited", "unlimited", "8192"]


def test_seccomp_profile_denies_with_errno(h):
    cfg = h.config(["sh", "-c", "mkdir /tmp/x 2>&1; echo rc=$?; touch /tmp/ok && echo touched"])
    cfg["mounts"].append(TMPFS_TMP)
    cfg["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_AARCH64"],
        "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"],  # passed to seccomp(2)
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}],
    }
    out = h.ok("run", "-b", h.bundle(config=cfg), h.cid()).stdout
    assert "Operation not permitted" in out and "rc=1" in out and "touched" in out


def test_sysctl_oom_score_devices_and_domainname(h):
    script = (
        "cat /proc/sys/net/ipv4/ip_forward; cat /proc/self/oom_score_adj; cat /proc/sys/kernel/domainname; "
        "echo hi > /dev/mynull && echo wrote; ls -l /dev/mynull"
    )
    cfg = h.config(["sh", "-c", script], domainname="example.test")
    cfg["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1"}
    cfg["process"]["oomScoreAdj"] = 500
    cfg["linux"]["devices"] = [{"path": "/dev/mynull", "type": "c", "major": 1, "minor": 3, "fileMode": 0o666}]
    lines = h.ok("run", "-b", h.bundle(config=cfg), h.cid()).stdout.splitlines()
    assert lines[:4] == ["1", "500", "example.test", "wrote"]
    assert lines[4].startswith("crw-rw-rw-") and "1,   3" in lines[4]


def test_the_personality_domain_is_the_container_s_and_its_exec_s(h):
    """linux.personality (podman's --personality, runc 1.2): LINUX32 makes `uname -m` say i686 in
    the container and in a process exec'd into it, as runc does; mrun refused it. Its flags are
    ignored with a warning, as runc ignores them (the runtime-spec defines none)."""
    cfg = h.config(["sh", "-c", "uname -m; exec sleep 600"])
    cfg["linux"]["personality"] = {"domain": "LINUX32", "flags": ["ADDR_NO_RANDOMIZE"]}
    cid = h.cid()
    r = h.ok("run", "-d", "-b", h.bundle(config=cfg), cid)
    assert "linux.personality.flags: ignored" in r.stderr, r.stderr
    assert h.ok("exec", cid, "uname", "-m").stdout.strip() == "i686"
    pid = json.loads(h.ok("state", cid).stdout)["pid"]
    assert open(f"/proc/{pid}/personality").read().strip() == "00000008"
    h.ok("delete", "--force", cid)
    cfg["linux"]["personality"] = {"domain": "LINUX"}
    cfg["process"]["args"] = ["uname", "-m"]
    assert h.ok("run", "-b", h.bundle(config=cfg), h.cid()).stdout.strip() == os.uname().machine


def test_a_device_s_file_mode_may_carry_its_file_type_as_podman_writes_it(h):
    """podman's `--device` writes the host node's whole st_mode as fileMode (0o20666: S_IFCHR and
    the permissions); runc takes any 32-bit value there and ors in the type. mrun refused it as
    not a mode from 0 to 0o7777, so `podman run --device` failed. The permission bits are the
    node's; a value past 32 bits is still refused in one line naming the field."""
    cfg = h.config(["sh", "-c", "echo hi > /dev/probe && echo wrote; ls -l /dev/probe"])
    cfg["linux"]["devices"] = [{"path": "/dev/probe", "type": "c", "major": 1, "minor": 3, "fileMode": 0o20640}]
    lines = h.ok("run", "-b", h.bundle(config=cfg), h.cid()).stdout.splitlines()
    assert lines[0] == "wrote" and lines[1].startswith("crw-r----- ") and "1,   3" in lines[1], lines
    cfg["linux"]["devices"][0]["fileMode"] = 1 << 32
    r = h.mrun("run", "-b", h.bundle(config=cfg), h.cid())
    assert r.returncode != 0 and "linux.devices[0].fileMode" in r.stderr and r.stderr.count("\n") == 1, r.stderr
    assert not h.leftovers()


def test_io_priority_and_scheduler_are_the_process_s(h, tmp_path):
    """process.ioPriority and process.scheduler (runtime-spec 1.2, runc 1.2 applies them): were
    refused, and before that silently dropped. Seen from the host, for the init and an exec."""
    from mrun.kernel import syscalls as sc

    cfg = h.config(["sleep", "600"])
    cfg["process"]["ioPriority"] = {"class": "IOPRIO_CLASS_BE", "priority": 6}
    cfg["process"]["scheduler"] = {"policy": "SCHED_BATCH", "nice": 7}
    cid = h.cid()
    h.ok("run", "-d", "-b", h.bundle(config=cfg), cid)
    process = tmp_path / "p.json"
    process.write_text(json.dumps({"args": ["sleep", "500"], "cwd": "/", "ioPriority": {"class": "IOPRIO_CLASS_IDLE"},
                                   "scheduler": {"policy": "SCHED_IDLE"}}))
    h.ok("exec", "-d", "--process", str(process), cid)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # both have exec'd their sleep (applied just before)
        pids = json.loads(h.ok("ps", "--format", "json", cid).stdout)
        if len(pids) == 2 and all(open(f"/proc/{p}/cmdline").read().startswith("sleep") for p in pids):
            break
        time.sleep(0.05)
    init = next(p for p in pids if "600" in open(f"/proc/{p}/cmdline").read())
    other = next(p for p in pids if p != init)
    for pid, io, policy, nice in ((init, (2 << 13) | 6, 3, 7), (other, 3 << 13, 5, 0)):
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()  # from field 3 (state) on
        assert (sc.ioprio_get(pid), int(fields[38]), int(fields[16])) == (io, policy, nice), pid
    h.ok("delete", "--force", cid)


@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [
        ("ioPriority", {"class": "IOPRIO_CLASS_FOO"}, "process.ioPriority.class"),
        ("ioPriority", {"class": "IOPRIO_CLASS_BE", "priority": 8}, "process.ioPriority.priority"),
        ("scheduler", {"policy": "SCHED_FOO"}, "process.scheduler.policy"),
        ("scheduler", {"policy": "SCHED_OTHER", "nice": 20}, "process.scheduler.nice"),
        ("scheduler", {"policy": "SCHED_FIFO", "priority": 0}, "process.scheduler.priority"),
        ("scheduler", {"policy": "SCHED_BATCH", "flags": ["SCHED_FLAG_FOO"]}, "process.scheduler.flags[0]"),
    ],
)
def test_a_bad_io_priority_or_scheduler_is_refused_at_create(h, field, value, needle):
    cfg = h.config(["true"])
    cfg["process"][field] = value
    one_line_error(h.mrun("create", "-b", h.bundle(config=cfg), h.cid()), needle)


def test_a_real_time_scheduler_the_kernel_refuses_fails_create(h, tmp_path):
    """SCHED_FIFO in a cgroup without a real-time budget (cgroup v1 with RT group scheduling: a
    new cgroup's cpu.rt_runtime_us is 0) is EPERM. runc 1.2 sets the scheduler before its create
    returns; mrun set it after `start`, which exited 0 for a container that never ran. Where the
    kernel lets it (no RT group scheduling), the program runs under it."""
    out = tmp_path / "out"
    out.mkdir()
    cfg = h.config(["sh", "-c", "echo ran > /out/ran"])
    cfg["mounts"].append({"destination": "/out", "type": "bind", "source": str(out), "options": ["rbind", "rw"]})
    cfg["process"]["scheduler"] = {"policy": "SCHED_FIFO", "priority": 1}
    cid = h.cid()
    r = h.mrun("create", "-b", h.bundle(config=cfg), cid)
    if r.returncode != 0:
        one_line_error(r, "process.scheduler", "Operation not permitted")
        assert h.mrun("state", cid).returncode != 0
        return
    assert h.ok("start", cid).returncode == 0
    deadline = time.monotonic() + 10
    while json.loads(h.ok("state", cid).stdout)["status"] != "stopped" and time.monotonic() < deadline:
        time.sleep(0.05)
    h.ok("delete", cid)
    assert (out / "ran").read_text() == "ran\n"  # started means it ran


def test_bind_mounts_read_only_and_read_write(h):
    data = os.path.join(h.tmp, "data")
    os.makedirs(data)
    with open(os.path.join(data, "in.txt"), "w") as f:
        f.write("from the host\n")
    cfg = h.config(["sh", "-c", "cat /ro/in.txt; touch /ro/x 2>&1; echo written > /rw/out.txt"])
    cfg["mounts"] += [
        {"destination": "/ro", "type": "bind", "source": data, "options": ["rbind", "ro"]},
        {"destination": "/rw", "type": "bind", "source": data, "options": ["rbind", "rw"]},
    ]
    out = h.ok("run", "-b", h.bundle(config=cfg), h.cid()).stdout
    assert "from the host" in out and "Read-only file system" in out
    assert open(os.path.join(data, "out.txt")).read() == "written\n"


def test_rro_makes_submounts_read_only_too(h):
    """`ro` on an rbind leaves the submounts below it writable; `rro` (mount_setattr) does not,
    and `rrw` undoes it. CRI reports rro support to Kubernetes from `mrun features`."""
    data = os.path.join(h.tmp, "data")
    sub = os.path.join(data, "sub")
    os.makedirs(sub)
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", sub], check=True)
    try:
        script = "for d in ro rro rrw; do for f in top sub/f; do touch /$d/$f 2>/dev/null; echo $d $f=$?; done; done"
        cfg = h.config(["sh", "-c", script])
        cfg["mounts"] += [
            {"destination": "/ro", "type": "bind", "source": data, "options": ["rbind", "ro"]},
            {"destination": "/rro", "type": "bind", "source": data, "options": ["rbind", "rro"]},
            {"destination": "/rrw", "type": "bind", "source": data, "options": ["rbind", "rro", "rrw"]},
        ]
        out = h.ok("run", "-b", h.bundle(config=cfg), h.cid()).stdout.split()
        assert out == "ro top=1 ro sub/f=0 rro top=1 rro sub/f=1 rrw top=0 rrw sub/f=0".split()
        features = json.loads(h.ok("features").stdout)
        assert {"rro", "rrw"} <= set(features["mountOptions"])
    finally:
        subprocess.run(["umount", sub], check=True)


def test_every_recursive_mount_attribute_of_runc_s_is_applied_to_submounts_too(h):
    """runc's recursive mount options past rro/rrw (rnosuid, rnodev, rnoexec, rnoatime,
    rnosymfollow... and their opposites): mrun passed them to the kernel as filesystem data,
    which a bind mount ignores, so a bind asked to be rnoexec ran what it held (seen here) and
    its submounts kept setuid and devices. Each is set by mount_setattr over the mount and every
    mount below it, as runc sets them; a plain option stays on the top mount alone."""
    data = os.path.join(h.tmp, "recursive")
    sub = os.path.join(data, "sub")
    os.makedirs(sub)
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", sub], check=True)
    try:
        shutil.copy(os.path.join(h.rootfs, "bin", "busybox"), os.path.join(sub, "true"))  # (its applet by name)
        script = ("for m in /plain /plain/sub /rec /rec/sub /undone/sub; do "
                  "echo $m $(grep \" $m \" /proc/self/mountinfo | cut -d' ' -f6); done; "
                  "/rec/sub/true 2>/dev/null; echo rec-exec $?; /plain/sub/true; echo plain-exec $?")
        cfg = h.config(["sh", "-c", script])
        recursive = ["rnosuid", "rnodev", "rnoexec", "rnoatime", "rnosymfollow"]
        cfg["mounts"] += [
            {"destination": "/plain", "type": "bind", "source": data, "options": ["rbind", "nosuid", "noexec"]},
            {"destination": "/rec", "type": "bind", "source": data, "options": ["rbind", *recursive]},
            {"destination": "/undone", "type": "bind", "source": data,
             "options": ["rbind", *recursive, "rsuid", "rdev", "rexec", "ratime", "rsymfollow"]},
        ]
        out = dict(line.split(" ", 1) for line in h.ok("run", "-b", h.bundle(config=cfg), h.cid()).stdout.splitlines())
        for wanted in ("nosuid", "nodev", "noexec", "noatime", "nosymfollow"):
            assert wanted in out["/rec"].split(",") and wanted in out["/rec/sub"].split(","), (wanted, out)
            assert wanted not in out["/undone/sub"].split(","), (wanted, out)
        assert "noexec" in out["/plain"].split(",") and "noexec" not in out["/plain/sub"].split(","), out
        assert out["rec-exec"] != "0" and out["plain-exec"] == "0", out
        features = json.loads(h.ok("features").stdout)
        assert set(recursive) <= set(features["mountOptions"])
    finally:
        subprocess.run(["umount", sub], check=True)


@pytest.mark.parametrize("option", ["defaults", "acl", "noacl", "iversion", "noiversion", "silent", "loud",
                                    "lazytime", "nolazytime"])
def test_runc_s_other_mount_flags_are_flags_not_filesystem_data(h, option):
    """runc reads these as mount flags (fstab's "defaults" is none at all); mrun passed them to the
    filesystem as data, which a tmpfs refused: "Invalid argument", the create failed."""
    cfg = h.config(["true"])
    cfg["mounts"].append({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": [option]})
    h.ok("run", "-b", h.bundle(config=cfg), h.cid())
    assert option in json.loads(h.ok("features").stdout)["mountOptions"]


def test_mount_destination_symlink_cannot_escape_the_rootfs(h, busybox_rootfs):
    """A rootfs symlink pointing at a host path must resolve inside the container."""
    rootfs = os.path.join(h.tmp, "evil-rootfs")
    os.makedirs(rootfs)
    os.symlink(os.path.join(busybox_rootfs, "bin"), os.path.join(rootfs, "bin"))
    for d in ("proc", "sys", "dev", "etc"):
        os.makedirs(os.path.join(rootfs, d))
    victim = os.path.join(h.tmp, "host-victim")
    os.makedirs(victim)
    os.symlink(victim, os.path.join(rootfs, "escape"))
    cfg = h.config(["/bin/true"])
    cfg["root"] = {"path": rootfs, "readonly": False}
    cfg["mounts"].append({"destination": "/escape/sub", "type": "tmpfs", "source": "tmpfs"})
    h.mrun("run", "-b", h.bundle(config=cfg), h.cid())
    assert not os.path.exists(os.path.join(victim, "sub")), "a mount destination escaped through a symlink"


def _in_a_user_namespace(h, cfg: dict) -> None:
    """A user namespace whose root is host uid 200000, which must reach the rootfs: pytest's
    directories are 0700."""
    open_to_others(h.rootfs)
    cfg["linux"]["namespaces"].append({"type": "user"})
    cfg["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 200000, "size": 65536}]
    cfg["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 200000, "size": 65536}]


def test_user_namespace_with_mappings(h):
    cfg = h.config(["sh", "-c", "id -u; cat /proc/self/uid_map"])
    _in_a_user_namespace(h, cfg)
    lines = h.ok("run", "-b", h.bundle(config=cfg), h.cid()).stdout.splitlines()
    assert lines[0] == "0"
    assert lines[1].split() == ["0", "200000", "65536"]


@pytest.mark.parametrize("user", [False, True])
def test_time_offsets_are_set_in_the_new_time_namespace(h, user):
    """linux.timeOffsets went unapplied: the time namespace was made, its clocks not moved. Set
    now, before anything enters it (also under a user namespace, which owns the time one)."""
    cfg = h.config(["sh", "-c", "cat /proc/self/timens_offsets; cut -d. -f1 /proc/uptime"])
    cfg["linux"]["namespaces"].append({"type": "time"})
    if user:
        _in_a_user_namespace(h, cfg)
    year = 365 * 86400
    cfg["linux"]["timeOffsets"] = {"boottime": {"secs": year, "nanosecs": 5}, "monotonic": {"secs": -100}}
    lines = h.ok("run", "-b", h.bundle(config=cfg), h.cid()).stdout.splitlines()
    offsets = {line.split()[0]: line.split()[1:] for line in lines[:2]}
    assert offsets == {"boottime": [str(year), "5"], "monotonic": ["-100", "0"]}, lines
    host_uptime = float(open("/proc/uptime").read().split()[0])
    assert int(lines[2]) >= host_uptime + year - 5, (lines, host_uptime)


def test_time_offsets_without_a_new_time_namespace_or_out_of_range_are_refused(h):
    cfg = h.config(["true"])
    cfg["linux"]["timeOffsets"] = {"monotonic": {"secs": 1}}
    one_line_error(h.mrun("run", "-b", h.bundle(config=cfg), h.cid()), "linux.timeOffsets", "new time namespace")
    cfg["linux"]["namespaces"].append({"type": "time"})
    cfg["linux"]["timeOffsets"] = {"monotonic": {"secs": -(2**62)}}  # the kernel's refusal, and nothing left
    one_line_error(h.mrun("run", "-b", h.bundle(config=cfg), h.cid()), "linux.timeOffsets", "cannot set")


@pytest.mark.parametrize("kind", ["network", "pid"])
def test_joining_another_containers_namespace(h, kind):
    """A namespace path: joined by the container's process itself, or, for PID, by the host for
    the one fork that makes the init (then PID 1 there is the first container's init)."""
    first = h.cid(kind[:3])
    h.ok("run", "-d", "-b", h.bundle(["sleep", "60"], hostname="first"), first)
    pid = json.loads(h.ok("state", first).stdout)["pid"]
    link = {"network": "net", "pid": "pid"}[kind]
    cfg = h.config(["sh", "-c", f"readlink /proc/self/ns/{link}; tr '\\0' ' ' < /proc/1/cmdline"])
    cfg["linux"]["namespaces"] = [
        ns if ns["type"] != kind else {"type": kind, "path": f"/proc/{pid}/ns/{link}"}
        for ns in cfg["linux"]["namespaces"]
    ]
    out = h.ok("run", "-b", h.bundle(config=cfg), h.cid()).stdout.split()
    assert out[0] == os.readlink(f"/proc/{pid}/ns/{link}")
    if kind == "pid":
        assert out[1:] == ["sleep", "60"], "PID 1 of the joined namespace is not the first container's init"
    h.ok("delete", "--force", first)


def test_every_host_side_child_stays_in_the_hosts_pid_namespace(h):
    """The host unshares (or joins) the container's PID namespace for its next child only; the
    hooks it runs after that fork must still be in its own."""
    out = os.path.join(h.tmp, "hook-ns")
    hooks = {
        kind: [{"path": "/bin/sh", "args": ["sh", "-c", f"echo {kind} $(readlink /proc/self/ns/pid) >> {out}"]}]
        for kind in ("prestart", "createRuntime", "poststart", "poststop")
    }
    h.ok("run", "-b", h.bundle(["true"], hooks=hooks), h.cid())
    seen = dict(line.split() for line in open(out).read().splitlines())
    assert set(seen) == {"prestart", "createRuntime", "poststart", "poststop"}
    assert set(seen.values()) == {os.readlink("/proc/self/ns/pid")}, seen


@pytest.mark.parametrize("kind", ["pid", "network", "mount"])
def test_a_namespace_path_of_the_wrong_kind_is_one_line_and_leaves_nothing(h, kind):
    cfg = h.config(["true"])
    wrong = "net" if kind != "network" else "uts"
    cfg["linux"]["namespaces"] = [ns for ns in cfg["linux"]["namespaces"] if ns["type"] != kind] + [
        {"type": kind, "path": f"/proc/self/ns/{wrong}"}
    ]
    cid = h.cid()
    one_line_error(h.mrun("create", "-b", h.bundle(config=cfg), cid),
                   f"cannot join {kind} namespace /proc/self/ns/{wrong}")
    assert h.mrun("state", cid).returncode != 0
    assert not h.leftovers()


def test_cgroup_is_removed_with_the_container(h):
    cfg = h.config(["sleep", "60"])
    cid = h.cid()
    h.ok("run", "-d", "-b", h.bundle(config=cfg), cid)
    assert cgroup_dirs(cfg["linux"]["cgroupsPath"])
    h.ok("delete", "--force", cid)
    assert not cgroup_dirs(cfg["linux"]["cgroupsPath"])


KEYCTL = {"x86_64": 250, "aarch64": 219}[os.uname().machine]
ADD_KEY = {"x86_64": 248, "aarch64": 217}[os.uname().machine]
SECRET = "mrun-test-secret"


def with_a_secret_in_our_session_keyring() -> None:
    """The caller's own session keyring holding a key only its possessors may see (as a login
    session's or a service's keyring holds credentials)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.syscall(KEYCTL, 1, None) > 0  # KEYCTL_JOIN_SESSION_KEYRING: a new anonymous one
    key = libc.syscall(ADD_KEY, b"user", SECRET.encode(), b"s3cret", 6, -3)  # into KEY_SPEC_SESSION_KEYRING
    assert key > 0 and libc.syscall(KEYCTL, 5, key, 0x3F000000) == 0  # KEYCTL_SETPERM: possessor only


def run_with_secret(h, *args: str) -> subprocess.CompletedProcess[str]:
    """Output through files: a detached container keeps mrun's stdio (a pipe would never end)."""
    import tempfile

    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        r = subprocess.run([h.binary, "--root", h.root, *args], stdout=out, stderr=err, timeout=60,
                           stdin=subprocess.DEVNULL, preexec_fn=with_a_secret_in_our_session_keyring)
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(r.args, r.returncode, out.read(), err.read())


def test_a_container_gets_a_session_keyring_of_its_own(h):
    """Keyrings are not namespaced: a container in its caller's session keyring possesses the
    caller's keys. As runc, each container joins a new one named _ses.<id> (exec joins it too),
    and --no-new-keyring keeps the caller's."""
    def bundle(args: list[str]) -> str:
        cfg = h.config(args)
        cfg["linux"]["maskedPaths"] = []  # the default masks /proc/keys: here it is what we look at
        return h.bundle(config=cfg)

    cid = h.cid("keys")
    r = run_with_secret(h, "run", "-d", "-b", bundle(["sleep", "60"]), cid)
    assert r.returncode == 0, r.stderr
    try:
        joined = run_with_secret(h, "exec", cid, "cat", "/proc/keys")
    finally:
        h.ok("delete", "--force", cid)
    assert joined.returncode == 0, joined.stderr
    assert SECRET not in joined.stdout and f"_ses.{cid}" in joined.stdout, joined.stdout
    own = h.cid("keys")
    inside = run_with_secret(h, "run", "-b", bundle(["cat", "/proc/keys"]), own)
    assert inside.returncode == 0, inside.stderr
    assert SECRET not in inside.stdout and f"_ses.{own}" in inside.stdout, inside.stdout
    caller_s = h.cid("keys")
    kept = run_with_secret(h, "run", "--no-new-keyring", "-b", bundle(["cat", "/proc/keys"]), caller_s)
    assert kept.returncode == 0 and SECRET in kept.stdout and f"_ses.{caller_s}" not in kept.stdout, kept.stdout




def test_a_new_cgroup_namespace_is_rooted_at_the_containers_cgroup(h):
    """As runc does it: the container is in its cgroup before its cgroup namespace is made, so
    it sees itself at "/", for its init, an exec'd process and under a user namespace alike."""
    open_to_others(h.rootfs)  # the mapped root must reach the rootfs: pytest's dirs are 0700
    for userns in (False, True):
        cfg = h.config(["sh", "-c", "cat /proc/self/cgroup; sleep 60"])
        assert {"type": "cgroup"} in cfg["linux"]["namespaces"]  # `mrun spec`'s default, as runc's
        if userns:
            cfg["linux"]["namespaces"].append({"type": "user"})
            cfg["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 200000, "size": 65536}]
            cfg["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 200000, "size": 65536}]
        cid = h.cid()
        h.ok("run", "-d", "-b", h.bundle(config=cfg), cid)
        pid = json.loads(h.ok("state", cid).stdout)["pid"]
        with open(f"/proc/{pid}/cgroup") as f:
            host_view = f.read().splitlines()
        assert host_view and all(line.endswith(cfg["linux"]["cgroupsPath"]) for line in host_view), host_view
        inside = h.ok("exec", cid, "cat", "/proc/self/cgroup").stdout.splitlines()
        assert inside and all(line.endswith(":/") for line in inside), (userns, inside)
        h.ok("delete", "--force", cid)


def test_a_pids_limit_of_one_admits_the_init_itself(h):
    """Only the container's process is ever in its cgroup: none of the set-up processes."""
    cfg = h.config(["true"])
    cfg["linux"]["resources"] = {"pids": {"limit": 1}}
    h.ok("run", "-b", h.bundle(config=cfg), h.cid())


def _owned_tree(h) -> str:
    """A bind source (world-readable, so a user namespace's root reaches it): files owned 0:0
    and 5:7, and a directory ``sub`` for a submount."""
    src = os.path.join(h.tmp, "idmap-src")
    os.makedirs(os.path.join(src, "sub"))
    for name, ids in (("zero", (0, 0)), ("five", (5, 7))):
        path = os.path.join(src, name)
        with open(path, "w") as f:
            f.write(name)
        os.chown(path, *ids)
    open_to_others(src)
    return src


def _ids_seen(h, cfg: dict, *paths: str) -> list[str]:
    cfg["process"]["args"] = ["stat", "-c", "%u:%g", *paths]
    return h.ok("run", "-b", h.bundle(config=cfg), h.cid("idm")).stdout.split()


def test_an_idmapped_bind_mount_shows_its_files_through_the_mount_s_mappings(h):
    """runtime-spec 1.2's idmapped mounts (mounts[].uidMappings/gidMappings, and the idmap and
    ridmap options): Kubernetes' user-namespaced pods (hostUsers: false) ask containerd 2.x for them,
    once the runtime's features say it has them. mrun ignored both fields, so a volume's files
    kept their host owners (overflow ids inside a user namespace), which the spec added the
    options to prevent ("so that older runtimes will not silently ignore this field")."""
    src = _owned_tree(h)
    maps = {"uidMappings": [{"containerID": 0, "hostID": 1000, "size": 10}],
            "gidMappings": [{"containerID": 0, "hostID": 2000, "size": 10}]}
    cfg = h.config(["true"])
    cfg["mounts"].append({"destination": "/root", "type": "bind", "source": src, "options": ["rbind", "ro"], **maps})
    assert _ids_seen(h, cfg, "/root/zero", "/root/five") == ["1000:2000", "1005:2007"]
    # written through, as its mappings say: the container's root (host 0) has no id on this mount
    cfg = h.config(["sh", "-c", "touch /root/new"])
    cfg["mounts"].append({"destination": "/root", "type": "bind", "source": src, "options": ["bind"], **maps})
    r = h.mrun("run", "-b", h.bundle(config=cfg), h.cid("idw"))
    assert r.returncode != 0 and "Value too large" in r.stderr + r.stdout  # root (0) is not mapped here
    assert not os.path.exists(os.path.join(src, "new"))


def test_the_idmap_option_alone_takes_the_container_s_user_namespace_mappings(h):
    """`idmap` with no mappings of its own: the container's (spec 1.2). In a user namespace whose
    root is host 200000, a volume's root-owned files are its root's, not the overflow id."""
    src = _owned_tree(h)
    cfg = h.config(["true"])
    _in_a_user_namespace(h, cfg)
    cfg["mounts"].append({"destination": "/root", "type": "bind", "source": src, "options": ["rbind", "idmap"]})
    assert _ids_seen(h, cfg, "/root/zero", "/root/five") == ["0:0", "5:7"]
    cfg = h.config(["true"])
    _in_a_user_namespace(h, cfg)
    cfg["mounts"].append({"destination": "/root", "type": "bind", "source": src, "options": ["rbind"]})
    assert _ids_seen(h, cfg, "/root/zero") == ["65534:65534"]  # the same mount, not idmapped


def test_ridmap_maps_the_submounts_of_an_rbind_and_idmap_only_its_top(h):
    src = _owned_tree(h)
    sub = os.path.join(src, "sub")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=0755", "idmap-sub", sub], check=True)
    try:
        open(os.path.join(sub, "f"), "w").close()
        maps = {"uidMappings": [{"containerID": 0, "hostID": 300, "size": 10}],
                "gidMappings": [{"containerID": 0, "hostID": 300, "size": 10}]}
        seen = {}
        for option in ("idmap", "ridmap"):
            cfg = h.config(["true"])
            cfg["mounts"].append({"destination": "/root", "type": "bind", "source": src,
                                  "options": ["rbind", option], **maps})
            seen[option] = _ids_seen(h, cfg, "/root/zero", "/root/sub/f")
        assert seen == {"idmap": ["300:300", "0:0"], "ridmap": ["300:300", "300:300"]}
    finally:
        subprocess.run(["umount", sub], check=True)


def test_idmapped_mounts_that_cannot_be_made_are_refused_in_one_line(h):
    """runc's rules: bind mounts only, both mappings, and the idmap option without mappings needs
    the container's own; a filesystem that cannot be idmapped (procfs) is the kernel's refusal,
    naming the mount. Each leaves nothing (the harness checks mounts, cgroups, state)."""
    src = _owned_tree(h)
    one = [{"containerID": 0, "hostID": 1000, "size": 1}]
    cases = [
        ({"destination": "/t", "type": "tmpfs", "source": "tmpfs", "uidMappings": one, "gidMappings": one},
         "mounts[N]", "bind"),
        ({"destination": "/root", "type": "bind", "source": src, "options": ["bind"], "uidMappings": one},
         "mounts[N].gidMappings", "both"),
        ({"destination": "/root", "type": "bind", "source": src, "options": ["bind", "idmap"]},
         "mounts[N]", "user namespace"),
        ({"destination": "/root", "type": "bind", "source": "/proc", "options": ["rbind"], "uidMappings": one,
          "gidMappings": one}, "mounts[N]", "/root"),
    ]
    for mount, *needles in cases:
        cfg = h.config(["true"])
        cfg["mounts"].append(mount)
        index = str(len(cfg["mounts"]) - 1)
        one_line_error(h.mrun("run", "-b", h.bundle(config=cfg), h.cid("bad")),
                       *(n.replace("N", index) for n in needles))


def test_a_user_namespace_s_bind_sources_are_reached_by_the_host_not_its_mapped_root(h):
    """containerd's bundles and CRI's sandbox directories are root's alone (0700): a container
    whose root is host uid 200000 could not reach the sources of its bind mounts (CRI's
    /dev/shm, /etc/hosts, a volume), and its create failed ("... does not exist"). The host clones
    each source before the init enters the user namespace (runc opens them there too); files and
    directories alike, and read-only stays read-only."""
    private = os.path.join(h.tmp, "root-only")
    os.makedirs(os.path.join(private, "dir"))
    os.chmod(private, 0o700)
    with open(os.path.join(private, "dir", "f"), "w") as f:
        f.write("in-dir\n")
    with open(os.path.join(private, "hosts"), "w") as f:
        f.write("10.9.8.7 somewhere\n")
    cfg = h.config(["sh", "-c", "cat /root/f /etc/group; touch /root/g 2>&1 | grep -c Read-only"])
    _in_a_user_namespace(h, cfg)
    cfg["mounts"] += [
        {"destination": "/root", "type": "bind", "source": os.path.join(private, "dir"), "options": ["rbind", "ro"]},
        {"destination": "/etc/group", "type": "bind", "source": os.path.join(private, "hosts"), "options": ["bind"]},
    ]
    r = h.ok("run", "-b", h.bundle(config=cfg), h.cid("priv"))
    assert r.stdout.split("\n")[:3] == ["in-dir", "10.9.8.7 somewhere", "1"], r.stdout


def test_a_user_namespace_container_gets_its_oom_score_adj(h):
    """CRI gives every container an oomScoreAdj. Written by the init from inside its user
    namespace, /proc/self/oom_score_adj is not its root's to write (EACCES): every user-namespaced
    pod failed. It is set before the user namespace is entered, as host root, and inherited."""
    cfg = h.config(["cat", "/proc/self/oom_score_adj"])
    _in_a_user_namespace(h, cfg)
    cfg["process"]["oomScoreAdj"] = 500
    assert h.ok("run", "-b", h.bundle(config=cfg), h.cid("oom")).stdout.strip() == "500"


@pytest.mark.parametrize("userns", [False, True])
def test_an_exec_d_process_gets_the_container_s_oom_score_adj(h, userns):
    """runc gives every exec'd process the container's oomScoreAdj (an exec's own process.json
    value is not read). mrun's inherited its caller's: a shim runs at containerd's score + 1
    (-998 where containerd's unit says -999), so a `kubectl exec`'d process was all but
    unkillable by the OOM killer, in its own memory cgroup as on the node. The caller here sits
    at 200, the container at 500; in a user namespace too (set before it is joined)."""
    cfg = h.config(["sleep", "600"])
    if userns:
        _in_a_user_namespace(h, cfg)
    cfg["process"]["oomScoreAdj"] = 500
    cid = h.cid("oomx")
    h.ok("run", "-d", "-b", h.bundle(config=cfg), cid)
    try:
        process = dict(cfg["process"], args=["cat", "/proc/self/oom_score_adj"], oomScoreAdj=300)
        path = os.path.join(h.tmp, "process.json")
        with open(path, "w") as f:
            json.dump(process, f)

        def at_200() -> None:
            with open("/proc/self/oom_score_adj", "w") as f:
                f.write("200")

        for argv in (["exec", cid, "cat", "/proc/self/oom_score_adj"], ["exec", "--process", path, cid]):
            r = h.mrun(*argv, preexec_fn=at_200)
            assert r.returncode == 0 and r.stdout.strip() == "500", (argv, r.stdout, r.stderr)
    finally:
        h.mrun("delete", "--force", cid)


def test_a_user_namespace_container_gets_rlimits_above_its_caller_s(h):
    """podman's default nofile (1048576) is above a caller's hard limit more often than not, and
    raising a hard limit needs CAP_SYS_RESOURCE in the host's user namespace: set by the init
    from inside its own, it failed ("not allowed to raise maximum limit"), and every podman
    --uidmap run with it. The host sets them on the process (prlimit) before it goes on, as runc
    does; an exec'd process likewise. Raising needs CAP_SYS_RESOURCE, which root lacks on some
    hosts (containers; this test machine among them): there no process may raise a hard limit,
    in a user namespace or not, and the test has nothing to show."""
    import resource

    status = open("/proc/self/status").read()
    if not int(status.split("CapEff:")[1].split()[0], 16) & (1 << 24):
        pytest.skip("this host's root lacks CAP_SYS_RESOURCE: no process here may raise a hard limit")

    def low() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))

    cfg = h.config(["sh", "-c", "ulimit -Hn; ulimit -Sn; exec sleep 60"])
    _in_a_user_namespace(h, cfg)
    cfg["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 4096, "hard": 8192}]
    cid = h.cid("rl")
    h.ok("run", "-d", "-b", h.bundle(config=cfg), cid, preexec_fn=low)
    r = h.ok("exec", cid, "sh", "-c", "ulimit -Hn; ulimit -Sn", preexec_fn=low)
    assert r.stdout.split() == ["8192", "4096"], r.stdout
    pid = json.loads(h.ok("state", cid).stdout)["pid"]
    assert "Max open files            4096                 8192" in open(f"/proc/{pid}/limits").read()
    h.ok("delete", "--force", cid)

"""Where runc's users would notice a difference: bundles made by `runc spec`, propagation,
namespaces that are not new, the BFQ weight file, the order of start and poststart."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid

import pytest
from busybox_bundle import make_rootfs
from conftest import one_line_error, open_to_others, require, warm_served


def beside_runc(h, tmp_path, runc: str, name: str) -> list[tuple[str, list[str], str]]:
    """runc, then mrun, each with its own state root: [(which, its command, a container id)]."""
    return [("runc", [runc, "--root", str(tmp_path / "runc-root")], f"{name}-{uuid.uuid4().hex[:6]}"),
            ("mrun", [h.binary, "--root", h.root], h.cid(name))]


def test_a_bundle_made_by_runc_spec_runs_unchanged(h, tmp_path):
    """`runc spec`'s ambient capabilities are not inheritable: runc warns and carries on, so do we.
    Its terminal is true, so the foreground run proxies a pty, fed here through stdin."""
    runc = require("runc", "runc")
    bundle = tmp_path / "runc-spec-bundle"
    bundle.mkdir()
    subprocess.run([runc, "spec"], cwd=bundle, check=True)
    make_rootfs(str(bundle / "rootfs"))
    cid = h.cid("spec")
    r = subprocess.run([h.binary, "--root", h.root, "run", "-b", str(bundle), cid], input="echo hi-from-spec; exit 3\n",
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 3, r.stderr
    assert "hi-from-spec" in r.stdout
    assert "ambient" in r.stderr and "Traceback" not in r.stderr
    assert json.loads((bundle / "config.json").read_text())["process"]["terminal"] is True  # unchanged
    assert not os.path.exists(os.path.join(h.root, cid))  # run removed it


@pytest.mark.parametrize("args", [("create",), ("create", "--bogus", "x"), ("kill",), ("state", "a", "b"),
                                  ("delete", "--bogus", "x"), ("--bogus", "state", "x")])
def test_usage_errors_exit_as_runc_s_and_are_logged(h, tmp_path, args):
    """A client that passes a flag mrun lacks (a newer containerd) sees what runc would give:
    exit 1 and, once the global flags were read, a level=error record in --log naming it."""
    runc = require("runc", "runc")
    for name, binary, root in (("runc", runc, str(tmp_path / "runc-root")), ("mrun", h.binary, h.root)):
        log = tmp_path / f"{name}.json"
        r = subprocess.run([binary, "--root", root, "--log", str(log), "--log-format", "json", *args],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 1, (name, r)
        records = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
        if args[0] != "--bogus":  # before the global flags are read there is no log to write to
            assert records and records[-1]["level"] == "error", (name, records)


def test_no_arguments_is_the_help_on_stdout_and_exit_0_as_runc_s(h, tmp_path):
    """`mrun` alone: runc (and docker) print their help on stdout and exit 0; click's way was
    stderr and exit 2. Warm and cold alike, and quietly into a reader that stops early."""
    runc = require("runc", "runc")
    for name, binary, env in (("runc", runc, {}), ("mrun", h.binary, {}), ("mrun cold", h.binary, {"MRUN_WARM": "0"})):
        r = subprocess.run([binary], capture_output=True, text=True, timeout=30, env={**os.environ, **env})
        assert r.returncode == 0 and "USAGE" in r.stdout.upper() and not r.stderr, (name, r)
    head = subprocess.run(f"{h.binary} | head -c 1; exit ${{PIPESTATUS[0]}}", shell=True, executable="/bin/bash",
                          capture_output=True, text=True, timeout=30)
    assert head.returncode == 0 and head.stdout == "U" and not head.stderr, head


def test_exec_user_without_a_group_keeps_the_container_s_gid_as_runc_does(h, tmp_path):
    """`exec --user UID` (runc's uid[:gid]) changes the uid alone: the gid and the additional
    groups stay the container process's, as runc keeps them. mrun gave gid 0, the root group,
    which a container running as 1000:1000 never had."""
    runc = require("runc", "runc")
    cfg = h.config(["sleep", "60"])
    cfg["process"]["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [500]}
    got = {}
    for name in ("runc", "mrun"):
        cfg["linux"]["cgroupsPath"] = f"{h.cgroup_parent}/{uuid.uuid4().hex[:8]}"
        bundle = h.bundle(config=cfg)
        if name == "runc":
            base, cid = [runc, "--root", str(tmp_path / "runc-root")], f"user-{uuid.uuid4().hex[:6]}"
        else:
            base, cid = [h.binary, "--root", h.root], h.cid("user")
        subprocess.run([*base, "run", "-d", "-b", bundle, cid], check=True, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
        try:
            got[name] = [
                subprocess.run([*base, "exec", *user, cid, "sh", "-c", "echo $(id -u) $(id -g) $(id -G)"],
                               capture_output=True, text=True, check=True, timeout=30).stdout.split()
                for user in ([], ["--user", "2000"], ["--user", "2000:3000"])
            ]
        finally:
            subprocess.run([*base, "delete", "--force", cid], capture_output=True, timeout=30)
    assert got["mrun"] == got["runc"], got
    assert got["mrun"][1][:2] == ["2000", "1000"], got


def _mem_dir(h, cid: str) -> dict:
    with open(os.path.join(h.root, cid, "state.json")) as f:
        return json.load(f)["cgroup"]


def test_raising_and_lowering_memory_with_swap_in_one_update(h):
    """containerd's UpdateContainerResources sets swap = memory: raising 48 -> 96 MiB must write
    swap first (the kernel refuses memory above memsw), lowering memory first; the CPU quota in
    the same request lands too. A request that fails part-way changes nothing."""
    mib = 1 << 20
    cfg = h.config(["sleep", "60"])
    cfg["linux"]["resources"] = {"memory": {"limit": 48 * mib, "swap": 48 * mib}}
    cid = h.cid()
    h.ok("run", "-d", "-b", h.bundle(config=cfg), cid)
    cg = _mem_dir(h, cid)
    if cg["version"] != 1:
        return  # v2 has no such ordering rule: memory.max and memory.swap.max are independent
    mem, cpu = cg["paths"]["memory"], cg["paths"]["cpu"]
    if not os.path.exists(os.path.join(mem, "memory.memsw.limit_in_bytes")):
        return  # no swap accounting on this kernel: nothing to order
    read = lambda d, f: open(os.path.join(d, f)).read().strip()  # noqa: E731
    for limit, quota in ((96 * mib, 50000), (32 * mib, 20000)):
        res = {"memory": {"limit": limit, "swap": limit}, "cpu": {"quota": quota, "period": 100000}}
        path = os.path.join(h.tmp, f"res-{limit}.json")
        with open(path, "w") as f:
            json.dump(res, f)
        h.ok("update", "-r", path, cid)
        assert int(read(mem, "memory.limit_in_bytes")) == limit
        assert int(read(mem, "memory.memsw.limit_in_bytes")) == limit
        assert int(read(cpu, "cpu.cfs_quota_us")) == quota
    bad = os.path.join(h.tmp, "bad.json")
    with open(bad, "w") as f:
        json.dump({"memory": {"limit": 64 * mib, "swap": 64 * mib}, "cpu": {"cpus": "4096"}}, f)
    r = h.mrun("update", "-r", bad, cid)
    assert r.returncode != 0 and "cpuset.cpus" in r.stderr and "linux.resources.cpu.cpus" in r.stderr
    assert int(read(mem, "memory.limit_in_bytes")) == 32 * mib  # all or nothing
    h.ok("delete", "--force", cid)


def test_update_takes_runc_s_flags_and_sizes(h):
    """runc's update flags as podman and scripts pass them: --cpu-share (mrun spelled it
    --cpu-shares), sizes such as 64m, -1 for unlimited; a value runc refuses (--memory -5 was
    written to the cgroup and refused by the kernel, naming the file) is one line naming the
    flag, and changes nothing; -r makes the flags ignored, as in runc."""
    from conftest import one_line_error

    cid = h.cid()
    h.ok("run", "-d", "-b", h.bundle(config=h.config(["sleep", "60"])), cid)
    cg = _mem_dir(h, cid)
    v1 = cg["version"] == 1

    def value(controller: str, v1_file: str, v2_file: str) -> str:
        base = cg["paths"][controller] if v1 else cg["path"]
        with open(os.path.join(base, v1_file if v1 else v2_file)) as f:
            return f.read().strip()

    h.ok("update", "--memory", "64m", "--cpu-share", "512", "--pids-limit", "20", cid)
    assert int(value("memory", "memory.limit_in_bytes", "memory.max")) == 64 << 20
    assert value("cpu", "cpu.shares", "cpu.weight") == ("512" if v1 else "20")
    assert value("pids", "pids.max", "pids.max") == "20"
    h.ok("update", "--memory", "1.5g", "--cpu-shares", "256", cid)
    assert int(value("memory", "memory.limit_in_bytes", "memory.max")) == 3 << 29
    h.ok("update", "--memory", "-1", cid)
    assert value("memory", "memory.limit_in_bytes", "memory.max") in ("max", str((1 << 63) - 1), "9223372036854771712")
    h.ok("update", "--memory", "32MiB", cid)
    for args, needle in ((["--memory", "-5"], "--memory"), (["--memory", "abc"], "--memory"),
                         (["--cpu-period", "-5"], "--cpu-period"), (["--cpu-quota", "x"], "--cpu-quota"),
                         (["--memory-reservation", "1.2.3m"], "--memory-reservation"),
                         (["--l3-cache-schema", "L3:0=f"], "--l3-cache-schema"),
                         (["--cpu-share", "1"], "linux.resources.cpu.shares: must be 2 to 262144")):
        one_line_error(h.mrun("update", *args, cid), needle)
        assert int(value("memory", "memory.limit_in_bytes", "memory.max")) == 32 << 20
    r = h.mrun("update", "--kernel-memory", "5m", cid)
    assert r.returncode == 0 and "kernel memory settings are ignored" in r.stderr
    path = os.path.join(h.tmp, "res.json")
    with open(path, "w") as f:
        json.dump({"pids": {"limit": 30}}, f)
    h.ok("update", "-r", path, "--memory", "abc", "--pids-limit", "40", cid)
    assert value("pids", "pids.max", "pids.max") == "30"
    with open(path, "w") as f:
        json.dump({"memory": {"limit": -5}}, f)
    one_line_error(h.mrun("update", "-r", path, cid), "linux.resources.memory.limit")
    h.ok("delete", "--force", cid)


def test_a_resource_value_whose_bytes_are_not_text_is_one_line_and_changes_nothing(h):
    """A value bound for a cgroup file that is not UTF-8: a byte of argv (`update --cpuset-cpus
    $'0\\xff'`) or a lone surrogate escape in a resources file. The value was encoded as text
    on its way to the kernel, and the encoder's error was an internal one (fuzzing runc's verbs
    found it). The bytes go to the kernel as they were given, which refuses them; a surrogate no
    bytes stand for is refused before: one line naming the field, the cgroup as it was. The
    same at create, from config.json."""
    from conftest import one_line_error

    cid = h.cid()
    h.ok("run", "-d", "-b", h.bundle(config=h.config(["sleep", "60"])), cid)
    cg = _mem_dir(h, cid)
    cpus = os.path.join(cg["paths"]["cpuset"] if cg["version"] == 1 else cg["path"], "cpuset.cpus")
    pids = os.path.join(cg["paths"]["pids"] if cg["version"] == 1 else cg["path"], "pids.max")
    with open(cpus) as f, open(pids) as g:
        before = f.read(), g.read()
    one_line_error(h.mrun("update", "--cpuset-cpus", b"0\xff", cid), "linux.resources.cpu.cpus")
    path = os.path.join(h.tmp, "res.json")
    for cpus_value in ("\udcff", "0\ud800"):  # (json.dumps writes each as its \\u escape)
        with open(path, "w") as f:
            json.dump({"pids": {"limit": 30}, "cpu": {"cpus": cpus_value}}, f)
        one_line_error(h.mrun("update", "-r", path, cid), "linux.resources.cpu.cpus")
    with open(cpus) as f, open(pids) as g:
        assert (f.read(), g.read()) == before
    h.ok("delete", "--force", cid)
    cfg = h.config(["true"])
    cfg["linux"]["resources"] = {"cpu": {"cpus": "0\udcff"}}  # and at create, from config.json
    one_line_error(h.mrun("run", "-b", h.bundle(config=cfg), h.cid()), "linux.resources.cpu.cpus")


def test_exec_takes_docker_s_spellings(h):
    """`exec -it ID sh`, `-w DIR` and `-u NAME`, as docker's users type them (each was a usage
    error). A name is looked up in the container's own /etc/passwd, read inside its rootfs: a
    link there to the host's file is not followed out."""
    from conftest import one_line_error

    cid = h.cid()
    cfg = h.config(["sleep", "60"])
    cfg["root"]["path"] = "rootfs"
    bundle = h.bundle(config=cfg)
    make_rootfs(os.path.join(bundle, "rootfs"))
    h.ok("run", "-d", "-b", bundle, cid)
    assert h.ok("exec", "-i", "-w", "/tmp", "-u", "nobody", cid, "sh", "-c", "pwd; id -u; id -g").stdout.split() == [
        "/tmp", "65534", "65534"]
    assert h.ok("exec", "-u", "1:2", cid, "sh", "-c", "id -u; id -g").stdout.split() == ["1", "2"]
    one_line_error(h.mrun("exec", "-u", "nosuchuser", cid, "true"), "no user 'nosuchuser'")
    one_line_error(h.mrun("exec", "-u", "²", cid, "true"), "no user")  # a digit to isdigit, not to int()
    one_line_error(h.mrun("exec", "-u", "4294967295", cid, "true"), "process.user.uid")  # it ran as root
    host_passwd = os.path.join(h.tmp, "host-passwd")
    with open(host_passwd, "w") as f:
        f.write("hostonly:x:4242:4242::/:/bin/sh\n")
    passwd = os.path.join(bundle, "rootfs", "etc", "passwd")
    os.remove(passwd)
    os.symlink(host_passwd, passwd)  # resolved inside the rootfs, where that path does not exist
    one_line_error(h.mrun("exec", "-u", "hostonly", cid, "true"), "no user 'hostonly'")
    h.ok("delete", "--force", cid)


def test_an_unknown_capability_is_a_warning_and_left_out(h, tmp_path):
    """The runtime-spec (since 1.1): a capability that cannot be mapped to the kernel MUST be
    logged as a warning, and the runtime SHOULD NOT fail (1.0 said error; runc warns and goes
    on). A name newer than mrun's table, from a newer podman or containerd, failed the create.
    The container runs with the capabilities it named that exist; an exec's too."""
    cid = h.cid()
    cfg = h.config(["sh", "-c", "grep CapBnd /proc/self/status; sleep 60"])
    for name in ("bounding", "effective", "permitted"):
        cfg["process"]["capabilities"][name] = ["CAP_CHOWN", "CAP_FROM_THE_FUTURE"]
    out, err = tmp_path / "out", tmp_path / "err"
    with open(out, "w") as f, open(err, "w") as e:  # files: the container keeps its stdio open
        r = subprocess.run([h.binary, "--root", h.root, "run", "-d", "-b", h.bundle(config=cfg), cid],
                           stdout=f, stderr=e, timeout=30, env={**os.environ, **h.base_env})
    assert r.returncode == 0, err.read_text()
    said = err.read_text()
    assert said == "mrun: warning: process.capabilities: unknown capabilities, left out: 'CAP_FROM_THE_FUTURE'\n", said
    process = tmp_path / "process.json"
    process.write_text(json.dumps({"args": ["grep", "CapBnd", "/proc/self/status"], "cwd": "/", "env": ["PATH=/bin"],
                                   "user": {"uid": 0, "gid": 0},
                                   "capabilities": {"bounding": ["CAP_KILL", "CAP_NOPE\n\x1b[2J"]}}))
    r = h.mrun("exec", "--process", str(process), cid)
    assert r.returncode == 0 and r.stderr.count("\n") == 1 and "'CAP_NOPE\\n\\x1b[2J'" in r.stderr, r.stderr
    assert r.stdout.split() == ["CapBnd:", f"{1 << 5:016x}"]  # CAP_KILL alone
    for _ in range(50):
        if out.read_text():
            break
        time.sleep(0.1)
    assert out.read_text().split() == ["CapBnd:", f"{1 << 0:016x}"]  # CAP_CHOWN alone
    h.ok("delete", "--force", cid)


def test_a_created_container_can_be_paused_and_resumed_as_runc_lets_it(h):
    """runc pauses a created container as a running one (its init frozen while it waits for
    start): `state` says paused, start and a plain delete are refused while it is, and resume
    brings it back to created, from where it starts. mrun refused the pause ("created, not
    running")."""
    from conftest import one_line_error

    cid = h.cid()
    h.ok("create", "--bundle", h.bundle(["sh", "-c", "echo started"]), cid)

    def status() -> str:
        return json.loads(h.ok("state", cid).stdout)["status"]

    h.ok("pause", cid)
    assert status() == "paused"
    one_line_error(h.mrun("start", cid), "paused")
    one_line_error(h.mrun("delete", cid), "paused")
    one_line_error(h.mrun("pause", cid), "paused")
    h.ok("resume", cid)
    assert status() == "created"
    one_line_error(h.mrun("resume", cid), "created")
    h.ok("start", cid)
    for _ in range(50):
        if status() == "stopped":
            break
        time.sleep(0.1)
    assert status() == "stopped"
    h.ok("delete", cid)


def test_an_exec_that_fails_exits_255_as_runc_exec(h):
    """runc's exec ends with 255 whatever kept the process from running (no such container, a
    stopped or paused one, a program not found, a working directory not there); the process's
    own code when it ran. mrun said 1, which a process's `exit 1` says too. Still one line."""
    from conftest import one_line_error

    cid = h.cid()
    h.ok("run", "-d", "-b", h.bundle(["sleep", "60"]), cid)
    for args in (("nosuch", "true"), (cid, "/no/such/program"), ("--cwd", "/no/such/dir", cid, "true")):
        r = h.mrun("exec", *args)
        one_line_error(r)
        assert r.returncode == 255, (args, r)
    assert h.mrun("exec", cid, "sh", "-c", "exit 1").returncode == 1  # the process's own
    h.ok("pause", cid)
    assert h.mrun("exec", cid, "true").returncode == 255
    h.ok("delete", "--force", cid)


def test_a_program_reached_through_a_link_is_run_by_the_link_s_name_as_runc_runs_it(h, tmp_path):
    """runc runs what Go's exec.LookPath found: the PATH directory joined with the name (cleaned),
    links left for execve to follow. The name is then the program's: its comm (what ps, top and
    pkill see) and, for a script, its $0. mrun ran the link's target, so `sleep` of busybox was
    "busybox" in `podman top`, and a script installed as /bin/tool -> /opt/tool.sh, which finds
    its name in $0 (multi-call scripts do), was told it was tool.sh. run and exec alike."""
    runc = require("runc", "runc")
    rootfs = tmp_path / "rootfs"
    make_rootfs(str(rootfs))
    (rootfs / "opt").mkdir()
    (rootfs / "opt" / "tool.sh").write_text('#!/bin/sh\necho "$0 $(cat /proc/$$/comm) $*"\n')
    (rootfs / "opt" / "tool.sh").chmod(0o755)
    os.symlink("/opt/tool.sh", rootfs / "bin" / "tool")
    os.makedirs(rootfs / "usr" / "bin", exist_ok=True)
    os.symlink("../../opt/tool.sh", rootfs / "usr" / "bin" / "rel")
    asks = (["tool", "a"], ["/usr/bin/rel", "b"], ["rel", "c"], ["./tool", "d"])
    got: dict[str, list[str]] = {}
    for name, base, cid in beside_runc(h, tmp_path, runc, "link"):
        outputs = []
        for args in asks:
            cfg = h.config(args, root={"path": str(rootfs), "readonly": True})
            cfg["process"]["cwd"] = "/bin"
            cfg["process"]["env"] = ["PATH=/usr/../usr/bin:/bin"]
            r = subprocess.run([*base, "run", "-b", h.bundle(config=cfg), f"{cid}-{args[1]}"], capture_output=True,
                               text=True, timeout=30, stdin=subprocess.DEVNULL)
            assert r.returncode == 0, (name, args, r.stderr)
            outputs.append(r.stdout.strip())
        cfg = h.config(["sleep", "60"], root={"path": str(rootfs), "readonly": True})
        subprocess.run([*base, "run", "-d", "-b", h.bundle(config=cfg), cid], check=True, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
        try:
            outputs.append(subprocess.run([*base, "exec", cid, "tool", "e"], capture_output=True, text=True,
                                          check=True, timeout=30).stdout.strip())
            outputs.append(subprocess.run([*base, "exec", cid, "cat", "/proc/1/comm"], capture_output=True, text=True,
                                          check=True, timeout=30).stdout.strip())
        finally:
            subprocess.run([*base, "delete", "--force", cid], capture_output=True, timeout=30)
        got[name] = outputs
    assert got["mrun"] == got["runc"], got
    assert got["mrun"] == ["/bin/tool tool a", "/usr/bin/rel rel b", "/usr/bin/rel rel c", "./tool tool d",
                           "/bin/tool tool e", "sleep"], got


def test_a_relative_path_directory_is_the_working_directory_s_as_execvp_takes_it(h, tmp_path):
    """The runtime-spec gives process.args execvp's meaning, where a relative (or empty) PATH
    directory is the working directory's. runc's Go (1.19's exec.ErrDot) refuses a program found
    there; mrun follows the spec and runs it, by that relative name. Found from the root, as mrun
    looked before, `PATH=opt` in /etc ran /opt/tool where execvp finds nothing."""
    rootfs = tmp_path / "rootfs"
    make_rootfs(str(rootfs))
    (rootfs / "opt").mkdir()
    (rootfs / "opt" / "tool").write_text('#!/bin/sh\necho "$0"\n')
    (rootfs / "opt" / "tool").chmod(0o755)
    for path, cwd, args, out in (("opt", "/", ["tool"], "opt/tool"), ("/nowhere:", "/opt", ["tool"], "tool"),
                                 ("./../opt", "/opt", ["tool"], "../opt/tool"), ("opt", "/etc", ["tool"], None)):
        cfg = h.config(args, root={"path": str(rootfs), "readonly": True})
        cfg["process"].update(cwd=cwd, env=[f"PATH={path}"])
        r = h.mrun("run", "-b", h.bundle(config=cfg), h.cid("rel"))
        if out is None:
            one_line_error(r, "executable file not found in $PATH")
        else:
            assert r.returncode == 0 and r.stdout.strip() == out, (path, cwd, r)


def test_a_process_without_home_gets_its_user_s_home_as_runc_gives_it(h, tmp_path):
    """runc sets HOME where the process's env has none, or an empty one: the home of its uid's row
    in the container's /etc/passwd (the uid read as a number), else "/"; for the init and for
    every exec. A bundle of `runc spec`, of `ctr run` or of containerd's CRI names no HOME, and
    under mrun its programs found none."""
    runc = require("runc", "runc")
    rootfs = tmp_path / "rootfs"
    make_rootfs(str(rootfs))
    (rootfs / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\nu1:x:1000:1000::/home/u1:/bin/sh\n"
                                           "u2:x:01001:1001::/home/u2:/bin/sh\n")
    asks = ((0, []), (1000, []), (1001, []), (2000, []), (1000, ["HOME=/set"]), (0, ["HOME="]),
            (1000, ["HOME=/set", "HOME="]))
    got: dict[str, list[str]] = {}
    for name, base, cid in beside_runc(h, tmp_path, runc, "home"):
        outputs = []
        for n, (uid, env) in enumerate(asks):
            cfg = h.config(["sh", "-c", "echo $HOME"], root={"path": str(rootfs), "readonly": True})
            cfg["process"].update(user={"uid": uid, "gid": uid}, env=["PATH=/bin", *env])
            r = subprocess.run([*base, "run", "-b", h.bundle(config=cfg), f"{cid}-{n}"], capture_output=True,
                               text=True, timeout=30, stdin=subprocess.DEVNULL)
            assert r.returncode == 0, (name, uid, env, r.stderr)
            outputs.append(r.stdout.strip())
        cfg = h.config(["sleep", "60"], root={"path": str(rootfs), "readonly": True})
        cfg["process"]["env"] = ["PATH=/bin"]
        subprocess.run([*base, "run", "-d", "-b", h.bundle(config=cfg), cid], check=True, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
        try:
            for flags in ([], ["--user", "1000"], ["--user", "3000"], ["--env", "HOME=/given"]):
                outputs.append(subprocess.run([*base, "exec", *flags, cid, "sh", "-c", "echo $HOME"],
                                              capture_output=True, text=True, check=True, timeout=30).stdout.strip())
        finally:
            subprocess.run([*base, "delete", "--force", cid], capture_output=True, timeout=30)
        got[name] = outputs
    assert got["mrun"] == got["runc"], got
    assert got["mrun"] == ["/root", "/home/u1", "/home/u2", "/", "/set", "/root", "/home/u1",
                           "/root", "/home/u1", "/", "/given"], got


@pytest.mark.parametrize("passwd", ["fifo", "directory", "huge"])
def test_an_image_s_hostile_passwd_gives_home_slash_and_never_holds_the_start(h, tmp_path, passwd):
    """HOME, where the env has none, is read from the container's /etc/passwd in the init: a fifo
    there (whose open waits for a writer), a directory, or a file past the 1 MiB read is no row,
    and the process starts with HOME=/ at once."""
    rootfs = tmp_path / "rootfs"
    make_rootfs(str(rootfs))
    target = rootfs / "etc" / "passwd"
    target.unlink()
    if passwd == "fifo":
        os.mkfifo(target)
    elif passwd == "directory":
        target.mkdir()
    else:
        target.write_text("x" * (2 << 20) + "\nroot:x:0:0:root:/root:/bin/sh\n")
    cfg = h.config(["sh", "-c", "echo $HOME"], root={"path": str(rootfs), "readonly": True})
    cfg["process"]["env"] = ["PATH=/bin"]
    r = h.mrun("run", "-b", h.bundle(config=cfg), h.cid("passwd"), timeout=30)
    assert (r.returncode, r.stdout) == (0, "/\n"), r


def test_a_user_other_than_root_can_open_its_standard_streams_again_as_under_runc(h, tmp_path):
    """runc makes each standard stream it hands a process the process's user's (fixStdioPermissions:
    the owner, not the group; never the null device), so `echo > /dev/stdout`, or a program told to
    log to /dev/stderr, works as any user. mrun left conmon's and containerd's pipes root's: a user
    other than root was refused them (EACCES). The init and an exec'd process alike."""
    runc = require("runc", "runc")
    script = "echo out > /dev/stdout; echo err > /dev/stderr; cat /dev/stdin"
    got: dict[str, list[tuple[str, str]]] = {}
    for name, base, cid in beside_runc(h, tmp_path, runc, "stdio"):
        cfg = h.config(["sh", "-c", script])
        cfg["process"]["user"] = {"uid": 1000, "gid": 1000}
        r = subprocess.run([*base, "run", "-b", h.bundle(config=cfg), f"{cid}-run"], input="in\n",
                           capture_output=True, text=True, timeout=30)
        outputs = [(r.stdout, r.stderr)]
        subprocess.run([*base, "run", "-d", "-b", h.bundle(["sleep", "60"]), cid], check=True, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
        try:
            r = subprocess.run([*base, "exec", "--user", "2000", cid, "sh", "-c", script], input="in\n",
                               capture_output=True, text=True, timeout=30)
            outputs.append((r.stdout, r.stderr))
        finally:
            subprocess.run([*base, "delete", "--force", cid], capture_output=True, timeout=30)
        got[name] = outputs
    assert got["mrun"] == got["runc"], got
    assert got["mrun"] == [("out\nin\n", "err\n")] * 2, got


def test_a_null_device_given_as_a_stream_is_the_container_s_own_read_write_as_under_runc(h, tmp_path):
    """conmon hands its runtime a read-only /dev/null as stdin. runc's init makes each stream that
    is the null device the container's own /dev/null, opened read-write (reOpenDevNull): the
    host's is a node on a mount the container cannot see. mrun kept the caller's, so `echo >&0`
    was refused (EBADF) and the stream's mount was none of the container's."""
    runc = require("runc", "runc")
    script = ("grep flags /proc/self/fdinfo/0; m=$(awk '/mnt_id/{print $2}' /proc/self/fdinfo/0); "
              "awk -v m=$m '$1==m{print $5}' /proc/self/mountinfo; echo x >&0 && echo wrote")
    got: dict[str, str] = {}
    for name, base, cid in beside_runc(h, tmp_path, runc, "null"):
        out = tmp_path / f"{name}.out"
        with open(os.devnull, "rb") as stdin, open(out, "wb") as stdout:
            subprocess.run([*base, "run", "-d", "-b", h.bundle(["sh", "-c", script]), cid], stdin=stdin, stdout=stdout,
                           stderr=stdout, check=True, timeout=30)
        try:
            deadline = time.monotonic() + 10
            while "wrote" not in out.read_text() and "error" not in out.read_text() and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            subprocess.run([*base, "delete", "--force", cid], capture_output=True, timeout=30)
        got[name] = out.read_text()
    assert got["mrun"] == got["runc"], got
    assert got["mrun"] == "flags:\t0100002\n/dev\nwrote\n", got


def test_read_only_standard_streams_lose_no_error_nor_warning_as_under_runc(h, tmp_path):
    """containerd's runc shim hands a pod's sandbox create (null I/O) /dev/null opened read-only
    as stdin, stdout and stderr. mrun's message to stderr then failed (EBADF) and ended the
    process before its --log record: containerd could say only "unable to retrieve OCI runtime
    error", and a mere warning failed a create. runc writes its record whatever stderr is."""
    runc = require("runc", "runc")
    refused = h.config(["true"], hostname="pod")
    refused["linux"]["namespaces"] = [n for n in refused["linux"]["namespaces"] if n["type"] != "uts"]
    warned = h.config(["sh", "-c", "echo out; echo err >&2"])
    warned["process"]["capabilities"]["ambient"] = ["CAP_KILL"]  # not inheritable: mrun warns, runc 1.1 not
    records: dict[str, list[dict]] = {}
    for name, base, cid in beside_runc(h, tmp_path, runc, "rostdio"):
        log = tmp_path / f"{name}.json"
        with open(os.devnull, "rb") as null:
            r = subprocess.run([*base, "--log", str(log), "--log-format", "json", "create", "-b",
                                h.bundle(config=refused), f"{cid}-refused"], stdin=null, stdout=null, stderr=null,
                               timeout=30)
            assert r.returncode == 1, name
            records[name] = [json.loads(line) for line in log.read_text().splitlines()]
            r = subprocess.run([*base, "--log", str(log), "--log-format", "json", "run", "-b",
                                h.bundle(config=warned), f"{cid}-warned"], stdin=null, stdout=null, stderr=null,
                               timeout=30)
            assert r.returncode == 0, (name, log.read_text())
        subprocess.run([*base, "delete", "--force", f"{cid}-refused"], capture_output=True, timeout=30)
    for name, got in records.items():
        assert [r["level"] for r in got] == ["error"], (name, got)
        assert "hostname" in got[0]["msg"] and "UTS" in got[0]["msg"].upper(), (name, got)


def test_a_new_network_namespace_has_its_loopback_up_and_a_joined_one_is_left_as_under_runc(h, tmp_path):
    """runc brings lo up in a network namespace it makes (its loopback network, for a namespace
    without a path), so a server and its client in one container meet on 127.0.0.1, under
    `podman --network none` too. mrun left it down. A namespace joined by path is someone else's:
    neither touches its lo."""
    runc = require("runc", "runc")
    script = "cat /sys/class/net/lo/flags; ip -4 addr show lo | grep -o 'inet [0-9./]*'"
    other = subprocess.Popen(["unshare", "--net", "sleep", "60"])
    try:
        deadline = time.monotonic() + 10
        while os.readlink(f"/proc/{other.pid}/ns/net") == os.readlink("/proc/self/ns/net"):
            assert time.monotonic() < deadline, "unshare made no network namespace"
            time.sleep(0.01)
        got: dict[str, list[str]] = {}
        for name, base, cid in beside_runc(h, tmp_path, runc, "lo"):
            outputs = []
            for path in ("", f"/proc/{other.pid}/ns/net"):
                cfg = h.config(["sh", "-c", script])
                for ns in cfg["linux"]["namespaces"]:
                    if ns["type"] == "network" and path:
                        ns["path"] = path
                r = subprocess.run([*base, "run", "-b", h.bundle(config=cfg), f"{cid}-{len(outputs)}"],
                                   capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
                outputs.append(r.stdout)
            got[name] = outputs
    finally:
        other.kill()
        other.wait()
    assert got["mrun"] == got["runc"], got
    assert got["mrun"] == ["0x9\ninet 127.0.0.1/8\n", "0x8\n"], got


def test_systemd_socket_activation_reaches_the_container_as_under_runc(h, tmp_path):
    """A unit whose ExecStart is `runc run` gets its sockets from systemd as LISTEN_FDS descriptors
    from 3, for the pid LISTEN_PID names: runc's create and run hand them to the container's init
    at the same numbers, before --preserve-fds's, and append LISTEN_FDS and LISTEN_PID=1 to its
    environment. mrun passed neither the sockets nor the words. For another pid's, nothing."""
    runc = require("runc", "runc")
    script = ("echo ${LISTEN_FDS:-none} ${LISTEN_PID:-none}; for fd in 3 4 5; do if [ -e /proc/self/fd/$fd ]; "
              "then readlink /proc/self/fd/$fd | cut -d: -f1; else echo closed; fi; done")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    extra = open(tmp_path / "extra", "w")  # noqa: SIM115 - closed below
    got: dict[str, list[str]] = {}
    try:
        fds = {3: listener.fileno(), 4: extra.fileno()}

        def at_their_numbers() -> None:
            for number, fd in fds.items():
                os.dup2(os.dup(fd), number)  # a copy first: one may be the other's number

        for name, base, cid in beside_runc(h, tmp_path, runc, "activated"):
            outputs = []
            for pid in ("$$", "1"):
                command = [*base, "run", "--preserve-fds", "1", "-b", h.bundle(["sh", "-c", script]),
                           f"{cid}-{len(outputs)}"]
                r = subprocess.run(["sh", "-c", f'LISTEN_PID={pid} LISTEN_FDS=1 exec "$@" 2>/dev/null', "sh", *command],
                                   preexec_fn=at_their_numbers, pass_fds=(3, 4), capture_output=True, text=True,
                                   timeout=30, stdin=subprocess.DEVNULL)
                outputs.append(r.stdout)
            got[name] = outputs
    finally:
        listener.close()
        extra.close()
    assert got["mrun"] == got["runc"], got
    # another pid's: no word of it, and --preserve-fds 1 is fd 3 alone
    assert got["mrun"] == [f"1 1\nsocket\n{tmp_path / 'extra'}\nclosed\n", "none none\nsocket\nclosed\nclosed\n"], got


NOTIFIER = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

/* sd_notify as a service's program calls it: each argument one datagram to $NOTIFY_SOCKET. */
int main(int argc, char **argv) {
    const char *path = getenv("NOTIFY_SOCKET");
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (!path || fd < 0) { fprintf(stderr, "sd-notify: no NOTIFY_SOCKET\n"); return 2; }
    strncpy(addr.sun_path, path, sizeof(addr.sun_path) - 1);
    for (int i = 1; i < argc; i++)
        if (sendto(fd, argv[i], strlen(argv[i]), 0, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
            perror("sd-notify: sendto");
            return 1;
        }
    return 0;
}
"""


@pytest.fixture
def notifying_rootfs(tmp_path):
    """busybox with /run and a static sd-notify (the shared rootfs has no /run to mount on)."""
    gcc = require("gcc", "gcc")
    rootfs = str(tmp_path / "rootfs")
    make_rootfs(rootfs)
    os.mkdir(os.path.join(rootfs, "run"))
    (tmp_path / "notify.c").write_text(NOTIFIER)
    subprocess.run([gcc, "-static", "-O", "-o", os.path.join(rootfs, "bin", "sd-notify"), str(tmp_path / "notify.c")],
                   check=True, capture_output=True)
    return rootfs


class ServiceManager:
    """systemd's end of NOTIFY_SOCKET as a relay sees it: each datagram in order, with how many
    descriptors it carried; a barrier's pipe is closed at once (sd_notify_barrier's answer)."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="sdn-")  # short: a socket address holds 108 bytes
        self.path = os.path.join(self.dir, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)  # who sent each: systemd's check
        self.got: list[tuple[str, int]] = []
        self.senders: list[int] = []
        self.holding = False  # barriers' pipes kept open until ``release`` (a manager still busy)
        self.held: list[int] = []
        self.synced = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            data, ancillary, _flags, _addr = self.sock.recvmsg(4096, socket.CMSG_SPACE(4 * 16) + socket.CMSG_SPACE(12))
            if data == b"-stop-":
                return
            if data == b"-sync-":
                self.synced.set()
                continue
            fds = [int.from_bytes(payload[i:i + 4], sys.byteorder) for level, kind, payload in ancillary
                   if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS for i in range(0, len(payload) - 3, 4)]
            self.senders += [int.from_bytes(payload[:4], sys.byteorder) for level, kind, payload in ancillary
                             if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS]
            self.got.append((data.decode(), len(fds)))
            for fd in fds:
                if self.holding:
                    self.held.append(fd)
                else:
                    os.close(fd)

    def release(self) -> None:
        while self.held:
            os.close(self.held.pop())

    def take(self) -> list[tuple[str, int]]:
        """What came before now: one socket's datagrams are queued in the order they came."""
        self.synced.clear()
        self._send(b"-sync-")
        assert self.synced.wait(10)
        got, self.got, self.senders = self.got, [], []
        return got

    def take_from(self, pid: int) -> list[tuple[str, int]]:
        """``take``, each message checked to come from ``pid``: with NotifyAccess=main (the default
        of Type=notify) systemd drops one that its unit's main process did not send."""
        senders = self.senders
        got = self.take()
        assert set(senders[:len(got)]) <= {pid}, f"sent by {senders}, not by {pid}"
        return got

    def _send(self, word: bytes) -> None:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as me:
            me.sendto(word, self.path)

    def close(self) -> None:
        try:
            self._send(b"-stop-")
            self.thread.join(10)
        finally:
            self.release()
            self.sock.close()
            shutil.rmtree(self.dir)


@pytest.fixture
def manager():
    m = ServiceManager()
    yield m
    m.close()


@pytest.fixture
def runc_root():
    """runc's state root for these tests, under /tmp: runc binds its socket by its full path,
    which must stay within 108 bytes. Whatever a failed test left in it is deleted."""
    root = tempfile.mkdtemp(prefix="sdr-")
    yield root
    runc = require("runc", "runc")
    for cid in _quietly([runc, "--root", root], "list", "-q").stdout.split():
        _quietly([runc, "--root", root], "delete", "--force", cid)
    shutil.rmtree(root, ignore_errors=True)


def _relayed(got: list[tuple[str, int]], main_pid: int) -> list[tuple[str, int]]:
    return [(m.replace(f"MAINPID={main_pid}\n", "MAINPID=<main>\n"), n) for m, n in got]


RUNC_SAID = [("READY=1\n", 0), ("MAINPID=<main>\n", 0)]  # runc 1.1's; runc 1.2 adds a barrier, as mrun does
MRUN_SAID = [*RUNC_SAID, ("BARRIER=1", 1)]


def _without_barrier(value: object) -> object:
    """What runc 1.1 would have sent: mrun's messages without runc 1.2's barrier after them."""
    if isinstance(value, list):
        return [_without_barrier(v) for v in value if v != ("BARRIER=1", 1)]
    return value


def _quietly(base: list[str], *args: str, env: dict[str, str] | None = None,
             timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """A runtime's verb, its output through files: a detached container holds a pipe open."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        r = subprocess.run([*base, *args], env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                           timeout=timeout, check=False)
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(r.args, r.returncode, out.read(), err.read())


def _exits_0(base: list[str], *args: str, env: dict[str, str]) -> int:
    """A runtime's verb run to exit 0, its output through files: -> its pid."""
    with tempfile.TemporaryFile("w+") as err:
        p = subprocess.Popen([*base, *args], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=err)
        assert p.wait(timeout=30) == 0, (err.seek(0), err.read())
    return p.pid


def _init_pid(base: list[str], cid: str) -> int:
    return json.loads(_quietly(base, "state", cid).stdout)["pid"]


def test_systemd_s_notify_socket_is_relayed_by_a_detached_run_and_by_start_as_under_runc(
        h, notifying_rootfs, manager, runc_root):
    """A `Type=notify` unit running `runc run -d` (or `create`, then `start`) learns its service is
    ready from the container's program: the container gets /run/notify (a directory of its state,
    read-only) and NOTIFY_SOCKET=/run/notify/notify.sock; run and start bind that socket, and
    return once the program's READY= line is passed on, then MAINPID (the init). STATUS= and the
    rest are dropped. mrun passed nothing: the unit waited out its start timeout. mrun also
    sends runc 1.2's barrier last, so systemd has read the rest before the run is gone. Its
    state root here is deep enough to put the socket's full path past 108 bytes."""
    runc = require("runc", "runc")
    h.root = os.path.join(h.tmp, "state", "d" * 90)
    script = "sd-notify STATUS=warming; sleep 0.3; sd-notify \"$(printf 'READY=1\\nSTATUS=up')\"; exec sleep 60"
    bundle = h.bundle(["sh", "-c", script], root={"path": notifying_rootfs, "readonly": True})
    env = {**os.environ, "NOTIFY_SOCKET": manager.path}
    got: dict[str, list] = {}
    for name, base, cid in [("runc", [runc, "--root", runc_root], f"n-{uuid.uuid4().hex[:6]}"),
                            ("mrun", [h.binary, "--root", h.root], h.cid("n"))]:
        if name == "mrun":
            assert len(os.path.join(h.root, cid, "notify", "notify.sock")) > 108
        pid = _exits_0(base, "run", "-d", "-b", bundle, cid, env=env)
        ran = _relayed(manager.take_from(pid), _init_pid(base, cid))  # passed on before run returned
        _quietly(base, "delete", "--force", cid)
        # create (NOTIFY_SOCKET gives the socket its place), start (binds it, relays)
        assert _quietly(base, "create", "-b", bundle, cid, env=env).returncode == 0
        warm_served()  # a template serves the runc verbs that may leave their caller: not this start
        pid = _exits_0(base, "start", cid, env=env)
        started = _relayed(manager.take_from(pid), _init_pid(base, cid))
        environ = _quietly(base, "exec", cid, "cat", "/proc/1/environ").stdout.split("\0")
        _quietly(base, "delete", "--force", cid)
        got[name] = [ran, started, [e for e in environ if e.startswith("NOTIFY")]]
    assert _without_barrier(got["mrun"]) == got["runc"], got
    assert got["mrun"] == [MRUN_SAID, MRUN_SAID, ["NOTIFY_SOCKET=/run/notify/notify.sock"]], got


def test_the_container_sees_its_notify_socket_read_only_at_run_notify_as_under_runc(h, notifying_rootfs, manager,
                                                                                    runc_root):
    """What the program finds: NOTIFY_SOCKET in its environment and /run/notify bound read-only,
    nosuid, nodev, noexec (the socket open to every user), the same under runc and mrun."""
    runc = require("runc", "runc")
    script = ("echo $NOTIFY_SOCKET; awk '$5 == \"/run/notify\" {print $6}' /proc/self/mountinfo; "
              "stat -c '%A %U' /run/notify/notify.sock; touch /run/notify/x 2>&1 | sed 's/.*: //'; "
              "sd-notify READY=1")  # runc's foreground run waits for it before it waits for the program
    bundle = h.bundle(["sh", "-c", script], root={"path": notifying_rootfs, "readonly": True})
    env = {**os.environ, "NOTIFY_SOCKET": manager.path}
    got = {}
    for name, base, cid in [("runc", [runc, "--root", runc_root], f"s-{uuid.uuid4().hex[:6]}"),
                            ("mrun", [h.binary, "--root", h.root], h.cid("s"))]:
        r = _quietly(base, "run", "-b", bundle, cid, env=env)
        got[name] = (r.returncode, r.stdout)
    assert got["mrun"] == got["runc"], got
    assert got["mrun"] == (0, "/run/notify/notify.sock\nro,nosuid,nodev,noexec,relatime\nsrwxrwxrwx root\n"
                              "Read-only file system\n"), got


def test_a_foreground_run_names_itself_main_and_a_program_never_ready_is_not_waited_for(
        h, notifying_rootfs, manager, runc_root):
    """A foreground run stays the unit's main process: MAINPID is its own pid, and a READY= said
    just before the program ends still reaches the manager before the run returns its status. A
    program that ends without saying it is ready ends a start with nothing passed on, as under
    runc, and a detached run too: runc 1.1's waits for ever there (its init is its own unreaped
    child, still in /proc), so that one runs under mrun alone."""
    runc = require("runc", "runc")
    root = {"path": notifying_rootfs, "readonly": True}
    ready_and_out = h.bundle(["sh", "-c", "sd-notify READY=1; exit 3"], root=root)
    never = h.bundle(["sh", "-c", "sd-notify STATUS=failing; exit 4"], root=root)
    env = {**os.environ, "NOTIFY_SOCKET": manager.path}
    got: dict[str, list] = {}
    for name, base, cid in [("runc", [runc, "--root", runc_root], f"f-{uuid.uuid4().hex[:6]}"),
                            ("mrun", [h.binary, "--root", h.root], h.cid("f"))]:
        p = subprocess.Popen([*base, "run", "-b", ready_and_out, cid], env=env, stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        p.communicate(timeout=30)
        foreground = [p.returncode, _relayed(manager.take_from(p.pid), p.pid)]
        assert _quietly(base, "create", "-b", never, cid, env=env).returncode == 0
        r = _quietly(base, "start", cid, env=env)
        started = [r.returncode, manager.take()]
        _quietly(base, "delete", "--force", cid)
        got[name] = [foreground, started]
    assert _without_barrier(got["mrun"]) == got["runc"], got
    assert got["mrun"] == [[3, MRUN_SAID], [0, []]], got
    cid = h.cid("d")
    r = h.mrun("run", "-d", "-b", never, cid, env={"NOTIFY_SOCKET": manager.path})
    assert r.returncode == 0 and r.stderr == "" and manager.take() == [], r.stderr
    h.ok("delete", "--force", cid)
    # A foreground run still passes its signals on while it waits for READY= (runc 1.1's holds
    # them until READY= comes).
    trapping = h.bundle(["sh", "-c", "trap 'exit 7' TERM; echo trapped; sleep 30 & wait"], root=root)
    p = subprocess.Popen([h.binary, "--root", h.root, "run", "-b", trapping, h.cid("g")], env=env,
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert p.stdout.readline() == "trapped\n"
    p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=10) == 7 and manager.take() == []
    p.stdout.close()


def test_start_under_a_notify_socket_it_cannot_use_is_one_line_and_leaves_the_container_created(
        h, notifying_rootfs, manager, runc_root):
    """A NOTIFY_SOCKET nobody listens on: runc starts the container, then fails; mrun says so
    before it starts it, in one line naming NOTIFY_SOCKET, and the container stays created for a
    start that can succeed. A run under it runs, as runc's (which drops the error), saying so in
    one line. A container created without NOTIFY_SOCKET has no socket for its program: a start
    under it is refused, as runc refuses it, and the container stays created."""
    runc = require("runc", "runc")

    def bundle() -> str:  # one each: a cgroup of its own
        return h.bundle(["sleep", "60"], root={"path": notifying_rootfs, "readonly": True})

    cid = h.cid("u")
    h.ok("create", "-b", bundle(), cid, env={"NOTIFY_SOCKET": manager.path})
    nobody = os.path.join(manager.dir, "nobody")
    r = h.mrun("start", cid, env={"NOTIFY_SOCKET": nobody})
    one_line_error(r, "NOTIFY_SOCKET", nobody, "No such file or directory")
    assert h.status(cid) == "created"
    ran = h.cid("v")
    r = h.mrun("run", "-d", "-b", bundle(), ran, env={"NOTIFY_SOCKET": nobody})
    assert r.returncode == 0 and r.stderr.count("\n") == 1 and "NOTIFY_SOCKET" in r.stderr, r.stderr
    h.ok("start", cid)
    assert h.status(cid) == "running" and h.status(ran) == "running"

    refused = {}
    for name, base, bare in [("runc", [runc, "--root", runc_root], f"b-{uuid.uuid4().hex[:6]}"),
                             ("mrun", [h.binary, "--root", h.root], h.cid("b"))]:
        assert _quietly(base, "create", "-b", bundle(), bare).returncode == 0
        r = _quietly(base, "start", bare, env={**os.environ, "NOTIFY_SOCKET": manager.path})
        state = json.loads(_quietly(base, "state", bare).stdout)["status"]
        refused[name] = (r.returncode != 0, state, manager.take())
        if name == "mrun":
            one_line_error(r, "NOTIFY_SOCKET", "created without it")
        _quietly(base, "delete", "--force", bare)
    assert refused["mrun"] == refused["runc"] == (True, "created", []), refused
    for c in (cid, ran):
        h.ok("delete", "--force", c)


def test_a_program_of_any_user_reaches_its_notify_socket_whatever_the_callers_umask(h, notifying_rootfs, manager):
    """The socket is open to every user (0777, as runc's) and so is its directory, bound at
    /run/notify, even when the caller's umask is 077 (runc's directory is then 0700, and a
    program that is not root cannot reach the socket in it)."""
    bundle = h.bundle(["sh", "-c", "sd-notify READY=1; exec sleep 60"],
                      root={"path": notifying_rootfs, "readonly": True})
    config = json.load(open(os.path.join(bundle, "config.json")))
    config["process"]["user"] = {"uid": 1000, "gid": 1000}
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(config, f)
    cid = h.cid("w")
    env = {"NOTIFY_SOCKET": manager.path}
    h.ok("create", "-b", bundle, cid, env=env, preexec_fn=lambda: os.umask(0o077))
    h.ok("start", cid, env=env, preexec_fn=lambda: os.umask(0o077))
    assert _relayed(manager.take(), _init_pid([h.binary, "--root", h.root], cid)) == MRUN_SAID
    h.ok("delete", "--force", cid)


def test_a_user_namespaced_container_s_program_reaches_its_notify_socket_as_under_runc(
        h, tmp_path, notifying_rootfs, manager, runc_root):
    """In a user namespace of its own the program still reaches its socket: the directory is
    bound from the host's side, though the namespace's root cannot walk the state root to it."""
    from test_sandbox import _in_a_user_namespace

    runc = require("runc", "runc")
    open_to_others(str(tmp_path))  # the rootfs is under it, for the namespace's root to reach
    env = {**os.environ, "NOTIFY_SOCKET": manager.path}
    got = {}
    for name, base, cid in [("runc", [runc, "--root", runc_root], f"u-{uuid.uuid4().hex[:6]}"),
                            ("mrun", [h.binary, "--root", h.root], h.cid("u"))]:
        config = h.config(["sh", "-c", "sd-notify READY=1; exec sleep 60"])
        config["root"]["path"] = notifying_rootfs
        config["mounts"].append({"destination": "/run", "type": "tmpfs", "source": "tmpfs",  # the root's is not
                                 "options": ["nosuid", "nodev", "mode=755"]})  # the namespace's to write
        _in_a_user_namespace(h, config)
        bundle = h.bundle(config=config)
        pid = _exits_0(base, "run", "-d", "-b", bundle, cid, env=env)
        got[name] = _relayed(manager.take_from(pid), _init_pid(base, cid))
        _quietly(base, "delete", "--force", cid)
    assert _without_barrier(got["mrun"]) == got["runc"], got
    assert got["mrun"] == MRUN_SAID, got


def test_start_returns_once_the_manager_has_read_what_was_passed_on(h, notifying_rootfs, manager):
    """The barrier: the manager closes the pipe that came with BARRIER=1 once it has dealt with the
    messages before it; start waits for that, so it is not gone before systemd looked it up."""
    bundle = h.bundle(["sh", "-c", "sd-notify READY=1; exec sleep 60"],
                      root={"path": notifying_rootfs, "readonly": True})
    cid = h.cid("h")
    env = {**os.environ, "NOTIFY_SOCKET": manager.path}
    h.ok("create", "-b", bundle, cid, env=env)
    manager.holding = True
    with tempfile.TemporaryFile("w+") as err:
        p = subprocess.Popen([h.binary, "--root", h.root, "start", cid], env=env, stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.monotonic() + 20
        while not manager.held:
            assert time.monotonic() < deadline and p.poll() is None, "no barrier came"
            time.sleep(0.01)
        assert p.poll() is None  # its pipe is held: start waits
        manager.release()
        assert p.wait(timeout=20) == 0
    assert _relayed(manager.take(), _init_pid([h.binary, "--root", h.root], cid)) == MRUN_SAID
    h.ok("delete", "--force", cid)


def test_a_manager_gone_before_ready_comes_is_one_warning_and_the_run_succeeds_as_under_runc(
        h, tmp_path, notifying_rootfs, runc_root):
    """The manager's socket closes while the program is still getting ready: the READY= that
    comes then cannot be passed on. runc's detached run drops the error and exits 0; mrun's too,
    saying so in one line. The container runs on."""
    runc = require("runc", "runc")
    gate = tmp_path / "gate"
    gate.mkdir()
    script = "while [ ! -e /gate/go ]; do sleep 0.02; done; sd-notify READY=1; exec sleep 60"
    got = {}
    for name, base, cid in [("runc", [runc, "--root", runc_root], f"g-{uuid.uuid4().hex[:6]}"),
                            ("mrun", [h.binary, "--root", h.root], h.cid("g"))]:
        (gate / "go").unlink(missing_ok=True)
        config = h.config(["sh", "-c", script])
        config["root"]["path"] = notifying_rootfs
        config["mounts"].append({"destination": "/gate", "type": "bind", "source": str(gate), "options": ["rbind"]})
        manager_dir = tempfile.mkdtemp(prefix="sdg-")
        gone = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        gone.bind(os.path.join(manager_dir, "notify"))
        try:
            with tempfile.TemporaryFile("w+") as err:
                p = subprocess.Popen([*base, "run", "-d", "-b", h.bundle(config=config), cid],
                                     env={**os.environ, "NOTIFY_SOCKET": os.path.join(manager_dir, "notify")},
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
                deadline = time.monotonic() + 20
                while _quietly(base, "state", cid).returncode != 0 or \
                        json.loads(_quietly(base, "state", cid).stdout)["status"] != "running":
                    assert time.monotonic() < deadline and p.poll() is None, "it never ran"
                    time.sleep(0.02)
                gone.close()  # the manager is gone; then the program says it is ready
                (gate / "go").touch()
                code = p.wait(timeout=20)
                err.seek(0)
                said = err.read()
            state = json.loads(_quietly(base, "state", cid).stdout)["status"]
            got[name] = (code, state, said)
        finally:
            gone.close()
            shutil.rmtree(manager_dir)
            _quietly(base, "delete", "--force", cid)
    assert got["runc"] == (0, "running", ""), got
    code, state, said = got["mrun"]
    assert (code, state) == (0, "running") and said.count("\n") == 1, got
    assert "NOTIFY_SOCKET" in said and "Connection refused" in said and "readiness not passed on" in said, said


def test_a_detached_run_waiting_for_ready_ends_on_a_stop_signal_and_leaves_the_container_running(
        h, notifying_rootfs, manager):
    """A detached run waits for READY=; systemd stopping the unit meanwhile (SIGTERM) ends the wait
    at once, with 143, the container left running for the unit's stop to take down (runc's run
    takes the signal into a queue and keeps waiting, until systemd's SIGKILL)."""
    bundle = h.bundle(["sleep", "60"], root={"path": notifying_rootfs, "readonly": True})
    cid = h.cid("t")
    with tempfile.TemporaryFile("w+") as err:
        p = subprocess.Popen([h.binary, "--root", h.root, "run", "-d", "-b", bundle, cid],
                             env={**os.environ, "NOTIFY_SOCKET": manager.path}, stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=err)
        h.wait_status(cid, "running")
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=10)
        err.seek(0)
        said = err.read()
    assert p.returncode == 143 and "Traceback" not in said, said
    assert h.status(cid) == "running" and manager.take() == []
    h.ok("delete", "--force", cid)


def test_a_path_masked_under_a_read_only_one_is_mounted_once_as_under_runc(h, tmp_path):
    """runc makes read-only paths first and masks after. mrun masked first, so the read-only
    path's recursive bind took a second copy of the mask along: one mount more in the table."""
    runc = require("runc", "runc")
    script = ("echo x > /proc/sys/kernel/domainname && echo wrote; "
              "grep -E ' /proc/sys | /proc/sys/kernel/domainname ' /proc/self/mountinfo | cut -d' ' -f5,6")
    got = {}
    for name, base, cid in beside_runc(h, tmp_path, runc, "masked"):
        cfg = h.config(["sh", "-c", script])
        cfg["linux"]["maskedPaths"] = ["/proc/sys/kernel/domainname"]
        cfg["linux"]["readonlyPaths"] = ["/proc/sys"]
        r = subprocess.run([*base, "run", "-b", h.bundle(config=cfg), cid], capture_output=True, text=True, timeout=30,
                           stdin=subprocess.DEVNULL)
        got[name] = r.stdout
    assert got["mrun"] == got["runc"], got
    assert got["mrun"].splitlines()[0] == "wrote" and len(got["mrun"].splitlines()) == 3, got


def test_a_process_naming_no_capabilities_gets_none_or_its_container_s_as_under_runc(h, tmp_path):
    """runc gives a container's process that names no capabilities none at all, and an exec'd
    one its container's. mrun kept its own for both: every capability, so a bundle without the
    field ran a root as privileged as the host's, and `exec -p` of a process.json without one
    ran with every capability inside a container allowed three."""
    runc = require("runc", "runc")
    show = ["sh", "-c", "grep -E '^Cap(Prm|Eff|Bnd|Amb)' /proc/self/status"]
    process = tmp_path / "process.json"
    process.write_text(json.dumps({"args": show, "cwd": "/", "env": ["PATH=/bin"], "user": {"uid": 0, "gid": 0}}))
    got: dict[str, list[str]] = {}
    for name, base, cid in beside_runc(h, tmp_path, runc, "caps"):
        cfg = h.config(show)
        del cfg["process"]["capabilities"]
        r = subprocess.run([*base, "run", "-b", h.bundle(config=cfg), f"{cid}-none"], capture_output=True, text=True,
                           timeout=30, stdin=subprocess.DEVNULL)
        outputs = [r.stdout]
        cfg = h.config(["sleep", "60"])
        cfg["process"]["capabilities"] = {k: ["CAP_CHOWN", "CAP_KILL"] for k in ("bounding", "effective", "permitted")}
        subprocess.run([*base, "run", "-d", "-b", h.bundle(config=cfg), cid], check=True, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
        try:
            outputs.append(subprocess.run([*base, "exec", "-p", str(process), cid], capture_output=True, text=True,
                                          timeout=30).stdout)
        finally:
            subprocess.run([*base, "delete", "--force", cid], capture_output=True, timeout=30)
        got[name] = outputs
    assert got["mrun"] == got["runc"], got
    def sets(mask: str) -> str:
        return f"CapPrm:\t{mask}\nCapEff:\t{mask}\nCapBnd:\t{mask}\nCapAmb:\t0000000000000000\n"

    assert got["mrun"] == [sets("0000000000000000"), sets("0000000000000021")], got


@pytest.mark.parametrize("devices", [None, []], ids=["no-field", "no-rules"])
def test_a_spec_without_device_rules_still_gets_a_whitelist_as_under_runc(h, tmp_path, devices):
    """runc's device cgroup is a whitelist whatever the spec says (its emulator starts from "deny
    all", the defaults over it). With no linux.resources.devices, or none in it, mrun wrote no rule
    at all: the container could open any device of the host, its disk made with mknod and read.
    An update (which names no devices) leaves create's rules alone."""
    runc = require("runc", "runc")
    disk = sorted(os.listdir("/sys/dev/block"))[0].replace(":", " ")  # a block device of this host
    script = f"mknod /dev/disk$$ b {disk} && head -c 1 /dev/disk$$ > /dev/null; echo $?"
    mknod = {k: ["CAP_MKNOD"] for k in ("bounding", "effective", "permitted")}  # docker's default set has it
    got = {}
    for name in ("runc", "mrun"):
        base = [runc, "--root", str(tmp_path / "runc-root")] if name == "runc" else [h.binary, "--root", h.root]
        cfg = h.config(["sh", "-c", script])
        cfg["process"]["capabilities"] = mknod
        if devices is None:
            del cfg["linux"]["resources"]["devices"]
        else:
            cfg["linux"]["resources"]["devices"] = devices
        r = subprocess.run([*base, "run", "-b", h.bundle(config=cfg), f"dev-{uuid.uuid4().hex[:6]}"],
                           capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
        got[name] = (r.stdout, "Operation not permitted" in r.stderr)
    assert got["mrun"] == got["runc"] == ("1\n", True), got
    cfg = h.config(["sleep", "60"])
    cfg["process"]["capabilities"] = mknod
    del cfg["linux"]["resources"]["devices"]
    cid = h.cid("dev")
    h.ok("run", "-d", "-b", h.bundle(config=cfg), cid)
    shown = lambda: h.ok("exec", cid, "sh", "-c", script).stdout  # noqa: E731
    assert shown() == "1\n"
    h.ok("update", "--memory", "64m", cid)
    assert shown() == "1\n", "an update gave the container every device"
    h.ok("delete", "--force", cid)


def test_an_init_s_umask_is_022_and_an_exec_s_its_caller_s_as_under_runc(h, tmp_path):
    """Where process.user names no umask, runc sets 022 for an init whose root it made
    (finalizeRootfs), whatever its caller's, and an exec'd process keeps its caller's. mrun gave
    the init its caller's too: a `podman run` by a user with umask 077 made files no one else in
    the container could read."""
    runc = require("runc", "runc")
    got = {}
    for name, base, cid in beside_runc(h, tmp_path, runc, "umask"):
        cfg = h.config(["sleep", "60"])
        cfg["process"]["user"].pop("umask", None)
        with_mask = lambda mask: (lambda: os.umask(mask))  # noqa: E731
        subprocess.run([*base, "run", "-d", "-b", h.bundle(config=cfg), cid], check=True, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30, preexec_fn=with_mask(0o077))
        try:
            got[name] = [subprocess.run([*base, "exec", cid, "sh", "-c", "grep Umask /proc/1/status; umask"],
                                        capture_output=True, text=True, timeout=30, preexec_fn=with_mask(mask)).stdout
                         for mask in (0o077, 0o002)]
        finally:
            subprocess.run([*base, "delete", "--force", cid], capture_output=True, timeout=30)
    assert got["mrun"] == got["runc"] == ["Umask:\t0022\n0077\n", "Umask:\t0022\n0002\n"], got


def test_kill_with_signal_0_asks_whether_the_process_is_there(h):
    """runc takes 0 as kill(2) does: no signal, only the question. A created or running
    container: exit 0, its process untouched (a sleep that got a signal would be gone); a stopped
    one: "container not running". Outside 0-64 still refused (a stop signal is never 0: test_units)."""
    from conftest import one_line_error

    cid = h.cid()
    h.ok("create", "--bundle", h.bundle(["sleep", "60"]), cid)
    h.ok("kill", cid, "0")
    h.ok("start", cid)
    for spelling in (("0",), ("-s", "0"), ("--all", cid, "0")):
        args = spelling if spelling[0] == "--all" else (cid, *spelling) if spelling[0] == "0" else (*spelling, cid)
        h.ok("kill", *args)
    time.sleep(0.2)
    assert json.loads(h.ok("state", cid).stdout)["status"] == "running"
    h.ok("kill", cid, "KILL")
    for _ in range(50):
        if json.loads(h.ok("state", cid).stdout)["status"] == "stopped":
            break
        time.sleep(0.1)
    one_line_error(h.mrun("kill", cid, "0"), "container not running")
    one_line_error(h.mrun("kill", cid, "65"), "invalid signal '65'")
    h.ok("delete", cid)


def test_exec_does_not_make_its_working_directory(h):
    """runc makes a missing process.cwd for the container's init only; an exec'd process with a
    working directory that is not there is refused (runc: "chdir to cwd ... no such file or
    directory"), and nothing is written into the container's root. mrun made it, as for the
    init: a directory of the exec's making in a writable rootfs, EROFS in a read-only one."""
    from conftest import one_line_error

    cid = h.cid()
    cfg = h.config(["sleep", "60"])
    cfg["root"]["path"], cfg["root"]["readonly"] = "rootfs", False
    cfg["process"]["cwd"] = "/made/for/init"
    bundle = h.bundle(config=cfg)
    make_rootfs(os.path.join(bundle, "rootfs"))
    h.ok("run", "-d", "-b", bundle, cid)
    assert os.path.isdir(os.path.join(bundle, "rootfs", "made", "for", "init"))  # the init's: runc's rule
    for flag in ("--cwd", "-w"):
        one_line_error(h.mrun("exec", flag, "/not/there", cid, "true"),
                       "process.cwd: /not/there: no such file or directory")
        assert not os.path.lexists(os.path.join(bundle, "rootfs", "not"))
    process = os.path.join(h.tmp, "process.json")
    with open(process, "w") as f:
        json.dump({"args": ["true"], "cwd": "/not/there", "env": ["PATH=/bin"], "user": {"uid": 0, "gid": 0}}, f)
    one_line_error(h.mrun("exec", "--process", process, cid), "process.cwd: /not/there: no such file or directory")
    assert not os.path.lexists(os.path.join(bundle, "rootfs", "not"))
    assert h.ok("exec", "--cwd", "/made/for", cid, "pwd").stdout == "/made/for\n"
    h.ok("delete", "--force", cid)


def test_exec_into_a_paused_container_with_ignore_paused_runs_once_resumed(h):
    """runc's --ignore-paused (it was an unknown flag): without it, exec into a paused container is
    refused saying so; with it, the process joins the frozen cgroup, is frozen with it, and the
    call returns once the container is resumed."""
    from conftest import one_line_error

    cid = h.cid()
    h.ok("run", "-d", "-b", h.bundle(["sleep", "60"]), cid)
    h.ok("pause", cid)
    one_line_error(h.mrun("exec", cid, "true"), "paused", "--ignore-paused")
    proc = subprocess.Popen([h.binary, "--root", h.root, "exec", "--ignore-paused", cid, "echo", "thawed"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **h.base_env})
    try:
        time.sleep(1)
        assert proc.poll() is None, proc.communicate()
        h.ok("resume", cid)
        out, err = proc.communicate(timeout=20)
        assert proc.returncode == 0 and out.strip() == "thawed", err
    finally:
        if proc.poll() is None:
            h.mrun("resume", cid)
            proc.kill()
            proc.wait()
    h.ok("delete", "--force", cid)


def test_a_terminal_init_s_pty_is_also_its_dev_console(h):
    """As runc makes it: the init's terminal is /dev/console too (getty, init systems and scripts
    look there); it was missing."""
    cfg = h.config(["sh", "-c", "tty; ls -ln /dev/console; echo via-console > /dev/console"])
    cfg["process"]["terminal"] = True
    r = subprocess.run([h.binary, "--root", h.root, "run", "-b", h.bundle(config=cfg), h.cid()], input="",
                       capture_output=True, text=True, timeout=30, env={**os.environ, **h.base_env})
    lines = r.stdout.replace("\r", "").splitlines()
    assert r.returncode == 0, r.stderr
    pts = int(lines[0].rsplit("/", 1)[1])
    assert lines[1].startswith("c") and lines[1].split()[4:6] == ["136,", str(pts)], lines
    assert "via-console" in lines


def test_exec_into_a_sub_cgroup_and_delete_takes_it_down(h):
    """runc's `exec --cgroup [CONTROLLER:]PATH` (it was an unknown flag): the process joins an
    existing sub-cgroup of the container's; one that is missing, the container's own or above it
    is refused in one line naming the flag. Sub-cgroups and their processes are the container's."""
    from conftest import one_line_error

    cid = h.cid()
    h.ok("run", "-d", "-b", h.bundle(["sleep", "60"]), cid)
    cg = _mem_dir(h, cid)
    dirs = sorted(set(cg["paths"].values())) if cg["version"] == 1 else [cg["path"]]
    for d in dirs:
        os.mkdir(os.path.join(d, "sub"))
        for name in ("cpuset.cpus", "cpuset.mems"):  # a v1 cpuset starts empty and takes no task
            if os.path.exists(os.path.join(d, name)):
                with open(os.path.join(d, name)) as f, open(os.path.join(d, "sub", name), "w") as out:
                    out.write(f.read())
    try:
        out = h.ok("exec", "--cgroup", "sub", cid, "cat", "/proc/self/cgroup").stdout
        keys = ("memory", "pids") if cg["version"] == 1 else ("",)
        joined = [line for line in out.splitlines() if line.split(":")[1] in keys]
        assert joined and all(line.endswith("/sub") for line in joined), out
        if cg["version"] == 1:
            out = h.ok("exec", "--cgroup", "pids:sub", cid, "cat", "/proc/self/cgroup").stdout
            lines = {line.split(":")[1]: line.split(":")[2] for line in out.splitlines()}
            assert lines["pids"].endswith("/sub") and not lines["memory"].endswith("/sub"), lines
        for bad in ("nosuch", "..", "/", "../../x"):
            one_line_error(h.mrun("exec", "--cgroup", bad, cid, "true"), "--cgroup")
        # a process in a sub-cgroup is the container's: listed, killed and its cgroup removed with
        # it (it was not listed, outlived `delete --force`, and its directory kept the container's)
        h.ok("exec", "-d", "--cgroup", "sub", cid, "sleep", "600")
        assert len(json.loads(h.ok("ps", "--format", "json", cid).stdout)) == 2
        h.ok("delete", "--force", cid)
        assert not any(os.path.exists(d) for d in dirs)
    finally:
        if any(os.path.exists(os.path.join(d, "sub")) for d in dirs):
            h.mrun("delete", "--force", cid)


def test_a_sub_cgroup_tree_nested_deep_is_listed_and_removed(h):
    """A container with its cgroup tree writable nesting sub-cgroups 1100 deep: `ps` and
    `delete --force` walked them with os.walk, a generator per level: an internal RecursionError,
    and the container could not be deleted."""
    cid = h.cid()
    h.ok("run", "-d", "-b", h.bundle(["sleep", "60"]), cid)
    cg = _mem_dir(h, cid)
    top = cg["paths"]["pids"] if cg["version"] == 1 else cg["path"]
    fd = os.open(top, os.O_RDONLY)
    try:
        for _ in range(1100):
            os.mkdir("d", dir_fd=fd)
            down = os.open("d", os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = down
    finally:
        os.close(fd)
    try:
        assert len(json.loads(h.ok("ps", "--format", "json", cid).stdout)) == 1
        h.ok("delete", "--force", cid)
        assert not os.path.exists(top)
    finally:
        if os.path.exists(top):
            for d in reversed([top + "/d" * i for i in range(1, 1101)]):
                os.rmdir(d)
            h.mrun("delete", "--force", cid)


def test_blkio_weight_falls_back_to_the_bfq_file(tmp_path):
    """Only the BFQ file offered (kernels whose devices all use BFQ): the weight goes there. The
    driver is pointed at a directory holding just the files such a kernel shows."""
    from mrun.cgroups.v1 import CgroupV1
    from mrun.cgroups.v2 import CgroupV2

    blkio = tmp_path / "blkio"
    blkio.mkdir()
    (blkio / "blkio.bfq.weight").write_text("")
    (blkio / "blkio.bfq.weight_device").write_text("")
    CgroupV1({"blkio": str(blkio)}).apply({"blockIO": {"weight": 300, "weightDevice": [
        {"major": 8, "minor": 0, "weight": 400}]}})
    assert (blkio / "blkio.bfq.weight").read_text() == "300"
    assert (blkio / "blkio.bfq.weight_device").read_text() == "8:0 400"
    assert not (blkio / "blkio.weight").exists()
    unified = tmp_path / "unified"
    unified.mkdir()
    (unified / "io.bfq.weight").write_text("")
    CgroupV2(str(unified))._write([("", "io.weight", "default 2928")], None, {"blockIO": {"weight": 300}})
    assert (unified / "io.bfq.weight").read_text() == "300"


def test_shared_root_propagation(h):
    """rootfsPropagation shared/rshared used to fail pivot_root (EINVAL): the rootfs's parent is
    made private for the pivot, and / is shared afterwards, as asked."""
    with open("/proc/self/mountinfo") as f:
        before = f.read()
    for prop in ("shared", "rshared", "slave", "private"):
        cfg = h.config(["awk", "$5 == \"/\"", "/proc/self/mountinfo"])
        cfg["root"]["readonly"] = False
        cfg["linux"]["rootfsPropagation"] = prop
        r = h.mrun("run", "-b", h.bundle(config=cfg), h.cid())
        assert r.returncode == 0, (prop, r.stderr)
        line = r.stdout.strip()
        assert ("shared:" in line) == prop.endswith("shared"), (prop, line)
    with open("/proc/self/mountinfo") as f:
        assert f.read() == before, "the host's mount table changed"


def test_a_mount_s_own_propagation_is_kept(h, tmp_path):
    """A bind mount's propagation option (podman's bind-propagation, `-v SRC:DST:rshared`,
    Kubernetes' mountPropagation: HostToContainer is "rslave", Bidirectional "rshared") is the
    mount's, as runc keeps it: mrun's pivot_root made the container's whole new tree a slave ("."
    after pivot_root(".", ".") is the new root, not the old one runc fchdir()s back to), so an
    rshared mount ended private unless the rootfs itself was rshared (CRI makes it so for
    Bidirectional; podman's "shared" did not). An rslave mount kept its master; a mount the host
    makes later under either reaches the container. The source is a shared mount of the test's
    own on the host."""
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    subprocess.run(["mount", "--bind", str(src), str(src)], check=True)
    try:
        subprocess.run(["mount", "--make-shared", str(src)], check=True)
        cfg = h.config(["sleep", "600"])
        cfg["root"]["readonly"] = False
        cfg["mounts"] += [{"destination": "/slave", "type": "bind", "source": str(src), "options": ["rbind", "rslave"]},
                          {"destination": "/shared", "type": "bind", "source": str(src),
                           "options": ["rbind", "rshared"]}]
        cid = h.cid()
        h.ok("run", "-d", "-b", h.bundle(config=cfg), cid)
        try:
            seen = {line.split()[4]: line.split(" - ")[0].split()[6:] for line in
                    h.ok("exec", cid, "cat", "/proc/self/mountinfo").stdout.splitlines()}
            assert any(tag.startswith("master:") for tag in seen["/slave"]), seen["/slave"]
            assert any(tag.startswith("shared:") for tag in seen["/shared"]), seen["/shared"]
            subprocess.run(["mount", "-t", "tmpfs", "late", str(src / "sub")], check=True)  # after the start
            try:
                inside = h.ok("exec", cid, "cat", "/proc/self/mountinfo").stdout
                assert " /slave/sub " in inside and " /shared/sub " in inside, inside
            finally:
                subprocess.run(["umount", str(src / "sub")], check=True)
        finally:
            h.mrun("delete", "--force", cid)
    finally:
        subprocess.run(["umount", "-l", str(src)], check=True)


def test_a_container_gets_a_cgroup_in_systemd_s_named_hierarchy(h):
    """On a cgroup v1 host with systemd's named hierarchy (hybrid: name=systemd at
    /sys/fs/cgroup/systemd), runc gives the container a cgroup there as in every hierarchy and
    binds it into the container's /sys/fs/cgroup/systemd, where a systemd in the container finds
    its own (podman --systemd mounts over it). mrun left the container in its caller's systemd
    cgroup, made no such directory, and podman --systemd failed ("Read-only file system")."""
    with open("/proc/self/mountinfo") as f:  # read here, not through the code under test
        hybrid = any(" - cgroup " in line and "name=systemd" in line.split(" - ")[1] for line in f)
    if not hybrid:
        pytest.skip("this host has no cgroup v1 name=systemd hierarchy")
    cfg = h.config(["sh", "-c", "ls /sys/fs/cgroup; echo; exec sleep 600"])
    cid = h.cid()
    h.ok("run", "-d", "-b", h.bundle(config=cfg), cid)
    try:
        pid = json.loads(h.ok("state", cid).stdout)["pid"]
        with open(f"/proc/{pid}/cgroup") as f:
            named = next(line.rstrip("\n").split(":", 2)[2] for line in f if ":name=systemd:" in line)
        assert named == cfg["linux"]["cgroupsPath"], named
        listed = h.ok("exec", cid, "ls", "/sys/fs/cgroup").stdout.split()
        assert "systemd" in listed and "name=systemd" not in listed, listed
        assert h.ok("exec", cid, "cat", "/proc/self/cgroup").stdout.count("name=systemd:/\n") == 1
    finally:
        h.mrun("delete", "--force", cid)


def test_a_container_joins_the_unified_hierarchy_of_a_hybrid_host(h):
    """On a hybrid host (v1 controllers and a cgroup2 hierarchy beside them, at
    /sys/fs/cgroup/unified) runc puts the container in the cgroup2 hierarchy too ("0::/PATH"),
    where systemd tracks processes; it does not mount it in the container. mrun left the
    container and its exec'd processes in its caller's cgroup2 cgroup (a containerd's, a
    conmon's): counted, and on that unit's stop killed, as the caller's."""
    with open("/proc/self/mountinfo") as f:  # read here, not through the code under test
        kinds = {line.split(" - ")[1].split()[0] for line in f}
    if not {"cgroup", "cgroup2"} <= kinds:
        pytest.skip("this host is not a hybrid one (v1 controllers with a cgroup2 hierarchy)")
    cfg = h.config(["sh", "-c", "exec sleep 600"])
    cfg["linux"]["namespaces"] = [ns for ns in cfg["linux"]["namespaces"] if ns["type"] != "cgroup"]
    cid = h.cid()
    h.ok("run", "-d", "-b", h.bundle(config=cfg), cid)
    try:
        pid = json.loads(h.ok("state", cid).stdout)["pid"]
        for text in (open(f"/proc/{pid}/cgroup").read(), h.ok("exec", cid, "cat", "/proc/self/cgroup").stdout):
            assert f"\n0::{cfg['linux']['cgroupsPath']}\n" in f"\n{text}", text
        assert "unified" not in h.ok("exec", cid, "ls", "/sys/fs/cgroup").stdout.split()
    finally:
        h.mrun("delete", "--force", cid)


def _layout(doc: dict, prefix: str = "") -> set[str]:
    """The key paths of an `events` document: a dict's keys recursively, memory.raw's as one."""
    paths = set()
    for key, value in doc.items():
        if isinstance(value, dict) and key != "raw":
            paths |= _layout(value, f"{prefix}{key}.")
        else:
            paths.add(f"{prefix}{key}")
    return paths


def test_events_print_runc_s_layout_beside_runc(h, tmp_path):
    """`runc events --stats` prints runc's types.Stats (cpu.usage.total, cpu.throttling.
    throttledPeriods, memory.usage.limit, pids, blkio entries...), which go-runc's Stats parses;
    mrun printed a layout of its own. Side by side, the same busy container under the same
    limits: the same key paths, mrun's "backend" and "cgroup_version" beside them. And runc's
    --interval is a Go duration (go-runc passes "--interval=5s"): mrun took whole seconds only."""
    runc = require("runc", "runc")
    cfg = h.config(["sh", "-c", "while :; do :; done"])
    cfg["linux"]["resources"] = {"memory": {"limit": 100 * 1024 * 1024}, "pids": {"limit": 50},
                                 "cpu": {"quota": 50000, "period": 100000}}
    docs, ids = {}, {}
    for name, binary, root in (("runc", runc, str(tmp_path / "runc")), ("mrun", h.binary, h.root)):
        cid = ids[name] = h.cid(name)
        cfg["linux"]["cgroupsPath"] = f"{h.cgroup_parent}/{cid}"
        bundle = h.bundle(config=cfg)
        subprocess.run([binary, "--root", root, "run", "-d", "-b", bundle, cid], check=True, timeout=30,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)  # the container's own stdio
        try:
            deadline = time.monotonic() + 20
            while True:
                out = subprocess.run([binary, "--root", root, "events", "--stats", cid], check=True,
                                     capture_output=True, text=True, timeout=30).stdout
                docs[name] = json.loads(out)
                if docs[name]["data"]["cpu"]["throttling"].get("throttledPeriods", 0) >= 2:
                    break
                assert time.monotonic() < deadline, f"{name}: never throttled: {docs[name]}"
                time.sleep(0.1)
            if name == "mrun":
                lines = subprocess.run(["timeout", "-s", "INT", "1", binary, "--root", root, "events",
                                        "--interval=100ms", cid], capture_output=True, text=True).stdout.splitlines()
                assert len(lines) >= 3 and all(json.loads(line)["type"] == "stats" for line in lines), lines
                for bad in ("0s", "soon", "-1s"):
                    one_line_error(h.mrun("events", "--interval", bad, cid), "--interval")
        finally:
            subprocess.run([binary, "--root", root, "delete", "--force", cid], capture_output=True, timeout=30)
    theirs, ours = docs["runc"], docs["mrun"]
    assert (ours["type"], ours["id"]) == ("stats", ids["mrun"])
    extras = {p for p in _layout(ours["data"]) if p.startswith(("backend.", "cgroup_version"))}
    maybe = ("memory.cache", "blkio.")  # left out where zero, and what a container was charged varies
    assert {p for p in _layout(ours["data"]) - extras if not p.startswith(maybe)} == \
        {p for p in _layout(theirs["data"]) if not p.startswith(maybe)}
    for doc in (theirs["data"], ours["data"]):
        assert doc["memory"]["usage"]["limit"] == 100 * 1024 * 1024 and doc["pids"]["limit"] == 50, doc
        assert doc["cpu"]["usage"]["total"] > 0 and doc["pids"]["current"] >= 1, doc
    assert ours["data"]["cpuset"]["cpus"] == theirs["data"]["cpuset"]["cpus"]
    assert ours["data"]["backend"]["name"] == "linux"


def test_events_report_an_oom_kill_and_refuse_a_stopped_container(h):
    """runc's `events` prints {"type": "oom"} when the OOM killer kills in the container, between
    its reports; and, as runc, refuses a stopped container ("not running", exit 1)."""
    cfg = h.config(["sh", "-c", "sleep 1; dd if=/dev/zero of=/dev/null bs=64M count=1; exec sleep 2"])
    cfg["linux"]["resources"] = {"memory": {"limit": 32 * 1024 * 1024, "swap": 32 * 1024 * 1024}}
    cid = h.cid()
    h.ok("run", "-d", "-b", h.bundle(config=cfg), cid)
    try:
        # a report at once, the next in 30 s: the stream ends with the container, long before that
        out = subprocess.run([h.binary, "--root", h.root, "events", "--interval", "30s", cid], capture_output=True,
                             text=True, timeout=25).stdout
        assert [json.loads(line) for line in out.splitlines()][1:] == [{"type": "oom", "id": cid}], out
        assert h.status(cid) == "stopped"
        one_line_error(h.mrun("events", "--stats", cid), "not running")
    finally:
        h.mrun("delete", "--force", cid)


@pytest.mark.parametrize("userns", [False, True], ids=["host-ids", "userns"])
def test_the_container_s_v1_hierarchies_are_bound_nosuid_nodev_noexec(h, userns):
    """Where a container's v1 hierarchies are bound rather than mounted (no cgroup namespace of
    its own, or a user namespace, where a v1 hierarchy cannot be mounted), runc binds each with
    the flags the /sys/fs/cgroup mount asks (nosuid, nodev, noexec, ro): mrun's binds kept only ro."""
    if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        pytest.skip("a cgroup v2 host: its hierarchy is mounted, not bound per controller")
    open_to_others(h.rootfs)
    cfg = h.config(["cat", "/proc/self/mountinfo"])
    cfg["linux"]["namespaces"] = [ns for ns in cfg["linux"]["namespaces"] if ns["type"] != "cgroup"]
    if userns:
        cfg["linux"]["namespaces"].append({"type": "user"})
        cfg["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 200000, "size": 65536}]
        cfg["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 200000, "size": 65536}]
    out = h.ok("run", "-b", h.bundle(config=cfg), h.cid()).stdout
    binds = [line.split() for line in out.splitlines() if " - cgroup " in line]
    assert binds, out
    for fields in binds:
        assert {"ro", "nosuid", "nodev", "noexec"} <= set(fields[5].split(",")), fields


def test_exec_additional_gids_add_to_the_container_s(h):
    """`runc exec --additional-gids G` adds G to the groups the container's process has (its
    man page: "Add additional group IDs"); mrun replaced them, so an exec'd process lost the
    container's supplementary groups (a volume's group, say). With --user the container's groups
    stay too, as with runc."""
    cfg = h.config(["sleep", "600"])
    cfg["process"]["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [2000]}
    cid = h.cid()
    h.ok("run", "-d", "-b", h.bundle(config=cfg), cid)
    try:
        groups = h.ok("exec", "--additional-gids", "7", cid, "id", "-G").stdout.split()
        assert sorted(groups) == ["1000", "2000", "7"], groups
        groups = h.ok("exec", "--user", "0:0", cid, "id", "-G").stdout.split()
        assert sorted(groups) == ["0", "2000"], groups
    finally:
        h.mrun("delete", "--force", cid)


def test_no_mount_namespace_shares_the_callers(h, tmp_path):
    """The runtime-spec: without a mount namespace the container inherits the caller's (runc does
    it). mrun then shapes no filesystem: the host's paths are the container's."""
    marker = tmp_path / "host-marker"
    marker.write_text("seen from the container\n")
    cfg = h.config(["cat", str(marker)])
    cfg["linux"]["namespaces"] = [n for n in cfg["linux"]["namespaces"] if n["type"] != "mount"]
    cfg["linux"]["maskedPaths"] = []
    cfg["linux"]["readonlyPaths"] = []
    r = h.mrun("run", "-b", h.bundle(config=cfg), h.cid())
    assert r.returncode == 0 and r.stdout == "seen from the container\n", r.stderr
    cfg["linux"]["maskedPaths"] = ["/proc/kcore"]
    r = h.mrun("create", "-b", h.bundle(config=cfg), h.cid())
    assert r.returncode != 0 and "linux.maskedPaths" in r.stderr


def test_joined_mount_namespace_and_hostname_in_a_joined_uts_namespace(h, tmp_path):
    """A mount namespace joined by path is shaped like a new one (runc does the same); a hostname
    is set in a uts namespace joined by path."""
    holder = subprocess.Popen(["unshare", "--mount", "--uts", "--propagation", "private", "sleep", "60"])
    try:
        deadline = time.monotonic() + 5
        while os.readlink(f"/proc/{holder.pid}/ns/mnt") == os.readlink("/proc/self/ns/mnt"):
            assert time.monotonic() < deadline, "unshare did not make its namespaces"
            time.sleep(0.01)
        cfg = h.config(["hostname"])
        cfg["hostname"] = "joined-uts"
        for n in cfg["linux"]["namespaces"]:
            if n["type"] in ("mount", "uts"):
                n["path"] = f"/proc/{holder.pid}/ns/{'mnt' if n['type'] == 'mount' else 'uts'}"
        r = h.mrun("run", "-b", h.bundle(config=cfg), h.cid())
        assert r.returncode == 0 and r.stdout == "joined-uts\n", r.stderr
    finally:
        holder.kill()
        holder.wait()


def test_start_returns_once_the_program_runs_and_poststart_sees_it(h, tmp_path):
    """The runtime-spec: poststart hooks run after the user-specified process is executed, before
    `start` returns. The init (Python) must be gone from the pid by then: it is the program."""
    seen = tmp_path / "poststart-saw"
    script = tmp_path / "poststart.sh"
    script.write_text("#!/bin/sh\n"
                      "pid=$(sed -n 's/.*\"pid\": *\\([0-9][0-9]*\\).*/\\1/p')\n"
                      f"readlink /proc/$pid/exe > {seen}\n")
    script.chmod(0o755)
    hook = {"path": str(script), "args": ["poststart.sh"]}
    cfg = h.config(["sleep", "30"])
    # A slow startContainer hook widens the window between `start` and the program's execve.
    cfg["hooks"] = {"poststart": [hook], "startContainer": [{"path": "/bin/sleep", "args": ["sleep", "0.5"]}]}
    cid = h.cid()
    h.ok("create", "-b", h.bundle(config=cfg), cid)
    pid = json.loads(h.ok("state", cid).stdout)["pid"]
    h.ok("start", cid)
    exe_now = os.readlink(f"/proc/{pid}/exe")
    assert "python" not in exe_now, exe_now  # start returned after execve
    assert seen.read_text().strip() and "python" not in seen.read_text(), seen.read_text()
    h.ok("delete", "--force", cid)


def test_a_signal_before_the_program_runs_is_not_swallowed(h, tmp_path):
    """A TERM that reaches the init after `start` but before its program runs (here from a
    startContainer hook) used to end the container with 143 before the program ever ran. Now it
    is kept and delivered to the program once it runs."""
    data = tmp_path / "data"
    data.mkdir()
    cfg = h.config(["sh", "-c", "touch /data/ran"])
    cfg["mounts"].append({"destination": "/data", "type": "bind", "source": str(data), "options": ["rbind"]})
    cfg["hooks"] = {"startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "kill -TERM 1"]}]}
    r = h.mrun("run", "-b", h.bundle(config=cfg), h.cid())
    assert (data / "ran").exists(), f"the program never ran ({r.returncode}): {r.stderr}"
    assert r.returncode == 0, r.stderr  # PID 1 without a TERM handler ignores it, as the kernel rules


def test_each_verb_is_refused_in_the_statuses_runc_refuses_it(h):
    """One table (mrun.status) decides; the CLI says so in one line and exits non-zero, as runc."""
    cid = h.cid()
    h.ok("create", "-b", h.bundle(["sleep", "600"]), cid)
    refusals = {  # a created container may be paused, as runc lets it (test above)
        ("resume",): "it is created, not paused",
    }
    for args, words in refusals.items():
        r = h.mrun(*args, cid)
        assert r.returncode != 0 and words in r.stderr and len(r.stderr.strip().splitlines()) == 1, (args, r.stderr)
    h.ok("start", cid)
    r = h.mrun("start", cid)
    assert r.returncode != 0 and "it is running, not created" in r.stderr
    r = h.mrun("delete", cid)
    assert r.returncode != 0 and "it is running; stop it first or use --force" in r.stderr
    h.ok("kill", cid, "KILL")
    deadline = time.monotonic() + 10
    while json.loads(h.ok("state", cid).stdout)["status"] != "stopped":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    for verb in (["kill", cid, "TERM"], ["update", "--pids-limit", "10", cid]):
        r = h.mrun(*verb)
        assert r.returncode != 0 and "container not running" in r.stderr, (verb, r.stderr)  # runc's words
    r = h.mrun("exec", cid, "true")
    assert r.returncode != 0 and "it is stopped" in r.stderr
    h.ok("delete", cid)


def _numa_policy(h, policy: dict | None, exec_too: bool = False) -> subprocess.CompletedProcess[str]:
    """The process's memory policy as numa_maps shows it (its first mapping's), as runc's tests read it."""
    cfg = h.config(["sh", "-c", "head -n 1 /proc/self/numa_maps | cut -d ' ' -f 2"])
    if policy is not None:
        cfg["ociVersion"] = "1.3.0"
        cfg["linux"]["memoryPolicy"] = policy
    if not exec_too:
        return h.mrun("run", "-b", h.bundle(config=cfg), h.cid())
    cid = h.cid()
    cfg["process"]["args"] = ["sleep", "600"]
    h.ok("run", "-d", "-b", h.bundle(config=cfg), cid)
    try:
        init = json.loads(h.ok("state", cid).stdout)["pid"]
        with open(f"/proc/{init}/numa_maps") as f:
            of_init = f.readline().split()[1]
        r = h.ok("exec", cid, "sh", "-c", "head -n 1 /proc/self/numa_maps | cut -d ' ' -f 2")
        assert r.stdout.strip() == of_init, (r.stdout, of_init)  # the init's and an exec's alike
        return r
    finally:
        h.ok("delete", "--force", cid)


@pytest.mark.parametrize(("policy", "shown"), [
    ({"mode": "MPOL_INTERLEAVE", "nodes": "0"}, "interleave:0"),
    ({"mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_STATIC_NODES"]}, "bind=static:0"),
    ({"mode": "MPOL_PREFERRED", "nodes": "0", "flags": ["MPOL_F_RELATIVE_NODES"]}, "prefer=relative:0"),
    ({"mode": "MPOL_DEFAULT"}, "default"),
    ({"mode": "MPOL_LOCAL", "nodes": ""}, "local"),
    (None, "default"),
])
def test_a_memory_policy_is_the_container_s_as_runc_sets_it(h, policy, shown):
    """runtime-spec 1.3's linux.memoryPolicy (set_mempolicy(2); containerd 2.3 writes 1.3.0 configs,
    NRI plugins set it): mrun ran the container with the caller's policy, the field passed over
    without a word, where runc 1.4 sets it for the init and every exec'd process. The cases of
    runc's own tests (integration/memory_policy.bats), read back from numa_maps."""
    r = _numa_policy(h, policy, exec_too=policy is not None and "flags" in policy)
    assert r.returncode == 0 and r.stdout.strip() == shown, (r.stdout, r.stderr)


@pytest.mark.parametrize(("policy", "field"), [
    ({}, "linux.memoryPolicy.mode"),
    ({"mode": "INTERLEAVE", "nodes": "0"}, "linux.memoryPolicy.mode"),
    ({"nodes": "0-7"}, "linux.memoryPolicy.mode"),
    ({"mode": "MPOL_PREFERRED", "nodes": "0", "flags": ["MPOL_F_RELATIVE_NODES", "badflag"]},
     "linux.memoryPolicy.flags[1]"),
    ({"mode": "MPOL_DEFAULT", "nodes": "0-7"}, "linux.memoryPolicy.nodes"),
    ({"mode": "MPOL_BIND", "nodes": "0-9876543210", "flags": []}, "linux.memoryPolicy.nodes"),
    ({"mode": "MPOL_BIND", "nodes": ""}, "linux.memoryPolicy.nodes"),
    ({"mode": "MPOL_BIND", "nodes": "3-1"}, "linux.memoryPolicy.nodes"),
    ({"mode": "MPOL_BIND", "nodes": "0,x"}, "linux.memoryPolicy.nodes"),
    ({"mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_STATIC_NODES", "MPOL_F_RELATIVE_NODES"]},
     "linux.memoryPolicy.flags"),
    ({"mode": "MPOL_BIND", "nodes": "1000"}, "linux.memoryPolicy"),  # a node this machine has not: the kernel's word
    ({"mode": "MPOL_BIND", "nodes": "9" * 5000}, "linux.memoryPolicy.nodes"),  # past what int() reads: its ValueError
])
def test_a_memory_policy_runc_refuses_is_one_line_naming_the_field(h, policy, field):
    one_line_error(_numa_policy(h, policy), field)


def _add_device(name: str) -> None:
    """A veth pair, ``name`` the end that moves (runc's tests move a dummy device, which not every
    kernel has: this one has not; ifb takes no MAC address of one's choosing)."""
    subprocess.run(["ip", "link", "add", name, "type", "veth", "peer", "name", name + "p"], check=True)


@pytest.fixture
def dummy(h, tmp_path):
    """A virtual network device of the test's own on the host (``_add_device``), and where a
    network namespace may be precreated (``_precreate``, as `ip netns add` makes one: a bind
    mount of its nsfs file); whatever is left of either is removed after."""
    name, ns = f"mrd{uuid.uuid4().hex[:6]}", str(tmp_path / "netns")
    require("ip", "iproute2")
    _add_device(name)
    try:
        yield name, ns
    finally:
        subprocess.run(["ip", "link", "del", name], capture_output=True)
        subprocess.run(["umount", ns], capture_output=True)


def _precreate(ns: str) -> None:
    open(ns, "w").close()
    subprocess.run(["unshare", f"--net={ns}", "true"], check=True)


def _in_netns(ns: str, *argv: str) -> str:
    return subprocess.run(["nsenter", f"--net={ns}", *argv], check=True, capture_output=True, text=True).stdout


def test_a_network_device_is_moved_into_the_container_as_runc_moves_it(h, dummy):
    """runtime-spec 1.2's linux.netDevices (runc 1.3's; DRA network drivers and NRI plugins set
    it): mrun refused it. The host's device is moved into the container's network namespace
    (renamed if asked, in the same request), keeps its MTU and MAC and its permanent addresses of
    global scope (a move drops addresses: they are added again; a host-scope one is not), and is
    up. A precreated namespace keeps it after the container; the container's own takes it along
    (a virtual device goes with it). runc's integration/netdev.bats, case by case."""
    device, ns = dummy
    show = ["ip", "-o", "address", "show", "dev"]
    cfg = h.config(["ip", "-o", "link", "show", "dev", device])
    cfg["linux"]["netDevices"] = {device: {}}
    r = h.ok("run", "-b", h.bundle(config=cfg), h.cid())
    assert f"{device}@" in r.stdout, r.stdout  # (a veth end: NAME@PEER)
    assert not os.path.exists(f"/sys/class/net/{device}")  # it went with the container's namespace
    device += "b"  # another (the first pair's end goes as the kernel gets to it)
    _add_device(device)
    try:
        for step in (["link", "set", "down", "dev", device], ["link", "set", "mtu", "1789", "dev", device],
                     ["link", "set", "address", "00:11:22:33:44:55", "dev", device],
                     ["address", "add", "169.254.169.77/32", "dev", device],
                     ["address", "add", "127.0.0.33/8", "dev", device]):
            subprocess.run(["ip", *step], check=True)
        _precreate(ns)
        cfg = h.config(["sh", "-c", "ip -o link show dev ctr0; ip -o address show dev ctr0"])
        cfg["linux"]["namespaces"] = [n for n in cfg["linux"]["namespaces"] if n["type"] != "network"] + [
            {"type": "network", "path": ns}]
        cfg["linux"]["netDevices"] = {device: {"name": "ctr0"}}
        r = h.ok("run", "-b", h.bundle(config=cfg), h.cid())
        assert "mtu 1789 " in r.stdout and "link/ether 00:11:22:33:44:55 " in r.stdout, r.stdout
        assert "169.254.169.77/32 " in r.stdout and "127.0.0.33" not in r.stdout, r.stdout
        flags = r.stdout.split("<", 1)[1].split(">", 1)[0].split(",")
        assert "UP" in flags, r.stdout  # up (and no carrier: its peer is down)
        assert not os.path.exists(f"/sys/class/net/{device}")
        assert "169.254.169.77/32 " in _in_netns(ns, *show, "ctr0")  # the namespace's owner has it now
    finally:
        subprocess.run(["ip", "link", "del", device + "p"], capture_output=True)


def test_a_network_device_runc_would_not_move_is_one_line_and_nothing_moves(h, dummy):
    """Each refusal names linux.netDevices and leaves the host's device where it was: a device the
    host has not, a name no device may have, two devices given one name, a name the container's
    namespace has already (lo), and a container with no network namespace of its own (it would be
    the host's: nothing to move), or joining the host's by a path."""
    device, _ = dummy
    cases = [({"nodev0": {}}, None, "linux.netDevices.nodev0"), ({device: {"name": "a/b"}}, None, "name"),
             ({device: {"name": "x" * 16}}, None, "name"), ({"a b": {}}, None, "linux.netDevices"),
             ({device: {"name": "lo"}}, None, "linux.netDevices." + device),
             ({device: {}}, "host", "network namespace"), ({device: {}}, f"/proc/{os.getpid()}/ns/net", "the host's")]
    for devices, netns, needle in cases:
        cfg = h.config(["true"])
        cfg["linux"]["netDevices"] = devices
        if netns is not None:
            cfg["linux"]["namespaces"] = [n for n in cfg["linux"]["namespaces"] if n["type"] != "network"] + (
                [{"type": "network", "path": netns}] if netns != "host" else [])
        one_line_error(h.mrun("run", "-b", h.bundle(config=cfg), h.cid()), needle)
        assert os.path.exists(f"/sys/class/net/{device}"), devices
    cfg = h.config(["true"])
    cfg["linux"]["netDevices"] = {device: {"name": "same"}, "nodev1": {"name": "same"}}
    one_line_error(h.mrun("run", "-b", h.bundle(config=cfg), h.cid()), "linux.netDevices", "same")


class SeccompAgent:
    """A seccomp agent of the test's own, what runc's contrib/cmd/seccompagent does that these
    tests need: it takes each container process state and its listener at ``path``; a mkdir
    (mkdir, mkdirat) it answers as done without doing it, every other notified call goes on
    (SECCOMP_USER_NOTIF_FLAG_CONTINUE). ``drop``: it closes each listener as it comes."""

    RECV, SEND, CONTINUE = 0xC0502100, 0xC0182101, 1  # SECCOMP_IOCTL_NOTIF_RECV/SEND (x86_64)
    MKDIR = (83, 258)  # mkdir, mkdirat

    def __init__(self, path: str, drop: bool = False) -> None:
        self.path, self.drop, self.received = path, drop, []
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(path)
        self.server.listen(8)
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with conn:
                data, ancillary, _flags, _addr = conn.recvmsg(1 << 16, socket.CMSG_SPACE(4 * 4))
            fds = [int.from_bytes(d[i:i + 4], "little") for _l, _t, d in ancillary for i in range(0, len(d), 4)]
            self.received.append((json.loads(data) if data else None, len(fds)))
            for fd in fds[1:]:
                os.close(fd)
            if fds and self.drop:
                os.close(fds[0])
            elif fds:
                threading.Thread(target=self._answer, args=(fds[0],), daemon=True).start()

    def _answer(self, fd: int) -> None:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        try:
            while True:
                if any(event & (select.POLLHUP | select.POLLERR) for _fd, event in poller.poll()):
                    return  # nobody left under the filter
                request = bytearray(80)  # struct seccomp_notif, zeroed as the kernel asks
                try:
                    fcntl.ioctl(fd, self.RECV, request, True)
                except OSError as e:
                    if e.errno in (errno.ENOENT, errno.EINTR):
                        continue
                    return
                nr = int.from_bytes(request[16:20], "little", signed=True)
                flags = 0 if nr in self.MKDIR else self.CONTINUE
                answer = bytes(request[:8]) + bytes(12) + flags.to_bytes(4, "little")  # id, val 0, error 0, flags
                try:
                    fcntl.ioctl(fd, self.SEND, bytearray(answer), True)
                except OSError:
                    pass  # the caller was killed meanwhile
        finally:
            os.close(fd)

    def close(self) -> None:
        """A close alone does not wake the thread's accept (it goes on listening at the path)."""
        try:
            self.server.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.server.close()


@pytest.fixture
def agent(tmp_path):
    agents: list[SeccompAgent] = []

    def make(drop: bool = False) -> SeccompAgent:
        agents.append(SeccompAgent(str(tmp_path / f"agent-{len(agents)}.sock"), drop))
        return agents[-1]

    yield make
    for a in agents:
        a.close()


def _notifying(listener: str, names: list[str], nnp: bool, args: list[str], h) -> dict:
    """runc's seccomp-notify.bats template: the named calls notify, the rest are allowed."""
    cfg = h.config(args)
    cfg["process"]["noNewPrivileges"] = nnp
    cfg["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": listener, "listenerMetadata": "bar",
                               "architectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32", "SCMP_ARCH_X86_64"],
                               "syscalls": [{"names": names, "action": "SCMP_ACT_NOTIFY"}]}
    return cfg


MADE_OR_NOT = "mkdir /tmp/made && echo said-made; [ -d /tmp/made ] || echo not-there"  # a read-only root: EROFS


@pytest.mark.parametrize("nnp", [False, True])
def test_seccomp_notify_hands_the_listener_to_the_agent_for_run_and_exec(h, agent, nnp):
    """runtime-spec's SCMP_ACT_NOTIFY and listenerPath, as runc implements them (its
    seccomp-notify.bats): refused by mrun before. The agent gets one message per process, the
    container process state (fds ["seccompFd"], the process's pid, listenerMetadata, the
    container's state: creating for the init, running for an exec) with the listener, and
    answers the notified calls: the container's mkdir on a read-only root "succeeds" without a
    directory. Loaded where runc loads it, with or without no_new_privs."""
    a = agent()
    cid = h.cid("notify")
    cfg = _notifying(a.path, ["mkdir", "mkdirat"], nnp, ["sh", "-c", MADE_OR_NOT], h)
    if nnp:  # loaded after the process took its user: the host still takes the listener from it
        cfg["process"]["user"] = {"uid": 1000, "gid": 1000}
    r = h.ok("run", "-b", h.bundle(config=cfg), cid)
    assert r.stdout.split() == ["said-made", "not-there"], r.stdout + r.stderr
    (state, fds), = a.received
    assert fds == 1 and state["fds"] == ["seccompFd"] and state["metadata"] == "bar", state
    assert state["state"]["id"] == cid and state["state"]["status"] == "creating", state
    assert state["pid"] == state["state"]["pid"] > 0, state
    cid = h.cid("notify")
    h.ok("create", "-b", h.bundle(config=_notifying(a.path, ["mkdir", "mkdirat"], nnp, ["sleep", "60"], h)), cid)
    h.ok("start", cid)
    try:
        assert h.ok("exec", cid, "sh", "-c", MADE_OR_NOT).stdout.split() == ["said-made", "not-there"]
        (init, _), (exec_state, _) = a.received[1:]
        assert exec_state["state"]["status"] == "running" and exec_state["pid"] != init["pid"], exec_state
        assert exec_state["state"]["pid"] == init["pid"], exec_state
    finally:
        h.ok("delete", "--force", cid)


@pytest.mark.parametrize("nnp, userns", [(False, False), (True, False), (False, True)])
def test_seccomp_notify_of_the_calls_a_start_makes_still_starts(h, agent, nnp, userns):
    """runc's "important syscalls" case: execve, openat, read and close notified, which the
    container's process makes between loading its filter and its payload; the agent lets them go.
    ``userns``: a container with a user namespace of its own (an intermediate process forks it)."""
    from test_sandbox import _in_a_user_namespace

    a = agent()
    cfg = _notifying(a.path, ["execve", "openat", "open", "read", "close"], nnp, ["/bin/true"], h)
    if userns:
        _in_a_user_namespace(h, cfg)
    h.ok("run", "-b", h.bundle(config=cfg), h.cid("notify"))
    assert len(a.received) == 1


def test_seccomp_notify_s_calls_fail_with_enosys_once_the_agent_is_gone(h, agent):
    """The agent holds the only copy of the listener: the host closes its own once sent, the
    container's process its own once the host took it (before the startContainer hooks and the
    payload). An agent that closes it leaves the notified calls failing with ENOSYS, as under runc,
    not waiting for ever; a listener kept by mrun would hang the mkdir until the test's timeout."""
    a = agent(drop=True)
    cfg = _notifying(a.path, ["mkdir", "mkdirat"], False, ["sh", "-c", "mkdir /tmp/x"], h)
    # a startContainer hook runs under the filter while the init (not yet exec'd) lives: a copy
    # the init kept would hang its mkdir (execve closes the listener, close-on-exec, only later)
    cfg["hooks"] = {"startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "mkdir /tmp/y 2>/dev/null; true"]}]}
    r = h.mrun("run", "-b", h.bundle(config=cfg), h.cid("notify"), timeout=30)
    assert r.returncode != 0 and "Function not implemented" in r.stderr, r.stderr


@pytest.mark.parametrize("images", ["warm", "cold"], indirect=True)
def test_seccomp_notify_through_docker_s_security_opt(images, busybox_archive, agent, tmp_path):
    """`mrun run --security-opt seccomp=PROFILE.json` with a listener (docker's profile format has
    listenerPath too): warm, the host's half is the template's child, which hands the listener
    over as a cold run does."""
    from conftest import IMAGE, img_ok, run_args

    a = agent()
    profile = tmp_path / "notify.json"
    profile.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": a.path,
                                   "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]}))
    img_ok(images, "load", busybox_archive)
    out = img_ok(images, *run_args(images, "--rm", "--read-only", "--security-opt", f"seccomp={profile}", IMAGE,
                                   "sh", "-c", MADE_OR_NOT.replace("/tmp/", "/"))).stdout
    assert out.split() == ["said-made", "not-there"], out
    assert len(a.received) == 1 and a.received[0][0]["state"]["status"] == "creating"


def test_seccomp_notify_refusals_are_one_line_and_leave_nothing(h, tmp_path, agent):
    """runc's refusals: SCMP_ACT_NOTIFY with no listenerPath, with one nobody listens at (a path,
    an abstract @NAME), for write(2) (the process needs it to say where its listener is), as the
    default action; metadata that is no string. A relative path too (runc dials it from its
    caller's directory, which a warm template's child or a shim's worker does not share). A
    listenerPath with no notifying rule is not used, and runs (mrun refused it)."""
    a = agent()
    cases = [("", ["mkdir"], "linux.seccomp.listenerPath"),
             (str(tmp_path / "nobody.sock"), ["mkdir"], "No such file or directory"),
             (f"@mrun-test-{uuid.uuid4().hex}", ["mkdir"], "Connection refused"),
             ("agent.sock", ["mkdir"], "linux.seccomp.listenerPath"),
             ("/" + "x" * 200, ["mkdir"], "path too long"),
             (a.path, ["mkdir", "write"], "SCMP_ACT_NOTIFY cannot be used for the write syscall")]
    for listener, names, needle in cases:
        cfg = _notifying(listener, names, False, ["true"], h)
        one_line_error(h.mrun("run", "-b", h.bundle(config=cfg), h.cid("notify")), needle)
        assert not h.leftovers(), listener
    cfg = _notifying(a.path, ["mkdir"], False, ["true"], h)
    cfg["linux"]["seccomp"]["defaultAction"] = "SCMP_ACT_NOTIFY"
    one_line_error(h.mrun("run", "-b", h.bundle(config=cfg), h.cid("notify")), "cannot be used as default action")
    cfg = _notifying(a.path, ["mkdir"], False, ["true"], h)
    cfg["linux"]["seccomp"]["listenerMetadata"] = 5  # a string, which it would have been sent as
    one_line_error(h.mrun("run", "-b", h.bundle(config=cfg), h.cid("notify")), "linux.seccomp.listenerMetadata")
    cfg = _notifying(a.path, ["mkdir"], False, ["sh", "-c", "mkdir /tmp/x 2>/dev/null; echo $?"], h)
    cfg["linux"]["seccomp"]["syscalls"] = []
    assert h.ok("run", "-b", h.bundle(config=cfg), h.cid("notify")).stdout == "1\n"  # EROFS: nothing notified
    assert a.received == []


def test_a_failing_poststart_hook_fails_start_and_stops_the_container(h, tmp_path):
    """runtime-spec 1.3: "If any poststart hook fails, the runtime MUST generate an error, stop
    the container" (runc has always killed the container there). mrun warned and left it running
    under a `start` that said 0. The later hooks do not run; the container is stopped, for its
    engine to delete; a poststop hook still only warns (its failure changes nothing left to do)."""
    ran = tmp_path / "second-ran"
    cfg = h.config(["sleep", "600"])
    cfg["hooks"] = {"poststart": [{"path": "/bin/false"}, {"path": "/bin/touch", "args": ["touch", str(ran)]}],
                    "poststop": [{"path": "/bin/false"}]}
    cid = h.cid()
    h.ok("create", "-b", h.bundle(config=cfg), cid)
    one_line_error(h.mrun("start", cid), "hooks.poststart[0] (/bin/false)")
    h.wait_status(cid, "stopped")
    assert not ran.exists()
    r = h.ok("delete", cid)
    assert "warning: hooks.poststop[0]" in r.stderr, r.stderr

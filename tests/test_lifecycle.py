"""runc-compatible lifecycle on the real kernel: run, create/start/state/kill/delete, exec, ps,
pause/resume. Every test also asserts (in the fixture) that nothing was left behind."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import tempfile
import time

import pytest
from conftest import one_line_error


@pytest.mark.parametrize("script, code", [("exit 0", 0), ("exit 3", 3)])
def test_run_passes_exit_codes_through(h, script, code):
    r = h.mrun("run", "-b", h.bundle(["sh", "-c", script]), h.cid())
    assert r.returncode == code, r.stderr


def test_run_reports_sigkill_of_the_init_as_137(h):
    """The kernel ignores SIGKILL sent to a PID namespace's init from inside; from outside it kills."""
    cid = h.cid()
    proc = subprocess.Popen(
        [h.binary, "--root", h.root, "run", "-b", h.bundle(["sleep", "60"]), cid],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    h.wait_status(cid, "running")
    h.ok("kill", cid, "KILL")
    assert proc.wait(timeout=10) == 137
    proc.stderr.close()


def test_run_forwards_signals_to_the_container(h):
    cid = h.cid()
    script = "trap 'echo got-term; exit 42' TERM; echo ready; while :; do sleep 0.05; done"
    proc = subprocess.Popen(
        [h.binary, "--root", h.root, "run", "-b", h.bundle(["sh", "-c", script]), cid],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(15)
    assert proc.wait(timeout=10) == 42
    assert "got-term" in proc.stdout.read()
    proc.stdout.close()


def test_run_sees_its_own_pid_hostname_mounts_and_network(h):
    script = "echo pid=$$; hostname; cat /proc/self/mountinfo; echo ifaces: $(ls /sys/class/net)"
    bundle = h.bundle(["sh", "-c", script], hostname="box-under-test")
    r = h.ok("run", "-b", bundle, h.cid())
    lines = r.stdout.splitlines()
    assert lines[0] == "pid=1"
    assert lines[1] == "box-under-test"
    mounts = [line.split()[4] for line in lines[2:-1]]
    assert "/" in mounts and "/proc" in mounts and "/dev" in mounts
    assert not any(m.startswith(("/work", "/tmp/pytest", "/home")) for m in mounts), mounts
    assert lines[-1] == "ifaces: lo"


def test_create_start_state_kill_delete(h):
    cid = h.cid()
    pid_file = os.path.join(h.tmp, "init.pid")
    h.ok("create", "--bundle", h.bundle(["sleep", "60"]), "--pid-file", pid_file, cid)
    state = json.loads(h.ok("state", cid).stdout)
    assert state["status"] == "created"
    assert state["id"] == cid and state["pid"] == int(open(pid_file).read())
    assert os.path.exists(f"/proc/{state['pid']}")
    h.ok("start", cid)
    assert h.status(cid) == "running"
    assert json.loads(h.ok("list", "--format", "json").stdout)[0]["id"] == cid
    h.ok("kill", cid, "KILL")
    h.wait_status(cid, "stopped")
    r = h.mrun("kill", cid, "KILL")
    assert r.returncode != 0 and "not running" in r.stderr
    h.ok("delete", cid)
    assert h.status(cid) == "gone"


def _blocking_sigterm() -> None:
    import signal

    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})


@pytest.mark.parametrize("caller", ["plain", "blocking SIGTERM"])
def test_created_container_dies_on_term(h, caller):
    """The init is PID 1 while it waits for `start`: it must still honour SIGTERM, also when the
    caller of `mrun create` had it blocked (a mask survives fork and exec)."""
    cid = h.cid()
    subprocess.run([h.binary, "--root", h.root, "create", "-b", h.bundle(["sleep", "60"]), cid], check=True,
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30,
                   preexec_fn=_blocking_sigterm if caller != "plain" else None)  # the container holds its stdio
    h.ok("kill", cid, "SIGTERM")
    h.wait_status(cid, "stopped")
    h.ok("delete", cid)


def test_delete_refuses_running_container_without_force(h):
    cid = h.cid()
    h.ok("run", "-d", "-b", h.bundle(["sleep", "60"]), cid)
    r = h.mrun("delete", cid)
    assert r.returncode != 0 and "running" in r.stderr and cid in r.stderr
    h.ok("delete", "--force", cid)
    assert h.status(cid) == "gone"


def test_exec_into_running_container(h):
    cid = h.cid()
    h.ok("run", "--detach", "-b", h.bundle(["sleep", "60"], hostname="execbox"), cid)
    r = h.ok("exec", "-e", "FOO=bar", cid, "sh", "-c", "echo $FOO $(hostname) $(cat /proc/1/cmdline | tr '\\0' ' ')")
    assert r.stdout.strip() == "bar execbox sleep 60"
    r = h.mrun("exec", cid, "sh", "-c", "exit 7")
    assert r.returncode == 7
    pid_file = os.path.join(h.tmp, "exec.pid")
    h.ok("exec", "--detach", "--pid-file", pid_file, cid, "sleep", "30")
    exec_pid = int(open(pid_file).read())
    pids = json.loads(h.ok("ps", "--format", "json", cid).stdout)
    assert exec_pid in pids and len(pids) == 2
    process = {
        "args": ["sh", "-c", "echo from-process-file $PWD"],
        "cwd": "/tmp",
        "env": ["PATH=/bin"],
        "user": {"uid": 65534, "gid": 65534},
    }
    pfile = os.path.join(h.tmp, "process.json")
    with open(pfile, "w") as f:
        json.dump(process, f)
    r = h.ok("exec", "--process", pfile, cid)
    assert r.stdout.strip() == "from-process-file /tmp"
    r = h.mrun("exec", cid, "no-such-binary")
    assert r.returncode != 0 and "no-such-binary" in r.stderr and "not found" in r.stderr
    h.ok("delete", "--force", cid)


def test_pause_and_resume(h):
    cid = h.cid()
    h.ok("run", "-d", "-b", h.bundle(["sleep", "60"]), cid)
    h.ok("pause", cid)
    assert h.status(cid) == "paused"
    assert h.mrun("pause", cid).returncode != 0
    h.ok("resume", cid)
    assert h.status(cid) == "running"
    h.ok("kill", cid, "9")
    h.wait_status(cid, "stopped")
    h.ok("delete", cid)


def test_kill_all_and_delete_force_clean_up_every_process(h):
    cid = h.cid()
    h.ok("run", "-d", "-b", h.bundle(["sh", "-c", "sleep 60 & sleep 60 & wait"]), cid)
    deadline = time.monotonic() + 5
    while len(json.loads(h.ok("ps", "-f", "json", cid).stdout)) < 3:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    h.ok("kill", "--all", cid, "KILL")
    h.wait_status(cid, "stopped")
    h.ok("delete", cid)


def test_kill_all_reaches_what_a_stopped_container_left_in_a_shared_pid_namespace(h):
    """A container in another's PID namespace (a pod's shared one) whose init has ended leaves
    its other processes running: the kernel kills a namespace's processes with its PID 1 only.
    runc's `kill --all` signals them in any status, and containerd's runc shim relies on it
    (KillAll once an init exits where its PID namespace is not its own); mrun refused a
    stopped container, "not running", and left them."""
    holder, cid = h.cid("holder"), h.cid()
    h.ok("run", "-d", "-b", h.bundle(["sleep", "600"]), holder)
    try:
        cfg = h.config(["sh", "-c", "sleep 600 & echo started"])
        pid_ns = f"/proc/{json.loads(h.ok('state', holder).stdout)['pid']}/ns/pid"
        cfg["linux"]["namespaces"] = [ns if ns["type"] != "pid" else {"type": "pid", "path": pid_ns}
                                      for ns in cfg["linux"]["namespaces"]]
        h.ok("run", "-d", "-b", h.bundle(config=cfg), cid)
        h.wait_status(cid, "stopped")
        left = json.loads(h.ok("ps", "-f", "json", cid).stdout)
        assert len(left) == 1, left  # its sleep, in its cgroup
        h.ok("kill", "--all", cid, "KILL")
        deadline = time.monotonic() + 5
        while json.loads(h.ok("ps", "-f", "json", cid).stdout):
            assert time.monotonic() < deadline, "kill --all left the stopped container's process"
            time.sleep(0.02)
        one_line_error(h.mrun("kill", cid, "KILL"), "not running")  # without --all: refused, as runc
        h.ok("delete", cid)
    finally:
        for each in (cid, holder):
            h.mrun("delete", "--force", each)


def test_hooks_get_state_on_stdin(h):
    """The statuses follow the runtime-spec's lifecycle, as runtime-tools' validation checks them:
    "created" once the environment exists (prestart, createRuntime), "running" once the program
    runs (poststart), "stopped" after. Here the spec and runc differ, and mrun follows the spec:
    runc 1.1 passes "creating" to prestart and createRuntime, and "created" to poststart (its
    status is read before the exec fifo goes)."""
    out = os.path.join(h.tmp, "hooks.log")
    hooks = {
        kind: [{"path": "/bin/sh", "args": ["sh", "-c", f"echo {kind} $(cat) >> {out}"]}]
        for kind in ("prestart", "createRuntime", "poststart", "poststop")
    }
    cid = h.cid()
    h.ok("run", "-b", h.bundle(["true"], hooks=hooks), cid)
    lines = open(out).read().splitlines()
    assert [line.split()[0] for line in lines] == ["prestart", "createRuntime", "poststart", "poststop"]
    state = json.loads(lines[0].split(" ", 1)[1])
    assert state["id"] == cid and state["pid"] > 0
    statuses = [json.loads(line.split(" ", 1)[1])["status"] for line in lines]
    assert statuses == ["created", "created", "running", "stopped"], statuses


def test_a_hook_reads_a_state_larger_than_a_pipe_whole(h):
    """The state is fed to stdin while mrun waits (see the timeout test below): all of it arrives."""
    out = os.path.join(h.tmp, "state.json")
    hooks = {"prestart": [{"path": "/bin/sh", "args": ["sh", "-c", f"sleep 0.2; cat > {out}"], "timeout": 10}]}
    cid = h.cid()
    h.ok("run", "-b", h.bundle(["true"], hooks=hooks, annotations={"org.example.big": "y" * 300_000}), cid)
    state = json.load(open(out))
    assert state["id"] == cid and state["annotations"]["org.example.big"] == "y" * 300_000


def test_in_container_hooks(h):
    """createContainer runs in the container's namespaces before pivot_root (host paths still
    resolve); startContainer runs after it, so its path and output are the container's."""
    out = os.path.join(h.tmp, "out")
    os.makedirs(out)
    hooks = {
        "createContainer": [{"path": "/bin/sh", "args": ["sh", "-c", f"hostname > {out}/create"]}],
        "startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "cat > /out/start; hostname >> /out/start"]}],
    }
    cfg = h.config(["true"], hooks=hooks, hostname="hooked")
    cfg["mounts"].append({"destination": "/out", "type": "bind", "source": out, "options": ["rbind"]})
    cid = h.cid()
    h.ok("run", "-b", h.bundle(config=cfg), cid)
    assert open(os.path.join(out, "create")).read() == "hooked\n"
    state_json, hostname = open(os.path.join(out, "start")).read().rsplit("}", 1)
    assert json.loads(state_json + "}")["id"] == cid and hostname.strip() == "hooked"


def test_preserve_fds_passes_extra_descriptors(h):
    r, w = os.pipe()
    os.set_inheritable(w, True)
    cid = h.cid()
    try:
        bundle = h.bundle(["sh", "-c", "echo through-fd-3 >&3; ls /proc/self/fd | wc -l"])
        proc = subprocess.run(  # the shell puts our pipe at fd 3, as a caller of runc would
            [
                "bash",
                "-c",
                f'exec "$0" "$@" 3>&{w}',
                h.binary,
                "--root",
                h.root,
                "run",
                "--preserve-fds",
                "1",
                "-b",
                bundle,
                cid,
            ],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            pass_fds=(w,),
            timeout=30,
        )
    finally:
        os.close(w)
    assert proc.returncode == 0, proc.stderr
    assert os.read(r, 100) == b"through-fd-3\n"
    os.close(r)
    assert proc.stdout.strip() == "5"  # 0, 1, 2, 3 and the one ls opened to list them


def test_version_and_unsupported_verbs(h):
    """checkpoint and restore are refused in one line whatever flags runc's clients pass (the
    containerd runc shim's `checkpoint --image-path --work-path --leave-running`, podman's
    `restore --bundle --console-socket --pid-file`): those flags were a usage error, exit 2."""
    assert h.ok("--version").stdout.startswith("mrun version ")
    # docker's `version -f`, which tools ask to learn that a runtime answers ("No such option" before)
    from mrun import __version__

    assert h.ok("version", "-f", "{{.Server.Version}}").stdout == f"{__version__}\n"
    assert json.loads(h.ok("version", "--format", "{{json .}}").stdout)["Client"]["Os"] == "linux"
    assert "no field 'Nope'" in h.mrun("version", "-f", "{{.Nope}}").stderr
    for argv in (["checkpoint", "c1"],
                 ["checkpoint", "--image-path", "/tmp/i", "--work-path", "/tmp/w", "--leave-running",
                  "--tcp-established", "--ext-unix-sk", "--shell-job", "--file-locks", "--manage-cgroups-mode", "soft",
                  "--empty-ns", "network", "--auto-dedup", "--lazy-pages", "--status-fd", "3", "--parent-path", "p",
                  "--pre-dump", "--page-server", "x", "--link-remap", "--tcp-skip-in-flight", "c1"],
                 ["restore", "--image-path", "/tmp/i", "--work-path", "/tmp/w", "--bundle", "/tmp/b", "--detach",
                  "--pid-file", "/tmp/p", "--console-socket", "/tmp/s", "--no-subreaper", "--no-pivot",
                  "--tcp-established", "--ext-unix-sk", "--shell-job", "--file-locks", "--manage-cgroups-mode", "soft",
                  "--empty-ns", "network", "--auto-dedup", "--lazy-pages", "--lsm-profile", "x",
                  "--lsm-mount-context", "y", "c1"]):
        r = h.mrun(*argv)
        assert r.returncode == 1 and "not implemented" in r.stderr and r.stderr.count("\n") == 1, (argv, r.stderr)


def test_failing_prestart_hook_fails_create_and_leaves_nothing(h):
    hooks = {"prestart": [{"path": "/bin/false"}]}
    r = h.mrun("create", "-b", h.bundle(["true"], hooks=hooks), h.cid())
    assert r.returncode != 0 and "hooks.prestart[0]" in r.stderr



def test_hook_timeout_holds_when_the_hook_does_not_read_a_large_state(h):
    """The state goes to the hook's stdin through a pipe. With more than a pipe's worth of it (large
    annotations) and a hook that never reads, the write blocked: the timeout was never reached and
    `create` hung, the hook running on. runc writes stdin beside the wait; so does mrun now."""
    mark = os.path.join(h.tmp, "hook-still-ran")
    script = f"sleep 30; touch {mark}"
    hooks = {"prestart": [{"path": "/bin/sh", "args": ["sh", "-c", script], "timeout": 1}]}
    bundle = h.bundle(["true"], hooks=hooks, annotations={"org.example.big": "x" * 300_000})
    start = time.monotonic()
    r = h.mrun("create", "-b", bundle, h.cid(), timeout=20)
    assert r.returncode != 0 and "hooks.prestart[0]" in r.stderr and "timed out after 1s" in r.stderr, r.stderr
    assert time.monotonic() - start < 10
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr

def test_an_interrupted_create_leaves_no_hook_running(h):
    """^C (SIGINT) to `mrun create` while a host-side hook runs: the create is undone (exit 130)
    and the hook goes with it. It was left running, orphaned, doing whatever it does after."""
    import signal
    import subprocess

    from conftest import processes_mentioning

    tag = f"59.{int.from_bytes(os.urandom(3), 'big')}"  # seconds to sleep, and the hook's mark
    hooks = {"createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", f"exec sleep {tag}"]}]}
    bundle = h.bundle(["true"], hooks=hooks)
    proc = subprocess.Popen([h.binary, "--root", h.root, "create", "-b", bundle, h.cid()],
                            env={**os.environ, **h.base_env, "MRUN_WARM": "0"}, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while not processes_mentioning(tag):
        assert time.monotonic() < deadline and proc.poll() is None, "the hook never ran"
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=20) == 130
    deadline = time.monotonic() + 5
    while processes_mentioning(tag):
        assert time.monotonic() < deadline, f"the hook runs on: {processes_mentioning(tag)}"
        time.sleep(0.05)


def test_console_socket_receives_a_working_pty(h):
    sock_path = os.path.join(h.tmp, "console.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(sock_path)
    listener.listen(1)
    cfg = h.config(["sh", "-c", "tty; echo on-the-pty"])
    cfg["process"]["terminal"] = True
    cid = h.cid()
    h.ok("create", "-b", h.bundle(config=cfg), "--console-socket", sock_path, cid)
    conn, _ = listener.accept()
    from mrun.sandbox.console import receive_fd

    master = receive_fd(conn)
    h.ok("start", cid)
    out = b""
    deadline = time.monotonic() + 5
    while b"on-the-pty" not in out and time.monotonic() < deadline:
        try:
            chunk = os.read(master, 1024)
        except OSError:
            break
        out += chunk
    assert b"/dev/pts/0" in out and b"on-the-pty" in out
    os.close(master)
    h.wait_status(cid, "stopped")
    h.ok("delete", cid)


def test_log_json_records_errors_for_containerd(h):
    log = os.path.join(h.tmp, "log.json")
    r = h.mrun("--log", log, "--log-format", "json", "start", "no-such-container")
    assert r.returncode != 0
    record = json.loads(open(log).read().splitlines()[-1])
    assert record["level"] == "error" and "does not exist" in record["msg"]


def test_features_and_spec(h):
    features = json.loads(h.ok("features").stdout)
    assert "linux" in features["annotations"]["org.mrun.backends"].split(",")
    assert set(features["linux"]["namespaces"]) >= {"pid", "network", "mount", "uts", "ipc", "user", "cgroup"}
    seccomp = features["linux"]["seccomp"]  # the flags it passes to seccomp(2) (test_sandbox uses two)
    assert seccomp["supportedFlags"] == ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG",
                                         "SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]
    assert set(seccomp["supportedFlags"]) <= set(seccomp["knownFlags"])
    assert "SCMP_ACT_NOTIFY" in seccomp["actions"]  # with a listener (test_runc_compat's agent)
    policy = features["linux"]["memoryPolicy"]  # runtime-spec 1.3's (test_runc_compat sets them)
    assert "MPOL_BIND" in policy["modes"] and "MPOL_F_STATIC_NODES" in policy["flags"]
    bundle = os.path.join(h.tmp, "specbundle")
    os.makedirs(bundle)
    h.ok("spec", "--bundle", bundle)
    assert json.load(open(os.path.join(bundle, "config.json")))["process"]["args"] == ["sh"]
    assert h.mrun("spec", "--bundle", bundle).returncode != 0  # refuses to overwrite
    dangling = os.path.join(h.tmp, "linkbundle")  # nor does it follow a dangling link to make its target
    os.makedirs(dangling)
    os.symlink(os.path.join(h.tmp, "made-through-the-link"), os.path.join(dangling, "config.json"))
    assert "exists already" in h.mrun("spec", "--bundle", dangling).stderr
    assert not os.path.exists(os.path.join(h.tmp, "made-through-the-link"))


def test_foreground_run_with_a_terminal_like_runc(h):
    """`mrun spec` makes terminal:true; `run` in the foreground then allocates the pty itself."""
    cfg = h.config(["sh", "-c", "tty; echo on-a-pty; exit 4"])
    cfg["process"]["terminal"] = True
    r = h.mrun("run", "-b", h.bundle(config=cfg), h.cid())
    assert r.returncode == 4, r.stderr
    assert r.stdout.replace("\r", "").splitlines() == ["/dev/pts/0", "on-a-pty"]
    r = h.mrun("run", "-d", "-b", h.bundle(config=cfg), h.cid())
    assert r.returncode != 0 and "--console-socket" in r.stderr


def test_foreground_terminal_forwards_input(h):
    cfg = h.config(["sh"])
    cfg["process"]["terminal"] = True
    proc = subprocess.Popen(
        [h.binary, "--root", h.root, "run", "-b", h.bundle(config=cfg), h.cid()],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    out, _ = proc.communicate("echo typed $((6*7))\nexit 6\n", timeout=30)
    assert proc.returncode == 6
    assert "typed 42" in out.replace("\r", "")


def test_a_terminal_run_in_a_shell_s_background_waits_for_fg(h):
    """runc's `run -b` with a terminal, as a shell's background job: the kernel stops it when it
    makes the terminal raw (SIGTTOU) until `fg`. Then the mode change failed with "Interrupted
    system call" (the SIGCONT that `fg` sends had a handler of ours: the change is not restarted)
    and the run ended with an internal error; it is now tried again."""
    from test_warm import as_a_background_job

    cfg = h.config(["sh", "-c", "read line; echo got=$line; exit 3"])
    cfg["process"]["terminal"] = True
    shown = as_a_background_job([h.binary, "--root", h.root, "run", "-b", h.bundle(config=cfg), h.cid()])
    assert "stopped cooked\nbg: stopped\n" in shown and "got=typed" in shown, shown


def test_no_pivot_runs_with_chroot(h):
    r = h.ok("run", "--no-pivot", "-b", h.bundle(["sh", "-c", "echo pid $$; ls /"]), h.cid())
    assert r.stdout.startswith("pid 1\n") and "bin" in r.stdout.split()


def test_state_is_honest_when_the_init_dies_behind_our_back(h):
    cid = h.cid()
    h.ok("run", "-d", "-b", h.bundle(["sleep", "60"]), cid)
    pid = json.loads(h.ok("state", cid).stdout)["pid"]
    os.kill(pid, 9)  # not through mrun: as if the machine's OOM killer or an operator did it
    h.wait_status(cid, "stopped")
    assert json.loads(h.ok("state", cid).stdout)["pid"] == 0
    h.ok("delete", cid)


def test_delete_force_cleans_a_create_that_crashed(h):
    cid = h.cid()
    os.makedirs(os.path.join(h.root, cid))  # a create killed before it wrote any state
    assert h.mrun("state", cid).returncode != 0
    h.ok("delete", "--force", cid)
    assert not os.path.exists(os.path.join(h.root, cid))


def test_concurrent_commands_on_one_id(h):
    bundle = h.bundle(["sleep", "60"])
    cid = h.cid()
    errs = [tempfile.TemporaryFile("w+") for _ in range(6)]  # files, not pipes: the init inherits them
    creates = [
        subprocess.Popen(
            [h.binary, "--root", h.root, "create", "-b", bundle, cid],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
        for err in errs
    ]
    codes = [p.wait(timeout=60) for p in creates]
    messages = []
    for err in errs:
        err.seek(0)
        messages.append(err.read())
        err.close()
    assert codes.count(0) == 1, list(zip(codes, messages, strict=True))
    assert all("already exists" in m for c, m in zip(codes, messages, strict=True) if c)
    errs = [tempfile.TemporaryFile("w+") for _ in range(6)]
    deletes = [
        subprocess.Popen(
            [h.binary, "--root", h.root, "delete", "--force", cid],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
        for err in errs
    ]
    codes = [p.wait(timeout=60) for p in deletes]
    said = []
    for err in errs:
        err.seek(0)
        said.append(err.read())
        err.close()
    assert codes == [0] * 6, list(zip(codes, said, strict=True))  # once seen failing under load: say why
    assert h.status(cid) == "gone"


def test_delete_force_during_create_waits_for_it(h):
    """create holds the container's lock while it builds: a delete --force issued meanwhile
    waits, then removes a whole container rather than half of one."""
    hooks = {"prestart": [{"path": "/bin/sleep", "args": ["sleep", "1"]}]}
    cid = h.cid()
    with tempfile.TemporaryFile("w+") as err:
        create = subprocess.Popen(
            [h.binary, "--root", h.root, "create", "-b", h.bundle(["sleep", "60"], hooks=hooks), cid],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
        deadline = time.monotonic() + 10
        while not os.path.exists(os.path.join(h.root, cid, "state.json")):  # the create is under way
            assert time.monotonic() < deadline
            time.sleep(0.01)
        h.ok("delete", "--force", cid)
        assert create.wait(timeout=30) == 0
        err.seek(0)
        assert err.read() == ""
    assert h.status(cid) == "gone"

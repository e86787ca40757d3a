"""containerd's stock runc shim drives mrun as its runtime binary (`ctr run --runc-binary`).

A private containerd (its own root, state, socket and namespace) is started for this module;
the busybox image is built offline with umoci and skopeo. Nothing touches /run/containerd's
state (the stock shim's own socket directory /run/containerd/s is hard-coded in 1.6).
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
import uuid

import pytest
import wasmtime
from conftest import IMAGE, cgroup_dirs, mrun_binary, processes_mentioning, require, warm_path, warm_served, warm_since
from mrun.cgroups import detect

WASM_IMAGE = "localhost/hello-wasm:latest"
# A load past the end of its one page: wasmtime catches the guard page's SIGSEGV and traps.
OUT_OF_BOUNDS = '(module (memory 1) (func (export "_start") (drop (i32.load (i32.const 1000000)))))'


def build_wasm_archive(work) -> str:
    """An OCI image whose rootfs holds examples/wasm/hello.wasm (its entrypoint), pod.wasm,
    oob.wasm (a load out of its memory's bounds) and costly.wasm (~100 MiB to compile)."""
    from busybox_bundle import make_oci_archive
    from test_wasm import costly_module

    rootfs = os.path.join(work, "wasm-rootfs")
    os.makedirs(rootfs)
    examples = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples", "wasm")
    for module in ("hello.wasm", "pod.wasm"):
        shutil.copy(os.path.join(examples, module), os.path.join(rootfs, module))
    with open(os.path.join(rootfs, "oob.wasm"), "wb") as f:
        f.write(wasmtime.wat2wasm(OUT_OF_BOUNDS))
    with open(os.path.join(rootfs, "costly.wasm"), "wb") as f:
        f.write(costly_module())
    return make_oci_archive(rootfs, str(work), WASM_IMAGE, ["/hello.wasm", "3"])


class Containerd:
    """A private containerd: its own root, state, sockets, shim socket directory and namespace.

    ``bin_dir`` None is Debian's containerd 1.6 (config version 2); otherwise the ``bin/`` of a
    containerd 2.x (config version 3, whose shims get their socket directory from this config).
    ``cri`` adds the CRI plugin with the given TOML (CNI, runtimes); without it CRI is disabled."""

    def __init__(
        self, archive: str, bin_dir: str | None = None, cri: str | None = None, env: dict[str, str] | None = None,
        wrap: list[str] | None = None,
    ) -> None:
        self.bin_dir = bin_dir
        self.wrap = wrap or []  # a command containerd runs under (test_cgroup2_view: a cgroup2 view)
        self.env = env or {}  # for containerd and so for its shims, e.g. MRUN_WARM=0
        if bin_dir is None:
            require("containerd", "containerd")
            self.ctr_bin = require("ctr", "containerd")
        else:
            self.ctr_bin = os.path.join(bin_dir, "ctr")
        # A short path: the socket must fit in sun_path (108 bytes).
        self.dir = tempfile.mkdtemp(prefix="mrun-ctd-", dir="/tmp")
        self.sock = os.path.join(self.dir, "containerd.sock")
        self.ns = f"mrun-test-{uuid.uuid4().hex[:8]}"
        self.runc_root = os.path.join(self.dir, "runc-root")
        self.fifo_dir = os.path.join(self.dir, "fifo")
        self.socket_dir = os.path.join(self.dir, "s")
        # containerd puts <opt>/bin first on the shims' PATH: that is where our shim is found.
        shim = os.path.join(os.path.dirname(mrun_binary()), "containerd-shim-mrun-v2")
        os.makedirs(os.path.join(self.dir, "opt", "bin"))
        if os.path.exists(shim):
            os.symlink(shim, os.path.join(self.dir, "opt", "bin", "containerd-shim-mrun-v2"))
        with open(os.path.join(self.dir, "config.toml"), "w") as f:
            f.write(self._config(cri))
        self.log = open(os.path.join(self.dir, "containerd.log"), "w")
        self._start()
        self.ctr("image", "import", archive)

    def _config(self, cri: str | None) -> str:
        if self.bin_dir is None:
            return f"""version = 2
root = "{self.dir}/root"
state = "{self.dir}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "{self.sock}"
[plugins."io.containerd.internal.v1.opt"]
  path = "{self.dir}/opt"
"""
        disabled = "" if cri else (
            "disabled_plugins = ['io.containerd.grpc.v1.cri', 'io.containerd.cri.v1.runtime', "
            "'io.containerd.cri.v1.images']\n"
        )
        return f"""version = 3
root = '{self.dir}/root'
state = '{self.dir}/state'
{disabled}[grpc]
  address = '{self.sock}'
[plugins.'io.containerd.internal.v1.opt']
  path = '{self.dir}/opt'
[plugins.'io.containerd.shim.v1.manager']
  socket_dir = '{self.socket_dir}'
[plugins.'io.containerd.nri.v1.nri']
  socket_path = '{self.dir}/nri.sock'  # not the node's /run/nri/nri.sock, which a stopped containerd leaves
{cri or ''}"""

    def _start(self) -> None:
        binary = os.path.join(self.bin_dir, "containerd") if self.bin_dir else "containerd"
        path = f"{self.bin_dir}:{os.environ['PATH']}" if self.bin_dir else os.environ["PATH"]
        self.proc = subprocess.Popen(
            [*self.wrap, binary, "--config", os.path.join(self.dir, "config.toml")],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            # containerd hands its environment to the shims: their state and compiled modules go
            # under our directory (the host's /var/cache/mrun is not the tests')
            env={**os.environ, "MRUN_CACHE_DIR": os.path.join(self.dir, "cache"), **self.env, "PATH": path,
                 "MRUN_SHIM_ROOT": os.path.join(self.dir, "shim-state")},
        )
        deadline = time.monotonic() + 30
        while subprocess.run([self.ctr_bin, "--address", self.sock, "version"], capture_output=True).returncode:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"containerd did not start: {open(self.log.name).read()[-2000:]}")
            time.sleep(0.1)

    def restart(self) -> None:
        """containerd goes away and comes back; its shims and their tasks stay."""
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=20)
        self._start()

    def ctr(self, *args: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess[str]:
        if args[:2] in (("task", "exec"), ("task", "start")) and "--fifo-dir" not in args:
            args = (*args[:2], "--fifo-dir", self.fifo_dir, *args[2:])  # ctr's default: /run/containerd/fifo
        r = subprocess.run(
            [self.ctr_bin, "--address", self.sock, "--namespace", self.ns, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        if check:
            assert r.returncode == 0, f"ctr {' '.join(args)}: {r.stderr}"
        return r

    def run_args(self, cid: str) -> list[str]:
        return [
            "run",
            "--fifo-dir",
            self.fifo_dir,
            "--runc-binary",
            mrun_binary(),
            "--runc-root",
            self.runc_root,
            "--cgroup",
            f"/{self.ns}/{cid}",
        ]

    def stop(self) -> None:
        for cid in self.ctr("task", "ls", "-q", check=False).stdout.split():
            self.ctr("task", "kill", "-s", "KILL", cid, check=False)
            time.sleep(0.2)
            self.ctr("task", "rm", "-f", cid, check=False)
        for cid in self.ctr("container", "ls", "-q", check=False).stdout.split():
            self.ctr("container", "rm", cid, check=False)
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        subprocess.run(["umount", "-R", os.path.join(self.dir, "root")], capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module", params=["1.6", "2.3", "1.6-cold", "2.3-cold"])
def ctd(request, busybox_archive, tmp_path_factory):
    """Every test here runs on Debian's containerd 1.6 and on containerd 2.3 (shim protocol 3), each
    with the shim's start served by the warm template (checked) and cold (MRUN_WARM=0)."""
    if os.geteuid() != 0:
        pytest.fail("containerd tests need root")
    version, _, cold = request.param.partition("-")
    bin_dir = request.getfixturevalue("containerd2") if version == "2.3" else None
    before = warm_served()
    c = Containerd(busybox_archive, bin_dir, env={"MRUN_WARM": "0"} if cold else None)
    c.warm = not cold
    c.ctr("image", "import", build_wasm_archive(tmp_path_factory.mktemp("wasm-image")))
    yield c
    c.stop()
    if not cold:
        assert warm_since(before), "no shim of the warm variant was started by the warm template"
    left = cgroup_dirs(f"/{c.ns}")
    for d in left:
        os.rmdir(d)
    assert not left, f"cgroups left behind: {left}"
    assert not processes_mentioning(c.runc_root), "mrun processes left behind"
    deadline = time.monotonic() + 10  # a shim may still be handing its last events to containerd (3 s)
    while processes_mentioning(c.sock) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = {p: open(f"/proc/{p}/cmdline").read().replace("\0", " ") for p in processes_mentioning(c.sock)}
    for pid in left:
        os.kill(pid, 9)  # our own shims, found by our own containerd's private socket
    assert not left, f"shims outlived their tasks and containerd: {left}"


def pause_resume_metrics_kill_remove(ctd, cid: str, while_paused=lambda: None) -> None:
    """What both shims must do with a running task: pause/resume, metrics, kill, remove, no cgroup left."""
    ctd.ctr("task", "pause", cid)
    assert "PAUSED" in ctd.ctr("task", "ls").stdout
    while_paused()
    ctd.ctr("task", "resume", cid)
    assert "RUNNING" in ctd.ctr("task", "ls").stdout
    metrics = dict(
        line.split(None, 1) for line in ctd.ctr("task", "metrics", cid).stdout.splitlines() if len(line.split()) == 2
    )
    memory = "memory.usage_in_bytes" if detect() == 1 else "memory.usage"
    assert int(metrics["pids.current"]) == 1 and int(metrics[memory]) > 0, metrics
    ctd.ctr("task", "kill", "-s", "KILL", cid)
    deadline = time.monotonic() + 10
    while "STOPPED" not in ctd.ctr("task", "ls").stdout:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    ctd.ctr("task", "rm", cid)
    ctd.ctr("container", "rm", cid)
    assert not cgroup_dirs(f"/{ctd.ns}/{cid}")


def test_ctr_run_rm_echo(ctd):
    r = ctd.ctr(*ctd.run_args("echo1"), "--rm", IMAGE, "echo1", "/bin/echo", "hello")
    assert r.stdout == "hello\n"
    root = os.path.join(ctd.runc_root, ctd.ns)
    assert not os.path.isdir(root) or not os.listdir(root), "mrun state left after ctr run --rm"


def test_ctr_run_exit_code(ctd):
    r = ctd.ctr(*ctd.run_args("exit3"), "--rm", IMAGE, "exit3", "sh", "-c", "exit 3", check=False)
    assert r.returncode == 3, r.stderr


def test_ctr_task_exec_ps_pause_resume_kill(ctd):
    cid = "long1"
    ctd.ctr(*ctd.run_args(cid), "-d", IMAGE, cid, "sleep", "600")
    r = ctd.ctr(
        "task", "exec", "--exec-id", "e1", cid, "sh", "-c", "echo exec-ok $(cat /proc/1/cmdline | tr '\\0' ' ')"
    )
    assert r.stdout.strip() == "exec-ok sleep 600"
    ps = ctd.ctr("task", "ps", cid).stdout
    assert len(ps.strip().splitlines()) >= 2  # header + the init

    def paused_for_mrun_too() -> None:
        state = json.loads(
            subprocess.run(
                [mrun_binary(), "--root", os.path.join(ctd.runc_root, ctd.ns), "state", cid],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        assert state["status"] == "paused"

    pause_resume_metrics_kill_remove(ctd, cid, paused_for_mrun_too)


def test_ctr_create_failure_is_explained(ctd):
    r = ctd.ctr(*ctd.run_args("bad1"), "--rm", IMAGE, "bad1", "/bin/no-such-thing", check=False)
    assert r.returncode != 0
    assert "/bin/no-such-thing: no such file or directory" in r.stderr  # runc's words for a missing path
    ctd.ctr("container", "rm", "bad1", check=False)


def test_events_forwarded_over_ttrpc_reach_containerd(ctd):
    """The shim's wire layer against containerd itself: our ttrpc framing and our protobuf
    messages, accepted by containerd's events service and shown by `ctr events`."""
    from mrun.shims.events import Publisher, now
    from mrun.shims.proto import events_pb2

    watcher = subprocess.Popen([ctd.ctr_bin, "--address", ctd.sock, "events"], stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(0.5)  # let ctr subscribe
        publisher = Publisher(f"unix://{ctd.sock}.ttrpc", ctd.ns)
        publisher.publish(
            events_pb2.TaskExit(container_id="mrun-probe", id="mrun-probe", pid=4242, exit_status=3, exited_at=now())
        )
        publisher.close()
        deadline = time.monotonic() + 10
        line = ""
        while "mrun-probe" not in line:
            assert time.monotonic() < deadline, "containerd did not show the forwarded event"
            line = watcher.stdout.readline()
        assert ctd.ns in line and "/tasks/exit" in line and "4242" in line
    finally:
        watcher.kill()
        watcher.wait()
        watcher.stdout.close()


def shim_run_args(ctd, cid: str) -> list[str]:
    return ["run", "--fifo-dir", ctd.fifo_dir, "--runtime", "io.containerd.mrun.v2", "--cgroup", f"/{ctd.ns}/{cid}"]


def test_an_init_s_exit_ends_what_it_left_in_a_shared_pid_namespace(ctd):
    """Once a container's init has exited where its PID namespace is not its own (a pod's
    shared one: the kernel ends a namespace's processes with its PID 1 only), containerd's runc
    shim kills what is left in the container's cgroup, then reports the exit. mrun's shim left
    them running: under CRI a child still holding the container's output kept `crictl stop` and
    StopPodSandbox waiting until their deadline."""
    holder, cid = "pidns-holder", "pidns-shared"
    ctd.ctr(*shim_run_args(ctd, holder), "-d", IMAGE, holder, "sleep", "600")
    try:
        ctd.ctr(*shim_run_args(ctd, cid), "-d", "--with-ns", f"pid:/proc/{task_pid(ctd, holder)}/ns/pid", IMAGE,
                cid, "sh", "-c", "sleep 600 & exec sleep 601")
        listed = lambda: ctd.ctr("task", "ps", cid).stdout.split()[2::2]  # noqa: E731 - "PID INFO", then pid, "-"
        deadline = time.monotonic() + 10
        while len(listed()) < 2:
            assert time.monotonic() < deadline, listed()
            time.sleep(0.05)
        ctd.ctr("task", "kill", "-s", "KILL", cid)  # its init alone
        while cid not in stopped_tasks(ctd):
            assert time.monotonic() < deadline, ctd.ctr("task", "ls").stdout
            time.sleep(0.05)
        while listed():
            assert time.monotonic() < deadline, f"the init's exit left {listed()} running"
            time.sleep(0.05)
        assert holder not in stopped_tasks(ctd)  # the namespace's own PID 1 is another container's
    finally:
        for each in (cid, holder):
            ctd.ctr("task", "rm", "-f", each, check=False)
            ctd.ctr("c", "rm", each, check=False)


def test_shim_ctr_run_rm_echo_and_exit_code(ctd):
    r = ctd.ctr(*shim_run_args(ctd, "shim1"), "--rm", IMAGE, "shim1", "/bin/echo", "hello")
    assert r.stdout == "hello\n", r.stderr
    r = ctd.ctr(*shim_run_args(ctd, "shim2"), "--rm", IMAGE, "shim2", "sh", "-c", "exit 3", check=False)
    assert r.returncode == 3, r.stderr
    assert not cgroup_dirs(f"/{ctd.ns}/shim1") and not cgroup_dirs(f"/{ctd.ns}/shim2")


def test_a_shim_runs_one_oom_score_above_containerd_and_its_containers_inherit_it(ctd):
    """containerd's shims set their OOM score one above containerd's (its AdjustOOMScore): out
    of memory, the kernel takes a container, then its shim, before containerd; and a container
    whose spec sets no oomScoreAdj has its shim's. mrun's shim kept containerd's own: its
    containers were as precious to the OOM killer as containerd. Linux and wasm alike."""
    def score(pid: int) -> int:
        with open(f"/proc/{pid}/oom_score_adj") as f:
            return int(f.read())

    runc = ["run", "--fifo-dir", ctd.fifo_dir, "--runc-root", os.path.join(ctd.dir, "real-runc"), "--cgroup"]
    # runc makes the parent of its cgroup and leaves it: one of the test's own, removed below
    cases = {"oomrunc": ([*runc, f"/{ctd.ns}-runc/oomrunc"], IMAGE, ["sleep", "600"]),
             "oomlinux": (shim_run_args(ctd, "oomlinux"), IMAGE, ["sleep", "600"]),
             "oomwasm": (shim_run_args(ctd, "oomwasm"), WASM_IMAGE, ["/pod.wasm", "/never", "/x"])}
    got = {}
    try:
        for cid, (args, image, command) in cases.items():
            ctd.ctr(*args, "-d", image, cid, *command)
            pid = task_pid(ctd, cid)
            got[cid] = (score(parent_pid(pid)), score(pid))
    finally:
        for cid in cases:
            ctd.ctr("task", "rm", "-f", cid, check=False)
            ctd.ctr("c", "rm", cid, check=False)
        for d in cgroup_dirs(f"/{ctd.ns}-runc"):
            os.rmdir(d)
    above = score(ctd.proc.pid) + 1
    assert got == {cid: (above, above) for cid in cases}, (above, got)


def test_a_client_gone_from_the_output_fifos_leaves_the_writers_waiting_not_killed(ctd):
    """containerd's runc shim holds a read end of each output fifo: when the client reading them
    goes (ctr killed; containerd restarting, under CRI the reader of every container's log), the
    container's writes fill the fifo and wait for a reader to come back. mrun's containers wrote
    straight into fifos nobody else held: their writes failed (EPIPE) and a program that does not
    catch SIGPIPE died of it. An init's output and an exec'd process's, stdout and stderr."""
    def attached(*args: str) -> subprocess.Popen:
        return subprocess.Popen([ctd.ctr_bin, "--address", ctd.sock, "--namespace", ctd.ns, *args],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def gone(client: subprocess.Popen) -> None:
        time.sleep(0.3)  # writing
        client.kill()
        client.wait()
        time.sleep(1)  # a writer killed by SIGPIPE is gone by then

    for stream in ("1", "2"):
        cid = f"gone{stream}"
        client = attached(*shim_run_args(ctd, cid), IMAGE, cid, "sh", "-c", f"yes >&{stream}; echo $? > /tmp/rc; "
                          "sleep 600")
        try:
            deadline = time.monotonic() + 10
            while cid not in ctd.ctr("task", "ls").stdout:
                assert time.monotonic() < deadline
                time.sleep(0.05)
            root = f"/proc/{task_pid(ctd, cid)}/root/tmp"
            gone(client)
            assert not os.path.exists(f"{root}/rc"), f"the init's writer ended: {open(f'{root}/rc').read()}"
            gone(attached("task", "exec", "--fifo-dir", ctd.fifo_dir, "--exec-id", "e1", cid, "sh", "-c",
                          f"yes >&{stream}; echo $? > /tmp/erc"))  # fifos in ours: ctr killed leaves them
            assert not os.path.exists(f"{root}/erc"), f"an exec's writer ended: {open(f'{root}/erc').read()}"
        finally:
            client.kill()
            ctd.ctr("task", "kill", "-s", "KILL", cid, check=False)
            ctd.ctr("task", "rm", "-f", cid, check=False)
            ctd.ctr("c", "rm", cid, check=False)


LOGGER = """#!/bin/sh
# a containerd logging binary: fd 3 the process's stdout, fd 4 its stderr, fd 5 closed once ready
out={out}/$CONTAINER_ID
env > $out.env
echo "$@" > $out.args
exec 5>&-
cat <&3 > $out.out &
cat <&4 > $out.err &
wait
echo eof > $out.end
"""


def test_log_uris_binary_and_file_as_the_runc_shim_takes_them(ctd, tmp_path):
    """`ctr run --log-uri`, and nerdctl for every container it runs, name a logging binary
    (binary:///path?key=value) or a file (file:///path) as the task's stdout and stderr. The runc
    shim starts the binary with the output on pipes on its fds 3 and 4, its arguments from the
    query, CONTAINER_ID and CONTAINER_NAMESPACE its whole environment; a file's directory is made.
    mrun's shim took both for fifo paths, and the task failed to start."""
    logger = tmp_path / "logger.sh"
    logger.write_text(LOGGER.format(out=tmp_path))
    logger.chmod(0o755)
    script = "echo to-out; echo to-err >&2; exit 3"
    for cid in ("binlog", "binlog-again"):  # (the second: a logger per task, none left by the first)
        r = ctd.ctr(*shim_run_args(ctd, cid), "--rm", "--log-uri", f"binary://{logger}?--tag=web&-v", IMAGE, cid,
                    "sh", "-c", script, check=False)
        assert r.returncode == 3, r.stderr
        deadline = time.monotonic() + 15
        while not (tmp_path / f"{cid}.out").exists() or "to-out" not in (tmp_path / f"{cid}.out").read_text():
            assert time.monotonic() < deadline, f"{cid}: the logger got no output"
            time.sleep(0.05)
        assert (tmp_path / f"{cid}.err").read_text() == "to-err\n"
        assert (tmp_path / f"{cid}.args").read_text() == "--tag web -v \n"  # each key, then its first value
        # (runc's shim hands them out in Go's map order, which is random: mrun's in the URI's)
        env = dict(line.split("=", 1) for line in (tmp_path / f"{cid}.env").read_text().splitlines() if "=" in line)
        assert (env["CONTAINER_ID"], env["CONTAINER_NAMESPACE"]) == (cid, ctd.ns)
        assert not set(env) - {"CONTAINER_ID", "CONTAINER_NAMESPACE", "PWD"}, env  # nothing of containerd's
    deadline = time.monotonic() + 10  # its SIGTERM (at the task's delete) is on its way as ctr returns
    while processes_mentioning(str(logger)):
        assert time.monotonic() < deadline, "a logging binary outlived its task"
        time.sleep(0.05)
    log = tmp_path / "made" / "here" / "log"
    r = ctd.ctr(*shim_run_args(ctd, "filelog"), "--rm", "--log-uri", f"file://{log}", IMAGE, "filelog", "sh", "-c",
                "echo f-out; echo f-err >&2", check=False)
    assert r.returncode == 0, r.stderr
    assert sorted(log.read_text().split()) == ["f-err", "f-out"]
    assert oct(log.stat().st_mode & 0o777) == oct(0o644 & ~os.umask(os.umask(0)))


def test_a_user_other_than_root_can_open_its_fifos_again(ctd):
    """A process whose user is not root opens its standard streams again by name (`echo >
    /dev/stdout`), as under containerd's runc shim, whose pipes runc makes the user's. Through
    mrun's shim the streams are containerd's fifos (root's, 0700): refused (EACCES) until the
    runtime gave them to the process's user, as runc gives whatever streams it is handed."""
    cid = "stdio-user"
    ctd.ctr(*shim_run_args(ctd, cid), "-d", IMAGE, cid, "sleep", "600")
    try:
        r = ctd.ctr("task", "exec", "--exec-id", "user", "--user", "1000", cid, "sh", "-c",
                    "echo out > /dev/stdout && echo err > /dev/stderr")
        assert (r.stdout, r.stderr.splitlines()[-1]) == ("out\n", "err"), r
    finally:
        ctd.ctr("task", "rm", "-f", cid, check=False)
        ctd.ctr("c", "rm", cid, check=False)


def test_shim_runs_an_image_of_90_layers_as_the_runc_shim_does(ctd, busybox_rootfs, tmp_path):
    """containerd's overlay snapshotter names each layer by its path (~70 characters here): from
    about 55 layers the options passed one page and the shim's mount failed ("No such file or
    directory"), where containerd's runc shim shortens them. docker builds up to 125 layers."""
    from test_images import _docker_archive

    base = [("bin", None), ("bin/busybox", open(os.path.join(busybox_rootfs, "bin", "busybox"), "rb").read()),
            ("bin/cat", "->busybox"), ("which", b"0\n")]
    more = [[("which", f"{i}\n".encode())] for i in range(1, 90)]
    archive = _docker_archive(tmp_path, base, *more, config_extra={"config": {"Cmd": ["cat", "/which"]}},
                              tag="localhost/tall:1")
    ctd.ctr("image", "import", archive)
    for args in (shim_run_args(ctd, "tall1"), [*ctd.run_args("tall2")]):
        cid = args[-1].rsplit("/", 1)[-1]
        r = ctd.ctr(*args, "--rm", "localhost/tall:1", cid, check=False)
        assert (r.returncode, r.stdout) == (0, "89\n"), r.stderr


def test_shim_hands_a_container_to_runc_by_annotation(ctd):
    """The oci backend through the shim: one mrun shim, the container under runc."""
    args = [*shim_run_args(ctd, "underrunc"), "--rm", "--annotation", "org.mrun.oci.runtime=runc"]
    r = ctd.ctr(*args, IMAGE, "underrunc", "sh", "-c", "echo under runc; exit 4", check=False)
    assert (r.returncode, r.stdout) == (4, "under runc\n"), r.stderr
    assert not cgroup_dirs(f"/{ctd.ns}/underrunc")
    remove_runcs_parents(ctd)


def remove_runcs_parents(ctd) -> None:
    """runc leaves the parent cgroups it made (ours go when empty): the test's own, removed here."""
    for parent in cgroup_dirs(f"/{ctd.ns}"):
        try:
            os.rmdir(parent)
        except OSError:
            pass  # another test's container still uses it


def test_shim_runs_a_wasm_image(ctd):
    r = ctd.ctr(*shim_run_args(ctd, "wasm1"), "--rm", WASM_IMAGE, "wasm1", check=False)
    assert r.returncode == 3, r.stderr
    assert "hello from wasm32-wasi: [/hello.wasm] [3]" in r.stdout


def test_shim_a_faulting_wasm_module_is_a_trap_not_a_crash(ctd):
    """wasmtime turns a wasm guard-page fault into a trap with its own SIGSEGV handler, installed
    once per process: a shim forked from the warm template must still have it (it once reset every
    signal, and the module died of SIGSEGV, 139, where a cold shim reported the trap, 134)."""
    r = ctd.ctr(*shim_run_args(ctd, "wasmoob"), "--rm", WASM_IMAGE, "wasmoob", "/oob.wasm", check=False)
    assert r.returncode == 134, (r.returncode, r.stderr)
    assert "out of bounds memory access" in r.stderr


def test_shim_compiles_a_module_under_its_task_s_memory_limit(ctd):
    """The shim's create worker compiled a task's module in its own cgroup (the shim's), whatever
    the task's limits: it compiles in a child in the task's cgroup now, so a module whose compile
    needs ~100 MiB fails the task's create under a 48 MiB limit, in a line naming the field, and
    runs under 512 MiB."""
    r = ctd.ctr(*shim_run_args(ctd, "costly1"), "--rm", "--memory-limit", str(48 << 20), WASM_IMAGE, "costly1",
                "/costly.wasm", check=False)
    assert r.returncode != 0 and "linux.resources.memory.limit" in r.stderr, (r.returncode, r.stderr)
    ctd.ctr("containers", "rm", "costly1", check=False)
    r = ctd.ctr(*shim_run_args(ctd, "costly2"), "--rm", "--memory-limit", str(512 << 20), WASM_IMAGE, "costly2",
                "/costly.wasm", check=False)
    assert r.returncode == 0, (r.returncode, r.stderr)


def test_shim_told_to_shut_down_is_not_mistaken_for_a_pods_live_shim(ctd):
    """A shim stops answering at its socket the moment it is told to shut down: it used to keep
    serving while its last events went out, so containerd's `delete`, run after every task, found
    it alive and logged "served by a live shim (a pod's other tasks)" for a pod that is none."""
    ctd.log.flush()
    seen = os.path.getsize(ctd.log.name)
    ctd.ctr(*shim_run_args(ctd, "quiet"), "--rm", IMAGE, "quiet", "true")
    with open(ctd.log.name) as f:
        f.seek(seen)
        assert "live shim" not in f.read()


def test_shim_task_ps_kill_and_exit_event(ctd):
    cid = "shimlong"
    watcher = subprocess.Popen([ctd.ctr_bin, "--address", ctd.sock, "events"], stdout=subprocess.PIPE, text=True)
    try:
        ctd.ctr(*shim_run_args(ctd, cid), "-d", IMAGE, cid, "sleep", "600")
        ps = ctd.ctr("task", "ps", cid).stdout.strip().splitlines()
        assert len(ps) == 2 and ps[1].split()[0].isdigit()  # header + the init
        pid = task_pid(ctd, cid)
        assert waiting_workers(parent_pid(pid), {pid}, 0) == [], "a shim of one container keeps a spare worker"
        ctd.ctr("task", "kill", "-s", "KILL", cid)
        deadline = time.monotonic() + 10
        while "STOPPED" not in ctd.ctr("task", "ls").stdout:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        line = ""
        while not ("/tasks/exit" in line and cid in line):
            assert time.monotonic() < deadline + 10, "no /tasks/exit event"
            line = watcher.stdout.readline()
        ctd.ctr("task", "rm", cid)
        ctd.ctr("container", "rm", cid)
    finally:
        watcher.kill()
        watcher.wait()
        watcher.stdout.close()
    assert not cgroup_dirs(f"/{ctd.ns}/{cid}")


def _daemon_of(ctd, cid: str) -> int:
    """The shim daemon serving ``cid``: the process that bears `start`'s command line (exec'd, it
    is `start`'s fork; warm, the template's child's) and leads a session of its own in our PID
    namespace. Not the topmost such process: cold, `start` itself bears it too until it has
    answered and exited; nor a container's init that came from the pristine copy, which bears
    it too and leads a session in a PID namespace of its own."""

    def argv(pid: int) -> list[str]:
        with open(f"/proc/{pid}/cmdline") as f:
            return f.read().split("\0")

    def session(pid: int) -> int:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[3])

    ours = os.readlink("/proc/self/ns/pid")
    shims = [p for p in processes_mentioning("containerd-shim-mrun-v2") if cid in argv(p) and "start" in argv(p)]
    return next(p for p in shims if session(p) == p and os.readlink(f"/proc/{p}/ns/pid") == ours)


def test_shim_killed_mid_run_is_cleaned_up_by_containerd(ctd):
    cid = "shimkill"
    ctd.ctr(*shim_run_args(ctd, cid), "-d", IMAGE, cid, "sleep", "600")
    bundle = os.path.join(ctd.dir, "state", "io.containerd.runtime.v2.task", ctd.ns, cid)
    socket_path = open(os.path.join(bundle, "address")).read().removeprefix("unix://")
    os.kill(_daemon_of(ctd, cid), signal.SIGKILL)
    deadline = time.monotonic() + 20
    while ctd.ctr("task", "ls", "-q").stdout.strip():  # containerd notices and runs `delete`
        ctd.ctr("task", "rm", "-f", cid, check=False)
        assert time.monotonic() < deadline, "containerd kept the task of a dead shim"
        time.sleep(0.2)
    ctd.ctr("container", "rm", cid, check=False)
    deadline = time.monotonic() + 10
    while processes_mentioning(cid) or cgroup_dirs(f"/{ctd.ns}/{cid}"):
        assert time.monotonic() < deadline, (processes_mentioning(cid), cgroup_dirs(f"/{ctd.ns}/{cid}"))
        time.sleep(0.1)
    with open("/proc/self/mountinfo") as f:
        assert bundle not in f.read()
    deadline = time.monotonic() + 10  # containerd runs `delete` after it has dropped the task
    while os.path.exists(socket_path) and time.monotonic() < deadline:
        time.sleep(0.1)
    log = [line[:300] for line in open(ctd.log.name) if cid in line]
    assert not os.path.exists(socket_path), f"the dead shim's socket was left behind: {log[-8:]}"


def test_a_shim_process_killed_at_any_instant_of_a_run_leaves_nothing_after_clean_up(ctd):
    """SIGKILL, at seeded random instants of `ctr run --rm`, one process of the mrun shim's tree
    (the daemon, its fork helper, a create worker or its pristine copy; by pid, ours): containerd
    notices and runs the shim's `delete`, a user runs `ctr task rm -f` and `ctr container rm`, and
    then nothing of the container is left: no process, cgroup, mount, shim state or socket."""
    import random

    variant = 2 * (ctd.bin_dir is not None) + ctd.warm  # each containerd variant its own instants
    rng = random.Random(int(os.environ.get("MRUN_FAULT_SEED", "20261130")) + variant)
    kills = int(os.environ.get("MRUN_FAULT_KILLS", "20")) // 4  # four containerd variants run it
    landed = 0
    for i in range(kills):
        cid = f"shk{i}"
        run = subprocess.Popen([ctd.ctr_bin, "--address", ctd.sock, "--namespace", ctd.ns, *shim_run_args(ctd, cid),
                                "--rm", IMAGE, cid, "sh", "-c", "sleep 0.2"],
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 10
            tree: list[int] = []
            while not tree and run.poll() is None and time.monotonic() < deadline:
                tree = _shim_tree(ctd, cid)
                time.sleep(0.002)
            time.sleep(rng.uniform(0, 0.15))
            tree = _shim_tree(ctd, cid)
            if tree:
                os.kill(rng.choice(tree), signal.SIGKILL)
                landed += 1
            run.wait(timeout=60)
        finally:
            if run.poll() is None:
                run.kill()
                run.wait()
        deadline = time.monotonic() + 20
        while cid in ctd.ctr("task", "ls", "-q").stdout.split():  # containerd notices, runs `delete`
            ctd.ctr("task", "rm", "-f", cid, check=False)
            assert time.monotonic() < deadline, f"kill {i}: containerd kept the task of a dead shim"
            time.sleep(0.2)
        ctd.ctr("container", "rm", cid, check=False)
        bundle = os.path.join(ctd.dir, "state", "io.containerd.runtime.v2.task", ctd.ns, cid)
        state = os.path.join(ctd.dir, "shim-state", ctd.ns, cid)
        deadline = time.monotonic() + 10
        while processes_mentioning(cid) or cgroup_dirs(f"/{ctd.ns}/{cid}") or os.path.exists(state):
            assert time.monotonic() < deadline, (i, processes_mentioning(cid), cgroup_dirs(f"/{ctd.ns}/{cid}"),
                                                 os.path.exists(state))
            time.sleep(0.1)
        with open("/proc/self/mountinfo") as f:
            assert bundle not in f.read(), f"kill {i}: the rootfs stayed mounted"
    assert landed >= kills // 2, f"only {landed} of {kills} kills found the shim"


def _shim_tree(ctd, cid: str) -> list[int]:
    """The processes of the mrun shim serving ``cid`` that are the shim's own (its command line,
    not a container's): the daemon and everything under it that still bears that command line."""
    try:
        daemon = _daemon_of(ctd, cid)
    except (StopIteration, OSError, ValueError):
        return []
    found, todo = [], [daemon]
    while todo:
        pid = todo.pop()
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"containerd-shim-mrun-v2" not in f.read():
                    continue
            with open(f"/proc/{pid}/task/{pid}/children") as f:
                todo += [int(p) for p in f.read().split()]
        except OSError:
            continue
        found.append(pid)
    return found


def test_a_shim_from_the_template_is_an_exec_d_ones_double_and_needs_no_template(ctd):
    """The daemon bears containerd's command line, environment and cgroup, leads its own session;
    and the template can die (SIGKILL) while tasks run: they, their shims and later ctr calls carry
    on, and the next shim start brings a new template up."""
    from mrun.warm import client

    if not ctd.warm:
        pytest.skip("the cold variant has no template")
    alone, pod = "tmplalone", "tmplpod"
    ctd.ctr(*shim_run_args(ctd, alone), "-d", IMAGE, alone, "sleep", "600")
    ctd.ctr(*shim_run_args(ctd, pod), "--annotation", "io.kubernetes.cri.sandbox-id=tmplpod", "-d", IMAGE, pod,
            "sleep", "600")
    daemon = _daemon_of(ctd, alone)
    environ = open(f"/proc/{daemon}/environ", "rb").read().split(b"\0")
    assert f"MRUN_SHIM_ROOT={ctd.dir}/shim-state".encode() in environ  # containerd's, not the template's
    assert open(f"/proc/{daemon}/cgroup").read() == open(f"/proc/{ctd.proc.pid}/cgroup").read()
    assert os.getsid(daemon) == daemon
    old = client.status(warm_path())
    assert old is not None
    os.kill(old["pid"], signal.SIGKILL)
    deadline = time.monotonic() + 10
    while os.path.exists(f"/proc/{old['pid']}/cmdline") and open(f"/proc/{old['pid']}/cmdline").read():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    for cid in (alone, pod):
        assert f"{cid} " in ctd.ctr("task", "ls").stdout and "RUNNING" in ctd.ctr("task", "ls").stdout
        r = ctd.ctr("task", "exec", "--exec-id", "after", cid, "echo", f"{cid}-still-here")
        assert r.stdout.strip() == f"{cid}-still-here"
    assert os.path.exists(f"/proc/{daemon}")
    deadline = time.monotonic() + 20
    while (new := client.status(warm_path())) is None:  # the first start after its death starts one
        ctd.ctr(*shim_run_args(ctd, "tmplafter"), "--rm", IMAGE, "tmplafter", "true")
        assert time.monotonic() < deadline, "no new template came up"
        time.sleep(0.1)
    assert new["pid"] != old["pid"]
    ctd.ctr(*shim_run_args(ctd, "tmplwarm"), "--rm", IMAGE, "tmplwarm", "true")
    assert client.status(warm_path())["served"] > new["served"]
    for cid in (alone, pod):
        ctd.ctr("task", "kill", "-s", "KILL", cid)
        deadline = time.monotonic() + 10
        while "STOPPED" not in ctd.ctr("task", "ls").stdout.split(cid, 1)[1].split("\n", 1)[0]:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        ctd.ctr("task", "rm", cid)
        ctd.ctr("container", "rm", cid)


def test_shim_exec_pause_resume(ctd):
    cid = "shimexec"
    ctd.ctr(*shim_run_args(ctd, cid), "-d", IMAGE, cid, "sleep", "600")
    r = ctd.ctr(
        "task",
        "exec",
        "--exec-id",
        "e1",
        cid,
        "sh",
        "-c",
        "echo exec-ok $(cat /proc/1/cmdline | tr '\\0' ' '); exit 4",
        check=False,
    )
    assert r.returncode == 4, r.stderr
    assert r.stdout.strip() == "exec-ok sleep 600"
    pause_resume_metrics_kill_remove(ctd, cid)


def test_shim_reports_an_oom_kill(ctd):
    cid = "shimoom"
    watcher = subprocess.Popen([ctd.ctr_bin, "--address", ctd.sock, "events"], stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(0.3)
        r = ctd.ctr(
            *shim_run_args(ctd, cid),
            "--rm",
            "--memory-limit",
            str(32 << 20),
            IMAGE,
            cid,
            "dd",
            "if=/dev/zero",
            "of=/dev/null",
            "bs=64M",
            "count=1",
            check=False,
        )
        assert r.returncode == 137, r.stderr
        deadline = time.monotonic() + 10
        line = ""
        while not ("/tasks/oom" in line and cid in line):
            assert time.monotonic() < deadline, "no /tasks/oom event"
            line = watcher.stdout.readline()
    finally:
        watcher.kill()
        watcher.wait()
        watcher.stdout.close()


@pytest.mark.parametrize("oci", [False, True], ids=["mrun", "under-runc"])
def test_shim_terminal_run_sizes_the_pty(ctd, oci):
    """`ctr run -t` from a terminal: a pty in the container, its size following ctr's, keys typed in;
    the same for a container the oci backend hands to runc (its pty relayed onto the shim's socket)."""
    import fcntl
    import pty
    import struct
    import termios

    cid = "shimtty-runc" if oci else "shimtty"
    extra = ["--annotation", "org.mrun.oci.runtime=runc"] if oci else []
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 27, 93, 0, 0))
    proc = subprocess.Popen(
        [ctd.ctr_bin, "--address", ctd.sock, "--namespace", ctd.ns, *shim_run_args(ctd, cid), *extra, "-t", "--rm"]
        + [IMAGE, cid]
        + ["sh", "-c", "read line; stty size; tty; echo got $line; exit 6"],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        start_new_session=True,
    )
    os.close(slave)
    out = b""
    deadline = time.monotonic() + 30
    typed = False
    while proc.poll() is None or out.count(b"got") == 0:
        assert time.monotonic() < deadline, out
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                out += os.read(master, 4096)
            except OSError:
                break
        if not typed and time.monotonic() > deadline - 29:  # ctr sends the size right after Start
            os.write(master, b"typed\r")
            typed = True
    assert proc.wait(timeout=10) == 6
    os.close(master)
    text = out.decode(errors="replace")
    assert "27 93" in text and "got typed" in text, text
    if oci:
        remove_runcs_parents(ctd)


def test_shim_stdin_reaches_the_container_and_ends(ctd):
    r = subprocess.run(
        [ctd.ctr_bin, "--address", ctd.sock, "--namespace", ctd.ns, *shim_run_args(ctd, "shimcat"), "--rm", IMAGE]
        + ["shimcat", "sh", "-c", "cat; echo done"],
        input="line one\nline two\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout == "line one\nline two\ndone\n"


def test_shim_pod_linux_and_wasm_share_one_shim_and_netns(ctd, tmp_path):
    """A pod: one sandbox id, a Linux container owning the network namespace and a wasm
    container joining it; they talk through a shared volume (the wasm module answers the
    Linux side's message)."""
    pod = f"pod-{uuid.uuid4().hex[:8]}"
    shared = tmp_path / "shared"
    shared.mkdir()
    common = ["--annotation", f"io.kubernetes.cri.sandbox-id={pod}"]
    common += ["--mount", f"type=bind,src={shared},dst=/shared,options=rbind:rw"]
    script = (
        "until [ -f /shared/go ]; do sleep 0.05; done; echo from-linux > /shared/msg.tmp; mv /shared/msg.tmp "
        "/shared/msg; until [ -f /shared/reply ]; do sleep 0.05; done; cat /shared/reply; sleep 600"
    )
    ctd.ctr(*shim_run_args(ctd, "podlinux"), "-d", *common, IMAGE, "podlinux", "sh", "-c", script)
    linux_pid = task_pid(ctd, "podlinux")
    ctd.ctr(
        *shim_run_args(ctd, "podwasm"),
        "-d",
        *common,
        "--with-ns",
        f"network:/proc/{linux_pid}/ns/net",
        WASM_IMAGE,
        "podwasm",
        "/pod.wasm",
        "/shared/msg",
        "/shared/reply",
    )
    wasm_pid = task_pid(ctd, "podwasm")
    try:
        assert os.stat(f"/proc/{wasm_pid}/ns/net").st_ino == os.stat(f"/proc/{linux_pid}/ns/net").st_ino
        assert os.stat(f"/proc/{wasm_pid}/ns/net").st_ino != os.stat("/proc/self/ns/net").st_ino
        assert os.stat(f"/proc/{wasm_pid}/ns/mnt").st_ino != os.stat(f"/proc/{linux_pid}/ns/mnt").st_ino
        shims = {parent_pid(linux_pid), parent_pid(wasm_pid)}
        assert len(shims) == 1, "the pod's two containers have different shims"
        shim = shims.pop()
        assert "containerd-shim-mrun-v2" in open(f"/proc/{shim}/cmdline").read()
        # the next container's create finds its worker forked, and that worker's pristine copy armed
        (spare,) = waiting_workers(shim, {linux_pid, wasm_pid}, 1)
        deadline = time.monotonic() + 5  # the worker forks its copy first thing; on a busy node, a moment after
        while not children(spare) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(children(spare)) == 1, "the pod's spare worker has no pristine copy armed"
        (shared / "go").touch()
        deadline = time.monotonic() + 20
        while not (shared / "reply").exists():
            assert time.monotonic() < deadline, "the wasm container never answered"
            time.sleep(0.05)
        assert (shared / "reply").read_text() == "wasm read: from-linux\n"
        deadline = time.monotonic() + 20
        while "podwasm" not in stopped_tasks(ctd):
            assert time.monotonic() < deadline, "the wasm container did not exit after answering"
            time.sleep(0.05)
    finally:
        for cid in ("podwasm", "podlinux"):
            ctd.ctr("task", "kill", "-s", "KILL", cid, check=False)
        deadline = time.monotonic() + 10
        while {"podwasm", "podlinux"} - set(stopped_tasks(ctd)):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        for cid in ("podwasm", "podlinux"):
            ctd.ctr("task", "rm", cid)
            ctd.ctr("container", "rm", cid)
    assert not cgroup_dirs(f"/{ctd.ns}/podlinux") and not cgroup_dirs(f"/{ctd.ns}/podwasm")


def test_shim_answers_containerd_2_with_protocol_3_in_its_socket_dir(ctd):
    """containerd 2.3 records what `start` answered (bootstrap.json): version 3, ttrpc, a socket in
    the directory its config names; 1.6 gets the bare address (protocol 2) in mrun's own."""
    cid = "proto3"
    ctd.ctr(*shim_run_args(ctd, cid), "-d", IMAGE, cid, "sleep", "600")
    try:
        bundle = os.path.join(ctd.dir, "state", "io.containerd.runtime.v2.task", ctd.ns, cid)
        address = open(os.path.join(bundle, "address")).read()
        if ctd.bin_dir is None:
            assert address.startswith("unix:///run/mrun-shim/")
            assert not os.path.exists(os.path.join(bundle, "bootstrap.json"))
        else:
            answer = json.load(open(os.path.join(bundle, "bootstrap.json")))
            assert (answer["version"], answer["protocol"]) == (3, "ttrpc"), answer
            assert answer["address"] == address and address.startswith(f"unix://{ctd.socket_dir}/")
    finally:
        ctd.ctr("task", "kill", "-s", "KILL", cid, check=False)
        deadline = time.monotonic() + 10
        while cid not in stopped_tasks(ctd) and time.monotonic() < deadline:
            time.sleep(0.05)
        ctd.ctr("task", "rm", cid, check=False)
        ctd.ctr("container", "rm", cid, check=False)


def test_shim_sandbox_serves_a_pod_from_one_shim_started_once(ctd, tmp_path):
    """containerd 2.x with protocol 3: `ctr sandbox run` makes the pod through the sandbox API, and
    the pod's containers (`--sandbox`) are tasks of that same shim: the binary's `start` runs once.
    Removing the pod stops its holder, and the shim exits."""
    if ctd.bin_dir is None:
        pytest.skip("containerd 1.6 has no sandbox API (the 1.6 pod path is the test above)")
    calls = tmp_path / "shim-calls"
    wrapper = os.path.join(ctd.dir, "opt", "bin", "containerd-shim-mrunlog-v2")
    with open(wrapper, "w") as f:
        f.write(f"#!/bin/sh\necho \"$*\" >> {calls}\nexec {ctd.dir}/opt/bin/containerd-shim-mrun-v2 \"$@\"\n")
    os.chmod(wrapper, 0o755)
    runtime = "io.containerd.mrunlog.v2"
    pod_config = tmp_path / "pod.json"
    pod_config.write_text(json.dumps({"metadata": {"name": "p", "namespace": "t", "uid": "u"}, "hostname": "mrunpod"}))
    ctd.ctr("sandbox", "run", "--runtime", runtime, str(pod_config), "sbx")
    try:
        for cid in ("inpod1", "inpod2"):
            args = [*shim_run_args(ctd, cid), "--runtime", runtime, "--sandbox", "sbx", "-d"]
            ctd.ctr(*args, IMAGE, cid, "sleep", "600")
        first, second = task_pid(ctd, "inpod1"), task_pid(ctd, "inpod2")
        assert parent_pid(first) == parent_pid(second), "the pod's containers have different shims"
        shim = parent_pid(first)
        holders = [p for p in children(shim) if p not in (first, second)]
        assert any(os.stat(f"/proc/{p}/ns/uts").st_ino != os.stat("/proc/self/ns/uts").st_ino for p in holders)
        for cid in ("inpod1", "inpod2"):
            ctd.ctr("task", "kill", "-s", "KILL", cid)
        wait = time.monotonic() + 10
        while len(stopped_tasks(ctd)) < 2:
            assert time.monotonic() < wait
            time.sleep(0.05)
        for cid in ("inpod1", "inpod2"):
            ctd.ctr("task", "rm", cid)
            ctd.ctr("container", "rm", cid)
    finally:
        ctd.ctr("sandbox", "rm", "-f", "sbx", check=False)
    starts = [line for line in calls.read_text().splitlines() if line.endswith(" start")]
    assert len(starts) == 1, starts
    deadline = time.monotonic() + 10
    while os.path.exists(f"/proc/{shim}") and open(f"/proc/{shim}/stat").read().split()[2] != "Z":
        assert time.monotonic() < deadline, "the pod's shim stayed after the pod was removed"
        time.sleep(0.05)
    assert not os.listdir(ctd.socket_dir)


def children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if parent_pid(int(entry)) == pid:
                    found.append(int(entry))
            except (OSError, ValueError, IndexError):
                continue
    return found


def task_pid(ctd, cid: str) -> int:
    for line in ctd.ctr("task", "ls").stdout.splitlines()[1:]:
        name, pid, _status = line.split()
        if name == cid:
            return int(pid)
    raise AssertionError(f"no task {cid}")


def stopped_tasks(ctd) -> list[str]:
    return [line.split()[0] for line in ctd.ctr("task", "ls").stdout.splitlines()[1:] if line.split()[2] == "STOPPED"]


def waiting_workers(shim: int, tasks: set[int], expected: int) -> list[int]:
    """The create workers the shim's fork helper holds ready (spawner.Spare): the children of its
    one child that is no task's process, once there are ``expected`` of them or 5 s have gone (the
    last create's worker is reaped after its answer, the next spare forked after that)."""
    (helper,) = set(children(shim)) - tasks
    deadline = time.monotonic() + 5
    while len(workers := children(helper)) != expected and time.monotonic() < deadline:
        time.sleep(0.05)
    return workers


def parent_pid(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def test_shim_events_survive_a_containerd_restart(ctd, tmp_path):
    """containerd restarted under a running task: the shim reconnects for its events, so the OOM
    kill that follows still reaches containerd as /tasks/oom and /tasks/exit (an OOM-killed pod
    container shows as OOMKilled, not Error)."""
    cid = "restartoom"
    trigger = tmp_path / "trigger"
    trigger.mkdir()
    ctd.ctr(
        *shim_run_args(ctd, cid), "-d", "--memory-limit", str(32 << 20),
        "--mount", f"type=bind,src={trigger},dst=/trigger,options=rbind:rw", IMAGE, cid,
        "sh", "-c", "while [ ! -e /trigger/go ]; do sleep 0.05; done; dd if=/dev/zero of=/dev/null bs=64M count=1",
    )
    ctd.restart()
    watcher = subprocess.Popen([ctd.ctr_bin, "--address", ctd.sock, "events"], stdout=subprocess.PIPE)
    try:
        time.sleep(0.5)
        (trigger / "go").touch()
        seen: set[str] = set()
        output = b""
        deadline = time.monotonic() + 20
        while seen != {"/tasks/oom", "/tasks/exit"}:
            left = deadline - time.monotonic()
            ready = select.select([watcher.stdout], [], [], left)[0] if left > 0 else []
            assert ready, f"events after the restart: only {seen}"
            output += os.read(watcher.stdout.fileno(), 65536)  # unbuffered: select sees all there is
            for line in output.decode(errors="replace").splitlines():
                for topic in ("/tasks/oom", "/tasks/exit"):
                    if topic in line and cid in line:
                        seen.add(topic)
    finally:
        watcher.kill()
        watcher.wait()
        watcher.stdout.close()
    ctd.ctr("task", "rm", "-f", cid, check=False)
    ctd.ctr("container", "rm", cid, check=False)

"""Kubernetes' path through containerd 2.3: crictl against containerd's CRI plugin, mrun as the
runtime handler, a private CNI bridge (Debian's containernetworking-plugins) and a pause image
built here. Two handlers: ``mrun`` (CRI's own sandboxer, a pause container run by mrun's shim)
and ``mrun-shim`` (``sandboxer = 'shim'``: the shim is the pod, no pause container). Each pod
holds a Linux and a wasm container; then containerd restarts under running pods. A third,
``runc-mrun``, is containerd's own runc shim with mrun as its runtime binary (``BinaryName``), as
a cluster swaps runc for crun; ``runc`` is runc itself, beside which a case runs.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import time
import uuid

import pytest
from busybox_bundle import make_oci_archive
from conftest import IMAGE, children_of, make_rootfs, mrun_binary, open_to_others, processes_mentioning
from test_containerd import WASM_IMAGE, Containerd, build_wasm_archive

PAUSE_IMAGE = "localhost/mrun-test-pause:latest"
HANDLERS = ("mrun", "mrun-shim")
MRUN_HANDLERS = (*HANDLERS, "runc-mrun")  # every way mrun runs a pod: its shim's two, and as runc's runtime


def cri_config(work: str, subnet: str, bridge: str) -> str:
    """The CRI part of a version-3 config: both handlers, the CNI bridge, the pinned pause image."""
    cni = os.path.join(work, "cni")
    os.makedirs(cni)
    with open(os.path.join(work, "mrun-runc.toml"), "w") as f:
        f.write('oci_runtime = "runc"\n')  # the mrun-runc handler's runtime options
    with open(os.path.join(cni, "10-mrun-test.conflist"), "w") as f:
        json.dump(
            {
                "cniVersion": "1.0.0",
                "name": f"mrun-test-{bridge}",
                "plugins": [
                    {
                        "type": "bridge",
                        "bridge": bridge,
                        "isGateway": True,
                        "ipMasq": False,
                        "ipam": {"type": "host-local", "ranges": [[{"subnet": subnet}]], "dataDir": f"{work}/ipam"},
                    }
                ],
            },
            f,
        )
    return f"""[plugins.'io.containerd.cri.v1.runtime']
  netns_mounts_under_state_dir = true
  # kubelet gives the pause container oomScoreAdj -998; below the current value needs
  # CAP_SYS_RESOURCE, which some hosts (containers, this CI) lack: runc and mrun both refuse it there
  restrict_oom_score_adj = true
  enable_cdi = false
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = 'mrun'
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.mrun]
      runtime_type = 'io.containerd.mrun.v2'
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.mrun-shim]
      runtime_type = 'io.containerd.mrun.v2'
      sandboxer = 'shim'
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.mrun-runc]
      runtime_type = 'io.containerd.mrun.v2'
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.mrun-runc.options]
        ConfigPath = '{work}/mrun-runc.toml'
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = 'io.containerd.runc.v2'
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        Root = '{work}/runc-root'
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc-mrun]
      runtime_type = 'io.containerd.runc.v2'
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc-mrun.options]
        BinaryName = '{mrun_binary()}'
        Root = '{work}/mrun-as-runc-root'
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ['/usr/lib/cni']
    conf_dir = '{cni}'
[plugins.'io.containerd.cri.v1.images'.pinned_images]
  sandbox = '{PAUSE_IMAGE}'
[plugins.'io.containerd.grpc.v1.cri']
  stream_server_address = '127.0.0.1'
"""


def pause_archive(work: str) -> str:
    """A pause image from busybox: PID 1 of its pod, exits 0 on SIGTERM."""
    rootfs = os.path.join(work, "pause-rootfs")
    make_rootfs(rootfs)
    script = "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done"
    return make_oci_archive(rootfs, work, PAUSE_IMAGE, ["/bin/sh", "-c", script], ["PATH=/bin"])


class CRI:
    def __init__(self, ctd: Containerd, crictl: str, work: str) -> None:
        self.ctd, self.crictl, self.work = ctd, crictl, work

    def run(self, *args: str, check: bool = True, timeout: float = 60) -> str:
        endpoint = f"unix://{self.ctd.sock}"
        r = subprocess.run(
            [self.crictl, "-r", endpoint, "-i", endpoint, "-t", "30s", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        if check:
            assert r.returncode == 0, f"crictl {' '.join(args)}: {r.stderr}\n{self.ctd_log()}"
        return r.stdout.strip()

    def ctd_log(self) -> str:
        with open(self.ctd.log.name) as f:
            return "containerd log (errors):\n" + "\n".join(
                line for line in f.read().splitlines()[-400:] if "level=error" in line
            )[-4000:]

    def write(self, name: str, doc: dict) -> str:
        path = os.path.join(self.work, name)
        with open(path, "w") as f:
            json.dump(doc, f)
        return path

    def inspect(self, kind: str, obj: str) -> dict:
        return json.loads(self.run(kind, "-o", "json", obj))


@pytest.fixture(scope="module")
def cri(busybox_archive, containerd2, tmp_path_factory):
    if os.geteuid() != 0:
        pytest.fail("CRI tests need root")
    for plugin in ("bridge", "host-local", "loopback"):
        if not os.path.exists(f"/usr/lib/cni/{plugin}"):
            pytest.fail(f"/usr/lib/cni/{plugin} is missing: apt-get install -y containernetworking-plugins")
    work = str(tmp_path_factory.mktemp("cri"))
    bridge = f"mrcri{uuid.uuid4().hex[:6]}"
    subnet = f"10.251.{random.randrange(1, 250)}.0/24"
    ctd = Containerd(busybox_archive, containerd2, cri=cri_config(work, subnet, bridge))
    ctd.ns = "k8s.io"  # CRI's namespace: the images must be there
    try:
        for archive in (busybox_archive, pause_archive(work), build_wasm_archive(os.path.join(work, "wasm"))):
            ctd.ctr("image", "import", archive)
        yield CRI(ctd, os.path.join(containerd2, "crictl"), work)
    finally:
        crictl = CRI(ctd, os.path.join(containerd2, "crictl"), work)
        for pod in crictl.run("pods", "-q", check=False).split():
            crictl.run("stopp", pod, check=False)
            crictl.run("rmp", "-f", pod, check=False)
        ctd.stop()
        subprocess.run(["ip", "link", "del", bridge], capture_output=True)
    assert not processes_mentioning(ctd.dir), "shims or containers of the CRI containerd left behind"


def pod_doc(name: str, log_dir: str) -> dict:
    return {
        "metadata": {"name": name, "namespace": "mrun-test", "uid": uuid.uuid4().hex, "attempt": 0},
        "hostname": name,
        "log_directory": log_dir,
        "linux": {},
    }


def start_pod(cri: CRI, handler: str) -> tuple[str, dict, str, str]:
    """A pod with a sleeping Linux container and a wasm container that has run to its end.
    -> (pod id, pod config path, linux container id, wasm container id)"""
    name = f"{handler}-{uuid.uuid4().hex[:6]}"
    logs = os.path.join(cri.work, "logs", name)
    os.makedirs(logs)
    pod_path = cri.write(f"{name}-pod.json", pod_doc(name, logs))
    pod = cri.run("runp", "--runtime", handler, pod_path)
    linux = cri.write(
        f"{name}-linux.json",
        {
            "metadata": {"name": "linux"},
            "image": {"image": IMAGE},
            "command": ["/bin/sh", "-c", "echo host=$(hostname); ip -4 -o addr show eth0; exec sleep 3600"],
            "log_path": "linux.log",
            "linux": {},
        },
    )
    wasm = cri.write(
        f"{name}-wasm.json",
        {
            "metadata": {"name": "wasm"},
            "image": {"image": WASM_IMAGE},
            "command": ["/hello.wasm", "0"],
            "envs": [{"key": "GREETING", "value": "from-cri"}],
            "log_path": "wasm.log",
            "linux": {},
        },
    )
    linux_id = cri.run("create", pod, linux, pod_path)
    cri.run("start", linux_id)
    wasm_id = cri.run("create", pod, wasm, pod_path)
    cri.run("start", wasm_id)
    return pod, {"path": pod_path, "name": name}, linux_id, wasm_id


def wait_for(predicate, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def parent(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def ns(pid: int, kind: str) -> int:
    return os.stat(f"/proc/{pid}/ns/{kind}").st_ino


def check_pod(cri: CRI, handler: str, pod: str, linux_id: str, wasm_id: str) -> None:
    state = cri.inspect("inspectp", pod)
    assert state["status"]["state"] == "SANDBOX_READY", state["status"]
    ip = state["status"]["network"]["ip"]
    assert ip.startswith("10.251."), state["status"]["network"]
    wait_for(lambda: "inet" in cri.run("logs", linux_id), "the Linux container printed nothing")
    logs = cri.run("logs", linux_id)
    assert f"host={state['status']['metadata']['name']}" in logs, logs
    assert f"inet {ip}/" in logs, logs  # the container is in the pod's network namespace
    wait_for(lambda: cri.inspect("inspect", wasm_id)["status"]["state"] == "CONTAINER_EXITED", "wasm never ended")
    wasm = cri.inspect("inspect", wasm_id)
    assert wasm["status"]["exitCode"] == 0, wasm["status"]
    out = cri.run("logs", wasm_id)
    assert "hello from wasm32-wasi: [/hello.wasm] [0]" in out and "GREETING=from-cri" in out, out
    # the Linux container shares the pod's network, IPC and UTS namespaces, held by the sandbox's pid
    container = cri.inspect("inspect", linux_id)["info"]
    linux_pid = container["pid"]
    # the pod's namespaces as CRI wrote them into the container's spec: /proc/<sandbox pid>/ns/*
    # (CRI reports no pid for a shim sandbox; for its own, the pause container's)
    paths = {n["type"]: n.get("path", "") for n in container["runtimeSpec"]["linux"]["namespaces"]}
    sandbox_pid = int(paths["ipc"].split("/")[2])
    assert state["info"]["pid"] in (0, sandbox_pid)
    for kind in ("net", "ipc", "uts"):
        assert ns(linux_pid, kind) == ns(sandbox_pid, kind), kind
        assert ns(linux_pid, kind) != ns(os.getpid(), kind), kind
    shim = parent(linux_pid)
    assert "containerd-shim-mrun-v2" in open(f"/proc/{shim}/cmdline").read()
    holder_cmdline = open(f"/proc/{sandbox_pid}/cmdline").read()
    if handler == "mrun-shim":  # the shim is the pod: its holder, no pause image
        assert "containerd-shim-mrun-v2" in holder_cmdline, holder_cmdline
    else:  # CRI's pause container, run by mrun's shim
        assert "sleep 3600" in holder_cmdline or "/bin/sh" in holder_cmdline, holder_cmdline


def pod_config_file(cri: CRI, prefix: str, linux: dict) -> str:
    """A pod config of a fresh name with ``linux`` (its LinuxPodSandboxConfig) -> its path."""
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    logs = os.path.join(cri.work, "logs", name)
    os.makedirs(logs)
    return cri.write(f"{name}-pod.json", {**pod_doc(name, logs), "linux": linux})


def start_in_pod(cri: CRI, pod: str, pod_path: str, name: str, command: list[str], **config: object) -> str:
    """A busybox container of the pod, started: -> its id. ``config``: more of its ContainerConfig."""
    path = cri.write(f"{os.path.basename(pod_path).removesuffix('-pod.json')}-{name}.json", {
        "metadata": {"name": name}, "image": {"image": IMAGE}, "command": command, "log_path": f"{name}.log",
        "linux": {}, **config})
    cid = cri.run("create", pod, path, pod_path)
    cri.run("start", cid)
    return cid


def remove_pod(cri: CRI, pod: str) -> None:
    cri.run("stopp", pod)
    cri.run("rmp", pod)
    assert pod not in cri.run("pods", "-q").split()


@pytest.mark.parametrize("handler", HANDLERS)
def test_cri_pod_with_a_linux_and_a_wasm_container(cri, handler):
    pod, _cfg, linux_id, wasm_id = start_pod(cri, handler)
    try:
        check_pod(cri, handler, pod, linux_id, wasm_id)
        out = cri.run("exec", "-s", linux_id, "cat", "/proc/self/cgroup")
        assert out, "exec in the pod's Linux container printed nothing"
    finally:
        remove_pod(cri, pod)
    # CRI read mrun's features from -info: each handler's CRI features follow from them
    # (rro mounts: "rro" in mountOptions; user namespaces: "user" and idmapped mounts)
    handlers = {h.get("name"): h.get("features", {}) for h in json.loads(cri.run("info"))["runtimeHandlers"]}
    features = json.loads(subprocess.run([mrun_binary(), "features"], capture_output=True, check=True).stdout)
    userns = "user" in features["linux"]["namespaces"] and features["linux"]["mountExtensions"]["idmap"]["enabled"]
    assert "rro" in features["mountOptions"]  # so the line below fails if containerd did not read -info
    assert handlers[handler].get("recursive_read_only_mounts") is True, handlers
    assert bool(handlers[handler].get("user_namespaces")) == userns
    info_errors = [line for line in open(cri.ctd.log.name) if "-info" in line or "runtime info" in line]
    assert not info_errors, f"containerd could not read mrun's -info: {info_errors}"


@pytest.mark.parametrize("handler", MRUN_HANDLERS)
def test_a_user_namespaced_pod_sees_its_image_and_volume_as_its_own(cri, handler, tmp_path):
    """Kubernetes' hostUsers: false, as kubelet asks for it: the pod's mappings in its
    userns_options (and each container's), a volume with the same mappings. Its root is host
    200000; the image's layers (containerd's uidmap/gidmap snapshot options) and the volume are
    idmapped, so both show their root-owned files as root's, and what the container writes to
    the volume is host root's; a wasm container runs in the same pod. mrun failed such a pod at
    its rootfs (an overlay option it did not know), at the user namespace's oom_score_adj, and (a
    shim pod) at joining a user namespace the holder never had, and (a shim pod) at an IPC sysctl:
    the holder joined the user namespace as the node's root, not the pod's, whose alone it is to
    write. The state directory is made reachable as containerd's own root is (0711): the mapped
    root must reach the bundle, as with runc."""
    volume = tmp_path / "volume"
    volume.mkdir()
    (volume / "zero").write_text("0")
    open_to_others(str(tmp_path))  # pytest's directories are 0700
    os.chmod(cri.ctd.dir, 0o711)
    ids = [{"host_id": 200000, "container_id": 0, "length": 65536}]
    userns = {"security_context": {"namespace_options": {"userns_options": {"mode": 0, "uids": ids, "gids": ids}}}}
    sysctls = {"net.ipv4.ip_unprivileged_port_start": "77", "kernel.shm_rmid_forced": "1"}
    pod_path = pod_config_file(cri, f"userns-{handler}", {**userns, "sysctls": sysctls})
    pod = cri.run("runp", "--runtime", handler, pod_path)
    try:
        script = ("cat /proc/self/uid_map; stat -c %u:%g /bin/sh /vol/zero; touch /vol/new && echo wrote; "
                  "cat /proc/sys/net/ipv4/ip_unprivileged_port_start /proc/sys/kernel/shm_rmid_forced; "
                  "echo reopened > /dev/stdout; exec sleep 3600")  # CRI's io_uid: its streams are its root's
        cid = start_in_pod(cri, pod, pod_path, "c", ["/bin/sh", "-c", script],
                           mounts=[{"container_path": "/vol", "host_path": str(volume), "uidMappings": ids,
                                    "gidMappings": ids}], linux=userns)
        wait_for(lambda: len(cri.run("logs", cid).split()) >= 8, "the container said nothing")
        time.sleep(0.2)
        out = cri.run("logs", cid).split()
        assert out == ["0", "200000", "65536", "0:0", "0:0", "wrote", "77", "1", "reopened"], out
        assert os.stat(volume / "new").st_uid == 0  # the volume's root, through its mapping
        assert "Uid:\t200000" in open(f"/proc/{cri.inspect('inspect', cid)['info']['pid']}/status").read()
        in_exec = "id -u; cat /proc/self/uid_map; echo x > /dev/stderr"  # its streams its own too
        assert cri.run("exec", "-s", cid, "sh", "-c", in_exec).split() == [
            "0", "0", "200000", "65536", "x"]  # kubectl exec: in the pod's user namespace too
        wasm_id = start_in_pod(cri, pod, pod_path, "wasm", ["/hello.wasm", "0"], image={"image": WASM_IMAGE},
                               linux=userns)
        wait_for(lambda: cri.inspect("inspect", wasm_id)["status"]["state"] == "CONTAINER_EXITED", "wasm never ended")
        assert cri.inspect("inspect", wasm_id)["status"]["exitCode"] == 0, cri.run("logs", wasm_id)
        assert "hello from wasm32-wasi" in cri.run("logs", wasm_id)
    finally:
        remove_pod(cri, pod)


@pytest.mark.parametrize("handler", MRUN_HANDLERS)
def test_a_pod_s_sysctls_are_set_and_one_that_is_the_node_s_is_refused(cri, handler):
    """kubelet passes a pod's sysctls in its PodSandboxConfig. With CRI's pause container they
    reach mrun in its spec and are checked and set; the shim as the pod (sandboxer = 'shim')
    ignored them: the pod ran without its net.* and IPC ones, and a sysctl no pod namespace owns
    (kernel.core_pattern: the node's) was taken silently instead of refused in one line."""
    sysctls = {"net.ipv4.ip_unprivileged_port_start": "77", "kernel.shm_rmid_forced": "1"}
    pod_path = pod_config_file(cri, f"sysctl-{handler}", {"sysctls": sysctls})
    pod = cri.run("runp", "--runtime", handler, pod_path)
    try:
        cid = start_in_pod(cri, pod, pod_path, "c", ["sh", "-c", "cat /proc/sys/net/ipv4/ip_unprivileged_port_start "
                                                     "/proc/sys/kernel/shm_rmid_forced; exec sleep 3600"])
        wait_for(lambda: len(cri.run("logs", cid).split()) == 2, "the container said nothing")
        assert cri.run("logs", cid).split() == ["77", "1"]
    finally:
        remove_pod(cri, pod)
    before = open("/proc/sys/kernel/core_pattern").read()
    bad = pod_config_file(cri, f"sysctl-{handler}-bad", {"sysctls": {"kernel.core_pattern": "|/bin/false"}})
    endpoint = f"unix://{cri.ctd.sock}"
    r = subprocess.run([cri.crictl, "-r", endpoint, "-i", endpoint, "runp", "--runtime", handler, bad],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "linux.sysctl.kernel.core_pattern: not namespaced" in r.stderr, r.stderr
    assert open("/proc/sys/kernel/core_pattern").read() == before
    assert not [p for p in cri.run("pods", "-q").split() if p], "the refused pod was left"


@pytest.mark.parametrize("handler", ["runc", *MRUN_HANDLERS])
def test_stopping_a_container_of_a_shared_pid_namespace_ends_what_its_init_left(cri, handler):
    """In a pod whose containers share its PID namespace (shareProcessNamespace; crictl's
    default), a container's shell is not its namespace's PID 1: SIGTERM ends it and the child
    it forked lives on, holding the container's output. containerd's runc shim kills what is left
    once the init has exited, so `crictl stop` returns; with mrun's shim it waited for its
    deadline and StopPodSandbox failed. Beside runc's shim (handler "runc") for the same pod."""
    pod_path = pod_config_file(cri, f"shared-pid-{handler}", {})
    pod = cri.run("runp", "--runtime", handler, pod_path)
    try:
        cid = start_in_pod(cri, pod, pod_path, "srv", ["sh", "-c", "while :; do echo served | nc -l -p 8080; done"])
        wait_for(lambda: children_of(cri.inspect("inspect", cid)["info"]["pid"]), "its shell forked no nc")
        started = time.monotonic()
        cri.run("stop", "-t", "10", cid)  # its shell ends at once, on SIGTERM
        assert time.monotonic() - started < 8, "the stop waited for its grace period to end"
        status = cri.inspect("inspect", cid)["status"]
        assert (status["state"], status["exitCode"]) == ("CONTAINER_EXITED", 143), status
    finally:
        remove_pod(cri, pod)


@pytest.mark.parametrize("handler", ["runc", "runc-mrun"])
def test_a_sandbox_refused_through_runc_s_shim_says_why(cri, handler):
    """containerd's runc shim creates a pod's sandbox with /dev/null, read-only, as the runtime's
    stdout and stderr, and reads the runtime's error from its --log file. mrun's message to that
    stderr failed and ended it before the record: the pod failed with "unable to retrieve OCI
    runtime error". A pod on the node's network has no UTS namespace, so its hostname is refused."""
    pod_path = pod_config_file(cri, f"refused-{handler}", {"security_context": {"namespace_options": {"network": 2}}})
    endpoint = f"unix://{cri.ctd.sock}"
    r = subprocess.run([cri.crictl, "-r", endpoint, "-i", endpoint, "runp", "--runtime", handler, pod_path],
                       capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert r.returncode != 0, r.stdout
    assert "unable to retrieve OCI runtime error" not in r.stderr, r.stderr
    assert "hostname" in r.stderr and "UTS" in r.stderr.upper(), r.stderr
    assert not cri.run("pods", "-q", "--name", f"refused-{handler}")


@pytest.mark.parametrize("handler", ["runc-mrun"])
def test_a_pod_through_runc_s_shim_with_mrun_as_its_runtime(cri, handler):
    """The drop-in path: containerd's runc shim calls mrun as it calls runc, for the pause
    sandbox and for a container of the pod; its output reaches the pod's log, and stop and
    removal leave nothing behind in mrun's root."""
    pod_path = pod_config_file(cri, f"dropin-{handler}", {})
    pod = cri.run("runp", "--runtime", handler, pod_path)
    try:
        cid = start_in_pod(cri, pod, pod_path, "c", ["sh", "-c", "echo out; echo err >&2; exit 3"])
        deadline = time.monotonic() + 20
        while cri.inspect("inspect", cid)["status"]["state"] != "CONTAINER_EXITED":
            assert time.monotonic() < deadline, "the container did not end"
            time.sleep(0.1)
        assert cri.inspect("inspect", cid)["status"]["exitCode"] == 3
        endpoint = f"unix://{cri.ctd.sock}"
        logs = subprocess.run([cri.crictl, "-r", endpoint, "-i", endpoint, "logs", cid], capture_output=True,
                              text=True, timeout=30)
        assert logs.stdout.splitlines()[0] == "out" and "err" in logs.stderr.splitlines(), logs
        root = os.path.join(cri.work, "mrun-as-runc-root", "k8s.io")
        assert pod in os.listdir(root), os.listdir(root)  # the sandbox's state, kept by mrun as runc keeps it
    finally:
        cri.run("stopp", pod)
        cri.run("rmp", pod)
    assert not [e for e in os.listdir(root) if not e.startswith(".")], os.listdir(root)


@pytest.mark.parametrize("handler", MRUN_HANDLERS)
def test_a_pod_s_pid_1_shows_no_node_file_to_a_container_that_may_ptrace(cri, handler, tmp_path):
    """shareProcessNamespace: the pod's containers see its PID 1. A container with CAP_SYS_PTRACE
    (kubectl debug's profiles add it) may follow /proc/1/root: with CRI's pause container that is
    the pause image; the shim's pod holder, forked from the shim, had the node's / as its root,
    and the container read (and, root with CAP_DAC_OVERRIDE, could write) the node's files through
    it. The holder now sits in a mount namespace of its own on an empty read-only tmpfs. Its
    descriptors are the pod's to read too: it held a pidfd of the shim, which a reopen through
    /proc/1/fd made the container's (pidfd_getfd: the shim's files); now a pipe's end."""
    marker = tmp_path / "node-secret"
    marker.write_text("the node's")
    pod_path = pod_config_file(cri, f"ptrace-{handler}", {"security_context": {"namespace_options": {"pid": 0}}})
    pod = cri.run("runp", "--runtime", handler, pod_path)
    try:
        script = (f"cat /proc/1/root{marker} 2>&1; echo entries=$(ls -A /proc/1/root/ | wc -l); "
                  "touch /proc/1/root/planted 2>&1; ls -l /proc/1/fd/; echo done; exec sleep 3600")
        cid = start_in_pod(cri, pod, pod_path, "c", ["sh", "-c", script],
                           linux={"security_context": {"capabilities": {"add_capabilities": ["SYS_PTRACE"]}}})
        wait_for(lambda: "done" in cri.run("logs", cid), "the container said nothing")
        out = cri.run("logs", cid)
        assert "the node's" not in out, out
        assert "pidfd" not in out, out  # no descriptor of the shim's process: pidfd_getfd would take its files
        if handler == "mrun-shim":
            assert "entries=0" in out and "Read-only file system" in out, out  # an empty, read-only root
        assert not os.path.exists("/planted")
    finally:
        remove_pod(cri, pod)


def test_a_handler_whose_options_hand_its_pods_to_runc(cri):
    """The operator's runtime options (ConfigPath) send a handler's pods through mrun's shim to runc."""
    name = f"mrun-runc-{uuid.uuid4().hex[:6]}"
    logs = os.path.join(cri.work, "logs", name)
    os.makedirs(logs)
    pod_path = cri.write(f"{name}-pod.json", pod_doc(name, logs))
    pod = cri.run("runp", "--runtime", "mrun-runc", pod_path)
    try:
        linux = cri.write(f"{name}-linux.json", {
            "metadata": {"name": "linux"}, "image": {"image": IMAGE},
            "command": ["/bin/sh", "-c", "echo host=$(hostname); exec sleep 3600"],
            "log_path": "linux.log",
            "linux": {},
        })
        cid = cri.run("create", pod, linux, pod_path)
        cri.run("start", cid)
        wait_for(lambda: "host=" in cri.run("logs", cid), "the container printed nothing")
        assert f"host={name}" in cri.run("logs", cid)
        runc_root = os.path.join(cri.ctd.dir, "shim-state", "k8s.io", ".oci", "runc")
        assert {pod, cid} <= set(os.listdir(runc_root)), os.listdir(runc_root)
        shim = parent(cri.inspect("inspect", cid)["info"]["pid"])
        assert "containerd-shim-mrun-v2" in open(f"/proc/{shim}/cmdline").read()
    finally:
        remove_pod(cri, pod)


def test_containerd_restarts_under_running_pods(cri):
    """Both kinds of pod running (their wasm containers done, and CRI has seen them end), then
    containerd goes and comes back: each pod's shim is found again, nothing is lost or re-run."""
    pods = [start_pod(cri, handler) for handler in HANDLERS]
    try:
        shims = []
        for (pod, _cfg, linux_id, wasm_id), handler in zip(pods, HANDLERS, strict=True):
            check_pod(cri, handler, pod, linux_id, wasm_id)
            shims.append(parent(cri.inspect("inspect", linux_id)["info"]["pid"]))
        cri.ctd.restart()
        for (pod, _cfg, linux_id, wasm_id), handler, shim in zip(pods, HANDLERS, shims, strict=True):
            check_pod(cri, handler, pod, linux_id, wasm_id)
            assert parent(cri.inspect("inspect", linux_id)["info"]["pid"]) == shim, "a new shim took over the pod"
            assert cri.inspect("inspect", linux_id)["status"]["state"] == "CONTAINER_RUNNING"
            cri.run("stop", "-t", "2", linux_id)
            status = cri.inspect("inspect", linux_id)["status"]
            assert status["state"] == "CONTAINER_EXITED", status
    finally:
        for pod, *_ in pods:
            remove_pod(cri, pod)
    shutil.rmtree(os.path.join(cri.work, "logs"), ignore_errors=True)


def pod_mounts_in(path: str) -> list[str]:
    """The mount points of this machine under ``path`` (a pod's bundle or state directory)."""
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if path in line.split()[4]]


@pytest.mark.parametrize("handler", ["runc", *MRUN_HANDLERS])
def test_a_pod_s_containers_share_its_hostname_hosts_dns_and_dev_shm_files(cri, handler, tmp_path):
    """A pod's /etc/hostname, /etc/hosts and /etc/resolv.conf (kubelet's dnsConfig: cluster DNS)
    and its /dev/shm are the pod's, shared by its containers, read-only in one whose root is, and
    the ones kubelet mounts itself (its managed /etc/hosts, a memory emptyDir on /dev/shm) win. CRI
    makes them for its own sandboxer; with the shim as the pod (sandboxer = 'shim') containerd 2.x
    leaves them to the shim, and mrun's made none: its containers had the image's resolv.conf (no
    cluster DNS), no hostname file, and a /dev/shm each, so POSIX shared memory was not shared.
    Beside runc's shim (handler "runc") for the same pods."""
    dns = {"servers": ["10.96.0.10", "192.0.2.53"], "searches": ["mrun-test.svc.cluster.local", "cluster.local"],
           "options": ["ndots:5"]}
    name = f"files-{handler}-{uuid.uuid4().hex[:6]}"
    logs = os.path.join(cri.work, "logs", name)
    os.makedirs(logs)
    pod_path = cri.write(f"{name}-pod.json", {**pod_doc(name, logs), "dns_config": dns})
    kubelet_hosts = tmp_path / "etc-hosts"
    kubelet_hosts.write_text("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n")
    open_to_others(str(tmp_path))
    pod = cri.run("runp", "--runtime", handler, pod_path)
    try:
        writer = start_in_pod(cri, pod, pod_path, "writer", ["sh", "-c", "echo shared > /dev/shm/from-writer; "
                                                             "echo written; exec sleep 3600"])
        wait_for(lambda: "written" in cri.run("logs", writer), "the writer said nothing")
        script = ("cat /etc/resolv.conf /etc/hostname; md5sum /etc/hosts; cat /dev/shm/from-writer; "
                  "touch /etc/hostname 2>&1; touch /dev/shm/mine && echo shm-writable; echo done; exec sleep 3600")
        reader = start_in_pod(cri, pod, pod_path, "reader", ["sh", "-c", script],
                              linux={"security_context": {"readonly_rootfs": True}})
        wait_for(lambda: "done" in cri.run("logs", reader), "the reader said nothing")
        out = cri.run("logs", reader)
        host_hosts = subprocess.run(["md5sum", "/etc/hosts"], capture_output=True, text=True).stdout.split()[0]
        assert out.splitlines()[:6] == [
            "search mrun-test.svc.cluster.local cluster.local", "nameserver 10.96.0.10", "nameserver 192.0.2.53",
            "options ndots:5", name, f"{host_hosts}  /etc/hosts"], out  # the node's /etc/hosts, as CRI copies it
        assert "shared" in out and "Read-only file system" in out and "shm-writable" in out, out
        own = start_in_pod(cri, pod, pod_path, "own", ["sh", "-c", "cat /etc/hosts; ls -A /dev/shm; echo done; "
                                                       "exec sleep 3600"],
                           mounts=[{"container_path": "/etc/hosts", "host_path": str(kubelet_hosts)},
                                   {"container_path": "/dev/shm", "host_path": str(tmp_path / "memory")}])
        wait_for(lambda: "done" in cri.run("logs", own), "the third container said nothing")
        out = cri.run("logs", own)
        assert "Kubernetes-managed" in out and "from-writer" not in out, out
    finally:
        remove_pod(cri, pod)
    assert not pod_mounts_in(pod), "the pod's /dev/shm was left mounted"
    # hostIPC, as kubelet asks for it (the pod's and the container's IPC the node's): the node's /dev/shm
    node_ipc = {"security_context": {"namespace_options": {"ipc": 2}}}
    pod_path = pod_config_file(cri, f"host-ipc-{handler}", node_ipc)
    pod = cri.run("runp", "--runtime", handler, pod_path)
    try:
        cid = start_in_pod(cri, pod, pod_path, "c", ["sh", "-c", "stat -c dev=%d /dev/shm; exec sleep 3600"],
                           linux=node_ipc)
        wait_for(lambda: "dev=" in cri.run("logs", cid), "the hostIPC container said nothing")
        assert cri.run("logs", cid) == f"dev={os.stat('/dev/shm').st_dev}"
    finally:
        remove_pod(cri, pod)


def test_a_killed_pod_shim_leaves_no_pod_dev_shm_mounted(cri):
    """The shim as the pod mounts the pod's /dev/shm on the node; killed, it cannot unmount it, and
    containerd's cleanup (the shim binary's ``delete`` for the pod's bundle) must."""
    pod_path = pod_config_file(cri, "killed-shim", {})
    pod = cri.run("runp", "--runtime", "mrun-shim", pod_path)
    try:
        cid = start_in_pod(cri, pod, pod_path, "c", ["sleep", "3600"])
        assert pod_mounts_in(pod), "the shim mounted no /dev/shm for the pod"
        shim = parent(cri.inspect("inspect", cid)["info"]["pid"])
        os.kill(shim, signal.SIGKILL)
        wait_for(lambda: not pod_mounts_in(pod), "the dead shim's pod /dev/shm stayed mounted")
    finally:
        cri.run("stopp", pod, check=False)
        cri.run("rmp", "-f", pod, check=False)
    assert not pod_mounts_in(pod)


def under_a_terminal(argv: list[str], typed: bytes) -> bytes:
    """``argv`` run on a new pty whose user types ``typed`` at once: -> all it printed there."""
    import pty
    import select

    pid, master = pty.fork()
    if pid == 0:
        try:
            os.execvp(argv[0], argv)
        finally:
            os._exit(127)
    os.write(master, typed)
    out = b""
    try:
        while select.select([master], [], [], 30)[0]:
            data = os.read(master, 4096)
            if not data:
                break
            out += data
    except OSError:  # EIO: the client ended and closed its terminal
        pass
    finally:
        os.close(master)
        os.waitpid(pid, 0)
    return out


@pytest.mark.parametrize("handler", ["runc", *MRUN_HANDLERS])
def test_kubectl_exec_it_shows_what_a_short_command_printed_when_the_user_types_at_once(cri, handler):
    """`kubectl exec -it POD -- sh -c 'echo ...'` with input on its way as the command ends (a
    terminal's ^D, a paste): CRI copies it into the exec's stdin fifo, and if that write fails it
    stops copying the terminal's output too. mrun's shim closed the fifo as the output ended, and
    the client saw nothing of what was printed, more often than not; beside runc's shim, which
    keeps it open until the exec is deleted."""
    pod_path = pod_config_file(cri, f"exec-it-{handler}", {})
    pod = cri.run("runp", "--runtime", handler, pod_path)
    try:
        cid = start_in_pod(cri, pod, pod_path, "c", ["sleep", "3600"])
        endpoint = f"unix://{cri.ctd.sock}"
        argv = [cri.crictl, "-r", endpoint, "-i", endpoint, "exec", "-it", cid, "sh", "-c", "echo printed-$((6*7))"]
        seen = [under_a_terminal(argv, b"\x04") for _ in range(6)]
        assert all(b"printed-42" in out for out in seen), seen
    finally:
        remove_pod(cri, pod)


def test_a_terminal_container_s_log_goes_on_after_containerd_restarts(cri):
    """A container with a terminal (tty: true) logs through its relay in the shim. containerd
    restarting leaves the relay's fifo without a reader until CRI reattaches: the runc shim's copy
    waits, and the log goes on; mrun's relay got EPIPE and the container's log stopped for good.
    All three handlers' pods through the same restart."""
    paths = {h: pod_config_file(cri, f"tty-log-{h}", {}) for h in ["runc", *HANDLERS]}
    pods = {h: cri.run("runp", "--runtime", h, path) for h, path in paths.items()}
    try:
        counting = ["sh", "-c", "i=0; while :; do echo tick-$i; i=$((i+1)); sleep 0.1; done"]
        cids = {h: start_in_pod(cri, pod, paths[h], "tty", counting, tty=True) for h, pod in pods.items()}
        for cid in cids.values():
            wait_for(lambda cid=cid: "tick-3" in cri.run("logs", cid), "the container logged nothing")
        cri.ctd.restart()
        time.sleep(1)
        seen = {h: cri.run("logs", cid).count("tick-") for h, cid in cids.items()}
        for h, cid in cids.items():
            wait_for(lambda cid=cid, h=h: cri.run("logs", cid).count("tick-") > seen[h] + 10,
                     f"{h}: the terminal container's log stopped at containerd's restart")
    finally:
        for pod in pods.values():
            remove_pod(cri, pod)

"""containerd 2.x's side of the shim contract, driven directly: ``-info``, the BootstrapParams /
BootstrapResult handshake with protocol 3, the sandbox API, and a daemon that leaves when
containerd is gone. The same paths under a real containerd 2.3 are in test_containerd/test_cri."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import tempfile
import time
import uuid

import pytest
from conftest import mrun_binary, running
from google.protobuf import any_pb2
from mrun.shims import ttrpc, wire
from mrun.shims.proto import bootstrap_pb2, sandbox_pb2, task_pb2, types_pb2

TASK_V3 = "containerd.task.v3.Task"
SANDBOX = "containerd.runtime.sandbox.v1.Sandbox"
NAMESPACE = "direct"


def shim_binary() -> str:
    return os.path.join(os.path.dirname(mrun_binary()), "containerd-shim-mrun-v2")


def wait_gone(pid: int, what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while running(pid):
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


class BootShim:
    """`start` as containerd 2.3 runs it: BootstrapParams on stdin, a BootstrapResult back."""

    def __init__(self, h, bundle: str, cid: str, socket_dir: str) -> None:
        self.h, self.bundle, self.cid = h, bundle, cid
        self.env = {**os.environ, "MRUN_SHIM_ROOT": os.path.join(h.tmp, "shim-state")}
        self.env.pop("TTRPC_ADDRESS", None)
        params = bootstrap_pb2.BootstrapParams(
            instance_id=cid,
            namespace=NAMESPACE,
            log_level=-4,  # DEBUG: an int32 enum below zero is ten bytes on the wire
            containerd_version="v2.3.4",
            containerd_grpc_address=f"/nonexistent/{uuid.uuid4().hex}",
            socket_dir=socket_dir,
        )
        args = [shim_binary(), "-namespace", NAMESPACE, "-address", "/nonexistent", "-id", cid, "start"]
        out = subprocess.run(
            args, cwd=bundle, env=self.env, input=params.SerializeToString(), capture_output=True, timeout=30
        )
        assert out.returncode == 0, out.stderr
        self.result = bootstrap_pb2.BootstrapResult.FromString(out.stdout)
        self.socket = self.result.address.removeprefix("unix://")
        self.client = ttrpc.Client(self.socket)
        connected = task_pb2.ConnectResponse.FromString(
            self.client.call(TASK_V3, "Connect", task_pb2.ConnectRequest(id=cid).SerializeToString())
        )
        self.pid = connected.shim_pid

    def call(self, service: str, method: str, msg, timeout: float = 10) -> bytes:
        return self.client.call(service, method, msg.SerializeToString(), timeout=timeout)

    def kill(self) -> None:
        self.client.close()
        if running(self.pid):
            os.kill(self.pid, 9)  # our own daemon, by pid

    def start_pod(self, sandbox_id: str, bundle: str, options: any_pb2.Any) -> sandbox_pb2.StartSandboxResponse:
        """CreateSandbox and StartSandbox, as containerd calls them for a pod."""
        self.call(SANDBOX, "CreateSandbox", sandbox_pb2.CreateSandboxRequest(
            sandbox_id=sandbox_id, bundle_path=bundle, options=options))
        return sandbox_pb2.StartSandboxResponse.FromString(
            self.call(SANDBOX, "StartSandbox", sandbox_pb2.StartSandboxRequest(sandbox_id=sandbox_id)))

    def shut_down_pod(self, sandbox_id: str, holder: int) -> None:
        """ShutdownSandbox of the shim's last pod: its holder and then the shim itself leave."""
        self.call(SANDBOX, "ShutdownSandbox", sandbox_pb2.ShutdownSandboxRequest(sandbox_id=sandbox_id))
        assert not running(holder)
        self.client.close()
        wait_gone(self.pid, "the shim stayed after ShutdownSandbox")


@pytest.fixture
def socket_dir():
    d = tempfile.mkdtemp(prefix="mrun-s-", dir="/tmp")  # short: sun_path is 108 bytes
    yield d
    left = os.listdir(d)
    os.rmdir(d) if not left else None
    assert not left, f"sockets left behind: {left}"


def test_wire_reads_and_writes_what_protobuf_does():
    """The hand-rolled encoder on start's critical path, held to the generated classes."""
    params = bootstrap_pb2.BootstrapParams(instance_id="x", namespace="ns", log_level=-8, socket_dir="/s")
    params.extensions.add().value.CopyFrom(any_pb2.Any(type_url="t", value=b"\x01\x02"))
    fields = wire.fields(params.SerializeToString())
    assert (1, b"x") in fields and (2, b"ns") in fields and (9, b"/s") in fields
    assert (3, (1 << 64) - 8) in fields  # two's complement, as Go writes a negative enum
    answer = wire.field(1, 3) + wire.field(2, "unix:///a") + wire.field(3, "ttrpc")
    result = bootstrap_pb2.BootstrapResult.FromString(answer)
    assert (result.version, result.address, result.protocol) == (3, "unix:///a", "ttrpc")
    for bad in (b"\x0d\x00\x00\x00\x00", b"\x0a\x05ab", b"\x80"):  # fixed32, truncated, unterminated
        with pytest.raises(ValueError):
            wire.fields(bad)


def test_info_answers_runtime_info_with_the_features_and_caches_it(h):
    env = {**os.environ, "MRUN_SHIM_ROOT": os.path.join(h.tmp, "shim-state")}
    os.makedirs(env["MRUN_SHIM_ROOT"])
    with open(os.path.join(env["MRUN_SHIM_ROOT"], ".info-0123456789abcdef01234567"), "wb") as f:
        f.write(b"an answer for an installation that is gone")
    with open(os.path.join(env["MRUN_SHIM_ROOT"], ".info-notes"), "wb") as f:
        f.write(b"someone else's: not a name the cache gives")  # kept (MRUN_SHIM_ROOT may be any directory)
    first = subprocess.run([shim_binary(), "-info"], env=env, capture_output=True, stdin=subprocess.DEVNULL, timeout=30)
    assert first.returncode == 0 and not first.stderr, first.stderr
    info = types_pb2.RuntimeInfo.FromString(first.stdout)
    assert info.name == "io.containerd.mrun.v2" and info.version.version
    assert info.features.type_url == "types.containerd.io/opencontainers/runtime-spec/1/features/Features"
    features = json.loads(info.features.value)
    assert "user" in features["linux"]["namespaces"]
    assert features["linux"]["mountExtensions"]["idmap"]["enabled"] is True  # what Kubernetes gates on
    assert "wasm" in features["annotations"]["org.mrun.backends"]
    cached = [f for f in os.listdir(env["MRUN_SHIM_ROOT"]) if f.startswith(".info-") and f != ".info-notes"]
    assert len(cached) == 1 and os.path.exists(os.path.join(env["MRUN_SHIM_ROOT"], ".info-notes"))
    with open(os.path.join(env["MRUN_SHIM_ROOT"], cached[0]), "rb") as f:
        assert f.read() == first.stdout
    second = subprocess.run([shim_binary(), "-info"], env=env, capture_output=True, stdin=subprocess.DEVNULL)
    assert second.stdout == first.stdout


def test_start_answers_protocol_3_in_the_socket_dir_and_leaves_when_containerd_is_gone(h, socket_dir):
    """The BootstrapResult names version 3 and a socket in the directory containerd gave; the v3
    Task service answers; a daemon with a task waits through a dropped connection (containerd
    restarting), and one with nothing left exits when its last caller goes."""
    cid = h.cid("boot")
    bundle = h.bundle(["sleep", "600"])
    shim = BootShim(h, bundle, cid, socket_dir)
    try:
        assert (shim.result.version, shim.result.protocol) == (3, "ttrpc")
        assert os.path.dirname(shim.socket) == socket_dir
        with open(os.path.join(bundle, "address")) as f:
            assert f.read() == shim.result.address
        shim.call(TASK_V3, "Create", task_pb2.CreateTaskRequest(id=cid, bundle=bundle))
        shim.call(TASK_V3, "Start", task_pb2.StartRequest(id=cid))
        shim.client.close()  # containerd goes away under a running task
        time.sleep(0.5)
        assert running(shim.pid), "the shim left a running task when containerd disconnected"
        shim.client = ttrpc.Client(shim.socket)  # containerd is back
        shim.call(TASK_V3, "Kill", task_pb2.KillRequest(id=cid, signal=9))
        shim.call(TASK_V3, "Wait", task_pb2.WaitRequest(id=cid))
        shim.call(TASK_V3, "Delete", task_pb2.DeleteRequest(id=cid))
        shim.client.close()  # protocol 3: no Shutdown follows a Delete
        wait_gone(shim.pid, "the shim stayed after its last task was deleted and containerd left")
        assert not os.path.exists(shim.socket)
    finally:
        shim.kill()


def test_start_keeps_the_old_answer_for_containerd_1x(h):
    """1.6/1.7 send nothing, or the runtime options as an Any, on stdin: a bare address (protocol 2)."""
    cid = h.cid("legacy")
    bundle = h.bundle(["true"])
    env = {**os.environ, "MRUN_SHIM_ROOT": os.path.join(h.tmp, "shim-state")}
    options = any_pb2.Any(type_url="runtimeoptions.v1.Options", value=b"\x12\x04/cfg").SerializeToString()
    args = [shim_binary(), "-namespace", NAMESPACE, "-address", "/nonexistent", "-id", cid, "start"]
    out = subprocess.run(args, cwd=bundle, env=env, input=options, capture_output=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(b"unix:///run/mrun-shim/") and out.stdout.endswith(b".sock")
    client = ttrpc.Client(out.stdout.decode().removeprefix("unix://"))
    pid = task_pb2.ConnectResponse.FromString(
        client.call("containerd.task.v2.Task", "Connect", task_pb2.ConnectRequest(id=cid).SerializeToString())
    ).shim_pid
    client.call("containerd.task.v2.Task", "Shutdown", task_pb2.ShutdownRequest(id=cid).SerializeToString())
    client.close()
    wait_gone(pid, "the shim did not exit after Shutdown")


def test_a_relative_socket_dir_is_refused_in_one_line(h):
    cid = h.cid("reldir")
    params = bootstrap_pb2.BootstrapParams(instance_id=cid, namespace=NAMESPACE, socket_dir="run/s")
    args = [shim_binary(), "-namespace", NAMESPACE, "-address", "/x", "-id", cid, "start"]
    out = subprocess.run(args, cwd=h.bundle(["true"]), input=params.SerializeToString(), capture_output=True)
    assert out.returncode == 1
    lines = out.stderr.decode().strip().splitlines()
    assert lines == ["containerd-shim-mrun-v2: socket_dir 'run/s' is not an absolute path"]


def pod_config(hostname: str, pid_mode: int, userns: bytes = b"", sysctls: dict[str, str] | None = None
               ) -> any_pb2.Any:
    """CRI's runtime.v1.PodSandboxConfig, the fields mrun reads: hostname, the namespace modes,
    ``userns`` as the UserNamespace message (``userns_message``), and the pod's sysctls."""
    options = wire.field(1, 0) + wire.field(2, pid_mode) + wire.field(3, 0)
    if userns:
        options += wire.field(5, userns)
    entries = b"".join(wire.field(3, wire.field(1, k) + wire.field(2, v)) for k, v in (sysctls or {}).items())
    config = wire.field(2, hostname) + wire.field(8, wire.field(2, wire.field(1, options)) + entries)
    return any_pb2.Any(type_url="runtime.v1.PodSandboxConfig", value=config)


def ns(pid: int | str, kind: str) -> int:
    return os.stat(f"/proc/{pid}/ns/{kind}").st_ino


@pytest.fixture
def netns(tmp_path):
    """A network namespace kept by a bind mount, as CRI makes one for a pod: -> a pid inside it."""
    path = tmp_path / "netns"
    path.touch()
    subprocess.run(["unshare", f"--net={path}", "true"], check=True)
    keeper = subprocess.Popen(["nsenter", f"--net={path}", "sleep", "600"])
    yield keeper.pid, str(path)
    keeper.kill()
    keeper.wait()
    subprocess.run(["umount", str(path)], check=True)


def test_sandbox_api_holds_the_pods_namespaces_without_a_pause_container(h, socket_dir, netns):
    sandbox_id = h.cid("pod")
    bundle = h.bundle(["true"])
    netns, netns_path = netns
    shim = BootShim(h, bundle, sandbox_id, socket_dir)
    try:
        shim.call(SANDBOX, "CreateSandbox", sandbox_pb2.CreateSandboxRequest(
            sandbox_id=sandbox_id, bundle_path=bundle, options=pod_config("mrunpod", 0), netns_path=netns_path
        ))
        with pytest.raises(ttrpc.TTRPCError) as e:
            shim.call(SANDBOX, "CreateSandbox", sandbox_pb2.CreateSandboxRequest(sandbox_id=sandbox_id))
        assert e.value.code == ttrpc.ALREADY_EXISTS
        started = sandbox_pb2.StartSandboxResponse.FromString(
            shim.call(SANDBOX, "StartSandbox", sandbox_pb2.StartSandboxRequest(sandbox_id=sandbox_id))
        )
        holder = started.pid
        spec = json.loads(started.spec.value)  # what CRI keeps as the pod's spec: where to join it
        kinds = {"network": "net", "ipc": "ipc", "uts": "uts", "pid": "pid"}
        assert {n["type"]: n["path"] for n in spec["linux"]["namespaces"]} == {
            kind: f"/proc/{holder}/ns/{name}" for kind, name in kinds.items()
        }
        for kind in ("uts", "ipc", "pid", "net"):
            assert ns(holder, kind) != ns("self", kind), f"the pod has the host's {kind} namespace"
        assert ns(holder, "net") == ns(netns, "net")  # the pod's network namespace, made by containerd
        with open(f"/proc/{holder}/stat") as f:
            assert int(f.read().rsplit(")", 1)[1].split()[1]) == shim.pid  # reparented to the subreaper
        hostname = subprocess.run(["nsenter", "-t", str(holder), "-u", "hostname"], capture_output=True, text=True)
        assert hostname.stdout.strip() == "mrunpod"
        # powerless: a process of the pod that may ptrace its PID 1 could make it run its code, and
        # with the node's capabilities that was the node's root (a disk's node made and mounted)
        fields = dict(line.split(":", 1) for line in open(f"/proc/{holder}/status").read().splitlines())
        for field in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
            assert int(fields[field], 16) == 0, (field, fields[field])
        assert fields["NoNewPrivs"].strip() == "1" and fields["Uid"].split()[:3] == ["65534"] * 3, fields
        status = sandbox_pb2.SandboxStatusResponse.FromString(
            shim.call(SANDBOX, "SandboxStatus", sandbox_pb2.SandboxStatusRequest(sandbox_id=sandbox_id))
        )
        assert (status.pid, status.state) == (holder, "SANDBOX_READY")
        platform = sandbox_pb2.PlatformResponse.FromString(
            shim.call(SANDBOX, "Platform", sandbox_pb2.PlatformRequest(sandbox_id=sandbox_id))
        ).platform
        assert platform.os == "linux" and platform.architecture
        shim.call(SANDBOX, "PingSandbox", sandbox_pb2.PingRequest(sandbox_id=sandbox_id))
        with pytest.raises(ttrpc.TTRPCError) as e:
            shim.call(SANDBOX, "PingSandbox", sandbox_pb2.PingRequest(sandbox_id="nope"))
        assert e.value.code == ttrpc.NOT_FOUND
        shim.call(SANDBOX, "StopSandbox", sandbox_pb2.StopSandboxRequest(sandbox_id=sandbox_id, timeout_secs=5))
        assert not running(holder)
        waited = sandbox_pb2.WaitSandboxResponse.FromString(
            shim.call(SANDBOX, "WaitSandbox", sandbox_pb2.WaitSandboxRequest(sandbox_id=sandbox_id))
        )
        assert waited.exit_status == 0 and waited.exited_at.seconds > 0  # SIGTERM handled: a clean exit
        status = sandbox_pb2.SandboxStatusResponse.FromString(
            shim.call(SANDBOX, "SandboxStatus", sandbox_pb2.SandboxStatusRequest(sandbox_id=sandbox_id))
        )
        assert status.state == "SANDBOX_NOTREADY"
        shim.call(SANDBOX, "ShutdownSandbox", sandbox_pb2.ShutdownSandboxRequest(sandbox_id=sandbox_id))
        wait_gone(shim.pid, "the shim stayed after ShutdownSandbox with no task left")
        assert not os.path.exists(shim.socket)
    finally:
        shim.kill()


def test_a_killed_shim_leaves_no_pod_holder_behind(h, socket_dir):
    sandbox_id = h.cid("orphan")
    bundle = h.bundle(["true"])
    shim = BootShim(h, bundle, sandbox_id, socket_dir)
    try:
        shim.call(SANDBOX, "CreateSandbox", sandbox_pb2.CreateSandboxRequest(sandbox_id=sandbox_id, bundle_path=bundle))
        holder = sandbox_pb2.StartSandboxResponse.FromString(
            shim.call(SANDBOX, "StartSandbox", sandbox_pb2.StartSandboxRequest(sandbox_id=sandbox_id))
        ).pid
        shm = os.path.join(bundle, "pod-files", "shm")
        assert os.path.ismount(shm), "the shim mounted no /dev/shm for the pod"
        os.kill(shim.pid, 9)
        wait_gone(holder, "the pod's holder outlived its killed shim")
    finally:
        shim.kill()
        # containerd's cleanup of a dead shim: its socket and the pod's /dev/shm go
        subprocess.run([shim_binary(), "-namespace", NAMESPACE, "-address", "/nonexistent", "-id", sandbox_id,
                        "-bundle", bundle, "delete"], cwd=bundle, env=shim.env, capture_output=True, timeout=30)
    assert not os.path.ismount(shm) and not os.path.exists(os.path.join(socket_dir, os.path.basename(shim.socket)))


def test_a_pod_s_files_are_readable_in_its_containers_whatever_the_shim_s_umask(h):
    """A shim pod's /etc/resolv.conf, /etc/hosts and /etc/hostname are bind mounted into each of
    its containers, whose user may be any: made under a shim's umask of 077 they were its root's
    alone, and a container running as uid 1000 could resolve no name."""
    import stat

    from mrun.shims import pod_files

    bundle = h.bundle(["true"])
    old = os.umask(0o077)
    try:
        files = pod_files.make(bundle, "pod", (["10.96.0.10"], [], []), node_ipc=False)
    finally:
        os.umask(old)
    try:
        for destination in ("/etc/resolv.conf", "/etc/hosts", "/etc/hostname"):
            assert stat.S_IMODE(os.stat(files[destination]).st_mode) == 0o644, destination
        assert stat.S_IMODE(os.stat(os.path.dirname(files["/etc/hosts"])).st_mode) == 0o711
        assert stat.S_IMODE(os.stat(files["/dev/shm"]).st_mode) == 0o1777 and os.path.ismount(files["/dev/shm"])
        assert open(files["/etc/resolv.conf"]).read() == "nameserver 10.96.0.10\n"
    finally:
        pod_files.release(bundle)
    assert not os.path.ismount(files["/dev/shm"])


def test_a_host_pid_pod_keeps_the_host_pid_namespace(h, socket_dir):
    sandbox_id = h.cid("hostpid")
    bundle = h.bundle(["true"])
    shim = BootShim(h, bundle, sandbox_id, socket_dir)
    try:
        holder = shim.start_pod(sandbox_id, bundle, pod_config("p", 2)).pid
        assert ns(holder, "pid") == ns("self", "pid") and ns(holder, "uts") != ns("self", "uts")
        assert ns(holder, "net") != ns("self", "net")  # no netns from containerd: one of its own, not the node's
        shim.shut_down_pod(sandbox_id, holder)
    finally:
        shim.kill()


def userns_message(mode: int, uids: list[tuple[int, int, int]], gids: list[tuple[int, int, int]]) -> bytes:
    """runtime.v1.UserNamespace: mode 1, uids 2, gids 3, each an IDMapping (host_id 1, container_id
    2, length 3), encoded as kubelet's protobuf does (a zero left out)."""
    def mapping(host: int, container: int, length: int) -> bytes:
        return b"".join(wire.field(n, v) for n, v in ((1, host), (2, container), (3, length)) if v)

    body = wire.field(1, mode) if mode else b""
    body += b"".join(wire.field(2, mapping(*m)) for m in uids) + b"".join(wire.field(3, mapping(*m)) for m in gids)
    return body


def test_a_user_namespaced_pod_s_holder_owns_the_pod_s_namespaces(h, socket_dir):
    """hostUsers: false with sandboxer = 'shim': the holder is in a user namespace with the pod's
    mappings, which owns the IPC and UTS namespaces the containers join; StartSandbox's spec names
    it. A user namespace the shim cannot give a pod (CONTAINER mode, mappings missing, a mapping's
    number no uid_map takes) is refused in one line, never taken for the node's. The pod's sysctls
    are set in them: an IPC one is the writer's only if it is the pod's root (the kernel compares
    uids there, not capabilities), which the holder, joining the user namespace as the node's
    root, was not: StartSandbox failed with "Permission denied"."""
    sandbox_id = h.cid("userns")
    bundle = h.bundle(["true"])
    shim = BootShim(h, bundle, sandbox_id, socket_dir)
    try:
        gids = wire.field(3, wire.field(1, 300000) + wire.field(3, 65536))
        for message, why in ((userns_message(1, [(300000, 0, 65536)], [(300000, 0, 65536)]), "mode 1"),
                             (userns_message(0, [(300000, 0, 65536)], []), "0 gid"),
                             # numbers no uid_map takes: an internal error ("invalid literal for int()")
                             (wire.field(2, wire.field(1, b"300000") + wire.field(3, 65536)) + gids,
                              "uids[0].host_id: b'300000' is not a uint32"),
                             (userns_message(0, [(300000, 0, 2**40)], [(300000, 0, 65536)]),
                              f"uids[0].length: {2**40} is not a uint32")):
            options = pod_config("p", 0, message)
            with pytest.raises(ttrpc.TTRPCError) as e:
                shim.call(SANDBOX, "CreateSandbox", sandbox_pb2.CreateSandboxRequest(
                    sandbox_id=sandbox_id, bundle_path=bundle, options=options))
            assert e.value.code == ttrpc.INVALID_ARGUMENT and why in e.value.message, e.value.message
        maps = [(300000, 0, 65536)]
        sysctls = {"kernel.shm_rmid_forced": "1", "net.ipv4.ip_unprivileged_port_start": "77"}
        started = shim.start_pod(sandbox_id, bundle, pod_config("p", 0, userns_message(0, maps, maps), sysctls))
        holder = started.pid
        for key, value in sysctls.items():
            kind = "--net" if key.startswith("net.") else "--ipc"
            seen = subprocess.run(["nsenter", f"{kind}=/proc/{holder}/ns/{kind[2:]}", "cat",
                                   f"/proc/sys/{key.replace('.', '/')}"], capture_output=True, text=True, check=True)
            assert seen.stdout.strip() == value, key
        assert open(f"/proc/{holder}/uid_map").read().split() == ["0", "300000", "65536"]
        assert open(f"/proc/{holder}/gid_map").read().split() == ["0", "300000", "65536"]
        spec = json.loads(started.spec.value)
        assert {"type": "user", "path": f"/proc/{holder}/ns/user"} in spec["linux"]["namespaces"]
        assert spec["linux"]["uidMappings"] == [{"containerID": 0, "hostID": 300000, "size": 65536}]
        owner = ns(holder, "user")
        assert owner != ns("self", "user")
        for kind in ("uts", "ipc"):  # owned by the pod's user namespace: ioctl NS_GET_USERNS
            fd = os.open(f"/proc/{holder}/ns/{kind}", os.O_RDONLY)
            try:
                owning = fcntl.ioctl(fd, 0xB701)
                assert os.fstat(owning).st_ino == owner, kind
                os.close(owning)
            finally:
                os.close(fd)
        shim.shut_down_pod(sandbox_id, holder)
    finally:
        shim.kill()


@pytest.mark.parametrize("how", ["config_body", "runc_binary_name"])
def test_runtime_options_hand_the_task_to_another_oci_runtime(h, socket_dir, how):
    """The operator's runtime options (CRI's `options` table, or runc's BinaryName) choose the
    OCI runtime the oci backend hands the container to: here runc, through the same shim."""
    from conftest import require

    require("runc", "runc")
    cid = h.cid("opts")
    bundle = h.bundle(["sleep", "600"])
    if how == "config_body":
        options = any_pb2.Any(type_url="runtimeoptions.v1.Options", value=wire.field(3, 'oci_runtime = "runc"\n'))
    else:
        options = any_pb2.Any(type_url="containerd.runc.v1.Options", value=wire.field(6, "/usr/sbin/runc"))
    shim = BootShim(h, bundle, cid, socket_dir)
    try:
        pid = task_pb2.CreateTaskResponse.FromString(
            shim.call(TASK_V3, "Create", task_pb2.CreateTaskRequest(id=cid, bundle=bundle, options=options))
        ).pid
        runc_state = os.path.join(h.tmp, "shim-state", NAMESPACE, ".oci", "runc", cid)
        assert os.path.isdir(runc_state), "runc does not hold the task"
        shim.call(TASK_V3, "Start", task_pb2.StartRequest(id=cid))
        shim.call(TASK_V3, "Kill", task_pb2.KillRequest(id=cid, signal=9))
        waited = task_pb2.WaitResponse.FromString(shim.call(TASK_V3, "Wait", task_pb2.WaitRequest(id=cid)))
        assert waited.exit_status == 137 and pid > 0
        shim.call(TASK_V3, "Delete", task_pb2.DeleteRequest(id=cid))
        assert not os.path.exists(runc_state)
        shim.client.close()
        wait_gone(shim.pid, "the shim stayed after its last task")
    finally:
        shim.kill()


def test_a_shim_nobody_calls_goes_away(h, socket_dir):
    """containerd died between `start` and its first call: the daemon does not wait forever."""
    cid = h.cid("uncalled")
    params = bootstrap_pb2.BootstrapParams(instance_id=cid, namespace=NAMESPACE, socket_dir=socket_dir)
    env = {**os.environ, "MRUN_SHIM_ROOT": os.path.join(h.tmp, "shim-state"), "MRUN_SHIM_UNCALLED_EXIT": "1"}
    args = [shim_binary(), "-namespace", NAMESPACE, "-address", "/x", "-id", cid, "start"]
    out = subprocess.run(args, cwd=h.bundle(["true"]), env=env, input=params.SerializeToString(), capture_output=True)
    sock = bootstrap_pb2.BootstrapResult.FromString(out.stdout).address.removeprefix("unix://")
    assert os.path.exists(sock)
    deadline = time.monotonic() + 15
    while os.path.exists(sock):  # it removes its socket as it exits
        assert time.monotonic() < deadline, "an uncalled shim is still there"
        time.sleep(0.1)

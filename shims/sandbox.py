"""containerd.runtime.sandbox.v1.Sandbox: the shim is the pod (containerd 2.x, ``sandboxer = 'shim'``).

containerd starts this shim for the pod, then calls CreateSandbox (the pod's config, its network
namespace, which containerd keeps), StartSandbox (answered with the pid whose namespaces the
pod's containers join: the holder of ``pod.py``, not a pause container), and later StopSandbox,
WaitSandbox and ShutdownSandbox. The pod's containers are tasks on the same shim (protocol 3).
The shim stays while the pod or any task remains (``TaskService.containerd_gone``).
"""

from __future__ import annotations

import json
import os
import platform
import signal
import sys
import threading
import time

from google.protobuf import any_pb2, timestamp_pb2
from mrun import OCI_VERSION
from mrun import annotations as ann
from mrun.errors import InvalidSpec
from mrun.shims import bundle_dir, pod_files, wire
from mrun.shims.events import now
from mrun.shims.proto import sandbox_pb2, types_pb2
from mrun.shims.service import TaskService
from mrun.shims.ttrpc import (
    ALREADY_EXISTS,
    FAILED_PRECONDITION,
    INVALID_ARGUMENT,
    NOT_FOUND,
    UNKNOWN,
    Server,
    TTRPCError,
)

SERVICE = "containerd.runtime.sandbox.v1.Sandbox"
SPEC_URL = "types.containerd.io/opencontainers/runtime-spec/1/Spec"
# CRI's NamespaceMode (k8s.io/cri-api runtime.v1): the pod's own, each container's, the node's
POD, CONTAINER, NODE = 0, 1, 2
ARCHITECTURES = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le", "s390x": "s390x"}


class Sandbox:
    def __init__(self, req: sandbox_pb2.CreateSandboxRequest) -> None:
        self.id, self.netns = req.sandbox_id, req.netns_path
        self.bundle = bundle_dir.checked(req.bundle_path, "bundle_path", required=False)
        self.hostname, self.modes, self.userns, self.sysctls = pod_config(req.options.type_url, req.options.value)
        _check_sysctls(self.sysctls, self.modes, self.netns)
        self.dns = dns_config(req.options.type_url, req.options.value)
        self.files: dict[str, str] = {}  # the pod's /etc/hostname, ... (pod_files.make), once started
        self.annotations = dict(req.annotations)
        self.pid = 0
        self.created_at = now()
        self.exit_status = 0
        self.exited_at = timestamp_pb2.Timestamp()
        self.exited = threading.Event()
        self.keeper = -1  # the write end of the holder's pipe (StartSandbox): closed, the holder leaves
        self.keeper_lock = threading.Lock()  # the reaper's thread and ShutdownSandbox both let go

    def let_go(self) -> None:
        with self.keeper_lock:
            fd, self.keeper = self.keeper, -1
        if fd >= 0:
            os.close(fd)

    def spec(self) -> any_pb2.Any:
        """The pod as an OCI spec (CRI stores it as the sandbox's): the namespaces its containers join."""
        namespaces = []
        for kind, mode in (
            ("network", self.modes["network"]),
            ("ipc", self.modes["ipc"]),
            ("uts", self.modes["network"]),
            ("pid", self.modes["pid"]),
        ):
            if (mode == POD) if kind == "pid" else (mode != NODE):
                name = "net" if kind == "network" else kind
                namespaces.append({"type": kind, "path": f"/proc/{self.pid}/ns/{name}"})
        if self.userns:
            namespaces.append({"type": "user", "path": f"/proc/{self.pid}/ns/user"})
        spec = {
            "ociVersion": OCI_VERSION,
            "hostname": self.hostname,
            "annotations": {**self.annotations, ann.CRI_SANDBOX_ID: self.id},
            "linux": {"namespaces": namespaces},
        }
        if self.userns:
            spec["linux"].update(uidMappings=self.userns["uids"], gidMappings=self.userns["gids"])
        return any_pb2.Any(type_url=SPEC_URL, value=json.dumps(spec).encode())

    @property
    def state(self) -> str:
        if self.exited.is_set():
            return "SANDBOX_NOTREADY"
        return "SANDBOX_READY" if self.pid else "SANDBOX_NOTREADY"


PodConfig = tuple[str, dict[str, int], dict[str, list[dict[str, int]]], dict[str, str]]


def pod_config(type_url: str, value: bytes) -> PodConfig:
    """(hostname, {network, pid, ipc: NamespaceMode}, the pod's user namespace mappings or {}, its
    sysctls) from CRI's PodSandboxConfig, read by field number (runtime.v1: hostname 2, linux 8 ->
    sysctls 3 (map: key 1, value 2), security_context 2 -> namespace_options 1 -> network 1, pid 2,
    ipc 3, userns_options 5 -> mode 1, uids 2, gids 3 -> IDMapping host_id 1, container_id 2,
    length 3). Anything else (ctr, no options) is a pod of its own namespaces, in the node's user
    namespace, without sysctls."""
    modes = {"network": POD, "pid": POD, "ipc": POD}
    if not type_url.endswith("PodSandboxConfig"):
        return "", modes, {}, {}
    try:
        config = dict(wire.fields(value))
        hostname = config.get(2, b"")
        linux_fields = wire.fields(_bytes(config.get(8)))
        linux = dict(linux_fields)
        security = dict(wire.fields(_bytes(linux.get(2))))
        options = dict(wire.fields(_bytes(security.get(1))))
        entries = [dict(wire.fields(v)) for n, v in linux_fields if n == 3 and isinstance(v, bytes)]
    except ValueError:
        return "", modes, {}, {}
    sysctls = {_text(e.get(1)): _text(e.get(2)) for e in entries}
    userns = _userns(_bytes(options.get(5)))  # refused, never read as the node's
    for number, name in ((1, "network"), (2, "pid"), (3, "ipc")):
        mode = options.get(number, POD)
        modes[name] = mode if isinstance(mode, int) else POD
    return _text(hostname), modes, userns, sysctls


def dns_config(type_url: str, value: bytes) -> tuple[list[str], list[str], list[str]] | None:
    """kubelet's DNSConfig from CRI's PodSandboxConfig (dns_config 4 -> servers 1, searches 2,
    options 3: repeated strings), or None where it names none (CRI then gives the node's file)."""
    if not type_url.endswith("PodSandboxConfig"):
        return None
    try:
        found = [v for n, v in wire.fields(value) if n == 4 and isinstance(v, bytes)]
        if not found:
            return None
        parsed = wire.fields(found[-1])
    except ValueError:
        return None
    lists: tuple[list[str], list[str], list[str]] = ([], [], [])
    for number, entry in parsed:
        if number in (1, 2, 3) and isinstance(entry, bytes):
            lists[number - 1].append(_text(entry))
    return lists


def _text(value: object) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else ""


def _check_sysctls(sysctls: dict[str, str], modes: dict[str, int], netns: str) -> None:
    """The pod's sysctls by the rule a container's follow (spec.check_sysctls), for the namespaces
    its holder has: net.* in a network namespace that is not the node's, IPC ones in its own IPC
    namespace. A pause container refused kernel.core_pattern; the shim's pod took it silently."""
    if not sysctls:
        return
    from mrun.spec import Spec, check_sysctls

    namespaces: list[dict[str, str]] = []
    if modes["network"] != NODE:
        namespaces += [{"type": "network", "path": netns}, {"type": "uts"}]
    if modes["ipc"] != NODE:
        namespaces.append({"type": "ipc"})
    check_sysctls(Spec({"linux": {"namespaces": namespaces, "sysctl": sysctls}}, ""))


def _userns(message: bytes) -> dict[str, list[dict[str, int]]]:
    """CRI's UserNamespace: {"uids": [...], "gids": [...]} in the OCI form, for a pod of its own
    (mode POD with mappings); {} for the node's (NODE, or no message: kubelets before user
    namespaces). Anything else (CONTAINER, TARGET, POD without both mappings) is refused."""
    if not message:
        return {}
    maps: dict[str, list[dict[str, int]]] = {"uids": [], "gids": []}
    mode = POD  # proto3 leaves a zero out: a message without a mode is POD's
    try:
        parsed = wire.fields(message)
        entries = [(number, value, dict(wire.fields(value)) if number in (2, 3) and isinstance(value, bytes) else {})
                   for number, value in parsed]
    except ValueError:
        raise InvalidSpec("userns_options: not a CRI UserNamespace message") from None
    for number, value, entry in entries:
        if number == 1 and isinstance(value, int):
            mode = value
        elif number in (2, 3) and isinstance(value, bytes):
            kind = "uids" if number == 2 else "gids"
            maps[kind].append({key: _id(entry.get(n, 0), f"userns_options.{kind}[{len(maps[kind])}].{name}")
                               for key, n, name in (("containerID", 2, "container_id"), ("hostID", 1, "host_id"),
                                                    ("size", 3, "length"))})
    if mode == NODE:
        return {}
    if mode != POD or not maps["uids"] or not maps["gids"]:
        raise InvalidSpec(f"userns_options: mode {mode} with {len(maps['uids'])} uid and {len(maps['gids'])} gid "
                          "mappings: the shim gives a pod a user namespace of its own (mode POD), with both")
    return maps


def _id(value: object, where: str) -> int:
    """An IDMapping's number as the kernel's uid_map takes it (a uint32); CRI's are uint32 too."""
    if not isinstance(value, int) or value > 0xFFFFFFFF:
        raise InvalidSpec(f"{where}: {value!r} is not a uint32")
    return value


def _bytes(value: object) -> bytes:
    return value if isinstance(value, bytes) else b""


class SandboxService:
    def __init__(self, tasks: TaskService) -> None:
        self.tasks = tasks

    def register(self, server: Server) -> None:
        for name in (
            "CreateSandbox",
            "StartSandbox",
            "Platform",
            "StopSandbox",
            "WaitSandbox",
            "SandboxStatus",
            "PingSandbox",
            "ShutdownSandbox",
            "SandboxMetrics",
        ):
            server.register(SERVICE, name, getattr(self, name.lower()))

    def _sandbox(self, sandbox_id: str) -> Sandbox:
        sandbox = self.tasks.sandboxes.get(sandbox_id)
        if not isinstance(sandbox, Sandbox):
            raise TTRPCError(NOT_FOUND, f"sandbox {sandbox_id}: not found")
        return sandbox

    def createsandbox(self, payload: bytes, _req: object) -> bytes:
        req = sandbox_pb2.CreateSandboxRequest.FromString(payload)
        with self.tasks.lock:
            if req.sandbox_id in self.tasks.sandboxes:
                raise TTRPCError(ALREADY_EXISTS, f"sandbox {req.sandbox_id}: already exists")
            try:
                self.tasks.sandboxes[req.sandbox_id] = Sandbox(req)
            except InvalidSpec as e:
                raise TTRPCError(INVALID_ARGUMENT, f"sandbox {req.sandbox_id}: {e}")
        return b""

    def startsandbox(self, payload: bytes, _req: object) -> bytes:
        sandbox = self._sandbox(sandbox_pb2.StartSandboxRequest.FromString(payload).sandbox_id)
        if sandbox.pid:
            raise TTRPCError(ALREADY_EXISTS, f"sandbox {sandbox.id}: already started")
        pod = {
            "hostname": sandbox.hostname if sandbox.modes["network"] != NODE else "",
            "netns": sandbox.netns if sandbox.modes["network"] != NODE else "",
            "new_net": sandbox.modes["network"] != NODE,
            "new_uts": sandbox.modes["network"] != NODE,
            "new_ipc": sandbox.modes["ipc"] != NODE,
            "new_pid": sandbox.modes["pid"] == POD,
            "userns": sandbox.userns,
            "sysctls": sandbox.sysctls,
        }
        asked = time.monotonic()
        # The holder learns that the shim is gone from this pipe's end (EOF), whose write end only
        # this daemon holds: a pidfd of the shim, which it held before, was the shim's to anyone
        # who could open /proc/<holder>/fd (a container of the pod with CAP_SYS_PTRACE), with
        # pidfd_getfd the shim's descriptors with it.
        if sandbox.bundle:
            try:
                sandbox.files = pod_files.make(sandbox.bundle, sandbox.hostname, sandbox.dns,
                                               sandbox.modes["ipc"] == NODE)
            except OSError as e:
                self._drop_files(sandbox)
                raise TTRPCError(UNKNOWN, f"sandbox {sandbox.id}: the pod's files in {sandbox.bundle}: {e}")
        keeper, sandbox.keeper = os.pipe2(os.O_CLOEXEC)
        try:
            with self.tasks.spawner_lock:
                answer = self.tasks._ask_helper({"pod": pod}, [keeper])
        finally:
            os.close(keeper)
        if "error" in answer:
            sandbox.let_go()
            self._drop_files(sandbox)
            raise TTRPCError(UNKNOWN, f"sandbox {sandbox.id}: {answer['error']}")
        pid = answer["pid"]
        with self.tasks.lock:
            sandbox.pid = pid
            early = self.tasks._early_exit(pid, asked)
            if early is None:
                self.tasks.watchers[pid] = lambda status: self._exited(sandbox, status)
        if early is not None:
            self._exited(sandbox, early)
        return sandbox_pb2.StartSandboxResponse(
            pid=pid, created_at=sandbox.created_at, spec=sandbox.spec()
        ).SerializeToString()

    @staticmethod
    def _drop_files(sandbox: Sandbox) -> None:
        """A start that failed leaves no pod files (a retry makes them anew) and no mount."""
        import shutil

        sandbox.files = {}
        pod_files.release(sandbox.bundle)
        shutil.rmtree(os.path.join(sandbox.bundle, pod_files.DIRECTORY), ignore_errors=True)

    def _exited(self, sandbox: Sandbox, status: int) -> None:
        from mrun.kernel.proc import exit_code

        sandbox.let_go()
        sandbox.exit_status = exit_code(status)
        sandbox.exited_at = now()
        sandbox.exited.set()

    def platform(self, payload: bytes, _req: object) -> bytes:
        self._sandbox(sandbox_pb2.PlatformRequest.FromString(payload).sandbox_id)
        machine = platform.machine()
        found = types_pb2.Platform(os="linux", architecture=ARCHITECTURES.get(machine, machine))
        return sandbox_pb2.PlatformResponse(platform=found).SerializeToString()

    def stopsandbox(self, payload: bytes, _req: object) -> bytes:
        """SIGTERM to the holder, SIGKILL after the timeout (containerd's default: at once)."""
        req = sandbox_pb2.StopSandboxRequest.FromString(payload)
        sandbox = self._sandbox(req.sandbox_id)
        if sandbox.pid and not sandbox.exited.is_set():
            self._signal(sandbox, signal.SIGTERM)
            if not sandbox.exited.wait(req.timeout_secs or 2):
                self._signal(sandbox, signal.SIGKILL)
                sandbox.exited.wait(10)
        elif not sandbox.pid:
            sandbox.exited.set()
        if sandbox.bundle:  # as CRI's StopPodSandbox unmounts its pod's /dev/shm
            pod_files.release(sandbox.bundle)
        return b""

    def _signal(self, sandbox: Sandbox, signo: int) -> None:
        """Only the holder we forked and have not yet reaped: its pid cannot have been reused. Sent
        under the lock the reaper reaps under (TaskService.reap_forever): looked at, then sent
        outside it, the holder could be reaped in between and its number taken."""
        with self.tasks.lock:
            if self.tasks.watchers.get(sandbox.pid) is not None:
                try:
                    os.kill(sandbox.pid, signo)
                except ProcessLookupError:
                    pass

    def waitsandbox(self, payload: bytes, _req: object) -> bytes:
        sandbox = self._sandbox(sandbox_pb2.WaitSandboxRequest.FromString(payload).sandbox_id)
        sandbox.exited.wait()
        return sandbox_pb2.WaitSandboxResponse(
            exit_status=sandbox.exit_status, exited_at=sandbox.exited_at
        ).SerializeToString()

    def sandboxstatus(self, payload: bytes, _req: object) -> bytes:
        sandbox = self._sandbox(sandbox_pb2.SandboxStatusRequest.FromString(payload).sandbox_id)
        info = {"netns": sandbox.netns, "holder": "mrun shim (no pause container)"}
        return sandbox_pb2.SandboxStatusResponse(
            sandbox_id=sandbox.id,
            pid=sandbox.pid,
            state=sandbox.state,
            info=info,
            created_at=sandbox.created_at,
            exited_at=sandbox.exited_at,
        ).SerializeToString()

    def pingsandbox(self, payload: bytes, _req: object) -> bytes:
        self._sandbox(sandbox_pb2.PingRequest.FromString(payload).sandbox_id)
        return b""

    def shutdownsandbox(self, payload: bytes, _req: object) -> bytes:
        """The pod is gone: stop the holder if containerd did not, forget it, and exit once no
        task remains (containerd closes the connection next)."""
        sandbox_id = sandbox_pb2.ShutdownSandboxRequest.FromString(payload).sandbox_id
        sandbox = self._sandbox(sandbox_id)
        if sandbox.pid and not sandbox.exited.is_set():
            self._signal(sandbox, signal.SIGKILL)
            sandbox.exited.wait(10)
        if not sandbox.exited.is_set():  # never started: a WaitSandbox must not block forever
            sandbox.exited_at = now()
            sandbox.exited.set()
        sandbox.let_go()
        if sandbox.bundle:
            pod_files.release(sandbox.bundle)
        with self.tasks.lock:
            self.tasks.sandboxes.pop(sandbox_id, None)
            idle = not self.tasks.tasks and not self.tasks.sandboxes
        if idle:
            print(f"mrun shim: sandbox {sandbox_id} shut down; no task left", file=sys.stderr)
            self.tasks.shut_down()
        return b""

    def sandboxmetrics(self, payload: bytes, _req: object) -> bytes:
        sandbox = self._sandbox(sandbox_pb2.SandboxMetricsRequest.FromString(payload).sandbox_id)
        if not sandbox.pid or sandbox.exited.is_set():
            raise TTRPCError(FAILED_PRECONDITION, f"sandbox {sandbox.id}: not running")
        return sandbox_pb2.SandboxMetricsResponse(
            metrics=sandbox_pb2.Metric(timestamp=now(), id=sandbox.id)
        ).SerializeToString()

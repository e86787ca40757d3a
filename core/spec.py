"""Load and validate an OCI runtime-spec ``config.json`` (1.0 – 1.2).

The raw document is kept as parsed, unknown fields included, so nothing a user or another
tool wrote is lost; validation only checks the fields mrun acts on and names the exact field
path of the first problem (``linux.namespaces[2].type: unknown namespace "foo"``).
"""

from __future__ import annotations

import os

from mrun import jsonio
from mrun.errors import InvalidSpec
from mrun.schema import BOOL, DEV_MAJOR_MAX, DEV_MINOR_MAX, INT, MODE, OOM, STR, U32, UINT, check
from mrun.units import decimal

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


MAX_ID = (1 << 31) - 1  # the largest uid or gid runc accepts

NAMESPACE_TYPES = ("pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time")
HOOK_NAMES = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")
CAP_SETS = ("bounding", "effective", "inheritable", "permitted", "ambient")

_INT, _UINT, _STR, _BOOL = INT, UINT, STR, BOOL
_U32, _MODE, _OOM = U32, MODE, OOM
_ID_MAP = {"containerID!": _U32, "hostID!": _U32, "size!": _U32}
_HOOK = {"path!": _STR, "args": ("list", _STR), "env": ("list", _STR), "timeout": _INT}
_DEVICE_RULE = {"allow": _BOOL, "type": _STR, "major": _INT, "minor": _INT, "access": _STR}
_THROTTLE = ("list", {"major!": _INT, "minor!": _INT, "rate!": _UINT})
_RESOURCES = {
    "devices": ("list", _DEVICE_RULE),
    "memory": {
        "limit": _INT,
        "reservation": _INT,
        "swap": _INT,
        "kernel": _INT,
        "kernelTCP": _INT,
        "swappiness": _UINT,
        "disableOOMKiller": _BOOL,
        "useHierarchy": _BOOL,
        "checkBeforeUpdate": _BOOL,
    },
    "cpu": {
        "shares": _UINT,
        "quota": _INT,
        "burst": _UINT,
        "period": _UINT,
        "realtimeRuntime": _INT,
        "realtimePeriod": _UINT,
        "cpus": _STR,
        "mems": _STR,
        "idle": _INT,
    },
    "pids": {"limit": _INT},
    "rdma": ("map", {"hcaHandles": _U32, "hcaObjects": _U32}),
    "blockIO": {
        "weight": _UINT,
        "leafWeight": _UINT,
        "weightDevice": ("list", {"major!": _INT, "minor!": _INT, "weight": _UINT, "leafWeight": _UINT}),
        "throttleReadBpsDevice": _THROTTLE,
        "throttleWriteBpsDevice": _THROTTLE,
        "throttleReadIOPSDevice": _THROTTLE,
        "throttleWriteIOPSDevice": _THROTTLE,
    },
    "hugepageLimits": ("list", {"pageSize!": _STR, "limit!": _UINT}),
    "network": {"classID": _U32, "priorities": ("list", {"name!": _STR, "priority!": _U32})},
    "unified": ("map", _STR),
}
_PROCESS = {
    "terminal": _BOOL,
    # uid/gid and the console size may be left out: runc takes Go's zero values, and so do we.
    "consoleSize": {"height": _U32, "width": _U32},
    "user": {"uid": _U32, "gid": _U32, "umask": _MODE, "additionalGids": ("list", _U32), "username": _STR},
    "args": ("list", _STR),
    "commandLine": _STR,
    "env": ("list", _STR),
    "cwd": _STR,
    "capabilities": {name: ("list", _STR) for name in CAP_SETS},
    "rlimits": ("list", {"type!": _STR, "hard!": _UINT, "soft!": _UINT}),
    "noNewPrivileges": _BOOL,
    "apparmorProfile": _STR,
    "oomScoreAdj": _OOM,
    "selinuxLabel": _STR,
    "scheduler": {"policy!": _STR, "nice": _INT, "priority": _INT, "flags": ("list", _STR), "runtime": _UINT,
                  "deadline": _UINT, "period": _UINT},
    "ioPriority": {"class!": _STR, "priority": _INT},
    "execCPUAffinity": {"initial": _STR, "final": _STR},
}
_SECCOMP = {
    "defaultAction!": _STR,
    "defaultErrnoRet": _UINT,
    "architectures": ("list", _STR),
    "flags": ("list", _STR),
    "listenerPath": _STR,
    "listenerMetadata": _STR,
    "syscalls": (
        "list",
        {
            "names!": ("list", _STR),
            "action!": _STR,
            "errnoRet": _UINT,
            "args": ("list", {"index!": _UINT, "value!": _UINT, "valueTwo": _UINT, "op!": _STR}),
        },
    ),
}
SCHEMA: dict[str, Any] = {
    "ociVersion": _STR,
    "root": {"path!": _STR, "readonly": _BOOL},
    "process": _PROCESS,
    "hostname": _STR,
    "domainname": _STR,
    "mounts": (
        "list",
        {
            "destination!": _STR,
            "type": _STR,
            "source": _STR,
            "options": ("list", _STR),
            "uidMappings": ("list", _ID_MAP),
            "gidMappings": ("list", _ID_MAP),
        },
    ),
    "hooks": {name: ("list", _HOOK) for name in HOOK_NAMES},
    "annotations": ("map", _STR),
    "linux": {
        "namespaces": ("list", {"type!": _STR, "path": _STR}),
        "uidMappings": ("list", _ID_MAP),
        "gidMappings": ("list", _ID_MAP),
        "devices": (
            "list",
            # fileMode: any uint32, as runc takes it: podman writes the host node's whole st_mode
            # (its S_IFCHR included); the permission bits are the node's (sandbox.devices)
            {"path!": _STR, "type!": _STR, "major": _INT, "minor": _INT, "fileMode": _U32, "uid": _U32, "gid": _U32},
        ),
        "cgroupsPath": _STR,
        "resources": _RESOURCES,
        "sysctl": ("map", _STR),
        "seccomp": _SECCOMP,
        "rootfsPropagation": _STR,
        "maskedPaths": ("list", _STR),
        "readonlyPaths": ("list", _STR),
        "mountLabel": _STR,
        "timeOffsets": ("map", {"secs": _INT, "nanosecs": _U32}),
        "personality": {"domain": _STR, "flags": ("list", _STR)},
        "memoryPolicy": {"mode": _STR, "nodes": _STR, "flags": ("list", _STR)},
        "netDevices": ("map", {"name": _STR}),
    },
}

def _check(value: Any, schema: Any, path: str) -> None:
    check(value, schema, path, InvalidSpec)


def check_resources(resources: Any, path: str = "resources") -> None:
    """Validate a linux.resources object (``update``), before anything is written."""
    _check(resources, _RESOURCES, path)


def merge_resources(config: dict[str, Any], resources: dict[str, Any]) -> None:
    """An update's ``resources`` into a spec's linux.resources, section by section (memory's
    limit changed, its other fields kept); device rules are create's and stay as they were."""
    kept = config.setdefault("linux", {}).setdefault("resources", {})
    for section, value in resources.items():
        if section == "devices":
            continue
        if isinstance(value, dict) and isinstance(kept.get(section), dict):
            kept[section].update(value)
        else:
            kept[section] = value


def check_process(process: Any, path: str = "process") -> None:
    """Validate a process object (from config.json or an ``exec --process`` file)."""
    _check(process, _PROCESS, path)
    args = process.get("args")
    if not args:
        raise InvalidSpec(f"{path}.args: must name at least the program to run")
    cwd = process.get("cwd")
    if cwd is None:
        cwd = "/"  # null as absent, as the rest of the process object (Go's decoder: its zero value)
    if not cwd.startswith("/"):
        raise InvalidSpec(f"{path}.cwd: must be an absolute path, got {cwd!r}")
    for side, value in (process.get("consoleSize") or {}).items():
        if value > 0xFFFF:  # a terminal's rows and columns are 16-bit (struct winsize)
            raise InvalidSpec(f"{path}.consoleSize.{side}: must be 0 to 65535, got {value}")
    user = process.get("user") or {}
    ids = [("uid", user.get("uid")), ("gid", user.get("gid"))]
    ids += [(f"additionalGids[{i}]", g) for i, g in enumerate(user.get("additionalGids") or [])]
    for name, value in ids:
        # runc's range: (uid_t)-1 is "leave it as it is" to setresuid and setresgid, and 2**32-1
        # ran the process as root (containerd's CVE-2024-40635 is the same overflow)
        if value is not None and value > MAX_ID:
            raise InvalidSpec(f"{path}.user.{name}: must be 0 to {MAX_ID}, got {value}")
    for i, entry in enumerate(process.get("env") or []):
        # runc's check (populateProcessEnvironment; a NUL is the schema's): an empty name reached
        # execve, which Python refuses, and the init failed with "illegal environment variable name"
        if "=" not in entry or entry.startswith("="):
            raise InvalidSpec(f"{path}.env[{i}]: must be KEY=VALUE with a name, got {entry[:100]!r}")
    # An unknown capability name is not refused: the runtime-spec (since 1.1) has it warned about
    # and left out (sandbox.caps.CapPlan), as runc does; 1.0 said error.
    seen_rlimits: set[str] = set()
    for i, rl in enumerate(process.get("rlimits") or []):
        if not rl.get("type", "").startswith("RLIMIT_"):
            raise InvalidSpec(f"{path}.rlimits[{i}].type: unknown rlimit {rl.get('type')!r}")
        if rl["type"] in seen_rlimits:  # the runtime-spec's MUST (runc 1.1 applies both, the last winning)
            raise InvalidSpec(f"{path}.rlimits[{i}].type: {rl['type']} is listed twice")
        seen_rlimits.add(rl["type"])
        if rl.get("soft", 0) > rl.get("hard", 0):
            raise InvalidSpec(f"{path}.rlimits[{i}]: soft limit is above the hard limit")


# What the runtime-spec lets a container ask for and mrun's own sandbox does not do (`mrun
# features` says so). A container run without it would be less confined, or otherwise not what
# its engine believes it made: refused, naming the field, as runc refuses what it cannot apply.
# The oci backend's runtime applies these itself, so only mrun's sandbox checks them.
_UNAPPLIED_PROCESS = {
    "selinuxLabel": "mrun applies no SELinux label: refused rather than run the process unlabelled",
    "execCPUAffinity": "mrun does not set a CPU affinity",
}
_UNAPPLIED_LINUX = {
    "intelRdt": "mrun does not support Intel RDT",
}


def check_process_applied(process: dict[str, Any], path: str = "process") -> None:
    """A process for mrun's sandbox asks for nothing it would leave out (``_UNAPPLIED_PROCESS``)."""
    for field, why in _UNAPPLIED_PROCESS.items():
        if process.get(field):
            raise InvalidSpec(f"{path}.{field}: {why}")
    if process.get("apparmorProfile"):
        from mrun.kernel import apparmor

        if not apparmor.enabled():  # runc's ErrApparmorNotEnabled: never run it unconfined instead
            raise InvalidSpec(f"{path}.apparmorProfile: AppArmor is not enabled on this host")


def check_applied(doc: dict[str, Any]) -> None:
    """A config for mrun's sandbox asks for nothing it would leave out (see above)."""
    check_process_applied(doc.get("process") or {})
    linux = doc.get("linux") or {}
    for field, why in _UNAPPLIED_LINUX.items():
        if linux.get(field):
            raise InvalidSpec(f"linux.{field}: {why}")
    personality(linux)


PERSONALITIES = {"LINUX": 0x0000, "LINUX32": 0x0008}  # runc's two domains (PER_LINUX, PER_LINUX32)


def personality(linux: dict[str, Any]) -> int | None:
    """``linux.personality``'s domain as personality(2) takes it, or None when none is asked
    (the caller's stays, as with runc). Its flags are ignored, as runc ignores them (the
    runtime-spec defines none yet): the create warns (Runtime.create)."""
    persona = linux.get("personality")
    if not persona:
        return None
    domain = persona.get("domain") or "LINUX"
    if domain not in PERSONALITIES:
        raise InvalidSpec(f"linux.personality.domain: {domain!r} is not one of {', '.join(PERSONALITIES)}")
    return PERSONALITIES[domain]


MEMORY_POLICY_MODES = {"MPOL_DEFAULT": 0, "MPOL_PREFERRED": 1, "MPOL_BIND": 2, "MPOL_INTERLEAVE": 3,
                       "MPOL_LOCAL": 4, "MPOL_PREFERRED_MANY": 5, "MPOL_WEIGHTED_INTERLEAVE": 6}
MEMORY_POLICY_FLAGS = {"MPOL_F_NUMA_BALANCING": 1 << 13, "MPOL_F_RELATIVE_NODES": 1 << 14,
                       "MPOL_F_STATIC_NODES": 1 << 15}
MAX_NUMA_NODES = 1024  # CONFIG_NODES_SHIFT is at most 10 (syscalls.MEMPOLICY_WORDS)


def memory_policy(linux: dict[str, Any]) -> tuple[int, list[int]] | None:
    """runtime-spec 1.3's ``linux.memoryPolicy`` as set_mempolicy(2) takes it: (mode with its
    flags, the node mask's words), or None where none is asked (the caller's stays, as runc's).
    Checked on the host as runc 1.4 checks it; what only the machine knows (a node it has not)
    is the kernel's word, at create."""
    policy = linux.get("memoryPolicy")
    if policy is None:
        return None
    where = "linux.memoryPolicy"
    mode = MEMORY_POLICY_MODES.get(policy.get("mode") or "")
    if mode is None:
        raise InvalidSpec(f"{where}.mode: {policy.get('mode')!r} is not one of {', '.join(MEMORY_POLICY_MODES)}")
    for i, flag in enumerate(policy.get("flags") or []):
        if flag not in MEMORY_POLICY_FLAGS:
            raise InvalidSpec(f"{where}.flags[{i}]: unknown flag {flag!r} (known: {', '.join(MEMORY_POLICY_FLAGS)})")
        mode |= MEMORY_POLICY_FLAGS[flag]
    if {"MPOL_F_STATIC_NODES", "MPOL_F_RELATIVE_NODES"} <= set(policy.get("flags") or []):
        raise InvalidSpec(f"{where}.flags: MPOL_F_STATIC_NODES and MPOL_F_RELATIVE_NODES exclude each other")
    nodes = _node_list(policy.get("nodes") or "", f"{where}.nodes")
    name = policy["mode"]
    if nodes and name in ("MPOL_DEFAULT", "MPOL_LOCAL"):
        raise InvalidSpec(f"{where}.nodes: {name} takes no nodes, got {len(nodes)}")
    if not nodes and name not in ("MPOL_DEFAULT", "MPOL_LOCAL", "MPOL_PREFERRED"):
        raise InvalidSpec(f"{where}.nodes: {name} needs at least one node")
    words = [0] * (MAX_NUMA_NODES // 64)
    for node in nodes:
        words[node // 64] |= 1 << (node % 64)
    return mode, words


def _node_list(text: str, where: str) -> set[int]:
    """A node list as the kernel writes one ("0-3,7"), each node below MAX_NUMA_NODES."""
    nodes: set[int] = set()
    for part in filter(None, text.split(",")):
        first, dash, last = part.partition("-")
        low, high = decimal(first), decimal(last if dash else first)
        if low is None or high is None:
            raise InvalidSpec(f"{where}: {text[:60]!r} is not a list of nodes (0-3,7)")
        if low > high:
            raise InvalidSpec(f"{where}: {part!r}: a range runs from its lower node")
        if high >= MAX_NUMA_NODES:
            raise InvalidSpec(f"{where}: node {high} is past any kernel's (at most {MAX_NUMA_NODES})")
        nodes.update(range(low, high + 1))
    return nodes


def idmapping(mount: dict[str, Any], linux: dict[str, Any], index: int) -> tuple[list, list, bool] | None:
    """An idmapped mount's (uid mappings, gid mappings, recursive), or None for a mount that is
    not one (runtime-spec 1.2: mappings of its own, or the ``idmap``/``ridmap`` option, which
    without mappings takes the container's user namespace's). runc's rules: a bind mount, both
    mappings."""
    options = mount.get("options") or []
    uids, gids = mount.get("uidMappings") or [], mount.get("gidMappings") or []
    if not (uids or gids or "idmap" in options or "ridmap" in options):
        return None
    where = f"mounts[{index}]"
    if mount.get("type") != "bind" and "bind" not in options and "rbind" not in options:
        raise InvalidSpec(f"{where}: idmapped mounts are bind mounts only (options bind or rbind)")
    if not uids and not gids:
        uids, gids = linux.get("uidMappings") or [], linux.get("gidMappings") or []
        if not uids or not gids:
            raise InvalidSpec(f"{where}.options: idmap without mappings of its own takes the container's user "
                              "namespace's, and linux.uidMappings/gidMappings name none")
    elif not uids or not gids:
        missing = "uidMappings" if not uids else "gidMappings"
        raise InvalidSpec(f"{where}.{missing}: an idmapped mount needs both uidMappings and gidMappings")
    return uids, gids, "ridmap" in options


def validate(doc: Any) -> None:
    if not isinstance(doc, dict):
        raise InvalidSpec("config.json: the top level must be a JSON object")
    _check(doc, SCHEMA, "")
    version = doc.get("ociVersion")
    if not version:
        raise InvalidSpec("ociVersion: missing")
    major = version.split(".")[0]
    if major != "1":
        raise InvalidSpec(f"ociVersion: {version!r} is not supported (mrun implements 1.0 to 1.2)")
    if not (doc.get("root") or {}).get("path"):
        raise InvalidSpec("root.path: missing")
    if "process" in doc:
        check_process(doc["process"])
    for i, m in enumerate(doc.get("mounts") or []):
        if not m.get("destination", "").startswith("/"):
            raise InvalidSpec(f"mounts[{i}].destination: must be an absolute path, got {m.get('destination')!r}")
        idmapping(m, doc.get("linux") or {}, i)
    for name in HOOK_NAMES:
        for i, hook in enumerate((doc.get("hooks") or {}).get(name) or []):
            if not hook.get("path", "").startswith("/"):
                raise InvalidSpec(f"hooks.{name}[{i}].path: must be an absolute path")
            if hook.get("timeout", 1) <= 0:  # the runtime-spec: "MUST be greater than zero"
                raise InvalidSpec(f"hooks.{name}[{i}].timeout: must be greater than zero, got {hook['timeout']}")
            for j, entry in enumerate(hook.get("env") or []):
                if "=" not in entry:  # environ's form, as process.env (runc refuses that one likewise)
                    raise InvalidSpec(f"hooks.{name}[{i}].env[{j}]: must be KEY=VALUE, got {entry!r}")
    linux = doc.get("linux") or {}
    seen: set[str] = set()
    for i, ns in enumerate(linux.get("namespaces") or []):
        kind = ns.get("type")
        if kind not in NAMESPACE_TYPES:
            raise InvalidSpec(
                f"linux.namespaces[{i}].type: unknown namespace {kind!r} (known: {', '.join(NAMESPACE_TYPES)})"
            )
        if kind in seen:
            raise InvalidSpec(f"linux.namespaces[{i}].type: namespace {kind!r} is listed twice")
        seen.add(kind)
    if (linux.get("uidMappings") or linux.get("gidMappings")) and "user" not in seen:
        raise InvalidSpec("linux.uidMappings: mappings need a user namespace in linux.namespaces")
    if any(ns.get("type") == "user" and not ns.get("path") for ns in linux.get("namespaces") or []):
        for field in ("uidMappings", "gidMappings"):  # runc's rule: nothing mapped, nothing works inside
            if not linux.get(field):
                raise InvalidSpec(f"linux.{field}: a new user namespace needs them (none given)")
    offsets = linux.get("timeOffsets") or {}
    for clock, offset in offsets.items():
        if clock not in ("boottime", "monotonic"):
            raise InvalidSpec(f"linux.timeOffsets.{clock}: only boottime and monotonic clocks have offsets")
        if offset.get("nanosecs", 0) >= 1_000_000_000:
            raise InvalidSpec(f"linux.timeOffsets.{clock}.nanosecs: must be less than 1000000000")
    if offsets and not any(ns.get("type") == "time" and not ns.get("path") for ns in linux.get("namespaces") or []):
        raise InvalidSpec("linux.timeOffsets: offsets need a new time namespace (linux.namespaces: time, no path)")
    for i, dev in enumerate(linux.get("devices") or []):
        if dev.get("type") not in ("c", "b", "u", "p"):
            raise InvalidSpec(f"linux.devices[{i}].type: must be one of c, b, u, p")
        if not dev.get("path", "").startswith("/dev/") or ".." in dev["path"].split("/"):
            raise InvalidSpec(f"linux.devices[{i}].path: must be under /dev, without '..'")
        for field, top in (("major", DEV_MAJOR_MAX), ("minor", DEV_MINOR_MAX)):
            if not 0 <= dev.get(field, 0) <= top:  # mknod would truncate it into another device's number
                raise InvalidSpec(f"linux.devices[{i}].{field}: {dev[field]} is not a device number (0..{top})")


class Spec:
    """A validated config.json; ``raw`` is the document exactly as read."""

    def __init__(self, raw: dict[str, Any], bundle: str) -> None:
        self.raw, self.bundle = raw, bundle

    @property
    def rootfs(self) -> str:
        path = self.raw["root"]["path"]
        return os.path.normpath(os.path.join(self.bundle, path))

    @property
    def process(self) -> dict[str, Any]:
        return self.raw.get("process") or {}

    @property
    def linux(self) -> dict[str, Any]:
        return self.raw.get("linux") or {}

    @property
    def annotations(self) -> dict[str, str]:
        return self.raw.get("annotations") or {}

    @property
    def hooks(self) -> dict[str, list[dict[str, Any]]]:
        return self.raw.get("hooks") or {}

    def namespaces(self) -> dict[str, str]:
        """Namespace type -> path to join ('' means create a new one)."""
        return {ns["type"]: ns.get("path", "") for ns in self.linux.get("namespaces") or []}


def load_bundle(bundle: str) -> Spec:
    """Read ``<bundle>/config.json``; every failure names the file and the problem."""
    bundle = os.path.abspath(bundle)
    path = os.path.join(bundle, "config.json")
    try:
        doc = jsonio.load_file(path)
    except FileNotFoundError:
        raise InvalidSpec(f"{path}: no such file (is {bundle} an OCI bundle?)")
    except jsonio.DecodeError as e:
        raise InvalidSpec(f"{path}: not valid JSON: {e.msg} at line {e.lineno} column {e.colno}")
    except OSError as e:
        raise InvalidSpec(f"{path}: {e.strerror}")
    try:
        validate(doc)
    except InvalidSpec as e:
        raise InvalidSpec(f"{path}: {e}")
    spec = Spec(doc, bundle)
    if not os.path.isdir(spec.rootfs):
        raise InvalidSpec(f"{path}: root.path: {spec.rootfs} is not a directory")
    if "process" not in doc:
        raise InvalidSpec(f"{path}: process: missing (mrun needs something to run)")
    return spec


# runc's rule (libcontainer/configs/validate): a sysctl is written only where the container has a
# namespace of its own that owns it; anything else would change the host for everyone.
_IPC_SYSCTLS = frozenset(
    ("kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall", "kernel.shmmax",
     "kernel.shmmni", "kernel.shm_rmid_forced")
)


def check_sysctls(spec: Spec) -> None:
    """Refuse, at create and naming the key, every sysctl the container's namespaces do not own."""
    namespaces = spec.namespaces()
    for raw_key in spec.linux.get("sysctl") or {}:
        key = raw_key.replace("/", ".")
        where = f"linux.sysctl.{raw_key}"
        if not key or any(p in ("", "..", ".") for p in key.split(".")):
            raise InvalidSpec(f"{where}: not a sysctl name")
        if key in _IPC_SYSCTLS or key.startswith("fs.mqueue."):
            if "ipc" not in namespaces:
                raise InvalidSpec(f"{where}: not allowed in the host's ipc namespace (add an ipc namespace)")
            continue
        if key.startswith("net."):
            path = namespaces.get("network")
            if path is None:
                raise InvalidSpec(f"{where}: not allowed in the host's network namespace (add a network namespace)")
            if path and _same_ns(path, "/proc/self/ns/net"):
                raise InvalidSpec(f"{where}: not allowed: linux.namespaces joins the host's network namespace")
            continue
        if key == "kernel.domainname" and "uts" in namespaces:
            continue
        if key == "kernel.hostname" and "uts" in namespaces:
            raise InvalidSpec(f"{where}: set the hostname with the OCI 'hostname' field instead")
        raise InvalidSpec(f"{where}: not namespaced for this container, so it would change the host; refused")


def _same_ns(a: str, b: str) -> bool:
    try:
        sa, sb = os.stat(a), os.stat(b)
    except OSError:
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)

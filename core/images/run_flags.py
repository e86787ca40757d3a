"""docker's `run` flags that shape the process and the sandbox, applied to a spec as docker does.

Each flag's value is checked here and refused in one line naming the flag: --cap-add/--cap-drop
(docker's TweakCapabilities: names with or without CAP_, ALL), --privileged, --ulimit, --tmpfs, --device,
--sysctl, --oom-score-adj, --stop-signal and --shm-size. What the sandbox then does with the
result (a sysctl the container's namespaces do not own, a device path leading out of the rootfs)
is checked by the runtime, as for any bundle.
"""

from __future__ import annotations

import os
import stat

from mrun import annotations as ann
from mrun.errors import InvalidSpec
from mrun.kernel import inroot
from mrun.kernel.capnames import BITS as CAP_BITS
from mrun.units import INT64_MAX, decimal, ram_in_bytes

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

ULIMITS = {
    "as": "RLIMIT_AS", "core": "RLIMIT_CORE", "cpu": "RLIMIT_CPU", "data": "RLIMIT_DATA", "fsize": "RLIMIT_FSIZE",
    "locks": "RLIMIT_LOCKS", "memlock": "RLIMIT_MEMLOCK", "msgqueue": "RLIMIT_MSGQUEUE", "nice": "RLIMIT_NICE",
    "nofile": "RLIMIT_NOFILE", "nproc": "RLIMIT_NPROC", "rss": "RLIMIT_RSS", "rtprio": "RLIMIT_RTPRIO",
    "rttime": "RLIMIT_RTTIME", "sigpending": "RLIMIT_SIGPENDING", "stack": "RLIMIT_STACK",
}
RLIM_INFINITY = (1 << 64) - 1  # the spec's uint64; docker's -1
TMPFS_DEFAULTS = ["noexec", "nosuid", "nodev"]  # docker's, before the flag's own options
_TMPFS_FLAGS = frozenset(
    ("rw", "ro", "exec", "noexec", "suid", "nosuid", "dev", "nodev", "sync", "async", "dirsync", "noatime", "atime",
     "nodiratime", "diratime", "relatime", "norelatime", "strictatime", "nostrictatime", "inode32", "inode64")
)
_SIZE_SUFFIXES = "kKmMgGtTpPeE%"


def capabilities(caps: list[str], add: list[str], drop: list[str]) -> list[str]:
    """docker's rule: ALL added is every capability but those dropped; ALL dropped is only those
    added; otherwise the defaults less the dropped plus the added."""
    adds, drops = _cap_names("--cap-add", add), _cap_names("--cap-drop", drop)
    if "ALL" in adds:
        return sorted(c for c in CAP_BITS if c not in drops)
    if "ALL" in drops:
        return sorted(set(adds))
    return sorted({c for c in caps if c not in drops} | set(adds))


def _cap_names(flag: str, names: list[str]) -> list[str]:
    out = []
    for name in names:
        upper = name.strip().upper()
        full = upper if upper == "ALL" or upper.startswith("CAP_") else f"CAP_{upper}"
        if full != "ALL" and full not in CAP_BITS:
            raise InvalidSpec(f"{flag} {name}: unknown capability")
        out.append(full)
    return out


def ulimits(rlimits: list[dict[str, Any]], values: list[str]) -> list[dict[str, Any]]:
    """--ulimit NAME=SOFT[:HARD] (docker's names; -1 is unlimited), each replacing the limit of its
    type."""
    out = list(rlimits)
    for text in values:
        name, eq, limits = text.partition("=")
        if not eq or name not in ULIMITS:
            raise InvalidSpec(f"--ulimit {text}: NAME=SOFT[:HARD] expected, NAME one of {', '.join(ULIMITS)}")
        soft_text, colon, hard_text = limits.partition(":")
        soft = _rlimit_value(text, soft_text)
        hard = _rlimit_value(text, hard_text) if colon else soft
        if soft > hard:
            raise InvalidSpec(f"--ulimit {text}: the soft limit must be at most the hard limit")
        out = [r for r in out if r.get("type") != ULIMITS[name]]
        out.append({"type": ULIMITS[name], "soft": soft, "hard": hard})
    return out


def _rlimit_value(flag_value: str, text: str) -> int:
    if text == "-1":
        return RLIM_INFINITY
    limit = decimal(text, RLIM_INFINITY - 1)
    if limit is None:
        raise InvalidSpec(f"--ulimit {flag_value}: {text!r} is not a limit (a number, or -1 for unlimited)")
    return limit


_MOUNT_KEYS = {"type", "source", "src", "target", "destination", "dst", "readonly", "ro", "bind-propagation",
               "volume-nocopy", "tmpfs-size", "tmpfs-mode", "consistency"}


def here_relative(source: str) -> str:
    """docker's (23+) bind source relative to where the command was given: ``.``, ``./PATH``
    (and ``..``, ``../PATH``), made absolute from the working directory; anything else as it is
    (a path, or a volume's name)."""
    if source in (".", "..") or source.startswith(("./", "../")):
        return os.path.abspath(source)
    return source


def volume_flag(text: str) -> str:
    """-v SOURCE:DEST[:OPTIONS] with a ``./`` source made absolute (``here_relative``)."""
    source, colon, rest = text.partition(":")
    return here_relative(source) + colon + rest if colon else text


def mount_flag(text: str) -> tuple[str, str]:
    """docker's --mount type=bind|volume|tmpfs,source=...,target=...[,readonly][,bind-propagation=P]
    [,volume-nocopy][,tmpfs-size=N][,tmpfs-mode=OCTAL] -> ("volume", what -v takes) or ("tmpfs",
    what --tmpfs takes), so both forms are checked and mounted by one path."""
    fields: dict[str, str] = {}
    for item in text.split(","):
        key, eq, value = item.partition("=")
        if key not in _MOUNT_KEYS:
            raise InvalidSpec(f"--mount {text!r}: {key!r} is not a mount option (type, source, target, readonly, "
                              "bind-propagation, volume-nocopy, tmpfs-size, tmpfs-mode)")
        if key in ("readonly", "ro", "volume-nocopy") and value not in ("", "true", "1", "false", "0"):
            raise InvalidSpec(f"--mount {text!r}: {key}={value!r}: true or false expected")
        fields[{"src": "source", "destination": "target", "dst": "target", "ro": "readonly"}.get(key, key)] = (
            value if eq else "true")
    kind, source, target = fields.get("type", "volume"), fields.get("source", ""), fields.get("target", "")
    if not target.startswith("/"):
        raise InvalidSpec(f"--mount {text!r}: target= must be an absolute path")
    options = ["ro"] if fields.get("readonly", "false") in ("true", "1") else []
    if kind == "tmpfs":
        if source or "bind-propagation" in fields or "volume-nocopy" in fields:
            raise InvalidSpec(f"--mount {text!r}: a tmpfs takes no source, propagation or nocopy")
        options += [f"size={fields['tmpfs-size']}"] if "tmpfs-size" in fields else []
        options += [f"mode={fields['tmpfs-mode']}"] if "tmpfs-mode" in fields else []
        return "tmpfs", f"{target}:{','.join(options)}" if options else target
    if "tmpfs-size" in fields or "tmpfs-mode" in fields:
        raise InvalidSpec(f"--mount {text!r}: tmpfs-size and tmpfs-mode are a tmpfs's")
    if kind == "bind":
        source = here_relative(source)
        if not source.startswith("/"):
            raise InvalidSpec(f"--mount {text!r}: a bind's source= must be an absolute path (or ./PATH)")
        options += [fields["bind-propagation"]] if "bind-propagation" in fields else []
    elif kind == "volume":
        if source.startswith("/"):
            raise InvalidSpec(f"--mount {text!r}: a volume's source= names it (a path is a bind's)")
        from mrun.images.volumes import ANONYMOUS_SOURCE

        source = source or ANONYMOUS_SOURCE
        if "bind-propagation" in fields:
            raise InvalidSpec(f"--mount {text!r}: bind-propagation is a bind's")
        options += ["nocopy"] if fields.get("volume-nocopy", "false") in ("true", "1") else []
    else:
        raise InvalidSpec(f"--mount {text!r}: type={kind!r}: bind, volume or tmpfs")
    return "volume", f"{source}:{target}" + (f":{','.join(options)}" if options else "")


def tmpfs_mount(text: str, said: str = "") -> dict[str, Any]:
    """--tmpfs /DEST[:OPTIONS]: noexec,nosuid,nodev (docker's), then the options given.
    ``said``: how a refusal names it (a --mount's own text; --tmpfs and the text by default)."""
    said = said or f"--tmpfs {text}"
    dest, _, options = text.partition(":")
    if not dest.startswith("/"):
        raise InvalidSpec(f"{said}: the destination must be an absolute path")
    if inroot.clean(dest) == "/":
        raise InvalidSpec(f"{said}: the destination cannot be / (the container's root), as docker says")
    extra = [o for o in options.split(",") if o] if options else []
    for option in extra:
        key, eq, value = option.partition("=")
        ok = (not eq and option in _TMPFS_FLAGS) or (eq and _tmpfs_value_ok(key, value))
        if not ok:
            raise InvalidSpec(f"{said}: {option!r} is not a tmpfs option")
    return {"destination": inroot.clean(dest), "type": "tmpfs", "source": "tmpfs",
            "options": TMPFS_DEFAULTS + extra}


def _tmpfs_value_ok(key: str, value: str) -> bool:
    number = value[:-1] if value[-1:] and value[-1] in _SIZE_SUFFIXES else value
    if key in ("size", "nr_blocks", "nr_inodes"):
        return number.isascii() and number.isdigit()
    if key == "mode":
        return value.isascii() and value.isdigit() and set(value) <= set("01234567") and len(value) <= 4
    if key in ("uid", "gid"):
        return decimal(value, (1 << 32) - 1) is not None
    if key == "huge":
        return value in ("never", "always", "within_size", "advise", "deny", "force")
    return key == "mpol" and bool(value) and "," not in value


def device(text: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """--device /HOST[:/CONTAINER][:PERMISSIONS] -> (a linux.devices entry, its device cgroup
    rule). The host path must name a device node (links followed, as docker follows them)."""
    parts = text.split(":")
    if len(parts) > 3 or not parts[0]:
        raise InvalidSpec(f"--device {text}: /HOST[:/CONTAINER][:PERMISSIONS] expected")
    host = parts[0]
    inside, perms = host, "rwm"
    if len(parts) == 3:
        inside, perms = parts[1], parts[2]
    elif len(parts) == 2:
        if parts[1].startswith("/"):
            inside = parts[1]
        else:
            perms = parts[1]
    if not perms or set(perms) - set("rwm"):
        raise InvalidSpec(f"--device {text}: the permissions are some of r, w and m")
    if not host.startswith("/") or not inside.startswith("/"):
        raise InvalidSpec(f"--device {text}: the paths must be absolute")
    try:
        st = os.stat(host)
    except OSError as e:
        raise InvalidSpec(f"--device {text}: {host}: {e.strerror}") from None
    if not (stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)):
        raise InvalidSpec(f"--device {text}: {host} is not a device node")
    kind = "c" if stat.S_ISCHR(st.st_mode) else "b"
    major, minor = os.major(st.st_rdev), os.minor(st.st_rdev)
    node = {"path": inroot.clean(inside), "type": kind, "major": major, "minor": minor,
            "fileMode": stat.S_IMODE(st.st_mode), "uid": st.st_uid, "gid": st.st_gid}
    return node, {"allow": True, "type": kind, "major": major, "minor": minor, "access": perms}


def device_cgroup_rule(text: str) -> dict[str, Any]:
    """docker's --device-cgroup-rule 'TYPE MAJOR:MINOR ACCESS' (c 1:3 rwm, b 8:* r, a *:* rwm): a
    rule of the device cgroup allowing those devices (made in the container by whoever may
    mknod, or bound in), as docker's regular expression reads it."""
    fields = text.split()
    kind, numbers, access = fields if len(fields) == 3 else ("", "", "")
    major, colon, minor = numbers.partition(":")
    if kind not in ("a", "b", "c") or not colon or not access or set(access) - set("rwm") \
            or not all(n == "*" or decimal(n) is not None for n in (major, minor)):  # (int()'s error past 4300)
        raise InvalidSpec(f"--device-cgroup-rule {text!r}: TYPE MAJOR:MINOR ACCESS expected (c 1:3 rwm; "
                          "TYPE a, b or c, a number or * each, ACCESS of r, w and m)")
    rule: dict[str, Any] = {"allow": True, "type": kind, "access": access}
    for key, value in (("major", major), ("minor", minor)):
        if value != "*":
            rule[key] = int(value)
    return rule


def domainname(text: str) -> str:
    """docker's --domainname: the container's NIS domain name (setdomainname(2): up to 64 bytes)."""
    if len(os.fsencode(text)) > 64 or not text.isprintable() or any(c.isspace() for c in text):
        raise InvalidSpec(f"--domainname {text!r}: up to 64 printable characters, no spaces")
    return text


def sysctls(values: list[str]) -> dict[str, str]:
    return key_values(values, "--sysctl")


def key_values(values: Any, flag: str) -> dict[str, str]:
    """A flag's KEY=VALUE words (--sysctl, volume create -o) as a mapping, the last of a key winning."""
    out = {}
    for text in values:
        key, eq, value = text.partition("=")
        if not eq or not key:
            raise InvalidSpec(f"{flag} {text}: KEY=VALUE expected")
        out[key] = value
    return out


def callers_oom_score_adj() -> int | None:
    """Our OOM score, the caller's (a warm template's child has taken its caller's)."""
    try:
        with open("/proc/self/oom_score_adj") as f:
            return int(f.read())
    except (OSError, ValueError):
        return None


def oom_score_adj(value: int) -> int:
    if not -1000 <= value <= 1000:
        raise InvalidSpec(f"--oom-score-adj {value}: must be -1000 to 1000")
    return value


def stop_signal(text: str) -> str:
    from mrun.errors import MrunError
    from mrun.kernel.proc import parse_signal

    try:
        parse_signal(text)
    except MrunError as e:  # its own one-line reason: unknown name, out of range
        raise InvalidSpec(f"--stop-signal: {e}") from None
    return text


# docker's --pid, --ipc and --uts values besides the default (a private namespace). --ipc
# container:ID is not offered: its POSIX shared memory is a tmpfs in that container's mount
# namespace, which could only be bound here through a path the other container controls.
NAMESPACE_MODES = {
    "pid": ("host", "container:ID"),
    "ipc": ("private", "shareable", "none", "host"),
    "uts": ("host",),
    "cgroup": ("host", "private"),  # --cgroupns
}
NAMESPACE_FLAGS = {"cgroup": "cgroupns"}  # a flag not named as its namespace


def namespaces(spec: dict[str, Any], modes: dict[str, str], hostname_given: bool,
               domainname_given: bool = False) -> None:
    """--pid/--ipc/--uts as docker applies them: "host" leaves the namespace out (ipc: the host's
    /dev/shm bound in; uts: the host's name, which --hostname may not change); "none" (ipc) is a
    private namespace without /dev/shm; a path joins that container's namespace."""
    linux = spec["linux"]
    for kind, mode in modes.items():
        if mode == "host":
            linux["namespaces"] = [n for n in linux["namespaces"] if n["type"] != kind]
        elif mode.startswith("/proc/"):
            for n in linux["namespaces"]:
                if n["type"] == kind:
                    n["path"] = mode
    if modes.get("uts") == "host":
        if hostname_given:
            raise InvalidSpec("--hostname with --uts host: conflicting options (the host's name is the container's)")
        if domainname_given:
            raise InvalidSpec("--domainname with --uts host: conflicting options (the host's name is the container's)")
        spec.pop("hostname", None)
    if modes.get("ipc") in ("host", "none"):
        had_shm = any(m.get("destination") == "/dev/shm" for m in spec["mounts"])
        spec["mounts"] = [m for m in spec["mounts"] if m.get("destination") != "/dev/shm"]
        if modes["ipc"] == "host" and had_shm:
            spec["mounts"].append({"destination": "/dev/shm", "type": "bind", "source": "/dev/shm",
                                   "options": ["rbind", "nosuid", "nodev", "noexec"]})


def labels(given: list[tuple[str, str]]) -> dict[str, str]:
    """-l/--label KEY[=VALUE] and --label-file lines, as ``(flag, text)`` in docker's order (the
    files first): a label is a note on the container (`mrun ps --filter label=...`, `mrun
    inspect`), so a key that mrun reads as an instruction is refused; --annotation gives those."""
    out: dict[str, str] = {}
    for flag, text in given:
        key, _, value = text.partition("=")
        if not key or key != key.strip() or "\0" in text:
            raise InvalidSpec(f"{flag} {text!r}: KEY[=VALUE] expected")
        if ann.is_reserved(key):
            raise InvalidSpec(f"{flag} {key}: a key mrun reads as an instruction, not a label (use --annotation)")
        out[key] = value
    return out


def create_labels(texts: tuple[str, ...] | list[str]) -> dict[str, str]:
    """``volume create`` and ``network create``'s --label KEY[=VALUE]s, checked as a container's
    (``labels``) and kept by key, as Go's maps print (``{{json .Labels}}``)."""
    return dict(sorted(labels([("--label", text) for text in texts]).items()))


INIT_PATH = "/sbin/docker-init"  # where docker puts its init; tools look for it there


def init_binary() -> str:
    """mrun-init (bin/init.c), installed beside the `mrun` launcher: the install's scripts
    directory, else the interpreter's (a venv's bin)."""
    import sys
    import sysconfig

    for where in (sysconfig.get_path("scripts"), os.path.dirname(os.path.abspath(sys.executable))):
        path = os.path.join(where, "mrun-init")
        if os.access(path, os.X_OK):
            return path
    raise InvalidSpec("--init: mrun-init is not installed (building it needs a C compiler and a static C library: "
                      "libc6-dev)")


def with_init(spec: dict[str, Any]) -> None:
    """docker's --init: the container's command runs under mrun-init, bound in read-only, which
    passes it signals and reaps the orphans a PID 1 inherits."""
    spec["mounts"].append({"destination": INIT_PATH, "type": "bind", "source": init_binary(),
                           "options": ["rbind", "ro", "nosuid", "nodev"]})
    spec["process"]["args"] = [INIT_PATH, "--", *spec["process"]["args"]]


def shm_size(mounts: list[dict[str, Any]], text: str) -> None:
    """--shm-size: the size of the /dev/shm tmpfs (docker's sizes; more than 0)."""
    size = ram_in_bytes("shm-size", text)
    if size <= 0:
        raise InvalidSpec(f"--shm-size {text}: must be more than 0")
    for m in mounts:
        if m.get("destination") == "/dev/shm":
            m["options"] = [o for o in m.get("options") or [] if not o.startswith("size=")] + [f"size={size}"]


# What docker leaves out of a privileged container's /dev (devices.HostDevices): mounts of their
# own, or a console that is the host's.
_HOST_DEV_SKIPPED = frozenset(("pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev", "console"))


def host_devices(top: str = "/dev") -> list[dict[str, Any]]:
    """Every device node under the host's /dev (links not followed), as linux.devices entries."""
    found = []
    for dirpath, dirnames, filenames in os.walk(top):
        if dirpath == top:
            dirnames[:] = [d for d in dirnames if d not in _HOST_DEV_SKIPPED]
        for name in filenames:
            if dirpath == top and name in _HOST_DEV_SKIPPED:
                continue
            path = os.path.join(dirpath, name)
            try:
                st = os.lstat(path)
            except OSError:
                continue  # gone meanwhile
            if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                found.append({"path": path, "type": "c" if stat.S_ISCHR(st.st_mode) else "b",
                              "major": os.major(st.st_rdev), "minor": os.minor(st.st_rdev),
                              "fileMode": stat.S_IMODE(st.st_mode), "uid": st.st_uid, "gid": st.st_gid})
    return found


# docker's (and containerd's, nerdctl's) default set: without CHOWN, SETUID, SETGID an image's
# entrypoint that hands its files to its user and drops to it (gosu, su-exec: the official
# postgres, redis, mysql images) failed under `mrun run`, which gave the runtime-spec's three.
DOCKER_CAPS = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID",
    "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL",
    "CAP_AUDIT_WRITE",
)


def set_capabilities(process: dict[str, Any], caps: list[str]) -> None:
    """docker's rule: root holds ``caps`` in every set; another user only in the bounding set, as
    execve would leave it (a file capability may raise it within that bound)."""
    root = int((process.get("user") or {}).get("uid") or 0) == 0
    process["capabilities"] = {"bounding": list(caps), "effective": list(caps) if root else [],
                               "permitted": list(caps) if root else []}


def every_capability() -> list[str]:
    """The names of every capability this kernel has."""
    from mrun.sandbox.caps import last_cap

    return sorted(name for name, bit in CAP_BITS.items() if bit <= last_cap())


def privileged(spec: dict[str, Any]) -> None:
    """docker's --privileged: every capability this kernel has, no seccomp filter, nothing of
    /proc masked or read-only, /sys and the cgroup tree writable, and every host device, allowed
    in the device cgroup. (No LSM label is applied either way.)"""
    set_capabilities(spec["process"], every_capability())
    linux = spec["linux"]
    linux.pop("seccomp", None)
    linux["maskedPaths"], linux["readonlyPaths"] = [], []
    for m in spec["mounts"]:
        if m.get("type") in ("sysfs", "cgroup"):
            m["options"] = [o for o in m.get("options") or [] if o != "ro"] + ["rw"]
    linux["devices"] = host_devices()
    linux.setdefault("resources", {})["devices"] = [{"allow": True, "access": "rwm"}]


def apply(spec: dict[str, Any], o: Any, groups: list[int]) -> None:
    """The flags of ``o`` (an Overrides) onto ``spec``; ``groups`` are --group-add's gids, looked
    up in the image's /etc/group by the caller."""
    process, linux = spec["process"], spec["linux"]
    if o.privileged:  # as docker: every capability, whatever --cap-add and --cap-drop say
        privileged(spec)
    else:
        set_capabilities(process, capabilities(list(DOCKER_CAPS), o.cap_add, o.cap_drop))
    if o.security_opt:  # after --privileged: mask= adds to its none
        from mrun.images import system_paths

        system_paths.apply(spec, o.security_opt)
    if o.ulimit:
        process["rlimits"] = ulimits(process.get("rlimits") or [], o.ulimit)
    if groups:
        user = process.setdefault("user", {"uid": 0, "gid": 0})
        user["additionalGids"] = sorted(set(user.get("additionalGids") or []) | set(groups))
    if o.umask:
        process.setdefault("user", {"uid": 0, "gid": 0})["umask"] = umask(o.umask)
    if o.oom_score_adj is not None:
        process["oomScoreAdj"] = oom_score_adj(o.oom_score_adj)
    elif (inherited := callers_oom_score_adj()) is not None:
        # What its process inherited from its caller until now: its supervisor, its parent, runs
        # at the OOM killer's last choice (images.supervisor), which it must not inherit.
        process["oomScoreAdj"] = inherited
    if o.stop_signal:
        spec["annotations"][ann.STOP_SIGNAL] = stop_signal(o.stop_signal)
    if o.stop_timeout is not None:
        if not -1 <= o.stop_timeout <= INT64_MAX:
            raise InvalidSpec(f"--stop-timeout {o.stop_timeout}: seconds, or -1 to wait for ever")
        spec["annotations"][ann.STOP_TIMEOUT] = str(o.stop_timeout)
    if o.sysctl:
        linux.setdefault("sysctl", {}).update(sysctls(o.sysctl))
    if o.shm_size:
        if o.namespaces.get("ipc") in ("host", "none"):
            raise InvalidSpec(f"--shm-size with --ipc {o.namespaces['ipc']}: there is no /dev/shm of the container's "
                              "own to size")
        shm_size(spec["mounts"], o.shm_size)
    if o.domainname:
        spec["domainname"] = domainname(o.domainname)
    namespaces(spec, o.namespaces, bool(o.hostname), bool(o.domainname))
    if o.init:
        with_init(spec)
    for text in o.device:
        node, rule = device(text)
        linux.setdefault("devices", []).append(node)
        linux.setdefault("resources", {}).setdefault("devices", []).append(rule)
    for text in o.device_cgroup_rule:
        linux.setdefault("resources", {}).setdefault("devices", []).append(device_cgroup_rule(text))
    taken = {m["destination"] for m in spec["mounts"] if m.get("source") not in ("tmpfs", "shm")}
    for text in o.tmpfs:
        said = o.said.get(text) or f"--tmpfs {text}"
        mount = tmpfs_mount(text, said)
        if mount["destination"] in taken:
            raise InvalidSpec(f"{said}: {mount['destination']} is mounted already")
        taken.add(mount["destination"])
        spec["mounts"] = [m for m in spec["mounts"] if m["destination"] != mount["destination"]] + [mount]


def umask(text: str) -> int:
    """podman's --umask: octal, at most 0777."""
    if not (text.isascii() and text.isdigit() and set(text) <= set("01234567") and int(text, 8) <= 0o777):
        raise InvalidSpec(f"--umask {text[:50]!r}: an octal mask from 0000 to 0777")
    return int(text, 8)


MAX_PUBLISHED_ALL = 100  # -P: each port a host port, a reservation and a firewall rule


def attached(values: Any) -> frozenset[str] | None:
    """docker's ``-a STREAM`` (repeated, any case) -> the streams named, or None (none named:
    docker's default, stdout and stderr, stdin with -i). Refused in docker's words."""
    if not values:
        return None
    streams = set()
    for value in values:
        if value.lower() not in ("stdin", "stdout", "stderr"):
            raise InvalidSpec(f'invalid argument "{value}" for "-a, --attach" flag: valid streams are STDIN, '
                              'STDOUT, STDERR')
        streams.add(value.lower())
    return frozenset(streams)


def port_range(text: str, said: str) -> tuple[int, int, str]:
    """PORT[/tcp|udp] or FIRST-LAST[/tcp|udp], tcp where none is said -> (first, last, proto);
    anything else refused as ``said`` names it. (Digits of another script, or thousands of
    them, made int() fail with a traceback where an image's ExposedPorts or a flag had them.)"""
    spec, _, proto = text.partition("/")
    proto = proto or "tcp"
    first, dash, last = spec.partition("-")
    if proto not in ("tcp", "udp") or not (first.isascii() and first.isdigit()) or \
            (dash and not (last.isascii() and last.isdigit())):
        raise InvalidSpec(f"{said}: PORT[/tcp|udp] or PORT-PORT[/tcp|udp] expected")
    low, high = decimal(first, 65535), decimal(last or first, 65535)
    if not low or high is None or low > high:
        raise InvalidSpec(f"{said}: ports are 1 to 65535, the range's first one first")
    return low, high, proto


def exposed(values: list[str], field: str = "--expose") -> list[str]:
    """docker's --expose (and an image's ExposedPorts): PORT[/tcp|udp] or a range PORT-PORT[/...],
    as ``PORT/proto`` items."""
    out = []
    for text in values:
        low, high, proto = port_range(str(text), f"{field} {text!r}")
        if high - low >= MAX_PUBLISHED_ALL:
            raise InvalidSpec(f"{field} {text!r}: more than {MAX_PUBLISHED_ALL} ports")
        out += [f"{port}/{proto}" for port in range(low, high + 1)]
    return out


def publish_all(published: str, image_ports: object, expose: list[str]) -> str:
    """docker's -P: every port the image exposes (its config's ExposedPorts) and --expose names,
    on a host port the host chooses, but those -p already publishes. -> the -p list with them."""
    from mrun.network.attach import parse_ports

    keys = list(image_ports) if isinstance(image_ports, dict) else []
    wanted = dict.fromkeys(exposed(keys, "the image's ExposedPorts") + expose)
    if len(wanted) > MAX_PUBLISHED_ALL:
        raise InvalidSpec(f"-P: {len(wanted)} exposed ports (the image's ExposedPorts and --expose), more than "
                          f"{MAX_PUBLISHED_ALL}")
    taken = {f"{p['port']}/{p['proto']}" for p in parse_ports(published)}
    return ",".join(filter(None, [published, *(port for port in wanted if port not in taken)]))


# the first three: mrun's own log; passthrough (podman's): a detached container writes to what
# its run's stdout and stderr were (a systemd unit's journal), and no log is kept
LOG_DRIVERS = ("json-file", "local", "k8s-file", "none", "passthrough")


def log_options(driver: str, options: list[str]) -> dict[str, Any]:
    """docker's --log-driver and --log-opt for a detached container's log (images.log_relay):
    json-file (docker's default; also local and podman's k8s-file) keeps mrun's log, none none,
    podman's passthrough none either (the container writes to its run's own stdout and stderr);
    max-size and max-file bound a kept one. Other drivers and options are refused, naming them,
    rather than taken and not done."""
    from mrun.units import ram_in_bytes

    if driver not in LOG_DRIVERS:
        raise InvalidSpec(f"--log-driver {driver!r}: {', '.join(LOG_DRIVERS)} (mrun keeps the log itself)")
    kept = driver not in ("none", "passthrough")
    out: dict[str, Any] = {"keep": kept, "max_size": 0, "max_files": 1}
    if driver == "passthrough":
        out["passthrough"] = True
    for text in options:
        key, eq, value = text.partition("=")
        if not kept or not eq or key not in ("max-size", "max-file"):
            raise InvalidSpec(f"--log-opt {text!r}: max-size=SIZE and max-file=N are the options "
                              f"{'a kept log takes' if kept else f'and --log-driver {driver} takes none'}")
        if key == "max-size":
            size = ram_in_bytes("log-opt max-size", value)
            if size <= 0:
                raise InvalidSpec(f"--log-opt {text!r}: a size above 0 (10m, 1g)")
            out["max_size"] = size
        else:
            files = decimal(value)
            if not files:
                raise InvalidSpec(f"--log-opt {text!r}: a whole number of files, 1 or more")
            out["max_files"] = files
    if out["max_files"] > 1 and not out["max_size"]:
        raise InvalidSpec("--log-opt max-file: needs max-size (the files are rotated at that size)")
    return out

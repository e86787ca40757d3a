"""Containers made from images: the bundle (config.json from the image config and the CLI's
overrides), the rootfs as an overlay snapshot over the shared layers, and their removal.

A container's directory under ``<image root>/containers/<id>`` holds ``config.json``, the
``rootfs`` mount point, overlay's ``upper`` and ``work``, ``image.json`` (which image and
layers it uses, so ``rmi`` and ``prune`` leave them alone) and ``log`` for detached runs.
Named volumes live in ``<image root>/volumes/<name>`` and outlive containers.
"""

from __future__ import annotations

import errno
import fcntl
import os

from mrun import annotations as ann
from mrun import jsonio
from mrun.bundles import GONE, MARKER, RUN_LOCK, image_of, remove_bundle
from mrun.errors import InvalidSpec, MrunError
from mrun.images.run_flags import INIT_PATH
from mrun.images.snapshot import mount_or_copy
from mrun.images.store import ImageStore
from mrun.kernel import inroot
from mrun.kernel.tree import remove_tree
from mrun.network import names
from mrun.plugins.api import home_of, table_rows
from mrun.scratch import is_scratch
from mrun.state import now_rfc3339
from mrun.units import decimal

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


DEFAULT_CGROUP_PARENT = "/mrun"  # --cgroup-parent's default (cli.commands names it for people too)


class Overrides:
    """What `mrun run` may change of the image's defaults."""

    def __init__(self, **kw: Any) -> None:
        self.command: list[str] = kw.get("command") or []
        self.entrypoint: str | None = kw.get("entrypoint")
        self.env: list[str] = kw.get("env") or []
        self.workdir: str = kw.get("workdir") or ""
        self.user: str = kw.get("user") or ""
        self.hostname: str = kw.get("hostname") or ""
        self.domainname: str = kw.get("domainname") or ""
        self.volumes: list[str] = kw.get("volumes") or []
        # a -v or --tmpfs text a --mount stands for -> "--mount '<what was given>'", for messages
        self.said: dict[str, str] = kw.get("said") or {}
        self.shared: list[dict[str, Any]] = kw.get("shared") or []  # --volumes-from: another's mounts, as they are
        self.annotations: list[str] = kw.get("annotations") or []
        self.resources: dict[str, Any] = kw.get("resources") or {}  # linux.resources (run_resources)
        self.read_only: bool = bool(kw.get("read_only"))
        self.tty: bool = bool(kw.get("tty"))
        self.cgroup_parent: str = kw.get("cgroup_parent") or DEFAULT_CGROUP_PARENT
        self.network: dict[str, Any] = kw.get("network") or {}
        self.security_opt: list[str] = kw.get("security_opt") or []  # docker's --security-opt
        # the process and sandbox flags run_flags applies
        self.privileged: bool = bool(kw.get("privileged"))
        self.cap_add: list[str] = kw.get("cap_add") or []
        self.cap_drop: list[str] = kw.get("cap_drop") or []
        self.ulimit: list[str] = kw.get("ulimit") or []
        self.tmpfs: list[str] = kw.get("tmpfs") or []
        self.device: list[str] = kw.get("device") or []
        self.device_cgroup_rule: list[str] = kw.get("device_cgroup_rule") or []
        self.sysctl: list[str] = kw.get("sysctl") or []
        self.group_add: list[str] = kw.get("group_add") or []
        self.oom_score_adj: int | None = kw.get("oom_score_adj")
        self.stop_signal: str = kw.get("stop_signal") or ""
        self.stop_timeout: int | None = kw.get("stop_timeout")
        self.init: bool = bool(kw.get("init"))
        self.shm_size: str = kw.get("shm_size") or ""
        self.labels: dict[str, str] = kw.get("labels") or {}  # -l/--label, --label-file (run_flags.labels)
        self.made_volumes: list[str] = []  # anonymous volumes made for it (removed if it is not made)
        self.namespaces: dict[str, str] = kw.get("namespaces") or {}  # --pid/--ipc/--uts (run_flags.namespaces)
        self.joined: dict[str, str] = kw.get("joined") or {}  # --network/--pid container:ID: kind -> ID (images.joined)
        self.health: dict[str, Any] = kw.get("health") or {}  # --health-*, --no-healthcheck (images.health)
        self.publish_all: bool = bool(kw.get("publish_all"))  # -P: with expose (--expose), run_flags.publish_all
        self.expose: list[str] = kw.get("expose") or []
        self.secrets: list[dict[str, Any]] = kw.get("secrets") or []  # --secret, parsed (images.secrets)
        # podman's environment and process flags: --env-host, --unsetenv, --unsetenv-all, --umask
        self.env_host: bool = bool(kw.get("env_host"))
        self.unsetenv: list[str] = kw.get("unsetenv") or []
        self.unsetenv_all: bool = bool(kw.get("unsetenv_all"))
        self.umask: str = kw.get("umask") or ""
        self.read_only_tmpfs: bool = bool(kw.get("read_only_tmpfs"))  # podman's, with --read-only
        self.tz: str = kw.get("tz") or ""  # podman's --tz (images.timezone)


def _is_wasm_program(rootfs: str, process: dict[str, Any]) -> bool:
    """Whether the command is a WebAssembly module or component (its first bytes, read inside the
    image): whatever the image declares, a wasm backend bids for it."""
    from mrun.plugins.api import find_program, program_head

    args = process.get("args") or []
    path = find_program(rootfs, args[0].split("#", 1)[0], process) if args else None
    return program_head(rootfs, path).startswith(b"\0asm")


def user_ids(rootfs: str, user: str) -> tuple[int, int, list[int]]:
    """'name[:group]' or 'uid[:gid]' -> (uid, gid, extra gids), from the rootfs's own tables."""
    return _lookup_user(rootfs, user, table_rows(rootfs, "etc/passwd"))


def _lookup_user(
    rootfs: str, user: str, passwd: list[list[str]], source: str = "--user"
) -> tuple[int, int, list[int]]:
    """'name', 'uid', 'name:group', 'uid:gid' -> (uid, gid, extra gids), via the image's own
    /etc/passwd (``passwd``, its rows) and /etc/group, not the host's. ``source`` names where the
    value came from in a refusal: the flag, or the image's User field."""
    name, _, group = user.partition(":")
    source = f"{source} {user if user.isprintable() else repr(user)}"  # an image's "root\nmrun: ..." is one line
    groups = table_rows(rootfs, "etc/group")
    uid = decimal(name)
    if uid is not None:  # its row by number, as Go's user lookup (docker's) compares: "01000" is 1000's
        row = next((r for r in passwd if decimal(r[2]) == uid), None)
    else:
        # a row whose id is no number (an image's own table may hold anything) is no match
        row = next((r for r in passwd if r[0] == name and decimal(r[2]) is not None), None)
        if row is None:
            raise InvalidSpec(f"{source}: no user {name!r} in the container's /etc/passwd")
        uid = int(row[2])
    gid = (decimal(row[3]) if row else None) or 0
    if group:
        number = decimal(group)
        if number is None:
            grow = next((r for r in groups if r[0] == group and decimal(r[2]) is not None), None)
            if grow is None:
                raise InvalidSpec(f"{source}: no group {group!r} in the container's /etc/group")
            number = int(grow[2])
        gid = number
    from mrun.spec import MAX_ID

    if uid > MAX_ID or gid > MAX_ID:  # an image's User of 4294967295 ran its process as root
        raise InvalidSpec(f"{source}: uids and gids go from 0 to {MAX_ID}")
    extra = []
    if row:
        extra = [int(r[2]) for r in groups if len(r) > 3 and row[0] in r[3].split(",") and decimal(r[2]) is not None]
    return uid, gid, sorted(set(extra) - {gid})


def make_spec(
    image_config: dict[str, Any], entry: dict[str, Any], rootfs: str, container_id: str, o: Overrides,
    store: ImageStore, warn: Any = None,
) -> dict[str, Any]:
    """The spec for ``mrun run IMAGE``: the image's config, then docker's flags over it. Long on
    purpose: one pass in docker's order of precedence (image, then each flag), which is what a
    reader checks it against; split up, the precedence would be spread over helpers."""
    from mrun.defaults import default_spec
    from mrun.images.install import default_args

    cfg = (image_config.get("config") or {}) if image_config else {}
    spec = default_spec()
    entrypoint, cmd = default_args(image_config or {}, entry)
    if o.entrypoint is not None:
        entrypoint = [o.entrypoint] if o.entrypoint else []
        cmd = []
    if o.command:
        cmd = o.command
    args = list(entrypoint) + list(cmd)
    if not args:
        raise InvalidSpec("the image has no Entrypoint or Cmd: give a command (mrun run IMAGE COMMAND...)")
    env = list(cfg.get("Env") or [])
    if not any(e.startswith("PATH=") for e in env):
        env.insert(0, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    if o.env_host:  # podman's: the caller's environment over the image's, under -e and --env-file
        host = {k: v for k, v in os.environ.items() if k and "=" not in k and k not in NOT_FROM_HOST}
        env = [e for e in env if e.split("=", 1)[0] not in host] + [f"{k}={v}" for k, v in host.items()]
    for item in o.env:
        key = item.split("=", 1)[0]
        if not key or "\x00" in item:  # docker's "invalid environment variable"; execve cannot take it
            raise InvalidSpec(f"-e {item[:100]!r}: invalid environment variable (KEY=VALUE, KEY a name)")
        env = [e for e in env if e.split("=", 1)[0] != key]
        if "=" in item:
            env.append(item)
        elif key in os.environ:  # `-e NAME` passes the caller's value; an unset NAME is left out (docker)
            env.append(f"{key}={os.environ[key]}")
    for i, item in enumerate(cfg.get("Env") or []):
        if "=" not in item or item.startswith("="):  # runc refuses it at create; named as the image's here
            raise InvalidSpec(f"the image's Env[{i}] {item[:100]!r}: must be KEY=VALUE")
    cwd = o.workdir or cfg.get("WorkingDir") or "/"
    if not cwd.startswith("/"):  # docker's refusal too
        where = "-w" if o.workdir else "the image's WorkingDir"
        raise InvalidSpec(f"{where} {cwd!r}: the working directory must be an absolute path")
    process = spec["process"]
    process.update(args=args, env=env, cwd=cwd, terminal=o.tty)
    # docker's: no rlimit of its own, so the container has its caller's (as dockerd's containers
    # have dockerd's), raised with --ulimit. The bundle default's nofile 1024:1024 let no server
    # raise its own limit (elasticsearch needs 65535).
    process.pop("rlimits", None)
    user = o.user or cfg.get("User") or ""
    passwd = table_rows(rootfs, "etc/passwd")
    # No User: docker's is uid 0 looked up all the same, so root has the groups the image's
    # /etc/group gives it (alpine's root is in wheel, disk, adm...), as under docker and containerd
    uid, gid, extra = _lookup_user(rootfs, user or "0", passwd, "--user" if o.user else "the image's User")
    process["user"] = {"uid": uid, "gid": gid, **({"additionalGids": extra} if extra else {})}
    if not any(e.startswith("HOME=") for e in env):
        env.append(f"HOME={home_of(passwd, uid)}")
    spec["root"] = {"path": rootfs, "readonly": o.read_only}
    # docker's: the flag; else the host's (--network host) or the joined container's (container:ID)
    spec["hostname"] = (o.hostname or o.network.get("hostname")
                        or (os.uname().nodename if o.network.get("host") or o.namespaces.get("uts") == "host"
                            else container_id[:12]))
    # docker's own defaults, under the image's and the caller's values (CreateDaemonEnvironment)
    defaults = [f"HOSTNAME={spec['hostname']}", *(["TERM=xterm"] if o.tty else [])]
    env[:0] = [d for d in defaults if not any(e.startswith(d.split("=", 1)[0] + "=") for e in env)]
    if o.unsetenv or o.unsetenv_all:  # podman's: the defaults (the image's, the host's, ours) less these
        given = {item.split("=", 1)[0] for item in o.env}
        unset = set(o.unsetenv)
        env[:] = [e for e in env if e.split("=", 1)[0] in given
                  or not (o.unsetenv_all or e.split("=", 1)[0] in unset)]
    labels = cfg.get("Labels") if isinstance(cfg.get("Labels"), dict) else {}
    annotations = ann.strip_reserved(labels)  # labels are for people; they never steer the runtime
    annotations[ann.IMAGE] = entry["config"]
    annotations[ann.CREATED] = now_rfc3339()
    if entrypoint:
        annotations[ann.COMMAND_AT] = str(len(entrypoint))
    if user:
        annotations[ann.USER] = user
    stop = cfg.get("StopSignal") or ""
    if isinstance(stop, str) and stop:
        from mrun.kernel.proc import parse_signal

        try:
            parse_signal(stop)
            annotations[ann.STOP_SIGNAL] = stop
        except MrunError:  # kept, it made `mrun stop` fail, and the container unstoppable but by kill
            if callable(warn):
                warn(f"the image's StopSignal {stop!r} is no signal: `mrun stop` sends SIGTERM")
    if entry.get("wasm"):  # the image format's own declaration, passed on in the wasm image
        # convention's words: whichever backend runs that convention bids for it (images/ names none)
        smart = labels.get(ann.WASM_VARIANT) == "compat-smart"  # wasm only where the entrypoint is wasm
        annotations[ann.WASM_VARIANT] = "compat-smart" if smart else "compat"
    annotations.update(o.labels)  # docker's: the caller's labels over the image's
    from mrun.images import joined

    joined.note(annotations, o.joined)
    for item in o.annotations:  # the operator's word is final, reserved keys included
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise InvalidSpec(f"--annotation {item!r}: KEY=VALUE expected")
        annotations[key] = value
    spec["annotations"] = annotations
    spec["linux"].setdefault("resources", {}).update(o.resources)
    spec["linux"]["cgroupsPath"] = f"{o.cgroup_parent.rstrip('/')}/{container_id}"
    from mrun.images.seccomp_default import chosen

    seccomp, process["noNewPrivileges"], apparmor_profile = chosen(o.security_opt)
    if apparmor_profile:
        process["apparmorProfile"] = apparmor_profile
    if seccomp is not None:
        spec["linux"]["seccomp"] = seccomp
    from mrun.images import run_flags
    from mrun.images.health import check_from

    check = check_from(o.health, cfg.get("Healthcheck"))
    if check is not None:
        spec["annotations"][ann.HEALTH] = jsonio.dumps(check)
    if o.publish_all and o.network.get("name"):
        o.network = {**o.network, "ports": run_flags.publish_all(o.network.get("ports") or "", cfg.get("ExposedPorts"),
                                                                o.expose)}
    if o.expose:  # (-P's, and docker's ps --filter expose=)
        spec["annotations"][ann.EXPOSE] = ",".join(dict.fromkeys(o.expose))
    _network(spec, o.network)
    if o.network.get("host"):
        _host_names(spec, os.path.dirname(rootfs))
    elif not o.network:  # --network none
        names.own(spec["mounts"], os.path.dirname(rootfs), spec["hostname"])  # docker's --network none
    for name, path in (o.network.get("files") or {}).items():  # container:ID: the joined one's, shared
        names.bind(spec["mounts"], name, path)
    if o.read_only and o.read_only_tmpfs:
        _read_only_tmpfs(o)
    for volume in [*o.volumes, *_image_volumes(cfg, o)]:
        spec["mounts"].append(_volume_mount(volume, store, rootfs, o.made_volumes, o.said.get(volume, "")))
    covered = {inroot.clean(m["destination"]) for m in spec["mounts"]}
    spec["mounts"] += [m for m in o.shared if inroot.clean(m["destination"]) not in covered]  # -v wins
    if o.tz:
        from mrun.images import timezone

        timezone.bind(spec, os.path.dirname(rootfs), o.tz)
    if o.secrets:
        from mrun.images import secrets

        secrets.apply(spec, os.path.dirname(rootfs), store.root, o.secrets)
    if o.init and (entry.get("wasm") or _is_wasm_program(rootfs, process)):
        if callable(warn):
            warn("--init is left out for a wasm image: its init passes signals on already, and a module forks "
                 "nothing to reap")
        o.init = False
    run_flags.apply(spec, o, [_lookup_group(rootfs, g) for g in o.group_add])
    return spec


# --env-host passes the caller's environment but this: systemd's socket of the caller's unit (a
# container's own, with --sdnotify, is added after; the first of two is the one a program reads)
NOT_FROM_HOST = frozenset(("NOTIFY_SOCKET",))

# podman's --read-only-tmpfs: written where programs expect to write (/dev and /dev/shm are a
# tmpfs already); exec allowed, as podman's are
READ_ONLY_TMPFS = ("/run", "/tmp", "/var/tmp")


def _read_only_tmpfs(o: Overrides) -> None:
    """A tmpfs on each of READ_ONLY_TMPFS that no -v, --mount, --tmpfs or --volumes-from covers."""
    taken = _covered(o)
    o.tmpfs = [*o.tmpfs, *(f"{d}:rw,exec,nosuid,nodev" for d in READ_ONLY_TMPFS if d not in taken)]


def _covered(o: Overrides) -> set[str]:
    """The destinations the caller's -v, --mount, --tmpfs and --volumes-from mount something on."""
    taken = {inroot.clean(v.split(":")[1] if ":" in v else v) for v in o.volumes}
    taken |= {inroot.clean(t.partition(":")[0]) for t in o.tmpfs}
    return taken | {inroot.clean(m["destination"]) for m in o.shared}


def _lookup_group(rootfs: str, group: str) -> int:
    """--group-add: a gid, or a name in the image's /etc/group."""
    number = decimal(group)
    if number is not None and number < 1 << 32:
        return number
    row = next((r for r in table_rows(rootfs, "etc/group") if r[0] == group and decimal(r[2]) is not None), None)
    if row is None:
        raise InvalidSpec(f"--group-add {group}: no group {group!r} in the container's /etc/group")
    return int(row[2])


def _host_names(spec: dict[str, Any], bundle: str) -> None:
    """docker's --network host: copies of the host's /etc/hosts and /etc/resolv.conf, which serve
    in the host's network (a loopback resolver too). Without them the image's own were used,
    often none: no name resolved."""
    for name in ("hosts", "resolv.conf"):
        content = names.node_file(name)
        if content is not None:  # else the host has none: the image's own stays
            names.write_and_bind(spec["mounts"], bundle, name, content)



def _network(spec: dict[str, Any], net: dict[str, Any]) -> None:
    namespaces = spec["linux"]["namespaces"]
    if net.get("host"):
        spec["linux"]["namespaces"] = [n for n in namespaces if n["type"] != "network"]
    elif net.get("namespace"):
        for n in namespaces:
            if n["type"] == "network":
                n["path"] = net["namespace"]
    elif net.get("name"):
        spec["annotations"][ann.NETWORK] = net["name"]
        if net.get("ports"):
            spec["annotations"][ann.NETWORK_PORTS] = net["ports"]
        spec["annotations"].update(net.get("annotations") or {})


_VOLUME_PROPAGATION = ("shared", "rshared", "slave", "rslave", "private", "rprivate")
# docker's volume options that change no mount: z/Z relabel for SELinux (none on a host without
# it, as with docker there), nocopy (read by _volume_mount: no copy-up), and Docker Desktop's
# consistency hints
_VOLUME_NO_OPS = ("z", "Z", "nocopy", "consistent", "cached", "delegated")


MAX_IMAGE_VOLUMES = 64  # an image's Volumes: each one a directory and a mount on the host


def _image_volumes(cfg: dict[str, Any], o: Overrides) -> list[str]:
    """docker's: each of the image's ``Volumes`` that no -v, --mount or --tmpfs covers is an
    anonymous volume, filled from the image."""
    declared = cfg.get("Volumes")
    if not declared:
        return []
    if not isinstance(declared, dict) or len(declared) > MAX_IMAGE_VOLUMES:
        raise InvalidSpec(f"the image's Volumes: an object of at most {MAX_IMAGE_VOLUMES} absolute paths expected")
    taken = _covered(o)
    out = []
    for path in declared:
        if not isinstance(path, str) or not path.startswith("/") or "\0" in path or ":" in path:
            raise InvalidSpec(f"the image's Volumes: {path!r} is not an absolute path")
        clean = inroot.clean(path)
        if clean not in taken and clean != "/":
            out.append(clean)
            taken.add(clean)
    return out


def user_mounts(config: dict[str, Any], container_id: str) -> list[dict[str, Any]]:
    """A container's volumes and bind mounts (-v, --mount, its image's Volumes), as docker lists
    and --volumes-from shares them: not the files `mrun run` made beside it (hosts, hostname,
    resolv.conf) nor the init it binds in (--init)."""
    found = []
    for m in config.get("mounts") or []:
        if not isinstance(m, dict) or not (m.get("type") == "bind" or "bind" in (m.get("options") or [])):
            continue
        source, dest = m.get("source"), m.get("destination")
        if not isinstance(source, str) or not isinstance(dest, str) or dest == INIT_PATH:
            continue
        parent = os.path.dirname(source)
        if os.path.basename(parent) == container_id and os.path.basename(os.path.dirname(parent)) == "containers":
            continue
        found.append(m)
    return found


def _volume_mount(volume: str, store: ImageStore, rootfs: str = "", made: list[str] | None = None,
                  said: str = "") -> dict[str, Any]:
    """-v /host/path:/dest[:OPTIONS] (a bind mount) or -v name:/dest[:OPTIONS] (a named volume,
    made on first use, filled from the image while empty unless ``nocopy``: ``_copy_up``);
    OPTIONS as docker's: ro or rw, a propagation, z/Z, nocopy. ``said``: how a refusal names it
    (a --mount's own text; -v and the text by default)."""
    from mrun.images import volumes

    said = said or f"-v {volume!r}"

    parts = volume.split(":")
    if len(parts) == 1 and volume.startswith("/"):  # docker's -v /DEST: an anonymous volume
        parts = [volumes.ANONYMOUS_SOURCE, volume]
    if len(parts) not in (2, 3) or not parts[1].startswith("/"):
        raise InvalidSpec(f"{said}: SOURCE:/DESTINATION[:OPTIONS] or /DESTINATION expected")
    source, dest = parts[0], parts[1]
    if inroot.clean(dest) == "/":
        raise InvalidSpec(f"{said}: the destination cannot be / (the container's root), as docker says")
    options = ["rbind", "rw"]
    for option in parts[2].split(",") if len(parts) == 3 else []:
        if option in ("ro", "rw"):
            options[1] = option
        elif option in _VOLUME_PROPAGATION:
            options.append(option)
        elif option not in _VOLUME_NO_OPS:
            raise InvalidSpec(f"{said}: {option!r} is not a volume option (ro, rw, a propagation, z, Z, "
                              "nocopy)")
    if source.startswith("/"):
        if not os.path.exists(source):
            raise InvalidSpec(f"{said}: {source} does not exist")
    else:
        bound = None
        if source == volumes.ANONYMOUS_SOURCE:
            name = volumes.create(store.root, anonymous=True)
            if made is not None:
                made.append(name)
            source = volumes.data(store.root, name)
        else:
            volumes.check_name(said, source)
            name = volumes.create(store.root, source)
            source = volumes.data(store.root, name)
            bound = volumes.bind_device(store.root, name)
            if bound is not None:  # a named bind (volume create -o type=none,o=bind,device=PATH)
                source, read_only = bound
                if not os.path.isdir(source):
                    raise InvalidSpec(f"{said}: the volume's device {source} is no directory here")
                if read_only:
                    options[1] = "ro"
        nocopy = len(parts) == 3 and "nocopy" in parts[2].split(",")
        if rootfs and not nocopy and not os.listdir(source):
            _copy_up(rootfs, dest, source, in_place=bound is not None)
    return {"destination": dest, "type": "bind", "source": source, "options": options}


def _copy_up(rootfs: str, dest: str, volume: str, in_place: bool = False) -> None:
    """docker's copy-up: an empty named volume mounted over a directory of the image gets that
    directory's content, owner and mode. (postgres's image keeps its data directory its user's,
    0700: over an empty root-owned volume the database could not start.) ``dest`` is resolved
    inside the rootfs and read through that handle; links are copied as links, never followed;
    the container does not run yet, so nothing in the rootfs moves meanwhile. Copied beside the
    volume and renamed over it: a crash midway left a volume half filled and no longer empty,
    which no later run would fill again; what such a crash leaves now is a copy.tmp-PID that the
    next copy-up removes (and an empty volume, filled then). ``in_place``: a named bind's host
    directory, someone's own, not renamed over: filled where it is, as docker's daemon fills it."""
    import stat

    from mrun.images.snapshot import apply_layer

    parent = os.path.dirname(volume)
    for name in [] if in_place else os.listdir(parent):  # (beside a named bind: someone else's)
        pid = name.removeprefix("copy.tmp-")
        if name.startswith("copy.tmp-") and pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
            remove_tree(os.path.join(parent, name), ignore_errors=True)
    try:
        fd = inroot.open_in(rootfs, dest)
    except (OSError, MrunError):
        return  # not in the image (or not reachable as a directory): nothing to copy
    try:
        st = os.fstat(fd)
        if not stat.S_ISDIR(st.st_mode):
            return
        if in_place:
            apply_layer(inroot.fd_path(fd), volume)
            os.chown(volume, st.st_uid, st.st_gid)
            os.chmod(volume, stat.S_IMODE(st.st_mode))
            return
        copy = os.path.join(parent, f"copy.tmp-{os.getpid()}")
        remove_tree(copy)  # a crashed copy-up's, whose pid we now have
        os.mkdir(copy, 0o700)
        try:
            apply_layer(inroot.fd_path(fd), copy)
            os.chown(copy, st.st_uid, st.st_gid)
            os.chmod(copy, stat.S_IMODE(st.st_mode))
            os.rename(copy, volume)  # over the empty volume; one filled meanwhile by another run stays
        except OSError as e:
            if e.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
        finally:
            remove_tree(copy, ignore_errors=True)
    finally:
        os.close(fd)


def keep_update(bundle: str, container_id: str, resources: dict[str, Any], annotations: dict[str, str]) -> None:
    """docker's update outlives a restart: the limits (and --restart's policy) go into the
    container's config.json, from which `start`, `restart` and a restart policy make it again
    (they were back to the run's), and where its supervisor reads the policy at each exit.
    Only a bundle `prepare` made for this container is written; device rules are create's."""
    from mrun.bundles import made_for
    from mrun.spec import merge_resources

    if not made_for(bundle, container_id):
        return
    path = os.path.join(bundle, "config.json")
    config = jsonio.load_file(path)
    merge_resources(config, resources)
    config.setdefault("annotations", {}).update(annotations)
    jsonio.replace_file(path, config, indent=2)


_held: list[int] = []  # run locks this process holds until it exits


def prepare(
    store: ImageStore, ref: str, container_id: str, o: Overrides, warn: object = None, state_root: str = ""
) -> str:
    """Make the container's bundle, its rootfs snapshotted over the layers. -> the bundle path.

    Recorded before made: ``image.json`` names the image, the state root and the id before
    anything is mounted, and this process holds ``run.lock`` until it exits, so a bundle whose
    runtime state is gone and whose lock is free is an orphan of a killed mrun, which
    ``remove_orphans`` (rm -f, image prune, system prune) takes away."""
    from mrun.kernel import syscalls as sc
    from mrun.state import check_id

    check_id(container_id)
    bundle = os.path.join(store.containers, container_id)
    with store.lock():
        name, entry = store.image(ref)
        config = _config(store, entry)
        store.make_private()
        try:
            os.makedirs(bundle)
        except FileExistsError:
            raise MrunError(f"container {container_id!r} already exists (mrun rm {container_id})")
        try:
            lock = os.open(os.path.join(bundle, RUN_LOCK), os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
            fcntl.flock(lock, fcntl.LOCK_EX)
            _held.append(lock)
            from mrun.kernel.proc import boot_id

            labels = (config.get("config") or {}).get("Labels") if isinstance(config, dict) else None
            jsonio.write_file(os.path.join(bundle, MARKER), {
                "image": name, "config": entry["config"], "layers": entry["layers"],
                "labels": labels if isinstance(labels, dict) else {}, "id": container_id,
                "root": os.path.abspath(state_root) if state_root else "", "boot": boot_id()})
            rootfs = os.path.join(bundle, "rootfs")
            for d in ("rootfs", "upper", "work"):
                os.mkdir(os.path.join(bundle, d))
            mount_or_copy([store.layer_dir(d) for d in entry["layers"]], bundle, warn)
            try:
                spec = make_spec(config, entry, rootfs, container_id, o, store, warn)
                jsonio.write_file(os.path.join(bundle, "config.json"), spec, indent=2)
            except BaseException:
                sc.unmount_all(rootfs)
                raise
        except BaseException:
            remove_bundle(bundle)
            from mrun.images.volumes import remove_anonymous

            remove_anonymous(store.root, o.made_volumes)
            raise
    return bundle


def _config(store: ImageStore, entry: dict[str, Any]) -> dict[str, Any]:
    try:
        return store.read_json(entry["config"])
    except MrunError:
        return {}


def orphans(store: ImageStore, earlier_boot: bool = False) -> list[str]:
    """Containers' bundles left by a killed mrun: no runtime state in their root, nobody running
    them (their run lock is free). A directory without image.json is a release cut short.
    ``earlier_boot``: those of an earlier boot too (one `reboot.take_back` could not take back:
    listed, and removed when named; never pruned)."""
    from mrun.images.reboot import lost_after_its_end, of_earlier_boot
    from mrun.images.supervisor import being_run, supervisor_gone
    from mrun.state import held_by_someone, made_with

    found = []
    for cid in os.listdir(store.containers) if os.path.isdir(store.containers) else []:
        bundle = os.path.join(store.containers, cid)
        if is_scratch(cid, GONE):
            if not held_by_someone(bundle):
                found.append(bundle)  # a removal killed half-way (bundles.remove_bundle)
            continue
        if cid.startswith("."):
            continue
        if being_run(bundle):
            continue  # being made
        gone = supervisor_gone(bundle)
        if gone is False:
            continue  # running under its supervisor (its record removed: images/kept)
        meta = image_of(bundle)
        if meta is None and not made_with(bundle, RUN_LOCK):  # prepare makes it first: one it was killed in
            continue  # someone else's (an image root shared by mistake: docker's containers/)
        root = (meta or {}).get("root") or ""
        if meta is not None and (not root or os.path.exists(os.path.join(root, cid, "state.json"))):
            continue  # a container the runtime knows (or one made before roots were recorded)
        if not earlier_boot and (of_earlier_boot(meta) or lost_after_its_end(bundle, meta, gone)):
            continue  # its state went with /run (a reboot, a removal): the user's still (reboot.take_back)
        found.append(bundle)
    return found


def remove_orphans(store: ImageStore, only: str = "") -> list[str]:
    """Unmount and remove orphaned bundles (``only``: just that container id). -> their ids."""
    from mrun.kernel import syscalls as sc

    removed = []
    for bundle in orphans(store, earlier_boot=bool(only)):
        cid = os.path.basename(bundle)
        if only and cid != only:
            continue
        sc.unmount_all(os.path.join(bundle, "rootfs"))
        remove_bundle(bundle)
        removed.append(cid)
    return removed

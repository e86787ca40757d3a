"""`mrun run IMAGE` and `mrun create IMAGE` (docker's): the flags made into a bundle, the image pulled
as --pull asks, and the container run in the foreground, detached, or left created; what a
foreground run needs once its caller lets it go (detach keys, --sig-proxy=false)."""

from __future__ import annotations

import os
import sys

from mrun import annotations as ann
from mrun import jsonio
from mrun.cli.common import _rt, can_release, image_store, let_caller_go, no_stdin
from mrun.cli.container_facts import network_plan
from mrun.cli.platforms import platform_flag, platform_of, same_platform
from mrun.errors import InvalidSpec, MrunError, NotFound, in_words
from mrun.images.store import ImageStore
from mrun.status import Status
from mrun.trace import span

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


ENV_FILE_LINE_MAX = 64 << 10  # docker's bufio.Scanner token limit


def read_env_file(path: str, flag: str = "--env-file") -> list[str]:
    """``--env-file`` (and ``--label-file``) as docker reads it: VAR=VALUE (or VAR: the caller's
    value) per line, '#' comments and blank lines skipped, UTF-8, 64 KiB a line at most:
    /dev/zero or a binary file is refused at its first long line, not read without end."""
    lines = []
    try:
        with open(path, "rb") as f:
            for number, raw in enumerate(iter(lambda: f.readline(ENV_FILE_LINE_MAX + 1), b""), 1):
                if len(raw) > ENV_FILE_LINE_MAX and not raw.endswith(b"\n"):
                    raise InvalidSpec(f"{flag} {path}: line {number} is longer than 64 KiB")
                try:
                    line = raw.decode().strip()
                except UnicodeDecodeError:
                    raise InvalidSpec(f"{flag} {path}: line {number} is not UTF-8") from None
                if line and not line.startswith("#"):
                    lines.append(line)
    except OSError as e:
        raise InvalidSpec(f"{flag} {path}: {e.strerror or e}") from None
    return lines


def _namespace_modes(g: dict[str, Any], kw: dict[str, Any]) -> dict[str, str]:
    """--pid, --ipc, --uts and --cgroupns -> namespace type: "host", "none" (ipc: no /dev/shm), or the path of
    a running container's namespace to join; private ones (the default) are left out."""
    from mrun.images.run_flags import NAMESPACE_FLAGS, NAMESPACE_MODES

    modes = {}
    for kind, allowed in NAMESPACE_MODES.items():
        flag = f"--{NAMESPACE_FLAGS.get(kind, kind)}"
        mode = kw.get(NAMESPACE_FLAGS.get(kind, kind)) or ""
        if mode.startswith("container:") and "container:ID" in allowed:
            from mrun.images.joined import namespace_path

            modes[kind] = namespace_path(_rt(g), kind, mode.partition(":")[2], flag)
        elif mode in ("", "private", "shareable") and mode in ("", *allowed):
            continue
        elif mode in allowed:
            modes[kind] = mode
        else:
            raise InvalidSpec(f"{flag} {mode!r}: {', '.join(allowed)} expected")
    return modes


_NAME_FILES = ("add_host", "dns", "dns_search", "dns_option")  # flags that shape /etc/hosts and resolv.conf


def _networks(given: Any) -> tuple[str, list[dict[str, Any]], dict[str, Any]]:
    """--network, given once or more: (the first network or mode, the other networks as
    attach.more_of's entries, the first's own settings). Several are networks of `mrun network
    create` (docker's rule: no mode, nor its default bridge, beside them); the first is eth0 (its
    default route, -p, --ip, --network-alias), the others eth1... (docker's second --network, as
    `network connect` after the start). docker's long form (``name=NET,alias=A,ip=IP,
    mac-address=MAC,gw-priority=N``) gives a network its own settings; the one of highest
    gw-priority (docker's: whose gateway is the default one) is the first."""
    attached = [_attachment(text) for text in ([given] if isinstance(given, str) else given or ())]
    by_name: dict[str, dict[str, Any]] = {}
    for one in attached:
        if one["name"] in by_name and (one["settings"] or by_name[one["name"]]["settings"]):
            raise InvalidSpec(f"--network: network {one['name']!r} is specified multiple times")
        by_name.setdefault(one["name"], one)
    chosen = sorted(by_name.values(), key=lambda one: -one["priority"])  # (stable: the order given among equals)
    names = [one["name"] for one in chosen]
    for mode in names if len(names) > 1 else ():
        if mode in ("none", "host", "bridge", "default") or mode.startswith("container:"):
            raise InvalidSpec(f"--network {mode} beside --network {next(m for m in names if m != mode)}: several "
                              "networks are networks of `mrun network create` (conflicting options, as docker's)")
    more = [{"name": one["name"], "ip": one["ip"], "aliases": one["aliases"], **({"mac": one["mac"]} if one["mac"]
                                                                                 else {})} for one in chosen[1:]]
    return (names[0] if names else "bridge"), more, (chosen[0] if chosen else {})


def _long_form(text: str) -> bool:
    """docker's test of a --network value for its long form: a word character either side of an '='."""
    def word(c: str) -> bool:
        return c.isascii() and (c.isalnum() or c == "_")

    return any(c == "=" and 0 < i < len(text) - 1 and word(text[i - 1]) and word(text[i + 1])
               for i, c in enumerate(text))


def _attachment(text: str) -> dict[str, Any]:
    """One --network value: a name or mode, or docker's long form, read as docker's CLI reads it
    (comma-separated, CSV-quoted KEY=VALUE fields; keys in any case)."""
    one: dict[str, Any] = {"name": text, "aliases": [], "ip": "", "mac": "", "priority": 0, "settings": False}
    if not _long_form(text):
        return one
    fields = _csv_fields(text)
    if fields is None:
        raise InvalidSpec(f"--network {text!r}: not a list of comma-separated KEY=VALUE fields (a quote unclosed, "
                          "or inside a field not quoted whole)")
    one.update(name="", settings=True)
    for field in fields:
        key, eq, value = field.partition("=")
        key, value = key.strip().lower(), value.strip()
        if not eq or not key:
            raise InvalidSpec(f"--network {text!r}: invalid field {field!r} (KEY=VALUE expected)")
        if key == "name":
            one["name"] = value
        elif key == "alias":
            one["aliases"].append(value)
        elif key == "ip":
            one["ip"] = value
        elif key == "mac-address":
            one["mac"] = value
        elif key == "gw-priority":
            try:
                one["priority"] = int(value)
            except ValueError:
                raise InvalidSpec(f"--network {text!r}: gw-priority {value!r} is not a whole number") from None
        elif key in ("ip6", "link-local-ip"):
            raise InvalidSpec(f"--network {text!r}: {key}: mrun's networks are IPv4 ones (no IPv6 or link-local "
                              "address is given)")
        elif key == "driver-opt":
            raise InvalidSpec(f"--network {text!r}: driver-opt {value!r}: mrun's bridge takes no endpoint options")
        else:
            raise InvalidSpec(f"--network {text!r}: invalid field key {key!r} (name, alias, ip, mac-address, "
                              "gw-priority)")
    if not one["name"]:
        raise InvalidSpec(f"--network {text!r}: the network's name is not given (name=NET)")
    return one


def _csv_fields(text: str) -> list[str] | None:
    """One line of CSV as Go's encoding/csv reads it (docker's CLI): a field is quoted whole
    ("..." with "" for a quote) or holds no quote at all. None: not that."""
    fields, i = [], 0
    while True:
        if text.startswith('"', i):
            value, i = [], i + 1
            while True:
                end = text.find('"', i)
                if end < 0:
                    return None
                value.append(text[i:end])
                if text.startswith('"', end + 1):
                    value.append('"')
                    i = end + 2
                    continue
                i = end + 1
                break
            field = "".join(value)
            if i < len(text) and text[i] != ",":
                return None
        else:
            end = text.find(",", i)
            field = text[i:] if end < 0 else text[i:end]
            if '"' in field:
                return None
            i = len(text) if end < 0 else end
        fields.append(field)
        if i >= len(text):
            return fields
        i += 1  # past the comma


def _first_settings(kw: dict[str, Any], first: dict[str, Any]) -> dict[str, Any]:
    """The first network's long-form settings as the flags they stand for (docker's: --ip,
    --network-alias and --mac-address are the first network's), never both."""
    out = dict(kw)
    for setting, key, flag, what in (("ip", "ip", "--ip", "IPv4 address"), ("mac", "mac_address", "--mac-address",
                                                                            "MAC address"),
                                     ("aliases", "network_alias", "--network-alias", "alias")):
        if first.get(setting):
            if kw.get(key):
                raise InvalidSpec(f"conflicting options: cannot specify both {flag} and per-network {what}")
            out[key] = first[setting]
    return out


def _network_mode(g: dict[str, Any], mode: str, publish: list[str], kw: dict[str, Any],
                  more: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """--network, -p, --add-host and --dns* -> what the spec needs: a namespace path, none at all,
    or a network's annotations (``more``: the networks it joins besides, attach.more_of's)."""
    if kw.get("ip") and (mode in ("none", "host", "bridge") or mode.startswith("container:")):
        # docker's rule: an address is asked for on a network of one's own, never the default
        raise InvalidSpec(f"--ip: taken on a network of `mrun network create`, not with --network {mode}")
    if kw.get("mac_address") and (mode in ("none", "host") or mode.startswith("container:")):
        raise InvalidSpec(f"--mac-address: taken on bridge networks, not with --network {mode} "
                          "(conflicting options, as docker's)")
    for flag, key in (("--network-alias", "network_alias"), ("--link", "link")):
        if kw.get(key) and (mode in ("none", "host", "bridge") or mode.startswith("container:")):
            raise InvalidSpec(f"{flag}: taken on networks of `mrun network create`, not with --network {mode}")
    if kw.get("link"):  # docker's legacy links: on a network of one's own, names of that container's address
        kw = {**kw, "add_host": [*(kw.get("add_host") or ()), *_linked(g, list(kw["link"]), mode)]}
    if mode in ("none", "host") or mode.startswith("container:"):
        if publish or kw.get("publish_all"):
            flag = "-p" if publish else "-P"
            raise InvalidSpec(f"{flag}: ports are published on bridge networks, not with --network {mode}")
        for key in _NAME_FILES:
            if kw.get(key):  # mrun writes /etc/hosts and resolv.conf for its bridge networks only
                raise InvalidSpec(f"--{key.replace('_', '-')}: taken on bridge networks, not with --network {mode}")
        if mode.startswith("container:"):
            from mrun.images.joined import running

            runtime = _rt(g)
            record = running(runtime, mode.partition(":")[2], "--network")
            # docker's: its hostname and its /etc/hosts, resolv.conf and hostname files, shared
            places = [runtime.store.path(record.id)]  # a bridge container's files
            if os.path.dirname(record.bundle) == os.path.join(g["image_root"], "containers"):
                places.append(record.bundle)  # a host-network one's copies (mrun run's bundles only)
            files = {name: os.path.join(place, name) for place in places
                     for name in ("hosts", "resolv.conf", "hostname") if os.path.isfile(os.path.join(place, name))}
            hostname = (jsonio.load_object(os.path.join(record.bundle, "config.json")) or {}).get("hostname") or ""
            return {"namespace": f"/proc/{record.pid}/ns/net", "files": files,
                    "hostname": hostname if isinstance(hostname, str) else ""}
        return {"host": True} if mode == "host" else {}
    from mrun.network.attach import parse_dns, parse_extra_hosts, parse_mac, parse_ports
    from mrun.network.store import DEFAULT_NETWORK

    parse_ports(",".join(publish))  # bad syntax is refused before anything is made
    if kw.get("ip"):
        from mrun.network.store import requested_address

        requested_address(kw["ip"])
    mac = [parse_mac(kw["mac_address"])] if kw.get("mac_address") else []
    hosts = parse_extra_hosts(list(kw.get("add_host") or ()))
    dns = parse_dns(*(list(kw.get(key) or ()) for key in _NAME_FILES[1:]))
    return {"name": DEFAULT_NETWORK if mode == "bridge" else mode, "ports": ",".join(publish),
            "annotations": {key: ",".join(values) for key, values in (
                (ann.NETWORK_HOSTS, [f"{name}={ip}" for name, ip in hosts]), (ann.NETWORK_DNS, dns["servers"]),
                (ann.NETWORK_DNS_SEARCH, dns["search"]), (ann.NETWORK_DNS_OPTIONS, dns["options"]),
                (ann.NETWORK_IP, [kw["ip"]] if kw.get("ip") else []), (ann.NETWORK_MAC, mac),
                (ann.NETWORK_ALIASES, list(kw.get("network_alias") or ()))) if values}
            | ({ann.NETWORK_MORE: jsonio.dumps(more)} if more else {})}


def _runtime_annotation(runtime: str) -> list[str]:
    """docker's --runtime NAME: the container under that installed OCI runtime (the oci backend,
    whose allowed names and their presence it checks); mrun (or none) is mrun's own sandbox."""
    if runtime in ("", "mrun"):
        return []
    if not runtime.isascii() or not all(c.isalnum() or c in "-_." for c in runtime):
        raise InvalidSpec(f"--runtime {runtime!r}: the name of an installed OCI runtime (runc, crun...) or mrun")
    return [f"{ann.OCI_RUNTIME}={runtime}"]


def _linked(g: dict[str, Any], links: list[str], network: str) -> list[str]:
    """--link NAME[:ALIAS]: NAME (and ALIAS) as names of that running container's address on
    ``network``, for this container's /etc/hosts alone (docker's legacy links)."""
    from mrun.errors import MrunError

    runtime, out = _rt(g), []
    for text in links:
        name, _, alias = text.partition(":")
        try:
            record = runtime.store.load(name)
        except MrunError as e:
            raise InvalidSpec(f"--link {text}: {e}") from None
        if runtime.status(record) != Status.RUNNING:
            raise InvalidSpec(f"--link {text}: container {name!r} is not running (as docker's, links are to running "
                              "ones)")
        plan = network_plan(runtime, record.id) or {}
        if plan.get("network") != network or not isinstance(plan.get("ip"), str) or not plan["ip"]:
            raise InvalidSpec(f"--link {text}: container {name!r} is not on network {network!r}")
        out += [f"{n}:{plan['ip']}" for n in dict.fromkeys([name, *([alias] if alias else [])])]
    return out


def _pull_for_run(store: ImageStore, image: str, policy: str, platform: str = "", quiet: bool = False) -> None:
    """docker's --pull: ``missing`` (the default) pulls an image the store lacks, ``always``
    pulls it anyway, ``never`` does not. Said on stderr, as docker says it: stdout is the
    container's; ``quiet`` (docker's run -q): not said."""
    if policy not in ("missing", "always", "never"):
        raise InvalidSpec(f"--pull {policy!r}: missing, always or never")
    want = platform_flag(platform)  # refused before anything is pulled or run
    missing, here = False, "not found here"
    if policy != "always":
        try:
            _name, entry = store.image(image)
            if want is None:
                return
            actual = platform_of(store, entry)  # (read only when asked: a config read on every run)
            if same_platform(want, actual):
                return
            here = f"here for {'/'.join(actual)}, not {'/'.join(want)}"  # pulled for the one asked, as docker's
            if policy == "never":  # docker's words
                raise NotFound(f"image with reference {image} was found but does not match the specified platform: "
                               f"wanted {'/'.join(want)}, actual: {'/'.join(actual)}")
        except NotFound:
            if policy == "never":
                raise
        missing = True
    from mrun.images.registry import pull as pull_image

    try:
        names = pull_image(store, image, False, "", want, quiet)
    except MrunError as e:
        if not missing:
            raise
        raise NotFound(f"image {image!r} {here}, and pulling it failed: {e}")
    if not quiet:
        note = f"Unable to find image '{image}' locally: pulled" if missing else "Pulled:"
        print(f"{note} {', '.join(names)}", file=sys.stderr)


def _secrets(texts: tuple[str, ...] | list[str]) -> list[dict[str, Any]]:
    """podman's --secret, each checked before anything is made (images.secrets)."""
    if not texts:
        return []
    from mrun.images.secrets import parse_flag

    return [parse_flag(text) for text in texts]


def run_image(g: dict[str, Any], image: str, command: list[str], kw: dict[str, Any], create_only: bool = False) -> int:
    """`mrun run IMAGE [COMMAND...]`: prepare the snapshot and bundle, then the runtime's own run.
    ``create_only``: docker's `create IMAGE`, recorded, not started (`start` runs it as `run -d`)."""
    from mrun.images import run_flags, run_resources
    from mrun.images.containers import Overrides, prepare
    from mrun.runtime import CreateOptions

    if kw.get("disable_content_trust") is False:
        raise InvalidSpec("--disable-content-trust=false: content trust (signed images) is not supported by mrun")
    if kw.get("isolation") not in (None, "", "default"):  # docker on Linux: "default" alone
        raise InvalidSpec(f"--isolation {kw['isolation']!r}: default is the one isolation on Linux")
    if kw.get("volume_driver") not in (None, "", "local"):
        raise InvalidSpec(f"--volume-driver {kw['volume_driver']!r}: local is the one volume driver")
    cgroups = _cgroups_mode(kw.get("cgroups") or "enabled", kw.get("cgroup_parent"))
    if cgroups == "split":  # the container's cgroup under ours (a relative cgroupsPath, as runc reads it)
        kw = {**kw, "cgroup_parent": "."}
    if kw.get("replace") and not kw.get("name"):
        raise InvalidSpec("--replace: needs --name (the container it replaces is the one of that name)")
    if kw.get("userns") not in (None, "", "host"):  # docker's one mode where the daemon remaps no users
        raise InvalidSpec(f"--userns {kw['userns']!r}: host is the one mode (mrun maps no user namespace)")
    first, more, settings = _networks(kw.get("network"))
    kw = {**_first_settings(kw, settings), "network": first}
    from mrun.cli.short_ids import resolve

    for key in ("network", "pid"):  # container:ID, by docker's short ids too
        mode = kw.get(key)
        if isinstance(mode, str) and mode.startswith("container:"):
            kw[key] = "container:" + resolve(g, mode.partition(":")[2])
    env = [line for path in kw.get("env_file") or () for line in read_env_file(path)]
    env += list(kw.get("env") or ())
    if kw.get("mount"):  # docker's long form, as the short forms it stands for
        from mrun.images.run_flags import mount_flag

        kw = {**kw, "said": {}}
        for text in kw["mount"]:
            kind, short = mount_flag(text)
            kw[kind] = [*(kw.get(kind) or ()), short]
            kw["said"][short] = f"--mount {text!r}"
    o = Overrides(
        command=command,
        entrypoint=kw.get("entrypoint"),
        env=env,
        workdir=kw.get("workdir"),
        user=kw.get("user"),
        hostname=kw.get("hostname"),
        domainname=kw.get("domainname"),
        volumes=[run_flags.volume_flag(text) for text in kw.get("volume") or ()],
        said=kw.get("said"),
        shared=[m for text in kw.get("volumes_from") or () for m in _volumes_from(g, text)],
        annotations=list(kw.get("annotation") or ()) + _runtime_annotation(kw.get("runtime") or "")
        + ([f"{ann.CGROUPS}={cgroups}"] if cgroups != "enabled" else [])
        + ([f"{ann.WASM_PREOPENS}={kw['wasm_preopens']}"] if kw.get("wasm_preopens") else []),
        resources=run_resources.resources(kw, g.get("warn")),
        read_only=kw.get("read_only"),
        tty=kw.get("tty"),
        cgroup_parent=kw.get("cgroup_parent"),
        network=_network_mode(g, kw["network"], list(kw.get("publish") or ()), kw, more),
        security_opt=list(kw.get("security_opt") or ()),
        **{key: list(kw.get(key) or ()) for key in ("cap_add", "cap_drop", "ulimit", "tmpfs", "device", "sysctl",
                                                    "group_add", "device_cgroup_rule")},
        privileged=kw.get("privileged"),
        oom_score_adj=kw.get("oom_score_adj"),
        stop_signal=kw.get("stop_signal"),
        stop_timeout=kw.get("stop_timeout"),
        init=kw.get("init"),
        shm_size=kw.get("shm_size"),
        namespaces=_namespace_modes(g, kw),
        joined={kind: mode.removeprefix("container:") for kind, mode in (("network", kw.get("network") or ""),
                                                                         ("pid", kw.get("pid") or ""))
                if mode.startswith("container:")},
        publish_all=kw.get("publish_all"),
        health={"cmd": kw.get("health_cmd"), "interval": kw.get("health_interval"),
                "timeout": kw.get("health_timeout"), "start_period": kw.get("health_start_period"),
                "start_interval": kw.get("health_start_interval"), "retries": kw.get("health_retries"),
                "none": kw.get("no_healthcheck"), "on_failure": kw.get("health_on_failure")},
        expose=run_flags.exposed(list(kw.get("expose") or ())),
        secrets=_secrets(kw.get("secret") or ()),
        env_host=kw.get("env_host"),
        unsetenv=list(kw.get("unsetenv") or ()),
        unsetenv_all=kw.get("unsetenv_all"),
        umask=kw.get("umask"),
        read_only_tmpfs=kw.get("read_only_tmpfs"),
        tz=kw.get("tz"),
        labels=run_flags.labels([*((f"--label-file {path}", line) for path in kw.get("label_file") or ()
                                   for line in read_env_file(path, "--label-file")),
                                 *(("--label", text) for text in kw.get("label") or ())]),
    )
    detach, remove = bool(kw.get("detach")) or create_only, bool(kw.get("rm"))
    from mrun.cli import readiness

    sdnotify = readiness.docker_like_mode(kw.get("sdnotify"), detach)
    kept_mode = kw.get("sdnotify") or ""  # what a later `mrun start` does too (podman keeps it with the container)
    if kept_mode:
        readiness.docker_like_mode(kept_mode, True)  # create's checked now, whatever NOTIFY_SOCKET is here
        o.annotations.append(f"{ann.SDNOTIFY}={kept_mode}")
    kept_mode = kept_mode if create_only else ""
    if kw.get("conmon_pidfile"):  # podman's: its supervisor's pid at each start (a Type=forking unit's PIDFile)
        if not detach:
            raise InvalidSpec("--conmon-pidfile: needs -d or create (a detached container's supervisor is what "
                              "it names)")
        o.annotations.append(f"{ann.CONMON_PIDFILE}={os.path.abspath(kw['conmon_pidfile'])}")
    restart = kw.get("restart") or "no"
    if restart != "no" and kw.get("health_on_failure") == "restart":  # podman's rule: one restarts it
        raise InvalidSpec(f"--health-on-failure restart with --restart {restart}: conflicting options")
    if restart != "no":
        from mrun.images.supervisor import restart_policy

        restart_policy(restart)
        if remove:
            raise InvalidSpec(f"--restart {restart} with --rm: conflicting options")
        if not detach:
            raise InvalidSpec(f"--restart {restart}: needs -d (a detached container's supervisor restarts it)")
        o.annotations.append(f"{ann.RESTART}={restart}")
    if remove:  # docker's AutoRemove: inspect says so, update --restart refuses
        o.annotations.append(f"{ann.REMOVE}=true")
    if not detach and any(kw.get(f"health_{key}") not in (None, "") for key in
                          ("cmd", "interval", "timeout", "start_period", "start_interval", "retries", "on_failure")) \
            and callable(g.get("warn")):
        g["warn"]("--health-*: checks are run by a detached container's supervisor (-d); this one has none")
    logging = run_flags.log_options(kw.get("log_driver") or "json-file", list(kw.get("log_opt") or ()))
    if logging.get("passthrough") and (kw.get("tty") or kw.get("interactive")):  # podman's refusal of -t
        raise InvalidSpec("--log-driver passthrough: not with -t or -i (the container's streams are the run's "
                          "own: a terminal's input could be forged through it)")
    if logging != {"keep": True, "max_size": 0, "max_files": 1}:
        o.annotations.append(f"{ann.LOG}={jsonio.dumps(logging)}")
    if kw.get("interactive"):  # docker's OpenStdin: held open by a detached run's supervisor (images/held_input)
        o.annotations.append(f"{ann.STDIN}=open")
    detach_keys = _detach_keys(kw, o.tty and not detach)
    attach = run_flags.attached(kw.get("attach"))
    if attach is not None:
        if create_only:
            raise InvalidSpec("-a with create is not supported: `start -a` shows its output")
        if detach:
            raise InvalidSpec("Conflicting options: -a and -d")  # docker's words
        if o.tty and "stdout" not in attach:
            raise InvalidSpec("-a without STDOUT under -t is not supported: the terminal is its output")
    if kw.get("name"):
        container_name(kw["name"])
    store = image_store(g)
    _pull_for_run(store, image, kw.get("pull") or "missing", kw.get("platform") or "", bool(kw.get("quiet")))
    # 48 random bits, as docker's short ids: uuid4().hex[:12] was the same, and its import
    # (enum, _uuid) was the one module a warm `mrun run` still loaded per run (~0.5 ms).
    cid = kw.get("name") or os.urandom(6).hex()
    runtime = _rt(g)
    if kw.get("replace"):
        from mrun.cli.container_verbs import replace

        replace(g, cid)
    if runtime.store.exists(cid):
        raise MrunError(f"container {cid!r} already exists")
    from mrun.bundles import release
    from mrun.images import cidfile as cidfiles
    from mrun.images import volumes
    from mrun.images.supervisor import log_kept, record, run_detached, set_aside
    from mrun.stop_signals import held_signals, hold_termination, raise_if_held

    cidfile = cidfiles.claim(kw.get("cidfile") or "", cid, bool(kw.get("replace")))
    hold_termination()  # a pull is cut short anywhere; from here on, only where stopping is clean
    bundle = os.path.join(store.containers, cid)  # (where prepare makes it)
    try:
        with span("run prepare"):
            bundle = prepare(store, image, cid, o, g.get("warn"), runtime.store.root)
    except BaseException as e:
        if cidfile:
            cidfile.drop()
        if isinstance(e, MrunError):
            raise _in_flag_words(e, bundle) from None
        raise
    try:  # from here on, whatever ends the run (a failure, ^C, a SIGTERM) takes back what it made
        if "healthy" in (sdnotify, kept_mode) and not ((jsonio.load_object(os.path.join(bundle, "config.json"))
                                                         or {}).get("annotations") or {}).get(ann.HEALTH):
            raise InvalidSpec("--sdnotify healthy: the container has no health check (--health-cmd, or the "
                              "image's HEALTHCHECK)")
        if remove:  # removed once it ends, should its caller or supervisor be killed first
            from mrun.images import auto_remove

            auto_remove.mark(bundle)
        if cidfile:  # (removed with the container: its bundle records it)
            cidfile.write(bundle)
        raise_if_held()
        if create_only:
            from mrun.images.unstarted import record_unstarted

            record_unstarted(runtime, cid, bundle, remove)
            print(cid)
            return 0
        if not detach:
            if "stdin" not in attach if attach is not None else not kw.get("interactive"):
                no_stdin()
            shown = (1, 2) if attach is None else tuple(n for n, s in ((1, "stdout"), (2, "stderr")) if s in attach)
            tee = terminal_log = None
            options = CreateOptions()
            options.own_stdio = False  # the caller's own files (docker's runs the container on its own pipes)
            listening: list[Any] = []  # after a detach: the attach socket it listens on
            on_its_own: list[Any] = []  # after its caller has gone: the cgroup this process went to
            marks = runtime.store.cgroup_marks
            unproxied = kw.get("sig_proxy") is False and can_release()
            if detach_keys or (unproxied and o.tty):  # (a signal to a -t --sig-proxy=false run detaches it too)
                options.detach_keys = detach_keys
                options.on_detach = lambda master, status: _detached(bundle, master, listening, marks, on_its_own,
                                                                     status)
            if not remove:
                from mrun.images import kept

                set_aside(bundle)
                # `rm -rf /run/mrun` loses it not
                options.started = lambda record: kept.keep(bundle, record, runtime.store.path(record.id))
                try:  # its output logged as it passes, as docker's
                    if o.tty and log_kept(bundle):  # by the terminal's relay, which shows it to us
                        from mrun.images.log_relay import Relay
                        from mrun.images.supervisor import log_options

                        terminal_log = Relay(bundle, **log_options(bundle), pipes=False)
                        options.terminal_log = lambda data: terminal_log.note(1, data)
                    elif log_kept(bundle):
                        from mrun.images import foreground_log

                        tee = foreground_log.start(bundle, shown)
                except OSError as e:  # (no room for its log): its output goes straight to us, as before
                    if callable(g.get("warn")):
                        g["warn"](f"container {cid!r} keeps no log: {in_words(e)}")
            elif options.on_detach is not None and log_kept(bundle):  # --rm: logged, for an attach once detached
                from mrun.images.log_relay import Relay
                from mrun.images.supervisor import log_options

                try:
                    terminal_log = Relay(bundle, **log_options(bundle), pipes=False)
                    options.terminal_log = lambda data: terminal_log.note(1, data)
                except OSError:
                    terminal_log = None
            if tee is None and not o.tty and (shown != (1, 2) or unproxied):
                # -a: what is not shown goes nowhere here; --sig-proxy=false: its output stops
                # coming to the caller once a signal has ended it
                from mrun.images import foreground_log

                tee = foreground_log.start(bundle, shown, keep=False)
            if unproxied and o.tty:  # its terminal's relay lets the caller go, as its detach keys would
                options.unproxied = lambda signum, relay: relay.detach(128 + signum)
            elif unproxied:
                options.unproxied = lambda signum, _relay: _unproxied(signum, tee, bundle, marks, on_its_own)
            options.started = _outliving_the_caller(options.started)
            relay = None
            if sdnotify == "conmon":  # MAINPID: the caller, the unit's main process still (it waits for the container)
                options.when_started(lambda _record: readiness.tell_ready(readiness.caller_pid(), runtime.warn))
            elif sdnotify == "container":
                options.notify_socket = os.environ["NOTIFY_SOCKET"]
                relay = readiness.relayed_by_run(runtime, options, False)
            try:
                code = runtime.run(cid, bundle, options, False, keep=True)
                readiness.relay_done(relay)
                relay = None
                for held in listening:  # no attacher is handed an ended run's terminal
                    held.stop_listening()
                if not remove:  # as docker (its runc shim): kept, with nothing of it running, and its code
                    kept.write_back(runtime, bundle, cid)  # its record removed while it ran (images/kept)
                    runtime.end_the_rest(cid)
                if tee is not None:
                    tee.end()  # all of its output out before its code is noted (`mrun wait` then reads the log)
                    tee = None
                with span("run record"):
                    record(bundle, code)  # with --rm too: a `wait` or `attach` its removal waits for reads it
                if remove:
                    with span("run delete"):
                        runtime.delete(cid, force=True)
                return code
            finally:
                if relay is not None:
                    relay.close()
                if tee is not None:
                    tee.end()
                if terminal_log is not None:
                    terminal_log.close_log()
                if remove:  # docker's --rm: its anonymous volumes go with it
                    volumes.remove_anonymous(store.root, o.made_volumes)
                if on_its_own:  # its caller gone, it went to a cgroup of its own: left and removed now
                    from mrun.cgroups import beside

                    beside.leave(on_its_own[0])
        # it records the exit code, or removes it
        supervisor = run_detached(runtime, cid, bundle, remove, notify=sdnotify == "container")
        if sdnotify == "conmon":
            readiness.tell_ready(supervisor, runtime.warn)
        elif sdnotify in ("healthy", "container"):
            readiness.ready_once_noted(bundle, cid, supervisor, sdnotify, runtime.warn)
        print(cid)
        held = held_signals()  # it runs, as docker's daemon would have made it: the status says we were told to end
        return 128 + held[0] if held else 0
    except BaseException as e:
        if not runtime.store.exists(cid):  # the runtime did not get as far as a container
            release(bundle, cid, runtime.store.root)
            volumes.remove_anonymous(store.root, o.made_volumes)
            if cidfile:
                cidfile.drop()
        if isinstance(e, MrunError):
            raise _in_flag_words(e, bundle) from None
        raise


def _in_flag_words(e: MrunError, bundle: str) -> MrunError:
    from mrun.cli.flag_words import in_flag_words

    return in_flag_words(e, bundle)


CGROUPS_MODES = ("enabled", "no-conmon", "split")


def _cgroups_mode(mode: str, cgroup_parent: str | None) -> str:
    """podman's --cgroups, where conmon is mrun's supervisor of a detached container: enabled (its
    supervisor in a cgroup beside the container's: cgroups.beside), no-conmon (it stays in the
    caller's cgroup, a systemd unit's), split (it stays, and the container's cgroup is made under
    the caller's too: a unit's whole). podman's disabled, a container in no cgroup of its own, is
    refused: mrun's containers each have one (its limits, its pids, its removal)."""
    if mode == "disabled":
        raise InvalidSpec("--cgroups disabled: not supported by mrun (every container has a cgroup of its own); "
                          "no-conmon or split keep it under the caller's")
    if mode not in CGROUPS_MODES:
        raise InvalidSpec(f"--cgroups {mode!r}: must be enabled, no-conmon or split")
    from mrun.images.containers import DEFAULT_CGROUP_PARENT

    if mode == "split" and cgroup_parent not in (None, "", DEFAULT_CGROUP_PARENT):
        raise InvalidSpec("--cgroups split with --cgroup-parent: conflicting options (split makes the container's "
                          "cgroup under the caller's)")
    return mode


NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")


def container_name(name: str) -> None:
    """docker's rule for --name: letters, digits, '_', '.' and '-', a letter or digit first (runc's
    ids also take '+', which names mrun's own cgroups beside a container's: cgroups.beside). One
    letter is taken, as mrun always took it (docker asks for two)."""
    if not (name[:1].isascii() and name[:1].isalnum() and set(name) <= NAME_CHARS):
        raise InvalidSpec(f"--name {name[:300]!r}: invalid container name, only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")


def _detach_keys(kw: dict[str, Any], terminal: bool) -> bytes:
    """docker's detach keys of a foreground `run -it` typed at a terminal (--detach-keys, else
    ctrl-p ctrl-q), where this run can let its caller go (a warm template's child, or a cold
    run's child: cli.cold_child) while it carries on; else none (docker reads them only from a
    terminal, and `run -ti < file` could hold them in its data). A bad --detach-keys is refused
    before anything is made."""
    from mrun.sandbox.console import parse_detach_keys

    keys = parse_detach_keys(kw.get("detach_keys") or "")
    if not (terminal and kw.get("interactive") and os.isatty(0)):
        return b""
    return keys if can_release() else b""


def _unproxied(signum: int, tee: Any, bundle: str, marks: str, on_its_own: list[Any]) -> None:
    """`run --sig-proxy=false` given a signal: it ends the caller alone, as it ends docker's
    client (status 128 + its number); the container runs on, its output into its log only (the
    tee shows no more), and this process carries on as its supervisor."""
    if tee is not None:
        tee.let_go()
    let_caller_go(128 + signum)
    _on_its_own(bundle, marks, on_its_own)


def _on_its_own(bundle: str, marks: str, on_its_own: list[Any]) -> None:
    """A run whose caller has gone, carrying on as its container's supervisor, goes where a
    detached one's is born (cgroups.beside): out of its caller's cgroup, whose end (a session's,
    a CI job's) would kill it. Whole (it may run threads: a terminal's relay), through
    cgroup.procs; ``leave`` at its end. Its OOM score goes down as a supervisor's does."""
    from mrun.cgroups import beside
    from mrun.images.supervisor import last_for_the_oom_killer

    if on_its_own:  # gone there already (a second signal to a --sig-proxy=false run)
        return
    last_for_the_oom_killer()  # and the OOM killer's last choice, as a detached container's is
    os.chdir("/")  # nor does it hold its caller's working directory any more
    cgroup = beside.prepare(bundle, marks)
    if cgroup is None:
        return
    try:
        cgroup.add(os.getpid())
    except (OSError, MrunError):
        pass
    on_its_own.append(cgroup)


def _detached(bundle: str, master: int, listening: list[Any], marks: str, on_its_own: list[Any],
              status: int = 0) -> Any:
    """A foreground `run -it` detached by its keys: the caller goes with status 0 (docker's), as
    if it had run `run -dit`, and this process carries on as its supervisor would: the relay
    logs the terminal's output, and the attach socket hands attachers the terminal (its
    master stays the relay's). A `run -t --sig-proxy=false` given a signal: the same, the
    caller's status 128 + its number. -> that listener, or None where it could not be made."""
    from mrun.images.held_input import HeldInput

    held: Any = HeldInput(bundle, terminal=True, open_stdin=True)
    held.master = master
    try:
        held.listen()
        listening.append(held)
    except OSError:
        held = None
    let_caller_go(status)
    _on_its_own(bundle, marks, on_its_own)
    return held


def _outliving_the_caller(then: Any) -> Any:
    """A foreground run goes on once its container runs, should its caller be killed (`timeout
    -s KILL`, the OOM killer): the container runs on either way, as docker's does when its client
    is killed, and the child doing the work (the warm template's, or cold, the caller's own:
    cli.cold_child) still waits for it, notes its exit code (`wait`, `ps`, `inspect`) and removes
    a --rm one, as docker's daemon does."""

    def started(record: Any) -> None:
        import mrun.warm.client as warm  # (layer 1: the client alone, not the template's package)

        warm.outlive_caller = True
        if then is not None:
            then(record)

    return started


def _volumes_from(g: dict[str, Any], text: str) -> list[dict[str, Any]]:
    """docker's --volumes-from CONTAINER[:ro|rw]: the container's volumes and bind mounts
    (``containers.user_mounts``), at the same places; ro or rw for all of them, else each as it
    is there. Its volumes then count it among their users, as docker's do."""
    from mrun.cli.short_ids import resolve
    from mrun.images.containers import user_mounts

    name, _, mode = text.partition(":")
    if not name or mode not in ("", "ro", "rw"):
        raise InvalidSpec(f"--volumes-from {text!r}: CONTAINER[:ro|rw] expected")
    name = resolve(g, name)  # docker's short ids
    record = _rt(g).store.load(name)
    shared = []
    for m in user_mounts(record.config, name):
        options = [o for o in m.get("options") or [] if o not in ("ro", "rw")]
        writable = mode == "rw" or (not mode and "ro" not in (m.get("options") or []))
        shared.append({"destination": m["destination"], "type": "bind", "source": m["source"],
                       "options": [*options, "rw" if writable else "ro"]})
    return shared

"""docker's `inspect` (containers and images, in docker's shapes) and `port`."""

from __future__ import annotations

import os

from mrun import annotations as ann
from mrun import jsonio
from mrun.cli.common import _rt, each, image_store, names_a_container
from mrun.cli.container_facts import layer_sizes, network_plan
from mrun.errors import InvalidSpec, NotFound
from mrun.status import Status
from mrun.units import decimal

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from mrun.images.store import ImageStore


def inspect(g: dict[str, Any], names: list[str], format: str = "", type: str = "",  # noqa: A002
            size: bool = False) -> int:
    """docker's inspect: containers, or images where no container has the name (``type``: only
    those), several at once. One name: its document (mrun's, an object) or its refusal, as
    before; several: a JSON array of those found, each one not found said, exit status 1.
    ``format``: docker's Go template, a line per name, over docker's fields and mrun's own.
    ``size``: a container's ``size_rw`` and ``size_root_fs`` (docker's SizeRw, SizeRootFs)."""
    if type not in ("", "container", "image"):
        raise InvalidSpec(f"--type {type!r}: container or image")
    if not names:
        raise InvalidSpec("inspect: name at least one container or image")
    docs = []

    def one(name: str) -> None:
        kind, doc = _inspected(g, name, type)
        if size and kind == "container":
            doc["size_rw"], doc["size_root_fs"] = layer_sizes(_rt(g), doc["state"]) or (0, 0)
        docs.append((kind, doc))

    status = each(names, "inspect", one, one_raises=True)
    if format:
        from mrun.cli.template import Template

        template = Template(format)  # parsed once, for every document
        for kind, doc in docs:
            view = _docker_view(doc) if kind == "container" else _docker_image_view(doc)
            if "size_rw" in doc:
                view["SizeRw"], view["SizeRootFs"] = doc["size_rw"], doc["size_root_fs"]
            print(template.render({**view, **doc}))
    elif len(names) == 1:
        print(jsonio.dumps(docs[0][1], indent=2))
    else:
        print(jsonio.dumps([doc for _kind, doc in docs], indent=2))
    return status


def _inspected(g: dict[str, Any], name: str, kind: str) -> tuple[str, dict[str, Any]]:
    """-> ("container" or "image", mrun's document of it)."""
    runtime = _rt(g)
    if names_a_container(runtime, name) and kind != "image":
        return "container", _container_doc(runtime, name)
    if kind == "container":
        raise NotFound(f"container {name!r} does not exist")
    store = image_store(g)
    try:
        return "image", _image_doc(store, name)
    except NotFound:
        if kind == "image":
            raise
        raise NotFound(f"container or image {name!r} does not exist") from None


def _container_doc(runtime: Any, container_id: str) -> dict[str, Any]:
    record = runtime.store.load(container_id)
    from mrun.bundles import image_of

    image = image_of(record.bundle)
    network = network_plan(runtime, container_id)
    from mrun.images.supervisor import exit_of
    from mrun.images.unstarted import as_docker_sees

    state = as_docker_sees(runtime.state(container_id))
    from mrun.images.health import read as health_of

    doc = {"state": state, "image": image, "network": network, "config": _secrets_hidden(record.config),
           "pid_start": record.pid_start, "state_dir": runtime.store.path(container_id)}
    if record.pid and state["status"] in (Status.STOPPED, Status.RUNNING, Status.PAUSED):
        doc["oom_killed"] = runtime.oom_killed(record)
    if (health := health_of(record.bundle)) is not None:
        doc["health"] = health
    ended = exit_of(record.bundle)  # a detached container's, as its supervisor saw it
    if state["status"] == Status.STOPPED:
        doc["exit"] = ended
    if ended is not None and isinstance(ended.get("restarts"), int):
        doc["restarts"] = ended["restarts"]  # docker's RestartCount, running or not
    elif record.pid:  # not one of `create IMAGE` that never ran: it has no process
        doc["backend"] = runtime.stats(container_id)["backend"]  # e.g. wasm: its store memory limit
    return doc


def _image_doc(store: ImageStore, ref: str) -> dict[str, Any]:
    """`image inspect`'s document: the index's entry and the image's config (its digest, which
    the entry names "config", is the image's id)."""
    from mrun.images import leases

    with leases.reading(store, [ref]) as [(name, entry)]:  # an rmi meanwhile: its config stays till read
        return {"name": name, "id": entry["config"], **entry, "config": store.read_json(entry["config"])}


def _secrets_hidden(config: dict[str, Any]) -> dict[str, Any]:
    """The container's config as inspect shows it: a --secret type=env variable without its value."""
    from mrun.images.secrets import hidden

    process = config.get("process") if isinstance(config, dict) else None
    if not isinstance(process, dict) or not isinstance(process.get("env"), list):
        return config
    env = hidden(process["env"], config.get("annotations") or {})
    return config if env is process["env"] else {**config, "process": {**process, "env": env}}


def _docker_image_view(doc: dict[str, Any]) -> dict[str, Any]:
    """The fields of docker's image inspect that scripts read (``inspect -f`` of an image)."""
    config = doc.get("config") or {}
    return {"Id": doc.get("id", ""), "RepoTags": [doc.get("name", "")],
            "Created": config.get("created", ""), "Architecture": config.get("architecture", ""),
            "Os": config.get("os", ""), "Config": config.get("config") or {}}


UNKNOWN_EXIT = 255  # containerd's (and so docker's) exit status for an end no one saw; not 0, which says it succeeded


def _docker_view(doc: dict[str, Any]) -> dict[str, Any]:
    """The fields of `docker inspect` that scripts read, from mrun's own (``inspect -f``)."""
    state, config, ended = doc["state"], doc["config"] or {}, doc.get("exit") or {}
    process = config.get("process") or {}
    args, user = process.get("args") or [], process.get("user") or {}
    status = {"stopped": "restarting" if ended.get("restarting") else "exited", "creating": "created"}.get(
        state["status"], state["status"])
    live = state["status"] in ("running", "paused")
    own = config.get("annotations") or {}
    labels = {k: v for k, v in own.items() if not ann.is_reserved(k)}
    policy = own.get(ann.RESTART) or "no"
    if ann.IMAGE in own:  # update --restart writes it into its bundle
        from mrun.images.supervisor import policy_now

        policy = policy_now(state.get("bundle") or "", policy)
    policy_name, _, retries = policy.partition(":")
    code, error = ended.get("exit_code"), ended.get("error") if isinstance(ended.get("error"), str) else ""
    if not isinstance(code, int):
        code = 0  # not ended (yet), as docker's
        if status == "exited":  # ended with no one left to note it (ps: "Exited (?)")
            code, error = UNKNOWN_EXIT, error or "its exit code was not kept (its runner was killed before it ended)"
    bundle = state.get("bundle") or ""
    mounts = _docker_mounts(state["id"], bundle, config)
    return {
        "Id": state["id"], "Name": "/" + state["id"], "Created": state.get("created", ""),
        "Path": args[0] if args else "", "Args": args[1:], "Image": (doc.get("image") or {}).get("config", ""),
        "RestartCount": doc.get("restarts", 0),
        "State": {"Status": status, "Running": state["status"] == "running", "Paused": state["status"] == "paused",
                  "Restarting": bool(ended.get("restarting")), "OOMKilled": bool(doc.get("oom_killed")),
                  "Dead": False, "Pid": state.get("pid", 0) if live else 0,
                  "ExitCode": code, "StartedAt": _started_at(doc), "FinishedAt": ended.get("finished", ""),
                  "Error": error, **({"Health": doc["health"]} if doc.get("health") else {})},
        "HostConfig": {"RestartPolicy": {"Name": policy_name, "MaximumRetryCount": decimal(retries) or 0},
                       "Runtime": own.get(ann.OCI_RUNTIME) or "mrun",
                       "AutoRemove": own.get(ann.REMOVE) == "true", **_docker_host_config(doc, mounts)},
        "LogPath": os.path.join(bundle, "log") if ann.IMAGE in own else "",
        **{key: _name_file(doc, name) for key, name in (("ResolvConfPath", "resolv.conf"),
                                                         ("HostnamePath", "hostname"), ("HostsPath", "hosts"))},
        "Driver": "overlay" if ann.IMAGE in own else "", "Platform": "linux",  # as info says
        "GraphDriver": {"Name": "overlay", "Data": {"MergedDir": os.path.join(bundle, "rootfs"),
                                                     "UpperDir": os.path.join(bundle, "upper"),
                                                     "WorkDir": os.path.join(bundle, "work")}}
        if ann.IMAGE in own else {"Name": "", "Data": {}},
        "AppArmorProfile": process.get("apparmorProfile") or "", "ProcessLabel": process.get("selinuxLabel") or "",
        "MountLabel": (config.get("linux") or {}).get("mountLabel") or "",
        "Config": {"Image": (doc.get("image") or {}).get("image", ""), "Hostname": config.get("hostname", ""),
                   "Domainname": config.get("domainname", ""), "Env": process.get("env") or [],
                   **_docker_command(own, args), "WorkingDir": process.get("cwd", ""), "Labels": labels,
                   "User": own.get(ann.USER, "") if ann.IMAGE in own else f"{user.get('uid', 0)}:{user.get('gid', 0)}",
                   "Tty": process.get("terminal") is True, "OpenStdin": own.get(ann.STDIN) == "open",
                   **({"StopSignal": own[ann.STOP_SIGNAL]} if own.get(ann.STOP_SIGNAL) else {}),
                   **_docker_config_extras(doc, own, bundle, mounts)},
        "NetworkSettings": {"IPAddress": (doc.get("network") or {}).get("ip", ""), "Ports": _docker_ports(doc),
                            "MacAddress": (doc.get("network") or {}).get("mac", ""),
                            "Networks": _docker_networks(doc.get("network") or {})},
        "Mounts": mounts,
    }


def _docker_config_extras(doc: dict[str, Any], own: dict[str, str], bundle: str,
                          mounts: list[dict[str, Any]]) -> dict[str, Any]:
    """docker's Config.ExposedPorts (its image's, --expose's and those it publishes; absent when
    none, as docker's), Volumes (its anonymous volumes' places: the image's Volumes and -v
    /DEST; null when none) and Healthcheck (when it has a check)."""
    from mrun.cli.container_facts import exposed_ports

    exposed = exposed_ports({"annotations": own, "bundle": bundle}, lambda _bundle: doc.get("image"))
    store_root = os.path.dirname(os.path.dirname(bundle)) if bundle else ""
    volumes = {}
    if store_root:
        from mrun.images.volumes import is_anonymous

        volumes = {m["Destination"]: {} for m in mounts if m.get("Name") and is_anonymous(store_root, m["Name"])}
    extras: dict[str, Any] = {"Volumes": volumes or None}
    if exposed:
        extras["ExposedPorts"] = {f"{port}/{proto}": {} for port, proto in sorted(exposed)}
    try:
        check = jsonio.loads(own[ann.HEALTH]) if own.get(ann.HEALTH) else None
    except ValueError:  # a bundle's own annotation, written by hand: no check read from it
        check = None
    if isinstance(check, dict):
        from mrun.images.health import docker_form

        if (shown := docker_form(check)) is not None:
            extras["Healthcheck"] = shown
    return extras


def _docker_command(annotations: dict[str, str], args: list[str]) -> dict[str, list[str] | None]:
    """docker's Config.Entrypoint and Config.Cmd: the process's args split where run or create
    noted the entrypoint ends (a bundle's: all Cmd); null where empty, as docker's."""
    at = annotations.get(ann.COMMAND_AT) or ""
    split = decimal(at, len(args)) or 0
    return {"Entrypoint": args[:split] or None, "Cmd": args[split:] or None}


def _started_at(doc: dict[str, Any]) -> str:
    """docker's State.StartedAt: when its process began (its start time in clock ticks), in UTC;
    docker's zero time for one that never ran."""
    from mrun.cli.docker_rows import _started
    from mrun.state import rfc3339

    epoch = _started(doc.get("pid_start"))
    return "0001-01-01T00:00:00Z" if epoch is None else rfc3339(epoch)


def _docker_host_config(doc: dict[str, Any], mounts: list[dict[str, Any]]) -> dict[str, Any]:
    """docker's HostConfig fields a script reads: its network mode, limits, ports and binds
    (``mounts``: its docker Mounts)."""
    from mrun.cli.docker_rows import network_of
    from mrun.network.store import DEFAULT_NETWORK

    config = doc.get("config") or {}
    linux = config.get("linux") or {}
    resources = linux.get("resources") or {}
    memory, cpu = resources.get("memory") or {}, resources.get("cpu") or {}
    quota, period = cpu.get("quota") or 0, cpu.get("period") or 0
    try:
        joined = jsonio.loads((config.get("annotations") or {}).get(ann.JOINED) or "{}")
    except ValueError:  # a bundle's own annotation, written by hand: no mode read from it
        joined = {}
    mode = network_of(config, doc.get("network")).split(",")[0]
    if isinstance(joined, dict) and isinstance(joined.get("network"), str):
        mode = f"container:{joined['network']}"
    binds = [f"{m.get('Name') or m['Source']}:{m['Destination']}{'' if m['RW'] else ':ro'}" for m in mounts]
    return {"NetworkMode": "bridge" if mode == DEFAULT_NETWORK else mode,
            "Privileged": False if not config else _privileged(config),
            "ReadonlyRootfs": bool((config.get("root") or {}).get("readonly")),
            "Memory": memory.get("limit") or 0, "MemoryReservation": memory.get("reservation") or 0,
            "MemorySwap": memory.get("swap") or 0, "CpuShares": cpu.get("shares") or 0,
            "CpuQuota": quota, "CpuPeriod": period,
            "NanoCpus": quota * 1_000_000_000 // period if quota > 0 and period else 0,
            "CpusetCpus": cpu.get("cpus") or "", "CpusetMems": cpu.get("mems") or "",
            "PidsLimit": (resources.get("pids") or {}).get("limit") or 0,
            "PortBindings": _docker_ports(doc), "Binds": binds}


def _privileged(config: dict[str, Any]) -> bool:
    """docker's --privileged as its config shows it: every capability, no seccomp filter, no
    masked paths (what run_flags makes of the flag)."""
    from mrun.kernel.capnames import NAMES
    from mrun.sandbox.caps import last_cap

    linux = config.get("linux") or {}
    bounding = ((config.get("process") or {}).get("capabilities") or {}).get("bounding") or []
    every = {f"CAP_{name}" for name in NAMES[: last_cap() + 1]}
    return not linux.get("seccomp") and not linux.get("maskedPaths") and every <= set(bounding)


def _name_file(doc: dict[str, Any], name: str) -> str:
    """Its /etc file of mrun's (hosts, hostname, resolv.conf) on the host, or "" where it has none:
    a bridge container's in its state, a host-network one's copies in its bundle (`mrun run`'s
    alone: a runc bundle's files are its maker's, bound or not)."""
    ours = ann.IMAGE in ((doc.get("config") or {}).get("annotations") or {})
    for place in (doc.get("state_dir") or "", (doc.get("state") or {}).get("bundle") or "" if ours else ""):
        path = os.path.join(place, name)
        if place and os.path.isfile(path):
            return path
    return ""


def _docker_mounts(container_id: str, bundle: str, config: dict[str, Any]) -> list[dict[str, Any]]:
    """docker's Mounts: its volumes and bind mounts (-v, --mount, its image's Volumes), not the
    files mrun binds beside them nor the tmpfs of /dev."""
    from mrun.images import volumes
    from mrun.images.containers import user_mounts

    found = user_mounts(config, container_id)
    store_root = os.path.dirname(os.path.dirname(bundle)) if bundle else ""
    named = volumes.names_of_mounts(store_root, found) if store_root else [None] * len(found)
    out = []
    for m, name in zip(found, named, strict=True):
        source, options = m.get("source", ""), m.get("options") or []
        rw = "ro" not in options
        propagation = next((o for o in options if o in ("rprivate", "private", "rshared", "shared", "rslave",
                                                        "slave")), "rprivate")
        entry = {"Type": "volume" if name else "bind", "Source": source, "Destination": m.get("destination", ""),
                 "Mode": "" if rw else "ro", "RW": rw, "Propagation": "" if name else propagation}
        if name:
            entry.update(Name=name, Driver="local")
        out.append(entry)
    return out


def port(g: dict[str, Any], container_id: str, private_port: str | None = None) -> int:
    """docker's port: ``80/tcp -> 0.0.0.0:32768`` for each published port, or for one the host
    address alone; one not published is an error, as docker's."""
    runtime = _rt(g)
    runtime.store.load(container_id)  # an unknown container: its one line
    published = [p for p in (network_plan(runtime, container_id) or {}).get("ports") or [] if isinstance(p, dict)]
    if private_port is None:
        for p in published:
            print(f"{p.get('port')}/{p.get('proto')} -> {p.get('host_ip') or '0.0.0.0'}:{p.get('host_port')}")
        return 0
    number, _, proto = private_port.partition("/")
    port = decimal(number)
    if port is None or (proto or "tcp") not in ("tcp", "udp"):
        raise InvalidSpec(f"port {private_port!r}: PORT[/tcp|udp] expected")
    wanted = f"{port}/{proto or 'tcp'}"
    found = [p for p in published if f"{p.get('port')}/{p.get('proto')}" == wanted]
    if not found:
        raise NotFound(f"no public port {wanted!r} published for {container_id}")
    for p in found:
        print(f"{p.get('host_ip') or '0.0.0.0'}:{p.get('host_port')}")
    return 0


def _docker_networks(plan: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """docker's NetworkSettings.Networks: each network it is on, its address there ({{(index
    .NetworkSettings.Networks "net").IPAddress}}, a script's usual read)."""
    out = {}
    for p in [plan, *(plan.get("more") or {}).values()]:
        if not isinstance(p, dict) or not isinstance(p.get("network"), str):
            continue
        definition = p.get("definition") if isinstance(p.get("definition"), dict) else {}
        out[p["network"]] = {"IPAddress": p.get("ip", ""), "Gateway": definition.get("gateway", ""),
                             "IPPrefixLen": int(str(definition.get("subnet", "/0")).partition("/")[2] or 0),
                             "MacAddress": p.get("mac", ""), "Aliases": p.get("names") or [],
                             "NetworkID": definition.get("bridge", "")}
    return out


def _docker_ports(doc: dict[str, Any]) -> dict[str, list[dict[str, str]]]:
    """docker's NetworkSettings.Ports: {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "32768"}]}."""
    out: dict[str, list[dict[str, str]]] = {}
    for p in (doc.get("network") or {}).get("ports") or []:
        if isinstance(p, dict):
            out.setdefault(f"{p.get('port')}/{p.get('proto')}", []).append(
                {"HostIp": p.get("host_ip") or "0.0.0.0", "HostPort": str(p.get("host_port"))})
    return out

"""docker's `ps` (and `container ls`): the containers, their filters (--filter), -n/-l, -s and
the bundles a killed `mrun run` left."""

from __future__ import annotations

import functools
import os

from mrun import jsonio
from mrun.cli.common import _rt, filter_pairs, image_store, print_table
from mrun.cli.container_facts import layer_sizes, network_plan
from mrun.cli.filters import labelled
from mrun.errors import InvalidSpec, MrunError, NotFound
from mrun.status import Status
from mrun.units import decimal

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def list_containers(g: dict[str, Any], format: str, filters: list[str], quiet: bool,  # noqa: A002
                    every: bool = True, last: int = -1, whole: bool = False, sized: bool = False) -> int:
    """docker's ps: without ``every`` (-a) the containers that run (running, paused, or about to
    start again under --restart), as docker lists them; a status filter asks for every one.
    ``last`` (-n, -l): the N created last, in every state, newest first (0: every one);
    ``whole``: commands not cut (--no-trunc); ``sized``: their sizes (-s)."""
    from mrun.bundles import image_of
    from mrun.images.supervisor import exit_of
    from mrun.images.unstarted import as_docker_sees

    runtime = _rt(g)
    wanted = _ps_filters(filters)
    every = every or "status" in wanted or "exited" in wanted or last >= 0
    listed = list(map(as_docker_sees, runtime.list()))
    if "before" in wanted or "since" in wanted:  # docker's: the named container's time, by name or id prefix
        wanted["_created"] = [_created_of(listed, v) for v in wanted.pop("before", [])]
        wanted["_created_after"] = [_created_of(listed, v) for v in wanted.pop("since", [])]

    def config_of(container_id: str) -> dict[str, Any]:
        try:
            return runtime.store.load(container_id).config
        except MrunError:
            return {}

    states = [s for s in listed if (every or _runs(s, exit_of)) and
              _matches(s, wanted, image_of, exit_of, config_of, lambda cid: network_plan(runtime, cid))]
    states.sort(key=lambda s: s.get("created") or "", reverse=True)  # docker's order: the newest first
    if last >= 0:
        states = states[:last] if last else states
    if quiet:
        for state in states:
            print(state["id"])
        if every and not wanted and last < 0:  # what `mrun rm -f $(mrun ps -aq)` should take away too
            for bundle in _orphans(g):
                print(os.path.basename(bundle))
        return 0
    from mrun.cli.docker_rows import PS_HEADERS, ps_row

    docker_rows = []
    for s in states:
        try:
            record = runtime.store.load(s["id"])
        except MrunError:
            continue
        stopped = s["status"] == Status.STOPPED
        row = ps_row(s, record, (image_of(s["bundle"]) or {}).get("image", ""),
                     exit_of(s["bundle"]) if stopped else None, network_plan(runtime, s["id"]))
        row["Size"] = _size_of(runtime, s) if sized or ".Size" in format else ""  # (a Row: {{.Label "KEY"}} kept)
        row["LocalVolumes"] = _local_volumes(g, record) if "LocalVolumes" in format or "json" in format else ""
        docker_rows.append(row)
    if format not in ("table", ""):  # docker's Go template (mrun.cli.listing)
        from mrun.cli.listing import formatted

        for line in formatted(format, docker_rows, PS_HEADERS):
            print(line)
        return 0
    # docker's own table: its columns, its words ("Up 5 seconds", "Exited (0) 2 minutes ago")
    columns = ("ID", "Image", "Command", "RunningFor", "Status", "Ports", "Names", *(("Size",) if sized else ()))
    rows = [tuple(PS_HEADERS[c] for c in columns)]
    for row in docker_rows:
        command = jsonio.loads(row["Command"])  # docker's: cut at 20 characters, then quoted as Go quotes
        if not whole and len(command) > 20:
            command = command[:19] + "\u2026"
        row["Command"] = '"' + "".join(c if c.isprintable() and c not in '"\\' else jsonio.dumps(c)[1:-1]
                                       for c in command) + '"'
        rows.append(tuple(row[c] for c in columns))
    for bundle in _orphans(g) if last < 0 else ():  # a killed `mrun run` left these: say how they go
        meta = image_of(bundle) or {}
        name = os.path.basename(bundle)
        orphan = {"ID": name, "Image": meta.get("image", "?"), "Status": "Orphaned (mrun rm -f)", "Names": name}
        rows.append(tuple(orphan.get(c, "") for c in columns))
    print_table(rows)
    return 0


def _local_volumes(g: dict[str, Any], record: Any) -> str:
    """docker's ``{{.LocalVolumes}}``: how many volumes the container mounts."""
    from mrun.images.volumes import of_container

    return str(len(of_container(g["image_root"], record.config or {})))


def _size_of(runtime: Any, state: dict[str, Any]) -> str:
    """docker's ps -s: the writable layer's size, and with its image's layers (virtual)."""
    from mrun.cli.listing import human_size

    sizes = layer_sizes(runtime, state)
    return f"{human_size(sizes[0])} (virtual {human_size(sizes[1])})" if sizes else "0B"


def _orphans(g: dict[str, Any]) -> list[str]:
    """The bundles a killed `mrun run` left, with no container recorded."""
    if not os.path.isdir(g["image_root"]):
        return []
    from mrun.images.containers import orphans

    return orphans(image_store(g), earlier_boot=True)


_PS_FILTERS = ("label", "name", "id", "status", "ancestor", "health", "exited", "before", "since", "network", "volume",
               "publish", "expose")


def _runs(state: dict[str, Any], exit_of: Any) -> bool:
    return state["status"] in (Status.RUNNING, Status.PAUSED) or (
        state["status"] == Status.STOPPED and bool((exit_of(state.get("bundle") or "") or {}).get("restarting")))


def _ps_filters(filters: list[str]) -> dict[str, list[str]]:
    """docker's ``ps --filter KEY=VALUE``s by key (one key's values: any may match; label's: all)."""
    wanted: dict[str, list[str]] = {}
    for text, key, value in filter_pairs(filters, _PS_FILTERS,
                                         f"KEY=VALUE expected, KEY one of {', '.join(_PS_FILTERS)}"):
        if key == "status" and value not in ("created", "running", "paused", "exited", "stopped", "creating"):
            raise InvalidSpec(f"--filter {text!r}: the status is created, running, paused or exited")
        if key == "health" and value not in ("starting", "healthy", "unhealthy", "none"):
            raise InvalidSpec(f"--filter {text!r}: the health is starting, healthy, unhealthy or none")
        if key == "exited" and decimal(value.removeprefix("-"), 1 << 31) is None:  # ("--5": int()'s error)
            raise InvalidSpec(f"--filter {text!r}: the exit code is a number")
        if key in ("publish", "expose"):
            _port_filter(key, value)
        if key == "name":
            import re

            try:
                re.compile(value)
            except re.error as e:
                raise InvalidSpec(f"--filter {text!r}: {e}") from None
        wanted.setdefault(key, []).append(value)
    return wanted


@functools.cache  # each value is read once, not once per container listed
def _port_filter(key: str, value: str) -> tuple[int, int, str]:
    """docker's publish= and expose= values: PORT[/PROTO] or FIRST-LAST[/PROTO] (tcp when none
    is said), the container's port. -> (first, last, proto)."""
    from mrun.images.run_flags import port_range

    said = f"--filter {f'{key}={value}'!r}"
    if ":" in value:  # docker's words
        raise InvalidSpec(f"{said}: filter for '{key}' should not contain ':'")
    return port_range(value, said)


def _created_of(states: list[dict[str, Any]], name: str) -> str:
    """When the container ``name`` (its id, or the start of one) was made, for --filter before=/since=."""
    found = [s for s in states if s["id"] == name] or [s for s in states if s["id"].startswith(name)]
    if len(found) != 1:
        raise NotFound(f"--filter: container {name!r} does not exist" if not found else
                       f"--filter: {name!r} names more than one container")
    return str(found[0].get("created") or "")


def _matches(state: dict[str, Any], wanted: dict[str, list[str]], image_of: Any, exit_of: Any,
             config_of: Any = None, net_of: Any = None) -> bool:
    """Whether a container's state (runtime.list) passes every key of ``wanted``."""
    annotations = state.get("annotations") or {}
    for key, values in wanted.items():
        if key == "label":
            if not all(labelled(annotations, value) for value in values):
                return False
            continue
        if key in ("_created", "_created_after"):  # before= / since=: each must hold
            created = str(state.get("created") or "")
            if not all((created < v) if key == "_created" else (created > v) for v in values):
                return False
            continue
        if key == "exited":  # a stopped container's noted exit code
            code = (exit_of(state.get("bundle") or "") or {}).get("exit_code") \
                if state["status"] == Status.STOPPED else None
            ok = code is not None and any(code == int(v) for v in values)
        elif key == "network":
            from mrun.cli.docker_rows import network_of

            ok = any(n in values for n in network_of(config_of(state["id"]), net_of(state["id"])).split(","))
        elif key == "volume":  # a volume by its name, or a volume or bind mount by where it is mounted
            from mrun.images import volumes
            from mrun.images.containers import user_mounts

            config = config_of(state["id"])
            places = {m.get("destination") for m in user_mounts(config, state["id"])}
            store_root = os.path.dirname(os.path.dirname(state.get("bundle") or ""))
            ok = any(v in places for v in values) or any(
                v in values for v in volumes.of_container(store_root, config))
        elif key in ("publish", "expose"):
            from mrun.cli.container_facts import exposed_ports, published_ports

            ports = published_ports(annotations) if key == "publish" else exposed_ports(state, image_of)
            ranges = [_port_filter(key, v) for v in values]
            ok = any(low <= port <= high and proto == want for port, proto in ports for low, high, want in ranges)
        elif key == "name":
            import re

            ok = any(re.search(v, state["id"]) for v in values)
        elif key == "id":
            ok = any(state["id"].startswith(v) for v in values)
        elif key == "health":  # a running container's, as its supervisor last wrote it
            from mrun.images.health import read

            found = read(state.get("bundle") or "") if state["status"] == Status.RUNNING else None
            ok = ((found or {}).get("Status") or "none") in values
        elif key == "status":  # docker says exited for mrun's (and runc's) stopped
            status = "exited" if state["status"] == Status.STOPPED else state["status"]
            ok = status in ["exited" if v == "stopped" else v for v in values]
        else:  # ancestor: the image it was made from, by the name it was run as or normalised
            from mrun.images.store import normalize

            image = (image_of(state.get("bundle") or "") or {}).get("image", "")
            ok = bool(image) and any(image in (v, normalize(v)) for v in values)
        if not ok:
            return False
    return True

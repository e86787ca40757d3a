"""The fields docker's listings offer to ``--format`` (``{{.Names}}``, ``{{.Status}}``), made from
mrun's own records: one dict of strings per row, as docker's are, and each verb's column titles
(``table {{.ID}}\\t{{.Status}}`` prints them as its header)."""

from __future__ import annotations

import os
import time

from mrun import annotations as ann
from mrun import jsonio
from mrun.cli.listing import docker_time, epoch_of, human_duration, human_size
from mrun.cli.template import Row, label_method
from mrun.status import Status

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

PS_HEADERS = {
    "ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "CreatedAt": "CREATED AT", "RunningFor": "CREATED",
    "Ports": "PORTS", "Status": "STATUS", "State": "STATE", "Names": "NAMES", "Labels": "LABELS", "Mounts": "MOUNTS",
    "Networks": "NETWORKS", "Size": "SIZE", "LocalVolumes": "LOCAL VOLUMES",
}
IMAGES_HEADERS = {
    "Repository": "REPOSITORY", "Tag": "TAG", "ID": "IMAGE ID", "Digest": "DIGEST", "CreatedSince": "CREATED",
    "CreatedAt": "CREATED AT", "Size": "SIZE", "Kind": "KIND",
}
VOLUME_HEADERS = {"Driver": "DRIVER", "Name": "VOLUME NAME", "Mountpoint": "MOUNTPOINT", "Scope": "SCOPE",
                  "Labels": "LABELS", "Kind": "KIND"}
NETWORK_HEADERS = {"ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE", "Subnet": "SUBNET",
                   "Gateway": "GATEWAY", "Bridge": "BRIDGE", "Labels": "LABELS", "Internal": "INTERNAL"}


def _started(pid_start: int | None) -> float | None:
    """When a process began, in seconds since the epoch, from its start time in clock ticks since
    boot. The boot's moment is now less the time since boot (CLOCK_BOOTTIME, which the start time
    counts in), not /proc/stat's btime: whole seconds, it put a start up to 1 s early."""
    if not pid_start:
        return None
    boot = time.time() - time.clock_gettime(time.CLOCK_BOOTTIME)
    return boot + pid_start / os.sysconf("SC_CLK_TCK")


def _ago(epoch: float | None, now: float) -> str:
    return f"{human_duration(now - epoch)} ago" if epoch is not None else ""


def ps_row(state: dict[str, Any], record: Any, image: str, ended: dict[str, Any] | None,
           net: dict[str, Any] | None) -> dict[str, str]:
    """``docker ps``'s fields for one container: ``state`` from ``Runtime.list``, ``record`` its
    state record, ``ended`` what its supervisor recorded of its exit, ``net`` its net.json."""
    now = time.time()
    config = record.config or {}
    args = (config.get("process") or {}).get("args") or []
    status = state["status"]
    up = f"Up {human_duration(now - started)}" if (started := _started(record.pid_start)) is not None else "Up"
    if status == Status.RUNNING:
        from mrun.images.health import read

        health = (read(state.get("bundle") or "") or {}).get("Status")
        shown, state_name = up + (f" (health: {health})" if health == "starting" else f" ({health})" if health
                                  else ""), "running"
    elif status == Status.PAUSED:
        shown, state_name = f"{up} (Paused)", "paused"
    elif status in (Status.CREATED, Status.CREATING):
        shown, state_name = "Created", "created"
    else:
        code = (ended or {}).get("exit_code")
        restarting = bool((ended or {}).get("restarting"))
        state_name = "restarting" if restarting else "exited"
        finished = epoch_of((ended or {}).get("finished") or "")
        shown = f"{'Restarting' if restarting else 'Exited'} ({'?' if code is None else code})"
        shown += f" {_ago(finished, now)}" if finished is not None else ""
    ports = [p for p in (net or {}).get("ports") or [] if isinstance(p, dict)]
    labels = {k: v for k, v in (config.get("annotations") or {}).items() if not ann.is_reserved(k)}
    from mrun.images.containers import user_mounts

    mounts = [m["source"] for m in user_mounts(config, state["id"])]
    created = state.get("created") or ""
    return Row({
        "ID": state["id"],
        "Image": image or "(bundle)",
        "Command": jsonio.dumps(" ".join(args)),
        "CreatedAt": docker_time(created),
        "RunningFor": _ago(epoch_of(created), now),
        "Ports": ", ".join(f"{p.get('host_ip') or '0.0.0.0'}:{p.get('host_port')}->{p.get('port')}/"
                           f"{p.get('proto') or 'tcp'}" for p in ports),
        "Status": shown,
        "State": state_name,
        "Names": state["id"],
        "Labels": labels_column(labels),
        "Mounts": ",".join(mounts),
        "Networks": network_of(config, net),
    }, label_method(labels))


def network_of(config: dict[str, Any], net: dict[str, Any] | None) -> str:
    """docker's names for a container's networks (ps's NETWORKS, --filter network=): its bridge
    networks' (its net.json, then its other networks'), comma-separated; without one, "host"
    when it shares the host's network namespace, else "none"; "" for a config without a linux
    section."""
    if (net or {}).get("network"):  # and its other networks' (`network connect`), as docker lists them
        return ",".join([str(net["network"]), *(net.get("more") or {})])  # type: ignore[index,union-attr]
    if config.get("linux") is None:
        return ""
    spaces = (config.get("linux") or {}).get("namespaces") or []
    return "none" if any(isinstance(ns, dict) and ns.get("type") == "network" for ns in spaces) else "host"


def image_row(name: str, entry: dict[str, Any]) -> dict[str, str]:
    repo, _, tag = name.rpartition(":")
    size = entry.get("size", 0)
    created = entry.get("created") or ""
    return {
        "Repository": repo, "Tag": tag, "ID": entry["config"].removeprefix("sha256:")[:12],
        "Digest": entry.get("manifest", ""), "CreatedSince": _ago(epoch_of(created), time.time()),
        "CreatedAt": docker_time(created), "Size": human_size(size),
        "Kind": "wasm" if entry.get("wasm") else "linux",
    }


def labels_column(labels: dict[str, str]) -> str:
    """docker's LABELS column and ``{{.Labels}}`` of a listing: KEY=VALUE,... by key."""
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def volume_row(name: str, described: dict[str, Any]) -> dict[str, str]:
    labels = described.get("labels") or {}
    return Row({"Driver": "local", "Name": name, "Mountpoint": described.get("mountpoint", ""), "Scope": "local",
                "Labels": labels_column(labels), "Kind": "anonymous" if described.get("anonymous") else "named"},
               label_method(labels))


def volume_view(described: dict[str, Any]) -> dict[str, Any]:
    """The fields of docker's volume inspect that scripts read (``volume inspect -f``)."""
    return {"Name": described.get("name", ""), "Driver": "local", "Mountpoint": described.get("mountpoint", ""),
            "Scope": "local", "Labels": described.get("labels") or {}, "Options": described.get("options") or {}}


def network_view(name: str, doc: dict[str, Any], leases: dict[str, dict[str, str]]) -> dict[str, Any]:
    """The fields of docker's network inspect that scripts read (``network inspect -f``); its
    Containers by the containers' names, each with its address in the subnet's length."""
    length = str(doc.get("subnet", "")).partition("/")[2]
    containers = {owner["container"]: {"Name": owner["container"], "IPv4Address": f"{ip}/{length}",
                                       "IPv6Address": ""}
                  for ip, owner in sorted(leases.items()) if isinstance(owner.get("container"), str)}
    return {"Name": name, "Id": doc.get("bridge", ""), "Driver": "bridge", "Scope": "local", "EnableIPv6": False,
            "Internal": bool(doc.get("internal")), "Attachable": False, "Ingress": False,
            "IPAM": {"Driver": "default", "Options": {},
                     "Config": [{"Subnet": doc.get("subnet", ""), "Gateway": doc.get("gateway", ""),
                                 **({"IPRange": doc["ip_range"]} if doc.get("ip_range") else {}),
                                 **({"AuxiliaryAddresses": doc["aux_addresses"]} if doc.get("aux_addresses")
                                    else {})}]},
            "Containers": containers,
            "Options": {"com.docker.network.bridge.name": doc.get("bridge", ""), **(doc.get("options") or {})},
            "Labels": doc.get("labels") or {}}


def network_row(name: str, doc: dict[str, Any]) -> dict[str, str]:
    """A network has no id of its own in mrun: its bridge's name stands for it."""
    labels = doc.get("labels") or {}
    return Row({"ID": doc.get("bridge", ""), "Name": name, "Driver": "bridge", "Scope": "local",
                "Subnet": doc.get("subnet", ""), "Gateway": doc.get("gateway", ""), "Bridge": doc.get("bridge", ""),
                "Labels": labels_column(labels), "Internal": "true" if doc.get("internal") else "false"},
               label_method(labels))

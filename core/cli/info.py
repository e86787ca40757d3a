"""docker's info (and `system info`): what this host and mrun's stores hold, as docker's server
section prints it, or through ``--format`` over docker's field names (``{{.CgroupVersion}}``,
``{{.ContainersRunning}}``, ``{{json .}}``), which scripts ask docker for."""

from __future__ import annotations

import os
import platform

from mrun.cli.common import _rt
from mrun.cli.listing import bytes_size
from mrun.status import Status

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def info(g: dict[str, Any], format: str = "") -> int:  # noqa: A002
    doc = facts(g)
    if format:
        from mrun.cli.template import render

        print(render("{{json .}}" if format == "json" else format, doc))  # docker's json: the document
        return 0
    lines = [
        f"Containers: {doc['Containers']}",
        f" Running: {doc['ContainersRunning']}",
        f" Paused: {doc['ContainersPaused']}",
        f" Stopped: {doc['ContainersStopped']}",
        f"Images: {doc['Images']}",
        f"Server Version: {doc['ServerVersion']}",
        f"Storage Driver: {doc['Driver']}",
        f"Logging Driver: {doc['LoggingDriver']}",
        f"Cgroup Driver: {doc['CgroupDriver']}",
        f"Cgroup Version: {doc['CgroupVersion']}",
        f"Backends: {' '.join(doc['Backends'])}",
        f"Default Runtime: {doc['DefaultRuntime']}",
        f"Kernel Version: {doc['KernelVersion']}",
        f"Operating System: {doc['OperatingSystem']}",
        f"OSType: {doc['OSType']}",
        f"Architecture: {doc['Architecture']}",
        f"CPUs: {doc['NCPU']}",
        f"Total Memory: {bytes_size(doc['MemTotal'])}",
        f"Name: {doc['Name']}",
        f"Docker Root Dir: {doc['DockerRootDir']}",
        f"State Dir: {doc['StateDir']}",
    ]
    print("\n".join(lines))
    for warning in doc["Warnings"]:
        print(f"WARNING: {warning}")
    return 0


def facts(g: dict[str, Any]) -> dict[str, Any]:
    from mrun import __version__
    from mrun.cgroups import detect
    from mrun.images.store import ImageStore
    from mrun.plugins.manager import Backends

    runtime = _rt(g)
    counts = {Status.RUNNING: 0, Status.PAUSED: 0, Status.STOPPED: 0}
    containers = runtime.list()
    for state in containers:
        status = state.get("status")
        key = status if status in counts else Status.STOPPED  # creating and created ones have not run
        counts[key] += 1
    uname = os.uname()
    forwarding = _read("/proc/sys/net/ipv4/ip_forward") == "1"
    warnings = [] if forwarding else ["IPv4 forwarding is disabled: a bridge network's containers reach no further"]
    return {
        "Containers": len(containers),
        "ContainersRunning": counts[Status.RUNNING],
        "ContainersPaused": counts[Status.PAUSED],
        "ContainersStopped": counts[Status.STOPPED],
        "Images": len(ImageStore(g["image_root"]).index()),
        "Driver": "overlay",
        "LoggingDriver": "json-file",
        "CgroupDriver": "systemd" if g.get("systemd_cgroup") else "cgroupfs",
        "CgroupVersion": str(detect()),
        "Backends": Backends.shared().names(),
        "DefaultRuntime": "mrun",
        "IPv4Forwarding": forwarding,
        "KernelVersion": uname.release,
        "OperatingSystem": _os_name(),
        "OSType": "linux",
        "Architecture": uname.machine,
        "NCPU": os.cpu_count() or 1,
        "MemTotal": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"),
        "Name": uname.nodename,
        "ServerVersion": __version__,
        "DockerRootDir": os.path.abspath(g["image_root"]),
        "StateDir": os.path.abspath(g["root"]),
        "PythonVersion": platform.python_version(),
        "Warnings": warnings,
    }


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""


def _os_name() -> str:
    """/etc/os-release's PRETTY_NAME, as docker prints it."""
    for line in _read("/etc/os-release").splitlines():
        key, _, value = line.partition("=")
        if key == "PRETTY_NAME":
            return value.strip().strip('"')
    return "Linux"

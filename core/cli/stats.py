"""`mrun stats`: docker's live table of each container's CPU, memory, network, block I/O and
processes, from its cgroup (v1 or v2, as ``Runtime.stats`` reads it) and its network namespace.

CPU % is the cgroup's CPU time over the wall time between two readings (docker's figure: its
CPU time over the system's, times the number of CPUs, comes to the same). Memory is what docker
shows: the usage less the inactive file cache, against the limit, or the host's memory when the
container has none. ``--no-stream`` prints one table; without it the table is redrawn every
second until interrupted."""

from __future__ import annotations

import sys
import time

from mrun.cli.common import _rt
from mrun.cli.listing import bytes_size, formatted, human_size
from mrun.errors import MrunError
from mrun.status import Status

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

HEADERS = {"Container": "CONTAINER", "ID": "CONTAINER ID", "Name": "NAME", "CPUPerc": "CPU %",
           "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %", "NetIO": "NET I/O", "BlockIO": "BLOCK I/O",
           "PIDs": "PIDS"}
DEFAULT = "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}"
INTERVAL = 1.0  # seconds between the readings a CPU % is taken over, and between redraws
UNLIMITED = 1 << 62  # v1 writes "no limit" as 2^63 less a page


def stats(g: dict[str, Any], containers: list[str], no_stream: bool = False, all: bool = False,  # noqa: A002
          format: str = "", no_trunc: bool = False) -> int:  # noqa: A002
    runtime = _rt(g)
    fmt = format if format not in ("", "table") else DEFAULT
    formatted(fmt, [], HEADERS)  # a template's fields are checked before anything is read
    for cid in containers:
        runtime.store.load(cid)  # an unknown one: its one line, as docker refuses it
    interactive = not no_stream and sys.stdout.isatty()
    before = _readings(runtime, containers, all)
    while True:
        time.sleep(INTERVAL)
        now = _readings(runtime, containers, all)
        rows = [_row(cid, now[cid], before.get(cid)) for cid in (containers or sorted(now)) if cid in now]
        text = "\n".join(formatted(fmt, rows, HEADERS))
        if interactive:
            text = "\033[2J\033[H" + text  # docker's redraw: clear, home
        print(text, flush=True)
        if no_stream:
            return 0
        before = now


def _readings(runtime: Any, named: list[str], all: bool) -> dict[str, dict[str, Any]]:  # noqa: A002
    """Each container's figures now: the named ones, or every running one (every one with ``all``)."""
    out = {}
    for state in runtime.list():
        cid = state["id"]
        if named and cid not in named:
            continue
        running = state["status"] in (Status.RUNNING, Status.PAUSED)
        if not (running or all or named):
            continue
        figures: dict[str, Any] = {"at": time.monotonic(), "running": running}
        if running:
            try:
                figures.update(runtime.stats(cid))
                record = runtime.store.load(cid)
                figures["net"] = _net_io(record.pid, record.config)
            except (MrunError, OSError):  # it stopped between the listing and now: zeros, as docker's
                figures["running"] = False
        out[cid] = figures
    return out


def _net_io(pid: int, config: dict[str, Any]) -> tuple[int, int]:
    """Bytes received and sent on the container's own interfaces (loopback left out, as docker's);
    a container in the host's network namespace has none of its own."""
    spaces = (config.get("linux") or {}).get("namespaces") or []
    if not any(ns.get("type") == "network" and not ns.get("path") for ns in spaces):
        return 0, 0
    rx = tx = 0
    try:
        with open(f"/proc/{pid}/net/dev") as f:
            for line in list(f)[2:]:
                name, _, counters = line.partition(":")
                fields = counters.split()
                if name.strip() != "lo" and len(fields) >= 9:
                    rx, tx = rx + int(fields[0]), tx + int(fields[8])
    except OSError:
        pass
    return rx, tx


def _row(cid: str, now: dict[str, Any], before: dict[str, Any] | None) -> dict[str, str]:
    zero = {"Container": cid, "ID": cid, "Name": cid, "CPUPerc": "0.00%", "MemUsage": "0B / 0B",
            "MemPerc": "0.00%", "NetIO": "0B / 0B", "BlockIO": "0B / 0B", "PIDs": "0"}
    if not now.get("running"):
        return zero
    if "cpu" not in now and "memory" not in now:  # a backend that keeps no cgroup of mrun's
        return {**zero, **{k: "--" for k in ("CPUPerc", "MemUsage", "MemPerc", "NetIO", "BlockIO", "PIDs")}}
    cpu = 0.0
    if before and before.get("running") and "cpu" in before and "cpu" in now:
        wall_ns = (now["at"] - before["at"]) * 1e9
        cpu = max(0, now["cpu"]["usage_ns"] - before["cpu"]["usage_ns"]) / wall_ns * 100 if wall_ns > 0 else 0.0
    memory = now.get("memory") or {}
    stat = memory.get("stat") or {}
    used = max(0, memory.get("usage", 0) - stat.get("total_inactive_file", stat.get("inactive_file", 0)))
    limit = memory.get("limit", 0)
    host = _host_memory()
    if not 0 < limit < UNLIMITED or (host and limit > host):
        limit = host
    rx, tx = now.get("net") or (0, 0)
    blkio = now.get("blkio") or {}
    return {
        **zero,
        "CPUPerc": f"{cpu:.2f}%",
        "MemUsage": f"{bytes_size(used)} / {bytes_size(limit)}",
        "MemPerc": f"{used / limit * 100 if limit else 0:.2f}%",
        "NetIO": f"{human_size(rx)} / {human_size(tx)}",
        "BlockIO": f"{human_size(blkio.get('read_bytes', 0))} / {human_size(blkio.get('write_bytes', 0))}",
        "PIDs": str((now.get("pids") or {}).get("current", 0)),
    }


def _host_memory() -> int:
    try:
        with open("/proc/meminfo") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemTotal:"))
    except (OSError, StopIteration, ValueError):
        return 0

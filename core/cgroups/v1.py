"""cgroup v1: one directory per mounted hierarchy (cpu,cpuacct / memory / pids / ...)."""

from __future__ import annotations

import os
import time

from mrun.cgroups.base import Cgroup, keyed, read, sub_request, write, write_all
from mrun.cgroups.resources import field_of, v1_writes
from mrun.errors import InvalidSpec, MrunError, Unsupported

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~6 ms (it imports re) on the lifecycle verbs' hot path
    from typing import Any

CONTROLLERS = (
    "cpu",
    "cpuacct",
    "cpuset",
    "memory",
    "pids",
    "blkio",
    "devices",
    "freezer",
    "hugetlb",
    "net_cls",
    "net_prio",
    "perf_event",
    "rdma",
    "misc",
)


UNIFIED = ""  # a hybrid host's cgroup2 hierarchy: /proc/PID/cgroup ("0::/path") and runc name it so


def mounts() -> dict[str, str]:
    """controller -> mount point of its v1 hierarchy, read from mountinfo. A named hierarchy
    (systemd's "name=systemd" on a hybrid host) counts as one: a container gets a cgroup there
    too, as runc gives it, or it stayed in its caller's (a systemd in the container, podman
    --systemd, then found no /sys/fs/cgroup/systemd of its own). So does a hybrid host's cgroup2
    hierarchy (``UNIFIED``), where systemd tracks processes: runc puts the container there too; left
    in its caller's, the container was counted, and on the caller's unit's stop killed, as its."""
    found: dict[str, str] = {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            pre, _, post = line.partition(" - ")
            fstype, _, opts = post.split(" ", 2)
            if fstype not in ("cgroup", "cgroup2"):
                continue
            mountpoint = pre.split(" ")[4].replace("\\040", " ")
            if fstype == "cgroup2":
                found.setdefault(UNIFIED, mountpoint)
                continue
            for opt in opts.strip().split(","):
                if opt in CONTROLLERS or opt.startswith("name="):
                    found.setdefault(opt, mountpoint)
    return found


def own_paths() -> dict[str, str]:
    out = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            for c in ctrls.split(","):
                out[c] = path
    return out


class CgroupV1(Cgroup):
    version = 1

    def __init__(self, paths: dict[str, str], saved: dict[str, Any] | None = None) -> None:
        self.paths = paths
        self._init_ownership(saved)

    @classmethod
    def at(cls, path: str, relative: bool) -> CgroupV1:
        mnt = mounts()
        if not mnt:
            raise MrunError("no cgroup v1 hierarchies are mounted under /sys/fs/cgroup")
        own = own_paths() if relative else {}
        paths = {c: os.path.join(m, own.get(c, "/").lstrip("/"), path.lstrip("/")) for c, m in mnt.items()}
        return cls(paths)

    def _dirs(self) -> list[str]:
        return sorted(set(self.paths.values()))

    def within(self, requests: list[str]) -> CgroupV1:
        paths = dict(self.paths)
        for text in requests:
            ctrl, rel = sub_request(text)
            ctrls = [c for c in self.paths if c in ctrl.split(",")] if ctrl else list(self.paths)
            if not ctrls:
                raise InvalidSpec(f"--cgroup {text}: the container has no {ctrl!r} cgroup")
            for c in ctrls:
                where = os.path.join(self.paths[c], rel)
                if not os.path.isdir(where):
                    if c == UNIFIED and not ctrl:  # the container does not see that hierarchy to make it
                        continue
                    raise InvalidSpec(f"--cgroup {text}: {where} does not exist")
                paths[c] = where
        return CgroupV1(paths)

    def _fill_cpuset(self, leaf: str) -> None:
        """New v1 cpusets start empty and refuse tasks until cpus/mems are copied down. Every
        container fills the whole chain above its leaf, whoever made each directory: a parent
        made a moment ago by a concurrent create may not be filled yet."""
        if leaf != self.paths.get("cpuset"):
            return
        chain, d = [], leaf
        while any(not read(os.path.join(d, f)) for f in ("cpuset.cpus", "cpuset.mems")):
            chain.append(d)
            d = os.path.dirname(d)
        for d in reversed(chain):
            for f in ("cpuset.cpus", "cpuset.mems"):
                if not read(os.path.join(d, f)):
                    write(os.path.join(d, f), read(os.path.join(os.path.dirname(d), f)))

    def apply(self, resources: dict[str, Any], devices: list[dict[str, Any]] | None = None) -> None:
        has_swap = "memory" in self.paths and os.path.exists(
            os.path.join(self.paths["memory"], "memory.memsw.limit_in_bytes")
        )
        writes = []
        for ctrl, name, value in v1_writes(resources, devices, has_swap):
            if ctrl not in self.paths:
                raise Unsupported(f"{field_of(name, False)}: cgroup v1 controller {ctrl!r} is not mounted on this "
                                  f"host (needed for {name})")
            writes.append((self._file_for(ctrl, name), value))
        write_all(_memory_order(writes, self.paths.get("memory", "")))

    def _file_for(self, ctrl: str, name: str) -> str:
        """Kernels whose block devices all use BFQ offer only blkio.bfq.weight[_device]: runc
        falls back to those, so do we."""
        path = os.path.join(self.paths[ctrl], name)
        if name in ("blkio.weight", "blkio.weight_device") and not os.path.exists(path):
            bfq = os.path.join(self.paths[ctrl], name.replace("blkio.", "blkio.bfq.", 1))
            if os.path.exists(bfq):
                return bfq
        return path

    def _prepare_leaf(self, leaf: str) -> None:
        self._fill_cpuset(leaf)

    def hierarchy_roots(self) -> list[str]:
        mnt = mounts()
        return sorted({mnt[c] for c in self.paths if c in mnt})

    def create(self, resources: dict[str, Any], devices: list[dict[str, Any]] | None = None) -> None:
        self.make()
        self.apply(resources, devices)

    def add(self, pid: int, born: bool = False) -> None:
        for d in self._dirs_to_enter(born):
            write(os.path.join(d, "cgroup.procs"), str(pid))

    def birth_dir(self) -> str | None:
        return self.paths.get(UNIFIED)

    def thread_files(self, born: bool = False) -> list[str]:
        """``tasks``: a thread's move takes no threadgroup lock. A hybrid host's cgroup2 hierarchy
        has no such file for domain cgroups (cgroup.threads serves threaded subtrees only): a
        process not born there moves whole, through cgroup.procs, and pays the lock (``prime_moves``)."""
        unified = self.paths.get(UNIFIED)
        return [os.path.join(d, "cgroup.procs" if d == unified else "tasks") for d in self._dirs_to_enter(born)]

    def _dirs_to_enter(self, born: bool) -> list[str]:
        unified = self.paths.get(UNIFIED) if born else None
        return [d for d in self._dirs() if d != unified]

    def _procs_dir(self) -> str:
        return self.paths.get("pids") or self.paths.get("freezer") or self._dirs()[0]

    def _freezer_dir(self) -> str:
        return self.paths.get("freezer", "")

    def _oom_file(self) -> str:
        return os.path.join(self.paths["memory"], "memory.oom_control") if "memory" in self.paths else ""

    def is_frozen(self) -> bool:
        path = self.paths.get("freezer")
        try:
            return bool(path) and read(os.path.join(path, "freezer.state")) != "THAWED"
        except FileNotFoundError:
            return False

    def set_frozen(self, frozen: bool) -> None:
        path = self.paths.get("freezer")
        if not path:
            raise Unsupported("the v1 freezer controller is not mounted on this host")
        state = "FROZEN" if frozen else "THAWED"
        deadline = time.monotonic() + 5
        while True:
            try:
                write(os.path.join(path, "freezer.state"), state)
                if read(os.path.join(path, "freezer.state")) == state:
                    return
            except (OSError, MrunError):
                # thawed, its processes died and whoever waited for them removed the cgroup
                # (`run -d --rm`'s supervisor, as `stop` thaws what it killed): nothing is left to thaw
                if not frozen and not os.path.isdir(path):
                    return
                raise
            if time.monotonic() > deadline:
                raise MrunError(f"cgroup {path} did not reach {state}")
            time.sleep(0.001)

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        mem = self.paths.get("memory")
        if mem and os.path.isdir(mem):
            oom = keyed(os.path.join(mem, "memory.oom_control"))
            out["memory"] = {
                "usage": int(read(os.path.join(mem, "memory.usage_in_bytes"))),
                "max_usage": int(read(os.path.join(mem, "memory.max_usage_in_bytes"))),
                "limit": int(read(os.path.join(mem, "memory.limit_in_bytes"))),
                "failcnt": int(read(os.path.join(mem, "memory.failcnt"))),
                "oom_kill": oom.get("oom_kill", 0),
                "oom_kill_disable": oom.get("oom_kill_disable", 0),
                "under_oom": oom.get("under_oom", 0),
                "stat": keyed(os.path.join(mem, "memory.stat")),
            }
            if os.path.exists(os.path.join(mem, "memory.memsw.usage_in_bytes")):
                out["memory"]["swap"] = {
                    k: int(read(os.path.join(mem, f"memory.memsw.{f}")))
                    for k, f in (("usage", "usage_in_bytes"), ("max_usage", "max_usage_in_bytes"),
                                 ("limit", "limit_in_bytes"), ("failcnt", "failcnt"))
                }
        cpu, acct = self.paths.get("cpu"), self.paths.get("cpuacct")
        if cpu and os.path.isdir(cpu):
            st = keyed(os.path.join(cpu, "cpu.stat"))
            ticks = keyed(os.path.join(acct, "cpuacct.stat")) if acct else {}
            tick_ns = 1_000_000_000 // os.sysconf("SC_CLK_TCK")
            out["cpu"] = {
                "usage_ns": int(read(os.path.join(acct, "cpuacct.usage"))) if acct else 0,
                "user_ns": ticks.get("user", 0) * tick_ns,
                "system_ns": ticks.get("system", 0) * tick_ns,
                "per_cpu_ns": [int(x) for x in read(os.path.join(acct, "cpuacct.usage_percpu")).split()]
                if acct
                else [],
                "periods": st.get("nr_periods", 0),
                "throttled_periods": st.get("nr_throttled", 0),
                "throttled_ns": st.get("throttled_time", 0),
            }
        blkio = self.paths.get("blkio")
        if blkio and os.path.exists(os.path.join(blkio, "blkio.throttle.io_service_bytes")):
            done = {"Read": 0, "Write": 0}
            with open(os.path.join(blkio, "blkio.throttle.io_service_bytes")) as f:
                for line in f:  # "8:0 Read 4096" per device and operation, then "Total N"
                    fields = line.split()
                    if len(fields) == 3 and fields[1] in done and fields[2].isdigit():
                        done[fields[1]] += int(fields[2])
            out["blkio"] = {"read_bytes": done["Read"], "write_bytes": done["Write"]}
        pids = self.paths.get("pids")
        if pids and os.path.isdir(pids):
            limit = read(os.path.join(pids, "pids.max"))
            out["pids"] = {
                "current": int(read(os.path.join(pids, "pids.current"))),
                "limit": 0 if limit == "max" else int(limit),
            }
        return out

    def runc_stats(self) -> dict[str, Any]:
        from mrun.cgroups.runc_stats import of_v1

        return of_v1(self.paths)

    def to_dict(self) -> dict[str, Any]:
        return {"version": 1, "paths": self.paths, **self._ownership()}


def _memory_order(writes: list[tuple[str, str]], memory_dir: str) -> list[tuple[str, str]]:
    """memory.limit_in_bytes may never exceed memory.memsw.limit_in_bytes: when a limit is raised
    (containerd sets swap = memory, 48 -> 96 MiB), swap goes first; when lowered, memory first."""
    limit = os.path.join(memory_dir, "memory.limit_in_bytes")
    swap = os.path.join(memory_dir, "memory.memsw.limit_in_bytes")
    paths = [p for p, _ in writes]
    if limit not in paths or swap not in paths or paths.index(swap) < paths.index(limit):
        return writes
    new_swap = int(dict(writes)[swap])
    try:
        current = int(read(limit))
    except (OSError, ValueError):
        return writes
    if new_swap == -1 or current < new_swap:  # raising: swap first (runc's rule)
        swap_write = writes[paths.index(swap)]
        rest = [w for w in writes if w[0] != swap]
        return [swap_write, *rest]
    return writes

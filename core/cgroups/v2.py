"""cgroup v2: one directory in the unified hierarchy. Device rules (``linux.resources.devices``)
are an eBPF program attached to it (``devices``), compiled from the rules v1 would write.
"""

from __future__ import annotations

import os
import time

from mrun.cgroups.base import Cgroup, keyed, read, sub_request, write, write_all
from mrun.cgroups.resources import device_rules, v2_controllers, v2_writes
from mrun.errors import InvalidSpec, MrunError, Unsupported

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~6 ms (it imports re) on the lifecycle verbs' hot path
    from typing import Any

MOUNT = "/sys/fs/cgroup"
# The linux.resources field a v2 controller serves (named in a refusal where it is missing)
CONTROLLER_FIELDS = {"cpuset": "cpu", "io": "blockIO", "hugetlb": "hugepageLimits"}


def own_path() -> str:
    with open("/proc/self/cgroup") as f:
        for line in f:
            if line.startswith("0::"):
                return line[3:].strip()
    return "/"


class CgroupV2(Cgroup):
    version = 2

    def __init__(self, path: str, saved: dict[str, Any] | None = None, mount: str = MOUNT) -> None:
        self.path = path
        self.mount = mount
        self._init_ownership(saved)

    @classmethod
    def at(cls, path: str, relative: bool, mount: str = MOUNT) -> CgroupV2:
        base = own_path() if relative else "/"
        return cls(os.path.join(mount, base.lstrip("/"), path.lstrip("/")), mount=mount)

    def _dirs(self) -> list[str]:
        return [self.path]

    def hierarchy_roots(self) -> list[str]:
        return [self.mount]

    def within(self, requests: list[str]) -> CgroupV2:
        if len(requests) != 1:
            raise InvalidSpec("--cgroup: cgroup v2 has one hierarchy: give one sub-cgroup")
        ctrl, rel = sub_request(requests[0])
        if ctrl:
            raise InvalidSpec(f"--cgroup {requests[0]}: cgroup v2 has no per-controller cgroups")
        where = os.path.join(self.path, rel)
        if not os.path.isdir(where):
            raise InvalidSpec(f"--cgroup {requests[0]}: {where} does not exist")
        return CgroupV2(where, mount=self.mount)

    def _file(self, name: str) -> str:
        return os.path.join(self.path, name)

    def _enable(self, controllers: set[str]) -> None:
        """Turn controllers on in every ancestor's cgroup.subtree_control, top down."""
        if not controllers:
            return
        rel = os.path.relpath(os.path.dirname(self.path), self.mount)
        parts = [] if rel == "." else rel.split("/")
        d = self.mount
        for i in range(len(parts) + 1):
            available = set(read(os.path.join(d, "cgroup.controllers")).split())
            missing = controllers - available
            if missing:
                fields = ", ".join(sorted({f"linux.resources.{CONTROLLER_FIELDS.get(c, c)}" for c in missing}))
                raise Unsupported(f"{fields}: cgroup v2 controller(s) {', '.join(sorted(missing))} are not available "
                                  f"in {d}")
            enabled = set(read(os.path.join(d, "cgroup.subtree_control")).split())
            todo = controllers - enabled
            if todo:
                try:
                    write(os.path.join(d, "cgroup.subtree_control"), " ".join("+" + c for c in sorted(todo)))
                except MrunError:
                    if d == self.mount or not read(os.path.join(d, "cgroup.procs")).strip():
                        raise
                    fields = ", ".join(sorted({f"linux.resources.{CONTROLLER_FIELDS.get(c, c)}" for c in todo}))
                    raise Unsupported(f"{fields}: cgroup v2 controller(s) {', '.join(sorted(todo))} cannot be "
                                      f"enabled below {d}: it holds processes (v2's rule for a domain cgroup; "
                                      "a relative cgroupsPath, as --cgroups split makes, is under the caller's)"
                                      ) from None
            if i < len(parts):
                d = os.path.join(d, parts[i])

    def create(self, resources: dict[str, Any], devices: list[dict[str, Any]] | None = None) -> None:
        writes = v2_writes(resources)
        self.make()
        self._enable(v2_controllers(writes))
        self._write(writes, devices, resources)

    def apply(self, resources: dict[str, Any], devices: list[dict[str, Any]] | None = None) -> None:
        writes = v2_writes(resources)
        self._enable(v2_controllers(writes))
        self._write(writes, devices, resources)

    def _write(self, writes: list[tuple[str, str, str]], devices: Any, resources: dict[str, Any]) -> None:
        write_all([self._target(name, value, resources) for _, name, value in writes], v2=True)
        rules = device_rules(resources, devices or [])
        if rules:
            from mrun.cgroups.devices import attach

            try:
                attach(self.path, rules)
            except OSError as e:
                raise MrunError(
                    f"linux.resources.devices: cannot attach the device filter (eBPF) to {self.path}: {e.strerror}"
                )

    def _target(self, name: str, value: str, resources: dict[str, Any]) -> tuple[str, str]:
        """io.weight, or io.bfq.weight where only BFQ's file is offered (runc falls back too;
        BFQ takes the v1 range 1..1000 unconverted)."""
        if name == "io.weight" and not os.path.exists(self._file(name)) and os.path.exists(self._file("io.bfq.weight")):
            blk = resources.get("blockIO") or {}
            if value.startswith("default ") and blk.get("weight"):
                return self._file("io.bfq.weight"), str(blk["weight"])
            major_minor = value.split()[0]
            for d in blk.get("weightDevice") or []:
                if f"{d['major']}:{d['minor']}" == major_minor and d.get("weight"):
                    return self._file("io.bfq.weight"), f"{major_minor} {d['weight']}"
        return self._file(name), value

    def add(self, pid: int, born: bool = False) -> None:
        if not born:
            write(self._file("cgroup.procs"), str(pid))

    def birth_dir(self) -> str | None:
        return self.path

    def _procs_dir(self) -> str:
        return self.path

    def _freezer_dir(self) -> str:
        return self.path

    def is_frozen(self) -> bool:
        try:
            return read(self._file("cgroup.freeze")) == "1"
        except FileNotFoundError:
            return False

    def set_frozen(self, frozen: bool) -> None:
        write(self._file("cgroup.freeze"), "1" if frozen else "0")
        want = 1 if frozen else 0
        deadline = time.monotonic() + 5
        while keyed(self._file("cgroup.events")).get("frozen", want) != want:
            if time.monotonic() > deadline:
                raise MrunError(f"cgroup {self.path} did not {'freeze' if frozen else 'thaw'}")
            time.sleep(0.001)

    def kill_all(self, sig: int = 9) -> None:
        if sig == 9 and self.path in self.owned() and os.path.exists(self._file("cgroup.kill")):
            write(self._file("cgroup.kill"), "1")
            return
        super().kill_all(sig)

    def _oom_file(self) -> str:
        return self._file("memory.events")

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if os.path.exists(self._file("memory.current")):
            events = keyed(self._file("memory.events"))
            limit = read(self._file("memory.max"))
            out["memory"] = {
                "usage": int(read(self._file("memory.current"))),
                "max_usage": int(read(self._file("memory.peak"))) if os.path.exists(self._file("memory.peak")) else 0,
                "limit": 0 if limit == "max" else int(limit),
                "failcnt": events.get("max", 0),
                "oom_kill": events.get("oom_kill", 0),
                "events": events,
                "stat": keyed(self._file("memory.stat")),
            }
            if os.path.exists(self._file("memory.swap.current")):
                swap_max = read(self._file("memory.swap.max"))
                out["memory"]["swap_usage"] = int(read(self._file("memory.swap.current")))
                out["memory"]["swap_limit"] = 0 if swap_max == "max" else int(swap_max)
        st = keyed(self._file("cpu.stat"))
        if st:
            out["cpu"] = {
                "usage_ns": st.get("usage_usec", 0) * 1000,
                "user_ns": st.get("user_usec", 0) * 1000,
                "system_ns": st.get("system_usec", 0) * 1000,
                "periods": st.get("nr_periods", 0),
                "throttled_periods": st.get("nr_throttled", 0),
                "throttled_ns": st.get("throttled_usec", 0) * 1000,
            }
        if os.path.exists(self._file("io.stat")):
            done = {"rbytes": 0, "wbytes": 0}
            with open(self._file("io.stat")) as f:
                for line in f:  # "8:0 rbytes=4096 wbytes=0 rios=1 ..." per device
                    for field in line.split()[1:]:
                        key, _, value = field.partition("=")
                        if key in done and value.isdigit():
                            done[key] += int(value)
            out["blkio"] = {"read_bytes": done["rbytes"], "write_bytes": done["wbytes"]}
        if os.path.exists(self._file("pids.current")):
            limit = read(self._file("pids.max"))
            out["pids"] = {
                "current": int(read(self._file("pids.current"))),
                "limit": 0 if limit == "max" else int(limit),
            }
        return out

    def runc_stats(self) -> dict[str, Any]:
        from mrun.cgroups.runc_stats import of_v2

        return of_v2(self.path)

    def to_dict(self) -> dict[str, Any]:
        return {"version": 2, "path": self.path, **self._ownership()}

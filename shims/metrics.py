"""cgroup figures (``Cgroup.stats()``) in the protobuf containerd expects from Stats.

cgroup v1 hosts get ``io.containerd.cgroups.v1.Metrics``, v2 hosts ``io.containerd.cgroups.v2.Metrics``:
`ctr task metrics` and CRI's stats decode one or the other by the Any's type URL.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import any_pb2

V2_MEMORY_STAT_KEYS = (
    "anon file kernel_stack slab sock shmem file_mapped file_dirty file_writeback anon_thp inactive_anon "
    "active_anon inactive_file active_file unevictable slab_reclaimable slab_unreclaimable pgfault pgmajfault"
).split()


def metrics_any(stats: dict[str, Any], cgroup_version: int) -> any_pb2.Any:
    if cgroup_version == 2:
        return any_pb2.Any(type_url="io.containerd.cgroups.v2.Metrics", value=_v2(stats).SerializeToString())
    return any_pb2.Any(type_url="io.containerd.cgroups.v1.Metrics", value=_v1(stats).SerializeToString())


def _v1(stats: dict[str, Any]) -> Any:
    from mrun.shims.proto import metrics_pb2 as m

    mem, cpu, pids = stats.get("memory", {}), stats.get("cpu", {}), stats.get("pids", {})
    return m.Metrics(
        pids=m.PidsStat(current=pids.get("current", 0), limit=pids.get("limit", 0)),
        cpu=m.CPUStat(
            usage=m.CPUUsage(total=cpu.get("usage_ns", 0)),
            throttling=m.Throttle(
                periods=cpu.get("periods", 0),
                throttled_periods=cpu.get("throttled_periods", 0),
                throttled_time=cpu.get("throttled_ns", 0),
            ),
        ),
        memory=m.MemoryStat(
            cache=mem.get("stat", {}).get("cache", 0),
            rss=mem.get("stat", {}).get("rss", 0),
            usage=m.MemoryEntry(
                limit=max(mem.get("limit", 0), 0),
                usage=mem.get("usage", 0),
                max=mem.get("max_usage", 0),
                failcnt=mem.get("failcnt", 0),
            ),
        ),
    )


def _v2(stats: dict[str, Any]) -> Any:
    from mrun.shims.proto import metrics_v2_pb2 as m

    mem, cpu, pids = stats.get("memory", {}), stats.get("cpu", {}), stats.get("pids", {})
    stat, events = mem.get("stat", {}), mem.get("events", {})
    return m.Metrics(
        pids=m.PidsStat(current=pids.get("current", 0), limit=pids.get("limit", 0)),
        cpu=m.CPUStat(
            usage_usec=cpu.get("usage_ns", 0) // 1000,
            user_usec=cpu.get("user_ns", 0) // 1000,
            system_usec=cpu.get("system_ns", 0) // 1000,
            nr_periods=cpu.get("periods", 0),
            nr_throttled=cpu.get("throttled_periods", 0),
            throttled_usec=cpu.get("throttled_ns", 0) // 1000,
        ),
        memory=m.MemoryStat(
            **{k: stat.get(k, 0) for k in V2_MEMORY_STAT_KEYS},
            usage=mem.get("usage", 0),
            usage_limit=max(mem.get("limit", 0), 0),
            swap_usage=mem.get("swap_usage", 0),
            swap_limit=mem.get("swap_limit", 0),
            max_usage=mem.get("max_usage", 0),
        ),
        memory_events=m.MemoryEvents(**{k: events.get(k, 0) for k in ("low", "high", "max", "oom", "oom_kill")}),
    )

"""cgroup figures (``Cgroup.stats()``) in the protobuf containerd expects from Stats.

cgroup v1 hosts get ``io.containerd.cgroups.v1.Metrics``, v2 hosts ``io.containerd.cgroups.v2.Metrics``:
`ctr task metrics` and CRI's stats decode one or the other by the Any's type URL.
"""

from __future__ import annotations

from google.protobuf import any_pb2

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

V2_MEMORY_STAT_KEYS = (
    "anon file kernel_stack slab sock shmem file_mapped file_dirty file_writeback anon_thp inactive_anon "
    "active_anon inactive_file active_file unevictable slab_reclaimable slab_unreclaimable pgfault pgmajfault"
).split()


def metrics_any(stats: dict[str, Any], cgroup_version: int) -> any_pb2.Any:
    if cgroup_version == 2:
        return any_pb2.Any(type_url="io.containerd.cgroups.v2.Metrics", value=_v2(stats).SerializeToString())
    return any_pb2.Any(type_url="io.containerd.cgroups.v1.Metrics", value=_v1(stats).SerializeToString())


# MemoryStat field -> memory.stat key (cgroup v1), where the names differ.
_V1_RENAMED = {"pg_pg_in": "pgpgin", "pg_pg_out": "pgpgout", "pg_fault": "pgfault", "pg_maj_fault": "pgmajfault",
               "hierarchical_swap_limit": "hierarchical_memsw_limit"}


def _v1_memory_stat(m: Any, stat: dict[str, int]) -> dict[str, int]:
    """Every MemoryStat number from memory.stat: kubelet's working set subtracts
    total_inactive_file from usage, and CRI reads total_rss and the page-fault counters."""
    out = {}
    for field in m.MemoryStat.DESCRIPTOR.fields:
        if field.message_type is not None:
            continue
        base = field.name.removeprefix("total_")
        key = _V1_RENAMED.get(base, base)
        key = f"total_{key}" if field.name.startswith("total_") else key
        out[field.name] = max(stat.get(key, 0), 0)
    return out


def _v1(stats: dict[str, Any]) -> Any:
    from mrun.shims.proto import metrics_pb2 as m

    mem, cpu, pids = stats.get("memory", {}), stats.get("cpu", {}), stats.get("pids", {})
    swap = mem.get("swap", {})
    return m.Metrics(
        pids=m.PidsStat(current=pids.get("current", 0), limit=pids.get("limit", 0)),
        cpu=m.CPUStat(
            usage=m.CPUUsage(
                total=cpu.get("usage_ns", 0),
                kernel=cpu.get("system_ns", 0),
                user=cpu.get("user_ns", 0),
                per_cpu=cpu.get("per_cpu_ns", []),
            ),
            throttling=m.Throttle(
                periods=cpu.get("periods", 0),
                throttled_periods=cpu.get("throttled_periods", 0),
                throttled_time=cpu.get("throttled_ns", 0),
            ),
        ),
        memory=m.MemoryStat(
            **_v1_memory_stat(m, mem.get("stat", {})),
            usage=m.MemoryEntry(
                limit=max(mem.get("limit", 0), 0),
                usage=mem.get("usage", 0),
                max=mem.get("max_usage", 0),
                failcnt=mem.get("failcnt", 0),
            ),
            swap=m.MemoryEntry(
                limit=max(swap.get("limit", 0), 0), usage=swap.get("usage", 0), max=swap.get("max_usage", 0),
                failcnt=swap.get("failcnt", 0),
            ),
        ),
        memory_oom_control=m.MemoryOomControl(
            oom_kill_disable=mem.get("oom_kill_disable", 0), under_oom=mem.get("under_oom", 0),
            oom_kill=mem.get("oom_kill", 0),
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

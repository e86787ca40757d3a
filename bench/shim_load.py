"""Throughput and density through containerd (2.3 if MRUN_TEST_CONTAINERD2 or ../shared/tools has it,
else Debian's 1.6), with the mrun shim started from the warm template:

* throughput: TASKS `ctr run --rm` with 4 concurrent clients, tasks per second: wasm hello via
  the mrun shim, busybox `true` via the mrun shim, busybox `true` via containerd's runc shim; and
  the CPU time the machine spent per task (from /proc/stat), since the clients saturate the CPUs;
* density: 50 idle wasm containers (pod.wasm waiting for a file that never comes) and 50 idle
  busybox `sleep` containers through the mrun shim, and 50 busybox `sleep` through the runc shim:
  private memory per container (Private_Clean + Private_Dirty of /proc/PID/smaps_rollup over the
  shim and everything under it, so the shim's share is included), one shim per container and,
  for mrun, one shim per pod;
* the warm template itself: its private memory and open descriptors before and after all that.

Usage: python bench/shim_load.py [TASKS] [IDLE]   (run as root; defaults 200 and 50; IDLE 0: throughput only)
"""

from __future__ import annotations

import os
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "examples"))

from conftest import IMAGE, await_template, warm_path  # noqa: E402
from shim import MRUN, RUNC, own_root, private_containerd  # noqa: E402
from test_containerd import WASM_IMAGE, Containerd  # noqa: E402


def private_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            return sum(int(line.split()[1]) for line in f if line.startswith(("Private_Clean", "Private_Dirty")))
    except OSError:
        return 0


def children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            tree.setdefault(ppid, []).append(int(entry))
    return tree


def subtree(pid: int, tree: dict[int, list[int]]) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += tree.get(p, [])
    return out


def shim_daemons(ctd: Containerd, name: str) -> list[int]:
    """Shim daemons of our containerd: their parent is no shim (exec'd: start's child reparented;
    warm: the template's child's)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmd = open(f"/proc/{entry}/cmdline", "rb").read()
        except OSError:
            continue
        if name.encode() in cmd and ctd.sock.encode() in cmd:
            found.append(int(entry))
    return [p for p in found if int(open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()[1]) not in found]


def busy_ms() -> float:
    """CPU time the whole machine has spent busy (every CPU, not idle or waiting for I/O), in ms."""
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) * 1000 / os.sysconf("SC_CLK_TCK")


def process_ms(pid: int) -> float:
    """CPU time ``pid`` has used (its threads' included), in ms."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def children_ms() -> float:
    """CPU time of our children that have ended (the ctr clients), in ms."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (usage.ru_utime + usage.ru_stime) * 1000


def throughput(ctd: Containerd, runtime: str, image: str, args: list[str], tasks: int, tag: str
               ) -> tuple[float, dict[str, float]]:
    """-> (tasks per second, CPU ms per task: the whole machine's, containerd's and the ctr clients')."""
    counter = iter(range(tasks))
    lock = threading.Lock()
    failures: list[str] = []

    def client() -> None:
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            cid = f"{tag}{i}"
            r = ctd.ctr("run", "--rm", "--fifo-dir", ctd.fifo_dir, *own_root(ctd, runtime), "--runtime", runtime,
                        "--cgroup", f"/{ctd.ns}/{cid}", image, cid, *args, check=False)
            if r.returncode not in (0, 3):
                failures.append(r.stderr[-300:])

    t, cpu, daemon, clients = time.perf_counter(), busy_ms(), process_ms(ctd.proc.pid), children_ms()
    threads = [threading.Thread(target=client) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    elapsed, cpu = time.perf_counter() - t, busy_ms() - cpu
    daemon, clients = process_ms(ctd.proc.pid) - daemon, children_ms() - clients
    if failures:
        raise SystemExit(f"{tag}: {len(failures)} failed: {failures[0]}")
    return tasks / elapsed, {"all": cpu / tasks, "containerd": daemon / tasks, "ctr": clients / tasks}


def density(ctd: Containerd, runtime: str, image: str, args: list[str], count: int, tag: str,
            pod: bool) -> tuple[float, int]:
    """-> (private MiB per container, processes counted)."""
    shim = "containerd-shim-mrun-v2" if runtime == MRUN else "containerd-shim-runc-v2"
    extra = ["--annotation", f"io.kubernetes.cri.sandbox-id={tag}pod"] if pod else []
    ids = [f"{tag}{i}" for i in range(count)]
    try:
        for cid in ids:
            ctd.ctr("run", "-d", "--fifo-dir", ctd.fifo_dir, *own_root(ctd, runtime), "--runtime", runtime, *extra,
                    "--cgroup", f"/{ctd.ns}/{cid}", image, cid, *args)
        time.sleep(2)  # let them settle into their wait (and a pod's shim let its spare worker go)
        tree = children()
        pids = {p for d in shim_daemons(ctd, shim) for p in subtree(d, tree)}
        total = sum(private_kib(p) for p in pids)
        return total / 1024 / count, len(pids)
    finally:
        for cid in ids:
            ctd.ctr("task", "kill", "-s", "KILL", cid, check=False)
        for cid in ids:
            deadline = time.monotonic() + 10
            while ctd.ctr("task", "rm", cid, check=False).returncode and time.monotonic() < deadline:
                time.sleep(0.1)
            ctd.ctr("container", "rm", cid, check=False)


def template_figures() -> tuple[int, int] | None:
    from mrun.warm import client

    status = client.status(warm_path())
    if not status:
        return None
    pid = status["pid"]
    # Once it has closed our status connection and readied itself (template.QUIET): counted at
    # once, that connection was sometimes still open (7 -> 8).
    time.sleep(0.2)
    return private_kib(pid), len(os.listdir(f"/proc/{pid}/fd"))


def main() -> None:
    tasks = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    idle = int(sys.argv[2]) if len(sys.argv) > 2 else 50
    # A pod's shim keeps a spare create worker for MRUN_SPARE_IDLE seconds after a create (~2 MiB):
    # 1 s here, so the density of a settled pod is what is measured 2 s after the last create.
    with private_containerd("mrun-shim-load-", env={"MRUN_SPARE_IDLE": "1"}) as (ctd, _work, bin_dir):
        ctd.ctr("run", "--rm", "--fifo-dir", ctd.fifo_dir, "--runtime", MRUN, "--cgroup", f"/{ctd.ns}/first",
                WASM_IMAGE, "first", check=False)
        await_template(warm_path(), "the warm template did not come up")  # after the first start
        time.sleep(0.5)  # and settles once quiet (20 ms): its figures before are a settled template's
        before = template_figures()
        rates = {
            "wasm hello via mrun": throughput(ctd, MRUN, WASM_IMAGE, [], tasks, "tw"),
            "busybox true via mrun": throughput(ctd, MRUN, IMAGE, ["true"], tasks, "tl"),
            "busybox true via runc": throughput(ctd, RUNC, IMAGE, ["true"], tasks, "tr"),
        }
        mem = {} if not idle else {  # IDLE 0: throughput only
            "wasm idle, mrun, shim per container": density(ctd, MRUN, WASM_IMAGE, ["/pod.wasm", "/never", "/x"],
                                                           idle, "dw", False),
            "wasm idle, mrun, one pod": density(ctd, MRUN, WASM_IMAGE, ["/pod.wasm", "/never", "/x"], idle, "pw",
                                                True),
            "busybox sleep, mrun, shim per container": density(ctd, MRUN, IMAGE, ["sleep", "600"], idle, "dl", False),
            "busybox sleep, runc, shim per container": density(ctd, RUNC, IMAGE, ["sleep", "600"], idle, "dr", False),
        }
        served = 2 * tasks + 3 * idle  # containers through the mrun shim so far
        extra = throughput(ctd, MRUN, IMAGE, ["true"], 500 - served, "tx")[0] if served < 500 and idle else None
        served = max(served, 500)
        after = template_figures()
    version = "2.3" if bin_dir else "1.6"
    print(f"containerd {version}: throughput, {tasks} `ctr run --rm` with 4 concurrent clients")
    for name, (rate, cpu) in rates.items():
        rest = cpu["all"] - cpu["containerd"] - cpu["ctr"]
        print(f"  {name:28s} {rate:6.1f} tasks/s   CPU per task {cpu['all']:5.1f} ms: containerd"
              f" {cpu['containerd']:4.1f}, ctr {cpu['ctr']:4.1f}, the rest {rest:4.1f} (runtime, shim, kernel)")
    ratio = {name: rate / rates["busybox true via runc"][0] for name, (rate, _cpu) in rates.items()}
    print(f"  wasm via mrun / busybox via runc: {ratio['wasm hello via mrun']:.2f}x"
          f"   (busybox via mrun / via runc: {ratio['busybox true via mrun']:.2f}x)")
    print("  (4 clients keep the CPUs busy: tasks per second follow the CPU per task, of which containerd's and"
          " ctr's share is the same whichever runtime runs the task)")
    if mem:
        print(f"density: {idle} idle containers, private memory per container (shim share included)")
    for name, (mib, procs) in mem.items():
        print(f"  {name:42s} {mib:6.2f} MiB   ({procs} processes)")
    if before and after:
        print(f"warm template: private {before[0] / 1024:.1f} -> {after[0] / 1024:.1f} MiB, "
              f"open descriptors {before[1]} -> {after[1]}, over {served} mrun containers")
    print(f"(extra throughput run: {extra:.1f} tasks/s)" if extra else "")


if __name__ == "__main__":
    main()

"""Whose CPU a `ctr run --rm` costs, process by process: a wasm hello and a busybox `true` through
the mrun shim (warm template up), and busybox `true` through containerd's runc shim, on a private
containerd (2.3 where ../shared/tools has it, else 1.6), one task at a time.

`perf record` samples every CPU (cpu-clock) along with the scheduler's fork, exec and exit
events; each sample is charged to the role its process had at that instant, found from its
ancestry and what it exec'd:

* mrun: the warm template; the native launcher (containerd-shim-mrun-v2 `start`/`delete`, exec'd
  by containerd); the shim daemon (the template's child); its fork helper (the daemon's child);
  the create worker (the helper's); the container's init (the worker's, and what it forks) until
  it execs, the container's program after;
* runc: containerd-shim-runc-v2 `start`/`delete` (exec'd by containerd); the shim daemon (exec'd
  by `start`); runc (each exec of it) and its init until it execs; the container's program after;
* both: containerd, ctr, and the rest (kernel threads, this script).

Each role's samples taken in the kernel are counted apart, and its six busiest functions named:
most of a forked Python process's CPU is the kernel's (copy-on-write faults on the template's
pages, page tables copied at fork and torn down at exit), not the interpreter's.
bench/shim_load.py gives the throughput these add up to under load and bench/timeline.py the
wall time of each step; this says which process to make cheaper. cpu-clock samples at 4999 Hz,
so a role's figure carries about +-0.2 ms of sampling noise per task at the default 40 tasks.
perf's side-band fork records are not used: only the tracepoints name the parent process.
Usage: python bench/shim_cpu.py [TASKS]   (root; perf, containerd, umoci, skopeo)
"""

from __future__ import annotations

import collections
import os
import pathlib
import re
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "examples"))

from conftest import IMAGE, await_template, warm_path  # noqa: E402
from shim import MRUN, RUNC, own_root, private_containerd  # noqa: E402
from test_containerd import WASM_IMAGE, Containerd  # noqa: E402

HZ = 5000
# A process's role once it forks: what its child is, until the child execs.
CHILD_ROLE = {
    "template": "shim daemon", "shim daemon": "fork helper", "fork helper": "create worker",
    "create worker": "container init", "container init": "container init",
    "runc shim daemon": "runc (and its init)", "runc (and its init)": "runc (and its init)",
    "container program": "container program", "ctr": "ctr",
}
MRUN_ROLES = ["template", "launcher (start, delete)", "shim daemon", "fork helper", "create worker",
              "container init"]
RUNC_ROLES = ["runc shim: start, delete", "runc shim daemon", "runc (and its init)"]
SHARED_ROLES = ["container program", "containerd", "ctr", "the rest"]
CONTAINERD_ROLES = ["containerd", "ctr", "the rest"]
EVENT = re.compile(r"^\s*(\d+)/(\d+)\s+[\d.]+:\s+(\S+):\s*(.*)$")


def role_on_exec(parent_role: str | None, old_role: str | None, filename: str) -> str | None:
    name = os.path.basename(filename)
    if name == "ctr":
        return "ctr"
    if name == "containerd-shim-mrun-v2":
        return "launcher (start, delete)"
    if name == "containerd-shim-runc-v2":
        return "runc shim daemon" if parent_role == "runc shim: start, delete" else "runc shim: start, delete"
    if name == "runc" or old_role == "runc (and its init)" and name == "exe":
        return "runc (and its init)"
    if old_role in ("container init", "runc (and its init)", "container program"):
        return "container program"
    return old_role


def charge(perf_data: str, template: int | None, containerd: int, spares: list[int],
           kernel: collections.Counter[str], symbols: dict[str, collections.Counter[str]]) -> collections.Counter[str]:
    """Samples per role, in the order perf wrote the events (time order). ``spares``: the
    template's children forked before perf started, each a shim daemon to be. ``kernel`` counts
    the samples taken in the kernel, by role, and ``symbols`` each role's samples by function."""
    out = subprocess.run(["perf", "script", "-i", perf_data, "-F", "pid,tid,time,event,trace,ip,sym"],
                         capture_output=True, text=True, check=True).stdout
    role: dict[int, str] = {containerd: "containerd", **{pid: "shim daemon" for pid in spares}}
    if template:
        role[template] = "template"
    parent: dict[int, int] = {}
    samples: collections.Counter[str] = collections.Counter()
    for line in out.splitlines():
        m = EVENT.match(line)
        if not m:
            continue
        pid, event, rest = int(m.group(1)), m.group(3), m.group(4)
        if event.startswith("cpu-clock"):
            if pid:  # pid 0: the idle task
                name = role.get(pid, "the rest")
                samples[name] += 1
                ip, _, sym = rest.partition(" ")
                if ip.startswith("ffff"):
                    kernel[name] += 1
                symbols.setdefault(name, collections.Counter())[sym.strip() or "[unknown]"] += 1
        elif event == "sched:sched_process_fork":
            child = int(re.search(r"child_pid=(\d+)", rest).group(1))
            parent[child] = pid
            if pid in role:  # a thread's samples carry its process's pid, so a thread needs no role
                role[child] = CHILD_ROLE.get(role[pid], "the rest")
        elif event == "sched:sched_process_exec":
            filename = rest.split()[0].removeprefix("filename=")
            new = role_on_exec(role.get(parent.get(pid, -1)), role.get(pid), filename)
            if new is not None:
                role[pid] = new
    return samples


def _ppid(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except OSError:
        return 0


def run_tasks(ctd: Containerd, runtime: str, image: str, args: list[str], tasks: int, tag: str, work: pathlib.Path,
              template: int | None, detail: dict[str, tuple]) -> dict[str, float]:
    """-> CPU ms per task, by role; ``detail[tag]``: (kernel ms per task by role, samples by role and function)."""
    data = str(work / f"perf-{tag}.data")
    # Every fork and exec (-c 1), and cpu-clock every 1/HZ s: a frequency (-F) would apply to
    # the tracepoints as well, and perf then drops most of them.
    events = ["-c", "1", "-e", "sched:sched_process_fork", "-e", "sched:sched_process_exec",
              "-e", f"cpu-clock/period={1_000_000_000 // HZ}/"]
    perf = subprocess.Popen(["perf", "record", "-a", "-m", "1024", *events, "-o", data],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)  # perf is sampling once its buffers are mapped
    spares = [p for p in map(int, filter(str.isdigit, os.listdir("/proc"))) if template and _ppid(p) == template]
    try:
        for i in range(tasks):
            cid = f"{tag}{i}"
            r = ctd.ctr("run", "--rm", "--fifo-dir", ctd.fifo_dir, *own_root(ctd, runtime), "--runtime", runtime,
                        "--cgroup", f"/{ctd.ns}/{cid}", image, cid, *args, check=False)
            if r.returncode not in (0, 3):
                raise SystemExit(f"{tag}: ctr run failed: {r.stderr[-300:]}")
    finally:
        perf.send_signal(2)
        _, err = perf.communicate()
    if "Captured and wrote" not in err:  # its exit status after SIGINT is not 0
        raise SystemExit(f"perf record failed: {err.strip()[-300:]}")
    from mrun.warm import client

    now = (client.status(warm_path()) or {}).get("pid")
    if runtime == MRUN and now != template:
        # Roles start from the template's pid: another template's children were charged to "the
        # rest" (seen once: busybox via mrun at 5 ms, the rest at 99 ms).
        raise SystemExit(f"{tag}: the warm template was replaced during the run (pid {template} -> {now}): "
                         "its figures would be charged to the wrong roles; run again")
    kernel: collections.Counter[str] = collections.Counter()
    symbols: dict[str, collections.Counter[str]] = {}
    samples = charge(data, template, ctd.proc.pid, spares, kernel, symbols)
    detail[tag] = ({name: n * 1000 / HZ / tasks for name, n in kernel.items()}, symbols)
    return {name: n * 1000 / HZ / tasks for name, n in samples.items()}


def main() -> None:
    tasks = int(sys.argv[1]) if len(sys.argv) > 1 else 40
    if not shutil.which("perf"):
        raise SystemExit("bench/shim_cpu.py needs perf (apt-get install linux-perf)")
    with private_containerd("mrun-shim-cpu-") as (ctd, work, bin_dir):
        for runtime, image, args in ((MRUN, WASM_IMAGE, []), (MRUN, IMAGE, ["true"]), (RUNC, IMAGE, ["true"])):
            for i in range(3):  # the template up and settled; images' snapshots, runc's pages in cache
                ctd.ctr("run", "--rm", "--fifo-dir", ctd.fifo_dir, *own_root(ctd, runtime), "--runtime", runtime,
                        "--cgroup", f"/{ctd.ns}/warmup{i}", image, f"warmup{i}", *args, check=False)
        await_template(warm_path(), "the warm template did not come up")
        from mrun.warm import client

        template = (client.status(warm_path()) or {}).get("pid")
        detail: dict[str, tuple] = {}
        figures = {
            "wasm hello via mrun": run_tasks(ctd, MRUN, WASM_IMAGE, [], tasks, "cw", work, template, detail),
            "busybox true via mrun": run_tasks(ctd, MRUN, IMAGE, ["true"], tasks, "cl", work, template, detail),
            "busybox true via runc": run_tasks(ctd, RUNC, IMAGE, ["true"], tasks, "cr", work, template, detail),
        }
    version = "2.3" if bin_dir else "1.6"
    names = list(figures)
    print(f"containerd {version}: CPU ms per `ctr run --rm`, by process role, {tasks} tasks one at a time")
    print(f"{'':28s}" + "".join(f"{n:>24s}" for n in names))
    for group in (MRUN_ROLES, RUNC_ROLES, SHARED_ROLES):
        print("  " + {id(MRUN_ROLES): "mrun", id(RUNC_ROLES): "runc", id(SHARED_ROLES): "either"}[id(group)])
        for r in group:
            print(f"{r:28s}" + "".join(f"{figures[n].get(r, 0.0):24.2f}" for n in names))
        print()
    print("of which in the kernel")
    for group in (MRUN_ROLES, RUNC_ROLES):
        for r in group:
            print(f"{r:28s}" + "".join(f"{detail[t][0].get(r, 0.0):24.2f}" for t in ("cw", "cl", "cr")))
    print()
    for tag, roles in (("cw", MRUN_ROLES), ("cr", RUNC_ROLES)):
        for r in roles:
            top = detail[tag][1].get(r, collections.Counter()).most_common(6)
            print(f"{tag} {r}: " + ", ".join(f"{sym} {n * 1000 / HZ / tasks:.2f}" for sym, n in top))
    print()
    for n in names:
        own = sum(v for r, v in figures[n].items() if r not in CONTAINERD_ROLES)
        print(f"{n}: runtime, shim and container {own:.1f} ms; with containerd, ctr and the rest"
              f" {sum(figures[n].values()):.1f} ms")


if __name__ == "__main__":
    main()

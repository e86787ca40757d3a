"""Where the time of a container goes, phase by phase, from mrun's own step marks ($MRUN_TRACE,
mrun.trace), in medians over ROUNDS:

* `ctr run --rm` through containerd-shim-mrun-v2, a Linux `true` (busybox) and a wasm hello,
  one shim per container and in a running pod (its sandbox-id annotation: the shim's start is
  answered by the template itself), on a private containerd 1.6 with the warm template up: what
  containerd and ctr spend before the shim's start, start itself, the wait for the daemon to
  take Create, Create (and in it the create worker and each of its steps), Start, the program's
  run and exit, Delete, and what containerd and ctr spend between and after;
* the runc verbs (`create`, `start`, `delete`), one process each as containerd's runc shim and
  podman run them: each verb's wall time against the time its handler ran, the rest being the
  process's start-up and exit; for a verb the warm template serves, that rest in its parts (to
  the template's child, the child becoming its caller, parsing, and after the handler).

Not a comparison: bench/shim.py and bench/lifecycle.py give the ratios to runc. This says which
part to work on. The marks cost a file append each (~20 us); figures carry that.
Usage: python bench/timeline.py [ROUNDS]   (root; containerd, umoci, skopeo)
"""

from __future__ import annotations

import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "examples"))
sys.path.insert(0, HERE)

from busybox_bundle import make_bundle, remove_parent_cgroup  # noqa: E402
from conftest import IMAGE, await_template, machine_dirs_kept, stop_templates, warm_path  # noqa: E402
from shim import MRUN, busybox_archive  # noqa: E402
from test_containerd import WASM_IMAGE, Containerd, build_wasm_archive  # noqa: E402

Mark = tuple[int, int, int, str]  # pid, start ns, duration ns, step


def read_marks(path: str, since: int, until: int) -> list[Mark]:
    out = []
    with open(path) as f:
        for line in f:
            pid, start, duration, name = line.rstrip("\n").split(" ", 3)
            if since <= int(start) <= until:
                out.append((int(pid), int(start), int(duration), name))
    return out


def phases(marks: list[Mark], began: int, ended: int) -> dict[str, float]:
    """One `ctr run`'s phases in ms, from its marks; the unmarked gaps are containerd's and ctr's
    (and the kernel's: the init's exit is in "run and exit")."""
    first = {}
    for m in marks:
        first.setdefault(m[3], m)
    start, create, go, wait, delete = (first[n] for n in (
        "shim start", "ttrpc Create", "ttrpc Start", "ttrpc Wait", "ttrpc Delete"))

    def end(m: Mark) -> int:
        return m[1] + m[2]

    out = {
        "containerd + ctr, before the shim's start": start[1] - began,
        "shim start (its Python part)": start[2],
        "start answered -> Create taken (launcher exit, containerd, daemon set-up)": create[1] - end(start),
        "Create": create[2],
        "containerd + ctr: Create -> Start": go[1] - end(create),
        "Start": go[2],
        "run and exit (Start's end -> Wait's answer)": end(wait) - end(go),
        "containerd + ctr: Wait -> Delete": delete[1] - end(wait),
        "Delete": delete[2],
        "containerd + ctr: after Delete (Shutdown, shim delete, snapshot)": ended - end(delete),
    }
    worker = first.get("worker")
    if worker:
        out["  in Create: before the worker"] = worker[1] - create[1]
        out["  in Create: the worker"] = worker[2]
        out["  in Create: after the worker"] = end(create) - end(worker)
        for m in marks:
            if m[3].startswith("create ") and m[0] == worker[0]:
                out[f"    worker: {m[3]}"] = m[2]
    return {k: v / 1e6 for k, v in out.items()}


def ctr_runs(work: pathlib.Path, trace: str, rounds: int) -> dict[str, dict[str, float]]:
    ctd = Containerd(busybox_archive(work), env={"MRUN_TRACE": trace})
    results = {}
    try:
        ctd.ctr("image", "import", build_wasm_archive(work))
        pod = ["--annotation", "io.kubernetes.cri.sandbox-id=timelinepod"]
        cases = {"linux (busybox true)": (IMAGE, ["true"], []), "wasm (hello)": (WASM_IMAGE, [], []),
                 "linux, in a pod": (IMAGE, ["true"], pod), "wasm, in a pod": (WASM_IMAGE, [], pod)}
        for i in range(3):  # the template, compiled modules, page cache
            for image, args, _ in cases.values():
                ctd.ctr("run", "--rm", "--fifo-dir", ctd.fifo_dir, "--runtime", MRUN, "--cgroup",
                        f"/{ctd.ns}/w{i}", image, f"w{i}", *args, check=False)
        await_template(warm_path(), "the warm template did not come up")
        # the pod's shim, kept by a container of its own and started from the template
        ctd.ctr("run", "-d", "--fifo-dir", ctd.fifo_dir, "--runtime", MRUN, *pod, "--cgroup",
                f"/{ctd.ns}/keeper", IMAGE, "keeper", "sleep", "3600")
        time.sleep(0.5)
        per: dict[str, list[dict[str, float]]] = {name: [] for name in cases}
        for i in range(rounds):
            for name, (image, args, extra) in cases.items():
                cid = f"t{i}-{len(per[name])}-{name[:4]}{len(extra)}"
                began = time.monotonic_ns()
                r = ctd.ctr("run", "--rm", "--fifo-dir", ctd.fifo_dir, "--runtime", MRUN, "--cgroup",
                            f"/{ctd.ns}/{cid}", *extra, image, cid, *args, check=False)
                ended = time.monotonic_ns()
                if r.returncode not in (0, 3):  # hello.wasm exits with its argv[1] (3 in the image)
                    raise SystemExit(f"{name}: ctr run failed: {r.stderr}")
                row = phases(read_marks(trace, began, ended), began, ended)
                row["wall (ctr run --rm)"] = (ended - began) / 1e6
                per[name].append(row)
        for name, rows in per.items():
            results[name] = {k: statistics.median(r[k] for r in rows if k in r) for k in rows[0]}
    finally:
        ctd.ctr("task", "kill", "-s", "KILL", "keeper", check=False)
        ctd.stop()
        remove_parent_cgroup(ctd.ns)
    return results


def verb_runs(work: pathlib.Path, trace: str, rounds: int) -> dict[str, dict[str, float]]:
    mrun = os.path.join(os.path.dirname(sys.executable), "mrun")
    root, bundle, tag = str(work / "state"), str(work / "bundle"), f"mrun-timeline-{os.getpid()}"
    os.makedirs(bundle)
    make_bundle(bundle, ["/bin/true"], cgroups_path=f"/{tag}/c")
    env = {**os.environ, "MRUN_TRACE": trace}
    rows: dict[str, list[dict[str, float]]] = {"create": [], "start": [], "delete": []}
    try:
        for i in range(rounds + 2):
            cid = f"v{i}"
            for verb, args in (("create", ["--bundle", bundle, cid]), ("start", [cid]), ("delete", ["--force", cid])):
                began = time.monotonic_ns()
                subprocess.run([mrun, "--root", root, verb, *args], check=True, stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, env=env)
                ended = time.monotonic_ns()
                marks = {m[3]: m for m in read_marks(trace, began, ended)}
                ran = marks.get(f"cli {verb}")
                if i < 2 or ran is None:  # two rounds warm the page cache and the template
                    continue
                row = {"wall": (ended - began) / 1e6, "its handler": ran[2] / 1e6,
                       "start-up and exit (wall - handler)": (ended - began - ran[2]) / 1e6}
                became = marks.get("warm become")
                if became is not None:  # served by the template: where its start-up went
                    row["  launcher to the template's child (connect, checks, hand-over)"] = (became[1] - began) / 1e6
                    row["  the child becoming its caller (warm become)"] = became[2] / 1e6
                    row["  after becoming, before the handler (parse)"] = (ran[1] - became[1] - became[2]) / 1e6
                    row["  after the handler (status, release, exit)"] = (ended - ran[1] - ran[2]) / 1e6
                rows[verb].append(row)
    finally:
        remove_parent_cgroup(tag)
    return {verb: {k: statistics.median(r[k] for r in got) for k in got[0]}
            for verb, got in rows.items() if got and all(r.keys() == got[0].keys() for r in got)}


def show(title: str, table: dict[str, dict[str, float]]) -> None:
    names = list(table)
    keys = list(dict.fromkeys(k for t in table.values() for k in t))
    print(f"\n{title}")
    print(f"{'':74s}" + "".join(f"{n:>24s}" for n in names))
    for k in keys:
        print(f"{k:74s}" + "".join(f"{table[n][k]:21.2f} ms" if k in table[n] else f"{'-':>24s}" for n in names))


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    work = pathlib.Path(tempfile.mkdtemp(prefix="mrun-timeline-"))
    os.environ["MRUN_WARM_DIR"] = str(work / "warm")  # its own template, stopped at the end
    trace = str(work / "trace.log")
    try:
        with machine_dirs_kept():  # mrun's shim under containerd 1.6 makes /run/mrun-shim
            shim_table = ctr_runs(work, trace, rounds)
        verbs = verb_runs(work, trace, rounds)
    finally:
        if os.path.isdir(os.environ["MRUN_WARM_DIR"]):
            stop_templates(os.environ["MRUN_WARM_DIR"])
        shutil.rmtree(work, ignore_errors=True)
    show(f"`ctr run --rm` through the mrun shim, one shim per container (containerd 1.6, warm), "
         f"medians of {rounds}", shim_table)
    show(f"runc verbs, one process each (warm), medians of {rounds}", verbs)


if __name__ == "__main__":
    main()

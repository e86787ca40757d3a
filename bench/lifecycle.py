"""mrun vs runc, driven the way containerd's runc shim and podman drive a runtime: one process
per verb (create, start, delete --force) on a bundle running /bin/true. Prints the median of
each and the ratio, three ways: warm (the first `start` finds no template and brings one up in
the caller's cgroup, as for podman or containerd's runc shim, which call nothing else; it serves
start and delete; create always stays in its caller), cold (MRUN_WARM=0) and through the
Python launcher (what `mrun` is without a C compiler).
Usage: python bench/lifecycle.py [ROUNDS] [MRUN_BINARY]
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(HERE, "examples"))
sys.path.insert(0, os.path.join(HERE, "tests"))
from busybox_bundle import make_bundle, remove_parent_cgroup  # noqa: E402
from conftest import stop_templates, warm_log  # noqa: E402

VERBS = ("create", "start", "delete")


def lifecycle(binary: str, root: str, bundle: str, cid: str, env: dict[str, str]) -> list[float]:
    times = []
    for args in (["create", "--bundle", bundle, cid], ["start", cid], ["delete", "--force", cid]):
        t0 = time.perf_counter()
        subprocess.run([binary, "--root", root, *args], check=True, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, env=env)
        times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    mrun = sys.argv[2] if len(sys.argv) > 2 else os.path.join(os.path.dirname(sys.executable), "mrun")
    runc = shutil.which("runc")
    if not runc:
        sys.exit("runc is not installed (apt-get install runc)")
    work = tempfile.mkdtemp(prefix="mrun-bench-")
    tag = f"mrun-bench-{os.getpid()}"
    warm_dir = os.path.join(work, "warm")
    env = {**os.environ, "MRUN_WARM_DIR": warm_dir}
    runs = {
        "mrun warm": (mrun, env),
        "mrun cold": (mrun, {**env, "MRUN_WARM": "0"}),
        "mrun, Python launcher": (os.path.join(os.path.dirname(mrun), "mrun-python"), env),
        "runc": (runc, env),
    }
    try:
        bundle = os.path.join(work, "bundle")
        os.makedirs(bundle)
        make_bundle(bundle, ["/bin/true"], cgroups_path=f"/{tag}/c")
        times: dict[str, list[list[float]]] = {name: [] for name in runs}
        for i in range(rounds + 2):
            for n, (name, (binary, run_env)) in enumerate(runs.items()):
                t = lifecycle(binary, os.path.join(work, f"root-{n}"), bundle, f"c{n}-{i}", run_env)
                if i >= 2:  # the first rounds warm caches (page cache, plugin cache) and bring the template up
                    times[name].append(t)
        base = statistics.median(sum(t) for t in times["runc"])
        print(f"create+start+delete, medians of {rounds} (ms)   total   create  start  delete   ratio to runc")
        for name, samples in times.items():
            total = statistics.median(sum(t) for t in samples)
            verbs = [statistics.median(t[k] for t in samples) * 1000 for k in range(3)]
            print(f"  {name:<40} {total * 1000:6.1f}  {verbs[0]:6.1f} {verbs[1]:6.1f} {verbs[2]:6.1f}   "
                  f"{total / base:5.2f}")
    except subprocess.CalledProcessError:
        if os.path.isdir(warm_dir):  # a warm verb that failed: what the template saw, before it goes
            print(warm_log(warm_dir), file=sys.stderr)
        raise
    finally:
        stop_templates(warm_dir) if os.path.isdir(warm_dir) else None
        shutil.rmtree(work, ignore_errors=True)
        remove_parent_cgroup(tag)


if __name__ == "__main__":
    main()

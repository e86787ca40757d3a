"""A warm call from the template's own cgroup2 cgroup against one from another cgroup2 cgroup
(a v2 host's other login session, podman's clean-up in conmon's cgroup; a hybrid host's unified
hierarchy likewise), side by side with the same call cold (MRUN_WARM=0), medians:

* `mrun state ID` (a runc verb, served to the native launcher) and `mrun ps -a` (docker-like).

From another cgroup the template forks the child born there (clone3 CLONE_INTO_CGROUP) instead of
handing over its spare, which would have to move (a runc verb was refused, and ran cold). The
driver moves itself between the two cgroups outside the timed calls and then waits 0.2 s, so no
call meets a lock a move of ours has just warmed.
Usage: python bench/warm_cgroup.py [ROUNDS]   (root; a cgroup2 hierarchy)
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
from conftest import stop_templates  # noqa: E402
from mrun.warm.child import cgroup_mounts, own_cgroups  # noqa: E402

MRUN = os.path.join(os.path.dirname(sys.executable), "mrun")
OURS, OTHER = "template's cgroup", "another cgroup"


def join(cgroup: str) -> None:
    with open(os.path.join(cgroup, "cgroup.procs"), "w") as f:
        f.write(str(os.getpid()))
    time.sleep(0.2)


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    mount = cgroup_mounts().get("")
    if mount is None:
        sys.exit("no cgroup2 hierarchy here: every caller is in the template's (v1 moves are thread-wise)")
    ours = next(line.split(":", 2)[2] for line in own_cgroups() if line.split(":", 2)[1] == "")
    home = os.path.join(mount, ours.lstrip("/"))
    tag = f"mrun-bench-cg-{os.getpid()}"
    other = os.path.join(mount, tag, "caller")
    work = tempfile.mkdtemp(prefix="mrun-bench-cg-")
    env = {**os.environ, "MRUN_WARM_DIR": os.path.join(work, "warm")}
    base = [MRUN, "--root", os.path.join(work, "root")]
    try:
        os.makedirs(other)
        os.makedirs(os.path.join(work, "bundle"))
        make_bundle(os.path.join(work, "bundle"), ["sleep", "600"], cgroups_path=f"/{tag}-c/c")
        subprocess.run([*base, "ps"], check=True, stdout=subprocess.DEVNULL, env=env)  # the template, in ours
        subprocess.run([*base, "create", "--bundle", os.path.join(work, "bundle"), "c"], check=True, env=env)
        cases = [(f"{verb}, {where}", args, cgroup, e)
                 for verb, args in (("state", ["state", "c"]), ("ps -a", ["ps", "-a"]))
                 for where, cgroup, e in ((OURS, home, env), (OTHER, other, env),
                                          ("cold", home, {**env, "MRUN_WARM": "0"}))]
        times: dict[str, list[float]] = {name: [] for name, *_ in cases}
        for i in range(rounds + 2):
            for name, args, cgroup, e in cases:
                join(cgroup)
                t = time.perf_counter()
                r = subprocess.run([*base, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=e)
                elapsed = time.perf_counter() - t
                if r.returncode != 0:
                    sys.exit(f"{name}: exit {r.returncode}: {r.stderr.decode()[-300:]}")
                if i >= 2:  # the first rounds bring the template up and fill caches
                    times[name].append(elapsed)
        ms = {name: statistics.median(v) * 1000 for name, v in times.items()}
    finally:
        join(home)
        subprocess.run([*base, "delete", "--force", "c"], env=env, stdout=subprocess.DEVNULL)
        stop_templates(os.path.join(work, "warm"))
        shutil.rmtree(work, ignore_errors=True)
        for d in (other, os.path.dirname(other)):
            try:
                os.rmdir(d)
            except OSError:
                pass
        remove_parent_cgroup(f"{tag}-c")
    print(f"median ms, {rounds} rounds, alternating")
    for name, value in ms.items():
        print(f"  {name:32s} {value:7.1f}")
    print("ratios                                 another cgroup / template's    another cgroup / cold")
    for verb in ("state", "ps -a"):
        theirs = ms[f"{verb}, {OTHER}"]
        print(f"  {verb:36s} {theirs / ms[f'{verb}, {OURS}']:20.2f} {theirs / ms[f'{verb}, cold']:24.2f}")


if __name__ == "__main__":
    main()

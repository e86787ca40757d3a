"""mrun vs runc, driven the way containerd's runc shim and podman drive a runtime: one process
per verb (create, start, delete --force) on a bundle running /bin/true. Prints the median of
each and the ratio. Usage: python bench/lifecycle.py [ROUNDS] [MRUN_BINARY]
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples"))
from busybox_bundle import make_bundle, remove_parent_cgroup  # noqa: E402


def lifecycle(binary: str, root: str, bundle: str, cid: str) -> float:
    t0 = time.perf_counter()
    for args in (["create", "--bundle", bundle, cid], ["start", cid], ["delete", "--force", cid]):
        subprocess.run([binary, "--root", root, *args], check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    mrun = sys.argv[2] if len(sys.argv) > 2 else os.path.join(os.path.dirname(sys.executable), "mrun")
    runc = shutil.which("runc")
    if not runc:
        sys.exit("runc is not installed (apt-get install runc)")
    work = tempfile.mkdtemp(prefix="mrun-bench-")
    tag = f"mrun-bench-{os.getpid()}"
    try:
        bundle = os.path.join(work, "bundle")
        os.makedirs(bundle)
        make_bundle(bundle, ["/bin/true"], cgroups_path=f"/{tag}/c")
        times: dict[str, list[float]] = {"mrun": [], "runc": []}
        for i in range(rounds + 2):
            for name, binary in (("mrun", mrun), ("runc", runc)):
                t = lifecycle(binary, os.path.join(work, f"root-{name}"), bundle, f"{name}{i}")
                if i >= 2:  # the first rounds warm caches (page cache, plugin cache)
                    times[name].append(t)
        m, r = statistics.median(times["mrun"]), statistics.median(times["runc"])
        print(
            f"create+start+delete, median of {rounds}: mrun {m * 1000:.1f} ms, runc {r * 1000:.1f} ms, "
            f"ratio mrun/runc = {m / r:.2f}"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
        remove_parent_cgroup(tag)


if __name__ == "__main__":
    main()

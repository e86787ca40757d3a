"""The docker-like command line, warm (the template serves it) and cold (MRUN_WARM=0), side by
side with podman (runc) and bare Python + wasmtime, alternating, medians:

* `mrun run --rm --network none IMAGE true` against `podman run --rm --network none` (runc);
* the same with a bridge network against --network none;
* `mrun run --rm` of a wasm image (examples/wasm/hello.wasm) against a bare Python script that
  loads the same precompiled module with wasmtime and runs it, and against busybox `true`.

Usage: python bench/cli.py [ROUNDS]   (run as root; needs podman, umoci, skopeo, nft)
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "examples"))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))

from busybox_bundle import make_oci_archive, make_rootfs  # noqa: E402
from conftest import stop_templates  # noqa: E402
from wasm_start import bare_python  # noqa: E402

MRUN = os.path.join(os.path.dirname(sys.executable), "mrun")
IMAGE, WASM = "localhost/bb:1", "localhost/hello:1"
PARENT = "mrun-cli-bench"


def timed(cmd: list[str], env: dict[str, str]) -> float:
    t = time.perf_counter()
    r = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    elapsed = time.perf_counter() - t
    if r.returncode not in (0, 3):  # hello.wasm exits with its argv[1]
        raise SystemExit(f"{' '.join(cmd)}: exit {r.returncode}: {r.stderr.decode()[-500:]}")
    return elapsed


def remove_cgroup_tree(name: str) -> None:
    """/<name> and what podman's conmon left under it, bottom up, in every hierarchy; rmdir
    removes only empty cgroups, so nothing in use is touched."""
    base = "/sys/fs/cgroup"
    for top in [os.path.join(base, name)] + [os.path.join(base, c, name) for c in os.listdir(base)]:
        for dirpath, _dirs, _files in sorted(os.walk(top), key=lambda w: -len(w[0])):
            try:
                os.rmdir(dirpath)
            except OSError:
                pass


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    work = tempfile.mkdtemp(prefix="mrun-cli-bench-")
    warm_dir = os.path.join(work, "warm")
    env = {**os.environ, "MRUN_NETWORK_ROOT": os.path.join(work, "networks"), "MRUN_WARM_DIR": warm_dir,
           "MRUN_CACHE_DIR": os.path.join(work, "cache")}
    cold = {**env, "MRUN_WARM": "0"}
    base = [MRUN, "--root", os.path.join(work, "state"), "--image-root", os.path.join(work, "images")]
    podman = ["podman", "--root", os.path.join(work, "podman"), "--runroot", os.path.join(work, "podman-run"),
              "--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--events-backend", "file",
              "--runtime", "runc"]
    forwarding = open("/proc/sys/net/ipv4/ip_forward").read()
    try:
        make_rootfs(os.path.join(work, "rootfs"))
        archive = make_oci_archive(os.path.join(work, "rootfs"), work, IMAGE, ["/bin/sh"], ["PATH=/bin"])
        wasm_root = os.path.join(work, "wasm-rootfs")
        os.makedirs(wasm_root)
        shutil.copy(os.path.join(os.path.dirname(HERE), "examples", "wasm", "hello.wasm"), wasm_root)
        wasm_archive = make_oci_archive(wasm_root, work, WASM, ["/hello.wasm", "0"])
        for a in (archive, wasm_archive):
            subprocess.run([*base, "load", a], check=True, capture_output=True, env=cold)
        subprocess.run([*base, "network", "create", "bench"], check=True, capture_output=True, env=cold)
        subprocess.run([*podman, "load", "-i", archive], check=True, capture_output=True)
        bare, precompiled = bare_python(work, os.path.join(wasm_root, "hello.wasm"))

        run = [*base, "run", "--rm", "--cgroup-parent", f"/{PARENT}"]
        cases = {
            "podman run --rm --network none (runc)": (
                [*podman, "run", "--rm", "--network", "none", "--cgroup-parent", f"/{PARENT}", "--ulimit",
                 "nofile=1024:1024", "--ulimit", "nproc=1024:1024", IMAGE, "true"], env),
            "mrun run --rm --network none, warm": ([*run, "--network", "none", IMAGE, "true"], env),
            "mrun run --rm --network none, cold": ([*run, "--network", "none", IMAGE, "true"], cold),
            "mrun run --rm bridge, warm": ([*run, "--network", "bench", IMAGE, "true"], env),
            "mrun run --rm bridge, cold": ([*run, "--network", "bench", IMAGE, "true"], cold),
            "mrun run --rm wasm hello, warm": ([*run, "--network", "none", WASM], env),
            "mrun run --rm wasm hello, cold": ([*run, "--network", "none", WASM], cold),
            "bare python + wasmtime, precompiled hello": ([sys.executable, bare, precompiled], env),
        }
        times: dict[str, list[float]] = {k: [] for k in cases}
        for i in range(rounds + 1):
            for name, (cmd, e) in cases.items():
                elapsed = timed(cmd, e)
                if i:  # round 0 starts the template and fills the caches
                    times[name].append(elapsed)
        ms = {k: statistics.median(v) * 1000 for k, v in times.items()}
    finally:
        if os.path.isdir(warm_dir):
            stop_templates(warm_dir)
        subprocess.run([*base, "network", "prune"], capture_output=True, env=cold)
        subprocess.run([*podman, "rm", "-a", "-f"], capture_output=True)
        with open("/proc/sys/net/ipv4/ip_forward", "w") as f:
            f.write(forwarding)
        subprocess.run(["rm", "-rf", work])
        remove_cgroup_tree(PARENT)
    print(f"median ms, {rounds} rounds, alternating")
    for name, value in ms.items():
        print(f"  {name:46s} {value:7.1f}")
    podman_ms, bare_ms = ms["podman run --rm --network none (runc)"], ms["bare python + wasmtime, precompiled hello"]
    print("ratios (target)                                        warm    cold")
    rows = [
        ("run --network none vs podman (<= 0.4)", "mrun run --rm --network none", podman_ms),
        ("bridge vs none (<= 1.3)", "mrun run --rm bridge", None),
        ("wasm image vs bare python + wasmtime (<= 1.0)", "mrun run --rm wasm hello", bare_ms),
        ("wasm image vs busybox true through mrun (<= 0.8)", "mrun run --rm wasm hello", None),
    ]
    for label, case, against in rows:
        cells = []
        for mode in ("warm", "cold"):
            base_ms = against
            if base_ms is None:
                base_ms = ms[f"mrun run --rm --network none, {mode}"]
            cells.append(f"{ms[f'{case}, {mode}'] / base_ms:6.2f}")
        print(f"  {label:50s} {'  '.join(cells)}")


if __name__ == "__main__":
    main()

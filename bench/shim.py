"""`ctr run --rm` through containerd-shim-mrun-v2 against the stock runc shim, side by side, on a
private containerd: a Linux echo (busybox image) and, for mrun, a wasm hello. Then the same two
inside a running pod (one sandbox id), where containerd reuses the pod's shim as Kubernetes does.
Usage: python bench/shim.py [ROUNDS]   (needs containerd, umoci, skopeo; run as root)
"""

from __future__ import annotations

import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "examples"))

import pathlib  # noqa: E402
import tempfile  # noqa: E402

from busybox_bundle import make_oci_archive, remove_parent_cgroup  # noqa: E402
from conftest import IMAGE, make_rootfs  # noqa: E402
from test_containerd import WASM_IMAGE, Containerd, build_wasm_archive  # noqa: E402


def busybox_archive(work: pathlib.Path) -> str:
    make_rootfs(str(work / "rootfs"))
    return make_oci_archive(str(work / "rootfs"), str(work), IMAGE, ["/bin/sh"], ["PATH=/bin"])


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    work = pathlib.Path(tempfile.mkdtemp(prefix="mrun-shim-bench-"))
    ctd = Containerd(busybox_archive(work))
    try:
        ctd.ctr("image", "import", build_wasm_archive(work))
        pod = ["--annotation", "io.kubernetes.cri.sandbox-id=benchpod"]
        for runtime, name in (("io.containerd.runc.v2", "runckeeper"), ("io.containerd.mrun.v2", "mrunkeeper")):
            ctd.ctr(
                "run", "-d", "--runtime", runtime, *pod, "--cgroup", f"/{ctd.ns}/{name}", IMAGE, name, "sleep", "3600"
            )
        cases = {
            "runc shim, linux echo": ("io.containerd.runc.v2", IMAGE, ["/bin/echo", "hi"], []),
            "mrun shim, linux echo": ("io.containerd.mrun.v2", IMAGE, ["/bin/echo", "hi"], []),
            "mrun shim, wasm hello": ("io.containerd.mrun.v2", WASM_IMAGE, [], []),
            "runc shim, pod, linux": ("io.containerd.runc.v2", IMAGE, ["/bin/echo", "hi"], pod),
            "mrun shim, pod, linux": ("io.containerd.mrun.v2", IMAGE, ["/bin/echo", "hi"], pod),
            "mrun shim, pod, wasm": ("io.containerd.mrun.v2", WASM_IMAGE, [], pod),
        }
        times: dict[str, list[float]] = {k: [] for k in cases}
        for i in range(rounds + 1):
            for name, (runtime, image, args, extra) in cases.items():
                cid = f"b{i}-{abs(hash(name)) % 10000}"
                t = time.perf_counter()
                ctd.ctr(
                    "run",
                    "--rm",
                    "--fifo-dir",
                    ctd.fifo_dir,
                    "--runtime",
                    runtime,
                    "--cgroup",
                    f"/{ctd.ns}/{cid}",
                    *extra,
                    image,
                    cid,
                    *args,
                    check=False,
                )
                if i:  # round 0 warms caches (images, compiled wasm)
                    times[name].append(time.perf_counter() - t)
        med = {k: statistics.median(v) * 1000 for k, v in times.items()}
        for k, v in med.items():
            print(f"{k:24s} median {v:6.1f} ms")
        for scope, prefix in (("one shim per container", ""), ("in a running pod", "pod, ")):
            base = med[f"runc shim, {prefix}linux" + ("" if prefix else " echo")]
            linux = med[f"mrun shim, {prefix}linux" + ("" if prefix else " echo")]
            wasm = med[f"mrun shim, {prefix}wasm" + ("" if prefix else " hello")]
            print(f"{scope}: mrun/runc (linux) = {linux / base:.2f}; mrun wasm / runc linux = {wasm / base:.2f}")
    finally:
        for name in ("runckeeper", "mrunkeeper"):
            ctd.ctr("task", "kill", "-s", "KILL", name, check=False)
        ctd.stop()
        remove_parent_cgroup(ctd.ns)


if __name__ == "__main__":
    main()

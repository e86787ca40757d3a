"""`ctr run --rm` through containerd-shim-mrun-v2 against the stock runc shim, side by side, on a
private containerd: a Linux echo (busybox image) and, for mrun, a wasm hello.
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
        cases = {
            "runc shim, linux echo": ("io.containerd.runc.v2", IMAGE, ["/bin/echo", "hi"]),
            "mrun shim, linux echo": ("io.containerd.mrun.v2", IMAGE, ["/bin/echo", "hi"]),
            "mrun shim, wasm hello": ("io.containerd.mrun.v2", WASM_IMAGE, []),
        }
        times: dict[str, list[float]] = {k: [] for k in cases}
        for i in range(rounds + 1):
            for name, (runtime, image, args) in cases.items():
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
        base = med["runc shim, linux echo"]
        print(
            f"ratio mrun/runc (linux) = {med['mrun shim, linux echo'] / base:.2f}; "
            f"mrun wasm / runc linux = {med['mrun shim, wasm hello'] / base:.2f}"
        )
    finally:
        ctd.stop()
        remove_parent_cgroup(ctd.ns)


if __name__ == "__main__":
    main()

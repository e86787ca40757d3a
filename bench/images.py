"""Pull-and-unpack by mrun against `skopeo copy` + `umoci unpack`, side by side, from a local
registry (docker-registry with token auth, as the tests run it); then the first and second
`mrun run` of a pulled wasm image.

The Linux image is busybox plus a copy of this interpreter's standard library (a few thousand
files, tens of MB), so that unpacking weighs as it does for real images.
Usage: python bench/images.py [ROUNDS]   (run as root; needs docker-registry, skopeo, umoci)
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "examples"))

from busybox_bundle import make_oci_archive, make_rootfs  # noqa: E402
from registry import PASSWORD, USER, Registry  # noqa: E402

MRUN = os.path.join(os.path.dirname(sys.executable), "mrun")
CREDS = f"{USER}:{PASSWORD}"


def timed(cmd: list[str], env: dict[str, str] | None = None) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, env=env)
    return time.perf_counter() - t


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    work = tempfile.mkdtemp(prefix="mrun-image-bench-")
    os.makedirs(os.path.join(work, "registry"))
    registry = Registry(os.path.join(work, "registry"))
    try:
        rootfs = os.path.join(work, "rootfs")
        make_rootfs(rootfs)
        shutil.copytree(
            sysconfig.get_paths()["stdlib"],
            os.path.join(rootfs, "usr", "lib", "python3"),
            symlinks=True,
            ignore=shutil.ignore_patterns("site-packages", "test", "__pycache__", "idlelib", "tkinter"),
        )
        archive = make_oci_archive(rootfs, work, "localhost/bench:latest", ["/bin/sh"], ["PATH=/bin"])
        linux = registry.push(f"oci-archive:{archive}", "bench/linux:1")
        wasm_archive = os.path.join(work, "hello.tar")
        store = os.path.join(work, "wasm-store")
        module = os.path.join(os.path.dirname(HERE), "examples", "wasm", "hello.wasm")
        subprocess.run([MRUN, "--image-root", store, "image", "wasm", module, "localhost/hello:1"], check=True)
        subprocess.run([MRUN, "--image-root", store, "save", "localhost/hello:1", wasm_archive], check=True)
        wasm = registry.push(f"oci-archive:{wasm_archive}", "bench/hello:1")
        size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(rootfs) for f in fs)
        print(f"image: {sum(len(fs) for _, _, fs in os.walk(rootfs))} files, {size / 1e6:.0f} MB unpacked")

        mrun_t, skopeo_t = [], []
        for i in range(rounds):
            d = os.path.join(work, f"r{i}")
            mrun_t.append(timed([MRUN, "--image-root", f"{d}/mrun", "pull", "--creds", CREDS, linux]))
            skopeo_t.append(
                timed(
                    ["skopeo", "copy", "--src-tls-verify=false", "--src-creds", CREDS]
                    + [f"docker://{linux}", f"oci:{d}/oci:bench"]
                )
                + timed(["umoci", "unpack", "--image", f"{d}/oci:bench", f"{d}/bundle"])
            )
            shutil.rmtree(d)
        m, s = statistics.median(mrun_t) * 1000, statistics.median(skopeo_t) * 1000
        print(f"pull + unpack   mrun {m:7.0f} ms   skopeo copy + umoci unpack {s:7.0f} ms   ratio {m / s:.2f}")

        first, second = [], []
        for i in range(rounds):
            d = os.path.join(work, f"w{i}")
            env = {**os.environ, "MRUN_CACHE_DIR": f"{d}/cache"}
            base = [MRUN, "--root", f"{d}/state", "--image-root", f"{d}/images"]
            subprocess.run([*base, "pull", "--creds", CREDS, wasm], check=True, capture_output=True, env=env)
            run = [*base, "run", "--rm", "--cgroup-parent", "/mrun-bench", wasm]
            first.append(timed(run, env))
            second.append(timed(run, env))
            shutil.rmtree(d)
        f1, f2 = statistics.median(first) * 1000, statistics.median(second) * 1000
        print(f"wasm image      first run {f1:5.0f} ms   second run {f2:5.0f} ms   ratio {f1 / f2:.2f}")
    finally:
        registry.stop()
        shutil.rmtree(work, ignore_errors=True)
        for d in (
            "/sys/fs/cgroup/mrun-bench",
            *(f"/sys/fs/cgroup/{c}/mrun-bench" for c in os.listdir("/sys/fs/cgroup")),
        ):
            if os.path.isdir(d):
                try:
                    os.rmdir(d)
                except OSError:
                    pass


if __name__ == "__main__":
    main()

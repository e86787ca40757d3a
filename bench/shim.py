"""`ctr run --rm` through containerd-shim-mrun-v2 against the stock runc shim, side by side, on a
private containerd 1.6 (Debian's) and a private containerd 2.3 (MRUN_TEST_CONTAINERD2, default
../shared/tools/containerd-2.3.4-linux-amd64.tar.gz): a Linux echo (busybox image) and, for mrun,
a wasm hello, each with the shim started from the warm template and cold (MRUN_WARM=0).
Then the same inside a running pod (warm: its shim started once the template is up, as a pod's
would be on a busy node): one sandbox id (annotation), where containerd runs the shim's `start`
per container and it answers with the pod's shim; and on 2.3, a pod made
through the sandbox API (`ctr sandbox run` + `--sandbox`), where with protocol 3 containerd reuses
the pod's shim without running the binary at all.
Usage: python bench/shim.py [ROUNDS]   (needs containerd, umoci, skopeo; run as root)
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "examples"))

import pathlib  # noqa: E402
import tempfile  # noqa: E402

from busybox_bundle import make_oci_archive, remove_parent_cgroup  # noqa: E402
from conftest import (  # noqa: E402
    CONTAINERD2,
    IMAGE,
    await_template,
    machine_dirs_kept,
    make_rootfs,
    stop_templates,
    warm_path,
)
from test_containerd import WASM_IMAGE, Containerd, build_wasm_archive  # noqa: E402

RUNC, MRUN = "io.containerd.runc.v2", "io.containerd.mrun.v2"
ECHO = ["/bin/echo", "hi"]


def busybox_archive(work: pathlib.Path) -> str:
    make_rootfs(str(work / "rootfs"))
    return make_oci_archive(str(work / "rootfs"), str(work), IMAGE, ["/bin/sh"], ["PATH=/bin"])


def containerd2_bin(work: pathlib.Path) -> str | None:
    source = os.environ.get("MRUN_TEST_CONTAINERD2") or CONTAINERD2
    if os.path.isdir(source):
        return source
    if not os.path.isfile(source):
        print(f"containerd 2.x not found at {source} (MRUN_TEST_CONTAINERD2): 1.6 only", file=sys.stderr)
        return None
    subprocess.run(["tar", "-xzf", source, "-C", str(work)], check=True)
    return next(d for d, _, files in os.walk(work) if "containerd" in files and "ctr" in files)


@contextlib.contextmanager
def private_containerd(prefix: str, env: dict[str, str] | None = None
                       ) -> Iterator[tuple[Containerd, pathlib.Path, str | None]]:
    """-> (a private containerd, 2.3 where found else 1.6, with the busybox and wasm images in it;
    its work directory; 2.3's bin directory or None). mrun's warm template is this one's own
    (MRUN_WARM_DIR): containerd, template, cgroup parent and files are gone at the end."""
    work = pathlib.Path(tempfile.mkdtemp(prefix=prefix))
    os.environ["MRUN_WARM_DIR"] = str(work / "warm")
    with machine_dirs_kept():  # containerd 1.6's runc shim and mrun's shim make them
        ctd = None
        try:
            archive = busybox_archive(work)
            wasm = build_wasm_archive(work)
            bin_dir = containerd2_bin(work)
            ctd = Containerd(archive, bin_dir, env=env)
            ctd.ctr("image", "import", wasm)
            yield ctd, work, bin_dir
        finally:
            if ctd is not None:
                ctd.stop()
                remove_parent_cgroup(ctd.ns)
            if (work / "warm").is_dir():
                stop_templates(str(work / "warm"))
            subprocess.run(["rm", "-rf", str(work)])


def own_root(ctd: Containerd, runtime: str) -> list[str]:
    """runc's state under our containerd's directory: its shim's default is /run/containerd/runc."""
    return ["--runc-root", ctd.runc_root] if runtime == RUNC else []


def measure(ctd: Containerd, work: pathlib.Path, rounds: int, sandbox_api: bool, cold: bool) -> dict[str, float]:
    """Median milliseconds of `ctr run --rm` per case."""
    pod = ["--annotation", "io.kubernetes.cri.sandbox-id=benchpod"]
    if not cold:  # the pods' shims are started below: from the template, not before it is up
        ctd.ctr("run", "--rm", "--fifo-dir", ctd.fifo_dir, "--runtime", MRUN, "--cgroup", f"/{ctd.ns}/warmup", IMAGE,
                "warmup", "true")
        await_template(warm_path(), "the warm template did not come up")
    keepers = (("runckeeper", RUNC), ("mrunkeeper", MRUN))
    for name, runtime in keepers:
        ctd.ctr("run", "-d", "--fifo-dir", ctd.fifo_dir, *own_root(ctd, runtime), "--runtime", runtime, *pod,
                "--cgroup", f"/{ctd.ns}/{name}", IMAGE, name, "sleep", "3600")
    cases = {
        "one shim per container: runc, linux": (RUNC, IMAGE, ECHO, []),
        "one shim per container: mrun, linux": (MRUN, IMAGE, ECHO, []),
        "one shim per container: mrun, wasm": (MRUN, WASM_IMAGE, [], []),
        "pod (sandbox-id): runc, linux": (RUNC, IMAGE, ECHO, pod),
        "pod (sandbox-id): mrun, linux": (MRUN, IMAGE, ECHO, pod),
        "pod (sandbox-id): mrun, wasm": (MRUN, WASM_IMAGE, [], pod),
    }
    if sandbox_api:
        config = work / "pod.json"
        config.write_text(json.dumps({"metadata": {"name": "bench", "namespace": "b", "uid": "u"}}))
        ctd.ctr("sandbox", "run", "--runtime", MRUN, str(config), "benchsbx")
        cases["pod (sandbox API, protocol 3): mrun, linux"] = (MRUN, IMAGE, ECHO, ["--sandbox", "benchsbx"])
        cases["pod (sandbox API, protocol 3): mrun, wasm"] = (MRUN, WASM_IMAGE, [], ["--sandbox", "benchsbx"])
    times: dict[str, list[float]] = {k: [] for k in cases}
    try:
        for i in range(rounds + 1):
            for name, (runtime, image, args, extra) in cases.items():
                cid = f"b{i}-{abs(hash(name)) % 100000}"
                t = time.perf_counter()
                r = ctd.ctr(
                    "run", "--rm", "--fifo-dir", ctd.fifo_dir, *own_root(ctd, runtime), "--runtime", runtime,
                    "--cgroup", f"/{ctd.ns}/{cid}", *extra, image, cid, *args, check=False,
                )
                elapsed = time.perf_counter() - t
                if r.returncode not in (0, 3):  # hello.wasm exits with its argv[1] (3 in the image)
                    raise SystemExit(f"{name}: ctr run failed: {r.stderr}")
                if i:  # round 0 warms caches (images, compiled wasm)
                    times[name].append(elapsed)
    finally:
        for name, _ in keepers:
            ctd.ctr("task", "kill", "-s", "KILL", name, check=False)
        if sandbox_api:
            ctd.ctr("sandbox", "rm", "-f", "benchsbx", check=False)
    return {k: statistics.median(v) * 1000 for k, v in times.items()}


def run_on(
    archive: str, wasm: str, work: pathlib.Path, rounds: int, bin_dir: str | None, cold: bool
) -> dict[str, float]:
    with machine_dirs_kept():  # containerd 1.6's runc shim and mrun's shim make them
        ctd = Containerd(archive, bin_dir, env={"MRUN_WARM": "0"} if cold else None)
        try:
            ctd.ctr("image", "import", wasm)
            return measure(ctd, work, rounds, sandbox_api=bin_dir is not None, cold=cold)
        finally:
            ctd.stop()
            remove_parent_cgroup(ctd.ns)


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    work = pathlib.Path(tempfile.mkdtemp(prefix="mrun-shim-bench-"))
    os.environ["MRUN_WARM_DIR"] = str(work / "warm")  # its own template, stopped at the end
    try:
        archive = busybox_archive(work)
        wasm = build_wasm_archive(work)
        results = {}
        bin_dir = containerd2_bin(work)
        for version, where in (("1.6", None), ("2.3", bin_dir)):
            if version == "1.6" or where:
                for mode in ("warm", "cold"):
                    results[f"{version} {mode}"] = run_on(archive, wasm, work, rounds, where, mode == "cold")
    finally:
        import shutil

        if os.path.isdir(os.environ["MRUN_WARM_DIR"]):
            stop_templates(os.environ["MRUN_WARM_DIR"])
        shutil.rmtree(work, ignore_errors=True)
    versions = list(results)
    print(f"median ms of `ctr run --rm`, {rounds} rounds; ratio to the runc shim on the same containerd")
    print(f"{'case':46s}" + "".join(f"{v:>22s}" for v in versions))
    for case in results[versions[-1]]:
        scope = case.split(":")[0]
        base = f"{scope}: runc, linux" if f"{scope}: runc, linux" in results[versions[-1]] else (
            "pod (sandbox-id): runc, linux"
        )
        cells = ""
        for v in versions:
            ms = results[v].get(case)
            cells += f"{ms:8.1f} ms ({ms / results[v][base]:4.2f}x)  " if ms else f"{'-':>22s}"
        print(f"{case:46s}{cells}")


if __name__ == "__main__":
    main()

"""Kubernetes' path, side by side: a pod started through containerd 2.3's CRI plugin with crictl
(RunPodSandbox, then CreateContainer and StartContainer of a busybox container), then one more
busybox container started in the running pod, with three
runtime handlers on the same containerd: containerd's runc shim, mrun's shim with CRI's pause
container (``mrun``), and mrun's shim as the pod itself (``mrun-shim``, no pause image); for the
mrun handlers also a wasm container started in the same pod. The warm template is up first, as
on a busy node. Handlers alternate round by round; each pod is stopped and removed untimed.

Usage: python bench/cri.py [ROUNDS]   (run as root; needs containerd 2.x with crictl, umoci,
skopeo, the CNI plugins)
"""

from __future__ import annotations

import json
import os
import pathlib
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "examples"))

from conftest import IMAGE, await_template, stop_templates, warm_path  # noqa: E402
from shim import busybox_archive, containerd2_bin  # noqa: E402
from test_containerd import WASM_IMAGE, Containerd, build_wasm_archive  # noqa: E402
from test_cri import CRI, cri_config, pause_archive, pod_doc  # noqa: E402

HANDLERS = ("runc", "mrun", "mrun-shim")


def with_runc(config: str, runc_root: str) -> str:
    """The CRI config of the tests, plus a handler for containerd's own runc shim (its state under
    our containerd's directory: the shim's default root is /run/containerd/runc)."""
    mrun = "    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.mrun]\n"
    runc = (
        "    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]\n"
        "      runtime_type = 'io.containerd.runc.v2'\n"
        "      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]\n"
        f"        Root = '{runc_root}'\n"
    )
    assert mrun in config
    return config.replace(mrun, runc + mrun, 1)


def container(cri: CRI, name: str, image: str, command: list[str]) -> str:
    return cri.write(f"{name}.json", {"metadata": {"name": name.rsplit("-", 1)[-1]}, "image": {"image": image},
                                      "command": command, "log_path": f"{name}.log", "linux": {}})


def one_pod(cri: CRI, handler: str) -> dict[str, float]:
    """-> ms: the pod with its Linux container running, and (mrun) a wasm container started in it."""
    name = f"{handler}-{uuid.uuid4().hex[:6]}"
    logs = os.path.join(cri.work, "logs", name)
    os.makedirs(logs)
    pod_path = cri.write(f"{name}-pod.json", pod_doc(name, logs))
    linux = container(cri, f"{name}-linux", IMAGE, ["sleep", "3600"])
    second = container(cri, f"{name}-second", IMAGE, ["true"])
    wasm = container(cri, f"{name}-wasm", WASM_IMAGE, ["/hello.wasm", "0"])
    took = {}
    t = time.perf_counter()
    pod = cri.run("runp", "--runtime", handler, pod_path)
    cri.run("start", cri.run("create", pod, linux, pod_path))
    took["pod start"] = (time.perf_counter() - t) * 1000
    t = time.perf_counter()
    cri.run("start", cri.run("create", pod, second, pod_path))
    took["linux in the pod"] = (time.perf_counter() - t) * 1000
    if handler != "runc":
        t = time.perf_counter()
        cri.run("start", cri.run("create", pod, wasm, pod_path))
        took["wasm in the pod"] = (time.perf_counter() - t) * 1000
    cri.run("stopp", pod)
    cri.run("rmp", pod)
    return took


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    work = pathlib.Path(tempfile.mkdtemp(prefix="mrun-cri-bench-"))
    os.environ["MRUN_WARM_DIR"] = str(work / "warm")
    bridge = f"mrcri{uuid.uuid4().hex[:6]}"
    ctd = None
    times: dict[tuple[str, str], list[float]] = {}
    try:
        bin_dir = containerd2_bin(work)
        if bin_dir is None:
            raise SystemExit("bench/cri.py needs containerd 2.x (MRUN_TEST_CONTAINERD2)")
        archive = busybox_archive(work)
        config = with_runc(cri_config(str(work), f"10.252.{random.randrange(1, 250)}.0/24", bridge),
                           str(work / "runc-root"))
        ctd = Containerd(archive, bin_dir, cri=config)
        ctd.ns = "k8s.io"  # CRI's namespace: the images must be there
        for image in (archive, pause_archive(str(work)), build_wasm_archive(str(work / "wasm"))):
            ctd.ctr("image", "import", image)
        cri = CRI(ctd, os.path.join(bin_dir, "crictl"), str(work))
        one_pod(cri, "mrun")  # the first mrun call starts the template
        await_template(warm_path(), "the warm template did not come up")
        for handler in HANDLERS:  # each handler's caches (images, compiled wasm) warm before timing
            one_pod(cri, handler)
        for _ in range(rounds):
            for handler in HANDLERS:
                for what, ms in one_pod(cri, handler).items():
                    times.setdefault((handler, what), []).append(ms)
    finally:
        if ctd is not None:
            crictl = CRI(ctd, os.path.join(bin_dir, "crictl"), str(work))
            for pod in crictl.run("pods", "-q", check=False).split():
                crictl.run("stopp", pod, check=False)
                crictl.run("rmp", "-f", pod, check=False)
            ctd.stop()
        subprocess.run(["ip", "link", "del", bridge], capture_output=True)
        if (work / "warm").is_dir():
            stop_templates(str(work / "warm"))
        shutil.rmtree(work, ignore_errors=True)
    print(f"median ms through CRI (crictl), {rounds} rounds; ratio to the runc handler's pod start, or to its"
          " Linux container in a running pod")
    for (handler, what), values in sorted(times.items(), key=lambda kv: (kv[0][1] != "pod start", kv[0])):
        ms = statistics.median(values)
        base = statistics.median(times[("runc", "pod start" if what == "pod start" else "linux in the pod")])
        print(f"  {handler:10s} {what:17s} {ms:7.1f} ms ({ms / base:4.2f}x)")
    print(json.dumps({f"{h} {w}": round(statistics.median(v), 1) for (h, w), v in times.items()}))


if __name__ == "__main__":
    main()

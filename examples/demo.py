"""The quick-start job: a Linux image and a wasm image, built from examples/, run side by side
through one CLI, offline.

The Linux image is Debian's busybox-static packed by umoci and skopeo into an oci-archive and
loaded with `mrun load`; the wasm image is made by `mrun image wasm` from examples/wasm/hello.wasm
(built from hello.c with Debian's clang), which also precompiles it. Both containers run at the
same time, each in its own namespaces, overlay snapshot and cgroup, with the same memory and
pids limits.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from busybox_bundle import make_oci_archive, make_rootfs, remove_parent_cgroup  # noqa: E402

MRUN = os.path.join(os.path.dirname(sys.executable), "mrun")
LINUX_IMAGE, WASM_IMAGE = "localhost/demo-busybox:latest", "localhost/demo-hello:latest"
LIMITS = ["--memory", "64m", "--pids-limit", "32", "--cgroup-parent", "/mrun-demo", "--network", "none"]


def main() -> int:
    work = tempfile.mkdtemp(prefix="mrun-quickstart-")
    mrun = [MRUN, "--root", os.path.join(work, "state"), "--image-root", os.path.join(work, "images")]
    env = {**os.environ, "MRUN_CACHE_DIR": os.path.join(work, "cache")}

    def show(*args: str) -> None:
        print(f"$ mrun {' '.join(args)}", flush=True)
        subprocess.run([*mrun, *args], check=True, env=env)

    try:
        make_rootfs(os.path.join(work, "rootfs"))
        archive = make_oci_archive(os.path.join(work, "rootfs"), work, LINUX_IMAGE, ["/bin/sh"], ["PATH=/bin"])
        show("load", archive)
        show("image", "wasm", os.path.join(HERE, "wasm", "hello.wasm"), WASM_IMAGE)
        show("images")
        script = 'echo "linux: pid $$ on $(hostname), $(ls /sys/class/net | wc -l) interface(s), args: $*"'
        runs = {
            "linux": [*LIMITS, "--name", "demo-linux", LINUX_IMAGE, "sh", "-c", script, "sh", "from", "busybox"],
            "wasm": [*LIMITS, "--name", "demo-wasm", "-e", "GREETING=hello from the image", WASM_IMAGE, "0", "wasm"],
        }
        print(f"$ mrun run --rm {' '.join(runs['linux'])}  &  mrun run --rm {' '.join(runs['wasm'])}", flush=True)
        procs = {
            name: subprocess.Popen(
                [*mrun, "run", "--rm", *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True, env=env
            )
            for name, args in runs.items()
        }
        codes = {}
        for name, proc in procs.items():
            out, _ = proc.communicate(timeout=120)
            codes[name] = proc.returncode
            for line in out.splitlines():
                print(f"[{name}] {line}")
        print(json.dumps({"exit codes": codes}))
        return max(codes.values())
    finally:
        subprocess.run([*mrun, "image", "prune"], capture_output=True, env=env)
        shutil.rmtree(work, ignore_errors=True)
        remove_parent_cgroup("mrun-demo")


if __name__ == "__main__":
    sys.exit(main())

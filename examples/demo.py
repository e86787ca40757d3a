"""The quick-start job: a Linux container and a wasm container, side by side, through one CLI.

Both bundles are built here: a busybox one (Debian's busybox-static) and one holding only
examples/wasm/hello.wasm (built from hello.c with Debian's clang). Both run at the same time,
each in its own namespaces and cgroup, with the same memory and pids limits; `mrun explain`
says which backend runs which, and why.
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
from busybox_bundle import make_bundle, remove_parent_cgroup, write_config  # noqa: E402
from mrun.defaults import default_spec  # noqa: E402

MRUN = os.path.join(os.path.dirname(sys.executable), "mrun")
LIMITS = {"memory": {"limit": 64 * 1024 * 1024}, "pids": {"limit": 32}}


def linux_bundle(path: str) -> None:
    script = 'echo "linux: pid $$ on $(hostname), $(ls /sys/class/net | wc -l) interface(s), args: $*"'
    cfg = make_bundle(
        path, ["sh", "-c", script, "sh", "from", "busybox"], cgroups_path="/mrun-demo/linux", hostname="mrun-linux"
    )
    cfg["linux"]["resources"].update(LIMITS)
    write_config(path, cfg)


def wasm_bundle(path: str) -> None:
    rootfs = os.path.join(path, "rootfs")
    for d in ("proc", "dev", "sys", "work"):
        os.makedirs(os.path.join(rootfs, d), exist_ok=True)
    shutil.copy(os.path.join(HERE, "wasm", "hello.wasm"), os.path.join(rootfs, "hello.wasm"))
    with open(os.path.join(rootfs, "work", "data.txt"), "w") as f:
        f.write("a file in the wasm container's working directory\n")
    cfg = default_spec()
    cfg["process"].update(
        terminal=False, args=["/hello.wasm", "0", "from", "wasm"], cwd="/work", env=["GREETING=hello from the OCI spec"]
    )
    cfg["hostname"] = "mrun-wasm"
    cfg["linux"]["cgroupsPath"] = "/mrun-demo/wasm"
    cfg["linux"]["resources"].update(LIMITS)
    write_config(path, cfg)


def main() -> int:
    work = tempfile.mkdtemp(prefix="mrun-quickstart-")
    root = os.path.join(work, "state")
    try:
        bundles = {"linux": os.path.join(work, "linux"), "wasm": os.path.join(work, "wasm")}
        os.makedirs(bundles["linux"])
        linux_bundle(bundles["linux"])
        wasm_bundle(bundles["wasm"])
        for name, bundle in bundles.items():
            print(f"$ mrun explain -b {name}/")
            subprocess.run([MRUN, "--root", root, "explain", "-b", bundle], check=True)
        print("$ mrun run -b linux/ demo-linux  &  mrun run -b wasm/ demo-wasm")
        procs = {
            name: subprocess.Popen(
                [MRUN, "--root", root, "run", "-b", bundle, f"demo-{name}"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                text=True,
            )
            for name, bundle in bundles.items()
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
        shutil.rmtree(work, ignore_errors=True)
        remove_parent_cgroup("mrun-demo")


if __name__ == "__main__":
    sys.exit(main())

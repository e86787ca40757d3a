"""The start cost of a bridge network: `mrun run --rm IMAGE true` with `--network bridge`
(a private network: lease, veth, eth0, routes, nftables) against `--network none`, alternating.
Usage: python bench/network.py [ROUNDS]   (run as root; needs umoci, skopeo, nft)
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "examples"))

from busybox_bundle import make_oci_archive, make_rootfs, remove_parent_cgroup  # noqa: E402

MRUN = os.path.join(os.path.dirname(sys.executable), "mrun")


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    work = tempfile.mkdtemp(prefix="mrun-net-bench-")
    env = {**os.environ, "MRUN_NETWORK_ROOT": os.path.join(work, "networks")}
    base = [MRUN, "--root", os.path.join(work, "state"), "--image-root", os.path.join(work, "images")]
    forwarding = open("/proc/sys/net/ipv4/ip_forward").read()
    try:
        make_rootfs(os.path.join(work, "rootfs"))
        archive = make_oci_archive(os.path.join(work, "rootfs"), work, "localhost/bb:1", ["/bin/sh"], ["PATH=/bin"])
        subprocess.run([*base, "load", archive], check=True, capture_output=True)
        subprocess.run([*base, "network", "create", "bench"], check=True, capture_output=True, env=env)
        times: dict[str, list[float]] = {"none": [], "bench": []}
        for i in range(rounds + 1):
            for mode in times:
                cmd = [
                    *base,
                    "run",
                    "--rm",
                    "--cgroup-parent",
                    "/mrun-net-bench",
                    "--network",
                    mode,
                    "localhost/bb:1",
                    "true",
                ]
                t = time.perf_counter()
                subprocess.run(cmd, check=True, env=env)
                if i:
                    times[mode].append(time.perf_counter() - t)
        none, bridge = (statistics.median(times[m]) * 1000 for m in ("none", "bench"))
        print(f"mrun run --rm true: --network none {none:.0f} ms, bridge {bridge:.0f} ms, ratio {bridge / none:.2f}")
    finally:
        subprocess.run([*base, "network", "prune"], capture_output=True, env=env)
        with open("/proc/sys/net/ipv4/ip_forward", "w") as f:
            f.write(forwarding)
        subprocess.run(["rm", "-rf", work])
        remove_parent_cgroup("mrun-net-bench")


if __name__ == "__main__":
    main()

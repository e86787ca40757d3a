"""mrun on cgroup v2, which most users have, on a host that runs v1 controllers: each command runs
in a mount namespace of its own where /sys/fs/cgroup is the host's (single) cgroup2 hierarchy, so
mrun detects v2 and uses its v2 driver for real. The hierarchy has no resource controllers here
(the host's v1 hierarchies hold them); what v2 does without them is tested, next to the host."""

from __future__ import annotations

import os
import subprocess

import pytest

# Run a command where /sys/fs/cgroup is a cgroup2 mount (on a pure v2 host: the same hierarchy).
CGROUP2_VIEW = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                'mount -t cgroup2 cgroup2 /sys/fs/cgroup && exec "$@"', "cgroup2-view"]


def on(view: str, argv: list[str]) -> list[str]:
    return [*CGROUP2_VIEW, *argv] if view == "cgroup2" else argv


@pytest.mark.parametrize("view", ["host", "cgroup2"])
def test_a_container_cannot_open_a_device_its_rules_deny(h, view):
    """Device rules are enforced on both hierarchies (on v2 by an eBPF program mrun attaches):
    a container allowed to mknod (docker's and podman's default capabilities include CAP_MKNOD)
    makes a node for a device it is not allowed, and opening it is refused; /dev/null works. The
    device is /dev/net/tun's (10:200), whose open asks for no capability (a disk's would not either:
    that is what the rules keep from a container)."""
    cfg = h.config(["sh", "-c", "mknod /dev/probe c 10 200 && echo made; (: < /dev/probe) 2>&1; : > /dev/null && "
                                "echo null-ok"])
    for kind in ("bounding", "effective", "permitted"):
        cfg["process"]["capabilities"][kind].append("CAP_MKNOD")
    bundle = h.bundle(config=cfg)
    cid = h.cid("dev")
    env = {"MRUN_WARM": "0"}  # a template is of the caller's mount namespace
    r = subprocess.run(on(view, [h.binary, "--root", h.root, "run", "-b", bundle, cid]), capture_output=True,
                       text=True, timeout=60, env={**os.environ, **env}, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "made" and "Operation not permitted" in lines[1] and lines[2] == "null-ok", r.stdout
    assert "warning" not in r.stderr, r.stderr
    gone = subprocess.run(on(view, ["sh", "-c", f"test ! -e /sys/fs/cgroup/{h.cgroup_parent.strip('/')}"]))
    assert gone.returncode == 0, "the container's cgroup parent was left behind"

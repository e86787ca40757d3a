"""Build a busybox OCI bundle from Debian's busybox-static, and remove the cgroup parent such
bundles used (shared by the quick start, the benches and the tests)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from typing import Any

from mrun.defaults import default_spec

BUSYBOX = "/bin/busybox"


def make_rootfs(rootfs: str) -> None:
    if not os.path.exists(BUSYBOX):
        raise RuntimeError(f"{BUSYBOX} is missing: apt-get install busybox-static")
    for d in ("bin", "etc", "tmp", "proc", "sys", "dev", "root"):
        os.makedirs(os.path.join(rootfs, d), exist_ok=True)
    shutil.copy2(BUSYBOX, os.path.join(rootfs, "bin", "busybox"))
    applets = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True, check=True).stdout.split()
    for a in applets:
        link = os.path.join(rootfs, "bin", a)
        if a != "busybox" and not os.path.lexists(link):
            os.symlink("busybox", link)
    with open(os.path.join(rootfs, "etc", "passwd"), "w") as f:
        f.write("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")
    with open(os.path.join(rootfs, "etc", "group"), "w") as f:
        f.write("root:x:0:\nnogroup:x:65534:\n")


def make_bundle(path: str, args: list[str], cgroups_path: str = "", **changes: Any) -> dict[str, Any]:
    """A bundle at ``path`` running ``args``; returns its config (already written)."""
    rootfs = os.path.join(path, "rootfs")
    if not os.path.isdir(os.path.join(rootfs, "bin")):
        make_rootfs(rootfs)
    config = default_spec()
    config["process"]["terminal"] = False
    config["process"]["args"] = args
    if cgroups_path:
        config["linux"]["cgroupsPath"] = cgroups_path
    config.update(changes)
    write_config(path, config)
    return config


def write_config(path: str, config: dict[str, Any]) -> None:
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(config, f, indent=1)


def remove_parent_cgroup(name: str) -> None:
    """rmdir /<name> in every hierarchy (v1) or in the unified one (v2). Each container removes
    the cgroups it created; a parent that several containers raced to create is the caller's.
    rmdir only succeeds on an empty cgroup, so nothing in use is touched."""
    base = "/sys/fs/cgroup"
    for d in [os.path.join(base, name)] + [os.path.join(base, c, name) for c in os.listdir(base)]:
        try:
            os.rmdir(d)
        except OSError:
            pass


def make_oci_archive(
    rootfs: str,
    work: str,
    image: str,
    cmd: list[str],
    env: list[str] | None = None,
    labels: dict[str, str] | None = None,
    stop_signal: str = "",
    exposed: list[str] | None = None,
) -> str:
    """An oci-archive tarball of ``rootfs`` tagged ``image``, built offline with umoci and skopeo."""
    name = image.rsplit("/", 1)[-1].replace(":", "-")
    layout = os.path.join(work, f"{name}-layout")
    arch = "amd64" if os.uname().machine == "x86_64" else "arm64"
    config = ["--os", "linux", "--architecture", arch]
    for c in cmd:
        config += ["--config.cmd", c]
    for e in env or []:
        config += ["--config.env", e]
    for k, v in (labels or {}).items():
        config += ["--config.label", f"{k}={v}"]
    if stop_signal:
        config += ["--config.stopsignal", stop_signal]
    for port in exposed or []:
        config += ["--config.exposedports", port]
    archive = os.path.join(work, f"{name}.tar")
    for step in (
        ["umoci", "init", "--layout", layout],
        ["umoci", "new", "--image", f"{layout}:latest"],
        ["umoci", "insert", "--image", f"{layout}:latest", rootfs, "/"],
        ["umoci", "config", "--image", f"{layout}:latest", *config],
        ["skopeo", "copy", f"oci:{layout}:latest", f"oci-archive:{archive}:{image}"],
    ):
        subprocess.run(step, check=True, capture_output=True, cwd=work)
    return archive

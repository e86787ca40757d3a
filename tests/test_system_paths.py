"""--security-opt mask=, unmask=, systempaths=unconfined, proc-opts= and label=disable: what of
/proc and /sys a container sees, as podman (a Quadlet unit's Mask=, Unmask=,
SecurityLabelDisable=) and docker spell it."""

from __future__ import annotations

import os

import pytest
from conftest import IMAGE, img, img_ok, one_line_error, run_args

# the mount points of masked and read-only paths, as the container's own mountinfo lists them
# (the cgroup tree's are its own mounts, not these)
MOUNTED = "awk '{print $5}' /proc/self/mountinfo | grep -E '^/(proc|sys)/' | grep -v '^/sys/fs/cgroup' | sort"


def _mounted(h, *flags: str) -> list[str]:
    return img_ok(h, *run_args(h, "--rm", *flags, IMAGE, "sh", "-c", MOUNTED)).stdout.split()


def test_mask_unmask_and_systempaths(images, busybox_archive):
    h = images
    img_ok(h, "load", busybox_archive)
    default = _mounted(h)
    assert "/proc/keys" in default and "/proc/sys" in default, default
    # mask=: more paths masked, each read as nothing
    out = img_ok(h, *run_args(h, "--rm", "--security-opt", "mask=/proc/cpuinfo:/etc/hostname", IMAGE, "sh", "-c",
                              "wc -c < /proc/cpuinfo; wc -c < /etc/hostname")).stdout.split()
    assert out == ["0", "0"], out
    # unmask=ALL, docker's systempaths=unconfined: nothing masked or read-only by default
    assert _mounted(h, "--security-opt", "unmask=ALL") == []
    assert _mounted(h, "--security-opt", "systempaths=unconfined") == []
    # unmask= with paths and shell patterns: those alone
    assert _mounted(h, "--security-opt", "unmask=/proc/keys:/proc/sys") == [
        p for p in default if p not in ("/proc/keys", "/proc/sys")]
    assert _mounted(h, "--security-opt", "unmask=/proc/*") == [p for p in default if not p.startswith("/proc/")]
    # later ones over earlier ones, as given
    assert _mounted(h, "--security-opt", "unmask=ALL", "--security-opt", "mask=/proc/keys") == ["/proc/keys"]


def test_proc_opts_and_label_disable(images, busybox_archive):
    h = images
    img_ok(h, "load", busybox_archive)
    out = img_ok(h, *run_args(h, "--rm", "--security-opt", "proc-opts=hidepid=2,gid=5", IMAGE, "sh", "-c",
                              "grep ' /proc proc ' /proc/self/mounts")).stdout
    assert "hidepid=" in out and ",gid=5" in out, out
    # label=disable asks for no SELinux label: mrun applies none, so it is taken (podman's
    # SecurityLabelDisable=true, the usual way past SELinux with bind mounts); label=TYPE is not
    img_ok(h, *run_args(h, "--rm", "--security-opt", "label=disable", IMAGE, "true"))
    img_ok(h, *run_args(h, "--rm", "--security-opt", "label:disable", IMAGE, "true"))
    one_line_error(img(h, *run_args(h, "--rm", "--security-opt", "label=type:spc_t", IMAGE, "true")), "label=type")


@pytest.mark.parametrize("option, needles", [
    ("mask=proc/kcore", ("absolute paths",)),
    ("mask=/proc/../etc/passwd", ("absolute paths",)),
    ("unmask=", ("absolute paths",)),
    ("systempaths=confined", ("unconfined",)),
    ("proc-opts=hidepid=9", ("hidepid=9",)),
    ("proc-opts=rw", ("'rw'",)),
    ("proc-opts=gid=x", ("gid=x",)),
    ("proc-opts=subset=sys", ("subset=sys",)),
    ("label=level:s0", ("SELinux",)),
])
def test_a_bad_system_path_option_is_refused_in_one_line(images, busybox_archive, option, needles):
    h = images
    img_ok(h, "load", busybox_archive)
    one_line_error(img(h, *run_args(h, "--rm", "--security-opt", option, IMAGE, "true")), "--security-opt",
                   *needles)
    assert os.listdir(os.path.join(h.image_root, "containers")) == []

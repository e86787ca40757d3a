"""The second tier of the backend contract, proven with a built-in backend: ``oci`` hands a
container to runc (installed in CI), which owns its sandbox, while mrun keeps its record and its
verbs. One mrun CLI then runs Linux natively, wasm natively and a container under runc."""

from __future__ import annotations

import json
import os
import time

from conftest import cgroup_dirs, require

RUNC = {"org.mrun.oci.runtime": "runc"}


def wait_status(h, cid: str, want: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while json.loads(h.ok("state", cid).stdout)["status"] != want:
        assert time.monotonic() < deadline, f"{cid} never became {want}"
        time.sleep(0.05)


def test_run_under_runc_passes_output_and_exit_code(h):
    require("runc", "runc")
    bundle = h.bundle(config=h.config(["sh", "-c", "echo under runc; exit 7"], annotations=RUNC))
    assert h.ok("explain", "-b", bundle).stdout.splitlines()[0] == "backend: oci"
    r = h.mrun("run", "-b", bundle, h.cid())
    assert (r.returncode, r.stdout) == (7, "under runc\n"), r.stderr


def test_every_verb_goes_to_runc(h):
    require("runc", "runc")
    cid = h.cid()
    cfg = h.config(["sleep", "600"], annotations=RUNC)
    h.ok("create", "-b", h.bundle(config=cfg), cid)
    runc_root = os.path.join(h.root, ".oci", "runc")
    assert os.path.isdir(os.path.join(runc_root, cid)), "runc does not hold the container"
    state = json.loads(h.ok("state", cid).stdout)
    assert state["status"] == "created" and state["pid"] > 0
    h.ok("start", cid)
    wait_status(h, cid, "running")
    assert h.ok("exec", cid, "echo", "in it").stdout == "in it\n"
    assert str(json.loads(h.ok("state", cid).stdout)["pid"]) in h.ok("ps", cid).stdout.split()  # runc ps's pids
    h.ok("pause", cid)
    wait_status(h, cid, "paused")
    h.ok("resume", cid)
    wait_status(h, cid, "running")
    r = h.mrun("delete", cid)
    assert r.returncode != 0 and "it is running" in r.stderr  # mrun's one table decides, whoever owns it
    h.ok("kill", cid, "KILL")
    wait_status(h, cid, "stopped")
    h.ok("delete", cid)
    assert not os.path.exists(os.path.join(runc_root, cid)) and not os.path.exists(os.path.join(h.root, cid))
    assert not cgroup_dirs(cfg["linux"]["cgroupsPath"])


def test_an_annotation_cannot_name_any_binary(h):
    for name, words in (("/bin/sh", "not an allowed OCI runtime"), ("sh", "not an allowed OCI runtime")):
        cid = h.cid()
        cfg = h.config(["true"], annotations={"org.mrun.oci.runtime": name})
        r = h.mrun("create", "-b", h.bundle(config=cfg), cid)
        assert r.returncode != 0 and words in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert not os.path.exists(os.path.join(h.root, cid))


def test_an_image_container_under_runc_leaves_no_snapshot(images, busybox_archive):
    """mrun run IMAGE with the annotation: runc runs it, and mrun still releases the snapshot it
    made (the images fixture fails if one is left)."""
    from conftest import IMAGE, img, img_ok, run_args

    require("runc", "runc")
    img_ok(images, "load", busybox_archive)
    r = img(images, *run_args(images, "--rm", "--annotation", "org.mrun.oci.runtime=runc", IMAGE, "echo", "hi"))
    assert (r.returncode, r.stdout) == (0, "hi\n"), r.stderr
    # docker's --runtime says the same (it was an unknown option)
    r = img(images, *run_args(images, "--name", "rt", "--runtime", "runc", IMAGE, "echo", "hi"))
    assert (r.returncode, r.stdout) == (0, "hi\n"), r.stderr
    assert img_ok(images, "inspect", "-f", "{{.HostConfig.Runtime}}", "rt").stdout == "runc\n"
    img_ok(images, "rm", "rt")
    assert img_ok(images, *run_args(images, "--rm", "--runtime", "mrun", IMAGE, "echo", "hi")).stdout == "hi\n"
    for name, words in (("nosuchruntime", "not an allowed OCI runtime"), ("run c", "--runtime 'run c'")):
        r = img(images, *run_args(images, "--rm", "--runtime", name, IMAGE, "true"))
        assert r.returncode != 0 and words in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr

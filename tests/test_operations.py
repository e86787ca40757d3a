"""The create operation's steps, seen from outside: a backend's mrun_modify_spec runs before the
process plan and the cgroup exist (both follow the rewritten config, and the state records it),
and a rewrite into an invalid config is refused in one line with nothing left behind."""

from __future__ import annotations

import json
import os

import pytest
from conftest import cgroup_dirs, pip_installed

BACKEND = os.path.join(os.path.dirname(os.path.abspath(__file__)), "backends", "modspec")


@pytest.fixture(scope="module")
def modspec_backend():
    yield from pip_installed(BACKEND, "mrun-test-modspec-backend")


def test_the_backend_rewrites_the_config_before_plan_and_cgroup(h, modspec_backend):
    cid = h.cid()
    cfg = h.config(["sh", "-c", "echo $MODIFIED_BY; sleep 600"], annotations={"org.mrun.test.modspec": "env"})
    h.ok("create", "-b", h.bundle(config=cfg), cid)
    try:
        saved = json.load(open(os.path.join(h.root, cid, "state.json")))
        assert saved["backend"] == "modspec"
        assert "MODIFIED_BY=modspec" in saved["config"]["process"]["env"]  # recorded as rewritten
        pids = [d for d in cgroup_dirs(saved["cgroup"]["paths"].get("pids", "").removeprefix("/sys/fs/cgroup/pids"))]
        limits = {open(os.path.join(d, "pids.max")).read().strip() for d in pids if os.path.exists(f"{d}/pids.max")}
        assert limits == {"42"}, limits  # the cgroup was made from the rewritten config
    finally:
        h.ok("delete", "--force", cid)


def test_a_rewrite_into_an_invalid_config_is_refused_and_leaves_nothing(h, modspec_backend):
    cid = h.cid()
    cfg = h.config(["true"], annotations={"org.mrun.test.modspec": "break"})
    r = h.mrun("create", "-b", h.bundle(config=cfg), cid)
    assert r.returncode != 0
    assert r.stderr.strip().splitlines() == [
        r.stderr.strip()
    ] and "backend 'modspec' rewrote the config into an invalid one" in r.stderr and "process.user.uid" in r.stderr
    assert not os.path.exists(os.path.join(h.root, cid))

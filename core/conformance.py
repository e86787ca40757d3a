"""A conformance kit for backends: the tests every backend must pass, as pytest tests a backend
package imports into its own suite (runwasi's shared engine tests, as pytest).

In the backend's tests::

    from mrun.conformance import *  # noqa: F403 - the kit's fixtures and tests

    @pytest.fixture
    def backend_under_test():
        return MyBackendKit()  # a Kit: the backend's name and make_config()

``Kit.make_config(workdir, kind, value)`` returns the config.json (a dict) of a bundle whose
container, on this backend: ``("exit", N)`` exits with status N; ``("echo", TEXT)`` writes TEXT
to stdout and exits 0; ``("wait", None)`` runs until it is killed. Return None for a kind the
backend cannot express; its tests are skipped, saying so. The kit fills in a cgroup path of its
own and runs the real ``mrun`` (as root), each test in a private state root, and checks that
nothing is left: no state, no cgroup, no process.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from typing import Any

import pytest

__all__ = [
    "Kit",
    "mrun_env",
    "test_conformance_exit_status",
    "test_conformance_output",
    "test_conformance_lifecycle_and_signal",
    "test_conformance_pids_limit",
    "test_conformance_refuses_an_unknown_id",
]


class Kit:
    """What a backend tells the kit (subclass it, or duck-type it)."""

    name = "linux"

    def make_config(self, workdir: str, kind: str, value: Any) -> dict[str, Any] | None:
        raise NotImplementedError


class MrunEnv:
    def __init__(self, kit: Kit, workdir: str) -> None:
        self.kit, self.workdir = kit, workdir
        self.root = os.path.join(workdir, "state")
        self.parent = f"mrun-conformance-{uuid.uuid4().hex[:10]}"
        self.binary = shutil.which("mrun", path=os.path.dirname(sys.executable)) or shutil.which("mrun") or "mrun"

    def bundle(self, kind: str, value: Any = None) -> tuple[str, dict[str, Any]]:
        config = self.kit.make_config(self.workdir, kind, value)
        if config is None:
            pytest.skip(f"backend {self.kit.name!r} cannot express {kind!r}")
        cid = f"k{uuid.uuid4().hex[:8]}"
        config.setdefault("linux", {})["cgroupsPath"] = f"/{self.parent}/{cid}"
        path = os.path.join(self.workdir, f"bundle-{cid}")
        os.makedirs(path)
        with open(os.path.join(path, "config.json"), "w") as f:
            json.dump(config, f)
        return cid, {"path": path, "config": config}

    def mrun(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Output through files, not pipes: a created container inherits mrun's stdio, and a
        pipe would stay open (and this call wait) as long as the container lives."""
        import tempfile

        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            proc = subprocess.run(
                [self.binary, "--root", self.root, *args], stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                timeout=timeout,
            )
            out.seek(0)
            err.seek(0)
            return subprocess.CompletedProcess(proc.args, proc.returncode, out.read(), err.read())

    def ok(self, *args: str) -> subprocess.CompletedProcess[str]:
        r = self.mrun(*args)
        assert r.returncode == 0, f"mrun {' '.join(args)}: {r.stderr}"
        return r

    def status(self, cid: str) -> str:
        return json.loads(self.ok("state", cid).stdout)["status"]

    def wait_status(self, cid: str, want: str, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while self.status(cid) != want:
            assert time.monotonic() < deadline, f"{cid} never became {want}"
            time.sleep(0.05)

    def cgroups(self) -> list[str]:
        base = "/sys/fs/cgroup"
        if os.path.exists(f"{base}/cgroup.controllers"):
            candidates = [f"{base}/{self.parent}"]
        else:
            candidates = [f"{base}/{c}/{self.parent}" for c in os.listdir(base)]
        return [d for d in candidates if os.path.isdir(d)]

    def leftovers(self) -> list[str]:
        found = []
        state = [n for n in os.listdir(self.root) if not n.startswith(".")] if os.path.isdir(self.root) else []
        if state:
            found.append(f"state: {state}")
        for d in self.cgroups():
            children = [e.name for e in os.scandir(d) if e.is_dir()]
            if children:
                found.append(f"cgroups under {d}: {children}")
        return found

    def cleanup(self) -> None:
        for cid in [n for n in os.listdir(self.root) if not n.startswith(".")] if os.path.isdir(self.root) else []:
            self.mrun("delete", "--force", cid)
        for d in sorted(self.cgroups(), reverse=True):  # the parent the kit named; containers' are gone
            for sub in sorted((e.path for e in os.scandir(d) if e.is_dir()), reverse=True):
                try:
                    os.rmdir(sub)
                except OSError:
                    pass
            try:
                os.rmdir(d)
            except OSError:
                pass


@pytest.fixture
def mrun_env(backend_under_test: Kit, tmp_path: Any) -> Any:
    if os.geteuid() != 0:
        pytest.fail("the conformance kit runs containers for real: run it as root")
    env = MrunEnv(backend_under_test, str(tmp_path))
    yield env
    left = env.leftovers()
    env.cleanup()
    assert not left, f"backend {backend_under_test.name!r} left things behind: {left}"


def _explained(env: MrunEnv, bundle: dict[str, Any]) -> None:
    first = env.ok("explain", "-b", bundle["path"]).stdout.splitlines()[0]
    assert first == f"backend: {env.kit.name}", f"the bundle went to another backend: {first}"


def test_conformance_exit_status(mrun_env: MrunEnv) -> None:
    for status in (0, 3, 125):
        cid, bundle = mrun_env.bundle("exit", status)
        _explained(mrun_env, bundle)
        r = mrun_env.mrun("run", "-b", bundle["path"], cid)
        assert r.returncode == status, f"exit {status}: got {r.returncode}: {r.stderr}"


def test_conformance_output(mrun_env: MrunEnv) -> None:
    cid, bundle = mrun_env.bundle("echo", "conformance says hello")
    r = mrun_env.mrun("run", "-b", bundle["path"], cid)
    assert r.returncode == 0 and "conformance says hello" in r.stdout, r.stderr


def test_conformance_lifecycle_and_signal(mrun_env: MrunEnv) -> None:
    """create -> created, start -> running, kill -> stopped, delete -> gone, as runc does."""
    cid, bundle = mrun_env.bundle("wait")
    mrun_env.ok("create", "-b", bundle["path"], cid)
    assert mrun_env.status(cid) == "created"
    mrun_env.ok("start", cid)
    mrun_env.wait_status(cid, "running")
    refused = mrun_env.mrun("delete", cid)
    assert refused.returncode != 0 and "running" in refused.stderr
    mrun_env.ok("kill", cid, "KILL")
    mrun_env.wait_status(cid, "stopped")
    mrun_env.ok("delete", cid)
    gone = mrun_env.mrun("state", cid)
    assert gone.returncode != 0 and len(gone.stderr.strip().splitlines()) == 1


def test_conformance_pids_limit(mrun_env: MrunEnv) -> None:
    """The container's cgroup carries the config's limits, whichever backend runs it."""
    cid, bundle = mrun_env.bundle("wait")
    bundle["config"]["linux"].setdefault("resources", {})["pids"] = {"limit": 37}
    with open(os.path.join(bundle["path"], "config.json"), "w") as f:
        json.dump(bundle["config"], f)
    mrun_env.ok("create", "-b", bundle["path"], cid)
    try:
        limits = set()
        for d in mrun_env.cgroups():
            path = os.path.join(d, cid, "pids.max")
            if os.path.exists(path):
                limits.add(open(path).read().strip())
        assert limits == {"37"}, f"pids.max of the container's cgroup: {limits}"
    finally:
        mrun_env.ok("delete", "--force", cid)


def test_conformance_refuses_an_unknown_id(mrun_env: MrunEnv) -> None:
    for verb in (["start"], ["kill"], ["delete"], ["state"]):
        r = mrun_env.mrun(*verb, "no-such-container")
        assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1, (verb, r.stderr)

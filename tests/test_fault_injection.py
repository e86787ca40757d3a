"""SIGKILL mrun at random instants (seeded) during create, run --rm with a bridge network, pull and
load; then the cleanup verbs (`rm -f ID`, `system prune`) must leave no state, mount, snapshot,
cgroup, veth, lease, nft rule or partial blob, and the next run of the same image must work.

MRUN_FAULT_KILLS sets the kills per verb (default 20, what CI runs); MRUN_FAULT_SEED the seed.
"""

from __future__ import annotations

import os
import random
import subprocess
import tempfile
import time
from typing import Any

import pytest
from conftest import IMAGE, img, img_ok, run_args, veths_left
from test_network import leases, net, nft_rules  # noqa: F401 - the net fixture
from test_pull import CREDS, registry  # noqa: F401 - the registry fixture
from test_sandbox import _cgroup_file

KILLS = int(os.environ.get("MRUN_FAULT_KILLS", "20"))
SEED = int(os.environ.get("MRUN_FAULT_SEED", "20261129"))


def timed(argv: list[str], env: dict[str, str] | None = None) -> float:
    """How long one unkilled run takes (output to a file: a created container keeps a pipe open)."""
    with tempfile.TemporaryFile("w+") as err:
        start = time.monotonic()
        code = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, env=env,
                              timeout=120).returncode
        took = time.monotonic() - start
        err.seek(0)
        assert code == 0, err.read()
    return took


def kill_at_random(argv: list[str], rng: random.Random, span: float, env: dict[str, str] | None = None) -> None:
    """Start mrun, SIGKILL it (only it, by pid) somewhere within ``span`` seconds."""
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=env)
    time.sleep(rng.uniform(0, span))
    proc.kill()
    proc.wait()


def image_leftovers(h, keep: str = "") -> list[str]:
    """Partial writes, containers and mounts in the image root; ``keep``: a container that stays."""
    found = []
    containers = os.path.join(h.image_root, "containers")
    if os.path.isdir(containers) and set(os.listdir(containers)) - {keep}:
        found.append(f"image containers: {os.listdir(containers)}")
    for folder in ("blobs/sha256", "layers", ""):
        path = os.path.join(h.image_root, folder)
        junk = [n for n in os.listdir(path) if ".part" in n or ".tmp" in n or n.endswith(".lock")] if os.path.isdir(
            path) else []
        if junk:
            found.append(f"partial writes in {folder or '.'}: {junk}")
    with open("/proc/self/mountinfo") as f:
        mounts = [line.split()[4] for line in f if h.image_root in line
                  and not (keep and line.split()[4] == os.path.join(containers, keep, "rootfs"))]
    if mounts:
        found.append(f"mounts: {mounts}")
    return found


def settle(h, cid: str = "", env: dict[str, str] | None = None) -> None:
    """What a user runs after a crash: rm -f of the container they know, then system prune. First,
    the killed command is gone whole: a warm one's work runs in the template's child, which the
    kernel SIGKILLs as the caller dies and which may still hold a blob's lock for a moment (a
    prune then rightly keeps the lock file, and the child's death leaves it)."""
    from mrun.state import held_by_someone

    blobs = os.path.join(h.image_root, "blobs", "sha256")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(
            held_by_someone(os.path.join(blobs, n)) for n in (os.listdir(blobs) if os.path.isdir(blobs) else ())
            if n.endswith(".lock")):
        time.sleep(0.02)
    if cid:
        r = img(h, "rm", "-f", cid, env=env)
        assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    r = img(h, "system", "prune", env=env)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr


def assert_clean(h, when: str) -> None:
    left = h.leftovers() + image_leftovers(h)
    assert not left, f"after {when}: {left}"


def test_killed_create(h):
    rng = random.Random(SEED)
    bundle = h.bundle(["sleep", "60"])
    span = 1.2 * timed([h.binary, "--root", h.root, "create", "-b", bundle, "probe"])
    h.ok("delete", "--force", "probe")
    for i in range(KILLS):
        cid = f"k{i}"
        kill_at_random([h.binary, "--root", h.root, "create", "-b", bundle, cid], rng, span)
        r = h.mrun("delete", "--force", cid)
        assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
        h.ok("--image-root", os.path.join(h.tmp, "no-images"), "system", "prune")
        left = h.leftovers()
        assert not left, f"kill {i}: {left}"
    cid = h.cid()
    h.ok("create", "-b", bundle, cid)
    h.ok("delete", "--force", cid)


def test_killed_run_rm_with_a_bridge_network(net):  # noqa: F811 - the fixture
    h = net
    rng = random.Random(SEED + 1)
    argv = [h.binary, "--root", h.root, "--image-root", h.image_root,
            *run_args(h, "--rm", "--network", h.net, "--name", "probe", IMAGE, "true")]
    env = {**os.environ, **h.base_env, **h.env}
    span = 1.2 * timed(argv, env)
    for i in range(KILLS):
        cid = f"k{i}"
        kill_at_random([*argv[:-3], cid, IMAGE, "true"], rng, span, env)
        settle(h, cid, h.env)
        assert_clean(h, f"kill {i}")
        assert not leases(h), f"kill {i}: leases {leases(h)}"
        assert not veths_left(), f"kill {i}: veths"
        assert "mrun-ctr" not in nft_rules(), f"kill {i}: nft rules"
    r = img(h, *run_args(h, "--rm", "--network", h.net, IMAGE, "echo", "after"), env=h.env)
    assert r.returncode == 0 and r.stdout == "after\n", r.stderr


def test_killed_load(images, busybox_archive):
    h = images
    rng = random.Random(SEED + 2)
    argv = [h.binary, "--root", h.root, "--image-root", h.image_root, "load", busybox_archive]
    span = 1.2 * timed(argv)
    for i in range(KILLS):
        if "localhost/busybox" in img_ok(h, "images").stdout:
            img_ok(h, "rmi", IMAGE)
        kill_at_random(argv, rng, span)
        settle(h)
        assert_clean(h, f"kill {i}")
    img_ok(h, "load", busybox_archive)
    assert img_ok(h, *run_args(h, "--rm", IMAGE, "echo", "loaded")).stdout == "loaded\n"


@pytest.mark.parametrize("ref", ["busybox"])
def test_killed_pull(images, registry, ref):  # noqa: F811 - the fixture
    h = images
    rng = random.Random(SEED + 3)
    argv = [h.binary, "--root", h.root, "--image-root", h.image_root, "pull", "--creds", CREDS, registry.refs[ref]]
    span = 1.2 * timed(argv)
    for i in range(KILLS):
        if img(h, "image", "inspect", registry.refs[ref]).returncode == 0:  # `images` shows repository and tag apart
            img_ok(h, "rmi", registry.refs[ref])
        kill_at_random(argv, rng, span)
        if i % 2:  # half the time a pull comes first (it must resume or restart), half a prune
            img_ok(h, "pull", "--creds", CREDS, registry.refs[ref])
        settle(h)
        assert_clean(h, f"kill {i}")
    img_ok(h, "pull", "--creds", CREDS, registry.refs[ref])
    assert img_ok(h, *run_args(h, "--rm", registry.refs[ref], "echo", "pulled")).stdout == "pulled\n"


@pytest.mark.parametrize("verb", ["delete", "start"])
def test_killed_delete_or_start(h, verb):
    """A `delete --force` or `start` killed at any instant: the next `delete --force` of the same id
    finishes the job, and nothing is left. A delete killed after it removed part of the container
    (its cgroup, its mounts, its process) must not leave a record the next one trips over."""
    rng = random.Random(SEED + 4 + (verb == "start"))
    bundle = h.bundle(["sleep", "60"])
    h.ok("create", "-b", bundle, "probe")
    argv = [h.binary, "--root", h.root, "delete", "--force", "probe"] if verb == "delete" else [
        h.binary, "--root", h.root, "start", "probe"]
    span = 1.2 * timed(argv)
    h.ok("delete", "--force", "probe")
    for i in range(KILLS):
        cid = f"k{i}"
        h.ok("create", "-b", bundle, cid)
        kill_at_random([*argv[:-1], cid], rng, span)
        r = h.mrun("delete", "--force", cid)
        assert r.returncode == 0 and "Traceback" not in r.stderr, f"kill {i}: {r.stderr}"
        left = h.leftovers()
        assert not left, f"kill {i}: {left}"
        r = h.mrun("state", cid)
        assert r.returncode != 0 and "does not exist" in r.stderr, f"kill {i}: {r.stdout} {r.stderr}"


def test_killed_rm_of_a_detached_container(images, busybox_archive):
    """`rm -f` of a running detached container killed at any instant (its supervisor, its init,
    its record, its rootfs each half gone): the next `rm -f` finishes, and nothing is left."""
    h = images
    rng = random.Random(SEED + 6)
    env = {**os.environ, **h.base_env}
    img_ok(h, "load", busybox_archive)
    img_ok(h, *run_args(h, "-d", "--name", "probe", IMAGE, "sleep", "60"))
    argv = [h.binary, "--root", h.root, "--image-root", h.image_root, "rm", "-f", "probe"]
    span = 1.2 * timed(argv, env)
    for i in range(KILLS):
        cid = f"k{i}"
        img_ok(h, *run_args(h, "-d", "--name", cid, IMAGE, "sleep", "60"))
        kill_at_random([*argv[:-1], cid], rng, span, env)
        settle(h, cid)
        assert_clean(h, f"kill {i}")


def until_not_paused(state: Any) -> str:
    """The first look once the killed holder is gone: a warm command's work runs in the
    template's child, which the kernel SIGKILLs as its caller dies, and which may take a moment to
    end after the caller has (until then it is alive, and the pause still its)."""
    deadline = time.monotonic() + 10
    while (found := state()) == "paused" and time.monotonic() < deadline:
        time.sleep(0.05)
    return found


def test_a_commit_killed_while_it_holds_the_container_paused_leaves_it_running(images, busybox_archive):
    """`commit` pauses a running container while it writes the layer (docker's default). Killed
    meanwhile (SIGKILL, OOM), it left the container frozen for good: `ps` said paused, its program
    never ran again, and nothing but a user's `unpause` thawed it. The next look at it (`ps`,
    `exec`, `stop`...) now resumes a container whose pauser is gone; a pause of the user's own is
    kept."""
    h = images
    img_ok(h, "load", busybox_archive)
    # /tick replaced whole: `echo > /tick` truncates, then writes, and a freeze between the two
    # (the commit's) left a read right after the thaw an empty file (seen once in CI)
    script = ("dd if=/dev/urandom of=/big bs=1M count=64 2>/dev/null && touch /ready && "
              "i=0 && while :; do i=$((i+1)); echo $i > /tick.new && mv /tick.new /tick; sleep 0.05; done")
    img_ok(h, *run_args(h, "-d", "--name", "held", IMAGE, "sh", "-c", script))
    try:
        deadline = time.monotonic() + 30
        while img(h, "exec", "held", "test", "-e", "/ready").returncode and time.monotonic() < deadline:
            time.sleep(0.1)

        def state() -> str:
            return img_ok(h, "ps", "-a", "--filter", "name=held", "--format", "{{.State}}").stdout.strip()

        argv = [h.binary, "--root", h.root, "--image-root", h.image_root, "commit", "held", "localhost/held:1"]
        for _attempt in range(5):  # killed while paused: once it shows paused, and before it is done
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, env={**os.environ, **h.base_env})
            while proc.poll() is None and state() != "paused":
                time.sleep(0.005)
            proc.kill()
            if proc.wait() == -9:
                break
        else:
            pytest.fail("every commit ended before it could be killed while it held the container paused")
        assert until_not_paused(state) == "running"
        before = int(img_ok(h, "exec", "held", "cat", "/tick").stdout)
        time.sleep(0.3)
        assert int(img_ok(h, "exec", "held", "cat", "/tick").stdout) > before, "its program does not run"
        img_ok(h, "pause", "held")  # the user's pause stays a pause
        assert state() == "paused"
        img_ok(h, "unpause", "held")
        assert state() == "running"
        assert img_ok(h, "commit", "held", "localhost/held:1").stdout.startswith("sha256:")
        assert state() == "running"
    finally:
        img_ok(h, "rm", "-f", "held")
    settle(h)
    assert_clean(h, "the killed commit")


def _frozen(cfg: dict) -> bool:
    if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        with open(_cgroup_file(cfg, "", "cgroup.freeze")) as f:
            return f.read().strip() == "1"
    with open(_cgroup_file(cfg, "freezer", "freezer.state")) as f:
        return f.read().strip() != "THAWED"


@pytest.mark.parametrize("verb", [["kill", "--all"], ["delete", "--force"]])
def test_a_kill_of_every_process_killed_while_it_holds_them_frozen_leaves_none_frozen(h, verb):
    """SIGKILL to a container's every process is sent frozen (no fork outruns it), then thawed:
    killed tasks die only once thawed. mrun killed between the two (its own SIGKILL, an OOM) left
    the container frozen, its processes alive and the kills sent so far pending: 'paused' for
    good. The next look at it resumes it now: what was killed dies, the rest runs on, and the
    verb run again finishes the job."""
    cfg = h.config(["sh", "-c", "i=0; while [ $i -lt 1500 ]; do sleep 1000 & i=$((i+1)); done; touch /tmp/ready; wait"])
    cfg["linux"]["resources"]["pids"] = {"limit": 4000}
    cfg["mounts"].append({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid"]})
    bundle = h.bundle(config=cfg)
    cid = h.cid()
    h.ok("create", "-b", bundle, cid)
    h.ok("start", cid)
    try:
        deadline = time.monotonic() + 60
        while h.mrun("exec", cid, "test", "-e", "/tmp/ready").returncode:
            assert time.monotonic() < deadline, "the container's 1500 processes did not start"
            time.sleep(0.1)
        args = [*verb, cid, "KILL"] if verb[0] == "kill" else [*verb, cid]
        for _attempt in range(5):
            proc = subprocess.Popen([h.binary, "--root", h.root, *args], stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                    env={**os.environ, **h.base_env})
            while proc.poll() is None and not _frozen(cfg):
                time.sleep(0.001)
            proc.kill()
            if proc.wait() == -9:
                break
        else:
            pytest.fail(f"every `{' '.join(verb)}` ended before it could be killed while the container was frozen")
        assert until_not_paused(lambda: h.status(cid)) in ("running", "stopped")
        assert not _frozen(cfg), "the look at it did not resume it"
        h.ok(*args)
        if verb[0] == "kill":
            h.wait_status(cid, "stopped", timeout=20)
        else:
            assert h.status(cid) == "gone"
    finally:
        h.mrun("delete", "--force", cid, timeout=60)
    left = h.leftovers()
    assert not left, left


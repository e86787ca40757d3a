"""$MRUN_TRACE: the step timings a developer asks for (mrun.trace), written by every mrun process
of a container's path, and never through a link, into a fifo, or into someone else's file."""

from __future__ import annotations

import os
import re
import stat
import time

import pytest
from conftest import IMAGE, img_ok, run_args
from mrun import trace

LINE = re.compile(r"^(\d+) (\d+) (\d+) (\S.*)$")


def steps(path) -> list[tuple[int, int, int, str]]:
    """Every line, parsed; a line of another shape fails the test."""
    out = []
    for line in open(path).read().splitlines():
        m = LINE.match(line)
        assert m, f"not a trace line: {line!r}"
        out.append((int(m[1]), int(m[2]), int(m[3]), m[4]))
    return out


def test_record_appends_one_line_per_step_and_a_failing_block_still_counts(tmp_path, monkeypatch):
    path = tmp_path / "t.log"
    monkeypatch.setenv(trace.VARIABLE, str(path))
    with trace.span("create claim_cgroup"):
        time.sleep(0.002)
    try:
        with trace.span("cli  delete\nforged 1 2 3"):  # whitespace in a name cannot forge a line
            raise ValueError
    except ValueError:
        pass
    got = steps(path)
    assert [g[3] for g in got] == ["create claim_cgroup", "cli delete forged 1 2 3"]
    assert got[0][0] == os.getpid() and got[0][2] >= 2_000_000
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_unset_relative_link_fifo_and_foreign_files_get_nothing(tmp_path, monkeypatch):
    monkeypatch.delenv(trace.VARIABLE, raising=False)
    with trace.span("create x"):
        pass
    assert not os.listdir(tmp_path)

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(trace.VARIABLE, "relative.log")
    with trace.span("create x"):
        pass
    assert not os.listdir(tmp_path)

    target = tmp_path / "target"
    target.write_text("")
    (tmp_path / "link").symlink_to(target)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # nobody reads it: opening it to write would wait
    foreign = tmp_path / "foreign"
    foreign.write_text("")
    os.chown(foreign, 65534, 65534)
    os.link(target, tmp_path / "hardlink")  # e.g. one of root's files, linked where the name points
    for name in ("link", "fifo", "foreign", "hardlink"):
        began = time.monotonic()
        trace.record(str(tmp_path / name), "create x", 1, 2)
        assert time.monotonic() - began < 1
    assert target.read_text() == "" and foreign.read_text() == ""


def test_runc_verbs_record_their_create_steps(h, tmp_path):
    path = tmp_path / "trace.log"
    cid = h.cid()
    bundle = h.bundle(["true"])
    env = {trace.VARIABLE: str(path)}
    for verb in (["create", "-b", bundle, cid], ["start", cid]):
        h.ok(*verb, env=env)
    h.wait_status(cid, "stopped")
    h.ok("delete", cid)  # without the variable: nothing more
    got = steps(path)
    names = [g[3] for g in got]
    assert names[-1] == "cli start" and "cli delete" not in names
    from mrun.operations.create import Create

    assert [n.removeprefix("create ") for n in names if n.startswith("create ")] == list(Create.STEPS)
    create = next(g for g in got if g[3] == "cli create")
    inner = [g for g in got if g[3].startswith("create ")]
    assert all(g[0] == create[0] for g in inner)  # the CLI's own process ran them
    assert all(create[1] <= g[1] and g[1] + g[2] <= create[1] + create[2] for g in inner)


def test_the_docker_like_run_records_warm_and_cold(images, busybox_archive, tmp_path):
    """Warm, the template's child has the caller's environment: its steps are recorded too."""
    h = images
    img_ok(h, "load", busybox_archive)
    path = tmp_path / "trace.log"
    img_ok(h, *run_args(h, "--rm", IMAGE, "true"), env={trace.VARIABLE: str(path)})
    names = [g[3] for g in steps(path)]
    assert "cli run" in names and "create spawn_init" in names
    assert {"run prepare", "run start", "run wait", "run record", "run delete"} <= set(names)  # --rm's removal too
    warm = h.base_env.get("MRUN_WARM") != "0"
    assert ("warm become" in names) == warm, names  # the child's set-up, before the work
    if warm:
        became, ran = (next(g for g in steps(path) if g[3] == n) for n in ("warm become", "cli run"))
        assert became[0] == ran[0] and became[1] + became[2] <= ran[1]


@pytest.mark.parametrize("warm", ["1", "0"])
def test_a_shim_task_records_start_its_calls_and_its_worker_warm_and_cold(h, tmp_path, warm):
    """The path bench/timeline.py sums: the shim's start, each ttrpc call in the daemon, and the
    create worker's steps in a process of their own."""
    from test_shim_direct import Shim, task_pb2, wait_exit

    path = tmp_path / "trace.log"
    cid = h.cid("traced")
    bundle = h.bundle(["true"])
    shim = Shim(h, bundle, cid, env={"MRUN_WARM": warm, trace.VARIABLE: str(path)})
    shim.call("Create", task_pb2.CreateTaskRequest(id=cid, bundle=bundle))
    shim.call("Start", task_pb2.StartRequest(id=cid))
    assert wait_exit(shim, cid) == 0
    shim.finish(cid)
    got = steps(path)
    by_name = {g[3]: g for g in got}
    for name in ("shim start", "ttrpc Connect", "ttrpc Create", "ttrpc Start", "ttrpc Wait", "ttrpc Delete",
                 "worker", "create spawn_init"):
        assert name in by_name, f"{name!r} not in {sorted(by_name)}"
    assert by_name["ttrpc Create"][0] == shim.pid
    assert by_name["worker"][0] not in (shim.pid, os.getpid())
    create, worker = by_name["ttrpc Create"], by_name["worker"]
    assert create[1] <= worker[1] and worker[1] + worker[2] <= create[1] + create[2]


def test_a_pod_s_second_start_answered_by_the_template_is_recorded_in_the_caller_s_file(h, tmp_path):
    """A start that joins a running pod is answered by the warm template itself, which has its own
    environment, not the caller's: it was never recorded, and bench/timeline.py could not sum a
    container in a pod. It is recorded where the caller's $MRUN_TRACE says, by the template."""
    import subprocess
    import uuid

    from conftest import mrun_binary, warm_path
    from test_shim_direct import Shim
    from test_warm import spares_of

    pod = f"pod-{uuid.uuid4().hex[:8]}"
    config = h.config(["sleep", "600"])
    config["annotations"] = {"io.kubernetes.cri.sandbox-id": pod}
    first = Shim(h, h.bundle(config=config), h.cid("podfirst"))
    spares_of(warm_path(), wait=5)  # the template is up
    path = tmp_path / "trace.log"
    binary = os.path.join(os.path.dirname(mrun_binary()), "containerd-shim-mrun-v2")
    env = {**os.environ, "MRUN_SHIM_ROOT": first.state_root, trace.VARIABLE: str(path)}
    try:
        out = subprocess.run([binary, "-namespace", "direct", "-address", first.address, "-id", h.cid("podsecond"),
                              "start"], cwd=h.bundle(config=config), env=env, capture_output=True, timeout=30)
        assert (out.returncode, out.stdout) == (0, f"unix://{first.socket}".encode()), out
        got = [g for g in steps(path) if g[3] == "shim start"]
        assert len(got) == 1 and got[0][0] not in (first.pid, os.getpid()), got  # the template's own pid
    finally:
        first.finish()

"""podman's --sdnotify through the docker-like `mrun run IMAGE`, under systemd's NOTIFY_SOCKET (a
unit of Type=notify): warm (the template's child does the run) and cold (a child of the caller's
does a foreground one). systemd takes a unit's notifications from its main process only (the
default NotifyAccess=main): each is checked to come in the caller's name."""

from __future__ import annotations

import os
import subprocess
import time

import pytest
from busybox_bundle import make_oci_archive, make_rootfs
from conftest import IMAGE, img, img_ok, one_line_error, require, run_args
from test_runc_compat import NOTIFIER, ServiceManager

NOTIFYING = "localhost/notifying:1"


@pytest.fixture
def manager():
    m = ServiceManager()
    yield m
    m.close()


@pytest.fixture(scope="module")
def notifying_archive(tmp_path_factory):
    """busybox with a static sd-notify (each argument one datagram to $NOTIFY_SOCKET)."""
    gcc = require("gcc", "gcc")
    require("umoci", "umoci")
    work = tmp_path_factory.mktemp("notifying")
    rootfs = str(work / "rootfs")
    make_rootfs(rootfs)
    (work / "notify.c").write_text(NOTIFIER)
    subprocess.run([gcc, "-static", "-O", "-o", os.path.join(rootfs, "bin", "sd-notify"), str(work / "notify.c")],
                   check=True, capture_output=True)
    return make_oci_archive(rootfs, str(work), NOTIFYING, ["/bin/sh"], ["PATH=/bin"])


def _run_as_the_unit(h, tmp_path, manager, *args: str, timeout: float = 60):
    """`mrun run ...` with NOTIFY_SOCKET set, as systemd starts a unit's ExecStart. -> (the
    completed call, its pid: the unit's main process)."""
    return _as_the_unit(h, tmp_path, manager, *run_args(h, *args), timeout=timeout)


def said_ready_by_the_supervisor(h, manager, main: int, name: str) -> int:
    """A detached run's word, in its own name: MAINPID (the container's supervisor, its init's
    parent) and READY=1, then a barrier. -> the supervisor."""
    said = manager.take_from(main)
    assert len(said) == 2 and said[1] == ("BARRIER=1", 1) and said[0][0].endswith("\nREADY=1\n"), said
    supervisor = int(said[0][0].split("\n")[0].removeprefix("MAINPID="))
    init = int(img_ok(h, "inspect", "--format", "{{.State.Pid}}", name).stdout)
    with open(f"/proc/{init}/stat") as f:
        assert int(f.read().rsplit(")", 1)[1].split()[1]) == supervisor, "MAINPID is not the init's parent"
    return supervisor


def test_a_foreground_run_says_ready_once_its_container_runs_in_its_own_name(images, busybox_archive, tmp_path,
                                                                              manager):
    """podman's default (--sdnotify=conmon): READY=1 once the container runs, MAINPID the run
    itself (it stays, waits for the container and returns its status), then a barrier so the
    manager has it before anything else can happen; the container gets no socket of its own."""
    h = images
    img_ok(h, "load", busybox_archive)
    r, main = _run_as_the_unit(h, tmp_path, manager, "--rm", IMAGE, "sh", "-c", "echo ${NOTIFY_SOCKET:-none}")
    assert (r.returncode, r.stdout) == (0, "none\n"), r.stderr
    assert manager.take_from(main) == [(f"MAINPID={main}\nREADY=1\n", 0), ("BARRIER=1", 1)]


def test_a_detached_run_names_its_container_s_supervisor_as_the_main_process(images, busybox_archive, tmp_path,
                                                                              manager):
    """-d: the run returns once the container runs, so MAINPID is the process that stays with
    it, its supervisor (the container's parent, as conmon is podman's), said in the run's name."""
    h = images
    img_ok(h, "load", busybox_archive)
    name = h.cid("sdd")
    r, main = _run_as_the_unit(h, tmp_path, manager, "-d", "--name", name, IMAGE, "sleep", "60")
    try:
        assert r.returncode == 0, r.stderr
        said_ready_by_the_supervisor(h, manager, main, name)
    finally:
        img_ok(h, "rm", "-f", name)


def test_sdnotify_container_passes_the_container_s_own_ready_on(images, notifying_archive, tmp_path, manager):
    """--sdnotify=container: the container gets a socket of its own (runc's /run/notify) and its
    READY= is passed on when it comes (what else it says is dropped, as runc drops it), with
    MAINPID the run itself; the run then goes on until the container ends."""
    h = images
    img_ok(h, "load", notifying_archive)
    script = "sd-notify STATUS=warming; sleep 0.3; sd-notify READY=1; sleep 0.5; echo $NOTIFY_SOCKET"
    began = time.monotonic()
    r, main = _run_as_the_unit(h, tmp_path, manager, "--rm", "--sdnotify", "container", NOTIFYING, "sh", "-c", script)
    assert (r.returncode, r.stdout) == (0, "/run/notify/notify.sock\n"), r.stderr
    assert time.monotonic() - began >= 0.8
    assert manager.take_from(main) == [("READY=1\n", 0), (f"MAINPID={main}\n", 0), ("BARRIER=1", 1)]


def test_sdnotify_ignore_says_nothing_and_a_manager_out_of_reach_is_one_warning(images, busybox_archive, tmp_path,
                                                                                 manager):
    """--sdnotify=ignore: nothing is said. A NOTIFY_SOCKET nobody listens on is said in one line,
    and the container runs all the same (as runc's run carries on)."""
    h = images
    img_ok(h, "load", busybox_archive)
    r, _ = _run_as_the_unit(h, tmp_path, manager, "--rm", "--sdnotify", "ignore", IMAGE, "true")
    assert r.returncode == 0, r.stderr
    assert manager.take() == []
    gone = str(tmp_path / "nobody.sock")
    r = img(h, *run_args(h, "--rm", IMAGE, "echo", "ran"), env={"NOTIFY_SOCKET": gone})
    assert (r.returncode, r.stdout) == (0, "ran\n"), r.stderr
    assert r.stderr.count("\n") == 1 and f"NOTIFY_SOCKET: {gone}" in r.stderr and "readiness" in r.stderr, r.stderr


@pytest.mark.parametrize("args, said", [
    (["--sdnotify", "sometimes"], "--sdnotify 'sometimes': must be conmon, container, healthy or ignore"),
    (["--sdnotify", "healthy"], "--sdnotify healthy: needs -d"),
    (["-d", "--sdnotify", "healthy"], "--sdnotify healthy: the container has no health check"),
])
def test_an_sdnotify_mrun_does_not_do_is_refused_in_one_line_before_anything_is_made(images, busybox_archive,
                                                                                    manager, args, said):
    h = images
    img_ok(h, "load", busybox_archive)
    name = h.cid("sdref")
    r = img(h, *run_args(h, "--rm", "--name", name, *args, IMAGE, "true"), env={"NOTIFY_SOCKET": manager.path})
    assert r.returncode != 0 and r.stderr.count("\n") == 1 and said in r.stderr, r.stderr
    assert name not in img_ok(h, "ps", "-a", "--format", "{{.Names}}").stdout
    assert manager.take() == []


def test_sdnotify_healthy_says_ready_once_the_health_check_has_passed(images, busybox_archive, tmp_path, manager):
    """-d --sdnotify=healthy: the run waits until its supervisor has seen the check pass (not
    when the container starts), then MAINPID (the supervisor) and READY=1 in the run's name. A
    container that ends before its check passes is an error in one line."""
    h = images
    img_ok(h, "load", busybox_archive)
    name = h.cid("sdh")
    check = ["--health-cmd", "test -e /tmp/ok", "--health-interval", "100ms", "--health-start-interval", "100ms"]
    began = time.monotonic()
    r, main = _run_as_the_unit(h, tmp_path, manager, "-d", "--name", name, "--sdnotify", "healthy", *check, IMAGE,
                               "sh", "-c", "sleep 1; touch /tmp/ok; exec sleep 60")
    try:
        assert r.returncode == 0, r.stderr
        assert time.monotonic() - began >= 1, "READY=1 came before the check could pass"
        said = manager.take_from(main)
        assert len(said) == 2 and said[1] == ("BARRIER=1", 1) and said[0][0].endswith("\nREADY=1\n"), said
        assert "healthy" in img_ok(h, "ps", "--format", "{{.Status}}", "--filter", f"name={name}").stdout
    finally:
        img_ok(h, "rm", "-f", name)
    r, main = _run_as_the_unit(h, tmp_path, manager, "-d", "--rm", "--sdnotify", "healthy", *check, IMAGE,
                               "sh", "-c", "exit 3")
    assert r.returncode != 0 and r.stderr.count("\n") == 1, r.stderr
    assert "ended before its health check passed" in r.stderr, r.stderr
    assert manager.take() == []


def test_sdnotify_container_detached_returns_once_the_container_says_it_is_ready(images, notifying_archive,
                                                                                 tmp_path, manager):
    """-d --sdnotify=container (Quadlet's Notify=true): the container gets runc's socket, held by
    its supervisor, which notes its first READY=; the run waits for that (as podman's run waits
    for its proxy), then says MAINPID (the supervisor) and READY=1 in the run's name. What the
    container says before and after is dropped. A container that ends first is one line."""
    h = images
    img_ok(h, "load", notifying_archive)
    name = h.cid("sdc")
    script = ("sd-notify STATUS=warming; sleep 0.5; sd-notify READY=1; sleep 0.2; sd-notify STATUS=late; "
              "echo $NOTIFY_SOCKET; exec sleep 600")
    began = time.monotonic()
    r, main = _run_as_the_unit(h, tmp_path, manager, "-d", "--name", name, "--sdnotify", "container", NOTIFYING,
                               "sh", "-c", script)
    try:
        assert (r.returncode, r.stdout) == (0, f"{name}\n"), r.stderr
        assert time.monotonic() - began >= 0.5, "READY=1 came before the container said it"
        said_ready_by_the_supervisor(h, manager, main, name)
        deadline = time.monotonic() + 10
        while "/run/notify/notify.sock" not in img_ok(h, "logs", name).stdout:
            assert time.monotonic() < deadline, "the container never went on past its READY=1"
            time.sleep(0.05)
        assert manager.take() == []  # STATUS=late: dropped
    finally:
        img_ok(h, "rm", "-f", name)
    r, main = _run_as_the_unit(h, tmp_path, manager, "-d", "--rm", "--sdnotify", "container", NOTIFYING,
                               "sh", "-c", "sd-notify STATUS=bye; exit 3")
    assert r.returncode != 0 and r.stderr.count("\n") == 1, r.stderr
    assert "ended before it said READY=1 (--sdnotify container)" in r.stderr, r.stderr
    assert manager.take() == []
    for _ in range(5):  # READY=1 said just before it ended still counts (a oneshot-like service)
        brief = h.cid("sdb")
        r, main = _run_as_the_unit(h, tmp_path, manager, "-d", "--name", brief, "--sdnotify", "container", NOTIFYING,
                                   "sd-notify", "READY=1")
        assert r.returncode == 0, r.stderr
        assert manager.take_from(main)[0][0].endswith("\nREADY=1\n")
        img_ok(h, "rm", "-f", brief)
    assert not h.leftovers()


def _as_the_unit(h, tmp_path, manager, *args: str, timeout: float = 60):
    """`mrun ARGS...` with NOTIFY_SOCKET set, as systemd starts a unit's ExecStart. -> (the
    completed call, its pid: the unit's main process)."""
    pid_file = tmp_path / "main.pid"

    def note_pid() -> None:
        pid_file.write_text(str(os.getpid()))

    r = img(h, *args, env={"NOTIFY_SOCKET": manager.path}, preexec_fn=note_pid, timeout=timeout)
    return r, int(pid_file.read_text())


def test_start_under_systemd_says_ready_as_the_run_would(images, notifying_archive, tmp_path, manager):
    """`mrun start NAME` as a unit's ExecStart (podman generate systemd's units without --new):
    MAINPID (the new supervisor) and READY=1 once it runs, in the start's name (conmon's, the
    default); with create's --sdnotify=container, once the container says READY=1 itself
    (podman keeps the mode with the container)."""
    h = images
    img_ok(h, "load", notifying_archive)
    plain, own = h.cid("sdsp"), h.cid("sdso")
    create = ["create", "--cgroup-parent", h.cgroup_parent, "--network", "none"]
    try:
        img_ok(h, *create, "--name", plain, NOTIFYING, "sleep", "600")
        r, main = _as_the_unit(h, tmp_path, manager, "start", plain)
        assert r.returncode == 0, r.stderr
        said_ready_by_the_supervisor(h, manager, main, plain)
        script = "sleep 0.5; sd-notify READY=1; exec sleep 600"
        img_ok(h, *create, "--name", own, "--sdnotify", "container", NOTIFYING, "sh", "-c", script)
        began = time.monotonic()
        r, main = _as_the_unit(h, tmp_path, manager, "start", own)
        assert r.returncode == 0, r.stderr
        assert time.monotonic() - began >= 0.5, "READY=1 came before the container said it"
        said_ready_by_the_supervisor(h, manager, main, own)
        # out of systemd, its start is a start: no socket, nothing said
        img_ok(h, "stop", "-t", "0", own)
        img_ok(h, "start", own)
        assert manager.take() == []
    finally:
        img(h, "rm", "-f", plain, own)
    one_line_error(img(h, *create, "--sdnotify", "bogus", NOTIFYING, "true"), "--sdnotify 'bogus'")
    one_line_error(img(h, *create, "--sdnotify", "healthy", NOTIFYING, "true"), "no health check")
    assert not os.listdir(os.path.join(h.image_root, "containers"))


@pytest.mark.parametrize("flag", [["--sdnotify", "container"], ["--sdnotify", "ignore"], ["--sig-proxy=false"]])
def test_a_run_of_a_bundle_refuses_the_docker_like_run_s_own_flags(h, flag):
    """runc's `run --bundle` takes NOTIFY_SOCKET as runc does; --sdnotify and --sig-proxy were
    taken and dropped there (a flag of the other form is refused, never ignored)."""
    cid = h.cid("bundlerun")
    r = h.mrun("run", "-b", h.bundle(["true"]), *flag, cid)
    said = f"run --bundle: {flag[0].partition('=')[0]} applies to `mrun run IMAGE` only"
    assert r.returncode != 0 and r.stderr == f"mrun: {said}\n", r.stderr
    assert cid not in h.mrun("list", "-q").stdout

"""The systemd units podman writes for a container, with `mrun` where they say `podman`: those of
`podman generate systemd --new` (--cgroups=no-conmon) and of Quadlet (--cgroups=split). Each
command line is the unit's own, run as systemd runs it: in the unit's cgroup (made by the test
below its cgroup parent, in every hierarchy), under NOTIFY_SOCKET (Type=notify), and the unit's
life is played through: start, stop, start again, a crash (systemd kills what is in the unit's
cgroup), and the restart after it."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import time

import pytest
from conftest import IMAGE, img, img_ok, one_line_error, run_args
from test_images import _end_a_cgroup, _in_a_cgroup_of_its_own
from test_runc_compat import ServiceManager
from test_sdnotify import said_ready_by_the_supervisor

# ends on SIGTERM (as a service does), which a plain `sleep` as PID 1 would not
SERVICE = ["sh", "-c", 'trap "exit 0" TERM; while :; do sleep 0.1; done']


@pytest.fixture
def manager():
    m = ServiceManager()
    yield m
    m.close()


class Unit:
    """One unit: its cgroup (``path``, below the test's parent) and its commands run there."""

    def __init__(self, h, tmp_path, manager, name: str) -> None:
        self.h, self.manager = h, manager
        self.path = f"{h.cgroup_parent}/{name}.service"
        self.dirs = _in_a_cgroup_of_its_own(self.path)
        self.cidfile = str(tmp_path / f"{name}.service.ctr-id")  # %t/%n.ctr-id
        self.main_pid_file = tmp_path / f"{name}.main"

    def run(self, *args: str) -> tuple[subprocess.CompletedProcess, int]:
        """``mrun ARGS`` as an Exec*= line: in the unit's cgroup, with its NOTIFY_SOCKET. -> the
        call and its pid (for ExecStart: the unit's main process until MAINPID says otherwise)."""
        h = self.h
        enter = " ".join(f"echo $$ > {d}/cgroup.procs;" for d in self.dirs)
        argv = [h.binary, "--root", h.root, "--image-root", h.image_root, *args]
        script = f"echo $$ > {self.main_pid_file}; {enter} exec {shlex.join(argv)}"
        env = {**os.environ, **h.base_env, "NOTIFY_SOCKET": self.manager.path}
        r = subprocess.run(["sh", "-c", script], env=env, capture_output=True, text=True, timeout=90)
        return r, int(self.main_pid_file.read_text())

    def processes(self) -> set[int]:
        return {int(pid) for d in self.dirs for pid in open(os.path.join(d, "cgroup.procs")).read().split()}

    def crash(self) -> None:
        """systemd's end of a unit that failed: SIGKILL to every process in its cgroup."""
        for pid in self.processes():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        _until(lambda: not self.processes(), "the unit's processes outlived SIGKILL")

    def started(self, r: subprocess.CompletedProcess, main: int, name: str) -> int:
        """ExecStart's checks: the id printed and in the cidfile, READY=1 with MAINPID the
        container's supervisor, in the unit's cgroup in every hierarchy. -> the supervisor."""
        assert (r.returncode, r.stdout) == (0, f"{name}\n"), r.stderr
        with open(self.cidfile) as f:
            assert f.read() == name
        supervisor = said_ready_by_the_supervisor(self.h, self.manager, main, name)
        assert supervisor in self.processes(), "the unit's main process is not in the unit's cgroup"
        return supervisor

    def end(self) -> None:
        _end_a_cgroup(sorted(self.dirs, key=len, reverse=True))


def _until(done, what: str, seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while not done():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def _cgroup_of(pid: int) -> set[str]:
    with open(f"/proc/{pid}/cgroup") as f:
        return {line.rstrip("\n").split(":", 2)[2] for line in f}


def _init_of(h, name: str) -> int:
    return int(img_ok(h, "inspect", "--format", "{{.State.Pid}}", name).stdout)


def _gone(h, name: str) -> bool:
    return img(h, "inspect", name).returncode != 0


def test_a_unit_of_podman_generate_systemd_new_starts_stops_and_comes_back_after_a_crash(
        images, busybox_archive, tmp_path, manager):
    """ExecStart=mrun run --cidfile=%t/%n.ctr-id --cgroups=no-conmon --rm --sdnotify=conmon -d
    --replace --name NAME ..., ExecStop=mrun stop --ignore -t 10 --cidfile=..., ExecStopPost=mrun
    rm -f --ignore -t 10 --cidfile=..., Type=notify. --cgroups=no-conmon: the supervisor (conmon's
    part) stays in the unit's cgroup, the unit's main process; the container's cgroup is its own.
    The cidfile goes with the container (the next ExecStart refuses one that is there), and after
    a crash the next start replaces what the last one left running."""
    h = images
    img_ok(h, "load", busybox_archive)
    name = h.cid("gen")
    unit = Unit(h, tmp_path, manager, "gen")
    start = ["run", f"--cidfile={unit.cidfile}", "--cgroups=no-conmon", "--rm", "--sdnotify=conmon", "-d",
             "--replace", "--name", name, "--cgroup-parent", h.cgroup_parent, "--network", "none", IMAGE, *SERVICE]
    stop = ["stop", "--ignore", "-t", "10", f"--cidfile={unit.cidfile}"]
    stop_post = ["rm", "-f", "--ignore", "-t", "10", f"--cidfile={unit.cidfile}"]
    try:
        unit.started(*unit.run(*start), name)
        init = _init_of(h, name)
        assert f"{h.cgroup_parent}/{name}" in _cgroup_of(init) and unit.path not in _cgroup_of(init)

        r, _ = unit.run(*stop)
        assert (r.returncode, r.stdout) == (0, f"{name}\n"), r.stderr
        _until(lambda: _gone(h, name), "its --rm did not remove it once stopped")
        assert not os.path.exists(unit.cidfile), "the cidfile outlived its container"
        r, _ = unit.run(*stop_post)
        assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
        _until(lambda: not unit.processes(), "its supervisor stayed in the unit's cgroup")

        unit.started(*unit.run(*start), name)  # started again
        unit.crash()  # its supervisor with it
        left = _init_of(h, name)  # the container, in its own cgroup, ran on; so did its cidfile
        assert os.path.exists(unit.cidfile)

        unit.started(*unit.run(*start), name)  # Restart=: --replace ends what was left
        assert _init_of(h, name) != left and not os.path.exists(f"/proc/{left}")
        r, _ = unit.run(*stop)
        assert r.returncode == 0, r.stderr
        r, _ = unit.run(*stop_post)
        assert r.returncode == 0, r.stderr
        _until(lambda: _gone(h, name) and not unit.processes(), "the unit's container or supervisor stayed")
    finally:
        img(h, "rm", "-f", name)
        unit.end()
    assert not os.path.exists(unit.cidfile)
    assert not h.leftovers()


def test_a_quadlet_unit_keeps_its_container_s_cgroup_within_the_unit_s(images, busybox_archive, tmp_path, manager):
    """Quadlet's: ExecStart=mrun run --name=NAME --cidfile=%t/%N.cid --replace --rm
    --cgroups=split --sdnotify=conmon -d ..., ExecStop=mrun rm -v -f -i --cidfile=..., and the same
    as ExecStopPost. --cgroups=split: the container's cgroup is made under the unit's (in every
    hierarchy: each its own), so the unit's limits and its stop take it in; the supervisor stays
    in the unit's. Once stopped, the unit's cgroup holds nothing of mrun's (systemd removes it)."""
    h = images
    img_ok(h, "load", busybox_archive)
    name = h.cid("quad")
    unit = Unit(h, tmp_path, manager, "quad")
    start = ["run", f"--name={name}", f"--cidfile={unit.cidfile}", "--replace", "--rm", "--cgroups=split",
             "--sdnotify=conmon", "-d", "--network", "none", IMAGE, *SERVICE]
    stop = ["rm", "-v", "-f", "-i", f"--cidfile={unit.cidfile}"]
    try:
        unit.started(*unit.run(*start), name)
        init = _init_of(h, name)
        assert _cgroup_of(init) == {f"{unit.path}/{name}"}, _cgroup_of(init)

        r, _ = unit.run(*stop)
        assert (r.returncode, r.stdout) == (0, f"{name}\n"), r.stderr
        r, _ = unit.run(*stop)  # ExecStopPost=
        assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
        _until(lambda: not unit.processes(), "its supervisor stayed in the unit's cgroup")
        assert _gone(h, name) and not os.path.exists(unit.cidfile)
        for d in unit.dirs:  # nothing of the container's left below the unit's cgroup
            assert [e.name for e in os.scandir(d) if e.is_dir()] == [], d
    finally:
        img(h, "rm", "-f", name)
        unit.end()
    assert not h.leftovers()


@pytest.mark.parametrize("args, said", [
    (["--replace"], "--replace: needs --name"),
    (["--cgroups", "disabled"], "--cgroups disabled: not supported by mrun"),
    (["--cgroups", "sometimes"], "--cgroups 'sometimes': must be enabled, no-conmon or split"),
    (["--cgroups", "split", "--cgroup-parent", "/elsewhere"], "--cgroups split with --cgroup-parent"),
])
def test_a_unit_flag_mrun_cannot_honour_is_one_line_and_makes_nothing(images, busybox_archive, tmp_path, args,
                                                                     said):
    h = images
    img_ok(h, "load", busybox_archive)
    cidfile = tmp_path / "cid"
    r = img(h, "run", "--cidfile", str(cidfile), "--network", "none", *args, IMAGE, "true")
    one_line_error(r, said)
    assert not cidfile.exists()
    assert img_ok(h, "ps", "-aq").stdout == ""
    assert not h.leftovers()


def test_replace_never_removes_a_container_mrun_run_did_not_make(images, busybox_archive, h_bundle_of_sleep):
    """A runc verb's container (an engine's: podman's, containerd's runc shim's) that has the name
    is its engine's to remove: --replace refuses, and it runs on."""
    h = images
    img_ok(h, "load", busybox_archive)
    cid = h_bundle_of_sleep
    r = img(h, *run_args(h, "-d", "--replace", "--name", cid, IMAGE, "true"))
    one_line_error(r, f"--replace: container {cid!r} was not made by `mrun run` or `create`")
    assert h.status(cid) == "running"


@pytest.fixture
def h_bundle_of_sleep(images):
    """A container of the runc verbs (create + start of a bundle) in the images' state root."""
    h = images
    cid = h.cid("engine")
    h.ok("run", "-d", "-b", h.bundle(["sleep", "100"]), cid)
    yield cid
    h.mrun("delete", "--force", cid)


def test_a_cidfile_that_is_no_longer_the_one_run_made_is_left_alone(images, busybox_archive, tmp_path):
    """The cidfile goes with its container only while it is the file the run made: one removed
    and made again (another run's, a user's) stays, as does what a link put there points at."""
    h = images
    img_ok(h, "load", busybox_archive)
    for replacement in ("file", "link"):
        cidfile = tmp_path / f"cid-{replacement}"
        precious = tmp_path / f"precious-{replacement}"
        precious.write_text("keep")
        name = h.cid("cf")
        img_ok(h, *run_args(h, "-d", "--cidfile", str(cidfile), "--name", name, IMAGE, *SERVICE))
        cidfile.unlink()
        if replacement == "file":
            cidfile.write_text(name)  # the same words, another file
        else:
            cidfile.symlink_to(precious)
        named = ["--cidfile", str(cidfile)] if replacement == "file" else [name]
        assert img_ok(h, "rm", "-f", *named).stdout == f"{name}\n"
        assert cidfile.is_symlink() or cidfile.read_text() == name
        assert precious.read_text() == "keep"
    assert not h.leftovers()


def test_rm_and_stop_read_a_cidfile_as_podman_does(images, busybox_archive, tmp_path):
    """--cidfile FILE names the container its first line holds; --ignore (-i) passes over a FILE
    or a container that is not there, or a FILE that names nothing; a FILE that is no regular
    file, or names nothing without -i, is one line (a fifo's read waited for ever). rm -t without
    -f is podman's refusal."""
    h = images
    img_ok(h, "load", busybox_archive)
    missing = str(tmp_path / "missing")
    for verb in ("stop", "rm"):
        r = img(h, verb, "--ignore", "--cidfile", missing)
        assert (r.returncode, r.stdout, r.stderr) == (0, "", ""), r.stderr
        r = img(h, verb, "-i", "no-such-container")
        assert (r.returncode, r.stdout, r.stderr) == (0, "", ""), r.stderr
        one_line_error(img(h, verb, "--cidfile", missing), f"--cidfile {missing}: no such file")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    one_line_error(img(h, "stop", "--cidfile", str(fifo)), "not a regular file")
    empty = tmp_path / "empty"
    empty.write_text("\n")
    one_line_error(img(h, "rm", "--cidfile", str(empty)), "it names no container")
    r = img(h, "rm", "-f", "-i", "--cidfile", str(empty))  # a run killed before it wrote the id: podman's
    assert (r.returncode, r.stdout, r.stderr) == (0, "", ""), r.stderr
    one_line_error(img(h, "rm", "-t", "3", "anything"), "-t/--time: only with -f/--force")
    assert not h.leftovers()


def test_rm_f_t_gives_a_running_container_its_stop_signal_and_time(images, busybox_archive, tmp_path):
    """podman's rm -f -t N: stopped as `stop -t N` stops it (its stop signal, SIGKILL after N
    seconds), then removed; a plain rm -f kills it outright, as docker's does."""
    h = images
    img_ok(h, "load", busybox_archive)
    out = tmp_path / "out"
    out.mkdir()
    said = 'trap "echo term > /out/$0; exit 0" TERM; touch /out/ready-$0; while :; do sleep 0.1; done'
    for how, flags in (("graceful", ["-t", "5"]), ("killed", [])):
        name = h.cid(how)
        img_ok(h, *run_args(h, "-d", "-v", f"{out}:/out", "--name", name, IMAGE, "sh", "-c", said, how))
        _until(lambda how=how: (out / f"ready-{how}").exists(), "it never ran")
        assert img_ok(h, "rm", "-f", *flags, name).stdout == f"{name}\n"
    assert sorted(os.listdir(out)) == ["graceful", "ready-graceful", "ready-killed"]
    assert not h.leftovers()


def test_replace_takes_over_the_cidfile_a_killed_run_of_that_name_left(images, busybox_archive, tmp_path):
    """A run killed before its container's bundle recorded its --cidfile leaves the file, naming
    the container (the id goes in first), which no removal takes away: the unit's next start
    (`run --replace --name NAME --cidfile FILE`) takes it over. A file naming another container,
    or a link, is still refused, and left as it was."""
    h = images
    img_ok(h, "load", busybox_archive)
    name = h.cid("kr")
    cidfile = tmp_path / "cid"
    cidfile.write_text(name)  # what the killed run left
    one_line_error(img(h, *run_args(h, "-d", "--cidfile", str(cidfile), "--name", name, IMAGE, *SERVICE)),
                   f"--cidfile {cidfile}: the file exists")
    other = tmp_path / "other"
    other.write_text("someone-else")
    precious = tmp_path / "precious"
    precious.write_text(name)
    link = tmp_path / "link"
    link.symlink_to(precious)
    for taken in (other, link):
        one_line_error(img(h, *run_args(h, "-d", "--replace", "--cidfile", str(taken), "--name", name, IMAGE,
                                        *SERVICE)), f"--cidfile {taken}: the file exists")
    assert (other.read_text(), precious.read_text()) == ("someone-else", name)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # (its open for writing waited for a reader for ever, had it been opened)
    one_line_error(img(h, *run_args(h, "-d", "--replace", "--cidfile", str(fifo), "--name", name, IMAGE, *SERVICE)),
                   f"--cidfile {fifo}: the file exists")
    img_ok(h, *run_args(h, "-d", "--replace", "--cidfile", str(cidfile), "--name", name, IMAGE, *SERVICE))
    assert cidfile.read_bytes() == name.encode()  # the id alone, from the file's start
    assert img_ok(h, "rm", "-f", name).stdout == f"{name}\n"
    assert not cidfile.exists()
    assert not h.leftovers()


@pytest.mark.parametrize("remove", [False, True])
def test_a_sigterm_to_the_unit_s_main_process_reaches_its_container(images, busybox_archive, remove):
    """systemd's stop of a unit whose main process is the container's supervisor (MAINPID of
    --sdnotify=conmon; Quadlet's KillMode=mixed sends SIGTERM to it alone), or an admin's kill:
    the supervisor passes SIGTERM (and SIGINT, SIGQUIT) on to its container, as conmon does, and
    carries on until the container has ended: its exit code noted, a --rm one removed. It died of
    it, and the container ran on unsupervised, its output going nowhere."""
    h = images
    img_ok(h, "load", busybox_archive)
    name = h.cid("term")
    said = 'trap "echo got $0; exit 7" TERM INT QUIT; echo ready; while :; do sleep 0.1; done'
    img_ok(h, *run_args(h, "-d", *(["--rm"] if remove else []), "--name", name, IMAGE, "sh", "-c", said, "it"))
    try:
        with open(os.path.join(h.image_root, "containers", name, "supervisor.json")) as f:
            supervisor = json.load(f)["pid"]
        _until(lambda: img_ok(h, "logs", name).stdout.startswith("ready"), "its trap was never set")
        os.kill(supervisor, signal.SIGTERM)
        if remove:
            _until(lambda: _gone(h, name), "the --rm container was not removed once it ended")
            # its supervisor removes its own cgroup after the container, then ends: the check of
            # what is left comes once it has (it raced that removal)
            _until(lambda: not os.path.exists(f"/proc/{supervisor}"), "its supervisor outlived its container")
        else:
            _until(lambda: img_ok(h, "inspect", "-f", "{{.State.Status}}", name).stdout == "exited\n",
                   "the container did not end")
            assert img_ok(h, "inspect", "-f", "{{.State.ExitCode}}", name).stdout == "7\n"
            assert img_ok(h, "logs", name).stdout == "ready\ngot it\n"
    finally:
        img(h, "rm", "-f", name)
    assert not h.leftovers()


def test_log_driver_passthrough_writes_to_what_the_run_s_own_output_is(images, busybox_archive, tmp_path):
    """podman's --log-driver passthrough: a detached container writes to the run's own stdout
    and stderr (a systemd unit's journal, so `journalctl -u` shows it), through no relay, and no
    log is kept (`logs` says so in one line). Not with -t or -i (podman's refusal: a terminal's
    input could be forged), nor with --log-opt."""
    h = images
    img_ok(h, "load", busybox_archive)
    name = h.cid("pass")
    journal = tmp_path / "journal"
    argv = [h.binary, "--root", h.root, "--image-root", h.image_root,
            *run_args(h, "-d", "--log-driver", "passthrough", "--name", name, IMAGE, "sh", "-c",
                      "echo out; echo err >&2; sleep 600")]
    try:
        with open(journal, "w") as out:
            r = subprocess.run(argv, stdout=out, stderr=out, env={**os.environ, **h.base_env}, timeout=60)
        assert r.returncode == 0, journal.read_text()
        _until(lambda: journal.read_text().count("\n") == 3, f"the journal has {journal.read_text()!r}")
        assert sorted(journal.read_text().split()) == sorted([name, "out", "err"])
        one_line_error(img(h, "logs", name), "has no log", "passthrough")
        assert not os.path.exists(os.path.join(h.image_root, "containers", name, "log"))
    finally:
        img(h, "rm", "-f", name)
    for flag in ("-t", "-i"):
        one_line_error(img(h, *run_args(h, flag, "--log-driver", "passthrough", IMAGE, "true")),
                       "--log-driver passthrough: not with -t or -i")
    one_line_error(img(h, *run_args(h, "--log-driver", "passthrough", "--log-opt", "max-size=1m", IMAGE, "true")),
                   "--log-opt 'max-size=1m'", "--log-driver passthrough takes none")
    assert not h.leftovers()


@pytest.mark.parametrize("when", ["running", "backing off"])
def test_a_supervisor_told_to_stop_restarts_its_container_no_more(images, busybox_archive, when):
    """A stop signal to a `--restart always` container's supervisor is a stop (systemd stopping
    the unit): passed on to the container if it runs, and no restart follows; one that comes
    during a restart's back-off ends the restarts there. The supervisor then ends, its
    container's exit noted. Running, the signal was passed on (the last change) and the
    container restarted, as if it had ended on its own; in the back-off the supervisor died of
    it, which the next command's view repaired as after any kill (that case is a guard only)."""
    h = images
    img_ok(h, "load", busybox_archive)
    name = h.cid("stopped")
    said = ('trap "echo got; exit 7" TERM; echo ready; while :; do sleep 0.1; done' if when == "running"
            else "echo ran; exit 1")
    img_ok(h, *run_args(h, "-d", "--restart", "always", "--name", name, IMAGE, "sh", "-c", said))
    try:
        with open(os.path.join(h.image_root, "containers", name, "supervisor.json")) as f:
            supervisor = json.load(f)["pid"]
        ready = "ready" if when == "running" else "ran\nran"  # backing off after its second run
        _until(lambda: ready in img_ok(h, "logs", name).stdout, "it never got that far")
        os.kill(supervisor, signal.SIGTERM)
        _until(lambda: not os.path.exists(f"/proc/{supervisor}") or open(f"/proc/{supervisor}/stat").read().split(
            ")")[1].split()[0] == "Z", "the supervisor did not end")
        logs = img_ok(h, "logs", name).stdout
        time.sleep(1)  # no restart comes
        assert img_ok(h, "logs", name).stdout == logs
        assert img_ok(h, "inspect", "-f", "{{.State.Status}} {{.State.ExitCode}} {{.State.Restarting}}",
                      name).stdout == ("exited 7 false\n" if when == "running" else "exited 1 false\n")
        if when == "running":
            assert logs == "ready\ngot\n"
    finally:
        img(h, "rm", "-f", name)
    assert not h.leftovers()


def _parent_of(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def test_a_unit_of_podman_generate_systemd_without_new_reads_the_supervisor_from_its_pid_file(
        images, busybox_archive, tmp_path):
    """`podman generate systemd` without --new: the container is made once (`create
    --conmon-pidfile FILE`), and the unit (Type=forking, PIDFile=FILE) has ExecStart=mrun start
    NAME, ExecStop= and ExecStopPost=mrun stop -t 10 NAME. Each start writes its new supervisor's
    pid there before it returns: the process systemd then watches, the container's parent."""
    h = images
    img_ok(h, "load", busybox_archive)
    name = h.cid("fork")
    pid_file = tmp_path / "run" / "conmon.pid"
    pid_file.parent.mkdir()
    img_ok(h, "create", "--conmon-pidfile", str(pid_file), "--name", name, "--cgroup-parent", h.cgroup_parent,
           "--network", "none", IMAGE, *SERVICE)
    try:
        assert not pid_file.exists()  # made, not started: no supervisor yet
        img_ok(h, "start", name)
        first = int(pid_file.read_text())
        assert _parent_of(_init_of(h, name)) == first
        for _ in range(2):  # ExecStop, then ExecStopPost
            img_ok(h, "stop", "-t", "10", name)
        _until(lambda: not os.path.exists(f"/proc/{first}"), "its supervisor outlived the stop")
        img_ok(h, "start", name)  # Restart=, or the next start of the unit
        second = int(pid_file.read_text())
        assert second != first and _parent_of(_init_of(h, name)) == second
        img_ok(h, "stop", "-t", "10", name)
        # a pid file that cannot be written fails the start in one line; nothing is left running
        img_ok(h, "rm", name)
        img_ok(h, "create", "--conmon-pidfile", str(tmp_path / "missing" / "conmon.pid"), "--name", name,
               "--cgroup-parent", h.cgroup_parent, "--network", "none", IMAGE, *SERVICE)
        one_line_error(img(h, "start", name), "--conmon-pidfile", "missing")
        assert img_ok(h, "inspect", "-f", "{{.State.Status}}", name).stdout != "running\n"
    finally:
        img(h, "rm", "-f", name)
    one_line_error(img(h, *run_args(h, "--rm", "--conmon-pidfile", str(pid_file), IMAGE, "true")),
                   "--conmon-pidfile", "-d")


def test_a_quadlet_unit_with_a_secret_a_time_zone_and_a_health_action(images, busybox_archive, tmp_path, manager):
    """A Quadlet unit's Secret=, Timezone= and HealthOnFailure=kill, as its ExecStart spells them
    (--secret, --tz, --health-on-failure): the container reads its secret and zone; once it turns
    unhealthy it is killed, its supervisor (the unit's main process) ends with it, and systemd's
    Restart= runs ExecStopPost= and ExecStart= again, which bring up a new one."""
    h = images
    img_ok(h, "load", busybox_archive)
    (tmp_path / "key").write_text("s3cret")
    img_ok(h, "secret", "create", "web-key", str(tmp_path / "key"))
    name = h.cid("qsec")
    unit = Unit(h, tmp_path, manager, "qsec")
    start = ["run", f"--name={name}", f"--cidfile={unit.cidfile}", "--replace", "--rm", "--cgroups=split",
             "--sdnotify=conmon", "-d", "--network", "none", "--secret", "web-key", "--tz", "Asia/Tokyo",
             "--health-cmd", "test ! -e /tmp/sick", "--health-interval", "200ms", "--health-retries", "1",
             "--health-on-failure", "kill", IMAGE, *SERVICE]
    stop_post = ["rm", "-v", "-f", "-i", f"--cidfile={unit.cidfile}"]
    try:
        supervisor = unit.started(*unit.run(*start), name)
        out = img_ok(h, "exec", name, "sh", "-c", "cat /run/secrets/web-key; echo; date +%Z").stdout
        assert out == "s3cret\nJST\n", out
        img_ok(h, "exec", name, "touch", "/tmp/sick")
        _until(lambda: not os.path.exists(f"/proc/{supervisor}"), "an unhealthy container was not killed")
        _until(lambda: not unit.processes(), "the unit's processes outlived its container")
        r, _ = unit.run(*stop_post)  # ExecStopPost=, then Restart='s ExecStart=
        assert r.returncode == 0, r.stderr
        unit.started(*unit.run(*start), name)
        assert img_ok(h, "exec", name, "cat", "/run/secrets/web-key").stdout == "s3cret"
        r, _ = unit.run(*stop_post)
        assert r.returncode == 0, r.stderr
    finally:
        img(h, "rm", "-f", name)
        unit.end()
    assert not h.leftovers()

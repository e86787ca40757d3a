"""A verb SIGKILLed at each of its steps in turn, not at random instants: a step is a change mrun
makes under the test's own paths (a mkdir, an open for writing, a rename, an unlink, an rmdir, a
symlink, a socket's bind...), seen by Python's audit hook in the verb's own process (cold:
MRUN_WARM=0), which kills itself just before the step; for the shim, in the start process and
every process it forks (daemon, fork helper, create worker, container init), on one count. A
run of one kind of change over one directory's files (a layer's chowns) is one step. After each
kill the verbs a user would run next must repair everything (`delete --force`, `rm -f`, `system
prune`, `network prune`...), leaving no state, cgroup, mount, process, veth or partial file, and
the next unkilled run must work.

Random kills (test_fault_injection) land where the time goes; a window between two syscalls a
microsecond apart is never hit. Here each window is. MRUN_KILL_LIST=1 in the killer's
environment lists a verb's steps instead of killing it (a developer's look).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from busybox_bundle import make_rootfs
from conftest import (
    IMAGE,
    img,
    img_ok,
    one_line_error,
    open_to_others,
    processes_mentioning,
    require,
    run_args,
    veths_left,
    write_config,
)
from test_fault_injection import image_leftovers
from test_network import free_port_run, guards_left, leases, net, nft_rules  # noqa: F401 - the net fixture
from test_pull import CREDS, registry  # noqa: F401 - the registry fixture
from test_runc_compat import manager, notifying_rootfs  # noqa: F401 - the fixtures

KILLER = """
import fcntl, mmap, os, signal, sys

match = tuple(m for m in os.environ.pop("MRUN_KILL_MATCH").split("|") if m)
step, ours, last = int(os.environ.pop("MRUN_KILL_AT")), os.getpid(), [None]
listing = os.environ.pop("MRUN_KILL_LIST", "") == "1"  # a developer's look: every change, no kill
entry = os.environ.pop("MRUN_KILL_ENTRY", "mrun.cli.main")  # or mrun.shims.main: the shim binary
forks = os.environ.pop("MRUN_KILL_FORKS", "") == "1"  # count and kill in the processes this one forks too
report = os.environ.pop("MRUN_KILL_REPORT", "")  # where kills are told (a shim daemon's stderr is not ours)
stop = os.environ.pop("MRUN_KILL_SIGNAL", "") == "STOP"  # stopped there instead (SIGCONT goes on): a race's window
seen = mmap.mmap(-1, 8)  # anonymous and shared: one count over this process and every fork of it
counter = os.environ.pop("MRUN_KILL_COUNTER", "")  # or a file: one count over unrelated processes too
armed = os.environ.pop("MRUN_KILL_ARMED", "")  # counting starts once this file exists
apart = os.environ.pop("MRUN_KILL_SOCKETS_APART", "") == "1"  # each socket a step: between netlink requests
WRITES = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
CHANGES = {"os.mkdir", "os.rename", "os.replace", "os.remove", "os.rmdir", "os.symlink", "os.link",
           "os.truncate", "os.chmod", "os.chown", "os.mkfifo", "os.mknod", "shutil.rmtree", "socket.bind",
           "socket.__new__"}


def say(text):
    fd = os.open(report, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600) if report else 2
    os.write(fd, f"{text} (pid {os.getpid()})\\n".encode())
    if report:
        os.close(fd)


def kill_at(event, args):
    if (os.getpid() != ours and not forks) or not args:
        return
    if event == "open":
        if not (isinstance(args[2], int) and args[2] & WRITES) and not (isinstance(args[1], str) and
                                                                         set(args[1]) & set("wax+")):
            return
    elif event not in CHANGES:
        return
    if event == "socket.__new__":  # no path: what a test may match is its family ("socket family 16": netlink)
        path = f"socket family {args[1]}"
    else:
        path = args[1] if event == "socket.bind" else args[0]
    if isinstance(path, bytes):
        path = path.decode(errors="replace")
    if not isinstance(path, str) or not any(m in path for m in match):
        return
    if (event, os.path.dirname(path)) == last[0] and not (apart and event == "socket.__new__"):
        return  # a run of one change over a directory's files is one step
    last[0] = (event, os.path.dirname(path))
    if armed and not os.path.exists(armed):
        return
    if counter:
        fd = os.open(counter, os.O_RDWR | os.O_CLOEXEC)
        fcntl.flock(fd, fcntl.LOCK_EX)
        n = int(os.pread(fd, 20, 0) or b"0")
        os.pwrite(fd, str(n + 1).encode(), 0)
        os.close(fd)
    else:
        n = int.from_bytes(seen[:8], "little")
        seen[:8] = (n + 1).to_bytes(8, "little")
    if listing:
        say(f"change {n}: {event} {path}")
    elif n == step:
        say(f"{'stopped' if stop else 'killed'} before {event} {path}")
        os.kill(os.getpid(), signal.SIGSTOP if stop else signal.SIGKILL)


sys.addaudithook(kill_at)
sys.argv = ["mrun", *sys.argv[1:]]
main = __import__(entry, fromlist=["main"]).main

# mrun's work in this process, where the steps are counted: as the program, a cold foreground
# run would fork it into a child (cli.cold_child), whose kill the parent only passes on
sys.exit(main(sys.argv[1:]) if entry == "mrun.cli.main" else main())
"""

def listed(h, ref: str) -> bool:
    """Whether the image store knows ``ref`` (`images` shows repository and tag apart)."""
    return img(h, "image", "inspect", ref).returncode == 0


def repair_with(h, *verbs: tuple[str, ...], env: dict[str, str] | None = None) -> None:
    """The verbs a user runs after a crash, in order, through the test's image root: none may end
    in a traceback (a one-line refusal, such as nothing left to remove, is fine)."""
    for verb in verbs:
        r = img(h, *verb, env=env)
        assert "Traceback" not in r.stderr, r.stderr


MAX_STEPS = 400  # a verb with more steps than this fails the test: raise it knowingly


PIPE_ENDS_WITHIN = 20.0  # seconds: a pipe that outlives the killed verb longer has a holder of ours


def killed_at(step: int, argv: list[str], match: list[str], env: dict[str, str],
              pipes: bool = False) -> subprocess.CompletedProcess[str]:
    """mrun ``argv`` (cold, in this interpreter), killed before its ``step``-th change under a
    path holding one of ``match``. Output through files, or with ``pipes`` through pipes, which
    must end once the verb is killed (its caller's `| cat` would hang on a holder left behind)."""
    env = {**os.environ, **env, "MRUN_WARM": "0", "MRUN_KILL_AT": str(step), "MRUN_KILL_MATCH": "|".join(match)}
    if pipes:
        p = subprocess.Popen([sys.executable, "-c", KILLER, *argv], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=env)
        try:
            out, err = p.communicate(timeout=PIPE_ENDS_WITHIN)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            raise AssertionError(f"{argv} killed at change {step}: its stdout and stderr were still open "
                                 f"{PIPE_ENDS_WITHIN:.0f} s later (held by what it made)")
        return subprocess.CompletedProcess(argv, p.returncode, out, err)
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        code = subprocess.run([sys.executable, "-c", KILLER, *argv], stdin=subprocess.DEVNULL, stdout=out,
                              stderr=err, env=env, timeout=120).returncode
        out.seek(0)
        err.seek(0)
        told = ""
        if env.get("MRUN_KILL_REPORT"):  # where processes whose stderr is not ours say they were killed
            with open(env["MRUN_KILL_REPORT"], "a+") as report:
                report.seek(0)
                told = report.read()
                report.truncate(0)
        return subprocess.CompletedProcess(argv, code, out.read(), err.read() + told)


def kill_at_each_step(argv: Callable[[int], list[str]], match: list[str], repair: Callable[[int], None],
                      left: Callable[[], list[str]], env: dict[str, str] | None = None, pipes: bool = False) -> int:
    """Kill ``argv(step)`` at step 0, 1, 2... until it runs to its end; after each kill
    ``repair(step)``, then nothing may be ``left()``. -> the number of steps."""
    for step in range(MAX_STEPS):
        r = killed_at(step, argv(step), match, env or {}, pipes)
        if r.returncode != -signal.SIGKILL and "killed before" in r.stderr:
            # a process it forked was killed: the verb refuses in one line, or carries on without
            # it (a pristine copy of the init lost is made again by a plain fork)
            said = [line for line in r.stderr.splitlines() if line.startswith("mrun:")]
            assert "Traceback" not in r.stderr and (r.returncode == 0 or len(said) == 1), (
                f"a fork killed at change {step}: {r.returncode}: {r.stderr}")
        elif r.returncode != -signal.SIGKILL:
            assert r.returncode == 0, f"unkilled at step {step}: {r.returncode}: {r.stderr}"
            return step
        repair(step)
        found = left()
        assert not found, f"{r.stderr.strip().splitlines()[-1]} (change {step}), then repaired: {found}"
    raise AssertionError(f"{argv(0)} made more than {MAX_STEPS} changes: raise MAX_STEPS if that is right")


@pytest.mark.parametrize("parents, prune", [("", True), ("", False), ("deep", True), ("userns", False),
                                            ("notify", False)])
def test_create_killed_before_each_change(h, parents, prune):
    """`create`: every step from the state directory's reservation to the pid file (a new path
    each time, as containerd and conmon give one per container: a pid file's temporary copy a
    kill left is refused by the next create that writes there, as runc refuses it). ``deep``: a
    cgroup parent whose marks are named by hash, each written to a temporary name first.
    Without ``prune``, `delete --force` of the id alone repairs it, as runc's clients (podman,
    containerd's runc shim) do: a create killed before its directory was in place left it under
    its ``.making-`` name, which only the next create or a `system prune` swept (a random kill
    found it in CI: test_cgroup2_view). ``userns``: a container with a user namespace of its own, an
    idmapped bind mount (the host clones it and maps the clone through a user namespace it makes
    for the mappings) and a plain one (cloned by the host too), its maps' and oom score's writes
    among the steps. ``notify``: under systemd's NOTIFY_SOCKET, the directory of the container's
    socket among them (in a rootfs of its own: the shared one has no /run to mount it on)."""
    config = h.config(["sleep", "60"])
    match, env = [h.tmp, h.tag], {}
    if parents == "deep":
        config["linux"]["cgroupsPath"] = f"{h.cgroup_parent}/{'/'.join(['p' * 60] * 4)}/leaf"
    elif parents == "userns":
        from test_sandbox import _in_a_user_namespace, _owned_tree

        _in_a_user_namespace(h, config)
        src, maps = _owned_tree(h), config["linux"]["uidMappings"]
        config["mounts"] += [{"destination": "/root", "type": "bind", "source": src, "options": ["rbind", "ro"],
                              "uidMappings": maps, "gidMappings": maps},
                             {"destination": "/tmp", "type": "bind", "source": src, "options": ["rbind", "ro"]}]
        config["process"]["oomScoreAdj"] = 100
        match += ["/uid_map", "/gid_map", "/oom_score_adj"]
    elif parents == "notify":
        rootfs = os.path.join(h.tmp, "rootfs")
        make_rootfs(rootfs)
        os.mkdir(os.path.join(rootfs, "run"))
        config["root"]["path"] = rootfs
        env["NOTIFY_SOCKET"] = os.path.join(h.tmp, "no-manager")  # create only makes the socket's place
    bundle = h.bundle(config=config)

    def repair(step: int) -> None:
        r = h.mrun("delete", "--force", f"k{step}")
        assert "Traceback" not in r.stderr, r.stderr
        if prune:
            h.ok("--image-root", os.path.join(h.tmp, "no-images"), "system", "prune")

    steps = kill_at_each_step(lambda step: ["--root", h.root, "create", "-b", bundle, "--pid-file",
                                            os.path.join(h.tmp, f"pid-{step}"), f"k{step}"],
                              match, repair, h.leftovers, env=env)
    assert steps > 10
    if parents == "notify":
        assert os.path.isdir(os.path.join(h.root, f"k{steps}", "notify"))
    h.ok("delete", "--force", f"k{steps}")


@pytest.mark.parametrize("images", ["warm"], indirect=True)  # the killed verb runs cold; the checks warm
def test_run_rm_killed_before_each_change(images, busybox_archive):
    """`run --rm` of an image with an anonymous volume: snapshot, volume, state, cgroup, and the
    removal of them all after the container ran."""
    h = images
    img_ok(h, "load", busybox_archive, IMAGE)

    def left() -> list[str]:
        found = h.leftovers()
        for sub in ("containers", "volumes"):
            path = os.path.join(h.image_root, sub)
            if os.path.isdir(path) and os.listdir(path):
                found.append(f"{sub}: {os.listdir(path)}")
        return found

    def repair(step: int) -> None:
        repair_with(h, ("rm", "-f", "-v", f"k{step}"), ("system", "prune"), ("volume", "prune"))

    base = ["--root", h.root, "--image-root", h.image_root]
    kill_at_each_step(lambda step: [*base, *run_args(h, "--rm", "--name", f"k{step}", "-v", "/scratch", IMAGE, "true")],
                      [h.tmp, h.tag], repair, left)
    assert left() == []


def test_delete_force_killed_before_each_change(h):
    """`delete --force` of a running container: killed anywhere, the next one finishes the job."""
    bundle = h.bundle(["sleep", "60"])

    def argv(step: int) -> list[str]:
        h.ok("create", "-b", bundle, f"k{step}")
        h.ok("start", f"k{step}")
        return ["--root", h.root, "delete", "--force", f"k{step}"]

    def repair(step: int) -> None:
        r = h.mrun("delete", "--force", f"k{step}")
        assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr

    assert kill_at_each_step(argv, [h.tmp, h.tag], repair, h.leftovers) > 3


@pytest.mark.parametrize("images", ["warm"], indirect=True)
def test_load_killed_before_each_change(images, busybox_archive):
    """`load`: after the kill and a `system prune`, no partial file; the image is listed only if
    it is whole (a container runs from it), and a load after it works."""
    fetch_killed_at_each_step(images, IMAGE, ["load", busybox_archive], "loaded")


def fetch_killed_at_each_step(h, ref: str, fetch: list[str], word: str) -> None:
    """An image fetched (`load`, `pull`) and killed before each change: after the kill and a
    `system prune`, no partial file, ``ref`` listed only whole (a container runs from it), and the
    unkilled fetch's image runs."""

    def argv(step: int) -> list[str]:
        if listed(h, ref):
            img_ok(h, "rmi", ref)
        return ["--root", h.root, "--image-root", h.image_root, *fetch]

    def repair(step: int) -> None:
        r = img(h, "system", "prune")
        assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
        if listed(h, ref):
            assert img_ok(h, *run_args(h, "--rm", ref, "echo", "whole")).stdout == "whole\n"

    kill_at_each_step(argv, [h.tmp], repair, lambda: h.leftovers() + image_leftovers(h))
    assert img_ok(h, *run_args(h, "--rm", ref, "echo", word)).stdout == f"{word}\n"


@pytest.mark.parametrize("images", ["warm"], indirect=True)
def test_run_rm_on_a_bridge_network_killed_before_each_change(net):  # noqa: F811 - the fixture
    """`run --rm` on a bridge network: its address lease, veth and rules too, and what its port
    is held to (killed between the netlink requests too: "socket family 16")."""
    h = net

    def left() -> list[str]:
        found = h.leftovers() + image_leftovers(h)
        found += [f"lease {x}" for x in leases(h)] + [f"veth {x}" for x in veths_left()]
        found += [f"held port {x}" for x in guards_left()]
        return found + (["nft rule"] if "mrun-ctr" in nft_rules() else [])

    def repair(step: int) -> None:
        repair_with(h, ("rm", "-f", f"k{step}"), ("system", "prune"), env=h.env)

    base = ["--root", h.root, "--image-root", h.image_root]
    kill_at_each_step(lambda step: [*base, *run_args(h, "--rm", "--network", h.net, "--name", f"k{step}", IMAGE,
                                                     "true")], [h.tmp, h.tag, "socket family 16"], repair, left,
                      env=h.env)


def test_save_killed_before_each_change(images, busybox_archive):
    """`save`, killed anywhere: the image stays whole, a save then runs to its end, and once the
    image is removed nothing of it stays (the blobs a reader holds, ``images.leases``, are held
    no longer by a killed one)."""
    h = images
    img_ok(h, "load", busybox_archive, IMAGE)
    archive = os.path.join(h.tmp, "saved.tar")

    def repair(step: int) -> None:
        r = img(h, "system", "prune", "-f")
        assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
        assert img_ok(h, *run_args(h, "--rm", IMAGE, "echo", "whole")).stdout == "whole\n"

    steps = kill_at_each_step(lambda step: ["--root", h.root, "--image-root", h.image_root, "save", "-o", archive,
                                            IMAGE], [h.tmp], repair, lambda: image_leftovers(h))
    assert steps >= 2 and tarfile.is_tarfile(archive)
    img_ok(h, "rmi", IMAGE)
    assert os.listdir(os.path.join(h.image_root, "blobs", "sha256")) == []


@pytest.mark.parametrize("images", ["warm"], indirect=True)
def test_rmi_and_commit_killed_before_each_change(images, busybox_archive):
    """`commit` of a container's change, then `rmi` of the image it made: killed anywhere, the
    image is listed only whole (a container runs from it and sees the change), and is gone
    once `rmi` ran to its end; the base image stays whole throughout."""
    h = images
    img_ok(h, "load", busybox_archive, IMAGE)
    img_ok(h, *run_args(h, "-d", "--name", "src", IMAGE, "sh", "-c", "echo changed > /mark; sleep 600"))
    made = "localhost/committed:1"
    base = ["--root", h.root, "--image-root", h.image_root]

    def whole_or_absent(step: int) -> None:
        r = img(h, "system", "prune")
        assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
        assert img_ok(h, *run_args(h, "--rm", IMAGE, "echo", "base")).stdout == "base\n"
        if listed(h, made):
            assert img_ok(h, *run_args(h, "--rm", made, "cat", "/mark")).stdout == "changed\n"

    def left() -> list[str]:
        return image_leftovers(h, keep="src")

    def commit(step: int) -> list[str]:
        if listed(h, made):
            img_ok(h, "rmi", made)
        return [*base, "commit", "src", made]

    kill_at_each_step(commit, [h.tmp, h.tag], whole_or_absent, left)

    def rmi(step: int) -> list[str]:
        if not listed(h, made):
            img_ok(h, "commit", "src", made)
        return [*base, "rmi", made]

    kill_at_each_step(rmi, [h.tmp, h.tag], whole_or_absent, left)
    assert not listed(h, made)
    img_ok(h, "rm", "-f", "src")


def container_kit(h, archive: str) -> tuple[list[str], Callable[[], list[str]], Callable[[int], None]]:
    """What the tests of one image container share: the image loaded; -> mrun's root flags, what
    must not be left, and the user's repair of container k{step} (rm -f, then system prune)."""
    img_ok(h, "load", archive, IMAGE)

    def left() -> list[str]:
        return h.leftovers() + image_leftovers(h)

    def repair(step: int) -> None:
        repair_with(h, ("rm", "-f", f"k{step}"), ("system", "prune"))

    return ["--root", h.root, "--image-root", h.image_root], left, repair


@pytest.mark.parametrize("images", ["warm"], indirect=True)  # the killed verb runs cold; the checks warm
def test_a_foreground_run_killed_before_each_change_leaves_its_callers_pipes_ending(images, busybox_archive):
    """`mrun run --rm IMAGE ... | cat`, SIGKILLed (the OOM killer, `timeout -s KILL`) once the
    container's init exists but before it is started: the init waited for a `start` that would
    never come, holding the caller's stdout and stderr, so the pipeline hung until someone ran
    `mrun rm -f` (runc's `run` the same). The init of a run now ends when the process that
    would start it is gone; `rm -f` repairs the rest, as after any kill."""
    h = images
    base, left, repair = container_kit(h, busybox_archive)
    kill_at_each_step(lambda step: [*base, *run_args(h, "--rm", "--name", f"k{step}", IMAGE, "echo", "ran")],
                      [h.tmp, h.tag], repair, left, pipes=True)


@pytest.mark.parametrize("images", ["warm"], indirect=True)
def test_docker_create_and_its_first_start_killed_before_each_change(images, busybox_archive):
    """docker's `create IMAGE` (snapshot, bundle, its note, its record), then the first `start` of
    what it made: `rm -f` and `system prune` after a kill leave nothing; unkilled, the created one
    is listed as created and the started one runs."""
    h = images
    base, left, repair = container_kit(h, busybox_archive)
    create = ["create", *run_args(h, "sleep", "600")[1:-2]]
    steps = kill_at_each_step(lambda step: [*base, *create, "--name", f"k{step}", IMAGE, "sleep", "600"],
                              [h.tmp, h.tag], repair, left)
    assert f"k{steps} " in img_ok(h, "ps", "-a", "--filter", "status=created").stdout
    img_ok(h, "rm", f"k{steps}")

    def start(step: int) -> list[str]:
        img_ok(h, *create, "--name", f"k{step}", IMAGE, "sleep", "600")
        return [*base, "start", f"k{step}"]

    steps = kill_at_each_step(start, [h.tmp, h.tag], repair, left)
    assert f"k{steps} " in img_ok(h, "ps").stdout
    img_ok(h, "rm", "-f", f"k{steps}")


@pytest.mark.parametrize("images", ["warm"], indirect=True)
def test_detached_run_and_its_rm_killed_before_each_change(images, busybox_archive):
    """`run -d` (its supervisor, log and state), then `rm -f` of it: `rm -f` and `system prune`
    after a kill leave nothing, and an unkilled `run -d` is listed as running."""
    h = images
    base, left, repair = container_kit(h, busybox_archive)
    steps = kill_at_each_step(lambda step: [*base, *run_args(h, "-d", "--name", f"k{step}", IMAGE, "sleep", "600")],
                              [h.tmp, h.tag], repair, left)
    assert f"k{steps}" in img_ok(h, "ps").stdout
    img_ok(h, "rm", "-f", f"k{steps}")

    def rm(step: int) -> list[str]:
        img_ok(h, *run_args(h, "-d", "--name", f"k{step}", IMAGE, "sleep", "600"))
        return [*base, "rm", "-f", f"k{step}"]

    kill_at_each_step(rm, [h.tmp, h.tag], repair, left)


@pytest.mark.parametrize("images", ["warm"], indirect=True)  # the killed verb runs cold; the unit's next ones warm
def test_a_systemd_unit_s_start_killed_before_each_change_is_repaired_by_the_unit_itself(images, busybox_archive):
    """The ExecStart of a unit `podman generate systemd --new` writes (run --cidfile FILE --replace
    --rm -d --name NAME), SIGKILLed before each change it makes (a start timeout, the OOM
    killer): no one is at hand to repair it but the unit's own next commands, its ExecStopPost
    (rm -f --ignore --cidfile FILE) and, as Restart= asks, the same ExecStart again, which must
    run the container. Stopped once more, nothing is left, the cidfile included."""
    h = images
    base, left, _ = container_kit(h, busybox_archive)
    cidfile = os.path.join(h.tmp, "unit.ctr-id")
    service = ["sh", "-c", 'trap "exit 0" TERM; while :; do sleep 0.1; done']
    start = run_args(h, "--cidfile", cidfile, "--replace", "--rm", "-d", "--name", "unit", IMAGE, *service)
    stop_post = ["rm", "-f", "--ignore", "--cidfile", cidfile]

    def by_the_unit(step: int) -> None:
        r = img(h, *stop_post)
        assert "Traceback" not in r.stderr, r.stderr
        r = img(h, *start)
        assert (r.returncode, r.stdout) == (0, "unit\n"), f"the unit's next start, after a kill at {step}: {r.stderr}"
        img_ok(h, *stop_post)
        assert not os.path.exists(cidfile)

    steps = kill_at_each_step(lambda step: [*base, *start], [h.tmp, h.tag], by_the_unit, left)
    assert steps > 10
    img_ok(h, *stop_post)
    assert not os.path.exists(cidfile) and not left()


@pytest.mark.parametrize("images", ["warm"], indirect=True)
@pytest.mark.parametrize("flags", ["-dit", "-di"])
def test_a_detached_run_holding_its_input_killed_before_each_change(images, busybox_archive, flags, tmp_path_factory):
    """`run -dit` / `run -di`, whose supervisor holds the container's terminal or stdin and
    listens on the bundle's attach socket, killed before each change of the verb and of the
    supervisor it forks (one count over both): `rm -f` and `system prune` leave nothing (no
    socket, pty holder or process), and the unkilled run is attachable: input typed through
    `attach`'s socket reaches the container."""
    h = images
    base, left, repair = container_kit(h, busybox_archive)
    report = str(tmp_path_factory.mktemp("report") / "killed")  # not under h.tmp: its writes are not counted
    steps = kill_at_each_step(
        lambda step: [*base, *run_args(h, flags, "--name", f"k{step}", IMAGE, "sh")],
        [h.tmp, h.tag, "/attach.sock"], repair, left, env={"MRUN_KILL_FORKS": "1", "MRUN_KILL_REPORT": report})
    assert f"k{steps}" in img_ok(h, "ps").stdout
    img_ok(h, "rm", "-f", f"k{steps}")  # its supervisor still counts changes, and is killed at the next
    name = "unkilled"
    img_ok(h, *run_args(h, flags, "--name", name, IMAGE, "sh"))
    if flags == "-di":  # a terminal's input needs a terminal: the other test drives one
        r = subprocess.run([h.binary, "--root", h.root, "--image-root", h.image_root, "attach", name],
                           input="echo typed-$((6*7))\nexit 3\n", capture_output=True, text=True, timeout=60,
                           env={**os.environ, **h.base_env})
        assert "typed-42" in r.stdout and r.returncode == 3, (r.returncode, r.stdout, r.stderr)
    img_ok(h, "rm", "-f", name)
    assert not left()


@pytest.mark.parametrize("images", ["warm"], indirect=True)
def test_network_create_and_rm_killed_before_each_change(images, tmp_path):
    """`network create`, then `network rm`: killed anywhere, `network prune` leaves no bridge,
    rule or file; an unkilled create is listed."""
    h = images
    env = {"MRUN_NETWORK_ROOT": str(tmp_path / "networks")}
    forwarding = open("/proc/sys/net/ipv4/ip_forward").read()
    base = ["--root", h.root, "--image-root", h.image_root]

    links = set(os.listdir("/sys/class/net"))

    def left() -> list[str]:
        listed = img_ok(h, "network", "ls", env=env).stdout.splitlines()[1:]
        files = os.listdir(env["MRUN_NETWORK_ROOT"]) if os.path.isdir(env["MRUN_NETWORK_ROOT"]) else []
        found = [f"network {n}" for n in listed] + [f"file {f}" for f in files if f != "lock"]
        found += [f"link {x}" for x in set(os.listdir("/sys/class/net")) - links]
        return found + (["nft table"] if "mrun-net:n" in nft_rules() else [])

    def repair(step: int) -> None:
        repair_with(h, ("network", "rm", f"n{step}"), ("network", "prune"), env=env)

    try:
        steps = kill_at_each_step(lambda step: [*base, "network", "create", f"n{step}"], [str(tmp_path)], repair,
                                  left, env=env)
        assert f"n{steps}" in img_ok(h, "network", "ls", env=env).stdout
        img_ok(h, "network", "rm", f"n{steps}", env=env)

        def rm(step: int) -> list[str]:
            img_ok(h, "network", "create", f"n{step}", env=env)
            return [*base, "network", "rm", f"n{step}"]

        kill_at_each_step(rm, [str(tmp_path)], repair, left, env=env)
    finally:
        img(h, "network", "prune", env=env)
        with open("/proc/sys/net/ipv4/ip_forward", "w") as f:
            f.write(forwarding)


def test_create_moving_a_network_device_killed_before_each_netlink_request(h):
    """`create` with linux.netDevices, killed before each of its netlink requests in turn (each
    socket a step): the device taken down, moved and renamed in one request, readdressed, set
    up. After `delete --force` the device is on the host under its own name (down, where the
    kill came before the move: runc's order leaves it so too) or gone with the container's
    namespace (a veth end goes, and its peer with it); never on the host under the container's
    name, and nothing of the container's left. The next unkilled create moves it."""
    from test_runc_compat import _add_device

    require("ip", "iproute2")
    device = f"mrk{h.tag[-6:]}"
    config = h.config(["sleep", "60"])
    config["linux"]["netDevices"] = {device: {"name": "moved0"}}
    bundle = h.bundle(config=config)
    fates: set[str] = set()

    def repair(step: int) -> None:
        r = h.mrun("delete", "--force", f"k{step}")
        assert "Traceback" not in r.stderr, r.stderr
        assert not os.path.exists("/sys/class/net/moved0"), f"change {step}: the container's name on the host"
        if os.path.exists(f"/sys/class/net/{device}"):
            fates.add("on the host")
        else:
            fates.add("gone")
            # The kernel tears a namespace down after its last user is gone, on a work queue of
            # its own: the veth and its peer go a moment after delete returns, never before.
            deadline = time.monotonic() + 10
            while os.path.exists(f"/sys/class/net/{device}p") and time.monotonic() < deadline:
                time.sleep(0.05)
            assert not os.path.exists(f"/sys/class/net/{device}p"), f"change {step}: a veth's peer alone"
            _add_device(device)

    _add_device(device)
    try:
        steps = kill_at_each_step(lambda step: ["--root", h.root, "create", "-b", bundle, f"k{step}"],
                                  [h.tmp, h.tag, "socket family 16"], repair, h.leftovers,
                                  env={"MRUN_KILL_SOCKETS_APART": "1"})
        assert not os.path.exists(f"/sys/class/net/{device}")  # moved by the unkilled one
        h.ok("delete", "--force", f"k{steps}")
        assert fates == {"on the host", "gone"}, fates  # killed before the move, and after it
    finally:
        subprocess.run(["ip", "link", "del", device], capture_output=True)


def test_create_handing_a_seccomp_listener_killed_before_each_change(h, tmp_path):
    """`create` with SCMP_ACT_NOTIFY rules, killed before each change and before the socket it
    hands the listener to the agent through ("socket family 1"): `delete --force` repairs each,
    and the agent is left holding listeners of processes that are gone, nothing of mrun's."""
    from test_runc_compat import SeccompAgent, _notifying

    agent = SeccompAgent(str(tmp_path / "agent.sock"))
    try:
        bundle = h.bundle(config=_notifying(agent.path, ["mkdir", "mkdirat"], False, ["sleep", "60"], h))

        def repair(step: int) -> None:
            r = h.mrun("delete", "--force", f"k{step}")
            assert "Traceback" not in r.stderr, r.stderr

        steps = kill_at_each_step(lambda step: ["--root", h.root, "create", "-b", bundle, f"k{step}"],
                                  [h.tmp, h.tag, "socket family 1"], repair, h.leftovers)
        assert agent.received, "no create got as far as the agent"
        h.ok("delete", "--force", f"k{steps}")
    finally:
        agent.close()


def _started_again(h, cid: str, env: dict[str, str] | None = None) -> bool:
    """What a killed `start` left says what it is: created (-> True, once the next start has
    started it) or running (-> False): a start killed between its write to the exec fifo and
    the fifo's removal had let the program run, and the fifo still there made it "created", so
    that `delete` without --force took it for one and killed it. Running, start and a plain
    delete refuse it, as for any running container."""
    if h.status(cid) == "created":
        h.ok("start", cid, env=env)
        assert h.status(cid) == "running"
        return True
    assert h.status(cid) == "running"
    for verb in ("start", "delete"):
        one_line_error(h.mrun(verb, cid, env=env), "running")
    assert h.status(cid) == "running"
    return False


def test_start_and_exec_killed_before_each_change(h):
    """`start` of a created container, and a detached `exec` into a running one (its process
    file, pid file): killed anywhere, the container is still one `delete --force` removes, and
    a kill of `start` leaves it created (started by the next start) or running, never half of
    one, nor running while it says it is created."""
    bundle = h.bundle(["sleep", "60"])

    def start(step: int) -> list[str]:
        h.ok("create", "-b", bundle, f"s{step}")
        return ["--root", h.root, "start", f"s{step}"]

    def repair_start(step: int) -> None:
        _started_again(h, f"s{step}")
        h.ok("delete", "--force", f"s{step}")

    assert kill_at_each_step(start, [h.tmp, h.tag], repair_start, h.leftovers) >= 1
    for cid in os.listdir(h.root):  # the unkilled one
        if not cid.startswith("."):
            h.ok("delete", "--force", cid)

    h.ok("create", "-b", bundle, "target")
    h.ok("start", "target")
    process = os.path.join(h.tmp, "process.json")
    with open(process, "w") as f:
        json.dump({"args": ["sleep", "60"], "cwd": "/", "env": ["PATH=/bin"], "user": {"uid": 0, "gid": 0}}, f)

    def exec_(step: int) -> list[str]:
        return ["--root", h.root, "exec", "-d", "--pid-file", os.path.join(h.tmp, f"exec-{step}.pid"), "-p",
                process, "target"]

    def left() -> list[str]:
        state = {x for x in os.listdir(h.root) if not x.startswith(".")} - {"target"}
        return [f"state {x}" for x in state]

    kill_at_each_step(exec_, [h.tmp, h.tag], lambda step: None, left)
    h.ok("delete", "--force", "target")
    assert h.leftovers() == []


def test_start_relaying_readiness_killed_before_each_change(h, notifying_rootfs, manager):  # noqa: F811
    """`start` under systemd's NOTIFY_SOCKET: the container's socket replaced (one a killed start
    left), bound and opened to all are its steps too (counted by the socket's name: it is bound
    through a descriptor of its directory). Killed at any, the container is created or running,
    and a start that follows still passes the program's READY= on. Then `run -d`, whose create
    makes the socket's directory and binds it: `delete --force` repairs it at each step."""
    bundle = h.bundle(["sh", "-c", "sd-notify READY=1; exec sleep 60"],
                      root={"path": notifying_rootfs, "readonly": True})
    env = {"NOTIFY_SOCKET": manager.path}

    def start(step: int) -> list[str]:
        h.ok("create", "-b", bundle, f"s{step}", env=env)
        return ["--root", h.root, "start", f"s{step}"]

    def repair(step: int) -> None:
        if _started_again(h, f"s{step}", env):
            assert manager.take()[:1] == [("READY=1\n", 0)], f"nothing relayed after a kill at change {step}"
        manager.take()
        h.ok("delete", "--force", f"s{step}")

    steps = kill_at_each_step(start, [h.tmp, h.tag, "notify.sock"], repair, h.leftovers, env=env)
    assert steps >= 3  # the stale socket's unlink, the bind, the chmod
    assert manager.take()[:1] == [("READY=1\n", 0)]
    h.ok("delete", "--force", f"s{steps}")

    # `run -d`: create's steps with the socket's among them, then start's; `delete --force` repairs
    def run(step: int) -> list[str]:
        return ["--root", h.root, "run", "-d", "-b", h.bundle(config=config), f"r{step}"]

    def repair_run(step: int) -> None:
        manager.take()
        h.mrun("delete", "--force", f"r{step}")

    config = json.load(open(os.path.join(bundle, "config.json")))
    steps = kill_at_each_step(run, [h.tmp, h.tag, "notify.sock"], repair_run, h.leftovers, env=env)
    assert steps > 10 and manager.take()[:1] == [("READY=1\n", 0)]
    h.ok("delete", "--force", f"r{steps}")


@pytest.mark.parametrize("images", ["warm"], indirect=True)
def test_pull_killed_before_each_change(images, registry):  # noqa: F811 - the fixture
    """`pull` from a registry: as `load`, the image is listed only whole, and the next pull works."""
    ref = registry.refs["busybox"]
    fetch_killed_at_each_step(images, ref, ["pull", "--creds", CREDS, ref], "pulled")


@pytest.mark.parametrize("images", ["warm"], indirect=True)
def test_system_prune_killed_before_each_change(images, busybox_archive):
    """`system prune`, the repair itself, killed at each of its steps over what killed verbs
    left (a create and a run --rm, each killed halfway through its steps): the next prune
    finishes it."""
    h = images
    img_ok(h, "load", busybox_archive, IMAGE)
    bundle = h.bundle(["sleep", "60"])
    base = ["--root", h.root, "--image-root", h.image_root]
    halfway: dict[str, int] = {}

    def mess(name: str, argv: list[str]) -> None:
        if name not in halfway:  # the middle of the verb's steps, counted once
            listing = killed_at(0, argv, [h.tmp, h.tag], {"MRUN_KILL_LIST": "1"})
            assert listing.returncode == 0, listing.stderr
            halfway[name] = listing.stderr.count("change ") // 2
            made = argv[argv.index("--name") + 1] if "--name" in argv else argv[-1]
            img_ok(h, "rm", "-f", made)  # what the listing run made
        assert killed_at(halfway[name], argv, [h.tmp, h.tag], {}).returncode == -signal.SIGKILL

    def argv(step: int) -> list[str]:
        mess("create", [*base, "create", "-b", bundle, f"c{step}"])
        mess("run", [*base, *run_args(h, "--rm", "--name", f"r{step}", IMAGE, "true")])
        return [*base, "system", "prune"]

    def repair(step: int) -> None:
        repair_with(h, ("system", "prune"), ("rm", "-f", f"r{step}"), ("delete", "--force", f"c{step}"))

    assert kill_at_each_step(argv, [h.tmp, h.tag], repair, lambda: h.leftovers() + image_leftovers(h)) > 10


@pytest.mark.parametrize("images", ["warm"], indirect=True)
def test_stop_restart_update_tag_and_named_volumes_killed_before_each_change(images, busybox_archive):
    """The remaining verbs that change what mrun keeps: `stop` and `restart` of a detached
    container, `update` of its limits, `tag`, and a named volume's `volume create` and
    `volume rm`. Killed anywhere: the container is still one `rm -f` removes (and `update`'s limits
    all old or all new), an image name is listed whole or not at all, a volume is whole or gone."""
    h = images
    img_ok(h, "load", busybox_archive, IMAGE)
    base = ["--root", h.root, "--image-root", h.image_root]
    match = [h.tmp, h.tag]

    def left() -> list[str]:
        return h.leftovers() + image_leftovers(h)

    def rm(name: str) -> Callable[[int], None]:
        return lambda step: repair_with(h, ("rm", "-f", f"{name}{step}"), ("system", "prune"))

    for verb in ("stop", "restart"):
        def argv(step: int, verb: str = verb) -> list[str]:
            img_ok(h, *run_args(h, "-d", "--name", f"{verb}{step}", IMAGE, "sleep", "600"))
            return [*base, verb, "-t", "1", f"{verb}{step}"]

        steps = kill_at_each_step(argv, match, rm(verb), left)
        img_ok(h, "rm", "-f", f"{verb}{steps}")

    img_ok(h, *run_args(h, "-d", "--name", "limited", "--memory", "64m", IMAGE, "sleep", "600"))

    def limit() -> int:
        """The memory limit in the container's cgroup (v1 or v2), as the kernel holds it."""
        import glob

        files = glob.glob(f"/sys/fs/cgroup/memory{h.cgroup_parent}/limited/memory.limit_in_bytes") or glob.glob(
            f"/sys/fs/cgroup{h.cgroup_parent}/limited/memory.max")  # (not its supervisor's, beside it)
        assert len(files) == 1, files
        return int(open(files[0]).read())

    def check_limit(step: int) -> None:
        assert limit() in (64 << 20, 96 << 20), limit()
        img_ok(h, "update", "--memory", "64m", "limited")

    kill_at_each_step(lambda step: [*base, "update", "--memory", "96m", "limited"], match, check_limit,
                      lambda: image_leftovers(h, keep="limited"))
    assert limit() == 96 << 20
    img_ok(h, "rm", "-f", "limited")

    def tagged(step: int) -> None:
        img_ok(h, "system", "prune")
        if listed(h, f"localhost/other:{step}"):
            assert img_ok(h, *run_args(h, "--rm", f"localhost/other:{step}", "true")).returncode == 0
            img_ok(h, "rmi", f"localhost/other:{step}")

    kill_at_each_step(lambda step: [*base, "tag", IMAGE, f"localhost/other:{step}"], match, tagged, left)

    def volumes() -> list[str]:
        return img_ok(h, "volume", "ls", "-q").stdout.split()

    def volume_whole_or_gone(step: int) -> None:
        if f"v{step}" in volumes():
            assert os.path.isdir(os.path.join(h.image_root, "volumes", f"v{step}", "data"))
            img_ok(h, "volume", "rm", f"v{step}")
        img_ok(h, "volume", "prune")

    def no_volume() -> list[str]:
        top = os.path.join(h.image_root, "volumes")
        return left() + [f"volume dir {v}" for v in (os.listdir(top) if os.path.isdir(top) else [])]

    steps = kill_at_each_step(lambda step: [*base, "volume", "create", f"v{step}"], match, volume_whole_or_gone,
                              no_volume)
    img_ok(h, "volume", "rm", f"v{steps}")

    def remove(step: int) -> list[str]:
        img_ok(h, "volume", "create", f"w{step}")
        return [*base, "volume", "rm", f"w{step}"]

    kill_at_each_step(remove, match, lambda step: _rm_volume(h, f"w{step}"), no_volume)


def _rm_volume(h, name: str) -> None:
    if name in img_ok(h, "volume", "ls", "-q").stdout.split():
        img_ok(h, "volume", "rm", name)
    img_ok(h, "volume", "prune")


@pytest.mark.parametrize("images", ["warm"], indirect=True)
def test_image_wasm_killed_before_each_change(images, busybox_archive):
    """`image wasm` (an image made from a module): killed anywhere, the wasm image is listed only
    whole (it runs), and the image a running container uses stays whole beside it."""
    h = images
    img_ok(h, "load", busybox_archive, IMAGE)
    img_ok(h, *run_args(h, "-d", "--name", "user", IMAGE, "sleep", "600"))
    made = "localhost/killed-wasm:1"
    module = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples", "wasm",
                          "hello.wasm")

    def scratch() -> set[str]:  # what an `image wasm` wrote outside the store (its layout once: killed, left)
        return {n for n in os.listdir(tempfile.gettempdir()) if n.startswith("mrun-wasm-image-")}

    before = scratch()

    def whole_or_absent(step: int) -> None:
        r = img(h, "system", "prune")
        assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
        assert scratch() <= before, f"killed at change {step}, it left {sorted(scratch() - before)} in /tmp"
        if listed(h, made):
            r = img(h, *run_args(h, "--rm", made, "7"))
            assert r.returncode == 7 and r.stdout.startswith("hello from wasm32-wasi"), (r.returncode, r.stderr)
            img_ok(h, "rmi", made)
        assert img_ok(h, "exec", "user", "echo", "still").stdout == "still\n"

    try:
        assert kill_at_each_step(lambda step: ["--root", h.root, "--image-root", h.image_root, "image", "wasm", module,
                                               made], [h.tmp, h.tag], whole_or_absent,
                                 lambda: image_leftovers(h, keep="user")) >= 3
        assert listed(h, made)
    finally:
        img_ok(h, "rm", "-f", "user")


class KilledShim:
    """containerd-shim-mrun-v2 under KILLER (cold), driven as containerd drives it, with what
    containerd does after a failure: the task's Delete and the daemon's Shutdown after a call that
    failed (errors ignored), and the binary's `delete` in the bundle after every disconnect. The
    count of changes is one file over every process: the start processes, the daemon, its fork
    helper, the create workers, the containers' inits; it runs once ``armed`` exists."""

    TASK = "containerd.task.v2.Task"
    SANDBOX = "containerd.runtime.sandbox.v1.Sandbox"

    def __init__(self, h) -> None:
        self.h = h
        self.shim_root = os.path.join(h.tmp, "shim-state")
        self.binary = os.path.join(os.path.dirname(h.binary), "containerd-shim-mrun-v2")
        self.address = f"/nonexistent/{h.tag}"  # in every shim process's command line: how one left is found
        # outside the matched paths: counting and telling are no step
        self.files = {}
        for name in ("counter", "report"):
            fd, self.files[name] = tempfile.mkstemp(prefix=f"mrun-kill-{name}-")
            os.close(fd)
        self.armed = self.files["counter"] + ".armed"
        self.env = {k: v for k, v in os.environ.items() if k != "TTRPC_ADDRESS"}
        self.env["MRUN_SHIM_ROOT"] = self.shim_root
        self.step = -1
        self.made: list[tuple[str, str]] = []  # (id, bundle) of every task's bundle

    def close(self) -> None:
        """After a failed assertion too: what the bundles made is removed, so no later test meets it."""
        for pid in processes_mentioning(self.address):
            os.kill(pid, signal.SIGKILL)  # our own shim daemons (the address is this test's)
        for cid, bundle in self.made:
            subprocess.run([self.binary, *self.flags(cid, bundle), "delete"], cwd=bundle, env=self.env,
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
        for path in (*self.files.values(), self.armed):
            if os.path.exists(path):
                os.unlink(path)

    def arm(self, step: int, now: bool = True) -> None:
        """The next kill: before change ``step`` once armed (now, or with ``arm_now`` later)."""
        self.step = step
        for path in self.files.values():
            open(path, "w").close()
        if os.path.exists(self.armed):
            os.unlink(self.armed)
        if now:
            self.arm_now()

    def arm_now(self) -> None:
        open(self.armed, "w").close()

    def told(self) -> str:
        with open(self.files["report"]) as f:
            return f.read().strip()

    def flags(self, cid: str, bundle: str = "") -> list[str]:
        return ["-namespace", "kill", "-address", self.address, "-id", cid, *(["-bundle", bundle] if bundle else [])]

    def bundle(self, cid: str, args: list[str], pod: str = "") -> tuple[str, object]:
        """A bundle whose rootfs is an overlay containerd would mount: -> (path, the Mount)."""
        from mrun.shims.proto import types_pb2

        bundle = os.path.join(self.h.tmp, f"bundle-{cid}")
        config = self.h.config(args, root={"path": "rootfs", "readonly": False})
        if pod:
            config["annotations"] = {"io.kubernetes.cri.sandbox-id": pod}
        for d in ("rootfs", "upper", "work"):
            os.makedirs(os.path.join(bundle, d))
        write_config(bundle, config)
        self.made.append((cid, bundle))
        return bundle, types_pb2.Mount(type="overlay", source="overlay", options=[
            f"lowerdir={self.h.rootfs}", f"upperdir={bundle}/upper", f"workdir={bundle}/work"])

    def socket(self, cid: str, pod: str = "") -> str:
        from mrun.shims.main import SOCKET_DIR, _socket_path

        return _socket_path({"address": self.address, "namespace": "kill", "id": cid}, pod or None, SOCKET_DIR)

    def start(self, cid: str, bundle: str, pod: str = "", extra_match: tuple[str, ...] | list[str] = ()
              ) -> subprocess.CompletedProcess[str]:
        """``extra_match``: more of what a change's path may hold to count (``/uid_map``)."""
        match = [self.h.tmp, self.h.tag, os.path.basename(self.socket(cid, pod)), *extra_match]
        env = {**self.env, "MRUN_WARM": "0", "MRUN_SHIM_UNCALLED_EXIT": "1", "MRUN_KILL_AT": str(self.step),
               "MRUN_KILL_MATCH": "|".join(match),
               "MRUN_KILL_ENTRY": "mrun.shims.main", "MRUN_KILL_FORKS": "1", "MRUN_KILL_COUNTER": self.files["counter"],
               "MRUN_KILL_ARMED": self.armed, "MRUN_KILL_REPORT": self.files["report"]}
        return subprocess.run([sys.executable, "-c", KILLER, *self.flags(cid), "start"], cwd=bundle, env=env,
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)

    def calls(self, client, cid: str, calls: list[tuple[str, object]]) -> str:
        """``calls`` in turn; -> "" or the one that failed, after containerd's clean-up of the task."""
        from mrun.shims import ttrpc
        from mrun.shims.proto import task_pb2

        done = []
        try:
            for method, msg in calls:
                answer = client.call(self.TASK, method, msg.SerializeToString(), timeout=20)
                done.append(method)
                if method == "Wait":
                    assert task_pb2.WaitResponse.FromString(answer).exit_status == 137
            return ""
        except (OSError, ttrpc.TTRPCError) as e:
            self.clean_up(client, cid)
            return f"{calls[len(done)][0]}: {e}"

    def clean_up(self, client, cid: str, sandbox: str = "") -> None:
        """containerd's clean-up after a failed call (errors ignored), as `ctr task rm -f` makes
        it: the task killed and awaited (a Delete never kills), its exec and the task deleted,
        the pod ``sandbox`` shut down, the shim told to go."""
        from mrun.shims import ttrpc
        from mrun.shims.proto import sandbox_pb2, task_pb2

        for service, method, msg in (
            (self.TASK, "Kill", task_pb2.KillRequest(id=cid, signal=signal.SIGKILL, all=True)),
            (self.TASK, "Wait", task_pb2.WaitRequest(id=cid)),
            (self.TASK, "Delete", task_pb2.DeleteRequest(id=cid, exec_id="e")),  # an exec's, if one was made
            (self.TASK, "Delete", task_pb2.DeleteRequest(id=cid)),
            *([(self.SANDBOX, "ShutdownSandbox", sandbox_pb2.ShutdownSandboxRequest(sandbox_id=sandbox))]
              if sandbox else []),
            (self.TASK, "Shutdown", task_pb2.ShutdownRequest()),
        ):
            try:
                client.call(service, method, msg.SerializeToString(), timeout=20)
            except (OSError, ttrpc.TTRPCError):
                pass

    def connect(self, cid: str, bundle: str, pod: str = "", extra_match: tuple[str, ...] | list[str] = ()):
        """`start`, then a connection to the daemon it started. -> (the client, "") or (None, what failed)."""
        from mrun.shims import ttrpc

        started = self.start(cid, bundle, pod, extra_match)
        if started.returncode != 0:
            return None, f"start: {started.returncode}: {started.stderr.strip()}"
        try:
            return ttrpc.Client(started.stdout.removeprefix("unix://")), ""
        except OSError as e:
            return None, f"Connect: {e}"

    def life(self, cid: str, bundle: str, rootfs: object, pod: str = "") -> str:
        """start, then a task's whole life, an exec's included (a pod's: without the Shutdown).
        -> "" or what failed (containerd's clean-up done, but not the binary's delete)."""
        from google.protobuf import any_pb2
        from mrun.shims.proto import task_pb2

        client, failed = self.connect(cid, bundle, pod)
        if client is None:
            return failed
        try:
            return self.calls(client, cid, [
                ("Connect", task_pb2.ConnectRequest(id=cid)),
                ("Create", task_pb2.CreateTaskRequest(id=cid, bundle=bundle, rootfs=[rootfs])),
                ("Start", task_pb2.StartRequest(id=cid)),
                ("Exec", task_pb2.ExecProcessRequest(id=cid, exec_id="e", spec=any_pb2.Any(
                    type_url="types.containerd.io/opencontainers/runtime-spec/1/Process", value=json.dumps(
                        {"args": ["sleep", "60"], "cwd": "/", "env": ["PATH=/bin"], "user": {"uid": 0, "gid": 0}}
                    ).encode()))),
                ("Start", task_pb2.StartRequest(id=cid, exec_id="e")),
                ("Kill", task_pb2.KillRequest(id=cid, exec_id="e", signal=signal.SIGKILL)),
                ("Wait", task_pb2.WaitRequest(id=cid, exec_id="e")),
                ("Delete", task_pb2.DeleteRequest(id=cid, exec_id="e")),
                ("Kill", task_pb2.KillRequest(id=cid, signal=signal.SIGKILL)),
                ("Wait", task_pb2.WaitRequest(id=cid)),
                ("Delete", task_pb2.DeleteRequest(id=cid)),
                *([] if pod else [("Shutdown", task_pb2.ShutdownRequest(id=cid))]),
            ])
        finally:
            client.close()

    def pod_life(self, pod: str, pod_bundle: str, options: object, cid: str, bundle: str, rootfs: object,
                 extra_match: list[str]) -> str:
        """`start` for the pod, then its life on the sandbox API, a task's whole life in it between
        StartSandbox and StopSandbox. -> "" or what failed (containerd's clean-up done, but not the
        binary's delete)."""
        from mrun.shims import ttrpc
        from mrun.shims.proto import sandbox_pb2, task_pb2

        client, failed = self.connect(pod, pod_bundle, pod, extra_match)
        if client is None:
            return failed
        method = ""

        def call(service: str, name: str, msg: object) -> bytes:
            nonlocal method
            method = name
            return client.call(service, name, msg.SerializeToString(), timeout=20)

        try:
            call(self.SANDBOX, "CreateSandbox", sandbox_pb2.CreateSandboxRequest(
                sandbox_id=pod, bundle_path=pod_bundle, options=options))
            spec = json.loads(sandbox_pb2.StartSandboxResponse.FromString(call(
                self.SANDBOX, "StartSandbox", sandbox_pb2.StartSandboxRequest(sandbox_id=pod))).spec.value)
            with open(os.path.join(bundle, "config.json")) as f:
                config = json.load(f)
            config["linux"]["namespaces"] = [*spec["linux"]["namespaces"], {"type": "mount"}]
            config["linux"]["uidMappings"] = spec["linux"]["uidMappings"]
            config["linux"]["gidMappings"] = spec["linux"]["gidMappings"]
            write_config(bundle, config)
            call(self.TASK, "Create", task_pb2.CreateTaskRequest(id=cid, bundle=bundle, rootfs=[rootfs]))
            call(self.TASK, "Start", task_pb2.StartRequest(id=cid))
            call(self.TASK, "Kill", task_pb2.KillRequest(id=cid, signal=signal.SIGKILL))
            waited = task_pb2.WaitResponse.FromString(call(self.TASK, "Wait", task_pb2.WaitRequest(id=cid)))
            assert waited.exit_status == 137
            call(self.TASK, "Delete", task_pb2.DeleteRequest(id=cid))
            call(self.SANDBOX, "StopSandbox", sandbox_pb2.StopSandboxRequest(sandbox_id=pod))
            call(self.SANDBOX, "ShutdownSandbox", sandbox_pb2.ShutdownSandboxRequest(sandbox_id=pod))
            return ""
        except (OSError, ttrpc.TTRPCError) as e:
            self.clean_up(client, cid, sandbox=pod)
            return f"{method}: {e}"
        finally:
            client.close()

    def binary_delete(self, cid: str, bundle: str) -> None:
        """containerd's clean-up after a shim disconnects (a normal end's included)."""
        r = subprocess.run([self.binary, *self.flags(cid, bundle), "delete"], cwd=bundle, env=self.env,
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
        assert r.returncode == 0 and b"Traceback" not in r.stderr, r.stderr

    def each_step(self, one: Callable[[int], tuple[str, str, list[str]]]) -> int:
        """``one(step)`` (-> the call that failed, the kill told, what was left after containerd's
        clean-up) at step 0, 1, 2... until a life runs to its end unkilled. -> the number of steps."""
        for step in range(MAX_STEPS):
            failed, told, left = one(step)
            assert not left, f"{told or 'no kill'} (change {step}), {failed or 'no call failed'}, then: {left}"
            if not told:
                assert not failed, f"unkilled at step {step}: {failed}"
                return step
        raise AssertionError(f"the shim made more than {MAX_STEPS} changes: raise MAX_STEPS if that is right")

    def left(self, sockets: list[str]) -> list[str]:
        deadline = time.monotonic() + 10  # a daemon nobody called leaves after MRUN_SHIM_UNCALLED_EXIT
        while processes_mentioning(self.address) and time.monotonic() < deadline:
            time.sleep(0.05)
        found = self.h.leftovers()
        state = os.path.join(self.shim_root, "kill")
        if os.path.isdir(state) and os.listdir(state):
            found.append(f"shim state: {os.listdir(state)}")
        found += [f"socket {path}" for path in sockets if os.path.lexists(path)]
        if processes_mentioning(self.address):
            found.append(f"shim processes: {processes_mentioning(self.address)}")
        return found


def test_shim_killed_before_each_change(h):
    """containerd-shim-mrun-v2 driven as containerd drives it (`start`, then Connect, Create with an
    overlay rootfs, Start, an exec's Exec, Start, Kill, Wait and Delete, the task's Kill, Wait,
    Delete, Shutdown), killed before each change of the start
    process, the daemon it forks, the daemon's fork helper, a create worker or the container's
    init, in turn. After each kill, containerd's clean-up (KilledShim); then nothing may be left:
    state, cgroup, mount (the rootfs included), process, socket."""
    shim = KilledShim(h)

    def one(step: int) -> tuple[str, str, list[str]]:
        cid = f"k{step}"
        bundle, rootfs = shim.bundle(cid, ["sleep", "60"])
        shim.arm(step)
        failed = shim.life(cid, bundle, rootfs)
        shim.binary_delete(cid, bundle)
        return failed, shim.told(), shim.left([shim.socket(cid)])

    try:
        assert shim.each_step(one) > 50  # start, the daemon, its helper, a worker's create, the init, Start, Delete
    finally:
        shim.close()


def test_a_pods_shim_killed_before_each_change_of_its_second_task(h):
    """A pod's shim (one per pod: the sandbox-id annotation) runs a first task; a second task's
    whole life (its `start`, which joins the pod's shim, Create, Start, an exec, Kill, Wait, Delete) is
    killed before each change, in any of the pod shim's processes. A kill in a create worker or
    the fork helper fails that one call and touches neither the first task nor the shim; only a
    kill of the daemon itself ends the pod, and then containerd's clean-up of both tasks leaves
    nothing. While the shim lives, the first task runs on, and ends cleanly at the end."""
    from mrun.shims import ttrpc
    from mrun.shims.proto import task_pb2

    shim = KilledShim(h)

    def one(step: int) -> tuple[str, str, list[str]]:
        pod, first, second = f"pod{step}", f"p{step}a", f"p{step}b"
        first_bundle, first_rootfs = shim.bundle(first, ["sleep", "600"], pod=pod)
        second_bundle, second_rootfs = shim.bundle(second, ["sleep", "60"], pod=pod)
        shim.arm(step, now=False)
        started = shim.start(first, first_bundle, pod)
        assert started.returncode == 0, started.stderr
        client = ttrpc.Client(started.stdout.removeprefix("unix://"))
        assert not shim.calls(client, first, [
            ("Connect", task_pb2.ConnectRequest(id=first)),
            ("Create", task_pb2.CreateTaskRequest(id=first, bundle=first_bundle, rootfs=[first_rootfs])),
            ("Start", task_pb2.StartRequest(id=first))])
        shim.arm_now()
        failed = shim.life(second, second_bundle, second_rootfs, pod)
        shim.binary_delete(second, second_bundle)
        told = shim.told()
        if not failed or "connection closed" not in failed and "refused" not in failed:
            # the pod's shim lives: its first task runs on, and ends as any task does (unless
            # the second's life made fewer changes than ``step``: the kill comes in this end)
            ended = shim.calls(client, first, [
                ("Kill", task_pb2.KillRequest(id=first, signal=signal.SIGKILL)),
                ("Wait", task_pb2.WaitRequest(id=first)),
                ("Delete", task_pb2.DeleteRequest(id=first)),
                ("Shutdown", task_pb2.ShutdownRequest())])
            assert not ended or not told and shim.told(), f"{told} ({failed}): the pod's first task: {ended}"
            told = told or shim.told()
            failed = failed or ended
        client.close()
        shim.binary_delete(first, first_bundle)
        return failed, told, shim.left([shim.socket(first, pod)])

    try:
        assert shim.each_step(one) > 40
    finally:
        shim.close()


def test_a_user_namespaced_shim_pod_killed_before_each_change(h):
    """containerd 2.x's sandbox API with the shim as the pod (``sandboxer = 'shim'``), for a pod
    with a user namespace (Kubernetes' hostUsers: false) and sysctls: `start`, CreateSandbox,
    StartSandbox (the pod's user namespace made and its maps written, its sysctls set, the holder
    forked), a task in the pod on an overlay snapshot idmapped as containerd sends it (uidmap=/
    gidmap=: each layer cloned through a user namespace of its own), the task's life, StopSandbox
    and ShutdownSandbox; killed before each change of any of the shim's processes, /proc writes
    included. After each kill, containerd's clean-up (the task's Delete, ShutdownSandbox, Shutdown,
    the binary's delete): no holder, state, cgroup, mount, socket or process may be left."""
    from mrun.shims.proto import types_pb2
    from test_shim_protocol import pod_config, userns_message

    shim = KilledShim(h)
    maps = [(300000, 0, 65536)]
    options = pod_config("killed", 0, userns_message(0, maps, maps),
                         {"net.ipv4.ip_unprivileged_port_start": "77", "kernel.shm_rmid_forced": "1"})
    open_to_others(h.rootfs)
    for path in shim.files.values():  # counted and told by the holder too, once it is the pod's root
        os.chmod(path, 0o666)
    proc_writes = ["/uid_map", "/gid_map", "/setgroups", "/proc/sys/"]

    def one(step: int) -> tuple[str, str, list[str]]:
        pod, cid = f"upod{step}", f"u{step}"
        pod_bundle = os.path.join(h.tmp, f"pod-{pod}")
        os.makedirs(pod_bundle)
        bundle, _ = shim.bundle(cid, ["sleep", "60"], pod=pod)
        for d in ("upper", "work"):  # the pod's root's, as containerd makes a remapped snapshot's
            os.chown(os.path.join(bundle, d), 300000, 300000)
        open_to_others(bundle)
        rootfs = types_pb2.Mount(type="overlay", source="overlay", options=[
            f"lowerdir={h.rootfs}", f"upperdir={bundle}/upper", f"workdir={bundle}/work",
            "uidmap=0:300000:65536", "gidmap=0:300000:65536"])
        shim.arm(step)
        failed = shim.pod_life(pod, pod_bundle, options, cid, bundle, rootfs, proc_writes)
        shim.binary_delete(cid, bundle)
        shim.binary_delete(pod, pod_bundle)
        return failed, shim.told(), shim.left([shim.socket(pod, pod)])

    try:
        assert shim.each_step(one) > 40
    finally:
        shim.close()


class stopped_at:  # noqa: N801 - used as a statement: ``with stopped_at(...) as run:``
    """mrun ``argv`` (cold, under KILLER) stopped (SIGSTOP) before the first change whose listed
    line (``change N: EVENT PATH``) ``chosen`` picks, or after it with ``after``: a race's window
    held open while the test runs the other party. Continued (SIGCONT) on leaving the block;
    ``self.code`` is then its exit status, ``self.err`` its stderr."""

    def __init__(self, argv: list[str], match: list[str], chosen: Callable[[str], bool], env: dict[str, str],
                 after: bool = False, undo: Callable[[], object] | None = None) -> None:
        """``undo``: what removes the listing run's work (a created container) before the real one."""
        self.argv = argv
        self.env = {**os.environ, **env, "MRUN_WARM": "0", "MRUN_KILL_MATCH": "|".join(match)}
        listing = killed_at(-1, argv, match, {**env, "MRUN_KILL_LIST": "1"})
        if undo is not None:
            undo()
        assert listing.returncode == 0, listing.stderr
        line = next((x for x in listing.stderr.splitlines() if x.startswith("change ") and chosen(x)), None)
        assert line is not None, f"no such step in: {listing.stderr}"
        self.step = int(line.split(":")[0].removeprefix("change ")) + (1 if after else 0)

    def __enter__(self) -> stopped_at:
        self.errfile = tempfile.TemporaryFile("w+")
        self.proc = subprocess.Popen([sys.executable, "-c", KILLER, *self.argv], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=self.errfile, env={
                                         **self.env, "MRUN_KILL_AT": str(self.step), "MRUN_KILL_SIGNAL": "STOP"})
        deadline = time.monotonic() + 60
        while open(f"/proc/{self.proc.pid}/stat").read().rsplit(")", 1)[1].split()[0] != "T":
            assert self.proc.poll() is None and time.monotonic() < deadline, "it never reached the step"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        os.kill(self.proc.pid, signal.SIGCONT)  # our own, by pid
        self.code = self.proc.wait(timeout=60)
        self.errfile.seek(0)
        self.err = self.errfile.read()
        self.errfile.close()


@pytest.mark.parametrize("images", ["warm"], indirect=True)
def test_volume_prune_waits_for_a_run_that_has_made_its_anonymous_volume(images, busybox_archive):
    """A race, held open: `run -v /DEST` stopped (SIGSTOP, by the same hook) just after its
    anonymous volume appeared and before the container's config names it, and `volume prune` (and
    `volume rm`) run then. The volume is unnamed by any container for that moment, and a prune
    that did not wait for the run took it: the run then failed on its missing mount. Both take the
    image store's lock now, as the run's preparation holds it."""
    h = images
    img_ok(h, "load", busybox_archive, IMAGE)
    volumes_dir = os.path.join(h.image_root, "volumes")
    argv = ["--root", h.root, "--image-root", h.image_root, *run_args(h, "--rm", "-v", "/scratch", IMAGE, "true")]
    with stopped_at(argv, [h.tmp], lambda line: "os.rename" in line and "/volumes/.new-" in line, {},
                    after=True) as run:
        made = [n for n in os.listdir(volumes_dir) if not n.startswith(".")]
        assert len(made) == 1, made
        prune = subprocess.Popen([h.binary, "--image-root", h.image_root, "volume", "prune"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        rm = subprocess.Popen([h.binary, "--image-root", h.image_root, "volume", "rm", made[0]],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(1)
        assert made[0] in os.listdir(volumes_dir), "a volume prune or rm took the run's volume"
    assert run.code == 0, run.err
    out, errors = prune.communicate(timeout=60)
    assert prune.returncode == 0 and made[0] not in out, (out, errors)
    _, errors = rm.communicate(timeout=60)
    assert "Traceback" not in errors, errors
    assert not [n for n in os.listdir(volumes_dir) if not n.startswith(".")]  # run --rm took its own


def test_network_rm_waits_for_a_run_taking_its_address(net):  # noqa: F811 - the fixture
    """A race, held open: `run --network NET` stopped as it takes its address lease, and `network
    rm NET` then. The rm saw no lease, removed the network under the run (its leases directory
    with it), and the run failed; the lease is taken under the network root's lock now, which rm
    holds while it checks: it refuses (in use) once the run has its address."""
    h = net
    argv = ["--root", h.root, "--image-root", h.image_root, *run_args(h, "--rm", "--network", h.net, IMAGE, "true")]
    definition = os.path.join(h.env["MRUN_NETWORK_ROOT"], h.net, "network.json")
    with stopped_at(argv, [h.tmp], lambda line: "open" in line and f"/{h.net}/leases/" in line, h.env) as run:
        rm = subprocess.Popen([h.binary, "network", "rm", h.net], env={**os.environ, **h.env},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(1)
        assert os.path.exists(definition), "network rm removed the network a run was joining"
    assert run.code == 0, run.err
    out, errors = rm.communicate(timeout=60)
    assert rm.returncode == 1 and "in use" in errors and "Traceback" not in errors, (out, errors)
    assert os.path.exists(definition)


@pytest.mark.parametrize("window", ["making", "locked", "placed"])
def test_system_prune_and_delete_leave_a_create_in_progress_alone(h, window):
    """A race, held open: `create` stopped just after it made its directory under the name being
    made (``making``), took its lock there (``locked``), or renamed it into place (``placed``),
    and `system prune` and `delete --force` of another id run then: a create in progress is
    nobody's leftover, and finishes. (Made in place, the directory was there unlocked for a
    moment, and a prune removed it from under the create.)"""
    bundle = h.bundle(["sleep", "60"])
    cid = h.cid("racing")
    making = f"{h.root}/.making-"
    step = {"making": f"os.mkdir {making}", "locked": f"open {making}", "placed": f"os.rename {making}"}[window]

    with stopped_at(["--root", h.root, "create", "-b", bundle, cid], [h.tmp, h.tag],
                    lambda line: line.split(": ", 1)[1].startswith(step), {}, after=True,
                    undo=lambda: h.ok("delete", "--force", cid)) as run:
        r = h.mrun("--image-root", os.path.join(h.tmp, "no-images"), "system", "prune")
        assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
        assert cid not in r.stdout, f"system prune took a create in progress: {r.stdout}"
        r = h.mrun("delete", "--force", "someone-else")
        assert "Traceback" not in r.stderr, r.stderr
    assert run.code == 0, run.err
    h.ok("start", cid)
    assert h.status(cid) == "running"
    h.ok("delete", "--force", cid)
    assert not [n for n in os.listdir(h.root) if n.startswith(".making-")]


def test_network_create_waits_for_the_teardown_of_a_network_of_the_same_name(net):  # noqa: F811 - the fixture
    """A race, held open: `network rm NET` stopped as it opens netlink to take the network's rules
    and bridge down (its definition gone already), then `network create NET` and a `run -d` on
    it. The rm took them down after it let go of the network lock, so it took the new network's
    rules and bridge from under the running container. The teardown runs under the lock now:
    the create waits for it, and the new network keeps what its container made."""
    h = net
    bridge = json.loads(img_ok(h, "network", "inspect", h.net, env=h.env).stdout)["bridge"]
    env = {**os.environ, **h.env}
    run = [h.binary, "--root", h.root, "--image-root", h.image_root,
           *run_args(h, "-d", "--name", "after", "--network", h.net, IMAGE, "sleep", "60")]
    create = None
    ran = None
    try:
        with stopped_at(["network", "rm", h.net], [h.tmp, "socket family 16"], lambda line: "socket family 16" in line,
                        h.env, undo=lambda: img_ok(h, "network", "create", h.net, env=h.env)):
            create = subprocess.Popen([h.binary, "network", "create", h.net], env=env, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.PIPE, text=True)
            try:
                create.wait(timeout=1)
                ran = subprocess.run(run, env=env, capture_output=True, text=True, timeout=60)  # the old order
            except subprocess.TimeoutExpired:
                pass  # the create waits for the rm: as it should
        assert create.wait(timeout=60) == 0, create.stderr.read()
        if ran is None:
            ran = subprocess.run(run, env=env, capture_output=True, text=True, timeout=60)
        assert ran.returncode == 0, ran.stderr
        assert os.path.exists(f"/sys/class/net/{bridge}"), "the rm took the new network's bridge"
        assert f"mrun-net:{h.net}" in nft_rules(), "the rm took the new network's rules"
        assert img_ok(h, "exec", "after", "ip", "-4", "addr", env=h.env).stdout.count("inet ") == 2  # lo and eth0
    finally:
        img(h, "rm", "-f", "after", env=h.env)



RESTARTING = ("if [ -e /gate/ran ]; then exec sleep 60; fi; touch /gate/ran; "
              "until [ -e /gate/go ]; do sleep 0.05; done; exit 1")  # waits for the test, fails, then runs on


@pytest.mark.parametrize("stopping", [["stop", "-t", "1"], ["kill", "SIGKILL"], ["rm", "--force"]], ids=lambda v: v[0])
@pytest.mark.parametrize("images", ["cold"], indirect=True)
def test_a_stop_during_a_restart_leaves_the_container_stopped(images, busybox_archive, stopping):
    """A race, held open: a `--restart always` container's supervisor (forked by `run -d`)
    stopped (SIGSTOP, by the same hook) at the first change of its restart, once it had looked
    for the user's stop and found none, and `stop` (a kill with SIGKILL, `rm -f`) run then. The
    stop found the container stopped (in its back-off) and returned; the supervisor then started
    it again, running after the stop, and a `rm` refused it (seen once in CI). A stop now waits
    for a restart under way, then stops what it started."""
    h = images
    img_ok(h, "load", busybox_archive, IMAGE)
    gate = os.path.join(h.tmp, "gate")
    told = tempfile.mkdtemp()  # not under h.tmp: the hook's own writes there are not steps
    report, armed = os.path.join(told, "report"), os.path.join(told, "armed")
    argv = ["--root", h.root, "--image-root", h.image_root,
            *run_args(h, "-d", "--restart", "always", "--name", "flap", "-v", f"{gate}:/gate", IMAGE, "sh", "-c",
                      RESTARTING)]
    env = {"MRUN_KILL_FORKS": "1", "MRUN_KILL_REPORT": report, "MRUN_KILL_ARMED": armed}

    def read(path: str) -> list[str]:
        return open(path).read().splitlines() if os.path.exists(path) else []

    def restarted(step: int) -> list[str]:
        """The first run up; counting armed, its end let go: the report's lines once the
        supervisor has started it again, or stopped itself before ``step``."""
        for path in (gate, report, armed):
            subprocess.run(["rm", "-rf", path], check=True)
        os.makedirs(gate)
        r = killed_at(step, argv, [h.tmp], {**env, **({"MRUN_KILL_SIGNAL": "STOP"} if step >= 0 else
                                                       {"MRUN_KILL_LIST": "1"})})
        assert r.returncode == 0, r.stderr
        open(armed, "w").close()
        open(os.path.join(gate, "go"), "w").close()
        deadline = time.monotonic() + 30
        while True:
            if step >= 0:
                lines = read(report)
                if any(line.startswith("stopped before") for line in lines):
                    return lines
                assert time.monotonic() < deadline, lines
            else:
                doc = json.loads(img_ok(h, "inspect", "flap").stdout)
                if doc["state"]["status"] == "running" and doc.get("restarts") == 1:
                    return read(report)  # read after: the restart may finish while inspect runs
                assert time.monotonic() < deadline, (doc.get("restarts"), read(report))
            time.sleep(0.05)

    try:
        listing = restarted(-1)
        img_ok(h, "rm", "--force", "flap")
        # the restart's first change: the container's state lock, taken to make it again
        line = next((x for x in listing if x.startswith("change ") and "/state/flap/lock" in x), None)
        assert line is not None, listing
        step = int(line.split(":")[0].removeprefix("change "))
        told_of = restarted(step)[-1]
        supervisor = int(told_of.rsplit("(pid ", 1)[1].rstrip(")"))
        done: list[subprocess.CompletedProcess[str]] = []
        stopper = threading.Thread(target=lambda: done.append(img(h, *stopping[:1], "flap", *stopping[1:])))
        stopper.start()
        time.sleep(1)  # the stop, while the supervisor holds its restart
        os.kill(supervisor, signal.SIGCONT)  # our own, by pid
        stopper.join(timeout=60)
        assert done and done[0].returncode == 0, done
        time.sleep(1)  # a restart after the stop would be up by now
        if stopping[0] == "rm":
            assert img(h, "inspect", "flap").returncode != 0
        else:
            assert json.loads(img_ok(h, "inspect", "flap").stdout)["state"]["status"] == "stopped"
            img_ok(h, "rm", "flap")
    finally:
        img(h, "rm", "--force", "flap")
        subprocess.run(["rm", "-rf", told], check=True)


def held_at_each_step(h, argv: list[str], prepare: Callable[[], None], other: list[str],
                      judge: Callable[[int, subprocess.CompletedProcess[str], subprocess.CompletedProcess[str]], str],
                      undo: Callable[[], object], match: tuple[str, ...] = ()) -> None:
    """Races, each held open: mrun ``argv`` (cold, under KILLER, after ``prepare()``) stopped
    (SIGSTOP) before each of its changes under the test's directory (or a path holding one of
    ``match``: a name opened by descriptor is seen alone) in turn, in it or any process
    it forks (a supervisor, a container's init before its exec), while mrun ``other`` (of the
    image root) runs; continued 0.3 s later. ``judge(step, held, other's)`` says what is wrong
    with the two outcomes ('' for nothing); ``undo()`` then removes the container, and nothing
    may be left. Every step is tried and the failures told together."""
    told = tempfile.mkdtemp()  # not under h.tmp: the hook's own writes there are not steps
    report = os.path.join(told, "report")
    env = {**os.environ, **h.base_env, "MRUN_WARM": "0", "MRUN_KILL_MATCH": "|".join([h.tmp, *match]),
           "MRUN_KILL_FORKS": "1", "MRUN_KILL_REPORT": report}

    def prepared() -> None:
        prepare()
        if os.path.exists(report):
            os.unlink(report)

    try:
        for _ in range(2):  # listed as the held runs will see them: after one run, and its undo (a first run
            prepared()      # in a fresh image root makes its directories, which no later run makes again)
            listing = killed_at(-1, argv, [h.tmp, *match], {**env, "MRUN_KILL_LIST": "1"})
            assert listing.returncode == 0, listing.stderr
            time.sleep(0.3)  # what a process it forked changes after it ended (a supervisor's record)
            steps = [x for x in open(report).read().splitlines() if x.startswith("change ")]  # the verb's own
            undo()
        failures, unreached = [], []
        for step in range(len(steps)):
            prepared()
            proc = subprocess.Popen([sys.executable, "-c", KILLER, *argv], stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                    env={**env, "MRUN_KILL_AT": str(step), "MRUN_KILL_SIGNAL": "STOP"})
            deadline, said = time.monotonic() + 30, ""
            while time.monotonic() < deadline:
                said = open(report).read() if os.path.exists(report) else ""
                if "stopped before" in said:
                    break
                said = ""
                if proc.poll() is not None:  # a process it forked (a supervisor) may come to it after it ended
                    deadline = min(deadline, time.monotonic() + 5)
                time.sleep(0.01)
            if not said:  # a verb whose steps vary by a few from run to run (threads; a file made once)
                assert proc.wait(timeout=90) == 0 and len(unreached) < 2, f"{steps[step]}: never reached"
                unreached.append(step)
                undo()
                continue
            with ThreadPoolExecutor(1) as pool:
                running = pool.submit(img, h, *other)
                time.sleep(0.3)
                os.kill(int(said.rsplit("(pid ", 1)[1].split(")")[0]), signal.SIGCONT)  # ours, by pid
                r = running.result(timeout=90)
            out, err = proc.communicate(timeout=90)
            held = subprocess.CompletedProcess(argv, proc.returncode, out, err)
            what = (f"{steps[step]}: {argv[4]} {held.returncode} {err.strip()!r}, "
                    f"{other[0]} {r.returncode} {r.stderr.strip()!r}")
            if "Traceback" in err + r.stderr or len(err.strip().splitlines()) > 1:
                failures.append(what + ": a traceback or several lines")
            elif wrong := judge(step, held, r):
                failures.append(f"{what}: {wrong}")
            undo()
            deadline = time.monotonic() + 10
            while (left := h.leftovers() + image_leftovers(h)) and time.monotonic() < deadline:
                time.sleep(0.1)
            if left:
                failures.append(f"{what}: left {left}")
                h.cleanup()
            print(what)  # with -s: each step's outcome
        assert not failures, "\n".join(failures)
    finally:
        undo()
        subprocess.run(["rm", "-rf", told], check=True)


def exited(h, name: str) -> None:
    """A container of `run -d` that has ended; its next start runs on (sleep 30)."""
    img_ok(h, *run_args(h, "-d", "--name", name, IMAGE, "sh", "-c", "[ -e /ran ] && exec sleep 30; touch /ran"))
    img_ok(h, "wait", name)


def status_of(h, name: str) -> str:
    """The container's status as `inspect` says it, or "gone"."""
    r = img(h, "inspect", name)
    return json.loads(r.stdout)["state"]["status"] if r.returncode == 0 else "gone"


@pytest.mark.parametrize("other", ["rm", "rm -f", "stop"])
@pytest.mark.parametrize("images", ["cold"], indirect=True)
def test_rm_or_stop_at_each_step_of_a_docker_start(images, busybox_archive, other):
    """docker's `start` of an exited container held before each of its changes in turn, and `rm`
    (`rm -f`, `stop`) run then. Either the rm wins (the container gone, the start refused in one
    line) or the start does (the rm refused, the container there); `rm -f` removes it, whichever
    is first; a stop leaves it stopped, unless the start had not yet taken its lock (its first
    change): it comes after the stop then. (The start, which takes the user's last stop away,
    took a stop made while it was under way: the container ran on after the stop. The start's
    refusal once an rm had removed the container named its start.lock, "No such file or
    directory".)"""
    h = images
    img_ok(h, "load", busybox_archive, IMAGE)
    name = "starting"

    def judge(step: int, start: subprocess.CompletedProcess[str], r: subprocess.CompletedProcess[str]) -> str:
        time.sleep(0.3)  # a start the stop missed has its container up by now
        status = status_of(h, name)
        if other == "stop":
            if r.returncode != 0 or start.returncode != 0 or status != ("running" if step == 0 else "stopped"):
                return f"then {status}"
        elif other == "rm -f":
            if r.returncode != 0 or status != "gone":
                return f"then {status}"
        elif r.returncode == 0:  # the rm won: the start refused, saying so
            if status != "gone" or start.stderr.strip() != f"mrun: container {name!r} does not exist":
                return f"rm said yes, the container {status}"
        elif status != "running" or start.returncode != 0 or "running" not in r.stderr:  # the start won
            return f"rm said no, the container {status}"
        return ""

    held_at_each_step(h, ["--root", h.root, "--image-root", h.image_root, "start", name], lambda: exited(h, name),
                      [*other.split(), "-t", "1", name] if other == "stop" else [*other.split(), name], judge,
                      lambda: img(h, "rm", "--force", name))


@pytest.mark.parametrize("other", ["rm"])
@pytest.mark.parametrize("images", ["cold"], indirect=True)
def test_rm_at_each_step_of_a_docker_restart(images, busybox_archive, other):
    """docker's `restart` of a running container (a stop, then a start) held before each of its
    changes in turn while `rm` runs: an rm that finds the container stopped between the two
    removes it and the restart says in one line that it does not exist; one that finds it
    running is refused and the restart has it running. (`rm -f` too, tried once: it removes the
    container whatever the restart had done, and nothing is left; not kept, for 90 s of the
    suite, as the start it holds is test_rm_or_stop_at_each_step_of_a_docker_start's.)"""
    h = images
    img_ok(h, "load", busybox_archive, IMAGE)
    name = "restarting"

    def running() -> None:
        exited(h, name)
        img_ok(h, "start", name)

    def judge(step: int, restart: subprocess.CompletedProcess[str], r: subprocess.CompletedProcess[str]) -> str:
        status = status_of(h, name)
        gone = f"mrun: container {name!r} does not exist"
        if other == "rm -f":
            if r.returncode != 0 or status != "gone" or restart.returncode not in (0, 1):
                return f"then {status}"
            if restart.returncode == 1 and restart.stderr.strip() != gone:
                return "the restart's refusal"
        elif r.returncode == 0:  # the rm came between the stop and the start
            if status != "gone" or restart.stderr.strip() != gone:
                return f"rm said yes, the container {status}"
        elif status != "running" or restart.returncode != 0 or "running" not in r.stderr:
            return f"rm said no, the container {status}"
        return ""

    held_at_each_step(h, ["--root", h.root, "--image-root", h.image_root, "restart", "-t", "1", name], running,
                      [*other.split(), name], judge, lambda: img(h, "rm", "--force", name))


@pytest.mark.parametrize("other", ["rm", "stop"])
@pytest.mark.parametrize("images", ["cold"], indirect=True)
def test_rm_or_stop_at_each_step_of_a_detached_run(images, busybox_archive, other):
    """`run -d --name NAME` held before each of its changes in turn, and `rm NAME` (or `stop`)
    run then: the rm or stop finds no such container (the run comes after it, and runs), the rm
    removes what the run made (which then says so in one line) or is refused (it runs). A stop
    that finds the container created and not yet started does nothing, as docker's: the run
    starts it after."""
    h = images
    img_ok(h, "load", busybox_archive, IMAGE)
    name = "running"

    def judge(step: int, run: subprocess.CompletedProcess[str], r: subprocess.CompletedProcess[str]) -> str:
        time.sleep(0.3)
        status = status_of(h, name)
        if r.returncode != 0:  # none yet: the run comes after it
            if "does not exist" not in r.stderr and "running" not in r.stderr:
                return f"then {status}"
            if run.returncode != 0 or status != "running":
                return f"then {status}"
        elif other == "rm" and (status != "gone" or run.returncode == 0):
            return f"rm said yes, the container {status}"
        return ""

    held_at_each_step(h, ["--root", h.root, "--image-root", h.image_root,
                          *run_args(h, "-d", "--name", name, IMAGE, "sleep", "30")], lambda: None,
                      [other, "-t", "1", name] if other == "stop" else [other, name], judge,
                      lambda: img(h, "rm", "--force", name))


@pytest.mark.parametrize("other", ["pause", "unpause"])
@pytest.mark.parametrize("images", ["cold"], indirect=True)
def test_pause_or_unpause_at_each_step_of_a_stop(images, busybox_archive, other):
    """`stop -t 1` of a running container (paused, for `unpause`) held before each of its changes
    in turn while `pause` (`unpause`) runs: the stop ends the container whatever the other did,
    and leaves no frozen cgroup; the other says yes or no in one line. (A frozen container's
    processes take no signal until thawed.)"""
    h = images
    img_ok(h, "load", busybox_archive, IMAGE)
    name = "stopping"

    def running() -> None:
        img_ok(h, *run_args(h, "-d", "--name", name, IMAGE, "sleep", "30"))
        if other == "unpause":
            img_ok(h, "pause", name)

    def judge(step: int, stop: subprocess.CompletedProcess[str], r: subprocess.CompletedProcess[str]) -> str:
        status = status_of(h, name)
        if stop.returncode != 0 or status != "stopped":
            return f"then {status}"
        if r.returncode != 0 and len(r.stderr.strip().splitlines()) != 1:
            return "the other's refusal"
        return ""

    held_at_each_step(h, ["--root", h.root, "--image-root", h.image_root, "stop", "-t", "1", name], running,
                      [other, name], judge, lambda: img(h, "rm", "--force", name))


@pytest.mark.parametrize("images", ["cold"], indirect=True)
def test_network_rm_at_each_step_of_a_detached_run_on_it(net):  # noqa: F811 - the fixture
    """`run -d --network NET` held before each of its changes in turn while `network rm NET`
    runs: the rm is refused once the run has the network (a container is attached), or removes
    it first and the run says in one line that there is no such network, leaving nothing; never
    a container running on a network that is gone."""
    h = net
    h.base_env.update(h.env)
    name = "attaching"

    def network() -> None:
        if img(h, "network", "inspect", h.net).returncode != 0:
            img_ok(h, "network", "create", h.net)

    def judge(step: int, run: subprocess.CompletedProcess[str], r: subprocess.CompletedProcess[str]) -> str:
        status = status_of(h, name)
        there = img(h, "network", "inspect", h.net).returncode == 0
        if r.returncode == 0:  # removed first: the run must not have it
            if run.returncode == 0 or status != "gone" or there:
                return f"rm said yes, the container {status}"
        elif run.returncode != 0 or status != "running" or not there:
            return f"rm said no, the container {status}, the network {'there' if there else 'gone'}"
        return ""

    held_at_each_step(h, ["--root", h.root, "--image-root", h.image_root,
                          *run_args(h, "-d", "--name", name, "--network", h.net, IMAGE, "sleep", "30")], network,
                      ["network", "rm", h.net], judge, lambda: img(h, "rm", "--force", name))


@pytest.mark.parametrize("other", ["system prune", "rmi"])
@pytest.mark.parametrize("images", ["cold"], indirect=True)
def test_prune_or_rmi_at_each_step_of_a_detached_run(images, busybox_archive, other):
    """`run -d` held before each of its changes in turn while `system prune` (or `rmi IMAGE`)
    runs. A prune takes only what killed commands left, never a run in progress: the run goes
    on and its container runs. An rmi is refused while a container uses the image, or removes it
    before the run takes it, and the run then says so in one line."""
    h = images
    name = "running"

    def loaded() -> None:
        if img(h, "image", "inspect", IMAGE).returncode != 0:
            img_ok(h, "load", busybox_archive, IMAGE)

    def judge(step: int, run: subprocess.CompletedProcess[str], r: subprocess.CompletedProcess[str]) -> str:
        status = status_of(h, name)
        if other == "system prune":
            if r.returncode != 0 or run.returncode != 0 or status != "running":
                return f"then {status}"
        elif r.returncode == 0:  # the image went first: the run refused
            if run.returncode == 0 or status != "gone":
                return f"rmi said yes, the container {status}"
        elif run.returncode != 0 or status != "running":
            return f"rmi said no, the container {status}"
        return ""

    loaded()
    held_at_each_step(h, ["--root", h.root, "--image-root", h.image_root,
                          *run_args(h, "-d", "--name", name, IMAGE, "sleep", "30")], loaded,
                      [*other.split(), IMAGE] if other == "rmi" else other.split(), judge,
                      lambda: img(h, "rm", "--force", name))


def what_it_made(h, kind: str, said: subprocess.CompletedProcess[str], made: str, archive: str, copied: str,
                 whole: str) -> str:
    """What is wrong with what a `commit` (an `export -o`, a `cp` out) of a container holding
    /data/f1..f50 left, having said yes or no: the whole image (archive, copy), or none of it."""
    if kind == "commit" and said.returncode == 0:
        ran = img(h, *run_args(h, "--rm", made, "sh", "-c", "ls /data | wc -l; ls /bin | wc -l"))
        if ran.returncode != 0 or ran.stdout != f"50\n{whole}\n":
            return f"the committed image: {ran.returncode} {ran.stdout!r} {ran.stderr.strip()!r}"
    elif kind == "commit" and img(h, "image", "inspect", made).returncode == 0:
        return "said no, and made the image"
    elif kind == "export" and said.returncode == 0:
        with tarfile.open(archive) as tar:
            names = tar.getnames()
        if len([n for n in names if n.startswith("data/f")]) != 50 or \
                len([n for n in names if n.startswith("bin/")]) != int(whole):
            return f"the archive: {len(names)} names"
    elif kind == "export" and os.path.exists(archive):
        return "said no, and left its archive"
    elif kind == "cp" and said.returncode == 0 and len(os.listdir(copied)) != 50:
        return f"the copy: {len(os.listdir(copied))} names"
    elif kind == "cp" and said.returncode != 0 and os.path.exists(copied):
        return "said no, and left a copy"
    return ""


@pytest.mark.parametrize("rm_held", [False, True], ids=["reader-held", "rm-held"])
@pytest.mark.parametrize("reader", ["commit", "export", "cp"])
@pytest.mark.parametrize("images", ["cold"], indirect=True)
def test_rm_force_at_each_step_of_a_commit_or_an_export(images, busybox_archive, reader, rm_held):
    """`commit` of a running container (`export` of it, `cp` out of a stopped one) held before each of its
    changes in turn while `rm -f` removes the container, and the converse (`rm -f` held while the
    other runs): the rm goes through; the commit, export or copy says yes and made the whole
    image (archive, copy), or says no in one line and made none. The rm took the container's
    files while they were read: the commit made an image of what was left and said no (the
    container was gone when it resumed it), the export said yes with an empty archive."""
    h = images
    img_ok(h, "load", busybox_archive, IMAGE)
    name, made = "busy", "localhost/made:1"
    archive, copied = os.path.join(h.tmp, "out.tar"), os.path.join(h.tmp, "copied-out")

    def running() -> None:
        img(h, "rmi", made)
        if os.path.exists(archive):
            os.unlink(archive)
        subprocess.run(["rm", "-rf", copied], check=True)
        fill = "mkdir /data; for i in $(seq 50); do echo $i > /data/f$i; done"
        if reader == "cp" and not rm_held:  # a stopped one's: its files are its rootfs (a running one's: through it)
            img_ok(h, *run_args(h, "-d", "--name", name, IMAGE, "sh", "-c", fill))
            img_ok(h, "wait", name)
        else:
            img_ok(h, *run_args(h, "-d", "--name", name, IMAGE, "sh", "-c", f"{fill}; exec sleep 30"))
            while img(h, "exec", name, "test", "-e", "/data/f50").returncode != 0:
                time.sleep(0.05)

    def judge(step: int, held: subprocess.CompletedProcess[str], r: subprocess.CompletedProcess[str]) -> str:
        rm, read = (held, r) if rm_held else (r, held)
        status = status_of(h, name)
        if rm.returncode != 0 or status != "gone":
            return f"then {status}"
        if read.returncode != 0 and len(read.stderr.strip().splitlines()) != 1:
            return "a refusal not in one line"
        return what_it_made(h, reader, read, made, archive, copied, whole)

    whole = img_ok(h, *run_args(h, "--rm", IMAGE, "sh", "-c", "ls /bin | wc -l")).stdout.strip()
    verb = {"commit": ["commit", name, made], "export": ["export", "-o", archive, name],
            "cp": ["cp", f"{name}:/data", copied]}[reader]
    rm = ["rm", "--force", name]
    held_at_each_step(h, ["--root", h.root, "--image-root", h.image_root, *(rm if rm_held else verb)], running,
                      verb if rm_held else rm, judge, lambda: (img(h, "rm", "--force", name), img(h, "rmi", made)),
                      match=("copied-out",))


@pytest.mark.parametrize("images", ["cold"], indirect=True)
def test_volume_rm_at_each_step_of_a_run_mounting_it(images, busybox_archive):
    """`run -d -v NAME:/data` held before each of its changes in turn while `volume rm NAME`
    runs: the rm is refused once the run holds the volume (in use), or removes it first and the
    run makes it anew (docker's: a named volume that does not exist is made); either way what
    the container writes in /data is in the volume the store names, never in a removed directory."""
    h = images
    img_ok(h, "load", busybox_archive, IMAGE)
    name, volume = "mounting", "shared"

    def made() -> None:
        if img(h, "volume", "inspect", volume).returncode != 0:
            img_ok(h, "volume", "create", volume)

    def judge(step: int, run: subprocess.CompletedProcess[str], r: subprocess.CompletedProcess[str]) -> str:
        status = status_of(h, name)
        if run.returncode != 0 or status != "running":
            return f"then {status}"
        if r.returncode != 0 and "in use" not in r.stderr:
            return "refused, not for its use"
        img_ok(h, "exec", name, "touch", "/data/probe")
        where = json.loads(img_ok(h, "volume", "inspect", volume).stdout)[0]["mountpoint"]
        if not os.path.exists(os.path.join(where, "probe")):
            return "the container writes where the volume is not"
        return ""

    made()
    held_at_each_step(h, ["--root", h.root, "--image-root", h.image_root,
                          *run_args(h, "-d", "--name", name, "-v", f"{volume}:/data", IMAGE, "sleep", "30")], made,
                      ["volume", "rm", volume], judge, lambda: img(h, "rm", "--force", name))
    img_ok(h, "volume", "rm", volume)


LIMIT = "cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes"


@pytest.mark.parametrize("images", ["cold"], indirect=True)
def test_update_at_each_step_of_a_docker_start(images, busybox_archive):
    """docker's `start` held before each of its changes in turn while `update --memory 64m`
    runs: the container runs with the new limit, whichever came first. The update found it
    stopped, wrote the limit for its next start, and the start under way had read the old one:
    it ran without the limit the update had said yes to."""
    h = images
    img_ok(h, "load", busybox_archive, IMAGE)
    name = "limited"

    def judge(step: int, start: subprocess.CompletedProcess[str], r: subprocess.CompletedProcess[str]) -> str:
        if start.returncode != 0 or r.returncode != 0 or status_of(h, name) != "running":
            return f"then {status_of(h, name)}"
        limit = img_ok(h, "exec", name, "sh", "-c", LIMIT).stdout.strip()
        return "" if limit == str(64 << 20) else f"running with a memory limit of {limit}"

    held_at_each_step(h, ["--root", h.root, "--image-root", h.image_root, "start", name], lambda: exited(h, name),
                      ["update", "--memory", "64m", name], judge, lambda: img(h, "rm", "--force", name))


@pytest.mark.parametrize("other", ["image prune -f", "image prune -a -f", "rmi"])
@pytest.mark.parametrize("images", ["cold"], indirect=True)
def test_prune_or_rmi_at_each_step_of_a_commit(images, busybox_archive, other):
    """`commit` of a running container held before each of its changes in turn while `image
    prune` (`-a`; `rmi` of the image the container was made from, refused) runs: the commit says
    yes and its image runs with the container's changes (or `-a`, after it, untagged it: no
    container uses it). A prune took the new layer's blob, stored before the store's lock, and
    the commit failed on "No such file or directory"."""
    h = images
    name, made = "committed", "localhost/made:1"

    def running() -> None:
        img(h, "rmi", made)
        if img(h, "image", "inspect", IMAGE).returncode != 0:
            img_ok(h, "load", busybox_archive, IMAGE)
        img_ok(h, *run_args(h, "-d", "--name", name, IMAGE, "sh", "-c", "echo hi > /file; exec sleep 30"))
        while img(h, "exec", name, "test", "-e", "/file").returncode != 0:
            time.sleep(0.05)

    def judge(step: int, commit: subprocess.CompletedProcess[str], r: subprocess.CompletedProcess[str]) -> str:
        if commit.returncode != 0:  # the container runs on, and its image stays: nothing to refuse
            return "the commit failed"
        if "-a" in other and not listed(h, made) and made in r.stdout:
            return ""  # made, then untagged by the prune that came after it: no container uses it
        ran = img(h, *run_args(h, "--rm", made, "sh", "-c", "cat /file; ls /bin | wc -l"))
        if ran.returncode != 0 or ran.stdout != f"hi\n{whole}\n":
            return f"the committed image: {ran.returncode} {ran.stdout!r} {ran.stderr.strip()!r}"
        if other == "rmi" and r.returncode == 0 and img(h, "image", "inspect", IMAGE).returncode == 0:
            return "rmi said yes, and the image is there"
        return ""

    img_ok(h, "load", busybox_archive, IMAGE)
    whole = img_ok(h, *run_args(h, "--rm", IMAGE, "sh", "-c", "ls /bin | wc -l")).stdout.strip()
    held_at_each_step(h, ["--root", h.root, "--image-root", h.image_root, "commit", name, made], running,
                      [*other.split(), *([IMAGE] if other == "rmi" else [])], judge,
                      lambda: (img(h, "rm", "--force", name), img(h, "rmi", made)))


@pytest.mark.parametrize("images", ["cold"], indirect=True)
def test_image_prune_at_each_step_of_a_load(images, busybox_archive):
    """`load` held before each of its changes in turn while `image prune` (and `system prune`)
    runs: the load says yes and its image runs, or says no in one line and lists none; a prune
    never takes what the load wrote for the image it is making."""
    h = images

    def unloaded() -> None:
        img(h, "rmi", IMAGE)
        img(h, "image", "prune", "-f")

    def judge(step: int, load: subprocess.CompletedProcess[str], r: subprocess.CompletedProcess[str]) -> str:
        if load.returncode == 0:
            ran = img(h, *run_args(h, "--rm", IMAGE, "echo", "whole"))
            if ran.returncode != 0 or ran.stdout != "whole\n":
                return f"the loaded image: {ran.returncode} {ran.stdout!r} {ran.stderr.strip()!r}"
        elif listed(h, IMAGE):
            return "said no, and listed the image"
        return "" if r.returncode == 0 else "the prune failed"

    held_at_each_step(h, ["--root", h.root, "--image-root", h.image_root, "load", busybox_archive, IMAGE], unloaded,
                      ["system", "prune", "-f"], judge, lambda: img(h, "rmi", IMAGE))


@pytest.mark.parametrize("images", ["cold"], indirect=True)
def test_image_prune_at_each_step_of_a_pull(images, registry):  # noqa: F811 - the fixture
    """`pull` held before each of its changes in turn while `image prune` runs: the pull says
    yes and its image runs. A pull downloads its blobs before it takes the store's lock (the
    download may be long): a prune between took them for blobs no image uses, and the pull then
    asked the registry for a layer as a manifest ("manifest unknown")."""
    h = images
    ref = registry.refs["busybox"]

    def unpulled() -> None:
        img(h, "rmi", ref)
        img(h, "image", "prune", "-f")

    def judge(step: int, pull: subprocess.CompletedProcess[str], r: subprocess.CompletedProcess[str]) -> str:
        if pull.returncode != 0:
            return "the pull failed"
        ran = img(h, *run_args(h, "--rm", ref, "echo", "whole"))
        if ran.returncode != 0 or ran.stdout != "whole\n":
            return f"the pulled image: {ran.returncode} {ran.stdout!r} {ran.stderr.strip()!r}"
        return "" if r.returncode == 0 else "the prune failed"

    held_at_each_step(h, ["--root", h.root, "--image-root", h.image_root, "pull", "--creds", CREDS, ref], unpulled,
                      ["image", "prune", "-f"], judge, lambda: img(h, "rmi", ref))


@pytest.mark.parametrize("images", ["cold"], indirect=True)
def test_rm_force_waits_for_a_stuck_export_only_so_long(images, busybox_archive):
    """`export` into a pipe nobody reads holds the container's files for good: `rm -f` waits for
    it a while (bundles.READERS_SETTLE), then removes the container; the export, once it can
    write again, says the container was removed while it was exported, as it got only part."""
    h = images
    img_ok(h, "load", busybox_archive, IMAGE)
    img_ok(h, *run_args(h, "-d", "--name", "big", IMAGE, "sh", "-c", "head -c 1048576 /dev/urandom > /blob; sleep 60"))
    while img(h, "exec", "big", "test", "-s", "/blob").returncode != 0:
        time.sleep(0.1)
    export = subprocess.Popen([h.binary, "--root", h.root, "--image-root", h.image_root, "export", "big"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, **h.base_env})
    try:
        time.sleep(1)  # its pipe full: the export waits to write
        assert export.poll() is None
        r = img(h, "rm", "--force", "big")
        assert r.returncode == 0 and status_of(h, "big") == "gone", r.stderr
        out, err = export.communicate(timeout=60)
        assert export.returncode == 1 and err.decode().strip() == \
            "mrun: export: container 'big' was removed while it was exported", (export.returncode, err)
    finally:
        export.kill()
        export.wait()


def held_at_a_call(h, argv: list[str], path: str, call: str = "openat", seconds: float = 2,
                   when: int = 1) -> subprocess.Popen:
    """mrun ``argv`` (cold) under strace, its ``when``-th ``call`` on ``path`` delayed ``seconds``;
    returned once that call has begun (strace logs it unfinished): the race is open for the rest."""
    log = os.path.join(h.tmp, f"strace-{time.monotonic_ns()}.log")
    proc = subprocess.Popen(["strace", "-o", log, "-P", path, "-e", f"trace={call}",
                             "-e", f"inject={call}:delay_enter={int(seconds * 1e6)}:when={when}",
                             h.binary, "--root", h.root, "--image-root", h.image_root, *argv],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **h.base_env, "MRUN_WARM": "0"})
    deadline = time.monotonic() + 30
    while (open(log).read() if os.path.exists(log) else "").count(f"{call}(") < when:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"{argv}: never reached {call} on {path}: {proc.communicate()}")
        time.sleep(0.01)
    return proc


@pytest.mark.parametrize("images", ["cold"], indirect=True)
def test_rm_force_waits_for_a_diff_reading_the_containers_changes(images, busybox_archive):
    """`diff` held (strace) as it opens the container's upper directory while `rm -f` runs: the
    rm took the directory from under it, and the diff failed (or listed what was left) where an
    export or a commit is waited for. It is a reader as they are now: the rm waits, and the diff
    lists every change."""
    require("strace", "strace")
    h = images
    img_ok(h, "load", busybox_archive, IMAGE)
    img_ok(h, *run_args(h, "-d", "--name", "changed", IMAGE, "sh", "-c",
                        "mkdir /data; for i in $(seq 20); do echo $i > /data/f$i; done; exec sleep 60"))
    while img(h, "exec", "changed", "test", "-e", "/data/f20").returncode != 0:
        time.sleep(0.05)
    upper = os.path.join(h.image_root, "containers", "changed", "upper")
    assert os.path.isdir(upper)
    diff = held_at_a_call(h, ["diff", "changed"], upper)
    try:
        r = img(h, "rm", "--force", "changed")
        assert r.returncode == 0 and status_of(h, "changed") == "gone", r.stderr
        out, err = diff.communicate(timeout=60)
        assert diff.returncode == 0, err
        assert len([line for line in out.splitlines() if line.startswith("A /data/f")]) == 20, out
    finally:
        if diff.poll() is None:
            diff.kill()
            diff.wait()
        img(h, "rm", "--force", "changed")


@pytest.mark.parametrize("images", ["cold"], indirect=True)
@pytest.mark.parametrize("remover", [["rmi"], ["image", "prune", "-a", "-f"]], ids=["rmi", "image prune -a"])
@pytest.mark.parametrize("reader", ["save", "push"])
def test_an_image_removed_while_it_is_saved_or_pushed(images, busybox_archive, registry, reader,  # noqa: F811
                                                      remover):
    """`save` or `push` held (strace) as it opens the image's layer while `rmi` or `image prune
    -a` runs: the removal took the blob from under it, and the save or push failed half done.
    As docker's do, the removal goes on at once (the image is untagged) and the reader reads the
    whole image: what it reads stays until it is done, and the next prune takes it."""
    require("strace", "strace")
    h = images
    img_ok(h, "load", busybox_archive, IMAGE)
    entry = json.loads(img_ok(h, "images", "--format", "json").stdout)[0]
    blobs = os.path.join(h.image_root, "blobs", "sha256")
    with open(os.path.join(blobs, entry["manifest"].removeprefix("sha256:"))) as f:
        layer = os.path.join(blobs, json.load(f)["layers"][0]["digest"].removeprefix("sha256:"))
    archive, dest = os.path.join(h.tmp, "saved.tar"), f"{registry.host}/mrun/held-{reader}-{remover[-1]}:1"
    argv = ["save", "-o", archive, IMAGE] if reader == "save" else ["push", "--creds", CREDS, IMAGE, dest]
    held = held_at_a_call(h, argv, layer, when=2)  # the first: where it takes hold of it (``leases``)
    try:
        r = img(h, *remover, *([IMAGE] if remover == ["rmi"] else []))
        assert r.returncode == 0 and img_ok(h, "images", "-q").stdout == "", r.stderr
        out, err = held.communicate(timeout=60)
        assert held.returncode == 0 and err == "", err
    finally:
        if held.poll() is None:
            held.kill()
            held.wait()
    other = os.path.join(h.tmp, "other")
    got = h.mrun("--image-root", other, *(["load", "-i", archive] if reader == "save" else
                                          ["pull", "--creds", CREDS, dest]))
    assert got.returncode == 0, got.stderr
    ran = h.mrun("--image-root", other, *run_args(h, "--rm", IMAGE if reader == "save" else dest,
                                                  "echo", "whole"))
    assert ran.returncode == 0 and ran.stdout == "whole\n", ran.stderr
    assert h.mrun("--image-root", other, "system", "prune", "-a", "-f").returncode == 0
    img_ok(h, "image", "prune", "-f")  # what the reader kept goes now
    assert os.listdir(blobs) == [] and os.listdir(os.path.join(h.image_root, "layers")) == []
    assert image_leftovers(h) == []


@pytest.mark.parametrize("verb, again", [("connect", "disconnect"), ("connect", "connect"),
                                         ("disconnect", "disconnect")])
@pytest.mark.parametrize("images", ["warm"], indirect=True)  # the killed verb runs cold; the rest warm
def test_network_connect_and_disconnect_killed_before_each_change(net, verb, again):  # noqa: F811 - the fixture
    """`network connect` (or `disconnect`) of a running container, killed before each of its
    changes (its plan, its lease, its veth's netlink, the others' /etc/hosts, its bundle's
    config): the user's next `network disconnect` of that network takes every trace of it off
    that network (a lease a kill left unnamed by any plan too), and the others' files with it;
    or their next `network connect` finishes it (what the killed one made undone first: it
    said "File exists" of its own half-made pair, and left a second address held)."""
    from mrun.network.attach import more_veth
    from mrun.network.store import Networks

    h = net
    other = h.net + "k"
    img_ok(h, "network", "create", other, env=h.env)
    img_ok(h, *run_args(h, "-d", "--name", "holder", "--network", other, IMAGE, "sleep", "600"), env=h.env)
    root = h.env["MRUN_NETWORK_ROOT"]
    current = [""]

    def argv(step: int) -> list[str]:
        cid = current[0] = f"k{verb[0]}{step}"
        networks = [h.net, other] if verb == "disconnect" else [h.net]
        img_ok(h, *run_args(h, "-d", "--name", cid, *[f"--network={n}" for n in networks], IMAGE, "sleep", "600"),
               env=h.env)
        return ["--root", h.root, "--image-root", h.image_root, "network", verb, other, cid]

    def repair(_step: int) -> None:
        r = img(h, "network", again, other, current[0], env=h.env)
        assert "Traceback" not in r.stderr, r.stderr
        if again == "connect":
            assert r.returncode == 0 or "already on network" in r.stderr, r.stderr

    def left() -> list[str]:
        cid = current[0]
        held = [ip for ip, owner in Networks(root).leases(other).items() if owner.get("container") == cid]
        on = again == "connect"  # connected once, whole: one address, its pair, its plan, its line
        found = [f"leases {held}"] if len(held) != int(on) else []
        if os.path.exists(f"/sys/class/net/{more_veth(h.root, cid, other)}") != on:
            found.append(f"its veth on the network {'missing' if on else 'left'}")
        if os.path.exists(os.path.join(h.root, cid, f"net-{other}.json")) != on:
            found.append(f"its plan {'missing' if on else 'left'}")
        if (f"\t{cid}\t" in img_ok(h, "exec", "holder", "cat", "/etc/hosts", env=h.env).stdout) != on:
            found.append(f"its line in another's /etc/hosts {'missing' if on else 'left'}")
        img_ok(h, "rm", "-f", cid, env=h.env)
        return found

    try:
        steps = kill_at_each_step(argv, [h.tmp, "socket family 16"], repair, left, env=h.env)
        assert steps > 5
        shown = img_ok(h, "exec", current[0], "ip", "-4", "-o", "addr", env=h.env).stdout
        assert ("eth1" in shown) == (verb == "connect"), shown  # the unkilled one did its work
    finally:
        img(h, "rm", "-f", "holder", current[0], env=h.env)
        img(h, "network", "rm", other, env=h.env)


@pytest.mark.parametrize("verb", ["first", "only", "connect"])
@pytest.mark.parametrize("images", ["warm"], indirect=True)  # the killed verb runs cold; the rest warm
def test_a_first_network_s_disconnect_and_the_next_connect_killed_before_each_change(net, verb):  # noqa: F811
    """`network disconnect` of a running container's first network, where its other network
    takes that part ("first": its plan, its published port's reservation and rules, its default
    route, its own /etc/hosts line); of its only network ("only": it keeps lo alone, its port
    unpublished); and the `network connect` that gives it a first network again ("connect"). Each
    killed before each change: the user's next same verb finishes the work (or says there is
    nothing left to do), and `rm -f` then leaves nothing."""
    from mrun import jsonio
    from mrun.network.store import Networks, veth_name

    h = net
    other = h.net + "o"
    img_ok(h, "network", "create", other, env=h.env)
    gateway = json.loads(img_ok(h, "network", "inspect", other, env=h.env).stdout)["gateway"]
    root = h.env["MRUN_NETWORK_ROOT"]
    port = free_port_run(1)
    reservation = os.path.join(root, "ports", f"udp-127.0.0.1-{port}")
    action, target = ("connect", other) if verb == "connect" else ("disconnect", h.net)
    current = [""]

    def argv(step: int) -> list[str]:
        cid = current[0] = f"k{verb[0]}{step}"
        networks = [h.net, other] if verb == "first" else [h.net]
        img_ok(h, *run_args(h, "-d", "--name", cid, *[f"--network={n}" for n in networks], "-p",
                            f"127.0.0.1:{port}:80/udp", IMAGE, "sleep", "600"), env=h.env)
        if verb == "connect":
            img_ok(h, "network", "disconnect", h.net, cid, env=h.env)
        return ["--root", h.root, "--image-root", h.image_root, "network", action, target, cid]

    def repair(_step: int) -> None:
        r = img(h, "network", action, target, current[0], env=h.env)
        assert "Traceback" not in r.stderr and (r.returncode == 0 or "not connected" in r.stderr
                                                or "already on network" in r.stderr), r.stderr

    def left() -> list[str]:
        cid = current[0]
        found = []
        held = {name: [ip for ip, owner in Networks(root).leases(name).items() if owner.get("container") == cid]
                for name in (h.net, other)}
        plan = jsonio.load_object(os.path.join(h.root, cid, "net.json")) or {}
        route = img_ok(h, "exec", cid, "ip", "route", env=h.env).stdout
        own = [line for line in img_ok(h, "exec", cid, "cat", "/etc/hosts").stdout.splitlines()
               if line.endswith(f"\t{cid}")]
        if held[h.net] or os.path.exists(f"/sys/class/net/{veth_name(h.root, cid)}"):
            found.append("its address or veth on the network it left")
        if os.path.exists(os.path.join(h.root, cid, f"net-{other}.json")):
            found.append("a plan of the other network as one of its others")
        if verb == "only":
            if plan or route or own or os.path.exists(reservation) or f"dport {port} " in nft_rules():
                found.append(f"of its network: plan {plan}, routes {route!r}, {own}, its published port")
        else:  # on the other network as its first
            ip = plan.get("ip")
            if plan.get("network") != other or not plan.get("promoted") or held[other] != [ip]:
                found.append(f"its plan {plan}, its addresses {held}")
            if f"default via {gateway} " not in route or own != [f"{ip}\t{cid}"]:
                found.append(f"its routes {route!r}, its own line {own}")
            if nft_rules().count(f"dport {port} dnat to {ip}:80 ") != 2 or not os.path.exists(reservation):
                found.append("its published port")
        img_ok(h, "rm", "-f", cid, env=h.env)
        if f"dport {port} " in nft_rules() or os.path.exists(reservation) or leases(h) or Networks(root).leases(other):
            found.append("what it held, once removed")
        return found

    try:
        assert kill_at_each_step(argv, [h.tmp, "socket family 16"], repair, left, env=h.env) > 3
    finally:
        img(h, "rm", "-f", current[0], env=h.env)
        img(h, "network", "rm", other, env=h.env)

"""podman drives mrun as its OCI runtime (`podman --runtime mrun`), with its own storage, run
root, cgroup parent and no network, all private to the test.

podman calls its runtime without our environment, and its clean-up (`podman container cleanup`,
run by conmon) without the global flags of `--runtime-flag`: left alone, mrun would keep these
containers' state in the node's /run/mrun and ask the node's warm template. So the runtime
podman runs is a two-line script that pins both to the test's own, then execs mrun.

This host has no CAP_SYS_RESOURCE and a hard RLIMIT_NOFILE of 20000, while podman as root asks
for higher rlimits by default: runc fails the same way, so the tests pass --ulimit within them.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import time
import uuid

import pytest
from conftest import IMAGE, cgroup_dirs, mrun_binary, open_to_others, processes_mentioning, require

ULIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]


def _rmdir_once_empty(path: str) -> None:
    """podman's conmon (in a cgroup of its own under the test's parent) outlives `podman rm -f`
    by a moment: its cgroup is busy until it has exited. Ours (mrun's) are gone by then."""
    deadline = time.monotonic() + 10
    while True:
        try:
            os.rmdir(path)
            return
        except OSError as e:
            if e.errno != errno.EBUSY or time.monotonic() > deadline or "conmon" not in path:
                raise
            time.sleep(0.05)


@pytest.fixture(scope="module")
def podman(tmp_path_factory, busybox_archive):
    require("podman", "podman")
    require("conmon", "conmon")
    work = tmp_path_factory.mktemp("podman")
    tag = f"mrun-test-{uuid.uuid4().hex[:8]}"
    runtime = work / "mrun-runtime"
    runtime.write_text(f"#!/bin/sh\nMRUN_WARM_DIR='{os.environ['MRUN_WARM_DIR']}' "
                       f"exec '{mrun_binary()}' --root '{work / 'state'}' \"$@\"\n")
    runtime.chmod(0o755)
    base = [
        "podman",
        "--root",
        str(work / "root"),
        "--runroot",
        str(work / "runroot"),
        "--storage-driver",
        "vfs",
        "--cgroup-manager",
        "cgroupfs",
        "--events-backend",
        "file",
        "--runtime",
        str(runtime),
    ]

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        r = subprocess.run([*base, *args], capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
        if check:
            assert r.returncode == 0, f"podman {' '.join(args)}: {r.stderr}"
        return r

    run("load", "-i", busybox_archive)
    yield run, tag, work / "state"
    run("rm", "-a", "-f", check=False)
    left = cgroup_dirs(f"/{tag}")
    for d in sorted(left, key=len, reverse=True):
        for sub, _dirs, _files in sorted(os.walk(d, topdown=False), key=lambda x: -len(x[0])):
            _rmdir_once_empty(sub)
    state_left = [e for e in os.listdir(work / "state") if not e.startswith(".")] if (work / "state").is_dir() else []
    shutil.rmtree(work, ignore_errors=True)
    assert not processes_mentioning(str(work)), "podman left processes behind"
    assert not state_left, f"container state left behind: {state_left}"


def test_podman_run_rm(podman):
    run, tag, _state = podman
    r = run(
        "run",
        "--rm",
        "--network",
        "none",
        "--cgroup-parent",
        f"/{tag}",
        *ULIMITS,
        IMAGE,
        "sh",
        "-c",
        "echo hello from podman; grep Seccomp: /proc/self/status; cat /sys/class/net/lo/flags; exit 3",
        check=False,
    )
    assert r.returncode == 3, r.stderr
    # podman's seccomp profile applied; lo up in the namespace --network none leaves to the runtime (runc's 0x9)
    assert r.stdout.splitlines() == ["hello from podman", "Seccomp:\t2", "0x9"]


def test_podman_run_as_a_user_opens_its_streams_again(podman):
    """conmon hands the runtime pipes of root's; runc makes them the process's user's, so a
    container running as 1000 writes `echo > /dev/stdout`. Under mrun it was refused (EACCES)."""
    run, tag, _state = podman
    r = run("run", "--rm", "--network", "none", "--cgroup-parent", f"/{tag}", *ULIMITS, "--user", "1000:1000", IMAGE,
            "sh", "-c", "echo out > /dev/stdout && echo err > /dev/stderr")
    assert (r.stdout, r.stderr) == ("out\n", "err\n"), r


def test_podman_detached_exec_kill_rm(podman):
    run, tag, state = podman
    name = f"c{uuid.uuid4().hex[:6]}"
    run("run", "-d", "--name", name, "--network", "none", "--cgroup-parent", f"/{tag}", *ULIMITS, IMAGE, "sleep", "600")
    cid = run("inspect", "--format", "{{.Id}}", name).stdout.strip()
    assert os.path.isdir(state / cid), "the container's state is not in the test's own root"
    assert not os.path.exists(f"/run/mrun/{cid}")
    assert run("exec", name, "cat", "/proc/1/cmdline").stdout.replace("\0", " ").strip() == "sleep 600"
    assert "Up" in run("ps", "--filter", f"name={name}").stdout
    run("kill", name)
    run("rm", name)
    left = {e for d in cgroup_dirs(f"/{tag}") for e in os.listdir(d) if os.path.isdir(os.path.join(d, e))}
    assert not left - {"conmon"}, left  # "conmon" is podman's own cgroup for its monitor, not mrun's


def test_podman_uidmap_with_an_idmap_volume(podman, tmp_path):
    """podman --uidmap, and a volume with its :idmap option (passed to the runtime as the mount's
    "idmap" option, no mappings: the container's, runtime-spec 1.2): the volume's root-owned file
    is the container's root's; without :idmap it is the overflow id. mrun ignored the option
    (both showed 65534)."""
    run, tag, _state = podman
    volume = tmp_path / "volume"
    volume.mkdir()
    (volume / "zero").write_text("0")
    open_to_others(str(tmp_path))  # the mapped root reaches the volume (pytest's directories are 0700)
    seen = {}
    for option in (":idmap", ""):
        seen[option] = run("run", "--rm", "--network", "none", "--cgroup-parent", f"/{tag}", *ULIMITS,
                           "--uidmap", "0:100000:65536", "--gidmap", "0:100000:65536", "-v", f"{volume}:/vol{option}",
                           IMAGE, "sh", "-c", "sed -n 1p /proc/self/uid_map; stat -c %u:%g /vol/zero").stdout.split()
    assert seen == {":idmap": ["0", "100000", "65536", "0:0"], "": ["0", "100000", "65536", "65534:65534"]}, seen


def test_podman_run_with_a_host_device(podman):
    """`podman run --device HOST:CONTAINER`: podman writes the host node's st_mode as the device's
    fileMode (S_IFCHR included), which mrun refused ("must be a file mode from 0 to 0o7777")."""
    run, tag, _state = podman
    out = run("run", "--rm", "--network", "none", "--cgroup-parent", f"/{tag}", *ULIMITS, "--device",
              "/dev/null:/dev/probe", IMAGE, "sh", "-c", "echo hi > /dev/probe && echo wrote; ls -l /dev/probe").stdout
    assert out.splitlines()[0] == "wrote" and out.splitlines()[1].startswith("crw-rw-rw-"), out


def test_podman_run_with_a_personality(podman):
    """`podman run --personality LINUX32` (linux.personality, runc 1.2 applies it): refused by mrun."""
    run, tag, _state = podman
    out = run("run", "--rm", "--network", "none", "--cgroup-parent", f"/{tag}", *ULIMITS, "--personality", "LINUX32",
              IMAGE, "uname", "-m").stdout
    assert out.strip() == "i686", out


def test_podman_run_systemd_mode(podman):
    """`podman run --systemd always` (an image whose command is systemd's init runs so by default):
    on a cgroup v1 host podman binds systemd's hierarchy over the container's
    /sys/fs/cgroup/systemd, which mrun never made (mrun: "Read-only file system")."""
    run, tag, _state = podman
    out = run("run", "--rm", "--network", "none", "--cgroup-parent", f"/{tag}", *ULIMITS, "--systemd", "always",
              IMAGE, "sh", "-c", "echo ran; mount | grep -c ' /run '").stdout
    assert out.split()[0] == "ran", out


def test_a_program_that_cannot_run_gets_podmans_exit_code_as_under_runc(podman):
    """podman turns its runtime's words into exit codes (docker's): 127 for a program not found,
    126 for one that cannot be run, 255 for any other failure. An explicit path that is missing, or
    is a directory, got mrun's "executable file not found" (written for a bare name along PATH):
    podman answered 255 to `exec` of either and 127 to `run` of a directory, where with runc
    (Go's exec.LookPath words: "stat PATH: no such file or directory", "permission denied") it
    answers 127 and 126. Side by side, `podman exec` and `podman run`, each runtime."""
    run, tag, _state = podman
    codes: dict[str, list[tuple[str, int]]] = {}
    for runtime in ("mrun", "runc"):
        chosen = ["--runtime", "runc"] if runtime == "runc" else []  # the later --runtime wins
        name = f"c{uuid.uuid4().hex[:6]}"
        run(*chosen, "run", "-d", "--name", name, "--network", "none", "--cgroup-parent", f"/{tag}", *ULIMITS,
            IMAGE, "sleep", "600")
        try:
            for cmd in ("/nope", "/", "./bin", "bin/", "nope", "/etc/passwd"):
                r = run(*chosen, "exec", name, cmd, check=False)
                codes.setdefault(runtime, []).append((f"exec {cmd}", r.returncode))
            for workdir in ("/nonexistent", "/etc/passwd"):  # an exec's missing cwd: runc's "no such file or directory"
                r = run(*chosen, "exec", "-w", workdir, name, "true", check=False)
                codes[runtime].append((f"exec -w {workdir}", r.returncode))
        finally:
            run(*chosen, "rm", "-f", "-t", "0", name, check=False)
        for cmd in ("/nope", "/"):
            r = run(*chosen, "run", "--rm", "--network", "none", "--cgroup-parent", f"/{tag}", *ULIMITS, IMAGE, cmd,
                    check=False)
            codes[runtime].append((f"run {cmd}", r.returncode))
    assert codes["runc"] == [("exec /nope", 127), ("exec /", 126), ("exec ./bin", 126), ("exec bin/", 126),
                             ("exec nope", 127), ("exec /etc/passwd", 126), ("exec -w /nonexistent", 127),
                             ("exec -w /etc/passwd", 255), ("run /nope", 127), ("run /", 126)]
    assert codes["mrun"] == codes["runc"]

"""Images end to end on real parts: archives written by skopeo/umoci, overlay snapshots over
shared layers, the image config in the runtime spec, wasm images, and hostile layers."""

from __future__ import annotations

import glob
import hashlib
import io
import json
import os
import pathlib
import re
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import tarfile
import tempfile
import termios
import time

import pytest
from conftest import (
    IMAGE,
    LARGEST_RSS,
    await_template,
    cgroup_dirs,
    img,
    img_ok,
    one_line_error,
    play_a_reboot,
    remove_under_mrun,
    require,
    run_args,
    stop_templates,
    template_path,
)
from mrun.errors import MrunError
from test_containerd import WASM_IMAGE, build_wasm_archive


def test_load_oci_archive_and_run(images, busybox_archive):
    h = images
    assert img_ok(h, "load", busybox_archive).stdout.strip() == f"Loaded image: {IMAGE}"
    assert "localhost/busybox" in img_ok(h, "images").stdout
    # docker's images -a, --digests and --no-trunc (each was "No such option")
    doc = json.loads(img_ok(h, "image", "inspect", IMAGE).stdout)
    assert img_ok(h, "images", "-aq", "--no-trunc").stdout == f"{doc['id']}\n"
    table = img_ok(h, "image", "ls", "--digests", "--no-trunc").stdout.splitlines()
    assert table[0].split()[:4] == ["REPOSITORY", "TAG", "DIGEST", "IMAGE"], table
    assert table[1].split()[2:4] == [doc["manifest"], doc["id"]], table
    r = img_ok(h, *run_args(h, "--rm", "-e", "GREETING=hi", "-w", "/tmp", IMAGE, "sh", "-c", "echo $GREETING $(pwd)"))
    assert r.stdout == "hi /tmp\n"
    r = img(h, *run_args(h, "--rm", IMAGE, "sh", "-c", "exit 7"))
    assert r.returncode == 7
    assert not os.listdir(os.path.join(h.image_root, "containers"))



@pytest.mark.parametrize("flag", [["--no-pivot"], ["--pid-file", "/tmp/mrun-never-written"], ["--no-new-keyring"]])
def test_a_runc_only_flag_on_run_image_is_refused_not_ignored(images, busybox_archive, flag):
    """`mrun run IMAGE` has no --pid-file, --no-pivot... of its own: runc's `run --bundle` has.
    One that was ignored looked honoured (a pid file nobody wrote); now it is one line naming it,
    and nothing is made. The other way round is refused likewise."""
    h = images
    img_ok(h, "load", busybox_archive)
    r = img(h, *run_args(h, "--rm", *flag, IMAGE, "true"))
    one_line_error(r, flag[0], "--bundle")
    assert not os.path.exists("/tmp/mrun-never-written")
    r = h.mrun("run", "-b", h.bundle(["true"]), "--memory", "64m", h.cid())
    one_line_error(r, "--memory", "mrun run IMAGE")
    r = h.mrun("run", "-b", h.bundle(["true"]), "--mount", "type=tmpfs,target=/t", h.cid())
    one_line_error(r, "--mount", "mrun run IMAGE")  # it was ignored: the list of docker's flags missed it


def _as_a_caller_that_ignores_and_blocks_signals() -> None:
    """nohup's SIGHUP, a background job's SIGINT and SIGQUIT, and SIGALRM and SIGTTOU (which the
    init does not handle while it waits) ignored; SIGUSR2 and SIGTERM blocked."""
    import signal

    for sig in (signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGALRM, signal.SIGTTOU):
        signal.signal(sig, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR2, signal.SIGTERM})


def test_the_containers_process_starts_with_every_signal_at_its_default_warm_and_cold(images, busybox_archive):
    """An ignored signal stays ignored across execve, and the mask survives it: a cold mrun passed
    its caller's (nohup, a background job, a supervisor's mask) to the container's process, where
    a shell cannot even trap a signal ignored at its entry; a warm one never did. Now both start
    it as crun does: nothing ignored, nothing blocked."""
    h = images
    img_ok(h, "load", busybox_archive)
    script = 'grep -E "^Sig(Ign|Blk)" /proc/self/status; trap "echo trapped" INT; kill -INT $$; echo done'
    r = img(h, *run_args(h, "--rm", IMAGE, "sh", "-c", script), preexec_fn=_as_a_caller_that_ignores_and_blocks_signals)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\ntrapped\ndone\n", r.stdout


def _with_thp_disabled() -> None:
    import ctypes

    assert ctypes.CDLL(None, use_errno=True).prctl(41, 1, 0, 0, 0) == 0  # PR_SET_THP_DISABLE: kept by fork and exec


def test_a_callers_prctl_state_reaches_its_container_warm_and_cold(images, busybox_archive):
    """What a caller set with prctl and fork and exec keep (transparent huge pages off here; the
    speculation mitigations likewise) reaches the containers a cold mrun starts. The template
    has its own: a warm child would have handed on that instead, so such a caller runs cold."""
    h = images
    img_ok(h, "load", busybox_archive)
    r = img(h, *run_args(h, "--rm", IMAGE, "grep", "THP_enabled", "/proc/self/status"), preexec_fn=_with_thp_disabled)
    assert (r.returncode, r.stdout) == (0, "THP_enabled:\t0\n"), r.stderr


SECBIT_NOROOT = 1  # linux/securebits.h: uid 0 gains no capabilities at execve


def _with_secbit_noroot() -> None:
    import ctypes

    assert ctypes.CDLL(None, use_errno=True).prctl(28, SECBIT_NOROOT, 0, 0, 0) == 0  # PR_SET_SECUREBITS


@pytest.mark.parametrize("images", ["warm", "cold", "python"], indirect=True)
def test_a_caller_whose_root_has_no_capabilities_gets_none_from_the_template(images, busybox_archive):
    """Securebits are kept by fork and exec, and /proc does not show them. A caller confined with
    SECBIT_NOROOT (a service manager's SecureBits=noroot) execs mrun as a root without
    capabilities: cold, its first mount is refused. A child of the template, which has no such
    bit and every capability, would have run the container: the peer check's comparison of the
    capability sets keeps such a caller cold (and now the securebits its launcher reports too),
    and it fails the same way whichever launcher it used."""
    h = images
    img_ok(h, "load", busybox_archive)
    run = run_args(h, "--rm", IMAGE, "grep", "CapEff", "/proc/self/status")
    plain = img(h, *run)
    assert plain.returncode == 0 and plain.stdout.startswith("CapEff:\t"), plain.stdout + plain.stderr
    assert plain.stdout != "CapEff:\t0000000000000000\n"
    r = img(h, *run, preexec_fn=_with_secbit_noroot)
    assert r.returncode != 0 and r.stdout == "", r.stdout
    one_line_error(r, "Operation not permitted")


def _with_memory_deny_write_execute() -> None:
    import ctypes

    assert ctypes.CDLL(None, use_errno=True).prctl(65, 1, 0, 0, 0) == 0  # PR_SET_MDWE, REFUSE_EXEC_GAIN


@pytest.mark.parametrize("images", ["warm", "cold", "python"], indirect=True)
def test_a_callers_memory_deny_write_execute_reaches_its_container_warm_and_cold(images, tmp_path):
    """PR_SET_MDWE (systemd's MemoryDenyWriteExecute= where the kernel has it) is kept by fork and
    exec, and /proc does not show it. A cold mrun's containers are under it, and a wasm engine
    cannot make its code executable there: the run fails in one line. A child of the template,
    which has none, ran the module: the caller's hardening was lost on the way. Each launcher now
    says what its caller has, and such a caller runs cold."""
    h = images
    img_ok(h, "load", build_wasm_archive(str(tmp_path)))
    run = run_args(h, "--rm", WASM_IMAGE)
    plain = img(h, *run)
    assert plain.returncode == 3, plain.stderr
    r = img(h, *run, preexec_fn=_with_memory_deny_write_execute)
    assert r.stdout == "", r.stdout
    one_line_error(r, "unable to make memory executable")


def _bound_to_node_0() -> None:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    node0 = ctypes.c_ulong(1)
    assert libc.syscall(238, 2, ctypes.byref(node0), 64) == 0  # set_mempolicy(MPOL_BIND, node 0): x86_64


@pytest.mark.skipif(os.uname().machine != "x86_64" or not os.path.exists("/proc/self/numa_maps"),
                    reason="set_mempolicy's number is x86_64's; numa_maps needs a NUMA kernel")
@pytest.mark.parametrize("images", ["warm", "cold", "python"], indirect=True)
def test_a_callers_numa_memory_policy_reaches_its_container_warm_and_cold(images, busybox_archive):
    """A task's NUMA memory policy (numactl --membind) is kept by fork and exec, and only the
    task itself can read it: a cold mrun's containers allocate where their caller bound them; a
    child of the template had the template's policy (the default), and so had the containers."""
    h = images
    img_ok(h, "load", busybox_archive)
    run = run_args(h, "--rm", IMAGE, "sh", "-c", "read start policy rest < /proc/self/numa_maps; echo $policy")
    plain = img(h, *run)
    assert (plain.returncode, plain.stdout) == (0, "default\n"), plain.stdout + plain.stderr
    r = img(h, *run, preexec_fn=_bound_to_node_0)
    assert (r.returncode, r.stdout) == (0, "bind:0\n"), r.stdout + r.stderr


def test_docker_archive_from_skopeo(images, busybox_archive, tmp_path):
    h = images
    require("skopeo", "skopeo")
    docker = str(tmp_path / "docker.tar")
    subprocess.run(
        ["skopeo", "copy", f"oci-archive:{busybox_archive}", f"docker-archive:{docker}:example.org/bb:v1"],
        check=True,
        capture_output=True,
    )
    assert "example.org/bb:v1" in img_ok(h, "load", docker).stdout
    assert img_ok(h, *run_args(h, "--rm", "example.org/bb:v1", "echo", "from docker-archive")).stdout == (
        "from docker-archive\n"
    )


def test_containers_share_layers_and_rmi_waits_for_them(images, busybox_archive):
    h = images
    img_ok(h, "load", busybox_archive)
    for name in ("share1", "share2"):
        img_ok(h, *run_args(h, "-d", "--name", name, IMAGE, "sleep", "600"))
    layers = os.listdir(os.path.join(h.image_root, "layers"))
    assert len(layers) == 1  # one unpacked copy for both containers
    with open("/proc/self/mountinfo") as f:
        overlays = [line for line in f if h.image_root in line and " overlay " in line]
    assert len(overlays) == 2 and all(layers[0] in line for line in overlays)
    r = img(h, "rmi", IMAGE)
    assert r.returncode != 0 and "in use" in r.stderr
    img_ok(h, "rm", "--force", "share1")
    r = img_ok(h, "exec", "share2", "cat", "/etc/passwd")
    assert "root" in r.stdout
    img_ok(h, "rm", "--force", "share2")
    img_ok(h, "rmi", IMAGE)
    assert not os.listdir(os.path.join(h.image_root, "layers"))
    assert not os.listdir(os.path.join(h.image_root, "blobs", "sha256"))


def test_named_volume_outlives_containers_and_limits_reach_the_cgroup(images, busybox_archive):
    h = images
    img_ok(h, "load", busybox_archive)
    img_ok(h, *run_args(h, "--rm", "-v", "keep:/data", IMAGE, "sh", "-c", "echo kept > /data/f"))
    assert img_ok(h, *run_args(h, "--rm", "-v", "keep:/data:ro", IMAGE, "cat", "/data/f")).stdout == "kept\n"
    img_ok(h, *run_args(h, "-d", "--name", "limited", "--memory", "48m", "--cpus", "0.5", IMAGE, "sleep", "600"))
    assert_limits(cgroup_dirs(f"{h.cgroup_parent}/limited"), 48 << 20, 50000)
    ps = img_ok(h, "ps", "-a").stdout
    assert "limited" in ps and IMAGE in ps
    assert img_ok(h, "ps", "-a", "-q").stdout.split() == img_ok(h, "ps", "-aq").stdout.split() == ["limited"]
    img_ok(h, "stop", "-t", "5", "limited")
    img_ok(h, "rm", "limited")


@pytest.mark.parametrize(
    ("flag", "value", "needle"),
    [
        ("--cpus", "nan", "a number expected"),
        ("--cpus", "inf", "a number expected"),
        ("--cpus", "-1", "range of CPUs is from 0.01"),
        ("--cpus", "0.001", "range of CPUs is from 0.01"),
        ("--cpus", "100000", "CPUs available"),
        ("--cpus", "৯", "a number expected"),  # float() reads other scripts' digits, and 1_0, and spaces
        ("--cpus", "0_5", "a number expected"),
        ("--memory", "-5", "a size such as 64m"),
        ("--memory", "৯g", "a size such as 64m"),  # (was 9g: docker's go-units takes ASCII digits only)
        ("--memory", "1_0m", "a size such as 64m"),
        ("--memory", "1e3m", "a size such as 64m"),
        ("--memory", "4k", "minimum memory limit is 6MB"),
        ("--memory", "1.5", "minimum memory limit is 6MB"),
        ("--cap-add", "CAP_FOO", "unknown capability"),
        ("--cap-drop", "", "unknown capability"),
        ("--ulimit", "foo=1", "NAME=SOFT[:HARD]"),
        ("--ulimit", "nofile=10:5", "soft limit must be at most"),
        ("--ulimit", "nofile=abc", "not a limit"),
        ("--ulimit", "nofile=-5", "not a limit"),
        ("--tmpfs", "rel", "absolute"),
        ("--tmpfs", "//", "cannot be /"),  # ("//" was not "/" to os.path.normpath: a tmpfs over the root)
        ("-v", "//", "cannot be /"),
        ("--tmpfs", "/x:size=abc", "'size=abc'"),
        ("--tmpfs", "/x:mode=999", "'mode=999'"),
        ("--tmpfs", "/x:rbind", "'rbind'"),  # a tmpfs flag only: not a way to bind the host
        ("--device", "/etc/passwd", "not a device node"),
        ("--device", "/dev/../etc/passwd", "not a device node"),
        ("--device", "/nonexistent", "No such file"),
        ("--device", "/dev/null:rwx", "permissions"),
        ("--device", "/dev/null:dev/x", "permissions"),
        ("--sysctl", "vm.swappiness=1", "linux.sysctl.vm.swappiness (--sysctl)"),  # the host's: the runtime refuses it
        # the runtime's refusals of what flags alone set name the flag beside the field, without
        # the path of the config.json mrun generated (the caller wrote no such file)
        ("--device", "/dev/null:/dev/../x", "linux.devices[0].path (--device): must be under /dev"),
        ("--ulimit", "nofile=99999999999", "process.rlimits (--ulimit): cannot set resource 7"),
        ("--sysctl", "novalue", "KEY=VALUE"),
        ("--group-add", "nosuchgroup", "no group 'nosuchgroup'"),
        ("--user", "4294967295", "uids and gids go from 0 to 2147483647"),  # it ran as root
        ("--user", "²", "no user"),  # a digit to str.isdigit, not to int(): a traceback
        ("--oom-score-adj", "5000", "-1000 to 1000"),
        ("--stop-signal", "SIGFOO", "not a signal name"),
        ("--shm-size", "0", "more than 0"),
        ("--shm-size", "-5m", "invalid size"),
        ("--shm-size", "64\u212a", "invalid size"),  # the Kelvin sign: str.lower() made it k, go-units' regexp does not
        ("-v", "/tmp:/x:rx", "'rx' is not a volume option"),
        ("-v", "/tmp:/x:ro,exec", "'exec' is not a volume option"),
        ("-v", "/tmp:rel", "SOURCE:/DESTINATION"),
        ("-v", "a b:/x", "a volume name is"),
        ("-v", ".hidden:/x", "a volume name is"),
        ("-v", "/tmp:/", "cannot be /"),  # over the container's root: it had no /bin then
        ("-v", "named:/tmp/..", "cannot be /"),
        ("--tmpfs", "/..", "cannot be /"),
        # past what a Go int64, a file name or execve takes: they were refused naming the
        # container's generated config.json, a file in the image root ("File name too long"), or
        # failed in the container's init ("illegal environment variable name")
        ("--pids-limit", "9" * 30, "out of range"),
        ("--cpu-quota", "9" * 30, "out of range"),
        ("--cpu-shares", "9" * 30, "out of range"),
        ("--stop-timeout", "9" * 30, "out of range"),  # past int64: the parser's, as Go's Atoi says it
        ("-e", "=x", "invalid environment variable"),
        ("--name", "n" * 300, "at most 255 characters"),
        ("--name", "web+supervisor", "only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"),  # docker's rule
        ("--name", "-web", "only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"),
        ("-v", "a" * 300 + ":/x", "a volume name is at most 255 characters"),
    ],
)
def test_run_refuses_bad_flag_values_as_docker_does(images, busybox_archive, flag, value, needle):
    """Before anything is made, in one line naming the flag (`--cpus nan` was an internal error,
    `--memory -5` the kernel's EINVAL on a cgroup file, `--memory 4k` an init that died); a host
    sysctl is the runtime's refusal, naming the linux.sysctl key, as for any bundle, and the
    flag beside it (cli.flag_words)."""
    h = images
    img_ok(h, "load", busybox_archive)
    named = () if flag == "--sysctl" and "=" in value or flag == "--name" else (flag,)  # --name: "container id"
    r = img(h, *run_args(h, "--rm", flag, value, IMAGE, "true"))
    one_line_error(r, *named, needle)
    assert "config.json" not in r.stderr
    made = os.path.join(h.image_root, "containers")
    assert not os.path.isdir(made) or not os.listdir(made)


def test_docker_s_process_and_sandbox_flags_reach_the_container(images, busybox_archive):
    """--cap-add/--cap-drop, --ulimit, --tmpfs, --device, --sysctl, --group-add, --oom-score-adj,
    --shm-size: what docker's users pass, seen from inside the container."""
    h = images
    img_ok(h, "load", busybox_archive)
    script = ("grep CapEff /proc/self/status; ulimit -n; ulimit -Hn; ulimit -c; grep ' /scratch ' /proc/mounts; "
              "ls -ln /dev/mynull; cat /proc/sys/net/ipv4/ip_unprivileged_port_start; id -G; "
              "cat /proc/self/oom_score_adj; grep ' /dev/shm ' /proc/mounts; echo hi > /dev/mynull && echo wrote")
    out = img_ok(h, *run_args(
        h, "--rm", "--cap-add", "chown", "--cap-drop", "CAP_KILL", "--ulimit", "nofile=100:200", "--ulimit",
        "core=-1", "--tmpfs", "/scratch:size=1m,mode=1777", "--device", "/dev/null:/dev/mynull:rw", "--sysctl",
        "net.ipv4.ip_unprivileged_port_start=80", "--group-add", "nogroup", "--group-add", "4242",
        "--oom-score-adj", "300", "--shm-size", "8m", IMAGE, "sh", "-c", script)).stdout.splitlines()
    assert out[0].split()[1] == f"{0xa80425fb & ~(1 << 5):016x}"  # docker's default set, KILL dropped
    assert out[1:4] == ["100", "200", "unlimited"]
    assert out[4].startswith("tmpfs /scratch tmpfs") and "size=1024k" in out[4] and "noexec" in out[4], out[4]
    assert out[5].startswith("crw-rw-rw-") and out[5].split()[4:6] == ["1,", "3"], out[5]
    assert out[6:9] == ["80", "0 4242 65534", "300"]
    assert "size=8192k" in out[9], out[9]
    assert out[10] == "wrote"


def test_a_container_gets_docker_s_default_capabilities_and_set_uid_programs_work(images, tmp_path):
    """docker's and podman's defaults: the 14 capabilities of docker's set (0xa80425fb), no
    no_new_privileges. mrun gave the runtime-spec's three and no_new_privileges: an entrypoint
    that chowns its data and drops to its user (gosu, su-exec: the official database images)
    failed, as did set-uid programs. A user other than root holds them in the bounding set only,
    as docker leaves it; `--security-opt no-new-privileges` and `--cap-drop` still harden."""
    from busybox_bundle import make_oci_archive, make_rootfs

    h = images
    setuid_id = tmp_path / "suid-root"
    setuid_id.mkdir()
    make_rootfs(str(setuid_id / "rootfs"))  # its own: a copy of the shared one copied what tests left in it
    os.chmod(setuid_id / "rootfs" / "bin" / "busybox", 0o4755)  # busybox's su needs it set-uid
    img_ok(h, "load", make_oci_archive(str(setuid_id / "rootfs"), str(tmp_path), "localhost/suid:1", ["/bin/sh"],
                                       ["PATH=/bin"]))
    status = "grep -E '^(CapEff|CapBnd|NoNewPrivs)' /proc/self/status | tr -s '\\t' ' '"
    r = img_ok(h, *run_args(h, "--rm", "localhost/suid:1", "sh", "-c",
                            f"{status}; chown 65534:65534 /tmp && su -s /bin/sh nobody -c id"))
    assert r.stdout.splitlines() == ["CapEff: 00000000a80425fb", "CapBnd: 00000000a80425fb", "NoNewPrivs: 0",
                                     "uid=65534(nobody) gid=65534(nogroup) groups=65534(nogroup)"], r.stdout
    r = img_ok(h, *run_args(h, "--rm", "-u", "65534", "localhost/suid:1", "sh", "-c", status))
    assert r.stdout.splitlines() == ["CapEff: 0000000000000000", "CapBnd: 00000000a80425fb", "NoNewPrivs: 0"]
    r = img_ok(h, *run_args(h, "--rm", "--security-opt", "no-new-privileges", "--cap-drop", "ALL",
                            "localhost/suid:1", "sh", "-c", status))
    assert r.stdout.splitlines() == ["CapEff: 0000000000000000", "CapBnd: 0000000000000000", "NoNewPrivs: 1"]


def _load_groups_image(h, tmp_path) -> None:
    """localhost/groups:1: busybox with root (in wheel, gid 10) and app (1000, in shared, 500)."""
    from busybox_bundle import make_oci_archive, make_rootfs

    rootfs = tmp_path / "groups" / "rootfs"
    make_rootfs(str(rootfs))
    (rootfs / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/:/bin/sh\n")
    (rootfs / "etc" / "group").write_text("root:x:0:root\nwheel:x:10:root\napp:x:1000:\nshared:x:500:app\n")
    img_ok(h, "load", make_oci_archive(str(rootfs), str(tmp_path), "localhost/groups:1", ["/bin/sh"], ["PATH=/bin"]))


def test_root_without_a_user_has_the_groups_the_image_gives_it_as_under_docker(images, tmp_path):
    """No User in the image and no -u: docker (and containerd's CRI) look uid 0 up all the same,
    so root has the groups the image's /etc/group lists it in (alpine's root: wheel, disk,
    adm...). mrun gave such a root no group at all."""
    h = images
    _load_groups_image(h, tmp_path)
    ids = "echo $(id -u) $(id -g) $(id -G)"
    assert img_ok(h, *run_args(h, "--rm", "localhost/groups:1", "sh", "-c", ids)).stdout.split() == ["0", "0", "0",
                                                                                                    "10"]
    r = img_ok(h, *run_args(h, "--rm", "--group-add", "777", "-u", "app", "localhost/groups:1", "sh", "-c", ids))
    assert r.stdout.split() == ["1000", "1000", "1000", "500", "777"]


def test_exec_user_by_number_takes_the_image_s_tables_as_docker_s_exec_does(images, tmp_path):
    """`docker exec -u UID` looks the uid up in the container's /etc/passwd and /etc/group: its
    own gid and groups, or gid 0 and none without a row. mrun kept runc's rule for a numeric uid
    (the container process's gid and groups), so an exec as uid 1000 into a root container had
    the root group and root's groups (wheel) too. runc's rule stays for bundles (runc's exec)."""
    h = images
    _load_groups_image(h, tmp_path)
    img_ok(h, *run_args(h, "-d", "--name", "execuser", "localhost/groups:1", "sleep", "600"))
    try:
        ids = ["sh", "-c", "echo $(id -u) $(id -g) $(id -G)"]
        got = {user: img_ok(h, "exec", *(["-u", user] if user else []), "execuser", *ids).stdout.split()
               for user in ("", "1000", "01000", "1000:500", "4242", "app")}
    finally:
        img(h, "rm", "-f", "execuser")
    # "01000" is 1000 to Go's Atoi and its row found by number (compared as text, it had none: gid 0)
    assert got == {"": ["0", "0", "0", "10"], "1000": ["1000", "1000", "1000", "500"],
                   "01000": ["1000", "1000", "1000", "500"],
                   "1000:500": ["1000", "500", "500"], "4242": ["4242", "0", "0"],
                   "app": ["1000", "1000", "1000", "500"]}, got


def test_exec_it_relays_a_terminal_and_leaves_the_command_s_own_flags_alone(images, busybox_archive):
    """docker's `exec -it ID sh -c CMD`, typed from a terminal: mrun said "a terminal needs
    --console-socket" (runc's rule, for callers that hand over a socket), and read sh's -c as
    its own --cap, since `-it` sent the call to typer, which parsed options past the command.
    Now the pty is relayed as `run -t`'s is, `-t` without a terminal gets one all the same (as
    docker's), and bundled flags (-it, -iu 0) are read as docker reads them."""
    h = images
    img_ok(h, "load", busybox_archive)
    img_ok(h, *run_args(h, "-d", "--name", "term", IMAGE, "sleep", "600"))
    try:
        leader, follower = os.openpty()
        try:
            r = subprocess.run([h.binary, "--root", h.root, "--image-root", h.image_root, "exec", "-it", "term", "sh",
                                "-c", "tty; echo $((6 * 7)); exit 7"], stdin=follower, stdout=follower,
                               stderr=subprocess.PIPE, env={**os.environ, **h.base_env}, timeout=60)
            os.close(follower)
            follower = -1
            out = b""
            while True:
                try:
                    chunk = os.read(leader, 4096)
                except OSError:  # EIO: the other side is closed and read to its end
                    break
                if not chunk:
                    break
                out += chunk
        finally:
            os.close(leader)
            if follower >= 0:
                os.close(follower)
        assert r.returncode == 7 and b"/dev/pts/" in out and b"42" in out, (r, out)
        r = img(h, "exec", "-t", "term", "tty")
        assert r.returncode == 0 and r.stdout.startswith("/dev/pts/"), r
        assert img_ok(h, "exec", "-iu", "0", "term", "sh", "-c", "echo $(id -u)-ok").stdout == "0-ok\n"
        one_line_error(img(h, "exec", "-dt", "term", "true"), "--console-socket")
    finally:
        img(h, "rm", "--force", "term")


def test_rmi_takes_several_images_and_force_untags_one_a_container_uses(images, busybox_archive):
    """docker's `rmi -f IMG` and `rmi A B`: mrun took one image and no -f (a usage error in the
    clean-up scripts people have). -f untags an image a running container uses; the container
    goes on, inspect still reads its image's config, and once it is removed, prune takes the data.
    rmi of several goes on past one it cannot remove, exit 1."""
    h = images
    img_ok(h, "load", busybox_archive)
    img_ok(h, "tag", IMAGE, "localhost/second:1")
    img_ok(h, *run_args(h, "-d", "--name", "user", IMAGE, "sleep", "600"))
    try:
        img_ok(h, "rmi", "localhost/second:1")  # another name for it stays: not in use through this one
        one_line_error(img(h, "rmi", IMAGE), "in use by container(s) user")
        r = img(h, "rmi", "localhost/nosuch:1", "-f", IMAGE)
        assert r.returncode == 1 and r.stdout == f"Untagged: {IMAGE}\n", r
        one_line_error(r, "nosuch")
        assert img_ok(h, "images", "-q").stdout == ""
        assert img_ok(h, "exec", "user", "echo", "still").stdout == "still\n"
        assert json.loads(img_ok(h, "inspect", "user").stdout)
    finally:
        img(h, "rm", "--force", "user")
    img_ok(h, "image", "prune")
    for kind in ("blobs/sha256", "layers"):
        path = os.path.join(h.image_root, kind)
        assert not os.path.isdir(path) or not os.listdir(path), (kind, os.listdir(path))


def test_docker_s_management_commands_are_the_verbs_they_name(images, busybox_archive, tmp_path):
    """`docker container rm|logs|exec|inspect|stop ...` and `docker image pull|push|save|load` are
    `docker rm`, `docker logs`...: mrun's `container` and `image` took ls, prune and a few others
    only ("unknown action"). `container start/create/run/kill` are docker's start, create, run and
    kill too (create's docker form: an IMAGE and no bundle)."""
    h = images
    saved = str(tmp_path / "saved.tar")
    img_ok(h, "load", busybox_archive)
    img_ok(h, "image", "save", "-o", saved, IMAGE)
    assert img_ok(h, "--image-root", str(tmp_path / "other"), "image", "load", "-i", saved).stdout == (
        f"Loaded image: {IMAGE}\n")
    img_ok(h, *run_args(h, "-d", "--name", "managed", IMAGE, "sh", "-c", "echo said; sleep 600"))
    try:
        assert img_ok(h, "container", "exec", "-i", "managed", "sh", "-c", "echo in").stdout == "in\n"
        assert json.loads(img_ok(h, "container", "inspect", "managed").stdout)
        for _ in range(50):
            if img_ok(h, "container", "logs", "managed").stdout == "said\n":
                break
            time.sleep(0.1)
        assert img_ok(h, "container", "logs", "managed").stdout == "said\n"
        img_ok(h, "container", "stop", "-t", "1", "managed")
        assert img_ok(h, "container", "start", "managed").stdout == "managed\n"
        assert img_ok(h, "container", "kill", "managed").stdout == "managed\n"
    finally:
        img_ok(h, "container", "rm", "-f", "managed")
    assert img_ok(h, "container", "ls", "-aq").stdout == ""
    one_line_error(img(h, "container", "start", "managed"), "'managed' does not exist")


def test_kill_without_a_signal_kills_an_image_container_as_docker_s_kill_does(images, busybox_archive):
    """`docker kill ID` sends SIGKILL; mrun sent runc's default, SIGTERM, which a container's PID 1
    with no handler for it (`sleep`, most shells) ignores: `mrun kill` left it running. Bundles
    keep runc's SIGTERM; -s and a signal argument are as before."""
    h = images
    img_ok(h, "load", busybox_archive)
    img_ok(h, *run_args(h, "-d", "--name", "victim", IMAGE, "sleep", "600"))
    try:
        img_ok(h, "kill", "victim")
        assert img_ok(h, "wait", "victim", timeout=30).stdout.strip() == "137"
    finally:
        img(h, "rm", "--force", "victim")


def _with_open_files_777_4321() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_NOFILE, (777, 4321))


def test_a_container_has_its_caller_s_rlimits_unless_ulimit_says_otherwise(images, busybox_archive):
    """docker sets none of its own: a container has what dockerd has. mrun run set the bundle
    default's nofile 1024:1024, whose hard limit no server in it could raise (elasticsearch
    wants 65535). --ulimit still sets one, warm and cold alike."""
    h = images
    img_ok(h, "load", busybox_archive)
    # warm, this caller's soft limit under 1000 left the template's child no room to park the
    # caller's descriptors: exit 255 and not a word (the limit was set before they were placed)
    r = img_ok(h, *run_args(h, "--rm", IMAGE, "sh", "-c", "ulimit -Sn; ulimit -Hn"),
               preexec_fn=_with_open_files_777_4321)
    assert r.stdout.split() == ["777", "4321"], r.stdout
    r = img_ok(h, *run_args(h, "--rm", "--ulimit", "nofile=300:600", IMAGE, "sh", "-c", "ulimit -Sn; ulimit -Hn"),
               preexec_fn=_with_open_files_777_4321)
    assert r.stdout.split() == ["300", "600"], r.stdout


def test_an_image_s_stop_signal_that_is_no_signal_cannot_make_a_container_unstoppable(images, busybox_rootfs,
                                                                                      tmp_path):
    """An image's StopSignal "SIGFOO" was kept as the container's: every `mrun stop` then failed on
    it and left the container running. It is set aside with a warning; stop sends SIGTERM."""
    from busybox_bundle import make_oci_archive

    h = images
    archive = make_oci_archive(busybox_rootfs, str(tmp_path), "localhost/badstop:1", ["/bin/sh"], ["PATH=/bin"],
                               stop_signal="SIGFOO")
    img_ok(h, "load", archive)
    r = img_ok(h, *run_args(h, "-d", "--name", "badstop", "localhost/badstop:1", "sleep", "600"))
    assert "StopSignal 'SIGFOO' is no signal" in r.stderr
    assert img_ok(h, "stop", "-t", "1", "badstop").stdout.strip() == "badstop"
    img_ok(h, "rm", "badstop")


@pytest.mark.parametrize("config, needle", [
    ({"User": "nosuch"}, "the image's User nosuch: no user 'nosuch'"),
    ({"User": "4294967295"}, "the image's User 4294967295: uids and gids go from 0 to 2147483647"),
    ({"WorkingDir": "rel/dir"}, "the image's WorkingDir 'rel/dir': the working directory must be an absolute path"),
    ({"Env": ["PATH=/bin", "NOEQ"]}, "the image's Env[1] 'NOEQ': must be KEY=VALUE"),
    ({"Env": ["=x"]}, "the image's Env[0] '=x': must be KEY=VALUE"),  # the init's "illegal environment variable"
    # an image's own /etc/passwd and /etc/group may hold anything: an id that is no number (or
    # "²", which str.isdigit() passes and int() refuses) was an internal ValueError
    ({"User": "app"}, "the image's User app: no user 'app' in the container's /etc/passwd"),
    ({"User": "root:grp"}, "the image's User root:grp: no group 'grp' in the container's /etc/group"),
    # a newline in it forged a second line of the refusal
    ({"User": "nosuch\nmrun: forged"}, "the image's User 'nosuch\\nmrun: forged': no user"),
])
def test_an_image_config_mrun_cannot_run_is_refused_naming_the_image_s_field(images, tmp_path, config, needle):
    """Each was refused, but as "--user nosuch" (a flag nobody gave) or as a field of the
    container's generated config.json (its path under the image root), not as the image's."""
    h = images
    layer = [("bin", None), ("bin/busybox", open("/bin/busybox", "rb").read()), ("bin/true", "->busybox"),
             ("etc", None), ("etc/passwd", "root:x:0:0::/root:/bin/sh\napp:x:abc:\u00b2::/:/bin/sh\n".encode()),
             ("etc/group", "grp:x:\u00b2:\n".encode())]
    archive = _docker_archive(tmp_path, layer, config_extra={"config": {"Cmd": ["true"], **config}})
    img_ok(h, "load", archive, "localhost/badcfg:1")
    one_line_error(img(h, *run_args(h, "--rm", "localhost/badcfg:1")), needle)
    assert os.listdir(os.path.join(h.image_root, "containers")) == []


def test_a_container_s_deep_directory_tree_does_not_stop_its_removal(images, busybox_archive):
    """A container that nests directories 1500 deep: `mrun rm` was "internal error: RecursionError"
    (shutil.rmtree recursed a level per frame), the container stayed listed as orphaned and its
    directory under the image root could not be removed by any mrun command."""
    h = images
    img_ok(h, "load", busybox_archive)
    script = "i=0; while [ $i -lt 1500 ]; do mkdir d && cd d || exit 1; i=$((i+1)); done; echo deep"
    assert img_ok(h, *run_args(h, "--name", "deep", IMAGE, "sh", "-c", script)).stdout.strip() == "deep"
    assert img_ok(h, "rm", "deep").stdout.strip() == "deep"
    assert os.listdir(os.path.join(h.image_root, "containers")) == []


def test_real_time_budget_and_docker_s_no_op_run_flags(images, busybox_archive):
    """docker's --cpu-rt-period and --cpu-rt-runtime (were "No such option"): the container's
    cgroup gets the real-time budget (cgroup v1), out of its parent's, as docker's daemon takes it
    out of the one its --cpu-rt-runtime gives its parent; without room there, one line naming the
    field, nothing left; a runtime past the period, or a host without RT group scheduling, is
    docker's refusal. --disable-content-trust (docker's default), --isolation default and
    --volume-driver local are taken; what mrun cannot do with them is refused in one line."""
    from mrun.cgroups import detect

    h = images
    img_ok(h, "load", busybox_archive)
    if detect() != 1 or not os.path.exists("/sys/fs/cgroup/cpu/cpu.rt_runtime_us"):
        r = img(h, *run_args(h, "--rm", "--cpu-rt-runtime", "5000", IMAGE, "true"))
        assert r.returncode == 125, r
        one_line_error(r, "--cpu-rt-runtime", "real-time")
        return
    one_line_error(img(h, *run_args(h, "--rm", "--cpu-rt-period", "1000", "--cpu-rt-runtime", "5000", IMAGE,
                                    "true")), "cannot be higher than --cpu-rt-period")
    r = img(h, *run_args(h, "--rm", "--cpu-rt-runtime", "5000", IMAGE, "true"))  # the parent has no budget
    one_line_error(r, "realtimeRuntime")
    parent = f"/sys/fs/cgroup/cpu{h.cgroup_parent}"
    os.makedirs(parent, exist_ok=True)
    with open(f"{parent}/cpu.rt_runtime_us", "w") as f:
        f.write("20000")
    r = img_ok(h, *run_args(h, "--name", "rt", "--cpu-rt-period", "500000", "--cpu-rt-runtime", "5000",
                            "--disable-content-trust", "--isolation", "default", "--volume-driver", "local",
                            IMAGE, "cat", *(f"/sys/fs/cgroup/cpu/cpu.rt_{f}_us" for f in ("runtime", "period"))))
    assert r.stdout.split() == ["5000", "500000"], r.stdout
    img_ok(h, "rm", "rt")
    for flags, words in ((["--disable-content-trust=false"], "content trust"),
                         (["--isolation", "hyperv"], "--isolation 'hyperv'"),
                         (["--volume-driver", "nfs"], "--volume-driver 'nfs'")):
        r = img(h, *run_args(h, "--rm", *flags, IMAGE, "true"))
        assert r.returncode == 125, r
        one_line_error(r, words)


def test_docker_s_volume_options(images, busybox_archive, tmp_path):
    """ro/rw, z/Z (SELinux relabelling: nothing to do without SELinux, as with docker there),
    nocopy and a propagation, comma-separated as docker's users write them (`:ro,Z` was refused)."""
    h = images
    img_ok(h, "load", busybox_archive)
    host = tmp_path / "shared"
    host.mkdir()
    (host / "f").write_text("from the host\n")
    out = img(h, *run_args(h, "--rm", "-v", f"{host}:/data:ro,Z", "-v", "named:/named:z,nocopy", "-v",
                           f"{host}:/prop:rslave", IMAGE, "sh", "-c",
                           "cat /data/f; touch /data/g 2>/dev/null || echo read-only; touch /named/x && echo named; "
                           "cat /prop/f"))
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["from the host", "read-only", "named", "from the host"]
    # docker's (23+) ./PATH and . as a bind's source, from where the command is given (warm too:
    # the template's child works in the caller's directory); "a volume name is letters..." before
    here = (lambda: os.chdir(tmp_path))  # noqa: E731
    for flags in (["-v", "./shared:/data:ro"], ["--mount", "type=bind,src=./shared,dst=/data"],
                  ["-v", ".:/top"]):
        r = img(h, *run_args(h, "--rm", *flags, IMAGE, "sh", "-c", "cat /data/f 2>/dev/null || cat /top/shared/f"),
                preexec_fn=here)
        assert r.returncode == 0 and r.stdout == "from the host\n", (flags, r)


def test_an_empty_named_volume_is_filled_from_the_image_as_docker_fills_it(images, busybox_rootfs, tmp_path):
    """docker's copy-up: an empty named volume over an image directory takes its content, owner and
    mode (a database image's data directory is its user's, 0700: over mrun's root-owned empty
    volume the database could not write). Links are copied as links; only an empty volume is
    filled; `nocopy` leaves it empty."""
    h = images
    base = [(f"bin/{n}", "->busybox") for n in ("sh", "cat", "ls", "stat", "readlink", "rm", "touch", "id")]
    layer = [("bin", None), ("bin/busybox", open(os.path.join(busybox_rootfs, "bin", "busybox"), "rb").read()),
             *base, ("data", ("dir", 1234, 1234, 0o750)), ("data/seed", ("file", b"seeded\n", 1234, 1234, 0o640)),
             ("data/link", "->/etc/shadow"), ("data/sub", None), ("data/sub/deep", b"deep\n")]
    img_ok(h, "load", _docker_archive(tmp_path, layer, config_extra={"config": {"Cmd": ["sh"]}}), "localhost/seeded:1")
    look = "stat -c '%u:%g %a' /data; cat /data/seed /data/sub/deep; readlink /data/link; ls /data"
    # what a copy-up killed midway leaves (it copies beside the volume and renames over it): taken away
    crashed = os.path.join(h.image_root, "volumes", "seeded", "copy.tmp-99999999")
    os.makedirs(os.path.join(crashed, "half"))
    r = img_ok(h, *run_args(h, "--rm", "-v", "seeded:/data", "localhost/seeded:1", "sh", "-c",
                            look + "; rm /data/seed; touch /data/mine"))
    assert r.stdout.splitlines() == ["1234:1234 750", "seeded", "deep", "/etc/shadow", "link", "seed", "sub"]
    assert not os.path.exists(crashed)
    r = img_ok(h, *run_args(h, "--rm", "-v", "seeded:/data", "localhost/seeded:1", "ls", "/data"))
    assert r.stdout.split() == ["link", "mine", "sub"]  # filled once: not again over what the container did
    r = img_ok(h, *run_args(h, "--rm", "-v", "bare:/data:nocopy", "localhost/seeded:1", "ls", "-A", "/data"))
    assert r.stdout == ""
    r = img_ok(h, *run_args(h, "--rm", "-v", "other:/nowhere", "localhost/seeded:1", "ls", "-A", "/nowhere"))
    assert r.stdout == ""


def test_docker_s_mount_flag_is_the_short_forms_it_stands_for(images, busybox_archive, tmp_path):
    """--mount type=bind|volume|tmpfs (src/source, dst/target/destination, readonly, bind-propagation,
    volume-nocopy, tmpfs-size, tmpfs-mode): it was an unknown flag. Bad ones are one line each, naming
    --mount and what it was given (they named -v or --tmpfs and the short form they stand for)."""
    h = images
    img_ok(h, "load", busybox_archive)
    host = tmp_path / "host"
    host.mkdir()
    (host / "f").write_text("bound\n")
    r = img_ok(h, *run_args(h, "--rm", "--mount", f"type=bind,src={host},dst=/b,readonly", "--mount",
                            "type=volume,source=mvol,target=/v", "--mount", "type=tmpfs,target=/t,tmpfs-size=1m,"
                            "tmpfs-mode=1770", IMAGE, "sh", "-c",
                            "cat /b/f; touch /b/x 2>/dev/null || echo ro; touch /v/y && echo vol; "
                            "grep ' /t ' /proc/mounts; stat -c %a /t"))
    lines = r.stdout.splitlines()
    assert lines[:3] == ["bound", "ro", "vol"], r.stdout
    assert "size=1024k" in lines[3] and lines[4] == "1770", r.stdout
    assert os.path.exists(os.path.join(h.image_root, "volumes", "mvol", "data", "y"))
    for bad, needle in (("type=bind,src=rel,dst=/x", "absolute path"), ("type=volume,src=/abs,dst=/x", "a bind's"),
                        ("type=nfs,src=a,dst=/x", "bind, volume or tmpfs"), ("type=bind,src=/tmp", "target="),
                        ("type=bind,src=/tmp,dst=/x,colour=red", "'colour' is not a mount option"),
                        ("type=tmpfs,dst=/x,tmpfs-size=lots", "is not a tmpfs option"),
                        ("type=bind,src=/no/such,dst=/x", "does not exist"),
                        ("type=volume,src=no!name,dst=/x", "a volume name is"),
                        ("type=tmpfs,dst=/", "cannot be /")):
        r = img(h, *run_args(h, "--rm", "--mount", bad, IMAGE, "true"))
        one_line_error(r, needle)
        assert f"--mount {bad!r}" in r.stderr, r.stderr  # the flag and text given, not the short form
    assert os.listdir(os.path.join(h.image_root, "containers")) == []


def test_a_container_without_a_network_meets_itself_on_localhost(images, busybox_archive):
    """docker's --network none: lo up, an /etc/hosts naming localhost, an /etc/hostname. lo was
    down and a small image has no /etc/hosts: a server and its client in one container could not
    meet ("Network is unreachable", and `localhost` resolved nowhere)."""
    h = images
    img_ok(h, "load", busybox_archive)
    # the client tries until the server listens, and the server's file is read once written:
    # fixed sleeps of 0.3 s lost "hi" on a loaded CI machine. The server's stdin never ends: at
    # the end of /dev/null busybox's nc may leave before it has read what came.
    script = ("sleep 60 | nc -l -p 7000 > /tmp/got & "
              "for i in $(seq 1 200); do echo hi | nc localhost 7000 2>/dev/null; [ -s /tmp/got ] && break; "
              "sleep 0.05; done; "
              "cat /tmp/got; cat /etc/hostname; hostname")
    r = img_ok(h, *run_args(h, "--rm", "--network", "none", "--hostname", "alone", IMAGE, "sh", "-c", script))
    assert r.stdout.split() == ["hi", "alone", "alone"], r.stdout + r.stderr


def test_a_host_network_container_resolves_names_as_the_host_does(images, busybox_archive):
    """docker's --network host: the host's hostname and copies of its /etc/hosts and resolv.conf.
    mrun left the image's own (none in most small images): no name resolved. The copies are the
    container's: what it writes there never reaches the host's files."""
    h = images
    img_ok(h, "load", busybox_archive)
    hosts_before = open("/etc/hosts").read()
    look = "hostname; echo $HOSTNAME; cat /etc/resolv.conf; echo '192.0.2.1 x' >> /etc/hosts && echo w"
    r = img_ok(h, *run_args(h, "--rm", "--network", "host", IMAGE, "sh", "-c", look))
    node = os.uname().nodename
    assert r.stdout == f"{node}\n{node}\n{open('/etc/resolv.conf').read()}w\n", r.stdout
    assert open("/etc/hosts").read() == hosts_before
    r = img_ok(h, *run_args(h, "--rm", "--network", "host", "--hostname", "mine", IMAGE, "hostname"))
    assert r.stdout == "mine\n"
    # docker's run -h NAME is --hostname (it printed run's help and exit 0, running nothing)
    assert img_ok(h, *run_args(h, "--rm", "-h", "short", IMAGE, "hostname")).stdout == "short\n"
    assert img_ok(h, "run", "--help").stdout.startswith("Usage: mrun run")


def test_privileged_is_docker_s(images, busybox_archive):
    """--privileged: every capability the kernel has (that mrun holds: its bounding set), no seccomp
    filter, /proc/timer_list not masked, /sys writable, the host's devices present and usable (the
    device cgroup allows them)."""
    h = images
    img_ok(h, "load", busybox_archive)
    script = ("grep -E '^(CapEff|Seccomp):' /proc/self/status; grep ' /sys sysfs ' /proc/mounts; "
              "wc -c < /proc/timer_list; ls -ln /dev/kmsg; head -c 0 /dev/kmsg && echo opened")
    with open("/proc/self/status") as f:
        bounding = next(line.split()[1] for line in f if line.startswith("CapBnd:"))
    out = img_ok(h, *run_args(h, "--rm", "--privileged", IMAGE, "sh", "-c", script)).stdout.splitlines()
    assert out[0].split()[1] == bounding and out[1].split()[1] == "0", out
    assert out[2].split()[3].startswith("rw"), out[2]
    assert int(out[3]) > 0  # masked, it is /dev/null's empty file
    assert out[4].startswith("crw") and out[4].split()[4:6] == ["1,", "11"] and out[5] == "opened", out
    plain = img_ok(h, *run_args(h, "--rm", IMAGE, "sh", "-c", "ls /dev/kmsg 2>&1; grep Seccomp: /proc/self/status"))
    assert "No such file" in plain.stdout and "Seccomp:\t2" in plain.stdout  # without it: neither


def test_stop_sends_the_stop_signal_asked_for(images, busybox_archive):
    h = images
    img_ok(h, "load", busybox_archive)
    img_ok(h, *run_args(h, "-d", "--name", "stopper", "--stop-signal", "USR1", IMAGE, "sh", "-c",
                        "trap 'exit 9' USR1; echo ready; while :; do sleep 0.1; done"))
    for _ in range(100):
        if "ready" in img_ok(h, "logs", "stopper").stdout:
            break
        time.sleep(0.05)
    img_ok(h, "stop", "-t", "20", "stopper")
    assert json.loads(img_ok(h, "inspect", "stopper").stdout)["exit"]["exit_code"] == 9  # not SIGKILL's 137
    img_ok(h, "rm", "stopper")


def test_env_files_docker_refuses_are_one_line(images, busybox_archive, tmp_path):
    """/dev/zero was read without end (one line, never finished); a file that is not UTF-8 was
    an internal error (UnicodeDecodeError); a missing one did not name the flag."""
    h = images
    img_ok(h, "load", busybox_archive)
    binary = tmp_path / "binary.env"
    binary.write_bytes(b"A=1\n\xff\xfe=x\n")
    for path, needle in (("/dev/zero", "longer than 64 KiB"), (str(binary), "line 2 is not UTF-8"),
                         (str(tmp_path / "missing.env"), "No such file")):
        one_line_error(img(h, *run_args(h, "--rm", "--env-file", path, IMAGE, "true"), timeout=20), "--env-file",
                       needle)
    good = tmp_path / "good.env"
    good.write_text("# a comment\n\n  A=1  \nB=two words\n")
    out = img_ok(h, *run_args(h, "--rm", "--env-file", str(good), IMAGE, "sh", "-c", 'echo "$A|$B"')).stdout
    assert out == "1|two words\n"


def test_zero_cpus_and_memory_mean_no_limit_as_in_docker(images, busybox_archive):
    h = images
    img_ok(h, "load", busybox_archive)
    img_ok(h, *run_args(h, "-d", "--name", "unlimited", "--cpus", "0", "--memory", "0", IMAGE, "sleep", "600"))
    resources = json.loads(img_ok(h, "inspect", "unlimited").stdout)["config"]["linux"]["resources"]
    assert "memory" not in resources and "quota" not in resources.get("cpu", {}), resources
    img_ok(h, "rm", "--force", "unlimited")


def logs_2_to_1(h, *args: str) -> str:
    """`mrun logs ARGS 2>&1`: both streams in the order written."""
    with tempfile.TemporaryFile("w+") as out:
        subprocess.run([h.binary, "--root", h.root, "--image-root", h.image_root, "logs", *args], check=True,
                       stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, timeout=60,
                       env={**os.environ, **h.base_env})
        out.seek(0)
        return out.read()


def test_detached_logs_and_user_from_the_image(images, busybox_archive):
    h = images
    img_ok(h, "load", busybox_archive)
    img_ok(h, *run_args(h, "-d", "--name", "logger", "-u", "nobody", IMAGE, "sh", "-c", "id; echo to-stderr >&2"))
    h.wait_status("logger", "stopped")
    r = img_ok(h, "logs", "logger")
    assert "uid=65534(nobody)" in r.stdout and r.stderr == "to-stderr\n"  # its stderr on ours, as docker's logs
    assert logs_2_to_1(h, "logger").endswith("to-stderr\n")
    img_ok(h, "rm", "logger")
    r = img(h, *run_args(h, "--rm", "-u", "nosuchuser", IMAGE, "id"))
    assert r.returncode != 0 and "nosuchuser" in r.stderr


def test_wasm_image_and_wasm_artifact(images, tmp_path):
    h = images
    img_ok(h, "load", build_wasm_archive(str(tmp_path)))
    assert "wasm" in img_ok(h, "images").stdout
    r = img(h, *run_args(h, "--rm", "--memory", "64m", WASM_IMAGE))
    assert r.returncode == 3 and "hello from wasm32-wasi: [/hello.wasm] [3]" in r.stdout, r.stderr
    # an OCI artifact: the layer is the module itself, with the wasm config media type
    layout = tmp_path / "artifact"
    module = open(os.path.join(os.path.dirname(__file__), "..", "examples", "wasm", "hello.wasm"), "rb").read()
    layer = {"mediaType": "application/wasm", "annotations": {"org.opencontainers.image.title": "hello.wasm"}}
    config = b"{}"
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": "application/vnd.wasm.config.v0+json",
        "config": {"mediaType": "application/vnd.wasm.config.v0+json", **_put(layout, config)},
        "layers": [{**layer, **_put(layout, module)}],
    }
    _write_layout(layout, [(manifest, "localhost/artifact:v1", None)])
    img_ok(h, "load", str(layout))
    r = img(h, *run_args(h, "--rm", "localhost/artifact:v1", "5"))  # the module is the entrypoint
    assert r.returncode == 5 and "[/hello.wasm] [5]" in r.stdout, r.stderr


def multi_platform_layout(tmp_path, busybox_archive) -> str:
    """An OCI layout whose index offers the busybox image for linux/amd64 and hello.wasm for wasip1/wasm."""
    layout = tmp_path / "multi"
    subprocess.run(["tar", "-xf", busybox_archive, "-C", str(_mkdir(layout))], check=True)
    wasm_dir = _mkdir(tmp_path / "wasm-layout")
    subprocess.run(["tar", "-xf", build_wasm_archive(str(tmp_path)), "-C", str(wasm_dir)], check=True)
    for blob in os.listdir(wasm_dir / "blobs" / "sha256"):
        os.replace(wasm_dir / "blobs" / "sha256" / blob, layout / "blobs" / "sha256" / blob)
    linux = json.load(open(layout / "index.json"))["manifests"][0]
    wasm = json.load(open(wasm_dir / "index.json"))["manifests"][0]
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {**_plain(wasm), "platform": {"os": "wasip1", "architecture": "wasm"}},
            {**_plain(linux), "platform": {"os": "linux", "architecture": "amd64"}},
        ],
    }
    index_desc = _put(layout, json.dumps(index).encode())
    top = {"mediaType": "application/vnd.oci.image.index.v1+json", **index_desc}
    top["annotations"] = {"org.opencontainers.image.ref.name": "localhost/multi:v1"}
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [top]}))
    return str(layout)


def test_multi_platform_index_picks_the_host_or_the_asked_platform(images, busybox_archive, tmp_path):
    h = images
    layout = multi_platform_layout(tmp_path, busybox_archive)
    img_ok(h, "load", str(layout))
    assert "linux" in img_ok(h, "images").stdout
    assert img_ok(h, *run_args(h, "--rm", "localhost/multi:v1", "echo", "linux side")).stdout == "linux side\n"
    img_ok(h, "load", "--platform", "wasip1/wasm", str(layout), "localhost/multi:wasm")
    r = img(h, *run_args(h, "--rm", "localhost/multi:wasm"))
    assert r.returncode == 3 and "hello from wasm32-wasi" in r.stdout
    r = img(h, "load", "--platform", "linux/s390x", str(layout))
    assert r.returncode != 0 and "linux/s390x" in r.stderr


def test_a_platform_an_index_names_in_words_no_platform_has_is_refused_in_one_line(images, busybox_archive, tmp_path):
    """An index's platform strings are shown in refusals ("the image has: ...", `run --platform`'s
    "actual: ...") and kept in images.json: a newline or a space in one made a refusal two lines
    (or a listing that lies). Real platforms are short words (linux, amd64, v8, 10.0.20348.2113)."""
    h = images
    layout = multi_platform_layout(tmp_path, busybox_archive)
    blobs = os.path.join(layout, "blobs", "sha256")
    top = json.load(open(os.path.join(layout, "index.json")))["manifests"][0]
    inner_path = os.path.join(blobs, top["digest"].split(":")[1])
    inner = json.load(open(inner_path))
    forged = (("os", "linux\nmrun: the image is fine"), ("architecture", "amd 64"), ("os.version", "10.0\t1"))
    for field, value in forged:
        hostile = json.loads(json.dumps(inner))
        hostile["manifests"][1]["platform"][field] = value
        desc = _put(pathlib.Path(layout), json.dumps(hostile).encode())
        (pathlib.Path(layout) / "index.json").write_text(json.dumps(
            {"schemaVersion": 2, "manifests": [{**top, **desc, "mediaType": top["mediaType"]}]}))
        r = img(h, "load", "--platform", "linux/s390x", layout)
        one_line_error(r, f"manifests[1].platform.{field}")
    archive = _docker_archive(tmp_path, [("f", b"")], config_extra={"os": "linux\nmrun: the image is fine"})
    one_line_error(img(h, "load", archive, "localhost/forged:1"), "config.os")
    assert img_ok(h, "images", "-q").stdout == ""


def test_an_image_of_125_layers_runs_with_the_top_layer_on_top(images, busybox_rootfs, tmp_path):
    """docker builds up to 125 layers. The overlay's options named each layer by its path under the
    image root, and the kernel takes one page of options: from about 45 layers up (fewer under a
    longer --image-root) `mrun run` failed with "No such file or directory"."""
    h = images
    base = [("bin", None), ("bin/busybox", open(os.path.join(busybox_rootfs, "bin", "busybox"), "rb").read()),
            ("bin/cat", "->busybox"), ("which", b"0\n")]
    more = [[(f"f{i}", b""), ("which", f"{i}\n".encode())] for i in range(1, 125)]
    img_ok(h, "load", _docker_archive(tmp_path, base, *more, config_extra={"config": {"Cmd": ["cat", "/which"]}}),
           "localhost/tall:1")
    r = img_ok(h, *run_args(h, "--rm", "localhost/tall:1"))
    assert r.stdout == "124\n"
    assert img_ok(h, *run_args(h, "--rm", "localhost/tall:1", "cat", "/f1", "/f124")).returncode == 0


def test_an_image_root_whose_path_holds_overlay_s_separators_works(images, busybox_archive, tmp_path):
    """A comma or a colon in --image-root split overlay's options: every run failed."""
    h = images
    root = str(tmp_path / "images,v2:x")
    assert h.mrun("--image-root", root, "load", busybox_archive).returncode == 0
    r = h.mrun("--image-root", root, *run_args(h, "--rm", IMAGE, "cat", "/etc/passwd"))
    assert r.returncode == 0 and r.stdout.startswith("root:"), r.stderr


@pytest.mark.parametrize("snapshotter", ["overlay", "copy"])
def test_a_layer_nesting_directories_deeply_runs_and_is_removed(images, busybox_rootfs, tmp_path, snapshotter):
    """1200 levels: the copy snapshotter walked the layer with os.walk, a generator per level, and
    `mrun run` was an internal RecursionError."""
    h = images
    deep = "a/" * 1200 + "f"
    layer = [("bin", None), ("bin/busybox", open(os.path.join(busybox_rootfs, "bin", "busybox"), "rb").read()),
             ("bin/cat", "->busybox"), (deep, b"at the bottom\n")]
    img_ok(h, "load", _docker_archive(tmp_path, layer, config_extra={"config": {"Cmd": ["cat", "/" + deep]}}),
           "localhost/deep:1")
    r = img(h, *run_args(h, "--name", "deeplayer", "localhost/deep:1"), env={"MRUN_SNAPSHOTTER": snapshotter})
    assert r.returncode == 0 and r.stdout == "at the bottom\n", r.stderr
    img_ok(h, "rm", "deeplayer")
    img_ok(h, "rmi", "localhost/deep:1")
    img_ok(h, "image", "prune")
    assert os.listdir(os.path.join(h.image_root, "layers")) == []


@pytest.mark.parametrize("snapshotter", ["overlay", "copy"])
def test_whiteouts_and_opaque_directories_across_layers(images, busybox_rootfs, tmp_path, snapshotter):
    """Layer 2 deletes a file and makes a directory opaque; both snapshotters must show only layer 2's view."""
    h = images
    base = [(f"bin/{n}", open(os.path.join(busybox_rootfs, "bin", n), "rb").read()) for n in ("busybox", "sh", "ls")]
    first = [("bin", None), *base, ("etc", None), ("etc/gone", b"deleted above"), ("etc/kept", b"kept\n")]
    first += [("data", None), ("data/old", b"hidden by opaque")]
    second = [("etc", None), ("etc/.wh.gone", b""), ("data", None), ("data/.wh..wh..opq", b""), ("data/new", b"n\n")]
    archive = _docker_archive(tmp_path, first, second, name="layers.tar")
    img_ok(h, "load", archive, "localhost/layers:v1")
    env = {"MRUN_SNAPSHOTTER": snapshotter}
    r = img(h, *run_args(h, "--rm", "localhost/layers:v1", "/bin/sh", "-c", "ls /etc /data"), env=env)
    assert r.returncode == 0, r.stderr
    # hostname and hosts: the files docker gives a container without a network, mounted over the image
    assert r.stdout.split() == ["/data:", "new", "/etc:", "hostname", "hosts", "kept"], r.stdout
    with open("/proc/self/mountinfo") as f:
        assert h.image_root not in f.read()


@pytest.mark.parametrize(
    "entries, why",
    [
        ([("../escaped", b"x")], "'..'"),
        ([("/abs-escaped", b"x")], "absolute"),
        ([("link", "->/tmp"), ("link/escaped-through-link", b"x")], "symlink"),
        ([("dir/../../escaped", b"x")], "'..'"),
        ([("hard", "=>../escaped")], "'..'"),
        # a whiteout of ".." removed the directory above the one it is in (above the layer for a
        # top-level one: the layer's unpacking directory), of "." or "" the directory itself
        ([(".wh...", b"")], "a whiteout of '..' names no file"),
        ([("a", None), ("a/b", b"x"), ("a/.wh...", b"")], "a whiteout of '..' names no file"),
        ([("a", None), ("a/b", b"x"), ("a/.wh..", b"")], "a whiteout of '.' names no file"),
        ([("a", None), ("a/.wh.", b"")], "a whiteout of '' names no file"),
    ],
)
def test_hostile_layers_are_refused_and_write_nothing_outside(images, tmp_path, entries, why):
    h = images
    outside = tmp_path / "escaped"
    entries = [(n.replace("/tmp", str(tmp_path)) if isinstance(n, str) else n, d) for n, d in entries]
    entries = [(n, d.replace("/tmp", str(tmp_path)) if isinstance(d, str) else d) for n, d in entries]
    archive = _docker_archive(tmp_path, entries)
    r = img(h, "load", archive, "localhost/hostile:v1")
    assert r.returncode != 0 and why in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert not outside.exists() and not (tmp_path / "escaped-through-link").exists()
    assert not os.path.exists("/abs-escaped")
    assert "hostile" not in img_ok(h, "images").stdout
    layers = os.path.join(h.image_root, "layers")
    assert not os.path.isdir(layers) or not os.listdir(layers)


@pytest.mark.parametrize("snapshotter", ["overlay", "copy"])
def test_a_layers_overlay_attributes_are_dropped_and_its_own_attributes_kept(images, busybox_rootfs, tmp_path,
                                                                             snapshotter):
    """A layer carrying overlayfs's private attributes (``trusted.overlay.*``, and ``user.*``'s,
    which a userxattr mount reads) fed the kernel's overlay metadata the image author chose: a
    directory whose ``trusted.overlay.redirect`` names another showed that one's files (this
    kernel follows redirects in lower layers: redirect_always_follow), and the kernel's own
    documentation warns that redirect and metacopy attributes from untrusted layers reach files
    they should not. Layers say what a directory hides with whiteouts (``.wh.``), never with
    these: dropped at unpack, each said in one line; the file's own attributes stay."""
    h = images
    base = [(f"bin/{n}", open(os.path.join(busybox_rootfs, "bin", n), "rb").read()) for n in ("busybox", "sh", "ls")]
    first = [("bin", None), *base, ("data", None), ("data/private", b"of data\n")]
    overlay = {"trusted.overlay.redirect": "/data", "user.overlay.redirect": "/data"}
    second = [("app", ("xattrs", overlay, None)), ("app/own", ("xattrs", {"user.note": "kept"}, b"own\n"))]
    archive = _docker_archive(tmp_path, first, second, name="xattrs.tar")
    r = img(h, "load", archive, "localhost/xattrs:v1")
    assert r.returncode == 0, r.stderr
    dropped = [line for line in r.stderr.splitlines() if "overlay" in line]
    assert len(dropped) == 1 and "'app'" in dropped[0] and "trusted.overlay.redirect" in dropped[0], r.stderr
    env = {"MRUN_SNAPSHOTTER": snapshotter}
    r = img(h, *run_args(h, "--rm", "localhost/xattrs:v1", "/bin/ls", "/app", "/data"), env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["/app:", "own", "/data:", "private"], r.stdout
    layers = os.path.join(h.image_root, "layers")
    found = [os.path.join(d, n) for d, _, names in os.walk(layers) for n in names if n == "own"]
    assert found and all(os.getxattr(f, "user.note") == b"kept" for f in found)
    apps = [d for d, _, _ in os.walk(layers) if d.endswith("/app")]
    assert apps and not [a for a in apps for x in os.listxattr(a) if ".overlay." in x]


def _info(name: str, data: bytes | None = b"x", **fields: object) -> tuple[tarfile.TarInfo, bytes | None]:
    info = tarfile.TarInfo(name)
    info.size = len(data or b"")
    for key, value in fields.items():
        setattr(info, key, value)
    return info, data


@pytest.mark.parametrize("images", ["cold"], indirect=True)
@pytest.mark.parametrize(
    "entries, needle",
    [
        ([_info("u", uid=99999999999)], "layer entry 'u': uid 99999999999 is out of range"),
        ([_info("g", gid=2**40)], "layer entry 'g': gid 1099511627776 is out of range"),
        ([_info("x", pax_headers={"SCHILY.xattr.user.a\x00b": "v"})], "layer entry 'x': extended attribute name"),
        ([_info("x", pax_headers={"SCHILY.xattr.": "v"})], "layer entry 'x': extended attribute name '' is empty"),
        ([_info("n" * 300)], "layer entry '" + "n" * 200 + "...': File name too long"),
        ([_info("l", None, type=tarfile.SYMTYPE, linkname="y" * 5000)], "layer entry 'l': File name too long"),
        ([_info("d", None, type=tarfile.DIRTYPE, mode=0o755), _info("h", None, type=tarfile.LNKTYPE, linkname="d")],
         "layer entry 'h': Operation not permitted"),
    ],
)
def test_a_layer_entry_the_kernel_cannot_take_is_one_line_naming_it(images, tmp_path, entries, needle):
    """Numbers and names no file can have (an owner past uid_t, an attribute name with a NUL, a
    name past NAME_MAX) were an "internal error" (OverflowError, ValueError) or named the
    unpacking directory's path on the host: now one line naming the entry and what is wrong."""
    h = images
    r = img(h, "load", _docker_archive(tmp_path, entries), "localhost/numbers:v1")
    assert r.returncode == 1 and needle in r.stderr and "internal error" not in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and h.image_root not in r.stderr, r.stderr
    layers = os.path.join(h.image_root, "layers")
    assert not os.path.isdir(layers) or not os.listdir(layers)


def _patched(layer: bytes, field: str, value: bytes, member: int = 0) -> bytes:
    """``layer`` with one header field of its ``member``-th header set to ``value`` (raw, as a
    hostile writer sets it), the header's checksum made right again."""
    from fuzz import TAR_FIELDS, _checksummed

    data = bytearray(layer)
    start, length = TAR_FIELDS[field]
    header = bytearray(data[member * 512:member * 512 + 512])
    header[start:start + length] = value.ljust(length, b"\x00")
    _checksummed(header)
    data[member * 512:member * 512 + 512] = header
    return bytes(data)


@pytest.mark.parametrize("images", ["cold"], indirect=True)
@pytest.mark.parametrize("layer, needle", [
    # tarfile's stream mode skipped the data it was not asked for block by block, never looking
    # for the end: a whiteout claiming 2**88 bytes spun a CPU for ever
    (lambda: _patched(_layer([("bin/.wh.x", b"")]), "size", b"\x80" + b"\xff" * 11), "it ends inside the"),
    # a negative size made tarfile seek backwards for the next header ("seeking backwards is not allowed")
    (lambda: _patched(_layer([("bin/.wh.x", b""), ("f", b"x")]), "size", b"\xff" * 8 + b"\x00" * 4),
     "size -4294967296 is negative"),
    # os.makedev cannot take a negative number: "internal error: OverflowError"
    (lambda: _patched(_layer([("dev/x", ("c", 1, 5))]), "devmajor", b"\xff" * 8), "devmajor -1 is out of range"),
    # gzip's EOFError ("Compressed file ended before the end-of-stream marker"): an internal error
    (lambda: __import__("gzip").compress(_layer([("f", os.urandom(50000))]))[:-1000], "compressed data is cut short"),
], ids=["huge-size", "negative-size", "negative-device", "gzip-cut"])
def test_a_layer_archive_the_unpacker_cannot_finish_is_one_line(images, tmp_path, layer, needle):
    """What fuzzing layers found (tests/test_fuzz.py::test_image_layer_mutations)."""
    h = images
    r = img(h, "load", _docker_archive(tmp_path, layer()), "localhost/damaged:v1")
    assert r.returncode == 1 and needle in r.stderr and "internal error" not in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    layers = os.path.join(h.image_root, "layers")
    assert not os.path.isdir(layers) or not os.listdir(layers)


@pytest.mark.parametrize("images", ["cold"], indirect=True)
def test_a_layer_ending_right_after_its_last_file_s_data_loads(images, tmp_path):
    """umoci ends a layer right after the last file's data, without the block's padding or the
    end-of-archive blocks (Go's archive/tar, so containerd, takes it): an entry's data cut short
    is refused, its padding missing is not (the skip to the next header read it as cut short)."""
    h = images
    layer = _layer([("f", b"x" * 1000)])[:512 + 1000]
    img_ok(h, "load", _docker_archive(tmp_path, layer), "localhost/unpadded:v1")
    layers = os.path.join(h.image_root, "layers")
    (fs,) = [os.path.join(layers, d, "fs") for d in os.listdir(layers)]
    assert open(os.path.join(fs, "f"), "rb").read() == b"x" * 1000


@pytest.mark.parametrize("images", ["cold"], indirect=True)
def test_a_directory_s_time_is_never_set_through_a_link_a_later_entry_made(images, tmp_path):
    """Directories get their times last (their entries change them). A later entry that made a
    parent of one a symlink (``a/b``, then ``a -> /elsewhere``) had the time set through it: the
    host's ``/elsewhere/b`` got the layer's time. And a directory a later entry replaced with a
    file was an internal error (NotADirectoryError)."""
    h = images
    outside = tmp_path / "outside"
    (outside / "b").mkdir(parents=True)
    os.utime(outside / "b", (1234567890, 1234567890))
    entries = [("a", None), ("a/b", None), ("a", "->" + str(outside)),
               ("c", None), ("c/d", None), ("c", b"a file now"), ("kept", None), ("kept/x", None)]
    img_ok(h, "load", _docker_archive(tmp_path, entries), "localhost/times:v2")
    assert os.stat(outside / "b").st_mtime == 1234567890, "a layer set the time of a directory outside it"
    layers = os.path.join(h.image_root, "layers")
    (fs,) = [os.path.join(layers, d, "fs") for d in os.listdir(layers)]
    assert os.path.islink(os.path.join(fs, "a")) and os.path.isfile(os.path.join(fs, "c"))
    assert os.lstat(os.path.join(fs, "kept", "x")).st_mtime == 0  # the directories still get theirs


@pytest.mark.parametrize("images", ["cold"], indirect=True)
def test_a_layer_entrys_time_out_of_range_is_the_epoch_as_containerd_makes_it(images, tmp_path):
    """containerd bounds an entry's time (archive.boundTime): before 1970 or past time_t is 0.
    Python's utime refused such a time with an OverflowError, and the load failed."""
    h = images
    entries = [_info("future", mtime=10**20), _info("past", mtime=-(10**20)), _info("early", mtime=-5),
               _info("dir", None, type=tarfile.DIRTYPE, mode=0o755, mtime=float("1e30")), _info("kept", mtime=1000)]
    img_ok(h, "load", _docker_archive(tmp_path, entries), "localhost/times:v1")
    layers = os.path.join(h.image_root, "layers")
    (fs,) = [os.path.join(layers, d, "fs") for d in os.listdir(layers)]
    assert {n: os.lstat(os.path.join(fs, n)).st_mtime for n in os.listdir(fs)} == {
        "future": 0, "past": 0, "early": 0, "dir": 0, "kept": 1000}


@pytest.mark.parametrize("images", ["cold"], indirect=True)
def test_a_deep_cgroup_parent_works_and_one_the_kernel_cannot_take_is_refused_leaving_nothing(images,
                                                                                           busybox_archive):
    """A --cgroup-parent whose parents' paths passed 255 bytes (the length of a mark's name)
    failed the run, "File name too long" naming a file in the state root, and left every parent
    it had made on the host's cgroup tree; one past PATH_MAX failed the same way. The first runs
    now; the second is refused before anything is made, naming the field."""
    h = images
    img_ok(h, "load", busybox_archive, IMAGE)
    deep = h.cgroup_parent + "/" + "/".join(["p" * 60] * 6)
    r = img(h, "run", "--rm", "--cgroup-parent", deep, "--cgroupns", "host", "--network", "none", IMAGE, "cat",
            "/proc/self/cgroup")
    assert r.returncode == 0 and "p" * 60 in r.stdout, r.stderr
    for parent in (h.cgroup_parent + "/" + "x/" * 2000, h.cgroup_parent + "/" + "n" * 300):
        r = img(h, "run", "--rm", "--cgroup-parent", parent, "--network", "none", IMAGE, "true")
        assert r.returncode == 125 and r.stderr.startswith("mrun: linux.cgroupsPath: "), r.stderr  # docker's code
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    # the harness finds what is left: cgroups under the test's parent, state, mounts


def test_a_blob_that_does_not_match_its_digest_is_refused(images, busybox_archive, tmp_path):
    h = images
    layout = _mkdir(tmp_path / "tampered")
    subprocess.run(["tar", "-xf", busybox_archive, "-C", str(layout)], check=True)
    blobs = layout / "blobs" / "sha256"
    biggest = max(os.listdir(blobs), key=lambda b: os.path.getsize(blobs / b))  # the layer
    data = bytearray((blobs / biggest).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (blobs / biggest).write_bytes(bytes(data))
    r = img(h, "load", str(layout))
    assert r.returncode != 0 and "hashes to" in r.stderr, r.stderr
    assert not os.path.isdir(os.path.join(h.image_root, "blobs")) or not any(
        b == biggest for b in os.listdir(os.path.join(h.image_root, "blobs", "sha256"))
    )
    assert "busybox" not in img_ok(h, "images").stdout


def test_bad_image_input_is_one_clear_line(images, tmp_path):
    h = images
    r = img(h, *run_args(h, "--rm", "localhost/nope:v1"))  # not here, and no registry on localhost to pull from
    one_line_error(r, "'localhost/nope:v1' not found here, and pulling it failed: localhost: cannot reach the registry")
    r = img(h, *run_args(h, "--rm", "--pull", "never", "localhost/nope:v1"))
    one_line_error(r, "'localhost/nope:v1' not found")
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"this is not a tarball")
    r = img(h, "load", str(junk))
    assert r.returncode != 0 and "tar" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_an_index_or_manifest_bigger_than_any_real_one_is_refused_unread(images, tmp_path):
    """A layout whose index names a 2 GiB blob as its manifest, or whose index.json is 2 GiB
    (sparse files here): each was read whole into memory before its hash or shape was checked
    (containerd's CVE-2023-25153 is the same). Refused after 8 MiB, in one line."""
    h = images
    layout = tmp_path / "huge-manifest"
    _mkdir(str(layout / "blobs" / "sha256"))
    digest = "ab" * 32
    with open(layout / "blobs" / "sha256" / digest, "wb") as f:
        f.truncate(2 << 30)
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": f"sha256:{digest}", "size": 2 << 30,
        "annotations": {"org.opencontainers.image.ref.name": "huge"}}]}))
    one_line_error(img(h, "load", str(layout), "localhost/huge:1"), "larger than 8 MiB")
    with open(layout / "index.json", "wb") as f:
        f.truncate(2 << 30)
    one_line_error(img(h, "load", str(layout), "localhost/huge:1"), "index.json", "larger than 8 MiB")
    assert "localhost/huge" not in img_ok(h, "images").stdout


def test_an_image_document_nested_past_python_s_stack_is_one_line(images, tmp_path):
    """An OCI layout whose index.json nests arrays 100000 deep: the load said "internal error:
    RecursionError"; an image config nested 700 deep loaded, and `image inspect` of it said the
    same. Refused as JSON mrun cannot read, in one line."""
    h = images
    layout = tmp_path / "deep"
    _mkdir(str(layout / "blobs" / "sha256"))
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    for depth in (100000, 700):  # past the decoder's stack; within it, past what inspect printed
        (layout / "index.json").write_text('{"schemaVersion": 2, "manifests": ' + "[" * depth + "]" * depth + "}")
        one_line_error(img(h, "load", str(layout), "localhost/deep:1"), "image index", "nested more than 128")
    assert "localhost/deep" not in img_ok(h, "images").stdout


def test_image_content_is_out_of_other_users_reach(images, busybox_archive):
    """An image root the operator made 0755 (mrun's own default is 0700): its layers and the
    containers' snapshots were 0755 below it, so any user could run a layer's set-uid program as
    root (moby's CVE-2021-41091). Both directories are made, and kept, root's alone."""
    h = images
    os.makedirs(h.image_root, mode=0o755)
    os.chmod(h.image_root, 0o755)
    for name in ("layers", "containers", "volumes"):  # as an older mrun left them
        os.makedirs(os.path.join(h.image_root, name), mode=0o755)
        os.chmod(os.path.join(h.image_root, name), 0o755)
    img_ok(h, "load", busybox_archive)
    img_ok(h, *run_args(h, "-d", "--name", "private", "-v", "kept:/kept", IMAGE, "sleep", "600"))
    for name in ("layers", "containers", "volumes"):
        assert os.stat(os.path.join(h.image_root, name)).st_mode & 0o777 == 0o700, name
    shell = os.path.join(h.image_root, "containers", "private", "rootfs", "bin", "sh")
    probe = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "test", "-e", shell])
    assert probe.returncode == 1  # root sees it; nobody cannot reach it
    assert os.path.exists(shell)
    img_ok(h, "rm", "-f", "private")


# -- helpers --------------------------------------------------------------------------------


def assert_limits(dirs: list[str], memory: int, cpu_quota: int) -> None:
    """The memory limit and CFS quota in the container's cgroup, v1 or v2."""
    assert dirs
    if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        assert open(os.path.join(dirs[0], "memory.max")).read().strip() == str(memory)
        assert open(os.path.join(dirs[0], "cpu.max")).read().split()[0] == str(cpu_quota)
    else:
        mem = next(d for d in dirs if "/memory/" in d)
        cpu = next(d for d in dirs if "/cpu,cpuacct/" in d or "/cpu/" in d)
        assert open(os.path.join(mem, "memory.limit_in_bytes")).read().strip() == str(memory)
        assert open(os.path.join(cpu, "cpu.cfs_quota_us")).read().strip() == str(cpu_quota)


def _mkdir(path):
    os.makedirs(path, exist_ok=True)
    return path


def _plain(desc: dict) -> dict:
    return {k: v for k, v in desc.items() if k in ("mediaType", "digest", "size")}


def _put(layout, data: bytes) -> dict:
    digest = hashlib.sha256(data).hexdigest()
    os.makedirs(layout / "blobs" / "sha256", exist_ok=True)
    (layout / "blobs" / "sha256" / digest).write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def _write_layout(layout, manifests) -> None:
    descs = []
    for manifest, name, platform in manifests:
        desc = {"mediaType": manifest["mediaType"], **_put(layout, json.dumps(manifest).encode())}
        desc["annotations"] = {"org.opencontainers.image.ref.name": name}
        if platform:
            desc["platform"] = platform
        descs.append(desc)
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": descs}))


def _layer(entries) -> bytes:
    """A layer tar: bytes = a file, '->target' = a symlink, None = a directory."""
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, data in entries:
            if isinstance(name, tarfile.TarInfo):  # made by the test, as it is: (info, its data or None)
                t.addfile(name, io.BytesIO(data) if data is not None else None)
                continue
            info = tarfile.TarInfo(name)
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                t.addfile(info)
            elif isinstance(data, tuple):  # ("c", maj, min), ("file", bytes, uid, gid, mode), ("dir", uid, gid, mode),
                # ("xattrs", {name: value}, bytes or None): a file (a directory) with extended attributes
                if data[0] == "xattrs":
                    info.pax_headers = {f"SCHILY.xattr.{k}": v for k, v in data[1].items()}
                    if data[2] is None:
                        info.type, info.mode = tarfile.DIRTYPE, 0o755
                        t.addfile(info)
                    else:
                        info.size, info.mode = len(data[2]), 0o755
                        t.addfile(info, io.BytesIO(data[2]))
                elif data[0] == "dir":
                    info.type, info.uid, info.gid, info.mode = tarfile.DIRTYPE, data[1], data[2], data[3]
                    t.addfile(info)
                elif data[0] == "c":
                    info.type, info.devmajor, info.devminor, info.mode = tarfile.CHRTYPE, data[1], data[2], 0o666
                    t.addfile(info)
                else:
                    info.size, info.uid, info.gid, info.mode = len(data[1]), data[2], data[3], data[4]
                    t.addfile(info, io.BytesIO(data[1]))
            elif data == "fifo":
                info.type, info.mode = tarfile.FIFOTYPE, 0o600
                t.addfile(info)
            elif isinstance(data, str) and data.startswith("=>"):
                info.type, info.linkname = tarfile.LNKTYPE, data[2:]
                t.addfile(info)
            elif isinstance(data, str):
                info.type, info.linkname = tarfile.SYMTYPE, data[2:]
                t.addfile(info)
            else:
                info.size, info.mode = len(data), 0o755
                t.addfile(info, io.BytesIO(data))
    return layer.getvalue()


def _docker_archive(tmp_path, entries, *more_layers, config_extra=None, name="hostile.tar", tag="") -> str:
    """A docker-archive whose layers hold ``entries`` (then each of ``more_layers``), named ``tag``
    if given (what `ctr image import` needs)."""
    layers = [e if isinstance(e, bytes) else _layer(e) for e in (entries, *more_layers)]  # bytes: a layer as it is
    diffs = ["sha256:" + hashlib.sha256(b).hexdigest() for b in layers]
    config = {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": diffs}}
    config.update(config_extra or {})
    names = [f"layer{i}.tar" for i in range(len(layers))]
    path = str(tmp_path / name)
    with tarfile.open(path, "w") as t:
        for member, data in (
            *zip(names, layers, strict=True),
            ("config.json", json.dumps(config).encode()),
            ("manifest.json", json.dumps([{"Config": "config.json", "Layers": names,
                                           **({"RepoTags": [tag]} if tag else {})}]).encode()),
        ):
            info = tarfile.TarInfo(member)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return path


def test_a_wasm_image_made_from_a_module_is_precompiled_saved_and_reloaded(images, tmp_path):
    h = images
    cache = {"MRUN_CACHE_DIR": str(tmp_path / "cache")}
    module = os.path.join(os.path.dirname(__file__), "..", "examples", "wasm", "hello.wasm")
    img_ok(h, "image", "wasm", module, "localhost/made:1", env=cache)
    assert len(img_ok(h, "cache", "list", env=cache).stdout.strip().splitlines()) == 1  # compiled on import
    r = img(h, *run_args(h, "--rm", "--name", "made1", "localhost/made:1", "4"), env=cache)
    assert r.returncode == 4 and "[/hello.wasm] [4]" in r.stdout, r.stderr
    assert len(img_ok(h, "cache", "list", env=cache).stdout.strip().splitlines()) == 1  # the run used that entry
    # a negative age pruned every entry (all are unused for more than -5 days): refused now
    one_line_error(img(h, "cache", "prune", "--unused-days", "-5", env=cache), "--unused-days")
    assert len(img_ok(h, "cache", "list", env=cache).stdout.strip().splitlines()) == 1
    archive = str(tmp_path / "made.tar")
    img_ok(h, "save", "localhost/made:1", archive)
    inspected = json.loads(
        subprocess.run(["skopeo", "inspect", f"oci-archive:{archive}"], check=True, capture_output=True).stdout
    )
    assert (inspected["Os"], inspected["Architecture"]) == ("wasip1", "wasm")
    other = str(tmp_path / "other-store")
    assert h.mrun("--image-root", other, "load", archive).returncode == 0
    r = h.mrun("--image-root", other, *run_args(h, "--rm", "localhost/made:1", "2"), env=cache)
    assert r.returncode == 2, r.stderr
    bad = tmp_path / "bad.wasm"
    bad.write_bytes(b"not wasm at all")
    r = img(h, "image", "wasm", str(bad), "localhost/bad:1")
    assert r.returncode != 0 and "not a WebAssembly" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    broken = tmp_path / "broken.wasm"
    broken.write_bytes(open(module, "rb").read()[:200])  # the right magic, cut short: it cannot compile
    r = img(h, "image", "wasm", str(broken), "localhost/broken:1", env=cache)
    assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1 and "broken.wasm" in r.stderr, r.stderr
    assert "localhost/broken" not in img_ok(h, "images").stdout


def test_precompiling_a_module_outside_any_container_is_bounded(images, tmp_path):
    """Seen: `mrun image wasm`, `load` and `pull` compiled an image's module in the calling
    process with no bound at all: a hostile module's compile costs gigabytes and minutes of the
    host's. Precompiling runs in a child under $MRUN_PRECOMPILE_MEMORY MiB and
    $MRUN_PRECOMPILE_CPU s (2048, 120); past them it is skipped with one warning, and the module
    compiles at create under its container's limits."""
    from test_wasm import costly_module

    h = images
    cache = {"MRUN_CACHE_DIR": str(tmp_path / "cache")}
    module = tmp_path / "costly.wasm"
    module.write_bytes(costly_module())
    r = img(h, "image", "wasm", str(module), "localhost/costly:1", env={**cache, "MRUN_PRECOMPILE_MEMORY": "16"})
    assert r.returncode == 0, r.stderr
    warning = r.stderr.strip().splitlines()
    assert len(warning) == 1 and "costly.wasm: compiling: aborted, out of memory past 16 MiB" in warning[0], r.stderr
    assert not img_ok(h, "cache", "list", env=cache).stdout.strip()
    r = img(h, *run_args(h, "--rm", "--memory", "512m", "localhost/costly:1"), env=cache)
    assert r.returncode == 0, r.stderr
    assert len(img_ok(h, "cache", "list", env=cache).stdout.strip().splitlines()) == 1  # compiled by the run


def test_inspect_shows_the_image_and_config(images, busybox_archive):
    h = images
    img_ok(h, "load", busybox_archive)
    img_ok(h, *run_args(h, "-d", "--name", "insp", "--hostname", "box1", IMAGE, "sleep", "600"))
    doc = json.loads(img_ok(h, "inspect", "insp").stdout)
    assert doc["state"]["status"] == "running" and doc["image"]["image"] == IMAGE
    assert doc["config"]["hostname"] == "box1"
    img_ok(h, "rm", "--force", "insp")


def test_the_quick_start_demo_runs_a_linux_and_a_wasm_image_side_by_side():
    """examples/demo.py is what the README's first command runs."""
    import sys

    demo = os.path.join(os.path.dirname(__file__), "..", "examples", "demo.py")
    r = subprocess.run([sys.executable, demo], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "[linux] linux: pid 1 on demo-linux" in r.stdout
    assert "[wasm] hello from wasm32-wasi: [/hello.wasm] [0] [wasm]" in r.stdout
    assert '{"exit codes": {"linux": 0, "wasm": 0}}' in r.stdout


@pytest.mark.parametrize(
    "fmt, transport", [("oci-archive", "oci-archive"), ("oci-dir", "oci"), ("docker-archive", "docker-archive")]
)
def test_save_in_each_format_reads_back_in_skopeo_and_mrun(images, busybox_archive, tmp_path, fmt, transport):
    h = images
    img_ok(h, "load", busybox_archive)
    out = str(tmp_path / f"saved-{fmt}")
    img_ok(h, "save", "--format", fmt, IMAGE, out)
    inspected = json.loads(
        subprocess.run(["skopeo", "inspect", f"{transport}:{out}"], check=True, capture_output=True).stdout
    )
    assert inspected["Os"] == "linux"
    other = str(tmp_path / "other")
    assert h.mrun("--image-root", other, "load", out, "localhost/again:1").returncode == 0
    r = h.mrun("--image-root", other, *run_args(h, "--rm", "localhost/again:1", "echo", fmt))
    assert r.returncode == 0 and r.stdout == f"{fmt}\n", r.stderr


@pytest.mark.parametrize("fmt", ["oci-archive", "docker-archive"])
def test_save_of_several_images_is_one_archive_that_loads_them_all(images, busybox_archive, tmp_path, fmt):
    """docker's `save A B -o FILE` and `save A B > FILE`: one archive with every image, each blob
    once (it was refused: "one image per archive"), which `load` reads back whole. mrun's `save
    IMAGE ARCHIVE` stays: a second word that names no image is the archive."""
    h = images
    img_ok(h, "load", busybox_archive)
    img_ok(h, "tag", IMAGE, "localhost/same:1")  # one image under two names
    img_ok(h, *run_args(h, "--name", "maker", IMAGE, "sh", "-c", "echo other > /made"))
    img_ok(h, "commit", "maker", "localhost/other:2")
    img_ok(h, "rm", "maker")
    saved = str(tmp_path / "three.tar")
    img_ok(h, "save", "-f", fmt, "-o", saved, IMAGE, "localhost/same:1", "localhost/other:2", IMAGE)
    names = tarfile.open(saved).getnames()
    assert len(names) == len(set(names)), "a blob or layer was written twice"
    env = {**os.environ, **h.base_env}
    base = [h.binary, "--root", h.root, "--image-root", h.image_root]
    with open(tmp_path / "piped.tar", "wb") as f:
        r = subprocess.run([*base, "save", "-f", fmt, IMAGE, "localhost/other:2"], stdout=f, stderr=subprocess.PIPE,
                           env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    assert img_ok(h, "save", "-f", fmt, IMAGE, str(tmp_path / "one.tar")).stdout == ""  # mrun's form
    for archive, loaded in ((saved, {IMAGE, "localhost/same:1", "localhost/other:2"}),
                            (str(tmp_path / "piped.tar"), {IMAGE, "localhost/other:2"}),
                            (str(tmp_path / "one.tar"), {IMAGE})):
        other = str(tmp_path / f"into-{os.path.basename(archive)}")
        r = h.mrun("--image-root", other, "load", "-i", archive)
        assert r.returncode == 0, r.stderr
        said = {line.removeprefix("Loaded image: ") for line in r.stdout.splitlines()}
        assert {n.removeprefix("docker.io/library/") for n in said} == loaded, r.stdout
        if "localhost/other:2" in loaded:
            run = h.mrun("--image-root", other, *run_args(h, "--rm", "localhost/other:2", "cat", "/made"))
            assert run.stdout == "other\n", run.stderr


def test_load_and_save_take_docker_s_flags_and_pipes(images, busybox_archive, tmp_path):
    """docker's forms: `docker save IMG | mrun load`, `mrun save IMG | docker load`, `load -i FILE`,
    `save -o FILE` (mrun took a path argument only: "No such option: -o"). stdin may be a pipe or
    a file, stdout is streamed, a terminal is refused in docker's words, and the copy of a piped
    archive leaves nothing in the image store."""
    h = images
    env = {**os.environ, **h.base_env}
    base = [h.binary, "--root", h.root, "--image-root", h.image_root]
    other = str(tmp_path / "other")
    with open(busybox_archive, "rb") as f:
        piped = subprocess.run([*base, "load"], input=f.read(), capture_output=True, env=env, timeout=60)
    assert piped.returncode == 0 and piped.stdout.decode() == f"Loaded image: {IMAGE}\n", piped.stderr
    saver = subprocess.Popen([*base, "save", IMAGE], stdout=subprocess.PIPE, env=env)
    loader = subprocess.run([h.binary, "--root", h.root, "--image-root", other, "load", "-q"], stdin=saver.stdout,
                            capture_output=True, env=env, timeout=60)
    saver.stdout.close()
    assert saver.wait(timeout=60) == 0 and loader.returncode == 0, loader.stderr
    assert loader.stdout.decode() == f"Loaded image: {IMAGE}\n"  # -q: docker's (25) says it too, without progress
    r = h.mrun("--image-root", other, *run_args(h, "--rm", IMAGE, "echo", "through a pipe"))
    assert r.returncode == 0 and r.stdout == "through a pipe\n", r.stderr
    saved = tmp_path / "saved.tar"
    img_ok(h, "save", "-o", str(saved), "-f", "docker-archive", IMAGE)
    assert "manifest.json" in tarfile.open(saved).getnames()
    with open(saved, "rb") as f:  # a file on stdin, and -i
        r = subprocess.run([h.binary, "--root", h.root, "--image-root", str(tmp_path / "third"), "load"], stdin=f,
                           capture_output=True, env=env, timeout=60)
    assert r.returncode == 0 and r.stdout.decode() == f"Loaded image: {IMAGE}\n", r.stderr
    assert h.mrun("--image-root", str(tmp_path / "fourth"), "load", "-i", str(saved)).returncode == 0
    leader, follower = os.openpty()
    try:
        r = subprocess.run([*base, "save", IMAGE], stdout=follower, stderr=subprocess.PIPE, env=env, timeout=60)
    finally:
        os.close(follower)
        os.close(leader)
    assert r.returncode == 1 and r.stderr.decode() == (
        "mrun: save: cowardly refusing to save to a terminal. Use the -o flag or redirect\n")
    for args, words in ((["load"], "mrun: load: stdin was empty: no archive came"),
                        (["load", "-i", str(saved), str(saved)], "the archive twice"),
                        (["save", "-o", str(saved), IMAGE, "localhost/other:1"], "'localhost/other:1' not found"),
                        (["save", "-f", "oci-dir", IMAGE], "give -o DIRECTORY")):
        r = img(h, *args)
        assert r.returncode == 1, (args, r.stderr)
        one_line_error(r, words)
    r = img(h, "save", "-o", "/no/such/x.tar", IMAGE)  # the name given, not the temporary one beside it
    one_line_error(r)
    assert r.stderr.endswith("No such file or directory: /no/such/x.tar\n"), r.stderr
    from mrun.images.install import host_platform

    here = "/".join(host_platform())  # the busybox archive's (docker 28's save --platform was "No such option")
    img_ok(h, "save", "--platform", here, "-o", str(tmp_path / "platform.tar"), IMAGE)
    r = img(h, "save", "--platform", "linux/s390x", "-o", str(tmp_path / "none.tar"), IMAGE)
    one_line_error(r, "does not match the specified platform", "wanted linux/s390x", f"actual: {here}")
    assert not (tmp_path / "none.tar").exists()
    r = subprocess.run([*base, "load"], input=b"not a tarball", capture_output=True, env=env, timeout=60)
    assert r.returncode == 1 and r.stderr.decode().startswith("mrun: stdin: not a tar archive"), r.stderr
    with open("/dev/zero", "rb") as zeros:  # endless, and no archive: refused at its first block, not copied on
        r = subprocess.run([*base, "load"], stdin=zeros, capture_output=True, env=env, timeout=60)
    assert r.returncode == 1 and r.stderr.decode().startswith("mrun: stdin: not a tar archive"), r.stderr
    # A stream named with -i is copied as stdin is: /dev/zero was read for ever (tarfile's xz
    # probe takes zeros as padding), and a fifo (`-i <(curl ...)`) could not be read at all.
    r = subprocess.run([*base, "load", "-i", "/dev/zero"], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 1, r.stderr
    one_line_error(r, "/dev/zero: not a tar archive")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    writer = subprocess.Popen(["sh", "-c", f"exec cat {saved} > {fifo}"])
    r = subprocess.run([h.binary, "--root", h.root, "--image-root", str(tmp_path / "fifth"), "load", "-i", str(fifo)],
                       capture_output=True, env=env, timeout=60)
    assert writer.wait(timeout=60) == 0
    assert r.returncode == 0 and r.stdout.decode() == f"Loaded image: {IMAGE}\n", r.stderr
    for root in (h.image_root, other, str(tmp_path / "fifth")):
        assert sorted(os.listdir(root)) == ["blobs", "containers", "images.json", "images.json.spare", "layers", "lock",
                                            "volumes"]


def test_layer_ownership_modes_hard_links_devices_and_zstd(images, busybox_rootfs, tmp_path):
    """What a real layer carries survives unpacking; a zstd-compressed layer is read too."""
    import zstandard

    h = images
    base = [(f"bin/{n}", open(os.path.join(busybox_rootfs, "bin", n), "rb").read()) for n in ("busybox", "sh", "stat")]
    entries = [("bin", None), *base, ("data", None), ("data/owned", ("file", b"x", 1234, 4321, 0o640))]
    entries += [("data/hard", "=>data/owned"), ("data/null", ("c", 1, 3)), ("data/pipe", "fifo")]
    layer = zstandard.ZstdCompressor().compress(_layer(entries))
    diff = "sha256:" + hashlib.sha256(_layer(entries)).hexdigest()
    layout = tmp_path / "zstd"
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [diff]}})
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **_put(layout, config.encode())},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+zstd", **_put(layout, layer)}],
    }
    _write_layout(layout, [(manifest, "localhost/zstd:v1", None)])
    img_ok(h, "load", str(layout))
    script = "stat -c '%n %u %g %a %h %F %t:%T' /data/owned /data/hard /data/null /data/pipe"
    r = img_ok(h, *run_args(h, "--rm", "localhost/zstd:v1", "/bin/sh", "-c", script))
    lines = r.stdout.splitlines()
    assert lines[0].startswith("/data/owned 1234 4321 640 2 regular file")
    assert lines[1].startswith("/data/hard 1234 4321 640 2 regular file")
    assert lines[2].split()[-1] == "1:3" and "character special file" in lines[2]
    assert "fifo" in lines[3]


def test_memory_and_cpus_reach_the_cgroup_of_a_wasm_image(images, tmp_path):
    h = images
    img_ok(h, "load", build_wasm_archive(str(tmp_path)))
    args = ["-d", "--name", "wasmlim", "--memory", "40m", "--cpus", "0.25", "--entrypoint", "/pod.wasm"]
    img_ok(h, *run_args(h, *args, WASM_IMAGE, "/never-written", "/never"))  # waits forever for its input
    assert_limits(cgroup_dirs(f"{h.cgroup_parent}/wasmlim"), 40 << 20, 25000)
    assert json.loads(img_ok(h, "inspect", "wasmlim").stdout)["state"]["status"] == "running"
    img_ok(h, "stop", "-t", "2", "wasmlim")
    img_ok(h, "rm", "wasmlim")


def test_sparse_files_in_a_layer_stay_sparse(images, tmp_path):
    """A GNU sparse entry (a few kB in the layer) must not unpack into a gigabyte of zeros."""
    h = images
    src = tmp_path / "sparse-src"
    src.mkdir()
    with open(src / "big", "wb") as f:
        f.truncate(1 << 30)
        f.seek(1 << 29)
        f.write(b"middle")
    layer = tmp_path / "layer.tar"
    subprocess.run(["tar", "--sparse", "--format=gnu", "-cf", str(layer), "-C", str(src), "big"], check=True)
    data = layer.read_bytes()
    assert len(data) < 64 << 10  # the layer itself is small: it is a sparse entry
    diff = "sha256:" + hashlib.sha256(data).hexdigest()
    config = {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [diff]},
              "config": {"Cmd": ["/big"]}}
    archive = _one_layer_archive(str(tmp_path / "sparse.tar"), data, config)
    img_ok(h, "load", archive, "localhost/sparse:1")
    big = os.path.join(h.image_root, "layers", diff.removeprefix("sha256:"), "fs", "big")
    st = os.stat(big)
    assert st.st_size == 1 << 30
    assert st.st_blocks * 512 < 1 << 20, f"{st.st_blocks * 512} bytes on disk for a sparse file"
    with open(big, "rb") as f:
        f.seek(1 << 29)
        assert f.read(6) == b"middle"


def test_home_from_the_image_user_and_unset_env_names_left_out(images, busybox_archive):
    """docker's rules: HOME from the image user's passwd entry (else /); `-e NAME` passes the
    caller's value, and leaves NAME out when the caller has none."""
    h = images
    img_ok(h, "load", busybox_archive)
    show = "echo home=$HOME; env | grep -c MRUN_TEST_ || true"
    env = {"MRUN_TEST_SET": "v"}
    r = img_ok(h, *run_args(h, "--rm", "-e", "MRUN_TEST_SET", "-e", "MRUN_TEST_UNSET", IMAGE, "sh", "-c", show),
               env=env)
    assert r.stdout.split() == ["home=/root", "1"], r.stdout
    r = img_ok(h, *run_args(h, "--rm", "--user", "65534", IMAGE, "sh", "-c", "echo $HOME"))
    assert r.stdout == "/\n", r.stdout  # nobody's passwd entry says /
    r = img_ok(h, *run_args(h, "--rm", "-e", "HOME=/mine", IMAGE, "sh", "-c", "echo $HOME"))
    assert r.stdout == "/mine\n"
    # docker's HOSTNAME, and TERM=xterm with -t, under what the image and the caller set
    r = img_ok(h, *run_args(h, "--rm", "--hostname", "box7", IMAGE, "sh", "-c", "echo $HOSTNAME ${TERM:-none}"))
    assert r.stdout == "box7 none\n"
    r = img_ok(h, *run_args(h, "--rm", "-e", "HOSTNAME=mine", IMAGE, "sh", "-c", "echo $HOSTNAME"))
    assert r.stdout == "mine\n"


def test_detached_containers_report_their_exit_code(images, busybox_archive, tmp_path):
    """docker shows `Exited (3)`: a detached container's supervisor records the code, for Linux
    and wasm alike, and `mrun stop` leaves the code of the signal that ended it."""
    import time

    h = images
    img_ok(h, "load", busybox_archive)
    img_ok(h, "load", build_wasm_archive(str(tmp_path)))
    img_ok(h, *run_args(h, "-d", "--name", "three", IMAGE, "sh", "-c", "exit 3"))
    img_ok(h, *run_args(h, "-d", "--name", "wasm3", WASM_IMAGE))  # its Cmd exits 3
    img_ok(h, *run_args(h, "-d", "--name", "sleeper", IMAGE, "sleep", "600"))
    img_ok(h, "stop", "-t", "1", "sleeper")
    deadline = time.monotonic() + 15
    while True:
        rows = {line.split()[0]: line for line in img_ok(h, "ps", "-a").stdout.splitlines()[1:]}
        if all("Exited" in rows.get(c, "") for c in ("three", "wasm3", "sleeper")) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert "Exited (3)" in rows["three"] and "Exited (3)" in rows["wasm3"], rows
    assert "Exited (137)" in rows["sleeper"], rows  # busybox sleep as PID 1 ignores SIGTERM
    assert json.loads(img_ok(h, "inspect", "three").stdout)["exit"]["exit_code"] == 3
    for c in ("three", "wasm3", "sleeper"):
        img_ok(h, "rm", c)


def test_a_container_run_in_the_foreground_keeps_its_exit_code(images, busybox_archive):
    """`docker run --name x IMAGE ...; docker wait x` (or `docker inspect -f
    '{{.State.ExitCode}}' x`, `docker ps -a`'s "Exited (3)"): a container run in the foreground
    without --rm keeps its code as a detached one does. `wait` said "no exit code was kept
    (only `mrun run -d` keeps one)" and `ps -a` "stopped"."""
    h = images
    img_ok(h, "load", busybox_archive)
    assert img(h, *run_args(h, "--name", "fg3", IMAGE, "sh", "-c", "exit 3")).returncode == 3
    assert img(h, *run_args(h, "--name", "fg0", IMAGE, "true")).returncode == 0
    r = img(h, "wait", "fg3", "fg0")
    assert (r.returncode, r.stdout.split()) == (0, ["3", "0"]), (r.stdout, r.stderr)
    rows = {line.split()[0]: line for line in img_ok(h, "ps", "-a").stdout.splitlines()[1:]}
    assert "Exited (3)" in rows["fg3"] and "Exited (0)" in rows["fg0"], rows
    assert json.loads(img_ok(h, "inspect", "fg3").stdout)["exit"]["exit_code"] == 3
    img_ok(h, "rm", "fg3", "fg0")


def test_output_its_reader_stopped_reading_ends_quietly_as_docker(images, busybox_archive):
    """`mrun logs web | head -1`, `mrun save IMAGE | head -c 100`: the reader has what it wanted
    and closed the pipe. docker (like any Go or C program) ends by SIGPIPE, silently, status
    141 in the shell; mrun printed "mrun: logs: Broken pipe" and exited 1."""
    h = images
    img_ok(h, "load", busybox_archive)
    img_ok(h, *run_args(h, "-d", "--name", "chatty", IMAGE, "sh", "-c", "seq 1 200000; sleep 600"))
    deadline = time.monotonic() + 30
    while img_ok(h, "logs", "--tail", "1", "chatty").stdout != "200000\n" and time.monotonic() < deadline:
        time.sleep(0.1)
    for argv in (["logs", "chatty"], ["logs", "-t", "chatty"], ["save", IMAGE], ["export", "chatty"]):
        with tempfile.TemporaryFile("w+b") as err:
            p = subprocess.Popen([h.binary, "--root", h.root, "--image-root", h.image_root, *argv],
                                 stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err,
                                 env={**os.environ, **h.base_env})
            assert p.stdout is not None
            p.stdout.read(1)
            p.stdout.close()
            assert p.wait(timeout=30) == 141, argv
            err.seek(0)
            assert err.read() == b"", argv
    img_ok(h, "rm", "-f", "chatty")


@pytest.mark.parametrize("images", ["warm", "cold", "python"], indirect=True)
def test_a_caller_with_its_standard_descriptors_closed_gets_what_it_asked(images, busybox_archive):
    """A daemon or script that calls `mrun run -d ... <&- >&- 2>&-`: mrun's own files took the
    numbers 0, 1 and 2 (the container's image.json as stderr, its supervisor's note as stdin), so
    a message meant for stderr went into a state file and the run failed (125, unsaid) leaving a
    stopped container behind. /dev/null stands in for a closed one, as Go's runtime gives runc."""
    h = images
    img_ok(h, "load", busybox_archive)

    def closed() -> None:
        for fd in (0, 1, 2):
            os.close(fd)

    r = img(h, *run_args(h, "-d", "--name", "quiet", IMAGE, "sleep", "600"), preexec_fn=closed)
    assert r.returncode == 0
    assert "Up " in img_ok(h, "ps", "--filter", "name=quiet").stdout
    r = img(h, *run_args(h, "--name", "fg", IMAGE, "sh", "-c", "echo out; echo err >&2; exit 3"), preexec_fn=closed)
    assert r.returncode == 3
    assert img_ok(h, "wait", "fg").stdout == "3\n"
    assert img(h, "logs", "quiet", preexec_fn=closed).returncode == 0  # was: "internal error: AttributeError"
    python_cold = [os.path.join(os.path.dirname(h.binary), "mrun-python"), "--root", h.root,
                   "--image-root", h.image_root]  # Python's own start with a descriptor closed
    for argv in (["logs", "quiet"], ["run", "--rm", "--network", "none", IMAGE, "nosuch"]):
        r = subprocess.run([*python_cold, *argv], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           env={**os.environ, **h.base_env, "MRUN_WARM": "0"}, preexec_fn=lambda: os.close(2))
        assert "mrun:" not in r.stdout, r.stdout  # a message for stderr: not on stdout instead
        assert r.returncode == (0 if argv[0] == "logs" else 127)
    for name in ("quiet", "fg"):
        bundle = os.path.join(h.image_root, "containers", name)
        for doc in ("config.json", "image.json"):
            with open(os.path.join(bundle, doc)) as f:
                json.load(f)  # whole: nothing written into it
    img_ok(h, "rm", "-f", "quiet", "fg")


def _listed(h, name: str) -> str:
    """What `ps -a` says of ``name``: docker's State (running, created, paused), or for an exited
    (or restarting) one its code as its STATUS shows it, "(3)"; "" when it is not listed."""
    rows = [line.split("\t") for line in img_ok(h, "ps", "-a", "--format", "{{.Names}}\t{{.State}}\t{{.Status}}")
            .stdout.splitlines()]
    for row_name, state, status in rows:
        if row_name == name:
            return status.split()[1] if state in ("exited", "restarting") else state
    return ""


def test_a_run_rm_whose_caller_or_supervisor_is_killed_is_removed_once_it_ends(images, busybox_archive):
    """`timeout -s KILL 5 mrun run --rm IMAGE ...` (or the OOM killer taking the caller) once the
    container runs: the container runs on, as docker's does when its client is killed, but once it
    ended it stayed, stopped, holding its name (a script's next `run --rm --name` was refused), its
    rootfs mount and writable layer: the caller was what removed it. docker's daemon removes an
    AutoRemove container when it ends, whoever waits; here the child that ran it does (the warm
    template's, or the cold caller's: cli.cold_child), and where none is left (`run -d --rm` whose
    supervisor was killed), the next command that finds it ended. One without --rm is kept,
    stopped, as docker keeps it; inspect says AutoRemove as docker's does, foreground too."""
    h = images
    img_ok(h, "load", busybox_archive)
    base = [h.binary, "--root", h.root, "--image-root", h.image_root]
    env = {**os.environ, **h.base_env}

    def running(name: str) -> None:
        deadline = time.monotonic() + 20
        while _listed(h, name) != "running":
            assert time.monotonic() < deadline, name
            time.sleep(0.05)

    def ended(name: str, removed: bool) -> None:
        deadline = time.monotonic() + 20
        while _listed(h, name) == "running":
            assert time.monotonic() < deadline, name
            time.sleep(0.1)
        assert _listed(h, name) == ("" if removed else "(0)"), name
        assert os.path.exists(os.path.join(h.image_root, "containers", name)) is not removed, name

    callers = {}
    for name, flags in (("fg", ["--rm"]), ("kept", [])):
        callers[name] = subprocess.Popen([*base, *run_args(h, *flags, "--name", name, IMAGE, "sleep", "2")],
                                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL, env=env)
    img_ok(h, *run_args(h, "-d", "--rm", "--name", "bg", IMAGE, "sleep", "2"))
    img_ok(h, "create", "--rm", "--network", "none", "--cgroup-parent", h.cgroup_parent, "--name", "made", IMAGE)
    for name in ("fg", "kept", "bg"):
        running(name)
    auto = img_ok(h, "inspect", "-f", "{{.HostConfig.AutoRemove}}", "fg", "kept", "bg").stdout.split()
    assert auto == ["true", "false", "true"]
    for caller in callers.values():
        caller.kill()
        caller.wait()
    with open(os.path.join(h.image_root, "containers", "bg", "supervisor.json")) as f:
        os.kill(json.load(f)["pid"], signal.SIGKILL)
    assert _listed(h, "fg") == "running"  # it runs on, as docker's
    ended("fg", removed=True)
    ended("bg", removed=True)
    ended("kept", removed=False)  # its exit code noted by the child that ran it (the next test)
    assert _listed(h, "made") == "created"  # recorded as stopped, never run: not one to remove yet
    assert img_ok(h, *run_args(h, "--rm", "--name", "fg", IMAGE, "echo", "again")).stdout == "again\n"
    img_ok(h, "rm", "kept", "made")
    assert not h.leftovers()


def _in_a_cgroup_of_its_own(path: str) -> list[str]:
    """A caller's cgroup (a login session's scope, a CI job's, a systemd unit's), ``path`` in every
    hierarchy, cpusets filled as v1 needs. -> its directories."""
    made = []
    for top in cgroup_dirs("/"):
        d = os.path.join(top, path.lstrip("/"))
        os.makedirs(d, exist_ok=True)
        made.append(d)
        if os.path.exists(os.path.join(top, "cpuset.cpus")):
            for f in ("cpuset.cpus", "cpuset.mems"):
                walk = top
                for part in path.strip("/").split("/"):
                    walk = os.path.join(walk, part)
                    with open(os.path.join(os.path.dirname(walk), f)) as src:
                        value = src.read().strip()
                    with open(os.path.join(walk, f), "w") as dst:
                        dst.write(value)
    return made


def test_a_detached_container_outlives_the_end_of_its_callers_cgroup(images, busybox_archive):
    """`mrun run -d` from a login session, a CI job or a systemd unit (`ExecStart=mrun run -d ...`),
    whose cgroup then ends: systemd (or the job runner) kills every process in it, SIGTERM then
    SIGKILL. The supervisor was forked by the process that took on the caller, so it was in that
    cgroup and died with it; the container, in its own cgroup, ran on with its output going
    nowhere, its exit code never noted ("Exited (?)"), its restart policy gone. docker's
    containers are its daemon's; podman moves conmon to a cgroup of its own. mrun's supervisor is
    born in one beside its container's (NAME+supervisor), and leaves nothing there once it ends."""
    h = images
    img_ok(h, "load", busybox_archive)
    caller = f"{h.cgroup_parent}/caller"
    dirs = _in_a_cgroup_of_its_own(caller)
    try:
        enter = " ".join(f"echo $$ > {d}/cgroup.procs;" for d in dirs)
        base = [h.binary, "--root", h.root, "--image-root", h.image_root]
        ticking = 'trap "exit 3" TERM; while :; do echo tick; sleep 0.05; done'
        argv = [*base, *run_args(h, "-d", "--name", "sv", "--restart", "on-failure:3", IMAGE, "sh", "-c", ticking)]
        script = f"{enter} exec {shlex.join(argv)}"
        r = subprocess.run(["sh", "-c", script], env={**os.environ, **h.base_env}, capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 0, r.stderr
        with open(os.path.join(h.image_root, "containers", "sv", "supervisor.json")) as f:
            supervisor = json.load(f)["pid"]
        with open(f"/proc/{supervisor}/cgroup") as f:
            assert caller not in f.read()
        for sig in (signal.SIGTERM, signal.SIGKILL):  # systemd's stop of a scope
            for d in dirs:
                with open(os.path.join(d, "cgroup.procs")) as f:
                    for pid in f.read().split():
                        try:
                            os.kill(int(pid), sig)
                        except ProcessLookupError:
                            pass
            time.sleep(0.2)
        os.kill(supervisor, 0)  # it lives
        ticks = img_ok(h, "logs", "sv").stdout.count("tick")
        time.sleep(0.5)
        assert img_ok(h, "logs", "sv").stdout.count("tick") > ticks  # its output still goes to its log
        img_ok(h, "stop", "sv")
        assert img_ok(h, "inspect", "-f", "{{.State.ExitCode}}", "sv").stdout.strip() == "3"
        assert _listed(h, "sv") == "(3)"
        _no_supervisor_cgroup(h, "sv")
        img_ok(h, "rm", "sv")
    finally:
        _end_a_cgroup(dirs)
    assert not h.leftovers()


def _leave_a_supervisor_cgroup_behind(h, name: str) -> None:
    """A supervisor held still (SIGSTOP: a host thrashing, a debugger) while `rm -f` removes its
    container: rm waits for it to leave its cgroup for a while (beside.LEAVING), then returns;
    the supervisor is then killed before it leaves. Its cgroup is left empty, and the record that
    named it went with the container's bundle."""
    img_ok(h, *run_args(h, "-d", "--name", name, IMAGE, "sleep", "1000"))
    _in_the_supervisor_cgroup(h, name)
    with open(os.path.join(h.image_root, "containers", name, "supervisor.json")) as f:
        supervisor = json.load(f)["pid"]
    os.kill(supervisor, signal.SIGSTOP)
    try:
        img_ok(h, "rm", "-f", name)
    finally:
        os.kill(supervisor, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while any(open(os.path.join(d, "cgroup.procs")).read().split()
              for d in cgroup_dirs(f"{h.cgroup_parent}/{name}+supervisor")):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert cgroup_dirs(f"{h.cgroup_parent}/{name}+supervisor")  # the case: left, and named by no record


def test_a_supervisor_s_cgroup_left_by_one_killed_after_its_container_s_removal_is_repaired(
        images, busybox_archive):
    """A crash at that instant leaves state the next command repairs: the supervisor's cgroup is
    marked as mrun's when it is made (as the parents mrun makes are), so `system prune` removes
    it, and the next detached container of that name takes it as its own and removes it at its
    end. It was left for good: nothing named it any more, and a later supervisor born in it took
    it as someone else's and never removed it."""
    h = images
    img_ok(h, "load", busybox_archive)
    _leave_a_supervisor_cgroup_behind(h, "sk")
    assert "sk+supervisor" in img_ok(h, "system", "prune").stdout
    assert not cgroup_dirs(f"{h.cgroup_parent}/sk+supervisor")
    _leave_a_supervisor_cgroup_behind(h, "sk")
    img_ok(h, *run_args(h, "-d", "--name", "sk", IMAGE, "sleep", "1000"))
    _in_the_supervisor_cgroup(h, "sk")
    img_ok(h, "rm", "-f", "sk")
    assert not cgroup_dirs(f"{h.cgroup_parent}/sk+supervisor")
    assert not h.leftovers()


def _end_a_cgroup(dirs: list[str]) -> None:
    """What is left in a test's caller cgroup killed (it failed, say), and its directories removed."""
    deadline = time.monotonic() + 10
    for d in dirs:
        while True:
            try:
                os.rmdir(d)
                break
            except FileNotFoundError:
                break
            except OSError:
                assert time.monotonic() < deadline, d
                with open(os.path.join(d, "cgroup.procs")) as f:
                    for pid in f.read().split():
                        try:
                            os.kill(int(pid), signal.SIGKILL)
                        except ProcessLookupError:
                            pass
                time.sleep(0.05)


def test_a_detached_container_s_supervisor_is_the_oom_killer_s_last_choice_and_its_container_is_not(
        images, busybox_archive):
    """A host out of memory: the kernel's OOM killer takes the process with the highest score. A
    detached container's supervisor (a Python process, its RSS counted whole) had its caller's
    score: it could be taken before the container, which then ran on unsupervised, its exit code
    lost. docker's containerd-shim runs at -999 and podman's conmon at -1000; mrun's supervisor
    now runs at -999. Its container keeps what it had, as podman's does (conmon puts its own back
    for it): the caller's score, or --oom-score-adj's."""
    h = images
    img_ok(h, "load", busybox_archive)
    base = [h.binary, "--root", h.root, "--image-root", h.image_root]
    env = {**os.environ, **h.base_env}
    # The lowest score a process of this caller may take: -999 with CAP_SYS_RESOURCE; without it
    # (this test machine's root lacks it), the floor its privileged ancestors left, tried upwards.
    lowest = subprocess.run(["sh", "-c", "echo 123 > /proc/self/oom_score_adj && exec python3 -c '\n"
                             "import os\nfd = os.open(\"/proc/self/oom_score_adj\", os.O_WRONLY)\n"
                             "for v in range(-999, 124):\n try:\n  os.pwrite(fd, str(v).encode(), 0)\n"
                             "  print(v)\n  break\n except PermissionError:\n  pass'"],
                            capture_output=True, text=True, check=True).stdout.strip()
    assert int(lowest) <= 0, lowest
    try:
        for name, flags, expected in (("oomd", (), "123"), ("oomf", ("--oom-score-adj", "321"), "321")):
            argv = [*base, *run_args(h, "-d", "--name", name, *flags, IMAGE, "sleep", "600")]
            r = subprocess.run(["sh", "-c", f"echo 123 > /proc/self/oom_score_adj && exec {shlex.join(argv)}"],
                               env=env, capture_output=True, text=True, timeout=60)
            assert r.returncode == 0, r.stderr
            with open(os.path.join(h.image_root, "containers", name, "supervisor.json")) as f:
                supervisor = json.load(f)["pid"]
            with open(f"/proc/{supervisor}/oom_score_adj") as f:
                assert f.read().strip() == lowest, name
            pid = img_ok(h, "inspect", "-f", "{{.State.Pid}}", name).stdout.strip()
            with open(f"/proc/{pid}/oom_score_adj") as f:
                assert f.read().strip() == expected, name
            assert img_ok(h, "exec", name, "cat", "/proc/self/oom_score_adj").stdout.strip() == expected, name
    finally:
        img(h, "rm", "-f", "oomd", "oomf")


def test_a_detached_container_holds_nothing_of_its_callers_working_directory(images, busybox_archive, tmp_path):
    """`cd /mnt/usb && mrun run -d ...`, then `umount /mnt/usb`: "target is busy" for as long as
    the container ran, since its supervisor kept its caller's working directory (a daemon's
    first chdir is to /; docker's containers are its daemon's). Relative --root and --image-root
    are the caller's directory's, made absolute at once: a relative image root gave the bundle a
    root.path that resolved inside itself ("... is not a directory"), and `run` always failed."""
    h = images
    img_ok(h, "load", busybox_archive)
    mnt = tmp_path / "usb"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "usb", str(mnt)], check=True)
    try:
        rel_root = os.path.relpath(h.root, mnt)
        rel_images = os.path.relpath(h.image_root, mnt)
        r = subprocess.run([h.binary, "--root", rel_root, "--image-root", rel_images,
                            *run_args(h, "-d", "--name", "cwd", IMAGE, "sleep", "600")],
                           cwd=mnt, env={**os.environ, **h.base_env}, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        assert _listed(h, "cwd") == "running"
        with open(os.path.join(h.image_root, "containers", "cwd", "supervisor.json")) as f:
            assert os.readlink(f"/proc/{json.load(f)['pid']}/cwd") == "/"
        subprocess.run(["umount", str(mnt)], check=True)  # was: target is busy
        mnt = None
        assert _listed(h, "cwd") == "running"
        img_ok(h, "rm", "-f", "cwd")
    finally:
        if mnt is not None:
            img(h, "rm", "-f", "cwd")
            subprocess.run(["umount", "-l", str(mnt)])
    assert not h.leftovers()


def test_a_foreground_run_whose_caller_is_killed_keeps_its_exit_code_warm_and_wait_ends(images, busybox_archive):
    """`timeout -s KILL 5 mrun run IMAGE ...` once the container runs: the container runs on (as
    docker's, whose client was killed), but its exit code was noted by no one, and `mrun wait`
    then waited for good (polling, for as long as it was left), as it took a foreground
    container's log for a supervisor's. The child that ran it (the template's, or cold, a child
    of the caller's: a cold run did the work in the caller itself, and lost the code) now goes on:
    it notes the code (wait, ps, inspect say 7, as docker's daemon would) and removes a --rm one
    itself. With -t too: the terminal's relay was the caller's (cold) or died with it (warm), the
    container got its pty's hang-up and no one noted its end (inspect said 255). Now the relay
    lets the caller's terminal go (its mode as it was, where docker's killed client leaves it raw;
    closing it is no hang-up of the container's) and the container's output goes on into its log."""
    h = images
    img_ok(h, "load", busybox_archive)
    base = [h.binary, "--root", h.root, "--image-root", h.image_root]
    leader, follower = os.openpty()
    cooked = termios.tcgetattr(follower)
    try:
        callers = {name: subprocess.Popen([*base, *run_args(h, *flags, "--name", name, IMAGE, "sh", "-c",
                                                              "sleep 1.5; echo after; exit 7")],
                                          stdin=tty if tty else subprocess.DEVNULL,
                                          stdout=tty if tty else subprocess.DEVNULL,
                                          stderr=tty if tty else subprocess.DEVNULL, env={**os.environ, **h.base_env})
                   for name, flags, tty in (("seven", [], None), ("gone", ["--rm"], None),
                                            ("terminal", ["-t", "-i"], follower))}
        deadline = time.monotonic() + 20
        while any(_listed(h, name) != "running" for name in callers):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        while termios.tcgetattr(follower)[3] & termios.ICANON:  # the relay makes it raw once the container runs
            assert time.monotonic() < deadline
            time.sleep(0.02)
        for caller in callers.values():
            caller.kill()
            caller.wait()
        while termios.tcgetattr(follower) != cooked:  # given back as the caller found it
            assert time.monotonic() < deadline, termios.tcgetattr(follower)
            time.sleep(0.02)
        while _holders(follower) != {os.getpid()}:  # and nothing of mrun's left on it
            assert time.monotonic() < deadline, _holders(follower)
            time.sleep(0.02)
    finally:
        os.close(follower)
        os.close(leader)
    assert _listed(h, "seven") == "running"  # it runs on, as docker's
    for name in ("seven", "terminal"):
        r = img(h, "wait", name, timeout=20)
        assert (r.returncode, r.stdout) == (0, "7\n"), (name, r.stderr)
        assert img_ok(h, "inspect", "-f", "{{.State.ExitCode}} {{.State.Status}}", name).stdout == "7 exited\n"
        assert _listed(h, name) == "(7)"
    assert "after" in img_ok(h, "logs", "terminal").stdout  # printed once its caller was gone
    gone = os.path.join(h.image_root, "containers", "gone")
    while os.path.exists(gone):  # removed by the child that ran it
        assert time.monotonic() < deadline + 20
        time.sleep(0.1)
    img_ok(h, "rm", "seven", "terminal")
    assert not h.leftovers()


def _holders(fd: int) -> set[int]:
    """The pids of the processes that have the file of our ``fd`` open. By the file itself, not
    its name: a container's /dev/pts/0 is another file than the host's."""
    ours = os.fstat(fd)
    found = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for theirs in fds:
            try:
                st = os.stat(f"/proc/{pid}/fd/{theirs}")
            except OSError:
                continue
            if (st.st_dev, st.st_ino) == (ours.st_dev, ours.st_ino):
                found.add(int(pid))
                break
    return found


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_a_run_ended_by_a_signal_before_its_container_started_leaves_nothing(images, busybox_archive, signum):
    """`timeout 5 mrun run --rm IMAGE ...` (SIGTERM) or a terminal closed (SIGHUP) while the
    container is being made: mrun died there, leaving a container record and, once the init was
    made, that init waiting for a `start` forever with the caller's stdout open, so the caller's
    pipe never ended. runc's `run` is never ended by them (it passes them on once the container
    runs); here one that comes while the container is made is held (an exception raised at any
    instant left half of it too) and ends the run before the start: what was made is undone,
    status 128+N. Once the container runs, it is the container's (busybox's sleep as PID 1
    ignores it)."""
    import random

    h = images
    img_ok(h, "load", busybox_archive)
    rng = random.Random(20261203 + signum)
    for i in range(12):
        name = f"sig{i}"
        p = subprocess.Popen([h.binary, "--root", h.root, "--image-root", h.image_root,
                              *run_args(h, "--rm", "--name", name, IMAGE, "sleep", "0.2")],
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env={**os.environ, **h.base_env})
        time.sleep(rng.random() * 0.15)
        p.send_signal(signum)
        out, err = p.communicate(timeout=60)  # the pipe ends: nothing of the run holds it
        assert p.returncode in (0, 128 + signum, -signum), (i, p.returncode, err)  # -N: before it began
        assert b"Traceback" not in err and len(err.splitlines()) <= 1, err
        assert img_ok(h, "ps", "-aq").stdout.split() == [], (i, p.returncode, err)  # which end left it
        assert not os.path.exists(os.path.join(h.root, name)), i


def test_the_image_store_sweep_removes_only_what_its_writers_leave(images, busybox_archive):
    """A killed load or pull leaves NAME.part-PID and NAME.tmp-PID in the image root: the sweep
    takes those. Any other name with ".tmp-" or ".part-" in it (an operator's backup) was taken
    too, and any NAME.tmp-PID or NAME.partial: mrun never removes what it did not create, and
    its writers name theirs after a digest, the index or stdin. So does an image prune's
    collection of blobs and layers."""
    h = images
    img_ok(h, "load", busybox_archive)
    blobs = os.path.join(h.image_root, "blobs", "sha256")
    ours = [os.path.join(blobs, "0" * 64 + ".part-99999999"), os.path.join(h.image_root, "images.json.tmp-99999999")]
    ours += [os.path.join(h.image_root, "layers", "1" * 64 + ".tmp-99999999"),
             os.path.join(blobs, "2" * 64 + ".partial")]
    theirs = [os.path.join(h.image_root, "images.json.tmp-before-upgrade"), os.path.join(blobs, "notes.part-two"),
              # an image root shared by mistake (--image-root /tmp): others' files of mrun's shapes but for the name
              os.path.join(h.image_root, "notes.tmp-1234"), os.path.join(h.image_root, "report.part-99999999"),
              os.path.join(blobs, "backup.partial"), os.path.join(h.image_root, "layers", "old.tmp-99999999")]
    for path in ours + theirs:
        with open(path, "w") as f:
            f.write("x")
    img_ok(h, "system", "prune", "-f")
    assert [p for p in ours if os.path.exists(p)] == []
    assert [p for p in theirs if os.path.exists(p)] == theirs
    # the collection of unused blobs and layers, too, takes only names a digest's hex: it removed
    # any other entry whole, and failed on a directory in blobs/ ("Is a directory")
    theirs += [os.path.join(blobs, "notes"), os.path.join(h.image_root, "layers", "someone", "data")]
    for path in theirs[-2:]:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write("x")
    os.makedirs(os.path.join(blobs, "cache"))
    img_ok(h, "image", "prune", "-a", "-f")
    assert [p for p in theirs if os.path.exists(p)] == theirs
    assert sorted(os.listdir(blobs)) == ["backup.partial", "cache", "notes", "notes.part-two"]  # the image's went
    assert sorted(os.listdir(os.path.join(h.image_root, "layers"))) == ["old.tmp-99999999", "someone"]
    os.rmdir(os.path.join(blobs, "cache"))
    shutil.rmtree(os.path.join(h.image_root, "layers", "someone"))
    for path in theirs[:-1]:
        os.unlink(path)


def test_a_supervisor_that_cannot_start_its_container_says_so_in_words(images, busybox_archive):
    """What stops a detached container's supervisor (its log not a file, no process left in the
    caller's pids limit) reached the caller as Python's repr: "[Errno 21] Is a directory: '...'"."""
    h = images
    img_ok(h, "load", busybox_archive)
    img_ok(h, *run_args(h, "-d", "--name", "unlogged", IMAGE, "true"))
    img_ok(h, "wait", "unlogged")
    log = os.path.join(h.image_root, "containers", "unlogged", "log")
    os.unlink(log)
    os.mkdir(log)
    r = img(h, "start", "unlogged")
    one_line_error(r, "Is a directory", log)
    assert "[Errno" not in r.stderr and "'" not in r.stderr, r.stderr
    os.rmdir(log)
    img_ok(h, "rm", "unlogged")


def create_args(h, *args: str) -> list[str]:
    """docker's `mrun create`, as run_args places `mrun run`."""
    return ["create", *run_args(h, *args)[1:]]


def test_create_then_start_as_docker(images, busybox_archive, tmp_path):
    """docker's `create IMAGE [COMMAND...]`: the container made (snapshot, config) and recorded, not
    started, so a script can copy files in before `start` runs it as `run -d` would (its log, its
    exit code, --rm). `mrun create` was runc's only: docker's flags were usage errors, and an
    image's name was read as a container id whose bundle, the working directory, had no
    config.json. runc's form, with --bundle, stays (the lifecycle tests), and the two do not mix."""
    h = images
    img_ok(h, "load", busybox_archive)
    script = 'echo "hi $X"; cat /in.txt; exit 3'
    r = img_ok(h, *create_args(h, "--name", "made", "-e", "X=1", IMAGE, "sh", "-c", script))
    assert r.stdout == "made\n", r.stdout
    assert img_ok(h, "ps", "-q").stdout.split() == []  # not running: only `ps -a` lists it
    row = next(line for line in img_ok(h, "ps", "-a").stdout.splitlines() if line.startswith("made "))
    assert " Created " in row, row
    assert img_ok(h, "ps", "-aq", "--filter", "status=created").stdout.split() == ["made"]
    assert img_ok(h, "ps", "-aq", "--filter", "status=exited").stdout.split() == []
    assert img_ok(h, "inspect", "-f", "{{.State.Status}} {{.State.Running}}", "made").stdout == "created false\n"
    assert img_ok(h, "logs", "made").stdout == ""  # nothing said yet, as docker's
    (tmp_path / "in.txt").write_text("copied in\n")
    img_ok(h, "cp", str(tmp_path / "in.txt"), "made:/in.txt")
    assert img_ok(h, "start", "made").stdout == "made\n"
    assert img_ok(h, "wait", "made").stdout == "3\n"
    assert img_ok(h, "logs", "made").stdout == "hi 1\ncopied in\n"
    assert img_ok(h, "inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", "made").stdout == "exited 3\n"
    assert img_ok(h, "start", "made").stdout == "made\n"  # and again, as any exited container of `run -d`
    img_ok(h, "wait", "made")
    assert img_ok(h, "logs", "made").stdout == "hi 1\ncopied in\n" * 2
    assert img_ok(h, "rm", "made").stdout == "made\n"

    img_ok(h, *create_args(h, "--name", "brief", "--rm", IMAGE, "true"))
    img_ok(h, "rm", "brief")  # never started: removed without -f, as docker's
    img_ok(h, "container", *create_args(h, "--name", "brief", "--rm", IMAGE, "true"))  # docker's longer names
    img_ok(h, "container", "start", "brief")
    deadline = time.monotonic() + 15
    while "brief" in img_ok(h, "ps", "-aq").stdout.split() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert img_ok(h, "ps", "-aq").stdout.split() == []  # --rm: gone once it ran

    img_ok(h, *create_args(h, "--name", "twice", IMAGE, "true"))
    one_line_error(img(h, *create_args(h, "--name", "twice", IMAGE, "true")), "'twice' already exists")
    r = img(h, "create", "--bundle", str(tmp_path), "--name", "x", "y")
    one_line_error(r, "--name", "mrun create IMAGE")
    r = img(h, "create", "--pid-file", str(tmp_path / "pid"), IMAGE)
    one_line_error(r, "--pid-file", "create --bundle")
    img_ok(h, "rm", "twice")
    assert img_ok(h, "ps", "-aq").stdout.split() == []
    assert not (tmp_path / "pid").exists()
    bundle = h.bundle(["true"])  # runc's create of the bundle in the working directory, as runc's default
    img_ok(h, "create", "fromhere", preexec_fn=lambda: os.chdir(bundle))
    assert h.status("fromhere") == "created"
    h.ok("delete", "--force", "fromhere")


def test_starts_of_one_container_at_once_leave_it_one_supervisor(images, busybox_archive):
    """`mrun start c` five times at once (a script's retries, two terminals), of a created container
    and of an exited one: each forked a supervisor; one won, the others failed ("created, not
    stopped"), and a loser's note of itself replaced the winner's, so the running container's
    supervisor looked gone. Before, a runc-style start from a racer could even start the
    container under its supervisor, which then failed and left it unsupervised. Now they queue:
    every start succeeds, the container runs once, its noted supervisor is alive."""
    h = images
    img_ok(h, "load", busybox_archive)
    for exited in (False, True):
        img_ok(h, *create_args(h, "--name", "once", IMAGE, "sh", "-c", "echo ran; sleep 600"))
        if exited:
            img_ok(h, "start", "once")
            img_ok(h, "stop", "-t", "1", "once")
        base = [h.binary, "--root", h.root, "--image-root", h.image_root]
        starts = [subprocess.Popen([*base, "start", "once"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True, env={**os.environ, **h.base_env})
                  for _ in range(5)]
        results = [(p.wait(timeout=60), p.stdout.read(), p.stderr.read()) for p in starts]
        for p in starts:
            p.stdout.close()
            p.stderr.close()
        assert all(r == (0, "once\n", "") for r in results), results
        assert img_ok(h, "logs", "once").stdout == "ran\n" * (2 if exited else 1)
        bundle = os.path.join(h.image_root, "containers", "once")
        with open(os.path.join(bundle, "supervisor.json")) as f:
            supervisor = json.load(f)["pid"]
        with open(f"/proc/{supervisor}/stat") as f:
            assert f.read().split()[2] != "Z"  # alive, not a zombie
        img_ok(h, "rm", "-f", "once")


def test_volumes_over_dev_or_a_file_are_refused_in_words(images, busybox_archive):
    """`-v /dev` (or an image's VOLUME /dev): a /dev bound in gets no device nodes (runc's rule), so
    there is no /dev/null to mask /proc/keys and the rest with. runc skips the masking silently;
    mrun refuses, and said "linux.maskedPaths: /proc/keys: No such file or directory", as if
    /proc/keys were the problem."""
    h = images
    img_ok(h, "load", busybox_archive)
    r = img(h, *run_args(h, "--rm", "-v", "/dev", IMAGE, "true"))
    one_line_error(r, "linux.maskedPaths", "/dev/null", "volume")
    assert "/proc/keys" not in r.stderr
    r = img(h, *run_args(h, "--rm", "-v", "/etc/passwd", IMAGE, "true"))  # a volume (a directory) on a file
    one_line_error(r, "mounts[", "on /etc/passwd", "a directory mounts only on a directory")
    assert "/proc/self/fd" not in r.stderr  # the kernel's words named a descriptor of ours
    assert img_ok(h, "ps", "-aq").stdout == ""
    img_ok(h, "volume", "prune")


def test_cp_into_a_place_that_takes_no_file_names_the_destination(images, busybox_archive, tmp_path):
    """`cp FILE c:/proc/x` (a running container's procfs takes no new file): the refusal named the
    source, which exists ("cp: FILE: no such file or directory")."""
    h = images
    img_ok(h, "load", busybox_archive)
    img_ok(h, *run_args(h, "-d", "--name", "procfs", IMAGE, "sleep", "600"))
    (tmp_path / "f").write_text("x\n")
    r = img(h, "cp", str(tmp_path / "f"), "procfs:/proc/newfile")
    one_line_error(r, "procfs:/proc/newfile", "cannot make newfile there")
    assert str(tmp_path / "f") not in r.stderr
    one_line_error(img(h, "cp", str(tmp_path / "nothere"), "procfs:/tmp"), "nothere", "no such file or directory")
    img_ok(h, "rm", "-f", "procfs")


def memory_limit(h, name: str) -> int:
    """The container's memory limit as its cgroup has it (v1 or v2; no limit: -1)."""
    for d in cgroup_dirs(f"{h.cgroup_parent}/{name}"):
        for file in ("memory.limit_in_bytes", "memory.max"):
            if os.path.exists(os.path.join(d, file)):
                with open(os.path.join(d, file)) as f:
                    text = f.read().strip()
                return -1 if text == "max" or int(text) >= 1 << 62 else int(text)
    raise AssertionError(f"no memory cgroup for {name}")


def test_docker_update_of_several_is_kept_over_their_restarts(images, busybox_archive):
    """`docker update -m 20m a b`, then `docker restart a` (or its restart policy): the new limit
    stays, as docker keeps it in the container's config. mrun's update took one container and
    runc's flags only (no -m, -c, --cpus), and a restart made the container again from the
    run's limits. inspect shows the limits as updated."""
    h = images
    img_ok(h, "load", busybox_archive)
    for name in ("a", "b"):
        img_ok(h, *run_args(h, "-d", "--name", name, "-m", "64m", IMAGE, "sleep", "600"))
    assert img_ok(h, "update", "-m", "20m", "-c", "512", "--cpus", "0.5", "a", "b").stdout == "a\nb\n"
    assert memory_limit(h, "a") == memory_limit(h, "b") == 20 << 20
    # inspect says what the running container has now, as docker's (it said the run's limits)
    shown = img_ok(h, "inspect", "-f", "{{.HostConfig.Memory}} {{.HostConfig.CpuShares}} {{.HostConfig.NanoCpus}}",
                   "b").stdout
    assert shown == f"{20 << 20} 512 500000000\n", shown
    img_ok(h, "restart", "-t", "1", "a")
    assert memory_limit(h, "a") == 20 << 20
    cpu = json.loads(img_ok(h, "inspect", "a").stdout)["config"]["linux"]["resources"]["cpu"]
    assert (cpu["shares"], cpu["quota"], cpu["period"]) == (512, 50000, 100000), cpu
    img_ok(h, "stop", "-t", "1", "b")
    img_ok(h, "start", "b")
    assert memory_limit(h, "b") == 20 << 20
    one_line_error(img(h, "update", "--cpus", "1", "--cpu-quota", "1000", "a"), "--cpus", "conflicting")
    r = img(h, "update", "-m", "30m", "a", "nothere")
    assert r.returncode == 1 and r.stdout == "a\n", r
    one_line_error(r, "'nothere'")
    assert memory_limit(h, "a") == 30 << 20
    img_ok(h, "stop", "-t", "1", "a")
    img_ok(h, "update", "-m", "40m", "a")  # an exited one's, for its next start (as a created one's)
    img_ok(h, "start", "a")
    assert memory_limit(h, "a") == 40 << 20
    one_line_error(img(h, "update", "-m", "1", "a"), "memory")  # what the kernel would refuse, refused first
    img_ok(h, "rm", "-f", "a", "b")


def test_a_restarted_container_s_end_is_not_its_last_run_s_until_noted(images, busybox_archive):
    """Between a restarted container's exit and its supervisor's note of it (a moment, longer on a
    loaded machine: here the supervisor is held stopped), the note was the last run's: `wait`
    returned the last run's code and ps/inspect said "exited" with the old restart count (a full
    suite failed on it). It is "restarting" until noted, and `wait` waits for this run's code."""
    h = images
    img_ok(h, "load", busybox_archive)
    count = "n=$(cat /n 2>/dev/null || echo 0); n=$((n+1)); echo $n > /n; sleep 1; exit $n"
    img_ok(h, *run_args(h, "-d", "--restart", "on-failure:1", "--name", "again", IMAGE, "sh", "-c", count))
    supervisor = json.load(open(os.path.join(h.image_root, "containers", "again", "supervisor.json")))["pid"]
    deadline = time.monotonic() + 20
    while (seen := img_ok(h, "inspect", "-f", "{{.RestartCount}} {{.State.Status}}", "again").stdout) != "1 running\n":
        assert time.monotonic() < deadline, seen
        time.sleep(0.05)
    os.kill(supervisor, signal.SIGSTOP)
    try:
        while (status := img_ok(h, "inspect", "-f", "{{.State.Status}}", "again").stdout) == "running\n":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert status == "restarting\n"
        waiting = subprocess.Popen([h.binary, "--root", h.root, "--image-root", h.image_root, "wait", "again"],
                                   env={**os.environ, **h.base_env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True)
        time.sleep(0.5)
        assert waiting.poll() is None, waiting.communicate()
    finally:
        os.kill(supervisor, signal.SIGCONT)
    out, err = waiting.communicate(timeout=20)
    assert out == "2\n", err
    assert img_ok(h, "inspect", "-f", "{{.RestartCount}} {{.State.Status}} {{.State.ExitCode}}", "again").stdout \
        == "1 exited 2\n"
    img_ok(h, "rm", "again")


def test_docker_update_restart_changes_the_policy_of_running_and_exited_containers(images, busybox_archive):
    """`docker update --restart unless-stopped $(docker ps -q)`: the policy changes on a running
    container (its supervisor reads it at the exit), an exited one keeps it for its next start,
    `stop` still stops one that had none before, and inspect shows it (HostConfig.RestartPolicy).
    --rm containers and runc's are refused, as docker refuses AutoRemove ones."""
    h = images
    img_ok(h, "load", busybox_archive)

    def policy(name: str) -> str:
        return img_ok(h, "inspect", "-f", "{{.HostConfig.RestartPolicy.Name}}:"
                      "{{.HostConfig.RestartPolicy.MaximumRetryCount}}", name).stdout.strip()

    def ended(name: str) -> dict:
        deadline = time.monotonic() + 30
        while True:
            doc = json.loads(img_ok(h, "inspect", name).stdout)
            if doc["state"]["status"] == "stopped" and not (doc.get("exit") or {}).get("restarting", True):
                return doc["exit"]
            assert time.monotonic() < deadline, doc.get("exit")
            time.sleep(0.05)

    img_ok(h, *run_args(h, "-d", "--name", "u", IMAGE, "sh", "-c", "echo run; sleep 0.5; exit 1"))
    assert policy("u") == "no:0"
    assert img_ok(h, "update", "--restart", "on-failure:2", "u").stdout == "u\n"
    assert policy("u") == "on-failure:2"
    exited = ended("u")
    assert exited["restarts"] == 2, exited  # an "error" says why a restart did not happen
    assert img_ok(h, "logs", "u").stdout == "run\n" * 3

    img_ok(h, "update", "--restart", "always", "u")  # an exited one's, for its next start
    img_ok(h, "start", "u")
    deadline = time.monotonic() + 30
    while img_ok(h, "logs", "u").stdout.count("run") < 5:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    img_ok(h, "stop", "-t", "1", "u")
    ended("u")
    runs = img_ok(h, "logs", "u").stdout.count("run")
    time.sleep(1)
    assert img_ok(h, "logs", "u").stdout.count("run") == runs  # stopped stays stopped

    img_ok(h, *run_args(h, "-d", "--name", "n", IMAGE, "sleep", "600"))  # none at first; stop still stops it
    img_ok(h, "update", "--restart", "always", "n")
    img_ok(h, "stop", "-t", "1", "n")
    time.sleep(0.5)
    assert json.loads(img_ok(h, "inspect", "n").stdout)["state"]["status"] == "stopped"

    one_line_error(img(h, "update", "--restart", "sometimes", "n"), "--restart 'sometimes'")
    img_ok(h, *run_args(h, "-d", "--rm", "--name", "r", IMAGE, "sleep", "600"))
    one_line_error(img(h, "update", "--restart", "always", "r"), "'r'", "--rm")
    bundle = h.bundle(["sleep", "600"])
    cid = h.cid()
    h.ok("run", "-d", "-b", bundle, cid)
    one_line_error(img(h, "update", "--restart", "always", cid), "--restart", "mrun run")
    h.ok("delete", "--force", cid)
    img_ok(h, "rm", "-f", "u", "n", "r")


def test_inspect_takes_several_names_and_images_as_docker_s(images, busybox_archive):
    """`docker inspect -f '{{.Name}}' $(docker ps -aq)` and `docker inspect IMAGE`: inspect took
    one container and no image ("Got unexpected extra argument")."""
    h = images
    img_ok(h, "load", busybox_archive)
    for name in ("one", "two"):
        img_ok(h, *create_args(h, "--name", name, IMAGE, "true"))
    shown = img_ok(h, "inspect", "-f", "{{.Name}} {{.State.Status}}", "one", "two").stdout
    assert shown == "/one created\n/two created\n", shown
    assert [d["state"]["id"] for d in json.loads(img_ok(h, "inspect", "one", "two").stdout)] == ["one", "two"]
    assert json.loads(img_ok(h, "inspect", "one").stdout)["state"]["id"] == "one"  # one: its object, as before
    r = img(h, "inspect", "-f", "{{.Name}}", "one", "nothere", "two")
    assert r.returncode == 1 and r.stdout == "/one\n/two\n", r
    one_line_error(r, "'nothere'")
    image = json.loads(img_ok(h, "inspect", IMAGE).stdout)
    assert image["name"] == IMAGE and image["id"].startswith("sha256:"), image
    assert img_ok(h, "inspect", "-f", "{{.Id}} {{.Os}}", IMAGE).stdout == f"{image['id']} linux\n"
    # docker's `image inspect --format` (and -f): the format was dropped, the whole document printed
    for flag in ("--format", "-f"):
        assert img_ok(h, "image", "inspect", flag, "{{.Id}}", IMAGE).stdout == f"{image['id']}\n"
    one_line_error(img(h, "image", "inspect", "one"), "'one' not found")
    assert img_ok(h, "inspect", "--type", "container", "-f", "{{.Name}}", "one").stdout == "/one\n"
    one_line_error(img(h, "inspect", "--type", "image", "one"), "'one' not found")
    one_line_error(img(h, "inspect", "--type", "container", IMAGE), "does not exist")
    one_line_error(img(h, "inspect", "nothing"), "container or image 'nothing' does not exist")
    one_line_error(img(h, "inspect", "--type", "volume", "one"), "--type")
    img_ok(h, "rm", "one", "two")


def test_start_attached_follows_a_created_container_to_its_exit_code(images, busybox_archive, tmp_path):
    """docker's build pattern: `create`, `cp` the sources in, `start -a` (its output, from its
    start, and its exit code), then `rm`; with `create --rm`, gone once its code is read."""
    h = images
    img_ok(h, "load", busybox_archive)
    img_ok(h, *create_args(h, "--name", "build", IMAGE, "sh", "-c", "cat /src/in.txt; echo err >&2; exit 7"))
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "in.txt").write_text("source\n")
    img_ok(h, "cp", str(tmp_path / "src"), "build:/")
    r = img(h, "start", "-a", "build")
    assert (r.returncode, r.stdout, r.stderr) == (7, "source\n", "err\n"), r
    r = img(h, "start", "-a", "build")  # again: only this run's output, not the last one's
    assert (r.returncode, r.stdout) == (7, "source\n"), r
    assert img_ok(h, "logs", "build").stdout == "source\n" * 2
    img_ok(h, "rm", "build")
    img_ok(h, *create_args(h, "--name", "once", "--rm", "-v", "/scratch", IMAGE, "sh", "-c", "echo hi; exit 4"))
    r = img(h, "start", "-a", "once")
    assert (r.returncode, r.stdout) == (4, "hi\n"), r
    assert img_ok(h, "ps", "-aq").stdout == "" and img_ok(h, "volume", "ls", "-q").stdout == ""
    one_line_error(img(h, "start", "-a", "x", "y"), "one container")
    img_ok(h, *create_args(h, "--name", "mute", "--log-driver", "none", IMAGE, "true"))
    one_line_error(img(h, "start", "-a", "mute"), "--log-driver none")
    img_ok(h, "rm", "mute")


def test_a_start_again_is_followed_to_its_own_exit_code_not_the_last_run_s(images, busybox_archive):
    """A container started again ends before its new supervisor has noted anything: the last
    run's code, still in its note, was taken for this run's. `start -a` returned it with none of
    this run's output (a CI flake of the test above), and `start` + `wait` returned it too."""
    h = images
    img_ok(h, "load", busybox_archive)
    counting = "n=$(cat /n 2>/dev/null || echo 0); n=$((n+1)); echo $n > /n; echo run $n; exit $n"
    img_ok(h, *create_args(h, "--name", "count", IMAGE, "sh", "-c", counting))
    for n in range(1, 7):
        if n % 2:
            r = img(h, "start", "-a", "count")
            assert (r.returncode, r.stdout) == (n, f"run {n}\n"), r
        else:
            img_ok(h, "start", "count")
            assert img_ok(h, "wait", "count").stdout == f"{n}\n"
    assert img_ok(h, "inspect", "-f", "{{.State.ExitCode}}", "count").stdout == "6\n"
    img_ok(h, "rm", "count")


def test_a_wasm_image_is_created_then_started(images, tmp_path):
    h = images
    img_ok(h, "load", build_wasm_archive(str(tmp_path)))
    img_ok(h, *create_args(h, "--name", "w", WASM_IMAGE))
    assert img_ok(h, "inspect", "-f", "{{.State.Status}}", "w").stdout == "created\n"
    img_ok(h, "start", "w")
    assert img_ok(h, "wait", "w").stdout == "3\n"  # hello.wasm exits with its argument
    assert "hello from wasm32-wasi" in img_ok(h, "logs", "w").stdout
    img_ok(h, "rm", "w")


def test_a_detached_container_run_with_rm_is_removed_when_it_exits(images, busybox_archive):
    """`mrun run -d --rm` (docker's everyday form; it was refused): the supervisor removes the
    container, its snapshot and its state once it has exited, whether it ends itself or is stopped."""
    h = images
    img_ok(h, "load", busybox_archive)
    img_ok(h, *run_args(h, "-d", "--rm", "--name", "brief", IMAGE, "sh", "-c", "sleep 0.2; exit 3"))
    img_ok(h, *run_args(h, "-d", "--rm", "--name", "stopped", IMAGE, "sleep", "600"))
    assert set(img_ok(h, "ps", "-aq").stdout.split()) >= {"stopped"}
    img_ok(h, "stop", "-t", "1", "stopped")
    containers = os.path.join(h.image_root, "containers")
    deadline = time.monotonic() + 15
    while (img_ok(h, "ps", "-aq").stdout.split() or os.listdir(containers)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert img_ok(h, "ps", "-aq").stdout.split() == [] and os.listdir(containers) == []
    one_line_error(img(h, "inspect", "brief"), "does not exist")


def test_stop_and_rm_take_several_containers_as_docker_s_do(images, busybox_archive):
    """`mrun stop a b`, `mrun rm -f $(mrun ps -aq)`: each named container in turn, its name printed
    once done; an unknown one is reported and the others are still done (exit status 1)."""
    h = images
    img_ok(h, "load", busybox_archive)
    for name in ("one", "two", "three"):
        img_ok(h, *run_args(h, "-d", "--name", name, IMAGE, "sleep", "600"))
    assert img_ok(h, "stop", "-t", "1", "one", "two").stdout.split() == ["one", "two"]
    r = img(h, "rm", "one", "nosuch", "two")
    assert r.returncode == 1 and r.stdout.split() == ["one", "two"] and "'nosuch' does not exist" in r.stderr
    one_line_error(img(h, "rm", "three"), "three")  # running: -f is needed, as with docker
    assert img_ok(h, "rm", "-f", *img_ok(h, "ps", "-aq").stdout.split()).stdout.split() == ["three"]
    assert img_ok(h, "ps", "-aq").stdout == "" and os.listdir(os.path.join(h.image_root, "containers")) == []


def test_a_container_from_an_image_gets_a_seccomp_profile_as_docker_gives_one(images, busybox_archive, tmp_path):
    """mrun run's default profile (images.seccomp_default): no user namespace (whose process holds
    every capability over what it then makes), no setns or mount; forks still work (clone without
    a namespace flag). `--security-opt seccomp=unconfined` lifts it, `seccomp=FILE` replaces it,
    `apparmor=unconfined` asks for no profile, and what mrun would not apply (an SELinux label, an
    AppArmor profile without AppArmor) is refused in one line."""
    from conftest import one_line_error

    h = images
    img_ok(h, "load", busybox_archive)
    probe = "unshare -U true 2>&1; echo unshare=$?; (true & wait); echo fork=$?; grep Seccomp: /proc/self/status"
    r = img_ok(h, *run_args(h, "--rm", IMAGE, "sh", "-c", probe))
    assert "unshare=1" in r.stdout and "Operation not permitted" in r.stdout, r.stdout
    assert "fork=0" in r.stdout and "Seccomp:\t2" in r.stdout, r.stdout
    r = img_ok(h, *run_args(h, "--rm", "--security-opt", "seccomp=unconfined", IMAGE, "sh", "-c", probe))
    assert "unshare=0" in r.stdout and "Seccomp:\t0" in r.stdout, r.stdout
    profile = tmp_path / "no-mkdir.json"
    profile.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}))
    r = img_ok(h, *run_args(h, "--rm", "--security-opt", f"seccomp={profile}", IMAGE, "sh", "-c",
                            "mkdir /tmp/d 2>&1; unshare -U true; echo unshare=$?"))
    assert "Operation not permitted" in r.stdout and "unshare=0" in r.stdout, r.stdout
    img_ok(h, *run_args(h, "--rm", "--security-opt", "apparmor=unconfined", IMAGE, "true"))  # docker's: no profile
    from mrun.kernel import apparmor

    if not apparmor.enabled():  # a profile asked for, on a host without AppArmor: refused, never dropped
        one_line_error(img(h, *run_args(h, "--rm", "--security-opt", "apparmor=docker-default", IMAGE, "true")),
                       "--security-opt", "AppArmor is not enabled on this host")
    one_line_error(img(h, *run_args(h, "--rm", "--security-opt", "label=type:spc_t", IMAGE, "true")),
                   "--security-opt", "label=type:spc_t")  # (label=disable asks for none: test_system_paths)
    missing = str(tmp_path / "no-such-profile.json")
    r = img(h, *run_args(h, "--rm", "--security-opt", f"seccomp={missing}", IMAGE, "true"))
    one_line_error(r, "cannot read the profile: No such file or directory: " + missing)  # words, not Errno's repr
    assert not os.listdir(os.path.join(h.image_root, "containers"))


@pytest.mark.parametrize("images", ["cold"], indirect=True)
@pytest.mark.parametrize("fmt", ["oci-archive", "oci-dir"])
def test_save_never_writes_through_a_link_planted_at_its_temporary_name(images, busybox_archive, tmp_path,
                                                                       monkeypatch, fmt):
    """`mrun save IMAGE PATH` writes PATH.tmp-PID first: a link planted there (PATH in /tmp, pids
    guessed) had root's tarfile write its target, and the clean-up unlink someone else's link."""
    from mrun.images.export import save
    from mrun.images.store import ImageStore

    h = images
    img_ok(h, "load", busybox_archive)
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    out = tmp_path / "out"
    monkeypatch.setattr(os, "getpid", lambda: 4242)
    os.symlink(victim, f"{out}.tmp-4242")
    with pytest.raises(MrunError, match="exists"):
        save(ImageStore(h.image_root), [IMAGE], str(out), fmt)
    assert victim.read_text() == "precious\n"
    assert os.path.islink(f"{out}.tmp-4242") and not os.path.exists(out)
    os.unlink(f"{out}.tmp-4242")
    save(ImageStore(h.image_root), [IMAGE], str(out), fmt)  # and with the name free, as before
    assert os.path.exists(out) and not os.path.lexists(f"{out}.tmp-4242")


def _cgroup_value(dirs: list[str], v1_file: str, v2_file: str) -> str:
    """A file of the container's cgroup, whichever hierarchy (v1) or the one directory (v2) holds it."""
    v2 = os.path.exists("/sys/fs/cgroup/cgroup.controllers")
    for d in dirs:
        path = os.path.join(d, v2_file if v2 else v1_file)
        if os.path.exists(path):
            return open(path).read().strip()
    raise AssertionError(f"no {v2_file if v2 else v1_file} in {dirs}")


def test_dockers_resource_flags_reach_the_cgroup_with_dockers_rules(images, busybox_archive):
    """docker run's memory, swap, CPU and cpuset flags: the same linux.resources docker makes
    (swap twice the memory unless given, shares clamped to 2), the values in the cgroup, and
    docker's refusals one line each, naming the flag. They were unknown options (exit 2)."""
    h = images
    img_ok(h, "load", busybox_archive)
    v2 = os.path.exists("/sys/fs/cgroup/cgroup.controllers")
    args = ["-d", "--name", "limited", "-m", "64m", "--memory-reservation", "32m", "-c", "512", "--cpu-period",
            "50000", "--cpu-quota", "25000", "--cpuset-cpus", "0"]
    img_ok(h, *run_args(h, *args, IMAGE, "sleep", "600"))
    resources = json.loads(img_ok(h, "inspect", "limited").stdout)["config"]["linux"]["resources"]
    assert resources["memory"]["limit"] == 64 << 20 and resources["memory"]["reservation"] == 32 << 20
    assert resources["memory"]["swap"] in (128 << 20, -1)  # -1: a host without swap accounting, with a warning
    assert resources["cpu"] == {"shares": 512, "period": 50000, "quota": 25000, "cpus": "0"}
    dirs = cgroup_dirs(f"{h.cgroup_parent}/limited")
    assert _cgroup_value(dirs, "memory.limit_in_bytes", "memory.max") == str(64 << 20)
    assert _cgroup_value(dirs, "memory.soft_limit_in_bytes", "memory.low") == str(32 << 20)
    assert _cgroup_value(dirs, "cpu.cfs_quota_us", "cpu.max").split()[0] == "25000"
    assert _cgroup_value(dirs, "cpuset.cpus", "cpuset.cpus") == "0"
    if not v2:
        assert _cgroup_value(dirs, "cpu.shares", "") == "512"
    img_ok(h, "rm", "--force", "limited")

    r = img_ok(h, *run_args(h, "-d", "--name", "unlimitedswap", "-m", "64m", "--memory-swap", "-1",
                            "--cpu-shares", "1", IMAGE, "sleep", "600"))
    resources = json.loads(img_ok(h, "inspect", "unlimitedswap").stdout)["config"]["linux"]["resources"]
    assert resources["memory"] == {"limit": 64 << 20, "swap": -1} and resources["cpu"] == {"shares": 2}, r.stderr
    img_ok(h, "rm", "--force", "unlimitedswap")

    for flags, needles in (
        (["--memory-swap", "128m"], ["--memory-swap", "-m/--memory"]),
        (["-m", "64m", "--memory-swap", "32m"], ["--memory-swap 32m", "at least --memory"]),
        (["-m", "64m", "--memory-reservation", "128m"], ["--memory-reservation 128m"]),
        (["--memory-reservation", "1m"], ["--memory-reservation 1m", "6MB"]),
        (["--memory-swappiness", "101"], ["--memory-swappiness 101"]),
        (["--cpus", "1", "--cpu-quota", "50000"], ["--cpus and --cpu-quota"]),
        (["--cpus", "1", "--cpu-period", "50000"], ["--cpus and --cpu-period"]),
        (["--cpu-period", "10"], ["--cpu-period 10"]),
        (["--cpu-quota", "10"], ["--cpu-quota 10"]),
        (["--cpu-shares", "-5"], ["--cpu-shares -5"]),
        (["--cpuset-cpus", "4096"], ["--cpuset-cpus 4096", "not available"]),
        (["--cpuset-cpus", "1-x"], ["--cpuset-cpus", "0-3,8"]),
        (["--cpuset-mems", "4096"], ["--cpuset-mems 4096", "not available"]),
        (["--blkio-weight", "5"], ["--blkio-weight 5", "10 to 1000"]),
    ):
        one_line_error(img(h, *run_args(h, "--rm", *flags, IMAGE, "true")), *needles)
    assert not os.listdir(h.root) or all(n.startswith(".") for n in os.listdir(h.root))  # nothing left behind


def test_pid_ipc_and_uts_modes_as_docker(images, busybox_archive):
    """--pid host|container:ID, --ipc host|none|private|shareable and --uts host: the host's (or
    that container's) namespace, docker's /dev/shm for each --ipc, the host's name with --uts host.
    They were unknown options (exit 2)."""
    h = images
    img_ok(h, "load", busybox_archive)

    def inside(*flags: str, script: str) -> str:
        return img_ok(h, *run_args(h, "--rm", *flags, IMAGE, "sh", "-c", script)).stdout

    ns = "for n in pid ipc uts; do readlink /proc/self/ns/$n; done"
    host_pid, host_ipc, host_uts = (os.readlink(f"/proc/self/ns/{k}") for k in ("pid", "ipc", "uts"))
    assert not {host_pid, host_ipc, host_uts} & set(inside(script=ns).split())  # private: none of the host's
    assert inside("--pid", "host", script=ns).split()[0] == host_pid
    assert inside("--ipc", "host", script=ns).split()[1] == host_ipc
    assert inside("--uts", "host", script=ns).split()[2] == host_uts
    cgroupns = "readlink /proc/self/ns/cgroup"
    assert inside("--cgroupns", "host", script=cgroupns).strip() == os.readlink("/proc/self/ns/cgroup")
    assert inside("--cgroupns", "private", script=cgroupns).strip() != os.readlink("/proc/self/ns/cgroup")
    assert inside("--uts", "host", script='hostname; echo "$HOSTNAME"').split() == [os.uname().nodename] * 2
    shm = "grep -c ' /dev/shm ' /proc/self/mounts || true"
    assert [inside("--ipc", mode, script=shm).strip() for mode in ("private", "shareable", "none", "host")] == \
        ["1", "1", "0", "1"]

    img_ok(h, *run_args(h, "-d", "--name", "pidholder", IMAGE, "sleep", "600"))
    try:
        holder = inside("--pid", "container:pidholder", script="readlink /proc/self/ns/pid; ps")
        pid = json.loads(img_ok(h, "inspect", "pidholder").stdout)["state"]["pid"]
        assert holder.split()[0] == os.readlink(f"/proc/{pid}/ns/pid") and "sleep 600" in holder
    finally:
        img_ok(h, "rm", "--force", "pidholder")

    for flags, needles in (
        (["--uts", "host", "--hostname", "x"], ["--hostname with --uts host"]),
        (["--ipc", "container:pidholder"], ["--ipc 'container:pidholder'", "host expected"]),
        (["--pid", "bogus"], ["--pid 'bogus'", "container:ID"]),
        (["--pid", "container:pidholder"], ["pidholder"]),  # gone
        (["--ipc", "host", "--shm-size", "1g"], ["--shm-size with --ipc host"]),
    ):
        one_line_error(img(h, *run_args(h, "--rm", *flags, IMAGE, "true")), *needles)


def test_domainname_userns_and_device_cgroup_rules_as_docker(images, busybox_archive):
    """docker's --domainname (the UTS namespace's NIS domain, Config.Domainname), --userns host
    (its one mode that remaps no users) and --device-cgroup-rule (devices the cgroup allows
    without a node bound in: here opening a node the container made, refused without the rule).
    They were unknown options (exit 2)."""
    h = images
    img_ok(h, "load", busybox_archive)

    def inside(*flags: str, script: str) -> subprocess.CompletedProcess[str]:
        return img(h, *run_args(h, "--rm", *flags, IMAGE, "sh", "-c", script))

    domain = "cat /proc/sys/kernel/domainname"
    assert inside("--domainname", "example.org", script=domain).stdout == "example.org\n"
    assert inside(script=domain).stdout == "(none)\n"
    img_ok(h, *run_args(h, "--name", "dom", "--domainname", "example.org", IMAGE, "true"))
    assert img_ok(h, "inspect", "-f", "{{.Config.Domainname}}", "dom").stdout == "example.org\n"
    img_ok(h, "rm", "dom")
    assert inside("--userns", "host", script="echo ok").stdout == "ok\n"
    # a number no driver has: the device cgroup refuses its open (EPERM), else the kernel finds no device
    opened = "mknod /tmp/x c 242 7 && cat /tmp/x 2>&1; true"
    assert "Operation not permitted" in inside(script=opened).stdout
    for rule in ("c 242:7 r", "c 242:* rwm", "a *:* rwm"):
        shown = inside("--device-cgroup-rule", rule, script=opened).stdout
        assert "No such device" in shown and "not permitted" not in shown, (rule, shown)
    for flags, needles in (
        (["--domainname", "x" * 65], ["--domainname", "up to 64"]),
        (["--domainname", "a b"], ["--domainname", "no spaces"]),
        (["--uts", "host", "--domainname", "x"], ["--domainname with --uts host"]),
        (["--userns", "private"], ["--userns 'private'", "host is the one mode"]),
        (["--device-cgroup-rule", "c 1:1"], ["--device-cgroup-rule 'c 1:1'", "TYPE MAJOR:MINOR ACCESS"]),
        (["--device-cgroup-rule", "x 1:1 rwm"], ["--device-cgroup-rule"]),
        (["--device-cgroup-rule", "c 1:1 rwx"], ["--device-cgroup-rule"]),
        (["--device-cgroup-rule", "c -1:1 r"], ["--device-cgroup-rule"]),
    ):
        one_line_error(img(h, *run_args(h, "--rm", *flags, IMAGE, "true")), *needles)


def test_a_container_in_another_s_pid_namespace_leaves_nothing_running_once_it_exits(images, busybox_archive):
    """docker (through containerd's runc shim) kills what a container left in its cgroup once its
    init exits, where the PID namespace is another's (--pid container:ID, host): the kernel ends a
    namespace's processes with its PID 1 only. mrun left them: a detached one's child ran on in
    its cgroup, and a foreground one's held the caller's output open (`| cat` waited for it)."""
    h = images
    img_ok(h, "load", busybox_archive)
    img_ok(h, *run_args(h, "-d", "--name", "pidholder2", IMAGE, "sleep", "600"))
    try:
        script = "sleep 600 & echo started; exit 3"
        r = subprocess.run([h.binary, "--root", h.root, "--image-root", h.image_root,
                            *run_args(h, "--name", "fg", "--pid", "container:pidholder2", IMAGE, "sh", "-c", script)],
                           capture_output=True, text=True, timeout=20, env={**os.environ, **h.base_env})
        assert (r.returncode, r.stdout) == (3, "started\n"), r.stderr  # the output's end came with the exit
        img_ok(h, *run_args(h, "-d", "--name", "bg", "--pid", "container:pidholder2", IMAGE, "sh", "-c", script))
        deadline = time.monotonic() + 10
        while json.loads(img_ok(h, "inspect", "bg").stdout)["state"]["status"] != "stopped":
            assert time.monotonic() < deadline, "the detached container never ended"
            time.sleep(0.05)
        for name in ("fg", "bg"):
            cgroup = json.loads(img_ok(h, "inspect", name).stdout)["config"]["linux"]["cgroupsPath"]
            deadline = time.monotonic() + 5
            while any(open(os.path.join(d, "cgroup.procs")).read().split() for d in cgroup_dirs(cgroup)):
                assert time.monotonic() < deadline, f"{name}: its child outlived it"
                time.sleep(0.05)
    finally:
        img_ok(h, "rm", "--force", "fg", "bg", "pidholder2")


def test_a_container_joining_another_s_namespaces_joins_its_current_ones_at_each_start(images, busybox_archive):
    """--network/--pid container:ID name the other container's process by its number in the
    bundle's config. Once that container had restarted, `start` of the joining one failed on a
    number nobody had ("cannot open pid namespace /proc/N/ns/pid"), and, once the number came
    round, would have joined whatever process had it: the host's namespaces included. docker
    looks the other container up at each start: so does mrun now, and refuses the start in one
    line while it is stopped, the joining container left stopped."""
    h = images
    img_ok(h, "load", busybox_archive)
    img_ok(h, *run_args(h, "-d", "--name", "holder", IMAGE, "sleep", "600"))
    try:
        img_ok(h, *run_args(h, "-d", "--name", "joiner", "--network", "container:holder", "--pid", "container:holder",
                            IMAGE, "sleep", "600"))

        def namespaces(name: str) -> list[str]:
            pid = json.loads(img_ok(h, "inspect", name).stdout)["state"]["pid"]
            return [os.readlink(f"/proc/{pid}/ns/{kind}") for kind in ("net", "pid")]

        first = json.loads(img_ok(h, "inspect", "holder").stdout)["state"]["pid"]
        assert namespaces("joiner") == namespaces("holder")
        img_ok(h, "stop", "-t", "1", "joiner", "holder")
        one_line_error(img(h, "start", "joiner"), "container:holder", "'holder' is not running")
        assert img_ok(h, "ps", "-a", "--format", "{{.Status}}", "--filter", "name=joiner").stdout.startswith("Exited")
        img_ok(h, "start", "holder")
        assert json.loads(img_ok(h, "inspect", "holder").stdout)["state"]["pid"] != first  # its path is another now
        img_ok(h, "start", "joiner")
        assert namespaces("joiner") == namespaces("holder")
    finally:
        img_ok(h, "rm", "--force", "joiner", "holder")


def test_a_start_that_fails_leaves_the_container_stopped_to_be_started_again(images, busybox_archive, tmp_path):
    """docker's start of an exited container whose bind source is gone fails and leaves it
    exited; once the source is back, start works. mrun's removed its record: the container was
    listed as "orphaned (mrun rm -f)" and `start` said it did not exist, for good."""
    h = images
    img_ok(h, "load", busybox_archive)
    source = tmp_path / "source"
    source.mkdir()
    img_ok(h, *run_args(h, "-d", "--name", "bound", "-v", f"{source}:/data", IMAGE, "sleep", "600"))
    try:
        img_ok(h, "stop", "-t", "1", "bound")
        source.rmdir()
        one_line_error(img(h, "start", "bound"), str(source), "does not exist")
        listed = img_ok(h, "ps", "-a", "--format", "{{.Names}} {{.Status}}").stdout
        assert listed.startswith("bound Exited"), listed
        source.mkdir()
        img_ok(h, "start", "bound")
        assert img_ok(h, "ps", "--format", "{{.Names}}").stdout.split() == ["bound"]
    finally:
        img_ok(h, "rm", "--force", "bound")


def test_listings_take_docker_s_go_templates(images, busybox_archive):
    """`ps`, `images` and `volume ls` --format (`network ls`: test_network): docker's Go template over docker's
    fields, once per row; `table ...` adds the header and aligns as docker's tabwriter; \\t is a
    tab; Go's if, range, pipes and functions and docker's {{.Label "KEY"}} are there. A field the
    verb lacks, or what mrun's text/template does not know, is one line, not a table: a template
    used to be ignored and the default table printed."""
    h = images
    img_ok(h, "load", busybox_archive)
    img_ok(h, *run_args(h, "-d", "--name", "fmt-up", "-l", "tier=web", "-v", "fmt-data:/data", IMAGE, "sleep", "600"))
    img_ok(h, *run_args(h, "-d", "--name", "fmt-done", IMAGE, "sh", "-c", "exit 3"))
    h.wait_status("fmt-done", "stopped")
    try:
        rows = img_ok(h, "ps", "-a", "--format", "{{.Names}}|{{.State}}|{{.Status}}|{{.Command}}|{{.Labels}}"
                      "|{{.Mounts}}|{{.Image}}|{{.Networks}}").stdout.splitlines()
        by_name = {row.split("|")[0]: row.split("|") for row in rows}
        assert set(by_name) == {"fmt-up", "fmt-done"}
        up, done = by_name["fmt-up"], by_name["fmt-done"]
        assert up[1] == "running" and re.fullmatch(r"Up (Less than a second|\d+ seconds|1 second)", up[2]), up
        assert up[3] == '"sleep 600"' and up[4] == "tier=web" and up[6] == IMAGE
        assert up[5].endswith("/volumes/fmt-data/data")  # the user's volume; not mrun's hosts or hostname files
        assert done[1] == "exited" and re.fullmatch(r"Exited \(3\) .* ago", done[2]), done
        table = img_ok(h, "ps", "-a", "--format", "table {{.Names}}\\t{{.State}}").stdout.splitlines()
        assert table[0] == "NAMES      STATE" and sorted(table[1:]) == ["fmt-done   exited", "fmt-up     running"]
        whole = [json.loads(line) for line in img_ok(h, "ps", "-a", "--format", "{{json .}}").stdout.splitlines()]
        assert {row["Names"] for row in whole} == {"fmt-up", "fmt-done"} and "CreatedAt" in whole[0]
        assert img_ok(h, "images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split() == [IMAGE]
        size = img_ok(h, "images", "--format", "{{.Size}}").stdout.strip()
        assert re.fullmatch(r"\d+(\.\d+)?(kB|MB)", size), size
        assert img_ok(h, "volume", "ls", "--format", "{{.Name}} {{.Driver}}").stdout.split() == ["fmt-data", "local"]
        # docker's {{.Label "KEY"}} (its header the key's last part) and Go's if, pipes and functions
        table = img_ok(h, "ps", "-a", "--format", 'table {{.Names}}\\t{{.Label "tier"}}').stdout.splitlines()
        assert table[0] == "NAMES      tier" and sorted(table[1:]) == ["fmt-done   ", "fmt-up     web"], table
        shown = img_ok(h, "ps", "-a", "--format", '{{if eq .State "running"}}{{.Names | upper}}{{else}}'
                       '{{printf "%.5s" .Names}}{{end}}').stdout.split()
        assert sorted(shown) == ["FMT-UP", "fmt-d"], shown
        counted = img_ok(h, "ps", "-a", "--format", "{{.Names}}={{.LocalVolumes}}").stdout.split()
        assert sorted(counted) == ["fmt-done=0", "fmt-up=1"], counted  # docker's: the volumes it mounts
        # the default table is docker's
        header = img_ok(h, "ps", "-a").stdout.splitlines()[0].split()
        assert header == ["CONTAINER", "ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"], header
    finally:
        img_ok(h, "rm", "--force", "fmt-up", "fmt-done")
        img_ok(h, "volume", "rm", "fmt-data")
    for args, needles in (
        (["ps", "--format", "{{.Nope}}"], ["--format", "no field 'Nope'"]),
        (["images", "--format", "{{template \"x\"}}"], ["--format", "not supported"]),
        (["images", "--format", "{{.Label \"x\"}}"], ["--format", "no field 'Label'"]),  # images have no labels
        (["volume", "ls", "--format", "{{.Name"], ["--format", "not closed"]),
    ):
        one_line_error(img(h, *args), *needles)


def test_tag_and_docker_s_image_and_container_sub_verbs(images, busybox_archive):
    """docker's `tag` (one more name for the image; `rmi` of one leaves the other), `image ls|rm|tag`
    and `container ls` as the verbs they are other names for; a bad new name is one line."""
    h = images
    img_ok(h, "load", busybox_archive)
    img_ok(h, "tag", IMAGE, "localhost/other:2")
    img_ok(h, "image", "tag", "localhost/other:2", "localhost/third")
    names = img_ok(h, "image", "ls", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    assert sorted(names) == sorted([IMAGE, "localhost/other:2", "localhost/third:latest"])
    assert len(set(img_ok(h, "image", "ls", "-q").stdout.split())) == 1  # one image, three names
    assert img_ok(h, *run_args(h, "--rm", "localhost/third", "echo", "tagged")).stdout == "tagged\n"
    # docker's images REPOSITORY[:TAG] and -f/--filter (mrun took no argument, and -f was --format:
    # `images -f dangling=true` printed "dangling=true" once per image); a template given to -f
    # is still a format
    def shown(*args: str) -> list[str]:
        return sorted(img_ok(h, *args, "--format", "{{.Repository}}:{{.Tag}}").stdout.split())

    assert shown("images", "localhost/other") == ["localhost/other:2"] == shown("image", "ls", "localhost/other:2")
    assert shown("images", "-f", "reference=localhost/*:latest") == sorted([IMAGE, "localhost/third:latest"])
    assert shown("images", "--filter", "reference=*/th*") == ["localhost/third:latest"]
    assert shown("images", "-f", "dangling=false", "-f", "reference=localhost/o*") == ["localhost/other:2"]
    assert not img_ok(h, "images", "-f", "dangling=true", "-q").stdout
    assert not img_ok(h, "images", "-q", "-f", "label=nosuch").stdout
    assert sorted(img_ok(h, "images", "-f", "{{.Repository}}:{{.Tag}}").stdout.split()) == sorted(names)
    one_line_error(img(h, "images", "-f", "bogus=1"), "--filter 'bogus=1'")
    img_ok(h, "rmi", "localhost/other:2")
    img_ok(h, "image", "rm", "localhost/third:latest")
    assert img_ok(h, "images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split() == [IMAGE]
    img_ok(h, *run_args(h, "-d", "--name", "listed", IMAGE, "sleep", "600"))
    try:
        assert img_ok(h, "container", "ls", "-q").stdout.split() == img_ok(h, "ps", "-q").stdout.split() == ["listed"]
        assert img_ok(h, "container", "ls", "--format", "{{.Names}}:{{.State}}").stdout.split() == ["listed:running"]
    finally:
        img_ok(h, "rm", "-f", "listed")
    for args, needles in (
        (["tag", IMAGE, "Upper/Case"], ["'Upper/Case' is not a valid image reference"]),
        (["tag", IMAGE, "x@sha256:" + "0" * 64], ["not a digest"]),
        (["tag", "no/such:image", "x"], ["'no/such:image' not found"]),
        (["image", "tag", IMAGE], ["image tag", "new name"]),
        (["image", "frob"], ["unknown action 'frob'"]),
    ):
        one_line_error(img(h, *args), *needles)


def test_stats_as_docker(images, busybox_archive):
    """`mrun stats --no-stream`: docker's table from the container's cgroup and network namespace,
    its figures (a busy loop's CPU, a shell holding 8 MB, against a 64 MiB limit; its processes),
    its --format; only running containers unless -a or named; an unknown one is one line."""
    h = images
    img_ok(h, "load", busybox_archive)
    busy = "x=$(head -c 8000000 /dev/zero | tr '\\0' a); (while :; do :; done) & sleep 600"
    img_ok(h, *run_args(h, "-d", "--name", "st-busy", "--memory", "64m", IMAGE, "sh", "-c", busy))
    img_ok(h, *run_args(h, "-d", "--name", "st-done", IMAGE, "true"))
    h.wait_status("st-done", "stopped")
    try:
        deadline = time.monotonic() + 30
        while True:  # the shell has read its 8 MB once its loop runs
            fields = img_ok(h, "stats", "--no-stream", "--format", "{{.Name}}|{{.CPUPerc}}|{{.MemUsage}}|"
                            "{{.MemPerc}}|{{.PIDs}}|{{.NetIO}}|{{.BlockIO}}").stdout.split("|")
            used = fields[2].split(" / ")[0]
            if used.endswith("MiB") and float(used[:-3]) >= 7.5 or time.monotonic() > deadline:
                break
        assert fields[0] == "st-busy", fields  # the stopped one is not listed
        assert float(fields[1].rstrip("%")) > 1.0, fields  # a loop that never sleeps
        assert used.endswith("MiB") and float(used[:-3]) >= 7.5, fields
        assert fields[2].endswith(" / 64MiB") and 10.0 < float(fields[3].rstrip("%")) < 100.0, fields
        assert int(fields[4]) >= 2, fields  # the looping subshell, sleep (which sh became)
        assert fields[5].strip() == "0B / 0B", fields  # --network none: no interface but lo
        table = img_ok(h, "stats", "--no-stream", "-a").stdout.splitlines()
        assert table[0].split() == ["CONTAINER", "ID", "NAME", "CPU", "%", "MEM", "USAGE", "/", "LIMIT", "MEM", "%",
                                    "NET", "I/O", "BLOCK", "I/O", "PIDS"]
        assert sorted(line.split()[0] for line in table[1:]) == ["st-busy", "st-done"]
        assert "0.00%" in img_ok(h, "stats", "--no-stream", "st-done").stdout  # named: listed, stopped
    finally:
        img_ok(h, "rm", "-f", "st-busy", "st-done")
    one_line_error(img(h, "stats", "--no-stream", "no-such"), "no-such")
    one_line_error(img(h, "stats", "--no-stream", "--format", "{{.Bogus}}"), "no field 'Bogus'")


def test_labels_and_ps_filters_as_docker(images, busybox_archive, tmp_path):
    """-l/--label and --label-file note a container (the caller's over the image's), and `mrun ps
    --filter` picks containers as docker's does: label=KEY[=VALUE] (all must match), name= (a
    pattern), id= (a prefix), status= (exited for stopped), ancestor= (the image); one key's values
    are alternatives; without -a only the running ones, as docker's. A key mrun reads (org.mrun.*)
    is no label: refused, naming it."""
    h = images
    img_ok(h, "load", busybox_archive)
    label_file = tmp_path / "labels"
    label_file.write_text("# a comment\nci=2\n\nteam=b\n")
    img_ok(h, *run_args(h, "-d", "--name", "job-one", "-l", "ci=1", "--label", "team=a", IMAGE, "sleep", "600"))
    img_ok(h, *run_args(h, "-d", "--name", "job-two", "--label-file", str(label_file), "-l", "team=c", IMAGE, "true"))
    h.wait_status("job-two", "stopped")
    try:
        def listed(*filters: str) -> list[str]:
            return sorted(img_ok(h, "ps", "-aq", *(f for kv in filters for f in ("--filter", kv))).stdout.split())

        assert listed() == ["job-one", "job-two"]
        assert listed("label=ci") == ["job-one", "job-two"]
        assert listed("label=ci=2") == ["job-two"]
        assert listed("label=ci", "label=team=c") == ["job-two"]  # the flag's value over the file's
        assert listed("label=nosuch") == []
        assert listed("status=running") == ["job-one"] and listed("status=exited") == ["job-two"]
        assert listed("name=^job-t") == ["job-two"] and listed("name=one", "name=two") == ["job-one", "job-two"]
        assert listed("id=job-o") == ["job-one"]
        assert listed("ancestor=" + IMAGE) == ["job-one", "job-two"] and listed("ancestor=other/image") == []
        assert listed("status=running", "label=ci=2") == []
        table = img_ok(h, "ps", "--filter", "status=exited").stdout  # a status asks for every container
        assert "job-two" in table and "job-one" not in table
        # docker's ps -f is --filter (it was runc's --format: "status=exited" printed once per container)
        assert img_ok(h, "ps", "-aq", "-f", "status=exited").stdout.split() == ["job-two"]
        assert img_ok(h, "ps", "-a", "-f", "name=job-one", "-f", "{{.Names}}").stdout == "job-one\n"
        assert img_ok(h, "ps", "-f", "json", "job-one").stdout.startswith("[")  # runc's ps -f json ID
        # docker's ps without -a: the running ones (mrun listed every container, as -a)
        assert img_ok(h, "ps", "-q").stdout.split() == img_ok(h, "container", "ls", "-q").stdout.split() == ["job-one"]
        assert img_ok(h, "ps", "-q", "--filter", "label=ci").stdout.split() == ["job-one"]
        assert sorted(img_ok(h, "container", "ls", "-aq").stdout.split()) == ["job-one", "job-two"]
        annotations = json.loads(img_ok(h, "inspect", "job-one").stdout)["config"]["annotations"]
        assert annotations["ci"] == "1" and annotations["team"] == "a"
    finally:
        img_ok(h, "rm", "--force", "job-one", "job-two")
    for args, needles in (
        (["ps", "--filter", "bogus=1"], ["--filter 'bogus=1'"]),
        (["ps", "--filter", "name=["], ["--filter 'name=['"]),
        (["ps", "--filter", "status=sleeping"], ["--filter 'status=sleeping'"]),
        (run_args(h, "--rm", "-l", "org.mrun.network=x", IMAGE, "true"), ["--label org.mrun.network", "--annotation"]),
        (run_args(h, "--rm", "-l", "=x", IMAGE, "true"), ["--label '=x'"]),
        (run_args(h, "--rm", "--label-file", str(tmp_path / "missing"), IMAGE, "true"), ["--label-file"]),
    ):
        one_line_error(img(h, *args), *needles)


def test_stop_timeout_and_cidfile_as_docker(images, busybox_archive, tmp_path):
    """--stop-timeout is how long `mrun stop` (without -t) waits before SIGKILL; --cidfile gets
    the container's id, is refused if it exists, and goes again if no container came to be, or
    with the container (podman's)."""
    import time

    h = images
    img_ok(h, "load", busybox_archive)
    cidfile = tmp_path / "cid"
    img_ok(h, *run_args(h, "-d", "--name", "stubborn", "--stop-timeout", "1", "--cidfile", str(cidfile), IMAGE,
                        "sh", "-c", "trap '' TERM; sleep 600"))
    assert cidfile.read_text() == "stubborn"
    started = time.monotonic()
    img_ok(h, "stop", "stubborn")  # SIGTERM ignored: SIGKILL after its own 1 s, not the default 10
    assert time.monotonic() - started < 6
    one_line_error(img(h, *run_args(h, "--rm", "--cidfile", str(cidfile), IMAGE, "true")), "--cidfile", "exists")
    img_ok(h, "rm", "stubborn")
    assert not cidfile.exists()  # podman's: it goes with its container (docker leaves it)
    r = img(h, *run_args(h, "--rm", "--cidfile", str(cidfile), "--user", "nosuchuser", IMAGE, "true"))
    assert r.returncode != 0 and not cidfile.exists(), r.stderr
    one_line_error(img(h, *run_args(h, "--rm", "--stop-timeout", "-2", IMAGE, "true")), "--stop-timeout -2")
    # docker's stop -s and restart -s: that signal, not the container's own (it was "No such option")
    trap = "trap 'echo got $0; exit 3' USR1; while :; do sleep 0.1; done"
    img_ok(h, *run_args(h, "-d", "--name", "signalled", IMAGE, "sh", "-c", trap, "one"))
    one_line_error(img(h, "stop", "-s", "SIGBOGUS", "signalled"), "--signal", "SIGBOGUS")  # refused, left running
    assert img_ok(h, "inspect", "-f", "{{.State.Status}}", "signalled").stdout == "running\n"
    img_ok(h, "restart", "--signal", "USR1", "-t", "20", "signalled")
    img_ok(h, "stop", "-s", "SIGUSR1", "-t", "20", "signalled")
    assert img_ok(h, "inspect", "-f", "{{.State.ExitCode}}", "signalled").stdout == "3\n"
    assert img_ok(h, "logs", "signalled").stdout == "got one\ngot one\n"
    img_ok(h, "rm", "signalled")


def test_init_passes_signals_reaps_orphans_and_exits_as_the_command(images, busybox_archive, tmp_path):
    """docker's --init: the command runs under mrun-init (as docker's under tini at
    /sbin/docker-init): a SIGTERM reaches a command that has no handler for it (as PID 1 it
    would ignore it, and `stop` waited for its SIGKILL), orphans are reaped, and the exit status
    is the command's (128+N when killed by signal N, 127 when it cannot be run). A wasm image
    needs none: --init is left out, with a warning."""
    import time

    h = images
    img_ok(h, "load", busybox_archive)
    out = img_ok(h, *run_args(h, "--rm", "--init", IMAGE, "sh", "-c", "(sleep 0.1 &); sleep 1; ps -o stat,pid,args"))
    rows = out.stdout.splitlines()[1:]
    assert rows[0].split()[2:] == ["/sbin/docker-init", "--", "sh", "-c", "(sleep", "0.1", "&);", "sleep", "1;", "ps",
                                   "-o", "stat,pid,args"], rows
    assert not any(r.split()[0].startswith("Z") for r in rows), rows  # the orphaned sleep was reaped
    for script, code in (("exit 7", 7), ("kill -9 $$", 137)):
        assert img(h, *run_args(h, "--rm", "--init", IMAGE, "sh", "-c", script)).returncode == code
    r = img(h, *run_args(h, "--rm", "--init", IMAGE, "/no/such/program"))
    assert r.returncode == 127 and "mrun-init: cannot run /no/such/program" in r.stderr, r.stderr
    img_ok(h, *run_args(h, "-d", "--name", "initstop", "--init", IMAGE, "sleep", "600"))
    started = time.monotonic()
    img_ok(h, "stop", "-t", "30", "initstop")
    assert time.monotonic() - started < 10  # SIGTERM, passed on, ended it: no wait for the SIGKILL
    assert "Exited (143)" in img_ok(h, "ps", "-a", "--filter", "name=initstop").stdout
    img_ok(h, "rm", "initstop")
    img_ok(h, "load", build_wasm_archive(str(tmp_path)))
    r = img(h, *run_args(h, "--rm", "--init", WASM_IMAGE))
    assert r.returncode == 3 and "hello from wasm32-wasi" in r.stdout and "--init is left out" in r.stderr, r.stderr


def test_docker_s_flags_that_ask_for_what_mrun_does_anyway_are_taken(images, busybox_archive, tmp_path):
    """`docker cp -q` (no progress: mrun's cp prints none), `logs --details` (the attributes of
    --log-opt labels=/env=: mrun's logs carry none), `rmi --no-prune` (no untagged parents: mrun
    keeps none), `stats --no-trunc` (ids are names, never cut): each was "No such option", so a
    docker script stopped there."""
    h = images
    img_ok(h, "load", busybox_archive)
    img_ok(h, "tag", IMAGE, "localhost/spare:1")
    img_ok(h, *run_args(h, "--name", "said", IMAGE, "echo", "hello"))
    r = img_ok(h, "cp", "-q", "said:/etc/passwd", str(tmp_path / "passwd"))
    assert r.stdout == r.stderr == "" and (tmp_path / "passwd").read_text().startswith("root:")
    assert img_ok(h, "logs", "--details", "said").stdout == img_ok(h, "logs", "said").stdout == "hello\n"
    img_ok(h, "rm", "said")
    img_ok(h, *run_args(h, "-d", "--name", "stats", IMAGE, "sleep", "60"))
    assert img_ok(h, "stats", "--no-stream", "--no-trunc", "--format", "{{.ID}}", "stats").stdout == "stats\n"
    img_ok(h, "rm", "-f", "stats")
    assert img_ok(h, "rmi", "--no-prune", "localhost/spare:1").stdout.strip() == "Untagged: localhost/spare:1"
    assert img_ok(h, "images", "--format", "{{.Repository}}:{{.Tag}}").stdout == f"{IMAGE}\n"


def test_a_command_that_cannot_run_exits_126_or_127_as_docker_run(images, busybox_archive):
    """docker run's documented codes when the container's command never ran: 127 when it cannot be
    found (not along PATH, or a path that is missing), 126 when it cannot be invoked (a directory,
    a file that is not executable); `mrun run` said 1 for each. The same with -d, whose create
    fails before the id is printed; nothing of the container is left."""
    h = images
    img_ok(h, "load", busybox_archive)
    # a quote in the name (its line then quotes it "so") was 125, "the runtime's own failure"
    for cmd, code in (("/nope", 127), ("nope", 127), ("/", 126), ("/etc/passwd", 126), ("it's", 127)):
        for detach in ([], ["-d"]):
            r = img(h, *run_args(h, "--rm", *detach, IMAGE, cmd))
            assert r.returncode == code and r.stderr.count("\n") == 1 and f"exec: {cmd!r}" in r.stderr, (cmd, detach, r)
    assert img_ok(h, "ps", "-a", "-q").stdout.strip() == ""
    r = img(h, *run_args(h, "--rm", IMAGE, "sh", "-c", "exit 1"))
    assert r.returncode == 1  # the command's own code stays the command's
    # docker's exec into a container of `mrun run`: the same 127 and 126, and 126 for any other
    # exec that did not start (runc's 255 was given, which docker's exec never says)
    img_ok(h, *run_args(h, "-d", "--name", "execd", IMAGE, "sleep", "600"))
    try:
        for args, code in ((["execd", "nope"], 127), (["execd", "/etc/passwd"], 126),
                           (["-u", "nosuchuser", "execd", "true"], 126), (["execd", "sh", "-c", "exit 3"], 3)):
            r = img(h, "exec", *args)
            assert r.returncode == code and r.stderr.count("\n") == (code != 3), (args, r)
    finally:
        img_ok(h, "rm", "-f", "execd")


def test_runs_own_failures_exit_125_as_docker_run(images, busybox_archive):
    """docker run's 125: the error is the runtime's, not the container's. `mrun run` said 1, the
    code a container's `exit 1` gives too, so a script could not tell "no such image" from a
    command that failed. Foreground and -d; each is still one line; runc's `run --bundle` keeps
    runc's 1."""
    h = images
    img_ok(h, "load", busybox_archive)
    for args in (("--pull", "never", "no-such-image:1", "true"),  # no image
                 ("--memory", "lots", IMAGE, "true"),  # a flag's value
                 ("--pid-file", "/tmp/x", IMAGE, "true"),  # runc's flag on docker's run
                 ("--pids-limit", "x", IMAGE, "true"),  # a value the flag's type refuses (click's: exit 1)
                 ("--bogus", IMAGE, "true"),  # an unknown flag (click's four lines, exit 1)
                 # a limit the kernel refuses (nofile past fs.nr_open): as runc's create fails; it
                 # failed at start, foreground 1 and -d "started" (0, its id printed)
                 ("--ulimit", "nofile=-1", IMAGE, "true")):
        for detach in ([], ["-d"]):
            r = img(h, *run_args(h, "--rm", *detach, *args))
            assert r.returncode == 125 and r.stderr.count("\n") == 1 and r.stderr.startswith("mrun: "), (args, r)
    assert img_ok(h, "ps", "-a", "-q").stdout.strip() == ""
    r = img(h, "create", "--stop-timeout", "soon", IMAGE)  # docker create's too
    assert r.returncode == 125 and r.stderr.count("\n") == 1 and "--stop-timeout" in r.stderr, r
    r = h.mrun("run", "-b", os.path.join(h.tmp, "no-such-bundle"), h.cid())
    assert r.returncode == 1, r  # runc's run: its own code
    for args in (("run", "-b", h.tmp, "--pids-limit", "x", h.cid()), ("run",)):  # runc's; a missing argument
        r = h.mrun(*args)
        assert r.returncode == 1 and "Usage:" in r.stderr, (args, r)


def test_restart_policies_as_docker(images, busybox_archive):
    """mrun run -d --restart: the supervisor starts the container again, from its own files (what
    a run wrote is there in the next), as docker's policies say: on-failure[:N] after a non-zero
    exit (N times at most), always until the user stops it (`mrun stop`, a kill with SIGKILL,
    `mrun rm -f`), with docker's back-off; the count shows in inspect. With --rm, or without -d,
    it is refused (docker refuses --rm too)."""
    import time

    from conftest import processes_mentioning

    h = images
    img_ok(h, "load", busybox_archive)

    def exit_doc(name: str, restarting: bool = False) -> dict:
        deadline = time.monotonic() + 20
        while True:
            doc = json.loads(img_ok(h, "inspect", name).stdout).get("exit") or {}
            if doc and doc.get("restarting") == restarting and json.loads(
                    img_ok(h, "inspect", name).stdout)["state"]["status"] == "stopped":
                return doc
            assert time.monotonic() < deadline, doc
            time.sleep(0.1)

    # on-failure:2 -> three runs; what the first wrote, the second finds
    img_ok(h, *run_args(h, "-d", "--name", "flaky", "--restart", "on-failure:2", IMAGE, "sh", "-c",
                        "echo run >> /runs; wc -l < /runs; exit 3"))
    doc = exit_doc("flaky")
    assert doc["exit_code"] == 3 and doc["restarts"] == 2, doc
    assert img_ok(h, "logs", "flaky").stdout.split() == ["1", "2", "3"]
    assert "Exited (3)" in img_ok(h, "ps", "-a", "--filter", "name=flaky").stdout
    img_ok(h, "rm", "flaky")
    img_ok(h, *run_args(h, "-d", "--name", "fine", "--restart", "on-failure", IMAGE, "true"))
    assert exit_doc("fine") == {**exit_doc("fine"), "exit_code": 0, "restarts": 0}
    img_ok(h, "rm", "fine")

    # always: again and again, until stopped; then it stays stopped
    for stopping in (["stop", "-t", "1"], ["kill", "SIGKILL"]):
        img_ok(h, *run_args(h, "-d", "--name", "forever", "--restart", "always", IMAGE, "sh", "-c",
                            "echo run; sleep 0.2"))
        deadline = time.monotonic() + 20
        while (json.loads(img_ok(h, "inspect", "forever").stdout).get("exit") or {}).get("restarts", 0) < 2:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        img(h, *stopping[:1], "forever", *stopping[1:])
        exit_doc("forever")
        runs = img_ok(h, "logs", "forever").stdout.count("run")
        time.sleep(1.5)
        assert img_ok(h, "logs", "forever").stdout.count("run") == runs, stopping  # not started again
        img_ok(h, "rm", "forever")

    # rm -f while it waits to start again: gone, and its supervisor with it
    img_ok(h, *run_args(h, "-d", "--name", "doomed", "--restart", "always", IMAGE, "sh", "-c", "exit 1"))
    time.sleep(0.5)
    img_ok(h, "rm", "--force", "doomed")
    deadline = time.monotonic() + 10
    while processes_mentioning("doomed"):
        assert time.monotonic() < deadline, processes_mentioning("doomed")
        time.sleep(0.1)
    assert img(h, "inspect", "doomed").returncode != 0

    for flags, needles in ((["--rm", "-d", "--restart", "always"], ["--restart always with --rm"]),
                           (["--restart", "always"], ["--restart always: needs -d"]),
                           (["-d", "--restart", "sometimes"], ["--restart 'sometimes'"]),
                           (["-d", "--restart", "on-failure:x"], ["--restart 'on-failure:x'"])):
        one_line_error(img(h, *run_args(h, *flags, IMAGE, "true")), *needles)


def test_start_during_a_restart_back_off_and_a_supervisor_killed_in_it(images, busybox_archive):
    """`mrun start c` while c's restart policy waits out its back-off (docker: "Restarting", and
    its start does nothing): a second supervisor was forked, whose note of itself replaced the
    first's, and the restart count began again. `restart` started the container again while the
    old supervisor still lived (it could still start it again itself). A supervisor killed in
    the back-off (the OOM killer, a host's kill) left the container "Restarting" for ever:
    listed by `ps` as running, never pruned."""
    import time

    h = images
    img_ok(h, "load", busybox_archive)
    img_ok(h, *run_args(h, "-d", "--name", "flap", "--restart", "always", IMAGE, "sh", "-c", "echo run; exit 1"))
    bundle = os.path.join(h.image_root, "containers", "flap")

    def exit_doc() -> dict:
        try:
            with open(os.path.join(bundle, "exit.json")) as f:
                return json.load(f)
        except (OSError, ValueError):
            return {}

    def supervisor() -> int:
        with open(os.path.join(bundle, "supervisor.json")) as f:
            return json.load(f)["pid"]

    def alive(pid: int) -> bool:
        try:
            with open(f"/proc/{pid}/stat") as f:
                return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
        except OSError:
            return False

    deadline = time.monotonic() + 30
    while not (exit_doc().get("restarts", 0) >= 4 and exit_doc().get("restarting")):  # back-off 1.6 s now
        assert time.monotonic() < deadline, exit_doc()
        time.sleep(0.02)
    first, counted = supervisor(), exit_doc()["restarts"]
    assert img_ok(h, "start", "flap").stdout == "flap\n"  # docker's: a restarting container is left to it
    assert supervisor() == first and alive(first)
    deadline = time.monotonic() + 30
    while exit_doc().get("restarts", 0) <= counted:
        assert time.monotonic() < deadline, exit_doc()
        time.sleep(0.05)
    assert supervisor() == first  # the count goes on, under the one supervisor

    assert img_ok(h, "restart", "-t", "1", "flap").stdout == "flap\n"
    assert not alive(first)  # ended before the new one began
    second = supervisor()
    assert second != first and alive(second)

    deadline = time.monotonic() + 30
    while not exit_doc().get("restarting"):
        assert time.monotonic() < deadline, exit_doc()
        time.sleep(0.02)
    os.kill(second, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while alive(second):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert "Exited (1)" in img_ok(h, "ps", "-a", "--filter", "name=flap").stdout
    assert img_ok(h, "ps", "-q").stdout == ""  # not "Restarting", so not running
    assert img_ok(h, "inspect", "-f", "{{.State.Status}}", "flap").stdout == "exited\n"
    img_ok(h, "container", "prune", "-f")
    assert img_ok(h, "ps", "-aq").stdout == ""


def test_a_full_disk_loses_no_exit_code_and_rmi_frees_it(images, busybox_archive, busybox_rootfs, tmp_path):
    """The image root's disk full (a container that filled it, a log that did): the exit note
    (`exit.json`, written beside and renamed) could not be written, so `ps -a` said "stopped",
    `inspect` said ExitCode 0 of a container the stop signal ended, and `wait` failed, and `stop`
    waited two seconds more for the note; `rmi` failed (its record of what it removes could not
    be written). Room for both records is set aside while there is room."""
    from busybox_bundle import make_oci_archive

    h = images
    other_archive = make_oci_archive(busybox_rootfs, str(tmp_path), "localhost/other:2", ["/bin/true"], ["PATH=/bin"])
    os.makedirs(h.image_root)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "mrun-test-full", h.image_root], check=True)
    try:
        img_ok(h, "load", busybox_archive)
        fill = "cat /dev/zero > /big 2>/dev/null; "
        r = img(h, *run_args(h, "--name", "fg", IMAGE, "sh", "-c", fill + "exit 7"))
        assert r.returncode == 7, r.stderr
        assert os.statvfs(h.image_root).f_bavail == 0
        assert img_ok(h, "inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", "fg").stdout == "exited 7\n"
        img_ok(h, "rm", "fg")

        img_ok(h, *run_args(h, "-d", "--name", "loud", IMAGE, "sh", "-c", fill + "sleep 600"))
        deadline = time.monotonic() + 20
        while os.statvfs(h.image_root).f_bavail:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        started = time.monotonic()
        img_ok(h, "stop", "-t", "1", "loud")
        # -t 1, then SIGKILL (sh as PID 1 ignores SIGTERM); not two seconds more for a note that never came
        assert time.monotonic() - started < 2.5
        assert img_ok(h, "inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", "loud").stdout == "exited 137\n"
        assert "Exited (137)" in img_ok(h, "ps", "-a").stdout
        assert img_ok(h, "wait", "loud").stdout == "137\n"
        img_ok(h, "rm", "loud")

        # rmi, what frees room, recorded nothing (images.json is written beside and renamed) and so removed nothing
        img_ok(h, "tag", IMAGE, "other:1")
        img_ok(h, *run_args(h, "-d", "--name", "kept", IMAGE, "sleep", "600"))
        with open(os.path.join(h.image_root, "fill"), "wb", buffering=0) as f:
            with pytest.raises(OSError, match="No space left"):
                while True:
                    f.write(b"\0" * 65536)
        one_line_error(img(h, *run_args(h, "--rm", IMAGE, "true")), "No space left on device", "image.json")
        assert img_ok(h, "ps", "-aq").stdout == "kept\n"  # (it named no file)
        out = os.path.join(h.image_root, "out.tar")
        for args, where in ((["save", "-o", out, IMAGE], out), (["export", "-o", out, "kept"], out),
                            (["commit", "kept", "new:1"], os.path.join(h.image_root, "blobs"))):
            one_line_error(img(h, *args), "No space left on device: " + where)  # (they named no file)
            assert not os.path.exists(out)
        one_line_error(img(h, "load", other_archive), "No space left on device: " + os.path.join(h.image_root, "blobs"))
        img_ok(h, "rm", "-f", "kept")
        assert img_ok(h, "rmi", "other:1").stdout == "Untagged: other:1\n"
        img_ok(h, "rmi", IMAGE)
        assert os.statvfs(h.image_root).f_bavail > 0
        assert img_ok(h, "images", "-q").stdout == ""
    finally:
        for cid in ("fg", "loud", "kept"):
            img(h, "rm", "-f", cid)
        subprocess.run(["umount", h.image_root], check=True)


def test_run_attach_shows_the_streams_it_names_as_docker_s(images, busybox_archive):
    """docker's `run -a STREAM` (was "No such option"): the streams named are shown here, the
    others are logged only (kept: `logs` has both) or, under --rm, go nowhere; -a stdin gives the
    container our stdin, and -i without -a stdin does not. A stream that is none, -a with -d,
    or with create: one line, 125."""
    h = images
    img_ok(h, "load", busybox_archive)
    base = [h.binary, "--root", h.root, "--image-root", h.image_root]
    env = {**os.environ, **h.base_env}
    both = ["sh", "-c", "read -r got; echo out $got; echo err >&2; exit 3"]

    def run(*flags: str) -> tuple[int, str, str]:
        r = subprocess.run([*base, *run_args(h, *flags, IMAGE, *both)], input="in\n", capture_output=True,
                           text=True, env=env, timeout=60)
        return r.returncode, r.stdout, r.stderr

    assert run("--rm", "-a", "stdout") == (3, "out\n", "")
    assert run("--rm", "-a", "STDERR") == (3, "", "err\n")
    assert run("--rm", "-a", "stdout", "-a", "stderr") == (3, "out\n", "err\n")
    assert run("--rm", "-a", "stdin", "-a", "stdout") == (3, "out in\n", "")
    assert run("--rm", "-i", "-a", "stdout") == (3, "out\n", "")  # stdin open, not attached: nothing of ours
    assert run("--name", "att", "-a", "stderr") == (3, "", "err\n")
    logs = subprocess.run([*base, "logs", "att"], capture_output=True, text=True, env=env, timeout=60)
    assert (logs.stdout, logs.stderr) == ("out\n", "err\n")  # what was not shown was logged
    img_ok(h, "rm", "att")
    for flags, words in ((["-a", "stdall"], 'invalid argument "stdall" for "-a, --attach" flag'),
                         (["-d", "-a", "stdout"], "Conflicting options: -a and -d")):
        r = img(h, *run_args(h, *flags, IMAGE, "true"))
        assert r.returncode == 125, r
        one_line_error(r, words)
    r = img(h, "create", "-a", "stdout", IMAGE, "true")
    assert r.returncode == 125, r
    assert img_ok(h, "ps", "-aq").stdout == ""


def test_run_and_exec_without_i_read_nothing_of_the_callers_stdin(images, busybox_archive):
    """docker's `run` without -i gives the container no stdin (/dev/null); mrun passed its own,
    so `... | while read line; do mrun run IMAGE cmd; done` ran once, the container having eaten
    the rest of the loop's input (the ssh -n trap), and a container without -i could read the
    caller's terminal; `exec` likewise. With -i it is the caller's, as before; runc's `run
    --bundle` (and exec in a bundle's container: the shims', podman's) keeps it."""
    h = images
    img_ok(h, "load", busybox_archive)
    base = [h.binary, "--root", h.root, "--image-root", h.image_root]
    env = {**os.environ, **h.base_env}
    count = ["sh", "-c", "cat | wc -l"]
    r = subprocess.run([*base, *run_args(h, "--rm", IMAGE, *count)], input="a\nb\n", capture_output=True,
                       text=True, env=env, timeout=60)
    assert (r.returncode, r.stdout.strip(), r.stderr) == (0, "0", "")
    r = subprocess.run([*base, *run_args(h, "--rm", "-i", IMAGE, *count)], input="a\nb\n", capture_output=True,
                       text=True, env=env, timeout=60)
    assert (r.returncode, r.stdout.strip(), r.stderr) == (0, "2", "")
    loop = f'while read line; do echo "$line"; {" ".join(base + run_args(h, "--rm", IMAGE, "cat"))}; done'
    r = subprocess.run(["sh", "-c", loop], input="a\nb\nc\n", capture_output=True, text=True, env=env, timeout=60)
    assert (r.stdout, r.stderr) == ("a\nb\nc\n", "")
    img_ok(h, *run_args(h, "-d", "--name", "ex", IMAGE, "sleep", "600"))
    for flags, lines in (([], "0"), (["-i"], "2")):  # docker's exec likewise
        r = subprocess.run([*base, "exec", *flags, "ex", *count], input="a\nb\n", capture_output=True, text=True,
                           env=env, timeout=60)
        assert (r.returncode, r.stdout.strip(), r.stderr) == (0, lines, ""), flags
    img_ok(h, "rm", "-f", "ex")
    bundle = h.bundle(["sh", "-c", "cat | wc -l"])
    r = subprocess.run([h.binary, "--root", h.root, "run", "-b", bundle, h.cid()], input="a\nb\n", capture_output=True,
                       text=True, env=env, timeout=60)
    assert (r.returncode, r.stdout.strip()) == (0, "2")  # runc's: the caller's stdin


def test_containers_outlive_a_reboot_as_docker_s(images, busybox_archive):
    """A reboot takes /run (the runtime's state) and leaves /var/lib/mrun (the containers' files):
    every container then looked like a killed mrun's leftover, absent from `ps -a`, and the next
    `system prune` (or `image prune`, `rm -f`) removed them, their files with them. Docker keeps
    them. The reboot is played here as power loss: every process killed, the overlays and
    cgroups gone, the state root removed, the bundles' boot an earlier one."""
    h = images
    img_ok(h, "load", busybox_archive)
    img_ok(h, *run_args(h, "-d", "--name", "svc", IMAGE, "sh", "-c", "echo run >> /runs; wc -l < /runs; sleep 600"))
    img_ok(h, *create_args(h, "--name", "made", IMAGE, "sh", "-c", "echo made ran"))
    assert img(h, *run_args(h, "--name", "fg", IMAGE, "sh", "-c", "exit 3")).returncode == 3
    img_ok(h, *create_args(h, "--name", "broken", IMAGE, "true"))  # its layers will be gone
    deadline = time.monotonic() + 10
    while img_ok(h, "logs", "svc").stdout != "1\n":
        assert time.monotonic() < deadline
        time.sleep(0.05)

    containers = os.path.join(h.image_root, "containers")
    play_a_reboot(h, ["svc", "made", "fg", "broken"], {"broken": {"layers": ["sha256:" + "0" * 64]}})

    r = img_ok(h, "system", "prune")  # the first command of the boot: nothing of theirs is pruned
    assert "'broken' of an earlier boot cannot be taken back" in r.stderr and "mrun rm -f broken" in r.stderr
    listed = img_ok(h, "ps", "-a").stdout
    assert "fg" in listed and "Exited (3)" in listed, listed
    assert "Orphaned (mrun rm -f)" in [line for line in listed.splitlines() if line.startswith("broken")][0]
    img_ok(h, "rm", "-f", "broken")  # named, it goes
    assert not os.path.exists(os.path.join(containers, "broken"))
    assert img_ok(h, "inspect", "-f", "{{.State.Status}}", "made", "svc").stdout == "created\nexited\n"
    img_ok(h, "start", "svc")
    deadline = time.monotonic() + 10
    while img_ok(h, "logs", "svc").stdout != "1\n2\n":  # its files kept: /runs has both runs
        assert time.monotonic() < deadline, img_ok(h, "logs", "svc").stdout
        time.sleep(0.05)
    assert img_ok(h, "start", "-a", "made").stdout == "made ran\n"
    img_ok(h, "rm", "-f", "svc", "made", "fg")
    assert img_ok(h, "ps", "-aq").stdout == ""


def test_a_state_root_removed_under_running_containers_loses_none_of_them(images, busybox_archive):
    """`rm -rf /run/mrun` (a tmpfiles clean-up, an admin) while detached containers run: each
    looked like a killed mrun's leftover ("orphaned"), and the next `system prune` removed its
    files from under it (its rootfs, its writable layer), leaving it running where no verb could
    reach it. Its supervisor keeps the runtime's record in the bundle; the next command writes it
    back, so it is listed running, exec'd into, stopped and removed as before."""
    h = images
    img_ok(h, "load", busybox_archive)
    img_ok(h, *run_args(h, "-d", "--name", "svc", IMAGE, "sh", "-c", "echo kept > /f; sleep 600"))
    img_ok(h, *run_args(h, "-d", "--restart", "always", "--name", "again", IMAGE, "sh", "-c", "sleep 0.3"))
    img_ok(h, *run_args(h, "-d", "--name", "ended", IMAGE, "sh", "-c", "echo done > /f; exit 4"))
    assert img_ok(h, "wait", "ended").stdout == "4\n"
    deadline = time.monotonic() + 10
    while img(h, "exec", "svc", "cat", "/f").stdout != "kept\n":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    remove_under_mrun(h.root)

    r = img_ok(h, "system", "prune")
    assert "svc" not in r.stdout and "again" not in r.stdout and "ended" not in r.stdout, r.stdout
    # one that had ended: taken back as after a reboot, its files and exit code kept
    assert img_ok(h, "inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", "ended").stdout == "exited 4\n"
    img_ok(h, "start", "ended")
    assert img_ok(h, "wait", "ended").stdout == "4\n"
    assert img_ok(h, "logs", "ended").stdout == ""
    img_ok(h, "rm", "ended")
    status = img_ok(h, "inspect", "-f", "{{.State.Status}}", "svc").stdout
    assert status == "running\n", status
    assert img_ok(h, "exec", "svc", "cat", "/f").stdout == "kept\n"
    remove_under_mrun(h.root)  # once more, the restarting one in its back-off or running again
    deadline = time.monotonic() + 10
    while "restarting" in img_ok(h, "inspect", "-f", "{{.State.Status}}", "again").stdout:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    img_ok(h, "stop", "-t", "1", "svc", "again")
    assert img_ok(h, "inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", "svc").stdout == "exited 137\n"
    img_ok(h, "rm", "svc", "again")
    # removed while its supervisor restarts it: nothing writes it back (the copy goes first)
    img_ok(h, *run_args(h, "-d", "--restart", "always", "--name", "cycling", IMAGE, "sh", "-c", "sleep 0.2"))
    time.sleep(0.5)
    img_ok(h, "rm", "-f", "cycling")
    time.sleep(1.5)  # past the supervisor's back-off
    assert img_ok(h, "ps", "-aq").stdout == ""
    assert not os.path.exists(os.path.join(h.image_root, "containers", "cycling"))


def test_a_state_root_removed_under_a_foreground_container_loses_it_not(images, busybox_archive):
    """`rm -rf /run/mrun` while `mrun run --name fg IMAGE ...` runs in the foreground (no --rm):
    the container was invisible while it ran, and once it ended its bundle was a killed mrun's
    leftover, which `system prune` removed with its log and exit code. The runner keeps a copy of
    its record once it started it (as a supervisor does): the next command writes it back, so it
    is listed, exec'd into while it runs, and kept with its code and log once it ends; one that
    had already ended when the state went is written back too."""
    h = images
    img_ok(h, "load", busybox_archive)
    assert img(h, *run_args(h, "--name", "before", IMAGE, "sh", "-c", "echo earlier; exit 5")).returncode == 5
    runner = subprocess.Popen([h.binary, "--root", h.root, "--image-root", h.image_root,
                               *run_args(h, "--name", "fg", IMAGE, "sh", "-c",
                                         "echo started; while [ ! -e /go ]; do sleep 0.05; done; echo ended; exit 3")],
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env={**os.environ, **h.base_env})
    assert runner.stdout is not None
    try:
        assert runner.stdout.readline() == b"started\n"
        # The runner keeps its copy once the start has returned, which the container's first line
        # may come before: the state removed in between is a window this test does not play.
        kept = os.path.join(h.image_root, "containers", "fg", "record.json")
        deadline = time.monotonic() + 10
        while not os.path.exists(kept):
            assert time.monotonic() < deadline, "the runner never kept its record"
            time.sleep(0.01)
        remove_under_mrun(h.root)
        r = img_ok(h, "system", "prune")
        assert "fg" not in r.stdout and "before" not in r.stdout, r.stdout
        assert img_ok(h, "inspect", "-f", "{{.State.Status}}", "fg").stdout == "running\n"
        img_ok(h, "exec", "fg", "touch", "/go")
    finally:  # failing, the container is ended through its rootfs (no verb may reach it): nothing runs on
        go = os.path.join(h.image_root, "containers", "fg", "rootfs", "go")
        if runner.poll() is None and os.path.isdir(os.path.dirname(go)):
            open(go, "w").close()
    out, err = runner.communicate(timeout=30)
    assert runner.returncode == 3 and out == b"ended\n", err
    img_ok(h, "system", "prune")
    assert img_ok(h, "inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", "fg").stdout == "exited 3\n"
    assert img_ok(h, "logs", "fg").stdout == "started\nended\n"
    assert img_ok(h, "inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", "before").stdout == "exited 5\n"
    assert img_ok(h, "logs", "before").stdout == "earlier\n"
    img_ok(h, "rm", "fg", "before")
    assert not h.leftovers()


def test_exec_and_top_of_a_container_not_running_say_so_as_docker(images, busybox_archive):
    """docker's exec and top of a created or exited container: "container X is not running",
    exit 1. exec said "it is stopped" with runc's 255 (a script told "the command failed"), top
    printed an empty table with 0. A paused one: exec is refused as docker's ("unpause the
    container before exec"; ours named runc's --ignore-paused), top lists its processes."""
    h = images
    img_ok(h, "load", busybox_archive)
    img_ok(h, *create_args(h, "--name", "made", IMAGE, "sleep", "600"))
    img_ok(h, *run_args(h, "--name", "ended", IMAGE, "true"))
    for name in ("made", "ended"):
        for verb in (["exec", name, "true"], ["exec", "-d", name, "true"], ["top", name]):
            r = img(h, *verb)
            one_line_error(r, f"container {name!r} is not running")
            assert r.returncode == 1, (verb, r.returncode)
    img_ok(h, *run_args(h, "-d", "--name", "up", IMAGE, "sleep", "600"))
    img_ok(h, "pause", "up")
    r = img(h, "exec", "up", "true")
    one_line_error(r, "container 'up' is paused, unpause the container before exec")
    assert r.returncode == 1
    assert "sleep 600" in img_ok(h, "top", "up").stdout
    one_line_error(img(h, "top", "up", "-o", "bogus"), "ps -o bogus", "bogus")  # ps(1)'s first line, not its usage
    img_ok(h, "unpause", "up")
    assert img(h, "exec", "up", "sh", "-c", "exit 5").returncode == 5
    img_ok(h, "rm", "-f", "made", "ended", "up")


def test_a_foreground_container_keeps_its_log_as_docker_s(images, busybox_archive):
    """docker's `logs` of a container run in the foreground shows what it printed (docker's daemon
    logs every container's output); ours said "has no log (only `mrun run -d IMAGE` keeps one)".
    Its output still reaches the caller, each stream on its own and all of it before the exit
    code; a reader that goes (`| head`) still ends it; --log-driver none keeps none."""
    h = images
    img_ok(h, "load", busybox_archive)
    r = img(h, *run_args(h, "--name", "fg", IMAGE, "sh", "-c", "echo out; echo err >&2; seq 1 20000; exit 3"))
    expected = "out\n" + "".join(f"{i}\n" for i in range(1, 20001))
    assert (r.returncode, r.stdout, r.stderr) == (3, expected, "err\n")
    logs = img_ok(h, "logs", "fg")
    assert (logs.stdout, logs.stderr) == (expected, "err\n")
    stamped = img_ok(h, "logs", "-t", "fg")  # each stream in its order (between the two: as the tee read them)
    lines = stamped.stdout.splitlines()
    assert len(lines) == 20001 and lines[0].endswith("Z out") and lines[-1].endswith("Z 20000"), lines[-3:]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z err\n", stamped.stderr), stamped.stderr
    assert img_ok(h, "inspect", "-f", "{{.State.ExitCode}}", "fg").stdout == "3\n"
    env = {**os.environ, **h.base_env}
    base = [h.binary, "--root", h.root, "--image-root", h.image_root]
    head = subprocess.run(f"{shlex.join([*base, *run_args(h, '--name', 'many', IMAGE, 'seq', '1', '10000000')])}"
                          " | head -2", shell=True, capture_output=True, text=True, env=env, timeout=60)
    assert head.stdout == "1\n2\n", head.stderr
    assert img_ok(h, "inspect", "-f", "{{.State.Status}}", "many").stdout == "exited\n"
    img_ok(h, *run_args(h, "--name", "quiet", "--log-driver", "none", IMAGE, "echo", "said"))
    one_line_error(img(h, "logs", "quiet"), "has no log", "--log-driver none")
    img_ok(h, "rm", "fg", "many", "quiet")


def test_logs_timestamps_since_and_until_as_docker(images, busybox_archive):
    """`mrun logs -t` prints each line's time (docker's nine-digit RFC 3339), --since and --until
    take a time, a Unix time or a duration ago, --tail counts lines; the times are the ones the
    supervisor noted as the lines came. A prompt without a newline is in the log at once (it
    waited in the file before), and 100,000 lines all arrive, in order."""
    h = images
    img_ok(h, "load", busybox_archive)
    script = "echo one; echo two >&2; sleep 1.2; echo three; printf prompt; sleep 600"
    img_ok(h, *run_args(h, "-d", "--name", "tl", IMAGE, "sh", "-c", script))
    img_ok(h, *run_args(h, "-d", "--name", "many", IMAGE, "seq", "1", "100000"))
    try:
        deadline = time.monotonic() + 20
        while "prompt" not in img_ok(h, "logs", "tl").stdout and time.monotonic() < deadline:
            time.sleep(0.1)
        plain = img_ok(h, "logs", "tl")
        assert (plain.stdout, plain.stderr) == ("one\nthree\nprompt", "two\n")  # stderr on stderr, as docker's
        assert logs_2_to_1(h, "tl") == "one\ntwo\nthree\nprompt"
        assert img_ok(h, "logs", "-t", "tl").stderr.endswith("Z two\n")
        stamped = logs_2_to_1(h, "-t", "tl").split("\n")
        pattern = r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z) (.*)"
        rows = [re.fullmatch(pattern, line).groups() for line in stamped]
        assert [text for _t, text in rows] == ["one", "two", "three", "prompt"], stamped
        times = {text: _unix_ns(at) for at, text in rows}
        assert times["three"] - times["one"] >= 1_000_000_000
        since = rows[2][0]  # three's own time
        assert img_ok(h, "logs", "--since", since, "tl").stdout == "three\nprompt"
        until = f"{(times['one'] + 500_000_000) // 10**9}.{(times['one'] + 500_000_000) % 10**9:09d}"
        assert logs_2_to_1(h, "--until", until, "tl") == "one\ntwo\n"
        assert logs_2_to_1(h, "--since", "1h", "tl") == "one\ntwo\nthree\nprompt"
        assert logs_2_to_1(h, "--until", "1h", "tl") == ""  # nothing came before an hour ago
        assert img_ok(h, "logs", "-t", "--tail", "2", "tl").stdout.endswith("Z three\n" + rows[3][0] + " prompt")
        assert logs_2_to_1(h, "--tail", "3", "tl") == "two\nthree\nprompt"  # lines of both streams count
        h.wait_status("many", "stopped", timeout=30)
        out = img_ok(h, "logs", "many").stdout.split()
        assert out == [str(i) for i in range(1, 100001)]
        assert len(img_ok(h, "logs", "-t", "many").stdout.splitlines()) == 100000
        img_ok(h, "stop", "-t", "1", "tl")
        assert img_ok(h, "logs", "-f", "-t", "--tail", "1", "tl").stdout.endswith(" prompt")  # stopped: returns
    finally:
        img_ok(h, "rm", "-f", "tl", "many")
    for bad in ("yesterday", "10x", "2026-13-45"):
        one_line_error(img(h, "logs", "--since", bad, "no-such"), "no-such")  # the container, first
    img_ok(h, *run_args(h, "-d", "--name", "tl2", IMAGE, "true"))
    try:
        h.wait_status("tl2", "stopped")
        for bad in ("yesterday", "10x", "2026-13-45"):
            one_line_error(img(h, "logs", "--since", bad, "tl2"), f"--since {bad!r}")
    finally:
        img_ok(h, "rm", "-f", "tl2")


def test_log_rotation_and_log_driver_none_as_docker(images, busybox_archive):
    """--log-opt max-size/max-file bound a detached container's log (rotated: log, log.1, log.2;
    the oldest dropped), and `logs` reads across the files, -t and --tail too, and follows
    across rotations without losing or repeating a line; --log-driver none keeps nothing; other
    drivers and options are one line."""
    h = images
    img_ok(h, "load", busybox_archive)
    img_ok(h, *run_args(h, "-d", "--name", "rot", "--log-opt", "max-size=2k", "--log-opt", "max-file=3", IMAGE,
                        "seq", "1", "2000"))
    slow = "for i in $(seq 1 300); do echo $i; sleep 0.01; done"
    img_ok(h, *run_args(h, "-d", "--name", "slow", "--log-opt", "max-size=200", "--log-opt", "max-file=2", IMAGE,
                        "sh", "-c", slow))
    followers = [subprocess.Popen([h.binary, "--root", h.root, "--image-root", h.image_root, "logs", "-f", *extra,
                                   "slow"], stdout=subprocess.PIPE, env={**os.environ, **h.base_env})
                 for extra in ([], ["-t"])]
    try:
        h.wait_status("rot", "stopped", timeout=30)
        bundle = os.path.join(h.image_root, "containers", "rot")
        kept = sorted(n for n in os.listdir(bundle) if n.startswith("log"))
        assert kept == ["log", "log.1", "log.2", "log.times", "log.times.1", "log.times.2"], kept
        # at most max-size, but for the rest of a line begun below it (a file never starts mid-line)
        assert all(os.path.getsize(os.path.join(bundle, n)) <= 2048 + 5 for n in ("log", "log.1", "log.2"))
        shown = [int(n) for n in img_ok(h, "logs", "rot").stdout.split()]
        assert shown[-1] == 2000 and shown == list(range(shown[0], 2001)) and shown[0] > 1000, shown[:3]
        stamped = img_ok(h, "logs", "-t", "rot").stdout.splitlines()
        assert [int(line.split()[1]) for line in stamped] == shown
        assert img_ok(h, "logs", "--tail", "3", "rot").stdout.split() == ["1998", "1999", "2000"]
        # its supervisor killed between a rotation's renames of the log and of its index: `logs`
        # and `logs -t` read what is kept, each line with its own time; `start` carries on from there
        os.replace(os.path.join(bundle, "log.1"), os.path.join(bundle, "log.2"))
        os.replace(os.path.join(bundle, "log"), os.path.join(bundle, "log.1"))
        kept = [int(n) for n in img_ok(h, "logs", "rot").stdout.split()]
        assert kept == shown[-len(kept):] and len(kept) < len(shown), kept[:3]
        assert img_ok(h, "logs", "-t", "rot").stdout.splitlines() == stamped[-len(kept):]
        img_ok(h, "start", "rot")
        h.wait_status("rot", "stopped", timeout=30)
        again = img_ok(h, "logs", "-t", "rot").stdout.splitlines()
        assert [int(line.split()[1]) for line in again][-3:] == [1998, 1999, 2000]
        assert sorted(again) == again, "in time order"
        h.wait_status("slow", "stopped", timeout=30)
        plain, timed = (f.communicate(timeout=30)[0].decode() for f in followers)
        assert plain.split() == [str(i) for i in range(1, 301)]
        assert [line.split()[1] for line in timed.splitlines()] == [str(i) for i in range(1, 301)]
    finally:
        for f in followers:
            f.kill()
            f.wait()
        img_ok(h, "rm", "-f", "rot", "slow")
    img_ok(h, *run_args(h, "-d", "--name", "quiet", "--log-driver", "none", IMAGE, "echo", "hi"))
    try:
        h.wait_status("quiet", "stopped")
        assert not [n for n in os.listdir(os.path.join(h.image_root, "containers", "quiet")) if n.startswith("log")]
        one_line_error(img(h, "logs", "quiet"), "has no log", "--log-driver none")
        assert img_ok(h, "start", "quiet").stdout == "quiet\n"  # as any detached container, started again
        h.wait_status("quiet", "stopped")
        assert not [n for n in os.listdir(os.path.join(h.image_root, "containers", "quiet")) if n.startswith("log")]
    finally:
        img_ok(h, "rm", "-f", "quiet")
    for flags, needles in ((["--log-driver", "syslog"], ["--log-driver 'syslog'"]),
                           (["--log-opt", "max-file=3"], ["max-file: needs max-size"]),
                           (["--log-opt", "compress=true"], ["--log-opt 'compress=true'"]),
                           (["--log-opt", "max-size=0"], ["--log-opt 'max-size=0'"]),
                           (["--log-driver", "none", "--log-opt", "max-size=1k"], ["--log-opt 'max-size=1k'"])):
        one_line_error(img(h, *run_args(h, "-d", *flags, IMAGE, "true")), *needles)


def _unix_ns(rfc3339: str) -> int:
    import calendar

    whole, fraction = rfc3339.rstrip("Z").split(".")
    return calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S")) * 10**9 + int(fraction)


def test_commit_change_takes_docker_s_healthcheck_and_onbuild(images, busybox_archive):
    """docker's `commit --change` takes HEALTHCHECK and ONBUILD beside the others (moby's
    validCommitCommands); mrun refused both ("CMD | ENTRYPOINT | ... and a value"). HEALTHCHECK
    [--interval= --timeout= --start-period= --start-interval= --retries=] CMD (shell or JSON
    form), or NONE, is the image's Healthcheck, which its detached containers run; ONBUILD
    keeps its instruction in the image's OnBuild. docker's refusals are one line each."""
    h = images
    img_ok(h, "load", busybox_archive)
    img_ok(h, *run_args(h, "--name", "base", IMAGE, "true"))
    try:
        img_ok(h, "commit", "-c", "HEALTHCHECK --interval=200ms --retries=2 CMD test -e /etc/passwd",
               "-c", "ONBUILD RUN echo later", "-c", 'onbuild ADD . /app', "base", "localhost/hc:1")
        config = json.loads(img_ok(h, "image", "inspect", "localhost/hc:1").stdout)["config"]["config"]
        assert config["Healthcheck"] == {"Test": ["CMD-SHELL", "test -e /etc/passwd"], "Interval": 200_000_000,
                                         "Retries": 2}, config
        assert config["OnBuild"] == ["RUN echo later", "ADD . /app"], config
        img_ok(h, "commit", "-c", 'HEALTHCHECK --timeout=3s CMD ["true"]', "base", "localhost/hc:2")
        config = json.loads(img_ok(h, "image", "inspect", "localhost/hc:2").stdout)["config"]["config"]
        assert config["Healthcheck"] == {"Test": ["CMD", "true"], "Timeout": 3_000_000_000}, config
        img_ok(h, "commit", "-c", "HEALTHCHECK NONE", "base", "localhost/hc:3")
        config = json.loads(img_ok(h, "image", "inspect", "localhost/hc:3").stdout)["config"]["config"]
        assert config["Healthcheck"] == {"Test": ["NONE"]}, config
        img_ok(h, *run_args(h, "-d", "--name", "hcd", "localhost/hc:1", "sleep", "600"))
        deadline = time.monotonic() + 30
        while "(healthy)" not in img_ok(h, "ps", "--filter", "name=hcd", "--format", "{{.Status}}").stdout:
            assert time.monotonic() < deadline, "the committed check never passed"
            time.sleep(0.1)
        for change, needle in (("HEALTHCHECK --interval=x CMD true", "--interval"),
                               ("HEALTHCHECK --interval=10us CMD true", "--interval"),
                               ("HEALTHCHECK --retries=-1 CMD true", "--retries"),
                               ("HEALTHCHECK --bogus=1 CMD true", "--bogus"), ("HEALTHCHECK CMD", "CMD"),
                               ("HEALTHCHECK NONE true", "NONE"), ("HEALTHCHECK echo", "CMD or NONE"),
                               ("ONBUILD ONBUILD RUN x", "ONBUILD"), ("ONBUILD FROM x", "FROM"),
                               ("FROM busybox", "FROM")):
            one_line_error(img(h, "commit", "-c", change, "base", "localhost/hc:bad"), needle)
        assert "hc:bad" not in img_ok(h, "images").stdout
    finally:
        img(h, "rm", "-f", "hcd", "base")


def test_commit_change_reads_env_and_label_as_a_dockerfile_does(images, busybox_archive):
    """`--change 'ENV MSG="hello world"'`, a label whose key and value are quoted, and docker's
    legacy `ENV KEY value with spaces`: mrun split the line on every space, so a quoted value was
    refused ("KEY=VALUE ...") and a quote was kept where one was not closed. Words as a
    Dockerfile's: quotes group and go, a backslash escapes; an unclosed quote is one line."""
    h = images
    img_ok(h, "load", busybox_archive)
    img_ok(h, *run_args(h, "--name", "base", IMAGE, "true"))
    try:
        img_ok(h, "commit", "-c", 'ENV MSG="hello world" OTHER=x\\ y', "-c", "ENV LEGACY a value  with spaces",
               "-c", 'LABEL "com.example.vendor"="ACME Inc" single=\'quoted here\'', "base", "localhost/env:1")
        config = json.loads(img_ok(h, "image", "inspect", "localhost/env:1").stdout)["config"]["config"]
        env = dict(e.split("=", 1) for e in config["Env"])
        assert env["MSG"] == "hello world" and env["OTHER"] == "x y" and env["LEGACY"] == "a value  with spaces", env
        assert config["Labels"] == {"com.example.vendor": "ACME Inc", "single": "quoted here"}, config["Labels"]
        out = img_ok(h, *run_args(h, "--rm", "localhost/env:1", "sh", "-c", 'echo "$MSG"')).stdout
        assert out == "hello world\n"
        # variables of the config as it stands, as a Dockerfile's: $VAR, ${VAR}, ${VAR:-word},
        # ${VAR:+word}; none in single quotes or after a backslash; an instruction sees the
        # values before it (ENV A=1 B=$A: B is A's old value)
        img_ok(h, *run_args(h, "--name", "base2", "localhost/env:1", "true"))
        img_ok(h, "commit", "-c", "ENV PATH=/opt/bin:$PATH HOME=/root OLD=$MSG", "-c", "ENV MSG=new SEEN=$MSG",
               "-c", "ENV D=${NOPE:-dflt} P=${HOME:+set} LIT='$HOME' ESC=\\$HOME", "-c", "WORKDIR $HOME/app",
               "-c", "LABEL home=${HOME}", "base2", "localhost/env:2")
        config = json.loads(img_ok(h, "image", "inspect", "localhost/env:2").stdout)["config"]["config"]
        env = dict(e.split("=", 1) for e in config["Env"])
        assert env["PATH"].startswith("/opt/bin:/") and "$" not in env["PATH"], env
        assert (env["OLD"], env["MSG"], env["SEEN"]) == ("hello world", "new", "hello world"), env
        assert (env["D"], env["P"], env["LIT"], env["ESC"]) == ("dflt", "set", "$HOME", "$HOME"), env
        assert config["WorkingDir"] == "/root/app" and config["Labels"]["home"] == "/root", config
        img_ok(h, *run_args(h, "--name", "base3", "localhost/env:2", "true"))
        img_ok(h, "commit", "-c", "WORKDIR sub", "base3", "localhost/env:3")  # relative: under the last, as docker's
        config = json.loads(img_ok(h, "image", "inspect", "localhost/env:3").stdout)["config"]["config"]
        assert config["WorkingDir"] == "/root/app/sub", config
        for change in ('ENV A="unterminated', "LABEL a='open", "ENV LONELY", "ENV A=${unclosed"):
            one_line_error(img(h, "commit", "-c", change, "base", "localhost/env:bad"), "--change")
    finally:
        img(h, "rm", "-f", "base", "base2", "base3")


def test_commit_change_substitutes_in_user_expose_volume_and_stopsignal(images, busybox_archive):
    """Docker's builder reads variables in USER, EXPOSE, VOLUME and STOPSIGNAL too: mrun kept
    `USER $RUNAS` literally (the container then ran as no such user). A STOPSIGNAL that is no
    signal is refused at commit, as docker refuses it (it was kept, and `mrun stop` warned of it
    ever after); a refused change, found only where it applies (a bad port), left the layer it
    had written. Now checked before anything is written: the store holds no more blobs."""
    h = images
    img_ok(h, "load", busybox_archive)
    img_ok(h, *run_args(h, "--name", "subst", IMAGE, "true"))
    blobs = os.path.join(h.image_root, "blobs", "sha256")
    try:
        img_ok(h, "commit", "-c", "ENV RUNAS=nobody PORT=8080 DATA=/data SIG=USR1", "-c", "USER $RUNAS",
               "-c", "EXPOSE $PORT ${PORT:+9090}/udp", "-c", 'VOLUME ["$DATA/a"]', "-c", "VOLUME ${DATA}/b '/$DATA'",
               "-c", "STOPSIGNAL SIG$SIG", "subst", "localhost/subst:1")
        config = json.loads(img_ok(h, "image", "inspect", "localhost/subst:1").stdout)["config"]["config"]
        assert config["User"] == "nobody" and config["StopSignal"] == "SIGUSR1", config
        assert set(config["ExposedPorts"]) == {"8080/tcp", "9090/udp"}, config["ExposedPorts"]
        assert set(config["Volumes"]) == {"/data/a", "/data/b", "/$DATA"}, config["Volumes"]
        out = img_ok(h, *run_args(h, "--rm", "localhost/subst:1", "id", "-un")).stdout
        assert out == "nobody\n", out
        img_ok(h, *run_args(h, "--name", "changed", IMAGE, "sh", "-c", "echo new > /file"))  # a layer of its own
        before = sorted(os.listdir(blobs))
        for change in ("EXPOSE $NOPE", "STOPSIGNAL SIGNOPE", "STOPSIGNAL $UNSET", "USER 'open", "VOLUME ''"):
            one_line_error(img(h, "commit", "-c", change, "changed", "localhost/subst:bad"), "--change")
            assert sorted(os.listdir(blobs)) == before, f"{change}: blobs left"
    finally:
        img(h, "rm", "-f", "subst", "changed")


def test_an_image_holding_one_layer_twice_runs(images, busybox_archive, tmp_path):
    """An image whose manifest lists one layer twice (kept once, by digest: a build step repeated,
    or two commits that changed nothing within one second): its containers' overlay named that
    directory twice, which overlayfs refuses ("Too many levels of symbolic links"), so the image
    could not run. Each is named once, at its topmost place (the same files either way). The
    image is made so by hand: two commits made it only when their second was the same (their
    directories' times are in the layer), which made this test depend on the clock."""
    h = images
    layout = tmp_path / "twice"
    with tarfile.open(busybox_archive) as t:
        t.extractall(layout)
    blobs = layout / "blobs" / "sha256"

    def put(doc: dict) -> tuple[str, int]:
        data = json.dumps(doc).encode()
        digest = hashlib.sha256(data).hexdigest()
        (blobs / digest).write_bytes(data)
        return f"sha256:{digest}", len(data)

    index = json.loads((layout / "index.json").read_text())
    manifest = json.loads((blobs / index["manifests"][0]["digest"].split(":")[1]).read_text())
    config = json.loads((blobs / manifest["config"]["digest"].split(":")[1]).read_text())
    manifest["layers"] *= 2
    config["rootfs"]["diff_ids"] *= 2
    manifest["config"]["digest"], manifest["config"]["size"] = put(config)
    index["manifests"][0]["digest"], index["manifests"][0]["size"] = put(manifest)
    (layout / "index.json").write_text(json.dumps(index))
    img_ok(h, "load", str(layout), "localhost/twice:1")
    layers = json.loads(img_ok(h, "image", "inspect", "localhost/twice:1").stdout)["layers"]
    assert len(layers) == 2 and layers[0] == layers[1], layers  # the case: one layer twice
    assert img_ok(h, *run_args(h, "--rm", "localhost/twice:1", "echo", "ran")).stdout == "ran\n"


def test_health_checks_as_docker(images, busybox_archive):
    """--health-cmd and friends: a detached container's supervisor runs the check inside it every
    interval; unhealthy after the retries fail in a row, healthy after a pass; `ps` says so
    ("Up 2 seconds (healthy)"), `ps --filter health=` picks by it, `inspect` has State.Health
    with the last results. A check past its timeout fails and is killed, with its process in the
    container. Bad values are one line; a foreground run, which has no supervisor, is warned."""
    h = images
    img_ok(h, "load", busybox_archive)

    def health(cid: str) -> dict:
        return json.loads(img_ok(h, "inspect", "-f", "{{json .State.Health}}", cid).stdout)

    def until(cid: str, status: str) -> dict:
        deadline = time.monotonic() + 30
        while (got := health(cid))["Status"] != status and time.monotonic() < deadline:
            time.sleep(0.1)
        return got

    img_ok(h, *run_args(h, "-d", "--name", "hc", "--health-cmd", "echo checked; test -e /tmp/ok",
                        "--health-interval", "200ms", "--health-retries", "2", IMAGE, "sleep", "600"))
    img_ok(h, *run_args(h, "-d", "--name", "hto", "--health-cmd", "sleep 5", "--health-timeout", "300ms",
                        "--health-interval", "100ms", "--health-retries", "1", IMAGE, "sleep", "600"))
    try:
        got = until("hc", "unhealthy")
        assert got["Status"] == "unhealthy" and got["FailingStreak"] >= 2, got
        assert got["Log"][-1]["ExitCode"] == 1 and got["Log"][-1]["Output"] == "checked\n", got
        img_ok(h, "exec", "hc", "touch", "/tmp/ok")
        got = until("hc", "healthy")
        assert got["Status"] == "healthy" and got["FailingStreak"] == 0 and got["Log"][-1]["ExitCode"] == 0
        assert img_ok(h, "ps", "--filter", "health=healthy", "-q").stdout.split() == ["hc"]
        assert img_ok(h, "ps", "--filter", "name=hc", "--format", "{{.Status}}").stdout.strip().endswith("(healthy)")
        got = until("hto", "unhealthy")
        assert got["Log"][-1]["ExitCode"] == -1 and "exceeded timeout" in got["Log"][-1]["Output"], got
        time.sleep(1)  # several checks killed meanwhile
        sleeping = img(h, "exec", "hto", "sh", "-c", "ps -o args | grep -c '^sleep 5'").stdout.strip()
        assert int(sleeping) <= 1, sleeping  # the running check's, at most: the killed ones went with it
        assert img_ok(h, "ps", "--filter", "health=unhealthy", "-q").stdout.split() == ["hto"]
    finally:
        img_ok(h, "rm", "-f", "hc", "hto")
    # docker's --health-start-interval: checks that often in the start period until the first
    # pass, then every interval (an hour here: the pass could only come from the start interval)
    img_ok(h, *run_args(h, "-d", "--name", "hsi", "--health-cmd", "test -e /tmp/ok", "--health-interval", "1h",
                        "--health-start-period", "1h", "--health-start-interval", "100ms", IMAGE, "sleep", "600"))
    try:
        time.sleep(0.5)
        assert health("hsi")["Status"] == "starting" and len(health("hsi")["Log"]) >= 2, health("hsi")
        img_ok(h, "exec", "hsi", "touch", "/tmp/ok")
        assert until("hsi", "healthy")["Status"] == "healthy"
        checks = len(health("hsi")["Log"])
        time.sleep(0.5)
        assert len(health("hsi")["Log"]) == checks  # passed once: the hour's interval now
    finally:
        img_ok(h, "rm", "-f", "hsi")
    r = img_ok(h, *run_args(h, "--rm", "--health-cmd", "true", IMAGE, "true"))
    assert "--health-*" in r.stderr and "(-d)" in r.stderr
    # an operator's annotation the supervisor cannot read: no check, and a supervised container
    img_ok(h, *run_args(h, "-d", "--name", "hbad", "--annotation", 'org.mrun.health={"test": 5}', IMAGE, "sleep",
                        "600"))
    try:
        assert img_ok(h, "inspect", "-f", "{{json .State}}", "hbad").stdout.count("Health") == 0
        assert "Healthcheck" not in img_ok(h, "inspect", "-f", "{{json .Config}}", "hbad").stdout
        img_ok(h, "stop", "-t", "1", "hbad")
        assert img_ok(h, "ps", "-a", "--filter", "name=hbad", "--format", "{{.Status}}").stdout.startswith("Exited (")
    finally:
        img_ok(h, "rm", "-f", "hbad")
    for flags, needles in ((["--no-healthcheck", "--health-cmd", "true"], ["--no-healthcheck conflicts"]),
                           (["--health-cmd", "true", "--health-interval", "often"], ["--health-interval 'often'"]),
                           (["--health-cmd", "true", "--health-retries", "-1"], ["--health-retries -1"]),
                           (["--health-cmd", "true", "--health-start-interval", "0s"], ["--health-start-interval"]),
                           (["--health-interval", "1s"], ["no check to run"])):
        one_line_error(img(h, *run_args(h, "-d", *flags, IMAGE, "true")), *needles)
    one_line_error(img(h, "ps", "--filter", "health=sick"), "--filter 'health=sick'")


@pytest.mark.parametrize("timed", [False, True], ids=["plain", "timestamps"])
def test_logs_follow_ends_when_the_container_is_removed_as_docker_s(images, busybox_archive, timed):
    """docker's `logs -f` ends, status 0, once the container is removed (`rm -f` elsewhere); mrun's
    said "container ... does not exist", status 1, in the middle of the stream."""
    h = images
    img_ok(h, "load", busybox_archive)
    img_ok(h, *run_args(h, "-d", "--name", "followed", IMAGE, "sh", "-c", "echo hello; sleep 600"))
    follow = ["logs", "-f", *(["-t"] if timed else []), "followed"]
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen([h.binary, "--root", h.root, "--image-root", h.image_root, *follow],
                                stdout=out, stderr=err, env={**os.environ, **h.base_env})
        try:
            deadline = time.monotonic() + 10
            while "hello" not in open(f"/proc/self/fd/{out.fileno()}").read():
                assert time.monotonic() < deadline and proc.poll() is None, "logs -f never showed the output"
                time.sleep(0.05)
            img_ok(h, "rm", "-f", "followed")
            code = proc.wait(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        err.seek(0)
        assert (code, err.read()) == (0, "")


def test_start_of_a_running_container_succeeds_as_docker_s_and_runc_s_refuses(images, busybox_archive):
    """docker's `start` of a running container does nothing and exits 0 (scripts write `docker
    start X || docker run --name X ...`); mrun's refused it with runc's words, status 1. docker's
    start, pause and unpause take several containers (mrun's took one: a usage error past it),
    and print each name. A bundle's container
    (runc's verbs, podman's and containerd's) is still refused, as runc refuses it: it runs once."""
    h = images
    img_ok(h, "load", busybox_archive)
    img_ok(h, *run_args(h, "-d", "--name", "up", IMAGE, "sleep", "600"))
    try:
        pid = json.loads(img_ok(h, "inspect", "up").stdout)["state"]["pid"]
        assert img_ok(h, "start", "up").stdout == "up\n"
        assert json.loads(img_ok(h, "inspect", "up").stdout)["state"]["pid"] == pid  # the same process
        img_ok(h, *run_args(h, "-d", "--name", "down", IMAGE, "sleep", "600"))
        img_ok(h, "stop", "-t", "0", "down")
        r = img(h, "start", "up", "nope", "down")  # docker's start of several: each one, a failure said
        assert (r.returncode, r.stdout, r.stderr) == (1, "up\ndown\n", "mrun: container 'nope' does not exist\n")
        assert sorted(img_ok(h, "ps", "--format", "{{.Names}}").stdout.split()) == ["down", "up"]
        assert img_ok(h, "pause", "up", "down").stdout == "up\ndown\n"  # docker's pause of several, and unpause
        assert img_ok(h, "ps", "--format", "{{.Status}}").stdout.count("(Paused)") == 2
        assert img_ok(h, "unpause", "up", "down").stdout == "up\ndown\n"
        assert "(Paused)" not in img_ok(h, "ps", "--format", "{{.Status}}").stdout
        h.ok("create", "--bundle", h.bundle(["sleep", "600"]), "bundled")
        h.ok("start", "bundled")
        one_line_error(h.mrun("start", "bundled"), "cannot start container 'bundled': it is running")
    finally:
        img_ok(h, "rm", "-f", "up", "down")
        h.mrun("delete", "--force", "bundled")


def test_logs_tail_of_a_line_without_end_holds_none_of_it(images, busybox_archive):
    """`logs --tail N` found the last N lines among every piece of the log held in memory (text
    included) where they spanned the whole current log: a container that wrote a line without
    end (a 200 MB one here) made `logs --tail 1` take 220 MB, so a few GB took the host's memory.
    The lines are counted in a pass that keeps no text, then written as read."""
    h = images
    img_ok(h, "load", busybox_archive)
    size = 100 << 20
    img_ok(h, *run_args(h, "-d", "--name", "long", IMAGE, "sh", "-c",
                        f"head -c {size} /dev/zero | tr '\\0' a; printf '\\nlast'"))
    try:
        assert img_ok(h, "wait", "long").stdout == "0\n"
        base = [h.binary, "--root", h.root, "--image-root", h.image_root, "logs"]
        for flags in (["--tail", "2"], ["--tail", "2", "--since", "1h"], ["--tail", "1", "-t"]):
            largest = subprocess.run([sys.executable, "-c", LARGEST_RSS, *base, *flags, "long"], capture_output=True,
                                     text=True, check=True, env={**os.environ, **h.base_env, "MRUN_WARM": "0"})
            assert int(largest.stdout) < (size >> 10) // 2, f"logs {flags} took {largest.stdout.strip()} KiB"
        assert img_ok(h, "logs", "--tail", "1", "long").stdout == "last"
        tail = subprocess.run([*base, "--tail", "2", "long"], capture_output=True, check=True,
                              env={**os.environ, **h.base_env}).stdout
        assert len(tail) == size + len("\nlast") and tail.endswith(b"a\nlast"), len(tail)
    finally:
        img_ok(h, "rm", "-f", "long")


def test_wait_logs_tail_start_and_restart_as_docker(images, busybox_archive):
    """docker's wait (the exit code, once stopped), logs --tail/-n, start of an exited `run -d`
    container (again in place: its files kept, its log continued) and restart. A container a runc
    bundle made is not started twice (runc's refusal stands)."""
    h = images
    img_ok(h, "load", busybox_archive)
    img_ok(h, *run_args(h, "-d", "--name", "counter", IMAGE, "sh", "-c",
                        "echo run >> /runs; for i in 1 2 3; do echo line$i; done; printf end; exit 4"))
    assert img_ok(h, "wait", "counter").stdout == "4\n"
    assert img_ok(h, "logs", "--tail", "2", "counter").stdout == "line3\nend"
    assert img_ok(h, "logs", "-n", "1", "counter").stdout == "end"
    assert img_ok(h, "logs", "--tail", "0", "counter").stdout == ""
    assert img_ok(h, "logs", "--tail", "99", "counter").stdout.startswith("line1\n")
    one_line_error(img(h, "logs", "--tail", "x", "counter"), "--tail 'x'")
    assert img_ok(h, "start", "counter").stdout == "counter\n"
    assert img_ok(h, "wait", "counter").stdout == "4\n"
    assert img_ok(h, "logs", "counter").stdout.count("line1") == 2
    assert img_ok(h, "ps", "-a", "--filter", "name=counter").stdout.count("Exited (4)") == 1
    img_ok(h, "rm", "counter")

    img_ok(h, *run_args(h, "-d", "--name", "server", IMAGE, "sh", "-c", "echo up >> /ups; sleep 600"))
    first = json.loads(img_ok(h, "inspect", "server").stdout)["state"]["pid"]
    assert img_ok(h, "restart", "-t", "1", "server").stdout == "server\n"
    state = json.loads(img_ok(h, "inspect", "server").stdout)["state"]
    assert state["status"] == "running" and state["pid"] != first
    r = img_ok(h, "exec", "server", "cat", "/ups")
    assert r.stdout == "up\nup\n"  # the same files: the first run's line is there
    img_ok(h, "rm", "--force", "server")

    bundle_id = h.cid()
    r = h.mrun("create", "-b", h.bundle(args=["true"]), bundle_id)
    assert r.returncode == 0, r.stderr
    assert h.mrun("start", bundle_id).returncode == 0
    h.wait_status(bundle_id, "stopped")
    r = h.mrun("start", bundle_id)
    assert r.returncode != 0 and "not created" in r.stderr, r.stderr
    h.mrun("delete", bundle_id)


def test_dockers_spellings_of_kill_unpause_and_top(images, busybox_archive):
    """kill -s/--signal of several containers, each name said (docker's; runc's positional signal
    stays), unpause (resume) and top (ps with an id) as a docker user types them; a signal given
    both ways is refused, and runc's form with no such signal signals nothing."""
    h = images
    img_ok(h, "load", busybox_archive)
    img_ok(h, *run_args(h, "-d", "--name", "spelled", IMAGE, "sleep", "600"))
    try:
        assert "sleep 600" in img_ok(h, "top", "spelled").stdout
        img_ok(h, "pause", "spelled")
        img_ok(h, "unpause", "spelled")
        assert json.loads(img_ok(h, "inspect", "spelled").stdout)["state"]["status"] == "running"
        one_line_error(img(h, "kill", "-s", "HUP", "spelled", "TERM"), "the signal twice")
        one_line_error(img(h, "kill", "spelled", "SIGUSR"), "invalid signal 'SIGUSR'")  # runc's, a typo: nothing sent
        assert "Up " in img_ok(h, "ps", "--filter", "name=spelled").stdout
        img_ok(h, *run_args(h, "-d", "--name", "second", IMAGE, "sleep", "600"))
        r = img_ok(h, "kill", "--signal", "KILL", "spelled", "second")  # docker's several, each name said
        assert r.stdout.split() == ["spelled", "second"], r.stdout
        assert img_ok(h, "wait", "spelled", "second").stdout.split() == ["137", "137"]
        img_ok(h, "start", "second")
        assert img_ok(h, "kill", "second").stdout == "second\n"  # docker's default: SIGKILL
        assert img_ok(h, "wait", "second").stdout == "137\n"
    finally:
        img_ok(h, "rm", "--force", "spelled", "second")


def test_cp_as_docker_never_led_out_by_the_container(images, busybox_archive, tmp_path):
    """mrun cp, both ways, docker's placing (into a directory, SRC/. as contents, a new name),
    modes and links kept; running (through its process: what it sees) and stopped (its rootfs).
    The container's links are its own: a copy in through /tmp/escape -> / lands in the container's
    root, a copy out of a link to /etc/shadow is that link, and its fifo is left out, named."""
    import stat

    h = images
    img_ok(h, "load", busybox_archive)
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("hello\n")
    (src / "a.txt").chmod(0o640)
    (src / "sub" / "b.txt").write_text("deep\n")
    os.symlink("/etc/shadow", src / "link")
    img_ok(h, *run_args(h, "-d", "--name", "cpc", IMAGE, "sleep", "600"))
    try:
        img_ok(h, "cp", str(src), "cpc:/tmp/")
        listing = img_ok(h, "exec", "cpc", "sh", "-c", "cat /tmp/src/sub/b.txt; stat -c '%a %U' /tmp/src/a.txt; "
                         "readlink /tmp/src/link").stdout.split("\n")
        assert listing[:3] == ["deep", "640 root", "/etc/shadow"], listing
        img_ok(h, "cp", str(src / "a.txt"), "cpc:/tmp/renamed.txt")
        assert img_ok(h, "exec", "cpc", "cat", "/tmp/renamed.txt").stdout == "hello\n"

        img_ok(h, "exec", "cpc", "sh", "-c", "ln -s / /tmp/escape; mkfifo /tmp/src/fifo; echo mine > /etc/mine")
        img_ok(h, "cp", str(src / "a.txt"), "cpc:/tmp/escape/etc/")
        assert not os.path.exists("/etc/a.txt")
        assert img_ok(h, "exec", "cpc", "cat", "/etc/a.txt").stdout == "hello\n"
        r = img_ok(h, "cp", "cpc:/tmp/src", str(tmp_path / "back"))
        assert "src/fifo: not a file, directory or link; left out" in r.stderr
        back = tmp_path / "back"
        assert (back / "sub" / "b.txt").read_text() == "deep\n" and os.readlink(back / "link") == "/etc/shadow"
        assert stat.S_IMODE(os.stat(back / "a.txt").st_mode) == 0o640 and not (back / "fifo").exists()
        img_ok(h, "cp", "cpc:/tmp/escape/etc/mine", str(tmp_path / "mine"))
        assert (tmp_path / "mine").read_text() == "mine\n"  # the container's /etc, not ours
        img_ok(h, "cp", "cpc:/tmp/src/.", str(tmp_path / "contents"))
        assert sorted(os.listdir(tmp_path / "contents")) == ["a.txt", "link", "sub"]

        img_ok(h, "stop", "-t", "1", "cpc")
        img_ok(h, "cp", str(src / "a.txt"), "cpc:/stopped.txt")  # into its rootfs
        img_ok(h, "start", "cpc")
        assert img_ok(h, "exec", "cpc", "cat", "/stopped.txt").stdout == "hello\n"
        for args, needles in ((["cpc:/no/such", str(tmp_path / "x")], ["/no/such"]),
                              ([str(src / "a.txt"), "cpc:/no/dir/"], ["/no/dir/", "does not exist"]),
                              ([str(src), str(tmp_path / "y")], ["one of SRC and DEST"])):
            one_line_error(img(h, "cp", *args), *needles)
    finally:
        img_ok(h, "rm", "--force", "cpc")


def test_cp_follow_link_copies_what_a_link_leads_to_inside_the_container(images, busybox_archive, tmp_path):
    """docker's `cp -L` (was "No such option"): a source that is a link is copied as what it
    leads to, under the link's name. A container's links lead inside its root: `/tmp/shadow ->
    /etc/shadow` is the container's shadow, `/tmp/up -> ../../../../etc/hostname` stops at its
    root, a chain of links and a link to a directory are followed; a link here is followed as
    the kernel follows it. Without -L the link is copied as a link (docker's default)."""
    h = images
    img_ok(h, "load", busybox_archive)
    img_ok(h, *run_args(h, "-d", "--name", "cpl", IMAGE, "sleep", "600"))
    try:
        img_ok(h, "exec", "cpl", "sh", "-c", "echo secret-of-the-container > /etc/shadow; mkdir -p /d/sub; "
               "echo in-d > /d/sub/f; echo named > /etc/hostname; ln -s /etc/shadow /tmp/shadow; "
               "ln -s ../../../../etc/hostname /tmp/up; ln -s /tmp/shadow /tmp/chain; ln -s /d /tmp/dir; "
               "ln -s /tmp/loop /tmp/loop")
        img_ok(h, "cp", "-L", "cpl:/tmp/shadow", str(tmp_path / "s"))
        assert (tmp_path / "s").read_text() == "secret-of-the-container\n" and not (tmp_path / "s").is_symlink()
        img_ok(h, "cp", "--follow-link", "cpl:/tmp/up", str(tmp_path))
        assert (tmp_path / "up").read_text() == "named\n"
        img_ok(h, "cp", "-L", "cpl:/tmp/chain", str(tmp_path / "c"))
        assert (tmp_path / "c").read_text() == "secret-of-the-container\n"
        img_ok(h, "cp", "-L", "cpl:/tmp/dir", str(tmp_path / "dcopy"))
        assert (tmp_path / "dcopy" / "sub" / "f").read_text() == "in-d\n"
        img_ok(h, "cp", "cpl:/tmp/shadow", str(tmp_path / "plain"))
        assert os.readlink(tmp_path / "plain") == "/etc/shadow"
        one_line_error(img(h, "cp", "-L", "cpl:/tmp/loop", str(tmp_path / "l")), "symbolic links")
        streamed = subprocess.run([h.binary, "--root", h.root, "--image-root", h.image_root, "cp", "-L",
                                   "cpl:/tmp/chain", "-"], capture_output=True, env={**os.environ, **h.base_env},
                                  timeout=60)
        assert streamed.returncode == 0, streamed.stderr
        with tarfile.open(fileobj=io.BytesIO(streamed.stdout)) as tar:  # named as the link, what it leads to
            assert tar.getnames() == ["chain"] and tar.extractfile("chain").read() == b"secret-of-the-container\n"
        here = tmp_path / "here"
        here.mkdir()
        (here / "real.txt").write_text("from here\n")
        os.symlink("real.txt", here / "rel")
        img_ok(h, "cp", "-L", str(here / "rel"), "cpl:/tmp/")
        assert img_ok(h, "exec", "cpl", "cat", "/tmp/rel").stdout == "from here\n"
    finally:
        img_ok(h, "rm", "--force", "cpl")


def test_cp_streams_a_tar_both_ways_as_docker_s_cp_dash(images, busybox_archive, tmp_path):
    """docker's `cp CONTAINER:PATH -` (a tar of PATH on stdout, named by its last component;
    PATH/. its contents) and `cp - CONTAINER:DIR` (a tar on stdin unpacked into DIR): mrun wrote
    a file called "-" in the working directory, and read nothing. A hostile archive (`../`, a
    write through a link it planted) is refused in one line and writes nothing into the
    container; the container's own link (/tmp/escape -> /) does not lead the writes out; DIR
    must be a directory; nothing is left staged in the image root."""
    h = images
    env = {**os.environ, **h.base_env}
    base = [h.binary, "--root", h.root, "--image-root", h.image_root]
    img_ok(h, "load", busybox_archive)
    img_ok(h, *run_args(h, "-d", "--name", "cpt", IMAGE, "sleep", "600"))

    def streamed(payload: bytes, *args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([*base, "cp", *args], input=payload, capture_output=True, env=env, timeout=60)

    def archive(*entries: tuple[tarfile.TarInfo, bytes]) -> bytes:
        out = io.BytesIO()
        with tarfile.open(fileobj=out, mode="w") as tar:
            for info, data in entries:
                info.size = len(data) if info.isfile() else 0
                tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
        return out.getvalue()

    def entry(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
        info = tarfile.TarInfo(name)
        info.type, info.linkname, info.mode = kind, link, 0o755 if kind == tarfile.DIRTYPE else 0o644
        return info

    try:
        img_ok(h, "exec", "cpt", "sh", "-c",
               "mkdir -p /srv/d; echo one > /srv/d/f; ln -s f /srv/d/l; ln -s / /tmp/escape")
        out = streamed(b"", "cpt:/srv/d", "-")
        assert out.returncode == 0, out.stderr
        with tarfile.open(fileobj=io.BytesIO(out.stdout)) as tar:
            assert sorted(tar.getnames()) == ["d", "d/f", "d/l"]
            assert tar.extractfile("d/f").read() == b"one\n" and tar.getmember("d/l").linkname == "f"
        with tarfile.open(fileobj=io.BytesIO(streamed(b"", "cpt:/srv/d/.", "-").stdout)) as tar:
            assert sorted(tar.getnames()) == ["f", "l"]

        payload = archive((entry("new", tarfile.DIRTYPE), b""), (entry("new/g"), b"two\n"))
        r = streamed(payload, "-", "cpt:/tmp/escape/srv")  # the container's link: its own root
        assert r.returncode == 0, r.stderr
        assert img_ok(h, "exec", "cpt", "cat", "/srv/new/g").stdout == "two\n"
        assert not os.path.exists("/srv/new")
        for hostile, words in ((archive((entry("../../etc/evil"), b"x")), "'..' would leave"),
                               (archive((entry("lnk", tarfile.SYMTYPE, "/etc"), b""), (entry("lnk/evil"), b"x")),
                                "goes through the symlink"),
                               (b"not a tar archive at all" * 40, "stdin")):
            r = streamed(hostile, "-", "cpt:/srv")
            one_line_error(subprocess.CompletedProcess(r.args, r.returncode, "", r.stderr.decode()), words)
        assert img_ok(h, "exec", "cpt", "ls", "/srv").stdout.split() == ["d", "new"]
        for args, words in ((("-", "cpt:/srv/d/f"), "not one"), (("-", "cpt:/no/such"), "no such directory"),
                            (("cpt:/no/such", "-"), "no such file"), (("-", str(tmp_path)), "CONTAINER:PATH")):
            r = streamed(payload, *args)
            one_line_error(subprocess.CompletedProcess(r.args, r.returncode, "", r.stderr.decode()), words)
        assert not os.path.exists("-") and not [n for n in os.listdir(h.image_root) if n.startswith("cp-")]
    finally:
        img_ok(h, "rm", "--force", "cpt")


def test_a_killed_cp_s_staging_is_swept_and_a_live_one_is_not(images, busybox_archive):
    """`cp - CONTAINER:DIR` stages the stream in <image root>/cp-PID.in: a cp killed there (SIGKILL
    at its worst instant) leaves it, with whatever the archive held. `system prune` removes it once
    PID is gone, and never one whose cp still runs."""
    h = images
    img_ok(h, "load", busybox_archive)
    dead = subprocess.Popen(["true"])
    dead.wait()  # a pid that has ended (reused meanwhile would only keep the directory)
    left = os.path.join(h.image_root, f"cp-{dead.pid}.in")
    live = os.path.join(h.image_root, f"cp-{os.getpid()}.in")
    for d in (left, live):
        os.makedirs(os.path.join(d, "fs", "etc"))
    try:
        r = img_ok(h, "system", "prune")
        assert not os.path.exists(left) and f"cp-{dead.pid}.in" in r.stdout, r.stdout
        assert os.path.isdir(os.path.join(live, "fs", "etc"))
    finally:
        shutil.rmtree(live, ignore_errors=True)


def test_cp_of_dot_dot_stays_in_the_container_s_root(images, busybox_archive, tmp_path):
    """`cp CONTAINER:/.. DEST` of a stopped container: the copy opened ".." from the handle on its
    rootfs, which is a host directory, and copied the directory above it: the container's state
    beside its rootfs (config.json, upper/, work/). `cp CONTAINER:/tmp/../.. -` wrote those as
    "../" entries. The path is now cleaned first as docker cleans it: "/.." is the root."""
    h = images
    img_ok(h, "load", busybox_archive)
    img_ok(h, *run_args(h, "--name", "dd", IMAGE, "true"))  # stopped: its rootfs is a host directory
    try:
        for src in ("dd:/..", "dd:/tmp/../..", "dd:../../"):
            out = tmp_path / f"out{len(os.listdir(tmp_path))}"
            img_ok(h, "cp", src, str(out))
            assert "bin" in os.listdir(out) and "config.json" not in os.listdir(out), (src, os.listdir(out))
            r = subprocess.run([h.binary, "--root", h.root, "--image-root", h.image_root, "cp", src, "-"],
                               capture_output=True, env={**os.environ, **h.base_env}, timeout=60)
            assert r.returncode == 0, r.stderr
            with tarfile.open(fileobj=io.BytesIO(r.stdout)) as tar:
                names = tar.getnames()
            assert "bin" in names and not any(".." in n.split("/") or n.endswith("config.json") for n in names), names
        img_ok(h, "cp", "dd:/tmp/..", str(tmp_path / "again"))
        assert "bin" in os.listdir(tmp_path / "again")
    finally:
        img_ok(h, "rm", "dd")


def test_digits_that_are_not_ascii_are_one_line_not_an_internal_error(images, busybox_archive):
    """str.isdigit takes "²" and "৯", which int() refuses or reads as 9: `kill ID ²`, `port ID
    ²/tcp`, `events --interval ²`, `run --blkio-weight-device DEV:²` and `run --stop-signal
    RTMIN+-3` were internal errors (ValueError); a signal "৯" was SIGKILL. Go's Atoi (runc's,
    docker's) takes ASCII digits only, and so does mrun: one line each. So is a number of 5,000
    digits, which int() refuses past 4300 (a signal, a port, a user, an update's value)."""
    h = images
    img_ok(h, "load", busybox_archive)
    img_ok(h, *run_args(h, "-d", "--name", "dg", IMAGE, "sleep", "600"))
    try:
        disks = sorted(os.listdir("/sys/block"))
        assert disks, "no block device on this host to name"
        for args, needle in ((["kill", "dg", "²"], "invalid signal"), (["kill", "dg", "৯"], "invalid signal"),
                             (["kill", "dg", "RTMIN-+3"], "invalid signal"), (["port", "dg", "²/tcp"], "port"),
                             (["events", "--interval", "²", "dg"], "--interval"),
                             (run_args(h, "--rm", "--blkio-weight-device", f"/dev/{disks[0]}:²", IMAGE, "true"),
                              "--blkio-weight-device"),
                             (run_args(h, "--rm", "--stop-signal", "RTMIN+-3", IMAGE, "true"), "signal"),
                             # past the 4300 digits int() reads: its ValueError was an internal error
                             (["kill", "dg", "9" * 5000], "invalid signal"), (["port", "dg", "9" * 5000], "port"),
                             (["exec", "-u", "9" * 5000, "dg", "true"], "no user"),
                             (["update", "--cpu-shares", "9" * 5000, "dg"], "out of range"),
                             (run_args(h, "--rm", "--stop-signal", "RTMAX-" + "9" * 5000, IMAGE, "true"), "signal"),
                             (["update", "--memory", "9" * 400, "dg"], "too large"),  # float's inf, int()'s Overflow
                             (run_args(h, "--rm", "--ulimit", "nofile=" + "9" * 5000, IMAGE, "true"), "--ulimit"),
                             (run_args(h, "--rm", "--cpuset-cpus", "9" * 5000, IMAGE, "true"), "--cpuset-cpus"),
                             (run_args(h, "--rm", "--log-opt", "max-file=" + "9" * 5000, IMAGE, "true"), "--log-opt"),
                             (run_args(h, "--rm", "--shm-size", "9" * 400, IMAGE, "true"), "--shm-size"),
                             # accepted, then read by int() later: a supervisor's ValueError when the
                             # container failed; the tail of a log; a float's inf for a sleep
                             (run_args(h, "-d", "--restart", "on-failure:" + "9" * 5000, IMAGE, "false"),
                              "--restart"),
                             (["update", "--restart", "on-failure:" + "9" * 5000, "dg"], "--restart"),
                             (["logs", "--tail", "9" * 5000, "dg"], "--tail"),
                             (run_args(h, "--rm", "--device-cgroup-rule", f"c {'9' * 5000}:1 rwm", IMAGE, "true"),
                              "--device-cgroup-rule"),
                             (["events", "--interval", "9" * 400, "dg"], "--interval"),
                             # "--5" is digits once lstrip("-") has taken both signs; int() refuses it
                             (["ps", "-a", "--filter", "exited=--5"], "exited")):
            one_line_error(img(h, *args), needle)
        assert img_ok(h, "inspect", "-f", "{{.State.Status}}", "dg").stdout == "running\n"
        # a stop timeout given as an annotation (--annotation gives mrun's own keys) that is no
        # number: stop waits docker's 10 seconds, as for any other it cannot read
        img_ok(h, *run_args(h, "-d", "--name", "st", "--annotation", "org.mrun.stop-timeout=--5",
                            "--stop-signal", "KILL", IMAGE, "sleep", "600"))
        try:
            assert img_ok(h, "stop", "st").stdout == "st\n"
        finally:
            img_ok(h, "rm", "-f", "st")
    finally:
        img_ok(h, "rm", "-f", "dg")


def test_cp_never_replaces_a_device_fifo_or_socket_either_way(images, busybox_archive, tmp_path):
    """cp replaces what is in its way, as tar does; that took devices, fifos and sockets too:
    `cp CTR:/etc/passwd /dev/null` left the host's /dev/null a copy of passwd (docker's cp does
    the same). Now a file or a link is replaced, nothing else: one line naming the entry, the
    node left as it was, on the host and in the container alike."""
    h = images
    img_ok(h, "load", busybox_archive)
    img_ok(h, *run_args(h, "-d", "--name", "ex", IMAGE, "sleep", "600"))
    try:
        nodes = tmp_path / "nodes"
        nodes.mkdir()
        os.mknod(nodes / "passwd", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        os.mkfifo(nodes / "fifo")
        one_line_error(img(h, "cp", "ex:/etc/passwd", str(nodes / "passwd")), "passwd", "a character device")
        one_line_error(img(h, "cp", "ex:/etc/passwd", str(nodes)), "passwd", "a character device")  # into the dir
        one_line_error(img(h, "cp", "ex:/etc/group", str(nodes / "fifo")), "fifo", "a fifo")
        assert stat.S_ISCHR(os.lstat(nodes / "passwd").st_mode) and stat.S_ISFIFO(os.lstat(nodes / "fifo").st_mode)
        img_ok(h, "exec", "ex", "mkfifo", "/tmp/fifo")
        (tmp_path / "file").write_text("mine\n")
        one_line_error(img(h, "cp", str(tmp_path / "file"), "ex:/tmp/fifo"), "fifo", "a fifo")
        assert img_ok(h, "exec", "ex", "sh", "-c", "test -p /tmp/fifo && echo fifo").stdout == "fifo\n"
        img_ok(h, "cp", str(tmp_path / "file"), "ex:/etc/hostname")  # a file over a file, as before
        assert img_ok(h, "exec", "ex", "cat", "/etc/hostname").stdout == "mine\n"
    finally:
        img_ok(h, "rm", "-f", "ex")


def test_cp_never_opens_a_device_swapped_in_for_a_file(images, busybox_archive, tmp_path):
    """A container swapping its files for a device node (mknod is one of docker's default
    capabilities) while `mrun cp` copies them out. cp looked at each name, then opened it by
    name: a device swapped in between was opened by the host, outside the container's device
    rules (a watchdog armed, a tape rewound, a serial line's modem lines toggled). Now the object
    is held (O_PATH, which opens nothing) before it is looked at, and only then opened. The
    device's inode is watched with inotify: no open may reach it. (The swapping is done from here,
    through the container's root, as fast as a compiled program in the container could.)"""
    import ctypes
    import threading

    h = images
    img_ok(h, "load", busybox_archive)
    img_ok(h, *run_args(h, "-d", "--name", "swapper", IMAGE, "sleep", "600"))
    libc = ctypes.CDLL(None, use_errno=True)
    watch = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
    stop = threading.Event()
    try:
        pid = json.loads(h.ok("state", "swapper").stdout)["pid"]
        files, spare = f"/proc/{pid}/root/tmp/w", f"/proc/{pid}/root/tmp/spare"
        os.makedirs(files)
        os.makedirs(spare)
        device = os.path.join(spare, "device")
        os.mknod(device, 0o600 | stat.S_IFCHR, os.makedev(1, 3))  # harmless itself: /dev/null's numbers
        assert libc.inotify_add_watch(watch, device.encode(), 0x20) >= 0  # IN_OPEN, on the inode
        names = [f"f{i}" for i in range(50)]
        for name in names:
            with open(os.path.join(files, name), "w") as f:
                f.write("x" * 100)

        def swap() -> None:
            while not stop.is_set():
                for name in names:
                    os.link(device, os.path.join(spare, "d"))
                    os.rename(os.path.join(spare, "d"), os.path.join(files, name))
                    fd = os.open(os.path.join(spare, "r"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                    os.write(fd, b"x" * 100)
                    os.close(fd)
                    os.rename(os.path.join(spare, "r"), os.path.join(files, name))

        swapper = threading.Thread(target=swap)
        swapper.start()
        for i in range(ROUNDS := 40):
            img_ok(h, "cp", "swapper:/tmp/w", str(tmp_path / f"out{i}"))
        stop.set()
        swapper.join()
        try:
            opened = len(os.read(watch, 4096))
        except BlockingIOError:
            opened = 0
        assert opened == 0, "mrun cp opened the device swapped in for a file"
        copied = [os.lstat(tmp_path / f"out{i}" / name) for i in range(ROUNDS) for name in names
                  if os.path.lexists(tmp_path / f"out{i}" / name)]
        assert copied and all(stat.S_ISREG(st.st_mode) for st in copied)  # files copied, devices left out
    finally:
        stop.set()
        os.close(watch)
        img_ok(h, "rm", "--force", "swapper")


def test_export_and_diff_as_docker(images, busybox_archive, tmp_path):
    """`mrun export` writes the container's files as a tar archive (links as links, its fifo and
    device nodes as nodes, hard links as links, volumes left out) and `mrun diff` lists what it
    changed over its image (A, C, D; not the files mrun mounted on, as docker keeps those apart).
    Its link to / leads neither out of its root. A container without an overlay snapshot has no
    diff: one line."""
    h = images
    img_ok(h, "load", busybox_archive)
    script = ("echo new > /etc/added && ln /etc/added /etc/hard && echo more >> /etc/passwd && rm /bin/ls && "
              "mkdir -p /opt/deep && ln -s / /opt/escape && mkfifo /opt/fifo && mknod /opt/null c 1 3 && "
              "echo v > /data/in-volume && touch /opt/ready && sleep 600")
    img_ok(h, *run_args(h, "-d", "--name", "ex", "-v", "exvol:/data", IMAGE, "sh", "-c", script))
    try:
        deadline = time.monotonic() + 20
        while img(h, "exec", "ex", "test", "-e", "/opt/ready").returncode and time.monotonic() < deadline:
            time.sleep(0.1)
        listed = img_ok(h, "diff", "ex").stdout.splitlines()
        assert {"C /etc", "A /etc/added", "A /etc/hard", "C /etc/passwd", "C /bin", "D /bin/ls", "A /opt",
                "A /opt/deep", "A /opt/escape", "A /opt/fifo", "A /opt/null"} <= set(listed), listed
        assert listed == sorted(listed, key=lambda line: line[2:])
        assert not [line for line in listed if line[2:] in ("/etc/hosts", "/etc/hostname", "/etc/resolv.conf")
                    or line[2:].startswith("/data")], listed  # what mrun mounted on, and the volume
        archive = tmp_path / "ex.tar"
        img_ok(h, "export", "-o", str(archive), "ex")
        with tarfile.open(archive) as t:
            members = {m.name: m for m in t.getmembers()}
            assert t.extractfile("etc/added").read() == b"new\n"
            assert t.extractfile("bin/busybox").read(4) == b"\x7fELF"
        assert members["opt/escape"].issym() and members["opt/escape"].linkname == "/"
        assert members["opt/fifo"].isfifo() and members["opt/null"].ischr() and members["opt/null"].devmajor == 1
        assert members["etc/hard"].islnk() or members["etc/added"].islnk()
        assert "bin/ls" not in members and "data/in-volume" not in members
        assert not [name for name in members if name.startswith(("opt/escape/", "proc/", "sys/"))]
        img_ok(h, "stop", "-t", "1", "ex")
        assert "A /etc/added" in img_ok(h, "diff", "ex").stdout  # stopped: its snapshot still holds them
        img_ok(h, "export", "-o", str(tmp_path / "stopped.tar"), "ex")
    finally:
        img_ok(h, "rm", "-f", "ex")
        img(h, "volume", "rm", "exvol")
    h.base_env["MRUN_SNAPSHOTTER"] = "copy"
    try:
        img_ok(h, *run_args(h, "-d", "--name", "copied", IMAGE, "sleep", "600"))
        one_line_error(img(h, "diff", "copied"), "no overlay snapshot")
    finally:
        img_ok(h, "rm", "-f", "copied")
        del h.base_env["MRUN_SNAPSHOTTER"]
    one_line_error(img(h, "export", "-o", str(tmp_path / "x.tar"), "no-such"), "no-such")
    assert not (tmp_path / "x.tar").exists()


def test_save_and_export_never_replace_or_remove_a_device_fifo_or_socket(images, busybox_archive, tmp_path):
    """`save -o` writes beside and renames over the name, as docker's CLI does (`docker save -o
    /dev/null` leaves a file there); `export -o` wrote into the name and removed it when the
    export failed. A device, fifo or socket there is refused in one line and left as it was;
    a file is replaced as before."""
    from conftest import host_nodes

    h = images
    img_ok(h, "load", busybox_archive)
    nodes = tmp_path / "nodes"
    img_ok(h, *run_args(h, "-d", "--name", "ex", IMAGE, "sleep", "600"))
    try:
        with host_nodes(nodes) as kinds:
            for name, kind in kinds.items():
                one_line_error(img(h, "save", "-o", str(nodes / name), IMAGE), "-o", str(nodes / name), kind)
                one_line_error(img(h, "export", "-o", str(nodes / name), "ex"), "-o", str(nodes / name), kind)
        (tmp_path / "file").write_text("old")
        img_ok(h, "save", "-o", str(tmp_path / "file"), IMAGE)
        assert tarfile.is_tarfile(tmp_path / "file")
    finally:
        img_ok(h, "rm", "-f", "ex")


def test_commit_as_docker(images, busybox_archive):
    """`mrun commit`: the container's changes as one more layer (a deletion as a whiteout), its
    command and environment kept, --change over them, -m/-a in the history; the files mrun
    mounted on (hosts, hostname, resolv.conf, a volume's target) are not in it; the new image
    runs. A bad name or --change is one line and makes nothing."""
    h = images
    img_ok(h, "load", busybox_archive)
    script = "echo committed > /etc/made && rm /bin/ls && mkdir -p /opt/x && touch /opt/x/f /opt/ready && sleep 600"
    img_ok(h, *run_args(h, "-d", "--name", "cm", "-e", "FOO=bar", "-v", "/scratch", IMAGE, "sh", "-c", script))
    try:
        deadline = time.monotonic() + 20
        while img(h, "exec", "cm", "test", "-e", "/opt/ready").returncode and time.monotonic() < deadline:
            time.sleep(0.1)
        made = img_ok(h, "commit", "-m", "my change", "-a", "me", "-c", "ENV ADDED=1", "-c", 'CMD ["cat", "/etc/made"]',
                      "cm", "localhost/committed:1").stdout.strip()
        assert re.fullmatch(r"sha256:[0-9a-f]{64}", made)
        assert img_ok(h, "ps", "--filter", "name=cm", "--format", "{{.State}}").stdout.strip() == "running"  # resumed
    finally:
        img_ok(h, "rm", "-f", "-v", "cm")
    assert img_ok(h, *run_args(h, "--rm", "localhost/committed:1")).stdout == "committed\n"
    out = img_ok(h, *run_args(h, "--rm", "localhost/committed:1", "sh", "-c",
                               "test ! -e /bin/ls && test -e /opt/x/f && echo $FOO $ADDED")).stdout
    assert out == "bar 1\n"
    doc = json.loads(img_ok(h, "image", "inspect", "localhost/committed:1").stdout)
    base = json.loads(img_ok(h, "image", "inspect", IMAGE).stdout)
    assert doc["config"]["history"][-1]["comment"] == "my change" and doc["config"]["author"] == "me"
    assert doc["layers"][:-1] == base["layers"] and len(doc["layers"]) == len(base["layers"]) + 1
    assert not any(e.startswith("HOSTNAME=") for e in doc["config"]["config"]["Env"])
    layer = os.path.join(h.image_root, "blobs", *doc["layers"][-1].split(":"))
    with tarfile.open(layer) as t:
        names = set(t.getnames())
    assert {"etc/made", "bin/.wh.ls", "opt/x/f"} <= names, names
    assert not names & {"etc/hosts", "etc/hostname", "etc/resolv.conf", "scratch"}, names
    img_ok(h, "rmi", "localhost/committed:1")
    # a commit killed while it wrote its layer (outside the store's lock) left this: the next sweep
    # removes it once its writer is gone, and never while it lives
    blobs = os.path.join(h.image_root, "blobs", "sha256")
    for pid in (os.getpid(), 4194304):  # ours lives; no process has the second (above pid_max)
        (open(os.path.join(blobs, f"commit-{pid}.layer"), "w")).close()
    img_ok(h, "image", "prune")
    assert sorted(n for n in os.listdir(blobs) if n.startswith("commit-")) == [f"commit-{os.getpid()}.layer"]
    os.unlink(os.path.join(blobs, f"commit-{os.getpid()}.layer"))
    img_ok(h, *run_args(h, "-d", "--name", "cm2", IMAGE, "sleep", "600"))
    try:
        for args, needles in ((["commit", "cm2"], ["name the new image"]),
                              (["commit", "cm2", "Bad/Name"], ["not a valid image reference"]),
                              (["commit", "-c", "RUN make", "cm2", "localhost/x:1"], ["--change 'RUN make'"]),
                              (["commit", "-c", "CMD [1]", "cm2", "localhost/x:1"], ["a JSON list of strings"]),
                              # an image `run -P` refused afterwards: docker refuses it at commit
                              (["commit", "-c", "EXPOSE 99999", "cm2", "localhost/x:1"], ["--change EXPOSE",
                                                                                          "ports are 1 to 65535"]),
                              (["commit", "no-such", "localhost/x:1"], ["no-such"])):
            one_line_error(img(h, *args), *needles)
        assert "localhost/x" not in img_ok(h, "images").stdout
    finally:
        img_ok(h, "rm", "-f", "cm2")


def _image_with_volumes(tmp_path, rootfs: str, volumes: object, name: str) -> str:
    """A docker-archive of ``rootfs`` plus /data/seed, whose config declares ``volumes``."""
    layer = tmp_path / f"{name}-layer.tar"
    with tarfile.open(layer, "w") as t:
        t.add(rootfs, arcname=".")
        seed = b"from the image\n"
        for member, blob in (("data", None), ("data/seed", seed)):
            info = tarfile.TarInfo(member)
            if blob is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                t.addfile(info)
            else:
                info.size = len(blob)
                t.addfile(info, io.BytesIO(blob))
    data = layer.read_bytes()
    config = {"architecture": "amd64", "os": "linux",
              "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(data).hexdigest()]},
              "config": {"Cmd": ["sh"], "Env": ["PATH=/bin"], "Volumes": volumes}}
    return _one_layer_archive(str(tmp_path / f"{name}.tar"), data, config)


def _one_layer_archive(archive: str, layer: bytes, config: dict) -> str:
    """A docker-archive (docker save's layout) of one layer and its config, at ``archive``."""
    with tarfile.open(archive, "w") as t:
        manifest = json.dumps([{"Config": "config.json", "Layers": ["layer0.tar"]}]).encode()
        for member, blob in (("layer0.tar", layer), ("config.json", json.dumps(config).encode()),
                             ("manifest.json", manifest)):
            info = tarfile.TarInfo(member)
            info.size = len(blob)
            t.addfile(info, io.BytesIO(blob))
    return archive


def test_anonymous_volumes_and_the_volume_verbs_as_docker(images, busybox_rootfs, tmp_path):
    """An image's Volumes, -v /DEST and --mount without source= are anonymous volumes, filled from
    the image: --rm and rm -v remove them (a plain rm leaves them to volume prune); named ones
    stay until volume rm, which refuses one in use. An image declaring too many, or a relative
    path, is refused naming its field."""
    h = images
    img_ok(h, "load", _image_with_volumes(tmp_path, busybox_rootfs, {"/data": {}}, "withvol"), "localhost/withvol:1")
    image = "localhost/withvol:1"

    def listed() -> list[str]:
        return img_ok(h, "volume", "ls", "-q").stdout.split()

    out = img_ok(h, *run_args(h, "--rm", image, "sh", "-c", "grep -c ' /data ' /proc/self/mounts; cat /data/seed"))
    assert out.stdout == "1\nfrom the image\n" and listed() == []  # mounted, seeded, and gone with --rm
    img_ok(h, *run_args(h, "-d", "--name", "keeper", "-v", "/scratch", image, "sleep", "600"))
    assert len(listed()) == 2
    described = json.loads(img_ok(h, "volume", "inspect", *listed()).stdout)
    assert all(d["anonymous"] and d["containers"] == ["keeper"] for d in described)
    # docker's volume inspect --format (and -f), a line per volume: the format was dropped (or -f refused)
    for flag in ("--format", "-f"):
        shown = img_ok(h, "volume", "inspect", flag, "{{.Name}} {{.Driver}} {{.Mountpoint}}", *listed()).stdout
        assert shown == "".join(f"{d['name']} local {d['mountpoint']}\n" for d in described), shown
    one_line_error(img(h, "volume", "rm", listed()[0]), "in use", "keeper")
    img_ok(h, "rm", "--force", "keeper")  # without -v: left, dangling
    assert len(listed()) == 2
    assert len(img_ok(h, "volume", "prune").stdout.splitlines()) == 2 and listed() == []

    img_ok(h, *run_args(h, "-d", "--name", "mixed", "-v", "mine:/data", "--mount", "type=volume,target=/anon",
                        image, "sleep", "600"))
    assert "mine" in listed() and len(listed()) == 2  # the image's /data is the named volume here
    assert img_ok(h, "exec", "mixed", "cat", "/data/seed").stdout == "from the image\n"  # copied up
    img_ok(h, "rm", "-f", "-v", "mixed")
    assert listed() == ["mine"]
    img_ok(h, "volume", "rm", "mine")
    assert listed() == []
    assert img_ok(h, "volume", "create", "made").stdout == "made\n" and listed() == ["made"]
    assert img_ok(h, "volume", "create", "--name", "older").stdout == "older\n"  # docker's older form
    assert img_ok(h, "volume", "prune", "-f").stdout == "" and img_ok(h, "volume", "prune", "-af").stdout.strip()
    assert listed() == []

    for volumes, name in (({f"/v{i}": {} for i in range(100)}, "toomany"), ({"relative": {}}, "relative")):
        img_ok(h, "load", _image_with_volumes(tmp_path, busybox_rootfs, volumes, name), f"localhost/{name}:1")
        one_line_error(img(h, *run_args(h, "--rm", f"localhost/{name}:1", "true")), "the image's Volumes")
    assert listed() == []


def test_container_prune_removes_the_stopped_ones_only(images, busybox_archive):
    """docker's container prune takes docker's stopped containers: here the ones `mrun run` and
    `create` made. A stopped container of the runc verbs (an engine's: podman's, containerd's,
    from a bundle it made and will delete itself) is not prune's; it was removed with them."""
    h = images
    img_ok(h, "load", busybox_archive)
    img_ok(h, *run_args(h, "-d", "--name", "done", IMAGE, "true"))
    img_ok(h, *run_args(h, "-d", "--name", "busy", IMAGE, "sleep", "600"))
    img_ok(h, "create", "--bundle", h.bundle(["true"]), "engines")
    img_ok(h, "start", "engines")
    img_ok(h, "wait", "done")
    deadline = time.monotonic() + 10
    while json.loads(img_ok(h, "state", "engines").stdout)["status"] != "stopped":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    try:
        assert img_ok(h, "container", "prune", "-f").stdout == "done\n"
        assert img_ok(h, "ps", "-q").stdout.split() == ["busy"]
        assert json.loads(img_ok(h, "state", "engines").stdout)["status"] == "stopped"
    finally:
        img_ok(h, "rm", "--force", "busy")
        img_ok(h, "delete", "engines")


def test_cp_keeps_a_sparse_file_sparse_and_refuses_an_endless_tree(images, busybox_archive, tmp_path):
    """A container's sparse file (4 GiB, a few blocks in it; a terabyte would be as cheap) copied
    out is a few blocks here, not gigabytes of zeros on the host's disk; a tree nested deeper than
    any copy walks is refused in one line."""
    h = images
    img_ok(h, "load", busybox_archive)
    img_ok(h, *run_args(h, "-d", "--name", "holes", IMAGE, "sleep", "600"))
    try:
        img_ok(h, "exec", "holes", "sh", "-c", "set -e; busybox truncate -s 4294967296 /big; echo middle | "
               "busybox dd of=/big bs=1 seek=4096 conv=notrunc 2>/dev/null; d=/deep; mkdir $d; "
               "for i in $(busybox seq 300); do d=$d/d; mkdir $d; done")
        img_ok(h, "cp", "holes:/big", str(tmp_path / "big"))
        st = os.stat(tmp_path / "big")
        assert st.st_size == 1 << 32 and st.st_blocks * 512 < 1 << 20, (st.st_size, st.st_blocks)
        with open(tmp_path / "big", "rb") as f:
            f.seek(4096)
            assert f.read(6) == b"middle"
        one_line_error(img(h, "cp", "holes:/deep", str(tmp_path / "deep")), "directories deep")
    finally:
        img_ok(h, "rm", "--force", "holes")


def test_exec_privileged_env_file_and_callers_env_as_docker(images, busybox_archive, tmp_path):
    h = images
    img_ok(h, "load", busybox_archive)
    env_file = tmp_path / "exec.env"
    env_file.write_text("# for the exec\nFROM_FILE=yes\n")
    img_ok(h, *run_args(h, "-d", "--name", "target", IMAGE, "sleep", "600"))
    try:
        plain = img_ok(h, "exec", "target", "grep", "CapEff", "/proc/self/status").stdout.split()[1]
        full = img_ok(h, "exec", "--privileged", "target", "grep", "CapEff", "/proc/self/status").stdout.split()[1]
        assert int(plain, 16) == 0xA80425FB and int(full, 16) & ~int(plain, 16), (plain, full)  # more than docker's 14
        out = img_ok(h, "exec", "--env-file", str(env_file), "-e", "B=2", "target", "sh", "-c", 'echo "$FROM_FILE $B"')
        assert out.stdout == "yes 2\n"
        r = img_ok(h, "exec", "-e", "FROM_CALLER", "-e", "UNSET_HERE", "target", "sh", "-c",
                   'echo "$FROM_CALLER ${UNSET_HERE-unset}"', env={"FROM_CALLER": "ours"})
        assert r.stdout == "ours unset\n"  # docker's -e NAME: the caller's value, or nothing
    finally:
        img_ok(h, "rm", "--force", "target")


def test_inspect_format_reads_dockers_fields(images, busybox_archive):
    """`inspect -f` with the Go template scripts use: docker's fields (State.Pid, State.Status,
    State.ExitCode, Config.Labels...) and mrun's own; what the subset cannot do is refused."""
    h = images
    img_ok(h, "load", busybox_archive)
    img_ok(h, *run_args(h, "-d", "--name", "shaped", "-l", "team=a", IMAGE, "sh", "-c", "sleep 600; exit 3"))
    try:
        pid = json.loads(img_ok(h, "inspect", "shaped").stdout)["state"]["pid"]
        out = img_ok(h, "inspect", "-f", "{{.State.Pid}} {{.State.Status}} {{.State.Running}} {{.Config.Image}} "
                     "{{.Name}} {{json .Config.Labels}} {{.state.status}}", "shaped").stdout
        assert out == f'{pid} running true {IMAGE} /shaped {{"team":"a"}} running\n', out
        img_ok(h, "kill", "shaped", "KILL")
        img_ok(h, "wait", "shaped")
        out = img_ok(h, "inspect", "--format", "{{.State.Status}}:{{.State.ExitCode}}:{{.State.Pid}}", "shaped").stdout
        assert out == "exited:137:0\n", out
        # Go's text/template beyond {{.Field}}, as scripts write it (it was refused as "not supported")
        out = img_ok(h, "inspect", "-f", '{{index .Config.Labels "team"}}|{{range $k, $v := .Config.Labels}}{{$k}}'
                     '{{end}}|{{if eq .State.Status "exited"}}{{.State.ExitCode}}{{end}}|{{.Name | upper}}|'
                     '{{with .State}}{{printf "%s=%d" .Status .ExitCode}}{{end}}', "shaped").stdout
        assert out == "a|team|137|/SHAPED|exited=137\n", out
        one_line_error(img(h, "inspect", "-f", "{{range .Name}}x{{end}}", "shaped"), "range can't iterate over")
        one_line_error(img(h, "inspect", "-f", "{{.State.Nope}}", "shaped"), "no field 'Nope'")
    finally:
        img_ok(h, "rm", "--force", "shaped")


def test_format_json_is_docker_s_a_document_a_line(images, busybox_archive):
    """docker's --format json (23.0) is {{json .}}: stats, history, info and version printed the
    word "json" instead, taken for a template of no field; ps printed mrun's state documents."""
    h = images
    img_ok(h, "load", busybox_archive)
    img_ok(h, *run_args(h, "-d", "--name", "shown", IMAGE, "sleep", "600"))
    try:
        for verb, key in ((["stats", "--no-stream", "shown"], "MemUsage"), (["history", IMAGE], "CreatedBy"),
                          (["ps", "-a"], "RunningFor"),  # it printed the runtime's state documents, one list
                          (["info"], "Containers"), (["version"], "Server")):
            lines = img_ok(h, *verb, "--format", "json").stdout.splitlines()
            assert lines and all(key in json.loads(line) for line in lines), (verb, lines)
    finally:
        img_ok(h, "rm", "-f", "shown")


def test_inspect_has_the_fields_docker_s_scripts_read(images, busybox_archive, tmp_path):
    """docker inspect's fields that scripts and tools read were "no field" here (State.StartedAt,
    State.OOMKilled, HostConfig's limits, network mode, binds and Privileged, LogPath, HostsPath,
    GraphDriver.Data.MergedDir...; Config's ExposedPorts, Volumes, Healthcheck), and Mounts listed
    the tmpfs mrun makes at /dev: now each is what docker's says of the container (Mounts: its
    volumes and binds only)."""
    import datetime

    h = images
    img_ok(h, "load", busybox_archive)
    here = tmp_path / "here"
    here.mkdir()
    img_ok(h, *run_args(h, "-d", "--name", "full", "-m", "64m", "--cpus", "1.5", "--pids-limit", "99", "-v",
                        "vol:/data", "-v", f"{here}:/h:ro", IMAGE, "sleep", "600"))
    img_ok(h, *create_args(h, "--name", "priv", "--privileged", IMAGE, "true"))
    img_ok(h, *run_args(h, "-d", "--name", "oom", "-m", "16m", "--memory-swap", "16m", IMAGE, "sh", "-c",
                        "head -c 200m /dev/zero | tail"))
    try:
        doc = json.loads(img_ok(h, "inspect", "-f", "{{json .}}", "full").stdout)
        started = datetime.datetime.fromisoformat(doc["State"]["StartedAt"][:26])
        assert abs(started - datetime.datetime.utcnow()).total_seconds() < 60, doc["State"]
        assert doc["State"]["OOMKilled"] is False and doc["State"]["Dead"] is False
        host = doc["HostConfig"]
        assert (host["Memory"], host["NanoCpus"], host["PidsLimit"], host["NetworkMode"], host["Privileged"]) == \
            (64 << 20, 1_500_000_000, 99, "none", False), host
        assert host["Binds"] == ["vol:/data", f"{here}:/h:ro"], host["Binds"]
        assert [(m["Type"], m.get("Name"), m["Destination"], m["RW"]) for m in doc["Mounts"]] == \
            [("volume", "vol", "/data", True), ("bind", None, "/h", False)], doc["Mounts"]
        assert os.path.ismount(doc["GraphDriver"]["Data"]["MergedDir"]) and doc["Driver"] == "overlay"
        assert os.path.isfile(doc["LogPath"]) and os.path.isfile(doc["HostsPath"])
        assert img_ok(h, "inspect", "-f", "{{.HostConfig.Privileged}} {{.State.StartedAt}}", "priv").stdout == \
            "true 0001-01-01T00:00:00Z\n"  # never started: docker's zero time
        # docker's Config: the entrypoint apart from the command (null where there is none), the
        # user as it was named ("" for the default), the stop signal (they were all Cmd, "0:0")
        config = doc["Config"]
        assert (config["Entrypoint"], config["Cmd"], config["User"]) == (None, ["sleep", "600"], ""), config
        # and the ports it exposes, the places of its anonymous volumes, its health check (no field
        # before): none of them for "full" (a named volume is no anonymous one's place)
        assert "ExposedPorts" not in config and config["Volumes"] is None and "Healthcheck" not in config, config
        img_ok(h, *create_args(h, "--name", "entry", "--entrypoint", "/bin/sleep", "-u", "nobody",
                               "--stop-signal", "SIGUSR1", "--expose", "8080", "--expose", "53/udp", "-v", "/anon",
                               "--health-cmd", "test -e /anon", "--health-interval", "5s", IMAGE, "600"))
        entry = json.loads(img_ok(h, "inspect", "-f", "{{json .}}", "entry").stdout)
        assert (entry["Path"], entry["Args"]) == ("/bin/sleep", ["600"]), entry
        assert (entry["Config"]["Entrypoint"], entry["Config"]["Cmd"], entry["Config"]["User"],
                entry["Config"]["StopSignal"]) == (["/bin/sleep"], ["600"], "nobody", "SIGUSR1"), entry["Config"]
        assert (entry["Config"]["ExposedPorts"], entry["Config"]["Volumes"]) == (
            {"53/udp": {}, "8080/tcp": {}}, {"/anon": {}}), entry["Config"]
        check = entry["Config"]["Healthcheck"]
        assert (check["Test"], check["Interval"], check["Retries"]) == (["CMD-SHELL", "test -e /anon"], 5 * 10**9, 3)
        assert img_ok(h, "wait", "oom").stdout == "137\n"
        assert img_ok(h, "inspect", "-f", "{{.State.OOMKilled}}", "oom").stdout == "true\n"
    finally:
        img_ok(h, "rm", "-f", "-v", "full", "priv", "oom")
        img(h, "rm", "-f", "-v", "entry")
        img(h, "volume", "rm", "vol")


def test_created_stays_and_started_at_is_when_it_started_as_docker_s(images, busybox_archive):
    """docker's Created is when `create` or `run` made the container, kept over its start and
    its restarts; State.StartedAt is when its process last started, never before Created. Created
    was the runtime's latest start (a started `create` or a restart moved it, and ps's CREATED
    with it), and StartedAt came from /proc/stat's btime, whole seconds: here 0.4 s before the
    start, so before Created too."""
    h = images
    img_ok(h, "load", busybox_archive)

    def times(name: str) -> tuple[float, float]:
        created, started = img_ok(h, "inspect", "-f", "{{.Created}} {{.State.StartedAt}}", name).stdout.split()
        return epoch_of_rfc3339(created), epoch_of_rfc3339(started)

    try:
        before = time.time()
        img_ok(h, *create_args(h, "--name", "later", IMAGE, "sleep", "600"))
        made = times("later")[0]
        assert before <= made <= time.time(), (before, made)
        time.sleep(1.2)
        before = time.time()
        img_ok(h, "start", "later")
        after = time.time()
        created, started = times("later")
        assert created == made, "start moved Created"
        assert before - 0.02 <= started <= after, (before, started, after)  # to the clock tick (10 ms)
        assert epoch_of_rfc3339(json.loads(img_ok(h, "ps", "--format", "json").stdout.splitlines()[0])
                                ["CreatedAt"].replace(" +0000 UTC", "Z").replace(" ", "T")) == int(made)
        time.sleep(1.2)
        before = time.time()
        img_ok(h, "restart", "-t", "1", "later")
        after = time.time()
        created, started = times("later")
        assert created == made, "restart moved Created"
        assert before - 0.02 <= started <= after, (before, started, after)
    finally:
        img_ok(h, "rm", "-f", "later")


def epoch_of_rfc3339(text: str) -> float:
    """'2026-12-06T02:52:36.472233533Z' -> seconds since the epoch (to the microsecond)."""
    import datetime

    whole, _, fraction = text.rstrip("Z").partition(".")
    moment = datetime.datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=datetime.UTC)
    return moment.timestamp() + float(f"0.{fraction or 0}"[:8])


def test_attach_as_docker(images, busybox_archive):
    """`mrun attach`: a running detached container's output from now on (not what `logs` holds),
    its stderr on ours, a SIGTERM we get passed on to it, and its exit code ours. A stopped
    container, or one whose output is kept nowhere (--log-driver none), is one line."""
    h = images
    img_ok(h, "load", busybox_archive)
    script = ("trap 'echo bye >&2; exit 5' TERM; i=0; "
              "while [ $i -lt 3000 ]; do echo tick$i; i=$((i+1)); sleep 0.05; done")
    img_ok(h, *run_args(h, "-d", "--name", "att", IMAGE, "sh", "-c", script))
    img_ok(h, *run_args(h, "-d", "--name", "mute", "--log-driver", "none", IMAGE, "sleep", "600"))
    try:
        deadline = time.monotonic() + 20
        while img_ok(h, "logs", "att").stdout.count("tick") < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        proc = subprocess.Popen([h.binary, "--root", h.root, "--image-root", h.image_root, "attach", "att"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, **h.base_env})
        try:
            first = proc.stdout.readline().decode()
            proc.stdout.readline()  # a second line: it follows
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=30)
        finally:
            proc.kill()
            proc.wait()
        assert first.startswith("tick") and int(first[4:]) >= 5, first  # from now on, not from the start
        assert proc.returncode == 5, (proc.returncode, err)
        assert err.decode().endswith("bye\n"), err
        assert "bye" not in out.decode()
        assert img_ok(h, "wait", "att").stdout == "5\n"
        one_line_error(img(h, "attach", "att"), "it is stopped")
        one_line_error(img(h, "attach", "mute"), "kept nowhere", "--log-driver none")
        one_line_error(img(h, "attach", "nope"), "'nope'")
    finally:
        img_ok(h, "rm", "-f", "att", "mute")


class _AtATerminal:
    """An mrun command with a pty as its stdin, stdout and stderr: what it shows, keys typed."""

    def __init__(self, h, *args: str) -> None:
        import pty

        self.leader, follower = pty.openpty()
        self.tty = os.ttyname(follower)
        self.proc = subprocess.Popen([h.binary, "--root", h.root, "--image-root", h.image_root, *args],
                                     stdin=follower, stdout=follower, stderr=follower,
                                     env={**os.environ, **h.base_env}, start_new_session=True)
        os.close(follower)
        self.shown = b""

    def shows(self, needle: bytes, timeout: float = 20) -> None:
        import select

        deadline = time.monotonic() + timeout
        while needle not in self.shown:
            assert time.monotonic() < deadline, (needle, self.shown)
            if select.select([self.leader], [], [], 0.1)[0]:
                try:
                    self.shown += os.read(self.leader, 4096)
                except OSError:  # EIO: the command has ended
                    time.sleep(0.05)

    def type(self, keys: bytes) -> None:
        os.write(self.leader, keys)

    def ends(self, timeout: float = 20) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            self.proc.kill()
            self.proc.wait()
            os.close(self.leader)


def test_a_detached_terminal_or_stdin_is_held_open_and_attach_types_into_it_as_docker_s(images, busybox_archive):
    """docker's `run -dit` (the idiom for a container to exec into and attach to) was refused
    ("-t with -d is not supported"), `run -di`'s shell read /dev/null's end and left at once, and a
    container first run with -it could not be started again ("process.terminal: a terminal needs
    --console-socket"). Now its supervisor holds its terminal (the output into its log) or its
    stdin open, and `attach` (or `start -ai`) types into it: ctrl-p ctrl-q, or --detach-keys,
    leaves it running (docker's "read escape sequence", status 1); its exit code is attach's."""
    h = images
    img_ok(h, "load", busybox_archive)
    img_ok(h, *run_args(h, "-dit", "--name", "dev", IMAGE, "sh"))
    img_ok(h, *run_args(h, "-di", "--name", "piped", IMAGE, "sh"))
    img_ok(h, *create_args(h, "-it", "--name", "box", IMAGE, "sh", "-c", "read x; echo got $x; exit 4"))
    try:
        time.sleep(0.5)  # a shell that read an end would have left by now
        assert _listed(h, "dev") == _listed(h, "piped") == "running"
        assert img_ok(h, "inspect", "-f", "{{.Config.Tty}} {{.Config.OpenStdin}}", "dev", "piped").stdout == \
            "true true\nfalse true\n"
        assert img_ok(h, "exec", "dev", "readlink", "/proc/1/fd/0").stdout == "/dev/pts/0\n"

        t = _AtATerminal(h, "attach", "dev")
        t.type(b"echo $((6 * 7))\r")
        t.shows(b"42")
        t.type(b"\x10\x11")  # ctrl-p ctrl-q
        t.shows(b"read escape sequence")
        assert t.ends() == 1
        assert _listed(h, "dev") == "running"
        assert "42" in img_ok(h, "logs", "dev").stdout

        t = _AtATerminal(h, "attach", "--detach-keys", "ctrl-a,x", "dev")
        t.type(b"read -r x; printf '%s' \"$x\" | od -An -to1\r")
        time.sleep(0.3)
        t.type(b"o\x10k\r")  # ctrl-p alone is typed through (to `read`: the shell's editor takes it as "up")
        t.shows(b"157 020 153")
        t.type(b"\x01x")
        t.shows(b"read escape sequence")
        assert t.ends() == 1
        one_line_error(img(h, "attach", "--detach-keys", "ctrl-xx", "dev"), "--detach-keys", "'ctrl-xx'")
        one_line_error(img(h, "attach", "dev"), "the input device is not a TTY")  # its stdin /dev/null

        t = _AtATerminal(h, "attach", "dev")
        t.type(b"exit 7\r")
        assert t.ends() == 7
        assert img_ok(h, "wait", "dev").stdout == "7\n"
        t = _AtATerminal(h, "start", "-ai", "dev")  # its terminal again, ours
        t.type(b"echo again; exit 3\r")
        t.shows(b"again")
        assert t.ends() == 3

        r = subprocess.run([h.binary, "--root", h.root, "--image-root", h.image_root, "attach", "piped"],
                           input="echo from the pipe; exit 5\n", capture_output=True, text=True, timeout=60,
                           env={**os.environ, **h.base_env})
        assert (r.returncode, r.stdout) == (5, "from the pipe\n"), r.stderr

        t = _AtATerminal(h, "start", "-ai", "box")
        t.type(b"hey\r")
        t.shows(b"got hey")
        assert t.ends() == 4

        assert img(h, *run_args(h, "-t", "--name", "fg", IMAGE, "sh", "-c", "tty; exit 2")).returncode == 2
        r = img(h, "start", "-a", "fg")  # run in the foreground, started again detached: a terminal still
        assert (r.returncode, r.stdout.strip()) == (2, "/dev/pts/0"), r.stderr
    finally:
        img_ok(h, "rm", "-f", "dev", "piped", "box", "fg")


def _in_the_supervisor_cgroup(h, name: str) -> None:
    deadline = time.monotonic() + 10
    while True:
        dirs = cgroup_dirs(f"{h.cgroup_parent}/{name}+supervisor")
        held = [d for d in dirs if open(os.path.join(d, "cgroup.procs")).read().split()]
        if dirs and held == dirs:
            return
        assert time.monotonic() < deadline, f"{name}'s supervisor is not in a cgroup of its own: {dirs}, {held}"
        time.sleep(0.05)


def _no_supervisor_cgroup(h, name: str) -> None:
    deadline = time.monotonic() + 10
    while cgroup_dirs(f"{h.cgroup_parent}/{name}+supervisor"):  # its supervisor removes it as it ends
        assert time.monotonic() < deadline, cgroup_dirs(f"{h.cgroup_parent}/{name}+supervisor")
        time.sleep(0.05)


def test_a_foreground_run_it_detaches_with_its_keys_and_is_attached_again_as_docker_s(images, busybox_archive):
    """docker's `run -it`, then ctrl-p ctrl-q: the container runs on and the caller is back at
    its prompt, status 0, its terminal as it was; `attach` types into it again and gets its
    exit code; its output is in `logs`. Was: the keys were typed through, and the only way out
    was to end the container. With --detach-keys the keys are the user's (ctrl-p ctrl-q typed
    through then), and with --rm the container is removed once it ends after its detach. A bad
    --detach-keys is refused in one line with nothing made; `run -ti` fed from no terminal reads
    no keys (docker's are read from a terminal alone), so a file's bytes are never taken for them."""
    import termios

    h = images
    img_ok(h, "load", busybox_archive)
    try:
        t = _AtATerminal(h, *run_args(h, "-it", "--name", "fgd", IMAGE, "sh"))
        follower = os.open(t.tty, os.O_RDWR | os.O_NOCTTY)
        before = termios.tcgetattr(follower)
        t.type(b"echo $((6 * 7))\r")
        t.shows(b"42")
        t.type(b"\x10\x11")  # ctrl-p ctrl-q
        assert t.proc.wait(20) == 0
        assert termios.tcgetattr(follower) == before, "the caller's terminal was left raw"
        os.close(follower)
        t.ends()
        assert _listed(h, "fgd") == "running"
        # Its runner, its supervisor now, left its caller's cgroup (a session's, whose end kills
        # what is in it) for one of its own, as a detached container's is born in (cgroups.beside).
        _in_the_supervisor_cgroup(h, "fgd")
        t = _AtATerminal(h, "attach", "fgd")
        t.type(b"echo back-$((2 + 3)); exit 4\r")
        t.shows(b"back-5")
        assert t.ends() == 4
        assert img_ok(h, "wait", "fgd").stdout == "4\n"
        _no_supervisor_cgroup(h, "fgd")
        logs = img_ok(h, "logs", "fgd").stdout
        assert "42" in logs and "back-5" in logs, logs
        assert not os.path.exists(os.path.join(h.image_root, "containers", "fgd", "attach.sock"))

        t = _AtATerminal(h, *run_args(h, "--rm", "-it", "--detach-keys", "ctrl-a,x", "--name", "gone", IMAGE, "sh"))
        t.type(b"read -r x; printf '%s' \"$x\" | od -An -to1\r")
        time.sleep(0.3)
        t.type(b"o\x10\x11k\r")  # docker's default keys are no longer the keys: typed through
        t.shows(b"157 020 153")  # (the container's terminal takes ^Q as XON, as any terminal)
        t.type(b"\x01x")
        assert t.ends() == 0
        assert _listed(h, "gone") == "running"
        t = _AtATerminal(h, "attach", "gone")
        t.type(b"exit 6\r")
        assert t.ends() == 6
        deadline = time.monotonic() + 20
        while _listed(h, "gone") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _listed(h, "gone") == "", "a --rm container detached was not removed once it ended"

        one_line_error(img(h, *run_args(h, "-it", "--detach-keys", "ctrl-", "--name", "bad", IMAGE, "true")),
                       "--detach-keys", "'ctrl-'")
        assert _listed(h, "bad") == ""
        r = subprocess.run([h.binary, "--root", h.root, "--image-root", h.image_root,
                            *run_args(h, "--rm", "-ti", IMAGE, "sh", "-c", "cat; echo; echo done")],
                           input=b"a\x10\x11b\n", capture_output=True, timeout=60, env={**os.environ, **h.base_env})
        assert r.returncode == 0 and b"done" in r.stdout, r
    finally:
        img(h, "rm", "-f", "fgd", "gone")


def test_exec_it_detaches_with_its_keys_as_docker_s(images, busybox_archive):
    """docker's `exec -it C sh`, then ctrl-p ctrl-q: "read escape sequence", status 1 (docker's
    words and status, as its attach), the caller's terminal as it was, and the exec'd shell still
    running in the container; --detach-keys chooses others. Was: typed through to the shell."""
    h = images
    img_ok(h, "load", busybox_archive)
    img_ok(h, *run_args(h, "-d", "--name", "host1", IMAGE, "sleep", "600"))
    try:
        for keys, typed in (((), b"\x10\x11"), (("--detach-keys", "ctrl-a,x"), b"\x01x")):
            t = _AtATerminal(h, "exec", "-it", *keys, "host1", "sh", "-c", "echo in-$((5 * 5)); exec sleep 500")
            t.shows(b"in-25")
            t.type(typed)
            t.shows(b"read escape sequence")
            assert t.proc.wait(20) == 1
            t.ends()
        shown = img_ok(h, "exec", "host1", "ps", "-o", "args").stdout
        assert shown.count("sleep 500") == 2, shown  # both exec'd processes run on
    finally:
        img(h, "rm", "-f", "host1")


def test_run_sig_proxy_false_leaves_the_container_running_when_a_signal_ends_the_caller(images, busybox_archive):
    """docker's `run --sig-proxy=false`: a ^C (or SIGTERM) ends the caller alone, status 128 + the
    signal, and its stdout pipe ends then (nothing of ours writes to it any more); the container
    runs on, its output into its log, its exit code noted; with --rm it is removed once it ends.
    By default (--sig-proxy) the signal is the container's. Was: the flag was refused."""
    h = images
    img_ok(h, "load", busybox_archive)
    script = ("trap 'echo got-INT; exit 9' INT; echo started; i=0; "
              "while [ $i -lt 30 ]; do sleep 0.1; i=$((i+1)); done; echo later; exit 3")

    def run_then_signal(*flags: str) -> tuple[int, str, float]:
        p = subprocess.Popen([h.binary, "--root", h.root, "--image-root", h.image_root,
                              *run_args(h, *flags, IMAGE, "sh", "-c", script)],
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             env={**os.environ, **h.base_env})
        out = b""
        while b"started" not in out:
            chunk = p.stdout.read1(4096)
            assert chunk, out
            out += chunk
        p.send_signal(signal.SIGINT)
        sent = time.monotonic()
        out += p.stdout.read()  # to its end: every holder of the pipe gone
        return p.wait(20), out.decode(), time.monotonic() - sent

    try:
        code, out, took = run_then_signal("--sig-proxy=false", "--name", "sp")
        assert code == 130 and "later" not in out and "got-INT" not in out and took < 2.5, (code, out, took)
        assert _listed(h, "sp") == "running"
        _in_the_supervisor_cgroup(h, "sp")  # its caller gone, out of the caller's cgroup (cgroups.beside)
        assert img_ok(h, "wait", "sp").stdout == "3\n"
        _no_supervisor_cgroup(h, "sp")
        logs = img_ok(h, "logs", "sp").stdout
        assert "started" in logs and "later" in logs and "got-INT" not in logs, logs

        code, out, took = run_then_signal("--rm", "--sig-proxy=false", "--name", "sprm")
        assert code == 130 and "later" not in out, (code, out)
        assert _listed(h, "sprm") == "running"
        deadline = time.monotonic() + 20
        while _listed(h, "sprm") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _listed(h, "sprm") == "", "a --rm container whose caller went was not removed once it ended"

        code, out, _ = run_then_signal("--rm", "--name", "proxied")  # the default: the container's signal
        assert code == 9 and "got-INT" in out, (code, out)
    finally:
        img(h, "rm", "-f", "sp", "sprm", "proxied")


def test_run_t_sig_proxy_false_lets_the_caller_go_and_gives_its_terminal_back_as_docker_s(images, busybox_archive):
    """docker's `run -it --sig-proxy=false` (its sig-proxy holds with a terminal too): a signal to
    the client (a `kill`, the terminal's hang-up) ends the client alone, status 128 + the signal;
    its terminal gets its mode back; the container runs on, its output into its log, `attach`
    types into it again, its exit code is noted. Was: the flag was ignored with -t and the signal
    went to the container."""
    import termios

    h = images
    img_ok(h, "load", busybox_archive)
    script = "trap 'echo got-TERM; exit 9' TERM; echo started; read x; echo later-$x; exit 3"
    try:
        t = _AtATerminal(h, *run_args(h, "-it", "--sig-proxy=false", "--name", "tsp", IMAGE, "sh", "-c", script))
        follower = os.open(t.tty, os.O_RDWR | os.O_NOCTTY)
        before = termios.tcgetattr(follower)
        t.shows(b"started")
        t.proc.send_signal(signal.SIGTERM)
        assert t.proc.wait(20) == 128 + signal.SIGTERM
        assert termios.tcgetattr(follower) == before, "the caller's terminal was left raw"
        os.close(follower)
        t.ends()
        assert b"got-TERM" not in t.shown
        assert _listed(h, "tsp") == "running"
        _in_the_supervisor_cgroup(h, "tsp")  # its caller gone, out of the caller's cgroup (cgroups.beside)
        t = _AtATerminal(h, "attach", "tsp")
        t.type(b"again\r")
        t.shows(b"later-again")
        assert t.ends() == 3
        assert img_ok(h, "wait", "tsp").stdout == "3\n"
        logs = img_ok(h, "logs", "tsp").stdout
        assert "started" in logs and "later-again" in logs and "got-TERM" not in logs, logs

        t = _AtATerminal(h, *run_args(h, "-it", "--name", "tproxied", "--rm", IMAGE, "sh", "-c", script))
        t.shows(b"started")
        t.proc.send_signal(signal.SIGTERM)  # the default: the container's signal
        t.shows(b"got-TERM")
        assert t.ends() == 9
    finally:
        img(h, "rm", "-f", "tsp", "tproxied")


def test_containers_are_named_by_a_short_id_as_docker_s(images, busybox_archive):
    """docker's verbs take any prefix of a container's id that no other id shares (`stop 3f2a`,
    `cp 3f:/etc/hosts .`, `run --pid container:3f`): mrun's said "does not exist". An exact name
    wins; a prefix two ids share is refused in one line naming them, and nothing is done; a runc
    client's container (its own bundle, in the same root) is never reached by a prefix, nor is a
    signal number taken for one."""
    h = images
    img_ok(h, "load", busybox_archive)
    made: list[str] = []
    try:
        cid = img_ok(h, *run_args(h, "-d", IMAGE, "sleep", "600")).stdout.strip()
        made.append(cid)
        assert len(cid) == 12
        while len({c[0] for c in made}) == len(made):  # until two ids share their first digit
            made.append(img_ok(h, *create_args(h, IMAGE, "true")).stdout.strip())
        shared = next(c[0] for c in made if sum(o[0] == c[0] for o in made) > 1)
        unique = next(cid[:n] for n in range(1, 13) if sum(o.startswith(cid[:n]) for o in made) == 1)

        assert img_ok(h, "inspect", "-f", "{{.State.Status}}", unique).stdout == "running\n"
        assert img_ok(h, "exec", unique, "hostname").stdout.strip() == cid[:12]
        assert img_ok(h, "port", unique).returncode == 0
        joined = img_ok(h, *run_args(h, "--rm", "--pid", f"container:{unique}", IMAGE, "cat", "/proc/1/cmdline"))
        assert joined.stdout.startswith("sleep"), joined.stdout
        copied = os.path.join(h.tmp, "hostname-copy")
        img_ok(h, "cp", f"{unique}:/etc/hostname", copied)
        assert open(copied).read().strip() == cid
        assert img_ok(h, "kill", unique, "9").stdout == f"{unique}\n"  # runc's form: 9 is the signal; echoed as typed
        assert img_ok(h, "wait", unique).stdout == "137\n"

        r = img(h, "rm", "-f", shared)
        one_line_error(r, "multiple containers", shared)
        assert all(c in img_ok(h, "ps", "-aq").stdout.split() for c in made), "an ambiguous prefix removed one"
        assert img_ok(h, "update", "--cpus", "0.5", unique).stdout == f"{unique}\n"
        lonely = img_ok(h, *create_args(h, "--name", "lonely", IMAGE, "true")).stdout.strip()
        r = img(h, "rm", shared, "lonely")  # docker's way with several: the others are still done
        assert r.returncode == 1 and r.stdout == "lonely\n" and "multiple containers" in r.stderr, r
        assert lonely not in img_ok(h, "ps", "-aq").stdout.split()

        bundle = h.bundle(["sleep", "600"])
        runc_id = "abcdefabcdef"
        h.ok("create", "--bundle", bundle, runc_id)
        try:
            one_line_error(img(h, "kill", "abcd", "KILL"), "abcd", "does not exist")
            assert h.status(runc_id) == "created"
        finally:
            h.mrun("delete", "--force", runc_id)

        assert img_ok(h, "rm", unique).stdout == f"{unique}\n"  # docker echoes what it was given
        made.remove(cid)
    finally:
        if made:
            img(h, "rm", "-f", *made)


def test_a_detached_container_s_input_is_root_s_alone(images, busybox_archive):
    """The socket a detached -i container's supervisor hands its input over on is root's (mode
    0600): another user cannot type into the container."""
    h = images
    img_ok(h, "load", busybox_archive)
    img_ok(h, *run_args(h, "-dit", "--name", "held", IMAGE, "sh"))
    try:
        sock = os.path.join(h.image_root, "containers", "held", "attach.sock")
        st = os.lstat(sock)
        assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == 0
        pid = os.fork()
        if pid == 0:
            import socket

            code = 1
            try:
                os.setgid(65534)
                os.setuid(65534)
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(sock)
            except PermissionError:
                code = 0
            finally:
                os._exit(code)
        assert os.waitpid(pid, 0)[1] == 0, "another user reached the container's input"
    finally:
        img_ok(h, "rm", "-f", "held")


def test_wait_ends_when_the_supervisor_that_would_note_the_exit_is_gone(images, busybox_archive):
    """`mrun wait` waits for the exit code a detached container's supervisor notes. A supervisor
    killed before it could (SIGKILL, the OOM killer) used to leave `wait` polling forever: now it
    says so in one line. And a --log-driver none container (no log) still gets its exit code."""
    h = images
    img_ok(h, "load", busybox_archive)
    img_ok(h, *run_args(h, "-d", "--name", "quietexit", "--log-driver", "none", IMAGE, "sh", "-c", "sleep 0.3; exit 3"))
    img_ok(h, *run_args(h, "-d", "--name", "orphan", IMAGE, "sleep", "600"))
    try:
        assert img_ok(h, "wait", "quietexit").stdout == "3\n"
        bundle = os.path.join(h.image_root, "containers", "orphan")
        with open(os.path.join(bundle, "supervisor.json")) as f:
            supervisor = json.load(f)["pid"]
        assert supervisor != json.loads(h.mrun("state", "orphan").stdout)["pid"]
        os.kill(supervisor, signal.SIGKILL)  # ours: a test's own container's supervisor
        img_ok(h, "kill", "orphan", "SIGKILL")
        h.wait_status("orphan", "stopped")
        r = img(h, "wait", "orphan", timeout=20)
        one_line_error(r, "'orphan'", "supervisor ended before it noted the exit code")
    finally:
        img_ok(h, "rm", "-f", "quietexit", "orphan")


def test_wait_and_attach_say_the_exit_code_of_a_container_rm_f_or_rm_takes(images, busybox_archive):
    """docker's `wait` (and `attach`) of a container that `rm -f` kills and removes says its exit
    code, 137, as one that --rm removes once it ends (detached or in the foreground) says its
    own: ours said the container was gone, "removed once it stopped, as --rm does". They hold its
    files (bundles.reading) until they have read its code: the removal waits for them (a
    moment), not the other way round."""
    h = images
    img_ok(h, "load", busybox_archive)

    def waiting(*verb: str) -> subprocess.Popen[str]:
        return subprocess.Popen([h.binary, "--root", h.root, "--image-root", h.image_root, *verb],
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env={**os.environ, **h.base_env})

    img_ok(h, *run_args(h, "-d", "--name", "taken", IMAGE, "sh", "-c", "echo up; exec sleep 60"))
    img_ok(h, *run_args(h, "-d", "--rm", "--name", "removed", IMAGE, "sh", "-c", "sleep 2; echo last; exit 5"))
    foreground = waiting(*run_args(h, "--rm", "--name", "fg", IMAGE, "sh", "-c", "sleep 2; exit 6"))
    waiters: list[subprocess.Popen[str]] = []
    try:
        while "up" not in img_ok(h, "logs", "taken").stdout or img(h, "inspect", "fg").returncode != 0:
            time.sleep(0.05)
        waiters = [waiting("wait", "taken"), waiting("attach", "taken"), waiting("wait", "removed"),
                   waiting("attach", "removed"), waiting("wait", "fg")]
        time.sleep(1)  # all of them waiting
        assert [w.poll() for w in waiters] == [None] * 5
        img_ok(h, "rm", "-f", "taken")
        said = [(w.wait(timeout=30), w.stdout.read(), w.stderr.read().strip()) for w in waiters]
        assert said == [(0, "137\n", ""), (137, "", ""), (0, "5\n", ""), (5, "last\n", ""), (0, "6\n", "")], said
        assert foreground.wait(timeout=30) == 6
        for name in ("removed", "fg"):  # --rm took them, once they had read their code
            assert img(h, "inspect", name).returncode != 0
    finally:
        for w in [*waiters, foreground]:
            if w.poll() is None:
                w.kill()
                w.wait()
            w.stdout.close()
            w.stderr.close()
        img(h, "rm", "-f", "taken", "removed", "fg")


def test_history_and_info_as_docker(images, busybox_archive):
    """`mrun history` (and `image history`): the image's steps newest first, its id on the newest,
    each layer's size beside its step; -q, --no-trunc, --format. `mrun info` (and `system info`):
    counts of containers by state and of images, the cgroup version this host runs, the
    backends; --format over docker's field names, {{json .}} whole."""
    h = images
    img_ok(h, "load", busybox_archive)
    image_id = json.loads(img_ok(h, "images", "--format", "json").stdout)[0]["config"].removeprefix("sha256:")
    rows = img_ok(h, "history", IMAGE).stdout.splitlines()
    assert rows[0].split()[:2] == ["IMAGE", "CREATED"] and rows[1].startswith(image_id[:12] + " "), rows
    assert all(row.startswith("<missing> ") for row in rows[2:]) and len(rows) >= 2
    same = "{{.ID}} {{.CreatedAt}} {{.CreatedBy}} {{.Size}}"  # (not CREATED: "59 seconds" may become "About a minute")
    assert img_ok(h, "image", "history", "--format", same, IMAGE).stdout == \
        img_ok(h, "history", "--format", same, IMAGE).stdout
    assert img_ok(h, "history", "-q", "--no-trunc", IMAGE).stdout.splitlines()[0] == "sha256:" + image_id  # docker's
    assert img_ok(h, "image", "history", "-q", "--no-trunc", IMAGE).stdout.splitlines()[0] == "sha256:" + image_id
    manifest_layers = json.loads(img_ok(h, "image", "inspect", IMAGE).stdout)
    sizes = img_ok(h, "history", "-H=false", "--format", "{{.Size}}", IMAGE).stdout.split()
    assert sum(map(int, sizes)) == manifest_layers["size"], (sizes, manifest_layers["size"])
    one_line_error(img(h, "history", "nope"), "'nope' not found")
    one_line_error(img(h, "history", "--format", "{{.Nope}}", IMAGE), "Nope")
    img_ok(h, *run_args(h, "-d", "--name", "inforun", IMAGE, "sleep", "600"))
    try:
        doc = json.loads(img_ok(h, "info", "--format", "{{json .}}").stdout)
        assert (doc["Containers"], doc["ContainersRunning"], doc["Images"]) == (1, 1, 1), doc
        expected = "2" if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else "1"
        assert doc["CgroupVersion"] == expected and "linux" in doc["Backends"] and "wasm" in doc["Backends"]
        assert img_ok(h, "system", "info", "-f", "{{.ContainersRunning}}/{{.Containers}}").stdout == "1/1\n"
        text = img_ok(h, "info").stdout
        assert "Containers: 1\n Running: 1\n" in text and f"Cgroup Version: {expected}\n" in text
    finally:
        img_ok(h, "rm", "-f", "inforun")


def test_mrun_s_own_records_damaged_are_one_line_or_passed_over(images, busybox_archive):
    """mrun replaces its records whole, so no crash damages one; a disk or a hand can. A damaged
    image index (cut short, a list, an entry without its config) made every image verb an
    "internal error: DecodeError" (or AttributeError, TypeError); one container's damaged
    image.json or config.json did so for `ps -a`, `diff` and `volume ls` over all containers, and
    a damaged net.json for `inspect`. Now the index is one line naming the file and its first bad
    field, and a container's damaged record is read as absent: the others are still listed."""
    h = images
    img_ok(h, "load", busybox_archive)
    img_ok(h, *run_args(h, "-d", "--name", "up", IMAGE, "sleep", "600"))
    img(h, *run_args(h, "--name", "done", IMAGE, "true"))
    containers = os.path.join(h.image_root, "containers")
    records = [os.path.join(containers, "up", "image.json"), os.path.join(containers, "done", "config.json"),
               os.path.join(h.root, "up", "net.json")]
    kept = {p: open(p, "rb").read() if os.path.exists(p) else None for p in records}
    try:
        for damage in ("", "[1]", "{"):
            for path in records:
                with open(path, "w") as f:
                    f.write(damage)
            for verb in (("ps", "-a"), ("container", "ls", "-a"), ("volume", "ls"), ("inspect", "up"), ("diff", "up")):
                r = img(h, *verb)
                assert "internal error" not in r.stderr, (damage, verb, r.stderr)
                assert r.returncode == 0 or r.stderr.count("\n") == 1, (damage, verb, r.stderr)
                if verb[0] in ("ps", "container"):
                    assert "up" in r.stdout and "done" in r.stdout, (damage, verb, r.stdout)
        for path, content in kept.items():
            if content is None:
                os.unlink(path)
            else:
                with open(path, "wb") as f:
                    f.write(content)
        index = os.path.join(h.image_root, "images.json")
        whole = open(index, "rb").read()
        for damage, words in (("", "Expecting value"), ("[1]", "not a JSON object"),
                              (json.dumps({IMAGE: {"manifest": "sha256:1"}}), f"{IMAGE}.config: missing"),
                              (json.dumps({IMAGE: 5}), f"{IMAGE}: must be an object")):
            with open(index, "w") as f:
                f.write(damage)
            for verb in (("images",), ("image", "inspect", IMAGE), ("history", IMAGE), ("info",),
                         run_args(h, "--rm", IMAGE, "true"), ("rmi", IMAGE)):
                one_line_error(img(h, *verb), f"{index} is damaged", words)
        with open(index, "wb") as f:
            f.write(whole)
        assert IMAGE in img_ok(h, "image", "inspect", IMAGE).stdout
    finally:
        img(h, "rm", "--force", "up", "done")


def test_ps_filters_by_exit_code_time_network_and_volume(images, busybox_archive, tmp_path):
    """docker's `ps -a --filter exited=0` (a script's "which ones failed"), before=/since= (made
    before or after a container), network=NAME (host, none too) and volume=NAME|DEST: each was
    refused as an unknown key. A value that is no exit code, or a container that is not there,
    is one line."""
    h = images
    env = {"MRUN_NETWORK_ROOT": str(tmp_path / "networks")}
    img_ok(h, "load", busybox_archive)
    img_ok(h, "network", "create", "psnet", env=env)
    try:
        img_ok(h, *run_args(h, "--name", "ok", IMAGE, "true"))
        assert img(h, *run_args(h, "--name", "three", IMAGE, "sh", "-c", "exit 3")).returncode == 3
        img_ok(h, *run_args(h, "-d", "--name", "withvol", "-v", "psvol:/data", IMAGE, "sleep", "60"), env=env)
        img_ok(h, *run_args(h, "-d", "--name", "onnet", "--network", "psnet", IMAGE, "sleep", "60"), env=env)

        def ps(*filters: str) -> list[str]:
            args = [f for x in filters for f in ("--filter", x)]
            return sorted(img_ok(h, "ps", "-a", "-q", *args, env=env).stdout.split())

        assert ps("exited=0") == ["ok"] and ps("exited=3") == ["three"]
        assert ps("exited=0", "exited=3") == ["ok", "three"]  # one key's values: any
        assert ps("before=three") == ["ok"] and ps("since=three") == ["onnet", "withvol"]
        assert ps("network=psnet") == ["onnet"] and ps("network=none") == ["ok", "three", "withvol"]
        assert ps("volume=psvol") == ["withvol"] and ps("volume=/data") == ["withvol"] and ps("volume=/proc") == []
        for bad in ("exited=x", "before=nosuch"):
            r = img(h, "ps", "-a", "--filter", bad, env=env)
            assert r.returncode != 0 and r.stderr.count("\n") == 1 and bad.split("=")[1] in r.stderr, r
    finally:
        img(h, "rm", "-f", "-v", "ok", "three", "withvol", "onnet", env=env)
        img(h, "network", "rm", "psnet", env=env)


def test_volume_filters_as_docker_s(images, busybox_archive):
    """`docker volume rm $(docker volume ls -qf dangling=true)`, `volume prune --filter label=...`:
    mrun's volume verbs had no --filter ("No such option"). Now ls takes dangling, name, driver and
    label (none of these volumes carries one: none match), prune takes label, label! and all; any
    other key is one line, removing nothing."""
    h = images
    img_ok(h, "load", busybox_archive)
    img_ok(h, "volume", "create", "used")
    img_ok(h, "volume", "create", "spare")
    img_ok(h, *run_args(h, "--name", "user", "-v", "used:/d", IMAGE, "true"))  # stopped, kept: it uses it

    def ls(*filters: str) -> list[str]:
        return img_ok(h, "volume", "ls", "-q", *(f for x in filters for f in ("--filter", x))).stdout.split()

    try:
        assert img_ok(h, "volume", "ls", "-qf", "dangling=true").stdout.split() == ["spare"]
        assert ls("dangling=false") == ["used"]
        assert ls("name=pa", "driver=local") == ["spare"]
        assert ls("label=x") == [] and ls("driver=nfs") == []
        for verb, bad in (("ls", "dangling=maybe"), ("ls", "size=1"), ("prune", "until=1h"), ("prune", "all=yes")):
            one_line_error(img(h, "volume", verb, "--filter", bad), bad)
        assert ls() == ["spare", "used"]
        assert not img_ok(h, "volume", "prune", "-f", "--filter", "label=keep").stdout  # none carries it
        assert not img_ok(h, "volume", "prune", "--filter", "label!=keep").stdout  # no anonymous one
        assert img_ok(h, "volume", "prune", "--filter", "all=true").stdout == "removed volume spare\n"
        assert ls() == ["used"]
    finally:
        img(h, "rm", "user")
        img(h, "volume", "rm", "used", "spare")


def test_volume_labels_as_docker_s(images, busybox_archive):
    """`docker volume create --label backup=yes data`, then `volume ls -f label=backup`, `volume
    inspect -f '{{.Labels}}'` and `volume prune -a --filter label!=keep`: --label was "No such
    option", and a label filter matched no volume. A key mrun reads as an instruction is refused,
    as on a container; an existing volume keeps its own labels."""
    h = images
    img_ok(h, "load", busybox_archive)
    assert img_ok(h, "volume", "create", "--label", "backup=yes", "--label", "keep", "data").stdout == "data\n"
    img_ok(h, "volume", "create", "--label", "backup=no", "scratch")
    img_ok(h, "volume", "create", "plain")

    def ls(*filters: str) -> list[str]:
        return img_ok(h, "volume", "ls", "-q", *(f for x in filters for f in ("--filter", x))).stdout.split()

    try:
        assert ls("label=backup") == ["data", "scratch"] and ls("label=backup=yes") == ["data"]
        assert ls("label=keep", "label=backup=yes") == ["data"] and ls("label=nosuch") == []
        assert img_ok(h, "volume", "inspect", "-f", "{{json .Labels}}", "data", "plain").stdout == \
            '{"backup":"yes","keep":""}\n{}\n'
        assert json.loads(img_ok(h, "volume", "inspect", "scratch").stdout)[0]["labels"] == {"backup": "no"}
        img_ok(h, "volume", "create", "--label", "other=1", "data")  # there already: as it was
        assert ls("label=other") == []
        one_line_error(img(h, "volume", "create", "--label", "org.mrun.network=x", "bad"), "--label org.mrun.network")
        one_line_error(img(h, "volume", "create", "--label", "=x", "bad"), "--label '=x'")
        one_line_error(img(h, "volume", "ls", "--label", "x"), "--label is create's")
        assert "bad" not in ls()
        assert img_ok(h, "volume", "prune", "-a", "--filter", "label!=keep").stdout == \
            "removed volume plain\nremoved volume scratch\n"
        assert img_ok(h, "volume", "prune", "-a", "--filter", "label=backup=yes").stdout == "removed volume data\n"
    finally:
        img(h, "volume", "rm", "data", "scratch", "plain")


def test_a_named_bind_volume_as_docker_s_local_driver_makes_it(images, busybox_archive, tmp_path):
    """`docker volume create -d local -o type=none -o o=bind -o device=/srv/data NAME` gives a
    host directory a volume's name (was "No such option: -o"): a container mounting NAME sees and
    writes that directory, filled from the image while empty, as docker fills it; `o=bind,ro` is
    read-only; `volume rm` is refused while a container uses it and leaves the directory's files;
    inspect shows the options. A type the local driver mounts on the host (tmpfs, nfs), another
    driver, a relative device or a missing one: one line, nothing made."""
    h = images
    img_ok(h, "load", busybox_archive)
    device = tmp_path / "srv"
    device.mkdir()
    img_ok(h, "volume", "create", "-d", "local", "-o", "type=none", "-o", "o=bind", "-o", f"device={device}", "nb")
    img_ok(h, "volume", "create", "--opt", "type=none", "--opt", "o=bind,ro", "--opt", f"device={device}", "nbro")
    try:
        r = img_ok(h, *run_args(h, "--name", "nbu", "-v", "nb:/etc", IMAGE, "sh", "-c",
                                "echo from-container > /etc/new; ls /etc/passwd"))
        assert r.stdout == "/etc/passwd\n", r  # the empty directory was filled from the image's /etc
        assert (device / "new").read_text() == "from-container\n" and (device / "passwd").exists()
        one_line_error(img(h, "volume", "rm", "nb"), "in use", "nbu")
        assert img_ok(h, "ps", "-aq", "--filter", "volume=nb").stdout.split() == ["nbu"]  # by its name too
        r = img(h, *run_args(h, "--rm", "-v", "nbro:/data", IMAGE, "sh", "-c", "cat /data/new; touch /data/x"))
        assert r.returncode != 0 and r.stdout == "from-container\n" and not (device / "x").exists(), r
        doc = json.loads(img_ok(h, "volume", "inspect", "nb").stdout)[0]
        assert doc["options"] == {"type": "none", "o": "bind", "device": str(device)}, doc
        assert img_ok(h, "volume", "inspect", "-f", "{{.Options.device}}", "nb").stdout == f"{device}\n"
        img_ok(h, "rm", "nbu")
        img_ok(h, "volume", "rm", "nb", "nbro")
        assert (device / "new").read_text() == "from-container\n"  # the directory is someone's own: kept
        for opts, words in ((["-o", "type=tmpfs", "-o", "device=tmpfs"], "type=tmpfs"),
                            (["-o", "type=nfs", "-o", "o=addr=10.0.0.1", "-o", "device=:/x"], "type=nfs"),
                            (["-o", "type=none", "-o", "o=bind", "-o", "device=rel"], "device=rel"),
                            (["-o", "size=1g"], "size="), (["-o", "novalue"], "KEY=VALUE"),
                            (["-d", "nfsdriver"], "--driver nfsdriver")):
            one_line_error(img(h, "volume", "create", *opts, "bad"), words)
        img_ok(h, "volume", "create", "-o", "type=none", "-o", "o=bind", "-o", f"device={tmp_path}/none", "gone")
        one_line_error(img(h, *run_args(h, "--rm", "-v", "gone:/data", IMAGE, "true")), "no directory here")
        one_line_error(img(h, "volume", "create", "-o", "type=none", "-o", "o=rbind", "-o", f"device={device}",
                           "gone"), "exists with other options")
        assert img_ok(h, "volume", "ls", "-q").stdout.split() == ["gone"]
        assert img_ok(h, "ps", "-aq").stdout == ""
    finally:
        img(h, "rm", "-f", "nbu")
        img(h, "volume", "rm", "nb", "nbro", "gone")


def test_image_prune_filters_choose_and_an_unknown_one_removes_nothing(images, busybox_archive):
    """`docker image prune -a --filter label!=keep` (or until=24h): only the images the filter
    chooses lose their names. mrun took --filter and passed it over: every image no container was
    made from went, those the filter was there to keep among them; a misspelt key did the same.
    Now label, label! and until choose (docker's keys for image prune), any other is one line,
    removing nothing."""
    h = images
    img_ok(h, "load", busybox_archive)
    img_ok(h, *run_args(h, "--name", "maker", IMAGE, "true"))
    img_ok(h, "commit", "-c", "LABEL keep=yes", "maker", "localhost/keep:1")
    img_ok(h, "commit", "maker", "localhost/drop:1")
    img_ok(h, "rm", "maker")

    def names() -> list[str]:
        return sorted(img_ok(h, "image", "ls", "--format", "{{.Repository}}").stdout.split())

    every = ["localhost/busybox", "localhost/drop", "localhost/keep"]
    for bad in ("lable=keep", "dangling=true", "label", "until=soon"):
        one_line_error(img(h, "image", "prune", "-af", "--filter", bad), bad)
        assert names() == every, bad
    assert not img_ok(h, "image", "prune", "-af", "--filter", "until=1h").stdout  # each is younger
    assert names() == every
    pruned = img_ok(h, "image", "prune", "-af", "--filter", "label!=keep").stdout
    assert "untagged localhost/drop:1" in pruned and "untagged localhost/busybox:latest" in pruned, pruned
    assert names() == ["localhost/keep"]
    img_ok(h, "image", "prune", "-af", "--filter", "label=keep=no")
    assert names() == ["localhost/keep"]
    img_ok(h, "image", "prune", "-af", "--filter", "label=keep=yes", "--filter", "until=2030-01-01")
    assert names() == []


@pytest.mark.parametrize("images", ["cold"], indirect=True)
def test_system_prune_removes_no_directory_mrun_did_not_make(images):
    """A state root shared by mistake (`--root /tmp`) or a directory someone put there: `system
    prune` took each directory without a container's state for a create killed before it wrote
    one, and emptied and removed it ("removed container someone"). A directory is a container's
    only if mrun made it: it holds the lock every create makes first (or nothing: a removal
    killed between its last two steps). A verb naming such a directory wrote its lock file into
    it, which made it look like ours."""
    h = images
    theirs = {"someone/notes.txt": "keep", "someone-else/inner/data": "keep too", "with-state/state.json": "{}",
              ".making-notes/notes.txt": "a name like a create's, not its shape"}
    for name, text in theirs.items():
        os.makedirs(os.path.dirname(os.path.join(h.root, name)), exist_ok=True)
        with open(os.path.join(h.root, name), "w") as f:
            f.write(text)
    os.makedirs(os.path.join(h.root, ".making-0123456789abcdef"))  # a create killed before its rename
    open(os.path.join(h.root, ".making-0123456789abcdef", "lock"), "w").close()
    os.makedirs(os.path.join(h.root, "killed-create"))  # what a create killed before its state leaves
    open(os.path.join(h.root, "killed-create", "lock"), "w").close()
    os.makedirs(os.path.join(h.root, "emptied"))  # a removal killed before its rmdir
    try:
        for verb in (["delete", "someone"], ["kill", "someone"], ["state", "someone"], ["pause", "someone"]):
            one_line_error(h.mrun(*verb), "container 'someone' does not exist")  # and no lock file written there
        assert h.mrun("delete", "--force", "someone").returncode == 0  # runc's, for what does not exist
        r = img_ok(h, "system", "prune", "-f")
        assert sorted(r.stdout.splitlines()) == ["removed container emptied", "removed container killed-create"]
        for name, text in theirs.items():
            with open(os.path.join(h.root, name)) as f:
                assert f.read() == text, name
        assert os.listdir(os.path.join(h.root, "someone")) == ["notes.txt"]
        assert sorted(os.listdir(h.root)) == [".making-notes", "someone", "someone-else", "with-state"]
        assert img_ok(h, "ps", "-a", "-q").stdout == ""
    finally:
        for top in ("someone", "someone-else", "with-state", ".making-notes"):
            shutil.rmtree(os.path.join(h.root, top))


@pytest.mark.parametrize("images", ["cold"], indirect=True)
def test_prune_removes_no_container_directory_mrun_did_not_make(images, busybox_archive):
    """An image root shared by mistake (`--image-root /var/lib/docker`, whose containers/ holds
    docker's): a directory in containers/ without mrun's image.json was taken for a release cut
    short and removed whole. A release now renames a bundle to a `.gone-` name before it removes
    it, so what a killed one leaves is known by its name; a prepare killed before its image.json
    leaves an empty directory or one with its run lock. Any other directory is someone else's."""
    h = images
    img_ok(h, "load", busybox_archive, IMAGE)
    containers = os.path.join(h.image_root, "containers")
    theirs = {"d0cker1d/config.v2.json": "{}", "d0cker1d/mounts/secrets": "keep", "other/upper/data": "keep too",
              ".gone-soon/notes": "a name like a removal's, not its shape"}
    for name, text in theirs.items():
        os.makedirs(os.path.dirname(os.path.join(containers, name)), exist_ok=True)
        with open(os.path.join(containers, name), "w") as f:
            f.write(text)
    os.makedirs(os.path.join(containers, ".gone-0123456789abcdef", "upper", "left"))  # a killed release's
    os.makedirs(os.path.join(containers, "killed-prepare"))
    open(os.path.join(containers, "killed-prepare", "run.lock"), "w").close()
    img_ok(h, *run_args(h, "--name", "mine", IMAGE, "true"))
    try:
        r = img_ok(h, "system", "prune", "-f")
        assert sorted(r.stdout.splitlines()) == ["removed orphaned container .gone-0123456789abcdef",
                                                 "removed orphaned container killed-prepare"], r.stdout
        for name, text in theirs.items():
            with open(os.path.join(containers, name)) as f:
                assert f.read() == text, name
        img_ok(h, "rm", "mine")
        assert sorted(os.listdir(containers)) == [".gone-soon", "d0cker1d", "other"]  # its removal took all of it
        img_ok(h, "image", "prune", "-a", "-f")
        assert sorted(os.listdir(containers)) == [".gone-soon", "d0cker1d", "other"]
    finally:
        for top in ("d0cker1d", "other", ".gone-soon"):
            shutil.rmtree(os.path.join(containers, top))


@pytest.mark.parametrize("images", ["cold"], indirect=True)
def test_volume_prune_removes_no_directory_mrun_did_not_make(images):
    """An image root shared by mistake (`--image-root /var/lib/docker`, whose volumes/ holds
    docker's: `NAME/_data` and `metadata.db`): `volume prune` took every entry without a data/
    for a making an older mrun was killed in, and anything named `.new-*` or `.gone-*` for a
    killed making or removal, and removed them whole. Only the shape mrun's making and removal
    leave goes now: the prefix and 16 random hex digits."""
    h = images
    volumes = os.path.join(h.image_root, "volumes")
    theirs = {"d0ckervol/_data/db": "keep", "metadata.db": "bolt", "plain/readme": "keep",
              ".new-notes/x": "a name like a making's", ".gone-soon/y": "a name like a removal's"}
    for name, text in theirs.items():
        os.makedirs(os.path.dirname(os.path.join(volumes, name)), exist_ok=True)
        with open(os.path.join(volumes, name), "w") as f:
            f.write(text)
    os.makedirs(os.path.join(volumes, ".new-0123456789abcdef", "data"))  # a killed `volume create`'s
    os.makedirs(os.path.join(volumes, ".gone-fedcba9876543210", "data", "left"))  # a killed `volume rm`'s
    img_ok(h, "volume", "create", "mine")
    assert img_ok(h, "volume", "ls", "-q").stdout == "mine\n"
    assert img_ok(h, "volume", "prune", "-a", "-f").stdout == "removed volume mine\n"
    for name, text in theirs.items():
        with open(os.path.join(volumes, name)) as f:
            assert f.read() == text, name
    assert sorted(os.listdir(volumes)) == sorted({name.split("/")[0] for name in theirs})


@pytest.mark.parametrize("images", ["warm"], indirect=True)
def test_the_state_roots_own_directories_are_no_containers(images, busybox_archive):
    """The warm template's directory and the shim's state live in the default state root beside
    the containers (/run/mrun): named `warm` and `shim`, `system prune` took the template's
    for a container a create left ("removed container warm": its socket, pid and lock files
    gone) and failed on the shim's ("Is a directory"), writing a lock file into it. mrun's own
    names there begin with a dot, which no container id can (state.check_id), and every verb
    passes them over. The node's layout is played in the test's state root."""
    from mrun.shims import info
    from mrun.state import DEFAULT_ROOT
    from mrun.warm import client

    h = images
    with open(os.path.join(os.path.dirname(__file__), "..", "bin", "launcher.c")) as f:
        assert f'#define DEFAULT_DIR "{client.DEFAULT_DIR}"' in f.read()  # the native launcher's is the same
    warm_dir = os.path.join(h.root, os.path.relpath(client.DEFAULT_DIR, DEFAULT_ROOT))
    shim_ns = os.path.join(h.root, os.path.relpath(info.DEFAULT_STATE_ROOT, DEFAULT_ROOT), "k8s.io")
    assert not os.path.relpath(warm_dir, h.root).startswith("..") and not os.path.relpath(shim_ns, h.root).startswith(
        "..")
    os.makedirs(os.path.join(shim_ns, "task"))
    for name in ("lock", "state.json"):
        with open(os.path.join(shim_ns, "task", name), "w") as f:
            f.write("{}")
    env = {"MRUN_WARM_DIR": warm_dir}
    try:
        img_ok(h, "load", busybox_archive, IMAGE)  # the session's template (the fixture's check)
        img_ok(h, *run_args(h, "--rm", IMAGE, "true"), env=env)  # one comes up in the node's place
        sock = template_path({**os.environ, **h.base_env, **env})
        template = await_template(sock)["pid"]
        before = sorted(os.listdir(warm_dir)), sorted(os.listdir(os.path.dirname(shim_ns)))
        for verb in (["system", "prune", "-f"], ["container", "prune", "-f"], ["system", "prune", "-a", "-f"]):
            r = img_ok(h, *verb, env=env)
            assert "warm" not in r.stdout and "shim" not in r.stdout, r.stdout
        assert img_ok(h, "ps", "-a", "-q", env=env).stdout == ""
        assert json.loads(h.ok("list", "--format", "json").stdout or "[]") == []
        after = sorted(os.listdir(warm_dir)), sorted(os.listdir(os.path.dirname(shim_ns)))
        assert after == before and sorted(os.listdir(os.path.join(shim_ns, "task"))) == ["lock", "state.json"]
        assert (client.status(sock) or {}).get("pid") == template
    finally:
        stop_templates(warm_dir)
        shutil.rmtree(warm_dir)
        shutil.rmtree(os.path.dirname(shim_ns))


def test_docker_s_prune_forms_take_force_and_all(images, busybox_archive, tmp_path):
    """`docker image prune -af`, `system prune -af --volumes`, `volume prune -f`, `network prune
    -f`: the forms scripts use (docker asks first without -f). mrun said "Option '-f' requires an
    argument" (-f is --format for info and image ls) or "No such option". Now a prune's -f is
    --force, -a untags every image no container was made from (their data goes with prune), and
    --volumes takes the unused anonymous volumes; info's and image ls's -f stay --format. And
    `container prune --filter label=...` passed its filter over: every stopped container went.
    Now label, label! and until choose, and any other key is one line, removing nothing."""
    h = images
    env = {"MRUN_NETWORK_ROOT": str(tmp_path / "networks")}
    img_ok(h, "load", busybox_archive)
    img_ok(h, *run_args(h, "--name", "maker", IMAGE, "sh", "-c", "echo made > /made"))
    img_ok(h, "commit", "maker", "localhost/other:1")
    img_ok(h, "rm", "maker")
    img_ok(h, *run_args(h, "--name", "keeper", "-v", "/anon", IMAGE, "true"))  # stopped, kept: its image is used
    img_ok(h, "volume", "create", "named")
    try:
        for verb in (("volume", "prune", "-f"), ("network", "prune", "-f"), ("container", "prune", "-f", "--filter",
                                                                              "label=none"), ("image", "prune", "-f")):
            img_ok(h, *verb, env=env)
        assert "localhost/other" in img_ok(h, "images").stdout
        assert "keeper" in img_ok(h, "ps", "-a").stdout  # its label is not "none"
        one_line_error(img(h, "container", "prune", "-f", "--filter", "status=exited"), "status=exited")
        assert not img_ok(h, "container", "prune", "--filter", "until=1h").stdout  # keeper is younger
        assert "keeper" in img_ok(h, "ps", "-a").stdout
        assert img_ok(h, "info", "-f", "{{.Images}}").stdout.strip() == "2"
        listed = img_ok(h, "image", "ls", "-f", "{{.Repository}}").stdout.split()
        assert listed == ["localhost/busybox", "localhost/other"], listed
        pruned = img_ok(h, "system", "prune", "-af", "--volumes", env=env).stdout
        assert "untagged localhost/other:1" in pruned and "removed blob" in pruned, pruned
        assert img_ok(h, "image", "ls", "-f", "{{.Repository}}").stdout.split() == ["localhost/busybox"]
        kept = img_ok(h, "volume", "ls", "-q").stdout.split()
        assert "named" in kept and len(kept) == 2, kept  # and keeper's anonymous one: keeper uses it
        img_ok(h, "rm", "-v", "keeper")
        assert "untagged localhost/busybox:latest" in img_ok(h, "image", "prune", "-af").stdout
        assert not img_ok(h, "images", "-q").stdout.strip()
    finally:
        img(h, "rm", "-f", "-v", "keeper")
        img(h, "volume", "rm", "named")


def test_volumes_from_shares_another_container_s_volumes_as_docker_s(images, busybox_archive, tmp_path):
    """docker's --volumes-from CONTAINER[:ro|rw] (its backup recipe: `run --rm --volumes-from db
    -v $(pwd):/backup busybox tar cvf /backup/db.tar /data`): the container's bind mounts and
    volumes at the same places, each as it was there (a read-only bind stays so) or all ro/rw;
    not the files mrun made for it (hosts, hostname) nor its --init. mrun had no such flag."""
    h = images
    img_ok(h, "load", busybox_archive)
    host = tmp_path / "host"
    host.mkdir()
    (host / "x").write_text("from the host\n")
    backup = tmp_path / "backup"
    backup.mkdir()
    img_ok(h, *run_args(h, "--name", "db", "--init", "-v", f"{host}:/h:ro", "-v", "dbdata:/data", "-v", "/anon",
                        IMAGE, "sh", "-c", "echo kept > /data/f; echo anon > /anon/f"))
    try:
        r = img_ok(h, *run_args(h, "--rm", "--volumes-from", "db", "-v", f"{backup}:/backup", IMAGE, "sh", "-c",
                                "cat /h/x /data/f /anon/f; tar cf /backup/db.tar /data; touch /data/new; "
                                "touch /h/y || echo h is ro; test -e /sbin/docker-init || echo no init"))
        assert r.stdout == "from the host\nkept\nanon\nh is ro\nno init\n", r.stdout
        with tarfile.open(backup / "db.tar") as tar:
            assert "data/f" in tar.getnames()
        r = img(h, *run_args(h, "--rm", "--volumes-from", "db:ro", IMAGE, "touch", "/data/other"))
        assert r.returncode != 0 and "Read-only file system" in r.stderr
        r = img_ok(h, *run_args(h, "--rm", "--volumes-from", "db:rw", IMAGE, "sh", "-c", "touch /h/rw && echo rw"))
        assert r.stdout == "rw\n" and (host / "rw").exists()
        img_ok(h, *run_args(h, "-d", "--name", "sharer", "--volumes-from", "db", IMAGE, "sleep", "600"))
        assert sorted(json.loads(img_ok(h, "volume", "inspect", "dbdata").stdout)[0]["containers"]) == ["db", "sharer"]
        mounts = img_ok(h, "ps", "-a", "--filter", "name=db", "--format", "{{.Mounts}}").stdout.strip().split(",")
        assert str(host) in mounts and len(mounts) == 3 and not any("init" in m for m in mounts), mounts
        one_line_error(img(h, *run_args(h, "--rm", "--volumes-from", "nosuch", IMAGE, "true")), "nosuch")
        one_line_error(img(h, *run_args(h, "--rm", "--volumes-from", "db:rx", IMAGE, "true")), "--volumes-from 'db:rx'")
    finally:
        img(h, "rm", "-f", "-v", "sharer")
        img(h, "rm", "-v", "db")
        img(h, "volume", "rm", "dbdata")


def test_system_df_as_docker(images, busybox_archive):
    """docker's `system df` (and -v, --format): what images, containers and volumes take on disk
    and what a prune gives back; mrun refused the verb. An image a container was made from is not
    reclaimable, one no container uses is (its own parts: what `image prune -a` removes); a
    container's writable layer counts, a stopped one's is reclaimable; a volume no container
    mounts is."""
    h = images
    img_ok(h, "load", busybox_archive)
    img_ok(h, *run_args(h, "-d", "--name", "up", IMAGE, "sh", "-c", "head -c 300000 /dev/zero > /big; sleep 600"))
    img_ok(h, *run_args(h, "--name", "down", "-v", "used:/data", IMAGE, "sh", "-c",
                        "head -c 200000 /dev/zero > /data/f; head -c 100000 /dev/zero > /small"))
    img_ok(h, "volume", "create", "spare")
    with open(os.path.join(h.image_root, "volumes", "spare", "data", "f"), "wb") as f:
        f.write(b"\0" * 50000)
    img_ok(h, "commit", "down", "localhost/committed:1")
    deadline = time.monotonic() + 10
    while not os.path.exists(os.path.join(h.image_root, "containers", "up", "upper", "big")) or \
            os.path.getsize(os.path.join(h.image_root, "containers", "up", "upper", "big")) < 300000:
        assert time.monotonic() < deadline
        time.sleep(0.05)

    def summary() -> dict[str, dict[str, str]]:
        rows = [json.loads(line) for line in img_ok(h, "system", "df", "--format", "json").stdout.splitlines()]
        return {row["Type"]: row for row in rows}

    rows = summary()
    assert list(rows) == ["Images", "Containers", "Local Volumes", "Build Cache"]
    assert {k: rows["Containers"][k] for k in ("TotalCount", "Active", "Size", "Reclaimable")} == \
        {"TotalCount": "2", "Active": "1", "Size": "400kB", "Reclaimable": "100kB (25%)"}
    assert {k: rows["Local Volumes"][k] for k in ("TotalCount", "Active", "Size", "Reclaimable")} == \
        {"TotalCount": "2", "Active": "1", "Size": "250kB", "Reclaimable": "50kB (20%)"}
    assert (rows["Images"]["TotalCount"], rows["Images"]["Active"]) == ("2", "1")
    assert rows["Build Cache"]["Size"] == "0B"
    verbose = json.loads(img_ok(h, "system", "df", "-v", "--format", "json").stdout)
    committed = next(i for i in verbose["Images"] if i["Repository"] == "localhost/committed")
    busybox = next(i for i in verbose["Images"] if i["Repository"] != "localhost/committed")
    assert committed["Containers"] == "0" and busybox["Containers"] == "2"
    assert committed["SharedSize"] == busybox["SharedSize"] != "0B"  # the busybox layer, in both
    assert rows["Images"]["Reclaimable"].split()[0] == committed["UniqueSize"]  # what image prune -a removes
    assert {c["Names"]: c["LocalVolumes"] for c in verbose["Containers"]} == {"up": "0", "down": "1"}
    assert {v["Name"]: v["Links"] for v in verbose["Volumes"]} == {"used": "1", "spare": "0"}
    table = img_ok(h, "system", "df").stdout.splitlines()
    assert table[0].split() == ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
    assert table[2].split()[:3] == ["Containers", "2", "1"]
    tables = img_ok(h, "system", "df", "-v").stdout
    for title in ("Images space usage:", "Containers space usage:", "Local Volumes space usage:",
                  "Build cache usage: 0B"):
        assert title in tables
    one_line_error(img(h, "system", "df", "-v", "--format", "{{.Type}}"), "-v")
    img_ok(h, "image", "prune", "-af")
    img_ok(h, "container", "prune", "-f")
    img_ok(h, "volume", "prune", "-af")
    rows = summary()
    assert (rows["Images"]["TotalCount"], rows["Images"]["Reclaimable"]) == ("1", "0B (0%)")
    assert rows["Containers"]["TotalCount"] == "1" and rows["Containers"]["Reclaimable"] == "0B (0%)"
    assert rows["Local Volumes"]["TotalCount"] == "0"
    img_ok(h, "rm", "-f", "up")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_a_long_write_ended_by_a_signal_takes_its_partial_files_along(images, busybox_archive, signum):
    """`timeout 60 mrun import big.tar NAME` (SIGTERM), a terminal closed under `mrun cp - c:/dir`
    (SIGHUP): the verb died where it was, leaving its partial layer (gigabytes, for an endless
    stream) or staging directory in the image root until a prune came. ^C already ended them
    through their clean-up; SIGTERM and SIGHUP now do the same (status 128+N)."""
    h = images
    img_ok(h, "load", busybox_archive)
    img_ok(h, *run_args(h, "-d", "--name", "target", IMAGE, "sleep", "60"))
    base = [h.binary, "--root", h.root, "--image-root", h.image_root]
    blobs = os.path.join(h.image_root, "blobs", "sha256")
    # a tarball of one 64 GiB file of zeros, sparse on disk: import takes it whole (/dev/zero,
    # no tarball, it now refuses after 16 MiB); cp's stream is read to its end, as docker's
    huge = os.path.join(h.tmp, "huge.tar")
    info = tarfile.TarInfo("huge")
    info.size = 64 << 30
    with open(huge, "wb") as f:
        f.write(info.tobuf(tarfile.GNU_FORMAT))
        f.truncate(tarfile.BLOCKSIZE + info.size)
    try:
        for argv, stream, left in ((["import", "-", "localhost/endless:1"], huge,
                                    lambda: glob.glob(f"{blobs}/commit-*.layer")),
                                   (["cp", "-", "target:/tmp"], "/dev/zero",
                                    lambda: glob.glob(f"{h.image_root}/cp-*.in"))):
            with open(stream, "rb") as zeros:
                caller = subprocess.Popen([*base, *argv], stdin=zeros, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.PIPE, env={**os.environ, **h.base_env})
            deadline = time.monotonic() + 20
            while not left():
                assert time.monotonic() < deadline and caller.poll() is None, (argv, caller.poll())
                time.sleep(0.02)
            time.sleep(0.2)
            caller.send_signal(signum)
            _out, err = caller.communicate(timeout=20)
            assert caller.returncode == 128 + signum, (argv, caller.returncode, err)
            deadline = time.monotonic() + 10  # warm: the template's child ends a moment after its caller
            while left():
                assert time.monotonic() < deadline, (argv, left())
                time.sleep(0.05)
    finally:
        img(h, "rm", "-f", "target")
    assert not h.leftovers()


def test_import_as_docker(images, busybox_archive, tmp_path):
    """docker's `import`: `mrun export C | mrun import - NAME` flattens a container into an image
    of one layer (also from a file, plain or gzip, bzip2, xz or zstd), with --change and -m; mrun
    had no import. A hostile tarball (`../`) is refused as a hostile layer is, in one line, and
    leaves neither blob nor layer; so does one cut short."""
    import bz2
    import gzip
    import lzma

    import zstandard

    h = images
    img_ok(h, "load", busybox_archive)
    img_ok(h, *run_args(h, "--name", "src", IMAGE, "sh", "-c", "echo made > /made"))
    exported = tmp_path / "src.tar"
    with open(exported, "wb") as out:
        assert subprocess.run([h.binary, "--root", h.root, "--image-root", h.image_root, "export", "src"],
                              stdout=out, env={**os.environ, **h.base_env}, timeout=60).returncode == 0
    plain = exported.read_bytes()
    with open(exported, "rb") as f:
        made = subprocess.run([h.binary, "--root", h.root, "--image-root", h.image_root, "import", "-",
                               "-c", 'CMD ["cat", "/made"]', "-m", "flattened", "flat:1"], stdin=f,
                              capture_output=True, text=True, env={**os.environ, **h.base_env}, timeout=60)
    assert made.returncode == 0 and made.stdout.startswith("sha256:"), made.stderr
    assert img_ok(h, *run_args(h, "--rm", "flat:1")).stdout == "made\n"
    image = json.loads(img_ok(h, "image", "inspect", "flat:1").stdout)
    assert len(image["config"]["rootfs"]["diff_ids"]) == 1  # flattened: one layer, busybox's and the change
    assert image["config"]["config"] == {"Cmd": ["cat", "/made"]}
    history = img_ok(h, "history", "flat:1").stdout
    assert "mrun import" in history and "flattened" in history
    for tag, data in (("gz", gzip.compress(plain)), ("bz2", bz2.compress(plain)), ("xz", lzma.compress(plain)),
                      ("zst", zstandard.ZstdCompressor().compress(plain))):
        path = tmp_path / f"src.tar.{tag}"
        path.write_bytes(data)
        img_ok(h, "image", "import", str(path), f"flat:{tag}")
        assert img_ok(h, *run_args(h, "--rm", f"flat:{tag}", "cat", "/made")).stdout == "made\n", tag
    blobs = os.path.join(h.image_root, "blobs", "sha256")
    layers = os.path.join(h.image_root, "layers")
    before = (sorted(os.listdir(blobs)), sorted(os.listdir(layers)))
    hostile = tmp_path / "hostile.tar"
    with tarfile.open(hostile, "w") as tar:
        info = tarfile.TarInfo("../escaped")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(gzip.compress(plain)[:5000])
    for path, words in ((hostile, "'..'"), (cut, "not a whole tarball"), (tmp_path / "none.tar", "No such file")):
        one_line_error(img(h, "import", str(path), "bad:1"), words)
        assert (sorted(os.listdir(blobs)), sorted(os.listdir(layers))) == before, path
    assert not os.path.exists(tmp_path.parent / "escaped")
    one_line_error(img(h, "import", str(exported)), "name the new image")
    # an endless stream (/dev/zero, a URL that never ends) was copied until the disk was full:
    # after the archive's end, 16 MiB at most; a block that is no tar header, refused at once
    base = [h.binary, "--root", h.root, "--image-root", h.image_root, "import"]
    env = {**os.environ, **h.base_env}
    for stream, words in (("/dev/zero", "more than 16 MiB after the tarball's end"),
                          ("/dev/urandom", "not a tar archive (the block at byte 0 is no tar header)")):
        with open(stream, "rb") as endless:
            r = subprocess.run([*base, "-", "endless:1"], stdin=endless, capture_output=True, text=True, env=env,
                               timeout=60)
        one_line_error(r, words)
        assert (sorted(os.listdir(blobs)), sorted(os.listdir(layers))) == before, stream
    # a writer's record padding after the end is taken: GNU tar's 1 MiB records (-b 2048)
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "f").write_text("padded\n")
    padded = tmp_path / "padded.tar"
    subprocess.run(["tar", "-cf", str(padded), "-b", "2048", "-C", str(tmp_path / "dir"), "."], check=True)
    assert padded.stat().st_size == 1 << 20
    img_ok(h, "import", str(padded), "padded:1")
    img_ok(h, "rmi", "padded:1")
    img_ok(h, "rm", "src")


def test_ps_latest_last_size_and_no_trunc_as_docker(images, busybox_archive):
    """docker's `ps -l` (a script's `docker rm $(docker ps -lq)`), `-n N` (the N created last,
    in every state, newest first), `-s` (each one's writable layer, and with its image: virtual)
    and `--no-trunc` (the command whole): mrun refused them as unknown flags."""
    h = images
    img_ok(h, "load", busybox_archive)
    long_command = "echo " + "x" * 60
    img_ok(h, *run_args(h, "--name", "first", IMAGE, "sh", "-c", long_command))
    img_ok(h, *run_args(h, "-d", "--name", "second", IMAGE, "sh", "-c",
                        "head -c 300000 /dev/zero > /big; sleep 600"))
    img_ok(h, *run_args(h, "--name", "third", IMAGE, "true"))
    assert img_ok(h, "ps", "-lq").stdout.split() == ["third"]  # stopped, yet the latest
    assert img_ok(h, "container", "ls", "-lq").stdout.split() == ["third"]  # docker's longer name
    assert img_ok(h, "ps", "-q", "-n", "2").stdout.split() == ["third", "second"]
    assert img_ok(h, "ps", "-n", "5", "--format", "{{.Names}}").stdout.split() == ["third", "second", "first"]
    assert long_command not in img_ok(h, "ps", "-a").stdout
    assert long_command in img_ok(h, "ps", "-a", "--no-trunc").stdout
    deadline = time.monotonic() + 10
    while "300kB (virtual" not in (sized := img_ok(h, "ps", "-s", "--format", "{{.Names}} {{.Size}}").stdout):
        assert time.monotonic() < deadline, sized
        time.sleep(0.1)
    assert sized.split()[:2] == ["second", "300kB"]
    table = img_ok(h, "ps", "-a", "-s").stdout.splitlines()
    assert table[0].split()[-1] == "SIZE" and any(line.startswith("first ") and "0B (virtual" in line
                                                  for line in table)
    one_line_error(img(h, "ps", "-l", "second"), "lists containers")  # runc's ps ID: its processes
    # docker's `inspect -s` (was "No such option"): SizeRw, SizeRootFs in bytes
    rw, root = img_ok(h, "inspect", "-s", "-f", "{{.SizeRw}} {{.SizeRootFs}}", "second").stdout.split()
    assert 300000 <= int(rw) < 400000 and int(root) > int(rw), (rw, root)
    doc = json.loads(img_ok(h, "inspect", "--size", "second").stdout)
    assert doc["size_rw"] == int(rw) and doc["size_root_fs"] == int(root)
    assert "size_rw" not in json.loads(img_ok(h, "inspect", "second").stdout)  # counted only when asked
    img_ok(h, "rm", "-f", "first", "second", "third")


def test_per_device_block_io_limits_as_docker(images, busybox_archive):
    """docker's --device-read-bps, --device-write-bps, --device-read-iops, --device-write-iops
    and --blkio-weight-device, DEVICE:VALUE each: the container's cgroup limits that device's I/O
    (blkio's throttle files on v1, io.max on v2); mrun refused them as unknown flags. A path that
    is no block device, or a rate that is no number, is refused naming the flag; a weight the host
    has no file for is dropped with docker's warning, and one its device cannot take (bfq's
    file, a device on another scheduler: EOPNOTSUPP) refused in one line naming the field, as
    runc fails to write it, leaving nothing."""
    h = images
    img_ok(h, "load", busybox_archive)
    device = next(path for path in (f"/dev/{name}" for name in sorted(os.listdir("/sys/block")))
                  if os.path.exists(path) and stat.S_ISBLK(os.stat(path).st_mode))
    numbers = f"{os.major(os.stat(device).st_rdev)}:{os.minor(os.stat(device).st_rdev)}"
    weight = ["--blkio-weight-device", f"{device}:300"]
    r = img(h, *run_args(h, "--rm", *weight, IMAGE, "true"))
    if r.returncode:  # the host's weight file refuses this device
        one_line_error(r, "linux.resources.blockIO.weightDevice", f"'{numbers} 300'", "not supported")
        assert img_ok(h, "ps", "-aq").stdout == ""
        weight = []
    r = img_ok(h, *run_args(h, "-d", "--name", "limited", "--device-read-bps", f"{device}:1mb",
                            "--device-write-bps", f"{device}:2mb", "--device-read-iops", f"{device}:100",
                            "--device-write-iops", f"{device}:200", *weight, IMAGE, "sleep", "600"))
    found: dict[str, str] = {}
    for parent in cgroup_dirs(h.cgroup_parent):
        for where, _dirs, files in os.walk(parent):
            for name in files:
                if name in ("blkio.throttle.read_bps_device", "blkio.throttle.write_bps_device", "io.max",
                            "blkio.throttle.read_iops_device", "blkio.throttle.write_iops_device",
                            "blkio.weight_device", "blkio.bfq.weight_device"):
                    with open(os.path.join(where, name)) as f:
                        text = f.read().strip()
                    if text and where != parent:
                        found[name] = text
    if "io.max" in found:  # cgroup v2: one line per device
        assert found["io.max"] == f"{numbers} rbps=1048576 wbps=2097152 riops=100 wiops=200", found
    else:
        assert {k: v for k, v in found.items() if k.startswith("blkio.throttle.")} == {
            "blkio.throttle.read_bps_device": f"{numbers} 1048576",
            "blkio.throttle.write_bps_device": f"{numbers} 2097152",
            "blkio.throttle.read_iops_device": f"{numbers} 100", "blkio.throttle.write_iops_device": f"{numbers} 200"}
    weighted = any(k in found for k in ("blkio.weight_device", "blkio.bfq.weight_device"))
    assert weighted or "--blkio-weight-device discarded" in r.stderr or not weight, (found, r.stderr)
    img_ok(h, "rm", "-f", "limited")
    for flags, needles in (
        (["--device-read-bps", "/etc/passwd:1mb"], ["--device-read-bps", "a path under /dev/"]),
        (["--device-write-bps", "/dev/null:1mb"], ["/dev/null is not a block device"]),
        (["--device-read-bps", f"{device}:fast"], ["--device-read-bps", "invalid size"]),
        (["--device-write-iops", f"{device}:1.5"], ["--device-write-iops", "operations per second"]),
        (["--blkio-weight-device", f"{device}:5"], ["--blkio-weight-device", "10 to 1000"]),
        (["--device-read-iops", "/dev/nosuch:5"], ["/dev/nosuch: No such file or directory"]),
    ):
        one_line_error(img(h, *run_args(h, "--rm", *flags, IMAGE, "true")), *needles)
    assert img_ok(h, "ps", "-aq").stdout == ""


def test_run_and_exec_leave_the_caller_s_own_files_the_caller_s(images, busybox_archive, tmp_path):
    """runc makes the streams it is handed the process's user's (fixStdioPermissions), and mrun
    does for its runc verbs, its shim and a detached container's log pipes. docker's front end
    hands `run` and `exec` the caller's own files: `mrun run --user 1000 IMAGE > out.txt` must
    not give out.txt to uid 1000, as docker (whose container writes to dockerd's pipes) never
    does. A detached container, writing to its supervisor's pipes, opens /dev/stdout again."""
    h = images
    img_ok(h, "load", busybox_archive)
    cid = h.cid("own")
    env = {**os.environ, **h.base_env}
    for args in (run_args(h, "--rm", "--user", "1000", IMAGE, "sh", "-c", "echo out"),
                 run_args(h, "-d", "--name", cid, IMAGE, "sleep", "600"),
                 ["exec", "--user", "1000", cid, "sh", "-c", "echo out"]):
        out = tmp_path / "out.txt"
        with open(out, "w") as f:
            r = subprocess.run([h.binary, "--root", h.root, "--image-root", h.image_root, *args], stdout=f,
                               stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, timeout=60, env=env)
        assert r.returncode == 0, r.stderr
        assert os.stat(out).st_uid == 0, (args, os.stat(out))
    img_ok(h, "rm", "-f", cid)
    img_ok(h, *run_args(h, "-d", "--name", cid, "--user", "1000", IMAGE, "sh", "-c",
                        "echo out > /dev/stdout && echo err > /dev/stderr && sleep 600"))
    deadline = time.monotonic() + 10
    while (logs := img(h, "logs", cid)).stdout != "out\n" or logs.stderr != "err\n":
        assert time.monotonic() < deadline, logs
        time.sleep(0.05)
    img_ok(h, "rm", "-f", cid)

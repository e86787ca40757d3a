"""Bad input: one clear line, a non-zero exit, and nothing left behind (the fixture checks for
state dirs, cgroups, mounts and processes after every test)."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from conftest import one_line_error, open_to_others


def test_malformed_config_json(h):
    bundle = h.bundle(["true"])
    with open(os.path.join(bundle, "config.json"), "w") as f:
        f.write('{"ociVersion": "1.0.2", "process": {"args": ["true"],}}')
    one_line_error(h.mrun("create", "-b", bundle, h.cid()), "config.json", "not valid JSON", "line 1")


def test_json_nested_past_python_s_stack_is_one_line(h, tmp_path):
    """Arrays nested 100000 deep in an unknown field of config.json (or in an exec's process
    file): Python's decoder ran out of stack, and create said "internal error: RecursionError".
    Go's decoder refuses past 10000 levels; mrun refuses past 128 (jsonio.MAX_DEPTH: what reads
    a document recursively, a pretty-printer or a copy, runs out of stack far sooner than the
    decoder), as JSON it cannot read, at the place it nests deepest."""
    bundle = h.bundle(["true"])
    text = json.dumps(h.config(["true"]))
    content = text[:-1] + ', "deep": ' + "[" * 100000 + "]" * 100000 + "}"
    with open(os.path.join(bundle, "config.json"), "w") as f:
        f.write(content)
    r = h.mrun("create", "-b", bundle, h.cid())
    one_line_error(r, "config.json", "not valid JSON", "nested more than", f"column {content.rindex('[') + 1}")
    cid = h.cid()
    h.ok("create", "-b", h.bundle(["sleep", "60"]), cid)
    process = tmp_path / "process.json"
    process.write_text('{"args": ["true"], "cwd": "/", "x": ' + "{\"a\": " * 100000 + "1" + "}" * 100000 + "}")
    one_line_error(h.mrun("exec", "--process", str(process), cid), "nested more than")
    h.ok("delete", "--force", cid)


def test_numbers_json_has_not_are_refused_as_go_s_decoder_refuses_them(h):
    """NaN, Infinity and -Infinity are Python's, not JSON's: Go's decoder (runc's) refuses them
    as a syntax error, and mrun took them, in an unknown field without a word. A number past a
    double's range was float's inf, which a field read as a duration or a size carried on (a
    health check's interval once killed its supervisor): RFC 8259 lets a reader limit the range,
    and mrun refuses it where runc ignores it in a field it does not know."""
    for text, needle in (("NaN", "NaN is no JSON value"), ("-Infinity", "-Infinity is no JSON value"),
                         ("1e400", "the number 1e400 is out of a double's range")):
        bundle = h.bundle(["true"])
        content = json.dumps(h.config(["true"]))[:-1] + f', "unknownField": {{"n": {text}}}}}'
        with open(os.path.join(bundle, "config.json"), "w") as f:
            f.write(content)
        column = f"column {content.index(text) + 1}"
        one_line_error(h.mrun("create", "-b", bundle, h.cid()), "config.json", needle, column)
    assert not os.path.isdir(h.root) or not os.listdir(h.root)


def test_config_with_wrong_types_names_the_field(h):
    cfg = h.config(["true"])
    cfg["process"]["user"]["uid"] = "root"
    one_line_error(h.mrun("run", "-b", h.bundle(config=cfg), h.cid()), "process.user.uid", "integer")


def test_missing_rootfs(h):
    cfg = h.config(["true"])
    cfg["root"]["path"] = os.path.join(h.tmp, "no-such-rootfs")
    one_line_error(h.mrun("create", "-b", h.bundle(config=cfg), h.cid()), "root.path", "not a directory")


def test_missing_bundle(h):
    one_line_error(h.mrun("create", "-b", os.path.join(h.tmp, "nothing-here"), h.cid()), "config.json")


@pytest.mark.parametrize("verb", [["state"], ["start"], ["kill"], ["delete"], ["pause"], ["ps"], ["exec"]])
def test_unknown_container_id(h, verb):
    args = [*verb, "ghost"] + (["true"] if verb == ["exec"] else [])
    one_line_error(h.mrun(*args), "'ghost'", "does not exist")


def test_delete_force_of_unknown_id_is_quiet(h):
    assert h.mrun("delete", "--force", "ghost").returncode == 0


def test_invalid_container_id(h):
    one_line_error(h.mrun("create", "-b", h.bundle(["true"]), "../escape"), "invalid container id")


def test_duplicate_id_keeps_the_first_container(h):
    cid = h.cid()
    h.ok("create", "-b", h.bundle(["sleep", "60"]), cid)
    one_line_error(h.mrun("create", "-b", h.bundle(["sleep", "60"]), cid), cid, "already exists")
    assert h.status(cid) == "created"
    h.ok("delete", cid)


def test_invalid_signal(h):
    cid = h.cid()
    h.ok("run", "-d", "-b", h.bundle(["sleep", "60"]), cid)
    one_line_error(h.mrun("kill", cid, "SIGNOPE"), "invalid signal", "SIGNOPE")
    one_line_error(h.mrun("kill", cid, "99"), "invalid signal")
    assert h.status(cid) == "running"
    h.ok("delete", "--force", cid)


def test_unknown_namespace_type(h):
    cfg = h.config(["true"])
    cfg["linux"]["namespaces"].append({"type": "warp"})
    one_line_error(h.mrun("create", "-b", h.bundle(config=cfg), h.cid()), "linux.namespaces[6].type", "warp")


@pytest.mark.parametrize("program", ["/bin/nope", "n" * 300, "/bin/" + "n" * 300])
def test_missing_executable_fails_create(h, program):
    """A name past NAME_MAX is not found either (it was "[Errno 36] File name too long", naming a
    directory of $PATH). A path is missing in runc's words (Go's exec.LookPath: "stat PATH: no
    such file or directory"), which podman turns into 127 as it does "not found" for a name."""
    words = "no such file or directory" if "/" in program else "executable file not found in $PATH"
    one_line_error(h.mrun("create", "-b", h.bundle([program]), h.cid()), program, words)


def test_a_command_linked_out_of_the_rootfs_is_looked_at_inside_it(h, tmp_path):
    """A hostile image's command is a symbolic link to a host path (absolute, or climbing out
    with ../): why it cannot run is decided inside the container's root, so the refusal says
    nothing of the host's files: "no such file or directory" for a host directory and a host file
    that exist, as for a path that exists nowhere."""
    from conftest import make_rootfs

    rootfs = str(tmp_path / "rootfs")
    make_rootfs(rootfs)
    host_file = tmp_path / "host-only"
    host_file.write_text("")
    links = {"/abs-dir": str(tmp_path), "/abs-file": str(host_file), "/climb": "../../../../../../" + str(host_file),
             "/nowhere": "/no/such/place"}
    for name, target in links.items():
        os.symlink(target, rootfs + name)
    for name in links:
        cfg = h.config([name])
        cfg["root"]["path"] = rootfs
        r = h.mrun("create", "-b", h.bundle(config=cfg), h.cid())
        one_line_error(r, f"exec: '{name}': stat {name}: no such file or directory")
    assert host_file.read_text() == "" and os.path.isdir(tmp_path)  # the host's files untouched


@pytest.mark.parametrize(
    ("section", "value", "needle"),
    [("cpu", {"cpus": "4096"}, "linux.resources.cpu.cpus"), ("memory", {"limit": -5}, "linux.resources.memory.limit")],
)
def test_unsatisfiable_cgroup_setting_leaves_no_cgroup(h, section, value, needle):
    """The kernel's refusal names the field asked for (it named only the cgroup file)."""
    cfg = h.config(["true"])
    cfg["linux"]["resources"][section] = value
    one_line_error(h.mrun("create", "-b", h.bundle(config=cfg), h.cid()), needle)


def test_joining_a_missing_namespace_path(h):
    cfg = h.config(["true"])
    cfg["linux"]["namespaces"].append({"type": "user", "path": "/proc/999999999/ns/user"})
    cfg["linux"]["namespaces"] = [ns for ns in cfg["linux"]["namespaces"] if ns["type"] != "user"] + [
        {"type": "user", "path": "/proc/999999999/ns/user"}
    ]
    one_line_error(h.mrun("create", "-b", h.bundle(config=cfg), h.cid()), "user namespace", "/proc/999999999")


def test_bad_mount_is_reported_with_its_index(h):
    cfg = h.config(["true"])
    cfg["mounts"].append({"destination": "/data", "type": "bind", "source": "/no/such/dir", "options": ["rbind"]})
    one_line_error(h.mrun("create", "-b", h.bundle(config=cfg), h.cid()), f"mounts[{len(cfg['mounts']) - 1}]")


def test_bad_exec_process_file(h):
    cid = h.cid()
    h.ok("run", "-d", "-b", h.bundle(["sleep", "60"]), cid)
    pfile = os.path.join(h.tmp, "p.json")
    with open(pfile, "w") as f:
        json.dump({"args": []}, f)
    one_line_error(h.mrun("exec", "--process", pfile, cid), "process.args")
    assert h.status(cid) == "running"
    assert len(json.loads(h.ok("ps", "-f", "json", cid).stdout)) == 1
    h.ok("delete", "--force", cid)


def test_usage_errors_go_through_typer_and_a_runc_verbs_exit_as_runc_s(h, tmp_path):
    """typer's words; a runc verb's usage error exits 1 as runc's does, and is in --log too, where
    containerd's runc shim reads why a call failed (it said "exit status 2" and no more). An
    unknown verb, or a docker-like verb's usage error, stays click's 2; a flag a docker-like verb
    cannot take is docker's one line and 125."""
    r = h.mrun("create")
    assert r.returncode == 1 and "Missing argument" in r.stderr
    log = tmp_path / "log.json"
    r = h.mrun("--log", str(log), "--log-format", "json", "create", "--bogus", "x")
    assert r.returncode == 1 and "No such option" in r.stderr, r
    last = json.loads(log.read_text().splitlines()[-1])
    assert last["level"] == "error" and "--bogus" in last["msg"], last
    r = h.mrun("frobnicate")
    assert r.returncode == 2 and "No such command" in r.stderr
    for args, flag in ((("images", "--bogus"), "--bogus"), (("stop", "-t", "soon", "x"), "-t"),
                       (("volume", "ls", "--bogus"), "--bogus"), (("ps", "-n", "abc"), "--last"),
                       (("update", "--pids-limit", "abc", "x"), "--pids-limit"),
                       # int() (click's INT, and the fast parser's) took "৯" as 9 and "1_0" as 10,
                       # which Go's Atoi (docker's, runc's) refuses
                       (("ps", "-n", "৯"), "--last"), (("ps", "-n", "1_0"), "--last"),
                       (("update", "--pids-limit", " 5", "x"), "--pids-limit")):
        r = h.mrun(*args)  # docker's CLI: one line, 125, for a flag it cannot take
        assert r.returncode == 125 and r.stderr.count("\n") == 1 and flag in r.stderr, r
    r = h.mrun("create", "--preserve-fds", "৯", "-b", h.bundle(), h.cid())
    assert r.returncode == 1 and "'--preserve-fds': '৯' is not a valid integer" in r.stderr, r
    for verb in ("ps", "update"):  # runc's ps and update (their callers pass --log): runc's 1
        r = h.mrun("--log", str(log), verb, "--bogus", "x")
        assert r.returncode == 1 and "No such option" in r.stderr, r
    r = h.mrun("images", "x", "y")
    assert r.returncode == 2 and "Usage:" in r.stderr  # no flag: click's usage


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        (lambda c: c["linux"]["resources"].update(memory={"limit": 2**80}), "linux.resources.memory.limit"),
        # a limit the kernel refuses (nofile past fs.nr_open): runc's create fails ("error setting
        # rlimits for ready process"); mrun's failed at start, which said so and exited 0
        (lambda c: c["process"].update(rlimits=[{"type": "RLIMIT_NOFILE", "hard": 2**64 - 1, "soft": 2**64 - 1}]),
         "process.rlimits"),
        (lambda c: c["process"]["user"].update(uid=2**40), "process.user.uid"),
        (lambda c: c["process"]["user"].update(umask=2**40), "process.user.umask"),
        (lambda c: c["process"].update(rlimits=[{"type": "RLIMIT_NOFILE", "hard": 2**70, "soft": 1}]),
         "process.rlimits[0].hard"),
        (lambda c: c["process"].update(env=["A=b\x00c"]), "process.env[0]"),
        (lambda c: c["process"].update(args=["sh\x00", "-c"]), "process.args[0]"),
        (lambda c: c["process"].update(oomScoreAdj=5000), "process.oomScoreAdj"),
        # (uid_t)-1 is "unchanged" to setresuid: the process ran as root (containerd's CVE-2024-40635)
        (lambda c: c["process"]["user"].update(uid=2**32 - 1), "process.user.uid"),
        (lambda c: c["process"]["user"].update(gid=2**31), "process.user.gid"),
        (lambda c: c["process"]["user"].update(additionalGids=[5, 2**32 - 1]), "process.user.additionalGids[1]"),
        # struct winsize is 16-bit: "ushort format requires 0 <= number <= 65535" from the sandbox
        (lambda c: c["process"].update(terminal=True, consoleSize={"height": 70000, "width": 80}),
         "process.consoleSize.height"),
        # setgroups' EINVAL surfaced as "container ID: too many groups"
        (lambda c: c["process"]["user"].update(additionalGids=list(range(70000))), "process.user.additionalGids"),
        (lambda c: c["process"].update(rlimits=[{"type": "RLIMIT_NOFILE"}]), "process.rlimits[0].hard"),
        (lambda c: c["linux"].update(devices=[{"type": "c"}]), "linux.devices[0].path"),
        # a number past the kernel's dev_t: mknod would truncate it into another device's; the
        # device filter (v2) cannot compare it (it was an internal error there, EINVAL from v1)
        (lambda c: c["linux"].update(devices=[{"path": "/dev/x", "type": "c", "major": 2**40, "minor": 1}]),
         "linux.devices[0].major"),
        (lambda c: c["linux"].update(devices=[{"path": "/dev/x", "type": "c", "major": 1, "minor": 1 << 20}]),
         "linux.devices[0].minor"),
        (lambda c: c["linux"]["resources"]["devices"].append({"allow": True, "type": "c", "major": 4096}),
         "linux.resources.devices[1].major"),
        # the runtime-spec: a hook's timeout MUST be greater than zero (-1 was "timed out after -1s")
        (lambda c: c.update(hooks={"prestart": [{"path": "/bin/true", "timeout": -1}]}), "hooks.prestart[0].timeout"),
        (lambda c: c.update(hooks={"poststop": [{"path": "/bin/true", "timeout": 0}]}), "hooks.poststop[0].timeout"),
        # environ's form, as process.env: was "internal error: ValueError: dictionary update sequence"
        (lambda c: c.update(hooks={"prestart": [{"path": "/bin/true", "env": ["A=1", "NOEQ"]}]}),
         "hooks.prestart[0].env[1]: must be KEY=VALUE"),
        # runc's check (an empty name): it reached execve, which Python refuses, and the init
        # failed with "illegal environment variable name", naming no field
        (lambda c: c["process"].update(env=["PATH=/bin", "=x"]), "process.env[1]: must be KEY=VALUE with a name"),
        # the runtime-spec: duplicated rlimits types MUST be an error (runc 1.1 applies both, the last winning)
        (lambda c: c["process"].update(rlimits=[{"type": "RLIMIT_NOFILE", "soft": 20, "hard": 20},
                                                {"type": "RLIMIT_NOFILE", "soft": 10, "hard": 10}]),
         "process.rlimits[1].type: RLIMIT_NOFILE is listed twice"),
        # cgroup v1 clamps cpu.shares to 2..262144 without a word; runc reads it back and refuses
        (lambda c: c["linux"].update(resources={"cpu": {"shares": 10**12}}), "linux.resources.cpu.shares"),
        (lambda c: c["linux"].update(resources={"cpu": {"shares": 1}}), "linux.resources.cpu.shares"),
        # a new user namespace with nothing mapped: "[Errno 22] Invalid argument" from the
        # uid_map write, naming nothing (runc: "User namespaces enabled, but no uid mappings found")
        (lambda c: c["linux"]["namespaces"].append({"type": "user"}), "linux.uidMappings"),
        (lambda c: (c["linux"]["namespaces"].append({"type": "user"}),
                    c["linux"].update(uidMappings=[{"containerID": 0, "hostID": 100000, "size": 65536}])),
         "linux.gidMappings"),
    ],
)
def test_out_of_range_values_are_refused_at_create(h, change, needle):
    """As runc does (its Go types carry the widths): refused at create, naming the field, before
    anything reaches the kernel (a 2**80 memory limit used to wrap to 0 there)."""
    cfg = h.config(["true"])
    change(cfg)
    one_line_error(h.mrun("create", "-b", h.bundle(config=cfg), h.cid()), needle)


@pytest.mark.parametrize("cid", ["cé", "c\u0661", "x" * 1025, ".hidden"])
def test_container_ids_are_ascii_as_runc_requires(h, cid):
    one_line_error(h.mrun("create", "-b", h.bundle(["true"]), cid), "invalid container id")


def test_oom_score_adj_refusal_names_the_field(h):
    """Lowering oom_score_adj needs CAP_SYS_RESOURCE, which this process plan drops first."""
    open_to_others(h.rootfs)  # the mapped root must reach the rootfs: pytest's dirs are 0700
    cfg = h.config(["true"])
    cfg["process"]["oomScoreAdj"] = -1000
    cfg["linux"]["namespaces"].append({"type": "user"})
    cfg["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    cfg["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    r = h.mrun("create", "-b", h.bundle(config=cfg), h.cid())
    if r.returncode == 0:
        pytest.fail("a user namespace lowered oom_score_adj: this kernel lets it; the message is untested")
    one_line_error(r, "process.oomScoreAdj", "-1000")


def _one_id_mapped(cfg: dict) -> None:
    """A user namespace that maps ids 0-65535 (host 100000 on): 70000 is unmapped."""
    cfg["linux"]["namespaces"].append({"type": "user"})
    cfg["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    cfg["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]


@pytest.mark.parametrize(("user", "needle"), [({"uid": 70000, "gid": 0}, "process.user"),
                                              ({"uid": 0, "gid": 70000}, "process.user"),
                                              ({"uid": 0, "gid": 0, "additionalGids": [70000]}, "process.user")])
def test_a_process_user_the_kernel_refuses_fails_create_not_start(h, user, needle):
    """runc sets the process's user, groups, capabilities, seccomp (without no_new_privs),
    scheduler and I/O priority before its create returns, so one the kernel refuses (a uid its
    user namespace does not map) fails the create, and nothing is left. mrun set them after
    `start`: the create succeeded, `start` printed the failure and exited 0, and the container
    was stopped without ever running."""
    open_to_others(h.rootfs)
    cfg = h.config(["true"])
    _one_id_mapped(cfg)
    cfg["process"]["user"] = user
    cid = h.cid()
    one_line_error(h.mrun("create", "-b", h.bundle(config=cfg), cid), needle)
    r = h.mrun("state", cid)
    assert r.returncode != 0 and "does not exist" in r.stderr, r


def test_an_exec_d_process_user_the_kernel_refuses_fails_the_exec(h):
    """The same for `exec --user`: runc's exec fails (255) with the reason; mrun's process wrote
    the failure to its own stderr after the exec had been reported started."""
    open_to_others(h.rootfs)
    cfg = h.config(["sleep", "600"])
    _one_id_mapped(cfg)
    cid = h.cid()
    h.ok("run", "-d", "-b", h.bundle(config=cfg), cid)
    r = h.mrun("exec", "--user", "70000", cid, "true")
    one_line_error(r, "process.user")
    assert r.returncode == 255, r
    assert len(json.loads(h.ok("ps", "--format", "json", cid).stdout)) == 1  # the init alone
    h.ok("delete", "--force", cid)


def test_an_unknown_verb_is_one_usage_error_that_suggests_once(h):
    r = h.mrun("logz")
    assert r.returncode == 2, r
    assert "No such command 'logz'" in r.stderr and r.stderr.count("Did you mean") <= 1, r.stderr


@pytest.mark.parametrize("limit", [4096, 256 << 10])
def test_a_memory_limit_too_low_for_the_set_up_is_named_not_a_bare_death(h, limit):
    """runc: "container init was OOM-killed (memory limit too low?)". An init that the OOM killer
    ends while it sets the container up (4 KiB: before it reports its pid; 256 KiB: after) is
    that, naming the field, not "the container's process died while setting up"."""
    cfg = h.config(["true"])
    cfg["linux"]["resources"]["memory"] = {"limit": limit}
    one_line_error(h.mrun("create", "-b", h.bundle(config=cfg), h.cid()), "linux.resources.memory.limit",
                   "OOM-killed", "memory limit too low")


def test_a_pid_file_is_never_written_through_a_planted_link(h, tmp_path):
    """runc creates its temporary pid file with O_EXCL: a link another user planted at `.NAME.tmp`
    in a directory all may write (/tmp) fails the call. mrun opened it with "w" and truncated and
    wrote the link's target, as root."""
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    os.symlink(victim, shared / ".pid.tmp")
    one_line_error(h.mrun("create", "--pid-file", str(shared / "pid"), "-b", h.bundle(["true"]), h.cid()),
                   "--pid-file", ".pid.tmp")
    assert victim.read_text() == "precious\n"
    assert sorted(os.listdir(shared)) == [".pid.tmp"]  # the link is someone else's: left as it was


def test_a_pid_file_never_replaces_a_device_fifo_or_socket(h, tmp_path):
    """`--pid-file /dev/null` replaced the host's /dev/null with a file holding a pid (fuzzing
    runc's verbs did it on the test machine): the pid file is renamed into place, and a rename
    replaces whatever has the name. runc's createPidFile does the same; mrun refuses a path
    where something other than a file (or a link) is, and the call is undone as for any pid file
    that cannot be written. (runc differs here; the runtime-spec says nothing of pid files.)"""
    from conftest import host_nodes

    nodes = tmp_path / "nodes"
    cid = h.cid()
    h.ok("run", "-d", "-b", h.bundle(["sleep", "600"]), cid)
    try:
        with host_nodes(nodes) as kinds:
            for name, kind in kinds.items():
                one_line_error(h.mrun("create", "--pid-file", str(nodes / name), "-b", h.bundle(["true"]), h.cid()),
                               "--pid-file", kind)
                one_line_error(h.mrun("exec", "-d", "--pid-file", str(nodes / name), cid, "sleep", "500"),
                               "--pid-file", kind)
        assert len(json.loads(h.ok("ps", "--format", "json", cid).stdout)) == 1  # the init alone
    finally:
        h.mrun("delete", "--force", cid)


def test_a_pid_file_that_cannot_be_written_fails_the_call_and_leaves_nothing(h, tmp_path):
    """As runc: the create is undone, an exec'd process is ended, and the temporary file goes
    (it stayed, and the exec'd process ran on)."""
    where = tmp_path / "pids" / "adir"
    where.mkdir(parents=True)
    one_line_error(h.mrun("create", "--pid-file", str(where), "-b", h.bundle(["true"]), h.cid()),
                   "--pid-file", "Is a directory")
    cid = h.cid()
    h.ok("run", "-d", "-b", h.bundle(["sleep", "600"]), cid)
    one_line_error(h.mrun("exec", "-d", "--pid-file", str(where), cid, "sleep", "500"), "--pid-file", "Is a directory")
    assert len(json.loads(h.ok("ps", "--format", "json", cid).stdout)) == 1  # the init alone
    h.ok("delete", "--force", cid)
    assert os.listdir(where.parent) == ["adir"]
    # a link to a directory is a link: the rename replaces the link itself, as runc's does
    os.symlink(where, where.parent / "link")
    cid = h.cid()
    h.ok("create", "--pid-file", str(where.parent / "link"), "-b", h.bundle(["true"]), cid)
    assert not (where.parent / "link").is_symlink() and (where.parent / "link").read_text().isdigit()
    h.ok("delete", "--force", cid)


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        (lambda c: c["process"].update(selinuxLabel="system_u:system_r:container_t:s0"), "process.selinuxLabel"),
        (lambda c: c["process"].update(execCPUAffinity={"initial": "0"}), "process.execCPUAffinity"),
        (lambda c: c["linux"].update(intelRdt={"closID": "guaranteed_group"}), "linux.intelRdt"),
        (lambda c: c["linux"].update(netDevices={"eth7": {}}), "linux.netDevices"),
        (lambda c: c["linux"].update(personality={"domain": "SVR4"}), "linux.personality.domain"),
        (lambda c: c["linux"].update(personality="LINUX32"), "linux.personality"),
    ],
)
def test_what_mrun_would_not_apply_is_refused_not_dropped(h, change, needle):
    """Each of these ran, silently without what it asked for: an SELinux label unapplied is a
    container less confined than its engine believes. runc applies them or refuses (\"selinux
    label is specified in config, but selinux is disabled or not supported\"); mrun's sandbox
    does not apply them (`mrun features`), so it refuses, naming the field."""
    cfg = h.config(["true"])
    change(cfg)
    one_line_error(h.mrun("run", "-b", h.bundle(config=cfg), h.cid()), needle)


def test_an_apparmor_profile_is_applied_where_apparmor_is_on_and_refused_elsewhere(h):
    """As runc: the profile is the process's from its execve (a wasm init's at once, having no
    execve), and a host without AppArmor refuses the container rather than run it unconfined.
    "unconfined" is a profile every AppArmor host has loaded."""
    from mrun.kernel import apparmor

    cfg = h.config(["cat", "/proc/self/attr/current"])
    cfg["process"]["apparmorProfile"] = "unconfined"
    r = h.mrun("run", "-b", h.bundle(config=cfg), h.cid())
    if apparmor.enabled():
        assert r.returncode == 0 and r.stdout.strip() == "unconfined", r
    else:
        one_line_error(r, "process.apparmorProfile", "AppArmor is not enabled on this host")
        assert json.loads(h.ok("features").stdout)["linux"]["apparmor"] == {"enabled": False}


def test_an_exec_asking_for_an_apparmor_profile_is_refused_without_apparmor(h, tmp_path):
    from mrun.kernel import apparmor

    if apparmor.enabled():
        pytest.skip("this host has AppArmor: the profile is applied (the test above)")
    cid = h.cid()
    h.ok("run", "-d", "-b", h.bundle(["sleep", "600"]), cid)
    process = tmp_path / "process.json"
    process.write_text(json.dumps({"args": ["true"], "cwd": "/", "apparmorProfile": "docker-default"}))
    one_line_error(h.mrun("exec", "--process", str(process), cid), "process.apparmorProfile")
    # runc's flags set the same fields (they were accepted and dropped): refused alike
    one_line_error(h.mrun("exec", "--apparmor", "docker-default", cid, "true"), "process.apparmorProfile")
    one_line_error(h.mrun("exec", "--process-label", "system_u:system_r:container_t:s0", cid, "true"),
                   "process.selinuxLabel")
    one_line_error(h.mrun("exec", "--additional-gids", "abc", cid, "true"), "--additional-gids")  # was a traceback
    assert len(json.loads(h.ok("ps", "--format", "json", cid).stdout)) == 1
    h.ok("delete", "--force", cid)


@pytest.mark.parametrize("kind", ["prestart", "createRuntime", "createContainer", "startContainer"])
@pytest.mark.parametrize(
    "path, reason", [("/nonexistent-hook", "No such file or directory"), ("/tmp", "Permission denied")]
)
def test_a_hook_that_cannot_be_executed_is_one_line_naming_it(h, kind, path, reason):
    """Was two lines: the child's own "mrun: hook PATH: ..." and then "exited with status 127"."""
    r = h.mrun("run", "-b", h.bundle(["true"], hooks={kind: [{"path": path}]}), h.cid())
    one_line_error(r, f"hooks.{kind}[0] ({path}): cannot execute it: {reason}")


def _hex(script: str) -> list[str]:
    """The container's words as hex bytes (od), whatever they are."""
    return ["sh", "-c", f"{script} | od -An -tx1", "sh"]


@pytest.mark.parametrize(("escape", "named"), [("\ud800", "ef bf bd"), ("\udcff", "ff")], ids=["lone", "byte"])
@pytest.mark.parametrize(
    "field",
    ["args", "env", "hostname", "domainname", "cgroupsPath", "mount destination", "maskedPaths", "annotations",
     "cwd", "sysctl value", "mount option", "hook path", "namespace path", "rlimit type", "seccomp syscall"],
)
def test_a_surrogate_escape_in_any_field_is_read_as_bytes_never_an_internal_error(h, field, escape, named):
    """config.json's strings as Go reads "\\ud800" (U+FFFD: runc runs it) and as mrun writes a
    byte that is not UTF-8 ("\\udcff": that byte). Each was an internal error ("'utf-8' codec can't
    encode"), at create or in the container after start said 0; each now runs as runc would,
    or is one line naming its field as for any other value the kernel refuses. ``named``: the
    bytes the container sees."""
    cfg = h.config(["true"])
    p, linux = cfg["process"], cfg["linux"]
    shown = None
    if field == "args":
        p["args"] = [*_hex('printf %s "$1"'), escape]
        shown = named
    elif field == "env":
        p["env"] += [f"A={escape}"]
        p["args"] = _hex('printf %s "$A"')
        shown = named
    elif field in ("hostname", "domainname"):
        cfg["hostname"] = cfg["domainname"] = f"h{escape}"
        p["args"] = _hex("hostname" if field == "hostname" else "cat /proc/sys/kernel/domainname")
        shown = "68 " + named + " 0a"
    elif field == "cgroupsPath":
        linux["cgroupsPath"] += escape
    elif field == "mount destination":
        cfg["mounts"] += [{"destination": d, "type": "tmpfs", "source": "tmpfs"} for d in ("/tmp", f"/tmp/{escape}")]
        p["args"] = _hex("printf %s /tmp/*")  # its mount point made in the first tmpfs, not the shared rootfs
        shown = "2f 74 6d 70 2f " + named
    elif field == "maskedPaths":
        linux["maskedPaths"] = [f"/{escape}", *linux.get("maskedPaths", [])]
    elif field == "annotations":
        cfg["annotations"] = {escape: escape}
    elif field == "cwd":
        p["cwd"] = f"/{escape}"  # a read-only rootfs: cannot be made
    elif field == "sysctl value":
        linux["sysctl"] = {"net.ipv4.ip_default_ttl": escape}
    elif field == "mount option":
        cfg["mounts"].append({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": [escape]})
    elif field == "hook path":
        cfg["hooks"] = {"createRuntime": [{"path": f"/{escape}"}]}
    elif field == "namespace path":
        linux["namespaces"].append({"type": "network", "path": f"/{escape}"})
    elif field == "rlimit type":
        p["rlimits"] = [{"type": escape, "hard": 1, "soft": 1}]
    elif field == "seccomp syscall":  # no such call: skipped, as runc skips a name it does not know
        linux["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW",
                            "syscalls": [{"names": [f"mkdir{escape}"], "action": "SCMP_ACT_ERRNO"}]}
    r = h.mrun("run", "-b", h.bundle(config=cfg), h.cid())
    assert "codec" not in r.stderr and "internal error" not in r.stderr, r.stderr
    if shown is not None:
        assert r.returncode == 0 and r.stdout.split() == shown.split(), (r.returncode, r.stdout, r.stderr)
    elif r.returncode:
        field_named = {"cwd": "process.cwd", "sysctl value": "linux.sysctl", "mount option": "mounts[",
                       "hook path": "hooks.createRuntime[0]", "namespace path": "linux.namespaces",
                       "rlimit type": "process.rlimits[0].type"}[field]
        one_line_error(r, field_named)


def test_a_config_json_s_bytes_that_are_not_utf_8_are_passed_on_as_they_are(h):
    """Was an internal error (UnicodeDecodeError). Go reads such bytes as U+FFFD; mrun passes
    them on, as a file system does: a Latin-1 path in a config names the file it names."""
    cfg = h.config([*_hex('printf %s "$1"'), "XX"])
    bundle = h.bundle(config=cfg)
    path = os.path.join(bundle, "config.json")
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(data.replace(b'"XX"', b'"K\xe4se\xff"'))
    r = h.mrun("run", "-b", bundle, h.cid())
    assert r.returncode == 0 and r.stdout.split() == "4b e4 73 65 ff".split(), (r.stdout, r.stderr)


@pytest.mark.parametrize("field", ["root.path", "linux.sysctl", "linux.cgroupsPath", "mounts[7].destination"])
def test_a_refusal_quoting_a_line_break_or_an_escape_sequence_is_still_one_line(h, field):
    """A value with a line break, quoted in the refusal, made it two lines (a client reading the
    last line, containerd's runc shim reading a log line, read half of it), and an escape sequence
    reached the user's terminal as one. Every message mrun prints is one line now (errors.one_line):
    control characters as their escapes. A cgroup path with a line break (the kernel's EINVAL,
    which named only a controller's directory) is refused naming the field."""
    cfg = h.config(["true"])
    odd = "a\nb\x1b[2J"
    if field == "root.path":
        cfg["root"]["path"] += odd
    elif field == "linux.sysctl":
        cfg["linux"]["sysctl"] = {f"kernel.shmmni{odd}": "1"}
    elif field == "linux.cgroupsPath":
        cfg["linux"]["cgroupsPath"] += odd
    else:
        cfg["mounts"].append({"destination": odd, "type": "tmpfs", "source": "tmpfs"})
    r = h.mrun("run", "-b", h.bundle(config=cfg), h.cid())
    one_line_error(r, field.split("[")[0], "a\\nb\\x1b[2J")
    assert "\x1b" not in r.stderr


def test_a_program_whose_name_is_not_utf_8_failing_its_exec_is_named_in_its_own_words(h, tmp_path):
    """A program that is found but cannot be executed (not a binary: ENOEXEC) after `start`: the
    line saying so could not itself be written when the program's name held a byte that is not
    UTF-8 ("mrun: container X: 'utf-8' codec can't encode ..." instead). Such lines are written
    as the bytes they hold now (errors.in_bytes), and say what the kernel said."""
    bin_dir = tmp_path / "odd"
    bin_dir.mkdir()
    program = os.path.join(bytes(bin_dir), b"n\xff")
    with open(program, "wb") as f:
        f.write(b"not a program\n")
    os.chmod(program, 0o755)
    cfg = h.config(["/tmp/n\udcff"])
    cfg["mounts"].append({"destination": "/tmp", "type": "bind", "source": str(bin_dir), "options": ["rbind"]})
    r = subprocess.run([h.binary, "--root", h.root, "run", "-b", h.bundle(config=cfg), h.cid()],
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=60,
                       env={**os.environ, **h.base_env})  # (bytes: the line holds the name's own)
    assert r.returncode != 0 and b"codec" not in r.stderr, r.stderr
    assert r.stderr == b"mrun: exec /tmp/n\xff: Exec format error\n", r.stderr


@pytest.mark.parametrize("field", ["device", "umask", "time", "resources", "hook"])
def test_null_in_an_optional_field_is_as_if_absent(h, field):
    """JSON's null in a field the spec makes optional is that field left out, as Go's decoder
    (runc's) leaves it unset: mrun's schema passed it, and the code after read it as a value
    (`"major": null` of a device compared with None: an internal error, found by the fuzzer;
    a user's umask, a time offset's nanoseconds, a memory limit, a hook's timeout alike)."""
    cfg = h.config(["sh", "-c", "umask; cat /proc/self/timens_offsets 2>/dev/null | head -1; ls /dev/fuse"])
    cfg["linux"]["devices"] = [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 438}]
    if field == "device":
        cfg["linux"]["devices"][0].update(major=None, fileMode=None, uid=None)
    elif field == "umask":
        cfg["process"]["user"]["umask"] = None
    elif field == "time":
        cfg["linux"]["namespaces"].append({"type": "time"})
        cfg["linux"]["timeOffsets"] = {"monotonic": {"secs": 5, "nanosecs": None}}
    elif field == "resources":
        cfg["linux"]["resources"] = {"memory": {"limit": None, "swap": None}, "pids": {"limit": None},
                                     "cpu": {"shares": None, "quota": None}}
    else:
        cfg["hooks"] = {"poststop": [{"path": "/bin/true", "args": None, "env": None, "timeout": None}]}
    r = h.mrun("run", "-b", h.bundle(config=cfg), h.cid())
    assert r.returncode == 0 and "internal error" not in r.stderr, r.stderr


@pytest.mark.parametrize("change, needle", [
    ({"scheduler": "SCHED_OTHER"}, "process.scheduler"),
    ({"scheduler": {"policy": "SCHED_OTHER", "flags": [["SCHED_FLAG_RECLAIM"]]}}, "process.scheduler.flags[0]"),
    ({"scheduler": {"nice": 1}}, "process.scheduler.policy"),
    ({"ioPriority": True}, "process.ioPriority"),
    ({"ioPriority": {"class": "IOPRIO_CLASS_BE", "priority": "4"}}, "process.ioPriority.priority"),
    ({"execCPUAffinity": {"initial": 0}}, "process.execCPUAffinity.initial"),
    ({"capabilities": {"effective": ["CAP_KILL"], "permitted": [], "bounding": ["CAP_KILL"]}},
     "process.capabilities.effective"),
])
@pytest.mark.parametrize("verb", ["create", "exec"])
def test_a_process_s_scheduler_io_priority_and_capability_sets_are_checked_as_fields(h, tmp_path, change, needle,
                                                                                     verb):
    """Found by fuzzing `exec --process`: process.scheduler, ioPriority and execCPUAffinity were
    not in the schema, so a string or a boolean there was an internal error ('str' object has no
    attribute 'get', unhashable type: 'list'), in config.json and in an exec's process alike; an
    effective capability outside the permitted set failed in the process as Python's "[Errno 1]
    capset: Operation not permitted". Each is one line naming the field now."""
    if verb == "create":
        cfg = h.config(["true"])
        cfg["process"].update(change)
        one_line_error(h.mrun("create", "-b", h.bundle(config=cfg), h.cid()), needle)
        return
    cid = h.cid()
    h.ok("create", "-b", h.bundle(["sleep", "60"]), cid)
    process = tmp_path / "process.json"
    process.write_text(json.dumps({"args": ["true"], "cwd": "/", **change}))
    one_line_error(h.mrun("exec", "--process", str(process), cid), needle)
    h.ok("delete", "--force", cid)


def test_mrun_s_own_annotations_malformed_in_a_bundle_are_never_an_internal_error(h):
    """A bundle's config.json may carry any annotation, mrun's own keys included, and `inspect`
    and `stop` read them on any container: a restart policy whose count is no number made
    `inspect` an internal error (int() of it), and a stop timeout of "--5" (digits once
    lstrip("-") took both signs) made `stop` one. Each is read as docker's default instead."""
    cfg = h.config(["sleep", "600"])
    cfg["annotations"] = {"org.mrun.restart": "on-failure:৯", "org.mrun.stop-timeout": "--5",
                          "org.opencontainers.image.stopSignal": "SIGKILL", "org.mrun.command-at": "9" * 5000}
    cid = h.cid()
    assert h.mrun("create", "-b", h.bundle(config=cfg), cid).returncode == 0
    try:
        r = h.mrun("inspect", "-f", "{{.HostConfig.RestartPolicy.MaximumRetryCount}} {{json .Config.Cmd}}", cid)
        assert r.returncode == 0 and r.stdout == '0 ["sleep","600"]\n', r.stderr
        assert h.mrun("start", cid).returncode == 0
        r = h.mrun("stop", cid)
        assert r.returncode == 0 and r.stdout == f"{cid}\n", r.stderr
        assert json.loads(h.mrun("state", cid).stdout)["status"] == "stopped"
    finally:
        h.mrun("delete", "--force", cid)

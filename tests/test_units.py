"""The pure parts: spec validation, resource translation for both cgroup versions, the CLI
parser, JSON, signals, path resolution. Plus the v2 driver against a real cgroup2 mount."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid

import pytest
from mrun import jsonio
from mrun.cgroups import resolve_path
from mrun.cgroups.resources import blkio_to_io_weight, shares_to_weight, v1_writes, v2_controllers, v2_writes
from mrun.cli.fastparse import ParseError, parse
from mrun.defaults import default_spec
from mrun.errors import InvalidSpec, MrunError, Unsupported
from mrun.kernel.inroot import secure_join
from mrun.kernel.proc import parse_signal
from mrun.sandbox.rootfs import parse_options
from mrun.spec import validate


def test_default_spec_is_valid():
    validate(default_spec())
    validate(default_spec(rootless=True, uid=1000, gid=1000))


@pytest.mark.parametrize(
    "change, where",
    [
        (lambda c: c.__setitem__("ociVersion", "2.0.0"), "ociVersion"),
        (lambda c: c["process"].__setitem__("args", []), "process.args"),
        (lambda c: c["process"].__setitem__("cwd", "relative"), "process.cwd"),
        (lambda c: c["process"]["env"].append("NOEQUALS"), "process.env[2]"),
        (lambda c: c["process"]["capabilities"]["bounding"].append(5), "process.capabilities.bounding[3]"),
        (lambda c: c["process"]["rlimits"].append({"type": "NOFILE", "soft": 1, "hard": 1}), "process.rlimits[1]"),
        (lambda c: c["mounts"][0].__setitem__("destination", "proc"), "mounts[0].destination"),
        (lambda c: c["linux"]["namespaces"].append({"type": "pid"}), "linux.namespaces[6].type"),
        (lambda c: c["linux"].__setitem__("resources", {"memory": {"limit": "1G"}}), "linux.resources.memory.limit"),
        (lambda c: c.__setitem__("hooks", {"prestart": [{"path": "rel"}]}), "hooks.prestart[0].path"),
        (
            lambda c: c["linux"].__setitem__("uidMappings", [{"containerID": 0, "hostID": 1, "size": 1}]),
            "linux.uidMappings",
        ),
    ],
)
def test_validation_names_the_field(change, where):
    cfg = default_spec()
    change(cfg)
    with pytest.raises(InvalidSpec) as e:
        validate(cfg)
    assert str(e.value).startswith(where), str(e.value)


def test_unknown_fields_are_kept():
    cfg = default_spec()
    cfg["org.example.extension"] = {"anything": [1, 2]}
    validate(cfg)  # no complaint, nothing dropped


def test_v1_translation_orders_and_names_files():
    res = {
        "memory": {"limit": 100, "swap": 200, "reservation": 50, "swappiness": 10},
        "cpu": {"shares": 512, "quota": 20000, "period": 100000, "cpus": "0"},
        "pids": {"limit": 0},
        "blockIO": {"weight": 500, "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1000}]},
        "devices": [{"allow": False, "access": "rwm"}],
    }
    writes = v1_writes(res, [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}])
    files = [(c, f) for c, f, _ in writes]
    assert files.index(("cpu", "cpu.cfs_period_us")) < files.index(("cpu", "cpu.cfs_quota_us"))
    assert ("memory", "memory.memsw.limit_in_bytes", "200") in writes
    assert ("pids", "pids.max", "max") in writes
    assert ("blkio", "blkio.throttle.read_bps_device", "8:0 1000") in writes
    devices = [(f, v) for c, f, v in writes if c == "devices"]
    assert devices[0] == ("devices.deny", "a")
    assert ("devices.allow", "c 10:229 rwm") in devices and ("devices.allow", "c 1:3 rwm") in devices
    with pytest.raises(Unsupported, match="swap accounting"):
        v1_writes({"memory": {"limit": 100, "swap": 300}}, has_swap=False)
    with pytest.raises(Unsupported, match="cgroup v2"):
        v1_writes({"unified": {"memory.high": "1"}})


def test_rdma_limits_are_written_as_runc_writes_them():
    """linux.resources.rdma (the rdma controller: HCA handles and objects per device) was passed
    over without a word; runc writes rdma.max, one line per device, on v1 and v2 alike."""
    rdma = {"rdma": {"mlx5_0": {"hcaHandles": 3, "hcaObjects": 1000}, "mlx4_1": {"hcaObjects": 7}}}
    line = {("rdma", "rdma.max", "mlx5_0 hca_handle=3 hca_object=1000"), ("rdma", "rdma.max", "mlx4_1 hca_object=7")}
    assert set(v1_writes(rdma)) == line
    assert set(v2_writes(rdma)) == {("", f, v) for _, f, v in line}
    assert "rdma" in v2_controllers(v2_writes(rdma))
    for name in ("", "a b", "mlx\n0"):
        with pytest.raises(InvalidSpec, match="linux.resources.rdma"):
            v2_writes({"rdma": {name: {"hcaHandles": 1}}})


def test_v2_translation():
    writes = {
        f: v
        for _, f, v in v2_writes(
            {
                "memory": {"limit": 100, "swap": 300, "reservation": 10},
                "cpu": {"shares": 1024, "quota": 50000, "period": 100000},
                "pids": {"limit": 7},
                "blockIO": {"weight": 500},
                "unified": {"memory.high": "90"},
            }
        )
    }
    assert writes == {
        "memory.max": "100",
        "memory.swap.max": "200",
        "memory.low": "10",
        "cpu.weight": "100",  # v2's default weight: what a default 1024 shares asks for
        "cpu.max": "50000 100000",
        "pids.max": "7",
        "io.weight": f"default {blkio_to_io_weight(500)}",
        "memory.high": "90",
    }
    # runc's and crun's conversion since 2025 (runc#4785; kubernetes#131216): the linear one made
    # a container's default 1024 shares weight 39, under every host service's default 100
    assert [shares_to_weight(s) for s in (2, 3, 102, 512, 1024, 2048, 262143, 262144)] == \
        [1, 2, 17, 59, 100, 174, 10000, 10000]
    assert all(shares_to_weight(s) <= shares_to_weight(s + 1) for s in range(2, 262144, 97))
    assert {f: v for _, f, v in v2_writes({"cpu": {"quota": -1, "period": 50000}})} == {"cpu.max": "max 50000"}
    with pytest.raises(InvalidSpec):
        v2_writes({"memory": {"limit": 100, "swap": 50}})
    with pytest.raises(Unsupported):
        v2_writes({"network": {"classID": 1}})


def test_cgroups_path_resolution():
    assert resolve_path("", "c1") == ("/mrun/c1", False)
    assert resolve_path("/a/b", "c1") == ("/a/b", False)
    assert resolve_path("a/b", "c1") == ("a/b", True)
    assert resolve_path("machine-web.slice:mrun:c1", "c1", systemd=True) == (
        "/machine.slice/machine-web.slice/mrun-c1.scope",
        False,
    )
    with pytest.raises(InvalidSpec):
        resolve_path("../../etc", "c1")


@pytest.mark.parametrize("path, expected", [
    ("", "/system.slice/mrun-c1.scope"),
    (":crio:c1", "/system.slice/crio-c1.scope"),
    ("kubepods-besteffort-pod1.slice:cri-containerd:c1",
     "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice/cri-containerd-c1.scope"),
    ("machine.slice:libpod:pod-x.slice", "/machine.slice/pod-x.slice"),  # a name that is a slice is the unit
    ("-.slice:p:c1", "/p-c1.scope"),  # systemd's root slice
])
def test_systemd_cgroups_paths_follow_runc_s_rules(path, expected):
    assert resolve_path(path, "c1", systemd=True) == (expected, False)


@pytest.mark.parametrize("path, needle", [
    ("/mrun-test/c1", '"slice:prefix:name"'),  # was taken as a cgroupfs path
    ("a:b", '"slice:prefix:name"'),
    ("a:b:c:d", '"slice:prefix:name"'),
    ("system:mrun:c1", "is not a slice name"),  # runc's ExpandSlice refuses what does not end in .slice
    ("a--b.slice:mrun:c1", "is not a slice name"),
    ("-a.slice:mrun:c1", "is not a slice name"),
    (".slice:mrun:c1", "is not a slice name"),
])
def test_systemd_cgroups_paths_runc_refuses_are_refused(path, needle):
    with pytest.raises(InvalidSpec, match=re.escape(needle)):
        resolve_path(path, "c1", systemd=True)


def test_fastparse_accepts_runc_styles():
    g, cmd, p = parse(
        [
            "--root",
            "/r",
            "--log=/l",
            "--log-format",
            "json",
            "create",
            "--bundle",
            "/b",
            "--pid-file=/p",
            "--no-new-keyring",
            "c1",
        ]
    )
    assert (g["root"], g["log"], g["log_format"]) == ("/r", "/l", "json")
    assert cmd.name == "create" and p["bundle"] == "/b" and p["pid_file"] == "/p" and p["container_id"] == "c1"
    _, cmd, p = parse(["-root", "/r", "delete", "c1", "-f"])  # Go single-dash long flag; flag after id
    assert p["force"] is True and p["container_id"] == "c1"
    _, cmd, p = parse(["exec", "-e", "A=1", "-e", "B=2", "-d", "c1", "sh", "-c", "echo -n hi"])
    assert p["env"] == ["A=1", "B=2"] and p["detach"] and p["command"] == ["sh", "-c", "echo -n hi"]
    _, cmd, p = parse(["kill", "--all=false", "c1", "KILL"])
    assert p["all"] is False and p["signal_or_containers"] == ["KILL"]
    _, cmd, p = parse(["ps", "c1", "--", "-o", "pid"])
    assert p["ps_args"] == ["-o", "pid"]
    for bad in (["create"], ["nope"], ["--root"], ["kill", "--bogus", "c1"], ["create", "--help"], []):
        with pytest.raises(ParseError):
            parse(bad)


def test_jsonio_matches_json():
    doc = {"a": [1, 2.5, None, True, 'ünï\n"q"'], "b": {"c": {}}, "d": [], "e": -3}
    assert jsonio.loads(jsonio.dumps(doc)) == doc
    assert json.loads(jsonio.dumps(doc, indent=2)) == doc
    assert jsonio.dumps(doc, indent=2) == json.dumps(doc, indent=2)
    assert jsonio.loads(b"\xef\xbb\xbf[1]") == [1]
    for bad in ("", "{", '{"a": 1,}', "[1] x", "nul", "[NaN]", '{"a": Infinity}', "-Infinity", "[1e400]", "-1E+309"):
        with pytest.raises(jsonio.DecodeError):
            jsonio.loads(bad)
    assert jsonio.loads("[1e308, 1e-400, -0.0]") == [1e308, 0.0, -0.0]
    for unreadable in (float("nan"), float("inf"), -float("inf")):  # never written: neither mrun nor Go reads it
        with pytest.raises(ValueError):
            jsonio.dumps({"a": [unreadable]}, indent=2)
    try:
        jsonio.loads('{\n  "a": tru\n}')
    except jsonio.DecodeError as e:
        assert (e.lineno, e.colno) == (2, 8)


def test_jsonio_reads_every_string_as_bytes_a_path_can_hold():
    """A lone UTF-16 surrogate escape is valid JSON naming no character: Go's decoder (runc's,
    containerd's) reads it as U+FFFD, and so does mrun, where it raised at the first encode (an
    execve, a hostname, a cgroup's name: an internal error, or a container that died after its
    start had said 0). "\\udc80".."\\udcff" are how Python writes a byte that is not UTF-8 (a
    non-UTF-8 name on mrun's own command line, kept in the config it writes): read back as that
    byte, as are a file's raw bytes that are not UTF-8 (Go: U+FFFD; the spec asks for UTF-8, so
    neither is wrong, and a path keeps naming the file it named)."""
    doc = jsonio.loads('{"\\ud800k": ["\\udfff", "a\\udbffb\\udcff", "\\ud83d\\ude00", "\\uDC80"]}')
    assert doc == {"\ufffdk": ["\ufffd", "a\ufffdb\udcff", "\U0001f600", "\udc80"]}
    assert [os.fsencode(s) for s in doc["\ufffdk"]] == [b"\xef\xbf\xbd", b"a\xef\xbf\xbdb\xff", "\U0001f600".encode(),
                                                      b"\x80"]
    assert jsonio.loads(b'["/mnt/K\xe4se", "\xff"]') == ["/mnt/K\udce4se", "\udcff"]
    assert jsonio.loads(jsonio.dumps(["\udcff"])) == ["\udcff"]


def test_signals():
    assert parse_signal("KILL") == parse_signal("sigkill") == parse_signal("9") == signal.SIGKILL
    assert parse_signal("SIGRTMIN+2") == signal.SIGRTMIN + 2 and parse_signal("RTMAX") == signal.SIGRTMAX
    for name in ("HUP", "TERM", "USR1", "CHLD", "WINCH", "SYS"):
        assert parse_signal(name) == getattr(signal, "SIG" + name)
    # what int() takes or refuses beyond ASCII digits and one sign: each was a ValueError, an
    # internal error of `kill`, `run --stop-signal` and an image's StopSignal (fuzzing found them)
    for bad in ("0", "65", "SIGNOPE", "", "RTMIN+40", "-1", "RTMIN-+3", "SIGRTMIN+-3", "²", "RTMIN+²", "RTMAX-1_0",
                "RTMIN+ 3", "RTMIN++3", "৯"):
        with pytest.raises(MrunError):
            parse_signal(bad)
    assert parse_signal("0", probe=True) == 0  # runc's kill: is it there (never a stop signal)
    from mrun.cli.listing import epoch_of  # an image's history may say when, in any characters

    assert epoch_of("2020-01-01T00:00:00.²5Z") == epoch_of("2020-01-01T00:00:00.5Z") == 1577836800.5
    for bad in ("9" * 5000, "RTMIN+" + "9" * 5000, "RTMAX-" + "9" * 5000):  # int() reads 4300 digits at most
        with pytest.raises(MrunError, match=r"\.\.\.'"):  # (the value cut short in the message)
            parse_signal(bad)
    for bad in ("65", "-1", "SIG0"):
        with pytest.raises(MrunError):
            parse_signal(bad, probe=True)


def test_a_json_number_past_the_digits_int_reads_is_malformed_json():
    """int() refuses more than 4300 digits with a ValueError, which no reader of JSON caught: a
    config.json, an image's manifest from a registry or a record holding one was an internal
    error. jsonio says it is malformed, where it is."""
    doc = '{"linux": {"resources": {"pids": {"limit": ' + "9" * 5000 + "}}}}"
    with pytest.raises(jsonio.DecodeError, match="a number of 5000 digits, more than 4300: line 1 column 44"):
        jsonio.loads(doc)
    assert jsonio.loads(f"[{'9' * 4300}, -{'9' * 4299}]") == [10 ** 4300 - 1, 1 - 10 ** 4299]


def test_secure_join_stays_inside(tmp_path):
    root = str(tmp_path)
    os.makedirs(os.path.join(root, "real"))
    os.symlink("/etc", os.path.join(root, "abs"))
    os.symlink("../../../../outside", os.path.join(root, "rel"))
    os.symlink("loop", os.path.join(root, "loop"))
    assert secure_join(root, "/abs/passwd") == os.path.join(root, "etc/passwd")
    assert secure_join(root, "/rel/x") == os.path.join(root, "outside/x")
    assert secure_join(root, "/../../real/./y") == os.path.join(root, "real/y")
    with pytest.raises(MrunError):
        secure_join(root, "/loop/x")


def test_mount_options():
    from mrun.kernel import syscalls as sc

    flags, prop, data = parse_options(["rbind", "ro", "nosuid", "rprivate", "mode=755", "size=1m"])
    assert flags == sc.MS_BIND | sc.MS_REC | sc.MS_RDONLY | sc.MS_NOSUID
    assert prop == sc.MS_PRIVATE | sc.MS_REC and data == "mode=755,size=1m"


def _cgroup2_mount() -> str | None:
    with open("/proc/self/mountinfo") as f:
        for line in f:
            pre, _, post = line.partition(" - ")
            if post.startswith("cgroup2 "):
                return pre.split()[4]
    return None


def test_v2_driver_on_a_real_cgroup2_hierarchy(tmp_path):
    """On pure v2 hosts this is the hierarchy; on hybrid hosts (like the CI machines) the cgroup2
    mount has no resource controllers, but create/add/freeze/kill/destroy all work there."""
    from mrun.cgroups.v2 import CgroupV2

    mount = _cgroup2_mount()
    if mount is None:
        pytest.fail("no cgroup2 mount on this host; mount one (mount -t cgroup2 none /sys/fs/cgroup/unified)")
    tag = f"mrun-test-{uuid.uuid4().hex[:8]}"
    cg = CgroupV2.at(f"/{tag}/c", relative=False, mount=mount)
    available = set(open(os.path.join(mount, "cgroup.controllers")).read().split())
    resources = {"pids": {"limit": 5}} if "pids" in available else {}
    cg.plan(str(tmp_path / "marks"))  # what it will create, recorded first: only that is removed
    cg.create(resources)
    proc = subprocess.Popen(["sleep", "60"])
    try:
        cg.add(proc.pid)
        assert cg.pids() == [proc.pid]
        from mrun.shims.metrics import metrics_any
        from mrun.shims.proto import metrics_v2_pb2

        packed = metrics_any(cg.stats(), 2)  # what the shim's Stats answers on a v2 host
        assert packed.type_url == "io.containerd.cgroups.v2.Metrics"
        assert metrics_v2_pb2.Metrics.FromString(packed.value).cpu.usage_usec >= 0
        cg.set_frozen(True)
        assert cg.is_frozen()
        assert open(f"/proc/{proc.pid}/stat").read().rsplit(")", 1)[1].split()[0] in ("S", "D", "T")
        cg.set_frozen(False)
        assert not cg.is_frozen()
        if "pids" in available:
            assert open(os.path.join(cg.path, "pids.max")).read().strip() == "5"
        cg.destroy()
        assert proc.wait(timeout=10) == -signal.SIGKILL
        assert not os.path.exists(cg.path) and not os.path.exists(os.path.join(mount, tag))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for d in (cg.path, os.path.join(mount, tag)):
            if os.path.isdir(d):
                time.sleep(0.05)
                os.rmdir(d)


def test_device_rules_replayed_as_the_v1_kernel_applies_them():
    from mrun.cgroups.devices import emulate

    allow, exceptions = emulate(["deny a", "allow c 1:3 rwm", "allow c 1:3 m", "deny c 1:3 w", "allow b *:* m"])
    assert (allow, [repr(e) for e in exceptions]) == (False, ["c 1:3 3", "b -1:-1 1"])  # r|m kept, w taken away
    allow, exceptions = emulate(["deny c 1:3 rwm", "allow a", "deny c 1:5 w", "allow c 1:5 w"])
    assert (allow, exceptions) == (True, [])  # "a" forgets; an allow on a deny list removes the exception
    assert emulate([]) == (True, [])


DEVICE_PROBE = r"""
import os, sys
with open(os.path.join(sys.argv[1], "cgroup.procs"), "w") as f:
    f.write("0")
for spec in sys.argv[2:]:
    path, mode = spec.split(":")
    flags = {"r": os.O_RDONLY, "w": os.O_WRONLY, "rw": os.O_RDWR}[mode]
    try:
        os.close(os.open(path, flags))
        print(spec, "ok")
    except OSError as e:
        print(spec, e.strerror)
"""


def test_v2_device_filter_polices_opens_as_v1_would(tmp_path):
    """The eBPF program on a real cgroup2 hierarchy (on hybrid hosts too: the kernel runs a v2
    cgroup's device programs whatever hierarchy the devices controller is on)."""
    from mrun.cgroups import devices

    mount = _cgroup2_mount()
    if mount is None:
        pytest.fail("no cgroup2 mount on this host; mount one (mount -t cgroup2 none /sys/fs/cgroup/unified)")
    tag = f"mrun-test-{uuid.uuid4().hex[:8]}"
    path = os.path.join(mount, tag)
    os.mkdir(path)
    # Where the v1 devices controller is mounted (as here), the same rules go to a v1 cgroup as
    # well, written as mrun writes them there: both hierarchies must decide alike.
    v1 = "/sys/fs/cgroup/devices" if os.path.exists("/sys/fs/cgroup/devices/devices.allow") else None

    def run_probe(cgroup: str, opens: tuple[str, ...]) -> dict[str, str]:
        out = subprocess.run([sys.executable, "-c", DEVICE_PROBE, cgroup, *opens], capture_output=True, text=True,
                             timeout=30, check=True).stdout
        return dict(line.rsplit(" ", 1) if line.endswith(" ok") else line.split(" ", 1) for line in out.splitlines())

    def probe(rules: list[str], *opens: str) -> dict[str, str]:
        devices.attach(path, rules)
        got = run_probe(path, opens)
        if v1 is not None:
            v1_dir = os.path.join(v1, f"{tag}-{len(os.listdir(v1))}")
            os.mkdir(v1_dir)
            try:
                for rule in rules:
                    verdict, _, line = rule.partition(" ")
                    with open(os.path.join(v1_dir, f"devices.{verdict}"), "w") as f:
                        f.write(line)
                assert run_probe(v1_dir, opens) == got, f"v1 and v2 decide {rules} differently"
            finally:
                os.rmdir(v1_dir)
        return got

    denied = "Operation not permitted"
    try:
        # What every container gets: deny all, then the default nodes (resources.device_rules)
        from mrun.cgroups.resources import device_rules

        got = probe(device_rules({"devices": [{"allow": False, "access": "rwm"}]}, []),
                    "/dev/null:rw", "/dev/urandom:r", "/dev/kmsg:r")
        assert got == {"/dev/null:rw": "ok", "/dev/urandom:r": "ok", "/dev/kmsg:r": denied}
        # an allow list: all the access asked for must be held; a later deny takes some away
        got = probe(["deny a", "allow c 1:3 rwm", "deny c 1:3 w"], "/dev/null:r", "/dev/null:w", "/dev/zero:r")
        assert got == {"/dev/null:r": "ok", "/dev/null:w": denied, "/dev/zero:r": denied}
        # a deny list: any shared access denies; wildcards match any number; types must match
        got = probe(["allow a", "deny c 1:5 w"], "/dev/zero:r", "/dev/zero:rw", "/dev/null:rw")
        assert got == {"/dev/zero:r": "ok", "/dev/zero:rw": denied, "/dev/null:rw": "ok"}
        got = probe(["deny a", "allow c 1:* r", "allow b *:* rwm"], "/dev/zero:r", "/dev/zero:w", "/dev/tty:r")
        assert got == {"/dev/zero:r": "ok", "/dev/zero:w": denied, "/dev/tty:r": denied}
        # replaced, never stacked: one program of ours on the cgroup after all that
        from mrun.kernel import syscalls as sc

        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            assert len(devices._attached(sc, fd)) == 1
        finally:
            os.close(fd)
    finally:
        os.rmdir(path)


def test_a_device_filter_that_cannot_be_attached_is_one_line(tmp_path):
    from mrun.cgroups.v2 import CgroupV2

    cg = CgroupV2(str(tmp_path))  # a plain directory, not a cgroup
    with pytest.raises(MrunError, match=r"^linux.resources.devices: cannot attach the device filter \(eBPF\) to "):
        cg.apply({"devices": [{"allow": False, "access": "rwm"}]})


def test_v2_resource_controllers_when_present():
    """Memory/cpu/pids through the v2 driver: needs a host whose cgroup2 has those controllers."""
    from mrun.cgroups import detect
    from mrun.cgroups.v2 import CgroupV2

    if detect() != 2:
        pytest.skip("this host runs cgroup v1 controllers; the v2 resource files are tested on v2 hosts")
    tag = f"mrun-test-{uuid.uuid4().hex[:8]}"
    cg = CgroupV2.at(f"/{tag}/c", relative=False)
    cg.create({"memory": {"limit": 64 << 20}, "cpu": {"quota": 20000, "period": 100000}, "pids": {"limit": 9}})
    try:
        assert open(os.path.join(cg.path, "memory.max")).read().strip() == str(64 << 20)
        assert open(os.path.join(cg.path, "cpu.max")).read().strip() == "20000 100000"
        assert cg.stats()["pids"]["limit"] == 9
    finally:
        cg.destroy()


def test_seccomp_profile_may_repeat_a_syscall():
    """podman's default profile, reduced: with the x86 (32-bit) architecture added, libseccomp maps
    socket() onto socketcall and answers EEXIST for the third rule. runc and crun accept it."""
    from mrun.sandbox.seccomp import Filter

    def rule(action, *args, **extra):
        return {
            "names": ["socket"],
            "action": action,
            **extra,
            "args": [{"index": i, "value": v, "op": op} for i, v, op in args],
        }

    Filter(
        {
            "defaultAction": "SCMP_ACT_ERRNO",
            "defaultErrnoRet": 38,
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [
                rule("SCMP_ACT_ERRNO", (0, 16, "SCMP_CMP_EQ"), (2, 9, "SCMP_CMP_EQ"), errnoRet=22),
                rule("SCMP_ACT_ALLOW", (2, 9, "SCMP_CMP_NE")),
                rule("SCMP_ACT_ALLOW", (0, 16, "SCMP_CMP_NE")),
            ],
        }
    )  # built, not loaded
    with pytest.raises(InvalidSpec, match=r"linux.seccomp.syscalls\[0\].args\[0\].op"):
        Filter({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [rule("SCMP_ACT_ALLOW", (0, 1, "X"))]})


def test_a_profile_is_compiled_once_per_process_and_its_flags_go_to_seccomp():
    """The BPF program is libseccomp's, compiled on the host (a warm template compiles mrun run's
    default before any caller): the container's process only loads it, with the profile's flags."""
    import copy

    from mrun.images.seccomp_default import profile
    from mrun.sandbox.seccomp import Filter

    first = Filter(profile())
    assert Filter(copy.deepcopy(profile())).program is first.program
    assert len(first.program) % 8 == 0 and len(first.program) > 8 * 20
    flags = ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]
    assert Filter({**profile(), "flags": flags}).flags == 2 | 4
    with pytest.raises(InvalidSpec, match=r"linux.seccomp.flags\[0\]"):
        Filter({**profile(), "flags": ["SECCOMP_FILTER_FLAG_NEW"]})


def test_shim_metrics_field_mapping():
    """cgroup figures land in the fields containerd decodes (v1 and v2 Metrics)."""
    from mrun.shims.metrics import metrics_any
    from mrun.shims.proto import metrics_pb2, metrics_v2_pb2

    stats = {
        "memory": {
            "usage": 5000,
            "max_usage": 6000,
            "limit": 8192,
            "failcnt": 2,
            "swap_usage": 7,
            "events": {"max": 2, "oom": 1, "oom_kill": 1},
            "stat": {"anon": 11, "file": 12, "pgfault": 13, "cache": 14, "rss": 15},
        },
        "cpu": {
            "usage_ns": 9_000_000,
            "user_ns": 6_000_000,
            "system_ns": 3_000_000,
            "periods": 4,
            "throttled_periods": 1,
            "throttled_ns": 2_000,
        },
        "pids": {"current": 3, "limit": 10},
    }
    v2 = metrics_v2_pb2.Metrics.FromString(metrics_any(stats, 2).value)
    assert (v2.cpu.usage_usec, v2.cpu.user_usec, v2.cpu.system_usec, v2.cpu.throttled_usec) == (9000, 6000, 3000, 2)
    assert (v2.memory.usage, v2.memory.usage_limit, v2.memory.max_usage, v2.memory.swap_usage) == (5000, 8192, 6000, 7)
    assert (v2.memory.anon, v2.memory.file, v2.memory.pgfault) == (11, 12, 13)
    assert (v2.memory_events.oom, v2.memory_events.oom_kill, v2.pids.current, v2.pids.limit) == (1, 1, 3, 10)
    v1 = metrics_pb2.Metrics.FromString(metrics_any(stats, 1).value)
    assert (v1.memory.cache, v1.memory.rss, v1.memory.usage.limit, v1.memory.usage.failcnt) == (14, 15, 8192, 2)
    assert (v1.cpu.usage.total, v1.cpu.throttling.throttled_time, v1.pids.limit) == (9_000_000, 2_000, 10)


def test_status_table_allows_what_runc_allows():
    from mrun.errors import InvalidState
    from mrun.status import ALLOWED, Status, allowed, require

    every = [Status.CREATING, Status.CREATED, Status.RUNNING, Status.PAUSED, Status.STOPPED]
    expected = {
        "start": {"created"},
        "kill": {"created", "running", "paused"},
        "pause": {"created", "running"},  # runc pauses a created container too
        "resume": {"paused"},
        "exec": {"created", "running"},
        "update": {"created", "running", "paused"},
        "events": {"created", "running", "paused"},
        "delete": {"created", "stopped"},
    }
    assert set(ALLOWED) == set(expected)
    for op, statuses in expected.items():
        assert {s for s in every if allowed(op, s)} == statuses, op
        for s in every:
            if s in statuses:
                require(op, s, "c1")
            else:
                with pytest.raises(InvalidState) as e:
                    require(op, s, "c1")
                assert "'c1'" in str(e.value) and "\n" not in str(e.value)
    assert str(Status.PAUSED) == "paused" and Status.RUNNING == "running"


def test_oom_kills_are_read_from_the_one_file_that_counts_them(tmp_path):
    """Every delete asks: v1's memory.oom_control, v2's memory.events, 0 without either."""
    from mrun.cgroups.v1 import CgroupV1
    from mrun.cgroups.v2 import CgroupV2

    (tmp_path / "memory").mkdir()
    (tmp_path / "memory" / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n")
    assert CgroupV1({"memory": str(tmp_path / "memory"), "pids": str(tmp_path / "pids")}).oom_kills() == 3
    assert CgroupV1({"pids": str(tmp_path / "pids")}).oom_kills() == 0
    (tmp_path / "v2").mkdir()
    (tmp_path / "v2" / "memory.events").write_text("low 0\nhigh 0\nmax 5\noom 2\noom_kill 2\n")
    assert CgroupV2(str(tmp_path / "v2")).oom_kills() == 2
    assert CgroupV2(str(tmp_path / "gone")).oom_kills() == 0


@pytest.mark.parametrize("inotify", [True, False])
def test_the_template_fingerprint_sees_every_change_with_or_without_inotify(tmp_path, inotify):
    """A quiet inotify queue skips the stats; a change in place, a replacement (pip's rename) or
    a new file in a watched directory is seen either way, and reported by path."""
    from mrun.warm.fingerprint import Fingerprint

    module, package = tmp_path / "module.py", tmp_path
    module.write_text("A = 1\n")
    fp = Fingerprint([str(package), str(module)])
    if not inotify:
        fp.events = None
    else:
        assert fp.events is not None, "inotify is missing here"
    assert fp.changed() is None and fp.changed() is None
    module.write_text("A = 2\n")  # in place: the directory's own times do not change
    assert fp.changed() == str(module)
    fp = Fingerprint([str(package), str(module)])
    fp.events = fp.events if inotify else None
    (tmp_path / "new.py.tmp").write_text("A = 3\n")
    os.replace(tmp_path / "new.py.tmp", module)  # as pip replaces a file
    assert fp.changed() in (str(package), str(module))
    fp = Fingerprint([str(package), str(module)])
    fp.events = fp.events if inotify else None
    assert fp.changed() is None
    (tmp_path / "added.py").write_text("")
    assert fp.changed() == str(package)


def test_the_fork_helper_preloads_only_what_the_warm_template_did_not():
    """Cold, a helper reads the bundle and lets the chosen backend preload before each create;
    forked from the warm template, only if some backend preloads without warming (mrun_warm)."""
    from mrun.shims.spawner import preload_needed

    covered = {"linux": {}, "wasm": {"mrun_preload": 1, "mrun_warm": 1}}
    assert preload_needed(covered, warm=False)
    assert not preload_needed(covered, warm=True)
    assert preload_needed({**covered, "third": {"mrun_preload": 1}}, warm=True)


def test_a_bad_number_of_seconds_in_the_environment_is_the_default_not_a_dead_process(monkeypatch):
    """MRUN_SPARE_IDLE, MRUN_SHIM_UNCALLED_EXIT and MRUN_WARM_IDLE are read by a fork helper, a shim
    daemon and the template at their start: a value they cannot wait on (a typo, a negative, nan,
    inf) must mean the default, not a process that dies and fails every later call."""
    from mrun.knobs import seconds

    said = {}
    for value in (None, "", "2.5", "0", "ten", "-1", "nan", "inf", "1e300"):
        if value is None:
            monkeypatch.delenv("MRUN_SPARE_IDLE", raising=False)
        else:
            monkeypatch.setenv("MRUN_SPARE_IDLE", value)
        said[value] = seconds("MRUN_SPARE_IDLE", 10.0)
    assert said == {None: 10.0, "": 10.0, "2.5": 2.5, "0": 0.0, "ten": 10.0, "-1": 10.0, "nan": 10.0, "inf": 10.0,
                    "1e300": 10.0}


def test_removing_a_container_s_state_survives_a_command_that_locks_it_meanwhile(tmp_path, monkeypatch):
    """`delete` removes the state directory under the container's lock while other commands on
    the same id may be starting: one that opens the lock file after it was unlinked and before
    the directory goes makes it anew (seen as `delete: Directory not empty` when six deletes of
    one id raced). The removal must still finish, and that command must find no container."""
    import threading

    from mrun.errors import NotFound
    from mrun.state import Store

    store = Store(str(tmp_path / "state"))
    with store.reserve("c1"):  # handed over held
        for name in ("state.json", "exec.fifo"):
            open(store.path("c1", name), "w").close()
    found: list[str] = []

    def command_on_the_same_id() -> None:
        try:
            with store.lock("c1"):
                found.append("state" if os.path.exists(store.path("c1", "state.json")) else "no state")
        except NotFound:
            found.append("gone")

    real_rmdir = os.rmdir

    def rmdir(path: str, *args: object, **kwargs: object) -> None:
        if path == store.path("c1") and not found:  # the window: lock file unlinked, directory still there
            t = threading.Thread(target=command_on_the_same_id)
            t.start()
            t.join(5)
        real_rmdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "rmdir", rmdir)
    with store.lock("c1"):
        store.remove("c1")
    assert found and found[0] in ("gone", "no state"), found
    assert not os.path.exists(store.path("c1"))


def test_reserve_hands_its_lock_over_held_and_never_replaces_a_directory(tmp_path):
    """Store.reserve: the id's directory appears with its lock already held (another command on
    the id waits), a second reserve of the id is refused, an empty directory of that name too
    (a plain rename would have replaced it), and a killed reserve's .making- is swept by the next."""
    import fcntl

    from mrun.errors import AlreadyExists
    from mrun.state import MAKING, Store, held_by_someone

    store = Store(str(tmp_path / "state"))
    with store.reserve("c1") as lock:
        assert held_by_someone(store.path("c1", "lock")) and lock.path == store.path("c1", "lock")
        with pytest.raises(AlreadyExists):
            store.reserve("c1")
    assert not held_by_someone(store.path("c1", "lock"))
    os.mkdir(store.path("c2"))
    with pytest.raises(AlreadyExists):
        store.reserve("c2")
    killed = os.path.join(store.root, MAKING + "0" * 16)
    os.mkdir(killed)
    open(os.path.join(killed, "lock"), "w").close()
    held = os.path.join(store.root, MAKING + "1" * 16)  # a create in progress elsewhere
    os.mkdir(held)
    fd = os.open(os.path.join(held, "lock"), os.O_CREAT | os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        with store.reserve("c3"):
            pass
        assert not os.path.exists(killed) and os.path.exists(held)
        assert sorted(store.ids()) == ["c1", "c2", "c3"]
    finally:
        os.close(fd)


def test_a_sweep_leaves_a_making_directory_its_creator_refilled(tmp_path, monkeypatch):
    """A sweep that emptied a .making- directory while its create re-made the lock file (it had
    opened the old one just before): the rmdir meets ENOTEMPTY, and the directory is the create's
    again. The sweep goes on without a traceback."""
    from mrun import state

    making = tmp_path / f"{state.MAKING}{'2' * 16}"
    making.mkdir()
    real_empty = state._empty

    def empty_then_refilled(entries, keep=()):
        real_empty(entries, keep)
        (making / "lock").write_text("")  # the create's O_CREAT open, after the sweep's unlink

    monkeypatch.setattr(state, "_empty", empty_then_refilled)
    state._remove_flat(str(making))
    assert (making / "lock").exists()


def test_undo_takes_back_last_first_runs_every_step_and_raises_the_last_failure():
    """operations.undo.Undo stands in for contextlib.ExitStack (callback, pop_all) in create and
    exec: the same order, and a failing step does not stop the others."""
    import pytest
    from mrun.operations.undo import Undo

    ran = []

    def fail(name: str) -> None:
        ran.append(name)
        raise RuntimeError(name)

    with pytest.raises(RuntimeError) as caught:
        with Undo() as undo:
            undo.callback(ran.append, "first made")
            undo.callback(fail, "second made")
            undo.callback(ran.append, "third made")
            raise ValueError("the step that failed")
    assert ran == ["third made", "second made", "first made"]
    assert str(caught.value) == "second made" and isinstance(caught.value.__context__, ValueError)
    ran.clear()
    with Undo() as undo:
        undo.callback(ran.append, "made")
        undo.pop_all()
    assert ran == []


def test_descriptors_and_exact_reads_over_a_unix_socket():
    """mrun.kernel.fdpass, shared by the fork helper, the pristine copy, the template and the
    console hand-over: descriptors sent with a message arrive as the same files, a partial one
    (a cut-short ancillary buffer) is none, and an exact read stops at the stream's end."""
    import socket

    from mrun.kernel import fdpass

    ours, theirs = socket.socketpair()
    r, w = os.pipe()
    try:
        assert fdpass.rights([]) == []
        ours.sendmsg([b"x" * 3], fdpass.rights([r, w, r]))
        data, anc, _, _ = theirs.recvmsg(1, fdpass.space(3))
        got = fdpass.received(anc)
        assert data == b"x" and len(got) == 3
        assert [os.fstat(fd).st_ino for fd in got] == [os.fstat(fd).st_ino for fd in (r, w, r)]
        for fd in got:
            os.close(fd)
        level, kind, blob = fdpass.rights([r, w])[0]
        assert fdpass.received([(level, kind, blob[:6])]) == [r]  # 6 bytes: one whole int
        ours.sendall(b"y")
        assert fdpass.read_exact(theirs, 4, data) == b"xxxy"  # what was read first, then the rest
        ours.sendall(b"abc")
        ours.close()
        assert fdpass.read_exact(theirs, 5) is None  # 3 bytes, then the end
        os.write(w, b"ab")  # and from a pipe, given its descriptor (the fork helper's answers)
        os.close(w)
        w = -1
        assert fdpass.read_exact(r, 2) == b"ab" and fdpass.read_exact(r, 1) is None
    finally:
        theirs.close()
        os.close(r)
        if w >= 0:
            os.close(w)


def test_a_release_killed_after_its_last_mark_leaves_nothing_the_next_one_misses(tmp_path):
    """A `delete` killed after unlinking the last mark of the parents mrun made, before removing
    the directory of marks, left that directory (empty) in the state root: the redo found no mark
    and returned, so nothing ever removed it (seen in CI: test_killed_delete_or_start, one kill in
    20). The next release removes an empty directory of marks whatever it finds."""
    from mrun.cgroups.base import mark, release_parents

    marks = str(tmp_path / "state" / ".cgroup-parents")
    parent = tmp_path / "cg" / "made-by-mrun"
    parent.mkdir(parents=True)
    leaf = str(parent / "container")
    mark(marks, str(parent))
    release_parents(leaf, marks)  # the whole release: the parent, its mark, the directory of marks
    assert not parent.exists() and not os.path.exists(marks)
    os.makedirs(marks)  # the state a kill between the last unlink and the rmdir leaves
    release_parents(leaf, marks)  # the redo
    assert not os.path.exists(marks), "the empty directory of marks stayed in the state root"
    parent.mkdir()  # a parent another container still uses keeps its mark, and the directory
    mark(marks, str(parent))
    (parent / "other").mkdir()
    release_parents(leaf, marks)
    assert parent.exists() and os.listdir(marks)


def test_a_parent_made_again_while_it_is_released_is_marked_again(tmp_path, monkeypatch):
    """A release that removed a marked parent, and a concurrent create that made it again before
    the release unlinked its mark: the release marks it again (the create's container still needs
    its removal later). That step called the mark's file name (``mark``, once the function was
    made public, shadowed by a local name): "internal error: TypeError: 'str' object is not
    callable", seen once in CI in test_concurrent_creates_leave_no_empty_parent_cgroup."""
    import mrun.cgroups.base as base

    marks = str(tmp_path / "state" / ".cgroup-parents")
    parent = tmp_path / "cg" / "made-by-mrun"
    parent.mkdir(parents=True)
    base.mark(marks, str(parent))
    unlink = os.unlink

    def unlink_as_a_create_makes_it_again(path, *args, **kwargs):
        unlink(path, *args, **kwargs)
        if path.startswith(marks):
            parent.mkdir(exist_ok=True)  # the concurrent create, between the rmdir and the unlink

    monkeypatch.setattr(base.os, "unlink", unlink_as_a_create_makes_it_again)
    base.release_parents(str(parent / "container"), marks)
    monkeypatch.setattr(base.os, "unlink", unlink)
    assert parent.is_dir() and base.marked(marks, str(parent)), "made again, it lost its mark"


def test_a_create_that_failed_on_its_way_down_leaves_none_of_the_parents_it_made(tmp_path):
    """make_parents marks and makes the parents top down; one failing part-way (a name the mark
    could not take, a mkdir the kernel refused) left the ones above it made: the release started
    at the leaf's parent, found no mark there (it was never made) and stopped, so every parent
    made stayed, on the host's cgroup tree. It walks past parents never made now, and stops at
    the first one that exists unmarked (someone else's)."""
    from mrun.cgroups.base import mark, release_parents

    marks = str(tmp_path / "state" / ".cgroup-parents")
    theirs = tmp_path / "cg" / "theirs"
    made = theirs / "a" / "b"
    made.mkdir(parents=True)
    for d in (theirs / "a", made):
        mark(marks, str(d))
    release_parents(str(made / "never" / "made" / "leaf"), marks)
    assert theirs.is_dir() and not (theirs / "a").exists() and not os.path.exists(marks)


def test_a_parent_too_long_for_a_marks_name_is_marked_by_its_hash_and_released(tmp_path):
    """The mark's name is the parent's path, quoted: past 255 bytes (a deep --cgroup-parent) the
    mark could not be made and the create failed. Such a parent is marked by its path's hash,
    the path in the file, written whole before it takes its name; `system prune` reads it back,
    and removes the deepest first (in the directory's order, a parent before its marked child
    stayed, as it was not empty yet)."""
    from mrun.cgroups.base import mark, release_marked, release_parents

    marks = str(tmp_path / "state" / ".cgroup-parents")
    deep = tmp_path / "cg" / "/".join(["p" * 60] * 5)
    deep.mkdir(parents=True)
    chain = [deep, *list(deep.parents)[:4]]
    for d in reversed(chain):
        mark(marks, str(d))
    names = os.listdir(marks)
    assert len(names) == 5 and sum(n.startswith("#") for n in names) >= 3 and not [n for n in names if ".tmp-" in n]
    release_parents(str(deep / "leaf"), marks)
    assert not chain[-1].exists() and not os.path.exists(marks)
    for d in reversed(chain):  # again, left for `system prune` (a crashed delete), with a cut-short one
        d.mkdir()
        mark(marks, str(d))
    open(os.path.join(marks, "#" + "0" * 64 + ".tmp-1"), "w").close()
    assert sorted(release_marked(marks)) == sorted(str(d) for d in chain)
    assert not chain[-1].exists() and not os.path.exists(marks)


@pytest.mark.parametrize(
    ("text", "host", "repository", "tag"),
    [
        ("busybox", "docker.io", "library/busybox", "latest"),
        ("docker.io/library/busybox:1.36", "docker.io", "library/busybox", "1.36"),
        ("localhost:5000/a/b_c.d-e__f:v1.2-rc_3", "localhost:5000", "a/b_c.d-e__f", "v1.2-rc_3"),
        ("Registry.Example.com/x/y---z", "Registry.Example.com", "x/y---z", "latest"),
        ("[::1]:5000/x:1", "[::1]:5000", "x", "1"),
        ("10.0.0.1:5000/x", "10.0.0.1:5000", "x", "latest"),
    ],
)
def test_image_references_docker_takes(text, host, repository, tag):
    from mrun.images.reference import Reference

    ref = Reference(text)
    assert (ref.host, ref.repository, ref.tag) == (host, repository, tag)


@pytest.mark.parametrize(
    "text",
    [
        "localhost:1/../../etc:1",  # became https://localhost:1/etc/manifests/1
        "localhost/a?b", "localhost/a#b", "localhost/a:t#x", "localhost/a b", "localhost/A",
        "localhost/a//b", "localhost/-a", "localhost/a-", "localhost/a..b", "localhost/a:", "localhost/a:-t",
        "localhost/a:" + "t" * 129, "loc_al.host/x", "-host.com/x", "localhost:5x/x", "localhost/" + "a" * 250,
        "evil.com\\@x/y", "",
    ],
)
def test_image_references_docker_refuses_are_refused(text):
    """Docker's grammar (distribution/reference): the repository goes into the registry's URL,
    where `..`, `?` and `#` would move the request elsewhere on that host."""
    from mrun.images.reference import Reference

    with pytest.raises(MrunError, match="not a valid image reference"):
        Reference(text)


def test_remove_tree_goes_any_depth_and_never_follows_a_link_out(tmp_path):
    """shutil.rmtree recursed a frame and a descriptor per level: a tree 5000 deep (a container
    can nest without long paths) was a RecursionError, and the container's directory stayed."""
    from mrun.kernel.tree import remove_tree

    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("k")
    tree = tmp_path / "tree"
    tree.mkdir()
    fd = os.open(tree, os.O_RDONLY)
    for _ in range(5000):
        os.mkdir("d", dir_fd=fd)
        os.symlink(str(outside), "link", dir_fd=fd)
        os.close(os.open("f", os.O_CREAT | os.O_WRONLY, 0o600, dir_fd=fd))
        down = os.open("d", os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = down
    os.close(fd)
    for i in range(300):
        (tree / f"wide{i}").mkdir()
    remove_tree(str(tree))
    assert not tree.exists() and os.listdir(outside) == ["keep"]
    remove_tree(str(tree))  # gone already: fine
    (tmp_path / "toplink").symlink_to(outside)
    remove_tree(str(tmp_path / "toplink"))
    assert not (tmp_path / "toplink").is_symlink() and os.listdir(outside) == ["keep"]


def test_remove_tree_does_not_empty_a_mount_left_in_the_tree(tmp_path):
    """A filesystem still mounted below (a rootfs's overlay that would not unmount) is refused,
    not emptied through; ignore_errors keeps the rest of the tree's removal quiet."""
    from mrun.kernel.tree import remove_tree

    mnt = tmp_path / "tree" / "sub" / "mnt"
    mnt.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(mnt)], check=True)
    try:
        (mnt / "on-the-mount").write_text("x")
        with pytest.raises(OSError, match="mount point"):
            remove_tree(str(tmp_path / "tree"))
        remove_tree(str(tmp_path / "tree"), ignore_errors=True)
        assert (mnt / "on-the-mount").read_text() == "x"
    finally:
        subprocess.run(["umount", str(mnt)], check=True)
    remove_tree(str(tmp_path / "tree"))
    assert not (tmp_path / "tree").exists()


def test_docker_s_durations_sizes_and_table_columns():
    """What docker's listings print, as go-units and tabwriter make it (mrun.cli.listing)."""
    from mrun.cli.listing import bytes_size, epoch_of, formatted, human_duration, human_size

    cases = {0.4: "Less than a second", 1: "1 second", 59: "59 seconds", 60: "About a minute",
             119: "About a minute", 120: "2 minutes", 3599: "59 minutes", 3600: "About an hour",
             5399: "About an hour", 5400: "2 hours", 47 * 3600: "47 hours", 48 * 3600: "2 days",
             14 * 86400: "2 weeks", 60 * 86400: "2 months", 730 * 86400: "2 years"}
    assert {s: human_duration(s) for s in cases} == cases
    assert [human_size(n) for n in (0, 999, 14_300, 1_088_048, 2.5e9)] == ["0B", "999B", "14.3kB", "1.09MB", "2.5GB"]
    assert [bytes_size(n) for n in (512, 8_687_411, 64 << 20, 8_342_000_000)] == ["512B", "8.285MiB", "64MiB",
                                                                                 "7.769GiB"]
    assert epoch_of("1970-01-01T00:01:40.5Z") == 100.5 and epoch_of("garbage") is None
    rows = [{"A": "x", "B": "long-value-here"}, {"A": "much-longer-cell", "B": "y"}]
    assert formatted("table {{.A}}\\t{{.B}}", rows, {"A": "AA", "B": "BB"}) == [
        "AA".ljust(19) + "BB", "x".ljust(19) + "long-value-here", "much-longer-cell   y"]  # widest + 3
    assert formatted("{{.A}}-{{.B}}", rows, {"A": "AA", "B": "BB"}) == ["x-long-value-here", "much-longer-cell-y"]
    with pytest.raises(Exception, match="no field 'C'"):
        formatted("{{.C}}", [], {"A": "AA"})


INSPECTED = {"State": {"Pid": 5, "Running": True, "Status": "running"}, "Name": "/web",
             "Config": {"Labels": {"team": "a", "tier": "db"}, "Env": ["A=1", "B=2"]},
             "NetworkSettings": {"Networks": {"front": {"IPAddress": "10.0.0.2"}, "back": {"IPAddress": "10.0.1.2"}}},
             "Big": 1e6, "Odd": 1234567.0, "Half": 0.5, "Null": None, "Empty": []}


@pytest.mark.parametrize("template, expected", [
    # what docker's scripts write, and what Go's text/template prints for it
    ("{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", "10.0.1.2 10.0.0.2 "),  # map values by key
    ('{{(index .NetworkSettings.Networks "front").IPAddress}}', "10.0.0.2"),
    ('{{index .Config.Labels "team"}}|{{index .Config.Labels "none"}}|', "a||"),  # a missing label is ""
    ("{{.Config.Labels.none}}|{{with .Config.Labels}}{{.team}}{{.none}}{{end}}|{{.NetworkSettings.Networks.x}}",
     "|a|<no value>"),  # a map's missing key (docker's maps: Labels, Networks...); a struct's is refused
    ("{{range $k, $v := .Config.Labels}}{{$k}}={{$v}};{{end}}", "team=a;tier=db;"),
    ("{{if .State.Running}}up{{else}}down{{end}}", "up"),
    ('{{if not .State.Running}}down{{else if eq .State.Status "running"}}R{{end}}', "R"),
    ("{{with .Config.Labels}}{{.tier}}{{end}}{{with .Empty}}x{{else}}none{{end}}", "dbnone"),
    ("{{range .Empty}}x{{else}}empty{{end}}", "empty"),
    ('{{range .Config.Env}}{{if eq . "B=2"}}{{break}}{{end}}{{.}},{{end}}', "A=1,"),
    ("{{range $i, $e := .Config.Env}}{{$i}}:{{$e}} {{end}}", "0:A=1 1:B=2 "),
    ("{{$n := .Name}}{{$n}} {{$.State.Pid}}", "/web 5"),
    ("{{.Name | upper}} {{lower .Name}} {{title \"hello world\"}}", "/WEB /web Hello World"),
    ('{{join .Config.Env ","}} {{split "a:b" ":"}} {{len .Config.Env}}', "A=1,B=2 [a b] 2"),
    ('{{printf "%.3s|%5d|%-4s|%q|%x|%05.1f" "abcdef" .State.Pid "x" .Name 255 3.14159}}',
     '  abc|    5|x   |"/web"|ff|003.1'.lstrip()),
    ('{{printf "%d %s" 1}}', "1 %!s(MISSING)"),
    ('{{print 1 2 "a" 3}}|{{println "a" 1}}', "1 2a3|a 1\n"),
    ('{{truncate .Name 2}}|{{pad "x" 1 2}}|', "/w| x  |"),
    ("{{json .Config.Labels}} {{json .Empty}} {{json .Null}}", '{"team":"a","tier":"db"} [] null'),
    ("{{.Config.Labels}} {{.Config.Env}} {{.Null}} {{.Empty}}", "map[team:a tier:db] [A=1 B=2] <no value> []"),
    ("{{.Big}} {{.Odd}} {{.Half}}", "1e+06 1.234567e+06 0.5"),  # %v of a float64
    ("{{and .State.Running .Name}} {{or .Null .Empty \"dflt\"}} {{and .Null .Name}}", "/web dflt <no value>"),
    ("{{lt 1 2}} {{ge \"b\" \"a\"}} {{ne 1 2}} {{eq .State.Status \"x\" \"running\"}}", "true true true true"),
    ('{{slice .Name 1 3}} {{index .Config.Env 1}}', "we B=2"),
    ("a {{- \"b\" -}}  c{{/* a comment */}}", "abc"),
    ("{{'a'}} {{0x10}} {{1_000}} {{-3}} {{010}} {{\"\\x41\\101\\u00e9\"}}", "97 16 1000 -3 8 AAé"),
    ('{{printf "%s|%v|%q" 5 .Null "\\t\\x01"}}', '%!s(int=5)|<nil>|"\\t\\x01"'),
    ('{{printf "\\"%s\\"" .Name}} {{\'\\\'\'}} {{\'"\'}}', '"/web" 39 34'),  # \" in a string, \' in a rune
    ("{{title \"o'neil mc-d_x\"}} {{pad \"\" 1 1}}|", "O'Neil Mc-D_x |"),
    ('{{html "<a href=\'x\'>"}} {{urlquery "a b&c"}}', "&lt;a href=&#39;x&#39;&gt; a+b%26c"),
])
def test_a_format_is_go_s_text_template(template, expected):
    """docker's --format is Go's text/template: mrun read {{.Field}} and {{json .Field}} alone and
    refused the rest, so the usual reads of an address or a label ({{range
    .NetworkSettings.Networks}}{{.IPAddress}}{{end}}, {{index .Config.Labels "k"}}, {{.Label "k"}}
    of ps) failed. The outputs here were compared with Go 1.19's text/template and docker's
    functions (cli/templates) run over the same document; where docker's fields are typed (a
    label map's missing key is "", a Pid an int) they are docker's. ``range`` over an int is
    Go 1.22's."""
    from mrun.cli.template import render

    assert render(template, INSPECTED) == expected


@pytest.mark.parametrize("template, needle", [
    ("{{.Nope}}", "no field 'Nope'"), ("{{template \"x\"}}", "not supported"), ("{{if .Name}}", "has no {{end}}"),
    ("{{end}}", "without an if"), ("{{nope .Name}}", "function 'nope' not defined"),
    ("{{.Name \"x\"}}", "not a method"),
    ("{{index .Config.Env 5}}", "index out of range"), ('{{eq 1 "a"}}', "incompatible types"),
    ("{{range .Name}}{{end}}", "range can't iterate over /web"), ("{{$y}}", "undefined variable: $y"),
    ("{{range .Empty}}{{else if .Name}}{{end}}", "else, else if or else with expected"), ("{{not}}", "not"),
    ('{{"open}}', "not closed"), ("{{.State.Pid.X}}", "'X' is not a field here"), ("{{eq 1 1.0}}", "incompatible"),
    ('{{"a\nb"}}', "not closed"), ("{{js .Name}}", "not supported"), ("{{if 1}}{{break}}{{end}}", "outside {{range}}"),
    ("{{if 1}}" * 5000 + "{{end}}" * 5000, "nested deeper"),
    ("{{" + "(" * 5000 + "1" + ")" * 5000 + "}}", "nested deeper"),
])
def test_a_format_go_would_refuse_is_one_line(template, needle):
    from mrun.cli.template import TemplateError, render

    with pytest.raises(TemplateError) as e:
        render(template, INSPECTED)
    assert needle in str(e.value) and "\n" not in str(e.value) and str(e.value).startswith("--format ")


def test_a_listing_row_has_docker_s_label_method_and_its_header():
    """ps, volume ls and network ls: {{.Label "KEY"}}, "" for a label it has not; its table header
    is the key's last part (docker's SubHeaderContext.Label); a field no row has is refused, rows
    or none."""
    from mrun.cli.listing import formatted
    from mrun.cli.template import Row, label_method

    rows = [Row({"Names": "a", "Labels": "com.example.team=x"}, label_method({"com.example.team": "x"})),
            Row({"Names": "b", "Labels": ""}, label_method({}))]
    headers = {"Names": "NAMES", "Labels": "LABELS"}
    assert formatted('table {{.Names}}\\t{{.Label "com.example.team"}}', rows, headers) == [
        "NAMES     team", "a         x", "b         "]
    assert formatted('{{if .Label "com.example.team"}}{{.Names}}{{end}}', rows, headers) == ["a", ""]
    with pytest.raises(InvalidSpec, match="no field 'Nope'"):
        formatted("{{range .Names}}{{end}}{{.Nope}}", [], headers)


def test_publish_all_takes_the_image_s_exposed_ports_but_never_too_many():
    """-P: the image's ExposedPorts and --expose, on host ports the host chooses (no host port in
    the -p list), but a port -p publishes already. An image's ExposedPorts steer nothing without
    -P, and with it a malformed or huge list is refused naming the image's field."""
    from mrun.errors import InvalidSpec
    from mrun.images.run_flags import exposed, publish_all
    from mrun.network.attach import parse_ports

    assert exposed(["80", "53/udp", "8000-8002"]) == ["80/tcp", "53/udp", "8000/tcp", "8001/tcp", "8002/tcp"]
    got = publish_all("8080:80", {"80/tcp": {}, "443/tcp": {}}, ["9000/udp"])
    assert got == "8080:80,443/tcp,9000/udp"
    assert [(p["host_port"], p["port"], p["proto"]) for p in parse_ports(got)] == [
        (8080, 80, "tcp"), (0, 443, "tcp"), (0, 9000, "udp")]
    assert parse_ports("127.0.0.1::80")[0] == {"host_ip": "127.0.0.1", "host_port": 0, "port": 80, "proto": "tcp"}
    with pytest.raises(InvalidSpec, match="not an IPv4 address"):  # a byte of argv not UTF-8: UnicodeEncodeError
        parse_ports("127.0.0.\udcff::80")
    assert publish_all("", None, []) == "" and publish_all("", ["80/tcp"], []) == ""  # not a map: nothing
    for image_ports, needle in (({"1-65535/tcp": {}}, "more than 100"), ({"99999/tcp": {}}, "ExposedPorts '99999/tcp'"),
                                ({f"{p}/tcp": {} for p in range(1, 200)}, "199 exposed ports"),
                                ({"80/sctp": {}}, "ExposedPorts '80/sctp'")):
        with pytest.raises(InvalidSpec, match=needle):
            publish_all("", image_ports, [])


def test_a_health_check_is_the_image_s_with_the_flags_over_it():
    """docker's merge: the image's Healthcheck (nanoseconds; CMD and CMD-SHELL forms; NONE: none),
    each --health-* field over it, --no-healthcheck none at all; Go durations checked."""
    from mrun.errors import InvalidSpec
    from mrun.images.health import check_from
    from mrun.units import go_duration

    image = {"Test": ["CMD", "/bin/check", "-q"], "Interval": 5_000_000_000, "Retries": 7}
    assert check_from({}, image) == {"test": ["/bin/check", "-q"], "interval": 5.0, "timeout": 30.0,
                                     "start_period": 0.0, "start_interval": 5.0, "retries": 7}
    assert check_from({}, {**image, "StartInterval": 2_000_000_000})["start_interval"] == 2.0
    assert check_from({"start_interval": "250ms"}, image)["start_interval"] == 0.25
    assert check_from({"cmd": "true", "timeout": "1m30s"}, image)["test"] == ["/bin/sh", "-c", "true"]
    assert check_from({"cmd": "true", "timeout": "1m30s"}, image)["timeout"] == 90.0
    assert check_from({"none": True}, image) is None and check_from({}, {"Test": ["NONE"]}) is None
    assert check_from({}, None) is None and check_from({}, {"Test": "not a list"}) is None
    shell = check_from({}, {"Test": ["CMD-SHELL", "curl -f localhost"]})
    assert shell["test"] == ["/bin/sh", "-c", "curl -f localhost"]
    with pytest.raises(InvalidSpec, match="Healthcheck.Test"):
        check_from({}, {"Test": ["CMD-SHELL", "a", "b"]})
    hammering = {"Test": ["CMD", "true"], "Interval": 1}  # an image asking for a check every nanosecond
    with pytest.raises(InvalidSpec, match="Healthcheck.Interval 1: less than 1ms"):
        check_from({}, hammering)
    assert check_from({"interval": "10s"}, hammering)["interval"] == 10.0
    for field in ("Interval", "Timeout", "StartPeriod", "StartInterval", "Retries"):  # past Go's int64
        with pytest.raises(InvalidSpec, match=f"Healthcheck.{field} {2**70}: out of range"):
            check_from({}, {"Test": ["CMD", "true"], field: 2**70})
    assert [go_duration(t) for t in ("1h30m", "500ms", "0", "1.5s", "10", "", "5x")] == [5400, 0.5, 0, 1.5, None,
                                                                                          None, None]
    # Go's limit (an int64 of nanoseconds); 400 digits were float's inf, and int() of it an OverflowError
    assert go_duration("2562047h") == 2562047 * 3600 and go_duration("2562048h") is None
    assert go_duration("9" * 400 + "h") is None
    from mrun.cli.filters import log_time

    for text in ("9" * 400 + "h", "9" * 5000, "৯৯"):  # (\d took "৯"; int() reads 4300 digits at most)
        with pytest.raises(InvalidSpec, match="a time"):
            log_time("--since", text, 0)


def test_decimal_reads_what_go_s_atoi_reads():
    """mrun.units.decimal, the one reading of a number a flag, a file or a name gives: ASCII
    digits only (str.isdigit took "²", which int() refuses, and "৯", which int() reads as 9), at
    most twenty of them (int() refuses past 4300: a ValueError), at most ``most``."""
    from mrun.units import INT64_MAX, decimal

    assert [decimal(t) for t in ("0", "007", "80", str(INT64_MAX))] == [0, 7, 80, INT64_MAX]
    assert [decimal(t) for t in ("", "-1", "+1", " 1", "1_0", "1.0", "²", "৯", "0x10", str(INT64_MAX + 1))] \
        == [None] * 10
    assert decimal("9" * 20, 10**20) == 10**20 - 1 and decimal("0" * 21) is None and decimal("9" * 5000) is None
    assert decimal("65535", 65535) == 65535 and decimal("65536", 65535) is None
    from mrun.units import go_int

    assert [go_int(t) for t in ("0", "-1", "+7", str(-INT64_MAX - 1), str(INT64_MAX))] == [0, -1, 7, -INT64_MAX - 1,
                                                                                            INT64_MAX]
    assert [go_int(t) for t in ("", "-", "+-1", "--1", " 1", "1_0", "৯", str(INT64_MAX + 1))] == [None] * 8


def test_a_supervisor_never_waits_longer_than_select_can_for_a_health_check():
    """An interval or timeout past ~292 years (an image's Healthcheck, a hand-written bundle
    annotation: JSON's Infinity passes the supervisor's shape check) made its select() raise
    OverflowError: the supervisor died, and its container's exit code was lost. It looks again
    after a day at most."""
    import select

    from mrun.images.health import MAX_WAIT, Checker

    for check in ({"interval": float("inf"), "timeout": 30.0}, {"interval": 2.0**70, "timeout": 30.0}):
        checker = Checker.__new__(Checker)
        checker.check, checker.pid, checker.due = check, 0, check["interval"]
        wait = checker.wait_for()
        assert wait == MAX_WAIT
        select.select([], [], [], wait / 1e9)  # a timeout select takes (scaled down: this test does not wait a day)


def test_a_log_time_is_read_to_the_nanosecond():
    """`logs --since/--until`: a line's own time, as `logs -t` prints it, read back exactly (through
    a float it came back up to 256 ns later, and --since left that line out); a zone, a date
    alone, a Unix time and a Go duration ago."""
    import calendar

    from mrun.cli.filters import log_time
    from mrun.errors import InvalidSpec

    base = calendar.timegm((2026, 12, 1, 14, 0, 0)) * 10**9
    assert log_time("--since", "2026-12-01T14:00:00.123456050Z", 0) == base + 123_456_050
    assert log_time("--since", "2026-12-01T15:00:00.5+01:00", 0) == base + 500_000_000
    assert log_time("--since", "2026-12-01T14:00:00Z", 0) == base
    assert log_time("--since", "1796133600.000000001", 0) == 1796133600 * 10**9 + 1
    assert log_time("--since", "10m", 10**12) == 10**12 - 600 * 10**9
    assert log_time("--since", "2026-12-01", 0) % 10**9 == 0  # midnight, local time
    for bad in ("yesterday", "2026-13-45", "2026-12-01T14:00:00.1234567891Z", "10x"):
        with pytest.raises(InvalidSpec, match="--since"):
            log_time("--since", bad, 0)


class _Killed(BaseException):
    """The supervisor's death at an instant of its rotation (not an OSError: nothing catches it)."""


@pytest.mark.parametrize("renames_done", range(4))
def test_a_rotation_killed_between_its_renames_never_pairs_a_log_with_another_s_times(tmp_path, monkeypatch,
                                                                                      renames_done):
    """A log rotation renames the log and its index one after the other (log.1 -> log.2,
    log -> log.1, then the same for log.times): a supervisor killed between any two leaves files
    whose names no longer pair. `logs -t` must still give each line its own time (the index names
    its log), and the next supervisor puts each index back beside its log before writing."""
    from mrun.images import log_relay

    bundle = str(tmp_path / "log.times" / "c")  # a directory of that name above does not confuse the pairing
    os.makedirs(bundle)
    relay = log_relay.Relay(bundle, max_size=100, max_files=3)
    n = 0
    while not os.path.exists(os.path.join(bundle, "log.2")):  # three files' worth, each with its index
        n += 1
        relay._take(1, f"line {n}\n".encode(), n)  # a line's time is its number
    real_replace, calls = os.replace, []

    def replace(src: str, dst: str) -> None:
        if len(calls) == renames_done:
            raise _Killed
        calls.append((src, dst))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(_Killed):  # the next rotation, killed after ``renames_done`` of its four renames
        while n < 1000:
            n += 1
            relay._take(1, f"line {n}\n".encode(), n)
    monkeypatch.setattr(os, "replace", real_replace)

    def read() -> list[tuple[int, bytes]]:
        reader = log_relay.TimedReader(bundle)
        try:
            got = [(at, text) for at, text, _starts, _stream in reader.read()]
        finally:
            reader.close()
        assert got, os.listdir(bundle)
        assert all(text == f"line {at}\n".encode() for at, text in got), got  # each line its own time
        times = [at for at, _ in got if at != 5000]
        assert times == list(range(times[0], times[0] + len(times))), times  # in order, none twice, no gap
        return got

    assert read()[-1][0] == n - 1  # every line written before the kill (the one that rotated never was)
    relay = log_relay.Relay(bundle, max_size=100, max_files=3)  # the next supervisor (`mrun start`)
    relay._take(1, b"line 5000\n", 5000)
    assert read()[-1] == (5000, b"line 5000\n")
    for name in os.listdir(bundle):  # each index beside its log
        if name.startswith("log.times"):
            with open(os.path.join(bundle, name), "rb") as f:
                assert log_relay.indexed_log(bundle, f, "") == os.path.join(bundle, "log" + name[len("log.times"):])


def _fill(path: str) -> None:
    """``path`` written until its filesystem is full."""
    filler = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while os.write(filler, b"\0" * 4096):
            pass
    except OSError:
        pass
    finally:
        os.close(filler)


def test_a_full_disk_loses_lines_but_never_garbles_the_log_after_it(tmp_path):
    """A detached container's log on a full disk: its lines are lost while it is full (docker's
    json-file loses them too), but what was written before and after must read back whole, each
    line with its own time. A write cut short left part of a batch in the log and none of its
    index, and the index's offsets ran ahead of the log's for good: every later `logs -t` and
    `--since` printed lines cut in two ("ine 1948" after a stray "l")."""
    import subprocess

    from mrun.cli.log_verbs import _tail_offset
    from mrun.images import log_relay

    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)], check=True)
    relay = None
    try:
        bundle = str(mnt)
        relay = log_relay.Relay(bundle)
        n = 0

        def take(count: int) -> None:
            nonlocal n
            for _ in range(count):
                n += 1
                relay._take(1, f"line {n} {'x' * (n % 300)}\n".encode(), n)

        take(100)
        _fill(str(mnt / "filler"))  # the rest of the disk
        take(2000)  # on the full disk: lost
        relay._take(1, b"a prompt " * 1000, n)  # no newline, lost too: the next line starts its own
        os.unlink(mnt / "filler")
        take(100)
        reader = log_relay.TimedReader(bundle)
        try:
            pieces = list(reader.read())
            got = [(at, text) for at, text, _starts, _stream in pieces]
            assert all(starts for _at, _text, starts, _stream in pieces), [p for p in pieces if not p[2]][:3]
            assert reader.start_at(0)
            start = _tail_offset(reader.log, 3)
            reader.start_at(start)
            tail = [text for _at, text, _starts, _stream in reader.read()]
        finally:
            reader.close()
        assert all(text == f"line {at} {'x' * (at % 300)}\n".encode() for at, text in got), [
            (at, text[:20]) for at, text in got if text != f"line {at} {'x' * (at % 300)}\n".encode()][:3]
        assert [at for at, _ in got][:100] == list(range(1, 101))  # before: every line
        assert [at for at, _ in got][-100:] == list(range(n - 99, n + 1))  # after: every line
        assert tail == [f"line {at} {'x' * (at % 300)}\n".encode() for at in range(n - 2, n + 1)]
    finally:
        for fd in relay.fds() if relay else []:
            os.close(fd)
        subprocess.run(["umount", str(mnt)], check=True)


def test_a_record_written_on_a_full_disk_names_its_file_and_leaves_no_part(tmp_path):
    """`mrun run` with its state root full said "run: No space left on device", naming nothing
    (the error comes at close, without a file), and left the half-written temporary file."""
    import errno
    import subprocess

    from mrun import jsonio

    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], check=True)
    try:
        _fill(str(mnt / "filler"))
        target = str(mnt / "state.json")
        with pytest.raises(OSError) as raised:
            jsonio.replace_file(target, {"x": "y" * 100000}, tmp=target + ".tmp")
        assert raised.value.errno == errno.ENOSPC and raised.value.filename == target
        assert sorted(os.listdir(mnt)) == ["filler"]
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def test_a_log_read_whole_or_from_its_tail_gives_each_stream_its_bytes_in_order(tmp_path):
    """`mrun logs` reads a noted log through its index (stderr on stderr, as docker's): runs of one
    stream come as one piece, and --tail starts at the index entry found by bisection; neither
    may lose, repeat or misplace a byte of either stream."""
    from mrun.cli.log_verbs import _tail_offset
    from mrun.images import log_relay

    relay = log_relay.Relay(str(tmp_path))
    wrote: dict[int, bytes] = {1: b"", 2: b""}
    for i in range(30000):
        stream = 2 if i % 997 in (3, 4) else 1
        text = f"{i} {'x' * (i % 50)}\n".encode() if i % 13 else f"{i} partial ".encode()  # some go on as c pieces
        relay._take(stream, text, i)
        wrote[stream] += text
    got: dict[int, bytes] = {1: b"", 2: b""}
    reader = log_relay.TimedReader(str(tmp_path))
    pieces = list(reader.read(whole=True))
    reader.close()
    for _at, text, _starts, stream in pieces:
        got[stream] += text
    assert got == wrote
    assert len(pieces) < 200  # runs, not lines
    reader = log_relay.TimedReader(str(tmp_path))
    assert reader.start_at(0)
    start = _tail_offset(reader.log, 5)
    reader.start_at(start)
    with open(os.path.join(str(tmp_path), "log"), "rb") as f:
        assert b"".join(p[1] for p in reader.read()) == f.read()[start:]
    reader.close()


def test_a_copied_log_keeps_its_times(tmp_path):
    """A container's files copied elsewhere (a backup restored, the image root moved with rsync)
    have new inodes, which no index names: `logs` and `logs -t` still read every line with its
    time, and the next supervisor makes each index name its log again, so rotations after it
    pair as before."""
    import shutil

    from mrun.images import log_relay

    original = str(tmp_path / "a")
    os.makedirs(original)
    relay = log_relay.Relay(original, max_size=100, max_files=3)
    for n in range(1, 40):
        relay._take(1 + n % 2, f"line {n}\n".encode(), n)  # both streams
    copy = str(tmp_path / "b")
    shutil.copytree(original, copy)

    def read(bundle: str) -> list[int]:
        reader = log_relay.TimedReader(bundle)
        try:
            got = list(reader.read())
        finally:
            reader.close()
        assert all(text == f"line {at}\n".encode() and stream == 1 + at % 2 for at, text, _s, stream in got), got
        return [at for at, *_ in got]

    kept = read(original)
    assert kept[-1] == 39 and kept == list(range(kept[0], 40))
    assert read(copy) == kept  # not one line lost for the new inodes
    relay = log_relay.Relay(copy, max_size=100, max_files=3)  # the next supervisor, on the copy
    for n in range(40, 60):
        relay._take(1 + n % 2, f"line {n}\n".encode(), n)
    after = read(copy)
    assert after[-1] == 59 and after == list(range(after[0], 60)), after
    for name in os.listdir(copy):  # each index names the inode of the log beside it
        if name.startswith("log.times"):
            with open(os.path.join(copy, name), "rb") as f:
                assert log_relay.indexed_log(copy, f, "") == os.path.join(copy, "log" + name[len("log.times"):])


def test_thawing_a_v1_cgroup_removed_meanwhile_is_done():
    """`mrun stop` SIGKILLs a container frozen (no fork outruns it), then thaws it: its processes
    die, and a `run -d --rm` supervisor removes the cgroup at once. The thaw's read-back then
    found no freezer.state, and `stop` failed ("No such file or directory") on a container it had
    stopped. A cgroup gone while thawing is thawed; freezing one that is gone still fails."""
    from mrun.cgroups.v1 import CgroupV1

    base = "/sys/fs/cgroup/freezer"
    if not os.path.isdir(base):
        pytest.skip("no v1 freezer hierarchy on this host (the v2 driver reads cgroup.events, which cannot fail so)")
    path = os.path.join(base, f"mrun-test-{uuid.uuid4().hex[:8]}")
    os.mkdir(path)
    try:
        cg = CgroupV1({"freezer": path})
        cg.set_frozen(True)
        cg.set_frozen(False)
    finally:
        os.rmdir(path)
    cg.set_frozen(False)  # gone: nothing to thaw
    with pytest.raises(MrunError):
        cg.set_frozen(True)


def test_a_default_spec_shares_no_list_with_the_next():
    """The warm template and the shim make many specs in one process: a caller that extended its
    spec's masked paths in place (the tests' own configs did) masked them in every later one."""
    from mrun.defaults import default_spec

    first = default_spec()
    first["linux"]["maskedPaths"] += ["/etc/group"]
    first["linux"]["readonlyPaths"].append("/etc")
    first["process"]["capabilities"]["bounding"].append("CAP_SYS_ADMIN")
    second = default_spec()
    assert "/etc/group" not in second["linux"]["maskedPaths"]
    assert "/etc" not in second["linux"]["readonlyPaths"]
    assert "CAP_SYS_ADMIN" not in second["process"]["capabilities"]["bounding"]


def test_the_tar_walk_of_import_follows_headers_across_reads_and_refuses_what_is_no_tarball():
    """import's TarWalk (images.tarball_import): headers found whatever the read sizes, the end
    found at the first zero block, a bounded tail after it, a bad checksum or a negative size
    (base-256) refused at once."""
    import io
    import tarfile

    from mrun.errors import InvalidSpec
    from mrun.images.tarball_import import TRAILING_MAX, TarWalk

    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, size in (("a", 0), ("b", 700), ("c" * 150, 3)):  # c: a GNU long name, its own block
            info = tarfile.TarInfo(name)
            info.size = size
            tar.addfile(info, io.BytesIO(b"x" * size))
    data = out.getvalue()
    for chunk in (1, 7, 512, 1000, len(data)):
        walk = TarWalk("import t")
        for i in range(0, len(data), chunk):
            walk.feed(data[i:i + chunk])
        assert walk.ended > 0 and walk.ended <= len(data), chunk
    walk.feed(b"\0" * (TRAILING_MAX - (walk.pos - walk.ended)))  # up to the bound: taken
    with pytest.raises(InvalidSpec, match="after the tarball's end"):
        walk.feed(b"\0")
    bad = bytearray(data[:512])
    bad[0] ^= 1  # the name changed, the checksum not
    with pytest.raises(InvalidSpec, match="no tar header"):
        TarWalk("import t").feed(bytes(bad))
    negative = bytearray(data[:512])
    negative[124:136] = b"\xff" * 12  # base-256 minus one
    negative[148:156] = b" " * 8
    negative[148:156] = f"{sum(negative):06o}\0 ".encode()
    with pytest.raises(InvalidSpec, match="no tar header"):
        TarWalk("import t").feed(bytes(negative))


def test_device_rules_are_a_whitelist_whatever_the_spec_names():
    """runc's: deny all first, the spec's rules, the devices it makes and the defaults over that.
    A spec with no rules had none written (every host device open to its container); an update
    (no "devices" in its resources) writes none, so create's stay."""
    from mrun.cgroups.devices import emulate
    from mrun.cgroups.resources import DEFAULT_DEVICE_RULES, device_rules

    usual = device_rules({"devices": [{"allow": False, "access": "rwm"}]}, [])
    assert usual[0] == "deny a" and usual.count("deny a") == 1
    assert device_rules({"devices": []}, []) == usual
    assert emulate(device_rules({"devices": []}, []))[0] is False  # a whitelist
    assert len(device_rules({"devices": []}, [])) == len(DEFAULT_DEVICE_RULES) + 1
    made = device_rules({"devices": []}, [{"type": "b", "major": 8, "minor": 0}])
    assert made[0] == "deny a" and "allow b 8:0 rwm" in made
    assert device_rules({"devices": [{"allow": True, "access": "rwm"}]}, [])[:2] == ["deny a", "allow a"]
    assert emulate(device_rules({"devices": [{"allow": True, "access": "rwm"}]}, []))[0] is True  # --privileged
    assert device_rules({"memory": {"limit": 1 << 26}}, []) == []  # an update's


def test_a_shim_pod_s_files_go_into_its_containers_where_they_have_none_of_their_own():
    """pod_files.amend: CRI's mounts of a pod's files, for the pod's containers only; kubelet's
    own (a bind at /etc/hosts or /dev/shm) stay, CRI's default /dev/shm tmpfs gives way."""
    from mrun.shims import wire
    from mrun.shims.pod_files import amend, resolv_conf
    from mrun.shims.sandbox import dns_config

    files = {"/etc/hostname": "/b/pod-files/hostname", "/etc/hosts": "/b/pod-files/hosts",
             "/etc/resolv.conf": "/b/pod-files/resolv.conf", "/dev/shm": "/b/pod-files/shm"}
    ours = {"io.kubernetes.cri.sandbox-id": "pod1", "io.kubernetes.cri.container-type": "container"}
    default_shm = {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid"]}
    pod_ipc = {"namespaces": [{"type": "ipc", "path": "/proc/7/ns/ipc"}]}
    config = {"root": {"path": "rootfs", "readonly": True}, "annotations": ours, "linux": pod_ipc,
              "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}, default_shm,
                         {"destination": "/etc/hosts/", "type": "bind", "source": "/kubelet/etc-hosts"}]}
    amend({"pod1": files}, config)
    by_destination = {m["destination"]: m for m in config["mounts"]}
    assert [m["destination"] for m in config["mounts"]] == [
        "/proc", "/dev/shm", "/etc/hosts/", "/etc/hostname", "/etc/resolv.conf"]  # in place; kubelet's kept
    assert by_destination["/dev/shm"]["source"] == "/b/pod-files/shm"
    assert "rw" in by_destination["/dev/shm"]["options"]  # the pod's, whatever the root is
    assert by_destination["/etc/resolv.conf"]["options"][:3] == ["rbind", "rprivate", "ro"]
    assert by_destination["/etc/hosts/"]["source"] == "/kubelet/etc-hosts"
    emptydir = {"destination": "/dev/shm", "type": "bind", "source": "/kubelet/memory", "options": ["rbind"]}
    for others in ({**ours, "io.kubernetes.cri.sandbox-id": "other"},
                   {**ours, "io.kubernetes.cri.container-type": "sandbox"}, {}):
        config = {"root": {"path": "rootfs"}, "annotations": others, "mounts": [dict(default_shm)]}
        amend({"pod1": files}, config)
        assert config["mounts"] == [default_shm], others  # not this pod's container
    config = {"root": {"path": "rootfs"}, "annotations": ours, "linux": pod_ipc, "mounts": [emptydir]}
    amend({"pod1": files}, config)
    assert config["mounts"][0] == emptydir and "rw" in config["mounts"][-1]["options"]
    # a container in the node's IPC namespace (hostIPC: no ipc entry) gets the node's /dev/shm, as
    # under CRI, the pod's having none; one of a hostIPC pod in an IPC namespace of its own, none
    node_pod = {k: v for k, v in files.items() if k != "/dev/shm"}
    for linux, shm in (({}, "/dev/shm"), (pod_ipc, "shm")):
        config = {"root": {"path": "rootfs"}, "annotations": ours, "linux": linux, "mounts": [dict(default_shm)]}
        amend({"pod1": node_pod}, config)
        assert config["mounts"][0]["source"] == shm, config["mounts"]
    # kubelet's dnsConfig read by field number, as CRI writes it
    dns = b"".join(wire.field(n, v) for n, v in ((1, "10.96.0.10"), (1, "10.0.0.2"), (2, "svc.local"), (3, "ndots:5")))
    url = "type.googleapis.com/runtime.v1.PodSandboxConfig"
    parsed = dns_config(url, wire.field(2, "h") + wire.field(4, dns))
    assert parsed == (["10.96.0.10", "10.0.0.2"], ["svc.local"], ["ndots:5"])
    assert resolv_conf(parsed) == b"search svc.local\nnameserver 10.96.0.10\nnameserver 10.0.0.2\noptions ndots:5\n"
    assert dns_config(url, wire.field(2, "h")) is None and dns_config("other", dns) is None
    assert dns_config(url, b"\x22\x00") == ([], [], [])  # an empty dnsConfig: an empty file, as CRI writes
    assert dns_config(url, b"\xff") is None  # not a message: the node's file


def test_a_binary_log_uri_gives_the_logger_argv_containerd_s_runc_shim_gives_it():
    """binary:///path?key=value: the path, then each key and its first value (Go's url.Values),
    decoded; a URI that names no absolute path is refused in words."""
    from mrun.shims.binary_log import command

    assert command("binary:///usr/bin/logger?a=1&b&a=2&c=x%20y") == ["/usr/bin/logger", "a", "1", "b", "", "c", "x y"]
    assert command("binary:///opt/log%20it") == ["/opt/log it"]
    for bad in ("binary://relative/logger", "binary://", "binary:relative"):
        with pytest.raises(ValueError, match="absolute path"):
            command(bad)

"""Shared fixtures: real kernel, real busybox, a private state root and cgroup parent per test.

Nothing here is mocked. A missing component (root, busybox-static, runc, containerd...) fails
the test with the command that installs it; `.ci/run` installs all of them first.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from typing import Any

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "examples"))

from busybox_bundle import make_oci_archive, make_rootfs, write_config  # noqa: E402
from mrun.defaults import default_spec  # noqa: E402

CGROUP_ROOT = "/sys/fs/cgroup"


def require(binary: str, package: str) -> str:
    path = shutil.which(binary)
    if not path:
        pytest.fail(f"{binary} is missing: apt-get install -y {package}")
    return path


def mrun_binary() -> str:
    candidate = os.path.join(os.path.dirname(sys.executable), "mrun")
    if os.path.exists(candidate):
        return candidate
    return require("mrun", "(pip install -e .)")


def cgroup_dirs(relative: str) -> list[str]:
    """Every existing directory for ``relative`` across the host's cgroup hierarchies."""
    found = []
    if os.path.exists(os.path.join(CGROUP_ROOT, "cgroup.controllers")):
        candidates = [os.path.join(CGROUP_ROOT, relative.lstrip("/"))]
    else:
        candidates = [os.path.join(CGROUP_ROOT, c, relative.lstrip("/")) for c in os.listdir(CGROUP_ROOT)]
    for d in candidates:
        if os.path.isdir(d):
            found.append(d)
    return found


def open_to_others(path: str) -> None:
    """``path`` and every directory above it readable and searchable by others: a user
    namespace's root is another uid on the host, and pytest's directories are 0700."""
    d = str(path)
    while d != "/":
        os.chmod(d, os.stat(d).st_mode | 0o005)
        d = os.path.dirname(d)


def children_of(pid: int) -> list[int]:
    """The children of ``pid``'s main thread (a gone process has none)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def processes_mentioning(text: str) -> list[int]:
    """Live (non-zombie) processes whose command line contains ``text``."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read().decode(errors="replace")
            with open(f"/proc/{entry}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if text in cmd and state not in ("Z", "X"):
            pids.append(int(entry))
    return pids


def process_report(text: str) -> str:
    """Where each process whose command line contains ``text`` is stuck, and each of its
    descendants (a shell waits for its child), with its v1 freezer's state: for a test that timed
    out waiting for one, so that a rare hang says which process held it up, and in what."""
    lines = []
    pids, seen = list(processes_mentioning(text)), set()
    while pids:
        pid = pids.pop(0)
        if pid in seen:
            continue
        seen.add(pid)
        pids += children_of(pid)
        facts = [str(pid)]
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                facts.append("cmdline: " + f.read().replace(b"\0", b" ").decode(errors="replace").strip()[:120])
            with open(f"/proc/{pid}/cgroup") as f:
                frozen = [line.rstrip("\n").split(":", 2)[2] for line in f if ":freezer:" in line]
            with open(f"/sys/fs/cgroup/freezer{frozen[0]}/freezer.state") as f:
                facts.append(f"freezer {frozen[0]}: {f.read().strip()}")
        except (OSError, IndexError):
            pass
        for name in ("status", "wchan", "stack"):
            try:
                with open(f"/proc/{pid}/{name}") as f:
                    data = f.read()
            except OSError as e:
                data = f"({e.strerror})"
            if name == "status":
                wanted = ("Name", "State", "PPid", "NSpid", "Threads", "SigQ", "SigPnd", "ShdPnd", "SigBlk", "SigIgn",
                          "SigCgt")
                data = " ".join(line.replace("\t", "") for line in data.splitlines() if line.startswith(wanted))
            facts.append(f"{name}: {data.strip()}")
        lines.append("; ".join(facts))
    return "\n".join(lines) or f"no process mentions {text!r}"


@pytest.fixture(scope="session")
def busybox_rootfs(tmp_path_factory: pytest.TempPathFactory) -> str:
    if os.geteuid() != 0:
        pytest.fail("the runtime tests need root (namespaces, cgroups, mounts)")
    require("busybox", "busybox-static")
    rootfs = str(tmp_path_factory.mktemp("busybox") / "rootfs")
    make_rootfs(rootfs)
    return rootfs


class Harness:
    """One test's world: its own --root, cgroup parent, bundles and the mrun binary."""

    def __init__(self, tmp: str, rootfs: str) -> None:
        self.tmp = tmp
        self.rootfs = rootfs
        self.root = os.path.join(tmp, "state")
        self.tag = f"mrun-test-{uuid.uuid4().hex[:10]}"
        self.cgroup_parent = f"/{self.tag}"
        self.binary = mrun_binary()
        self.mountinfo_before = self._mount_points()
        self.ids: list[str] = []
        self.base_env: dict[str, str] = {}  # e.g. MRUN_WARM=0 for a test's cold variant

    @staticmethod
    def _mount_points() -> set[str]:
        with open("/proc/self/mountinfo") as f:
            return {line.split()[4] for line in f}

    def cid(self, name: str = "c") -> str:
        cid = f"{name}-{uuid.uuid4().hex[:6]}"
        self.ids.append(cid)
        return cid

    def config(self, args: list[str], **changes: Any) -> dict[str, Any]:
        cfg = default_spec()
        cfg["process"]["terminal"] = False
        cfg["process"]["args"] = args
        cfg["root"] = {"path": self.rootfs, "readonly": True}
        cfg["linux"]["cgroupsPath"] = f"{self.cgroup_parent}/{uuid.uuid4().hex[:8]}"
        cfg.update(changes)
        return cfg

    def bundle(self, args: list[str] | None = None, config: dict[str, Any] | None = None, **changes: Any) -> str:
        path = os.path.join(self.tmp, f"bundle-{uuid.uuid4().hex[:8]}")
        os.makedirs(path)
        write_config(path, config if config is not None else self.config(args or ["true"], **changes))
        return path

    def mrun(
        self, *args: str, timeout: float = 60, env: dict[str, str] | None = None, preexec_fn: Any = None
    ) -> subprocess.CompletedProcess[str]:
        """Run mrun with output captured through files, not pipes: a created or detached
        container inherits mrun's stdio, and a pipe would stay open as long as it lives.
        ``preexec_fn``: sets up the caller (what it ignores, its prctl state...) before the exec."""
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            proc = subprocess.run(
                [self.binary, "--root", self.root, *args],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                timeout=timeout,
                check=False,
                env={**os.environ, **self.base_env, **(env or {})},
                preexec_fn=preexec_fn,
            )
            out.seek(0)
            err.seek(0)
            return subprocess.CompletedProcess(proc.args, proc.returncode, out.read(), err.read())

    def ok(self, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        r = self.mrun(*args, **kw)
        assert r.returncode == 0, f"mrun {' '.join(args)} failed ({r.returncode}): {r.stderr}{warm_evidence(r.stderr)}"
        return r

    def status(self, cid: str) -> str:
        r = self.mrun("state", cid)
        if r.returncode != 0:
            return "gone"
        return json.loads(r.stdout)["status"]

    def wait_status(self, cid: str, want: str, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while (st := self.status(cid)) != want:
            assert time.monotonic() < deadline, f"{cid} is {st}, expected {want}"
            time.sleep(0.02)

    def leftovers(self) -> list[str]:
        """What a test must never leave behind: state, cgroups, mounts, processes."""
        found = []
        if os.path.isdir(self.root) and os.listdir(self.root):
            found.append(f"state dirs: {os.listdir(self.root)}")
        for d in cgroup_dirs(self.cgroup_parent):
            children = [e for e in os.listdir(d) if os.path.isdir(os.path.join(d, e))]
            if children:
                found.append(f"cgroups under {d}: {children}")
        new_mounts = self._mount_points() - self.mountinfo_before
        if new_mounts:
            found.append(f"mounts: {sorted(new_mounts)}")
        procs = processes_mentioning(self.root)
        if procs:
            found.append(f"processes: {procs}")
        return found

    def cleanup(self) -> None:
        for cid in os.listdir(self.root) if os.path.isdir(self.root) else []:
            if not cid.startswith("."):
                self.mrun("delete", "--force", cid)
        for pid in processes_mentioning(self.root):
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        for d in sorted(cgroup_dirs(self.cgroup_parent), key=len, reverse=True):
            for sub, _dirs, _files in sorted(os.walk(d, topdown=False), key=lambda x: -len(x[0])):
                try:
                    os.rmdir(sub)
                except OSError:
                    pass


@pytest.fixture
def h(tmp_path: Any, busybox_rootfs: str) -> Any:
    harness = Harness(str(tmp_path), busybox_rootfs)
    yield harness
    left = harness.leftovers()
    harness.cleanup()
    assert not left, f"test left things behind: {left}"
    assert not (made := shared_rootfs_written(busybox_rootfs)), (
        f"a bundle on the shared rootfs made {made} in it (its config has no /dev tmpfs, or a mount target mrun "
        "had to make): give that bundle a rootfs of its own (make_rootfs); removed now")


def shared_rootfs_written(rootfs: str) -> list[str]:
    """What runs made in the shared busybox rootfs's /dev, removed. A bundle without a /dev
    tmpfs gets its device nodes made in the rootfs's own /dev, as runc makes them (and a mount
    target its directory): on the rootfs every bundle test shares, a later copy of it read
    /dev/full for ever and filled the disk (80 GB, a CI run lost)."""
    dev = os.path.join(rootfs, "dev")
    made = sorted(os.listdir(dev))
    for name in made:
        path = os.path.join(dev, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)
    return made


IMAGE = "localhost/busybox:latest"


def warm_templates() -> list[str]:
    """Socket paths of the templates serving this test session (MRUN_WARM_DIR is the session's)."""
    directory = os.environ["MRUN_WARM_DIR"]
    return [os.path.join(directory, n) for n in os.listdir(directory) if n.endswith(".sock")]


def template_path(env: dict[str, str] | None = None, wrapper: tuple[str, ...] = (), **kw: Any) -> str:
    """The socket of the template that serves the installed `mrun` in ``env`` (its interpreter
    and sys.path, not pytest's: a template serves only callers with its own), for a caller run
    through ``wrapper`` (setpriv ...) or ``kw``'s preexec_fn: each caller context has its own."""
    code = "from mrun.warm import client; print(client.socket_path())"
    python = os.path.join(os.path.dirname(mrun_binary()), "python")
    return subprocess.run([*wrapper, python, "-c", code], capture_output=True, text=True, env=env, check=True,
                          **kw).stdout.strip()


def await_template(path: str, failure: str = "no template came up") -> dict[str, Any]:
    """The status of the template at ``path`` once it answers (within 20 s, or ``failure``)."""
    from mrun.warm import client

    deadline = time.monotonic() + 20
    while (status := client.status(path)) is None:
        assert time.monotonic() < deadline, failure
        time.sleep(0.05)
    return status


def warm_path() -> str:
    """template_path() for this session's environment, asked once."""
    global _WARM_PATH
    if _WARM_PATH is None:
        _WARM_PATH = template_path()
    return _WARM_PATH


_WARM_PATH: str | None = None


def warm_served() -> dict[int, int]:
    """Callers served so far by each of this session's templates (by pid); one is started if none
    runs, so that a warm variant is warm from its first command."""
    from mrun.warm import client

    path = warm_path()
    if client.status(path) is None:
        subprocess.run([os.path.join(os.path.dirname(mrun_binary()), "mrun"), "ps", "-q"], capture_output=True)
        try:
            await_template(path)
        except AssertionError:
            raise AssertionError(f"no warm template came up at {path}: {warm_log()}") from None
    found = {}
    for p in warm_templates():
        status = client.status(p)
        if status:
            found[status["pid"]] = status["served"]
    return found


def warm_served_fresh() -> dict[int, int]:
    """``warm_served`` once a template of the installed code serves: a test that installed or
    removed a package (a backend's, pip_installed) left the running one stale, and the next call
    runs cold while a new template comes up (it counts from nothing), so a warm test that came
    next saw its first call unserved (test order decided it)."""
    subprocess.run([os.path.join(os.path.dirname(mrun_binary()), "mrun"), "ps", "-q"], capture_output=True)
    return warm_served()


def warm_since(before: dict[int, int]) -> bool:
    """Whether a template served anyone since ``before`` (a new template counts from nothing)."""
    return any(served > before.get(pid, 0) for pid, served in warm_served().items())


def warm_log(directory: str = "") -> str:
    """The last of each template's log in ``directory`` (the session's, by default)."""
    directory = directory or os.environ["MRUN_WARM_DIR"]
    return "".join(open(os.path.join(directory, n)).read()[-2000:] for n in os.listdir(directory) if n.endswith(".log"))


# Directories on the machine that the suite cannot point elsewhere: containerd 1.6's runc shim
# puts its socket under /run/containerd/s (a constant in its shim library: 2.x takes socket_dir),
# and mrun's shim uses /run/mrun-shim where containerd names no socket directory (1.6). Children first.
MACHINE_DIRS = ("/run/containerd/s", "/run/containerd/fifo", "/run/containerd", "/run/mrun-shim")


@contextlib.contextmanager
def machine_dirs_kept() -> Any:
    """Those of MACHINE_DIRS that the block made are removed at its end, once empty (a directory
    that holds anything is someone's in use, and stays). For a whole session, or a bench's
    containerd once stopped: not around one containerd among others, whose shims may be about to
    put a socket in a directory that is empty now. The shims of a containerd just stopped remove
    their sockets as they exit: up to 3 s for that."""
    before = {d for d in MACHINE_DIRS if os.path.lexists(d)}
    try:
        yield
    finally:
        deadline = time.monotonic() + 3
        for d in MACHINE_DIRS:
            while d not in before and os.path.isdir(d):
                try:
                    os.rmdir(d)
                except OSError:
                    if time.monotonic() > deadline:
                        break
                    time.sleep(0.1)


@pytest.fixture(scope="session", autouse=True)
def machine_dirs_left_as_found() -> Any:
    with machine_dirs_kept():
        yield


MRUN_LINKS = ("mrb-", "mrun0", "mrv")  # a network's bridge (mrun0: the default root's default), a veth


def mrun_links() -> set[str]:
    return {n for n in os.listdir("/sys/class/net") if n.startswith(MRUN_LINKS)}


@pytest.fixture(scope="session", autouse=True)
def links_left_as_found() -> Any:
    """mrun's bridges and veths that the whole suite made and left. The `net` fixture checks its
    own bridge and the network tests their veths; a network made anywhere else was checked by
    nothing, and an orphaned bridge of a session's (mrb-..., 10.89.0.1/24) was found on the
    machine hours later. Those left are removed (the host as it was found), then reported."""
    before = mrun_links()
    yield
    deadline = time.monotonic() + 2  # a veth goes with its namespace, some tens of ms later
    while (left := mrun_links() - before) and time.monotonic() < deadline:
        time.sleep(0.05)
    for name in left:
        subprocess.run(["ip", "link", "del", name], capture_output=True)
    assert not left, f"the suite left these network links behind: {sorted(left)}"


HOST_SYSCTLS = ("/proc/sys/net/ipv4/ip_forward",)


@pytest.fixture(scope="session", autouse=True)
def host_sysctls_left_as_found() -> Any:
    """Host-wide settings mrun turns on as docker does: IPv4 forwarding, by every bridge network
    (links.ensure_bridge). The `net` fixture puts back what it found; bridge networks made by other tests
    left it on for the machine after the suite: put back as the suite found it."""
    found = {path: open(path).read() for path in HOST_SYSCTLS}
    yield
    for path, value in found.items():
        with open(path, "w") as f:
            f.write(value)


@pytest.fixture(scope="session", autouse=True)
def warm_dir(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The session's own warm templates (never the node's /run/mrun/.warm), stopped at the end."""
    global _WARM_PATH
    directory = str(tmp_path_factory.mktemp("warm"))
    previous = os.environ.get("MRUN_WARM_DIR")
    os.environ["MRUN_WARM_DIR"] = directory
    _WARM_PATH = None
    yield directory
    stop_templates(directory)
    if previous is None:
        del os.environ["MRUN_WARM_DIR"]
    else:
        os.environ["MRUN_WARM_DIR"] = previous


@pytest.fixture(scope="session", autouse=True)
def module_cache(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The session's compiled-module cache (never the host's /var/cache/mrun/wasm, which a suite
    run used to fill); a test that names its own (MRUN_CACHE_DIR in its env) uses that."""
    previous = os.environ.get("MRUN_CACHE_DIR")
    os.environ["MRUN_CACHE_DIR"] = str(tmp_path_factory.mktemp("module-cache"))
    yield os.environ["MRUN_CACHE_DIR"]
    if previous is None:
        del os.environ["MRUN_CACHE_DIR"]
    else:
        os.environ["MRUN_CACHE_DIR"] = previous


def stop_templates(directory: str) -> None:
    """SIGTERM each template by its pid file (only if that pid is a template), then wait. A
    template still loading holds its lock but has written no pid file yet: it is waited for, so
    one started by the last call before this is stopped too, not left to its idle timeout."""
    from mrun.state import held_by_someone

    stopped: set[int] = set()
    deadline = time.monotonic() + 10
    while True:
        names = os.listdir(directory) if os.path.isdir(directory) else []
        for name in names:
            if not name.endswith(".pid"):
                continue
            try:
                pid = int(open(os.path.join(directory, name)).read())
                if pid not in stopped and open(f"/proc/{pid}/cmdline", "rb").read().startswith(b"mrun-warm-template\0"):
                    os.kill(pid, 15)
                    stopped.add(pid)
            except (OSError, ValueError):
                continue
        locked = [n for n in names if n.endswith(".lock") and held_by_someone(os.path.join(directory, n))]
        if not locked and not any(running(p) for p in stopped):
            return
        assert time.monotonic() < deadline, f"warm templates did not stop: {stopped}, locks held: {locked}"
        time.sleep(0.05)


def veths_left(prefix: str = "mrv", wait: float = 2.0) -> list[str]:
    """mrun's veths still on the host. A pair whose container's namespace has gone is removed by
    the kernel with that namespace some tens of ms later (mrun leaves it to the kernel then: see
    mrun.network.links.remove_veth), so this waits that long for them, and no longer."""
    deadline = time.monotonic() + wait
    while True:
        left = [n for n in os.listdir("/sys/class/net") if n.startswith(prefix)]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.02)


def running(pid: int) -> bool:
    """``pid`` exists and is no zombie (reaped between two looks at /proc, it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def pip_installed(path: str, distribution: str):
    """A backend package installed from ``path`` as a user would (pip), for a fixture to yield in."""
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    r = subprocess.run([*pip, "install", "--no-deps", "--no-build-isolation", path], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    try:
        yield
    finally:
        subprocess.run([*pip, "uninstall", "-y", distribution], capture_output=True, check=True)
CONTAINERD2 = os.path.join(
    os.path.dirname(os.path.dirname(HERE)), "shared", "tools", "containerd-2.3.4-linux-amd64.tar.gz"
)


@pytest.fixture(scope="session")
def containerd2(tmp_path_factory) -> str:
    """The bin/ of containerd 2.3 (containerd, ctr, the runc shim, crictl): $MRUN_TEST_CONTAINERD2 (a
    release tarball or an unpacked bin/ directory), else ../shared/tools' tarball beside this checkout.
    Absent, the tests that need it are skipped and say why; with MRUN_TEST_REQUIRE_CONTAINERD2=1
    (.ci/run) they fail instead."""
    source = os.environ.get("MRUN_TEST_CONTAINERD2") or CONTAINERD2
    if os.path.isdir(source):
        return source
    if not os.path.isfile(source):
        reason = (
            f"containerd 2.x not found at {source}: set MRUN_TEST_CONTAINERD2 to a containerd release "
            "tarball (with crictl) or its bin/ directory"
        )
        if os.environ.get("MRUN_TEST_REQUIRE_CONTAINERD2") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    work = tmp_path_factory.mktemp("containerd2")
    subprocess.run(["tar", "-xzf", source, "-C", str(work)], check=True)
    found = [d for d, _, files in os.walk(work) if "containerd" in files and "ctr" in files]
    if not found:
        pytest.fail(f"{source}: no bin/ with containerd and ctr in it")
    return found[0]


@pytest.fixture(scope="session")
def busybox_archive(tmp_path_factory):
    require("umoci", "umoci")
    require("skopeo", "skopeo")
    work = tmp_path_factory.mktemp("image")
    make_rootfs(str(work / "rootfs"))
    return make_oci_archive(str(work / "rootfs"), str(work), IMAGE, ["/bin/sh"], ["PATH=/bin"])


@pytest.fixture(params=["warm", "cold"])
def images(request: Any, h: Any, tmp_path: Any) -> Any:
    """The harness plus a private image root; every test must leave it without containers or mounts.
    Each test runs twice: with the docker-like verbs served by the warm template (and a check that
    they were), and cold (MRUN_WARM=0). A test may ask for "python" as well (indirect
    parametrization): warm through the Python launcher, which is `mrun` where no C compiler was."""
    h.image_root = str(tmp_path / "images")
    warm = request.param in ("warm", "python")
    if not warm:
        h.base_env["MRUN_WARM"] = "0"
    if request.param == "python":
        h.binary = os.path.join(os.path.dirname(h.binary), "mrun-python")
    before = warm_served()
    yield h
    if warm:
        assert warm_since(before), "the warm variant of this test never reached the warm template"
    containers = os.path.join(h.image_root, "containers")
    left = os.listdir(containers) if os.path.isdir(containers) else []
    for cid in left:
        h.mrun("--image-root", h.image_root, "delete", "--force", cid)
    assert not left, f"image containers left behind: {left}"


def img(h, *args: str, **kw):
    return h.mrun("--image-root", h.image_root, *args, **kw)


def img_ok(h, *args: str, **kw):
    r = img(h, *args, **kw)
    assert r.returncode == 0, f"mrun {' '.join(args)}: {r.stderr}{warm_evidence(r.stderr)}"
    return r


def warm_evidence(stderr: str) -> str:
    """For a warm call whose child ended without an exit status: what the session's templates
    logged of children a signal ended (warm.template.reap_children), to say which signal."""
    directory = os.environ.get("MRUN_WARM_DIR", "")
    if "ended without an exit status" not in stderr or not os.path.isdir(directory):
        return ""
    lines = [line for line in warm_log(directory).splitlines() if "ended by signal" in line]
    return "\nthe templates' last children ended by a signal:\n" + "\n".join(lines[-5:])


def play_a_reboot(h: Any, names: list[str], damage: dict[str, dict[str, Any]] | None = None) -> None:
    """Power loss, played on the containers ``names`` of the image root: their supervisors and
    processes SIGKILLed, their overlays and cgroups gone, the state root removed (/run is a
    tmpfs), their image.json's boot an earlier one; ``damage``: more of image.json changed."""
    containers = os.path.join(h.image_root, "containers")
    pids = []
    for cid in names:
        try:
            with open(os.path.join(containers, cid, "supervisor.json")) as f:
                pids.append(json.load(f)["pid"])
        except FileNotFoundError:
            pass
        try:
            with open(os.path.join(h.root, cid, "state.json")) as f:
                pids.append(json.load(f)["pid"])
        except FileNotFoundError:
            pass
    for pid in (p for p in pids if p):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, 9)
    deadline = time.monotonic() + 10
    while [p for p in pids if p and p in processes_mentioning("")]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    for cid in names:
        subprocess.run(["umount", os.path.join(containers, cid, "rootfs")], capture_output=True, check=False)
        for d in cgroup_dirs(f"{h.cgroup_parent}/{cid}"):
            os.rmdir(d)
        meta_path = os.path.join(containers, cid, "image.json")
        with open(meta_path) as f:
            meta = json.load(f)
        assert meta["boot"]
        with open(meta_path, "w") as f:
            json.dump({**meta, "boot": "an-earlier-boot", **(damage or {}).get(cid, {})}, f)
    shutil.rmtree(h.root)


def remove_under_mrun(path: str) -> None:
    """``rm -rf path`` while mrun works in it: an entry mrun removes between the listing and its
    unlink (a started container's exec.fifo) is gone already, as rm -rf takes it."""
    def gone_meanwhile(_func: Any, _path: str, info: Any) -> None:
        if not isinstance(info[1], FileNotFoundError):
            raise info[1]

    shutil.rmtree(path, onerror=gone_meanwhile)


@contextlib.contextmanager
def host_nodes(directory: Any) -> Any:
    """In ``directory`` (made here): ``null`` (a character device, /dev/null's numbers), ``fifo``
    and ``sock`` (a bound unix socket), what mrun must never replace or remove. -> {name: what
    a refusal calls it}; after, each is checked still there, of its kind, and alone."""
    import socket
    import stat

    os.mkdir(directory)
    os.mknod(os.path.join(directory, "null"), 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    os.mkfifo(os.path.join(directory, "fifo"))
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(os.path.join(directory, "sock"))
        yield {"null": "a character device", "fifo": "a fifo", "sock": "a socket"}
    finally:
        sock.close()
    modes = {n: os.lstat(os.path.join(directory, n)).st_mode for n in os.listdir(directory)}
    assert sorted(modes) == ["fifo", "null", "sock"], modes  # nothing beside them either
    assert stat.S_ISCHR(modes["null"]) and stat.S_ISFIFO(modes["fifo"]) and stat.S_ISSOCK(modes["sock"])


def one_line_error(r: subprocess.CompletedProcess[str], *needles: str) -> None:
    """A refusal as every refusal must be: a non-zero exit and one line, "mrun: ...", naming
    each of ``needles``."""
    assert r.returncode != 0
    err = r.stderr.strip()
    assert err.count("\n") == 0, f"expected one line, got: {r.stderr!r}"
    assert err.startswith("mrun: ")
    for n in needles:
        assert n in err, f"{n!r} not in {err!r}"


def run_args(h: Any, *args: str) -> list[str]:
    """`mrun run` in the test's cgroup parent; no network unless the test asks (--network: one only)."""
    asked = any(a in ("--network", "--net") or a.startswith(("--network=", "--net=")) for a in args)
    return ["run", "--cgroup-parent", h.cgroup_parent, *([] if asked else ["--network", "none"]), *args]


# Runs argv with its stdout to /dev/null; prints the largest RSS (KiB) of it and its descendants.
LARGEST_RSS = """
import os, resource, subprocess, sys
subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, check=True)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""

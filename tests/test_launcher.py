"""The native launchers (bin/launcher.c, installed as `mrun` and `containerd-shim-mrun-v2`): a
call the warm template serves starts no interpreter; every other call runs the Python launcher
beside them, exactly as before. What must stay in its caller (`create`) does; a link to a template
that would not have run this installation as this caller never serves; what the launcher says in
between (MRUN_LAUNCHER) reaches nobody."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import pytest
from conftest import (
    CGROUP_ROOT,
    await_template,
    mrun_binary,
    running,
    stop_templates,
    template_path,
    warm_path,
    warm_served,
)
from mrun.warm import client

BIN = os.path.dirname(mrun_binary())


def _served() -> int:
    warm_served()  # one runs
    return client.status(warm_path())["served"]


def test_both_launchers_are_native_programs_with_python_beside_them():
    for name in ("mrun", "containerd-shim-mrun-v2"):
        with open(os.path.join(BIN, name), "rb") as f:
            assert f.read(4) == b"\x7fELF", f"{name} is not the native launcher: was it installed without a C compiler?"
        fallback = os.path.join(BIN, f"{name}-python")
        with open(fallback) as f:
            assert f.readline().startswith("#!") and os.access(fallback, os.X_OK)


def test_the_native_launcher_knows_which_global_flags_take_no_value():
    """It does not ask the template about `create`, reading argv as fastparse does."""
    import re

    from mrun.cli.commands import GLOBAL_FLAGS

    source = open(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bin", "launcher.c")).read()
    listed = re.search(r"boolean_globals\[\] = \{(.*?)NULL\}", source).group(1)
    assert re.findall(r'"(--[a-z-]+)"', listed) == [f"--{f.name}" for f in GLOBAL_FLAGS if f.kind is bool]


def test_the_native_launcher_knows_which_shim_flags_take_no_value():
    """It finds a shim `start` (whose stdin it keeps) reading argv as shims.main.parse does."""
    import re

    from mrun.shims.main import BOOLEAN_FLAGS

    source = open(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bin", "launcher.c")).read()
    listed = re.search(r"boolean_shim_flags\[\] = \{(.*?)NULL\}", source).group(1)
    assert tuple(re.findall(r'"([a-z-]+)"', listed)) == BOOLEAN_FLAGS


def test_the_native_launchers_routing_key_reads_what_the_template_compares():
    """Its key (routing_crc) picks a template per caller context from the facts peer.context
    reads, as peer.routing does for the Python launchers: a fact left out of one list would put
    callers that differ in it on one template, which then refuses all but the first's kind."""
    import re

    from mrun.warm.peer import NAMESPACES, STATUS_FIELDS

    source = open(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bin", "launcher.c")).read()
    status = re.findall(r'"(\w+)"', re.search(r"routed_status\[\] = \{(.*?)NULL\}", source, re.S).group(1))
    assert set(status) == {"Uid", "Gid", "Groups", *STATUS_FIELDS} - {"Seccomp"}, status
    namespaces = re.findall(r'"(\w+)"', re.search(r"routed_namespaces\[\] = \{(.*?)NULL\}", source).group(1))
    assert tuple(namespaces) == NAMESPACES


# Run as its own process: a subreaper, as conmon and containerd's runc shim are. The init `mrun
# create` leaves behind must be reparented to it, which it is only if create ran in its tree.
CREATE_AS_SUBREAPER = textwrap.dedent("""
    import ctypes, json, os, subprocess, sys
    ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    binary, root, bundle, cid = sys.argv[1:]
    subprocess.run([binary, "--root", root, "create", "--bundle", bundle, cid], check=True,
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    state = json.loads(subprocess.run([binary, "--root", root, "state", cid], check=True,
                                      capture_output=True, text=True).stdout)
    with open(f"/proc/{state['pid']}/stat") as f:
        parent = int(f.read().rsplit(")", 1)[1].split()[1])
    subprocess.run([binary, "--root", root, "delete", "--force", cid], check=True)
    os.waitpid(state["pid"], 0)
    print(json.dumps({"init_parent": parent, "me": os.getpid()}))
""")


def test_create_stays_in_its_callers_tree(h):
    import json

    bundle = h.bundle(["sleep", "30"])
    before = _served()
    out = subprocess.run([sys.executable, "-c", CREATE_AS_SUBREAPER, h.binary, h.root, bundle, h.cid()],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    facts = json.loads(out.stdout)
    assert facts["init_parent"] == facts["me"], "the init is not a descendant of the process that ran create"
    assert _served() == before + 2  # state and delete were served, create was not


def test_the_other_runc_verbs_are_served_and_answer_as_cold_ones(h):
    cid = h.cid()
    bundle = h.bundle(["sleep", "30"])
    cold = {**os.environ, "MRUN_WARM": "0"}
    assert h.mrun("create", "--bundle", bundle, cid).returncode == 0
    before = _served()
    warm_state = h.mrun("state", cid)
    cold_state = h.mrun("state", cid, env=cold)
    assert warm_state.returncode == cold_state.returncode == 0
    assert warm_state.stdout == cold_state.stdout and warm_state.stderr == cold_state.stderr == ""
    # From another cgroup the child moves into the caller's first. On v1 that is its own
    # thread-wise move, which waits for nothing: served. On v2 it is born there where clone3
    # can (test_a_caller_in_another_cgroup2_cgroup_is_served_by_a_child_born_there); else it would
    # be a move through cgroup.procs, an RCU grace period, more than the verb costs cold: such a
    # caller runs cold.
    from mrun.kernel import syscalls as sc

    other = _another_cgroup(h)
    try:
        r = subprocess.run([h.binary, "--root", h.root, "state", cid], capture_output=True, text=True, timeout=30,
                           env={**os.environ, "MRUN_WARM_DEBUG": "1"}, preexec_fn=lambda: _join(other))
    finally:
        os.rmdir(other)  # empty again: the served child was gone before the call returned
    assert r.returncode == 0 and r.stdout == warm_state.stdout, r.stderr
    refused = os.path.exists(os.path.join(CGROUP_ROOT, "cgroup.controllers")) and not sc.clone_into_cgroup_works()
    if refused:
        assert "cold because `state` from another cgroup v2 cgroup than the template's" in r.stderr
    else:
        assert r.stderr == ""
    for args in (("start", cid), ("kill", cid, "KILL"), ("delete", "--force", cid)):
        r = h.mrun(*args)
        assert r.returncode == 0, r.stderr
    assert _served() == before + (4 if refused else 5)
    gone = [h.mrun("state", cid), h.mrun("state", cid, env=cold)]
    assert gone[0].returncode == gone[1].returncode == 1
    assert gone[0].stderr == gone[1].stderr == f"mrun: container '{cid}' does not exist\n"


def test_a_caller_in_another_cgroup2_cgroup_is_served_by_a_child_born_there(h):
    """A caller in another cgroup2 cgroup than the template's (a v2 host's other login session,
    conmon's cgroup for podman's clean-up; a hybrid host's unified hierarchy likewise): its child
    had to move there (cgroup.procs takes the kernel's global lock, whose first taker waits for
    an RCU grace period, 5-15 ms), so the runc verbs ran cold and the docker-like ones waited.
    The template now forks that child born in the caller's cgroup (clone3 CLONE_INTO_CGROUP):
    served, running in the caller's cgroup, which is empty and removable once it returns."""
    from mrun.kernel import syscalls as sc
    from mrun.warm.child import cgroup_mounts

    mount = cgroup_mounts().get("")  # the cgroup2 hierarchy (v2, or a hybrid host's beside v1)
    if mount is None or not sc.clone_into_cgroup_works():
        pytest.skip("no cgroup2 hierarchy, or no clone3 CLONE_INTO_CGROUP (Linux < 5.7): the child moves, as before")
    caller = os.path.join(mount, h.cgroup_parent.lstrip("/"), "caller")
    os.makedirs(caller)
    cid = h.cid()
    h.ok("create", "--bundle", h.bundle(["sleep", "30"]), cid)
    h.ok("start", cid)
    before = _served()
    try:
        events = subprocess.Popen([h.binary, "--root", h.root, "events", "--interval", "1s", cid],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  env={**os.environ, "MRUN_WARM_DEBUG": "1"}, preexec_fn=lambda: _join(caller))
        try:
            assert events.stdout.readline(), events.stderr.read()
            with open(os.path.join(caller, "cgroup.procs")) as f:
                members = [int(p) for p in f.read().split()]
            others = [p for p in members if p != events.pid]
            assert len(others) == 1, f"the caller's cgroup holds {members}, the caller is {events.pid}"
            with open(f"/proc/{others[0]}/cmdline", "rb") as f:
                assert b"events" in f.read(), "the other process in the caller's cgroup is not its served child"
        finally:
            events.terminate()
            _out, err = events.communicate(timeout=30)
        assert "cold because" not in err, err
        assert _served() == before + 1
        with open(os.path.join(caller, "cgroup.procs")) as f:
            assert f.read() == "", "the caller returned while its cgroup held its child"
    finally:
        h.mrun("delete", "--force", cid)
        os.rmdir(caller)


def _another_cgroup(h) -> str:
    """A cgroup of the test's own, in one hierarchy (the harness removes it)."""
    v2 = os.path.exists(os.path.join(CGROUP_ROOT, "cgroup.controllers"))
    path = os.path.join(CGROUP_ROOT, "" if v2 else "pids", h.cgroup_parent.lstrip("/"), "caller")
    os.makedirs(path, exist_ok=True)
    return path


def _join(cgroup: str) -> None:
    with open(os.path.join(cgroup, "cgroup.procs"), "w") as f:
        f.write(str(os.getpid()))


def test_a_create_starts_no_template(h, tmp_path):
    """conmon runs `create` in a cgroup of its own, one per container, and podman removes it
    after the container: a template started from there would keep it busy."""
    directory = str(tmp_path / "warm")
    bundle = h.bundle(["true"])
    cid = h.cid()
    try:
        h.ok("create", "--bundle", bundle, cid, env={"MRUN_WARM_DIR": directory})
        h.ok("delete", "--force", cid)
        time.sleep(0.5)  # a template started in the background would have made its socket by now
        assert not os.path.isdir(directory) or not os.listdir(directory), os.listdir(directory)
    finally:
        stop_templates(directory)


def test_the_runc_verbs_alone_bring_a_template_up_for_the_next(h, tmp_path):
    """podman and containerd's runc shim call nothing but the runc verbs. With no template
    running (none yet, or the last one left after its idle time) every call ran cold, for good:
    only a docker-like verb or the shim brought one up. Now `start` (and `kill`...) run cold and
    bring one up, which serves the verbs after them. `state` and `delete` start none, as `create`
    starts none: podman's clean-up (`podman container cleanup`, run by conmon) runs them from
    conmon's cgroup, one per container, which a template started there would keep busy. A
    template that runs serves them all the same."""
    directory = str(tmp_path / "warm")
    env = {"MRUN_WARM_DIR": directory}
    path = template_path({**os.environ, **env})
    cid = h.cid()
    try:
        h.ok("create", "--bundle", h.bundle(["sleep", "30"]), cid, env=env)
        h.ok("state", cid, env=env)
        h.ok("state", cid, env=env)
        time.sleep(0.5)  # a template started in the background would have made its socket by now
        assert client.status(path) is None, "`state` started a template"
        h.ok("start", cid, env=env)
        status = await_template(path, "`start` brought no template up")
        for args in (("state", cid), ("kill", cid, "KILL")):
            h.ok(*args, env=env)
        h.wait_status(cid, "stopped")
        h.ok("delete", cid, env=env)
        assert client.status(path)["served"] >= status["served"] + 3  # state, kill, delete at least
    finally:
        h.mrun("delete", "--force", cid)
        stop_templates(directory)


def test_arguments_reach_the_template_byte_for_byte(h, tmp_path):
    """Quotes, control characters and bytes that are not UTF-8 (an id, a log path): the served
    call sees what a cold one sees, and writes the same file under the same name."""
    odd = b'a"b\\c\n\x01\xff\xfe\xc3\xa9'
    outcomes = []
    for variant, env in (("warm", {}), ("cold", {"MRUN_WARM": "0"})):
        log = os.fsencode(tmp_path) + b"/" + variant.encode() + odd + b".log"
        args = [os.fsencode(h.binary), b"--root", os.fsencode(h.root), b"--log", log, b"--log-format", b"json",
                b"state", b"id" + odd]
        before = _served()
        r = subprocess.run(args, capture_output=True, timeout=30, env={**os.environ, **env})
        assert (_served() > before) == (variant == "warm")
        with open(log, "rb") as f:
            logged = f.read()
        outcomes.append((r.returncode, r.stdout, r.stderr, logged.split(b'"time"')[0]))
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][0] == 1, outcomes[0]


def test_a_link_to_a_template_started_otherwise_never_serves(h, tmp_path):
    """The native launcher finds its template by a link named after its directory and locale
    variables. Pointed at a template started under other variables (a hostile or stale link),
    the template checks them itself and the call runs cold, with the same result."""
    directory = str(tmp_path / "warm")
    env_a = {**os.environ, "MRUN_WARM_DIR": directory, "LC_TIME": "C"}
    env_b = {**os.environ, "MRUN_WARM_DIR": directory, "LC_TIME": "POSIX"}
    try:
        links = {}
        for name, env in (("a", env_a), ("b", env_b)):
            seen = set(os.listdir(directory)) if os.path.isdir(directory) else set()
            r = subprocess.run([h.binary, "--root", h.root, "ps"], capture_output=True, text=True, env=env, timeout=30)
            assert r.returncode == 0, r.stderr
            path = template_path(env)
            status = await_template(path, f"no template came up at {path}")
            links[name] = [n for n in os.listdir(directory) if n.startswith("native-") and n not in seen]
            assert len(links[name]) == 1, os.listdir(directory)
            with open(f"/proc/{status['pid']}/environ", "rb") as f:
                assert b"MRUN_LAUNCHER" not in f.read(), "the launcher's word reached the template"
        link_a = os.path.join(directory, links["a"][0])
        template_b = template_path(env_b)
        os.unlink(link_a)
        os.symlink(os.path.basename(template_b), link_a)
        before = client.status(template_b)["served"]
        r = subprocess.run([h.binary, "--root", h.root, "ps"], capture_output=True, text=True, timeout=30,
                           env={**env_a, "MRUN_WARM_DEBUG": "1"})
        assert r.returncode == 0, r.stderr
        assert "cold because the caller's PYTHON*, LC_* or LANG variables differ" in r.stderr
        assert client.status(template_b)["served"] == before
        assert r.stdout == subprocess.run([h.binary, "--root", h.root, "ps"], capture_output=True, text=True,
                                          timeout=30, env={**env_a, "MRUN_WARM": "0"}).stdout
    finally:
        stop_templates(directory)


def _ps_ok(h, env: dict[str, str], **kw) -> None:
    """`mrun ps` as a caller with ``env`` (and ``kw``: its working directory) runs it, which must work."""
    r = subprocess.run([h.binary, "--root", h.root, "ps"], capture_output=True, env=env, timeout=30, **kw)
    assert r.returncode == 0, r.stderr


def test_no_template_means_the_python_launcher_then_a_template_for_next_time(h, tmp_path):
    """The first call finds no link: it runs cold and brings a template up, whose next caller is
    served. A template that dies leaves a dangling link, treated the same way."""
    directory = str(tmp_path / "warm")
    env = {**os.environ, "MRUN_WARM_DIR": directory}
    path = template_path(env)
    try:
        for _ in range(2):
            _ps_ok(h, env)
            status = await_template(path, f"no template came up at {path}")
            _ps_ok(h, env)
            assert client.status(path)["served"] == status["served"] + 1
            os.kill(status["pid"], 9)
            deadline = time.monotonic() + 10
            while running(status["pid"]):
                assert time.monotonic() < deadline
                time.sleep(0.05)
    finally:
        stop_templates(directory)


def _probe_link(h, directory: str) -> str:
    """The native launcher's link in ``directory``, found by a first call, whose template is then
    awaited (it is still starting when that call returns) and stopped."""
    env = {**os.environ, "MRUN_WARM_DIR": directory}
    subprocess.run([h.binary, "--root", h.root, "ps"], capture_output=True, env=env, timeout=30, check=True)
    path = template_path(env)
    await_template(path, f"no template came up at {path}")
    stop_templates(directory)
    return next(os.path.join(directory, n) for n in os.listdir(directory) if n.startswith("native-"))


def test_a_socket_someone_else_serves_gets_nothing(h, tmp_path):
    """A warm directory others may write to (a misconfigured MRUN_WARM_DIR): a process that is
    not root listening at the template's name, or at the native launcher's link, is sent neither
    the caller's environment nor its descriptors, and the call runs cold."""
    import socket
    import tempfile

    links = [os.path.basename(_probe_link(h, str(tmp_path / "probe")))]
    hostile = tempfile.mkdtemp(prefix="mrun-hostile-", dir="/tmp")
    os.chmod(hostile, 0o777)
    env = {**os.environ, "MRUN_WARM_DIR": hostile, "MRUN_WARM_DEBUG": "1"}
    names = [*links, os.path.basename(template_path(env))]
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # someone else: nobody, serving both names
        os.close(r)
        try:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            servers = []
            for name in names:
                s = socket.socket(socket.AF_UNIX)
                s.bind(os.path.join(hostile, name))
                s.listen(8)
                s.settimeout(0.2)
                servers.append(s)
            os.write(w, b"ready\n")
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                for s in servers:
                    try:
                        conn, _ = s.accept()
                    except (TimeoutError, BlockingIOError):
                        continue
                    conn.settimeout(2)
                    try:
                        got = conn.recv(65536)
                    except OSError:
                        got = b""
                    os.write(w, f"{len(got)}\n".encode())
                    conn.close()
        finally:
            os._exit(0)
    os.close(w)
    try:
        assert os.read(r, 6) == b"ready\n"
        for binary in (h.binary, os.path.join(BIN, "mrun-python")):
            out = subprocess.run([binary, "--root", h.root, "ps"], capture_output=True, text=True, env=env,
                                 timeout=30)
            assert out.returncode == 0, out.stderr
            assert "cold because the template's socket is not served by root" in out.stderr, (binary, out.stderr)
    finally:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        received = os.read(r, 4096).decode().split()
        os.close(r)
        import shutil

        shutil.rmtree(hostile, ignore_errors=True)
    assert received and all(n == "0" for n in received), received  # connections, never a byte


def test_a_template_that_hangs_up_means_a_cold_start(h, tmp_path):
    """A socket that accepts and closes at once (a template dying as it is asked): the request
    cannot be written, and the call runs cold instead of dying of SIGPIPE."""
    import socket
    import threading

    probe = str(tmp_path / "probe")
    env = {**os.environ, "MRUN_WARM_DIR": probe}
    link = _probe_link(h, probe)
    os.unlink(link)
    server = socket.socket(socket.AF_UNIX)
    server.bind(link)
    server.listen(8)
    hung_up = []

    def hang_up() -> None:
        conn, _ = server.accept()
        conn.close()
        hung_up.append(True)

    thread = threading.Thread(target=hang_up, daemon=True)
    thread.start()
    try:
        big = {f"MRUN_TEST_FILL_{i}": "x" * 4000 for i in range(64)}  # more than the socket buffers
        r = subprocess.run([h.binary, "--root", h.root, "ps"], capture_output=True, text=True, timeout=30,
                           env={**env, **big})
        assert r.returncode == 0, (r.returncode, r.stderr)
        assert "CONTAINER ID" in r.stdout
        thread.join(5)
        assert hung_up
        time.sleep(0.5)  # a template started in the background would hold its lock by now
        from mrun.state import held_by_someone

        locks = [os.path.join(probe, n) for n in os.listdir(probe) if n.endswith(".lock")]
        assert not any(held_by_someone(lock) for lock in locks), "the cold call started a template"
    finally:
        server.close()
        stop_templates(probe)


def test_a_copied_launcher_says_what_is_wrong_in_one_line(tmp_path):
    """A copy (not a link) elsewhere has no Python launcher beside it: one line, status 127."""
    import shutil

    for name in ("mrun", "containerd-shim-mrun-v2"):
        copy = tmp_path / name
        shutil.copy(os.path.join(BIN, name), copy)
        r = subprocess.run([str(copy), "--version" if name == "mrun" else "-v"], capture_output=True, text=True,
                           timeout=30, env={**os.environ, "MRUN_WARM": "0"})
        assert r.returncode == 127 and r.stdout == "", r
        assert r.stderr.count("\n") == 1 and "link this program" in r.stderr and f"{name}-python" in r.stderr, r.stderr
        # a launcher there that may not be run: the error as it is, without the hint about copies
        (tmp_path / f"{name}-python").write_text("#!/bin/sh\n")
        r = subprocess.run([str(copy), "--version" if name == "mrun" else "-v"], capture_output=True, text=True,
                           timeout=30, env={**os.environ, "MRUN_WARM": "0"})
        assert r.returncode == 127 and r.stderr.endswith("-python: Permission denied\n"), r.stderr


def test_a_template_dying_after_reading_a_starts_stdin_loses_none_of_it(h, tmp_path):
    """containerd 2.x writes a shim `start`'s BootstrapParams to its stdin, once. The template
    reads them to answer a pod's later starts itself; a template that dies after reading them
    (here: one that reads every byte, then hangs up) must not leave the cold start it falls back
    to with an empty stdin, which would answer as for containerd 1.6 and put the socket where
    containerd does not look. The start answers with the BootstrapResult, as served."""
    import socket
    import threading

    from mrun.shims import main as shim
    from mrun.shims import wire

    probe = str(tmp_path / "probe")
    link = _probe_link(h, probe)
    os.unlink(link)
    server = socket.socket(socket.AF_UNIX)
    server.bind(link)
    server.listen(8)
    read_by_template: list[bytes] = []

    def read_and_die() -> None:
        conn, _ = server.accept()
        with conn:
            request = client.recv_message(conn)
            client.send_message(conn, {"send": "fds"})
            _, fds, _, _ = socket.recv_fds(conn, 1, 300)
            stdin = fds[request["fds"].index(0)]
            chunks = []
            while chunk := os.read(stdin, 65536):
                chunks.append(chunk)
            read_by_template.append(b"".join(chunks))
            for fd in fds:
                os.close(fd)

    thread = threading.Thread(target=read_and_die, daemon=True)
    thread.start()
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "config.json").write_text(__import__("json").dumps(h.config(["true"])))
    cid, containerd = h.cid("bootstrap"), "/nonexistent/containerd.sock"
    socket_dir = str(tmp_path / "s")
    os.mkdir(socket_dir)
    pod = shim._socket_path({"id": cid, "namespace": "direct", "address": containerd}, shim._group(str(bundle)),
                           socket_dir)
    pod_shim = socket.socket(socket.AF_UNIX)  # the pod's shim, already serving: start has no daemon to make
    pod_shim.bind(pod)
    pod_shim.listen(8)
    bootstrap = wire.field(1, cid) + wire.field(2, "direct") + wire.field(6, containerd) + wire.field(9, socket_dir)
    env = {**os.environ, "MRUN_WARM_DIR": probe, "MRUN_SHIM_ROOT": str(tmp_path / "shim-root"),
           "MRUN_SHIM_UNCALLED_EXIT": "1"}
    try:
        out = subprocess.run([os.path.join(BIN, "containerd-shim-mrun-v2"), "-namespace", "direct", "-address",
                              containerd, "-id", cid, "start"], cwd=bundle, env=env, input=bootstrap,
                             capture_output=True, timeout=30)
        thread.join(5)
        assert read_by_template == [bootstrap], "the call never reached the template that reads stdin"
        address = f"unix://{pod}"
        assert (out.returncode, out.stdout, out.stderr) == (
            0, wire.field(1, 3) + wire.field(2, address) + wire.field(3, "ttrpc"), b""), out
        assert (bundle / "address").read_text() == address
    finally:
        server.close()
        pod_shim.close()
        stop_templates(probe)


def test_directories_the_environment_names_relatively_are_the_caller_s(h, tmp_path):
    """A relative MRUN_WARM_DIR named a directory in the caller's working directory to the
    caller, and in / to the template it started (a daemon, working in /): the template made its
    directory, lock, log and socket in /, the caller never found it there, and every call ran
    cold and started one more (each kept to its idle time). A byte that is not UTF-8 in the name
    killed each at its start (its process title). Now the caller's directory is meant, for the
    template too. A relative XDG_CACHE_HOME is ignored, as the XDG spec asks, and an empty HOME
    (which Python reads as /) means the home passwd names: mrun's caches went to /.cache."""
    work = tmp_path / "work"
    work.mkdir()
    name = os.fsdecode(b"warm\xff")
    env = {**os.environ, "MRUN_WARM_DIR": name, "XDG_CACHE_HOME": "cache", "HOME": ""}
    directory = os.path.join(str(work), name)
    path = os.path.join(directory, os.path.basename(template_path({**env, "MRUN_WARM_DIR": str(work)})))
    top = sorted(os.listdir("/"))
    try:
        for _ in range(2):
            _ps_ok(h, env, cwd=work)
        status = await_template(path, f"no template came up at {path!r}")
        _ps_ok(h, env, cwd=work)
        assert client.status(path)["served"] >= status["served"] + 1
        assert sorted(os.listdir("/")) == top, "made in /"
        assert sorted(os.listdir(work)) == [name], "a cache made where XDG_CACHE_HOME said"
    finally:
        stop_templates(directory)

"""Seeded mutation fuzzing of config.json, of image JSON (index, manifest, config), of layers,
of docker's `run` flags and of the shim's task API (protobuf requests): every case ends in
success or in one line naming what is wrong — never a traceback, never an "internal error",
never a hang past 10 s — and nothing is left behind (the harness checks state, cgroups, mounts
and processes; the image tests also the store).

MRUN_FUZZ_CASES sets the cases per document kind (default 300, what CI runs); MRUN_FUZZ_SEED
the seed. A failure names the case number, so `MRUN_FUZZ_SEED=S` reproduces it.
"""

from __future__ import annotations

import hashlib
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time

import pytest
from busybox_bundle import make_rootfs
from conftest import IMAGE, cgroup_dirs, require, running
from fuzz import mutations

CASES = int(os.environ.get("MRUN_FUZZ_CASES", "300"))
SEED = int(os.environ.get("MRUN_FUZZ_SEED", "1129"))


def refusal_problem(code: int, err: str) -> str:
    """Why this outcome breaks the rule, or ""."""
    if "Traceback" in err or "internal error" in err:
        return "a traceback or an internal error"
    said = [line for line in err.splitlines(keepends=True) if not line.startswith("mrun: warning: ")]
    if code != 0 and (len(said) != 1 or not said[0].startswith("mrun: ") or not said[0].endswith("\n")):
        return "not one line starting with 'mrun: ' (after any warnings)"
    return ""


@pytest.mark.parametrize("kind", ["plain", "seccomp"])
def test_config_json_mutations(h, tmp_path, request, kind):
    """``seccomp``: the base has a profile with a notifying rule, its agent listening."""
    base = h.config(["true"])
    # a rootfs of its own: a case without the /dev tmpfs gets device nodes made in the rootfs's
    # /dev, and a mount destination "/dev" * 100 its directories, as runc makes them
    make_rootfs(str(tmp_path / "rootfs"))
    base["root"]["path"] = str(tmp_path / "rootfs")
    if kind == "seccomp":
        from test_runc_compat import SeccompAgent

        agent = SeccompAgent(str(tmp_path / "agent.sock"))
        request.addfinalizer(agent.close)
        base["linux"]["seccomp"] = {
            "defaultAction": "SCMP_ACT_ALLOW", "listenerPath": agent.path, "listenerMetadata": "m",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"], "flags": ["SECCOMP_FILTER_FLAG_LOG"],
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"},
                         {"names": ["chmod"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
                          "args": [{"index": 1, "value": 0, "op": "SCMP_CMP_EQ"}]}]}
    base["process"]["env"] = ["PATH=/bin", "A=b"]
    base["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}]
    base["linux"]["devices"] = [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 438}]
    base["linux"]["sysctl"] = {"kernel.shmmni": "4096"}
    base["linux"]["resources"] = {"memory": {"limit": 64 << 20}, "pids": {"limit": 64}, "cpu": {"shares": 512}}
    base["hooks"] = {"poststop": [{"path": "/bin/true", "args": ["true"]}]}
    base["process"].update(RICH_PROCESS_FIELDS)
    base["linux"]["personality"] = {"domain": "LINUX"}
    bundle = h.bundle(config=base)
    failures = []
    for i, doc in enumerate(mutations(base, CASES, SEED)):
        with open(os.path.join(bundle, "config.json"), "w") as f:
            json.dump(doc, f)
        cid = f"f{i}"
        try:
            r = h.mrun("create", "-b", bundle, cid, timeout=10)
        except subprocess.TimeoutExpired:
            failures.append(f"case {i}: create hung")
            h.mrun("delete", "--force", cid)
            continue
        problem = refusal_problem(r.returncode, r.stderr)
        if problem:
            failures.append(f"case {i}: {problem}: {r.stderr.strip()[-300:]} (config: {json.dumps(doc)[:300]})")
        if r.returncode == 0:
            s = h.mrun("start", cid, timeout=10)
            if "Traceback" in s.stderr:
                failures.append(f"case {i}: start: {s.stderr[-300:]}")
        d = h.mrun("delete", "--force", cid, timeout=20)
        if d.returncode != 0 or "Traceback" in d.stderr:
            failures.append(f"case {i}: delete --force: {d.stderr[-300:]}")
        left = h.leftovers()
        if left:
            failures.append(f"case {i}: left {left}")
            h.cleanup()
    assert not failures, "\n".join(failures[:20]) + f"\n({len(failures)} failing cases)"


# what a process may hold besides args, env and cwd: config.json's and an exec's alike
RICH_PROCESS_FIELDS = {
    "user": {"uid": 0, "gid": 0, "additionalGids": [1], "umask": 18},
    "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"]},
    "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}], "noNewPrivileges": True, "oomScoreAdj": 5,
    "scheduler": {"policy": "SCHED_OTHER", "nice": 1}, "ioPriority": {"class": "IOPRIO_CLASS_BE", "priority": 4},
}


def test_exec_process_mutations(h, tmp_path):
    """`exec --process FILE` of mutated process objects into one running container: each exec
    works or is refused in one line (fuzzing it found the scheduler and ioPriority objects
    unchecked); the container is still there after."""
    cid = h.cid("exec-fuzz")
    h.ok("create", "-b", h.bundle(["sleep", "600"]), cid)
    h.ok("start", cid)
    base = {"args": ["true"], "cwd": "/", "env": ["PATH=/bin"], "terminal": False, **RICH_PROCESS_FIELDS}
    path, failures = tmp_path / "process.json", []
    try:
        for i, doc in enumerate(mutations(base, CASES, SEED + 7)):
            path.write_text(json.dumps(doc))
            try:
                r = h.mrun("exec", "--process", str(path), cid, timeout=10)
            except subprocess.TimeoutExpired:
                failures.append(f"case {i}: exec hung ({json.dumps(doc)[:300]})")
                continue
            problem = refusal_problem(r.returncode, r.stderr)
            if problem:
                failures.append(f"case {i}: {problem}: {r.stderr.strip()[-300:]} (process: {json.dumps(doc)[:300]})")
        assert h.status(cid) == "running"
    finally:
        h.mrun("delete", "--force", cid)
    assert not failures, "\n".join(failures[:20]) + f"\n({len(failures)} failing cases)"


DRIVER = r"""
import contextlib, io, json, os, signal, sys
from mrun.cli.main import main

cases = os.fdopen(os.dup(0))  # the cases; containers get /dev/null as their stdin, never this pipe
os.dup2(os.open(os.devnull, os.O_RDONLY), 0)

def alarm(*_):
    raise TimeoutError("hung past 10 s")

signal.signal(signal.SIGALRM, alarm)
for line in cases:
    argvs = json.loads(line)
    outcome = []
    for argv in argvs:
        err, out = io.StringIO(), io.StringIO()
        signal.alarm(10)
        try:
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
                code = main(argv)
        except BaseException as e:
            import traceback
            code, err = 99, io.StringIO("Traceback " + traceback.format_exc())
        finally:
            signal.alarm(0)
        outcome.append({"argv": argv, "code": code, "err": err.getvalue()})
        if code != 0:
            break
    print(json.dumps(outcome), flush=True)
"""


def _blob(layout: str, data: bytes) -> dict:
    digest = hashlib.sha256(data).hexdigest()
    with open(os.path.join(layout, "blobs", "sha256", digest), "wb") as f:
        f.write(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def _read(layout: str, digest: str) -> dict:
    with open(os.path.join(layout, "blobs", "sha256", digest.removeprefix("sha256:"))) as f:
        return json.load(f)


def step_problem(step: dict) -> str:
    """``refusal_problem`` of one of the driver's steps. A run's exit status that is not docker's
    own (125 mrun's error, 126 not runnable, 127 not found) is the container's: a layer may
    hold a busybox whose bytes were flipped, and its true then dies of SIGILL, saying nothing."""
    if step["argv"][4] == "run" and step["code"] not in (0, 125, 126, 127):
        return ""
    return refusal_problem(step["code"], step["err"])


def _judged(steps: list[dict] | None, case: str, image_root: str, failures: list[str]) -> bool:
    """One case of a layer or tarball fuzzer: its steps judged (``step_problem``) and the store
    looked at for a half-written layer, each fault noted in ``failures``. -> whether to go on."""
    if steps is None:
        failures.append(f"{case}: the driver died or hung")
        return False
    for step in steps:
        problem = step_problem(step)
        if problem:
            failures.append(f"{case}: {step['argv'][4]}: {problem}: {step['err'].strip()[-300:]}")
    layers = os.path.join(image_root, "layers")
    half = [n for n in os.listdir(layers) if ".tmp-" in n] if os.path.isdir(layers) else []
    if half:
        failures.append(f"{case}: half layers left: {half}")
    return not half


def _base_image(layout: str) -> tuple[dict, dict, dict]:
    """(index, manifest, config) of the busybox layout, its index naming it IMAGE."""
    with open(os.path.join(layout, "index.json")) as f:
        index = json.load(f)
    index["manifests"][0].setdefault("annotations", {})["org.opencontainers.image.ref.name"] = IMAGE
    manifest = _read(layout, index["manifests"][0]["digest"])
    return index, manifest, _read(layout, manifest["config"]["digest"])


class _Driver:
    """The DRIVER process, which loads, runs and removes the image of one layout per case in
    process (an interpreter per command would make each case ten times slower)."""

    def __init__(self, h) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", DRIVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, env={**os.environ, "MRUN_WARM": "0"})
        self.common = ["--root", h.root, "--image-root", h.image_root]
        self.parent = h.cgroup_parent

    def cycle(self, layout: str, index: object) -> list[dict] | None:
        """``index`` as the layout's index.json, then load, run --rm IMAGE true, rmi: -> each
        step's argv, code and stderr (it stops at the first that fails), or None if the driver
        died or hung."""
        with open(os.path.join(layout, "index.json"), "w") as f:
            json.dump(index, f)
        return self.steps("load", layout)

    def steps(self, *how: str) -> list[dict] | None:
        """``how`` (load LAYOUT, import TARBALL IMAGE...), then run --rm IMAGE true and rmi."""
        return self.run([[*self.common, *how],
                         [*self.common, "run", "--rm", "--network", "none", "--cgroup-parent", self.parent, IMAGE,
                          "true"],
                         [*self.common, "rmi", IMAGE]])

    def run(self, argvs: list[list[str]]) -> list[dict] | None:
        """Each argv in turn, up to the first that fails: -> each one's argv, code and stderr, or
        None if the driver died or hung."""
        self.proc.stdin.write(json.dumps(argvs) + "\n")
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], 30)
        line = self.proc.stdout.readline() if ready else ""
        return json.loads(line) if line else None

    def close(self) -> None:
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def base_layout(tmp_path, busybox_archive):
    require("skopeo", "skopeo")
    layout = str(tmp_path / "base")
    subprocess.run(["skopeo", "copy", f"oci-archive:{busybox_archive}", f"oci:{layout}:latest"], check=True,
                   capture_output=True)
    return layout


@pytest.mark.parametrize("images", ["cold"], indirect=True)  # its driver calls the image code in-process
def test_image_json_mutations(images, base_layout, tmp_path):
    h = images
    index, manifest, config = _base_image(base_layout)
    config.setdefault("config", {}).update(Entrypoint=["/bin/true"], Env=["PATH=/bin"], WorkingDir="/",
                                           User="0:0", Labels={"a": "b"}, StopSignal="SIGTERM")
    kinds = ["index", "manifest", "config"]
    docs = {k: mutations({"index": index, "manifest": manifest, "config": config}[k], CASES // 3 + 1, SEED + j)
            for j, k in enumerate(kinds)}
    driver = _Driver(h)
    failures = []
    try:
        for i in range(CASES):
            kind = kinds[i % 3]
            doc = docs[kind][i // 3]
            layout = tempfile.mkdtemp(dir=str(tmp_path))
            shutil.copytree(base_layout, layout, dirs_exist_ok=True)
            m, c, idx = manifest, config, index
            if kind == "config":
                c = doc
            elif kind == "manifest":
                m = doc
            else:
                idx = doc
            if kind != "index":
                cfg_desc = _blob(layout, json.dumps(c).encode())
                if kind == "config" and isinstance(m, dict):
                    m = dict(m, config=dict(m["config"], **cfg_desc))
                man_desc = _blob(layout, json.dumps(m).encode())
                idx = json.loads(json.dumps(index))
                idx["manifests"][0].update(man_desc)
            steps = driver.cycle(layout, idx)
            if steps is None:
                failures.append(f"{kind} case {i}: the driver died or hung")
                break
            for step in steps:
                problem = step_problem(step)
                if step["argv"][-1] == IMAGE and step["argv"][-2] == "rmi" and step["code"]:
                    problem = ""  # nothing loaded under that name: nothing to remove
                if problem:
                    failures.append(f"{kind} case {i}: {step['argv'][4]}: {problem}: {step['err'].strip()[-300:]}"
                                    f" ({json.dumps(doc)[:200]})")
            shutil.rmtree(layout)
            containers = os.path.join(h.image_root, "containers")
            if os.path.isdir(containers) and os.listdir(containers):
                failures.append(f"{kind} case {i}: containers left: {os.listdir(containers)}")
                break
    finally:
        driver.close()
    store = [n for n in os.listdir(os.path.join(h.image_root, "blobs", "sha256")) if "." in n] if os.path.isdir(
        os.path.join(h.image_root, "blobs", "sha256")) else []
    assert not store, f"partial writes left: {store}"
    assert not failures, "\n".join(failures[:20]) + f"\n({len(failures)} failing cases)"


def _base_layer() -> tuple[bytes, list[int]]:
    """A layer with one of each kind of entry a layer holds (directory, file, symlink, hard link,
    fifo, device, whiteout, opaque directory, an xattr in a pax header, a long name, a setuid
    file) -> (the tar, each member's header offset)."""
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        def add(name: str, kind: bytes, data: bytes = b"", **fields) -> None:
            info = tarfile.TarInfo(name)
            info.type, info.size, info.mtime = kind, len(data), 1700000000
            info.mode = fields.pop("mode", 0o755 if kind == tarfile.DIRTYPE else 0o644)
            for key, value in fields.items():
                setattr(info, key, value)
            tar.addfile(info, io.BytesIO(data) if data else None)

        add("etc", tarfile.DIRTYPE)
        add("etc/a", tarfile.REGTYPE, b"hello\n")
        add("lnk", tarfile.SYMTYPE, linkname="etc/a")
        add("hl", tarfile.LNKTYPE, linkname="etc/a")
        add("fifo", tarfile.FIFOTYPE)
        add("dev/zero2", tarfile.CHRTYPE, devmajor=1, devminor=5)
        add("bin/.wh.nothing", tarfile.REGTYPE)
        add("opq/.wh..wh..opq", tarfile.REGTYPE)
        add("x", tarfile.REGTYPE, b"x", pax_headers={"SCHILY.xattr.user.note": "1"})
        add("d/" + "n" * 120, tarfile.REGTYPE, b"long")
        add("sbin/su", tarfile.REGTYPE, b"#!/bin/sh\n", mode=0o4755)
    buf.seek(0)
    with tarfile.open(fileobj=buf, mode="r") as tar:
        offsets = [m.offset for m in tar.getmembers()]
    return buf.getvalue(), offsets


@pytest.mark.parametrize("images", ["cold"], indirect=True)  # its driver calls the image code in-process
def test_image_layer_mutations(images, base_layout, tmp_path):
    """Layers as a registry could send them: one layer of every kind of entry, mutated (a header's
    name, number or type made hostile, a pax record put before an entry, the archive cut short
    or flipped, gzip cut), put over busybox in an image with the right digests and diff ids, then
    load, run and rmi: each ends in success or one line, never an internal error, and the store
    keeps no half layer."""
    import gzip
    import hashlib

    from fuzz import tar_mutations

    h = images
    base, offsets = _base_layer()
    index, manifest, config = _base_image(base_layout)
    driver = _Driver(h)
    failures = []
    try:
        for i, blob in enumerate(tar_mutations(base, offsets, CASES, SEED + 300)):
            layout = tempfile.mkdtemp(dir=str(tmp_path))
            shutil.copytree(base_layout, layout, dirs_exist_ok=True)
            zipped = blob.startswith(b"\x1f\x8b")
            try:
                plain = gzip.decompress(blob) if zipped else blob
            except (OSError, EOFError):
                plain = b"cut short"
            layer = _blob(layout, blob)
            layer["mediaType"] = "application/vnd.oci.image.layer.v1.tar" + ("+gzip" if zipped else "")
            c = dict(config, rootfs={"type": "layers", "diff_ids": [
                *config["rootfs"]["diff_ids"], "sha256:" + hashlib.sha256(plain).hexdigest()]})
            m = dict(manifest, config=dict(manifest["config"], **_blob(layout, json.dumps(c).encode())),
                     layers=[*manifest["layers"], layer])
            idx = json.loads(json.dumps(index))
            idx["manifests"][0].update(_blob(layout, json.dumps(m).encode()))
            steps = driver.cycle(layout, idx)
            shutil.rmtree(layout)
            if not _judged(steps, f"case {i}", h.image_root, failures):
                break
    finally:
        driver.close()
    assert not failures, "\n".join(failures[:20]) + f"\n({len(failures)} failing cases)"


@pytest.mark.parametrize("images", ["cold"], indirect=True)  # its driver calls the image code in-process
def test_import_tarball_mutations(images, busybox_rootfs, tmp_path):
    """docker's import of a filesystem tarball (a file, or a URL: anyone's bytes), mutated as
    layers are above, with busybox's true in it: import, run and rmi each work or refuse in
    one line; the store keeps no half layer and no blob of a refused import."""
    import io
    import tarfile

    from fuzz import tar_mutations

    h = images
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar, \
            tarfile.open(fileobj=io.BytesIO(_base_layer()[0])) as kinds:
        tar.add(os.path.join(busybox_rootfs, "bin"), "bin")
        for m in kinds.getmembers():  # then every kind of entry
            tar.addfile(m, kinds.extractfile(m) if m.isreg() else None)
    base = buf.getvalue()
    with tarfile.open(fileobj=io.BytesIO(base), mode="r") as tar:
        offsets = [m.offset for m in tar.getmembers()]
    assert len(offsets) > 10
    driver = _Driver(h)
    failures = []
    tarball = str(tmp_path / "rootfs.tar")
    try:
        for i, blob in enumerate(tar_mutations(base, offsets, max(CASES // 3, 20), SEED + 500)):
            with open(tarball, "wb") as f:
                f.write(blob)
            if not _judged(driver.steps("import", tarball, IMAGE), f"case {i}", h.image_root, failures):
                break
    finally:
        driver.close()
    blobs = os.path.join(h.image_root, "blobs", "sha256")
    assert not [n for n in os.listdir(blobs) if "." in n] if os.path.isdir(blobs) else True, "partial writes left"
    assert not failures, "\n".join(failures[:20]) + f"\n({len(failures)} failing cases)"


def answered(client, service: str, method: str, payload: bytes, case: str, failures: list[str]) -> str | None:
    """One mutated call: -> "" if it worked, the refusal's message, or None once the shim is
    gone. No answer within 10 s, or one that says "internal error", is noted in ``failures``."""
    from mrun.shims import ttrpc

    try:
        client.call(service, method, payload, timeout=10)
        return ""
    except ttrpc.TTRPCError as e:
        if e.code in (ttrpc.DEADLINE_EXCEEDED, ttrpc.UNAVAILABLE) or "internal error" in e.message:
            failures.append(f"{case}: {e.code} {e.message[:300]} ({payload[:200]!r})")
        return None if e.code == ttrpc.UNAVAILABLE else e.message or "refused"


def test_shim_request_mutations(h, tmp_path):
    """Every task method containerd calls, with mutated requests (hostile fields, integer
    extremes, cut-short or flipped bytes), against one shim daemon holding a running task and a
    running terminal exec: each call is answered within 10 s with a result or an error status
    that is not an internal error; the daemon lives on and still answers for its task; and once
    what the mutated Creates made is deleted, the shim shuts down leaving nothing."""
    from fuzz import proto_mutations
    from google.protobuf import any_pb2
    from google.protobuf.message import DecodeError
    from mrun.shims import ttrpc
    from mrun.shims.proto import task_pb2, types_pb2
    from test_shim_direct import TASK, Shim, reader

    cid = h.cid("shimfuzz")
    shim = Shim(h, h.bundle(["sleep", "600"]), cid)
    made: list[str] = []
    try:
        shim.call("Create", task_pb2.CreateTaskRequest(id=cid, bundle=shim.bundle))
        shim.call("Start", task_pb2.StartRequest(id=cid))
        (tty_out,) = shim.fifos("tty")
        out = reader(tty_out)
        process = {"args": ["sleep", "600"], "cwd": "/", "env": ["PATH=/bin"], "terminal": True}
        url = "types.containerd.io/opencontainers/runtime-spec/1/"
        spec = any_pb2.Any(type_url=url + "Process", value=json.dumps(process).encode())
        shim.call("Exec", task_pb2.ExecProcessRequest(id=cid, exec_id="t0", terminal=True, stdout=tty_out, spec=spec))
        shim.call("Start", task_pb2.StartRequest(id=cid, exec_id="t0"))

        def containerd_bundle() -> str:
            """A bundle as containerd makes one: an empty rootfs its rootfs mounts go on."""
            path = h.bundle(config=h.config(["true"], root={"path": "rootfs"}))
            os.mkdir(os.path.join(path, "rootfs"))
            return path

        bases = {
            "Create": task_pb2.CreateTaskRequest(
                id=cid + "-new", bundle=containerd_bundle(), options=any_pb2.Any(type_url="containerd.runc.v1.Options"),
                rootfs=[types_pb2.Mount(type="bind", source=h.rootfs, options=["rbind", "ro"])]),
            "Start": task_pb2.StartRequest(id=cid, exec_id="t0"),
            "Exec": task_pb2.ExecProcessRequest(id=cid, exec_id="e1", spec=any_pb2.Any(
                type_url=url + "Process", value=json.dumps({**process, "terminal": False}).encode())),
            "State": task_pb2.StateRequest(id=cid, exec_id="t0"),
            "Kill": task_pb2.KillRequest(id=cid, signal=0),
            "Pause": task_pb2.PauseRequest(id=cid),
            "Resume": task_pb2.ResumeRequest(id=cid),
            "Delete": task_pb2.DeleteRequest(id=cid + "-none"),
            "Update": task_pb2.UpdateTaskRequest(id=cid, resources=any_pb2.Any(
                type_url=url + "LinuxResources", value=b'{"pids": {"limit": 500}}'), annotations={"a": "b"}),
            "CloseIO": task_pb2.CloseIORequest(id=cid, exec_id="t0", stdin=True),
            "ResizePty": task_pb2.ResizePtyRequest(id=cid, exec_id="t0", width=80, height=24),
            "Pids": task_pb2.PidsRequest(id=cid),
            "Stats": task_pb2.StatsRequest(id=cid),
            "Checkpoint": task_pb2.CheckpointTaskRequest(id=cid, path=str(tmp_path / "cp")),
            "Connect": task_pb2.ConnectRequest(id=cid),
            "Shutdown": task_pb2.ShutdownRequest(id=cid),
        }

        def anew(method: str, payload: bytes, i: int) -> bytes:
            """A Create or Exec whose ids the mutations left as they were, with ids (and a bundle)
            of its own: each case reaches as far as its mutations let it, not "already exists"."""
            if method not in ("Create", "Exec"):
                return payload
            base = bases[method]
            try:
                msg = type(base).FromString(payload)
            except DecodeError:
                return payload
            if method == "Create" and msg.id == base.id:
                msg.id = f"{base.id}{i}"
                msg.bundle = containerd_bundle() if msg.bundle == base.bundle else msg.bundle
            if method == "Exec" and msg.exec_id == base.exec_id:
                msg.exec_id = f"{base.exec_id}-{i}"
            return msg.SerializeToString()

        def cgroups() -> set[str]:
            return {e for d in cgroup_dirs(h.cgroup_parent) for e in os.listdir(d) if os.path.isdir(os.path.join(d, e))}

        failures = []
        for n, (method, base) in enumerate(bases.items()):
            for i, payload in enumerate(proto_mutations(base, max(CASES // 3, 20), SEED + 100 + n)):
                payload = anew(method, payload, i)
                before = cgroups()
                refused = answered(shim.client, TASK, method, payload, f"{method} case {i}", failures)
                if refused is None:
                    break
                if refused:
                    if method == "Create" and cgroups() != before:
                        failures.append(f"{method} case {i}: refused ({refused[:200]}) but left a cgroup")
                    continue
                if method == "Create":
                    made.append(task_pb2.CreateTaskRequest.FromString(payload).id)
        shim.call("Resume", task_pb2.ResumeRequest(id=cid)) if h.status(cid) == "paused" else None
        state = task_pb2.StateResponse.FromString(shim.call("State", task_pb2.StateRequest(id=cid)))
        assert state.id == cid, state
        assert not failures, "\n".join(failures[:20]) + f"\n({len(failures)} failing cases)"
        os.close(out)
    finally:
        for task_id in [*made, cid]:
            try:
                shim.call("Kill", task_pb2.KillRequest(id=task_id, signal=9, all=True))
            except ttrpc.TTRPCError:
                pass
        for task_id in [*made, cid]:
            try:
                shim.call("Wait", task_pb2.WaitRequest(id=task_id), timeout=15)
            except ttrpc.TTRPCError:
                pass
        undone = []
        for task_id in [*made, cid]:
            try:
                shim.call("Delete", task_pb2.DeleteRequest(id=task_id))
            except ttrpc.TTRPCError as e:
                if e.code != ttrpc.NOT_FOUND:  # a mutated Delete may have taken it already
                    undone.append(f"{task_id}: {e.message}")
        shim.finish()
        assert not undone, f"tasks the shim made but could not delete: {undone}"


@pytest.mark.parametrize("bundle", ["/", "../../..", "relative", "/tmp/../tmp", "link"])
def test_a_sandbox_s_bundle_that_is_not_one_is_refused_and_nothing_is_written_there(h, tmp_path, bundle):
    """A mutated CreateSandbox's bundle_path "/" (found by a fuzz seed) had StartSandbox make the
    pod's files in the node's root: /pod-files. A bundle is containerd's own directory: absolute,
    without detours, not / and not a link; anything else is refused in one line (INVALID_ARGUMENT)
    and the shim writes nothing."""
    from mrun.shims import ttrpc
    from mrun.shims.proto import sandbox_pb2
    from test_shim_direct import Shim
    from test_shim_protocol import SANDBOX, pod_config

    if bundle == "link":
        bundle = str(tmp_path / "link")
        os.symlink("/", bundle)
    assert not os.path.exists("/pod-files"), "left by an earlier run: remove it"
    pod = h.cid("podbundle")
    shim = Shim(h, h.bundle(["true"]), pod)
    try:
        with pytest.raises(ttrpc.TTRPCError) as refused:
            shim.client.call(SANDBOX, "CreateSandbox", sandbox_pb2.CreateSandboxRequest(
                sandbox_id=pod, bundle_path=bundle, options=pod_config("fuzzpod", 0)).SerializeToString())
        assert refused.value.code == ttrpc.INVALID_ARGUMENT and "bundle_path" in str(refused.value), refused.value
        with pytest.raises(ttrpc.TTRPCError):
            shim.client.call(SANDBOX, "StartSandbox",
                             sandbox_pb2.StartSandboxRequest(sandbox_id=pod).SerializeToString())
        assert not os.path.exists("/pod-files") and not os.path.exists(os.path.join(shim.bundle, "pod-files"))
    finally:
        shim.finish()


def test_shim_sandbox_request_mutations(h, tmp_path):
    """The sandbox API (containerd 2's pods without a pause container), mutated as the task API
    above, against a shim holding a started pod with a user namespace and sysctls: each call is
    answered in time and never as an internal error, the pod still answers, and shutting the
    pods down leaves nothing."""
    from fuzz import proto_mutations
    from google.protobuf.message import DecodeError
    from mrun.shims import ttrpc
    from mrun.shims.proto import sandbox_pb2
    from test_shim_direct import Shim
    from test_shim_protocol import SANDBOX, pod_config, userns_message

    pod = h.cid("podfuzz")
    shim = Shim(h, h.bundle(["true"]), pod)
    options = pod_config("fuzzpod", 0, userns=userns_message(0, [(100000, 0, 65536)], [(100000, 0, 65536)]),
                         sysctls={"kernel.shm_rmid_forced": "1"})
    made = [pod]
    try:
        shim.client.call(SANDBOX, "CreateSandbox", sandbox_pb2.CreateSandboxRequest(
            sandbox_id=pod, bundle_path=shim.bundle, options=options).SerializeToString())
        shim.client.call(SANDBOX, "StartSandbox", sandbox_pb2.StartSandboxRequest(sandbox_id=pod).SerializeToString())
        bases = {
            "CreateSandbox": sandbox_pb2.CreateSandboxRequest(
                sandbox_id=pod + "-new", bundle_path=shim.bundle, options=options, annotations={"a": "b"}),
            "StartSandbox": sandbox_pb2.StartSandboxRequest(sandbox_id=pod + "-none"),
            "Platform": sandbox_pb2.PlatformRequest(sandbox_id=pod),
            "StopSandbox": sandbox_pb2.StopSandboxRequest(sandbox_id=pod + "-none", timeout_secs=1),
            "WaitSandbox": sandbox_pb2.WaitSandboxRequest(sandbox_id=pod + "-none"),
            "SandboxStatus": sandbox_pb2.SandboxStatusRequest(sandbox_id=pod, verbose=True),
            "PingSandbox": sandbox_pb2.PingRequest(sandbox_id=pod),
            "ShutdownSandbox": sandbox_pb2.ShutdownSandboxRequest(sandbox_id=pod + "-none"),
            "SandboxMetrics": sandbox_pb2.SandboxMetricsRequest(sandbox_id=pod),
        }
        failures = []
        for n, (method, base) in enumerate(bases.items()):
            for i, payload in enumerate(proto_mutations(base, max(CASES // 3, 20), SEED + 200 + n)):
                if method == "WaitSandbox":  # one that names a live pod waits for its end, as it should
                    try:
                        if type(base).FromString(payload).sandbox_id in made:
                            continue
                    except DecodeError:
                        pass
                refused = answered(shim.client, SANDBOX, method, payload, f"{method} case {i}", failures)
                if refused is None:
                    break
                if refused:
                    continue
                if method == "CreateSandbox":
                    made.append(sandbox_pb2.CreateSandboxRequest.FromString(payload).sandbox_id)
        status = sandbox_pb2.SandboxStatusResponse.FromString(shim.client.call(
            SANDBOX, "SandboxStatus", sandbox_pb2.SandboxStatusRequest(sandbox_id=pod).SerializeToString()))
        assert status.state == "SANDBOX_READY", status
        assert not failures, "\n".join(failures[:20]) + f"\n({len(failures)} failing cases)"
    finally:
        for sandbox_id in made:
            try:
                shim.client.call(SANDBOX, "ShutdownSandbox", sandbox_pb2.ShutdownSandboxRequest(
                    sandbox_id=sandbox_id).SerializeToString())
            except ttrpc.TTRPCError:
                pass
        deadline = time.monotonic() + 10
        while running(shim.pid):
            assert time.monotonic() < deadline, "the shim stayed after its last pod was shut down"
            time.sleep(0.05)


def test_wasm_module_mutations(h, tmp_path):
    """Modules as an image could carry them: hello.wasm with bytes flipped, cut, grown or with a
    section's size or a count made extreme, run as a wasm container (create, start, delete):
    create and start each work or refuse in one line (compiling, validating, linking), the
    container ends, and nothing is left."""
    import random

    from fuzz import _mutate_bytes
    from test_wasm import example, make, wasm_bundle

    base = example("hello.wasm")
    rng = random.Random(SEED + 400)
    env = {"MRUN_CACHE_DIR": str(tmp_path / "cache")}
    failures = []
    for i in range(max(CASES // 3, 20)):
        module = bytearray(base)
        for _ in range(rng.randint(1, 3)):
            if rng.random() < 0.4 and len(module) > 16:  # a LEB128 size or count: made extreme
                at = rng.randrange(8, len(module) - 6)
                module[at:at + 5] = rng.choice([b"\xff\xff\xff\xff\x0f", b"\x80\x80\x80\x80\x00", b"\x00",
                                                b"\xff\xff\xff\xff\x7f"])
            else:
                module = bytearray(_mutate_bytes(bytes(module), rng))
        cfg, bundle = wasm_bundle(h, bytes(module), ["/app.wasm", "1"], annotations={"run.oci.handler": "wasm"})
        cid = h.cid("wasmfuzz")
        r = h.mrun("create", "-b", make(h, cfg, bundle), cid, env=env, timeout=60)
        problem = refusal_problem(r.returncode, r.stderr)
        if not problem and r.returncode == 0:
            started = h.mrun("start", cid, env=env)
            problem = refusal_problem(started.returncode, started.stderr)
            for _ in range(100):
                if h.status(cid) in ("stopped", "gone"):
                    break
                time.sleep(0.05)
        if problem:
            failures.append(f"case {i}: {problem}: {r.stderr.strip()[-300:]}")
        h.mrun("delete", "--force", cid)
        shutil.rmtree(bundle)
    assert not failures, "\n".join(failures[:20]) + f"\n({len(failures)} failing cases)"


# Values a user's shell can hand a flag (never a NUL; a byte not UTF-8 comes as a surrogate
# escape): emptiness, numbers past every width, paths out of every tree, separators alone.
HOSTILE_ARGS = [
    "", " ", "x", "-", "--", "-1", "0", "1.5", "0x10", "1e308", "nan", "inf", "-0", str(2**63), str(2**64),
    "9" * 40, "../../..", "/", "//", "/proc/self", "/dev/null", ":", "::", ",", "=", "a=b=c", "=,:", "1:2:3:4",
    "x" * 5000, "é", "a\udcff", "\n", "a\nb", "1k", "1z", "-1m", "sha256:zz",
    "²", "৯", "1²", "١٠",  # digits to str.isdigit, not to int() (²) or read as others (৯ is 9)
    "9" * 5000, "RTMIN+" + "1" * 5000,  # past the 4300 digits int() reads (a ValueError)
    # (an argument is at most 128 KiB: a stretched value is cut to 100,000 characters)
]


def run_flag_mutations(base: list[tuple[str, str]], count: int, seed: int) -> list[list[str]]:
    """``count`` argvs of ``base``'s flags (name, value), one to three of them changed: the value
    made hostile or cut or stretched round its separators, the flag dropped or given twice."""
    import random

    rng = random.Random(seed)
    cases = []
    for _ in range(count):
        flags = list(base)
        for _ in range(rng.choice([1, 1, 2, 3])):
            if not flags:
                break
            i = rng.randrange(len(flags))
            name, value = flags[i]
            action = rng.random()
            if action < 0.5:
                flags[i] = (name, rng.choice(HOSTILE_ARGS))
            elif action < 0.8:
                cut = rng.randrange(len(value) + 1)
                flags[i] = (name, rng.choice([value[:cut], value[cut:], value[:cut] + rng.choice(":,=/") + value[cut:],
                                              (value * 50)[:100000], value.upper(), value + value[-1:] * 3,
                                              "".join(c for c in value if c.isalnum())]))
            elif action < 0.9:
                flags.pop(i)
            else:
                flags.insert(i, (name, rng.choice([value, rng.choice(HOSTILE_ARGS)])))
        cases.append([arg for name, value in flags for arg in (name, value)])
    return cases


@pytest.mark.parametrize("images", ["cold"], indirect=True)  # its driver calls the CLI in-process
def test_run_flag_mutations(images, busybox_archive, tmp_path):
    """docker's `run` with one of nearly every flag that takes a value (a valid run first), one to
    three of them mutated: each run of busybox's true works or is refused in one line, the
    container is removed (--rm), and no cgroup, mount, process or container is left."""
    from conftest import img_ok

    h = images
    img_ok(h, "load", busybox_archive)
    volume, env_file = tmp_path / "vol", tmp_path / "env"
    volume.mkdir()
    env_file.write_text("B=2\n")
    base = [
        ("-e", "A=1"), ("--env-file", str(env_file)), ("--mount", "type=tmpfs,target=/t,tmpfs-size=1m"),
        ("-v", f"{volume}:/v:ro"), ("-w", "/v"), ("-u", "0:0"), ("--entrypoint", ""), ("-m", "64m"),
        ("--pids-limit", "100"), ("--memory-swap", "128m"), ("--memory-reservation", "32m"),
        ("--memory-swappiness", "10"), ("-c", "512"), ("--cpu-period", "100000"), ("--cpu-quota", "50000"),
        ("--cpuset-cpus", "0"), ("--cpuset-mems", "0"), ("--blkio-weight", "500"), ("-h", "box"),
        ("--domainname", "example.org"), ("--log-opt", "max-size=1m"), ("--health-cmd", "true"),
        ("--health-interval", "1s"), ("--health-retries", "3"), ("--pull", "never"), ("--ipc", "private"),
        ("--annotation", "a=b"), ("--label", "a=b"),
        ("--security-opt", "no-new-privileges"), ("--cap-add", "NET_ADMIN"), ("--cap-drop", "CHOWN"),
        ("--ulimit", "nofile=100:200"), ("--tmpfs", "/tmp2:size=1m"), ("--device", "/dev/null:/dev/n0:rw"),
        ("--device-cgroup-rule", "c 1:3 rwm"), ("--sysctl", "kernel.shmmni=4096"), ("--group-add", "10"),
        ("--oom-score-adj", "100"), ("--stop-signal", "SIGTERM"), ("--stop-timeout", "5"), ("--shm-size", "8m"),
        ("--restart", "no"), ("--expose", "80"), ("--cgroupns", "private"), ("--kernel-memory", "4m"),
        ("--isolation", "default"), ("--pid", ""), ("--uts", ""), ("--userns", ""), ("--label", "c=d"),
    ]
    driver = _Driver(h)
    common = [*driver.common, "run", "--rm", "--network", "none", "--cgroup-parent", h.cgroup_parent]
    failures = []
    try:
        ran = driver.run([[*common, *(arg for flag in base for arg in flag), IMAGE, "true"]])
        assert ran and ran[0]["code"] == 0, ran
        for i, flags in enumerate(run_flag_mutations(base, CASES, SEED + 900)):
            steps = driver.run([[*common, *flags, IMAGE, "true"]])
            case = f"case {i} ({' '.join(flags)[:300]!r})"
            if steps is None:
                failures.append(f"{case}: the driver died or hung")
                break
            problem = step_problem(steps[0])
            if problem:
                failures.append(f"{case}: {problem}: {steps[0]['err'].strip()[-300:]}")
            containers = os.path.join(h.image_root, "containers")
            left = h.leftovers() + (os.listdir(containers) if os.path.isdir(containers) else [])
            if left:
                failures.append(f"{case}: left {left}")
                break
    finally:
        driver.close()
    assert not failures, "\n".join(failures[:20]) + f"\n({len(failures)} failing cases)"


def _signal_mutations(count: int, seed: int) -> list[list[str]]:
    """``count`` signal arguments for kill (a name, a number, runc's RTMIN+N), some hostile,
    some with --all before them."""
    import random

    rng = random.Random(seed)
    signals = ["TERM", "SIGTERM", "15", "0", "64", "65", "-9", "RTMIN+1", "SIGRTMAX-1", "RTMIN+40", "RTMAX-100",
               "sigterm", "SIGSIGTERM", "TERM TERM", "+15", "1_5", "০", "SIGKILL", "STOP", "CONT", "HUP"]
    return [[*(["--all"] if rng.random() < 0.2 else []), rng.choice(signals + HOSTILE_ARGS)] for _ in range(count)]


def test_runc_verb_flag_mutations(h, tmp_path, monkeypatch):
    """The runc verbs podman and containerd's runc shim call into a running container, their
    flags mutated as `run`'s are above: exec (cwd, env, user, groups, capabilities, labels,
    descriptors, pid file), update by flags and by a resources file (JSON mutated), kill by
    signal. Each works or is refused in one line; a container a mutation ended (a signal, a
    limit under its use) is made again; nothing is left after. It found `update` encoding a
    value's bytes as text (an internal error), and `exec --pid-file /dev/null` replacing the
    host's /dev/null with a file."""
    from fuzz import mutations

    # The pid file is named relative to a directory three deep in tmp_path: a mutated name (cut
    # short, "../../..") stays in it. An absolute one, cut short, was written where it pointed
    # (/tmp/pytest-of-, a file in the host's /tmp).
    work = tmp_path / "w" / "x" / "y"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    bundle = h.bundle(["sleep", "600"])
    pid_file, resources = "exec.pid", tmp_path / "resources.json"
    exec_base = [("--cwd", "/"), ("--env", "A=1"), ("--user", "0:0"), ("--additional-gids", "10"),
                 ("--cap", "CAP_KILL"), ("--process-label", ""), ("--apparmor", ""), ("--preserve-fds", "0"),
                 ("--pid-file", pid_file), ("--env", "B=2")]
    update_base = [("--memory", "64m"), ("--memory-swap", "128m"), ("--memory-reservation", "32m"),
                   ("--pids-limit", "100"), ("--cpu-shares", "512"), ("--cpu-period", "100000"),
                   ("--cpu-quota", "50000"), ("--cpuset-cpus", "0"), ("--cpuset-mems", "0")]
    resources_base = {"memory": {"limit": 64 << 20, "reservation": 32 << 20, "swap": 128 << 20},
                      "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"},
                      "pids": {"limit": 100}}  # (no blockIO: not every host's scheduler takes a weight)
    kinds = {"exec": run_flag_mutations(exec_base, CASES // 4 + 1, SEED + 1000),
             "update": run_flag_mutations(update_base, CASES // 4 + 1, SEED + 1001),
             "resources": mutations(resources_base, CASES // 4 + 1, SEED + 1002),
             "kill": _signal_mutations(CASES // 4 + 1, SEED + 1003)}
    cid, failures = h.cid("verbs"), []

    def argv(kind: str, case: list) -> list[str]:
        if kind == "exec":
            return ["exec", *case, cid, "true"]
        if kind == "update":
            return ["update", *case, cid]
        if kind == "resources":
            resources.write_text(json.dumps(case))
            return ["update", "--resources", str(resources), cid]
        return ["kill", *case[:-1], cid, case[-1]]

    h.ok("create", "-b", bundle, cid)
    h.ok("start", cid)
    try:
        for i in range(CASES):
            kind = list(kinds)[i % 4]
            case = kinds[kind][i // 4]
            args = argv(kind, case)
            try:
                r = h.mrun(*args, timeout=10)
            except subprocess.TimeoutExpired:
                failures.append(f"case {i}: {kind} hung ({args[:-1]})"[:400])
                continue
            problem = refusal_problem(r.returncode, r.stderr)
            if kind == "exec" and r.returncode not in (0, 125, 126, 127, 255) and not r.stderr:
                problem = ""  # the process's own status
            if r.returncode == 1 and r.stderr.startswith(f"Usage: mrun {args[0]} ") and \
                    r.stderr.strip().splitlines()[-1].startswith("Error: ") and "Traceback" not in r.stderr:
                problem = ""  # a usage error of a runc verb is runc's: the usage, the error, exit 1 (main.RUNC_VERBS)
            if problem:
                failures.append(f"case {i}: {kind}: {problem}: {r.stderr.strip()[-300:]} ({json.dumps(args)[:300]})")
            if h.status(cid) != "running":  # a signal or a limit ended it: make it again
                d = h.mrun("delete", "--force", cid)
                if d.returncode or "Traceback" in d.stderr:
                    failures.append(f"case {i}: delete --force after {kind}: {d.stderr[-300:]}")
                h.ok("create", "-b", bundle, cid)
                h.ok("start", cid)
    finally:
        h.mrun("delete", "--force", cid)
    left = h.leftovers()
    assert not left, left
    assert not failures, "\n".join(failures[:20]) + f"\n({len(failures)} failing cases)"


DOCKER_VERB_FORMS = [  # V: the mutated argument; "pe" a running container, IMAGE a loaded image. (No pull or
    # login: a hostile name would be looked up on the network; no kill of pe, no cp into it of "/".)
    ["logs", "--tail", "V", "pe"], ["logs", "--since", "V", "pe"], ["logs", "--until", "V", "pe"],
    ["ps", "-a", "--filter", "V"], ["ps", "-a", "--format", "V"], ["ps", "-a", "-n", "V"],
    ["images", "--filter", "V"], ["images", "--format", "V"], ["inspect", "-f", "V", "pe"],
    ["inspect", "--type", "V", "pe"], ["stop", "-t", "V", "nosuch"], ["stop", "-s", "V", "nosuch"],
    ["restart", "-t", "V", "nosuch"], ["kill", "-s", "V", "nosuch"], ["wait", "V"], ["top", "pe", "V"],
    ["stats", "--no-stream", "--format", "V", "pe"], ["container", "prune", "-f", "--filter", "V"],
    ["image", "prune", "-f", "--filter", "V"], ["tag", IMAGE, "V"], ["rmi", "V"],
    ["history", "--format", "V", IMAGE], ["save", "--format", "V", IMAGE], ["rename", "nosuch", "V"],
    ["volume", "ls", "--filter", "V"], ["network", "ls", "--filter", "V"], ["diff", "V"], ["port", "pe", "V"],
    ["cp", "pe:V", "OUT"], ["events", "--since", "V"], ["system", "df", "--format", "V"], ["info", "--format", "V"],
    ["version", "--format", "V"], ["commit", "-c", "V", "pe", "fz:1"], ["commit", "-m", "V", "pe", "fz:1"],
    ["update", "--memory", "V", "pe"], ["update", "--restart", "V", "pe"], ["pause", "V"],
    ["attach", "--detach-keys", "V", "nosuch"], ["logout", "V"], ["import", "V"], ["load", "-i", "V"],
    ["volume", "inspect", "V"], ["volume", "rm", "V"], ["network", "inspect", "V"], ["network", "rm", "V"],
    ["image", "inspect", "V"], ["exec", "-u", "V", "pe", "true"], ["exec", "-w", "V", "pe", "true"],
    ["exec", "-e", "V", "pe", "true"], ["exec", "--env-file", "V", "pe", "true"], ["exec", "-g", "V", "pe", "true"],
]
DOCKER_VERB_VALUES = HOSTILE_ARGS + [
    "{{", "}}", "{{.}}", "{{json .}}", "{{range .}}", "{{.Nope}}", "table {{.ID}}", "label=a", "status=x", "before=x",
    "since=x", "dangling=true", "until=1²h", "id=", "name=", "ancestor=" + "x" * 300, "2020-01-01T00:00:00.²Z",
    "10m", "1²s", "root:²", "0:৯", "nobody:nogroup", "1:2:3", ":0", "0:", "4294967296", "0:4294967295", "--", "-h",
]


@pytest.mark.parametrize("images", ["cold"], indirect=True)  # each verb's own code, not the template's door
def test_docker_verb_argument_mutations(images, busybox_archive, tmp_path, monkeypatch):
    """Sampled pairs of a docker-like verb's argument and a hostile value (a filter, a format, a
    time, a count, a signal, a user, a name, a path; digits other than ASCII's): each answers, or
    refuses in one line; nothing is made or left but what a verb was asked to make. A probe of
    every pair found `logout` and `login --` internal errors (no server: None)."""
    import random

    from conftest import img, img_ok, run_args

    monkeypatch.chdir(tmp_path)  # relative names (an env file, a cp source) are looked for here
    h = images
    img_ok(h, "load", busybox_archive)
    img_ok(h, *run_args(h, "-d", "--name", "pe", IMAGE, "sh", "-c", "echo hi; sleep 600"))
    rng, failures = random.Random(SEED + 1100), []
    base = [h.binary, "--root", h.root, "--image-root", h.image_root]
    try:
        for i in range(CASES):
            form, value = rng.choice(DOCKER_VERB_FORMS), rng.choice(DOCKER_VERB_VALUES)
            args = [value if a == "V" else str(tmp_path / "out") if a == "OUT" else a for a in form]
            try:
                r = subprocess.run([*base, *args], stdin=subprocess.DEVNULL, capture_output=True, timeout=20,
                                   env={**os.environ, **h.base_env})
            except subprocess.TimeoutExpired:
                failures.append(f"case {i}: {args[:4]} hung")
                continue
            err = r.stderr.decode(errors="replace")
            problem = refusal_problem(r.returncode, err)
            if r.returncode in (1, 2) and err.startswith("Usage: "):
                problem = ""  # click's usage error: a missing argument, an option that is none (main.RUNC_VERBS)
            if args[0] == "exec" and r.returncode not in (0, 125, 126, 127) and not err:
                problem = ""  # true's own status under a hostile user or directory
            if problem:
                failures.append(f"case {i}: {' '.join(args)[:120]!r}: {problem}: {err.strip()[-200:]}")
        assert img_ok(h, "inspect", "-f", "{{.State.Status}}", "pe").stdout == "running\n"
    finally:
        img(h, "rm", "-f", "pe")
        img(h, "rmi", "fz:1")
        for name in DOCKER_VERB_VALUES:
            img(h, "rmi", name) if ":" not in name and "/" not in name else None  # a tag a case made
    assert not failures, "\n".join(failures[:20]) + f"\n({len(failures)} failing cases)"

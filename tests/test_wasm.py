"""The wasm backend: modules and components in the same sandbox, under the same limits, with exit
codes kept and compiled modules cached. The C examples are the committed builds of
examples/wasm (rebuilt here if clang is installed, to prove the build script works)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time

import pytest
import wasmtime
from conftest import one_line_error

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples", "wasm")

SPIN = '(module (func (export "_start") (loop $l (br $l))))'
TRAP = '(module (func (export "_start") unreachable))'
GROW = """(module (memory (export "memory") 1)
  (func (export "_start")
    (block $full (loop $more
      (br_if $full (i32.eq (memory.grow (i32.const 16)) (i32.const -1)))
      (br $more)))
    unreachable))"""
MISSING_IMPORT = """(module (import "env" "nobody_provides_this" (func))
  (func (export "_start") call 0))"""
COMPONENT = """(component
  (core module $m (func (export "run") (result i32) i32.const {code}))
  (core instance $i (instantiate $m))
  (func $run (result (result)) (canon lift (core func $i "run")))
  (instance $inst (export "run" (func $run)))
  (export "wasi:cli/run@0.2.0" (instance $inst)))"""


def _leb(n: int) -> bytes:
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


def costly_module(instructions: int = 1_000_000) -> bytes:
    """A valid module that exits 0, whose one ``_start`` is ``instructions`` times ``i32.const 1;
    drop``: 3 MB compiling to ~100 MiB of the compiler's memory and a second of CPU (a hostile
    one: gigabytes and minutes). Its layer compresses to a few kB."""
    body = b"\x00" + bytes([0x41, 0x01, 0x1A]) * instructions + b"\x0b"

    def section(number: int, content: bytes) -> bytes:
        return bytes([number]) + _leb(len(content)) + content

    return (b"\x00asm\x01\x00\x00\x00" + section(1, b"\x01\x60\x00\x00") + section(3, b"\x01\x00")
            + section(7, b"\x01\x06_start\x00\x00") + section(10, b"\x01" + _leb(len(body)) + body))


def example(name: str) -> bytes:
    with open(os.path.join(EXAMPLES, name), "rb") as f:
        return f.read()


def example_path(name: str) -> str:
    return os.path.join(EXAMPLES, name)


def wasm_bundle(h, module: bytes, args: list[str] | None = None, files: dict[str, str] | None = None, **changes):
    """A rootfs holding only the module (no busybox: a wasm container needs none)."""
    base = os.path.join(h.tmp, f"wasm-{len(os.listdir(h.tmp))}")
    rootfs = os.path.join(base, "rootfs")
    for d in ("proc", "dev", "sys", "tmp", "work"):
        os.makedirs(os.path.join(rootfs, d))
    with open(os.path.join(rootfs, "app.wasm"), "wb") as f:
        f.write(module)
    for path, text in (files or {}).items():
        with open(os.path.join(rootfs, path.lstrip("/")), "w") as f:
            f.write(text)
    cfg = h.config(args or ["/app.wasm"], **changes)
    cfg["root"] = {"path": rootfs, "readonly": True}
    return cfg, base


def make(h, cfg, base) -> str:
    from busybox_bundle import write_config

    write_config(base, cfg)
    return base


@pytest.fixture
def cache_env(tmp_path):
    return {"MRUN_CACHE_DIR": str(tmp_path / "cache")}


def test_examples_build_with_debian_clang(tmp_path):
    if not shutil.which("clang"):
        pytest.fail("clang is missing: apt-get install clang lld wasi-libc libclang-rt-14-dev-wasm32")
    work = tmp_path / "wasm"
    shutil.copytree(EXAMPLES, work)
    for f in work.glob("*.wasm"):
        f.unlink()
    subprocess.run(["sh", str(work / "build.sh")], check=True, capture_output=True)
    for name in ("hello.wasm", "files.wasm"):
        wasmtime.Module(wasmtime.Engine(), (work / name).read_bytes())  # valid modules


def test_exit_code_argv_env_cwd(h, cache_env):
    cfg, base = wasm_bundle(
        h, example("hello.wasm"), ["/app.wasm", "3", "two words"],
        files={"/work/data.txt": "from the cwd\n", "/data.txt": "from /\n"},
    )
    cfg["process"]["env"] = ["GREETING=hi wasm"]
    cfg["process"]["cwd"] = "/work"
    r = h.mrun("run", "-b", make(h, cfg, base), h.cid(), env=cache_env)
    assert r.returncode == 3, r.stderr
    assert r.stdout.splitlines() == [
        "hello from wasm32-wasi: [/app.wasm] [3] [two words]",
        "GREETING=hi wasm",
        "cwd=/",  # WASI preview 1 has no cwd: wasi-libc's is "/", and relative paths resolve there
        "relative read: from /",
    ]


def test_a_working_directory_does_not_hide_the_rootfs(h, cache_env):
    """With -w /data the rootfs's own /marker and /app.wasm are still found (a "." preopen after
    "/" used to take every absolute path), and /data/marker is the cwd's."""
    cfg, base = wasm_bundle(h, example("cat.wasm"), ["/app.wasm", "/marker", "/data/marker"],
                            files={"/marker": "root marker\n"})
    os.makedirs(os.path.join(base, "rootfs", "data"))
    with open(os.path.join(base, "rootfs", "data", "marker"), "w") as f:
        f.write("data marker\n")
    cfg["process"]["cwd"] = "/data"
    r = h.mrun("run", "-b", make(h, cfg, base), h.cid(), env=cache_env)
    assert r.returncode == 0 and r.stdout == "root marker\ndata marker\n", (r.stdout, r.stderr)


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ("", ["3 /", "4 /dev", "5 /dev/shm", "6 /mnt"]),  # the spec's tmpfs mounts count too
        ("rootfs", ["3 /", "4 /dev", "5 /dev/shm", "6 /mnt"]),
        ("mounts", ["3 /dev", "4 /dev/shm", "5 /mnt"]),
        ("none", ["none"]),
        ("/mnt:ro,/work", ["3 /mnt", "4 /work"]),
    ],
)
def test_the_operator_chooses_what_a_module_sees(h, cache_env, tmp_path, policy, expected):
    """org.mrun.wasm.preopens: the WASI fd layout is exactly what was asked (none: no fd 3)."""
    cfg, base = wasm_bundle(h, example("preopens.wasm"))
    shared = tmp_path / "shared"
    shared.mkdir()
    cfg["mounts"].append({"destination": "/mnt", "type": "bind", "source": str(shared), "options": ["rbind"]})
    if policy:
        cfg["annotations"] = {"org.mrun.wasm.preopens": policy}
    r = h.mrun("run", "-b", make(h, cfg, base), h.cid(), env=cache_env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == expected


def test_a_bad_preopen_policy_is_one_line_at_create(h, cache_env):
    cfg, base = wasm_bundle(h, example("preopens.wasm"))
    cfg["annotations"] = {"org.mrun.wasm.preopens": "relative/dir"}
    r = h.mrun("create", "-b", make(h, cfg, base), h.cid(), env=cache_env)
    assert r.returncode != 0 and "org.mrun.wasm.preopens" in r.stderr and r.stderr.count("\n") == 1, r.stderr


def test_env_is_exactly_the_spec(h, cache_env):
    cfg, base = wasm_bundle(h, example("hello.wasm"), ["/app.wasm", "0"])
    cfg["process"]["env"] = []
    r = h.mrun("run", "-b", make(h, cfg, base), h.cid(), env={**cache_env, "GREETING": "leaked from the host"})
    assert "GREETING=(unset)" in r.stdout


def test_files_rootfs_bind_mounts_readonly_and_outside(h, cache_env):
    data = os.path.join(h.tmp, "data")
    ro = os.path.join(h.tmp, "ro")
    os.makedirs(data)
    os.makedirs(ro)
    with open(os.path.join(h.tmp, "host-secret"), "w") as f:
        f.write("secret\n")
    args = ["/app.wasm", "/etc-msg.txt", "/data/out.txt", "/ro/out.txt", "/../../host-secret"]
    cfg, base = wasm_bundle(h, example("files.wasm"), args, files={"/etc-msg.txt": "hello from the rootfs\n"})
    cfg["mounts"] += [
        {"destination": "/data", "type": "bind", "source": data, "options": ["rbind", "rw"]},
        {"destination": "/ro", "type": "bind", "source": ro, "options": ["rbind", "ro"]},
    ]
    for d in ("data", "ro"):
        os.makedirs(os.path.join(base, "rootfs", d))
    r = h.mrun("run", "-b", make(h, cfg, base), h.cid(), env=cache_env)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "read /etc-msg.txt: hello from the rootfs"
    assert lines[1] == "wrote /data/out.txt"
    assert lines[2].startswith("write /ro/out.txt: ") and "allowed" not in lines[2]
    assert lines[3].startswith("read /../../host-secret: ") and "allowed" not in lines[3]
    assert open(os.path.join(data, "out.txt")).read() == "written by wasm: hello from the rootfs\n"
    assert os.listdir(ro) == []


def test_engine_is_pid1_in_its_own_namespaces_and_cgroup(h, cache_env):
    cfg, base = wasm_bundle(h, wasmtime.wat2wasm(SPIN))
    cid = h.cid()
    h.ok("create", "-b", make(h, cfg, base), cid, env=cache_env)
    h.ok("start", cid)
    pid = json.loads(h.ok("state", cid).stdout)["pid"]
    status = dict(line.split(":", 1) for line in open(f"/proc/{pid}/status").read().splitlines())
    assert status["NSpid"].split()[-1] == "1"
    assert os.readlink(f"/proc/{pid}/ns/net") != os.readlink("/proc/self/ns/net")
    assert os.readlink(f"/proc/{pid}/ns/pid") != os.readlink("/proc/self/ns/pid")
    cgroups = open(f"/proc/{pid}/cgroup").read()
    assert cfg["linux"]["cgroupsPath"] in cgroups
    assert pid in json.loads(h.ok("ps", "-f", "json", cid).stdout)
    h.ok("kill", cid, "KILL")
    h.wait_status(cid, "stopped")
    h.ok("delete", cid)


def test_exec_into_a_wasm_container(h, cache_env):
    cfg, base = wasm_bundle(h, example("hello.wasm"), ["/app.wasm", "0"])
    cid = h.cid()
    h.ok("create", "-b", make(h, cfg, base), cid, env=cache_env)  # created: the init waits for start
    r = h.mrun("exec", "-e", "GREETING=from exec", cid, "/app.wasm", "9", env=cache_env)
    assert r.returncode == 9, r.stderr
    assert "[/app.wasm] [9]" in r.stdout and "GREETING=from exec" in r.stdout
    h.ok("delete", cid)


@pytest.mark.parametrize("deadline_ms", ["", "86400000"])
def test_kill_term_ends_a_tight_loop_promptly(h, cache_env, deadline_ms):
    """Also under a long deadline: the signal's thread made the module trap by counting the
    engine's epoch past the deadline, one tick (10 ms of deadline) per call through ctypes, and
    a day's deadline kept it counting for seconds before the container ended."""
    annotations = {"org.mrun.wasm.deadline-ms": deadline_ms} if deadline_ms else {}
    cfg, base = wasm_bundle(h, wasmtime.wat2wasm(SPIN), annotations=annotations)
    cid = h.cid()
    proc = subprocess.Popen(
        [h.binary, "--root", h.root, "run", "-b", make(h, cfg, base), cid],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, **cache_env},
    )
    h.wait_status(cid, "running")
    time.sleep(0.2)  # let it spin
    h.ok("kill", cid, "TERM")
    assert proc.wait(timeout=1.0) == 143  # the bound: within a second
    proc.stderr.close()


def test_cpu_quota_throttles_the_engine(h, cache_env):
    cfg, base = wasm_bundle(h, wasmtime.wat2wasm(SPIN))
    cfg["linux"]["resources"]["cpu"] = {"quota": 20000, "period": 100000}
    cid = h.cid()
    h.ok("run", "-d", "-b", make(h, cfg, base), cid, env=cache_env)
    backend = json.loads(h.ok("events", "--stats", cid, env=cache_env).stdout)["data"]["backend"]
    assert backend["name"] == "wasm" and backend["engine"].startswith("wasmtime-")
    deadline = time.monotonic() + 20
    while json.loads(h.ok("events", "--stats", cid).stdout)["data"]["cpu"]["throttling"].get("throttledPeriods", 0) < 3:
        assert time.monotonic() < deadline, "the wasm engine was never throttled"
        time.sleep(0.1)
    h.ok("delete", "--force", cid)


def test_memory_limit_is_the_store_limit(h, cache_env):
    """The store gets the cgroup's limit less the engine's share (16 MiB less 8: 8 MiB)."""
    cfg, base = wasm_bundle(h, wasmtime.wat2wasm(GROW))
    cfg["linux"]["resources"]["memory"] = {"limit": 16 * 1024 * 1024}
    r = h.mrun("run", "-b", make(h, cfg, base), h.cid(), env=cache_env)
    assert r.returncode == 134, r.stderr
    assert "store memory limit of 8388608 bytes" in r.stderr and "wasm trap" in r.stderr


def test_a_module_compiles_under_its_container_s_memory_limit(h, cache_env):
    """Seen: a module was compiled on the host side in the calling process (the CLI, or the
    shim's create worker), in its cgroup: a module whose compile needs ~100 MiB (a hostile one:
    gigabytes) was paid by the host whatever the container's limit. It compiles in a child in the
    container's cgroup now: under a 48 MiB limit that is the container's OOM kill, refused in one
    line naming the field, nothing cached, nothing left; under 512 MiB it compiles and runs."""
    cfg, base = wasm_bundle(h, costly_module())
    cfg["linux"]["resources"]["memory"] = {"limit": 48 << 20}
    one_line_error(h.mrun("create", "-b", make(h, cfg, base), h.cid(), env=cache_env),
                   "wasm: /app.wasm: compiling", "linux.resources.memory.limit")
    assert not os.path.isdir(os.path.join(cache_env["MRUN_CACHE_DIR"], "wasm")) or not os.listdir(
        os.path.join(cache_env["MRUN_CACHE_DIR"], "wasm"))
    cfg["linux"]["resources"]["memory"] = {"limit": 512 << 20}
    r = h.mrun("run", "-b", make(h, cfg, base), h.cid(), env=cache_env)
    assert r.returncode == 0, r.stderr


def test_trap_exits_134_with_the_message(h, cache_env):
    cfg, base = wasm_bundle(h, wasmtime.wat2wasm(TRAP))
    r = h.mrun("run", "-b", make(h, cfg, base), h.cid(), env=cache_env)
    assert r.returncode == 134
    assert "wasm trap" in r.stderr and "unreachable" in r.stderr


def test_deadline_annotation_stops_a_runaway_module(h, cache_env):
    cfg, base = wasm_bundle(h, wasmtime.wat2wasm(SPIN), annotations={"org.mrun.wasm.deadline-ms": "200"})
    r = h.mrun("run", "-b", make(h, cfg, base), h.cid(), env=cache_env, timeout=20)
    assert r.returncode == 152, r.stderr
    assert "deadline of 200 ms" in r.stderr


@pytest.mark.parametrize("code, expected", [(0, 0), (1, 1)])
def test_component_runs(h, cache_env, code, expected):
    cfg, base = wasm_bundle(h, wasmtime.wat2wasm(COMPONENT.format(code=code)))
    bundle = make(h, cfg, base)
    assert "WebAssembly component" in h.ok("explain", "-b", bundle).stdout
    r = h.mrun("run", "-b", bundle, h.cid(), env=cache_env)
    assert r.returncode == expected, r.stderr


def test_second_start_uses_the_cache_and_corruption_is_recompiled(h, cache_env):
    cfg, base = wasm_bundle(h, example("hello.wasm"), ["/app.wasm", "5"])
    bundle = make(h, cfg, base)
    log = os.path.join(h.tmp, "debug.log")

    def run() -> list[str]:
        open(log, "w").close()
        r = h.mrun("--debug", "--log", log, "run", "-b", bundle, h.cid(), env=cache_env)
        assert r.returncode == 5, r.stderr
        return [line for line in open(log).read().splitlines() if "wasm:" in line]

    first = run()
    assert any("compiled module" in line for line in first), first
    second = run()
    assert any("from the cache" in line for line in second) and not any("compiled" in line for line in second)
    listing = h.ok("cache", "list", env=cache_env).stdout.splitlines()
    assert len(listing) == 1 and "module" in listing[0]
    entry = os.path.join(cache_env["MRUN_CACHE_DIR"], "wasm", listing[0].split()[0])
    entry = next(
        p
        for p in (os.path.join(os.path.dirname(entry), n) for n in os.listdir(os.path.dirname(entry)))
        if p.endswith(".cwasm")
    )
    with open(entry, "r+b") as f:
        f.seek(os.path.getsize(entry) // 2)
        f.write(b"\xde\xad\xbe\xef")
    third = run()
    assert any("corrupt" in line for line in third) and any("compiled module" in line for line in third)
    assert "removed 1 entry" in h.ok("cache", "prune", "--all", env=cache_env).stdout
    assert h.ok("cache", "list", env=cache_env).stdout == ""


def test_what_a_killed_cache_writer_left_is_removed_by_the_next_write_and_by_prune(h, cache_env):
    """An entry is written to NAME.PID.tmp and renamed: a writer killed in between (a create, a
    pull) left that file for good, as large as the compiled module, and nothing removed it. The
    next write and `cache prune` remove those of dead writers; a live writer's stays."""
    cache = os.path.join(cache_env["MRUN_CACHE_DIR"], "wasm")
    os.makedirs(cache)
    ended = subprocess.Popen(["true"])
    ended.wait()
    dead = [os.path.join(cache, f"{'a' * 64}.{kind}.{ended.pid}.tmp") for kind in ("cwasm", "json")]
    live = os.path.join(cache, f"{'b' * 64}.cwasm.{os.getpid()}.tmp")
    for path in (*dead, live):
        with open(path, "wb") as f:
            f.write(b"half an entry")
    cfg, base = wasm_bundle(h, wasmtime.wat2wasm(TRAP))
    h.mrun("run", "-b", make(h, cfg, base), h.cid(), env=cache_env)  # a miss: compiled and written
    assert not any(map(os.path.exists, dead)) and os.path.exists(live)
    with open(dead[0], "wb") as f:
        f.write(b"half an entry")
    h.ok("cache", "prune", env=cache_env)
    assert not os.path.exists(dead[0]) and os.path.exists(live)
    os.unlink(live)


def test_cache_prune_removes_only_what_the_cache_wrote(h, cache_env):
    """`cache prune` (and --all) removed any *.cwasm in the cache directory, and the sweep any
    NAME.PID.tmp of a dead pid: files of someone else's put there (a wasmtime `compile` output,
    an editor's temporary file) went with the entries. Only names the cache makes are touched."""
    cache = os.path.join(cache_env["MRUN_CACHE_DIR"], "wasm")
    os.makedirs(cache, mode=0o700)
    ended = subprocess.Popen(["true"])
    ended.wait()
    theirs = [os.path.join(cache, name) for name in ("app.cwasm", f"notes.{ended.pid}.tmp", f"{'c' * 63}.cwasm",
                                                      f"{'d' * 64}.txt.{ended.pid}.tmp")]
    for path in theirs:
        with open(path, "w") as f:
            f.write("someone else's")
    assert h.ok("cache", "list", env=cache_env).stdout == ""
    h.ok("cache", "prune", "--all", env=cache_env)
    assert all(map(os.path.exists, theirs))


EXIT_42 = """(module (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (func (export "_start") (call $exit (i32.const 42))))"""


def test_a_cache_others_can_write_to_is_never_trusted_with_native_code(h, cache_env):
    """A compiled entry is native code that wasmtime maps and runs as it is (deserializing bytes
    that are not our own is unsafe). The cache directory was made with the caller's umask (000
    under some daemons: anyone may write there) and its entries were used whoever wrote them:
    an entry planted under hello.wasm's key, compiled from a module that exits 42, ran in its
    place. Entries are read only from a directory and as files that are ours and writable by
    no one else; a directory mrun makes is 0700 whatever the umask."""
    import hashlib

    from mrun.backends.wasm import engine, engine_description
    from mrun.backends.wasm_cache import MAGIC, SUFFIX, ModuleCache

    hello = example("hello.wasm")
    cache = os.path.join(cache_env["MRUN_CACHE_DIR"], "wasm")
    os.makedirs(cache)
    planted = wasmtime.Module(engine(), wasmtime.wat2wasm(EXIT_42)).serialize()
    entry = os.path.join(cache, ModuleCache(cache).key(hashlib.sha256(hello).hexdigest(), "module",
                                                       engine_description()) + SUFFIX)

    def plant(mode: int) -> None:
        with open(entry, "wb") as f:
            f.write(MAGIC + hashlib.sha256(planted).digest() + planted)
        os.chmod(entry, mode)

    cfg, base = wasm_bundle(h, hello, ["/app.wasm", "5"])
    bundle = make(h, cfg, base)
    for dir_mode, entry_mode in ((0o777, 0o644), (0o755, 0o666), (0o1777, 0o644)):
        os.chmod(cache, dir_mode)
        plant(entry_mode)
        r = h.mrun("run", "-b", bundle, h.cid(), env=cache_env)
        assert r.returncode == 5, (oct(dir_mode), oct(entry_mode), r.returncode, r.stderr)
    fresh = {"MRUN_CACHE_DIR": os.path.join(h.tmp, "fresh-cache")}
    mask = os.umask(0)
    try:
        assert h.mrun("run", "-b", bundle, h.cid(), env=fresh).returncode == 5
    finally:
        os.umask(mask)
    made = os.path.join(fresh["MRUN_CACHE_DIR"], "wasm")
    assert os.stat(made).st_mode & 0o077 == 0, oct(os.stat(made).st_mode)
    assert all(os.stat(os.path.join(made, n)).st_mode & 0o022 == 0 for n in os.listdir(made))


@pytest.mark.parametrize(
    "content, needle",
    [
        (b"this is not wasm at all", "not a WebAssembly module"),
        (None, "invalid module"),  # truncated
        (wasmtime.wat2wasm(MISSING_IMPORT), "nobody_provides_this"),
    ],
)
def test_bad_modules_fail_create_cleanly(h, cache_env, content, needle):
    module = content if content is not None else example("hello.wasm")[:200]
    cfg, base = wasm_bundle(h, module, annotations={"run.oci.handler": "wasm"})
    one_line_error(h.mrun("create", "-b", make(h, cfg, base), h.cid(), env=cache_env), needle)


def test_a_module_larger_than_engines_accept_is_refused_unread(h, cache_env):
    """A sparse 1 GiB + 1 "module" (an image's layer holds one in a few kB): it was read whole into
    the host-side mrun, 2 GiB resident with wasmtime's copy, before wasmtime refused it."""
    cfg, base = wasm_bundle(h, b"\0asm\x01\0\0\0")
    os.truncate(os.path.join(base, "rootfs", "app.wasm"), (1 << 30) + 1)
    r = h.mrun("create", "-b", make(h, cfg, base), h.cid(), env=cache_env)
    one_line_error(r, "/app.wasm: 1073741825 bytes, larger than the 1 GiB a WebAssembly engine accepts")


def test_dispatch_annotations(h, cache_env):
    # compat-smart: only a wasm entrypoint goes to wasm; a busybox one stays linux
    smart = {"module.wasm.image/variant": "compat-smart"}
    assert h.ok("explain", "-b", h.bundle(["sh", "-c", "true"], annotations=smart)).stdout.startswith("backend: linux")
    cfg, base = wasm_bundle(h, example("hello.wasm"), annotations=smart)
    assert "compat-smart" in h.ok("explain", "-b", make(h, cfg, base)).stdout
    # compat: everything to wasm, so an ELF entrypoint is a clear error
    compat = h.bundle(["sh"], annotations={"module.wasm.image/variant": "compat"})
    assert h.ok("explain", "-b", compat).stdout.startswith("backend: wasm")
    r = h.mrun("run", "-b", compat, h.cid(), env=cache_env)
    assert r.returncode != 0 and "not a WebAssembly module" in r.stderr


def test_wasm_on_a_terminal(h, cache_env):
    cfg, base = wasm_bundle(h, example("hello.wasm"), ["/app.wasm", "2"])
    cfg["process"]["terminal"] = True
    r = subprocess.run(
        [h.binary, "--root", h.root, "run", "-b", make(h, cfg, base), h.cid()],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        env={**os.environ, **cache_env},
        timeout=60,
    )
    assert r.returncode == 2, r.stderr
    assert b"hello from wasm32-wasi: [/app.wasm] [2]\r\n" in r.stdout  # \r\n: the pty's line discipline


@pytest.mark.parametrize("deadline", ["soon", "9" * 30])  # past 2**53 ms: wasmtime's u64 epoch cut it short
def test_malformed_deadline_annotation_fails_create(h, cache_env, deadline):
    cfg, base = wasm_bundle(h, wasmtime.wat2wasm(SPIN), annotations={"org.mrun.wasm.deadline-ms": deadline})
    r = h.mrun("create", "-b", make(h, cfg, base), h.cid(), env=cache_env)
    assert r.returncode != 0 and "org.mrun.wasm.deadline-ms" in r.stderr and "milliseconds" in r.stderr


def test_a_detached_wasm_container_keeps_none_of_the_callers_descriptors(images, tmp_path):
    """A wasm payload never execs, so nothing closes its close-on-exec descriptors for it: mrun
    closes them before the payload starts. `mrun run -d WASM | cat` must end at once."""
    import subprocess

    from conftest import img_ok, run_args

    h = images
    cat = os.path.join(os.path.dirname(__file__), "..", "examples", "wasm", "cat.wasm")
    img_ok(h, "image", "wasm", cat, "localhost/cat:1")
    vol = tmp_path / "vol"
    vol.mkdir()
    os.mkfifo(vol / "fifo")  # opening it blocks: the module stays running
    argv = [h.binary, "--root", h.root, "--image-root", h.image_root,
            *run_args(h, "-d", "--name", "keeper", "-v", f"{vol}:/d", "localhost/cat:1", "/d/fifo")]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        out, err = proc.communicate(timeout=20)  # EOF only once nothing holds the pipe
    except subprocess.TimeoutExpired:
        proc.kill()
        img_ok(h, "rm", "-f", "keeper")
        raise AssertionError("the detached wasm container kept mrun's stdout open")
    assert proc.returncode == 0 and out.strip() == b"keeper", err
    assert img_ok(h, "inspect", "keeper").stdout and '"running"' in img_ok(h, "inspect", "keeper").stdout
    img_ok(h, "rm", "-f", "keeper")


def test_an_out_of_bounds_access_is_a_trap_warm_or_cold(images, tmp_path):
    """wasmtime catches the guard page's SIGSEGV with a handler it installs once per process; a
    container run by the warm template's child must keep it (not die of SIGSEGV, 139)."""
    from conftest import img, img_ok, run_args
    from test_containerd import OUT_OF_BOUNDS

    h = images
    module = tmp_path / "oob.wasm"
    module.write_bytes(wasmtime.wat2wasm(OUT_OF_BOUNDS))
    img_ok(h, "image", "wasm", str(module), "localhost/oob:1")
    r = img(h, *run_args(h, "--rm", "localhost/oob:1"))
    assert r.returncode == 134, (r.returncode, r.stderr)
    assert "wasm trap" in r.stderr and "out of bounds memory access" in r.stderr


@pytest.mark.parametrize("status", ["125", "126", "200", "255"])
def test_wasi_exit_codes_of_126_and_up_are_the_modules(h, cache_env, status):
    """wasmtime refuses proc_exit(>= 126) without saying which: mrun sees the call itself and
    reports the status the module asked for, not a trap (134)."""
    cfg, base = wasm_bundle(h, example("hello.wasm"), ["/app.wasm", status])
    r = h.mrun("run", "-b", make(h, cfg, base), h.cid(), env=cache_env)
    assert r.returncode == int(status), r.stderr
    assert "trap" not in r.stderr


@pytest.mark.parametrize("memory", ["32m", "64m"])
def test_a_growing_module_fails_cleanly_inside_its_memory_limit(images, memory):
    """The store is sized below the cgroup limit by the engine's share, so malloc fails inside
    wasm ("out of memory", exit 12) instead of the kernel SIGKILLing the container (137)."""
    from conftest import img, img_ok, run_args

    h = images
    img_ok(h, "image", "wasm", example_path("grow.wasm"), "localhost/grow:1")
    r = img(h, *run_args(h, "--rm", "--memory", memory, "localhost/grow:1"))
    assert r.returncode == 12 and "out of memory at" in r.stdout, (r.returncode, r.stdout, r.stderr)
    limit_mib = int(memory[:-1])
    reached = int(r.stdout.split("out of memory at ")[1].split()[0])
    assert limit_mib // 2 - 2 <= reached < limit_mib, reached
    assert "OOM killer" not in r.stderr


def test_inspect_says_what_the_store_limit_is_and_why(images, tmp_path):
    from conftest import img_ok, run_args

    h = images
    vol = tmp_path / "vol"
    vol.mkdir()
    os.mkfifo(vol / "fifo")
    img_ok(h, "image", "wasm", example_path("cat.wasm"), "localhost/cat:1")
    img_ok(h, *run_args(h, "-d", "--name", "lim", "--memory", "64m", "-v", f"{vol}:/d", "localhost/cat:1", "/d/fifo"))
    backend = json.loads(img_ok(h, "inspect", "lim").stdout)["backend"]
    assert backend["name"] == "wasm" and backend["store_memory_limit"] == 56 << 20
    assert "for the engine" in backend["store_memory_limit_why"]
    img_ok(h, "rm", "-f", "lim")



def test_the_engine_runs_one_tokio_worker_unless_the_operator_says_otherwise(h, cache_env):
    """wasmtime's WASI makes a tokio runtime at its first host call: a worker thread per CPU by
    default, beside its blocking pool. A host call runs on the calling thread (block_on), so the
    init asks for one worker; TOKIO_WORKER_THREADS in the runtime's environment stands. (Counted
    against the operator's 3, so the blocking pool's threads cancel out.)"""
    cfg, base = wasm_bundle(h, example("pod.wasm"), ["/app.wasm", "/never", "/x"])  # waits, sleeping
    bundle = make(h, cfg, base)
    counts = {}
    for told in ("", "3"):
        cid = h.cid()
        h.ok("create", "-b", bundle, cid, env={**cache_env, **({"TOKIO_WORKER_THREADS": told} if told else {})})
        h.ok("start", cid)
        pid = json.loads(h.ok("state", cid).stdout)["pid"]
        deadline = time.monotonic() + 10
        while not (workers := _threads_named(pid, "tokio-rt-worker")) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)  # the module's first sleep and file lookups have made what they make
        counts[told] = len(_threads_named(pid, "tokio-rt-worker"))
        assert workers, "the module never made a WASI call"
        h.ok("kill", cid, "KILL")
        h.wait_status(cid, "stopped")
        h.ok("delete", cid)
    assert counts["3"] - counts[""] == 2, counts


def test_a_container_sharing_a_wasm_init_s_pids_cannot_open_the_host_s_interpreter(h, cache_env):
    """A wasm init is the host's Python running the module; a Linux container in the same PID
    namespace (a pod sharing its process namespace) could open its /proc/1/exe, the host's
    interpreter, and write it once no Python runs (CVE-2019-5736's way out): it did. The init is
    not dumpable from the moment its capabilities are the container's, so the open is refused;
    a Linux container's own program is dumpable again after its execve."""
    from busybox_bundle import make_rootfs

    cfg, base = wasm_bundle(h, example("pod.wasm"), ["/app.wasm", "/never", "/x"])  # waits, sleeping
    wasm = h.cid()
    h.ok("run", "-d", "-b", make(h, cfg, base), wasm, env=cache_env)
    pid = json.loads(h.ok("state", wasm).stdout)["pid"]
    rootfs = os.path.join(h.tmp, "sharing-rootfs")
    make_rootfs(rootfs)
    out = {}
    for uid in (0, 1000):  # root, as the init: nothing but dumpability stood in the way
        other = h.config(["sh", "-c", "readlink /proc/1/exe || echo refused; ls -ln /proc/self/environ"])
        other["process"]["user"] = {"uid": uid, "gid": uid}
        other["linux"]["namespaces"] = [n if n["type"] != "pid" else {"type": "pid", "path": f"/proc/{pid}/ns/pid"}
                                        for n in other["linux"]["namespaces"]]
        other["root"] = {"path": rootfs, "readonly": False}
        out[uid] = h.ok("run", "-b", h.bundle(config=other), h.cid()).stdout.splitlines()
    assert out[0][0] == "refused" and "python" not in "".join(out[0]), out
    assert out[1000][1].split()[2] == "1000", out  # its own program: dumpable, /proc/self is its user's
    h.ok("delete", "--force", wasm)


def _threads_named(pid: int, name: str) -> list[str]:
    found = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                if f.read().strip() == name:
                    found.append(tid)
        except OSError:
            continue
    return found


def test_a_create_killed_while_its_module_compiles_leaves_what_delete_force_removes(h, cache_env):
    """A create SIGKILLed while its contained compile runs (the kill-at-each-step harness counts
    file changes, and a compile makes none, so no kill landed there): the compiling child, in the
    container's cgroup, dies with its parent (PDEATHSIG), nothing is cached, and `delete --force`
    leaves no state, cgroup, mount or process (the harness checks them after the test)."""
    from conftest import children_of, running

    cfg, base = wasm_bundle(h, costly_module(2_500_000))  # ~0.5 s of the compiler (a body past 7.6 MB is refused)
    cfg["linux"]["resources"]["memory"] = {"limit": 1 << 30}
    cfg["linux"]["resources"]["cpu"] = {"quota": 10000, "period": 100000}  # a tenth of a CPU: ~5 s to compile
    bundle, cid = make(h, cfg, base), h.cid("killed")
    create = subprocess.Popen([h.binary, "--root", h.root, "create", "-b", bundle, cid], stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env={**os.environ, **h.base_env, **cache_env, "MRUN_WARM": "0"})
    deadline = time.monotonic() + 30
    while not children_of(create.pid):
        assert create.poll() is None, "the create ended before it compiled"
        assert time.monotonic() < deadline, "no compiling child appeared"
        time.sleep(0.01)
    (compiler,) = children_of(create.pid)
    with open(os.path.join(h.root, cid, "state.json")) as f:
        cgroup = json.load(f)["cgroup"]
    procs = os.path.join(cgroup["paths"]["memory"] if cgroup["version"] == 1 else cgroup["path"], "cgroup.procs")
    while str(compiler) not in open(procs).read().split():  # it moves itself in first thing
        assert time.monotonic() < deadline, "the compiler never joined the container's cgroup"
        time.sleep(0.01)
    assert create.poll() is None, "the create ended before the kill: the window was missed"
    create.kill()
    create.wait()
    deadline = time.monotonic() + 2  # long before its compile could have ended by itself
    while running(compiler):
        assert time.monotonic() < deadline, "the compiling child outlived its killed create"
        time.sleep(0.02)
    assert not os.path.isdir(os.path.join(cache_env["MRUN_CACHE_DIR"], "wasm")) or not os.listdir(
        os.path.join(cache_env["MRUN_CACHE_DIR"], "wasm"))
    h.ok("delete", "--force", cid)
    assert h.status(cid) == "gone"


def test_a_wasm_container_s_engine_runs_under_its_memory_policy(h, cache_env):
    """linux.memoryPolicy is the engine's (the init that runs the module, whose threads inherit
    it) as it is a Linux container's program's: the sandbox sets it before the payload runs."""
    cfg, base = wasm_bundle(h, wasmtime.wat2wasm(SPIN))
    cfg["linux"]["memoryPolicy"] = {"mode": "MPOL_INTERLEAVE", "nodes": "0"}
    cid = h.cid()
    h.ok("run", "-d", "-b", make(h, cfg, base), cid, env=cache_env)
    try:
        pid = json.loads(h.ok("state", cid).stdout)["pid"]
        with open(f"/proc/{pid}/numa_maps") as f:
            assert f.readline().split()[1] == "interleave:0"
    finally:
        h.ok("delete", "--force", cid)


@pytest.mark.parametrize("drop", [False, True])
def test_seccomp_notify_reaches_a_wasm_module_s_calls(h, cache_env, tmp_path, drop):
    """A wasm init never execs: the seccomp listener it made is its own to close once the host
    has taken it for the agent (no execve closes it). The engine's opens notified (openat2,
    cap-std's): answered by the agent (the module reads its file), or, the agent gone, failing
    with ENOSYS rather than waiting for a copy the init kept."""
    from test_runc_compat import SeccompAgent

    agent = SeccompAgent(str(tmp_path / "agent.sock"), drop=drop)
    try:
        args = ["/app.wasm", "/etc-msg.txt", "/tmp/out.txt", "/tmp/ro.txt", "/nothing"]
        cfg, base = wasm_bundle(h, example("files.wasm"), args, files={"/etc-msg.txt": "hello from the rootfs\n"})
        cfg["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": agent.path,
                                   "syscalls": [{"names": ["openat", "openat2", "open"], "action": "SCMP_ACT_NOTIFY"}]}
        r = h.mrun("run", "-b", make(h, cfg, base), h.cid(), env=cache_env, timeout=30)
        first = r.stdout.splitlines()[0] if r.stdout else r.stderr
        if drop:  # ENOSYS from openat2 and its fallback, which cap-std reports as an I/O error
            assert first.startswith("read /etc-msg.txt: ") and "hello" not in first, r.stdout + r.stderr
        else:
            assert first == "read /etc-msg.txt: hello from the rootfs", r.stdout + r.stderr
        assert len(agent.received) == 1
    finally:
        agent.close()

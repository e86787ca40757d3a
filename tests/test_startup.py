"""The start-up path stays lean, checked structurally (what gets imported), never by timing:
the lifecycle verbs run once per container for every caller."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import IMAGE, img_ok, mrun_binary, run_args


def _imports(argv: list[str], env: dict[str, str] | None = None) -> set[str]:
    r = subprocess.run(
        [sys.executable, "-X", "importtime", *argv],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
    )
    return {line.split("|")[-1].strip() for line in r.stderr.splitlines() if line.startswith("import time:")}


def imported(args: list[str], env: dict[str, str] | None = None) -> set[str]:
    """What mrun imports beyond the interpreter's own start-up (site, .pth hooks such as an
    editable install's finder) in this environment: the Python launcher's, which the native one
    runs for every call the warm template does not serve."""
    python_launcher = os.path.join(os.path.dirname(mrun_binary()), "mrun-python")
    return _imports([python_launcher, *args], env) - _imports(["-c", "pass"], env)


@pytest.mark.parametrize("verb", [["state", "x"], ["start", "x"], ["kill", "x", "KILL"], ["delete", "x"]])
def test_lifecycle_verbs_skip_heavy_imports(tmp_path, verb):
    mods = imported(["--root", str(tmp_path), *verb])
    assert "mrun.cli.main" in mods
    heavy = {"typer", "click", "pluggy", "json", "re", "typing", "importlib.metadata", "wasmtime", "pyroute2"}
    assert not mods & heavy, sorted(mods & heavy)


@pytest.mark.parametrize("images", ["cold"], indirect=True)
def test_a_cold_run_of_an_image_does_not_import_json(images, busybox_archive):
    """json's import (~1 ms of its own) came with every cold `mrun run`, for the one flag that
    reads a JSON file (`--security-opt seccomp=FILE`): jsonio reads it now."""
    h = images
    img_ok(h, "load", busybox_archive)
    argv = ["--root", h.root, "--image-root", h.image_root, *run_args(h, "--rm", IMAGE, "true")]
    mods = imported(argv, {**h.base_env, "MRUN_WARM": "0"})
    assert "mrun.images.containers" in mods
    assert "json" not in mods


def _create_imports(tmp_path, bundle: str, others: tuple[str, ...] = ()) -> set[str]:
    """What a cold `create` of ``bundle`` has imported by its end, with a container of each of
    ``others`` (bundles) already in its state root, as a podman or containerd root holds them."""
    env = {**os.environ, "MRUN_WARM": "0", "XDG_CACHE_HOME": str(tmp_path / "cache")}
    imported(["explain", "-b", bundle], env)  # the entry-point scan is cached first
    state, out = str(tmp_path / "state"), tmp_path / "modules"
    probe = ("import sys; from mrun.cli.main import main; code = main(sys.argv[1:]); "
             f"open({str(out)!r}, 'w').write(' '.join(sys.modules)); sys.exit(code)")
    made = {f"other{n}": other for n, other in enumerate(others)} | {"probe": bundle}
    try:
        with open(tmp_path / "stdio", "w") as stdio:  # files, not pipes: the created container holds them
            for cid, its_bundle in made.items():
                head = [mrun_binary()] if cid != "probe" else [sys.executable, "-c", probe]
                subprocess.run([*head, "--root", state, "create", "-b", its_bundle, cid],
                               stdin=subprocess.DEVNULL, stdout=stdio, stderr=stdio, env=env, check=True,
                               timeout=30, cwd="/")
    finally:
        for cid in made:
            subprocess.run([mrun_binary(), "--root", state, "delete", "--force", cid], env=env,
                           capture_output=True)
    return set(out.read_text().split())


def test_create_dispatches_without_pluggy_or_typing(tmp_path, h):
    """create runs once per container for containerd's runc shim and podman: bidding and the
    chosen backend's hooks are called without pluggy's import (~10 ms: inspect, typing, ast)."""
    mods = _create_imports(tmp_path, h.bundle(["true"]))
    assert "mrun.backends.linux" in mods, sorted(m for m in mods if m.startswith("mrun"))
    assert not mods & {"pluggy", "typing", "inspect"}, sorted(mods & {"pluggy", "typing", "inspect"})
    # contextlib (with collections and functools) and signal's enums: ~2 ms of every create
    assert not mods & {"contextlib", "collections", "enum", "signal"}, sorted(
        mods & {"contextlib", "collections", "enum", "signal"})


def test_a_create_beside_other_containers_does_not_import_the_network_store(tmp_path, h):
    """Every command looks for containers whose network files a removed network root lost
    (network.recovery); it imported the network store (hashlib, ipaddress, shutil: ~7 ms) to
    ask that of each container in the root, before seeing that most have no network plan at
    all. A runc verb in a podman or containerd root, which holds other containers, paid it."""
    mods = _create_imports(tmp_path, h.bundle(["true"]), others=(h.bundle(["true"]), h.bundle(["true"])))
    assert "mrun.network.recovery" in mods  # the look was taken
    assert not mods & {"mrun.network.store", "hashlib", "ipaddress"}, sorted(
        mods & {"mrun.network.store", "hashlib", "ipaddress"})


def test_the_shims_fork_helper_has_loaded_what_a_create_imports(tmp_path, h):
    """The helper forks a worker per create: what the worker imports itself is paid by every
    create (mrun.operations was 2.6 ms) and stays in the container's init as private memory. A
    real create, through the worker's own code, after the helper's preload, imports nothing."""
    bundle = h.bundle(["true"])
    out = tmp_path / "modules"
    probe = (
        "import os, sys; from mrun.shims import spawner; backends = spawner.preload_create(); "
        "before = set(sys.modules); "
        "stdio = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o600); "
        "answer = spawner._create({'id': 'probe', 'bundle': sys.argv[2], 'root': sys.argv[3]}, "
        "[os.open(os.devnull, os.O_RDONLY), stdio, os.dup(stdio)], backends); "
        "open(sys.argv[4], 'w').write(repr(answer) + '\\n' + ' '.join(sorted(set(sys.modules) - before)))"
    )
    env = {**os.environ, "MRUN_WARM": "0", "XDG_CACHE_HOME": str(tmp_path / "cache")}
    state = str(tmp_path / "state")
    subprocess.run([sys.executable, "-c", probe, str(tmp_path / "stdio"), bundle, state, str(out)],
                   stdin=subprocess.DEVNULL, env=env, check=True, timeout=30, cwd="/")
    subprocess.run([mrun_binary(), "--root", state, "delete", "--force", "probe"], check=True, env=env)
    answer, _, new = out.read_text().partition("\n")
    assert "'pid'" in answer, answer
    assert new == "", f"a create imported in the worker: {new}"


def test_entry_point_scan_is_cached_per_environment(tmp_path, h):
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    bundle = h.bundle(["true"])
    assert "importlib.metadata" in imported(["explain", "-b", bundle], env)  # first: scan and cache
    assert "importlib.metadata" not in imported(["explain", "-b", bundle], env)  # then: the cache
    assert len(os.listdir(tmp_path / "cache" / "mrun")) == 1


def test_an_entry_point_cache_others_can_write_is_not_used(tmp_path, h):
    """The cache names the modules mrun imports as its backends: one that others could write
    (a home or $XDG_CACHE_HOME made under umask 000) steered which modules root imports, and
    a planted entry took the place of the real backends. It is used only when it and its
    directory are the caller's (or root's) and writable by no one else; else scanned anew."""
    import json

    env = {"XDG_CACHE_HOME": str(tmp_path / "cache"), "MRUN_WARM": "0"}
    bundle = h.bundle(["true"])
    imported(["explain", "-b", bundle], env)  # scanned and cached
    cache = tmp_path / "cache" / "mrun"
    path = cache / os.listdir(cache)[0]
    planted = json.loads(path.read_text())
    planted["entries"] = [["linux", "mrun_planted_backend_probe"]]
    for dir_mode, file_mode in ((0o700, 0o666), (0o777, 0o644)):
        os.chmod(cache, dir_mode)
        path.write_text(json.dumps(planted))
        os.chmod(path, file_mode)
        r = subprocess.run([mrun_binary(), "explain", "-b", bundle], capture_output=True, text=True,
                           env={**os.environ, **env}, cwd="/")
        assert r.returncode == 0 and "planted" not in r.stdout + r.stderr, (oct(dir_mode), oct(file_mode), r.stderr)


def test_loading_every_backend_imports_no_process_machinery(h, tmp_path):
    """create loads every backend to let them bid: a backend must import what it needs when it
    is chosen (the oci backend's subprocess and shutil cost every create 4 ms at import). The
    entry points are scanned (importlib.metadata, which imports shutil) and cached first, as
    for every call after an install."""
    probe = (
        "import sys; from mrun.cli.main import main; main(['explain', '-b', sys.argv[1]]); "
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('mrun.backends.') "
        "or m in ('subprocess', 'shutil', 'wasmtime'))), file=sys.stderr)"
    )
    env = {**os.environ, "MRUN_WARM": "0", "XDG_CACHE_HOME": str(tmp_path / "cache")}  # explain here, not warm
    for _ in range(2):  # the second finds the scan cached
        r = subprocess.run([sys.executable, "-c", probe, h.bundle(["true"])], capture_output=True, text=True,
                           cwd="/", env=env)
    mods = set(r.stderr.split())
    assert {"mrun.backends.oci", "mrun.backends.wasm", "mrun.backends.linux"} <= mods, r.stderr
    assert not mods & {"subprocess", "shutil", "wasmtime"}, sorted(mods & {"subprocess", "shutil", "wasmtime"})


def _ends(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "from mrun.exiting import finish\n" + code],
                          capture_output=True, text=True, timeout=30)


def test_ending_without_teardown_keeps_output_threads_and_the_status(tmp_path):
    """The launchers end with mrun.exiting.finish (no interpreter teardown): buffered output still
    arrives, the status is the command's, and a thread that is not a daemon is waited for."""
    r = _ends("import sys\nprint('out', end='')\nprint('err', end='', file=sys.stderr)\nfinish(3)")
    assert (r.returncode, r.stdout, r.stderr) == (3, "out", "err")
    marker = tmp_path / "written"
    r = _ends("import threading, time\n"
              f"def late():\n    time.sleep(0.3)\n    open({str(marker)!r}, 'w').write('done')\n"
              "threading.Thread(target=late).start()\nfinish(4)")
    assert r.returncode == 4 and marker.read_text() == "done"
    assert _ends("finish(None)").returncode == 0
    r = _ends("finish('refused: a line')")
    assert (r.returncode, r.stderr) == (1, "refused: a line\n")


# In a child forked from the preloaded template, as warm.template._child runs a caller's work:
# each call's argv (JSON), and the mrun modules the call imported itself.
TEMPLATE_PROBE = r"""
import json, os, sys
from mrun.warm import template
template.preload()
for argv in json.loads(sys.argv[2]):
    before = set(sys.modules)
    pid = os.fork()
    if pid == 0:
        from mrun.warm import child
        child.prepare()
        code = template.run_cli(argv)
        new = sorted(m for m in set(sys.modules) - before if m.startswith("mrun"))
        with open(sys.argv[1], "a") as f:
            f.write(json.dumps([argv, code, new]) + "\n")
        os._exit(0)
    os.waitpid(pid, 0)
"""


def test_the_warm_template_has_loaded_what_its_callers_work_imports(tmp_path, h, busybox_archive):
    """A child forked from the template imports what the template has not: each such import is
    paid by every call (0.1-0.3 ms a module) and stays in the child as private memory. Modules
    added since the template's list was written (reboot, recovery, hangup, auto_remove, health,
    volumes...) were imported by every `start`, `delete` and `run`."""
    import json

    images = str(tmp_path / "images")
    env = {**h.base_env, "MRUN_WARM": "0", "XDG_CACHE_HOME": str(tmp_path / "cache")}
    base = ["--root", h.root, "--image-root", images]
    r = subprocess.run([mrun_binary(), *base, "load", busybox_archive], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    bundle = h.bundle(["sleep", "100"])
    with open(tmp_path / "create-stdio", "w") as stdio:  # a file: the container holds it
        r = subprocess.run([mrun_binary(), "--root", h.root, "create", "-b", bundle, "lifecycle"], env=env,
                           stdin=subprocess.DEVNULL, stdout=stdio, stderr=stdio, timeout=60)
    assert r.returncode == 0, (tmp_path / "create-stdio").read_text()
    calls = [
        ["--root", h.root, "state", "lifecycle"],
        ["--root", h.root, "start", "lifecycle"],
        ["--root", h.root, "kill", "lifecycle", "KILL"],
        ["--root", h.root, "delete", "--force", "lifecycle"],
        [*base, *run_args(h, "--rm", IMAGE, "true")],
        [*base, *run_args(h, "-d", "--name", "probe", IMAGE, "sleep", "100")],
        [*base, "ps", "-a"],
        [*base, "inspect", "probe"],
        [*base, "logs", "probe"],
        [*base, "exec", "probe", "true"],
        [*base, "stop", "-t", "1", "probe"],
        [*base, "rm", "probe"],
        [*base, "images"],
    ]
    out = tmp_path / "calls"
    try:
        with open(tmp_path / "stdio", "w") as stdio:  # files, not pipes: containers hold them
            subprocess.run([sys.executable, "-c", TEMPLATE_PROBE, str(out), json.dumps(calls)], env=env,
                           stdin=subprocess.DEVNULL, stdout=stdio, stderr=stdio, timeout=300, cwd="/", check=True)
    finally:
        subprocess.run([mrun_binary(), *base, "rm", "-f", "probe"], env=env, capture_output=True)
        subprocess.run([mrun_binary(), "--root", h.root, "delete", "--force", "lifecycle"], env=env,
                       capture_output=True)
    done = [json.loads(line) for line in out.read_text().splitlines()]
    assert [argv for argv, _code, _new in done] == calls, (tmp_path / "stdio").read_text()[-2000:]
    failed = [(argv, code) for argv, code, _new in done if code != 0]
    assert not failed, (failed, (tmp_path / "stdio").read_text()[-2000:])
    shown = {" ".join(a for a in argv if a not in ("--root", h.root, "--image-root", images)): new
             for argv, _code, new in done if new}
    assert not shown, "\n".join(f"{call}: {' '.join(new)}" for call, new in shown.items())

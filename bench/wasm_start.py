"""Start-to-exit of a small wasm module (examples/wasm/hello.wasm):

* ``mrun run`` with a warm compiled cache, against a bare Python script that loads the same
  precompiled module with wasmtime and runs it (no sandbox at all): what the sandbox costs;
* ``mrun run`` cold (empty cache: compile) against warm: what the cache saves.

Prints medians and ratios. Usage: python bench/wasm_start.py [ROUNDS] [MRUN_BINARY]
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLES = os.path.join(os.path.dirname(HERE), "examples")
sys.path.insert(0, EXAMPLES)
from busybox_bundle import remove_parent_cgroup, write_config  # noqa: E402
from mrun.defaults import default_spec  # noqa: E402

BARE = """
import sys, wasmtime
cfg = wasmtime.Config(); cfg.epoch_interruption = True; cfg.parallel_compilation = False
engine = wasmtime.Engine(cfg)
module = wasmtime.Module.deserialize_file(engine, sys.argv[1])
store = wasmtime.Store(engine); store.set_epoch_deadline(1)
wasi = wasmtime.WasiConfig(); wasi.argv = ["/hello.wasm", "0"]; wasi.inherit_stdout(); store.set_wasi(wasi)
linker = wasmtime.Linker(engine); linker.define_wasi()
try:
    linker.instantiate(store, module).exports(store)["_start"](store)
except wasmtime.ExitTrap as e:
    sys.exit(e.code)
"""


def bare_python(work: str, module: str) -> tuple[str, str]:
    """The bare script (BARE) and ``module`` precompiled with the engine settings mrun uses, both
    written into ``work``. -> (script, precompiled module)."""
    import wasmtime

    bare = os.path.join(work, "bare.py")
    with open(bare, "w") as f:
        f.write(BARE)
    c = wasmtime.Config()
    c.epoch_interruption, c.parallel_compilation = True, False
    precompiled = os.path.join(work, os.path.basename(module).replace(".wasm", ".cwasm"))
    with open(precompiled, "wb") as f:
        f.write(wasmtime.Module.from_file(wasmtime.Engine(c), module).serialize())
    return bare, precompiled


def timed(cmd: list[str], env: dict[str, str] | None = None) -> float:
    t = time.perf_counter()
    subprocess.run(
        cmd, check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, env={**os.environ, **(env or {})}
    )
    return time.perf_counter() - t


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    mrun = sys.argv[2] if len(sys.argv) > 2 else os.path.join(os.path.dirname(sys.executable), "mrun")
    work = tempfile.mkdtemp(prefix="mrun-wasm-bench-")
    tag = f"mrun-wasm-bench-{os.getpid()}"
    try:
        rootfs = os.path.join(work, "bundle", "rootfs")
        for d in ("proc", "dev", "sys"):
            os.makedirs(os.path.join(rootfs, d))
        shutil.copy(os.path.join(EXAMPLES, "wasm", "hello.wasm"), os.path.join(rootfs, "hello.wasm"))
        cfg = default_spec()
        cfg["process"].update(terminal=False, args=["/hello.wasm", "0"])
        cfg["linux"]["cgroupsPath"] = f"/{tag}/c"
        write_config(os.path.join(work, "bundle"), cfg)
        bundle, root = os.path.join(work, "bundle"), os.path.join(work, "state")
        warm_env = {"MRUN_CACHE_DIR": os.path.join(work, "cache")}
        bare, precompiled = bare_python(work, os.path.join(rootfs, "hello.wasm"))
        run = [mrun, "--root", root, "run", "-b", bundle]
        timed([*run, "warmup"], warm_env)
        warm, cold, plain = [], [], []
        for i in range(rounds):
            warm.append(timed([*run, f"w{i}"], warm_env))
            cold.append(timed([*run, f"c{i}"], {"MRUN_CACHE_DIR": os.path.join(work, f"cold{i}")}))
            plain.append(timed([sys.executable, bare, precompiled]))
        w, c_, p = (statistics.median(x) * 1000 for x in (warm, cold, plain))
        print(
            f"wasm hello, median of {rounds}: mrun warm {w:.1f} ms, mrun cold {c_:.1f} ms, "
            f"bare python+wasmtime (precompiled) {p:.1f} ms"
        )
        print(f"ratio mrun warm / bare = {w / p:.2f}; cold / warm = {c_ / w:.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
        remove_parent_cgroup(tag)


if __name__ == "__main__":
    main()

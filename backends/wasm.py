"""The ``wasm`` backend: a wasmtime instance is the payload, inside the same sandbox as a Linux process.

On the host (``mrun_prepare``) wasmtime is imported and the module or component is compiled, or
loaded from the compiled cache. That must happen before pivot_root, because the engine's
libraries and the cache are host files. In the sandbox (``mrun_payload``, before ``start``) the
store is built from the OCI spec and the module is instantiated, so a missing import fails
``create``. After ``start`` and the privilege drop, ``run`` calls ``_start`` (or the export named
by ``module.wasm#export``), or ``wasi:cli/run`` for a component.

Limits come from the same OCI fields as for Linux. The engine process sits in the container's
cgroup and namespaces, and on top of that:

* the store's memory limit is ``linux.resources.memory.limit``: growing past it fails inside
  the module, never as a host OOM kill;
* epoch interruption stops a running module when the container is signalled (PID 1 has no
  default signal actions, and a tight wasm loop never returns to Python), and after the time
  budget in the annotation ``org.mrun.wasm.deadline-ms`` if one is set.

Exit status: the WASI exit code; 134 and the trap message on a trap; 128+signal when
interrupted by a signal; 128+SIGXCPU (152) when the deadline ran out.

WASI mapping: argv is process.args (args[0] without its ``#export``); env is exactly
process.env. The rootfs is preopened as ``/`` (read-only if root.readonly), every bind and
tmpfs mount at its destination (read-only if mounted ``ro``), and process.cwd as ``.``, so
relative paths resolve there. WASI preview 1 has no cwd of its own: wasi-libc's getcwd()
says ``/``.
"""

from __future__ import annotations

import os

from mrun import annotations as ann
from mrun.errors import InvalidSpec, MrunError, in_bytes
from mrun.plugins.api import Arg, Bundle, Claim, Command, Container, Flag, bounded, find_program, open_program
from mrun.plugins.hookspecs import hookimpl

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

NAME = "wasm"
VARIANT, DEADLINE, PREOPENS = ann.WASM_VARIANT, ann.WASM_DEADLINE, ann.WASM_PREOPENS
TICK_SECONDS = 0.01
KILL_GRACE_SECONDS = 1.0
KILL_COUNT_SECONDS = 0.2
MAX_DEADLINE_MS = 2**53  # ~285,000 years; past 2**64 ticks wasmtime's u64 epoch deadline wrapped round, cut short
_SIGXCPU = 24
_CATCH = (1, 2, 3, 10, 12, 15)  # HUP INT QUIT USR1 USR2 TERM
_CLI_RUN = "wasi:cli/run@0.2.0"


def kind_of(head: bytes) -> str | None:
    """'module', 'component' or None, from the 8-byte preamble."""
    if not head.startswith(b"\0asm") or len(head) < 8:
        return None
    if head[4:8] == b"\x01\0\0\0":
        return "module"
    if head[6:8] == b"\x01\0":  # a layer-1 binary: the component model
        return "component"
    return None


@hookimpl
def mrun_claim(bundle: Bundle) -> Claim | None:
    entry = bundle.args[0] if bundle.args else "?"
    kind = kind_of(bundle.magic())
    variant = bundle.annotations.get(VARIANT)
    limit = store_memory_limit(bundle.spec)[1]
    if variant == "compat":
        return Claim(NAME, 1000, f"annotation {VARIANT}=compat; {limit}")
    if variant == "compat-smart" and kind:
        return Claim(NAME, 1000, f"annotation {VARIANT}=compat-smart and {entry} is a WebAssembly {kind}; {limit}")
    if kind:
        return Claim(NAME, 60, f"{entry} is a WebAssembly {kind}; {limit}")
    return None


ENGINE_RESERVE = 8 << 20  # an idle engine (Python, wasmtime, compiled code) is ~4.3 MiB in its cgroup


def store_memory_limit(spec: Any) -> tuple[int, str]:
    """-> (the store's memory limit in bytes, 0 for none; why, in words).

    The cgroup holds the engine as well as the module's linear memory, so a store allowed the
    whole cgroup limit is SIGKILLed by the kernel before wasm's memory.grow ever fails. The store
    gets the limit less a reserve for the engine, max(8 MiB, an eighth), and never less than half:
    a module then fails cleanly ("out of memory" from malloc) inside its own limit."""
    limit = ((spec.linux.get("resources") or {}).get("memory") or {}).get("limit") or 0
    if limit <= 0:
        return 0, "no store memory limit (linux.resources.memory.limit is unset)"
    reserve = max(ENGINE_RESERVE, limit // 8)
    store = max(limit - reserve, limit // 2)
    return store, (
        f"store memory limit {store >> 20} MiB: linux.resources.memory.limit {limit >> 20} MiB less "
        f"{(limit - store) >> 20} MiB for the engine in the same cgroup"
    )


@hookimpl
def mrun_features() -> dict[str, Any]:
    return {
        "name": NAME,
        "description": "WebAssembly modules (WASI preview 1) and components (wasi:cli/command) on wasmtime",
        "engine": engine_description(),
        "annotations": [VARIANT, DEADLINE, PREOPENS],
    }


@hookimpl
def mrun_stats(container: Container) -> dict[str, Any]:
    """What the host can say about a wasm container: the engine and the module's cache entry."""
    from mrun.backends.wasm_cache import ModuleCache

    entry = container.bundle.args[0].split("#", 1)[0] if container.bundle.args else ""
    cached = [e for e in ModuleCache().entries() if e.get("engine") == engine_description()]
    store, why = store_memory_limit(container.bundle.spec)
    return {"engine": engine_description(), "entrypoint": entry, "compiled_cache_entries": len(cached),
            "store_memory_limit": store, "store_memory_limit_why": why}


_engine: Any = None


def engine() -> Any:
    """One engine per process: epoch interruption on, compilation on this thread only, because
    the process forks afterwards and a compiler thread pool does not survive a fork. What
    wasmtime offers for many short instances: copy-on-write memory images (``memory_init_cow``)
    are on by default; the pooling allocator is not reachable from wasmtime-py (50: its Config has
    no allocation strategy), and each container is one instance in a process of its own anyway."""
    global _engine
    if _engine is None:
        import wasmtime

        cfg = wasmtime.Config()
        cfg.epoch_interruption = True
        cfg.parallel_compilation = False
        cfg.wasm_component_model = True
        _engine = wasmtime.Engine(cfg)
    return _engine


_linkers: dict[str, Any] = {}


def linker(kind: str) -> Any:
    """The linker for a "module" (WASI preview 1, our proc_exit) or a "component" (WASI 0.2): one
    per process, made before the sandbox forks (mrun_prepare, mrun_preload, mrun_warm). It holds
    definitions, not instances, so every store may use it; defining WASI anew cost 0.65 ms in
    each freshly forked container (its pages touched for the first time there)."""
    found = _linkers.get(kind)
    if found is None:
        import wasmtime
        import wasmtime.component

        if kind == "module":
            found = wasmtime.Linker(engine())
            found.define_wasi()
            _record_proc_exit(found)
        else:
            found = wasmtime.component.Linker(engine())
            found.add_wasip2()
        _linkers[kind] = found
    return found


def engine_description() -> str:
    """What a compiled artifact depends on: the wasmtime release and the Config above."""
    import wasmtime

    site = os.path.dirname(os.path.dirname(wasmtime.__file__))
    version = next(
        (
            n[len("wasmtime-") : -len(".dist-info")]
            for n in os.listdir(site)
            if n.startswith("wasmtime-") and n.endswith(".dist-info")
        ),
        "unknown",
    )
    return f"wasmtime-{version};epoch;serial;{os.uname().machine}"


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [e.__class__.__name__])[0]


def _cause(e: BaseException) -> str:
    """wasmtime's message ends with the cause ('wasm trap: ...') after a backtrace: keep that."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    return lines[-1] if lines else e.__class__.__name__


@hookimpl
def mrun_preload(bundle: Bundle) -> None:
    """wasmtime's import and the engine are most of a wasm create's cost (about 120 ms)."""
    import wasmtime.component  # noqa: F401

    engine()
    linker("module")
    linker("component")


_warmed: tuple[str, int] | None = None  # the cache directory and its mtime when last kept


@hookimpl
def mrun_warm() -> None:
    """In the warm template: wasmtime, the engine, and the compiled cache deserialized, so a wasm
    container forked from it costs its sandbox and an instantiation (about 120 ms less)."""
    global _warmed
    import wasmtime.component  # noqa: F401 - loaded here, once, for every child
    from mrun.backends.wasm_cache import ModuleCache

    eng = engine()
    linker("module")
    linker("component")
    cache = ModuleCache()
    try:
        seen = (cache.dir, os.stat(cache.dir).st_mtime_ns)
    except OSError:
        return
    if seen == _warmed:
        return
    _warmed = seen

    cache.keep_all(engine_description(), lambda kind, payload: _artifact_class(kind).deserialize(eng, payload))


def _artifact_class(kind: str) -> Any:
    """wasmtime's class for a compiled "module" or "component"."""
    import wasmtime
    import wasmtime.component

    return wasmtime.Module if kind == "module" else wasmtime.component.Component


def _compiled(wasm: bytes, kind: str, name: str, contain: Any, note: Any = None) -> Any:
    """A module or component from the shared cache, compiled (and cached) on a miss: compiled by
    ``contain`` (a container's ``contained``, or ``bounded`` with none), in a child under limits,
    as a hostile module's compile may cost gigabytes and minutes."""
    import wasmtime
    from mrun.backends.wasm_cache import ModuleCache

    eng = engine()
    cls = _artifact_class(kind)

    def compile_serialized(b: bytes) -> bytes:
        try:
            return cls(eng, b).serialize()
        except wasmtime.WasmtimeError as e:
            raise MrunError(f"wasm: {name}: invalid {kind}: {_first_line(e)}")

    return ModuleCache(note=note).load_or_compile(
        wasm, kind, engine_description(), lambda b: contain(lambda: compile_serialized(b), f"wasm: {name}: compiling"),
        lambda b: cls.deserialize(eng, b),
    )


# wasmparser's MAX_WASM_MODULE_SIZE: the limit WebAssembly engines agreed on (V8's is the same)
MAX_MODULE_SIZE = 1 << 30


def read_module(path: str, name: str, root: str = "") -> bytes:
    """The module's bytes, refused unread past what an engine accepts: an image's 10 GiB sparse
    "module" (a few kB in its compressed layer) was read whole into the host-side mrun's memory,
    twice over with wasmtime's copy, at `mrun pull` (precompiling) and at every run. With
    ``root``, ``path`` is found again inside it (``open_program``); a regular file only, always."""
    import stat

    fd = open_program(root, path) if root else os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    with open(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise MrunError(f"wasm: {name}: not a regular file")
        if st.st_size > MAX_MODULE_SIZE:
            raise MrunError(f"wasm: {name}: {st.st_size} bytes, larger than the 1 GiB a WebAssembly engine accepts")
        return f.read(MAX_MODULE_SIZE + 1)


@hookimpl
def mrun_precompile(path: str) -> bool | None:
    """Into the shared module cache, as mrun_prepare will look it up."""
    try:
        wasm = read_module(path, os.path.basename(path))
    except OSError:
        return None
    kind = kind_of(wasm[:8])
    if kind is None:
        return None
    _compiled(wasm, kind, os.path.basename(path), bounded)
    return True


@hookimpl
def mrun_prepare(container: Container, process: dict[str, Any]) -> None:
    import signal  # noqa: F401 - imported here, used in the sandbox where imports are impossible
    import time  # noqa: F401

    import wasmtime.component  # noqa: F401 - the payload uses it in the sandbox too

    name, _, export = process["args"][0].partition("#")
    host_path = find_program(container.bundle.rootfs, name, process)
    if host_path is None:
        raise MrunError(f"wasm: {name!r}: no such module in the container's rootfs")
    try:
        wasm = read_module(host_path, name, container.bundle.rootfs)
    except OSError as e:
        raise MrunError(f"wasm: {name}: cannot read the module: {e.strerror or e}") from None
    kind = kind_of(wasm[:8])
    if kind is None:
        raise MrunError(f"wasm: {name}: not a WebAssembly module or component (it starts with {wasm[:4]!r})")
    compiled = _compiled(wasm, kind, name, container.contained, container.note)
    linker(kind)  # here, on the host side: the container's fork then finds it made
    check_preopens(container.bundle.annotations)
    deadline = container.bundle.annotations.get(DEADLINE, "") or "0"
    if not (deadline.isascii() and deadline.isdigit()) or len(deadline) > 20 or int(deadline) > MAX_DEADLINE_MS:
        raise MrunError(f"wasm: annotation {DEADLINE}={deadline[:40]!r}: must be a whole number of milliseconds, "
                        f"at most {MAX_DEADLINE_MS}")
    container.data.update(compiled=Compiled(compiled), kind=kind, export=export or "_start", name=name,
                          deadline_ms=int(deadline))


class Compiled:
    """The compiled module or component a payload instantiates. It travels to a pristine init
    (mrun.sandbox.pristine) as a reference to the warm template's kept copy, which that process
    holds too (it was forked from the template's line before the create began); one the template
    does not keep does not travel, and the init is forked as before."""

    def __init__(self, artifact: Any) -> None:
        self.artifact = artifact

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        from mrun.backends.wasm_cache import kept_reference

        ref = kept_reference(self.artifact)
        if ref is None:
            raise TypeError("a compiled wasm artifact the warm template does not keep")
        return _kept_compiled, ref


def _kept_compiled(directory: str, key: str) -> Compiled:
    from mrun.backends.wasm_cache import kept_artifact

    return Compiled(kept_artifact(directory, key))


def preopens(spec: Any, cwd: str) -> list[tuple[str, str, bool]]:
    """(host path, guest path, writable) as the operator chose with ``org.mrun.wasm.preopens``:

    - ``rootfs`` (the default): ``/``, then every bind and tmpfs mount, then the cwd;
    - ``mounts``: only the bind and tmpfs mounts;
    - ``none``: no directory at all (the module sees no fd 3);
    - ``/a,/b:ro``: exactly these directories of the container, read-only where ``:ro``.

    Every directory is preopened at its absolute path, never as ".": wasi-libc strips "/" and
    "." to the same empty prefix and lets the later preopen win, so a "." after "/" took every
    absolute path that no longer prefix claims (``/marker`` read ``$cwd/marker``). Relative paths
    resolve from wasi-libc's own cwd, which is "/" (what its getcwd() says)."""
    rootfs_ro = bool((spec.raw.get("root") or {}).get("readonly"))
    policy = (spec.raw.get("annotations") or {}).get(PREOPENS, "") or "rootfs"
    mounts = []
    for m in spec.raw.get("mounts") or []:
        options = m.get("options") or []
        if m.get("type") in ("bind", "tmpfs") or "bind" in options or "rbind" in options:
            mounts.append((m["destination"], "ro" not in options))
    if policy == "none":
        wanted: list[tuple[str, bool]] = []
    elif policy == "mounts":
        wanted = mounts
    elif policy == "rootfs":
        wanted = [("/", not rootfs_ro), *mounts, (cwd, True)]
    else:
        wanted = [_preopen_item(item) for item in policy.split(",") if item]
    out: list[tuple[str, str, bool]] = []
    seen: set[str] = set()
    for guest, writable in wanted:
        guest = os.path.normpath(guest)
        if guest in seen or not os.path.isdir(guest):
            continue
        seen.add(guest)
        if policy == "rootfs" and guest == cwd and guest != "/":  # as writable as what holds it
            writable = next((w for h, _, w in reversed(out) if guest.startswith(h.rstrip("/") + "/")), True)
        out.append((guest, guest, writable and not (rootfs_ro and guest == "/")))
    return out


def _preopen_item(item: str) -> tuple[str, bool]:
    path, _, mode = item.strip().partition(":")
    if not path.startswith("/") or mode not in ("", "ro", "rw"):
        raise MrunError(f"wasm: annotation {PREOPENS}: {item!r} is not /PATH[:ro|rw]")
    return path, mode != "ro"


def check_preopens(annotations: dict[str, str]) -> None:
    """On the host, at create: a bad policy is one line, not a failure inside the sandbox."""
    policy = annotations.get(PREOPENS, "") or "rootfs"
    if policy not in ("rootfs", "mounts", "none"):
        for item in policy.split(","):
            if item:
                _preopen_item(item)


class WasmPayload:
    def __init__(self, store: Any, call: Any, kind: str, memory: Any, limit: int, deadline_ticks: int) -> None:
        self.store, self.call, self.kind, self.memory = store, call, kind, memory
        self.limit, self.deadline_ticks = limit, deadline_ticks
        self.killed = 0
        self.entered: Any = None  # set by the sandbox: called once our signal handling is in place

    def _wait_for_signal(self, sigs: set[int]) -> None:
        import signal
        import time

        sig = signal.sigwait(sigs)
        self.killed = sig
        eng = engine()
        # The module traps at its next loop back-edge or call once the epoch passes its deadline:
        # counted in batches, for KILL_COUNT_SECONDS at most (a day's deadline is 8.6 million
        # ticks, each a call through ctypes: the container went on for seconds after the signal).
        end = time.monotonic() + KILL_COUNT_SECONDS
        left = self.deadline_ticks + 1
        while left > 0 and time.monotonic() < end:
            for _ in range(min(left, 10_000)):
                eng.increment_epoch()
            left -= 10_000
        if left <= 0:
            time.sleep(KILL_GRACE_SECONDS)  # its trap ends the run; a host call (a read, a sleep) holds it
        os._exit(128 + sig)  # held in a host call, or a deadline too far to count to

    def _tick(self) -> None:
        import time

        eng = engine()
        while True:
            time.sleep(TICK_SECONDS)
            eng.increment_epoch()

    def _memory_used(self) -> int:
        try:
            return self.memory.size(self.store) * 65536 if self.memory is not None else 0
        except Exception:
            return 0

    def _near_memory_limit(self, used: int) -> bool:
        """wasmtime-py has no limiter callback to see the refusal itself: a failure with memory
        within 10% (or 2 MiB) of the limit is reported as the likely cause."""
        return bool(self.limit) and used >= min(self.limit * 0.9, self.limit - 2 * 1024 * 1024)

    def run(self) -> int:
        import _thread
        import signal

        import wasmtime

        sigs = set(_CATCH)
        for s in sigs:  # PID 1 only receives signals it has a handler for
            signal.signal(s, _never_called)
        signal.pthread_sigmask(signal.SIG_BLOCK, sigs)
        # Not threading.Thread: its start() waits until the new thread runs (0.3 ms of a run,
        # measured, more on a busy node), and nothing here needs it running yet. A signal that
        # comes first stays pending (blocked in every thread) until its sigwait() takes it.
        _thread.start_new_thread(self._wait_for_signal, (sigs,))
        if self.deadline_ticks > 1:
            _thread.start_new_thread(self._tick, ())
        if self.entered is not None:
            self.entered()  # `start` returns now, and signals it holds for us come to our handlers
        problem = ""
        try:
            result = self.call(self.store)
            code = 0
            if self.kind == "component" and getattr(result, "tag", "ok") != "ok":
                code = 1
        except ProcExit as e:
            code = e.status & 0xFF  # as a shell reports exit(300): 44
        except wasmtime.ExitTrap as e:
            code = e.code
        except wasmtime.Trap as e:
            if e.trap_code == wasmtime.TrapCode.INTERRUPT:
                if self.killed:
                    return 128 + self.killed
                problem = f"wasm: stopped after the deadline of {self.deadline_ticks * 10} ms ({DEADLINE})"
                code = 128 + _SIGXCPU
            else:
                cause = _cause(e)
                problem = cause if cause.startswith("wasm trap") else f"wasm trap: {cause}"
                code = 134
        except wasmtime.WasmtimeError as e:
            problem = f"wasm error: {_cause(e)}"
            code = 134
        used = self._memory_used()
        if code and self._near_memory_limit(used):
            problem += ("\n" if problem else "") + (
                f"wasm: memory grew to {used} bytes against the store memory limit of {self.limit} bytes "
                "(linux.resources.memory.limit less the engine's share; see mrun inspect); growing past it is refused"
            )
        if problem:
            os.write(2, in_bytes(problem + "\n"))
        return code


class ProcExit(Exception):  # noqa: N818 - an exit, not an error
    """The module called proc_exit(status)."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


def _record_proc_exit(linker: Any) -> None:
    """WASI preview 1's proc_exit, seen by us: wasmtime refuses statuses of 126 and up ("exit
    with invalid exit status outside of [0..126)") without saying which, and mrun reported that
    as a trap (134). Our own proc_exit ends the call with the status the module asked for.
    (Components exit through wasi:cli/exit, which has only ok and error: 0 or 1.)"""
    import wasmtime

    def proc_exit(status: int) -> None:
        raise ProcExit(status)

    linker.allow_shadowing = True
    linker.define_func("wasi_snapshot_preview1", "proc_exit", wasmtime.FuncType([wasmtime.ValType.i32()], []),
                       proc_exit)


def _never_called(_signum: int, _frame: Any) -> None:
    """Installed so the kernel delivers signals to PID 1; they are blocked and sigwait()ed."""


@hookimpl
def mrun_payload(container: Container, process: dict[str, Any]) -> WasmPayload:
    import wasmtime
    import wasmtime.component

    d = container.data
    if "compiled" not in d:
        raise MrunError("wasm: the module was not prepared on the host")
    # wasmtime's WASI blocks on a tokio runtime that its first host call makes, with a worker
    # thread per CPU unless told: a call runs on the calling thread (block_on), the workers only
    # run what it spawns. One is enough; each more cost the init ~0.2 ms of a run (measured:
    # hello's run 1.2 -> 0.7 ms on 2 CPUs) and a thread's stack. The operator's value stands.
    os.environ.setdefault("TOKIO_WORKER_THREADS", "1")
    spec = container.bundle.spec
    wasi = wasmtime.WasiConfig()
    wasi.argv = [d["name"], *process["args"][1:]]
    wasi.env = [tuple(e.split("=", 1)) for e in process.get("env") or []]
    wasi.inherit_stdin()
    wasi.inherit_stdout()
    wasi.inherit_stderr()
    for host, guest, writable in preopens(spec, process.get("cwd") or "/"):
        wasi.preopen_dir(host, guest, writable)
    eng = engine()
    store = wasmtime.Store(eng)
    limit = store_memory_limit(spec)[0]
    if limit > 0:
        store.set_limits(memory_size=limit)
    budget_ms = d["deadline_ms"]
    deadline_ticks = max(1, -(-budget_ms // 10)) if budget_ms > 0 else 1
    store.set_epoch_deadline(deadline_ticks)
    store.set_wasi(wasi)
    memory = None
    try:
        if d["kind"] == "module":
            instance = linker("module").instantiate(store, d["compiled"].artifact)
            exports = instance.exports(store)
            call = exports.get(d["export"])
            memory = exports.get("memory")
            if not isinstance(call, wasmtime.Func):
                raise MrunError(f"wasm: {d['name']} has no function export {d['export']!r}")
        else:
            instance = linker("component").instantiate(store, d["compiled"].artifact)
            run_iface = instance.get_export_index(store, _CLI_RUN)
            index = instance.get_export_index(store, "run", run_iface) if run_iface else None
            call = instance.get_func(store, index) if index else None
            if call is None:
                raise MrunError(f"wasm: {d['name']} is a component without {_CLI_RUN} (not a wasi:cli/command)")
    except wasmtime.WasmtimeError as e:
        raise MrunError(f"wasm: {d['name']}: cannot instantiate: {_first_line(e)}")
    return WasmPayload(store, call, d["kind"], memory, limit, deadline_ticks)


def cache_verb(g: dict[str, Any], action: str, all: bool, unused_days: int | None) -> int:  # noqa: A002
    """``mrun cache list|prune``: this backend's compiled-module cache."""
    from mrun.backends.wasm_cache import ModuleCache

    store = ModuleCache()
    if action == "list":
        for e in store.entries():
            print(
                f"{e['key'][:16]}  {e.get('kind', '?'):9}  {e['bytes']:>10}  sha256:{e.get('source_sha256', '?')[:12]}"
                f"  {e.get('engine', '?')}"
            )
        return 0
    if action == "prune":
        if unused_days is not None and unused_days < 0:
            raise InvalidSpec(f"--unused-days {unused_days}: a number of days, 0 or more")
        removed = store.prune(engine_description(), everything=all, unused_days=unused_days)
        print(f"removed {len(removed)} entr{'y' if len(removed) == 1 else 'ies'} from {store.dir}")
        return 0
    raise MrunError(f"cache: unknown action {action!r} (list or prune)")


@hookimpl
def mrun_commands() -> list[Command]:
    return [
        Command(
            "cache",
            "list or prune the compiled wasm cache",
            cache_verb,
            (Arg("action", "list or prune"),),
            (
                Flag("all", "prune: remove every entry", kind=bool, default=False),
                Flag("unused-days", "prune: also remove entries unused for this many days", kind=int, default=None),
            ),
        )
    ]

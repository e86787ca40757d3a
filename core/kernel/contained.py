"""Host-side work on an image's content (a backend compiling its wasm module) in a child process
under limits, so that hostile content costs what its container may spend, not what the host has.

Done in the calling process (the CLI, the shim's create worker), a module whose compile needs
gigabytes or minutes was paid in the caller's cgroup, whatever the container's limits. Now:

* at ``create`` and ``exec`` the child joins the container's cgroup before it starts the work:
  its memory, CPU and pids are the container's, and a compile past the memory limit is the
  container's OOM kill, refused in one line naming the field;
* with no container yet (``pull``, ``load``, ``image wasm``: precompiling) the child runs under
  rlimits: ``$MRUN_PRECOMPILE_CPU`` seconds of CPU (120) and ``$MRUN_PRECOMPILE_MEMORY`` MiB of
  data more than it started with (2048). Past them is ``LimitReached``: the caller skips the
  precompile, and the module compiles at create under its container's limits.

The work's result comes back over a pipe as bytes, a refusal (``MrunError``) as its line."""

from __future__ import annotations

import os

from mrun.errors import MrunError, in_bytes
from mrun.kernel.fdpass import write_all

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

OK, REFUSED = b"\0", b"\1"
PRECOMPILE_CPU_SECONDS = 120.0
PRECOMPILE_MEMORY_MIB = 2048.0
_SIGKILL, _SIGABRT, _SIGXCPU = 9, 6, 24


class LimitReached(MrunError):
    """The work was stopped by a bound, not refused by what it read."""


def run_contained(work: Callable[[], bytes], what: str, join: Callable[[int], None] | None = None,
                  killed: Callable[[int], str | None] | None = None, rlimits: bool = False) -> bytes:
    """``work()`` in a child: in the cgroup ``join`` puts it in, or under the precompile rlimits;
    -> its bytes. ``killed(signal)`` words a kill (None: the default words). Errors name ``what``."""
    r, w = os.pipe2(os.O_CLOEXEC)
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child, measured by its effects
        os.close(r)
        _child(work, what, w, parent, join, rlimits)
    os.close(w)
    chunks = []
    try:
        while chunk := os.read(r, 1 << 20):
            chunks.append(chunk)
    except BaseException:  # a signal to the caller: the work must not outlive it
        os.kill(pid, _SIGKILL)
        raise
    finally:
        os.close(r)
        status = _reap(pid)
    out = b"".join(chunks)
    if status is not None and os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        raise LimitReached(f"{what}: {(killed(sig) if killed else None) or _bound_words(sig, rlimits)}")
    if out[:1] == OK:
        return out[1:]
    if out[:1] == REFUSED:
        raise (LimitReached if out[1:2] == b"L" else MrunError)(out[2:].decode(errors="replace"))
    raise MrunError(f"{what}: the child doing it ended without a word (status {status})")


def _reap(pid: int) -> int | None:
    """The child's waitpid status; None where SIGCHLD is ignored (the kernel reaped it)."""
    while True:
        try:
            return os.waitpid(pid, 0)[1]
        except ChildProcessError:
            return None
        except InterruptedError:
            continue


def _bound_words(sig: int, rlimits: bool) -> str:
    if rlimits and sig == _SIGXCPU:
        return f"used more than {precompile_limits()[0]:g} s of CPU, the bound for compiling outside a container"
    if rlimits and sig == _SIGABRT:
        return (f"aborted, out of memory past {precompile_limits()[1]:g} MiB, the bound for compiling outside "
                "a container")
    return f"killed by signal {sig}"


def precompile_limits() -> tuple[float, float]:
    """(CPU seconds, MiB of data) for work with no container to join."""
    from mrun import knobs

    return (knobs.positive("MRUN_PRECOMPILE_CPU", PRECOMPILE_CPU_SECONDS),
            knobs.positive("MRUN_PRECOMPILE_MEMORY", PRECOMPILE_MEMORY_MIB))


def _child(work: Callable[[], bytes], what: str, w: int, parent: int, join: Callable[[int], None] | None,
           rlimits: bool) -> None:  # pragma: no cover - runs in the child
    from mrun.kernel import syscalls as sc
    from mrun.kernel.child import default_stop_signals

    out = REFUSED + b"M" + f"{what}: failed".encode()
    try:
        default_stop_signals()
        sc.prctl(sc.PR_SET_PDEATHSIG, _SIGKILL)
        if os.getppid() != parent:
            os._exit(1)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)  # an engine's abort prints its backtrace: the caller says it in one line
        os.close(devnull)
        if join is not None:
            join(os.getpid())
        if rlimits:
            _set_rlimits()
        out = OK + work()
    except LimitReached as e:
        out = REFUSED + b"L" + in_bytes(str(e))
    except MrunError as e:
        out = REFUSED + b"M" + in_bytes(str(e))
    except MemoryError:
        out = REFUSED + b"L" + f"{what}: {_bound_words(_SIGABRT, rlimits)}".encode()
    except BaseException as e:  # noqa: BLE001 - reported in one line, then exit
        out = REFUSED + b"M" + in_bytes(f"{what}: {(str(e).strip().splitlines() or [type(e).__name__])[0]}")
    finally:
        try:
            write_all(w, out)
        finally:
            os._exit(0)


def _set_rlimits() -> None:  # pragma: no cover - runs in the child
    import resource

    cpu, mib = precompile_limits()
    resource.setrlimit(resource.RLIMIT_CPU, (int(cpu), int(cpu) + 5))  # the soft bound sends SIGXCPU
    with open("/proc/self/status") as f:
        data_kib = next(int(line.split()[1]) for line in f if line.startswith("VmData:"))
    limit = (data_kib << 10) + (int(mib) << 20)
    resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))

"""The shim's single-threaded fork helper.

The shim daemon serves ttrpc on threads, and forking from a multi-threaded process can
deadlock the child (a lock held by another thread is never released there). So the daemon
forks this helper before it starts any thread, and every container create goes through it:
the helper forks a worker per request, the worker puts the container's stdio fifos on
0/1/2 and calls the same in-process ``Runtime.create`` the CLI uses. The container's init
then reparents to the daemon, which is a child subreaper, and the daemon reaps it.
"""

from __future__ import annotations

import os
import select
import socket
import sys

from mrun import jsonio, knobs
from mrun.errors import MrunError, in_words
from mrun.kernel import fdpass
from mrun.trace import span

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn


def send(sock: socket.socket, msg: dict, fds: list[int]) -> None:
    """One request or answer: its length, the JSON, and ``fds`` on its first bytes."""
    data = jsonio.dumps(msg).encode()
    sock.sendmsg([len(data).to_bytes(4, "big") + data], fdpass.rights(fds))


def recv(sock: socket.socket) -> tuple[dict, list[int]] | None:
    """``send``'s message and its descriptors; None at the socket's end."""
    data, anc, _, _ = sock.recvmsg(1 << 20, fdpass.space(16))
    fds = fdpass.received(anc)
    head = fdpass.read_exact(sock, 4, data[:4]) if data else None
    body = fdpass.read_exact(sock, int.from_bytes(head, "big"), data[4:]) if head is not None else None
    if body is None:
        for fd in fds:  # a sender that died mid-way: nothing it sent is acted on
            os.close(fd)
        return None
    return jsonio.loads(body), fds


def _create(msg: dict, fds: list[int], backends: object) -> dict:
    """Run in the worker: a container create, an exec into one (detached, so it returns), or a
    pod's namespace holder. The answer carries the seccomp programs the worker compiled, for the
    helper to keep: a pod's containers share a profile (CRI's RuntimeDefault), compiled once."""
    from mrun.sandbox import seccomp

    known = seccomp.compiled()
    answer = _create_or_exec(msg, fds, backends)
    new = [[key, program.hex()] for key, program in seccomp.compiled().items() if key not in known]
    if new and "error" not in answer:
        answer["seccomp"] = new
    return answer


def _create_or_exec(msg: dict, fds: list[int], backends: object) -> dict:
    if "pod" in msg:
        from mrun.shims.pod import hold

        try:
            return {"pid": hold(msg["pod"], fds[0])}
        except OSError as e:
            return {"error": str(e)}

    from mrun.runtime import CreateOptions, Runtime

    if msg.get("rootfs"):  # an idmapped one: its user namespace is forked here, not in the daemon
        from mrun.shims import rootfs

        rootfs.mount(msg["rootfs"], os.path.join(msg["bundle"], "rootfs"))
    console = socket.socket(fileno=fds.pop()) if msg.get("terminal") else None
    for target, fd in zip((0, 1, 2), fds, strict=False):
        os.dup2(fd, target)
    for fd in fds:
        if fd > 2:
            os.close(fd)
    runtime = Runtime(msg["root"], backends=backends)
    opts = CreateOptions()
    opts.console = console  # the container's pty master goes back to the daemon on it
    opts.annotations = msg.get("annotations") or {}
    if msg.get("pod_files"):
        from mrun.shims.pod_files import amend

        opts.amend_config = lambda config: amend(msg["pod_files"], config)
    if msg.get("process") is None:
        record = runtime.create(msg["id"], msg["bundle"], opts)
        return {"pid": record.pid, "record": record.to_dict()}  # the daemon keeps it (service._written_back)
    import tempfile  # an exec's only: it brings random and hashlib, which a create need not pay for

    with tempfile.TemporaryDirectory() as tmp:
        opts.pid_file = os.path.join(tmp, "pid")
        runtime.exec(msg["id"], msg["process"], opts, detach=True)
        with open(opts.pid_file) as f:
            return {"pid": int(f.read())}


def preload_create() -> object:
    """What every create needs, loaded once here rather than once per worker: the core, the
    sandbox, pluggy and the backends (the daemon does its own imports on the other core; the
    warm template loads the same before anything else it serves, see template.preload). A
    worker's own import is paid by every create and stays in the container's init as private
    memory: the create steps (mrun.operations, 2.6 ms) were missing here, which only a helper
    forked from the warm template had loaded."""
    import encodings.utf_8_sig  # noqa: F401 - config.json is read with it (a BOM is tolerated)
    import pickle  # noqa: F401 - what a pristine init is sent (mrun.sandbox.pristine)
    import pwd  # noqa: F401 - the record's owner

    import mrun.cgroups.devices  # noqa: F401 - v2's device filter
    import mrun.cgroups.v1  # noqa: F401
    import mrun.cgroups.v2  # noqa: F401
    import mrun.operations.create  # noqa: F401
    import mrun.operations.host  # noqa: F401
    import mrun.plugins.policy  # noqa: F401
    import mrun.runtime  # noqa: F401
    import mrun.sandbox.console  # noqa: F401
    import mrun.sandbox.init  # noqa: F401
    import mrun.sandbox.launch  # noqa: F401
    import mrun.sandbox.pristine  # noqa: F401
    import mrun.sandbox.seccomp  # noqa: F401
    from mrun.plugins.manager import Backends

    mrun.sandbox.pristine.births_here()  # asked here once, not by each worker's copy
    return Backends.shared()


def _preload_backend(backends: object, msg: dict) -> None:
    """Before the first create of a kind, let its backend load what it will need (wasmtime):
    later containers of a pod are forked with it already there."""
    from mrun.plugins.api import Bundle
    from mrun.spec import load_bundle

    if msg.get("process") is not None or "pod" in msg:
        return
    try:
        bundle = Bundle(load_bundle(msg["bundle"]))
        name, _why, _claims = backends.choose(bundle)  # type: ignore[attr-defined]
        backends.of(name).mrun_preload(bundle=bundle)  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - the create itself reports what is wrong with the bundle
        pass


def preload_needed(impls: dict[str, dict[str, object]], warm: bool) -> bool:
    """Whether ``_preload_backend`` has anything to do. A helper forked (through its daemon) from
    the warm template starts with what every backend's ``mrun_warm`` loaded there: a backend
    with an ``mrun_preload`` but no ``mrun_warm`` is the only reason left to read the bundle and
    choose for it first, which cost ~1.4 ms of every create's critical path."""
    return not warm or any("mrun_preload" in hooks and "mrun_warm" not in hooks for hooks in impls.values())


def _plain_create(msg: dict) -> bool:
    """A container's create: not an exec into one, not a pod's namespace holder."""
    return msg.get("process") is None and "pod" not in msg


def _work(msg: dict, fds: list[int], backends: object, answers: int) -> NoReturn:
    """In a worker: the request, its answer on ``answers`` (length-prefixed, not "until EOF": the
    container's init inherits the write end), then the pristine copy's end. Never returns."""
    from mrun.sandbox import pristine

    try:
        with span("worker"):
            answer = _create(msg, fds, backends)
    except MrunError as e:
        answer = {"error": str(e)}
    except OSError as e:  # the host's (a full /run): its words and its file, not Python's repr
        answer = {"error": in_words(e)}
    except Exception as e:  # reported to the daemon, which answers containerd
        answer = {"error": f"{e.__class__.__name__}: {e}"}
    if pristine.handed_over():
        answer["pristine"] = True  # what the tests look at
    data = jsonio.dumps(answer).encode()
    os.write(answers, len(data).to_bytes(4, "big") + data)
    pristine.disarm()  # after the answer: the copy's exit is not on the create's path
    os._exit(0)


def _fork_worker(msg: dict, fds: list[int], backends: object, copies: bool) -> tuple[int, int]:
    """A worker forked for this request. -> (its pid, the read end of its answer)."""
    from mrun.sandbox import pristine

    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        if copies and _plain_create(msg):
            # First, before the create writes anything: the container's init comes from this
            # copy (mrun.sandbox.pristine). Measured: an idle wasm init 4.0 MiB private this way,
            # 4.6 with the copy forked by the helper beside the worker.
            pristine.arm()
        os.close(r)
        _work(msg, fds, backends, w)
    os.close(w)
    return pid, r


SPARE_IDLE = 10.0  # seconds a spare waits for a create before it is let go ($MRUN_SPARE_IDLE)
QUIET = 0.02  # seconds without a request before the helper forks a pod's next spare


class Spare:
    """A create worker forked before its request, its pristine copy already armed: both forks
    (2.6 ms from the helper's fork to an armed worker, measured) are then off the create's path.
    The helper keeps one from its start, and forks the next once it has been QUIET after an answer
    when the daemon says more creates are coming (a pod's shim): one shim per container forks no
    more than before.
    A pair waiting holds ~2 MiB of private memory (measured: the worker 1.4, its copy 0.7; what
    the helper writes after the fork becomes theirs alone), so it waits SPARE_IDLE at most: a
    pod's containers are created one after another, and then for good."""

    def __init__(self, pid: int, sock: socket.socket, answers: int, modules: int) -> None:
        self.pid, self.sock, self.answers = pid, sock, answers
        self.modules = modules  # how many the helper had imported when it forked this one

    @classmethod
    def fork(cls, backends: object, copies: bool, daemon: socket.socket) -> Spare | None:
        """``daemon``: the helper's socket to its daemon, which the spare must not hold while it
        waits (the daemon learns of a dead helper by that socket's end)."""
        from mrun.sandbox import pristine

        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        r, w = os.pipe()
        try:
            pid = os.fork()
        except OSError:  # no room for one now: the request forks its own worker
            for end in (ours, theirs):
                end.close()
            for fd in (r, w):
                os.close(fd)
            return None
        if pid == 0:
            for end in (ours, daemon):
                end.close()
            os.close(r)
            if copies:
                pristine.arm()
            try:
                got = recv(theirs)
            except OSError:
                got = None
            theirs.close()
            if got is None:  # let go unused: the helper is leaving, or loaded more since
                pristine.disarm()
                os._exit(0)
            _work(*got, backends, w)
        theirs.close()
        os.close(w)
        return cls(pid, ours, r, len(sys.modules))

    def take(self, msg: dict, fds: list[int]) -> tuple[int, int] | None:
        """Hand it the request. -> (its pid, the read end of its answer); None when it cannot
        serve: it has died, or the helper has imported more since it was forked (a cold helper
        preloads a backend at its first create of that kind): then it is let go (``release``)."""
        if len(sys.modules) != self.modules:
            return None
        try:
            send(self.sock, msg, fds)
        except OSError:
            return None
        self.sock.close()
        return self.pid, self.answers

    def release(self) -> None:
        """Unused: it sees the end of its socket, dismisses its copy and exits; ``reap`` waits."""
        self.sock.close()
        os.close(self.answers)

    def reap(self) -> None:
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass

    def retire(self) -> None:
        """Let go and reaped, now."""
        self.release()
        self.reap()


def _read_answer(r: int) -> dict:
    """The worker's answer, whole, or the one line for a worker that died first."""
    head = fdpass.read_exact(r, 4)
    body = None if head is None else fdpass.read_exact(r, int.from_bytes(head, "big"))
    os.close(r)
    return {"error": "the create worker died"} if body is None else jsonio.loads(body)


def serve(sock: socket.socket) -> None:
    """Loop: one request in, one worker (the spare, or forked now), one answer out. Never returns."""
    import mrun.warm.client as warm_client
    from mrun.sandbox import seccomp

    backends = preload_create()
    preload = preload_needed(backends.impls, warm_client.in_template_child)  # type: ignore[attr-defined]
    copies = os.environ.get("MRUN_PRISTINE") != "0"
    spares = os.environ.get("MRUN_SPARE_WORKER") != "0"
    idle = knobs.seconds("MRUN_SPARE_IDLE", SPARE_IDLE)
    spare = Spare.fork(backends, copies, sock) if spares else None
    wanted = False  # a pod's next create will come: its spare is forked once the helper is quiet
    while True:
        if wanted and not select.select([sock], [], [], QUIET)[0]:
            spare, wanted = Spare.fork(backends, copies, sock), False
            continue
        if spare is not None and not select.select([sock], [], [], idle)[0]:
            spare.retire()  # no create came: a waiting pair costs a pod ~2 MiB
            spare = None
            continue
        got = recv(sock)
        if got is None:
            if spare is not None:
                spare.retire()
            os._exit(0)
        msg, fds = got
        if preload:
            _preload_backend(backends, msg)
        handed = dropped = None  # the spare's (pid, answer), or the spare that could not take it
        if spare is not None and _plain_create(msg):
            handed = spare.take(msg, fds)
            if handed is None:
                spare.release()  # reaped once the answer has gone
                dropped = spare
            spare = None
        worker, answers = handed or _fork_worker(msg, fds, backends, copies)
        for fd in fds:
            os.close(fd)
        # The answer is whole (or the worker is dead): it goes first, and the worker's exit (the
        # teardown of a process this size, ~0.7 ms) is not on the create's path any more.
        answer = _read_answer(answers)
        programs = answer.pop("seccomp", None) or ()
        for key, program in programs:
            seccomp.adopt(key, bytes.fromhex(program))
        if programs:
            answer["compiled_seccomp"] = len(programs)  # what the daemon may log; the tests look at it
        if handed is not None:
            answer["spare"] = True  # likewise
        send(sock, answer, [])
        os.waitpid(worker, 0)
        if dropped is not None:
            dropped.reap()
        # With what this create adopted and loaded, and not at once: the container just created is
        # being started, on the node's CPUs, right then.
        wanted = spare is None and spares and bool(msg.get("more"))


def start_helper() -> tuple[socket.socket, object]:
    """A replacement helper for a daemon whose helper died. The daemon is multi-threaded by then,
    so the new helper is exec'd, not forked (exec leaves no half-held lock behind). -> (our end of
    its socket, its Popen)."""
    import subprocess

    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    code = "import sys; from mrun.shims.spawner import main; main(int(sys.argv[1]))"
    try:
        proc = subprocess.Popen(
            [sys.executable, "-c", code, str(theirs.fileno())], pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL
        )
    finally:
        theirs.close()
    return ours, proc


def main(fd: int) -> None:
    """Entry point of an exec'd helper (``start_helper``)."""
    serve(socket.socket(fileno=fd))

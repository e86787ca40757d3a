"""The warm template process: paid every import once, forks a child per caller, stays
single-threaded (a fork from a multi-threaded process can deadlock the child).

Started by ``client.start_template`` with the socket path as its argument. It takes a lock
beside the socket (so one template serves a path), loads everything, then serves until it has
been idle for ``$MRUN_WARM_IDLE`` seconds (default 300), its code changed on disk, or it is told
to stop (SIGTERM). The socket and its directory are root's alone, and the peer's credentials
are checked on every connection as well.

Between callers it keeps one child forked in advance (``mrun-warm-spare``): a checked caller is
handed to it over a socket pair, so the fork is not on the caller's path. The next one is forked
once no caller has come for QUIET seconds, off the path of the child just handed over. The
spare is in the template's cgroups: a caller in another cgroup2 cgroup gets a child forked for
it, born in that cgroup (``Template.fork``), for a move there waits for an RCU grace period.

A request is one message: "cli" (``client.run``: an ``mrun`` verb, whose exit status goes back),
"shim" (the native ``containerd-shim-mrun-v2``: its ``start``, ``delete`` or ``-info``, likewise)
or "shim-daemon" (``client.spawn``: the shim daemon for ``containerd-shim-mrun-v2 start``, which
waits for nothing). The Python client sends its interpreter's ``identity``; the native launcher
(bin/launcher.c) cannot, and sends ``native``: its directory and the environment variables that
decide how the Python launcher beside it would start, which must be the template's own. It leaves
to the template whether a verb is served (``native_refusal``): what must stay in its caller
(``create``) is answered ``cold`` before the caller's credentials are compared.

The template answers ``{"send": "fds"}`` and then takes the descriptors, or ``{"cold": why}``
(``"stale": true`` when it is leaving because its code changed), or ``{"error": why}`` to a
caller that is not root. The descriptors come in one message, the caller's working directory
last (O_PATH); with SO_PASSCRED the kernel stamps its sender's pid on it, which must be the pid
checked. The child answers ``{"pid": N}`` and, for "cli" and "shim", at the end ``{"exit": status}``
(with ``"detached": true`` when it carries on, or has let go of all that was the caller's, its
descriptors and cgroups (``child.let_go``): the caller then does not wait for it to end).
A native shim ``delete`` with nothing to do (``delete_answer``), and a ``start`` that joins a running pod's shim, get
``{"exit": status}`` at once, from the template itself (``answered_in_place``).
``{"kind": "status"}`` is answered in place: the template's pid, how many callers it served, its
code's digest.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import time

from mrun import trace
from mrun.errors import in_bytes
from mrun.kernel.proc import reaped
from mrun.warm import client

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NoReturn

KINDS = ("cli", "shim", "shim-daemon")  # what a caller may ask for (docstring above)
IDLE_EXIT = 300.0  # seconds without a caller ($MRUN_WARM_IDLE)
LOCK_WAIT = 3.0  # seconds to wait for a template that is leaving to let go of the lock
QUIET = 0.02  # seconds without a caller before the template readies itself for the next (settle)


def log(msg: str) -> None:
    print(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} mrun warm template {os.getpid()}: {msg}", file=sys.stderr, flush=True)


def reap_children(_signum: int, _frame: Any) -> None:
    """The template waits for none of its children, and reaps them here; one a signal ended is
    logged. A served child killed before it sent its exit status leaves its caller nothing to
    say but "ended without an exit status": this line says which signal it was. (os.write: a
    handler may run while ``log`` is writing, and a buffered stream refuses a reentrant write.)"""
    for pid, status in reaped():
        if os.WIFSIGNALED(status):
            line = f"{time.strftime('%Y-%m-%dT%H:%M:%S')} mrun warm template {os.getpid()}: child {pid} " \
                   f"ended by signal {os.WTERMSIG(status)}\n"
            try:
                os.write(2, line.encode())
            except OSError:
                pass


def preload() -> Any:
    """Everything a caller's work imports, and each backend's own warm-up (``mrun_warm``): what a
    create needs (the shim's fork helper's list, ``preload_create``), then the front ends. A
    module a child imports itself costs every call that needs it (0.1-0.3 ms each) and stays in
    that child as private memory: test_startup runs the common calls in children of this list
    and names any module one of them imported."""
    from mrun.shims.spawner import preload_create

    backends = preload_create()
    import _strptime  # noqa: F401 - ps, inspect and logs read times back

    import mrun.cgroups.beside  # noqa: F401
    import mrun.cli.container_verbs  # noqa: F401
    import mrun.cli.docker_rows  # noqa: F401
    import mrun.cli.fastparse  # noqa: F401
    import mrun.cli.image_store_verbs  # noqa: F401
    import mrun.cli.inspect_verbs  # noqa: F401
    import mrun.cli.listing  # noqa: F401
    import mrun.cli.log_verbs  # noqa: F401
    import mrun.cli.main  # noqa: F401
    import mrun.cli.network_verbs  # noqa: F401
    import mrun.cli.ps_verb  # noqa: F401
    import mrun.cli.readiness  # noqa: F401
    import mrun.cli.run_verb  # noqa: F401
    import mrun.cli.stats  # noqa: F401
    import mrun.cli.system_verbs  # noqa: F401
    import mrun.cli.template  # noqa: F401
    import mrun.cli.verbs  # noqa: F401
    import mrun.cli.volume_verbs  # noqa: F401
    import mrun.defaults  # noqa: F401
    import mrun.exiting  # noqa: F401
    import mrun.images.auto_remove  # noqa: F401
    import mrun.images.cidfile  # noqa: F401
    import mrun.images.containers  # noqa: F401
    import mrun.images.health  # noqa: F401
    import mrun.images.install  # noqa: F401
    import mrun.images.joined  # noqa: F401
    import mrun.images.log_relay  # noqa: F401
    import mrun.images.reboot  # noqa: F401
    import mrun.images.registry  # noqa: F401
    import mrun.images.run_resources  # noqa: F401
    import mrun.images.secrets  # noqa: F401
    import mrun.images.supervisor  # noqa: F401
    import mrun.images.system_paths  # noqa: F401
    import mrun.images.unstarted  # noqa: F401
    import mrun.images.volumes  # noqa: F401
    import mrun.kernel.child  # noqa: F401
    import mrun.kernel.contained  # noqa: F401
    import mrun.kernel.flock  # noqa: F401
    import mrun.kernel.hangup  # noqa: F401 - every served child arms it
    import mrun.network.attach  # noqa: F401
    import mrun.network.conntrack  # noqa: F401
    import mrun.network.firewall  # noqa: F401
    import mrun.network.links  # noqa: F401
    import mrun.network.portguard  # noqa: F401
    import mrun.network.recovery  # noqa: F401 - every command looks for containers a lost network root held
    import mrun.network.rtnl  # noqa: F401
    import mrun.operations.builder  # noqa: F401
    import mrun.operations.exec  # noqa: F401
    import mrun.shims.events  # noqa: F401
    import mrun.shims.info  # noqa: F401
    import mrun.shims.main  # noqa: F401
    import mrun.shims.metrics  # noqa: F401 - a CRI node asks every container's shim for stats
    import mrun.shims.pod  # noqa: F401
    import mrun.shims.pod_files  # noqa: F401
    import mrun.shims.proto.metrics_pb2  # noqa: F401 - v1's, imported by the first Stats
    import mrun.shims.proto.metrics_v2_pb2  # noqa: F401 - v2's
    import mrun.shims.sandbox  # noqa: F401
    import mrun.shims.service  # noqa: F401
    import mrun.shims.ttrpc  # noqa: F401
    import mrun.warm.child  # noqa: F401
    from mrun.images.seccomp_default import profile
    from mrun.sandbox.seccomp import Filter

    Filter(profile())  # compiled once here: every `mrun run IMAGE` loads it
    backends.pm.hook.mrun_warm()  # type: ignore[attr-defined]
    return backends


def freeze(collect: bool = False) -> None:
    """Move everything loaded so far out of the collector's sight: a child's collections then
    never touch (and so never copy) the template's pages, which stay shared with every child.
    A full collection first only at start: between callers it would take the CPU the child
    needs on a small machine (10-30 ms)."""
    import gc

    if collect:
        gc.collect()
    gc.freeze()


def take_lock(path: str) -> int | None:
    import fcntl

    from mrun.kernel.flock import taken_within

    fd = os.open(path[: -len(".sock")] + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    if taken_within(fd, fcntl.LOCK_EX, LOCK_WAIT, 0.05):
        return fd
    os.close(fd)
    return None


def listen(path: str) -> socket.socket:
    """Root's socket in root's directory: a mode the kernel checks, and SO_PEERCRED we check."""
    try:
        os.unlink(path)  # a dead template's; we hold the lock, so no live one uses it
    except FileNotFoundError:
        pass
    from mrun.kernel.fdpass import bind_private

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    bind_private(sock, path)
    sock.listen(128)
    return sock


class Template:
    def __init__(
        self, path: str, listener: socket.socket, lock_fd: int, code: Any, backends: Any, script_dir: str = ""
    ) -> None:
        from mrun.warm import peer

        self.path = path
        self.listener = listener
        self.lock_fd = lock_fd
        self.identity = client.identity()
        self.context = peer.context("self")
        self.kept = peer.kept_state()
        self.code = code  # taken before the imports: a change during them counts
        self.backends = backends
        self.inode = os.stat(path).st_ino
        self.served = 0
        self.digest = code.digest()
        self.leaving = False
        self.spare: socket.socket | None = None  # our end of the pair to a child forked in advance
        self.script_dir = script_dir  # the Python launchers' directory, as the first caller had it
        self.cgroup2 = _birth_mount()  # where a child is born in its caller's cgroup2 cgroup, or None

    def serve(self, idle: float) -> None:
        settled = False  # mrun_warm run and the spare forked since the last caller (or the start)
        while not self.leaving:
            self.listener.settimeout(idle if settled else QUIET)
            try:
                stop.safe = True  # a SIGTERM from here to the connection raises SystemExit here
                if stop.pending:
                    raise SystemExit(0)
                conn, _ = self.listener.accept()
            except TimeoutError:
                if settled:
                    log(f"idle for {idle:g} s: leaving")
                    break
                conn = None
            except InterruptedError:
                continue
            finally:
                stop.safe = False
            if conn is None:  # after stop.safe is off: a SIGTERM as settle forks is noted, not raised
                self.settle()
                settled = True
                continue
            try:
                self.handle(conn)
            except Exception as e:  # noqa: BLE001 - one bad request must not end the template
                log(f"request failed: {e.__class__.__name__}: {e}")
            finally:
                conn.close()
            settled = False
        self.leave()

    def settle(self) -> None:
        """Once no caller has come for QUIET seconds: what the last child may have added (a newly
        compiled module), then the spare forked with it. Not at once: the child just handed over
        (a shim daemon forking its helper, a create) runs on this node's CPUs right then, and the
        spare's fork and first run (~1.5 ms of CPU) would be on its path. A caller that comes
        meanwhile gets a fork of its own, as when there is no spare."""
        try:
            self.backends.pm.hook.mrun_warm()
            freeze()
        except Exception as e:  # noqa: BLE001
            log(f"a backend's mrun_warm failed: {e.__class__.__name__}: {e}")
        self.keep_spare()

    def leave(self) -> None:
        """Remove the socket if it is still ours (a newer template may have replaced it)."""
        try:
            if os.stat(self.path).st_ino == self.inode:
                os.unlink(self.path)
        except OSError:
            pass
        self.listener.close()
        if self.spare is not None:  # it reads the end of the pair and exits
            self.spare.close()
            self.spare = None

    def keep_spare(self) -> None:
        """A child forked now, between callers, waits for the next one: the fork (a few ms for
        a process this size, and the child's first run) is then off that caller's path. Forked
        after ``mrun_warm``: it has every module compiled so far."""
        if self.spare is not None:
            return
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            pid = os.fork()
        except OSError as e:
            log(f"no spare child: {e.strerror}")
            ours.close()
            theirs.close()
            return
        if pid == 0:
            ours.close()
            self._detach()
            from mrun.kernel.proc import rewrite_area

            rewrite_area("arg", f"mrun-warm-spare\0{self.path}".encode())
            from mrun.warm.child import prepare

            prepare()
            try:
                job = _await_job(theirs)
            except (OSError, ValueError):
                job = None
            if job is None:  # the template left (or broke the pair): nobody to serve
                os._exit(0)
            theirs.close()
            self._child(*job)
        theirs.close()
        self.spare = ours

    def _to_spare(self, conn: socket.socket, msg: dict[str, Any], fds: list[int], peer_pid: int) -> bool:
        """Hand a checked caller to the spare. -> False: there is none (or it died): fork now."""
        spare, self.spare = self.spare, None
        if spare is None:
            return False
        try:
            client.send_fds(spare, [conn.fileno(), *fds])
            client.send_message(spare, {"msg": msg, "peer": peer_pid})
            return True
        except OSError:
            return False
        finally:
            spare.close()

    def handle(self, conn: socket.socket) -> None:
        """The request first, the descriptors only once we said yes: a caller never has its stdio
        in flight to a template that may not answer (a pipe would stay open as long as it hung)."""
        from mrun.kernel.proc import start_time
        from mrun.warm import peer

        pid, uid, _gid = peer.credentials(conn)
        if uid != 0:
            log(f"refused pid {pid}: uid {uid} is not root")
            client.send_message(conn, {"error": f"refused: uid {uid} is not root"})
            return
        conn.settimeout(5)
        msg = client.recv_message(conn)
        if msg is None:
            return
        if msg.get("kind") == "status":
            client.send_message(conn, self.status())
            return
        # SO_PEERCRED names the pid that connected, and /proc is read by pid: by now it may be
        # another process's. Its start time before the facts and again once the descriptors are
        # here, and the pid the kernel stamps on the descriptors' message, must all be the same.
        started = start_time(pid)
        why = self.refusal(msg, pid)
        if why is not None:
            client.send_message(conn, {"cold": why, "stale": self.leaving})
            return
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)  # before we ask: the answer carries its sender
        client.send_message(conn, {"send": "fds"})
        fds, sender = _recv_fds(conn)
        try:
            if fds is None or len(fds) != len(msg["fds"]) + 1:  # and the working directory
                return
            if started is None or sender != pid or start_time(pid) != started:
                log(f"refused pid {pid}: the descriptors came from pid {sender}, or pid {pid} is another process now")
                client.send_message(conn, {"cold": f"pid {pid} is not the process that connected"})
                return
            if self.answered_in_place(conn, msg, fds):
                return
            self.fork(conn, msg, fds, pid, self.birth_place(pid))
        finally:
            for fd in fds or ():
                os.close(fd)

    def status(self) -> dict[str, Any]:
        return {"pid": os.getpid(), "served": self.served, "code": self.digest, "path": self.path}

    def refusal(self, msg: dict[str, Any], pid: int) -> str | None:
        from mrun.warm import peer

        changed = self.code.changed()
        if changed is not None:
            log(f"{changed} changed since this template started: leaving")
            self.leaving = True
            return f"the installed code changed ({changed})"
        native = msg.get("native")
        if native is not None:
            why = self.native_mismatch(native, msg, pid)
            if why is not None:
                return why
        elif msg.get("identity") != self.identity:
            return "the caller's interpreter, sys.path or environment differs"
        if msg.get("kind") not in KINDS or not isinstance(msg.get("fds"), list):
            return "a malformed request"
        if msg.get("kept") != self.kept:  # what fork and exec keep and /proc does not show
            return "the caller's securebits, memory-deny-write-execute or NUMA memory policy differ"
        return peer.mismatch(pid, self.context)

    def native_mismatch(self, native: Any, msg: dict[str, Any], pid: int) -> str | None:
        """A native launcher's call: served if the Python launcher beside it would have started
        as this template did (the same directory, hence the same interpreter, and the same
        PYTHON*/LC_*/LANG variables), and if the verb may leave its caller. Then ``msg`` gets the
        stdio a fresh interpreter would set up (the template's own: same locale, same encoding)."""
        if not isinstance(native, dict) or msg.get("kind") not in ("cli", "shim"):
            return "a malformed request"
        if native.get("dir") != self.script_dir:
            return f"the launcher is in {native.get('dir')!r}, this template's in {self.script_dir!r}"
        if native.get("env") != self.identity["env"]:
            return "the caller's PYTHON*, LC_* or LANG variables differ"
        if (sys.getfilesystemencoding(), sys.getfilesystemencodeerrors()) != ("utf-8", "surrogateescape"):
            return "the filesystem encoding is not UTF-8 (the native launcher sends UTF-8)"
        if msg["kind"] == "cli":
            env = msg.get("env") if isinstance(msg.get("env"), dict) else {}
            why = native_refusal(msg.get("argv", [])[1:], pid, births=self.cgroup2 is not None,
                                 notifying=bool(env.get("NOTIFY_SOCKET")))
            if why is not None:
                return why
        fds = msg.get("fds") if isinstance(msg.get("fds"), list) else []
        msg["stdio"] = [client._stream(stream) if fd in fds else None
                        for fd, stream in enumerate((sys.stdin, sys.stdout, sys.stderr))]
        return None

    def answered_in_place(self, conn: socket.socket, msg: dict[str, Any], fds: list[int]) -> bool:
        """Two native ``containerd-shim-mrun-v2`` calls are answered here, with their exit status
        and no child: a ``delete`` with nothing to do but perhaps say a pod's shim is kept
        (containerd runs one after every shim disconnect, and ``ctr run --rm`` waits for it), and
        a ``start`` for a pod whose shim runs (every container of a pod after the first). A
        child's fork, first run and exit cost about 5 ms of the caller's time and more of the
        node's CPU, for calls that look at a few files. Anything else goes to a child as before."""
        argv, env, numbers = msg.get("argv"), msg.get("env"), msg.get("fds")
        if msg.get("kind") != "shim" or "native" not in msg or not isinstance(env, dict):
            return False
        if not (isinstance(argv, list) and all(isinstance(a, str) for a in argv)):
            return False
        from mrun.shims import main as shim

        _flags, action = shim.parse(argv[1:])
        if not (isinstance(numbers, list) and 1 in numbers and 2 in numbers):
            return False
        if action == "delete":
            try:
                said = shim.delete_answer(argv[1:], env)
            except Exception as e:  # noqa: BLE001 - a child does the call, and says what is wrong
                log(f"a shim delete could not be answered here: {e.__class__.__name__}: {e}")
                said = None
            if said is None:
                return False
            try:
                os.write(fds[numbers.index(2)], in_bytes(said))
            except OSError:
                pass  # as print to a closed stderr: the status still goes back
            return self._answer(conn, 0)
        if action != "start":
            return False
        began = time.monotonic_ns()
        stdin = fds[numbers.index(0)] if 0 in numbers else None
        data, eof = _read_all(stdin) if stdin is not None and not os.isatty(stdin) else (b"", True)
        if eof:
            try:
                answer = shim.joined_pod(argv[1:], env, data if stdin is not None else None, fds[-1],
                                         msg.get("umask", 0o022))
            except Exception as e:  # noqa: BLE001 - the child below does the call with what we read
                log(f"a shim start could not be answered here: {e.__class__.__name__}: {e}")
                answer = None
            if answer is not None:
                try:
                    os.write(fds[numbers.index(1)], answer)
                except OSError:
                    return self._answer(conn, 1)
                trace.since("shim start", began, env)
                return self._answer(conn, 0)
        if stdin is not None:  # what we took of it goes to the child that does the call
            import base64

            msg["stdin_read"] = [base64.b64encode(data).decode(), eof]
        return False

    def _answer(self, conn: socket.socket, status: int) -> bool:
        client.send_message(conn, {"exit": status})
        self.served += 1
        return True

    def birth_place(self, pid: int) -> str | None:
        """The caller's cgroup2 cgroup if it is not ours and a child can be born there, else None."""
        if self.cgroup2 is None:
            return None
        from mrun.warm.child import cgroup_moves

        try:
            moves = cgroup_moves(pid)
        except OSError:
            return None
        return next((os.path.join(self.cgroup2, path.lstrip("/")) for _hid, controllers, path in moves
                     if not controllers), None)

    def fork(self, conn: socket.socket, msg: dict[str, Any], fds: list[int], peer_pid: int,
             born_in: str | None = None) -> None:
        """The spare takes the caller, or a child forked now. The spare is in our cgroups: a caller
        in another cgroup2 cgroup gets a child born in that one (``born_in``), for a move there
        (child.join_cgroups) waits for an RCU grace period, holding the kernel's cgroup lock."""
        if born_in is None and self._to_spare(conn, msg, fds, peer_pid):
            self.served += 1
            return
        pid = _fork_born(born_in) if born_in is not None else os.fork()
        if pid:
            self.served += 1
            return
        self._detach()
        self._child(conn, msg, fds, peer_pid)

    def _detach(self) -> None:
        """In a child: let go of what is the template's alone."""
        self.listener.close()
        os.close(self.lock_fd)
        if self.spare is not None:
            self.spare.close()

    def _child(self, conn: socket.socket, msg: dict[str, Any], fds: list[int], peer_pid: int) -> NoReturn:
        """Become the caller, do the work, report; never returns."""
        code, reply, became = 255, None, False
        began = time.monotonic_ns()
        try:
            from mrun.kernel.hangup import die_with_caller
            from mrun.warm.child import become, let_go, own_cgroups

            home = own_cgroups()  # the template's: where we go back to before the status (child.let_go)

            own = os.dup(conn.fileno())  # parked high by become; ours alone
            conn.close()
            import fcntl

            reply = socket.socket(fileno=fcntl.fcntl(own, fcntl.F_DUPFD_CLOEXEC, 900))
            os.close(own)
            become(msg, fds, peer_pid, [reply.fileno()])
            became = True
            trace.since("warm become", began)  # the caller's environment is ours now
            if msg["kind"] == "shim-daemon":  # outlives the caller, which waits for nothing
                from mrun.shims.main import daemon_from

                client.send_message(reply, {"pid": os.getpid()})
                reply.close()
                daemon_from(msg)  # never returns
            # armed first: a caller killed from now on takes us along, until the work asks to outlive it
            die_with_caller(reply.fileno(), client.outliving)
            client.caller = peer_pid
            client.send_message(reply, {"pid": os.getpid()})
            if msg["kind"] == "shim":
                client.release = lambda status: _release(reply, status)  # its start may carry on as the daemon
                if "stdin_read" in msg:
                    import base64

                    client.stdin_read = (base64.b64decode(msg["stdin_read"][0]), bool(msg["stdin_read"][1]))
                code = run_shim(msg["argv"][1:])
            else:
                client.release = lambda status: _release(reply, status)  # a `run -it` detached goes on
                code = run_cli(msg["argv"][1:])
        except BaseException as e:  # noqa: BLE001 - the caller hears of it, the template goes on
            if reply is not None and not became:
                # not yet the caller (its descriptors and stdio not in place): it would get a bare
                # 255 and not a word, so it runs cold instead, as with no template at all
                try:
                    client.send_message(reply, {"cold": f"the template's child could not take this caller on: "
                                                        f"{e.__class__.__name__}: {e}"})
                except Exception:  # noqa: BLE001 - the caller is gone
                    pass
                os._exit(0)
            try:
                print(f"mrun: {e.__class__.__name__}: {e}", file=sys.stderr)
            except Exception:  # noqa: BLE001
                pass
        _flush_stdio()
        if reply is not None:
            try:
                # Let go of all that was the caller's, the caller need not wait for our exit: the
                # teardown of a fork the template's size, 1-3 ms of every warm call.
                released = (became and reply.fileno() >= 0 and os.environ.get("MRUN_WARM_RELEASE") != "0"
                            and let_go(reply.fileno(), home))
                client.send_message(reply, {"exit": code, **({"detached": True} if released else {})})
            except Exception:  # noqa: BLE001 - the caller is gone
                pass
        os._exit(0)


STDIN_WAIT = 0.5  # seconds a shim start's stdin may take to reach its end (containerd writes it at once)
STDIN_LIMIT = 1 << 20  # bytes of it read here at most (BootstrapParams are a few hundred)


def _read_all(fd: int) -> tuple[bytes, bool]:
    """A caller's stdin to its end, waiting at most STDIN_WAIT in all and reading at most
    STDIN_LIMIT. -> (what came, whether it ended). Without O_NONBLOCK: the open file description
    is the caller's too."""
    import select

    chunks, size, deadline = [], 0, time.monotonic() + STDIN_WAIT
    while (left := deadline - time.monotonic()) > 0 and size < STDIN_LIMIT and select.select([fd], [], [], left)[0]:
        try:
            chunk = os.read(fd, min(65536, STDIN_LIMIT - size))
        except OSError:
            return b"".join(chunks), True  # as a read that fails: nothing more comes
        if not chunk:
            return b"".join(chunks), True
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks), False


def _flush_stdio() -> None:
    """What the work wrote, out before its status goes back; a closed pipe (the caller's reader
    gone) does not keep the other stream or the status from going."""
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            try:
                stream.flush()
            except Exception:  # noqa: BLE001 - a closed pipe: the status still goes back
                pass


def _release(reply: socket.socket, status: int) -> None:
    """The caller goes with ``status`` and does not wait for us (``detached``): we are disarmed
    first (die_with_caller), or its leaving would kill us."""
    from mrun.kernel.hangup import disarm

    _flush_stdio()
    disarm(reply.fileno())
    try:
        client.send_message(reply, {"exit": status, "detached": True})
    except OSError:
        pass
    reply.close()


def run_cli(argv: list[str]) -> int:
    try:
        from mrun.cli.main import main as cli_main

        return cli_main(argv)
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)


class stop:  # noqa: N801 - a namespace for the two flags below
    """SIGTERM ends the template where that is safe: while it waits for a caller. Raised anywhere
    else, SystemExit can be swallowed: in a fork's after-fork hooks (logging's lock release, as
    the template forks its spare) it was printed as "Exception ignored" and the template served
    on. Elsewhere it is noted, and the loop leaves before its next wait."""

    safe = False
    pending = False


def on_sigterm(_signum: int, _frame: Any) -> None:
    if stop.safe:
        raise SystemExit(0)
    stop.pending = True


def run_shim(argv: list[str]) -> int:
    from mrun.shims.main import main as shim_main

    return shim_main(argv)


def native_refusal(argv: list[str], pid: int, births: bool = False, notifying: bool = False) -> str | None:
    """Why a native launcher's ``mrun`` call is not served here, or None. Served: what the Python
    client hands over (``warm_worthy``), help and usage errors (typer is loaded here), and the
    runc verbs that need not stay in their caller (``start``, ``state``, ``kill``, ``delete``...).
    A ``start`` under systemd's NOTIFY_SOCKET (``notifying``) is not: it passes the program's
    READY= on, and systemd takes a unit's notifications from its main process alone (the
    default NotifyAccess=main), the caller, not a child of ours.
    From another cgroup v2 cgroup than ours, only where the child can be born there (``births``,
    Template.fork): a move there (cgroup.procs) waits for an RCU grace period (5-15 ms), more
    than such a verb costs cold. A v1 move is the child's own thread-wise one
    (child.join_cgroups), which waits for nothing."""
    from mrun.cli.fastparse import ParseError, parse
    from mrun.cli.main import warm_worthy
    from mrun.warm.child import cgroup_moves

    try:
        _g, cmd, params = parse(argv)
    except ParseError:
        return None
    if warm_worthy(cmd, params, argv):
        return None
    if not warm_worthy(cmd, params, argv, native=True):
        return f"`{cmd.name}` runs in its caller, which may be the container's subreaper"
    if notifying and cmd.name == "start":
        return "`start` under NOTIFY_SOCKET: systemd takes notifications from its caller, not from a child of ours"
    if not births and any(not controllers for _hierarchy, controllers, _path in cgroup_moves(pid)):
        return f"`{cmd.name}` from another cgroup v2 cgroup than the template's: the move would cost more than the call"
    return None


def _birth_mount() -> str | None:
    """The cgroup2 hierarchy's mount point (v2, or a hybrid host's beside v1) where clone3 takes
    CLONE_INTO_CGROUP (Linux 5.7, no seccomp filter in the way), else None: a child for a caller
    in another cgroup2 cgroup then moves there, as before."""
    from mrun.kernel import syscalls as sc
    from mrun.warm.child import cgroup_mounts

    try:
        return cgroup_mounts().get("") if sc.clone_into_cgroup_works() else None
    except OSError:
        return None


def _fork_born(cgroup: str) -> int:
    """os.fork(), the child born in the cgroup2 cgroup ``cgroup`` (a directory) where the kernel
    lets it; else (gone meanwhile, refused) a plain fork, whose child moves there as before."""
    from mrun.kernel import syscalls as sc

    try:
        pid = sc.fork_into_cgroup_at(cgroup)
    except OSError:
        pid = None
    return os.fork() if pid is None else pid


def _await_job(pair: socket.socket) -> tuple[socket.socket, dict[str, Any], list[int], int] | None:
    """In the spare: the caller the template hands over (its connection and descriptors, its
    request, its pid), or None once the template closes the pair."""
    fds, _sender = _recv_fds(pair)
    job = client.recv_message(pair) if fds else None
    if not fds or job is None:
        for fd in fds or ():
            os.close(fd)
        return None
    return socket.socket(fileno=fds[0]), job["msg"], fds[1:], job["peer"]


def _recv_fds(conn: socket.socket) -> tuple[list[int] | None, int | None]:
    """The caller's descriptors: one message of SCM_RIGHTS (and a byte to carry them), and the
    pid the kernel stamped on it (SCM_CREDENTIALS, with SO_PASSCRED on): who sent it, not who
    connected."""
    import struct

    from mrun.kernel import fdpass

    space = fdpass.space(client.MAX_FDS) + socket.CMSG_SPACE(struct.calcsize("3i"))
    data, anc, _flags, _addr = conn.recvmsg(1, space)
    sender = None
    for level, kind, payload in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS and len(payload) >= 12:
            sender = struct.unpack("3i", payload[:12])[0]
    received = fdpass.received(anc)
    for fd in received:
        os.set_inheritable(fd, False)
    if data != b"F":
        for fd in received:
            os.close(fd)
        return None, sender
    return received, sender


def _own_session_keyring() -> bool:
    """A new, empty session keyring for the template, and so for every child it forks. Keyrings
    are not namespaced and the session keyring passes down fork and exec: the template had its
    first caller's (a login's, holding its keys), and whoever it served next possessed them, as
    did the runtimes and hooks those children ran. A cold process has its own caller's; a warm
    one now has none of anybody's (a container's process gets a keyring of its own either way).
    A kernel without keyrings: nothing to leak. -> False: none could be made; serving would hand
    on the one we have, so the callers run cold."""
    import errno

    from mrun.kernel import syscalls as sc

    try:
        sc.join_session_keyring(None)
    except OSError as e:
        if e.errno != errno.ENOSYS:
            log(f"cannot make a session keyring of its own ({e.strerror}), and would pass on its caller's: leaving")
            return False
    return True


def main() -> None:
    """Serve, then end without the interpreter's teardown: the engine's finalizers then run
    against a half-torn-down wasmtime module (a traceback in the log at every exit)."""
    from mrun.exiting import finish

    try:
        _main()
    except BaseException:  # noqa: BLE001 - said in the log, as the interpreter would have said it
        import traceback

        traceback.print_exc()
        finish(1)
    finish(0)


def _main() -> None:
    path = sys.argv[1]
    from mrun.kernel.proc import rewrite_area

    rewrite_area("arg", os.fsencode(f"mrun-warm-template\0{path}"))  # over the room left for children's
    os.environ.pop(client.ROOM_VARIABLE, None)
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    os.chmod(os.path.dirname(path), 0o700)
    from mrun.warm import peer

    if peer.under_seccomp():  # it could serve nobody (peer.mismatch): leave the path to one that can
        log("started under a seccomp filter, which would serve no caller: leaving")
        return
    lock_fd = take_lock(path)
    if lock_fd is None:
        return  # another template serves this path
    if not _own_session_keyring():
        return
    from mrun.warm.fingerprint import Fingerprint

    t0 = time.monotonic()
    code = Fingerprint()
    backends = preload()
    freeze(collect=True)
    signal.signal(signal.SIGCHLD, reap_children)
    signal.signal(signal.SIGTERM, on_sigterm)
    template = Template(path, listen(path), lock_fd, code, backends, sys.argv[2] if len(sys.argv) > 2 else "")
    with open(path[: -len(".sock")] + ".pid", "w") as f:
        f.write(str(os.getpid()))
    log(f"serving {path} (loaded in {time.monotonic() - t0:.2f} s, code {template.digest[:12]})")
    from mrun import knobs

    idle = knobs.seconds("MRUN_WARM_IDLE", IDLE_EXIT)
    try:
        template.serve(idle)
    except SystemExit:
        log("stopped")
        template.leave()

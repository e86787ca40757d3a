"""``containerd-shim-mrun-v2``: the binary containerd runs for ``--runtime io.containerd.mrun.v2``.

``start`` starts (or, for a pod, finds) the shim daemon and prints its ``unix://`` address; the
daemon is forked by the warm template (``mrun.warm``) when one serves, so it starts with every
import done, else here;
``delete`` is containerd's idempotent cleanup after a shim is gone. Flags arrive Go-style
(``-namespace ns -address a -id x``).

Both actions are on the critical path of every ``ctr run``: containerd waits for ``start`` to
exit before it sends Create, and for ``delete`` before ``ctr run --rm`` returns. So neither
imports protobuf or the core before it must; the daemon does its imports after the fork.
"""

from __future__ import annotations

import _socket
import os
import sys
import time

from mrun import annotations as ann
from mrun import trace
from mrun.shims import wire
from mrun.umask import OWN as OWN_FILES
from mrun.umask import own_files

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

SOCKET_DIR = "/run/mrun-shim"  # where containerd names none (1.6, 1.7, or 2.3 without socket_dir)
PROTOCOL_VERSION = 3
UNCALLED_EXIT = 60.0  # seconds a new daemon waits for containerd's first call ($MRUN_SHIM_UNCALLED_EXIT)
GROUP_ANNOTATIONS = (ann.CRI_SANDBOX_ID, ann.RUNC_GROUP)


BOOLEAN_FLAGS = ("debug", "v", "info")  # the flags that take no value (bin/launcher.c reads argv alike)


def parse(argv: list[str]) -> tuple[dict[str, str], str]:
    flags: dict[str, str] = {}
    action = ""
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("-"):
            name, eq, value = arg.lstrip("-").partition("=")
            if name in BOOLEAN_FLAGS:
                flags[name] = "true"
            elif eq:
                flags[name] = value
            else:
                i += 1
                flags[name] = argv[i] if i < len(argv) else ""
        else:
            action = arg
        i += 1
    return flags, action


def _root(namespace: str, env: Any = None) -> str:
    """Where the daemons of containerd's ``namespace`` keep their containers' state; ``env``: the
    caller's environment, when not ours (the warm template's answer for a caller)."""
    from mrun.shims.info import DEFAULT_STATE_ROOT

    return os.path.join((os.environ if env is None else env).get("MRUN_SHIM_ROOT", DEFAULT_STATE_ROOT), namespace)


def _sha256(data: bytes) -> str:
    """The builtin module, not hashlib: hashlib loads OpenSSL (2 ms, every ``start``)."""
    try:
        from _sha256 import sha256  # CPython 3.11
    except ImportError:
        try:
            from _sha2 import sha256  # CPython 3.12 and later
        except ImportError:
            from hashlib import sha256
    return sha256(data).hexdigest()


def _read_regular(path: str, limit: int) -> bytes:
    """A regular file's bytes, at most ``limit``: opened without waiting (a fifo put there would
    hold its reader until a writer came; the warm template reads these files for callers)."""
    import stat

    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{path} is not a regular file")
        chunks, size = [], 0
        while size <= limit and (chunk := os.read(fd, limit + 1 - size)):
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:
            raise OSError(f"{path} is larger than {limit} bytes")
        return b"".join(chunks)
    finally:
        os.close(fd)


CONFIG_LIMIT = 16 << 20  # bytes of a bundle's config.json that ``start`` reads for its pod annotations


def _group(bundle: str) -> str | None:
    """The pod the bundle's container belongs to (GROUP_ANNOTATIONS), or None: a shim of its own."""
    from mrun import jsonio

    try:
        config = jsonio.loads(_read_regular(os.path.join(bundle, "config.json"), CONFIG_LIMIT))
        annotations = config.get("annotations") or {}
        return next((annotations[a] for a in GROUP_ANNOTATIONS if annotations.get(a)), None)
    except (OSError, ValueError, AttributeError):
        return None


def _socket_path(flags: dict[str, str], group: str | None, socket_dir: str) -> str:
    key = f"{flags.get('address', '')}/{flags.get('namespace', '')}/{group or flags.get('id', '')}"
    return os.path.join(socket_dir, _sha256(key.encode())[:32] + ".sock")


def listen(path: str) -> _socket.socket:
    """A listening unix socket at ``path`` (replacing a stale one), owner-only.

    A bare ``_socket.socket``: importing ``socket`` costs ``start`` 17 ms (enum, selectors).
    Wrap it with ``socket.socket(fileno=sock.detach())`` where the full API is needed."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    sock.bind(path)
    os.chmod(path, 0o600)
    sock.listen(64)
    return sock


def _answers(path: str, wait: bool = True) -> bool:
    """Someone listens at ``path``. Without ``wait``, a listener whose queue is full counts as none."""
    s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        s.setblocking(wait)
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


def read_bootstrap(flags: dict[str, str]) -> dict[str, str] | None:
    """containerd 2.3's BootstrapParams from stdin, or None for an older containerd.

    containerd 1.6/1.7 send nothing or the runtime options (a protobuf Any, fields 1 and 2 as
    here), so the params are recognised by what only they carry: this call's own id and namespace.
    The warm template may have read stdin already (``client.stdin_read``): that is used first."""
    import mrun.warm.client as warm_client

    data, eof = warm_client.stdin_read or (b"", False)
    if os.isatty(0) and not data:
        return None
    chunks = [data]
    while not eof and (chunk := os.read(0, 65536)):
        chunks.append(chunk)
    return parse_bootstrap(flags, b"".join(chunks))


def parse_bootstrap(flags: dict[str, str], data: bytes) -> dict[str, str] | None:
    try:
        parsed = wire.fields(data)
    except ValueError:
        return None
    params: dict[str, str] = {}
    for number, value in parsed:
        name = BOOTSTRAP_FIELDS.get(number)
        if name and isinstance(value, bytes):
            try:
                params[name] = value.decode()
            except UnicodeDecodeError:
                return None
    if params.get("id") != flags.get("id") or params.get("namespace") != flags.get("namespace"):
        return None
    return params


# BootstrapParams field numbers (proto/bootstrap.proto) -> our flag names
BOOTSTRAP_FIELDS = {1: "id", 2: "namespace", 5: "ttrpc_address", 6: "address", 9: "socket_dir"}


def _start_config(
    flags: dict[str, str], env: Any, bootstrap: dict[str, str] | None
) -> tuple[dict[str, str], str]:
    """-> (the daemon's config, the directory of its socket). Raises ValueError for a bad socket_dir."""
    config = {**flags, "ttrpc_address": env.get("TTRPC_ADDRESS", "")}
    socket_dir = SOCKET_DIR
    if bootstrap is not None:
        config.update(bootstrap)
        socket_dir = bootstrap.get("socket_dir") or SOCKET_DIR
        if not os.path.isabs(socket_dir):
            raise ValueError(f"containerd-shim-mrun-v2: socket_dir {socket_dir!r} is not an absolute path")
    return config, socket_dir


def _start_answer(address: str, bootstrap: dict[str, str] | None) -> bytes:
    if bootstrap is None:  # containerd 1.6/1.7: the bare address means protocol version 2
        return address.encode()
    # a BootstrapResult: protocol 3 (containerd.task.v3.Task and the sandbox service)
    return wire.field(1, PROTOCOL_VERSION) + wire.field(2, address) + wire.field(3, "ttrpc")


def start(flags: dict[str, str]) -> int:
    began = time.monotonic_ns()
    bundle = flags.get("bundle") or os.getcwd()
    bootstrap = read_bootstrap(flags)
    try:
        config, socket_dir = _start_config(flags, os.environ, bootstrap)
    except ValueError as e:
        print(e, file=sys.stderr)
        return 1
    group = _group(bundle)
    path = _socket_path(config, group, socket_dir)
    config["grouped"] = "1" if group else ""  # the daemon's containers will be a pod's: more creates come
    address = f"unix://{path}"
    import mrun.warm.client as warm_client

    # The address first, before the socket exists: a start killed after making the socket leaves
    # a file that names it, and containerd's `delete` (which finds it there) removes it.
    try:
        _write_address(address, os.path.join(bundle, "address"))
    except OSError as e:
        print(f"containerd-shim-mrun-v2: cannot write {os.path.join(bundle, 'address')}: {e.strerror}",
              file=sys.stderr)
        return 1
    in_place = None
    if not _answers(path):  # else: one shim per pod, already running
        os.makedirs(socket_dir, mode=0o711, exist_ok=True)
        listener = listen(path)
        if warm_client.release is not None:  # served by the warm template: this process becomes the daemon
            in_place = listener
        else:
            if not _daemon_from_template(listener, config, bundle, path) and os.fork() == 0:
                os.setsid()
                _daemon(listener, config, bundle, path)
            listener.close()
    sys.stdout.flush()
    os.write(1, _start_answer(address, bootstrap))
    trace.since("shim start", began)  # answered: the daemon this process may become is not start's
    if in_place is not None:
        # What a fork would have been, without the fork of a process this size (2 ms) and the
        # wait for this one's end (its address space torn down: 1.5 ms): its caller is let go
        # with status 0 once the standard streams are containerd's no more. Session: become's.
        _daemon(in_place, config, bundle, path, on_ready=lambda: warm_client.release(0))
    return 0


def joined_pod(argv: list[str], env: Any, stdin: bytes | None, bundle_fd: int, umask: int) -> bytes | None:
    """``start`` for a task of a pod whose shim already runs, done by the warm template for the
    caller: ``stdin`` (all of it) and the bundle (a directory descriptor) are the caller's. The
    address file is written and what ``start`` prints is returned; None (having written nothing)
    when ``start`` has a daemon to make, or anything else to say: a child does that as before."""
    flags, action = parse(argv)
    if action != "start" or flags.get("v") or flags.get("info") or flags.get("bundle"):
        return None
    bootstrap = parse_bootstrap(flags, stdin) if stdin is not None else None
    try:
        config, socket_dir = _start_config(flags, env, bootstrap)
    except ValueError:
        return None
    path = _socket_path(config, _group(f"/proc/self/fd/{bundle_fd}"), socket_dir)
    if not _answers(path, wait=False):
        return None
    address = f"unix://{path}"
    mask = os.umask(umask | OWN_FILES)  # the caller's, as its own start would have (mrun.umask)
    try:
        _write_address(address, "address", dir_fd=bundle_fd)
    except OSError:
        return None
    finally:
        os.umask(mask)
    return _start_answer(address, bootstrap)


def _write_address(address: str, path: str, dir_fd: int | None = None) -> None:
    """The bundle's ``address`` file (containerd reads it back after a restart). Without waiting:
    a fifo there, with nobody reading it, fails the call instead of holding it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NONBLOCK | os.O_CLOEXEC, 0o666, dir_fd=dir_fd)
    try:
        os.write(fd, address.encode())
    finally:
        os.close(fd)


def _daemon_from_template(listener: _socket.socket, config: dict[str, str], bundle: str, path: str) -> bool:
    """The daemon forked by the warm template, which has imported everything it needs: as a fork
    of this process would be (command line, environment, cgroup, a session of its own), but
    ready to serve at once. -> False: fork it here."""
    from mrun.warm.client import spawn

    extra = {"config": config, "bundle": bundle, "path": path, "listener": listener.fileno()}
    return spawn("shim-daemon", [0, 1, 2, listener.fileno()], extra) is not None


def daemon_from(msg: dict) -> None:
    """In the template's child, once it has become the caller: the daemon. Never returns."""
    listener = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM, fileno=msg["listener"])
    _daemon(listener, msg["config"], msg["bundle"], msg["path"])


def _daemon(
    listener: _socket.socket, config: dict[str, str], bundle: str, path: str, on_ready: Any = None
) -> None:
    """The long-lived shim. containerd reads start's output until EOF: let go of its pipes first.
    ``on_ready``: called then, before what is not ours is closed (a served start's release)."""
    devnull = os.open(os.devnull, os.O_RDWR)
    try:
        log = os.open(os.path.join(bundle, "log"), os.O_WRONLY | os.O_NONBLOCK)
    except OSError:
        log = devnull
    sys.stdout.flush()
    os.dup2(devnull, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    if on_ready is not None:
        on_ready()
    _close_all_but(listener.fileno())  # what start's caller passed on, and a warm template's reply socket
    import socket

    from mrun.kernel import syscalls as sc
    from mrun.shims import spawner

    listener = socket.socket(fileno=listener.detach())
    sc.prctl(sc.PR_SET_CHILD_SUBREAPER, 1)
    _one_above_containerd()
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    helper = os.fork()
    if helper == 0:  # the fork helper: forked now, while we are still single-threaded
        ours.close()
        listener.close()
        spawner.serve(theirs)  # its imports run on the other core while we do ours
    theirs.close()
    import threading

    from mrun.shims.events import Publisher
    from mrun.shims.sandbox import SandboxService
    from mrun.shims.service import TaskService
    from mrun.shims.ttrpc import Server, background

    namespace = config.get("namespace") or "default"
    ttrpc_address = config.get("ttrpc_address", "")
    publisher = Publisher(ttrpc_address, namespace) if ttrpc_address else None
    service = TaskService(namespace, _root(namespace), ours, publisher, grouped=config.get("grouped") == "1")
    service.helper_pids.add(helper)
    service.on_shutdown = lambda: _unlink(path)
    server = Server(on_last_disconnect=service.containerd_gone)
    service.register(server)
    SandboxService(service).register(server)
    # Serving first: containerd's Create is on its way (it connected as soon as start answered).
    background(server.serve, listener)
    background(service.reap_forever)
    # containerd connects right after start; a shim nobody ever calls (containerd died in
    # between) goes away instead of waiting forever.
    from mrun import knobs

    uncalled = knobs.seconds("MRUN_SHIM_UNCALLED_EXIT", UNCALLED_EXIT)
    if not service.shutdown_requested.wait(uncalled) and not server.calls:
        service.shut_down()
    service.shutdown_requested.wait()
    if publisher is not None:
        publisher.flush(3)  # the last exit and delete events reach containerd before we go
    threading.Event().wait(0.1)  # let the Shutdown reply leave
    os._exit(0)


def _one_above_containerd() -> None:
    """Our OOM score one above containerd's, as containerd's shims set theirs (its
    AdjustOOMScore): out of memory, the kernel takes a container, then its shim, before
    containerd. Ours is containerd's until now (start inherited it; a warm child took it on),
    and the containers, forked below, inherit it as a runc shim's do. Raising needs no privilege."""
    try:
        fd = os.open("/proc/self/oom_score_adj", os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return
    try:
        os.write(fd, str(min(int(os.read(fd, 16)) + 1, 1000)).encode())
    except (OSError, ValueError):
        pass
    finally:
        os.close(fd)


def _unlink(path: str) -> None:
    """Our socket goes the moment we are told to shut down: containerd's `delete` (run at once)
    and a `start` for the same group would otherwise meet a shim on its way out, and take it for a
    pod's live one."""
    try:
        os.unlink(path)
    except OSError:
        pass


def _close_all_but(keep: int) -> None:
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2 and fd != keep:
            try:
                os.close(fd)
            except OSError:
                pass


def delete(flags: dict[str, str]) -> int:
    """containerd's cleanup after every shim disconnect: idempotent, prints a DeleteResponse.

    containerd reads the response only while it still lists the task, i.e. when the daemon
    died with the task alive. Then the container's state is still here: it is deleted, and the
    answer is what runc's shim answers (137, now). When the daemon deleted the task itself
    (every normal run) nothing of it is left, and the answer is the empty DeleteResponse,
    without the 60 ms of importing protobuf and the core on ``ctr run --rm``'s critical path.
    """
    bundle = flags.get("bundle") or os.getcwd()
    rootfs = os.path.join(bundle, "rootfs")
    if not _remove_dead_socket(bundle) and _mounted(_pod_shm(bundle)):  # a pod's shim was killed
        from mrun.shims.pod_files import release

        release(bundle)
    if not _has_state(flags, os.environ) and not _mounted(rootfs):
        return 0
    from mrun.errors import MrunError
    from mrun.kernel.syscalls import unmount_all
    from mrun.runtime import Runtime

    runtime = Runtime(_root(flags.get("namespace", "default")))
    task = runtime.store.exists(flags.get("id", "")) or _mounted(rootfs)
    try:
        runtime.delete(flags.get("id", ""), force=True)  # it sweeps a killed create's half-made directory too
    except MrunError as e:
        print(f"mrun shim delete: {e}", file=sys.stderr)
    if not task:
        return 0  # only a killed create's half-made directory was left: nothing of the task
    unmount_all(rootfs)
    from mrun.shims.events import now
    from mrun.shims.proto import task_pb2

    sys.stdout.buffer.write(task_pb2.DeleteResponse(exit_status=137, exited_at=now()).SerializeToString())
    return 0


def delete_answer(argv: list[str], env: dict[str, str]) -> str | None:
    """What ``delete`` with these arguments (``-bundle`` named: containerd always names it) and this
    environment would write on stderr, when that is all it would do: no container state, the
    rootfs not mounted, and at the address either no socket of ours or one a live shim serves (a
    pod's, kept). That is every normal run's ``delete``, which the warm template then answers
    itself instead of forking a child for it. It only looks (the live shim's probe included):
    anything else, a dead shim's socket to remove or a probe that takes long, goes to ``delete``."""
    flags, action = parse(argv)
    bundle = flags.get("bundle", "")
    if action != "delete" or flags.get("v") or flags.get("info") or not os.path.isabs(bundle):
        return None
    if _has_state(flags, env) or _mounted(os.path.join(bundle, "rootfs")) or _mounted(_pod_shm(bundle)):
        return None
    path = _our_socket(bundle)
    if path is None:
        return ""
    return _kept(path) if _serving(path, timeout=QUICK_PROBE) else None


QUICK_PROBE = 0.05  # seconds the warm template waits for a pod shim's answer (``delete``: 0.5)


def _has_state(flags: dict[str, str], env: Any) -> bool:
    """The task's state directory, or one a create killed before it was in place left (the
    ``.making-`` of mrun.state.MAKING, not imported: its import is 2 ms of every ``delete``)."""
    root = _root(flags.get("namespace", "default"), env)
    if os.path.exists(os.path.join(root, flags.get("id", ""))):
        return True
    try:
        return any(name.startswith(".making-") for name in os.listdir(root))
    except OSError:
        return False


def _our_socket(bundle: str) -> str | None:
    """The socket the bundle's address file names, if it is one ``start`` made (its name is
    ours, and a socket is there): the address file is ours, but what it points at is checked."""
    import stat

    try:
        path = _read_regular(os.path.join(bundle, "address"), 4096).decode().strip().removeprefix("unix://")
        name = os.path.basename(path)
        ours = len(name) == 37 and name.endswith(".sock") and all(c in "0123456789abcdef" for c in name[:32])
        return path if ours and os.path.isabs(path) and stat.S_ISSOCK(os.lstat(path).st_mode) else None
    except (OSError, UnicodeDecodeError, ValueError):  # ValueError: a NUL in the path
        return None


def _remove_dead_socket(bundle: str) -> bool:
    """A killed daemon could not remove its socket; a live one (a pod's other tasks) keeps it.
    Only a socket named as ``start`` names them is removed, in whichever directory containerd gave.
    -> whether a live shim serves the bundle (what it holds is its own to undo)."""
    path = _our_socket(bundle)
    if path is None:
        return False
    if _serving(path):  # containerd logs this as a clean-up warning
        print(_kept(path), end="", file=sys.stderr)
        return True
    try:
        os.unlink(path)
    except OSError:
        pass
    return False


def _pod_shm(bundle: str) -> str:
    """Where a pod's shim mounts the pod's /dev/shm."""
    from mrun.shims.pod_files import shm_path

    return shm_path(bundle)


def _kept(path: str) -> str:
    return f"mrun shim delete: {path} is served by a live shim (a pod's other tasks): kept\n"


def _serving(path: str, timeout: float = 0.5) -> bool:
    """A shim answers a ttrpc call there. Not just ``_answers``: a daemon just killed can still
    take connections into its listen queue for a moment (seen here: containerd runs ``delete``
    the instant the connection drops), but nothing will ever read them."""
    import struct

    s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        s.settimeout(timeout)
        s.connect(path)
        request = wire.field(1, "containerd.task.v2.Task") + wire.field(2, "Connect")
        s.sendall(struct.pack(">IIBB", len(request), 1, 1, 0) + request)
        return len(s.recv(10)) > 0  # a response frame's header: someone served the call
    except OSError:  # refused, reset, or no answer in time
        return False
    finally:
        s.close()


def _mounted(path: str) -> bool:
    with open("/proc/self/mountinfo") as f:
        return any(line.split(" ", 5)[4] == path for line in f)


def main(argv: list[str] | None = None) -> int:
    own_files()
    flags, action = parse(sys.argv[1:] if argv is None else argv)
    if flags.get("v"):
        from mrun import __version__

        print(f"containerd-shim-mrun-v2 (mrun {__version__})")
        return 0
    if flags.get("info"):
        from mrun.shims.info import runtime_info

        os.write(1, runtime_info())
        return 0
    if action == "start":
        return start(flags)
    if action == "delete":
        return delete(flags)
    print(f"containerd-shim-mrun-v2: unknown action {action!r} (start or delete)", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())

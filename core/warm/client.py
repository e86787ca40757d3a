"""The caller's half of the warm template: hand the work over, relay signals, return its status.

Imported by every ``mrun`` verb and by ``containerd-shim-mrun-v2 start`` before anything else,
so it imports nothing of mrun's but ``jsonio`` and uses the bare ``_socket`` (``socket`` costs
17 ms: enum, selectors). ``run`` returns None whenever the caller should do the work itself:
warm start disabled (``MRUN_WARM=0``), not root, no template (one is started for next time), a
template that is stale or refuses this caller, or one that does not answer in time. It never
returns None once a child has taken the work: that work may be half done.
"""

from __future__ import annotations

import _socket
import os
import sys

import mrun
from mrun import jsonio

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

DEFAULT_DIR = "/run/mrun/.warm"  # a dot name: never taken for a container of the default state root
FIRST_ANSWER_TIMEOUT = 5.0  # seconds: a template that takes longer is treated as broken
EXIT_WAIT = 2.0  # seconds to wait for the child to be gone after it sent its exit status
MAX_FDS = 250  # SCM_RIGHTS carries at most 253 descriptors in one message
FORWARDED = ("SIGHUP", "SIGINT", "SIGQUIT", "SIGTERM", "SIGUSR1", "SIGUSR2", "SIGWINCH", "SIGCONT")
# -c puts "" (the working directory) first on sys.path: a child, once in its caller's working
# directory, would import from there whatever the template had not imported yet. The template
# puts the directory a cold launcher would have there instead (sys.argv[2]).
TEMPLATE_MAIN = (
    "import sys\n"
    "if sys.path[:1] == ['']:\n"
    "    sys.path[0] = sys.argv[2]\n"
    "from mrun.warm.template import main\n"
    "main()\n"
)
# Bytes of argument and environment area the template starts with: a child writes its caller's
# cmdline and environment there, so /proc/PID/cmdline and environ read as the caller's would.
AREA_ROOM = 16384
ROOM_VARIABLE = "MRUN_WARM_ROOM"

# Set in a child forked from the template: the code it runs must not ask the template again.
in_template_child = False
# In a served child, once it has taken the work: lets the caller go with an exit status while this
# process carries on (the shim's ``start`` becomes the daemon it would have forked). Else None.
release: Any = None
# In a served child: what the template already read of the caller's stdin, and whether that was
# all of it (to EOF), when it looked at a shim ``start`` it could not answer itself. Else None.
stdin_read: Any = None
# In a child doing its caller's work (the template's, or a cold foreground run's: cli.cold_child):
# set by work that must see its end though its caller is killed (a foreground `mrun run`, once its
# container runs: its exit code is noted for `wait`, `ps` and `inspect`, and a --rm container
# removed, as docker's daemon does whoever waits). Until then the caller's death takes the child
# along, as it would have taken the caller's own work. Read by kernel.hangup.die_with_caller.
outlive_caller = False
# In a child doing its caller's work: the caller's pid. Its terminal's job control is the
# caller's, and a relay of that terminal in our session of our own does it for the caller.
caller = 0
# Called once the caller has gone, in a child that outlives it: a `run -t`'s terminal relay lets
# the caller's terminal go (console.TerminalProxy.let_go).
when_caller_gone: list[Any] = []
# Set by the Python launchers from MRUN_LAUNCHER, which the native launcher (bin/launcher.c) sets
# when it runs one: "asked" (the template was asked and did not serve) or "link:<key>" (no
# template answered at the native launcher's link: make it and start one, for a call a template
# would serve). Either way this process does not ask: the native launcher did, or found none.
launcher: str | None = None
_started_template = False  # this process started one: a second would only wait for its lock


def outliving() -> bool:
    """kernel.hangup.die_with_caller's question, asked when the caller has gone: does the work go
    on (``outlive_caller``)? If it does, what must know of the caller's end learns it now."""
    if outlive_caller:
        for hook in when_caller_gone:
            hook()
    return outlive_caller


def enabled() -> bool:
    return not in_template_child and os.environ.get("MRUN_WARM", "1") != "0" and os.geteuid() == 0


def from_launcher(value: str) -> None:
    """What the native launcher said, from the Python launcher it ran (``launcher``)."""
    global launcher
    launcher = value


def link_native() -> None:
    """For "link:<key>" (``launcher``): the link the native launcher looks for,
    ``native-<key>.sock`` beside this installation's template socket, is made to point at that
    socket, and a template is started if none answers there. Called only where a template is
    wanted: a call it would serve (a runc verb too: cli.main._template_for_next_time). Never for
    ``create``, ``state`` or ``delete``: their caller's cgroup (conmon's, one per container) may be
    removed after it, and a template started there would keep it busy."""
    key = (launcher or "").removeprefix("link:")
    if key == launcher or len(key) != 8 or any(c not in "0123456789abcdef" for c in key):
        return
    if not enabled() or _under_seccomp():  # a template it started would serve nobody
        return
    try:
        path = socket_path()
    except OSError:  # no /proc: no template could serve this caller, so none is started for it
        return
    link = os.path.join(os.path.dirname(path), f"native-{key}.sock")
    try:
        if os.readlink(link) != os.path.basename(path):
            raise FileNotFoundError
    except OSError:
        made = f"{link}.{os.getpid()}"
        try:
            os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
            if os.path.lexists(made):  # a crashed predecessor with our pid left it
                os.unlink(made)
            os.symlink(os.path.basename(path), made)
            os.replace(made, link)
        except OSError:
            return
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
    try:
        sock.connect(path)
    except OSError:
        _start_once(path)
    finally:
        sock.close()


def _start_once(path: str) -> None:
    global _started_template
    if not _started_template:
        _started_template = True
        start_template(path)


def identity() -> dict[str, Any]:
    """What decides which code a fresh interpreter would run, and how: a template whose identity
    differs from its caller's must not serve it. sys.path[0] is the script's own directory."""
    env = {k: v for k, v in sorted(os.environ.items()) if k.startswith(("PYTHON", "LC_")) or k == "LANG"}
    return {
        "version": sys.version,
        "executable": sys.executable,
        "path": sys.path[1:],
        "package": os.path.dirname(os.path.abspath(mrun.__file__)),  # this mrun, not one found elsewhere
        "flags": list(sys.flags),
        "xoptions": {k: str(v) for k, v in sys._xoptions.items()},
        "fs_encoding": [sys.getfilesystemencoding(), sys.getfilesystemencodeerrors()],
        "env": env,
    }


def socket_path(ident: dict[str, Any] | None = None) -> str:
    """One template per installation and caller context: the name is a checksum of the identity
    and of what the template compares of its callers (peer.routing; it compares all of it
    anyway, so a collision only means a cold start). OSError: our context cannot be read (no
    /proc), and no template could serve us."""
    import zlib

    from mrun.warm.peer import routing

    text = jsonio.dumps(ident or identity()) + routing()
    directory = os.path.abspath(os.environ.get("MRUN_WARM_DIR") or DEFAULT_DIR)  # (the template works in /)
    return os.path.join(directory, f"template-{zlib.crc32(text.encode()):08x}.sock")


def send_message(sock: Any, msg: dict[str, Any]) -> None:
    data = jsonio.dumps(msg).encode()
    sock.sendall(len(data).to_bytes(4, "big") + data)


def send_fds(sock: Any, fds: list[int]) -> None:
    """Descriptors (SCM_RIGHTS) on one byte, as the template's _recv_fds expects."""
    anc = [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, b"".join(fd.to_bytes(4, sys.byteorder) for fd in fds))]
    sock.sendmsg([b"F"], anc if fds else [])


MAX_MESSAGE = 16 << 20  # a request carries argv and environment (ARG_MAX is 2 MiB): far more is no request


def recv_message(sock: Any) -> dict[str, Any] | None:
    """One length-prefixed JSON message; None at EOF, or for bytes that are no message (a length
    past MAX_MESSAGE was one recv() buffer that size: 4 GiB of the template's address space)."""
    head = _read(sock, 4)
    if head is None or int.from_bytes(head, "big") > MAX_MESSAGE:
        return None
    body = _read(sock, int.from_bytes(head, "big"))
    if body is None:
        return None
    try:
        msg = jsonio.loads(body)
    except ValueError:
        return None
    return msg if isinstance(msg, dict) else None


def _read(sock: Any, size: int) -> bytes | None:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(min(size - len(data), 1 << 20))
        if not chunk:
            return None
        data += chunk
    return bytes(data)


def _under_seccomp() -> bool:
    """A template started from here would inherit our filter and serve nobody (warm.peer)."""
    from mrun.warm.peer import under_seccomp

    return under_seccomp()


def _inherited_fds(exclude: int) -> list[int]:
    """0, 1, 2 and every descriptor an exec'd process would inherit (not close-on-exec)."""
    fds = []
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd == exclude:
            continue
        try:
            if fd <= 2 or os.get_inheritable(fd):
                fds.append(fd)
        except OSError:  # the directory's own descriptor, closed by now
            continue
    return sorted(fds)


def _stream(stream: Any) -> list[str] | None:
    return [stream.encoding, stream.errors] if stream is not None and hasattr(stream, "encoding") else None


def run(kind: str, argv: list[str]) -> int | None:
    """Have the template do ``kind`` ("cli") for ``argv`` as this process would.
    -> the exit status, or None: do it here (cold)."""
    pid, sock, unheld = _hand_over(kind, argv, None, {})
    if pid is None:
        return None
    try:
        return _wait(sock, pid, unheld)
    finally:
        sock.close()


def spawn(kind: str, fds: list[int], extra: dict[str, Any]) -> int | None:
    """Have the template fork a long-lived process of ``kind`` ("shim-daemon") that gets ``fds``
    (at their numbers here) and ``extra``, as a fork of this process would. -> its pid, or None:
    fork it here. Nothing is waited for: it outlives us."""
    import _signal as signal

    pid, sock, unheld = _hand_over(kind, sys.argv[1:], fds, extra)
    if sock is not None:
        sock.close()
        signal.pthread_sigmask(signal.SIG_SETMASK, unheld)  # it is on its own: ours are ours again
    return pid


def _hand_over(
    kind: str, argv: list[str], fds: list[int] | None, extra: dict[str, Any]
) -> tuple[int | None, Any, set[int]]:
    """-> (the child's pid, the connection, the signal mask to restore once the relay is in
    place) once a child took the work, else (None, None, the mask). Our FORWARDED signals are
    held from the request on: one that came before the relay (``_wait``) ended us by its default
    action, lost to the work, and the child, which dies with its caller until its container runs,
    was cut off wherever it was. Where no child took the work they come when we return."""
    import _signal as signal

    if not enabled():
        return None, None, set()
    if launcher is not None:  # the native launcher ran us: it asked already, or found no template
        link_native()
        return None, None, set()
    ident = identity()
    try:
        path = socket_path(ident)
    except OSError:  # no /proc: a cold call, and no template started for a caller none could serve
        return None, None, set()
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
    try:
        sock.connect(path)
    except OSError as e:
        sock.close()
        if e.errno in (2, 111) and not _under_seccomp():  # ENOENT, ECONNREFUSED: none, or a dead one's socket
            _start_once(path)
        return None, None, set()
    if not served_by_root(sock):  # a socket someone else serves there gets nothing of ours
        sock.close()
        if os.environ.get("MRUN_WARM_DEBUG"):
            print("mrun: warm: cold because the template's socket is not served by root", file=sys.stderr)
        return None, None, set()
    unheld = signal.pthread_sigmask(signal.SIG_BLOCK, forwarded_signals())
    try:
        pid = _ask(sock, kind, argv, ident, path, fds, extra)
    except (OSError, ValueError):  # the template broke before a child took the work
        pid = None
    if pid is None:
        sock.close()
        signal.pthread_sigmask(signal.SIG_SETMASK, unheld)
        return None, None, unheld
    return pid, sock, unheld


def served_by_root(sock: Any) -> bool:
    """Whether the process at the other end of ``sock`` runs as root (SO_PEERCRED's uid): the
    request carries the caller's environment, and its descriptors follow."""
    from mrun.warm.peer import credentials

    try:
        return credentials(sock)[1] == 0
    except OSError:
        return False


def _ask(
    sock: Any, kind: str, argv: list[str], ident: dict[str, Any], path: str, fds: list[int] | None,
    extra: dict[str, Any],
) -> int | None:
    if fds is None:
        fds = _inherited_fds(sock.fileno())
    if len(fds) >= MAX_FDS:
        return None
    # Where we are, as a descriptor: a path can come to name another directory before the
    # child looks it up (a mount over it, a rename), and relative paths would resolve there.
    cwd = os.open(".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        return _send_request(sock, kind, argv, ident, path, fds, cwd, extra)
    finally:
        os.close(cwd)


def _send_request(
    sock: Any, kind: str, argv: list[str], ident: dict[str, Any], path: str, fds: list[int], cwd: int,
    extra: dict[str, Any],
) -> int | None:
    from mrun import umask
    from mrun.warm.peer import kept_state

    mask = umask.callers()  # the caller's own, not the one mrun works under
    with open("/proc/self/cmdline", "rb") as f:
        cmdline = f.read()
    with open("/proc/self/comm", "rb") as f:
        comm = f.read().rstrip(b"\n")
    msg = {
        "kind": kind,
        "argv": [sys.argv[0], *argv],
        "cmdline": cmdline.decode("latin-1"),
        "comm": comm.decode("latin-1"),
        "env": dict(os.environ),
        "script_dir": script_dir(),
        "umask": mask,
        "kept": kept_state(),
        "fds": fds,
        "stdio": [_stream(sys.stdin), _stream(sys.stdout), _stream(sys.stderr)],
        "identity": ident,
        **extra,
    }
    sys.stdout.flush()
    sys.stderr.flush()
    sock.settimeout(FIRST_ANSWER_TIMEOUT)
    try:
        send_message(sock, msg)
        first = recv_message(sock)
        if first is not None and first.get("send") == "fds":
            send_fds(sock, [*fds, cwd])
            first = recv_message(sock)
    except TimeoutError:
        return None
    if first is None or "pid" not in first:
        if first is not None and first.get("stale"):
            start_template(path)  # it has gone; the next call finds new code warm
        if first is not None and os.environ.get("MRUN_WARM_DEBUG"):
            print(f"mrun: warm: cold because {first.get('cold') or first.get('error')}", file=sys.stderr)
        return None
    sock.settimeout(None)
    return int(first["pid"])


def _wait(sock: Any, pid: int, unheld: set[int]) -> int:
    """Relay our signals to the child until it reports its exit status; those held since the
    request (``_hand_over``) are passed on once the relay is in place."""
    import _signal as signal  # the C module: `signal` would import enum (3 ms) for the same calls

    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        pidfd = -1
    received: list[int] = []
    previous = relay_signals(pidfd, received)
    signal.pthread_sigmask(signal.SIG_SETMASK, unheld)
    try:
        last = recv_message(sock)
        if pidfd >= 0 and not (last or {}).get("detached"):  # and gone, as a cold command is when it returns
            import select

            select.select([pidfd], [], [], EXIT_WAIT)
    finally:
        restore_signals(previous)
        if pidfd >= 0:
            os.close(pidfd)
    if last is not None and isinstance(last.get("exit"), int):
        return last["exit"]
    fatal = [s for s in received if s not in (signal.SIGWINCH, signal.SIGCONT)]
    if fatal:  # it died of a signal we passed on, as we would have
        die_of(fatal[-1])
    print("mrun: the process that ran this command ended without an exit status", file=sys.stderr)
    return 255


def relay_signals(pidfd: int, received: list[int] | None = None) -> dict[int, Any]:
    """Our FORWARDED signals passed on to the process ``pidfd`` (none where it is -1), each noted
    in ``received``, until ``restore_signals`` of what this returns: the work's process, which
    does what our caller asked of us (the template's child, a cold run's: cli.cold_child)."""
    import _signal as signal

    def relay(signum: int, _frame: object) -> None:
        if received is not None:
            received.append(signum)
        if pidfd >= 0:
            try:
                signal.pidfd_send_signal(pidfd, signum)
            except OSError:
                pass  # it has ended: its status is what we return

    return {sig: signal.signal(sig, relay) for sig in forwarded_signals()}


def forwarded_signals() -> list[int]:
    import _signal as signal

    return [getattr(signal, name) for name in FORWARDED]


def restore_signals(previous: dict[int, Any]) -> None:
    import _signal as signal

    for sig, handler in previous.items():
        signal.signal(sig, handler)


def die_of(sig: int) -> None:
    """End as the work's process ended, of ``sig`` (one we passed on), as it would have ended us."""
    import _signal as signal

    signal.signal(sig, signal.SIG_DFL)
    os.kill(os.getpid(), sig)


def status(path: str | None = None) -> dict[str, Any] | None:
    """The template's own account (pid, callers served, code digest), or None if none answers."""
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
    try:
        sock.settimeout(FIRST_ANSWER_TIMEOUT)
        sock.connect(path or socket_path())
        send_message(sock, {"kind": "status"})
        return recv_message(sock)
    except OSError:
        return None
    finally:
        sock.close()


def interpreter_flags() -> list[str]:
    """Command-line options that give a new interpreter this one's sys.flags and -X options (the
    identity compares both), without subprocess's helper (importing subprocess costs ~5 ms)."""
    f = sys.flags
    args = [opt for name, opt in (("isolated", "-I"), ("ignore_environment", "-E"), ("no_user_site", "-s"),
                                  ("no_site", "-S"), ("dont_write_bytecode", "-B"), ("safe_path", "-P"),
                                  ("quiet", "-q")) if getattr(f, name, 0)]
    args += ["-" + "O" * f.optimize] if f.optimize else []
    args += ["-" + "b" * f.bytes_warning] if f.bytes_warning else []
    args += ["-" + "v" * f.verbose] if f.verbose else []
    args += [f"-W{w}" for w in sys.warnoptions]
    for key, value in sys._xoptions.items():
        args.append(f"-X{key}" if value is True else f"-X{key}={value}")
    return args


def script_dir() -> str:
    """sys.path[0] as a cold launcher has it (its script's directory), made absolute: never "",
    which would mean whatever directory the process is in when it imports."""
    first = sys.path[0] if sys.path else ""
    return first if os.path.isabs(first) else os.path.dirname(os.path.abspath(sys.executable))


def start_template(path: str) -> None:
    """Start a template for next time, detached (a grandchild in a session of its own): it takes
    a lock first, so of several started at once all but one exit at once. Returns once it has
    exec'd: until then it is a copy of this process, command line and all."""
    pid = os.fork()
    if pid:
        os.waitpid(pid, 0)
        return
    try:
        os.setsid()
        execed_r, execed_w = os.pipe()  # both close-on-exec: EOF on the read end once it exec'd
        if os.fork() == 0:
            os.close(execed_r)
            os.chdir("/")
            null = os.open(os.devnull, os.O_RDWR)
            os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
            log = os.open(path[: -len(".sock")] + ".log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            os.dup2(null, 0)
            os.dup2(log, 1)
            os.dup2(log, 2)
            os.closerange(3, execed_w)
            os.closerange(execed_w + 1, 1 << 20)
            argv = [sys.executable, *interpreter_flags(), "-c", TEMPLATE_MAIN, path, script_dir(), "-" * AREA_ROOM]
            os.execve(sys.executable, argv, {**os.environ, ROOM_VARIABLE: "-" * AREA_ROOM})
        os.close(execed_w)
        os.read(execed_r, 1)
    finally:
        os._exit(0)

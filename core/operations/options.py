"""What a caller asks of create, exec and run beyond the bundle, and the stdio they share."""

from __future__ import annotations

import os

from mrun.errors import InvalidSpec, MrunError

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~6 ms (it imports re) on the lifecycle verbs' hot path
    from typing import Any


class CreateOptions:
    def __init__(
        self,
        pid_file: str = "",
        console_socket: str = "",
        preserve_fds: int = 0,
        no_pivot: bool = False,
        systemd_cgroup: bool = False,
        no_new_keyring: bool = False,
    ) -> None:
        self.pid_file, self.console_socket, self.preserve_fds = pid_file, console_socket, preserve_fds
        self.no_pivot, self.systemd_cgroup, self.no_new_keyring = no_pivot, systemd_cgroup, no_new_keyring
        self.console: Any = None  # an already connected console socket (foreground `run -t`)
        self.terminal_log: Any = None  # given each piece of that terminal's output too (its log)
        self.started: Any = None  # `run`: given the record once started (a foreground run keeps a copy)
        # A foreground `run -it`'s detach keys typed at that terminal (docker's ctrl-p ctrl-q), and
        # what then takes over: given the pty's master and the caller's status, it lets the caller
        # go; -> what the relay serves from then on (console.TerminalProxy's ``on_detach``), or None
        self.detach_keys = b""
        self.detach_said = b""  # written on our terminal once it is given back (`exec -it`'s words)
        self.on_detach: Any = None
        # `run --sig-proxy=false`: given a signal we get instead of the container (then none goes
        # on), and the relay of its terminal (console.TerminalProxy) where it has one, else None
        self.unproxied: Any = None
        # The operator's annotations over the bundle's (the shim's runtime options): they win
        self.annotations: dict[str, str] = {}
        # Given the bundle's config (a dict it may change) before a backend is chosen: the
        # caller's additions to it (the shim's pod: the files its containers share)
        self.amend_config: Any = None
        # `run`'s own pidfd: its init ends if `run` is gone before it starts it (no one else will)
        self.starter_pidfd = -1
        # runc's: the standard streams the process is handed are made its user's (ProcessPlan's
        # own_stdio). Off for docker's front end, which hands a container its caller's own files.
        self.own_stdio = True
        # systemd's NOTIFY_SOCKET as runc's create and run take it (notify_socket): the container
        # gets a socket of its own at /run/notify; a run's relay (its Relay) binds it
        self.notify_socket = ""
        self.notify_relay: Any = None

    def when_started(self, then: Any) -> None:
        """``then(record)`` too, once the container runs, after what ``started`` does already."""
        before = self.started
        if before is None:
            self.started = then
            return

        def both(record: Any) -> None:
            before(record)
            then(record)

        self.started = both


def write_pid_file(path: str, pid: int, flag: str = "--pid-file") -> None:
    """Atomically, as containerd's shim reads it the moment the command returns. The temporary
    file is made with O_EXCL, as runc's is: a pid file may be asked for in a directory others
    write (/tmp), and a link planted at the temporary name must fail the call, not be written
    through as root."""
    from mrun.kernel.replacing import check_replaceable

    path = os.path.abspath(path)
    check_replaceable(path, flag)
    if os.path.isdir(path) and not os.path.islink(path):  # before a temporary file is made beside it
        # (for "/", in /) only to fail; a link to a directory is replaced by the rename, as runc's is
        raise MrunError(f"{flag} {path}: Is a directory")
    tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
    except FileExistsError:
        raise MrunError(f"{flag} {path}: {tmp} exists (someone else's, or a write cut short: not ours to remove)")
    except OSError as e:
        raise MrunError(f"{flag} {path}: {tmp}: {e.strerror}")
    try:
        os.write(fd, str(pid).encode())
    finally:
        os.close(fd)
    try:
        os.rename(tmp, path)
    except OSError as e:
        os.unlink(tmp)
        raise MrunError(f"{flag} {path}: {e.strerror}")


def _close_extra_fds(preserve: int) -> None:
    """Inherited descriptors above 2 + --preserve-fds must not leak into the container."""
    first = 3 + preserve
    try:
        fds = [int(x) for x in os.listdir("/proc/self/fd")]
    except OSError:
        fds = list(range(first, 1024))
    for fd in fds:
        if fd >= first:
            try:
                os.set_inheritable(fd, False)
            except OSError:
                pass


def prepare_stdio(process: dict[str, Any], opts: CreateOptions) -> Any:
    """Connect the console socket now, before pivot_root hides its path, and keep stray
    descriptors out of the container. Returns the connected socket, or None."""
    console = opts.console
    if console is None and opts.console_socket:
        from mrun.sandbox.console import connect

        console = connect(opts.console_socket)
    elif console is None and process.get("terminal"):
        raise InvalidSpec("process.terminal: a terminal needs --console-socket to hand the pty to")
    if console is not None:
        import mrun.sandbox.console  # noqa: F401 - the sandbox makes the pty with it, after pivot_root
    _close_extra_fds(opts.preserve_fds)
    return console

"""systemd's notify socket, passed through a container as runc passes it.

A unit of ``Type=notify`` whose ExecStart is `runc run` (or `runc create`, then `runc start`) is
told its service is ready by the container's program, through the socket NOTIFY_SOCKET names.
The program cannot reach the host's socket (another root, another mount namespace), so:

- create binds a directory of the container's own state read-only at /run/notify and names
  /run/notify/notify.sock in the process's environment (``add_to_config``);
- run and start bind that socket before the program runs, and pass on the first ``READY=``
  line the program sends (``Relay``), then MAINPID (the init; a foreground run's own pid, as
  it stays the unit's main process), as runc 1.1 sends them, then a BARRIER, as runc 1.2 does
  (systemd's sd_notify_barrier): a run that returned the moment it had sent them could be gone
  before systemd read them, and systemd drops a message whose sender's cgroup it cannot find.
  Whatever else the program says is dropped, as runc drops it.

The socket module is imported only here, only when NOTIFY_SOCKET is set.
"""

from __future__ import annotations

import os
import sys

from mrun.errors import MrunError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

DIR = "notify"  # in the container's state directory: the socket's, bound at IN_CONTAINER
NAME = "notify.sock"
IN_CONTAINER = "/run/notify"
BARRIER_WAIT = 30.0  # runc's: a manager that never closes the barrier's pipe is warned of, then passed
POLL_EVERY = 0.1  # how often a wait looks at what it must not outlast (held stop signals)
DRAINED_AT_ONCE = 64  # datagrams read between two such looks


def add_to_config(config: dict[str, Any], state_dir: str) -> None:
    """The container's side, as runc's create makes it: the state's notify directory (made here)
    bound read-only (nosuid, noexec, nodev) at /run/notify after the bundle's own mounts, and
    NOTIFY_SOCKET appended to the process's environment. The config was checked already; a
    field of another shape is left for that check's words."""
    os.makedirs(os.path.join(state_dir, DIR), exist_ok=True)  # a restart's is made again
    os.chmod(os.path.join(state_dir, DIR), 0o755)  # whatever the caller's umask: the program may run as anyone
    mount = {"destination": IN_CONTAINER, "source": os.path.join(state_dir, DIR),
             "options": ["bind", "nosuid", "noexec", "nodev", "ro"]}
    if isinstance(config.get("mounts", []), list):
        config["mounts"] = [*config.get("mounts", []), mount]
    process = config.get("process")
    if isinstance(process, dict) and isinstance(process.get("env", []), list):
        process["env"] = [*process.get("env", []), f"NOTIFY_SOCKET={IN_CONTAINER}/{NAME}"]


class Listener:
    """The container's socket, bound in its state directory (/run/notify/notify.sock inside),
    where its program's READY= is read. Bound through a descriptor of its directory
    (/proc/self/fd/N/notify.sock): a state root deep enough to put the full path past the 108
    bytes of a socket address works, where runc's bind fails. On its own, a detached container's
    supervisor's (podman's --sdnotify=container with -d: its run passes READY=1 on)."""

    def __init__(self) -> None:
        import socket

        self._socket = socket
        self.server: Any = None

    def bind(self, state_dir: str, container_id: str) -> None:
        """The container's socket, open to every user in the container (0777, as runc's): its
        program may run as anyone. One a killed run or start left is replaced."""
        socket = self._socket
        try:
            directory = os.open(os.path.join(state_dir, DIR), os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            raise MrunError(f"NOTIFY_SOCKET: container {container_id!r} was created without it: its processes "
                            "have no socket to notify (create it with NOTIFY_SOCKET set, as runc needs)") from None
        server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        try:
            path = f"/proc/self/fd/{directory}/{NAME}"
            try:
                os.unlink(NAME, dir_fd=directory)  # a killed run's or start's
            except FileNotFoundError:
                pass
            server.bind(path)
            os.chmod(path, 0o777)
        except BaseException:
            server.close()
            raise
        finally:
            os.close(directory)
        self.server = server

    def ready_said(self) -> bytes | None:
        """The READY= line of the datagrams waiting, if one has it; the others are dropped. A
        few at a time: a program that floods its socket still lets the wait look at the rest."""
        for _ in range(DRAINED_AT_ONCE):
            try:
                data = self.server.recv(4096, self._socket.MSG_DONTWAIT)
            except BlockingIOError:
                return None
            ready = next((line for line in data.split(b"\n") if line.startswith(b"READY=")), None)
            if ready is not None:
                return ready
        return None

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
        self.server = None


class Relay(Listener):
    """The host's socket, connected, and the container's (``Listener``).

    The manager's socket is reached first, so a NOTIFY_SOCKET nobody listens on is said before
    the container is made or started."""

    def __init__(self, host: str) -> None:
        super().__init__()
        socket = self._socket
        self.host = host
        self.client = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self.beside: Any = None  # a foreground run's thread passing it on (it closes the relay)
        # the process whose word it is, when that is not ours: a child doing its caller's work
        # (the warm template's, a cold foreground run's) speaks for the caller, systemd's main
        # process, as sd_pid_notify does (root may name another pid in SCM_CREDENTIALS)
        self.on_behalf_of = 0
        try:
            # "@name" is an abstract address, as systemd and sd_notify spell it
            self.client.connect("\0" + host[1:] if host.startswith("@") else host)
        except OSError as e:
            self.client.close()
            raise MrunError(f"NOTIFY_SOCKET: {host}: {e.strerror or e}") from None

    def pass_on(self, main_pid: int, pidfd: int, give_up: Callable[[], bool] | None = None,
                warn: Callable[[str], None] | None = None) -> bool:
        """Wait for the program's READY= and pass it on, then MAINPID=``main_pid`` and a barrier:
        -> whether it was passed on. The wait ends early once the init (``pidfd``; -1: gone
        already) has ended with nothing ready said, or ``give_up`` says so (a stop signal)."""
        import select

        poller = select.poll()
        poller.register(self.server, select.POLLIN)
        if pidfd >= 0:
            poller.register(pidfd, select.POLLIN)
        ended = pidfd < 0
        while True:
            ready = self.ready_said()  # after the end too: what it said just before ending
            if ready is not None:
                break
            if ended or (give_up is not None and give_up()):
                return False
            ended = pidfd in dict(poller.poll(POLL_EVERY * 1000))
        self.send(ready + b"\n")
        self.send(f"MAINPID={main_pid}\n".encode())
        self._barrier(warn)
        return True

    def send(self, data: bytes, fd: int = -1) -> None:
        """One datagram to the manager (with ``fd``, as SCM_RIGHTS), as ``on_behalf_of`` if set."""
        socket = self._socket
        ancillary = []
        if self.on_behalf_of and self.on_behalf_of != os.getpid():
            import struct

            ancillary.append((socket.SOL_SOCKET, socket.SCM_CREDENTIALS,
                              struct.pack("iII", self.on_behalf_of, os.getuid(), os.getgid())))
        if fd >= 0:
            ancillary.append((socket.SOL_SOCKET, socket.SCM_RIGHTS, fd.to_bytes(4, sys.byteorder)))
        self.client.sendmsg([data], ancillary)

    def tell(self, data: bytes, warn: Callable[[str], None] | None = None) -> None:
        """``data`` said as our own (podman's --sdnotify=conmon: READY=1 once the container
        runs), then a barrier, as a passed-on READY= is."""
        self.send(data)
        self._barrier(warn)

    def _barrier(self, warn: Callable[[str], None] | None) -> None:
        """sd_notify_barrier: BARRIER=1 with a pipe's write end; the manager closes it once it
        has dealt with what came before. Given up on after 30 s with a warning, as runc does: an
        older manager does not know the word."""
        import select

        reader, writer = os.pipe2(os.O_CLOEXEC)
        try:
            try:
                self.send(b"BARRIER=1", writer)
            finally:
                os.close(writer)
            answer = select.poll()
            answer.register(reader, select.POLLIN)
            if not answer.poll(BARRIER_WAIT * 1000):  # (poll: select refuses descriptors past 1023)
                if warn is not None:
                    warn(f"NOTIFY_SOCKET: {self.host}: no answer to BARRIER=1 in {BARRIER_WAIT:.0f} s: carried on")
                return
            if os.read(reader, 1):
                raise MrunError(f"NOTIFY_SOCKET: {self.host}: wrote to the barrier's pipe instead of closing it")
        finally:
            os.close(reader)

    def close(self) -> None:
        super().close()
        self.client.close()


def relay_for(host: str, warn: Callable[[str], None]) -> Relay | None:
    """``run``'s relay: runc's run carries on without one when the manager cannot be reached
    (it drops the error); here that is said, in one line, and the container runs all the same."""
    if not host:
        return None
    try:
        return Relay(host)
    except MrunError as e:
        warn(f"{e}: the container's readiness is not passed on")
        return None

"""The host's half of seccomp user notification (SCMP_ACT_NOTIFY rules): the listener the
container's process made when it loaded its filter is handed to the agent listening at
``linux.seccomp.listenerPath``, as runc hands it: one message on a unix stream socket holding
the container process state (runtime-spec's ContainerProcessState: ``fds`` names the descriptor
``seccompFd``, passed with it) and the descriptor itself.

The host takes its copy from the process (pidfd_getfd) and connects from its own mount namespace
(where the path means what the config's author meant); the process closes its copy once the
host has taken it, and the host closes its own once sent, so the agent holds the only one: when
the agent goes, the notified calls fail with ENOSYS instead of waiting for ever.
"""

from __future__ import annotations

import os

from mrun import OCI_VERSION, jsonio
from mrun.errors import MrunError, in_words

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

CONNECT_TIMEOUT = 30.0  # seconds: an agent that neither accepts nor refuses fails the create


def hand_over(listener_of: tuple[str, str], pid: int, number: int, state: dict[str, Any]) -> None:
    """The listener that process ``pid`` holds as descriptor ``number``, to the agent its filter
    names (``Filter.listener``: the path and the metadata)."""
    from mrun.kernel.syscalls import pidfd_getfd

    path, metadata = listener_of
    try:
        pidfd = os.pidfd_open(pid)
        try:
            listener = pidfd_getfd(pidfd, number)
        finally:
            os.close(pidfd)
    except OSError as e:
        raise MrunError(f"linux.seccomp: cannot take the notification listener from the container's process: "
                        f"{in_words(e)}") from None
    try:
        message = {"ociVersion": OCI_VERSION, "fds": ["seccompFd"], "pid": pid, "metadata": metadata, "state": state}
        _send(path, jsonio.dumps(message).encode(), listener)
    finally:
        os.close(listener)


def _send(path: str, data: bytes, fd: int) -> None:
    import _socket

    from mrun.kernel.fdpass import rights

    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
    try:
        sock.settimeout(CONNECT_TIMEOUT)
        address = b"\0" + os.fsencode(path[1:]) if path.startswith("@") else os.fsencode(path)
        try:
            sock.connect(address)
            sock.sendmsg([data], rights([fd]))
        except OSError as e:
            why = e.strerror or str(e)  # "timed out", "AF_UNIX path too long" have no strerror
            raise MrunError(f"linux.seccomp.listenerPath: cannot hand the notification listener to the seccomp "
                            f"agent at {path}: {why}") from None
    finally:
        sock.close()

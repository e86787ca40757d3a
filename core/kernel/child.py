"""Run a function in a forked child and get its answer back: for work that must happen in
another process (entering a namespace, unsharing one) without changing the caller's."""

from __future__ import annotations

import os

from mrun.errors import in_bytes

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable


def default_stop_signals() -> None:
    """In a forked child that goes its own way (a supervisor, a contained worker): ^C, SIGTERM
    and SIGHUP at their defaults. The caller's handlers (KeyboardInterrupt, a `run`'s held or
    raised stop) are not the child's: raised there, they would unwind into the caller's code
    (a create's undo) in the child's process."""
    import signal

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)


class ChildFailed(Exception):
    """``fn`` raised in the child; the message is its one line."""


def answer_from_child(fn: Callable[[], bytes]) -> bytes:
    """Fork; the child runs ``fn`` and sends back what it returns (or why it failed) and exits,
    whatever happens; the parent reads the answer to EOF and reaps the child. A failure in the
    child raises ChildFailed here, with ``strerror`` for an OSError, else "Class: message"."""
    r, w = os.pipe()
    child = os.fork()
    if child == 0:  # never returns
        try:
            os.close(r)
            os.write(w, b"\x00" + fn())
        except BaseException as e:  # noqa: BLE001 - reported to the parent, one line
            why = getattr(e, "strerror", None) or f"{e.__class__.__name__}: {e}"
            os.write(w, b"\x01" + in_bytes(str(why)))
        finally:
            os._exit(0)
    os.close(w)
    answer = b""
    while chunk := os.read(r, 4096):
        answer += chunk
    os.close(r)
    os.waitpid(child, 0)
    if not answer.startswith(b"\x00"):
        raise ChildFailed(answer[1:].decode(errors="replace") or "the child died without an answer")
    return answer[1:]

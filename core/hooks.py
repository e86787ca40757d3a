"""OCI hooks: each gets the container state as JSON on stdin, with its own args, env and timeout.

Run with fork/execve rather than subprocess: startContainer hooks run after pivot_root, where
no further Python module can be imported, and the hot path stays free of subprocess's import.
"""

from __future__ import annotations

import os
import sys
import time

from mrun import jsonio, umask
from mrun.errors import MrunError, one_line
from mrun.kernel.proc import SIGKILL

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~6 ms (it imports re) on the lifecycle verbs' hot path
    from typing import Any

# Hooks whose failure fails the operation; poststop's only warns (runtime-spec). poststart's
# warned too until runtime-spec 1.3 made it an error that stops the container, as runc always had.
FATAL = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart")


def run_hooks(kind: str, hooks: list[dict[str, Any]], state: dict[str, Any]) -> None:
    payload = jsonio.dumps(state).encode()
    for i, hook in enumerate(hooks):
        try:
            _run_one(hook, payload)
        except MrunError as e:
            msg = f"hooks.{kind}[{i}] ({hook['path']}): {e}"
            if kind in FATAL:
                raise MrunError(msg)
            print(f"mrun: warning: {one_line(msg)}", file=sys.stderr)


def _run_one(hook: dict[str, Any], payload: bytes) -> None:
    path = hook["path"]
    args = hook.get("args") or [path]
    env = dict(e.split("=", 1) for e in hook.get("env") or [])
    r, w = os.pipe()
    failed_r, failed_w = os.pipe()  # close-on-exec: EOF once the hook runs, its errno if it cannot
    pid = os.fork()
    if pid == 0:  # child
        try:
            os.dup2(r, 0)
            os.umask(umask.callers())  # as runc runs its hooks: with its caller's umask, not mrun's own
            os.execve(path, args, env)
        except OSError as e:
            os.write(failed_w, str(e.errno).encode())
        os._exit(127)
    # From the fork on, whatever ends us here (^C while we wait for the exec: the hook was
    # already running then, and was left so) kills and reaps the hook.
    reaped = False
    unsent = None
    try:
        os.close(r)
        os.close(failed_w)
        try:
            failure = os.read(failed_r, 16)
        finally:
            os.close(failed_r)
        if failure:
            os.waitpid(pid, 0)
            reaped = True
            raise MrunError(f"cannot execute it: {os.strerror(int(failure))}")
        timeout = hook.get("timeout")
        deadline = time.monotonic() + timeout if timeout else None
        unsent = _Feed(w, payload)
        delay = 0.0005
        unsent.more()
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                reaped = True
                break
            if deadline and time.monotonic() > deadline:
                os.kill(pid, SIGKILL)
                os.waitpid(pid, 0)
                reaped = True
                raise MrunError(f"timed out after {timeout}s")
            if unsent.more():
                delay = 0.0005  # the hook is reading: keep up with it
            time.sleep(delay)
            delay = min(delay * 2, 0.02)
    finally:
        if unsent is not None:
            unsent.close()
        else:
            os.close(w)
        if not reaped:  # whatever else went wrong here: the hook is not left running unreaped
            os.kill(pid, SIGKILL)
            os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        raise MrunError(f"killed by signal {os.WTERMSIG(status)}")
    if os.WEXITSTATUS(status):
        raise MrunError(f"exited with status {os.WEXITSTATUS(status)}")


class _Feed:
    """The state, written to the hook's stdin beside the wait, as runc's goroutine writes it: a
    state larger than the pipe (big annotations) must not block mrun in write() past the hook's
    timeout while the hook does not read. A hook that exits unread ends the feed (EPIPE)."""

    def __init__(self, fd: int, payload: bytes) -> None:
        self.fd, self.rest = fd, memoryview(payload)
        os.set_blocking(fd, False)

    def more(self) -> bool:
        """Write what the pipe takes now; True if some was taken."""
        taken = False
        while self.rest and self.fd >= 0:
            try:
                self.rest = self.rest[os.write(self.fd, self.rest) :]
                taken = True
            except BlockingIOError:
                return taken
            except BrokenPipeError:
                break
        self.close()
        return taken

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

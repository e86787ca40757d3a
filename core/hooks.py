"""OCI hooks: each gets the container state as JSON on stdin, with its own args, env and timeout.

Run with fork/execve rather than subprocess: startContainer hooks run after pivot_root, where
no further Python module can be imported, and the hot path stays free of subprocess's import.
"""

from __future__ import annotations

import os
import sys
import time

from mrun import jsonio
from mrun.errors import MrunError
from mrun.kernel.proc import SIGKILL

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~6 ms (it imports re) on the lifecycle verbs' hot path
    from typing import Any

# Hooks whose failure fails the operation; the others only warn (runtime-spec).
FATAL = ("prestart", "createRuntime", "createContainer", "startContainer")


def run_hooks(kind: str, hooks: list[dict[str, Any]], state: dict[str, Any]) -> None:
    payload = jsonio.dumps(state).encode()
    for i, hook in enumerate(hooks):
        try:
            _run_one(hook, payload)
        except MrunError as e:
            msg = f"hooks.{kind}[{i}] ({hook['path']}): {e}"
            if kind in FATAL:
                raise MrunError(msg)
            print(f"mrun: warning: {msg}", file=sys.stderr)


def _run_one(hook: dict[str, Any], payload: bytes) -> None:
    path = hook["path"]
    args = hook.get("args") or [path]
    env = dict(e.split("=", 1) for e in hook.get("env") or [])
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        try:
            os.dup2(r, 0)
            os.execve(path, args, env)
        except OSError as e:
            os.write(2, f"mrun: hook {path}: {e.strerror}\n".encode())
        os._exit(127)
    os.close(r)
    try:
        os.write(w, payload)
    except BrokenPipeError:
        pass
    finally:
        os.close(w)
    timeout = hook.get("timeout")
    deadline = time.monotonic() + timeout if timeout else None
    delay = 0.0005
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if deadline and time.monotonic() > deadline:
            os.kill(pid, SIGKILL)
            os.waitpid(pid, 0)
            raise MrunError(f"timed out after {timeout}s")
        time.sleep(delay)
        delay = min(delay * 2, 0.02)
    if os.WIFSIGNALED(status):
        raise MrunError(f"killed by signal {os.WTERMSIG(status)}")
    if os.WEXITSTATUS(status):
        raise MrunError(f"exited with status {os.WEXITSTATUS(status)}")

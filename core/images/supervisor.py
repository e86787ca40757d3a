"""The supervisor of a detached container (`mrun run -d IMAGE`): its parent for as long as it runs.

A detached container's init would otherwise be reparented to the host's PID 1 when `mrun run -d`
returns, and its exit status would be lost. The supervisor is forked first, becomes a child
subreaper in a session of its own, creates and starts the container (so the init is its
descendant and comes back to it), tells the caller, then waits and writes ``exit.json`` beside
the container's log: `mrun ps` and `mrun inspect` show it as docker does ("exited (3)"), or,
for `mrun run -d --rm`, removes the container as docker does.
It holds none of the caller's descriptors, and it outlives any mrun process.
"""

from __future__ import annotations

import os

from mrun import jsonio
from mrun.errors import MrunError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

EXIT_FILE = "exit.json"


def run_detached(runtime: Any, container_id: str, bundle: str, remove: bool = False) -> None:
    """Create and start ``container_id`` under a new supervisor; return once it runs. With
    ``remove``, the supervisor deletes the container once it has exited."""
    from mrun.cgroups import primed

    primed()  # no thread of ours runs while we fork
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        _supervise(runtime, container_id, bundle, w, remove)
    os.close(w)
    answer = b""
    while chunk := os.read(r, 65536):
        answer += chunk
    os.close(r)
    if answer != b"ok":
        text = answer.decode(errors="replace").removeprefix("error:")
        raise MrunError(text or f"container {container_id!r}: its supervisor died before the container started")


def _supervise(runtime: Any, container_id: str, bundle: str, report: int, remove: bool) -> None:
    from mrun.kernel import syscalls as sc
    from mrun.kernel.proc import exit_code
    from mrun.runtime import CreateOptions

    try:
        os.setsid()
        sc.prctl(sc.PR_SET_CHILD_SUBREAPER, 1)
        null = os.open(os.devnull, os.O_RDWR)
        log = os.open(os.path.join(bundle, "log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
        os.dup2(null, 0)
        os.dup2(log, 1)  # the container inherits these: its output goes to its log
        os.dup2(log, 2)
        runtime.run(container_id, bundle, CreateOptions(), True, keep=True)
        pid = runtime.store.load(container_id).pid
    except BaseException as e:  # noqa: BLE001 - reported to the caller, which prints it
        os.write(report, f"error:{e}".encode())
        os._exit(1)
    os.write(report, b"ok")
    os.dup2(null, 1)  # from here on nothing of the caller's is ours
    os.dup2(null, 2)
    os.closerange(3, 1 << 16)
    code = None
    while True:
        try:
            done, status = os.waitpid(-1, 0)
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        if done == pid:
            code = exit_code(status)
            break
    if remove:
        try:
            runtime.delete(container_id, force=True)  # its snapshot and network go with it
        except BaseException:  # noqa: BLE001 - nobody to tell; `mrun system prune` finishes it
            pass
        os._exit(0)
    from mrun.state import now_rfc3339

    try:
        tmp = os.path.join(bundle, f".{EXIT_FILE}.tmp")
        with open(tmp, "w") as f:
            f.write(jsonio.dumps({"exit_code": code, "finished": now_rfc3339()}))
        os.rename(tmp, os.path.join(bundle, EXIT_FILE))
    except OSError:
        pass  # removed meanwhile (`mrun rm -f`): nothing left to report to
    os._exit(0)


def exit_of(bundle: str) -> dict[str, Any] | None:
    """What the supervisor recorded: {"exit_code": N (None if unknown), "finished": time}."""
    try:
        doc = jsonio.load_file(os.path.join(bundle, EXIT_FILE))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None

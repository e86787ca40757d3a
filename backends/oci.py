"""The ``oci`` backend: hand a container to another installed OCI runtime (runc, crun, runsc,
youki, krun), which owns its sandbox. mrun keeps its record, dispatch, CLI and shim; the other
runtime does the namespaces, cgroup and process. So one mrun (and one shim per pod) can run wasm
natively, Linux natively, and a container under gVisor's runsc beside them.

Chosen by the annotation ``org.mrun.oci.runtime=NAME`` (reserved: an image's labels cannot set
it). NAME is a bare program name found on ``PATH`` and on the allowed list (``runtimes()``; an
operator extends it with ``$MRUN_OCI_RUNTIMES``): an annotation must not be able to name any
binary on the host to run as root. Each runtime keeps its state under mrun's root
(``<root>/.oci/NAME``), never in its own default (``/run/runc``).
"""

from __future__ import annotations

import os

from mrun import annotations as ann
from mrun import jsonio
from mrun.errors import InvalidSpec, MrunError, NotFound
from mrun.plugins.api import Bundle, Claim
from mrun.plugins.hookspecs import hookimpl

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

NAME = "oci"
KNOWN = ("runc", "crun", "runsc", "youki", "krun")


def runtimes() -> tuple[str, ...]:
    """The OCI runtimes an annotation may name: the known ones, plus the operator's
    ``$MRUN_OCI_RUNTIMES`` (comma-separated bare names)."""
    extra = [n.strip() for n in os.environ.get("MRUN_OCI_RUNTIMES", "").split(",") if n.strip()]
    return (*KNOWN, *extra)


def resolve(name: str) -> str:
    """The runtime's path; one line naming the annotation when it cannot be used."""
    if not name or "/" in name or name not in runtimes():
        raise InvalidSpec(
            f"annotation {ann.OCI_RUNTIME}={name!r}: not an allowed OCI runtime ({', '.join(runtimes())}; "
            "an operator adds names with $MRUN_OCI_RUNTIMES)"
        )
    import shutil  # not at import: every create loads every backend, and this one is rarely chosen

    path = shutil.which(name)
    if path is None:
        raise InvalidSpec(f"annotation {ann.OCI_RUNTIME}={name}: {name} is not installed (not on PATH)")
    return path


@hookimpl
def mrun_claim(bundle: Bundle) -> Claim | None:
    name = bundle.annotations.get(ann.OCI_RUNTIME)
    if name is None:
        return None
    return Claim(NAME, 1000, f"annotation {ann.OCI_RUNTIME}={name}: the container runs under {name}")


@hookimpl
def mrun_features() -> dict[str, Any]:
    import shutil

    installed = [n for n in runtimes() if shutil.which(n)]
    return {
        "name": NAME,
        "description": "another OCI runtime owns the sandbox (annotation org.mrun.oci.runtime)",
        "annotations": [ann.OCI_RUNTIME],
        "runtimes": installed,
    }


@hookimpl
def mrun_sandbox(container_id: str, state_dir: str) -> OCIRuntime:
    """Every container this backend runs is another runtime's: which one, ``create`` recorded."""
    try:
        with open(os.path.join(state_dir, "oci-runtime")) as f:
            name = f.read().strip()
    except FileNotFoundError:
        name = ""  # create: read from the config
    return OCIRuntime(name, state_dir)


class OCIRuntime:
    """One container under another runtime: its verbs are that runtime's CLI, which every OCI
    runtime shares (runc's), with ``--root`` under mrun's state root."""

    def __init__(self, name: str, state_dir: str) -> None:
        self.name, self.state_dir = name, state_dir
        self.root = os.path.join(os.path.dirname(state_dir), ".oci", name or "unknown")

    def _run(self, *args: str, input: bytes | None = None, check: bool = True) -> Any:
        import subprocess

        binary = resolve(self.name)
        r = subprocess.run([binary, "--root", self.root, *args], capture_output=True, input=input)
        if check and r.returncode != 0:
            err = r.stderr.decode(errors="replace").strip().splitlines()
            why = err[-1] if err else f"exit status {r.returncode}"
            if "does not exist" in why or "not found" in why.lower():
                raise NotFound(f"{self.name} {args[0]}: {why}")
            raise MrunError(f"{self.name} {args[0]}: {why}")
        return r

    def create(self, container_id: str, bundle: str, pid_file: str, console_socket: str) -> int:
        with open(os.path.join(bundle, "config.json")) as f:
            name = (jsonio.loads(f.read()).get("annotations") or {}).get(ann.OCI_RUNTIME, "")
        resolve(name)  # refused before anything is made
        self.name = name
        self.root = os.path.join(os.path.dirname(self.state_dir), ".oci", name)
        with open(os.path.join(self.state_dir, "oci-runtime"), "w") as f:
            f.write(name)  # later verbs (other processes) find the same runtime
        pid_file = pid_file or os.path.join(self.state_dir, "oci-init.pid")
        args = ["create", "--bundle", bundle, "--pid-file", pid_file]
        if console_socket:
            args += ["--console-socket", console_socket]
        self._detached(args, container_id)
        with open(pid_file) as f:
            return int(f.read().strip())

    def _detached(self, args: list[str], container_id: str) -> None:
        """create and exec --detach: the container's process inherits our stdio (its stdio, as
        with mrun's own sandbox), so no pipe may hold the answer: errors come from --log."""
        import subprocess

        log = os.path.join(self.state_dir, "oci-log.json")
        binary = resolve(self.name)
        r = subprocess.run([binary, "--root", self.root, "--log", log, "--log-format", "json", *args, container_id])
        if r.returncode != 0:
            raise MrunError(f"{self.name} {args[0]}: {_last_error(log) or f'exit status {r.returncode}'}")

    def start(self, container_id: str) -> None:
        self._run("start", container_id)

    def status(self, container_id: str) -> str:
        r = self._run("state", container_id, check=False)
        if r.returncode != 0:
            return "stopped"  # gone from the other runtime: nothing of it runs
        return str(jsonio.loads(r.stdout).get("status", "stopped"))

    def kill(self, container_id: str, signal: int, all_processes: bool) -> None:
        self._run("kill", *(["--all"] if all_processes else []), container_id, str(signal))

    def delete(self, container_id: str, force: bool) -> None:
        self._run("delete", *(["--force"] if force else []), container_id, check=not force)
        for empty in (self.root, os.path.dirname(self.root)):  # the runtime makes them again when needed
            try:
                os.rmdir(empty)
            except OSError:
                break

    def exec(self, container_id: str, process: dict[str, Any], pid_file: str, console_socket: str) -> int:
        spec = os.path.join(self.state_dir, "oci-exec.json")
        with open(spec, "w") as f:
            f.write(jsonio.dumps(process))
        pid_file = pid_file or os.path.join(self.state_dir, "oci-exec.pid")
        args = ["exec", "--detach", "--process", spec, "--pid-file", pid_file]
        if console_socket:
            args += ["--console-socket", console_socket]
        self._detached(args, container_id)
        with open(pid_file) as f:
            return int(f.read().strip())

    def pause(self, container_id: str) -> None:
        self._run("pause", container_id)

    def resume(self, container_id: str) -> None:
        self._run("resume", container_id)

    def update(self, container_id: str, resources: dict[str, Any]) -> None:
        self._run("update", "--resources", "-", container_id, input=jsonio.dumps(resources).encode())

    def pids(self, container_id: str) -> list[int]:
        out = self._run("ps", "--format", "json", container_id).stdout
        return [int(p) for p in jsonio.loads(out or b"[]") or []]

    def stats(self, container_id: str) -> dict[str, Any]:
        out = self._run("events", "--stats", container_id).stdout
        return {"runtime": self.name, "events": jsonio.loads(out) if out.strip() else {}}


def _last_error(log: str) -> str:
    """The last error runc-style runtimes wrote to their --log (JSON lines)."""
    try:
        with open(log) as f:
            lines = f.read().splitlines()
    except OSError:
        return ""
    for line in reversed(lines):
        try:
            entry = jsonio.loads(line)
        except ValueError:
            continue
        if entry.get("level") in ("error", "fatal") and entry.get("msg"):
            return str(entry["msg"])
    return ""

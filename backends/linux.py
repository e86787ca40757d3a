"""The ``linux`` backend: the payload is ``execve`` of process.args with process.env.

It claims any entrypoint that is an ELF binary or a ``#!`` script, and is the fallback for
bundles no backend recognises, so a missing executable gets runc's clear create-time error.
"""

from __future__ import annotations

import os

from mrun.errors import MrunError, in_bytes
from mrun.plugins.api import Bundle, Claim, Container, find_program, home_of, not_runnable, table_rows
from mrun.plugins.hookspecs import hookimpl

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

NAME = "linux"


@hookimpl
def mrun_claim(bundle: Bundle) -> Claim:
    magic = bundle.magic()
    if magic.startswith(b"\x7fELF"):
        return Claim(NAME, 50, f"{bundle.args[0]} is an ELF executable")
    if magic.startswith(b"#!"):
        return Claim(NAME, 50, f"{bundle.args[0]} is a script ('#!')")
    return Claim(NAME, 0, "linux is the default backend")


@hookimpl
def mrun_features() -> dict[str, Any]:
    return {"name": NAME, "description": "native Linux processes (execve in the sandbox)"}


class Exec:
    def __init__(self, path: str, args: list[str], env: list[str]) -> None:
        self.path, self.args, self.env = path, args, env

    def run(self) -> int:
        env = dict(e.split("=", 1) for e in self.env)
        try:
            os.execve(self.path, self.args, env)
        except OSError as e:
            os.write(2, in_bytes(f"mrun: exec {self.args[0]}: {e.strerror}\n"))
        return 127


@hookimpl
def mrun_payload(container: Container, process: dict[str, Any]) -> Exec:
    """Runs after pivot_root: '/' is the container's root, so the lookup is the container's."""
    args = process["args"]
    env = with_home(process.get("env") or [], (process.get("user") or {}).get("uid", 0))
    path = find_program("/", args[0], process, as_named=True)
    if path is None:
        raise MrunError(f"exec: {args[0]!r}: {not_runnable('/', args[0], process)}")
    if not os.access(path, os.X_OK):
        raise MrunError(f"exec: {args[0]!r}: permission denied")
    return Exec(path, args, env)


def with_home(env: list[str], uid: int) -> list[str]:
    """``env`` with runc's HOME where it has none (or an empty one): the home /etc/passwd gives
    the process's uid, else "/". A bundle of `runc spec`, `ctr run` or containerd's CRI sets no
    HOME and its programs (git, ssh, pip...) find one under runc; read after pivot_root, so the
    container's own /etc/passwd, for the init and every exec'd process alike."""
    if next((e[5:] for e in reversed(env) if e.startswith("HOME=")), ""):  # the last one counts, as in execve's
        return env
    return [*env, f"HOME={home_of(table_rows('/', 'etc/passwd'), uid)}"]

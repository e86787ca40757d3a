"""A third-party mrun backend in one file: a container whose entrypoint is a ``.txt`` file
"runs" by printing it.

It shows the whole contract. Registration is the ``mrun.backends`` entry point in
pyproject.toml, the same route the built-in ``linux`` backend takes. The four hooks:
``mrun_claim`` bids for bundles, ``mrun_prepare`` runs on the host, ``mrun_payload`` runs
inside the finished sandbox (after pivot_root, as PID 1, under the container's cgroup
limits), and ``mrun_features`` describes the backend. The payload runs in-process, in
Python, the way the wasm backend runs wasmtime.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from mrun.plugins.api import Bundle, Claim, Container
from mrun.plugins.hookspecs import hookimpl

NAME = "textfile"


@hookimpl
def mrun_claim(bundle: Bundle) -> Claim | None:
    entry = bundle.args[0] if bundle.args else ""
    if entry.endswith(".txt") and not bundle.magic().startswith((b"\x7fELF", b"#!", b"\0asm")):
        return Claim(NAME, 60, f"{entry} is a text file")
    return None


@hookimpl
def mrun_prepare(container: Container) -> None:
    container.data["prepared_on_host_pid"] = os.getpid()


class PrintFile:
    def __init__(self, path: str) -> None:
        self.path = path

    def run(self) -> int:
        with open(self.path, "rb") as f:
            os.write(1, f.read())
        return 0


@hookimpl
def mrun_payload(container: Container, process: dict[str, Any]) -> PrintFile:
    path = process["args"][0]
    if not os.path.isfile(path):
        raise FileNotFoundError(f"textfile: {path} does not exist in the container")
    return PrintFile(path)


@hookimpl
def mrun_features() -> dict[str, Any]:
    return {
        "name": NAME,
        "description": "prints a .txt entrypoint (example third-party backend)",
        "python": sys.version.split()[0],
    }

"""The conformance kit (mrun.conformance), run against every backend mrun ships and the example
third-party one: linux, wasm, oci (runc) and textfile. A backend that cannot express a kind of
container (textfile only prints) has those tests skipped, saying so."""

from __future__ import annotations

import os
import shutil

import pytest
from conftest import pip_installed
from mrun.conformance import *  # noqa: F403 - the kit's fixtures and tests
from mrun.conformance import Kit
from mrun.defaults import default_spec

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")


def base_config(rootfs: str, args: list[str]) -> dict:
    cfg = default_spec()
    cfg["process"]["terminal"] = False
    cfg["process"]["args"] = args
    cfg["root"] = {"path": rootfs, "readonly": True}
    return cfg


class LinuxKit(Kit):
    name = "linux"

    def __init__(self, rootfs: str, annotations: dict[str, str] | None = None) -> None:
        self.rootfs, self.annotations = rootfs, annotations or {}

    def make_config(self, workdir, kind, value):
        args = {
            "exit": ["sh", "-c", f"exit {value}"],
            "echo": ["echo", str(value)],
            "wait": ["sleep", "600"],
        }[kind]
        cfg = base_config(self.rootfs, args)
        cfg["annotations"] = dict(self.annotations)
        return cfg


class OCIKit(LinuxKit):
    name = "oci"

    def __init__(self, rootfs: str) -> None:
        super().__init__(rootfs, {"org.mrun.oci.runtime": "runc"})


class WasmKit(Kit):
    name = "wasm"

    def make_config(self, workdir, kind, value):
        rootfs = os.path.join(workdir, f"wasm-rootfs-{kind}")
        if not os.path.exists(rootfs):
            for d in ("proc", "dev", "sys", "tmp"):
                os.makedirs(os.path.join(rootfs, d))
            for module in ("hello.wasm", "pod.wasm"):
                shutil.copy(os.path.join(EXAMPLES, "wasm", module), os.path.join(rootfs, module))
        args = {
            "exit": ["/hello.wasm", str(value)],  # hello exits with its argv[1]
            "echo": ["/hello.wasm", str(value)],  # ... and prints its argv
            "wait": ["/pod.wasm", "/never", "/tmp/out"],  # waits for a file that never comes
        }[kind]
        return base_config(rootfs, args)


class TextfileKit(Kit):
    name = "textfile"

    def make_config(self, workdir, kind, value):
        if kind != "echo":
            return None  # it prints a text file; it cannot exit otherwise or wait
        rootfs = os.path.join(workdir, "text-rootfs")
        for d in ("proc", "dev", "sys"):
            os.makedirs(os.path.join(rootfs, d), exist_ok=True)
        with open(os.path.join(rootfs, "hello.txt"), "w") as f:
            f.write(f"{value}\n")
        return base_config(rootfs, ["/hello.txt"])


@pytest.fixture(scope="module")
def textfile_installed():
    yield from pip_installed(os.path.join(EXAMPLES, "textfile-backend"), "mrun-textfile-backend")


@pytest.fixture(params=["linux", "wasm", "oci", "textfile"])
def backend_under_test(request, busybox_rootfs):
    if request.param == "textfile":
        request.getfixturevalue("textfile_installed")
        return TextfileKit()
    if request.param == "wasm":
        return WasmKit()
    if request.param == "oci":
        if not shutil.which("runc"):
            pytest.fail("runc is missing: apt-get install -y runc")
        return OCIKit(busybox_rootfs)
    return LinuxKit(busybox_rootfs)

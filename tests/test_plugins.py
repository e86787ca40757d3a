"""Backends are pluggy plugins found through entry points: the built-in one, and a third-party
one installed from examples/ the way a user would install it."""

from __future__ import annotations

import os

import pytest
from conftest import pip_installed

EXAMPLE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples", "textfile-backend")


@pytest.fixture(scope="module")
def textfile_backend():
    yield from pip_installed(EXAMPLE, "mrun-textfile-backend")


def _text_bundle(h, **changes):
    hello = os.path.join(h.tmp, "hello.txt")
    with open(hello, "w") as f:
        f.write("hello from a text backend\n")
    cfg = h.config(["/hello.txt"], **changes)
    cfg["mounts"].append({"destination": "/hello.txt", "type": "bind", "source": hello, "options": ["rbind", "ro"]})
    return h.bundle(config=cfg)


def test_builtin_linux_backend_explains_itself(h):
    out = h.ok("explain", "-b", h.bundle(["sh", "-c", "true"])).stdout
    assert out.splitlines()[0] == "backend: linux"
    assert "sh is an ELF executable" in out


def test_third_party_backend_is_found_and_runs_in_the_sandbox(h, textfile_backend):
    bundle = _text_bundle(h)
    out = h.ok("explain", "-b", bundle).stdout
    assert out.splitlines()[0] == "backend: textfile"
    assert "/hello.txt is a text file" in out and "linux" in out  # every bid is listed
    r = h.ok("run", "-b", bundle, h.cid())
    assert r.stdout == "hello from a text backend\n"
    assert "textfile" in h.ok("features").stdout


def test_annotation_forces_a_backend(h, textfile_backend):
    forced = _text_bundle(h, annotations={"run.oci.handler": "linux"})
    assert h.ok("explain", "-b", forced).stdout.splitlines()[:2] == [
        "backend: linux",
        "because: annotation run.oci.handler=linux",
    ]
    r = h.mrun("run", "-b", forced, h.cid())
    assert r.returncode != 0 and "/hello.txt" in r.stderr and "permission denied" in r.stderr
    missing = _text_bundle(h, annotations={"run.oci.handler": "krun"})
    r = h.mrun("run", "-b", missing, h.cid())
    assert r.returncode != 0 and "'krun'" in r.stderr and "not installed" in r.stderr


def test_the_cli_flags_carry_the_backend_policy(h):
    """--backends-allowed: a wasm-annotated bundle is refused in one line; without it, it runs."""
    bundle = h.bundle(["sh", "-c", "true"], annotations={"run.oci.handler": "wasm"})
    r = h.mrun("--backends-allowed", "linux", "explain", "-b", bundle)
    assert r.returncode != 0 and "'wasm' is not allowed by the backend policy ($MRUN_BACKENDS_ALLOWED" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    out = h.ok("--backend-pin", "linux", "explain", "-b", h.bundle(["sh", "-c", "true"])).stdout
    assert out.splitlines()[:2] == ["backend: linux", "because: pinned by the backend policy ($MRUN_BACKEND_PIN)"]

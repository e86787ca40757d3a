"""--platform OS/ARCH: what it names, which platform an image in the store is, and whether the
two are the same (docker's rules; wasip1/wasm and wasi/wasm are one)."""

from __future__ import annotations

from mrun.errors import InvalidSpec

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from mrun.images.store import ImageStore


def platform_flag(text: str) -> tuple[str, str] | None:
    """--platform's (os, arch), or None where it was not given."""
    if not text:
        return None
    os_, sep, arch = text.partition("/")
    if not sep or not os_ or not arch:
        raise InvalidSpec(f"--platform {text!r}: os/arch expected (linux/amd64, wasip1/wasm)")
    return os_, arch


def platform_of(store: ImageStore, entry: dict[str, Any]) -> tuple[str, str]:
    """An image's os and architecture (with its variant: arm/v7): as the index it was pulled or
    loaded from named it, else as its config says (wasm for one mrun runs as wasm)."""
    if entry.get("platform"):
        os_, _, arch = entry["platform"].partition("/")
        return os_, arch
    if entry.get("wasm"):
        return "wasip1", "wasm"
    config = store.read_json(entry["config"])
    config = config if isinstance(config, dict) else {}
    arch = str(config.get("architecture") or "")
    return str(config.get("os") or ""), f"{arch}/{config['variant']}" if config.get("variant") else arch


def same_platform(want: tuple[str, str], actual: tuple[str, str]) -> bool:
    """``--platform`` names the image's: the same os and architecture (a variant only where one
    is asked for), or both wasm (wasi/wasm is wasip1/wasm)."""
    from mrun.images.install import WASM_PLATFORMS

    if want in WASM_PLATFORMS or actual in WASM_PLATFORMS:
        return want in WASM_PLATFORMS and (actual[0], actual[1].split("/")[0]) in WASM_PLATFORMS
    return want[0] == actual[0] and (want[1] == actual[1] or "/" not in want[1] and want[1] == actual[1].split("/")[0])

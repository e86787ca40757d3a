"""An image made from one ``.wasm`` file, so a module can be published like any image.

The result is a plain OCI image (one tar layer holding the module, platform ``wasip1/wasm``,
the module as its entrypoint, and runwasi's ``module.wasm.image/variant=compat`` annotation):
`mrun save` writes it to an oci-archive that skopeo pushes anywhere, and containerd's wasm
shims recognise it as well as mrun does.
"""

from __future__ import annotations

import hashlib
import io
import os
import sys
import tarfile
import time

from mrun import annotations as ann
from mrun import jsonio
from mrun.errors import MrunError, NotFound, one_line
from mrun.images.install import install
from mrun.images.sources import OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, REF_NAME, Source
from mrun.images.store import ImageStore
from mrun.kernel.contained import LimitReached

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import IO, Any

WASM_MAGIC = b"\0asm"


def build(store: ImageStore, module: str, name: str) -> list[str]:
    try:
        with open(module, "rb") as f:
            wasm = f.read()
    except OSError as e:
        raise MrunError(f"{module}: {e.strerror}")
    if not wasm.startswith(WASM_MAGIC):
        raise MrunError(f"{module}: not a WebAssembly module or component (it starts with {wasm[:4]!r})")
    from mrun.plugins.manager import Backends

    # Compiled (into the cache) before anything is stored: a module that does not compile is
    # refused here, not published as an image that fails on every run. One past the bounds for
    # compiling outside a container is not refused: it compiles at create, under its limits.
    try:
        Backends.shared().pm.hook.mrun_precompile(path=module)
    except LimitReached as e:
        print(f"mrun: warning: {one_line(str(e))}; not precompiled", file=sys.stderr)
    base = os.path.basename(module)
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(base)
        info.size, info.mode, info.mtime = len(wasm), 0o755, int(time.time())
        tar.addfile(info, io.BytesIO(wasm))
    layer_bytes = layer.getvalue()
    config = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "architecture": "wasm",
        "os": "wasip1",
        "config": {"Entrypoint": [f"/{base}"], "Labels": {ann.WASM_VARIANT: "compat"}},
        "rootfs": {"type": "layers", "diff_ids": [_digest(layer_bytes)]},
    }
    config_bytes = jsonio.dumps(config).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": _digest(config_bytes), "size": len(config_bytes)},
        "layers": [{"mediaType": OCI_LAYER, "digest": _digest(layer_bytes), "size": len(layer_bytes)}],
        "annotations": {ann.WASM_VARIANT: "compat"},
    }
    manifest_bytes = jsonio.dumps(manifest).encode()
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": OCI_MANIFEST,
                "digest": _digest(manifest_bytes),
                "size": len(manifest_bytes),
                "platform": {"os": "wasip1", "architecture": "wasm"},
                "annotations": {REF_NAME: name},
            }
        ],
    }
    blobs = {_digest(data): data for data in (layer_bytes, config_bytes, manifest_bytes)}
    return install(store, _Made(index, blobs), name, compile_now=False)


class _Made(Source):
    """The image's blobs as made here, in memory: installed as a layout directory would be, with
    nothing written outside the store (a layout in /tmp was left there by a killed build)."""

    def __init__(self, index: dict[str, Any], blobs: dict[str, bytes]) -> None:
        self._index, self._blobs = index, blobs

    def index(self) -> dict[str, Any]:
        return self._index

    def open(self, digest: str) -> IO[bytes]:
        if digest not in self._blobs:
            raise NotFound(f"blob {digest} is missing")
        return io.BytesIO(self._blobs[digest])


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()

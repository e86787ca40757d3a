"""An image out of the store as an oci-archive: what `skopeo copy oci-archive:...` pushes
anywhere, and what containerd and podman import. The blobs go as they are: same digests."""

from __future__ import annotations

import io
import os
import tarfile

from mrun import jsonio
from mrun.images.sources import OCI_MANIFEST, REF_NAME
from mrun.images.store import ImageStore, check_digest


def save_oci_archive(store: ImageStore, ref: str, archive: str) -> None:
    name, entry = store.image(ref)
    manifest = store.read_blob(entry["manifest"])
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": jsonio.loads(manifest).get("mediaType") or OCI_MANIFEST,
                "digest": entry["manifest"],
                "size": len(manifest),
                "annotations": {REF_NAME: name},
            }
        ],
    }
    tmp = f"{archive}.tmp-{os.getpid()}"
    try:
        with tarfile.open(tmp, "w") as tar:
            _add(tar, "oci-layout", b'{"imageLayoutVersion": "1.0.0"}')
            _add(tar, "index.json", jsonio.dumps(index).encode())
            for digest in entry["blobs"]:
                tar.add(store.blob_path(digest), f"blobs/sha256/{check_digest(digest)}", recursive=False)
        os.rename(tmp, archive)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))

"""An image out of the store: an oci-archive, an OCI layout directory, or a docker-archive.

OCI forms carry the blobs as they are (same digests), so what is pushed from them is the same
image. A docker-archive (``docker load``'s format) names its config ``<hex>.json`` and its
layers ``<diff hex>/layer.tar``, uncompressed, as docker writes them.
"""

from __future__ import annotations

import io
import os
import shutil
import tarfile

from mrun import jsonio
from mrun.errors import InvalidSpec, MrunError, name_the_file
from mrun.images.reference import check_digest
from mrun.images.sources import OCI_MANIFEST, REF_NAME
from mrun.images.store import ImageStore
from mrun.images.unpack import decompressed
from mrun.kernel.tree import remove_tree

FORMATS = ("oci-archive", "oci-dir", "docker-archive")


def save(store: ImageStore, ref: str, path: str | None, fmt: str = "oci-archive") -> None:
    """``path`` None: the tarball to stdout, streamed (docker's save without -o)."""
    if fmt not in FORMATS:
        raise InvalidSpec(f"--format {fmt!r}: one of {', '.join(FORMATS)}")
    name, entry = store.image(ref)
    if path is None:
        if fmt == "oci-dir":
            raise InvalidSpec("--format oci-dir: a directory, not a stream: give -o DIRECTORY")
        out = os.fdopen(os.dup(1), "wb")
        with out, tarfile.open(fileobj=out, mode="w|") as tar:
            (_oci if fmt == "oci-archive" else _docker)(store, name, entry, _TarWriter(tar))
        return
    tmp = f"{path.rstrip('/')}.tmp-{os.getpid()}"
    made = False  # the temporary file or directory is ours to remove: made here, exclusively
    try:
        if fmt == "oci-dir":
            writer = _DirWriter(tmp)
            made = True
            _oci(store, name, entry, writer)
        else:
            # O_EXCL: the path's directory may be one others write (/tmp), and a link planted at
            # the temporary name must fail the save, not have root write its target.
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
            made = True
            with os.fdopen(fd, "wb") as f, tarfile.open(fileobj=f, mode="w") as tar:
                (_oci if fmt == "oci-archive" else _docker)(store, name, entry, _TarWriter(tar))
        os.rename(tmp, path)
        made = False
    except FileExistsError as e:
        if made:
            raise
        raise MrunError(f"save: {e.filename} exists (someone else's, or a save cut short: not ours to remove)")
    except OSError as e:
        name_the_file(e, path)  # a full disk: say where
        raise
    finally:
        if made and os.path.isdir(tmp) and not os.path.islink(tmp):
            remove_tree(tmp)
        elif made:
            os.unlink(tmp)


class _TarWriter:
    def __init__(self, tar: tarfile.TarFile) -> None:
        self.tar = tar

    def data(self, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mode = len(data), 0o644
        self.tar.addfile(info, io.BytesIO(data))

    def file(self, name: str, path: str) -> None:
        self.tar.add(path, name, recursive=False)


class _DirWriter:
    def __init__(self, root: str) -> None:
        self.root = root
        os.makedirs(root)

    def data(self, name: str, data: bytes) -> None:
        os.makedirs(os.path.dirname(os.path.join(self.root, name)), exist_ok=True)
        with open(os.path.join(self.root, name), "wb") as f:
            f.write(data)

    def file(self, name: str, path: str) -> None:
        os.makedirs(os.path.dirname(os.path.join(self.root, name)), exist_ok=True)
        shutil.copyfile(path, os.path.join(self.root, name))


def _oci(store: ImageStore, name: str, entry: dict, out: _TarWriter | _DirWriter) -> None:
    manifest = store.read_blob(entry["manifest"])
    desc = {
        "mediaType": jsonio.loads(manifest).get("mediaType") or OCI_MANIFEST,
        "digest": entry["manifest"],
        "size": len(manifest),
        "annotations": {REF_NAME: name},
    }
    out.data("oci-layout", b'{"imageLayoutVersion": "1.0.0"}')
    out.data("index.json", jsonio.dumps({"schemaVersion": 2, "manifests": [desc]}).encode())
    for digest in entry["blobs"]:
        out.file(f"blobs/sha256/{check_digest(digest)}", store.blob_path(digest))


def _docker(store: ImageStore, name: str, entry: dict, out: _TarWriter) -> None:
    manifest = store.read_json(entry["manifest"])
    config_hex = check_digest(entry["config"])
    out.file(f"{config_hex}.json", store.blob_path(entry["config"]))
    layers = []
    for layer, diff_id in zip(manifest.get("layers", []), entry["layers"], strict=True):
        member = f"{check_digest(diff_id)}/layer.tar"
        with open(store.blob_path(layer["digest"]), "rb") as f:
            plain = decompressed(f)
            info = tarfile.TarInfo(member)
            data = plain.read()  # layers are written whole: tarfile needs the size first
            info.size, info.mode = len(data), 0o644
            out.tar.addfile(info, io.BytesIO(data))
        layers.append(member)
    out.data(
        "manifest.json", jsonio.dumps([{"Config": f"{config_hex}.json", "RepoTags": [name], "Layers": layers}]).encode()
    )

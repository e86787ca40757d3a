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
from mrun.images import leases
from mrun.images.reference import check_digest
from mrun.images.sources import OCI_MANIFEST, REF_NAME
from mrun.images.store import ImageStore
from mrun.images.unpack import decompressed
from mrun.kernel.replacing import check_replaceable
from mrun.kernel.tree import remove_tree

FORMATS = ("oci-archive", "oci-dir", "docker-archive")


def save(store: ImageStore, refs: list[str], path: str | None, fmt: str = "oci-archive") -> None:
    """``refs``: one image or several (docker's `save A B`: one archive, each blob once).
    ``path`` None: the tarball to stdout, streamed (docker's save without -o)."""
    if fmt not in FORMATS:
        raise InvalidSpec(f"--format {fmt!r}: one of {', '.join(FORMATS)}")
    with leases.reading(store, refs) as chosen:  # an rmi meanwhile takes none of it from under us
        _save(store, chosen, path, fmt)


def _save(store: ImageStore, chosen: list[tuple[str, dict]], path: str | None, fmt: str) -> None:
    if path is None:
        if fmt == "oci-dir":
            raise InvalidSpec("--format oci-dir: a directory, not a stream: give -o DIRECTORY")
        out = os.fdopen(os.dup(1), "wb")
        with out, tarfile.open(fileobj=out, mode="w|") as tar:
            (_oci if fmt == "oci-archive" else _docker)(store, chosen, _TarWriter(tar))
        return
    check_replaceable(path, "save: -o")
    tmp = f"{path.rstrip('/')}.tmp-{os.getpid()}"
    made = False  # the temporary file or directory is ours to remove: made here, exclusively
    try:
        if fmt == "oci-dir":
            writer = _DirWriter(tmp)
            made = True
            _oci(store, chosen, writer)
        else:
            # O_EXCL: the path's directory may be one others write (/tmp), and a link planted at
            # the temporary name must fail the save, not have root write its target.
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
            made = True
            with os.fdopen(fd, "wb") as f, tarfile.open(fileobj=f, mode="w") as tar:
                (_oci if fmt == "oci-archive" else _docker)(store, chosen, _TarWriter(tar))
        os.rename(tmp, path)
        made = False
    except FileExistsError as e:
        if made:
            raise
        raise MrunError(f"save: {e.filename} exists (someone else's, or a save cut short: not ours to remove)")
    except OSError as e:
        if e.filename == tmp:  # the name the user gave, not ours beside it
            e.filename = path
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


def _oci(store: ImageStore, chosen: list[tuple[str, dict]], out: _TarWriter | _DirWriter) -> None:
    """An index naming each image (two tags of one image: two names, one manifest)."""
    descs = []
    for name, entry in chosen:
        manifest = store.read_blob(entry["manifest"])
        descs.append({
            "mediaType": jsonio.loads(manifest).get("mediaType") or OCI_MANIFEST,
            "digest": entry["manifest"],
            "size": len(manifest),
            "annotations": {REF_NAME: name},
        })
    out.data("oci-layout", b'{"imageLayoutVersion": "1.0.0"}')
    out.data("index.json", jsonio.dumps({"schemaVersion": 2, "manifests": descs}).encode())
    for digest in dict.fromkeys(d for _, entry in chosen for d in entry["blobs"]):
        out.file(f"blobs/sha256/{check_digest(digest)}", store.blob_path(digest))


def _docker(store: ImageStore, chosen: list[tuple[str, dict]], out: _TarWriter) -> None:
    """docker's layout: one manifest.json entry per image (its tags together), each config and
    layer written once however many images share it."""
    entries: dict[str, dict] = {}  # config digest -> its manifest.json entry
    written: set[str] = set()
    for name, entry in chosen:
        if entry["config"] in entries:
            entries[entry["config"]]["RepoTags"].append(name)
            continue
        manifest = store.read_json(entry["manifest"])
        config_hex = check_digest(entry["config"])
        out.file(f"{config_hex}.json", store.blob_path(entry["config"]))
        layers = []
        for layer, diff_id in zip(manifest.get("layers", []), entry["layers"], strict=True):
            member = f"{check_digest(diff_id)}/layer.tar"
            layers.append(member)
            if member in written:
                continue
            written.add(member)
            with open(store.blob_path(layer["digest"]), "rb") as f:
                plain = decompressed(f)
                info = tarfile.TarInfo(member)
                data = plain.read()  # layers are written whole: tarfile needs the size first
                info.size, info.mode = len(data), 0o644
                out.tar.addfile(info, io.BytesIO(data))
        entries[entry["config"]] = {"Config": f"{config_hex}.json", "RepoTags": [name], "Layers": layers}
    out.data("manifest.json", jsonio.dumps(list(entries.values())).encode())

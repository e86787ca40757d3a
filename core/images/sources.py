"""Where images come from: an OCI layout directory, an oci-archive or a docker-archive tarball.

Each source answers ``manifests()`` (the descriptors it offers, with names) and ``open(digest)``.
A docker-archive has no manifests of its own: one is made from its ``manifest.json``, its
config and its layer files, so everything after this point sees OCI only.
"""

from __future__ import annotations

import hashlib
import os
import tarfile

from mrun import jsonio
from mrun.errors import MrunError, NotFound
from mrun.images.reference import check_digest
from mrun.images.shapes import DOCKER_ARCHIVE, checked, read_document

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import IO, Any

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
REF_NAME = "org.opencontainers.image.ref.name"


class Source:
    def index(self) -> dict[str, Any]:
        raise NotImplementedError

    def open(self, digest: str) -> IO[bytes]:
        raise NotImplementedError

    def read(self, digest: str) -> bytes:
        """A JSON document (index, manifest, config), checked against its digest."""
        with self.open(digest) as f:
            data = read_document(f, f"blob {digest}")
        if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
            raise MrunError(f"blob {digest} in the archive hashes differently; refused")
        return data


class LayoutDir(Source):
    def __init__(self, path: str) -> None:
        self.path = path
        if not os.path.exists(os.path.join(path, "index.json")):
            raise MrunError(f"{path}: not an OCI layout (no index.json)")

    def index(self) -> dict[str, Any]:
        try:
            with open(os.path.join(self.path, "index.json"), "rb") as f:
                return jsonio.loads(read_document(f, f"{self.path}/index.json"))
        except OSError as e:
            raise MrunError(f"{self.path}/index.json: {e.strerror}")

    def open(self, digest: str) -> IO[bytes]:
        try:
            return open(os.path.join(self.path, "blobs", "sha256", check_digest(digest)), "rb")
        except FileNotFoundError:
            raise NotFound(f"{self.path}: blob {digest} is missing")


class _Tar:
    def __init__(self, path: str) -> None:
        self.path = path
        try:
            self.tar = tarfile.open(path)
        except OSError as e:
            raise MrunError(f"{path}: {e.strerror or e}")
        except tarfile.TarError:
            raise MrunError(f"{path}: not a tar archive (plain, gzip, bzip2 or xz), nor an OCI layout directory")
        self.members = {m.name.lstrip("./"): m for m in self.tar.getmembers() if m.isfile()}

    def member(self, name: str) -> IO[bytes]:
        m = self.members.get(name.lstrip("./"))
        if m is None:
            raise NotFound(f"{self.path}: {name} is missing from the archive")
        f = self.tar.extractfile(m)
        assert f is not None
        return f  # type: ignore[return-value]


class OCIArchive(Source):
    def __init__(self, path: str) -> None:
        self.tar = _Tar(path)

    def index(self) -> dict[str, Any]:
        with self.tar.member("index.json") as f:
            return jsonio.loads(read_document(f, "index.json"))

    def open(self, digest: str) -> IO[bytes]:
        return self.tar.member(f"blobs/sha256/{check_digest(digest)}")


class DockerArchive(Source):
    """``docker save`` format: manifest.json lists Config, RepoTags and Layers (uncompressed tars)."""

    def __init__(self, path: str) -> None:
        self.tar = _Tar(path)
        with self.tar.member("manifest.json") as f:
            try:
                self.entries = checked(jsonio.loads(read_document(f, "manifest.json")), DOCKER_ARCHIVE, "manifest.json")
            except ValueError as e:
                raise MrunError(f"{path}: manifest.json is not JSON: {e}")
        self.files: dict[str, str] = {}  # digest -> member name
        self.made: dict[str, bytes] = {}  # manifests made here
        self._index: dict[str, Any] = {"schemaVersion": 2, "manifests": []}
        for entry in self.entries:
            config = self._digest_of(entry["Config"])
            layers = []
            for name in entry["Layers"]:
                digest = self._digest_of(name)
                layers.append({"mediaType": OCI_LAYER, "digest": digest, "size": self.tar.members[name].size})
            manifest = {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": config, "size": self.tar.members[entry["Config"]].size},
                "layers": layers,
            }
            data = jsonio.dumps(manifest).encode()
            digest = "sha256:" + hashlib.sha256(data).hexdigest()
            self.made[digest] = data
            for tag in entry.get("RepoTags") or [None]:
                desc = {"mediaType": OCI_MANIFEST, "digest": digest, "size": len(data)}
                if tag:
                    desc["annotations"] = {REF_NAME: tag}
                self._index["manifests"].append(desc)

    def _digest_of(self, name: str) -> str:
        h = hashlib.sha256()
        with self.tar.member(name) as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        digest = "sha256:" + h.hexdigest()
        self.files[digest] = name
        return digest

    def index(self) -> dict[str, Any]:
        return self._index

    def open(self, digest: str) -> IO[bytes]:
        import io

        if digest in self.made:
            return io.BytesIO(self.made[digest])
        if digest not in self.files:
            raise NotFound(f"{self.tar.path}: blob {digest} is not in the archive")
        return self.tar.member(self.files[digest])


def open_source(path: str) -> Source:
    """An OCI layout directory, or a tarball holding an OCI layout or a docker-archive."""
    if os.path.isdir(path):
        return LayoutDir(path)
    if not os.path.exists(path):
        raise NotFound(f"{path}: no such file or directory")
    probe = _Tar(path)
    if "index.json" in probe.members and "oci-layout" in probe.members:
        return OCIArchive(path)
    if "manifest.json" in probe.members:
        return DockerArchive(path)
    raise MrunError(f"{path}: neither an oci-archive (index.json, oci-layout) nor a docker-archive (manifest.json)")

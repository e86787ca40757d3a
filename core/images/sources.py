"""Where images come from: an OCI layout directory, an oci-archive or a docker-archive tarball.

Each source answers ``manifests()`` (the descriptors it offers, with names) and ``open(digest)``.
A docker-archive has no manifests of its own: one is made from its ``manifest.json``, its
config and its layer files, so everything after this point sees OCI only.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import tarfile

from mrun import jsonio
from mrun.errors import MrunError, NotFound
from mrun.images.reference import check_digest
from mrun.images.shapes import DOCKER_ARCHIVE, checked, read_document
from mrun.images.unpack import GZIP_MAGIC, ZSTD_MAGIC
from mrun.kernel.fdpass import write_all

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
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
    """An OCI layout directory, which someone else may have made (unpacked from a download): only
    its regular files are read, and only inside it (kernel.inroot: a link is followed within the
    directory, never out of it). A fifo held the load forever, a link to /dev/zero filled the
    store's disk."""

    def __init__(self, path: str) -> None:
        self.path = path
        if not os.path.exists(os.path.join(path, "index.json")):
            raise MrunError(f"{shown(path)}: not an OCI layout (no index.json)")

    def index(self) -> dict[str, Any]:
        with self._open("index.json") as f:
            return jsonio.loads(read_document(f, f"{self.path}/index.json"))

    def open(self, digest: str) -> IO[bytes]:
        return self._open(f"blobs/sha256/{check_digest(digest)}", f"blob {digest}")

    def _open(self, name: str, what: str = "") -> IO[bytes]:
        from mrun.kernel.inroot import open_regular

        try:
            return os.fdopen(open_regular(self.path, name), "rb")
        except FileNotFoundError:
            raise NotFound(f"{shown(self.path)}: {what or name} is missing")
        except OSError as e:
            raise MrunError(f"{shown(self.path)}: {name}: {e.strerror or e}; only its regular files are read")


class _Tar:
    def __init__(self, path: str) -> None:
        self.path = path
        try:
            self.tar = tarfile.open(path)
        except OSError as e:
            raise MrunError(f"{shown(path)}: {e.strerror or e}")
        except tarfile.TarError:
            raise MrunError(f"{shown(path)}: not a tar archive (plain, gzip, bzip2 or xz), nor an OCI layout directory")
        self.members = {m.name.lstrip("./"): m for m in self.tar.getmembers() if m.isfile()}

    def member(self, name: str) -> IO[bytes]:
        m = self.members.get(name.lstrip("./"))
        if m is None:
            raise NotFound(f"{shown(self.path)}: {name} is missing from the archive")
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
                raise MrunError(f"{shown(path)}: manifest.json is not JSON: {e}")
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
            raise NotFound(f"{shown(self.tar.path)}: blob {digest} is not in the archive")
        return self.tar.member(self.files[digest])


STDIN = "/proc/self/fd/0"


@contextlib.contextmanager
def spooled_stdin(directory: str) -> Iterator[str]:
    """stdin's tarball (docker's ``save IMAGE | load``) as a path ``open_source`` reads: stdin
    itself where it is a file (``load < x.tar``), else a copy (``spooled``)."""
    if os.isatty(0):
        raise MrunError("load: no archive: name one, give -i FILE, or send a tarball on stdin (not a terminal)")
    if stat.S_ISREG(os.fstat(0).st_mode):
        yield STDIN
        return
    with spooled(0, directory, "stdin") as path:
        yield path


@contextlib.contextmanager
def readable(path: str, directory: str) -> Iterator[str]:
    """A named archive as ``open_source`` reads it: a directory or a regular file as it is; a
    stream (a fifo, ``-i <(curl ...)``, a device) copied first, as stdin is, and refused at its
    first block if that is no archive's: tarfile's xz probe read ``-i /dev/zero`` for ever."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        yield path  # open_source names what is wrong
        return
    if stat.S_ISDIR(mode) or stat.S_ISREG(mode):
        yield path
        return
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY)
    except OSError as e:
        raise MrunError(f"{path}: {e.strerror or e}")
    try:
        with spooled(fd, directory, path) as copy:
            yield copy
    finally:
        os.close(fd)


@contextlib.contextmanager
def spooled(source: int, directory: str, what: str) -> Iterator[str]:
    """A stream's tarball copied into a file of ours that has no name (O_TMPFILE in
    ``directory``, the image store's, or named and unlinked at once where the file system lacks
    it): nothing is left behind, however the load ends. A tar archive is read out of order (its
    index first), so a stream cannot be read as it comes."""
    if os.isatty(source):
        raise MrunError(f"load: {what} is a terminal, not an archive")
    os.makedirs(directory, mode=0o700, exist_ok=True)
    try:
        fd = os.open(directory, os.O_TMPFILE | os.O_RDWR | os.O_CLOEXEC, 0o600)
    except OSError:
        named = os.path.join(directory, f"stdin.tmp-{os.getpid()}")
        fd = os.open(named, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        os.unlink(named)
    try:
        size, head = 0, b""
        while chunk := os.read(source, 1 << 20):
            if len(head) < 512:  # the first block, looked at once it is whole
                head += chunk[: 512 - len(head)]
                if len(head) == 512:
                    _looks_like_an_archive(head, what)
            write_all(fd, chunk)
            size += len(chunk)
        if not size:
            raise MrunError(f"load: {what} was empty: no archive came")
        copy = f"/proc/self/fd/{fd}"
        _COPIES[copy] = what
        yield copy
    finally:
        _COPIES.pop(f"/proc/self/fd/{fd}", None)
        os.close(fd)


COMPRESSED = (GZIP_MAGIC, b"BZh", b"\xfd7zXZ\x00", ZSTD_MAGIC)  # gzip, bzip2, xz, zstd


def _looks_like_an_archive(head: bytes, what: str) -> None:
    """The first bytes of a stream: a compressed stream's magic, or a tar header whose checksum
    holds. Anything else (``yes | mrun load``, ``< /dev/zero``: zeros are a tar's end, not its
    start) is refused here, before it is copied on for ever."""
    if head.startswith(COMPRESSED):
        return
    try:
        tarfile.TarInfo.frombuf(head[:512], "utf-8", "surrogateescape")
    except tarfile.HeaderError:
        raise MrunError(f"{what}: not a tar archive (plain, gzip, bzip2 or xz), nor an OCI layout directory")


_COPIES: dict[str, str] = {}  # a spooled copy's path -> what it is a copy of, for messages


def shown(path: str) -> str:
    """How a source's path is named in a message: a copy's as what it copies, stdin as "stdin"."""
    return _COPIES.get(path) or ("stdin" if path == STDIN else path)


def open_source(path: str) -> Source:
    """An OCI layout directory, or a tarball holding an OCI layout or a docker-archive."""
    if os.path.isdir(path):
        return LayoutDir(path)
    if not os.path.exists(path):
        raise NotFound(f"{shown(path)}: no such file or directory")
    probe = _Tar(path)
    if "index.json" in probe.members and "oci-layout" in probe.members:
        return OCIArchive(path)
    if "manifest.json" in probe.members:
        return DockerArchive(path)
    raise MrunError(
        f"{shown(path)}: neither an oci-archive (index.json, oci-layout) nor a docker-archive (manifest.json)"
    )

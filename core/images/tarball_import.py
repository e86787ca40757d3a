"""docker's ``import``: an image of one layer from a filesystem tarball (``mrun export``'s, a
rootfs someone packed), from a file, stdin or an http(s) URL, plain or gzip, bzip2, xz or zstd.

The tarball is stored as an uncompressed layer (hashed as it is written, as ``commit`` writes
its layer) and unpacked as any pulled layer is, with ``install``'s checks: its ``..`` names,
links out and writes through links are refused as a hostile layer's are. Its config has the
host's platform (or ``--platform``), no command unless ``--change`` gives one, and a history
entry saying where it came from, as docker's import writes it."""

from __future__ import annotations

import io
import os

from mrun.errors import InvalidSpec, MrunError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import IO, Any

BZIP2_MAGIC, XZ_MAGIC = b"BZh", b"\xfd7zXZ\x00"


def _plain(f: IO[bytes]) -> IO[bytes]:
    """The tarball's bytes, whatever of docker's compressions it came in."""
    from mrun.images.unpack import decompressed

    buffered = f if hasattr(f, "peek") else io.BufferedReader(f)  # type: ignore[arg-type]
    head = buffered.peek(6)[:6]  # type: ignore[attr-defined]
    if head.startswith(BZIP2_MAGIC):
        import bz2

        return bz2.BZ2File(buffered)  # type: ignore[return-value]
    if head.startswith(XZ_MAGIC):
        import lzma

        return lzma.LZMAFile(buffered)  # type: ignore[return-value]
    return decompressed(buffered)


class _Reading:
    """The source, decompressed, as ``copyfileobj`` reads it: an error of the reading (a stream
    cut short or damaged, a connection broken off) is one line naming the source, where an
    error of the writing (a full disk) stays the store's to name. Its tar headers are walked as
    it goes (``TarWalk``)."""

    def __init__(self, f: IO[bytes], source: str) -> None:
        self.f, self.source, self.plain = f, source, None
        self.walk = TarWalk(f"import {source}")

    def read(self, n: int = -1) -> bytes:
        try:
            if self.plain is None:
                self.plain = _plain(self.f)
            data = self.plain.read(n)
        except Exception as e:  # noqa: BLE001 - gzip's, bz2's, lzma's, zstd's and urllib3's, alike
            raise InvalidSpec(f"import {self.source}: not a whole tarball ({e or e.__class__.__name__})") from None
        self.walk.feed(data)
        return data


BLOCK = 512
TRAILING_MAX = 16 << 20  # past a tarball's end: its writer's record padding (GNU tar's: 10 KiB), never more


class TarWalk:
    """A tar stream's headers, followed as its bytes go by: a block that is no tar header is
    refused at once, and after the archive's end (its first all-zero header block, where
    tarfile stops reading) at most TRAILING_MAX bytes more are taken. The tarball is stored as
    it came (its trailing bytes belong to its diff id), so `mrun import /dev/zero`, or a URL
    that never ends, was copied until the disk was full before anything read it."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.pos = 0  # bytes seen
        self.next = 0  # where the next header block begins
        self.header = b""  # the part of it seen so far
        self.extensions = False  # an old GNU sparse header's extension blocks follow
        self.after = 0  # the data of a header whose extension blocks come first
        self.ended = -1  # where the archive ended

    def feed(self, data: bytes) -> None:
        base = self.pos
        self.pos += len(data)
        while self.ended < 0:
            at = self.next + len(self.header) - base  # where in ``data`` the header goes on
            if at >= len(data):
                break
            self.header += data[at:at + BLOCK - len(self.header)]
            if len(self.header) < BLOCK:
                break
            block, self.header = self.header, b""
            self._header(block)
        if self.ended >= 0 and self.pos - self.ended > TRAILING_MAX:
            raise InvalidSpec(f"{self.what}: more than {TRAILING_MAX >> 20} MiB after the tarball's end: "
                              "not a tarball's padding")

    def _header(self, block: bytes) -> None:
        at = self.next
        if self.extensions:  # each says whether another follows (its byte 504)
            self.extensions = block[504] != 0
            self.next = at + BLOCK + (0 if self.extensions else self.after)
            return
        if block.count(0) == BLOCK:
            self.ended = at + BLOCK
            return
        size = _number(block[124:136])
        if size is None or size < 0 or _number(block[148:156]) not in _checksums(block):
            raise InvalidSpec(f"{self.what}: not a tar archive (the block at byte {at} is no tar header)")
        data = -(-size // BLOCK) * BLOCK
        self.extensions = block[156:157] == b"S" and block[482] != 0  # old GNU sparse: extensions first
        self.after = data
        self.next = at + BLOCK + (0 if self.extensions else data)


def _number(field: bytes) -> int | None:
    """A tar header's number, as tarfile reads it: octal digits (NUL or space ended), or GNU's
    base-256 (its first byte's top bit set). None: not a number."""
    if field[:1] and field[0] & 0x80:
        value = int.from_bytes(field[1:], "big")
        return value - (1 << (8 * len(field[1:]))) if field[0] == 0xFF else value
    text = field.split(b"\0", 1)[0].strip()
    try:
        return int(text or b"0", 8)
    except ValueError:
        return None


def _checksums(block: bytes) -> tuple[int, int]:
    """The header's sum with its checksum field as spaces, unsigned and signed (tarfile takes either)."""
    blank = block[:148] + b" " * 8 + block[156:]
    return sum(blank), sum(b - 256 if b > 127 else b for b in blank)


def _opened(source: str) -> tuple[IO[bytes], Any]:
    """-> (the source's byte stream, what to close after)."""
    import sys

    if source == "-":
        return sys.stdin.buffer, None
    if source.startswith(("http://", "https://")):
        import urllib3
        from mrun.images.registry import timeout

        wait = timeout()
        http = urllib3.PoolManager(retries=urllib3.Retry(3, redirect=5),
                                   timeout=urllib3.Timeout(connect=wait, read=wait))
        try:
            resp = http.request("GET", source, preload_content=False)
        except urllib3.exceptions.HTTPError as e:
            raise MrunError(f"import {source}: {e}") from None
        if resp.status != 200:
            resp.close()
            raise MrunError(f"import {source}: HTTP {resp.status}")
        return resp, resp
    try:
        f = open(source, "rb")  # noqa: SIM115 - closed by the caller
    except OSError as e:
        raise MrunError(f"import {source}: {e.strerror or e}") from None
    return f, f


def import_tarball(store: Any, source: str, name: str, message: str = "", changes: list[str] | None = None,
                   platform: tuple[str, str] | None = None) -> str:
    """The image ``name`` made of the tarball at ``source`` (a path, "-" or a URL). -> its id."""
    import shutil
    import tarfile

    from mrun.images.commit import apply_changes, check_name, parse_change, put_image, write_layer
    from mrun.images.install import _unpack_layer, host_platform
    from mrun.images.store import normalize
    from mrun.state import now_rfc3339

    check_name(name, "import")
    # applied before anything is read: a change refused (a bad port, no signal) leaves no layer
    cfg = apply_changes({}, [parse_change(text) for text in changes or ()])
    stream, closing = _opened(source)
    try:
        written = write_layer(store, lambda out: shutil.copyfileobj(_Reading(stream, source), out, 1 << 20))
    finally:
        if closing is not None:
            closing.close()
    layer, diff_id = written.descriptor, written.digest
    os_name, arch = platform or host_platform()
    with written, store.lock():
        written.store_in(store)
        if not store.has_layer(diff_id):
            try:
                _unpack_layer(store, layer, diff_id)
            except (MrunError, tarfile.TarError) as e:  # a hostile or damaged one: its blob goes too
                if not any(diff_id in entry.get("blobs") or () for entry in store.index().values()):
                    os.unlink(store.blob_path(diff_id))
                raise InvalidSpec(f"import {source}: {e}") from None
        now = now_rfc3339()
        config = {"architecture": arch, "os": os_name, "created": now, "config": cfg,
                  "rootfs": {"type": "layers", "diff_ids": [diff_id]},
                  "history": [{"created": now, "created_by": "mrun import",
                               "comment": message or f"Imported from {source}"}]}
        config_digest, manifest_digest = put_image(store, config, [layer])
        index = store.index()
        index[normalize(name)] = {"manifest": manifest_digest, "config": config_digest, "layers": [diff_id],
                                  "blobs": [manifest_digest, config_digest, diff_id], "wasm": False,
                                  "modules": [], "created": now, "size": layer["size"]}
        store.save_index(index)
    return config_digest

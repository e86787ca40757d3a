"""Unpack one layer archive into its own directory, in the form overlayfs stacks.

Each layer is unpacked alone into ``layers/<diff id>/fs`` and used as an overlay lower
directory, so whiteouts are written the way overlayfs reads them: ``.wh.NAME`` becomes a 0/0
character device NAME, ``.wh..wh..opq`` the ``trusted.overlay.opaque=y`` attribute on its
directory. Nothing in an archive may write outside the layer directory: absolute names, ``..``
components, a parent that is a symlink (``a -> /etc`` then ``a/passwd``), and hard links to
such names are refused with the entry's name, and the half-written layer is removed.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tarfile

from mrun.errors import MrunError
from mrun.kernel.fdpass import write_all
from mrun.kernel.overlay import OPAQUE_XATTR
from mrun.kernel.tree import remove_tree

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import IO

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
# overlayfs's own metadata (redirects, metacopy, origin, opaque; user.overlay.* on a userxattr
# mount), which the kernel reads from lower layers as its own: never a file's attribute in a layer.
OVERLAY_XATTRS = ("trusted.overlay.", "user.overlay.")


class HostileLayer(MrunError):
    pass


class _Hashing:
    """A read-through sha256 of the uncompressed stream: the layer's diff id."""

    def __init__(self, f: IO[bytes]) -> None:
        self.f, self.h = f, hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        data = self.f.read(n)
        self.h.update(data)
        return data


def decompressed(f: IO[bytes]) -> IO[bytes]:
    """gzip, zstd or plain, told by the first bytes (media types lie more often than magic does)."""
    head = f.peek(4)[:4] if hasattr(f, "peek") else b""
    if head.startswith(GZIP_MAGIC):
        import gzip

        return gzip.GzipFile(fileobj=f)  # type: ignore[return-value]
    if head.startswith(ZSTD_MAGIC):
        import zstandard

        return zstandard.ZstdDecompressor().stream_reader(f)  # type: ignore[return-value]
    return f


def _clean_name(name: str) -> str:
    if name.strip("/.") == "":
        return ""  # the layer's root directory itself ("/", "./"), as umoci and others write it
    if name.startswith("/"):
        raise HostileLayer(f"layer entry {name!r}: absolute path refused")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise HostileLayer(f"layer entry {name!r}: '..' would leave the layer")
    return "/".join(parts)


def _checked_parent(root: str, rel: str, entry: str) -> str:
    """The entry's parent directory inside root, made if needed, never through a symlink."""
    path = root
    for part in rel.split("/")[:-1]:
        path = os.path.join(path, part)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            os.mkdir(path, 0o755)
            continue
        if stat.S_ISLNK(st.st_mode):
            raise HostileLayer(f"layer entry {entry!r}: goes through the symlink {part!r}; refused")
        if not stat.S_ISDIR(st.st_mode):
            raise HostileLayer(f"layer entry {entry!r}: {part!r} is not a directory")
    return path


def unpack(archive: IO[bytes], dest: str, expect_diff_id: str | None = None) -> str:
    """Unpack into ``dest`` (made here; removed again on any error). -> the diff id."""
    os.makedirs(dest, mode=0o755)
    try:
        return _unpack(archive, dest, expect_diff_id)
    except BaseException:
        remove_tree(dest, ignore_errors=True)
        raise


def _unpack(archive: IO[bytes], dest: str, expect_diff_id: str | None) -> str:
    """``_unpack_stream``, a compressed stream gzip or zstd cannot finish (cut short: "ended
    before the end-of-stream marker", an internal error) said as a damaged archive."""
    try:
        return _unpack_stream(archive, dest, expect_diff_id)
    except _damaged() as e:
        raise MrunError(f"layer archive is damaged: its compressed data is cut short or corrupt ({e})")


def _set_dir_times(root: str, dir_times: list[tuple[str, float]]) -> None:
    """Each directory's time, set last (its entries changed it), and through no symlink: a later
    entry may have replaced a parent of it (``a/b``, then ``a -> /tmp``), and a path resolved
    now went through the link: the times of the host's ``/tmp/b`` were set. Each one is opened
    component by component without following; one no longer there as a directory is passed over
    (a later entry replaced it, and its times are that entry's)."""
    root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for rel, mtime in reversed(dir_times):
            fd = _open_dir_below(root_fd, rel)
            if fd >= 0:
                try:
                    os.utime(fd, (mtime, mtime))
                finally:
                    os.close(fd)
    finally:
        os.close(root_fd)


def _open_dir_below(root_fd: int, rel: str) -> int:
    """``rel`` under ``root_fd`` opened for its times, every component a directory and none a
    symlink; -1 if it is not so any more."""
    fd = os.dup(root_fd)
    for part in rel.split("/"):
        try:
            below = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
        except OSError:  # ENOTDIR, ELOOP (a symlink), ENOENT
            below = -1
        os.close(fd)
        if below < 0:
            return -1
        fd = below
    return fd


def _skip_to_next(tar: tarfile.TarFile, m: tarfile.TarInfo) -> None:
    """Read on to the next header ourselves, stopping where the archive ends: tarfile's stream
    mode skips an entry's data it was not asked for (a whiteout's, an unknown type's) by reading
    block after block, never looking for the end, so a header claiming 2**88 bytes spun the CPU
    for ever. Go's archive/tar (containerd's) stops there with "unexpected EOF"."""
    stream = tar.fileobj
    left = tar.offset - stream.tell()  # type: ignore[union-attr]
    while left > 0:
        got = len(stream.read(min(left, 1 << 20)))  # type: ignore[union-attr]
        if not got:
            if stream.tell() < m.offset_data + m.size:  # type: ignore[union-attr]
                raise tarfile.ReadError(f"it ends inside the {m.size} bytes the entry says it holds")
            return  # only the last block's padding is missing (umoci's layers): the end, as tarfile takes it
        left -= got


def _damaged() -> tuple[type[BaseException], ...]:
    """What gzip and zstd raise for a stream they cannot finish, which is not an OSError."""
    import sys
    import zlib

    zstd = sys.modules.get("zstandard")
    return (EOFError, zlib.error, *((zstd.ZstdError,) if zstd is not None else ()))


def _unpack_stream(archive: IO[bytes], dest: str, expect_diff_id: str | None) -> str:
    stream = _Hashing(decompressed(archive))
    dir_times: list[tuple[str, float]] = []
    dropped: list[tuple[str, list[str]]] = []
    try:
        tar = tarfile.open(fileobj=stream, mode="r|")  # type: ignore[arg-type]
    except tarfile.TarError as e:
        raise MrunError(f"layer is not a tar archive: {e}")
    with tar:
        members = iter(tar)
        while True:
            try:
                m = next(members)
            except StopIteration:
                break
            except tarfile.ReadError as e:
                # Some writers (umoci, seen here) end a layer right after the last file's data,
                # without padding or end-of-archive blocks; Go's archive/tar, and so containerd,
                # accept that. Anything cut short inside a header or a file's data is refused.
                if str(e) == "unexpected end of data":
                    break
                raise MrunError(f"layer archive is damaged: {e}")
            except tarfile.TarError as e:
                raise MrunError(f"layer archive is damaged: {e}")
            if m.size < 0:  # a pax "size" record's word: tarfile would seek backwards for the next header
                raise HostileLayer(f"layer entry {_shown(m.name)}: size {m.size} is negative")
            try:
                _entry(tar, m, dest, dir_times, dropped)
                _skip_to_next(tar, m)
            except tarfile.TarError as e:
                raise MrunError(f"layer archive is damaged at {_shown(m.name)}: {e}")
            except OSError as e:  # the entry's own name, not the unpacking directory's path
                raise MrunError(f"layer entry {_shown(m.name)}: {e.strerror or e}")
    while stream.read(1 << 20):  # the tar's zero padding belongs to the diff id too
        pass
    _set_dir_times(dest, dir_times)
    diff_id = "sha256:" + stream.h.hexdigest()
    if expect_diff_id and diff_id != expect_diff_id:
        raise HostileLayer(f"layer content hashes to {diff_id}, the image config says {expect_diff_id}; refused")
    if dropped:
        _say_dropped(diff_id, dropped)
    return diff_id


def _say_dropped(diff_id: str, dropped: list[tuple[str, list[str]]]) -> None:
    """One line per layer, however many entries carried them."""
    import sys

    name, keys = dropped[0]
    more = f" and {len(dropped) - 1} more entries" if len(dropped) > 1 else ""
    print(f"mrun: warning: layer {diff_id[7:19]}: entry {name!r}{more}: {', '.join(keys)} dropped "
          "(overlayfs's own attributes, which a layer never sets: whiteouts say what it hides)", file=sys.stderr)


def _shown(name: str) -> str:
    """An entry's name for a message: quoted, and cut short if a hostile one is kilobytes long."""
    return repr(name if len(name) <= 200 else name[:200] + "...")


ID_MAX = 2**32 - 1  # uid_t and gid_t; 2**32 - 1 itself means "unchanged" to lchown, as in containerd
TIME_MAX = 2**62  # seconds; beyond what time_t and every filesystem holds


def _owner(m: tarfile.TarInfo) -> tuple[int, int]:
    """The entry's uid and gid, refused outside uid_t (Python could not pass them; Go's syscall
    package would cut them to 32 bits, 2**32 becoming root)."""
    for field, value in (("uid", m.uid), ("gid", m.gid)):
        if not 0 <= value <= ID_MAX:
            raise HostileLayer(f"layer entry {_shown(m.name)}: {field} {value} is out of range (0 to {ID_MAX})")
    return m.uid, m.gid


def _device(m: tarfile.TarInfo) -> tuple[int, int]:
    """The entry's device numbers, refused outside what mknod takes (Python could not pass a
    negative one; Go's unix.Mkdev would cut them to 32 bits)."""
    for field, value in (("devmajor", m.devmajor), ("devminor", m.devminor)):
        if not 0 <= value <= ID_MAX:
            raise HostileLayer(f"layer entry {_shown(m.name)}: {field} {value} is out of range (0 to {ID_MAX})")
    return m.devmajor, m.devminor


def _bounded(mtime: float) -> float:
    """A time as containerd bounds it (archive.boundTime): one before 1970 or past what time_t
    holds is the epoch, not a failed unpack."""
    return mtime if 0 <= mtime <= TIME_MAX else 0


def _xattr_name(m: tarfile.TarInfo, name: str) -> str:
    if "\x00" in name or not name:
        raise HostileLayer(f"layer entry {_shown(m.name)}: extended attribute name {_shown(name)} is empty or "
                           "holds a NUL byte")
    return name


_CHUNK = 64 << 10  # the grain of the holes kept
_ZEROS = bytes(_CHUNK)


def _copy_keeping_holes(src: IO[bytes], fd: int, size: int) -> None:
    """Copy a file's data, seeking over runs of zeros instead of writing them, so a sparse file
    (a GNU sparse entry, or a dense one full of zeros) stays sparse on disk: a 6 kB layer must
    not fill a gigabyte."""
    while chunk := src.read(_CHUNK):
        if chunk == _ZEROS[: len(chunk)]:
            os.lseek(fd, len(chunk), os.SEEK_CUR)
        else:
            write_all(fd, chunk)
    os.ftruncate(fd, size)


def _entry(tar: tarfile.TarFile, m: tarfile.TarInfo, root: str, dir_times: list[tuple[str, float]],
           dropped: list[tuple[str, list[str]]]) -> None:
    rel = _clean_name(m.name)
    if not rel:
        return  # "./" itself
    parent = _checked_parent(root, rel, m.name)
    base = rel.rsplit("/", 1)[-1]
    if base == OPAQUE:
        os.setxattr(parent, OPAQUE_XATTR, b"y")
        return
    if base.startswith(WHITEOUT):
        name = base[len(WHITEOUT) :]
        if name in ("", ".", ".."):  # ".wh..." removed the layer's parent directory (containerd refuses it too)
            raise HostileLayer(f"layer entry {m.name!r}: a whiteout of {name!r} names no file; refused")
        target = os.path.join(parent, name)
        remove_tree(target)
        os.mknod(target, stat.S_IFCHR | 0o000, os.makedev(0, 0))
        return
    path = os.path.join(parent, base)
    if m.isdir():
        if not os.path.isdir(path) or os.path.islink(path):
            remove_tree(path)
            os.mkdir(path, 0o700)
        dir_times.append((rel, _bounded(m.mtime)))
    else:
        remove_tree(path)
        if m.isreg():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            try:
                _copy_keeping_holes(tar.extractfile(m), fd, m.size)  # type: ignore[arg-type]
            finally:
                os.close(fd)
        elif m.issym():
            os.symlink(m.linkname, path)  # a symlink may point anywhere: it is never followed here
        elif m.islnk():
            target_rel = _clean_name(m.linkname)
            target = os.path.join(_checked_parent(root, target_rel, m.name), target_rel.rsplit("/", 1)[-1])
            if os.path.islink(target) or not os.path.lexists(target):
                raise HostileLayer(f"layer entry {m.name!r}: hard link to {m.linkname!r}, not a file of this layer")
            os.link(target, path, follow_symlinks=False)
            return  # a hard link shares its target's owner and mode
        elif m.ischr() or m.isblk():
            kind = stat.S_IFCHR if m.ischr() else stat.S_IFBLK
            os.mknod(path, kind | (m.mode & 0o7777), os.makedev(*_device(m)))
        elif m.isfifo():
            os.mkfifo(path, m.mode & 0o7777)
        else:
            raise MrunError(f"layer entry {m.name!r}: unsupported type {m.type!r}")
    os.lchown(path, *_owner(m))
    if not m.issym():
        os.chmod(path, m.mode & 0o7777)
        overlays = []
        for key, value in (m.pax_headers or {}).items():
            if key.startswith("SCHILY.xattr."):
                name = _xattr_name(m, key[len("SCHILY.xattr.") :])
                if name.startswith(OVERLAY_XATTRS):
                    overlays.append(name)
                    continue
                try:
                    os.setxattr(path, name, value.encode("utf-8", "surrogateescape"))
                except OSError:
                    pass  # e.g. security.* without the right to set it
        if overlays:
            dropped.append((rel, overlays))
        if not m.isdir():
            os.utime(path, (_bounded(m.mtime),) * 2)
    else:
        os.utime(path, (_bounded(m.mtime),) * 2, follow_symlinks=False)

"""The image store: verified blobs, names, and layers unpacked once and shared.

Layout under the image root (``/var/lib/mrun`` unless ``--image-root``)::

    blobs/sha256/<hex>     manifests, configs and layer archives, named by their digest
    layers/<diff-hex>/fs   one unpacked layer (overlay whiteouts), shared by every image and container
    images.json            name -> {"manifest": digest, "config": digest, "layers": [diff ids], ...}
    containers/<id>/       a container made from an image: config.json, rootfs, upper, work
    lock                   flock: writers (load, pull, rmi, prune, container creation) take it

Blobs are written to a temporary file, hashed while written, checked against the digest they
claim and only then renamed into place, so an interrupted or forged transfer never leaves a
blob under a name it does not hash to. Small blobs (manifests, configs) are hashed again on
every read.
"""

from __future__ import annotations

import hashlib
import os
import stat

from mrun import jsonio
from mrun.bundles import MARKER, container_ids  # MARKER: in a container's directory, the image it was made from
from mrun.errors import MrunError, NotFound, name_the_file
from mrun.images.reference import Reference, check_digest, has_tag, is_digest
from mrun.schema import BOOL, STR, UINT, check
from mrun.state import FileLock

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import IO, Any

CHUNK = 1 << 20
# An entry of images.json, as install and commit write it: what the verbs index without looking.
INDEX_ENTRY = {"manifest!": STR, "config!": STR, "layers!": ("list", STR), "blobs!": ("list", STR), "wasm": BOOL,
               "modules": ("list", STR), "created": STR, "size": UINT, "platform": STR}


class DigestMismatch(MrunError):
    pass


class ImageStore:
    def __init__(self, root: str) -> None:
        self.root = root
        self.blobs = os.path.join(root, "blobs", "sha256")
        self.layers = os.path.join(root, "layers")
        self.containers = os.path.join(root, "containers")
        self.index_path = os.path.join(root, "images.json")

    # -- locking ---------------------------------------------------------------------------

    def lock(self) -> FileLock:
        return FileLock(os.path.join(self.root, "lock"))

    # -- blobs ---------------------------------------------------------------------------

    def blob_path(self, digest: str) -> str:
        return os.path.join(self.blobs, check_digest(digest))

    def has_blob(self, digest: str) -> bool:
        return os.path.exists(self.blob_path(digest))

    def put_blob(self, src: IO[bytes], digest: str, size: int | None = None) -> str:
        """Copy ``src`` into the store as ``digest``, refusing it unless it hashes to that."""
        final = self.blob_path(digest)
        if os.path.exists(final):
            return final
        os.makedirs(self.blobs, mode=0o700, exist_ok=True)
        tmp = f"{final}.part-{os.getpid()}"
        h = hashlib.sha256()
        written = 0
        try:
            with open(tmp, "wb") as out:
                # No more than the manifest gives (and one byte to tell): a source that goes on
                # (a layout's blob linked to /dev/zero, a sparse file) would fill the disk first.
                while chunk := src.read(CHUNK if size is None else min(CHUNK, size + 1 - written)):
                    h.update(chunk)
                    out.write(chunk)
                    written += len(chunk)
                    if size is not None and written > size:
                        raise DigestMismatch(f"blob {digest}: more than the {size} bytes its manifest gives; refused")
                out.flush()
                os.fsync(out.fileno())
            got = "sha256:" + h.hexdigest()
            if got != digest:
                raise DigestMismatch(f"blob {digest}: content hashes to {got}; refused")
            if size is not None and written != size:
                raise DigestMismatch(f"blob {digest}: {written} bytes, the manifest says {size}; refused")
            os.rename(tmp, final)
        except OSError as e:
            name_the_file(e, self.blobs)  # a full disk (at a write or the close): say where
            raise
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return final

    def put_bytes(self, data: bytes) -> str:
        import io

        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        self.put_blob(io.BytesIO(data), digest)
        return digest

    def read_blob(self, digest: str) -> bytes:
        """A small blob, hashed again: a store damaged on disk is reported, not trusted."""
        try:
            with open(self.blob_path(digest), "rb") as f:
                data = f.read()
        except FileNotFoundError:
            raise NotFound(f"blob {digest} is not in the store")
        if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
            raise DigestMismatch(f"blob {digest} in the store is damaged (its content hashes differently)")
        return data

    def read_json(self, digest: str) -> Any:
        try:
            return jsonio.loads(self.read_blob(digest))
        except ValueError as e:
            raise MrunError(f"blob {digest} is not JSON: {e}")

    # -- names ---------------------------------------------------------------------------

    def index(self) -> dict[str, Any]:
        """name -> entry; a file damaged by hand or by the disk (mrun replaces it whole, so no
        crash leaves it so) is one line naming it and its first bad field, never an internal error."""
        try:
            doc = jsonio.load_file(self.index_path)
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as e:
            raise MrunError(f"{self.index_path} is damaged: {e}")
        if not isinstance(doc, dict):
            raise MrunError(f"{self.index_path} is damaged: not a JSON object")
        try:
            check(doc, ("map", INDEX_ENTRY), "")
        except MrunError as e:
            raise MrunError(f"{self.index_path} is damaged: {str(e).removeprefix('.')}") from None
        return doc

    def save_index(self, index: dict[str, Any]) -> None:
        """With room set aside for the next one: on a full disk, rmi and image prune (what frees
        room) still record what they remove, and remove it."""
        spare = f"{self.index_path}.spare"
        jsonio.replace_file(self.index_path, index, indent=2, tmp=f"{self.index_path}.tmp-{os.getpid()}", spare=spare)
        jsonio.set_aside(spare, 2 * os.path.getsize(self.index_path) + 4096)

    def image(self, ref: str) -> tuple[str, dict[str, Any]]:
        """A name (with or without a tag), an image id or a unique id prefix -> (name, entry)."""
        index = self.index()
        names = [ref, normalize(ref)]
        try:
            names.append(Reference(ref).name)  # busybox -> docker.io/library/busybox:latest
        except MrunError:
            pass
        for name in names:
            if name in index:
                return name, index[name]
        matches = [(n, e) for n, e in index.items() if e["config"].removeprefix("sha256:").startswith(ref)]
        if len({e["config"] for _, e in matches}) == 1 and len(ref) >= 4:
            return matches[0]
        raise NotFound(f"image {ref!r} not found (see `mrun images`)")

    # -- layers --------------------------------------------------------------------------

    def make_private(self) -> None:
        """The directories holding image content (layers, containers' snapshots, named volumes,
        where a container's root can leave a set-uid program) root's alone:
        a layer's set-uid program reached through a traversable path was anyone's way to root
        (moby's CVE-2021-41091). The store's own root may be an operator's directory whose mode is
        theirs: these below it are mrun's, made 0700 and kept so."""
        for d in (self.layers, self.containers, os.path.join(self.root, "volumes")):
            os.makedirs(d, mode=0o700, exist_ok=True)
            st = os.lstat(d)
            if stat.S_ISDIR(st.st_mode) and st.st_uid == 0 and st.st_mode & 0o077:
                os.chmod(d, 0o700)

    def layer_dir(self, diff_id: str) -> str:
        return os.path.join(self.layers, check_digest(diff_id), "fs")

    def has_layer(self, diff_id: str) -> bool:
        return os.path.exists(os.path.join(self.layers, check_digest(diff_id), "done"))

    # -- use -----------------------------------------------------------------------------

    def container_images(self) -> dict[str, dict[str, Any]]:
        """container id -> what it was made from: {"image", "config" digest, "layers"}."""
        used = {}
        for cid in container_ids(self.containers):
            made_from = jsonio.load_object(os.path.join(self.containers, cid, MARKER))
            if made_from is not None:
                used[cid] = made_from
        return used

    def sweep(self) -> list[str]:
        """Remove what killed writers left: ``.part-PID`` blobs (load), ``commit-PID.layer`` (a
        commit's layer being written) and ``cp-PID.in`` (a tar stream `cp` unpacks) once PID is
        gone, ``.tmp-PID`` layers and
        index files, and abandoned ``.partial`` downloads and lock files (nobody holds the blob's
        lock). Called with the store's lock held, which every writer of the first kind holds
        too; a download in progress holds its blob's lock, so nothing found here is in use.
        (A pull resumes a partial download before it sweeps: resuming still works after a crash.)"""
        from mrun.kernel.tree import remove_tree
        from mrun.state import held_by_someone

        removed = []
        for folder in (self.blobs, self.layers, self.root):
            for name in os.listdir(folder) if os.path.isdir(folder) else []:
                path = os.path.join(folder, name)
                stale = _written_by_us(name, ROOT_TEMPORARIES if folder == self.root else None)
                if folder == self.blobs and name.startswith("commit-") and name.endswith(".layer"):
                    pid = name[len("commit-"):-len(".layer")]  # a commit writes it without the lock
                    stale = pid.isdigit() and not os.path.exists(f"/proc/{pid}")
                if folder == self.root and name.startswith("cp-") and name.endswith(".in"):
                    pid = name[len("cp-"):-len(".in")]  # `cp - CONTAINER:DIR` stages there without the lock
                    stale = pid.isdigit() and not os.path.exists(f"/proc/{pid}")
                base = name.split(".")[0]
                if folder == self.blobs and name.endswith((".lock", ".partial")) and is_digest(f"sha256:{base}"):
                    stale = not held_by_someone(os.path.join(folder, base + ".lock"))
                if not stale:
                    continue
                remove_tree(path)
                removed.append(f"leftover {os.path.relpath(path, self.root)}")
        return removed


# What mrun's writers name their files in the making in the image root (with .part-PID or
# .tmp-PID): the index and a spooled stdin; in blobs and layers, a digest's hex.
ROOT_TEMPORARIES = ("images.json", "stdin")


def _written_by_us(name: str, bases: tuple[str, ...] | None) -> bool:
    """A writer's file in the making: BASE.part-PID (a blob) or BASE.tmp-PID (a layer, the index),
    BASE a digest's hex or one of ``bases``: the only shapes mrun's writers give them. An
    operator's ``images.json.tmp-old`` is not ours, nor anyone's ``notes.tmp-12`` in an image root
    shared by mistake (`--image-root /tmp`)."""
    for mark in (".part-", ".tmp-"):
        base, found, pid = name.rpartition(mark)
        if found and pid.isdigit() and (base in bases if bases is not None else is_digest("sha256:" + base)):
            return True
    return False


def normalize(ref: str) -> str:
    """'busybox' -> 'busybox:latest'; a digest reference is kept as it is."""
    if "@" in ref:
        return ref
    return ref if has_tag(ref) else f"{ref}:latest"

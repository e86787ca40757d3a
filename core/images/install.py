"""From a source's index to a named image in the store: choose the manifest for the platform,
copy and verify every blob, unpack each layer once, and record the name.

Wasm images come in two shapes, both handled here: an ordinary image whose platform is
``wasi/wasm`` (or annotated ``module.wasm.image/variant``), which is unpacked like any other,
and a wasm OCI artifact (config ``application/vnd.wasm.config.v0+json``, layers
``application/wasm``) whose layers are modules, not tars: each becomes a file in its layer.
"""

from __future__ import annotations

import os
import platform as _platform
import shutil

from mrun import annotations as ann
from mrun import jsonio
from mrun.errors import MrunError, NotFound, one_line
from mrun.images.reference import check_digest
from mrun.images.shapes import CONFIG, INDEX, MANIFEST, BadImage, checked
from mrun.images.sources import DOCKER_LIST, OCI_INDEX, REF_NAME, Source
from mrun.images.store import ImageStore, normalize
from mrun.images.unpack import unpack
from mrun.kernel.tree import remove_tree

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

WASM_CONFIG = "application/vnd.wasm.config.v0+json"
WASM_LAYERS = ("application/wasm", "application/vnd.bytecodealliance.wasm.component.layer.v0+wasm")
TITLE = "org.opencontainers.image.title"
WASM_PLATFORMS = {("wasi", "wasm"), ("wasip1", "wasm"), ("wasip2", "wasm"), ("wasi", "wasm32"), ("wasip1", "wasm32")}


def host_platform() -> tuple[str, str]:
    machine = _platform.machine()
    return "linux", {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def choose(source: Source, index: dict[str, Any], want: tuple[str, str] | None) -> dict[str, Any]:
    """Descend an index (or a manifest list) to one manifest descriptor for the platform:
    the host's (linux/amd64 here) first, else a wasm one; ``want`` asks for one in particular."""
    descs = index.get("manifests") or []
    if not descs:
        raise MrunError("the image index lists no manifests")
    by_platform = {}
    for d in descs:
        p = d.get("platform") or {}
        by_platform.setdefault((p.get("os", ""), p.get("architecture", "")), d)
    if want:
        if want not in by_platform and want in WASM_PLATFORMS:  # wasi/wasm is wasip1/wasm
            want = next((key for key in by_platform if key in WASM_PLATFORMS), want)
        if want not in by_platform:
            offered = ", ".join(f"{o}/{a}" for o, a in by_platform if o)
            raise NotFound(f"no manifest for platform {want[0]}/{want[1]} (the image has: {offered or 'none named'})")
        return by_platform[want]
    host = host_platform()
    if host in by_platform:
        return by_platform[host]
    wasm = [d for key, d in by_platform.items() if key in WASM_PLATFORMS]
    if wasm:
        return wasm[0]
    unnamed = [d for d in descs if not d.get("platform")]
    if len(descs) == 1 or unnamed:
        return unnamed[0] if unnamed else descs[0]
    offered = ", ".join(f"{o}/{a}" for o, a in by_platform)
    raise NotFound(f"no manifest for {host[0]}/{host[1]} or wasm (the image has: {offered})")


def resolve_manifest(source: Source, desc: dict[str, Any], want: tuple[str, str] | None) -> tuple[str, bytes, str]:
    """A descriptor that may be an index or list -> (manifest digest, manifest bytes, the
    platform the innermost index naming one named it for: "os/arch", or "")."""
    platform = ""
    for _ in range(4):  # indexes may nest; not forever
        platform = _named_platform(desc) or platform
        data = source.read(desc["digest"])
        doc = _json(data, "image manifest")
        if not isinstance(doc, dict):
            raise BadImage("image manifest: must be an object")
        if doc.get("mediaType") in (OCI_INDEX, DOCKER_LIST) or ("manifests" in doc and "layers" not in doc):
            desc = choose(source, checked(doc, INDEX, "image index"), want)
            continue
        return desc["digest"], data, platform
    raise MrunError("image indexes nest too deep")


def _named_platform(desc: dict[str, Any]) -> str:
    """The platform a descriptor names ("linux/arm/v7"), or ""."""
    p = desc.get("platform") or {}
    if not (p.get("os") and p.get("architecture")):
        return ""
    return "/".join([p["os"], p["architecture"], *([p["variant"]] if p.get("variant") else [])])


def install(store: ImageStore, source: Source, name: str | None, want: tuple[str, str] | None = None,
            compile_now: bool = True) -> list[str]:
    """Install every named image the source offers (or the one asked for). -> the names recorded.
    ``compile_now``: precompile a wasm entrypoint (False: the caller did, or tried)."""
    try:
        index = checked(source.index(), INDEX, "image index")
    except jsonio.DecodeError as e:  # index.json that is not JSON (a ValueError from elsewhere is no such thing)
        raise BadImage(f"image index: not JSON: {e}")
    named: dict[str, list[dict[str, Any]]] = {}
    for d in index.get("manifests") or []:
        ref = (d.get("annotations") or {}).get(REF_NAME, "")
        named.setdefault(ref, []).append(d)
    if name and len(named) > 1 and name not in named and normalize(name) not in named:
        raise NotFound(f"the archive has no image named {name!r} (it has: {', '.join(n for n in named if n)})")
    done = []
    for ref, descs in named.items():
        if name and len(named) > 1 and ref not in (name, normalize(name)):
            continue
        target = name or _full_name(ref)
        if not target:
            raise MrunError("the archive does not name its image: give a name (mrun load FILE NAME)")
        desc = (
            descs[0] if len(descs) == 1 and "platform" not in descs[0] else choose(source, {"manifests": descs}, want)
        )
        digest, manifest, platform = resolve_manifest(source, desc, want)
        entry = _install_one(store, source, normalize(target), digest, manifest, platform)
        if entry["wasm"] and compile_now:
            precompile(store, entry)
        done.append(normalize(target))
    return done


def default_args(image_config: dict[str, Any], entry: dict[str, Any]) -> tuple[list[str], list[str]]:
    """The image's (Entrypoint, Cmd); a wasm artifact, which has neither, runs its first module."""
    cfg = image_config.get("config") or {}
    entrypoint, cmd = list(cfg.get("Entrypoint") or []), list(cfg.get("Cmd") or [])
    if entry.get("modules") and not entrypoint and not cmd:
        entrypoint = entry["modules"][:1]
    return entrypoint, cmd


def entrypoint_on_host(store: ImageStore, entry: dict[str, Any]) -> str | None:
    """The image's entrypoint file in the topmost layer that has it (never through a symlink)."""
    try:
        config = store.read_json(entry["config"])
    except MrunError:
        config = {}
    entrypoint, cmd = default_args(config if isinstance(config, dict) else {}, entry)
    args = entrypoint + cmd
    if not args or not args[0].startswith("/"):
        return None
    rel = os.path.normpath(args[0]).lstrip("/")
    for diff_id in reversed(entry["layers"]):
        path = os.path.join(store.layer_dir(diff_id), rel)
        if os.path.lexists(path):
            return path if _no_links(store.layer_dir(diff_id), rel) and os.path.isfile(path) else None
    return None


def _no_links(top: str, rel: str) -> bool:
    """Whether no component of ``rel`` below ``top`` is a symbolic link: a layer's link is the
    image's, which only the container's root may resolve; the host would follow it to its own
    files (a layer's ``app -> /srv`` read the host's /srv/module.wasm at pull)."""
    import stat

    here = top
    for part in rel.split("/"):
        here = os.path.join(here, part)
        try:
            if stat.S_ISLNK(os.lstat(here).st_mode):
                return False
        except OSError:
            return False
    return True


def precompile(store: ImageStore, entry: dict[str, Any]) -> None:
    """Let the backends compile the entrypoint now (wasm: into the module cache), so the first
    run does not pay for it. A module that does not compile is reported; the image stays."""
    import sys

    from mrun.plugins.manager import Backends

    path = entrypoint_on_host(store, entry)
    if path is None:
        return
    try:
        Backends.shared().pm.hook.mrun_precompile(path=path)
    except MrunError as e:  # LimitReached too: it compiles at create, under the container's limits
        print(f"mrun: warning: {one_line(str(e))}", file=sys.stderr)


def _json(data: bytes, what: str) -> Any:
    try:
        return jsonio.loads(data)
    except ValueError as e:
        raise BadImage(f"{what}: not JSON: {e}")


def _full_name(ref: str) -> str:
    """An OCI ref name is often only a tag ('latest'), which names no image; skopeo writes
    'host/name:tag' into oci-archives, which does."""
    return ref if "/" in ref or ":" in ref else ""


def _install_one(
    store: ImageStore, source: Source, name: str, manifest_digest: str, manifest_bytes: bytes, platform: str = ""
) -> dict[str, Any]:
    """``platform``: the one its index named it for, kept (`run --platform` reads it), where the
    image config may say otherwise (a wasm module's image built as linux/amd64)."""
    manifest = checked(_json(manifest_bytes, "image manifest"), MANIFEST, "image manifest")
    config_desc = manifest.get("config") or {}
    layers = manifest.get("layers") or []
    if not config_desc.get("digest"):
        raise MrunError(f"image {name}: its manifest names no config")
    prefetch = getattr(source, "prefetch", None)
    if prefetch is not None:  # a registry: download concurrently, before taking the store's lock
        prefetch(store, manifest)
    with store.lock():
        store.sweep()  # a load or pull killed earlier left partial writes: they go now
        store.put_bytes(manifest_bytes)
        for desc in (config_desc, *layers):
            if not store.has_blob(desc["digest"]):
                with source.open(desc["digest"]) as f:
                    store.put_blob(f, desc["digest"], desc.get("size"))
        artifact = config_desc.get("mediaType") == WASM_CONFIG
        config = {} if artifact else checked(store.read_json(config_desc["digest"]), CONFIG, "image config")
        diff_ids = (
            [layer["digest"] for layer in layers] if artifact else (config.get("rootfs") or {}).get("diff_ids", [])
        )
        if len(diff_ids) != len(layers):
            raise MrunError(f"image {name}: {len(layers)} layers but {len(diff_ids)} diff ids in its config")
        modules = []
        for layer, diff_id in zip(layers, diff_ids, strict=True):
            if layer.get("mediaType") in WASM_LAYERS:
                modules.append("/" + _module_name(layer))
            if not store.has_layer(diff_id):
                _unpack_layer(store, layer, diff_id)
        entry = {
            "manifest": manifest_digest,
            "config": config_desc["digest"],
            "layers": diff_ids,
            "blobs": [manifest_digest, config_desc["digest"], *(layer["digest"] for layer in layers)],
            "wasm": bool(modules) or _is_wasm(config, manifest),
            "modules": modules,
            "created": config.get("created", ""),
            "size": sum(layer.get("size") or 0 for layer in layers),
            **({"platform": platform} if platform else {}),
        }
        index = store.index()
        index[name] = entry
        store.save_index(index)
    return entry


def _module_name(layer: dict[str, Any]) -> str:
    title = (layer.get("annotations") or {}).get(TITLE, "")
    title = os.path.basename(title)
    return title if title and title not in (".", "..") else "module.wasm"


def _is_wasm(config: dict[str, Any], manifest: dict[str, Any]) -> bool:
    if (config.get("os"), config.get("architecture")) in WASM_PLATFORMS:
        return True
    annotations = {**(manifest.get("annotations") or {}), **((config.get("config") or {}).get("Labels") or {})}
    return ann.WASM_VARIANT in annotations


def _unpack_layer(store: ImageStore, layer: dict[str, Any], diff_id: str) -> None:
    """Into a temporary directory, renamed into place when complete: a crash leaves no half layer."""
    final = os.path.join(store.layers, check_digest(diff_id))
    tmp = f"{final}.tmp-{os.getpid()}"
    store.make_private()
    remove_tree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    try:
        with open(store.blob_path(layer["digest"]), "rb") as f:
            if layer.get("mediaType") in WASM_LAYERS:
                os.makedirs(os.path.join(tmp, "fs"))
                with open(os.path.join(tmp, "fs", _module_name(layer)), "wb") as out:
                    shutil.copyfileobj(f, out)
                os.chmod(os.path.join(tmp, "fs", _module_name(layer)), 0o755)
            else:
                unpack(f, os.path.join(tmp, "fs"), diff_id)
        open(os.path.join(tmp, "done"), "w").close()
        remove_tree(final, ignore_errors=True)
        os.rename(tmp, final)
    except BaseException:
        remove_tree(tmp, ignore_errors=True)
        raise

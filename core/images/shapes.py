"""The shapes of the image JSON mrun reads (OCI and Docker schema-2 index, manifest and config,
and docker-archive's manifest.json), checked where each document enters, so a hostile or broken
image is refused with one line naming the field, never a traceback deeper in."""

from __future__ import annotations

from mrun.errors import MrunError
from mrun.schema import INT, STR, UINT, WORD, check

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# The largest index, manifest or config mrun reads (from an archive, a layout or a registry):
# the distribution spec's registries take manifests of 4 MiB; twice that leaves configs room.
# A bigger "document" (a layer's digest named as a manifest, a hostile index.json) was read
# whole into memory before its hash or shape was checked.
MAX_DOCUMENT = 8 << 20


def read_document(f: Any, what: str) -> bytes:
    """At most MAX_DOCUMENT bytes of ``f``, or a refusal naming ``what``."""
    data = f.read(MAX_DOCUMENT + 1)
    if len(data) > MAX_DOCUMENT:
        raise MrunError(f"{what}: larger than {MAX_DOCUMENT >> 20} MiB, more than any index, manifest or config; "
                        "refused")
    return data


_MAP = ("map", STR)
_PLATFORM = {"os": WORD, "architecture": WORD, "variant": WORD, "os.version": WORD, "os.features": ("list", WORD)}
DESCRIPTOR = {"mediaType": STR, "digest!": STR, "size": UINT, "urls": ("list", STR), "annotations": _MAP,
              "platform": _PLATFORM}
INDEX = {"schemaVersion": INT, "mediaType": STR, "manifests!": ("list", DESCRIPTOR), "annotations": _MAP}
MANIFEST = {"schemaVersion": INT, "mediaType": STR, "config!": DESCRIPTOR, "layers": ("list", DESCRIPTOR),
            "annotations": _MAP}
CONFIG = {
    "architecture": WORD,
    "os": WORD,
    "variant": WORD,
    "created": STR,
    "config": {"Entrypoint": ("list", STR), "Cmd": ("list", STR), "Env": ("list", STR), "WorkingDir": STR,
               "User": STR, "Labels": _MAP, "StopSignal": STR},
    "rootfs!": {"type": STR, "diff_ids!": ("list", STR)},
}
DOCKER_ARCHIVE = ("list", {"Config!": STR, "RepoTags": ("list", STR), "Layers!": ("list", STR)})


class BadImage(MrunError):
    pass


def checked(doc: Any, schema: Any, what: str) -> Any:
    """``doc`` if it fits ``schema``; else one line: ``image manifest: layers[0].digest: ...``."""
    check(doc, schema, what, BadImage)
    return doc

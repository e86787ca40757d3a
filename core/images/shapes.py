"""The shapes of the image JSON mrun reads (OCI and Docker schema-2 index, manifest and config,
and docker-archive's manifest.json), checked where each document enters, so a hostile or broken
image is refused with one line naming the field, never a traceback deeper in."""

from __future__ import annotations

from mrun.errors import MrunError
from mrun.schema import INT, STR, UINT, check

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_MAP = ("map", STR)
_PLATFORM = {"os": STR, "architecture": STR, "variant": STR, "os.version": STR, "os.features": ("list", STR)}
DESCRIPTOR = {"mediaType": STR, "digest!": STR, "size": UINT, "urls": ("list", STR), "annotations": _MAP,
              "platform": _PLATFORM}
INDEX = {"schemaVersion": INT, "mediaType": STR, "manifests!": ("list", DESCRIPTOR), "annotations": _MAP}
MANIFEST = {"schemaVersion": INT, "mediaType": STR, "config!": DESCRIPTOR, "layers": ("list", DESCRIPTOR),
            "annotations": _MAP}
CONFIG = {
    "architecture": STR,
    "os": STR,
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

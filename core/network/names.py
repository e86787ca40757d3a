"""A container's name files (/etc/hosts, /etc/hostname, /etc/resolv.conf): files of its own,
written by mrun and bound read-write over the image's, whichever network mode made them (a
bridge network's attach, `mrun run`'s none and host modes, another container's for container:ID)."""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

LOCALHOST = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"


def bind(mounts: list[dict[str, Any]], name: str, source: str) -> None:
    """``source`` as the container's /etc/``name``."""
    mounts.append({"destination": f"/etc/{name}", "type": "bind", "source": source, "options": ["rbind", "rw"]})


def write_and_bind(mounts: list[dict[str, Any]], directory: str, name: str, content: bytes) -> None:
    """``content`` as the container's /etc/``name``: a file of ``directory`` (the container's own:
    what it writes there reaches nothing of the host's)."""
    path = os.path.join(directory, name)
    with open(path, "wb") as f:
        f.write(content)
    os.chmod(path, 0o644)
    bind(mounts, name, path)


def name_like(text: str) -> bool:
    """A host or domain name's characters: nothing that would start another line or field of
    /etc/hosts or /etc/resolv.conf."""
    return bool(text) and len(text) <= 253 and text.isascii() and text[0] not in "-." \
        and all(c.isalnum() or c in "-._" for c in text)

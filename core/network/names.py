"""A container's name files (/etc/hosts, /etc/hostname, /etc/resolv.conf): files of its own,
written by mrun and bound read-write over the image's, whichever network mode made them (a
bridge network's attach, `mrun run`'s none and host modes, another container's for container:ID)."""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

LOCALHOST = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"


def place(state_dir: str, bundle: str, container_id: str, state_root: str) -> str:
    """Where a bridge container's name files are made: beside its writable layer, in the bundle
    `mrun run` made for it (on disk, as docker keeps them with its container), else (a runc
    client's bundle, not mrun's to write in) its state directory. Not the state root by choice:
    that is /run on most hosts, a tmpfs the whole host shares, which a container writing into its
    own /etc/hosts could fill."""
    from mrun.bundles import made_for

    return bundle if bundle and made_for(bundle, container_id, state_root) else state_dir


def hosts_of(owner: dict[str, str]) -> str:
    """A container's hosts file (``owner``: its state root and id), where ``place`` made it: its
    bundle's if that is one mrun made for it and holds one, else its state directory's."""
    from mrun import jsonio
    from mrun.bundles import made_for

    state_dir = os.path.join(owner["root"], owner["container"])
    bundle = (jsonio.load_object(os.path.join(state_dir, "state.json")) or {}).get("bundle")
    if isinstance(bundle, str) and os.path.isabs(bundle) and made_for(bundle, owner["container"], owner["root"]) \
            and os.path.lexists(os.path.join(bundle, "hosts")):
        return os.path.join(bundle, "hosts")
    return os.path.join(state_dir, "hosts")


def node_file(name: str) -> bytes | None:
    """The host's /etc/``name`` (hosts, resolv.conf), at most 1 MiB of it; None where it has none."""
    try:
        with open(f"/etc/{name}", "rb") as f:
            return f.read(1 << 20)
    except OSError:
        return None


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


def own(mounts: list[dict[str, Any]], directory: str, hostname: str) -> None:
    """A container with no network of mrun's (docker's --network none, or its last disconnected):
    an /etc/hosts naming localhost and an /etc/hostname of its own. A small image has neither:
    `localhost` resolved nowhere, so a server and its client in one container could not meet on it."""
    write_and_bind(mounts, directory, "hosts", LOCALHOST.encode())
    write_and_bind(mounts, directory, "hostname", os.fsencode(hostname) + b"\n")  # its bytes, as sethostname


def name_like(text: str) -> bool:
    """A host or domain name's characters: nothing that would start another line or field of
    /etc/hosts or /etc/resolv.conf."""
    return bool(text) and len(text) <= 253 and text.isascii() and text[0] not in "-." \
        and all(c.isalnum() or c in "-._" for c in text)

"""``containerd-shim-mrun-v2 -info``: the runtime's features, as containerd 2.x asks for them.

containerd runs ``<shim> -info`` (options as a protobuf Any on stdin) and decodes stdout as a
``containerd.types.RuntimeInfo``; CRI reads the runtime-spec features document from its
``features`` Any (JSON) — e.g. ``linux.mountExtensions.idmap.enabled`` before a ``hostUsers: false``
pod's idmapped mounts. Building that document loads every backend (pluggy and an entry-point scan,
≈110 ms), and containerd asks before every Create, so the answer is kept in a file keyed by what
could change it: mrun's version, the interpreter, and what is installed (plugins.installed: the
key the entry-point cache uses too).
"""

from __future__ import annotations

import hashlib
import os
import sys

from mrun.shims import wire

RUNTIME_NAME = "io.containerd.mrun.v2"
FEATURES_URL = "types.containerd.io/opencontainers/runtime-spec/1/features/Features"


DEFAULT_STATE_ROOT = "/run/mrun/.shim"  # a dot name: never taken for a container of the default root


def cache_dir() -> str:
    return os.environ.get("MRUN_SHIM_ROOT", DEFAULT_STATE_ROOT)


_KEY_DIGITS = 24  # of the cache file's name: .info-<key>


def _key() -> str:
    from mrun import __version__, jsonio
    from mrun.plugins.installed import installed_key

    parts = [__version__, sys.executable, *installed_key()]
    return hashlib.sha256(jsonio.dumps(parts).encode()).hexdigest()[:_KEY_DIGITS]


def _is_answer(name: str) -> bool:
    """A name ``runtime_info`` gives its cache file (``.info-`` and the key's 24 hex digits):
    only those are swept, whatever else a state root set by MRUN_SHIM_ROOT holds."""
    from mrun.scratch import prefixed_hex

    return prefixed_hex(name, ".info-", _KEY_DIGITS)


def runtime_info() -> bytes:
    """The serialized RuntimeInfo: read from the cache, or built and cached."""
    path = os.path.join(cache_dir(), f".info-{_key()}")
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        pass
    data = build()
    try:
        os.makedirs(cache_dir(), mode=0o700, exist_ok=True)
        tmp = f"{path}.{os.getpid()}"
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as f:
            f.write(data)
        os.rename(tmp, path)
        for old in os.listdir(cache_dir()):  # answers for what is no longer installed
            if _is_answer(old) and old != os.path.basename(path):
                os.unlink(os.path.join(cache_dir(), old))
    except OSError:
        pass  # a read-only /run still gets its answer, only slower
    return data


def build() -> bytes:
    import json

    from mrun import __version__
    from mrun.features import features_document

    features = json.dumps(features_document(), separators=(",", ":"))
    return b"".join(
        (
            wire.field(1, RUNTIME_NAME),
            wire.field(2, wire.field(1, __version__)),
            wire.field(4, wire.field(1, FEATURES_URL) + wire.field(2, features)),
        )
    )

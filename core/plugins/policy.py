"""The operator's word on backends: which may run at all, which runs when nobody bids, and a pin.

Read from ``/etc/mrun/policy.json`` (``$MRUN_POLICY`` names another file), then overridden by
``$MRUN_BACKENDS_ALLOWED`` (comma-separated), ``$MRUN_BACKEND_DEFAULT`` and ``$MRUN_BACKEND_PIN``,
which the CLI's global flags ``--backends-allowed``, ``--backend-default`` and ``--backend-pin``
set (so the shim, started by containerd, takes the same from its environment or the file)::

    {"allowed": ["linux", "wasm"], "default": "linux", "pin": ""}

- ``allowed``: the only backends loaded; a bundle that forces another one is refused, naming
  the policy. Empty or absent: every installed backend.
- ``default``: chosen when no backend bids above the fallback priority (0).
- ``pin``: every container runs on this backend; an annotation may only name the same.
"""

from __future__ import annotations

import os

from mrun import jsonio
from mrun.errors import InvalidSpec

DEFAULT_FILE = "/etc/mrun/policy.json"


class Policy:
    __slots__ = ("allowed", "default", "pin", "source")

    def __init__(self, allowed: list[str], default: str, pin: str, source: str) -> None:
        self.allowed, self.default, self.pin, self.source = allowed, default, pin, source

    def permits(self, backend: str) -> bool:
        return not self.allowed or backend in self.allowed


def load() -> Policy:
    path = os.environ.get("MRUN_POLICY") or DEFAULT_FILE
    doc: dict = {}
    try:
        doc = jsonio.load_file(path)
    except FileNotFoundError:
        path = ""
    except (OSError, ValueError) as e:
        raise InvalidSpec(f"backend policy {path}: {getattr(e, 'strerror', None) or e}")
    if not isinstance(doc, dict):
        raise InvalidSpec(f"backend policy {path}: not a JSON object")
    allowed = doc.get("allowed") or []
    default, pin = doc.get("default") or "", doc.get("pin") or ""
    if not isinstance(allowed, list) or not all(isinstance(n, str) for n in allowed):
        raise InvalidSpec(f"backend policy {path}: allowed: a list of backend names expected")
    if not isinstance(default, str) or not isinstance(pin, str):
        raise InvalidSpec(f"backend policy {path}: default and pin: backend names expected")
    sources = [path] if path else []
    env = os.environ.get("MRUN_BACKENDS_ALLOWED")
    if env is not None:
        allowed, sources = [n.strip() for n in env.split(",") if n.strip()], [*sources, "$MRUN_BACKENDS_ALLOWED"]
    if os.environ.get("MRUN_BACKEND_DEFAULT"):
        default, sources = os.environ["MRUN_BACKEND_DEFAULT"], [*sources, "$MRUN_BACKEND_DEFAULT"]
    if os.environ.get("MRUN_BACKEND_PIN"):
        pin, sources = os.environ["MRUN_BACKEND_PIN"], [*sources, "$MRUN_BACKEND_PIN"]
    return Policy(allowed, default, pin, " and ".join(sources) or "no policy")

"""A backend for tests/test_operations.py: bids only for bundles annotated
``org.mrun.test.modspec``, rewrites their config (``mrun_modify_spec``), and runs them as the
``linux`` backend does."""

from __future__ import annotations

from typing import Any

from mrun.backends import linux
from mrun.plugins.api import Bundle, Claim, Container
from mrun.plugins.hookspecs import hookimpl

KEY = "org.mrun.test.modspec"


@hookimpl
def mrun_claim(bundle: Bundle) -> Claim | None:
    return Claim("modspec", 2000, f"annotation {KEY}") if KEY in bundle.annotations else None


@hookimpl
def mrun_modify_spec(bundle: Bundle, config: dict[str, Any]) -> dict[str, Any] | None:
    how = bundle.annotations[KEY]
    if how == "env":
        config["process"]["env"].append("MODIFIED_BY=modspec")
        config["linux"].setdefault("resources", {})["pids"] = {"limit": 42}
        return config
    if how == "break":
        config["process"]["user"] = {"uid": "root"}  # not an integer
        return config
    return None


@hookimpl
def mrun_payload(container: Container, process: dict[str, Any]) -> Any:
    return linux.mrun_payload(container=container, process=process)

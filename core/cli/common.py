"""What every family of verbs shares (runc's, docker's, networks', system): the runtime for the
global flags, and table output. Its own module so the verb modules need not import each other."""

from __future__ import annotations

from mrun.runtime import Runtime

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~6 ms (it imports re) on the lifecycle verbs' hot path
    from typing import Any


def _rt(g: dict[str, Any]) -> Runtime:
    return Runtime(g["root"], warn=g.get("warn"), debug=g.get("debug_log"))


def print_table(rows: list[tuple[str, ...]]) -> None:
    """Columns padded to their widest cell, the first row a header."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())

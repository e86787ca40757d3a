"""The runtime's record of a container of `mrun run`, kept in its bundle by its supervisor (or,
in the foreground, by its runner once it started it).

The record (``state.json``) lives under the state root, ``/run/mrun`` (a tmpfs); the bundle under
the image root. Someone removing ``/run/mrun`` while containers run (an admin's `rm -rf`, a
tmpfiles clean-up) made each look like a killed mrun's leftover: the next `system prune` removed
its rootfs and writable layer from under it and let its address go, while it ran on where no verb
could reach it. The supervisor, which lives as long as the container and is its parent, keeps a
copy at each start (a foreground `run` without --rm: its runner, once it started it); a command
that finds the record gone writes it back (``images/reboot.take_back``, which every command
runs), as do the supervisor before a restart and the runner once its container ended. A delete
removes the copy first (``bundles.unkeep``), so nothing writes back a container being removed.
"""

from __future__ import annotations

import os

from mrun import jsonio
from mrun.bundles import KEPT
from mrun.network import PLAN

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def keep(bundle: str, record: Any, state_dir: str) -> None:
    """A copy of ``record`` in the bundle, with the container's network plan (its address,
    published ports and their rules, which its `rm` undoes from the plan: written back without
    it, the container's DNAT rules outlived it, sending its host port to whoever got its address
    next). Best effort: a full disk loses only the repair."""
    doc = record.to_dict()
    plan = jsonio.load_object(os.path.join(state_dir, PLAN))
    if plan is not None:
        doc["network_plan"] = plan
        from mrun.network.attach import more_plans_read

        if more := more_plans_read(state_dir):  # its other networks' (`network connect`): undone alike
            doc["network_more"] = more
    try:
        jsonio.replace_file(os.path.join(bundle, KEPT), doc)
    except OSError:
        pass


def write_back(runtime: Any, bundle: str, container_id: str) -> bool:
    """The kept record saved again where the runtime's is missing, if the bundle is this state
    root's. The caller knows the supervisor lives (it is the supervisor, or has seen it alive),
    so the record names a process of ours, or that it has ended and the container with it (the
    record's pid and start time then name no live process: read as stopped, never signalled).
    -> whether it was."""
    from mrun.bundles import image_of
    from mrun.state import Record, shape_problem

    if runtime.store.exists(container_id):
        return False
    meta = image_of(bundle) or {}
    if meta.get("id") != container_id or \
            os.path.abspath(meta.get("root") or "") != os.path.abspath(runtime.store.root):
        return False
    doc = jsonio.load_object(os.path.join(bundle, KEPT))
    if doc is None or shape_problem(doc, container_id) or \
            os.path.abspath(doc.get("bundle") or "") != os.path.abspath(bundle):
        return False
    if isinstance(doc.get("network_plan"), dict):  # before the record: whoever sees it can undo the plan
        runtime.store.make_again(container_id)
        jsonio.replace_file(runtime.store.path(container_id, PLAN), doc["network_plan"])
        more = doc.get("network_more")
        for network, plan in more.items() if isinstance(more, dict) else ():
            from mrun.errors import InvalidSpec
            from mrun.network import more_plan_file
            from mrun.network.store import check_name

            try:
                check_name(network)  # (the file's name is made of it)
            except InvalidSpec:
                continue
            if isinstance(plan, dict):
                jsonio.replace_file(runtime.store.path(container_id, more_plan_file(network)), plan)
    runtime.store.write_back(Record(**{k: v for k, v in doc.items() if k in Record.FIELDS}))
    if not os.path.exists(os.path.join(bundle, KEPT)):  # an `rm` began meanwhile (bundles.unkeep): undone
        runtime.store.remove(container_id)
        return False
    return True

"""docker's `create IMAGE`: a container made (snapshot, bundle, volumes) and recorded, with no
process yet; `mrun start` runs it as `mrun run -d` would have, under a supervisor.

The runtime records it as a container that ran and stopped (pid 0, nothing to signal), so every
verb that takes a stopped container takes it: `rm`, `inspect`, `cp` (a script's files copied in
before the start), `export`, `diff`, `commit`. ``CREATED_FILE`` in its bundle says it never ran
(docker's status "created") and keeps its --rm for the start. Written before the record: a
create killed between the two leaves an orphaned bundle, which `rm -f` and `system prune` take.
"""

from __future__ import annotations

import os

from mrun import jsonio

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

CREATED_FILE = "created.json"  # {"remove": docker's --rm}; gone once the supervisor has started it


def record_unstarted(runtime: Any, container_id: str, bundle: str, remove: bool) -> None:
    from mrun.spec import load_bundle

    spec = load_bundle(bundle)
    jsonio.replace_file(os.path.join(bundle, CREATED_FILE), {"remove": remove})
    record_stopped(runtime, container_id, bundle, spec)


def record_stopped(runtime: Any, container_id: str, bundle: str, spec: Any) -> None:
    """``container_id`` recorded as a container that ran and stopped (pid 0, nothing to signal):
    docker's create, and a container of an earlier boot taken back (images/reboot). The id is
    claimed atomically; a save that fails leaves no record."""
    from mrun.operations.create import owner_name
    from mrun.state import Record, now_rfc3339
    from mrun.status import Status

    with runtime.store.reserve(container_id):
        try:
            runtime.store.save(Record(container_id, bundle, spec.rootfs, spec.raw, stage=Status.CREATED,
                                      created=now_rfc3339(), owner=owner_name()))
        except BaseException:
            runtime.store.remove(container_id)
            raise


def never_started(bundle: str) -> dict[str, Any] | None:
    """What `create` noted of a container that has not run yet, or None (it has run: its log or
    its exit code is there, whatever a start killed halfway left of the note)."""
    # supervisor's log and EXIT_FILE, by name: it imports this module (and log_relay costs ~4 ms)
    if any(os.path.exists(os.path.join(bundle, name)) for name in ("log", "exit.json")):
        return None
    try:
        note = jsonio.load_file(os.path.join(bundle, CREATED_FILE))
    except (OSError, ValueError):
        return None
    return note if isinstance(note, dict) else None


def started(bundle: str) -> None:
    """Its supervisor has it running: from now on it is a `run -d` container like any other."""
    try:
        os.unlink(os.path.join(bundle, CREATED_FILE))
    except FileNotFoundError:
        pass


def as_docker_sees(state: dict[str, Any]) -> dict[str, Any]:
    """``state`` (``Runtime.list``'s, ``Runtime.state``'s) with docker's status and creation
    time: a container of `create` that never ran is "created" to `ps` and `inspect`, where the
    runtime says stopped; and one `mrun run` or `create` made was created then (docker's
    Created), not at its latest start, which the runtime's ``created`` is."""
    from mrun import annotations as ann
    from mrun.status import Status

    made = (state.get("annotations") or {}).get(ann.CREATED)
    if isinstance(made, str) and _rfc3339_shaped(made):
        state = {**state, "created": made}
    if state.get("status") == Status.STOPPED and never_started(state.get("bundle") or "") is not None:
        return {**state, "status": Status.CREATED}
    return state


def _rfc3339_shaped(text: str) -> bool:
    """'2026-12-06T02:52:36.472233533Z', as now_rfc3339 writes it (a hand-written annotation that
    is not one is not shown as a time)."""
    return len(text) == 30 and text[4] == text[7] == "-" and text[10] == "T" and text.endswith("Z") \
        and text[:4].isdigit() and text[20:29].isdigit()

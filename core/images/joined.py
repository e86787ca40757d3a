"""docker's ``container:ID`` (``--network``, ``--pid``): a container that joins another one's
namespaces joins those its process has at each start, as docker looks them up at each start.

The bundle's config names them by the other container's process number (``/proc/PID/ns/net``),
the runtime-spec's way. Kept from the first run, that number was the other container's last
process once it had restarted: a later `start` (or a ``--restart`` policy) failed on a number
nobody had, or, once the number came round, joined whichever process had it, the host's
network and PID namespaces included. The joined containers are noted (``JOINED``, by id) and
their paths written afresh before each create made again in place.
"""

from __future__ import annotations

import os

from mrun import annotations as ann
from mrun import jsonio
from mrun.errors import InvalidSpec, MrunError
from mrun.status import Status

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

NS_NAMES = {"network": "net", "pid": "pid"}  # the kinds docker joins by container:ID, as /proc names them


def running(runtime: Any, other: str, flag: str) -> Any:
    """``other``'s record, refused unless it runs (docker's rule for container:ID)."""
    record = runtime.store.load(other)
    if runtime.status(record) not in (Status.RUNNING, Status.CREATED):
        raise InvalidSpec(f"{flag} container:{other}: container {other!r} is not running")
    return record


def namespace_path(runtime: Any, kind: str, other: str, flag: str) -> str:
    """The path of ``other``'s ``kind`` namespace now."""
    return f"/proc/{running(runtime, other, flag).pid}/ns/{NS_NAMES[kind]}"


def note(annotations: dict[str, str], joined: dict[str, str]) -> None:
    """``joined``: kind -> the id of the container whose namespace of that kind is joined."""
    if joined:
        annotations[ann.JOINED] = jsonio.dumps(joined)


def rejoin(runtime: Any, bundle: str) -> None:
    """Before a stopped container is made again in place: each namespace it joins by
    container:ID named afresh in its bundle's config, or a one-line refusal, the container
    left stopped, when that container is gone or stopped."""
    path = os.path.join(bundle, "config.json")
    config = jsonio.load_object(path)
    if config is None:
        return  # its create names the damaged file
    noted = (config.get("annotations") or {}).get(ann.JOINED)
    if not noted:
        return
    try:
        joined = jsonio.loads(noted)
    except ValueError:
        joined = None
    if not isinstance(joined, dict) or not all(k in NS_NAMES and isinstance(v, str) for k, v in joined.items()):
        raise MrunError(f"{path}: annotations.{ann.JOINED}: not a map of network/pid to container ids")
    flags = {"network": "--network", "pid": "--pid"}
    for kind, other in joined.items():
        fresh = namespace_path(runtime, kind, other, flags[kind])
        for namespace in (config.get("linux") or {}).get("namespaces") or []:
            if isinstance(namespace, dict) and namespace.get("type") == kind:
                namespace["path"] = fresh
    jsonio.replace_file(path, config)

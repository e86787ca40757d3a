"""docker's AutoRemove (``run --rm``) when no one is left to do it.

A foreground ``run --rm`` removes its container once it ends; a ``run -d --rm`` container's
supervisor does. Either killed (``timeout -s KILL``, the OOM killer) while the container ran, the
container ran on, as docker's does when its client is killed, and once it ended it stayed:
stopped, holding its name (a script's next ``run --rm --name`` was refused), its rootfs mount
and writable layer. docker's daemon removes it when it ends, whoever waits. Here the next
command that finds it ended does (``images/reboot.take_back`` looks at each command): such a
container's bundle is marked when it is made, so the look costs one stat per container.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

MARK = "auto-remove"  # in the bundle: removed once it ends (docker's AutoRemove)


def mark(bundle: str) -> None:
    """Before the container is made: a run killed before this leaves a bundle without state,
    which `system prune` takes (images/containers.orphans)."""
    os.close(os.open(os.path.join(bundle, MARK), os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600))


def marked(bundle: str) -> bool:
    return os.path.exists(os.path.join(bundle, MARK))


def remove_if_abandoned(runtime: Any, bundle: str, container_id: str) -> bool:
    """Remove the marked container ``container_id`` of this state root if it has ended and the
    process that would remove it is gone: its foreground runner (which holds the bundle's run
    lock until it exits) and its supervisor. -> whether it was removed. Quiet: a record that
    cannot be read, or a removal another command made first, is for the verbs that name it."""
    from mrun.bundles import made_for
    from mrun.errors import MrunError
    from mrun.images.supervisor import START_LOCK, being_run, remove_with_volumes, supervisor_gone
    from mrun.images.unstarted import never_started
    from mrun.state import held_by_someone
    from mrun.status import Status

    if not made_for(bundle, container_id, runtime.store.root) or \
            being_run(bundle) or held_by_someone(os.path.join(bundle, START_LOCK)):
        return False  # its runner lives, or a `start` is starting it
    try:
        if supervisor_gone(bundle) is False or never_started(bundle) is not None:
            return False  # its supervisor removes it; or one of `create --rm`, recorded as stopped, not yet run
        if runtime.status(runtime.store.load(container_id)) != Status.STOPPED:
            return False
        remove_with_volumes(runtime, container_id)
    except (MrunError, OSError, ValueError):
        return False
    return True

"""Containers across a reboot.

The runtime's state lives under ``/run/mrun`` (a tmpfs: gone at a reboot); a container's files
(its bundle, its writable layer, its log) under the image root, ``/var/lib/mrun``, which stays.
A bundle without state is otherwise a killed mrun's leftover, which `rm -f`, `image prune` and
`system prune` remove: after a reboot that was every container the user had, files and all.
Docker keeps them ("Exited"). So ``prepare`` notes the boot in ``image.json``, and the first
command of a later boot (every command looks) takes back each container of an earlier one: its
rootfs mounted again over its layers and recorded as a container that ran and stopped (pid 0, as
`create`'s), so `ps -a` lists it, `start` runs it with its files, `rm` removes it. A container
of `run` (detached, or in the foreground without --rm) whose record was removed in this boot,
running or ended (``lost_after_its_end``), has its record written back from its supervisor's or
runner's copy (images/kept). A `run --rm` container whose caller or supervisor was killed is
removed once it has ended (images/auto_remove).
"""

from __future__ import annotations

import os

from mrun import jsonio
from mrun.kernel.proc import boot_id

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

def of_earlier_boot(meta: dict[str, Any] | None) -> bool:
    """Whether a bundle's image.json was written in an earlier boot (one without the note, of
    an older mrun, cannot say: no)."""
    noted = (meta or {}).get("boot")
    return isinstance(noted, str) and bool(noted) and bool(boot_id()) and noted != boot_id()


def take_back(runtime: Any, image_root: str) -> None:
    """Each container of an earlier boot recorded again. Looked for at each command, writing
    nothing where there is none (a listing and a stat per container): a mark of "done for this
    boot" would be one more write in every state root."""
    from mrun.bundles import image_of

    containers = os.path.join(image_root, "containers")
    try:
        names = os.listdir(containers)
    except OSError:
        return  # docker's verbs never used this image root
    ids = sorted(cid for cid in names if not cid.startswith("."))
    recorded = {cid for cid in ids if runtime.store.exists(cid)}
    _remove_abandoned(runtime, containers, [cid for cid in ids if cid in recorded])
    stateless = [cid for cid in ids if cid not in recorded]
    waiting = [cid for cid in stateless if not _written_back(runtime, os.path.join(containers, cid), cid)
               and of_earlier_boot(image_of(os.path.join(containers, cid)))]
    if not waiting:
        return
    import fcntl

    from mrun.images.store import ImageStore

    store = ImageStore(image_root)
    try:
        lock = os.open(os.path.join(image_root, "lock"), os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
    except OSError:
        return  # a read-only image root (or not ours to write): nothing can be taken back
    try:
        try:  # the store's lock, not waited for: our caller may hold it, or a long pull may
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return  # the next command looks (prune leaves such bundles alone meanwhile: containers.orphans)
        for cid in waiting:
            try:
                _take_back_one(runtime, store, cid)
            except (OSError, ValueError) as e:  # one damaged bundle never keeps the others back
                if callable(runtime.warn):
                    runtime.warn(f"container {cid!r} of an earlier boot cannot be taken back ({e}): "
                                 f"`mrun rm -f {cid}` removes it")
    finally:
        os.close(lock)


def _remove_abandoned(runtime: Any, containers: str, recorded: list[str]) -> None:
    """The `run --rm` containers whose remover was killed, once they have ended (images/auto_remove)."""
    from mrun.images import auto_remove

    for cid in recorded:
        bundle = os.path.join(containers, cid)
        if auto_remove.marked(bundle):
            auto_remove.remove_if_abandoned(runtime, bundle, cid)


def lost_after_its_end(bundle: str, meta: dict[str, Any] | None, gone: bool | None) -> bool:
    """A container whose record was removed (`rm -rf /run/mrun`) that has a copy of it: a
    detached one's supervisor gone (it had ended), or one `run` ran in the foreground (no
    supervisor: its runner kept the copy once it started it; running or ended). A delete removes
    the copy first (bundles.unkeep), so it was not being removed. Its copy is written back (an
    ended one's pid and start time name no live process: it reads stopped, its cgroup still its
    own to remove); before, it was pruned as a killed mrun's leftover. ``meta``, ``gone``: its
    image.json and `supervisor_gone`, as the caller read them."""
    from mrun.bundles import KEPT

    return (gone is not False and os.path.exists(os.path.join(bundle, KEPT))
            and not of_earlier_boot(meta))  # (one of an earlier boot is `take_back`'s: remounted first)


def _written_back(runtime: Any, bundle: str, cid: str) -> bool:
    """A container's record, removed in this boot while it ran or after it ended, written back
    from its supervisor's or foreground runner's copy (images/kept). One that cannot be is warned about,
    not a failed command."""
    from mrun.bundles import image_of
    from mrun.images.kept import write_back
    from mrun.images.supervisor import supervisor_gone

    try:
        gone = supervisor_gone(bundle)
        return (gone is False or lost_after_its_end(bundle, image_of(bundle), gone)) and \
            write_back(runtime, bundle, cid)
    except OSError as e:
        if callable(runtime.warn):
            runtime.warn(f"container {cid!r} lost its state and it cannot be written back: {e}")
        return False


def _take_back_one(runtime: Any, store: Any, cid: str) -> None:
    from mrun.bundles import MARKER, image_of
    from mrun.errors import MrunError
    from mrun.images.unstarted import record_stopped
    from mrun.kernel import overlay
    from mrun.spec import load_bundle

    if cid.startswith(".") or runtime.store.exists(cid):
        return
    bundle = os.path.join(store.containers, cid)
    meta = image_of(bundle)
    if meta is None or not of_earlier_boot(meta) or meta.get("id") != cid:
        return
    if os.path.abspath(meta.get("root") or "") != os.path.abspath(runtime.store.root):
        return
    _release_addresses(runtime.store.root, cid)
    rootfs = os.path.join(bundle, "rootfs")
    if not os.path.ismount(rootfs) and not os.listdir(rootfs):  # the overlay went with the boot (a copy stays)
        layers = [store.layer_dir(d) for d in meta.get("layers") or []]
        overlay.mount(rootfs, list(reversed(layers)), os.path.join(bundle, "upper"), os.path.join(bundle, "work"))
    try:
        record_stopped(runtime, cid, bundle, load_bundle(bundle))
    except MrunError as e:
        raise ValueError(str(e)) from None
    jsonio.replace_file(os.path.join(bundle, MARKER), {**meta, "boot": boot_id()})


def _release_addresses(state_root: str, cid: str) -> None:
    """The address leases and host port reservations the container held in the earlier boot:
    they outlive /run (the network root is /var/lib/mrun/networks), so its start took a new
    address beside its old one, held for as long as it lived, and one of docker's --ip found
    its own address taken ("already the address of container ..."). Dropped while the
    container has no state (so they are a dead container's), as `network prune` drops them."""
    from mrun.network.store import Networks

    nets = Networks()
    for path, _ in nets.reservations():
        owner = jsonio.load_object(path) or {}
        if owner.get("container") == cid and os.path.abspath(str(owner.get("root") or "")) == \
                os.path.abspath(state_root):
            nets.drop_if_dead(path)

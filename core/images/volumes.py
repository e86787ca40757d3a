"""Volumes, docker's way: ``<image root>/volumes/<name>/data``, made on first use or by
``mrun volume create``, filled from the image while empty (containers.py's copy-up).

A named volume outlives its containers until ``mrun volume rm``. An anonymous one (``-v /DEST``,
``--mount type=volume`` without a source, an image's ``Volumes``) has a random 64-hex name and a
mark, is removed with its container by ``mrun run --rm`` and ``mrun rm -v``, and by
``mrun volume prune``. A volume some container's config still mounts is in use: never removed.
"""

from __future__ import annotations

import errno
import os

from mrun import jsonio
from mrun.bundles import container_ids
from mrun.errors import InvalidSpec, NotFound
from mrun.kernel.tree import remove_tree
from mrun.scratch import is_scratch, scratch_name

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

ANONYMOUS = "anonymous"  # a file in the volume's directory: made for one container, nameless
LABELS = "labels.json"  # docker's volume create --label: the volume's labels, written with it
OPTIONS = "options.json"  # docker's volume create -o (the local driver's type=none,o=bind,device=PATH)
NEW = ".new-"  # a volume being made (_make_whole)
GONE = ".gone-"  # a volume being removed (_remove)
ANONYMOUS_SOURCE = "<anonymous>"  # what -v and --mount are given for one (-v /DEST, --mount without source=)


def top(store_root: str) -> str:
    return os.path.join(store_root, "volumes")


def data(store_root: str, name: str) -> str:
    """Where the volume's files are (what containers mount)."""
    return os.path.join(top(store_root), name, "data")


def check_name(what: str, name: str) -> None:
    if not (name[:1].isalnum() and name.isascii() and name.replace("_", "a").replace(".", "a").replace("-", "a")
            .isalnum()):
        raise InvalidSpec(f"{what}: a volume name is letters, digits, '.', '_' and '-' (a letter or digit first)")
    if len(name) > 255:  # it names the volume's directory
        raise InvalidSpec(f"{what}: a volume name is at most 255 characters")


def create(store_root: str, name: str = "", anonymous: bool = False, labels: dict[str, str] | None = None,
           options: dict[str, str] | None = None) -> str:
    """The volume ``name`` (made if new, with ``labels`` and driver ``options``; a random name
    when none is given; one there already is left as it is, as docker's, unless other options
    are asked for it). -> its name."""
    if not name:
        name = os.urandom(32).hex()
    check_name(f"volume {name!r}", name)
    os.makedirs(top(store_root), mode=0o700, exist_ok=True)
    if not os.path.isdir(data(store_root, name)):
        _make_whole(store_root, name, anonymous, labels or {}, options or {})
    elif options and options != options_of(store_root, name):
        raise InvalidSpec(f"volume {name!r} exists with other options")
    return name


def labels_of(store_root: str, name: str) -> dict[str, str]:
    """The volume's labels ({} for none, and for a file damaged into anything but strings)."""
    found = jsonio.load_object(os.path.join(top(store_root), name, LABELS)) or {}
    return {k: v for k, v in found.items() if isinstance(v, str)}


def options_of(store_root: str, name: str) -> dict[str, str]:
    """The volume's driver options ({} for none, and for a file damaged into anything but strings)."""
    found = jsonio.load_object(os.path.join(top(store_root), name, OPTIONS)) or {}
    return {k: v for k, v in found.items() if isinstance(v, str)}


def check_options(options: dict[str, str], what: str = "volume create -o") -> None:
    """The local driver's options mrun honours: a named bind (``type=none``, ``o=bind`` or
    ``rbind``, with ``ro``/``rw``; ``device=/PATH``), what `docker volume create` scripts use to
    give a host directory a volume's name. Other types (tmpfs, nfs, a block device) are mounted
    by docker's daemon on the host and shared by the containers using them at once: refused."""
    if not options:
        return
    unknown = sorted(set(options) - {"type", "o", "device"})
    if unknown:
        raise InvalidSpec(f"{what} {unknown[0]}=: the local driver's options are type, o and device")
    flags = options.get("o", "").split(",")
    if options.get("type") != "none" or not {"bind", "rbind"} & set(flags):
        raise InvalidSpec(f"{what}: mrun's local driver takes type=none,o=bind,device=/PATH (a named bind); "
                          f"type={options.get('type', '')} o={options.get('o', '')} is not supported")
    if set(flags) - {"bind", "rbind", "ro", "rw"}:
        raise InvalidSpec(f"{what} o={options['o']}: bind or rbind, with ro or rw")
    device = options.get("device", "")
    if not device.startswith("/") or "\0" in device:
        raise InvalidSpec(f"{what} device={device}: an absolute path on this host")


def bind_device(store_root: str, name: str) -> tuple[str, bool] | None:
    """A named bind's host directory and whether it is read-only, or None for a volume of its
    own files. Its record is checked again as it is read (a hand may have changed it)."""
    options = options_of(store_root, name)
    if not options:
        return None
    check_options(options, f"volume {name!r}:")
    return options["device"], "ro" in options["o"].split(",")


def _make_whole(store_root: str, name: str, anonymous: bool, labels: dict[str, str] | None = None,
                options: dict[str, str] | None = None) -> None:
    """Made under a name no volume has (``.new-``: a volume's starts with a letter or digit),
    marked if anonymous, then renamed: a create killed at any instant leaves no half of a volume
    (a directory without its data, which nothing lists; an anonymous one without its mark, which
    looks named and outlives ``volume prune``), only a ``.new-`` one that ``prune`` sweeps. A
    concurrent create of the same name that renamed first wins; ours is removed."""
    making = os.path.join(top(store_root), scratch_name(NEW))
    final = os.path.join(top(store_root), name)
    try:
        os.mkdir(making, mode=0o755)
        if anonymous:
            with open(os.path.join(making, ANONYMOUS), "w"):
                pass
        if labels:
            jsonio.write_file(os.path.join(making, LABELS), labels)
        if options:
            jsonio.write_file(os.path.join(making, OPTIONS), options)
        os.mkdir(os.path.join(making, "data"), mode=0o755)
        try:
            os.rename(making, final)
        except OSError as e:  # ENOTEMPTY/EEXIST: a concurrent create renamed first (an empty stub is replaced)
            if e.errno not in (errno.ENOTEMPTY, errno.EEXIST) or anonymous:
                raise
            if not os.path.isdir(data(store_root, name)):
                os.mkdir(data(store_root, name), mode=0o755)
            remove_tree(making, ignore_errors=True)
    except BaseException:
        remove_tree(making, ignore_errors=True)
        raise


def names(store_root: str) -> list[str]:
    where = top(store_root)
    if not os.path.isdir(where):
        return []
    return sorted(n for n in os.listdir(where) if not n.startswith((NEW, GONE)) and os.path.isdir(data(store_root, n)))


def is_anonymous(store_root: str, name: str) -> bool:
    return os.path.exists(os.path.join(top(store_root), name, ANONYMOUS))


def users(store_root: str, name: str) -> list[str]:
    """The containers (made by `mrun run`) whose config mounts the volume (a named bind's: its
    host directory)."""
    sources = {data(store_root, name)}
    try:
        bound = bind_device(store_root, name)
    except InvalidSpec:
        bound = None
    if bound:
        sources.add(bound[0])
    containers = os.path.join(store_root, "containers")
    found = []
    for cid in container_ids(containers):
        config = jsonio.load_object(os.path.join(containers, cid, "config.json"))
        if config is None:
            continue
        if any(isinstance(m, dict) and m.get("source") in sources for m in config.get("mounts") or []):
            found.append(cid)
    return found


def store_lock(store_root: str) -> Any:
    """The image store's lock (``ImageStore.lock``), which a run's preparation holds from making
    its volumes until its container's config names them (``containers.prepare``): ``users`` is
    only true under it. Without it, ``volume prune`` took a run's new anonymous volume in that
    moment, and the run failed on its missing mount. Every maker of a volume holds it (`volume
    create` too), so the ``.new-`` entries ``prune`` sweeps under it are a killed making's."""
    from mrun.images.store import ImageStore

    return ImageStore(store_root).lock()


def remove(store_root: str, name: str) -> None:
    """Refused while a container uses it (docker's "volume is in use")."""
    check_name(f"volume {name!r}", name)
    if name not in names(store_root):  # before the lock, which would make the image root
        raise NotFound(f"volume {name!r} does not exist")
    with store_lock(store_root):
        if name not in names(store_root):  # a run --rm took its own meanwhile
            raise NotFound(f"volume {name!r} does not exist")
        used = users(store_root, name)
        if used:
            raise InvalidSpec(f"volume {name!r} is in use by container(s) {', '.join(used)}")
        _remove(store_root, name)


def _remove(store_root: str, name: str) -> None:
    """Renamed out of the volumes' names first, one step, then removed: killed in the middle, a
    ``.gone-`` entry that ``prune`` sweeps, never what is left of a volume (a directory without
    its data or its mark: nothing lists it, nothing removed it)."""
    gone = os.path.join(top(store_root), scratch_name(GONE))  # not the name: it may be 255 bytes long
    try:
        os.rename(os.path.join(top(store_root), name), gone)
    except FileNotFoundError:
        return
    remove_tree(gone, ignore_errors=True)


def remove_anonymous(store_root: str, used: list[str]) -> None:
    """After a container went (run --rm, rm -v): those of its volumes that were anonymous and
    that no other container uses."""
    for name in used:
        if is_anonymous(store_root, name) and not users(store_root, name):
            _remove(store_root, name)


def prune(store_root: str, everything: bool = False, chosen: Callable[[str], bool] | None = None) -> list[str]:
    """docker's volume prune: the unused anonymous volumes (``everything``: named ones too),
    those ``chosen`` chooses (its --filter)."""
    where = top(store_root)
    if not os.path.isdir(where):
        return []
    removed = []
    with store_lock(store_root):
        for name in names(store_root):
            if (everything or is_anonymous(store_root, name)) and not users(store_root, name) and (
                    chosen is None or chosen(name)):
                _remove(store_root, name)
                removed.append(name)
        for name in os.listdir(where):
            # a making or a removal, killed: never listed, mounted or used (a volume appears
            # whole, by rename, and goes by rename). Nothing else: any other name without data/
            # is someone else's (an image root shared by mistake: docker's volumes/ has _data/)
            if is_scratch(name, NEW) or is_scratch(name, GONE):
                remove_tree(os.path.join(where, name), ignore_errors=True)
    return removed


def describe(store_root: str, name: str) -> dict[str, Any]:
    if name not in names(store_root):
        raise NotFound(f"volume {name!r} does not exist")
    return {"name": name, "mountpoint": data(store_root, name), "anonymous": is_anonymous(store_root, name),
            "containers": users(store_root, name), "labels": labels_of(store_root, name),
            "options": options_of(store_root, name)}


def of_container(store_root: str, config: dict[str, Any]) -> list[str]:
    """The volumes a container's config mounts, by name (a named bind's by its host directory)."""
    return [name for name in names_of_mounts(store_root, config.get("mounts") or []) if name]


def names_of_mounts(store_root: str, mounts: list[Any]) -> list[str | None]:
    """For each of ``mounts``, the volume it mounts (a volume's own directory, or a named bind's
    host directory), or None for any other mount."""
    prefix = top(store_root) + os.sep
    out: list[str | None] = []
    devices: dict[str, str] | None = None  # read once, when a mount is no volume's own directory
    for m in mounts:
        source = m.get("source") if isinstance(m, dict) else None
        name = None
        if not isinstance(source, str):
            pass
        elif source.startswith(prefix) and source.endswith(os.sep + "data"):
            name = source[len(prefix):-len(os.sep + "data")]
            try:
                check_name("", name)  # a volume's own directory, not a path below one
            except InvalidSpec:
                name = None
        elif m.get("type") == "bind":
            devices = _bind_devices(store_root) if devices is None else devices
            name = devices.get(source)
        out.append(name)
    return out


def _bind_devices(store_root: str) -> dict[str, str]:
    """{host directory: volume name} of the named binds (volume create -o ... device=PATH)."""
    found = {}
    for name in names(store_root):
        if os.path.exists(os.path.join(top(store_root), name, OPTIONS)):
            try:
                bound = bind_device(store_root, name)
            except InvalidSpec:
                continue
            if bound is not None:
                found.setdefault(bound[0], name)
    return found

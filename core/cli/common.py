"""What every family of verbs shares (runc's, docker's, networks', system): the runtime for the
global flags, and table output. Its own module so the verb modules need not import each other."""

from __future__ import annotations

import os

from mrun.runtime import Runtime

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~6 ms (it imports re) on the lifecycle verbs' hot path
    from typing import Any

    from mrun.images.store import ImageStore


def _rt(g: dict[str, Any]) -> Runtime:
    runtime = Runtime(g["root"], warn=g.get("warn"), debug=g.get("debug_log"))
    if g.get("image_root") and not g.get("taken_back"):
        from mrun.images.reboot import take_back

        g["taken_back"] = True
        take_back(runtime, g["image_root"])  # containers of an earlier boot (images/reboot): listed again
    if not g.get("held_again"):
        from mrun.network.recovery import hold_again

        g["held_again"] = True
        hold_again(runtime.store.root, runtime.warn)  # what a removed network root lost
    return runtime


def image_store(g: dict[str, Any]) -> ImageStore:
    """The image store of the global flags (--image-root); imported here only when asked for, as
    the runc verbs never are."""
    from mrun.images.store import ImageStore

    return ImageStore(g["image_root"])


def names_a_container(runtime: Runtime, word: str) -> bool:
    """Whether ``word`` is the id of an existing container. A word that is no id names none: an
    image's name (busybox:latest), a signal, `/` or `..` (which the store's directory test alone
    took for a container)."""
    from mrun.errors import MrunError
    from mrun.state import check_id

    try:
        check_id(word)
    except MrunError:
        return False
    return runtime.store.exists(word)


def os_error_words(verb: str, error: OSError) -> str:
    """An OSError as one line: the verb, the error's own words, and the file it names."""
    from mrun.errors import in_words

    return f"{verb}: {in_words(error)}"


def reader_gone(fd: int) -> bool:
    """Whether ``fd`` is a pipe (or socket) whose reader has closed its end: the kernel reports
    an error condition on the writing end then, so a broken pipe elsewhere (a container's stdin,
    a registry's socket) is not taken for it."""
    import select

    poll = select.poll()
    poll.register(fd, select.POLLOUT)
    return any(events & select.POLLERR for _fd, events in poll.poll(0))


def no_stdin() -> None:
    """docker's run and exec without -i: the container reads nothing of ours (/dev/null). Ours
    let it eat the rest of a `while read` loop's input (the ssh -n trap), or read the caller's
    terminal."""
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)


def can_release() -> bool:
    """Whether this work can let its caller go while it carries on (`run -it` or `exec -it`
    detached by their keys, `run --sig-proxy=false` given a signal): a warm template's child, or
    a cold run's child (cli.cold_child); not work done in its caller's own process."""
    import mrun.warm.client as warm

    return warm.release is not None


def let_caller_go(status: int) -> None:
    """Our caller ends now with ``status`` while we carry on: nothing of ours holds its stdio
    any more (a `| cat` after it ends), then the release (warm.client.release: the template's,
    or cold_child's)."""
    import mrun.warm.client as warm
    from mrun.exiting import flush_standard_streams

    flush_standard_streams()
    null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
    release, warm.release = warm.release, None
    if release is not None:
        release(status)


def print_table(rows: list[tuple[str, ...]]) -> None:
    """Columns padded to their widest cell, the first row a header."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


def remove_container(g: dict[str, Any], container_id: str, force: bool) -> None:
    """runc's delete (runc's `delete` and docker's `rm` both): with ``force``, also what a killed
    `mrun run IMAGE` left of the container (its snapshot, no state). A detached container's
    supervisor, on its way out, is waited for until it has left its cgroup (cgroups.beside)."""
    from mrun.cgroups import beside
    from mrun.state import check_id

    check_id(container_id)  # (a name that is no id reads no file of ours, nor anyone's)
    bundle = os.path.join(g["image_root"], "containers", container_id)
    supervisors = beside.recorded(bundle)  # read now: the bundle goes with the container
    _rt(g).delete(container_id, force)
    if force and os.path.exists(bundle):
        from mrun.images.containers import remove_orphans
        from mrun.images.store import ImageStore

        store = ImageStore(g["image_root"])
        with store.lock():
            remove_orphans(store, only=container_id)
    beside.removed_once_left(supervisors)


def each(container_ids: list[str], verb: str, one: Any, one_raises: bool = False) -> int:
    """docker's way with several containers: each one in turn, a failure reported and the rest
    still done, exit status 1 if any failed. ``one_raises``: a single container's failure is
    raised as it always was (a runc verb's exit status, which its callers read)."""
    import sys

    from mrun.cli.short_ids import ambiguous
    from mrun.errors import InvalidSpec, MrunError, one_line

    if not container_ids:
        raise InvalidSpec(f"{verb}: name at least one container")

    def each_one(cid: str) -> None:
        if cid in ambiguous:  # a short id several share: refused here, the others still done
            raise InvalidSpec(ambiguous[cid])
        one(cid)

    if one_raises and len(container_ids) == 1:
        each_one(container_ids[0])
        return 0
    status = 0
    for cid in container_ids:
        try:
            each_one(cid)
        except MrunError as e:
            print(f"mrun: {one_line(str(e))}", file=sys.stderr)
            status = 1
    return status


def filter_pairs(filters: list[str], keys: tuple[str, ...], takes: str) -> list[tuple[str, str, str]]:
    """docker's ``--filter KEY=VALUE``s, each split and its key checked: -> (the text, KEY, VALUE).
    One with no value, or a key not in ``keys``, is refused naming it and saying what ``takes``
    (a verb's keys): a filter passed over would list, or remove, what it was there to leave out."""
    from mrun.errors import InvalidSpec

    pairs = []
    for text in filters:
        key, eq, value = text.partition("=")
        if not eq or not value or key not in keys:
            raise InvalidSpec(f"--filter {text!r}: {takes}")
        pairs.append((text, key, value))
    return pairs


def filter_yes(text: str, value: str) -> bool:
    """A filter's true or false (docker's ParseBool: 1 and 0 too)."""
    from mrun.errors import InvalidSpec

    if value not in ("true", "false", "1", "0"):
        raise InvalidSpec(f"--filter {text!r}: true or false")
    return value in ("true", "1")

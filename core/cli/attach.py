"""docker's attach: a running detached container's output from now on, on our stdout and stderr;
the signals we get passed on to it (``--sig-proxy``, docker's default); its exit code ours.

The output comes from its log as its supervisor writes it (images.log_relay), not from its
standard streams, which the supervisor holds: so a container run with ``--log-driver none``
has nothing to attach to. Its standard input is ours to feed where it was made with -i, as
docker's: its supervisor hands us the write end it holds, or its terminal's master
(images.held_input); with a terminal, ours is raw, its size the container's, and ctrl-p ctrl-q
(--detach-keys) leaves it running. Otherwise its stdin is /dev/null since `mrun run -d`.
"""

from __future__ import annotations

import os
import signal
import sys
import time

from mrun import annotations as ann
from mrun.cli.common import _rt
from mrun.errors import InvalidSpec, InvalidState, MrunError, NotFound
from mrun.images.held_input import wanted
from mrun.status import Status

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# What docker's attach passes on (all but those it cannot or must not catch, and SIGCHLD,
# SIGPIPE, SIGURG, SIGWINCH, which concern the attaching process itself).
PROXIED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2,
           signal.SIGALRM, signal.SIGCONT)


def attach(g: dict[str, Any], container_id: str, sig_proxy: bool = True, no_stdin: bool = False,
           detach_keys: str = "") -> int:
    from mrun.images import log_relay
    from mrun.sandbox.console import parse_detach_keys

    keys = parse_detach_keys(detach_keys)
    runtime = _rt(g)
    record = runtime.store.load(container_id)
    status = runtime.status(record)
    if status == Status.STOPPED:
        raise InvalidState(f"cannot attach to container {container_id!r}: it is stopped (start it first)")
    if status == Status.PAUSED:
        raise InvalidState(f"cannot attach to container {container_id!r}: it is paused (resume it first)")
    if status != Status.RUNNING:
        raise InvalidState(f"cannot attach to container {container_id!r}: it is {status}, not running")
    bundle = record.bundle
    if not log_relay.indexed(bundle):
        raise NotFound(f"cannot attach to container {container_id!r}: its output is kept nowhere (only `mrun run -d "
                       "IMAGE` keeps it, and not with --log-driver none)")
    terminal, open_stdin = wanted(record.config)
    if open_stdin and not no_stdin:
        _check_tty(terminal)
    reader = log_relay.TimedReader(bundle)
    if not reader.start_at(_current_size(bundle)):  # from now on: what it wrote before is `logs`'
        reader.close()
        raise NotFound(f"cannot attach to container {container_id!r}: its log is gone")
    feed = _input(bundle, keys) if open_stdin and not no_stdin else None
    return _follow(runtime, container_id, bundle, reader, sig_proxy and not terminal, feed)


def _check_tty(terminal: bool) -> None:
    """docker's refusal: a terminal container's input typed from something that is no terminal."""
    if terminal and not os.isatty(0):
        raise InvalidSpec("the input device is not a TTY")


def _input(bundle: str, keys: bytes) -> Any:
    """Our stdin into the container's, as its supervisor hands it to us (images.held_input): a
    relay of what we type, our terminal raw and its size the container's where the container
    has a terminal (and the detach keys read there). None where it holds none now."""
    import mrun.warm.client as warm
    from mrun.images.held_input import connect
    from mrun.sandbox.console import TerminalProxy

    found = connect(bundle)
    if found is None:
        return None
    fd, terminal = found
    return TerminalProxy(fd, caller=warm.caller, output=False, raw=terminal,
                         detach_keys=keys if terminal else b"")


def start_attached(g: dict[str, Any], container_id: str, interactive: bool = False, detach_keys: str = "") -> int:
    """docker's `start -a`: the container started (a created one, an exited one) and followed
    from its start, its exit code ours (`docker create` + `docker cp` + `docker start -a`, a
    build's pattern). One of `create --rm` is removed here once its code is read (its
    supervisor would remove it with its code); killed before, it stays, exited, for `rm`.
    ``interactive`` (-i): our stdin its, where it was made with -i (docker's `start -ai`)."""
    from mrun.images import log_relay
    from mrun.images.supervisor import log_kept, start_again
    from mrun.images.unstarted import never_started
    from mrun.sandbox.console import parse_detach_keys

    keys = parse_detach_keys(detach_keys)
    runtime = _rt(g)
    record = runtime.store.load(container_id)
    if ann.IMAGE not in record.annotations:
        raise InvalidState(f"start -a {container_id}: only a container of `mrun run -d` or `mrun create` is attached")
    bundle = record.bundle
    if not log_kept(bundle):
        raise NotFound(f"start -a {container_id}: its output is kept nowhere (--log-driver none or passthrough)")
    terminal, open_stdin = wanted(record.config)
    interactive = interactive and open_stdin
    if interactive:
        _check_tty(terminal)
    offset = _current_size(bundle)
    remove = False
    if runtime.status(record) == Status.STOPPED:
        remove = bool((never_started(bundle) or {}).get("remove"))
        start_again(runtime, container_id, keep=True)
    reader = log_relay.TimedReader(bundle)
    if not reader.start_at(offset):
        reader.close()
        raise NotFound(f"cannot attach to container {container_id!r}: its log is gone")
    feed = _input(bundle, keys) if interactive else None
    code = _follow(runtime, container_id, bundle, reader, not terminal, feed)
    if remove:
        from mrun.images.supervisor import remove_with_volumes

        remove_with_volumes(runtime, container_id)
    return code


def _follow(runtime: Any, container_id: str, bundle: str, reader: Any, sig_proxy: bool, feed: Any = None) -> int:
    """Its output as its supervisor logs it, until its exit code is noted: that code. The
    container's files (its log, its exit note) stay until then, though `rm -f` removes it
    (bundles.reading). ``feed``: the relay of our input into it (`_input`), if any."""
    from mrun import bundles

    with bundles.reading(bundle, container_id, runtime.store.root):
        return _until_it_ends(runtime, container_id, bundle, reader, sig_proxy, feed)


def _until_it_ends(runtime: Any, container_id: str, bundle: str, reader: Any, sig_proxy: bool,
                   feed: Any = None) -> int:
    from mrun.cli.log_verbs import write_pieces
    from mrun.images.supervisor import exit_code, stopped_by_user

    caught: list[int] = []
    if sig_proxy:
        for sig in PROXIED:
            signal.signal(sig, lambda n, _f: caught.append(n))
    else:  # ^C detaches, as docker's --sig-proxy=false (and its attach to a terminal): the container goes on
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if feed is not None:
        signal.signal(signal.SIGWINCH, lambda _n, _f: feed.resize())  # our window is its terminal's
        feed.begin()
        feed.settled.wait(1)  # its output shown on our terminal once raw, as the container's terminal shapes it
    try:
        while True:
            if feed is not None and feed.detached:
                write_pieces(reader.read(whole=True))
                feed.end()
                feed = None
                sys.stderr.write("read escape sequence\n")  # docker's words, and its status
                return 1
            while caught:
                sig = caught.pop(0)
                stopped_by_user(runtime, container_id, sig)  # as `mrun kill` would: --restart rests
                try:
                    runtime.kill(container_id, sig)
                except (InvalidState, NotFound):
                    pass  # it ended meanwhile: its exit code comes below
            write_pieces(reader.read(whole=True))
            try:
                code = exit_code(runtime, container_id, bundle)
            except MrunError:
                write_pieces(reader.read(whole=True))  # what it wrote last
                raise
            if code is not None:
                write_pieces(reader.read(whole=True))
                return code
            time.sleep(0.05)
    except KeyboardInterrupt:  # --sig-proxy=false: detached, the container runs on
        return 0
    finally:
        if feed is not None:
            feed.end()
        reader.close()


def _current_size(bundle: str) -> int:
    try:
        return os.path.getsize(os.path.join(bundle, "log"))
    except OSError:
        return 0

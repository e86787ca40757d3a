"""docker's attach: a running detached container's output from now on, on our stdout and stderr;
the signals we get passed on to it (``--sig-proxy``, docker's default); its exit code ours.

The output comes from its log as its supervisor writes it (images.log_relay), not from its
standard streams, which the supervisor holds: so a container run with ``--log-driver none``
has nothing to attach to, and its standard input, /dev/null since `mrun run -d`, is not ours
to feed (docker's attach writes to it only for a container run with -i).
"""

from __future__ import annotations

import os
import signal
import time

from mrun.cli.common import _rt
from mrun.errors import InvalidState, MrunError, NotFound
from mrun.status import Status

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# What docker's attach passes on (all but those it cannot or must not catch, and SIGCHLD,
# SIGPIPE, SIGURG, SIGWINCH, which concern the attaching process itself).
PROXIED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2,
           signal.SIGALRM, signal.SIGCONT)


def attach(g: dict[str, Any], container_id: str, sig_proxy: bool = True, no_stdin: bool = False) -> int:
    from mrun.cli.image_verbs import write_pieces
    from mrun.images import log_relay
    from mrun.images.supervisor import exit_code, stopped_by_user

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
    reader = log_relay.TimedReader(bundle)
    if not reader.start_at(_current_size(bundle)):  # from now on: what it wrote before is `logs`'
        reader.close()
        raise NotFound(f"cannot attach to container {container_id!r}: its log is gone")
    caught: list[int] = []
    if sig_proxy:
        for sig in PROXIED:
            signal.signal(sig, lambda n, _f: caught.append(n))
    else:  # ^C detaches, as docker's --sig-proxy=false: the container goes on
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        while True:
            while caught:
                sig = caught.pop(0)
                stopped_by_user(runtime, container_id, sig)  # as `mrun kill` would: --restart rests
                try:
                    runtime.kill(container_id, sig)
                except (InvalidState, NotFound):
                    pass  # it ended meanwhile: its exit code comes below
            write_pieces(reader.read(whole=True))
            try:
                code = exit_code(runtime, container_id)
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
        reader.close()


def _current_size(bundle: str) -> int:
    try:
        return os.path.getsize(os.path.join(bundle, "log"))
    except OSError:
        return 0

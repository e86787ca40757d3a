"""docker's `logs`: a container's output as its supervisor kept it, --tail, --since/--until,
--timestamps and --follow until the container ends."""

from __future__ import annotations

import os
import sys
import time

from mrun.cli.common import _rt
from mrun.cli.filters import log_time
from mrun.errors import InvalidSpec, MrunError, NotFound
from mrun.status import Status
from mrun.units import decimal

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def logs(g: dict[str, Any], container_id: str, follow: bool, tail: str = "all", timestamps: bool = False,
         since: str = "", until: str = "", details: bool = False) -> int:
    runtime = _rt(g)
    bundle = runtime.store.load(container_id).bundle
    from mrun.images import log_relay
    from mrun.images.log_relay import replaced, rotated

    path = os.path.join(bundle, "log")
    older = rotated(bundle)  # --log-opt max-file: each at most max-size, so read whole
    if not os.path.exists(path) and not older:  # (only older ones: a rotation was interrupted)
        from mrun.images.unstarted import never_started

        if never_started(bundle) is not None:
            return 0  # one of `create` that has not run: nothing said yet (docker's)
        raise NotFound(f"container {container_id!r} has no log (none is kept with --log-driver none or "
                       "passthrough, nor of a foreground `run -t`)")
    if tail != "all" and decimal(tail) is None:  # (5,000 digits were int()'s error)
        raise InvalidSpec(f"--tail {tail!r}: a number of lines (up to 2^63-1), or all")
    if timestamps or since or until or log_relay.indexed(bundle):  # not indexed: noted by an older mrun
        return _timed_logs(runtime, container_id, bundle, follow, tail, timestamps, since, until)
    stopped = False
    f = _open_log(path)  # replaced when the log rotates; closed below
    try:
        if older:
            data = b"".join(_read_whole(p) for p in older) + f.read()
            if tail != "all":
                data = b"".join(data.splitlines(keepends=True)[-int(tail):]) if int(tail) else b""
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
        elif tail != "all":
            f.seek(_tail_offset(f, int(tail)))
        while True:
            chunk = f.read(1 << 16)
            if chunk:
                sys.stdout.buffer.write(chunk)
                sys.stdout.buffer.flush()
                continue
            if not follow or stopped:
                return 0
            if replaced(path, f) or (not hasattr(f, "name") and os.path.exists(path)):  # rotated: on to the new log
                f.close()
                f = _open_log(path)
                continue
            # once stopped, read to the end once more: what it wrote between our last read and
            # its exit is in the file, and would be left out by stopping at this check
            stopped = _ended(runtime, container_id)
            if not stopped:
                time.sleep(0.1)
    finally:
        f.close()


def _ended(runtime: Any, container_id: str) -> bool:
    """Whether a followed container has stopped, or been removed (`rm -f`): docker's `logs -f`
    then ends as at a stop. It was "container ... does not exist", exit 1, mid-stream."""
    try:
        return runtime.status(runtime.store.load(container_id)) == Status.STOPPED
    except NotFound:
        return True


def _open_log(path: str) -> Any:
    """The current log, or an empty one where a rotation was interrupted before it was made anew."""
    try:
        return open(path, "rb")  # noqa: SIM115 - the caller's to close
    except FileNotFoundError:
        import io

        return io.BytesIO()


def _read_whole(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:  # dropped by a rotation meanwhile
        return b""


def _timed_logs(runtime: Any, container_id: str, bundle: str, follow: bool, tail: str, timestamps: bool,
                since: str, until: str) -> int:
    """The log as its supervisor noted it (images.log_relay): the container's stderr on ours, as
    docker's logs; with -t each line's time, with --since and --until (a time, a Unix time or a
    duration ago) the lines of that span."""
    from mrun.images import log_relay

    if not log_relay.indexed(bundle):
        raise MrunError(f"container {container_id!r}: its log has no times noted (it was started by an older mrun); "
                        "-t, --since and --until need them")
    now = time.time_ns()
    since_ns = log_time("--since", since, now) if since else 0
    until_ns = log_time("--until", until, now) if until else 0
    reader = log_relay.TimedReader(bundle)
    try:
        if tail != "all" and not since_ns and reader.start_at(0):  # the last lines of a large log: from its end
            start = _tail_offset(reader.log, int(tail))
            if start > 0 or not int(tail):  # all of them in the current log
                reader.start_at(start)
                tail = "all"
            else:
                reader.close()
                reader = log_relay.TimedReader(bundle)
        return _follow_timed(runtime, container_id, reader, follow, tail, timestamps, since_ns, until_ns)
    finally:
        reader.close()


def _follow_timed(runtime: Any, container_id: str, reader: Any, follow: bool, tail: str, timestamps: bool,
                  since_ns: int, until_ns: int) -> int:
    whole = not timestamps and tail == "all"  # no line's time or start needed: a stream's run at once
    pieces = reader.read(since_ns, until_ns, whole)  # (time, text, starts a line, stream), read as written out
    if tail != "all":  # the last N lines: from the piece that starts the Nth line from the end, found by
        from mrun.images.log_relay import TimedReader  # a pass that keeps no text: they were all held,

        counter = TimedReader(reader.bundle)  # and a line may be gigabytes (one without a newline)
        try:
            starts = sum(1 for piece in counter.read(since_ns, until_ns) if piece[2])
        finally:
            counter.close()
        count = int(tail)
        pieces = _from_line(pieces, starts - count) if count else iter(())
    stopped = False
    while True:
        write_pieces(pieces, timestamps)
        if not follow or stopped or (until_ns and time.time_ns() > until_ns):
            return 0
        stopped = _ended(runtime, container_id)  # then one read more
        if not stopped:
            time.sleep(0.1)
        pieces = reader.read(since_ns, until_ns, whole)


def _from_line(pieces: Any, skip: int) -> Any:
    """``pieces`` from the start of line ``skip`` on (counted from 0); all of them if it is < 0."""
    seen = -1
    for piece in pieces:
        seen += bool(piece[2])
        if seen >= skip:
            yield piece


def write_pieces(pieces: Any, timestamps: bool = False) -> None:
    """A log's pieces (log_relay.TimedReader) on our stdout and stderr as their streams were, in
    the order written where both go to one place; with ``timestamps``, each line's time first."""
    out = {1: sys.stdout.buffer, 2: sys.stderr.buffer}
    last = 1
    for at, text, starts, stream in pieces:
        if stream != last:
            out[last].flush()
            last = stream
        if timestamps and starts:
            out[stream].write(f"{_rfc3339_nano(at)} ".encode())
        out[stream].write(text)
    out[1].flush()
    out[2].flush()


def _rfc3339_nano(ns: int) -> str:
    """docker's logs -t time: nine digits of the second, UTC."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 1_000_000_000)) + f".{ns % 1_000_000_000:09d}Z"


def _tail_offset(f: Any, lines: int) -> int:
    """Where the last ``lines`` lines of ``f`` begin (an unfinished last line counts as one),
    found by reading backwards in blocks: a log may be large."""
    end = f.seek(0, os.SEEK_END)
    if lines == 0 or end == 0:
        return end
    f.seek(end - 1)
    pos = end - 1 if f.read(1) == b"\n" else end  # the last line's own newline starts no line
    seen = 0
    while pos > 0:
        start = max(0, pos - (1 << 16))
        f.seek(start)
        data = f.read(pos - start)
        i = len(data)
        while (i := data.rfind(b"\n", 0, i)) >= 0:
            seen += 1
            if seen == lines:
                return start + i + 1
        pos = start
    return 0

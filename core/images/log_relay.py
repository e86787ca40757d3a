"""A detached container's output, line by line into its log, each line's time and stream noted.

The container's stdout and stderr are pipes its supervisor reads (``images.supervisor``): what
comes is written to ``log`` as the container wrote it (so `mrun logs` prints what it printed),
and one line of ``log.times`` notes each piece: ``<offset> <unix ns> <1|2> <s|c> <length>``
(``c``: the piece goes on with a line its stream began earlier). That index is what
`mrun logs -t/--since/--until` read. A piece ends at a newline, where the data that came ends
(a prompt without one is in the log at once; its line's end comes as a ``c`` piece, as docker's
partial messages), or after ``LONGEST`` bytes (docker's json-file splits at 16 KiB too).

docker's ``--log-opt max-size=SIZE`` (and ``max-file=N``, 1 by default) bound the log: once the
next line would pass SIZE, ``log`` and ``log.times`` become ``log.1`` and ``log.times.1`` (the
older ones ``.2`` ... up to N-1, the oldest dropped; with N=1 the log starts again empty), so a
chatty container cannot fill the host's disk. ``--log-driver none`` keeps no log at all.

Each index's first line, ``log <inode>``, names the log it indexes: the two files are renamed one
after the other, and a supervisor killed between the two leaves an index under the name of
another log's. A reader pairs them by that line; the next supervisor on the container puts such
an index back beside its log, or drops one whose log is gone, before it writes (``repair``).

Why pipes rather than the file itself as the container's stdout: a time is only known where the
bytes pass. The price, as with docker's shim and podman's conmon: the supervisor must live for
the container's output to go anywhere (a write to a pipe nobody reads fails, EPIPE).
"""

from __future__ import annotations

import os
import time

from mrun.kernel.fdpass import write_all

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing's import is not paid by a supervisor
    from collections.abc import Iterator
    from typing import Any

    # (ns since the epoch, the text, whether it begins a line (else it goes on with one its
    # stream began), its stream: 1 stdout, 2 stderr)
    Piece = tuple[int, bytes, bool, int]

LOG, TIMES = "log", "log.times"
CHUNK = 1 << 20  # of an index, read at a time
HEADER = b"log"  # an index's first line: ``log <the inode of the log it indexes, 20 digits>``
LONGEST = 16 << 10


def _ours_or_nowhere(fd: int) -> int:
    """A copy of our ``fd``, or /dev/null where the caller had it closed."""
    try:
        return os.dup(fd)
    except OSError:
        return os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)


class Relay:
    def __init__(self, bundle: str, keep: bool = True, max_size: int = 0, max_files: int = 1,
                 echo: tuple[int, ...] = (), pipes: bool = True, passthrough: bool = False) -> None:
        """``keep``: False for --log-driver none (the output is read and dropped). ``echo``: the
        streams (1, 2) whose pieces are copied to our own stdout or stderr too (a foreground
        container's, those `run -a` attaches: images/foreground_log).
        ``pipes``: False where the output comes otherwise (``note``: a foreground terminal's relay).
        ``passthrough``: the container gets our own stdout and stderr (--log-driver passthrough):
        nothing passes through us, nothing is kept."""
        self.bundle, self.keep, self.max_size, self.max_files = bundle, keep, max_size, max(1, max_files)
        self.echo = echo
        self.log = self.times = -1
        self.size = 0
        if keep:
            self._open()
        self.streams: dict[int, int] = {}  # our read end -> 1 or 2
        self.writers: dict[int, int] = {}  # 1 or 2 -> the write end the container gets
        self.open_line = {1: False, 2: False}  # the stream's last piece did not end its line
        self.open_before = dict(self.open_line)  # as it was after the last piece written
        if passthrough and pipes:
            self.writers = {stream: _ours_or_nowhere(stream) for stream in (1, 2)}
            pipes = False
        for stream in (1, 2) if pipes else ():
            r, w = os.pipe2(os.O_CLOEXEC)
            os.set_blocking(r, False)
            self.streams[r], self.writers[stream] = stream, w

    def _open(self) -> None:
        repair(self.bundle)
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC | os.O_NOFOLLOW
        self.log = os.open(os.path.join(self.bundle, LOG), flags, 0o640)
        self.times = os.open(os.path.join(self.bundle, TIMES), flags, 0o640)
        log = os.fstat(self.log)
        self.size = log.st_size
        if os.fstat(self.times).st_size == 0:
            _write_all(self.times, _header(log.st_ino))

    def fds(self) -> list[int]:
        """What a supervisor keeps open for the relay (everything else it closes)."""
        files = [self.log, self.times] if self.keep else []
        return [*files, *self.streams, *self.writers.values()]

    def _rotate(self) -> None:
        """log -> log.1 -> ... -> log.N-1 (the oldest dropped), each with its index; a new log."""
        os.close(self.log)
        os.close(self.times)
        for name in (LOG, TIMES):
            path = os.path.join(self.bundle, name)
            try:
                if self.max_files == 1:
                    os.unlink(path)
                for i in range(self.max_files - 1, 0, -1):
                    older = f"{path}.{i - 1}" if i > 1 else path
                    if os.path.lexists(older):
                        os.replace(older, f"{path}.{i}")
            except OSError:  # removed with the container meanwhile: the new files fail alike
                pass
        try:
            self._open()
        except OSError:
            self.keep = False

    def pump(self, fd: int) -> bool:
        """Whatever the stream ``fd`` has now (it is non-blocking), written at once. -> False once
        it has ended (or, echoed, once the echo's reader is gone: the stream is closed then, so
        the container's next write fails as it would have written to that reader itself)."""
        stream = self.streams[fd]
        while True:
            try:
                data = os.read(fd, 1 << 16)
            except BlockingIOError:
                return True
            if not data:
                return False
            if stream in self.echo:
                try:
                    write_all(stream, data)
                except OSError:  # `| head` has what it wanted, a terminal hung up
                    os.close(fd)
                    del self.streams[fd]
                    return False
            if self.keep:
                self._take(stream, data, time.time_ns())

    def note(self, stream: int, data: bytes) -> None:
        """``data`` the container wrote on ``stream``, logged now (what came another way than the
        relay's pipes: a foreground terminal's output, which its relay has shown the caller)."""
        if self.keep:
            self._take(stream, data, time.time_ns())

    def close_log(self) -> None:
        for fd in (self.log, self.times):
            if fd >= 0:
                os.close(fd)
        self.log = self.times = -1
        self.keep = False

    def _take(self, stream: int, data: bytes, now: int) -> None:
        """``data`` as pieces that end at a newline (or after LONGEST bytes, or where the data
        ends), each noted: ``s`` if it starts a line, ``c`` if it goes on with one of its stream's
        the container has not ended yet (it wrote a prompt, or a long line in parts)."""
        lines, index = [], []
        start = 0
        while start < len(data):
            newline = data.find(b"\n", start, start + LONGEST)
            end = newline + 1 if newline >= 0 else min(len(data), start + LONGEST)
            # rotated before a line begins (a file never starts halfway through one), or past twice
            # the size if a line never ends
            starts = not self.open_line[stream]
            if self.max_size and self.size and self.size + end - start > self.max_size * (1 if starts else 2):
                self._write(lines, index)
                lines, index = [], []
                self._rotate()
                if not self.keep:
                    return
            index.append(f"{self.size} {now} {stream} {'c' if self.open_line[stream] else 's'} {end - start}\n")
            lines.append(data[start:end])
            self.size += end - start
            self.open_line[stream] = data[end - 1:end] != b"\n"
            start = end
        self._write(lines, index)

    def finish(self) -> None:
        """What is left in the pipes once the container has ended."""
        for fd in list(self.streams):
            self.pump(fd)

    def _write(self, lines: list[bytes], index: list[str]) -> None:
        """The lines first, then their index entries: a reader that sees an entry finds its line.
        A batch that does not fit (the disk is full) is dropped whole, as docker's json-file drops
        what it cannot write: the log and its index go back to where they ended, so the offsets
        of the entries after it are the log's (part of a batch left in the log would shift them
        and every later `logs -t` would cut lines in two)."""
        if not lines:
            return
        marks = [(fd, os.fstat(fd).st_size) for fd in (self.log, self.times)]
        try:
            write_all(self.log, b"".join(lines))
            write_all(self.times, "".join(index).encode())
        except OSError:  # the disk is full, or the log was removed with the container
            for fd, end in marks:
                try:
                    os.ftruncate(fd, end)
                except OSError:
                    pass
            self.size = marks[0][1]
            self.open_line = dict(self.open_before)
            return
        self.open_before = dict(self.open_line)


def _write_all(fd: int, data: bytes) -> None:
    try:
        write_all(fd, data)
    except OSError:  # the disk is full, or the log was removed with the container: dropped
        pass


def indexed(bundle: str) -> bool:
    """Whether the container's log has its times noted (a container run before mrun noted them has not)."""
    return os.path.exists(os.path.join(bundle, TIMES)) or bool(rotated(bundle, TIMES))


def _header(inode: int) -> bytes:
    return b"%s %020d\n" % (HEADER, inode)  # fixed width: rewritten in place after a copy (repair)


def _noted_inode(times: Any) -> int | None:
    head = times.readline().split()
    times.seek(0)
    return int(head[1]) if len(head) == 2 and head[0] == HEADER and head[1].isdigit() else None


def _inodes(bundle: str) -> dict[int, str]:
    """The container's logs by inode."""
    found = {}
    for path in _current_and_rotated(bundle, LOG):
        try:
            found[os.stat(path).st_ino] = path
        except OSError:
            continue
    return found


def _copied(bundle: str, logs: dict[int, str]) -> bool:
    """Whether the container's files were copied (a backup restored, the image root moved):
    indexes name logs, and not one of them a log here. A rotation cut short leaves at most the
    oldest index without its log, never all of them."""
    noted = []
    for times in _current_and_rotated(bundle, TIMES):
        try:
            with open(times, "rb") as f:
                noted.append(_noted_inode(f))
        except OSError:
            continue
    named = [n for n in noted if n is not None]
    return bool(named) and not any(n in logs for n in named)


def indexed_log(bundle: str, times: Any, named: str) -> str | None:
    """The log the open index ``times`` indexes: the one of the container's logs with the inode
    its first line names; ``named`` for an index without that line (noted by an older mrun) or
    in a copy of the container's files (where every inode is new); None when that log is gone."""
    inode = _noted_inode(times)
    if inode is None:
        return named
    logs = _inodes(bundle)
    if inode in logs:
        return logs[inode]
    return named if os.path.exists(named) and _copied(bundle, logs) else None


def repair(bundle: str) -> None:
    """Before a supervisor writes: each index goes where its log is (``log.times.2`` beside
    ``log.2``), an index whose log is gone is removed. Needed only after a rotation was
    interrupted (its renames are two steps); a reader pairs them without it. In a copy of the
    container's files, each index is first made to name the inode of the log beside it."""
    if _copied(bundle, _inodes(bundle)):
        for times in _current_and_rotated(bundle, TIMES):
            try:
                header = _header(os.stat(_partner(times, TIMES, LOG)).st_ino)
                with os.fdopen(os.open(times, os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW), "r+b") as f:
                    first = f.readline()
                    f.seek(0)
                    if len(first) == len(header) and first.startswith(HEADER + b" "):
                        f.write(header)  # in place: the same width
            except OSError:
                continue
    for times in _current_and_rotated(bundle, TIMES):
        try:
            with open(times, "rb") as f:
                log = indexed_log(bundle, f, _partner(times, TIMES, LOG))
            if log is None:
                os.unlink(times)
            elif log != _partner(times, TIMES, LOG):
                os.replace(times, _partner(log, LOG, TIMES))
        except OSError:  # gone meanwhile, or the container with it
            continue


def _partner(path: str, name: str, other: str) -> str:
    """``log.times.2`` -> ``log.2`` (and back): the name of the pair's other file, in its directory."""
    directory, base = os.path.split(path)
    return os.path.join(directory, other + base[len(name):])


def _current_and_rotated(bundle: str, name: str) -> list[str]:
    return [os.path.join(bundle, name), *rotated(bundle, name)]


def rotated(bundle: str, name: str = LOG) -> list[str]:
    """The older files of ``name`` (``log.2``, ``log.1``), oldest first."""
    found = []
    for entry in os.listdir(bundle):
        number = entry[len(name) + 1:] if entry.startswith(name + ".") else ""
        if number.isdigit():
            found.append((int(number), os.path.join(bundle, entry)))
    return [path for _n, path in sorted(found, reverse=True)]


class TimedReader:
    """The log's pieces with their times, oldest first: the rotated files once, then the current
    one, followed (``read`` again gives what came since) across its rotations."""

    def __init__(self, bundle: str) -> None:
        self.bundle = bundle
        self.pending = rotated(bundle, TIMES)
        self.times: Any = None  # the current pair, open: its index read up to self.times.tell()
        self.log: Any = None

    def read(self, since_ns: int = 0, until_ns: int = 0, whole: bool = False) -> Iterator[Piece]:
        """What was not read before, piece by piece (the index is read a chunk at a time: a
        log of any size is read in little memory). ``whole``: the caller needs no line's time or
        start, only each stream's bytes in order: a stream's consecutive pieces come as one."""
        while self.pending:  # the rotated pairs, whole
            times = self.pending.pop(0)
            try:
                with open(times, "rb") as t:
                    log = indexed_log(self.bundle, t, _partner(times, TIMES, LOG))
                    if log is not None:
                        with open(log, "rb") as f:
                            yield from _pieces(t, f, since_ns, until_ns, whole)
            except OSError:  # dropped by a rotation meanwhile
                continue
        if self.times is None:
            self._open_current()
        if self.times is not None:
            yield from _pieces(self.times, self.log, since_ns, until_ns, whole)
            if self._rotated_away():  # what was written to the old pair before it went is read above
                yield from _pieces(self.times, self.log, since_ns, until_ns, whole)
                self.close()
                self._open_current()
                if self.times is not None:
                    yield from _pieces(self.times, self.log, since_ns, until_ns, whole)

    def start_at(self, offset: int) -> bool:
        """Read from ``offset`` of the current log on, the rotated ones left out (``logs --tail``
        of a large log: its index found by bisection, not read through). -> False where no
        current log is open."""
        self.pending = []
        if self.times is None:
            self._open_current()
        if self.times is None:
            return False
        _seek_entry(self.times, offset)
        return True

    def _open_current(self) -> None:
        """The current index and the log it indexes (``log.1`` after a rotation interrupted
        between its renames)."""
        try:
            self.times = open(os.path.join(self.bundle, TIMES), "rb")  # noqa: SIM115 - closed by close()
            log = indexed_log(self.bundle, self.times, os.path.join(self.bundle, LOG))
            if log is None:
                raise FileNotFoundError(os.path.join(self.bundle, LOG))
            self.log = open(log, "rb")  # noqa: SIM115
        except OSError:
            self.close()

    def _rotated_away(self) -> bool:
        return replaced(os.path.join(self.bundle, TIMES), self.times)

    def close(self) -> None:
        for f in (self.times, self.log):
            if f is not None:
                f.close()
        self.times = self.log = None


def replaced(path: str, f: Any) -> bool:
    """Whether ``path`` names another file than the open ``f`` now (the log rotated under a reader)."""
    try:
        return os.stat(path).st_ino != os.fstat(f.fileno()).st_ino
    except OSError:
        return False


def _entry(line: bytes) -> tuple[int, int, int, bool, int] | None:
    """An index line: (offset, ns, stream, whether it starts a line, length); None for the header
    or anything else that is not an entry."""
    fields = line.split()
    if len(fields) != 5 or not all(f.isdigit() for f in (fields[0], fields[1], fields[4])):
        return None
    return int(fields[0]), int(fields[1]), 2 if fields[2] == b"2" else 1, fields[3] == b"s", int(fields[4])


def _entry_offset(line: bytes) -> int | None:
    entry = _entry(line) if line.endswith(b"\n") else None  # a line being written is none yet
    return entry[0] if entry is not None else None


def _seek_entry(times: Any, offset: int) -> None:
    """Put ``times`` at its first entry for ``offset`` of its log or later (entries are in the
    log's order): bisection down to a few pages, then line by line."""
    lo, hi = 0, os.fstat(times.fileno()).st_size  # lo: the start of a line before the one sought
    while hi - lo > 8192:
        mid = (lo + hi) // 2
        times.seek(mid)
        times.readline()  # on to the next line's start
        start = times.tell()
        at = _entry_offset(times.readline())
        if at is not None and at < offset:
            lo = start
        else:
            hi = mid
    times.seek(lo)
    while True:
        start = times.tell()
        line = times.readline()
        at = _entry_offset(line)
        if not line.endswith(b"\n") or (at is not None and at >= offset):
            times.seek(start)
            return


def _pieces(times: Any, log: Any, since_ns: int, until_ns: int, whole: bool = False) -> Iterator[Piece]:
    """The entries of ``times`` from where it was read up to (whole lines only: one being written
    is read next time), their pieces read from ``log``; ``whole``: runs of one stream as one piece."""
    while True:
        start = times.tell()
        raw = times.read(CHUNK)
        done = raw.rfind(b"\n") + 1
        times.seek(start + done)
        lines = raw[:done].splitlines()
        span = None
        if whole and not (since_ns or until_ns) and b" 2 " not in raw[:done]:  # no stderr entry (" 2 ": the
            span = _span(lines)  # stream field, nothing else): the chunk's first and last entries say it all
        if span is not None:
            yield _run(log, span)
        else:
            run: list = []  # whole: the run of one stream being gathered: ns, offset, end, stream, starts
            for entry in map(_entry, lines):
                if entry is None:
                    continue
                offset, at, stream, starts, length = entry
                if (since_ns and at < since_ns) or (until_ns and at > until_ns):
                    continue
                if not whole:
                    log.seek(offset)
                    yield at, log.read(length), starts, stream
                elif run and run[3] == stream and run[2] == offset and run[2] - run[1] < CHUNK:
                    run[2] = offset + length
                else:
                    if run:
                        yield _run(log, run)
                    run = [at, offset, offset + length, stream, starts]
            if run:
                yield _run(log, run)
        if len(raw) < CHUNK or not done:
            return


def _span(lines: list[bytes]) -> list | None:
    """The run from the first entry of ``lines`` to the end of the last (ns, offset, end, stream 1,
    starts), when ``lines`` are one stream's, each where the one before ends (what the relay
    writes); None when there are not two entries, or the span is not a plausible run."""
    entries = [e for e in map(_entry, lines[:2] + lines[-1:]) if e is not None]
    if len(entries) < 2:
        return None
    first, last = entries[0], entries[-1]
    end = last[0] + last[4]
    if not 0 <= end - first[0] <= 8 * CHUNK:  # (long lines: read a run at a time, not the chunk's whole span)
        return None
    return [first[1], first[0], end, 1, first[3]]


def _run(log: Any, run: list) -> Piece:
    log.seek(run[1])
    return run[0], log.read(run[2] - run[1]), run[4], run[3]

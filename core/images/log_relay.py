"""A detached container's output, line by line into its log, each line's time and stream noted.

The container's stdout and stderr are pipes its supervisor reads (``images.supervisor``): each
complete line goes to ``log`` as it was written (so `mrun logs` prints what the container
printed), and one line of ``log.times`` says where it begins, when it came and from which
stream: ``<offset> <unix ns> <1|2> <s|c>`` (``c``: the piece goes on with a line its stream
began earlier). That index is what `mrun logs -t/--since/--until` read. What comes is written
at once, as pieces that end at a newline: a prompt without one is in the log as soon as it is
written (then its line's end comes as a ``c`` piece, as docker's partial messages); a line
longer than ``LONGEST`` is noted in pieces of that size (docker's json-file splits at 16 KiB).

Why pipes rather than the file itself as the container's stdout: a time is only known where the
bytes pass. The price, as with docker's shim and podman's conmon: the supervisor must live for
the container's output to go anywhere (a write to a pipe nobody reads fails, EPIPE).
"""

from __future__ import annotations

import os
import time

LOG, TIMES = "log", "log.times"
LONGEST = 16 << 10


class Relay:
    def __init__(self, bundle: str) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC | os.O_NOFOLLOW
        self.log = os.open(os.path.join(bundle, LOG), flags, 0o640)
        self.times = os.open(os.path.join(bundle, TIMES), flags, 0o640)
        self.size = os.fstat(self.log).st_size
        self.streams: dict[int, int] = {}  # our read end -> 1 or 2
        self.writers: dict[int, int] = {}  # 1 or 2 -> the write end the container gets
        self.open_line = {1: False, 2: False}  # the stream's last piece did not end its line
        for stream in (1, 2):
            r, w = os.pipe2(os.O_CLOEXEC)
            os.set_blocking(r, False)
            self.streams[r], self.writers[stream] = stream, w

    def fds(self) -> list[int]:
        """What a supervisor keeps open for the relay (everything else it closes)."""
        return [self.log, self.times, *self.streams, *self.writers.values()]

    def pump(self, fd: int) -> None:
        """Whatever the stream ``fd`` has now (it is non-blocking), written at once."""
        stream = self.streams[fd]
        while True:
            try:
                data = os.read(fd, 1 << 16)
            except BlockingIOError:
                return
            if not data:
                return
            self._take(stream, data, time.time_ns())

    def _take(self, stream: int, data: bytes, now: int) -> None:
        """``data`` as pieces that end at a newline (or after LONGEST bytes, or where the data
        ends), each noted: ``s`` if it starts a line, ``c`` if it goes on with one of its stream's
        the container has not ended yet (it wrote a prompt, or a long line in parts)."""
        lines, index = [], []
        start = 0
        while start < len(data):
            newline = data.find(b"\n", start, start + LONGEST)
            end = newline + 1 if newline >= 0 else min(len(data), start + LONGEST)
            index.append(f"{self.size} {now} {stream} {'c' if self.open_line[stream] else 's'}\n")
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
        """The lines first, then their index entries: a reader that sees an entry finds its line."""
        if lines:
            _write_all(self.log, b"".join(lines))
            _write_all(self.times, "".join(index).encode())


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view):]
        except OSError:  # the disk is full, or the log was removed with the container: dropped
            return


def indexed(bundle: str) -> bool:
    """Whether the container's log has its times noted (a container run before mrun noted them has not)."""
    return os.path.exists(os.path.join(bundle, TIMES))


def read_lines(bundle: str, since_ns: int = 0, until_ns: int = 0,
               start: int = 0) -> tuple[list[tuple[int, bytes, bool]], int]:
    """The log's pieces noted in ``log.times`` from byte ``start`` of that index on, with their
    times and whether each starts a line, those before ``since_ns`` or after ``until_ns`` (0: no
    bound) left out. -> (the pieces, where the index's next entry will begin: a follower's next
    ``start``)."""
    with open(os.path.join(bundle, TIMES), "rb") as f:
        f.seek(start)
        raw = f.read()
    done = raw.rfind(b"\n") + 1  # an entry being written is read next time
    entries = []
    for line in raw[:done].splitlines():
        fields = line.split()
        if len(fields) == 4 and fields[0].isdigit() and fields[1].isdigit():
            entries.append((int(fields[0]), int(fields[1]), fields[3] == b"s"))
    out = []
    with open(os.path.join(bundle, LOG), "rb") as log:
        for i, (offset, at, starts) in enumerate(entries):
            if (since_ns and at < since_ns) or (until_ns and at > until_ns):
                continue
            log.seek(offset)
            end = entries[i + 1][0] if i + 1 < len(entries) else None
            text = log.read(end - offset) if end is not None else log.readline(LONGEST)
            out.append((at, text, starts))
    return out, start + done

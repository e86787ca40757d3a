"""containerd's ``binary://`` log URIs: ``ctr run --log-uri binary:///path?key=value``, and
nerdctl's logging for every container it runs.

The shim starts the named program with the process's stdout and stderr as pipes on its fds 3
and 4, and a pipe on fd 5 that it closes (or writes a byte to) once it is ready; the process
then writes to the pipes' other ends. As containerd's runc shim starts it: its arguments are
the query's keys, each followed by its first value; its environment is CONTAINER_ID and
CONTAINER_NAMESPACE alone; its standard streams are /dev/null. The logger is the shim daemon's
child (its reaper reaps it). It reads to end-of-file once the process and its children have
closed their ends, and it is sent SIGTERM when the process is deleted and SIGKILL
``TERM_TIMEOUT`` seconds later if it is still there (runc's shim waits those seconds inside
the Delete; here a timer does, and the Delete returns at once).
"""

from __future__ import annotations

import fcntl
import os
import select
import signal
import threading
from collections.abc import Callable

TERM_TIMEOUT = 12.0  # containerd's binaryIOProcTermTimeout
READY_WAIT = 10.0  # seconds the logger has to say it is ready (runc's shim waits for ever)
LOGGER_FDS = (3, 4, 5)  # stdout, stderr, ready


def is_binary(uri: str) -> bool:
    return uri.startswith("binary://")


def command(uri: str) -> list[str]:
    """The logger's argv from its URI; ValueError, in words, for one that names no program."""
    from urllib.parse import parse_qsl, unquote, urlsplit  # only here: re and more, on no other path

    parts = urlsplit(uri)
    if parts.netloc or not parts.path.startswith("/"):
        raise ValueError(f"{uri}: a binary:// log URI names a program by its absolute path (binary:///path)")
    argv = [unquote(parts.path)]  # decoded, as Go's URL.Path is
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key not in argv[1::2]:  # the first value of each key, as Go's url.Values hands it out
            argv += [key, value]
    return argv


def _above_logger_fds(fd: int) -> int:
    """``fd`` moved above 3, 4 and 5 (its copy there close-on-exec), so no dup2 of the spawn can
    overwrite a descriptor another dup2 still reads."""
    if fd > max(LOGGER_FDS):
        return fd
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, max(LOGGER_FDS) + 1)
    os.close(fd)
    return moved


class Logger:
    """A started logging binary: ``out`` and ``err`` are the write ends the process gets (the
    caller closes them once the process has its copies); ``pid`` is the logger's. Spawned (a
    posix_spawn: safe in the threaded daemon) under the reaper's lock by the caller, which then
    records the pid as awaited and lets ``wait_ready`` wait outside it."""

    def __init__(self, uri: str, container_id: str, namespace: str) -> None:
        argv = command(uri)
        self.name = argv[0]
        ends = [os.pipe2(os.O_CLOEXEC) for _ in LOGGER_FDS]
        theirs = [_above_logger_fds(fd) for fd in (ends[0][0], ends[1][0], ends[2][1])]
        self.out, self.err, self.ready = ends[0][1], ends[1][1], ends[2][0]
        null = os.devnull
        actions = [
            (os.POSIX_SPAWN_OPEN, 0, null, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, null, os.O_WRONLY, 0),
            (os.POSIX_SPAWN_OPEN, 2, null, os.O_WRONLY, 0),
            *((os.POSIX_SPAWN_DUP2, fd, target) for fd, target in zip(theirs, LOGGER_FDS, strict=True)),
        ]
        env = {"CONTAINER_ID": container_id, "CONTAINER_NAMESPACE": namespace}
        try:
            self.pid = os.posix_spawn(argv[0], argv, env, file_actions=actions)
        except OSError as e:
            self.close()
            raise OSError(e.errno, f"the logging binary {argv[0]}: {e.strerror}") from None
        finally:
            for fd in theirs:
                os.close(fd)
        self.signal: Callable[[int], None] = lambda sig: os.kill(self.pid, sig)  # the shim's, once it awaits it

    def wait_ready(self) -> None:
        """Until the logger closes (or writes to) its fd 5; OSError, in words, if it does not in
        READY_WAIT seconds: it is killed, and the pipes closed."""
        try:
            poller = select.poll()  # not select: a shim with many tasks has descriptors past 1024
            poller.register(self.ready, select.POLLIN)
            if not poller.poll(READY_WAIT * 1000):
                self.stop(kill_now=True)
                raise OSError(f"the logging binary {self.name} was not ready within {READY_WAIT:g} s")
        except BaseException:
            self.close()
            raise
        finally:
            if self.ready >= 0:
                os.close(self.ready)
                self.ready = -1

    def close(self) -> None:
        """Our ends of its pipes: the process has its copies of the write ends (or never will)."""
        for name in ("out", "err", "ready"):
            fd = getattr(self, name)
            if fd >= 0:
                os.close(fd)
                setattr(self, name, -1)

    def stop(self, kill_now: bool = False) -> None:
        """SIGTERM, then SIGKILL after TERM_TIMEOUT, each only while the logger is unreaped
        (``signal``: its pid is not reused before the reaper has it)."""
        try:
            self.signal(signal.SIGKILL if kill_now else signal.SIGTERM)
        except ProcessLookupError:
            return
        if not kill_now:
            timer = threading.Timer(TERM_TIMEOUT, _quietly, (self.signal, signal.SIGKILL))
            timer.daemon = True
            timer.start()


def _quietly(send: Callable[[int], None], sig: int) -> None:
    try:
        send(sig)
    except ProcessLookupError:
        pass

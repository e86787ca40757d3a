"""Host side of starting a process in a sandbox: fork, join or create namespaces, hand back a pid.

Three processes are involved, because only a child forked *after* unshare(CLONE_NEWPID) lives
in the new PID namespace:

    mrun (host) --fork--> intermediate: joins/unshares namespaces --fork--> sandboxed process
                                          (reports the pid, exits)

The host puts the intermediate into the container's cgroup before it unshares the cgroup
namespace, and writes uid/gid maps when it creates a user namespace. Everything travels as
JSON lines over a pair of pipes; the sandboxed process reports errors the same way, so a
failure inside the container is one clear line on the host.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from mrun import jsonio
from mrun.errors import MrunError
from mrun.kernel import syscalls as sc

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NoReturn


class Channel:
    """One end of a bidirectional JSON-lines link made of two pipes."""

    def __init__(self, rfd: int, wfd: int) -> None:
        self.rfd, self.wfd = rfd, wfd
        self.buf = b""
        self.held: list[dict[str, Any]] = []  # messages that arrived before the one awaited
        self.seen: set[str] = set()  # keys the sandboxed process has had from the host (await_key)

    @staticmethod
    def pair() -> tuple[Channel, Channel]:
        a_r, b_w = os.pipe()
        b_r, a_w = os.pipe()
        return Channel(a_r, a_w), Channel(b_r, b_w)

    def send(self, **msg: Any) -> None:
        os.write(self.wfd, jsonio.dumps(msg).encode() + b"\n")

    def recv(self) -> dict[str, Any]:
        if self.held:
            return self.held.pop(0)
        while b"\n" not in self.buf:
            chunk = os.read(self.rfd, 65536)
            if not chunk:
                return {"eof": True}
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return jsonio.loads(line)

    def close(self) -> None:
        for fd in (self.rfd, self.wfd):
            try:
                os.close(fd)
            except OSError:
                pass


class Launch:
    """What the intermediate process does: namespaces to join (by path) or create ('')."""

    def __init__(
        self,
        namespaces: dict[str, str],
        child: Callable[[Channel], NoReturn],
        add_to_cgroup: Callable[[int], None] | None = None,
        uid_mappings: list[dict[str, int]] | None = None,
        gid_mappings: list[dict[str, int]] | None = None,
        close_in_child: tuple[int, ...] = (),
        thread_files: Callable[[], list[str]] | None = None,
    ) -> None:
        self.namespaces, self.child, self.add_to_cgroup = namespaces, child, add_to_cgroup
        # The cgroup driver's files through which a single-threaded process moves itself in
        # without the kernel's global lock (Cgroup.thread_files); else the host moves it.
        self.thread_files = thread_files
        self.uid_mappings, self.gid_mappings = uid_mappings or [], gid_mappings or []
        # Descriptors the host keeps but the container must not: e.g. the container's flock,
        # which a long-lived init would otherwise hold (flock follows the open file).
        self.close_in_child = close_in_child

    @property
    def joins_itself(self) -> bool:
        """The sandboxed process tries to move itself into its cgroup, and says whether it did."""
        return self.add_to_cgroup is not None and self.thread_files is not None


def _write_maps(pid: int, launch: Launch) -> None:
    for name, field_name, maps in (
        ("uid_map", "uidMappings", launch.uid_mappings),
        ("gid_map", "gidMappings", launch.gid_mappings),
    ):
        if not maps:
            continue
        text = "".join(f"{m['containerID']} {m['hostID']} {m['size']}\n" for m in maps)
        try:
            with open(f"/proc/{pid}/{name}", "w") as f:
                f.write(text)
        except OSError as e:
            raise MrunError(f"linux.{field_name}: cannot write {name}: {e.strerror}")


def fail_in_child(ch: Channel, err: BaseException) -> NoReturn:
    try:
        ch.send(error=str(err) or err.__class__.__name__)
    finally:
        os._exit(1)


def await_key(ch: Channel, key: str, seen: set[str]) -> None:
    """Until the host has sent ``key`` (keys it sent earlier than awaited are remembered)."""
    while key not in seen:
        msg = ch.recv()
        if "eof" in msg:
            os._exit(1)
        seen.update(msg)


def _open_thread_files(launch: Launch) -> list[int] | None:
    """Opened here, as host root in the host's namespaces: the process that writes "0" to them
    is in the container's (a joined mount namespace, a user namespace), and the kernel checks the
    credentials they were opened with. None: the host moves the process instead."""
    if not launch.joins_itself:
        return None
    fds: list[int] = []
    try:
        for path in launch.thread_files():
            fds.append(os.open(path, os.O_WRONLY | os.O_CLOEXEC))
    except OSError:
        for fd in fds:
            os.close(fd)
        return None
    return fds or None


def _join_threadwise(fds: list[int]) -> bool:
    """Move ourselves (one thread: a fork child) into the container's cgroup. A write of "0" to
    a v1 ``tasks`` file moves the writing thread without cgroup_threadgroup_rwsem, whose first
    writer waits for an RCU grace period (5-20 ms here, runc's create pays it); cgroup.procs takes
    that lock. -> whether every hierarchy took us (else the host moves us, as before)."""
    joined = bool(fds) and len(os.listdir("/proc/self/task")) == 1
    for fd in fds:
        if joined:
            try:
                os.write(fd, b"0")
            except OSError:
                joined = False
        os.close(fd)
    return joined


def _sandboxed(launch: Launch, ch: Channel, join_fds: list[int] | None, cgroupns: bool) -> NoReturn:
    """The container's process, forked into its namespaces: first into its cgroup, then (a new
    cgroup namespace is rooted at the cgroup its creator is in) into a cgroup namespace of its
    own, then whatever ``launch.child`` does."""
    try:
        if launch.joins_itself:
            ch.send(joined=_join_threadwise(join_fds or []))
        if cgroupns:
            if launch.add_to_cgroup is not None:
                await_key(ch, "cgrouped", ch.seen)
            sc.unshare(sc.NS_FLAGS["cgroup"])
        launch.child(ch)
    except BaseException as e:  # noqa: BLE001 - reported to the host, then exit
        fail_in_child(ch, e)
    os._exit(0)


def _intermediate(launch: Launch, ch: Channel) -> NoReturn:
    try:
        seen: set[str] = set()
        await_key(ch, "go", seen)
        join_fds = _open_thread_files(launch)
        # Open every namespace first: once we joined a mount namespace, /proc is no longer the host's.
        fds: dict[str, int] = {}
        for kind, path in launch.namespaces.items():
            if path:
                try:
                    fds[kind] = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                except OSError as e:
                    raise MrunError(f"linux.namespaces: cannot open {kind} namespace {path}: {e.strerror}")
        joined_user = fds.pop("user", None)  # joined last: as host root we may still join the others
        for kind, fd in fds.items():
            try:
                sc.setns(fd, sc.NS_FLAGS[kind])
            except OSError as e:
                raise MrunError(
                    f"linux.namespaces: cannot join {kind} namespace {launch.namespaces[kind]}: {e.strerror}"
                )
            os.close(fd)
        if joined_user is not None:
            sc.setns(joined_user, sc.CLONE_NEWUSER)
            os.close(joined_user)
        elif launch.namespaces.get("user") == "":
            sc.unshare(sc.CLONE_NEWUSER)
            ch.send(userns=True)
            await_key(ch, "mapped", seen)
        if "user" in launch.namespaces:
            os.setresgid(0, 0, 0)
            os.setresuid(0, 0, 0)
        flags = 0
        for kind, path in launch.namespaces.items():
            if not path and kind not in ("user", "cgroup"):  # a new cgroup one: in _sandboxed
                flags |= sc.NS_FLAGS[kind]
        if flags:
            sc.unshare(flags)
        pid = os.fork()
        if pid == 0:
            _sandboxed(launch, ch, join_fds, launch.namespaces.get("cgroup") == "")
        for fd in join_fds or ():
            os.close(fd)
        ch.send(pid=pid)
    except BaseException as e:  # noqa: BLE001
        fail_in_child(ch, e)
    os._exit(0)


def _joined(host: Channel, launch: Launch) -> bool:
    """Whether the sandboxed process moved itself into its cgroup: its first word, if it was
    given the files to. Other messages wait in ``held``; one that says it failed ends the wait."""
    if not launch.joins_itself:
        return False
    held = []
    try:
        while True:
            msg = host.recv()
            if "joined" in msg:
                return bool(msg["joined"])
            held.append(msg)
            if {"error", "eof"} & msg.keys():
                return True  # nothing left to move; the error is reported as before
    finally:
        host.held = held + host.held


def spawn(launch: Launch) -> tuple[int, Channel]:
    """Start the sandboxed process; return its host pid and the host end of the channel."""
    from mrun.cgroups import primed

    primed()
    host, child = Channel.pair()
    pid1 = os.fork()
    if pid1 == 0:
        host.close()
        for fd in launch.close_in_child:
            os.close(fd)
        _intermediate(launch, child)
    child.close()
    try:
        host.send(go=True)
        msg = host.recv()
        if msg.get("userns"):
            _write_maps(pid1, launch)
            host.send(mapped=True)
            msg = host.recv()
        # The sandboxed process may speak before the intermediate reports its pid.
        early = []
        while not ({"pid", "error", "eof"} & msg.keys()):
            early.append(msg)
            msg = host.recv()
        host.held = early + host.held
        if "error" in msg:
            raise MrunError(msg["error"])
        if "pid" not in msg:
            raise MrunError("the sandbox set-up process died before starting the container")
        # It moves itself into its cgroup where the driver lets it (_join_threadwise); else we
        # move it while it builds its root, for the first move waits for an RCU grace period
        # (5-20 ms here). It waits for "cgrouped" before it runs hooks or makes its payload, so
        # nothing it starts or allocates is outside.
        if launch.add_to_cgroup and not _joined(host, launch):
            launch.add_to_cgroup(msg["pid"])
        host.send(cgrouped=True)
        return msg["pid"], host
    except BaseException:
        host.close()
        raise
    finally:
        os.waitpid(pid1, 0)

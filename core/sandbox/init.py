"""Inside the sandbox: finish the container's world, wait for ``start``, run the payload.

This code runs in the forked child after the namespaces exist. Every module it needs was
imported by the host before the fork: after pivot_root the host's Python stdlib is gone.
"""

from __future__ import annotations

import _signal  # signal's C half: signal's enums would import enum, ~1 ms of every create
import errno
import fcntl
import os
import select

from mrun.errors import MrunError, in_bytes
from mrun.hooks import run_hooks
from mrun.kernel import inroot
from mrun.kernel import syscalls as sc
from mrun.kernel.proc import status_field
from mrun.plugins.api import Container
from mrun.sandbox import devices, host_mounts, rootfs
from mrun.sandbox.launch import Channel, await_key, set_oom_score_adj
from mrun.sandbox.process import ProcessPlan
from mrun.spec import Spec
from mrun.status import Status

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NoReturn


class Sandbox:
    """Everything the sandboxed side needs, prepared on the host. ``payload_hook`` is the chosen
    backend's mrun_payload caller; ``console`` a connected --console-socket."""

    def __init__(
        self,
        spec: Spec,
        container: Container,
        plan: ProcessPlan,
        payload_hook: Any,
        namespaces: dict[str, str],
        cgroup_paths: dict[str, str],
        exec_fifo: int = -1,
        started_fd: int = -1,
        starter_pidfd: int = -1,
        console: Any = None,
        no_pivot: bool = False,
        hook_state: dict[str, Any] | None = None,
        new_keyring: bool = True,
        detached: dict[int, int] | None = None,
    ) -> None:
        self.spec, self.container, self.plan, self.payload_hook = spec, container, plan, payload_hook
        self.namespaces, self.cgroup_paths, self.exec_fifo = namespaces, cgroup_paths, exec_fifo
        self.started_fd, self.starter_pidfd = started_fd, starter_pidfd
        self.console, self.no_pivot, self.hook_state = console, no_pivot, hook_state
        self.new_keyring = new_keyring
        # {mount index: the host's detached clone of its bind source} (mrun.sandbox.host_mounts)
        self.detached = detached or {}

    def init(self, ch: Channel) -> NoReturn:
        """The container's init (``Launch.child``); a bound method, so it pickles with its
        sandbox (mrun.sandbox.pristine)."""
        container_init(self, ch)


def _join_session_keyring(sb: Sandbox) -> None:
    """Keyrings are not namespaced: a process in its caller's session keyring possesses the
    caller's keys. As runc: the container's own, named ``_ses.<id>`` (an exec joins it by that
    name), searchable by its user (with a user namespace, by "other": the mapped ids differ)."""
    if not sb.new_keyring:
        return
    try:
        ring = sc.join_session_keyring(f"_ses.{sb.container.id}")
        sc.add_key_permissions(ring, 0x8 if "user" in sb.namespaces else 0x80000)
    except OSError as e:
        if e.errno == errno.ENOSYS:  # a kernel without keyrings: nothing to share either
            return
        raise MrunError(f"cannot join a session keyring of its own: {e.strerror} (--no-new-keyring keeps the caller's)")


def _host_pid() -> int:
    """Our pid as the host sees it (first NSpid field), read while /proc is still the host's."""
    nspid = status_field("NSpid")
    return int(nspid.split()[0]) if nspid else os.getpid()


_STOP_SIGNALS = (_signal.SIGTERM, _signal.SIGINT, _signal.SIGHUP, _signal.SIGQUIT, _signal.SIGUSR1, _signal.SIGUSR2)
_caught: list[int] = []  # signals that came between `start` and the payload: theirs, not ours


def _exit_on(signum: int, _frame: Any) -> None:
    os._exit(128 + signum)


def _keep_for_payload(signum: int, _frame: Any) -> None:
    _caught.append(signum)


class Entered:
    """Called once the payload runs: hands `start` the signals caught meanwhile and lets it
    return. An exec payload only writes them (execve closes the descriptor: that is the moment);
    a payload that runs in this process (wasm) calls it, with its own handlers in place."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def report_signals(self) -> None:
        if self.fd >= 0 and _caught:
            os.write(self.fd, bytes(_caught))
            _caught.clear()

    def __call__(self) -> None:
        self.report_signals()
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _wait_for_start(fifo_fd: int, starter_pidfd: int = -1) -> None:
    """Until `start` writes the exec fifo. ``starter_pidfd``: the process that will start us
    (`run`'s), whose end before it did means no start will come: we end too, rather than hold
    our caller's stdout (its `| cat`) open until someone removes us. `start` writes before it
    can end, so a start that came is always seen first."""
    # We are PID 1 here: signals without a handler are ignored, so a created container would
    # shrug off `kill TERM`. Handle them until exec, which resets caught signals.
    for sig in _STOP_SIGNALS:
        _signal.signal(sig, _exit_on)
    if starter_pidfd >= 0:
        poller = select.poll()
        poller.register(fifo_fd, select.POLLIN)
        poller.register(starter_pidfd, select.POLLIN)
    while True:
        try:
            if starter_pidfd >= 0:
                ready = dict(poller.poll())
                if fifo_fd not in ready:
                    os._exit(128 + _signal.SIGKILL)  # ended with the run that made us
            if os.read(fifo_fd, 1):
                break
        except InterruptedError:
            continue
    # Started: from now on a signal is the program's, delivered to it once it runs.
    for sig in _STOP_SIGNALS:
        _signal.signal(sig, _keep_for_payload)
    os.close(fifo_fd)
    if starter_pidfd >= 0:
        os.close(starter_pidfd)


def _build_rootfs(sb: Sandbox, dev_bound: bool) -> None:
    spec, linux = sb.spec, sb.spec.linux
    root = spec.rootfs
    rootfs.prepare_root(root, linux.get("rootfsPropagation", ""))
    new_cgroupns = sb.namespaces.get("cgroup") == ""
    root_fd = inroot.open_root(root)  # after the self-bind: mounts land on the new root mount
    try:
        for i, m in enumerate(spec.raw.get("mounts") or []):
            if i not in sb.detached and host_mounts.wanted(m, linux, i):
                raise MrunError(f"mounts[{i}]: the host did not make its source ready")  # never a plain bind instead
            rootfs.mount_one(root_fd, m, i, sb.cgroup_paths, new_cgroupns, "user" in sb.namespaces,
                             sb.detached.get(i))
    finally:
        os.close(root_fd)
        for fd in sb.detached.values():
            os.close(fd)
    devices.create(root, linux.get("devices") or [], "user" in sb.namespaces, dev_bound)


def _dev_is_bound(spec: Spec) -> bool:
    """Is /dev a bind of another directory (the host's, a volume)? Then mrun makes no devices in
    it, and, as runc, leaves the null device the caller gave as a stream alone."""
    for m in spec.raw.get("mounts") or []:
        options = m.get("options") or []
        if inroot.clean(m["destination"]) == "/dev" and (m.get("type") == "bind" or "bind" in options
                                                         or "rbind" in options):
            return True
    return False


def _enter_rootfs(sb: Sandbox) -> None:
    try:
        rootfs.pivot(sb.spec.rootfs, sb.no_pivot)
    except OSError as e:
        how = "chroot (--no-pivot)" if sb.no_pivot else "pivot_root"
        raise MrunError(f"root.path: cannot {how} into {sb.spec.rootfs}: {e.strerror}")
    rootfs.apply_root_propagation(sb.spec.linux.get("rootfsPropagation", ""))


def container_init(sb: Sandbox, ch: Channel) -> NoReturn:
    spec, linux = sb.spec, sb.spec.linux
    # Nothing blocked from here on: a mask survives fork and exec, and a cold mrun's caller's
    # (one that blocked SIGTERM) would have held `kill TERM` of the created container, and its
    # hooks' signals. (What is ignored is reset just before the payload: ProcessPlan.finish.)
    _signal.pthread_sigmask(_signal.SIG_SETMASK, [])
    os.setsid()
    _join_session_keyring(sb)
    host_pid = _host_pid()
    # Without a mount namespace of its own (new or joined) the container shares the caller's,
    # as the runtime-spec says and runc does: then mrun shapes no filesystem at all.
    own_mounts = "mount" in sb.namespaces
    dev_bound = own_mounts and _dev_is_bound(spec)
    if own_mounts:
        _build_rootfs(sb, dev_bound)
    if spec.raw.get("hostname") or spec.raw.get("domainname"):
        if "uts" not in sb.namespaces:  # new or joined by path, as runc allows
            raise MrunError("hostname: setting it needs a uts namespace in linux.namespaces")
        for field, setter in (("hostname", sc.sethostname), ("domainname", sc.setdomainname)):
            if spec.raw.get(field):
                try:
                    setter(spec.raw[field])
                except OSError as e:
                    raise MrunError(f"{field}: cannot set {spec.raw[field]!r}: {e.strerror}")
    if sb.namespaces.get("network") == "":  # one of its own: its loopback up, as runc's loopback network
        try:
            sc.loopback_up()
        except OSError as e:
            raise MrunError(f"linux.namespaces: network: bringing lo up: {e.strerror}")
    await_key(ch, "cgrouped", ch.seen)  # we are in our cgroup (launch.spawn)
    _oom_score_adj(sb)
    hooks = spec.hooks
    if hooks.get("prestart") or hooks.get("createRuntime"):
        ch.send(hooks=True)
        msg = ch.recv()
        if "go" not in msg:
            os._exit(1)
    state = dict(sb.hook_state or {}, pid=host_pid)
    if hooks.get("createContainer"):
        run_hooks("createContainer", hooks["createContainer"], dict(state, status=str(Status.CREATED)))
    if own_mounts:
        _enter_rootfs(sb)
        if not dev_bound:
            rootfs.reopen_null_streams()
    rootfs.write_sysctls(linux.get("sysctl") or {})
    if own_mounts:
        rootfs.readonly_paths(linux.get("readonlyPaths") or [])  # first, as runc: a mask is not bound twice
        rootfs.mask_paths(linux.get("maskedPaths") or [])
        if (spec.raw.get("root") or {}).get("readonly"):
            rootfs.remount_readonly("/")
    payload = _enter_process(sb, keep=(ch.rfd, ch.wfd), init=True)
    sb.plan.own_root = own_mounts
    # before ready: a refusal fails the create
    sb.plan.apply(execs=not hasattr(payload, "entered"), listener=lambda fd: _hand_listener(ch, fd))
    ch.send(ready=True)
    ch.close()
    _wait_for_start(sb.exec_fifo, sb.starter_pidfd)
    _run_payload(sb, payload, hooks.get("startContainer"), dict(state, status=str(Status.RUNNING)))


def _hand_listener(ch: Channel, fd: int) -> None:
    """seccomp's notification listener, just made (ProcessPlan.apply): its number to the host,
    which takes a copy (pidfd_getfd) for its agent; ours is closed once it has, so the agent's
    is the only one (when the agent goes, its notified calls fail with ENOSYS, as under runc)."""
    ch.send(seccomp_listener=fd)
    await_key(ch, "listener_taken", ch.seen)
    os.close(fd)


def _run_payload(sb: Sandbox, payload: Any, start_hooks: Any = None, state: Any = None) -> NoReturn:
    """After `start`: nobody waits on the channel any more, so failures go to the container's stderr."""
    entered = Entered(sb.started_fd)
    try:
        if start_hooks:
            run_hooks("startContainer", start_hooks, state)
        sb.plan.finish()
        if hasattr(payload, "entered"):
            payload.entered = entered  # it says when it runs (wasm: inside the module)
        else:
            entered.report_signals()  # execve closes the descriptor: `start` returns then
        code = payload.run()
    except BaseException as e:  # noqa: BLE001 - the process ends here either way
        os.write(2, in_bytes(f"mrun: container {sb.container.id}: {e}\n"))
        code = 1
    os._exit(code)


def _close_cloexec_fds(keep: tuple[int, ...]) -> None:
    """Close now what execve would close: a payload that never execs (wasm) must not keep the
    caller's descriptors (`mrun run -d WASM | cat` would never end). Done before the payload is
    made, so what the payload opens for itself stays."""
    try:
        fds = [int(x) for x in os.listdir("/proc/self/fd")]
    except OSError:
        fds = list(range(3, 1024))
    for fd in fds:
        if fd < 3 or fd in keep:
            continue
        try:
            if not fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC:
                continue  # inheritable: --preserve-fds, kept as execve would
            if os.readlink(f"/proc/self/fd/{fd}").startswith(("/memfd:", "anon_inode:")):
                continue  # an engine's own (wasmtime's memory images, its event loop)
            os.close(fd)
        except OSError:
            pass


def _enter_process(sb: Sandbox, keep: tuple[int, ...] = (), init: bool = False) -> Any:
    """Terminal, working directory and payload: the parts shared by init and exec. ``keep``:
    descriptors the sandbox still needs (its channel to the host); ``init``: the container's
    own process, whose terminal is also its /dev/console (runc's rule)."""
    plan = sb.plan
    if sb.console is not None:
        from mrun.sandbox.console import make_controlling_pty

        own_root = sb.namespaces.get("mount") == ""  # a mount namespace of its own, not one joined
        make_controlling_pty(sb.console, plan.process.get("consoleSize"), console=init and own_root)
    _close_cloexec_fds(keep=(sb.exec_fifo, sb.started_fd, sb.starter_pidfd, *keep))  # none left to be a way out (below)
    try:
        if "mount" in sb.namespaces:
            _chdir_inside_root(plan.cwd, make=init)
        else:  # the caller's filesystem, as runc: nothing of it is ours to create
            os.chdir(plan.cwd)
    except FileNotFoundError:
        raise MrunError(f"process.cwd: {plan.cwd}: no such file or directory")  # the kernel's words: podman maps them
    except OSError as e:
        raise MrunError(f"process.cwd: {plan.cwd}: {e.strerror}")
    payload = sb.payload_hook(container=sb.container, process=plan.process)
    if payload is None:
        raise MrunError(f"backend returned no payload for {plan.args[0]!r}")
    return payload


def _chdir_inside_root(cwd: str, make: bool) -> None:
    """process.cwd resolved inside the container's root; ``make``: made if missing (the init's,
    as runc makes it; an exec'd process's is refused, nothing written). Not chdir(cwd): the
    kernel follows /proc/self/fd/N there, and a descriptor of ours on a host directory would
    have been the process's working directory, outside its root (runc's CVE-2024-21626, an
    image's WorkingDir the way in). Resolved inside, such a link is only text."""
    where = inroot.open_in("/", cwd, create="dir" if make else "")
    try:
        os.fchdir(where)
    finally:
        os.close(where)


def _oom_score_adj(sb: Sandbox) -> None:
    """The container's process.oomScoreAdj, for its init and every process exec'd into it (runc's
    rule: an exec's own value is not read). With a user namespace it was set before that was
    entered (launch._intermediate): inside, /proc/self/oom_score_adj is not its root's to write."""
    value = sb.spec.process.get("oomScoreAdj")
    if value is not None and "user" not in sb.namespaces:
        set_oom_score_adj(value)


def exec_child(sb: Sandbox, ch: Channel) -> NoReturn:
    """An ``exec``'d process: the namespaces are the container's, and so is the cgroup once the
    host has moved us (launch.spawn) before we start anything."""
    await_key(ch, "cgrouped", ch.seen)
    _oom_score_adj(sb)
    _join_session_keyring(sb)
    if sb.console is not None:
        os.setsid()
    payload = _enter_process(sb, keep=(ch.rfd, ch.wfd))
    # an in-process payload (wasm) execs nothing
    sb.plan.apply(execs=not hasattr(payload, "entered"), listener=lambda fd: _hand_listener(ch, fd))
    ch.send(ready=True)
    ch.close()
    _run_payload(sb, payload)

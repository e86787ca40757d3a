"""The process that holds a pod's namespaces when the shim is the pod's sandbox (no pause image).

Kubernetes' containers join their pod's IPC and UTS namespaces (and, with
``shareProcessNamespace``, its PID namespace) through ``/proc/<sandbox pid>/ns/*``. With
``sandboxer = 'shim'`` that pid is whatever the shim's StartSandbox answers, so the shim forks a
holder into new namespaces instead of running a pause container from an image: no image to pull,
unpack or mount, no OCI create. containerd makes and keeps the network namespace itself.

The holder is forked by the shim's fork helper (the daemon has threads), twice: the first child
joins containerd's network namespace and unshares the rest, the second is the one inside a new
PID namespace (its PID 1). Containers join ``/proc/<holder>/ns/net``, so a pod never gets the
node's network through the holder unless it asked for the host's network. It reparents to the shim
(a child subreaper), reaps what is orphaned into its PID namespace, and exits 0 on SIGTERM/SIGINT.
Its root is an empty read-only tmpfs in a mount namespace of its own (``_empty_root``), and it
holds no capability (``_powerless``).
A user-namespaced pod (Kubernetes' ``hostUsers: false``) has its user namespace made first, with
the pod's mappings, and the holder joins it before it makes the rest, which that namespace owns.
"""

from __future__ import annotations

import os
import select
import signal

from mrun.kernel import syscalls as sc
from mrun.kernel.proc import reaped


def hold(pod: dict, keeper: int) -> int:
    """Fork the holder; returns its pid once it is in its namespaces, hostname set.

    ``pod``: ``hostname``; ``netns``, the network namespace containerd made for the pod (joined),
    else ``new_net`` for one of its own; and ``new_uts``/``new_ipc``/``new_pid`` (a host-network
    pod keeps the node's UTS namespace, ``hostIPC`` the node's IPC one; only a pod-wide PID
    namespace is new); ``userns``: the pod's user namespace mappings ({"uids", "gids"}), or none
    for the node's; ``sysctls``: the pod's (kubelet's), set in the holder's namespaces. The
    holder's namespaces are the ones the pod's containers join. ``keeper``: the read end of a pipe
    whose write end only the shim daemon holds (EOF: the shim is gone)."""
    from mrun.kernel.child import ChildFailed, answer_from_child
    from mrun.sandbox.rootfs import write_sysctls

    userns = -1
    if pod.get("userns"):  # made (with its mappings) before the holder, which joins it: it owns the rest
        from mrun.errors import MrunError
        from mrun.sandbox.host_mounts import user_namespace

        try:
            userns = user_namespace(pod["userns"]["uids"], pod["userns"]["gids"], "the pod's user namespace",
                                    (" uids", " gids"))
        except MrunError as e:
            raise OSError(str(e)) from None

    def make_holder() -> bytes:  # in a child of the fork helper's worker, which must not change
        sysctls = dict(pod.get("sysctls") or {})
        if pod.get("netns"):  # first: joining it needs the node's user namespace's privileges
            fd = os.open(pod["netns"], os.O_RDONLY | os.O_CLOEXEC)
            sc.setns(fd, sc.CLONE_NEWNET)
            os.close(fd)
            write_sysctls(_pop_net(sysctls))  # containerd's namespace: before the pod's user namespace
        if userns >= 0:
            sc.setns(userns, sc.CLONE_NEWUSER)
            # as the pod's root, which setns does not make us: the kernel lets an IPC sysctl of a
            # namespace this one owns be written by that namespace's root uid, not by a capability
            os.setresgid(0, 0, 0)
            os.setresuid(0, 0, 0)
        flags = (sc.CLONE_NEWUTS if pod.get("new_uts") else 0) | (sc.CLONE_NEWIPC if pod.get("new_ipc") else 0)
        flags |= sc.CLONE_NEWNET if pod.get("new_net") and not pod.get("netns") else 0
        sc.unshare(flags | (sc.CLONE_NEWPID if pod.get("new_pid") else 0))
        hostname = pod.get("hostname", "")
        if hostname and pod.get("new_uts"):
            sc.sethostname(hostname)
        write_sysctls(sysctls)  # the rest, into the namespaces just made (checked at CreateSandbox)
        devnull = os.open(os.devnull, os.O_RDWR)
        _empty_root()
        _powerless()
        holder = os.fork()
        if holder == 0:
            _hold_forever(keeper, devnull)
        return str(holder).encode()

    try:
        return int(answer_from_child(make_holder))
    except ChildFailed as e:
        raise OSError(f"could not make the pod's namespaces: {e}")
    finally:
        if userns >= 0:
            os.close(userns)


def _pop_net(sysctls: dict[str, str]) -> dict[str, str]:
    return {key: sysctls.pop(key) for key in list(sysctls) if key.replace("/", ".").startswith("net.")}


def _empty_root() -> None:
    """A mount namespace of the holder's own, whose root is an empty read-only tmpfs. Forked from
    the shim, it had the node's / as its root: a container sharing the pod's PID namespace (the
    holder is its PID 1) with CAP_SYS_PTRACE read and wrote the node's files through /proc/1/root,
    where a pause container shows its own image. Nothing after this reads a file."""
    sc.unshare(sc.CLONE_NEWNS)
    sc.mount(None, "/", None, sc.MS_REC | sc.MS_PRIVATE)  # nothing below reaches the node's mounts
    place = next(d for d in ("/run", "/tmp", "/mnt", "/proc") if os.path.isdir(d))
    sealed = sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC
    sc.mount("tmpfs", place, "tmpfs", sealed, "size=4k,mode=0555")
    os.chdir(place)
    sc.pivot_root(".", ".")  # the old root stacked under the new one, then let go
    sc.umount2(".", sc.MNT_DETACH)
    os.chdir("/")
    sc.mount(None, "/", None, sc.MS_REMOUNT | sc.MS_BIND | sc.MS_RDONLY | sealed)


NOBODY = 65534


def _powerless() -> None:
    """No capability, no way to gain one, the overflow user. A container that may ptrace the
    holder (the pod's PID 1 when it shares its PID namespace; CAP_SYS_PTRACE) can make it run its
    code: with the node's capabilities in the node's user namespace, that was the node's root (a
    disk's node made and mounted). A pause container runs with its image's few, under seccomp.
    Holding namespaces, reaping and waiting need none."""
    from mrun.sandbox.caps import last_cap

    for bit in range(last_cap() + 1):
        try:
            sc.prctl(sc.PR_CAPBSET_DROP, bit)
        except OSError:
            pass  # not in the bounding set
    sc.prctl(sc.PR_SET_NO_NEW_PRIVS, 1)
    os.setgroups([])
    try:
        os.setresgid(NOBODY, NOBODY, NOBODY)
        os.setresuid(NOBODY, NOBODY, NOBODY)  # clears the permitted and effective sets
    except OSError:
        pass  # a user namespace that does not map it: root of that namespace, without a capability
    sc.capset(0, 0, 0)
    sc.prctl(sc.PR_CAP_AMBIENT, sc.PR_CAP_AMBIENT_CLEAR_ALL)


def _hold_forever(keeper: int, devnull: int) -> None:
    """PID 1 of the pod (when it has its own PID namespace): it must handle SIGTERM itself. It
    lives no longer than its shim (the pod): a killed shim leaves no holder behind. What a
    process of the pod writes into the pipe (reopened through /proc/1/fd/3) is read and dropped:
    only its end means the shim is gone."""
    os.setsid()
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.dup2(keeper, 3)
    os.closerange(4, 65536)
    os.set_blocking(3, False)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    signal.signal(signal.SIGINT, lambda *_: os._exit(0))
    signal.signal(signal.SIGCHLD, _reap)
    while True:
        select.select([3], [], [])  # signals run their handlers meanwhile
        try:
            if not os.read(3, 4096):
                os._exit(1)  # every write end closed: the shim is gone
        except BlockingIOError:
            pass


def _reap(*_: object) -> None:
    for _pid, _status in reaped():
        pass

"""The Linux system calls Python 3.11's ``os`` module lacks, through ctypes.

libc is loaded once at import, which happens before any pivot_root: after it the host's
libraries are gone from view.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import struct  # loaded here, before any pivot_root (ctypes has it loaded already)
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_libc = ctypes.CDLL("libc.so.6", use_errno=True)
_libc.syscall.restype = ctypes.c_long

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_NEWTIME = 0x00000080

NS_FLAGS = {
    "mount": CLONE_NEWNS,
    "cgroup": CLONE_NEWCGROUP,
    "uts": CLONE_NEWUTS,
    "ipc": CLONE_NEWIPC,
    "user": CLONE_NEWUSER,
    "pid": CLONE_NEWPID,
    "network": CLONE_NEWNET,
    "time": CLONE_NEWTIME,
}
# /proc/<pid>/ns/<file> for each namespace type.
NS_PROC = {
    "mount": "mnt",
    "cgroup": "cgroup",
    "uts": "uts",
    "ipc": "ipc",
    "user": "user",
    "pid": "pid",
    "network": "net",
    "time": "time",
}

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_SYNCHRONOUS = 16
MS_REMOUNT = 32
MS_MANDLOCK = 64
MS_DIRSYNC = 128
MS_NOSYMFOLLOW = 256
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_SILENT = 32768
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24
MS_POSIXACL, MS_I_VERSION, MS_LAZYTIME = 1 << 16, 1 << 23, 1 << 25
MNT_DETACH = 2
UMOUNT_NOFOLLOW = 8

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_NAME = 15
PR_SET_TIMERSLACK = 29
PR_SET_KEEPCAPS = 8
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4

_SYSNO = {
    "x86_64": {"pivot_root": 155, "capget": 125, "capset": 126, "mount_setattr": 442, "ioprio_set": 251,
               "ioprio_get": 252, "keyctl": 250, "bpf": 321, "seccomp": 317, "get_mempolicy": 239, "set_mempolicy": 238,
               "sched_setattr": 314, "open_tree": 428, "move_mount": 429, "pidfd_getfd": 438},
    "aarch64": {"pivot_root": 41, "capget": 90, "capset": 91, "mount_setattr": 442, "ioprio_set": 30,
                "ioprio_get": 31, "keyctl": 219, "bpf": 280, "seccomp": 277, "get_mempolicy": 236, "set_mempolicy": 237,
                "sched_setattr": 274, "open_tree": 428, "move_mount": 429, "pidfd_getfd": 438},
}[os.uname().machine]
MOUNT_ATTR_RDONLY, MOUNT_ATTR_NOSUID, MOUNT_ATTR_NODEV, MOUNT_ATTR_NOEXEC = 0x1, 0x2, 0x4, 0x8
MOUNT_ATTR__ATIME, MOUNT_ATTR_RELATIME, MOUNT_ATTR_NOATIME, MOUNT_ATTR_STRICTATIME = 0x70, 0x0, 0x10, 0x20
MOUNT_ATTR_NODIRATIME, MOUNT_ATTR_NOSYMFOLLOW = 0x80, 0x200000
AT_RECURSIVE = 0x8000


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


def _check(ret: int, what: str) -> int:
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return ret


def _b(s: str | None) -> bytes | None:
    return None if s is None else os.fsencode(s)


def mount_setattr(target: str, attr_set: int, attr_clr: int, recursive: bool = True) -> None:
    """Change a mount's attributes, and with ``recursive`` every mount below it (Linux 5.12):
    what a bind remount cannot do for submounts (``rro``)."""
    attr = _MountAttr(attr_set, attr_clr, 0, 0)
    flags = AT_RECURSIVE if recursive else 0
    _check(
        _libc.syscall(
            ctypes.c_long(_SYSNO["mount_setattr"]), ctypes.c_long(-100), _b(target), ctypes.c_long(flags),
            ctypes.byref(attr), ctypes.c_long(ctypes.sizeof(attr)),
        ),
        f"mount_setattr {target}",
    )


OPEN_TREE_CLONE = 1
AT_EMPTY_PATH = 0x1000
MOUNT_ATTR_IDMAP = 0x00100000
MOVE_MOUNT_F_EMPTY_PATH = 0x4
MOVE_MOUNT_T_EMPTY_PATH = 0x40


def open_tree_clone(source: str, recursive: bool) -> int:
    """A detached copy of the mount at ``source`` (with its submounts if ``recursive``), as a
    close-on-exec descriptor that a later ``move_mount`` puts in place (Linux 5.2)."""
    flags = OPEN_TREE_CLONE | os.O_CLOEXEC | (AT_RECURSIVE if recursive else 0)
    return _check(
        _libc.syscall(ctypes.c_long(_SYSNO["open_tree"]), ctypes.c_long(-100), _b(source), ctypes.c_uint(flags)),
        f"open_tree {source}",
    )


def idmap_mount(mount_fd: int, userns_fd: int, recursive: bool) -> None:
    """Make the detached mount ``mount_fd`` (and its submounts if ``recursive``) show its files'
    owners through ``userns_fd``'s mappings (mount_setattr's MOUNT_ATTR_IDMAP, Linux 5.12)."""
    attr = _MountAttr(MOUNT_ATTR_IDMAP, 0, 0, userns_fd)
    flags = AT_EMPTY_PATH | (AT_RECURSIVE if recursive else 0)
    _check(
        _libc.syscall(
            ctypes.c_long(_SYSNO["mount_setattr"]), ctypes.c_long(mount_fd), b"", ctypes.c_long(flags),
            ctypes.byref(attr), ctypes.c_long(ctypes.sizeof(attr)),
        ),
        "mount_setattr (idmap)",
    )


def move_mount(mount_fd: int, target_fd: int) -> None:
    """Attach the detached mount ``mount_fd`` on the directory or file ``target_fd`` is a handle
    of (an O_PATH descriptor: no path is looked up again)."""
    flags = MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH
    _check(
        _libc.syscall(ctypes.c_long(_SYSNO["move_mount"]), ctypes.c_long(mount_fd), b"", ctypes.c_long(target_fd),
                      b"", ctypes.c_uint(flags)),
        "move_mount",
    )


RENAME_NOREPLACE = 1


def rename_noreplace(source: str, target: str) -> None:
    """rename(2) that fails (FileExistsError) when ``target`` exists, an empty directory too,
    which a plain rename would replace (renameat2, Linux 3.15; EINVAL where the filesystem has
    no such rename)."""
    sys.audit("os.rename", source, target, -1, -1)  # as os.rename raises it: audit hooks see every rename
    _check(_libc.renameat2(-100, _b(source), -100, _b(target), ctypes.c_uint(RENAME_NOREPLACE)),
           f"rename {source} to {target}")


def mount(source: str | None, target: str, fstype: str | None, flags: int = 0, data: str | None = None) -> None:
    _check(
        _libc.mount(_b(source), _b(target), _b(fstype), ctypes.c_ulong(flags), _b(data)),
        f"mount {source or fstype} on {target}",
    )


PROC_SUPER_MAGIC = 0x9FA0


def _f_type(call: Any, arg: Any, what: str) -> int:
    """statfs(2)'s or fstatfs(2)'s f_type (the first field: a long)."""
    buf = ctypes.create_string_buffer(256)  # struct statfs is 120 bytes on 64-bit Linux
    _check(call(arg, buf), what)
    return ctypes.c_long.from_buffer_copy(buf.raw, 0).value


def fs_type(path: str) -> int:
    """The f_type of the filesystem ``path`` is on."""
    return _f_type(_libc.statfs, _b(path), f"statfs {path}")


def fd_fs_type(fd: int) -> int:
    return _f_type(_libc.fstatfs, fd, "fstatfs")


def write_procfs(path: str, data: bytes) -> None:
    """Write a /proc file (a sysctl, an LSM attribute) only if it is procfs's: a rootfs that put
    another filesystem over /proc, or a link there, would take the write (runc's EnsureProcHandle,
    CVE-2019-16884) and the setting would silently not be made."""
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    try:
        if fd_fs_type(fd) != PROC_SUPER_MAGIC:
            raise OSError(errno.EPERM, f"{path} is not procfs's")
        os.write(fd, data)
    finally:
        os.close(fd)


def umount2(target: str, flags: int = 0) -> None:
    _check(_libc.umount2(_b(target), flags), f"umount {target}")


def unmount_all(target: str) -> None:
    """Detach whatever is stacked on ``target``, however many mounts deep; nothing is fine. A
    link at ``target`` is not followed: the mount it points at is someone else's."""
    while True:
        try:
            umount2(target, MNT_DETACH | UMOUNT_NOFOLLOW)
        except OSError:
            return


BPF_ATTR_SIZE = 128  # what we pass: every command here fits; the kernel reads the rest as zero
BPF_PROG_LOAD = 5


def bpf(cmd: int, attr: bytes | bytearray) -> int:
    """bpf(2). A bytearray ``attr`` gets back what the kernel wrote into it (BPF_PROG_QUERY's count)."""
    buf = ctypes.create_string_buffer(bytes(attr), BPF_ATTR_SIZE)
    ret = _check(_libc.syscall(_SYSNO["bpf"], cmd, buf, ctypes.c_uint(BPF_ATTR_SIZE)), f"bpf command {cmd}")
    if isinstance(attr, bytearray):
        attr[:] = buf.raw[: len(attr)]
    return ret


def bpf_prog_load(prog_type: int, code: bytes, license: bytes) -> int:  # noqa: A002 - the kernel's name
    """BPF_PROG_LOAD of eBPF ``code`` (8-byte instructions) -> the program's descriptor (close-on-exec)."""
    import struct

    insns = ctypes.create_string_buffer(code, len(code))
    lic = ctypes.create_string_buffer(license, len(license))
    attr = struct.pack("<IIQQ", prog_type, len(code) // 8, ctypes.addressof(insns), ctypes.addressof(lic))
    return bpf(BPF_PROG_LOAD, attr)


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def seccomp_set_filter(program: bytes, flags: int = 0) -> int:
    """seccomp(SECCOMP_SET_MODE_FILTER) of a compiled BPF program (struct sock_filter[]). -> the
    listener's descriptor with SECCOMP_FILTER_FLAG_NEW_LISTENER, else 0."""
    buf = ctypes.create_string_buffer(program, len(program))
    prog = _SockFprog(len(program) // 8, ctypes.addressof(buf))
    return _check(_libc.syscall(_SYSNO["seccomp"], 1, ctypes.c_uint(flags), ctypes.byref(prog)), "seccomp")


def pidfd_getfd(pidfd: int, target_fd: int) -> int:
    """A copy of another process's descriptor (pidfd_getfd(2): ptrace's access to it needed)."""
    return _check(_libc.syscall(_SYSNO["pidfd_getfd"], pidfd, target_fd, 0), "pidfd_getfd")


def pivot_root(new_root: str, put_old: str) -> None:
    _check(_libc.syscall(_SYSNO["pivot_root"], _b(new_root), _b(put_old)), "pivot_root")


def unshare(flags: int) -> None:
    _check(_libc.unshare(flags), "unshare")


def setns(fd: int, nstype: int = 0) -> None:
    _check(_libc.setns(fd, nstype), "setns")


CLONE_INTO_CGROUP = 0x200000000
_CLONE3 = 435  # x86_64 and aarch64 alike
_SIGCHLD = 17  # the exit signal fork() asks for (x86_64 and aarch64)
_clone3_into: bool | None = None  # whether the kernel takes CLONE_INTO_CGROUP, once asked
_api: Any = None


class _CloneArgs(ctypes.Structure):
    _fields_ = [(name, ctypes.c_uint64) for name in (
        "flags", "pidfd", "child_tid", "parent_tid", "exit_signal", "stack", "stack_size", "tls",
        "set_tid", "set_tid_size", "cgroup")]


def _interpreter() -> Any:
    """The interpreter's own symbols and libc's ``syscall``, called *with* the GIL held (PyDLL),
    as os.fork calls fork(): a child must not begin life with the GIL released under it."""
    global _api
    if _api is None:
        _api = ctypes.PyDLL(None, use_errno=True)
        _api.syscall.restype = ctypes.c_long
    return _api


def clone_into_cgroup_works() -> bool:
    """Whether ``fork_into_cgroup`` can work here: Linux >= 5.7, and no seccomp filter (docker's
    default one answers ENOSYS to clone3) in the way. Asked once, with arguments the kernel
    refuses (a bad descriptor: EBADF where CLONE_INTO_CGROUP is known; E2BIG or EINVAL before
    5.7; ENOSYS without clone3), so no process is made."""
    global _clone3_into
    if _clone3_into is None:
        args = _CloneArgs(flags=CLONE_INTO_CGROUP, exit_signal=_SIGCHLD, cgroup=(1 << 31) - 1)  # no open fd
        ret = _libc.syscall(_CLONE3, ctypes.byref(args), ctypes.sizeof(args))
        _clone3_into = ret < 0 and ctypes.get_errno() == errno.EBADF
    return _clone3_into


def fork_into_cgroup(cgroup_fd: int) -> int:
    """os.fork(), the child born in the cgroup2 cgroup ``cgroup_fd`` (an O_RDONLY descriptor of its
    directory) by clone3(CLONE_INTO_CGROUP), as runc and crun start a container's process. Why:
    a move into a cgroup2 cgroup (cgroup.procs) takes the kernel's global threadgroup lock, whose
    first writer after a quiet spell waits for an RCU grace period (~10 ms here) holding
    cgroup_mutex, which every other cgroup change then waits for; a birth there takes neither.

    It does what os.fork does around the call (PyOS_BeforeFork, PyOS_AfterFork_Child/_Parent:
    the import lock, the interpreter's thread state, os.register_at_fork's callables), but not
    glibc's fork(): no pthread_atfork handlers and no re-taken malloc or stdio locks in the
    child. So it refuses (EAGAIN) while another thread of ours exists, even one on its way out
    (it may hold a malloc arena's lock, which the child would keep taken for good): every mrun
    fork of a container's process is made single-threaded already. -> the child's pid, 0 in the
    child; OSError as the kernel refused (ENOSYS, EINVAL, EBUSY...): the caller forks as before."""
    try:
        alone = len(os.listdir("/proc/self/task")) == 1
    except OSError:
        alone = False
    if not alone:
        raise OSError(errno.EAGAIN, "clone3: another thread of this process runs")
    api = _interpreter()
    args = _CloneArgs(flags=CLONE_INTO_CGROUP, exit_signal=_SIGCHLD, cgroup=cgroup_fd)
    api.PyOS_BeforeFork()
    pid = api.syscall(_CLONE3, ctypes.byref(args), ctypes.sizeof(args))
    if pid == 0:
        api.PyOS_AfterFork_Child()
        return 0
    err = ctypes.get_errno()
    api.PyOS_AfterFork_Parent()
    if pid < 0:
        raise OSError(err, f"clone3: {os.strerror(err)}")
    return pid


def fork_into_cgroup_at(path: str) -> int | None:
    """``fork_into_cgroup`` into the cgroup2 directory ``path``: -> the child's pid (0 in the
    child), or None where no birth was tried (the directory cannot be opened: gone, say).
    OSError as fork_into_cgroup raises it: the kernel refused the birth."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        return fork_into_cgroup(fd)
    finally:
        os.close(fd)  # in the child too


SIOCGIFFLAGS, SIOCSIFFLAGS = 0x8913, 0x8914
IFF_UP = 0x1


def interface_up(sock: int, name: str) -> None:
    """Interface ``name`` up in the network namespace of the datagram socket ``sock`` (the classic
    ioctls, ifconfig's: see network.ifconfig for why not netlink)."""
    request = bytearray(name.encode().ljust(16, b"\0") + bytes(24))  # struct ifreq: name, then the flags
    fcntl.ioctl(sock, SIOCGIFFLAGS, request, True)
    flags = int.from_bytes(request[16:18], sys.byteorder) | IFF_UP
    fcntl.ioctl(sock, SIOCSIFFLAGS, bytes(request[:16]) + flags.to_bytes(2, sys.byteorder) + bytes(22))


def loopback_up() -> None:
    """lo up in this process's network namespace; its socket through libc, so that no socket
    module (and the enums it imports) is loaded for it."""
    sock = _check(_libc.socket(2, 2 | os.O_CLOEXEC, 0), "socket")  # AF_INET, SOCK_DGRAM | SOCK_CLOEXEC
    try:
        interface_up(sock, "lo")
    finally:
        os.close(sock)


def sethostname(name: str) -> None:
    raw = os.fsencode(name)  # a byte that is not UTF-8 is that byte (jsonio.loads)
    _check(_libc.sethostname(raw, len(raw)), "sethostname")


def setdomainname(name: str) -> None:
    raw = os.fsencode(name)
    _check(_libc.setdomainname(raw, len(raw)), "setdomainname")


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    return _check(
        _libc.prctl(option, ctypes.c_ulong(arg2), ctypes.c_ulong(arg3), ctypes.c_ulong(arg4), ctypes.c_ulong(arg5)),
        "prctl",
    )


def prctl_get(option: int) -> int:
    """A PR_GET_* value of ours, or -1 where the kernel has no such option (EINVAL): no raise."""
    return int(_libc.prctl(option, ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0)))


MEMPOLICY_WORDS = 16  # nodes 0-1023: CONFIG_NODES_SHIFT is at most 10


def get_mempolicy() -> list[int]:
    """This task's NUMA memory policy: [mode with its flags, the node mask's words], or [-1]
    where the kernel has none (no CONFIG_NUMA). Only a task can read its own."""
    mode = ctypes.c_int(0)
    mask = (ctypes.c_ulong * MEMPOLICY_WORDS)()
    if _libc.syscall(_SYSNO["get_mempolicy"], ctypes.byref(mode), mask, ctypes.c_ulong(MEMPOLICY_WORDS * 64),
                     None, ctypes.c_ulong(0)) != 0:
        return [-1]
    return [mode.value, *mask]


def set_mempolicy(mode: int, nodes: list[int]) -> None:
    """This task's NUMA memory policy (``mode`` with its flags, the node mask's words), which its
    threads and children made after it, and the program it execs, keep."""
    mask = (ctypes.c_ulong * MEMPOLICY_WORDS)(*nodes)
    _check(_libc.syscall(_SYSNO["set_mempolicy"], ctypes.c_int(mode), mask if any(nodes) else None,
                         ctypes.c_ulong(MEMPOLICY_WORDS * 64 if any(nodes) else 0)), "set_mempolicy")


IOPRIO_WHO_PROCESS = 1


def ioprio_get(pid: int) -> int:
    """The I/O scheduling class and level of ``pid`` (ionice), as the kernel encodes them."""
    return _check(_libc.syscall(_SYSNO["ioprio_get"], IOPRIO_WHO_PROCESS, pid), f"ioprio_get {pid}")


def ioprio_set(value: int) -> None:
    """Our own I/O priority (``ioprio_get``'s encoding); inherited across fork, as ionice's is."""
    _check(_libc.syscall(_SYSNO["ioprio_set"], IOPRIO_WHO_PROCESS, 0, value), "ioprio_set")


def sched_setattr(policy: int, flags: int, nice: int, priority: int, runtime: int, deadline: int, period: int) -> None:
    """Our own scheduling policy and its parameters in one call (sched_setattr(2): the only way to
    SCHED_DEADLINE and the policy's flags), as runc sets a process's ``scheduler``."""
    attr = struct.pack("=IIQiIQQQ", 48, policy, flags, nice, priority, runtime, deadline, period)  # ATTR_SIZE_VER0
    _check(_libc.syscall(_SYSNO["sched_setattr"], 0, attr, 0), "sched_setattr")


KEYCTL_JOIN_SESSION_KEYRING = 1
KEYCTL_SETPERM = 5
KEYCTL_DESCRIBE = 6


def join_session_keyring(name: str | None) -> int:
    """Join the session keyring called ``name`` (made if none of ours has that name); None: a new,
    anonymous one. -> its id"""
    return _check(
        _libc.syscall(_SYSNO["keyctl"], KEYCTL_JOIN_SESSION_KEYRING, name.encode() if name is not None else None),
        "keyctl join session keyring",
    )


def add_key_permissions(key: int, bits: int) -> None:
    """Grant ``bits`` (KEY_*_* permission bits) on ``key`` on top of what it has."""
    buf = ctypes.create_string_buffer(512)
    size = _check(_libc.syscall(_SYSNO["keyctl"], KEYCTL_DESCRIBE, key, buf, len(buf)), "keyctl describe")
    perm = int(buf.raw[: max(size - 1, 0)].split(b";")[3], 16)  # type;uid;gid;perm;description
    _check(_libc.syscall(_SYSNO["keyctl"], KEYCTL_SETPERM, key, ctypes.c_uint32(perm | bits)), "keyctl setperm")


def personality(persona: int) -> None:
    """Set our execution domain and its flags (what ``setarch`` sets; inherited across fork and exec)."""
    _check(_libc.personality(ctypes.c_ulong(persona)), "personality")


def set_comm(name: bytes) -> None:
    """This process's name in /proc/PID/comm (at most 15 bytes), as exec would set it."""
    buf = ctypes.create_string_buffer(name[:15])
    prctl(PR_SET_NAME, ctypes.addressof(buf))


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


_CAP_V3 = 0x20080522


def capset(effective: int, permitted: int, inheritable: int) -> None:
    hdr = _CapHeader(_CAP_V3, 0)
    data = (_CapData * 2)()
    for i in range(2):
        shift = 32 * i
        data[i].effective = (effective >> shift) & 0xFFFFFFFF
        data[i].permitted = (permitted >> shift) & 0xFFFFFFFF
        data[i].inheritable = (inheritable >> shift) & 0xFFFFFFFF
    _check(_libc.syscall(_SYSNO["capset"], ctypes.byref(hdr), data), "capset")

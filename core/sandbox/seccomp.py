"""linux.seccomp through libseccomp (ctypes): the filter is built on the host, loaded in the sandbox.

Building first means a bad profile (unknown action, operator or architecture) is a create-time
error with a field path; loading is the last step before the payload runs. libseccomp compiles
the profile into its BPF program on the host too (``seccomp_export_bpf``), once per profile and
process (a warm template compiles the profiles it knows before any caller): the container's
process only hands the program to seccomp(2), and needs nothing of libseccomp after pivot_root.

A profile with SCMP_ACT_NOTIFY rules is loaded with a new listener (seccomp user notification),
whose descriptor the host hands to the agent at ``listenerPath`` (``seccomp_agent``).
"""

from __future__ import annotations

import ctypes
import errno as errno_mod
import os

from mrun.errors import InvalidSpec, Unsupported

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_ACTIONS = {
    "SCMP_ACT_KILL": 0x00000000,
    "SCMP_ACT_KILL_THREAD": 0x00000000,
    "SCMP_ACT_KILL_PROCESS": 0x80000000,
    "SCMP_ACT_TRAP": 0x00030000,
    "SCMP_ACT_ERRNO": 0x00050000,
    "SCMP_ACT_TRACE": 0x7FF00000,
    "SCMP_ACT_LOG": 0x7FFC0000,
    "SCMP_ACT_ALLOW": 0x7FFF0000,
    "SCMP_ACT_NOTIFY": 0x7FC00000,
}
_OPS = {
    "SCMP_CMP_NE": 1,
    "SCMP_CMP_LT": 2,
    "SCMP_CMP_LE": 3,
    "SCMP_CMP_EQ": 4,
    "SCMP_CMP_GE": 5,
    "SCMP_CMP_GT": 6,
    "SCMP_CMP_MASKED_EQ": 7,
}
_ARCHES = {
    "SCMP_ARCH_X86": "x86",
    "SCMP_ARCH_X86_64": "x86_64",
    "SCMP_ARCH_X32": "x32",
    "SCMP_ARCH_ARM": "arm",
    "SCMP_ARCH_AARCH64": "aarch64",
    "SCMP_ARCH_MIPS": "mips",
    "SCMP_ARCH_MIPS64": "mips64",
    "SCMP_ARCH_PPC64LE": "ppc64le",
    "SCMP_ARCH_S390X": "s390x",
    "SCMP_ARCH_RISCV64": "riscv64",
}
_ATTR_CTL_NNP = 3
# seccomp(2)'s flags a profile may name; WAIT_KILLABLE_RECV is passed only with a listener (the
# kernel refuses it without one: for a profile with no SCMP_ACT_NOTIFY rule it means nothing)
_FLAGS = {
    "SECCOMP_FILTER_FLAG_TSYNC": 1,
    "SECCOMP_FILTER_FLAG_LOG": 2,
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 4,
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": 32,
}
_NEW_LISTENER, _TSYNC_ESRCH, _WAIT_KILLABLE_RECV = 8, 16, 32


class _ArgCmp(ctypes.Structure):
    _fields_ = [
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    ]


def _lib() -> ctypes.CDLL:
    try:
        lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
    except OSError:
        raise Unsupported("linux.seccomp: libseccomp.so.2 is not installed (apt-get install libseccomp2)")
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_arch_resolve_name.restype = ctypes.c_uint32
    lib.seccomp_arch_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add_array.argtypes = [
        ctypes.c_void_p,
        ctypes.c_uint32,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.POINTER(_ArgCmp),
    ]
    lib.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
    lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    return lib


def _action(name: str | None, errno_ret: int | None, default_errno: int | None, field: str) -> int:
    if name not in _ACTIONS:
        raise InvalidSpec(f"{field}: unknown seccomp action {name!r}")
    base = _ACTIONS[name]
    if name == "SCMP_ACT_ERRNO":
        code = errno_ret if errno_ret is not None else default_errno
        return base | ((errno_mod.EPERM if code is None else code) & 0xFFFF)
    if name == "SCMP_ACT_TRACE":
        return base | ((errno_ret or errno_mod.EPERM) & 0xFFFF)
    return base


_COMPILED: dict[str, bytes] = {}  # a profile's JSON -> its BPF program, in this process
_COMPILED_MAX = 32


def compiled() -> dict[str, bytes]:
    """What this process has compiled (or adopted) so far: a forked worker reports what it added
    to its long-lived parent, whose next workers then find it (``adopt``)."""
    return dict(_COMPILED)


def adopt(key: str, program: bytes) -> None:
    if len(_COMPILED) < _COMPILED_MAX:
        _COMPILED[key] = program


class Filter:
    """A profile's BPF program, compiled on the host (or found compiled), loaded by ``load``.
    ``notifies``: it has SCMP_ACT_NOTIFY rules, and ``listener`` says where their agent listens
    (runc's rules: a path required then, ignored otherwise; never the default action, nor for
    write(2), which the process needs to say where its listener is)."""

    def __init__(self, profile: dict[str, Any]) -> None:
        from mrun import jsonio

        self.notifies = _notifies(profile)  # checked whether compiled here or found compiled
        key = jsonio.dumps(profile)
        program = _COMPILED.get(key)
        if program is None:
            program = _compile(profile)
            adopt(key, program)
        self.program = program
        self.listener = (profile.get("listenerPath") or "", profile.get("listenerMetadata") or "")
        self.flags = 0
        for flag in profile.get("flags") or []:
            self.flags |= _FLAGS.get(flag, 0)  # an unknown one was refused by _compile
        if not self.notifies:
            self.flags &= ~_WAIT_KILLABLE_RECV
        else:  # a listener and TSYNC together only where a thread that cannot sync fails the load
            self.flags |= _NEW_LISTENER | (_TSYNC_ESRCH if self.flags & 1 else 0)

    def load(self) -> int:
        """-> the listener's descriptor (a profile that notifies), else -1."""
        from mrun.kernel.syscalls import seccomp_set_filter

        fd = seccomp_set_filter(self.program, self.flags)
        return fd if self.notifies else -1


def _notifies(profile: dict[str, Any]) -> bool:
    """Whether any rule notifies, checked as runc checks it."""
    if profile.get("defaultAction") == "SCMP_ACT_NOTIFY":
        raise InvalidSpec("linux.seccomp.defaultAction: SCMP_ACT_NOTIFY cannot be used as default action")
    notifying = [i for i, rule in enumerate(profile.get("syscalls") or []) if rule.get("action") == "SCMP_ACT_NOTIFY"]
    for i in notifying:
        if "write" in (profile["syscalls"][i].get("names") or []):
            raise InvalidSpec(f"linux.seccomp.syscalls[{i}]: SCMP_ACT_NOTIFY cannot be used for the write syscall")
    if not notifying:
        return False  # a listenerPath alone is not used (runc runs such a profile)
    path = profile.get("listenerPath") or ""
    if not path:
        raise InvalidSpec(f"linux.seccomp.syscalls[{notifying[0]}]: SCMP_ACT_NOTIFY needs linux.seccomp.listenerPath, "
                          "the socket of the agent to hand the notifications to")
    # runc dials a relative path from its caller's directory, which mrun (a warm template's
    # child, a shim's worker) does not share: refused. @NAME is abstract (Go's rule, runc's).
    if not isinstance(path, str) or not (path.startswith("/") or path.startswith("@") and len(path) > 1) \
            or "\0" in path:
        raise InvalidSpec(f"linux.seccomp.listenerPath: {path!r}: an absolute path, or @NAME for an abstract socket")
    return True


def _compile(profile: dict[str, Any]) -> bytes:
    builder = _Builder(profile)
    try:
        return builder.export()
    finally:
        builder.lib.seccomp_release(builder.ctx)


class _Builder:
    def __init__(self, profile: dict[str, Any]) -> None:
        for i, flag in enumerate(profile.get("flags") or []):
            if flag not in _FLAGS:
                raise InvalidSpec(f"linux.seccomp.flags[{i}]: unknown flag {flag!r}")
        self.lib = lib = _lib()
        default_errno = profile.get("defaultErrnoRet")
        default = _action(profile.get("defaultAction"), None, default_errno, "linux.seccomp.defaultAction")
        self.ctx = lib.seccomp_init(default)
        if not self.ctx:
            raise InvalidSpec("linux.seccomp.defaultAction: libseccomp refused it")
        lib.seccomp_attr_set(self.ctx, _ATTR_CTL_NNP, 0)  # mrun decides no_new_privs itself
        for i, arch in enumerate(profile.get("architectures") or []):
            if arch not in _ARCHES:
                raise InvalidSpec(f"linux.seccomp.architectures[{i}]: unknown architecture {arch!r}")
            token = lib.seccomp_arch_resolve_name(_ARCHES[arch].encode())
            if token:
                lib.seccomp_arch_add(self.ctx, token)  # -EEXIST for the native one is fine
        for i, rule in enumerate(profile.get("syscalls") or []):
            field = f"linux.seccomp.syscalls[{i}]"
            action = _action(rule.get("action"), rule.get("errnoRet"), default_errno, f"{field}.action")
            if action == default:
                continue  # libseccomp refuses rules that repeat the default action
            cmps = []
            for j, a in enumerate(rule.get("args") or []):
                if a.get("op") not in _OPS:
                    raise InvalidSpec(f"{field}.args[{j}].op: unknown operator {a.get('op')!r}")
                cmps.append(_ArgCmp(a["index"], _OPS[a["op"]], a.get("value", 0), a.get("valueTwo", 0)))
            # libseccomp cannot compare one argument twice in a rule: split such rules.
            groups = [cmps] if len({c.arg for c in cmps}) == len(cmps) else [[c] for c in cmps]
            for name in rule.get("names") or []:
                nr = lib.seccomp_syscall_resolve_name(os.fsencode(name))  # a byte not UTF-8: no such name
                if nr < 0:
                    continue  # a syscall this kernel/arch does not have: nothing to filter
                for group in groups:
                    arr = (_ArgCmp * len(group))(*group)
                    ret = lib.seccomp_rule_add_array(self.ctx, action, nr, len(group), arr)
                    # EEXIST: libseccomp already holds an equivalent rule, e.g. podman's socket()
                    # rules once x86's socketcall multiplexer is in the filter; runc accepts them too.
                    if ret < 0 and -ret != errno_mod.EEXIST:
                        raise InvalidSpec(
                            f"{field}: libseccomp refused the rule for {name}: {errno_mod.errorcode.get(-ret, ret)}"
                        )

    def export(self) -> bytes:
        """The BPF program libseccomp would load (struct sock_filter[], 8 bytes each)."""
        fd = os.memfd_create("mrun-seccomp", os.MFD_CLOEXEC)
        try:
            ret = self.lib.seccomp_export_bpf(self.ctx, fd)
            if ret < 0:
                why = errno_mod.errorcode.get(-ret, ret)
                raise InvalidSpec(f"linux.seccomp: libseccomp cannot compile the profile: {why}")
            size = os.lseek(fd, 0, os.SEEK_END)
            return os.pread(fd, size, 0)
        finally:
            os.close(fd)

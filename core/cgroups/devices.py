"""cgroup v2's device controller: an eBPF program attached to the container's cgroup.

v2 has no devices.allow: the kernel asks the cgroup's BPF_PROG_TYPE_CGROUP_DEVICE programs (the
container's own and every ancestor's) about each device open and mknod. The program here is
compiled from the very rules v1 writes (``resources.device_rules``), replayed first as the v1
kernel applies them (``emulate``), so a container is policed alike on both hierarchies:

- a rule for all devices ("a") sets the default verdict and forgets every exception;
- a rule with the default's verdict takes its access away from matching exceptions;
- any other rule is an exception (merged with one for the same device).

An access is then decided as v1 decides it: on an allow list, an exception must match the type,
the numbers (a wildcard matches any) and hold all the access asked for; on a deny list, any
exception that matches and shares one access bit denies.
"""

from __future__ import annotations

import os
import struct

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

WILDCARD = -1
# struct bpf_cgroup_dev_ctx's access_type: the device type in the low 16 bits, the access above.
DEV_TYPE = {"b": 1, "c": 2}  # BPF_DEVCG_DEV_BLOCK, BPF_DEVCG_DEV_CHAR
ACCESS_BITS = {"m": 1, "r": 2, "w": 4}  # BPF_DEVCG_ACC_MKNOD, _READ, _WRITE

BPF_PROG_ATTACH = 8
BPF_PROG_DETACH = 9
BPF_PROG_GET_FD_BY_ID = 13
BPF_PROG_QUERY = 16
BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6
BPF_F_ALLOW_MULTI = 2
LICENSE = b"Apache-2.0\0"


class DeviceException:
    """One entry of v1's exception list: a device (type, numbers; -1 for any) and access bits."""

    def __init__(self, kind: str, major: int, minor: int, access: int) -> None:
        self.kind, self.major, self.minor, self.access = kind, major, minor, access

    def same_device(self, other: DeviceException) -> bool:
        return (self.kind, self.major, self.minor) == (other.kind, other.major, other.minor)

    def __repr__(self) -> str:
        return f"{self.kind} {self.major}:{self.minor} {self.access}"


def _parse(rule: str) -> tuple[bool, DeviceException | None]:
    """'allow c 1:3 rwm' / 'deny a' (resources.device_rules) -> (allow, exception or None for all)."""
    verdict, _, line = rule.partition(" ")
    if line == "a":
        return verdict == "allow", None
    kind, numbers, access = line.split(" ")
    major, minor = (WILDCARD if n == "*" else int(n) for n in numbers.split(":"))
    bits = 0
    for c in access:
        bits |= ACCESS_BITS[c]
    return verdict == "allow", DeviceException(kind, major, minor, bits)


def emulate(rules: list[str], default_allow: bool = True) -> tuple[bool, list[DeviceException]]:
    """The v1 kernel's state after ``rules``, from a cgroup that allows everything (a new v1
    cgroup under an unrestricted parent). -> (default verdict, exceptions)."""
    exceptions: list[DeviceException] = []
    for rule in rules:
        allow, ex = _parse(rule)
        if ex is None:
            default_allow, exceptions = allow, []
        elif allow == default_allow:  # dev_exception_rm
            for old in exceptions:
                if old.same_device(ex):
                    old.access &= ~ex.access
            exceptions = [old for old in exceptions if old.access]
        else:  # dev_exception_add
            for old in exceptions:
                if old.same_device(ex):
                    old.access |= ex.access
                    break
            else:
                exceptions.append(ex)
    return default_allow, exceptions


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


# The few eBPF instructions the program needs (class | operation | source).
LDX_W = 0x61  # dst = *(u32 *)(src + off)
AND32_K = 0x54
RSH32_K = 0x74
MOV32_X = 0xBC
MOV64_K = 0xB7
JEQ_K = 0x15
JNE_K = 0x55
JNE_X = 0x5D
EXIT = 0x95
R0, R1, R2, R3, R4, R5 = range(6)


def program(default_allow: bool, exceptions: list[DeviceException]) -> bytes:
    """R1 is the context; R2 the type, R3 the access, R4 major, R5 minor. Each exception is a
    block of tests that jump past it on a mismatch, then the exception's verdict."""
    insns = [
        _insn(LDX_W, R2, R1, 0),
        _insn(AND32_K, R2, imm=0xFFFF),
        _insn(LDX_W, R3, R1, 0),
        _insn(RSH32_K, R3, imm=16),
        _insn(LDX_W, R4, R1, 4),
        _insn(LDX_W, R5, R1, 8),
    ]
    for ex in exceptions:
        block: list[tuple[int, int, int, int]] = [(JNE_K, R2, 0, DEV_TYPE[ex.kind])]
        if default_allow:  # a deny list: any shared access bit matches
            block += [(MOV32_X, R1, R3, 0), (AND32_K, R1, 0, ex.access), (JEQ_K, R1, 0, 0)]
        elif ex.access != 7:  # an allow list: all the access asked for must be in the exception's
            block += [(MOV32_X, R1, R3, 0), (AND32_K, R1, 0, ex.access), (JNE_X, R1, R3, 0)]
        if ex.major != WILDCARD:
            block.append((JNE_K, R4, 0, ex.major))
        if ex.minor != WILDCARD:
            block.append((JNE_K, R5, 0, ex.minor))
        after = len(block) + 2  # the verdict's two instructions follow the tests
        for i, (code, dst, src, imm) in enumerate(block):
            is_jump = code in (JEQ_K, JNE_K, JNE_X)
            insns.append(_insn(code, dst, src, after - i - 1 if is_jump else 0, imm))
        insns += [_insn(MOV64_K, R0, imm=int(not default_allow)), _insn(EXIT)]
    insns += [_insn(MOV64_K, R0, imm=int(default_allow)), _insn(EXIT)]
    return b"".join(insns)


def attach(cgroup_dir: str, rules: list[str]) -> None:
    """Police ``cgroup_dir``'s devices by ``rules``: the new program is attached before the
    ones attached there until now are detached, so no access slips through in between."""
    from mrun.kernel import syscalls as sc

    default_allow, exceptions = emulate(rules)
    code = program(default_allow, exceptions)
    cgroup = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        old = _attached(sc, cgroup)
        prog = sc.bpf_prog_load(BPF_PROG_TYPE_CGROUP_DEVICE, code, LICENSE)
        try:
            sc.bpf(BPF_PROG_ATTACH, struct.pack("<IIII", cgroup, prog, BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI))
        finally:
            os.close(prog)
        for prog_id in old:
            try:
                fd = sc.bpf(BPF_PROG_GET_FD_BY_ID, struct.pack("<I", prog_id))
            except OSError:
                continue  # gone meanwhile
            try:
                sc.bpf(BPF_PROG_DETACH, struct.pack("<III", cgroup, fd, BPF_CGROUP_DEVICE))
            finally:
                os.close(fd)
    finally:
        os.close(cgroup)


def _attached(sc: Any, cgroup: int) -> list[int]:
    """Ids of the device programs attached to this cgroup itself (not its ancestors')."""
    import ctypes

    ids = (ctypes.c_uint32 * 64)()
    attr = bytearray(struct.pack("<IIIIQI", cgroup, BPF_CGROUP_DEVICE, 0, 0, ctypes.addressof(ids), len(ids)))
    sc.bpf(BPF_PROG_QUERY, attr)
    count = struct.unpack_from("<I", attr, 24)[0]
    return list(ids[:count])

"""The seccomp profile `mrun run IMAGE` gives a container unless told otherwise, as docker and
podman give theirs.

A deny list, not docker's allow list: everything is allowed but the calls docker's default
profile refuses a container granted no capability beyond docker's default set. Most of
them need a capability the container lacks anyway; the filter is the second fence, and the
first for what needs none: making user namespaces (unshare, setns, clone with a namespace flag),
inside which a process holds every capability over what it then creates, and io_uring, keys,
perf events and userfaultfd, the kernel's large attack surfaces. clone3's flags sit in memory a
filter cannot read: it answers ENOSYS, and glibc falls back to clone, whose flags it can.

What a deny list does not cover, said plainly: a system call added to the kernel later is
allowed until it is named here.
"""

from __future__ import annotations

import errno
import os

from mrun.errors import InvalidSpec, in_words

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

DENIED = (
    # modules, kexec, reboot, swap, clocks, accounting, quotas
    "acct", "create_module", "delete_module", "finit_module", "init_module", "get_kernel_syms", "query_module",
    "kexec_file_load", "kexec_load", "reboot", "swapoff", "swapon", "clock_adjtime", "clock_settime",
    "settimeofday", "stime", "quotactl", "quotactl_fd", "nfsservctl", "uselib", "ustat", "sysfs", "_sysctl",
    "vm86", "vm86old", "ioperm", "iopl", "lookup_dcookie", "syslog",
    # mounts and namespaces
    "mount", "mount_setattr", "move_mount", "open_tree", "fsconfig", "fsmount", "fsopen", "fspick", "umount",
    "umount2", "pivot_root", "unshare", "setns", "sethostname", "setdomainname",
    # file handles (open_by_handle_at reads any file on the filesystem: "shocker")
    "name_to_handle_at", "open_by_handle_at",
    # keys, BPF, perf, io_uring, userfaultfd, fanotify, kcmp
    "add_key", "keyctl", "request_key", "bpf", "perf_event_open", "io_uring_enter", "io_uring_register",
    "io_uring_setup", "userfaultfd", "fanotify_init", "kcmp",
)
# clone(2)'s namespace flags (the first argument on x86-64 and arm64)
CLONE_NAMESPACES = (0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000)
ARCHITECTURES = {
    "x86_64": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
    "aarch64": ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"],
}


def profile() -> dict[str, Any]:
    """The default, as an OCI ``linux.seccomp`` object."""
    return {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ARCHITECTURES.get(os.uname().machine, []),
        "syscalls": [
            {"names": list(DENIED), "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EPERM},
            {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.ENOSYS},
            *(
                {"names": ["clone"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EPERM,
                 "args": [{"index": 0, "value": flag, "valueTwo": flag, "op": "SCMP_CMP_MASKED_EQ"}]}
                for flag in CLONE_NAMESPACES
            ),
        ],
    }


def chosen(options: list[str]) -> tuple[dict[str, Any] | None, bool, str]:
    """docker's ``--security-opt`` values -> (linux.seccomp, or None for none; no_new_privileges;
    the AppArmor profile, "" for none). ``seccomp=unconfined``, ``seccomp=PROFILE.json``,
    ``no-new-privileges[=true|false]``, ``apparmor=PROFILE`` or ``apparmor=unconfined`` (docker's
    older ``key:value`` too); images.system_paths's are passed over; SELinux's ``label`` other than
    ``label=disable`` is refused: mrun would not apply it."""
    from mrun import jsonio  # not json: its own import was ~1 ms of every cold `mrun run`, for one flag
    from mrun.images.system_paths import takes

    seccomp: dict[str, Any] | None = profile()
    no_new_privileges = False  # docker's and podman's default: set-uid programs and file capabilities work
    apparmor_profile = ""
    for item in options:
        key, _, value = item.partition("=" if "=" in item else ":")
        if key == "seccomp" and value == "unconfined":
            seccomp = None
        elif key == "seccomp" and value:
            try:
                seccomp = jsonio.load_file(value)
            except (OSError, ValueError) as e:
                raise InvalidSpec(f"--security-opt {item!r}: cannot read the profile: {in_words(e)}") from None
        elif key == "no-new-privileges" and value in ("", "true", "false"):
            no_new_privileges = value != "false"
        elif takes(key, value):
            continue  # system_paths's (label=disable asks for no label: mrun applies none)
        elif key == "apparmor" and value:
            apparmor_profile = "" if value == "unconfined" else value
            from mrun.kernel import apparmor

            if apparmor_profile and not apparmor.enabled():
                raise InvalidSpec(f"--security-opt {item!r}: AppArmor is not enabled on this host")
        else:
            raise InvalidSpec(
                f"--security-opt {item!r}: only seccomp=unconfined, seccomp=PROFILE.json, no-new-privileges, "
                "apparmor=PROFILE, mask=, unmask=, systempaths=unconfined, proc-opts= and label=disable are "
                "supported (mrun applies no SELinux label)"
            )
    return seccomp, no_new_privileges, apparmor_profile

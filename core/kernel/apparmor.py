"""AppArmor, as runc applies it: the profile named by process.apparmorProfile, taken at the
process's next execve (libapparmor's aa_change_onexec: "exec NAME" written to its own
attr/apparmor/exec, or attr/exec on kernels before 5.8). A payload that runs in the init itself,
with no execve (wasm), changes profile there and then ("changeprofile NAME" to attr/current)."""

from __future__ import annotations

import os

from mrun.kernel import syscalls as sc


def enabled() -> bool:
    """runc's test: securityfs shows AppArmor and the module says it is on."""
    if not os.path.isdir("/sys/kernel/security/apparmor"):
        return False
    try:
        with open("/sys/module/apparmor/parameters/enabled") as f:
            return f.read(1) == "Y"
    except OSError:
        return False


def apply(profile: str, at_exec: bool) -> None:
    """Our own (this thread's) profile: from the next execve, or, without one, now."""
    attr, command = ("exec", "exec") if at_exec else ("current", "changeprofile")
    path = f"/proc/thread-self/attr/apparmor/{attr}"
    if not os.path.exists(path):
        path = f"/proc/thread-self/attr/{attr}"
    sc.write_procfs(path, os.fsencode(f"{command} {profile}"))  # else the process would run unconfined

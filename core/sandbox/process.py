"""The last steps before a payload runs: rlimits, user and groups, capabilities, no_new_privs,
seccomp, umask. Everything that can be wrong is checked when the plan is made, on the host;
``apply()`` runs in the sandbox, after the start signal.
"""

from __future__ import annotations

import _signal  # signal's C half: signal's enums would import enum, ~1 ms of every create
import os
import resource

from mrun.errors import InvalidSpec
from mrun.kernel import syscalls as sc
from mrun.sandbox.caps import CapPlan

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class ProcessPlan:
    def __init__(self, process: dict[str, Any], seccomp: dict[str, Any] | None = None, field: str = "process") -> None:
        self.process = process
        self.args: list[str] = process["args"]
        self.env: list[str] = list(process.get("env") or [])
        self.cwd: str = process.get("cwd") or "/"
        self.user: dict[str, Any] = process.get("user") or {}
        self.nnp = bool(process.get("noNewPrivileges"))
        self.terminal = bool(process.get("terminal"))
        self.caps = (
            CapPlan(process["capabilities"], f"{field}.capabilities")
            if process.get("capabilities") is not None
            else None
        )
        self.rlimits: list[tuple[int, int, int]] = []
        for i, rl in enumerate(process.get("rlimits") or []):
            num = getattr(resource, rl["type"], None)
            if num is None:
                raise InvalidSpec(f"{field}.rlimits[{i}].type: {rl['type']} is not known on this system")
            self.rlimits.append((num, rl["soft"], rl["hard"]))
        self.seccomp = None
        if seccomp:
            from mrun.sandbox.seccomp import Filter

            self.seccomp = Filter(seccomp)

    def apply(self) -> None:
        """Drop to the configured identity and privileges. Order matters (runc's order):
        seccomp needs CAP_SYS_ADMIN unless no_new_privs is set, setuid needs keepcaps to
        keep the capabilities that are then set explicitly."""
        for num, soft, hard in self.rlimits:
            try:
                resource.setrlimit(num, (soft, hard))
            except (OSError, ValueError) as e:
                raise OSError(f"setrlimit {num} to {soft}/{hard}: {e} (raising a hard limit needs CAP_SYS_RESOURCE)")
        if self.seccomp and not self.nnp:
            self.seccomp.load()
        if self.caps:
            self.caps.drop_bounding()
            sc.prctl(sc.PR_SET_KEEPCAPS, 1)
        uid, gid = self.user.get("uid", 0), self.user.get("gid", 0)
        groups = self.user.get("additionalGids")
        try:
            os.setgroups(list(groups or []))  # never inherit the host's supplementary groups
        except PermissionError:
            if groups:
                raise  # setgroups is denied in this user namespace
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
        if self.caps:
            sc.prctl(sc.PR_SET_KEEPCAPS, 0)
            self.caps.apply()
        if self.nnp:
            sc.prctl(sc.PR_SET_NO_NEW_PRIVS, 1)
        if self.seccomp and self.nnp:
            self.seccomp.load()
        if "umask" in self.user:
            os.umask(self.user["umask"])
        _default_signals()


def _default_signals() -> None:
    """Every signal at its default and none blocked, as crun starts a container's process: an
    ignored signal stays ignored across execve and the mask survives it, so what Python ignores
    (SIGPIPE, SIGXFSZ) and whatever the caller of a cold mrun ignored or blocked (nohup's
    SIGHUP, a background job's SIGTTOU, a supervisor's mask) reached the program, where a shell
    cannot even trap a signal ignored at its entry; a warm mrun's never did. A handler of ours
    (the stop signals caught until exec) stays: execve resets it."""
    for sig in _signal.valid_signals():
        if sig not in (_signal.SIGKILL, _signal.SIGSTOP) and _signal.getsignal(sig) == _signal.SIG_IGN:
            _signal.signal(sig, _signal.SIG_DFL)
    _signal.pthread_sigmask(_signal.SIG_SETMASK, [])

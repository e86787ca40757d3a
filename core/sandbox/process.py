"""The last steps before a payload runs: rlimits, user and groups, capabilities, no_new_privs,
seccomp, umask. Everything that can be wrong is checked when the plan is made, on the host;
``apply()`` runs in the sandbox before it reports ready, ``finish()`` after the start signal.
"""

from __future__ import annotations

import _signal  # signal's C half: signal's enums would import enum, ~1 ms of every create
import errno
import os
import resource
import stat

from mrun import umask
from mrun.errors import InvalidSpec
from mrun.kernel import apparmor
from mrun.kernel import syscalls as sc
from mrun.sandbox.caps import CapPlan

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


class ProcessPlan:
    def __init__(self, process: dict[str, Any], seccomp: dict[str, Any] | None = None, field: str = "process",
                 personality: int | None = None, memory_policy: tuple[int, list[int]] | None = None) -> None:
        self.process = process
        self.field = field
        self.personality = personality  # linux.personality's domain (spec.personality), or None: ours stays
        self.memory_policy = memory_policy  # linux.memoryPolicy (spec.memory_policy), or None: ours stays
        self.args: list[str] = process["args"]
        self.env: list[str] = list(process.get("env") or [])
        self.cwd: str = process.get("cwd") or "/"
        self.user: dict[str, Any] = process.get("user") or {}
        self.nnp = bool(process.get("noNewPrivileges"))
        self.terminal = bool(process.get("terminal"))
        # runc's fixStdioPermissions (_own_stdio); a front end that hands the process its caller's
        # own files (docker's run and exec) sets it off: only a terminal made for it is then its user's
        self.own_stdio = True
        # the init of a mount namespace of its own, whose root the sandbox made (sandbox.init):
        # its umask, where process.user names none, is 022 as runc sets it, not its caller's
        self.own_root = False
        # None named: none at all, as runc gives (it was every capability mrun held: a root as
        # privileged as the host's); an exec's are its container's (operations.exec)
        self.caps = CapPlan(process.get("capabilities") or {}, f"{field}.capabilities")
        self.rlimits: list[tuple[int, int, int]] = []
        for i, rl in enumerate(process.get("rlimits") or []):
            num = getattr(resource, rl["type"], None)
            if num is None:
                raise InvalidSpec(f"{field}.rlimits[{i}].type: {rl['type']} is not known on this system")
            self.rlimits.append((num, _rlim(rl["soft"]), _rlim(rl["hard"])))
        gids = (process.get("user") or {}).get("additionalGids") or []
        if len(gids) > os.sysconf("SC_NGROUPS_MAX"):  # setgroups' EINVAL, "too many groups", named here
            raise InvalidSpec(f"{field}.user.additionalGids: {len(gids)} groups, more than this kernel's "
                              f"{os.sysconf('SC_NGROUPS_MAX')}")
        self.apparmor: str = process.get("apparmorProfile") or ""
        self.ioprio = _io_priority(process.get("ioPriority"), f"{field}.ioPriority")
        self.scheduler = _scheduler(process.get("scheduler"), f"{field}.scheduler")
        self.seccomp = None
        if seccomp:
            from mrun.sandbox.seccomp import Filter

            self.seccomp = Filter(seccomp)

    def apply(self, execs: bool = True, listener: Callable[[int], None] | None = None) -> None:
        """Drop to the configured identity and privileges before the process reports ready, as
        runc does before its create (or exec) returns: one the kernel refuses (a uid its user
        namespace does not map, a real-time scheduler the cgroup has no budget for) fails the
        create, naming the field, rather than a container that `start` reports started and that
        never runs. What is left for the moment before the payload: ``finish()``.

        Order matters (runc's order): seccomp needs CAP_SYS_ADMIN unless no_new_privs is set,
        setuid needs keepcaps to keep the capabilities that are then set explicitly. The
        scheduler and I/O priority first: a real-time one needs CAP_SYS_NICE / CAP_SYS_ADMIN,
        which the capabilities may drop. The AppArmor profile first of all, as runc applies it:
        taken at the payload's execve, or at once for a payload that ``execs`` nothing (wasm).

        Before anything is dropped, this process stops being dumpable (runc does the same): once
        its capabilities are the container's, a process of the container (one sharing its PID
        namespace, or racing an exec) could otherwise open /proc/PID/exe, the host's Python
        interpreter, and write it once no Python runs (CVE-2019-5736's way out). execve makes
        the container's program dumpable again; a wasm init, which never execs, stays so."""
        sc.prctl(sc.PR_SET_DUMPABLE, 0)
        if self.personality is not None:  # before seccomp, which may allow personality(2) few values
            try:
                sc.personality(self.personality)
            except OSError as e:
                raise OSError(f"linux.personality: {e.strerror}")
        if self.memory_policy is not None:  # the kernel's word on nodes this machine has (runc's order)
            try:
                sc.set_mempolicy(*self.memory_policy)
            except OSError as e:
                raise OSError(f"linux.memoryPolicy: {e.strerror} (set_mempolicy)")
        if self.apparmor:
            try:
                apparmor.apply(self.apparmor, at_exec=execs)
            except OSError as e:
                raise OSError(f"{self.field}.apparmorProfile: cannot apply {self.apparmor!r}: {e.strerror}")
        if self.scheduler is not None:
            try:
                sc.sched_setattr(*self.scheduler)
            except OSError as e:
                raise OSError(f"{self.field}.scheduler: {e.strerror}")
        if self.ioprio is not None:
            try:
                sc.ioprio_set(self.ioprio)
            except OSError as e:
                raise OSError(f"{self.field}.ioPriority: {e.strerror}")
        for num, soft, hard in self.rlimits:
            try:
                resource.setrlimit(num, (soft, hard))
            except (OSError, ValueError) as e:
                why = "raising a hard limit needs CAP_SYS_RESOURCE" if isinstance(e, PermissionError) else str(e)
                raise OSError(f"{self.field}.rlimits: cannot set resource {num} to {soft}/{hard} ({why})")
        if self.seccomp and not self.nnp:
            self._load_seccomp(listener)
        self.caps.drop_bounding()
        sc.prctl(sc.PR_SET_KEEPCAPS, 1)
        self._set_user()
        sc.prctl(sc.PR_SET_KEEPCAPS, 0)
        self.caps.apply()
        if self.nnp:
            sc.prctl(sc.PR_SET_NO_NEW_PRIVS, 1)
            if self.seccomp and self.seccomp.notifies:  # its listener goes to the host before the create
                self._load_seccomp(listener)  # returns, as runc loads it then (not at finish)
        if "umask" in self.user:
            os.umask(self.user["umask"])
        else:  # runc's: 022 for an init whose root it made (finalizeRootfs), its caller's for the rest
            os.umask(0o022 if self.own_root else umask.callers())

    def _load_seccomp(self, listener: Callable[[int], None] | None) -> None:
        """The filter; a listener it made goes to ``listener`` at once (runc's order): any call
        made before the agent has it, which the profile notifies, would wait for ever."""
        fd = self.seccomp.load() if self.seccomp else -1
        if fd >= 0:
            if listener is None:
                raise OSError("linux.seccomp: SCMP_ACT_NOTIFY: nobody here to take the listener")
            listener(fd)

    def finish(self) -> None:
        """Just before the payload: seccomp under no_new_privs as close to execve as it goes (as
        runc: the fewest calls a profile must allow after it), and the signals at their defaults."""
        if self.seccomp and self.nnp and not self.seccomp.notifies:
            self.seccomp.load()
        _default_signals()

    def _set_user(self) -> None:
        """Groups, then gid, then uid: the kernel's refusal (an id this user namespace does not
        map: EINVAL) named with the field and the id, as runc's create fails."""
        uid, gid = self.user.get("uid", 0), self.user.get("gid", 0)
        groups = list(self.user.get("additionalGids") or [])
        if self.own_stdio or self.terminal:
            self._own_stdio(uid)
        try:
            os.setgroups(groups)  # never inherit the host's supplementary groups
        except OSError as e:
            if groups or not isinstance(e, PermissionError):  # none to set where setgroups is denied: fine
                raise OSError(f"{self.field}.user.additionalGids: cannot set {groups}: {e.strerror}")
        for name, value, setter in (("gid", gid, os.setresgid), ("uid", uid, os.setresuid)):
            try:
                setter(value, value, value)
            except OSError as e:
                hint = " (not mapped in the user namespace)" if e.errno == errno.EINVAL else ""
                raise OSError(f"{self.field}.user.{name}: cannot set {value}: {e.strerror}{hint}")

    def _own_stdio(self, uid: int) -> None:
        """runc's fixStdioPermissions: each standard stream the process was handed (a client's pipe,
        a shim's fifo, its terminal) made the user's, its group left as it is, so that the process
        can open it again by name: `echo > /dev/stdout`, a program told to log to /dev/stderr. The
        null device, and one the user owns already, stay as they are; one the kernel will not give
        (an owner or group its user namespace does not map, a read-only /dev) is left, as runc
        leaves it. Without it a user other than root was refused (EACCES) the streams it writes."""
        for fd in (0, 1, 2):
            try:
                st = os.fstat(fd)
            except OSError:
                continue
            if st.st_uid == uid or (stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 3)):
                continue
            try:
                os.fchown(fd, uid, -1)
            except OSError as e:
                if e.errno not in (errno.EINVAL, errno.EPERM, errno.EROFS):
                    raise OSError(f"{self.field}.user.uid: cannot give it standard stream {fd}: {e.strerror}")


def _rlim(value: int) -> int:
    """An rlimit value for setrlimit: the spec's are uint64, and 2**64-1 is RLIM_INFINITY (what
    docker's ``--ulimit core=-1`` becomes), which Python spells -1 and cannot take as a number. A
    value of 2**63 or more is past any limit the kernel would enforce: unlimited as well."""
    return resource.RLIM_INFINITY if value >= 1 << 63 else value


IOPRIO_CLASSES = {"IOPRIO_CLASS_RT": 1, "IOPRIO_CLASS_BE": 2, "IOPRIO_CLASS_IDLE": 3}
SCHED_POLICIES = {"SCHED_OTHER": 0, "SCHED_FIFO": 1, "SCHED_RR": 2, "SCHED_BATCH": 3, "SCHED_IDLE": 5,
                  "SCHED_DEADLINE": 6}
SCHED_FLAGS = {"SCHED_FLAG_RESET_ON_FORK": 0x01, "SCHED_FLAG_RECLAIM": 0x02, "SCHED_FLAG_DL_OVERRUN": 0x04,
               "SCHED_FLAG_KEEP_POLICY": 0x08, "SCHED_FLAG_KEEP_PARAMS": 0x10, "SCHED_FLAG_UTIL_CLAMP_MIN": 0x20,
               "SCHED_FLAG_UTIL_CLAMP_MAX": 0x40}


def _io_priority(io: dict[str, Any] | None, field: str) -> int | None:
    """process.ioPriority -> ioprio_set's value (class << 13 | level), checked on the host."""
    if not io:
        return None
    cls = IOPRIO_CLASSES.get(io.get("class", ""))
    if cls is None:
        raise InvalidSpec(f"{field}.class: {io.get('class')!r} is not one of {', '.join(IOPRIO_CLASSES)}")
    level = io.get("priority", 0)
    if not isinstance(level, int) or not 0 <= level <= 7:
        raise InvalidSpec(f"{field}.priority: must be 0 to 7, got {level!r}")
    return cls << 13 | level


def _scheduler(sched: dict[str, Any] | None, field: str) -> tuple[int, ...] | None:
    """process.scheduler -> sched_setattr's (policy, flags, nice, priority, runtime, deadline,
    period), checked on the host as the kernel would check them."""
    if not sched:
        return None
    policy = SCHED_POLICIES.get(sched.get("policy", ""))
    if policy is None:
        raise InvalidSpec(f"{field}.policy: {sched.get('policy')!r} is not one of {', '.join(SCHED_POLICIES)}")
    flags = 0
    for i, name in enumerate(sched.get("flags") or []):
        if name not in SCHED_FLAGS:
            raise InvalidSpec(f"{field}.flags[{i}]: unknown flag {name!r}")
        flags |= SCHED_FLAGS[name]
    values = {k: sched.get(k, 0) for k in ("nice", "priority", "runtime", "deadline", "period")}
    for k, v in values.items():
        if not isinstance(v, int) or isinstance(v, bool) or (k != "nice" and not 0 <= v < 1 << 63):
            raise InvalidSpec(f"{field}.{k}: must be a non-negative integer, got {v!r}")
    if not -20 <= values["nice"] <= 19:
        raise InvalidSpec(f"{field}.nice: must be -20 to 19, got {values['nice']}")
    realtime = policy in (SCHED_POLICIES["SCHED_FIFO"], SCHED_POLICIES["SCHED_RR"])
    if realtime and not 1 <= values["priority"] <= 99 or not realtime and values["priority"]:
        raise InvalidSpec(f"{field}.priority: SCHED_FIFO and SCHED_RR take 1 to 99, the other policies 0")
    return (policy, flags, values["nice"], values["priority"], values["runtime"], values["deadline"],
            values["period"])


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

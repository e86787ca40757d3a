"""Whom the template serves: only a caller it could have been.

A child forked from the template runs with the template's privileges, so serving a caller
with fewer would hand it more: a root process with dropped capabilities, no_new_privs, a
seccomp filter, another LSM label, or in other namespaces or under another root directory;
likewise one that set with prctl what fork and exec keep and the template has otherwise
(speculation mitigations, transparent huge pages off; securebits, memory-deny-write-execute and
the NUMA memory policy, which the caller reports, ``kept_state``), which its containers would
have lost.
Callers that differ so are routed to a template of their own (``routing``: it names the socket),
started by the first of them and so no more privileged than they are. One that reaches a template
it differs from all the same (a checksum's collision, a context changed since) is told to run
cold, where the kernel applies its own limits to it; so is any caller under a seccomp filter, as
/proc shows a filter's mode but not its rules. The peer's
uid and pid come from the socket (SO_PEERCRED), which the caller cannot forge; the pid is the one
that connected, so the template also checks, with the kernel's stamp on the descriptors' message
and the pid's start time (``mrun.kernel.proc.start_time``), that it is still the process that
sends them (``template.handle``).
"""

from __future__ import annotations

import os

NAMESPACES = ("mnt", "pid", "net", "ipc", "uts", "user", "cgroup", "time")
STATUS_FIELDS = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp",
                 # prctl state that fork and exec keep, so a cold call's containers have the caller's:
                 # transparent huge pages off, speculation mitigations forced on
                 "THP_enabled", "Speculation_Store_Bypass", "SpeculationIndirectBranch")


def credentials(sock: object) -> tuple[int, int, int]:
    """(pid, uid, gid) of the process at the other end of a unix socket. The bare ``_socket`` and
    ``_struct``: the client asks this too, before it sends anything (``socket`` costs 17 ms)."""
    import _socket
    import _struct

    raw = sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, 12)  # type: ignore[attr-defined]
    pid, uid, gid = _struct.unpack("3i", raw)  # struct ucred
    return pid, uid, gid


def context(pid: int | str) -> dict[str, str]:
    """The facts about ``pid`` that decide what a process forked on its behalf may do."""
    facts: dict[str, str] = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in STATUS_FIELDS or key in ("Uid", "Gid", "Groups"):
                facts[key] = value.strip()
    for ns in NAMESPACES:
        try:
            facts[f"ns/{ns}"] = os.readlink(f"/proc/{pid}/ns/{ns}")
        except FileNotFoundError:  # a kernel without that namespace type
            pass
    root = os.stat(f"/proc/{pid}/root")
    facts["root"] = f"{root.st_dev}:{root.st_ino}"
    try:
        with open(f"/proc/{pid}/attr/current") as f:
            facts["lsm"] = f.read().strip("\0\n")
    except OSError:  # no LSM that reports one
        pass
    return facts


PR_GET_SECUREBITS, PR_GET_MDWE = 27, 66  # linux/prctl.h


def kept_state() -> list[int]:
    """What fork and exec keep, so a cold call's containers have its caller's, and /proc does not
    show: [securebits, memory-deny-write-execute flags (PR_SET_MDWE), NUMA memory policy mode,
    its node mask's words] (-1 for what the kernel lacks). Each launcher reports its own in its
    request (bin/launcher.c likewise) and the template compares them with its own. A caller could
    lie about them only to its own loss of the confinement it chose (the capability sets, which
    /proc does show, are compared apart)."""
    from mrun.kernel import syscalls as sc  # here only: the Python launcher's request (ctypes)

    return [sc.prctl_get(PR_GET_SECUREBITS), sc.prctl_get(PR_GET_MDWE), *sc.get_mempolicy()]


def routing() -> str:
    """What, besides the interpreter's identity, picks this process's template among a node's
    (client.socket_path; bin/launcher.c has its own key for the same facts): everything
    ``mismatch`` compares but the seccomp mode. Callers that differ get a template each, instead
    of the first one's refusing the others for as long as anyone called: a root login shell
    (group root among its groups) beside containerd (a service: none), a caller with a smaller
    bounding set beside one with all. A filtered caller is served by none and never starts one:
    it asks the unfiltered template, which says why."""
    from mrun import jsonio

    facts = context("self")
    facts.pop("Seccomp", None)
    return jsonio.dumps([facts, kept_state()])


def under_seccomp(pid: int | str = "self") -> bool:
    """Whether ``pid`` runs under a seccomp filter (or strict mode)."""
    from mrun.kernel.proc import status_field

    return (status_field("Seccomp", pid) or "0") != "0"


def mismatch(pid: int, mine: dict[str, str]) -> str | None:
    """The first fact in which ``pid`` differs from the template (``mine``), or None."""
    try:
        theirs = context(pid)
    except OSError as e:
        return f"the caller's /proc entry: {e.strerror}"
    if theirs.get("Seccomp", "0") != "0":  # /proc gives the mode, not the rules: two filters cannot be compared
        return f"the caller runs under a seccomp filter (Seccomp {theirs['Seccomp']}) the template cannot match"
    for key in sorted(set(mine) | set(theirs)):
        if mine.get(key) != theirs.get(key):
            return f"{key} differs ({theirs.get(key)!r}, template {mine.get(key)!r})"
    return None

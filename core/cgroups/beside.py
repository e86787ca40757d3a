"""A cgroup beside a container's for the one process of mrun's that must outlive its caller's
cgroup: a detached container's supervisor (images.supervisor), ``<its cgroup>+supervisor`` in
every hierarchy ('+' is in no name docker's rules give a container: never another's cgroup).

Why: the supervisor is forked by the process that took on its caller (the warm template's child,
or cold, the caller itself), so it was born in the caller's cgroup: a login session's scope, a CI
job's, a systemd unit's (`ExecStart=mrun run -d ...`). When that ends, systemd or the job runner
kills every process in it, and the supervisor died with it: the container, in its own cgroup, ran
on with its output going nowhere, its exit code never noted, its restart policy gone. docker's
containers are its daemon's; podman moves conmon to a cgroup of its own (libpod-conmon-ID.scope,
or with cgroupfs its conmon cgroup). So the supervisor is born here (``fork_into``), before the
caller is told the container runs.

Ownership as a container's cgroup (cgroups.base): the record (``RECORD``, in the container's
bundle) is written before anything is made, so what a killed command made is found again; only
directories recorded as made are removed, and only once empty (rmdir, never a kill: the process
in it is the supervisor, which ends itself); the parents mrun made go with the last one out
(``release_parents``). The supervisor removes its own at its end (``leave``); the container's
removal (bundles.remove_bundle) removes what a killed one left (``remove``). Each directory is
also marked as mrun's (cgroups.base ``mark``, as those parents are) before it is made: a
supervisor killed after its container's removal gave up waiting for it leaves one that no
record names any more, which `system prune` (``release_marked``) removes and the next
supervisor of that name takes as its own."""

from __future__ import annotations

import os

from mrun import annotations as ann
from mrun import jsonio
from mrun.errors import MrunError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from mrun.cgroups.base import Cgroup

# podman's --cgroups modes where conmon stays in its caller's cgroup: there the supervisor is
# born and stays, a systemd unit's main process in the unit's cgroup (ExecStart=mrun run -d
# --cgroups no-conmon, as `podman generate systemd --new` writes it)
STAYING = ("no-conmon", "split")
SUFFIX = "+supervisor"
RECORD = "supervisor-cgroup.json"
LEAVING = 2.0  # seconds `rm` waits for its container's ending supervisor to leave its cgroup


def prepare(bundle: str, marks: str) -> Cgroup | None:
    """The supervisor's cgroup beside the container's (its bundle's ``linux.cgroupsPath``), made
    and claimed, its record written first. None where there is none to be had: a cgroupsPath
    relative to the caller's own cgroup (the container is in the caller's tree too), a cgroupfs
    that refuses; the supervisor is then born where it always was."""
    from mrun.cgroups import new_cgroup
    from mrun.cgroups.base import mark, marked

    config = jsonio.load_object(os.path.join(bundle, "config.json")) or {}
    path = (config.get("linux") or {}).get("cgroupsPath") if isinstance(config.get("linux"), dict) else None
    if not isinstance(path, str) or not path.startswith("/"):
        return None
    if (config.get("annotations") or {}).get(ann.CGROUPS) in STAYING:  # podman's --cgroups no-conmon
        return None
    record = os.path.join(bundle, RECORD)
    try:
        cgroup = new_cgroup(path.rstrip("/") + SUFFIX, "")
        cgroup.plan(marks)
        # An earlier supervisor's (a restart, one killed): still this container's to remove; and
        # one of this name whose record went with its container (marked, ``_remove``).
        earlier = _recorded(record)
        ours = set(earlier.created) if earlier is not None else set()
        cgroup.created = sorted(set(cgroup.created) | {d for d in cgroup.dirs() if d in ours or marked(marks, d)})
        jsonio.replace_file(record, cgroup.to_dict())
        for d in cgroup.created:
            mark(marks, d)
        cgroup.make()
    except (OSError, MrunError):
        return None
    return cgroup


def fork_into(cgroup: Cgroup | None) -> int:
    """os.fork(), the child in ``cgroup``: born in its cgroup2 directory where there is one (a
    birth takes no lock, a move waits for an RCU grace period), then moved thread-wise into the
    v1 ones (it is one thread, and so is the whole process). Where a move fails the child stays
    where it was born, as before. -> the child's pid, 0 in the child."""
    from mrun.cgroups.base import write
    from mrun.kernel.syscalls import fork_into_cgroup_at

    if cgroup is None:
        return os.fork()
    pid, birth = None, cgroup.birth_dir()
    if birth is not None:
        try:
            pid = fork_into_cgroup_at(birth)
        except OSError:  # refused (another thread of ours, an old kernel): forked and moved instead
            pid = None
    born = pid is not None
    if pid is None:
        pid = os.fork()
    if pid == 0:
        try:
            files = cgroup.thread_files(born)
            for name in files:
                write(name, "0")
            if not files and not born:
                cgroup.add(os.getpid())
        except (OSError, MrunError):
            pass
    return pid


def leave(cgroup: Cgroup | None) -> None:
    """At the supervisor's end: out to each hierarchy's root, its directories removed. Where it
    cannot leave, the container's removal takes them (``remove``)."""
    from mrun.cgroups.base import write

    if cgroup is None:
        return
    try:
        for root in cgroup.hierarchy_roots():
            write(os.path.join(root, "cgroup.procs"), "0")
    except (OSError, MrunError):
        return
    _remove(cgroup, wait=True)


def remove(bundle: str) -> None:
    """At the removal of the container's bundle, by its record: what a supervisor killed in it
    left. One still in it (leaving, or a --rm one removing its own container) removes it as it
    ends; a removal that must not return before that waits for it (``removed_once_left``)."""
    cgroup = recorded(bundle)
    if cgroup is not None:
        _remove(cgroup, wait=False)


def recorded(bundle: str) -> Cgroup | None:
    """The supervisor's cgroup its container's bundle records, if any."""
    return _recorded(os.path.join(bundle, RECORD))


def removed_once_left(cgroup: Cgroup | None) -> None:
    """After a container's removal (`rm`), held by no lock: its supervisor, whose container is
    gone, is on its way out; the removal returns once it has left its cgroup (``LEAVING`` at
    most) and the cgroup is gone, so nothing of the container is left behind it."""
    import time

    from mrun.cgroups.base import procs_in

    if cgroup is None:
        return
    deadline = time.monotonic() + LEAVING
    while held := {pid for d in cgroup.dirs() for pid in procs_in(d)}:
        if os.getpid() in held or time.monotonic() > deadline:
            return
        time.sleep(0.005)
    _remove(cgroup, wait=True)


def _recorded(record: str) -> Cgroup | None:
    from mrun.cgroups import open_cgroup, saved_problem

    saved = jsonio.load_object(record)
    if saved is None or saved_problem(saved):
        return None
    cgroup = open_cgroup(saved)
    if not all(d.endswith(SUFFIX) for d in cgroup.dirs()):  # a record naming anything else is not ours
        return None
    return cgroup


def _remove(cgroup: Cgroup, wait: bool) -> None:
    from mrun.cgroups.base import release_parents, rmdir_cgroup, unmark

    for d in cgroup.created:  # (its own directories only: plan and open_cgroup keep no other)
        if not rmdir_cgroup(d, wait):
            return  # its supervisor is still in it: it removes it as it ends
        unmark(cgroup.marks, d)
    for d in cgroup.dirs():
        if not os.path.isdir(d):
            release_parents(d, cgroup.marks)

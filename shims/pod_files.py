"""The files a pod's containers share when the shim is the pod (``sandboxer = 'shim'``).

CRI's own sandboxer makes a pod's /etc/hostname, /etc/hosts and /etc/resolv.conf (kubelet's
dnsConfig: the cluster's DNS) and a /dev/shm tmpfs, and mounts them into each of its containers
(podsandbox's setupSandboxFiles). containerd 2.x leaves them to a sandbox controller of another
kind: CRI mounts only those it finds under its own directory, which nobody fills for a shim's pod.
So the shim makes them as CRI does, in the pod's bundle, and adds them to each of the pod's
containers' specs where that spec has none of its own (``amend``): kubelet's managed /etc/hosts
and a memory emptyDir on /dev/shm win, as they do under CRI.

What differs from CRI: for a user-namespaced pod CRI idmaps these mounts; here they show as the
overflow owner inside (still readable, and /dev/shm is world-writable), and a node without
/etc/resolv.conf gives an empty one where CRI fails the pod.
"""

from __future__ import annotations

import os

from mrun.network.names import node_file

DIRECTORY = "pod-files"  # in the pod's bundle
SHM_SIZE = 64 * 1024 * 1024  # CRI's defaultShmSize


def resolv_conf(dns: tuple[list[str], list[str], list[str]] | None) -> bytes:
    """kubelet's DNSConfig (servers, searches, options) as CRI writes it; None (no dnsConfig):
    the node's own file, as CRI copies it."""
    if dns is None:
        return node_file("resolv.conf") or b""
    servers, searches, options = dns
    text = f"search {' '.join(searches)}\n" if searches else ""
    text += "".join(f"nameserver {server}\n" for server in servers)
    text += f"options {' '.join(options)}\n" if options else ""
    return text.encode()


def make(bundle: str, hostname: str, dns: tuple[list[str], list[str], list[str]] | None,
         node_ipc: bool) -> dict[str, str]:
    """The pod's files in ``<bundle>/pod-files`` -> {destination in a container: source}. /dev/shm
    is a tmpfs of the pod's own, undone by ``release``; a hostIPC pod has none (``amend``)."""
    from mrun.kernel import syscalls as sc

    directory = os.path.join(bundle, DIRECTORY)
    os.mkdir(directory, 0o711)  # ours alone: a second StartSandbox is refused before this
    os.chmod(directory, 0o711)  # whatever the shim's umask: a user-namespaced pod's root reaches in
    files = {
        "/etc/hostname": (hostname or os.uname().nodename).encode() + b"\n",
        "/etc/hosts": node_file("hosts") or b"",
        "/etc/resolv.conf": resolv_conf(dns),
    }
    made = {}
    for destination, content in files.items():
        path = os.path.join(directory, os.path.basename(destination))
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        try:
            os.fchmod(fd, 0o644)  # whatever the shim's umask: a container's user other than root reads it
            os.write(fd, content)
        finally:
            os.close(fd)
        made[destination] = path
    if not node_ipc:
        shm = shm_path(bundle)
        os.mkdir(shm, 0o700)
        sc.mount("shm", shm, "tmpfs", sc.MS_NOEXEC | sc.MS_NOSUID | sc.MS_NODEV, f"mode=1777,size={SHM_SIZE}")
        made["/dev/shm"] = shm
    return made


def shm_path(bundle: str) -> str:
    """Where the pod's /dev/shm is mounted (``delete`` looks there after a killed shim)."""
    return os.path.join(bundle, DIRECTORY, "shm")


def release(bundle: str) -> None:
    """The pod's /dev/shm unmounted (the files go with the bundle, which containerd removes):
    when the pod is stopped or shut down, and by ``delete`` after a shim that was killed."""
    from mrun.kernel.syscalls import unmount_all

    unmount_all(shm_path(bundle))


def amend(pods: dict[str, dict[str, str]], config: dict) -> None:
    """Add its pod's files to a container's config.json (a pod's container: CRI's sandbox-id
    annotation names one of ``pods``) where it has no mount of its own there, read-only where its
    root is, as CRI mounts them. /dev/shm follows the container's IPC namespace, as CRI's does: in
    the node's, the node's /dev/shm; else the pod's, where the pod has one. It replaces CRI's
    default tmpfs (one per container); one kubelet mounts (a bind: a memory emptyDir) stays."""
    from mrun.annotations import CRI_CONTAINER_TYPE, CRI_SANDBOX_ID

    annotations = config.get("annotations") or {}
    files = pods.get(annotations.get(CRI_SANDBOX_ID, ""))
    if not files or annotations.get(CRI_CONTAINER_TYPE) != "container":
        return
    files = dict(files)
    if not any(ns.get("type") == "ipc" for ns in (config.get("linux") or {}).get("namespaces") or []):
        files["/dev/shm"] = "/dev/shm"  # hostIPC
    mounts = config.setdefault("mounts", [])
    at = {os.path.normpath(m.get("destination", "")): i for i, m in enumerate(mounts)}
    readonly = bool((config.get("root") or {}).get("readonly"))
    for destination, source in files.items():
        shm = destination == "/dev/shm"
        mount = {"destination": destination, "type": "bind", "source": source,
                 "options": ["rbind", "rprivate", "rw" if shm or not readonly else "ro"]}
        if shm:
            mount["options"] += ["nosuid", "nodev", "noexec"]
        i = at.get(destination)
        if i is None:
            mounts.append(mount)
        elif shm and mounts[i].get("type") == "tmpfs" and mounts[i].get("source") == "shm":
            mounts[i] = mount

"""The --security-opt values that change what of /proc and /sys a container sees (a Quadlet
unit's ``Mask=`` and ``Unmask=`` are podman's ``mask=`` and ``unmask=``):

* ``mask=/P1:/P2`` (podman's): more paths masked (linux.maskedPaths): nothing to read there;
* ``unmask=ALL`` or ``unmask=/P1:/P2`` (podman's; shell patterns such as ``/proc/*``): paths
  masked or made read-only by default that are not, here;
* ``systempaths=unconfined`` (docker's): none masked or read-only, as ``unmask=ALL``;
* ``proc-opts=OPTION,...`` (podman's): the options of the container's /proc mount, among
  ``hidepid=``, ``gid=`` and ``subset=pid``.

Whatever they name is a path inside the container, resolved inside its root as every masked
path is. ``label=disable`` (docker's and podman's) asks for no SELinux label: mrun applies none,
so it changes nothing and is taken as it is.
"""

from __future__ import annotations

from mrun.errors import InvalidSpec

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

KEYS = ("mask", "unmask", "systempaths", "proc-opts")
PROC_OPTIONS = {"hidepid": ("0", "1", "2", "invisible", "noaccess", "ptraceable"), "gid": (), "subset": ("pid",)}


def takes(key: str, value: str) -> bool:
    """Whether this module applies (or, label=disable, needs no more than accepting) a
    --security-opt ``key``=``value``; seccomp_default.chosen passes these over."""
    return key in KEYS or (key == "label" and value == "disable")


def apply(spec: dict[str, Any], options: list[str]) -> None:
    """Each of ``options`` (--security-opt's values) that is this module's, in order, onto ``spec``."""
    linux = spec["linux"]
    for item in options:
        key, _, value = item.partition("=" if "=" in item else ":")
        said = f"--security-opt {item[:200]!r}"
        if key == "mask":
            masked = linux.setdefault("maskedPaths", [])
            masked += [p for p in _paths(said, value) if p not in masked]
        elif key == "unmask":
            _unmask(linux, said, value)
        elif key == "systempaths":
            if value != "unconfined":
                raise InvalidSpec(f"{said}: systempaths=unconfined is the one value")
            linux["maskedPaths"], linux["readonlyPaths"] = [], []
        elif key == "proc-opts":
            _proc_options(spec, said, value)


def _paths(said: str, value: str) -> list[str]:
    paths = value.split(":")
    for path in paths:
        if not path.startswith("/") or "\0" in path or ".." in path.split("/"):
            raise InvalidSpec(f"{said}: absolute paths inside the container, separated by ':', expected")
    return paths


def _unmask(linux: dict[str, Any], said: str, value: str) -> None:
    if value == "ALL":
        linux["maskedPaths"], linux["readonlyPaths"] = [], []
        return
    from fnmatch import fnmatchcase

    patterns = _paths(said, value)
    for field in ("maskedPaths", "readonlyPaths"):
        linux[field] = [p for p in linux.get(field) or [] if not any(fnmatchcase(p, pat) for pat in patterns)]


def _proc_options(spec: dict[str, Any], said: str, value: str) -> None:
    options = value.split(",")
    for option in options:
        name, eq, setting = option.partition("=")
        allowed = PROC_OPTIONS.get(name)
        if allowed is None or not eq or not setting or (allowed and setting not in allowed) or (
                name == "gid" and not (setting.isdigit() and setting.isascii() and int(setting) < 1 << 32)):
            raise InvalidSpec(f"{said}: {option!r}: hidepid={'|'.join(PROC_OPTIONS['hidepid'])}, gid=GID or "
                              "subset=pid expected")
    for mount in spec["mounts"]:
        if mount.get("type") == "proc" and mount.get("destination") == "/proc":
            mount["options"] = [*(o for o in mount.get("options") or []
                                  if o.partition("=")[0] not in {x.partition("=")[0] for x in options}), *options]

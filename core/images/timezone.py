"""podman's ``--tz`` (a Quadlet unit's ``Timezone=``): the container's /etc/localtime, a copy of
the host's zone file for an area-based name (``Europe/Paris``, ``Etc/GMT+3``, ``UTC``) or, for
``local``, of the host's own /etc/localtime. The copy is the bundle's, bound read-only, so the
image's own file (often a link into its /usr/share/zoneinfo) is not changed, and the container
cannot change the host's.

A name is looked up in the host's /usr/share/zoneinfo and nowhere else: one that leads out of it
(``../../etc/shadow``, or a link in it that points elsewhere) is refused, as is a file that is no
zone file (TZif), so no host file is ever copied into a container by this flag.
"""

from __future__ import annotations

import os

from mrun.errors import InvalidSpec

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

ZONEINFO = "/usr/share/zoneinfo"
LOCAL = "/etc/localtime"
MAGIC = b"TZif"
MOST = 1 << 20  # a zone file is a few KiB


def zone_file(tz: str, zoneinfo: str = ZONEINFO) -> bytes:
    """The zone file ``tz`` names (``local``: the host's own), read whole and checked."""
    said = f"--tz {tz[:100]!r}"
    if tz == "local":
        path = os.path.realpath(LOCAL)
    else:
        if not tz or tz.startswith("/") or "\0" in tz or ".." in tz.split("/") or not tz.isprintable():
            raise InvalidSpec(f"{said}: a zone name of {zoneinfo} (Area/City, UTC, Etc/GMT+3) or local")
        path = os.path.realpath(os.path.join(zoneinfo, tz))
        if not path.startswith(os.path.realpath(zoneinfo) + "/"):
            raise InvalidSpec(f"{said}: no such time zone in {zoneinfo}")
    from mrun.kernel.inroot import read_regular

    try:
        data = read_regular(path, MOST + 1)  # (realpath followed its links already)
    except FileNotFoundError:
        raise InvalidSpec(f"{said}: no such time zone in {zoneinfo}" if tz != "local"
                          else f"{said}: the host has no {LOCAL}") from None
    except OSError as e:
        raise InvalidSpec(f"{said}: {path}: {e.strerror}") from None
    if data is None:
        raise InvalidSpec(f"{said}: no such time zone in {zoneinfo} (not a file)")
    if not data.startswith(MAGIC) or len(data) > MOST:
        raise InvalidSpec(f"{said}: {path} is not a zone file (TZif)")
    return data


def bind(spec: dict[str, Any], bundle: str, tz: str) -> None:
    """The zone's file as the container's /etc/localtime: a copy in ``bundle``, bound read-only."""
    data = zone_file(tz)
    path = os.path.join(bundle, "localtime")
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, 0o644)
    spec["mounts"] = [m for m in spec["mounts"] if m.get("destination") != LOCAL] + [
        {"destination": LOCAL, "type": "bind", "source": path, "options": ["rbind", "ro", "nosuid", "nodev",
                                                                          "noexec"]}]

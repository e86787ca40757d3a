"""What a rename into place may replace.

A file written whole and renamed over its name (a pid file, a saved image) replaces whatever
has that name: ``--pid-file /dev/null`` left the host's /dev/null a file holding a pid. runc's
pid file and docker's ``save -o`` are written the same way and do the same; mrun replaces a
file or a link (a directory the rename itself refuses), never a device, fifo or socket it did
not make. (``export -o`` writes into the name, and removes a half-written archive, and `cp`
replaces what is in its way, as tar does: the same rule keeps both to files and links.)
"""

from __future__ import annotations

import os
import stat  # (os has imported it already)

from mrun.errors import MrunError

_NODES = ((stat.S_IFCHR, "a character device"), (stat.S_IFBLK, "a block device"), (stat.S_IFIFO, "a fifo"),
          (stat.S_IFSOCK, "a socket"))


def node_named(mode: int) -> str:
    """"a character device" and so on for a node mrun never replaces; "" for a file, a link or a
    directory."""
    return next((name for bits, name in _NODES if stat.S_IFMT(mode) == bits), "")


def check_replaceable(path: str, flag: str) -> None:
    """Refuse, naming ``flag``, if a rename onto ``path`` would replace a node that is not a file."""
    try:
        what = node_named(os.lstat(path).st_mode)
    except OSError:
        return  # nothing there (or nothing to be seen: the write will say)
    if what:
        raise MrunError(f"{flag} {path}: {what} is there, not a file mrun would replace")

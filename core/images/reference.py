"""Image references and digests, as docker reads them: pure parsing, no I/O.

Shared by the store (a short name finds its image) and the registry client (where to pull
from), which import this and not each other.
"""

from __future__ import annotations

from mrun.errors import MrunError

DOCKER_HUB = "registry-1.docker.io"


def check_digest(digest: str) -> str:
    """'sha256:<64 hex>' -> the hex part; anything else is refused (it becomes a path)."""
    algo, _, hexpart = digest.partition(":")
    if algo != "sha256" or len(hexpart) != 64 or any(c not in "0123456789abcdef" for c in hexpart):
        raise MrunError(f"unsupported or malformed digest {digest!r} (sha256:<64 hex digits> expected)")
    return hexpart


class Reference:
    """``[host[:port]/]path[:tag][@digest]`` the way docker reads it."""

    def __init__(self, text: str) -> None:
        rest, _, self.digest = text.partition("@")
        first, slash, remainder = rest.partition("/")
        if slash and ("." in first or ":" in first or first == "localhost"):
            self.host, path = first, remainder
        else:
            self.host, path = "docker.io", rest
        repo, _, tag = path.rpartition(":") if ":" in path.rsplit("/", 1)[-1] else (path, "", "")
        self.repository = repo or path
        self.tag = tag or ("" if self.digest else "latest")
        if self.host == "docker.io" and "/" not in self.repository:
            self.repository = f"library/{self.repository}"
        if not self.repository or any(c.isupper() for c in self.repository):
            raise MrunError(f"{text!r} is not a valid image reference")
        if self.digest:
            check_digest(self.digest)

    @property
    def endpoint(self) -> str:
        return DOCKER_HUB if self.host == "docker.io" else self.host

    @property
    def name(self) -> str:
        """How the image is called in the store."""
        return f"{self.host}/{self.repository}" + (f":{self.tag}" if self.tag else f"@{self.digest}")

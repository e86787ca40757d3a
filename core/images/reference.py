"""Image references and digests, as docker reads them: pure parsing, no I/O.

Shared by the store (a short name finds its image) and the registry client (where to pull
from), which import this and not each other.
"""

from __future__ import annotations

from mrun.errors import MrunError
from mrun.scratch import prefixed_hex

DOCKER_HUB = "registry-1.docker.io"
NAME_MAX = 255  # host and repository together, as docker counts them
_LOWER_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")
_ALNUM = _LOWER_ALNUM | frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_TAG_CHARS = _ALNUM | frozenset("_.-")
_IPV6_CHARS = frozenset("0123456789abcdefABCDEF:.")


def has_tag(name: str) -> bool:
    """'host:5000/repo:tag' has a tag, 'host:5000/repo' has none: a colon counts only after the last '/'."""
    return ":" in name.rsplit("/", 1)[-1]


def repository_only(verb: str, text: str) -> None:
    """docker's -a/--all-tags takes a repository: a tag or digest with it is refused, in docker's words."""
    if "@" in text or has_tag(text):
        raise MrunError(f"{verb}: tag can't be used with --all-tags/-a: {text}")


def is_digest(digest: str) -> bool:
    """'sha256:<64 hex>', the only digest mrun takes (and names its blobs and layers by)."""
    return prefixed_hex(digest, "sha256:", 64)


def check_digest(digest: str) -> str:
    """'sha256:<64 hex>' -> the hex part; anything else is refused (it becomes a path)."""
    if not is_digest(digest):
        raise MrunError(f"unsupported or malformed digest {digest!r} (sha256:<64 hex digits> expected)")
    return digest.partition(":")[2]


def tag_problem(tag: str) -> str:
    """What is wrong with ``tag`` by docker's grammar, or ""."""
    if not tag or tag[0] in ".-" or len(tag) > 128 or any(c not in _TAG_CHARS for c in tag):
        return f"tag {tag!r} (letters, digits, '_', '.' and '-', not first; 128 at most)"
    return ""


def _path_component_problem(part: str) -> str:
    """Docker's path component: lowercase letters and digits, runs of them separated by one '.',
    one or two '_', or any number of '-'. Checked rule by rule rather than by docker's regular
    expression, so that the refusal can say which rule the reference breaks."""
    if not part or part[0] not in _LOWER_ALNUM or part[-1] not in _LOWER_ALNUM:
        return f"path component {part!r} must start and end with a lowercase letter or digit"
    i = 0
    while i < len(part):
        j = i
        while j < len(part) and part[j] not in _LOWER_ALNUM:
            j += 1
        separator = part[i:j]
        if separator and separator not in (".", "_", "__") and separator.strip("-"):
            return f"path component {part!r}: {separator!r} is not '.', '_', '__' or dashes"
        while j < len(part) and part[j] in _LOWER_ALNUM:
            j += 1
        i = j
    return ""


def _host_problem(host: str) -> str:
    """A registry host as docker takes it: DNS labels (letters, digits, inner dashes) joined by
    dots, or an IPv6 address in brackets; then perhaps a colon and a port number."""
    if host.startswith("["):
        address, bracket, after = host[1:].partition("]")
        ok = bool(bracket and address) and all(c in _IPV6_CHARS for c in address)
        sep, port = after[:1], after[1:]
        ok = ok and sep in ("", ":")
    else:
        name, sep, port = host.partition(":")
        ok = all(
            label and label[0] != "-" and label[-1] != "-" and all(c in _ALNUM or c == "-" for c in label)
            for label in name.split(".")
        )
    if not ok or sep and not (port.isascii() and port.isdigit()):
        return f"host {host!r} (a DNS name or an [IPv6 address], then perhaps :port)"
    return ""


class Reference:
    """``[host[:port]/]path[:tag][@digest]`` the way docker reads it, refused where docker's
    grammar refuses it: the host and repository become the registry's URL."""

    def __init__(self, text: str) -> None:
        rest, _, self.digest = text.partition("@")
        first, slash, remainder = rest.partition("/")
        if slash and ("." in first or ":" in first or first == "localhost"):
            self.host, path = first, remainder
        else:
            self.host, path = "docker.io", rest
        repo, colon, tag = path.rpartition(":") if has_tag(path) else (path, "", "")
        self.repository = repo or path
        self.tag = tag or ("" if self.digest else "latest")
        self._empty_tag = bool(colon) and not tag  # "name:" is no name with the tag latest
        if self.host == "docker.io" and "/" not in self.repository:
            self.repository = f"library/{self.repository}"
        problem = self._problem()
        if problem:
            raise MrunError(f"{text!r} is not a valid image reference: {problem}")
        if self.digest:
            check_digest(self.digest)

    def _problem(self) -> str:
        if len(self.host) + 1 + len(self.repository) > NAME_MAX:
            return f"the name is longer than {NAME_MAX} characters"
        problem = _host_problem(self.host) if self.host != "docker.io" else ""
        for part in self.repository.split("/"):
            problem = problem or _path_component_problem(part)
        tag = self.tag
        if not problem and self._empty_tag:
            problem = "an empty tag"
        if not problem and tag:
            problem = tag_problem(tag)
        return problem

    @property
    def endpoint(self) -> str:
        return DOCKER_HUB if self.host == "docker.io" else self.host

    @property
    def name(self) -> str:
        """How the image is called in the store."""
        return f"{self.host}/{self.repository}" + (f":{self.tag}" if self.tag else f"@{self.digest}")

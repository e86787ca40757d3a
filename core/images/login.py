"""docker's `login` and `logout`: a registry's credentials checked against it, then kept in the
auth file that `pull` and `push` read them from (images/registry._auth_files).

Kept where they will be read: the first auth file in that reading order already naming the
registry is updated in place, so a stale entry read first cannot shadow the new one; otherwise
``$REGISTRY_AUTH_FILE`` when set (podman's), else docker's ``config.json`` (``$DOCKER_CONFIG``,
``~/.docker``), where docker's own login writes. The file's other keys stay as they were; it is
replaced whole (a link to it followed, as docker follows one), mode 0600. A docker config that
keeps this registry's credentials in a helper (``credsStore``, ``credHelpers``) is refused: mrun
runs no helper, and a password written beside one would sit in plain text where the user chose a
keychain. `logout` removes the registry's entry from every file mrun reads, so none is sent after.
"""

from __future__ import annotations

import os

from mrun import jsonio
from mrun.errors import InvalidSpec, MrunError
from mrun.images.reference import DOCKER_HUB
from mrun.images.registry import HUB_KEY, _auth_files, auth_keys, docker_config
from mrun.units import decimal

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

PID_MAX_LIMIT = 1 << 22  # the kernel's PID_MAX_LIMIT: pid_max may be raised to it, never past
HUB_NAMES = ("", "docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com")


def server_key(server: str | None) -> str:
    """The auth files' key for ``server`` as typed (``localhost:5000``, ``https://reg.example/``,
    nothing for Docker Hub: None where no argument was given): its host[:port], as docker
    stores it."""
    text = (server or "").strip()
    if text.rstrip("/") in ("https://index.docker.io/v1", "https://index.docker.io"):
        return HUB_KEY
    host = text.removeprefix("https://").removeprefix("http://").split("/", 1)[0]
    if host in HUB_NAMES:
        return HUB_KEY
    if not host or any(c.isspace() for c in host) or "@" in host:
        raise InvalidSpec(f"login: {server!r} is not a registry's host[:port]")
    return host


def _keys(key: str) -> list[str]:
    """The keys an auth file may use for ``key``: those `pull` and `push` read (registry.auth_keys)."""
    return auth_keys(DOCKER_HUB if key == HUB_KEY else key)


def _read(path: str) -> dict[str, Any] | None:
    """An auth file's document; None where there is none. One that is not JSON is refused, not
    replaced: it is the user's, and may hold more than credentials."""
    try:
        doc = jsonio.load_file(path)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise MrunError(f"{path}: unreadable as an auth file ({e}); mend or move it") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("auths", {}), dict):
        raise MrunError(f"{path}: not an auth file (an object with an \"auths\" object expected); mend or move it")
    return doc


def _default_file() -> str:
    return os.environ.get("REGISTRY_AUTH_FILE") or docker_config()


def file_for(key: str) -> str:
    """Where ``key``'s credentials go: the first file read that names it, else the default."""
    for path in _auth_files():
        doc = _read(path)
        if doc is not None and any(k in (doc.get("auths") or {}) for k in _keys(key)):
            return path
    return _default_file()


def _write(path: str, doc: dict[str, Any]) -> None:
    """``doc`` as the file at ``path`` (through a link, as docker writes it), whole, mode 0600."""
    real = os.path.realpath(path)
    os.makedirs(os.path.dirname(real), mode=0o700, exist_ok=True)
    _sweep(real)
    tmp = f"{real}.mrun-{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(jsonio.dumps(doc, indent=1) + "\n")
        os.rename(tmp, real)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _sweep(real: str) -> None:
    """The temporary files a login or logout killed before its rename left beside ``real`` (each
    a whole auth file: the passwords in it, beside the user's): those whose process is gone, or
    whose pid is ours now (its O_EXCL create would fail on it). The caller's own only: the
    directory may be shared (REGISTRY_AUTH_FILE in /tmp), and a name alone proves nothing."""
    directory, prefix = os.path.dirname(real), os.path.basename(real) + ".mrun-"
    for entry in os.listdir(directory):
        pid = decimal(entry[len(prefix):-len(".tmp")], PID_MAX_LIMIT) \
            if entry.startswith(prefix) and entry.endswith(".tmp") else None
        path = os.path.join(directory, entry)
        try:
            if not pid or os.lstat(path).st_uid != os.geteuid():
                continue  # no name a login makes (no pid is past the kernel's limit), or another's
            if pid != os.getpid():
                os.kill(pid, 0)
                continue  # a login of that process is writing it
        except ProcessLookupError:
            pass
        except OSError:
            continue
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def _helper(doc: dict[str, Any], key: str) -> str:
    """The credentials helper a docker config names for ``key``, as its field says it; "" for none."""
    helpers = doc.get("credHelpers") if isinstance(doc.get("credHelpers"), dict) else {}
    for k in _keys(key):
        if helpers.get(k):
            return f"credHelpers[{k!r}]: {helpers[k]}"
    return f"credsStore: {doc['credsStore']}" if doc.get("credsStore") else ""


def store(key: str, user: str, password: str) -> str:
    """Keep ``user``/``password`` for ``key``. -> the file."""
    path = file_for(key)
    doc = _read(path) or {}
    helper = _helper(doc, key)
    if helper:
        raise MrunError(f"login: {path} keeps {key}'s credentials in a helper ({helper}), which mrun does not "
                        "run; log in with REGISTRY_AUTH_FILE=FILE, or pass --creds to pull and push")
    auths = {k: v for k, v in (doc.get("auths") or {}).items() if k not in _keys(key)}
    from mrun.images.registry import auth_of

    auths[key] = {"auth": auth_of(user, password)}
    _write(path, {**doc, "auths": auths})
    return path


def forget(key: str) -> list[str]:
    """Remove ``key``'s credentials from every auth file mrun reads. -> the files changed."""
    changed = []
    for path in _auth_files():
        doc = _read(path)
        auths = (doc or {}).get("auths") or {}
        if doc is None or not any(k in auths for k in _keys(key)):
            continue
        _write(path, {**doc, "auths": {k: v for k, v in auths.items() if k not in _keys(key)}})
        changed.append(path)
    return changed


def check(key: str, user: str, password: str, insecure: bool) -> None:
    """The registry answers its base endpoint (/v2/) to these credentials, as docker's login asks."""
    from mrun.images.reference import Reference
    from mrun.images.registry import Registry

    host = "docker.io" if key == HUB_KEY else key
    registry = Registry(Reference(f"{host}/library/login"), insecure, f"{user}:{password}")
    registry.check_login()

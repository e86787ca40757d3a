"""podman's secrets: ``mrun secret create|ls|inspect|rm|exists``, and ``run``/``create --secret``.

A secret is a small blob (at most 512000 bytes, as podman's) kept in the image root, readable by
root alone: ``<image root>/secrets/<name>/`` (0700) holds ``data`` (0600) and ``secret.json``
(its id, labels and times, never its data). A container gets a *copy*, made when it is made, as
podman makes one (so `secret rm` is safe while containers use it, and a secret made again under
the same name changes no container):

* ``type=mount`` (the default): the copy is a file of the bundle's ``secrets/`` directory (0700:
  no one but root reaches it on the host), bind-mounted read-only at ``target``: a path under
  /run/secrets (the secret's name by default), or an absolute one; ``uid``, ``gid`` and ``mode``
  (octal, default 0444) are the file's. Like every bind, its destination is resolved inside the
  rootfs; `commit` and `export` read the container's own layer, where a bind leaves an empty
  file, so the data goes into no image.
* ``type=env``: an environment variable ``target`` (the name by default). Its name is recorded
  (annotation ``ann.SECRET_ENV``) so that `commit` leaves it out of the image and `inspect` does
  not print its value.
"""

from __future__ import annotations

import os
import time

from mrun import annotations as ann
from mrun import jsonio
from mrun.errors import InvalidSpec, MrunError, NotFound

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

MAX_DATA = 512000  # podman's limit, bytes
DATA = "data"
RECORD = "secret.json"
NEW = ".new-"  # a secret being made: renamed to its name whole, or not at all
GONE = ".gone-"  # a secret being removed
DEFAULT_MODE = 0o444
MOUNT_DIR = "/run/secrets"
HIDDEN = "*******"  # what inspect shows of an env secret's value


def top(image_root: str) -> str:
    return os.path.join(image_root, "secrets")


def check_name(name: str) -> None:
    """podman's rule: a letter or digit, then letters, digits, '_', '.', '-'; at most 253."""
    if not (name[:1].isalnum() and name.isascii() and len(name) <= 253
            and name.replace("_", "a").replace(".", "a").replace("-", "a").isalnum()):
        raise InvalidSpec(f"secret name {name[:100]!r}: letters, digits, '_', '.' and '-' (a letter or digit "
                          "first), at most 253")


def check_data(data: bytes, what: str) -> None:
    if not 0 < len(data) <= MAX_DATA:
        size = "none" if not data else f"more than {MAX_DATA}"
        raise InvalidSpec(f"{what}: a secret's data is 1 to {MAX_DATA} bytes (this has {size})")


def create(image_root: str, name: str, data: bytes, labels: dict[str, str] | None = None,
           replace: bool = False) -> str:
    """The secret ``name`` with ``data``, made whole (written beside, then renamed into place).
    ``replace``: one of that name is replaced (its containers keep their copies). -> its id."""
    from mrun.kernel.syscalls import rename_noreplace
    from mrun.kernel.tree import remove_tree

    check_name(name)
    check_data(data, f"secret {name}")
    base = top(image_root)
    os.makedirs(base, mode=0o700, exist_ok=True)
    os.chmod(base, 0o700)  # (one made by an older mrun or by hand: never readable by others)
    _sweep(base)
    new = os.path.join(base, _scratch(NEW))
    os.mkdir(new, 0o700)
    try:
        fd = os.open(os.path.join(new, DATA), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600)
        with open(fd, "wb") as f:
            f.write(data)
        now = _now()
        secret_id = os.urandom(13).hex()[:25]  # podman's ids: 25 hex digits
        jsonio.write_file(os.path.join(new, RECORD), {"ID": secret_id, "Name": name, "Driver": "file",
                                                      "Labels": labels or {}, "CreatedAt": now, "UpdatedAt": now})
        target = os.path.join(base, name)
        try:
            rename_noreplace(new, target)
        except FileExistsError:
            if not replace:
                raise MrunError(f"secret name {name!r} is in use already (mrun secret rm {name}, or "
                                "secret create --replace)") from None
            _remove(base, name)
            try:
                rename_noreplace(new, target)
            except FileExistsError:  # made again meanwhile, by another create
                raise MrunError(f"secret name {name!r} was taken by another `secret create` meanwhile") from None
        return secret_id
    finally:
        remove_tree(new, ignore_errors=True)  # what is left of it when it was not renamed


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _scratch(prefix: str) -> str:
    """A directory being made (NEW) or removed (GONE): the prefix, our pid and 8 random hex digits."""
    return f"{prefix}{os.getpid()}-{os.urandom(4).hex()}"


def _sweep(base: str) -> None:
    """What a killed create or rm left: its directory of ``_scratch``'s shape alone (a name of
    another shape is someone else's, in a root shared by mistake), once its maker is gone (a
    create or rm under way is left alone)."""
    from mrun.kernel.tree import remove_tree
    from mrun.scratch import prefixed_hex

    for entry in os.listdir(base):
        for prefix in (NEW, GONE):
            pid, dash, rest = entry.removeprefix(prefix).partition("-")
            if entry.startswith(prefix) and pid.isascii() and pid.isdigit() and dash \
                    and prefixed_hex(rest, "", 8) and not os.path.exists(f"/proc/{pid}"):
                remove_tree(os.path.join(base, entry), ignore_errors=True)


def names(image_root: str) -> list[str]:
    try:
        entries = os.listdir(top(image_root))
    except FileNotFoundError:
        return []
    return sorted(e for e in entries if not e.startswith(".") and _record(image_root, e) is not None)


def _record(image_root: str, name: str) -> dict[str, Any] | None:
    record = jsonio.load_object(os.path.join(top(image_root), name, RECORD))
    return record if isinstance(record, dict) and record.get("Name") == name else None


def find(image_root: str, given: str) -> str:
    """The secret ``given`` names: by its name, else by its id or a prefix of one id alone."""
    if not given or "/" in given or given.startswith("."):
        raise NotFound(f"no such secret: {given!r}")
    if _record(image_root, given) is not None:
        return given
    matches = [n for n in names(image_root) if str((_record(image_root, n) or {}).get("ID", "")).startswith(given)]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise InvalidSpec(f"secret {given!r}: more than one secret's id starts so ({', '.join(matches)})")
    raise NotFound(f"no such secret: {given!r}")


def describe(image_root: str, name: str, show: bool = False) -> dict[str, Any]:
    """podman's secret inspect shape; its data only when asked (``show``: --showsecret)."""
    record = _record(image_root, name)
    if record is None:
        raise NotFound(f"no such secret: {name!r}")
    out = {"ID": record.get("ID", ""), "CreatedAt": record.get("CreatedAt", ""),
           "UpdatedAt": record.get("UpdatedAt", ""),
           "Spec": {"Name": name, "Driver": {"Name": "file", "Options": {}}, "Labels": record.get("Labels") or {}}}
    if show:
        out["SecretData"] = read(image_root, name).decode(errors="replace")
    return out


def read(image_root: str, name: str) -> bytes:
    """The secret's data, read from our own file (not through a link someone put there)."""
    from mrun.kernel.inroot import read_regular

    path = os.path.join(top(image_root), name, DATA)
    try:
        data = read_regular(path, MAX_DATA + 1)
    except FileNotFoundError:
        raise NotFound(f"no such secret: {name!r}") from None
    except OSError as e:
        raise MrunError(f"secret {name!r}: {path}: {e.strerror}") from None
    if data is None:  # a link where our file was (put there by hand): never followed
        raise MrunError(f"secret {name!r}: {path}: not a regular file")
    check_data(data, f"secret {name}")  # (a store file changed by hand)
    return data


def remove(image_root: str, name: str) -> None:
    if _record(image_root, name) is None:
        raise NotFound(f"no such secret: {name!r}")
    _remove(top(image_root), name)


def _remove(base: str, name: str) -> None:
    """Renamed out of the way first: a secret is there whole or not at all."""
    from mrun.kernel.tree import remove_tree

    gone = os.path.join(base, _scratch(GONE))
    try:
        os.rename(os.path.join(base, name), gone)
    except FileNotFoundError:
        raise NotFound(f"no such secret: {name!r}") from None
    remove_tree(gone, ignore_errors=True)


# --secret NAME[,type=mount|env][,target=T][,uid=N][,gid=N][,mode=OCTAL]

def parse_flag(text: str) -> dict[str, Any]:
    """One --secret, checked before anything is made: -> {source, type, target, uid, gid, mode}."""
    from mrun.spec import MAX_ID

    what = f"--secret {text[:200]!r}"
    source, *options = text.split(",")
    if not source:
        raise InvalidSpec(f"{what}: the secret's name comes first")
    if "/" in source or source.startswith("."):  # no name nor id is so (check_name)
        raise NotFound(f"{what}: no such secret: {source[:100]!r}")
    want: dict[str, Any] = {"source": source, "type": "mount", "target": "", "uid": 0, "gid": 0,
                            "mode": DEFAULT_MODE}
    mount_only = []
    for option in options:
        key, eq, value = option.partition("=")
        if not eq or key not in ("type", "target", "uid", "gid", "mode") or (not value and key != "target"):
            raise InvalidSpec(f"{what}: {option!r}: type=mount|env, target=, uid=, gid= or mode= expected")
        if key == "type":
            if value not in ("mount", "env"):
                raise InvalidSpec(f"{what}: type={value}: mount or env")
            want["type"] = value
        elif key == "target":
            want["target"] = value
        else:
            mount_only.append(key)
            try:
                number = int(value, 8 if key == "mode" else 10)
            except ValueError:
                number = -1
            limit = 0o777 if key == "mode" else MAX_ID
            if not 0 <= number <= limit or not value.isdigit():
                raise InvalidSpec(f"{what}: {key}={value}: " + ("an octal mode up to 0777" if key == "mode"
                                                                 else f"a number from 0 to {MAX_ID}"))
            want[key] = number
    if want["type"] == "env":
        if mount_only:
            raise InvalidSpec(f"{what}: {', '.join(mount_only)}: for type=mount only")
        name = want["target"] or source
        if "=" in name or "\0" in name or not name:
            raise InvalidSpec(f"{what}: target={name!r} is no environment variable name")
        want["target"] = name
    else:
        want["target"] = _mount_target(what, want["target"] or source)
    return want


def _mount_target(what: str, target: str) -> str:
    """An absolute target as given; else a path under /run/secrets, which it may not leave."""
    if "\0" in target:
        raise InvalidSpec(f"{what}: target: a path has no NUL")
    if target.startswith("/"):
        path = os.path.normpath(target)
        if path == "/":
            raise InvalidSpec(f"{what}: target=/: a secret is a file, not the container's root")
        return path
    if ".." in target.split("/"):
        raise InvalidSpec(f"{what}: target={target!r}: a path under {MOUNT_DIR} (or an absolute one), "
                          "without '..'")
    return os.path.normpath(os.path.join(MOUNT_DIR, target))


def _found(image_root: str, given: str) -> str:
    try:
        return find(image_root, given)
    except MrunError as e:
        raise type(e)(f"--secret {given[:100]!r}: {e}") from None


def apply(spec: dict[str, Any], bundle: str, image_root: str, wanted: list[dict[str, Any]]) -> None:
    """Each wanted secret into ``spec``: a copy bound at its target, or a variable of its
    process's environment. Every secret is found before anything is written."""
    found = [(want, _found(image_root, want["source"])) for want in wanted]
    if not found:
        return
    variables = []
    held = os.path.join(bundle, "secrets")
    for n, (want, name) in enumerate(found):
        data = read(image_root, name)
        if want["type"] == "env":
            if b"\0" in data:  # (refused later too, but in words that print the value)
                raise InvalidSpec(f"--secret {want['source']!r}: type=env: its data holds a NUL byte, which no "
                                  "environment variable can")
            key = want["target"]
            env = [e for e in spec["process"].get("env") or [] if e.partition("=")[0] != key]
            spec["process"]["env"] = [*env, f"{key}={data.decode('utf-8', 'surrogateescape')}"]
            variables.append(key)
            continue
        os.makedirs(held, mode=0o700, exist_ok=True)
        copy = os.path.join(held, str(n))
        fd = os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        with open(fd, "wb") as f:
            f.write(data)
            os.fchown(f.fileno(), want["uid"], want["gid"])
            os.fchmod(f.fileno(), want["mode"])
        spec["mounts"] = [m for m in spec["mounts"] if os.path.normpath(m.get("destination", "")) != want["target"]]
        spec["mounts"].append({"destination": want["target"], "type": "bind", "source": copy,
                               "options": ["rbind", "ro", "nosuid", "nodev", "noexec"]})
    if variables:
        spec["annotations"][ann.SECRET_ENV] = ",".join(dict.fromkeys(variables))


def env_names(annotations: dict[str, Any]) -> set[str]:
    """The variables a container's --secret type=env set (commit leaves them out; inspect hides them)."""
    value = annotations.get(ann.SECRET_ENV) if isinstance(annotations, dict) else None
    return {n for n in value.split(",") if n} if isinstance(value, str) else set()


def hidden(env: list[Any], annotations: dict[str, Any]) -> list[Any]:
    """``env`` with each secret variable's value shown as HIDDEN."""
    secret = env_names(annotations)
    if not secret:
        return env
    return [f"{e.partition('=')[0]}={HIDDEN}" if isinstance(e, str) and e.partition("=")[0] in secret else e
            for e in env]


def left_out(process: dict[str, Any], annotations: dict[str, Any]) -> dict[str, Any]:
    """``process`` without the variables --secret type=env set: what `commit` puts in an image."""
    secret = env_names(annotations)
    if not secret:
        return process
    return {**process, "env": [e for e in process.get("env") or [] if not (isinstance(e, str)
                                                                         and e.partition("=")[0] in secret)]}

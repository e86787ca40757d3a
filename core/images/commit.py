"""docker's ``commit``: a new image from a container's changes over its image.

The container's overlay upper directory (what it changed) becomes one more layer: written as a
tar by descriptor (``kernel.fdtar``: nothing it holds is followed or opened as a device), its
deletions as whiteout files, hashed as it is written, stored as an uncompressed OCI layer and
unpacked as any pulled layer is (``install``'s checks apply to it). The files mrun mounted on
(the network's hosts, hostname and resolv.conf, volume targets) are left out, as docker's init
layer keeps them out of its commits. The new config is the image's with the layer added, a
history entry, the container's command and environment (as docker's commit takes the
container's config), then ``--change`` instructions over it."""

from __future__ import annotations

import hashlib
import os
from contextlib import nullcontext

from mrun import jsonio
from mrun.errors import InvalidSpec, MrunError, name_the_file
from mrun.images.store import ImageStore, normalize
from mrun.kernel.fdpass import write_all

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from mrun import bundles

LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
CHANGES = ("CMD", "ENTRYPOINT", "ENV", "EXPOSE", "LABEL", "USER", "WORKDIR", "VOLUME", "STOPSIGNAL", "HEALTHCHECK",
           "ONBUILD")  # moby's validCommitCommands


class _Hashing:
    """The layer's file, and its sha256, as tarfile writes it."""

    def __init__(self, fd: int) -> None:
        self.fd, self.hash, self.size = fd, hashlib.sha256(), 0

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        write_all(self.fd, data)
        self.size += len(data)
        return len(data)


def commit(store: ImageStore, base: str, upper: str, name: str, leave_out: list[str],
           process: dict[str, Any], message: str = "", author: str = "", changes: list[str] | None = None,
           reading: bundles.reading | None = None) -> str:
    """The image ``name`` (normalised) made of the image whose config is ``base`` and the changes in
    ``upper``, read under ``reading`` (what keeps them there meanwhile). -> its id."""
    from mrun.images.install import _unpack_layer
    from mrun.kernel import fdtar
    from mrun.state import now_rfc3339

    instructions = [parse_change(text) for text in changes or ()]  # checked before anything is written
    entry = next((e for e in store.index().values() if e.get("config") == base), None)
    if entry is None:
        raise MrunError(f"commit: the container's image ({base[:19]}) is no longer in the store")
    config = store.read_json(entry["config"])
    manifest = store.read_json(entry["manifest"])
    ran = _container_config(config, process, instructions)  # a change refused here leaves no layer

    def fill(out: _Hashing) -> None:
        top = os.open(upper, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            fdtar.write_tree(top, out, frozenset(p.strip("/") for p in leave_out), whiteouts=True)
        finally:
            os.close(top)

    with reading or nullcontext():
        written = write_layer(store, fill)
    with written, store.lock():
        if reading is not None and reading.released:  # while we read: a part of its changes is no image
            raise MrunError("commit: the container was removed while its changes were read")
        written.store_in(store)
        layer, diff_id = written.descriptor, written.digest
        if not store.has_layer(diff_id):
            _unpack_layer(store, layer, diff_id)
        now = now_rfc3339()
        config = _new_config(config, ran, diff_id, now, message, author)
        config_digest, manifest_digest = put_image(store, config, [*(manifest.get("layers") or []), layer])
        index = store.index()
        index[normalize(name)] = {
            **entry,
            "manifest": manifest_digest,
            "config": config_digest,
            "layers": [*entry["layers"], diff_id],
            "blobs": [manifest_digest, config_digest, *entry["blobs"][2:], diff_id],
            "created": now,
            "size": entry.get("size", 0) + written.size,
        }
        store.save_index(index)
    return config_digest


def put_image(store: ImageStore, config: dict[str, Any], layers: list[dict[str, Any]]) -> tuple[str, str]:
    """``config`` and an OCI manifest of it and ``layers`` (their descriptors) stored as blobs.
    -> (the config's digest, the manifest's)."""
    config_digest = store.put_bytes(jsonio.dumps(config).encode())
    manifest = {"schemaVersion": 2, "mediaType": MANIFEST,
                "config": {"mediaType": CONFIG, "digest": config_digest,
                           "size": os.path.getsize(store.blob_path(config_digest))},
                "layers": layers}
    return config_digest, store.put_bytes(jsonio.dumps(manifest).encode())


class WrittenLayer:
    """A layer blob written (``write_layer``) and not yet stored under its digest: that is
    ``store_in``'s, with the store's lock held, with the image that refers to it. Stored before
    the lock, as it was, a prune between took it for a blob no image uses, and the commit
    (import) then failed on "No such file or directory". Used as a statement (``with layer:``),
    one never stored is removed."""

    def __init__(self, tmp: str, descriptor: dict[str, Any]) -> None:
        self.tmp, self.descriptor = tmp, descriptor
        self.digest, self.size = descriptor["digest"], descriptor["size"]

    def store_in(self, store: ImageStore) -> None:
        os.rename(self.tmp, store.blob_path(self.digest))

    def __enter__(self) -> WrittenLayer:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            os.unlink(self.tmp)
        except FileNotFoundError:
            pass  # stored


def write_layer(store: ImageStore, fill: Callable[[_Hashing], None]) -> WrittenLayer:
    """An uncompressed layer blob, what ``fill`` writes into it, under a name the store's sweep
    leaves alone while we live and removes once we are gone (killed midway), and prune never
    takes. Written before the store's lock is taken (it may be long)."""
    os.makedirs(store.blobs, mode=0o700, exist_ok=True)
    tmp = os.path.join(store.blobs, f"commit-{os.getpid()}.layer")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        out = _Hashing(fd)
        fill(out)
        os.fsync(fd)
    except BaseException as e:
        os.unlink(tmp)
        if isinstance(e, OSError):
            name_the_file(e, store.blobs)  # a full disk: say where
        raise
    finally:
        os.close(fd)
    return WrittenLayer(tmp, {"mediaType": LAYER_TAR, "digest": "sha256:" + out.hash.hexdigest(), "size": out.size})


def _container_config(config: dict[str, Any], process: dict[str, Any],
                      instructions: list[tuple[str, Any]]) -> dict[str, Any]:
    """The image config's ``config`` as the container ran it, the --change instructions over it."""
    cfg = dict(config.get("config") or {})
    args = list(process.get("args") or [])
    entrypoint = list(cfg.get("Entrypoint") or [])
    cfg["Cmd"] = args[len(entrypoint):] if entrypoint and args[:len(entrypoint)] == entrypoint else args
    if not entrypoint or args[:len(entrypoint)] != entrypoint:
        cfg["Entrypoint"] = None
    image_env = list(cfg.get("Env") or [])
    cfg["Env"] = [e for e in process.get("env") or image_env  # docker's run-time defaults stay out
                  if e in image_env or not e.startswith(("HOSTNAME=", "TERM="))]
    return apply_changes(cfg, instructions)


def _new_config(config: dict[str, Any], cfg: dict[str, Any], diff_id: str, now: str, message: str,
                author: str) -> dict[str, Any]:
    config = dict(config)
    config["config"] = cfg
    config["created"] = now
    if author:
        config["author"] = author
    config["rootfs"] = {"type": "layers", "diff_ids": [*((config.get("rootfs") or {}).get("diff_ids") or []), diff_id]}
    entry = {"created": now, "created_by": "mrun commit", **({"comment": message} if message else {}),
             **({"author": author} if author else {})}
    config["history"] = [*(config.get("history") or []), entry]
    return config


def parse_change(text: str) -> tuple[str, Any]:
    """A --change instruction, Dockerfile style: CMD/ENTRYPOINT (JSON or shell form), ENV K=V,
    EXPOSE 80/tcp, LABEL K=V, USER, WORKDIR, VOLUME, STOPSIGNAL, HEALTHCHECK, ONBUILD."""
    keyword, _, rest = text.strip().partition(" ")
    keyword, rest = keyword.upper(), rest.strip()
    if keyword not in CHANGES or not rest:
        raise InvalidSpec(f"--change {text!r}: {' | '.join(CHANGES)} and a value (Dockerfile style)")
    if keyword in ("CMD", "ENTRYPOINT", "VOLUME"):
        if rest.startswith("["):
            try:
                value = jsonio.loads(rest)
            except ValueError:
                value = None
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise InvalidSpec(f"--change {text!r}: a JSON list of strings")
        else:
            value = rest.split() if keyword == "VOLUME" else ["/bin/sh", "-c", rest]
        return keyword, (value, text) if keyword == "VOLUME" else value
    if keyword == "HEALTHCHECK":
        return keyword, _healthcheck(rest, text)
    if keyword == "ONBUILD":
        trigger, _, what = rest.partition(" ")
        if trigger.upper() in ("ONBUILD", "FROM", "MAINTAINER"):  # docker's refusals
            raise InvalidSpec(f"--change {text!r}: {trigger.upper()} isn't allowed as an ONBUILD trigger")
        return keyword, f"{trigger.upper()} {what.strip()}".strip()
    # the rest take variables as a Dockerfile's do: their words are read when the change applies
    # (``apply_changes``), which commit and import do before they write anything
    return keyword, (rest, text)


def _pairs(rest: str, text: str, env: dict[str, str]) -> list[tuple[str, str]]:
    """ENV's and LABEL's KEY=VALUE words as a Dockerfile reads them (``_words``), or docker's
    legacy ``KEY value with spaces``: one pair, the rest the value. ``env``: the variables the
    values may name (the config's as it stands)."""
    words = _words(rest, env, text)
    if words and "=" not in words[0]:
        key, _, value = rest.partition(" ")
        if not value.strip():
            raise InvalidSpec(f"--change {text!r}: KEY=VALUE ..., or KEY and a value")
        return [(key, _words(value.strip(), env, text, split=False)[0])]  # its blanks kept, as docker's
    pairs = []
    for word in words:
        key, eq, value = word.partition("=")
        if not key or not eq:
            raise InvalidSpec(f"--change {text!r}: KEY=VALUE ...")
        pairs.append((key, value))
    return pairs


def _words(line: str, env: dict[str, str], text: str, split: bool = True) -> list[str]:
    """The words of ``line`` as docker's Dockerfile lexer gives them: split on blanks outside
    quotes; quotes group and go; a backslash takes the next character as it is (in double quotes
    only before $, " and itself); $VAR, ${VAR}, ${VAR:-word} and ${VAR:+word} replaced from
    ``env`` except in single quotes. ``split`` False: one word, its blanks kept (ProcessWord's)."""
    words: list[str] = []
    word: list[str] | None = None
    quote, i = "", 0
    while i < len(line):
        c = line[i]
        if not quote and split and c in " \t":
            if word is not None:
                words.append("".join(word))
                word = None
            i += 1
            continue
        word = [] if word is None else word
        if c == "'" and quote != '"' or c == '"' and quote != "'":
            quote = "" if quote == c else c
        elif c == "\\" and quote != "'" and i + 1 < len(line):
            if quote == '"' and line[i + 1] not in '$"\\':
                word.append(c)
            else:
                i += 1
                word.append(line[i])
        elif c == "$" and quote != "'":
            value, i = _variable(line, i, env, text)
            word.append(value)
            continue
        else:
            word.append(c)
        i += 1
    if quote:
        raise InvalidSpec(f"--change {text!r}: no closing quotation")
    if word is not None:
        words.append("".join(word))
    return words or ([""] if not split else [])


def _variable(line: str, at: int, env: dict[str, str], text: str) -> tuple[str, int]:
    """The variable at ``line[at]`` ('$') -> (its value, the index after it)."""
    name_chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_"
    if line[at + 1:at + 2] == "{":
        end = line.find("}", at + 2)
        if end < 0:
            raise InvalidSpec(f"--change {text!r}: a ${{ with no closing }}")
        inner = line[at + 2:end]
        name, sep, word = inner.partition(":")
        if sep and word[:1] in ("-", "+"):
            given = env.get(name, "")
            value = (given or word[1:]) if word[0] == "-" else (word[1:] if given else "")
        elif sep or not name or any(ch not in name_chars for ch in name):
            raise InvalidSpec(f"--change {text!r}: ${{{inner}}} is not a variable (${{VAR}}, ${{VAR:-word}}, "
                              "${VAR:+word})")
        else:
            value = env.get(name, "")
        return value, end + 1
    end = at + 1
    while end < len(line) and line[end] in name_chars:
        end += 1
    if end == at + 1:
        return "$", end  # a lone $ stays
    return env.get(line[at + 1:end], ""), end


_HEALTH_OPTIONS = {"interval": "Interval", "timeout": "Timeout", "start-period": "StartPeriod",
                   "start-interval": "StartInterval", "retries": "Retries"}


def _healthcheck(rest: str, text: str) -> dict[str, Any]:
    """``HEALTHCHECK [--OPTION=VALUE...] CMD command | CMD ["exec", ...] | NONE`` as docker keeps
    it in Config.Healthcheck: durations in nanoseconds, a field left out where 0 (its default)."""
    from mrun.units import decimal, go_duration

    check: dict[str, Any] = {}
    words = rest.split(None, 1)
    while words and words[0].startswith("--"):
        name, eq, value = words[0][2:].partition("=")
        if name not in _HEALTH_OPTIONS or not eq:
            raise InvalidSpec(f"--change {text!r}: --{name}: HEALTHCHECK takes --{'=, --'.join(_HEALTH_OPTIONS)}=")
        if name == "retries":
            amount = decimal(value)
            if amount is None:
                raise InvalidSpec(f"--change {text!r}: --retries cannot be negative, or anything but a number")
        else:
            seconds = go_duration(value)
            if seconds is None or 0 < seconds < 0.001:
                raise InvalidSpec(f"--change {text!r}: --{name} {value!r}: a duration of 1ms or more (30s, 500ms)")
            amount = round(seconds * 1e9)
        if amount:
            check[_HEALTH_OPTIONS[name]] = amount
        words = words[1].split(None, 1) if len(words) > 1 else []
    kind = words[0].upper() if words else ""
    command = words[1].strip() if len(words) > 1 else ""
    if kind == "NONE":
        if command or check:
            raise InvalidSpec(f"--change {text!r}: HEALTHCHECK NONE takes no options and nothing after it")
        return {"Test": ["NONE"]}
    if kind != "CMD":
        raise InvalidSpec(f"--change {text!r}: HEALTHCHECK takes CMD or NONE")
    if not command:
        raise InvalidSpec(f"--change {text!r}: HEALTHCHECK CMD needs a command")
    if command.startswith("["):
        try:
            argv = jsonio.loads(command)
        except ValueError:
            argv = None
        if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
            raise InvalidSpec(f"--change {text!r}: HEALTHCHECK CMD: a JSON list of strings")
        return {"Test": ["CMD", *argv], **check}
    return {"Test": ["CMD-SHELL", command], **check}


def apply_changes(cfg: dict[str, Any], instructions: list[tuple[str, Any]]) -> dict[str, Any]:
    """``cfg`` (an image config's ``config``) with each instruction (``parse_change``'s) applied
    in turn, each seeing the variables the ones before it set. -> ``cfg``."""
    for keyword, value in instructions:
        apply_change(cfg, keyword, value)
    return cfg


def apply_change(cfg: dict[str, Any], keyword: str, value: Any) -> None:
    if keyword == "CMD":
        cfg["Cmd"] = value
    elif keyword == "ENTRYPOINT":
        cfg["Entrypoint"] = value
    elif keyword == "ENV":
        pairs = _pairs(*value, _env_of(cfg))  # every value sees the variables before the instruction
        env = [e for e in cfg.get("Env") or [] if e.partition("=")[0] not in {k for k, _v in pairs}]
        cfg["Env"] = env + [f"{k}={v}" for k, v in pairs]
    elif keyword == "LABEL":
        cfg["Labels"] = {**(cfg.get("Labels") or {}), **dict(_pairs(*value, _env_of(cfg)))}
    elif keyword == "HEALTHCHECK":
        cfg["Healthcheck"] = value
    elif keyword == "ONBUILD":
        cfg["OnBuild"] = [*(cfg.get("OnBuild") or []), value]
    else:
        _apply_word_change(cfg, keyword, *value)


def _apply_word_change(cfg: dict[str, Any], keyword: str, given: str | list[str], text: str) -> None:
    """WORKDIR, USER, STOPSIGNAL (the rest as one word), EXPOSE and VOLUME (each word): variables
    read from the config as it stands, quotes and escapes taken away, as docker's builder does."""
    env = _env_of(cfg)
    words = [given] if keyword in ("WORKDIR", "USER", "STOPSIGNAL") else given.split() if isinstance(given, str) \
        else given
    values = [_words(word, env, text, split=False)[0] for word in words]
    if keyword == "WORKDIR":
        cfg["WorkingDir"] = os.path.join(cfg.get("WorkingDir") or "/", values[0])  # relative: under the last (docker's)
    elif keyword == "EXPOSE":
        from mrun.images.run_flags import exposed

        exposed(values, "--change EXPOSE")  # docker refuses one at commit; run -P refused the image after
        cfg["ExposedPorts"] = {**(cfg.get("ExposedPorts") or {}), **{p if "/" in p else f"{p}/tcp": {} for p in values}}
    elif keyword == "VOLUME":
        if "" in (v.strip() for v in values):
            raise InvalidSpec(f"--change {text!r}: VOLUME specified can not be an empty string")
        cfg["Volumes"] = {**(cfg.get("Volumes") or {}), **dict.fromkeys((v.strip() for v in values), {})}
    elif keyword == "STOPSIGNAL":
        from mrun.kernel.proc import parse_signal

        try:
            parse_signal(values[0])  # docker refuses one at commit; `mrun stop` warned of it after
        except MrunError as e:
            raise InvalidSpec(f"--change {text!r}: {e}") from None
        cfg["StopSignal"] = values[0]
    else:
        cfg["User"] = values[0]


def _env_of(cfg: dict[str, Any]) -> dict[str, str]:
    return dict(e.partition("=")[::2] for e in cfg.get("Env") or [] if isinstance(e, str))


def check_name(name: str, verb: str = "commit") -> None:
    from mrun.images.reference import Reference

    if not name or "@" in name:
        raise InvalidSpec(f"{verb}: name the new image, NAME[:TAG] (mrun keeps no unnamed images)")
    try:
        Reference(name)
    except MrunError as e:
        raise InvalidSpec(f"{verb}: {e}") from None

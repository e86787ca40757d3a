"""podman's `secret create|ls|inspect|rm|exists` over the image root's secrets (mrun.images.secrets)."""

from __future__ import annotations

import os
import sys

from mrun import jsonio
from mrun.errors import InvalidSpec, NotFound

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_OWN_FLAGS = {"label": "create", "env": "create", "replace": "create", "showsecret": "inspect", "all": "rm",
              "quiet": "ls", "filter": "ls"}


def secret(g: dict[str, Any], action: str, names: list[str], quiet: bool = False, all: bool = False,  # noqa: A002
           ignore: bool = False, format: str = "", label: tuple[str, ...] = (),  # noqa: A002
           driver: str = "file", env: bool = False, replace: bool = False, showsecret: bool = False,
           filter: tuple[str, ...] = ()) -> int:  # noqa: A002
    from mrun.images import secrets

    root = g["image_root"]
    action = "ls" if action == "list" else action
    given = {"label": label, "env": env, "replace": replace, "showsecret": showsecret, "all": all,
             "ignore": ignore, "quiet": quiet, "filter": filter}
    for flag, verb in _OWN_FLAGS.items():
        if given[flag] and action != verb:
            raise InvalidSpec(f"secret {action}: --{flag} is {verb}'s")
    if ignore and action not in ("create", "rm"):
        raise InvalidSpec(f"secret {action}: --ignore is create's and rm's")
    if driver != "file":
        raise InvalidSpec(f"secret create --driver {driver}: file is the one driver")
    if action == "create":
        return _create(root, names, label, env, replace, ignore)
    if action == "ls":
        if names:
            raise InvalidSpec("secret ls: takes no names (--filter name=TEXT)")
        wanted = _wanted(root, list(filter))
        found = [n for n in secrets.names(root) if wanted(n)]
        described = [secrets.describe(root, n) for n in found]
        if quiet:
            for d in described:
                print(d["ID"])
        elif format == "json":
            print(jsonio.dumps(described, indent=2))
        elif format not in ("", "table"):
            _templated(format, described)
        else:
            from mrun.cli.common import print_table

            print_table([("ID", "NAME", "DRIVER", "CREATED", "UPDATED")] + [
                (d["ID"], d["Spec"]["Name"], "file", d["CreatedAt"], d["UpdatedAt"]) for d in described])
        return 0
    if action in ("inspect", "exists") and not names:
        raise InvalidSpec(f"secret {action}: name a secret")
    if action == "exists":
        if len(names) != 1:
            raise InvalidSpec("secret exists: one secret")
        try:
            secrets.find(root, names[0])
        except NotFound:
            return 1
        return 0
    if action == "inspect":
        described = [secrets.describe(root, secrets.find(root, n), showsecret) for n in names]  # each found first
        if format not in ("", "json"):
            _templated(format, described)
        else:
            print(jsonio.dumps(described, indent=2))
        return 0
    if action == "rm":
        return _rm(root, names, all, ignore)
    raise InvalidSpec(f"secret: unknown action {action!r} (create, ls, inspect, rm or exists)")


def _create(root: str, names: list[str], label: tuple[str, ...], env: bool, replace: bool, ignore: bool) -> int:
    from mrun.images import secrets
    from mrun.images.run_flags import create_labels

    if len(names) != 2:
        raise InvalidSpec("secret create: NAME and FILE (or - for stdin; with --env, a variable's name)")
    if ignore and replace:
        raise InvalidSpec("secret create: --ignore and --replace: one or the other")  # podman's rule
    name, source = names
    secrets.check_name(name)
    if ignore and name in secrets.names(root):  # podman's: the one there, its id, and its data unread
        print(secrets.describe(root, name)["ID"])
        return 0
    if env:
        if source not in os.environ:
            raise InvalidSpec(f"secret create --env: no environment variable {source!r}")
        data = os.fsencode(os.environ[source])
    elif source == "-":
        data = sys.stdin.buffer.read(secrets.MAX_DATA + 1)
    else:
        data = _read_file(source, secrets.MAX_DATA + 1)
    print(secrets.create(root, name, data, create_labels(label), replace))
    return 0


def _read_file(path: str, limit: int) -> bytes:
    """The file's first ``limit`` bytes; a fifo or a device is refused, and never opened (its read
    could hold us up for good, or never end; its open runs a driver's)."""
    from mrun.kernel.inroot import read_regular

    try:
        data = read_regular(path, limit, follow=True)
    except OSError as e:
        raise InvalidSpec(f"secret create: {path}: {e.strerror}") from None
    if data is None:
        raise InvalidSpec(f"secret create: {path}: not a regular file (or - for stdin)")
    return data


def _rm(root: str, names: list[str], every: bool, ignore: bool) -> int:
    from mrun.errors import one_line
    from mrun.images import secrets

    if every == bool(names):
        raise InvalidSpec("secret rm: name secrets, or --all")
    status = 0
    for given in secrets.names(root) if every else names:
        try:
            name = secrets.find(root, given)
            described = secrets.describe(root, name)
            secrets.remove(root, name)
        except NotFound as e:
            if not ignore:
                print(f"mrun: {one_line(str(e))}", file=sys.stderr)
                status = 1
            continue
        print(described["ID"])
    return status


def _wanted(root: str, filters: list[str]) -> Any:
    """podman's secret ls --filter: name=TEXT (in the name), id=TEXT (an id's start),
    label=KEY[=VALUE]; checked before any secret is looked at. -> whether a secret (a name) is listed."""
    from mrun.cli.common import filter_pairs
    from mrun.cli.filters import labelled
    from mrun.images import secrets

    pairs = filter_pairs(filters, ("name", "id", "label"), "secret ls takes name=TEXT, id=TEXT or label=KEY[=VALUE]")

    def wanted(name: str) -> bool:
        described = secrets.describe(root, name)
        return all(value in name if key == "name" else described["ID"].startswith(value) if key == "id"
                   else labelled(described["Spec"]["Labels"], value) for _text, key, value in pairs)

    return wanted


def _templated(template: str, described: list[dict[str, Any]]) -> None:
    """A Go template over podman's inspect shape ({{.ID}}, {{.Spec.Name}}), with ls's columns
    ({{.Name}}, {{.Driver}}, {{.CreatedAt}}) as names of their own."""
    from mrun.cli.template import Template

    parsed = Template(template)
    for d in described:
        print(parsed.render({**d, "Name": d["Spec"]["Name"], "Driver": d["Spec"]["Driver"]["Name"]}))

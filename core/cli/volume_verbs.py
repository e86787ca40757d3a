"""docker's `volume create|ls|inspect|rm|prune`: named and anonymous volumes in the image root."""

from __future__ import annotations

from mrun import jsonio
from mrun.cli.common import each, filter_pairs, filter_yes, print_table
from mrun.cli.filters import labelled, labels_pass
from mrun.errors import InvalidSpec

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


def volume(g: dict[str, Any], action: str, names: list[str], quiet: bool = False,
           all: bool = False, format: str = "table", force: bool = False, name: str = "",  # noqa: A002
           filter: tuple[str, ...] = (), label: tuple[str, ...] = (), driver: str = "local",  # noqa: A002
           opt: tuple[str, ...] = (), ignore: bool = False) -> int:
    """docker's volume verbs over <image root>/volumes (mrun.images.volumes)."""
    from mrun.images import volumes

    root = g["image_root"]
    for given, flag in ((name, "--name"), (label, "--label"), (opt, "--opt"), (driver != "local", "--driver"),
                        (ignore, "--ignore")):
        if given and action != "create":
            raise InvalidSpec(f"volume {action}: {flag} is create's")
    if driver != "local":
        raise InvalidSpec(f"volume create --driver {driver}: local is the one driver")
    if name:
        names = [name, *names]
    template = ""
    if action == "inspect":  # docker's volume inspect [-f|--format TEMPLATE] NAME...
        from mrun.cli.listing import inspect_format

        template, filter = inspect_format("volume inspect", filter, format), ()
    if filter and action not in ("ls", "list", "prune"):
        raise InvalidSpec(f"volume {action}: --filter is ls's and prune's")
    if action == "prune":
        all, chosen = _volume_prune_filter(root, list(filter), all)
        for name in volumes.prune(root, all, chosen):
            print(f"removed volume {name}")
        return 0
    if action in ("ls", "list"):
        action = "ls"
        wanted = _volume_filter(root, list(filter))
    if action in ("inspect", "rm") and not names:
        raise InvalidSpec(f"volume {action}: name at least one volume")
    if action == "create":
        if len(names) > 1:
            raise InvalidSpec("volume create: one name at most")
        from mrun.images.run_flags import create_labels, key_values

        own = create_labels(label)
        options = key_values(opt, "volume create -o")
        volumes.check_options(options)
        with volumes.store_lock(root):  # a concurrent prune sweeps no volume in the making
            if ignore and names and names[0] in volumes.names(root):  # podman's: left as it is
                made = names[0]
            else:
                made = volumes.create(root, names[0] if names else "", labels=own, options=options)
        print(made)
    elif action == "ls":
        found = [n for n in volumes.names(root) if wanted(n)]
        if quiet:
            for name in found:
                print(name)
        elif format == "json":
            print(jsonio.dumps([volumes.describe(root, n) for n in found]))
        elif format not in ("table", ""):  # docker's Go template (mrun.cli.listing)
            from mrun.cli.docker_rows import VOLUME_HEADERS, volume_row
            from mrun.cli.listing import formatted

            for line in formatted(format, [volume_row(n, volumes.describe(root, n)) for n in found], VOLUME_HEADERS):
                print(line)
        else:
            print_table([("VOLUME NAME", "KIND", "CONTAINERS")] + [
                (n, "anonymous" if volumes.is_anonymous(root, n) else "named", ",".join(volumes.users(root, n)) or "-")
                for n in found])
    elif action == "inspect" and template:
        from mrun.cli.docker_rows import volume_view
        from mrun.cli.template import Template

        described = [volumes.describe(root, n) for n in names]  # each found before any line
        parsed = Template(template)
        for d in described:
            print(parsed.render({**volume_view(d), **d}))
    elif action == "inspect":
        print(jsonio.dumps([volumes.describe(root, n) for n in names], indent=2))
    elif action == "rm":
        def one(name: str) -> None:
            volumes.remove(root, name)
            print(name)

        return each(names, "volume rm", one)
    else:
        raise InvalidSpec(f"volume: unknown action {action!r} (create, ls, inspect, rm or prune)")
    return 0


def _volume_filter(root: str, filters: list[str]) -> Callable[[str], bool]:
    """docker's ``volume ls --filter``: dangling=true|false (no container uses it, or one does:
    `docker volume rm $(docker volume ls -qf dangling=true)`), name=TEXT (in its name),
    driver=local (every one here), label=KEY[=VALUE] (of `volume create --label`). Any other key
    is refused, as docker's: a script would act on volumes it did not mean."""
    from mrun.images import volumes

    dangling: bool | None = None
    parts: list[str] = []
    wanted_labels: list[str] = []
    matches_none = False
    for text, key, value in filter_pairs(filters, ("dangling", "name", "driver", "label"), "volume ls takes "
                                         "dangling=true|false, name=TEXT, driver=local or label=KEY[=VALUE]"):
        if key == "dangling":
            dangling = filter_yes(text, value)
        elif key == "name":
            parts.append(value)
        elif key == "label":
            wanted_labels.append(value)
        else:  # a driver other than local
            matches_none = matches_none or value != "local"

    def wanted(name: str) -> bool:
        if matches_none or any(part not in name for part in parts):
            return False
        if wanted_labels and not all(labelled(volumes.labels_of(root, name), v) for v in wanted_labels):
            return False
        return dangling is None or (not volumes.users(root, name)) == dangling

    return wanted


def _volume_prune_filter(root: str, filters: list[str], every: bool) -> tuple[bool, Callable[[str], bool]]:
    """docker's ``volume prune --filter``: label=KEY[=VALUE] (each must match), label!=KEY[=VALUE]
    (none may), all=true|false (-a, as docker's API 1.42 takes it). -> (named ones too, whether
    the filter chooses a volume, by name). Any other key is refused before anything goes."""
    from mrun.images.volumes import labels_of

    labels: list[str] = []
    not_labels: list[str] = []
    for text, key, value in filter_pairs(filters, ("label", "label!", "all"), "volume prune takes "
                                         "label=KEY[=VALUE], label!=KEY[=VALUE] or all=true|false"):
        if key == "all":
            every = filter_yes(text, value) or every
        else:
            (labels if key == "label" else not_labels).append(value)

    def chosen(name: str) -> bool:
        return labels_pass(labels_of(root, name), labels, not_labels)

    return every, chosen

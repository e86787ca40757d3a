"""The docker-like verbs over the image store: load, pull, import, push, save, images, rmi, tag and
`image ACTION`. Imported only by these verbs: the runc verbs never pay for it."""

from __future__ import annotations

import os
import sys

from mrun import jsonio
from mrun.cli.common import filter_pairs, filter_yes, image_store, print_table
from mrun.cli.filters import labelled, prune_filter
from mrun.cli.platforms import platform_flag, platform_of, same_platform
from mrun.errors import InvalidSpec, MrunError, NotFound, one_line

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from mrun.images.store import ImageStore


def load(g: dict[str, Any], archive: str | None, name: str | None, platform: str, input: str,  # noqa: A002
         quiet: bool) -> int:
    """docker's ``load`` too: ``-i FILE``, or the tarball on stdin (``docker save IMG | mrun load``)."""
    from mrun.images.install import install
    from mrun.images.sources import open_source, readable, spooled_stdin

    if archive and input:
        raise InvalidSpec(f"load: the archive twice ({archive!r} and -i {input!r}): give one")
    store = image_store(g)
    with readable(archive or input, store.root) if archive or input else spooled_stdin(store.root) as path:
        for loaded in install(store, open_source(path), name, platform_flag(platform)):
            print(f"Loaded image: {loaded}")  # -q too: docker's quiet drops progress, not this line
    return 0


def pull(g: dict[str, Any], image: str, platform: str, insecure: bool, creds: str, quiet: bool = False,
         all_tags: bool = False) -> int:
    """docker's pull; -a: every tag of the repository, a line each, or with -q its name once."""
    from mrun.images.registry import pull as pull_image
    from mrun.images.registry import pull_all_tags

    if all_tags:
        for name in pull_all_tags(image_store(g), image, insecure, creds, platform_flag(platform), quiet):
            if not quiet:
                print(f"Pulled: {name}", flush=True)  # as each is pulled: what came before a failure is said
        if quiet:
            print(name.rpartition(":")[0])  # the repository, as docker's -qa prints it
        return 0
    for name in pull_image(image_store(g), image, insecure, creds, platform_flag(platform), quiet):
        print(name if quiet else f"Pulled: {name}")  # -q: the name alone, as docker's
    return 0


def import_image(g: dict[str, Any], source: str, repository: str = "", change: tuple[str, ...] = (),
                 message: str = "", platform: str = "") -> int:
    """docker's import: an image of one layer from a filesystem tarball (a file, - or a URL)."""
    from mrun.images.tarball_import import import_tarball

    if source == "-" and os.isatty(0):
        raise InvalidSpec("import -: the tarball is read from stdin, which is a terminal")
    print(import_tarball(image_store(g), source, repository, message, list(change), platform_flag(platform)))
    return 0


def push(g: dict[str, Any], image: str, destination: str, insecure: bool, creds: str, all_tags: bool = False,
         quiet: bool = False) -> int:
    """docker's push: each tag's last line ("TAG: digest: ... size: N"), or with -q the name
    given alone once all went. -a: every tag of the repository, in the order of their names."""
    from mrun.images.reference import repository_only
    from mrun.images.registry import push as push_image

    store = image_store(g)
    names = [image]
    if all_tags:
        if destination:
            raise MrunError("push: --all-tags takes a repository, no destination")
        repository_only("push", image)
        names = sorted(_chosen_images(store, store.index(), [], image))
        if not names:
            raise MrunError(f"push: an image does not exist locally with the repository {image}")
    for name in names:
        tag, digest, size = push_image(store, name, destination or "", insecure, creds, quiet)
        if not quiet:
            print(f"{tag}: digest: {digest} size: {size}", flush=True)  # as docker's push ends
    if quiet:
        print(image)
    return 0


def save(g: dict[str, Any], image: str, more: list[str], format: str, output: str,  # noqa: A002
         platform: str = "") -> int:
    """docker's ``save`` too: several images in one archive, ``-o FILE``, or the tarball on stdout,
    never onto a terminal. mrun's ``save IMAGE ARCHIVE``: a second word that names no image,
    without -o, is the archive to write. ``platform``: docker's --platform, which each image
    must be (mrun keeps one platform of an image: nothing to choose among)."""
    from mrun.images.export import save as save_image

    store = image_store(g)
    want = platform_flag(platform)
    refs, archive = [image, *(more or [])], None
    if not output and len(refs) == 2 and not _names_an_image(store, refs[1]):
        refs, archive = refs[:1], refs[1]
    for ref in refs if want else ():
        actual = platform_of(store, store.image(ref)[1])
        if not same_platform(want, actual):  # docker's words
            raise NotFound(f"image with reference {ref} was found but does not match the specified platform: "
                           f"wanted {'/'.join(want)}, actual: {'/'.join(actual)}")
    if not (archive or output):
        if os.isatty(1):  # docker's refusal, in its words
            raise MrunError("save: cowardly refusing to save to a terminal. Use the -o flag or redirect")
        sys.stdout.flush()
    save_image(store, refs, archive or output or None, format)
    return 0


def _names_an_image(store: Any, word: str) -> bool:
    try:
        store.image(word)
    except MrunError:
        return False
    return True


def images(g: dict[str, Any], format: str, quiet: bool, filter: tuple[str, ...] = (),  # noqa: A002
           repository: str | None = None, all: bool = False, digests: bool = False,  # noqa: A002
           no_trunc: bool = False) -> int:
    """docker's images (``all``: the same list, mrun keeping no intermediate images)."""
    from mrun.cli.listing import filters_and_format

    store = image_store(g)
    wanted, format = filters_and_format(filter, format)
    index = _chosen_images(store, store.index(), wanted, repository)

    def image_id(entry: dict[str, Any]) -> str:
        return entry["config"] if no_trunc else entry["config"].removeprefix("sha256:")[:12]

    if quiet:
        for entry in index.values():
            print(image_id(entry))
        return 0
    if format == "json":
        print(jsonio.dumps([{"name": n, **e} for n, e in index.items()]))
        return 0
    if format not in ("table", ""):  # docker's Go template (mrun.cli.listing)
        from mrun.cli.docker_rows import IMAGES_HEADERS, image_row
        from mrun.cli.listing import formatted

        for line in formatted(format, [image_row(n, e) for n, e in sorted(index.items())], IMAGES_HEADERS):
            print(line)
        return 0
    rows = [("REPOSITORY", "TAG", *(["DIGEST"] if digests else []), "IMAGE ID", "KIND", "SIZE")]
    for name, e in sorted(index.items()):
        repo, _, tag = name.rpartition(":")
        kind = "wasm" if e.get("wasm") else "linux"
        size = e.get("size", 0)
        shown = f"{size / 1e6:.1f}MB" if size >= 1e6 else f"{size / 1e3:.0f}kB"
        rows.append((repo, tag, *([e.get("manifest") or "<none>"] if digests else []), image_id(e), kind, shown))
    print_table(rows)
    return 0


def _chosen_images(store: ImageStore, index: dict[str, Any], filters: list[str],
                   repository: str | None) -> dict[str, Any]:
    """docker's ``images [REPOSITORY[:TAG]] --filter``: reference= (a glob over the name, with or
    without its tag, as docker's short names too), label=KEY[=VALUE] (the image config's Labels),
    dangling= (none here: mrun keeps no untagged image), before=/since= (made before or after
    that image). Any other key is one line."""
    import fnmatch

    from mrun.images.reference import has_tag

    def forms(name: str) -> list[str]:
        repo = name.rpartition(":")[0] if has_tag(name) else name
        short = [f.removeprefix("docker.io/library/").removeprefix("docker.io/") for f in (name, repo)]
        return [name, repo, *short]

    chosen = dict(index)
    if repository:
        tagged = has_tag(repository)
        chosen = {n: e for n, e in chosen.items() if repository in forms(n)[0 if tagged else 1::2]}
    for text, key, value in filter_pairs(filters, ("reference", "label", "dangling", "before", "since"),
                                         "KEY=VALUE expected, KEY one of reference, label, dangling, before, since"):
        if key == "reference":
            chosen = {n: e for n, e in chosen.items() if any(fnmatch.fnmatchcase(f, value) for f in forms(n))}
        elif key == "dangling":
            chosen = {} if filter_yes(text, value) else chosen
        elif key == "label":
            chosen = {n: e for n, e in chosen.items() if labelled(_image_labels(store, e), value)}
        else:
            _, pivot = store.image(value)
            when = pivot.get("created") or ""
            chosen = {n: e for n, e in chosen.items()
                      if ((e.get("created") or "") < when if key == "before" else (e.get("created") or "") > when)}
    return chosen


def _image_labels(store: ImageStore, entry: dict[str, Any]) -> dict[str, str]:
    """The image config's Labels ({} where it has none, no mapping, or a config that cannot be read)."""
    try:
        labels = (store.read_json(entry["config"]).get("config") or {}).get("Labels") or {}
    except (MrunError, AttributeError):  # a damaged config: `image prune -a` goes on as before
        return {}
    return labels if isinstance(labels, dict) else {}


def rmi(g: dict[str, Any], images: list[str], force: bool = False, no_prune: bool = False) -> int:
    """docker's rmi: each image named, going on past one that cannot go (exit 1, a line for it).
    An image a container uses is refused, or with -f untagged: its data stays as long as the
    container does (gc.prune keeps what containers were made from)."""
    if not images:
        raise InvalidSpec("rmi: name an image")
    store, failed = image_store(g), 0
    for image in images:
        try:
            _rmi_one(store, image, force)
        except MrunError as e:
            print(f"mrun: {one_line(str(e))}", file=sys.stderr)
            failed = 1
    return failed


def _rmi_one(store: ImageStore, image: str, force: bool) -> None:
    with store.lock():
        name, entry = store.image(image)
        users = [cid for cid, meta in store.container_images().items() if meta.get("config") == entry["config"]]
        index = store.index()
        others = [n for n, e in index.items() if n != name and e["config"] == entry["config"]]
        if users and not others and not force:
            raise MrunError(f"image {name} is in use by container(s) {', '.join(sorted(users))}: remove them first "
                            "(or -f: untag it)")
        del index[name]
        store.save_index(index)
        from mrun.images.gc import prune

        prune(store)
    print(f"Untagged: {name}")


def prune_images(store: ImageStore, every_unused: bool, filters: list[str] | None = None) -> list[str]:
    """docker's image prune: what no image and no container uses; ``every_unused`` (-a): also
    every image no container was made from, untagged first; ``filters`` choose among those."""
    from mrun.images.gc import prune, untag_unused

    chosen = _image_prune_filter(store, filters or [])  # refused before anything goes
    with store.lock():
        return [f"untagged {n}" for n in (untag_unused(store, chosen) if every_unused else [])] + \
            [f"removed {what}" for what in prune(store)]


def _image_prune_filter(store: ImageStore, filters: list[str]) -> Callable[[str, dict[str, Any]], bool]:
    """docker's ``image prune --filter`` (``prune_filter``): over the image config's Labels and
    the time it was made."""
    chosen = prune_filter(filters, "image")
    if not filters:
        return lambda _name, _entry: True
    return lambda _name, entry: chosen(_image_labels(store, entry), str(entry.get("created") or ""))


def tag(g: dict[str, Any], source: str, target: str) -> int:
    """docker's tag: TARGET names the image SOURCE names (one more name; `rmi` of one keeps the other)."""
    from mrun.images.reference import Reference
    from mrun.images.store import normalize

    if "@" in target:
        raise InvalidSpec(f"tag {target!r}: a new name is NAME[:TAG], not a digest")
    Reference(target)  # docker's grammar, or its one line
    store = image_store(g)
    with store.lock():
        _name, entry = store.image(source)
        index = store.index()
        index[normalize(target)] = entry
        store.save_index(index)
    return 0


def image(g: dict[str, Any], action: str, image: str | None, name: str | None, format: str = "table",  # noqa: A002
          quiet: bool = False, force: bool = False, all: bool = False,  # noqa: A002
          filter: tuple[str, ...] = (), digests: bool = False, no_trunc: bool = False) -> int:  # noqa: A002
    """docker's image verbs; ls, rm and tag are `images`, `rmi` and `tag` by their other names."""
    if action in ("ls", "list"):
        return images(g, format, quiet, filter, image, all, digests, no_trunc)
    if action in ("rm", "tag") and not image:
        raise InvalidSpec(f"image {action}: name the image")
    if action == "rm":
        return rmi(g, [image, *([name] if name else [])])  # type: ignore[list-item]
    if action == "tag":
        if not name:
            raise InvalidSpec("image tag: give the image and its new name (mrun image tag IMAGE NAME[:TAG])")
        return tag(g, image, name)  # type: ignore[arg-type]
    store = image_store(g)
    if action == "wasm":
        from mrun.images.wasm_image import build

        if not image or not name:
            raise InvalidSpec("image wasm: give the module and the image's name (mrun image wasm hello.wasm NAME)")
        for made in build(store, image, name):
            print(f"Made image: {made}")
        return 0
    if action == "inspect":  # docker's image inspect [-f|--format TEMPLATE] IMAGE...
        from mrun.cli.inspect_verbs import inspect
        from mrun.cli.listing import inspect_format

        if not image:
            raise InvalidSpec("image inspect: name the image")
        return inspect(g, [image, *([name] if name else [])], inspect_format("image inspect", filter, format), "image")
    if action == "history":
        from mrun.cli.history import history

        if not image:
            raise InvalidSpec("image history: name the image")
        return history(g, image, "" if format in ("table", "") else format, quiet, no_trunc)
    if action == "prune":
        for what in prune_images(store, all, list(filter)):
            print(what)
        return 0
    raise InvalidSpec(f"image: unknown action {action!r} (ls, rm, tag, inspect, history, prune or wasm)")

"""The docker-like verbs over the image store: load, images, rmi, image, run IMAGE, logs, stop,
and ps without an id. Imported only by these verbs: the runc verbs never pay for it."""

from __future__ import annotations

import os
import sys
import time

from mrun import annotations as ann
from mrun import jsonio
from mrun.cli.common import (
    _rt,
    can_release,
    each,
    filter_pairs,
    filter_yes,
    let_caller_go,
    names_a_container,
    no_stdin,
    print_table,
    remove_container,
)
from mrun.cli.short_ids import as_typed
from mrun.errors import InvalidSpec, MrunError, NotFound, in_words
from mrun.images.store import ImageStore
from mrun.network import PLAN
from mrun.status import Status
from mrun.trace import span

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


def _store(g: dict[str, Any]) -> ImageStore:
    return ImageStore(g["image_root"])


def load(g: dict[str, Any], archive: str | None, name: str | None, platform: str, input: str,  # noqa: A002
         quiet: bool) -> int:
    """docker's ``load`` too: ``-i FILE``, or the tarball on stdin (``docker save IMG | mrun load``)."""
    from mrun.images.install import install
    from mrun.images.sources import open_source, readable, spooled_stdin

    if archive and input:
        raise InvalidSpec(f"load: the archive twice ({archive!r} and -i {input!r}): give one")
    store = _store(g)
    with readable(archive or input, store.root) if archive or input else spooled_stdin(store.root) as path:
        for loaded in install(store, open_source(path), name, _platform(platform)):
            print(f"Loaded image: {loaded}")  # -q too: docker's quiet drops progress, not this line
    return 0


def _platform(text: str) -> tuple[str, str] | None:
    if not text:
        return None
    os_, sep, arch = text.partition("/")
    if not sep or not os_ or not arch:
        raise InvalidSpec(f"--platform {text!r}: os/arch expected (linux/amd64, wasip1/wasm)")
    return os_, arch


def pull(g: dict[str, Any], image: str, platform: str, insecure: bool, creds: str, quiet: bool = False) -> int:
    from mrun.images.registry import pull as pull_image

    for name in pull_image(_store(g), image, insecure, creds, _platform(platform), quiet):
        print(name if quiet else f"Pulled: {name}")  # -q: the name alone, as docker's
    return 0


def import_image(g: dict[str, Any], source: str, repository: str = "", change: tuple[str, ...] = (),
                 message: str = "", platform: str = "") -> int:
    """docker's import: an image of one layer from a filesystem tarball (a file, - or a URL)."""
    from mrun.images.tarball_import import import_tarball

    if source == "-" and os.isatty(0):
        raise InvalidSpec("import -: the tarball is read from stdin, which is a terminal")
    print(import_tarball(_store(g), source, repository, message, list(change), _platform(platform)))
    return 0


def push(g: dict[str, Any], image: str, destination: str, insecure: bool, creds: str, all_tags: bool = False,
         quiet: bool = False) -> int:
    """docker's push: each tag's last line ("TAG: digest: ... size: N"), or with -q the name
    given alone once all went. -a: every tag of the repository, in the order of their names."""
    from mrun.images.registry import push as push_image

    store = _store(g)
    names = [image]
    if all_tags:
        if destination:
            raise MrunError("push: --all-tags takes a repository, no destination")
        if "@" in image or ":" in image.rsplit("/", 1)[-1]:
            raise MrunError(f"push: tag can't be used with --all-tags/-a: {image}")
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

    store = _store(g)
    want = _platform(platform)
    refs, archive = [image, *(more or [])], None
    if not output and len(refs) == 2 and not _names_an_image(store, refs[1]):
        refs, archive = refs[:1], refs[1]
    for ref in refs if want else ():
        actual = _platform_of(store, store.image(ref)[1])
        if not _same_platform(want, actual):  # docker's words
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

    store = _store(g)
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

    def forms(name: str) -> list[str]:
        repo = name.rpartition(":")[0] if ":" in name.rsplit("/", 1)[-1] else name
        short = [f.removeprefix("docker.io/library/").removeprefix("docker.io/") for f in (name, repo)]
        return [name, repo, *short]

    chosen = dict(index)
    if repository:
        tagged = ":" in repository.rsplit("/", 1)[-1]
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


def labelled(labels: dict[str, str], wanted: str) -> bool:
    """docker's label filter: ``wanted`` is KEY (the label is there) or KEY=VALUE (with that value)."""
    name, eq, expected = wanted.partition("=")
    return name in labels and (not eq or labels[name] == expected)


def rmi(g: dict[str, Any], images: list[str], force: bool = False, no_prune: bool = False) -> int:
    """docker's rmi: each image named, going on past one that cannot go (exit 1, a line for it).
    An image a container uses is refused, or with -f untagged: its data stays as long as the
    container does (gc.prune keeps what containers were made from)."""
    if not images:
        raise InvalidSpec("rmi: name an image")
    store, failed = _store(g), 0
    for image in images:
        try:
            _rmi_one(store, image, force)
        except MrunError as e:
            print(f"mrun: {e}", file=sys.stderr)
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
    store = _store(g)
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
    store = _store(g)
    if action == "wasm":
        from mrun.images.wasm_image import build

        if not image or not name:
            raise InvalidSpec("image wasm: give the module and the image's name (mrun image wasm hello.wasm NAME)")
        for made in build(store, image, name):
            print(f"Made image: {made}")
        return 0
    if action == "inspect":  # docker's image inspect [-f|--format TEMPLATE] IMAGE...
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


ENV_FILE_LINE_MAX = 64 << 10  # docker's bufio.Scanner token limit


def read_env_file(path: str, flag: str = "--env-file") -> list[str]:
    """``--env-file`` (and ``--label-file``) as docker reads it: VAR=VALUE (or VAR: the caller's
    value) per line, '#' comments and blank lines skipped, UTF-8, 64 KiB a line at most:
    /dev/zero or a binary file is refused at its first long line, not read without end."""
    lines = []
    try:
        with open(path, "rb") as f:
            for number, raw in enumerate(iter(lambda: f.readline(ENV_FILE_LINE_MAX + 1), b""), 1):
                if len(raw) > ENV_FILE_LINE_MAX and not raw.endswith(b"\n"):
                    raise InvalidSpec(f"{flag} {path}: line {number} is longer than 64 KiB")
                try:
                    line = raw.decode().strip()
                except UnicodeDecodeError:
                    raise InvalidSpec(f"{flag} {path}: line {number} is not UTF-8") from None
                if line and not line.startswith("#"):
                    lines.append(line)
    except OSError as e:
        raise InvalidSpec(f"{flag} {path}: {e.strerror or e}") from None
    return lines


def _namespace_modes(g: dict[str, Any], kw: dict[str, Any]) -> dict[str, str]:
    """--pid, --ipc, --uts and --cgroupns -> namespace type: "host", "none" (ipc: no /dev/shm), or the path of
    a running container's namespace to join; private ones (the default) are left out."""
    from mrun.images.run_flags import NAMESPACE_FLAGS, NAMESPACE_MODES

    modes = {}
    for kind, allowed in NAMESPACE_MODES.items():
        flag = f"--{NAMESPACE_FLAGS.get(kind, kind)}"
        mode = kw.get(NAMESPACE_FLAGS.get(kind, kind)) or ""
        if mode.startswith("container:") and "container:ID" in allowed:
            from mrun.images.joined import namespace_path

            modes[kind] = namespace_path(_rt(g), kind, mode.partition(":")[2], flag)
        elif mode in ("", "private", "shareable") and mode in ("", *allowed):
            continue
        elif mode in allowed:
            modes[kind] = mode
        else:
            raise InvalidSpec(f"{flag} {mode!r}: {', '.join(allowed)} expected")
    return modes


_NAME_FILES = ("add_host", "dns", "dns_search", "dns_option")  # flags that shape /etc/hosts and resolv.conf


def _networks(given: Any) -> tuple[str, list[str]]:
    """--network, given once or more: (the first network or mode, the other networks). Several
    are networks of `mrun network create` (docker's rule: no mode, nor its default bridge, beside
    them); the first is eth0 (its default route, -p, --ip, --network-alias), the others eth1...
    (docker's second --network, as `network connect` after the start)."""
    chosen = list(dict.fromkeys([given] if isinstance(given, str) else given or ()))
    for mode in chosen if len(chosen) > 1 else ():
        if mode in ("none", "host", "bridge", "default") or mode.startswith("container:"):
            raise InvalidSpec(f"--network {mode} beside --network {next(m for m in chosen if m != mode)}: several "
                              "networks are networks of `mrun network create` (conflicting options, as docker's)")
    return (chosen[0] if chosen else "bridge"), chosen[1:]


def _network_mode(g: dict[str, Any], mode: str, publish: list[str], kw: dict[str, Any],
                  more: list[str] | None = None) -> dict[str, Any]:
    """--network, -p, --add-host and --dns* -> what the spec needs: a namespace path, none at all,
    or a network's annotations (``more``: the networks it joins besides, attach.more_of's)."""
    if kw.get("ip") and (mode in ("none", "host", "bridge") or mode.startswith("container:")):
        # docker's rule: an address is asked for on a network of one's own, never the default
        raise InvalidSpec(f"--ip: taken on a network of `mrun network create`, not with --network {mode}")
    if kw.get("mac_address") and (mode in ("none", "host") or mode.startswith("container:")):
        raise InvalidSpec(f"--mac-address: taken on bridge networks, not with --network {mode} "
                          "(conflicting options, as docker's)")
    for flag, key in (("--network-alias", "network_alias"), ("--link", "link")):
        if kw.get(key) and (mode in ("none", "host", "bridge") or mode.startswith("container:")):
            raise InvalidSpec(f"{flag}: taken on networks of `mrun network create`, not with --network {mode}")
    if kw.get("link"):  # docker's legacy links: on a network of one's own, names of that container's address
        kw = {**kw, "add_host": [*(kw.get("add_host") or ()), *_linked(g, list(kw["link"]), mode)]}
    if mode in ("none", "host") or mode.startswith("container:"):
        if publish or kw.get("publish_all"):
            flag = "-p" if publish else "-P"
            raise InvalidSpec(f"{flag}: ports are published on bridge networks, not with --network {mode}")
        for key in _NAME_FILES:
            if kw.get(key):  # mrun writes /etc/hosts and resolv.conf for its bridge networks only
                raise InvalidSpec(f"--{key.replace('_', '-')}: taken on bridge networks, not with --network {mode}")
        if mode.startswith("container:"):
            from mrun.images.joined import running

            runtime = _rt(g)
            record = running(runtime, mode.partition(":")[2], "--network")
            # docker's: its hostname and its /etc/hosts, resolv.conf and hostname files, shared
            places = [runtime.store.path(record.id)]  # a bridge container's files
            if os.path.dirname(record.bundle) == os.path.join(g["image_root"], "containers"):
                places.append(record.bundle)  # a host-network one's copies (mrun run's bundles only)
            files = {name: os.path.join(place, name) for place in places
                     for name in ("hosts", "resolv.conf", "hostname") if os.path.isfile(os.path.join(place, name))}
            hostname = (jsonio.load_object(os.path.join(record.bundle, "config.json")) or {}).get("hostname") or ""
            return {"namespace": f"/proc/{record.pid}/ns/net", "files": files,
                    "hostname": hostname if isinstance(hostname, str) else ""}
        return {"host": True} if mode == "host" else {}
    from mrun.network.attach import parse_dns, parse_extra_hosts, parse_mac, parse_ports
    from mrun.network.store import DEFAULT_NETWORK

    parse_ports(",".join(publish))  # bad syntax is refused before anything is made
    if kw.get("ip"):
        from mrun.network.store import requested_address

        requested_address(kw["ip"])
    mac = [parse_mac(kw["mac_address"])] if kw.get("mac_address") else []
    hosts = parse_extra_hosts(list(kw.get("add_host") or ()))
    dns = parse_dns(*(list(kw.get(key) or ()) for key in _NAME_FILES[1:]))
    return {"name": DEFAULT_NETWORK if mode == "bridge" else mode, "ports": ",".join(publish),
            "annotations": {key: ",".join(values) for key, values in (
                (ann.NETWORK_HOSTS, [f"{name}={ip}" for name, ip in hosts]), (ann.NETWORK_DNS, dns["servers"]),
                (ann.NETWORK_DNS_SEARCH, dns["search"]), (ann.NETWORK_DNS_OPTIONS, dns["options"]),
                (ann.NETWORK_IP, [kw["ip"]] if kw.get("ip") else []), (ann.NETWORK_MAC, mac),
                (ann.NETWORK_ALIASES, list(kw.get("network_alias") or ()))) if values}
            | ({ann.NETWORK_MORE: jsonio.dumps([{"name": n, "ip": "", "aliases": []} for n in more])} if more else {})}


def _runtime_annotation(runtime: str) -> list[str]:
    """docker's --runtime NAME: the container under that installed OCI runtime (the oci backend,
    whose allowed names and their presence it checks); mrun (or none) is mrun's own sandbox."""
    if runtime in ("", "mrun"):
        return []
    if not runtime.isascii() or not all(c.isalnum() or c in "-_." for c in runtime):
        raise InvalidSpec(f"--runtime {runtime!r}: the name of an installed OCI runtime (runc, crun...) or mrun")
    return [f"{ann.OCI_RUNTIME}={runtime}"]


def _linked(g: dict[str, Any], links: list[str], network: str) -> list[str]:
    """--link NAME[:ALIAS]: NAME (and ALIAS) as names of that running container's address on
    ``network``, for this container's /etc/hosts alone (docker's legacy links)."""
    from mrun.errors import MrunError

    runtime, out = _rt(g), []
    for text in links:
        name, _, alias = text.partition(":")
        try:
            record = runtime.store.load(name)
        except MrunError as e:
            raise InvalidSpec(f"--link {text}: {e}") from None
        if runtime.status(record) != Status.RUNNING:
            raise InvalidSpec(f"--link {text}: container {name!r} is not running (as docker's, links are to running "
                              "ones)")
        plan = _net_of(runtime, record.id) or {}
        if plan.get("network") != network or not isinstance(plan.get("ip"), str) or not plan["ip"]:
            raise InvalidSpec(f"--link {text}: container {name!r} is not on network {network!r}")
        out += [f"{n}:{plan['ip']}" for n in dict.fromkeys([name, *([alias] if alias else [])])]
    return out


def _pull_for_run(store: ImageStore, image: str, policy: str, platform: str = "", quiet: bool = False) -> None:
    """docker's --pull: ``missing`` (the default) pulls an image the store lacks, ``always``
    pulls it anyway, ``never`` does not. Said on stderr, as docker says it: stdout is the
    container's; ``quiet`` (docker's run -q): not said."""
    if policy not in ("missing", "always", "never"):
        raise InvalidSpec(f"--pull {policy!r}: missing, always or never")
    want = _platform(platform)  # refused before anything is pulled or run
    missing, here = False, "not found here"
    if policy != "always":
        try:
            _name, entry = store.image(image)
            if want is None:
                return
            actual = _platform_of(store, entry)  # (read only when asked: a config read on every run)
            if _same_platform(want, actual):
                return
            here = f"here for {'/'.join(actual)}, not {'/'.join(want)}"  # pulled for the one asked, as docker's
            if policy == "never":  # docker's words
                raise NotFound(f"image with reference {image} was found but does not match the specified platform: "
                               f"wanted {'/'.join(want)}, actual: {'/'.join(actual)}")
        except NotFound:
            if policy == "never":
                raise
        missing = True
    from mrun.images.registry import pull as pull_image

    try:
        names = pull_image(store, image, False, "", want, quiet)
    except MrunError as e:
        if not missing:
            raise
        raise NotFound(f"image {image!r} {here}, and pulling it failed: {e}")
    if not quiet:
        note = f"Unable to find image '{image}' locally: pulled" if missing else "Pulled:"
        print(f"{note} {', '.join(names)}", file=sys.stderr)


def _platform_of(store: ImageStore, entry: dict[str, Any]) -> tuple[str, str]:
    """An image's os and architecture (with its variant: arm/v7): as the index it was pulled or
    loaded from named it, else as its config says (wasm for one mrun runs as wasm)."""
    if entry.get("platform"):
        os_, _, arch = entry["platform"].partition("/")
        return os_, arch
    if entry.get("wasm"):
        return "wasip1", "wasm"
    config = store.read_json(entry["config"])
    config = config if isinstance(config, dict) else {}
    arch = str(config.get("architecture") or "")
    return str(config.get("os") or ""), f"{arch}/{config['variant']}" if config.get("variant") else arch


def _same_platform(want: tuple[str, str], actual: tuple[str, str]) -> bool:
    """``--platform`` names the image's: the same os and architecture (a variant only where one
    is asked for), or both wasm (wasi/wasm is wasip1/wasm)."""
    from mrun.images.install import WASM_PLATFORMS

    if want in WASM_PLATFORMS or actual in WASM_PLATFORMS:
        return want in WASM_PLATFORMS and (actual[0], actual[1].split("/")[0]) in WASM_PLATFORMS
    return want[0] == actual[0] and (want[1] == actual[1] or "/" not in want[1] and want[1] == actual[1].split("/")[0])


def run_image(g: dict[str, Any], image: str, command: list[str], kw: dict[str, Any], create_only: bool = False) -> int:
    """`mrun run IMAGE [COMMAND...]`: prepare the snapshot and bundle, then the runtime's own run.
    ``create_only``: docker's `create IMAGE`, recorded, not started (`start` runs it as `run -d`)."""
    from mrun.images import run_flags, run_resources
    from mrun.images.containers import Overrides, prepare
    from mrun.runtime import CreateOptions

    if kw.get("disable_content_trust") is False:
        raise InvalidSpec("--disable-content-trust=false: content trust (signed images) is not supported by mrun")
    if kw.get("isolation") not in (None, "", "default"):  # docker on Linux: "default" alone
        raise InvalidSpec(f"--isolation {kw['isolation']!r}: default is the one isolation on Linux")
    if kw.get("volume_driver") not in (None, "", "local"):
        raise InvalidSpec(f"--volume-driver {kw['volume_driver']!r}: local is the one volume driver")
    if kw.get("userns") not in (None, "", "host"):  # docker's one mode where the daemon remaps no users
        raise InvalidSpec(f"--userns {kw['userns']!r}: host is the one mode (mrun maps no user namespace)")
    first, more = _networks(kw.get("network"))
    kw = {**kw, "network": first}
    from mrun.cli.short_ids import resolve

    for key in ("network", "pid"):  # container:ID, by docker's short ids too
        mode = kw.get(key)
        if isinstance(mode, str) and mode.startswith("container:"):
            kw[key] = "container:" + resolve(g, mode.partition(":")[2])
    env = [line for path in kw.get("env_file") or () for line in read_env_file(path)]
    env += list(kw.get("env") or ())
    if kw.get("mount"):  # docker's long form, as the short forms it stands for
        from mrun.images.run_flags import mount_flag

        kw = dict(kw)
        for kind, short in map(mount_flag, kw["mount"]):
            kw[kind] = [*(kw.get(kind) or ()), short]
    o = Overrides(
        command=command,
        entrypoint=kw.get("entrypoint"),
        env=env,
        workdir=kw.get("workdir"),
        user=kw.get("user"),
        hostname=kw.get("hostname"),
        domainname=kw.get("domainname"),
        volumes=[run_flags.volume_flag(text) for text in kw.get("volume") or ()],
        shared=[m for text in kw.get("volumes_from") or () for m in _volumes_from(g, text)],
        annotations=list(kw.get("annotation") or ()) + _runtime_annotation(kw.get("runtime") or "")
        + ([f"{ann.WASM_PREOPENS}={kw['wasm_preopens']}"] if kw.get("wasm_preopens") else []),
        resources=run_resources.resources(kw, g.get("warn")),
        read_only=kw.get("read_only"),
        tty=kw.get("tty"),
        cgroup_parent=kw.get("cgroup_parent"),
        network=_network_mode(g, kw["network"], list(kw.get("publish") or ()), kw, more),
        security_opt=list(kw.get("security_opt") or ()),
        **{key: list(kw.get(key) or ()) for key in ("cap_add", "cap_drop", "ulimit", "tmpfs", "device", "sysctl",
                                                    "group_add", "device_cgroup_rule")},
        privileged=kw.get("privileged"),
        oom_score_adj=kw.get("oom_score_adj"),
        stop_signal=kw.get("stop_signal"),
        stop_timeout=kw.get("stop_timeout"),
        init=kw.get("init"),
        shm_size=kw.get("shm_size"),
        namespaces=_namespace_modes(g, kw),
        joined={kind: mode.removeprefix("container:") for kind, mode in (("network", kw.get("network") or ""),
                                                                         ("pid", kw.get("pid") or ""))
                if mode.startswith("container:")},
        publish_all=kw.get("publish_all"),
        health={"cmd": kw.get("health_cmd"), "interval": kw.get("health_interval"),
                "timeout": kw.get("health_timeout"), "start_period": kw.get("health_start_period"),
                "start_interval": kw.get("health_start_interval"), "retries": kw.get("health_retries"),
                "none": kw.get("no_healthcheck")},
        expose=run_flags.exposed(list(kw.get("expose") or ())),
        labels=run_flags.labels([*((f"--label-file {path}", line) for path in kw.get("label_file") or ()
                                   for line in read_env_file(path, "--label-file")),
                                 *(("--label", text) for text in kw.get("label") or ())]),
    )
    detach, remove = bool(kw.get("detach")) or create_only, bool(kw.get("rm"))
    restart = kw.get("restart") or "no"
    if restart != "no":
        from mrun.images.supervisor import restart_policy

        restart_policy(restart)
        if remove:
            raise InvalidSpec(f"--restart {restart} with --rm: conflicting options")
        if not detach:
            raise InvalidSpec(f"--restart {restart}: needs -d (a detached container's supervisor restarts it)")
        o.annotations.append(f"{ann.RESTART}={restart}")
    if remove:  # docker's AutoRemove: inspect says so, update --restart refuses
        o.annotations.append(f"{ann.REMOVE}=true")
    if not detach and any(kw.get(f"health_{key}") not in (None, "") for key in
                          ("cmd", "interval", "timeout", "start_period", "start_interval", "retries")) \
            and callable(g.get("warn")):
        g["warn"]("--health-*: checks are run by a detached container's supervisor (-d); this one has none")
    logging = run_flags.log_options(kw.get("log_driver") or "json-file", list(kw.get("log_opt") or ()))
    if logging != {"keep": True, "max_size": 0, "max_files": 1}:
        o.annotations.append(f"{ann.LOG}={jsonio.dumps(logging)}")
    if kw.get("interactive"):  # docker's OpenStdin: held open by a detached run's supervisor (images/held_input)
        o.annotations.append(f"{ann.STDIN}=open")
    detach_keys = _detach_keys(kw, o.tty and not detach)
    attach = run_flags.attached(kw.get("attach"))
    if attach is not None:
        if create_only:
            raise InvalidSpec("-a with create is not supported: `start -a` shows its output")
        if detach:
            raise InvalidSpec("Conflicting options: -a and -d")  # docker's words
        if o.tty and "stdout" not in attach:
            raise InvalidSpec("-a without STDOUT under -t is not supported: the terminal is its output")
    if kw.get("name"):
        container_name(kw["name"])
    store = ImageStore(g["image_root"])
    _pull_for_run(store, image, kw.get("pull") or "missing", kw.get("platform") or "", bool(kw.get("quiet")))
    # 48 random bits, as docker's short ids: uuid4().hex[:12] was the same, and its import
    # (enum, _uuid) was the one module a warm `mrun run` still loaded per run (~0.5 ms).
    cid = kw.get("name") or os.urandom(6).hex()
    runtime = _rt(g)
    if runtime.store.exists(cid):
        raise MrunError(f"container {cid!r} already exists")
    from mrun.bundles import release
    from mrun.images import volumes
    from mrun.images.supervisor import log_kept, record, run_detached, set_aside
    from mrun.stop_signals import held_signals, hold_termination, raise_if_held

    cidfile = _claim_cidfile(kw.get("cidfile") or "")
    hold_termination()  # a pull is cut short anywhere; from here on, only where stopping is clean
    try:
        with span("run prepare"):
            bundle = prepare(store, image, cid, o, g.get("warn"), runtime.store.root)
    except BaseException:
        _drop_cidfile(cidfile)
        raise
    try:  # from here on, whatever ends the run (a failure, ^C, a SIGTERM) takes back what it made
        if remove:  # removed once it ends, should its caller or supervisor be killed first
            from mrun.images import auto_remove

            auto_remove.mark(bundle)
        if cidfile:
            os.write(cidfile[1], cid.encode())
            os.close(cidfile[1])
        raise_if_held()
        if create_only:
            from mrun.images.unstarted import record_unstarted

            record_unstarted(runtime, cid, bundle, remove)
            print(cid)
            return 0
        if not detach:
            if "stdin" not in attach if attach is not None else not kw.get("interactive"):
                no_stdin()
            shown = (1, 2) if attach is None else tuple(n for n, s in ((1, "stdout"), (2, "stderr")) if s in attach)
            tee = terminal_log = None
            options = CreateOptions()
            listening: list[Any] = []  # after a detach: the attach socket it listens on
            on_its_own: list[Any] = []  # after its caller has gone: the cgroup this process went to
            marks = runtime.store.cgroup_marks
            if detach_keys:
                options.detach_keys = detach_keys
                options.on_detach = lambda master: _detached(bundle, master, listening, marks, on_its_own)
            if not remove:
                from mrun.images import kept

                set_aside(bundle)
                # `rm -rf /run/mrun` loses it not
                options.started = lambda record: kept.keep(bundle, record, runtime.store.path(record.id))
                try:  # its output logged as it passes, as docker's
                    if o.tty and log_kept(bundle):  # by the terminal's relay, which shows it to us
                        from mrun.images.log_relay import Relay
                        from mrun.images.supervisor import log_options

                        terminal_log = Relay(bundle, **log_options(bundle), pipes=False)
                        options.terminal_log = lambda data: terminal_log.note(1, data)
                    elif log_kept(bundle):
                        from mrun.images import foreground_log

                        tee = foreground_log.start(bundle, shown)
                except OSError as e:  # (no room for its log): its output goes straight to us, as before
                    if callable(g.get("warn")):
                        g["warn"](f"container {cid!r} keeps no log: {in_words(e)}")
            elif detach_keys and log_kept(bundle):  # --rm: logged all the same, for an attach once detached
                from mrun.images.log_relay import Relay
                from mrun.images.supervisor import log_options

                try:
                    terminal_log = Relay(bundle, **log_options(bundle), pipes=False)
                    options.terminal_log = lambda data: terminal_log.note(1, data)
                except OSError:
                    terminal_log = None
            unproxied = not o.tty and kw.get("sig_proxy") is False and can_release()
            if tee is None and not o.tty and (shown != (1, 2) or unproxied):
                # -a: what is not shown goes nowhere here; --sig-proxy=false: its output stops
                # coming to the caller once a signal has ended it
                from mrun.images import foreground_log

                tee = foreground_log.start(bundle, shown, keep=False)
            if unproxied:
                options.unproxied = lambda signum: _unproxied(signum, tee, bundle, marks, on_its_own)
            options.started = _outliving_the_caller(options.started)
            try:
                code = runtime.run(cid, bundle, options, False, keep=True)
                for held in listening:  # no attacher is handed an ended run's terminal
                    held.stop_listening()
                if not remove:  # as docker (its runc shim): kept, with nothing of it running, and its code
                    kept.write_back(runtime, bundle, cid)  # its record removed while it ran (images/kept)
                    runtime.end_the_rest(cid)
                if tee is not None:
                    tee.end()  # all of its output out before its code is noted (`mrun wait` then reads the log)
                    tee = None
                with span("run record"):
                    record(bundle, code)  # with --rm too: a `wait` or `attach` its removal waits for reads it
                if remove:
                    with span("run delete"):
                        runtime.delete(cid, force=True)
                return code
            finally:
                if tee is not None:
                    tee.end()
                if terminal_log is not None:
                    terminal_log.close_log()
                if remove:  # docker's --rm: its anonymous volumes go with it
                    volumes.remove_anonymous(store.root, o.made_volumes)
                if on_its_own:  # its caller gone, it went to a cgroup of its own: left and removed now
                    from mrun.cgroups import beside

                    beside.leave(on_its_own[0])
        run_detached(runtime, cid, bundle, remove)  # its supervisor records the exit code, or removes it
        print(cid)
        held = held_signals()  # it runs, as docker's daemon would have made it: the status says we were told to end
        return 128 + held[0] if held else 0
    except BaseException:
        if not runtime.store.exists(cid):  # the runtime did not get as far as a container
            release(bundle, cid, runtime.store.root)
            volumes.remove_anonymous(store.root, o.made_volumes)
            _drop_cidfile(cidfile, closed=True)
        raise


NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")


def container_name(name: str) -> None:
    """docker's rule for --name: letters, digits, '_', '.' and '-', a letter or digit first (runc's
    ids also take '+', which names mrun's own cgroups beside a container's: cgroups.beside). One
    letter is taken, as mrun always took it (docker asks for two)."""
    if not (name[:1].isascii() and name[:1].isalnum() and set(name) <= NAME_CHARS):
        raise InvalidSpec(f"--name {name[:300]!r}: invalid container name, only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")


def _detach_keys(kw: dict[str, Any], terminal: bool) -> bytes:
    """docker's detach keys of a foreground `run -it` typed at a terminal (--detach-keys, else
    ctrl-p ctrl-q), where this run can let its caller go (a warm template's child, or a cold
    run's child: cli.cold_child) while it carries on; else none (docker reads them only from a
    terminal, and `run -ti < file` could hold them in its data). A bad --detach-keys is refused
    before anything is made."""
    from mrun.sandbox.console import parse_detach_keys

    keys = parse_detach_keys(kw.get("detach_keys") or "")
    if not (terminal and kw.get("interactive") and os.isatty(0)):
        return b""
    return keys if can_release() else b""


def _unproxied(signum: int, tee: Any, bundle: str, marks: str, on_its_own: list[Any]) -> None:
    """`run --sig-proxy=false` given a signal: it ends the caller alone, as it ends docker's
    client (status 128 + its number); the container runs on, its output into its log only (the
    tee shows no more), and this process carries on as its supervisor."""
    if tee is not None:
        tee.let_go()
    let_caller_go(128 + signum)
    _on_its_own(bundle, marks, on_its_own)


def _on_its_own(bundle: str, marks: str, on_its_own: list[Any]) -> None:
    """A run whose caller has gone, carrying on as its container's supervisor, goes where a
    detached one's is born (cgroups.beside): out of its caller's cgroup, whose end (a session's,
    a CI job's) would kill it. Whole (it may run threads: a terminal's relay), through
    cgroup.procs; ``leave`` at its end. Its OOM score goes down as a supervisor's does."""
    from mrun.cgroups import beside
    from mrun.images.supervisor import last_for_the_oom_killer

    if on_its_own:  # gone there already (a second signal to a --sig-proxy=false run)
        return
    last_for_the_oom_killer()  # and the OOM killer's last choice, as a detached container's is
    os.chdir("/")  # nor does it hold its caller's working directory any more
    cgroup = beside.prepare(bundle, marks)
    if cgroup is None:
        return
    try:
        cgroup.add(os.getpid())
    except (OSError, MrunError):
        pass
    on_its_own.append(cgroup)


def _detached(bundle: str, master: int, listening: list[Any], marks: str, on_its_own: list[Any]) -> Any:
    """A foreground `run -it` detached by its keys: the caller goes with status 0 (docker's), as
    if it had run `run -dit`, and this process carries on as its supervisor would: the relay
    logs the terminal's output, and the attach socket hands attachers the terminal (its
    master stays the relay's). -> that listener, or None where it could not be made."""
    from mrun.images.held_input import HeldInput

    held: Any = HeldInput(bundle, terminal=True, open_stdin=True)
    held.master = master
    try:
        held.listen()
        listening.append(held)
    except OSError:
        held = None
    let_caller_go(0)
    _on_its_own(bundle, marks, on_its_own)
    return held


def _outliving_the_caller(then: Any) -> Any:
    """A foreground run goes on once its container runs, should its caller be killed (`timeout
    -s KILL`, the OOM killer): the container runs on either way, as docker's does when its client
    is killed, and the child doing the work (the warm template's, or cold, the caller's own:
    cli.cold_child) still waits for it, notes its exit code (`wait`, `ps`, `inspect`) and removes
    a --rm one, as docker's daemon does."""

    def started(record: Any) -> None:
        import mrun.warm.client as warm  # (layer 1: the client alone, not the template's package)

        warm.outlive_caller = True
        if then is not None:
            then(record)

    return started


def _claim_cidfile(path: str) -> tuple[str, int] | None:
    """docker's --cidfile: made now, refused if it exists (another container's, maybe still
    running); the id is written once the container's bundle is made, and the file goes again
    if the container never came to be."""
    if not path:
        return None
    try:
        return path, os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    except FileExistsError:
        raise InvalidSpec(f"--cidfile {path}: the file exists; is another container using it? Remove it first") \
            from None
    except OSError as e:
        raise InvalidSpec(f"--cidfile {path}: {e.strerror or e}") from None


def _drop_cidfile(cidfile: tuple[str, int] | None, closed: bool = False) -> None:
    if cidfile is not None:
        if not closed:
            os.close(cidfile[1])
        try:
            os.unlink(cidfile[0])
        except OSError:
            pass


def inspect(g: dict[str, Any], names: list[str], format: str = "", type: str = "",  # noqa: A002
            size: bool = False) -> int:
    """docker's inspect: containers, or images where no container has the name (``type``: only
    those), several at once. One name: its document (mrun's, an object) or its refusal, as
    before; several: a JSON array of those found, each one not found said, exit status 1.
    ``format``: docker's Go template, a line per name, over docker's fields and mrun's own.
    ``size``: a container's ``size_rw`` and ``size_root_fs`` (docker's SizeRw, SizeRootFs)."""
    if type not in ("", "container", "image"):
        raise InvalidSpec(f"--type {type!r}: container or image")
    if not names:
        raise InvalidSpec("inspect: name at least one container or image")
    docs = []

    def one(name: str) -> None:
        kind, doc = _inspected(g, name, type)
        if size and kind == "container":
            doc["size_rw"], doc["size_root_fs"] = _sizes(_rt(g), doc["state"]) or (0, 0)
        docs.append((kind, doc))

    status = each(names, "inspect", one, one_raises=True)
    if format:
        from mrun.cli.template import render

        for kind, doc in docs:
            view = _docker_view(doc) if kind == "container" else _docker_image_view(doc)
            if "size_rw" in doc:
                view["SizeRw"], view["SizeRootFs"] = doc["size_rw"], doc["size_root_fs"]
            print(render(format, {**view, **doc}))
    elif len(names) == 1:
        print(jsonio.dumps(docs[0][1], indent=2))
    else:
        print(jsonio.dumps([doc for _kind, doc in docs], indent=2))
    return status


def _inspected(g: dict[str, Any], name: str, kind: str) -> tuple[str, dict[str, Any]]:
    """-> ("container" or "image", mrun's document of it)."""
    runtime = _rt(g)
    if names_a_container(runtime, name) and kind != "image":
        return "container", _container_doc(runtime, name)
    if kind == "container":
        raise NotFound(f"container {name!r} does not exist")
    store = _store(g)
    try:
        return "image", _image_doc(store, name)
    except NotFound:
        if kind == "image":
            raise
        raise NotFound(f"container or image {name!r} does not exist") from None


def _container_doc(runtime: Any, container_id: str) -> dict[str, Any]:
    record = runtime.store.load(container_id)
    from mrun.bundles import image_of

    image = image_of(record.bundle)
    network = _net_of(runtime, container_id)
    from mrun.images.supervisor import exit_of
    from mrun.images.unstarted import as_docker_sees

    state = as_docker_sees(runtime.state(container_id))
    from mrun.images.health import read as health_of

    doc = {"state": state, "image": image, "network": network, "config": record.config,
           "pid_start": record.pid_start, "state_dir": runtime.store.path(container_id)}
    if record.pid and state["status"] in (Status.STOPPED, Status.RUNNING, Status.PAUSED):
        doc["oom_killed"] = runtime.oom_killed(record)
    if (health := health_of(record.bundle)) is not None:
        doc["health"] = health
    ended = exit_of(record.bundle)  # a detached container's, as its supervisor saw it
    if state["status"] == Status.STOPPED:
        doc["exit"] = ended
    if ended is not None and isinstance(ended.get("restarts"), int):
        doc["restarts"] = ended["restarts"]  # docker's RestartCount, running or not
    elif record.pid:  # not one of `create IMAGE` that never ran: it has no process
        doc["backend"] = runtime.stats(container_id)["backend"]  # e.g. wasm: its store memory limit
    return doc


def _image_doc(store: ImageStore, ref: str) -> dict[str, Any]:
    """`image inspect`'s document: the index's entry and the image's config (its digest, which
    the entry names "config", is the image's id)."""
    from mrun.images import leases

    with leases.reading(store, [ref]) as [(name, entry)]:  # an rmi meanwhile: its config stays till read
        return {"name": name, "id": entry["config"], **entry, "config": store.read_json(entry["config"])}


def _docker_image_view(doc: dict[str, Any]) -> dict[str, Any]:
    """The fields of docker's image inspect that scripts read (``inspect -f`` of an image)."""
    config = doc.get("config") or {}
    return {"Id": doc.get("id", ""), "RepoTags": [doc.get("name", "")],
            "Created": config.get("created", ""), "Architecture": config.get("architecture", ""),
            "Os": config.get("os", ""), "Config": config.get("config") or {}}


UNKNOWN_EXIT = 255  # containerd's (and so docker's) exit status for an end no one saw; not 0, which says it succeeded


def _docker_view(doc: dict[str, Any]) -> dict[str, Any]:
    """The fields of `docker inspect` that scripts read, from mrun's own (``inspect -f``)."""
    state, config, ended = doc["state"], doc["config"] or {}, doc.get("exit") or {}
    process = config.get("process") or {}
    args, user = process.get("args") or [], process.get("user") or {}
    status = {"stopped": "restarting" if ended.get("restarting") else "exited", "creating": "created"}.get(
        state["status"], state["status"])
    live = state["status"] in ("running", "paused")
    own = config.get("annotations") or {}
    labels = {k: v for k, v in own.items() if not ann.is_reserved(k)}
    policy = own.get(ann.RESTART) or "no"
    if ann.IMAGE in own:  # update --restart writes it into its bundle
        from mrun.images.supervisor import policy_now

        policy = policy_now(state.get("bundle") or "", policy)
    policy_name, _, retries = policy.partition(":")
    code, error = ended.get("exit_code"), ended.get("error") if isinstance(ended.get("error"), str) else ""
    if not isinstance(code, int):
        code = 0  # not ended (yet), as docker's
        if status == "exited":  # ended with no one left to note it (ps: "Exited (?)")
            code, error = UNKNOWN_EXIT, error or "its exit code was not kept (its runner was killed before it ended)"
    bundle = state.get("bundle") or ""
    mounts = _docker_mounts(state["id"], bundle, config)
    return {
        "Id": state["id"], "Name": "/" + state["id"], "Created": state.get("created", ""),
        "Path": args[0] if args else "", "Args": args[1:], "Image": (doc.get("image") or {}).get("config", ""),
        "RestartCount": doc.get("restarts", 0),
        "State": {"Status": status, "Running": state["status"] == "running", "Paused": state["status"] == "paused",
                  "Restarting": bool(ended.get("restarting")), "OOMKilled": bool(doc.get("oom_killed")),
                  "Dead": False, "Pid": state.get("pid", 0) if live else 0,
                  "ExitCode": code, "StartedAt": _started_at(doc), "FinishedAt": ended.get("finished", ""),
                  "Error": error, **({"Health": doc["health"]} if doc.get("health") else {})},
        "HostConfig": {"RestartPolicy": {"Name": policy_name, "MaximumRetryCount": int(retries or 0)},
                       "Runtime": own.get(ann.OCI_RUNTIME) or "mrun",
                       "AutoRemove": own.get(ann.REMOVE) == "true", **_docker_host_config(doc, mounts)},
        "LogPath": os.path.join(bundle, "log") if ann.IMAGE in own else "",
        **{key: _name_file(doc, name) for key, name in (("ResolvConfPath", "resolv.conf"),
                                                         ("HostnamePath", "hostname"), ("HostsPath", "hosts"))},
        "Driver": "overlay" if ann.IMAGE in own else "", "Platform": "linux",  # as info says
        "GraphDriver": {"Name": "overlay", "Data": {"MergedDir": os.path.join(bundle, "rootfs"),
                                                     "UpperDir": os.path.join(bundle, "upper"),
                                                     "WorkDir": os.path.join(bundle, "work")}}
        if ann.IMAGE in own else {"Name": "", "Data": {}},
        "AppArmorProfile": process.get("apparmorProfile") or "", "ProcessLabel": process.get("selinuxLabel") or "",
        "MountLabel": (config.get("linux") or {}).get("mountLabel") or "",
        "Config": {"Image": (doc.get("image") or {}).get("image", ""), "Hostname": config.get("hostname", ""),
                   "Domainname": config.get("domainname", ""),
                   "Env": process.get("env") or [], "Cmd": args, "WorkingDir": process.get("cwd", ""),
                   "Labels": labels, "User": f"{user.get('uid', 0)}:{user.get('gid', 0)}",
                   "Tty": process.get("terminal") is True, "OpenStdin": own.get(ann.STDIN) == "open"},
        "NetworkSettings": {"IPAddress": (doc.get("network") or {}).get("ip", ""), "Ports": _docker_ports(doc),
                            "MacAddress": (doc.get("network") or {}).get("mac", ""),  # --mac-address's
                            "Networks": _docker_networks(doc.get("network") or {})},
        "Mounts": mounts,
    }


def _started_at(doc: dict[str, Any]) -> str:
    """docker's State.StartedAt: when its process began (its start time in clock ticks), in UTC;
    docker's zero time for one that never ran."""
    from mrun.cli.docker_rows import _started
    from mrun.state import rfc3339

    epoch = _started(doc.get("pid_start"))
    return "0001-01-01T00:00:00Z" if epoch is None else rfc3339(epoch)


def _docker_host_config(doc: dict[str, Any], mounts: list[dict[str, Any]]) -> dict[str, Any]:
    """docker's HostConfig fields a script reads: its network mode, limits, ports and binds
    (``mounts``: its docker Mounts)."""
    from mrun.cli.docker_rows import network_of
    from mrun.network.store import DEFAULT_NETWORK

    config = doc.get("config") or {}
    linux = config.get("linux") or {}
    resources = linux.get("resources") or {}
    memory, cpu = resources.get("memory") or {}, resources.get("cpu") or {}
    quota, period = cpu.get("quota") or 0, cpu.get("period") or 0
    try:
        joined = jsonio.loads((config.get("annotations") or {}).get(ann.JOINED) or "{}")
    except ValueError:  # a bundle's own annotation, written by hand: no mode read from it
        joined = {}
    mode = network_of(config, doc.get("network")).split(",")[0]
    if isinstance(joined, dict) and isinstance(joined.get("network"), str):
        mode = f"container:{joined['network']}"
    binds = [f"{m.get('Name') or m['Source']}:{m['Destination']}{'' if m['RW'] else ':ro'}" for m in mounts]
    return {"NetworkMode": "bridge" if mode == DEFAULT_NETWORK else mode,
            "Privileged": False if not config else _privileged(config),
            "ReadonlyRootfs": bool((config.get("root") or {}).get("readonly")),
            "Memory": memory.get("limit") or 0, "MemoryReservation": memory.get("reservation") or 0,
            "MemorySwap": memory.get("swap") or 0, "CpuShares": cpu.get("shares") or 0,
            "CpuQuota": quota, "CpuPeriod": period,
            "NanoCpus": quota * 1_000_000_000 // period if quota > 0 and period else 0,
            "CpusetCpus": cpu.get("cpus") or "", "CpusetMems": cpu.get("mems") or "",
            "PidsLimit": (resources.get("pids") or {}).get("limit") or 0,
            "PortBindings": _docker_ports(doc), "Binds": binds}


def _privileged(config: dict[str, Any]) -> bool:
    """docker's --privileged as its config shows it: every capability, no seccomp filter, no
    masked paths (what run_flags makes of the flag)."""
    from mrun.kernel.capnames import NAMES
    from mrun.sandbox.caps import last_cap

    linux = config.get("linux") or {}
    bounding = ((config.get("process") or {}).get("capabilities") or {}).get("bounding") or []
    every = {f"CAP_{name}" for name in NAMES[: last_cap() + 1]}
    return not linux.get("seccomp") and not linux.get("maskedPaths") and every <= set(bounding)


def _name_file(doc: dict[str, Any], name: str) -> str:
    """Its /etc file of mrun's (hosts, hostname, resolv.conf) on the host, or "" where it has none:
    a bridge container's in its state, a host-network one's copies in its bundle (`mrun run`'s
    alone: a runc bundle's files are its maker's, bound or not)."""
    ours = ann.IMAGE in ((doc.get("config") or {}).get("annotations") or {})
    for place in (doc.get("state_dir") or "", (doc.get("state") or {}).get("bundle") or "" if ours else ""):
        path = os.path.join(place, name)
        if place and os.path.isfile(path):
            return path
    return ""


def _docker_mounts(container_id: str, bundle: str, config: dict[str, Any]) -> list[dict[str, Any]]:
    """docker's Mounts: its volumes and bind mounts (-v, --mount, its image's Volumes), not the
    files mrun binds beside them nor the tmpfs of /dev."""
    from mrun.images import volumes
    from mrun.images.containers import user_mounts

    found = user_mounts(config, container_id)
    store_root = os.path.dirname(os.path.dirname(bundle)) if bundle else ""
    named = volumes.names_of_mounts(store_root, found) if store_root else [None] * len(found)
    out = []
    for m, name in zip(found, named, strict=True):
        source, options = m.get("source", ""), m.get("options") or []
        rw = "ro" not in options
        propagation = next((o for o in options if o in ("rprivate", "private", "rshared", "shared", "rslave",
                                                        "slave")), "rprivate")
        entry = {"Type": "volume" if name else "bind", "Source": source, "Destination": m.get("destination", ""),
                 "Mode": "" if rw else "ro", "RW": rw, "Propagation": "" if name else propagation}
        if name:
            entry.update(Name=name, Driver="local")
        out.append(entry)
    return out


def port(g: dict[str, Any], container_id: str, private_port: str | None = None) -> int:
    """docker's port: ``80/tcp -> 0.0.0.0:32768`` for each published port, or for one the host
    address alone; one not published is an error, as docker's."""
    runtime = _rt(g)
    runtime.store.load(container_id)  # an unknown container: its one line
    published = [p for p in (_net_of(runtime, container_id) or {}).get("ports") or [] if isinstance(p, dict)]
    if private_port is None:
        for p in published:
            print(f"{p.get('port')}/{p.get('proto')} -> {p.get('host_ip') or '0.0.0.0'}:{p.get('host_port')}")
        return 0
    number, _, proto = private_port.partition("/")
    if not number.isdigit() or (proto or "tcp") not in ("tcp", "udp"):
        raise InvalidSpec(f"port {private_port!r}: PORT[/tcp|udp] expected")
    wanted = f"{int(number)}/{proto or 'tcp'}"
    found = [p for p in published if f"{p.get('port')}/{p.get('proto')}" == wanted]
    if not found:
        raise NotFound(f"no public port {wanted!r} published for {container_id}")
    for p in found:
        print(f"{p.get('host_ip') or '0.0.0.0'}:{p.get('host_port')}")
    return 0


def _docker_networks(plan: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """docker's NetworkSettings.Networks: each network it is on, its address there ({{(index
    .NetworkSettings.Networks "net").IPAddress}}, a script's usual read)."""
    out = {}
    for p in [plan, *(plan.get("more") or {}).values()]:
        if not isinstance(p, dict) or not isinstance(p.get("network"), str):
            continue
        definition = p.get("definition") if isinstance(p.get("definition"), dict) else {}
        out[p["network"]] = {"IPAddress": p.get("ip", ""), "Gateway": definition.get("gateway", ""),
                             "IPPrefixLen": int(str(definition.get("subnet", "/0")).partition("/")[2] or 0),
                             "MacAddress": p.get("mac", ""), "Aliases": p.get("names") or [],
                             "NetworkID": definition.get("bridge", "")}
    return out


def _docker_ports(doc: dict[str, Any]) -> dict[str, list[dict[str, str]]]:
    """docker's NetworkSettings.Ports: {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "32768"}]}."""
    out: dict[str, list[dict[str, str]]] = {}
    for p in (doc.get("network") or {}).get("ports") or []:
        if isinstance(p, dict):
            out.setdefault(f"{p.get('port')}/{p.get('proto')}", []).append(
                {"HostIp": p.get("host_ip") or "0.0.0.0", "HostPort": str(p.get("host_port"))})
    return out


def logs(g: dict[str, Any], container_id: str, follow: bool, tail: str = "all", timestamps: bool = False,
         since: str = "", until: str = "", details: bool = False) -> int:
    runtime = _rt(g)
    bundle = runtime.store.load(container_id).bundle
    from mrun.images import log_relay
    from mrun.images.log_relay import replaced, rotated

    path = os.path.join(bundle, "log")
    older = rotated(bundle)  # --log-opt max-file: each at most max-size, so read whole
    if not os.path.exists(path) and not older:  # (only older ones: a rotation was interrupted)
        from mrun.images.unstarted import never_started

        if never_started(bundle) is not None:
            return 0  # one of `create` that has not run: nothing said yet (docker's)
        raise NotFound(f"container {container_id!r} has no log (none is kept with --log-driver none, nor of a "
                       "foreground `run -t`)")
    if tail != "all" and not (tail.isascii() and tail.isdigit()):
        raise InvalidSpec(f"--tail {tail!r}: a number of lines, or all")
    if timestamps or since or until or log_relay.indexed(bundle):  # not indexed: noted by an older mrun
        return _timed_logs(runtime, container_id, bundle, follow, tail, timestamps, since, until)
    stopped = False
    f = _open_log(path)  # replaced when the log rotates; closed below
    try:
        if older:
            data = b"".join(_read_whole(p) for p in older) + f.read()
            if tail != "all":
                data = b"".join(data.splitlines(keepends=True)[-int(tail):]) if int(tail) else b""
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
        elif tail != "all":
            f.seek(_tail_offset(f, int(tail)))
        while True:
            chunk = f.read(1 << 16)
            if chunk:
                sys.stdout.buffer.write(chunk)
                sys.stdout.buffer.flush()
                continue
            if not follow or stopped:
                return 0
            if replaced(path, f) or (not hasattr(f, "name") and os.path.exists(path)):  # rotated: on to the new log
                f.close()
                f = _open_log(path)
                continue
            # once stopped, read to the end once more: what it wrote between our last read and
            # its exit is in the file, and would be left out by stopping at this check
            stopped = _ended(runtime, container_id)
            if not stopped:
                time.sleep(0.1)
    finally:
        f.close()


def _ended(runtime: Any, container_id: str) -> bool:
    """Whether a followed container has stopped, or been removed (`rm -f`): docker's `logs -f`
    then ends as at a stop. It was "container ... does not exist", exit 1, mid-stream."""
    try:
        return runtime.status(runtime.store.load(container_id)) == Status.STOPPED
    except NotFound:
        return True


def _open_log(path: str) -> Any:
    """The current log, or an empty one where a rotation was interrupted before it was made anew."""
    try:
        return open(path, "rb")  # noqa: SIM115 - the caller's to close
    except FileNotFoundError:
        import io

        return io.BytesIO()


def _read_whole(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:  # dropped by a rotation meanwhile
        return b""



def _timed_logs(runtime: Any, container_id: str, bundle: str, follow: bool, tail: str, timestamps: bool,
                since: str, until: str) -> int:
    """The log as its supervisor noted it (images.log_relay): the container's stderr on ours, as
    docker's logs; with -t each line's time, with --since and --until (a time, a Unix time or a
    duration ago) the lines of that span."""
    from mrun.images import log_relay

    if not log_relay.indexed(bundle):
        raise MrunError(f"container {container_id!r}: its log has no times noted (it was started by an older mrun); "
                        "-t, --since and --until need them")
    now = time.time_ns()
    since_ns = log_time("--since", since, now) if since else 0
    until_ns = log_time("--until", until, now) if until else 0
    reader = log_relay.TimedReader(bundle)
    try:
        if tail != "all" and not since_ns and reader.start_at(0):  # the last lines of a large log: from its end
            start = _tail_offset(reader.log, int(tail))
            if start > 0 or not int(tail):  # all of them in the current log
                reader.start_at(start)
                tail = "all"
            else:
                reader.close()
                reader = log_relay.TimedReader(bundle)
        return _follow_timed(runtime, container_id, reader, follow, tail, timestamps, since_ns, until_ns)
    finally:
        reader.close()


def _follow_timed(runtime: Any, container_id: str, reader: Any, follow: bool, tail: str, timestamps: bool,
                  since_ns: int, until_ns: int) -> int:
    whole = not timestamps and tail == "all"  # no line's time or start needed: a stream's run at once
    pieces = reader.read(since_ns, until_ns, whole)  # (time, text, starts a line, stream), read as written out
    if tail != "all":  # the last N lines: from the piece that starts the Nth line from the end
        pieces = list(pieces)
        starts = [i for i, piece in enumerate(pieces) if piece[2]]
        count = int(tail)
        pieces = [] if not count else pieces[starts[-count]:] if len(starts) >= count else pieces
    stopped = False
    while True:
        write_pieces(pieces, timestamps)
        if not follow or stopped or (until_ns and time.time_ns() > until_ns):
            return 0
        stopped = _ended(runtime, container_id)  # then one read more
        if not stopped:
            time.sleep(0.1)
        pieces = reader.read(since_ns, until_ns, whole)


def write_pieces(pieces: Any, timestamps: bool = False) -> None:
    """A log's pieces (log_relay.TimedReader) on our stdout and stderr as their streams were, in
    the order written where both go to one place; with ``timestamps``, each line's time first."""
    out = {1: sys.stdout.buffer, 2: sys.stderr.buffer}
    last = 1
    for at, text, starts, stream in pieces:
        if stream != last:
            out[last].flush()
            last = stream
        if timestamps and starts:
            out[stream].write(f"{_rfc3339_nano(at)} ".encode())
        out[stream].write(text)
    out[1].flush()
    out[2].flush()


def _rfc3339_nano(ns: int) -> str:
    """docker's logs -t time: nine digits of the second, UTC."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 1_000_000_000)) + f".{ns % 1_000_000_000:09d}Z"


def log_time(flag: str, text: str, now_ns: int) -> int:
    """docker's --since/--until value in ns since the epoch: an RFC 3339 time (a date alone, or
    no zone: the local time), a Unix time (1700000000.5), or a Go duration before now (10m, 1h30m)."""
    import re

    from mrun.units import go_duration

    ago = go_duration(text) if text != "0" else None  # "0" is a Unix time here, as docker reads it
    if ago is not None:
        return now_ns - int(ago * 1e9)
    if re.fullmatch(r"\d+(\.\d{1,9})?", text):
        whole, _, fraction = text.partition(".")
        return int(whole) * 1_000_000_000 + int((fraction + "000000000")[:9])
    from datetime import datetime

    # the fraction apart: through a float, a nanosecond time came back up to 256 ns off, and a
    # line's own time given back as --since could leave that line out
    parts = re.fullmatch(r"(\d{4}-\d\d-\d\d(?:[T ]\d\d:\d\d(?::\d\d)?)?)(?:\.(\d{1,9}))?(Z|[+-]\d\d:?\d\d)?", text)
    try:
        if parts is None:
            raise ValueError(text)
        zone = "+00:00" if parts[3] == "Z" else parts[3] or ""
        seconds = int(datetime.fromisoformat(parts[1] + zone).timestamp())  # whole seconds: exact
    except ValueError:
        raise InvalidSpec(f"{flag} {text!r}: a time (2026-01-02T15:04:05Z), a Unix time, or a duration (10m)") \
            from None
    return seconds * 1_000_000_000 + int(((parts[2] or "") + "000000000")[:9])


def _tail_offset(f: Any, lines: int) -> int:
    """Where the last ``lines`` lines of ``f`` begin (an unfinished last line counts as one),
    found by reading backwards in blocks: a log may be large."""
    end = f.seek(0, os.SEEK_END)
    if lines == 0 or end == 0:
        return end
    f.seek(end - 1)
    pos = end - 1 if f.read(1) == b"\n" else end  # the last line's own newline starts no line
    seen = 0
    while pos > 0:
        start = max(0, pos - (1 << 16))
        f.seek(start)
        data = f.read(pos - start)
        i = len(data)
        while (i := data.rfind(b"\n", 0, i)) >= 0:
            seen += 1
            if seen == lines:
                return start + i + 1
        pos = start
    return 0


def rm(g: dict[str, Any], container_ids: list[str], force: bool, volumes: bool = False) -> int:
    """Each container is removed as runc's delete removes it (and with -f, what a killed `mrun
    run` left); its name is printed once it is gone, as docker prints it."""
    from mrun.images.supervisor import stopped_by_user

    def one(cid: str) -> None:
        known = _rt(g).store.exists(cid) or os.path.isdir(os.path.join(g["image_root"], "containers", cid))
        stopped_by_user(_rt(g), cid)  # its supervisor (--restart) must not start it again meanwhile
        used = _volumes_of(g, cid) if volumes else []
        remove_container(g, cid, force)
        if used:  # docker's rm -v: its anonymous volumes (named ones stay)
            from mrun.images.volumes import remove_anonymous

            remove_anonymous(g["image_root"], used)
        if known:
            print(as_typed(g, cid))

    return each(container_ids, "rm", one)


def _volumes_of(g: dict[str, Any], container_id: str) -> list[str]:
    from mrun.images.volumes import of_container

    try:
        return of_container(g["image_root"], _rt(g).store.load(container_id).config)
    except MrunError:
        return []


def container(g: dict[str, Any], action: str, force: bool = False, format: str = "table",  # noqa: A002
              quiet: bool = False, all: bool = False, filter: tuple[str, ...] = (),  # noqa: A002
              last: int = -1, latest: bool = False, no_trunc: bool = False, size: bool = False) -> int:
    """docker's container ls (`ps`) and prune: each stopped container removed as `mrun rm` removes it."""
    if action in ("ls", "list"):
        return list_containers(g, format, list(filter), quiet, all, 1 if latest else last, no_trunc, size)
    if action != "prune":
        raise InvalidSpec(f"container: unknown action {action!r} (ls or prune)")
    from mrun.images.supervisor import exit_of

    chosen = prune_filter(list(filter), "container")
    runtime = _rt(g)
    status = 0
    for state in runtime.list():
        if state["status"] != Status.STOPPED or (exit_of(state["bundle"]) or {}).get("restarting"):
            continue  # running, or about to start again (--restart): docker leaves both
        if not chosen(state.get("annotations") or {}, str(state.get("created") or "")):
            continue
        try:
            remove_container(g, state["id"], False)
            print(state["id"])
        except MrunError as e:  # removed meanwhile, or started again: the rest still go
            print(f"mrun: {e}", file=sys.stderr)
            status = 1
    return status


def _volumes_from(g: dict[str, Any], text: str) -> list[dict[str, Any]]:
    """docker's --volumes-from CONTAINER[:ro|rw]: the container's volumes and bind mounts
    (``containers.user_mounts``), at the same places; ro or rw for all of them, else each as it
    is there. Its volumes then count it among their users, as docker's do."""
    from mrun.cli.short_ids import resolve
    from mrun.images.containers import user_mounts

    name, _, mode = text.partition(":")
    if not name or mode not in ("", "ro", "rw"):
        raise InvalidSpec(f"--volumes-from {text!r}: CONTAINER[:ro|rw] expected")
    name = resolve(g, name)  # docker's short ids
    record = _rt(g).store.load(name)
    shared = []
    for m in user_mounts(record.config, name):
        options = [o for o in m.get("options") or [] if o not in ("ro", "rw")]
        writable = mode == "rw" or (not mode and "ro" not in (m.get("options") or []))
        shared.append({"destination": m["destination"], "type": "bind", "source": m["source"],
                       "options": [*options, "rw" if writable else "ro"]})
    return shared


def labels_pass(own: dict[str, str], labels: list[str], not_labels: list[str]) -> bool:
    """A prune filter's label=KEY[=VALUE] (each must match) and label!=KEY[=VALUE] (none may)."""
    return all(labelled(own, v) for v in labels) and not any(labelled(own, v) for v in not_labels)


def prune_filter(filters: list[str], what: str) -> Callable[[dict[str, str], str], bool]:
    """docker's ``container prune --filter`` and ``image prune --filter``: label=KEY[=VALUE] (each
    must match), label!=KEY[=VALUE] (none may), until=TIME (made before it; a time, a Unix time or
    a duration before now). Any other key is refused: a filter passed over would remove what it
    was there to keep. -> chosen(labels, created: RFC 3339)."""
    import time

    labels: list[str] = []
    not_labels: list[str] = []
    until = 0
    for text, key, value in filter_pairs(filters, ("label", "label!", "until"),
                                         f"{what} prune takes label=KEY[=VALUE], label!=KEY[=VALUE] or until=TIME"):
        if key == "until":
            until = log_time(f"--filter {text!r}:", value, time.time_ns())
        else:
            (labels if key == "label" else not_labels).append(value)

    def chosen(own: dict[str, str], created: str) -> bool:
        if not labels_pass(own, labels, not_labels):
            return False
        if until:
            try:
                return log_time("created", created, 0) < until
            except InvalidSpec:
                return False  # no time it was made: not shown to be before
        return True

    return chosen


def volume(g: dict[str, Any], action: str, names: list[str], quiet: bool = False,
           all: bool = False, format: str = "table", force: bool = False, name: str = "",  # noqa: A002
           filter: tuple[str, ...] = (), label: tuple[str, ...] = (), driver: str = "local",  # noqa: A002
           opt: tuple[str, ...] = ()) -> int:
    """docker's volume verbs over <image root>/volumes (mrun.images.volumes)."""
    from mrun.images import volumes

    root = g["image_root"]
    for given, flag in ((name, "--name"), (label, "--label"), (opt, "--opt"), (driver != "local", "--driver")):
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
        from mrun.cli.template import render

        described = [volumes.describe(root, n) for n in names]  # each found before any line
        for d in described:
            print(render(template, {**volume_view(d), **d}))
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


def _signal_flag(signal: str) -> int | None:
    """docker's stop -s and restart -s, read before any container is touched."""
    from mrun.kernel.proc import parse_signal

    if not signal:
        return None
    try:
        return parse_signal(signal)
    except MrunError as e:
        raise InvalidSpec(f"--signal: {e}") from None


def stop(g: dict[str, Any], container_ids: list[str], time: int | None, signal: str = "") -> int:  # noqa: A002
    number = _signal_flag(signal)

    def one(cid: str) -> None:
        _stop(g, cid, time, number)
        print(as_typed(g, cid))

    return each(container_ids, "stop", one)


def restart(g: dict[str, Any], container_ids: list[str], time: int | None, signal: str = "") -> int:  # noqa: A002
    """docker's restart: stop (as `mrun stop`), then start again in place (as `mrun start`)."""
    from mrun.images.supervisor import restartable, start_again

    number = _signal_flag(signal)

    def one(cid: str) -> None:
        if not restartable(_rt(g).store.load(cid)):  # before it is stopped, not after
            raise MrunError(f"container {cid!r}: only a container of `mrun run -d` starts again")
        _stop(g, cid, time, number)
        start_again(_rt(g), cid)
        print(as_typed(g, cid))

    return each(container_ids, "restart", one)


def wait(g: dict[str, Any], container_ids: list[str]) -> int:
    """docker's wait: until each container stops, then its exit code (what its supervisor
    recorded: only a `mrun run -d` container has one)."""
    import time as clock

    from mrun import bundles
    from mrun.images.supervisor import exit_code

    def one(cid: str) -> None:
        runtime = _rt(g)
        bundle = runtime.store.load(cid).bundle  # one that is not there is said at once
        with bundles.reading(bundle, cid, runtime.store.root):  # its exit note stays until we have read it
            while (code := exit_code(runtime, cid, bundle)) is None:
                clock.sleep(0.05)
        print(code)

    return each(container_ids, "wait", one)


def _stop(g: dict[str, Any], container_id: str, time: int | None, signal: int | None = None) -> None:  # noqa: A002
    """As docker's stop: ``signal`` (-s), else the container's stop signal; SIGKILL after ``time``."""
    import time as clock

    from mrun.images.supervisor import stopped_by_user
    from mrun.kernel.proc import parse_signal

    runtime = _rt(g)
    stopped_by_user(runtime, container_id)  # before anything: its supervisor must not start it again
    record = runtime.store.load(container_id)
    if runtime.status(record) == Status.STOPPED:
        return
    annotations = record.config.get("annotations") or {}
    stop_signal = annotations.get(ann.STOP_SIGNAL) or "SIGTERM"
    if time is None:  # docker's: the container's --stop-timeout, else 10 seconds
        own = annotations.get(ann.STOP_TIMEOUT, "")
        time = int(own) if own.lstrip("-").isdigit() and own.isascii() and int(own) >= -1 else 10
    try:
        runtime.kill(container_id, parse_signal(stop_signal) if signal is None else signal)
    except NotFound:  # it ended and its supervisor removed it (run -d --rm) since we looked
        return
    deadline = clock.monotonic() + time if time >= 0 else float("inf")
    while not _stopped_or_gone(runtime, container_id):
        if clock.monotonic() > deadline:
            try:
                runtime.kill(container_id, 9, all_processes=True)
            except NotFound:  # removed meanwhile (run -d --rm: its supervisor did)
                break
            deadline = clock.monotonic() + 10
        clock.sleep(0.05)
    from mrun.images.supervisor import exit_of

    settle = clock.monotonic() + 2  # its supervisor writes the exit code a moment after the exit
    while os.path.exists(os.path.join(record.bundle, "log")) and exit_of(record.bundle) is None:
        if clock.monotonic() > settle:
            break
        clock.sleep(0.02)


def _stopped_or_gone(runtime: Any, container_id: str) -> bool:
    """Stopped, or removed by its supervisor once stopped (`mrun run -d --rm`)."""
    try:
        return runtime.status(runtime.store.load(container_id)) == Status.STOPPED
    except NotFound:
        return True


def list_containers(g: dict[str, Any], format: str, filters: list[str], quiet: bool,  # noqa: A002
                    every: bool = True, last: int = -1, whole: bool = False, sized: bool = False) -> int:
    """docker's ps: without ``every`` (-a) the containers that run (running, paused, or about to
    start again under --restart), as docker lists them; a status filter asks for every one.
    ``last`` (-n, -l): the N created last, in every state, newest first (0: every one);
    ``whole``: commands not cut (--no-trunc); ``sized``: their sizes (-s)."""
    from mrun.bundles import image_of
    from mrun.images.supervisor import exit_of
    from mrun.images.unstarted import as_docker_sees

    runtime = _rt(g)
    wanted = _ps_filters(filters)
    every = every or "status" in wanted or "exited" in wanted or last >= 0
    listed = list(map(as_docker_sees, runtime.list()))
    if "before" in wanted or "since" in wanted:  # docker's: the named container's time, by name or id prefix
        wanted["_created"] = [_created_of(listed, v) for v in wanted.pop("before", [])]
        wanted["_created_after"] = [_created_of(listed, v) for v in wanted.pop("since", [])]

    def config_of(container_id: str) -> dict[str, Any]:
        try:
            return runtime.store.load(container_id).config
        except MrunError:
            return {}

    states = [s for s in listed if (every or _runs(s, exit_of)) and
              _matches(s, wanted, image_of, exit_of, config_of, lambda cid: _net_of(runtime, cid))]
    states.sort(key=lambda s: s.get("created") or "", reverse=True)  # docker's order: the newest first
    if last >= 0:
        states = states[:last] if last else states
    if quiet:
        for state in states:
            print(state["id"])
        if every and not wanted and last < 0:  # what `mrun rm -f $(mrun ps -aq)` should take away too
            for bundle in _orphans(g):
                print(os.path.basename(bundle))
        return 0
    if format == "json":
        print(jsonio.dumps(states))
        return 0
    from mrun.cli.docker_rows import PS_HEADERS, ps_row

    docker_rows = []
    for s in states:
        try:
            record = runtime.store.load(s["id"])
        except MrunError:
            continue
        stopped = s["status"] == Status.STOPPED
        row = ps_row(s, record, (image_of(s["bundle"]) or {}).get("image", ""),
                     exit_of(s["bundle"]) if stopped else None, _net_of(runtime, s["id"]))
        docker_rows.append({**row, "Size": _size_of(runtime, s) if sized or ".Size" in format else ""})
    if format not in ("table", ""):  # docker's Go template (mrun.cli.listing)
        from mrun.cli.listing import formatted

        for line in formatted(format, docker_rows, PS_HEADERS):
            print(line)
        return 0
    # docker's own table: its columns, its words ("Up 5 seconds", "Exited (0) 2 minutes ago")
    columns = ("ID", "Image", "Command", "RunningFor", "Status", "Ports", "Names", *(("Size",) if sized else ()))
    rows = [tuple(PS_HEADERS[c] for c in columns)]
    for row in docker_rows:
        command = jsonio.loads(row["Command"])  # docker's: cut at 20 characters, then quoted as Go quotes
        if not whole and len(command) > 20:
            command = command[:19] + "\u2026"
        row["Command"] = '"' + "".join(c if c.isprintable() and c not in '"\\' else jsonio.dumps(c)[1:-1]
                                       for c in command) + '"'
        rows.append(tuple(row[c] for c in columns))
    for bundle in _orphans(g) if last < 0 else ():  # a killed `mrun run` left these: say how they go
        meta = image_of(bundle) or {}
        name = os.path.basename(bundle)
        orphan = {"ID": name, "Image": meta.get("image", "?"), "Status": "Orphaned (mrun rm -f)", "Names": name}
        rows.append(tuple(orphan.get(c, "") for c in columns))
    print_table(rows)
    return 0


def _size_of(runtime: Any, state: dict[str, Any]) -> str:
    """docker's ps -s: the writable layer's size, and with its image's layers (virtual)."""
    from mrun.cli.listing import human_size

    sizes = _sizes(runtime, state)
    return f"{human_size(sizes[0])} (virtual {human_size(sizes[1])})" if sizes else "0B"


def _sizes(runtime: Any, state: dict[str, Any]) -> tuple[int, int] | None:
    """(the writable layer's bytes, with its image's layers); None for a bundle's container,
    whose rootfs is its owner's, no layer of ours."""
    from mrun.bundles import image_of, made_for
    from mrun.cli.disk_usage import tree_size
    from mrun.images.store import ImageStore

    bundle = state.get("bundle") or ""
    if not made_for(bundle, state["id"], runtime.store.root):
        return None
    own = under = tree_size(os.path.join(bundle, "upper"))
    store = ImageStore(os.path.dirname(os.path.dirname(bundle)))
    for digest in (image_of(bundle) or {}).get("layers") or []:
        try:
            under += tree_size(store.layer_dir(digest))
        except (MrunError, TypeError):  # a damaged image.json: what can be counted is
            continue
    return own, under


def _orphans(g: dict[str, Any]) -> list[str]:
    """The bundles a killed `mrun run` left, with no container recorded."""
    if not os.path.isdir(g["image_root"]):
        return []
    from mrun.images.containers import orphans

    return orphans(_store(g), earlier_boot=True)


_PS_FILTERS = ("label", "name", "id", "status", "ancestor", "health", "exited", "before", "since", "network", "volume")


def _net_of(runtime: Any, container_id: str) -> dict[str, Any] | None:
    """A container's net.json (its network, address and published ports), if it has one, with
    its plans on its other networks under "more" (network -> plan: `network connect`'s)."""
    plan = jsonio.load_object(runtime.store.path(container_id, PLAN))
    if plan is not None:
        from mrun.network.attach import more_plans_read

        if more := more_plans_read(runtime.store.path(container_id)):
            plan["more"] = dict(sorted(more.items()))
    return plan


def _runs(state: dict[str, Any], exit_of: Any) -> bool:
    return state["status"] in (Status.RUNNING, Status.PAUSED) or (
        state["status"] == Status.STOPPED and bool((exit_of(state.get("bundle") or "") or {}).get("restarting")))


def _ps_filters(filters: list[str]) -> dict[str, list[str]]:
    """docker's ``ps --filter KEY=VALUE``s by key (one key's values: any may match; label's: all)."""
    wanted: dict[str, list[str]] = {}
    for text, key, value in filter_pairs(filters, _PS_FILTERS,
                                         f"KEY=VALUE expected, KEY one of {', '.join(_PS_FILTERS)}"):
        if key == "status" and value not in ("created", "running", "paused", "exited", "stopped", "creating"):
            raise InvalidSpec(f"--filter {text!r}: the status is created, running, paused or exited")
        if key == "health" and value not in ("starting", "healthy", "unhealthy", "none"):
            raise InvalidSpec(f"--filter {text!r}: the health is starting, healthy, unhealthy or none")
        if key == "exited" and not (value.isascii() and value.lstrip("-").isdigit() and len(value) < 12):
            raise InvalidSpec(f"--filter {text!r}: the exit code is a number")
        if key == "name":
            import re

            try:
                re.compile(value)
            except re.error as e:
                raise InvalidSpec(f"--filter {text!r}: {e}") from None
        wanted.setdefault(key, []).append(value)
    return wanted


def _created_of(states: list[dict[str, Any]], name: str) -> str:
    """When the container ``name`` (its id, or the start of one) was made, for --filter before=/since=."""
    found = [s for s in states if s["id"] == name] or [s for s in states if s["id"].startswith(name)]
    if len(found) != 1:
        raise NotFound(f"--filter: container {name!r} does not exist" if not found else
                       f"--filter: {name!r} names more than one container")
    return str(found[0].get("created") or "")


def _matches(state: dict[str, Any], wanted: dict[str, list[str]], image_of: Any, exit_of: Any,
             config_of: Any = None, net_of: Any = None) -> bool:
    """Whether a container's state (runtime.list) passes every key of ``wanted``."""
    annotations = state.get("annotations") or {}
    for key, values in wanted.items():
        if key == "label":
            if not all(labelled(annotations, value) for value in values):
                return False
            continue
        if key in ("_created", "_created_after"):  # before= / since=: each must hold
            created = str(state.get("created") or "")
            if not all((created < v) if key == "_created" else (created > v) for v in values):
                return False
            continue
        if key == "exited":  # a stopped container's noted exit code
            code = (exit_of(state.get("bundle") or "") or {}).get("exit_code") \
                if state["status"] == Status.STOPPED else None
            ok = code is not None and any(code == int(v) for v in values)
        elif key == "network":
            from mrun.cli.docker_rows import network_of

            ok = any(n in values for n in network_of(config_of(state["id"]), net_of(state["id"])).split(","))
        elif key == "volume":  # a volume by its name, or a volume or bind mount by where it is mounted
            from mrun.images import volumes
            from mrun.images.containers import user_mounts

            config = config_of(state["id"])
            places = {m.get("destination") for m in user_mounts(config, state["id"])}
            store_root = os.path.dirname(os.path.dirname(state.get("bundle") or ""))
            ok = any(v in places for v in values) or any(
                v in values for v in volumes.of_container(store_root, config))
        elif key == "name":
            import re

            ok = any(re.search(v, state["id"]) for v in values)
        elif key == "id":
            ok = any(state["id"].startswith(v) for v in values)
        elif key == "health":  # a running container's, as its supervisor last wrote it
            from mrun.images.health import read

            found = read(state.get("bundle") or "") if state["status"] == Status.RUNNING else None
            ok = ((found or {}).get("Status") or "none") in values
        elif key == "status":  # docker says exited for mrun's (and runc's) stopped
            status = "exited" if state["status"] == Status.STOPPED else state["status"]
            ok = status in ["exited" if v == "stopped" else v for v in values]
        else:  # ancestor: the image it was made from, by the name it was run as or normalised
            from mrun.images.store import normalize

            image = (image_of(state.get("bundle") or "") or {}).get("image", "")
            ok = bool(image) and any(image in (v, normalize(v)) for v in values)
        if not ok:
            return False
    return True



"""Pull from and push to registries that speak the OCI distribution spec, through urllib3.

Authentication follows the registry's ``WWW-Authenticate`` challenge: ``Bearer`` (a token from
the realm it names, asked for with basic credentials when we have some, anonymously otherwise)
or ``Basic``. Credentials come from ``--creds``, ``$REGISTRY_AUTH_FILE``, containers'
``auth.json`` or docker's ``config.json``. Loopback registries (and any with ``--insecure``)
are spoken to over plain HTTP.

Layers download concurrently into ``blobs/sha256/<hex>.partial``, each under its own lock, so
two pulls of one image share the work instead of corrupting it. An interrupted download is
resumed with a Range request where the registry allows it, restarted where it does not, and
only a blob that hashes to its digest is renamed into place.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import sys
import threading

from mrun import jsonio
from mrun.errors import MrunError, NotFound, one_line
from mrun.images.reference import DOCKER_HUB, Reference, check_digest, repository_only
from mrun.images.shapes import read_document
from mrun.images.sources import DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST, REF_NAME, Source
from mrun.images.store import CHUNK, DigestMismatch, ImageStore
from mrun.state import FileLock

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import IO, Any

ACCEPT = ", ".join((OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST))
MAX_TAGS = 100_000  # a repository's tags `pull -a` reads; a list past it is a registry that does not stop
LOOPBACK = ("localhost", "127.0.0.1", "[::1]", "::1")


def docker_config() -> str:
    """docker's config.json: in ``$DOCKER_CONFIG``, else ``~/.docker``, as docker's client finds it."""
    return os.path.join(os.environ.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker"),
                        "config.json")


def _auth_files() -> list[str]:
    """Where credentials are looked for, in this order (`mrun login` writes where they are read)."""
    home = os.path.expanduser("~")
    files = [os.environ.get("REGISTRY_AUTH_FILE", "")]
    if os.environ.get("XDG_RUNTIME_DIR"):
        files.append(os.path.join(os.environ["XDG_RUNTIME_DIR"], "containers", "auth.json"))
    files += [os.path.join(home, ".config", "containers", "auth.json"), docker_config()]
    return [f for f in files if f]


HUB_KEY = "https://index.docker.io/v1/"  # docker login's key for Docker Hub


def auth_keys(host: str) -> list[str]:
    """The keys an auth file may hold ``host``'s credentials under, in the order they are read
    (`login` and `logout` change the same ones)."""
    return [host, f"https://{host}", f"http://{host}", *([HUB_KEY] if host == DOCKER_HUB else [])]


def credentials(host: str, given: str = "") -> tuple[str, str] | None:
    if given:
        user, sep, password = given.partition(":")
        if not sep:
            raise MrunError("--creds: USER:PASSWORD expected")
        return user, password
    for path in _auth_files():
        try:
            auths = jsonio.load_file(path).get("auths") or {}
        except (OSError, ValueError, AttributeError):
            continue
        if not isinstance(auths, dict):
            raise MrunError(f"{path}: auths: an object of registries expected")
        for key in auth_keys(host):
            found = _user_and_password(path, key, auths.get(key))
            if found:
                return found
    return None


def _user_and_password(path: str, key: str, entry: Any) -> tuple[str, str] | None:
    """An auth file's entry for a registry: base64 of USER:PASSWORD, as docker's decodeAuth reads
    it (it says "invalid auth configuration file" of any other); their bytes as they are."""
    if entry is None:
        return None
    if not isinstance(entry, dict):
        raise MrunError(f"{path}: auths.{key}: an object expected, as {{\"auth\": BASE64}}")
    auth = entry.get("auth")
    if not auth:
        return None
    raw = b""
    if isinstance(auth, str):
        try:  # (Go's decoder passes over line breaks)
            raw = base64.b64decode(auth.replace("\r", "").replace("\n", ""), validate=True)
        except ValueError:
            pass
    if b":" not in raw:
        raise MrunError(f"{path}: auths.{key}.auth: base64 of USER:PASSWORD expected")
    user, _, password = raw.decode("utf-8", "surrogateescape").partition(":")
    return user, password


def auth_of(user: str, password: str) -> str:
    """base64 of USER:PASSWORD, their bytes as they are (argv's, a file's), as docker's: an auth
    file's "auth" and a Basic header's credentials."""
    return base64.b64encode(f"{user}:{password}".encode("utf-8", "surrogateescape")).decode()


def basic(creds: tuple[str, str] | list[str]) -> str:
    """The Authorization header of a user and password."""
    return "Basic " + auth_of(*creds)


TIMEOUT = 60.0  # seconds a registry may leave a connection, a request or a body silent ($MRUN_REGISTRY_TIMEOUT)


def timeout() -> float:
    from mrun import knobs

    return knobs.seconds("MRUN_REGISTRY_TIMEOUT", TIMEOUT) or TIMEOUT


def _why(e: BaseException) -> str:
    """urllib3's error, as the cause a person can act on: MaxRetryError wraps NewConnectionError
    wraps the socket's ConnectionRefusedError, and its text repeats the pool and the URL."""
    seen: set[int] = set()
    chain: list[BaseException] = []
    cause: BaseException | None = e
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        chain.append(cause)
        cause = getattr(cause, "reason", None) or cause.__cause__ or cause.__context__
    for c in chain:
        if isinstance(c, TimeoutError) or c.__class__.__name__ in ("ReadTimeoutError", "ConnectTimeoutError"):
            return f"no answer for {timeout():g} s ($MRUN_REGISTRY_TIMEOUT)"
        if isinstance(c, OSError) and c.strerror:
            return f"cannot reach the registry: {c.strerror}"
        if c.__class__.__name__ == "ProtocolError" and c.args:  # "Connection broken: IncompleteRead(...)"
            return str(c.args[0])
    last = chain[-1]
    text = str(last).splitlines()[0] if str(last) else ""
    return text or last.__class__.__name__


class _Answering:
    """Reading an answer's body: urllib3's errors there (a connection broken off, a body that
    stalls) are one line naming the registry, not an internal error."""

    def __init__(self, endpoint: str, what: str) -> None:
        self.endpoint, self.what = endpoint, what

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, e: BaseException | None, _tb: object) -> None:
        import urllib3

        if e is not None and isinstance(e, urllib3.exceptions.HTTPError):
            raise MrunError(f"{self.endpoint}: {self.what}: {_why(e)}") from None


def _challenge(header: str) -> tuple[str, dict[str, str]]:
    """'Bearer realm="https://auth",service="reg",scope="repository:a/b:pull,push"' -> ("bearer", {...})."""
    scheme, _, rest = header.strip().partition(" ")
    params: dict[str, str] = {}
    key, buf, quoted = "", "", False
    for c in rest + ",":
        if c == '"':
            quoted = not quoted
        elif c == "=" and not quoted and not key:
            key, buf = buf.strip(), ""
        elif c == "," and not quoted:
            if key:
                params[key] = buf
            key, buf = "", ""
        else:
            buf += c
    return scheme.lower(), params


def _same_origin(url: str, base: str) -> bool:
    from urllib.parse import urlsplit

    a, b = urlsplit(url), urlsplit(base)
    return (a.scheme, a.netloc) == (b.scheme, b.netloc)


class Registry:
    def __init__(self, ref: Reference, insecure: bool = False, creds: str = "") -> None:
        import urllib3

        self.ref = ref
        host = ref.endpoint
        plain = insecure or host.split(":")[0] in LOOPBACK or host.startswith("[::1]")
        self.base = f"{'http' if plain else 'https'}://{host}/v2/{ref.repository}"
        # A registry that accepts and never answers (or stops mid-body) left a pull waiting for
        # ever: every connect and read is bounded, and a read that timed out is tried once more.
        wait = timeout()
        self.http = urllib3.PoolManager(num_pools=4, maxsize=8, retries=urllib3.Retry(3, read=1, redirect=5),
                                        timeout=urllib3.Timeout(connect=wait, read=wait))
        self.creds = credentials(ref.host if ref.host != "docker.io" else DOCKER_HUB, creds)
        self.auth_header = ""
        self.scope = "pull"  # what a token is asked for when the challenge names no scope
        self.lock = threading.Lock()

    def _request(self, url: str, headers: dict[str, str], stream: bool = False, method: str = "GET",
                 body: bytes | str | None = None) -> Any:
        """``body``: bytes, or the name of a file to send (opened anew for each attempt). The
        credentials go only to the registry's own host: an upload's location elsewhere (a
        storage service the registry names) gets none."""
        import urllib3

        for attempt in range(2):
            h = dict(headers)
            if self.auth_header and _same_origin(url, self.base):
                h["Authorization"] = self.auth_header
            try:
                if isinstance(body, str):
                    with open(body, "rb") as f:
                        resp = self.http.request(method, url, headers=h, body=f, preload_content=not stream)
                else:
                    resp = self.http.request(method, url, headers=h, body=body, preload_content=not stream)
            except urllib3.exceptions.HTTPError as e:
                raise MrunError(f"{self.ref.endpoint}: {_why(e)}")
            except ValueError as e:  # a URL or header made of the registry's words (an upload's
                raise MrunError(f"{self.ref.endpoint}: {one_line(str(e))[:300]}")  # Location) no request can carry
            if resp.status == 401 and attempt == 0:
                challenge = resp.headers.get("WWW-Authenticate", "")
                resp.drain_conn()
                self._authenticate(challenge)
                continue
            return resp
        raise MrunError(f"{self.ref.endpoint}: unauthorized for {self.ref.repository} (check --creds or auth.json)")

    def _authenticate(self, challenge: str) -> None:
        scheme, params = _challenge(challenge)
        with self.lock:
            if scheme == "basic":
                if not self.creds:
                    raise MrunError(f"{self.ref.endpoint} asks for a user and password: none configured")
                self.auth_header = basic(self.creds)
                return
            if scheme != "bearer" or "realm" not in params:
                raise MrunError(f"{self.ref.endpoint}: unsupported authentication challenge {challenge!r}")
            if not params["realm"].startswith(("https://", "http://")):
                raise MrunError(f"{self.ref.endpoint}: the token service {params['realm'][:200]!r} is no http(s) URL")
            from urllib.parse import urlencode

            query = {k: v for k, v in params.items() if k in ("service", "scope")}
            if self.scope:  # (a login's token is of no scope, as docker's login asks for it)
                query.setdefault("scope", f"repository:{self.ref.repository}:{self.scope}")
            elif self.creds:
                query["account"] = self.creds[0]
            headers = {}
            if self.creds:
                headers["Authorization"] = basic(self.creds)
            with _Answering(self.ref.endpoint, "the token service"):
                asked = urlencode(query, errors="surrogateescape")  # (an account's bytes as they are)
                resp = self.http.request("GET", f"{params['realm']}?{asked}", headers=headers,
                                         preload_content=False)  # the realm is the registry's word: read with a bound
            try:
                if resp.status != 200:
                    who = "our credentials" if self.creds else "anonymous access"
                    raise MrunError(f"{self.ref.endpoint}: the token service refused {who} ({resp.status})")
                try:
                    with _Answering(self.ref.endpoint, "the token service"):
                        answer = read_document(resp, f"{params['realm']}: the token answer")
                    body = jsonio.loads(answer)
                except ValueError:
                    raise MrunError(f"{params['realm']}: the token answer is not JSON")
            finally:
                resp.close()
            token = (body.get("token") or body.get("access_token")) if isinstance(body, dict) else None
            if not token:
                raise MrunError(f"{params['realm']}: the token answer holds no token")
            if not isinstance(token, str) or not token.isascii() or not token.isprintable() or " " in token:
                raise MrunError(f"{params['realm']}: the token answer's token is no header value (RFC 6750's "
                                f"token68: printable ASCII)")
            self.auth_header = f"Bearer {token}"

    def check_login(self) -> None:
        """docker login's test: the registry's base endpoint (/v2/) answers these credentials."""
        self.scope = ""
        resp = self._request(self.base[: self.base.index("/v2/") + len("/v2/")], {}, stream=True)
        try:
            if resp.status == 401:
                raise MrunError(f"{self.ref.endpoint}: unauthorized: incorrect username or password")
            if resp.status != 200:
                raise MrunError(f"{self.ref.endpoint}: /v2/: HTTP {resp.status}, not a registry's answer")
        finally:
            resp.close()

    def _document(self, url: str, accept: str, what: str, unknown: str) -> tuple[Any, bytes]:
        """A small document the registry serves (a manifest, a tag list), read whole within
        MAX_DOCUMENT and the read timeout. -> (the answer, its body); 404 is ``unknown``."""
        resp = self._request(url, {"Accept": accept}, stream=True)
        read = False
        try:
            if resp.status == 404:
                raise NotFound(unknown)
            if resp.status != 200:
                raise MrunError(f"{self.ref.endpoint}: {what}: HTTP {resp.status}{_said_in(resp.read(4096))}")
            with _Answering(self.ref.endpoint, what):
                body = read_document(resp, f"{self.ref.endpoint}: {what}")
            read = True
        finally:
            if read:
                resp.release_conn()
            else:
                resp.close()  # a body left unread (refused, or too large) is not read to its end
        return resp, body

    def manifest(self, reference: str) -> tuple[str, bytes, str]:
        """-> (digest, body, media type); a digest reference is checked against the body."""
        resp, body = self._document(f"{self.base}/manifests/{reference}", ACCEPT, f"manifest {reference}",
                                    f"{self.ref.endpoint}/{self.ref.repository}:{reference}: manifest unknown")
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        if reference.startswith("sha256:") and digest != reference:
            raise DigestMismatch(f"manifest {reference}: the registry sent content that hashes to {digest}")
        return digest, body, resp.headers.get("Content-Type", "").split(";")[0]

    def tags(self) -> list[str]:
        """The repository's tags (the distribution spec's tags/list), page after page as its Link
        headers lead, each checked as a tag before any is used. A next page on another host, a
        list that comes back to a page it gave, or one longer than MAX_TAGS is refused."""
        from urllib.parse import urljoin

        url, pages, found = f"{self.base}/tags/list", set(), set()
        where = f"{self.ref.endpoint}/{self.ref.repository}"
        while url:
            if url in pages or len(found) > MAX_TAGS:
                raise MrunError(f"{where}: the registry's tag list does not end (more than {MAX_TAGS} tags, or "
                                "a page that leads back to an earlier one)")
            pages.add(url)
            resp, body = self._document(url, "application/json", "the tag list", f"{where}: repository unknown")
            found.update(_tags_of(body, where))
            following = _next_page(resp.headers.get("Link", ""))
            url = urljoin(url, following) if following else ""
            if url and not _same_origin(url, self.base):
                raise MrunError(f"{where}: the tag list's next page is on another host ({url[:200]!r}): refused")
        return sorted(found)

    def has_blob(self, digest: str) -> bool:
        resp = self._request(f"{self.base}/blobs/{digest}", {}, method="HEAD")
        if resp.status not in (200, 404):
            raise MrunError(f"{self.ref.endpoint}: blob {digest}: HTTP {resp.status}")
        return resp.status == 200

    def push_blob(self, path: str, digest: str, size: int, progress: Progress) -> None:
        """One blob, unless the registry has it: an upload session (POST), then the whole blob
        in one PUT to the location it names, with its digest, which the registry checks."""
        from urllib.parse import urljoin

        progress.add(digest, size, 0)
        if self.has_blob(digest):
            progress.advance(size)
            progress.done(digest, size)
            return
        resp = self._request(f"{self.base}/blobs/uploads/", {"Content-Length": "0"}, method="POST", body=b"")
        location = resp.headers.get("Location", "")
        if resp.status != 202 or not location:
            raise MrunError(f"{self.ref.endpoint}: cannot start an upload to {self.ref.repository}: "
                            f"HTTP {resp.status}{_said(resp)}")
        url = urljoin(self.base + "/", location)
        if not url.startswith(("http://", "https://")):
            raise MrunError(f"{self.ref.endpoint}: an upload location that is no http(s) URL: {location[:200]!r}")
        url += ("&" if "?" in url else "?") + f"digest={digest}"
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
        resp = self._request(url, headers, method="PUT", body=path)
        if resp.status not in (201, 204):
            raise MrunError(f"{self.ref.endpoint}: blob {digest}: upload refused: HTTP {resp.status}{_said(resp)}")
        progress.advance(size)
        progress.done(digest, size)

    def push_manifest(self, reference: str, body: bytes, media_type: str) -> str:
        """-> the digest the registry gives the manifest (its own hash of what we sent)."""
        resp = self._request(f"{self.base}/manifests/{reference}", {"Content-Type": media_type}, method="PUT",
                             body=body)
        if resp.status not in (201, 204):
            raise MrunError(f"{self.ref.endpoint}: manifest {reference}: refused: HTTP {resp.status}{_said(resp)}")
        return "sha256:" + hashlib.sha256(body).hexdigest()

    def fetch_blob(self, store: ImageStore, digest: str, size: int | None, progress: Progress) -> None:
        """Into the store, resuming a partial download, under the blob's own lock.

        A partial file is only ever trusted by its hash: one that is already complete (a pull
        killed between its fsync and its rename) is renamed into place without a request, and
        one the registry will not resume (HTTP 416, or longer than the blob) is discarded and
        fetched again, so no crash can wedge later pulls."""
        hexpart = check_digest(digest)
        os.makedirs(store.blobs, mode=0o700, exist_ok=True)
        partial = os.path.join(store.blobs, f"{hexpart}.partial")
        with FileLock(os.path.join(store.blobs, f"{hexpart}.lock"), transient=True):
            if store.has_blob(digest):
                progress.done(digest, size or 0)
                return
            h, have = _hash_partial(partial)
            if have and ("sha256:" + h.hexdigest() == digest or (size is not None and have >= size)):
                if self._finish(store, partial, digest, h, progress):
                    return
                h, have = hashlib.sha256(), 0
            for _attempt in range(2):
                headers = {"Range": f"bytes={have}-"} if have else {}
                resp = self._request(f"{self.base}/blobs/{digest}", headers, stream=True)
                if resp.status == 416 and have:  # the registry has nothing past what we hold: start over
                    resp.drain_conn()
                    os.unlink(partial)
                    h, have = hashlib.sha256(), 0
                    continue
                break
            if resp.status == 200 and have:  # no ranges here: start again
                h, have = hashlib.sha256(), 0
            elif resp.status not in (200, 206):
                resp.release_conn()
                raise MrunError(f"{self.ref.endpoint}: blob {digest}: HTTP {resp.status}")
            progress.add(digest, size or 0, have)
            # The whole chunks that came before a broken or stalled body stay in the partial file: the next pull
            # resumes from them.
            with open(partial, "ab" if have else "wb") as out, _Answering(self.ref.endpoint, f"blob {digest}"):
                for chunk in resp.stream(CHUNK):
                    have += len(chunk)
                    if size is not None and have > size:  # an endless body would fill the store's disk
                        resp.close()
                        out.close()
                        os.unlink(partial)
                        raise DigestMismatch(f"blob {digest}: the registry sent more than the {size} bytes its "
                                             "manifest gives; refused")
                    h.update(chunk)
                    out.write(chunk)
                    progress.advance(len(chunk))
                out.flush()
                os.fsync(out.fileno())
            resp.release_conn()
            if not self._finish(store, partial, digest, h, progress):
                got = "sha256:" + h.hexdigest()
                raise DigestMismatch(f"blob {digest}: the registry sent content that hashes to {got}; refused")

    @staticmethod
    def _finish(store: ImageStore, partial: str, digest: str, h: Any, progress: Progress) -> bool:
        """Rename a partial download that hashes right into place; discard one that does not."""
        if "sha256:" + h.hexdigest() != digest:
            os.unlink(partial)
            return False
        os.rename(partial, store.blob_path(digest))
        progress.done(digest, 0)
        return True


def _tags_of(body: bytes, where: str) -> list[str]:
    """A tags/list answer's tags ({"name": ..., "tags": [...] or null}), each a tag docker's
    grammar takes."""
    from mrun.images.reference import tag_problem

    try:
        doc = jsonio.loads(body)
    except ValueError as e:
        raise MrunError(f"{where}: the tag list is not JSON: {e}")
    tags = doc.get("tags") if isinstance(doc, dict) else None
    if doc is None or not isinstance(doc, dict) or not isinstance(tags, (list, type(None))):
        raise MrunError(f"{where}: the tag list is no {{\"tags\": [...]}} document")
    for tag in tags or []:
        problem = tag_problem(tag) if isinstance(tag, str) else "not a string"
        if problem:
            raise MrunError(f"{where}: the tag list holds {str(tag)[:200]!r}: {problem}")
    return list(tags or [])


def _next_page(link: str) -> str:
    """The URL of a Link header's rel="next" (``<URL>; rel="next"``), or ""."""
    for part in link.split(","):
        target, _, params = part.partition(";")
        target = target.strip()
        if target.startswith("<") and target.endswith(">") and 'rel="next"' in params.replace(" ", ""):
            return target[1:-1]
    return ""


def _said(resp: Any) -> str:
    """The registry's own error, where it gave one (distribution's {"errors": [{"message"}]})."""
    return _said_in(resp.data[:4096])


def _said_in(data: bytes) -> str:
    """``_said`` of the first bytes of an answer's body (a streamed one is read no further)."""
    try:
        doc = jsonio.loads(data)
        first = doc["errors"][0]
        text = f"{first.get('code', '')}: {first.get('message', '')}".strip(": ")
        return f" ({''.join(c for c in text if c.isprintable())[:200]})" if text else ""
    except Exception:
        return ""


def _hash_partial(partial: str) -> tuple[Any, int]:
    h = hashlib.sha256()
    have = 0
    try:
        with open(partial, "rb") as f:
            while chunk := f.read(CHUNK):
                h.update(chunk)
                have += len(chunk)
    except FileNotFoundError:
        pass
    return h, have


class Progress:
    """One status line on a terminal; nothing on a pipe but what the caller prints."""

    def __init__(self, out: IO[str] = sys.stderr, doing: str = "pulling", quiet: bool = False) -> None:
        self.out, self.tty, self.doing = out, out.isatty() and not quiet, doing
        self.total = self.got = self.layers = self.finished = 0
        self.lock = threading.Lock()

    def add(self, _digest: str, size: int, have: int) -> None:
        with self.lock:
            self.total += size
            self.got += have
            self.layers += 1
        self._show()

    def advance(self, n: int) -> None:
        with self.lock:
            self.got += n
        self._show()

    def done(self, _digest: str, _size: int) -> None:
        with self.lock:
            self.finished += 1
        self._show()

    def _show(self) -> None:
        if self.tty:
            line = (f"\r{self.doing}: {self.finished}/{self.layers} layers, "
                    f"{self.got / 1e6:.1f}/{self.total / 1e6:.1f} MB")
            self.out.write(line)
            self.out.flush()

    def close(self) -> None:
        if self.tty:
            self.out.write("\n")


class RegistrySource(Source):
    """The registry as a source for ``install``: manifests by digest, layers prefetched into the store."""

    def __init__(self, registry: Registry, quiet: bool = False) -> None:
        self.registry, self.quiet = registry, quiet  # quiet: no progress line (docker's pull -q, run -q)
        self.manifests: dict[str, bytes] = {}
        self.prefetched: dict[str, int | None] = {}  # digest: size
        self.store: ImageStore | None = None

    def index(self) -> dict[str, Any]:
        ref = self.registry.ref
        digest, body, media_type = self.registry.manifest(ref.digest or ref.tag)
        self.manifests[digest] = body
        desc = {"mediaType": media_type or OCI_MANIFEST, "digest": digest, "size": len(body)}
        desc["annotations"] = {REF_NAME: ref.name}
        return {"schemaVersion": 2, "manifests": [desc]}

    def open(self, digest: str) -> IO[bytes]:
        """A manifest; or a blob ``prefetch`` stored that is no longer there when install asks
        for it, under the store's lock: an image prune between the two took it for a blob no
        image uses (asked for as a manifest, the registry said no: the pull failed). Fetched
        again, under the lock: the prune cannot come between once more."""
        if digest in self.prefetched and self.store is not None:
            progress = Progress(quiet=self.quiet)
            try:
                self.registry.fetch_blob(self.store, digest, self.prefetched[digest], progress)
            finally:
                progress.close()
            return open(self.store.blob_path(digest), "rb")  # noqa: SIM115 - the caller closes it
        if digest not in self.manifests:
            got, body, _ = self.registry.manifest(digest)
            self.manifests[got] = body
        return io.BytesIO(self.manifests[digest])

    def prefetch(self, store: ImageStore, manifest: dict[str, Any]) -> None:
        from concurrent.futures import ThreadPoolExecutor

        blobs = [manifest["config"], *manifest.get("layers", [])]
        self.store = store
        self.prefetched.update((b["digest"], b.get("size")) for b in blobs)
        progress = Progress(quiet=self.quiet)
        try:
            with ThreadPoolExecutor(max_workers=4) as pool:
                futures = [
                    pool.submit(self.registry.fetch_blob, store, b["digest"], b.get("size"), progress) for b in blobs
                ]
                for f in futures:
                    f.result()
        finally:
            progress.close()


def push(store: ImageStore, image: str, destination: str = "", insecure: bool = False, creds: str = "",
         quiet: bool = False) -> tuple[str, str, int]:
    """docker's push: the image's blobs the registry lacks, then its manifest under the tag.
    -> (the tag, the manifest's digest, its size)."""
    from mrun.images import leases

    with leases.reading(store, [image]) as [(name, entry)]:  # an rmi meanwhile takes none of it from under us
        return _push(store, name, entry, destination, insecure, creds, quiet)


def _push(store: ImageStore, name: str, entry: dict[str, Any], destination: str, insecure: bool, creds: str,
          quiet: bool) -> tuple[str, str, int]:
    ref = Reference(destination or name)
    if ref.digest:
        raise MrunError(f"{destination or name!r}: a push names a tag, not a digest")
    manifest_body = store.read_blob(entry["manifest"])
    try:
        manifest = jsonio.loads(manifest_body)
        blobs = [manifest["config"], *manifest.get("layers", [])]
        wanted = [(b["digest"], int(b["size"])) for b in blobs]
    except (ValueError, KeyError, TypeError):
        raise MrunError(f"image {name!r}: its manifest in the store is not an image manifest")
    for digest, size in wanted:
        check_digest(digest)
        if not store.has_blob(digest):
            raise MrunError(f"image {name!r}: blob {digest} is not in the store (`mrun pull` or `mrun load` it again)")
        if os.path.getsize(store.blob_path(digest)) != size:
            raise MrunError(f"image {name!r}: blob {digest} is not the size its manifest gives ({size})")
    registry = Registry(ref, insecure, creds)
    registry.scope = "pull,push"
    progress = Progress(doing="pushing", quiet=quiet)
    try:
        for digest, size in wanted:  # the config and layers first: a manifest names only what is there
            registry.push_blob(store.blob_path(digest), digest, size, progress)
    finally:
        progress.close()
    media_type = manifest.get("mediaType") or OCI_MANIFEST
    return ref.tag, registry.push_manifest(ref.tag, manifest_body, media_type), len(manifest_body)


def pull(
    store: ImageStore, text: str, insecure: bool = False, creds: str = "", platform: tuple[str, str] | None = None,
    quiet: bool = False,
) -> list[str]:
    from mrun.images.install import install

    ref = Reference(text)
    return install(store, RegistrySource(Registry(ref, insecure, creds), quiet), ref.name, platform)


def pull_all_tags(
    store: ImageStore, text: str, insecure: bool = False, creds: str = "", platform: tuple[str, str] | None = None,
    quiet: bool = False,
) -> Iterator[str]:
    """docker's pull -a: every tag of a repository, in the order of their names, all listed and
    checked before the first is pulled. Yields each name as it is pulled."""
    from mrun.images.install import install

    repository_only("pull", text)
    ref = Reference(text)
    registry = Registry(ref, insecure, creds)
    tags = registry.tags()
    if not tags:
        raise NotFound(f"{ref.endpoint}/{ref.repository}: the repository has no tag")
    for tag in tags:
        registry.ref = Reference(f"{ref.host}/{ref.repository}:{tag}")
        yield from install(store, RegistrySource(registry, quiet), registry.ref.name, platform)

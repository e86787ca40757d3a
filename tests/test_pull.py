"""`mrun pull` against a real registry (docker-registry) that demands tokens from a real token
server, with images pushed by skopeo: Linux, wasm and a multi-platform index."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time

import pytest
from conftest import IMAGE, img, img_ok, one_line_error, run_args
from registry import PASSWORD, USER, Registry
from test_containerd import WASM_IMAGE, build_wasm_archive
from test_images import multi_platform_layout

CREDS = f"{USER}:{PASSWORD}"


@pytest.fixture(scope="module")
def registry(busybox_archive, tmp_path_factory):
    reg = Registry(str(tmp_path_factory.mktemp("registry")))
    try:
        work = tmp_path_factory.mktemp("pushed")
        reg.refs = {
            "busybox": reg.push(f"oci-archive:{busybox_archive}", "mrun/busybox:1"),
            "wasm": reg.push(f"oci-archive:{build_wasm_archive(str(work))}", "mrun/hello-wasm:1"),
            "multi": reg.push(
                f"oci:{multi_platform_layout(tmp_path_factory.mktemp('multi'), busybox_archive)}",
                "mrun/multi:1",
                all_platforms=True,
            ),
        }
        yield reg
    finally:
        reg.stop()  # even when pushing failed


def test_pull_with_a_token_then_run_linux_and_wasm(images, registry):
    h = images
    before = registry.tokens.issued
    assert img_ok(h, "pull", "--creds", CREDS, registry.refs["busybox"]).stdout.strip() == (
        f"Pulled: {registry.refs['busybox']}"
    )
    assert registry.tokens.issued > before  # the bearer challenge was followed
    # docker's pull -q: the name alone
    assert img_ok(h, "pull", "-q", "--creds", CREDS, registry.refs["busybox"]).stdout == f"{registry.refs['busybox']}\n"
    assert img_ok(h, *run_args(h, "--rm", registry.refs["busybox"], "echo", "pulled")).stdout == "pulled\n"
    img_ok(h, "pull", "--creds", CREDS, registry.refs["wasm"])
    r = img(h, *run_args(h, "--rm", registry.refs["wasm"]))
    assert r.returncode == 3 and "hello from wasm32-wasi" in r.stdout, r.stderr


def test_run_pulls_an_image_it_lacks_as_docker_does(images, registry, tmp_path):
    """`docker run IMAGE` pulls what it does not have; mrun said "not found". --pull always pulls
    anyway, never does not; what is said about it goes to stderr, stdout is the container's."""
    h = images
    auth = tmp_path / "auth.json"
    auth.write_text(json.dumps({"auths": {registry.host: {"auth": base64.b64encode(CREDS.encode()).decode()}}}))
    env = {"REGISTRY_AUTH_FILE": str(auth)}
    ref = registry.refs["busybox"]
    r = img(h, *run_args(h, "--rm", "--pull", "never", ref, "echo", "ran"), env=env)
    assert r.returncode != 0 and "not found" in r.stderr
    before = registry.tokens.issued
    r = img_ok(h, *run_args(h, "--rm", ref, "echo", "ran"), env=env)
    assert r.stdout == "ran\n" and f"Unable to find image '{ref}' locally" in r.stderr, r.stderr
    assert registry.tokens.issued > before
    before = registry.tokens.issued
    assert img_ok(h, *run_args(h, "--rm", ref, "echo", "again"), env=env).stderr == ""  # had it: no pull
    assert registry.tokens.issued == before
    r = img_ok(h, *run_args(h, "--rm", "--pull", "always", ref, "echo", "fresh"), env=env)
    assert r.stdout == "fresh\n" and f"Pulled: {ref}" in r.stderr and registry.tokens.issued > before
    for quiet in ("-q", "--quiet"):  # docker's run -q: no word of the pull (it was "No such option")
        r = img_ok(h, *run_args(h, "--rm", quiet, "--pull", "always", ref, "echo", "quiet"), env=env)
        assert r.stdout == "quiet\n" and r.stderr == "", r
    r = img(h, *run_args(h, "--rm", "--pull", "sometimes", ref, "true"), env=env)
    assert r.returncode != 0 and r.stderr.strip() == "mrun: --pull 'sometimes': missing, always or never"


def test_credentials_from_an_auth_file(images, registry, tmp_path):
    h = images
    auth = tmp_path / "auth.json"
    auth.write_text(json.dumps({"auths": {registry.host: {"auth": base64.b64encode(CREDS.encode()).decode()}}}))
    img_ok(h, "pull", registry.refs["busybox"], env={"REGISTRY_AUTH_FILE": str(auth)})
    assert registry.refs["busybox"] in img_ok(h, "images", "--format", "json").stdout


def test_pull_without_credentials_fails_cleanly(images, registry):
    h = images
    r = img(h, "pull", registry.refs["busybox"], env={"REGISTRY_AUTH_FILE": "/nonexistent", "HOME": h.tmp})
    assert r.returncode != 0 and "refused anonymous access" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert (
        not os.path.exists(os.path.join(h.image_root, "images.json"))
        or IMAGE not in open(os.path.join(h.image_root, "images.json")).read()
    )


def test_pull_picks_the_platform_from_an_index(images, registry):
    h = images
    img_ok(h, "pull", "--creds", CREDS, registry.refs["multi"])
    assert img_ok(h, *run_args(h, "--rm", registry.refs["multi"], "echo", "linux")).stdout == "linux\n"
    wasm_store = os.path.join(h.tmp, "wasm-store")
    r = h.mrun(
        "--image-root", wasm_store, "pull", "--platform", "wasip1/wasm", "--creds", CREDS, registry.refs["multi"]
    )
    assert r.returncode == 0, r.stderr
    r = h.mrun("--image-root", wasm_store, *run_args(h, "--rm", registry.refs["multi"]))
    assert r.returncode == 3 and "hello from wasm32-wasi" in r.stdout, r.stderr


def test_run_with_a_platform_runs_that_platforms_image(images, registry, tmp_path):
    """`docker run --platform P IMAGE`: the image of that platform, pulled if the one here is
    another's (`--pull never`: docker's refusal, in its words). mrun ran whatever image the
    name had here, `--platform` unread, even a malformed one."""
    h = images
    auth = tmp_path / "auth.json"
    auth.write_text(json.dumps({"auths": {registry.host: {"auth": base64.b64encode(CREDS.encode()).decode()}}}))
    env = {"REGISTRY_AUTH_FILE": str(auth)}
    ref = registry.refs["multi"]
    img_ok(h, "pull", ref, env=env)  # the host's: linux/amd64
    assert img_ok(h, *run_args(h, "--rm", "--platform", "linux/amd64", ref, "echo", "linux"), env=env).stdout == \
        "linux\n"
    r = img(h, *run_args(h, "--rm", "--pull", "never", "--platform", "wasip1/wasm", ref), env=env)
    one_line_error(r, f"image with reference {ref} was found but does not match the specified platform: "
                      "wanted wasip1/wasm, actual: linux/amd64")
    one_line_error(img(h, *run_args(h, "--rm", "--platform", "wasm", ref), env=env), "--platform 'wasm': os/arch")
    r = img(h, *run_args(h, "--rm", "--platform", "wasip1/wasm", ref), env=env)
    assert r.returncode == 3 and "hello from wasm32-wasi" in r.stdout, r.stderr  # pulled for the platform
    assert f"Unable to find image '{ref}' locally" in r.stderr
    r = img(h, *run_args(h, "--rm", "--platform", "wasi/wasm", ref), env=env)
    assert (r.returncode, r.stderr) == (3, ""), r.stderr  # wasi/wasm is wasip1/wasm: no pull


def _busybox_layer(h, registry) -> tuple[str, bytes, str]:
    """The busybox layer's digest (hex) and bytes, pulled into a store of its own, and the test
    store's (empty) blob directory, for planting partial downloads in."""
    first = os.path.join(h.tmp, "first")
    assert h.mrun("--image-root", first, "pull", "--creds", CREDS, registry.refs["busybox"]).returncode == 0
    with open(os.path.join(first, "images.json")) as f:
        entry = next(iter(json.load(f).values()))
    layer = entry["blobs"][-1].removeprefix("sha256:")
    with open(os.path.join(first, "blobs", "sha256", layer), "rb") as f:
        data = f.read()
    blobs = os.path.join(h.image_root, "blobs", "sha256")
    os.makedirs(blobs)
    return layer, data, blobs


def test_interrupted_and_corrupted_downloads_resume_or_restart(images, registry):
    h = images
    layer, data, blobs = _busybox_layer(h, registry)
    with open(os.path.join(blobs, f"{layer}.partial"), "wb") as f:
        f.write(data[: len(data) // 2])  # an interrupted pull: resumed with a Range request
    img_ok(h, "pull", "--creds", CREDS, registry.refs["busybox"])
    assert open(os.path.join(blobs, layer), "rb").read() == data
    img_ok(h, "rmi", registry.refs["busybox"])
    with open(os.path.join(blobs, f"{layer}.partial"), "wb") as f:
        f.write(b"garbage that is not the start of the layer")  # refused, then the next pull starts over
    r = img(h, "pull", "--creds", CREDS, registry.refs["busybox"])
    assert r.returncode != 0 and "hashes to" in r.stderr
    assert not os.path.exists(os.path.join(blobs, f"{layer}.partial")) and not os.path.exists(
        os.path.join(blobs, layer)
    )
    img_ok(h, "pull", "--creds", CREDS, registry.refs["busybox"])
    assert img_ok(h, *run_args(h, "--rm", registry.refs["busybox"], "true")).returncode == 0


def test_a_complete_or_overlong_partial_download_never_wedges_pull(images, registry):
    """A pull killed between fsync and rename leaves a complete .partial: the next pull takes it
    by its hash without asking the registry for more (which answers 416). One longer than the
    blob is discarded and fetched again; `image prune` removes an abandoned one."""
    h = images
    layer, data, blobs = _busybox_layer(h, registry)
    for content in (data, data + b"trailing bytes a registry never sent"):
        with open(os.path.join(blobs, f"{layer}.partial"), "wb") as f:
            f.write(content)
        img_ok(h, "pull", "--creds", CREDS, registry.refs["busybox"])
        assert open(os.path.join(blobs, layer), "rb").read() == data
        assert [b for b in os.listdir(blobs) if "." in b] == []  # no partial, no lock file left
        img_ok(h, "rmi", registry.refs["busybox"])
    with open(os.path.join(blobs, f"{layer}.partial"), "wb") as f:
        f.write(data[:100])
    assert "leftover" in img_ok(h, "image", "prune").stdout
    assert os.listdir(blobs) == []


def test_two_pulls_at_once_share_the_work(images, registry):
    h = images
    cmd = [h.binary, "--root", h.root, "--image-root", h.image_root, "pull", "--creds", CREDS]
    procs = [
        subprocess.Popen([*cmd, registry.refs[name]], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for name in ("busybox", "busybox", "multi")
    ]
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    names = json.loads(img_ok(h, "images", "--format", "json").stdout)
    assert {n["name"] for n in names} == {registry.refs["busybox"], registry.refs["multi"]}
    blobs = os.listdir(os.path.join(h.image_root, "blobs", "sha256"))
    assert not [b for b in blobs if b.endswith(".partial")]
    layers = os.listdir(os.path.join(h.image_root, "layers"))
    assert len(layers) == 1  # the same busybox layer, once, for both names


SMALL_MANIFEST = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                             "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                        "digest": "sha256:" + "cd" * 32, "size": 2}, "layers": []}).encode()


def _hostile_registry(manifest: bytes | None):
    """A registry on loopback that sends 64 MiB for every blob, and for the manifest too unless
    ``manifest`` is given."""
    import http.server
    import threading

    class Hostile(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            body = manifest if manifest is not None and "/manifests/" in self.path else None
            self.send_response(200)
            self.send_header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
            self.send_header("Content-Length", str(len(body) if body is not None else 64 << 20))
            self.end_headers()
            try:
                if body is not None:
                    self.wfile.write(body)
                    return
                for _ in range(64):
                    self.wfile.write(b" " * (1 << 20))
            except OSError:
                pass  # the client hung up, as it should

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hostile)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.mark.parametrize("what", ["manifest", "blob"])
def test_a_registry_sending_more_than_it_should_is_cut_off(images, what):
    """A hostile registry answering with 64 MiB: a manifest was read whole (urllib3's preload)
    before anything looked at it, and a blob was written to the store's disk to the end, whatever
    size the manifest gave it. Refused after 8 MiB, or past the blob's size; nothing is left."""
    server = _hostile_registry(SMALL_MANIFEST if what == "blob" else None)
    try:
        r = img(images, "pull", f"127.0.0.1:{server.server_port}/hostile/huge:1")
        needle = "larger than 8 MiB" if what == "manifest" else "sent more than the 2 bytes"
        assert r.returncode != 0 and needle in r.stderr and r.stderr.count("\n") == 1, r.stderr
    finally:
        server.shutdown()
        server.server_close()
    blobs = os.path.join(images.image_root, "blobs", "sha256")
    assert not os.path.isdir(blobs) or not [n for n in os.listdir(blobs) if n.endswith(".partial")]


def _serving(handler):
    """An HTTP server on a loopback port of its own, answering with ``handler``, in threads."""
    import http.server
    import threading

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _misbehaving_registry(mode: str):
    """A registry on loopback that misbehaves in one way (``mode``): it never answers ("stall"),
    sends a blob's headers and 10 of its 1000 bytes then stops ("stall-body") or hangs up
    ("cut"), gives a Content-Length that is no number ("bad-length"), redirects to itself
    ("loop"), names a token service that is no http(s) URL ("realm"), or has its token service
    answer a list ("token-list") or a token with a line break in it ("token-crlf")."""
    import http.server
    import socket

    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      "digest": "sha256:" + "cd" * 32, "size": 1000}, "layers": []}).encode()

    class Misbehaving(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):  # noqa: N802 - http.server's name
            if mode == "stall":
                time.sleep(30)
                return
            if mode.startswith("token-"):  # a token service on the registry's own port
                if self.path.startswith("/token"):
                    body = {"token-list": b"[]", "token-crlf": b'{"token": "t\\r\\nX-Injected: 1"}'}[mode]
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                self.send_response(401)
                self.send_header("WWW-Authenticate", f'Bearer realm="http://127.0.0.1:{self.server.server_port}'
                                                     '/token",service="s"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if mode in ("realm", "loop", "bad-length"):
                self.send_response({"realm": 401, "loop": 302, "bad-length": 200}[mode])
                self.send_header("WWW-Authenticate", 'Bearer realm="ftp://127.0.0.1/token",service="s"')
                self.send_header("Location", self.path)
                self.send_header("Content-Length", "abc" if mode == "bad-length" else "0")
                self.end_headers()
                return
            body = manifest if "/manifests/" in self.path else b"x" * 10
            self.send_response(200)
            self.send_header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
            self.send_header("Content-Length", str(len(body) if body is manifest else 1000))
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
            if body is not manifest and mode == "cut":
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
            elif body is not manifest:
                time.sleep(30)

        def log_message(self, *args):
            pass

    return _serving(Misbehaving)


@pytest.mark.parametrize("mode, needle", [
    ("stall", "no answer for 1 s"),
    ("stall-body", "blob sha256:" + "cd" * 32 + ": no answer for 1 s"),
    ("bad-length", "manifest 1: no answer for 1 s"),
    ("cut", "blob sha256:" + "cd" * 32 + ": Connection broken: IncompleteRead(10 bytes read, 990 more expected)"),
    ("loop", "too many redirects"),
    ("realm", "the token service 'ftp://127.0.0.1/token' is no http(s) URL"),
    # a token answer that is no object was an internal error (AttributeError); a token that is no
    # header value (a CR LF in it) was "image index: not JSON: Invalid header value"
    ("token-list", "the token answer holds no token"),
    ("token-crlf", "the token answer's token is no header value"),
])
def test_a_registry_that_stalls_breaks_off_or_misleads_is_one_line(images, mode, needle):
    """A registry that never answered, or stopped sending mid-body (or sent a length that is no
    number), kept `mrun pull` waiting for ever: connects and reads are bounded now
    ($MRUN_REGISTRY_TIMEOUT, 60 s; 1 s here). A connection broken mid-blob was an internal
    error (urllib3's ProtocolError): one line now, and what came stays for the next pull to
    resume. A redirect loop said urllib3's pool and URL; a token service named by an ftp URL was
    "image index: not JSON"."""
    server = _misbehaving_registry(mode)
    try:
        r = img(images, "pull", f"127.0.0.1:{server.server_port}/bad/{mode}:1", env={"MRUN_REGISTRY_TIMEOUT": "1"})
    finally:
        server.shutdown()
        server.server_close()
    assert r.returncode == 1 and needle in r.stderr and r.stderr.count("\n") == 1, r.stderr
    assert "internal error" not in r.stderr
    blobs = os.path.join(images.image_root, "blobs", "sha256")
    names = os.listdir(blobs) if os.path.isdir(blobs) else []
    # nothing taken as a blob; a partial file (what whole chunks came, here none) is the next pull's to resume
    assert all(n.endswith((".partial", ".lock")) for n in names), names
    assert all(os.path.getsize(os.path.join(blobs, n)) <= 10 for n in names)


def test_push_then_pull_back_and_run(images, registry, busybox_archive, tmp_path):
    """docker's push: the image's blobs, then its manifest under the tag; what is pulled back is
    the same manifest and runs. A second push sends no blob again and gives the same digest.
    Without credentials, or of an image there is not, one line and nothing pushed."""
    h = images
    img_ok(h, "load", busybox_archive)
    dest = f"{registry.host}/mrun/pushed:2"
    one_line_error(img(h, "push", IMAGE, dest), "refused anonymous access")
    one_line_error(img(h, "push", "--creds", CREDS, "nope", dest), "image 'nope' not found")
    r = img_ok(h, "push", "--creds", CREDS, IMAGE, dest)
    tag, digest, size = r.stdout.split()[0], r.stdout.split()[2], r.stdout.split()[4]
    assert tag == "2:" and digest.startswith("sha256:") and int(size) > 0, r.stdout
    assert img_ok(h, "push", "--creds", CREDS, IMAGE, dest).stdout == r.stdout  # all there: the same image
    other = str(tmp_path / "other")
    assert h.mrun("--image-root", other, "pull", "--creds", CREDS, dest).returncode == 0
    pulled = json.loads(h.mrun("--image-root", other, "images", "--format", "json").stdout)
    assert [e["manifest"] for e in pulled] == [digest]
    out = h.mrun("--image-root", other, *run_args(h, "--rm", dest, "echo", "pushed and pulled"))
    assert out.returncode == 0 and out.stdout == "pushed and pulled\n", out.stderr
    assert h.mrun("--image-root", other, "rmi", dest).returncode == 0
    img_ok(h, "load", build_wasm_archive(str(tmp_path)))  # a wasm image goes the same way
    img_ok(h, "image", "wasm", os.path.join(os.path.dirname(__file__), "..", "examples", "wasm", "hello.wasm"),
           "localhost/made:1")
    for name in (WASM_IMAGE, "localhost/made:1"):
        wasm_dest = f"{registry.host}/mrun/pushed-{name.split('/')[1].replace(':', '-')}:1"
        img_ok(h, "push", "--creds", CREDS, name, wasm_dest)
        assert h.mrun("--image-root", other, "pull", "--creds", CREDS, wasm_dest).returncode == 0
        ran = h.mrun("--image-root", other, *run_args(h, "--rm", wasm_dest))
        assert ran.returncode in (0, 3) and "hello from wasm32-wasi" in ran.stdout, ran.stderr
        assert h.mrun("--image-root", other, "rmi", wasm_dest).returncode == 0


def test_push_all_tags_and_quiet_as_docker_s(images, registry, busybox_archive, tmp_path):
    """`docker push -a REPO` pushes every tag the repository has here, a line each; `-q` prints
    the name given and no more. A tag beside -a, a destination beside it, or a repository with
    no tag here is one line, nothing pushed. (Were "No such option".)"""
    h = images
    img_ok(h, "load", busybox_archive)
    repo = f"{registry.host}/mrun/alltags"
    for tag in ("a", "b"):
        img_ok(h, "tag", IMAGE, f"{repo}:{tag}")
    one_line_error(img(h, "push", "-a", "--creds", CREDS, f"{repo}:a"), "tag can't be used with --all-tags")
    one_line_error(img(h, "push", "-a", "--creds", CREDS, repo, f"{repo}2"), "--all-tags")
    one_line_error(img(h, "push", "-a", "--creds", CREDS, f"{repo}-none"), f"{repo}-none")
    r = img_ok(h, "push", "--all-tags", "--creds", CREDS, repo)
    assert [line.split()[0] for line in r.stdout.splitlines()] == ["a:", "b:"], r.stdout
    r = img_ok(h, "push", "-q", "--creds", CREDS, f"{repo}:a")
    assert r.stdout == f"{repo}:a\n", r.stdout
    r = img_ok(h, "push", "-qa", "--creds", CREDS, repo)
    assert r.stdout == f"{repo}\n", r.stdout
    other = str(tmp_path / "other")
    for tag in ("a", "b"):
        assert h.mrun("--image-root", other, "pull", "-q", "--creds", CREDS, f"{repo}:{tag}").returncode == 0


def test_pull_all_tags_and_quiet_as_docker_s(images, registry, busybox_archive, tmp_path):
    """`docker pull -a REPO` pulls every tag the registry has for it (its tags/list), a line each
    in the order of their names; `-q` prints the repository's name and no more. A tag or digest
    beside -a, and a repository the registry does not know, are one line, nothing pulled. (Were
    "No such option".)"""
    h = images
    img_ok(h, "load", busybox_archive)
    repo = f"{registry.host}/mrun/pullall"
    for tag in ("b", "a"):
        img_ok(h, "tag", IMAGE, f"{repo}:{tag}")
    img_ok(h, "push", "-a", "--creds", CREDS, repo)
    other, quiet = str(tmp_path / "other"), str(tmp_path / "quiet")
    for given in (f"{repo}:a", f"{repo}@sha256:{'ab' * 32}"):
        one_line_error(h.mrun("--image-root", other, "pull", "-a", "--creds", CREDS, given),
                       "tag can't be used with --all-tags")
    one_line_error(h.mrun("--image-root", other, "pull", "-a", "--creds", CREDS, f"{repo}-none"),
                   "mrun/pullall-none: repository unknown")
    assert not os.path.isdir(os.path.join(other, "blobs")) or not os.listdir(os.path.join(other, "blobs", "sha256"))
    r = h.mrun("--image-root", other, "pull", "--all-tags", "--creds", CREDS, repo)
    assert r.returncode == 0 and r.stdout.splitlines() == [f"Pulled: {repo}:a", f"Pulled: {repo}:b"], r
    r = h.mrun("--image-root", quiet, "pull", "-qa", "--creds", CREDS, repo)
    assert (r.returncode, r.stdout) == (0, f"{repo}\n"), r
    listed = h.mrun("--image-root", quiet, "images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    assert sorted(listed) == [f"{repo}:a", f"{repo}:b"]


def _tag_list_registry(mode: str):
    """A registry on loopback whose tags/list misleads in one way (``mode``); it knows no manifest."""
    import http.server

    class Lister(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            if "/tags/list" not in self.path:
                self.send_error(404)
                return
            second = "last=" in self.path
            link, body = "", {"name": "bad/x", "tags": ["b"]}
            if mode == "paged":  # b on the first page, a on the second: a is pulled first
                link = "" if second else '</v2/bad/x/tags/list?n=1&last=b>; rel="next"'
                body["tags"] = ["a"] if second else ["b"]
            elif mode == "elsewhere":
                link = f'<http://127.0.0.2:{self.server.server_port}/v2/bad/x/tags/list?last=b>; rel="next"'
            elif mode == "loop":
                link = '</v2/bad/x/tags/list>; rel="next"'
            elif mode == "bad-tag":
                body["tags"] = ["ok", "../../evil"]
            data = b"{not json" if mode == "not-json" else json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            if link:
                self.send_header("Link", link)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    return _serving(Lister)


@pytest.mark.parametrize("mode, needle", [
    ("paged", "bad/x:a: manifest unknown"),
    ("elsewhere", "the tag list's next page is on another host"),
    ("loop", "the registry's tag list does not end"),
    ("bad-tag", "the tag list holds '../../evil'"),
    ("not-json", "the tag list is not JSON"),
])
def test_pull_all_tags_reads_every_page_and_a_misleading_list_is_one_line(images, mode, needle):
    """`pull -a` follows the tag list's pages (Link: rel="next") on the registry's own host only,
    stops a list that leads back to a page it gave, and checks every tag before it uses one as
    part of a name; each refusal is one line and nothing is pulled."""
    server = _tag_list_registry(mode)
    try:
        r = img(images, "pull", "-a", f"127.0.0.1:{server.server_port}/bad/x", env={"MRUN_REGISTRY_TIMEOUT": "5"})
    finally:
        server.shutdown()
        server.server_close()
    one_line_error(r, needle)
    assert img_ok(images, "images", "-q").stdout == ""


def test_an_upload_location_on_another_host_gets_no_credentials(images, busybox_archive):
    """A registry names where a blob is uploaded to (its Location); one elsewhere (a storage
    service, or a hostile registry's collector) must not be sent the registry's credentials."""
    import http.server
    import threading

    seen: dict[str, list[str]] = {"registry": [], "elsewhere": []}

    def handler(where: str, answer: object) -> type:
        class Handler(http.server.BaseHTTPRequestHandler):
            def _any(self) -> None:
                seen[where].append(f"{self.command} {self.path} {self.headers.get('Authorization', '-')}")
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                code, headers = answer(self)
                self.send_response(code)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_HEAD = do_POST = do_PUT = _any  # noqa: N815 - http.server's names

            def log_message(self, *args: object) -> None:
                pass

        return Handler

    def elsewhere_answer(req: http.server.BaseHTTPRequestHandler) -> tuple[int, dict[str, str]]:
        return 201, {}

    far = http.server.ThreadingHTTPServer(("127.0.0.2", 0), handler("elsewhere", elsewhere_answer))

    def registry_answer(req: http.server.BaseHTTPRequestHandler) -> tuple[int, dict[str, str]]:
        if not req.headers.get("Authorization"):
            return 401, {"WWW-Authenticate": 'Basic realm="test"'}
        if req.command == "HEAD":
            return 404, {}
        if req.command == "POST":
            return 202, {"Location": f"http://127.0.0.2:{far.server_port}/upload/x?state=1"}
        return 201, {}

    near = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler("registry", registry_answer))
    for server in (near, far):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    h = images
    img_ok(h, "load", busybox_archive)
    try:
        img_ok(h, "push", "--creds", "who:secret", IMAGE, f"127.0.0.1:{near.server_port}/mrun/leak:1")
    finally:
        for server in (near, far):
            server.shutdown()
            server.server_close()
    assert any("Basic " in line for line in seen["registry"]), seen
    assert seen["elsewhere"] and all(line.endswith(" -") for line in seen["elsewhere"]), seen


def test_login_and_logout_as_docker(images, registry, tmp_path):
    """docker's `login` (the credentials checked against the registry, then kept in docker's
    config.json, mode 0600, beside what the file held) and `logout`. mrun had neither: the
    credentials were written into an auth file by hand or passed with --creds each time. A stale
    entry in a file read before docker's is replaced where it is (else it would shadow the new
    one); a config keeping the registry's credentials in a helper is refused, untouched."""
    import stat

    h = images
    home = tmp_path / "home"
    home.mkdir()
    env = {"HOME": str(home), "REGISTRY_AUTH_FILE": "", "XDG_RUNTIME_DIR": "", "DOCKER_CONFIG": ""}
    base = [h.binary, "--root", h.root, "--image-root", h.image_root]

    def login(password: str = PASSWORD) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*base, "login", "-u", USER, "--password-stdin", registry.host], input=password + "\n",
                              capture_output=True, text=True, env={**os.environ, **h.base_env, **env}, timeout=60)

    def auth_of(path) -> str:
        return base64.b64decode(json.loads(path.read_text())["auths"][registry.host]["auth"]).decode()

    config = home / ".docker" / "config.json"
    config.parent.mkdir()
    config.write_text(json.dumps({"psFormat": "table {{.ID}}", "auths": {"other.example:5000": {"auth": "eDp5"}}}))
    # what a login killed before its rename left (passwords beside the user's file): a gone
    # process's is swept, a live one's (a login writing it) is not
    ended = subprocess.Popen(["true"])
    ended.wait()
    left = config.parent / f"config.json.mrun-{ended.pid}.tmp"
    left.write_text('{"auths": {"x": {"auth": "c2VjcmV0"}}}')
    writing = config.parent / f"config.json.mrun-{os.getpid()}.tmp"
    writing.write_text("{}")
    # names no login makes, and a gone process's file that another user made: left as they are
    # (30 digits were os.kill's OverflowError, 200 too: a traceback; the other's was removed)
    ended = subprocess.Popen(["true"])
    ended.wait()
    theirs = config.parent / f"config.json.mrun-{ended.pid}.tmp"
    theirs.write_text("{}")
    os.chown(theirs, 65534, 65534)
    foreign = [theirs, *(config.parent / f"config.json.mrun-{pid}.tmp" for pid in ("9" * 30, "9" * 200, "৯", "0"))]
    for path in foreign[1:]:
        path.write_text("{}")
    r = login("wrong")
    assert r.returncode != 0 and "Traceback" not in r.stderr and len(r.stderr.splitlines()) == 1, r.stderr
    assert registry.host not in config.read_text()
    with open("/dev/zero") as zeros:  # read to its end into memory (none comes): refused past 64 KiB
        r = subprocess.run([*base, "login", "-u", USER, "--password-stdin", registry.host], stdin=zeros,
                           capture_output=True, text=True, env={**os.environ, **h.base_env, **env}, timeout=60)
    one_line_error(r, "--password-stdin", "64 KiB")
    assert registry.host not in config.read_text()
    r = login()
    assert r.returncode == 0 and r.stdout == "Login Succeeded\n", r.stderr
    assert not left.exists() and writing.exists() and all(path.exists() for path in foreign)
    writing.unlink()
    doc = json.loads(config.read_text())
    assert doc["psFormat"] == "table {{.ID}}" and "other.example:5000" in doc["auths"]
    assert auth_of(config) == CREDS and stat.S_IMODE(os.stat(config).st_mode) == 0o600
    img_ok(h, "pull", registry.refs["busybox"], env=env)  # no --creds: the login's
    stale = home / ".config" / "containers" / "auth.json"
    stale.parent.mkdir(parents=True)
    stale.write_text(json.dumps({"auths": {registry.host: {"auth": base64.b64encode(b"mrun:old").decode()}}}))
    assert img(h, "pull", registry.refs["busybox"], env=env).returncode != 0  # read first: shadows the login's
    assert login().returncode == 0
    assert auth_of(stale) == CREDS
    img_ok(h, "pull", registry.refs["busybox"], env=env)
    assert img_ok(h, "logout", registry.host, env=env).stdout == f"Removing login credentials for {registry.host}\n"
    assert registry.host not in config.read_text() + stale.read_text()
    assert "other.example:5000" in config.read_text()
    r = img(h, "pull", registry.refs["busybox"], env=env)
    assert r.returncode != 0 and "refused anonymous access" in r.stderr, r.stderr
    assert img_ok(h, "logout", registry.host, env=env).stdout == f"Not logged in to {registry.host}\n"
    for no_server in ([], ["--"]):  # Docker Hub, as docker has it: it was an internal error (None.strip)
        assert img_ok(h, "logout", *no_server, env=env).stdout == "Not logged in to https://index.docker.io/v1/\n"
    one_line_error(img(h, "login", "--", env=env), "Cannot perform an interactive login from a non TTY device")
    config.write_text(json.dumps({"credsStore": "desktop"}))
    r = login()
    assert r.returncode != 0 and "credsStore: desktop" in r.stderr and len(r.stderr.splitlines()) == 1, r.stderr
    assert json.loads(config.read_text()) == {"credsStore": "desktop"}
    one_line_error(img(h, "login", registry.host, env=env), "Cannot perform an interactive login from a non TTY device")


class _AsksBasic:
    """A loopback server that asks for a user and password (a Basic challenge) and notes each
    Authorization header that came."""

    def __init__(self) -> None:
        import http.server
        import threading

        seen = self.seen = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                seen.append(self.headers.get("Authorization"))
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="test"')
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_credentials_are_bytes_and_a_malformed_auth_entry_is_one_line(images, tmp_path):
    """A user or password that is not UTF-8 (argv and stdin are bytes: a Latin-1 password) was an
    internal error at login ("'utf-8' codec can't encode"), and a pull's --creds of it said
    "image index: not JSON"; they go to the registry as the bytes they are, as docker's. An auth
    file's entry for the registry that is not base64 of USER:PASSWORD (docker: "invalid auth
    configuration file"), or not an object, was an internal error (UnicodeDecodeError, TypeError,
    AttributeError) or sent empty credentials: one line naming the file and the entry."""
    h = images
    server = _AsksBasic()
    sent = "Basic " + base64.b64encode(b"u\xff:p\xff").decode()
    env = {"HOME": str(tmp_path), "REGISTRY_AUTH_FILE": "", "XDG_RUNTIME_DIR": "", "DOCKER_CONFIG": ""}
    try:
        r = subprocess.run([h.binary, "--root", h.root, "--image-root", h.image_root, "login", "--insecure",
                            "-u", "u\udcff", "--password-stdin", server.host], input=b"p\xff\n", capture_output=True,
                           env={**os.environ, **h.base_env, **env}, timeout=60)
        assert r.returncode != 0 and len(r.stderr.splitlines()) == 1 and b"internal error" not in r.stderr, r.stderr
        assert server.seen[-1] == sent, server.seen
        r = img(h, "pull", "--insecure", "--creds", "u\udcff:p\udcff", f"{server.host}/a", env=env)
        assert len(r.stderr.splitlines()) == 1 and "not JSON" not in r.stderr and "internal" not in r.stderr, r.stderr
        assert r.returncode != 0 and server.seen[-1] == sent, server.seen
        auth = tmp_path / "auth.json"
        for entry, field in ((b"!!!", ".auth"), (base64.b64encode(b"\xff"), ".auth"), (5, ".auth"), ("x", "")):
            entry = entry.decode() if isinstance(entry, bytes) else entry
            auths = {server.host: {"auth": entry}} if field else {server.host: entry}
            auth.write_text(json.dumps({"auths": auths}))
            r = img(h, "pull", "--insecure", f"{server.host}/a", env={**env, "REGISTRY_AUTH_FILE": str(auth)})
            one_line_error(r, str(auth), f"auths.{server.host}{field}")
        auth.write_text(json.dumps({"auths": [server.host]}))
        one_line_error(img(h, "pull", "--insecure", f"{server.host}/a", env={**env, "REGISTRY_AUTH_FILE": str(auth)}),
                       str(auth), "auths")
    finally:
        server.stop()

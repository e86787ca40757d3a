"""A real registry (Debian's docker-registry, distribution 2.8) with token authentication, and
the small token server it trusts, both on loopback ports of their own.

The token server issues RS256 JWTs signed by `openssl dgst` with a key whose self-signed
certificate is the registry's ``rootcertbundle``, carried in the token's ``x5c`` header. It
grants pull and push to USER/PASSWORD over basic auth and refuses anyone else: a pull without
credentials sees the whole challenge flow fail cleanly.
"""

from __future__ import annotations

import base64
import http.server
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request
import uuid

import pytest

USER, PASSWORD = "mrun", "s3cret"
SERVICE, ISSUER = "mrun-test-registry", "mrun-test-issuer"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenServer:
    def __init__(self, workdir: str) -> None:
        self.key = os.path.join(workdir, "token.key")
        self.cert = os.path.join(workdir, "token.crt")
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", self.key, "-out", self.cert]
            + ["-days", "2", "-subj", "/CN=mrun-test-token"],
            check=True,
            capture_output=True,
        )
        der = subprocess.run(
            ["openssl", "x509", "-in", self.cert, "-outform", "DER"], check=True, capture_output=True
        ).stdout
        self.x5c = base64.b64encode(der).decode()
        self.issued = 0
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                url = urllib.parse.urlparse(self.path)
                query = urllib.parse.parse_qs(url.query)
                auth = self.headers.get("Authorization", "")
                expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
                if url.path != "/token" or auth != expected:
                    self.send_response(401)
                    self.end_headers()
                    return
                token = server.token(query.get("scope", []))
                body = json.dumps({"token": token, "access_token": token, "expires_in": 300}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def token(self, scopes: list[str]) -> str:
        access = []
        for scope in " ".join(scopes).split():
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self.x5c]}
        claims = {"iss": ISSUER, "sub": USER, "aud": SERVICE, "exp": now + 600, "nbf": now - 60, "iat": now}
        claims.update(jti=uuid.uuid4().hex, access=access)
        signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
        sig = subprocess.run(
            ["openssl", "dgst", "-sha256", "-sign", self.key],
            input=signing_input.encode(),
            check=True,
            capture_output=True,
        ).stdout
        self.issued += 1
        return f"{signing_input}.{_b64(sig)}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class Registry:
    def __init__(self, workdir: str) -> None:
        binary = shutil.which("docker-registry")
        if not binary:
            pytest.fail("docker-registry is missing: apt-get install -y docker-registry")
        self.dir = workdir
        self.tokens = TokenServer(workdir)
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        config = os.path.join(workdir, "config.yml")
        with open(config, "w") as f:
            f.write(f"""version: 0.1
log: {{level: warn}}
storage: {{filesystem: {{rootdirectory: {workdir}/data}}, delete: {{enabled: true}}}}
http: {{addr: 127.0.0.1:{self.port}}}
auth:
  token:
    realm: http://127.0.0.1:{self.tokens.port}/token
    service: {SERVICE}
    issuer: {ISSUER}
    rootcertbundle: {self.tokens.cert}
""")
        self.log = open(os.path.join(workdir, "registry.log"), "w")
        self.proc = subprocess.Popen([binary, "serve", config], stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(f"http://{self.host}/v2/", timeout=1)
                break
            except urllib.error.HTTPError as e:
                if e.code == 401:  # up, and asking for a token
                    break
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"docker-registry did not start: {open(self.log.name).read()[-2000:]}")
            time.sleep(0.1)

    def push(self, source: str, name: str, all_platforms: bool = False) -> str:
        """skopeo copy SOURCE docker://HOST/NAME with the test credentials. -> the full reference."""
        ref = f"{self.host}/{name}"
        args = ["skopeo", "copy", "--dest-tls-verify=false", "--dest-creds", f"{USER}:{PASSWORD}"]
        subprocess.run(
            [*args, *(["--all"] if all_platforms else []), source, f"docker://{ref}"], check=True, capture_output=True
        )
        return ref

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        self.tokens.stop()

"""Fixtures that run Debian's `docker-registry` (distribution 2.8) on 127.0.0.1.

Variants: plain HTTP, TLS with a CA made here, htpasswd Basic auth, and token auth with a small
JWT issuer running in a thread. Everything lives in tmp dirs; every process and thread is
stopped in teardown. Needs the apt packages `docker-registry` and `apache2-utils` (htpasswd -B)
and the `cryptography` Python package.

Import the fixtures into a test module with
`from tests.integration.registry_fixtures import registry  # noqa: F401`.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import http.client
import ipaddress
import json
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

REGISTRY_BIN = "/usr/bin/docker-registry"
TEST_USER = "socikit-user"
TEST_PASSWORD = "s3cret-Pa55word-never-shown"
TOKEN_SERVICE = "socikit-test-registry"
TOKEN_ISSUER = "socikit-test-issuer"
IDENTITY_TOKEN = "identity-refresh-token-never-shown"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ---------------------------------------------------------------------------------------------
# certificates


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _write_key(key: rsa.RSAPrivateKey, path: Path) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))


def _cert(subject_cn: str, key: rsa.RSAPrivateKey, issuer: x509.Certificate | None,
          issuer_key: rsa.RSAPrivateKey | None, *, ca: bool) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject_cn)])
    builder = (x509.CertificateBuilder()
               .subject_name(name)
               .issuer_name(issuer.subject if issuer else name)
               .public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(minutes=5))
               .not_valid_after(now + dt.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                          data_encipherment=False, key_agreement=False, key_cert_sign=True,
                          crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
    else:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                         x509.DNSName("localhost")]), critical=False)
    return builder.sign(issuer_key or key, hashes.SHA256())


@dataclass
class TlsMaterial:
    ca_cert: Path
    server_cert: Path
    server_key: Path
    cert_dir: Path  # certs.d-style: ca.crt


def make_tls(root: Path) -> TlsMaterial:
    root.mkdir(parents=True, exist_ok=True)
    ca_key = _key()
    ca = _cert("socikit test CA", ca_key, None, None, ca=True)
    server_key = _key()
    server = _cert("127.0.0.1", server_key, ca, ca_key, ca=False)
    (root / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (root / "server.pem").write_bytes(server.public_bytes(serialization.Encoding.PEM))
    _write_key(server_key, root / "server.key")
    cert_dir = root / "certs.d"
    cert_dir.mkdir()
    shutil.copy(root / "ca.pem", cert_dir / "ca.crt")
    return TlsMaterial(root / "ca.pem", root / "server.pem", root / "server.key", cert_dir)


# ---------------------------------------------------------------------------------------------
# token issuer


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class TokenIssuer:
    """A tiny token server: GET /token with Basic auth (or POST /token with the OAuth2
    refresh-token grant) returns a JWT granting every requested scope. Wrong or missing
    credentials get 401. The registry trusts the signing certificate via `rootcertbundle`."""

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.key = _key()
        self.cert = _cert("socikit token signer", self.key, None, None, ca=True)
        self.bundle = root / "token-signer.pem"
        self.bundle.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        self.requests: list[dict[str, Any]] = []
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _reply(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802
                query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                auth = self.headers.get("Authorization", "")
                expected = "Basic " + base64.b64encode(f"{TEST_USER}:{TEST_PASSWORD}".encode()).decode()
                issuer.requests.append({"method": "GET", "scopes": query.get("scope", [])})
                if auth != expected:
                    self._reply(401, {"details": "bad credentials"})
                    return
                token = issuer.sign(TEST_USER, query.get("scope", []))
                self._reply(200, {"token": token, "expires_in": 300})

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length", "0"))
                form = urllib.parse.parse_qs(self.rfile.read(length).decode())
                scopes = " ".join(form.get("scope", [])).split()
                issuer.requests.append({"method": "POST", "scopes": scopes})
                grant = (form.get("grant_type"), form.get("refresh_token"))
                if grant != (["refresh_token"], [IDENTITY_TOKEN]):
                    self._reply(401, {"details": "bad refresh token"})
                    return
                # Answer with `access_token` only, as OAuth2 servers do.
                self._reply(200, {"access_token": issuer.sign(TEST_USER, scopes)})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.realm = f"http://127.0.0.1:{self.server.server_address[1]}/token"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def sign(self, subject: str, scopes: list[str]) -> str:
        access = []
        for scope in scopes:
            parts = scope.split(":")
            if len(parts) >= 3:
                access.append({"type": parts[0], "name": ":".join(parts[1:-1]),
                               "actions": parts[-1].split(",")})
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256",
                  "x5c": [base64.b64encode(self.cert.public_bytes(serialization.Encoding.DER)).decode()]}
        claims = {"iss": TOKEN_ISSUER, "sub": subject, "aud": TOKEN_SERVICE, "exp": now + 300,
                  "nbf": now - 60, "iat": now, "jti": uuid.uuid4().hex, "access": access}
        signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        signature = self.key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{_b64url(signature)}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


# ---------------------------------------------------------------------------------------------
# the registry process


@dataclass
class RegistryServer:
    """One docker-registry process; `host` is `127.0.0.1:<port>`."""

    root: Path
    port: int
    auth: str = "none"  # none | htpasswd | token
    tls: TlsMaterial | None = None
    token_issuer: TokenIssuer | None = None
    proc: subprocess.Popen[bytes] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def plain_http(self) -> bool:
        return self.tls is None

    @property
    def url(self) -> str:
        return f"{'http' if self.tls is None else 'https'}://{self.host}"

    def write_config(self) -> Path:
        storage = self.root / "storage"
        storage.mkdir(parents=True, exist_ok=True)
        lines = [
            "version: 0.1",
            "log:",
            "  level: error",
            "  accesslog:",
            "    disabled: true",
            "storage:",
            "  filesystem:",
            f"    rootdirectory: {storage}",
            "  delete:",
            "    enabled: true",
            "  maintenance:",
            "    uploadpurging:",
            "      enabled: false",
            "http:",
            f"  addr: 127.0.0.1:{self.port}",
            "  secret: socikit-test-http-secret",
        ]
        if self.tls is not None:
            lines += ["  tls:", f"    certificate: {self.tls.server_cert}", f"    key: {self.tls.server_key}"]
        if self.auth == "htpasswd":
            htpasswd = self.root / "htpasswd"
            out = subprocess.run(["htpasswd", "-Bbn", TEST_USER, TEST_PASSWORD], check=True,
                                 capture_output=True).stdout
            htpasswd.write_bytes(out)
            lines += ["auth:", "  htpasswd:", "    realm: socikit-test", f"    path: {htpasswd}"]
        elif self.auth == "token":
            assert self.token_issuer is not None
            lines += ["auth:", "  token:", f"    realm: {self.token_issuer.realm}",
                      f"    service: {TOKEN_SERVICE}", f"    issuer: {TOKEN_ISSUER}",
                      f"    rootcertbundle: {self.token_issuer.bundle}"]
        config = self.root / "config.yml"
        config.write_text("\n".join(lines) + "\n")
        return config

    def start(self) -> None:
        config = self.write_config()
        log = open(self.root / "registry.log", "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen([REGISTRY_BIN, "serve", str(config)], stdout=log, stderr=log,
                                     stdin=subprocess.DEVNULL)
        log.close()
        verify: bool | str = str(self.tls.ca_cert) if self.tls else True
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                log_text = (self.root / "registry.log").read_text()[-2000:]
                raise RuntimeError(f"docker-registry exited: {log_text}")
            try:
                requests.get(f"{self.url}/v2/", timeout=1, verify=verify)
                return
            except requests.RequestException:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("docker-registry did not start within 15 s")

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None


def _require_registry() -> None:
    if not Path(REGISTRY_BIN).exists():
        pytest.fail("docker-registry is not installed (apt-get install -y docker-registry)")


@pytest.fixture
def registry_factory(tmp_path: Path) -> Iterator[Callable[..., RegistryServer]]:
    """Start registries on demand (`factory(auth="htpasswd", tls=True)`); all stopped at teardown."""
    _require_registry()
    started: list[RegistryServer] = []
    issuers: list[TokenIssuer] = []

    def start(*, auth: str = "none", tls: bool = False) -> RegistryServer:
        root = tmp_path / f"registry-{len(started)}"
        root.mkdir()
        issuer = None
        if auth == "token":
            issuer = TokenIssuer(root / "token")
            issuers.append(issuer)
        server = RegistryServer(root=root, port=free_port(), auth=auth,
                                tls=make_tls(root / "tls") if tls else None, token_issuer=issuer)
        started.append(server)
        server.start()
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()
        for issuer in issuers:
            issuer.stop()


def _module_registry(tmp_path_factory: pytest.TempPathFactory, name: str,
                     **kwargs: Any) -> Iterator[RegistryServer]:
    _require_registry()
    root = tmp_path_factory.mktemp(name)
    issuer = TokenIssuer(root / "token") if kwargs.get("auth") == "token" else None
    tls = make_tls(root / "tls") if kwargs.pop("tls", False) else None
    server = RegistryServer(root=root, port=free_port(), tls=tls, token_issuer=issuer, **kwargs)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        if issuer is not None:
            issuer.stop()


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    """A plain-HTTP registry without auth, shared by a test module (use distinct repositories)."""
    yield from _module_registry(tmp_path_factory, "registry")


@pytest.fixture(scope="module")
def tls_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    """HTTPS with a server certificate from a CA made for the test (`server.tls.cert_dir`)."""
    yield from _module_registry(tmp_path_factory, "tls-registry", tls=True)


@pytest.fixture(scope="module")
def htpasswd_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    """Plain HTTP with htpasswd (bcrypt) Basic auth for TEST_USER / TEST_PASSWORD."""
    yield from _module_registry(tmp_path_factory, "htpasswd-registry", auth="htpasswd")


@pytest.fixture(scope="module")
def token_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    """Plain HTTP with Bearer token auth issued by an in-test `TokenIssuer`."""
    yield from _module_registry(tmp_path_factory, "token-registry", auth="token")


# ---------------------------------------------------------------------------------------------
# small in-test HTTP servers


Rewrite = Callable[[str, str, dict[str, str]], tuple[str, dict[str, str]]]


class FlakyProxy:
    """A forwarding proxy in front of a registry that fails on purpose: per request number n
    (from 0), n % 3 == 0 → 503, n % 3 == 1 → 429 with `Retry-After: 0`, else forwarded; with
    `drop=True` the 503 case closes the connection without answering instead; `fail=False`
    forwards everything. `rewrite(method, path, headers) -> (path, headers)` alters a request
    before it is forwarded (e.g. to drop `Range`)."""

    def __init__(self, upstream_port: int, *, drop: bool = False, fail: bool = True,
                 rewrite: Rewrite | None = None) -> None:
        self.count = 0
        self.failures = 0
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length", "0") or 0)
                body = self.rfile.read(length) if length else b""
                with proxy.lock:
                    n = proxy.count
                    proxy.count += 1
                if fail and n % 3 in (0, 1):
                    proxy.failures += 1
                    if n % 3 == 0 and drop:
                        self.close_connection = True
                        self.connection.shutdown(socket.SHUT_RDWR)
                        return
                    self.send_response(503 if n % 3 == 0 else 429)
                    if n % 3 == 1:
                        self.send_header("Retry-After", "0")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                conn = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
                path = self.path
                if rewrite is not None:
                    path, headers = rewrite(self.command, path, headers)
                conn.request(self.command, path, body=body or None, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                self.send_response(resp.status)
                for key, value in resp.getheaders():
                    if key.lower() not in ("connection", "transfer-encoding", "content-length"):
                        self.send_header(key, value)
                if self.command == "HEAD":
                    self.send_header("Content-Length", resp.getheader("Content-Length", "0"))
                else:
                    self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                conn.close()

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _handle  # noqa: N815

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


class FakeReferrersRegistry:
    """A minimal registry-shaped endpoint that implements the Referrers API (docker-registry 2.8
    does not): `GET /v2/<repo>/referrers/<digest>` answers from `self.referrers` (optionally with
    `OCI-Filters-Applied`), `PUT /v2/<repo>/manifests/<ref>` answers 201 with `OCI-Subject`.
    Every request line is recorded in `self.seen`."""

    def __init__(self) -> None:
        self.referrers: dict[str, list[dict[str, Any]]] = {}
        self.filters_applied = False
        self.content_type = "application/vnd.oci.image.index.v1+json"
        self.seen: list[str] = []
        self.manifests: dict[str, bytes] = {}
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802
                fake.seen.append(f"GET {self.path}")
                parts = urllib.parse.urlsplit(self.path)
                if "/referrers/" in parts.path:
                    digest = parts.path.rsplit("/", 1)[1]
                    wanted = urllib.parse.parse_qs(parts.query).get("artifactType", [None])[0]
                    manifests = fake.referrers.get(digest, [])
                    headers = {"Content-Type": fake.content_type}
                    if fake.filters_applied and wanted:
                        manifests = [m for m in manifests if m.get("artifactType") == wanted]
                        headers["OCI-Filters-Applied"] = "artifactType"
                    body = json.dumps({"schemaVersion": 2,
                                       "mediaType": "application/vnd.oci.image.index.v1+json",
                                       "manifests": manifests}).encode()
                    self._send(200, body, headers)
                    return
                self._send(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"unknown"}]}',
                           {"Content-Type": "application/json"})

            def do_PUT(self) -> None:  # noqa: N802
                fake.seen.append(f"PUT {self.path}")
                length = int(self.headers.get("Content-Length", "0") or 0)
                body = self.rfile.read(length)
                ref = self.path.rsplit("/", 1)[1]
                fake.manifests[ref] = body
                subject = (json.loads(body).get("subject") or {}).get("digest", "")
                headers = {"Docker-Content-Digest": "sha256:" + hashlib.sha256(body).hexdigest()}
                if subject:
                    headers["OCI-Subject"] = subject
                self._send(201, b"", headers)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def flaky_proxy(registry: RegistryServer) -> Iterator[Callable[..., FlakyProxy]]:
    proxies: list[FlakyProxy] = []

    def make(**kwargs: Any) -> FlakyProxy:
        proxy = FlakyProxy(registry.port, **kwargs)
        proxies.append(proxy)
        return proxy

    try:
        yield make
    finally:
        for proxy in proxies:
            proxy.stop()


@pytest.fixture
def fake_referrers_registry() -> Iterator[FakeReferrersRegistry]:
    fake = FakeReferrersRegistry()
    try:
        yield fake
    finally:
        fake.stop()

# ruff: noqa: F811  (pytest fixtures imported from registry_fixtures are parameters here)
"""What a registry conversion imports before it reads its first layer, and the session its client
sends through (set up as oras-py's `Registry` sets up its own, without importing that module):
module sets and behaviour against Debian's docker-registry on 127.0.0.1, never timings."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from socikit.registry import RegistryClient, RetryPolicy
from tests.cli import run_socikit as socikit
from tests.integration.registry_fixtures import RegistryServer, registry, tls_registry  # noqa: F401
from tests.integration.test_cli_registry import GOLDEN_INDEX, SMALL, push_original, raw_manifest
from tests.unit.test_cli_startup import loaded_and_at_fork, registry_stack
from tests.vectors import REPO_ROOT

pytestmark = [pytest.mark.integration, pytest.mark.registry]

FAST_RETRY = RetryPolicy(attempts=2, initial_delay=0.01, max_delay=0.05, deadline=10.0)


def test_registry_convert_never_imports_jsonschema(registry: RegistryServer, tmp_path: Path) -> None:
    """The registry client needs requests and oras-py's auth backend, not `oras.provider` (whose
    import pulls in jsonschema); the pre-write checks come in after the layer workers are forked
    and decide without jsonschema."""
    src = push_original(registry, "startup")
    dst = f"{registry.host}/startup:soci"
    modules, at_fork = loaded_and_at_fork(
        "convert", "--plain-http", *SMALL, "--all-platforms", "--jobs", "2", "--no-cache", "--progress", "none",
        src, dst, "--root", str(tmp_path / "root"),
    )  # fmt: skip
    assert raw_manifest(registry, dst) == GOLDEN_INDEX
    assert at_fork is not None  # several layers on two jobs: worker processes
    assert {"requests", "oras.auth.token", "socikit.registry.client"} <= at_fork  # the client was there ...
    assert not {m for m in at_fork if m.startswith("socikit.validate")}  # ... the checks were not
    assert "socikit.validate.prewrite" in modules
    assert not {m for m in modules if m.startswith(("jsonschema", "referencing"))}
    assert "oras.provider" not in modules
    assert registry_stack(at_fork)  # the probe sees the registry stack at all


def test_the_client_module_does_not_import_oras_provider() -> None:
    probe = "import json, sys, socikit.registry.store; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO_ROOT, capture_output=True, text=True, check=True,
                         timeout=60).stdout  # fmt: skip
    loaded = set(json.loads(out))
    assert "oras.auth.token" in loaded
    assert not {m for m in loaded if m.startswith(("oras.provider", "jsonschema"))}, loaded


class _CookieRegistry(BaseHTTPRequestHandler):
    """Answers every manifest HEAD with a digest and a cookie; records the Cookie headers sent."""

    cookies_seen: list[str | None] = []

    def do_HEAD(self) -> None:  # noqa: N802 (http.server's name)
        type(self).cookies_seen.append(self.headers.get("Cookie"))
        self.send_response(200)
        self.send_header("Set-Cookie", "session=abc; Path=/")
        self.send_header("Docker-Content-Digest", "sha256:" + "a" * 64)
        self.send_header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
        self.send_header("Content-Length", "123")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def cookie_registry() -> Iterator[str]:
    _CookieRegistry.cookies_seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _CookieRegistry)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_cookies_a_registry_sets_are_never_sent_back(cookie_registry: str) -> None:
    client = RegistryClient(cookie_registry, plain_http=True, retry=FAST_RETRY)
    for _ in range(2):
        assert client.resolve("app", "v1").digest == "sha256:" + "a" * 64
    assert _CookieRegistry.cookies_seen == [None, None]
    assert len(client.session.cookies) == 0


def test_unverified_tls_prints_no_insecure_request_warning(tls_registry: RegistryServer, tmp_path: Path) -> None:
    """`--tls-verify=false` talks HTTPS without checking the certificate and says nothing about it
    on stderr beyond what the command prints (urllib3 would warn on every request)."""
    src = push_original(tls_registry, "no-warning")
    out = tmp_path / "out"
    result = socikit("convert", "--tls-verify=false", *SMALL, "--all-platforms", "--no-cache", "--progress", "none",
                     "--v1", src, f"oci:{out}:soci", root=tmp_path / "root")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (out / "index.json").is_file()
    assert "Warning" not in result.stderr, result.stderr
    assert result.stderr == "", result.stderr

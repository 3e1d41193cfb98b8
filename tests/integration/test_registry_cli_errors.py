# ruff: noqa: F811  (pytest fixtures imported from registry_fixtures are parameters here)
"""Registry errors as a user meets them: `socikit` run as a subprocess (stdin not a terminal)
against Debian's docker-registry fixtures must say what went wrong in one line, and must never
print a password or token, not even with every logger at DEBUG."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from socikit.errors import AuthError, RegistryError
from socikit.registry import Credentials, RegistryClient, RegistryOptions, RetryPolicy
from tests.integration.registry_fixtures import (  # noqa: F401
    TEST_PASSWORD,
    TEST_USER,
    RegistryServer,
    htpasswd_registry,
    registry,
    token_registry,
)
from tests.vectors import REPO_ROOT, all_vectors

pytestmark = [pytest.mark.integration, pytest.mark.registry]

MULTI = next(v for v in all_vectors() if v.name == "multi-platform")
FAST_RETRY = RetryPolicy(attempts=2, initial_delay=0.01, max_delay=0.05, deadline=10.0)
PLAIN_HTTP_HINT = "the registry answered in plain HTTP; add --plain-http"


def run_socikit(*args: str, home: Path, debug_logging: bool = False,
                env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`socikit ARGS` from this worktree, stdin from /dev/null (no terminal), an empty HOME and
    Docker config unless `env` says otherwise. With `debug_logging`, every logger (requests,
    urllib3, socikit) writes DEBUG records to stderr."""
    home.mkdir(parents=True, exist_ok=True)
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_", "SOCIKIT_"))}
    environ.update(PYTHONPATH=str(REPO_ROOT), HOME=str(home), DOCKER_CONFIG=str(home / "docker"))
    environ.update(env or {})
    if debug_logging:
        code = ("import logging, sys; logging.basicConfig(level=logging.DEBUG, stream=sys.stderr); "
                "from socikit.cli import main; sys.argv[0] = 'socikit'; main()")
        command = [sys.executable, "-c", code, *args]
    else:
        command = [sys.executable, "-m", "socikit", *args]
    return subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=180, env=environ, cwd=home)


def convert_args(destination: str, root: Path, *extra: str) -> list[str]:
    return ["convert", "--span-size", "65536", "--min-layer-size", "0", "--progress", "none",
            "--root", str(root), *extra, f"oci:{MULTI.input_dir}:latest", destination]


# ---------------------------------------------------------------------------------------------
# an HTTP registry reached over HTTPS


def test_client_names_plain_http_when_tls_meets_an_http_registry(registry: RegistryServer) -> None:
    client = RegistryClient(registry.host, retry=FAST_RETRY)  # https:// to a plain-HTTP registry
    with pytest.raises(RegistryError) as info:
        client.resolve("hint/app", "v1")
    assert str(info.value) == (f"resolve {registry.host}/hint/app:v1 on {registry.host}: "
                               f"TLS error (WRONG_VERSION_NUMBER): {PLAIN_HTTP_HINT}")


def test_convert_without_plain_http_says_to_add_it(registry: RegistryServer, tmp_path: Path) -> None:
    result = run_socikit(*convert_args(f"{registry.host}/hint/app:1", tmp_path / "root"), home=tmp_path)
    assert result.returncode == 1, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert lines[0].endswith(f"TLS error (WRONG_VERSION_NUMBER): {PLAIN_HTTP_HINT}")
    assert registry.host in lines[0]


# ---------------------------------------------------------------------------------------------
# --user without a password and no terminal


NO_PASSWORD = ("error: no password for --user socikit-user and no terminal to ask for it: give "
               "--user USER:PASSWORD, or leave out --user to use the Docker config")


@pytest.mark.parametrize("command", ["convert", "validate", "index-list-remote"])
def test_user_without_password_and_no_terminal_is_one_clear_line(
        registry: RegistryServer, tmp_path: Path, command: str) -> None:
    ref = f"{registry.host}/nopass/app:1"
    args = {
        "convert": convert_args(ref, tmp_path / "root", "--plain-http", "-u", "socikit-user"),
        "validate": ["validate", "--plain-http", "-u", "socikit-user", ref],
        "index-list-remote": ["index", "list", "--remote", ref, "--plain-http", "-u", "socikit-user"],
    }[command]
    result = run_socikit(*args, home=tmp_path)
    assert result.returncode == 1
    assert result.stderr == NO_PASSWORD + "\n"
    assert "Aborted" not in result.stdout + result.stderr


# ---------------------------------------------------------------------------------------------
# secrets never printed

WRONG_PASSWORD = "Wr0ng-pa55word-that-must-never-show"
WRONG_IDENTITY_TOKEN = "wrong-identity-token-that-must-never-show"
# The start of every JWT (base64url of `{"typ"` / `{"alg"`): no issued token may be printed.
JWT_PREFIXES = ("eyJ0eXAi", "eyJhbGci")


def _basic(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


def _assert_no_secret(output: str, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in output, f"secret {secret[:4]}… printed"
    for prefix in JWT_PREFIXES:
        assert prefix not in output, "a token was printed"


@pytest.mark.parametrize("fixture", ["htpasswd_registry", "token_registry"])
@pytest.mark.parametrize("how", ["--user", "docker-config"])
def test_refused_credentials_are_never_printed(fixture: str, how: str, request: pytest.FixtureRequest,
                                               tmp_path: Path) -> None:
    """A refused password, given on the command line or in a Docker config, appears nowhere in
    the output, with every logger (requests, urllib3, socikit) at DEBUG."""
    server: RegistryServer = request.getfixturevalue(fixture)
    extra = ["--plain-http"]
    if how == "--user":
        extra += ["-u", f"{TEST_USER}:{WRONG_PASSWORD}"]
    else:
        config = tmp_path / "home" / "docker" / "config.json"
        config.parent.mkdir(parents=True)
        config.write_text(json.dumps({"auths": {server.host: {"auth": _basic(TEST_USER, WRONG_PASSWORD)}}}))
    result = run_socikit(*convert_args(f"{server.host}/secret/app:1", tmp_path / "root", *extra),
                         home=tmp_path / "home", debug_logging=True)
    assert result.returncode == 1
    assert f"error: authentication failed for {server.host}" in result.stderr.splitlines()
    assert "DEBUG" in result.stderr  # the logs really were on
    _assert_no_secret(result.stdout + result.stderr, WRONG_PASSWORD, _basic(TEST_USER, WRONG_PASSWORD))


def test_refused_identity_token_is_never_printed(token_registry: RegistryServer, tmp_path: Path) -> None:
    config = tmp_path / "home" / "docker" / "config.json"
    config.parent.mkdir(parents=True)
    config.write_text(json.dumps({"auths": {token_registry.host: {"identitytoken": WRONG_IDENTITY_TOKEN}}}))
    result = run_socikit(*convert_args(f"{token_registry.host}/secret/id:1", tmp_path / "root", "--plain-http"),
                         home=tmp_path / "home", debug_logging=True)
    assert result.returncode == 1
    assert f"error: authentication failed for {token_registry.host}" in result.stderr.splitlines()
    _assert_no_secret(result.stdout + result.stderr, WRONG_IDENTITY_TOKEN)


def test_a_successful_token_push_prints_no_password_and_no_token(token_registry: RegistryServer,
                                                                   tmp_path: Path) -> None:
    result = run_socikit(*convert_args(f"{token_registry.host}/secret/ok:1", tmp_path / "root", "--plain-http",
                                       "-u", f"{TEST_USER}:{TEST_PASSWORD}", "--all-platforms"),
                         home=tmp_path / "home", debug_logging=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "/token?" in result.stderr  # urllib3's DEBUG lines show the token requests themselves
    _assert_no_secret(result.stdout + result.stderr, TEST_PASSWORD, _basic(TEST_USER, TEST_PASSWORD))


class _LeakyRegistry:
    """A registry-shaped endpoint that misbehaves with secrets: its token endpoint hands out a
    token with a line break in it (not a valid header value), and `/v2/echo/...` answers 400
    with an error message that repeats the Authorization header it got."""

    TOKEN = "leaky-token-value-must-never-show"

    def __init__(self, bad_token: bool) -> None:
        leaky = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802
                if self.path.startswith("/token"):
                    token = leaky.TOKEN + ("\nX-Injected: 1" if bad_token else "")
                    self._send(200, {"token": token})
                    return
                auth = self.headers.get("Authorization", "")
                if not auth:
                    realm = f"http://{leaky.host}/token"
                    self._send(401, {"errors": [{"code": "UNAUTHORIZED", "message": "login"}]},
                               {"WWW-Authenticate": f'Bearer realm="{realm}",service="leaky",'
                                                    'scope="repository:echo:pull"'})
                    return
                self._send(400, {"errors": [{"code": "UNSUPPORTED", "message": f"cannot use {auth}"}]})

            do_HEAD = do_GET  # noqa: N815

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture(params=[True, False], ids=["token-with-line-break", "registry-echoes-token"])
def leaky(request: pytest.FixtureRequest) -> Iterator[_LeakyRegistry]:
    server = _LeakyRegistry(bad_token=request.param)
    try:
        yield server
    finally:
        server.stop()


def test_registry_messages_never_carry_a_token(leaky: _LeakyRegistry) -> None:
    """A token that is not a valid header value (requests' own error would quote it) and a
    registry error message that echoes the token both reach the user without it."""
    client = RegistryClient(leaky.host, plain_http=True, retry=FAST_RETRY)
    with pytest.raises(RegistryError) as info:
        client.get_manifest("echo", "v1")
    message = str(info.value)
    assert leaky.TOKEN not in message and leaky.host in message
    assert "request failed (InvalidHeader)" in message or "cannot use Bearer <redacted>" in message


def test_registry_messages_never_carry_a_password(htpasswd_registry: RegistryServer) -> None:
    client = RegistryClient(htpasswd_registry.host, plain_http=True, retry=FAST_RETRY,
                            credentials=Credentials(TEST_USER, WRONG_PASSWORD))
    assert client.auth.redact(f"x {WRONG_PASSWORD} y {_basic(TEST_USER, WRONG_PASSWORD)}") == \
        "x <redacted> y <redacted>"
    with pytest.raises(AuthError) as info:
        client.resolve("secret/lib", "v1")
    _assert_no_secret(str(info.value) + repr(client) + repr(client.auth), WRONG_PASSWORD)


def test_options_repr_hides_an_inline_password() -> None:
    options = RegistryOptions(user=f"{TEST_USER}:{WRONG_PASSWORD}", password=WRONG_PASSWORD)
    assert WRONG_PASSWORD not in repr(options) and TEST_USER in repr(options)

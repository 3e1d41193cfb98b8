"""socikit.registry.auth without a network: challenge parsing, Docker config lookup (auths,
credHelpers, credsStore, $DOCKER_CONFIG), secret redaction, and the per-scope token cache
driven with a fake session."""

from __future__ import annotations

import base64
import io
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
import requests
from requests.structures import CaseInsensitiveDict

from socikit.errors import AuthError, RegistryError
from socikit.registry.auth import (
    Challenge,
    Credentials,
    RegistryAuth,
    docker_config_path,
    load_docker_credentials,
    parse_challenges,
    parse_user,
    scope_for_request,
)
from socikit.registry.store import RegistryOptions, credentials_for

SECRET = "hunter2-very-secret"


# ---------------------------------------------------------------------------------------------
# challenges and scopes


def test_parse_bearer_challenge_with_commas_in_scope() -> None:
    header = ('Bearer realm="https://auth.example/token",service="registry.example",'
              'scope="repository:a/b:pull,push repository:c:pull",error="insufficient_scope"')
    [challenge] = parse_challenges(header)
    assert challenge.scheme == "bearer"
    assert challenge.params["realm"] == "https://auth.example/token"
    assert challenge.params["service"] == "registry.example"
    assert challenge.scopes == ("repository:a/b:pull,push", "repository:c:pull")


def test_parse_several_challenges_and_odd_forms() -> None:
    parsed = parse_challenges('Basic realm="Registry Realm", Bearer realm=https://t/x, scope="q\\"x"')
    assert parsed == [Challenge("basic", {"realm": "Registry Realm"}),
                      Challenge("bearer", {"realm": "https://t/x", "scope": 'q"x'})]
    assert parse_challenges("Basic") == [Challenge("basic", {})]
    assert parse_challenges("") == []


@pytest.mark.parametrize(("method", "url", "scope"), [
    ("GET", "https://r/v2/a/b/manifests/latest", "repository:a/b:pull"),
    ("HEAD", "https://r/v2/a/blobs/sha256:00", "repository:a:pull"),
    ("PUT", "https://r/v2/x/y/z/manifests/v1", "repository:x/y/z:pull,push"),
    ("POST", "https://r/v2/x/blobs/uploads/?mount=sha256:00&from=y", "repository:x:pull,push"),
    ("PATCH", "https://r/v2/x/blobs/uploads/uuid", "repository:x:pull,push"),
    ("GET", "https://r/v2/x/tags/list", "repository:x:pull"),
    ("DELETE", "https://r/v2/x/manifests/sha256:00", "repository:x:delete"),
    ("GET", "https://r/v2/", ""),
])
def test_scope_for_request(method: str, url: str, scope: str) -> None:
    assert scope_for_request(method, url) == scope


# ---------------------------------------------------------------------------------------------
# credentials and redaction


def test_credentials_never_show_secrets() -> None:
    for creds in (Credentials("me", SECRET), Credentials(identity_token=SECRET)):
        for text in (repr(creds), str(creds), f"{creds}", repr([creds])):
            assert SECRET not in text
    assert "me" in repr(Credentials("me", SECRET))


def test_parse_user() -> None:
    assert parse_user("me:pa:ss") == Credentials("me", "pa:ss")
    assert parse_user("me") == Credentials("me", "")


def test_registry_options_repr_hides_password() -> None:
    options = RegistryOptions(user="me", password=SECRET)
    assert SECRET not in repr(options)
    assert credentials_for("h:1", options) == Credentials("me", SECRET)
    assert credentials_for("h:1", RegistryOptions(user=f"me:{SECRET}")) == Credentials("me", SECRET)


# ---------------------------------------------------------------------------------------------
# docker config


def _write_config(directory: Path, config: dict[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "config.json"
    path.write_text(json.dumps(config))
    return path


def test_config_path_resolution(tmp_path: Path) -> None:
    assert docker_config_path(None, {"DOCKER_CONFIG": "/d", "HOME": "/h"}) == Path("/d/config.json")
    assert docker_config_path(None, {"HOME": "/h"}) == Path("/h/.docker/config.json")
    assert docker_config_path(tmp_path, {}) == tmp_path / "config.json"
    assert docker_config_path(tmp_path / "x.json", {}) == tmp_path / "x.json"


def test_auths_base64_username_password_and_identity_token(tmp_path: Path) -> None:
    encoded = base64.b64encode(f"alice:{SECRET}".encode()).decode()
    _write_config(tmp_path, {"auths": {
        "https://reg.example:5000/v1/": {"auth": encoded},
        "other.example": {"username": "bob", "password": SECRET},
        "tok.example": {"auth": "", "identitytoken": SECRET},
        "https://index.docker.io/v1/": {"auth": encoded},
    }})
    env = {"DOCKER_CONFIG": str(tmp_path)}
    assert load_docker_credentials("reg.example:5000", env=env) == Credentials("alice", SECRET)
    assert load_docker_credentials("other.example", env=env) == Credentials("bob", SECRET)
    assert load_docker_credentials("tok.example", env=env) == Credentials(identity_token=SECRET)
    assert load_docker_credentials("registry-1.docker.io", env=env) == Credentials("alice", SECRET)
    assert load_docker_credentials("unknown.example", env=env) is None


def test_missing_config_means_anonymous(tmp_path: Path) -> None:
    assert load_docker_credentials("r", env={"DOCKER_CONFIG": str(tmp_path / "none")}) is None


def test_bad_base64_is_an_auth_error_without_the_value(tmp_path: Path) -> None:
    _write_config(tmp_path, {"auths": {"r": {"auth": "%%%" + SECRET}}})
    with pytest.raises(AuthError) as info:
        load_docker_credentials("r", env={"DOCKER_CONFIG": str(tmp_path)})
    assert SECRET not in str(info.value)


@pytest.fixture
def helper_bin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory on PATH with fake `docker-credential-*` helpers that log their stdin."""
    bindir = tmp_path / "bin"
    bindir.mkdir()

    def make(name: str, body: str) -> None:
        script = bindir / f"docker-credential-{name}"
        script.write_text("#!/bin/sh\n" f'read server; echo "$1 $server" >> "{bindir}/calls"\n' + body)
        script.chmod(script.stat().st_mode | stat.S_IXUSR)

    make("pass", f'echo \'{{"ServerURL":"x","Username":"helper-user","Secret":"{SECRET}"}}\'\n')
    make("tok", f'echo \'{{"ServerURL":"x","Username":"<token>","Secret":"{SECRET}"}}\'\n')
    make("empty", 'echo "credentials not found in native keychain" >&2; exit 1\n')
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    return bindir


def test_cred_helpers_get_the_server_url_on_stdin(tmp_path: Path, helper_bin: Path) -> None:
    _write_config(tmp_path / "cfg", {"credHelpers": {"reg.example:5000": "pass", "t.example": "tok"},
                                     "auths": {"reg.example:5000": {"username": "inline", "password": "x"}}})
    env = {"DOCKER_CONFIG": str(tmp_path / "cfg")}
    assert load_docker_credentials("reg.example:5000", env=env) == Credentials("helper-user", SECRET)
    assert load_docker_credentials("t.example", env=env) == Credentials(identity_token=SECRET)
    assert (helper_bin / "calls").read_text().splitlines() == ["get reg.example:5000", "get t.example"]


def test_creds_store_then_auths_fallback(tmp_path: Path, helper_bin: Path) -> None:
    _write_config(tmp_path / "a", {"credsStore": "pass"})
    assert load_docker_credentials("any.example", env={"DOCKER_CONFIG": str(tmp_path / "a")}) == \
        Credentials("helper-user", SECRET)
    _write_config(tmp_path / "b", {"credsStore": "empty",
                                   "auths": {"r.example": {"username": "u", "password": "p"}}})
    found = load_docker_credentials("r.example", env={"DOCKER_CONFIG": str(tmp_path / "b")})
    assert found == Credentials("u", "p")
    _write_config(tmp_path / "c", {"credsStore": "not-installed"})
    assert load_docker_credentials("r.example", env={"DOCKER_CONFIG": str(tmp_path / "c")}) is None


# ---------------------------------------------------------------------------------------------
# the auth backend with a fake session


def _response(status: int, body: dict[str, Any] | None = None, headers: dict[str, str] | None = None,
              method: str = "GET", url: str = "https://r/v2/") -> requests.Response:
    resp = requests.Response()
    resp.status_code = status
    resp._content = json.dumps(body or {}).encode()
    resp.raw = io.BytesIO(b"")
    resp.headers = CaseInsensitiveDict(headers or {})
    resp.request = requests.Request(method, url).prepare()
    resp.url = url
    return resp


class FakeSession:
    """Stands in for requests.Session on the token endpoint."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.calls: list[dict[str, Any]] = []

    def get(self, url: str, *, params: Any = None, headers: Any = None, **kwargs: Any) -> requests.Response:
        self.calls.append({"method": "GET", "url": url, "params": params, "headers": headers})
        return _response(self.status, {"token": f"tok{len(self.calls)}"})

    def post(self, url: str, *, data: Any = None, **kwargs: Any) -> requests.Response:
        self.calls.append({"method": "POST", "url": url, "data": data})
        return _response(self.status, {"access_token": f"acc{len(self.calls)}"})


def _challenge(scope: str) -> str:
    return f'Bearer realm="https://auth/token",service="svc",scope="{scope}"'


def _unauthorized(method: str, url: str, scope: str) -> requests.Response:
    return _response(401, headers={"WWW-Authenticate": _challenge(scope)}, method=method, url=url)


def test_bearer_tokens_are_cached_per_scope() -> None:
    session = FakeSession()
    auth = RegistryAuth("r", Credentials("me", SECRET), session)  # type: ignore[arg-type]
    pull_url = "https://r/v2/app/manifests/v1"
    headers, changed = auth.authenticate_request(_unauthorized("GET", pull_url, "repository:app:pull"), {})
    assert changed and headers["Authorization"] == "Bearer tok1"
    call = session.calls[0]
    assert call["params"] == [("service", "svc"), ("scope", "repository:app:pull"), ("account", "me")]
    assert call["headers"]["Authorization"] == "Basic " + base64.b64encode(f"me:{SECRET}".encode()).decode()
    # Next pull of the same repository: sent pre-emptively, no new token request.
    assert auth.authorization("HEAD", "https://r/v2/app/blobs/sha256:00") == "Bearer tok1"
    # A push needs another scope: another token, and the pull token stays cached.
    push_url = "https://r/v2/app/blobs/uploads/"
    assert auth.authorization("POST", push_url) is None
    headers, changed = auth.authenticate_request(
        _unauthorized("POST", push_url, "repository:app:pull,push"), {})
    assert headers["Authorization"] == "Bearer tok2"
    assert auth.authorization("GET", pull_url) == "Bearer tok1"
    assert len(session.calls) == 2
    assert SECRET not in repr(auth)


def test_stale_token_is_refreshed_once_then_given_up() -> None:
    session = FakeSession()
    auth = RegistryAuth("r", Credentials("me", SECRET), session)  # type: ignore[arg-type]
    url = "https://r/v2/app/manifests/v1"
    auth.authenticate_request(_unauthorized("GET", url, "repository:app:pull"), {})
    headers, changed = auth.authenticate_request(_unauthorized("GET", url, "repository:app:pull"),
                                                 {"Authorization": "Bearer tok1"})
    assert changed and headers["Authorization"] == "Bearer tok2"


def test_multi_scope_challenge_asks_for_every_scope() -> None:
    session = FakeSession()
    auth = RegistryAuth("r", None, session)  # type: ignore[arg-type]
    url = "https://r/v2/dst/blobs/uploads/?mount=sha256:00&from=src"
    auth.authenticate_request(_unauthorized("POST", url, "repository:dst:pull,push repository:src:pull"), {})
    assert session.calls[0]["params"] == [("service", "svc"), ("scope", "repository:dst:pull,push"),
                                          ("scope", "repository:src:pull")]
    assert "Authorization" not in session.calls[0]["headers"]  # anonymous token request


def test_identity_token_uses_the_refresh_grant() -> None:
    session = FakeSession()
    auth = RegistryAuth("r", Credentials(identity_token=SECRET), session)  # type: ignore[arg-type]
    challenge = _unauthorized("GET", "https://r/v2/a/tags/list", "repository:a:pull")
    headers, _ = auth.authenticate_request(challenge, {})
    assert headers["Authorization"] == "Bearer acc1"
    assert session.calls[0]["data"]["grant_type"] == "refresh_token"
    assert session.calls[0]["data"]["refresh_token"] == SECRET


def test_token_endpoint_refusal_is_auth_error_without_secret() -> None:
    auth = RegistryAuth("reg:5000", Credentials("me", SECRET), FakeSession(status=401))  # type: ignore[arg-type]
    with pytest.raises(AuthError) as info:
        auth.authenticate_request(_unauthorized("GET", "https://r/v2/a/tags/list", "repository:a:pull"), {})
    assert str(info.value) == "authentication failed for reg:5000"
    assert SECRET not in repr(info.value)
    broken = RegistryAuth("reg:5000", None, FakeSession(status=500))  # type: ignore[arg-type]
    with pytest.raises(RegistryError) as info2:
        broken.authenticate_request(_unauthorized("GET", "https://r/v2/a/tags/list", "repository:a:pull"), {})
    assert "HTTP 500" in str(info2.value)


def test_basic_challenge_is_answered_once() -> None:
    auth = RegistryAuth("r", Credentials("me", SECRET), FakeSession())  # type: ignore[arg-type]
    resp = _response(401, headers={"WWW-Authenticate": 'Basic realm="x"'})
    headers, changed = auth.authenticate_request(resp, {})
    expected = "Basic " + base64.b64encode(f"me:{SECRET}".encode()).decode()
    assert changed and headers["Authorization"] == expected
    assert auth.authorization("GET", "https://r/v2/a/tags/list") == expected
    assert auth.authenticate_request(resp, headers) == (headers, False)
    anonymous = RegistryAuth("r", None, FakeSession())  # type: ignore[arg-type]
    assert anonymous.authenticate_request(resp, {})[1] is False

"""Registry credentials and the Docker Registry v2 auth flows (Basic, and Bearer tokens per the
distribution "token authentication" spec).

Credentials come from an explicit `user[:password]`, or from a Docker config file
(`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`): `credHelpers`, `credsStore`, then
`auths` (base64 `auth`, `username`/`password`, `identitytoken`). Secrets never appear in a repr,
a log line or an exception message.

`RegistryAuth` plugs into oras-py's `Registry.auth` slot (it is an oras `TokenAuth`), but fixes
what oras-py's backend cannot do for us: it answers both `Basic` and `Bearer` challenges, caches
one token per scope instead of a single token for the whole registry, asks for every scope of a
multi-scope challenge (cross-repository mounts), and speaks the OAuth2 refresh-token grant for
Docker identity tokens.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import subprocess
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
from oras.auth.token import TokenAuth  # type: ignore[import-untyped]

from socikit.errors import AuthError, RegistryError

logger = logging.getLogger(__name__)

DOCKER_HUB_HOSTS = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
DOCKER_HUB_CONFIG_KEY = "https://index.docker.io/v1/"

# Seconds; token endpoints are small and local or near.
_TOKEN_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True, repr=False)
class Credentials:
    """A username with a password, or a Docker identity (OAuth2 refresh) token.

    `repr` and `str` never show the password or token."""

    username: str = ""
    password: str = field(default="", compare=True)
    identity_token: str = ""

    def __repr__(self) -> str:
        secret = "<redacted>" if (self.password or self.identity_token) else "''"
        kind = "identity_token" if self.identity_token else "password"
        return f"Credentials(username={self.username!r}, {kind}={secret})"

    __str__ = __repr__

    @property
    def has_basic(self) -> bool:
        """True when a username/password pair can be sent as HTTP Basic auth."""
        return bool(self.username) and not self.identity_token

    def basic_value(self) -> str:
        """The base64 `user:password` payload of a Basic Authorization header."""
        raw = f"{self.username}:{self.password}".encode()
        return base64.b64encode(raw).decode("ascii")


def parse_user(text: str) -> Credentials:
    """Credentials from a `--user user[:password]` option (the password may be empty)."""
    username, _, password = text.partition(":")
    return Credentials(username=username, password=password)


# ----------------------------------------------------------------------------------------------
# Docker config


def docker_config_path(config_path: str | os.PathLike[str] | None = None,
                       env: Mapping[str, str] | None = None) -> Path:
    """The Docker config file to read: `config_path` (a file, or a directory holding
    `config.json`), else `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`."""
    environ = os.environ if env is None else env
    if config_path is not None:
        path = Path(config_path)
        return path / "config.json" if path.is_dir() else path
    if environ.get("DOCKER_CONFIG"):
        return Path(environ["DOCKER_CONFIG"]) / "config.json"
    return Path(environ.get("HOME") or Path.home()) / ".docker" / "config.json"


def _normalize_host(key: str) -> str:
    """`https://host:port/v1/` → `host:port`; Docker Hub aliases → `docker.io`."""
    text = key.strip()
    if "://" in text:
        text = urlsplit(text).netloc
    text = text.split("/", 1)[0].lower()
    return "docker.io" if text in DOCKER_HUB_HOSTS else text


def _helper_server_url(host: str) -> str:
    return DOCKER_HUB_CONFIG_KEY if _normalize_host(host) == "docker.io" else host


def _matching(mapping: Mapping[str, Any], host: str) -> Any:
    wanted = _normalize_host(host)
    if host in mapping:
        return mapping[host]
    for key, value in mapping.items():
        if _normalize_host(key) == wanted:
            return value
    return None


def run_credential_helper(name: str, server_url: str) -> Credentials | None:
    """Ask `docker-credential-<name> get` for `server_url`; None when it has nothing.

    The helper's stderr is never logged: some helpers echo their input or tokens there."""
    binary = f"docker-credential-{name}"
    try:
        proc = subprocess.run([binary, "get"], input=server_url.encode(), capture_output=True,
                              timeout=60, check=False)
    except FileNotFoundError:
        logger.warning("credential helper %s is not on PATH", binary)
        return None
    except subprocess.TimeoutExpired:
        logger.warning("credential helper %s timed out", binary)
        return None
    if proc.returncode != 0:
        logger.debug("credential helper %s has no credentials for %s", binary, server_url)
        return None
    try:
        payload = json.loads(proc.stdout)
        username = str(payload.get("Username", ""))
        secret = str(payload.get("Secret", ""))
    except (ValueError, AttributeError):
        logger.warning("credential helper %s printed something that is not JSON", binary)
        return None
    if not secret:
        return None
    # Docker's convention: the username "<token>" marks the secret as an identity token.
    if username == "<token>":
        return Credentials(identity_token=secret)
    return Credentials(username=username, password=secret)


def _from_auths_entry(entry: Any) -> Credentials | None:
    if not isinstance(entry, dict):
        return None
    identity = entry.get("identitytoken") or ""
    username = entry.get("username") or ""
    password = entry.get("password") or ""
    encoded = entry.get("auth") or ""
    if encoded:
        try:
            decoded = base64.b64decode(encoded).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            # Never echo the value: it is the secret.
            raise AuthError("docker config: an 'auth' entry is not valid base64") from None
        username, _, password = decoded.partition(":")
    if identity:
        return Credentials(username=username, identity_token=str(identity))
    if username or password:
        return Credentials(username=str(username), password=str(password))
    return None


def load_docker_credentials(host: str, *, config_path: str | os.PathLike[str] | None = None,
                            env: Mapping[str, str] | None = None) -> Credentials | None:
    """Credentials for `host` (`name[:port]`) from the Docker config, or None.

    Lookup order follows the docker CLI: a per-registry `credHelpers` entry, then the global
    `credsStore`, then the inline `auths` entry (also used when the store has nothing)."""
    path = docker_config_path(config_path, env)
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise AuthError(f"cannot read docker config {path}: {type(exc).__name__}") from None
    if not isinstance(config, dict):
        raise AuthError(f"docker config {path} is not a JSON object")
    server_url = _helper_server_url(host)
    helper = _matching(config.get("credHelpers") or {}, host)
    if helper:
        return run_credential_helper(str(helper), server_url)
    store = config.get("credsStore")
    if store:
        found = run_credential_helper(str(store), server_url)
        if found is not None:
            return found
    return _from_auths_entry(_matching(config.get("auths") or {}, host))


# ----------------------------------------------------------------------------------------------
# Challenges


@dataclass(frozen=True, slots=True)
class Challenge:
    """One `WWW-Authenticate` challenge: scheme (lower case) and its parameters."""

    scheme: str
    params: dict[str, str]

    @property
    def scopes(self) -> tuple[str, ...]:
        """The space-separated scopes of the `scope` parameter (distribution lists several for a
        cross-repository mount)."""
        return tuple(self.params.get("scope", "").split())


_SCHEME = re.compile(r"[\s,]*([A-Za-z][A-Za-z0-9_.-]*)")
_TOKEN68 = re.compile(r"[A-Za-z0-9._~+/-]+=*")
_PARAM = re.compile(r'\s*([A-Za-z0-9_.-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*')


def parse_challenges(header: str) -> list[Challenge]:
    """Parse a `WWW-Authenticate` value (RFC 7235) into challenges, honouring quoted strings
    that contain commas (`scope="repository:a:pull,push"`)."""
    out: list[Challenge] = []
    pos = 0
    text = header or ""
    while pos < len(text):
        match = _SCHEME.match(text, pos)
        if not match:
            break
        scheme = match.group(1).lower()
        pos = match.end()
        params: dict[str, str] = {}
        while True:
            pm = _PARAM.match(text, pos)
            if not pm or (pm.group(2) is None and pm.group(3) is None):
                break
            value = pm.group(2)
            value = re.sub(r"\\(.)", r"\1", value) if value is not None else pm.group(3)
            params[pm.group(1).lower()] = value
            pos = pm.end()
            if pos < len(text) and text[pos] == ",":
                pos += 1
                continue
            break
        if not params:
            tok = _TOKEN68.match(text, pos) if pos < len(text) and text[pos] == " " else None
            if tok:
                pos = tok.end()
        out.append(Challenge(scheme=scheme, params=params))
    return out


def scope_for_request(method: str, url: str) -> str:
    """The token scope a request on `url` needs (`repository:<name>:pull[,push]`), or "" when
    the URL names no repository (`/v2/`, `/v2/_catalog`)."""
    path = urlsplit(url).path
    match = re.match(r"^/v2/(.+?)/(manifests|blobs|tags|referrers)(/|$)", path)
    if not match:
        return ""
    actions = "pull" if method.upper() in ("GET", "HEAD") else "pull,push"
    if method.upper() == "DELETE":
        actions = "delete"
    return f"repository:{match.group(1)}:{actions}"


# ----------------------------------------------------------------------------------------------
# The auth backend


class RegistryAuth(TokenAuth):  # type: ignore[misc]
    """oras-py auth backend for one registry host with per-scope Bearer tokens and Basic auth.

    `authorization(method, url)` gives the header to send before a request; after a 401,
    `authenticate_request(response, headers)` (oras's hook) picks the challenge, obtains
    credentials for it and returns `(headers, True)`, or `(headers, False)` when it has nothing
    new to offer. Raises AuthError when a token endpoint refuses the credentials.
    """

    def __init__(self, host: str, credentials: Credentials | None, session: requests.Session,
                 *, verify: bool | str = True) -> None:
        super().__init__()
        self.host = host
        self.credentials = credentials
        self.session = session
        self._verify = verify
        # The base64 `user:password` of a Basic header (our own: oras keeps its copy private).
        self._basic_value: str | None = None
        if credentials is not None and credentials.has_basic:
            self._basic_value = credentials.basic_value()
        self._scheme: str | None = None  # learnt from the first challenge
        self._tokens: dict[str, str] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"RegistryAuth(host={self.host!r}, credentials={self.credentials!r})"

    def redact(self, text: str) -> str:
        """`text` with every secret this backend knows (password, identity token, Basic value,
        tokens) replaced by `<redacted>`: for text a registry sent back, which may echo them."""
        creds = self.credentials
        secrets = [*self._tokens.values(), self._basic_value or ""]
        if creds is not None:
            secrets += [creds.password, creds.identity_token]
        for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
            text = text.replace(secret, "<redacted>")
        return text

    def get_auth_header(self) -> dict[str, str]:
        return {}

    def authorization(self, method: str, url: str) -> str | None:
        """The Authorization header value to send pre-emptively, if any is known."""
        if self._scheme == "basic" and self._basic_value:
            return f"Basic {self._basic_value}"
        if self._scheme == "bearer":
            token = self._tokens.get(scope_for_request(method, url))
            if token:
                return f"Bearer {token}"
        return None

    def authenticate_request(self, original: requests.Response, headers: dict[str, str] | None,
                             refresh: bool = False) -> tuple[dict[str, str], bool]:
        headers = dict(headers or {})
        sent = headers.get("Authorization", "")
        challenges = parse_challenges(original.headers.get("WWW-Authenticate", ""))
        bearer = next((c for c in challenges if c.scheme == "bearer"), None)
        basic = next((c for c in challenges if c.scheme == "basic"), None)
        if bearer is not None and bearer.params.get("realm"):
            self._scheme = "bearer"
            request = original.request
            key = scope_for_request(request.method or "GET", request.url or "")
            with self._lock:
                cached = self._tokens.get(key)
                if cached and sent != f"Bearer {cached}" and not refresh:
                    headers["Authorization"] = f"Bearer {cached}"
                    return headers, True
                if sent.startswith("Bearer ") and self.credentials is None:
                    # An anonymous token was refused: asking again cannot help.
                    return headers, False
                token = self._fetch_token(bearer)
                self._tokens[key] = token
            if sent == f"Bearer {token}":
                return headers, False
            headers["Authorization"] = f"Bearer {token}"
            return headers, True
        if basic is not None:
            self._scheme = "basic"
            if not self._basic_value or sent == f"Basic {self._basic_value}":
                return headers, False
            headers["Authorization"] = f"Basic {self._basic_value}"
            return headers, True
        return headers, False

    def _fetch_token(self, challenge: Challenge) -> str:
        realm = challenge.params["realm"]
        service = challenge.params.get("service", "")
        scopes = challenge.scopes
        creds = self.credentials
        try:
            if creds is not None and creds.identity_token:
                # OAuth2 refresh-token grant, as the docker CLI does for identity tokens.
                form = {"grant_type": "refresh_token", "refresh_token": creds.identity_token,
                        "client_id": "socikit", "service": service, "scope": " ".join(scopes)}
                resp = self.session.post(realm, data=form, verify=self._verify,
                                         timeout=_TOKEN_TIMEOUT)
            else:
                params: list[tuple[str, str]] = []
                if service:
                    params.append(("service", service))
                params.extend(("scope", s) for s in scopes)
                if creds is not None and creds.username:
                    params.append(("account", creds.username))
                headers = {"Accept": "application/json"}
                if self._basic_value:
                    headers["Authorization"] = f"Basic {self._basic_value}"
                resp = self.session.get(realm, params=params, headers=headers,
                                        verify=self._verify, timeout=_TOKEN_TIMEOUT)
        except requests.RequestException as exc:
            raise RegistryError(f"token request for {self.host} failed: {type(exc).__name__}") from None
        with resp:
            if resp.status_code in (401, 403):
                raise AuthError(f"authentication failed for {self.host}")
            if resp.status_code != 200:
                raise RegistryError(f"token endpoint for {self.host} answered HTTP {resp.status_code}")
            try:
                body = resp.json()
            except ValueError:
                raise RegistryError(f"token endpoint for {self.host} sent no JSON") from None
        token = body.get("token") or body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise RegistryError(f"token endpoint for {self.host} sent no token")
        return token

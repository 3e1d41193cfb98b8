"""Where a lazily served image's bytes come from: registry endpoints, credentials, clients.

* **Endpoints.** An image's registry host is served by its configured mirrors (the reference's
  `[resolver.host."<host>"] mirrors`, `insecure = true` meaning plain HTTP), tried in order, then
  by the host itself. The host itself is spoken to over HTTPS, except a loopback host
  (`localhost`, `127.0.0.1`, `[::1]`, any port), which gets plain HTTP as containerd's resolver
  gives it. Docker Hub (`docker.io`) is `registry-1.docker.io`. A request an endpoint fails
  (unreachable, an error status, a blob it does not have) goes to the next one; the endpoint that
  answered last is asked first next time.
* **Host settings** (optional, the podman store's `[resolver.host]` tables): a host given
  `HostSettings` is spoken to exactly as they say (plain HTTP or HTTPS, certificate checks, a
  certs.d-style directory of CAs and client certificates), loopback or not; a mirror takes its
  TLS settings from its own host's entry and is plain HTTP when its entry says `insecure` or its
  own settings say `plain_http`. `cert_dirs(host)` names a default TLS directory for hosts whose
  settings give none.
* **Credentials.** Per endpoint: what the daemon was handed for that image (socikit's
  Credentials side channel, kept in memory), else the Docker config of the daemon's user
  (`auths`, `credsStore`, `credHelpers`), looked up once per host. Never logged.
* **Clients.** One `RegistryClient` per endpoint, credentials and purpose: metadata (manifests,
  SOCI indexes, ztocs) under the `[http]` retry policy, spans under the `[blob]` one, with a
  connection pool as large as the span fetch concurrency.

Blocking (HTTP); called from worker threads.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from requests.adapters import HTTPAdapter

from socikit.content.reference import parse_docker_reference
from socikit.errors import RegistryError
from socikit.oci.descriptor import Descriptor
from socikit.registry.auth import Credentials, load_docker_credentials
from socikit.registry.client import RegistryClient
from socikit.registry.referrers import fetch_referrers
from socikit.registry.transfer import RetryPolicy

__all__ = ["CredentialLookup", "Endpoint", "HostSettings", "Mirror", "RegistryHosts", "RemoteRepository", "Remotes"]

DOCKER_HUB = "docker.io"
DOCKER_HUB_ENDPOINT = "registry-1.docker.io"
_LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "[::1]", "::1"})
T = TypeVar("T")

CredentialLookup = Callable[[str, str], Credentials | None]
"""(image reference, registry host) -> credentials handed to the daemon for that image, or None."""


@dataclass(frozen=True)
class Mirror:
    host: str
    insecure: bool = False
    request_timeout: float = 0.0  # seconds; 0: the policy's own


@dataclass(frozen=True)
class HostSettings:
    """How to reach one configured registry host (see the module doc)."""

    plain_http: bool = False
    tls_verify: bool = True
    cert_dir: str = ""  # "" = `RegistryHosts.cert_dirs(host)`, if given


@dataclass(frozen=True)
class Endpoint:
    host: str
    plain_http: bool
    request_timeout: float = 0.0
    tls_verify: bool = True
    cert_dir: str = ""


def is_loopback_host(host: str) -> bool:
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    return name in _LOOPBACK_NAMES or host in _LOOPBACK_NAMES


class RegistryHosts:
    """The endpoints serving each registry host (see the module doc)."""

    def __init__(self, mirrors: Mapping[str, Sequence[Mirror]] | None = None, *,
                 settings: Mapping[str, HostSettings] | None = None,
                 cert_dirs: Callable[[str], str] | None = None) -> None:
        self.mirrors = {host: tuple(found) for host, found in (mirrors or {}).items()}
        self.settings = dict(settings or {})
        self.cert_dirs = cert_dirs

    def _cert_dir(self, host: str, given: str) -> str:
        return given or (self.cert_dirs(host) if self.cert_dirs is not None else "")

    def endpoints(self, host: str) -> list[Endpoint]:
        out = []
        for m in self.mirrors.get(host, ()):
            own = self.settings.get(m.host, HostSettings())
            out.append(Endpoint(m.host, m.insecure or own.plain_http, m.request_timeout, own.tls_verify,
                                self._cert_dir(m.host, own.cert_dir)))
        origin = DOCKER_HUB_ENDPOINT if host == DOCKER_HUB else host
        if not any(e.host == origin for e in out):
            given = self.settings.get(host)
            if given is None:
                out.append(Endpoint(origin, is_loopback_host(origin), cert_dir=self._cert_dir(origin, "")))
            else:
                out.append(Endpoint(origin, given.plain_http, tls_verify=given.tls_verify,
                                    cert_dir=self._cert_dir(origin, given.cert_dir)))
        return out


class Remotes:
    """Registry clients shared by every lazily served layer (see the module doc)."""

    def __init__(self, hosts: RegistryHosts, *, metadata_retry: RetryPolicy, span_retry: RetryPolicy,
                 handed: CredentialLookup | None = None, pool_size: int = 16,
                 docker_config: str | None = None) -> None:
        self.hosts = hosts
        self.metadata_retry = metadata_retry
        self.span_retry = span_retry
        self.handed = handed
        self.pool_size = max(1, pool_size)
        self.docker_config = docker_config
        self._lock = threading.Lock()
        self._clients: dict[tuple[str, bool, bool, str, str, str], RegistryClient] = {}
        self._docker_credentials: dict[str, Credentials | None] = {}

    def repository(self, image_ref: str) -> RemoteRepository:
        """The repository of an image reference (`host/repo[:tag][@digest]`, as containerd's
        `cri.image-ref` label gives it)."""
        ref = parse_docker_reference(image_ref)
        return RemoteRepository(self, image_ref, ref.host, ref.repository)

    def credentials(self, image_ref: str, origin: str, endpoint: str) -> Credentials | None:
        origin_endpoint = DOCKER_HUB_ENDPOINT if origin == DOCKER_HUB else origin
        if self.handed is not None and endpoint == origin_endpoint:
            handed = self.handed(image_ref, origin)
            if handed is not None:
                return handed  # handed over for this image and its own registry, not for a mirror
        with self._lock:
            if endpoint in self._docker_credentials:
                return self._docker_credentials[endpoint]
        found = load_docker_credentials(DOCKER_HUB if endpoint == DOCKER_HUB_ENDPOINT else endpoint,
                                        config_path=self.docker_config)
        with self._lock:
            self._docker_credentials[endpoint] = found
        return found

    def client(self, endpoint: Endpoint, credentials: Credentials | None, *, spans: bool) -> RegistryClient:
        secret = credentials.password or credentials.identity_token if credentials is not None else ""
        identity = "" if credentials is None else credentials.username + "\0" + \
            hashlib.sha256(secret.encode()).hexdigest()
        key = (endpoint.host, endpoint.plain_http, endpoint.tls_verify, endpoint.cert_dir, identity,
               "spans" if spans else "metadata")
        with self._lock:
            client = self._clients.get(key)
            if client is not None:
                return client
        policy = self.span_retry if spans else self.metadata_retry
        if endpoint.request_timeout > 0:
            policy = RetryPolicy(attempts=policy.attempts, initial_delay=policy.initial_delay,
                                 max_delay=policy.max_delay, deadline=policy.deadline,
                                 connect_timeout=policy.connect_timeout, read_timeout=endpoint.request_timeout)
        client = RegistryClient(endpoint.host, plain_http=endpoint.plain_http, tls_verify=endpoint.tls_verify,
                                cert_dir=endpoint.cert_dir or None, credentials=credentials, retry=policy)
        if endpoint.cert_dir and not endpoint.plain_http:
            # the client mounted an adapter with the directory's TLS context: resize its pool
            own = client.session.get_adapter(client.base_url + "/")
            own.init_poolmanager(2, self.pool_size)  # type: ignore[attr-defined]
        else:
            adapter = HTTPAdapter(pool_connections=2, pool_maxsize=self.pool_size)
            client.session.mount(client.base_url + "/", adapter)
        with self._lock:
            existing = self._clients.setdefault(key, client)
        if existing is not client:
            client.close()
        return existing

    def close(self) -> None:
        with self._lock:
            clients = list(self._clients.values())
            self._clients.clear()
        for client in clients:
            client.close()


class RemoteRepository:
    """One image's repository, across the endpoints serving its registry host."""

    def __init__(self, remotes: Remotes, image_ref: str, host: str, name: str) -> None:
        self.remotes = remotes
        self.image_ref = image_ref
        self.host = host
        self.name = name
        self._endpoints = remotes.hosts.endpoints(host)
        self._preferred = 0

    def __repr__(self) -> str:
        return f"RemoteRepository({self.host}/{self.name})"

    def _each(self, spans: bool) -> list[tuple[Endpoint, RegistryClient]]:
        order = self._endpoints[self._preferred:] + self._endpoints[:self._preferred]
        return [(e, self.remotes.client(e, self.remotes.credentials(self.image_ref, self.host, e.host), spans=spans))
                for e in order]

    @property
    def endpoint(self) -> Endpoint:
        """The endpoint asked first (the one that answered last)."""
        return self._endpoints[self._preferred]

    def _first(self, spans: bool, call: Callable[[RegistryClient], T]) -> T:
        failure: RegistryError | None = None
        for endpoint, client in self._each(spans):
            try:
                result = call(client)
            except RegistryError as exc:
                failure = exc
                continue
            self._preferred = self._endpoints.index(endpoint)
            return result
        assert failure is not None
        raise failure

    def get_manifest(self, reference: str) -> tuple[bytes, Descriptor]:
        """The manifest (or image index) a tag or digest names, and its descriptor."""
        return self._first(False, lambda c: c.get_manifest(self.name, reference))

    def read_manifest(self, digest: str) -> bytes:
        """A manifest (or SOCI index) by digest, digest verified."""
        return self._first(False, lambda c: c.get_manifest(self.name, digest)[0])

    def read_blob(self, desc: Descriptor) -> bytes:
        """A small blob (ztoc, prefetch artifact), digest verified."""
        return self._first(False, lambda c: c.get_blob(self.name, desc))

    def referrers(self, subject: str, artifact_type: str) -> list[Descriptor]:
        failure: RegistryError | None = None
        for _, client in self._each(False):
            try:
                return fetch_referrers(client, self.name, subject, artifact_type)
            except RegistryError as exc:
                failure = exc
        assert failure is not None
        raise failure

    def read_range(self, digest: str, start: int, end: int) -> bytes:
        """Bytes `[start, end)` of a blob: one range request (resumed if cut short)."""
        return self._first(True, lambda c: c.get_blob_range(self.name, digest, start, end))

    def range_reader(self, digest: str) -> Callable[[int, int], bytes]:
        def read(start: int, end: int) -> bytes:
            return self.read_range(digest, start, end)

        return read

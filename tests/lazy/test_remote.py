"""Registry endpoints and credentials of lazily served images (no network here; the mirror
fallback against a real registry is in tests/integration/test_lazy_remote.py)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from socikit.lazy.remote import Endpoint, HostSettings, Mirror, RegistryHosts, Remotes, is_loopback_host
from socikit.registry.auth import Credentials
from socikit.registry.transfer import RetryPolicy


def test_mirrors_first_then_the_host() -> None:
    hosts = RegistryHosts({"registry.example": [Mirror("mirror.example:5000", insecure=True, request_timeout=7),
                                                Mirror("registry.example")]})
    assert hosts.endpoints("registry.example") == [Endpoint("mirror.example:5000", True, 7),
                                                   Endpoint("registry.example", False)]
    assert hosts.endpoints("other.example") == [Endpoint("other.example", False)]
    assert hosts.endpoints("docker.io") == [Endpoint("registry-1.docker.io", False)]


def test_loopback_hosts_get_plain_http() -> None:
    for host in ("localhost:5000", "127.0.0.1:5000", "[::1]:5000", "localhost", "127.0.0.1"):
        assert is_loopback_host(host), host
        assert RegistryHosts().endpoints(host) == [Endpoint(host, True)]
    for host in ("127.0.0.2:5000", "registry.local:5000", "10.0.0.1"):
        assert not is_loopback_host(host), host


def test_configured_hosts_are_reached_as_their_settings_say() -> None:
    """The podman store's `[resolver.host]` tables: a configured loopback host is HTTPS when its
    settings say so; a mirror takes its TLS settings from its own host's entry; hosts without
    TLS files of their own get the default directory `cert_dirs` names."""
    hosts = RegistryHosts(
        {"registry.example": [Mirror("mirror.example", request_timeout=3), Mirror("plain.example")]},
        settings={"127.0.0.1:5000": HostSettings(plain_http=False, tls_verify=False),
                  "registry.example": HostSettings(cert_dir="/certs/registry"),
                  "mirror.example": HostSettings(tls_verify=False),
                  "plain.example": HostSettings(plain_http=True)},
        cert_dirs=lambda host: f"/certs.d/{host}" if host != "127.0.0.1:5000" else "")
    assert hosts.endpoints("127.0.0.1:5000") == [Endpoint("127.0.0.1:5000", False, tls_verify=False)]
    assert hosts.endpoints("registry.example") == [
        Endpoint("mirror.example", False, 3, tls_verify=False, cert_dir="/certs.d/mirror.example"),
        Endpoint("plain.example", True, cert_dir="/certs.d/plain.example"),
        Endpoint("registry.example", False, cert_dir="/certs/registry")]
    assert hosts.endpoints("other.example") == [Endpoint("other.example", False, cert_dir="/certs.d/other.example")]
    assert hosts.endpoints("localhost:5000") == [Endpoint("localhost:5000", True, cert_dir="/certs.d/localhost:5000")]


def test_a_client_with_a_certs_directory_keeps_its_tls_context(tmp_path: Path) -> None:
    remotes = Remotes(RegistryHosts(), metadata_retry=RetryPolicy(), span_retry=RetryPolicy(), pool_size=12)
    client = remotes.client(Endpoint("registry.example", False, tls_verify=False, cert_dir=str(tmp_path)), None,
                            spans=True)
    adapter = client.session.get_adapter("https://registry.example/v2/")
    assert type(adapter).__name__ == "_ContextAdapter" and adapter.poolmanager.connection_pool_kw["maxsize"] == 12
    assert not client.tls_verify
    remotes.close()


def _remotes(tmp_path: Path, handed: dict[tuple[str, str], Credentials]) -> Remotes:
    config = tmp_path / "config.json"
    token = base64.b64encode(b"mirror-user:mirror-pass").decode()
    config.write_text(json.dumps({"auths": {"mirror.example": {"auth": token},
                                            "registry.example": {"username": "cfg", "password": "cfg-pass"}}}))
    return Remotes(RegistryHosts({"registry.example": [Mirror("mirror.example")]}), metadata_retry=RetryPolicy(),
                   span_retry=RetryPolicy(), handed=lambda ref, host: handed.get((ref, host)),
                   docker_config=str(config))


def test_handed_credentials_are_for_the_image_and_its_own_registry_only(tmp_path: Path) -> None:
    handed = {("registry.example/app:1", "registry.example"): Credentials("handed", "handed-pass")}
    remotes = _remotes(tmp_path, handed)
    assert remotes.credentials("registry.example/app:1", "registry.example", "registry.example") == \
        Credentials("handed", "handed-pass")
    # another image of the same registry: the docker config's
    assert remotes.credentials("registry.example/other:1", "registry.example", "registry.example") == \
        Credentials("cfg", "cfg-pass")
    # the mirror never gets what was handed over for the registry
    assert remotes.credentials("registry.example/app:1", "registry.example", "mirror.example") == \
        Credentials("mirror-user", "mirror-pass")


def test_one_client_per_endpoint_credentials_and_purpose(tmp_path: Path) -> None:
    remotes = _remotes(tmp_path, {})
    endpoint = Endpoint("registry.example", False)
    first = remotes.client(endpoint, Credentials("a", "1"), spans=True)
    assert remotes.client(endpoint, Credentials("a", "1"), spans=True) is first
    assert remotes.client(endpoint, Credentials("a", "2"), spans=True) is not first
    assert remotes.client(endpoint, Credentials("a", "1"), spans=False) is not first
    assert first.retry is remotes.span_retry
    timed = remotes.client(Endpoint("mirror.example", True, 4.0), None, spans=True)
    assert timed.retry.read_timeout == 4.0 and timed.plain_http
    remotes.close()


def test_repository_of_a_reference(tmp_path: Path) -> None:
    repo = _remotes(tmp_path, {}).repository("registry.example/team/app:1")
    assert (repo.host, repo.name) == ("registry.example", "team/app")
    hub = _remotes(tmp_path, {}).repository("docker.io/library/alpine:latest")
    assert (hub.host, hub.name) == ("docker.io", "library/alpine")

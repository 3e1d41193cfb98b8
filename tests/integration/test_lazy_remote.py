# ruff: noqa: F811  (pytest fixtures imported by name)
"""A lazily served image's registry reached through a mirror, against Debian's docker-registry:
a mirror that is down or lacks the content is skipped, and the one that answered is asked first."""

from __future__ import annotations

import hashlib
import socket
from pathlib import Path

import pytest

from socikit.lazy.remote import Mirror, RegistryHosts, Remotes
from socikit.oci.descriptor import Descriptor
from socikit.registry.client import RegistryClient
from socikit.registry.transfer import RetryPolicy
from tests.integration.registry_fixtures import RegistryServer, registry  # noqa: F401

pytestmark = [pytest.mark.integration, pytest.mark.registry]


def _dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_mirror_fallback_and_preference(registry: RegistryServer, tmp_path: Path) -> None:
    data = b"a blob only the real registry holds" * 100
    desc = Descriptor("application/octet-stream", "sha256:" + hashlib.sha256(data).hexdigest(), len(data))
    with RegistryClient(registry.host, plain_http=True) as client:
        client.push_blob("lazy/mirrored", desc, data)
    dead = f"127.0.0.1:{_dead_port()}"
    origin = "registry.invalid:443"  # never reached: the working mirror answers first
    quick = RetryPolicy(attempts=1, deadline=5, connect_timeout=2, read_timeout=5)
    remotes = Remotes(RegistryHosts({origin: [Mirror(dead, insecure=True), Mirror(registry.host, insecure=True)]}),
                      metadata_retry=quick, span_retry=quick, docker_config=str(tmp_path / "none.json"))
    repo = remotes.repository(f"{origin}/lazy/mirrored:1")
    assert repo.read_range(desc.digest, 10, 20) == data[10:20]
    assert repo.read_blob(desc) == data
    assert repo._endpoints[repo._preferred].host == registry.host  # asked first from now on
    remotes.close()

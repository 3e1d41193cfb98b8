"""socikit's one registry layer (OCI distribution-spec v1.1): client, auth, referrers and the
ImageSource/ImageSink adapters. See docs/design-registry.md."""

from __future__ import annotations

from socikit.registry.auth import Credentials, load_docker_credentials, parse_user
from socikit.registry.client import RegistryClient, RegistryStatusError, RetryPolicy
from socikit.registry.referrers import referrers_tag
from socikit.registry.store import (
    RegistryOptions,
    RegistrySink,
    RegistrySource,
    open_registry_sink,
    open_registry_source,
)

__all__ = [
    "Credentials",
    "RegistryClient",
    "RegistryOptions",
    "RegistrySink",
    "RegistrySource",
    "RegistryStatusError",
    "RetryPolicy",
    "load_docker_credentials",
    "open_registry_sink",
    "open_registry_source",
    "parse_user",
    "referrers_tag",
]

"""socikit's one registry layer (OCI distribution-spec v1.1): client, auth, referrers and the
ImageSource/ImageSink adapters. See docs/design-registry.md."""

from __future__ import annotations

import importlib
from typing import Any

# Public names, resolved on first use (PEP 562): importing the package must not load requests
# and oras for commands that never talk to a registry.
_EXPORTS = {
    "Credentials": "auth",
    "load_docker_credentials": "auth",
    "parse_user": "auth",
    "RegistryClient": "client",
    "RegistryStatusError": "client",
    "RetryPolicy": "client",
    "referrers_tag": "referrers",
    "RegistryOptions": "options",
    "RegistrySink": "store",
    "RegistrySource": "store",
    "open_registry_sink": "store",
    "open_registry_source": "store",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'socikit.registry' has no attribute {name!r}")
    return getattr(importlib.import_module(f"socikit.registry.{module}"), name)


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

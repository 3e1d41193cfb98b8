"""socikit's one registry layer (OCI distribution-spec v1.1): client, auth, referrers and the
ImageSource/ImageSink adapters. See docs/design-registry.md."""

from __future__ import annotations

from socikit._lazy import lazy_exports

# Public names, resolved on first use (PEP 562): importing the package must not load requests
# and oras for commands that never talk to a registry.
_EXPORTS: dict[str, str | tuple[str, str]] = {
    "Credentials": "socikit.registry.auth",
    "load_docker_credentials": "socikit.registry.auth",
    "parse_user": "socikit.registry.auth",
    "RegistryClient": "socikit.registry.client",
    "RegistryStatusError": "socikit.errors",
    "RetryPolicy": "socikit.registry.client",
    "referrers_tag": "socikit.registry.referrers",
    "RegistryOptions": "socikit.registry.options",
    "RegistrySink": "socikit.registry.store",
    "RegistrySource": "socikit.registry.store",
    "open_registry_sink": "socikit.registry.store",
    "open_registry_source": "socikit.registry.store",
}


__getattr__ = lazy_exports(__name__, _EXPORTS)


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

"""The store's configuration (`/etc/socikit/store.toml`): typed frozen dataclasses read from TOML.

Tables shared in meaning with socikit's snapshotter and the reference soci-snapshotter keep their
keys and defaults (`max_concurrency`, `[pull_modes.*]`, `[resolver.host."<host>"] mirrors`,
`[blob]`, `[fuse]`, `[background_fetch]`, `[cache]`), so one registry setup reads the same in both
files. The store's own keys: `[resolver] docker_config` and `lookup_timeout_sec`, and per host
`plain_http`, `tls_verify`, `cert_dir`.
"""

from __future__ import annotations

import re
import tomllib
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from socikit import tomlconfig
from socikit.errors import ConfigError
from socikit.lazy.config import BackgroundFetchConfig, CacheConfig, MirrorConfig, PullModeConfig, PullModesConfig

if TYPE_CHECKING:
    from socikit.lazy.remote import RegistryHosts

DEFAULT_MOUNTPOINT = Path("/var/lib/socikit/store")
DEFAULT_ROOT = Path("/var/lib/socikit/store-root")
DEFAULT_CONFIG = Path("/etc/socikit/store.toml")
LOG_LEVELS = ("debug", "info", "warn", "error")

# A registry as it appears in image references: a DNS name or [IPv6] literal, optional port.
_HOST = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
                   r"|\[[0-9A-Fa-f:.]+\])(?::[0-9]+)?")


@dataclass(frozen=True)
class ResolverHostConfig:
    """`[resolver.host."<host>"]`: how to reach one registry.

    `plain_http` talks HTTP to the registry itself; `tls_verify = false` accepts any certificate;
    `cert_dir` is a certs.d-style directory (`*.crt` CAs, `client.cert` + `client.key`), by default
    `/etc/containers/certs.d/<host>` or `/etc/docker/certs.d/<host>` when one exists."""

    mirrors: tuple[MirrorConfig, ...] = ()
    plain_http: bool = False
    tls_verify: bool = True
    cert_dir: str = ""


def _no_hosts() -> Mapping[str, ResolverHostConfig]:
    return types.MappingProxyType({})


@dataclass(frozen=True)
class ResolverConfig:
    """`[resolver]`: registry access. `docker_config` is the credentials file (a Docker
    `config.json` or podman's `auth.json`, same format); empty: `$DOCKER_CONFIG/config.json`,
    else `~/.docker/config.json`."""

    docker_config: str = ""
    # All attempts of the registry requests one lookup makes (manifests, config, SOCI index,
    # ztocs): podman waits for the answer, so a registry that is down must not hold it long.
    lookup_timeout_sec: int = 10
    host: Mapping[str, ResolverHostConfig] = field(default_factory=_no_hosts)


@dataclass(frozen=True)
class BlobConfig:
    """`[blob]`: fetching a served layer's bytes (spans for `diff`, ranges for `blob`)."""

    fetching_timeout_sec: int = 300  # longest a read waits (then EIO); all attempts of one fetch
    max_retries: int = 8
    min_wait_msec: int = 30
    max_wait_msec: int = 300000
    max_span_verification_retries: int = 0


@dataclass(frozen=True)
class FuseConfig:
    """`[fuse]`: how long the kernel may cache attributes, entries and missing entries (seconds)."""

    attr_timeout: int = 1
    entry_timeout: int = 1
    negative_timeout: int = 1


@dataclass(frozen=True)
class StoreConfig:
    debug: bool = False
    max_concurrency: int = 100  # span and blob fetches at once over all layers (negative: no bound)
    pull_modes: PullModesConfig = PullModesConfig()
    resolver: ResolverConfig = ResolverConfig()
    blob: BlobConfig = BlobConfig()
    fuse: FuseConfig = FuseConfig()
    background_fetch: BackgroundFetchConfig = BackgroundFetchConfig()
    cache: CacheConfig = CacheConfig()


def is_registry_host(text: str) -> bool:
    return _HOST.fullmatch(text) is not None


def parse_config(text: str, *, source: str = "config") -> StoreConfig:
    """The config a TOML text describes; ConfigError (naming `source` and the key) otherwise."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    try:
        config = tomlconfig.from_table(StoreConfig, document)
        _validate(config)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    return config


def load_config(path: Path, *, missing_ok: bool) -> StoreConfig:
    """Read `path`; a missing file gives the defaults when `missing_ok`, else a ConfigError."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if missing_ok:
            return StoreConfig()
        raise ConfigError(f"config file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path}: {getattr(exc, 'strerror', None) or exc}") from None
    return parse_config(text, source=str(path))


def _validate(config: StoreConfig) -> None:
    if not config.pull_modes.soci_v1.enable and not config.pull_modes.soci_v2.enable:
        raise ConfigError("pull_modes: soci_v1 and soci_v2 are both disabled, so no image could be served")
    for name, host in config.resolver.host.items():
        where = f'resolver.host."{name}"'
        if not is_registry_host(name):
            raise ConfigError(f"{where}: not a registry host (HOST or HOST:PORT)")
        if host.cert_dir and not Path(host.cert_dir).is_absolute():
            raise ConfigError(f"{where}.cert_dir must be an absolute path")
        for mirror in host.mirrors:
            if not is_registry_host(mirror.host):
                raise ConfigError(f"{where}.mirrors: {mirror.host!r} is not a registry host (HOST or HOST:PORT)")
            if mirror.request_timeout_sec < 0:
                raise ConfigError(f"{where}.mirrors: request_timeout_sec must not be negative")
    if config.resolver.docker_config and not Path(config.resolver.docker_config).is_absolute():
        raise ConfigError("resolver.docker_config must be an absolute path")
    for name in ("attr_timeout", "entry_timeout", "negative_timeout"):
        if getattr(config.fuse, name) < 0:
            raise ConfigError(f"fuse.{name} must not be negative")
    if config.cache.max_bytes < 0:
        raise ConfigError("cache.max_bytes must not be negative")
    if config.resolver.lookup_timeout_sec <= 0:
        raise ConfigError("resolver.lookup_timeout_sec must be positive")
    for name in ("fetching_timeout_sec", "max_retries", "min_wait_msec", "max_wait_msec",
                 "max_span_verification_retries"):
        if getattr(config.blob, name) < 0:
            raise ConfigError(f"blob.{name} must not be negative")
    if config.background_fetch.drop_policy not in ("newest", "oldest"):
        raise ConfigError(f"background_fetch.drop_policy must be \"newest\" or \"oldest\", "
                          f"not {config.background_fetch.drop_policy!r}")


def dumps_config(config: StoreConfig) -> str:
    """The config as a TOML file that `parse_config` reads back to an equal config."""
    return tomlconfig.dumps(tomlconfig.to_document(config))


# --- where to fetch an image's content ---------------------------------------------------------

CERTS_D = (Path("/etc/containers/certs.d"), Path("/etc/docker/certs.d"))


def default_cert_dir(host: str) -> str:
    """podman's (then Docker's) certs.d directory for `host`, when it exists."""
    for base in CERTS_D:
        if (base / host).is_dir():
            return str(base / host)
    return ""


def registry_hosts(config: StoreConfig) -> RegistryHosts:
    """The endpoints of each registry as `[resolver.host]` says (socikit.lazy.remote): its mirrors
    first, then the registry itself; a host with a table of its own is reached exactly as the
    table says (a loopback host without one gets plain HTTP, as containerd's resolver gives it);
    TLS files from the table's `cert_dir`, else the host's certs.d directory."""
    from socikit.lazy.remote import HostSettings, Mirror, RegistryHosts

    return RegistryHosts(
        {name: [Mirror(m.host, m.insecure, float(m.request_timeout_sec)) for m in host.mirrors]
         for name, host in config.resolver.host.items()},
        settings={name: HostSettings(host.plain_http, host.tls_verify, host.cert_dir)
                  for name, host in config.resolver.host.items()},
        cert_dirs=default_cert_dir)


__all__ = [
    "DEFAULT_CONFIG",
    "DEFAULT_MOUNTPOINT",
    "DEFAULT_ROOT",
    "LOG_LEVELS",
    "BackgroundFetchConfig",
    "BlobConfig",
    "CacheConfig",
    "FuseConfig",
    "MirrorConfig",
    "PullModeConfig",
    "PullModesConfig",
    "ResolverConfig",
    "ResolverHostConfig",
    "StoreConfig",
    "default_cert_dir",
    "dumps_config",
    "is_registry_host",
    "load_config",
    "parse_config",
    "registry_hosts",
]

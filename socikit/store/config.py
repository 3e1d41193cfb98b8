"""The store's configuration (`/etc/socikit/store.toml`): typed frozen dataclasses read from TOML.

Tables shared in meaning with socikit's snapshotter and the reference soci-snapshotter keep their
keys and defaults (`[pull_modes.*]`, `[resolver.host."<host>"] mirrors`, `[fuse]`), so one
registry setup reads the same in both files. socikit's own keys: `[resolver] docker_config`, and
per host `plain_http`, `tls_verify`, `cert_dir`; `[cache]`.
"""

from __future__ import annotations

import re
import tomllib
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from socikit import tomlconfig
from socikit.errors import ConfigError

DEFAULT_MOUNTPOINT = Path("/var/lib/socikit/store")
DEFAULT_ROOT = Path("/var/lib/socikit/store-root")
DEFAULT_CONFIG = Path("/etc/socikit/store.toml")
LOG_LEVELS = ("debug", "info", "warn", "error")

# A registry as it appears in image references: a DNS name or [IPv6] literal, optional port.
_HOST = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
                   r"|\[[0-9A-Fa-f:.]+\])(?::[0-9]+)?")


@dataclass(frozen=True)
class MirrorConfig:
    """One entry of `mirrors`: another host serving the same repositories, tried before the
    registry itself; `insecure` means plain HTTP (the reference's meaning)."""

    host: str = ""
    insecure: bool = False
    request_timeout_sec: int = 0


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
    host: Mapping[str, ResolverHostConfig] = field(default_factory=_no_hosts)


@dataclass(frozen=True)
class PullModeConfig:
    enable: bool = False


@dataclass(frozen=True)
class PullModesConfig:
    """`[pull_modes.*]`: which SOCI index versions the store looks for (v2 through the
    manifest's annotation, v1 through the referrers API or its fallback tag)."""

    soci_v1: PullModeConfig = PullModeConfig(enable=False)
    soci_v2: PullModeConfig = PullModeConfig(enable=True)


@dataclass(frozen=True)
class FuseConfig:
    """`[fuse]`: how long the kernel may cache attributes, entries and missing entries (seconds)."""

    attr_timeout: int = 1
    entry_timeout: int = 1
    negative_timeout: int = 1


@dataclass(frozen=True)
class CacheConfig:
    """`[cache]`: the span cache under the store's root."""

    max_bytes: int = 10 << 30


@dataclass(frozen=True)
class StoreConfig:
    debug: bool = False
    pull_modes: PullModesConfig = PullModesConfig()
    resolver: ResolverConfig = ResolverConfig()
    fuse: FuseConfig = FuseConfig()
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


def dumps_config(config: StoreConfig) -> str:
    """The config as a TOML file that `parse_config` reads back to an equal config."""
    return tomlconfig.dumps(tomlconfig.to_document(config))


# --- where to fetch an image's content ---------------------------------------------------------

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One place to fetch a registry's content from: `host` to connect to, `registry` whose
    credentials to use (the same host, or `docker.io` for Docker Hub's API host)."""

    host: str
    registry: str
    plain_http: bool = False
    tls_verify: bool = True
    cert_dir: str = ""  # "" = the default certs.d directory of `host`, if any
    request_timeout_sec: int = 0  # 0 = the client's default


def registry_endpoints(config: StoreConfig, registry: str) -> tuple[Endpoint, ...]:
    """Where to fetch `registry`'s content, in order: its mirrors, then the registry itself
    (once: a mirror naming the registry stands for it). A mirror is reached over plain HTTP when
    its entry says `insecure` or its own `[resolver.host]` table says `plain_http`, and takes its
    TLS settings from that table."""
    hosts = config.resolver.host
    settings = hosts.get(registry, ResolverHostConfig())
    endpoints = []
    for mirror in settings.mirrors:
        own = hosts.get(mirror.host, ResolverHostConfig())
        endpoints.append(Endpoint(host=mirror.host, registry=mirror.host, plain_http=mirror.insecure or own.plain_http,
                                  tls_verify=own.tls_verify, cert_dir=own.cert_dir,
                                  request_timeout_sec=mirror.request_timeout_sec))
    if not any(e.host == registry for e in endpoints):
        endpoints.append(Endpoint(host=DOCKER_HUB_API if registry == DOCKER_HUB else registry, registry=registry,
                                  plain_http=settings.plain_http, tls_verify=settings.tls_verify,
                                  cert_dir=settings.cert_dir))
    return tuple(endpoints)


__all__ = [
    "DEFAULT_CONFIG",
    "DEFAULT_MOUNTPOINT",
    "DEFAULT_ROOT",
    "LOG_LEVELS",
    "CacheConfig",
    "Endpoint",
    "FuseConfig",
    "MirrorConfig",
    "PullModeConfig",
    "PullModesConfig",
    "ResolverConfig",
    "ResolverHostConfig",
    "StoreConfig",
    "dumps_config",
    "is_registry_host",
    "load_config",
    "parse_config",
    "registry_endpoints",
]

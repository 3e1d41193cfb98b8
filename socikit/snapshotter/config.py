"""The snapshotter daemon's configuration: typed frozen dataclasses read from TOML.

Where socikit and the reference `soci-snapshotter-grpc` share a concept, the keys, tables and
defaults are the reference's, so a user's config carries over (`[http]` keeps its CamelCase
keys). Keys the reference has for parts socikit does not have (its Go caches, content store,
parallel pull, keychains) are accepted and reported as having no effect; any other key is an
error naming it. socikit's own additions: `[cache]`, `[lazy]` and `metrics_allow_non_loopback`.
"""

from __future__ import annotations

import tomllib
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from socikit import tomlconfig
from socikit.errors import ConfigError
from socikit.lazy.config import BackgroundFetchConfig, CacheConfig, MirrorConfig, PullModesConfig

DEFAULT_ADDRESS = Path("/run/socikit/snapshotter.sock")
DEFAULT_ROOT = Path("/var/lib/socikit/snapshotter")
DEFAULT_CONFIG = Path("/etc/socikit/snapshotter.toml")


_toml = tomlconfig.toml_key  # field metadata: the key's spelling in the file when it differs from the field name


@dataclass(frozen=True)
class HttpConfig:
    """`[http]`: registry HTTP client timeouts and retries (reference keys, CamelCase)."""

    dial_timeout_msec: int = field(default=3000, metadata=_toml("DialTimeoutMsec"))
    response_header_timeout_msec: int = field(default=3000, metadata=_toml("ResponseHeaderTimeoutMsec"))
    request_timeout_msec: int = field(default=300000, metadata=_toml("RequestTimeoutMsec"))
    max_retries: int = field(default=8, metadata=_toml("MaxRetries"))
    min_wait_msec: int = field(default=30, metadata=_toml("MinWaitMsec"))
    max_wait_msec: int = field(default=300000, metadata=_toml("MaxWaitMsec"))


@dataclass(frozen=True)
class BlobConfig:
    """`[blob]`: span fetching from the registry."""

    valid_interval: int = 60
    fetching_timeout_sec: int = 300
    max_retries: int = 8
    min_wait_msec: int = 30
    max_wait_msec: int = 300000
    check_always: bool = False
    force_single_range_mode: bool = False
    max_span_verification_retries: int = 0


@dataclass(frozen=True)
class FuseConfig:
    """`[fuse]`: kernel cache timeouts (seconds) of the FUSE layers."""

    attr_timeout: int = 1
    entry_timeout: int = 1
    negative_timeout: int = 1
    log_fuse_operations: bool = False


@dataclass(frozen=True)
class ResolverHostConfig:
    mirrors: tuple[MirrorConfig, ...] = ()


def _no_hosts() -> Mapping[str, ResolverHostConfig]:
    return types.MappingProxyType({})


@dataclass(frozen=True)
class ResolverConfig:
    """`[resolver]`: per-registry mirrors, `[resolver.host."<host>"]`."""

    host: Mapping[str, ResolverHostConfig] = field(default_factory=_no_hosts)


@dataclass(frozen=True)
class SnapshotterSection:
    """`[snapshotter]`: which layers may be lazy, and what a failed re-mount at start does."""

    min_layer_size: int = 0
    allow_invalid_mounts_on_restart: bool = False


@dataclass(frozen=True)
class LazyConfig:
    """`[lazy]` (socikit's own): serving layers lazily over FUSE."""

    enable: bool = True
    # On open of a regular file of at most this many bytes, fetch all its spans at once (0: off).
    prefetch_on_open: int = 0


@dataclass(frozen=True)
class SnapshotterConfig:
    """The whole file. Top-level keys first, then the tables."""

    debug: bool = False
    disable_verification: bool = False
    max_concurrency: int = 100
    mount_timeout_sec: int = 30
    fuse_metrics_emit_wait_duration_sec: int = 60
    no_prometheus: bool = False
    metrics_address: str = ""
    metrics_network: str = "tcp"
    metrics_allow_non_loopback: bool = False
    http: HttpConfig = HttpConfig()
    blob: BlobConfig = BlobConfig()
    fuse: FuseConfig = FuseConfig()
    background_fetch: BackgroundFetchConfig = BackgroundFetchConfig()
    pull_modes: PullModesConfig = PullModesConfig()
    resolver: ResolverConfig = ResolverConfig()
    snapshotter: SnapshotterSection = SnapshotterSection()
    cache: CacheConfig = CacheConfig()
    lazy: LazyConfig = LazyConfig()


# The reference's keys for parts socikit does not have: accepted (type-checked against the
# reference default) so a carried-over file loads, and listed at start as having no effect.
# A value of None accepts any table (the reference's free-form maps).
REFERENCE_ONLY_KEYS: dict[str, object] = {
    "http_cache_type": "",
    "filesystem_cache_type": "",
    "resolve_result_entry": 0,
    "debug_address": "",
    "metadata_store": "db",
    "metadata_db_no_sync": False,
    "metadata_insertion_chunk_size": 0,
    "skip_check_snapshotter_supported": False,
    "directory_cache.max_lru_cache_entry": 0,
    "directory_cache.max_cache_fds": 0,
    "directory_cache.sync_add": False,
    "directory_cache.direct": True,
    "content_store.type": "soci",
    "content_store.containerd_address": "/run/containerd/containerd.sock",
    "prefetch.enable": False,
    "prefetch.max_concurrency": 0,
    "pull_modes.parallel_pull_unpack.enable": False,
    "pull_modes.parallel_pull_unpack.experimental_parallel_pull_as_fallback": False,
    "pull_modes.parallel_pull_unpack.max_concurrent_downloads": -1,
    "pull_modes.parallel_pull_unpack.max_concurrent_downloads_per_image": 3,
    "pull_modes.parallel_pull_unpack.concurrent_download_chunk_size": "",
    "pull_modes.parallel_pull_unpack.max_concurrent_unpacks": -1,
    "pull_modes.parallel_pull_unpack.max_concurrent_unpacks_per_image": 1,
    "pull_modes.parallel_pull_unpack.discard_unpacked_layers": False,
    "pull_modes.parallel_pull_unpack.decompress_streams": None,
    "kubeconfig_keychain.enable_keychain": False,
    "kubeconfig_keychain.kubeconfig_path": "",
    "cri_keychain.enable_keychain": False,
    "cri_keychain.image_service_path": "/run/containerd/containerd.sock",
    "resolver.auth_client_ttl_sec": 3600,
    "resolver.enable_auth_client_sharing": False,
}
_REFERENCE_ONLY_TABLES = {key.rsplit(".", 1)[0] for key in REFERENCE_ONLY_KEYS if "." in key}


@dataclass(frozen=True)
class LoadedConfig:
    """A parsed file: the config, and the reference-only keys it set (they have no effect)."""

    config: SnapshotterConfig
    ignored_keys: tuple[str, ...] = ()


def load_config(path: Path, *, missing_ok: bool) -> LoadedConfig:
    """Read `path`; a missing file gives the defaults when `missing_ok`, else a ConfigError."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if missing_ok:
            return LoadedConfig(SnapshotterConfig())
        raise ConfigError(f"config file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path}: {getattr(exc, 'strerror', None) or exc}") from None
    return parse_config(text, source=str(path))


def parse_config(text: str, *, source: str = "config") -> LoadedConfig:
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    ignored: list[str] = []
    try:
        config = tomlconfig.from_table(SnapshotterConfig, document, unknown=_unknown(ignored))
        _validate(config)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    return LoadedConfig(config, tuple(ignored))


def _validate(config: SnapshotterConfig) -> None:
    if config.metrics_network != "tcp":
        raise ConfigError(f"metrics_network {config.metrics_network!r} is not supported (only \"tcp\")")
    if config.background_fetch.drop_policy not in ("newest", "oldest"):
        raise ConfigError(f"background_fetch.drop_policy must be \"newest\" or \"oldest\", "
                          f"not {config.background_fetch.drop_policy!r}")
    if config.cache.max_bytes < 0:
        raise ConfigError("cache.max_bytes must not be negative")
    if config.lazy.prefetch_on_open < 0:
        raise ConfigError("lazy.prefetch_on_open must not be negative")
    for name, host in config.resolver.host.items():
        for mirror in host.mirrors:
            if not mirror.host:
                raise ConfigError(f"resolver.host.{name!r}.mirrors: every mirror needs a host")


def _unknown(ignored: list[str]) -> tomlconfig.UnknownKey:
    """The hook for keys SnapshotterConfig has no field for: the reference's keys (and tables of
    them) are checked and listed in `ignored`; anything else is an error naming it."""

    def take(dotted: str, value: Any) -> None:
        if dotted in _REFERENCE_ONLY_TABLES and isinstance(value, dict):
            for key, inner in value.items():
                take(f"{dotted}.{key}", inner)
            return
        if dotted not in REFERENCE_ONLY_KEYS:
            raise ConfigError(f"unknown key {dotted!r}")
        default = REFERENCE_ONLY_KEYS[dotted]
        if default is None:
            if not isinstance(value, dict):
                raise ConfigError(f"{dotted!r} must be a table")
        else:
            tomlconfig.check_scalar(type(default), value, dotted)
        ignored.append(dotted)

    return take


def config_to_document(config: Any) -> dict[str, Any]:
    """The config as TOML-ready nested dicts, with the file's key spellings (CamelCase in [http])."""
    return tomlconfig.to_document(config)


def dumps_config(config: SnapshotterConfig) -> str:
    """The config as a TOML file that `parse_config` reads back to an equal config."""
    return tomlconfig.dumps(config_to_document(config))

"""Config sections the snapshotter's and the store's config files share."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BackgroundFetchConfig:
    """`[background_fetch]`: filling a served layer's remaining spans after a quiet period."""

    disable: bool = False
    silence_period_msec: int = 30000
    fetch_period_msec: int = 500
    max_queue_size: int = 300
    drop_policy: str = "newest"
    emit_metric_period_sec: int = 10


@dataclass(frozen=True)
class CacheConfig:
    """`[cache]` (socikit's own): the on-disk span cache under the daemon's root."""

    max_bytes: int = 10 << 30


@dataclass(frozen=True)
class MirrorConfig:
    """One entry of `[resolver.host."<host>"] mirrors`: another host serving the same
    repositories, tried before the registry itself; `insecure` means plain HTTP (the reference's
    meaning)."""

    host: str = ""
    insecure: bool = False
    request_timeout_sec: int = 0


@dataclass(frozen=True)
class PullModeConfig:
    enable: bool = False


@dataclass(frozen=True)
class PullModesConfig:
    """`[pull_modes.*]`: which SOCI index versions are looked for (v2 through the manifest's
    annotation, v1 through the referrers API or its fallback tag)."""

    soci_v1: PullModeConfig = PullModeConfig(enable=False)
    soci_v2: PullModeConfig = PullModeConfig(enable=True)


__all__ = ["BackgroundFetchConfig", "CacheConfig", "MirrorConfig", "PullModeConfig", "PullModesConfig"]

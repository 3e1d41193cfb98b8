"""Settings of lazily served layers that the snapshotter's and the store's config files share."""

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


__all__ = ["BackgroundFetchConfig"]

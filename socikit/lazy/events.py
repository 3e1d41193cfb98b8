"""What the lazy layers report (counters for a metrics endpoint) and how they log.

`socikit.lazy` sits below the daemons that use it, so it does not know their metrics registry:
it calls a `LazyEvents` object the daemon supplies (the snapshotter maps the calls onto its
Prometheus series). Every method must be cheap and must not raise; they are called from the trio
thread and from worker threads alike.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

__all__ = ["LOGGER_NAME", "LazyEvents", "NoEvents", "log_event"]

LOGGER_NAME = "socikit.lazy"


class LazyEvents(Protocol):
    def span_fetched(self, layer: str, compressed_bytes: int) -> None:
        """A span's compressed bytes arrived from the registry (verified or not)."""
        ...

    def span_verification_failed(self, layer: str) -> None:
        """Fetched bytes did not match the span digest of the ztoc (never served)."""
        ...

    def fuse_error(self, operation: str) -> None:
        """A FUSE operation answered with an error other than "no such entry/attribute"."""
        ...

    def background_span(self, layer: str) -> None:
        """The background fetcher filled one span of `layer`."""
        ...

    def remaining_spans(self, layer: str, count: int) -> None:
        """`count` spans of mounted `layer` are not cached yet (0 once it is complete)."""
        ...


class NoEvents:
    """Counts nothing."""

    def span_fetched(self, layer: str, compressed_bytes: int) -> None:
        pass

    def span_verification_failed(self, layer: str) -> None:
        pass

    def fuse_error(self, operation: str) -> None:
        pass

    def background_span(self, layer: str) -> None:
        pass

    def remaining_spans(self, layer: str, count: int) -> None:
        pass


def log_event(logger: logging.Logger, level: int, msg: str, **fields: Any) -> None:
    """Log `msg` with structured `fields` (the snapshotter's JSON log prints them as keys)."""
    if logger.isEnabledFor(level):
        logger.log(level, msg, extra={"fields": fields})

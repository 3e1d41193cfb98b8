"""`BackgroundFetcher`: fills the spans of mounted layers nobody has read yet (fact sheet §7.8).

After a layer is mounted the fetcher waits until no layer has been mounted for
`silence_period` seconds (a pull and the container's start get the network first), then takes
the queued layers round-robin, one span every `fetch_period` seconds, until every span of every
queued layer is cached; a complete layer leaves the queue. The queue holds at most `max_queue`
layers: when full, `drop_policy` "newest" refuses the new layer, "oldest" drops the longest
queued one.

Prefetch spans (a SOCI prefetch artifact's ranges) are fetched at once when a layer is mounted,
not after the silence period. Runs as one trio task (`run`); layers are added on the trio thread.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Sequence

import trio

from socikit.lazy.events import LOGGER_NAME, LazyEvents, NoEvents, log_event
from socikit.lazy.fetcher import SpanFetcher, SpanUnavailableError

__all__ = ["BackgroundFetcher"]

_logger = logging.getLogger(LOGGER_NAME)


class BackgroundFetcher:
    def __init__(self, *, silence_period: float = 30.0, fetch_period: float = 0.5, max_queue: int = 300,
                 drop_policy: str = "newest", enabled: bool = True, metrics_period: float = 10.0,
                 events: LazyEvents | None = None, logger: logging.Logger | None = None) -> None:
        if drop_policy not in ("newest", "oldest"):
            raise ValueError(f"drop_policy {drop_policy!r}: expected 'newest' or 'oldest'")
        self.silence_period = max(0.0, silence_period)
        self.fetch_period = max(0.0, fetch_period)
        self.max_queue = max(1, max_queue)
        self.drop_policy = drop_policy
        self.enabled = enabled
        self.metrics_period = metrics_period if metrics_period > 0 else math.inf
        self.events: LazyEvents = events or NoEvents()
        self.logger = logger or _logger
        self._queue: deque[SpanFetcher] = deque()
        self._last_mount = -math.inf
        self._wakeup = trio.Event()
        self._nursery: trio.Nursery | None = None

    # -- trio thread ------------------------------------------------------------------------------

    def add(self, fetcher: SpanFetcher, *, prefetch: Sequence[int] = ()) -> None:
        """A layer was mounted: queue it, restart the silence period, fetch `prefetch` now."""
        self._last_mount = trio.current_time()
        if prefetch and self._nursery is not None:
            self._nursery.start_soon(self._prefetch, fetcher, list(prefetch))
        if not self.enabled or fetcher in self._queue:
            return
        if len(self._queue) >= self.max_queue:
            if self.drop_policy == "newest":
                log_event(self.logger, logging.INFO, "background fetch queue full; layer not queued",
                          layer=fetcher.layer)
                return
            dropped = self._queue.popleft()
            log_event(self.logger, logging.INFO, "background fetch queue full; oldest layer dropped",
                      layer=dropped.layer)
        self._queue.append(fetcher)
        self.events.remaining_spans(fetcher.layer, len(fetcher.missing_spans()))
        self._wakeup.set()

    def remove(self, fetcher: SpanFetcher) -> None:
        """A layer was unmounted: stop filling it."""
        try:
            self._queue.remove(fetcher)
        except ValueError:
            pass

    @property
    def queued(self) -> list[str]:
        return [f.layer for f in self._queue]

    async def _prefetch(self, fetcher: SpanFetcher, spans: list[int]) -> None:
        done = await fetcher.prefetch(spans)
        log_event(self.logger, logging.DEBUG, "prefetch spans fetched", layer=fetcher.layer, spans=done,
                  asked=len(spans))

    async def run(self, *, task_status: trio.TaskStatus = trio.TASK_STATUS_IGNORED) -> None:
        """The fetch loop, for the daemon's lifetime."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            if self.metrics_period != math.inf:
                nursery.start_soon(self._report_loop)
            await self._fetch_loop()

    async def _report_loop(self) -> None:
        while True:
            await trio.sleep(self.metrics_period)
            for fetcher in list(self._queue):
                self.events.remaining_spans(fetcher.layer, len(fetcher.missing_spans()))

    async def _fetch_loop(self) -> None:
        while True:
            if not self._queue:
                self._wakeup = trio.Event()
                await self._wakeup.wait()
                continue
            quiet_until = self._last_mount + self.silence_period
            if trio.current_time() < quiet_until:
                await trio.sleep_until(quiet_until)
                continue
            fetcher = self._queue.popleft()
            missing = fetcher.missing_spans()
            if not missing:
                self.events.remaining_spans(fetcher.layer, 0)
                log_event(self.logger, logging.INFO, "layer fully cached", layer=fetcher.layer)
                continue
            self._queue.append(fetcher)  # round-robin: the next span comes from the next layer
            try:
                with trio.fail_after(fetcher.timeout):
                    await fetcher.span(missing[0])
                self.events.background_span(fetcher.layer)
                self.events.remaining_spans(fetcher.layer, len(missing) - 1)
            except (SpanUnavailableError, trio.TooSlowError) as exc:
                log_event(self.logger, logging.DEBUG, "background fetch of a span failed", layer=fetcher.layer,
                          span=missing[0], error=str(exc) or type(exc).__name__)
            await trio.sleep(self.fetch_period)

"""`SpanFetcher`: the spans of one lazily served layer, fetched on demand (fact sheet §2.3–2.5).

A span is fetched with one range read of its compressed bytes (`read_range(start, end)`, which
the caller builds over `RegistryClient.get_blob_range`: same auth, TLS and retry rules), checked
against the ztoc's span digest before anything else touches it (a mismatch is counted and the
span is fetched again up to `verify_retries` times, else the read fails: wrong bytes are never
served), inflated whole and put in the `SpanCache`. Reads copy slices out of cached spans.

Concurrency (trio): the blocking steps (HTTP, hashing, inflating, disk) run on worker threads
under one `trio.CapacityLimiter` shared by every layer, so the trio loop never blocks. Concurrent
requests for one span wait for a single fetch; the spans one read needs are fetched in parallel.
Every read is bounded by `timeout` seconds: a registry that stops answering fails the read
(`SpanUnavailableError`) instead of hanging it, and the next read tries again. A worker thread
abandoned by a timeout ends on its own (its socket times out under the retry policy).

The fetcher is made and used on the trio thread; `read_range` runs on worker threads.
"""

from __future__ import annotations

import inspect
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

import trio

from socikit.errors import RegistryError, SocikitError, SpanDigestError
from socikit.lazy.cache import SpanCache
from socikit.lazy.events import LOGGER_NAME, LazyEvents, NoEvents, log_event
from socikit.ztoc.spans import SpanTable

__all__ = ["RangeReader", "SingleFlight", "SpanFetcher", "SpanUnavailableError", "run_in_thread"]

RangeReader = Callable[[int, int], bytes]
"""Blocking: the layer blob's compressed bytes `[start, end)`."""

_logger = logging.getLogger(LOGGER_NAME)
READ_AHEAD_SPANS = 2  # spans loaded from the disk cache ahead of a reader

# trio renamed `cancellable` to `abandon_on_cancel` (0.23); both mean "leave the thread running".
_ABANDON = "abandon_on_cancel" if "abandon_on_cancel" in inspect.signature(trio.to_thread.run_sync).parameters \
    else "cancellable"


async def run_in_thread(fn: Callable[..., Any], *args: Any, limiter: trio.CapacityLimiter | None = None) -> Any:
    """`fn(*args)` on a worker thread; a cancelled caller returns at once and abandons the
    thread (which holds its limiter token until it ends)."""
    return await trio.to_thread.run_sync(fn, *args, limiter=limiter, **{_ABANDON: True})


class SpanUnavailableError(SocikitError):
    """A span could not be served: the fetch failed, timed out, or its bytes did not verify."""


class _Flight:
    """One fetch of one key that other requesters wait for."""

    __slots__ = ("done", "data", "error")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.data: bytes | None = None
        self.error: BaseException | None = None


class SingleFlight:
    """One fetch per key for all concurrent requesters (trio). A requester that finds a fetch of
    its key in flight waits for it and shares its bytes or its failure (as SpanUnavailableError);
    if the fetching requester was cancelled (its own deadline), a waiter fetches again itself."""

    def __init__(self) -> None:
        self._flights: dict[int, _Flight] = {}

    def __contains__(self, key: int) -> bool:
        return key in self._flights

    async def get(self, key: int, cached: Callable[[int], bytes | None],
                  fetch: Callable[[int], Awaitable[bytes]]) -> bytes:
        """`cached(key)` when it has the bytes, else the bytes of the one `fetch(key)` in flight."""
        while True:
            data = cached(key)
            if data is not None:
                return data
            flight = self._flights.get(key)
            if flight is None:
                break
            await flight.done.wait()
            if flight.data is not None:
                return flight.data
            if not isinstance(flight.error, trio.Cancelled):
                raise SpanUnavailableError(str(flight.error)) from None
        flight = _Flight()
        self._flights[key] = flight
        try:
            flight.data = await fetch(key)
            return flight.data
        except BaseException as exc:
            flight.error = exc
            raise
        finally:
            del self._flights[key]
            flight.done.set()


class SpanFetcher:
    """Fetches, verifies, inflates and caches the spans of one layer (see the module doc).

    `layer` is the layer blob's digest (cache key and metrics label)."""

    def __init__(self, layer: str, table: SpanTable, read_range: RangeReader, cache: SpanCache, *,
                 limiter: trio.CapacityLimiter, timeout: float, verify_retries: int = 0,
                 events: LazyEvents | None = None, logger: logging.Logger | None = None) -> None:
        self.layer = layer
        self.table = table
        self._read_range = read_range
        self.cache = cache
        self.limiter = limiter
        self.timeout = timeout if timeout > 0 else math.inf
        self.verify_retries = max(0, verify_retries)
        self.events: LazyEvents = events or NoEvents()
        self.logger = logger or _logger
        self._flights = SingleFlight()

    # -- what is cached -------------------------------------------------------------------------

    @property
    def span_count(self) -> int:
        return self.table.count

    def missing_spans(self) -> list[int]:
        """Span ids not cached yet, in order."""
        cached = self.cache.cached_spans(self.layer)
        return [i for i in range(self.table.count) if i not in cached]

    def is_complete(self) -> bool:
        return len(self.cache.cached_spans(self.layer)) >= self.table.count

    def spans_of(self, offset: int, size: int) -> range:
        """The span ids holding uncompressed bytes `[offset, offset + size)`."""
        return self.table.spans_covering(offset, size)

    # -- blocking steps (worker threads) --------------------------------------------------------

    def _load_blocking(self, span: int) -> bytes | None:
        start, end = self.table.uncompressed_range(span)
        return self.cache.get(self.layer, span, size=end - start)

    def fetch_blocking(self, span: int) -> bytes:
        """Fetch, verify, inflate and cache span `span`; its uncompressed bytes. Raises
        SpanUnavailableError (RegistryError, a digest mismatch after the retries, bad data)."""
        start, end = self.table.compressed_range(span)
        began = time.monotonic()
        for attempt in range(self.verify_retries + 1):
            try:
                compressed = self._read_range(start, end) if end > start else b""
            except (RegistryError, ValueError) as exc:
                raise SpanUnavailableError(f"span {span} of layer {self.layer}: {exc}") from None
            self.events.span_fetched(self.layer, len(compressed))
            try:
                self.table.verify(span, compressed)
            except SpanDigestError as exc:
                self.events.span_verification_failed(self.layer)
                log_event(self.logger, logging.WARNING, "span failed verification", layer=self.layer, span=span,
                          attempt=attempt + 1, error=str(exc))
                if attempt >= self.verify_retries:
                    raise SpanUnavailableError(f"span {span} of layer {self.layer}: {exc}") from None
                continue
            break
        fetched = time.monotonic()
        try:
            data = self.table.inflate(span, compressed, verify=False)
        except SocikitError as exc:
            raise SpanUnavailableError(f"span {span} of layer {self.layer}: {exc}") from None
        log_event(self.logger, logging.DEBUG, "span fetched", layer=self.layer, span=span, bytes=len(compressed),
                  fetch_ms=round((fetched - began) * 1000, 1), inflate_ms=round((time.monotonic() - fetched) * 1000, 1))
        try:
            self.cache.put(self.layer, span, data, wait=False)  # the reader does not wait for the disk
        except OSError as exc:  # a full disk does not stop the read
            log_event(self.logger, logging.WARNING, "span not cached", layer=self.layer, span=span,
                      error=exc.strerror or str(exc))
        return data

    def _load_or_fetch_blocking(self, span: int) -> bytes:
        data = self._load_blocking(span)
        return data if data is not None else self.fetch_blocking(span)

    # -- async API (trio thread) ----------------------------------------------------------------

    async def span(self, span: int) -> bytes:
        """Span `span`'s uncompressed bytes: from memory, from disk, or fetched (one fetch for
        all concurrent requesters). No timeout of its own: callers bound it (`read` does)."""
        return await self._flights.get(span, self._peek, self._load_or_fetch)

    def _peek(self, span: int) -> bytes | None:
        return self.cache.peek(self.layer, span)

    async def _load_or_fetch(self, span: int) -> bytes:
        data: bytes = await run_in_thread(self._load_or_fetch_blocking, span, limiter=self.limiter)
        return data

    async def spans(self, ids: Iterable[int]) -> dict[int, bytes]:
        """Several spans, fetched in parallel (bounded by the shared limiter)."""
        wanted = list(dict.fromkeys(ids))
        found: dict[int, bytes] = {}
        missing = []
        for span in wanted:
            data = self.cache.peek(self.layer, span)
            if data is not None:
                found[span] = data
            else:
                missing.append(span)
        if len(missing) == 1:
            found[missing[0]] = await self.span(missing[0])
        elif missing:
            async def one(span: int) -> None:
                found[span] = await self.span(span)

            try:
                async with trio.open_nursery() as nursery:
                    for span in missing:
                        nursery.start_soon(one, span)
            except BaseException as exc:  # a MultiError of the failed spans: report the first
                first = _first_error(exc)
                if first is not exc:
                    raise first from None
                raise
        return found

    async def read(self, offset: int, size: int) -> bytes:
        """Uncompressed tar bytes `[offset, offset + size)`, within `timeout` seconds.
        SpanUnavailableError when a span cannot be had (timeout included)."""
        ids = self.table.spans_covering(offset, size)
        with trio.move_on_after(self.timeout) as scope:
            got = await self.spans(ids)
        if scope.cancelled_caught:
            log_event(self.logger, logging.WARNING, "span read timed out", layer=self.layer,
                      spans=f"{ids.start}-{ids.stop - 1}", timeout_s=self.timeout)
            raise SpanUnavailableError(f"layer {self.layer}: spans {ids.start}-{ids.stop - 1} not fetched "
                                       f"within {self.timeout:g} s")
        self._read_ahead(ids)
        return _assemble(self.table, ids, got, offset, size)

    def _read_ahead(self, ids: range) -> None:
        """Load the next READ_AHEAD_SPANS spans from disk into memory in the background (only
        from disk, never from the registry), so that a sequential reader does not wait for the
        disk at every span boundary."""
        for following in range(ids.stop, min(ids.stop + READ_AHEAD_SPANS, self.table.count)):
            if following in self._flights or self.cache.peek(self.layer, following) is not None:
                continue
            if not self.cache.contains(self.layer, following):
                return
            trio.lowlevel.spawn_system_task(self._warm, following)

    async def _warm(self, span: int) -> None:
        try:
            await self.span(span)
        except Exception as exc:  # noqa: BLE001 - a background warm-up must never take the loop down
            log_event(self.logger, logging.DEBUG, "span read-ahead failed", layer=self.layer, span=span,
                      error=str(exc) or type(exc).__name__)

    async def prefetch(self, ids: Sequence[int]) -> int:
        """Fetch the spans `ids` that are not cached (errors logged, not raised); how many were
        fetched or already there."""
        done = 0
        for span in ids:
            try:
                with trio.fail_after(self.timeout):
                    await self.span(span)
                done += 1
            except (SpanUnavailableError, trio.TooSlowError) as exc:
                log_event(self.logger, logging.DEBUG, "prefetch of a span failed", layer=self.layer, span=span,
                          error=str(exc) or type(exc).__name__)
        return done


def _first_error(exc: BaseException) -> BaseException:
    inner = getattr(exc, "exceptions", None)
    if inner:
        for item in inner:
            if not isinstance(item, trio.Cancelled):
                return _first_error(item)
    return exc


def _assemble(table: SpanTable, ids: range, spans: dict[int, bytes], offset: int, size: int) -> bytes:
    if len(ids) == 1:
        start, _ = table.uncompressed_range(ids.start)
        at = offset - start
        return spans[ids.start][at:at + size]
    parts = []
    end = offset + size
    for span in ids:
        start, stop = table.uncompressed_range(span)
        lo, hi = max(offset, start), min(end, stop)
        parts.append(spans[span][lo - start:hi - start])
    return b"".join(parts)

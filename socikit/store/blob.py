"""`BlobReader`: a served layer's `blob` file, the compressed layer as the registry holds it.

containers/storage reads `blob` only to push or save an image (never during a pull or a run), from
start to end. The store reads it from the registry in aligned chunks of `CHUNK` bytes, one range
request each, keeps the last few in memory (the kernel asks for 128 KiB to 1 MiB at a time) and
starts fetching the next chunk when a read reaches into one, so a sequential reader rarely waits
for a round trip. Concurrent reads of one chunk share one request.

The span cache holds uncompressed spans, so it can answer for the blob only where the blob *is*
the uncompressed stream: for an uncompressed layer, bytes up to the tar's end come through the
layer's `SpanFetcher` (cached spans, verified against the ztoc, and spans fetched here serve
later container reads too); the rest (padding after the tar) by range.

A read waits at most `timeout` seconds, then fails (EIO), as span reads do. Trio; the range reads
run on worker threads under the store's shared limiter.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable

import trio

from socikit.errors import RegistryError
from socikit.lazy.fetcher import RangeReader, SingleFlight, SpanFetcher, SpanUnavailableError, run_in_thread

__all__ = ["CHUNK", "KEPT_CHUNKS", "BlobReader"]

CHUNK = 4 << 20
KEPT_CHUNKS = 3  # the chunk being read, the one fetched ahead, the one before (a read across them)
_logger = logging.getLogger(__name__)


class BlobReader:
    """One layer blob's bytes (see the module doc). `size` is the manifest's; `spans` the layer's
    fetcher when the layer is uncompressed (its spans are the blob's bytes up to `spans_end`)."""

    def __init__(self, digest: str, size: int, read_range: RangeReader, *, limiter: trio.CapacityLimiter,
                 timeout: float, spans: SpanFetcher | None = None, spans_end: int = 0,
                 spawn: Callable[..., None] | None = None, chunk: int = CHUNK) -> None:
        self.digest = digest
        self.size = size
        self._read_range = read_range
        self.limiter = limiter
        self.timeout = timeout if timeout > 0 else float("inf")
        self.spans = spans
        self.spans_end = min(spans_end, size) if spans is not None else 0
        self._spawn = spawn
        self.chunk = max(1, chunk)
        self._chunks: collections.OrderedDict[int, bytes] = collections.OrderedDict()
        self._flights = SingleFlight()

    def clear(self) -> None:
        self._chunks.clear()

    async def read(self, offset: int, size: int) -> bytes:
        """Blob bytes `[offset, offset + size)` (clipped to the blob). SpanUnavailableError when
        the registry does not give them within the timeout."""
        end = min(offset + size, self.size)
        if offset >= end:
            return b""
        parts = []
        with trio.move_on_after(self.timeout) as scope:
            if offset < self.spans_end and self.spans is not None:
                upto = min(end, self.spans_end)
                parts.append(await self.spans.read(offset, upto - offset))
                offset = upto
            if offset < end:
                parts.append(await self._ranged(offset, end))
        if scope.cancelled_caught:
            raise SpanUnavailableError(f"layer {self.digest}: blob bytes {offset}-{end} not fetched within "
                                       f"{self.timeout:g} s")
        return b"".join(parts)

    async def _ranged(self, offset: int, end: int) -> bytes:
        first, last = offset // self.chunk, (end - 1) // self.chunk
        following = last + 1
        if following * self.chunk < self.size and following not in self._chunks and following not in self._flights \
                and self._spawn is not None:
            self._spawn(self._ahead, following)
        pieces = []
        for index in range(first, last + 1):
            data = await self._chunk(index)
            base = index * self.chunk
            pieces.append(data[max(offset, base) - base:min(end, base + len(data)) - base])
        return b"".join(pieces)

    async def _ahead(self, index: int) -> None:
        try:
            await self._chunk(index)
        except (SpanUnavailableError, RegistryError) as exc:  # the reader asks again, and fails then
            _logger.debug("blob read-ahead of %s chunk %d failed: %s", self.digest, index, exc)

    async def _chunk(self, index: int) -> bytes:
        return await self._flights.get(index, self._kept, self._fetch_chunk)

    def _kept(self, index: int) -> bytes | None:
        data = self._chunks.get(index)
        if data is not None:
            self._chunks.move_to_end(index)
        return data

    async def _fetch_chunk(self, index: int) -> bytes:
        start = index * self.chunk
        stop = min(start + self.chunk, self.size)
        try:
            fetched: bytes = await run_in_thread(self._read_range, start, stop, limiter=self.limiter)
        except (RegistryError, ValueError) as exc:
            raise SpanUnavailableError(f"layer {self.digest}: blob bytes {start}-{stop}: {exc}") from None
        if len(fetched) != stop - start:
            raise SpanUnavailableError(f"layer {self.digest}: the registry sent {len(fetched)} of blob bytes "
                                       f"{start}-{stop}")
        self._chunks[index] = fetched
        while len(self._chunks) > KEPT_CHUNKS:
            self._chunks.popitem(last=False)
        return fetched

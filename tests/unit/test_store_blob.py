"""`socikit.store.blob.BlobReader`: a layer blob read by aligned range requests (no registry here:
the range reader is a function over bytes that records what it was asked)."""

from __future__ import annotations

import hashlib
import io
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
import trio
import trio.testing

from socikit.errors import RegistryError
from socikit.lazy.cache import SpanCache
from socikit.lazy.fetcher import SpanFetcher, SpanUnavailableError
from socikit.store.blob import KEPT_CHUNKS, BlobReader
from socikit.ztoc.builder import build_ztoc
from socikit.ztoc.spans import span_table
from tests import images

BLOB = b"".join(hashlib.sha256(str(i).encode()).digest() for i in range(1000))  # 32000 bytes
CHUNK = 4096


class Ranges:
    """`read_range` over `data`, recording every request; `gate` (when set) holds requests."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.asked: list[tuple[int, int]] = []
        self.lock = threading.Lock()
        self.gate: threading.Event | None = None
        self.fail = False

    def __call__(self, start: int, end: int) -> bytes:
        if self.gate is not None:
            self.gate.wait(10)
        with self.lock:
            self.asked.append((start, end))
        if self.fail:
            raise RegistryError("registry down")
        return self.data[start:end]


def _run(test: Callable[[trio.Nursery], object]) -> None:
    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await test(nursery)  # type: ignore[misc]
            nursery.cancel_scope.cancel()

    trio.run(main)


def _reader(ranges: Ranges, nursery: trio.Nursery, **kwargs: object) -> BlobReader:
    return BlobReader("sha256:" + "a" * 64, len(ranges.data), ranges, limiter=trio.CapacityLimiter(4),
                      timeout=10, spawn=nursery.start_soon, chunk=CHUNK, **kwargs)  # type: ignore[arg-type]


def test_sequential_reads_fetch_each_chunk_once_and_one_ahead() -> None:
    ranges = Ranges(BLOB)

    async def test(nursery: trio.Nursery) -> None:
        reader = _reader(ranges, nursery)
        got = b""
        for offset in range(0, len(BLOB), 1000):
            got += await reader.read(offset, 1000)
            await trio.testing.wait_all_tasks_blocked()
        assert got == BLOB
        # aligned chunks, each once, the last one short; never past the end
        assert sorted(ranges.asked) == [(i, min(i + CHUNK, len(BLOB))) for i in range(0, len(BLOB), CHUNK)]
        assert len(reader._chunks) <= KEPT_CHUNKS
        assert await reader.read(len(BLOB) - 10, 100) == BLOB[-10:]  # clipped to the blob
        assert await reader.read(len(BLOB), 10) == b""

    _run(test)


def test_a_read_across_chunks_and_concurrent_readers_share_requests() -> None:
    ranges = Ranges(BLOB)
    ranges.gate = threading.Event()

    async def test(nursery: trio.Nursery) -> None:
        reader = _reader(ranges, nursery)
        results: list[bytes] = []

        async def read() -> None:
            results.append(await reader.read(CHUNK - 100, 200))

        async with trio.open_nursery() as readers:
            for _ in range(5):
                readers.start_soon(read)
            await trio.testing.wait_all_tasks_blocked(0.05)
            assert ranges.gate is not None
            ranges.gate.set()
        assert results == [BLOB[CHUNK - 100:CHUNK + 100]] * 5
        assert sorted(set(ranges.asked)) == sorted(ranges.asked)  # no chunk asked twice
        assert (0, CHUNK) in ranges.asked and (CHUNK, 2 * CHUNK) in ranges.asked

    _run(test)


def test_a_failing_registry_is_an_unavailable_read() -> None:
    ranges = Ranges(BLOB)
    ranges.fail = True

    async def test(nursery: trio.Nursery) -> None:
        reader = _reader(ranges, nursery)
        with pytest.raises(SpanUnavailableError, match="registry down"):
            await reader.read(0, 10)
        ranges.fail = False
        assert await reader.read(0, 10) == BLOB[:10]  # the next read asks again

    _run(test)


def test_an_uncompressed_layer_is_read_through_its_spans(tmp_path: Path) -> None:
    """Up to the tar's end the blob of an uncompressed layer is its spans (cached, verified);
    the padding after it comes by range."""
    builder = images.TarBuilder()
    builder.file("a.bin", BLOB * 4)
    tar = builder.finish() + b"\0" * 5000  # more padding than the end-of-archive marker
    result = build_ztoc(io.BytesIO(tar), span_size=CHUNK, algorithm="uncompressed", build_tool_identifier="test")
    table = span_table(result.ztoc)
    assert result.ztoc.uncompressed_archive_size < len(tar)
    ranges = Ranges(tar)
    spans = Ranges(tar)

    async def test(nursery: trio.Nursery) -> None:
        fetcher = SpanFetcher("sha256:" + "b" * 64, table, spans, SpanCache(tmp_path, max_bytes=1 << 30),
                              limiter=trio.CapacityLimiter(4), timeout=10)
        reader = _reader(ranges, nursery, spans=fetcher, spans_end=result.ztoc.uncompressed_archive_size)
        assert reader.size == len(tar)
        assert await reader.read(0, len(tar)) == tar
        tar_end = result.ztoc.uncompressed_archive_size
        needed = table.spans_covering(0, tar_end)
        assert sorted(spans.asked) == sorted(set(spans.asked)) and len(spans.asked) == len(needed)
        assert all(start >= tar_end // CHUNK * CHUNK for start, _ in ranges.asked)  # only the padding by range
        assert set(fetcher.missing_spans()).isdisjoint(needed)  # the spans read are cached for the tree

    _run(test)

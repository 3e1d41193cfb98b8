"""SpanFetcher with a fake range reader: verified before use, one fetch per span however many ask,
the spans of one read in parallel, a bounded wait, and reads that work again afterwards."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from socikit.errors import RegistryError
from socikit.lazy.cache import SpanCache
from socikit.lazy.events import NoEvents
from socikit.lazy.fetcher import SpanFetcher, SpanUnavailableError
from socikit.ztoc.spans import span_table
from tests.images import TarBuilder
from tests.lazy.layers import Layer, make_layer, noise


@pytest.fixture(scope="module")
def layer() -> Layer:
    b = TarBuilder()
    for n in range(6):
        b.file(f"f{n}", noise(150_000, n))
    return make_layer(b, span_size=65536)


class FakeRegistry:
    """Serves the blob's byte ranges; can hold requests, corrupt answers or fail."""

    def __init__(self, blob: bytes) -> None:
        self.blob = blob
        self.calls: list[tuple[int, int]] = []
        self.lock = threading.Lock()
        self.gate: threading.Event | None = None
        self.barrier: threading.Barrier | None = None
        self.corrupt = 0  # answers to corrupt from now on
        self.down = False

    def read(self, start: int, end: int) -> bytes:
        with self.lock:
            self.calls.append((start, end))
        if self.barrier is not None:
            try:
                self.barrier.wait(timeout=20)
            except threading.BrokenBarrierError:
                raise RegistryError("the fetches did not run in parallel") from None
        if self.gate is not None:
            self.gate.wait(timeout=60)
        if self.down:
            raise RegistryError("connection refused")
        data = bytearray(self.blob[start:end])
        with self.lock:
            if self.corrupt:
                self.corrupt -= 1
                data[len(data) // 2] ^= 0xFF
        return bytes(data)


class Counting(NoEvents):
    def __init__(self) -> None:
        self.fetched: list[int] = []
        self.failures = 0

    def span_fetched(self, layer: str, compressed_bytes: int) -> None:
        self.fetched.append(compressed_bytes)

    def span_verification_failed(self, layer: str) -> None:
        self.failures += 1


def run(test: Callable[[], Any]) -> None:
    trio.run(test)


def fetcher_for(layer: Layer, registry: FakeRegistry, tmp_path: Path, **kwargs: Any) -> tuple[SpanFetcher, Counting]:
    events = Counting()
    cache = SpanCache(tmp_path / "cache", max_bytes=1 << 30)
    options: dict[str, Any] = {"timeout": 30.0, "events": events, **kwargs}
    fetcher = SpanFetcher(layer.digest, span_table(layer.ztoc), registry.read, cache,
                          limiter=trio.CapacityLimiter(8), **options)
    return fetcher, events


def test_reads_return_the_tar_bytes(layer: Layer, tmp_path: Path) -> None:
    registry = FakeRegistry(layer.blob)
    rng = random.Random(7)
    end = layer.ztoc.uncompressed_archive_size

    async def main() -> None:
        fetcher, events = fetcher_for(layer, registry, tmp_path)
        assert fetcher.span_count > 10
        for _ in range(40):
            offset = rng.randrange(end)
            size = rng.randrange(min(300_000, end - offset) + 1)
            assert await fetcher.read(offset, size) == layer.tar[offset:offset + size]
        assert await fetcher.read(0, end) == layer.tar[:end]
        assert fetcher.is_complete() and not fetcher.missing_spans()
        # every span fetched exactly once, as one range of exactly its compressed bytes
        table = fetcher.table
        assert sorted(registry.calls) == [table.compressed_range(i) for i in range(table.count)]
        assert sum(events.fetched) == sum(e - s for s, e in registry.calls)

    run(main)


def test_spans_survive_in_the_cache_without_the_registry(layer: Layer, tmp_path: Path) -> None:
    registry = FakeRegistry(layer.blob)

    async def main() -> None:
        fetcher, _ = fetcher_for(layer, registry, tmp_path)
        await fetcher.read(0, layer.ztoc.uncompressed_archive_size)
        fetcher.cache.flush()  # spans go to disk on the cache's writer thread
        registry.down = True
        again, _ = fetcher_for(layer, registry, tmp_path)  # a new process: a new cache object
        assert again.is_complete()
        assert await again.read(1000, 200_000) == layer.tar[1000:201_000]

    run(main)


def test_concurrent_reads_of_one_span_share_one_fetch(layer: Layer, tmp_path: Path) -> None:
    registry = FakeRegistry(layer.blob)
    registry.gate = threading.Event()
    results: list[bytes] = []

    async def main() -> None:
        fetcher, _ = fetcher_for(layer, registry, tmp_path)
        start, end = fetcher.table.uncompressed_range(3)

        async def reader(offset: int) -> None:
            results.append(await fetcher.read(offset, 100))

        async with trio.open_nursery() as nursery:
            for n in range(5):
                nursery.start_soon(reader, start + n * 1000)
            await trio.testing.wait_all_tasks_blocked()
            registry.gate.set()
        assert len(registry.calls) == 1
        assert sorted(results) == sorted(layer.tar[start + n * 1000:start + n * 1000 + 100] for n in range(5))

    run(main)


def test_the_spans_of_one_read_are_fetched_in_parallel(layer: Layer, tmp_path: Path) -> None:
    registry = FakeRegistry(layer.blob)
    registry.barrier = threading.Barrier(4)  # breaks unless four fetches wait at once

    async def main() -> None:
        fetcher, _ = fetcher_for(layer, registry, tmp_path)
        start, _ = fetcher.table.uncompressed_range(2)
        _, end = fetcher.table.uncompressed_range(5)
        assert await fetcher.read(start, end - start) == layer.tar[start:end]
        assert len(registry.calls) == 4

    run(main)


def test_a_corrupt_span_is_never_served_and_is_counted(layer: Layer, tmp_path: Path) -> None:
    registry = FakeRegistry(layer.blob)
    registry.corrupt = 1

    async def main() -> None:
        fetcher, events = fetcher_for(layer, registry, tmp_path)
        with pytest.raises(SpanUnavailableError, match="span 0 .*hash"):
            await fetcher.read(0, 1000)
        assert events.failures == 1 and not fetcher.cache.contains(layer.digest, 0)
        assert await fetcher.read(0, 1000) == layer.tar[:1000]  # fetched again, good this time

    run(main)


def test_verification_retries(layer: Layer, tmp_path: Path) -> None:
    registry = FakeRegistry(layer.blob)
    registry.corrupt = 2

    async def main() -> None:
        fetcher, events = fetcher_for(layer, registry, tmp_path, verify_retries=2)
        assert await fetcher.read(0, 1000) == layer.tar[:1000]
        assert events.failures == 2 and len(registry.calls) == 3

    run(main)


def test_a_registry_that_stops_answering_fails_the_read_in_time_and_reads_work_again(
        layer: Layer, tmp_path: Path) -> None:
    registry = FakeRegistry(layer.blob)
    registry.gate = threading.Event()  # the registry holds every request
    clock = trio.testing.MockClock()

    async def main() -> None:
        fetcher, _ = fetcher_for(layer, registry, tmp_path, timeout=30.0)
        failed: list[str] = []

        async def reader() -> None:
            with pytest.raises(SpanUnavailableError, match="within 30 s") as caught:
                await fetcher.read(0, 1000)
            failed.append(str(caught.value))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(reader)
            await trio.testing.wait_all_tasks_blocked()
            clock.jump(29.9)
            await trio.testing.wait_all_tasks_blocked()
            assert not failed  # still waiting
            clock.jump(0.2)
        assert failed
        registry.gate.set()  # it is back
        start, _ = fetcher.table.uncompressed_range(1)
        assert await fetcher.read(start, 1000) == layer.tar[start:start + 1000]
        assert await fetcher.read(0, 1000) == layer.tar[:1000]

    trio.run(main, clock=clock)


def test_registry_errors_fail_the_read(layer: Layer, tmp_path: Path) -> None:
    registry = FakeRegistry(layer.blob)
    registry.down = True

    async def main() -> None:
        fetcher, _ = fetcher_for(layer, registry, tmp_path)
        with pytest.raises(SpanUnavailableError, match="connection refused"):
            await fetcher.read(0, 10)
        start, _ = fetcher.table.uncompressed_range(1)
        _, end = fetcher.table.uncompressed_range(4)
        with pytest.raises(SpanUnavailableError, match="connection refused"):
            await fetcher.read(start, end - start)  # several spans at once
        registry.down = False
        assert await fetcher.read(start, end - start) == layer.tar[start:end]

    run(main)


def test_prefetch_fetches_what_is_missing(layer: Layer, tmp_path: Path) -> None:
    registry = FakeRegistry(layer.blob)

    async def main() -> None:
        fetcher, _ = fetcher_for(layer, registry, tmp_path)
        await fetcher.read(0, 10)
        assert await fetcher.prefetch([0, 1, 2]) == 3
        assert len(registry.calls) == 3 and fetcher.missing_spans()[:1] == [3]

    run(main)


def test_read_ahead_loads_following_spans_from_disk_only(layer: Layer, tmp_path: Path) -> None:
    registry = FakeRegistry(layer.blob)

    async def main() -> None:
        fetcher, _ = fetcher_for(layer, registry, tmp_path)
        await fetcher.read(0, 10)
        await trio.testing.wait_all_tasks_blocked()
        assert len(registry.calls) == 1  # the spans after it are not on disk: nothing more is fetched
        _, end = fetcher.table.uncompressed_range(4)
        await fetcher.read(0, end)
        fetcher.cache.flush()
        registry.down = True
        # a new process: spans on disk, none in memory
        cold, _ = fetcher_for(layer, registry, tmp_path)
        assert cold.cache.peek(layer.digest, 1) is None
        await cold.read(0, 10)
        for _ in range(200):
            if cold.cache.peek(layer.digest, 1) is not None and cold.cache.peek(layer.digest, 2) is not None:
                break
            await trio.sleep(0.01)
        assert cold.cache.peek(layer.digest, 1) is not None and cold.cache.peek(layer.digest, 2) is not None

    run(main)

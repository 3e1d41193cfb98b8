"""BackgroundFetcher: prefetch spans at once, the rest after the quiet period, round-robin over
layers, one span per period; a bounded queue. Time is trio's mock clock, moved by the test."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
import trio
import trio.testing

from socikit.lazy.background import BackgroundFetcher
from socikit.lazy.cache import SpanCache
from socikit.lazy.events import NoEvents
from socikit.lazy.fetcher import SpanFetcher
from socikit.ztoc.spans import span_table
from tests.images import TarBuilder
from tests.lazy.layers import Layer, make_layer, noise
from tests.lazy.test_fetcher import FakeRegistry


def small_layer(seed: int, size: int = 200_000) -> Layer:
    b = TarBuilder()
    b.file("f", noise(size, seed))
    return make_layer(b, span_size=65536)


class Progress(NoEvents):
    def __init__(self) -> None:
        self.background: list[str] = []
        self.remaining: dict[str, int] = {}

    def background_span(self, layer: str) -> None:
        self.background.append(layer)

    def remaining_spans(self, layer: str, count: int) -> None:
        self.remaining[layer] = count


async def until(condition: Callable[[], bool]) -> None:
    """Let worker threads run (real time) until `condition` holds; the mock clock stays put."""
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, "condition never became true"
        await trio.sleep(0)
    await trio.testing.wait_all_tasks_blocked()


def make(layer: Layer, registry: FakeRegistry, tmp_path: Path, limiter: trio.CapacityLimiter) -> SpanFetcher:
    cache = SpanCache(tmp_path / "cache", max_bytes=1 << 30)
    return SpanFetcher(layer.digest, span_table(layer.ztoc), registry.read, cache, limiter=limiter, timeout=60)


class NamedRegistry(FakeRegistry):
    def __init__(self, blob: bytes, name: str, log: list[str]) -> None:
        super().__init__(blob)
        self.name, self.log = name, log

    def read(self, start: int, end: int) -> bytes:
        self.log.append(self.name)
        return super().read(start, end)


def test_prefetch_now_then_round_robin_after_the_quiet_period(tmp_path: Path) -> None:
    one, two = small_layer(1, size=400_000), small_layer(2)
    order: list[str] = []
    reg_one, reg_two = NamedRegistry(one.blob, "one", order), NamedRegistry(two.blob, "two", order)
    clock = trio.testing.MockClock()
    events = Progress()

    async def main() -> None:
        limiter = trio.CapacityLimiter(4)
        f_one, f_two = make(one, reg_one, tmp_path, limiter), make(two, reg_two, tmp_path, limiter)
        count_one, count_two = f_one.span_count, f_two.span_count
        assert count_one >= 3 and count_two >= 3
        background = BackgroundFetcher(silence_period=30, fetch_period=1, events=events)
        async with trio.open_nursery() as nursery:
            await nursery.start(background.run)
            background.add(f_one, prefetch=[1, 2])
            background.add(f_two)
            await until(lambda: not {1, 2} & set(f_one.missing_spans()))  # the prefetch spans are in
            assert sorted(reg_one.calls) == [f_one.table.compressed_range(i) for i in (1, 2)] and not reg_two.calls
            assert events.remaining == {one.digest: count_one, two.digest: count_two}
            clock.jump(29)
            await trio.testing.wait_all_tasks_blocked()
            assert len(order) == 2  # still quiet
            del order[:]
            for n in range(count_one - 2 + count_two):
                clock.jump(1)  # one span per period, no more
                # until that span is in (not only asked for): the loop then sleeps a period
                await until(lambda n=n: len(events.background) == n + 1)  # type: ignore[misc]
                assert len(order) == n + 1
            assert background.queued == [one.digest, two.digest] or not f_one.missing_spans()
            clock.jump(1)
            await until(lambda: not background.queued)
            nursery.cancel_scope.cancel()
        assert f_one.is_complete() and f_two.is_complete()
        expected: list[str] = []
        left = {"one": count_one - 2, "two": count_two}
        while any(left.values()):
            for name in ("one", "two"):
                if left[name]:
                    expected.append(name)
                    left[name] -= 1
        assert order == expected and expected[:4] == ["one", "two", "one", "two"]
        assert events.remaining == {one.digest: 0, two.digest: 0}
        assert events.background == [one.digest if o == "one" else two.digest for o in order]

    trio.run(main, clock=clock)


@pytest.mark.parametrize(("policy", "kept"), [("newest", "one"), ("oldest", "two")])
def test_a_full_queue_drops_by_policy(tmp_path: Path, policy: str, kept: str) -> None:
    one, two = small_layer(1), small_layer(2)

    async def main() -> None:
        limiter = trio.CapacityLimiter(4)
        f_one = make(one, FakeRegistry(one.blob), tmp_path, limiter)
        f_two = make(two, FakeRegistry(two.blob), tmp_path, limiter)
        background = BackgroundFetcher(max_queue=1, drop_policy=policy)
        background.add(f_one)
        background.add(f_two)
        assert background.queued == [(one if kept == "one" else two).digest]
        background.remove(f_one)
        background.remove(f_two)
        assert background.queued == []

    trio.run(main)


def test_disabled_background_fetch_still_prefetches(tmp_path: Path) -> None:
    layer = small_layer(3)
    registry = FakeRegistry(layer.blob)

    async def main() -> None:
        fetcher = make(layer, registry, tmp_path, trio.CapacityLimiter(4))
        background = BackgroundFetcher(enabled=False, silence_period=0, fetch_period=0)
        async with trio.open_nursery() as nursery:
            await nursery.start(background.run)
            background.add(fetcher, prefetch=[0])
            await until(lambda: fetcher.cache.contains(layer.digest, 0))
            assert background.queued == []
            nursery.cancel_scope.cancel()
        assert fetcher.missing_spans()[:1] == [1] and len(registry.calls) == 1

    trio.run(main)


def test_bad_drop_policy() -> None:
    with pytest.raises(ValueError):
        BackgroundFetcher(drop_policy="random")

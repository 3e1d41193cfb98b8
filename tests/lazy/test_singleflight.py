"""SingleFlight: one fetch per key for every concurrent requester (the span fetcher's and the
store's blob reader's)."""

from __future__ import annotations

import pytest
import trio

from socikit.lazy.fetcher import SingleFlight, SpanUnavailableError


def nothing_cached(key: int) -> bytes | None:
    return None


def test_concurrent_requesters_share_one_fetch_and_a_later_one_reads_the_cache() -> None:
    flights = SingleFlight()
    cache: dict[int, bytes] = {}
    fetched: list[int] = []
    results: list[bytes] = []

    async def fetch(key: int) -> bytes:
        fetched.append(key)
        await trio.sleep(0.05)
        cache[key] = b"span%d" % key
        return cache[key]

    async def main() -> None:
        async def ask(key: int) -> None:
            results.append(await flights.get(key, cache.get, fetch))

        async with trio.open_nursery() as nursery:
            for _ in range(5):
                nursery.start_soon(ask, 7)
            await trio.sleep(0.01)
            assert 7 in flights
        assert 7 not in flights
        results.append(await flights.get(7, cache.get, fetch))

    trio.run(main)
    assert fetched == [7]
    assert results == [b"span7"] * 6


def test_waiters_share_the_failure_as_an_unavailable_span() -> None:
    flights = SingleFlight()
    failures: list[BaseException] = []

    async def fetch(key: int) -> bytes:
        await trio.sleep(0.05)
        raise OSError("connection reset")

    async def main() -> None:
        async def ask() -> None:
            try:
                await flights.get(1, nothing_cached, fetch)
            except (OSError, SpanUnavailableError) as exc:
                failures.append(exc)

        async with trio.open_nursery() as nursery:
            for _ in range(3):
                nursery.start_soon(ask)

    trio.run(main)
    assert sorted(type(exc).__name__ for exc in failures) == ["OSError", "SpanUnavailableError",
                                                              "SpanUnavailableError"]
    assert all("connection reset" in str(exc) for exc in failures)


def test_a_waiter_fetches_itself_when_the_fetching_requester_is_cancelled() -> None:
    flights = SingleFlight()
    calls: list[int] = []

    async def fetch(key: int) -> bytes:
        calls.append(key)
        await trio.sleep(0.2 if len(calls) == 1 else 0)
        return b"data"

    async def main() -> bytes:
        async with trio.open_nursery() as nursery:
            first = trio.CancelScope()

            async def impatient() -> None:
                with first:
                    await flights.get(3, nothing_cached, fetch)

            nursery.start_soon(impatient)
            await trio.sleep(0.02)
            nursery.cancel_scope.deadline = trio.current_time() + 5
            waiter_result: list[bytes] = []

            async def patient() -> None:
                waiter_result.append(await flights.get(3, nothing_cached, fetch))

            nursery.start_soon(patient)
            await trio.sleep(0.02)
            first.cancel()
        return waiter_result[0]

    assert trio.run(main) == b"data"
    assert calls == [3, 3]


def test_an_error_in_the_fetch_reaches_its_own_caller_unchanged() -> None:
    async def fetch(key: int) -> bytes:
        raise SpanUnavailableError("digest mismatch")

    with pytest.raises(SpanUnavailableError, match="digest mismatch"):
        trio.run(SingleFlight().get, 0, nothing_cached, fetch)

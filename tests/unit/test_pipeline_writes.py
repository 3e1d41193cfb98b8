"""Writes on a pool (pipeline.writes.wait_in_order): every write is waited for, the first failure
in submission order is what the caller sees, and writes not started by then never run."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from socikit.pipeline.writes import wait_in_order


def test_all_writes_are_waited_for() -> None:
    done: list[int] = []
    with ThreadPoolExecutor(max_workers=3) as pool:
        wait_in_order([pool.submit(done.append, n) for n in range(20)])
        assert sorted(done) == list(range(20))


def test_the_first_failure_in_submission_order_is_raised() -> None:
    """The earlier write fails last: its error is still the one raised."""
    release = threading.Event()

    def slow_failure() -> None:
        release.wait(10)
        raise OSError("first")

    def quick_failure() -> None:
        release.set()
        raise ValueError("second")

    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = [pool.submit(slow_failure), pool.submit(quick_failure)]
        with pytest.raises(OSError, match="first"):
            wait_in_order(futures)


def test_writes_not_started_when_one_fails_never_run() -> None:
    gate = threading.Event()
    ran: list[int] = []

    def fail() -> None:
        raise OSError("disk full")

    def late(n: int) -> None:
        gate.wait(10)
        ran.append(n)

    with ThreadPoolExecutor(max_workers=1) as pool:
        futures = [pool.submit(fail)] + [pool.submit(late, n) for n in range(20)]
        with pytest.raises(OSError, match="disk full"):
            wait_in_order(futures)
        gate.set()  # the one write that may have started finishes
    assert sum(f.cancelled() for f in futures[1:]) >= 19
    assert len(ran) <= 1

"""SpanCache: bounded on disk, least recently used evicted, kept across restarts."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from socikit.lazy.cache import SpanCache

A = "sha256:" + "a" * 64
B = "sha256:" + "b" * 64


def test_put_get_and_persistence(tmp_path: Path) -> None:
    cache = SpanCache(tmp_path, max_bytes=1000, memory_bytes=0)
    cache.put(A, 0, b"x" * 100)
    cache.put(B, 3, b"y" * 50)
    assert cache.get(A, 0) == b"x" * 100 and cache.get(B, 3) == b"y" * 50
    assert cache.get(A, 1) is None and cache.peek(A, 0) is None  # no memory layer
    assert (tmp_path / ("a" * 64) / "0").read_bytes() == b"x" * 100
    again = SpanCache(tmp_path, max_bytes=1000, memory_bytes=0)
    assert again.get(B, 3) == b"y" * 50 and again.cached_spans(A) == {0} and again.disk_bytes == 150


def test_least_recently_used_is_evicted(tmp_path: Path) -> None:
    cache = SpanCache(tmp_path, max_bytes=300, memory_bytes=0)
    for span in range(3):
        cache.put(A, span, bytes([span]) * 100)
    assert cache.get(A, 0) is not None  # 0 is now the most recently used
    cache.put(A, 3, b"3" * 100)
    assert cache.cached_spans(A) == {0, 2, 3}
    assert not (tmp_path / ("a" * 64) / "1").exists()
    assert cache.disk_bytes == 300 and cache.evicted == 1


def test_restart_orders_by_use_and_applies_a_smaller_bound(tmp_path: Path) -> None:
    cache = SpanCache(tmp_path, max_bytes=1000, memory_bytes=0)
    for span in range(4):
        cache.put(A, span, b"z" * 100)
    old = time.time() - 100
    for span in range(4):
        os.utime(tmp_path / ("a" * 64) / str(span), (old + span, old + span))
    assert cache.get(A, 0) is not None  # refreshes its modification time
    smaller = SpanCache(tmp_path, max_bytes=200, memory_bytes=0)
    assert smaller.cached_spans(A) == {0, 3}


def test_damaged_file_is_dropped(tmp_path: Path) -> None:
    cache = SpanCache(tmp_path, max_bytes=1000, memory_bytes=0)
    cache.put(A, 0, b"x" * 100)
    (tmp_path / ("a" * 64) / "0").write_bytes(b"short")
    assert cache.get(A, 0, size=100) is None
    assert not cache.contains(A, 0)


def test_memory_layer_and_no_disk(tmp_path: Path) -> None:
    cache = SpanCache(tmp_path / "c", max_bytes=0, memory_bytes=150)
    cache.put(A, 0, b"x" * 100)
    assert cache.peek(A, 0) == b"x" * 100 and not (tmp_path / "c").exists()
    cache.put(A, 1, b"y" * 100)  # pushes span 0 out of memory
    assert cache.peek(A, 0) is None and cache.get(A, 1) == b"y" * 100
    assert cache.cached_spans(A) == {1}


def test_temporary_files_of_a_crash_are_removed(tmp_path: Path) -> None:
    layer_dir = tmp_path / ("a" * 64)
    layer_dir.mkdir()
    (layer_dir / ".0.abc.tmp").write_bytes(b"partial")
    (layer_dir / "1").write_bytes(b"whole")
    cache = SpanCache(tmp_path, max_bytes=100)
    assert not (layer_dir / ".0.abc.tmp").exists() and cache.cached_spans(A) == {1}


def test_only_sha256_layer_digests(tmp_path: Path) -> None:
    cache = SpanCache(tmp_path, max_bytes=100)
    with pytest.raises(ValueError):
        cache.put("sha256:../../etc", 0, b"x")


def test_writes_in_the_background(tmp_path: Path) -> None:
    cache = SpanCache(tmp_path, max_bytes=1000, memory_bytes=1000)
    for span in range(5):
        cache.put(A, span, bytes([span]) * 100, wait=False)
    assert cache.peek(A, 4) == b"\x04" * 100  # in memory at once
    cache.flush()
    assert SpanCache(tmp_path, max_bytes=1000, memory_bytes=0).cached_spans(A) == {0, 1, 2, 3, 4}

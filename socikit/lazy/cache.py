"""`SpanCache`: verified, uncompressed spans on disk, bounded in size, least recently used evicted.

Layout: `<directory>/<layer digest hex>/<span id>`, one file per span, written to a temporary
name and renamed into place (a crash leaves at most a temporary file, removed at the next start).
Only spans whose compressed bytes matched the ztoc's digest are ever put here, so what is read
back is what the layer holds. The cache outlives the process: at start the directory is scanned
and its files ordered by modification time, which `get` refreshes when it reads a span from disk;
a layer whose spans are all here is served with the registry unreachable.

A small in-memory layer in front (`memory_bytes`) keeps the most recently used spans, so that
the many small reads of one span (the kernel asks for 128 KiB at a time) cost no disk read and no
thread. `max_bytes = 0` keeps nothing on disk. `put(..., wait=False)` keeps the span in memory at
once and writes it to disk on a writer thread, so a reader waiting for a fetched span does not
also wait for the disk (`flush()` waits for the writes).

Thread-safe: every method may be called from any thread; `peek` never touches the disk.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import threading
from collections import OrderedDict
from pathlib import Path

from socikit.atomic import create_temp_file

__all__ = ["DEFAULT_MEMORY_BYTES", "SpanCache", "SpanKey"]

DEFAULT_MEMORY_BYTES = 64 << 20
_HEX = re.compile(r"[0-9a-f]{64}")

SpanKey = tuple[str, int]
"""(layer digest, span id)."""


def _layer_dir_name(layer: str) -> str:
    algorithm, _, hex_part = layer.partition(":")
    if algorithm != "sha256" or _HEX.fullmatch(hex_part) is None:
        raise ValueError(f"not a sha256 layer digest: {layer[:80]!r}")
    return hex_part


class SpanCache:
    def __init__(self, directory: Path, *, max_bytes: int, memory_bytes: int = DEFAULT_MEMORY_BYTES) -> None:
        self.directory = directory
        self.max_bytes = max(0, max_bytes)
        self.memory_bytes = max(0, memory_bytes)
        self._lock = threading.Lock()
        self._disk: OrderedDict[SpanKey, int] = OrderedDict()  # least recently used first
        self._disk_total = 0
        self._by_layer: dict[str, set[int]] = {}
        self._memory: OrderedDict[SpanKey, bytes] = OrderedDict()
        self._memory_total = 0
        self.evicted = 0
        self._writes: queue.Queue[tuple[str, int, bytes] | None] = queue.Queue()
        self._writer: threading.Thread | None = None
        if self.max_bytes:
            directory.mkdir(parents=True, exist_ok=True)
            self._scan()

    # -- start-up -------------------------------------------------------------------------------

    def _scan(self) -> None:
        found: list[tuple[float, SpanKey, int]] = []
        for layer_dir in self.directory.iterdir():
            if not layer_dir.is_dir() or _HEX.fullmatch(layer_dir.name) is None:
                continue
            layer = f"sha256:{layer_dir.name}"
            for item in layer_dir.iterdir():
                if item.name.startswith("."):
                    with contextlib.suppress(OSError):
                        item.unlink()  # a temporary file a crash left behind
                    continue
                if not item.name.isdigit():
                    continue
                with contextlib.suppress(OSError):
                    st = item.stat()
                    found.append((st.st_mtime, (layer, int(item.name)), st.st_size))
        for _, key, size in sorted(found):
            self._remember(key, size)
        for victim in self._evict(keep=None):  # the bound may have shrunk since the last run
            with contextlib.suppress(FileNotFoundError):
                victim.unlink()

    # -- index (callers hold the lock) ----------------------------------------------------------

    def _remember(self, key: SpanKey, size: int) -> None:
        old = self._disk.pop(key, None)
        if old is not None:
            self._disk_total -= old
        self._disk[key] = size
        self._disk_total += size
        self._by_layer.setdefault(key[0], set()).add(key[1])

    def _forget(self, key: SpanKey) -> None:
        size = self._disk.pop(key, None)
        if size is None:
            return
        self._disk_total -= size
        spans = self._by_layer.get(key[0])
        if spans is not None:
            spans.discard(key[1])
            if not spans:
                del self._by_layer[key[0]]

    def _evict(self, keep: SpanKey | None) -> list[Path]:
        victims: list[Path] = []
        while self._disk_total > self.max_bytes and self._disk:
            key = next(iter(self._disk))
            if key == keep:
                if len(self._disk) == 1:
                    break
                self._disk.move_to_end(key)
                continue
            self._forget(key)
            victims.append(self._path(key))
            self.evicted += 1
        return victims

    def _memorize(self, key: SpanKey, data: bytes) -> None:
        if len(data) > self.memory_bytes:
            return
        old = self._memory.pop(key, None)
        if old is not None:
            self._memory_total -= len(old)
        self._memory[key] = data
        self._memory_total += len(data)
        while self._memory_total > self.memory_bytes:
            _, dropped = self._memory.popitem(last=False)
            self._memory_total -= len(dropped)

    def _path(self, key: SpanKey) -> Path:
        return self.directory / _layer_dir_name(key[0]) / str(key[1])

    # -- API --------------------------------------------------------------------------------------

    def peek(self, layer: str, span: int) -> bytes | None:
        """The span if it is in memory (no disk access), else None."""
        key = (layer, span)
        with self._lock:
            data = self._memory.get(key)
            if data is not None:
                self._memory.move_to_end(key)
                if key in self._disk:
                    self._disk.move_to_end(key)
            return data

    def contains(self, layer: str, span: int) -> bool:
        key = (layer, span)
        with self._lock:
            return key in self._memory or key in self._disk

    def cached_spans(self, layer: str) -> set[int]:
        """Span ids of `layer` held on disk or in memory."""
        with self._lock:
            spans = set(self._by_layer.get(layer, ()))
            spans.update(span for (name, span) in self._memory if name == layer)
            return spans

    def get(self, layer: str, span: int, *, size: int | None = None) -> bytes | None:
        """The span from memory or disk, or None. Blocking (reads a file). `size`, when given,
        is the span's uncompressed length: a file of another length is dropped as damaged."""
        data = self.peek(layer, span)
        if data is not None:
            return data
        key = (layer, span)
        with self._lock:
            if key not in self._disk:
                return None
        path = self._path(key)
        try:
            with open(path, "rb") as handle:
                data = handle.read()
                with contextlib.suppress(OSError):
                    os.utime(handle.fileno())
        except FileNotFoundError:
            with self._lock:
                self._forget(key)
            return None
        if size is not None and len(data) != size:
            with self._lock:
                self._forget(key)
            with contextlib.suppress(OSError):
                path.unlink()
            return None
        with self._lock:
            if key in self._disk:
                self._disk.move_to_end(key)
            self._memorize(key, data)
        return data

    def put(self, layer: str, span: int, data: bytes, *, wait: bool = True) -> None:
        """Keep a verified span (memory, and disk unless max_bytes is 0), evicting the least
        recently used spans beyond max_bytes. With `wait` False the disk write happens on the
        writer thread (the span is in memory until then)."""
        key = (layer, span)
        with self._lock:
            self._memorize(key, data)
        if not self.max_bytes or len(data) > self.max_bytes:
            return
        if wait:
            self._write(layer, span, data)
            return
        with self._lock:
            if self._writer is None:
                self._writer = threading.Thread(target=self._write_loop, name="span-cache-writer", daemon=True)
                self._writer.start()
        self._writes.put((layer, span, data))

    def flush(self) -> None:
        """Wait until every span handed to `put(wait=False)` is on disk (or failed to be)."""
        self._writes.join()

    def _write_loop(self) -> None:
        while True:
            item = self._writes.get()
            try:
                if item is not None:
                    with contextlib.suppress(OSError):  # a full disk: the span stays uncached
                        self._write(*item)
            finally:
                self._writes.task_done()

    def _write(self, layer: str, span: int, data: bytes) -> None:
        key = (layer, span)
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = create_temp_file(path.parent, path.name)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        with self._lock:
            self._remember(key, len(data))
            # unlinked under the lock: a span fetched again meanwhile must not lose its new file
            for victim in self._evict(keep=key):
                with contextlib.suppress(FileNotFoundError):
                    victim.unlink()

    @property
    def disk_bytes(self) -> int:
        with self._lock:
            return self._disk_total

    def __len__(self) -> int:
        with self._lock:
            return len(self._disk)

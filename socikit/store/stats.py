"""What the running store counts, and its status file (`<root>/status.json`).

`StoreStats` receives `socikit.lazy`'s events (spans fetched and their compressed bytes,
verification failures, FUSE errors, background fetch), the store's own (lookups, `blob` reads)
and reads the use counts and the registry traffic when asked. `status()` is all of it as one JSON
document; the daemon rewrites the file (atomically) when it differs from what was written last,
looking every `STATUS_PERIOD_S`, and once more when it stops (`"serving": false`):

    {"serving": true, "pid": 1234, "mountpoint": "/var/lib/socikit/store",
     "in_use": [{"reference": "registry.example/app:1", "digest": "sha256:…", "count": 1}],
     "uses": 6, "releases": 3, "unmatched_releases": 0,
     "lookups": {"served": 3, "not_served": 0, "failed": 0},
     "registry": {"manifests": 3, "manifest_bytes": …, "blobs": 4, "blob_bytes": …, "ranges": …,
                  "range_bytes": …, "referrers": 0},
     "spans": {"fetched": 12, "bytes": …, "verification_failures": 0, "background": 0},
     "blob_reads": {"bytes": …}, "layers": {"sha256:…": {"spans_fetched": 4, "bytes": …,
     "remaining_spans": …}}, "fuse_errors": {"read": 0}, "attached_layers": 3}

`registry` counts every request to a registry and the body bytes it brought (spans and `blob`
reads included, as `ranges`). Thread-safe: lazy events arrive from worker threads too.
"""

from __future__ import annotations

import collections
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from socikit.store.layout import LayerKey
from socikit.store.resolve import RegistryTraffic
from socikit.store.usecount import UseCounts

__all__ = ["STATUS_FILE", "STATUS_PERIOD_S", "StoreStats"]

STATUS_FILE = "status.json"
STATUS_PERIOD_S = 0.2


class StoreStats:
    """Counters (see the module doc); implements `socikit.lazy.events.LazyEvents`."""

    def __init__(self, *, traffic: RegistryTraffic, mountpoint: Path, counts: UseCounts[LayerKey] | None = None,
                 attached: Callable[[], int] = lambda: 0) -> None:
        self.traffic = traffic
        self.counts: UseCounts[LayerKey] = counts if counts is not None else UseCounts()
        self.mountpoint = mountpoint
        self.attached = attached
        self.serving = False
        self._lock = threading.Lock()
        self._lookups: collections.Counter[str] = collections.Counter()
        self._spans: collections.Counter[str] = collections.Counter()
        self._layers: dict[str, collections.Counter[str]] = {}
        self._fuse_errors: collections.Counter[str] = collections.Counter()
        self._blob_bytes = 0

    def _layer(self, layer: str) -> collections.Counter[str]:
        return self._layers.setdefault(layer, collections.Counter())

    # -- the store's events -------------------------------------------------------------------------

    def lookup(self, result: str) -> None:
        """A layer directory was resolved: "served", "not_served" or "failed"."""
        with self._lock:
            self._lookups[result] += 1

    def blob_read(self, nbytes: int) -> None:
        """`nbytes` of a `blob` file were read by podman."""
        with self._lock:
            self._blob_bytes += nbytes

    # -- socikit.lazy's events (LazyEvents) -------------------------------------------------------------

    def span_fetched(self, layer: str, compressed_bytes: int) -> None:
        with self._lock:
            self._spans["fetched"] += 1
            self._spans["bytes"] += compressed_bytes
            counter = self._layer(layer)
            counter["spans_fetched"] += 1
            counter["bytes"] += compressed_bytes

    def span_verification_failed(self, layer: str) -> None:
        with self._lock:
            self._spans["verification_failures"] += 1

    def fuse_error(self, operation: str) -> None:
        with self._lock:
            self._fuse_errors[operation] += 1

    def background_span(self, layer: str) -> None:
        with self._lock:
            self._spans["background"] += 1

    def remaining_spans(self, layer: str, count: int) -> None:
        with self._lock:
            self._layer(layer)["remaining_spans"] = count

    # -- the document -------------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        in_use = sorted(self.counts.in_use().items(), key=lambda item: (item[0].reference, item[0].digest))
        with self._lock:
            spans = {name: self._spans[name] for name in ("fetched", "bytes", "verification_failures", "background")}
            return {
                "serving": self.serving,
                "pid": os.getpid(),
                "mountpoint": str(self.mountpoint),
                "in_use": [{"reference": key.reference, "digest": key.digest, "count": count} for key, count in in_use],
                "uses": self.counts.uses,
                "releases": self.counts.releases,
                "unmatched_releases": self.counts.unmatched_releases,
                "lookups": {name: self._lookups[name] for name in ("served", "not_served", "failed")},
                "registry": self.traffic.snapshot(),
                "spans": spans,
                "blob_reads": {"bytes": self._blob_bytes},
                "layers": {layer: dict(counter) for layer, counter in sorted(self._layers.items())},
                "fuse_errors": dict(self._fuse_errors),
                "attached_layers": self.attached(),
            }

"""`LazyLayers`: the snapshotter's `LayerFileSystem` over `socikit.lazy`.

    mount(chain ID, labels)                                   gRPC worker thread
      labels cri.image-ref, cri.manifest-digest, cri.layer-digest (none: decline)
      ├─ a layer with that digest already mounted → its directory
      ├─ on a mount worker, within mount_timeout_sec (else decline; the work goes on and is kept):
      │    registry endpoints and credentials for the image (remote.Remotes)
      │    SOCI index of the manifest, all its ztocs, once per manifest, kept on disk (artifacts.SociImages)
      │    no index / no ztoc for this layer → decline (containerd applies the layer)
      │    the layer's tree and span table from its ztoc
      └─ on the trio thread: a SpanFetcher, the layer attached to the FUSE file system as
         `<root>/fuse/<layer digest hex>`, queued for the background fetcher (prefetch spans now)

One FUSE mount (`<root>/fuse`) serves every layer; a layer shared by several snapshots (same
digest, other parents) is one directory, released when its last snapshot is removed. An image's
first layer is shown without its whiteouts (as containerd applies a first layer), so it has a
directory of its own, `<hex>-bottom`, should the same layer also be used higher up. At start,
a FUSE mount a killed daemon left at `<root>/fuse` is detached first; the snapshotter then hands
every remote snapshot to `mount` again, which finds the SOCI artifacts on disk (no registry
needed) and the spans in the cache.
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import ctypes.util
import logging
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from socikit.errors import SnapshotError
from socikit.lazy.artifacts import ArtifactStore, LayerArtifacts, SociImages
from socikit.lazy.cache import SpanCache
from socikit.lazy.remote import Mirror, RegistryHosts, RemoteRepository, Remotes
from socikit.lazy.tree import LayerTree
from socikit.registry.transfer import RetryPolicy
from socikit.snapshotter.config import SnapshotterConfig
from socikit.snapshotter.credentials import CredentialStore
from socikit.snapshotter.fs import TaskStatus
from socikit.snapshotter.jsonlog import LOGGER_NAME, log
from socikit.snapshotter.metrics import SnapshotterMetrics
from socikit.soci.discover import PullModes
from socikit.ztoc.spans import SpanTable, span_table

__all__ = ["CRI_IMAGE_REF", "CRI_LAYER_DIGEST", "CRI_MANIFEST_DIGEST", "LazyLayers"]

_log = logging.getLogger(LOGGER_NAME)
_lazy_log = logging.getLogger(LOGGER_NAME + ".lazy")

CRI_IMAGE_REF = "containerd.io/snapshot/cri.image-ref"
CRI_MANIFEST_DIGEST = "containerd.io/snapshot/cri.manifest-digest"
CRI_LAYER_DIGEST = "containerd.io/snapshot/cri.layer-digest"
SOCI_INDEX_DIGEST = "containerd.io/snapshot/remote/soci.index.digest"
SOCI_SIZE = "containerd.io/snapshot/remote/soci.size"
MOUNT_WORKERS = 8
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
MNT_DETACH = 2


class MetricsEvents:
    """`socikit.lazy.events.LazyEvents` onto the daemon's Prometheus series."""

    def __init__(self, metrics: SnapshotterMetrics | None) -> None:
        self.metrics = metrics

    def span_fetched(self, layer: str, compressed_bytes: int) -> None:
        if self.metrics is not None:
            self.metrics.spans_fetched.inc(layer=layer)
            self.metrics.fetched_bytes.inc(compressed_bytes, layer=layer)

    def span_verification_failed(self, layer: str) -> None:
        if self.metrics is not None:
            self.metrics.span_verification_failures.inc(layer=layer)

    def fuse_error(self, operation: str) -> None:
        if self.metrics is not None:
            self.metrics.fuse_operation_errors.inc(operation=operation)

    def background_span(self, layer: str) -> None:
        if self.metrics is not None:
            self.metrics.background_fetch_spans.inc(layer=layer)

    def remaining_spans(self, layer: str, count: int) -> None:
        if self.metrics is not None:
            self.metrics.background_fetch_remaining_spans.set(count, layer=layer)


@dataclass(frozen=True)
class _Prepared:
    """A layer that can be served: its SOCI artifacts and where its blob is."""

    artifacts: LayerArtifacts
    repo: RemoteRepository

    def tree(self) -> LayerTree:
        return LayerTree(self.artifacts.ztoc, xattrs=not self.artifacts.disable_xattrs, bottom=self.artifacts.bottom)

    def table(self) -> SpanTable:
        return span_table(self.artifacts.ztoc)


def directory_name(layer_digest: str, bottom: bool) -> str:
    """The layer's directory under the FUSE mount."""
    return layer_digest.split(":", 1)[1] + ("-bottom" if bottom else "")


def _retry(*, retries: int, min_wait_msec: int, max_wait_msec: int, deadline_s: float, dial_msec: int,
           read_msec: int) -> RetryPolicy:
    return RetryPolicy(attempts=max(1, retries + 1), initial_delay=min_wait_msec / 1000,
                       max_delay=max_wait_msec / 1000, deadline=max(1.0, deadline_s),
                       connect_timeout=max(0.1, dial_msec / 1000), read_timeout=max(0.1, read_msec / 1000))


def _detach_stale_mounts(path: Path) -> list[str]:
    """Lazily unmount whatever is mounted at or below `path` (a FUSE mount a killed daemon left:
    its directory answers ENOTCONN until then). Returns the mount points detached."""
    prefix = str(path)
    points = []
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as info:
        for line in info:
            point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), line.split()[4])
            if point == prefix or point.startswith(prefix + "/"):
                points.append(point)
    if not points:
        return []
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    for point in sorted(set(points), key=len, reverse=True):
        if libc.umount2(os.fsencode(point), MNT_DETACH) != 0:
            code = ctypes.get_errno()
            raise SnapshotError(f"cannot unmount the stale FUSE mount {point}: {os.strerror(code)}")
    return points


class LazyLayers:
    """See the module doc. `mount`, `check`, `unmount` run on gRPC threads; `serve` in trio."""

    def __init__(self, config: SnapshotterConfig, root: Path, *, metrics: SnapshotterMetrics | None = None,
                 credentials: CredentialStore | None = None) -> None:
        self.config = config
        self.root = root
        self.mountpoint = root / "fuse"
        self.events = MetricsEvents(metrics)
        self.credentials = credentials if credentials is not None else CredentialStore()
        lazy_dir = root / "lazy"
        self.images = SociImages(ArtifactStore(lazy_dir / "artifacts"),
                                 modes=PullModes(v2=config.pull_modes.soci_v2.enable,
                                                 v1=config.pull_modes.soci_v1.enable))
        self.cache = SpanCache(lazy_dir / "spans", max_bytes=config.cache.max_bytes)
        http, blob = config.http, config.blob
        concurrency = config.max_concurrency if config.max_concurrency > 0 else 1000
        self.remotes = Remotes(
            RegistryHosts({host: [Mirror(m.host, m.insecure, float(m.request_timeout_sec)) for m in entry.mirrors]
                           for host, entry in config.resolver.host.items()}),
            metadata_retry=_retry(retries=http.max_retries, min_wait_msec=http.min_wait_msec,
                                  max_wait_msec=http.max_wait_msec, deadline_s=http.request_timeout_msec / 1000,
                                  dial_msec=http.dial_timeout_msec, read_msec=http.response_header_timeout_msec),
            span_retry=_retry(retries=blob.max_retries, min_wait_msec=blob.min_wait_msec,
                              max_wait_msec=blob.max_wait_msec, deadline_s=blob.fetching_timeout_sec,
                              dial_msec=http.dial_timeout_msec,
                              read_msec=min(http.response_header_timeout_msec, blob.fetching_timeout_sec * 1000)),
            handed=self.credentials.lookup, pool_size=min(concurrency, 64))
        self.span_concurrency = concurrency
        self._token: Any = None
        self._runtime: Any = None  # the trio-side objects (made in serve)
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=MOUNT_WORKERS, thread_name_prefix="lazy-mount")

    # -- gRPC threads ------------------------------------------------------------------------------

    def _call(self, fn: Any, *args: Any) -> Any:
        import trio

        if self._token is None:
            raise SnapshotError("the lazy layer file system is not serving")
        return trio.from_thread.run_sync(fn, *args, trio_token=self._token)

    def mount(self, name: str, labels: Mapping[str, str]) -> Path | None:
        image_ref = labels.get(CRI_IMAGE_REF, "")
        manifest = labels.get(CRI_MANIFEST_DIGEST, "")
        layer = labels.get(CRI_LAYER_DIGEST, "")
        if not (image_ref and manifest and layer):
            log(_log, logging.DEBUG, "no image labels: layer not served lazily", snapshot=name)
            return None
        if not _DIGEST.fullmatch(layer) or not _DIGEST.fullmatch(manifest):
            return None
        future = self._pool.submit(self._prepare, image_ref, manifest, layer, labels.get(SOCI_INDEX_DIGEST, ""),
                                   labels.get(SOCI_SIZE, ""))
        try:
            prepared = future.result(timeout=max(1, self.config.mount_timeout_sec))
        except concurrent.futures.TimeoutError:
            log(_log, logging.WARNING, "layer not mounted within mount_timeout_sec; containerd applies it",
                snapshot=name, layer=layer, timeout_s=self.config.mount_timeout_sec)
            return None
        if prepared is None:
            return None
        entry = directory_name(layer, prepared.artifacts.bottom)
        path: Path | None = self._call(self._runtime.reuse, name, entry)
        if path is None:
            # the tree is built here, not on the trio thread that serves FUSE requests
            began = time.monotonic()
            tree, table = prepared.tree(), prepared.table()
            log(_log, logging.DEBUG, "layer tree built", layer=layer, nodes=tree.node_count,
                ms=round((time.monotonic() - began) * 1000, 1))
            path = self._call(self._runtime.attach, name, entry, prepared.artifacts, prepared.repo, tree, table)
        return path

    def _prepare(self, image_ref: str, manifest: str, layer: str, explicit: str, size_label: str) -> _Prepared | None:
        repo = self.remotes.repository(image_ref)
        began = time.monotonic()
        artifacts = self.images.layer(repo, manifest, layer, explicit)
        log(_log, logging.DEBUG, "SOCI artifacts ready", layer=layer, ms=round((time.monotonic() - began) * 1000, 1))
        if artifacts is None:
            log(_log, logging.INFO, "no ztoc for the layer: containerd applies it", image=image_ref, layer=layer)
            return None
        ztoc = artifacts.ztoc
        if size_label.isdigit() and int(size_label) != ztoc.compressed_archive_size:
            log(_log, logging.WARNING, "the ztoc was built for a blob of another size: layer not served lazily",
                layer=layer, size=int(size_label), ztoc_size=ztoc.compressed_archive_size)
            return None
        return _Prepared(artifacts, repo)

    def check(self, name: str, labels: Mapping[str, str]) -> bool:
        if self._token is None:
            return False
        mounted: bool = self._call(self._runtime.is_mounted, name)
        return mounted

    def unmount(self, name: str) -> None:
        if self._token is not None:
            self._call(self._runtime.detach, name)

    # -- trio ------------------------------------------------------------------------------------

    async def serve(self, *, task_status: TaskStatus) -> None:
        import trio

        from socikit.snapshotter.lazyruntime import LazyRuntime

        detached = _detach_stale_mounts(self.mountpoint)
        if detached:
            log(_log, logging.INFO, "stale FUSE mount of an earlier run detached", mounts=detached)
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        runtime = LazyRuntime(self.config, mountpoint=self.mountpoint, cache=self.cache, images=self.images,
                              events=self.events, limiter=trio.CapacityLimiter(self.span_concurrency), logger=_lazy_log)
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(runtime.run)
                self._runtime = runtime
                self._token = trio.lowlevel.current_trio_token()
                task_status.started()
        finally:
            self._token = None
            self._pool.shutdown(wait=False, cancel_futures=True)
            self.remotes.close()

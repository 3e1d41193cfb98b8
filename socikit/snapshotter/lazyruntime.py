"""The trio side of `LazyLayers`: the FUSE file system, the background fetcher and the table of
mounted layers, all used on the trio thread only (gRPC threads call in through
`trio.from_thread.run_sync`). Kept apart so that importing the snapshotter does not load trio
and pyfuse3."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import trio

from socikit.lazy.artifacts import LayerArtifacts, SociImages
from socikit.lazy.background import BackgroundFetcher
from socikit.lazy.cache import SpanCache
from socikit.lazy.events import LazyEvents
from socikit.lazy.fetcher import SpanFetcher
from socikit.lazy.fusefs import FuseOptions, LayerDirectory, LazyFileSystem, MountedLayer
from socikit.lazy.remote import RemoteRepository
from socikit.lazy.tree import LayerTree
from socikit.snapshotter.config import SnapshotterConfig
from socikit.snapshotter.jsonlog import log
from socikit.ztoc.spans import SpanTable

__all__ = ["LazyRuntime"]


class LazyRuntime:
    def __init__(self, config: SnapshotterConfig, *, mountpoint: Path, cache: SpanCache, images: SociImages,
                 events: LazyEvents, limiter: trio.CapacityLimiter, logger: logging.Logger) -> None:
        self.config = config
        self.mountpoint = mountpoint
        self.cache = cache
        self.images = images
        self.events = events
        self.limiter = limiter
        self.logger = logger
        self.directory = LayerDirectory()
        fuse = config.fuse
        self.fs = LazyFileSystem(self.directory, events=events, logger=logger, options=FuseOptions(
            entry_timeout=fuse.entry_timeout, attr_timeout=fuse.attr_timeout, negative_timeout=fuse.negative_timeout,
            log_operations=fuse.log_fuse_operations, prefetch_on_open=config.lazy.prefetch_on_open))
        background = config.background_fetch
        self.background = BackgroundFetcher(
            silence_period=background.silence_period_msec / 1000, fetch_period=background.fetch_period_msec / 1000,
            max_queue=background.max_queue_size, drop_policy=background.drop_policy, enabled=not background.disable,
            metrics_period=background.emit_metric_period_sec, events=events, logger=logger)
        self.names: dict[str, str] = {}  # snapshot (chain ID) -> directory name
        self.layers: dict[str, tuple[MountedLayer, str]] = {}  # directory name -> (layer, ztoc digest)
        self.fetchers: dict[str, SpanFetcher] = {}  # layer digest -> its fetcher (shared by both forms)

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(self.fs.serve, self.mountpoint)
            await nursery.start(self.background.run)
            task_status.started()

    def reuse(self, name: str, entry: str) -> Path | None:
        """The directory of an attached layer, now also used by snapshot `name`; None if absent."""
        if entry not in self.layers:
            return None
        self.names[name] = entry
        return self.mountpoint / entry

    def attach(self, name: str, entry: str, artifacts: LayerArtifacts, repo: RemoteRepository, tree: LayerTree,
               table: SpanTable) -> Path:
        digest = artifacts.layer_digest
        if entry not in self.layers:
            blob = self.config.blob
            fetcher = self.fetchers.get(digest)
            if fetcher is None:
                fetcher = SpanFetcher(digest, table, repo.range_reader(digest), self.cache, limiter=self.limiter,
                                      timeout=blob.fetching_timeout_sec,
                                      verify_retries=blob.max_span_verification_retries, events=self.events,
                                      logger=self.logger)
                self.fetchers[digest] = fetcher
                self.background.add(fetcher, prefetch=artifacts.prefetch_spans)
            layer = self.fs.attach(tree, fetcher, label=digest)
            self.layers[entry] = (layer, artifacts.ztoc_descriptor.digest)
            self.directory.layers[entry] = layer
            log(self.logger, logging.INFO, "layer mounted lazily", layer=digest, snapshot=name, directory=entry,
                spans=fetcher.span_count, cached_spans=fetcher.span_count - len(fetcher.missing_spans()),
                prefetch_spans=len(artifacts.prefetch_spans))
        self.names[name] = entry
        return self.mountpoint / entry

    def is_mounted(self, name: str) -> bool:
        return name in self.names

    def detach(self, name: str) -> None:
        entry = self.names.pop(name, None)
        if entry is None or entry in self.names.values():
            return
        layer, ztoc_digest = self.layers.pop(entry)
        self.directory.layers.pop(entry, None)
        self.fs.invalidate(None, entry)
        self.fs.detach(layer)
        if not any(other.fetcher is layer.fetcher for other, _ in self.layers.values()):
            del self.fetchers[layer.label]
            self.background.remove(layer.fetcher)
            self.images.forget(ztoc_digest)
        log(self.logger, logging.INFO, "lazy layer released", layer=layer.label, snapshot=name, directory=entry)

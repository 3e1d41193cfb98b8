"""`socikit store`'s composition root and main loop.

    run_store(options)
      ├─ logging (JSON lines on stderr), FUSE available, lock the root (0700), detach a dead mount
      │  an earlier store left, create the mountpoint
      ├─ the resolver (registry clients, SOCI artifacts and layer records under the root), the span
      │  cache (`<root>/spans`)
      └─ trio.run(_serve)                                  (main thread: signals arrive here)
           signal receiver (SIGTERM, SIGINT), then one nursery:
             1. the FUSE file system (socikit.lazy) with the store's root provider, mounted at
                the mountpoint (writable: `use` creates and layer-directory removals reach it)
             2. the background fetcher
             3. the status file writer (`<root>/status.json`)
             4. wait for a signal → cancel the nursery: the file system unmounts (detached, so
                the overlay mounts of running containers do not keep it)
      finally: the last status (`"serving": false`), close the registry clients and the cache

Start-up problems raise ConfigError (one line, exit 1).
"""

from __future__ import annotations

import contextlib
import json
import logging
import signal
from typing import Any

from socikit.__about__ import __version__
from socikit.atomic import write_atomic
from socikit.daemonroot import locked_root
from socikit.errors import ConfigError
from socikit.jsonlog import configure, log
from socikit.lazy.fuseprobe import fuse_unavailable
from socikit.store.mountpoint import detach_dead_mount, prepare_mountpoint
from socikit.store.options import StoreOptions

__all__ = ["LOGGER_NAME", "run_store"]

LOGGER_NAME = "socikit.store"
LOOKUP_THREADS = 16  # lookups resolved at once (each may wait for the registry)


def run_store(options: StoreOptions) -> None:
    """Serve until SIGTERM or SIGINT (see the module doc)."""
    import trio

    from socikit.lazy.cache import SpanCache
    from socikit.store.resolve import Resolver

    logger = configure(LOGGER_NAME, options.log_level, quiet=("urllib3",))
    reason = fuse_unavailable()
    if reason is not None:
        raise ConfigError(f"the store needs FUSE: {reason}")
    with locked_root(options.root, holder="store"):
        if detach_dead_mount(options.mountpoint):
            log(logger, logging.INFO, "dead mount of an earlier store detached", mountpoint=str(options.mountpoint))
        prepare_mountpoint(options.mountpoint)
        resolver = Resolver(options.config, state=options.root)
        cache = SpanCache(options.root / "spans", max_bytes=options.config.cache.max_bytes)
        try:
            trio.run(_Store(options, resolver, cache, logger).serve)
        finally:
            resolver.close()
            cache.flush()
    log(logger, logging.INFO, "stopped")


class _Store:
    def __init__(self, options: StoreOptions, resolver: Any, cache: Any, logger: logging.Logger) -> None:
        self.options = options
        self.resolver = resolver
        self.cache = cache
        self.logger = logger

    async def serve(self) -> None:
        import trio

        from socikit.lazy.background import BackgroundFetcher
        from socikit.lazy.fusefs import FuseOptions, LazyFileSystem
        from socikit.store.provider import StoreProvider
        from socikit.store.stats import STATUS_FILE, STATUS_PERIOD_S, StoreStats

        config = self.options.config
        lazy_logger = logging.getLogger(LOGGER_NAME + ".lazy")
        stats = StoreStats(traffic=self.resolver.traffic, mountpoint=self.options.mountpoint)
        background_config = config.background_fetch
        background = BackgroundFetcher(
            silence_period=background_config.silence_period_msec / 1000,
            fetch_period=background_config.fetch_period_msec / 1000, max_queue=background_config.max_queue_size,
            drop_policy=background_config.drop_policy, enabled=not background_config.disable,
            metrics_period=background_config.emit_metric_period_sec, events=stats, logger=lazy_logger)
        concurrency = config.max_concurrency if config.max_concurrency > 0 else 1000
        provider = StoreProvider(self.resolver, cache=self.cache, background=background, stats=stats,
                                 span_limiter=trio.CapacityLimiter(concurrency),
                                 lookup_limiter=trio.CapacityLimiter(LOOKUP_THREADS),
                                 fetch_timeout=float(config.blob.fetching_timeout_sec),
                                 verify_retries=config.blob.max_span_verification_retries, logger=lazy_logger)
        fuse = config.fuse
        fs = LazyFileSystem(provider, events=stats, logger=lazy_logger, options=FuseOptions(
            fsname="socikit-store", read_only=False, entry_timeout=fuse.entry_timeout,
            attr_timeout=fuse.attr_timeout, negative_timeout=fuse.negative_timeout))
        provider.fs = fs
        stats.attached = lambda: len(fs.layers)
        status_path = self.options.root / STATUS_FILE
        written: dict[str, Any] = {}

        async def write_status() -> None:
            document = stats.status()
            if document != written:
                data = (json.dumps(document, indent=1, sort_keys=True) + "\n").encode()
                await trio.to_thread.run_sync(write_atomic, status_path, data)
                written.clear()
                written.update(document)

        async def status_writer() -> None:
            while True:
                await write_status()
                await trio.sleep(STATUS_PERIOD_S)

        try:
            with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async with trio.open_nursery() as nursery:
                    try:
                        await nursery.start(fs.serve, self.options.mountpoint)
                    except (RuntimeError, OSError) as exc:  # pyfuse3 could not mount
                        raise ConfigError(f"cannot mount the store at {self.options.mountpoint}: {exc}") from None
                    await nursery.start(background.run)
                    stats.serving = True
                    nursery.start_soon(status_writer)
                    log(self.logger, logging.INFO, "serving", mountpoint=str(self.options.mountpoint),
                        root=str(self.options.root), version=__version__)
                    async for signum in signals:
                        log(self.logger, logging.INFO, "stopping", signal=signal.Signals(signum).name)
                        break
                    nursery.cancel_scope.cancel()
        finally:
            stats.serving = False
            with trio.CancelScope(shield=True):
                with contextlib.suppress(OSError):
                    await write_status()
            log(self.logger, logging.INFO, "unmounted", mountpoint=str(self.options.mountpoint),
                uses=stats.counts.uses, releases=stats.counts.releases,
                registry=self.resolver.traffic.snapshot())

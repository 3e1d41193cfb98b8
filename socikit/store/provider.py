"""`StoreProvider`: the store's directories, as socikit.lazy's FUSE file system asks for them.

The root provider of `socikit.lazy.fusefs.LazyFileSystem` for the additional layer store
protocol (`layout`):

    <mount>/                                  the store root: lists the references served so far
      <base64(reference)>/                    any valid reference (nothing is fetched for it)
        <layer digest | ztoc digest>/         exists when `Resolver.layer` serves it (resolved on
                                              a worker thread; the answer is kept)
          diff                                the layer's tree (`DiffTree`), attached on first lookup
          info                                the `info` JSON
          blob                                the compressed layer (`BlobReader`)
          use                                 never exists: creating it is a use (ENOENT)
        rmdir <digest>                        a release (ENOENT)

Every layer key gets a directory of its own (a directory inode may have one name only), while
all keys of one layer digest share its `SpanFetcher` and `BlobReader`, so its spans are fetched
once. A key's use count (`usecount.UseCounts`) going back to zero (`podman rmi`) detaches its
`diff` and forgets the key; a later lookup resolves it again (from the record on disk). Keys used
by podman before the store restarted have no count: their releases are counted as unmatched.

Everything here runs on the trio thread of the file system.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Hashable, Sequence
from typing import Any

import trio

from socikit.errors import SocikitError
from socikit.jsonlog import log
from socikit.lazy.background import BackgroundFetcher
from socikit.lazy.cache import SpanCache
from socikit.lazy.fetcher import SpanFetcher, run_in_thread
from socikit.lazy.fusefs import LazyFileSystem, MountedLayer, Node, VirtualDir, VirtualFile
from socikit.store import layout
from socikit.store.blob import BlobReader
from socikit.store.layout import BLOB, DIFF, INFO, USE, LayerEntry, LayerKey, ReferenceDir, StoreRoot
from socikit.store.resolve import ResolvedLayer, Resolver
from socikit.store.stats import StoreStats
from socikit.store.usecount import UseCounts

__all__ = ["DIRECTORY_MODE", "StoreProvider"]

DIRECTORY_MODE = 0o755


class StoreProvider:
    def __init__(self, resolver: Resolver, *, cache: SpanCache, background: BackgroundFetcher,
                 stats: StoreStats, span_limiter: trio.CapacityLimiter,
                 lookup_limiter: trio.CapacityLimiter, fetch_timeout: float, verify_retries: int,
                 logger: logging.Logger) -> None:
        self.resolver = resolver
        self.cache = cache
        self.background = background
        self.counts: UseCounts[LayerKey] = UseCounts(on_idle=self.idle)
        self.stats = stats
        stats.counts = self.counts
        self.span_limiter = span_limiter
        self.lookup_limiter = lookup_limiter
        self.fetch_timeout = fetch_timeout
        self.verify_retries = verify_retries
        self.logger = logger
        self.fs: LazyFileSystem | None = None  # set once the file system exists (it takes this provider)
        self.resolved: dict[LayerKey, ResolvedLayer] = {}
        self.mounted: dict[LayerKey, MountedLayer] = {}
        self.fetchers: dict[str, SpanFetcher] = {}  # by layer digest
        self.blobs: dict[str, BlobReader] = {}  # by layer digest

    # -- the root provider seam -------------------------------------------------------------------

    async def lookup(self, parent: Hashable | None, name: str) -> Node | None:
        node = layout.lookup(_node(parent), name)
        if isinstance(node, ReferenceDir):
            return VirtualDir(node, mode=DIRECTORY_MODE)
        if isinstance(node, LayerKey):
            return VirtualDir(node, mode=DIRECTORY_MODE) if await self._resolve(node) is not None else None
        if isinstance(node, LayerEntry):
            resolved = await self._resolve(node.layer)
            if resolved is not None:
                return self._file(node, resolved)
        return None

    async def listdir(self, parent: Hashable | None) -> Sequence[tuple[str, Node]]:
        directory = _node(parent)
        if isinstance(directory, StoreRoot):
            references = sorted({key.reference for key in self.resolved})
            return [(layout.encode_reference(r), VirtualDir(ReferenceDir(r), mode=DIRECTORY_MODE)) for r in references]
        if isinstance(directory, ReferenceDir):
            digests = sorted(key.digest for key in self.resolved if key.reference == directory.reference)
            return [(d, VirtualDir(LayerKey(directory.reference, d), mode=DIRECTORY_MODE)) for d in digests]
        if isinstance(directory, LayerKey):
            resolved = self.resolved.get(directory)
            if resolved is None:
                return []
            entries = []
            for name in (DIFF, INFO, BLOB):
                found = self._file(LayerEntry(directory, name), resolved)
                if found is not None:
                    entries.append((name, found))
            return entries
        return []

    async def change(self, operation: str, parent: Hashable | None, name: str) -> None:
        """containers/storage's notifications: creating `<layer dir>/use` is a use, removing the
        layer directory a release; both are answered ENOENT. Any other change: EROFS."""
        node = layout.lookup(_node(parent), name)
        if operation in ("create", "mknod") and isinstance(node, LayerEntry) and node.name == USE:
            self.counts.use(node.layer)
            log(self.logger, logging.DEBUG, "use", reference=node.layer.reference, digest=node.layer.digest,
                count=self.counts.count(node.layer))
            raise OSError(errno.ENOENT, "use noted")
        if operation == "rmdir" and isinstance(node, LayerKey):
            self.counts.release(node)
            log(self.logger, logging.DEBUG, "release", reference=node.reference, digest=node.digest,
                count=self.counts.count(node))
            raise OSError(errno.ENOENT, "release noted")
        raise OSError(errno.EROFS, "the store is read-only")

    # -- keys -------------------------------------------------------------------------------------------

    async def _resolve(self, key: LayerKey) -> ResolvedLayer | None:
        resolved = self.resolved.get(key)
        if resolved is not None:
            return resolved
        try:
            resolved = await run_in_thread(self.resolver.layer, key, limiter=self.lookup_limiter)
        except SocikitError as exc:
            self.stats.lookup("failed")
            log(self.logger, logging.WARNING, "lookup failed: podman downloads the layer", reference=key.reference,
                digest=key.digest, error=str(exc))
            return None
        except OSError as exc:
            self.stats.lookup("failed")
            log(self.logger, logging.ERROR, "lookup failed: podman downloads the layer", reference=key.reference,
                digest=key.digest, error=f"{type(exc).__name__}: {exc}")
            return None
        if resolved is None:
            self.stats.lookup("not_served")
            log(self.logger, logging.DEBUG, "not served: podman downloads the layer", reference=key.reference,
                digest=key.digest)
            return None
        if key not in self.resolved:
            self.resolved[key] = resolved
            self.stats.lookup("served")
            log(self.logger, logging.INFO, "layer served", reference=key.reference, digest=key.digest,
                layer=resolved.layer.digest, form=resolved.form.value, restored=resolved.restored)
        return self.resolved[key]

    def _file(self, entry: LayerEntry, resolved: ResolvedLayer) -> Node | None:
        if entry.name == DIFF:
            return self._diff(entry.layer, resolved)
        if entry.name == INFO:
            return VirtualFile.of_bytes(entry, resolved.info)
        if entry.name == BLOB:
            reader = self._blob(resolved)

            async def read(offset: int, size: int) -> bytes:
                data = await reader.read(offset, size)
                self.stats.blob_read(len(data))
                return data

            return VirtualFile(entry, reader.size, read)
        return None

    def _diff(self, key: LayerKey, resolved: ResolvedLayer) -> MountedLayer:
        layer = self.mounted.get(key)
        if layer is None or not layer.attached:
            assert self.fs is not None
            layer = self.fs.attach(resolved.tree, self._fetcher(resolved), label=resolved.layer.digest)
            self.mounted[key] = layer
            fetcher = layer.fetcher
            log(self.logger, logging.INFO, "layer attached", reference=key.reference, digest=key.digest,
                spans=fetcher.span_count, cached_spans=fetcher.span_count - len(fetcher.missing_spans()))
        return layer

    def _fetcher(self, resolved: ResolvedLayer) -> SpanFetcher:
        digest = resolved.layer.digest
        fetcher = self.fetchers.get(digest)
        if fetcher is None:
            fetcher = SpanFetcher(digest, resolved.table, resolved.repository.range_reader(digest), self.cache,
                                  limiter=self.span_limiter, timeout=self.fetch_timeout,
                                  verify_retries=self.verify_retries, events=self.stats, logger=self.logger)
            self.fetchers[digest] = fetcher
            self.background.add(fetcher, prefetch=resolved.prefetch_spans)
        return fetcher

    def _blob(self, resolved: ResolvedLayer) -> BlobReader:
        digest = resolved.layer.digest
        reader = self.blobs.get(digest)
        if reader is None:
            uncompressed = resolved.layer.compression == layout.COMPRESSION_NONE
            reader = BlobReader(digest, resolved.layer.descriptor.size, resolved.repository.range_reader(digest),
                                limiter=self.span_limiter, timeout=self.fetch_timeout,
                                spans=self._fetcher(resolved) if uncompressed else None,
                                spans_end=resolved.ztoc.uncompressed_archive_size, spawn=self._spawn)
            self.blobs[digest] = reader
        return reader

    def _spawn(self, fn: Any, *args: Any) -> None:
        if self.fs is not None:
            self.fs.start_soon(fn, *args)

    # -- releases ---------------------------------------------------------------------------------------

    def idle(self, key: LayerKey) -> None:
        """`key` has no user left (`UseCounts.on_idle`): detach its `diff`, forget it, and let its
        layer's fetcher and blob reader go when no other key uses that layer."""
        layer = self.mounted.pop(key, None)
        resolved = self.resolved.pop(key, None)
        if layer is not None and self.fs is not None:
            self.fs.invalidate(key, DIFF)
            self.fs.detach(layer)
        if resolved is None:
            return
        digest = resolved.layer.digest
        if not any(other.layer.digest == digest for other in self.resolved.values()):
            fetcher = self.fetchers.pop(digest, None)
            if fetcher is not None:
                self.background.remove(fetcher)
            self.blobs.pop(digest, None)
            self.resolver.images.forget(resolved.layer.toc_digest)
        log(self.logger, logging.INFO, "layer released", reference=key.reference, digest=key.digest)


def _node(parent: Hashable | None) -> layout.Node:
    if parent is None:
        return StoreRoot()
    if isinstance(parent, ReferenceDir | LayerKey | LayerEntry):
        return parent
    raise OSError(errno.ENOENT, "not a store directory")

"""From a lookup (image reference, digest) to a layer the store serves: the store's registry edge.

For a reference the resolver fetches, once, what the store needs of the image:

1. the manifest the reference names, and for an image index the entry for the host platform
   (podman pulls that one too);
2. the config, for the layers' diff_ids (`info` names them);
3. the SOCI index and every ztoc it lists, the snapshotter's way and with its code
   (`socikit.lazy.artifacts.SociImages`: the v2 annotation, and v1 through the referrers API or
   its fallback tag when `[pull_modes.soci_v1]` is on; kept on disk under the store's root);

and for each layer a lookup names, the last 4 bytes of a gzip layer (its uncompressed length mod
2**32, for `info`'s `diff-size`) and the layer's tree (`difftree.DiffTree`), built here, off the
FUSE loop. Registries are reached through `socikit.lazy.remote` as `[resolver.host."<host>"]`
says (mirrors first, plain HTTP, TLS), with the credentials of the configured Docker config,
and every request of a lookup within `[resolver] lookup_timeout_sec`: podman waits for the answer.

The image is cached per reference and its SOCI artifacts once per platform manifest (a tag and a
digest reference to one image share them); a lookup naming a digest the cached image does not
have (the tag moved) resolves the reference again, at most once per `REFRESH_AFTER_S`. A
reference that fails to resolve fails again without a request for `FAILURE_TTL_S` (podman looks
every layer of a pull up).

A served key is recorded on disk (`records`) with the ztoc in the artifact store: a later lookup
of it, in this process or after a restart, is answered from there without the registry.

`Resolver.layer` returns None for what the store does not serve (no SOCI index, a layer without a
usable ztoc, a digest the image does not have) and raises SocikitError subclasses for failures
(registry, format): either way the store answers ENOENT and podman downloads the layer itself.

Blocking (HTTP, disk); thread-safe (FUSE lookups arrive on worker threads).
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from socikit.content.reference import parse_docker_reference
from socikit.errors import FormatError, ImageError, RegistryError, SocikitError
from socikit.lazy.artifacts import ArtifactStore, SociImages
from socikit.lazy.remote import RemoteRepository, Remotes
from socikit.oci import mediatypes as mt
from socikit.oci.descriptor import Descriptor, Platform
from socikit.oci.manifest import ImageConfig, ImageIndex, ImageManifest
from socikit.oci.platform import host_platform, matches
from socikit.registry.transfer import RetryPolicy
from socikit.soci.discover import PullModes, platform_manifest_entries
from socikit.store.config import StoreConfig, registry_hosts
from socikit.store.difftree import DiffTree
from socikit.store.layout import (
    COMPRESSION_GZIP,
    ImageLayers,
    IndexedLayer,
    LayerForm,
    LayerKey,
    gzip_uncompressed_size,
    image_layers,
    info_json,
)
from socikit.store.records import LayerRecord, LayerRecords
from socikit.ztoc.model import Ztoc
from socikit.ztoc.serialize import loads as load_ztoc
from socikit.ztoc.spans import SpanTable, span_table

logger = logging.getLogger(__name__)

REFRESH_AFTER_S = 1.0  # a moved tag is looked for again at most this often
FAILURE_TTL_S = 10.0  # a reference that failed to resolve fails again without asking, this long
MAX_CACHED_IMAGES = 64
MAX_CACHED_LAYERS = 256  # resolved layers kept in memory (the records on disk keep all of them)
LOOKUP_ATTEMPTS = 3


@dataclass
class RegistryTraffic:
    """Requests the store made to registries, and the body bytes they brought (thread-safe)."""

    manifests: int = 0
    manifest_bytes: int = 0
    blobs: int = 0
    blob_bytes: int = 0
    ranges: int = 0
    range_bytes: int = 0
    referrers: int = 0
    _lock: threading.Lock = dataclasses.field(default_factory=threading.Lock, repr=False, compare=False)

    def count(self, kind: str, size: int) -> None:
        with self._lock:
            setattr(self, kind, getattr(self, kind) + 1)
            if kind != "referrers":
                setattr(self, kind[:-1] + "_bytes", getattr(self, kind[:-1] + "_bytes") + size)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if not f.name.startswith("_")}


class CountingRepository(RemoteRepository):
    """An image's repository (socikit.lazy.remote) whose every request is counted."""

    def __init__(self, remotes: Remotes, image_ref: str, traffic: RegistryTraffic) -> None:
        parsed = parse_docker_reference(image_ref)
        super().__init__(remotes, image_ref, parsed.host, parsed.repository)
        self.traffic = traffic

    def get_manifest(self, reference: str) -> tuple[bytes, Descriptor]:
        data, desc = super().get_manifest(reference)
        self.traffic.count("manifests", len(data))
        return data, desc

    def read_manifest(self, digest: str) -> bytes:
        data = super().read_manifest(digest)
        self.traffic.count("manifests", len(data))
        return data

    def read_blob(self, desc: Descriptor) -> bytes:
        data = super().read_blob(desc)
        self.traffic.count("blobs", len(data))
        return data

    def read_range(self, digest: str, start: int, end: int) -> bytes:
        data = super().read_range(digest, start, end)
        self.traffic.count("ranges", len(data))
        return data

    def referrers(self, subject: str, artifact_type: str) -> list[Descriptor]:
        found = super().referrers(subject, artifact_type)
        self.traffic.count("referrers", 0)
        return found


def store_remotes(config: StoreConfig) -> Remotes:
    """Registry clients as the config says: lookups bounded by `lookup_timeout_sec` (a few quick
    attempts), layer bytes by `[blob]`."""
    lookup = float(config.resolver.lookup_timeout_sec)
    blob = config.blob
    fetching = float(max(1, blob.fetching_timeout_sec))
    concurrency = config.max_concurrency if config.max_concurrency > 0 else 64
    return Remotes(
        registry_hosts(config),
        metadata_retry=RetryPolicy(attempts=LOOKUP_ATTEMPTS, initial_delay=0.1, max_delay=1.0, deadline=lookup,
                                   connect_timeout=min(3.0, lookup), read_timeout=lookup),
        span_retry=RetryPolicy(attempts=blob.max_retries + 1, initial_delay=blob.min_wait_msec / 1000,
                               max_delay=blob.max_wait_msec / 1000, deadline=fetching,
                               connect_timeout=min(3.0, fetching), read_timeout=min(30.0, fetching)),
        pool_size=min(concurrency, 64), docker_config=config.resolver.docker_config or None)


@dataclass(frozen=True)
class ResolvedImage:
    """What the store knows of the image one reference names."""

    reference: str
    repository: CountingRepository
    manifest_digest: str
    index_digest: str | None  # its SOCI index
    layers: ImageLayers
    resolved_at: float


@dataclass(frozen=True)
class ResolvedLayer:
    """A layer the store serves under `key`: the form it was asked in, the `info` bytes to show,
    its ztoc and tree, and where its bytes come from. `restored`: answered from the record on
    disk, not from the registry."""

    key: LayerKey
    form: LayerForm
    manifest_digest: str
    layer: IndexedLayer
    info: bytes
    ztoc: Ztoc
    tree: DiffTree
    prefetch_spans: tuple[int, ...]
    repository: CountingRepository
    restored: bool = False

    @property
    def table(self) -> SpanTable:
        return span_table(self.ztoc)


class Resolver:
    """Resolves lookups (see the module doc). Resolving one reference, or one key, is done once
    even when many lookups ask for it at the same time."""

    def __init__(self, config: StoreConfig, *, state: Path, remotes: Remotes | None = None,
                 platform: Platform | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self._own_remotes = remotes is None
        self.remotes = remotes if remotes is not None else store_remotes(config)
        self.artifacts = ArtifactStore(state / "artifacts")
        self.images = SociImages(self.artifacts, modes=PullModes(v2=config.pull_modes.soci_v2.enable,
                                                                  v1=config.pull_modes.soci_v1.enable))
        self.records = LayerRecords(state / "layers")
        self.traffic = RegistryTraffic()
        self.images_resolved = 0
        self._platform = platform or host_platform()
        self._clock = clock
        self._lock = threading.Lock()
        self._repositories: dict[str, CountingRepository] = {}
        self._images: collections.OrderedDict[str, ResolvedImage] = collections.OrderedDict()
        # (registry host, repository, platform manifest digest) -> the image
        self._by_manifest: collections.OrderedDict[tuple[str, str, str], ResolvedImage] = collections.OrderedDict()
        self._reference_locks: dict[str, threading.Lock] = {}
        self._key_locks: dict[LayerKey, threading.Lock] = {}
        self._failures: dict[str, tuple[float, SocikitError]] = {}
        self._served: collections.OrderedDict[LayerKey, ResolvedLayer] = collections.OrderedDict()

    def close(self) -> None:
        if self._own_remotes:
            self.remotes.close()

    # -- lookups ---------------------------------------------------------------------------------

    def layer(self, key: LayerKey) -> ResolvedLayer | None:
        """The layer `key` names, or None when the store does not serve it."""
        with self._lock:
            served = self._served.get(key)
            if served is not None:
                self._served.move_to_end(key)
                return served
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                served = self._served.get(key)
            if served is None:
                record = self.records.get(key)
                served = self._restore(record) if record is not None else None
                if served is None:
                    served = self._from_registry(key)
                if served is None:
                    return None
            with self._lock:
                self._served[key] = served
                self._served.move_to_end(key)
                while len(self._served) > MAX_CACHED_LAYERS:
                    self._served.popitem(last=False)
            return served

    def _repository(self, reference: str) -> CountingRepository:
        with self._lock:
            repository = self._repositories.get(reference)
            if repository is None:
                repository = self._repositories[reference] = CountingRepository(self.remotes, reference, self.traffic)
            return repository

    def _tree(self, key: LayerKey, layer: IndexedLayer, ztoc: Ztoc, *, xattrs: bool) -> DiffTree | None:
        """The layer's tree, or None (logged) when its ztoc cannot serve it."""
        try:
            if ztoc.compressed_archive_size != layer.descriptor.size:
                raise FormatError(f"its ztoc was built for {ztoc.compressed_archive_size} compressed bytes, "
                                  f"the manifest says {layer.descriptor.size}")
            span_table(ztoc)
            return DiffTree(ztoc, xattrs=xattrs)
        except SocikitError as exc:
            logger.warning("%s: layer %s not served: %s", key.reference, layer.digest, exc)
            return None

    def _restore(self, record: LayerRecord) -> ResolvedLayer | None:
        """The layer a record on disk names, with its ztoc from the artifact store; None when the
        ztoc is gone or damaged (the registry is asked again)."""
        data = self.artifacts.get(record.layer.ztoc.digest)
        if data is None:
            return None
        try:
            ztoc = load_ztoc(data)
        except SocikitError:
            return None
        tree = self._tree(record.key, record.layer, ztoc, xattrs=not record.disable_xattrs)
        if tree is None:
            return None
        info = info_json(record.layer, record.form, diff_size=record.diff_size)
        return ResolvedLayer(record.key, record.form, record.manifest_digest, record.layer, info, ztoc, tree,
                             record.prefetch_spans, self._repository(record.key.reference), restored=True)

    def _from_registry(self, key: LayerKey) -> ResolvedLayer | None:
        image = self.image(key.reference)
        found = image.layers.find(key.digest)
        if found is None and not image.layers.knows(key.digest) and self._may_refresh(image):
            image = self.image(key.reference, refresh=True)
            found = image.layers.find(key.digest)
        if found is None:
            return None
        layer, form = found
        artifacts = self.images.layer(image.repository, image.manifest_digest, layer.digest)
        if artifacts is None:
            return None
        tree = self._tree(key, layer, artifacts.ztoc, xattrs=not artifacts.disable_xattrs)
        if tree is None:
            return None
        diff_size = self._diff_size(image.repository, layer, artifacts.ztoc) if form is LayerForm.BLOB_DIGEST else -1
        record = LayerRecord(key, form, image.manifest_digest, layer, diff_size, artifacts.disable_xattrs,
                             artifacts.prefetch_spans)
        try:
            self.records.put(record)
        except OSError as exc:  # served all the same; a restart asks the registry again
            logger.warning("record of %s %s not written: %s", key.reference, key.digest, exc.strerror or exc)
        return ResolvedLayer(key, form, image.manifest_digest, layer, info_json(layer, form, diff_size=diff_size),
                             artifacts.ztoc, tree, artifacts.prefetch_spans, image.repository)

    def _may_refresh(self, image: ResolvedImage) -> bool:
        """A tag may have moved; a digest reference never does."""
        return not parse_docker_reference(image.reference).digest and \
            self._clock() - image.resolved_at >= REFRESH_AFTER_S

    def image(self, reference: str, *, refresh: bool = False) -> ResolvedImage:
        """The image `reference` names (cached unless `refresh`). Raises ImageError, FormatError,
        RegistryError."""
        with self._lock:
            cached = self._images.get(reference)
            if cached is not None and not refresh:
                self._images.move_to_end(reference)
                return cached
            lock = self._reference_locks.setdefault(reference, threading.Lock())
        with lock:
            with self._lock:
                latest = self._images.get(reference)
                failed = self._failures.get(reference)
            if latest is not None and latest is not cached:
                return latest  # another thread resolved it meanwhile
            if failed is not None and self._clock() - failed[0] < FAILURE_TTL_S:
                raise failed[1]
            try:
                image = self._resolve(reference)
            except SocikitError as exc:
                # every layer of a pull is looked up: one failure answers them all for a while
                with self._lock:
                    self._failures[reference] = (self._clock(), exc)
                raise
            with self._lock:
                self._failures.pop(reference, None)
                self._images[reference] = image
                self._images.move_to_end(reference)
                while len(self._images) > MAX_CACHED_IMAGES:
                    self._images.popitem(last=False)
                self.images_resolved += 1
            return image

    # -- resolving ---------------------------------------------------------------------------------

    def _resolve(self, reference: str) -> ResolvedImage:
        parsed = parse_docker_reference(reference)
        repository = self._repository(reference)
        data, desc = repository.get_manifest(parsed.digest or parsed.tag)
        if desc.media_type in mt.INDEX_MEDIA_TYPES:
            entries = platform_manifest_entries(ImageIndex.from_json(data).entries)
            chosen = next((e for e in entries if e.platform is not None and matches(self._platform, e.platform)), None)
            if chosen is None:
                raise ImageError(f"{reference}: no manifest for {self._platform}")
            data, desc = repository.get_manifest(chosen.digest)
        if desc.media_type not in mt.MANIFEST_MEDIA_TYPES:
            raise ImageError(f"{reference}: {desc.media_type or 'an unknown media type'} is not an image manifest")
        key = (repository.host, repository.name, desc.digest)
        with self._lock:
            known = self._by_manifest.get(key)
            if known is not None:
                self._by_manifest.move_to_end(key)
        if known is not None:  # another reference (or an unmoved tag) naming a manifest already resolved
            return dataclasses.replace(known, reference=reference, repository=repository, resolved_at=self._clock())
        manifest = ImageManifest.from_json(data)
        config = ImageConfig.from_json(repository.read_blob(manifest.config))
        self.artifacts.put(desc.digest, data)  # SociImages reads the manifest from there
        soci = self.images.image(repository, desc.digest)
        layers = image_layers(manifest, config, soci.index if soci is not None else None)
        image = ResolvedImage(reference=reference, repository=repository, manifest_digest=desc.digest,
                              index_digest=soci.index_digest if soci is not None else None, layers=layers,
                              resolved_at=self._clock())
        with self._lock:
            self._by_manifest[key] = image
            while len(self._by_manifest) > MAX_CACHED_IMAGES:
                self._by_manifest.popitem(last=False)
        return image

    def _diff_size(self, repository: CountingRepository, layer: IndexedLayer, ztoc: Ztoc) -> int:
        """The uncompressed length of the layer: the blob's own for an uncompressed layer; for
        gzip, from the gzip trailer (one 4-byte range) and the ztoc (the tar's end)."""
        size = layer.descriptor.size
        if layer.compression != COMPRESSION_GZIP:
            return size
        if size < 4:
            raise FormatError(f"layer {layer.digest} is {size} bytes: too short for gzip")
        trailer = repository.read_range(layer.digest, size - 4, size)
        if len(trailer) != 4:
            raise RegistryError(f"layer {layer.digest}: the registry sent {len(trailer)} of its last 4 bytes")
        (isize,) = struct.unpack("<I", trailer)
        exact = gzip_uncompressed_size(ztoc.uncompressed_archive_size, isize)
        return exact if exact is not None else ztoc.uncompressed_archive_size


__all__ = [
    "FAILURE_TTL_S",
    "MAX_CACHED_IMAGES",
    "REFRESH_AFTER_S",
    "CountingRepository",
    "RegistryTraffic",
    "ResolvedImage",
    "ResolvedLayer",
    "Resolver",
    "store_remotes",
]

"""From a lookup (image reference, digest) to a layer the store serves: the store's registry edge.

For a reference the resolver fetches, once, what the store needs of the image:

1. the manifest the reference names, and for an image index the entry for the host platform
   (podman pulls that one too);
2. the config, for the layers' diff_ids (`info` names them);
3. the SOCI index, found the snapshotter's way (`socikit.soci.discover.find_soci_index`: the v2
   annotation, and v1 through the referrers API or its fallback tag when `[pull_modes.soci_v1]`
   is on);
4. every ztoc of the index, and the last 4 bytes of each gzip layer (its uncompressed length
   mod 2**32, for `info`'s `diff-size`).

Registries are reached as `[resolver.host."<host>"]` says (mirrors first, plain HTTP, TLS),
with the credentials of the configured Docker config. The result is cached per reference, and
steps 2 to 4 once per platform manifest (a tag and a digest reference to one image share them);
a lookup naming a digest the cached image does not have (the tag moved) resolves the reference
again, at most once per `REFRESH_AFTER_S`. A reference that fails to resolve fails again
without a request for `FAILURE_TTL_S` (podman looks every layer of a pull up). A layer once served
stays resolvable under its lookup key for the life of the resolver.

`Resolver.layer` returns None for what the store does not serve (no SOCI index, a layer without a
ztoc, a digest the image does not have) and raises for failures (registry, format): either way
the store answers ENOENT and podman downloads the layer itself.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import struct
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from socikit.content.reference import parse_docker_reference
from socikit.errors import FormatError, ImageError, RegistryError, ZtocFormatError
from socikit.oci import mediatypes as mt
from socikit.oci.descriptor import Descriptor, Platform
from socikit.oci.manifest import ImageConfig, ImageIndex, ImageManifest
from socikit.oci.platform import host_platform, matches
from socikit.registry.auth import load_docker_credentials
from socikit.registry.client import RegistryClient
from socikit.registry.referrers import fetch_referrers
from socikit.registry.transfer import RetryPolicy
from socikit.soci.discover import FoundIndex, PullModes, find_soci_index, platform_manifest_entries
from socikit.soci.index import SociIndex, parse_soci_index
from socikit.store.config import Endpoint, StoreConfig, registry_endpoints
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
from socikit.ztoc.model import Ztoc
from socikit.ztoc.serialize import loads as load_ztoc

logger = logging.getLogger(__name__)

REFRESH_AFTER_S = 1.0  # a moved tag is looked for again at most this often
FAILURE_TTL_S = 10.0  # a reference that failed to resolve fails again without asking, this long
MAX_CACHED_IMAGES = 64
CERTS_D = (Path("/etc/containers/certs.d"), Path("/etc/docker/certs.d"))


@dataclass(frozen=True)
class ResolvedImage:
    """What the store knows of the image one reference names."""

    reference: str
    repository: str
    endpoint: Endpoint
    manifest_digest: str
    index: FoundIndex | None
    layers: ImageLayers
    ztocs: Mapping[str, Ztoc]  # by ztoc digest, served layers only
    ztoc_bytes: Mapping[str, bytes]
    diff_sizes: Mapping[str, int]  # by layer digest, served layers only
    resolved_at: float


@dataclass(frozen=True)
class ResolvedLayer:
    """A layer the store serves under `key`: its image, the layer, the form it was asked in, the
    `info` bytes to show, and its ztoc."""

    key: LayerKey
    image: ResolvedImage
    layer: IndexedLayer
    form: LayerForm
    info: bytes
    ztoc: Ztoc
    ztoc_bytes: bytes


@dataclass
class ResolverStats:
    """Requests made, for logs and tests (bytes count bodies, not headers)."""

    images_resolved: int = 0
    manifests_fetched: int = 0
    blobs_fetched: int = 0
    blob_bytes: int = 0
    ranges_fetched: int = 0
    range_bytes: int = 0


def default_cert_dir(host: str) -> str:
    """podman's (then Docker's) certs.d directory for `host`, when it exists."""
    for base in CERTS_D:
        if (base / host).is_dir():
            return str(base / host)
    return ""


def open_endpoint_client(endpoint: Endpoint, docker_config: str = "") -> RegistryClient:
    """A registry client for one endpoint, with the Docker config's credentials for its registry."""
    credentials = load_docker_credentials(endpoint.registry, config_path=docker_config or None)
    retry = RetryPolicy(read_timeout=float(endpoint.request_timeout_sec)) if endpoint.request_timeout_sec else None
    return RegistryClient(endpoint.host, plain_http=endpoint.plain_http, tls_verify=endpoint.tls_verify,
                          cert_dir=(endpoint.cert_dir or default_cert_dir(endpoint.host)) or None,
                          credentials=credentials, retry=retry)


OpenClient = Callable[[Endpoint], RegistryClient]


class Resolver:
    """Resolves lookups against registries; thread-safe (FUSE lookups arrive on worker threads).
    Resolving one reference is done once even when many lookups ask for it at the same time."""

    def __init__(self, config: StoreConfig, *, open_client: OpenClient | None = None,
                 platform: Platform | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self._open_client = open_client or (lambda e: open_endpoint_client(e, config.resolver.docker_config))
        self._platform = platform or host_platform()
        self._clock = clock
        self._modes = PullModes(v2=config.pull_modes.soci_v2.enable, v1=config.pull_modes.soci_v1.enable)
        self._lock = threading.Lock()
        self._clients: dict[Endpoint, RegistryClient] = {}
        self._images: collections.OrderedDict[str, ResolvedImage] = collections.OrderedDict()
        # (endpoint host, repository, platform manifest digest) -> the image: the SOCI index and
        # ztocs are fetched once per manifest, whichever references name it
        self._by_manifest: collections.OrderedDict[tuple[str, str, str], ResolvedImage] = collections.OrderedDict()
        self._reference_locks: dict[str, threading.Lock] = {}
        self._failures: dict[str, tuple[float, Exception]] = {}
        self._served: dict[LayerKey, ResolvedLayer] = {}
        self.stats = ResolverStats()

    def close(self) -> None:
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()

    # -- lookups -------------------------------------------------------------------------------

    def layer(self, key: LayerKey) -> ResolvedLayer | None:
        """The layer `key` names, or None when the store does not serve it."""
        with self._lock:
            served = self._served.get(key)
        if served is not None:
            return served
        image = self.image(key.reference)
        found = image.layers.find(key.digest)
        if found is None and not image.layers.knows(key.digest) and self._may_refresh(image):
            image = self.image(key.reference, refresh=True)
            found = image.layers.find(key.digest)
        if found is None:
            return None
        layer, form = found
        info = info_json(layer, form, diff_size=image.diff_sizes[layer.digest])
        resolved = ResolvedLayer(key, image, layer, form, info, image.ztocs[layer.toc_digest],
                                 image.ztoc_bytes[layer.toc_digest])
        with self._lock:
            return self._served.setdefault(key, resolved)

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
            except (ImageError, FormatError, RegistryError) as exc:
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
                self.stats.images_resolved += 1
            return image

    def read_blob_range(self, layer: ResolvedLayer, start: int, end: int) -> bytes:
        """Bytes `[start, end)` of the layer's compressed blob (for `blob` reads and spans)."""
        client = self._client(layer.image.endpoint)
        data = client.get_blob_range(layer.image.repository, layer.layer.digest, start, end)
        with self._lock:
            self.stats.ranges_fetched += 1
            self.stats.range_bytes += len(data)
        return data

    # -- resolving -----------------------------------------------------------------------------

    def _client(self, endpoint: Endpoint) -> RegistryClient:
        with self._lock:
            client = self._clients.get(endpoint)
        if client is None:
            client = self._open_client(endpoint)
            with self._lock:
                kept = self._clients.setdefault(endpoint, client)
            if kept is not client:
                client.close()
            client = kept
        return client

    def _resolve(self, reference: str) -> ResolvedImage:
        parsed = parse_docker_reference(reference)
        repository = parsed.repository
        failures: list[RegistryError] = []
        for endpoint in registry_endpoints(self.config, parsed.host):
            client = self._client(endpoint)
            try:
                data, desc = self._manifest(client, repository, parsed.digest or parsed.tag)
            except RegistryError as exc:
                failures.append(exc)
                logger.debug("resolve %s at %s: %s", reference, endpoint.host, exc)
                continue
            return self._resolve_at(reference, endpoint, client, repository, data, desc)
        if len(failures) == 1:
            raise failures[0]
        raise RegistryError(f"cannot resolve {reference}: " + "; ".join(map(str, failures)))

    def _manifest(self, client: RegistryClient, repository: str, ref: str) -> tuple[bytes, Descriptor]:
        data, desc = client.get_manifest(repository, ref)
        with self._lock:
            self.stats.manifests_fetched += 1
        return data, desc

    def _blob(self, client: RegistryClient, repository: str, desc: Descriptor) -> bytes:
        data = client.get_blob(repository, desc)
        with self._lock:
            self.stats.blobs_fetched += 1
            self.stats.blob_bytes += len(data)
        return data

    def _resolve_at(self, reference: str, endpoint: Endpoint, client: RegistryClient, repository: str,
                    data: bytes, desc: Descriptor) -> ResolvedImage:
        if desc.media_type in mt.INDEX_MEDIA_TYPES:
            entries = platform_manifest_entries(ImageIndex.from_json(data).entries)
            chosen = next((e for e in entries if e.platform is not None and matches(self._platform, e.platform)), None)
            if chosen is None:
                raise ImageError(f"{reference}: no manifest for {self._platform}")
            data, desc = self._manifest(client, repository, chosen.digest)
        if desc.media_type not in mt.MANIFEST_MEDIA_TYPES:
            raise ImageError(f"{reference}: {desc.media_type or 'an unknown media type'} is not an image manifest")
        key = (endpoint.host, repository, desc.digest)
        with self._lock:
            known = self._by_manifest.get(key)
            if known is not None:
                self._by_manifest.move_to_end(key)
        if known is not None:  # another reference (or an unmoved tag) naming a manifest already resolved
            return dataclasses.replace(known, reference=reference, resolved_at=self._clock())
        image = self._resolve_manifest(reference, endpoint, client, repository, data, desc)
        with self._lock:
            self._by_manifest[key] = image
            while len(self._by_manifest) > MAX_CACHED_IMAGES:
                self._by_manifest.popitem(last=False)
        return image

    def _resolve_manifest(self, reference: str, endpoint: Endpoint, client: RegistryClient, repository: str,
                          data: bytes, desc: Descriptor) -> ResolvedImage:
        manifest = ImageManifest.from_json(data)
        config = ImageConfig.from_json(self._blob(client, repository, manifest.config))
        manifest_bytes = {desc.digest: data}

        def read_manifest(digest: str) -> bytes:
            if digest not in manifest_bytes:
                manifest_bytes[digest] = self._manifest(client, repository, digest)[0]
            return manifest_bytes[digest]

        def list_referrers(subject: str, artifact_type: str) -> list[Descriptor]:
            return fetch_referrers(client, repository, subject, artifact_type)

        found = find_soci_index(desc.digest, read_manifest=read_manifest, list_referrers=list_referrers,
                                modes=self._modes)
        index: SociIndex | None = None
        if found is not None:
            try:
                index = parse_soci_index(read_manifest(found.digest))
            except FormatError as exc:
                raise ImageError(f"{reference}: SOCI index {found.digest}: {exc}") from None
        layers = image_layers(manifest, config, index)
        ztocs: dict[str, Ztoc] = {}
        ztoc_bytes: dict[str, bytes] = {}
        diff_sizes: dict[str, int] = {}
        served = []
        for layer in layers.served:
            blob = self._blob(client, repository, layer.ztoc)
            try:
                ztoc = load_ztoc(blob)
            except ZtocFormatError as exc:
                logger.warning("%s: layer %s not served: its ztoc %s: %s", reference, layer.digest,
                               layer.toc_digest, exc)
                continue
            if ztoc.compressed_archive_size != layer.descriptor.size:
                logger.warning("%s: layer %s not served: its ztoc says %d compressed bytes, the manifest %d",
                               reference, layer.digest, ztoc.compressed_archive_size, layer.descriptor.size)
                continue
            ztocs[layer.toc_digest], ztoc_bytes[layer.toc_digest] = ztoc, blob
            diff_sizes[layer.digest] = self._diff_size(client, repository, layer, ztoc)
            served.append(layer)
        if len(served) != len(layers.served):
            layers = dataclasses.replace(layers, served=tuple(served))
        return ResolvedImage(reference=reference, repository=repository, endpoint=endpoint,
                             manifest_digest=desc.digest, index=found, layers=layers, ztocs=ztocs,
                             ztoc_bytes=ztoc_bytes, diff_sizes=diff_sizes, resolved_at=self._clock())

    def _diff_size(self, client: RegistryClient, repository: str, layer: IndexedLayer, ztoc: Ztoc) -> int:
        """The uncompressed length of the layer: the blob's own for an uncompressed layer; for
        gzip, from the gzip trailer (one 4-byte range) and the ztoc (the tar's end)."""
        size = layer.descriptor.size
        if layer.compression != COMPRESSION_GZIP:
            return size
        if size < 4:
            raise FormatError(f"layer {layer.digest} is {size} bytes: too short for gzip")
        trailer = client.get_blob_range(repository, layer.digest, size - 4, size)
        with self._lock:
            self.stats.ranges_fetched += 1
            self.stats.range_bytes += len(trailer)
        if len(trailer) != 4:
            raise RegistryError(f"layer {layer.digest}: the registry sent {len(trailer)} of its last 4 bytes")
        (isize,) = struct.unpack("<I", trailer)
        exact = gzip_uncompressed_size(ztoc.uncompressed_archive_size, isize)
        return exact if exact is not None else ztoc.uncompressed_archive_size


__all__ = [
    "FAILURE_TTL_S",
    "MAX_CACHED_IMAGES",
    "REFRESH_AFTER_S",
    "ResolvedImage",
    "ResolvedLayer",
    "Resolver",
    "ResolverStats",
    "default_cert_dir",
    "open_endpoint_client",
]

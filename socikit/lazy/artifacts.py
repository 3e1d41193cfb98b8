"""An image's SOCI artifacts for lazy serving: found, fetched once, kept on disk.

`SociImages.layer(repo, manifest_digest, layer_digest)` is the whole decision for one layer
(fact sheet §6.5, §7.5): find the SOCI index of the platform manifest (an explicit digest; v2
through the manifest's `com.amazon.soci.index-digest`; v1 through the referrers API or fallback
tag when enabled: `socikit.soci.discover.find_soci_index`), fetch the index (its config media
type must be a SOCI index type) and every ztoc and prefetch artifact it lists, once per manifest,
however many layers ask at the same time; then map the layer to its ztoc by
`com.amazon.soci.image-layer-digest`. None means "not lazily": no index, or no ztoc for that layer.
The platform manifest is kept too: its first layer is shown without whiteouts (`LayerTree`).

`ArtifactStore` keeps what was fetched under the daemon's root, content-addressed and verified
on read, plus which index each manifest uses, so a restarted daemon serves its layers again
without the registry. A manifest found to have no index is remembered in memory for a minute
(every layer of such an image asks), never on disk (an index may be pushed later).

Blocking (disk, HTTP); thread-safe.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from socikit.atomic import write_atomic
from socikit.errors import ImageError, SocikitError
from socikit.lazy.remote import RemoteRepository
from socikit.oci import mediatypes as mt
from socikit.oci.descriptor import Descriptor
from socikit.soci.discover import PullModes, find_soci_index
from socikit.soci.index import SociIndex, parse_soci_index
from socikit.soci.prefetch import loads_prefetch
from socikit.ztoc.model import Ztoc
from socikit.ztoc.serialize import loads as loads_ztoc

__all__ = ["ArtifactStore", "LayerArtifacts", "SociImages"]

_DIGEST = re.compile(r"sha256:([0-9a-f]{64})")
NO_INDEX_TTL_S = 60.0


def _hex(digest: str) -> str:
    match = _DIGEST.fullmatch(digest)
    if match is None:
        raise ImageError(f"not a sha256 digest: {digest[:80]!r}")
    return match.group(1)


class ArtifactStore:
    """`<directory>/blobs/<hex>` (indexes, ztocs, prefetch artifacts) and
    `<directory>/manifests/<manifest hex>[-<explicit index hex>]` (the index digest used)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        (directory / "blobs").mkdir(parents=True, exist_ok=True)
        (directory / "manifests").mkdir(parents=True, exist_ok=True)

    def get(self, digest: str) -> bytes | None:
        path = self.directory / "blobs" / _hex(digest)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
            with contextlib.suppress(OSError):
                path.unlink()  # damaged: fetch it again
            return None
        return data

    def put(self, digest: str, data: bytes) -> None:
        if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
            raise ImageError(f"artifact bytes do not match {digest}")
        write_atomic(self.directory / "blobs" / _hex(digest), data)

    def _manifest_path(self, manifest: str, explicit: str) -> Path:
        name = _hex(manifest) + (f"-{_hex(explicit)}" if explicit else "")
        return self.directory / "manifests" / name

    def index_of(self, manifest: str, explicit: str = "") -> str | None:
        try:
            text = self._manifest_path(manifest, explicit).read_text().strip()
        except FileNotFoundError:
            return None
        return text if _DIGEST.fullmatch(text) else None

    def remember_index(self, manifest: str, explicit: str, index: str) -> None:
        write_atomic(self._manifest_path(manifest, explicit), (index + "\n").encode())


@dataclass(frozen=True)
class LayerArtifacts:
    """What serving one layer lazily needs."""

    layer_digest: str
    index_digest: str
    ztoc_descriptor: Descriptor
    ztoc: Ztoc
    prefetch_spans: tuple[int, ...]
    disable_xattrs: bool
    bottom: bool  # the image's first layer (LayerTree's `bottom`)


@dataclass(frozen=True)
class _Image:
    index_digest: str
    index: SociIndex
    layers: tuple[str, ...]  # the platform manifest's layer digests, in order


class SociImages:
    """Per platform manifest: its SOCI index and ztocs (see the module doc)."""

    def __init__(self, store: ArtifactStore, *, modes: PullModes | None = None) -> None:
        self.store = store
        self.modes = modes or PullModes()
        self._lock = threading.Lock()
        self._locks: dict[tuple[str, str, str], threading.Lock] = {}
        self._images: dict[tuple[str, str, str], _Image] = {}
        self._no_index: dict[tuple[str, str, str], float] = {}
        self._ztocs: dict[str, Ztoc] = {}

    def _key_lock(self, key: tuple[str, str, str]) -> threading.Lock:
        with self._lock:
            return self._locks.setdefault(key, threading.Lock())

    def image(self, repo: RemoteRepository, manifest: str, explicit: str = "") -> _Image | None:
        """The SOCI index of `manifest` with its ztocs in the store, or None when it has none."""
        key = (f"{repo.host}/{repo.name}", manifest, explicit)
        with self._key_lock(key):
            found = self._images.get(key)
            if found is not None:
                return found
            if time.monotonic() < self._no_index.get(key, -1.0):
                return None
            image = self._load(repo, manifest, explicit)
            if image is None:
                self._no_index[key] = time.monotonic() + NO_INDEX_TTL_S
                return None
            self._images[key] = image
            return image

    def _manifest(self, repo: RemoteRepository, digest: str) -> bytes:
        data = self.store.get(digest)
        if data is None:
            data = repo.read_manifest(digest)
            self.store.put(digest, data)
        return data

    def _load(self, repo: RemoteRepository, manifest: str, explicit: str) -> _Image | None:
        manifest_bytes = self._manifest(repo, manifest)
        index_digest = self.store.index_of(manifest, explicit)
        if index_digest is None:
            found = find_soci_index(manifest, explicit_digest=explicit, read_manifest=lambda _: manifest_bytes,
                                    list_referrers=repo.referrers, modes=self.modes)
            if found is None:
                return None
            index_digest = found.digest
        data = self.store.get(index_digest)
        if data is None:
            data = repo.read_manifest(index_digest)
        index = _parse_index(data, index_digest)
        # every ztoc and prefetch artifact now, once: the image's other layers mount without waiting
        for desc in index.manifest.layer_list:
            wanted = desc.media_type in (mt.MEDIA_TYPE_ZTOC, mt.MEDIA_TYPE_SOCI_PREFETCH)
            if wanted and self.store.get(desc.digest) is None:
                self.store.put(desc.digest, repo.read_blob(desc))
        self.store.put(index_digest, data)
        self.store.remember_index(manifest, explicit, index_digest)
        return _Image(index_digest, index, _layer_digests(manifest_bytes))

    def layer(self, repo: RemoteRepository, manifest: str, layer_digest: str,
              explicit: str = "") -> LayerArtifacts | None:
        """What is needed to serve `layer_digest` of `manifest` lazily, or None (no index, or
        the index has no ztoc for that layer). Raises SocikitError subclasses when the registry
        or the artifacts fail."""
        image = self.image(repo, manifest, explicit)
        if image is None:
            return None
        desc = image.index.ztoc_for_layer(layer_digest)
        if desc is None:
            return None
        ztoc = self._ztoc(repo, desc)
        prefetch: list[int] = []
        for item in image.index.manifest.layer_list:
            if (item.media_type == mt.MEDIA_TYPE_SOCI_PREFETCH
                    and item.annotations.get(mt.ANNOTATION_IMAGE_LAYER_DIGEST) == layer_digest):
                data = self.store.get(item.digest)
                if data is None:
                    data = repo.read_blob(item)
                    self.store.put(item.digest, data)
                for span in loads_prefetch(data):
                    prefetch.extend(range(span.start_span, span.end_span + 1))
        return LayerArtifacts(layer_digest=layer_digest, index_digest=image.index_digest, ztoc_descriptor=desc,
                              ztoc=ztoc, prefetch_spans=tuple(dict.fromkeys(prefetch)),
                              disable_xattrs=desc.annotations.get(mt.ANNOTATION_DISABLE_XATTRS) == "true",
                              bottom=bool(image.layers) and image.layers[0] == layer_digest)

    def _ztoc(self, repo: RemoteRepository, desc: Descriptor) -> Ztoc:
        with self._lock:
            cached = self._ztocs.get(desc.digest)
        if cached is not None:
            return cached
        data = self.store.get(desc.digest)
        if data is None:
            data = repo.read_blob(desc)
            self.store.put(desc.digest, data)
        ztoc = loads_ztoc(data)
        with self._lock:
            return self._ztocs.setdefault(desc.digest, ztoc)

    def forget(self, ztoc_digest: str) -> None:
        """Drop a parsed ztoc from memory (its layer was unmounted)."""
        with self._lock:
            self._ztocs.pop(ztoc_digest, None)


def _layer_digests(manifest: bytes) -> tuple[str, ...]:
    """The layer digests of a platform manifest, in order (none when it is not one)."""
    try:
        document = json.loads(manifest)
        return tuple(str(layer["digest"]) for layer in document.get("layers") or ())
    except (ValueError, TypeError, KeyError, AttributeError):
        return ()


def _parse_index(data: bytes, digest: str) -> SociIndex:
    """The index; only the SOCI index config media types are accepted (as the reference does)."""
    try:
        return parse_soci_index(data)
    except SocikitError as exc:
        raise ImageError(f"SOCI index {digest}: {exc}") from None

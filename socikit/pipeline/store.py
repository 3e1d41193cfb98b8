"""socikit's local store: an OCI image layout under `<root>/store` holding SOCI v1 indexes built by
`socikit create` (and their ztocs) until `socikit push --v1` sends them to a registry.

Each SOCI index is an index.json entry carrying its artifactType, its platform, and annotations
that record the image reference, the image manifest digest and the creation time, so listing
needs nothing but index.json."""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from pathlib import Path

from socikit.content.base import Closing, ImageSource
from socikit.content.layout import LayoutSink, LayoutSource, remove_blob
from socikit.errors import ImageError
from socikit.oci import mediatypes as mt
from socikit.oci.descriptor import Descriptor, Platform
from socikit.soci.index import SociIndex, parse_soci_index

ANNOTATION_STORE_IMAGE_REF = "dev.socikit.image-ref"
ANNOTATION_STORE_CREATED = "dev.socikit.created"


@dataclass(frozen=True, slots=True)
class StoredIndex:
    descriptor: Descriptor
    image_ref: str
    manifest_digest: str
    platform: Platform | None
    created: str

    @property
    def version(self) -> str:
        return "v1" if self.descriptor.artifact_type == mt.ARTIFACT_TYPE_SOCI_INDEX_V1 else "v2"


class LocalStore(Closing):
    """The store as an ImageSink for `create`, and the read side of `index`/`ztoc` commands."""

    def __init__(self, root: Path, *, image_ref: str = "") -> None:
        self.root = Path(root)
        self.layout_dir = self.root / "store"
        self.image_ref = image_ref
        self._sink: LayoutSink | None = None

    @property
    def sink(self) -> LayoutSink:
        if self._sink is None:
            self._sink = LayoutSink(self.layout_dir)
        return self._sink

    # ImageSink (only what `create` writes: blobs and referrers)
    def has_blob(self, desc: Descriptor) -> bool:
        return self.sink.has_blob(desc)

    def write_blob(self, desc: Descriptor, data: bytes) -> None:
        self.sink.write_blob(desc, data)

    def copy_blob(self, desc: Descriptor, source: ImageSource, *, verified: bool = False) -> None:
        self.sink.copy_blob(desc, source, verified=verified)

    def write_manifest(self, desc: Descriptor, data: bytes) -> None:
        self.sink.write_manifest(desc, data)

    def tag(self, desc: Descriptor) -> None:
        raise ImageError("the local store holds SOCI indexes only; it cannot be tagged")

    def write_referrer(self, desc: Descriptor, data: bytes, subject: Descriptor) -> None:
        self.sink.write_blob(desc, data)
        created = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        annotations = {
            ANNOTATION_STORE_IMAGE_REF: self.image_ref,
            mt.ANNOTATION_IMAGE_MANIFEST_DIGEST: subject.digest,
            ANNOTATION_STORE_CREATED: created,
        }
        self.sink.add_entry(Descriptor(media_type=desc.media_type, digest=desc.digest, size=desc.size,
                                       annotations=annotations, platform=subject.platform,
                                       artifact_type=desc.artifact_type))

    def close(self) -> None:
        pass

    # read side
    def indexes(self, *, ref: str | None = None) -> list[StoredIndex]:
        if not (self.layout_dir / "index.json").exists():
            return []
        out = []
        for entry in LayoutSource(self.layout_dir).entries():
            if entry.artifact_type not in (mt.ARTIFACT_TYPE_SOCI_INDEX_V1, mt.ARTIFACT_TYPE_SOCI_INDEX_V2):
                continue
            stored = StoredIndex(
                descriptor=entry,
                image_ref=entry.annotations.get(ANNOTATION_STORE_IMAGE_REF, ""),
                manifest_digest=entry.annotations.get(mt.ANNOTATION_IMAGE_MANIFEST_DIGEST, ""),
                platform=entry.platform,
                created=entry.annotations.get(ANNOTATION_STORE_CREATED, ""),
            )
            if ref is None or stored.image_ref == ref:
                out.append(stored)
        return out

    def read_blob(self, digest: str) -> bytes:
        path = self.layout_dir / "blobs" / "sha256" / digest.split(":", 1)[-1]
        try:
            return path.read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            raise ImageError(f"{digest} is not in the local store {self.layout_dir}") from None

    def read_index(self, digest: str) -> SociIndex:
        return parse_soci_index(self.read_blob(digest))

    def ztocs(self) -> list[tuple[Descriptor, str]]:
        """(ztoc descriptor, layer digest) of every ztoc the stored indexes name, once each."""
        seen: dict[str, tuple[Descriptor, str]] = {}
        for stored in self.indexes():
            for ztoc in self.read_index(stored.descriptor.digest).ztocs:
                seen.setdefault(ztoc.digest, (ztoc, ztoc.annotations.get(mt.ANNOTATION_IMAGE_LAYER_DIGEST, "")))
        return list(seen.values())

    def remove(self, digests: set[str]) -> list[str]:
        """Remove indexes (and ztocs and prefetch artifacts no other stored index needs); returns
        what was removed."""
        stored = {s.descriptor.digest: s for s in self.indexes()}
        missing = digests - stored.keys()
        if missing:
            raise ImageError(f"not in the local store: {', '.join(sorted(missing))}")
        keep_ztocs = {z.digest for d in stored if d not in digests for z in _blobs_of(self.read_index(d))}
        drop_ztocs = {z.digest for d in digests for z in _blobs_of(self.read_index(d))} - keep_ztocs
        self.sink.remove_entries(digests)
        for digest in [*digests, *drop_ztocs]:
            remove_blob(self.layout_dir, digest)
        return sorted(digests)


def _blobs_of(index: SociIndex) -> tuple[Descriptor, ...]:
    """The blobs a stored index lists: its ztocs and prefetch artifacts."""
    return (*index.ztocs, *index.prefetches)


def index_summary(stored: StoredIndex) -> dict[str, object]:
    return {
        "digest": stored.descriptor.digest,
        "size": stored.descriptor.size,
        "image_ref": stored.image_ref,
        "platform": str(stored.platform) if stored.platform else "",
        "media_type": stored.descriptor.media_type,
        "manifest": stored.manifest_digest,
        "version": stored.version,
        "created": stored.created,
    }


__all__ = ["LocalStore", "StoredIndex", "index_summary"]

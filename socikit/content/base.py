"""The seam between the converter and where images live.

Every image location (OCI layout, OCI/Docker archive, Docker Engine store, registry) implements
`ImageSource` to be read and, where writable, `ImageSink`. The pipeline only talks to these two
protocols, so a registry behaves exactly like a directory. Both are context managers: leaving the
`with` block closes them, and a sink left on an exception discards what it wrote where it can
(OCI layouts and archives: the destination stays exactly as it was).

What only some locations can do is declared, not sniffed: each optional ability is a small
`Protocol` below, and callers ask `isinstance(source, ReadsReferrers)` and the like. A location
has the ability by having the methods (structural typing), so `content` needs no import of the
registry package for a registry source to qualify.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Protocol, Self, runtime_checkable

from socikit.oci.descriptor import Descriptor


@runtime_checkable
class ImageSource(Protocol):
    """Read access to one image reference."""

    def resolve(self) -> Descriptor:
        """The descriptor (manifest or index) the reference points at."""
        ...

    def read_blob(self, desc: Descriptor) -> bytes:
        """A small blob (manifest, index, config) whole; its digest and size are verified."""
        ...

    def open_blob(self, desc: Descriptor) -> BinaryIO:
        """A stream over a (possibly large) blob; the caller verifies the digest while reading."""
        ...

    def close(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None: ...


@runtime_checkable
class ImageSink(Protocol):
    """Write access to one destination. Callers write blobs before the manifests naming them,
    manifests before indexes, and `tag` last, so an interrupted write never leaves a tag that
    points at missing content. Closing a sink, or leaving its `with` block on an exception,
    before `tag` discards what a local sink (layout, archive) wrote; leaving the block normally
    keeps it."""

    def has_blob(self, desc: Descriptor) -> bool: ...

    def write_blob(self, desc: Descriptor, data: bytes) -> None:
        """Store a blob held in memory (digest verified)."""
        ...

    def copy_blob(self, desc: Descriptor, source: ImageSource, *, verified: bool = False) -> None:
        """Store a blob read from `source` (layers: streamed, or mounted on the same registry).
        `verified`: the caller has just read the whole blob from `source` and found its digest
        right (the ztoc builder does), so a sink may skip re-hashing a copy it does not stream."""
        ...

    def write_manifest(self, desc: Descriptor, data: bytes) -> None:
        """Store a manifest or index by digest, as exact bytes with `desc.media_type`."""
        ...

    def tag(self, desc: Descriptor) -> None:
        """Point the destination's tag at `desc` (last step of a write)."""
        ...

    def close(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None: ...


# --- optional abilities ----------------------------------------------------------------------------

@runtime_checkable
class OpensBlobsInWorkers(Protocol):
    """A source whose blobs can be opened in another process: `blob_opener` is a picklable
    `descriptor -> stream` callable (None when this source cannot offer one), so layers can be
    indexed on worker processes that each open their own stream."""

    @property
    def blob_opener(self) -> Callable[[Descriptor], BinaryIO] | None: ...


@runtime_checkable
class ListsManifests(Protocol):
    """A store with a listing of what it holds (an OCI layout's `index.json`): every entry, in
    file order, tagged or not, SOCI v1 indexes included (listed with their artifactType)."""

    def entries(self) -> list[Descriptor]: ...


@runtime_checkable
class HasBlobPaths(Protocol):
    """A store whose blobs are files on this machine (an OCI layout directory)."""

    def blob_path(self, digest: str) -> Path: ...


@runtime_checkable
class ReadsManifestsByDigest(Protocol):
    """A store that reads a manifest or index known only by its digest (no descriptor gives its
    size or media type: the store does), digest verified: a registry (`GET /manifests/<digest>`),
    an OCI layout (the blob file)."""

    def read_manifest(self, digest: str) -> tuple[bytes, Descriptor]: ...


@runtime_checkable
class ReadsReferrers(Protocol):
    """A store that lists the manifests referring to a subject (a registry's Referrers API or its
    fallback tag): descriptors of `artifact_type` in the store's order."""

    def referrers(self, subject_digest: str, artifact_type: str) -> list[Descriptor]: ...


@runtime_checkable
class WritesReferrers(Protocol):
    """A sink that stores a manifest with a `subject` (a SOCI v1 index) so referrer queries find
    it: the Referrers API or fallback tag of a registry, an `index.json` entry with its
    artifactType in an OCI layout."""

    def write_referrer(self, desc: Descriptor, data: bytes, subject: Descriptor) -> None: ...


@runtime_checkable
class WritesManifestsAtOnce(Protocol):
    """A sink whose manifest writes are round trips that may overlap (a registry): manifests
    that do not name each other (SOCI indexes, the image manifests that point at them) may be
    written at once, up to `manifest_writes_at_once` of them, and a manifest stored and tagged in
    one request (`write_tagged_manifest`: the PUT by tag stores it by digest as well). Indexes still
    go after what they list, and the tag last."""

    manifest_writes_at_once: int

    def write_tagged_manifest(self, desc: Descriptor, data: bytes) -> None:
        """`write_manifest` then `tag`, in one step where the store allows it."""
        ...


class Closing:
    """`with` support for sources whose `close()` is all there is to leaving the block."""

    def close(self) -> None:
        pass

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


__all__ = [
    "Closing",
    "HasBlobPaths",
    "ImageSink",
    "ImageSource",
    "ListsManifests",
    "OpensBlobsInWorkers",
    "ReadsManifestsByDigest",
    "ReadsReferrers",
    "WritesManifestsAtOnce",
    "WritesReferrers",
]

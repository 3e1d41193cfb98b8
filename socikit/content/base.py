"""The seam between the converter and where images live.

Every image location (OCI layout, OCI/Docker archive, Docker Engine store, registry) implements
`ImageSource` to be read and, where writable, `ImageSink`. The pipeline only talks to these two
protocols, so a registry behaves exactly like a directory.
"""

from __future__ import annotations

from typing import BinaryIO, Protocol, runtime_checkable

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


@runtime_checkable
class ImageSink(Protocol):
    """Write access to one destination. Callers write blobs before the manifests naming them,
    manifests before indexes, and `tag` last, so an interrupted write never leaves a tag that
    points at missing content."""

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

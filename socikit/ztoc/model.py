"""The ztoc value model (SOCI ztoc v0.9, reference `ztoc/ztoc.go`).

A ztoc is two independent halves: the TOC (one `FileMetadata` per tar entry, offsets into the
*uncompressed* tar stream) and the `CompressionInfo` (one checkpoint per span plus a sha256 of each
span's *compressed* bytes). Values here are plain data; `serialize` turns them into the exact
flatbuffer bytes of the reference and back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

ALGORITHM_GZIP = "gzip"
ALGORITHM_UNCOMPRESSED = "uncompressed"


class FileMetadata(NamedTuple):
    """One tar entry as the reference records it.

    Strings are Go strings, i.e. arbitrary bytes: they are held as `str` decoded from UTF-8 with
    `surrogateescape`, so non-UTF-8 names round-trip to the same bytes. `xattrs` holds *all* PAX
    records of the entry as (key, value) byte pairs, sorted bytewise by key. `mod_time` is kept as
    the serialized RFC 3339 text (Go `time.MarshalText`) so that a decoded ztoc re-encodes to the
    same bytes. A NamedTuple rather than a dataclass: layers have 100,000s of entries.
    """

    name: str
    type: str
    uncompressed_offset: int
    uncompressed_size: int
    linkname: str
    mode: int
    uid: int
    gid: int
    uname: str
    gname: str
    mod_time: str
    devmajor: int
    devminor: int
    xattrs: tuple[tuple[bytes, bytes], ...]


@dataclass(frozen=True, slots=True)
class CompressionInfo:
    """The zinfo half: `checkpoints` is the opaque blob (gzip zinfo or TarZinfo flatbuffer)."""

    compression_algorithm: str
    max_span_id: int
    span_digests: tuple[str, ...]
    checkpoints: bytes

    @property
    def num_spans(self) -> int:
        return self.max_span_id + 1


@dataclass(frozen=True, slots=True, weakref_slot=True)
class Ztoc:
    """A complete ztoc. `toc` is in tar order as built (the reference keeps that order on disk):
    a tuple when decoded, the builder's compact `native.NativeToc` when built (entries made on
    access; equal to the tuple of the same entries).

    Weak-referenceable so that derived read structures (`spans.span_table`, `index.toc_index`)
    can be built once per ztoc object and dropped with it."""

    version: str
    build_tool_identifier: str
    compressed_archive_size: int
    uncompressed_archive_size: int
    toc: Sequence[FileMetadata]
    compression_info: CompressionInfo

"""Random access through a ztoc: file -> spans -> compressed byte ranges -> verified bytes
(fact sheet §2.3–2.5). Reads go through a `read_range(start, end)` callable so the same code
serves a local blob and an HTTP range reader; every span fetched is checked against its digest
before a byte of it is used. The per-span work itself is `spans.SpanTable`; the path lookup is
`index.TocIndex`. Both are built once per ztoc object.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import BinaryIO

from socikit.errors import CompressedDataError, FileNotInZtocError, SocikitError, ZtocFormatError
from socikit.ztoc.compression.gzip import Checkpoint, GzipZinfo
from socikit.ztoc.compression.tar import TarZinfo
from socikit.ztoc.index import clean_name, toc_index
from socikit.ztoc.inflate import StreamInflater
from socikit.ztoc.model import ALGORITHM_GZIP, ALGORITHM_UNCOMPRESSED, FileMetadata, Ztoc
from socikit.ztoc.spans import PIECE_SIZE, span_table

__all__ = [
    "FileNotInZtocError",
    "ReadRange",
    "clean_name",
    "file_range_reader",
    "find_entry",
    "inflate_from_checkpoint",
    "iter_file",
    "iter_uncompressed",
    "read_file",
    "read_uncompressed",
    "regular_file",
    "span_range_of",
    "verify_range",
    "zinfo_of",
]

ReadRange = Callable[[int, int], bytes]
Zinfo = GzipZinfo | TarZinfo


def zinfo_of(ztoc: Ztoc) -> Zinfo:
    """The span geometry object of a ztoc's compression half (unvalidated; see `spans.SpanTable`)."""
    info = ztoc.compression_info
    if info.compression_algorithm == ALGORITHM_GZIP:
        return GzipZinfo(info.checkpoints)
    if info.compression_algorithm == ALGORITHM_UNCOMPRESSED:
        return TarZinfo(info.checkpoints)
    raise ZtocFormatError(f"unknown compression algorithm {info.compression_algorithm!r}")


def find_entry(ztoc: Ztoc, path: str) -> FileMetadata:
    """The TOC entry for `path` (any spelling of the name), a hard link's target entry for a hard
    link. Uses the ztoc's `TocIndex`, built on the first call."""
    entry = toc_index(ztoc).lookup(path)
    if entry is None:
        raise FileNotInZtocError(f"{path!r} is not in the ztoc")
    return entry


def regular_file(ztoc: Ztoc, path: str) -> FileMetadata:
    """The entry of the regular file `path` (hard links followed)."""
    entry = find_entry(ztoc, path)
    if entry.type != "reg":
        raise SocikitError(f"{path!r} is a {entry.type}, not a regular file")
    return entry


def span_range_of(zinfo: Zinfo, offset: int, size: int) -> tuple[int, int]:
    """First and last span (inclusive) the *reference* reads for uncompressed bytes
    [offset, offset + size): the end is the span of `offset + size` (an exclusive end that may
    pull in one extra span), clamped to the last span. `ztoc info` reports these."""
    return zinfo.span_of(offset), zinfo.span_of(offset + size)


def _fetch(read_range: ReadRange, start: int, end: int) -> bytes:
    return read_range(start, end) if end > start else b""


def verify_range(ztoc: Ztoc, read_range: ReadRange, offset: int, size: int) -> None:
    """Fetch every span holding uncompressed bytes [offset, offset + size) and check it against
    its digest (SpanDigestError), one span in memory at a time. A caller that must not write
    anything for a wrong blob runs this before `iter_uncompressed`."""
    spans = span_table(ztoc)
    for span_id in spans.spans_covering(offset, size):
        spans.verify(span_id, _fetch(read_range, *spans.compressed_range(span_id)))


def iter_uncompressed(
    ztoc: Ztoc, read_range: ReadRange, offset: int, size: int, *, piece_size: int = PIECE_SIZE
) -> Iterator[bytes]:
    """Uncompressed tar bytes [offset, offset + size) in pieces of at most `piece_size` bytes,
    fetched span by span, each span verified against its digest before it is inflated. Memory
    stays at one span's compressed bytes plus one piece, however large the range."""
    spans = span_table(ztoc)
    end = offset + size
    for span_id in spans.spans_covering(offset, size):
        span_start, span_end = spans.uncompressed_range(span_id)
        lo, hi = max(offset, span_start), min(end, span_end)
        compressed = _fetch(read_range, *spans.compressed_range(span_id))
        yield from spans.inflate_pieces(
            span_id, compressed, skip=lo - span_start, length=hi - lo, piece_size=piece_size
        )


def read_uncompressed(
    ztoc: Ztoc, read_range: ReadRange, offset: int, size: int, *, zinfo: Zinfo | None = None
) -> bytes:
    """Uncompressed tar bytes [offset, offset + size), fetching only the spans that hold them and
    verifying each against its digest. (`zinfo` is accepted for older callers and unused: the
    ztoc's span table is cached.)"""
    del zinfo
    if size <= 0:
        return b""
    return b"".join(iter_uncompressed(ztoc, read_range, offset, size))


def iter_file(ztoc: Ztoc, read_range: ReadRange, path: str, *, piece_size: int = PIECE_SIZE) -> Iterator[bytes]:
    """The contents of the regular file `path` (hard links followed), streamed span by span."""
    entry = regular_file(ztoc, path)
    return iter_uncompressed(ztoc, read_range, entry.uncompressed_offset, entry.uncompressed_size,
                             piece_size=piece_size)


def read_file(ztoc: Ztoc, read_range: ReadRange, path: str) -> bytes:
    """The contents of the regular file `path` (hard links followed) read through spans only."""
    return b"".join(iter_file(ztoc, read_range, path))


def file_range_reader(blob: BinaryIO) -> ReadRange:
    """A `read_range` over a seekable local blob file."""

    def read_range(start: int, end: int) -> bytes:
        blob.seek(start)
        return blob.read(end - start)

    return read_range


def inflate_from_checkpoint(compressed: bytes, *, bits: int, window: bytes, skip: int, length: int) -> bytes:
    """Inflate `compressed` (starting at a checkpoint's first byte, the shared byte included when
    `bits` != 0), drop `skip` output bytes, return the next `length` bytes. No digest check: the
    caller vouches for the bytes (`validate` compares the output with the sequential stream)."""
    if length <= 0:
        return b""
    if bits and not compressed:
        raise CompressedDataError("span data is empty")
    out = bytearray(length)
    produced = 0
    with StreamInflater(Checkpoint(0, 0, bits, window)) as inflater:
        inflater.feed(compressed)
        if skip:
            scratch = memoryview(bytearray(min(skip, PIECE_SIZE)))
            while skip:
                got = inflater.inflate_into(scratch[: min(skip, len(scratch))])
                if not got:
                    break
                skip -= got
        if not skip:
            produced = inflater.inflate_into(out)
        if inflater.error:
            raise CompressedDataError(f"span data does not inflate: {inflater.error}")
    if produced != length:
        raise CompressedDataError(f"span data ended after {produced} of {length} bytes")
    return bytes(out)

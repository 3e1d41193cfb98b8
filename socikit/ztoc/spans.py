"""Per-span primitives over one ztoc (fact sheet §2.3–2.6), pure: span id and bytes in, bytes out.

Made for a span cache such as the snapshotter's: fetch span i's compressed range (one HTTP range
request), `verify` it against `span_digests[i]`, `inflate` the whole span from its checkpoint
and keep the uncompressed bytes; reads then copy slices out of cached spans. Nothing here does
I/O or takes a read callback.

`SpanTable(ztoc)` (or the cached `span_table(ztoc)`) checks the whole span geometry once: known
algorithm, one digest per span, `max_span_id` matching the zinfo, checkpoints in order and inside
the blob, sizes that are not negative. A corrupt ztoc therefore fails there with ZtocFormatError,
never later with an IndexError or a negative read length, and every method after that is total
for span ids in `range(count)`.

Ranges are half-open `[start, end)`. Compressed offsets index the layer blob, uncompressed ones
the tar stream. Gzip spans start one byte early when their checkpoint shares a byte with the
previous span; the last span ends at the blob's end (trailer included) and, uncompressed, at
`uncompressed_archive_size` (the tar's end; padding after it belongs to no file). Uncompressed
tar layers (TarZinfo) have fixed spans where both kinds of offset coincide.
"""

from __future__ import annotations

import bisect
import hashlib
import re
from collections.abc import Iterator, Sequence

from socikit.errors import CompressedDataError, SpanDigestError, ZtocFormatError
from socikit.ztoc._memo import PerZtoc
from socikit.ztoc.compression.gzip import GzipZinfo
from socikit.ztoc.compression.tar import TarZinfo
from socikit.ztoc.inflate import StreamInflater
from socikit.ztoc.model import ALGORITHM_GZIP, ALGORITHM_UNCOMPRESSED, Ztoc

__all__ = ["PIECE_SIZE", "SpanTable", "span_table"]

PIECE_SIZE = 1 << 20  # bytes per piece from `inflate_pieces`
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")

Buffer = bytes | bytearray | memoryview


class SpanTable:
    """The validated span geometry of one ztoc plus verification and inflation of single spans.

    Attributes: `algorithm` ("gzip" or "uncompressed"), `count` (number of spans, ids
    0..count-1), `span_size` (as recorded in the zinfo), `compressed_size` (the layer blob's size
    the ztoc was built from), `uncompressed_size` (the tar stream's end), `digests`."""

    __slots__ = (
        "algorithm",
        "count",
        "span_size",
        "compressed_size",
        "uncompressed_size",
        "digests",
        "_gzip",
        "_starts",
        "_ends",
        "_outs",
    )

    def __init__(self, ztoc: Ztoc) -> None:
        info = ztoc.compression_info
        self.algorithm = info.compression_algorithm
        self.compressed_size = ztoc.compressed_archive_size
        self.uncompressed_size = ztoc.uncompressed_archive_size
        self.digests = info.span_digests
        if self.compressed_size < 0 or self.uncompressed_size < 0:
            raise ZtocFormatError(
                f"ztoc records negative archive sizes ({self.compressed_size} compressed, "
                f"{self.uncompressed_size} uncompressed)"
            )
        self._gzip: GzipZinfo | None = None
        self._starts: Sequence[int]
        self._ends: Sequence[int] | None
        self._outs: Sequence[int]
        if self.algorithm == ALGORITHM_GZIP:
            zinfo = GzipZinfo(info.checkpoints)
            self._gzip = zinfo
            self.span_size = zinfo.span_size
            self.count = zinfo.count
            self._starts, self._ends, self._outs = _gzip_geometry(zinfo, self.compressed_size)
        elif self.algorithm == ALGORITHM_UNCOMPRESSED:
            tar = TarZinfo(info.checkpoints)
            if tar.size != self.compressed_size:
                raise ZtocFormatError(
                    f"TarZinfo size {tar.size} differs from compressed_archive_size {self.compressed_size}"
                )
            if self.uncompressed_size > tar.size:
                raise ZtocFormatError(
                    f"uncompressed_archive_size {self.uncompressed_size} is past the end of the {tar.size}-byte tar"
                )
            self.span_size = tar.span_size
            self.count = tar.count
            self._starts = range(0, tar.count * tar.span_size, tar.span_size)
            self._ends = None
            self._outs = self._starts
        else:
            raise ZtocFormatError(f"unknown compression algorithm {self.algorithm!r}")
        if info.max_span_id + 1 != self.count:
            raise ZtocFormatError(f"max_span_id {info.max_span_id} but the zinfo holds {self.count} spans")
        if len(self.digests) != self.count:
            raise ZtocFormatError(f"{len(self.digests)} span digests for {self.count} spans")
        for span_id, digest in enumerate(self.digests):
            if _DIGEST.fullmatch(digest) is None:
                raise ZtocFormatError(f"span digest {span_id} is not a sha256 digest: {digest[:80]!r}")

    # -- geometry ---------------------------------------------------------------------------------

    def _check(self, span_id: int) -> None:
        if not 0 <= span_id < self.count:
            raise ZtocFormatError(f"span {span_id} does not exist (the ztoc has {self.count} spans)")

    def compressed_range(self, span_id: int) -> tuple[int, int]:
        """Blob bytes `[start, end)` of the span: what to fetch, and what its digest covers."""
        self._check(span_id)
        if self._ends is not None:
            return self._starts[span_id], self._ends[span_id]
        start = self._starts[span_id]  # fixed slices; the last one ends at the blob's end
        return start, self.compressed_size if span_id == self.count - 1 else start + self.span_size

    def uncompressed_range(self, span_id: int) -> tuple[int, int]:
        """Tar stream bytes `[start, end)` the span inflates to. The last span ends at the tar's
        end; a span that starts past it (in padding after the tar) is empty."""
        self._check(span_id)
        start = self._outs[span_id]
        if span_id == self.count - 1:
            return start, max(start, self.uncompressed_size)
        return start, self._outs[span_id + 1]

    def span_of(self, offset: int) -> int:
        """The span holding uncompressed byte `offset`: the last one starting at or before it."""
        if self.count == 0:
            raise ZtocFormatError("the ztoc has no spans")
        return max(0, min(bisect.bisect_right(self._outs, offset) - 1, self.count - 1))

    def spans_covering(self, offset: int, size: int) -> range:
        """The span ids holding uncompressed bytes `[offset, offset + size)`, in order (empty for
        size 0). Only the spans that hold those bytes: unlike the reference's `offset + size`
        rule, no extra span after an end that falls on a span start."""
        if offset < 0 or size < 0 or offset + size > self.uncompressed_size:
            raise ZtocFormatError(
                f"bytes [{offset}, {offset + size}) are outside the ztoc's {self.uncompressed_size}-byte tar"
            )
        if size == 0:
            return range(0)
        return range(self.span_of(offset), self.span_of(offset + size - 1) + 1)

    # -- bytes ------------------------------------------------------------------------------------

    def verify(self, span_id: int, compressed: Buffer) -> None:
        """Check a span's compressed bytes (exactly its `compressed_range`) against its digest;
        SpanDigestError names the span and both digests when they differ."""
        self._check(span_id)
        actual = "sha256:" + hashlib.sha256(compressed).hexdigest()
        expected = self.digests[span_id]
        if actual != expected:
            start, end = self.compressed_range(span_id)
            got = memoryview(compressed).nbytes
            length = f" ({got} bytes given, the span is {end - start})" if got != end - start else ""
            raise SpanDigestError(
                f"span {span_id} (blob bytes {start}-{end}): compressed bytes hash to {actual}, "
                f"the ztoc says {expected}{length}",
                span_id=span_id,
                expected=expected,
                actual=actual,
            )

    def inflate(self, span_id: int, compressed: Buffer, *, verify: bool = True) -> bytes:
        """The whole span's uncompressed bytes (`uncompressed_range` long) from its compressed
        bytes, checked against the span digest first unless `verify` is False."""
        return b"".join(self.inflate_pieces(span_id, compressed, verify=verify, piece_size=None))

    def inflate_pieces(
        self,
        span_id: int,
        compressed: Buffer,
        *,
        skip: int = 0,
        length: int | None = None,
        verify: bool = True,
        piece_size: int | None = PIECE_SIZE,
    ) -> Iterator[bytes]:
        """Uncompressed bytes `[skip, skip + length)` of the span (relative to its start; to its
        end when `length` is None) in pieces of at most `piece_size` bytes (one piece when None),
        so that memory stays bounded however large a span is. The digest check (unless
        `verify` is False) happens before this returns; inflate errors surface while iterating
        (CompressedDataError)."""
        start, end = self.uncompressed_range(span_id)
        span_length = end - start
        if length is None:
            length = span_length - skip
        if skip < 0 or length < 0 or skip + length > span_length:
            raise ZtocFormatError(f"span {span_id} holds {span_length} bytes; [{skip}, {skip + length}) is outside it")
        if verify:
            self.verify(span_id, compressed)
        if self._gzip is None:
            return _slices(span_id, compressed, skip, length, piece_size)
        return self._inflate_gzip(span_id, compressed, skip, length, piece_size)

    def _inflate_gzip(
        self, span_id: int, compressed: Buffer, skip: int, length: int, piece_size: int | None
    ) -> Iterator[bytes]:
        assert self._gzip is not None
        checkpoint = self._gzip.checkpoint(span_id)
        if not length:
            return
        if checkpoint.bits and not memoryview(compressed).nbytes:
            raise CompressedDataError(f"span {span_id}: no compressed bytes given")
        with StreamInflater(checkpoint) as inflater:
            inflater.feed(compressed)
            if skip:
                scratch = bytearray(min(skip, PIECE_SIZE))
                while skip:
                    got = inflater.inflate_into(memoryview(scratch)[: min(skip, len(scratch))])
                    if not got:
                        break
                    skip -= got
            done = 0
            while done < length and not skip:
                piece = bytearray(min(length - done, piece_size or length))
                got = inflater.inflate_into(piece)
                if got:
                    done += got
                    yield bytes(piece) if got == len(piece) else bytes(piece[:got])
                if got < len(piece):
                    break
            if done < length:
                if inflater.error:
                    raise CompressedDataError(f"span {span_id} does not inflate: {inflater.error}")
                raise CompressedDataError(
                    f"span {span_id}: the compressed bytes end after {done} of {length} uncompressed bytes"
                )


def _slices(span_id: int, compressed: Buffer, skip: int, length: int, piece_size: int | None) -> Iterator[bytes]:
    """An uncompressed tar span is its own bytes."""
    data = memoryview(compressed)
    if data.nbytes < skip + length:
        raise CompressedDataError(f"span {span_id}: {data.nbytes} bytes given, {skip + length} needed")
    step = piece_size or length or 1
    for at in range(skip, skip + length, step):
        yield bytes(data[at : min(at + step, skip + length)])


def _gzip_geometry(zinfo: GzipZinfo, compressed_size: int) -> tuple[list[int], list[int], list[int]]:
    """Compressed starts and ends and uncompressed starts of every span, checked for order."""
    starts: list[int] = []
    ends: list[int] = []
    outs: list[int] = []
    previous_in = previous_out = 0
    for span_id in range(zinfo.count):
        c_in, c_out, bits = zinfo.offsets(span_id)
        if not 0 <= bits <= 7:
            raise ZtocFormatError(f"checkpoint {span_id} has {bits} leftover bits (0-7 possible)")
        start = c_in - 1 if bits else c_in
        if span_id == 0 and c_out != 0:
            raise ZtocFormatError(f"checkpoint 0 is at uncompressed offset {c_out}, not 0")
        if start < 0 or c_in > compressed_size:
            raise ZtocFormatError(
                f"checkpoint {span_id} is at blob byte {c_in}, outside the {compressed_size}-byte blob"
            )
        if c_in < previous_in or c_out < previous_out:
            raise ZtocFormatError(f"checkpoint {span_id} lies before checkpoint {span_id - 1}")
        if span_id:
            ends.append(c_in)
        starts.append(start)
        outs.append(c_out)
        previous_in, previous_out = c_in, c_out
    if starts:
        ends.append(compressed_size)
    return starts, ends, outs


span_table = PerZtoc(SpanTable)
"""`span_table(ztoc)`: the ztoc's SpanTable, built on first use and kept while the ztoc lives."""

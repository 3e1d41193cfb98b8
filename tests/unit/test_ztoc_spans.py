"""`ztoc.spans.SpanTable`: span geometry, digest checks and whole-span inflation, one span at a
time the way a span cache uses them; and `extract`'s verified, streamed reads built on it."""

from __future__ import annotations

import dataclasses
import gc
import hashlib
import io

import pytest

from socikit.errors import CompressedDataError, SpanDigestError, ZtocFormatError
from socikit.ztoc.builder import build_ztoc
from socikit.ztoc.compression.gzip import GzipZinfo, pack_checkpoints
from socikit.ztoc.compression.tar import dumps_tar_zinfo
from socikit.ztoc.extract import (
    file_range_reader,
    iter_uncompressed,
    read_file,
    read_uncompressed,
    span_range_of,
    verify_range,
    zinfo_of,
)
from socikit.ztoc.model import Ztoc
from socikit.ztoc.spans import SpanTable, span_table
from tests.ztoc_trees import gzip_member, members_at, regular_files, seeded_tar

SPAN = 65536


@pytest.fixture(scope="module")
def tar() -> bytes:
    data = seeded_tar(21, files=90)
    assert len(data) > 20 * SPAN
    return data


def _layers(tar: bytes) -> dict[str, tuple[bytes, str]]:
    third = len(tar) // 3
    return {
        "gzip-6": (gzip_member(tar), "gzip"),
        "gzip-1-small-blocks": (gzip_member(tar, level=1, mem_level=2), "gzip"),
        "members": (members_at(tar, [third, 2 * third], named=True)[0], "gzip"),
        "uncompressed": (tar, "uncompressed"),
    }


def _build(blob: bytes, algorithm: str = "gzip", span: int = SPAN) -> Ztoc:
    return build_ztoc(io.BytesIO(blob), algorithm=algorithm, span_size=span, build_tool_identifier="t").ztoc


@pytest.mark.parametrize("kind", ["gzip-6", "gzip-1-small-blocks", "members", "uncompressed"])
def test_every_span_verifies_and_inflates_to_its_range(tar: bytes, kind: str) -> None:
    blob, algorithm = _layers(tar)[kind]
    ztoc = _build(blob, algorithm)
    spans = SpanTable(ztoc)
    assert spans.algorithm == algorithm and spans.count == ztoc.compression_info.num_spans > 10
    assert spans.compressed_size == len(blob) and spans.span_size == SPAN
    covered = 0
    for span_id in range(spans.count):
        start, end = spans.compressed_range(span_id)
        compressed = blob[start:end]
        spans.verify(span_id, compressed)
        assert "sha256:" + hashlib.sha256(compressed).hexdigest() == ztoc.compression_info.span_digests[span_id]
        ustart, uend = spans.uncompressed_range(span_id)
        assert ustart == covered, "uncompressed ranges must tile the tar"
        covered = uend
        data = spans.inflate(span_id, compressed)
        assert data == tar[ustart:uend], span_id
        assert spans.span_of(ustart) == span_id or ustart == uend
        pieces = list(spans.inflate_pieces(span_id, compressed, piece_size=4000))
        assert b"".join(pieces) == data and all(len(p) <= 4000 for p in pieces)
        middle = (uend - ustart) // 3
        part = b"".join(spans.inflate_pieces(span_id, compressed, skip=middle, length=middle, piece_size=999))
        assert part == data[middle : 2 * middle]
    assert covered == ztoc.uncompressed_archive_size
    # The gzip header belongs to no span; the last span takes the blob's end (the trailer).
    assert spans.compressed_range(spans.count - 1)[1] == len(blob)
    if algorithm == "gzip":
        assert spans.compressed_range(0)[0] == GzipZinfo(ztoc.compression_info.checkpoints).checkpoint(0)[0]


def test_a_wrong_byte_is_caught_before_inflating(tar: bytes) -> None:
    blob = gzip_member(tar)
    spans = SpanTable(_build(blob))
    start, end = spans.compressed_range(3)
    good = blob[start:end]
    bad = bytearray(good)
    bad[len(bad) // 2] ^= 0x01
    with pytest.raises(SpanDigestError) as caught:
        spans.inflate(3, bytes(bad))
    error = caught.value
    assert error.span_id == 3 and error.expected == spans.digests[3]
    assert error.actual == "sha256:" + hashlib.sha256(bad).hexdigest()
    assert "span 3" in str(error) and error.expected in str(error) and error.actual in str(error)
    assert isinstance(error, CompressedDataError)
    with pytest.raises(SpanDigestError, match=rf"{len(good) - 5} bytes given, the span is {len(good)}"):
        spans.verify(3, good[:-5])
    # Unverified, the same corrupt bytes fail inside inflate (or give other bytes), never silently pass.
    try:
        assert spans.inflate(3, bytes(bad), verify=False) != spans.inflate(3, good)
    except CompressedDataError:
        pass


def test_spans_covering_is_exact_where_the_reference_may_take_one_more(tar: bytes) -> None:
    blob = gzip_member(tar)
    ztoc = _build(blob)
    spans = SpanTable(ztoc)
    zinfo = zinfo_of(ztoc)
    for entry in ztoc.toc:
        covering = spans.spans_covering(entry.uncompressed_offset, entry.uncompressed_size)
        if entry.uncompressed_size == 0:
            assert len(covering) == 0
            continue
        first, last = covering[0], covering[-1]
        assert spans.uncompressed_range(first)[0] <= entry.uncompressed_offset < spans.uncompressed_range(first)[1]
        end = entry.uncompressed_offset + entry.uncompressed_size
        assert spans.uncompressed_range(last)[0] < end <= spans.uncompressed_range(last)[1]
        ref_first, ref_last = span_range_of(zinfo, entry.uncompressed_offset, entry.uncompressed_size)
        assert ref_first == first and ref_last in (last, last + 1)
    # A span edge right at a file's end: only exercised when a file ends on a checkpoint.
    start = spans.uncompressed_range(5)[0]
    assert list(spans.spans_covering(start - 10, 10)) == [4]
    assert list(spans.spans_covering(start, 1)) == [5]
    assert list(spans.spans_covering(start - 1, 2)) == [4, 5]
    with pytest.raises(ZtocFormatError, match="outside"):
        spans.spans_covering(ztoc.uncompressed_archive_size - 1, 2)
    with pytest.raises(ZtocFormatError):
        spans.spans_covering(-1, 1)


def test_spans_after_the_tar_end_are_empty(tar: bytes) -> None:
    """A tar padded past its end-of-archive blocks (GNU/Python 10 KiB records): with tiny spans
    the last spans start after uncompressed_archive_size and hold nothing a file can need."""
    padded = tar + bytes(-len(tar) % 10240 or 10240)
    ztoc = _build(padded, "uncompressed", span=512)
    spans = SpanTable(ztoc)
    assert ztoc.uncompressed_archive_size < len(padded)
    last = spans.count - 1
    assert spans.uncompressed_range(last)[0] >= ztoc.uncompressed_archive_size
    start, end = spans.compressed_range(last)
    assert spans.inflate(last, padded[start:end]) == b""
    assert end == len(padded)


def test_reads_verify_every_span_they_use(tar: bytes) -> None:
    blob = gzip_member(tar)
    ztoc = _build(blob)
    spans = span_table(ztoc)
    files = regular_files(tar)
    start, end = spans.compressed_range(6)
    damaged = bytearray(blob)
    damaged[(start + end) // 2] ^= 0x40
    reader = file_range_reader(io.BytesIO(bytes(damaged)))
    hit = missed = 0
    for entry in ztoc.toc:
        if entry.type != "reg" or not entry.uncompressed_size:
            continue
        touched = 6 in spans.spans_covering(entry.uncompressed_offset, entry.uncompressed_size)
        if touched:
            with pytest.raises(SpanDigestError, match="span 6"):
                read_file(ztoc, reader, entry.name)
            with pytest.raises(SpanDigestError):
                verify_range(ztoc, reader, entry.uncompressed_offset, entry.uncompressed_size)
            hit += 1
        else:
            assert read_file(ztoc, reader, entry.name) == files[entry.name]
            missed += 1
    assert hit and missed
    # A span range read short (a truncated blob) fails the same way.
    short = file_range_reader(io.BytesIO(blob[: spans.compressed_range(spans.count - 1)[0] + 5]))
    with pytest.raises(SpanDigestError, match="bytes given"):
        read_uncompressed(ztoc, short, ztoc.uncompressed_archive_size - 100, 100)


def test_streamed_read_equals_the_tar_in_small_pieces(tar: bytes) -> None:
    blob, _ = members_at(tar, [len(tar) // 2])
    ztoc = _build(blob)
    reader = file_range_reader(io.BytesIO(blob))
    lo, hi = 1000, ztoc.uncompressed_archive_size - 777
    pieces = list(iter_uncompressed(ztoc, reader, lo, hi - lo, piece_size=10_000))
    assert b"".join(pieces) == tar[lo:hi]
    assert max(map(len, pieces)) <= 10_000


def test_span_table_is_built_once_per_ztoc(tar: bytes) -> None:
    ztoc = _build(gzip_member(tar))
    first = span_table(ztoc)
    assert span_table(ztoc) is first
    twin = dataclasses.replace(ztoc)
    assert span_table(twin) is not first
    cached = len(span_table._values)
    del ztoc, twin, first
    gc.collect()
    assert len(span_table._values) == cached - 2


# -- a corrupt geometry fails when the table is built ---------------------------------------------


def _with_info(ztoc: Ztoc, **changes: object) -> Ztoc:
    return dataclasses.replace(ztoc, compression_info=dataclasses.replace(ztoc.compression_info, **changes))


def test_corrupt_gzip_geometry_is_a_format_error(tar: bytes) -> None:
    blob = gzip_member(tar)
    ztoc = _build(blob)
    info = ztoc.compression_info
    zinfo = GzipZinfo(info.checkpoints)
    checkpoints = [zinfo.checkpoint(i) for i in range(zinfo.count)]

    def with_checkpoints(cps: list) -> Ztoc:
        return _with_info(ztoc, checkpoints=pack_checkpoints(SPAN, cps))

    swapped = checkpoints[:]
    swapped[2], swapped[3] = swapped[3], swapped[2]
    cases = {
        "max_span_id": _with_info(ztoc, max_span_id=info.max_span_id + 1),
        "digests": _with_info(ztoc, span_digests=info.span_digests[:-1]),
        "not a sha256": _with_info(ztoc, span_digests=(*info.span_digests[:-1], "sha256:xyz")),
        "before checkpoint": with_checkpoints(swapped),
        "outside the": with_checkpoints([*checkpoints[:-1], checkpoints[-1]._replace(compressed_offset=len(blob) + 1)]),
        "leftover bits": with_checkpoints([*checkpoints[:-1], checkpoints[-1]._replace(bits=9)]),
        "not 0": with_checkpoints([checkpoints[0]._replace(uncompressed_offset=5), *checkpoints[1:]]),
        "negative": dataclasses.replace(ztoc, compressed_archive_size=-1),
        "unknown compression": _with_info(ztoc, compression_algorithm="zstd"),
    }
    for needle, bad in cases.items():
        with pytest.raises(ZtocFormatError, match=needle):
            SpanTable(bad)
    with pytest.raises(ZtocFormatError, match="does not exist"):
        SpanTable(ztoc).compressed_range(zinfo.count)


def test_corrupt_tar_geometry_is_a_format_error(tar: bytes) -> None:
    ztoc = _build(tar, "uncompressed")
    with pytest.raises(ZtocFormatError, match="TarZinfo size"):
        SpanTable(_with_info(ztoc, checkpoints=dumps_tar_zinfo(SPAN, len(tar) + 1)))
    with pytest.raises(ZtocFormatError, match="past the end"):
        SpanTable(dataclasses.replace(ztoc, uncompressed_archive_size=len(tar) + 1))
    with pytest.raises(ZtocFormatError, match="max_span_id"):
        SpanTable(_with_info(ztoc, checkpoints=dumps_tar_zinfo(SPAN * 2, len(tar))))

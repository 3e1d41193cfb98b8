"""`ztoc.inflate.StreamInflater`, the one streaming inflate primitive: whole gzip streams (every
member), restarts at checkpoints, any cut of input and output, and what it says about corrupt or
truncated data."""

from __future__ import annotations

import gzip
import io
import zlib

import pytest

from socikit.ztoc.builder import build_ztoc
from socikit.ztoc.compression.gzip import GzipZinfo
from socikit.ztoc.inflate import StreamInflater
from tests.ztoc_trees import members_at, seeded_tar


@pytest.fixture(scope="module")
def tar() -> bytes:
    return seeded_tar(11, files=60)


@pytest.fixture(scope="module")
def small_tar() -> bytes:
    """For byte-by-byte feeding, which costs one native call per byte."""
    data = seeded_tar(12, files=30, max_size=12_000)
    assert 60_000 < len(data) < 400_000
    return data


def _inflate_all(inflater: StreamInflater, blob: bytes, *, chunk: int, area: int) -> bytes:
    out = bytearray()
    piece = bytearray(area)
    for start in range(0, len(blob), chunk):
        inflater.feed(blob[start : start + chunk])
        while True:
            got = inflater.inflate_into(piece)
            out += piece[:got]
            if got < area or inflater.error:
                break
    # Output still held back after the last input (a full area at the very end) comes out here.
    while got := inflater.inflate_into(piece):
        out += piece[:got]
    return bytes(out)


@pytest.mark.parametrize(("chunk", "area"), [(1 << 20, 1 << 20), (4096, 65536), (7, 300), (1, 4097)])
def test_whole_stream_across_members_for_any_cut(tar: bytes, small_tar: bytes, chunk: int, area: int) -> None:
    tar = small_tar if chunk < 100 else tar
    third = len(tar) // 3
    blob, starts = members_at(tar, [third, third, 2 * third], named=True)  # includes an empty member
    assert len(starts) == 4 and gzip.decompress(blob) == tar
    with StreamInflater() as inflater:
        assert _inflate_all(inflater, blob, chunk=chunk, area=area) == tar
        assert inflater.at_member_end and not inflater.error and inflater.input_left == 0


def test_truncated_stream_is_not_at_a_member_end(tar: bytes) -> None:
    blob = gzip.compress(tar, mtime=0)
    with StreamInflater() as inflater:
        got = _inflate_all(inflater, blob[:-3], chunk=65536, area=65536)  # inside the trailer
        assert got == tar and not inflater.at_member_end and not inflater.error
    blob2, starts = members_at(tar, [len(tar) // 2])
    with StreamInflater() as inflater:
        _inflate_all(inflater, blob2[: starts[1] + 5], chunk=65536, area=65536)  # inside a header
        assert not inflater.at_member_end and not inflater.error


def test_corrupt_data_keeps_the_output_before_the_fault(tar: bytes) -> None:
    blob = bytearray(gzip.compress(tar, mtime=0))
    spot = len(blob) // 2
    for i in range(spot, spot + 64):
        blob[i] ^= 0xA5
    with StreamInflater() as inflater:
        got = _inflate_all(inflater, bytes(blob), chunk=4096, area=4096)
        assert inflater.error, "corrupt data must be reported"
        assert len(got) > spot and got[:spot] == tar[:spot]
        assert inflater.inflate_into(bytearray(10)) == 0  # stays failed


def test_trailing_garbage_after_the_last_member_is_an_error(tar: bytes) -> None:
    blob = gzip.compress(tar, mtime=0) + b"\0" * 20
    with StreamInflater() as inflater:
        _inflate_all(inflater, blob, chunk=65536, area=65536)
        assert inflater.error


@pytest.mark.parametrize("chunk", [1 << 20, 5, 1])
def test_restart_at_every_checkpoint(tar: bytes, small_tar: bytes, chunk: int) -> None:
    """Span size 0 puts a checkpoint at every block boundary (every bit offset, and right after
    later member headers); from each one the rest of the stream inflates, its first member's
    trailer being stepped over however the input is cut."""
    fine = chunk < 100
    tar = small_tar if fine else tar
    blob, member_starts = members_at(tar, [len(tar) // 4, len(tar) // 2], mem_level=1 if fine else 8)
    ztoc = build_ztoc(io.BytesIO(blob), span_size=0, build_tool_identifier="t").ztoc
    zinfo = GzipZinfo(ztoc.compression_info.checkpoints)
    checkpoints = [zinfo.checkpoint(i) for i in range(zinfo.count)]
    assert len(checkpoints) > 8
    if fine:
        # Feeding byte by byte costs a native call per byte: take the first checkpoint of each
        # bit offset, the last one before each member start and the first one after it.
        chosen = {
            next(i for i, cp in enumerate(checkpoints) if cp.bits == bits) for bits in {cp.bits for cp in checkpoints}
        }
        for member_start in member_starts[1:]:
            before = [i for i, cp in enumerate(checkpoints) if cp.compressed_offset < member_start]
            chosen |= {before[-1], before[-1] + 1}
        checkpoints = [checkpoints[i] for i in sorted(chosen)]
    bits_seen = set()
    after_header = 0
    for cp in checkpoints:
        bits_seen.add(cp.bits)
        after_header += cp.compressed_offset in {
            start + len(b"\x1f\x8b\x08\0\0\0\0\0\0\xff") for start in member_starts[1:]
        }
        start = cp.compressed_offset - (1 if cp.bits else 0)
        with StreamInflater(cp) as inflater:
            got = _inflate_all(inflater, blob[start:], chunk=chunk, area=1 << 16)
            assert got == tar[cp.uncompressed_offset :], cp[:3]
            assert inflater.at_member_end and not inflater.error
    assert len(bits_seen) > 2
    assert after_header, "no checkpoint right after a later member's header was exercised"


def test_feed_before_the_input_is_used_up_is_refused(tar: bytes) -> None:
    blob = gzip.compress(tar, mtime=0)
    with StreamInflater() as inflater:
        inflater.feed(blob)
        assert inflater.inflate_into(bytearray(100)) == 100 and inflater.input_left > 0
        with pytest.raises(RuntimeError):
            inflater.feed(b"more")


def test_zlib_stream_and_writable_input_buffers(tar: bytes) -> None:
    """Auto-detection takes a zlib stream too; a bytearray or memoryview input is used in place."""
    blob = zlib.compress(tar, 6)
    with StreamInflater() as inflater:
        view = memoryview(bytearray(blob))
        inflater.feed(view[: len(blob) // 2])
        out = bytearray(len(tar) + 10)
        first = inflater.inflate_into(out)
        inflater.feed(view[len(blob) // 2 :])
        second = inflater.inflate_into(memoryview(out)[first:])
        assert bytes(out[: first + second]) == tar and inflater.at_member_end

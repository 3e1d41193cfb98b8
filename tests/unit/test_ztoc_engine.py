"""The one-pass gzip/tar ztoc engine: checkpoints, span digests, span reads, error handling."""

from __future__ import annotations

import gzip
import hashlib
import io

import pytest

from socikit.errors import CompressedDataError, DigestMismatchError, TarFormatError
from socikit.ztoc.builder import build_ztoc
from socikit.ztoc.compression.gzip import GzipZinfo
from socikit.ztoc.extract import file_range_reader, read_file, read_uncompressed, zinfo_of
from tests.layers import gzip_level, gzip_members, gzip_with_cli, seeded_tree, tar_members, tree_tar

SPAN = 65536


def _checked_tar(seed: int, total_bytes: int, min_files: int) -> bytes:
    """The tar of a seeded tree, after checking it holds what the tests below rely on."""
    tree = seeded_tree(seed, total_bytes=total_bytes)
    tar = tree_tar(tree)
    assert tree.file_bytes >= total_bytes and len(tar) > tree.file_bytes
    assert len(tree.files) >= min_files and tree.count("symlink") and tree.count("hardlink") and tree.count("dir")
    assert tar_members(tar) == tree.files
    return tar


@pytest.fixture(scope="module")
def small_tar() -> bytes:
    return _checked_tar(seed=9, total_bytes=3 << 20, min_files=100)


@pytest.fixture(scope="module")
def big_tar() -> bytes:
    return _checked_tar(seed=12, total_bytes=12 << 20, min_files=400)


def _compressions(tar: bytes) -> dict[str, bytes]:
    return {
        "gzip-1": gzip_level(tar, 1),
        "gzip-6": gzip_level(tar, 6),
        "gzip-9": gzip_level(tar, 9),
        "gzip-cli-name": gzip_with_cli(tar, "-6"),  # FNAME-less stdin stream with the CLI's header
        "pigz": gzip_with_cli(tar, "-6", "-b", "128", tool="pigz"),
        "multi-member": gzip_members(tar, 7),
    }


def _build(blob: bytes, algorithm: str = "gzip", span: int = SPAN):
    return build_ztoc(io.BytesIO(blob), algorithm=algorithm, span_size=span, build_tool_identifier="test")


def _check_every_file(ztoc, blob: bytes, tar: bytes) -> int:
    members = tar_members(tar)
    reader = file_range_reader(io.BytesIO(blob))
    for name, content in members.items():
        assert read_file(ztoc, reader, name) == content, name
    return len(members)


@pytest.mark.parametrize("kind", ["gzip-1", "gzip-6", "gzip-9", "gzip-cli-name", "pigz", "multi-member"])
def test_every_file_extracts_through_spans(big_tar: bytes, kind: str) -> None:
    blob = _compressions(big_tar)[kind]
    result = _build(blob)
    ztoc = result.ztoc
    assert result.blob_digest == "sha256:" + hashlib.sha256(blob).hexdigest()
    assert ztoc.compressed_archive_size == len(blob)
    assert ztoc.compression_info.num_spans > 10
    assert _check_every_file(ztoc, blob, big_tar) > 100


def test_uncompressed_layer_every_file(big_tar: bytes) -> None:
    result = _build(big_tar, algorithm="uncompressed")
    ztoc = result.ztoc
    assert ztoc.compression_info.compression_algorithm == "uncompressed"
    assert ztoc.compression_info.num_spans == -(-len(big_tar) // SPAN)
    for i, digest in enumerate(ztoc.compression_info.span_digests):
        chunk = big_tar[i * SPAN : (i + 1) * SPAN]
        assert digest == "sha256:" + hashlib.sha256(chunk).hexdigest()
    assert _check_every_file(ztoc, big_tar, big_tar) > 100


def test_span_digests_cover_exact_compressed_ranges(big_tar: bytes) -> None:
    blob = gzip_level(big_tar, 6)
    ztoc = _build(blob).ztoc
    zinfo = GzipZinfo(ztoc.compression_info.checkpoints)
    assert zinfo.max_span_id == ztoc.compression_info.max_span_id
    for span in range(zinfo.count):
        start, end = zinfo.compressed_range(span, len(blob))
        expected = "sha256:" + hashlib.sha256(blob[start:end]).hexdigest()
        assert ztoc.compression_info.span_digests[span] == expected
    # The gzip header belongs to no span; the last span includes the 8-byte trailer.
    assert zinfo.checkpoint(0).compressed_offset == 10
    assert zinfo.compressed_range(zinfo.max_span_id, len(blob))[1] == len(blob)


def test_checkpoint_rule(big_tar: bytes) -> None:
    """Every span but the last is strictly longer than the span size; checkpoint 0 is at out=0."""
    blob = gzip_level(big_tar, 6)
    zinfo = GzipZinfo(_build(blob).ztoc.compression_info.checkpoints)
    outs = [zinfo.checkpoint(i).uncompressed_offset for i in range(zinfo.count)]
    assert outs[0] == 0
    assert all(b - a > SPAN for a, b in zip(outs, outs[1:], strict=False))
    assert zinfo.span_size == SPAN


def test_checkpoints_with_every_bit_offset_are_read_correctly(big_tar: bytes) -> None:
    """Span 0 puts a checkpoint at every block boundary; across compressions all 8 bit offsets
    occur, and decompressing a whole span from each checkpoint gives the tar's bytes."""
    seen_bits: set[int] = set()
    for kind in ("gzip-1", "gzip-6", "gzip-9", "pigz"):
        blob = _compressions(big_tar)[kind]
        ztoc = _build(blob, span=0).ztoc
        zinfo = zinfo_of(ztoc)
        reader = file_range_reader(io.BytesIO(blob))
        for span in range(zinfo.count):
            cp = zinfo.checkpoint(span)
            if cp.bits in seen_bits and span % 7:
                continue
            seen_bits.add(cp.bits)
            start, end = zinfo.uncompressed_range(span, ztoc.uncompressed_archive_size)
            length = min(end - start, 4096)
            got = read_uncompressed(ztoc, reader, start, length, zinfo=zinfo)
            assert got == big_tar[start : start + length], (kind, span, cp.bits)
    assert seen_bits == set(range(8))


def test_multi_member_checkpoints_after_member_headers(small_tar: bytes) -> None:
    blob = gzip_members(small_tar, 5)
    ztoc = _build(blob, span=0).ztoc
    zinfo = zinfo_of(ztoc)
    offsets = {zinfo.checkpoint(i).compressed_offset for i in range(zinfo.count)}
    # Each later member's header ends 10 bytes after the previous member's trailer.
    member_starts = []
    pos = 0
    for _ in range(5):
        member = gzip.GzipFile(fileobj=io.BytesIO(blob[pos:]))
        member.read()
        # The reader consumed exactly one member: find the next header magic.
        nxt = blob.find(b"\x1f\x8b\x08", pos + 10)
        if nxt < 0:
            break
        member_starts.append(nxt)
        pos = nxt
    assert member_starts, "expected several members"
    assert any(start + 10 in offsets for start in member_starts)
    assert _check_every_file(ztoc, blob, small_tar) > 10


def test_gzip_header_with_optional_fields(small_tar: bytes) -> None:
    """FEXTRA/FNAME/FCOMMENT/FHCRC headers move checkpoint 0 past them."""
    import struct
    import zlib

    body = zlib.compressobj(6, zlib.DEFLATED, -15)
    deflated = body.compress(small_tar) + body.flush()
    extra = b"AB" + struct.pack("<H", 70000 % 65536) + b"x" * (70000 % 65536)
    header = b"\x1f\x8b\x08" + bytes([0x04 | 0x08 | 0x10 | 0x02]) + b"\0\0\0\0\0\xff"
    header += struct.pack("<H", len(extra)) + extra + b"name.tar\0" + b"a comment\0"
    header += struct.pack("<H", zlib.crc32(header) & 0xFFFF)
    trailer = struct.pack("<II", zlib.crc32(small_tar), len(small_tar) & 0xFFFFFFFF)
    blob = header + deflated + trailer
    ztoc = _build(blob).ztoc
    assert zinfo_of(ztoc).checkpoint(0).compressed_offset == len(header)
    assert _check_every_file(ztoc, blob, small_tar) > 10


def test_truncated_blob_is_an_error(small_tar: bytes) -> None:
    blob = gzip_level(small_tar, 6)
    with pytest.raises(CompressedDataError, match="ends early"):
        _build(blob[: len(blob) // 2])


def test_corrupt_deflate_data_is_an_error(small_tar: bytes) -> None:
    blob = bytearray(gzip_level(small_tar, 6))
    for i in range(200, 400):
        blob[i] ^= 0xFF
    with pytest.raises((CompressedDataError, TarFormatError)):
        _build(bytes(blob))


def test_crc_mismatch_is_an_error(small_tar: bytes) -> None:
    blob = bytearray(gzip_level(small_tar, 6))
    blob[-8] ^= 0x01
    with pytest.raises(CompressedDataError, match="check"):
        _build(bytes(blob))


def test_wrong_expected_digest(small_tar: bytes) -> None:
    blob = gzip_level(small_tar, 6)
    with pytest.raises(DigestMismatchError):
        build_ztoc(io.BytesIO(blob), span_size=SPAN, build_tool_identifier="t", expected_digest="sha256:" + "0" * 64)


def test_non_tar_payload_is_an_error() -> None:
    blob = gzip_level(b"this is not a tar archive " * 100, 6)
    with pytest.raises(TarFormatError):
        _build(blob)


def test_not_gzip_is_an_error(small_tar: bytes) -> None:
    with pytest.raises(CompressedDataError):
        _build(small_tar)

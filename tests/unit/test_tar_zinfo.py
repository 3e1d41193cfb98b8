"""The uncompressed-tar zinfo blob (TarZinfo flatbuffer) and its span geometry."""

from __future__ import annotations

import itertools
import json

import flatbuffers
import pytest

from socikit.errors import ZtocFormatError
from socikit.ztoc.compression.tar import TAR_ZINFO_VERSION, TarZinfo, dumps_tar_zinfo, loads_tar_zinfo
from tests.vectors import all_vectors

# Fact sheet §2.6: span 65536 over a 409600-byte tar.
EXAMPLE = bytes.fromhex(
    "140000000000000000000a001c0018000c0004000a000000004006000000000000000100000000000000000002000000"
)


def oracle(version: int, span_size: int, size: int) -> bytes:
    """The flatbuffers package's Builder, called as the reference's TarZinfo.Bytes() does."""
    b = flatbuffers.Builder(0)
    b.StartObject(3)
    b.PrependInt32Slot(0, version, 0)
    b.PrependInt64Slot(1, span_size, 0)
    b.PrependInt64Slot(2, size, 0)
    b.Finish(b.EndObject())
    return bytes(b.Output())


def test_fact_sheet_example_bytes() -> None:
    assert len(EXAMPLE) == 48
    assert dumps_tar_zinfo(65536, 409600) == EXAMPLE
    assert loads_tar_zinfo(EXAMPLE) == (TAR_ZINFO_VERSION, 65536, 409600)


_VALUES = [0, 1, -1, 511, 65536, 409600, 4 << 20, 1 << 40, -(1 << 63), (1 << 63) - 1]


@pytest.mark.parametrize("version", [0, 2, -7])
def test_matches_flatbuffers_builder_for_every_shape(version: int) -> None:
    # Zero values are not written, which changes alignment and vtable length.
    for span_size, size in itertools.product(_VALUES, _VALUES):
        blob = dumps_tar_zinfo(span_size, size, version=version)
        assert blob == oracle(version, span_size, size), (span_size, size)
        assert loads_tar_zinfo(blob) == (version, span_size, size)


def test_out_of_range_values_are_refused() -> None:
    with pytest.raises(ZtocFormatError, match="int64"):
        dumps_tar_zinfo(1 << 63, 10)
    with pytest.raises(ZtocFormatError, match="int32"):
        dumps_tar_zinfo(10, 10, version=1 << 31)


def test_uncompressed_golden_vector_blob() -> None:
    found = 0
    for vector in all_vectors():
        for path in (vector.path / "decoded").glob("*.decoded.json"):
            tar = json.loads(path.read_text())["compression_info"].get("tar_zinfo")
            if tar is None:
                continue
            found += 1
            raw = bytes.fromhex(tar["raw_hex"])
            assert dumps_tar_zinfo(tar["span_size"], tar["size"]) == raw
            zinfo = TarZinfo(raw)
            expected = (tar["version"], tar["span_size"], tar["size"])
            assert (zinfo.version, zinfo.span_size, zinfo.size) == expected
            assert zinfo.to_blob() == raw
    assert found


def test_every_truncation_is_a_format_error() -> None:
    # The version field is the last thing in the buffer, so every cut loses referenced bytes.
    for cut in range(len(EXAMPLE)):
        with pytest.raises(ZtocFormatError):
            loads_tar_zinfo(EXAMPLE[:cut])


@pytest.mark.parametrize(
    "blob",
    [
        b"",
        b"\x00" * 7,
        bytes.fromhex("ff000000") + bytes(8),  # root table past the end
        bytes.fromhex("04000000") + bytes.fromhex("7fffffff"),  # vtable far before the buffer
        bytes.fromhex("04000000fcffffff0300"),  # odd vtable size
    ],
)
def test_malformed_blobs(blob: bytes) -> None:
    with pytest.raises(ZtocFormatError):
        loads_tar_zinfo(blob)


def test_geometry_when_size_is_not_a_multiple_of_the_span() -> None:
    z = TarZinfo(dumps_tar_zinfo(1000, 2500))
    assert z.max_span_id == 2
    assert z.num_spans == z.count == 3
    assert [z.span_of(o) for o in (0, 999, 1000, 2499)] == [0, 0, 1, 2]
    assert [z.compressed_range(i) for i in range(3)] == [(0, 1000), (1000, 2000), (2000, 2500)]
    assert [z.uncompressed_range(i) for i in range(3)] == [(0, 1000), (1000, 2000), (2000, 2500)]


def test_geometry_when_size_is_a_multiple_of_the_span() -> None:
    z = TarZinfo(dumps_tar_zinfo(65536, 409600 - 409600 % 65536))
    assert z.max_span_id == 5
    assert z.compressed_range(5) == (327680, 393216)


def test_last_span_ends_at_the_size_the_caller_passes() -> None:
    # The reference passes the blob size for compressed ranges and uncompressed_archive_size
    # (403968 for a 409600-byte padded tar) for uncompressed ones.
    z = TarZinfo(EXAMPLE)
    assert z.max_span_id == 6
    assert z.compressed_range(6, 409600) == (393216, 409600)
    assert z.uncompressed_range(6, 403968) == (393216, 403968)
    assert z.uncompressed_range(2, 403968) == (131072, 196608)


def test_span_out_of_range_is_an_error() -> None:
    z = TarZinfo(EXAMPLE)
    with pytest.raises(ZtocFormatError, match="span 7"):
        z.compressed_range(7)
    with pytest.raises(ZtocFormatError, match="span -1"):
        z.uncompressed_range(-1)


def test_empty_file_has_no_spans() -> None:
    z = TarZinfo(dumps_tar_zinfo(4096, 0))
    assert z.max_span_id == -1
    assert z.num_spans == 0


@pytest.mark.parametrize("span_size", [0, -4096])
def test_non_positive_span_size_is_a_clear_error(span_size: int) -> None:
    with pytest.raises(ZtocFormatError, match="span size must be positive"):
        TarZinfo(dumps_tar_zinfo(span_size, 409600))


def test_from_geometry_round_trips() -> None:
    z = TarZinfo.from_geometry(65536, 409600)
    assert z.to_blob() == EXAMPLE

"""`ztoc.toc.parse_header`, the pure half of the TOC builder: one header block in, its fields out,
for every header format Go's reader tells apart; the caches only memoize."""

from __future__ import annotations

import tarfile

import pytest

from socikit.errors import TarFormatError
from socikit.ztoc.toc import HeaderCaches, parse_header


def _block(fmt: int, **attrs: object) -> bytes:
    info = tarfile.TarInfo(str(attrs.pop("name", "dir/file.txt")))
    for key, value in attrs.items():
        setattr(info, key, value)
    return info.tobuf(fmt)[-512:]  # the entry's own header (after any PAX/GNU records)


def _sum(block: bytes) -> int:
    return sum(block)


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_fields_of_each_format(fmt: int) -> None:
    block = _block(
        fmt,
        size=1234,
        mode=0o4755,
        uid=1000,
        gid=100,
        mtime=1_700_000_123,
        uname="alice",
        gname="staff",
        type=tarfile.REGTYPE,
    )
    fields = parse_header(block, 0, 4096, _sum(block), HeaderCaches())
    assert fields == (b"0", b"dir/file.txt", b"", 1234, 0o4755, 1000, 100, 1_700_000_123, "alice", "staff", 0, 0)


def test_ustar_prefix_and_devices() -> None:
    long_dir = "d" * 120
    block = _block(tarfile.USTAR_FORMAT, name=f"{long_dir}/node", type=tarfile.CHRTYPE, devmajor=4, devminor=64)
    typeflag, name, *_, devmajor, devminor = parse_header(block, 0, 0, _sum(block), HeaderCaches())
    assert typeflag == b"3" and name == f"{long_dir}/node".encode() and (devmajor, devminor) == (4, 64)


def test_v7_header_has_no_owner_names() -> None:
    block = bytearray(_block(tarfile.USTAR_FORMAT, uname="alice", gname="staff", size=5))
    block[257:265] = bytes(8)  # no magic/version: a V7 header
    block[148:156] = b"        "
    fixed = _with_checksum(block, sum(block))
    fields = parse_header(fixed, 0, 0, _sum(fixed), HeaderCaches())
    assert fields[8:] == ("", "", 0, 0) and fields[3] == 5


def _with_checksum(block: bytearray, value: int) -> bytes:
    block[148:156] = f"{value:06o}\0 ".encode()
    return bytes(block)


def test_base256_numbers_and_the_signed_checksum() -> None:
    block = bytearray(_block(tarfile.GNU_FORMAT, size=3, uid=0))
    block[108:116] = b"\x80" + (2**40).to_bytes(7, "big")  # base-256 uid
    block[148:156] = b"        "
    unsigned = sum(block)
    signed = unsigned - 256 * sum(1 for b in block if b & 0x80)
    assert signed != unsigned
    for stored in (unsigned, signed):  # old writers summed bytes as int8: Go takes either
        fixed = _with_checksum(block, stored)
        assert parse_header(fixed, 0, 0, _sum(fixed), HeaderCaches())[5] == 2**40
    wrong = _with_checksum(block, unsigned + 1)
    with pytest.raises(TarFormatError, match="checksum"):
        parse_header(wrong, 0, 0, _sum(wrong), HeaderCaches())


def test_bad_checksum_and_bad_number() -> None:
    block = bytearray(_block(tarfile.USTAR_FORMAT, size=10))
    block[0] ^= 1
    with pytest.raises(TarFormatError, match="checksum mismatch"):
        parse_header(bytes(block), 0, 1024, _sum(bytes(block)), HeaderCaches())
    block = bytearray(_block(tarfile.USTAR_FORMAT, size=10))
    block[100:108] = b"0009999\0"  # '9' is not octal
    block[148:156] = b"        "
    fixed = _with_checksum(block, sum(block))
    with pytest.raises(TarFormatError, match="offset 1024"):
        parse_header(fixed, 0, 1024, _sum(fixed), HeaderCaches())


def test_caches_only_memoize() -> None:
    caches = HeaderCaches()
    blocks = [
        _block(tarfile.PAX_FORMAT, name=f"f{i}", mode=0o600 + i % 3, mtime=1_700_000_000 + i % 2, uname=f"u{i % 2}")
        for i in range(20)
    ]
    warm = [parse_header(b, 0, 0, _sum(b), caches) for b in blocks]
    cold = [parse_header(b, 0, 0, _sum(b), HeaderCaches()) for b in blocks]
    assert warm == cold
    assert len(caches.ids) == 3 and len(caches.mtimes) == 2 and len(caches.owners) == 2
    # A block inside a larger buffer at any offset reads the same (the builder passes chunk views).
    buffer = memoryview(b"\xaa" * 100 + blocks[7] + b"\xbb" * 50)
    assert parse_header(buffer, 100, 0, _sum(blocks[7]), caches) == warm[7]

"""The streaming tar TOC builder against the reference: the golden ztocs made by Go soci, tars
written by Python's tarfile in every format, and hand-made header blocks for the corners of Go's
archive/tar reader (checksums, base-256, V7/STAR/GNU layouts, PAX validation, early ends)."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest

from socikit.errors import TarFormatError, UnsupportedLayerError
from socikit.ztoc.model import FileMetadata
from socikit.ztoc.toc import TocBuilder, TocResult, build_toc, format_mod_time
from tests.vectors import CONFORMANCE, Vector, all_vectors

MTIME = 1700000000
MTIME_TEXT = "2023-11-14T22:13:20Z"
END = bytes(1024)


# -- helpers --------------------------------------------------------------------------------------


def _feed(raw: bytes, chunk: int) -> TocResult:
    builder = TocBuilder()
    for i in range(0, len(raw), chunk):
        if not builder.feed(raw[i : i + chunk]):
            break
    return builder.finish()


def _octal(value: int, width: int) -> bytes:
    return b"%0*o\0" % (width - 1, value)


def _block(
    name: bytes = b"f",
    *,
    typeflag: bytes = b"0",
    size: int = 0,
    mode: int = 0o644,
    uid: int = 1000,
    gid: int = 1000,
    mtime: int = MTIME,
    linkname: bytes = b"",
    magic: bytes = b"ustar\x0000",
    uname: bytes = b"user",
    gname: bytes = b"group",
    devmajor: int = 0,
    devminor: int = 0,
    prefix: bytes = b"",
    raw: dict[int, bytes] | None = None,
    signed_checksum: bool = False,
) -> bytes:
    """One 512-byte header block with a correct checksum; `raw` overwrites bytes at offsets."""
    blk = bytearray(512)

    def put(offset: int, value: bytes) -> None:
        blk[offset : offset + len(value)] = value

    put(0, name)
    put(100, _octal(mode, 8))
    put(108, _octal(uid, 8))
    put(116, _octal(gid, 8))
    put(124, _octal(size, 12))
    put(136, _octal(mtime, 12))
    put(156, typeflag)
    put(157, linkname)
    put(257, magic)
    put(265, uname)
    put(297, gname)
    put(329, _octal(devmajor, 8))
    put(337, _octal(devminor, 8))
    put(345, prefix)
    for offset, value in (raw or {}).items():
        put(offset, value)
    put(148, b" " * 8)
    total = sum(b - 256 if signed_checksum and b > 127 else b for b in blk)
    put(148, b"%06o\0 " % total)
    return bytes(blk)


def _entry(header: bytes, data: bytes = b"") -> bytes:
    return header + data + bytes(-len(data) % 512)


def _pax(records: list[tuple[bytes, bytes]], typeflag: bytes = b"x") -> bytes:
    """An extension entry ('x' or 'g') holding `records`, each as "<len> key=value\\n"."""
    payload = b""
    for key, value in records:
        body = b" " + key + b"=" + value + b"\n"
        length = len(body) + 1
        while len(str(length)) + len(body) != length:
            length += 1
        payload += str(length).encode() + body
    return _entry(_block(b"PaxHeaders/f", typeflag=typeflag, size=len(payload)), payload)


def _tar(members: list[tuple[tarfile.TarInfo, bytes | None]], fmt: int) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def _info(name: str, type_: bytes = tarfile.REGTYPE, size: int = 0, **attrs: Any) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = type_
    info.size = size
    info.mtime = attrs.pop("mtime", MTIME)
    info.uname, info.gname = "user", "group"
    for key, value in attrs.items():
        setattr(info, key, value)
    return info


def _data_offsets(raw: bytes) -> list[tuple[str, int]]:
    """(name, data offset) per member as Python's tarfile reads them: an independent reader."""
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        return [(m.name, m.offset_data) for m in tar.getmembers()]


# -- golden vectors made by the reference ---------------------------------------------------------


def _golden_cases() -> list[Any]:
    cases = []
    for vector in all_vectors():
        for layer, ztoc_digest in vector.layer_ztoc_pairs():
            cases.append(pytest.param(vector, layer, ztoc_digest, id=f"{vector.name}-{ztoc_digest[7:19]}"))
    return cases


def _layer_tar(vector: Vector, layer: dict[str, Any]) -> bytes:
    blob = vector.blob(layer["layer_digest"]).read_bytes()
    return gzip.decompress(blob) if blob[:2] == b"\x1f\x8b" else blob


def _decoded(vector: Vector, ztoc_digest: str) -> dict[str, Any]:
    path = vector.path / "decoded" / f"ztoc-{ztoc_digest.split(':', 1)[1]}.decoded.json"
    result: dict[str, Any] = json.loads(path.read_text())
    return result


def _json_bytes(value: str | dict[str, str]) -> bytes:
    """The decoded dumps write valid UTF-8 as a string and anything else as {"hex": ...}."""
    if isinstance(value, dict):
        return bytes.fromhex(value["hex"])
    return value.encode("utf-8", "surrogateescape")


def _json_text(value: str | dict[str, str]) -> str:
    return _json_bytes(value).decode("utf-8", "surrogateescape")


def test_golden_vectors_are_present() -> None:
    assert len(_golden_cases()) >= 10  # every vector case contributes its indexed layers


@pytest.mark.parametrize(("vector", "layer", "ztoc_digest"), _golden_cases())
def test_golden_toc_matches_the_reference(vector: Vector, layer: dict[str, Any], ztoc_digest: str) -> None:
    expected = _decoded(vector, ztoc_digest)
    result = build_toc(io.BytesIO(_layer_tar(vector, layer)))
    assert result.uncompressed_archive_size == expected["uncompressed_archive_size"]
    assert len(result.entries) == len(expected["toc"])
    for got, want in zip(result.entries, expected["toc"], strict=True):
        assert isinstance(got, FileMetadata)
        assert got.name == _json_text(want["name"])
        assert got.type == want["type"], got.name
        assert got.uncompressed_offset == want["uncompressed_offset"], got.name
        assert got.uncompressed_size == want["uncompressed_size"], got.name
        assert got.linkname == _json_text(want["linkname"]), got.name
        assert got.mode == want["mode"], got.name
        assert (got.uid, got.gid) == (want["uid"], want["gid"]), got.name
        assert (got.uname, got.gname) == (_json_text(want["uname"]), _json_text(want["gname"])), got.name
        assert got.mod_time == want["mod_time"], got.name
        assert (got.devmajor, got.devminor) == (want["devmajor"], want["devminor"]), got.name
        assert got.xattrs == tuple((_json_bytes(x["key"]), _json_bytes(x["value"])) for x in want["xattrs"])


def test_tricky_vector_exercises_binary_xattrs_and_subsecond_times() -> None:
    """Guards the golden comparison above against a vector that lost its hard cases."""
    vector = next(v for v in all_vectors() if v.name == "tricky-pax")
    layer, _ = vector.layer_ztoc_pairs()[0]
    entries = {e.name: e for e in build_toc(io.BytesIO(_layer_tar(vector, layer))).entries}
    assert dict(entries["home/binary-xattr"].xattrs)[b"SCHILY.xattr.user.bin"] == b"\x00\xff\xfe\x01"
    assert entries["etc/subsecond"].mod_time == "2023-11-14T22:13:20.123456789Z"
    assert entries["home/bigid"].gid == 4294967294


# Cuts inside and at header blocks, inside PAX records and file data, and one that leaves only the
# last byte for a second feed (-1: the input's length minus one).
@pytest.mark.parametrize("chunk", [1, 511, 512, 513, 4096 + 7, 65536 + 1, 300_001, -1])
def test_chunk_size_does_not_change_the_result(chunk: int) -> None:
    vector = next(v for v in all_vectors() if v.name == "tricky-pax")
    layer, _ = vector.layer_ztoc_pairs()[0]
    raw = _layer_tar(vector, layer)
    if chunk == -1:
        chunk = len(raw) - 1
    assert chunk < len(raw), "every case must cut the input"
    whole = TocBuilder()
    assert whole.feed(raw) is False  # the archive ends before the record padding
    expected = whole.finish()
    assert len(expected.entries) > 40
    assert _feed(raw, chunk) == expected


def test_memoryview_and_bytearray_chunks() -> None:
    raw = _tar([(_info(f"f{i}", size=i * 300), b"q" * (i * 300)) for i in range(12)], tarfile.PAX_FORMAT)
    expected = build_toc(io.BytesIO(raw))
    for wrap in (bytearray, memoryview):
        builder = TocBuilder()
        for i in range(0, len(raw), 700):
            builder.feed(wrap(raw[i : i + 700]))
        assert builder.finish() == expected


# -- tars written by Python's tarfile -------------------------------------------------------------

LONG_DIR = "d/" + "x" * 90 + "/" + "y" * 60  # over 100 bytes: prefix split (ustar) or extension


def _members(fmt: int) -> list[tuple[tarfile.TarInfo, bytes | None]]:
    members: list[tuple[tarfile.TarInfo, bytes | None]] = [
        (_info("d/", tarfile.DIRTYPE, mode=0o755), None),
        (_info(LONG_DIR + "/file.txt", size=5, mode=0o4755, uid=1000, gid=100), b"hello"),
        (_info("d/link", tarfile.SYMTYPE, linkname="../target", mode=0o777), None),
        (_info("d/hard", tarfile.LNKTYPE, linkname="d/empty"), None),
        (_info("d/null", tarfile.CHRTYPE, devmajor=1, devminor=3, mode=0o666), None),
        (_info("d/sda", tarfile.BLKTYPE, devmajor=8, devminor=0, mode=0o660), None),
        (_info("d/fifo", tarfile.FIFOTYPE, mode=0o600), None),
        (_info("d/legacy", tarfile.AREGTYPE, size=3), b"old"),
        (_info("d/empty", size=0), b""),
    ]
    if fmt != tarfile.USTAR_FORMAT:  # ustar cannot hold these
        members += [
            (_info("d/" + "n" * 150, size=600), b"n" * 600),
            (_info("d/longlink", tarfile.SYMTYPE, linkname="t" * 130), None),
            (_info("d/longhard", tarfile.LNKTYPE, linkname=LONG_DIR + "/file.txt"), None),
        ]
    return members


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_tarfile_formats(fmt: int) -> None:
    members = _members(fmt)
    raw = _tar(members, fmt)
    result = build_toc(io.BytesIO(raw))
    assert len(result.entries) == len(members)
    for entry, (info, _), (name, offset) in zip(result.entries, members, _data_offsets(raw), strict=True):
        assert entry.name == info.name  # Go keeps the trailing slash of "d/"
        assert name == info.name.rstrip("/")
        assert entry.uncompressed_offset == offset, entry.name
        assert entry.uncompressed_size == info.size
        assert entry.linkname == info.linkname
        assert entry.mode == info.mode
        assert (entry.uid, entry.gid, entry.uname, entry.gname) == (info.uid, info.gid, "user", "group")
        assert (entry.devmajor, entry.devminor) == (info.devmajor, info.devminor)
        assert entry.mod_time == MTIME_TEXT
    types = [e.type for e in result.entries]
    assert types[:9] == ["dir", "reg", "symlink", "hardlink", "char", "block", "fifo", "reg", "reg"]
    if fmt == tarfile.PAX_FORMAT:
        assert dict(result.entries[1].xattrs) == {b"path": (LONG_DIR + "/file.txt").encode()}
        assert result.entries[0].xattrs == ()
    else:
        assert all(e.xattrs == () for e in result.entries)  # GNU long names are no PAX records
    last = result.entries[-1]
    data_end = last.uncompressed_offset + (last.uncompressed_size if last.type == "reg" else 0)
    # tarfile pads to a 10240-byte record; the archive ends right after the two zero blocks.
    assert result.uncompressed_archive_size == -(-data_end // 512) * 512 + 1024 < len(raw)


def test_ustar_prefix_split_is_joined() -> None:
    raw = _tar([(_info(LONG_DIR + "/file.txt", size=1), b"z")], tarfile.USTAR_FORMAT)
    assert raw[345:437] == LONG_DIR[:92].encode()  # really split into the prefix field
    assert build_toc(io.BytesIO(raw)).entries[0].name == LONG_DIR + "/file.txt"


def test_gnu_base256_numbers() -> None:
    members = [(_info("big", uid=3_000_000, gid=2_097_152, mtime=-1), None)]
    raw = _tar(members, tarfile.GNU_FORMAT)
    assert raw[108] & 0x80 and raw[136] & 0x80  # tarfile wrote uid and mtime in base-256
    entry = build_toc(io.BytesIO(raw)).entries[0]
    assert (entry.uid, entry.gid) == (3_000_000, 2_097_152)
    assert entry.mod_time == "1969-12-31T23:59:59Z"


def test_base256_size_and_negative_uid() -> None:
    size_field = b"\x80" + (5).to_bytes(11, "big")
    uid_field = b"\xff" * 8  # base-256 -1: Go's int, stored as uint32
    raw = _entry(_block(b"f", raw={124: size_field, 108: uid_field}), b"12345") + END
    entry = build_toc(io.BytesIO(raw)).entries[0]
    assert (entry.uncompressed_size, entry.uid) == (5, 0xFFFFFFFF)
    assert build_toc(io.BytesIO(raw)).uncompressed_archive_size == 1024 + 1024


def test_pax_records_override_and_are_all_kept_sorted() -> None:
    info = _info("short", size=1)
    info.pax_headers = {
        "SCHILY.xattr.user.bin": "\udcff\x00x",
        "comment": "hi",
        "mtime": "1700000000.25",
        "uid": "3000000",
        "gname": "staff",
    }
    raw = _tar([(info, b"z")], tarfile.PAX_FORMAT)
    entry = build_toc(io.BytesIO(raw)).entries[0]
    keys = [k for k, _ in entry.xattrs]
    assert keys == sorted(keys)
    records = dict(entry.xattrs)
    assert records[b"SCHILY.xattr.user.bin"] == b"\xff\x00x"
    assert records[b"comment"] == b"hi" and records[b"mtime"] == b"1700000000.25"
    assert (entry.mod_time, entry.uid, entry.gname) == ("2023-11-14T22:13:20.25Z", 3_000_000, "staff")


# -- hand-made headers: Go's reader rules ---------------------------------------------------------


def test_header_only_types_consume_no_data_but_report_their_size() -> None:
    raw = _entry(_block(b"l", typeflag=b"2", size=700, linkname=b"t")) + _entry(_block(b"f", size=2), b"ab") + END
    first, second = build_toc(io.BytesIO(raw)).entries
    assert (first.type, first.uncompressed_size, first.uncompressed_offset) == ("symlink", 700, 512)
    assert second.uncompressed_offset == 1024


def test_legacy_nul_typeflag_with_trailing_slash_is_a_directory() -> None:
    raw = _entry(_block(b"olddir/", typeflag=b"\0", size=512)) + _entry(
        _block(b"oldfile", typeflag=b"\0", size=1), b"x"
    )
    result = build_toc(io.BytesIO(raw + END))
    assert [(e.name, e.type, e.uncompressed_size) for e in result.entries] == [
        ("olddir/", "dir", 512),
        ("oldfile", "reg", 1),
    ]
    assert result.entries[1].uncompressed_offset == 1024  # the directory's size skipped nothing


def test_v7_header_ignores_ustar_fields() -> None:
    raw = _block(b"name", magic=b"\0" * 8, uname=b"ignored", devmajor=7, prefix=b"ignored-prefix")
    entry = build_toc(io.BytesIO(raw + END)).entries[0]
    assert (entry.name, entry.uname, entry.gname, entry.devmajor) == ("name", "", "", 0)


def test_star_header_has_a_131_byte_prefix() -> None:
    raw = _block(b"name", prefix=b"p" * 131, raw={476: _octal(5, 12), 508: b"tar\0"})
    assert build_toc(io.BytesIO(raw + END)).entries[0].name == "p" * 131 + "/name"
    bad_atime = _block(b"name", prefix=b"p", raw={476: b"9" * 11, 508: b"tar\0"})
    with pytest.raises(TarFormatError):
        build_toc(io.BytesIO(bad_atime + END))


def test_gnu_header_reads_owner_and_devices_and_old_go_prefix() -> None:
    gnu = b"ustar  \0"
    entry = build_toc(io.BytesIO(_block(b"dev", typeflag=b"3", magic=gnu, devmajor=4, devminor=5) + END)).entries[0]
    assert (entry.uname, entry.devmajor, entry.devminor) == ("user", 4, 5)
    # Go before 1.8 wrote a ustar prefix into GNU headers; it does not parse as atime: a prefix.
    entry = build_toc(io.BytesIO(_block(b"f", magic=gnu, prefix=b"old/go") + END)).entries[0]
    assert entry.name == "old/go/f"
    # Valid octal atime/ctime are times, not a prefix.
    entry = build_toc(io.BytesIO(_block(b"f", magic=gnu, prefix=_octal(1, 12) + _octal(2, 12)) + END)).entries[0]
    assert entry.name == "f"


def test_signed_checksum_is_accepted_and_a_bad_one_is_not() -> None:
    name = "é".encode() * 3
    raw = _block(name, signed_checksum=True)
    assert build_toc(io.BytesIO(raw + END)).entries[0].name == "ééé"
    broken = bytearray(_block(b"a", size=1)) + b"a".ljust(512, b"\0") + END
    broken[0] ^= 1
    with pytest.raises(TarFormatError, match="checksum"):
        build_toc(io.BytesIO(bytes(broken)))


@pytest.mark.parametrize(
    "raw_fields",
    [{100: b"0000x44\0"}, {124: b"00000000009\0"}, {124: b"\x80" + b"\xff" * 11}, {148: b"garbage\0"}],
    ids=["bad-octal-mode", "octal-nine", "base256-overflow", "bad-checksum-field"],
)
def test_malformed_numbers_are_format_errors(raw_fields: dict[int, bytes]) -> None:
    raw = bytearray(_block(b"f", raw={k: v for k, v in raw_fields.items() if k != 148}))
    if 148 in raw_fields:
        raw[148:156] = raw_fields[148]
    with pytest.raises(TarFormatError, match="offset 0"):
        build_toc(io.BytesIO(bytes(raw) + END))


def test_octal_fields_with_spaces_and_nuls() -> None:
    raw = _block(b"f", raw={100: b"  644 \0\0", 124: b"\0\0\0\0 0000003 "}) + b"abc".ljust(512, b"\0") + END
    entry = build_toc(io.BytesIO(raw)).entries[0]
    assert (entry.mode, entry.uncompressed_size) == (0o644, 3)


def test_negative_sizes() -> None:
    negative = b"\xff" * 12  # base-256 -1
    with pytest.raises(TarFormatError, match="negative"):
        build_toc(io.BytesIO(_block(b"f", raw={124: negative}) + END))
    # A header-only type ignores its size, as Go's handleRegularFile does.
    entry = build_toc(io.BytesIO(_block(b"d/", typeflag=b"5", raw={124: negative}) + END)).entries[0]
    assert (entry.type, entry.uncompressed_size) == ("dir", -1)
    # PAX may not make a regular file's size negative either.
    with pytest.raises(TarFormatError, match="negative"):
        build_toc(io.BytesIO(_pax([(b"size", b"-3")]) + _block(b"f") + END))


def test_pax_semantics() -> None:
    raw = (
        _pax([(b"path", b"first"), (b"comment", b"dropped")])
        + _pax([(b"path", b"second"), (b"uname", b""), (b"uid", b"-1"), (b"gid", b"4294967301")])
        + _entry(_block(b"f", size=600, uname=b"kept", gname=b"g"), b"q" * 600)
        + _entry(_block(b"plain"))
        + END
    )
    first, second = build_toc(io.BytesIO(raw)).entries
    assert first.name == "second"  # a later 'x' replaces an earlier one entirely
    assert first.uname == "kept"  # an empty value keeps the header's value
    assert (first.uid, first.gid) == (0xFFFFFFFF, 5)  # Go int, cast to uint32
    assert first.xattrs == ((b"gid", b"4294967301"), (b"path", b"second"), (b"uid", b"-1"), (b"uname", b""))
    assert first.uncompressed_offset == 2560 and first.uncompressed_size == 600
    assert second.xattrs == () and second.name == "plain"  # records apply to one entry only


@pytest.mark.parametrize(
    ("mtime", "expected"),
    [
        (b"1700000000.123456789123", "2023-11-14T22:13:20.123456789Z"),  # truncated to 9 digits
        (b"1700000000.1", "2023-11-14T22:13:20.1Z"),
        (b"-1.5", "1969-12-31T23:59:58.5Z"),  # the fraction takes the sign of the seconds
        (b"+10", "1970-01-01T00:00:10Z"),
        (b"1700000000.", MTIME_TEXT),
    ],
)
def test_pax_mtime(mtime: bytes, expected: str) -> None:
    raw = _pax([(b"mtime", mtime)]) + _block(b"f", mtime=0) + END
    assert build_toc(io.BytesIO(raw)).entries[0].mod_time == expected


@pytest.mark.parametrize(
    "records",
    [
        [(b"mtime", b"1.5x")],
        [(b"atime", b"soon")],
        [(b"uid", b"12ab")],
        [(b"size", b"99999999999999999999")],
        [(b"path", b"a\0b")],
        [(b"key\0", b"v")],
    ],
)
def test_invalid_pax_values_are_format_errors(records: list[tuple[bytes, bytes]]) -> None:
    with pytest.raises(TarFormatError):
        build_toc(io.BytesIO(_pax(records) + _block(b"f") + END))


@pytest.mark.parametrize(
    "payload",
    [b"5 a=b", b"x a=b\n", b"3 a\n", b"6 ab\n\n", b"7 =ab\n\n", b"99 a=b\n", b"6 a=bX"],
    ids=["no-newline", "bad-length", "too-short", "no-equals", "empty-key", "length-past-end", "newline-missing"],
)
def test_malformed_pax_records(payload: bytes) -> None:
    raw = _entry(_block(b"PaxHeaders/f", typeflag=b"x", size=len(payload)), payload) + _block(b"f") + END
    with pytest.raises(TarFormatError, match="PAX record"):
        build_toc(io.BytesIO(raw))


def test_nul_allowed_in_ordinary_pax_values() -> None:
    raw = _pax([(b"SCHILY.xattr.user.x", b"\0\xff"), (b"comment", b"")]) + _block(b"f") + END
    entry = build_toc(io.BytesIO(raw)).entries[0]
    assert entry.xattrs == ((b"SCHILY.xattr.user.x", b"\0\xff"), (b"comment", b""))


def test_gnu_long_name_and_link_override_pax() -> None:
    long_name = b"n" * 300
    raw = (
        _pax([(b"path", b"from-pax"), (b"linkpath", b"pax-target")])
        + _entry(_block(b"././@LongLink", typeflag=b"L", size=len(long_name) + 1), long_name + b"\0")
        + _entry(_block(b"././@LongLink", typeflag=b"K", size=4), b"tgt\0")
        + _block(b"short", typeflag=b"2", linkname=b"short-target")
        + END
    )
    entry = build_toc(io.BytesIO(raw)).entries[0]
    assert (entry.name, entry.linkname) == ("n" * 300, "tgt")
    assert dict(entry.xattrs)[b"path"] == b"from-pax"  # the records themselves stay as they were
    assert entry.uncompressed_offset == len(raw) - 1024


def test_non_utf8_names_round_trip() -> None:
    raw = _block(b"caf\xe9", magic=b"ustar  \0", uname=b"\xff") + END
    entry = build_toc(io.BytesIO(raw)).entries[0]
    assert entry.name.encode("utf-8", "surrogateescape") == b"caf\xe9"
    assert entry.uname.encode("utf-8", "surrogateescape") == b"\xff"


def test_oversized_extension_record_is_an_error() -> None:
    with pytest.raises(TarFormatError, match="limit"):
        build_toc(io.BytesIO(_block(b"L", typeflag=b"L", size=(1 << 20) + 1) + END))


# -- unsupported entries --------------------------------------------------------------------------


def test_global_pax_header_is_unsupported() -> None:
    raw = _pax([(b"comment", b"global")], typeflag=b"g") + _block(b"f") + END
    with pytest.raises(UnsupportedLayerError, match="global PAX header"):
        build_toc(io.BytesIO(raw))


def test_bad_input_vector_global_pax_header() -> None:
    """The shared bad-input case: the reference fails the whole build; we name the reason."""
    case = CONFORMANCE / "bad-inputs" / "pax-global-header" / "input"
    blobs = case / "blobs" / "sha256"
    index = json.loads((case / "index.json").read_text())
    manifest = json.loads((blobs / index["manifests"][0]["digest"].split(":")[1]).read_text())
    layer = Path(blobs / manifest["layers"][0]["digest"].split(":")[1])
    with pytest.raises(UnsupportedLayerError, match=r"type 'g' \(global PAX header\)"):
        build_toc(io.BytesIO(gzip.decompress(layer.read_bytes())))


@pytest.mark.parametrize(("typeflag", "label"), [(b"S", "GNU sparse file"), (b"7", "contiguous"), (b"V", "volume")])
def test_other_typeflags_are_unsupported(typeflag: bytes, label: str) -> None:
    raw = _block(b"sparse", typeflag=typeflag, magic=b"ustar  \0") + END
    with pytest.raises(UnsupportedLayerError, match=label):
        build_toc(io.BytesIO(raw))


@pytest.mark.parametrize(
    "records",
    [
        [(b"GNU.sparse.major", b"1"), (b"GNU.sparse.minor", b"0"), (b"GNU.sparse.name", b"f")],
        [(b"GNU.sparse.major", b"0"), (b"GNU.sparse.minor", b"1"), (b"GNU.sparse.map", b"0,1")],
        [(b"GNU.sparse.numblocks", b"1"), (b"GNU.sparse.offset", b"0"), (b"GNU.sparse.numbytes", b"1")],
    ],
    ids=["1.0", "0.1", "0.0"],
)
def test_pax_sparse_files_are_unsupported(records: list[tuple[bytes, bytes]]) -> None:
    with pytest.raises(UnsupportedLayerError, match="sparse"):
        build_toc(io.BytesIO(_pax(records) + _block(b"f") + END))


def test_unknown_pax_sparse_version_is_a_plain_file_as_in_go() -> None:
    raw = _pax([(b"GNU.sparse.major", b"2"), (b"GNU.sparse.minor", b"0")]) + _block(b"f") + END
    entry = build_toc(io.BytesIO(raw)).entries[0]
    assert entry.type == "reg" and dict(entry.xattrs)[b"GNU.sparse.major"] == b"2"


def test_misordered_gnu_sparse_records_are_format_errors() -> None:
    with pytest.raises(TarFormatError, match="sparse"):
        build_toc(io.BytesIO(_pax([(b"GNU.sparse.numbytes", b"1")]) + _block(b"f") + END))


# -- where the archive ends -----------------------------------------------------------------------


def _one_file() -> bytes:
    return _entry(_block(b"a", size=3), b"abc")  # 1024 bytes


def test_two_zero_blocks_end_the_archive_and_padding_is_not_counted() -> None:
    raw = _one_file() + END + bytes(8192)
    builder = TocBuilder()
    assert builder.feed(raw) is False
    assert builder.feed(b"more") is False  # ignored after the end
    assert builder.done
    assert builder.finish().uncompressed_archive_size == 2048


def test_ends_accepted_by_go() -> None:
    raw = _one_file()
    assert build_toc(io.BytesIO(raw)).uncompressed_archive_size == 1024  # no end blocks at all
    assert build_toc(io.BytesIO(raw + bytes(512))).uncompressed_archive_size == 1536  # one zero block
    assert build_toc(io.BytesIO(raw[:515])).uncompressed_archive_size == 515  # padding missing
    assert build_toc(io.BytesIO(raw[:700])).uncompressed_archive_size == 700  # padding cut (Go: io.EOF)
    assert build_toc(io.BytesIO(b"")).entries == ()
    record = _pax([(b"path", b"x")])
    payload_end = 512 + len(b"10 path=x\n")
    # The end inside an extension record's padding is io.EOF too; the pending record is dropped.
    assert build_toc(io.BytesIO(raw + record[: payload_end + 5])).uncompressed_archive_size == 1024 + payload_end + 5


def _early_end_cases() -> list[Any]:
    one, record = _one_file(), _pax([(b"path", b"x")])
    return [
        pytest.param(one[:300], "header block", id="mid-header"),
        pytest.param(one[:514], "file data", id="mid-data"),
        pytest.param((one + bytes(512) + _block(b"b"))[:1636], "header block", id="mid-block-after-zero-block"),
        pytest.param((one + record)[:1536], "extension record", id="right-after-extension-header"),
        pytest.param((one + record)[:1540], "extension record", id="mid-extension-record"),
        pytest.param((one + record + _entry(_block(b"b", size=600), b"b" * 600))[:2600], "file data", id="mid-data-2"),
    ]


@pytest.mark.parametrize(("raw", "what"), _early_end_cases())
def test_early_ends_rejected_by_go(raw: bytes, what: str) -> None:
    """Go reports io.ErrUnexpectedEOF for these; the reference fails the build."""
    with pytest.raises(TarFormatError, match=what):
        build_toc(io.BytesIO(raw))


def test_zero_block_then_a_header_is_an_error() -> None:
    with pytest.raises(TarFormatError, match="zero block"):
        build_toc(io.BytesIO(_one_file() + bytes(512) + _block(b"b") + END))


def test_entries_before_the_end_are_visible() -> None:
    """The validator feeds one header region and reads `entries` without finishing."""
    builder = TocBuilder()
    builder.feed(_pax([(b"path", b"p")]) + _block(b"f", size=9))
    assert [e.name for e in builder.entries] == ["p"]
    assert builder.entries[0].uncompressed_offset == 1536


# -- mod_time formatting --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "nanos", "text"),
    [
        (0, 0, "1970-01-01T00:00:00Z"),
        (-1, 0, "1969-12-31T23:59:59Z"),
        (MTIME, 500_000_000, "2023-11-14T22:13:20.5Z"),
        (MTIME, 123, "2023-11-14T22:13:20.000000123Z"),
        (MTIME, -1, "2023-11-14T22:13:19.999999999Z"),
        (951782400, 0, "2000-02-29T00:00:00Z"),
        (-62135596800, 0, "0001-01-01T00:00:00Z"),
        (-62167219200, 0, "0000-01-01T00:00:00Z"),
        (253402300799, 0, "9999-12-31T23:59:59Z"),
        (253402300800, 0, ""),  # year 10000: Go's MarshalText fails and the reference stores ""
        (-62167219201, 0, ""),
    ],
)
def test_format_mod_time(seconds: int, nanos: int, text: str) -> None:
    assert format_mod_time(seconds, nanos) == text

"""ztoc (de)serialization: byte-identical to the reference's Go builder.

Three independent sources of truth: the golden ztocs made by the reference `soci` (plus their
independent decodings), upstream's TestWriteZtoc digest, and the PyPI `flatbuffers` Builder driven
in the reference's call order (an oracle written here, sharing no code with socikit).
"""

from __future__ import annotations

import hashlib
import json
import random
import struct

import pytest

from socikit.errors import ZtocFormatError
from socikit.ztoc.compression.tar import loads_tar_zinfo
from socikit.ztoc.model import ALGORITHM_GZIP, ALGORITHM_UNCOMPRESSED, CompressionInfo, FileMetadata, Ztoc
from socikit.ztoc.serialize import dumps, loads, tar_header_offsets
from tests.flatbuffers_oracle import oracle_dumps
from tests.vectors import all_vectors

GOLDEN = [
    pytest.param(path, id=f"{vector.name}-{path.name[5:17]}")
    for vector in all_vectors()
    for path in sorted((vector.path / "expected").glob("ztoc-*.bin"))
]


def _entry(**fields: object) -> FileMetadata:
    base: dict[str, object] = dict(
        name="", type="", uncompressed_offset=0, uncompressed_size=0, linkname="", mode=0, uid=0, gid=0,
        uname="", gname="", mod_time="", devmajor=0, devminor=0, xattrs=(),
    )
    base.update(fields)
    return FileMetadata(**base)  # type: ignore[arg-type]


def _ztoc(toc: tuple[FileMetadata, ...] = (), **fields: object) -> Ztoc:
    info = CompressionInfo(ALGORITHM_GZIP, 0, (), b"")
    base: dict[str, object] = dict(
        version="0.9", build_tool_identifier="t", compressed_archive_size=0, uncompressed_archive_size=0,
        toc=toc, compression_info=info,
    )
    base.update(fields)
    return Ztoc(**base)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# The oracle: the flatbuffers package's Builder, called as the reference's ztocToFlatbuffer does.




def _b(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


_TEXTS = ["", "a", "ab", "abc", "abcd", "abcde", "reg", "dir", "symlink", "root", "héllo", "日本語",
          b"bad\xff\xfe utf8".decode("utf-8", "surrogateescape"), "2023-11-14T22:13:20.123456789Z",
          "0001-01-01T00:00:00Z", "x" * 101]


def _random_scalar(rnd: random.Random, bits: int, signed: bool = True) -> int:
    roll = rnd.random()
    if roll < 0.45:
        return 0
    if roll < 0.6:
        return rnd.choice([1, 2, 511, 512])
    if signed and roll < 0.7:
        return -rnd.randrange(1, 1 << (bits - 1))
    return rnd.randrange(1, 1 << (bits - 1 if signed else bits))


def _random_xattrs(rnd: random.Random) -> tuple[tuple[bytes, bytes], ...]:
    if rnd.random() < 0.6:
        return ()
    keys = rnd.sample([b"path", b"mtime", b"SCHILY.xattr.user.a", b"SCHILY.xattr.security.capability",
                       b"LIBARCHIVE.creationtime", b"k", b""], rnd.randrange(1, 4))
    values = [bytes(rnd.randrange(256) for _ in range(rnd.randrange(0, 9))) for _ in keys]
    return tuple(sorted(zip(keys, values, strict=True)))


def _random_entry(rnd: random.Random) -> FileMetadata:
    return FileMetadata(
        name=rnd.choice(_TEXTS) + rnd.choice(_TEXTS), type=rnd.choice(_TEXTS),
        uncompressed_offset=_random_scalar(rnd, 64), uncompressed_size=_random_scalar(rnd, 64),
        linkname=rnd.choice(_TEXTS), mode=_random_scalar(rnd, 64),
        uid=_random_scalar(rnd, 32, signed=False), gid=_random_scalar(rnd, 32, signed=False),
        uname=rnd.choice(_TEXTS), gname=rnd.choice(_TEXTS), mod_time=rnd.choice(_TEXTS),
        devmajor=_random_scalar(rnd, 64), devminor=_random_scalar(rnd, 64), xattrs=_random_xattrs(rnd),
    )


def random_ztoc(rnd: random.Random, max_entries: int = 8) -> Ztoc:
    n_digests = rnd.randrange(0, 5)
    info = CompressionInfo(
        compression_algorithm=rnd.choice([ALGORITHM_GZIP, ALGORITHM_UNCOMPRESSED]),
        max_span_id=_random_scalar(rnd, 32),
        span_digests=tuple(
            "sha256:" + rnd.randbytes(32).hex()[: rnd.randrange(0, 65)] for _ in range(n_digests)
        ),
        checkpoints=rnd.randbytes(rnd.choice([0, 1, 2, 3, 4, 5, 12, 48, 100])),
    )
    return Ztoc(
        version=rnd.choice(["0.9", "", "0.1", "1.0.0"]), build_tool_identifier=rnd.choice(_TEXTS),
        compressed_archive_size=_random_scalar(rnd, 64), uncompressed_archive_size=_random_scalar(rnd, 64),
        toc=tuple(_random_entry(rnd) for _ in range(rnd.randrange(0, max_entries + 1))),
        compression_info=info,
    )


@pytest.mark.parametrize("seed", range(300))
def test_dumps_matches_flatbuffers_builder_oracle(seed: int) -> None:
    z = random_ztoc(random.Random(seed))
    data = dumps(z)
    assert data == oracle_dumps(z)
    assert loads(data) == z


@pytest.mark.parametrize("seed", range(3))
def test_many_entries_share_vtables_like_the_oracle(seed: int) -> None:
    z = random_ztoc(random.Random(1000 + seed), max_entries=0)
    rnd = random.Random(seed)
    z = Ztoc(z.version, z.build_tool_identifier, z.compressed_archive_size, z.uncompressed_archive_size,
             tuple(_random_entry(rnd) for _ in range(400)), z.compression_info)
    data = dumps(z)
    assert data == oracle_dumps(z)
    assert loads(data) == z


# ---------------------------------------------------------------------------------------------
# Golden vectors from the reference


@pytest.mark.parametrize("path", GOLDEN)
def test_golden_ztoc_round_trips_byte_for_byte(path) -> None:
    data = path.read_bytes()
    assert hashlib.sha256(data).hexdigest() == path.name[5:-4]
    assert dumps(loads(data)) == data


def _json_bytes(value: object) -> bytes:
    """The decodings write valid UTF-8 as text and anything else as {"hex": ...}."""
    if isinstance(value, dict):
        assert set(value) == {"hex"}
        return bytes.fromhex(value["hex"])
    assert isinstance(value, str)
    return value.encode("utf-8")


@pytest.mark.parametrize("path", GOLDEN)
def test_golden_ztoc_decodes_to_the_independent_decoding(path) -> None:
    z = loads(path.read_bytes())
    expected = json.loads((path.parent.parent / "decoded" / (path.name[:-4] + ".decoded.json")).read_text())
    assert z.version == expected["version"]
    assert z.build_tool_identifier == expected["build_tool_identifier"]
    assert z.compressed_archive_size == expected["compressed_archive_size"]
    assert z.uncompressed_archive_size == expected["uncompressed_archive_size"]
    assert len(z.toc) == len(expected["toc"])
    for ours, theirs in zip(z.toc, expected["toc"], strict=True):
        for field in ("name", "type", "linkname", "uname", "gname", "mod_time"):
            assert _b(getattr(ours, field)) == _json_bytes(theirs[field]), field
        for field in ("uncompressed_offset", "uncompressed_size", "mode", "uid", "gid", "devmajor",
                      "devminor"):
            assert getattr(ours, field) == theirs[field], field
        pairs = tuple((_json_bytes(x["key"]), _json_bytes(x["value"])) for x in theirs["xattrs"])
        assert ours.xattrs == pairs
    info, theirs = z.compression_info, expected["compression_info"]
    assert info.compression_algorithm == theirs["compression_algorithm"]
    assert info.max_span_id == theirs["max_span_id"]
    assert list(info.span_digests) == theirs["span_digests"]
    assert len(info.checkpoints) == theirs["checkpoints_len"]
    assert hashlib.sha256(info.checkpoints).hexdigest() == theirs["checkpoints_sha256"]
    if "tar_zinfo" in theirs:
        tar = theirs["tar_zinfo"]
        assert info.checkpoints.hex() == tar["raw_hex"]
        assert loads_tar_zinfo(info.checkpoints) == (tar["version"], tar["span_size"], tar["size"])


def test_golden_vectors_cover_both_algorithms_and_xattrs() -> None:
    ztocs = [loads(p.values[0].read_bytes()) for p in GOLDEN]
    algorithms = {z.compression_info.compression_algorithm for z in ztocs}
    assert algorithms == {ALGORITHM_GZIP, ALGORITHM_UNCOMPRESSED}
    assert any(e.xattrs for z in ztocs for e in z.toc)
    assert any(b"\0" in v for z in ztocs for e in z.toc for _, v in e.xattrs)


def test_upstream_write_ztoc_vector() -> None:
    # ztoc/ztoc_test.go TestWriteZtoc: two all-zero entries, 64 KiB of zero checkpoints.
    entry = _entry(mod_time="0001-01-01T00:00:00Z")
    z = Ztoc(
        version="0.9", build_tool_identifier="AWS SOCI CLI", compressed_archive_size=2000000,
        uncompressed_archive_size=2500000, toc=(entry, entry),
        compression_info=CompressionInfo(ALGORITHM_GZIP, 3, (), bytes(65536)),
    )
    data = dumps(z)
    assert len(data) == 65928
    expected = "eba28fdf50b1b57543f57dd051b2468c1d4f57b64d2006c75aa4de1d03e6c7ec"
    assert hashlib.sha256(data).hexdigest() == expected
    assert loads(data) == z


# ---------------------------------------------------------------------------------------------
# dumps details


def test_gzip_algorithm_is_not_stored_but_uncompressed_is() -> None:
    gzip = dumps(_ztoc())
    plain = dumps(_ztoc(compression_info=CompressionInfo(ALGORITHM_UNCOMPRESSED, 0, (), b"")))
    assert len(plain) > len(gzip)
    assert loads(gzip).compression_info.compression_algorithm == ALGORITHM_GZIP
    assert loads(plain).compression_info.compression_algorithm == ALGORITHM_UNCOMPRESSED


def test_empty_algorithm_name_is_written_as_the_gzip_default() -> None:
    assert dumps(_ztoc(compression_info=CompressionInfo("", 0, (), b""))) == dumps(_ztoc())


def test_unknown_algorithm_is_refused() -> None:
    with pytest.raises(ZtocFormatError, match="zstd"):
        dumps(_ztoc(compression_info=CompressionInfo("zstd", 0, (), b"")))


def test_xattrs_are_written_sorted_with_one_value_per_key() -> None:
    unsorted = _ztoc((_entry(name="f", xattrs=((b"b", b"2"), (b"a", b"1"), (b"b", b"3"))),))
    normal = _ztoc((_entry(name="f", xattrs=((b"a", b"1"), (b"b", b"3"))),))
    assert dumps(unsorted) == dumps(normal)
    assert loads(dumps(unsorted)).toc[0].xattrs == ((b"a", b"1"), (b"b", b"3"))


def test_uid_and_gid_are_truncated_to_uint32_like_go() -> None:
    wide = _ztoc((_entry(name="f", uid=(1 << 32) + 5, gid=1 << 32),))
    assert dumps(wide) == dumps(_ztoc((_entry(name="f", uid=5),)))


@pytest.mark.parametrize(
    "field", ["uncompressed_offset", "uncompressed_size", "mode", "devmajor", "devminor"]
)
def test_int64_overflow_is_a_clear_error(field: str) -> None:
    with pytest.raises(ZtocFormatError, match="out of range|int64"):
        dumps(_ztoc((_entry(name="f", **{field: 1 << 63}),)))


def test_non_utf8_names_round_trip_to_the_same_bytes() -> None:
    name = b"caf\xe9/\xff".decode("utf-8", "surrogateescape")
    data = dumps(_ztoc((_entry(name=name, type="reg"),)))
    assert b"caf\xe9/\xff\0" in data
    assert loads(data).toc[0].name == name


def test_toc_order_is_kept_as_stored() -> None:
    toc = (_entry(name="b", uncompressed_offset=2048), _entry(name="a", uncompressed_offset=512))
    assert [e.name for e in loads(dumps(_ztoc(toc))).toc] == ["b", "a"]


# ---------------------------------------------------------------------------------------------
# loads of bad input


def _small_valid() -> bytes:
    toc = (
        _entry(name="a/", type="dir", uncompressed_offset=512, mode=0o755, mod_time="2023-11-14T22:13:20Z"),
        _entry(name="a/f", type="reg", uncompressed_offset=1024, uncompressed_size=3, mode=0o644,
               xattrs=((b"SCHILY.xattr.user.x", b"\0\1"),)),
    )
    info = CompressionInfo(ALGORITHM_UNCOMPRESSED, 1, ("sha256:" + "0" * 64,), b"\1" * 20)
    return dumps(
        _ztoc(toc, compressed_archive_size=4096, uncompressed_archive_size=4096, compression_info=info)
    )


def test_every_truncation_is_a_format_error() -> None:
    data = _small_valid()
    assert loads(data).toc[1].xattrs == ((b"SCHILY.xattr.user.x", b"\0\1"),)
    # The last byte is the NUL after the version string, which readers do not look at.
    for cut in range(len(data) - 1):
        with pytest.raises(ZtocFormatError):
            loads(data[:cut])


def test_garbled_buffers_raise_only_format_errors() -> None:
    data = _small_valid()
    rnd = random.Random(7)
    outcomes = set()
    for _ in range(3000):
        garbled = bytearray(data)
        for _ in range(rnd.randrange(1, 4)):
            garbled[rnd.randrange(len(garbled))] = rnd.randrange(256)
        try:
            loads(bytes(garbled))
            outcomes.add("parsed")
        except ZtocFormatError:
            outcomes.add("error")
    assert outcomes == {"parsed", "error"}  # some flips hit string bytes, others offsets
    for _ in range(500):
        with pytest.raises(ZtocFormatError):
            loads(rnd.randbytes(rnd.randrange(0, 8)))
        try:
            loads(rnd.randbytes(rnd.randrange(8, 200)))
        except ZtocFormatError:
            pass


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "too short"),
        (struct.pack("<II", 1000, 0), "past the end"),
        (struct.pack("<Ii", 4, 100), "vtable"),
        (struct.pack("<IiHH", 4, -4, 3, 4), "malformed vtable"),
    ],
)
def test_specific_malformations(data: bytes, message: str) -> None:
    with pytest.raises(ZtocFormatError, match=message):
        loads(data)


def test_huge_vector_length_is_rejected_without_allocating() -> None:
    data = bytearray(_small_valid())
    z = loads(bytes(data))
    digest_pos = bytes(data).index(_b(z.compression_info.span_digests[0])) - 4
    # The span-digest vector's length field precedes its single element, which points at the string.
    for pos in range(0, len(data) - 8, 4):
        (count,) = struct.unpack_from("<I", data, pos)
        (rel,) = struct.unpack_from("<I", data, pos + 4)
        if count == 1 and pos + 4 + rel == digest_pos:
            struct.pack_into("<I", data, pos, 0x7FFFFFFF)
            break
    else:
        raise AssertionError("span digest vector not found")
    with pytest.raises(ZtocFormatError, match="runs past the end"):
        loads(bytes(data))


def test_unknown_algorithm_code_is_a_format_error() -> None:
    data = bytearray(dumps(_ztoc(compression_info=CompressionInfo(ALGORITHM_UNCOMPRESSED, 0, (), b""))))
    # Flip the single stored enum byte (2) of CompressionInfo to 9.
    z_with = bytes(data)
    candidates = [i for i, v in enumerate(z_with) if v == 2]
    for i in candidates:
        trial = bytearray(z_with)
        trial[i] = 9
        try:
            loads(bytes(trial))
        except ZtocFormatError as exc:
            if "algorithm" in str(exc):
                return
    raise AssertionError("no byte flip produced an unknown-algorithm error")


# ---------------------------------------------------------------------------------------------
# Reader-side derived data


def test_tar_header_offsets_follow_upstream_example() -> None:
    file1 = _entry(name="file1", uncompressed_offset=1024, uncompressed_size=500)
    file2 = _entry(name="file2", uncompressed_offset=2048, uncompressed_size=1000)
    assert tar_header_offsets([file2, file1]) == [(0, file1), (1536, file2)]


def test_tar_header_offsets_reject_overlap() -> None:
    file1 = _entry(name="file1", uncompressed_offset=1024, uncompressed_size=600)
    file2 = _entry(name="file2", uncompressed_offset=1500, uncompressed_size=10)
    with pytest.raises(ZtocFormatError, match="invalid toc entry 'file2'"):
        tar_header_offsets([file1, file2])


def test_tar_header_offsets_of_golden_vectors_are_valid() -> None:
    assert len(GOLDEN) >= 8
    for param in GOLDEN:
        z = loads(param.values[0].read_bytes())
        pairs = tar_header_offsets(z.toc)
        assert len(pairs) == len(z.toc)
        for header, entry in pairs:
            assert header % 512 == 0
            assert entry.uncompressed_offset - header >= 512  # at least one header block

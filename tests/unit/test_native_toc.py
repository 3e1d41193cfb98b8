"""The native tar parser (socikit/ztoc/csrc/tar.c) against the Python parser it must equal
(`toc.TocBuilder`, the oracle): every test layer, every golden vector and thousands of generated
hostile headers give identical entries, or the identical error. The native TOC writer
(csrc/flatbuf.c) against the Python writer (`serialize._write_toc`) on the same TOCs."""

from __future__ import annotations

import gzip
import io
import pickle
import random
import tarfile
from collections.abc import Callable
from dataclasses import replace

import pytest

from socikit.errors import SocikitError
from socikit.ztoc import _engine
from socikit.ztoc.builder import build_ztoc
from socikit.ztoc.model import FileMetadata, Ztoc
from socikit.ztoc.native import NativeToc, NativeTocBuilder
from socikit.ztoc.serialize import dump, dumps, loads
from socikit.ztoc.toc import TocBuilder, TocResult
from tests.layers import seeded_tree, tree_tar
from tests.vectors import CONFORMANCE, all_vectors

BLOCK = 512


# -- running both parsers ---------------------------------------------------------------------------


def _run(make: Callable[[], TocBuilder | NativeTocBuilder], data: bytes, chunks: list[int]) -> TocResult | SocikitError:
    builder = make()
    try:
        pos = 0
        for size in chunks:
            piece = data[pos : pos + size]
            pos += size
            if not piece:
                break
            if not builder.feed(piece):
                break
        else:
            if pos < len(data):
                builder.feed(data[pos:])
        return builder.finish()
    except SocikitError as exc:
        return exc


def _same_outcome(data: bytes, chunks: list[int]) -> TocResult | SocikitError:
    """Both parsers over `data` fed in `chunks`: identical entries and size, or the same error."""
    oracle = _run(TocBuilder, data, chunks)
    native = _run(NativeTocBuilder, data, chunks)
    if isinstance(oracle, SocikitError) or isinstance(native, SocikitError):
        assert type(native) is type(oracle), (oracle, native)
        assert str(native) == str(oracle)
        return oracle
    assert isinstance(native.entries, NativeToc)
    assert native.uncompressed_archive_size == oracle.uncompressed_archive_size
    assert len(native.entries) == len(oracle.entries)
    assert tuple(native.entries) == oracle.entries
    return oracle


def _chunkings(length: int, rng: random.Random) -> list[list[int]]:
    whole = [max(1, length)]
    tiny = [rng.choice((1, 7, 511, 512, 513)) for _ in range(max(1, length // 300))]
    random_cuts = [rng.randint(1, 5000) for _ in range(max(1, length // 1000))]
    return [whole, tiny, random_cuts]


# -- every test layer and vector ----------------------------------------------------------------------


def _tarfile_formats() -> list[bytes]:
    tree = seeded_tree(21, total_bytes=1 << 20)
    out = [tree_tar(tree)]
    for fmt in (tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
            for entry in tree.entries:
                name = entry.name
                if fmt == tarfile.USTAR_FORMAT:
                    name = name[:99].encode("ascii", "replace").decode()
                info = tarfile.TarInfo(name)
                info.mode, info.uid, info.gid, info.mtime = entry.mode, entry.uid, entry.gid, entry.mtime
                info.uname, info.gname = "root", "wheel"
                if entry.kind == "dir":
                    info.type = tarfile.DIRTYPE
                elif entry.kind in ("symlink", "hardlink"):
                    info.type = tarfile.SYMTYPE if entry.kind == "symlink" else tarfile.LNKTYPE
                    info.linkname = entry.target if fmt != tarfile.USTAR_FORMAT else entry.target[:99]
                else:
                    info.size = len(entry.data)
                try:
                    tar.addfile(info, io.BytesIO(entry.data) if entry.kind == "file" else None)
                except ValueError:
                    continue  # a name ustar cannot hold
        out.append(buf.getvalue())
    return out


@pytest.mark.parametrize("seed", [1, 2, 3, 5, 8])
def test_seeded_layers(seed: int) -> None:
    data = tree_tar(seeded_tree(seed, total_bytes=1 << 20))
    rng = random.Random(seed)
    for chunks in _chunkings(len(data), rng):
        result = _same_outcome(data, chunks)
        assert not isinstance(result, SocikitError) and len(result.entries) > 50


def test_every_tarfile_format() -> None:
    rng = random.Random(4)
    for data in _tarfile_formats():
        for chunks in _chunkings(len(data), rng):
            assert not isinstance(_same_outcome(data, chunks), SocikitError)


def _vector_tars() -> list[tuple[str, bytes]]:
    out = []
    for vector in all_vectors():
        for blob in sorted((vector.input_dir / "blobs" / "sha256").iterdir()):
            raw = blob.read_bytes()
            if raw[:2] == b"\x1f\x8b":
                raw = gzip.decompress(raw)
            if len(raw) >= BLOCK and raw[257:262] == b"ustar" or raw[:BLOCK] == bytes(BLOCK):
                out.append((f"{vector.name}/{blob.name[:12]}", raw))
    for path in sorted((CONFORMANCE / "bad-inputs").rglob("*")):
        if path.is_file():
            raw = path.read_bytes()
            out.append((path.name, gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw))
    return out


def test_golden_vectors_and_bad_inputs() -> None:
    tars = _vector_tars()
    assert len(tars) >= 12
    errors = 0
    rng = random.Random(7)
    for _name, data in tars:
        for chunks in _chunkings(len(data), rng):
            errors += isinstance(_same_outcome(data, chunks), SocikitError)
    assert errors >= 3  # the bad inputs (a global PAX header) fail, in each chunking, the same way


# -- generated hostile headers ----------------------------------------------------------------------


def _octal(value: int, width: int) -> bytes:
    return b"%0*o\0" % (width - 1, value)


def _header(rng: random.Random, *, name: bytes, typeflag: bytes, size: int, fmt: str) -> bytearray:
    h = bytearray(BLOCK)
    h[0 : len(name[:100])] = name[:100]
    h[100:108] = _octal(rng.choice((0o644, 0o755, 0o4755, 0)), 8)
    h[108:116] = _octal(rng.choice((0, 1000, 65534)), 8)
    h[116:124] = _octal(rng.choice((0, 1000, 65534)), 8)
    h[124:136] = _octal(size, 12)
    h[136:148] = _octal(rng.choice((0, 1700000000, 1, 8**11 - 1)), 12)
    h[156:157] = typeflag
    if rng.random() < 0.3:
        h[157:165] = b"target\0\0"
    if fmt == "ustar":
        h[257:265] = b"ustar\x0000"
    elif fmt == "gnu":
        h[257:265] = b"ustar  \0"
    elif fmt == "star":
        h[257:265] = b"ustar\x0000"
        h[508:512] = b"tar\0"
    if fmt != "v7":
        h[265:269] = b"root"
        h[297:302] = b"wheel"
        h[329:337] = _octal(rng.choice((0, 8)), 8)
        h[337:345] = _octal(rng.choice((0, 1)), 8)
    if fmt in ("ustar", "star") and rng.random() < 0.4:
        h[345:351] = b"prefix"
    if fmt == "gnu" and rng.random() < 0.3:
        h[345:357] = _octal(1700000000, 12) if rng.random() < 0.5 else b"not-a-time\0\0"
    return h


def _checksum(h: bytearray, rng: random.Random) -> None:
    h[148:156] = b" " * 8
    roll = rng.random()
    if roll < 0.85:
        h[148:156] = b"%06o\0 " % sum(h)
    elif roll < 0.92:
        signed = sum(b - 256 if b > 127 else b for b in h)
        h[148:156] = b"%06o\0 " % (signed & 0o777777)
    elif roll < 0.96:
        h[148:156] = b" %06o\0" % sum(h)
    # else: left as spaces (a wrong checksum)


_NUMBER_FIELDS = ((100, 8), (108, 8), (116, 8), (124, 12), (136, 12), (329, 8), (337, 8), (345, 12), (357, 12),
                  (476, 12), (488, 12))


def _hostile_number(rng: random.Random, width: int) -> bytes:
    kind = rng.randrange(9)
    if kind == 0:  # base-256, positive or negative, maybe overflowing
        body = rng.randbytes(width - 1)
        return bytes([rng.choice((0x80, 0xFF, 0xC0, 0x81))]) + body
    if kind == 1:
        return b"\x80" + bytes(width - 2) + b"\x01"
    if kind == 2:
        return b"\xff" * width
    if kind == 3:
        return b" 17 \0".ljust(width, b"\0")
    if kind == 4:
        return b"0009\0".ljust(width, b"\0")
    if kind == 5:
        return b"+12\0".ljust(width, b"\0")
    if kind == 6:
        return bytes(width)
    if kind == 7:
        return b"7" * width
    return b"1\x002".ljust(width, b" ")


_PAX_KEYS = (b"path", b"linkpath", b"uname", b"gname", b"uid", b"gid", b"size", b"mtime", b"atime", b"ctime",
             b"SCHILY.xattr.user.a", b"SCHILY.xattr.security.capability", b"GNU.sparse.major",
             b"GNU.sparse.minor", b"GNU.sparse.map", b"GNU.sparse.offset", b"GNU.sparse.numbytes",
             b"GNU.sparse.name", b"LIBARCHIVE.creationtime", b"k\0ey", b"", b"x=y", b"comment")
_PAX_VALUES = (b"", b"0", b"1", b"-1", b"+5", b"12345678901234567890", b"9223372036854775807",
               b"-9223372036854775808", b"1700000000.123456789123", b"1700000000.5", b"-1.25", b"1700000000.",
               b".5", b"1e3", b"a b", b"name/with/slash/", b"\0\xff\x01", b"v\0", b"x" * 300, b"10,20",
               "ünï".encode(), b"\xff\xfe", b"0,1,2")


def _pax_payload(rng: random.Random) -> bytes:
    out = b""
    for _ in range(rng.randint(0, 6)):
        key = rng.choice(_PAX_KEYS)
        value = rng.choice(_PAX_VALUES)
        body = b" " + key + b"=" + value + b"\n"
        length = len(body) + 1
        while len(str(length)) + len(body) != length:
            length += 1
        roll = rng.random()
        if roll < 0.05:
            length += rng.choice((-3, -1, 1, 2, 1000))
        record = str(length).encode() + body
        if roll > 0.97:
            record = record[:-1] + b"X"
        elif 0.94 < roll <= 0.97:
            record = b"+" + record[1:] if record[0:1] == b"1" else b"0" + record
        out += record
    if rng.random() < 0.05:
        out += b"7 a=b"  # a record cut short
    return out


def _member(rng: random.Random, index: int, fmt: str) -> bytes:
    roll = rng.random()
    out = b""
    if roll < 0.35:  # a PAX extension first
        payload = _pax_payload(rng)
        h = _header(rng, name=b"PaxHeaders/x", typeflag=rng.choice((b"x", b"x", b"x", b"g")), size=len(payload),
                    fmt=fmt)
        _checksum(h, rng)
        out += bytes(h) + payload + bytes(-len(payload) % BLOCK)
    elif roll < 0.45:  # a GNU long name or link
        payload = (b"long/" * rng.randint(1, 60) + b"name" + (b"\0" if rng.random() < 0.7 else b"\0junk"))
        h = _header(rng, name=b"././@LongLink", typeflag=rng.choice((b"L", b"K")), size=len(payload), fmt="gnu")
        _checksum(h, rng)
        out += bytes(h) + payload + bytes(-len(payload) % BLOCK)
    typeflag = rng.choice((b"0", b"0", b"0", b"1", b"2", b"3", b"4", b"5", b"6", b"\0", b"7", b"S", b"A", b"V"))
    size = rng.choice((0, 0, 1, 100, 511, 512, 513, 3000))
    name = rng.choice((b"dir/file%d" % index, b"dir%d/" % index, b"", b"\xff\xfename", b"n" * 100))
    h = _header(rng, name=name, typeflag=typeflag, size=size, fmt=fmt)
    for _ in range(rng.choice((0, 0, 0, 1, 2))):
        offset, width = rng.choice(_NUMBER_FIELDS)
        h[offset : offset + width] = _hostile_number(rng, width)
    if rng.random() < 0.05:
        h[rng.randrange(BLOCK)] = rng.randrange(256)
    _checksum(h, rng)
    data = rng.randbytes(size) if typeflag in (b"0", b"\0", b"7") else b""
    return out + bytes(h) + data + bytes(-len(data) % BLOCK)


def _hostile_tar(rng: random.Random) -> bytes:
    fmt = rng.choice(("ustar", "gnu", "star", "v7", "ustar"))
    out = b"".join(_member(rng, i, fmt) for i in range(rng.randint(1, 6)))
    ending = rng.random()
    if ending < 0.6:
        out += bytes(1024) + bytes(rng.choice((0, 512, 9216)))
    elif ending < 0.7:
        out += bytes(512)
    elif ending < 0.8:
        out += bytes(512) + b"\x01" + bytes(511)
    elif ending < 0.9 and out:
        out = out[: rng.randrange(len(out))]
    return out


def test_generated_hostile_headers() -> None:
    rng = random.Random(20261201)
    outcomes: dict[str, int] = {}
    for _ in range(3000):
        data = _hostile_tar(rng)
        chunks = rng.choice(_chunkings(len(data), rng))
        result = _same_outcome(data, chunks)
        key = type(result).__name__ if isinstance(result, SocikitError) else "ok"
        outcomes[key] = outcomes.get(key, 0) + 1
    # The generator reaches every outcome often: accepted layers, format errors, unsupported entries.
    assert outcomes.get("ok", 0) > 300
    assert outcomes.get("TarFormatError", 0) > 300
    assert outcomes.get("UnsupportedLayerError", 0) > 100


# -- the TOC writer ---------------------------------------------------------------------------------


def _ztoc_of(toc: NativeToc, size: int = 1234) -> Ztoc:
    ztoc = build_ztoc(io.BytesIO(tree_tar(seeded_tree(2, total_bytes=1 << 16))), algorithm="uncompressed",
                      span_size=1 << 16, build_tool_identifier="test")  # fmt: skip
    return replace(ztoc.ztoc, toc=toc, uncompressed_archive_size=size)


def _both_writers_agree(ztoc: Ztoc) -> bytes:
    native = dumps(ztoc)
    python = dumps(replace(ztoc, toc=tuple(ztoc.toc)))
    assert native == python
    pieces: list[bytes] = []
    dump(ztoc, pieces.append)
    assert b"".join(pieces) == native
    assert loads(native).toc == ztoc.toc
    return native


def test_writer_on_hostile_but_valid_tocs() -> None:
    rng = random.Random(99)
    written = 0
    for _ in range(1500):
        result = _run(NativeTocBuilder, _hostile_tar(rng), [1 << 20])
        if isinstance(result, SocikitError) or not len(result.entries):
            continue
        assert isinstance(result.entries, NativeToc)
        _both_writers_agree(_ztoc_of(result.entries, result.uncompressed_archive_size))
        written += 1
    assert written > 150


@pytest.mark.parametrize("seed", [1, 6])
def test_writer_on_built_layers(seed: int) -> None:
    tar = tree_tar(seeded_tree(seed, total_bytes=1 << 20))
    for algorithm, blob in (("gzip", gzip.compress(tar, mtime=0)), ("uncompressed", tar)):
        result = build_ztoc(io.BytesIO(blob), algorithm=algorithm, span_size=1 << 16, build_tool_identifier="t")
        assert isinstance(result.ztoc.toc, NativeToc)
        _both_writers_agree(result.ztoc)


def test_writer_on_golden_layers() -> None:
    for vector in all_vectors():
        for layer, ztoc_digest in vector.layer_ztoc_pairs():
            expected = vector.expected_ztocs()[ztoc_digest]
            reference = loads(expected)
            with open(vector.blob(layer["layer_digest"]), "rb") as blob:
                built = build_ztoc(blob, algorithm=reference.compression_info.compression_algorithm,
                                   span_size=vector.params["span_size"],
                                   build_tool_identifier=vector.params["build_tool_id"])  # fmt: skip
            assert _both_writers_agree(built.ztoc) == expected


def test_empty_toc() -> None:
    result = _run(NativeTocBuilder, bytes(1024), [1024])
    assert not isinstance(result, SocikitError) and len(result.entries) == 0
    _both_writers_agree(_ztoc_of(result.entries, 1024))  # type: ignore[arg-type]


# -- the compact TOC as a sequence --------------------------------------------------------------------


def test_native_toc_is_a_sequence_of_file_metadata() -> None:
    tar = tree_tar(seeded_tree(3, total_bytes=1 << 18))
    native = _run(NativeTocBuilder, tar, [len(tar)])
    oracle = _run(TocBuilder, tar, [len(tar)])
    assert not isinstance(native, SocikitError) and not isinstance(oracle, SocikitError)
    toc = native.entries
    assert isinstance(toc, NativeToc)
    assert isinstance(toc[0], FileMetadata) and toc[0] == oracle.entries[0]
    assert toc[-1] == oracle.entries[-1]
    assert toc[2:9:3] == oracle.entries[2:9:3]
    assert list(reversed(toc)) == list(reversed(oracle.entries))
    assert toc.index(oracle.entries[5]) == 5 and oracle.entries[7] in toc
    assert toc == oracle.entries and oracle.entries == toc and toc == list(oracle.entries)
    assert toc != oracle.entries[:-1] and toc != "not a toc"
    assert hash(toc) == hash(oracle.entries)
    assert pickle.loads(pickle.dumps(toc)) == oracle.entries
    with pytest.raises(IndexError):
        toc[len(toc)]


def test_native_toc_is_compact() -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for i in range(5000):
            info = tarfile.TarInfo(f"node_modules/pkg{i % 97}/lib/file{i}.js")
            info.size, info.mtime = 0, 1700000000.5  # a PAX mtime record per file, as BuildKit writes
            tar.addfile(info)
    result = _run(NativeTocBuilder, buf.getvalue(), [1 << 20])
    assert not isinstance(result, SocikitError) and len(result.entries) == 5000
    assert isinstance(result.entries, NativeToc)
    # One record plus the names and PAX records per entry, allocation slack included.
    assert result.entries.store.memory() < 400 * 5000


# -- hashing ----------------------------------------------------------------------------------------


def test_sha256_backends_agree_with_hashlib() -> None:
    import hashlib

    rng = random.Random(5)
    samples = [b"", b"a", bytes(55), bytes(56), bytes(63), bytes(64), bytes(65), rng.randbytes(100_000)]
    assert _engine.sha256_backend() in ("sha-ni-avx512", "sha-ni", "libcrypto", "portable")
    try:
        for portable in (False, True):
            _engine.use_sha256_backend("portable" if portable else None)
            for data in samples:
                assert _engine.sha256(data) == "sha256:" + hashlib.sha256(data).hexdigest()
        # A whole build on the portable code gives the same digests.
        blob = gzip.compress(tree_tar(seeded_tree(4, total_bytes=1 << 18)), mtime=0)
        result = build_ztoc(io.BytesIO(blob), span_size=8192, build_tool_identifier="t")
        assert result.blob_digest == "sha256:" + hashlib.sha256(blob).hexdigest()
    finally:
        _engine.use_sha256_backend(None)
    again = build_ztoc(io.BytesIO(blob), span_size=8192, build_tool_identifier="t")
    assert again.ztoc.compression_info == result.ztoc.compression_info


@pytest.mark.parametrize(("seconds", "nanos"), [(0, 0), (-1, 999999999), (1700000000, 120000000),
                                                 (-62167219200, 0), (-62167219201, 0), (253402300799, 1),
                                                 (253402300800, 0), (-(1 << 63), -5), ((1 << 63) - 1, 0)])
def test_mod_time_text_matches_python(seconds: int, nanos: int) -> None:
    from socikit.ztoc.toc import format_mod_time

    assert _engine.format_mod_time(seconds, nanos) == format_mod_time(seconds, nanos)

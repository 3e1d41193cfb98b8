"""Our specialised ztoc writer against an independent oracle: the PyPI `flatbuffers` Builder
driven in the reference's call order (ztoc/ztoc_marshaler.go), on random ztocs of every shape."""

from __future__ import annotations

import hashlib
import random

import flatbuffers
import pytest

from socikit.errors import ZtocFormatError
from socikit.ztoc.model import CompressionInfo, FileMetadata, Ztoc
from socikit.ztoc.serialize import dumps, loads


def _oracle(z: Ztoc) -> bytes:
    b = flatbuffers.Builder(0)
    version = b.CreateString(z.version.encode("utf-8", "surrogateescape"))
    tool = b.CreateString(z.build_tool_identifier.encode("utf-8", "surrogateescape"))
    offsets = [0] * len(z.toc)
    for i in range(len(z.toc) - 1, -1, -1):
        e = z.toc[i]
        strings = [b.CreateString(s.encode("utf-8", "surrogateescape"))
                   for s in (e.name, e.type, e.linkname, e.uname, e.gname, e.mod_time)]
        xattrs = []
        for key, value in e.xattrs:
            k, v = b.CreateString(key), b.CreateString(value)
            b.StartObject(2)
            b.PrependUOffsetTRelativeSlot(0, k, 0)
            b.PrependUOffsetTRelativeSlot(1, v, 0)
            xattrs.append(b.EndObject())
        b.StartVector(4, len(xattrs), 4)
        for off in reversed(xattrs):
            b.PrependUOffsetTRelative(off)
        xvec = b.EndVector()
        name, kind, link, uname, gname, mtime = strings
        b.StartObject(14)
        b.PrependUOffsetTRelativeSlot(0, name, 0)
        b.PrependUOffsetTRelativeSlot(1, kind, 0)
        b.PrependInt64Slot(2, e.uncompressed_offset, 0)
        b.PrependInt64Slot(3, e.uncompressed_size, 0)
        b.PrependUOffsetTRelativeSlot(4, link, 0)
        b.PrependInt64Slot(5, e.mode, 0)
        b.PrependUint32Slot(6, e.uid, 0)
        b.PrependUint32Slot(7, e.gid, 0)
        b.PrependUOffsetTRelativeSlot(8, uname, 0)
        b.PrependUOffsetTRelativeSlot(9, gname, 0)
        b.PrependUOffsetTRelativeSlot(10, mtime, 0)
        b.PrependInt64Slot(11, e.devmajor, 0)
        b.PrependInt64Slot(12, e.devminor, 0)
        b.PrependUOffsetTRelativeSlot(13, xvec, 0)
        offsets[i] = b.EndObject()
    b.StartVector(4, len(offsets), 4)
    for off in reversed(offsets):
        b.PrependUOffsetTRelative(off)
    metadata = b.EndVector()
    b.StartObject(1)
    b.PrependUOffsetTRelativeSlot(0, metadata, 0)
    toc = b.EndObject()
    info = z.compression_info
    checkpoints = b.CreateByteVector(info.checkpoints)
    digests = [b.CreateString(d) for d in info.span_digests]
    b.StartVector(4, len(digests), 4)
    for off in reversed(digests):
        b.PrependUOffsetTRelative(off)
    digest_vector = b.EndVector()
    b.StartObject(4)
    b.PrependInt32Slot(1, info.max_span_id, 0)
    b.PrependUOffsetTRelativeSlot(2, digest_vector, 0)
    b.PrependUOffsetTRelativeSlot(3, checkpoints, 0)
    b.PrependInt8Slot(0, {"gzip": 1, "uncompressed": 2}[info.compression_algorithm], 1)
    compression = b.EndObject()
    b.StartObject(6)
    b.PrependUOffsetTRelativeSlot(0, version, 0)
    b.PrependUOffsetTRelativeSlot(1, tool, 0)
    b.PrependUOffsetTRelativeSlot(4, toc, 0)
    b.PrependInt64Slot(2, z.compressed_archive_size, 0)
    b.PrependInt64Slot(3, z.uncompressed_archive_size, 0)
    b.PrependUOffsetTRelativeSlot(5, compression, 0)
    b.Finish(b.EndObject())
    return bytes(b.Output())


def _random_ztoc(rng: random.Random) -> Ztoc:
    def text() -> str:
        return "".join(rng.choice("ab/é.-_") for _ in range(rng.choice([0, 0, 1, 2, 3, 5, 17, 100])))

    def num() -> int:
        return rng.choice([0, 0, 1, 511, 512, 1 << 33, rng.randrange(1 << 20)])

    entries = []
    for _ in range(rng.randrange(0, 12)):
        xattrs = tuple(sorted({text().encode() or b"k": bytes(rng.randrange(256) for _ in range(rng.randrange(5)))
                               for _ in range(rng.choice([0, 0, 1, 3]))}.items()))
        entries.append(FileMetadata(text(), rng.choice(["reg", "dir", "symlink", ""]), num(), num(), text(), num(),
                                    rng.choice([0, 1000, 0xFFFFFFFF]), rng.choice([0, 7]), text(), text(), text(),
                                    num(), num(), xattrs))
    algorithm = rng.choice(["gzip", "uncompressed"])
    spans = rng.randrange(0, 5)
    info = CompressionInfo(algorithm, max(spans - 1, 0), tuple("sha256:" + hashlib.sha256(bytes([i])).hexdigest()
                                                               for i in range(spans)),
                           bytes(rng.randrange(256) for _ in range(rng.choice([0, 1, 3, 48, 100]))))
    return Ztoc(text() or "0.9", text(), num(), num(), tuple(entries), info)


@pytest.mark.parametrize("seed", range(300))
def test_writer_matches_the_flatbuffers_package(seed: int) -> None:
    z = _random_ztoc(random.Random(seed))
    data = dumps(z)
    assert data == _oracle(z)
    assert loads(data) == z


def test_reference_test_write_ztoc_vector() -> None:
    """soci-snapshotter ztoc/ztoc_test.go TestWriteZtoc (fact sheet §8.1)."""
    empty = FileMetadata("", "", 0, 0, "", 0, 0, 0, "", "", "0001-01-01T00:00:00Z", 0, 0, ())
    z = Ztoc("0.9", "AWS SOCI CLI", 2000000, 2500000, (empty, empty), CompressionInfo("gzip", 3, (), bytes(65536)))
    data = dumps(z)
    assert len(data) == 65928
    assert hashlib.sha256(data).hexdigest() == "eba28fdf50b1b57543f57dd051b2468c1d4f57b64d2006c75aa4de1d03e6c7ec"


@pytest.mark.parametrize("cut", [0, 4, 7, 100, -1])
def test_truncated_or_garbled_ztoc_is_a_format_error(cut: int) -> None:
    rng = random.Random(1)
    data = dumps(_random_ztoc(rng))
    broken = data[:cut] if cut >= 0 else bytes(b ^ 0xA5 for b in data)
    with pytest.raises(ZtocFormatError):
        loads(broken)

"""The test oracle for ztoc serialization: the PyPI `flatbuffers` Builder driven in the
reference's call order (soci-snapshotter ztoc/ztoc_marshaler.go). Slow and generic, hence only for
tests and benchmarks."""

from __future__ import annotations

import flatbuffers

from socikit.ztoc.model import Ztoc


def _b(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def oracle_dumps(z: Ztoc) -> bytes:
    b = flatbuffers.Builder(0)
    version = b.CreateString(_b(z.version))
    build_tool = b.CreateString(_b(z.build_tool_identifier))
    tables = [0] * len(z.toc)
    for i in range(len(z.toc) - 1, -1, -1):
        e = z.toc[i]
        strings = [b.CreateString(_b(s)) for s in (e.name, e.type, e.linkname, e.uname, e.gname, e.mod_time)]
        records = dict(e.xattrs)  # Go holds PAX records in a map and writes sorted keys
        xattr_tables = []
        for key in sorted(records):
            k = b.CreateString(key)
            v = b.CreateString(records[key])
            b.StartObject(2)
            b.PrependUOffsetTRelativeSlot(0, k, 0)
            b.PrependUOffsetTRelativeSlot(1, v, 0)
            xattr_tables.append(b.EndObject())
        b.StartVector(4, len(xattr_tables), 4)
        for t in reversed(xattr_tables):
            b.PrependUOffsetTRelative(t)
        xattrs = b.EndVector()
        name, kind, linkname, uname, gname, mod_time = strings
        b.StartObject(14)
        b.PrependUOffsetTRelativeSlot(0, name, 0)
        b.PrependUOffsetTRelativeSlot(1, kind, 0)
        b.PrependInt64Slot(2, e.uncompressed_offset, 0)
        b.PrependInt64Slot(3, e.uncompressed_size, 0)
        b.PrependUOffsetTRelativeSlot(4, linkname, 0)
        b.PrependInt64Slot(5, e.mode, 0)
        b.PrependUint32Slot(6, e.uid & 0xFFFFFFFF, 0)
        b.PrependUint32Slot(7, e.gid & 0xFFFFFFFF, 0)
        b.PrependUOffsetTRelativeSlot(8, uname, 0)
        b.PrependUOffsetTRelativeSlot(9, gname, 0)
        b.PrependUOffsetTRelativeSlot(10, mod_time, 0)
        b.PrependInt64Slot(11, e.devmajor, 0)
        b.PrependInt64Slot(12, e.devminor, 0)
        b.PrependUOffsetTRelativeSlot(13, xattrs, 0)
        tables[i] = b.EndObject()
    b.StartVector(4, len(tables), 4)
    for t in reversed(tables):
        b.PrependUOffsetTRelative(t)
    metadata = b.EndVector()
    b.StartObject(1)
    b.PrependUOffsetTRelativeSlot(0, metadata, 0)
    toc = b.EndObject()
    info = z.compression_info
    checkpoints = b.CreateByteVector(info.checkpoints)
    digests = [b.CreateString(_b(d)) for d in info.span_digests]
    b.StartVector(4, len(digests), 4)
    for d in reversed(digests):
        b.PrependUOffsetTRelative(d)
    digest_vector = b.EndVector()
    b.StartObject(4)
    b.PrependInt32Slot(1, info.max_span_id, 0)
    b.PrependUOffsetTRelativeSlot(2, digest_vector, 0)
    b.PrependUOffsetTRelativeSlot(3, checkpoints, 0)
    b.PrependInt8Slot(0, {"gzip": 1, "uncompressed": 2}[info.compression_algorithm], 1)
    compression_info = b.EndObject()
    b.StartObject(6)
    b.PrependUOffsetTRelativeSlot(0, version, 0)
    b.PrependUOffsetTRelativeSlot(1, build_tool, 0)
    b.PrependUOffsetTRelativeSlot(4, toc, 0)
    b.PrependInt64Slot(2, z.compressed_archive_size, 0)
    b.PrependInt64Slot(3, z.uncompressed_archive_size, 0)
    b.PrependUOffsetTRelativeSlot(5, compression_info, 0)
    b.Finish(b.EndObject())
    return bytes(b.Output())

"""Uncompressed-tar zinfo, "TarZinfo" (fact sheet §2.6; reference `ztoc/compression/tar_zinfo.go`).

For a plain tar layer compressed and uncompressed offsets coincide and spans are fixed slices of
`span_size` bytes, so the ztoc's `checkpoints` blob is only a tiny flatbuffer (schema `zinfo.fbs`,
table TarZinfo: slot 0 `version: int32`, slot 1 `span_size: int64`, slot 2 `size: int64`, all
defaulting to 0). The reference builds it with a fresh Go builder: StartObject(3), add slots
0, 1, 2 (zero values are not written), EndObject, Finish.
"""

from __future__ import annotations

import struct

from socikit.errors import ZtocFormatError

__all__ = ["TAR_ZINFO_VERSION", "TarZinfo", "dumps_tar_zinfo", "loads_tar_zinfo"]

TAR_ZINFO_VERSION = 2

_INT64 = (-(1 << 63), 1 << 63)


def dumps_tar_zinfo(span_size: int, size: int, *, version: int = TAR_ZINFO_VERSION) -> bytes:
    """The TarZinfo flatbuffer for spans of `span_size` bytes over a `size`-byte tar file,
    byte-identical to the reference's `TarZinfo.Bytes()`."""
    for name, value in (("span_size", span_size), ("size", size)):
        if not _INT64[0] <= value < _INT64[1]:
            raise ZtocFormatError(f"TarZinfo {name} {value} does not fit in an int64")
    if not -(1 << 31) <= version < 1 << 31:
        raise ZtocFormatError(f"TarZinfo version {version} does not fit in an int32")
    # Replay the builder on an empty buffer: positions count bytes from the end.
    pos = 0
    fields: list[bytes] = []  # in write order, each followed (in memory) by its padding
    slot_pos: dict[int, int] = {}
    minalign = 1
    for slot, fmt, value in ((0, "<i", version), (1, "<q", span_size), (2, "<q", size)):
        if value == 0:
            continue
        width = struct.calcsize(fmt)
        pad = -pos % width
        fields.append(struct.pack(fmt, value) + b"\0" * pad)
        pos += pad + width
        slot_pos[slot] = pos
        minalign = max(minalign, width)
    soffset_pad = -pos % 4
    table_pos = pos + soffset_pad + 4
    minalign = max(minalign, 4)
    entries = [table_pos - slot_pos[s] if s in slot_pos else 0 for s in range(3)]
    while entries and entries[-1] == 0:
        entries.pop()
    vtable = struct.pack(f"<HH{len(entries)}H", 4 + 2 * len(entries), table_pos, *entries)
    end = table_pos + len(vtable)
    finish_pad = -(end + 4) % minalign
    root = struct.pack("<I", end + finish_pad + 4 - table_pos)
    table = struct.pack("<i", len(vtable)) + b"\0" * soffset_pad + b"".join(reversed(fields))
    return root + b"\0" * finish_pad + vtable + table


def loads_tar_zinfo(blob: bytes) -> tuple[int, int, int]:
    """(version, span_size, size) of a TarZinfo flatbuffer; ZtocFormatError if it is malformed."""
    blob = bytes(blob)
    n = len(blob)

    def fail(what: str) -> ZtocFormatError:
        return ZtocFormatError(f"TarZinfo checkpoints blob ({n} bytes) is corrupt: {what}")

    if n < 8:
        raise fail("too short to be a flatbuffer")
    (table,) = struct.unpack_from("<I", blob, 0)
    if table + 4 > n:
        raise fail("root table is past the end")
    vt = table - struct.unpack_from("<i", blob, table)[0]
    if vt < 0 or vt + 4 > n:
        raise fail("vtable is outside the buffer")
    vt_size, _object_size = struct.unpack_from("<HH", blob, vt)
    if vt_size < 4 or vt_size & 1 or vt + vt_size > n:
        raise fail("malformed vtable")
    entries = struct.unpack_from(f"<{(vt_size - 4) // 2}H", blob, vt + 4)
    values = []
    for slot, fmt in ((0, "<i"), (1, "<q"), (2, "<q")):
        off = entries[slot] if slot < len(entries) else 0
        if not off:
            values.append(0)
            continue
        if table + off + struct.calcsize(fmt) > n:
            raise fail(f"field {slot} is past the end")
        values.append(struct.unpack_from(fmt, blob, table + off)[0])
    return values[0], values[1], values[2]


class TarZinfo:
    """Span geometry of an uncompressed tar layer, read from its checkpoints blob.

    Span i covers bytes [i * span_size, (i + 1) * span_size) of the layer, except that the last span
    (`max_span_id`) ends at the size the caller passes (the reference passes the layer blob size
    for compressed ranges and `uncompressed_archive_size` for uncompressed ones; both default to
    the recorded file size). Compressed and uncompressed offsets are the same thing here."""

    __slots__ = ("version", "span_size", "size")

    def __init__(self, blob: bytes) -> None:
        self.version, self.span_size, self.size = loads_tar_zinfo(blob)
        if self.span_size <= 0:
            # The reference would divide by zero; a clear error is better.
            raise ZtocFormatError(f"TarZinfo span size must be positive, not {self.span_size}")

    @classmethod
    def from_geometry(cls, span_size: int, size: int) -> TarZinfo:
        return cls(dumps_tar_zinfo(span_size, size))

    def to_blob(self) -> bytes:
        return dumps_tar_zinfo(self.span_size, self.size, version=self.version)

    @property
    def max_span_id(self) -> int:
        """Index of the last span: ceil(size / span_size) - 1 (so -1 for an empty file)."""
        spans, rest = divmod(self.size, self.span_size)
        return spans if rest else spans - 1

    @property
    def num_spans(self) -> int:
        return self.max_span_id + 1

    @property
    def count(self) -> int:
        """Number of spans (same name as `GzipZinfo.count`)."""
        return self.max_span_id + 1

    def span_of(self, uncompressed_offset: int) -> int:
        """The span holding `uncompressed_offset` (not clamped, like the reference)."""
        return uncompressed_offset // self.span_size

    def _range(self, span_id: int, end_of_last: int | None) -> tuple[int, int]:
        if not 0 <= span_id <= self.max_span_id:
            raise ZtocFormatError(f"span {span_id} is out of range 0..{self.max_span_id}")
        start = span_id * self.span_size
        if span_id == self.max_span_id:
            return start, self.size if end_of_last is None else end_of_last
        return start, start + self.span_size

    def compressed_range(self, span_id: int, compressed_size: int | None = None) -> tuple[int, int]:
        """[start, end) of span `span_id` in the layer blob; the last span ends at `compressed_size`."""
        return self._range(span_id, compressed_size)

    def uncompressed_range(self, span_id: int, uncompressed_size: int | None = None) -> tuple[int, int]:
        """[start, end) of span `span_id` in the tar stream; the last span ends at `uncompressed_size`."""
        return self._range(span_id, uncompressed_size)

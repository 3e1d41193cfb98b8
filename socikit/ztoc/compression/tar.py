"""Uncompressed-tar zinfo (fact sheet §2.6; reference `ztoc/compression/tar_zinfo.go`).

For a plain tar layer the compressed and uncompressed offsets coincide and spans are fixed
`span_size` slices, so the "checkpoints" are just a tiny TarZinfo flatbuffer {version=2,
span_size, size}, built in the reference's order (StartObject(3), slots 0, 1, 2, Finish).
"""

from __future__ import annotations

import struct

from socikit.errors import ZtocFormatError

TAR_ZINFO_VERSION = 2


def dumps_tar_zinfo(span_size: int, size: int) -> bytes:
    """The TarZinfo flatbuffer bytes, identical to the Go builder's."""
    # Slots are int32 version then two int64s, prepended back to front; zero values are omitted
    # like every flatbuffers default, which changes the layout, so the general case is computed.
    fields = [(0, 4, TAR_ZINFO_VERSION), (1, 8, span_size), (2, 8, size)]
    sz = 0
    body: list[bytes] = []
    positions: dict[int, int] = {}
    minalign = 1
    for slot, width, value in fields:
        if not value:
            continue
        pad = -sz % width
        body.append(b"\0" * pad)
        body.append(value.to_bytes(width, "little", signed=True))
        sz += pad + width
        positions[slot] = sz
        minalign = max(minalign, width)
    pad = -sz % 4
    body.append(b"\0" * pad)
    sz += pad
    object_offset = sz + 4
    entries = [object_offset - positions[s] if s in positions else 0 for s in range(3)]
    while entries and entries[-1] == 0:
        entries.pop()
    vt_bytes = 2 * (len(entries) + 2)
    vtable = struct.pack(f"<HH{len(entries)}H", vt_bytes, object_offset, *entries)
    soffset = struct.pack("<i", vt_bytes)
    total = object_offset + vt_bytes
    minalign = max(minalign, 4)
    finish_pad = -(total + 4) % minalign
    total += finish_pad
    root = (total + 4 - object_offset).to_bytes(4, "little")
    parts = [root, b"\0" * finish_pad, vtable, soffset, *reversed(body)]
    return b"".join(parts)


def loads_tar_zinfo(blob: bytes) -> tuple[int, int, int]:
    """(version, span_size, size) of a TarZinfo flatbuffer."""
    try:
        root = struct.unpack_from("<I", blob, 0)[0]
        vt = root - struct.unpack_from("<i", blob, root)[0]
        vt_size = struct.unpack_from("<H", blob, vt)[0]
        entries = struct.unpack_from(f"<{(vt_size - 4) // 2}H", blob, vt + 4)
        values = []
        for slot, fmt in ((0, "<i"), (1, "<q"), (2, "<q")):
            off = entries[slot] if slot < len(entries) else 0
            values.append(struct.unpack_from(fmt, blob, root + off)[0] if off else 0)
    except (struct.error, IndexError) as exc:
        raise ZtocFormatError(f"corrupt TarZinfo checkpoints blob: {exc}") from None
    return values[0], values[1], values[2]


class TarZinfo:
    """Span geometry of an uncompressed tar layer: span i is bytes [i*span, (i+1)*span)."""

    __slots__ = ("version", "span_size", "size")

    def __init__(self, blob: bytes) -> None:
        self.version, self.span_size, self.size = loads_tar_zinfo(blob)
        if self.span_size <= 0:
            raise ZtocFormatError(f"TarZinfo span size must be positive, not {self.span_size}")

    @property
    def max_span_id(self) -> int:
        if self.size % self.span_size == 0:
            return self.size // self.span_size - 1
        return self.size // self.span_size

    @property
    def count(self) -> int:
        return self.max_span_id + 1

    def span_of(self, uncompressed_offset: int) -> int:
        return uncompressed_offset // self.span_size

    def compressed_range(self, span_id: int, compressed_size: int | None = None) -> tuple[int, int]:
        start = span_id * self.span_size
        return start, min(start + self.span_size, self.size)

    def uncompressed_range(self, span_id: int, uncompressed_size: int | None = None) -> tuple[int, int]:
        return self.compressed_range(span_id)

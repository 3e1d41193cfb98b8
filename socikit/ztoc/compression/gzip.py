"""Gzip zinfo: the checkpoint blob stored in a ztoc's `CompressionInfo.checkpoints` and the span
geometry it defines (fact sheet §2.1–2.5; reference `ztoc/compression/gzip_zinfo.{c,go}`).

Blob layout, little-endian, packed: int32 checkpoint count N, int64 span size, then N records of
int64 `in` (compressed offset of the first whole byte after the checkpoint), int64 `out`
(uncompressed offset), uint8 `bits` (unused bits of byte `in - 1`), 32 KiB window (the output
preceding `out`, zero-filled at the front near the start). A pre-release "v1" blob omits record 0.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from socikit.errors import ZtocFormatError

WINDOW_SIZE = 32768
HEADER_SIZE = 12
RECORD_SIZE = 8 + 8 + 1 + WINDOW_SIZE
GZIP_TRAILER_SIZE = 8

_HEADER = struct.Struct("<iq")
_RECORD_HEAD = struct.Struct("<qqB")
_ZERO_WINDOW = bytes(WINDOW_SIZE)


class Checkpoint(NamedTuple):
    """A place where inflate can restart: a deflate block boundary (or just after a member header)."""

    compressed_offset: int  # `in`
    uncompressed_offset: int  # `out`
    bits: int
    window: bytes


def pack_checkpoints(span_size: int, checkpoints: list[Checkpoint]) -> bytes:
    """The current (v2) blob: every checkpoint, record 0 included."""
    parts = [_HEADER.pack(len(checkpoints), span_size)]
    for cp in checkpoints:
        if len(cp.window) != WINDOW_SIZE:
            raise ValueError("a checkpoint window must be exactly 32 KiB")
        parts.append(_RECORD_HEAD.pack(cp.compressed_offset, cp.uncompressed_offset, cp.bits))
        parts.append(cp.window)
    return b"".join(parts)


class GzipZinfo:
    """Checkpoints of one gzip layer plus the offset arithmetic of the reference.

    Compressed offsets index the layer blob; uncompressed offsets index the decompressed tar.
    Ranges are half-open `[start, end)`.
    """

    __slots__ = ("span_size", "_blob", "_first_record", "count", "_v1")

    def __init__(self, blob: bytes) -> None:
        if len(blob) < HEADER_SIZE:
            raise ZtocFormatError(f"gzip zinfo blob is {len(blob)} bytes, shorter than its 12-byte header")
        count, span_size = _HEADER.unpack_from(blob, 0)
        if count < 0:
            raise ZtocFormatError(f"gzip zinfo claims a negative checkpoint count ({count})")
        if HEADER_SIZE + RECORD_SIZE * count == len(blob):
            self._v1 = False
        elif count >= 1 and HEADER_SIZE + RECORD_SIZE * (count - 1) == len(blob):
            self._v1 = True  # pre-release layout: checkpoint 0 implied
        else:
            raise ZtocFormatError(
                f"gzip zinfo blob of {len(blob)} bytes does not hold the {count} checkpoints it claims"
            )
        self.span_size = int(span_size)
        self.count = int(count)
        self._blob = memoryview(blob)
        self._first_record = 1 if self._v1 else 0

    @classmethod
    def from_checkpoints(cls, span_size: int, checkpoints: list[Checkpoint]) -> GzipZinfo:
        return cls(pack_checkpoints(span_size, checkpoints))

    def to_blob(self) -> bytes:
        return bytes(self._blob)

    @property
    def max_span_id(self) -> int:
        return self.count - 1

    def checkpoint(self, index: int) -> Checkpoint:
        if not 0 <= index < self.count:
            raise IndexError(f"checkpoint {index} out of range 0..{self.count - 1}")
        if self._v1:
            if index == 0:
                return Checkpoint(10, 0, 0, _ZERO_WINDOW)
            index -= 1
        base = HEADER_SIZE + RECORD_SIZE * index
        c_in, c_out, bits = _RECORD_HEAD.unpack_from(self._blob, base)
        window = bytes(self._blob[base + 17 : base + RECORD_SIZE])
        return Checkpoint(c_in, c_out, bits, window)

    def offsets(self, index: int) -> tuple[int, int, int]:
        """(`in`, `out`, `bits`) of checkpoint `index` without copying its window."""
        if not 0 <= index < self.count:
            raise IndexError(f"checkpoint {index} out of range 0..{self.count - 1}")
        return self._offsets(index)

    def _offsets(self, index: int) -> tuple[int, int, int]:
        if self._v1:
            if index == 0:
                return 10, 0, 0
            index -= 1
        c_in, c_out, bits = _RECORD_HEAD.unpack_from(self._blob, HEADER_SIZE + RECORD_SIZE * index)
        return int(c_in), int(c_out), int(bits)

    def span_of(self, uncompressed_offset: int) -> int:
        """The span holding `uncompressed_offset`: the last checkpoint with out <= offset."""
        lo, hi = 0, self.count - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self._offsets(mid)[1] <= uncompressed_offset:
                lo = mid
            else:
                hi = mid - 1
        return lo

    def compressed_range(self, span_id: int, compressed_size: int) -> tuple[int, int]:
        """Blob bytes of a span; starts one byte early when the checkpoint shares a byte."""
        c_in, _, bits = self._offsets(span_id)
        start = c_in - 1 if bits else c_in
        end = self._offsets(span_id + 1)[0] if span_id < self.count - 1 else compressed_size
        return start, end

    def uncompressed_range(self, span_id: int, uncompressed_size: int) -> tuple[int, int]:
        start = self._offsets(span_id)[1]
        end = self._offsets(span_id + 1)[1] if span_id < self.count - 1 else uncompressed_size
        return start, end

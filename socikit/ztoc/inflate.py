"""The one streaming inflate primitive of socikit: every reader of compressed layer bytes (span
reads, `validate`'s sequential scan) goes through `StreamInflater`; only the builder's hot loop
(the native `_engine.Builder`) drives the native stream itself.

A `StreamInflater` starts either at the first byte of a gzip stream or at a checkpoint (raw
deflate primed with the checkpoint's leftover bits and its 32 KiB window, fact sheet §2.4). It is
fed compressed bytes in order and writes uncompressed bytes into buffers the caller owns, so a
caller can keep memory constant however long the stream is. Gzip member ends are crossed as the
reference does: from a checkpoint the first member's 8-byte trailer is stepped over once (raw
inflate does not read it), after which every later member is read as gzip, header and trailer
checked by zlib.
"""

from __future__ import annotations

import ctypes
from typing import Any

from socikit.ztoc.compression import _zran
from socikit.ztoc.compression.gzip import GZIP_TRAILER_SIZE, WINDOW_SIZE, Checkpoint
from socikit.ztoc.compression.zcodes import (
    WINDOW_BITS_AUTO,
    WINDOW_BITS_RAW,
    Z_BUF_ERROR,
    Z_NO_FLUSH,
    Z_OK,
    Z_STREAM_END,
)

__all__ = ["StreamInflater"]

WritableBuffer = bytearray | memoryview | ctypes.Array[Any]


def _input_address(data: bytes | bytearray | memoryview) -> tuple[int, object]:
    """The C address of `data`'s first byte and the object that keeps that memory alive."""
    if isinstance(data, bytes):
        # zlib only reads next_in, so the immutable bytes can be lent without a copy.
        pointer = ctypes.c_char_p(data)
        return ctypes.cast(pointer, ctypes.c_void_p).value or 0, (pointer, data)
    view = memoryview(data)
    if not view.readonly and view.c_contiguous:
        anchor = ctypes.c_char.from_buffer(view)
        return ctypes.addressof(anchor), anchor
    copy = ctypes.create_string_buffer(view.tobytes(), view.nbytes)
    return ctypes.addressof(copy), copy


class StreamInflater:
    """Sequential inflate of compressed layer bytes into caller-owned buffers.

    `StreamInflater()` starts at byte 0 of a gzip stream; `StreamInflater(checkpoint)` starts at a
    checkpoint, and the first byte fed must then be the checkpoint's compressed start (the shared
    byte `in - 1` when `bits` != 0). Use as a context manager (it owns a native stream).

    `feed(data)` hands over the next compressed bytes once the previous ones are used up;
    `inflate_into(out)` fills `out` as far as the input allows and returns the byte count. A
    corrupt stream does not raise: `error` becomes zlib's reason ("invalid block type", …) and
    later calls produce nothing, so a caller can keep what was inflated before the fault.
    `at_member_end` is True when the input so far ends exactly after a gzip member (its trailer
    included), i.e. the stream may legitimately end here.
    """

    __slots__ = (
        "_inflater",
        "_lib",
        "_strm",
        "_ref",
        "_keep",
        "_start",
        "_raw",
        "_member_ended",
        "_trailer_left",
        "error",
    )

    def __init__(self, checkpoint: Checkpoint | None = None) -> None:
        raw = checkpoint is not None
        self._inflater = _zran.Inflater(WINDOW_BITS_RAW if raw else WINDOW_BITS_AUTO)
        self._lib = self._inflater.lib
        self._strm = self._inflater.strm
        self._ref = self._inflater.ref
        self._keep: object = None  # keeps the memory behind next_in alive
        self._start = checkpoint  # priming waits for the first byte when bits != 0
        self._raw = raw
        self._member_ended = False
        self._trailer_left = 0
        self.error = ""

    def close(self) -> None:
        self._strm.next_in = None
        self._strm.avail_in = 0
        self._keep = None
        self._inflater.close()

    def __enter__(self) -> StreamInflater:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def input_left(self) -> int:
        """Compressed bytes fed but not used yet."""
        return int(self._strm.avail_in)

    @property
    def at_member_end(self) -> bool:
        return self._member_ended and self._trailer_left == 0

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """The next compressed bytes. The previous input must be used up; `data` must stay
        unchanged until it is (bytes and writable buffers are used in place, not copied)."""
        if self._strm.avail_in:
            raise RuntimeError("StreamInflater.feed: the previous input is not used up")
        size = memoryview(data).nbytes
        if not size:
            return
        address, self._keep = _input_address(data)
        strm = self._strm
        strm.next_in = address
        strm.avail_in = size
        start = self._start
        if start is not None:
            self._start = None
            if start.bits:
                # The checkpoint's first bits are the top `bits` bits of the shared byte.
                first = ctypes.c_ubyte.from_address(address).value
                self._lib.inflate_prime(self._ref, start.bits, first >> (8 - start.bits))
                strm.next_in = address + 1
                strm.avail_in = size - 1
            window = ctypes.create_string_buffer(start.window, WINDOW_SIZE)
            self._lib.inflate_set_dictionary(self._ref, window, WINDOW_SIZE)

    def inflate_into(self, out: WritableBuffer) -> int:
        """Inflate into `out` (a writable buffer) until it is full, the input is used up or the
        data turns out corrupt (see `error`). Returns the number of bytes written at its start."""
        if self.error:
            return 0
        size = memoryview(out).nbytes
        if not size:
            return 0
        anchor = ctypes.c_char.from_buffer(out)
        base = ctypes.addressof(anchor)
        strm, ref, lib = self._strm, self._ref, self._lib
        produced = 0
        while produced < size:
            if self._trailer_left:
                step = min(self._trailer_left, strm.avail_in)
                if step:
                    strm.next_in += step
                    strm.avail_in -= step
                    self._trailer_left -= step
                if self._trailer_left:
                    break
            if self._member_ended:
                if not strm.avail_in:
                    break
                # Concatenated members (pigz, `cat a.gz b.gz`): go on with the next gzip header.
                lib.inflate_reset2(ref, WINDOW_BITS_AUTO)
                self._member_ended = False
                self._raw = False
            room = size - produced
            strm.next_out = base + produced
            strm.avail_out = room
            ret = lib.inflate(ref, Z_NO_FLUSH)
            produced += room - strm.avail_out
            if ret == Z_STREAM_END:
                self._member_ended = True
                if self._raw:
                    # Raw inflate stops before the member's trailer; gzip mode reads it itself.
                    self._trailer_left = GZIP_TRAILER_SIZE
                continue
            if ret == Z_OK:
                continue
            if ret != Z_BUF_ERROR:  # Z_BUF_ERROR: no progress possible without more input
                self.error = _zran.error_text(ret, strm)
            break
        del anchor
        return produced

"""zlib's return codes and window-bits values, and the words for a failed inflate: what the
builder needs to report an error without loading ctypes (`_zran` is the ctypes side)."""

from __future__ import annotations

Z_OK = 0
Z_STREAM_END = 1
Z_NEED_DICT = 2
Z_ERRNO = -1
Z_STREAM_ERROR = -2
Z_DATA_ERROR = -3
Z_MEM_ERROR = -4
Z_BUF_ERROR = -5

Z_NO_FLUSH = 0
Z_BLOCK = 5

WINDOW_BITS_AUTO = 47  # 32 (auto-detect gzip/zlib header) + 15
WINDOW_BITS_RAW = -15

_WORDS = {
    Z_DATA_ERROR: "invalid compressed data",
    Z_MEM_ERROR: "out of memory",
    Z_BUF_ERROR: "unexpected end of compressed data",
    Z_STREAM_ERROR: "inconsistent stream state",
    Z_NEED_DICT: "a preset dictionary is required",
}


def inflate_error_text(ret: int, msg: bytes | None) -> str:
    """zlib's message for a failed call (`msg` of the stream, e.g. b'invalid block type'), else
    words for its return code."""
    if msg:
        return msg.decode("utf-8", "replace")
    return _WORDS.get(ret, f"zlib error {ret}")

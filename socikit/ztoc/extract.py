"""Random access through a ztoc: file -> span range -> compressed byte range -> bytes
(fact sheet §2.3–2.5). Reads go through a `read_range(start, end)` callable so the same code
serves a local blob, an HTTP range reader and the snapshotter's span cache.
"""

from __future__ import annotations

import ctypes
import posixpath
from collections.abc import Callable
from typing import BinaryIO

from socikit.errors import CompressedDataError, SocikitError, ZtocFormatError
from socikit.ztoc.compression import _zran
from socikit.ztoc.compression.gzip import GZIP_TRAILER_SIZE, WINDOW_SIZE, GzipZinfo
from socikit.ztoc.compression.tar import TarZinfo
from socikit.ztoc.model import ALGORITHM_GZIP, ALGORITHM_UNCOMPRESSED, FileMetadata, Ztoc

ReadRange = Callable[[int, int], bytes]
Zinfo = GzipZinfo | TarZinfo


class FileNotInZtocError(SocikitError):
    """The requested path has no entry in the ztoc's TOC."""


def zinfo_of(ztoc: Ztoc) -> Zinfo:
    """The span geometry object of a ztoc's compression half."""
    info = ztoc.compression_info
    if info.compression_algorithm == ALGORITHM_GZIP:
        return GzipZinfo(info.checkpoints)
    if info.compression_algorithm == ALGORITHM_UNCOMPRESSED:
        return TarZinfo(info.checkpoints)
    raise ZtocFormatError(f"unknown compression algorithm {info.compression_algorithm!r}")


def clean_name(name: str) -> str:
    """A TOC name as the snapshotter sees it: `filepath.Clean("/"+name)` without the leading '/'."""
    return posixpath.normpath("/" + name).lstrip("/")


def find_entry(ztoc: Ztoc, path: str) -> FileMetadata:
    """The TOC entry for `path`, following hard links to their target's entry."""
    wanted = clean_name(path)
    by_name = {clean_name(e.name): e for e in ztoc.toc}
    entry = by_name.get(wanted)
    seen = set()
    while entry is not None and entry.type == "hardlink":
        if entry.name in seen:
            break
        seen.add(entry.name)
        entry = by_name.get(clean_name(entry.linkname))
    if entry is None:
        raise FileNotInZtocError(f"{path!r} is not in the ztoc")
    return entry


def span_range_of(zinfo: Zinfo, offset: int, size: int) -> tuple[int, int]:
    """First and last span (inclusive) covering uncompressed bytes [offset, offset + size).

    Like the reference, the end is the span of `offset + size` (an exclusive end that may pull
    in one extra span); clamped to the last span."""
    return zinfo.span_of(offset), zinfo.span_of(offset + size)


def read_uncompressed(
    ztoc: Ztoc, read_range: ReadRange, offset: int, size: int, *, zinfo: Zinfo | None = None
) -> bytes:
    """Uncompressed tar bytes [offset, offset + size), fetching only the spans that hold them."""
    if size <= 0:
        return b""
    zinfo = zinfo or zinfo_of(ztoc)
    if isinstance(zinfo, TarZinfo):
        data = read_range(offset, offset + size)
        if len(data) != size:
            raise CompressedDataError(f"layer ends early: wanted {size} bytes at offset {offset}")
        return data
    first, last = span_range_of(zinfo, offset, size)
    start, _ = zinfo.compressed_range(first, ztoc.compressed_archive_size)
    _, end = zinfo.compressed_range(last, ztoc.compressed_archive_size)
    compressed = read_range(start, end)
    checkpoint = zinfo.checkpoint(first)
    return inflate_from_checkpoint(
        compressed, bits=checkpoint.bits, window=checkpoint.window,
        skip=offset - checkpoint.uncompressed_offset, length=size,
    )


def read_file(ztoc: Ztoc, read_range: ReadRange, path: str) -> bytes:
    """The contents of the regular file `path` (hard links followed) read through spans only."""
    entry = find_entry(ztoc, path)
    if entry.type != "reg":
        raise SocikitError(f"{path!r} is a {entry.type}, not a regular file")
    return read_uncompressed(ztoc, read_range, entry.uncompressed_offset, entry.uncompressed_size)


def file_range_reader(blob: BinaryIO) -> ReadRange:
    """A `read_range` over a seekable local blob file."""

    def read_range(start: int, end: int) -> bytes:
        blob.seek(start)
        return blob.read(end - start)

    return read_range


def inflate_from_checkpoint(compressed: bytes, *, bits: int, window: bytes, skip: int, length: int) -> bytes:
    """Inflate `compressed` (starting at a checkpoint's first byte, the shared byte included when
    `bits` != 0), drop `skip` output bytes, return the next `length` bytes.

    Raw inflate primed with the checkpoint's leftover bits and its 32 KiB window as dictionary; when
    a gzip member ends inside the range, its trailer is skipped and decoding continues with the
    next member's header (fact sheet §2.4)."""
    if length <= 0:
        return b""
    data = memoryview(compressed)
    out = ctypes.create_string_buffer(length)
    scratch = ctypes.create_string_buffer(WINDOW_SIZE)
    in_buf = (ctypes.c_char * len(data)).from_buffer_copy(data) if len(data) else None
    with _zran.Inflater(_zran.WINDOW_BITS_RAW) as inflater:
        lib, strm, ref = inflater.lib, inflater.strm, inflater.ref
        in_addr = ctypes.addressof(in_buf) if in_buf is not None else 0
        consumed = 0
        if bits:
            if not len(data):
                raise CompressedDataError("span data is empty")
            lib.inflate_prime(ref, bits, data[0] >> (8 - bits))
            consumed = 1
        window_buf = ctypes.create_string_buffer(window, WINDOW_SIZE)
        lib.inflate_set_dictionary(ref, window_buf, WINDOW_SIZE)
        strm.next_in = in_addr + consumed
        strm.avail_in = len(data) - consumed
        raw_mode = True
        produced = 0
        while produced < length:
            if skip:
                room = min(skip, WINDOW_SIZE)
                strm.next_out = ctypes.addressof(scratch)
            else:
                room = length - produced
                strm.next_out = ctypes.addressof(out) + produced
            strm.avail_out = room
            ret = lib.inflate(ref, _zran.Z_NO_FLUSH)
            got = room - strm.avail_out
            if skip:
                skip -= got
            else:
                produced += got
            if ret == _zran.Z_STREAM_END:
                if raw_mode:
                    # Raw inflate leaves the member's 8-byte trailer unread: step over it once;
                    # after the reset to gzip mode inflate consumes trailers itself.
                    if strm.avail_in < GZIP_TRAILER_SIZE:
                        break
                    strm.next_in += GZIP_TRAILER_SIZE
                    strm.avail_in -= GZIP_TRAILER_SIZE
                    raw_mode = False
                if strm.avail_in == 0:
                    break
                lib.inflate_reset2(ref, _zran.WINDOW_BITS_AUTO)
                continue
            if ret != _zran.Z_OK:
                if ret == _zran.Z_BUF_ERROR:
                    break
                raise CompressedDataError(f"span data does not inflate: {_zran.error_text(ret, strm)}")
            if got == 0 and strm.avail_in == 0:
                break
    if produced != length:
        raise CompressedDataError(f"span data ended after {produced} of {length} bytes")
    return out.raw

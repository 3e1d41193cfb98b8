"""Build a ztoc in ONE pass over a layer blob (fact sheet §2.2, §2.6, §3).

While the blob streams through once we inflate it with zlib-ng (Z_BLOCK, so inflate stops at
every deflate block boundary), choose checkpoints exactly where the reference does, feed the
decompressed bytes to the tar TOC parser, hash every span's compressed bytes and the whole blob.
Nothing is written anywhere and no copy of the layer is kept: memory is a fixed 1.3 MiB of
buffers plus 32 KiB per checkpoint and the TOC itself.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import queue
import threading
from dataclasses import dataclass
from typing import Any, BinaryIO

from socikit.errors import CompressedDataError, DigestMismatchError, LayerError
from socikit.oci.mediatypes import DEFAULT_SPAN_SIZE, ZTOC_VERSION
from socikit.ztoc.compression import _inflate_scan, _zran
from socikit.ztoc.compression.gzip import WINDOW_SIZE, Checkpoint, pack_checkpoints
from socikit.ztoc.compression.tar import dumps_tar_zinfo
from socikit.ztoc.model import ALGORITHM_GZIP, ALGORITHM_UNCOMPRESSED, CompressionInfo, Ztoc
from socikit.ztoc.toc import TocBuilder

INPUT_CHUNK = 1 << 18
OUTPUT_AREA = 1 << 20

# The ztoc cache (socikit/pipeline/cache.py) keys entries on this: bump it with any change that
# could alter the bytes built for a layer (checkpoints, span digests, TOC parsing, serialization),
# so ztocs made by an older builder are rebuilt after an upgrade instead of reused.
BUILDER_FORMAT_VERSION = 1


@dataclass(frozen=True, slots=True)
class BuildResult:
    """A built ztoc and what was learnt about the blob on the way."""

    ztoc: Ztoc
    blob_digest: str
    blob_size: int


def build_ztoc(
    stream: BinaryIO,
    *,
    algorithm: str = ALGORITHM_GZIP,
    span_size: int = DEFAULT_SPAN_SIZE,
    build_tool_identifier: str,
    expected_digest: str | None = None,
    expected_size: int | None = None,
) -> BuildResult:
    """Build the ztoc of the layer blob read from `stream` (read to its end exactly once).

    `algorithm` is "gzip" or "uncompressed" (a plain tar). `span_size` counts uncompressed bytes.
    Raises CompressedDataError (corrupt/truncated data), TarFormatError (not a valid tar),
    UnsupportedLayerError (entries the format cannot describe) and DigestMismatchError when the
    blob's sha256 or size differs from `expected_digest`/`expected_size`.
    """
    if span_size < 0:
        raise LayerError(f"span size must not be negative (got {span_size})")
    if algorithm == ALGORITHM_GZIP:
        builder = _GzipPass(span_size)
    elif algorithm == ALGORITHM_UNCOMPRESSED:
        if span_size == 0:
            raise LayerError("span size 0 is not possible for an uncompressed layer (spans are fixed slices)")
        builder = _TarPass(span_size)  # type: ignore[assignment]
    else:
        raise LayerError(f"no ztoc can be built for compression {algorithm!r}")
    info, toc_result, digest, size = builder.run(stream)
    if expected_size is not None and size != expected_size:
        raise DigestMismatchError(f"blob is {size} bytes, expected {expected_size}")
    if expected_digest is not None and digest != expected_digest:
        raise DigestMismatchError(f"blob digest is {digest}, expected {expected_digest}")
    ztoc = Ztoc(
        version=ZTOC_VERSION,
        build_tool_identifier=build_tool_identifier,
        compressed_archive_size=size,
        uncompressed_archive_size=toc_result.uncompressed_archive_size,
        toc=toc_result.entries,
        compression_info=info,
    )
    return BuildResult(ztoc=ztoc, blob_digest=digest, blob_size=size)


class _Digester:
    """Runs beside the inflate loop on a second thread: the blob digest and the span digests.

    The inflating thread hands over each compressed input chunk with the checkpoints found inside
    it, ("in", chunk, start, cuts), in stream order. hashlib and ctypes both drop the GIL, so
    hashing and inflating proceed on two cores; the queue bound keeps memory constant. (The TOC is
    parsed on the inflating thread: pure-Python work on a second thread costs more in GIL
    hand-offs than it saves — measured in docs/performance.md.)"""

    def __init__(self) -> None:
        self.queue: queue.Queue[tuple[Any, ...] | None] = queue.Queue(maxsize=8)
        self.blob_hash = hashlib.sha256()
        self.span_hash: Any = None
        self.span_digests: list[str] = []
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="ztoc-digester", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            while (item := self.queue.get()) is not None:
                if self.error is not None:
                    continue  # drain so the producer never blocks
                self._hash_input(item[1], item[2], item[3])
        except BaseException as exc:  # handed to the producing thread
            self.error = exc
            while self.queue.get() is not None:
                pass

    def _hash_input(self, chunk: bytes, chunk_start: int, cuts: list[tuple[int, int]]) -> None:
        self.blob_hash.update(chunk)
        view = memoryview(chunk)
        pos = 0
        for cut, span_start in cuts:
            if self.span_hash is not None:
                self.span_hash.update(view[pos : cut - chunk_start])
                self.span_digests.append("sha256:" + self.span_hash.hexdigest())
            self.span_hash = hashlib.sha256()
            pos = span_start - chunk_start
            if pos < 0:  # the shared byte of a checkpoint that starts a chunk
                self.span_hash.update(self._last_byte)
                pos = 0
        if self.span_hash is not None:
            self.span_hash.update(view[pos:])
        self._last_byte = chunk[-1:]

    _last_byte = b""

    def put(self, item: tuple[Any, ...]) -> None:
        if self.error is not None:
            raise self.error
        self.queue.put(item)

    def close(self) -> None:
        self.queue.put(None)
        self.thread.join()
        if self.error is not None:
            raise self.error


class _GzipPass:
    def __init__(self, span_size: int) -> None:
        self.span_size = span_size

    def run(self, stream: BinaryIO):  # type: ignore[no-untyped-def]
        digester = _Digester()
        toc = TocBuilder()
        try:
            checkpoints, total_read = self._inflate(stream, digester, toc)
        except BaseException:
            with contextlib.suppress(BaseException):
                digester.close()
            raise
        digester.close()
        if digester.span_hash is None:
            raise CompressedDataError("no deflate data found (not a gzip stream?)")
        digester.span_digests.append("sha256:" + digester.span_hash.hexdigest())
        toc_result = toc.finish()
        info = CompressionInfo(
            compression_algorithm=ALGORITHM_GZIP,
            max_span_id=len(checkpoints) - 1,
            span_digests=tuple(digester.span_digests),
            checkpoints=pack_checkpoints(self.span_size, checkpoints),
        )
        return info, toc_result, "sha256:" + digester.blob_hash.hexdigest(), total_read

    def _inflate(self, stream: BinaryIO, digester: _Digester, toc: TocBuilder) -> tuple[list[Checkpoint], int]:
        span_size = self.span_size
        checkpoints: list[Checkpoint] = []
        # The first WINDOW_SIZE bytes hold the last 32 KiB of output (zeros before any: the
        # initial window), then the output area the C loop fills.
        out = bytearray(WINDOW_SIZE + OUTPUT_AREA)
        out_view = memoryview(out)
        put = digester.put
        feed_toc = toc.feed
        toc_open = True
        with _zran.Inflater(_zran.WINDOW_BITS_AUTO) as inflater:
            lib = inflater.lib
            strm_addr = ctypes.addressof(inflater.strm)
            inflate_addr, reset_addr = lib.address("inflate"), lib.address("inflate_reset2")
            pos = WINDOW_SIZE  # output written so far; out[WINDOW_SIZE:pos] not yet fed to the TOC
            total_read = totin = totout = last = 0
            member_ended = False
            while True:
                chunk = stream.read(INPUT_CHUNK)
                if not chunk:
                    if member_ended:
                        break
                    raise CompressedDataError(
                        f"compressed data ends early after {total_read} bytes (truncated layer?)"
                    )
                chunk_start = total_read
                total_read += len(chunk)
                cuts: list[tuple[int, int]] = []
                in_pos = 0
                while True:
                    # One C call runs inflate(Z_BLOCK) without the GIL until the chunk is used up
                    # or the output area is full, noting the reference's checkpoints on the way.
                    stop, ret, in_pos, end, totin, totout, last, member_ended, found = _inflate_scan.scan(
                        strm_addr, inflate_addr, reset_addr, chunk, in_pos, out, pos,
                        span_size, totin, totout, last, member_ended,
                    )  # fmt: skip
                    for in_offset, out_offset, bits, window in found:
                        cuts.append((in_offset, in_offset - 1 if bits else in_offset))
                        checkpoints.append(Checkpoint(in_offset, out_offset, bits, window))
                    if toc_open and end > pos:
                        toc_open = feed_toc(out_view[pos:end])
                    pos = end
                    if stop == _inflate_scan.NEED_INPUT:
                        break
                    if stop == _inflate_scan.FAILED:
                        raise CompressedDataError(
                            f"corrupt compressed data at byte {totin}: {_zran.error_text(ret, inflater.strm)}"
                        )
                    out_view[:WINDOW_SIZE] = out_view[pos - WINDOW_SIZE : pos]
                    pos = WINDOW_SIZE
                put(("in", chunk, chunk_start, cuts))
        return checkpoints, total_read


class _TarPass:
    """Uncompressed tar: fixed spans of `span_size` bytes; compressed == uncompressed offsets."""

    def __init__(self, span_size: int) -> None:
        self.span_size = span_size

    def run(self, stream: BinaryIO):  # type: ignore[no-untyped-def]
        span_size = self.span_size
        toc = TocBuilder()
        toc_open = True
        blob_hash = hashlib.sha256()
        span_hash = hashlib.sha256()
        span_digests: list[str] = []
        total = 0
        while True:
            data = stream.read(INPUT_CHUNK)
            if not data:
                break
            n = len(data)
            chunk = memoryview(data)
            blob_hash.update(chunk)
            if toc_open:
                toc_open = toc.feed(chunk)
            offset = 0
            while offset < n:
                room = span_size - (total % span_size)
                take = min(room, n - offset)
                span_hash.update(chunk[offset : offset + take])
                offset += take
                total += take
                if total % span_size == 0:
                    span_digests.append("sha256:" + span_hash.hexdigest())
                    span_hash = hashlib.sha256()
        if total % span_size:
            span_digests.append("sha256:" + span_hash.hexdigest())
        toc_result = toc.finish()
        max_span_id = total // span_size - 1 if total % span_size == 0 else total // span_size
        info = CompressionInfo(
            compression_algorithm=ALGORITHM_UNCOMPRESSED,
            max_span_id=max_span_id,
            span_digests=tuple(span_digests),
            checkpoints=dumps_tar_zinfo(span_size, total),
        )
        return info, toc_result, "sha256:" + blob_hash.hexdigest(), total

"""Build a ztoc in ONE pass over a layer blob (fact sheet §2.2, §2.6, §3).

While the blob streams through once it is inflated with zlib-ng (Z_BLOCK, so inflate stops at
every deflate block boundary), checkpoints are chosen exactly where the reference puts them, the
decompressed bytes go through the tar TOC parser, and every span's compressed bytes and the whole
blob are hashed. All of that is native (`_engine`, sources in `csrc/`): the inflating thread
runs without the GIL, the digests are computed on a second native thread, and the TOC is kept
compact (`native.NativeToc`). Nothing is written anywhere and no copy of the layer is kept:
memory is a fixed ~3.4 MiB of buffers, 32 KiB per checkpoint and ~100 bytes plus the names per
file.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from socikit.errors import CompressedDataError, DigestMismatchError, LayerError
from socikit.oci.mediatypes import DEFAULT_SPAN_SIZE, ZTOC_VERSION
from socikit.ztoc import _engine
from socikit.ztoc.compression.tar import dumps_tar_zinfo
from socikit.ztoc.compression.zcodes import WINDOW_BITS_AUTO, inflate_error_text
from socikit.ztoc.model import ALGORITHM_GZIP, ALGORITHM_UNCOMPRESSED, CompressionInfo, Ztoc
from socikit.ztoc.native import NativeToc, raise_tar_failure, tar_end
from socikit.ztoc.toc import TocResult

INPUT_CHUNK = 1 << 18
OUTPUT_AREA = _engine.OUTPUT_AREA  # uncompressed bytes inflated between two slides of the window

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
    builder: _Pass
    if algorithm == ALGORITHM_GZIP:
        builder = _GzipPass(span_size)
    elif algorithm == ALGORITHM_UNCOMPRESSED:
        if span_size == 0:
            raise LayerError("span size 0 is not possible for an uncompressed layer (spans are fixed slices)")
        builder = _TarPass(span_size)
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


class _Pass:
    """One layer through the native builder (`_engine.Builder`): Python reads the stream and
    turns failures into socikit's errors; inflating, checkpoints, the TOC and the digests happen
    in C, the digests on a thread of their own."""

    def __init__(self, span_size: int) -> None:
        self.span_size = span_size

    def run(self, stream: BinaryIO) -> tuple[CompressionInfo, TocResult, str, int]:
        raise NotImplementedError

    @staticmethod
    def _feed_all(stream: BinaryIO, engine: _engine.Builder) -> None:
        read = stream.read
        feed = engine.feed
        while chunk := read(INPUT_CHUNK):
            status = feed(chunk)
            if status == _engine.FEED_OK:
                continue
            if status == _engine.FEED_TAR_FAILED:
                raise_tar_failure(engine)
            raise CompressedDataError(
                f"corrupt compressed data at byte {engine.totin}: "
                f"{inflate_error_text(engine.inflate_ret, engine.inflate_msg)}"
            )


@functools.cache
def _engine_has_zlib_ng() -> bool:
    """Whether the engine inflates with zlib-ng's native API found in the zlib-ng wheel's module
    (always, with the wheel our dependencies name); else the stream comes from `_zran`."""
    try:
        from zlib_ng import zlib_ng
    except ImportError:
        return False
    return _engine.use_zlib_ng(zlib_ng.__file__)


@contextlib.contextmanager
def _gzip_builder(span_size: int) -> Iterator[_engine.Builder]:
    """A gzip Builder: with an inflate stream of its own, or one from `_zran` (ctypes; system libz
    when the zlib-ng wheel lacks the native API) that outlives it."""
    if _engine_has_zlib_ng():
        yield _engine.Builder(gzip=True, span_size=span_size, hashing=True, output_area=OUTPUT_AREA)
        return
    import ctypes

    from socikit.ztoc.compression import _zran

    with _zran.Inflater(WINDOW_BITS_AUTO) as inflater:
        lib = inflater.lib
        yield _engine.Builder(
            gzip=True, span_size=span_size, hashing=True, strm=ctypes.addressof(inflater.strm),
            inflate=lib.address("inflate"), reset2=lib.address("inflate_reset2"), output_area=OUTPUT_AREA,
        )  # fmt: skip


class _GzipPass(_Pass):
    def run(self, stream: BinaryIO) -> tuple[CompressionInfo, TocResult, str, int]:
        with _gzip_builder(self.span_size) as engine:
            try:
                self._feed_all(stream, engine)
                if not engine.member_ended:
                    raise CompressedDataError(
                        f"compressed data ends early after {engine.total_read} bytes (truncated layer?)"
                    )
                if not engine.checkpoints:
                    raise CompressedDataError("no deflate data found (not a gzip stream?)")
                end = tar_end(engine)
                store, checkpoints, span_digests, blob_digest, total_read = engine.finish()
            finally:
                engine.close()
        assert checkpoints is not None and span_digests is not None and blob_digest is not None
        info = CompressionInfo(
            compression_algorithm=ALGORITHM_GZIP,
            max_span_id=len(span_digests) - 1,
            span_digests=tuple(span_digests),
            checkpoints=checkpoints,
        )
        return info, TocResult(NativeToc(store), end), blob_digest, total_read


class _TarPass(_Pass):
    """Uncompressed tar: fixed spans of `span_size` bytes; compressed == uncompressed offsets."""

    def run(self, stream: BinaryIO) -> tuple[CompressionInfo, TocResult, str, int]:
        engine = _engine.Builder(gzip=False, span_size=self.span_size, hashing=True)
        try:
            self._feed_all(stream, engine)
            end = tar_end(engine)
            store, _, span_digests, blob_digest, total = engine.finish()
        finally:
            engine.close()
        assert span_digests is not None and blob_digest is not None
        span_size = self.span_size
        max_span_id = total // span_size - 1 if total % span_size == 0 else total // span_size
        info = CompressionInfo(
            compression_algorithm=ALGORITHM_UNCOMPRESSED,
            max_span_id=max_span_id,
            span_digests=tuple(span_digests),
            checkpoints=dumps_tar_zinfo(span_size, total),
        )
        return info, TocResult(NativeToc(store), end), blob_digest, total

"""Deep checks of one ztoc against its layer blob in ONE sequential pass (fact sheet §2.3–2.6, §7.6).

The blob is streamed once. As compressed bytes go by they are hashed whole (the layer digest) and
per span range (the span digests). The same bytes are inflated sequentially; that output is the
reference tar stream: the header bytes `[TarHeaderOffset, UncompressedOffset)` of every TOC entry
are cut out of it and re-parsed with the tar parser (what the snapshotter does before the first
read of a file), and each span's slice of it is compared with what inflating that span *from its
checkpoint* gives (what the snapshotter does on every read). Span re-inflation runs on a worker
thread; ctypes and zlib release the GIL, so it overlaps with the sequential pass.

Validation first tries the cheaper proof in `reproduce.py`; this scan is what runs when the ztoc
cannot be reproduced from the blob, and it says exactly which check fails.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import queue
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from socikit.errors import SocikitError
from socikit.ztoc.compression.gzip import GzipZinfo
from socikit.ztoc.compression.tar import TarZinfo
from socikit.ztoc.extract import inflate_from_checkpoint
from socikit.ztoc.inflate import StreamInflater
from socikit.ztoc.model import FileMetadata, Ztoc
from socikit.ztoc.serialize import tar_header_offsets
from socikit.ztoc.toc import TocBuilder

READ_CHUNK = 4 << 20
INFLATE_AREA = 8 << 20  # output of one sequential inflate call, handed over as one piece
QUEUE_DEPTH = 2  # inflated pieces waiting for the checks (bounds memory: QUEUE_DEPTH * INFLATE_AREA)
MAX_IN_FLIGHT = 4  # spans handed to the re-inflation worker at once (bounds memory)
MAX_REPORTED = 3  # problems spelled out per check; the rest are counted


@dataclass
class Problems:
    """Failures of one check: the first few messages and a total count."""

    count: int = 0
    messages: list[str] = field(default_factory=list)
    checked: int = 0
    unchecked: int = 0  # items never reached because the stream broke off (reported elsewhere)

    def add(self, message: str) -> None:
        self.count += 1
        if len(self.messages) < MAX_REPORTED:
            self.messages.append(message)

    @property
    def ok(self) -> bool:
        return self.count == 0

    def summary(self, what: str) -> str:
        more = f" (+{self.count - len(self.messages)} more)" if self.count > len(self.messages) else ""
        return f"{self.count} of {self.checked} {what} wrong: " + "; ".join(self.messages) + more


@dataclass
class LayerScan:
    """What one pass over a layer found. `files_checked` counts regular files whose data was
    compared through spans (all in deep mode, the sample otherwise)."""

    blob: Problems = field(default_factory=Problems)
    spans: Problems = field(default_factory=Problems)
    headers: Problems = field(default_factory=Problems)
    contents: Problems = field(default_factory=Problems)
    files_checked: int = 0
    content_note: str = ""
    bytes_read: int = 0
    bytes_inflated: int = 0


def _pick_sample(entries: list[FileMetadata], sample: int | None) -> list[FileMetadata]:
    files = sorted(
        (e for e in entries if e.type == "reg" and e.uncompressed_size > 0),
        key=lambda e: e.uncompressed_offset,
    )
    if sample is None or sample >= len(files):
        return files
    if sample <= 0:
        return []
    # Evenly spread over the layer, first and last file included: deterministic, so a failure
    # reproduces, and it reaches every region of the blob.
    if sample == 1:
        return [files[len(files) // 2]]
    step = (len(files) - 1) / (sample - 1)
    return [files[round(i * step)] for i in range(sample)]


def _header_regions(ztoc: Ztoc, scan: LayerScan) -> list[tuple[int, int, FileMetadata]]:
    try:
        pairs = tar_header_offsets(ztoc.toc)
    except SocikitError as exc:
        scan.headers.checked = len(ztoc.toc)
        scan.headers.add(str(exc))
        return []
    return [(header, entry.uncompressed_offset, entry) for header, entry in pairs]


_COMPARED = (
    "type",
    "uncompressed_size",
    "mod_time",
    "linkname",
    "mode",
    "uid",
    "gid",
    "devmajor",
    "devminor",
    "xattrs",
    "name",
)


def compare_header(region: bytes, entry: FileMetadata) -> str | None:
    """Why the tar header bytes `region` (= [TarHeaderOffset, UncompressedOffset)) disagree with
    the TOC `entry`, or None when they agree on every field the snapshotter verifies."""
    parser = TocBuilder()
    try:
        parser.feed(region)
    except SocikitError as exc:
        return f"{entry.name!r}: the bytes before its data are not a tar header ({exc})"
    # TocBuilder keeps the entries parsed so far; the region holds exactly one header.
    parsed: list[FileMetadata] = list(parser.entries)
    if len(parsed) != 1:
        return f"{entry.name!r}: {len(parsed)} tar headers found before its data offset, expected 1"
    got = parsed[0]
    if got.uncompressed_offset != len(region):
        return f"{entry.name!r}: its tar header ends at +{got.uncompressed_offset}, not at its data offset"
    for attr in _COMPARED:
        want, have = getattr(entry, attr), getattr(got, attr)
        if want != have:
            label = "size" if attr == "uncompressed_size" else attr
            return f"{entry.name!r}: TOC {label} {_show(want)} but tar header says {_show(have)}"
    return None


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class _HeaderCutter:
    """Collects each entry's header region from the tar stream as it goes by and checks it."""

    def __init__(self, regions: list[tuple[int, int, FileMetadata]], problems: Problems) -> None:
        self.regions = regions
        self.problems = problems
        self.next = 0
        self.buf = bytearray()

    def feed(self, pos: int, data: bytes | memoryview) -> None:
        end = pos + len(data)
        regions = self.regions
        while self.next < len(regions):
            start, stop, entry = regions[self.next]
            if start >= end:
                return
            lo, hi = max(start, pos), min(stop, end)
            if hi > lo:
                self.buf += data[lo - pos : hi - pos]
            if stop > end:
                return
            self.problems.checked += 1
            why = compare_header(bytes(self.buf), entry)
            if why:
                self.problems.add(why)
            self.buf.clear()
            self.next += 1

    def finish(self, stream_end: int, *, broken: bool = False) -> None:
        """`broken`: decompression failed at `stream_end` (a layer-level failure reported by the
        contents check), so entries past it are counted as unchecked rather than wrong."""
        for _start, _stop, entry in self.regions[self.next :]:
            if broken:
                self.problems.unchecked += 1
                continue
            self.problems.checked += 1
            self.problems.add(
                f"{entry.name!r}: the tar stream ends ({stream_end} bytes) before its data offset"
            )
        self.next = len(self.regions)


def scan_layer(
    stream: BinaryIO, ztoc: Ztoc, *, layer_digest: str, layer_size: int, sample: int | None = None
) -> LayerScan:
    """Check `ztoc` against the layer blob read from `stream` (read to its end once).

    `sample`: None compares every file through spans (deep), N compares N regular files spread over
    the layer. Span digests and TOC headers are always checked in full: they cost nothing extra in a
    sequential pass. Span byte ranges use the layer's real size, so a wrong
    `compressed_archive_size` is reported by the ztoc-size check alone."""
    scan = LayerScan()
    info = ztoc.compression_info
    if info.compression_algorithm == "uncompressed":
        zinfo: GzipZinfo | TarZinfo = TarZinfo(info.checkpoints)
    else:
        zinfo = GzipZinfo(info.checkpoints)
    regions = _header_regions(ztoc, scan)
    cutter = _HeaderCutter(regions, scan.headers)
    if isinstance(zinfo, TarZinfo):
        _scan_tar(stream, ztoc, zinfo, layer_digest, layer_size, cutter, scan, sample)
    else:
        _scan_gzip(stream, ztoc, zinfo, layer_digest, layer_size, cutter, scan, sample)
    return scan


class _SpanHasher:
    """sha256 of each span's compressed range `[start, end)` as chunks of the blob go by."""

    def __init__(
        self, ranges: list[tuple[int, int]], digests: tuple[str, ...], problems: Problems, keep: set[int]
    ) -> None:
        self.ranges = ranges
        self.digests = digests
        self.problems = problems
        self.keep = keep  # spans whose compressed bytes are needed for re-inflation
        self.first = 0
        self.hashers: dict[int, Any] = {}
        self.kept: dict[int, bytearray] = {}
        self.done: list[tuple[int, bytes | None]] = []  # finished spans (id, compressed bytes if kept)

    def feed(self, pos: int, chunk: memoryview) -> None:
        end = pos + len(chunk)
        ranges = self.ranges
        j = self.first
        while j < len(ranges):
            start, stop = ranges[j]
            if start >= end and stop > end:  # not reached yet (an empty range at `end` finishes now)
                break
            lo, hi = max(start, pos), min(stop, end)
            if hi > lo:
                piece = chunk[lo - pos : hi - pos]
                hasher = self.hashers.get(j)
                if hasher is None:
                    hasher = self.hashers[j] = hashlib.sha256()
                hasher.update(piece)
                if j in self.keep:
                    self.kept.setdefault(j, bytearray()).extend(piece)
            if stop <= end and j == self.first:
                self._finish(j)
                self.first += 1
            j += 1

    def _finish(self, j: int, note: str = "") -> None:
        hasher = self.hashers.pop(j, None) or hashlib.sha256()
        digest = "sha256:" + hasher.hexdigest()
        self.problems.checked += 1
        if note:
            self.problems.add(f"span {j}: {note}")
        elif j >= len(self.digests):
            self.problems.add(f"span {j} has no digest in the ztoc")
        elif digest != self.digests[j]:
            start, stop = self.ranges[j]
            self.problems.add(
                f"span {j} (bytes {start}-{stop}) hashes to {digest[:19]}…, ztoc says {self.digests[j][:19]}…"
            )
        kept = self.kept.pop(j, None)
        self.done.append((j, bytes(kept) if kept is not None else (b"" if j in self.keep else None)))

    def finish(self, blob_size: int) -> None:
        while self.first < len(self.ranges):
            j = self.first
            self._finish(j, f"its range ends at {self.ranges[j][1]}, past the blob's end ({blob_size})")
            self.first += 1
        if len(self.digests) > len(self.ranges):
            self.problems.add(f"the ztoc lists {len(self.digests)} span digests for {len(self.ranges)} spans")


def _read_chunks(stream: BinaryIO, scan: LayerScan, blob_hash: Any) -> Any:
    buf = bytearray(READ_CHUNK)
    view = memoryview(buf)
    pos = 0
    while True:
        n = stream.readinto(view)  # type: ignore[attr-defined]
        if not n:
            return
        chunk = view[:n]
        blob_hash.update(chunk)
        yield pos, chunk
        pos += n
        scan.bytes_read = pos


def _check_blob(scan: LayerScan, blob_hash: Any, layer_digest: str, layer_size: int) -> None:
    scan.blob.checked = 1
    digest = "sha256:" + blob_hash.hexdigest()
    if scan.bytes_read != layer_size:
        scan.blob.add(f"the blob is {scan.bytes_read} bytes, its descriptor says {layer_size}")
    elif digest != layer_digest:
        scan.blob.add(f"the blob hashes to {digest}, its descriptor says {layer_digest}")


def _scan_tar(
    stream: BinaryIO,
    ztoc: Ztoc,
    zinfo: TarZinfo,
    layer_digest: str,
    layer_size: int,
    cutter: _HeaderCutter,
    scan: LayerScan,
    sample: int | None,
) -> None:
    ranges = [zinfo.compressed_range(i) for i in range(zinfo.count)]
    spans = _SpanHasher(ranges, ztoc.compression_info.span_digests, scan.spans, set())
    blob_hash = hashlib.sha256()
    for pos, chunk in _read_chunks(stream, scan, blob_hash):
        spans.feed(pos, chunk)
        cutter.feed(pos, chunk)
    spans.finish(scan.bytes_read)
    cutter.finish(scan.bytes_read)
    _check_blob(scan, blob_hash, layer_digest, layer_size)
    scan.files_checked = len(_pick_sample(list(ztoc.toc), sample))
    scan.content_note = "uncompressed layer: a span read returns the tar bytes themselves"


class _SpanVerifier:
    """Compares spans inflated from their checkpoints with the sequential stream, on a worker."""

    def __init__(
        self,
        zinfo: GzipZinfo,
        uranges: list[tuple[int, int]],
        wanted: set[int],
        problems: Problems,
        files_by_span: dict[int, str],
    ) -> None:
        self.zinfo = zinfo
        self.uranges = uranges
        self.wanted = wanted
        self.problems = problems
        self.files_by_span = files_by_span
        self.compressed: dict[int, bytes] = {}
        self.expected: dict[int, bytearray] = {}
        self.ready_u: set[int] = set()
        self.next_u = 0
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="span-verify")
        self.futures: deque[tuple[int, Future[str | None]]] = deque()

    def feed_uncompressed(self, pos: int, data: bytes | memoryview) -> None:
        end = pos + len(data)
        uranges = self.uranges
        j = self.next_u
        while j < len(uranges):
            start, stop = uranges[j]
            if start >= end and stop > end:  # not reached yet (an empty range at `end` finishes now)
                break
            if j in self.wanted:
                lo, hi = max(start, pos), min(stop, end)
                if hi > lo:
                    self.expected.setdefault(j, bytearray()).extend(data[lo - pos : hi - pos])
            if stop <= end and j == self.next_u:
                self.next_u += 1
                if j in self.wanted:
                    self.ready_u.add(j)
                    self._maybe_submit(j)
            j += 1

    def compressed_done(self, j: int, data: bytes | None) -> None:
        if data is not None and j in self.wanted:
            self.compressed[j] = data
            self._maybe_submit(j)

    def _maybe_submit(self, j: int) -> None:
        if j not in self.ready_u or j not in self.compressed:
            return
        self.ready_u.discard(j)
        data = self.compressed.pop(j)
        expected = self.expected.pop(j, bytearray())
        while len(self.futures) >= MAX_IN_FLIGHT:
            self._collect_one()
        self.futures.append((j, self.pool.submit(self._verify, j, data, expected)))

    def _verify(self, j: int, data: bytes, expected: bytearray) -> str | None:
        cp = self.zinfo.checkpoint(j)
        try:
            got = inflate_from_checkpoint(data, bits=cp.bits, window=cp.window, skip=0, length=len(expected))
        except SocikitError as exc:
            return f"span {j} does not inflate from its checkpoint: {exc}"
        if got != expected:
            at = next((i for i in range(len(got)) if got[i] != expected[i]), len(got))
            where = self.uranges[j][0] + at
            return f"span {j}: data inflated from its checkpoint differs from the tar at byte {where}"
        return None

    def _collect_one(self) -> None:
        j, future = self.futures.popleft()
        self.problems.checked += 1
        why = future.result()
        if why:
            names = self.files_by_span.get(j)
            self.problems.add(why + (f" (affects {names})" if names else ""))

    def finish(self, stream_end: int, *, broken: bool = False) -> None:
        try:
            while self.futures:
                self._collect_one()
            for j in sorted(self.wanted):
                if j < self.next_u or j in self.ready_u:
                    continue
                if broken:
                    self.problems.unchecked += 1
                    continue
                self.problems.checked += 1
                self.problems.add(f"span {j}: the tar stream ends ({stream_end} bytes) inside it")
            for j in sorted(self.ready_u):
                self.problems.checked += 1
                self.problems.add(f"span {j}: its compressed bytes were never complete")
        finally:
            self.pool.shutdown(wait=True)


def _scan_gzip(
    stream: BinaryIO,
    ztoc: Ztoc,
    zinfo: GzipZinfo,
    layer_digest: str,
    layer_size: int,
    cutter: _HeaderCutter,
    scan: LayerScan,
    sample: int | None,
) -> None:
    count = zinfo.count
    usize = ztoc.uncompressed_archive_size
    cranges = [zinfo.compressed_range(i, layer_size) for i in range(count)]
    uranges = [zinfo.uncompressed_range(i, usize) for i in range(count)]
    files = _pick_sample(list(ztoc.toc), sample)
    scan.files_checked = len(files)
    wanted: set[int] = set()
    files_by_span: dict[int, str] = {}
    for entry in files:
        first = zinfo.span_of(entry.uncompressed_offset)
        last = zinfo.span_of(entry.uncompressed_offset + entry.uncompressed_size)
        for j in range(first, last + 1):
            wanted.add(j)
            files_by_span.setdefault(j, repr(entry.name))
    if sample is None:
        wanted = set(range(count))
    spans = _SpanHasher(cranges, ztoc.compression_info.span_digests, scan.spans, wanted)
    verifier = _SpanVerifier(zinfo, uranges, wanted, scan.contents, files_by_span)
    blob_hash = hashlib.sha256()
    inflated, error = _inflate_sequentially(stream, scan, blob_hash, spans, verifier, cutter)
    broken = bool(error)
    if error:
        scan.contents.add(f"the layer does not decompress at uncompressed byte {inflated}: {error}")
    verifier.finish(inflated, broken=broken)
    cutter.finish(inflated, broken=broken)
    scan.bytes_inflated = inflated
    _check_blob(scan, blob_hash, layer_digest, layer_size)


def _inflate_sequentially(
    stream: BinaryIO,
    scan: LayerScan,
    blob_hash: Any,
    spans: _SpanHasher,
    verifier: _SpanVerifier,
    cutter: _HeaderCutter,
) -> tuple[int, str]:
    """The single pass: read, hash and inflate (the ztoc engine's `StreamInflater`) on a
    producer thread, while this thread runs the Python checks on the output (tar headers, span
    bookkeeping). Returns the uncompressed length and "" or why decompression stopped.

    The producer's work is C code that releases the GIL; it hands over big pieces (up to
    INFLATE_AREA bytes) so that it rarely waits for the GIL the checks hold."""
    items: queue.Queue[tuple[str, Any, Any]] = queue.Queue(maxsize=QUEUE_DEPTH)
    result: dict[str, Any] = {"upos": 0, "error": "", "exc": None}
    stop = threading.Event()

    def put(item: tuple[str, Any, Any]) -> None:
        while not stop.is_set():
            with contextlib.suppress(queue.Full):
                items.put(item, timeout=0.1)
                return

    def produce() -> None:
        try:
            result["error"] = _produce(stream, scan, blob_hash, spans, put, result)
        except BaseException as exc:  # re-raised on the consuming thread
            result["exc"] = exc
        finally:
            put(("end", None, None))

    producer = threading.Thread(target=produce, name="layer-inflate", daemon=True)
    producer.start()
    try:
        while True:
            kind, a, b = items.get()
            if kind == "u":
                cutter.feed(a, b)
                verifier.feed_uncompressed(a, b)
                del b  # the area returns to the producer's ring
            elif kind == "c":
                for j, data in a:
                    verifier.compressed_done(j, data)
            else:
                break
    finally:
        stop.set()
        producer.join()
    if result["exc"] is not None:
        raise result["exc"]
    return int(result["upos"]), str(result["error"])


def _produce(
    stream: BinaryIO, scan: LayerScan, blob_hash: Any, spans: _SpanHasher, put: Any, result: dict[str, Any]
) -> str:
    """Read, hash (blob and spans) and inflate. Hashing stays on this thread: a third thread
    measured slower (more GIL hand-offs with the Python checks)."""
    # Output goes to a ring of reused areas, never to fresh memory (page faults on hundreds of MB
    # cost as much as inflating them). An area is reused only after the consumer is done with it:
    # at most QUEUE_DEPTH pieces wait in the queue and one is being checked.
    ring = [ctypes.create_string_buffer(INFLATE_AREA) for _ in range(QUEUE_DEPTH + 2)]
    ring_views = [memoryview(area).cast("B") for area in ring]
    in_buf = ctypes.create_string_buffer(READ_CHUNK)
    in_view = memoryview(in_buf).cast("B")
    upos = pos = turn = 0
    error = ""
    with StreamInflater() as inflater:
        while n := stream.readinto(in_view):  # type: ignore[attr-defined]
            chunk = in_view[:n]
            blob_hash.update(chunk)
            spans.feed(pos, chunk)
            pos += n
            if spans.done:
                put(("c", spans.done, None))
                spans.done = []
            if error:
                continue
            inflater.feed(chunk)
            while True:
                turn = (turn + 1) % len(ring)
                produced = inflater.inflate_into(ring[turn])
                if produced:
                    put(("u", upos, ring_views[turn][:produced]))
                    upos += produced
                    result["upos"] = upos
                if inflater.error:
                    error = inflater.error
                    break
                if produced < INFLATE_AREA:  # the input is used up
                    break
        member_ended = inflater.at_member_end
    scan.bytes_read = pos
    spans.finish(pos)
    if spans.done:
        put(("c", spans.done, None))
        spans.done = []
    if not error and not member_ended:
        error = "the compressed data ends early (truncated layer?)" if upos or pos else "the layer is empty"
    return error

"""Settle a layer's deep checks by rebuilding its ztoc from the blob (fact sheet §2.2, §7.6).

Building a gzip layer's ztoc afresh costs one pass at building speed. If the result has exactly the
claimed ztoc's TOC, checkpoints (offsets, bit offset, 32 KiB window), span digests and sizes, every
deep check holds by construction: each entry is what its tar header says, each span digest is the
hash of the blob's bytes, and a span inflated from a checkpoint that sits on the stream's own
block boundary with the stream's own window yields the stream's bytes (inflate is deterministic).
Anything else (another producer's checkpoint placement, a broken ztoc, a corrupt blob) is left to
`layerscan.scan_layer`, which checks item by item and says what is wrong.

Layers are rebuilt on forked worker processes, one core each, as `socikit convert` builds them.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any, BinaryIO

from socikit.errors import SocikitError
from socikit.oci.descriptor import Descriptor
from socikit.validate.layerscan import LayerScan, _pick_sample
from socikit.ztoc.builder import build_ztoc
from socikit.ztoc.compression.gzip import GzipZinfo
from socikit.ztoc.model import Ztoc

__all__ = ["reproduce_layer", "reproduce_layers"]


def reproduce_layer(
    stream: BinaryIO, ztoc: Ztoc, *, layer_digest: str, layer_size: int, sample: int | None = None
) -> LayerScan | None:
    """A fully passing LayerScan if building the gzip layer's ztoc from `stream` (read once) gives
    exactly `ztoc`'s TOC, checkpoints, span digests and sizes; None otherwise (then run
    `scan_layer` on a fresh stream for the reasons)."""
    info = ztoc.compression_info
    if info.compression_algorithm != "gzip":
        return None
    try:
        zinfo = GzipZinfo(info.checkpoints)
        rebuilt = build_ztoc(
            stream,
            span_size=zinfo.span_size,
            build_tool_identifier=ztoc.build_tool_identifier,
            expected_digest=layer_digest,
            expected_size=layer_size,
        ).ztoc
    except SocikitError:
        return None
    same = (
        rebuilt.compression_info == info
        and rebuilt.compressed_archive_size == ztoc.compressed_archive_size
        and rebuilt.uncompressed_archive_size == ztoc.uncompressed_archive_size
        and rebuilt.toc == ztoc.toc
    )
    if not same:
        return None
    scan = LayerScan(bytes_read=layer_size, bytes_inflated=ztoc.uncompressed_archive_size)
    scan.blob.checked = 1
    scan.spans.checked = zinfo.count
    scan.headers.checked = len(ztoc.toc)
    files = _pick_sample(list(ztoc.toc), sample)
    scan.files_checked = len(files)
    if sample is None:
        scan.contents.checked = zinfo.count
    else:
        scan.contents.checked = len({
            j
            for entry in files
            for j in range(
                zinfo.span_of(entry.uncompressed_offset),
                zinfo.span_of(entry.uncompressed_offset + entry.uncompressed_size) + 1,
            )
        })
    scope = "all" if sample is None else f"a sample of {scan.files_checked}"
    scan.content_note = (
        f"{scope} files ({scan.files_checked}) read through {scan.contents.checked} spans equal the tar: "
        "the ztoc rebuilt from the blob is identical, so every checkpoint is the stream's own"
    )
    return scan


# What the forked workers read: set by the parent just before the pool forks, so the claimed
# ztocs (large TOCs) are inherited instead of pickled.
_WORK: list[tuple[Callable[[Descriptor], Any], Descriptor, Ztoc, int | None]] = []


def _reproduce_job(index: int) -> LayerScan | None:
    opener, layer, ztoc, sample = _WORK[index]
    with opener(layer) as stream:
        return reproduce_layer(stream, ztoc, layer_digest=layer.digest, layer_size=layer.size, sample=sample)


def reproduce_layers(
    opener: Callable[[Descriptor], Any],
    jobs: Sequence[tuple[Descriptor, Ztoc]],
    *,
    sample: int | None,
    workers: int,
) -> list[LayerScan | None]:
    """`reproduce_layer` for each (layer, ztoc), on up to `workers` forked processes; `opener`
    opens a layer blob in the worker (an image source's picklable `blob_opener`). A layer whose
    blob cannot be opened or read comes back as None, for the item-by-item scan to report."""
    global _WORK
    gzip_jobs = [i for i, (_, ztoc) in enumerate(jobs) if ztoc.compression_info.compression_algorithm == "gzip"]
    results: list[LayerScan | None] = [None] * len(jobs)
    if not gzip_jobs:
        return results
    _WORK = [(opener, layer, ztoc, sample) for layer, ztoc in jobs]
    try:
        if workers <= 1 or len(gzip_jobs) == 1:
            for i in gzip_jobs:
                results[i] = _reproduce_quietly(i)
            return results
        # Largest first, so the pool finishes together.
        order = sorted(gzip_jobs, key=lambda i: jobs[i][0].size, reverse=True)
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(max_workers=min(workers, len(order)), mp_context=context) as pool:
            futures = {i: pool.submit(_reproduce_quietly, i) for i in order}
            for i in order:
                results[i] = futures[i].result()
        return results
    finally:
        _WORK = []


def _reproduce_quietly(index: int) -> LayerScan | None:
    try:
        return _reproduce_job(index)
    except (SocikitError, OSError):
        return None

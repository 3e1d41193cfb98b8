"""Index the layers of an image: decide which layers get a ztoc, build them on a thread pool
straight from the source's blob streams, reuse cached ztocs."""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any

from socikit.content.base import ImageSource, OpensBlobsInWorkers
from socikit.errors import ImageError, SocikitError, UnsupportedLayerError
from socikit.oci.descriptor import Descriptor
from socikit.oci.mediatypes import compression_of_layer
from socikit.pipeline.cache import ZtocCache
from socikit.pipeline.events import Event, LayerFinished, LayerOutcome, LayerStarted
from socikit.ztoc.builder import build_ztoc
from socikit.ztoc.serialize import dumps, loads


def skip_reason(layer: Descriptor, *, min_layer_size: int) -> str | None:
    """Why `layer` gets no ztoc, or None when it is to be indexed. Raises ImageError for media types
    that are not layers at all (the reference fails the build on those too)."""
    algorithm = compression_of_layer(layer.media_type)
    if algorithm is None:
        raise ImageError(f"layer {layer.digest} has media type {layer.media_type!r}, which is not a layer type")
    if algorithm not in ("gzip", "uncompressed"):
        return (
            f"compressed with {algorithm}, which ztocs cannot describe (only gzip and uncompressed tar layers "
            "can be lazily loaded)"
        )
    if layer.size < min_layer_size:
        return f"size {layer.size} is below the minimum layer size {min_layer_size} (--min-layer-size)"
    return None


def index_layer(
    source: ImageSource,
    layer: Descriptor,
    *,
    span_size: int,
    min_layer_size: int,
    build_tool_identifier: str,
    cache: ZtocCache | None,
) -> LayerOutcome:
    """Build (or fetch from the cache) the ztoc of one layer, streaming the blob once."""
    reason = skip_reason(layer, min_layer_size=min_layer_size)
    if reason is not None:
        return LayerOutcome(layer=layer, ztoc=None, skipped=reason)
    started = time.monotonic()
    if cache is not None:
        cached = cache.get(layer.digest, layer.size, span_size, build_tool_identifier)
        if cached is not None:
            ztoc = loads(cached)
            return LayerOutcome(
                layer=layer, ztoc=cached, skipped=None, spans=ztoc.compression_info.num_spans,
                files=len(ztoc.toc), seconds=time.monotonic() - started, cached=True,
            )
    outcome = _build_layer(source.open_blob, layer, span_size, build_tool_identifier)
    if cache is not None and outcome.ztoc is not None:
        cache.put(layer.digest, span_size, build_tool_identifier, outcome.ztoc)
    return outcome


def _build_layer(
    opener: Callable[[Descriptor], Any], layer: Descriptor, span_size: int, build_tool_identifier: str
) -> LayerOutcome:
    """Stream one layer through the builder. Runs in this process or, picklable `opener` given,
    in a worker process. A layer holding what the ztoc format cannot describe (a global PAX
    header, a sparse file) is skipped with that reason: the other layers are still indexed."""
    started = time.monotonic()
    algorithm = compression_of_layer(layer.media_type)
    try:
        stream = opener(layer)
        try:
            result = build_ztoc(
                stream, algorithm=algorithm or "", span_size=span_size, build_tool_identifier=build_tool_identifier,
                expected_digest=layer.digest, expected_size=layer.size,
            )
        finally:
            stream.close()
    except UnsupportedLayerError as exc:
        return LayerOutcome(layer=layer, ztoc=None, skipped=str(exc), seconds=time.monotonic() - started)
    except SocikitError as exc:
        raise type(exc)(f"layer {layer.digest}: {exc}") from None
    except OSError as exc:
        raise ImageError(f"layer {layer.digest}: {exc.strerror or exc}") from None
    return LayerOutcome(
        layer=layer, ztoc=dumps(result.ztoc), skipped=None, spans=result.ztoc.compression_info.num_spans,
        files=len(result.ztoc.toc), seconds=time.monotonic() - started,
    )


def index_layers(
    source: ImageSource,
    layers: Iterable[Descriptor],
    *,
    span_size: int,
    min_layer_size: int,
    build_tool_identifier: str,
    cache: ZtocCache | None,
    jobs: int,
    on_event: Callable[[Event], None] | None = None,
    while_waiting: Callable[[], None] | None = None,
) -> dict[str, LayerOutcome]:
    """Index every distinct layer (by digest) on `jobs` threads; returns outcomes by layer digest.

    `while_waiting` runs on the calling thread once every layer has been handed out (and any
    worker process forked), e.g. to prepare what comes after indexing. The first failure cancels
    the layers not yet started and is re-raised."""
    unique: dict[str, Descriptor] = {}
    for layer in layers:
        unique.setdefault(layer.digest, layer)
    emit = on_event or (lambda event: None)

    def work(layer: Descriptor) -> LayerOutcome:
        emit(LayerStarted(layer=layer))
        outcome = index_layer(
            source, layer, span_size=span_size, min_layer_size=min_layer_size,
            build_tool_identifier=build_tool_identifier, cache=cache,
        )
        emit(LayerFinished(outcome=outcome))
        return outcome

    opener = source.blob_opener if isinstance(source, OpensBlobsInWorkers) else None
    to_build = [
        layer for layer in unique.values()
        if skip_reason(layer, min_layer_size=min_layer_size) is None
        and (cache is None or cache.get(layer.digest, layer.size, span_size, build_tool_identifier) is None)
    ]
    if jobs > 1 and len(to_build) > 1 and opener is not None:
        return _index_in_processes(
            source, unique, to_build, opener, span_size=span_size, min_layer_size=min_layer_size,
            build_tool_identifier=build_tool_identifier, cache=cache, jobs=jobs, emit=emit,
            while_waiting=while_waiting,
        )
    outcomes: dict[str, LayerOutcome] = {}
    with ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="socikit-layer") as pool:
        futures = {digest: pool.submit(work, layer) for digest, layer in unique.items()}
        try:
            if while_waiting is not None:
                while_waiting()
            for digest, future in futures.items():
                outcomes[digest] = future.result()
        except BaseException:
            for future in futures.values():
                future.cancel()
            raise
    return outcomes


def _index_in_processes(
    source: ImageSource,
    unique: dict[str, Descriptor],
    to_build: list[Descriptor],
    opener: Callable[[Descriptor], Any],
    *,
    span_size: int,
    min_layer_size: int,
    build_tool_identifier: str,
    cache: ZtocCache | None,
    jobs: int,
    emit: Callable[[Event], None],
    while_waiting: Callable[[], None] | None,
) -> dict[str, LayerOutcome]:
    """Build several layers on worker processes. The builder's Python parts (tar headers, loop
    glue) hold the GIL, so threads serialize on it; processes give each layer a core of its own.
    Skipped and cached layers are settled here without a worker."""
    outcomes: dict[str, LayerOutcome] = {}
    building = {layer.digest for layer in to_build}
    for digest, layer in unique.items():
        if digest not in building:
            emit(LayerStarted(layer=layer))
            outcomes[digest] = index_layer(
                source, layer, span_size=span_size, min_layer_size=min_layer_size,
                build_tool_identifier=build_tool_identifier, cache=cache,
            )
            emit(LayerFinished(outcome=outcomes[digest]))
    # Largest first: the longest job starts earliest, so the pool finishes together.
    order = sorted(to_build, key=lambda layer: layer.size, reverse=True)
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=min(jobs, len(order)), mp_context=context) as pool:
        futures = {}
        for layer in order:
            emit(LayerStarted(layer=layer))
            futures[layer.digest] = pool.submit(_build_layer, opener, layer, span_size, build_tool_identifier)
        try:
            if while_waiting is not None:
                while_waiting()  # the workers are forked by now: imports here cannot reach them
            for layer in order:
                outcome = futures[layer.digest].result()
                if cache is not None and outcome.ztoc is not None:
                    cache.put(layer.digest, span_size, build_tool_identifier, outcome.ztoc)
                outcomes[layer.digest] = outcome
                emit(LayerFinished(outcome=outcome))
        except BaseException:
            for future in futures.values():
                future.cancel()
            raise
    return {digest: outcomes[digest] for digest in unique}


__all__ = ["LayerOutcome", "index_layer", "index_layers", "skip_reason"]

"""Index the layers of an image: decide which layers get a ztoc, build them on worker processes
straight from the source's blob streams, reuse cached ztocs.

Scheduling: `jobs` is the number of cores indexing takes, as worker processes; the largest layers
start first so the workers finish together. Each worker reads its layer through a read-ahead
thread, so the network and inflate overlap, and - when the destination can take it - hands the
same bytes to a streamed upload (`StreamsBlobUploads`): a layer from a registry is pulled once.
A layer waiting on the network does not hold a core: with a source that is not local files,
up to `jobs` more workers stream layers, and a worker holds one of the `jobs` CPU tokens only
while it has bytes to inflate.
"""

from __future__ import annotations

import collections
import logging
import multiprocessing
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any, BinaryIO, Protocol, runtime_checkable

from socikit.content.base import HasBlobPaths, ImageSource, OpensBlobsInWorkers
from socikit.errors import ImageError, SocikitError, UnsupportedLayerError
from socikit.oci.descriptor import Descriptor
from socikit.oci.digest import sha256_digest
from socikit.oci.mediatypes import compression_of_layer
from socikit.pipeline.cache import ZtocCache
from socikit.pipeline.events import Event, LayerFinished, LayerOutcome, LayerStarted
from socikit.ztoc.builder import INPUT_CHUNK, build_ztoc
from socikit.ztoc.serialize import dumps, loads

logger = logging.getLogger(__name__)

READ_AHEAD = 16  # chunks of INPUT_CHUNK bytes read ahead of the builder (4 MiB)


@runtime_checkable
class BlobUpload(Protocol):
    """An upload fed with a blob's bytes in order as they are read for indexing."""

    def write(self, chunk: bytes) -> None: ...

    def finish(self) -> bool:
        """All bytes written; True when the destination has the blob."""
        ...

    def abort(self) -> None: ...


@runtime_checkable
class StreamsBlobUploads(Protocol):
    """A sink that can take a layer from the stream the builder reads (a registry uploads it, an
    OCI layout stages it to rename into place when its blobs are written): a picklable
    `desc -> BlobUpload | None` for `source`'s layers (None for a layer with nothing to send),
    or None when that is not the way for this source.

    `copies_while_indexing`: the sink also wants the image's other blobs while the layers are
    indexed (a registry: each copy is a network round trip, and a blob nothing refers to is
    invisible there). A layout does not: its copies are local, and after indexing the layers just
    read are linked without being hashed again."""

    copies_while_indexing: bool

    def stream_uploader(self, source: ImageSource) -> Callable[[Descriptor], BlobUpload | None] | None: ...


# CPU tokens shared by the worker processes of one `index_layers` (None: no limit).
_cpu_tokens: Any = None


def _init_worker(tokens: Any) -> None:
    global _cpu_tokens
    _cpu_tokens = tokens


class _ReadAhead:
    """A layer stream read on a thread of its own, up to READ_AHEAD chunks ahead of the builder,
    each chunk also handed to `tee` (an upload). The builder holds a CPU token (when there are
    tokens) from the first chunk until it has to wait for the next one."""

    def __init__(self, stream: BinaryIO, *, tee: Callable[[bytes], None] | None, tokens: Any) -> None:
        self._stream = stream
        self._tee = tee
        self._tokens = tokens
        self._holding = False
        self._chunks: collections.deque[bytes | BaseException] = collections.deque()
        self._ended = False
        self._stopping = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="socikit-read", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while True:
                with self._cond:
                    while len(self._chunks) >= READ_AHEAD and not self._stopping:
                        self._cond.wait()
                    if self._stopping:
                        return
                chunk = self._stream.read(INPUT_CHUNK)
                if not chunk:
                    break
                if self._tee is not None:
                    self._tee(chunk)
                with self._cond:
                    self._chunks.append(chunk)
                    self._cond.notify_all()
        except BaseException as exc:  # raised on the builder's thread, in order
            with self._cond:
                self._chunks.append(exc)
        finally:
            with self._cond:
                self._ended = True
                orphaned = self._stopping
                self._cond.notify_all()
            if orphaned:  # `close` gave up waiting for this read: the stream is ours to close
                self._stream.close()

    def read(self, size: int = -1) -> bytes:
        del size  # chunks of INPUT_CHUNK bytes, which is what the builder asks for
        with self._cond:
            if not self._chunks and not self._ended and self._holding:
                self._tokens.release()  # waiting on the network: the core is free for another layer
                self._holding = False
            while not self._chunks and not self._ended:
                self._cond.wait()
            item = self._chunks.popleft() if self._chunks else b""
            self._cond.notify_all()
        if isinstance(item, BaseException):
            raise item
        if self._tokens is not None and item and not self._holding:
            self._tokens.acquire()
            self._holding = True
        return item

    def close(self) -> None:
        """Stop reading. A read that is still waiting on the network (the build failed early) is
        not waited for: the reading thread closes the stream when that read returns."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(timeout=1)
        if self._holding:
            self._tokens.release()
            self._holding = False
        with self._cond:
            finished = self._ended
        if finished:
            self._stream.close()


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


def layers_to_build(
    layers: Iterable[Descriptor], *, span_size: int, min_layer_size: int, build_tool_identifier: str,
    cache: ZtocCache | None,
) -> list[Descriptor]:
    """The layers indexing will read: neither skipped nor found in the cache."""
    return [
        layer for layer in layers
        if skip_reason(layer, min_layer_size=min_layer_size) is None
        and (cache is None or cache.get(layer.digest, layer.size, span_size, build_tool_identifier) is None)
    ]


def index_layer(
    source: ImageSource,
    layer: Descriptor,
    *,
    span_size: int,
    min_layer_size: int,
    build_tool_identifier: str,
    cache: ZtocCache | None,
    uploader: Callable[[Descriptor], BlobUpload | None] | None = None,
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
                files=len(ztoc.toc), seconds=time.monotonic() - started, cached=True, ztoc_digest=sha256_digest(cached),
            )
    outcome = _build_layer(source.open_blob, layer, span_size, build_tool_identifier, uploader)
    if cache is not None and outcome.ztoc is not None:
        cache.put(layer.digest, span_size, build_tool_identifier, outcome.ztoc)
    return outcome


def _build_layer(
    opener: Callable[[Descriptor], Any], layer: Descriptor, span_size: int, build_tool_identifier: str,
    uploader: Callable[[Descriptor], BlobUpload | None] | None = None,
) -> LayerOutcome:
    """Stream one layer through the builder, and through an upload when `uploader` gives one.
    Runs in this process or, picklable `opener` given, in a worker process. A layer holding what
    the ztoc format cannot describe (a global PAX header, a sparse file) is skipped with that
    reason: the other layers are still indexed. An upload that fails does not fail the layer:
    the outcome says it was not uploaded and the blob is sent the ordinary way later."""
    started = time.monotonic()
    algorithm = compression_of_layer(layer.media_type)
    upload: BlobUpload | None = None
    try:
        if uploader is not None:
            try:
                upload = uploader(layer)
            except SocikitError as exc:
                logger.debug("layer %s: no streamed upload (%s)", layer.digest, exc)
        reader = _ReadAhead(opener(layer), tee=upload.write if upload is not None else None, tokens=_cpu_tokens)
        try:
            result = build_ztoc(
                reader, algorithm=algorithm or "", span_size=span_size,  # type: ignore[arg-type]
                build_tool_identifier=build_tool_identifier, expected_digest=layer.digest, expected_size=layer.size,
            )  # fmt: skip
        except BaseException:
            if upload is not None:  # first: the reading thread may be waiting for the upload
                upload.abort()
                upload = None
            raise
        finally:
            reader.close()
    except BaseException as exc:
        if upload is not None:
            upload.abort()
        if isinstance(exc, UnsupportedLayerError):
            return LayerOutcome(layer=layer, ztoc=None, skipped=str(exc), seconds=time.monotonic() - started)
        if isinstance(exc, SocikitError):
            raise type(exc)(f"layer {layer.digest}: {exc}") from None
        if isinstance(exc, OSError):
            raise ImageError(f"layer {layer.digest}: {exc.strerror or exc}") from None
        raise
    uploaded = upload.finish() if upload is not None else False
    data = dumps(result.ztoc)
    return LayerOutcome(
        layer=layer, ztoc=data, skipped=None, spans=result.ztoc.compression_info.num_spans,
        files=len(result.ztoc.toc), seconds=time.monotonic() - started, uploaded=uploaded,
        ztoc_digest=sha256_digest(data),
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
    uploader: Callable[[Descriptor], BlobUpload | None] | None = None,
) -> dict[str, LayerOutcome]:
    """Index every distinct layer (by digest) on `jobs` worker processes (one core each; the
    layers in this process when one job or one layer is left to build), largest first; returns
    outcomes by layer digest.

    `while_waiting` runs on the calling thread once every layer has been handed out (and any
    worker process forked), e.g. to prepare what comes after indexing. `uploader` (from a
    `StreamsBlobUploads` sink) uploads each layer built from the stream that indexes it; the
    outcome's `uploaded` says where that worked. The first failure cancels the layers not yet
    started and is re-raised."""
    unique: dict[str, Descriptor] = {}
    for layer in layers:
        unique.setdefault(layer.digest, layer)
    emit = on_event or (lambda event: None)

    def work(layer: Descriptor) -> LayerOutcome:
        emit(LayerStarted(layer=layer))
        outcome = index_layer(
            source, layer, span_size=span_size, min_layer_size=min_layer_size,
            build_tool_identifier=build_tool_identifier, cache=cache, uploader=uploader,
        )
        emit(LayerFinished(outcome=outcome))
        return outcome

    opener = source.blob_opener if isinstance(source, OpensBlobsInWorkers) else None
    to_build = layers_to_build(unique.values(), span_size=span_size, min_layer_size=min_layer_size,
                               build_tool_identifier=build_tool_identifier, cache=cache)  # fmt: skip
    if jobs > 1 and len(to_build) > 1 and opener is not None:
        return _index_in_processes(
            source, unique, to_build, opener, span_size=span_size, min_layer_size=min_layer_size,
            build_tool_identifier=build_tool_identifier, cache=cache, jobs=jobs, emit=emit,
            while_waiting=while_waiting, uploader=uploader,
        )
    outcomes: dict[str, LayerOutcome] = {}
    # Largest first; one thread per job (the builder runs without the GIL).
    order = sorted(unique.values(), key=lambda layer: layer.size, reverse=True)
    with ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="socikit-layer") as pool:
        futures = {layer.digest: pool.submit(work, layer) for layer in order}
        try:
            if while_waiting is not None:
                while_waiting()
            for digest, future in futures.items():
                outcomes[digest] = future.result()
        except BaseException:
            for future in futures.values():
                future.cancel()
            raise
    return {digest: outcomes[digest] for digest in unique}


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
    uploader: Callable[[Descriptor], BlobUpload | None] | None,
) -> dict[str, LayerOutcome]:
    """Build several layers on worker processes, each with its own interpreter for the Python
    parts (reading the stream, uploading), holding one of `jobs` cores. Skipped and cached
    layers are settled here without a worker."""
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
    # Local files never make a worker wait for long; streams from elsewhere get up to `jobs`
    # more workers, and `jobs` CPU tokens keep the cores in use at `jobs`.
    workers = min(len(order), jobs if isinstance(source, HasBlobPaths) else 2 * jobs)
    tokens = context.BoundedSemaphore(jobs) if workers > jobs else None
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_init_worker,
                             initargs=(tokens,)) as pool:  # fmt: skip
        futures = {}
        for layer in order:
            emit(LayerStarted(layer=layer))
            futures[layer.digest] = pool.submit(_build_layer, opener, layer, span_size, build_tool_identifier,
                                                uploader)  # fmt: skip
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


__all__ = [
    "BlobUpload",
    "LayerOutcome",
    "StreamsBlobUploads",
    "index_layer",
    "index_layers",
    "layers_to_build",
    "skip_reason",
]

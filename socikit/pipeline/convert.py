"""`convert` and `create`: read an image, index its layers, write SOCI artifacts.

The only orchestrator with I/O: it reads through an `ImageSource`, builds ztocs on a thread pool
(`pipeline.layers`), assembles SOCI indexes and the v2 conversion with the pure functions of
`socikit.soci`, validates, then writes through an `ImageSink` in dependency order (blobs, then
manifests, then indexes, the tag last) so an interrupted run never leaves a tag pointing at
missing content.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from socikit.content.base import ImageSink, ImageSource, WritesReferrers
from socikit.errors import ImageError
from socikit.oci import mediatypes as mt
from socikit.oci.descriptor import Descriptor, Platform
from socikit.oci.manifest import ImageConfig, ImageIndex, ImageManifest
from socikit.oci.platform import dedupe_platforms, format_platform, host_platform, matches, parse_platform
from socikit.pipeline.cache import ZtocCache
from socikit.pipeline.events import Event, LayerFinished, LayerOutcome, Message
from socikit.pipeline.layers import StreamsBlobUploads, index_layers, layers_to_build
from socikit.pipeline.writes import wait_in_order, write_manifests, write_tagged
from socikit.soci.convert import convert_to_v2
from socikit.soci.index import build_soci_index, layer_needs_no_xattrs, ztoc_descriptor
from socikit.soci.prefetch import plan_prefetch, prefetch_artifacts
from socikit.ztoc.model import Ztoc
from socikit.ztoc.serialize import loads

DEFAULT_BUILD_TOOL_ID = mt.REFERENCE_BUILD_TOOL_ID


@dataclass(frozen=True, slots=True)
class ConvertOptions:
    """Knobs of `convert`/`create`, with the reference CLI's defaults."""

    index_version: str = "v2"
    platforms: tuple[str, ...] = ()
    all_platforms: bool = False
    span_size: int = mt.DEFAULT_SPAN_SIZE
    min_layer_size: int = mt.DEFAULT_MIN_LAYER_SIZE
    build_tool_identifier: str = DEFAULT_BUILD_TOOL_ID
    jobs: int = field(default_factory=lambda: os.cpu_count() or 1)
    optimizations: tuple[str, ...] = ()  # "xattr": mark layers without xattrs (disable-xattrs)
    prefetch_paths: tuple[str, ...] = ()  # files to write prefetch artifacts for
    force: bool = False  # rebuild every ztoc even when the cache has it (and store the new one)
    toc_annotations: bool = False  # v2: annotate indexed layers with their ztoc digest (podman >= 5.1, CRI-O)


@dataclass(frozen=True, slots=True)
class PlatformResult:
    platform: Platform
    manifest: Descriptor  # the source manifest
    soci_index: Descriptor | None  # None: no layer of this platform was indexed
    layers: tuple[LayerOutcome, ...]
    converted_manifest: Descriptor | None = None  # v2 only
    prefetches: tuple[Descriptor, ...] = ()  # prefetch artifacts in the SOCI index
    prefetch_skipped: tuple[tuple[str, str], ...] = ()  # (requested path, why it gave no span)


@dataclass(frozen=True, slots=True)
class TagMove:
    """An in-place conversion (the destination names the tag the source image was found by)
    moved that tag; the source image itself is unchanged."""

    reference: str  # the tag, as a reference (e.g. oci:./image:latest)
    old: str  # digest the tag pointed at: the source image
    new: str  # digest it points at now: the converted image

    def __str__(self) -> str:
        return f"{self.reference} moved from {self.old} to {self.new} (the source image is unchanged)"


@dataclass(frozen=True, slots=True)
class ConversionResult:
    index_version: str
    result: Descriptor  # what the destination tag points at
    platforms: tuple[PlatformResult, ...]
    seconds: float
    tag_move: TagMove | None = None  # set by `run_convert` for an in-place conversion

    def to_json(self) -> dict[str, Any]:
        return {
            "index_version": self.index_version,
            "result": {"digest": self.result.digest, "size": self.result.size, "mediaType": self.result.media_type},
            "seconds": round(self.seconds, 3),
            "platforms": [
                {
                    "platform": format_platform(p.platform),
                    "manifest": p.manifest.digest,
                    "converted_manifest": p.converted_manifest.digest if p.converted_manifest else None,
                    "soci_index": p.soci_index.digest if p.soci_index else None,
                    "layers": [_layer_json(o) for o in p.layers],
                    "prefetch": [
                        {"digest": d.digest, "layer": d.annotations.get(mt.ANNOTATION_IMAGE_LAYER_DIGEST, "")}
                        for d in p.prefetches
                    ],
                    "prefetch_skipped": [{"path": path, "reason": why} for path, why in p.prefetch_skipped],
                }
                for p in self.platforms
            ],
        }


def _layer_json(outcome: LayerOutcome) -> dict[str, Any]:
    ztoc = outcome.ztoc_descriptor()
    return {
        "digest": outcome.layer.digest,
        "size": outcome.layer.size,
        "mediaType": outcome.layer.media_type,
        "ztoc": ztoc.digest if ztoc is not None else None,
        "skipped": outcome.skipped,
        "spans": outcome.spans,
        "files": outcome.files,
        "seconds": round(outcome.seconds, 3),
        "cached": outcome.cached,
    }


@dataclass
class _Image:
    """The source image as read: root descriptor/bytes, and each platform manifest to index."""

    root: Descriptor
    root_bytes: bytes
    index: ImageIndex | None
    manifests: dict[str, bytes]  # digest -> bytes, every manifest of the image that could be read
    selected: list[tuple[Descriptor, ImageManifest, Platform]]
    root_platform: Platform | None = None  # a single-manifest image's platform, from its config
    read: dict[str, bytes] = field(default_factory=dict)  # blobs read whole on the way (the config)


def read_image(source: ImageSource, options: ConvertOptions) -> _Image:
    """Resolve the reference and pick the platform manifests to index."""
    root = source.resolve()
    root_bytes = source.read_blob(root)
    manifests: dict[str, bytes] = {}
    selected: list[tuple[Descriptor, ImageManifest, Platform]] = []
    if root.media_type in mt.INDEX_MEDIA_TYPES:
        index = ImageIndex.from_json(root_bytes)
        candidates: list[tuple[Descriptor, Platform]] = []
        for entry in index.entries:
            if entry.media_type not in mt.MANIFEST_MEDIA_TYPES:
                continue
            try:
                manifests[entry.digest] = source.read_blob(entry)
            except ImageError:
                continue  # e.g. a platform that was never pulled: left untouched, as the reference does
            if entry.platform is not None and entry.artifact_type == "":
                candidates.append((entry, entry.platform))
        chosen = _choose_platforms(candidates, options)
        for entry, platform in chosen:
            if entry.digest not in manifests:
                raise ImageError(f"the manifest of platform {format_platform(platform)} ({entry.digest}) is missing")
            selected.append((entry, ImageManifest.from_json(manifests[entry.digest]), platform))
        return _Image(root, root_bytes, index, manifests, selected)
    if root.media_type not in mt.MANIFEST_MEDIA_TYPES:
        raise ImageError(f"{root.digest} has media type {root.media_type!r}, which is neither a manifest nor an index")
    manifest = ImageManifest.from_json(root_bytes)
    config_bytes = source.read_blob(manifest.config)
    platform = ImageConfig.from_json(config_bytes).platform()
    manifests[root.digest] = root_bytes
    for wanted in options.platforms:
        if not matches(parse_platform(wanted), platform):
            raise ImageError(
                f"platform {wanted} is not in the image; it has only {format_platform(platform)}"
            )
    # The reference records the requested platform as containerd parses it (which normalizes).
    build_platform = parse_platform(options.platforms[0]) if options.platforms else platform
    selected.append((root, manifest, build_platform))
    return _Image(root, root_bytes, None, manifests, selected, root_platform=platform,
                  read={manifest.config.digest: config_bytes})


def _choose_platforms(
    candidates: list[tuple[Descriptor, Platform]], options: ConvertOptions
) -> list[tuple[Descriptor, Platform]]:
    candidates = [(d, p) for d, p in candidates if "unknown" not in (p.os, p.architecture)]  # attestations
    present = [p for _, p in candidates]
    listing = ", ".join(format_platform(p) for p in present) or "none"
    if options.all_platforms:
        chosen = list(candidates)
        if not chosen:
            raise ImageError("the image index lists no platform manifests")
        return chosen
    wanted = dedupe_platforms([parse_platform(w) for w in options.platforms]) or [host_platform()]
    chosen = []
    for want in wanted:
        match = next(((d, p) for d, p in candidates if matches(want, p)), None)
        if match is None:
            raise ImageError(f"platform {format_platform(want)} is not in the image; it has: {listing}")
        # With an explicit --platform the reference records the normalized requested platform.
        chosen.append((match[0], want))
    return chosen


def convert_image(
    source: ImageSource,
    sink: ImageSink,
    options: ConvertOptions,
    *,
    cache: ZtocCache | None = None,
    validate: bool = True,
    copy_image: bool = True,
    on_event: Callable[[Event], None] | None = None,
) -> ConversionResult:
    """Index `source` and write the result to `sink`: v2 (an OCI index bundling the image and its
    SOCI indexes) or v1 (the image unchanged plus SOCI indexes that refer to it). With
    `copy_image=False` (v1 only, `socikit create`) only the SOCI artifacts are written."""
    if not copy_image and options.index_version != "v1":
        raise ValueError("copy_image=False is only meaningful for v1 indexes")
    if options.toc_annotations and options.index_version != "v2":
        raise ValueError("TOC-digest annotations are written by a v2 conversion only")
    started = time.monotonic()
    emit = on_event or (lambda event: None)
    if options.force and cache is not None:
        cache = cache.refreshing()
    image = read_image(source, options)
    all_layers = [layer for _, manifest, _ in image.selected for layer in manifest.layer_list]
    # A registry or OCI layout destination gets each layer from the stream that indexes it; a
    # registry also every other blob while the layers are indexed: only manifests and tags wait
    # for validation (a blob nothing refers to is invisible there).
    uploader = sink.stream_uploader(source) if copy_image and isinstance(sink, StreamsBlobUploads) else None
    early = _EarlyCopies(source, sink) if copy_image and isinstance(sink, StreamsBlobUploads) \
        and sink.copies_while_indexing else None

    def while_waiting() -> None:
        if early is not None:
            streamed = set() if uploader is None else {layer.digest for layer in layers_to_build(
                all_layers, span_size=options.span_size, min_layer_size=options.min_layer_size,
                build_tool_identifier=options.build_tool_identifier, cache=cache)}  # fmt: skip
            early.start([blob for blob in _image_blobs(image) if blob.digest not in streamed], read=image.read)
            early.write(_SOCI_CONFIG, mt.EMPTY_JSON_BLOB)
        if validate:
            _prepare_validation()

    def on_layer_event(event: Event) -> None:
        if early is not None and isinstance(event, LayerFinished):
            ztoc_desc, ztoc = event.outcome.ztoc_descriptor(), event.outcome.ztoc
            if ztoc_desc is not None and ztoc is not None:
                early.write(ztoc_desc, ztoc)
        emit(event)

    try:
        outcomes = index_layers(
            source, all_layers, span_size=options.span_size, min_layer_size=options.min_layer_size,
            build_tool_identifier=options.build_tool_identifier, cache=cache, jobs=options.jobs,
            on_event=on_layer_event, while_waiting=while_waiting, uploader=uploader,
        )  # fmt: skip
    except BaseException:
        if early is not None:
            early.cancel()
        raise
    copied = early.wait() if early is not None else set()
    ztoc_blobs: dict[str, tuple[Descriptor, bytes]] = {}
    prefetch_blobs: dict[str, tuple[Descriptor, bytes]] = {}
    decoded = _Decoded()
    soci_blobs: dict[str, bytes] = {}
    platform_results: list[PlatformResult] = []
    v2_indexes: list[tuple[Descriptor, Platform, Descriptor]] = []  # (manifest, platform, soci index)
    toc_digests: dict[str, dict[str, str]] = {}  # manifest -> layer -> ztoc digest (--toc-annotations)
    for desc, manifest, platform in image.selected:
        layer_outcomes = tuple(outcomes[layer.digest] for layer in manifest.layer_list)
        ztoc_descs = []
        for outcome in layer_outcomes:
            ztoc_desc = outcome.ztoc_descriptor()
            if ztoc_desc is None or outcome.ztoc is None:
                continue
            ztoc_blobs[ztoc_desc.digest] = (ztoc_desc, outcome.ztoc)
            disable_xattrs = "xattr" in options.optimizations and layer_needs_no_xattrs(decoded(outcome))
            ztoc_descs.append(ztoc_descriptor(ztoc_desc.digest, ztoc_desc.size, layer=outcome.layer,
                                              span_size=options.span_size, disable_xattrs=disable_xattrs))
        prefetches, skipped = _prefetch_artifacts(options, layer_outcomes, decoded) if ztoc_descs else ([], ())
        for prefetch_desc, prefetch_data in prefetches:
            prefetch_blobs[prefetch_desc.digest] = (prefetch_desc, prefetch_data)
            ztoc_descs.append(prefetch_desc)
        soci_desc = None
        if ztoc_descs:
            subject = Descriptor(media_type=desc.media_type, digest=desc.digest, size=desc.size)
            data, soci_desc = build_soci_index(
                ztoc_descs,
                version=options.index_version,
                subject=subject if options.index_version == "v1" else None,
                build_tool_identifier=options.build_tool_identifier,
            )
            soci_blobs[soci_desc.digest] = data
            v2_indexes.append((desc, platform, soci_desc))
            if options.toc_annotations:
                toc_digests[desc.digest] = {d.annotations[mt.ANNOTATION_IMAGE_LAYER_DIGEST]: d.digest
                                            for d in ztoc_descs if d.media_type == mt.MEDIA_TYPE_ZTOC}
        platform_results.append(PlatformResult(platform, desc, soci_desc, layer_outcomes,
                                               prefetches=tuple(d for d, _ in prefetches), prefetch_skipped=skipped))
    if not soci_blobs:
        raise ImageError(_nothing_indexed(platform_results, options))
    converted = None
    if options.index_version == "v2":
        converted = convert_to_v2(
            root=image.root,
            root_bytes=image.root_bytes,
            root_platform=image.root_platform,
            manifests=image.manifests,
            soci_indexes=v2_indexes,
            toc_digests=toc_digests,
        )
    if validate:
        # Everything is checked before the first byte is written.
        from socikit.validate.prewrite import validate_converted_index, validate_soci_index

        for data in soci_blobs.values():
            validate_soci_index(data, options.index_version)
        if converted is not None:
            validate_converted_index(converted.index_bytes, {d.digest: b for d, b in converted.manifests})

    extra = f", {len(prefetch_blobs)} prefetch artifacts" if prefetch_blobs else ""
    emit(Message(f"writing {len(ztoc_blobs)} ztocs{extra} and {len(soci_blobs)} SOCI indexes"))
    # Blobs from memory: those a registry did not get while the layers were indexed.
    writes = [(d, b) for d, b in [*ztoc_blobs.values(), *prefetch_blobs.values(), (_SOCI_CONFIG, mt.EMPTY_JSON_BLOB)]
              if d.digest not in copied]  # fmt: skip
    # Layers just indexed were read whole and their digests checked (cached ones were not).
    verified = {o.layer.digest for p in platform_results for o in p.layers if o.ztoc is not None and not o.cached}
    uploaded = {o.layer.digest for p in platform_results for o in p.layers if o.uploaded}
    _write_blobs(source, sink, image if copy_image else None, writes, verified, done=copied | uploaded)

    if converted is None:  # v1: the image unchanged, SOCI indexes refer to it
        if copy_image:
            write_manifests(sink, [(_manifest_desc(image, digest, data), data)
                                   for digest, data in image.manifests.items()])  # fmt: skip
            if image.index is not None:
                sink.write_manifest(image.root, image.root_bytes)
        for desc, platform, soci_desc in v2_indexes:
            _write_referrer(sink, soci_desc, soci_blobs[soci_desc.digest], desc.with_changes(platform=platform))
        if copy_image:
            sink.tag(image.root)
        return ConversionResult(options.index_version, image.root, tuple(platform_results),
                                time.monotonic() - started)

    # The SOCI indexes and the image manifests naming them by annotation refer to nothing of
    # each other's a registry checks: they may go up together; the index that lists them after.
    write_manifests(sink, [(soci_desc, soci_blobs[soci_desc.digest]) for _, _, soci_desc in v2_indexes]
                     + list(converted.manifests))  # fmt: skip
    write_tagged(sink, converted.index, converted.index_bytes)
    converted_by_source = dict(converted.manifest_map)
    platform_results = [
        PlatformResult(p.platform, p.manifest, p.soci_index, p.layers,
                       converted_manifest=converted_by_source.get(p.manifest.digest), prefetches=p.prefetches,
                       prefetch_skipped=p.prefetch_skipped)
        for p in platform_results
    ]
    return ConversionResult(options.index_version, converted.index, tuple(platform_results),
                            time.monotonic() - started)


class _Decoded:
    """ztocs decoded on demand, once per layer (only the xattr optimization and prefetch need them)."""

    def __init__(self) -> None:
        self._by_layer: dict[str, Ztoc] = {}

    def __call__(self, outcome: LayerOutcome) -> Ztoc:
        assert outcome.ztoc is not None
        ztoc = self._by_layer.get(outcome.layer.digest)
        if ztoc is None:
            ztoc = self._by_layer[outcome.layer.digest] = loads(outcome.ztoc)
        return ztoc


def _prefetch_artifacts(
    options: ConvertOptions, outcomes: tuple[LayerOutcome, ...], decoded: _Decoded
) -> tuple[list[tuple[Descriptor, bytes]], tuple[tuple[str, str], ...]]:
    """The prefetch artifacts of one platform's SOCI index (none without --prefetch-file) and the
    requested paths that gave no span, with why: not an error (such a file may be in a layer too
    small to be indexed, or only in another platform), but the CLI says so."""
    if not options.prefetch_paths:
        return [], ()
    layers = [(o.layer, decoded(o) if o.ztoc is not None else None) for o in outcomes]
    plan = plan_prefetch(options.prefetch_paths, layers)
    return prefetch_artifacts(plan, [o.layer for o in outcomes]), tuple(plan.not_prefetched.items())


def _manifest_desc(image: _Image, digest: str, data: bytes) -> Descriptor:
    if image.index is not None:
        for entry in image.index.entries:
            if entry.digest == digest:
                return Descriptor(media_type=entry.media_type, digest=digest, size=len(data))
    return Descriptor(media_type=image.root.media_type, digest=digest, size=len(data))


COPY_CONCURRENCY = 4
# The config blob of every SOCI index, `{}` (typed with the index's artifact type).
_SOCI_CONFIG = Descriptor(media_type=mt.ARTIFACT_TYPE_SOCI_INDEX_V1, digest=mt.EMPTY_JSON_DIGEST,
                          size=len(mt.EMPTY_JSON_BLOB))


def _prepare_validation() -> None:
    """Import the pre-write checks and read their schemas while the layers are being indexed,
    instead of after."""
    from socikit.validate.prewrite import prepare

    prepare()


def _image_blobs(image: _Image) -> list[Descriptor]:
    """Configs and layers of every manifest of the image, each once."""
    blobs: dict[str, Descriptor] = {}
    for data in image.manifests.values():
        manifest = ImageManifest.from_json(data)
        for blob in (manifest.config, *manifest.layer_list):
            blobs.setdefault(blob.digest, blob)
    return list(blobs.values())


def _write_blobs(source: ImageSource, sink: ImageSink, image: _Image | None, writes: list[tuple[Descriptor, bytes]],
                 verified: set[str], *, done: frozenset[str] | set[str] = frozenset()) -> None:
    """`writes` (blobs in memory: ztocs, prefetch artifacts, the SOCI config) and, with `image`
    (the destination gets the whole image), the configs and layers of its manifests but those in
    `done` (already there), several at once: writes and copies wait on sockets and disks (an OCI
    layout syncs every blob), not on the CPU. `verified`: digests of blobs read whole and
    checked moments ago."""

    def copy(blob: Descriptor) -> None:
        assert image is not None
        if sink.has_blob(blob):
            return
        if blob.digest in image.read:  # not read again from the source
            sink.write_blob(blob, image.read[blob.digest])
        else:
            sink.copy_blob(blob, source, verified=blob.digest in verified)

    blobs = [] if image is None else [blob for blob in _image_blobs(image) if blob.digest not in done]
    with ThreadPoolExecutor(max_workers=COPY_CONCURRENCY, thread_name_prefix="socikit-copy") as pool:
        futures = [pool.submit(copy, blob) for blob in blobs]
        wait_in_order(futures + [pool.submit(sink.write_blob, desc, data) for desc, data in writes])


class _EarlyCopies:
    """Blob copies (mounts, uploads) to a registry destination that run while the layers are
    indexed, on threads: a blob nothing refers to yet is invisible there, so these need not wait
    for validation. Each ztoc goes up as soon as its layer is built. Started once the worker
    processes exist (forking with copy threads running could hand a worker a lock held forever);
    what comes earlier waits for the start."""

    def __init__(self, source: ImageSource, sink: ImageSink) -> None:
        self._source = source
        self._sink = sink
        self._pool: ThreadPoolExecutor | None = None
        self._futures: dict[str, Any] = {}
        self._pending: list[tuple[Callable[..., None], Descriptor, bytes | None]] = []
        self._lock = threading.Lock()

    def start(self, blobs: list[Descriptor], *, read: dict[str, bytes]) -> None:
        """Copy `blobs`; those in `read` (bytes already read from the source) are written as they are."""
        with self._lock:
            self._pool = ThreadPoolExecutor(max_workers=COPY_CONCURRENCY, thread_name_prefix="socikit-copy")
            for blob in blobs:
                task = self._write if blob.digest in read else self._copy
                self._futures[blob.digest] = self._pool.submit(task, blob, read.get(blob.digest))
            for task, blob, data in self._pending:
                self._futures[blob.digest] = self._pool.submit(task, blob, data)
            self._pending.clear()

    def write(self, blob: Descriptor, data: bytes) -> None:
        """Upload `data` (a ztoc) now, or once started."""
        with self._lock:
            if blob.digest in self._futures or any(p[1].digest == blob.digest for p in self._pending):
                return
            if self._pool is None:
                self._pending.append((self._write, blob, data))
            else:
                self._futures[blob.digest] = self._pool.submit(self._write, blob, data)

    def _copy(self, blob: Descriptor, data: bytes | None = None) -> None:
        if not self._sink.has_blob(blob):
            self._sink.copy_blob(blob, self._source)

    def _write(self, blob: Descriptor, data: bytes | None) -> None:
        assert data is not None
        if not self._sink.has_blob(blob):
            self._sink.write_blob(blob, data)

    def wait(self) -> set[str]:
        """The digests copied; the first copy that failed raises."""
        if self._pool is None:  # indexing ended before the start: nothing was sent
            return set()
        try:
            for future in self._futures.values():
                future.result()
        finally:
            self._pool.shutdown(wait=True)
        return set(self._futures)

    def cancel(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)


def _write_referrer(sink: ImageSink, desc: Descriptor, data: bytes, subject: Descriptor) -> None:
    """A v1 SOCI index: in a registry through the Referrers API or its fallback tag, in an OCI
    layout as an index.json entry carrying its artifactType."""
    if not isinstance(sink, WritesReferrers):
        raise ImageError(f"{type(sink).__name__} cannot store SOCI v1 indexes")
    sink.write_referrer(desc, data, subject)


def _nothing_indexed(platforms: list[PlatformResult], options: ConvertOptions) -> str:
    sizes = [o.layer.size for p in platforms for o in p.layers]
    reasons = {o.skipped for p in platforms for o in p.layers if o.skipped}
    if sizes and all(o.skipped and "minimum layer size" in o.skipped for p in platforms for o in p.layers):
        return (
            f"no layer was indexed: every layer is smaller than --min-layer-size {options.min_layer_size} bytes "
            f"(the largest is {max(sizes)} bytes); lower --min-layer-size to index small layers"
        )
    detail = "; ".join(sorted(reasons)) or "the image has no layers"
    return f"no layer was indexed, so there is no SOCI index to write: {detail}"

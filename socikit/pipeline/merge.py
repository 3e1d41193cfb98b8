"""`merge`: combine images built on separate machines into one OCI image index.

A CI pipeline that builds natively per architecture ends with one image per platform (or a few
multi-platform ones); `merge` lists their platform manifests in a single OCI image index and
writes it with everything it refers to, as `docker manifest create` or `manifest-tool` would,
but to any destination socikit writes (registry, OCI layout, OCI archive) and from any source
it reads. With `soci` it converts the merged image in the same run instead (`convert_image` over
the merged image), so the destination gets only the converted result.

Rules:
- A single-manifest input contributes its manifest, with the platform of its config.
- An index input contributes its image manifests and the entries attached to them (buildx
  attestation manifests, SOCI v2 indexes), each kept only with the manifest it refers to.
- Two inputs with the same platform (containerd's strict match) are an error unless they are the
  same manifest or a preferred input (`prefer`, earlier wins) holds one of them.
- Blobs are copied through the input that holds them, so a registry destination mounts them from
  the input's repository instead of streaming them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from socikit.content.base import (
    Closing,
    ImageSink,
    ImageSource,
    OpensBlobsInWorkers,
    WritesManifestsAtOnce,
    WritesReferrers,
)
from socikit.errors import ImageError
from socikit.oci import mediatypes as mt
from socikit.oci.descriptor import Descriptor, Platform, descriptor_for
from socikit.oci.manifest import ImageConfig, ImageIndex, ImageManifest
from socikit.oci.platform import format_platform, matches
from socikit.pipeline.cache import ZtocCache
from socikit.pipeline.convert import ConversionResult, ConvertOptions, convert_image
from socikit.pipeline.events import Event, Message
from socikit.pipeline.writes import write_manifests, write_tagged

# Annotations by which an attached entry names the image manifest it belongs to.
_REFERS_TO = ("vnd.docker.reference.digest", mt.ANNOTATION_IMAGE_MANIFEST_DIGEST)
COPY_CONCURRENCY = 4


@dataclass(frozen=True, slots=True)
class MergeInput:
    """One image to merge: `label` is how the user named it (messages, `prefer`)."""

    label: str
    source: ImageSource


@dataclass(frozen=True, slots=True)
class _Entry:
    """A manifest an input contributes: its descriptor as the merged index will list it."""

    input: int
    descriptor: Descriptor
    data: bytes
    attached_to: str = ""  # for attachments: the image manifest digest named by its annotations


@dataclass(frozen=True, slots=True)
class MergedPlatform:
    platform: Platform
    manifest: str
    source: str


@dataclass(frozen=True, slots=True)
class DroppedPlatform:
    platform: Platform
    manifest: str
    source: str
    winner: str


@dataclass(frozen=True, slots=True)
class MergePlan:
    """The merged index and where each of its parts comes from."""

    index: Descriptor
    index_bytes: bytes
    entries: tuple[_Entry, ...]
    platforms: tuple[MergedPlatform, ...]
    dropped: tuple[DroppedPlatform, ...]
    owners: dict[str, int] = field(default_factory=dict)  # blob/manifest digest -> input position


@dataclass(frozen=True, slots=True)
class MergeResult:
    """What was written: the merged index (without `soci`) or the conversion of it (with)."""

    result: Descriptor
    merged_index: Descriptor
    platforms: tuple[MergedPlatform, ...]
    dropped: tuple[DroppedPlatform, ...]
    conversion: ConversionResult | None
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return {
            "result": {"digest": self.result.digest, "size": self.result.size, "mediaType": self.result.media_type},
            "merged_index": self.merged_index.digest,
            "platforms": [
                {"platform": format_platform(p.platform), "manifest": p.manifest, "source": p.source}
                for p in self.platforms
            ],
            "dropped": [
                {"platform": format_platform(d.platform), "manifest": d.manifest, "source": d.source,
                 "winner": d.winner}
                for d in self.dropped
            ],
            "conversion": self.conversion.to_json() if self.conversion is not None else None,
            "seconds": round(self.seconds, 3),
        }


# --- reading the inputs ---------------------------------------------------------------------------


def _is_image_entry(entry: Descriptor) -> bool:
    """A platform image (not an attestation, SOCI index or other artifact riding along)."""
    if entry.artifact_type:
        return False
    return entry.platform is None or "unknown" not in (entry.platform.os, entry.platform.architecture)


def _config_platform(source: ImageSource, manifest: ImageManifest) -> Platform:
    """The platform as the config states it (as `docker manifest create` records it; platform
    matching normalizes both sides anyway)."""
    config = ImageConfig.from_json(source.read_blob(manifest.config))
    return Platform(architecture=config.architecture, os=config.os, os_version=config.os_version,
                    os_features=config.os_features, variant=config.variant)


def read_input(position: int, item: MergeInput) -> tuple[list[_Entry], list[_Entry]]:
    """The image manifests and the attached entries one input contributes."""
    source = item.source
    root = source.resolve()
    data = source.read_blob(root)
    if root.media_type in mt.MANIFEST_MEDIA_TYPES:
        manifest = ImageManifest.from_json(data)
        platform = _config_platform(source, manifest)
        desc = Descriptor(media_type=root.media_type, digest=root.digest, size=root.size, platform=platform)
        return [_Entry(position, desc, data)], []
    if root.media_type not in mt.INDEX_MEDIA_TYPES:
        raise ImageError(f"{item.label}: {root.digest} has media type {root.media_type!r}, not an image")
    images: list[_Entry] = []
    attached: list[_Entry] = []
    for entry in ImageIndex.from_json(data).entries:
        if entry.media_type in mt.INDEX_MEDIA_TYPES:
            raise ImageError(f"{item.label}: nested image indexes ({entry.digest}) cannot be merged")
        if entry.media_type not in mt.MANIFEST_MEDIA_TYPES:
            raise ImageError(f"{item.label}: index entry {entry.digest} has media type {entry.media_type!r}, "
                             "which is not a manifest")
        body = source.read_blob(entry)
        if _is_image_entry(entry):
            if entry.platform is None:
                entry = entry.with_changes(platform=_config_platform(source, ImageManifest.from_json(body)))
            images.append(_Entry(position, entry, body))
        else:
            refers = next((entry.annotations[k] for k in _REFERS_TO if entry.annotations.get(k)), "")
            attached.append(_Entry(position, entry, body, attached_to=refers))
    if not images:
        raise ImageError(f"{item.label}: the image index lists no platform images")
    return images, attached


# --- choosing (pure) ------------------------------------------------------------------------------


def _platform(entry: _Entry) -> Platform:
    platform = entry.descriptor.platform
    if platform is None:  # read_input gives every image entry a platform
        raise ImageError(f"{entry.descriptor.digest} has no platform")
    return platform


def _same_platform(a: Platform, b: Platform) -> bool:
    return matches(a, b) and matches(b, a)


def choose(
    images: Sequence[_Entry], labels: Sequence[str], prefer: Sequence[int]
) -> tuple[list[_Entry], list[DroppedPlatform]]:
    """Keep one input's manifests per platform, in input order. The same manifest in several
    inputs is kept once; different manifests of one platform from several inputs need `prefer`
    (input positions, earliest wins), else ImageError."""
    groups: list[list[_Entry]] = []
    for entry in images:
        group = next((g for g in groups if _same_platform(_platform(g[0]), _platform(entry))), None)
        if group is None:
            groups.append([entry])
        else:
            group.append(entry)
    kept: set[tuple[int, str]] = set()
    dropped: list[DroppedPlatform] = []
    for group in groups:
        inputs = sorted({e.input for e in group})
        if len(inputs) == 1 or len({e.descriptor.digest for e in group}) == 1:
            winner = inputs[0]
        else:
            preferred = [p for p in prefer if p in inputs]
            if not preferred:
                names = [labels[i] for i in inputs]
                raise ImageError(
                    f"platform {format_platform(_platform(group[0]))} is in more than one image "
                    f"({', '.join(names)}): say which wins with --prefer {names[0]}"
                )
            winner = preferred[0]
        winning = {e.descriptor.digest for e in group if e.input == winner}
        for e in group:
            if e.input == winner:
                kept.add((e.input, e.descriptor.digest))
            elif e.descriptor.digest not in winning:
                dropped.append(DroppedPlatform(_platform(e), e.descriptor.digest, labels[e.input], labels[winner]))
    out: list[_Entry] = []
    seen: set[str] = set()
    for entry in images:
        if (entry.input, entry.descriptor.digest) in kept and entry.descriptor.digest not in seen:
            seen.add(entry.descriptor.digest)
            out.append(entry)
    return out, dropped


def plan_merge(inputs: Sequence[MergeInput], *, prefer: Sequence[str] = ()) -> MergePlan:
    """Read every input and lay out the merged OCI image index."""
    if not inputs:
        raise ImageError("give at least one image to merge")
    labels = [item.label for item in inputs]
    positions = []
    for name in prefer:
        if name not in labels:
            raise ImageError(f"--prefer {name}: not one of the images being merged ({', '.join(labels)})")
        positions.append(labels.index(name))
    images: list[_Entry] = []
    attached: list[_Entry] = []
    for position, item in enumerate(inputs):
        got_images, got_attached = read_input(position, item)
        images += got_images
        attached += got_attached
    kept, dropped = choose(images, labels, positions)
    kept_digests = {e.descriptor.digest for e in kept}
    riders = []
    seen: set[str] = set(kept_digests)
    for entry in attached:
        if entry.attached_to and entry.attached_to not in kept_digests:
            continue  # it belongs to a manifest another input won
        if entry.descriptor.digest not in seen:
            seen.add(entry.descriptor.digest)
            riders.append(entry)
    entries = tuple(kept + riders)
    index = ImageIndex(schema_version=2, media_type=mt.MEDIA_TYPE_OCI_INDEX,
                       manifests=tuple(e.descriptor for e in entries))
    index_bytes = index.dumps()
    owners: dict[str, int] = {}
    for entry in entries:
        owners.setdefault(entry.descriptor.digest, entry.input)
        manifest = ImageManifest.from_json(entry.data)
        for blob in (manifest.config, *manifest.layer_list):
            owners.setdefault(blob.digest, entry.input)
    platforms = tuple(MergedPlatform(_platform(e), e.descriptor.digest, labels[e.input]) for e in kept)
    return MergePlan(descriptor_for(index_bytes, mt.MEDIA_TYPE_OCI_INDEX), index_bytes, entries, platforms,
                     tuple(dropped), owners)


# --- the merged image as a source, and a sink that copies through the owning input ------------


@dataclass(frozen=True, slots=True)
class _OpenerByDigest:
    """A picklable `desc -> stream` for worker processes: each blob through its input's opener."""

    openers: dict[str, Callable[[Descriptor], BinaryIO]]

    def __call__(self, desc: Descriptor) -> BinaryIO:
        return self.openers[desc.digest](desc)


class MergedSource(Closing):
    """The merged image as an ImageSource: its index from the plan, everything else from the input
    that holds it. Closing it leaves the inputs open (their owner closes them)."""

    def __init__(self, plan: MergePlan, inputs: Sequence[MergeInput]) -> None:
        self.plan = plan
        self.inputs = list(inputs)
        self._manifests = {e.descriptor.digest: e.data for e in plan.entries}
        # Worker processes can read layers only when every input can open blobs from another process.
        openers = [item.source.blob_opener if isinstance(item.source, OpensBlobsInWorkers) else None
                   for item in inputs]
        usable = [opener for opener in openers if opener is not None]
        self.blob_opener: Callable[[Descriptor], BinaryIO] | None = None
        if len(usable) == len(openers):
            self.blob_opener = _OpenerByDigest({d: usable[i] for d, i in plan.owners.items()})

    def __repr__(self) -> str:
        return f"MergedSource({', '.join(item.label for item in self.inputs)})"

    def owner(self, desc: Descriptor) -> ImageSource:
        try:
            return self.inputs[self.plan.owners[desc.digest]].source
        except KeyError:
            raise ImageError(f"blob {desc.digest} is not part of the merged image") from None

    def resolve(self) -> Descriptor:
        return self.plan.index

    def read_blob(self, desc: Descriptor) -> bytes:
        if desc.digest == self.plan.index.digest:
            return self.plan.index_bytes
        if desc.digest in self._manifests:
            return self._manifests[desc.digest]  # read and verified by its input
        return self.owner(desc).read_blob(desc)

    def open_blob(self, desc: Descriptor) -> BinaryIO:
        return self.owner(desc).open_blob(desc)


class _RoutingSink(Closing):
    """An ImageSink that copies each blob from the input owning it (a registry mounts it across
    repositories) and passes everything else to `sink`."""

    def __init__(self, sink: ImageSink, merged: MergedSource) -> None:
        self._sink = sink
        self._merged = merged

    def has_blob(self, desc: Descriptor) -> bool:
        return self._sink.has_blob(desc)

    def write_blob(self, desc: Descriptor, data: bytes) -> None:
        self._sink.write_blob(desc, data)

    def copy_blob(self, desc: Descriptor, source: ImageSource, *, verified: bool = False) -> None:
        if source is self._merged and desc.digest in self._merged.plan.owners:
            source = self._merged.owner(desc)
        self._sink.copy_blob(desc, source, verified=verified)

    def write_manifest(self, desc: Descriptor, data: bytes) -> None:
        self._sink.write_manifest(desc, data)

    def tag(self, desc: Descriptor) -> None:
        self._sink.tag(desc)

    @property
    def manifest_writes_at_once(self) -> int:  # WritesManifestsAtOnce, as the sink behind it
        return self._sink.manifest_writes_at_once if isinstance(self._sink, WritesManifestsAtOnce) else 1

    def write_tagged_manifest(self, desc: Descriptor, data: bytes) -> None:
        write_tagged(self._sink, desc, data)

    def write_referrer(self, desc: Descriptor, data: bytes, subject: Descriptor) -> None:
        if not isinstance(self._sink, WritesReferrers):
            raise ImageError(f"{type(self._sink).__name__} cannot store SOCI v1 indexes")
        self._sink.write_referrer(desc, data, subject)


def _write_merged(plan: MergePlan, merged: MergedSource, sink: ImageSink) -> None:
    """Blobs, then manifests, then the index, the tag last."""
    blobs: dict[str, Descriptor] = {}
    for entry in plan.entries:
        manifest = ImageManifest.from_json(entry.data)
        for blob in (manifest.config, *manifest.layer_list):
            blobs.setdefault(blob.digest, blob)

    def copy(blob: Descriptor) -> None:
        if not sink.has_blob(blob):
            sink.copy_blob(blob, merged.owner(blob))

    with ThreadPoolExecutor(max_workers=COPY_CONCURRENCY, thread_name_prefix="socikit-merge") as pool:
        for future in [pool.submit(copy, blob) for blob in blobs.values()]:
            future.result()
    # Image manifests and what is attached to them list none of each other (an attachment names
    # its manifest by annotation or `subject`, which registries do not check).
    write_manifests(sink, [(Descriptor(media_type=e.descriptor.media_type, digest=e.descriptor.digest,
                                       size=e.descriptor.size), e.data) for e in plan.entries])  # fmt: skip
    write_tagged(sink, plan.index, plan.index_bytes)


def merge_images(
    inputs: Sequence[MergeInput],
    sink: ImageSink,
    *,
    prefer: Sequence[str] = (),
    soci: ConvertOptions | None = None,
    cache: ZtocCache | None = None,
    validate: bool = True,
    on_event: Callable[[Event], None] | None = None,
) -> MergeResult:
    """Merge `inputs` into one OCI image index written to `sink`; with `soci` (options of the
    conversion; every platform is indexed) write its conversion instead. Layers shared between
    inputs are indexed once; with `cache`, ztocs built by earlier runs are reused."""
    plan = plan_merge(inputs, prefer=prefer)
    return write_merge(plan, inputs, sink, soci=soci, cache=cache, validate=validate, on_event=on_event)


def write_merge(
    plan: MergePlan,
    inputs: Sequence[MergeInput],
    sink: ImageSink,
    *,
    soci: ConvertOptions | None = None,
    cache: ZtocCache | None = None,
    validate: bool = True,
    on_event: Callable[[Event], None] | None = None,
) -> MergeResult:
    """`merge_images` once the plan is made (callers that open the destination only after the
    inputs were found mergeable)."""
    started = time.monotonic()
    emit = on_event or (lambda event: None)
    for d in plan.dropped:
        emit(Message(f"{format_platform(d.platform)}: taking {d.winner}'s manifest, not {d.source}'s"))
    merged = MergedSource(plan, inputs)
    conversion = None
    if soci is None:
        emit(Message(f"writing the merged index of {len(plan.platforms)} platforms"))
        _write_merged(plan, merged, sink)
        result = plan.index
    else:
        options = ConvertOptions(
            index_version=soci.index_version, platforms=(), all_platforms=True, span_size=soci.span_size,
            min_layer_size=soci.min_layer_size, build_tool_identifier=soci.build_tool_identifier, jobs=soci.jobs,
        )
        conversion = convert_image(merged, _RoutingSink(sink, merged), options, cache=cache, validate=validate,
                                   on_event=on_event)
        result = conversion.result
    return MergeResult(result, plan.index, plan.platforms, plan.dropped, conversion, time.monotonic() - started)


__all__ = [
    "DroppedPlatform",
    "MergeInput",
    "MergePlan",
    "MergeResult",
    "MergedPlatform",
    "MergedSource",
    "choose",
    "merge_images",
    "plan_merge",
    "read_input",
    "write_merge",
]

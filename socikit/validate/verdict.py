"""Would a soci-snapshotter with default settings (SOCI v2 on, v1 off, min_layer_size 0) lazily
load the image, and if not why (fact sheet §7): one verdict per runnable platform manifest, from
the graph and the check results. Pure."""

from __future__ import annotations

from collections.abc import Sequence

from socikit.oci import mediatypes as mt
from socikit.soci import discover
from socikit.validate.checks import SUPPORTED_COMPRESSIONS, platform_text, short
from socikit.validate.graph import PlatformImage
from socikit.validate.graph_checks import CheckedIndex
from socikit.validate.report import GO_CANONICAL, CheckResult, ManifestVerdict, Summary


def summarize(
    images: Sequence[PlatformImage],
    v2: Sequence[CheckedIndex],
    v1: Sequence[CheckedIndex],
    results: Sequence[CheckResult],
) -> Summary:
    """The verdict for every platform manifest but attestations (never run), and for the image:
    lazy when every one of them is."""
    v1_subjects = {i.image.entry.digest for i in v1 if i.image is not None}
    v2_by_digest = {i.doc.desc.digest: i for i in v2}
    verdicts = [
        manifest_verdict(image, v2_by_digest, v1_subjects, results)
        for image in images
        if image.platform is None or image.platform.os != "unknown"
    ]
    if not verdicts:
        return Summary(False, "no runnable image manifest was found", ())
    lazy = all(v.lazy for v in verdicts)
    if len(verdicts) == 1:
        reason = verdicts[0].reason
    else:
        reason = "; ".join(
            f"{v.platform or short(v.digest)}: {'lazy' if v.lazy else 'not lazy'} ({v.reason})" for v in verdicts
        )
    return Summary(lazy, reason, tuple(verdicts))


def manifest_verdict(
    image: PlatformImage, v2: dict[str, CheckedIndex], v1_subjects: set[str], results: Sequence[CheckResult]
) -> ManifestVerdict:
    """Whether a default snapshotter lazily loads this platform manifest, and why."""

    def out(lazy: bool, reason: str, *, lazy_with_v1: bool = False) -> ManifestVerdict:
        return ManifestVerdict(image.entry.digest, platform_text(image.platform), lazy, reason, lazy_with_v1)

    if image.manifest is None:
        return out(False, f"its manifest cannot be read ({image.read_error or 'not a manifest'})")
    target = discover.index_digest_annotation(image.manifest.annotations)
    layers = image.manifest.layer_list
    if target is not None:
        index = v2.get(target)
        if index is None:
            return out(
                False,
                f"its index-digest {short(target)} names a SOCI index that is not there, "
                "so the snapshotter finds no index",
            )
        failed = {res.name for res in results if not res.passed and res.subject.endswith(index.doc.desc.digest)}
        if GO_CANONICAL in failed:
            return out(
                False,
                "the SOCI index is not Go-canonical JSON; the snapshotter cannot store it "
                "and treats the image as having no index",
            )
        config = (index.doc.obj or {}).get("config") or {}
        if config.get("mediaType") not in (mt.ARTIFACT_TYPE_SOCI_INDEX_V1, mt.ARTIFACT_TYPE_SOCI_INDEX_V2):
            return out(False, "the SOCI index's config mediaType is not a SOCI index type; the snapshotter rejects it")
        digests = {layer.digest for layer in layers}
        covered = {d.annotations.get(mt.ANNOTATION_IMAGE_LAYER_DIGEST) for d, z in index.ztocs if z is not None}
        covered &= digests
        if not covered:
            return out(False, "its SOCI index has no usable ztoc for any of its layers")
        rest = "" if len(covered) == len(layers) else " (the others are pulled whole)"
        return out(True, f"SOCI v2 index {short(target)} covers {len(covered)} of {len(layers)} layers{rest}")
    if image.entry.digest in v1_subjects:
        return out(
            False,
            "it has only a SOCI v1 index, and soci-snapshotter (v0.10+) leaves pull_modes.soci_v1 disabled by default",
            lazy_with_v1=True,
        )
    if layers and all(mt.compression_of_layer(layer.media_type) not in SUPPORTED_COMPRESSIONS for layer in layers):
        kinds = sorted({layer.media_type for layer in layers})
        return out(
            False, f"it has no SOCI index, and its layers use a compression SOCI cannot index ({', '.join(kinds)})"
        )
    if layers and all(layer.size < mt.DEFAULT_MIN_LAYER_SIZE for layer in layers):
        return out(
            False,
            "it has no SOCI index, and every layer is under the default minimum layer size "
            f"({mt.DEFAULT_MIN_LAYER_SIZE} bytes), so a default conversion indexes none",
        )
    return out(False, "it has no SOCI index (no index-digest annotation and no SOCI v1 referrer)")


__all__ = ["manifest_verdict", "summarize"]

"""Checks of the prefetch artifacts a SOCI index lists (fact sheet §5.4; reference v0.13+).

A prefetch artifact is a small JSON blob that follows the ztoc descriptors in a SOCI index's
`layers`, tagged with the digest of the image layer it is for. The snapshotter (with `[prefetch]
enable = true`) fetches its spans when it mounts that layer, resolving span ids through the
layer's ztoc in the same index. So besides its schema, an artifact must name a layer of the image
manifest that the index has a ztoc for, and its span ranges must lie within that ztoc's spans.

Pure over what was read: `read_blob` hands over the bytes `collect` read (it raises the reason a
blob could not be read). Results use the check names of
`socikit.validate.report`: `schema` for the blob itself, `prefetch` for its binding to a layer
and a ztoc.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from socikit.errors import FormatError, SocikitError
from socikit.oci import mediatypes as mt
from socikit.oci.descriptor import Descriptor
from socikit.soci.prefetch import PrefetchSpan, describe_spans, loads_prefetch
from socikit.validate import report as r
from socikit.validate.checks import check_schema, decode_json
from socikit.validate.report import CheckResult
from socikit.validate.schemafiles import PREFETCH
from socikit.ztoc.model import Ztoc


def _short(digest: str) -> str:
    return digest[:19]


def check_prefetch_blob(data: bytes, subject: str) -> tuple[CheckResult, list[PrefetchSpan] | None]:
    """The artifact's bytes against the soci-prefetch schema and the reference's reading of it
    (version "1.0", non-negative span ids, no range that ends before it starts). Returns the
    result and the span ranges (None when unusable)."""
    obj, why = decode_json(data)
    result = check_schema(PREFETCH, obj, subject, why=why)
    if not result.passed:
        return result, None
    try:
        spans = loads_prefetch(data)
    except FormatError as exc:
        return CheckResult(r.SCHEMA, False, f"{PREFETCH}: {exc}", subject), None
    return result, spans


def check_prefetch_binding(
    desc: Descriptor,
    spans: Sequence[PrefetchSpan],
    ztocs: Sequence[tuple[Descriptor, Ztoc | None]],
    layers: tuple[Descriptor, ...] | None,
    subject: str,
) -> CheckResult | None:
    """The artifact's layer-digest names a layer of the manifest (when the manifest is known) that
    the index has a ztoc for, and every span id lies within that ztoc. None when the ztoc itself
    does not decode (reported by `ztoc-decodes`)."""
    layer_digest = desc.annotations.get(mt.ANNOTATION_IMAGE_LAYER_DIGEST, "")
    if layers is not None and all(layer.digest != layer_digest for layer in layers):
        return CheckResult(
            r.PREFETCH, False, f"layer-digest {layer_digest!r} is not a layer of the image manifest", subject
        )
    candidates = [z for d, z in ztocs if d.annotations.get(mt.ANNOTATION_IMAGE_LAYER_DIGEST) == layer_digest]
    if not candidates:
        return CheckResult(
            r.PREFETCH,
            False,
            f"the SOCI index has no ztoc for layer {_short(layer_digest)}: its span ids cannot be resolved",
            subject,
        )
    ztoc = candidates[0]
    if ztoc is None:
        return None
    count = ztoc.compression_info.num_spans
    outside = [s for s in spans if s.end_span >= count]
    if outside:
        worst = max(s.end_span for s in outside)
        return CheckResult(
            r.PREFETCH, False, f"span {worst} is past the ztoc's last span ({count - 1})", subject
        )
    if not spans:
        return CheckResult(r.PREFETCH, True, "no spans (the snapshotter skips an empty artifact)", subject)
    return CheckResult(
        r.PREFETCH,
        True,
        f"layer {_short(layer_digest)}: spans {describe_spans(spans)} within its ztoc's {count}",
        subject,
    )


def check_prefetch_artifacts(
    index: dict[str, Any],
    ztocs: Sequence[tuple[Descriptor, Ztoc | None]],
    layers: tuple[Descriptor, ...] | None,
    read_blob: Callable[[Descriptor], bytes],
    index_subject: str,
) -> list[CheckResult]:
    """Every prefetch artifact a decoded SOCI index lists. `ztocs`: the index's ztoc descriptors
    with their decoded ztocs (None when one does not decode); `layers`: the image manifest's
    layers, None when the manifest is unknown."""
    results: list[CheckResult] = []
    for raw in index.get("layers") or []:
        if not isinstance(raw, dict) or raw.get("mediaType") != mt.MEDIA_TYPE_SOCI_PREFETCH:
            continue
        try:
            desc = Descriptor.from_json(raw)
        except FormatError:
            continue  # the index's schema check reports it
        subject = f"prefetch {_short(desc.digest)} in {index_subject}"
        try:
            data = read_blob(desc)
        except SocikitError as exc:
            results.append(CheckResult(r.SCHEMA, False, f"the prefetch artifact cannot be read: {exc}", subject))
            continue
        result, spans = check_prefetch_blob(data, subject)
        results.append(result)
        if spans is None:
            continue
        binding = check_prefetch_binding(desc, spans, ztocs, layers, subject)
        if binding is not None:
            results.append(binding)
    return results


__all__ = ["check_prefetch_artifacts", "check_prefetch_binding", "check_prefetch_blob"]

"""SOCI prefetch artifacts (`application/vnd.amazon.soci.prefetch.v1+json`, reference v0.13+):
per layer, the span ranges a snapshotter fetches before anything asks for them.

The blob is Go `json.Marshal` of `{"version":"1.0","prefetch_spans":[{"start_span":S,
"end_span":E[,"priority":P]}]}`: ranges are inclusive span ids, sorted, and merged when they
overlap or touch (`[0,10]+[5,15]` → `[0,15]`, `[0,10]+[11,20]` → `[0,20]`); a zero priority is
left out. In a SOCI index the artifact's descriptor follows the ztoc descriptors and carries only
`com.amazon.soci.image-layer-digest`. Pure functions: bytes in, values out.

Building them (`soci create/convert --prefetch-file P --prefetch-files-json F`): each path is
trimmed, cleaned and stripped of its leading '/', then looked for from the top layer down; the
topmost indexed layer that has it gets the spans holding the file's data (a hard link's target's
data). A whiteout or an opaque directory in a higher layer, or a non-directory in place of a parent
directory, ends the search: the file is not in the image. The JSON file is what the reference
reads: a JSON array of path strings, nothing per layer or per platform.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from socikit.errors import FormatError
from socikit.oci import gojson
from socikit.oci import mediatypes as mt
from socikit.oci.descriptor import Descriptor, descriptor_for
from socikit.soci.index import prefetch_descriptor
from socikit.ztoc.index import TocIndex, clean_name, toc_index
from socikit.ztoc.model import Ztoc
from socikit.ztoc.spans import span_table

PREFETCH_VERSION = "1.0"


class PrefetchSpan(NamedTuple):
    """Spans `start_span`..`end_span` (both included) of one layer, with the reference's scheduling
    `priority`: a lower value is more urgent, 0 (left out of the bytes) means none was given.
    socikit writes none."""

    start_span: int
    end_span: int
    priority: int = 0


def _more_urgent(a: int, b: int) -> int:
    """The priority a merged range keeps: the lower of two given ones; 0 only when neither was."""
    return min(a, b) if a and b else a or b


def merge_spans(spans: Iterable[PrefetchSpan]) -> list[PrefetchSpan]:
    """Sorted ranges with overlapping or adjacent ones merged (keeping the more urgent priority)."""
    merged: list[PrefetchSpan] = []
    for span in sorted(spans):
        if merged and span.start_span <= merged[-1].end_span + 1:
            last = merged[-1]
            merged[-1] = PrefetchSpan(last.start_span, max(last.end_span, span.end_span),
                                      _more_urgent(last.priority, span.priority))
        else:
            merged.append(span)
    return merged


def dumps_prefetch(spans: Iterable[PrefetchSpan]) -> bytes:
    """The artifact bytes for `spans` (merged), as the reference writes them."""
    entries = []
    for span in merge_spans(spans):
        entry: dict[str, int] = {"start_span": span.start_span, "end_span": span.end_span}
        if span.priority:
            entry["priority"] = span.priority
        entries.append(entry)
    return gojson.dumps({"version": PREFETCH_VERSION, "prefetch_spans": entries})


def loads_prefetch(data: bytes) -> list[PrefetchSpan]:
    """The span ranges of a prefetch artifact; FormatError when it is not one."""
    try:
        doc = json.loads(data)
    except ValueError:
        raise FormatError("prefetch artifact is not JSON") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("prefetch_spans"), list):
        raise FormatError("prefetch artifact has no prefetch_spans list")
    if doc.get("version") != PREFETCH_VERSION:
        raise FormatError(f"prefetch artifact version {doc.get('version')!r} is not {PREFETCH_VERSION!r}")
    spans = []
    for raw in doc["prefetch_spans"]:
        values = [raw.get(key, 0) if isinstance(raw, dict) else None for key in ("start_span", "end_span", "priority")]
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values):
            raise FormatError(f"prefetch span {raw!r} needs non-negative integer start_span/end_span/priority")
        start, end, priority = values
        assert isinstance(start, int) and isinstance(end, int) and isinstance(priority, int)
        if end < start:
            raise FormatError(f"prefetch span ends ({end}) before it starts ({start})")
        spans.append(PrefetchSpan(start, end, priority))
    return spans


def describe_spans(spans: Iterable[PrefetchSpan]) -> str:
    """`0-2, 5 (4 spans)`: merged ranges as a reader wants them."""
    merged = merge_spans(spans)
    ranges = ", ".join(
        (str(s.start_span) if s.start_span == s.end_span else f"{s.start_span}-{s.end_span}")
        + (f" (priority {s.priority})" if s.priority else "")
        for s in merged
    )
    count = sum(s.end_span - s.start_span + 1 for s in merged)
    return f"{ranges or 'none'} ({count} span{'' if count == 1 else 's'})"


def describe_prefetch(desc: Descriptor, data: bytes) -> str:
    """One line about a prefetch artifact of a SOCI index: its digest, layer and spans."""
    layer = desc.annotations.get(mt.ANNOTATION_IMAGE_LAYER_DIGEST, "(no layer-digest annotation)")
    try:
        spans = describe_spans(loads_prefetch(data))
    except FormatError as exc:
        spans = f"unreadable: {exc}"
    return f"prefetch {desc.digest} for layer {layer}: spans {spans}"


# -- building ------------------------------------------------------------------------------------

_OPAQUE_WHITEOUT = ".wh..wh..opq"
_WHITEOUT_PREFIX = ".wh."


def prefetch_path_list(values: Iterable[str]) -> list[str]:
    """Paths as the reference takes them from its flags and JSON file: whitespace trimmed, blank
    ones dropped (order kept, duplicates allowed)."""
    return [value.strip() for value in values if value.strip()]


def loads_prefetch_files_json(data: bytes) -> list[str]:
    """The paths of a `--prefetch-files-json` file: a JSON array of strings. FormatError otherwise."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise FormatError("the prefetch files JSON is not valid JSON (expected an array of path strings)") from None
    if not isinstance(doc, list) or not all(isinstance(item, str) for item in doc):
        raise FormatError("the prefetch files JSON must be an array of path strings, e.g. [\"/app/main.py\"]")
    return prefetch_path_list(doc)


def clean_prefetch_path(path: str) -> str:
    """`path` as it is looked up in the TOCs: cleaned (`.`, `..`, doubled '/' resolved) and
    without its leading '/'. FormatError for the root itself, which is not a file."""
    cleaned = clean_name(path.strip())
    if not cleaned:
        raise FormatError(f"prefetch path {path!r} names the root directory, not a file")
    return cleaned


@dataclass
class PrefetchPlan:
    """Where the requested files were found: spans per layer digest (unmerged, in request order),
    and the requested paths that gave no span with the reason."""

    spans: dict[str, list[PrefetchSpan]] = field(default_factory=dict)
    found_in: dict[str, str] = field(default_factory=dict)  # cleaned path -> layer digest
    not_prefetched: dict[str, str] = field(default_factory=dict)  # cleaned path -> why


def _hidden_by(index: TocIndex, path: str) -> str:
    """Why a layer hides `path` of the layers below it ("" when it does not): a whiteout of the
    path or of a parent, an opaque parent directory, or a parent that is not a directory."""
    parts = path.split("/")
    for depth in range(len(parts)):
        parent = "/".join(parts[:depth])
        name = parts[depth]
        below = f"{parent}/" if parent else ""
        if index.lookup(below + _WHITEOUT_PREFIX + name) is not None:
            return f"deleted by the whiteout {below + _WHITEOUT_PREFIX + name!r}"
        if index.lookup(below + _OPAQUE_WHITEOUT) is not None:
            return f"hidden by the opaque directory {parent or '/'!r}"
        if depth < len(parts) - 1:
            node = index.node_of(below + name)
            if node is not None and not index.is_dir(node):
                return f"{below + name!r} is not a directory"
    return ""


def plan_prefetch(paths: Sequence[str], layers: Sequence[tuple[Descriptor, Ztoc | None]]) -> PrefetchPlan:
    """Find each of `paths` in `layers` (image-layer order, bottom first; None for a layer that
    has no ztoc, whose files cannot be seen) from the top down and collect the spans that hold
    each file's data. A file in an unindexed layer above is invisible here, as it is to the
    reference (the snapshotter fetches such a layer whole anyway)."""
    plan = PrefetchPlan()
    for raw in paths:
        path = clean_prefetch_path(raw)
        if path in plan.found_in or path in plan.not_prefetched:
            continue
        why = "not in any indexed layer"
        for layer, ztoc in reversed(layers):
            if ztoc is None:
                continue
            index = toc_index(ztoc)
            node = index.node_of(path)
            if node is not None:
                plan.found_in[path] = layer.digest
                entry = index.entry_of(node)
                covering = span_table(ztoc).spans_covering(entry.uncompressed_offset, entry.uncompressed_size)
                if entry.type != "reg" or not covering:
                    what = "it is an empty file" if entry.type == "reg" else f"it is a {entry.type}, not a file"
                    plan.not_prefetched[path] = f"{what} (layer {layer.digest}): nothing to prefetch"
                else:
                    plan.spans.setdefault(layer.digest, []).append(PrefetchSpan(covering[0], covering[-1]))
                break
            hidden = _hidden_by(index, path)
            if hidden:
                why = f"not in the image: {hidden} in layer {layer.digest}"
                break
        if path not in plan.found_in:
            plan.not_prefetched[path] = why
    return plan


def prefetch_artifacts(
    plan: PrefetchPlan, layers: Sequence[Descriptor]
) -> list[tuple[Descriptor, bytes]]:
    """One prefetch artifact (descriptor, bytes) per layer the plan has spans for, in image-layer
    order: what follows the ztoc descriptors in the SOCI index."""
    out = []
    seen = set()
    for layer in layers:
        spans = plan.spans.get(layer.digest)
        if not spans or layer.digest in seen:
            continue
        seen.add(layer.digest)
        data = dumps_prefetch(spans)
        blob = descriptor_for(data, mt.MEDIA_TYPE_SOCI_PREFETCH)
        out.append((prefetch_descriptor(blob.digest, blob.size, layer_digest=layer.digest), data))
    return out


__all__ = [
    "PREFETCH_VERSION",
    "PrefetchPlan",
    "PrefetchSpan",
    "clean_prefetch_path",
    "describe_prefetch",
    "describe_spans",
    "dumps_prefetch",
    "loads_prefetch",
    "loads_prefetch_files_json",
    "merge_spans",
    "plan_prefetch",
    "prefetch_artifacts",
    "prefetch_path_list",
]

"""SOCI prefetch artifacts (`application/vnd.amazon.soci.prefetch.v1+json`, reference v0.13+):
per layer, the span ranges a snapshotter fetches before anything asks for them.

The blob is Go `json.Marshal` of `{"version":"1.0","prefetch_spans":[{"start_span":S,
"end_span":E[,"priority":P]}]}`: ranges are inclusive span ids, sorted, and merged when they
overlap or touch (`[0,10]+[5,15]` → `[0,15]`, `[0,10]+[11,20]` → `[0,20]`); a zero priority is
left out. In a SOCI index the artifact's descriptor follows the ztoc descriptors and carries only
`com.amazon.soci.image-layer-digest`. Pure functions: bytes in, values out.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import NamedTuple

from socikit.errors import FormatError
from socikit.oci import gojson

PREFETCH_VERSION = "1.0"


class PrefetchSpan(NamedTuple):
    """Spans `start_span`..`end_span` (both included) of one layer; higher `priority` first."""

    start_span: int
    end_span: int
    priority: int = 0


def merge_spans(spans: Iterable[PrefetchSpan]) -> list[PrefetchSpan]:
    """Sorted ranges with overlapping or adjacent ones merged (the highest priority wins)."""
    merged: list[PrefetchSpan] = []
    for span in sorted(spans):
        if merged and span.start_span <= merged[-1].end_span + 1:
            last = merged[-1]
            merged[-1] = PrefetchSpan(last.start_span, max(last.end_span, span.end_span),
                                      max(last.priority, span.priority))
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


__all__ = ["PREFETCH_VERSION", "PrefetchSpan", "dumps_prefetch", "loads_prefetch", "merge_spans"]

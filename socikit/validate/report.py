"""What `validate` returns: named check results and a lazy-loading verdict."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

# Check names, in the order they are reported. Each is a stable identifier (tests, CI scripts and
# the CLI's --json output key on it).
SCHEMA = "schema"
MEDIA_TYPES = "media-types"
ANNOTATIONS = "annotations"
GO_CANONICAL = "go-canonical"
V2_LINKS = "v2-links"
V1_SUBJECT = "v1-subject"
V1_DISCOVERABLE = "v1-discoverable"
ZTOC_DECODES = "ztoc-decodes"
ZTOC_LAYER = "ztoc-layer"
ZTOC_SIZE = "ztoc-size"
ZTOC_SPAN_SIZE = "ztoc-span-size"
LAYER_BLOB = "layer-blob"
SPAN_DIGESTS = "span-digests"
TOC_HEADERS = "toc-headers"
FILE_CONTENTS = "file-contents"
PREFETCH = "prefetch"  # only for SOCI indexes that list prefetch artifacts (socikit.validate.prefetch)
TOC_DIGEST = "toc-digest"  # only for manifests whose layers carry TOC-digest annotations

CHECK_NAMES = (
    SCHEMA,
    MEDIA_TYPES,
    ANNOTATIONS,
    GO_CANONICAL,
    V2_LINKS,
    V1_SUBJECT,
    V1_DISCOVERABLE,
    ZTOC_DECODES,
    ZTOC_LAYER,
    ZTOC_SIZE,
    ZTOC_SPAN_SIZE,
    LAYER_BLOB,
    SPAN_DIGESTS,
    TOC_HEADERS,
    FILE_CONTENTS,
    PREFETCH,
    TOC_DIGEST,
)

CHECK_DESCRIPTIONS = {
    SCHEMA: "every manifest, image index and SOCI index matches its JSON Schema",
    MEDIA_TYPES: "media types and artifact types are the ones the snapshotter expects",
    ANNOTATIONS: "SOCI annotations are present and well formed",
    GO_CANONICAL: "JSON bytes equal Go's re-encoding (the snapshotter re-marshals and refuses others)",
    V2_LINKS: "image manifest index-digest <-> SOCI v2 entry image-manifest-digest, same platform",
    V1_SUBJECT: "a SOCI v1 index's subject is an image manifest that exists",
    V1_DISCOVERABLE: "a SOCI v1 index is found by the Referrers API / fallback tag / layout listing",
    ZTOC_DECODES: "every ztoc blob decodes",
    ZTOC_LAYER: "a ztoc's layer-digest and layer-mediaType annotations name a layer of the manifest",
    ZTOC_SIZE: "a ztoc's compressed_archive_size equals the layer's size",
    ZTOC_SPAN_SIZE: "the span-size annotation equals the zinfo's span size",
    LAYER_BLOB: "the layer blob read for deep checks has the digest and size its descriptor states",
    SPAN_DIGESTS: "span digests equal the sha256 of the layer's span byte ranges",
    TOC_HEADERS: "every TOC entry agrees with the tar header bytes before its data",
    FILE_CONTENTS: "file data read through spans equals the sequentially decompressed tar",
    PREFETCH: "a prefetch artifact names a layer its SOCI index has a ztoc for, and its spans lie in that ztoc",
    TOC_DIGEST: "a layer's containerd.io/snapshot/stargz/toc.digest names the ztoc its SOCI index has for it",
}


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One check applied to one artifact. `subject` names the artifact (kind and digest)."""

    name: str
    passed: bool
    reason: str
    subject: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "passed": self.passed, "subject": self.subject, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class ManifestVerdict:
    """Whether a default soci-snapshotter lazily loads one platform manifest of the image."""

    digest: str
    platform: str
    lazy: bool
    reason: str
    # Not lazy by default only because its SOCI index is v1: `pull_modes.soci_v1 enable = true`
    # (or the explicit index-digest label) would load it lazily.
    lazy_with_v1: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"digest": self.digest, "platform": self.platform, "lazy": self.lazy, "reason": self.reason,
                "lazy_with_v1": self.lazy_with_v1}


@dataclass(frozen=True, slots=True)
class Summary:
    """Would a soci-snapshotter with default settings (SOCI v2 on, v1 off, min_layer_size 0)
    lazily load this image, and if not why."""

    lazy: bool
    reason: str  # why (per platform when the image has several), without the verdict itself
    manifests: tuple[ManifestVerdict, ...] = ()

    @property
    def any_lazy(self) -> bool:
        """At least one platform manifest is lazily loaded by default."""
        return any(m.lazy for m in self.manifests)

    @property
    def any_indexed(self) -> bool:
        """At least one platform manifest has a SOCI index a soci-snapshotter loads lazily, by
        default (v2) or with SOCI v1 enabled (what `validate` requires unless --allow-unindexed)."""
        return any(m.lazy or m.lazy_with_v1 for m in self.manifests)

    def __str__(self) -> str:
        verdict = "lazily loads" if self.lazy else "does not lazily load"
        return f"a soci-snapshotter with default settings {verdict} this image: {self.reason}"

    def to_json(self) -> dict[str, Any]:
        return {
            "lazy": self.lazy,
            "reason": self.reason,
            "text": str(self),
            "manifests": [m.to_json() for m in self.manifests],
        }


@dataclass(frozen=True, slots=True)
class Report:
    """All check results for one image plus the lazy-loading summary. `passed` is True when no
    check failed."""

    image: str
    checks: tuple[CheckResult, ...]
    summary: Summary
    deep: bool = False
    sample: int = 0
    stats: dict[str, int] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def failures(self) -> tuple[CheckResult, ...]:
        return tuple(c for c in self.checks if not c.passed)

    def failed_names(self) -> set[str]:
        return {c.name for c in self.checks if not c.passed}

    def by_name(self, name: str) -> tuple[CheckResult, ...]:
        return tuple(c for c in self.checks if c.name == name)

    def to_json(self) -> dict[str, Any]:
        return {
            "image": self.image,
            "passed": self.passed,
            "deep": self.deep,
            "sample": self.sample,
            "summary": self.summary.to_json(),
            "stats": dict(self.stats),
            "checks": [c.to_json() for c in self.checks],
        }

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2, ensure_ascii=False)


__all__ = [
    "CHECK_DESCRIPTIONS",
    "CHECK_NAMES",
    "CheckResult",
    "ManifestVerdict",
    "Report",
    "Summary",
]

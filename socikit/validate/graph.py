"""The image graph `validate` judges: everything `validate.collect` read, as plain values.

One image is a root (image index or lone manifest), its platform manifests, the SOCI v2 indexes
their annotations and the index's entries name, the SOCI v1 indexes found for it (listed in an
OCI layout's `index.json`, or returned by each manifest's referrers query), and the ztocs those
indexes list. A read that failed is kept as the reason it failed, so the checks can report it.
Nothing here reads or judges.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from socikit.errors import FormatError
from socikit.oci import mediatypes as mt
from socikit.oci.descriptor import Descriptor, Platform
from socikit.oci.manifest import ImageManifest
from socikit.soci import discover
from socikit.validate.checks import platforms_match
from socikit.ztoc.model import Ztoc


@dataclass(frozen=True, slots=True)
class JsonDoc:
    """A JSON artifact as read: its descriptor, exact bytes and decoding (`obj` None when the
    bytes are not a JSON object: `why`)."""

    desc: Descriptor
    data: bytes
    obj: dict[str, Any] | None
    why: str = ""


JsonRead = JsonDoc | str
"""A JSON artifact, or why it could not be read."""


@dataclass(slots=True)
class PlatformImage:
    """One platform manifest of the image: its index entry (the root itself for a lone manifest),
    its platform, and the manifest when it could be read and decoded."""

    entry: Descriptor
    doc: JsonDoc | None
    platform: Platform | None
    manifest: ImageManifest | None = None
    read_error: str = ""


@dataclass(frozen=True, slots=True)
class ZtocRead:
    """A ztoc blob decoded, or None and why it is unusable (unreadable or undecodable)."""

    ztoc: Ztoc | None
    why: str = ""


@dataclass(slots=True)
class V1Index:
    """A SOCI v1 index found for the image. `subject` is its subject manifest as read, when the
    subject descriptor parses and names none of the image's (readable) manifests."""

    desc: Descriptor
    doc: JsonRead
    subject: JsonRead | None = None


@dataclass(slots=True)
class V1Listing:
    """The SOCI v1 indexes found one way: an OCI layout's `index.json` (`image` None), or the
    referrers query of one platform manifest (`error`: why that query failed). An index found
    by an earlier listing is not repeated."""

    image: PlatformImage | None
    indexes: list[V1Index] = field(default_factory=list)
    error: str = ""


@dataclass(slots=True)
class ImageGraph:
    """What `collect_image` read, from the root the reference resolved to down to the ztocs."""

    root: Descriptor
    root_doc: JsonDoc
    is_index: bool = False
    index_entries: list[Descriptor] = field(default_factory=list)
    images: list[PlatformImage] = field(default_factory=list)
    soci_entries: list[Descriptor] = field(default_factory=list)
    v2_reads: dict[str, JsonRead] = field(default_factory=dict)
    v1_listings: list[V1Listing] = field(default_factory=list)
    ztocs: dict[str, ZtocRead] = field(default_factory=dict)
    # prefetch artifacts the SOCI indexes list: their bytes, or why they could not be read
    prefetches: dict[str, bytes | str] = field(default_factory=dict)


def prefetch_descriptors(obj: dict[str, Any]) -> list[Descriptor]:
    """The prefetch artifact descriptors a decoded SOCI index lists (unparsable ones are left to
    the index's schema check)."""
    found = []
    for raw in obj.get("layers") or []:
        if isinstance(raw, dict) and raw.get("mediaType") == mt.MEDIA_TYPE_SOCI_PREFETCH:
            try:
                found.append(Descriptor.from_json(raw))
            except FormatError:
                continue
    return found


def ztoc_descriptors(obj: dict[str, Any]) -> list[Descriptor]:
    """The ztoc layers a decoded SOCI index lists (prefetch artifacts and unparsable entries left
    out: the schema and media-type checks report those)."""
    out = []
    for raw in obj.get("layers") or []:
        try:
            desc = Descriptor.from_json(raw)
        except FormatError:
            continue
        if desc.media_type == mt.MEDIA_TYPE_ZTOC:
            out.append(desc)
    return out


def subject_descriptor(obj: dict[str, Any] | None) -> Descriptor | None:
    """A SOCI v1 index's `subject`, None when it has no usable one."""
    try:
        return Descriptor.from_json(obj.get("subject") if obj is not None else None)
    except FormatError:
        return None


def soci_entry_for(entries: list[Descriptor], digest: str, image: PlatformImage) -> Descriptor | None:
    """The SOCI entry of the image index that a manifest's index-digest `digest` leads to. Platforms
    with identical layers share one SOCI index, which the image index then lists once per platform:
    the entry is looked up by (digest, platform), preferring the one that points back at this
    manifest; when none is for this platform, the one pointing back (else the last listed), whose
    mismatch the link check reports."""
    candidates = [e for e in entries if e.digest == digest]
    if not candidates:
        return None

    def fit(entry: Descriptor) -> tuple[bool, bool]:
        return (
            platforms_match(entry.platform, image.platform),
            discover.indexed_manifest_digest(entry) == image.entry.digest,
        )

    best = max(fit(e) for e in candidates)
    return [e for e in candidates if fit(e) == best][-1]


def readable_image(images: list[PlatformImage], digest: str) -> PlatformImage | None:
    """The image's platform manifest with this digest, when it was read and decoded."""
    return next((i for i in images if i.entry.digest == digest and i.manifest is not None), None)


__all__ = [
    "ImageGraph",
    "JsonDoc",
    "JsonRead",
    "PlatformImage",
    "V1Index",
    "V1Listing",
    "ZtocRead",
    "readable_image",
    "soci_entry_for",
    "subject_descriptor",
    "ztoc_descriptors",
]

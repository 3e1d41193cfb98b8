"""Finding an image's SOCI indexes, the way the soci-snapshotter does (fact sheet §5.2, §6.5).

Two ways lead from an image to its SOCI indexes:

* **v2**: a platform manifest names its index in the annotation `com.amazon.soci.index-digest`;
  in the converted image index the SOCI index is a sibling entry carrying the v2 artifactType and
  `com.amazon.soci.image-manifest-digest` pointing back at the manifest.
* **v1**: the index is a referrer of the platform manifest (its `subject`), found through a
  registry's Referrers API or fallback tag, or, in an OCI layout, listed in `index.json` with the
  v1 artifactType. When several exist the snapshotter takes the first one listed.

Everything here is pure (values in, values out) except `find_soci_index`, which is the
snapshotter's whole decision and takes the two reads it may need as callables: a registry client,
an OCI layout or a test double can stand behind them. The network half of v1 discovery is
`socikit.registry.referrers.fetch_referrers(client, repo, subject_digest, artifact_type)`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from socikit.errors import FormatError, ImageError
from socikit.oci import mediatypes as mt
from socikit.oci.descriptor import Descriptor

V1 = mt.ARTIFACT_TYPE_SOCI_INDEX_V1
V2 = mt.ARTIFACT_TYPE_SOCI_INDEX_V2
SOCI_INDEX_ARTIFACT_TYPES = frozenset({V1, V2})

# Labels containerd passes to a snapshotter's Prepare (fact sheet §7.3).
LABEL_SOCI_INDEX_DIGEST = "containerd.io/snapshot/remote/soci.index.digest"
LABEL_MANIFEST_DIGEST = "containerd.io/snapshot/cri.manifest-digest"

# The OCI digest grammar (image-spec descriptor.md): algorithm ":" encoded.
_DIGEST_RE = re.compile(r"^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")

ReadManifest = Callable[[str], bytes]
"""digest -> the exact bytes of that manifest (digest verified by the reader)."""

ListReferrers = Callable[[str, str], Sequence[Descriptor]]
"""(subject digest, artifact type) -> the referrers' descriptors, in the store's order."""


# --- what a manifest or an index entry says ---------------------------------------------------

def index_version(artifact_type: str) -> str | None:
    """"v1" or "v2" for a SOCI index artifact type (or config media type), else None."""
    if artifact_type == V1:
        return "v1"
    if artifact_type == V2:
        return "v2"
    return None


def index_digest_annotation(annotations: Mapping[str, str]) -> str | None:
    """The SOCI v2 index a manifest's annotations name (`com.amazon.soci.index-digest`), as
    written ("" stays ""), or None when the manifest names none."""
    return annotations.get(mt.ANNOTATION_INDEX_DIGEST)


def v2_index_digest(manifest: bytes) -> str | None:
    """The SOCI v2 index digest a manifest's bytes name, read the lenient way the snapshotter reads
    them (only `annotations` matters); None when absent or empty. FormatError when the bytes are
    not a JSON object."""
    try:
        doc = json.loads(manifest)
    except (ValueError, UnicodeDecodeError):
        raise FormatError("the manifest is not JSON") from None
    if not isinstance(doc, dict):
        raise FormatError("the manifest is not a JSON object")
    annotations = doc.get("annotations")
    if not isinstance(annotations, dict):
        return None
    value = annotations.get(mt.ANNOTATION_INDEX_DIGEST)
    return value if isinstance(value, str) and value else None


def config_index_version(manifest: Mapping[str, Any]) -> str | None:
    """"v1"/"v2" when a decoded manifest is a SOCI index (its config media type is an index
    artifact type: the snapshotter accepts a fetched index only then), else None."""
    config = manifest.get("config")
    if not isinstance(config, Mapping):
        return None
    media_type = config.get("mediaType")
    return index_version(media_type) if isinstance(media_type, str) else None


def is_soci_index_entry(entry: Descriptor) -> bool:
    """An index entry (or referrer) that declares itself a SOCI index by its artifactType."""
    return entry.artifact_type in SOCI_INDEX_ARTIFACT_TYPES


def is_image_entry(entry: Descriptor) -> bool:
    """An image index entry for an image manifest: a manifest media type, not a SOCI index."""
    return entry.media_type in mt.MANIFEST_MEDIA_TYPES and not is_soci_index_entry(entry)


def platform_manifest_entries(entries: Sequence[Descriptor]) -> list[Descriptor]:
    """The entries of an image index that are platform images: manifests with no artifactType at
    all (SOCI indexes and other artifacts listed beside the images are left out)."""
    return [e for e in entries if e.media_type in mt.MANIFEST_MEDIA_TYPES and not e.artifact_type]


def indexed_manifest_digest(entry: Descriptor) -> str | None:
    """The manifest a SOCI v2 index entry says it indexes (`com.amazon.soci.image-manifest-digest`)."""
    return entry.annotations.get(mt.ANNOTATION_IMAGE_MANIFEST_DIGEST)


# --- an image index: which entries are SOCI indexes, of which manifest ------------------------------

def soci_index_entries(entries: Sequence[Descriptor], linked: Collection[str] = ()) -> list[Descriptor]:
    """The entries of an image index that are SOCI indexes: those with a SOCI artifactType, and
    those a manifest's index-digest names (`linked`) that are not image entries themselves (an
    index entry that lost its artifactType is still found through the manifest)."""
    return [e for e in entries if is_soci_index_entry(e) or (e.digest in linked and not is_image_entry(e))]


def v2_entries_of(entries: Sequence[Descriptor], manifest_digest: str) -> list[Descriptor]:
    """The SOCI v2 index entries of an image index that point back at `manifest_digest`."""
    return [e for e in entries if e.artifact_type == V2 and indexed_manifest_digest(e) == manifest_digest]


# --- SOCI v1 --------------------------------------------------------------------------------------

def v1_indexes(referrers: Sequence[Descriptor]) -> list[Descriptor]:
    """The SOCI v1 indexes among a subject's referrers, in the order given (the snapshotter's
    client-side artifactType filter, for stores that did not filter)."""
    return [d for d in referrers if d.artifact_type == V1]


def select_v1_index(referrers: Sequence[Descriptor]) -> Descriptor | None:
    """The v1 index the snapshotter uses among a subject's referrers: the first one listed
    (oras' select-first policy), None when there is none."""
    found = v1_indexes(referrers)
    return found[0] if found else None


def layout_v1_candidates(entries: Sequence[Descriptor], image_digests: Collection[str]) -> list[Descriptor]:
    """The `index.json` entries of an OCI layout that may be SOCI v1 indexes: OCI manifests that
    are not one of the image's manifests and carry the v1 artifactType or none (an entry without
    it is still a v1 index when its config says so: `config_index_version`), once each."""
    seen: set[str] = set()
    out = []
    for entry in entries:
        if entry.media_type != mt.MEDIA_TYPE_OCI_MANIFEST or entry.digest in image_digests or entry.digest in seen:
            continue
        if entry.artifact_type and entry.artifact_type != V1:
            continue
        seen.add(entry.digest)
        out.append(entry)
    return out


# --- the snapshotter's decision ---------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class PullModes:
    """Which ways of finding an index are on (the snapshotter's `[pull_modes]`: v2 on and v1 off
    by default since soci-snapshotter v0.10)."""

    v2: bool = True
    v1: bool = False


@dataclass(frozen=True, slots=True)
class FoundIndex:
    """A SOCI index found for a platform manifest.

    `how`: "label" (the explicit digest containerd passed; either version), "annotation" (v2,
    the manifest's index-digest) or "referrers" (v1). `descriptor` is the referrer descriptor
    for v1, None otherwise (only the digest is known until the index is fetched)."""

    digest: str
    how: str
    descriptor: Descriptor | None = None

    @property
    def version(self) -> str | None:
        """"v1"/"v2" when the way it was found says so; None for an explicit label."""
        return {"annotation": "v2", "referrers": "v1"}.get(self.how)


def discovery_labels(labels: Mapping[str, str]) -> tuple[str, str]:
    """(explicit index digest, platform manifest digest) from the labels of a snapshotter
    Prepare; either is "" when containerd did not send it."""
    return labels.get(LABEL_SOCI_INDEX_DIGEST, ""), labels.get(LABEL_MANIFEST_DIGEST, "")


def find_soci_index(
    manifest_digest: str,
    *,
    explicit_digest: str = "",
    read_manifest: ReadManifest,
    list_referrers: ListReferrers | None,
    modes: PullModes = PullModes(),
) -> FoundIndex | None:
    """The SOCI index the snapshotter uses for the platform manifest `manifest_digest`, or None
    (the image is then pulled normally). In order:

    1. a non-empty `explicit_digest` (the `soci.index.digest` label), whatever its version;
    2. with `modes.v2`: the `com.amazon.soci.index-digest` annotation of the manifest, read with
       `read_manifest`;
    3. with `modes.v1`: the first SOCI v1 index among the manifest's referrers
       (`list_referrers(manifest_digest, v1 artifact type)`).

    Both modes off (and no explicit digest) is an ImageError, as in the snapshotter. Errors of
    the two callables propagate: a manifest that cannot be read is not "no index". The caller
    then fetches the index and checks `config_index_version` of it."""
    if explicit_digest:
        if not _DIGEST_RE.match(explicit_digest):
            raise ImageError(f"the SOCI index digest {explicit_digest!r} is not a digest")
        return FoundIndex(explicit_digest, "label")
    if not modes.v2 and not modes.v1:
        raise ImageError("SOCI v1 and v2 pull modes are both disabled: no index can be found")
    if modes.v2:
        target = v2_index_digest(read_manifest(manifest_digest))
        if target is not None:
            return FoundIndex(target, "annotation")
    if modes.v1:
        if list_referrers is None:
            raise ImageError("SOCI v1 discovery needs the store's referrers, which this store cannot list")
        chosen = select_v1_index(list_referrers(manifest_digest, V1))
        if chosen is not None:
            return FoundIndex(chosen.digest, "referrers", chosen)
    return None


__all__ = [
    "LABEL_MANIFEST_DIGEST",
    "LABEL_SOCI_INDEX_DIGEST",
    "SOCI_INDEX_ARTIFACT_TYPES",
    "V1",
    "V2",
    "FoundIndex",
    "ListReferrers",
    "PullModes",
    "ReadManifest",
    "config_index_version",
    "discovery_labels",
    "find_soci_index",
    "index_digest_annotation",
    "index_version",
    "indexed_manifest_digest",
    "is_image_entry",
    "is_soci_index_entry",
    "layout_v1_candidates",
    "platform_manifest_entries",
    "select_v1_index",
    "soci_index_entries",
    "v1_indexes",
    "v2_entries_of",
    "v2_index_digest",
]

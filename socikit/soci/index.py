"""SOCI index manifests v1 and v2 (fact sheet §5, §6.1; reference `soci/soci_index.go`).

A SOCI index is an OCI image manifest whose config is the 2-byte `{}` blob typed with the index
artifact type, whose layers are the ztoc descriptors (in image-layer order), and which carries the
build tool annotation. v1 also names the image manifest as `subject`; v2 has no subject (the image
manifest points at it instead). There is no top-level artifactType: the reference never writes one,
and the snapshotter re-marshals fetched indexes and refuses any whose bytes change.

Prefetch artifacts (reference v0.13+, `socikit.soci.prefetch`) follow the ztoc descriptors in
`layers`, each tagged only with the digest of the image layer it is for.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from socikit.errors import FormatError, ImageError
from socikit.oci import mediatypes as mt
from socikit.oci.descriptor import Descriptor
from socikit.oci.digest import sha256_digest
from socikit.oci.manifest import ImageManifest
from socikit.ztoc.model import Ztoc

# index version -> artifact type (also the config media type)
INDEX_VERSIONS = {"v1": mt.ARTIFACT_TYPE_SOCI_INDEX_V1, "v2": mt.ARTIFACT_TYPE_SOCI_INDEX_V2}

# The reference's ErrEmptyIndex message.
EMPTY_INDEX_MESSAGE = "no ztocs created, all layers either skipped or produced errors"


# The reference's optional build optimizations (`soci create/convert --optimizations`).
OPTIMIZATION_XATTR = "xattr"
OPTIMIZATIONS = (OPTIMIZATION_XATTR,)

_XATTR_RECORD_PREFIX = b"SCHILY.xattr."
_OPAQUE_WHITEOUT = ".wh..wh..opq"


def parse_optimization(name: str) -> str:
    """A known optimization name, else ValueError naming the ones there are."""
    if name not in OPTIMIZATIONS:
        raise ValueError(f"optimization {name!r} is not a valid optimization (valid: {', '.join(OPTIMIZATIONS)})")
    return name


def layer_needs_no_xattrs(ztoc: Ztoc) -> bool:
    """The xattr optimization's rule (fact sheet §3): a layer can be mounted without xattr
    lookups when no TOC entry carries a `SCHILY.xattr.` PAX record (the only records the
    snapshotter exposes as xattrs) and no entry name ends with the opaque-directory marker
    (overlayfs learns opaque directories from an xattr the snapshotter sets for them)."""
    for entry in ztoc.toc:
        if entry.name.endswith(_OPAQUE_WHITEOUT):
            return False
        if any(key.startswith(_XATTR_RECORD_PREFIX) for key, _ in entry.xattrs):
            return False
    return True


class EmptySociIndexError(ImageError):
    """No ztoc to put in a SOCI index (every layer was skipped): the reference's ErrEmptyIndex.
    `convert` skips such a platform; it is an error only when every platform is empty."""


def ztoc_descriptor(
    ztoc_digest: str, ztoc_size: int, *, layer: Descriptor, span_size: int, disable_xattrs: bool = False
) -> Descriptor:
    """The `layers` entry of a SOCI index for one ztoc: media type application/octet-stream, and
    annotations naming the indexed image layer (digest, media type), the span size in uncompressed
    bytes (decimal, as the reference has written since v0.12) and, when the xattr optimization
    found no xattrs in the layer, `disable-xattrs`."""
    annotations = {
        mt.ANNOTATION_IMAGE_LAYER_MEDIA_TYPE: layer.media_type,
        mt.ANNOTATION_IMAGE_LAYER_DIGEST: layer.digest,
        mt.ANNOTATION_SPAN_SIZE: str(span_size),
    }
    if disable_xattrs:
        annotations[mt.ANNOTATION_DISABLE_XATTRS] = "true"
    return Descriptor(mt.MEDIA_TYPE_ZTOC, ztoc_digest, ztoc_size, annotations=annotations)


def prefetch_descriptor(digest: str, size: int, *, layer_digest: str) -> Descriptor:
    """The `layers` entry of a SOCI index for a prefetch artifact: only the layer digest is
    annotated (the reference writes no media type or span size for it)."""
    return Descriptor(
        mt.MEDIA_TYPE_SOCI_PREFETCH, digest, size, annotations={mt.ANNOTATION_IMAGE_LAYER_DIGEST: layer_digest}
    )


def build_soci_index(
    ztoc_descriptors: Sequence[Descriptor],
    *,
    version: str,
    subject: Descriptor | None,
    build_tool_identifier: str,
) -> tuple[bytes, Descriptor]:
    """The exact bytes of a SOCI index and its descriptor.

    `ztoc_descriptors` go into `layers` as given (image-layer order, then any prefetch
    descriptors). `version` is "v1" or "v2". v1 needs `subject`, the platform image manifest the
    index was built from (only its media type, digest and size are kept); v2 takes none.
    The descriptor has the OCI manifest media type and `artifactType` = the index artifact type.
    Raises EmptySociIndexError when there is no ztoc, ValueError on a bad version/subject combination.
    """
    artifact_type = INDEX_VERSIONS.get(version)
    if artifact_type is None:
        raise ValueError(f"unknown SOCI index version {version!r} (expected 'v1' or 'v2')")
    if version == "v1" and subject is None:
        raise ValueError("a SOCI v1 index needs the image manifest as subject")
    if version == "v2" and subject is not None:
        raise ValueError("a SOCI v2 index has no subject")
    if not ztoc_descriptors:
        raise EmptySociIndexError(EMPTY_INDEX_MESSAGE)
    manifest = ImageManifest(
        schema_version=2,
        media_type=mt.MEDIA_TYPE_OCI_MANIFEST,
        config=Descriptor(artifact_type, mt.EMPTY_JSON_DIGEST, len(mt.EMPTY_JSON_BLOB)),
        layers=tuple(ztoc_descriptors),
        subject=(
            Descriptor(media_type=subject.media_type, digest=subject.digest, size=subject.size)
            if subject is not None else None
        ),
        annotations={mt.ANNOTATION_BUILD_TOOL_IDENTIFIER: build_tool_identifier},
    )
    data = manifest.dumps()
    desc = Descriptor(mt.MEDIA_TYPE_OCI_MANIFEST, sha256_digest(data), len(data), artifact_type=artifact_type)
    return data, desc


@dataclass(frozen=True, slots=True)
class SociIndex:
    """A parsed SOCI index (either version)."""

    version: str  # "v1" or "v2"
    manifest: ImageManifest

    @property
    def artifact_type(self) -> str:
        return INDEX_VERSIONS[self.version]

    @property
    def ztocs(self) -> tuple[Descriptor, ...]:
        """The ztoc descriptors (prefetch descriptors and anything else left out)."""
        return tuple(d for d in self.manifest.layer_list if d.media_type == mt.MEDIA_TYPE_ZTOC)

    @property
    def prefetches(self) -> tuple[Descriptor, ...]:
        """The prefetch artifact descriptors, in index order."""
        return tuple(d for d in self.manifest.layer_list if d.media_type == mt.MEDIA_TYPE_SOCI_PREFETCH)

    def prefetches_for_layer(self, layer_digest: str) -> tuple[Descriptor, ...]:
        """The prefetch artifacts of an image layer (socikit writes at most one; the snapshotter
        merges the spans of all it finds)."""
        return tuple(
            d for d in self.prefetches if d.annotations.get(mt.ANNOTATION_IMAGE_LAYER_DIGEST) == layer_digest
        )

    @property
    def subject(self) -> Descriptor | None:
        return self.manifest.subject

    @property
    def build_tool_identifier(self) -> str:
        return self.manifest.annotations.get(mt.ANNOTATION_BUILD_TOOL_IDENTIFIER, "")

    def ztoc_for_layer(self, layer_digest: str) -> Descriptor | None:
        """The ztoc descriptor of an image layer, found by its `image-layer-digest` annotation."""
        for desc in self.ztocs:
            if desc.annotations.get(mt.ANNOTATION_IMAGE_LAYER_DIGEST) == layer_digest:
                return desc
        return None

    def to_json(self) -> dict[str, Any]:
        return self.manifest.to_json()

    def dumps(self) -> bytes:
        """The bytes the reference's MarshalIndex writes for this index: what the snapshotter
        stores under the fetched digest, so a well-formed index has `dumps() == original bytes`."""
        return self.manifest.with_changes(
            schema_version=2, media_type=mt.MEDIA_TYPE_OCI_MANIFEST, artifact_type=""
        ).dumps()


def parse_soci_index(data: bytes) -> SociIndex:
    """Parse SOCI index bytes. Like the reference, the version comes from `config.mediaType` and
    only the v1/v2 index types are accepted. Raises FormatError."""
    manifest = ImageManifest.from_json(data)
    for version, artifact_type in INDEX_VERSIONS.items():
        if manifest.config.media_type == artifact_type:
            return SociIndex(version=version, manifest=manifest)
    raise FormatError(f"not a SOCI index: config media type is {manifest.config.media_type!r}")


def is_canonical_soci_index(data: bytes) -> bool:
    """Whether `data` survives the snapshotter's decode/re-marshal unchanged (else it would refuse
    to store the index and fall back to no lazy loading)."""
    try:
        return parse_soci_index(data).dumps() == data
    except FormatError:
        return False

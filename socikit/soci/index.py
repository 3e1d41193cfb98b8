"""SOCI index manifests v1 and v2 (fact sheet §5, §6.1; reference `soci/soci_index.go`).

A SOCI index is an OCI image manifest whose config is the 2-byte `{}` blob typed with the index
artifact type, whose layers are the ztoc descriptors (in image-layer order), and which carries the
build tool annotation. v1 also names the image manifest as `subject`; v2 has no subject (the image
manifest points at it instead). No top-level artifactType: the reference never writes one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from socikit.errors import FormatError, ImageError
from socikit.oci import mediatypes as mt
from socikit.oci.descriptor import Descriptor
from socikit.oci.manifest import ImageManifest

INDEX_VERSIONS = {"v1": mt.ARTIFACT_TYPE_SOCI_INDEX_V1, "v2": mt.ARTIFACT_TYPE_SOCI_INDEX_V2}


def ztoc_descriptor(
    ztoc_digest: str, ztoc_size: int, *, layer: Descriptor, span_size: int, disable_xattrs: bool = False
) -> Descriptor:
    """The descriptor of a ztoc inside a SOCI index, with the layer it indexes."""
    annotations = {
        mt.ANNOTATION_IMAGE_LAYER_MEDIA_TYPE: layer.media_type,
        mt.ANNOTATION_IMAGE_LAYER_DIGEST: layer.digest,
        mt.ANNOTATION_SPAN_SIZE: str(span_size),
    }
    if disable_xattrs:
        annotations[mt.ANNOTATION_DISABLE_XATTRS] = "true"
    return Descriptor(media_type=mt.MEDIA_TYPE_ZTOC, digest=ztoc_digest, size=ztoc_size, annotations=annotations)


def build_soci_index(
    ztoc_descriptors: list[Descriptor],
    *,
    version: str,
    subject: Descriptor | None,
    build_tool_identifier: str,
) -> tuple[bytes, Descriptor]:
    """The index's exact bytes and its descriptor (OCI manifest media type, artifactType set)."""
    artifact_type = INDEX_VERSIONS.get(version)
    if artifact_type is None:
        raise ValueError(f"unknown SOCI index version {version!r}")
    if not ztoc_descriptors:
        raise ImageError("no ztocs created, all layers either skipped or produced errors")
    if version == "v1" and subject is None:
        raise ValueError("a SOCI v1 index needs the image manifest as subject")
    manifest = ImageManifest(
        schema_version=2,
        media_type=mt.MEDIA_TYPE_OCI_MANIFEST,
        config=Descriptor(media_type=artifact_type, digest=mt.EMPTY_JSON_DIGEST, size=len(mt.EMPTY_JSON_BLOB)),
        layers=tuple(ztoc_descriptors),
        subject=(
            Descriptor(media_type=subject.media_type, digest=subject.digest, size=subject.size)
            if version == "v1" and subject is not None else None
        ),
        annotations={mt.ANNOTATION_BUILD_TOOL_IDENTIFIER: build_tool_identifier},
    )
    data = manifest.dumps()
    from socikit.oci.digest import sha256_digest

    desc = Descriptor(
        media_type=mt.MEDIA_TYPE_OCI_MANIFEST, digest=sha256_digest(data), size=len(data), artifact_type=artifact_type
    )
    return data, desc


@dataclass(frozen=True, slots=True)
class SociIndex:
    """A parsed SOCI index."""

    version: str  # "v1" or "v2"
    manifest: ImageManifest

    @property
    def ztocs(self) -> tuple[Descriptor, ...]:
        return tuple(d for d in self.manifest.layer_list if d.media_type == mt.MEDIA_TYPE_ZTOC)

    @property
    def build_tool_identifier(self) -> str:
        return self.manifest.annotations.get(mt.ANNOTATION_BUILD_TOOL_IDENTIFIER, "")

    def to_json(self) -> dict[str, Any]:
        return self.manifest.to_json()


def parse_soci_index(data: bytes) -> SociIndex:
    """Parse index bytes; like the reference, only the v1/v2 config media types are accepted."""
    manifest = ImageManifest.from_json(data)
    for version, artifact_type in INDEX_VERSIONS.items():
        if manifest.config.media_type == artifact_type:
            return SociIndex(version=version, manifest=manifest)
    raise FormatError(f"not a SOCI index: config media type is {manifest.config.media_type!r}")

"""Media types, artifact types, annotation keys and defaults, verbatim from the OCI specs and
the reference `soci/soci_index.go` (values are wire data and must not change)."""

from __future__ import annotations

# OCI image-spec v1.1
MEDIA_TYPE_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_TYPE_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_TYPE_OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_TYPE_OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
MEDIA_TYPE_OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MEDIA_TYPE_OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
MEDIA_TYPE_OCI_LAYER_NONDIST = "application/vnd.oci.image.layer.nondistributable.v1.tar"
MEDIA_TYPE_OCI_LAYER_NONDIST_GZIP = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
MEDIA_TYPE_OCI_LAYER_NONDIST_ZSTD = "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
MEDIA_TYPE_OCI_EMPTY = "application/vnd.oci.empty.v1+json"

# Docker image manifest v2 schema 2
MEDIA_TYPE_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MEDIA_TYPE_DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MEDIA_TYPE_DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
MEDIA_TYPE_DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
MEDIA_TYPE_DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
MEDIA_TYPE_DOCKER_FOREIGN_LAYER_GZIP = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"

MANIFEST_MEDIA_TYPES = frozenset({MEDIA_TYPE_OCI_MANIFEST, MEDIA_TYPE_DOCKER_MANIFEST})
INDEX_MEDIA_TYPES = frozenset({MEDIA_TYPE_OCI_INDEX, MEDIA_TYPE_DOCKER_MANIFEST_LIST})

# SOCI (soci/soci_index.go)
ARTIFACT_TYPE_SOCI_INDEX_V1 = "application/vnd.amazon.soci.index.v1+json"
ARTIFACT_TYPE_SOCI_INDEX_V2 = "application/vnd.amazon.soci.index.v2+json"
MEDIA_TYPE_ZTOC = "application/octet-stream"
MEDIA_TYPE_SOCI_PREFETCH = "application/vnd.amazon.soci.prefetch.v1+json"

ANNOTATION_IMAGE_LAYER_MEDIA_TYPE = "com.amazon.soci.image-layer-mediaType"
ANNOTATION_IMAGE_LAYER_DIGEST = "com.amazon.soci.image-layer-digest"
ANNOTATION_SPAN_SIZE = "com.amazon.soci.span-size"
ANNOTATION_BUILD_TOOL_IDENTIFIER = "com.amazon.soci.build-tool-identifier"
ANNOTATION_DISABLE_XATTRS = "com.amazon.soci.disable-xattrs"
ANNOTATION_IMAGE_MANIFEST_DIGEST = "com.amazon.soci.image-manifest-digest"
ANNOTATION_INDEX_DIGEST = "com.amazon.soci.index-digest"
ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
# On a layer descriptor: the layer's TOC digest, by which podman >= 5.1 and CRI-O >= 1.31 ask an
# additional layer store for it (for SOCI: the layer's ztoc digest; `convert --toc-annotations`).
ANNOTATION_TOC_DIGEST = "containerd.io/snapshot/stargz/toc.digest"

# The 2-byte `{}` blob every SOCI index uses as its config.
EMPTY_JSON_BLOB = b"{}"
EMPTY_JSON_DIGEST = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"

DEFAULT_SPAN_SIZE = 1 << 22
DEFAULT_MIN_LAYER_SIZE = 10 << 20
REFERENCE_BUILD_TOOL_ID = "AWS SOCI CLI v0.2"
ZTOC_VERSION = "0.9"


def compression_of_layer(media_type: str) -> str | None:
    """The compression the reference derives from a layer media type (containerd
    `images.DiffCompression` + soci's mapping): "gzip", "uncompressed", "zstd", or None when the
    media type is not a layer type at all."""
    if media_type in (MEDIA_TYPE_DOCKER_LAYER_GZIP, MEDIA_TYPE_DOCKER_FOREIGN_LAYER_GZIP):
        return "gzip"
    if media_type == MEDIA_TYPE_DOCKER_LAYER:
        return "uncompressed"
    if media_type.startswith("application/vnd.oci.image.layer."):
        base, _, suffix = media_type.partition("+")
        if base not in ("application/vnd.oci.image.layer.v1.tar",
                        "application/vnd.oci.image.layer.nondistributable.v1.tar"):
            return None
        if suffix == "":
            return "uncompressed"
        if suffix == "gzip":
            return "gzip"
        if suffix == "zstd":
            return "zstd"
        return suffix
    return None

"""What a registry holds for an image: SOCI v2 indexes (annotations of the image's manifests) and
SOCI v1 indexes (referrers of each platform manifest), found the way the snapshotter finds them
(`socikit.soci.discover`). Every row has the index's size and the platform it serves."""

from __future__ import annotations

from typing import Any

from socikit.content.base import ImageSource, ReadsManifestsByDigest, ReadsReferrers
from socikit.content.reference import parse_reference
from socikit.errors import ImageError, ImageReferenceError
from socikit.oci import mediatypes as mt
from socikit.oci.descriptor import Descriptor
from socikit.oci.manifest import ImageConfig, ImageIndex, ImageManifest
from socikit.registry.options import RegistryOptions
from socikit.soci import discover
from socikit.transports import open_source


def list_remote_indexes(reference: str, options: RegistryOptions) -> list[dict[str, Any]]:
    ref = parse_reference(reference)
    if not ref.is_registry:
        raise ImageReferenceError(f"--remote needs a registry reference, not {reference}")
    with open_source(ref, registry_options=options) as source:
        if not isinstance(source, ReadsReferrers):
            raise ImageError(f"{reference}: this store cannot list referrers")
        root = source.resolve()
        data = source.read_blob(root)
        siblings: list[Descriptor] = []
        if root.media_type in mt.INDEX_MEDIA_TYPES:
            siblings = list(ImageIndex.from_json(data).entries)
            manifests = discover.platform_manifest_entries(siblings)
        else:
            manifests = [root]
        rows: list[dict[str, Any]] = []
        image_ref = str(ref)
        for entry in manifests:
            manifest = ImageManifest.from_json(source.read_blob(entry))
            platform = _platform(source, entry, manifest)
            v2 = discover.index_digest_annotation(manifest.annotations)
            if v2:
                rows.append({"digest": v2, "size": _v2_size(source, siblings, v2), "image_ref": image_ref,
                             "platform": platform, "media_type": mt.MEDIA_TYPE_OCI_MANIFEST,
                             "manifest": entry.digest, "version": "v2"})
            for referrer in discover.v1_indexes(source.referrers(entry.digest, discover.V1)):
                rows.append({"digest": referrer.digest, "size": referrer.size, "image_ref": image_ref,
                             "platform": platform, "media_type": referrer.media_type,
                             "manifest": entry.digest, "version": "v1"})
    return rows


def _platform(source: ImageSource, entry: Descriptor, manifest: ImageManifest) -> str:
    """The platform an image index names for a manifest, else (a single-manifest image) the one
    its config describes."""
    if entry.platform is not None:
        return str(entry.platform)
    return str(ImageConfig.from_json(source.read_blob(manifest.config)).platform())


def _v2_size(source: ImageSource, siblings: list[Descriptor], digest: str) -> int:
    """A SOCI v2 index's size: from its entry beside the image's manifests, else as the registry
    serves it."""
    for sibling in siblings:
        if sibling.digest == digest:
            return sibling.size
    if not isinstance(source, ReadsManifestsByDigest):
        raise ImageError(f"cannot read the SOCI index {digest}: this store reads manifests by descriptor only")
    data, _ = source.read_manifest(digest)
    return len(data)

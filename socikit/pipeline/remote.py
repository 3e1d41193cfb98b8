"""What a registry holds for an image: SOCI v2 indexes (annotations of the image's manifests) and
SOCI v1 indexes (referrers of each platform manifest), found the way the snapshotter finds them
(`socikit.soci.discover`)."""

from __future__ import annotations

from typing import Any

from socikit.content.base import ReadsReferrers
from socikit.content.reference import parse_reference
from socikit.errors import ImageError, ImageReferenceError
from socikit.oci import mediatypes as mt
from socikit.oci.manifest import ImageIndex, ImageManifest
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
        if root.media_type in mt.INDEX_MEDIA_TYPES:
            manifests = discover.platform_manifest_entries(ImageIndex.from_json(data).entries)
        else:
            manifests = [root]
        rows: list[dict[str, Any]] = []
        for entry in manifests:
            manifest = ImageManifest.from_json(source.read_blob(entry))
            platform = str(entry.platform) if entry.platform else ""
            v2 = discover.index_digest_annotation(manifest.annotations)
            if v2:
                rows.append({"digest": v2, "version": "v2", "manifest": entry.digest, "platform": platform,
                             "media_type": mt.MEDIA_TYPE_OCI_MANIFEST})
            for referrer in discover.v1_indexes(source.referrers(entry.digest, discover.V1)):
                rows.append({"digest": referrer.digest, "size": referrer.size, "version": "v1",
                             "manifest": entry.digest, "platform": platform, "media_type": referrer.media_type})
    return rows

"""What a registry holds for an image: SOCI v2 indexes (annotations of the image's manifests) and
SOCI v1 indexes (referrers of each platform manifest)."""

from __future__ import annotations

from typing import Any

from socikit.content.reference import parse_reference
from socikit.errors import ImageReferenceError
from socikit.oci import mediatypes as mt
from socikit.oci.manifest import ImageIndex, ImageManifest
from socikit.registry.store import RegistryOptions, open_registry_client


def list_remote_indexes(reference: str, options: RegistryOptions) -> list[dict[str, Any]]:
    ref = parse_reference(reference)
    if not ref.is_registry:
        raise ImageReferenceError(f"--remote needs a registry reference, not {reference}")
    client = open_registry_client(ref.host, options)
    data, root = client.get_manifest(ref.repository, ref.digest or ref.tag)
    manifests = []
    if root.media_type in mt.INDEX_MEDIA_TYPES:
        for entry in ImageIndex.from_json(data).entries:
            if entry.media_type in mt.MANIFEST_MEDIA_TYPES and not entry.artifact_type:
                manifests.append(entry)
    else:
        manifests.append(root)
    rows: list[dict[str, Any]] = []
    for entry in manifests:
        body, desc = client.get_manifest(ref.repository, entry.digest)
        manifest = ImageManifest.from_json(body)
        platform = str(entry.platform) if entry.platform else ""
        v2 = manifest.annotations.get(mt.ANNOTATION_INDEX_DIGEST)
        if v2:
            rows.append({"digest": v2, "version": "v2", "manifest": desc.digest, "platform": platform,
                         "media_type": mt.MEDIA_TYPE_OCI_MANIFEST})
        for referrer in client.referrers(ref.repository, desc.digest, mt.ARTIFACT_TYPE_SOCI_INDEX_V1):
            rows.append({"digest": referrer.digest, "size": referrer.size, "version": "v1", "manifest": desc.digest,
                         "platform": platform, "media_type": referrer.media_type})
    return rows

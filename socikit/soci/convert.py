"""The pure half of `soci convert` (fact sheet §6.2): given the image's root and manifests and the
SOCI v2 indexes built per platform, compute the rewritten manifests and the new OCI image index.
No I/O: the pipeline reads the inputs and writes the outputs."""

from __future__ import annotations

from dataclasses import dataclass

from socikit.oci import mediatypes as mt
from socikit.oci.descriptor import Descriptor, Platform
from socikit.oci.digest import sha256_digest
from socikit.oci.manifest import ImageIndex, ImageManifest
from socikit.oci.platform import matches


@dataclass(frozen=True, slots=True)
class ConvertedImage:
    manifests: tuple[tuple[Descriptor, bytes], ...]  # rewritten manifests, in index order
    index: Descriptor
    index_bytes: bytes
    manifest_map: tuple[tuple[str, Descriptor], ...]  # source manifest digest -> rewritten descriptor


def _rewrite_manifest(data: bytes, soci_index_digest: str | None) -> bytes:
    manifest = ImageManifest.from_json(data)
    annotations = dict(manifest.annotations)
    if soci_index_digest is not None:
        annotations[mt.ANNOTATION_INDEX_DIGEST] = soci_index_digest
    rewritten = manifest.with_changes(
        media_type=mt.MEDIA_TYPE_OCI_MANIFEST,
        config=manifest.config.with_changes(media_type=mt.MEDIA_TYPE_OCI_CONFIG),
        annotations=annotations,
    )
    return rewritten.dumps()


def convert_to_v2(
    *,
    root: Descriptor,
    root_bytes: bytes,
    root_platform: Platform | None,
    manifests: dict[str, bytes],
    soci_indexes: list[tuple[Descriptor, Platform, Descriptor]],
) -> ConvertedImage:
    """`soci_indexes`: (source manifest descriptor, build platform, SOCI v2 index descriptor)."""
    if root.media_type in mt.INDEX_MEDIA_TYPES:
        index = ImageIndex.from_json(root_bytes).with_changes(media_type=mt.MEDIA_TYPE_OCI_INDEX)
        entries = list(index.entries)
    else:
        index = ImageIndex(schema_version=2, media_type=mt.MEDIA_TYPE_OCI_INDEX, manifests=())
        entries = [Descriptor(media_type=root.media_type, digest=root.digest, size=root.size, platform=root_platform)]
    soci_by_manifest = {m.digest: s.digest for m, _p, s in soci_indexes}
    rewritten: list[tuple[Descriptor, bytes]] = []
    mapping: list[tuple[str, Descriptor]] = []
    for i, entry in enumerate(entries):
        if entry.artifact_type == mt.ARTIFACT_TYPE_SOCI_INDEX_V2:
            continue  # a SOCI index from an earlier conversion: replaced below
        if entry.media_type not in mt.MANIFEST_MEDIA_TYPES or entry.digest not in manifests:
            continue  # nested indexes and manifests not present locally are left untouched
        data = _rewrite_manifest(manifests[entry.digest], soci_by_manifest.get(entry.digest))
        new_manifest = ImageManifest.from_json(data)
        new_entry = entry.with_changes(
            media_type=mt.MEDIA_TYPE_OCI_MANIFEST,
            digest=sha256_digest(data),
            size=len(data),
            annotations=dict(new_manifest.annotations),
        )
        entries[i] = new_entry
        rewritten.append((new_entry, data))
        mapping.append((entry.digest, new_entry))
    new_digest = dict(mapping)
    for manifest_desc, platform, soci_desc in soci_indexes:
        soci_entry = Descriptor(
            media_type=mt.MEDIA_TYPE_OCI_MANIFEST,
            digest=soci_desc.digest,
            size=soci_desc.size,
            annotations={mt.ANNOTATION_IMAGE_MANIFEST_DIGEST: new_digest[manifest_desc.digest].digest},
            platform=platform,
            artifact_type=mt.ARTIFACT_TYPE_SOCI_INDEX_V2,
        )
        for j, existing in enumerate(entries):
            if (
                existing.artifact_type == mt.ARTIFACT_TYPE_SOCI_INDEX_V2
                and existing.platform is not None
                and matches(existing.platform, platform)
                and matches(platform, existing.platform)
            ):
                entries[j] = soci_entry
                break
        else:
            entries.append(soci_entry)
    new_index = index.with_changes(manifests=tuple(entries))
    index_bytes = new_index.dumps()
    index_desc = Descriptor(media_type=mt.MEDIA_TYPE_OCI_INDEX, digest=sha256_digest(index_bytes), size=len(index_bytes))
    return ConvertedImage(tuple(rewritten), index_desc, index_bytes, tuple(mapping))

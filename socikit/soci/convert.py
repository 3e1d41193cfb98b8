"""The pure half of `soci convert` (fact sheet §6.2; reference `soci/soci_convert.go`): given the
image's root and manifests and the SOCI v2 indexes built per platform, compute the rewritten
manifests and the new OCI image index. No I/O: the pipeline reads the inputs and writes the outputs.

Steps, as the reference takes them:
1. The root becomes an OCI index: an index or manifest list is parsed (Go struct round trip) and
   gets the OCI index media type; a single manifest becomes the only entry of a new index, with the
   platform of its config.
2. Every entry whose manifest is available is parsed, given the OCI manifest media type and the OCI
   config media type, annotated with `com.amazon.soci.index-digest` when a SOCI index was built
   from it, and re-serialized; the entry takes the new digest and size, the OCI manifest media
   type and the manifest's annotations (its own annotations are dropped). Entries whose manifest
   is not available are left alone, unless a SOCI index was built from them (an error).
3. Each SOCI index gets an entry (artifactType, build platform, `image-manifest-digest`) that
   replaces an existing SOCI v2 entry of the same platform or is appended.

socikit's addition, off unless asked (`toc_digests`): in step 2 each indexed layer descriptor of
an indexed manifest also gets `containerd.io/snapshot/stargz/toc.digest` = its ztoc's digest,
which podman >= 5.1 and CRI-O >= 1.31 need before they ask an additional layer store for a layer.

Two deliberate departures from the reference, both on inputs it mishandles: nested indexes are
left alone (the reference would swap one for its first child manifest), and existing SOCI v2
entries are not rewritten as image manifests (the reference retypes their config, which breaks
the ones it does not replace in step 3).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from socikit.errors import ImageError
from socikit.oci import mediatypes as mt
from socikit.oci.descriptor import Descriptor, Platform
from socikit.oci.digest import sha256_digest
from socikit.oci.manifest import ImageIndex, ImageManifest, validate_media_type
from socikit.oci.platform import format_platform, matches, normalize


@dataclass(frozen=True, slots=True)
class BuiltSociIndex:
    """One SOCI v2 index built for a platform of the image.

    `manifest_digest` is the digest of the *source* image manifest it indexes; `platform` is the
    build platform exactly as it should be recorded (for `--all-platforms` the index entry's
    platform, for `--platform X` containerd's parse of X, for a single-manifest image its config
    platform); `descriptor` is the index's descriptor from `build_soci_index`."""

    manifest_digest: str
    platform: Platform
    descriptor: Descriptor


@dataclass(frozen=True, slots=True)
class ConvertedImage:
    manifests: tuple[tuple[Descriptor, bytes], ...]  # rewritten manifests, in index order, no duplicates
    index: Descriptor  # the converted OCI index (what the destination tag points at)
    index_bytes: bytes
    manifest_map: tuple[tuple[str, Descriptor], ...]  # source manifest digest -> rewritten entry

    @property
    def manifest_bytes(self) -> dict[str, bytes]:
        """Rewritten manifests by their new digest."""
        return {desc.digest: data for desc, data in self.manifests}


def rewrite_manifest(data: bytes, soci_index_digest: str | None,
                     toc_digests: Mapping[str, str] | None = None) -> bytes:
    """An image manifest as the converter re-writes it: OCI manifest and OCI config media types
    (layer media types unchanged), plus the `index-digest` annotation when given; Go bytes.
    `toc_digests` (layer digest -> ztoc digest): those layers also get the TOC-digest annotation."""
    manifest = ImageManifest.from_json(data)
    annotations = dict(manifest.annotations)
    if soci_index_digest is not None:
        annotations[mt.ANNOTATION_INDEX_DIGEST] = soci_index_digest
    changes: dict[str, object] = {}
    if toc_digests:
        changes["layers"] = tuple(
            layer.with_changes(annotations={**layer.annotations, mt.ANNOTATION_TOC_DIGEST: toc_digests[layer.digest]})
            if layer.digest in toc_digests else layer
            for layer in manifest.layer_list
        )
    return manifest.with_changes(
        media_type=mt.MEDIA_TYPE_OCI_MANIFEST,
        config=manifest.config.with_changes(media_type=mt.MEDIA_TYPE_OCI_CONFIG),
        annotations=annotations,
        **changes,
    ).dumps()


def _start_index(root: Descriptor, root_bytes: bytes, root_platform: Platform | None) -> ImageIndex:
    if root.media_type in mt.INDEX_MEDIA_TYPES:
        validate_media_type(root_bytes, root.media_type)
        return ImageIndex.from_json(root_bytes).with_changes(media_type=mt.MEDIA_TYPE_OCI_INDEX)
    if root.media_type not in mt.MANIFEST_MEDIA_TYPES:
        raise ImageError(
            f"{root.digest} has media type {root.media_type!r}: neither an image manifest nor an index"
        )
    if root_platform is None:
        raise ValueError("a single-manifest image needs its platform (from the image config)")
    return ImageIndex(
        schema_version=2,
        media_type=mt.MEDIA_TYPE_OCI_INDEX,
        manifests=(root.with_changes(platform=root_platform),),
    )


def _as_built(item: BuiltSociIndex | tuple[Descriptor, Platform, Descriptor]) -> BuiltSociIndex:
    if isinstance(item, BuiltSociIndex):
        return item
    manifest_desc, platform, soci_desc = item
    return BuiltSociIndex(manifest_desc.digest, platform, soci_desc)


def convert_to_v2(
    *,
    root: Descriptor,
    root_bytes: bytes,
    root_platform: Platform | None,
    manifests: Mapping[str, bytes],
    soci_indexes: Sequence[BuiltSociIndex | tuple[Descriptor, Platform, Descriptor]],
    toc_digests: Mapping[str, Mapping[str, str]] | None = None,
) -> ConvertedImage:
    """Bundle an image and its SOCI v2 indexes into one OCI image index.

    `root`/`root_bytes`: what the source reference resolves to (an index, a manifest list or a
    single manifest). `root_platform`: the platform of a single-manifest image, from its config
    (`ImageConfig.platform()`); ignored for indexes. `manifests`: every manifest of the image that
    is available, by digest (for a single-manifest image, the root itself). `soci_indexes`: the
    built SOCI v2 indexes in build order, as BuiltSociIndex or (source manifest descriptor, build
    platform, SOCI index descriptor) tuples. `toc_digests`: source manifest digest -> (layer digest
    -> ztoc digest) of the layers to annotate with their TOC digest (`convert --toc-annotations`).
    Raises ImageError / FormatError."""
    built = [_as_built(item) for item in soci_indexes]
    index = _start_index(root, root_bytes, root_platform)
    entries = list(index.entries)
    if root.media_type in mt.MANIFEST_MEDIA_TYPES and root.digest not in manifests:
        manifests = {**manifests, root.digest: root_bytes}

    # Step 2: the image manifests.
    manifest_digest_of_soci: dict[int, str] = {}  # position in `built` -> rewritten manifest digest
    rewritten: dict[str, tuple[Descriptor, bytes]] = {}
    mapping: dict[str, Descriptor] = {}
    for i, entry in enumerate(entries):
        soci = next((k for k, b in enumerate(built) if b.manifest_digest == entry.digest), None)
        if entry.artifact_type == mt.ARTIFACT_TYPE_SOCI_INDEX_V2:
            continue  # from an earlier conversion; replaced in step 3 or kept as it is
        data = manifests.get(entry.digest) if entry.media_type in mt.MANIFEST_MEDIA_TYPES else None
        if data is None:
            if soci is not None:
                raise ImageError(
                    f"the manifest {entry.digest} ({format_platform(built[soci].platform)}) was indexed "
                    "but is not available"
                )
            continue  # e.g. a platform that was never pulled: left as it is
        validate_media_type(data, entry.media_type)
        new_data = rewrite_manifest(data, built[soci].descriptor.digest if soci is not None else None,
                                    (toc_digests or {}).get(entry.digest) if soci is not None else None)
        new_entry = entry.with_changes(
            media_type=mt.MEDIA_TYPE_OCI_MANIFEST,
            digest=sha256_digest(new_data),
            size=len(new_data),
            annotations=dict(ImageManifest.from_json(new_data).annotations),
        )
        entries[i] = new_entry
        rewritten.setdefault(new_entry.digest, (new_entry, new_data))
        mapping[entry.digest] = new_entry
        if soci is not None:
            manifest_digest_of_soci[soci] = new_entry.digest

    # Step 3: the SOCI index entries.
    for k, item in enumerate(built):
        annotations = {}
        if k in manifest_digest_of_soci:
            annotations[mt.ANNOTATION_IMAGE_MANIFEST_DIGEST] = manifest_digest_of_soci[k]
        soci_entry = Descriptor(
            media_type=item.descriptor.media_type or mt.MEDIA_TYPE_OCI_MANIFEST,
            digest=item.descriptor.digest,
            size=item.descriptor.size,
            annotations=annotations,
            platform=item.platform,
            artifact_type=mt.ARTIFACT_TYPE_SOCI_INDEX_V2,
        )
        wanted = normalize(item.platform)
        for j, existing in enumerate(entries):
            if (
                existing.artifact_type == mt.ARTIFACT_TYPE_SOCI_INDEX_V2
                and existing.platform is not None
                and matches(wanted, existing.platform)
            ):
                entries[j] = soci_entry
                break
        else:
            entries.append(soci_entry)

    index_bytes = index.with_changes(manifests=tuple(entries)).dumps()
    index_desc = Descriptor(mt.MEDIA_TYPE_OCI_INDEX, sha256_digest(index_bytes), len(index_bytes))
    return ConvertedImage(tuple(rewritten.values()), index_desc, index_bytes, tuple(mapping.items()))

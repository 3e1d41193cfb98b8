"""The checks over an image graph (fact sheet §5–§7): pure, nothing is read here.

In report order: the image index and its manifests (schemas; for a converted image Go-canonical
bytes, media types and entry annotations), then each SOCI v2 index as the manifests and the
index's entries lead to it (`v2-links`, then the index and its ztocs), then each SOCI v1 index as
it was found (`v1-discoverable`, `v1-subject`, then the index and its ztocs). Each SOCI index is
checked once, each ztoc decoded once; every (ztoc, layer) pair whose ztoc names a layer of its
manifest becomes a job for the deep scan. Last, for manifests whose layers carry TOC-digest
annotations (`convert --toc-annotations`, for podman >= 5.1 and CRI-O), `toc-digest`: each names
the ztoc a SOCI index found for that manifest has for the layer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from socikit.errors import FormatError, ImageError
from socikit.oci import mediatypes as mt
from socikit.oci.descriptor import Descriptor
from socikit.oci.manifest import ImageManifest
from socikit.soci import discover
from socikit.validate.checks import (
    check_go_canonical,
    check_index_media_types,
    check_schema,
    check_ztoc_annotations,
    check_ztoc_decodes,
    check_ztoc_layer,
    check_ztoc_size,
    check_ztoc_span_size,
    find_layer,
    platform_text,
    platforms_match,
    short,
)
from socikit.validate.graph import (
    ImageGraph,
    JsonDoc,
    JsonRead,
    PlatformImage,
    V1Index,
    V1Listing,
    readable_image,
    soci_entry_for,
    subject_descriptor,
    ztoc_descriptors,
)
from socikit.validate.prefetch import check_prefetch_artifacts
from socikit.validate.report import (
    ANNOTATIONS,
    MEDIA_TYPES,
    SCHEMA,
    TOC_DIGEST,
    V1_DISCOVERABLE,
    V1_SUBJECT,
    V2_LINKS,
    CheckResult,
)
from socikit.validate.schemafiles import IMAGE_INDEX, IMAGE_MANIFEST, SOCI_INDEX_V1, SOCI_INDEX_V2
from socikit.ztoc.model import Ztoc

_CANONICAL_INDEX = "the soci-snapshotter re-encodes a fetched index and refuses to store one whose bytes differ"
_CANONICAL_CONVERTED = "not the bytes soci convert writes (Go's encoding)"


@dataclass(slots=True)
class CheckedIndex:
    """A SOCI index that was checked: the manifest whose layers it indexes (None when unknown)
    and its ztocs (None for one that does not decode)."""

    version: str  # "v1" | "v2"
    doc: JsonDoc
    image: PlatformImage | None
    ztocs: list[tuple[Descriptor, Ztoc | None]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class LayerJob:
    """A layer to stream for the deep checks, with the ztoc that claims to index it."""

    ztoc_digest: str
    ztoc: Ztoc
    layer: Descriptor


@dataclass(slots=True)
class Findings:
    """The results of the checks over the graph, in report order, and what the verdict and the
    deep scan need of them."""

    results: list[CheckResult] = field(default_factory=list)
    v2: list[CheckedIndex] = field(default_factory=list)
    v1: list[CheckedIndex] = field(default_factory=list)
    layer_jobs: list[LayerJob] = field(default_factory=list)


def subject(kind: str, desc: Descriptor) -> str:
    """How a report names an artifact: its kind and digest."""
    return f"{kind} {desc.digest}"


def check_graph(graph: ImageGraph) -> Findings:
    """Every check over the artifacts `graph` holds (the deep checks excepted)."""
    checker = _Checker(graph)
    if graph.is_index:
        checker.image_index(graph.root_doc)
    else:
        checker.manifest_schemas()
    checker.v2_indexes()
    checker.v1_indexes()
    checker.toc_digests()
    return checker.findings


class _Checker:
    def __init__(self, graph: ImageGraph) -> None:
        self.graph = graph
        self.findings = Findings()
        self.ztocs_reported: set[str] = set()
        self.jobs_seen: set[tuple[str, str]] = set()

    def add(self, result: CheckResult) -> None:
        self.findings.results.append(result)

    # -- the image ------------------------------------------------------------------------------

    def manifest_schemas(self) -> None:
        for image in self.graph.images:
            if image.doc is not None:
                self.add(
                    check_schema(IMAGE_MANIFEST, image.doc.obj, subject("manifest", image.entry), why=image.doc.why)
                )

    def image_index(self, doc: JsonDoc) -> None:
        index_subject = subject("image index", doc.desc)
        self.add(check_schema(IMAGE_INDEX, doc.obj, index_subject, why=doc.why))
        if doc.obj is None:
            return
        self.manifest_schemas()
        linked = {t for t in (_index_digest(i.manifest) for i in self.graph.images) if t is not None}
        converted = any(e.artifact_type == mt.ARTIFACT_TYPE_SOCI_INDEX_V2 for e in self.graph.index_entries)
        if not converted and not linked:
            return
        # soci convert wrote this index and re-serialized every manifest it names.
        self.add(check_go_canonical(doc.data, doc.obj, "index", index_subject, _CANONICAL_CONVERTED))
        problems = []
        if doc.obj.get("mediaType") != mt.MEDIA_TYPE_OCI_INDEX:
            problems.append(f"mediaType is {doc.obj.get('mediaType')!r}, expected {mt.MEDIA_TYPE_OCI_INDEX!r}")
        self.add(CheckResult(MEDIA_TYPES, not problems, "; ".join(problems) or "OCI image index", index_subject))
        for image in self.graph.images:
            self.converted_manifest(image)

    def converted_manifest(self, image: PlatformImage) -> None:
        if image.doc is None or image.manifest is None:
            return
        manifest_subject = subject("manifest", image.entry)
        self.add(check_go_canonical(image.doc.data, image.doc.obj, "manifest", manifest_subject, _CANONICAL_CONVERTED))
        # soci convert replaces an entry's annotations with its manifest's own.
        if dict(image.entry.annotations) != dict(image.manifest.annotations):
            self.add(
                CheckResult(
                    ANNOTATIONS,
                    False,
                    "the image index entry's annotations differ from the "
                    "manifest's (soci convert copies the manifest's)",
                    manifest_subject,
                )
            )
        else:
            self.add(CheckResult(ANNOTATIONS, True, "entry annotations equal the manifest's", manifest_subject))
        if mt.ANNOTATION_INDEX_DIGEST in image.manifest.annotations:
            problems = []
            if image.manifest.media_type != mt.MEDIA_TYPE_OCI_MANIFEST:
                problems.append(f"mediaType is {image.manifest.media_type!r}")
            if image.entry.media_type != mt.MEDIA_TYPE_OCI_MANIFEST:
                problems.append(f"its index entry's mediaType is {image.entry.media_type!r}")
            if image.manifest.config.media_type != mt.MEDIA_TYPE_OCI_CONFIG:
                problems.append(f"config mediaType is {image.manifest.config.media_type!r}")
            self.add(
                CheckResult(
                    MEDIA_TYPES, not problems, "; ".join(problems) or "OCI manifest and config", manifest_subject
                )
            )

    # -- SOCI v2 --------------------------------------------------------------------------------

    def v2_indexes(self) -> None:
        graph = self.graph
        checked: dict[str, CheckedIndex] = {}
        unreadable: set[str] = set()
        for image in graph.images:
            target = _index_digest(image.manifest)
            if target is None:
                continue
            manifest_subject = subject("manifest", image.entry)
            entry = soci_entry_for(graph.soci_entries, target, image)
            if entry is None and graph.index_entries:
                self.add(
                    CheckResult(
                        V2_LINKS,
                        False,
                        f"index-digest {short(target)} names no entry of the image index (dangling)",
                        manifest_subject,
                    )
                )
                continue
            doc = graph.v2_reads[target]
            if entry is None:
                if isinstance(doc, str):
                    self.add(
                        CheckResult(V2_LINKS, False, f"index-digest names a missing index: {doc}", manifest_subject)
                    )
                    continue
                self.add(
                    CheckResult(
                        V2_LINKS,
                        True,
                        f"index-digest {short(target)} resolves (no image index: one-way link)",
                        manifest_subject,
                    )
                )
            else:
                self.add(self.v2_link(image, entry, target, manifest_subject))
                if target in checked or target in unreadable:
                    continue
                if isinstance(doc, str):
                    unreadable.add(target)
                    self.add(
                        CheckResult(
                            SCHEMA, False, f"the SOCI index cannot be read: {doc}", subject("SOCI index", entry)
                        )
                    )
                    continue
            if target not in checked:
                checked[target] = self.soci_index("v2", doc, entry, image)
        images_by_digest = {i.entry.digest: i for i in graph.images}
        for entry in graph.soci_entries:
            if entry.artifact_type == mt.ARTIFACT_TYPE_SOCI_INDEX_V1:
                continue
            back = discover.indexed_manifest_digest(entry) or ""
            linked = images_by_digest.get(back)
            entry_subject = subject("SOCI index", entry)
            if linked is None or linked.manifest is None:
                self.add(
                    CheckResult(
                        V2_LINKS,
                        False,
                        f"image-manifest-digest {back!r} names no manifest of the image index",
                        entry_subject,
                    )
                )
            elif _index_digest(linked.manifest) != entry.digest:
                self.add(
                    CheckResult(
                        V2_LINKS,
                        False,
                        f"manifest {short(back)} does not point back at this index with index-digest",
                        entry_subject,
                    )
                )
            if entry.digest in checked or entry.digest in unreadable:
                continue
            doc = graph.v2_reads[entry.digest]
            if isinstance(doc, str):
                self.add(CheckResult(SCHEMA, False, f"the SOCI index cannot be read: {doc}", entry_subject))
                continue
            checked[entry.digest] = self.soci_index("v2", doc, entry, linked)
        self.findings.v2 = list(checked.values())

    def v2_link(self, image: PlatformImage, entry: Descriptor, target: str, manifest_subject: str) -> CheckResult:
        """The manifest's index-digest names `entry`: it must point back, for the same platform."""
        problems = []
        back = discover.indexed_manifest_digest(entry)
        if back != image.entry.digest:
            problems.append(f"the SOCI entry's image-manifest-digest is {back!r}")
        if not platforms_match(entry.platform, image.platform):
            problems.append(
                f"platforms differ: SOCI entry {platform_text(entry.platform) or 'none'}, "
                f"manifest {platform_text(image.platform) or 'none'}"
            )
        return CheckResult(
            V2_LINKS,
            not problems,
            "; ".join(problems) or f"<-> SOCI index {short(target)} ({platform_text(entry.platform)})",
            manifest_subject,
        )

    # -- SOCI v1 --------------------------------------------------------------------------------

    def v1_indexes(self) -> None:
        for listing in self.graph.v1_listings:
            if listing.error and listing.image is not None:
                self.add(CheckResult(V1_DISCOVERABLE, False, listing.error, subject("manifest", listing.image.entry)))
            for index in listing.indexes:
                self.v1_index(listing, index)

    def v1_index(self, listing: V1Listing, index: V1Index) -> None:
        index_subject = subject("SOCI v1 index", index.desc)
        if listing.image is None:  # listed in an OCI layout's index.json
            if index.desc.artifact_type == mt.ARTIFACT_TYPE_SOCI_INDEX_V1:
                self.add(
                    CheckResult(V1_DISCOVERABLE, True, "listed in index.json with its artifactType", index_subject)
                )
            else:
                self.add(
                    CheckResult(
                        V1_DISCOVERABLE,
                        False,
                        "listed in index.json without artifactType "
                        f"{mt.ARTIFACT_TYPE_SOCI_INDEX_V1}: referrer queries cannot find it",
                        index_subject,
                    )
                )
        else:
            self.add(
                CheckResult(
                    V1_DISCOVERABLE,
                    True,
                    f"a referrer of {short(listing.image.entry.digest)} (Referrers API or fallback tag)",
                    index_subject,
                )
            )
        if isinstance(index.doc, str):
            self.add(CheckResult(SCHEMA, False, f"the SOCI index cannot be read: {index.doc}", index_subject))
            return
        image = self.v1_subject(index.doc, index.subject, index_subject, listing.image)
        self.findings.v1.append(self.soci_index("v1", index.doc, index.desc, image))

    def v1_subject(
        self, doc: JsonDoc, subject_doc: JsonRead | None, index_subject: str, expected: PlatformImage | None
    ) -> PlatformImage | None:
        """The manifest a v1 index's subject names (None, with the failure reported, when it is
        not an image manifest of this image or cannot be resolved)."""
        target = subject_descriptor(doc.obj)
        if target is None:
            self.add(CheckResult(V1_SUBJECT, False, "has no usable subject descriptor", index_subject))
            return None
        if expected is not None and target.digest != expected.entry.digest:
            self.add(
                CheckResult(
                    V1_SUBJECT,
                    False,
                    f"subject {short(target.digest)} is not the manifest it was "
                    f"listed for ({short(expected.entry.digest)})",
                    index_subject,
                )
            )
            return None
        known = readable_image(self.graph.images, target.digest)
        if known is not None:
            if known.entry.size != target.size:
                self.add(
                    CheckResult(
                        V1_SUBJECT,
                        False,
                        f"subject size {target.size}, manifest is {known.entry.size} bytes",
                        index_subject,
                    )
                )
                return None
            self.add(
                CheckResult(
                    V1_SUBJECT, True, f"subject {short(target.digest)} is a manifest of the image", index_subject
                )
            )
            return known
        if not isinstance(subject_doc, JsonDoc):  # collect reads every subject not of the image
            self.add(
                CheckResult(
                    V1_SUBJECT,
                    False,
                    f"subject {short(target.digest)} does not resolve: {subject_doc or 'it was not read'}",
                    index_subject,
                )
            )
            return None
        try:
            manifest = ImageManifest.from_json(subject_doc.obj or {})
        except FormatError as exc:
            self.add(CheckResult(V1_SUBJECT, False, f"subject is not an image manifest: {exc}", index_subject))
            return None
        if target.media_type not in mt.MANIFEST_MEDIA_TYPES:
            self.add(
                CheckResult(
                    V1_SUBJECT,
                    False,
                    f"subject mediaType {target.media_type!r} is not an image manifest type",
                    index_subject,
                )
            )
            return None
        self.add(
            CheckResult(
                V1_SUBJECT, True, f"subject {short(target.digest)} resolves to an image manifest", index_subject
            )
        )
        return PlatformImage(target, subject_doc, None, manifest)

    # -- TOC-digest annotations ----------------------------------------------------------------

    def toc_digests(self) -> None:
        """Each manifest with TOC-digest annotations on its layers: every one names the ztoc that a
        SOCI index of that manifest (v2 or v1, as found above) lists for the layer."""
        ztocs_of: dict[str, dict[str, set[str]]] = {}  # manifest digest -> layer digest -> ztoc digests
        for checked in (*self.findings.v2, *self.findings.v1):
            if checked.image is None:
                continue
            layers = ztocs_of.setdefault(checked.image.entry.digest, {})
            for desc, _ in checked.ztocs:
                layer = desc.annotations.get(mt.ANNOTATION_IMAGE_LAYER_DIGEST)
                if layer:
                    layers.setdefault(layer, set()).add(desc.digest)
        for image in self.graph.images:
            if image.manifest is None:
                continue
            annotated = [(layer.digest, layer.annotations[mt.ANNOTATION_TOC_DIGEST])
                         for layer in image.manifest.layer_list if mt.ANNOTATION_TOC_DIGEST in layer.annotations]
            if not annotated:
                continue
            indexed = ztocs_of.get(image.entry.digest)
            problems = []
            for layer, toc in annotated:
                wanted = (indexed or {}).get(layer, set())
                if toc in wanted:
                    continue
                if indexed is None:
                    problems.append(f"layer {short(layer)}: toc.digest {short(toc)}, but no SOCI index of the "
                                    "manifest was found")
                elif not wanted:
                    problems.append(f"layer {short(layer)}: toc.digest {short(toc)}, but the SOCI index has no "
                                    "ztoc for the layer")
                else:
                    problems.append(f"layer {short(layer)}: toc.digest {short(toc)} is not its ztoc "
                                    f"{', '.join(short(d) for d in sorted(wanted))}")
            reason = "; ".join(problems) or f"{len(annotated)} layers' toc.digest name their ztocs"
            self.add(CheckResult(TOC_DIGEST, not problems, reason, subject("manifest", image.entry)))

    # -- one SOCI index -------------------------------------------------------------------------

    def soci_index(
        self, version: str, doc: JsonDoc, entry: Descriptor | None, image: PlatformImage | None
    ) -> CheckedIndex:
        index_subject = subject(f"SOCI {version} index", doc.desc)
        artifact_type = mt.ARTIFACT_TYPE_SOCI_INDEX_V1 if version == "v1" else mt.ARTIFACT_TYPE_SOCI_INDEX_V2
        index = CheckedIndex(version, doc, image)
        self.add(check_schema(SOCI_INDEX_V1 if version == "v1" else SOCI_INDEX_V2, doc.obj, index_subject, why=doc.why))
        self.add(check_go_canonical(doc.data, doc.obj, "soci-index", index_subject, _CANONICAL_INDEX))
        if doc.obj is None:
            return index
        self.add(check_index_media_types(doc.obj, entry, artifact_type, index_subject))
        layers = image.manifest.layer_list if image is not None and image.manifest is not None else None
        for desc in ztoc_descriptors(doc.obj):
            index.ztocs.append((desc, self.ztoc(desc, layers, index_subject)))
        for result in check_prefetch_artifacts(doc.obj, index.ztocs, layers, self.prefetch_bytes, index_subject):
            self.add(result)
        return index

    def prefetch_bytes(self, desc: Descriptor) -> bytes:
        """A prefetch artifact as `collect` read it."""
        read = self.graph.prefetches.get(desc.digest, f"{desc.digest} was not read")
        if isinstance(read, str):
            raise ImageError(read)
        return read

    def ztoc(self, desc: Descriptor, layers: tuple[Descriptor, ...] | None, index_subject: str) -> Ztoc | None:
        ztoc_subject = f"ztoc {short(desc.digest)} in {index_subject}"
        read = self.graph.ztocs[desc.digest]
        if desc.digest not in self.ztocs_reported:
            self.ztocs_reported.add(desc.digest)
            self.add(check_ztoc_decodes(read.ztoc, read.why, subject("ztoc", desc)))
        ztoc = read.ztoc
        if ztoc is None:
            return None
        self.add(check_ztoc_annotations(desc, ztoc, ztoc_subject))
        self.add(check_ztoc_span_size(desc, ztoc, ztoc_subject))
        if layers is None:
            return ztoc  # the image manifest is unknown: reported by the link/subject checks
        self.add(check_ztoc_layer(desc, ztoc, layers, ztoc_subject))
        layer = find_layer(desc, layers)
        if layer is None:
            return ztoc
        self.add(check_ztoc_size(ztoc, layer, ztoc_subject))
        if (desc.digest, layer.digest) not in self.jobs_seen:
            self.jobs_seen.add((desc.digest, layer.digest))
            self.findings.layer_jobs.append(LayerJob(desc.digest, ztoc, layer))
        return ztoc


def _index_digest(manifest: ImageManifest | None) -> str | None:
    return discover.index_digest_annotation(manifest.annotations) if manifest is not None else None


__all__ = ["CheckedIndex", "Findings", "LayerJob", "check_graph", "subject"]

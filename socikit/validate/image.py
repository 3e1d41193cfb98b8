"""Validate a SOCI-enabled image read from any `ImageSource` (fact sheet §5–§7).

Reads the image's root (image index or manifest), finds its SOCI v2 indexes (through the
manifests' `com.amazon.soci.index-digest` annotations and the index's SOCI entries) and its SOCI
v1 indexes (Referrers API / fallback tag on a registry, index.json listing in an OCI layout),
checks every artifact, and with `deep`/`sample` streams each indexed layer once to check the
ztocs against the bytes. Returns a `Report`; never raises for a broken artifact.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from socikit.content.base import (
    HasBlobPaths,
    ImageSource,
    ListsManifests,
    OpensBlobsInWorkers,
    ReadsManifestsByDigest,
    ReadsReferrers,
)
from socikit.errors import FormatError, SocikitError
from socikit.oci import mediatypes as mt
from socikit.oci.descriptor import Descriptor, Platform
from socikit.oci.manifest import ImageConfig, ImageManifest
from socikit.soci import discover
from socikit.validate import checks as c
from socikit.validate import report as r
from socikit.validate import schemas as s
from socikit.validate.layerscan import LayerScan, Problems, scan_layer
from socikit.validate.report import CheckResult, ManifestVerdict, Report, Summary
from socikit.validate.reproduce import reproduce_layers
from socikit.ztoc.model import Ztoc

if TYPE_CHECKING:
    from socikit.registry.client import RegistryClient

_CANONICAL_INDEX = (
    "the soci-snapshotter re-encodes a fetched index and refuses to store one whose bytes differ"
)
_CANONICAL_CONVERTED = "not the bytes soci convert writes (Go's encoding)"


@dataclass
class _Json:
    """A JSON artifact as read: exact bytes plus its decoding (None if it does not decode)."""

    desc: Descriptor
    data: bytes
    obj: dict[str, Any] | None
    why: str = ""


@dataclass
class _Image:
    """One platform manifest of the image."""

    entry: Descriptor
    art: _Json | None
    platform: Platform | None
    manifest: ImageManifest | None = None
    read_error: str = ""


@dataclass
class _SociIndex:
    version: str  # "v1" | "v2"
    art: _Json
    image: _Image | None  # the manifest whose layers it indexes (None: unknown/unresolved)
    ztocs: list[tuple[Descriptor, Ztoc | None]] = field(default_factory=list)


class _Validator:
    def __init__(
        self,
        source: ImageSource,
        client: RegistryClient | None,
        repo: str | None,
        deep: bool,
        sample: int,
        reproduce: bool = True,
    ) -> None:
        self.source = source
        # Who answers "manifest by digest" and "referrers of": the client given, else the source.
        self.lookup: ReadsManifestsByDigest | None = None
        self.referrers: ReadsReferrers | None = None
        if client is not None and repo:
            self.lookup = self.referrers = _ClientLookup(client, repo)
        else:
            self.lookup = source if isinstance(source, ReadsManifestsByDigest) else None
            self.referrers = source if isinstance(source, ReadsReferrers) else None
        self.deep = deep
        self.sample = sample
        self.reproduce = reproduce
        self.results: list[CheckResult] = []
        self.ztoc_cache: dict[str, tuple[Ztoc | None, str]] = {}
        self.deep_jobs: dict[tuple[str, str], tuple[Ztoc, Descriptor, str]] = {}
        self.images: list[_Image] = []
        self.v2: list[_SociIndex] = []
        self.v1: list[_SociIndex] = []
        self.root_index_entries: list[Descriptor] = []
        self.soci_entries: list[Descriptor] = []
        self.unreadable: set[str] = set()
        self.stats: dict[str, int] = {
            "manifests": 0,
            "soci_indexes": 0,
            "ztocs": 0,
            "layers_scanned": 0,
            "layers_reproduced": 0,
            "bytes_scanned": 0,
            "files_checked": 0,
        }

    def add(self, result: CheckResult) -> None:
        self.results.append(result)

    # -- reading --------------------------------------------------------------------------------

    def read_json(self, desc: Descriptor) -> _Json | str:
        try:
            data = self.source.read_blob(desc)
        except SocikitError as exc:
            return str(exc)
        obj, why = c.decode_json(data)
        return _Json(desc, data, obj, why)

    def read_by_digest(self, digest: str) -> _Json | str:
        """A manifest known only by digest (a lone manifest's index-digest): sizes come from the
        store itself, since no descriptor states one."""
        if isinstance(self.source, HasBlobPaths):
            try:
                path = self.source.blob_path(digest)
                size = path.stat().st_size
            except (OSError, SocikitError):
                return f"{digest} is not in the image's store"
            return self.read_json(Descriptor(mt.MEDIA_TYPE_OCI_MANIFEST, digest, size))
        if self.lookup is not None:
            try:
                data, desc = self.lookup.read_manifest(digest)
            except SocikitError as exc:
                return str(exc)
            obj, why = c.decode_json(data)
            return _Json(desc, data, obj, why)
        return f"{digest} cannot be looked up by digest in this source"

    # -- the image ------------------------------------------------------------------------------

    def run(self) -> Report:
        try:
            root = self.source.resolve()
        except SocikitError as exc:
            self.add(CheckResult(r.SCHEMA, False, f"the image cannot be resolved: {exc}", "image"))
            return self.report("")
        art = self.read_json(root)
        if isinstance(art, str):
            self.add(
                CheckResult(r.SCHEMA, False, f"the image root cannot be read: {art}", _subject("image", root))
            )
            return self.report(root.digest)
        is_index = root.media_type in mt.INDEX_MEDIA_TYPES or (art.obj is not None and "manifests" in art.obj)
        if is_index:
            self.load_index(art)
        else:
            self.load_lone_manifest(art)
        self.check_v2()
        self.check_v1()
        self.run_deep()
        return self.report(root.digest)

    def load_index(self, art: _Json) -> None:
        subject = _subject("image index", art.desc)
        self.add(c.check_schema(s.IMAGE_INDEX, art.obj, subject, why=art.why))
        if art.obj is None:
            return
        entries = []
        for raw in art.obj.get("manifests") or []:
            try:
                entries.append(Descriptor.from_json(raw))
            except FormatError:
                continue  # reported by the schema check
        self.root_index_entries = entries
        linked = set()
        images = []
        for entry in entries:
            if not discover.is_image_entry(entry):
                continue  # SOCI indexes, nested indexes and foreign entries are not followed
            image = self.load_manifest(entry, entry.platform)
            images.append(image)
            target = discover.index_digest_annotation(image.manifest.annotations) if image.manifest else None
            if target is not None:
                linked.add(target)
        self.images = images
        self.soci_entries = discover.soci_index_entries(entries, linked)
        converted = any(e.artifact_type == mt.ARTIFACT_TYPE_SOCI_INDEX_V2 for e in entries) or bool(linked)
        if converted:
            # soci convert wrote this index and re-serialized every manifest it names.
            self.add(c.check_go_canonical(art.data, art.obj, "index", subject, _CANONICAL_CONVERTED))
            problems = []
            if art.obj.get("mediaType") != mt.MEDIA_TYPE_OCI_INDEX:
                problems.append(
                    f"mediaType is {art.obj.get('mediaType')!r}, expected {mt.MEDIA_TYPE_OCI_INDEX!r}"
                )
            self.add(
                CheckResult(r.MEDIA_TYPES, not problems, "; ".join(problems) or "OCI image index", subject)
            )
            for image in images:
                self.check_converted_manifest(image)

    def load_manifest(self, entry: Descriptor, platform: Platform | None) -> _Image:
        self.stats["manifests"] += 1
        art = self.read_json(entry)
        if isinstance(art, str):
            return _Image(entry, None, platform, read_error=art)
        subject = _subject("manifest", entry)
        self.add(c.check_schema(s.IMAGE_MANIFEST, art.obj, subject, why=art.why))
        manifest = None
        if art.obj is not None:
            try:
                manifest = ImageManifest.from_json(art.obj)
            except FormatError:
                manifest = None
        return _Image(entry, art, platform, manifest)

    def load_lone_manifest(self, art: _Json) -> None:
        platform = None
        image = self.load_manifest(art.desc, None)
        if image.manifest is not None:
            try:
                platform = ImageConfig.from_json(self.source.read_blob(image.manifest.config)).platform()
            except SocikitError:
                platform = None
        image.platform = platform
        self.images = [image]
        self.soci_entries = []

    def check_converted_manifest(self, image: _Image) -> None:
        if image.art is None or image.manifest is None:
            return
        subject = _subject("manifest", image.entry)
        self.add(
            c.check_go_canonical(image.art.data, image.art.obj, "manifest", subject, _CANONICAL_CONVERTED)
        )
        # soci convert replaces an entry's annotations with its manifest's own.
        if dict(image.entry.annotations) != dict(image.manifest.annotations):
            self.add(
                CheckResult(
                    r.ANNOTATIONS,
                    False,
                    "the image index entry's annotations differ from the "
                    "manifest's (soci convert copies the manifest's)",
                    subject,
                )
            )
        else:
            self.add(CheckResult(r.ANNOTATIONS, True, "entry annotations equal the manifest's", subject))
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
                    r.MEDIA_TYPES, not problems, "; ".join(problems) or "OCI manifest and config", subject
                )
            )

    # -- SOCI v2 --------------------------------------------------------------------------------

    def check_v2(self) -> None:
        by_digest = {e.digest: e for e in self.soci_entries}
        images_by_digest = {i.entry.digest: i for i in self.images}
        loaded: dict[str, _SociIndex] = {}
        for image in self.images:
            if image.manifest is None:
                continue
            target = discover.index_digest_annotation(image.manifest.annotations)
            if target is None:
                continue
            subject = _subject("manifest", image.entry)
            entry = by_digest.get(target)
            if entry is None and self.root_index_entries:
                self.add(
                    CheckResult(
                        r.V2_LINKS,
                        False,
                        f"index-digest {c.short(target)} names no entry of the image index (dangling)",
                        subject,
                    )
                )
                continue
            if entry is None:
                art = self.read_by_digest(target)
                if isinstance(art, str):
                    self.add(
                        CheckResult(r.V2_LINKS, False, f"index-digest names a missing index: {art}", subject)
                    )
                    continue
                self.add(
                    CheckResult(
                        r.V2_LINKS,
                        True,
                        f"index-digest {c.short(target)} resolves (no image index: one-way link)",
                        subject,
                    )
                )
            else:
                problems = []
                back = discover.indexed_manifest_digest(entry)
                if back != image.entry.digest:
                    problems.append(f"the SOCI entry's image-manifest-digest is {back!r}")
                if not c.platforms_match(entry.platform, image.platform):
                    problems.append(
                        f"platforms differ: SOCI entry {c.platform_text(entry.platform) or 'none'}, "
                        f"manifest {c.platform_text(image.platform) or 'none'}"
                    )
                self.add(
                    CheckResult(
                        r.V2_LINKS,
                        not problems,
                        "; ".join(problems)
                        or f"<-> SOCI index {c.short(target)} ({c.platform_text(entry.platform)})",
                        subject,
                    )
                )
                if target in loaded or target in self.unreadable:
                    continue
                art = self.read_json(entry)
                if isinstance(art, str):
                    self.unreadable.add(target)
                    self.add(
                        CheckResult(
                            r.SCHEMA,
                            False,
                            f"the SOCI index cannot be read: {art}",
                            _subject("SOCI index", entry),
                        )
                    )
                    continue
            if target not in loaded:
                loaded[target] = self.check_soci_index("v2", art, entry, image)
        for entry in self.soci_entries:
            if entry.artifact_type == mt.ARTIFACT_TYPE_SOCI_INDEX_V1:
                continue
            back = discover.indexed_manifest_digest(entry) or ""
            linked = images_by_digest.get(back)
            subject = _subject("SOCI index", entry)
            if linked is None or linked.manifest is None:
                self.add(
                    CheckResult(
                        r.V2_LINKS,
                        False,
                        f"image-manifest-digest {back!r} names no manifest of the image index",
                        subject,
                    )
                )
            elif discover.index_digest_annotation(linked.manifest.annotations) != entry.digest:
                self.add(
                    CheckResult(
                        r.V2_LINKS,
                        False,
                        f"manifest {c.short(back)} does not point back at this index with index-digest",
                        subject,
                    )
                )
            if entry.digest not in loaded and entry.digest not in self.unreadable:
                art = self.read_json(entry)
                if isinstance(art, str):
                    self.add(CheckResult(r.SCHEMA, False, f"the SOCI index cannot be read: {art}", subject))
                    continue
                loaded[entry.digest] = self.check_soci_index("v2", art, entry, linked)
        self.v2 = list(loaded.values())

    # -- SOCI v1 --------------------------------------------------------------------------------

    def check_v1(self) -> None:
        seen: set[str] = set()
        if isinstance(self.source, ListsManifests) and isinstance(self.source, HasBlobPaths):
            self._v1_from_layout(self.source.entries(), seen)
        elif self.referrers is not None:
            self._v1_from_referrers(self.referrers, seen)

    def _v1_from_layout(self, listed: list[Descriptor], seen: set[str]) -> None:
        image_digests = {i.entry.digest for i in self.images}
        for entry in discover.layout_v1_candidates(listed, image_digests):
            art = self.read_json(entry)
            if isinstance(art, str) or art.obj is None:
                continue
            if discover.config_index_version(art.obj) != "v1":
                continue
            seen.add(entry.digest)
            subject = _subject("SOCI v1 index", entry)
            if entry.artifact_type == mt.ARTIFACT_TYPE_SOCI_INDEX_V1:
                self.add(
                    CheckResult(
                        r.V1_DISCOVERABLE, True, "listed in index.json with its artifactType", subject
                    )
                )
            else:
                self.add(
                    CheckResult(
                        r.V1_DISCOVERABLE,
                        False,
                        "listed in index.json without artifactType "
                        f"{mt.ARTIFACT_TYPE_SOCI_INDEX_V1}: referrer queries cannot find it",
                        subject,
                    )
                )
            self.v1.append(self.check_soci_index("v1", art, entry, self._v1_subject(art, subject)))

    def _v1_from_referrers(self, store: ReadsReferrers, seen: set[str]) -> None:
        for image in self.images:
            try:
                found = discover.v1_indexes(store.referrers(image.entry.digest, discover.V1))
            except SocikitError as exc:
                self.add(
                    CheckResult(
                        r.V1_DISCOVERABLE,
                        False,
                        f"referrers query failed: {exc}",
                        _subject("manifest", image.entry),
                    )
                )
                continue
            for desc in found:
                if desc.digest in seen:
                    continue
                seen.add(desc.digest)
                subject = _subject("SOCI v1 index", desc)
                self.add(
                    CheckResult(
                        r.V1_DISCOVERABLE,
                        True,
                        f"a referrer of {c.short(image.entry.digest)} (Referrers API or fallback tag)",
                        subject,
                    )
                )
                art = self.read_json(desc)
                if isinstance(art, str):
                    self.add(CheckResult(r.SCHEMA, False, f"the SOCI index cannot be read: {art}", subject))
                    continue
                self.v1.append(
                    self.check_soci_index("v1", art, desc, self._v1_subject(art, subject, expected=image))
                )

    def _v1_subject(self, art: _Json, subject: str, expected: _Image | None = None) -> _Image | None:
        raw = art.obj.get("subject") if art.obj is not None else None
        try:
            target = Descriptor.from_json(raw)
        except FormatError:
            self.add(CheckResult(r.V1_SUBJECT, False, "has no usable subject descriptor", subject))
            return None
        if expected is not None and target.digest != expected.entry.digest:
            self.add(
                CheckResult(
                    r.V1_SUBJECT,
                    False,
                    f"subject {c.short(target.digest)} is not the manifest it was "
                    f"listed for ({c.short(expected.entry.digest)})",
                    subject,
                )
            )
            return None
        known = next(
            (i for i in self.images if i.entry.digest == target.digest and i.manifest is not None), None
        )
        if known is not None:
            if known.entry.size != target.size:
                self.add(
                    CheckResult(
                        r.V1_SUBJECT,
                        False,
                        f"subject size {target.size}, manifest is {known.entry.size} bytes",
                        subject,
                    )
                )
                return None
            self.add(
                CheckResult(
                    r.V1_SUBJECT,
                    True,
                    f"subject {c.short(target.digest)} is a manifest of the image",
                    subject,
                )
            )
            return known
        art_subject = self.read_json(target)
        if isinstance(art_subject, str):
            self.add(
                CheckResult(
                    r.V1_SUBJECT,
                    False,
                    f"subject {c.short(target.digest)} does not resolve: {art_subject}",
                    subject,
                )
            )
            return None
        try:
            manifest = ImageManifest.from_json(art_subject.obj or {})
        except FormatError as exc:
            self.add(CheckResult(r.V1_SUBJECT, False, f"subject is not an image manifest: {exc}", subject))
            return None
        if target.media_type not in mt.MANIFEST_MEDIA_TYPES:
            self.add(
                CheckResult(
                    r.V1_SUBJECT,
                    False,
                    f"subject mediaType {target.media_type!r} is not an image manifest type",
                    subject,
                )
            )
            return None
        self.add(
            CheckResult(
                r.V1_SUBJECT, True, f"subject {c.short(target.digest)} resolves to an image manifest", subject
            )
        )
        return _Image(target, art_subject, None, manifest)

    # -- one SOCI index -------------------------------------------------------------------------

    def check_soci_index(
        self, version: str, art: _Json, entry: Descriptor | None, image: _Image | None
    ) -> _SociIndex:
        self.stats["soci_indexes"] += 1
        subject = _subject(f"SOCI {version} index", art.desc)
        artifact_type = mt.ARTIFACT_TYPE_SOCI_INDEX_V1 if version == "v1" else mt.ARTIFACT_TYPE_SOCI_INDEX_V2
        index = _SociIndex(version, art, image)
        self.add(
            c.check_schema(
                s.SOCI_INDEX_V1 if version == "v1" else s.SOCI_INDEX_V2, art.obj, subject, why=art.why
            )
        )
        self.add(c.check_go_canonical(art.data, art.obj, "soci-index", subject, _CANONICAL_INDEX))
        if art.obj is None:
            return index
        self.add(c.check_index_media_types(art.obj, entry, artifact_type, subject))
        layers = image.manifest.layer_list if image is not None and image.manifest is not None else None
        for raw in art.obj.get("layers") or []:
            try:
                desc = Descriptor.from_json(raw)
            except FormatError:
                continue
            if desc.media_type != mt.MEDIA_TYPE_ZTOC:
                continue
            ztoc = self.check_ztoc(desc, layers, subject)
            index.ztocs.append((desc, ztoc))
        from socikit.validate.prefetch import check_prefetch_artifacts

        for result in check_prefetch_artifacts(art.obj, index.ztocs, layers, self.source.read_blob, subject):
            self.add(result)
        return index

    def check_ztoc(
        self, desc: Descriptor, layers: tuple[Descriptor, ...] | None, index_subject: str
    ) -> Ztoc | None:
        subject = f"ztoc {c.short(desc.digest)} in {index_subject}"
        if desc.digest not in self.ztoc_cache:
            self.stats["ztocs"] += 1
            try:
                data = self.source.read_blob(desc)
            except SocikitError as exc:
                self.ztoc_cache[desc.digest] = (None, f"cannot be read: {exc}")
            else:
                self.ztoc_cache[desc.digest] = c.decode_ztoc(data)
            ztoc, why = self.ztoc_cache[desc.digest]
            self.add(c.check_ztoc_decodes(ztoc, why, _subject("ztoc", desc)))
        ztoc, _ = self.ztoc_cache[desc.digest]
        if ztoc is None:
            return None
        self.add(c.check_ztoc_annotations(desc, ztoc, subject))
        self.add(c.check_ztoc_span_size(desc, ztoc, subject))
        if layers is None:
            return ztoc  # the image manifest is unknown: reported by the link/subject checks
        self.add(c.check_ztoc_layer(desc, ztoc, layers, subject))
        layer = c.find_layer(desc, layers)
        if layer is None:
            return ztoc
        self.add(c.check_ztoc_size(ztoc, layer, subject))
        self.deep_jobs.setdefault((desc.digest, layer.digest), (ztoc, layer, subject))
        return ztoc

    # -- deep -------------------------------------------------------------------------------------

    def run_deep(self) -> None:
        if not self.deep and self.sample <= 0:
            return
        sample = None if self.deep else self.sample
        jobs = list(self.deep_jobs.items())
        reproduced: list[LayerScan | None] = [None] * len(jobs)
        if self.reproduce:
            opener = self.source.blob_opener if isinstance(self.source, OpensBlobsInWorkers) else None
            reproduced = reproduce_layers(
                opener or self.source.open_blob,
                [(layer, ztoc) for _, (ztoc, layer, _) in jobs],
                sample=sample,
                workers=(os.cpu_count() or 1) if opener is not None else 1,
            )
        for ((ztoc_digest, layer_digest), (ztoc, layer, _)), scan in zip(jobs, reproduced, strict=True):
            subject = f"ztoc {c.short(ztoc_digest)} / layer {c.short(layer_digest)}"
            if scan is not None:
                self.stats["layers_reproduced"] += 1
            else:
                scan = self.scan_one(ztoc, layer, subject, sample)
                if scan is None:
                    continue
            self.stats["layers_scanned"] += 1
            self.stats["bytes_scanned"] += scan.bytes_read
            self.stats["files_checked"] += scan.files_checked
            self.add_scan(scan, subject, sample)

    def scan_one(self, ztoc: Ztoc, layer: Descriptor, subject: str, sample: int | None) -> LayerScan | None:
        """The item-by-item scan of one layer; None (with the failure recorded) if it cannot run."""
        try:
            stream = self.source.open_blob(layer)
        except SocikitError as exc:
            self.add(CheckResult(r.LAYER_BLOB, False, f"cannot be read: {exc}", subject))
            return None
        try:
            return scan_layer(stream, ztoc, layer_digest=layer.digest, layer_size=layer.size, sample=sample)
        except SocikitError as exc:
            self.add(CheckResult(r.LAYER_BLOB, False, f"cannot be scanned: {exc}", subject))
            return None
        finally:
            stream.close()

    def add_scan(self, scan: LayerScan, subject: str, sample: int | None) -> None:
        self.add(_from_problems(r.LAYER_BLOB, scan.blob, subject, "blob digest and size match", "blob"))
        self.add(
            _from_problems(
                r.SPAN_DIGESTS,
                scan.spans,
                subject,
                f"all {scan.spans.checked} span digests match",
                "span digests",
            )
        )
        self.add(
            _from_problems(
                r.TOC_HEADERS,
                scan.headers,
                subject,
                f"all {scan.headers.checked} TOC entries match their tar headers",
                "TOC entries",
            )
        )
        scope = "all" if sample is None else f"a sample of {scan.files_checked}"
        ok_text = scan.content_note or (
            f"{scope} files ({scan.files_checked}) read through {scan.contents.checked} spans equal the tar"
        )
        self.add(_from_problems(r.FILE_CONTENTS, scan.contents, subject, ok_text, "spans"))

    # -- summary ----------------------------------------------------------------------------------

    def summary(self) -> Summary:
        verdicts = []
        v1_subjects = {i.image.entry.digest for i in self.v1 if i.image is not None}
        v2_by_digest = {i.art.desc.digest: i for i in self.v2}
        for image in self.images:
            if image.platform is not None and image.platform.os == "unknown":
                continue  # attestation manifests are never run
            verdicts.append(self.verdict(image, v2_by_digest, v1_subjects))
        if not verdicts:
            return Summary(False, "no runnable image manifest was found", ())
        lazy = all(v.lazy for v in verdicts)
        if len(verdicts) == 1:
            reason = verdicts[0].reason
        else:
            reason = "; ".join(
                f"{v.platform or c.short(v.digest)}: {'lazy' if v.lazy else 'not lazy'} ({v.reason})"
                for v in verdicts
            )
        return Summary(lazy, reason, tuple(verdicts))

    def verdict(self, image: _Image, v2: dict[str, _SociIndex], v1_subjects: set[str]) -> ManifestVerdict:
        def out(lazy: bool, reason: str) -> ManifestVerdict:
            return ManifestVerdict(image.entry.digest, c.platform_text(image.platform), lazy, reason)

        if image.manifest is None:
            return out(False, f"its manifest cannot be read ({image.read_error or 'not a manifest'})")
        target = discover.index_digest_annotation(image.manifest.annotations)
        layers = image.manifest.layer_list
        if target is not None:
            index = v2.get(target)
            if index is None:
                return out(
                    False,
                    f"its index-digest {c.short(target)} names a SOCI index that is not there, "
                    "so the snapshotter finds no index",
                )
            failed = {
                res.name
                for res in self.results
                if not res.passed and res.subject.endswith(index.art.desc.digest)
            }
            if r.GO_CANONICAL in failed:
                return out(
                    False,
                    "the SOCI index is not Go-canonical JSON; the snapshotter cannot store it "
                    "and treats the image as having no index",
                )
            config = (index.art.obj or {}).get("config") or {}
            if config.get("mediaType") not in (
                mt.ARTIFACT_TYPE_SOCI_INDEX_V1,
                mt.ARTIFACT_TYPE_SOCI_INDEX_V2,
            ):
                return out(
                    False,
                    "the SOCI index's config mediaType is not a SOCI index type; the snapshotter rejects it",
                )
            digests = {layer.digest for layer in layers}
            covered = {
                d.annotations.get(mt.ANNOTATION_IMAGE_LAYER_DIGEST) for d, z in index.ztocs if z is not None
            }
            covered &= digests
            if not covered:
                return out(False, "its SOCI index has no usable ztoc for any of its layers")
            rest = "" if len(covered) == len(layers) else " (the others are pulled whole)"
            return out(
                True, f"SOCI v2 index {c.short(target)} covers {len(covered)} of {len(layers)} layers{rest}"
            )
        if image.entry.digest in v1_subjects:
            return out(
                False,
                "it has only a SOCI v1 index, and soci-snapshotter (v0.10+) leaves "
                "pull_modes.soci_v1 disabled by default",
            )
        if layers and all(
            mt.compression_of_layer(layer.media_type) not in c.SUPPORTED_COMPRESSIONS for layer in layers
        ):
            kinds = sorted({layer.media_type for layer in layers})
            return out(
                False,
                f"it has no SOCI index, and its layers use a compression SOCI cannot index "
                f"({', '.join(kinds)})",
            )
        if layers and all(layer.size < mt.DEFAULT_MIN_LAYER_SIZE for layer in layers):
            return out(
                False,
                "it has no SOCI index, and every layer is under the default minimum layer size "
                f"({mt.DEFAULT_MIN_LAYER_SIZE} bytes), so a default conversion indexes none",
            )
        return out(False, "it has no SOCI index (no index-digest annotation and no SOCI v1 referrer)")

    def report(self, image: str) -> Report:
        return Report(
            image=image,
            checks=tuple(self.results),
            summary=self.summary(),
            deep=self.deep,
            sample=self.sample,
            stats=dict(self.stats),
        )


class _ClientLookup:
    """A registry client and repository given to `validate_image`, as the two abilities discovery
    asks of a store (`content.base.ReadsManifestsByDigest`, `ReadsReferrers`)."""

    def __init__(self, client: RegistryClient, repo: str) -> None:
        self.client = client
        self.repo = repo

    def read_manifest(self, digest: str) -> tuple[bytes, Descriptor]:
        return self.client.get_manifest(self.repo, digest)

    def referrers(self, subject_digest: str, artifact_type: str) -> list[Descriptor]:
        from socikit.registry.referrers import fetch_referrers

        return fetch_referrers(self.client, self.repo, subject_digest, artifact_type)


def _subject(kind: str, desc: Descriptor) -> str:
    return f"{kind} {desc.digest}"


def _from_problems(name: str, problems: Problems, subject: str, ok_text: str, what: str) -> CheckResult:
    if problems.ok:
        if problems.unchecked:
            return CheckResult(
                name,
                True,
                f"{problems.checked} {what} right; {problems.unchecked} not reached "
                "(the layer does not decompress that far)",
                subject,
            )
        return CheckResult(name, True, ok_text, subject)
    return CheckResult(name, False, problems.summary(what), subject)


def validate_image(
    source: ImageSource,
    *,
    client: RegistryClient | None = None,
    repo: str | None = None,
    deep: bool = False,
    sample: int = 0,
    reproduce: bool = True,
) -> Report:
    """Validate the SOCI artifacts of the image `source` resolves to.

    `client`/`repo` enable SOCI v1 discovery through the Referrers API (default: the source's
    own client and repository when it is a registry source). `deep` streams every indexed layer
    once and reads all files through spans; `sample=N` does the same pass but reads only N files
    per layer through spans (span digests and TOC headers are always checked in full when a layer
    is streamed). A gzip layer's ztoc is first rebuilt from the blob: when it comes out identical
    every layer check passes at building speed (`layerscan.reproduce_layer`); otherwise, or with
    `reproduce=False`, the layer is scanned check by check. Broken artifacts are reported, never
    raised."""
    validator = _Validator(source, client, repo, deep, sample, reproduce)
    return validator.run()


__all__ = ["validate_image"]

"""Each validate check fails on an artifact broken in exactly its way, and no other check does.

The layout is the tricky-pax golden vector (input image + the reference's current output)
arranged as a converted OCI layout; one artifact is then broken and everything that names it is
re-linked, so only the intended defect remains.
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import replace
from pathlib import Path

import pytest

from conformance.layout import assemble_expected_layout, blob_path, read_json, replace_blob
from socikit.content.layout import LayoutSource
from socikit.oci import gojson
from socikit.oci import mediatypes as mt
from socikit.validate import Report, validate_image
from socikit.validate.report import (
    ANNOTATIONS,
    CHECK_NAMES,
    FILE_CONTENTS,
    GO_CANONICAL,
    LAYER_BLOB,
    MEDIA_TYPES,
    PREFETCH,
    SCHEMA,
    SPAN_DIGESTS,
    TOC_DIGEST,
    TOC_HEADERS,
    V1_DISCOVERABLE,
    V1_SUBJECT,
    V2_LINKS,
    ZTOC_DECODES,
    ZTOC_LAYER,
    ZTOC_SIZE,
    ZTOC_SPAN_SIZE,
)
from socikit.ztoc.compression.gzip import HEADER_SIZE, RECORD_SIZE, GzipZinfo
from socikit.ztoc.serialize import dumps, loads
from tests.vectors import VECTORS_DIR


class Image:
    """The assembled layout and the digests of its artifacts."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def index_json(self) -> dict:
        return json.loads((self.root / "index.json").read_bytes())

    def converted_digest(self) -> str:
        return next(
            e["digest"]
            for e in self.index_json()["manifests"]
            if e.get("annotations", {}).get(mt.ANNOTATION_REF_NAME) == "latest"
        )

    def converted(self) -> dict:
        return read_json(self.root, self.converted_digest())

    def manifest_digest(self) -> str:
        return next(e["digest"] for e in self.converted()["manifests"] if "artifactType" not in e)

    def soci_v2_digest(self) -> str:
        return next(
            e["digest"]
            for e in self.converted()["manifests"]
            if e.get("artifactType") == mt.ARTIFACT_TYPE_SOCI_INDEX_V2
        )

    def soci_v1_digest(self) -> str:
        return next(
            e["digest"]
            for e in self.index_json()["manifests"]
            if e.get("artifactType") == mt.ARTIFACT_TYPE_SOCI_INDEX_V1
        )

    def ztoc_digest(self) -> str:
        return read_json(self.root, self.soci_v2_digest())["layers"][0]["digest"]

    def edit_json(self, digest: str, edit) -> str:
        doc = read_json(self.root, digest)
        edit(doc)
        return replace_blob(self.root, digest, gojson.dumps(doc))

    def edit_ztoc(self, edit) -> str:
        digest = self.ztoc_digest()
        ztoc = loads(blob_path(self.root, digest).read_bytes())
        return replace_blob(self.root, digest, dumps(edit(ztoc)))

    def validate(self, **kwargs) -> Report:
        return validate_image(LayoutSource(self.root, tag="latest"), deep=True, **kwargs)


@pytest.fixture
def image(tmp_path: Path) -> Image:
    return Image(assemble_expected_layout(VECTORS_DIR / "tricky-pax", tmp_path / "layout"))


def assert_only(report: Report, name: str, *, contains: str = "") -> None:
    failed = report.failed_names()
    assert failed == {name}, [c for c in report.checks if not c.passed]
    if contains:
        assert any(contains in c.reason for c in report.failures), [c.reason for c in report.failures]


def test_the_unbroken_layout_passes_every_check(image: Image) -> None:
    report = image.validate()
    assert report.passed, report.failures
    assert {c.name for c in report.checks} == set(CHECK_NAMES) - {PREFETCH, TOC_DIGEST}  # no prefetch, toc.digest
    assert report.summary.lazy
    # The reference's ztoc is rebuilt identically from the blob, which settles the layer checks.
    assert report.stats["layers_reproduced"] == report.stats["layers_scanned"] == 1


def test_the_unbroken_layout_passes_check_by_check(image: Image) -> None:
    report = image.validate(reproduce=False)
    assert report.passed, report.failures
    assert {c.name for c in report.checks} == set(CHECK_NAMES) - {PREFETCH, TOC_DIGEST}  # no prefetch, toc.digest
    assert report.stats["layers_reproduced"] == 0
    assert report.stats["layers_scanned"] == 1


def test_a_valid_ztoc_with_other_checkpoints_is_scanned_and_passes(image: Image) -> None:
    """Another producer may place fewer checkpoints: not reproducible, still correct."""
    layer = read_json(image.root, image.manifest_digest())["layers"][0]
    blob = blob_path(image.root, layer["digest"]).read_bytes()

    def drop_checkpoint_2(ztoc):
        info = ztoc.compression_info
        zinfo = GzipZinfo(info.checkpoints)
        kept = [zinfo.checkpoint(i) for i in range(zinfo.count) if i != 2]
        merged = GzipZinfo.from_checkpoints(zinfo.span_size, kept)
        digests = []
        for j in range(merged.count):
            start, end = merged.compressed_range(j, len(blob))
            digests.append("sha256:" + hashlib.sha256(blob[start:end]).hexdigest())
        return replace(ztoc, compression_info=replace(
            info, checkpoints=merged.to_blob(), span_digests=tuple(digests), max_span_id=merged.count - 1
        ))

    image.edit_ztoc(drop_checkpoint_2)
    report = image.validate()
    assert report.passed, [c.to_json() for c in report.failures]
    assert report.stats["layers_reproduced"] == 0
    assert report.stats["layers_scanned"] == 1


def test_flipped_span_digest_fails_span_digests(image: Image) -> None:
    def flip(ztoc):
        digests = list(ztoc.compression_info.span_digests)
        last = digests[3][-1]
        digests[3] = digests[3][:-1] + ("0" if last != "0" else "1")
        return replace(ztoc, compression_info=replace(ztoc.compression_info, span_digests=tuple(digests)))

    image.edit_ztoc(flip)
    assert_only(image.validate(), SPAN_DIGESTS, contains="span 3")


def test_wrong_layer_digest_annotation_fails_ztoc_layer(image: Image) -> None:
    def edit(doc):
        doc["layers"][0]["annotations"][mt.ANNOTATION_IMAGE_LAYER_DIGEST] = "sha256:" + "ab" * 32

    image.edit_json(image.soci_v2_digest(), edit)
    assert_only(image.validate(), ZTOC_LAYER, contains="not a layer of the image manifest")


def test_reordered_json_key_fails_go_canonical_and_lazy_loading(image: Image) -> None:
    digest = image.soci_v2_digest()
    doc = read_json(image.root, digest)
    config = doc["config"]
    doc["config"] = {"digest": config["digest"], "mediaType": config["mediaType"], "size": config["size"]}
    replace_blob(image.root, digest, gojson.dumps(doc))
    report = image.validate()
    assert_only(report, GO_CANONICAL, contains="refuses to store")
    assert not report.summary.lazy
    assert "Go-canonical" in report.summary.reason


def test_top_level_artifact_type_in_a_soci_index_is_not_canonical(image: Image) -> None:
    def edit(doc):
        items = list(doc.items())
        doc.clear()
        doc.update([items[0], items[1], ("artifactType", mt.ARTIFACT_TYPE_SOCI_INDEX_V2), *items[2:]])

    image.edit_json(image.soci_v2_digest(), edit)
    # The schema forbids it too: the snapshotter's re-encoding drops the field.
    assert image.validate().failed_names() == {GO_CANONICAL, SCHEMA}


def test_dangling_index_digest_fails_v2_links(image: Image) -> None:
    dangling = "sha256:" + "cd" * 32

    def annotate(doc):
        doc["annotations"][mt.ANNOTATION_INDEX_DIGEST] = dangling

    new_manifest = image.edit_json(image.manifest_digest(), annotate)

    def annotate_entry(doc):  # soci convert copies the manifest's annotations into its entry
        entry = next(e for e in doc["manifests"] if e["digest"] == new_manifest)
        entry["annotations"][mt.ANNOTATION_INDEX_DIGEST] = dangling

    image.edit_json(image.converted_digest(), annotate_entry)
    report = image.validate()
    assert_only(report, V2_LINKS, contains="dangling")
    assert not report.summary.lazy
    assert "not there" in report.summary.reason


def test_toc_offset_off_by_512_fails_toc_headers(image: Image) -> None:
    def shift(ztoc):
        toc = list(ztoc.toc)
        i = next(i for i, e in enumerate(toc) if e.type == "reg" and e.uncompressed_size > 1000)
        toc[i] = toc[i]._replace(uncompressed_offset=toc[i].uncompressed_offset + 512)
        return replace(ztoc, toc=tuple(toc))

    image.edit_ztoc(shift)
    assert_only(image.validate(), TOC_HEADERS)


def test_toc_field_differing_from_the_tar_header_fails_toc_headers(image: Image) -> None:
    def chmod(ztoc):
        toc = list(ztoc.toc)
        i = next(i for i, e in enumerate(toc) if e.type == "reg")
        toc[i] = toc[i]._replace(mode=toc[i].mode ^ 0o111)
        return replace(ztoc, toc=tuple(toc))

    image.edit_ztoc(chmod)
    assert_only(image.validate(), TOC_HEADERS, contains="TOC mode")


def test_truncated_ztoc_fails_ztoc_decodes(image: Image) -> None:
    digest = image.ztoc_digest()
    data = blob_path(image.root, digest).read_bytes()
    replace_blob(image.root, digest, data[: len(data) // 2])
    assert_only(image.validate(), ZTOC_DECODES)


def test_wrong_span_size_annotation_fails_ztoc_span_size(image: Image) -> None:
    def edit(doc):
        doc["layers"][0]["annotations"][mt.ANNOTATION_SPAN_SIZE] = "1048576"

    image.edit_json(image.soci_v2_digest(), edit)
    assert_only(image.validate(), ZTOC_SPAN_SIZE, contains="1048576")


def test_wrong_compressed_archive_size_fails_ztoc_size(image: Image) -> None:
    image.edit_ztoc(lambda z: replace(z, compressed_archive_size=z.compressed_archive_size + 1))
    assert_only(image.validate(), ZTOC_SIZE)


def test_corrupt_checkpoint_window_fails_file_contents(image: Image) -> None:
    def corrupt(ztoc):
        blob = bytearray(ztoc.compression_info.checkpoints)
        window = HEADER_SIZE + RECORD_SIZE * 5 + 17  # span 5 is text: it refers back into the window
        blob[window : window + RECORD_SIZE - 17] = b"A" * (RECORD_SIZE - 17)
        return replace(ztoc, compression_info=replace(ztoc.compression_info, checkpoints=bytes(blob)))

    image.edit_ztoc(corrupt)
    report = image.validate()
    assert_only(report, FILE_CONTENTS, contains="span 5")
    # The same defect is found when only a sample of files is read through spans, if the sample
    # reaches that span; a sample of 0 reads none and so cannot see it.
    assert validate_image(LayoutSource(image.root, tag="latest"), sample=1000).failed_names() == {
        FILE_CONTENTS
    }


def test_checkpoint_offset_moved_fails_file_contents(image: Image) -> None:
    def move(ztoc):
        blob = bytearray(ztoc.compression_info.checkpoints)
        at = HEADER_SIZE + RECORD_SIZE * 1 + 8  # `out` of checkpoint 1
        (out,) = struct.unpack_from("<q", blob, at)
        struct.pack_into("<q", blob, at, out + 1)
        return replace(ztoc, compression_info=replace(ztoc.compression_info, checkpoints=bytes(blob)))

    image.edit_ztoc(move)
    assert_only(image.validate(), FILE_CONTENTS)


def test_soci_entry_with_wrong_artifact_type_fails_media_types(image: Image) -> None:
    soci = image.soci_v2_digest()

    def edit(doc):
        entry = next(e for e in doc["manifests"] if e["digest"] == soci)
        entry["artifactType"] = mt.ARTIFACT_TYPE_SOCI_INDEX_V1

    image.edit_json(image.converted_digest(), edit)
    assert_only(image.validate(), MEDIA_TYPES, contains="artifactType")


def test_entry_annotations_differing_from_the_manifest_fail_annotations(image: Image) -> None:
    manifest = image.manifest_digest()

    def edit(doc):
        entry = next(e for e in doc["manifests"] if e["digest"] == manifest)
        entry["annotations"] = gojson.sorted_map({**entry["annotations"], "b.extra": "x"})

    image.edit_json(image.converted_digest(), edit)
    assert_only(image.validate(), ANNOTATIONS, contains="annotations differ")


def test_disable_xattrs_on_a_layer_with_xattrs_fails_annotations(image: Image) -> None:
    def edit(doc):
        annotations = doc["layers"][0]["annotations"]
        doc["layers"][0]["annotations"] = gojson.sorted_map(
            {**annotations, mt.ANNOTATION_DISABLE_XATTRS: "true"}
        )

    image.edit_json(image.soci_v2_digest(), edit)
    assert_only(image.validate(), ANNOTATIONS, contains="disable-xattrs is set but")


def test_empty_soci_index_layers_fail_schema(image: Image) -> None:
    image.edit_json(image.soci_v2_digest(), lambda doc: doc.update(layers=[]))
    report = image.validate()
    assert_only(report, SCHEMA, contains="layers")
    assert not report.summary.lazy


def test_unresolvable_v1_subject_fails_v1_subject(image: Image) -> None:
    def edit(doc):
        doc["subject"]["digest"] = "sha256:" + "ef" * 32

    image.edit_json(image.soci_v1_digest(), edit)
    assert_only(image.validate(), V1_SUBJECT, contains="does not resolve")


def test_v1_index_listed_without_artifact_type_fails_v1_discoverable(image: Image) -> None:
    index = image.index_json()
    for entry in index["manifests"]:
        entry.pop("artifactType", None)
    (image.root / "index.json").write_bytes(gojson.dumps(index))
    assert_only(image.validate(), V1_DISCOVERABLE, contains="without artifactType")


def test_corrupt_layer_blob_fails_layer_blob(image: Image) -> None:
    manifest = read_json(image.root, image.manifest_digest())
    layer = blob_path(image.root, manifest["layers"][0]["digest"])
    data = bytearray(layer.read_bytes())
    data[-1] ^= 0xFF  # the gzip trailer's ISIZE: no span content changes, the blob digest does
    layer.write_bytes(bytes(data))
    report = image.validate()
    # The last span's compressed bytes include the trailer, so its digest no longer matches and
    # decompression reports the bad trailer: those are real consequences of the same defect.
    assert LAYER_BLOB in report.failed_names()
    assert report.failed_names() <= {LAYER_BLOB, SPAN_DIGESTS, FILE_CONTENTS}

"""`validate` on SOCI indexes with prefetch artifacts (socikit.validate.prefetch): the artifact's
schema, its layer (a layer of the manifest that the index has a ztoc for) and its span ranges
(within that ztoc). Each broken layout is the socikit-made prefetch vector with one thing changed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from conformance.layout import assemble_expected_layout, read_json, replace_blob
from socikit.content.layout import LayoutSource
from socikit.oci import gojson
from socikit.oci import mediatypes as mt
from socikit.validate import Report, validate_image
from socikit.validate import report as r
from tests.vectors import EXTRA_VECTORS_DIR

VECTOR = EXTRA_VECTORS_DIR / "prefetch"


@pytest.fixture
def layout(tmp_path: Path) -> Path:
    return assemble_expected_layout(VECTOR, tmp_path / "layout")


def _validate(layout: Path, **options: Any) -> Report:
    return validate_image(LayoutSource(layout, tag="latest"), **options)


def _soci_indexes(layout: Path) -> list[str]:
    return [
        "sha256:" + p.name for p in sorted((layout / "blobs" / "sha256").iterdir())
        if b'"application/vnd.amazon.soci.index.v' in p.read_bytes()[:200]
    ]


def _prefetch_digests(layout: Path) -> list[str]:
    index = read_json(layout, _soci_indexes(layout)[0])
    return [d["digest"] for d in index["layers"] if d["mediaType"] == mt.MEDIA_TYPE_SOCI_PREFETCH]


def _edit_indexes(layout: Path, edit: Any) -> None:
    """Apply `edit` to the layers of every SOCI index (v1 and v2) and re-link the layout."""
    for digest in _soci_indexes(layout):
        index = read_json(layout, digest)
        index["layers"] = edit(index["layers"])
        replace_blob(layout, digest, gojson.dumps(index))


def test_the_unbroken_layout_passes_with_prefetch_checks(layout: Path) -> None:
    report = _validate(layout, deep=True)
    assert report.passed, report.failures
    checks = report.by_name(r.PREFETCH)
    assert len(checks) == 4  # two artifacts, listed by the v2 and by the v1 index
    assert all("within its ztoc's" in c.reason for c in checks)
    assert sum(c.subject.startswith("prefetch ") for c in report.by_name(r.SCHEMA)) == 4


def test_spans_past_the_ztoc_fail(layout: Path) -> None:
    first = _prefetch_digests(layout)[0]
    replace_blob(layout, first, b'{"version":"1.0","prefetch_spans":[{"start_span":0,"end_span":99}]}')
    report = _validate(layout)
    assert report.failed_names() == {r.PREFETCH}, report.failures
    assert all("span 99 is past the ztoc's last span" in c.reason for c in report.failures)


@pytest.mark.parametrize(("data", "reason"), [
    (b'{"version":"2.0","prefetch_spans":[]}', "'1.0' was expected"),
    (b'{"version":"1.0","prefetch_spans":[{"start_span":3,"end_span":1}]}', "ends (1) before it starts (3)"),
    (b'{"version":"1.0","prefetch_spans":[{"start":0}]}', "required property"),
    (b"[]", "not a JSON object"),
])
def test_a_malformed_artifact_fails_its_schema(layout: Path, data: bytes, reason: str) -> None:
    replace_blob(layout, _prefetch_digests(layout)[0], data)
    report = _validate(layout)
    assert report.failed_names() == {r.SCHEMA}, report.failures
    assert all(c.subject.startswith("prefetch ") and reason in c.reason for c in report.failures), report.failures


def test_an_empty_artifact_passes_as_one_the_snapshotter_skips(layout: Path) -> None:
    replace_blob(layout, _prefetch_digests(layout)[0], b'{"version":"1.0","prefetch_spans":[]}')
    report = _validate(layout)
    assert report.passed, report.failures
    assert sum("the snapshotter skips an empty artifact" in c.reason for c in report.by_name(r.PREFETCH)) == 2


def test_a_layer_that_is_not_in_the_manifest_fails(layout: Path) -> None:
    def retag(layers: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for desc in layers:
            if desc["mediaType"] == mt.MEDIA_TYPE_SOCI_PREFETCH:
                desc["annotations"][mt.ANNOTATION_IMAGE_LAYER_DIGEST] = "sha256:" + "0" * 64
        return layers

    _edit_indexes(layout, retag)
    report = _validate(layout)
    assert report.failed_names() == {r.PREFETCH}, report.failures
    assert all("is not a layer of the image manifest" in c.reason for c in report.failures)


def test_a_layer_without_a_ztoc_in_the_index_fails(layout: Path) -> None:
    """Drop the base layer's ztoc but keep its prefetch artifact: the snapshotter could not resolve
    its span ids (the index stays schema-valid: the top layer's ztoc is still there)."""
    manifest_layers: list[str] = []

    def drop_base_ztoc(layers: list[dict[str, Any]]) -> list[dict[str, Any]]:
        base = layers[0]["annotations"][mt.ANNOTATION_IMAGE_LAYER_DIGEST]
        manifest_layers.append(base)
        return layers[1:]

    _edit_indexes(layout, drop_base_ztoc)
    report = _validate(layout)
    assert report.failed_names() == {r.PREFETCH}, report.failures
    assert all(f"no ztoc for layer {manifest_layers[0][:19]}" in c.reason for c in report.failures)


def test_a_missing_artifact_blob_fails(layout: Path) -> None:
    digest = _prefetch_digests(layout)[0]
    (layout / "blobs" / "sha256" / digest.split(":")[1]).unlink()
    report = _validate(layout)
    assert report.failed_names() == {r.SCHEMA}, report.failures
    assert all("the prefetch artifact cannot be read" in c.reason for c in report.failures)


def test_cli_json_lists_the_prefetch_checks(layout: Path) -> None:
    from tests.cli import run_socikit

    result = run_socikit("validate", "--json", f"oci:{layout}:latest")
    assert result.returncode == 0, result.stdout
    names = [c["name"] for c in json.loads(result.stdout)["checks"]]
    assert names.count("prefetch") == 4

"""socikit's own JSON Schemas: they load, accept the reference's output and reject what the
reference would never write."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from socikit.validate import SCHEMA_NAMES, load_schema, schema_errors
from socikit.validate.schemafiles import (
    CONVERTED_INDEX,
    IMAGE_INDEX,
    IMAGE_MANIFEST,
    PREFETCH,
    SOCI_INDEX_V1,
    SOCI_INDEX_V2,
    ZTOC_INFO,
    schema_dir,
)
from socikit.ztoc.info import ztoc_info
from socikit.ztoc.serialize import loads
from tests.vectors import REPO_ROOT, all_vectors

EXPECTED = [(v, f) for v in all_vectors() for f in sorted((v.path / "expected-current").iterdir())]


def _schema_for(name: str) -> str:
    if name.startswith("soci-index-v1-"):
        return SOCI_INDEX_V1
    if name.startswith("soci-index-v2-"):
        return SOCI_INDEX_V2
    if name.startswith("manifest-"):
        return IMAGE_MANIFEST
    return IMAGE_INDEX


def test_every_schema_is_valid_draft_2020_12() -> None:
    on_disk = {p.name.removesuffix(".schema.json") for p in (REPO_ROOT / "schemas").glob("*.schema.json")}
    assert {*SCHEMA_NAMES, "defs"} == on_disk and len(SCHEMA_NAMES) >= 7  # defs: shared definitions only
    for name in SCHEMA_NAMES:
        schema = load_schema(name)
        Draft202012Validator.check_schema(schema)
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_schemas_are_read_from_the_repository_in_a_checkout() -> None:
    assert Path(str(schema_dir())).resolve() == (REPO_ROOT / "schemas").resolve()


def test_unknown_schema_name_is_refused() -> None:
    with pytest.raises(KeyError):
        load_schema("no-such-schema")


@pytest.mark.parametrize(
    ("vector", "file"),
    [(v, f) for v, f in EXPECTED if f.suffix == ".json"],
    ids=lambda x: getattr(x, "name", "")[:30],
)
def test_reference_json_matches_our_schemas(vector, file: Path) -> None:
    assert schema_errors(_schema_for(file.name), json.loads(file.read_bytes())) == []


def test_converted_indexes_match_the_strict_conversion_schema() -> None:
    for vector in all_vectors():
        document = json.loads((vector.path / "expected-current" / "converted-index.json").read_bytes())
        assert schema_errors(CONVERTED_INDEX, document) == []


@pytest.mark.parametrize("vector", all_vectors(), ids=lambda v: v.name)
def test_ztoc_info_view_matches_its_schema(vector) -> None:
    checked = 0
    for file in sorted((vector.path / "expected-current").glob("ztoc-*.bin")):
        data = file.read_bytes()
        assert schema_errors(ZTOC_INFO, ztoc_info(loads(data), size=len(data))) == []
        checked += 1
    for file in sorted((vector.path / "expected").glob("*.info.json")):
        assert schema_errors(ZTOC_INFO, json.loads(file.read_bytes())) == []
        checked += 1
    assert checked >= 2


def _soci_v2() -> dict:
    vector = next(v for v in all_vectors() if v.name == "tricky-pax")
    return json.loads(next((vector.path / "expected-current").glob("soci-index-v2-*.json")).read_bytes())


def test_v2_index_with_a_subject_is_rejected() -> None:
    doc = _soci_v2()
    doc["subject"] = {
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": "sha256:" + "0" * 64,
        "size": 1,
    }
    assert any("subject" in e for e in schema_errors(SOCI_INDEX_V2, doc))


def test_v1_index_needs_its_subject_and_v1_config() -> None:
    doc = _soci_v2()
    errors = schema_errors(SOCI_INDEX_V1, doc)
    assert any("'subject' is a required property" in e for e in errors)
    assert any(e.startswith("config/mediaType") for e in errors)


@pytest.mark.parametrize(
    ("edit", "where"),
    [
        (lambda d: d.update(artifactType="application/vnd.amazon.soci.index.v2+json"), "(root)"),
        (lambda d: d["layers"][0].update(mediaType="application/vnd.oci.image.layer.v1.tar"), "layers/0"),
        (lambda d: d["layers"][0]["annotations"].update({"com.amazon.soci.span-size": "4k"}), "layers/0"),
        (lambda d: d["layers"][0]["annotations"].pop("com.amazon.soci.image-layer-digest"), "layers/0"),
        (lambda d: d["config"].update(size=3), "config/size"),
        (lambda d: d.pop("annotations"), "(root)"),
        (lambda d: d.update(layers=[]), "layers"),
    ],
    ids=[
        "top-level-artifactType",
        "ztoc-media-type",
        "span-size-text",
        "no-layer-digest",
        "config-size",
        "no-build-tool",
        "no-ztocs",
    ],
)
def test_broken_soci_index_is_rejected(edit, where: str) -> None:
    doc = _soci_v2()
    edit(doc)
    errors = schema_errors(SOCI_INDEX_V2, doc)
    assert errors and any(e.startswith(where) for e in errors), errors


def test_prefetch_artifact_schema() -> None:
    good = {
        "version": "1.0",
        "prefetch_spans": [{"start_span": 0, "end_span": 3}, {"start_span": 5, "end_span": 5, "priority": 1}],
    }
    assert schema_errors(PREFETCH, good) == []
    assert schema_errors(PREFETCH, {**good, "version": "2.0"})
    assert schema_errors(
        PREFETCH, {"version": "1.0", "prefetch_spans": [{"start_span": -1, "end_span": 0}]}
    )


def test_converted_index_soci_entry_needs_its_link_and_platform() -> None:
    vector = next(v for v in all_vectors() if v.name == "tricky-pax")
    doc = json.loads((vector.path / "expected-current" / "converted-index.json").read_bytes())
    entry = doc["manifests"][1]
    del entry["platform"]
    entry["annotations"] = {}
    errors = schema_errors(IMAGE_INDEX, doc)
    assert any("'platform' is a required property" in e for e in errors)
    assert any("image-manifest-digest" in e for e in errors)

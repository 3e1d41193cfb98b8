"""Pure helpers of socikit.registry.referrers: the fallback tag name, the tag index bytes, and
the descriptor listed for a referrer."""

from __future__ import annotations

import json

import pytest

from socikit.errors import FormatError
from socikit.oci import gojson
from socikit.oci import mediatypes as mt
from socikit.oci.descriptor import Descriptor, Platform, descriptor_for
from socikit.registry.referrers import (
    build_referrers_index,
    filter_by_artifact_type,
    parse_referrers_index,
    referrer_entry,
    referrers_tag,
)

HEX = "0123456789abcdef" * 4


def test_tag_for_sha256_is_alg_dash_hex() -> None:
    assert referrers_tag("sha256:" + HEX) == "sha256-" + HEX


def test_tag_truncates_and_replaces_characters() -> None:
    long_alg = "a" * 40 + "+b"
    encoded = "x" * 100
    tag = referrers_tag(f"{long_alg}:{encoded}")
    assert tag == "a" * 32 + "-" + "x" * 64
    assert referrers_tag("sha512+v2:AbC=") == "sha512-v2-AbC-"


@pytest.mark.parametrize("bad", ["", "sha256", "sha256:", ":abc"])
def test_tag_of_non_digest_is_refused(bad: str) -> None:
    with pytest.raises(FormatError):
        referrers_tag(bad)


def test_index_bytes_are_go_canonical() -> None:
    entry = Descriptor(mt.MEDIA_TYPE_OCI_MANIFEST, "sha256:" + HEX, 42,
                       annotations={"z": "1", "a": "<&>"}, artifact_type=mt.ARTIFACT_TYPE_SOCI_INDEX_V1)
    expected = (
        '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":['
        '{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:' + HEX + '",'
        '"size":42,"annotations":{"a":"\\u003c\\u0026\\u003e","z":"1"},'
        '"artifactType":"application/vnd.amazon.soci.index.v1+json"}]}'
    ).encode()
    assert build_referrers_index([entry]) == expected
    assert build_referrers_index([]) == (
        b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}')


def test_index_round_trips_through_parse() -> None:
    entries = [Descriptor(mt.MEDIA_TYPE_OCI_MANIFEST, "sha256:" + HEX, 1, artifact_type="a/b"),
               Descriptor(mt.MEDIA_TYPE_OCI_MANIFEST, "sha256:" + HEX[::-1], 2, annotations={"k": "v"})]
    assert parse_referrers_index(build_referrers_index(entries)) == entries


@pytest.mark.parametrize("data", [b"not json", b"[]", b'{"manifests":{}}',
                                  b'{"mediaType":"application/vnd.oci.image.manifest.v1+json","manifests":[]}'])
def test_parse_refuses_what_is_not_an_index(data: bytes) -> None:
    with pytest.raises(FormatError):
        parse_referrers_index(data)


def _soci_v1_manifest(annotations: dict[str, str] | None = None, artifact_type: str = "") -> bytes:
    doc: dict[str, object] = {"schemaVersion": 2, "mediaType": mt.MEDIA_TYPE_OCI_MANIFEST}
    if artifact_type:
        doc["artifactType"] = artifact_type
    doc["config"] = {"mediaType": mt.ARTIFACT_TYPE_SOCI_INDEX_V1, "digest": mt.EMPTY_JSON_DIGEST, "size": 2}
    doc["layers"] = []
    if annotations:
        doc["annotations"] = annotations
    return gojson.dumps(doc)


def test_entry_takes_artifact_type_from_config_and_annotations_from_manifest() -> None:
    manifest = _soci_v1_manifest({mt.ANNOTATION_BUILD_TOOL_IDENTIFIER: "AWS SOCI CLI v0.2"})
    desc = descriptor_for(manifest, mt.MEDIA_TYPE_OCI_MANIFEST, platform=Platform("amd64", "linux"),
                          urls=("http://example/x",))
    entry = referrer_entry(desc, manifest)
    assert entry == Descriptor(mt.MEDIA_TYPE_OCI_MANIFEST, desc.digest, desc.size,
                               annotations={mt.ANNOTATION_BUILD_TOOL_IDENTIFIER: "AWS SOCI CLI v0.2"},
                               artifact_type=mt.ARTIFACT_TYPE_SOCI_INDEX_V1)
    assert "platform" not in entry.to_json() and "urls" not in entry.to_json()


def test_entry_prefers_top_level_artifact_type_and_given_fields() -> None:
    manifest = _soci_v1_manifest(artifact_type="application/vnd.example+json")
    desc = descriptor_for(manifest, mt.MEDIA_TYPE_OCI_MANIFEST)
    assert referrer_entry(desc, manifest).artifact_type == "application/vnd.example+json"
    given = desc.with_changes(artifact_type="x/y", annotations={"k": "v"})
    assert referrer_entry(given, manifest) == Descriptor(desc.media_type, desc.digest, desc.size,
                                                         annotations={"k": "v"}, artifact_type="x/y")
    assert referrer_entry(given).artifact_type == "x/y"


def test_filter_by_artifact_type() -> None:
    a = Descriptor(mt.MEDIA_TYPE_OCI_MANIFEST, "sha256:" + HEX, 1, artifact_type="t/a")
    b = Descriptor(mt.MEDIA_TYPE_OCI_MANIFEST, "sha256:" + HEX[::-1], 1, artifact_type="t/b")
    assert filter_by_artifact_type([a, b], "t/b") == [b]
    assert filter_by_artifact_type([a, b], None) == [a, b]
    assert filter_by_artifact_type([a, b], "t/c") == []


def test_index_is_valid_json_with_schema_version_2() -> None:
    doc = json.loads(build_referrers_index([]))
    assert doc["schemaVersion"] == 2 and doc["mediaType"] == mt.MEDIA_TYPE_OCI_INDEX

"""The JSON socikit must write (the vectors' expected-current, which our output equals byte for
byte) validates against the official OCI image-spec v1.1.1 schemas.

Those schemas are draft-04 and `$ref` each other by relative file name ("defs-descriptor.json",
"content-descriptor.json") against `id`s under https://opencontainers.org/schema/...; a
`referencing` retrieve hook maps every such URI to the file of that name in the reference copy
(test data only: the schemas are not shipped).
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from jsonschema import Draft4Validator
from referencing import Registry, Resource
from referencing.exceptions import NoSuchResource
from referencing.jsonschema import DRAFT4

from tests.vectors import OCI_SCHEMA_CHECKOUT, all_vectors

OCI_SCHEMAS = OCI_SCHEMA_CHECKOUT
if not OCI_SCHEMAS.is_dir():
    pytest.skip(
        f"the OCI image-spec v1.1.1 schema files are not ours to ship and {OCI_SCHEMAS} is absent",
        allow_module_level=True,
    )


def _retrieve(uri: str) -> Resource:
    name = Path(urlsplit(uri).path).name
    path = OCI_SCHEMAS / name
    if not path.suffix:
        path = path.with_suffix(".json")
    if not path.is_file():
        raise NoSuchResource(ref=uri)
    return Resource.from_contents(json.loads(path.read_text()), default_specification=DRAFT4)


def _validator(file: str) -> Draft4Validator:
    schema = json.loads((OCI_SCHEMAS / file).read_text())
    registry: Registry = Registry(retrieve=_retrieve)  # type: ignore[call-arg]
    return Draft4Validator(schema, registry=registry)


INDEX = _validator("image-index-schema.json")
MANIFEST = _validator("image-manifest-schema.json")


def _documents() -> list:
    params = []
    for vector in all_vectors():
        for file in sorted((vector.path / "expected-current").glob("*.json")):
            validator = INDEX if file.name == "converted-index.json" else MANIFEST
            kind = "index" if validator is INDEX else "manifest"
            params.append(pytest.param(file, validator, id=f"{vector.name}/{file.name[:24]}-{kind}"))
    return params


@pytest.mark.parametrize(("file", "validator"), _documents())
def test_expected_output_matches_the_oci_schema(file: Path, validator: Draft4Validator) -> None:
    errors = [
        f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(json.loads(file.read_bytes()))
    ]
    assert errors == []


def test_every_kind_of_artifact_is_covered() -> None:
    names = {p.values[0].name.split("-")[0] for p in _documents()}
    assert names == {"converted", "manifest", "soci"}


def test_the_references_resolve_and_bite() -> None:
    """A bad digest deep inside a layer descriptor is caught: the relative $refs really resolved."""
    vector = next(v for v in all_vectors() if v.name == "tricky-pax")
    soci = json.loads(next((vector.path / "expected-current").glob("soci-index-v2-*.json")).read_bytes())
    soci["layers"][0]["digest"] = "sha256:NOT-HEX!"
    messages = [e.message for e in MANIFEST.iter_errors(soci)]
    assert any("does not match" in m for m in messages), messages
    converted = json.loads((vector.path / "expected-current" / "converted-index.json").read_bytes())
    converted["manifests"][0]["mediaType"] = "not a media type"
    assert any("does not match" in e.message for e in INDEX.iter_errors(converted))

"""The checks `convert` and `create` run on what they built, before anything is written
(`--no-validate` skips them): every SOCI index and the converted image index match their schema
and are Go-canonical bytes (the snapshotter re-marshals indexes and refuses any that differ), and
the v2 cross-links hold."""

from __future__ import annotations

import json
from typing import Any

from socikit.errors import InvalidArtifactError
from socikit.oci import mediatypes as mt
from socikit.oci.manifest import ImageIndex, ImageManifest
from socikit.validate.schemacheck import conforms
from socikit.validate.schemafiles import documents


def _check(name: str, what: str, data: bytes, canonical: bytes) -> dict[str, Any]:
    document = json.loads(data)
    if not conforms(name, document):
        # Only a failing document pays for jsonschema: it words what is wrong.
        from socikit.validate.schemas import schema_errors

        errors = schema_errors(name, document) or ["jsonschema finds no error (socikit's quick check is wrong)"]
        raise InvalidArtifactError(f"{what} does not match the {name} schema: {errors[0]}")
    if canonical != data:
        raise InvalidArtifactError(f"{what} is not in Go's canonical JSON form (the snapshotter would refuse it)")
    return dict(document)


def prepare() -> None:
    """Read the schema documents the checks below use (cached), while the layers are indexed."""
    documents()


def validate_soci_index(data: bytes, version: str) -> None:
    _check(f"soci-index-{version}", f"SOCI {version} index", data, ImageManifest.from_json(data).dumps())


def validate_converted_index(data: bytes, manifests: dict[str, bytes]) -> None:
    """The converted image index and its links: each SOCI entry's image-manifest-digest names a
    manifest of the index whose index-digest names that SOCI entry, on the same platform."""
    document = _check("soci-converted-index", "converted image index", data, ImageIndex.from_json(data).dumps())
    entries = {m["digest"]: m for m in document["manifests"]}
    for entry in document["manifests"]:
        if entry.get("artifactType") != mt.ARTIFACT_TYPE_SOCI_INDEX_V2:
            continue
        target = entry["annotations"][mt.ANNOTATION_IMAGE_MANIFEST_DIGEST]
        image_entry = entries.get(target)
        if image_entry is None or target not in manifests:
            raise InvalidArtifactError(
                f"SOCI index {entry['digest']} points at manifest {target}, which is not in the index"
            )
        manifest = json.loads(manifests[target])
        back = (manifest.get("annotations") or {}).get(mt.ANNOTATION_INDEX_DIGEST)
        if back != entry["digest"]:
            raise InvalidArtifactError(f"manifest {target} names SOCI index {back}, not {entry['digest']}")
        if image_entry.get("platform") and entry.get("platform"):
            a, b = image_entry["platform"], entry["platform"]
            if (a.get("os"), a.get("architecture")) != (b.get("os"), b.get("architecture")):
                raise InvalidArtifactError(
                    f"SOCI index {entry['digest']} and manifest {target} are for different platforms"
                )

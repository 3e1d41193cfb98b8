"""The JSON Schema documents socikit ships, by name, without any validator library.

Installed from a wheel the schemas are the package data `socikit/_schemas` (pyproject
force-includes the repository's `schemas/` there), found with importlib.resources; in a source
checkout they are read from `schemas/` at the repository root. Both the jsonschema validators
(`validate.schemas`) and the quick verdict of `validate.schemacheck` read them from here.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

SOCI_INDEX_V1 = "soci-index-v1"
SOCI_INDEX_V2 = "soci-index-v2"
IMAGE_MANIFEST = "oci-image-manifest"
IMAGE_INDEX = "oci-image-index"
CONVERTED_INDEX = "soci-converted-index"  # stricter: exactly what a v2 conversion writes
ZTOC_INFO = "ztoc-info"
PREFETCH = "soci-prefetch"
SCHEMA_NAMES = (
    SOCI_INDEX_V1,
    SOCI_INDEX_V2,
    IMAGE_MANIFEST,
    IMAGE_INDEX,
    CONVERTED_INDEX,
    ZTOC_INFO,
    PREFETCH,
)

SUFFIX = ".schema.json"


def schema_dir() -> Traversable:
    """Where the schema files are: package data when installed, else the repository's schemas/."""
    packaged = resources.files("socikit") / "_schemas"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "schemas"


@functools.cache
def documents() -> dict[str, dict[str, Any]]:
    """Schema name (file name without `.schema.json`) -> schema document."""
    out = {}
    for entry in sorted(schema_dir().iterdir(), key=lambda e: e.name):
        if entry.name.endswith(SUFFIX):
            out[entry.name[: -len(SUFFIX)]] = json.loads(entry.read_text(encoding="utf-8"))
    return out


def schema_id(name: str) -> str:
    """The URI schema `name` is known by (its `$id`; the file name without one): the base that
    `$ref`s in it resolve against."""
    return str(load_schema(name).get("$id", name + SUFFIX))


@functools.cache
def documents_by_id() -> dict[str, dict[str, Any]]:
    """Every schema document by the URI references name it with."""
    return {schema_id(name): doc for name, doc in documents().items()}


def load_schema(name: str) -> dict[str, Any]:
    """The schema document called `name` (see SCHEMA_NAMES)."""
    docs = documents()
    if name not in docs:
        raise KeyError(f"no schema named {name!r}; known: {', '.join(sorted(docs))}")
    return docs[name]


__all__ = [
    "CONVERTED_INDEX",
    "IMAGE_INDEX",
    "IMAGE_MANIFEST",
    "PREFETCH",
    "SCHEMA_NAMES",
    "SOCI_INDEX_V1",
    "SOCI_INDEX_V2",
    "ZTOC_INFO",
    "documents",
    "documents_by_id",
    "load_schema",
    "schema_dir",
    "schema_id",
]

"""The JSON Schemas socikit ships for SOCI artifacts (draft 2020-12, written from the SOCI fact
sheet and the OCI image-spec) and validators over them. jsonschema is imported here only.

Installed from a wheel the schemas are the package data `socikit/_schemas` (pyproject
force-includes the repository's `schemas/` there), found with importlib.resources; in a source
checkout they are read from `schemas/` at the repository root. Schemas refer to shared
definitions in sibling files by `$id`, resolved through one `referencing` registry.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator  # type: ignore[import-untyped]
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

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

_SUFFIX = ".schema.json"


def schema_dir() -> Traversable:
    """Where the schema files are: package data when installed, else the repository's schemas/."""
    packaged = resources.files("socikit") / "_schemas"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "schemas"


@functools.cache
def _documents() -> dict[str, dict[str, Any]]:
    """Schema name (file name without `.schema.json`) -> schema document."""
    out = {}
    for entry in sorted(schema_dir().iterdir(), key=lambda e: e.name):
        if entry.name.endswith(_SUFFIX):
            out[entry.name[: -len(_SUFFIX)]] = json.loads(entry.read_text(encoding="utf-8"))
    return out


@functools.cache
def _registry() -> Registry:
    docs = _documents()
    pairs = [
        (doc.get("$id", name + _SUFFIX), Resource.from_contents(doc, default_specification=DRAFT202012))
        for name, doc in docs.items()
    ]
    return Registry().with_resources(pairs)


def load_schema(name: str) -> dict[str, Any]:
    """The schema document called `name` (see SCHEMA_NAMES)."""
    docs = _documents()
    if name not in docs:
        raise KeyError(f"no schema named {name!r}; known: {', '.join(sorted(docs))}")
    return docs[name]


@functools.cache
def validator(name: str) -> Draft202012Validator:
    """A draft 2020-12 validator for schema `name` that resolves the shared definitions.

    The shipped schemas are not checked against the metaschema here (~75 ms each, on every
    convert): the test suite does that for every one of them."""
    return Draft202012Validator(load_schema(name), registry=_registry())


def schema_errors(name: str, document: Any) -> list[str]:
    """One line per violation of schema `name` by `document` (`<path>: <message>`, the root
    shown as `(root)`), deepest first; empty when valid."""
    errors = sorted(validator(name).iter_errors(document), key=lambda e: (-len(e.absolute_path), e.message))
    return [f"{'/'.join(str(p) for p in e.absolute_path) or '(root)'}: {_short(e.message)}" for e in errors]


def _short(message: str, limit: int = 160) -> str:
    return message if len(message) <= limit else message[: limit - 1] + "…"


__all__ = ["SCHEMA_NAMES", "load_schema", "schema_dir", "schema_errors", "validator"]

"""socikit's JSON Schemas (draft 2020-12), shipped in the wheel as `socikit/_schemas` and read from
the repository's `schemas/` in a development checkout. jsonschema is imported here only."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource



def _schema_dir() -> Path:
    packaged = Path(__file__).resolve().parents[1] / "_schemas"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "schemas"


@functools.cache
def _registry() -> Registry:
    """Every schema file by its `$id`, so schemas can `$ref` shared definitions in sibling files."""
    resources = []
    for path in sorted(_schema_dir().glob("*.schema.json")):
        schema = json.loads(path.read_text())
        resources.append((schema.get("$id", path.name), Resource.from_contents(schema)))
    return Registry().with_resources(resources)


@functools.cache
def validator(name: str) -> Draft202012Validator:
    path = _schema_dir() / f"{name}.schema.json"
    if not path.exists():
        raise KeyError(f"no schema named {name!r}")
    schema = json.loads(path.read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, registry=_registry())


def schema_errors(name: str, document: Any) -> list[str]:
    """One line per violation (JSON path: message), empty when `document` is valid."""
    errors = sorted(validator(name).iter_errors(document), key=lambda e: list(e.absolute_path))
    return [f"{'/'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}" for e in errors]

"""Validators over the JSON Schemas socikit ships (draft 2020-12, written from the SOCI fact
sheet and the OCI image-spec; the documents are loaded by `validate.schemafiles`). jsonschema is
imported here only. Schemas refer to shared definitions in sibling files by `$id`, resolved
through one `referencing` registry.
"""

from __future__ import annotations

import functools
from typing import Any

from jsonschema import Draft202012Validator  # type: ignore[import-untyped]
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from socikit.validate.schemafiles import documents_by_id, load_schema


@functools.cache
def _registry() -> Registry:
    return Registry().with_resources(
        (uri, Resource.from_contents(doc, default_specification=DRAFT202012)) for uri, doc in documents_by_id().items()
    )


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


__all__ = ["schema_errors", "validator"]

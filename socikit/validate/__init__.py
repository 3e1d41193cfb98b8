"""Validation of SOCI artifacts: JSON Schemas, Go-canonical bytes, v1/v2 links, ztocs against
their layers, and whether a default soci-snapshotter would lazily load the image.

    report = validate_image(source, deep=True)
    report.passed, report.checks, report.summary, report.to_json()
"""

from __future__ import annotations

import importlib
from typing import Any

# Resolved on first use (PEP 562): `convert` needs only the schema checks, not the layer scanner.
_EXPORTS = {
    "validate_image": "image",
    "CHECK_DESCRIPTIONS": "report",
    "CHECK_NAMES": "report",
    "CheckResult": "report",
    "ManifestVerdict": "report",
    "Report": "report",
    "Summary": "report",
    "SCHEMA_NAMES": "schemas",
    "load_schema": "schemas",
    "schema_errors": "schemas",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'socikit.validate' has no attribute {name!r}")
    return getattr(importlib.import_module(f"socikit.validate.{module}"), name)


__all__ = [
    "CHECK_DESCRIPTIONS",
    "CHECK_NAMES",
    "SCHEMA_NAMES",
    "CheckResult",
    "ManifestVerdict",
    "Report",
    "Summary",
    "load_schema",
    "schema_errors",
    "validate_image",
]

"""Validation of SOCI artifacts: JSON Schemas, Go-canonical bytes, v1/v2 links, ztocs against
their layers, and whether a default soci-snapshotter would lazily load the image.

    report = validate_image(source, deep=True)
    report.passed, report.checks, report.summary, report.to_json()
"""

from __future__ import annotations

from socikit.validate.image import validate_image
from socikit.validate.report import (
    CHECK_DESCRIPTIONS,
    CHECK_NAMES,
    CheckResult,
    ManifestVerdict,
    Report,
    Summary,
)
from socikit.validate.schemas import SCHEMA_NAMES, load_schema, schema_errors

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

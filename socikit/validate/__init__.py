"""Validation of SOCI artifacts: JSON Schemas, Go-canonical bytes, v1/v2 links, ztocs against
their layers, and whether a default soci-snapshotter would lazily load the image.

    report = validate_image(source, deep=True)
    report.passed, report.checks, report.summary, report.to_json()
"""

from __future__ import annotations

from socikit._lazy import lazy_exports

# Resolved on first use (PEP 562): `convert` needs only the schema checks, not the layer scanner.
_EXPORTS: dict[str, str | tuple[str, str]] = {
    "validate_image": "socikit.validate.image",
    "CHECK_DESCRIPTIONS": "socikit.validate.report",
    "CHECK_NAMES": "socikit.validate.report",
    "CheckResult": "socikit.validate.report",
    "ManifestVerdict": "socikit.validate.report",
    "Report": "socikit.validate.report",
    "Summary": "socikit.validate.report",
    "SCHEMA_NAMES": "socikit.validate.schemafiles",
    "load_schema": "socikit.validate.schemafiles",
    "schema_errors": "socikit.validate.schemas",
}


__getattr__ = lazy_exports(__name__, _EXPORTS)


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

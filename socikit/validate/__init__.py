"""Validation of SOCI artifacts: JSON Schemas (`schemas/`), Go-canonical bytes, cross-links."""

"""Conversion pipelines: index layers, build SOCI indexes, write or push the result."""

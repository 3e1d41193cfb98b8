"""SOCI ztoc format: model, builder, (de)serialization and span reads."""

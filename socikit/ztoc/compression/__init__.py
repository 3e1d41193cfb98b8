"""Compression-specific halves of a ztoc (the "zinfo"): gzip checkpoints and uncompressed tars."""

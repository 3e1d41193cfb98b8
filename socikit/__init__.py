"""socikit: SOCI (Seekable OCI) tooling — ztocs, SOCI indexes, conversion, validation."""

from socikit.__about__ import __version__

__all__ = ["__version__"]

"""socikit: SOCI (Seekable OCI) tooling — ztocs, SOCI indexes, conversion, validation.

The stable library surface is re-exported here and imported on first use, so `import socikit`
stays cheap for callers that need one piece.
"""

from __future__ import annotations

from socikit.__about__ import __version__  # noqa: F401  (re-exported)
from socikit._lazy import lazy_exports

_EXPORTS: dict[str, str | tuple[str, str]] = {
    "ConvertOptions": "socikit.pipeline.convert",
    "ImageReference": "socikit.content.reference",
    "Ztoc": "socikit.ztoc.model",
    "build_soci_index": "socikit.soci.index",
    "build_ztoc": "socikit.ztoc.builder",
    "convert_image": "socikit.pipeline.convert",
    "dumps_ztoc": ("socikit.ztoc.serialize", "dumps"),
    "loads_ztoc": ("socikit.ztoc.serialize", "loads"),
    "open_sink": "socikit.transports",
    "open_source": "socikit.transports",
    "parse_reference": "socikit.content.reference",
    "read_file": "socikit.ztoc.extract",
    "validate_image": "socikit.validate.image",
}

__all__ = sorted([*_EXPORTS, "__version__"])


__getattr__ = lazy_exports(__name__, _EXPORTS)

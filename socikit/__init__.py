"""socikit: SOCI (Seekable OCI) tooling — ztocs, SOCI indexes, conversion, validation.

The stable library surface is re-exported here and imported on first use, so `import socikit`
stays cheap for callers that need one piece.
"""

from __future__ import annotations

import importlib
from typing import Any

from socikit.__about__ import __version__  # noqa: F401  (re-exported)

_EXPORTS = {
    "ConvertOptions": "socikit.pipeline.convert",
    "ImageReference": "socikit.content.reference",
    "Ztoc": "socikit.ztoc.model",
    "build_soci_index": "socikit.soci.index",
    "build_ztoc": "socikit.ztoc.builder",
    "convert_image": "socikit.pipeline.convert",
    "dumps_ztoc": ("socikit.ztoc.serialize", "dumps"),
    "loads_ztoc": ("socikit.ztoc.serialize", "loads"),
    "open_sink": "socikit.content.open",
    "open_source": "socikit.content.open",
    "parse_reference": "socikit.content.reference",
    "read_file": "socikit.ztoc.extract",
    "validate_image": "socikit.validate.image",
}

__all__ = sorted([*_EXPORTS, "__version__"])


def __getattr__(name: str) -> Any:
    target = _EXPORTS.get(name)
    if target is None:
        raise AttributeError(f"module 'socikit' has no attribute {name!r}")
    module, attr = target if isinstance(target, tuple) else (target, name)
    return getattr(importlib.import_module(module), attr)

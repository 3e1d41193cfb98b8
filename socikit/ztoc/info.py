"""The JSON view of a ztoc that `soci ztoc info` prints (reference cmd/soci/commands/ztoc/info.go)."""

from __future__ import annotations

from typing import Any

from socikit.ztoc.extract import zinfo_of
from socikit.ztoc.model import Ztoc


def ztoc_info(ztoc: Ztoc, *, size: int) -> dict[str, Any]:
    """Summary of a ztoc whose serialized form is `size` bytes, keys in the reference's order.

    Files are listed by uncompressed offset (the reference sorts on decode); `start_span` and
    `end_span` are the spans of the entry's first byte and of `offset + size`."""
    zinfo = zinfo_of(ztoc)
    files = []
    multi_span = 0
    for entry in sorted(ztoc.toc, key=lambda e: e.uncompressed_offset):
        start = zinfo.span_of(entry.uncompressed_offset)
        end = zinfo.span_of(entry.uncompressed_offset + entry.uncompressed_size)
        if start != end:
            multi_span += 1
        files.append(
            {
                "filename": entry.name,
                "offset": entry.uncompressed_offset,
                "size": entry.uncompressed_size,
                "type": entry.type,
                "start_span": start,
                "end_span": end,
            }
        )
    return {
        "version": ztoc.version,
        "build_tool": ztoc.build_tool_identifier,
        "size": size,
        "span_size": zinfo.span_size,
        "num_spans": ztoc.compression_info.max_span_id + 1,
        "num_files": len(ztoc.toc),
        "num_multi_span_files": multi_span,
        "files": files or None,  # Go marshals the nil slice of an empty TOC as null
    }

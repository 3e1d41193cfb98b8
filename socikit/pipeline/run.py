"""Entry points that take reference strings: open the source and destination, run the pipeline,
close everything. The CLI calls these; library users may call `convert_image` directly."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from socikit.content.reference import ImageReference, parse_reference
from socikit.errors import ImageReferenceError
from socikit.oci import mediatypes as mt
from socikit.oci.descriptor import Descriptor
from socikit.pipeline.cache import ZtocCache
from socikit.pipeline.convert import ConversionResult, ConvertOptions, TagMove, convert_image
from socikit.pipeline.events import Event
from socikit.transports import SINK_TRANSPORTS, SOURCE_ONLY_TRANSPORTS, open_sink, open_source

if TYPE_CHECKING:
    from socikit.registry.options import RegistryOptions


def run_convert(
    source_ref: str,
    destination_ref: str,
    options: ConvertOptions,
    *,
    registry: RegistryOptions | None = None,
    cache: ZtocCache | None = None,
    validate: bool = True,
    on_event: Callable[[Event], None] | None = None,
) -> ConversionResult:
    """`socikit convert SRC DST`. A failure leaves an OCI layout or archive destination exactly as
    it was (the sink undoes its writes when the `with` block is left on an exception)."""
    src = parse_reference(source_ref)
    dst = parse_reference(destination_ref)
    if dst.transport in SOURCE_ONLY_TRANSPORTS:
        raise ImageReferenceError(f"{dst.transport}: can only be a source; write to {SINK_TRANSPORTS}")
    with contextlib.ExitStack() as stack:
        source = stack.enter_context(open_source(src, registry_options=registry))
        sink = stack.enter_context(open_sink(dst, registry_options=registry))
        root = source.resolve()
        result = convert_image(source, sink, options, cache=cache, validate=validate, on_event=on_event)
    moved = _tag_move(src, dst, root, result.result)
    return replace(result, tag_move=moved) if moved is not None else result


def _tag_move(src: ImageReference, dst: ImageReference, root: Descriptor, result: Descriptor) -> TagMove | None:
    """The tag an in-place conversion moved: source and destination are the same OCI layout or
    archive and the destination's tag is the one the source image was found by."""
    if src.transport != dst.transport or src.transport not in ("oci", "oci-archive") or root.digest == result.digest:
        return None
    if not _same_path(src.path, dst.path):
        return None
    tag = dst.tag or "latest"
    if root.annotations.get(mt.ANNOTATION_REF_NAME, "") != tag:
        return None
    return TagMove(str(dst) if dst.tag else f"{dst}:{tag}", root.digest, result.digest)


def _same_path(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def run_create(
    source_ref: str,
    options: ConvertOptions,
    *,
    root: Path,
    registry: RegistryOptions | None = None,
    cache: ZtocCache | None = None,
    validate: bool = True,
    on_event: Callable[[Event], None] | None = None,
) -> ConversionResult:
    """`socikit create SRC`: v1 indexes into the local store, for `socikit push --v1`."""
    from socikit.pipeline.store import LocalStore  # convert never needs the store (or content.layout with it)

    with open_source(parse_reference(source_ref), registry_options=registry) as source:
        store = LocalStore(root, image_ref=str(parse_reference(source_ref)))
        return convert_image(
            source, store, options, cache=cache, validate=validate, on_event=on_event, copy_image=False
        )


__all__ = ["run_convert", "run_create"]

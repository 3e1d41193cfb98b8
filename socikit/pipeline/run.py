"""Entry points that take reference strings: open the source and destination, run the pipeline,
close everything. The CLI calls these; library users may call `convert_image` directly."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from socikit.content.base import ImageSource
from socikit.content.open import open_sink, open_source
from socikit.content.reference import parse_reference
from socikit.errors import ImageReferenceError
from socikit.pipeline.cache import ZtocCache
from socikit.pipeline.convert import ConversionResult, ConvertOptions, convert_image
from socikit.pipeline.events import Event
from socikit.pipeline.store import LocalStore

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
    """`socikit convert SRC DST`."""
    dst = parse_reference(destination_ref)
    if dst.transport == "docker-daemon":
        raise ImageReferenceError("docker-daemon: can only be a source; write to oci:, oci-archive: or a registry")
    with contextlib.ExitStack() as stack:
        source = _opened_source(stack, source_ref, registry)
        sink = open_sink(dst, registry_options=registry)
        stack.callback(sink.close)
        return convert_image(source, sink, options, cache=cache, validate=validate, on_event=on_event)


def _opened_source(stack: contextlib.ExitStack, reference: str, registry: RegistryOptions | None) -> ImageSource:
    source = open_source(parse_reference(reference), registry_options=registry)
    stack.callback(source.close)
    return source


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
    with contextlib.ExitStack() as stack:
        source = _opened_source(stack, source_ref, registry)
        store = LocalStore(root, image_ref=str(parse_reference(source_ref)))
        return convert_image(
            source, store, options, cache=cache, validate=validate, on_event=on_event, copy_image=False
        )

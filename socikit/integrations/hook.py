"""The post-build hook: convert exactly what a build produced and push or write the result.

A build is named by what buildx reports (socikit.integrations.metadata) or by the OCI archive it
exported. The image is always read by digest, never through a tag that may have moved since the
build. Without an explicit destination the result goes back to the names the build was given: a
v2 conversion retags them to the converted index, a v1 conversion adds the SOCI indexes as
referrers and leaves the tags where they were.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from socikit.errors import ImageError
from socikit.integrations.metadata import BuildRecord

if TYPE_CHECKING:
    from socikit.pipeline.cache import ZtocCache
    from socikit.pipeline.convert import ConversionResult, ConvertOptions
    from socikit.pipeline.events import Event
    from socikit.registry.options import RegistryOptions


@dataclass(frozen=True, slots=True)
class HookJob:
    """One image to convert: where to read it, what the build said it is, where to write it."""

    source: str  # a reference string that names the build by digest
    destinations: tuple[str, ...]
    expected: BuildRecord | None = None  # None: an OCI archive without a metadata file


@dataclass(frozen=True, slots=True)
class HookOutcome:
    source: str
    destination: str
    result: ConversionResult


def plan_jobs(records: Sequence[BuildRecord], *, oci_archive: Path | None, destination: str | None) -> list[HookJob]:
    """What to convert and where to, from the build's metadata and/or OCI archive (pure)."""
    if oci_archive is not None:
        if len(records) > 1:
            raise ImageError(
                f"an OCI archive holds one build, but the metadata file describes {len(records)} "
                "(bake targets): run the hook once per target"
            )
        record = records[0] if records else None
        source = f"oci-archive:{oci_archive}" + (f"@{record.digest}" if record else "")
        destinations = (destination,) if destination else (record.names if record else ())
        if not destinations:
            raise ImageError(f"name where the converted image goes: socikit hook --oci-archive {oci_archive} DST")
        return [HookJob(source, destinations, record)]
    if not records:
        raise ImageError("give --metadata-file FILE (written by buildx --metadata-file) or --oci-archive FILE")
    if destination and len(records) > 1:
        raise ImageError(
            f"the metadata file describes {len(records)} builds (bake targets {', '.join(r.target for r in records)}): "
            "leave out DST to convert each in place"
        )
    return [
        HookJob(record.source_reference(), (destination,) if destination else record.names, record)
        for record in records
    ]


def _check_built(job: HookJob, root_digest: str, root_size: int, root_media_type: str) -> None:
    """The image we are about to convert is the one the build reported."""
    expected = job.expected
    if expected is None:
        return
    problems = []
    if root_digest != expected.digest:
        problems.append(f"digest {root_digest}, not {expected.digest}")
    if expected.size is not None and root_size != expected.size:
        problems.append(f"size {root_size}, not {expected.size}")
    if expected.media_type and root_media_type != expected.media_type:
        problems.append(f"media type {root_media_type}, not {expected.media_type}")
    if problems:
        raise ImageError(f"{job.source} is not what the build reported: {'; '.join(problems)}")


def run_jobs(
    jobs: Sequence[HookJob],
    options: ConvertOptions,
    *,
    registry: RegistryOptions | None = None,
    cache: ZtocCache | None = None,
    validate: bool = True,
    on_event: Callable[[Event], None] | None = None,
) -> list[HookOutcome]:
    """Convert each job's image to each of its destinations. Layers are indexed once per source
    and destination unless `cache` holds their ztocs (then a second destination costs copies only)."""
    from socikit.pipeline.convert import convert_image
    from socikit.transports import open_sink, open_source

    outcomes = []
    for job in jobs:
        with contextlib.ExitStack() as stack:
            source = open_source(job.source, registry_options=registry)
            stack.callback(source.close)
            root = source.resolve()
            _check_built(job, root.digest, root.size, root.media_type)
            for destination in job.destinations:
                sink = open_sink(destination, registry_options=registry)
                try:
                    result = convert_image(source, sink, options, cache=cache, validate=validate, on_event=on_event)
                finally:
                    sink.close()
                outcomes.append(HookOutcome(job.source, destination, result))
    return outcomes


__all__ = ["HookJob", "HookOutcome", "plan_jobs", "run_jobs"]

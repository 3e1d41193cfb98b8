#!/usr/bin/env python3
"""Benchmark `validate` (deep) against building the same image's ztocs, in one run.

Makes (and caches under .bench/) a sample image of real files with scripts/make_sample_image.py,
about 200 MB uncompressed in two gzip layers, converts it to SOCI v2 once (not timed), then times
in the same process, on the same blobs:
  - building every layer's ztoc with `socikit.ztoc.builder.build_ztoc` (one after the other), also
    with serialization to flatbuffer bytes (`socikit.ztoc.serialize.dumps`);
  - building them as `socikit convert` does: `socikit.pipeline.layers.index_layers` with one job
    per core (layers on worker processes, serialized);
  - `socikit.validate.validate_image(..., deep=True)` over the converted image (every check,
    every file read through spans): the ztocs are reproduced from the blobs, so every layer check
    is settled by the rebuilt ztoc being identical;
  - the same with `reproduce=False`: the check-by-check scan that validate falls back to for a
    ztoc it cannot reproduce (another producer's checkpoints, or a broken one);
  - the check-by-check scan with `sample=32` (32 files per layer through spans).
The deep validation should take no longer than the ztoc builds. Timings vary between machines
and runs; compare the ratio.

    python3 scripts/bench_validate.py [--mb 200] [--repeat 3] [--fresh]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from make_sample_image import build_image  # noqa: E402

from socikit.content.layout import LayoutSource  # noqa: E402
from socikit.oci import mediatypes as mt  # noqa: E402
from socikit.oci.descriptor import Descriptor  # noqa: E402
from socikit.pipeline.convert import ConvertOptions  # noqa: E402
from socikit.pipeline.layers import index_layers  # noqa: E402
from socikit.pipeline.run import run_convert  # noqa: E402
from socikit.validate import validate_image  # noqa: E402
from socikit.ztoc.builder import build_ztoc  # noqa: E402
from socikit.ztoc.serialize import dumps  # noqa: E402

CACHE = REPO / ".bench" / "validate"


def _sources(total_mb: int) -> list[tuple[Path, int]]:
    first = total_mb * 3 // 5
    return [(Path("/usr/lib"), first), (Path("/usr/share"), total_mb - first)]


def prepare(total_mb: int, fresh: bool) -> tuple[Path, Path]:
    image, converted = CACHE / f"image-{total_mb}", CACHE / f"converted-{total_mb}"
    if fresh:
        shutil.rmtree(CACHE, ignore_errors=True)
    if not (image / "index.json").exists():
        shutil.rmtree(image, ignore_errors=True)
        build_image(image, _sources(total_mb))
    if not (converted / "index.json").exists():
        shutil.rmtree(converted, ignore_errors=True)
        run_convert(
            f"oci:{image}:latest", f"oci:{converted}:latest", ConvertOptions(min_layer_size=0), validate=False
        )
    return image, converted


def layers_of(image: Path) -> list[dict]:
    index = json.loads((image / "index.json").read_bytes())
    manifest_digest = index["manifests"][0]["digest"]
    manifest = json.loads((image / "blobs" / "sha256" / manifest_digest.split(":")[1]).read_bytes())
    return list(manifest["layers"])


def time_builds(image: Path, *, serialize: bool = False) -> tuple[float, int]:
    """Seconds to build every layer's ztoc (and, with `serialize`, its flatbuffer bytes)."""
    started = time.perf_counter()
    usize = 0
    for layer in layers_of(image):
        with open(image / "blobs" / "sha256" / layer["digest"].split(":")[1], "rb") as blob:
            result = build_ztoc(blob, span_size=mt.DEFAULT_SPAN_SIZE, build_tool_identifier="bench")
        if serialize:
            dumps(result.ztoc)
        usize += result.ztoc.uncompressed_archive_size
    return time.perf_counter() - started, usize


def time_index_layers(image: Path) -> float:
    """Seconds for the converter's own layer indexing (one job per core) of every layer."""
    layers = [Descriptor.from_json(layer) for layer in layers_of(image)]
    started = time.perf_counter()
    index_layers(
        LayoutSource(image, tag="latest"), layers, span_size=mt.DEFAULT_SPAN_SIZE, min_layer_size=0,
        build_tool_identifier="bench", cache=None, jobs=os.cpu_count() or 1,
    )
    return time.perf_counter() - started


def time_validate(converted: Path, **kwargs: object) -> float:
    started = time.perf_counter()
    report = validate_image(LayoutSource(converted, tag="latest"), **kwargs)  # type: ignore[arg-type]
    elapsed = time.perf_counter() - started
    if not report.passed:
        raise SystemExit(f"validation failed: {[c.to_json() for c in report.failures]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mb", type=int, default=200, help="uncompressed size of the sample image (MB)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each measurement; the best is kept")
    parser.add_argument("--fresh", action="store_true", help="rebuild the cached sample image")
    args = parser.parse_args()
    image, converted = prepare(args.mb, args.fresh)
    build = min(time_builds(image)[0] for _ in range(args.repeat))
    build_bytes, usize = min(time_builds(image, serialize=True) for _ in range(args.repeat))
    pipeline = min(time_index_layers(image) for _ in range(args.repeat))
    deep = min(time_validate(converted, deep=True) for _ in range(args.repeat))
    scanned = min(time_validate(converted, deep=True, reproduce=False) for _ in range(args.repeat))
    sampled = min(time_validate(converted, sample=32, reproduce=False) for _ in range(args.repeat))
    mb = usize / 1e6
    print(f"image: {len(layers_of(image))} gzip layers, {mb:.0f} MB uncompressed")
    print(f"ztoc build (all layers):  {build:6.2f} s  {mb / build:6.0f} MB/s")
    print(f"  + serialization:        {build_bytes:6.2f} s  {mb / build_bytes:6.0f} MB/s")
    print(f"  as convert builds them: {pipeline:6.2f} s  {mb / pipeline:6.0f} MB/s  ({os.cpu_count()} jobs)")
    print(f"validate --deep:          {deep:6.2f} s  {mb / deep:6.0f} MB/s  ({deep / build:.2f}x build time, "
          f"{deep / pipeline:.2f}x convert's)")
    ratio = scanned / build
    print(f"  check by check:         {scanned:6.2f} s  {mb / scanned:6.0f} MB/s  ({ratio:.2f}x build time)")
    ratio = sampled / build
    print(f"  check by check, 32 files: {sampled:4.2f} s  {mb / sampled:6.0f} MB/s  ({ratio:.2f}x build time)")


if __name__ == "__main__":
    main()

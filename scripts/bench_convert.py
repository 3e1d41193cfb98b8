#!/usr/bin/env python3
"""Benchmark `socikit convert` (OCI layout to OCI layout) against inflating its layers.

Builds (cached under .bench/) an OCI layout with three gzip layers of real files of unequal
sizes (128, 80 and 48 MB uncompressed: one large layer and two smaller ones, as images mostly
are), then in one run, alternating:
  - baseline: one Python process per layer inflating it with zlib-ng's `decompressobj` (no
    hashing, no TOC); their times summed
  - `socikit convert --no-cache oci:SRC:latest oci:DST:latest` with the default --jobs (the
    number of cores) and with `--jobs 1`
and prints every run and convert / sum of inflate (issue 12's target: <= 0.75 on 2 cores with the
default jobs). Timings vary between runs on a shared machine: compare the ratios of runs made
side by side.

    python3 scripts/bench_convert.py [--repeat 5] [--checkout DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
from benchenv import INFLATE, SOCIKIT, Run, add_checkout_option, compile_socikit, run  # noqa: E402
from make_sample_image import build_image  # noqa: E402

CACHE = REPO / ".bench"
LAYERS = [(Path("/usr/lib"), 128), (Path(sys.prefix) / "lib", 80), (Path("/usr/share/doc"), 48)]


def image() -> Path:
    path = CACHE / "convert-image-3"
    if not (path / "index.json").exists():
        shutil.rmtree(path, ignore_errors=True)
        build_image(path, LAYERS)
    return path


def layer_blobs(layout: Path) -> list[Path]:
    index = json.loads((layout / "index.json").read_text())
    manifest = json.loads((layout / "blobs" / "sha256" / index["manifests"][0]["digest"][7:]).read_text())
    return [layout / "blobs" / "sha256" / layer["digest"][7:] for layer in manifest["layers"]]


def summed(runs: list[Run]) -> Run:
    return Run(sum(r.wall for r in runs), sum(r.cpu for r in runs), max(r.rss for r in runs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5)
    add_checkout_option(parser)
    args = parser.parse_args()
    src = image()
    blobs = layer_blobs(src)
    compile_socikit(args.checkout)
    inflate: list[Run] = []
    one: list[Run] = []
    default: list[Run] = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeat):
            inflate.append(summed([run([sys.executable, "-c", INFLATE, str(b)]) for b in blobs]))
            for jobs, results in ((None, default), ("1", one)):
                dst = Path(tmp) / f"out-{i}-{jobs}"
                argv = [*SOCIKIT, "convert", "--no-cache", "--progress", "none", f"oci:{src}:latest",
                        f"oci:{dst}:latest"]  # fmt: skip
                if jobs:
                    argv += ["--jobs", jobs]
                results.append(run(argv, args.checkout))
                shutil.rmtree(dst)
    sizes = ", ".join(f"{b.stat().st_size / 1e6:.0f} MB" for b in blobs)
    print(f"image: 3 gzip layers ({sizes}); socikit from {args.checkout}")
    print("  runs: sum of zlib-ng inflate / convert (default jobs) / convert --jobs 1, wall seconds and ratios;"
          " CPU seconds")
    for i, (g, d, o) in enumerate(zip(inflate, default, one, strict=True)):
        print(f"    {i + 1}: {g.wall:6.3f}  {d.wall:6.3f}  {o.wall:6.3f}   "
              f"{d.wall / g.wall:5.2f}  {o.wall / g.wall:5.2f}    cpu {g.cpu:5.2f}  {d.cpu:5.2f}  {o.cpu:5.2f}")
    best = min(r.wall for r in inflate)
    for label, results in (("default jobs", default), ("--jobs 1", one)):
        median = statistics.median(r.wall / g.wall for r, g in zip(results, inflate, strict=True))
        print(f"  convert ({label}) / sum of inflate: best {min(r.wall for r in results) / best:.2f}, "
              f"median of runs {median:.2f}")  # fmt: skip
    print("  target: <= 0.75 with the default jobs on 2 cores")

if __name__ == "__main__":
    main()

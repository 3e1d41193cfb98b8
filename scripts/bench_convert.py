#!/usr/bin/env python3
"""Benchmark `socikit convert` on a three-layer image against `gzip -dc` of its layers.

Builds (cached under .bench/) an OCI layout with three gzip layers of >= 60 MB of real files each,
then in one run times:
  - `gzip -dc layer > /dev/null` for each layer (their sum is the baseline)
  - `socikit convert oci:SRC:latest oci:DST:latest --jobs 1`
  - the same with the default --jobs (one per core)
and prints convert time / sum of gzip -dc times (target: <= 0.5 with the default jobs on 2 cores).

    python3 scripts/bench_convert.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
from benchenv import SOCIKIT, compile_socikit  # noqa: E402
from make_sample_image import build_image  # noqa: E402

CACHE = REPO / ".bench"
LAYERS = [(Path("/usr/share/doc"), 64), (Path(sys.prefix) / "lib", 64), (Path("/usr/lib"), 64)]


def image() -> Path:
    path = CACHE / "convert-image"
    if not (path / "index.json").exists():
        shutil.rmtree(path, ignore_errors=True)
        build_image(path, LAYERS)
    return path


def layer_blobs(layout: Path) -> list[Path]:
    index = json.loads((layout / "index.json").read_text())
    manifest = json.loads((layout / "blobs" / "sha256" / index["manifests"][0]["digest"][7:]).read_text())
    return [layout / "blobs" / "sha256" / layer["digest"][7:] for layer in manifest["layers"]]


def timed(argv: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    src = image()
    blobs = layer_blobs(src)
    socikit = SOCIKIT
    compile_socikit()
    gz, one, default = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeat):
            gz.append(sum(timed(["gzip", "-dc", str(b)]) for b in blobs))
            for jobs, results in (("1", one), (None, default)):
                dst = Path(tmp) / f"out-{i}-{jobs}"
                argv = [*socikit, "convert", "--no-cache", "--progress", "none",
                        f"oci:{src}:latest", f"oci:{dst}:latest"]
                if jobs:
                    argv += ["--jobs", jobs]
                results.append(timed(argv))
                shutil.rmtree(dst)
    g, o, d = min(gz), min(one), min(default)
    sizes = ", ".join(f"{b.stat().st_size / 1e6:.0f} MB" for b in blobs)
    print(f"image: 3 gzip layers ({sizes}); best of {args.repeat}")
    print(f"  sum of gzip -dc        {g:6.2f} s")
    print(f"  convert --jobs 1       {o:6.2f} s   ratio {o / g:.2f}")
    print(f"  convert (default jobs) {d:6.2f} s   ratio {d / g:.2f}")


if __name__ == "__main__":
    main()

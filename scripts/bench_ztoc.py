#!/usr/bin/env python3
"""Benchmark `socikit ztoc build` against zlib-ng inflating the same blob, as whole processes.

Layers (built once, cached under .bench/):
  - `real`: a PAX tar of real files from system directories (`--size-mb`, default 160)
  - `1gb`:  the same kind of tar repeated under other prefixes up to 1024 MB (`--big`)
  - `small`: 200,000 small generated files, a node_modules-like layer (`--small-files N`),
    from a seeded generator, so it is the same on every machine
each compressed with `gzip -6 -n`. Then, in one run, alternating on the same blob:
  - baseline: a Python process inflating the blob with zlib-ng's `decompressobj` in 256 KiB
    chunks (no hashing, no TOC): the physical limit of building a ztoc from one gzip stream
  - `socikit ztoc build BLOB -o OUT` (checkpoints, TOC, span digests, blob digest, serialization,
    atomic write), with its peak RSS
and prints every run and the targets of issue 12: build / inflate <= 1.2 on `real` and `1gb`;
on `small`, time beyond inflate <= 2 us per file and peak RSS < 150 MB. Timings vary between
machines and runs (this one is shared); the ratios of runs made side by side are what count.

    python3 scripts/bench_ztoc.py [--layers real,1gb,small] [--repeat 5]
"""

from __future__ import annotations

import argparse
import io
import os
import random
import statistics
import subprocess
import sys
import tarfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
from benchenv import INFLATE, SOCIKIT, add_checkout_option, compile_socikit, run  # noqa: E402

CACHE = REPO / ".bench"
SOURCES = [Path("/usr/share/doc"), Path("/usr/lib/python3"), Path(sys.prefix) / "lib", Path("/usr/share/perl")]


def real_files_tar(path: Path, size_mb: int) -> int:
    """A PAX tar of real files, repeated under r0/, r1/, ... until `size_mb`; its entry count."""
    limit = size_mb << 20
    written = entries = 0
    with open(path, "wb") as raw, tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        round_no = 0
        while written < limit:
            for source in SOURCES:
                for dirpath, dirnames, filenames in os.walk(source):
                    dirnames.sort()
                    for name in sorted(filenames):
                        file = Path(dirpath) / name
                        if not file.is_file() or file.is_symlink():
                            continue
                        try:
                            tar.add(file, arcname=f"r{round_no}{file}", recursive=False)
                        except OSError:
                            continue
                        entries += 1
                        written += file.stat().st_size + 512
                        if written >= limit:
                            return entries
            round_no += 1
    return entries


_WORDS = ("function", "return", "const", "var", "let", "module", "exports", "require", "this", "null",
          "undefined", "true", "false", "if", "else", "for", "while", "new", "prototype", "length")


def small_files_tar(path: Path, files: int, seed: int = 12) -> int:
    """A node_modules-like layer: `files` small text files (median ~300 bytes) in package
    directories, ustar headers as npm-installed trees get; its entry count."""
    rng = random.Random(seed)
    entries = 0
    with open(path, "wb") as raw, tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:

        def add(name: str, data: bytes | None) -> None:
            nonlocal entries
            info = tarfile.TarInfo(name)
            info.mtime, info.uname, info.gname = 499162500, "root", "root"
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
            entries += 1

        made = 0
        package = 0
        while made < files:
            base = f"app/node_modules/pkg-{package:05d}"
            add(base + "/", None)
            for sub in ("", "lib/", "dist/")[: rng.randint(1, 3)]:
                if sub:
                    add(f"{base}/{sub}", None)
                for i in range(rng.randint(3, 25)):
                    size = min(20000, int(rng.lognormvariate(5.7, 1.0)))
                    words = rng.choices(_WORDS, k=size // 6 + 1)
                    data = " ".join(words).encode()[:size]
                    add(f"{base}/{sub}file{i}.js", data)
                    made += 1
            package += 1
    return entries


def prepare(kind: str, size_mb: int, small_files: int) -> tuple[Path, int, int]:
    """(blob, uncompressed size, entries) of a cached layer."""
    CACHE.mkdir(exist_ok=True)
    label = {"real": f"real-{size_mb}mb", "1gb": "real-1024mb", "small": f"small-{small_files}"}[kind]
    blob = CACHE / f"layer-{label}.tar.gz"
    meta = CACHE / f"layer-{label}.meta"
    if not blob.exists() or not meta.exists():
        tar_path = CACHE / f"layer-{label}.tar"
        if kind == "small":
            entries = small_files_tar(tar_path, small_files)
        else:
            entries = real_files_tar(tar_path, 1024 if kind == "1gb" else size_mb)
        with open(tar_path, "rb") as src, open(str(blob) + ".tmp", "wb") as dst:
            subprocess.run(["gzip", "-6", "-n", "-c"], stdin=src, stdout=dst, check=True)
        os.replace(str(blob) + ".tmp", blob)
        meta.write_text(f"{tar_path.stat().st_size} {entries}")
        tar_path.unlink()
    usize, entries = (int(v) for v in meta.read_text().split())
    return blob, usize, entries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layers", default="real,1gb,small", help="comma-separated: real, 1gb, small")
    parser.add_argument("--size-mb", type=int, default=160, help="uncompressed size of the `real` layer")
    parser.add_argument("--small-files", type=int, default=200_000, help="files in the `small` layer")
    parser.add_argument("--repeat", type=int, default=5, help="runs of each process, alternating")
    add_checkout_option(parser)
    args = parser.parse_args()
    compile_socikit(args.checkout)
    for kind in args.layers.split(","):
        blob, usize, entries = prepare(kind, args.size_mb, args.small_files)
        out = CACHE / "bench.ztoc"
        inflate, build = [], []
        for _ in range(args.repeat):
            inflate.append(run([sys.executable, "-c", INFLATE, str(blob)]))
            build.append(run([*SOCIKIT, "ztoc", "build", str(blob), "-o", str(out)], args.checkout))
        print(f"layer {kind}: {blob.name}, {usize / 1e6:.0f} MB uncompressed, "
              f"{blob.stat().st_size / 1e6:.1f} MB gzip -6, {entries} entries; socikit from {args.checkout}")
        print("  runs: zlib-ng inflate / socikit ztoc build, wall seconds and ratio; CPU seconds and ratio")
        for i, (a, b) in enumerate(zip(inflate, build, strict=True)):
            print(f"    {i + 1}: {a.wall:6.3f}  {b.wall:6.3f}  {b.wall / a.wall:5.2f}    "
                  f"cpu {a.cpu:6.2f}  {b.cpu:6.2f}  {b.cpu / a.cpu:5.2f}")
        best_inflate = min(r.wall for r in inflate)
        best_build = min(r.wall for r in build)
        median = statistics.median(b.wall / a.wall for a, b in zip(inflate, build, strict=True))
        print(f"  best: inflate {best_inflate:.3f} s, build {best_build:.3f} s; "
              f"peak RSS {max(r.rss for r in build):.1f} MiB")
        if kind == "small":
            beyond = (best_build - best_inflate) / entries * 1e6
            print(f"  time beyond inflate: {beyond:.2f} us/file (best runs; target <= 2)   "
                  f"peak RSS {max(r.rss for r in build):.0f} MiB (target < 150)")
        print(f"  ratio build/inflate: best {best_build / best_inflate:.2f}, median of pairs {median:.2f} "
              f"(target <= 1.2)")

if __name__ == "__main__":
    main()

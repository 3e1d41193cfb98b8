#!/usr/bin/env python3
"""Benchmark `socikit ztoc build` against `gzip -dc` and Python's zlib on the same real layer.

Builds (and caches under .bench/) a PAX tar of real files from system directories, repeated under
different prefixes until it reaches the requested size, compresses it with `gzip -6`, then times in
one run, on the same blob:
  - `gzip -dc blob > /dev/null`
  - Python's zlib decompressing the blob in 256 KiB chunks (plain decompression, nothing else)
  - `socikit ztoc build blob -o out` (checkpoints + TOC + span digests + blob digest, one pass)
and prints uncompressed MB/s for each, the ratios, and the peak RSS of the socikit process.
Timings vary between machines and runs; the ratios are what to compare.

    python3 scripts/bench_ztoc.py --size-mb 160 [--size-mb 1024] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tarfile
import time
import zlib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
from benchenv import SOCIKIT, compile_socikit  # noqa: E402

CACHE = REPO / ".bench"
SOURCES = [Path("/usr/share/doc"), Path("/usr/lib/python3"), Path(sys.prefix) / "lib", Path("/usr/share/perl")]


def build_tar(path: Path, size_mb: int) -> None:
    limit = size_mb << 20
    written = 0
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
                        written += file.stat().st_size + 512
                        if written >= limit:
                            return
            round_no += 1


def prepare(size_mb: int) -> tuple[Path, int]:
    CACHE.mkdir(exist_ok=True)
    blob = CACHE / f"layer-{size_mb}mb.tar.gz"
    tar_path = CACHE / f"layer-{size_mb}mb.tar"
    if not blob.exists():
        build_tar(tar_path, size_mb)
        with open(tar_path, "rb") as src, open(str(blob) + ".tmp", "wb") as dst:
            subprocess.run(["gzip", "-6", "-n", "-c"], stdin=src, stdout=dst, check=True)
        os.replace(str(blob) + ".tmp", blob)
    usize = tar_path.stat().st_size if tar_path.exists() else None
    if usize is None:
        usize = int(subprocess.run(f"gzip -dc {blob} | wc -c", shell=True, capture_output=True, text=True).stdout)
    tar_path.unlink(missing_ok=True)
    (CACHE / f"layer-{size_mb}mb.usize").write_text(str(usize))
    return blob, usize


def time_command(argv: list[str], stdout: int | None = subprocess.DEVNULL) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of one child process."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=stdout)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{argv[0]} failed")
    return elapsed, usage.ru_maxrss


def time_python_zlib(blob: Path) -> float:
    started = time.perf_counter()
    d = zlib.decompressobj(47)
    with open(blob, "rb") as f:
        while chunk := f.read(1 << 18):
            d.decompress(chunk)
    d.flush()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, action="append", help="uncompressed layer size (repeatable)")
    parser.add_argument("--repeat", type=int, default=3, help="best of N runs per tool")
    args = parser.parse_args()
    compile_socikit()
    for size_mb in args.size_mb or [160]:
        blob, usize = prepare(size_mb)
        mb = usize / 1e6
        out = CACHE / "bench.ztoc"
        gz, pz, sk, rss = [], [], [], []
        for _ in range(args.repeat):
            gz.append(time_command(["gzip", "-dc", str(blob)])[0])
            pz.append(time_python_zlib(blob))
            t, r = time_command([*SOCIKIT, "ztoc", "build", str(blob), "-o", str(out)])
            sk.append(t)
            rss.append(r)
        g, p, s = min(gz), min(pz), min(sk)
        print(f"layer: {blob.name}: {mb:.0f} MB uncompressed, {blob.stat().st_size / 1e6:.0f} MB gzip -6")
        print(f"  gzip -dc         {mb / g:8.1f} MB/s")
        print(f"  python zlib      {mb / p:8.1f} MB/s")
        print(f"  socikit build    {mb / s:8.1f} MB/s   peak RSS {max(rss) / 1024:.1f} MiB")
        print(f"  ratio socikit/python-zlib = {p / s:.2f}x   socikit/gzip-dc = {g / s:.2f}x")


if __name__ == "__main__":
    main()

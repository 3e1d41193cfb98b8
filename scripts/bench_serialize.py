#!/usr/bin/env python3
"""Benchmark ztoc serialization: socikit's specialised builder against the PyPI `flatbuffers` Builder.

Makes a synthetic ztoc shaped like a real layer (default 100,000 TOC entries: files, directories,
symlinks, varied owners, 2% with PAX records, 4 MiB spans over a ~4 GiB layer), then times
  - `socikit.ztoc.serialize.dumps`
  - the `flatbuffers` package's Builder driven in the reference's call order (same bytes)
  - `socikit.ztoc.serialize.loads`
and checks both serializers produce identical bytes. Prints the best of --repeat runs.

    python3 scripts/bench_serialize.py [--entries 100000] [--repeat 3] [--skip-flatbuffers]
"""

from __future__ import annotations

import argparse
import hashlib
import random
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from socikit.ztoc.model import ALGORITHM_GZIP, CompressionInfo, FileMetadata, Ztoc  # noqa: E402
from socikit.ztoc.serialize import dumps, loads  # noqa: E402
from tests.flatbuffers_oracle import oracle_dumps  # noqa: E402


def make_ztoc(entries: int, seed: int = 1) -> Ztoc:
    rnd = random.Random(seed)
    toc = []
    offset = 0
    for i in range(entries):
        kind = rnd.choices(["reg", "dir", "symlink", "hardlink"], [80, 12, 7, 1])[0]
        size = rnd.choice([0, 17, 900, 4096, 70_000, 1_500_000]) if kind == "reg" else 0
        xattrs: tuple[tuple[bytes, bytes], ...] = ()
        if i % 50 == 0:
            xattrs = ((b"SCHILY.xattr.security.capability", bytes([1, 0, 0, 2, 0, 32]) + bytes(14)),
                      (b"path", f"usr/lib/very/long/path/{i}/".encode() * 3))
        offset += 512 * (2 if xattrs else 1)
        owner = rnd.choice([(0, "root"), (0, "root"), (1000, "user"), (33, "www-data")])
        toc.append(FileMetadata(
            name=f"usr/lib/python3/dist-packages/pkg{i // 100}/mod_{i}" + ("/" if kind == "dir" else ".py"),
            type=kind, uncompressed_offset=offset, uncompressed_size=size,
            linkname=f"../target_{i % 13}" if kind in ("symlink", "hardlink") else "",
            mode=0o755 if kind == "dir" else 0o644,
            uid=owner[0], gid=owner[0], uname=owner[1], gname=owner[1],
            mod_time=rnd.choice(["2023-11-14T22:13:20Z", "2024-02-01T10:00:00.123456789Z"]),
            devmajor=0, devminor=0, xattrs=xattrs,
        ))
        offset += -(-size // 512) * 512
    spans = offset // (4 << 20) + 1
    info = CompressionInfo(
        compression_algorithm=ALGORITHM_GZIP, max_span_id=spans - 1,
        span_digests=tuple("sha256:" + hashlib.sha256(str(i).encode()).hexdigest() for i in range(spans)),
        checkpoints=bytes(12 + 32785 * 8),  # size of 8 checkpoints; content does not matter here
    )
    return Ztoc("0.9", "AWS SOCI CLI v0.2", offset // 3, offset + 1024, tuple(toc), info)


def best_of(repeat: int, fn, *args):  # type: ignore[no-untyped-def]
    best = float("inf")
    result = None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn(*args)
        best = min(best, time.perf_counter() - started)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-flatbuffers", action="store_true", help="time only socikit")
    args = parser.parse_args()

    z = make_ztoc(args.entries)
    ours, data = best_of(args.repeat, dumps, z)
    digest = hashlib.sha256(data).hexdigest()
    print(f"ztoc: {args.entries} entries, {len(data):,} bytes, sha256:{digest[:16]}…")
    print(f"socikit dumps          {ours * 1000:9.1f} ms")
    if not args.skip_flatbuffers:
        theirs, reference = best_of(1, oracle_dumps, z)
        print(f"flatbuffers Builder    {theirs * 1000:9.1f} ms   ({theirs / ours:.1f}x slower)")
        print(f"identical bytes        {reference == data}")
        if reference != data:
            sys.exit(1)
    read, decoded = best_of(args.repeat, loads, data)
    print(f"socikit loads          {read * 1000:9.1f} ms   (round trip equal: {decoded == z})")


if __name__ == "__main__":
    main()

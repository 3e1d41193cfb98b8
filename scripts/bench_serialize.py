#!/usr/bin/env python3
"""Serialize and parse a 100,000-entry ztoc: socikit's writer/reader against the PyPI `flatbuffers`
Builder driven in the reference's call order (the test oracle), in one run.

    python3 scripts/bench_serialize.py [--entries 100000]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from socikit.ztoc.model import CompressionInfo, FileMetadata, Ztoc  # noqa: E402
from socikit.ztoc.serialize import dumps, loads  # noqa: E402
from tests.unit.test_flatbuffer_oracle import _oracle  # noqa: E402


def sample(n: int) -> Ztoc:
    entries = tuple(
        FileMetadata(f"usr/lib/python3/dist-packages/pkg{i // 100}/module_{i}.py", "reg", 512 * (3 * i + 1),
                     1000 + i, "", 0o644, 0, 0, "root", "root", "2023-11-14T22:13:20.123456Z", 0, 0,
                     ((b"mtime", b"1699999999.123456"),) if i % 4 == 0 else ())
        for i in range(n)
    )
    return Ztoc("0.9", "AWS SOCI CLI v0.2", 10**9, 3 * 10**9, entries,
                CompressionInfo("gzip", 199, tuple(f"sha256:{i:064x}" for i in range(200)), bytes(200 * 32785)))


def best(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=100_000)
    args = parser.parse_args()
    z = sample(args.entries)
    ours = best(lambda: dumps(z))
    theirs = best(lambda: _oracle(z), repeat=1)
    data = dumps(z)
    assert data == _oracle(z)
    parse = best(lambda: loads(data))
    print(f"{args.entries} TOC entries, ztoc {len(data) / 2**20:.1f} MiB")
    print(f"  socikit dumps           {ours:6.2f} s")
    print(f"  flatbuffers package     {theirs:6.2f} s   ({theirs / ours:.1f}x slower)")
    print(f"  socikit loads           {parse:6.2f} s")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Benchmark registry conversions against `skopeo` moving the same image, as whole processes.

Starts Debian docker-registry processes on 127.0.0.1 (own storage in temp dirs, stopped at the
end), uploads the three-layer image of bench_convert.py to the source registry with skopeo, then
in one run, alternating, each round:
  - registry to registry, to a fresh destination registry each time (nothing can be skipped):
      `skopeo copy docker://SRC/app:1 docker://DST/app:1`
      `socikit convert --no-cache SRC/app:1 DST/app:1` (pull, index, push)
  - within the source repository:
      `skopeo copy docker://SRC/app:1 oci:DIR` (a plain pull of the image)
      `socikit convert --no-cache SRC/app:1 SRC/app:1-soci-N` (pulls each layer once to index it;
      the layers are already there, so only ztocs, SOCI indexes and manifests are pushed)
and prints every run and the ratios (issue 12's targets: registry to registry <= 1.3 x skopeo copy;
same repository <= 1.15 x the plain pull).

On loopback the registries answer faster than a layer inflates, so the pull a conversion shares
with its indexing is hidden in neither direction. `--network MBIT` puts bench_lazy's throttling
relay in front of the source registry (every pull, skopeo's and socikit's, shares MBIT Mbit/s; each
request waits `--latency` ms), as a registry across a real network would be; the destination
registries stay on loopback for both tools.

    python3 scripts/bench_push.py [--repeat 5] [--checkout DIR] [--network MBIT [--latency MS]]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_convert import image  # noqa: E402
from bench_lazy import ThrottlingRelay, start_registry  # noqa: E402
from benchenv import SOCIKIT, Run, add_checkout_option, compile_socikit, run  # noqa: E402

SKOPEO_TLS = ["--src-tls-verify=false", "--dest-tls-verify=false"]


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    proc.wait(timeout=10)


def report(name: str, ours: list[Run], theirs: list[Run], target: float, baseline: str) -> None:
    print(f"  {name}: runs ({baseline} / socikit convert, wall seconds and ratio; CPU seconds):")
    for i, (t, o) in enumerate(zip(theirs, ours, strict=True)):
        print(f"    {i + 1}: {t.wall:6.3f}  {o.wall:6.3f}  {o.wall / t.wall:5.2f}    cpu {t.cpu:5.2f}  {o.cpu:5.2f}")
    median = statistics.median(o.wall / t.wall for o, t in zip(ours, theirs, strict=True))
    best = min(o.wall for o in ours) / min(t.wall for t in theirs)
    print(f"    best {best:.2f}, median of runs {median:.2f} (target <= {target})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--network",
        type=float,
        default=0.0,
        metavar="MBIT",
        help="serve the source registry through a relay of this many Mbit/s (default: loopback)",
    )
    parser.add_argument("--latency", type=float, default=5.0, metavar="MS", help="per-request delay of the relay")
    add_checkout_option(parser)
    args = parser.parse_args()
    layout = image()
    compile_socikit(args.checkout)
    cross_ours: list[Run] = []
    cross_skopeo: list[Run] = []
    same_ours: list[Run] = []
    pull: list[Run] = []
    socikit = [*SOCIKIT, "convert", "--no-cache", "--progress", "none", "--plain-http"]
    with tempfile.TemporaryDirectory() as tmp:
        src_proc, src = start_registry(Path(tmp) / "src")
        relay = None
        try:
            subprocess.run(["skopeo", "copy", *SKOPEO_TLS, f"oci:{layout}:latest", f"docker://{src}/app:1"],
                           check=True, stdout=subprocess.DEVNULL)  # fmt: skip
            if args.network:
                relay = ThrottlingRelay(src, rate=args.network * 1e6 / 8, latency=args.latency / 1000)
                src = relay.host
            for i in range(args.repeat):
                for tool in ("skopeo", "socikit"):
                    dst_proc, dst = start_registry(Path(tmp) / f"{tool}-{i}")
                    try:
                        if tool == "skopeo":
                            argv = ["skopeo", "copy", *SKOPEO_TLS, f"docker://{src}/app:1", f"docker://{dst}/app:1"]
                            cross_skopeo.append(run(argv))
                        else:
                            cross_ours.append(run([*socikit, f"{src}/app:1", f"{dst}/app:1"], args.checkout))
                    finally:
                        stop(dst_proc)
                        shutil.rmtree(Path(tmp) / f"{tool}-{i}")
                pulled = Path(tmp) / f"pull-{i}"
                pull.append(run(["skopeo", "copy", *SKOPEO_TLS, f"docker://{src}/app:1", f"oci:{pulled}:latest"]))
                shutil.rmtree(pulled)
                same_ours.append(run([*socikit, f"{src}/app:1", f"{src}/app:1-soci-{i}"], args.checkout))
        finally:
            if relay is not None:
                relay.stop()
            stop(src_proc)
    network = "loopback"
    if args.network:
        network = f"source through a {args.network:g} Mbit/s relay, {args.latency:g} ms per request"
    print(f"image: {layout.name} (3 gzip layers), local docker-registry processes ({network}); "
          f"socikit from {args.checkout}")  # fmt: skip
    report("registry to a fresh registry", cross_ours, cross_skopeo, 1.3, "skopeo copy")
    report("same repository", same_ours, pull, 1.15, "skopeo copy to oci:DIR")


if __name__ == "__main__":
    main()

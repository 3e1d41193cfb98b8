"""Command line of the conformance suite.

    python3 -m conformance.run --command 'socikit convert --span-size {span_size} \\
        --min-layer-size {min_layer_size} --build-tool-id {build_tool_id} {platform_flags} \\
        {optimization_flags} {prefetch_flags} oci:{input}:latest oci:{out}:latest' \\
        [--vectors DIR ...] [--vector NAME ...] [--json FILE]

Exit status 0 when every vector passed (identical bytes and a passing validation), 1 otherwise.
See conformance/README.md and docs/conformance.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from conformance.suite import VectorResult, run_vector, vector_dirs

REPO = Path(__file__).resolve().parents[1]
DEFAULT_VECTORS = REPO / "conformance" / "vectors"
EXTRA_VECTORS = REPO / "conformance" / "vectors-extra"  # made by socikit, not the reference


def _line(result: VectorResult) -> str:
    status = "PASS" if result.passed else "FAIL"
    text = f"{status} {result.vector} ({result.seconds:.1f} s)"
    problems = []
    if result.error:
        problems.append(result.error)
    problems += [f"{c.name}: {c.reason}" for c in result.comparisons if not c.passed]
    if result.validation is not None:
        problems += [f"validate {c.name} [{c.subject}]: {c.reason}" for c in result.validation.failures]
    return "\n    ".join([text, *problems])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python3 -m conformance.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--command",
        required=True,
        help="producer command template; fields: {input} {out} {span_size} {min_layer_size} "
        "{build_tool_id} {platforms} {platform_flags} {optimization_flags} {prefetch_flags} {vector}",
    )
    parser.add_argument(
        "--vectors",
        type=Path,
        action="append",
        help=f"directory of vector directories (repeatable; default {DEFAULT_VECTORS.relative_to(REPO)}; "
        f"socikit's own extra cases are in {EXTRA_VECTORS.relative_to(REPO)})",
    )
    parser.add_argument("--vector", action="append", dest="names", help="run only this vector (repeatable)")
    parser.add_argument("--tag", default="latest", help="tag the producer writes in OUT (default: latest)")
    parser.add_argument(
        "--v1",
        action="store_true",
        help="the command writes SOCI v1 indexes (compare soci-index-v1-* and ztocs, not the "
        "converted image)",
    )
    parser.add_argument("--no-deep", action="store_true", help="skip the layer-streaming validation checks")
    parser.add_argument(
        "--workdir", type=Path, help="where OUT directories go (default: a temporary directory)"
    )
    parser.add_argument("--json", type=Path, help="also write the full results as JSON to this file")
    parser.add_argument("--timeout", type=float, default=600, help="seconds allowed per command run")
    args = parser.parse_args(argv)

    roots = args.vectors or [DEFAULT_VECTORS]
    vectors = [v for root in roots for v in vector_dirs(root)]
    if args.names:
        by_name = {v.name: v for v in vectors}
        missing = [n for n in args.names if n not in by_name]
        if missing:
            parser.error(f"no such vector(s): {', '.join(missing)}")
        vectors = [by_name[n] for n in args.names]
    with tempfile.TemporaryDirectory(prefix="soci-conformance-") as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        results = []
        for vector in vectors:
            result = run_vector(
                vector,
                args.command,
                workdir,
                tag=args.tag,
                deep=not args.no_deep,
                v1=args.v1,
                timeout=args.timeout,
            )
            results.append(result)
            print(_line(result), flush=True)
    passed = sum(r.passed for r in results)
    print(f"{passed} of {len(results)} vectors passed")
    if args.json:
        args.json.write_text(json.dumps([r.to_json() for r in results], indent=2, ensure_ascii=False))
    return 0 if passed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())

"""Run a SOCI producer over conformance vectors and judge what it wrote.

A vector is a directory with `input/` (an OCI layout tagged `latest`), `params.json` (span_size,
min_layer_size, platforms, build_tool_id; optionally `optimizations`, e.g. ["xattr"], and
`prefetch_files`, paths inside the image) and `expected-current/` (the expected output, files named
by sha256: the reference's current output, or socikit's for the cases in vectors-extra/). For
each vector the producer command is run with the vector's parameters substituted; then (1) every
artifact it wrote that the expected output has is compared byte for byte (the image index its tag
points at, each manifest, SOCI index, ztoc and prefetch artifact), and (2) socikit's validator runs
over the output image.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from socikit.content.layout import LayoutSource
from socikit.errors import SocikitError
from socikit.oci import mediatypes as mt
from socikit.validate import Report, validate_image

DEFAULT_TIMEOUT = 600


@dataclass(frozen=True)
class Comparison:
    """One expected artifact looked up in the producer's output."""

    name: str  # expected-current file name
    passed: bool
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"file": self.name, "passed": self.passed, "reason": self.reason}


@dataclass
class VectorResult:
    vector: str
    command: str
    exit_code: int | None
    seconds: float
    comparisons: list[Comparison] = field(default_factory=list)
    validation: Report | None = None
    error: str = ""
    output: str = ""

    @property
    def bytes_identical(self) -> bool:
        return bool(self.comparisons) and all(c.passed for c in self.comparisons)

    @property
    def passed(self) -> bool:
        return (
            not self.error
            and self.exit_code == 0
            and self.bytes_identical
            and self.validation is not None
            and self.validation.passed
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "vector": self.vector,
            "passed": self.passed,
            "command": self.command,
            "exit_code": self.exit_code,
            "seconds": round(self.seconds, 3),
            "error": self.error,
            "bytes_identical": self.bytes_identical,
            "comparisons": [c.to_json() for c in self.comparisons],
            "validation": self.validation.to_json() if self.validation is not None else None,
        }


def vector_dirs(root: Path, names: list[str] | None = None) -> list[Path]:
    """The vector directories under `root` (those with params.json), optionally only `names`."""
    found = sorted(p for p in root.iterdir() if (p / "params.json").is_file())
    if names:
        by_name = {p.name: p for p in found}
        missing = [n for n in names if n not in by_name]
        if missing:
            raise ValueError(f"no such vector(s) in {root}: {', '.join(missing)}")
        return [by_name[n] for n in names]
    return found


def substitutions(vector: Path, out: Path) -> dict[str, str]:
    """Template fields, each already shell-quoted: {input} {out} {span_size} {min_layer_size}
    {build_tool_id} {platforms} (comma list or "all") {platform_flags} (`--platform P` per platform,
    or `--all-platforms`) {optimization_flags} (`--optimizations O` per optimization, empty for
    most vectors) {prefetch_flags} (`--prefetch-file P` per path, empty for most) {vector} (the
    vector's name)."""
    params = json.loads((vector / "params.json").read_text())
    platforms = params.get("platforms", [])
    if platforms == "all":
        platform_flags = "--all-platforms"
        platform_list = "all"
    else:
        platform_flags = " ".join(f"--platform {shlex.quote(p)}" for p in platforms)
        platform_list = ",".join(platforms)
    return {
        "input": shlex.quote(str(vector / "input")),
        "out": shlex.quote(str(out)),
        "span_size": str(int(params["span_size"])),
        "min_layer_size": str(int(params["min_layer_size"])),
        "build_tool_id": shlex.quote(str(params["build_tool_id"])),
        "platforms": shlex.quote(platform_list),
        "platform_flags": platform_flags,
        "optimization_flags": " ".join(f"--optimizations {shlex.quote(o)}" for o in params.get("optimizations", [])),
        "prefetch_flags": " ".join(f"--prefetch-file {shlex.quote(p)}" for p in params.get("prefetch_files", [])),
        "vector": shlex.quote(vector.name),
    }


def missing_fields(vector: Path, command: str) -> list[str]:
    """Template fields a vector needs (its params ask for flags) that `command` does not use:
    without them the producer would build something else and only the byte comparison would say so."""
    needed = {"optimization_flags": "optimizations", "prefetch_flags": "prefetch_files"}
    params = json.loads((vector / "params.json").read_text())
    return [f"{{{field}}}" for field, key in needed.items() if params.get(key) and f"{{{field}}}" not in command]


def _digest_of(file: Path) -> str:
    stem = file.name.split(".", 1)[0]
    return "sha256:" + stem.rsplit("-", 1)[1]


def _tag_target(layout: Path, tag: str) -> dict[str, Any] | None:
    try:
        index = json.loads((layout / "index.json").read_bytes())
    except (OSError, ValueError):
        return None
    for entry in index.get("manifests") or []:
        if (entry.get("annotations") or {}).get(mt.ANNOTATION_REF_NAME) == tag:
            return dict(entry)
    return None


def _blob(layout: Path, digest: str) -> bytes | None:
    try:
        return (layout / "blobs" / "sha256" / digest.split(":", 1)[1]).read_bytes()
    except OSError:
        return None


def _first_difference(have: bytes, want: bytes) -> str:
    n = min(len(have), len(want))
    at = next((i for i in range(n) if have[i] != want[i]), n)
    return f"first difference at byte {at} ({len(have)} vs {len(want)} bytes)"


def compare_output(expected: Path, out: Path, *, tag: str = "latest", v1: bool = False) -> list[Comparison]:
    """Compare the producer's layout `out` with `expected` (expected-current/). v2 mode: the image
    index `tag` points at, every manifest, v2 SOCI index, ztoc and prefetch artifact; v1 mode: the
    v1 SOCI indexes, ztocs and prefetch artifacts (the image itself is left as it was)."""
    results = []
    wanted = ("soci-index-v1-", "ztoc-", "prefetch-") if v1 else ("manifest-", "soci-index-v2-", "ztoc-", "prefetch-")
    if not v1:
        converted = (expected / "converted-index.json").read_bytes()
        want_digest = "sha256:" + hashlib.sha256(converted).hexdigest()
        target = _tag_target(out, tag)
        if target is None:
            results.append(Comparison("converted-index.json", False, f"the output has no tag {tag!r}"))
        elif target.get("digest") != want_digest:
            have = _blob(out, str(target.get("digest", ""))) or b""
            results.append(
                Comparison(
                    "converted-index.json",
                    False,
                    f"tag {tag!r} points at {target.get('digest')}, expected {want_digest}: "
                    + _first_difference(have, converted),
                )
            )
        else:
            results.append(Comparison("converted-index.json", True, f"tag {tag!r} -> identical image index"))
    for file in sorted(expected.iterdir()):
        if not file.name.startswith(wanted):
            continue
        digest = _digest_of(file)
        have = _blob(out, digest)
        if have is None:
            results.append(Comparison(file.name, False, f"{digest} is not in the output"))
        elif have != file.read_bytes():
            results.append(Comparison(file.name, False, f"{digest} in the output has other bytes"))
        else:
            results.append(Comparison(file.name, True, "identical"))
    return results


def run_vector(
    vector: Path,
    command: str,
    workdir: Path,
    *,
    tag: str = "latest",
    deep: bool = True,
    v1: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
) -> VectorResult:
    """Run `command` (a template, see `substitutions`) for `vector` with OUT = workdir/<vector>,
    then compare and validate the output."""
    out = workdir / vector.name
    rendered = command.format(**substitutions(vector, out))
    missing = missing_fields(vector, command)
    if missing:
        return VectorResult(
            vector.name, rendered, None, 0.0,
            error=f"the vector's params need {', '.join(missing)} in the command template",
        )
    started = time.monotonic()
    try:
        proc = subprocess.run(rendered, shell=True, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return VectorResult(
            vector.name, rendered, None, time.monotonic() - started, error=f"timed out after {timeout:.0f} s"
        )
    result = VectorResult(
        vector.name,
        rendered,
        proc.returncode,
        time.monotonic() - started,
        output=(proc.stdout + proc.stderr)[-4000:],
    )
    if proc.returncode != 0:
        result.error = f"the command exited with {proc.returncode}"
        return result
    result.comparisons = compare_output(vector / "expected-current", out, tag=tag, v1=v1)
    try:
        source = LayoutSource(out, tag=tag)
        result.validation = validate_image(source, deep=deep)
    except SocikitError as exc:
        result.error = f"the output cannot be validated: {exc}"
    return result


__all__ = [
    "Comparison",
    "VectorResult",
    "compare_output",
    "missing_fields",
    "run_vector",
    "substitutions",
    "vector_dirs",
]

"""`socikit convert` against the reference's golden vectors: byte-identical v2 conversions and v1
indexes (expected-current/, the reference's current format); and against socikit's own extra cases
(`--optimizations xattr`, prefetch artifacts), whose params name the flags to add."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from socikit.cli import app
from tests.vectors import all_vectors, extra_vectors

VECTORS = [pytest.param(v, id=v.name) for v in [*all_vectors(), *extra_vectors()]]


def _flags(vector) -> list[str]:
    params = vector.params
    flags = [
        "--span-size",
        str(params["span_size"]),
        "--min-layer-size",
        str(params["min_layer_size"]),
        "--build-tool-id",
        params["build_tool_id"],
        "--progress",
        "none",
        "--no-cache",
    ]
    if params["platforms"] == "all":
        flags.append("--all-platforms")
    else:
        for platform in params["platforms"]:
            flags += ["--platform", platform]
    for optimization in params.get("optimizations", []):
        flags += ["--optimizations", optimization]
    for path in params.get("prefetch_files", []):
        flags += ["--prefetch-file", path]
    return flags


def _convert(vector, out: Path, *extra: str):
    result = CliRunner().invoke(
        app, ["convert", *_flags(vector), *extra, "--json", f"oci:{vector.input_dir}:latest", f"oci:{out}:latest"]
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _tagged(layout: Path, tag: str) -> dict:
    index = json.loads((layout / "index.json").read_text())
    return next(
        m for m in index["manifests"] if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag
    )


def _blob(layout: Path, digest: str) -> bytes:
    return (layout / "blobs" / "sha256" / digest.split(":")[1]).read_bytes()


@pytest.mark.parametrize("vector", VECTORS)
def test_v2_conversion_is_byte_identical(vector, tmp_path: Path) -> None:
    out = tmp_path / "out"
    _convert(vector, out)
    expected = vector.path / "expected-current"
    converted = (expected / "converted-index.json").read_bytes()
    entry = _tagged(out, "latest")
    assert entry["digest"] == "sha256:" + hashlib.sha256(converted).hexdigest()
    assert _blob(out, entry["digest"]) == converted
    for file in expected.iterdir():
        if file.name.startswith(("manifest-", "soci-index-v2-", "ztoc-", "prefetch-")):
            digest = "sha256:" + file.name.rsplit("-", 1)[1].split(".")[0]
            assert _blob(out, digest) == file.read_bytes(), file.name
    # The whole image travels: every layer and config of every manifest is in OUT.
    for manifest_ref in json.loads(converted)["manifests"]:
        manifest = json.loads(_blob(out, manifest_ref["digest"]))
        for desc in [manifest["config"], *manifest["layers"]]:
            assert (out / "blobs" / "sha256" / desc["digest"].split(":")[1]).exists()


@pytest.mark.parametrize("vector", VECTORS)
def test_v1_indexes_are_byte_identical(vector, tmp_path: Path) -> None:
    out = tmp_path / "out"
    _convert(vector, out, "--v1")
    listed = {m["digest"]: m for m in json.loads((out / "index.json").read_text())["manifests"]}
    expected_files = sorted((vector.path / "expected-current").glob("soci-index-v1-*.json"))
    assert expected_files
    for file in expected_files:
        digest = "sha256:" + file.stem.rsplit("-", 1)[1]
        assert digest in listed, file.name
        assert listed[digest]["artifactType"] == "application/vnd.amazon.soci.index.v1+json"
        assert _blob(out, digest) == file.read_bytes()
    # The image itself is unchanged and tagged as in the source.
    source_entry = _tagged(vector.input_dir, "latest")
    assert _tagged(out, "latest")["digest"] == source_entry["digest"]


def test_converting_a_converted_image_is_idempotent(tmp_path: Path) -> None:
    vector = next(v for v in all_vectors() if v.name == "multi-platform")
    first, second = tmp_path / "first", tmp_path / "second"
    _convert(vector, first)
    result = CliRunner().invoke(app, ["convert", *_flags(vector), f"oci:{first}:latest", f"oci:{second}:latest"])
    assert result.exit_code == 0, result.output
    assert _tagged(first, "latest")["digest"] == _tagged(second, "latest")["digest"]

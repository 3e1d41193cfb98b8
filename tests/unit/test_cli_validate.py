"""`socikit validate` on the command line: exit codes, report, and what convert validates."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from socikit.cli import app
from tests.vectors import all_vectors

VECTOR = next(v for v in all_vectors() if v.name == "tricky-pax")


def _converted(tmp_path: Path) -> Path:
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["convert", "--span-size", "65536", "--min-layer-size", "0", "--progress", "none",
                                      "--no-cache", f"oci:{VECTOR.input_dir}:latest", f"oci:{out}:latest"])
    assert result.exit_code == 0, result.output
    return out


def test_valid_image_passes_deep(tmp_path: Path) -> None:
    out = _converted(tmp_path)
    result = CliRunner().invoke(app, ["validate", "--deep", "--json", f"oci:{out}:latest"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["passed"] and report["summary"]["lazy"]
    assert {"span-digests", "toc-headers", "file-contents", "go-canonical"} <= {c["name"] for c in report["checks"]}
    assert report["stats"]["layers_reproduced"] == report["stats"]["layers_scanned"] == 1
    table = CliRunner().invoke(app, ["validate", f"oci:{out}:latest"])
    assert table.exit_code == 0 and "0 failed" in table.stdout


def test_no_reproduce_checks_item_by_item(tmp_path: Path) -> None:
    out = _converted(tmp_path)
    result = CliRunner().invoke(app, ["validate", "--deep", "--no-reproduce", "--json", f"oci:{out}:latest"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["passed"]
    assert report["stats"]["layers_reproduced"] == 0 and report["stats"]["layers_scanned"] == 1
    contents = next(c for c in report["checks"] if c["name"] == "file-contents")
    assert "identical" not in contents["reason"]


def test_corrupt_layer_fails_deep_validation(tmp_path: Path) -> None:
    out = _converted(tmp_path)
    manifest = json.loads(VECTOR.blob(json.loads((VECTOR.input_dir / "index.json").read_text())
                                      ["manifests"][0]["digest"]).read_bytes())
    layer = out / "blobs" / "sha256" / manifest["layers"][0]["digest"][7:]
    data = bytearray(layer.read_bytes())
    layer.unlink()  # a hard link to the source: replace the file, never write through it
    data[len(data) // 2] ^= 0xFF
    layer.write_bytes(bytes(data))
    result = CliRunner().invoke(app, ["validate", "--deep", "--json", f"oci:{out}:latest"])
    assert result.exit_code == 1
    failed = {c["name"] for c in json.loads(result.stdout)["checks"] if not c["passed"]}
    assert "layer-blob" in failed
    assert VECTOR.blob(manifest["layers"][0]["digest"]).read_bytes() != bytes(data)  # source untouched


def test_image_without_soci_index_is_explained(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["validate", "--json", f"oci:{VECTOR.input_dir}:latest"])
    # Every artifact there is valid, so validation passes (exit 0); the summary says why a default
    # soci-snapshotter would not lazily load the image.
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["passed"] is True
    assert report["summary"]["lazy"] is False
    assert report["summary"]["reason"].startswith("it has no SOCI index")
    table = CliRunner().invoke(app, ["validate", f"oci:{VECTOR.input_dir}:latest"])
    assert table.exit_code == 0 and "does not lazily load this image" in table.stdout

"""`socikit validate` on the command line: exit codes, report, and what convert validates."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conformance.layout import read_json, replace_blob
from socikit.cli import app
from socikit.oci import gojson
from socikit.oci import mediatypes as mt
from tests.cli import run_socikit
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


UNINDEXED = ("error: no platform of this image has a SOCI index a soci-snapshotter would load lazily; "
             "add --allow-unindexed to accept that\n")


def test_image_without_soci_index_is_explained(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["validate", "--json", f"oci:{VECTOR.input_dir}:latest"])
    # Every artifact there is valid, so every check passes; but no platform would be lazily
    # loaded, and a CI gate asking "is this image SOCI-enabled?" must fail it (exit 1) unless
    # told to accept that. The summary says why.
    assert result.exit_code == 1, result.output
    assert result.stderr == UNINDEXED
    report = json.loads(result.stdout)
    assert report["passed"] is True
    assert report["summary"]["lazy"] is False
    assert report["summary"]["reason"].startswith("it has no SOCI index")
    allowed = CliRunner().invoke(app, ["validate", "--allow-unindexed", "--json", f"oci:{VECTOR.input_dir}:latest"])
    assert allowed.exit_code == 0 and allowed.stderr == "", allowed.output
    assert allowed.stdout == result.stdout
    table = CliRunner().invoke(app, ["validate", f"oci:{VECTOR.input_dir}:latest"])
    assert table.exit_code == 1 and "does not lazily load this image" in table.stdout
    assert "0 failed" in table.stdout and table.stderr == UNINDEXED
    table = CliRunner().invoke(app, ["validate", "--allow-unindexed", f"oci:{VECTOR.input_dir}:latest"])
    assert table.exit_code == 0 and "does not lazily load this image" in table.stdout


def test_v1_only_image_passes_the_gate_and_says_v1_is_off_by_default(tmp_path: Path) -> None:
    """Only SOCI v1 indexes (what AWS Lambda needs): valid and indexed, so the gate passes it, but
    the summary says a default soci-snapshotter (v1 off) loads it whole."""
    out = tmp_path / "v1"
    result = CliRunner().invoke(app, ["convert", "--v1", "--min-layer-size", "0", "--progress", "none", "--no-cache",
                                      f"oci:{VECTOR.input_dir}:latest", f"oci:{out}:latest"])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(app, ["validate", "--json", f"oci:{out}:latest"])
    assert result.exit_code == 0 and result.stderr == "", result.output
    report = json.loads(result.stdout)
    assert report["passed"] and not report["summary"]["lazy"] and "soci_v1" in report["summary"]["reason"]
    assert [m["lazy_with_v1"] for m in report["summary"]["manifests"]] == [True]


def test_failed_checks_exit_1_with_or_without_allow_unindexed(tmp_path: Path) -> None:
    out = _converted(tmp_path)
    converted = read_json(out, json.loads((out / "index.json").read_bytes())["manifests"][0]["digest"])
    soci = next(m["digest"] for m in converted["manifests"] if m.get("artifactType") == mt.ARTIFACT_TYPE_SOCI_INDEX_V2)
    doc = read_json(out, soci)
    doc["layers"][0]["annotations"][mt.ANNOTATION_SPAN_SIZE] = "1048576"
    replace_blob(out, soci, gojson.dumps(doc))
    for flags in ([], ["--allow-unindexed"]):
        result = CliRunner().invoke(app, ["validate", *flags, "--json", f"oci:{out}:latest"])
        assert result.exit_code == 1, result.output
        report = json.loads(result.stdout)
        assert not report["passed"] and report["summary"]["lazy"]  # still lazy: the exit is the failed check's
        assert {c["name"] for c in report["checks"] if not c["passed"]} == {"ztoc-span-size"}
        assert result.stderr == ""


@pytest.mark.parametrize("ref", ["oci:/nope", "oci:{layout}:nope", "oci:{layout}@sha256:" + "ab" * 32,
                                 "oci-archive:{layout}/none.tar"])
def test_an_image_that_is_not_there_is_an_error_not_a_check(ref: str, tmp_path: Path) -> None:
    layout = _converted(tmp_path)
    result = run_socikit("validate", "--json", ref.format(layout=layout))
    assert result.returncode == 1 and result.stdout == ""  # no report: there is no image to judge
    line = result.stderr.strip()
    assert line.startswith("error: ") and "\n" not in line and "Traceback" not in line, result.stderr


def test_an_unreadable_root_is_an_error_not_a_check(tmp_path: Path) -> None:
    layout = _converted(tmp_path)
    root = json.loads((layout / "index.json").read_bytes())["manifests"][0]["digest"]
    (layout / "blobs" / "sha256" / root[7:]).unlink()
    result = run_socikit("validate", f"oci:{layout}:latest")
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == f"error: blob {root} is missing from the layout {layout}\n"


def test_the_table_prints_the_image_strings_as_they_are(tmp_path: Path) -> None:
    """A reason quoting an annotation that looks like rich markup shows it literally."""
    out = _converted(tmp_path)
    converted = read_json(out, json.loads((out / "index.json").read_bytes())["manifests"][0]["digest"])
    soci = next(m["digest"] for m in converted["manifests"] if m.get("artifactType") == mt.ARTIFACT_TYPE_SOCI_INDEX_V2)
    doc = read_json(out, soci)
    doc["layers"][0]["annotations"][mt.ANNOTATION_SPAN_SIZE] = "[bold]65536[/bold]"
    replace_blob(out, soci, gojson.dumps(doc))
    result = run_socikit("validate", f"oci:{out}:latest")
    assert result.returncode == 1
    assert "span-size annotation '[bold]65536[/bold]' but the zinfo's span size is 65536" in result.stdout

"""`socikit validate` of an OCI layout with a file it may not read (permission denied): one `error:`
line and exit 1, never a traceback. socikit runs as root without CAP_DAC_OVERRIDE and
CAP_DAC_READ_SEARCH, so file permissions apply to it as to any other user (root would read a
chmod 000 file)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conformance.layout import assemble_expected_layout, read_json
from socikit.oci import mediatypes as mt
from tests.vectors import REPO_ROOT, VECTORS_DIR


def _as_unprivileged(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["setpriv", "--bounding-set=-dac_override,-dac_read_search", sys.executable, "-m",
                           "socikit", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)


def _artifacts(layout: Path) -> dict[str, Path]:
    """The files of the converted tricky-pax layout, by what they hold."""
    blobs = layout / "blobs" / "sha256"
    index = json.loads((layout / "index.json").read_bytes())
    root = next(e["digest"] for e in index["manifests"] if "artifactType" not in e)
    converted = read_json(layout, root)
    manifest = next(m["digest"] for m in converted["manifests"] if "artifactType" not in m)
    soci_v2 = next(m["digest"] for m in converted["manifests"]
                   if m.get("artifactType") == mt.ARTIFACT_TYPE_SOCI_INDEX_V2)
    soci_v1 = next(e["digest"] for e in index["manifests"] if e.get("artifactType") == mt.ARTIFACT_TYPE_SOCI_INDEX_V1)
    ztoc = read_json(layout, soci_v2)["layers"][0]["digest"]
    layer = read_json(layout, manifest)["layers"][0]["digest"]
    files = {"index.json": layout / "index.json", "image index": root, "manifest": manifest, "SOCI v2 index": soci_v2,
             "SOCI v1 index": soci_v1, "ztoc": ztoc, "layer": layer}
    return {what: f if isinstance(f, Path) else blobs / f[7:] for what, f in files.items()}


@pytest.fixture
def layout(tmp_path: Path) -> Path:
    return assemble_expected_layout(VECTORS_DIR / "tricky-pax", tmp_path / "layout")


def test_the_layout_validates_as_it_is(layout: Path) -> None:
    result = _as_unprivileged("validate", "--deep", f"oci:{layout}:latest")
    assert result.returncode == 0 and result.stderr == "", result.stdout + result.stderr


@pytest.mark.parametrize("json_output", [False, True], ids=["table", "json"])
@pytest.mark.parametrize("what", ["index.json", "image index"])
def test_unreadable_image_is_one_line(layout: Path, what: str, json_output: bool) -> None:
    target = _artifacts(layout)[what]
    target.chmod(0)
    result = _as_unprivileged("validate", *(["--json"] if json_output else []), f"oci:{layout}:latest")
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout == ""  # no report: there is no image to judge
    what_failed = f"{target}" if what == "index.json" else f"blob sha256:{target.name} in {layout}"
    assert result.stderr == f"error: cannot read {what_failed}: Permission denied\n"


@pytest.mark.parametrize("what", ["manifest", "SOCI v2 index", "SOCI v1 index", "ztoc", "layer"])
def test_unreadable_artifact_is_one_line_not_a_failed_check(layout: Path, what: str) -> None:
    """Permission denied says nothing about the artifact: validate cannot judge it, so it stops
    with the reason instead of reporting a defect (a missing blob is a defect: a failed check)."""
    target = _artifacts(layout)[what]
    target.chmod(0)
    result = _as_unprivileged("validate", "--deep", "--json", f"oci:{layout}:latest")
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout == ""
    assert result.stderr == f"error: cannot read blob sha256:{target.name} in {layout}: Permission denied\n"


def test_a_layer_is_read_only_by_the_deep_checks(layout: Path) -> None:
    _artifacts(layout)["layer"].chmod(0)
    result = _as_unprivileged("validate", f"oci:{layout}:latest")
    assert result.returncode == 0 and result.stderr == "", result.stdout + result.stderr


def test_a_missing_artifact_is_a_failed_check(layout: Path) -> None:
    target = _artifacts(layout)["ztoc"]
    target.unlink()
    result = _as_unprivileged("validate", "--json", f"oci:{layout}:latest")
    assert result.returncode == 1 and result.stderr == "", result.stderr
    failed = [c for c in json.loads(result.stdout)["checks"] if not c["passed"]]
    assert [c["name"] for c in failed] == ["ztoc-decodes"] and "is missing" in failed[0]["reason"]

"""`socikit create` and the local store commands (`index list|info|rm`, `ztoc list|info`)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from socikit.cli import app
from tests.vectors import all_vectors


def _invoke(root: Path, *args: str):
    return CliRunner().invoke(app, list(args), env={"SOCIKIT_ROOT": str(root)})


def test_create_list_info_rm(tmp_path: Path) -> None:
    root = tmp_path / "root"
    vector = next(v for v in all_vectors() if v.name == "multi-platform")
    ref = f"oci:{vector.input_dir}:latest"
    result = _invoke(
        root, "create", "--all-platforms", "--span-size", "65536", "--min-layer-size", "0", "--progress", "none", ref
    )
    assert result.exit_code == 0, result.output
    listed = json.loads(_invoke(root, "index", "list", "--json").stdout)
    expected = {
        "sha256:" + f.stem.rsplit("-", 1)[1] for f in (vector.path / "expected-current").glob("soci-index-v1-*.json")
    }
    assert {row["digest"] for row in listed} == expected
    assert {row["platform"] for row in listed} == {"linux/amd64", "linux/arm64/v8"}
    assert all(row["image_ref"] == ref and row["version"] == "v1" for row in listed)

    digest = listed[0]["digest"]
    info = _invoke(root, "index", "info", digest)
    assert info.exit_code == 0 and json.loads(info.stdout)["subject"]["digest"] == listed[0]["manifest"]

    ztocs = json.loads(_invoke(root, "ztoc", "list", "--json").stdout)
    assert {z["digest"] for z in ztocs} == {
        "sha256:" + f.stem[5:] for f in (vector.path / "expected-current").glob("ztoc-*.bin")
    }
    info = json.loads(_invoke(root, "ztoc", "info", ztocs[0]["digest"], "--json").stdout)
    assert info["version"] == "0.9"

    assert _invoke(root, "index", "rm", digest).exit_code == 0
    remaining = json.loads(_invoke(root, "index", "list", "--json").stdout)
    assert [row["digest"] for row in remaining] == [r["digest"] for r in listed if r["digest"] != digest]
    # The shared base layer's ztoc is still needed by the other index; the removed one's own is gone.
    left = {z["digest"] for z in json.loads(_invoke(root, "ztoc", "list", "--json").stdout)}
    assert len(left) == 2
    assert _invoke(root, "index", "rm", "--ref", ref).exit_code == 0
    assert json.loads(_invoke(root, "index", "list", "--json").stdout) == []


def test_rm_unknown_digest(tmp_path: Path) -> None:
    result = _invoke(tmp_path, "index", "rm", "sha256:" + "0" * 64)
    assert result.exit_code == 1 and result.output.startswith("error: no index matches sha256:000")


def test_ztoc_cache_makes_reindexing_free(tmp_path: Path) -> None:
    root = tmp_path / "root"
    vector = next(v for v in all_vectors() if v.name == "tricky-pax")
    args = [
        "--span-size",
        "65536",
        "--min-layer-size",
        "0",
        "--progress",
        "none",
        "--json",
        f"oci:{vector.input_dir}:latest",
    ]
    first = json.loads(_invoke(root, "create", *args).stdout)
    second = json.loads(_invoke(root, "convert", *args, f"oci:{tmp_path / 'out'}:latest").stdout)
    assert first["platforms"][0]["layers"][0]["cached"] is False
    layer = second["platforms"][0]["layers"][0]
    assert layer["cached"] is True and layer["ztoc"] == first["platforms"][0]["layers"][0]["ztoc"]

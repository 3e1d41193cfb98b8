"""Bad input to `socikit convert`: a clear one-line error, SRC untouched, DST unchanged."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from socikit.cli import app
from tests.vectors import all_vectors


def _vector(name: str):
    return next(v for v in all_vectors() if v.name == name)


def _tree_digest(root: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        h.update(str(path.relative_to(root)).encode())
        if path.is_file():
            h.update(path.read_bytes())
    return h.hexdigest()


def _run(*args: str):
    return CliRunner().invoke(app, ["convert", "--progress", "none", "--no-cache", "--min-layer-size", "0", *args])


@pytest.fixture
def source(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    shutil.copytree(_vector("tricky-pax").input_dir, src)
    return src


def _manifest(src: Path) -> tuple[dict, Path]:
    index = json.loads((src / "index.json").read_text())
    path = src / "blobs" / "sha256" / index["manifests"][0]["digest"].split(":")[1]
    return json.loads(path.read_text()), path


def _assert_failed(result, *needles: str) -> None:
    assert result.exit_code == 1, result.output
    line = result.output.strip()
    assert line.startswith("error:") and "\n" not in line, line
    for needle in needles:
        assert needle in line, line


def _existing_destination(tmp_path: Path) -> tuple[Path, str]:
    dst = tmp_path / "dst"
    result = _run(f"oci:{_vector('empty-layer').input_dir}:latest", f"oci:{dst}:other")
    assert result.exit_code == 0, result.output
    return dst, _tree_digest(dst)


def test_missing_layer_blob(source: Path, tmp_path: Path) -> None:
    manifest, _ = _manifest(source)
    layer = manifest["layers"][0]["digest"]
    (source / "blobs" / "sha256" / layer.split(":")[1]).unlink()
    before = _tree_digest(source)
    dst, dst_before = _existing_destination(tmp_path)
    _assert_failed(_run(f"oci:{source}:latest", f"oci:{dst}:latest"), layer, "missing")
    assert _tree_digest(source) == before
    assert _tree_digest(dst) == dst_before


def test_layer_digest_mismatch(source: Path, tmp_path: Path) -> None:
    manifest, _ = _manifest(source)
    layer = manifest["layers"][0]["digest"]
    path = source / "blobs" / "sha256" / layer.split(":")[1]
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # the gzip ISIZE: inflates fine, digest differs
    path.write_bytes(bytes(data))
    dst, dst_before = _existing_destination(tmp_path)
    _assert_failed(_run(f"oci:{source}:latest", f"oci:{dst}:latest"), layer)
    assert _tree_digest(dst) == dst_before


def test_unknown_layer_media_type(source: Path, tmp_path: Path) -> None:
    manifest, path = _manifest(source)
    manifest["layers"][0]["mediaType"] = "application/x-not-a-layer"
    data = json.dumps(manifest).encode()
    digest = hashlib.sha256(data).hexdigest()
    (source / "blobs" / "sha256" / digest).write_bytes(data)
    index = json.loads((source / "index.json").read_text())
    index["manifests"][0].update(digest="sha256:" + digest, size=len(data))
    (source / "index.json").write_text(json.dumps(index))
    _assert_failed(_run(f"oci:{source}:latest", f"oci:{tmp_path / 'dst'}:latest"), "application/x-not-a-layer")
    assert (
        not (tmp_path / "dst" / "index.json").exists() or "latest" not in (tmp_path / "dst" / "index.json").read_text()
    )


def test_nothing_to_index_explains_min_layer_size(tmp_path: Path) -> None:
    vector = _vector("tricky-pax")
    result = CliRunner().invoke(
        app,
        [
            "convert",
            "--progress",
            "none",
            "--no-cache",
            f"oci:{vector.input_dir}:latest",
            f"oci:{tmp_path / 'dst'}:latest",
        ],
    )
    _assert_failed(result, "--min-layer-size", "10485760")


def test_zstd_layer_is_skipped_with_a_reason(tmp_path: Path) -> None:
    vector = _vector("zstd-layer")
    result = _run(f"oci:{vector.input_dir}:latest", f"oci:{tmp_path / 'dst'}:latest", "--json")
    assert result.exit_code == 0, result.output
    layers = json.loads(result.stdout)["platforms"][0]["layers"]
    skipped = [layer for layer in layers if layer["skipped"]]
    assert len(skipped) == 1 and "zstd" in skipped[0]["skipped"]
    assert skipped[0]["mediaType"].endswith("+zstd")


def test_absent_platform_lists_the_present_ones(tmp_path: Path) -> None:
    vector = _vector("multi-platform")
    result = _run("--platform", "linux/s390x", f"oci:{vector.input_dir}:latest", f"oci:{tmp_path / 'dst'}:latest")
    _assert_failed(result, "linux/s390x", "linux/amd64", "linux/arm64/v8")


def test_single_platform_of_a_multi_platform_image(tmp_path: Path) -> None:
    vector = _vector("multi-platform")
    result = _run(
        "--platform", "linux/arm64", "--json", f"oci:{vector.input_dir}:latest", f"oci:{tmp_path / 'd'}:latest"
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert [p["platform"] for p in summary["platforms"]] == ["linux/arm64"]
    index = json.loads((tmp_path / "d" / "blobs" / "sha256" / summary["result"]["digest"][7:]).read_text())
    soci = [m for m in index["manifests"] if m.get("artifactType")]
    assert len(soci) == 1 and soci[0]["platform"] == {"architecture": "arm64", "os": "linux"}
    # The other platform's manifest is still in the converted index (rewritten, no SOCI index).
    assert len([m for m in index["manifests"] if not m.get("artifactType")]) == 2


def test_unreadable_source(tmp_path: Path) -> None:
    (tmp_path / "junk").write_text("not a layout")
    _assert_failed(_run(f"oci:{tmp_path / 'junk'}:latest", f"oci:{tmp_path / 'dst'}:latest"))
    _assert_failed(_run(f"oci:{tmp_path / 'nowhere'}:latest", f"oci:{tmp_path / 'dst'}:latest"), "nowhere")


def test_missing_tag_lists_tags(tmp_path: Path) -> None:
    vector = _vector("tricky-pax")
    _assert_failed(_run(f"oci:{vector.input_dir}:nope", f"oci:{tmp_path / 'dst'}:latest"), "nope", "latest")


def test_destination_keeps_other_tags(tmp_path: Path) -> None:
    dst, _ = _existing_destination(tmp_path)
    result = _run(f"oci:{_vector('tricky-pax').input_dir}:latest", f"oci:{dst}:latest")
    assert result.exit_code == 0, result.output
    tags = {
        m["annotations"]["org.opencontainers.image.ref.name"]
        for m in json.loads((dst / "index.json").read_text())["manifests"]
    }
    assert tags == {"other", "latest"}

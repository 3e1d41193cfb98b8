"""`socikit convert --toc-annotations`: each indexed layer of a converted manifest names its ztoc
in `containerd.io/snapshot/stargz/toc.digest` (podman >= 5.1 and CRI-O ask an additional layer
store only for such layers), and `validate`'s `toc-digest` check holds it to that."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from conformance.layout import read_json, replace_blob
from socikit.cli import app
from socikit.content.layout import LayoutSource
from socikit.oci import gojson
from socikit.oci import mediatypes as mt
from socikit.soci.convert import rewrite_manifest
from socikit.validate import validate_image
from socikit.validate.report import TOC_DIGEST
from tests import images
from tests.cli import run_socikit


def _noise(size: int, seed: int) -> bytes:
    """Bytes gzip cannot shrink (so the layers keep their size compressed)."""
    return b"".join(hashlib.sha256(f"{seed}-{i}".encode()).digest() for i in range(size // 32 + 1))[:size]


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three layers; the middle one is too small to be indexed with --min-layer-size 2000."""
    tars = []
    for seed, size in ((1, 200_000), (2, 10), (3, 150_000)):
        builder = images.TarBuilder()
        builder.file(f"data-{seed}.bin", _noise(size, seed))
        tars.append(builder.finish())
    root = tmp_path_factory.mktemp("toc-source") / "layout"
    images.write_oci_layout(root, tars)
    return root


def _convert(source: Path, out: Path, *extra: str) -> None:
    result = CliRunner().invoke(app, ["convert", "--span-size", "65536", "--min-layer-size", "2000", "--no-cache",
                                      "--progress", "none", *extra, f"oci:{source}:latest", f"oci:{out}:latest"])
    assert result.exit_code == 0, result.output


def _converted(out: Path) -> tuple[str, Any, Any]:
    """(manifest digest, manifest, SOCI index) of a converted single-platform layout."""
    top = read_json(out, json.loads((out / "index.json").read_text())["manifests"][0]["digest"])
    entry = next(e for e in top["manifests"] if "artifactType" not in e)
    soci = next(e for e in top["manifests"] if e.get("artifactType") == mt.ARTIFACT_TYPE_SOCI_INDEX_V2)
    return entry["digest"], read_json(out, entry["digest"]), read_json(out, soci["digest"])


def test_indexed_layers_name_their_ztocs(source: Path, tmp_path: Path) -> None:
    _convert(source, tmp_path / "out", "--toc-annotations")
    _, manifest, soci = _converted(tmp_path / "out")
    ztocs = {z["annotations"][mt.ANNOTATION_IMAGE_LAYER_DIGEST]: z["digest"] for z in soci["layers"]}
    layers = manifest["layers"]
    assert len(ztocs) == 2 and len(layers) == 3
    for layer in layers:
        annotations = layer.get("annotations", {})
        if layer["digest"] in ztocs:
            assert annotations == {mt.ANNOTATION_TOC_DIGEST: ztocs[layer["digest"]]}
        else:
            assert mt.ANNOTATION_TOC_DIGEST not in annotations  # not indexed: podman >= 5.1 pulls it itself
    report = validate_image(LayoutSource(tmp_path / "out", tag="latest"))
    assert report.passed, report.failures
    (check,) = report.by_name(TOC_DIGEST)
    assert check.passed and check.reason == "2 layers' toc.digest name their ztocs"


def test_without_the_flag_nothing_changes(source: Path, tmp_path: Path) -> None:
    _convert(source, tmp_path / "plain")
    _convert(source, tmp_path / "toc", "--toc-annotations")
    plain_digest, plain, soci = _converted(tmp_path / "plain")
    _, annotated, toc_soci = _converted(tmp_path / "toc")
    assert soci == toc_soci  # the same SOCI index: only the manifests differ
    assert all("annotations" not in layer for layer in plain["layers"])
    assert not validate_image(LayoutSource(tmp_path / "plain", tag="latest")).by_name(TOC_DIGEST)
    # the pure rewrite: the annotations are the only difference
    ztocs = {z["annotations"][mt.ANNOTATION_IMAGE_LAYER_DIGEST]: z["digest"] for z in soci["layers"]}
    rewritten = rewrite_manifest(gojson.dumps(plain), None, ztocs)
    expected = {**annotated, "annotations": plain.get("annotations")}
    assert json.loads(rewritten) == {k: v for k, v in expected.items() if v is not None}
    assert plain_digest != _converted(tmp_path / "toc")[0]


def test_validate_finds_a_wrong_toc_digest(source: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    _convert(source, out, "--toc-annotations")
    digest, manifest, soci = _converted(out)
    first, small, last = manifest["layers"]
    # the first layer names the last one's ztoc; the small one names a ztoc although it has none
    first["annotations"][mt.ANNOTATION_TOC_DIGEST] = last["annotations"][mt.ANNOTATION_TOC_DIGEST]
    small["annotations"] = {mt.ANNOTATION_TOC_DIGEST: "sha256:" + "0" * 64}
    replace_blob(out, digest, gojson.dumps(manifest))
    report = validate_image(LayoutSource(out, tag="latest"))
    (check,) = report.by_name(TOC_DIGEST)
    assert not check.passed and not report.passed
    assert f"layer {first['digest'][:19]}" in check.reason and "is not its ztoc" in check.reason
    assert f"layer {small['digest'][:19]}" in check.reason and "has no ztoc for the layer" in check.reason


def test_v1_refuses_the_flag(source: Path, tmp_path: Path) -> None:
    result = run_socikit("convert", "--v1", "--toc-annotations", f"oci:{source}:latest", f"oci:{tmp_path / 'o'}:latest")
    assert result.returncode != 0 and "--toc-annotations needs a v2 conversion" in result.stderr
    assert not (tmp_path / "o").exists()

"""What `convert` says about awkward input: an in-place conversion, a source-only destination, a
path without a transport, unreadable files, a layer the ztoc format cannot describe."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from socikit.cli import app
from socikit.content.layout import LayoutSource
from socikit.oci import gojson
from socikit.oci import mediatypes as mt
from socikit.oci.digest import sha256_digest
from tests.vectors import CONFORMANCE, REPO_ROOT, VECTORS_DIR

TRICKY = VECTORS_DIR / "tricky-pax" / "input"
PAX_GLOBAL = CONFORMANCE / "bad-inputs" / "pax-global-header" / "input"
BASE = ["--progress", "none", "--no-cache", "--min-layer-size", "0", "--span-size", "65536"]


def _cli(*args: str):
    return CliRunner().invoke(app, list(args))


def _blob_files(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in (root / "blobs" / "sha256").iterdir()}


# --- in place ------------------------------------------------------------------------------------------

def test_in_place_conversion_moves_the_tag_and_says_so(tmp_path: Path) -> None:
    layout = tmp_path / "image"
    shutil.copytree(TRICKY, layout)
    blobs_before = _blob_files(layout)
    old = LayoutSource(layout, tag="latest").resolve().digest
    result = _cli("convert", *BASE, f"oci:{layout}:latest", f"oci:{layout}:latest")
    assert result.exit_code == 0, result.output
    new = LayoutSource(layout, tag="latest").resolve().digest
    assert new != old
    assert f"note: the tag oci:{layout}:latest moved from {old} to {new} (the source image is unchanged)" \
        in result.output
    after = _blob_files(layout)
    assert {k: after[k] for k in blobs_before} == blobs_before  # content is never changed, only added to
    # Converting the converted image again gives the same digest: the tag does not move.
    again = _cli("convert", *BASE, f"oci:{layout}", f"oci:{layout}")
    assert again.exit_code == 0, again.output
    assert "moved" not in again.output and LayoutSource(layout, tag="latest").resolve().digest == new


def test_in_place_v1_keeps_the_tag(tmp_path: Path) -> None:
    layout = tmp_path / "image"
    shutil.copytree(TRICKY, layout)
    old = LayoutSource(layout, tag="latest").resolve().digest
    result = _cli("convert", "--v1", *BASE, f"oci:{layout}:latest", f"oci:{layout}:latest")
    assert result.exit_code == 0, result.output
    assert "moved" not in result.output
    assert LayoutSource(layout, tag="latest").resolve().digest == old
    assert any(e.artifact_type == mt.ARTIFACT_TYPE_SOCI_INDEX_V1 for e in LayoutSource(layout).entries())


def test_another_tag_of_the_same_layout_is_not_in_place(tmp_path: Path) -> None:
    layout = tmp_path / "image"
    shutil.copytree(TRICKY, layout)
    result = _cli("convert", *BASE, f"oci:{layout}:latest", f"oci:{layout}:soci")
    assert result.exit_code == 0, result.output
    assert "moved" not in result.output
    assert sorted(LayoutSource(layout).tags()) == ["latest", "soci"]


# --- destinations and references -------------------------------------------------------------------

def test_docker_archive_is_a_source_only(tmp_path: Path) -> None:
    result = _cli("convert", *BASE, f"oci:{TRICKY}:latest", f"docker-archive:{tmp_path / 'out.tar'}")
    assert result.exit_code == 1
    assert "docker-archive: can only be a source" in result.output and "\n" not in result.output.strip()
    assert not (tmp_path / "out.tar").exists()
    help_text = " ".join(re.sub(r"[│╭╮╰╯─]", " ", _cli("convert", "--help").output).split())
    assert "docker-archive: and docker-daemon: are sources only" in help_text
    docs = (REPO_ROOT / "docs" / "cli.md").read_text()
    assert "`docker-archive:FILE[:NAME:TAG]` | `docker save` output (source only" in docs


@pytest.mark.parametrize("path", ["/tmp/x", "./x", "../x/y"])
def test_a_path_without_transport_suggests_oci(path: str, tmp_path: Path) -> None:
    result = _cli("convert", *BASE, path, f"oci:{tmp_path / 'out'}")
    assert result.exit_code == 1
    line = result.output.strip()
    assert line.startswith("error:") and "\n" not in line
    assert f"oci:{path}" in line
    result = _cli("convert", *BASE, f"oci:{TRICKY}", path)
    assert result.exit_code == 1 and f"oci:{path}" in result.output


# --- unreadable input ----------------------------------------------------------------------------------

def _as_unprivileged(*args: str) -> subprocess.CompletedProcess[str]:
    """socikit as root without CAP_DAC_OVERRIDE/CAP_DAC_READ_SEARCH: file permissions apply as for
    any other user (root would read a chmod 000 file; the Python install under /root is not
    reachable by `nobody`, so the capabilities are dropped instead of the uid)."""
    return subprocess.run(["setpriv", "--bounding-set=-dac_override,-dac_read_search", sys.executable, "-m",
                           "socikit", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)


def _one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    line = result.stderr.strip()
    assert line.startswith("error:") and "\n" not in line, result.stderr
    for needle in needles:
        assert needle in line, line


def _image(tmp_path: Path) -> tuple[Path, dict]:
    layout = tmp_path / "src"
    shutil.copytree(TRICKY, layout)
    index = json.loads((layout / "index.json").read_bytes())
    manifest_digest = index["manifests"][0]["digest"]
    manifest = json.loads((layout / "blobs" / "sha256" / manifest_digest[7:]).read_bytes())
    return layout, {"manifest": manifest_digest, "config": manifest["config"]["digest"],
                    "layer": manifest["layers"][0]["digest"]}


@pytest.mark.parametrize("what", ["index.json", "manifest", "config", "layer"])
def test_unreadable_input_is_one_line(tmp_path: Path, what: str) -> None:
    layout, digests = _image(tmp_path)
    target = layout / "index.json" if what == "index.json" else layout / "blobs" / "sha256" / digests[what][7:]
    target.chmod(0)
    result = _as_unprivileged("convert", *BASE, f"oci:{layout}:latest", f"oci:{tmp_path / 'dst'}:latest")
    _one_line_error(result, "Permission denied")
    assert not (tmp_path / "dst").exists()


def test_unreadable_skipped_layer_is_one_line(tmp_path: Path) -> None:
    """A layer that is not indexed (zstd) but copied: its permission error is one line."""
    zstd = VECTORS_DIR / "zstd-layer" / "input"
    layout = tmp_path / "src"
    shutil.copytree(zstd, layout)
    index = json.loads((layout / "index.json").read_bytes())
    manifest = json.loads((layout / "blobs" / "sha256" / index["manifests"][0]["digest"][7:]).read_bytes())
    skipped = [layer for layer in manifest["layers"] if "zstd" in layer["mediaType"]]
    assert skipped, manifest
    (layout / "blobs" / "sha256" / skipped[0]["digest"][7:]).chmod(0)
    result = _as_unprivileged("convert", *BASE, f"oci:{layout}:latest", f"oci:{tmp_path / 'dst'}:latest")
    _one_line_error(result, skipped[0]["digest"], "Permission denied")
    assert not (tmp_path / "dst").exists()


# --- layers the ztoc format cannot describe ------------------------------------------------------------

def _mixed_image(tmp_path: Path) -> tuple[Path, str, str]:
    """One image with the global-PAX-header layer of the bad-input case and the tricky-pax layer."""
    layout = tmp_path / "mixed"
    shutil.copytree(PAX_GLOBAL, layout)
    pax_manifest = json.loads((layout / "blobs" / "sha256" / json.loads(
        (layout / "index.json").read_bytes())["manifests"][0]["digest"][7:]).read_bytes())
    tricky_index = json.loads((TRICKY / "index.json").read_bytes())
    tricky_manifest = json.loads((TRICKY / "blobs" / "sha256" / tricky_index["manifests"][0]["digest"][7:])
                                 .read_bytes())
    good = tricky_manifest["layers"][0]
    shutil.copyfile(TRICKY / "blobs" / "sha256" / good["digest"][7:], layout / "blobs" / "sha256" / good["digest"][7:])
    bad = pax_manifest["layers"][0]
    manifest = gojson.dumps({**pax_manifest, "layers": [bad, good]})
    (layout / "blobs" / "sha256" / sha256_digest(manifest)[7:]).write_bytes(manifest)
    entry = {"mediaType": mt.MEDIA_TYPE_OCI_MANIFEST, "digest": sha256_digest(manifest), "size": len(manifest),
             "annotations": {mt.ANNOTATION_REF_NAME: "latest"}}
    (layout / "index.json").write_bytes(gojson.dumps({"schemaVersion": 2, "manifests": [entry]}))
    return layout, bad["digest"], good["digest"]


@pytest.mark.parametrize("version", [[], ["--v1"]], ids=["v2", "v1"])
def test_a_layer_with_a_global_pax_header_is_skipped_with_its_reason(tmp_path: Path, version: list[str]) -> None:
    layout, bad, good = _mixed_image(tmp_path)
    dst = tmp_path / "dst"
    result = subprocess.run([sys.executable, "-m", "socikit", "convert", *version, *BASE[2:], "--progress", "plain",
                             "--json", f"oci:{layout}", f"oci:{dst}"], cwd=REPO_ROOT, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    layers = {o["digest"]: o for o in json.loads(result.stdout)["platforms"][0]["layers"]}
    assert layers[good]["ztoc"] and layers[good]["skipped"] is None
    assert layers[bad]["ztoc"] is None and "global PAX header" in layers[bad]["skipped"]
    assert f"layer {bad[7:19]}: skipped, " in result.stderr and "global PAX header" in result.stderr
    LayoutSource(dst, tag="latest").resolve()


def test_no_layer_indexable_is_still_a_failure(tmp_path: Path) -> None:
    result = _cli("convert", *BASE, f"oci:{PAX_GLOBAL}", f"oci:{tmp_path / 'a' / 'never-written'}")
    assert result.exit_code == 1
    assert "no layer was indexed" in result.output and "global PAX header" in result.output
    assert list(tmp_path.iterdir()) == []

"""validate on multi-platform images whose platforms share one SOCI v2 index: the platforms' layers
are identical, so socikit's conversion lists the same SOCI index once per platform, and the link
check must pair each manifest with the entry for its platform."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conformance.layout import read_json, replace_blob
from socikit.cli import app
from socikit.oci import gojson
from socikit.oci import mediatypes as mt
from tests.platform_images import LayoutWriter

V2_LINKS = "v2-links"


def _cli(*args: str):
    return CliRunner().invoke(app, list(args))


@pytest.fixture
def twins(tmp_path: Path) -> Path:
    """linux/amd64 and linux/arm64 images with byte-identical layers, converted by socikit."""
    writer = LayoutWriter(tmp_path / "src")
    amd64 = writer.image("amd64", seed="shared")
    arm64 = writer.image("arm64", seed="shared")
    writer.tag(writer.index([(amd64, "amd64", ""), (arm64, "arm64", "")]), "latest")
    out = tmp_path / "out"
    result = _cli("convert", "--all-platforms", "--min-layer-size", "0", "--progress", "none", "--no-cache",
                  f"oci:{writer.root}:latest", f"oci:{out}:latest")
    assert result.exit_code == 0, result.output
    return out


def _converted(layout: Path) -> tuple[str, dict]:
    digest = json.loads((layout / "index.json").read_bytes())["manifests"][0]["digest"]
    return digest, read_json(layout, digest)


def _report(layout: Path) -> tuple[int, dict]:
    result = _cli("validate", "--json", f"oci:{layout}:latest")
    return result.exit_code, json.loads(result.stdout)


def test_platforms_sharing_one_soci_index_validate(twins: Path) -> None:
    _, converted = _converted(twins)
    socis = [m for m in converted["manifests"] if m.get("artifactType") == mt.ARTIFACT_TYPE_SOCI_INDEX_V2]
    images = {m["digest"]: m["platform"]["architecture"] for m in converted["manifests"] if "artifactType" not in m}
    # The case at hand: one SOCI index, listed for each platform, each entry naming its own manifest.
    assert len(socis) == 2 and socis[0]["digest"] == socis[1]["digest"]
    assert {s["annotations"][mt.ANNOTATION_IMAGE_MANIFEST_DIGEST] for s in socis} == set(images)
    code, report = _report(twins)
    assert code == 0, [c for c in report["checks"] if not c["passed"]]
    links = [c for c in report["checks"] if c["name"] == V2_LINKS]
    assert {c["subject"].split()[-1] for c in links} == set(images) and all(c["passed"] for c in links)
    assert {c["reason"].rsplit("(", 1)[1] for c in links} == {"linux/amd64)", "linux/arm64)"}
    assert report["summary"]["lazy"] and all(m["lazy"] for m in report["summary"]["manifests"])
    assert report["stats"]["soci_indexes"] == 1


def test_a_soci_entry_for_another_platform_still_fails_v2_links(twins: Path) -> None:
    digest, converted = _converted(twins)
    arm64 = next(m for m in converted["manifests"] if m.get("platform", {}).get("architecture") == "arm64"
                 and "artifactType" in m)
    arm64_manifest = arm64["annotations"][mt.ANNOTATION_IMAGE_MANIFEST_DIGEST]

    def edit(doc: dict) -> None:
        for entry in doc["manifests"]:
            if entry.get("artifactType") and entry["platform"]["architecture"] == "arm64":
                entry["platform"]["architecture"] = "s390x"

    doc = read_json(twins, digest)
    edit(doc)
    replace_blob(twins, digest, gojson.dumps(doc))
    code, report = _report(twins)
    assert code == 1
    failed = [c for c in report["checks"] if not c["passed"]]
    assert [(c["name"], c["subject"].split()[-1]) for c in failed] == [(V2_LINKS, arm64_manifest)]
    assert "platforms differ: SOCI entry linux/s390x, manifest linux/arm64" in failed[0]["reason"]
    assert "image-manifest-digest" not in failed[0]["reason"]  # the entry pointing back was taken

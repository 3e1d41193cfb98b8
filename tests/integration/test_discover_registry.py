# ruff: noqa: F811  (pytest fixtures imported by name)
"""SOCI index discovery against a real registry (Debian's docker-registry 2.8: no Referrers API, so
SOCI v1 indexes are found through the fallback tag), the way the snapshotter, `validate` and
`index list --remote` find them; and a registry→OCI-layout pull that fails part-way leaves the
layout as it was."""

from __future__ import annotations

import functools
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from socikit.cli import app
from socikit.oci import mediatypes as mt
from socikit.registry.options import RegistryOptions
from socikit.registry.referrers import fetch_referrers
from socikit.registry.store import open_registry_client, open_registry_source
from socikit.soci import discover
from socikit.validate import validate_image
from socikit.validate.report import V1_DISCOVERABLE
from tests.integration.registry_fixtures import registry  # noqa: F401  (fixture)
from tests.vectors import VECTORS_DIR

pytestmark = [pytest.mark.integration, pytest.mark.registry]
MULTI = VECTORS_DIR / "multi-platform"
EXPECTED = MULTI / "expected-current"
BASE = ["--span-size", "65536", "--min-layer-size", "0", "--progress", "none", "--plain-http", "--no-cache"]


def _cli(*args: str):
    return CliRunner().invoke(app, list(args))


@pytest.fixture(scope="module")
def pushed(registry) -> dict[str, str]:
    """The multi-platform image with SOCI v1 indexes (`disc:v1`, the fallback tag path) and its
    SOCI v2 conversion (`disc:v2`)."""
    v1 = f"{registry.host}/disc:v1"
    v2 = f"{registry.host}/disc:v2"
    result = _cli("convert", "--v1", *BASE, "--all-platforms", f"oci:{MULTI / 'input'}:latest", v1)
    assert result.exit_code == 0, result.output
    result = _cli("convert", *BASE, "--all-platforms", v1, v2)
    assert result.exit_code == 0, result.output
    return {"v1": v1, "v2": v2, "host": registry.host}


def _subjects() -> dict[str, str]:
    """subject manifest digest -> the v1 index the reference built for it."""
    return {json.loads(p.read_bytes())["subject"]["digest"]: "sha256:" + p.stem.rsplit("-", 1)[1]
            for p in EXPECTED.glob("soci-index-v1-*.json")}


def test_the_snapshotter_decision_over_the_registry(pushed: dict[str, str]) -> None:
    client = open_registry_client(pushed["host"], RegistryOptions(plain_http=True))

    def read_manifest(digest: str) -> bytes:
        return client.get_manifest("disc", digest)[0]

    list_referrers = functools.partial(fetch_referrers, client, "disc")
    converted = json.loads((EXPECTED / "converted-index.json").read_bytes())
    for entry in converted["manifests"]:
        if entry.get("artifactType"):
            continue
        found = discover.find_soci_index(entry["digest"], read_manifest=read_manifest,
                                         list_referrers=list_referrers)
        assert found == discover.FoundIndex(entry["annotations"][mt.ANNOTATION_INDEX_DIGEST], "annotation")
    for subject, index in _subjects().items():
        assert discover.find_soci_index(subject, read_manifest=read_manifest, list_referrers=list_referrers) is None
        found = discover.find_soci_index(subject, read_manifest=read_manifest, list_referrers=list_referrers,
                                         modes=discover.PullModes(v2=True, v1=True))
        assert found is not None and found.how == "referrers" and found.digest == index
    client.close()


def test_validate_finds_v1_through_the_fallback_tag(pushed: dict[str, str]) -> None:
    result = _cli("validate", "--plain-http", "--json", pushed["v1"])
    # Every check passes and the image is indexed, though a default soci-snapshotter (SOCI v1 off)
    # does not lazily load it.
    assert result.exit_code == 0 and result.stderr == "", result.output
    report = json.loads(result.stdout)
    assert report["passed"], [c for c in report["checks"] if not c["passed"]]
    discoverable = [c for c in report["checks"] if c["name"] == V1_DISCOVERABLE]
    assert len(discoverable) == 2 and all(c["passed"] for c in discoverable)
    assert {c["subject"].split()[-1] for c in discoverable} == set(_subjects().values())
    assert not report["summary"]["lazy"] and "soci_v1" in report["summary"]["text"]


def test_validate_with_an_explicit_client(pushed: dict[str, str]) -> None:
    """`validate_image(source, client=, repo=)`: v1 discovery through the client given."""
    options = RegistryOptions(plain_http=True)
    client = open_registry_client(pushed["host"], options)
    with open_registry_source(pushed["host"], "disc", "v1", None, options) as source:
        report = validate_image(source, client=client, repo="disc")
    client.close()
    assert {c.subject.split()[-1] for c in report.by_name(V1_DISCOVERABLE) if c.passed} == set(_subjects().values())


def test_validate_and_list_v2(pushed: dict[str, str]) -> None:
    result = _cli("validate", "--plain-http", pushed["v2"])
    assert result.exit_code == 0, result.output
    listed = json.loads(_cli("index", "list", "--remote", pushed["v2"], "--plain-http", "--json").stdout)
    v2 = {"sha256:" + p.stem.rsplit("-", 1)[1] for p in EXPECTED.glob("soci-index-v2-*.json")}
    assert {row["digest"] for row in listed if row["version"] == "v2"} == v2
    listed = json.loads(_cli("index", "list", "--remote", pushed["v1"], "--plain-http", "--json").stdout)
    assert {row["digest"] for row in listed if row["version"] == "v1"} == set(_subjects().values())


def test_a_failed_pull_into_a_layout_leaves_it_as_it_was(registry, tmp_path: Path) -> None:
    """The config blob of one platform is gone from the registry's storage: the pull fails while
    the layout is being written, and the layout is removed (new) or unchanged (existing)."""
    src = f"{registry.host}/broken:1"
    result = _cli("convert", "--v1", *BASE, "--all-platforms", f"oci:{MULTI / 'input'}:latest", src)
    assert result.exit_code == 0, result.output
    config = "66e9e79ead303666f918f15e8cfaf2c900ce9e36e17da3f4840c1a69b40b90d6"
    shutil.rmtree(registry.root / "storage" / "docker" / "registry" / "v2" / "blobs" / "sha256" / config[:2] / config)
    new = tmp_path / "pulled"
    result = _cli("convert", *BASE, "--all-platforms", src, f"oci:{new}:latest")
    assert result.exit_code == 1 and result.output.startswith("error:"), result.output
    assert not new.exists()
    existing = tmp_path / "existing"
    assert _cli("convert", *BASE, f"oci:{VECTORS_DIR / 'tricky-pax' / 'input'}", f"oci:{existing}").exit_code == 0
    before = {p: p.read_bytes() if p.is_file() else None for p in sorted(existing.rglob("*"))}
    result = _cli("convert", "--v1", *BASE, "--all-platforms", src, f"oci:{existing}:pulled")
    assert result.exit_code == 1, result.output
    assert {p: p.read_bytes() if p.is_file() else None for p in sorted(existing.rglob("*"))} == before

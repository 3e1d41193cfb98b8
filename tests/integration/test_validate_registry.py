# ruff: noqa: F811  (pytest fixtures imported by name)
"""`socikit validate` of registry images, run as the command (a process of its own) against
Debian's docker-registry 2.8: SOCI v1 indexes found through the fallback tag (that registry has no
Referrers API), SOCI v2 indexes through the manifests' annotations, a lone platform manifest; and
not reaching the image (404, a closed port, TLS) is an `error:` line, not a failed check."""

from __future__ import annotations

import json
import subprocess

import pytest
import requests

from socikit.oci import mediatypes as mt
from tests.cli import run_socikit
from tests.integration.registry_fixtures import RegistryServer, free_port, registry, tls_registry  # noqa: F401
from tests.vectors import VECTORS_DIR

pytestmark = [pytest.mark.integration, pytest.mark.registry]
MULTI = VECTORS_DIR / "multi-platform"
EXPECTED = MULTI / "expected-current"
TUNING = ["--span-size", "65536", "--min-layer-size", "0", "--progress", "none", "--no-cache"]
UNINDEXED = ("error: no platform of this image has a SOCI index a soci-snapshotter would load lazily; "
             "add --allow-unindexed to accept that\n")
OCI_INDEX = {"Accept": mt.MEDIA_TYPE_OCI_INDEX}


@pytest.fixture(scope="module")
def pushed(registry: RegistryServer) -> dict[str, str]:
    """The multi-platform vector with SOCI v1 indexes (`val:v1`) and its SOCI v2 conversion
    (`val:v2`), both converted by socikit into the registry."""
    v1, v2 = f"{registry.host}/val:v1", f"{registry.host}/val:v2"
    for args in (["--v1", f"oci:{MULTI / 'input'}:latest", v1], [v1, v2]):
        result = run_socikit("convert", *TUNING, "--plain-http", "--all-platforms", *args)
        assert result.returncode == 0, result.stderr
    return {"v1": v1, "v2": v2, "host": registry.host}


def _validate(*args: str) -> tuple[subprocess.CompletedProcess[str], dict]:
    result = run_socikit("validate", "--json", *args)
    assert "Traceback" not in result.stderr, result.stderr
    return result, json.loads(result.stdout)


def _by_name(report: dict, name: str) -> list[dict]:
    return [c for c in report["checks"] if c["name"] == name]


def _v1_indexes() -> dict[str, str]:
    """subject manifest digest -> the digest of the v1 index the reference built for it."""
    return {json.loads(p.read_bytes())["subject"]["digest"]: "sha256:" + p.stem.rsplit("-", 1)[1]
            for p in EXPECTED.glob("soci-index-v1-*.json")}


def test_v1_through_the_fallback_tag(pushed: dict[str, str]) -> None:
    subjects = _v1_indexes()
    tags = requests.get(f"http://{pushed['host']}/v2/val/tags/list", timeout=10).json()["tags"]
    # No Referrers API here: what socikit pushed is reachable only through the fallback tags.
    assert requests.get(f"http://{pushed['host']}/v2/val/referrers/{next(iter(subjects))}", timeout=10).status_code \
        == 404
    assert {"sha256-" + s[7:] for s in subjects} <= set(tags)
    result, report = _validate("--plain-http", pushed["v1"])
    assert report["passed"], [c for c in report["checks"] if not c["passed"]]
    discoverable = _by_name(report, "v1-discoverable")
    assert {c["subject"].split()[-1] for c in discoverable} == set(subjects.values())
    assert all("fallback tag" in c["reason"] for c in discoverable)
    assert {c["subject"].split()[-1] for c in _by_name(report, "v1-subject") if c["passed"]} == set(subjects.values())
    assert report["stats"]["soci_indexes"] == 2 and report["stats"]["ztocs"] == 3
    # Valid and indexed (the gate passes it), though a default soci-snapshotter (SOCI v1 off) loads it whole.
    assert not report["summary"]["lazy"] and "soci_v1" in report["summary"]["reason"]
    assert result.returncode == 0 and result.stderr == "", result.stdout + result.stderr


def test_v2_through_the_annotations(pushed: dict[str, str]) -> None:
    result, report = _validate("--plain-http", "--deep", pushed["v2"])
    assert result.returncode == 0 and result.stderr == "", [c for c in report["checks"] if not c["passed"]]
    v2 = {"sha256:" + p.stem.rsplit("-", 1)[1] for p in EXPECTED.glob("soci-index-v2-*.json")}
    links = _by_name(report, "v2-links")
    assert len(links) == 2 and all(c["passed"] for c in links)
    assert {c["subject"].split()[-1] for c in _by_name(report, "schema") if c["subject"].startswith("SOCI v2")} == v2
    assert report["summary"]["lazy"] and len(report["summary"]["manifests"]) == 2
    assert report["stats"]["layers_scanned"] == 3 and {c["name"] for c in report["checks"] if c["name"] in (
        "span-digests", "toc-headers", "file-contents")} == {"span-digests", "toc-headers", "file-contents"}
    table = run_socikit("validate", "--plain-http", pushed["v2"])
    assert table.returncode == 0 and "0 failed" in table.stdout and "lazily loads this image" in table.stdout


@pytest.mark.parametrize("tag", ["v1", "v2"])
def test_a_lone_platform_manifest(pushed: dict[str, str], tag: str) -> None:
    """REPO@<platform manifest>: v2 found by digest (one-way link), v1 by that manifest's referrers."""
    index = requests.get(f"http://{pushed['host']}/v2/val/manifests/{tag}", headers=OCI_INDEX, timeout=10).json()
    manifest = next(m for m in index["manifests"] if "artifactType" not in m)
    result, report = _validate("--plain-http", f"{pushed['host']}/val@{manifest['digest']}")
    assert report["passed"] and report["image"] == manifest["digest"], report
    if tag == "v2":
        assert result.returncode == 0 and report["summary"]["lazy"]
        assert "one-way link" in _by_name(report, "v2-links")[0]["reason"]
    else:
        assert result.returncode == 0 and not report["summary"]["lazy"]  # indexed; v1 is off by default
        assert [c["subject"].split()[-1] for c in _by_name(report, "v1-discoverable")] == \
            [_v1_indexes()[manifest["digest"]]]


def test_an_image_without_soci_index_fails_the_gate(registry: RegistryServer) -> None:
    plain = f"{registry.host}/val-plain:1"
    subprocess.run(["skopeo", "copy", "--quiet", "--dest-tls-verify=false", f"oci:{MULTI / 'input'}:latest",
                    f"docker://{plain}"], check=True, capture_output=True, timeout=120)
    result, report = _validate("--plain-http", plain)
    assert report["passed"] and result.returncode == 1 and result.stderr == UNINDEXED
    allowed = run_socikit("validate", "--plain-http", "--allow-unindexed", plain)
    assert allowed.returncode == 0 and allowed.stderr == "", allowed.stdout + allowed.stderr


def _one_error_line(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout == "", result.stdout  # no report: there is no image to judge
    assert "Traceback" not in result.stderr and "schema" not in result.stderr, result.stderr
    line = result.stderr.strip()
    assert line.startswith("error: ") and "\n" not in line, result.stderr
    for needle in needles:
        assert needle in line, line


@pytest.mark.parametrize("json_output", [False, True], ids=["table", "json"])
@pytest.mark.parametrize("what", ["no such tag", "no such repository"])
def test_an_image_that_is_not_there_is_an_error(pushed: dict[str, str], what: str, json_output: bool) -> None:
    ref = f"{pushed['host']}/val:nope" if what == "no such tag" else f"{pushed['host']}/nothere:1"
    result = run_socikit("validate", "--plain-http", *(["--json"] if json_output else []), ref)
    _one_error_line(result, ref, "404")


def test_an_unreachable_registry_is_an_error() -> None:
    port = free_port()  # bound and released: nothing listens there
    result = run_socikit("validate", "--plain-http", "--json", f"127.0.0.1:{port}/x:1")
    _one_error_line(result, f"127.0.0.1:{port}", "connection failed")


def test_plain_http_registry_without_plain_http_is_an_error(pushed: dict[str, str]) -> None:
    result = run_socikit("validate", pushed["v2"])
    _one_error_line(result, "TLS error", "add --plain-http")


def test_an_untrusted_certificate_is_an_error(tls_registry: RegistryServer) -> None:
    assert tls_registry.tls is not None
    ref = f"{tls_registry.host}/tls/app:1"
    trusted = ["--cert-dir", str(tls_registry.tls.cert_dir)]
    result = run_socikit("convert", *TUNING, *trusted, f"oci:{VECTORS_DIR / 'tricky-pax' / 'input'}:latest", ref)
    assert result.returncode == 0, result.stderr
    assert run_socikit("validate", *trusted, ref).returncode == 0  # the same image, reached
    _one_error_line(run_socikit("validate", "--json", ref), "TLS error", "CERTIFICATE_VERIFY_FAILED")


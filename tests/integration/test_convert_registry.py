# ruff: noqa: F811  (pytest fixtures imported by name)
"""`socikit convert`, `create` and `push --v1` against a real registry (Debian's docker-registry
2.8, which has no Referrers API: the fallback tag path is what runs), read back by independent
clients (skopeo, and containerd's ctr when installed by .ci/run)."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from socikit.cli import app
from tests.integration.containerd_fixtures import containerd  # noqa: F401  (fixture)
from tests.integration.registry_fixtures import (  # noqa: F401  (fixtures)
    TEST_PASSWORD,
    TEST_USER,
    htpasswd_registry,
    registry,
    registry_factory,
)
from tests.vectors import all_vectors

pytestmark = [pytest.mark.integration, pytest.mark.registry]
MULTI = next(v for v in all_vectors() if v.name == "multi-platform")
BASE = ["--span-size", "65536", "--min-layer-size", "0", "--progress", "none", "--plain-http"]


def _cli(*args: str, root: Path | None = None):
    env = {"SOCIKIT_ROOT": str(root)} if root else None
    return CliRunner().invoke(app, list(args), env=env)


def _skopeo(*args: str) -> bytes:
    return subprocess.run(["skopeo", *args], check=True, capture_output=True).stdout


def _push_source(registry, repo: str) -> str:
    """Put the multi-platform vector into the registry with our own OCI-layout → registry copy."""
    ref = f"{registry.host}/{repo}:1"
    result = _cli("convert", "--v1", *BASE, "--all-platforms", "--no-validate", "--no-cache",
                  f"oci:{MULTI.input_dir}:latest", ref)
    assert result.exit_code == 0, result.output
    return ref


def test_convert_registry_to_registry_v2(registry, tmp_path: Path) -> None:  # noqa: F811
    src = _push_source(registry, "app")
    dst = f"{registry.host}/app:1-soci"
    result = _cli("convert", *BASE, "--all-platforms", "--no-cache", "--json", src, dst)
    assert result.exit_code == 0, result.output
    expected = (MULTI.path / "expected-current" / "converted-index.json").read_bytes()
    raw = _skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{dst}")
    assert raw == expected  # our exact bytes, and byte-identical to the reference's conversion
    for entry in json.loads(raw)["manifests"]:
        digest = entry["digest"]
        got = _skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{registry.host}/app@{digest}")
        assert "sha256:" + hashlib.sha256(got).hexdigest() == digest
    layout = tmp_path / "copied"
    _skopeo("copy", "--all", "--src-tls-verify=false", f"docker://{dst}", f"oci:{layout}:x")
    assert (layout / "index.json").exists()


def test_convert_registry_to_registry_v1_uses_fallback_tag(registry) -> None:  # noqa: F811
    src = _push_source(registry, "app-v1")
    dst = f"{registry.host}/app-v1:1-soci"
    result = _cli("convert", "--v1", *BASE, "--all-platforms", "--no-cache", src, dst)
    assert result.exit_code == 0, result.output
    index = json.loads(_skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{dst}"))
    expected_v1 = {"sha256:" + f.stem.rsplit("-", 1)[1]
                   for f in (MULTI.path / "expected-current").glob("soci-index-v1-*.json")}
    found = set()
    for entry in index["manifests"]:
        tag = "sha256-" + entry["digest"].split(":")[1]
        referrers = json.loads(_skopeo("inspect", "--raw", "--tls-verify=false",
                                       f"docker://{registry.host}/app-v1:{tag}"))
        for ref in referrers["manifests"]:
            assert ref["artifactType"] == "application/vnd.amazon.soci.index.v1+json"
            found.add(ref["digest"])
    assert found == expected_v1
    listed = json.loads(_cli("index", "list", "--remote", dst, "--plain-http", "--json").stdout)
    assert {row["digest"] for row in listed if row["version"] == "v1"} == expected_v1


def test_create_then_push_v1(registry, tmp_path: Path) -> None:  # noqa: F811
    root = tmp_path / "root"
    src = _push_source(registry, "pushed")
    created = _cli("create", *BASE, "--all-platforms", src, root=root)
    assert created.exit_code == 0, created.output
    pushed = _cli("push", "--v1", "--all-platforms", "--plain-http", "--json", src, root=root)
    assert pushed.exit_code == 0, pushed.output
    rows = json.loads(pushed.stdout)
    assert len(rows) == 2 and all(row["pushed"] for row in rows)
    for row in rows:
        manifest_digest = next(
            s["manifest"] for s in json.loads(_cli("index", "list", "--json", root=root).stdout)
            if s["digest"] == row["digest"]
        )
        tag_index = json.loads(_skopeo("inspect", "--raw", "--tls-verify=false",
                                       f"docker://{registry.host}/pushed:sha256-{manifest_digest[7:]}"))
        assert row["digest"] in {m["digest"] for m in tag_index["manifests"]}
    again = _cli("push", "--v1", "--all-platforms", "--plain-http", "--existing-index", "skip", "--json", src,
                 root=root)
    assert again.exit_code == 0, again.output
    assert [row["pushed"] for row in json.loads(again.stdout)] == [False, False]


def test_wrong_password_is_a_clean_error(htpasswd_registry) -> None:  # noqa: F811
    ref = f"{htpasswd_registry.host}/secret:1"
    result = _cli("convert", *BASE, "--user", f"{TEST_USER}:wrong-password-xyz", f"oci:{MULTI.input_dir}:latest", ref)
    assert result.exit_code == 1
    assert f"authentication failed for {htpasswd_registry.host}" in result.output
    assert "wrong-password-xyz" not in result.output and TEST_PASSWORD not in result.output
    good = _cli("convert", *BASE, "--all-platforms", "--user", f"{TEST_USER}:{TEST_PASSWORD}",
                f"oci:{MULTI.input_dir}:latest", ref)
    assert good.exit_code == 0, good.output
    assert TEST_PASSWORD not in good.output


def test_registry_stopped_mid_convert_then_rerun(registry_factory, tmp_path: Path) -> None:
    server = registry_factory()
    ref = f"{server.host}/flaky:1"
    server.kill()
    result = _cli("convert", *BASE, "--all-platforms", f"oci:{MULTI.input_dir}:latest", ref)
    assert result.exit_code == 1 and server.host in result.output
    server.start()
    result = _cli("convert", *BASE, "--all-platforms", f"oci:{MULTI.input_dir}:latest", ref)
    assert result.exit_code == 0, result.output
    raw = _skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{ref}")
    assert raw == (MULTI.path / "expected-current" / "converted-index.json").read_bytes()


def test_containerd_pulls_the_converted_image(registry, containerd) -> None:  # noqa: F811
    src = _push_source(registry, "for-ctr")
    dst = f"{registry.host}/for-ctr:1-soci"
    assert _cli("convert", *BASE, "--all-platforms", src, dst).exit_code == 0
    pulled = containerd.ctr("image", "pull", "--plain-http", "--platform", "linux/amd64", dst, check=False)
    assert pulled.returncode == 0, pulled.stderr + pulled.stdout
    listed = containerd.ctr("image", "ls").stdout
    assert dst in listed
    expected = "sha256:" + hashlib.sha256(
        (MULTI.path / "expected-current" / "converted-index.json").read_bytes()).hexdigest()
    assert expected in listed

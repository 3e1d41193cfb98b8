# ruff: noqa: F811  (pytest fixtures imported by name)
"""Prefetch artifacts and `--optimizations xattr` through Debian's docker-registry: `convert` to a
registry and `create` + `push --v1` put every blob the SOCI index names (prefetch artifacts
included) in the repository, read back with plain HTTP GETs and skopeo; `validate --deep` passes
on the registry image."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import requests

from socikit.oci import mediatypes as mt
from socikit.soci.index import parse_soci_index
from tests.cli import run_socikit as socikit
from tests.integration.registry_fixtures import RegistryServer, registry  # noqa: F401  (fixture)
from tests.vectors import extra_vectors

pytestmark = [pytest.mark.integration, pytest.mark.registry]
PREFETCH = next(v for v in extra_vectors() if v.name == "prefetch")
FLAGS = ["--plain-http", "--span-size", "65536", "--min-layer-size", "0", "--progress", "none", "--json",
         "--optimizations", "xattr", *[f"--prefetch-file={path}" for path in PREFETCH.params["prefetch_files"]]]


def _blob(server: RegistryServer, repo: str, digest: str) -> bytes:
    response = requests.get(f"{server.url}/v2/{repo}/blobs/{digest}", timeout=30)
    assert response.status_code == 200, (digest, response.status_code)
    return response.content


def _copy_in(server: RegistryServer, repo: str) -> str:
    ref = f"{server.host}/{repo}:1"
    subprocess.run(["skopeo", "copy", "--dest-tls-verify=false", f"oci:{PREFETCH.input_dir}:latest",
                    f"docker://{ref}"], check=True, capture_output=True, timeout=120)
    return ref


def _artifacts(server: RegistryServer, repo: str, soci_digest: str) -> list[bytes]:
    """The prefetch artifacts the SOCI index in the registry names, fetched from the registry."""
    raw = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false",
                          f"docker://{server.host}/{repo}@{soci_digest}"],
                         check=True, capture_output=True, timeout=60).stdout
    index = parse_soci_index(raw)
    assert index.ztocs and len(index.prefetches) == 2
    assert all(d.annotations.get(mt.ANNOTATION_DISABLE_XATTRS) == "true" for d in index.ztocs)
    return [_blob(server, repo, d.digest) for d in index.prefetches]


def test_convert_to_a_registry_writes_the_prefetch_artifacts(registry, tmp_path: Path) -> None:
    src = _copy_in(registry, "prefetch-v2")
    dst = f"{registry.host}/prefetch-v2:soci"
    result = socikit("convert", *FLAGS, src, dst, root=tmp_path / "root")
    assert result.returncode == 0, result.stderr
    soci_digest = json.loads(result.stdout)["platforms"][0]["soci_index"]
    expected = sorted(p.read_bytes() for p in (PREFETCH.path / "expected-current").glob("prefetch-*.json"))
    assert sorted(_artifacts(registry, "prefetch-v2", soci_digest)) == expected
    validated = socikit("validate", "--deep", "--plain-http", "--json", dst)
    assert validated.returncode == 0, validated.stdout
    checks = json.loads(validated.stdout)["checks"]
    assert [c["passed"] for c in checks if c["name"] == "prefetch"] == [True, True]


def test_create_and_push_v1_send_the_prefetch_artifacts(registry, tmp_path: Path) -> None:
    ref = _copy_in(registry, "prefetch-v1")
    root = tmp_path / "store"
    created = socikit("create", *FLAGS, ref, root=root)
    assert created.returncode == 0, created.stderr
    soci_digest = json.loads(created.stdout)["platforms"][0]["soci_index"]
    pushed = socikit("push", "--v1", "--plain-http", ref, root=root)
    assert pushed.returncode == 0, pushed.stderr
    artifacts = _artifacts(registry, "prefetch-v1", soci_digest)
    local = parse_soci_index((root / "store" / "blobs" / "sha256" / soci_digest.split(":")[1]).read_bytes())
    assert artifacts == [(root / "store" / "blobs" / "sha256" / d.digest.split(":")[1]).read_bytes()
                         for d in local.prefetches]

# ruff: noqa: F811  (pytest fixtures imported by name)
"""`socikit merge` against a real registry (Debian's docker-registry), read back with skopeo:
an amd64 and an arm64 image built apart become one index; with --soci each platform gets its
SOCI index and `validate --deep` passes; a platform in two images is refused."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from socikit.cli import app
from tests.integration.registry_fixtures import RegistryServer, free_port, registry  # noqa: F401  (fixture)
from tests.integration.test_cli_registry import LoggedRegistry, check_write_order
from tests.platform_images import LayoutWriter

pytestmark = [pytest.mark.integration, pytest.mark.registry]
TUNING = ["--min-layer-size", "0", "--span-size", "65536", "--progress", "none", "--plain-http"]


def _cli(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def _skopeo(*args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["skopeo", *args], check=check, capture_output=True, timeout=120)


def _raw(ref: str) -> dict[str, Any]:
    return json.loads(_skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{ref}").stdout)


@pytest.fixture(scope="module")
def per_arch(registry: RegistryServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Single-platform images pushed as CI's per-architecture jobs would: REG/app:amd64,
    REG/app:arm64 and REG/app:amd64-rebuilt (another amd64 build)."""
    root = tmp_path_factory.mktemp("per-arch")
    refs = {}
    for name, arch, seed in (("amd64", "amd64", "amd64"), ("arm64", "arm64", "arm64"),
                             ("amd64-rebuilt", "amd64", "amd64-rebuilt")):
        layout = LayoutWriter(root / name)
        layout.tag(layout.image(arch, seed=seed), "1")
        refs[name] = f"{registry.host}/app:{name}"
        _skopeo("copy", "--quiet", "--preserve-digests", "--dest-tls-verify=false", f"oci:{root / name}:1",
                f"docker://{refs[name]}")
    return refs


def test_merge_two_architectures_into_one_index(registry: RegistryServer, per_arch: dict[str, str]) -> None:
    dst = f"{registry.host}/app:1"
    result = _cli("merge", *TUNING, dst, per_arch["amd64"], per_arch["arm64"])
    assert result.exit_code == 0, result.output
    index = _raw(dst)
    assert index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert [e["platform"]["architecture"] for e in index["manifests"]] == ["amd64", "arm64"]
    assert [e["digest"] for e in index["manifests"]] == [
        _skopeo("inspect", "--format", "{{.Digest}}", "--tls-verify=false",
                f"docker://{per_arch[a]}").stdout.decode().strip() for a in ("amd64", "arm64")]
    # skopeo can copy every platform of it: every blob is there.
    copied = _skopeo("copy", "--quiet", "--all", "--src-tls-verify=false", "--dest-tls-verify=false",
                     f"docker://{dst}", f"docker://{registry.host}/copied:1", check=False)
    assert copied.returncode == 0, copied.stderr


def test_merge_with_soci_indexes_each_platform(registry: RegistryServer, per_arch: dict[str, str]) -> None:
    dst = f"{registry.host}/app:1-soci"
    result = _cli("merge", "--soci", *TUNING, "--no-cache", "--json", dst, per_arch["amd64"], per_arch["arm64"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    index = _raw(dst)
    soci = {e["platform"]["architecture"]: e for e in index["manifests"]
            if e.get("artifactType") == "application/vnd.amazon.soci.index.v2+json"}
    assert sorted(soci) == ["amd64", "arm64"]
    images = {e["platform"]["architecture"]: e for e in index["manifests"] if not e.get("artifactType")}
    for arch, entry in images.items():
        assert entry["annotations"]["com.amazon.soci.index-digest"] == soci[arch]["digest"]
    assert summary["conversion"]["result"]["digest"] == summary["result"]["digest"]
    validated = _cli("validate", "--deep", "--plain-http", "--json", dst)
    assert validated.exit_code == 0, validated.output
    assert json.loads(validated.stdout)["passed"] is True


def test_merge_refuses_a_platform_built_twice(registry: RegistryServer, per_arch: dict[str, str]) -> None:
    dst = f"{registry.host}/app:dup"
    amd, rebuilt, arm = per_arch["amd64"], per_arch["amd64-rebuilt"], per_arch["arm64"]
    result = _cli("merge", *TUNING, dst, amd, arm, rebuilt)
    assert result.exit_code == 1
    assert result.output.strip() == (f"error: platform linux/amd64 is in more than one image ({amd}, {rebuilt}): "
                                     f"say which wins with --prefer {amd}")
    assert _skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{dst}", check=False).returncode != 0
    result = _cli("merge", *TUNING, "--prefer", rebuilt, dst, amd, arm, rebuilt)
    assert result.exit_code == 0, result.output
    rebuilt_digest = _skopeo("inspect", "--format", "{{.Digest}}", "--tls-verify=false",
                             f"docker://{rebuilt}").stdout.decode().strip()
    assert [e["digest"] for e in _raw(dst)["manifests"]][1] == rebuilt_digest


def test_merge_writes_an_oci_archive_from_registry_images(per_arch: dict[str, str], tmp_path: Path) -> None:
    archive = tmp_path / "merged.tar"
    result = _cli("merge", *TUNING, f"oci-archive:{archive}:1", per_arch["amd64"], per_arch["arm64"])
    assert result.exit_code == 0, result.output
    inspected = _skopeo("inspect", "--raw", f"oci-archive:{archive}:1").stdout
    assert [e["platform"]["architecture"] for e in json.loads(inspected)["manifests"]] == ["amd64", "arm64"]


def test_merged_index_goes_up_once_by_tag_after_its_manifests(per_arch: dict[str, str], tmp_path: Path) -> None:
    """Blobs, then the platform manifests (at once), then the index in one PUT by tag."""
    server = LoggedRegistry(root=tmp_path / "logged", port=free_port())
    server.root.mkdir()
    server.start()
    try:
        dst = f"{server.host}/merged:1"
        result = _cli("merge", *TUNING, dst, per_arch["amd64"], per_arch["arm64"])
        assert result.exit_code == 0, result.output
        writes = check_write_order(server, "merged", "1")
        raw = _skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{dst}").stdout
        index_digest = "sha256:" + hashlib.sha256(raw).hexdigest()
        puts = [r.path.rsplit("/", 1)[1] for r in writes if r.method == "PUT" and "/manifests/" in r.path]
        assert sorted(puts[:-1]) == sorted(e["digest"] for e in json.loads(raw)["manifests"])
        assert puts[-1] == "1" and index_digest not in puts
    finally:
        server.stop()

# ruff: noqa: F811  (pytest fixtures imported by name)
"""The containerized builder (docker/Dockerfile): built by a real dockerd from a base made offline
(scripts/make_builder_base.py: this machine's Python and socikit's dependencies) and socikit's
wheel built from this tree, then run unprivileged (non-root, every capability dropped, no tmpfs)
to index and push images of a real registry that wants credentials, read from a mounted Docker
config."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from socikit.cli import app
from tests.integration.dockerd_fixtures import Dockerd, dockerd  # noqa: F401  (fixture)
from tests.integration.registry_fixtures import (  # noqa: F401  (fixtures)
    TEST_PASSWORD,
    TEST_USER,
    RegistryServer,
    htpasswd_registry,
)
from tests.platform_images import LayoutWriter
from tests.vectors import REPO_ROOT

pytestmark = [pytest.mark.integration, pytest.mark.docker, pytest.mark.registry, pytest.mark.slow]
BUILDER = "socikit-builder:test"
BASE = "socikit-base:offline"
BUILDER_UID = "65532:65532"


@pytest.fixture(scope="module")
def builder(dockerd: Dockerd, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dockerd]:
    """The builder image in `dockerd`, made the way docs/ci.md says for machines without registry
    access."""
    work = tmp_path_factory.mktemp("builder")
    base_tar = work / "base.tar"
    subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "make_builder_base.py"), str(base_tar)],
                   check=True, capture_output=True, timeout=600)
    dockerd.docker("import", "--change", "ENV PATH=/usr/local/bin:/usr/bin:/bin", str(base_tar), BASE)
    base_tar.unlink()
    # socikit's wheel from this tree (copied: building in place would leave build/ behind).
    source = work / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO_ROOT / name, source / name)
    for name in ("socikit", "schemas"):
        shutil.copytree(REPO_ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    context = work / "context"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "--disable-pip-version-check", "-w", str(context), str(source)],
                   check=True, capture_output=True, timeout=600)
    dockerd.docker("build", "--network", "none", "--build-arg", f"BASE_IMAGE={BASE}",
                   "-f", str(REPO_ROOT / "docker" / "Dockerfile"), "-t", BUILDER, str(context))
    yield dockerd


@pytest.fixture
def docker_config(tmp_path: Path, htpasswd_registry: RegistryServer) -> Path:
    """A Docker config with the registry's credentials, readable by the builder's user."""
    config = tmp_path / "docker-config.json"
    token = base64.b64encode(f"{TEST_USER}:{TEST_PASSWORD}".encode()).decode()
    config.write_text(json.dumps({"auths": {htpasswd_registry.host: {"auth": token}}}))
    config.chmod(0o644)
    return config


def _push_source(tmp_path: Path, registry: RegistryServer, repo: str) -> str:
    layout = LayoutWriter(tmp_path / repo)
    amd, arm = layout.image("amd64", seed=f"{repo}-amd64"), layout.image("arm64", seed=f"{repo}-arm64")
    layout.tag(layout.index([(amd, "amd64", ""), (arm, "arm64", "")]), "1")
    ref = f"{registry.host}/{repo}:1"
    subprocess.run(["skopeo", "copy", "--quiet", "--all", "--preserve-digests", "--dest-tls-verify=false",
                    "--dest-creds", f"{TEST_USER}:{TEST_PASSWORD}", f"oci:{tmp_path / repo}:1", f"docker://{ref}"],
                   check=True, capture_output=True, timeout=120)
    return ref


def _raw(ref: str) -> dict[str, Any]:
    out = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", "--creds",
                          f"{TEST_USER}:{TEST_PASSWORD}", f"docker://{ref}"], check=True, capture_output=True)
    return json.loads(out.stdout)


def _run_builder(daemon: Dockerd, config: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`docker run` the builder unprivileged; the container is inspected, then removed."""
    name = f"socikit-builder-{uuid.uuid4().hex[:12]}"
    env_flags = [flag for key, value in env.items() for flag in ("-e", f"{key}={value}")]
    run = daemon.docker("run", "--name", name, "--network", "host", "--cap-drop", "ALL",
                        "--security-opt", "no-new-privileges",
                        "-v", f"{config}:/home/socikit/.docker/config.json:ro", *env_flags, BUILDER, *args,
                        check=False)
    try:
        (state,) = json.loads(daemon.docker("inspect", name).stdout)
        assert state["Config"]["User"] == BUILDER_UID
        assert state["HostConfig"]["Privileged"] is False
        assert state["HostConfig"]["CapDrop"] == ["ALL"] and not state["HostConfig"]["CapAdd"]
        assert not state["HostConfig"].get("Tmpfs")
        assert [(m["Type"], m["Destination"]) for m in state["Mounts"]] == [
            ("bind", "/home/socikit/.docker/config.json")]
    finally:
        daemon.docker("rm", "-f", name, check=False)
    return run


def test_builder_converts_in_place_with_mounted_credentials(
    builder: Dockerd, htpasswd_registry: RegistryServer, docker_config: Path, tmp_path: Path
) -> None:
    ref = _push_source(tmp_path, htpasswd_registry, "inplace")
    before = _raw(ref)
    env = {"PLAIN_HTTP": "true", "MIN_LAYER_SIZE": "0", "SPAN_SIZE": "65536", "IMAGE_ARCH": "all"}
    run = _run_builder(builder, docker_config, env, ref)
    assert run.returncode == 0, run.stderr
    assert "AWS Lambda cannot start" in run.stdout  # the last line of convert's summary
    after = _raw(ref)  # the tag now names the converted index
    soci = [e for e in after["manifests"] if e.get("artifactType") == "application/vnd.amazon.soci.index.v2+json"]
    assert sorted(e["platform"]["architecture"] for e in soci) == ["amd64", "arm64"]
    assert len(after["manifests"]) == len(before["manifests"]) + 2
    assert TEST_PASSWORD not in run.stdout + run.stderr
    validated = CliRunner().invoke(app, ["validate", "--deep", "--json", "--plain-http", "--user",
                                         f"{TEST_USER}:{TEST_PASSWORD}", ref])
    assert validated.exit_code == 0, validated.output
    assert json.loads(validated.stdout)["passed"] is True


def test_builder_v1_to_a_second_destination(
    builder: Dockerd, htpasswd_registry: RegistryServer, docker_config: Path, tmp_path: Path
) -> None:
    ref = _push_source(tmp_path, htpasswd_registry, "second")
    dst = f"{htpasswd_registry.host}/second:1-v1"
    env = {"PLAIN_HTTP": "true", "MIN_LAYER_SIZE": "0", "SPAN_SIZE": "65536", "IMAGE_ARCH": "linux/arm64",
           "SOCI_INDEX_VERSION": "v1"}
    run = _run_builder(builder, docker_config, env, ref, dst)
    assert run.returncode == 0, run.stderr
    assert "AWS Lambda" not in run.stdout + run.stderr
    source, copied = _raw(ref), _raw(dst)
    assert copied == source  # v1: the image unchanged
    arm = next(e for e in source["manifests"] if e["platform"]["architecture"] == "arm64")
    # docker-registry 2.8 has no Referrers API: the index is listed in the fallback tag.
    referrers = _raw(f"{htpasswd_registry.host}/second:sha256-{arm['digest'].split(':')[1]}")
    (entry,) = referrers["manifests"]
    assert entry["artifactType"] == "application/vnd.amazon.soci.index.v1+json"


def test_builder_bad_settings_are_one_line(builder: Dockerd, docker_config: Path) -> None:
    run = _run_builder(builder, docker_config, {"SOCI_INDEX_VERSION": "v3"}, "127.0.0.1:1/x:1")
    assert run.returncode == 1
    assert run.stderr.strip() == "error: SOCI_INDEX_VERSION='v3': expected v2 or v1"
    run = _run_builder(builder, docker_config, {"PLAIN_HTTP": "true"}, "127.0.0.1:1/x:1")
    assert run.returncode == 1
    assert run.stderr.strip().startswith("error: ") and len(run.stderr.strip().splitlines()) == 1

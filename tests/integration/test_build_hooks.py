# ruff: noqa: F811  (pytest fixtures imported by name)
"""From a build to a lazily loadable image, with a real Docker Engine (Debian's dockerd, started
by the fixture) and a real registry (Debian's docker-registry on 127.0.0.1), read back by
independent clients (skopeo, containerd's ctr).

- an image built by dockerd (BuildKit, from a base made of this machine's own programs) →
  `socikit convert docker-daemon:…` → validates → containerd pulls it;
- the same image pushed by dockerd → `socikit hook --metadata-file` with the file buildx would
  write, after its tag was moved: the build itself is converted, by digest;
- a multi-platform image → one converted index with a SOCI index per platform;
- OCI archives written by skopeo and by buildah → `socikit hook --oci-archive`.

The buildx plugin cannot be installed on these machines: what socikit hands to buildx is tested
as argv (tests/unit/test_build_integrations.py), and a real buildx run below is skipped only
where buildx is absent.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from socikit.cli import app
from tests.images import host_rootfs_tar
from tests.integration.containerd_fixtures import containerd  # noqa: F401  (fixture)
from tests.integration.dockerd_fixtures import Dockerd, dockerd  # noqa: F401  (fixture)
from tests.integration.registry_fixtures import RegistryServer, registry  # noqa: F401  (fixture)
from tests.platform_images import LayoutWriter

pytestmark = [pytest.mark.integration, pytest.mark.docker, pytest.mark.registry, pytest.mark.slow]
TUNING = ["--min-layer-size", "0", "--span-size", "65536", "--progress", "none", "--plain-http"]
SOCI_V2 = "application/vnd.amazon.soci.index.v2+json"


def _cli(*args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(app, list(args), env=env)


def _skopeo_raw(ref: str) -> bytes:
    return subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{ref}"],
                          check=True, capture_output=True, timeout=120).stdout


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _validate_deep(ref: str, *flags: str) -> None:
    result = _cli("validate", "--deep", "--json", "--plain-http", *flags, ref)
    report = json.loads(result.stdout)
    assert result.exit_code == 0 and report["passed"], [c for c in report["checks"] if not c["passed"]]


def _soci_entries(index: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in index["manifests"] if e.get("artifactType") == SOCI_V2]


@pytest.fixture(scope="module")
def built(dockerd: Dockerd, registry: RegistryServer, tmp_path_factory: pytest.TempPathFactory) -> str:
    """`REG/built:1`, built by dockerd with BuildKit from a base imported from this machine's
    programs: a COPY layer of generated files and a RUN layer."""
    work = tmp_path_factory.mktemp("build")
    (work / "base.tar").write_bytes(host_rootfs_tar())
    dockerd.docker("import", str(work / "base.tar"), "socikit-test/base:1")
    context = work / "context"
    rng = random.Random(13)
    for i in range(80):
        path = context / "data" / f"dir{i % 4}" / f"file{i:02d}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(" ".join(rng.choice(["lazy", "pull", "span", "ztoc", "layer"]) for _ in range(3000)))
    (context / "Dockerfile").write_text(
        "FROM socikit-test/base:1\n"
        "COPY data/ /data/\n"
        "RUN echo built-by-dockerd > /built.txt\n"
        'CMD ["/bin/cat", "/built.txt"]\n'
    )
    ref = f"{registry.host}/built:1"
    dockerd.docker("build", "--network", "none", "-t", ref, str(context))
    return ref


def test_engine_build_converts_validates_and_containerd_pulls(
    built: str, dockerd: Dockerd, registry: RegistryServer, containerd: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", dockerd.host)
    dst = f"{registry.host}/built:1-soci"
    result = _cli("convert", *TUNING, "--no-cache", "--json", f"docker-daemon:{built}", dst)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    (platform,) = summary["platforms"]
    assert sum(1 for layer in platform["layers"] if layer["ztoc"]) >= 2  # base layer and the build's own
    raw = _skopeo_raw(dst)
    assert _digest(raw) == summary["result"]["digest"]
    (soci,) = _soci_entries(json.loads(raw))
    assert soci["digest"] == platform["soci_index"]
    _validate_deep(dst)
    pulled = containerd.ctr("image", "pull", "--plain-http", dst, check=False)
    assert pulled.returncode == 0, pulled.stderr + pulled.stdout
    assert summary["result"]["digest"] in containerd.ctr("image", "ls").stdout


def test_hook_converts_the_pushed_build_by_digest_even_after_its_tag_moved(
    built: str, dockerd: Dockerd, registry: RegistryServer, containerd: Any, tmp_path: Path
) -> None:
    pushed = f"{registry.host}/hooked:1"
    dockerd.docker("tag", built, pushed)
    dockerd.docker("push", pushed)
    manifest_bytes = _skopeo_raw(pushed)
    manifest = json.loads(manifest_bytes)
    # The metadata file buildx writes for `--push --metadata-file` (keys it writes, values of this push).
    metadata = tmp_path / "metadata.json"
    metadata.write_text(json.dumps({
        "buildx.build.ref": "default/default/x8w1y4yq1kx3zcr1mxm0v3v8c",
        "containerimage.config.digest": manifest["config"]["digest"],
        "containerimage.descriptor": {"mediaType": manifest["mediaType"], "digest": _digest(manifest_bytes),
                                      "size": len(manifest_bytes)},
        "containerimage.digest": _digest(manifest_bytes),
        "image.name": pushed,
    }))
    # Someone pushes another image to the same tag before the hook runs.
    dockerd.docker("tag", "socikit-test/base:1", pushed)
    dockerd.docker("push", pushed)
    assert _skopeo_raw(pushed) != manifest_bytes

    result = _cli("hook", "--metadata-file", str(metadata), *TUNING, "--no-cache", "--json")
    assert result.exit_code == 0, result.output
    (outcome,) = json.loads(result.stdout)
    assert outcome["source"] == f"{registry.host}/hooked@{_digest(manifest_bytes)}"
    assert outcome["destination"] == pushed
    assert "AWS Lambda cannot start" in result.stderr
    index = json.loads(_skopeo_raw(pushed))  # the tag now names the converted build
    image = next(e for e in index["manifests"] if not e.get("artifactType"))
    converted = json.loads(_skopeo_raw(f"{registry.host}/hooked@{image['digest']}"))
    assert converted["config"]["digest"] == manifest["config"]["digest"]
    assert [layer["digest"] for layer in converted["layers"]] == [layer["digest"] for layer in manifest["layers"]]
    assert len(_soci_entries(index)) == 1
    _validate_deep(pushed)
    pulled = containerd.ctr("image", "pull", "--plain-http", pushed, check=False)
    assert pulled.returncode == 0, pulled.stderr + pulled.stdout


def test_hook_refuses_an_image_that_is_not_what_the_build_reported(
    registry: RegistryServer, tmp_path: Path
) -> None:
    layout = LayoutWriter(tmp_path / "layout")
    image = layout.image("amd64", seed="mismatch")
    layout.tag(image, "1")
    ref = f"{registry.host}/mismatch:1"
    subprocess.run(["skopeo", "copy", "--quiet", "--dest-tls-verify=false", "--preserve-digests",
                    f"oci:{tmp_path / 'layout'}:1", f"docker://{ref}"], check=True, capture_output=True)
    metadata = tmp_path / "m.json"
    metadata.write_text(json.dumps({
        "containerimage.descriptor": {"mediaType": image.media_type, "digest": image.digest, "size": image.size + 1},
        "containerimage.digest": image.digest, "image.name": ref}))
    result = _cli("hook", "--metadata-file", str(metadata), *TUNING, f"{registry.host}/mismatch:soci")
    assert result.exit_code == 1
    assert result.output.strip() == (f"error: {registry.host}/mismatch@{image.digest} is not what the build "
                                     f"reported: size {image.size}, not {image.size + 1}")
    missing = "sha256:" + "0" * 64
    metadata.write_text(json.dumps({"containerimage.digest": missing, "image.name": ref}))
    result = _cli("hook", "--metadata-file", str(metadata), *TUNING, f"{registry.host}/mismatch:soci")
    assert result.exit_code == 1 and "\n" not in result.output.strip()
    assert subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false",
                           f"docker://{registry.host}/mismatch:soci"], capture_output=True).returncode != 0


def test_hook_multi_platform_build_gets_a_soci_index_per_platform(
    registry: RegistryServer, tmp_path: Path
) -> None:
    layout = LayoutWriter(tmp_path / "layout")
    amd, arm = layout.image("amd64"), layout.image("arm64", variant="v8")
    index = layout.index([(amd, "amd64", ""), (arm, "arm64", "v8")], attestations=True)
    layout.tag(index, "multi")
    ref = f"{registry.host}/multi:1"
    subprocess.run(["skopeo", "copy", "--quiet", "--all", "--preserve-digests", "--dest-tls-verify=false",
                    f"oci:{tmp_path / 'layout'}:multi", f"docker://{ref}"], check=True, capture_output=True)
    metadata = tmp_path / "m.json"
    metadata.write_text(json.dumps({
        "containerimage.descriptor": {"mediaType": index.media_type, "digest": index.digest, "size": index.size},
        "containerimage.digest": index.digest, "image.name": ref}))
    dst = f"{registry.host}/multi:1-soci"
    result = _cli("hook", "--metadata-file", str(metadata), *TUNING, "--no-cache", dst)
    assert result.exit_code == 0, result.output
    converted = json.loads(_skopeo_raw(dst))
    platforms = sorted((e["platform"]["architecture"], e["platform"].get("variant", ""))
                       for e in _soci_entries(converted))
    assert platforms == [("amd64", ""), ("arm64", "v8")]
    assert _skopeo_raw(ref) == (tmp_path / "layout" / "blobs" / "sha256" / index.digest[7:]).read_bytes()
    _validate_deep(dst)


def _archive_digest(archive: Path) -> tuple[str, int, str]:
    with tarfile.open(archive) as tar:
        member = tar.extractfile("index.json")
        assert member is not None
        (entry,) = json.loads(member.read())["manifests"]
    return entry["digest"], entry["size"], entry["mediaType"]


def test_hook_converts_a_skopeo_oci_archive(registry: RegistryServer, tmp_path: Path) -> None:
    layout = LayoutWriter(tmp_path / "layout")
    layout.tag(layout.image("amd64", seed="skopeo-archive"), "1")
    archive = tmp_path / "build.tar"
    subprocess.run(["skopeo", "copy", "--quiet", f"oci:{tmp_path / 'layout'}:1", f"oci-archive:{archive}:1"],
                   check=True, capture_output=True)
    dst = f"{registry.host}/from-skopeo:1"
    result = _cli("hook", "--oci-archive", str(archive), *TUNING, "--no-cache", dst)
    assert result.exit_code == 0, result.output
    assert len(_soci_entries(json.loads(_skopeo_raw(dst)))) == 1
    _validate_deep(dst)


@pytest.fixture
def buildah_archive(tmp_path: Path) -> Path:
    """An OCI archive committed by buildah (vfs storage in tmp_path) from a scratch container."""
    buildah = shutil.which("buildah")
    if buildah is None:
        pytest.fail("buildah is not installed (apt-get install -y buildah; scripts/install.sh does it)")
    base = [buildah, "--root", str(tmp_path / "bh-root"), "--runroot", str(tmp_path / "bh-run"),
            "--storage-driver", "vfs"]

    def run(*args: str) -> str:
        return subprocess.run([*base, *args], check=True, capture_output=True, text=True, timeout=300).stdout.strip()

    files = tmp_path / "files"
    rng = random.Random(7)
    for i in range(50):
        (files / f"d{i % 5}").mkdir(parents=True, exist_ok=True)
        (files / f"d{i % 5}" / f"f{i}.txt").write_text(" ".join(str(rng.random()) for _ in range(400)))
    container = run("from", "scratch")
    try:
        run("copy", container, str(files), "/files")
        run("config", "--os", "linux", "--arch", "arm64", container)
        archive = tmp_path / "buildah.tar"
        run("commit", "--format", "oci", container, f"oci-archive:{archive}:1")
    finally:
        run("rm", container)
    return archive


def test_hook_converts_a_buildah_archive_by_the_reported_digest(
    registry: RegistryServer, buildah_archive: Path, tmp_path: Path
) -> None:
    digest, size, media_type = _archive_digest(buildah_archive)
    metadata = tmp_path / "m.json"
    metadata.write_text(json.dumps({"containerimage.descriptor": {"mediaType": media_type, "digest": digest,
                                                                  "size": size},
                                    "containerimage.digest": digest}))
    dst = f"{registry.host}/from-buildah:1"
    result = _cli("hook", "--oci-archive", str(buildah_archive), "--metadata-file", str(metadata), *TUNING,
                  "--soci", "v1", "--no-cache", "--json", dst)
    assert result.exit_code == 0, result.output
    (outcome,) = json.loads(result.stdout)
    assert outcome["source"] == f"oci-archive:{buildah_archive}@{digest}"
    assert outcome["index_version"] == "v1" and outcome["result"]["digest"] == digest
    assert "AWS Lambda" not in result.stdout + result.stderr
    assert outcome["platforms"][0]["platform"] == "linux/arm64"
    _validate_deep(dst)  # SOCI v1 only: indexed, though not lazily loaded by a default snapshotter


def _buildx_installed() -> bool:
    docker = shutil.which("docker")
    return docker is not None and subprocess.run([docker, "buildx", "version"], capture_output=True).returncode == 0


@pytest.mark.skipif(not _buildx_installed(),
                    reason="docker buildx is not installed (the plugin cannot be installed on this machine)")
def test_real_buildx_build_and_push_is_converted_in_place(
    dockerd: Dockerd, registry: RegistryServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", dockerd.host)
    (tmp_path / "data.txt").write_text("x" * 100_000)
    (tmp_path / "Dockerfile").write_text("FROM scratch\nCOPY data.txt /data.txt\n")
    ref = f"{registry.host}/buildx:1"
    result = _cli("buildx", "build", "-t", ref, "--push", *TUNING[:4], "--plain-http", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert len(_soci_entries(json.loads(_skopeo_raw(ref)))) == 1
    _validate_deep(ref)

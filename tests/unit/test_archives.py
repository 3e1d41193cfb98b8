"""oci-archive: and docker-archive: sources (and oci-archive: as a destination)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

from typer.testing import CliRunner

from socikit.cli import app
from socikit.content.archive import DockerArchiveSource, OciArchiveSource
from tests.vectors import all_vectors

VECTOR = next(v for v in all_vectors() if v.name == "tricky-pax")
FLAGS = ["--span-size", "65536", "--min-layer-size", "0", "--progress", "none", "--no-cache"]


def _tar_dir(directory: Path, out: Path) -> None:
    with tarfile.open(out, "w") as tar:
        for path in sorted(directory.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(directory)), recursive=False)


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def test_oci_archive_converts_like_the_layout(tmp_path: Path) -> None:
    archive = tmp_path / "image.tar"
    _tar_dir(VECTOR.input_dir, archive)
    source = OciArchiveSource(archive, tag="latest")
    root = source.resolve()
    assert source.read_blob(root) == VECTOR.blob(root.digest).read_bytes()
    out = tmp_path / "out.tar"
    result = CliRunner().invoke(app, ["convert", *FLAGS, f"oci-archive:{archive}:latest", f"oci-archive:{out}:latest"])
    assert result.exit_code == 0, result.output
    expected = (VECTOR.path / "expected-current" / "converted-index.json").read_bytes()
    with tarfile.open(out) as tar:
        index = json.loads(tar.extractfile("index.json").read())
        digest = index["manifests"][0]["digest"]
        assert tar.extractfile("blobs/sha256/" + digest[7:]).read() == expected


def _docker_save(tmp_path: Path, *, oci_style: bool, compress: bool) -> tuple[Path, bytes, list[bytes]]:
    """A `docker save`-shaped archive of the vector's image (layers stored raw or gzip)."""
    index = json.loads((VECTOR.input_dir / "index.json").read_text())
    manifest = json.loads(VECTOR.blob(index["manifests"][0]["digest"]).read_bytes())
    config = VECTOR.blob(manifest["config"]["digest"]).read_bytes()
    layers = [gzip.decompress(VECTOR.blob(layer["digest"]).read_bytes()) for layer in manifest["layers"]]
    if compress:
        layers = [gzip.compress(layer, mtime=0) for layer in layers]
    path = tmp_path / ("oci-style.tar" if oci_style else "legacy.tar")
    with tarfile.open(path, "w") as tar:
        names = []
        for i, layer in enumerate(layers):
            name = f"blobs/sha256/{hashlib.sha256(layer).hexdigest()}" if oci_style else f"layer{i}/layer.tar"
            _add(tar, name, layer)
            names.append(name)
        config_name = f"blobs/sha256/{hashlib.sha256(config).hexdigest()}" if oci_style else "config.json"
        _add(tar, config_name, config)
        _add(tar, "manifest.json", json.dumps(
            [{"Config": config_name, "RepoTags": ["example.com/app:1"], "Layers": names}]).encode())
    return path, config, layers


def test_docker_archive_legacy_layout_uncompressed(tmp_path: Path) -> None:
    path, config, layers = _docker_save(tmp_path, oci_style=False, compress=False)
    source = DockerArchiveSource(path, ref="example.com/app:1")
    manifest = json.loads(source.read_blob(source.resolve()))
    assert manifest["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    assert [layer["mediaType"] for layer in manifest["layers"]] == ["application/vnd.docker.image.rootfs.diff.tar"]
    assert manifest["layers"][0]["digest"] == "sha256:" + hashlib.sha256(layers[0]).hexdigest()
    result = CliRunner().invoke(app, ["convert", *FLAGS, "--json", f"docker-archive:{path}", f"oci:{tmp_path / 'o'}:x"])
    assert result.exit_code == 0, result.output
    layer = json.loads(result.stdout)["platforms"][0]["layers"][0]
    assert layer["ztoc"] and layer["files"] == 49


def test_docker_archive_oci_style_gzip(tmp_path: Path) -> None:
    path, _, layers = _docker_save(tmp_path, oci_style=True, compress=True)
    source = DockerArchiveSource(path)
    manifest = json.loads(source.read_blob(source.resolve()))
    assert manifest["layers"][0]["mediaType"] == "application/vnd.docker.image.rootfs.diff.tar.gzip"
    with source.open_blob(source.resolve().__class__.from_json(manifest["layers"][0])) as stream:
        assert stream.read() == layers[0]


def test_docker_archive_unknown_ref_lists_tags(tmp_path: Path) -> None:
    path, _, _ = _docker_save(tmp_path, oci_style=False, compress=False)
    result = CliRunner().invoke(app, ["convert", *FLAGS, f"docker-archive:{path}:nope:1", f"oci:{tmp_path / 'o'}:x"])
    assert result.exit_code == 1 and "example.com/app:1" in result.output


def test_unreadable_archive_is_a_clear_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"\x00garbage" * 1000)
    for ref in (f"oci-archive:{junk}", f"docker-archive:{junk}", f"oci-archive:{tmp_path / 'missing.tar'}"):
        result = CliRunner().invoke(app, ["convert", *FLAGS, ref, f"oci:{tmp_path / 'o'}:x"])
        assert result.exit_code == 1, ref
        assert result.output.startswith("error:") and "\n" not in result.output.strip(), result.output

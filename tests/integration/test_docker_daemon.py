"""`docker-daemon:` against a real Docker Engine: Debian's dockerd (package docker.io), started by
the fixture with its own data root, exec root and socket and no networking (--bridge=none,
--iptables=false), loaded with a `docker save`-style archive built by the test."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from socikit.cli import app
from socikit.content.docker_daemon import DockerDaemonSource
from socikit.content.layout import LayoutSource
from socikit.errors import ImageError
from socikit.oci import mediatypes as mt
from socikit.oci.descriptor import Descriptor
from socikit.transports import open_source
from tests.unit.test_archive import build_docker_save, make_layer

pytestmark = [pytest.mark.integration, pytest.mark.docker]

START_TIMEOUT = 60.0


@pytest.fixture(scope="module")
def dockerd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private dockerd; yields its DOCKER_HOST. Fails (never skips) with the reason and the
    daemon's log when it cannot start."""
    for tool in ("dockerd", "docker"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed: apt-get install -y docker.io (scripts/install.sh does it)")
    base = tmp_path_factory.mktemp("dockerd")
    host = f"unix://{base}/d.sock"
    log_path = base / "dockerd.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            ["dockerd", "--data-root", str(base / "data"), "--exec-root", str(base / "exec"),
             "--pidfile", str(base / "d.pid"), "-H", host, "--bridge=none", "--iptables=false",
             "--ip6tables=false"],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL,
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while subprocess.run(["docker", "-H", host, "version"], capture_output=True).returncode != 0:
            if proc.poll() is not None or time.monotonic() > deadline:
                state = f"exited with {proc.returncode}" if proc.poll() is not None else "did not answer in time"
                pytest.fail(f"dockerd {state}; log tail:\n{log_path.read_text(errors='replace')[-3000:]}")
            time.sleep(0.2)
        yield host
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        for mount in ("data", "exec"):
            subprocess.run(["umount", "-R", str(base / mount)], capture_output=True)


def _load(host: str, archive: Path) -> None:
    loaded = subprocess.run(["docker", "-H", host, "load", "-i", str(archive)], capture_output=True, text=True)
    assert loaded.returncode == 0, loaded.stderr


@pytest.mark.parametrize("oci_style", [False, True], ids=["legacy-save", "docker25-save"])
def test_reads_an_image_from_the_engine(dockerd: str, tmp_path: Path, oci_style: bool,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    tag = f"example.com/app:{'oci' if oci_style else 'legacy'}"
    archive, config, layers = build_docker_save(tmp_path, oci_style=oci_style, repo_tags=(tag,),
                                                repeat_first_layer=True)
    _load(dockerd, archive)
    monkeypatch.setenv("DOCKER_HOST", dockerd)
    source = open_source(f"docker-daemon:{tag}")
    assert isinstance(source, DockerDaemonSource)
    manifest = json.loads(source.read_blob(source.resolve()))
    assert manifest["mediaType"] == mt.MEDIA_TYPE_DOCKER_MANIFEST
    # The engine keeps config bytes and layer diffs exactly, so what comes back is what went in.
    assert source.read_blob(Descriptor.from_json(manifest["config"])) == config
    got = []
    for entry in manifest["layers"]:
        with source.open_blob(Descriptor.from_json(entry)) as stream:
            got.append(stream.read())
    assert got == layers
    spool = source._path
    assert spool.exists()
    source.close()
    assert not spool.exists()


def test_convert_from_the_engine(dockerd: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    layers = [make_layer({f"dir/file{i}": bytes([i]) * (5000 + i) for i in range(40)})]
    archive, _, _ = build_docker_save(tmp_path, oci_style=False, layers=layers, repo_tags=("example.com/conv:1",))
    _load(dockerd, archive)
    monkeypatch.setenv("DOCKER_HOST", dockerd)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["convert", "--min-layer-size", "0", "--span-size", "65536", "--progress",
                                      "none", "--no-cache", "--json", "docker-daemon:example.com/conv:1",
                                      f"oci:{out}:latest"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    layer = summary["platforms"][0]["layers"][0]
    assert layer["ztoc"] and layer["files"] == 41  # 40 files and their directory
    assert LayoutSource(out, tag="latest").resolve().digest == summary["result"]["digest"]


def test_missing_image_is_a_clear_error(dockerd: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", dockerd)
    with pytest.raises(ImageError) as info:
        DockerDaemonSource("example.com/nope:1", tmp_dir=tmp_path)
    assert str(info.value) == f"image example.com/nope:1 is not in the Docker daemon's store ({dockerd})"
    assert list(tmp_path.iterdir()) == []  # the spool file is gone
    result = CliRunner().invoke(app, ["convert", "--progress", "none", "docker-daemon:example.com/nope:1",
                                      f"oci:{tmp_path / 'o'}:x"])
    assert result.exit_code == 1
    assert result.output.startswith("error: image example.com/nope:1 is not in the Docker daemon's store")
    assert "\n" not in result.output.strip()
    assert not (tmp_path / "o" / "index.json").exists()


def test_unreachable_daemon_is_a_clear_error(tmp_path: Path) -> None:
    host = f"unix://{tmp_path}/nobody-listens.sock"
    with pytest.raises(ImageError, match=f"^cannot reach the Docker daemon at {host}: ") as info:
        DockerDaemonSource("busybox:latest", host=host, tmp_dir=tmp_path)
    assert "\n" not in str(info.value)
    assert list(tmp_path.iterdir()) == []

"""`docker-daemon:` source against a real Docker Engine (Debian's dockerd, started by the test
with its own data root and socket, no networking), read through python-on-whales."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from socikit.cli import app
from tests.unit.test_archives import _docker_save

pytestmark = [pytest.mark.integration, pytest.mark.docker]


@pytest.fixture
def dockerd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if shutil.which("dockerd") is None:
        pytest.fail("dockerd is not installed (apt-get install -y docker.io; scripts/install.sh does it)")
    base = Path(tmp_path_factory.mktemp("dockerd", numbered=True))
    host = f"unix://{base}/d.sock"
    log = open(base / "dockerd.log", "wb")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(
        ["dockerd", "--data-root", str(base / "data"), "--exec-root", str(base / "exec"), "--pidfile",
         str(base / "d.pid"), "-H", host, "--bridge=none", "--iptables=false", "--ip6tables=false"],
        stdout=log, stderr=log, stdin=subprocess.DEVNULL,
    )
    log.close()
    try:
        deadline = time.monotonic() + 60
        while subprocess.run(["docker", "-H", host, "version"], capture_output=True).returncode != 0:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("dockerd did not start: " + (base / "dockerd.log").read_text()[-2000:])
            time.sleep(0.2)
        yield host
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        subprocess.run(["umount", "-R", str(base / "data")], capture_output=True)
        subprocess.run(["umount", "-R", str(base / "exec")], capture_output=True)


def test_convert_from_the_docker_engine(dockerd: str, tmp_path: Path, monkeypatch) -> None:
    archive, _, layers = _docker_save(tmp_path, oci_style=False, compress=False)
    loaded = subprocess.run(["docker", "-H", dockerd, "load", "-i", str(archive)], capture_output=True, text=True)
    assert loaded.returncode == 0, loaded.stderr
    monkeypatch.setenv("DOCKER_HOST", dockerd)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["convert", "--min-layer-size", "0", "--span-size", "65536", "--progress", "none",
                                      "--no-cache", "--json", "docker-daemon:example.com/app:1", f"oci:{out}:latest"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    layer = summary["platforms"][0]["layers"][0]
    assert layer["ztoc"] and layer["files"] == 49
    assert (out / "blobs" / "sha256" / summary["result"]["digest"][7:]).exists()


def test_missing_image_in_the_docker_engine(dockerd: str, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", dockerd)
    result = CliRunner().invoke(app, ["convert", "--progress", "none", "docker-daemon:example.com/nope:1",
                                      f"oci:{tmp_path / 'o'}:x"])
    assert result.exit_code == 1
    assert result.output.startswith("error: cannot export example.com/nope:1") and "\n" not in result.output.strip()
    assert not os.path.exists(tmp_path / "o" / "index.json")

"""A private Docker Engine: Debian's `dockerd` (package docker.io) started by the fixture with its
own data root, exec root, pid file and unix socket, and no networking of its own (`--bridge=none
--iptables=false`): containers and builds run with `--network none` or `--network host`.
Teardown stops the daemon and unmounts everything it left under its directories.

`Dockerd.docker(...)` runs Debian's docker 20.10 client (`/usr/bin/docker`, BuildKit built in)
against it; socikit itself reaches it through `DOCKER_HOST`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.mounts import mounts_under

START_TIMEOUT = 60.0
# Debian's client: `docker build` uses BuildKit with DOCKER_BUILDKIT=1 (no buildx plugin needed).
DOCKER_CLIENT = "/usr/bin/docker"


@dataclass
class Dockerd:
    host: str  # unix://.../d.sock, for DOCKER_HOST
    base: Path

    def docker(self, *args: str, check: bool = True, timeout: float = 600,
               input: bytes | None = None) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "DOCKER_BUILDKIT": "1", "DOCKER_HOST": self.host}
        result = subprocess.run([DOCKER_CLIENT, *args], capture_output=True, text=input is None, env=env,
                                timeout=timeout, input=input)
        if check and result.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
        return result


def start_dockerd(base: Path) -> tuple[subprocess.Popen[bytes], Dockerd]:
    for tool in ("dockerd", DOCKER_CLIENT):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed: apt-get install -y docker.io (scripts/install.sh does it)")
    host = f"unix://{base}/d.sock"
    log_path = base / "dockerd.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            ["dockerd", "--data-root", str(base / "data"), "--exec-root", str(base / "exec"),
             "--pidfile", str(base / "d.pid"), "-H", host, "--bridge=none", "--iptables=false",
             "--ip6tables=false"],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL,
        )
    daemon = Dockerd(host=host, base=base)
    deadline = time.monotonic() + START_TIMEOUT
    while daemon.docker("version", check=False).returncode != 0:
        if proc.poll() is not None or time.monotonic() > deadline:
            state = f"exited with {proc.returncode}" if proc.poll() is not None else "did not answer in time"
            stop_dockerd(proc, base)
            pytest.fail(f"dockerd {state}; log tail:\n{log_path.read_text(errors='replace')[-3000:]}")
        time.sleep(0.2)
    return proc, daemon


def stop_dockerd(proc: subprocess.Popen[bytes], base: Path) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
    for point in mounts_under(base):
        subprocess.run(["umount", point], capture_output=True)
    for point in mounts_under(base):  # anything still busy: detach it
        subprocess.run(["umount", "-l", point], capture_output=True)


@pytest.fixture(scope="module")
def dockerd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dockerd]:
    """A private dockerd for a test module; fails (never skips) with the daemon's log when it
    cannot start."""
    base = tmp_path_factory.mktemp("dockerd")
    proc, daemon = start_dockerd(base)
    try:
        yield daemon
    finally:
        stop_dockerd(proc, base)

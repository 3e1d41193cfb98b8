"""A private containerd (Debian's package) started by the test: own root, state and socket under
tmp_path, CRI disabled, stopped at teardown."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass
class Containerd:
    address: str
    root: Path

    def ctr(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ctr", "--address", self.address, *args], capture_output=True, text=True,
                              check=check, timeout=120)


@pytest.fixture
def containerd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Containerd]:
    if shutil.which("containerd") is None or shutil.which("ctr") is None:
        pytest.fail("containerd is not installed (apt-get install -y containerd runc; scripts/install.sh does it)")
    base = Path(tmp_path_factory.mktemp("ctrd", numbered=True))
    address = str(base / "c.sock")
    config = base / "config.toml"
    config.write_text(
        "version = 2\n"
        f'root = "{base / "root"}"\n'
        f'state = "{base / "state"}"\n'
        'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
        "[grpc]\n"
        f'  address = "{address}"\n'
        "[ttrpc]\n"
        f'  address = "{base / "t.sock"}"\n'
        "[metrics]\n"
        '  address = ""\n'
    )
    log = open(base / "containerd.log", "wb")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(["containerd", "--config", str(config)], stdout=log, stderr=log,
                            stdin=subprocess.DEVNULL)
    log.close()
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError("containerd exited: " + (base / "containerd.log").read_text()[-2000:])
            ok = subprocess.run(["ctr", "--address", address, "version"], capture_output=True).returncode == 0
            if ok:
                break
            time.sleep(0.1)
        else:
            raise RuntimeError("containerd did not start within 20 s")
        yield Containerd(address=address, root=base)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        subprocess.run(["umount", "-R", str(base / "root")], capture_output=True)

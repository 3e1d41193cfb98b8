"""socikit's snapshotter daemon as a subprocess, and Debian's containerd using it as the proxy
plugin `socikit`.

Fixtures (import them by name into a test module):
  snapshotter_daemon       the daemon alone (own root, socket, config under a tmp dir)
  socikit_containerd       the daemon + containerd (own root/state/socket, CRI disabled,
                           `[proxy_plugins.socikit]` pointing at the daemon)
  socikit_containerd_local_layers
                           the same, with the daemon serving layers through the unit-test double
                           tests.snapshotter.local_layers (a layer table the test fills)
Every process a fixture starts is stopped at teardown, and every mount under its tmp dir is
unmounted.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from socikit.snapshotter.fs import TEST_LAYER_FS_ENV
from tests.snapshotter.local_layers import LAYERS_ENV, SPEC
from tests.vectors import REPO_ROOT

SNAPSHOTTER = "socikit"
START_TIMEOUT_S = 30.0


def _socket_accepts(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return False
        return True


@dataclass
class SnapshotterDaemon:
    """`python -m socikit snapshotter` with its own root, socket and config under `base`."""

    base: Path
    env: dict[str, str] = field(default_factory=dict)
    extra_args: tuple[str, ...] = ()
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def address(self) -> Path:
        return self.base / "run" / "snapshotter.sock"

    @property
    def root(self) -> Path:
        return self.base / "root"

    @property
    def config(self) -> Path:
        return self.base / "snapshotter.toml"

    @property
    def log_path(self) -> Path:
        return self.base / "daemon.log"

    def command(self) -> list[str]:
        return [sys.executable, "-m", "socikit", "snapshotter", "--address", str(self.address), "--root",
                str(self.root), "--config", str(self.config), "--log-level", "debug", *self.extra_args]

    def start(self, *, wait: bool = True) -> None:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.base.mkdir(parents=True, exist_ok=True)
        if not self.config.exists():
            self.config.write_text("")
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), **self.env}
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         cwd=REPO_ROOT, env=env)
        self.starts += 1
        if wait:
            self.wait_ready()

    def wait_ready(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"snapshotter exited with {self.proc.returncode}: {self.log_tail()}")
            # this start's "serving" line (the log is appended to across restarts)
            if self._serving_count() >= self.starts and _socket_accepts(self.address):
                return
            time.sleep(0.05)
        raise RuntimeError(f"snapshotter did not start within {START_TIMEOUT_S} s: {self.log_tail()}")

    def _serving_count(self) -> int:
        return sum(1 for e in self.log_entries() if e.get("msg") == "serving")

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        """Signal the daemon and wait for it; SIGKILL if it does not stop. Returns its exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
            raise RuntimeError(f"snapshotter ignored signal {sig}: {self.log_tail()}") from None

    def kill(self) -> None:
        """SIGKILL, as a crash would: no clean-up runs."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=10)

    def log_entries(self) -> list[dict[str, Any]]:
        entries = []
        if self.log_path.exists():
            for line in self.log_path.read_text(errors="replace").splitlines():
                try:
                    entries.append(json.loads(line))
                except ValueError:
                    entries.append({"unparsed": line})
        return entries

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:] if self.log_path.exists() else "(no log)"


def unmount_below(base: Path) -> None:
    """Unmount everything mounted under `base`, deepest first (lazily if busy)."""
    prefix = str(base.resolve()) + "/"
    with open("/proc/self/mountinfo") as info:
        points = [line.split()[4] for line in info]
    for point in sorted({p for p in points if p.startswith(prefix)}, key=lambda p: p.count("/"), reverse=True):
        if subprocess.run(["umount", point], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", point], capture_output=True)


@dataclass
class SocikitContainerd:
    """containerd with the snapshotter daemon as proxy plugin `socikit`."""

    base: Path
    daemon: SnapshotterDaemon
    proc: subprocess.Popen[bytes] | None = None
    layers_table: Path | None = None  # set when the daemon uses the local-directory test double

    @property
    def address(self) -> Path:
        return self.base / "containerd.sock"

    def ctr(self, *args: str, check: bool = True, namespace: str = "default",
            timeout: float = 180) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(["ctr", "--address", str(self.address), "--namespace", namespace, *args],
                                capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"ctr {' '.join(args)} failed ({result.returncode}): {result.stderr[-2000:]}")
        return result

    def write_config(self) -> Path:
        config = self.base / "containerd.toml"
        config.write_text(
            "version = 2\n"
            f'root = "{self.base / "root"}"\n'
            f'state = "{self.base / "state"}"\n'
            'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
            "[grpc]\n"
            f'  address = "{self.address}"\n'
            "[ttrpc]\n"
            f'  address = "{self.base / "ttrpc.sock"}"\n'
            "[metrics]\n"
            '  address = ""\n'
            f"[proxy_plugins.{SNAPSHOTTER}]\n"
            '  type = "snapshot"\n'
            f'  address = "{self.daemon.address}"\n'
        )
        return config

    def start(self) -> None:
        config = self.write_config()
        with open(self.base / "containerd.log", "ab") as log:
            self.proc = subprocess.Popen(["containerd", "--config", str(config)], stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=log)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("containerd exited: " + (self.base / "containerd.log").read_text()[-2000:])
            if self.ctr("version", check=False, timeout=10).returncode == 0:
                self.wait_for_snapshotter()
                return
            time.sleep(0.1)
        raise RuntimeError("containerd did not start within 30 s")

    def wait_for_snapshotter(self) -> None:
        """containerd reconnects to a restarted proxy plugin with a back-off: wait until the
        snapshotter answers through it."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.ctr("snapshot", "--snapshotter", SNAPSHOTTER, "ls", check=False, timeout=10).returncode == 0:
                return
            time.sleep(0.2)
        raise RuntimeError("containerd cannot reach the socikit snapshotter: " + self.daemon.log_tail())

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def snapshots_stub(self) -> Any:
        """containerd's own Snapshots service (what an unpacking client such as rpull calls)."""
        import grpc

        from socikit.containerd._proto import snapshots_pb2_grpc

        channel = grpc.insecure_channel(f"unix://{self.address}")
        return snapshots_pb2_grpc.SnapshotsStub(channel), channel


def _require_tools() -> None:
    missing = [t for t in ("containerd", "ctr", "runc") if shutil.which(t) is None]
    if missing:
        pytest.fail(f"{', '.join(missing)} not installed (apt-get install -y containerd runc)")


@pytest.fixture
def snapshotter_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SnapshotterDaemon]:
    """A started daemon without containerd."""
    daemon = SnapshotterDaemon(base=tmp_path_factory.mktemp("snapd", numbered=True))
    try:
        daemon.start()
        yield daemon
    finally:
        daemon.stop()
        unmount_below(daemon.base)


def _stack(tmp_path_factory: pytest.TempPathFactory, env: Mapping[str, str],
           layers_table: Path | None) -> Iterator[SocikitContainerd]:
    _require_tools()
    base = tmp_path_factory.mktemp("socikit-ctrd", numbered=True)
    daemon = SnapshotterDaemon(base=base / "snapshotter", env=dict(env))
    containerd = SocikitContainerd(base=base, daemon=daemon, layers_table=layers_table)
    try:
        daemon.start()
        containerd.start()
        yield containerd
    finally:
        containerd.stop()
        daemon.stop()
        unmount_below(base)


@pytest.fixture
def socikit_containerd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SocikitContainerd]:
    yield from _stack(tmp_path_factory, {}, None)


@pytest.fixture
def socikit_containerd_local_layers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SocikitContainerd]:
    table = tmp_path_factory.mktemp("local-layers", numbered=True) / "layers.json"
    table.write_text("{}")
    yield from _stack(tmp_path_factory, {TEST_LAYER_FS_ENV: SPEC, LAYERS_ENV: str(table)}, table)

"""The daemon process: socket permissions, refusing a served socket, replacing a stale one,
JSON logs, clean stop on SIGTERM/SIGINT, metrics endpoint. (With containerd: tests/integration.)"""

# ruff: noqa: F811  (pytest fixtures imported by name)
from __future__ import annotations

import signal
import socket
import stat
import subprocess
import sys
import urllib.request
from pathlib import Path

import grpc
import pytest

from socikit.containerd._proto import snapshots_pb2 as pb
from socikit.containerd._proto import snapshots_pb2_grpc as pb_grpc
from socikit.snapshotter.fs import TEST_LAYER_FS_ENV
from socikit.snapshotter.metrics import MetricsRegistry, MetricsServer, parse_address
from tests.integration.registry_fixtures import free_port
from tests.integration.snapshotter_fixtures import SnapshotterDaemon, snapshotter_daemon  # noqa: F401
from tests.vectors import REPO_ROOT


def _stub(daemon: SnapshotterDaemon) -> tuple[pb_grpc.SnapshotsStub, grpc.Channel]:
    channel = grpc.insecure_channel(f"unix://{daemon.address}")
    return pb_grpc.SnapshotsStub(channel), channel


def test_socket_is_private_and_removed_on_sigterm(snapshotter_daemon: SnapshotterDaemon) -> None:
    daemon = snapshotter_daemon
    st = daemon.address.lstat()
    assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
    assert stat.S_IMODE(daemon.address.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(daemon.root.stat().st_mode) == 0o700
    stub, channel = _stub(daemon)
    stub.Prepare(pb.PrepareSnapshotRequest(snapshotter="socikit", key="k"))
    channel.close()
    assert daemon.stop(signal.SIGTERM) == 0
    assert not daemon.address.exists()
    entries = daemon.log_entries()
    assert all({"time", "level", "msg"} <= set(e) for e in entries), entries
    messages = [e["msg"] for e in entries]
    assert messages[0] == "serving" and messages[-2:] == ["stopping", "stopped"]
    assert any(e.get("method") == "Prepare" and e.get("key") == "k" for e in entries)
    # the snapshot outlives the daemon
    daemon.start()
    stub, channel = _stub(daemon)
    assert stub.Stat(pb.StatSnapshotRequest(snapshotter="socikit", key="k")).info.kind == pb.ACTIVE
    channel.close()
    assert daemon.stop(signal.SIGINT) == 0
    assert not daemon.address.exists()


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run([sys.executable, "-m", "socikit", "snapshotter", *args], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=60, env={**os.environ, **(env or {})})


def test_a_second_daemon_is_refused(snapshotter_daemon: SnapshotterDaemon, tmp_path: Path) -> None:
    daemon = snapshotter_daemon
    # same socket, other root: the socket is served
    result = _run("--address", str(daemon.address), "--root", str(tmp_path / "other"))
    assert result.returncode == 1 and f"another process is serving {daemon.address}" in result.stderr
    # other socket, same root: the root is locked
    result = _run("--address", str(tmp_path / "x.sock"), "--root", str(daemon.root))
    assert result.returncode == 1 and "is in use by another snapshotter" in result.stderr
    assert not (tmp_path / "x.sock").exists()
    assert daemon.proc is not None and daemon.proc.poll() is None and daemon.address.exists()


def test_stale_socket_is_replaced_and_other_files_are_not(tmp_path: Path) -> None:
    daemon = SnapshotterDaemon(base=tmp_path / "d")
    daemon.address.parent.mkdir(parents=True)
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(daemon.address))
    stale.close()  # bound, never listening: what a killed daemon leaves
    try:
        daemon.start()
        assert daemon.address.exists()
    finally:
        daemon.stop()
    regular = tmp_path / "file.sock"
    regular.write_text("keep me")
    result = _run("--address", str(regular), "--root", str(tmp_path / "root2"))
    assert result.returncode == 1 and "exists and is not a socket" in result.stderr
    assert regular.read_text() == "keep me"


def test_test_layer_filesystem_must_come_from_the_tests_package(tmp_path: Path) -> None:
    result = _run("--address", str(tmp_path / "s.sock"), "--root", str(tmp_path / "root"),
                  env={TEST_LAYER_FS_ENV: "socikit.snapshotter.fs:NoLazyLayers"})
    assert result.returncode == 1
    assert "only a tests.<module>:<factory> test double may be named" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "s.sock").exists()


def test_metrics_endpoint_counts_requests(tmp_path: Path) -> None:
    port = free_port()
    daemon = SnapshotterDaemon(base=tmp_path / "d", extra_args=("--metrics-address", f"127.0.0.1:{port}"))
    daemon.start()
    try:
        stub, channel = _stub(daemon)
        stub.Prepare(pb.PrepareSnapshotRequest(snapshotter="socikit", key="a"))
        with pytest.raises(grpc.RpcError):
            stub.Stat(pb.StatSnapshotRequest(snapshotter="socikit", key="missing"))
        channel.close()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            text = response.read().decode()
        lines = set(text.splitlines())
        assert 'socikit_snapshotter_grpc_requests_total{method="Prepare"} 1' in lines
        assert 'socikit_snapshotter_grpc_errors_total{method="Stat",code="NOT_FOUND"} 1' in lines
        assert 'socikit_snapshotter_snapshots{kind="active"} 1' in lines
        assert 'socikit_snapshotter_snapshots{kind="committed"} 0' in lines
        assert "# TYPE socikit_snapshotter_spans_fetched_total counter" in lines
    finally:
        daemon.stop()


def test_metrics_registry_renders_prometheus_text() -> None:
    registry = MetricsRegistry()
    counter = registry.counter("c_total", "A counter.\nSecond line.", ("layer",))
    gauge = registry.gauge("g", "A gauge.")
    counter.inc(layer='sha256:"x"\\')
    counter.inc(2.5, layer="b")
    gauge.set(3)
    gauge.dec(0.5)
    text = registry.render()
    assert text.splitlines() == [
        "# HELP c_total A counter.\\nSecond line.", "# TYPE c_total counter",
        'c_total{layer="b"} 2.5', 'c_total{layer="sha256:\\"x\\"\\\\"} 1',
        "# HELP g A gauge.", "# TYPE g gauge", "g 2.5",
    ]
    with pytest.raises(ValueError):
        counter.inc(-1, layer="b")
    with pytest.raises(ValueError):
        counter.inc(other="b")
    with pytest.raises(ValueError):
        registry.counter("c_total", "again")


def test_metrics_server_serves_only_metrics() -> None:
    registry = MetricsRegistry()
    registry.counter("x_total", "x").inc()
    server = MetricsServer(registry, "127.0.0.1", 0)
    server.start()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=10) as response:
            assert "x_total 1" in response.read().decode()
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(f"http://127.0.0.1:{server.port}/", timeout=10)
        assert caught.value.code == 404
    finally:
        server.stop()


@pytest.mark.parametrize(("address", "allowed", "expected"), [
    ("127.0.0.1:9100", False, ("127.0.0.1", 9100)),
    ("localhost:9100", False, ("localhost", 9100)),
    ("[::1]:9100", False, ("::1", 9100)),
    ("0.0.0.0:9100", True, ("0.0.0.0", 9100)),
])
def test_metrics_addresses(address: str, allowed: bool, expected: tuple[str, int]) -> None:
    assert parse_address(address, allow_non_loopback=allowed) == expected


@pytest.mark.parametrize("address", ["0.0.0.0:9100", "192.0.2.1:1", "127.0.0.1", ":9100", "127.0.0.1:99999"])
def test_metrics_addresses_refused(address: str) -> None:
    from socikit.errors import ConfigError

    with pytest.raises(ConfigError):
        parse_address(address, allow_non_loopback=False)


def test_daemon_answers_with_containerds_status_codes(snapshotter_daemon: SnapshotterDaemon) -> None:
    stub, channel = _stub(snapshotter_daemon)
    s = "socikit"

    def code(call) -> grpc.StatusCode:  # type: ignore[no-untyped-def]
        with pytest.raises(grpc.RpcError) as caught:
            call()
        return caught.value.code()

    try:
        stub.Prepare(pb.PrepareSnapshotRequest(snapshotter=s, key="extract"))
        stub.Commit(pb.CommitSnapshotRequest(snapshotter=s, name="layer", key="extract"))
        stub.Prepare(pb.PrepareSnapshotRequest(snapshotter=s, key="rootfs", parent="layer"))
        assert code(lambda: stub.Prepare(pb.PrepareSnapshotRequest(snapshotter=s, key="rootfs", parent="layer"))) \
            == grpc.StatusCode.ALREADY_EXISTS
        assert code(lambda: stub.Remove(pb.RemoveSnapshotRequest(snapshotter=s, key="layer"))) == \
            grpc.StatusCode.FAILED_PRECONDITION
        assert code(lambda: stub.Stat(pb.StatSnapshotRequest(snapshotter=s, key="missing"))) == \
            grpc.StatusCode.NOT_FOUND
        assert code(lambda: stub.Commit(pb.CommitSnapshotRequest(snapshotter=s, name="n", key="layer"))) == \
            grpc.StatusCode.FAILED_PRECONDITION
        assert code(lambda: stub.Prepare(pb.PrepareSnapshotRequest(snapshotter=s, key="x", parent="rootfs"))) == \
            grpc.StatusCode.INVALID_ARGUMENT
        stub.Remove(pb.RemoveSnapshotRequest(snapshotter=s, key="rootfs"))
        stub.Remove(pb.RemoveSnapshotRequest(snapshotter=s, key="layer"))
    finally:
        channel.close()
    refused = [e for e in snapshotter_daemon.log_entries() if e.get("msg") == "request refused"]
    assert [e["code"] for e in refused] == ["ALREADY_EXISTS", "FAILED_PRECONDITION", "NOT_FOUND",
                                            "FAILED_PRECONDITION", "INVALID_ARGUMENT"]


def test_start_up_failures_are_one_line(tmp_path: Path) -> None:
    long_socket = tmp_path / ("x" * 120) / "s.sock"
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "metadata.db").write_text("not a database")
    cases = [
        (("--address", str(long_socket), "--root", str(tmp_path / "r1")), "is longer than 107 bytes"),
        (("--address", str(tmp_path / "s2.sock"), "--root", str(not_a_dir)), "is not a directory"),
        (("--address", str(tmp_path / "s3.sock"), "--root", str(corrupt)), "metadata.db: file is not a database"),
    ]
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        # the metrics port is taken: gRPC was already serving and is stopped again
        cases.append((("--address", str(tmp_path / "s4.sock"), "--root", str(tmp_path / "r4"), "--metrics-address",
                       f"127.0.0.1:{port}"), "Address already in use"))
        for args, message in cases:
            result = _run(*args)
            assert result.returncode == 1, result.stderr
            assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
    assert not (tmp_path / "r1").exists() and not long_socket.parent.exists()
    for name in ("s2.sock", "s3.sock", "s4.sock"):
        assert not (tmp_path / name).exists()


def test_remote_snapshot_that_cannot_be_mounted_again_stops_the_start(tmp_path: Path) -> None:
    """Served by the local-layer double, then the daemon restarts without any layer filesystem."""
    import json

    from tests.snapshotter.local_layers import LAYERS_ENV, SPEC

    served = tmp_path / "layer"
    served.mkdir()
    table = tmp_path / "layers.json"
    table.write_text(json.dumps({"sha256:c1": str(served)}))
    daemon = SnapshotterDaemon(base=tmp_path / "d", env={TEST_LAYER_FS_ENV: SPEC, LAYERS_ENV: str(table)})
    daemon.start()
    try:
        stub, channel = _stub(daemon)
        with pytest.raises(grpc.RpcError) as caught:
            stub.Prepare(pb.PrepareSnapshotRequest(snapshotter="socikit", key="extract sha256:c1",
                                                   labels={"containerd.io/snapshot.ref": "sha256:c1"}))
        assert caught.value.code() == grpc.StatusCode.ALREADY_EXISTS
        channel.close()
    finally:
        assert daemon.stop() == 0
    assert any(e.get("msg") == "TEST-ONLY layer filesystem in use" for e in daemon.log_entries())
    result = _run("--address", str(daemon.address), "--root", str(daemon.root))
    assert result.returncode == 1
    assert result.stderr.strip() == ("error: cannot mount remote snapshot 'sha256:c1' again: the layer filesystem "
                                     "declined it (allow_invalid_mounts_on_restart in [snapshotter] starts "
                                     "anyway; then remove the snapshot)")
    assert not daemon.address.exists()
    # allowed by the config: it starts
    daemon.env = {}
    daemon.config.write_text("[snapshotter]\nallow_invalid_mounts_on_restart = true\n")
    daemon.start()
    try:
        assert any(e.get("msg") == "remote snapshot cannot be mounted; remove it" for e in daemon.log_entries())
    finally:
        assert daemon.stop() == 0

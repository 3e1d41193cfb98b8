"""The snapshotter's side of the remote-snapshot protocol, with the local-directory test double."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from socikit.errors import ConfigError, SnapshotError, SnapshotExistsError, SnapshotStateError
from socikit.snapshotter import labels as L
from socikit.snapshotter.config import SnapshotterConfig, SnapshotterSection
from socikit.snapshotter.fs import LayerFileSystem, NoLazyLayers, load_test_layer_filesystem
from socikit.snapshotter.metrics import MetricsRegistry, SnapshotterMetrics
from socikit.snapshotter.snapshots import Snapshotter
from socikit.snapshotter.store import Kind, SnapshotStore
from tests.snapshotter.local_layers import SPEC, LocalDirectoryLayers, read_calls

REF = L.SNAPSHOT_REF


class Setup:
    def __init__(self, tmp: Path, config: SnapshotterConfig) -> None:
        self.table = tmp / "layers.json"
        self.layers = LocalDirectoryLayers(self.table)
        self.dirs: dict[str, str] = {}
        self.tmp = tmp
        self.config = config
        self.metrics = SnapshotterMetrics(MetricsRegistry())
        self.store = SnapshotStore(tmp / "root")
        self.snapshotter = Snapshotter(self.store, self.layers, config=config, metrics=self.metrics)

    def serve(self, name: str) -> Path:
        directory = self.tmp / "served" / name.replace(":", "_")
        directory.mkdir(parents=True, exist_ok=True)
        self.dirs[name] = str(directory)
        self.table.write_text(json.dumps(self.dirs))
        return directory

    def reopen(self, layers: LayerFileSystem | None = None, config: SnapshotterConfig | None = None) -> None:
        self.store.close()
        self.store = SnapshotStore(self.tmp / "root")
        self.snapshotter = Snapshotter(self.store, layers or self.layers, config=config or self.config,
                                       metrics=self.metrics)


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    s = Setup(tmp_path, SnapshotterConfig())
    yield s
    s.store.close()


def test_served_layer_is_committed_under_its_chain_id_and_answers_already_exists(setup: Setup) -> None:
    served = setup.serve("sha256:c1")
    with pytest.raises(SnapshotExistsError) as caught:
        setup.snapshotter.prepare("ns/1/extract-1 sha256:c1", "", {REF: "sha256:c1", "containerd.io/snapshot/x": "y"})
    assert str(caught.value) == 'target snapshot "sha256:c1": already exists'
    snapshot = setup.store.get("sha256:c1")
    assert snapshot.kind == Kind.COMMITTED and snapshot.remote and setup.store.layer_dir(snapshot) == served
    assert dict(snapshot.labels) == {REF: "sha256:c1", "containerd.io/snapshot/x": "y", L.REMOTE: L.REMOTE_VALUE,
                                     L.HAS_SOCI_INDEX_DIGEST: "true"}
    assert setup.store.find("ns/1/extract-1 sha256:c1") is None  # the temporary active snapshot is gone
    # what containerd's metadata store asks next: the committed snapshot with that ref and parent
    found = setup.snapshotter.walk([f'labels."{REF}"==sha256:c1,parent==""'])
    assert [s.key for s in found] == ["sha256:c1"]
    assert setup.metrics.lazy_mounts.value(result="served") == 1

    # the next layer stacks on it; a container's rootfs sees the served directory as a lower layer
    served2 = setup.serve("sha256:c2")
    with pytest.raises(SnapshotExistsError):
        setup.snapshotter.prepare("ns/2/extract-2 sha256:c2", "sha256:c1", {REF: "sha256:c2"})
    (mount,) = setup.snapshotter.prepare("ns/3/rootfs", "sha256:c2", {})
    assert mount.type == "overlay" and f"lowerdir={served2}:{served}" in mount.options
    # a second unpack of the same layer (another namespace) gets the same answer without a new mount
    with pytest.raises(SnapshotExistsError):
        setup.snapshotter.prepare("other/9/extract-9 sha256:c1", "", {REF: "sha256:c1"})
    assert [c["name"] for c in read_calls(setup.table)] == ["sha256:c1", "sha256:c2"]


def test_declined_layer_gets_ordinary_mounts(setup: Setup) -> None:
    (mount,) = setup.snapshotter.prepare("ns/1/extract sha256:c1", "", {REF: "sha256:c1"})
    active = setup.store.get("ns/1/extract sha256:c1")
    assert active.kind == Kind.ACTIVE and not active.remote
    assert (mount.type, mount.source, mount.options) == ("bind", str(setup.store.fs_dir(active)), ("rw", "rbind"))
    assert setup.metrics.lazy_mounts.value(result="declined") == 1
    # containerd applies the layer and commits it under its own name
    setup.snapshotter.commit("ns/2/sha256:c1", "ns/1/extract sha256:c1", {})
    assert setup.store.get("ns/2/sha256:c1").kind == Kind.COMMITTED


def test_failing_layer_filesystem_falls_back_to_ordinary_mounts(setup: Setup) -> None:
    class Broken(LocalDirectoryLayers):
        def mount(self, name: str, labels: Mapping[str, str]) -> Path | None:
            raise OSError("registry unreachable")

    setup.reopen(Broken(setup.table))
    (mount,) = setup.snapshotter.prepare("k sha256:c1", "", {REF: "sha256:c1"})
    assert mount.type == "bind" and setup.store.get("k sha256:c1").kind == Kind.ACTIVE
    assert setup.metrics.lazy_mounts.value(result="failed") == 1


def test_layers_below_min_layer_size_are_not_offered(tmp_path: Path) -> None:
    setup = Setup(tmp_path, SnapshotterConfig(snapshotter=SnapshotterSection(min_layer_size=1000)))
    setup.serve("sha256:small")
    setup.serve("sha256:big")
    setup.snapshotter.prepare("k1", "", {REF: "sha256:small", L.SOCI_SIZE: "999"})
    with pytest.raises(SnapshotExistsError):
        setup.snapshotter.prepare("k2", "", {REF: "sha256:big", L.SOCI_SIZE: "1000"})
    assert [c["name"] for c in read_calls(setup.table)] == ["sha256:big"]
    setup.store.close()


def test_unpack_without_the_ref_label_never_asks_the_layer_filesystem(setup: Setup) -> None:
    setup.serve("sha256:c1")
    setup.snapshotter.prepare("plain", "", {"containerd.io/snapshot/x": "1"})
    setup.snapshotter.view("v", "", {REF: "sha256:c1"})
    assert read_calls(setup.table) == []


def test_restart_mounts_remote_snapshots_again(setup: Setup) -> None:
    setup.serve("sha256:c1")
    with pytest.raises(SnapshotExistsError):
        setup.snapshotter.prepare("k", "", {REF: "sha256:c1"})
    # the layer is now served elsewhere (a new FUSE mount point after the restart)
    moved = setup.tmp / "moved"
    moved.mkdir()
    setup.dirs["sha256:c1"] = str(moved)
    setup.table.write_text(json.dumps(setup.dirs))
    setup.reopen()
    assert setup.snapshotter.restore_remote_snapshots() == 1
    assert [c["op"] for c in read_calls(setup.table)] == ["mount", "mount"]
    assert setup.store.layer_dir(setup.store.get("sha256:c1")) == moved
    (mount,) = setup.snapshotter.view("v", "sha256:c1", {})
    assert mount.source == str(moved)


def test_restart_fails_when_a_remote_layer_cannot_be_served(setup: Setup, tmp_path: Path) -> None:
    setup.serve("sha256:c1")
    with pytest.raises(SnapshotExistsError):
        setup.snapshotter.prepare("k", "", {REF: "sha256:c1"})
    setup.reopen(NoLazyLayers())
    with pytest.raises(SnapshotError, match="cannot mount remote snapshot 'sha256:c1' again"):
        setup.snapshotter.restore_remote_snapshots()
    # allowed by config: the daemon starts, mounts needing the layer fail, the snapshot can be removed
    setup.reopen(NoLazyLayers(), SnapshotterConfig(snapshotter=SnapshotterSection(
        allow_invalid_mounts_on_restart=True)))
    assert setup.snapshotter.restore_remote_snapshots() == 0
    with pytest.raises(SnapshotStateError, match="could not be mounted"):
        setup.snapshotter.prepare("rootfs", "sha256:c1", {})
    assert setup.store.find("rootfs") is None  # not left behind when its mounts cannot be given
    setup.snapshotter.remove("sha256:c1")
    assert setup.store.all() == []


def test_unavailable_layer_makes_mounts_fail(setup: Setup) -> None:
    served = setup.serve("sha256:c1")
    with pytest.raises(SnapshotExistsError):
        setup.snapshotter.prepare("k", "", {REF: "sha256:c1"})
    setup.snapshotter.prepare("rootfs", "sha256:c1", {})
    served.rmdir()  # the double's check() looks at the directory
    with pytest.raises(SnapshotStateError, match="not available"):
        setup.snapshotter.mounts("rootfs")
    # and an unpack of the same layer no longer gets "already exists": it is offered again,
    # declined (the double serves nothing there now) and containerd applies it
    (mount,) = setup.snapshotter.prepare("k2", "", {REF: "sha256:c1"})
    assert mount.type == "bind"


def test_remove_releases_the_layer(setup: Setup) -> None:
    setup.serve("sha256:c1")
    with pytest.raises(SnapshotExistsError):
        setup.snapshotter.prepare("k", "", {REF: "sha256:c1"})
    setup.snapshotter.remove("sha256:c1")
    assert read_calls(setup.table)[-1] == {"op": "unmount", "name": "sha256:c1"}
    assert setup.store.all() == []


def test_the_test_double_is_loaded_only_from_the_tests_package(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOCIKIT_TEST_LOCAL_LAYERS", str(tmp_path / "t.json"))
    assert isinstance(load_test_layer_filesystem(SPEC, config=SnapshotterConfig(), root=tmp_path),
                      LocalDirectoryLayers)
    for spec in ("socikit.snapshotter.fs:NoLazyLayers", "os:getcwd", "tests.snapshotter.local_layers",
                 "tests.snapshotter.local_layers:nothing"):
        with pytest.raises(ConfigError):
            load_test_layer_filesystem(spec, config=SnapshotterConfig(), root=tmp_path)

    def not_a_filesystem(**_: Any) -> object:
        return object()

    monkeypatch.setattr("tests.snapshotter.local_layers.make", not_a_filesystem)
    with pytest.raises(ConfigError, match="did not make a LayerFileSystem"):
        load_test_layer_filesystem(SPEC, config=SnapshotterConfig(), root=tmp_path)


def test_no_lazy_layers_declines_everything() -> None:
    layers = NoLazyLayers()
    assert isinstance(layers, LayerFileSystem)
    assert layers.mount("sha256:x", {REF: "sha256:x"}) is None
    assert layers.check("sha256:x", {}) is False

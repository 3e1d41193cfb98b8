"""SnapshotStore: containerd's snapshot semantics, persistence, directories, crash leftovers."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from socikit.errors import SnapshotArgumentError, SnapshotExistsError, SnapshotNotFoundError, SnapshotStateError
from socikit.snapshotter.diskusage import disk_usage
from socikit.snapshotter.store import Kind, SnapshotStore


@pytest.fixture
def store(tmp_path: Path) -> SnapshotStore:
    s = SnapshotStore(tmp_path / "root")
    yield s
    s.close()


def test_lifecycle_and_directories(store: SnapshotStore) -> None:
    active = store.create("a", "", Kind.ACTIVE, {"k": "v"})
    assert (active.kind, active.parent, dict(active.labels)) == (Kind.ACTIVE, "", {"k": "v"})
    assert store.fs_dir(active).is_dir() and store.work_dir(active).is_dir()
    (store.fs_dir(active) / "file").write_text("data")
    committed = store.commit("a", "layer1", {"c": "1"})
    assert (committed.key, committed.kind, committed.id, dict(committed.labels)) == (
        "layer1", Kind.COMMITTED, active.id, {"c": "1"})  # commit labels replace the active's
    assert store.find("a") is None
    child = store.create("b", "layer1", Kind.ACTIVE, {})
    view = store.create("v", "layer1", Kind.VIEW, {})
    assert [p.key for p in store.parents(child)] == ["layer1"]
    assert store.layer_dir(committed) == store.fs_dir(committed)
    with pytest.raises(SnapshotStateError, match="child"):
        store.remove("layer1")
    store.remove("b")
    store.remove("v")
    assert not store.directory(child).exists() and not store.directory(view).exists()
    store.remove("layer1")
    assert store.all() == [] and list(store.snapshots_dir.iterdir()) == []


@pytest.mark.parametrize(("call", "error", "message"), [
    (lambda s: s.create("a", "", Kind.ACTIVE, {}), SnapshotExistsError, "already exists"),
    (lambda s: s.create("x", "nope", Kind.ACTIVE, {}), SnapshotNotFoundError, "nope"),
    (lambda s: s.create("x", "a", Kind.ACTIVE, {}), SnapshotArgumentError, "not a committed snapshot"),
    (lambda s: s.create("", "", Kind.ACTIVE, {}), SnapshotArgumentError, "empty"),
    (lambda s: s.create("x", "", Kind.ACTIVE, {"k": "v" * 4096}), SnapshotArgumentError, "4096"),
    (lambda s: s.commit("c1", "c2", {}), SnapshotStateError, "not active"),
    (lambda s: s.commit("a", "c1", {}), SnapshotExistsError, "already exists"),
    (lambda s: s.commit("nope", "n", {}), SnapshotNotFoundError, "nope"),
    (lambda s: s.remove("nope"), SnapshotNotFoundError, "nope"),
    (lambda s: s.get("nope"), SnapshotNotFoundError, "nope"),
    (lambda s: s.update_labels("a", {}, ["parent"]), SnapshotArgumentError, "cannot update field"),
])
def test_errors(store: SnapshotStore, call, error: type[Exception], message: str) -> None:  # type: ignore[no-untyped-def]
    store.create("c0", "", Kind.ACTIVE, {})
    store.commit("c0", "c1", {})
    store.create("a", "", Kind.ACTIVE, {})
    before = store.all()
    with pytest.raises(error, match=message):
        call(store)
    assert store.all() == before
    assert sorted(p.name for p in store.snapshots_dir.iterdir()) == sorted(str(s.id) for s in before)


def test_update_follows_field_mask_semantics(store: SnapshotStore) -> None:
    store.create("a", "", Kind.ACTIVE, {"keep": "1", "drop": "2", "change": "3"})
    created = store.get("a")
    one = store.update_labels("a", {"change": "new", "drop": "", "add": "4", "ignored": "x"},
                              ["labels.change", "labels.drop", "labels.add"])
    assert dict(one.labels) == {"keep": "1", "change": "new", "add": "4"}
    assert one.updated_ns >= created.updated_ns and one.created_ns == created.created_ns
    assert dict(store.update_labels("a", {"only": "1"}, ["labels"]).labels) == {"only": "1"}
    assert dict(store.update_labels("a", {"all": "2", "empty": ""}, []).labels) == {"all": "2"}
    assert dict(store.update_labels("a", {}, ["labels.missing"]).labels) == {"all": "2"}


def test_records_persist_across_reopen(tmp_path: Path) -> None:
    first = SnapshotStore(tmp_path / "root")
    first.create("a", "", Kind.ACTIVE, {"k": "v"})
    first.commit("a", "layer", {"l": "1"})
    first.create("b", "layer", Kind.ACTIVE, {})
    remote_dir = tmp_path / "served"
    remote_dir.mkdir()
    first.create("r", "layer", Kind.ACTIVE, {})
    first.commit("r", "remote", {"x": "y"}, lower_dir=remote_dir)
    expected = first.all()
    first.close()
    second = SnapshotStore(tmp_path / "root")
    assert second.all() == expected
    remote = second.get("remote")
    assert remote.remote and second.layer_dir(remote) == remote_dir
    assert second.get("b").parent == "layer"
    second.close()


def test_cleanup_removes_only_unowned_directories(store: SnapshotStore) -> None:
    kept = store.create("a", "", Kind.ACTIVE, {})
    # what a crash leaves: a half-made directory, one renamed aside for removal, an orphan id
    for name in ("new-xyz", "rm-7-abc", "999"):
        (store.snapshots_dir / name / "fs").mkdir(parents=True)
        (store.snapshots_dir / name / "fs" / "f").write_text("x")
    assert store.cleanup() == ["999", "new-xyz", "rm-7-abc"]
    assert [p.name for p in store.snapshots_dir.iterdir()] == [str(kept.id)]
    assert store.cleanup() == []


def test_create_replaces_a_directory_left_by_a_crash_before_commit(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path / "root")
    # the row id a crashed transaction had used: sqlite reuses it, the directory is still there
    (store.snapshots_dir / "1" / "fs").mkdir(parents=True)
    (store.snapshots_dir / "1" / "fs" / "stale").write_text("old")
    snapshot = store.create("a", "", Kind.ACTIVE, {})
    assert snapshot.id == 1 and list(store.fs_dir(snapshot).iterdir()) == []
    store.close()


def test_new_upper_directory_belongs_to_the_owner_of_the_layer_below(store: SnapshotStore) -> None:
    store.create("a", "", Kind.ACTIVE, {})
    base = store.commit("a", "base", {})
    os.chown(store.fs_dir(base), 1234, 5678)
    child = store.create("b", "base", Kind.ACTIVE, {})
    st = store.fs_dir(child).stat()
    assert (st.st_uid, st.st_gid) == (1234, 5678)


def test_schema_version_from_the_future_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "root"
    SnapshotStore(root).close()
    with sqlite3.connect(root / "metadata.db") as db:
        db.execute("PRAGMA user_version=99")
    with pytest.raises(Exception, match="schema version 99"):
        SnapshotStore(root)


def test_disk_usage_counts_blocks_and_inodes_once(tmp_path: Path) -> None:
    top = tmp_path / "t"
    (top / "d").mkdir(parents=True)
    (top / "d" / "f").write_bytes(b"x" * 10000)
    os.link(top / "d" / "f", top / "d" / "hard")
    os.symlink("f", top / "d" / "sym")
    size, inodes = disk_usage(top)
    assert inodes == 4  # t, d, f (twice linked), sym
    expected = sum(os.lstat(p).st_blocks * 512 for p in (top, top / "d", top / "d" / "f", top / "d" / "sym"))
    assert size == expected and size >= 10000
    assert disk_usage(tmp_path / "missing") == (0, 0)

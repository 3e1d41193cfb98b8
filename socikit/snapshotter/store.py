"""SnapshotStore: the snapshot records (sqlite under the root) and their directories.

Layout under the root: `metadata.db` and `snapshots/<id>/{fs,work}`. Each change is one sqlite
transaction (WAL, synchronous=FULL), and directories are made or removed so that a crash at any
point leaves at most an unowned directory, which `cleanup` deletes: a new snapshot's directories
are built under a temporary name and renamed to `<id>` before the row is committed; a removed
snapshot's directory is renamed aside, the row deleted, then the directory deleted.

A snapshot served by a LayerFileSystem (a "remote" snapshot) is committed with `lower_dir` set:
that directory, not its own `fs`, is what its children see as the layer.
"""

from __future__ import annotations

import contextlib
import enum
import json
import os
import shutil
import sqlite3
import tempfile
import threading
import time
import types
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from socikit.errors import (
    SnapshotArgumentError,
    SnapshotError,
    SnapshotExistsError,
    SnapshotNotFoundError,
    SnapshotStateError,
)
from socikit.snapshotter.labels import validate_labels


class Kind(enum.IntEnum):
    """Snapshot kinds, numbered as containerd's Kind enum."""

    VIEW = 1
    ACTIVE = 2
    COMMITTED = 3

    @property
    def word(self) -> str:
        """The name containerd's filters use (`kind==committed`)."""
        return self.name.lower()


@dataclass(frozen=True)
class Snapshot:
    id: int
    key: str
    parent: str  # the parent's key, "" for none
    kind: Kind
    labels: Mapping[str, str]
    created_ns: int
    updated_ns: int
    lower_dir: Path | None = None  # set for remote snapshots

    @property
    def remote(self) -> bool:
        return self.lower_dir is not None


_SCHEMA = """
CREATE TABLE IF NOT EXISTS snapshots (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    parent_id INTEGER REFERENCES snapshots(id) ON DELETE RESTRICT,
    kind INTEGER NOT NULL,
    labels TEXT NOT NULL,
    created_ns INTEGER NOT NULL,
    updated_ns INTEGER NOT NULL,
    lower_dir TEXT
);
CREATE INDEX IF NOT EXISTS snapshots_parent ON snapshots(parent_id);
"""
_SCHEMA_VERSION = 1
_SELECT = ("SELECT s.id, s.key, COALESCE(p.key, ''), s.kind, s.labels, s.created_ns, s.updated_ns, s.lower_dir "
           "FROM snapshots s LEFT JOIN snapshots p ON p.id = s.parent_id")


def _row(row: tuple[int, str, str, int, str, int, int, str | None]) -> Snapshot:
    ident, key, parent, kind, labels, created, updated, lower = row
    return Snapshot(ident, key, parent, Kind(kind), types.MappingProxyType(json.loads(labels)), created, updated,
                    Path(lower) if lower is not None else None)


def _labels_json(labels: Mapping[str, str]) -> str:
    return json.dumps(dict(sorted(labels.items())), ensure_ascii=False, separators=(",", ":"))


class SnapshotStore:
    """Thread-safe: every method takes the store's lock (gRPC calls arrive on a thread pool)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.snapshots_dir = root / "snapshots"
        try:
            self.snapshots_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SnapshotError(f"{self.snapshots_dir}: {exc.strerror or exc}") from None
        self._lock = threading.Lock()
        path = root / "metadata.db"
        try:
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        except sqlite3.Error as exc:
            raise SnapshotError(f"{path}: {exc}") from None
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=ON")
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, _SCHEMA_VERSION):
                raise SnapshotError(f"{path}: schema version {version} is newer than this socikit")
            self._db.executescript(_SCHEMA)
            self._db.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")
        except sqlite3.Error as exc:
            self._db.close()
            raise SnapshotError(f"{path}: {exc}") from None
        except SnapshotError:
            self._db.close()
            raise

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # -- directories ---------------------------------------------------------------------------

    def directory(self, snapshot: Snapshot) -> Path:
        return self.snapshots_dir / str(snapshot.id)

    def fs_dir(self, snapshot: Snapshot) -> Path:
        return self.directory(snapshot) / "fs"

    def work_dir(self, snapshot: Snapshot) -> Path:
        return self.directory(snapshot) / "work"

    def layer_dir(self, snapshot: Snapshot) -> Path:
        """What a child sees as this snapshot's layer: the served directory of a remote snapshot."""
        return snapshot.lower_dir if snapshot.lower_dir is not None else self.fs_dir(snapshot)

    # -- reads ----------------------------------------------------------------------------------

    def _get(self, db: sqlite3.Connection, key: str) -> Snapshot:
        row = db.execute(_SELECT + " WHERE s.key = ?", (key,)).fetchone()
        if row is None:
            raise SnapshotNotFoundError(f"snapshot {key!r} does not exist")
        return _row(row)

    def get(self, key: str) -> Snapshot:
        with self._lock:
            return self._get(self._db, key)

    def find(self, key: str) -> Snapshot | None:
        try:
            return self.get(key)
        except SnapshotNotFoundError:
            return None

    def parents(self, snapshot: Snapshot) -> list[Snapshot]:
        """The snapshot's ancestors, direct parent first."""
        with self._lock:
            chain: list[Snapshot] = []
            current = snapshot
            while current.parent:
                current = self._get(self._db, current.parent)
                chain.append(current)
            return chain

    def all(self) -> list[Snapshot]:
        with self._lock:
            return [_row(r) for r in self._db.execute(_SELECT + " ORDER BY s.id")]

    def count_by_kind(self) -> dict[Kind, int]:
        with self._lock:
            rows = self._db.execute("SELECT kind, COUNT(*) FROM snapshots GROUP BY kind").fetchall()
        counts = dict.fromkeys(Kind, 0)
        counts.update({Kind(kind): n for kind, n in rows})
        return counts

    # -- changes --------------------------------------------------------------------------------

    def create(self, key: str, parent: str, kind: Kind, labels: Mapping[str, str]) -> Snapshot:
        """A new active snapshot or view on the committed snapshot `parent` ("" for none)."""
        if not key:
            raise SnapshotArgumentError("snapshot key must not be empty")
        validate_labels(labels)
        now = time.time_ns()
        with self._transaction() as db:
            if db.execute("SELECT 1 FROM snapshots WHERE key = ?", (key,)).fetchone():
                raise SnapshotExistsError(f"snapshot {key!r} already exists")
            parent_snapshot = None
            if parent:
                parent_snapshot = self._get(db, parent)
                if parent_snapshot.kind != Kind.COMMITTED:
                    raise SnapshotArgumentError(f"parent {parent!r} is not a committed snapshot")
            cursor = db.execute(
                "INSERT INTO snapshots (key, parent_id, kind, labels, created_ns, updated_ns) VALUES (?,?,?,?,?,?)",
                (key, parent_snapshot.id if parent_snapshot else None, int(kind), _labels_json(labels), now, now))
            snapshot = self._get(db, key)
            assert cursor.lastrowid == snapshot.id
            owner = self.layer_dir(parent_snapshot) if parent_snapshot else None
            self._make_dirs(snapshot, owner)
        return snapshot

    def _make_dirs(self, snapshot: Snapshot, owner_of: Path | None) -> None:
        """`<id>/fs` and `<id>/work`, built aside and renamed into place (inside the transaction:
        if the commit fails the directory is unowned and `cleanup` deletes it)."""
        staging = Path(tempfile.mkdtemp(prefix="new-", dir=self.snapshots_dir))
        try:
            (staging / "fs").mkdir(mode=0o755)
            (staging / "work").mkdir(mode=0o711)
            if owner_of is not None:
                # the new upper directory belongs to whoever owns the layer below (as containerd's
                # overlay snapshotter does, for remapped user namespaces)
                st = owner_of.stat()
                os.lchown(staging / "fs", st.st_uid, st.st_gid)
            target = self.directory(snapshot)
            if target.exists():  # left by a crash before an earlier commit with this id
                shutil.rmtree(target)
            os.rename(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise

    def commit(self, key: str, name: str, labels: Mapping[str, str], *,
               lower_dir: Path | None = None) -> Snapshot:
        """The active snapshot `key` becomes the committed snapshot `name` with `labels`.
        With `lower_dir` it is a remote snapshot whose layer is that directory."""
        if not name:
            raise SnapshotArgumentError("committed snapshot name must not be empty")
        validate_labels(labels)
        now = time.time_ns()
        with self._transaction() as db:
            snapshot = self._get(db, key)
            if snapshot.kind != Kind.ACTIVE:
                raise SnapshotStateError(f"snapshot {key!r} is not active")
            if db.execute("SELECT 1 FROM snapshots WHERE key = ?", (name,)).fetchone():
                raise SnapshotExistsError(f"snapshot {name!r} already exists")
            db.execute("UPDATE snapshots SET key = ?, kind = ?, labels = ?, created_ns = ?, updated_ns = ?, "
                       "lower_dir = ? WHERE id = ?",
                       (name, int(Kind.COMMITTED), _labels_json(labels), now, now,
                        str(lower_dir) if lower_dir is not None else None, snapshot.id))
            return self._get(db, name)

    def set_lower_dir(self, name: str, lower_dir: Path) -> Snapshot:
        """Record where a remote snapshot's layer is served now (after a re-mount)."""
        with self._transaction() as db:
            snapshot = self._get(db, name)
            if snapshot.lower_dir is None:
                raise SnapshotStateError(f"snapshot {name!r} is not a remote snapshot")
            db.execute("UPDATE snapshots SET lower_dir = ? WHERE id = ?", (str(lower_dir), snapshot.id))
            return self._get(db, name)

    def update_labels(self, key: str, labels: Mapping[str, str], paths: Sequence[str]) -> Snapshot:
        """containerd's field-mask update: no paths or `labels` replace every label;
        `labels.<k>` sets or (empty/absent value) deletes one. Labels with empty values are dropped."""
        current_paths = list(paths)
        for path in current_paths:
            if path != "labels" and not path.startswith("labels."):
                raise SnapshotArgumentError(f"cannot update field {path!r} of snapshot {key!r}")
        with self._transaction() as db:
            snapshot = self._get(db, key)
            if not current_paths or "labels" in current_paths:
                updated = dict(labels)
            else:
                updated = dict(snapshot.labels)
                for path in current_paths:
                    name = path.removeprefix("labels.")
                    updated[name] = labels.get(name, "")
            updated = {k: v for k, v in updated.items() if v}
            validate_labels(updated)
            db.execute("UPDATE snapshots SET labels = ?, updated_ns = ? WHERE id = ?",
                       (_labels_json(updated), time.time_ns(), snapshot.id))
            return self._get(db, key)

    def remove(self, key: str) -> Snapshot:
        """Delete the record and the snapshot's own directory (a remote snapshot's served
        directory is the layer filesystem's to release)."""
        with self._transaction() as db:
            snapshot = self._get(db, key)
            child = db.execute("SELECT key FROM snapshots WHERE parent_id = ? LIMIT 1", (snapshot.id,)).fetchone()
            if child is not None:
                raise SnapshotStateError(f"cannot remove snapshot {key!r}: snapshot {child[0]!r} is its child")
            db.execute("DELETE FROM snapshots WHERE id = ?", (snapshot.id,))
            aside = self._rename_aside(self.directory(snapshot))
        if aside is not None:
            shutil.rmtree(aside, ignore_errors=True)
        return snapshot

    def _rename_aside(self, directory: Path) -> Path | None:
        if not directory.exists():
            return None
        aside = Path(tempfile.mkdtemp(prefix=f"rm-{directory.name}-", dir=self.snapshots_dir))
        os.rename(directory, aside / "d")
        return aside

    def cleanup(self) -> list[str]:
        """Delete directories under `snapshots/` that no snapshot owns; returns their names."""
        with self._lock:
            owned = {str(r[0]) for r in self._db.execute("SELECT id FROM snapshots")}
            unowned = [p for p in self.snapshots_dir.iterdir() if p.name not in owned]
        for path in unowned:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        return sorted(p.name for p in unowned)

"""The snapshotter: containerd's snapshot operations over the store, with the lazy-layer seam.

Transport-free (the gRPC service in socikit.snapshotter.service translates requests and errors).
Raises socikit.errors.Snapshot*Error, which the service maps to gRPC status codes.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

from socikit.errors import SnapshotError, SnapshotExistsError, SnapshotStateError
from socikit.snapshotter import labels as L
from socikit.snapshotter.config import SnapshotterConfig
from socikit.snapshotter.diskusage import disk_usage
from socikit.snapshotter.filters import FieldLookup, matches_any, parse_filters
from socikit.snapshotter.fs import LayerFileSystem
from socikit.snapshotter.jsonlog import LOGGER_NAME, log
from socikit.snapshotter.metrics import SnapshotterMetrics
from socikit.snapshotter.mounts import Mount, overlay_index_off, snapshot_mounts
from socikit.snapshotter.store import Kind, Snapshot, SnapshotStore

_log = logging.getLogger(LOGGER_NAME)


def already_exists(target: str) -> SnapshotExistsError:
    """The answer containerd's unpacker expects when the snapshotter provided the layer itself."""
    return SnapshotExistsError(f'target snapshot "{target}": already exists')


class Snapshotter:
    def __init__(self, store: SnapshotStore, layers: LayerFileSystem, *, config: SnapshotterConfig,
                 metrics: SnapshotterMetrics | None = None) -> None:
        self.store = store
        self.layers = layers
        self.config = config
        self.metrics = metrics
        self._index_off = overlay_index_off()
        # remote snapshots whose layer could not be mounted again at start (only kept with
        # [snapshotter] allow_invalid_mounts_on_restart): mounts that need them fail.
        self._invalid: set[str] = set()

    # -- start-up -------------------------------------------------------------------------------

    def restore_remote_snapshots(self) -> int:
        """Hand every remote snapshot to the layer filesystem again (after a restart or crash).
        A layer that cannot be served stops the start, unless allow_invalid_mounts_on_restart."""
        restored = 0
        for snapshot in self.store.all():
            if not snapshot.remote:
                continue
            try:
                path = self.layers.mount(snapshot.key, snapshot.labels)
                if path is None:
                    raise SnapshotError("the layer filesystem declined it")
            except Exception as exc:  # noqa: BLE001 - any failure of the plug-in is reported the same way
                reason = str(exc) or type(exc).__name__
                if not self.config.snapshotter.allow_invalid_mounts_on_restart:
                    raise SnapshotError(f"cannot mount remote snapshot {snapshot.key!r} again: {reason} "
                                        "(allow_invalid_mounts_on_restart in [snapshotter] starts anyway; "
                                        "then remove the snapshot)") from None
                self._invalid.add(snapshot.key)
                log(_log, logging.WARNING, "remote snapshot cannot be mounted; remove it", snapshot=snapshot.key,
                    error=reason)
                continue
            if path != snapshot.lower_dir:
                self.store.set_lower_dir(snapshot.key, path)
            restored += 1
        return restored

    # -- mounts ---------------------------------------------------------------------------------

    def _mounts(self, snapshot: Snapshot) -> list[Mount]:
        parents = self.store.parents(snapshot)
        for parent in parents:
            if parent.remote:
                if parent.key in self._invalid:
                    raise SnapshotStateError(f"layer {parent.key!r} could not be mounted at start; remove it")
                if not self.layers.check(parent.key, parent.labels):
                    raise SnapshotStateError(f"layer {parent.key!r} is not available")
        return snapshot_mounts(active=snapshot.kind == Kind.ACTIVE, upper=self.store.fs_dir(snapshot),
                               work=self.store.work_dir(snapshot),
                               lowers=[self.store.layer_dir(p) for p in parents], index_off=self._index_off)

    def mounts(self, key: str) -> list[Mount]:
        return self._mounts(self.store.get(key))

    # -- creating -------------------------------------------------------------------------------

    def prepare(self, key: str, parent: str, labels: Mapping[str, str], *,
                namespace: str | None = None) -> list[Mount]:
        """An active snapshot. For an unpack (label containerd.io/snapshot.ref) the layer
        filesystem is asked first; if it serves the layer, the answer is "already exists"."""
        target = labels.get(L.SNAPSHOT_REF, "")
        if target and self._may_be_lazy(labels):
            existing = self.store.find(target)
            if existing is None:
                return self._prepare_lazy(key, parent, target, labels, namespace)
            if (existing.kind == Kind.COMMITTED and existing.remote and existing.parent == parent
                    and existing.key not in self._invalid and self.layers.check(existing.key, existing.labels)):
                raise already_exists(target)
        return self._create(key, parent, Kind.ACTIVE, labels)

    def _create(self, key: str, parent: str, kind: Kind, labels: Mapping[str, str]) -> list[Mount]:
        return self._mounts_of_new(self.store.create(key, parent, kind, labels))

    def _mounts_of_new(self, snapshot: Snapshot) -> list[Mount]:
        try:
            return self._mounts(snapshot)
        except SnapshotError:
            self.store.remove(snapshot.key)  # containerd records nothing for a failed Prepare or View
            raise

    def _may_be_lazy(self, labels: Mapping[str, str]) -> bool:
        minimum = self.config.snapshotter.min_layer_size
        if minimum <= 0:
            return True
        try:
            return int(labels.get(L.SOCI_SIZE, "")) >= minimum
        except ValueError:
            return True  # no size label: the layer filesystem decides

    def _prepare_lazy(self, key: str, parent: str, target: str, labels: Mapping[str, str],
                      namespace: str | None) -> list[Mount]:
        snapshot = self.store.create(key, parent, Kind.ACTIVE, labels)
        path = self._lazy_mount(target, labels)
        if path is None:
            return self._mounts_of_new(snapshot)
        remote_labels = {**labels, L.REMOTE: L.REMOTE_VALUE, L.HAS_SOCI_INDEX_DIGEST: "true"}
        if namespace:
            remote_labels[L.REMOTE_NAMESPACE] = namespace
        try:
            self.store.commit(key, target, remote_labels, lower_dir=path)
        except SnapshotExistsError:
            # another unpack of the same layer (another namespace) committed it first
            self.store.remove(key)
        log(_log, logging.INFO, "layer served by the layer filesystem", snapshot=target, path=str(path))
        raise already_exists(target)

    def _lazy_mount(self, target: str, labels: Mapping[str, str]) -> Path | None:
        try:
            path = self.layers.mount(target, labels)
        except Exception as exc:  # noqa: BLE001 - a failing layer filesystem must not fail the pull
            log(_log, logging.WARNING, "layer filesystem failed; containerd applies the layer", snapshot=target,
                error=f"{type(exc).__name__}: {exc}")
            self._count_lazy("failed")
            return None
        self._count_lazy("declined" if path is None else "served")
        return path

    def _count_lazy(self, result: str) -> None:
        if self.metrics is not None:
            self.metrics.lazy_mounts.inc(result=result)

    def view(self, key: str, parent: str, labels: Mapping[str, str]) -> list[Mount]:
        return self._create(key, parent, Kind.VIEW, labels)

    def commit(self, name: str, key: str, labels: Mapping[str, str]) -> None:
        self.store.commit(key, name, labels)

    # -- reading and changing -------------------------------------------------------------------

    def stat(self, key: str) -> Snapshot:
        return self.store.get(key)

    def update(self, key: str, labels: Mapping[str, str], paths: Sequence[str]) -> Snapshot:
        return self.store.update_labels(key, labels, paths)

    def walk(self, filters: Sequence[str]) -> list[Snapshot]:
        parsed = parse_filters(filters)
        return [s for s in self.store.all() if matches_any(parsed, _lookup(s))]

    def usage(self, key: str) -> tuple[int, int]:
        """Disk used by the snapshot's own directory (a remote snapshot's layer is not local)."""
        return disk_usage(self.store.fs_dir(self.store.get(key)))

    def remove(self, key: str) -> None:
        snapshot = self.store.remove(key)
        self._invalid.discard(key)
        if snapshot.remote:
            try:
                self.layers.unmount(key)
            except Exception as exc:  # noqa: BLE001 - the snapshot is gone either way
                log(_log, logging.WARNING, "layer filesystem failed to release a layer", snapshot=key,
                    error=f"{type(exc).__name__}: {exc}")

    def cleanup(self) -> list[str]:
        removed = self.store.cleanup()
        if removed:
            log(_log, logging.INFO, "removed unowned snapshot directories", directories=removed)
        return removed

    def count_by_kind(self) -> dict[str, int]:
        return {kind.word: n for kind, n in self.store.count_by_kind().items()}


def _lookup(snapshot: Snapshot) -> FieldLookup:
    def field(path: Sequence[str]) -> tuple[str, bool]:
        if not path:
            return "", False
        head = path[0]
        if head == "name":
            return snapshot.key, True
        if head == "parent":
            return snapshot.parent, True
        if head == "kind":
            return snapshot.kind.word, True
        if head == "labels" and len(path) == 2:
            value = snapshot.labels.get(path[1])
            return (value, True) if value is not None else ("", False)
        return "", False

    return field


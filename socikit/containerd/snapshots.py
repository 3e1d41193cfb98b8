"""containerd's Snapshots service as a client: the calls an unpack makes on one snapshotter.

Calls go to containerd, which keeps its own per-namespace metadata and forwards to the
snapshotter (a built-in one, or a proxy plugin such as socikit's or the reference daemon).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from socikit.containerd._proto import mount_pb2, snapshots_pb2, snapshots_pb2_grpc
from socikit.containerd.client import Containerd
from socikit.errors import ContainerdError

KINDS = {0: "unknown", 1: "view", 2: "active", 3: "committed"}


@dataclass(frozen=True, slots=True)
class Mount:
    """A mount as containerd describes it (`mount(8)` type, source and options)."""

    type: str
    source: str
    target: str = ""
    options: tuple[str, ...] = ()

    @classmethod
    def from_proto(cls, message: Any) -> Mount:
        return cls(type=message.type, source=message.source, target=message.target,
                   options=tuple(message.options))

    def to_proto(self) -> mount_pb2.Mount:
        return mount_pb2.Mount(type=self.type, source=self.source, target=self.target, options=list(self.options))


@dataclass(frozen=True, slots=True)
class SnapshotInfo:
    name: str
    parent: str
    kind: str  # "view" | "active" | "committed" | "unknown"
    labels: dict[str, str] = field(default_factory=dict)


class Snapshots:
    """Snapshot calls on `snapshotter` through `client` (namespace and lease come from it)."""

    def __init__(self, client: Containerd, snapshotter: str) -> None:
        self.client = client
        self.snapshotter = snapshotter
        self._stub: Any = client.stub(snapshots_pb2_grpc.SnapshotsStub)

    def stat(self, key: str) -> SnapshotInfo | None:
        """The snapshot named `key`, or None when there is none."""
        request = snapshots_pb2.StatSnapshotRequest(snapshotter=self.snapshotter, key=key)
        try:
            info = self.client.call(f"stat snapshot {key} ({self.snapshotter})", self._stub.Stat, request).info
        except ContainerdError as exc:
            if exc.code == "NOT_FOUND":
                return None
            raise
        return SnapshotInfo(name=info.name, parent=info.parent, kind=KINDS.get(int(info.kind), "unknown"),
                            labels=dict(info.labels))

    def prepare(self, key: str, parent: str, labels: Mapping[str, str]) -> list[Mount]:
        """An active snapshot on `parent`; its mounts. A remote snapshotter that provides the
        layer itself answers ALREADY_EXISTS (ContainerdError with that code)."""
        request = snapshots_pb2.PrepareSnapshotRequest(snapshotter=self.snapshotter, key=key, parent=parent,
                                                       labels=dict(labels))
        response = self.client.call(f"prepare snapshot ({self.snapshotter})", self._stub.Prepare, request)
        return [Mount.from_proto(m) for m in response.mounts]

    def commit(self, name: str, key: str, labels: Mapping[str, str], *, parent: str = "") -> None:
        request = snapshots_pb2.CommitSnapshotRequest(snapshotter=self.snapshotter, name=name, key=key,
                                                      labels=dict(labels), parent=parent)
        self.client.call(f"commit snapshot {name} ({self.snapshotter})", self._stub.Commit, request)

    def remove(self, key: str) -> None:
        request = snapshots_pb2.RemoveSnapshotRequest(snapshotter=self.snapshotter, key=key)
        self.client.call(f"remove snapshot ({self.snapshotter})", self._stub.Remove, request)

    def mounts(self, key: str) -> list[Mount]:
        request = snapshots_pb2.MountsRequest(snapshotter=self.snapshotter, key=key)
        response = self.client.call(f"mounts of snapshot ({self.snapshotter})", self._stub.Mounts, request)
        return [Mount.from_proto(m) for m in response.mounts]


def mounts_to_proto(mounts: Sequence[Mount]) -> list[mount_pb2.Mount]:
    return [m.to_proto() for m in mounts]


__all__ = ["KINDS", "Mount", "SnapshotInfo", "Snapshots", "mounts_to_proto"]

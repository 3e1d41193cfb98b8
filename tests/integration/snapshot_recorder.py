"""A tiny remote snapshotter for tests: a Snapshots gRPC server that containerd loads as a proxy
plugin. It records every Prepare and behaves like a lazy-loading snapshotter that can serve every
layer: a Prepare carrying `containerd.io/snapshot.ref` commits that name at once (nothing is
extracted, it has no files) and answers ALREADY_EXISTS. It also serves a Credentials-less
socket, so a hand-off to it is answered UNIMPLEMENTED, as the reference daemon would.

Test code only; containerd is real and talks to it over its unix socket.
"""

from __future__ import annotations

import threading
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import empty_pb2

from socikit.containerd._proto import snapshots_pb2, snapshots_pb2_grpc

SNAPSHOT_REF = "containerd.io/snapshot.ref"


@dataclass
class PrepareCall:
    key: str
    parent: str
    labels: dict[str, str]


@dataclass
class _Snapshot:
    name: str
    parent: str
    kind: int
    labels: dict[str, str] = field(default_factory=dict)


class _Servicer(snapshots_pb2_grpc.SnapshotsServicer):
    def __init__(self, recorder: SnapshotRecorder) -> None:
        self.recorder = recorder

    def _info(self, snap: _Snapshot) -> snapshots_pb2.Info:
        return snapshots_pb2.Info(name=snap.name, parent=snap.parent, kind=snap.kind, labels=snap.labels)

    def Prepare(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        rec = self.recorder
        with rec.lock:
            rec.prepares.append(PrepareCall(request.key, request.parent, dict(request.labels)))
            target = request.labels.get(SNAPSHOT_REF)
            if request.key in rec.snapshots:
                context.abort(grpc.StatusCode.ALREADY_EXISTS, f"snapshot {request.key} already exists")
            if target:
                if target not in rec.snapshots:
                    rec.snapshots[target] = _Snapshot(target, request.parent, snapshots_pb2.COMMITTED,
                                                      dict(request.labels))
                context.abort(grpc.StatusCode.ALREADY_EXISTS, f"target snapshot {target!r}: already exists")
            rec.snapshots[request.key] = _Snapshot(request.key, request.parent, snapshots_pb2.ACTIVE,
                                                   dict(request.labels))
        return snapshots_pb2.PrepareSnapshotResponse(mounts=[])

    def View(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "views are not recorded")

    def Mounts(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        return snapshots_pb2.MountsResponse(mounts=[])

    def Commit(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        rec = self.recorder
        with rec.lock:
            active = rec.snapshots.pop(request.key, None)
            if active is None:
                context.abort(grpc.StatusCode.NOT_FOUND, f"snapshot {request.key} does not exist")
            rec.snapshots[request.name] = _Snapshot(request.name, active.parent, snapshots_pb2.COMMITTED,
                                                    dict(request.labels))
        return empty_pb2.Empty()

    def Remove(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        with self.recorder.lock:
            if self.recorder.snapshots.pop(request.key, None) is None:
                context.abort(grpc.StatusCode.NOT_FOUND, f"snapshot {request.key} does not exist")
        return empty_pb2.Empty()

    def Stat(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        with self.recorder.lock:
            snap = self.recorder.snapshots.get(request.key)
            if snap is None:
                context.abort(grpc.StatusCode.NOT_FOUND, f"snapshot {request.key} does not exist")
            return snapshots_pb2.StatSnapshotResponse(info=self._info(snap))

    def Update(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        with self.recorder.lock:
            snap = self.recorder.snapshots.get(request.info.name)
            if snap is None:
                context.abort(grpc.StatusCode.NOT_FOUND, f"snapshot {request.info.name} does not exist")
            snap.labels.update(request.info.labels)
            return snapshots_pb2.UpdateSnapshotResponse(info=self._info(snap))

    def List(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        with self.recorder.lock:
            infos = [self._info(s) for s in self.recorder.snapshots.values()]
        yield snapshots_pb2.ListSnapshotsResponse(info=infos)

    def Usage(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        return snapshots_pb2.UsageResponse(size=0, inodes=0)

    def Cleanup(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        return empty_pb2.Empty()


class SnapshotRecorder:
    """Serves Snapshots on `socket` until `stop()`."""

    def __init__(self, socket: Path) -> None:
        self.socket = socket
        self.lock = threading.Lock()
        self.prepares: list[PrepareCall] = []
        self.snapshots: dict[str, _Snapshot] = {}
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        snapshots_pb2_grpc.add_SnapshotsServicer_to_server(_Servicer(self), self.server)
        self.server.add_insecure_port(f"unix:{socket}")
        self.server.start()

    def committed(self) -> dict[str, str]:
        """name -> parent of every committed snapshot."""
        with self.lock:
            return {s.name: s.parent for s in self.snapshots.values() if s.kind == snapshots_pb2.COMMITTED}

    def stop(self) -> None:
        self.server.stop(grace=None).wait(10)

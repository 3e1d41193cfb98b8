"""containerd's Snapshots gRPC service (containerd.services.snapshots.v1.Snapshots) over grpcio.

Translates requests to Snapshotter calls and answers, and socikit's snapshot errors to the status
codes containerd maps back to its error kinds (NOT_FOUND, ALREADY_EXISTS, FAILED_PRECONDITION,
INVALID_ARGUMENT). The `snapshotter` field of requests (the proxy plugin's name) is not checked,
and no namespace is required: containerd 1.6 sends none to proxy snapshotters; when the
`containerd-namespace` header is present it is recorded on remote snapshots.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import grpc
from google.protobuf import empty_pb2

from socikit.containerd._proto import mount_pb2, snapshots_pb2, snapshots_pb2_grpc
from socikit.errors import (
    SnapshotArgumentError,
    SnapshotError,
    SnapshotExistsError,
    SnapshotNotFoundError,
    SnapshotStateError,
)
from socikit.snapshotter.jsonlog import LOGGER_NAME, log
from socikit.snapshotter.metrics import SnapshotterMetrics
from socikit.snapshotter.mounts import Mount
from socikit.snapshotter.snapshots import Snapshotter
from socikit.snapshotter.store import Snapshot

_log = logging.getLogger(LOGGER_NAME)

NAMESPACE_HEADER = "containerd-namespace"
# containerd's own service sends List answers in batches of this many snapshots.
LIST_BATCH = 100

_STATUS: list[tuple[type[SnapshotError], Any]] = [
    (SnapshotNotFoundError, grpc.StatusCode.NOT_FOUND),
    (SnapshotExistsError, grpc.StatusCode.ALREADY_EXISTS),
    (SnapshotStateError, grpc.StatusCode.FAILED_PRECONDITION),
    (SnapshotArgumentError, grpc.StatusCode.INVALID_ARGUMENT),
]

F = TypeVar("F", bound=Callable[..., Any])


def status_code_of(exc: SnapshotError) -> Any:
    for kind, code in _STATUS:
        if isinstance(exc, kind):
            return code
    return grpc.StatusCode.UNKNOWN


def _mounts(mounts: list[Mount]) -> list[Any]:
    return [mount_pb2.Mount(type=m.type, source=m.source, options=list(m.options)) for m in mounts]


def _info(snapshot: Snapshot) -> Any:
    info = snapshots_pb2.Info(name=snapshot.key, parent=snapshot.parent, kind=snapshot.kind.name,
                              labels=dict(snapshot.labels))
    info.created_at.FromNanoseconds(snapshot.created_ns)
    info.updated_at.FromNanoseconds(snapshot.updated_ns)
    return info


def _namespace(context: Any) -> str | None:
    for key, value in context.invocation_metadata() or ():
        if key == NAMESPACE_HEADER and isinstance(value, str):
            return value
    return None


class SnapshotsService(snapshots_pb2_grpc.SnapshotsServicer):
    def __init__(self, snapshotter: Snapshotter, metrics: SnapshotterMetrics | None = None) -> None:
        self.snapshotter = snapshotter
        self.metrics = metrics

    def _fail(self, method: str, context: Any, exc: BaseException) -> None:
        if isinstance(exc, SnapshotError):
            code = status_code_of(exc)
            log(_log, logging.DEBUG, "request refused", method=method, code=code.name, error=str(exc))
        else:
            code = grpc.StatusCode.INTERNAL
            _log.error("request failed", exc_info=exc, extra={"fields": {"method": method}})
        if self.metrics is not None:
            self.metrics.grpc_errors.inc(method=method, code=code.name)
        context.abort(code, str(exc) if isinstance(exc, SnapshotError) else f"internal error: {exc}")

    def _begin(self, method: str, **fields: Any) -> None:
        if self.metrics is not None:
            self.metrics.grpc_requests.inc(method=method)
        log(_log, logging.DEBUG, "request", method=method, **fields)

    @staticmethod
    def _unary(method: str) -> Callable[[F], F]:
        def wrap(handler: F) -> F:
            @functools.wraps(handler)
            def run(self: SnapshotsService, request: Any, context: Any) -> Any:
                self._begin(method, **_request_fields(request))
                try:
                    return handler(self, request, context)
                except Exception as exc:  # noqa: BLE001 - every failure becomes a status
                    self._fail(method, context, exc)

            return run  # type: ignore[return-value]

        return wrap

    @_unary("Prepare")
    def Prepare(self, request: Any, context: Any) -> Any:  # noqa: N802 (gRPC method name)
        mounts = self.snapshotter.prepare(request.key, request.parent, dict(request.labels),
                                          namespace=_namespace(context))
        return snapshots_pb2.PrepareSnapshotResponse(mounts=_mounts(mounts))

    @_unary("View")
    def View(self, request: Any, context: Any) -> Any:  # noqa: N802
        mounts = self.snapshotter.view(request.key, request.parent, dict(request.labels))
        return snapshots_pb2.ViewSnapshotResponse(mounts=_mounts(mounts))

    @_unary("Mounts")
    def Mounts(self, request: Any, context: Any) -> Any:  # noqa: N802
        return snapshots_pb2.MountsResponse(mounts=_mounts(self.snapshotter.mounts(request.key)))

    @_unary("Commit")
    def Commit(self, request: Any, context: Any) -> Any:  # noqa: N802
        self.snapshotter.commit(request.name, request.key, dict(request.labels))
        return empty_pb2.Empty()

    @_unary("Remove")
    def Remove(self, request: Any, context: Any) -> Any:  # noqa: N802
        self.snapshotter.remove(request.key)
        return empty_pb2.Empty()

    @_unary("Stat")
    def Stat(self, request: Any, context: Any) -> Any:  # noqa: N802
        return snapshots_pb2.StatSnapshotResponse(info=_info(self.snapshotter.stat(request.key)))

    @_unary("Update")
    def Update(self, request: Any, context: Any) -> Any:  # noqa: N802
        if not request.info.name:
            raise SnapshotArgumentError("update needs the snapshot's name")
        snapshot = self.snapshotter.update(request.info.name, dict(request.info.labels),
                                           list(request.update_mask.paths))
        return snapshots_pb2.UpdateSnapshotResponse(info=_info(snapshot))

    def List(self, request: Any, context: Any) -> Iterator[Any]:  # noqa: N802
        self._begin("List", filters=list(request.filters))
        try:
            snapshots = self.snapshotter.walk(list(request.filters))
        except Exception as exc:  # noqa: BLE001 - every failure becomes a status
            self._fail("List", context, exc)
            return
        for start in range(0, len(snapshots), LIST_BATCH):
            yield snapshots_pb2.ListSnapshotsResponse(info=[_info(s) for s in snapshots[start:start + LIST_BATCH]])

    @_unary("Usage")
    def Usage(self, request: Any, context: Any) -> Any:  # noqa: N802
        size, inodes = self.snapshotter.usage(request.key)
        return snapshots_pb2.UsageResponse(size=size, inodes=inodes)

    @_unary("Cleanup")
    def Cleanup(self, request: Any, context: Any) -> Any:  # noqa: N802
        self.snapshotter.cleanup()
        return empty_pb2.Empty()


def _request_fields(request: Any) -> dict[str, Any]:
    """What a debug log line shows of a request (keys, parents, label names: no values)."""
    fields: dict[str, Any] = {}
    for name in ("key", "name", "parent"):
        value = getattr(request, name, "")
        if isinstance(value, str) and value:
            fields[name] = value
    labels = getattr(request, "labels", None)
    if labels:
        fields["labels"] = sorted(labels)
    return fields


def add_to_server(service: SnapshotsService, server: Any) -> None:
    snapshots_pb2_grpc.add_SnapshotsServicer_to_server(service, server)  # type: ignore[no-untyped-call]

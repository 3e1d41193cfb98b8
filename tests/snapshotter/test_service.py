"""The Snapshots gRPC service over a real unix socket: messages, status codes, streaming, metrics."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import field_mask_pb2

from socikit.containerd._proto import snapshots_pb2 as pb
from socikit.containerd._proto import snapshots_pb2_grpc as pb_grpc
from socikit.snapshotter import labels as L
from socikit.snapshotter.config import SnapshotterConfig
from socikit.snapshotter.metrics import MetricsRegistry, SnapshotterMetrics
from socikit.snapshotter.service import LIST_BATCH, SnapshotsService, add_to_server
from socikit.snapshotter.snapshots import Snapshotter
from socikit.snapshotter.store import SnapshotStore
from tests.snapshotter.local_layers import LocalDirectoryLayers

S = "socikit"  # the proxy plugin's name, sent in every request


class Client:
    def __init__(self, stub: Any, metrics: SnapshotterMetrics, store: SnapshotStore, table: Path) -> None:
        self.stub, self.metrics, self.store, self.table = stub, metrics, store, table

    def prepare(self, key: str, parent: str = "", labels: dict[str, str] | None = None, **kw: Any) -> Any:
        return self.stub.Prepare(pb.PrepareSnapshotRequest(snapshotter=S, key=key, parent=parent, labels=labels or {}),
                                 **kw)

    def commit(self, name: str, key: str, labels: dict[str, str] | None = None) -> Any:
        return self.stub.Commit(pb.CommitSnapshotRequest(snapshotter=S, name=name, key=key, labels=labels or {}))

    def stat(self, key: str) -> Any:
        return self.stub.Stat(pb.StatSnapshotRequest(snapshotter=S, key=key)).info

    def list(self, *filters: str) -> list[Any]:
        return list(self.stub.List(pb.ListSnapshotsRequest(snapshotter=S, filters=list(filters))))


@pytest.fixture
def client(tmp_path: Path) -> Iterator[Client]:
    store = SnapshotStore(tmp_path / "root")
    metrics = SnapshotterMetrics(MetricsRegistry())
    table = tmp_path / "layers.json"
    snapshotter = Snapshotter(store, LocalDirectoryLayers(table), config=SnapshotterConfig(), metrics=metrics)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    add_to_server(SnapshotsService(snapshotter, metrics), server)
    address = f"unix://{tmp_path / 's.sock'}"
    server.add_insecure_port(address)
    server.start()
    channel = grpc.insecure_channel(address)
    try:
        yield Client(pb_grpc.SnapshotsStub(channel), metrics, store, table)
    finally:
        channel.close()
        server.stop(None).wait()
        store.close()


def _code(call: Any) -> tuple[Any, str]:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value.code(), caught.value.details()


def test_lifecycle_answers(client: Client) -> None:
    mounts = client.prepare("a", labels={"k": "v"}).mounts
    assert [(m.type, list(m.options)) for m in mounts] == [("bind", ["rw", "rbind"])]
    client.commit("layer", "a", {"c": "1"})
    info = client.stat("layer")
    assert (info.name, info.parent, info.kind, dict(info.labels)) == ("layer", "", pb.COMMITTED, {"c": "1"})
    assert info.created_at.ToNanoseconds() > 0 and info.updated_at.ToNanoseconds() == info.created_at.ToNanoseconds()
    (mount,) = client.prepare("b", "layer").mounts
    assert mount.type == "overlay" and any(o.startswith("upperdir=") for o in mount.options)
    view = client.stub.View(pb.ViewSnapshotRequest(snapshotter=S, key="v", parent="layer")).mounts
    assert [(m.type, list(m.options)) for m in view] == [("bind", ["ro", "rbind"])]
    assert client.stub.Mounts(pb.MountsRequest(snapshotter=S, key="b")).mounts == [mount]
    usage = client.stub.Usage(pb.UsageRequest(snapshotter=S, key="layer"))
    assert usage.inodes == 1 and usage.size > 0
    assert client.stat("b").kind == pb.ACTIVE and client.stat("v").kind == pb.VIEW
    client.stub.Remove(pb.RemoveSnapshotRequest(snapshotter=S, key="b"))
    client.stub.Cleanup(pb.CleanupRequest(snapshotter=S))
    assert {i.name for r in client.list() for i in r.info} == {"layer", "v"}
    assert client.metrics.grpc_requests.value(method="Prepare") == 2


def test_errors_carry_containerds_status_codes(client: Client) -> None:
    client.prepare("a")
    client.commit("layer", "a")
    client.prepare("child", "layer")
    assert _code(lambda: client.prepare("child", "layer"))[0] == grpc.StatusCode.ALREADY_EXISTS
    code, details = _code(lambda: client.stub.Remove(pb.RemoveSnapshotRequest(snapshotter=S, key="layer")))
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "child" in details
    assert _code(lambda: client.stat("missing"))[0] == grpc.StatusCode.NOT_FOUND
    assert _code(lambda: client.commit("x", "layer"))[0] == grpc.StatusCode.FAILED_PRECONDITION
    assert _code(lambda: client.commit("layer", "child"))[0] == grpc.StatusCode.ALREADY_EXISTS
    assert _code(lambda: client.prepare("p", "child"))[0] == grpc.StatusCode.INVALID_ARGUMENT
    assert _code(lambda: client.prepare("p", "nope"))[0] == grpc.StatusCode.NOT_FOUND
    assert _code(lambda: client.prepare("big", labels={"k": "v" * 5000}))[0] == grpc.StatusCode.INVALID_ARGUMENT
    assert _code(lambda: client.list("kind=="))[0] == grpc.StatusCode.INVALID_ARGUMENT
    assert _code(lambda: client.stub.Usage(pb.UsageRequest(snapshotter=S, key="nope")))[0] == \
        grpc.StatusCode.NOT_FOUND
    assert client.metrics.grpc_errors.value(method="Prepare", code="ALREADY_EXISTS") == 1
    assert client.metrics.grpc_errors.value(method="List", code="INVALID_ARGUMENT") == 1


def test_update_with_field_masks(client: Client) -> None:
    client.prepare("a", labels={"keep": "1", "drop": "2"})

    def update(labels: dict[str, str], *paths: str) -> dict[str, str]:
        request = pb.UpdateSnapshotRequest(snapshotter=S, info=pb.Info(name="a", labels=labels),
                                           update_mask=field_mask_pb2.FieldMask(paths=list(paths)))
        return dict(client.stub.Update(request).info.labels)

    assert update({"drop": "", "new": "3"}, "labels.drop", "labels.new") == {"keep": "1", "new": "3"}
    assert update({"only": "x"}, "labels") == {"only": "x"}
    assert update({"all": "y"}) == {"all": "y"}
    assert dict(client.stat("a").labels) == {"all": "y"}
    assert _code(lambda: client.stub.Update(pb.UpdateSnapshotRequest(
        snapshotter=S, info=pb.Info(name="a"), update_mask=field_mask_pb2.FieldMask(paths=["name"]))))[0] == \
        grpc.StatusCode.INVALID_ARGUMENT
    assert _code(lambda: client.stub.Update(pb.UpdateSnapshotRequest(snapshotter=S, info=pb.Info(name="zz"))))[0] == \
        grpc.StatusCode.NOT_FOUND
    assert _code(lambda: client.stub.Update(pb.UpdateSnapshotRequest(snapshotter=S, info=pb.Info())))[0] == \
        grpc.StatusCode.INVALID_ARGUMENT


def test_list_streams_batches_and_honours_filters(client: Client) -> None:
    total = LIST_BATCH * 2 + 5
    for n in range(total):
        client.prepare(f"k{n:03d}", labels={"n": str(n % 2)})
    responses = client.list()
    assert [len(r.info) for r in responses] == [LIST_BATCH, LIST_BATCH, 5]
    assert len({i.name for r in responses for i in r.info}) == total
    odd = [i.name for r in client.list("labels.n==1") for i in r.info]
    assert len(odd) == total // 2 and all(int(name[1:]) % 2 == 1 for name in odd)
    both = [i.name for r in client.list("name==k000", "name==k001") for i in r.info]
    assert both == ["k000", "k001"]
    assert client.list("kind==committed") == []


def test_remote_snapshot_handshake_over_grpc(client: Client, tmp_path: Path) -> None:
    served = tmp_path / "served"
    served.mkdir()
    client.table.write_text(json.dumps({"sha256:c1": str(served)}))
    code, details = _code(lambda: client.prepare("ns/1/extract sha256:c1", labels={L.SNAPSHOT_REF: "sha256:c1"},
                                                 metadata=(("containerd-namespace", "team-a"),)))
    assert code == grpc.StatusCode.ALREADY_EXISTS and details == 'target snapshot "sha256:c1": already exists'
    (match,) = [i for r in client.list(f'labels."{L.SNAPSHOT_REF}"==sha256:c1,parent==""') for i in r.info]
    assert match.kind == pb.COMMITTED and match.labels[L.REMOTE] == L.REMOTE_VALUE
    assert match.labels[L.REMOTE_NAMESPACE] == "team-a"

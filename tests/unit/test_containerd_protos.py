"""Our containerd .proto files carry containerd's wire contract: package-qualified service names
(the gRPC method paths) and the field numbers rpull relies on."""

from __future__ import annotations

import pytest

from socikit.containerd._proto import (
    content_pb2,
    descriptor_pb2,
    diff_pb2,
    images_pb2,
    leases_pb2,
    mount_pb2,
    snapshots_pb2,
)


@pytest.mark.parametrize(("module", "service", "methods"), [
    (content_pb2, "containerd.services.content.v1.Content", {"Info", "Update", "Read", "Write", "Abort"}),
    (images_pb2, "containerd.services.images.v1.Images", {"Get", "Create", "Update"}),
    (leases_pb2, "containerd.services.leases.v1.Leases", {"Create", "Delete"}),
    (diff_pb2, "containerd.services.diff.v1.Diff", {"Apply"}),
    (snapshots_pb2, "containerd.services.snapshots.v1.Snapshots",
     {"Prepare", "View", "Mounts", "Commit", "Remove", "Stat", "Update", "List", "Usage", "Cleanup"}),
])
def test_service_paths(module: object, service: str, methods: set[str]) -> None:
    found = [s for s in module.DESCRIPTOR.services_by_name.values() if s.full_name == service]  # type: ignore[attr-defined]
    assert len(found) == 1
    assert {m.name for m in found[0].methods} == methods


def _numbers(message: object) -> dict[str, int]:
    return {f.name: f.number for f in message.DESCRIPTOR.fields}  # type: ignore[attr-defined]


def test_field_numbers() -> None:
    assert _numbers(content_pb2.WriteContentRequest) == {"action": 1, "ref": 2, "total": 3, "expected": 4,
                                                         "offset": 5, "data": 6, "labels": 7}
    assert _numbers(content_pb2.WriteContentResponse) == {"action": 1, "started_at": 2, "updated_at": 3,
                                                          "offset": 4, "total": 5, "digest": 6}
    assert {v.name: v.number for v in content_pb2.WriteAction.DESCRIPTOR.values} == {"STAT": 0, "WRITE": 1,
                                                                                     "COMMIT": 2}
    assert _numbers(content_pb2.Info) == {"digest": 1, "size": 2, "created_at": 3, "updated_at": 4, "labels": 5}
    assert _numbers(content_pb2.UpdateRequest) == {"info": 1, "update_mask": 2}
    assert _numbers(content_pb2.ReadContentRequest) == {"digest": 1, "offset": 2, "size": 3}
    assert _numbers(descriptor_pb2.Descriptor) == {"media_type": 1, "digest": 2, "size": 3, "annotations": 5}
    assert _numbers(images_pb2.Image) == {"name": 1, "labels": 2, "target": 3, "created_at": 7, "updated_at": 8}
    assert _numbers(images_pb2.UpdateImageRequest) == {"image": 1, "update_mask": 2}
    assert _numbers(leases_pb2.CreateRequest) == {"id": 1, "labels": 3}
    assert _numbers(leases_pb2.DeleteRequest) == {"id": 1, "sync": 2}
    assert _numbers(diff_pb2.ApplyRequest) == {"diff": 1, "mounts": 2}
    assert _numbers(diff_pb2.ApplyResponse) == {"applied": 1}
    assert _numbers(mount_pb2.Mount) == {"type": 1, "source": 2, "target": 3, "options": 4}
    assert _numbers(snapshots_pb2.PrepareSnapshotRequest) == {"snapshotter": 1, "key": 2, "parent": 3, "labels": 4}
    assert _numbers(snapshots_pb2.CommitSnapshotRequest) == {"snapshotter": 1, "name": 2, "key": 3, "labels": 4,
                                                             "parent": 5}
    assert _numbers(snapshots_pb2.Info) == {"name": 1, "parent": 2, "kind": 3, "created_at": 4, "updated_at": 5,
                                            "labels": 6}

"""The committed containerd gRPC stubs are what scripts/gen_proto.py makes from the .proto files."""

from __future__ import annotations

import subprocess
import sys

from tests.vectors import REPO_ROOT


def test_committed_stubs_match_their_protos() -> None:
    result = subprocess.run([sys.executable, "scripts/gen_proto.py", "--check"], cwd=REPO_ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_credentials_service_has_the_method_path_rpull_calls() -> None:
    from socikit.containerd._proto import socikit_credentials_pb2 as pb

    service = pb.DESCRIPTOR.services_by_name["Credentials"]
    assert service.full_name == "socikit.snapshotter.v1.Credentials"
    assert [m.name for m in service.methods] == ["Put"]


def test_snapshots_service_matches_containerds_method_paths() -> None:
    from socikit.containerd._proto import mount_pb2
    from socikit.containerd._proto import snapshots_pb2 as pb

    service = pb.DESCRIPTOR.services_by_name["Snapshots"]
    assert service.full_name == "containerd.services.snapshots.v1.Snapshots"
    assert [m.name for m in service.methods] == ["Prepare", "View", "Mounts", "Commit", "Remove", "Stat",
                                                 "Update", "List", "Usage", "Cleanup"]
    assert service.methods_by_name["List"].server_streaming
    assert mount_pb2.Mount.DESCRIPTOR.full_name == "containerd.types.Mount"
    assert pb.PrepareSnapshotResponse.DESCRIPTOR.fields_by_name["mounts"].message_type.full_name == \
        "containerd.types.Mount"
    # field numbers are the wire contract: a few that differ between messages
    commit = pb.CommitSnapshotRequest.DESCRIPTOR.fields_by_name
    assert (commit["name"].number, commit["key"].number, commit["labels"].number, commit["parent"].number) == \
        (2, 3, 4, 5)
    info = pb.Info.DESCRIPTOR.fields_by_name
    assert [info[n].number for n in ("name", "parent", "kind", "created_at", "updated_at", "labels")] == \
        [1, 2, 3, 4, 5, 6]
    assert pb.Kind.Value("COMMITTED") == 3 and pb.Kind.Value("VIEW") == 1
    assert pb.UpdateSnapshotRequest.DESCRIPTOR.fields_by_name["update_mask"].number == 3

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

"""containerd's Diff service: apply a layer blob from the content store onto a snapshot."""

from __future__ import annotations

from collections.abc import Sequence

from socikit.containerd._proto import diff_pb2, diff_pb2_grpc
from socikit.containerd.client import Containerd
from socikit.containerd.images import descriptor_from_proto, descriptor_to_proto
from socikit.containerd.snapshots import Mount, mounts_to_proto
from socikit.oci.descriptor import Descriptor


def apply_layer(client: Containerd, layer: Descriptor, mounts: Sequence[Mount]) -> Descriptor:
    """Unpack `layer` (already in the content store) onto `mounts`; returns the descriptor of
    what was applied, whose digest is the layer's diff ID (the uncompressed tar's digest)."""
    stub = client.stub(diff_pb2_grpc.DiffStub)
    request = diff_pb2.ApplyRequest(diff=descriptor_to_proto(layer), mounts=mounts_to_proto(mounts))
    # No deadline: extracting a large layer takes as long as it takes.
    response = client.call(f"apply layer {layer.digest}", stub.Apply, request, timeout=None)
    return descriptor_from_proto(response.applied)


__all__ = ["apply_layer"]

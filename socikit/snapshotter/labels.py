"""Snapshot label names the snapshotter reads or writes, and containerd's label size rule."""

from __future__ import annotations

from collections.abc import Mapping

from socikit.errors import SnapshotArgumentError

# Set by containerd on the Prepare of an unpack: the chain ID the layer will be committed as.
SNAPSHOT_REF = "containerd.io/snapshot.ref"
# Written onto snapshots a LayerFileSystem serves (the reference's names and values).
REMOTE = "containerd.io/snapshot/remote"
REMOTE_VALUE = "remote snapshot"
HAS_SOCI_INDEX_DIGEST = "containerd.io/snapshot/remote/has.soci.index.digest"
REMOTE_NAMESPACE = "containerd.io/snapshot/remote/namespace"
# Layer size as the SOCI/nerdctl label wrapper sends it (compared with [snapshotter] min_layer_size).
SOCI_SIZE = "containerd.io/snapshot/remote/soci.size"

# containerd's limit for one label: key and value together.
MAX_LABEL_BYTES = 4096


def validate_labels(labels: Mapping[str, str]) -> None:
    for key, value in labels.items():
        if not key:
            raise SnapshotArgumentError("label key must not be empty")
        size = len(key.encode()) + len(value.encode())
        if size > MAX_LABEL_BYTES:
            raise SnapshotArgumentError(f"label {key!r}: key and value are {size} bytes, more than "
                                        f"{MAX_LABEL_BYTES}")


def is_remote(labels: Mapping[str, str]) -> bool:
    return labels.get(REMOTE) == REMOTE_VALUE

"""Unpack an image's layers into a snapshotter the way containerd's own unpacker does.

Per layer, bottom up: a committed snapshot named by the layer's chain ID means the layer is
already there. Otherwise an extraction snapshot is prepared on the previous chain ID with the
unpack labels (fact sheet §7.3). A remote snapshotter that provides the layer itself commits it
and answers ALREADY_EXISTS: the layer is served remotely and never downloaded. For any other
answer the blob is streamed into the content store (unless it is there already), applied onto
the snapshot's mounts by containerd's Diff service, checked against the config's diff ID and
committed under the chain ID; a failed layer's extraction snapshot is removed. At the end the
config gets `containerd.io/gc.ref.snapshot.<snapshotter>` = the top chain ID, which is how
containerd (and `ctr run`) knows the image is unpacked for that snapshotter.
"""

from __future__ import annotations

import base64
import contextlib
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import BinaryIO

from socikit.containerd import labels as lb
from socikit.containerd.client import Containerd
from socikit.containerd.content import ContentStore, stream_chunks
from socikit.containerd.diff import apply_layer
from socikit.containerd.snapshots import Snapshots
from socikit.errors import ContainerdError, ImageError
from socikit.oci.descriptor import Descriptor

# How often Prepare is retried when it reports an existing snapshot that Stat cannot find (a
# concurrent unpack of the same layer that then failed): containerd tries three times too.
PREPARE_ATTEMPTS = 3

LayerOpener = Callable[[Descriptor], BinaryIO]


@dataclass(frozen=True, slots=True)
class LayerOutcome:
    """What happened to one layer: `state` is "present" (its snapshot already existed),
    "remote" (the snapshotter provides it; nothing downloaded) or "applied" (blob fetched unless
    already stored, then unpacked by containerd). `downloaded` counts registry bytes."""

    layer: Descriptor
    chain_id: str
    state: str
    downloaded: int = 0


@dataclass(frozen=True, slots=True)
class UnpackPlan:
    """Everything an unpack needs to know about the image (pure data, built from the manifest
    and config): layer descriptors, their diff IDs and the annotations the handler wrappers add."""

    config: Descriptor
    layers: tuple[Descriptor, ...]
    diff_ids: tuple[str, ...]
    annotations: tuple[dict[str, str], ...]

    @property
    def chain_ids(self) -> list[str]:
        return lb.chain_ids(self.diff_ids)


def plan_unpack(*, image_ref: str, manifest_digest: str, config: Descriptor, manifest_layers: Sequence[Descriptor],
                diff_ids: Sequence[str], soci_index_digest: str = "") -> UnpackPlan:
    """The layers (layer-typed entries of the manifest) with their diff IDs and unpack
    annotations. Raises ImageError when the config's diff IDs do not match the layers."""
    annotations = lb.unpack_annotations(image_ref=image_ref, manifest_digest=manifest_digest,
                                        layers=manifest_layers, soci_index_digest=soci_index_digest)
    layers = [(layer, notes) for layer, notes in zip(manifest_layers, annotations, strict=True)
              if lb.is_layer_type(layer.media_type)]
    if len(layers) != len(diff_ids):
        raise ImageError(f"image {image_ref}: {len(layers)} layers but {len(diff_ids)} diff IDs in its config")
    return UnpackPlan(config=config, layers=tuple(layer for layer, _ in layers), diff_ids=tuple(diff_ids),
                      annotations=tuple(notes for _, notes in layers))


def _unique() -> str:
    # containerd's own shape: nanoseconds of the current second, then 3 random bytes.
    return f"{time.time_ns() % 1_000_000_000}-{base64.urlsafe_b64encode(os.urandom(3)).decode()}"


class Unpacker:
    """Unpacks plans into `snapshotter` through `client` (hold a lease on it while unpacking)."""

    def __init__(self, client: Containerd, snapshotter: str, open_layer: LayerOpener, *,
                 on_layer: Callable[[LayerOutcome], None] | None = None) -> None:
        self.client = client
        self.snapshotter = snapshotter
        self.snapshots = Snapshots(client, snapshotter)
        self.content = ContentStore(client)
        self.open_layer = open_layer
        self.on_layer = on_layer

    def unpack(self, plan: UnpackPlan) -> list[LayerOutcome]:
        outcomes: list[LayerOutcome] = []
        chain = plan.chain_ids
        for index, layer in enumerate(plan.layers):
            parent = chain[index - 1] if index else ""
            outcome = self._layer(layer, plan.diff_ids[index], chain[index], parent, plan.annotations[index])
            outcomes.append(outcome)
            if self.on_layer is not None:
                self.on_layer(outcome)
        if chain:
            self.content.update_labels(plan.config.digest, {lb.snapshot_gc_label(self.snapshotter): chain[-1]})
        return outcomes

    def _layer(self, layer: Descriptor, diff_id: str, chain_id: str, parent: str,
               annotations: Mapping[str, str]) -> LayerOutcome:
        if self.snapshots.stat(chain_id) is not None:
            return LayerOutcome(layer, chain_id, "present")
        labels = lb.prepare_labels(layer, annotations, chain_id)
        key = ""
        mounts = None
        for _ in range(PREPARE_ATTEMPTS):
            key = lb.unpack_key(_unique(), chain_id)
            try:
                mounts = self.snapshots.prepare(key, parent, labels)
                break
            except ContainerdError as exc:
                if exc.code != "ALREADY_EXISTS":
                    raise
            if self.snapshots.stat(chain_id) is not None:
                return LayerOutcome(layer, chain_id, "remote")
        if mounts is None:
            raise ContainerdError(f"cannot prepare a snapshot for layer {layer.digest} in {self.snapshotter}: "
                                  "it keeps existing without a committed snapshot")
        try:
            downloaded = self._fetch(layer)
            applied = apply_layer(self.client, layer, mounts)
            if applied.digest != diff_id:
                raise ImageError(f"layer {layer.digest} unpacks to {applied.digest}, "
                                 f"but the image config says {diff_id}")
            try:
                self.snapshots.commit(chain_id, key, labels)
            except ContainerdError as exc:
                if exc.code != "ALREADY_EXISTS":
                    raise
                # Committed meanwhile by a concurrent unpack of the same layer: use that one.
                self._remove(key)
                return LayerOutcome(layer, chain_id, "present", downloaded)
        except BaseException:
            self._remove(key)
            raise
        self.content.update_labels(layer.digest, {lb.UNCOMPRESSED: diff_id})
        return LayerOutcome(layer, chain_id, "applied", downloaded)

    def _fetch(self, layer: Descriptor) -> int:
        """Put the layer blob into the content store (unless there); returns registry bytes read."""
        info = self.content.info(layer.digest)
        if info is not None and info.size == layer.size:
            return 0
        counter = [0]
        with self.open_layer(layer) as stream:
            self.content.write(layer, stream_chunks(stream, counter))
        return counter[0]

    def _remove(self, key: str) -> None:
        with contextlib.suppress(ContainerdError):  # the extraction snapshot's lease cleans up if this fails
            self.snapshots.remove(key)


__all__ = ["PREPARE_ATTEMPTS", "LayerOpener", "LayerOutcome", "UnpackPlan", "Unpacker", "plan_unpack"]

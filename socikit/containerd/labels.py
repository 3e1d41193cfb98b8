"""The labels containerd and nerdctl attach during a pull, as pure functions.

* GC labels on content (containerd's `SetChildrenMappedLabels` with `ChildGCLabels`): an index
  names its manifests `containerd.io/gc.ref.content.m.<i>`, a manifest its config
  `containerd.io/gc.ref.content.config` and its layers `containerd.io/gc.ref.content.l.<i>`,
  anything else `containerd.io/gc.ref.content.<i>`; counters run per key.
* The unpack labels a snapshotter sees on Prepare (fact sheet §7.3): the layer descriptor's
  `containerd.io/snapshot/` annotations plus `containerd.io/snapshot.ref`, where the annotations
  are what containerd's `AppendInfoHandlerWrapper` (`cri.*`) and nerdctl's SOCI wrapper
  (`remote/soci.*`, `remote/image.layers.size`) add to each layer of a manifest.
* Chain IDs (OCI image-spec `identity.ChainID`).

Every label key plus value must fit containerd's 4096-byte limit; the two layer lists are cut
to fit exactly as containerd and nerdctl cut them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

from socikit.oci import mediatypes as mt
from socikit.oci.descriptor import Descriptor

MAX_LABEL = 4096  # containerd labels.Validate: len(key) + len(value)

GC_CONTENT_PREFIX = "containerd.io/gc.ref.content."
GC_MANIFEST = GC_CONTENT_PREFIX + "m."
GC_CONFIG = GC_CONTENT_PREFIX + "config"
GC_LAYER = GC_CONTENT_PREFIX + "l."
GC_SNAPSHOT_PREFIX = "containerd.io/gc.ref.snapshot."
UNCOMPRESSED = "containerd.io/uncompressed"

SNAPSHOT_REF = "containerd.io/snapshot.ref"
INHERITED_PREFIX = "containerd.io/snapshot/"
CRI_IMAGE_REF = "containerd.io/snapshot/cri.image-ref"
CRI_MANIFEST_DIGEST = "containerd.io/snapshot/cri.manifest-digest"
CRI_LAYER_DIGEST = "containerd.io/snapshot/cri.layer-digest"
CRI_IMAGE_LAYERS = "containerd.io/snapshot/cri.image-layers"
SOCI_SIZE = "containerd.io/snapshot/remote/soci.size"
SOCI_INDEX_DIGEST = "containerd.io/snapshot/remote/soci.index.digest"
IMAGE_LAYERS_SIZE = "containerd.io/snapshot/remote/image.layers.size"

_DOCKER_LAYER_BASES = frozenset({
    mt.MEDIA_TYPE_DOCKER_LAYER,
    mt.MEDIA_TYPE_DOCKER_LAYER_GZIP,
    "application/vnd.docker.image.rootfs.foreign.diff.tar",
    mt.MEDIA_TYPE_DOCKER_FOREIGN_LAYER_GZIP,
    "application/vnd.docker.image.rootfs.diff.tar.zstd",
})
_KNOWN_CONFIGS = frozenset({
    mt.MEDIA_TYPE_OCI_CONFIG,
    mt.MEDIA_TYPE_DOCKER_CONFIG,
    "application/vnd.containerd.container.criu.checkpoint.criu.tar",
    "application/vnd.containerd.container.checkpoint.config.v1+proto",
})


def is_layer_type(media_type: str) -> bool:
    """containerd `images.IsLayerType`: any OCI layer type, or a Docker layer type whatever `+`
    suffixes follow it."""
    if media_type.startswith("application/vnd.oci.image.layer."):
        return True
    return media_type.split("+", 1)[0] in _DOCKER_LAYER_BASES


def is_known_config(media_type: str) -> bool:
    """containerd `images.IsKnownConfig` (image configs and containerd checkpoint configs)."""
    return media_type in _KNOWN_CONFIGS


def label_fits(key: str, value: str) -> bool:
    """containerd's rule for one label: key and value together at most 4096 bytes."""
    return len(key.encode()) + len(value.encode()) <= MAX_LABEL


# ---------------------------------------------------------------------------------------------
# GC labels on content


def gc_label_prefix(child: Descriptor) -> str:
    """containerd `images.ChildGCLabels` for one child descriptor."""
    if is_known_config(child.media_type):
        return GC_CONFIG
    if child.media_type in mt.MANIFEST_MEDIA_TYPES:
        return GC_MANIFEST
    if is_layer_type(child.media_type):
        return GC_LAYER
    return GC_CONTENT_PREFIX


def children_gc_labels(children: Sequence[Descriptor]) -> dict[str, str]:
    """The labels containerd puts on a parent blob for its `children` (in document order): one
    counter per key; a key ending in "." always gets its counter, another key only from its
    second use on."""
    counters: dict[str, int] = {}
    labels: dict[str, str] = {}
    for child in children:
        key = gc_label_prefix(child)
        index = counters.get(key, 0)
        counters[key] = index + 1
        if index > 0 or key.endswith("."):
            key = f"{key}{index}"
        labels[key] = child.digest
    return labels


def manifest_children(config: Descriptor, layers: Sequence[Descriptor]) -> list[Descriptor]:
    """A manifest's children in the order containerd walks them: config, then layers."""
    return [config, *layers]


def snapshot_gc_label(snapshotter: str) -> str:
    """The config label that ties an unpacked image to its top snapshot in `snapshotter`."""
    return GC_SNAPSHOT_PREFIX + snapshotter


# ---------------------------------------------------------------------------------------------
# chain IDs


def chain_ids(diff_ids: Sequence[str]) -> list[str]:
    """ChainID(L0) = DiffID(L0); ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln))."""
    out: list[str] = []
    for diff_id in diff_ids:
        if not out:
            out.append(diff_id)
        else:
            out.append("sha256:" + hashlib.sha256(f"{out[-1]} {diff_id}".encode()).hexdigest())
    return out


# ---------------------------------------------------------------------------------------------
# unpack labels


def image_layers_label(layers: Sequence[Descriptor]) -> str:
    """`cri.image-layers` for the first of `layers` (the layer being prepared, then the ones
    above it): their digests joined by ",", stopping before the first digest that would push
    key + value over 4096 bytes (containerd `getLayers`). Non-layer entries are skipped."""
    value = ""
    for layer in layers:
        if not is_layer_type(layer.media_type):
            continue
        item = layer.digest if not value else "," + layer.digest
        if not label_fits(CRI_IMAGE_LAYERS, value + item):
            break
        value += item
    return value


def image_layers_size_label(layers: Sequence[Descriptor], count: int) -> str:
    """`remote/image.layers.size` (nerdctl's SOCI wrapper): the sizes of the first `count`
    entries of `layers` (as many as `cri.image-layers` named), layer entries only. nerdctl checks
    each size with its trailing comma against the limit before trimming the last comma, so the
    value stops one byte earlier than an exact fit would; kept as it does."""
    value = ""
    for layer in layers[:count]:
        if not is_layer_type(layer.media_type):
            continue
        item = f"{layer.size},"
        if not label_fits(IMAGE_LAYERS_SIZE, value + item):
            break
        value += item
    return value.removesuffix(",")


def unpack_annotations(*, image_ref: str, manifest_digest: str, layers: Sequence[Descriptor],
                       soci_index_digest: str) -> list[dict[str, str]]:
    """The annotations containerd's and nerdctl's handler wrappers put on each layer descriptor
    of a manifest (`layers` as listed in it). Entries that are not layers get none."""
    out: list[dict[str, str]] = []
    for position, layer in enumerate(layers):
        if not is_layer_type(layer.media_type):
            out.append({})
            continue
        image_layers = image_layers_label(layers[position:])
        count = len(image_layers.split(","))
        out.append({
            CRI_IMAGE_REF: image_ref,
            CRI_LAYER_DIGEST: layer.digest,
            CRI_IMAGE_LAYERS: image_layers,
            CRI_MANIFEST_DIGEST: manifest_digest,
            SOCI_SIZE: str(layer.size),
            SOCI_INDEX_DIGEST: soci_index_digest,
            IMAGE_LAYERS_SIZE: image_layers_size_label(layers[position:], count),
        })
    return out


def inherited_labels(annotations: Mapping[str, str]) -> dict[str, str]:
    """containerd `snapshots.FilterInheritedLabels`: the annotations a snapshot inherits."""
    return {k: v for k, v in annotations.items() if k == SNAPSHOT_REF or k.startswith(INHERITED_PREFIX)}


def prepare_labels(layer: Descriptor, added: Mapping[str, str], chain_id: str) -> dict[str, str]:
    """The labels of the Prepare that unpacks `layer`: its own inheritable annotations, the
    handler annotations `added` over them, and `containerd.io/snapshot.ref` = its chain ID."""
    labels = inherited_labels({**layer.annotations, **added})
    labels[SNAPSHOT_REF] = chain_id
    return labels


def unpack_key(unique: str, chain_id: str) -> str:
    """containerd's key for an extraction snapshot (`snapshots.UnpackKeyFormat`)."""
    return f"extract-{unique} {chain_id}"


__all__ = [
    "CRI_IMAGE_LAYERS", "CRI_IMAGE_REF", "CRI_LAYER_DIGEST", "CRI_MANIFEST_DIGEST", "GC_CONFIG", "GC_LAYER",
    "GC_MANIFEST", "GC_SNAPSHOT_PREFIX", "IMAGE_LAYERS_SIZE", "MAX_LABEL", "SNAPSHOT_REF", "SOCI_INDEX_DIGEST",
    "SOCI_SIZE", "UNCOMPRESSED", "chain_ids", "children_gc_labels", "gc_label_prefix", "image_layers_label",
    "image_layers_size_label", "inherited_labels", "is_known_config", "is_layer_type", "label_fits",
    "manifest_children", "prepare_labels", "snapshot_gc_label", "unpack_annotations", "unpack_key",
]

"""The additional layer store protocol of containers/storage (podman, CRI-O), as pure functions.

With the store configured as `additionallayerstores = ["<store>:ref"]`, containers/storage looks a
layer up at

    <store>/<base64(reference)>/<digest>/{diff,info,blob}

and takes the layer from there when all three exist (any stat failure: "unknown layer", the layer
is downloaded normally). `reference` is the image reference podman pulls (`SrcRef.String()`,
e.g. `registry.example/app:1`), encoded with standard base64 (padded; its alphabet has `+` and
`/`, and containers/storage joins the text into the path as it is). Which digest names the layer
depends on the version (the two *forms*, `LayerForm`):

* podman 4.x (containers/image < 5.31): the compressed layer digest of the manifest, for every
  layer of a `docker://` pull; `info` holds the compressed digest and size, the uncompressed
  digest (the config's diff_id) and size, and the compression (2 = gzip).
* podman >= 5.1, CRI-O >= 1.31: the layer's TOC digest, asked only for layers whose manifest
  descriptor carries `containerd.io/snapshot/stargz/toc.digest`; for SOCI that value is the
  layer's ztoc digest. `info` says the size is unknown (-1), names the TOC digest, and asks
  containers/storage to expect the config's diff_id.

Next to those, containers/storage creates `<layer dir>/use` when it starts using the layer and
`rmdir`s the layer directory when it releases it; a store that counts uses answers ENOENT to both
(`socikit.store.usecount`).

`lookup` walks such a path one name at a time, as a FUSE lookup does; `indexed_layers` decides
which layers of an image the store serves (those with a ztoc in the image's SOCI index); and
`info_json` writes the `info` file.

A reference's encoding is always one directory name: base64 writes `/` (or `+`) only for a byte
whose low six bits are all ones (or 111110) at the end of a 3-byte group, that is for `?`, DEL
(or `>`, `~`) and bytes >= 0x80, and the reference grammar allows none of them. A path that
splits the encoding over several levels therefore names no reference.
"""

from __future__ import annotations

import base64
import binascii
import enum
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from socikit.content.reference import parse_docker_reference
from socikit.errors import FormatError, ImageReferenceError
from socikit.oci import mediatypes as mt
from socikit.oci.descriptor import Descriptor
from socikit.oci.manifest import ImageConfig, ImageManifest
from socikit.soci.index import SociIndex

# The files of a layer directory containers/storage requires, and the one it creates on use.
DIFF = "diff"
INFO = "info"
BLOB = "blob"
USE = "use"
LAYER_FILES = (DIFF, INFO, BLOB)

# The layer annotation podman >= 5.1 and CRI-O key the lookup by.
ANNOTATION_TOC_DIGEST = mt.ANNOTATION_TOC_DIGEST

# containers/storage's compression codes (pkg/archive): 0 none, 1 bzip2, 2 gzip, 3 xz, 4 zstd.
COMPRESSION_NONE = 0
COMPRESSION_GZIP = 2
_COMPRESSION_CODES = {"gzip": COMPRESSION_GZIP, "uncompressed": COMPRESSION_NONE}

# A reference is at most a 255-character name, a 128-character tag and a digest: its encoding
# stays well under this many characters.
MAX_ENCODED_REFERENCE = 1024

_DIGEST_NAME = re.compile(r"sha256:[0-9a-f]{64}")
_ENCODED = re.compile(r"[A-Za-z0-9+]+={0,2}")


class LayerForm(enum.Enum):
    """How a layer directory is named: by the compressed layer digest (podman 4.x) or by the
    layer's TOC digest (podman >= 5.1, CRI-O >= 1.31)."""

    BLOB_DIGEST = "blob-digest"
    TOC_DIGEST = "toc-digest"


# --- where things are ---------------------------------------------------------------------------

def encode_reference(reference: str) -> str:
    """The reference as containers/storage names its directory: standard base64, padded."""
    return base64.b64encode(reference.encode("utf-8")).decode("ascii")


def layer_dir(store: Path, reference: str, digest: str) -> Path:
    """`<store>/<base64(reference)>/<digest>`: where containers/storage looks for the layer."""
    return store / encode_reference(reference) / digest


def decode_reference(encoded: str) -> str | None:
    """The image reference a base64 text names, or None when it is not the canonical encoding
    of a reference socikit can resolve (`[HOST/]REPO[:TAG][@DIGEST]`)."""
    if len(encoded) > MAX_ENCODED_REFERENCE or not _ENCODED.fullmatch(encoded):
        return None
    try:
        raw = base64.b64decode(encoded, validate=True)
        text = raw.decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    if encode_reference(text) != encoded:  # non-canonical padding bits
        return None
    try:
        parse_docker_reference(text)
    except ImageReferenceError:
        return None
    return text


# --- walking a lookup path ----------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class StoreRoot:
    """The store's top directory."""


@dataclass(frozen=True, slots=True)
class ReferenceDir:
    """A directory directly under the store root: the encoding of an image reference."""

    reference: str


@dataclass(frozen=True, slots=True)
class LayerKey:
    """A layer directory: the image reference and the digest containers/storage asked for
    (a compressed layer digest or a TOC digest: the image tells which). It exists only for a
    layer the store serves (`socikit.store.resolve.Resolver.layer`); removing it is the release
    notification."""

    reference: str
    digest: str


@dataclass(frozen=True, slots=True)
class LayerEntry:
    """One name inside a layer directory: `diff`, `info`, `blob` or `use`. `use` is never found
    (its lookup is answered ENOENT): creating it is the use notification (`usecount`)."""

    layer: LayerKey
    name: str


Node = StoreRoot | ReferenceDir | LayerKey | LayerEntry


def is_digest_name(name: str) -> bool:
    """A directory name that is a layer or TOC digest (`sha256:<64 hex>`)."""
    return _DIGEST_NAME.fullmatch(name) is not None


def lookup(parent: Node, name: str) -> Node | None:
    """What `name` inside `parent` is, or None for a name the protocol has no place for (the
    store answers ENOENT). Below a layer's `diff` the layer tree takes over: entries are leaves
    here.

    A digest directly under the store root is None: without the `:ref` suffix the store would
    not know which image to resolve."""
    if isinstance(parent, StoreRoot):
        reference = decode_reference(name)
        return ReferenceDir(reference) if reference is not None else None
    if isinstance(parent, ReferenceDir):
        return LayerKey(parent.reference, name) if is_digest_name(name) else None
    if isinstance(parent, LayerKey):
        return LayerEntry(parent, name) if name in (*LAYER_FILES, USE) else None
    return None


def parse_path(names: Sequence[str]) -> Node | None:
    """Walk `names` (a path below the store, split at `/`) from the store root."""
    node: Node | None = StoreRoot()
    for name in names:
        if node is None:
            return None
        node = lookup(node, name)
    return node


# --- which layers are served --------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class IndexedLayer:
    """A layer with a ztoc in the image's SOCI index: one the store serves.

    `descriptor` is the manifest's layer descriptor, `diff_id` the config's uncompressed digest of
    it, `ztoc` the ztoc's descriptor in the SOCI index, `compression` containers/storage's code for
    the layer's compression (`COMPRESSION_GZIP` or `COMPRESSION_NONE`)."""

    descriptor: Descriptor
    diff_id: str
    ztoc: Descriptor
    compression: int

    @property
    def digest(self) -> str:
        return self.descriptor.digest

    @property
    def toc_digest(self) -> str:
        """The TOC digest podman >= 5.1 names the layer by: the ztoc's digest."""
        return self.ztoc.digest


def indexed_layers(manifest: ImageManifest, config: ImageConfig, index: SociIndex | None) -> tuple[IndexedLayer, ...]:
    """The layers of an image the store serves, in manifest order: those the SOCI index has a
    ztoc for, gzip or uncompressed. No index: none. FormatError when the config's diff_ids do not
    match the manifest's layers one for one (the image is broken)."""
    if index is None:
        return ()
    layers = manifest.layer_list
    if len(config.diff_ids) != len(layers):
        raise FormatError(f"the image config lists {len(config.diff_ids)} diff_ids for {len(layers)} layers")
    served = []
    for layer, diff_id in zip(layers, config.diff_ids, strict=True):
        ztoc = index.ztoc_for_layer(layer.digest)
        compression = _COMPRESSION_CODES.get(mt.compression_of_layer(layer.media_type) or "")
        if ztoc is not None and compression is not None:
            served.append(IndexedLayer(layer, diff_id, ztoc, compression))
    return tuple(served)


@dataclass(frozen=True, slots=True)
class ImageLayers:
    """What the store knows of one image: the layers it serves, and every digest of the image a
    lookup may name (served or not), so that an unknown digest can be told from a known layer
    that simply has no ztoc."""

    served: tuple[IndexedLayer, ...]
    known_digests: frozenset[str]

    def find(self, digest: str) -> tuple[IndexedLayer, LayerForm] | None:
        """The served layer a lookup digest names, and in which form; None when not served."""
        for layer in self.served:
            if layer.digest == digest:
                return layer, LayerForm.BLOB_DIGEST
            if layer.toc_digest == digest:
                return layer, LayerForm.TOC_DIGEST
        return None

    def knows(self, digest: str) -> bool:
        return digest in self.known_digests


def image_layers(manifest: ImageManifest, config: ImageConfig, index: SociIndex | None) -> ImageLayers:
    """`indexed_layers` plus every layer digest and TOC digest annotation of the manifest."""
    served = indexed_layers(manifest, config, index)
    known = {layer.digest for layer in manifest.layer_list}
    known |= {layer.annotations[ANNOTATION_TOC_DIGEST] for layer in manifest.layer_list
              if ANNOTATION_TOC_DIGEST in layer.annotations}
    known |= {layer.toc_digest for layer in served}
    return ImageLayers(served, frozenset(known))


# --- the info file --------------------------------------------------------------------------------

def info_json(layer: IndexedLayer, form: LayerForm, *, diff_size: int) -> bytes:
    """The `info` file of a served layer (compact JSON; containers/storage decodes it into its
    `Layer` type and ignores other keys). `diff_size` is the uncompressed layer's length, used by
    the blob-digest form only: the TOC-digest form says -1 (unknown)."""
    document: dict[str, object]
    if form is LayerForm.BLOB_DIGEST:
        if diff_size < 0:
            raise ValueError("the blob-digest form needs the uncompressed size")
        document = {
            "compressed-diff-digest": layer.digest,
            "compressed-size": layer.descriptor.size,
            "diff-digest": layer.diff_id,
            "diff-size": diff_size,
            "compression": layer.compression,
        }
    else:
        document = {
            "diff-size": -1,
            "compression": layer.compression,
            "toc-digest": layer.toc_digest,
            "flags": {"expected-layer-diffid": layer.diff_id},
        }
    return json.dumps(document, separators=(",", ":")).encode("ascii")


# Bytes a tar writer may put after the end-of-archive marker (record padding: 10 KiB for
# Python's tarfile and GNU tar's default; Go's archive/tar writes none).
MAX_TAR_TAIL = 1 << 20


def gzip_uncompressed_size(tar_end: int, isize: int) -> int | None:
    """The uncompressed length of a gzip layer from what the store has without reading it all:
    `tar_end` (the ztoc's `uncompressed_archive_size`, where the tar's end-of-archive marker
    ends) and `isize` (the gzip trailer's last 4 bytes, little-endian: the length mod 2**32).
    None when they disagree by more than a tar's padding (a multi-member gzip, whose trailer
    covers only its last member)."""
    size = tar_end + ((isize - tar_end) % (1 << 32))
    return size if size - tar_end <= MAX_TAR_TAIL else None


__all__ = [
    "ANNOTATION_TOC_DIGEST",
    "BLOB",
    "COMPRESSION_GZIP",
    "COMPRESSION_NONE",
    "DIFF",
    "INFO",
    "LAYER_FILES",
    "MAX_TAR_TAIL",
    "USE",
    "ImageLayers",
    "IndexedLayer",
    "LayerEntry",
    "LayerForm",
    "LayerKey",
    "Node",
    "ReferenceDir",
    "StoreRoot",
    "decode_reference",
    "encode_reference",
    "gzip_uncompressed_size",
    "image_layers",
    "indexed_layers",
    "info_json",
    "is_digest_name",
    "layer_dir",
    "lookup",
    "parse_path",
]

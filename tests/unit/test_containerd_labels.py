"""The labels rpull gives containerd, as pure functions, checked against containerd's and
nerdctl's rules written out here: GC labels, chain IDs, and the unpack labels whose layer lists
are cut to fit containerd's 4096-byte key + value limit."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest

from socikit.containerd import labels as lb
from socikit.containerd.content import ref_key
from socikit.containerd.leases import expiry_label
from socikit.errors import ImageReferenceError
from socikit.oci import mediatypes as mt
from socikit.oci.descriptor import Descriptor
from socikit.pipeline.rpull import image_name, parse_registry_reference

GZIP = mt.MEDIA_TYPE_OCI_LAYER_GZIP


def layer(n: int, size: int = 100, media_type: str = GZIP) -> Descriptor:
    return Descriptor(media_type=media_type, digest="sha256:" + hashlib.sha256(str(n).encode()).hexdigest(), size=size)


def fake(digest: str, size: int = 1) -> Descriptor:
    """A layer descriptor with a digest string of any length (the label rules only count bytes)."""
    return Descriptor(media_type=GZIP, digest=digest, size=size)


# ---------------------------------------------------------------------------------------------
# cri.image-layers: containerd's getLayers


def test_image_layers_keeps_as_many_digests_as_fit_4096_bytes() -> None:
    layers = [layer(i) for i in range(80)]
    value = lb.image_layers_label(layers)
    # n digests of 71 bytes joined by commas take 72n - 1 bytes; the key counts too.
    fits = (4096 - len(lb.CRI_IMAGE_LAYERS) + 1) // 72
    assert value == ",".join(x.digest for x in layers[:fits])
    assert len(lb.CRI_IMAGE_LAYERS) + len(value) <= 4096
    assert len(lb.CRI_IMAGE_LAYERS) + len(value) + 72 > 4096


def test_image_layers_limit_is_inclusive_and_exact() -> None:
    room = 4096 - len(lb.CRI_IMAGE_LAYERS)
    first = "a" * 100
    exact = fake("b" * (room - len(first) - 1))
    assert lb.image_layers_label([fake(first), exact]) == f"{first},{exact.digest}"  # key + value == 4096
    over = fake("b" * (room - len(first)))
    assert lb.image_layers_label([fake(first), over, fake("c")]) == first  # stops at the first misfit
    assert lb.image_layers_label([fake("x" * (room + 1))]) == ""  # not even one fits


def test_image_layers_skip_entries_that_are_not_layers() -> None:
    other = Descriptor(media_type="application/vnd.example.thing", digest="sha256:" + "0" * 64, size=1)
    assert lb.image_layers_label([layer(1), other, layer(2)]) == f"{layer(1).digest},{layer(2).digest}"


def test_layer_sizes_follow_the_digest_count_and_nerdctl_trailing_comma_rule() -> None:
    layers = [layer(i, size=1000 + i) for i in range(5)]
    assert lb.image_layers_size_label(layers, 3) == "1000,1001,1002"
    room = 4096 - len(lb.IMAGE_LAYERS_SIZE)
    # "7,<s2>," is checked with its trailing comma, which is trimmed afterwards: a value that
    # would fit exactly without the comma is one byte too many.
    tight = int("9" * (room - 3))  # "7," + digits + "," == room bytes
    assert lb.image_layers_size_label([fake("a", 7), fake("b", tight)], 2) == f"7,{tight}"
    too_long = int("9" * (room - 2))  # "7," + digits == room, but with the comma room + 1
    assert lb.label_fits(lb.IMAGE_LAYERS_SIZE, f"7,{too_long}")
    assert lb.image_layers_size_label([fake("a", 7), fake("b", too_long)], 2) == "7"


def test_unpack_annotations_for_many_layers() -> None:
    layers = [layer(i, size=10 ** 6 + i) for i in range(120)]
    notes = lb.unpack_annotations(image_ref="r.example/app:1", manifest_digest="sha256:" + "f" * 64, layers=layers,
                                  soci_index_digest="")
    for i, note in enumerate(notes):
        digests = note[lb.CRI_IMAGE_LAYERS].split(",")
        sizes = note[lb.IMAGE_LAYERS_SIZE].split(",")
        assert digests == [x.digest for x in layers[i:i + len(digests)]]
        assert sizes == [str(x.size) for x in layers[i:i + len(sizes)]] and len(sizes) == len(digests)
        assert note[lb.CRI_LAYER_DIGEST] == layers[i].digest and note[lb.SOCI_SIZE] == str(layers[i].size)
        assert note[lb.SOCI_INDEX_DIGEST] == "" and note[lb.CRI_IMAGE_REF] == "r.example/app:1"
        assert all(lb.label_fits(k, v) for k, v in note.items())
    assert len(notes[0][lb.CRI_IMAGE_LAYERS].split(",")) < 120  # the first ones were cut
    assert len(notes[-1][lb.CRI_IMAGE_LAYERS].split(",")) == 1


def test_prepare_labels_inherit_only_snapshot_annotations() -> None:
    annotated = layer(1).with_changes(annotations={"containerd.io/snapshot/custom": "x", "org.example": "no",
                                                   lb.CRI_IMAGE_REF: "overridden"})
    got = lb.prepare_labels(annotated, {lb.CRI_IMAGE_REF: "r/app:1", "not/inherited": "y"}, "sha256:" + "c" * 64)
    assert got == {"containerd.io/snapshot/custom": "x", lb.CRI_IMAGE_REF: "r/app:1",
                   lb.SNAPSHOT_REF: "sha256:" + "c" * 64}


# ---------------------------------------------------------------------------------------------
# GC labels


def test_manifest_gc_labels() -> None:
    config = Descriptor(media_type=mt.MEDIA_TYPE_OCI_CONFIG, digest="sha256:" + "c" * 64, size=2)
    layers = [layer(0), layer(1), layer(2, media_type=mt.MEDIA_TYPE_DOCKER_LAYER_GZIP)]
    assert lb.children_gc_labels(lb.manifest_children(config, layers)) == {
        "containerd.io/gc.ref.content.config": config.digest,
        "containerd.io/gc.ref.content.l.0": layers[0].digest,
        "containerd.io/gc.ref.content.l.1": layers[1].digest,
        "containerd.io/gc.ref.content.l.2": layers[2].digest,
    }


def test_index_gc_labels_count_per_key() -> None:
    oci, docker = mt.MEDIA_TYPE_OCI_MANIFEST, mt.MEDIA_TYPE_DOCKER_MANIFEST
    children = [Descriptor(media_type=oci, digest="sha256:" + "1" * 64, size=1),
                Descriptor(media_type=mt.MEDIA_TYPE_OCI_INDEX, digest="sha256:" + "2" * 64, size=1),
                Descriptor(media_type=docker, digest="sha256:" + "3" * 64, size=1),
                Descriptor(media_type="application/vnd.example", digest="sha256:" + "4" * 64, size=1),
                Descriptor(media_type=mt.MEDIA_TYPE_OCI_CONFIG, digest="sha256:" + "5" * 64, size=1),
                Descriptor(media_type=mt.MEDIA_TYPE_DOCKER_CONFIG, digest="sha256:" + "6" * 64, size=1)]
    assert lb.children_gc_labels(children) == {
        "containerd.io/gc.ref.content.m.0": "sha256:" + "1" * 64,
        "containerd.io/gc.ref.content.0": "sha256:" + "2" * 64,  # an index inside an index
        "containerd.io/gc.ref.content.m.1": "sha256:" + "3" * 64,
        "containerd.io/gc.ref.content.1": "sha256:" + "4" * 64,
        "containerd.io/gc.ref.content.config": "sha256:" + "5" * 64,
        "containerd.io/gc.ref.content.config1": "sha256:" + "6" * 64,  # containerd appends the counter as is
    }


@pytest.mark.parametrize(("media_type", "is_layer"), [
    (mt.MEDIA_TYPE_OCI_LAYER, True), (mt.MEDIA_TYPE_OCI_LAYER_ZSTD, True),
    ("application/vnd.oci.image.layer.v1.tar+gzip+encrypted", True), (mt.MEDIA_TYPE_DOCKER_LAYER_GZIP, True),
    ("application/vnd.docker.image.rootfs.diff.tar.gzip+encrypted", True),
    (mt.MEDIA_TYPE_DOCKER_FOREIGN_LAYER_GZIP, True), (mt.MEDIA_TYPE_OCI_CONFIG, False),
    (mt.MEDIA_TYPE_ZTOC, False), ("application/vnd.docker.image.rootfs.diff", False),
])
def test_layer_types(media_type: str, is_layer: bool) -> None:
    assert lb.is_layer_type(media_type) is is_layer


def test_ingest_refs_name_the_kind() -> None:
    digest = "sha256:" + "e" * 64
    kinds = {mt.MEDIA_TYPE_OCI_MANIFEST: "manifest", mt.MEDIA_TYPE_DOCKER_MANIFEST_LIST: "index",
             GZIP: "layer", mt.MEDIA_TYPE_DOCKER_CONFIG: "config", mt.MEDIA_TYPE_ZTOC: "unknown"}
    for media_type, kind in kinds.items():
        assert ref_key(Descriptor(media_type=media_type, digest=digest, size=1)) == f"{kind}-{digest}"


# ---------------------------------------------------------------------------------------------
# chain IDs, names, keys


def test_chain_ids() -> None:
    a, b, c = ("sha256:" + x * 64 for x in "abc")
    ab = "sha256:" + hashlib.sha256(f"{a} {b}".encode()).hexdigest()
    abc = "sha256:" + hashlib.sha256(f"{ab} {c}".encode()).hexdigest()
    assert lb.chain_ids([a, b, c]) == [a, ab, abc]
    assert lb.chain_ids([]) == []


def test_unpack_key_and_lease_expiry() -> None:
    assert lb.unpack_key("123-abcd", "sha256:" + "a" * 64) == "extract-123-abcd sha256:" + "a" * 64
    now = dt.datetime(2026, 1, 31, 23, 0, 5, tzinfo=dt.UTC)
    assert expiry_label(now) == "2026-02-01T23:00:05Z"


@pytest.mark.parametrize(("text", "name"), [
    ("busybox", "docker.io/library/busybox:latest"),
    ("docker://127.0.0.1:5000/app", "127.0.0.1:5000/app:latest"),
    ("r.example/a/b:1", "r.example/a/b:1"),
    ("r.example/a:1@sha256:" + "d" * 64, "r.example/a@sha256:" + "d" * 64),
])
def test_image_names_as_containerd_clients_normalize_them(text: str, name: str) -> None:
    assert image_name(parse_registry_reference(text)) == name


def test_only_registry_references() -> None:
    with pytest.raises(ImageReferenceError, match="registry"):
        parse_registry_reference("oci:./layout:latest")

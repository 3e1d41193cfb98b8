"""The additional layer store's directory protocol (socikit.store.layout): lookup paths, which
layers are served, and the `info` file of both forms. The paths and the blob-digest `info` are
also checked against real podman 4.3.1 in tests/integration/test_podman_store.py; no podman >= 5.1
or CRI-O is available here, so the TOC-digest form is checked against the facts only
(docs/podman.md)."""

from __future__ import annotations

import base64
import gzip
import io
import json
import tarfile
from pathlib import Path

import pytest

from socikit.errors import FormatError
from socikit.oci import mediatypes as mt
from socikit.oci.descriptor import Descriptor
from socikit.oci.digest import sha256_digest
from socikit.oci.manifest import ImageConfig, ImageManifest
from socikit.soci.index import build_soci_index, parse_soci_index, ztoc_descriptor
from socikit.store import layout as L
from socikit.ztoc.builder import build_ztoc

DIGEST = "sha256:" + "ab" * 32
OTHER = "sha256:" + "cd" * 32


# --- paths -----------------------------------------------------------------------------------------

def test_a_reference_is_named_by_its_standard_base64(tmp_path: Path) -> None:
    ref = "127.0.0.1:5000/podman/app:v1"
    encoded = base64.standard_b64encode(ref.encode()).decode()
    assert L.encode_reference(ref) == encoded == "MTI3LjAuMC4xOjUwMDAvcG9kbWFuL2FwcDp2MQ=="
    assert L.layer_dir(tmp_path, ref, DIGEST) == Path(f"{tmp_path}/{encoded}/{DIGEST}")


@pytest.mark.parametrize("ref", ["127.0.0.1:5000/a/b:v1", "docker.io/library/alpine:latest",
                                 "registry.example/app@sha256:" + "01" * 32, "quay.io/x/y:1.0@sha256:" + "ef" * 32,
                                 "[::1]:5000/x:T_1.a-b"])
def test_walking_a_layer_path_gives_back_reference_and_digest(ref: str) -> None:
    names = [L.encode_reference(ref), DIGEST]
    assert L.parse_path(names[:1]) == L.ReferenceDir(ref)
    assert L.parse_path(names) == L.LayerKey(ref, DIGEST)
    for name in ("diff", "info", "blob", "use"):
        assert L.parse_path([*names, name]) == L.LayerEntry(L.LayerKey(ref, DIGEST), name)
    assert L.parse_path([*names, "merged"]) is None
    assert L.parse_path([*names, "diff", "etc"]) is None  # below diff: the layer tree's business


@pytest.mark.parametrize("names", [
    [DIGEST],                                  # no `:ref`: no reference to resolve
    [DIGEST, "diff"],
    ["not base64!"],
    ["YWJj=ZGVm"],                             # padding inside
    [L.encode_reference("a/b:1") + "x"],       # not a multiple of 4
    ["Pz8/"],                                  # "???" is no reference
    ["Pz8-"],
    [L.encode_reference("a/b:1"), "sha256:" + "AB" * 32],  # upper-case hex is no digest
    [L.encode_reference("a/b:1"), "sha512:" + "ab" * 64],
    [L.encode_reference("a/b:1"), "YQ==", DIGEST],  # the encoding split over two levels
])
def test_names_the_protocol_has_no_place_for(names: list[str]) -> None:
    assert L.parse_path(names) is None


def test_non_canonical_encodings_are_refused() -> None:
    good = L.encode_reference("r.example/a:12")
    assert good.endswith("=") and not good.endswith("==") and L.decode_reference(good) == "r.example/a:12"
    flipped = good[:-2] + chr(ord(good[-2]) + 1) + good[-1]  # same bytes, other padding bits
    assert base64.b64decode(flipped) == base64.b64decode(good)
    assert L.decode_reference(flipped) is None
    assert L.decode_reference("") is None
    assert L.decode_reference("QUJD" * 400) is None  # longer than any reference


def test_a_reference_encodes_to_one_directory_name() -> None:
    """base64 writes `/` or `+` only for `?`, `>`, `~`, DEL or bytes >= 0x80, none of which the
    reference grammar allows: every pair of ASCII characters at every alignment shows it."""
    special = {"?", ">", "~", chr(127)}
    for prefix in ("", "a", "ab"):
        for x in map(chr, range(128)):
            for y in map(chr, range(128)):
                encoded = L.encode_reference(prefix + x + y + "z")
                assert not ("/" in encoded or "+" in encoded) or {x, y} & special, (prefix, x, y)
    assert all({"/", "+"} & set(L.encode_reference("ab" + c)) for c in special)


# --- which layers are served ----------------------------------------------------------------------

def _tar(files: dict[str, bytes]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return raw.getvalue()


def _desc(data: bytes, media_type: str) -> Descriptor:
    return Descriptor(media_type, sha256_digest(data), len(data))


def _image(with_toc_annotation: bool = False) -> tuple[ImageManifest, ImageConfig, bytes]:
    """Four layers: gzip with a ztoc, gzip without, uncompressed with a ztoc, zstd with a
    (made-up) ztoc entry. Returns the manifest, the config and the SOCI index bytes."""
    tars = [_tar({f"f{i}": bytes([i]) * 100}) for i in range(4)]
    blobs = [gzip.compress(tars[0]), gzip.compress(tars[1]), tars[2], b"zstd-ish"]
    types = [mt.MEDIA_TYPE_OCI_LAYER_GZIP, mt.MEDIA_TYPE_DOCKER_LAYER_GZIP, mt.MEDIA_TYPE_OCI_LAYER,
             mt.MEDIA_TYPE_OCI_LAYER_ZSTD]
    layers = [_desc(b, t) for b, t in zip(blobs, types, strict=True)]
    ztocs = [ztoc_descriptor(sha256_digest(b"ztoc%d" % i), 1000 + i, layer=layers[i], span_size=65536)
             for i in (0, 2, 3)]
    if with_toc_annotation:
        layers[0] = Descriptor(layers[0].media_type, layers[0].digest, layers[0].size,
                               annotations={L.ANNOTATION_TOC_DIGEST: ztocs[0].digest})
        layers[1] = Descriptor(layers[1].media_type, layers[1].digest, layers[1].size,
                               annotations={L.ANNOTATION_TOC_DIGEST: OTHER})
    manifest = ImageManifest(2, mt.MEDIA_TYPE_OCI_MANIFEST, _desc(b"{}", mt.MEDIA_TYPE_OCI_CONFIG), tuple(layers))
    config = ImageConfig("amd64", "linux", diff_ids=tuple(sha256_digest(t) for t in tars))
    index, _ = build_soci_index(ztocs, version="v2", subject=None, build_tool_identifier="test")
    return manifest, config, index


def test_the_layers_with_a_ztoc_are_served_in_manifest_order() -> None:
    manifest, config, index = _image()
    served = L.indexed_layers(manifest, config, parse_soci_index(index))
    layers = manifest.layer_list
    assert [s.descriptor for s in served] == [layers[0], layers[2]]  # zstd has no compression code
    assert [s.diff_id for s in served] == [config.diff_ids[0], config.diff_ids[2]]
    assert [s.compression for s in served] == [L.COMPRESSION_GZIP, L.COMPRESSION_NONE]
    soci = parse_soci_index(index)
    assert [s.toc_digest for s in served] == [soci.ztocs[0].digest, soci.ztocs[1].digest]
    assert L.indexed_layers(manifest, config, None) == ()


def test_diff_ids_that_do_not_match_the_layers_are_a_broken_image() -> None:
    manifest, config, index = _image()
    short = ImageConfig("amd64", "linux", diff_ids=config.diff_ids[:3])
    with pytest.raises(FormatError, match="3 diff_ids for 4 layers"):
        L.indexed_layers(manifest, short, parse_soci_index(index))


def test_a_lookup_digest_finds_its_layer_in_either_form() -> None:
    manifest, config, index = _image(with_toc_annotation=True)
    image = L.image_layers(manifest, config, parse_soci_index(index))
    first, third = image.served
    assert image.find(first.digest) == (first, L.LayerForm.BLOB_DIGEST)
    assert image.find(first.toc_digest) == (first, L.LayerForm.TOC_DIGEST)
    assert image.find(third.toc_digest) == (third, L.LayerForm.TOC_DIGEST)
    unserved = manifest.layer_list[1].digest
    assert image.find(unserved) is None and image.knows(unserved)
    assert image.find(OTHER) is None and image.knows(OTHER)  # a TOC annotation of an unserved layer
    assert not image.knows(DIGEST)


# --- info ----------------------------------------------------------------------------------------------

def test_info_of_the_blob_digest_form() -> None:
    manifest, config, index = _image()
    first = L.indexed_layers(manifest, config, parse_soci_index(index))[0]
    info = L.info_json(first, L.LayerForm.BLOB_DIGEST, diff_size=10240)
    assert info == (
        f'{{"compressed-diff-digest":"{first.digest}","compressed-size":{first.descriptor.size},'
        f'"diff-digest":"{config.diff_ids[0]}","diff-size":10240,"compression":2}}'
    ).encode()
    with pytest.raises(ValueError):
        L.info_json(first, L.LayerForm.BLOB_DIGEST, diff_size=-1)


def test_info_of_the_toc_digest_form() -> None:
    manifest, config, index = _image()
    first, third = L.indexed_layers(manifest, config, parse_soci_index(index))
    info = L.info_json(first, L.LayerForm.TOC_DIGEST, diff_size=10240)
    assert info == (
        f'{{"diff-size":-1,"compression":2,"toc-digest":"{first.toc_digest}",'
        f'"flags":{{"expected-layer-diffid":"{config.diff_ids[0]}"}}}}'
    ).encode()
    assert json.loads(L.info_json(third, L.LayerForm.TOC_DIGEST, diff_size=0))["compression"] == 0


# --- the uncompressed size from the gzip trailer ---------------------------------------------------------

def test_uncompressed_size_from_the_ztoc_and_the_gzip_trailer() -> None:
    tar = _tar({"a": b"x" * 5000, "b": b"y" * 70000})  # Python pads the tar to a 10 KiB record
    blob = gzip.compress(tar)
    ztoc = build_ztoc(io.BytesIO(blob), span_size=65536, build_tool_identifier="test").ztoc
    assert ztoc.uncompressed_archive_size < len(tar)  # the padding is no file's
    isize = int.from_bytes(blob[-4:], "little")
    assert L.gzip_uncompressed_size(ztoc.uncompressed_archive_size, isize) == len(tar)


def test_uncompressed_size_beyond_4_gib_and_implausible_trailers() -> None:
    size = (5 << 32) + 12345
    assert L.gzip_uncompressed_size(size - 1024, size % (1 << 32)) == size
    assert L.gzip_uncompressed_size(size, size % (1 << 32)) == size
    # a multi-member gzip: the trailer counts only the last member
    assert L.gzip_uncompressed_size(1 << 30, 100) is None
    assert L.gzip_uncompressed_size(1000, 1000 + L.MAX_TAR_TAIL + 1) is None

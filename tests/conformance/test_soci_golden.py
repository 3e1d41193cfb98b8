"""The pure SOCI layer against the reference's golden vectors (expected-current/).

Everything is built from the vectors' inputs with the pure functions only: the ztocs are taken as
given (digest and size of expected-current/ztoc-*.bin) and mapped to layers as the reference's
summary records; which layers were skipped is the pipeline's decision and is taken from there too.
The SOCI indexes (v1 and v2), rewritten manifests and converted index must be byte-identical.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import pytest

from socikit.oci import mediatypes as mt
from socikit.oci.descriptor import Descriptor, Platform
from socikit.oci.manifest import ImageConfig, ImageIndex, ImageManifest
from socikit.oci.platform import matches, parse_platform
from socikit.soci.convert import BuiltSociIndex, ConvertedImage, convert_to_v2
from socikit.soci.index import build_soci_index, layer_needs_no_xattrs, parse_soci_index, ztoc_descriptor
from socikit.ztoc.serialize import loads
from tests.vectors import Vector, all_vectors, extra_vectors

# socikit's own cases too, except those with prefetch artifacts (built from the layers' TOCs, which
# the pure functions here do not read: tests/unit/test_prefetch_build.py covers them).
VECTORS = [pytest.param(v, id=v.name) for v in [*all_vectors(), *extra_vectors()]
           if not v.params.get("prefetch_files")]


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _expected(vector: Vector, prefix: str) -> dict[str, bytes]:
    """expected-current files `<prefix>-<hex>.json` by digest (the name must be the digest)."""
    out = {}
    for path in sorted((vector.path / "expected-current").glob(f"{prefix}-*.json")):
        data = path.read_bytes()
        assert path.stem.rsplit("-", 1)[1] == hashlib.sha256(data).hexdigest(), path.name
        out[_sha(data)] = data
    return out


@dataclass
class _Source:
    root: Descriptor
    root_bytes: bytes
    manifests: dict[str, bytes]
    candidates: list[tuple[Descriptor, Platform]]  # platform manifests: descriptor, platform
    root_platform: Platform | None


def _read_source(vector: Vector) -> _Source:
    layout = ImageIndex.from_json((vector.input_dir / "index.json").read_bytes())
    root = next(e for e in layout.entries if e.annotations.get(mt.ANNOTATION_REF_NAME) == "latest")
    root_bytes = vector.blob(root.digest).read_bytes()
    if root.media_type in mt.INDEX_MEDIA_TYPES:
        entries = ImageIndex.from_json(root_bytes).entries
        manifests = {e.digest: vector.blob(e.digest).read_bytes() for e in entries}
        candidates = [(e, e.platform) for e in entries if e.platform is not None]
        return _Source(root, root_bytes, manifests, candidates, None)
    config_desc = ImageManifest.from_json(root_bytes).config
    platform = ImageConfig.from_json(vector.blob(config_desc.digest).read_bytes()).platform()
    return _Source(root, root_bytes, {root.digest: root_bytes}, [(root, platform)], platform)


def _selected(vector: Vector, source: _Source) -> list[tuple[Descriptor, Platform]]:
    """(source manifest, platform to record) per requested platform, as the reference picks them."""
    wanted = vector.params["platforms"]
    if wanted == "all":
        return list(source.candidates)
    chosen = []
    for text in wanted:
        requested = parse_platform(text)
        desc = next(d for d, p in source.candidates if matches(requested, p))
        chosen.append((desc, requested))
    return chosen


def _ztoc_descriptors(vector: Vector, manifest: ImageManifest) -> list[Descriptor]:
    """The ztoc descriptors of a manifest's indexed layers, in layer order."""
    ztoc_of_layer = {}
    for entry in vector.summary["soci_index_v2"] + vector.summary["soci_index_v1"]:
        for layer in entry["layers"]:
            if "ztoc" in layer:
                ztoc_of_layer[layer["layer_digest"]] = layer["ztoc"]
    ztocs = {}
    for path in (vector.path / "expected-current").glob("ztoc-*.bin"):
        data = path.read_bytes()
        assert path.stem == "ztoc-" + hashlib.sha256(data).hexdigest()
        ztocs[_sha(data)] = data
    span_size = vector.params["span_size"]
    xattr = "xattr" in vector.params.get("optimizations", [])  # a vector built with --optimizations xattr
    return [
        ztoc_descriptor(ztoc_of_layer[layer.digest], len(ztocs[ztoc_of_layer[layer.digest]]), layer=layer,
                        span_size=span_size,
                        disable_xattrs=xattr and layer_needs_no_xattrs(loads(ztocs[ztoc_of_layer[layer.digest]])))
        for layer in manifest.layer_list
        if layer.digest in ztoc_of_layer
    ]


def _build(vector: Vector, version: str) -> tuple[_Source, dict[str, bytes], list[BuiltSociIndex]]:
    source = _read_source(vector)
    blobs: dict[str, bytes] = {}
    built = []
    for desc, platform in _selected(vector, source):
        manifest = ImageManifest.from_json(source.manifests[desc.digest])
        subject = Descriptor(desc.media_type, desc.digest, desc.size) if version == "v1" else None
        data, soci = build_soci_index(_ztoc_descriptors(vector, manifest), version=version, subject=subject,
                                      build_tool_identifier=vector.params["build_tool_id"])
        assert soci.digest == _sha(data) and soci.size == len(data)
        blobs[soci.digest] = data
        built.append(BuiltSociIndex(desc.digest, platform, soci))
    return source, blobs, built


def _convert(vector: Vector) -> tuple[ConvertedImage, list[BuiltSociIndex], _Source]:
    source, _blobs, built = _build(vector, "v2")
    converted = convert_to_v2(root=source.root, root_bytes=source.root_bytes,
                              root_platform=source.root_platform, manifests=source.manifests,
                              soci_indexes=built)
    return converted, built, source


@pytest.mark.parametrize("vector", VECTORS)
def test_soci_index_v1_is_byte_identical(vector: Vector) -> None:
    _source, blobs, _built = _build(vector, "v1")
    assert blobs == _expected(vector, "soci-index-v1")
    for data in blobs.values():
        index = parse_soci_index(data)
        assert index.version == "v1" and index.subject is not None and index.dumps() == data


@pytest.mark.parametrize("vector", VECTORS)
def test_soci_index_v2_is_byte_identical(vector: Vector) -> None:
    _source, blobs, _built = _build(vector, "v2")
    assert blobs == _expected(vector, "soci-index-v2")
    for data in blobs.values():
        index = parse_soci_index(data)
        assert index.version == "v2" and index.subject is None and index.dumps() == data


@pytest.mark.parametrize("vector", VECTORS)
def test_conversion_is_byte_identical(vector: Vector) -> None:
    converted, _built, _source = _convert(vector)
    expected_index = (vector.path / "expected-current" / "converted-index.json").read_bytes()
    assert converted.index_bytes == expected_index
    assert converted.index == Descriptor(mt.MEDIA_TYPE_OCI_INDEX, _sha(expected_index), len(expected_index))
    assert converted.manifest_bytes == _expected(vector, "manifest")
    # Every rewritten manifest and its SOCI index point at each other.
    entries = ImageIndex.from_json(converted.index_bytes).entries
    soci_entries = [e for e in entries if e.artifact_type == mt.ARTIFACT_TYPE_SOCI_INDEX_V2]
    assert soci_entries
    for soci in soci_entries:
        image_digest = soci.annotations[mt.ANNOTATION_IMAGE_MANIFEST_DIGEST]
        manifest = ImageManifest.from_json(converted.manifest_bytes[image_digest])
        assert manifest.annotations[mt.ANNOTATION_INDEX_DIGEST] == soci.digest


@pytest.mark.parametrize("vector", VECTORS)
def test_converting_the_converted_image_is_idempotent(vector: Vector) -> None:
    converted, built, _source = _convert(vector)
    new_digest = {source: desc.digest for source, desc in converted.manifest_map}
    # Rebuilding from the converted manifests gives the same SOCI indexes (same layers, same ztocs).
    rebuilt = [BuiltSociIndex(new_digest[b.manifest_digest], b.platform, b.descriptor) for b in built]
    again = convert_to_v2(root=converted.index, root_bytes=converted.index_bytes, root_platform=None,
                          manifests=converted.manifest_bytes, soci_indexes=rebuilt)
    assert again.index == converted.index
    assert again.manifest_bytes == converted.manifest_bytes


def _multi() -> Vector:
    return next(v for v in all_vectors() if v.name == "multi-platform")


def test_a_docker_manifest_list_converts_like_an_oci_index() -> None:
    vector = _multi()
    converted, built, source = _convert(vector)
    as_list = json.loads(source.root_bytes)
    as_list["mediaType"] = mt.MEDIA_TYPE_DOCKER_MANIFEST_LIST
    as_list["unknownTopLevel"] = {"dropped": True}
    for entry in as_list["manifests"]:
        entry["platform"]["features"] = ["sse4"]  # Docker-only field, not in ocispec.Platform
        entry["annotations"] = {"replaced": "by the manifest's own"}
    data = json.dumps(as_list, indent=2).encode()
    root = Descriptor(mt.MEDIA_TYPE_DOCKER_MANIFEST_LIST, _sha(data), len(data))
    result = convert_to_v2(root=root, root_bytes=data, root_platform=None, manifests=source.manifests,
                           soci_indexes=built)
    assert result.index_bytes == converted.index_bytes


def test_explicit_platforms_are_recorded_as_parsed() -> None:
    vector = _multi()
    source = _read_source(vector)
    arm64 = next(d for d, p in source.candidates if p.architecture == "arm64")
    _source, _blobs, built = _build(vector, "v2")
    soci = next(b for b in built if b.manifest_digest == arm64.digest).descriptor
    for text, recorded in (("linux/arm64", {"architecture": "arm64", "os": "linux"}),
                           ("linux/arm64/v8", {"architecture": "arm64", "os": "linux", "variant": "v8"})):
        requested = parse_platform(text)
        assert matches(requested, arm64.platform)  # type: ignore[arg-type]
        result = convert_to_v2(root=source.root, root_bytes=source.root_bytes, root_platform=None,
                               manifests=source.manifests,
                               soci_indexes=[BuiltSociIndex(arm64.digest, requested, soci)])
        entries = json.loads(result.index_bytes)["manifests"]
        assert len(entries) == 3
        # The image entry keeps its platform; the SOCI entry records the build platform.
        assert entries[1]["platform"] == {"architecture": "arm64", "os": "linux", "variant": "v8"}
        assert entries[2]["platform"] == recorded
        # The amd64 manifest is rewritten (OCI config type) but gets no SOCI annotation.
        assert "annotations" not in entries[0]


def test_manifests_that_are_not_available_are_left_alone() -> None:
    vector = _multi()
    _source, _blobs, built = _build(vector, "v2")
    source = _read_source(vector)
    amd64 = next(b for b in built if b.platform.architecture == "amd64")
    arm64_desc = next(d for d, p in source.candidates if p.architecture == "arm64")
    available = {k: v for k, v in source.manifests.items() if k != arm64_desc.digest}
    result = convert_to_v2(root=source.root, root_bytes=source.root_bytes, root_platform=None,
                           manifests=available, soci_indexes=[amd64])
    entries = ImageIndex.from_json(result.index_bytes).entries
    assert entries[1] == arm64_desc  # exactly as in the source index
    assert len(result.manifests) == 1


def test_inputs_are_what_the_vectors_say() -> None:
    # Guard the mapping the tests above rely on: every expected-current ztoc is used somewhere.
    for vector in all_vectors():
        used = set()
        source = _read_source(vector)
        for desc, _platform in _selected(vector, source):
            manifest = ImageManifest.from_json(source.manifests[desc.digest])
            used |= {d.digest for d in _ztoc_descriptors(vector, manifest)}
        files = (vector.path / "expected-current").glob("ztoc-*.bin")
        on_disk = {"sha256:" + p.stem[len("ztoc-"):] for p in files}
        assert used == on_disk, vector.name

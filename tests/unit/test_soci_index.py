"""SOCI index building/parsing and the pure v2 conversion, on small hand-made images."""

from __future__ import annotations

import hashlib
import json

import pytest

from socikit.errors import FormatError, ImageError
from socikit.oci import mediatypes as mt
from socikit.oci.descriptor import Descriptor, Platform
from socikit.oci.digest import sha256_digest
from socikit.oci.manifest import ImageIndex, ImageManifest
from socikit.oci.platform import parse_platform
from socikit.soci.convert import BuiltSociIndex, convert_to_v2, rewrite_manifest
from socikit.soci.index import (
    EMPTY_INDEX_MESSAGE,
    EmptySociIndexError,
    build_soci_index,
    is_canonical_soci_index,
    parse_soci_index,
    ztoc_descriptor,
)

TOOL = "AWS SOCI CLI v0.2"
LAYER_A = Descriptor(mt.MEDIA_TYPE_OCI_LAYER_GZIP, "sha256:" + "a" * 64, 1000)
LAYER_B = Descriptor(mt.MEDIA_TYPE_DOCKER_LAYER, "sha256:" + "b" * 64, 2000)
ZTOC_A = "sha256:" + "c" * 64
ZTOC_B = "sha256:" + "d" * 64
SUBJECT = Descriptor(mt.MEDIA_TYPE_DOCKER_MANIFEST, "sha256:" + "e" * 64, 321,
                     annotations={"x": "y"}, platform=Platform("amd64", "linux"), artifact_type="t")
AMD64 = Platform("amd64", "linux")
ARM64_V8 = Platform("arm64", "linux", variant="v8")


def _ztocs() -> list[Descriptor]:
    return [
        ztoc_descriptor(ZTOC_A, 111, layer=LAYER_A, span_size=4194304),
        ztoc_descriptor(ZTOC_B, 222, layer=LAYER_B, span_size=4194304, disable_xattrs=True),
    ]


# ---------------------------------------------------------------------------------- index


def test_ztoc_descriptor() -> None:
    assert _ztocs()[1].to_json() == {
        "mediaType": "application/octet-stream",
        "digest": ZTOC_B,
        "size": 222,
        "annotations": {
            "com.amazon.soci.disable-xattrs": "true",
            "com.amazon.soci.image-layer-digest": LAYER_B.digest,
            "com.amazon.soci.image-layer-mediaType": mt.MEDIA_TYPE_DOCKER_LAYER,
            "com.amazon.soci.span-size": "4194304",
        },
    }
    assert list(_ztocs()[0].to_json()["annotations"]) == [
        "com.amazon.soci.image-layer-digest",
        "com.amazon.soci.image-layer-mediaType",
        "com.amazon.soci.span-size",
    ]


def _ztoc_json(digest: str, size: int, layer: Descriptor, xattrs: bool = False) -> str:
    disable = '"com.amazon.soci.disable-xattrs":"true",' if xattrs else ""
    return (
        f'{{"mediaType":"application/octet-stream","digest":"{digest}","size":{size},"annotations":{{{disable}'
        f'"com.amazon.soci.image-layer-digest":"{layer.digest}",'
        f'"com.amazon.soci.image-layer-mediaType":"{layer.media_type}","com.amazon.soci.span-size":"4194304"}}}}'
    )


def test_build_v1_exact_bytes() -> None:
    data, desc = build_soci_index(_ztocs(), version="v1", subject=SUBJECT, build_tool_identifier=TOOL)
    expected = (
        '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",'
        '"config":{"mediaType":"application/vnd.amazon.soci.index.v1+json",'
        '"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},'
        f'"layers":[{_ztoc_json(ZTOC_A, 111, LAYER_A)},{_ztoc_json(ZTOC_B, 222, LAYER_B, xattrs=True)}],'
        # The subject keeps only media type, digest and size of the descriptor given.
        f'"subject":{{"mediaType":"{mt.MEDIA_TYPE_DOCKER_MANIFEST}","digest":"{SUBJECT.digest}","size":321}},'
        '"annotations":{"com.amazon.soci.build-tool-identifier":"AWS SOCI CLI v0.2"}}'
    ).encode()
    assert data == expected
    assert desc == Descriptor(mt.MEDIA_TYPE_OCI_MANIFEST, "sha256:" + hashlib.sha256(expected).hexdigest(),
                              len(expected), artifact_type=mt.ARTIFACT_TYPE_SOCI_INDEX_V1)


def test_build_v2_has_no_subject_and_no_top_level_artifact_type() -> None:
    data, desc = build_soci_index(_ztocs()[:1], version="v2", subject=None, build_tool_identifier=TOOL)
    assert data == (
        '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",'
        '"config":{"mediaType":"application/vnd.amazon.soci.index.v2+json",'
        '"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},'
        f'"layers":[{_ztoc_json(ZTOC_A, 111, LAYER_A)}],'
        '"annotations":{"com.amazon.soci.build-tool-identifier":"AWS SOCI CLI v0.2"}}'
    ).encode()
    assert desc.artifact_type == mt.ARTIFACT_TYPE_SOCI_INDEX_V2
    assert desc.to_json() == {"mediaType": mt.MEDIA_TYPE_OCI_MANIFEST, "digest": sha256_digest(data),
                              "size": len(data), "artifactType": mt.ARTIFACT_TYPE_SOCI_INDEX_V2}


def test_build_tool_identifier_is_go_escaped() -> None:
    data, _ = build_soci_index(_ztocs(), version="v2", subject=None, build_tool_identifier="t <1> & \u2028")
    assert data.endswith(b'{"com.amazon.soci.build-tool-identifier":"t \\u003c1\\u003e \\u0026 \\u2028"}}')


def test_build_errors() -> None:
    with pytest.raises(EmptySociIndexError) as info:
        build_soci_index([], version="v2", subject=None, build_tool_identifier=TOOL)
    assert str(info.value) == EMPTY_INDEX_MESSAGE
    assert EMPTY_INDEX_MESSAGE == "no ztocs created, all layers either skipped or produced errors"
    assert isinstance(info.value, ImageError)
    with pytest.raises(ValueError, match="needs the image manifest"):
        build_soci_index(_ztocs(), version="v1", subject=None, build_tool_identifier=TOOL)
    with pytest.raises(ValueError, match="no subject"):
        build_soci_index(_ztocs(), version="v2", subject=SUBJECT, build_tool_identifier=TOOL)
    with pytest.raises(ValueError, match="unknown SOCI index version"):
        build_soci_index(_ztocs(), version="v3", subject=None, build_tool_identifier=TOOL)


def test_parse_soci_index() -> None:
    prefetch = Descriptor(mt.MEDIA_TYPE_SOCI_PREFETCH, "sha256:" + "f" * 64, 9,
                          annotations={mt.ANNOTATION_IMAGE_LAYER_DIGEST: LAYER_A.digest})
    v1, _ = build_soci_index([*_ztocs(), prefetch], version="v1", subject=SUBJECT, build_tool_identifier=TOOL)
    index = parse_soci_index(v1)
    assert (index.version, index.artifact_type) == ("v1", mt.ARTIFACT_TYPE_SOCI_INDEX_V1)
    assert index.build_tool_identifier == TOOL
    assert index.subject is not None and index.subject.digest == SUBJECT.digest
    assert [d.digest for d in index.ztocs] == [ZTOC_A, ZTOC_B]  # the prefetch descriptor is not a ztoc
    assert index.ztoc_for_layer(LAYER_B.digest) == _ztocs()[1]
    assert index.ztoc_for_layer("sha256:" + "0" * 64) is None
    assert index.dumps() == v1

    v2, _ = build_soci_index(_ztocs(), version="v2", subject=None, build_tool_identifier=TOOL)
    assert parse_soci_index(v2).version == "v2" and parse_soci_index(v2).subject is None
    with pytest.raises(FormatError, match="not a SOCI index"):
        parse_soci_index(json.dumps({"schemaVersion": 2, "config": {"mediaType": mt.MEDIA_TYPE_OCI_CONFIG,
                                                                    "digest": "x", "size": 1}}).encode())
    with pytest.raises(FormatError):
        parse_soci_index(b"not json")


def test_canonical_form_is_what_the_snapshotter_accepts() -> None:
    data, _ = build_soci_index(_ztocs(), version="v2", subject=None, build_tool_identifier="a<b")
    assert is_canonical_soci_index(data)
    obj = json.loads(data)
    assert not is_canonical_soci_index(json.dumps(obj, indent=1).encode())  # whitespace
    unescaped = json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()
    assert not is_canonical_soci_index(unescaped)  # "<" not written as \u003c
    with_type = dict(obj, artifactType=mt.ARTIFACT_TYPE_SOCI_INDEX_V2)
    assert not is_canonical_soci_index(json.dumps(with_type, separators=(",", ":")).encode())
    unsorted = data.replace(b'"com.amazon.soci.image-layer-digest"', b'"zz"', 1)
    assert not is_canonical_soci_index(unsorted)
    assert not is_canonical_soci_index(b"{}")


# ---------------------------------------------------------------------------------- convert


def _blob(obj: object) -> tuple[bytes, str]:
    data = json.dumps(obj, separators=(",", ":")).encode()
    return data, sha256_digest(data)


def _image_manifest(media_type: str, config_type: str, layer: Descriptor,
                    **extra: object) -> dict[str, object]:
    return {"schemaVersion": 2, "mediaType": media_type,
            "config": {"mediaType": config_type, "size": 10, "digest": "sha256:" + "9" * 64},
            "layers": [layer.to_json()], **extra}


def _soci(tag: str) -> Descriptor:
    data = tag.encode()
    return Descriptor(mt.MEDIA_TYPE_OCI_MANIFEST, sha256_digest(data), len(data),
                      artifact_type=mt.ARTIFACT_TYPE_SOCI_INDEX_V2)


class _Image:
    """A multi-platform image: amd64 (Docker types), arm64/v8 (OCI, own annotations), an
    attestation manifest, a platform whose manifest is absent, and a nested index."""

    def __init__(self) -> None:
        oci = (mt.MEDIA_TYPE_OCI_MANIFEST, mt.MEDIA_TYPE_OCI_CONFIG)
        docker = (mt.MEDIA_TYPE_DOCKER_MANIFEST, mt.MEDIA_TYPE_DOCKER_CONFIG)
        self.amd64, self.amd64_digest = _blob(_image_manifest(*docker, LAYER_B))
        arm64 = _image_manifest(*oci, LAYER_A, annotations={"org.example": "<arm>"})
        self.arm64, self.arm64_digest = _blob(arm64)
        self.attest, self.attest_digest = _blob(_image_manifest(*oci, LAYER_A, unknown="dropped"))
        self.absent = "sha256:" + "7" * 64
        self.nested = "sha256:" + "6" * 64
        self.root, self.root_digest = _blob({
            "schemaVersion": 2,
            "mediaType": mt.MEDIA_TYPE_DOCKER_MANIFEST_LIST,
            "manifests": [
                {"mediaType": mt.MEDIA_TYPE_DOCKER_MANIFEST, "digest": self.amd64_digest,
                 "size": len(self.amd64), "annotations": {"descriptor": "only"},
                 "platform": {"architecture": "amd64", "os": "linux"}},
                {"mediaType": mt.MEDIA_TYPE_OCI_MANIFEST, "digest": self.arm64_digest,
                 "size": len(self.arm64),
                 "platform": {"architecture": "arm64", "os": "linux", "variant": "v8", "features": ["x"]}},
                {"mediaType": mt.MEDIA_TYPE_OCI_MANIFEST, "digest": self.attest_digest,
                 "size": len(self.attest),
                 "annotations": {"vnd.docker.reference.digest": self.amd64_digest},
                 "platform": {"architecture": "unknown", "os": "unknown"}},
                {"mediaType": mt.MEDIA_TYPE_DOCKER_MANIFEST, "digest": self.absent, "size": 5,
                 "platform": {"architecture": "s390x", "os": "linux"}},
                {"mediaType": mt.MEDIA_TYPE_OCI_INDEX, "digest": self.nested, "size": 6},
            ],
            "annotations": {"top": "kept"},
            "extra": True,
        })
        self.root_desc = Descriptor(mt.MEDIA_TYPE_DOCKER_MANIFEST_LIST, self.root_digest, len(self.root))
        self.manifests = {self.amd64_digest: self.amd64, self.arm64_digest: self.arm64,
                          self.attest_digest: self.attest}


def test_rewrite_manifest() -> None:
    image = _Image()
    out = json.loads(rewrite_manifest(image.amd64, "sha256:" + "5" * 64))
    assert out["mediaType"] == mt.MEDIA_TYPE_OCI_MANIFEST
    assert out["config"]["mediaType"] == mt.MEDIA_TYPE_OCI_CONFIG
    assert out["layers"][0]["mediaType"] == mt.MEDIA_TYPE_DOCKER_LAYER  # layers keep their types
    assert out["annotations"] == {mt.ANNOTATION_INDEX_DIGEST: "sha256:" + "5" * 64}
    assert "annotations" not in json.loads(rewrite_manifest(image.amd64, None))


def test_convert_an_index() -> None:
    image = _Image()
    soci = _soci("amd64 index")
    built = BuiltSociIndex(image.amd64_digest, parse_platform("linux/amd64"), soci)
    result = convert_to_v2(root=image.root_desc, root_bytes=image.root, root_platform=None,
                           manifests=image.manifests, soci_indexes=[built])
    index = json.loads(result.index_bytes)
    assert result.index == Descriptor(mt.MEDIA_TYPE_OCI_INDEX, sha256_digest(result.index_bytes),
                                      len(result.index_bytes))
    assert index["mediaType"] == mt.MEDIA_TYPE_OCI_INDEX  # forced, even from a manifest list
    assert index["annotations"] == {"top": "kept"} and "extra" not in index
    amd64, arm64, attest, absent, nested, soci_entry = index["manifests"]
    rewritten = result.manifest_bytes

    # amd64: rewritten, points at its SOCI index; the descriptor's own annotations are gone.
    assert amd64 == {"mediaType": mt.MEDIA_TYPE_OCI_MANIFEST, "digest": amd64["digest"],
                     "size": len(rewritten[amd64["digest"]]),
                     "annotations": {mt.ANNOTATION_INDEX_DIGEST: soci.digest},
                     "platform": {"architecture": "amd64", "os": "linux"}}
    assert rewritten[amd64["digest"]] == rewrite_manifest(image.amd64, soci.digest)
    # arm64: rewritten without a SOCI index; the entry takes the manifest's annotations.
    assert arm64["annotations"] == {"org.example": "<arm>"}
    assert arm64["platform"] == {"architecture": "arm64", "os": "linux", "variant": "v8"}
    assert rewritten[arm64["digest"]] == ImageManifest.from_json(image.arm64).dumps()
    # attestation: re-serialized (unknown field dropped), descriptor annotations lost.
    assert "annotations" not in attest and attest["digest"] != image.attest_digest
    assert b"unknown" not in rewritten[attest["digest"]]
    # absent manifest and nested index: untouched.
    assert absent == {"mediaType": mt.MEDIA_TYPE_DOCKER_MANIFEST, "digest": image.absent, "size": 5,
                      "platform": {"architecture": "s390x", "os": "linux"}}
    assert nested == {"mediaType": mt.MEDIA_TYPE_OCI_INDEX, "digest": image.nested, "size": 6}
    # The SOCI entry comes last.
    assert soci_entry == {"mediaType": mt.MEDIA_TYPE_OCI_MANIFEST, "digest": soci.digest, "size": soci.size,
                          "annotations": {mt.ANNOTATION_IMAGE_MANIFEST_DIGEST: amd64["digest"]},
                          "platform": {"architecture": "amd64", "os": "linux"},
                          "artifactType": mt.ARTIFACT_TYPE_SOCI_INDEX_V2}
    assert [d.digest for d, _ in result.manifests] == [amd64["digest"], arm64["digest"], attest["digest"]]
    assert dict(result.manifest_map)[image.amd64_digest].digest == amd64["digest"]


def test_convert_is_idempotent_and_replaces_by_platform() -> None:
    image = _Image()
    socis = [(image.amd64_digest, AMD64, _soci("amd64")), (image.arm64_digest, ARM64_V8, _soci("arm64"))]
    first = convert_to_v2(root=image.root_desc, root_bytes=image.root, root_platform=None,
                          manifests=image.manifests, soci_indexes=[BuiltSociIndex(*s) for s in socis])
    new = dict(first.manifest_map)

    # Converting the converted image with the same SOCI indexes changes nothing.
    again_socis = [BuiltSociIndex(new[m].digest, p, d) for m, p, d in socis]
    second = convert_to_v2(root=first.index, root_bytes=first.index_bytes, root_platform=None,
                           manifests=first.manifest_bytes, soci_indexes=again_socis)
    assert second.index_bytes == first.index_bytes

    # A new arm64 index (requested as plain linux/arm64) replaces the arm64/v8 entry in place;
    # the amd64 SOCI entry is kept as it is.
    replacement = _soci("arm64 again")
    third = convert_to_v2(root=first.index, root_bytes=first.index_bytes, root_platform=None,
                          manifests=first.manifest_bytes,
                          soci_indexes=[BuiltSociIndex(new[image.arm64_digest].digest,
                                                       parse_platform("linux/arm64"), replacement)])
    before = json.loads(first.index_bytes)["manifests"]
    after = json.loads(third.index_bytes)["manifests"]
    assert len(after) == len(before)
    assert after[-2] == before[-2]  # amd64 SOCI entry untouched
    assert after[-1]["digest"] == replacement.digest
    assert after[-1]["platform"] == {"architecture": "arm64", "os": "linux"}
    arm64_entry = after[1]
    assert arm64_entry["annotations"][mt.ANNOTATION_INDEX_DIGEST] == replacement.digest
    assert after[-1]["annotations"] == {mt.ANNOTATION_IMAGE_MANIFEST_DIGEST: arm64_entry["digest"]}


def test_convert_a_single_manifest() -> None:
    image = _Image()
    root = Descriptor(mt.MEDIA_TYPE_DOCKER_MANIFEST, image.amd64_digest, len(image.amd64),
                      annotations={mt.ANNOTATION_REF_NAME: "latest"})
    soci = _soci("single")
    # The tuple form the pipeline uses: (source manifest descriptor, platform, SOCI descriptor).
    result = convert_to_v2(root=root, root_bytes=image.amd64, root_platform=AMD64, manifests={},
                           soci_indexes=[(root, AMD64, soci)])
    index = ImageIndex.from_json(result.index_bytes)
    assert index.media_type == mt.MEDIA_TYPE_OCI_INDEX and index.schema_version == 2
    image_entry, soci_entry = index.entries
    assert image_entry.media_type == mt.MEDIA_TYPE_OCI_MANIFEST
    assert image_entry.platform == AMD64
    assert image_entry.annotations == {mt.ANNOTATION_INDEX_DIGEST: soci.digest}  # ref.name replaced
    assert soci_entry.annotations == {mt.ANNOTATION_IMAGE_MANIFEST_DIGEST: image_entry.digest}
    assert result.index_bytes.startswith(
        b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[')
    with pytest.raises(ValueError, match="needs its platform"):
        convert_to_v2(root=root, root_bytes=image.amd64, root_platform=None, manifests={}, soci_indexes=[])


def test_convert_errors() -> None:
    image = _Image()
    with pytest.raises(ImageError, match="was indexed but is not available"):
        convert_to_v2(root=image.root_desc, root_bytes=image.root, root_platform=None,
                      manifests=image.manifests,
                      soci_indexes=[BuiltSociIndex(image.absent, Platform("s390x", "linux"), _soci("x"))])
    bad_root = Descriptor("application/octet-stream", image.root_digest, len(image.root))
    with pytest.raises(ImageError, match="neither an image manifest nor an index"):
        convert_to_v2(root=bad_root, root_bytes=image.root, root_platform=None, manifests={}, soci_indexes=[])
    # An "index" whose bytes are a manifest is refused, as containerd refuses it.
    wrong = Descriptor(mt.MEDIA_TYPE_OCI_INDEX, image.amd64_digest, len(image.amd64))
    with pytest.raises(FormatError, match="expected an index"):
        convert_to_v2(root=wrong, root_bytes=image.amd64, root_platform=None, manifests={}, soci_indexes=[])

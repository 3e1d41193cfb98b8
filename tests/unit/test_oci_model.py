"""The pure OCI model: containerd platform semantics and Go-faithful manifest/index JSON."""

from __future__ import annotations

import json

import pytest

from socikit.errors import FormatError, ImageError
from socikit.oci import mediatypes as mt
from socikit.oci import platform as platform_module
from socikit.oci.descriptor import Platform
from socikit.oci.manifest import ImageConfig, ImageIndex, ImageManifest, validate_media_type
from socikit.oci.platform import (
    dedupe_platforms,
    format_platform,
    host_platform,
    matches,
    normalize,
    parse_platform,
)
from tests.vectors import all_vectors

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64


def P(arch: str, os: str = "linux", variant: str = "", **kw: object) -> Platform:
    return Platform(architecture=arch, os=os, variant=variant, **kw)  # type: ignore[arg-type]


def WIN(version: str) -> Platform:
    return Platform(architecture="amd64", os="windows", os_version=version)


# ---------------------------------------------------------------------------------- platforms


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("linux/amd64", P("amd64")),
        ("linux/x86_64", P("amd64")),
        ("linux/x86-64", P("amd64")),
        ("Linux/AMD64", P("amd64")),
        ("linux/amd64/v1", P("amd64")),
        ("linux/amd64/v3", P("amd64", variant="v3")),
        ("linux/i386", P("386")),
        ("linux/aarch64", P("arm64")),
        ("linux/arm64", P("arm64")),
        # Three parts: the v8 is kept (Parse re-adds it after normalizing it away).
        ("linux/arm64/v8", P("arm64", variant="v8")),
        ("linux/arm64/8", P("arm64", variant="v8")),
        ("linux/aarch64/v8.0", P("arm64", variant="v8")),
        ("linux/arm64/v9.0", P("arm64", variant="v9")),
        # Two parts: the implied v7 of 32-bit arm is dropped, other variants kept.
        ("linux/arm", P("arm")),
        ("linux/armhf", P("arm")),
        ("linux/armel", P("arm", variant="v6")),
        ("linux/arm/7", P("arm", variant="v7")),
        ("linux/arm/v5", P("arm", variant="v5")),
        ("macos/arm64", P("arm64", os="darwin")),
        ("windows(10.0.17763)/amd64", P("amd64", os="windows", os_version="10.0.17763")),
        ("windows(10.0.17763+win32k+b)/amd64",
         P("amd64", os="windows", os_version="10.0.17763", os_features=("win32k", "b"))),
        ("linux(1%2B2)/amd64", P("amd64", os_version="1+2")),
    ],
)
def test_parse_platform_like_containerd(text: str, expected: Platform) -> None:
    assert parse_platform(text) == expected


def test_parse_single_word_fills_in_the_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(platform_module._host, "machine", lambda: "aarch64")
    assert parse_platform("linux") == P("arm64")  # only 32-bit arm hosts add their variant
    assert parse_platform("s390x") == P("s390x")
    assert parse_platform("armhf") == P("arm")


@pytest.mark.parametrize(
    "text",
    ["", "linux/", "linux//v8", "/amd64", "linux/*", "linux/amd64/v8/extra", "notanos", "linux/am d64",
     "linux(%zz)/amd64", "li.nux/amd64"],
)
def test_parse_platform_rejects(text: str) -> None:
    with pytest.raises(ImageError, match="invalid platform"):
        parse_platform(text)


def test_normalize() -> None:
    assert normalize(P("aarch64", os="Linux", variant="v8")) == P("arm64")
    assert normalize(P("arm64", variant="8")) == P("arm64")
    assert normalize(P("arm")) == P("arm", variant="v7")
    assert normalize(P("arm", variant="6")) == P("arm", variant="v6")
    assert normalize(P("x86_64", variant="v1")) == P("amd64")
    assert normalize(P("amd64", os="MacOS")) == P("amd64", os="darwin")
    assert normalize(P("amd64", os_features=("b", "a", "b"))).os_features == ("a", "b")
    assert normalize(P("amd64", os="")).os == platform_module._host_os()
    # The OS version is not touched.
    assert normalize(P("amd64", os="windows", os_version="10.0.X")).os_version == "10.0.X"


def test_host_platform(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(platform_module._host, "machine", lambda: "aarch64")
    assert host_platform() == P("arm64", variant="v8")  # DefaultSpec: arm64 hosts say v8
    monkeypatch.setattr(platform_module._host, "machine", lambda: "x86_64")
    assert host_platform() == P("amd64")
    monkeypatch.setattr(platform_module._host, "machine", lambda: "armv7l")
    assert host_platform() == P("arm", variant="v7")


def test_format_platform() -> None:
    assert format_platform(P("amd64")) == "linux/amd64"
    assert format_platform(P("arm64", variant="v8")) == "linux/arm64/v8"
    assert format_platform(P("", os="linux")) == "linux"
    assert format_platform(P("amd64", os="")) == "unknown"
    assert format_platform(parse_platform("windows(10.0.17763)/amd64")) == "windows/amd64"


@pytest.mark.parametrize(
    ("requested", "candidate", "expected"),
    [
        (P("arm64"), P("arm64", variant="v8"), True),
        (P("arm64", variant="v8"), P("arm64"), True),
        (P("arm64", variant="v8"), P("aarch64"), True),
        (P("arm64"), P("arm64", variant="v9"), False),
        (P("amd64"), P("amd64", variant="v3"), False),  # strict: no sub-platforms
        (P("amd64", variant="v3"), P("amd64"), False),
        (P("amd64"), P("386"), False),
        (P("arm"), P("arm", variant="v7"), True),  # bare arm means v7
        (P("arm"), P("arm", variant="v6"), False),
        (P("amd64"), P("amd64", os="windows"), False),
        (P("amd64"), P("x86_64", os="Linux"), True),
        # The candidate's OS features must be a subset of the requested ones.
        (P("amd64", os_features=("a", "b")), P("amd64", os_features=("b",)), True),
        (P("amd64", os_features=("a",)), P("amd64", os_features=("c",)), False),
        (P("amd64"), P("amd64", os_features=("a",)), False),
        (P("amd64", os_features=("a",)), P("amd64"), True),
        # Windows: OS versions must be compatible; win32k is ignored on the candidate.
        (WIN("10.0.17763"), WIN("10.0.17763.5"), True),
        (WIN("10.0.17763"), WIN("10.0.20348.1"), False),  # before ltsc2022: same build only
        (WIN("10.0.26100"), WIN("10.0.20348.1"), True),  # ltsc2025 hosts run ltsc2022 images
        (WIN("10.0.26100"), WIN("10.0.17763"), False),
        (WIN(""), WIN("10.0.17763"), True),
        (WIN(""), P("amd64", os="windows", os_features=("win32k",)), True),
        (P("amd64"), P("amd64", os_features=("win32k",)), False),
    ],
)
def test_matches_like_containerd_only_strict(requested: Platform, candidate: Platform,
                                             expected: bool) -> None:
    assert matches(requested, candidate) is expected


def test_dedupe_platforms_keeps_the_first_spelling() -> None:
    ps = [P("arm64"), P("amd64"), P("arm64", variant="v8"), P("aarch64"), P("amd64", variant="v2")]
    assert dedupe_platforms(ps) == [P("arm64"), P("amd64"), P("amd64", variant="v2")]


# ---------------------------------------------------------------------------------- JSON model


def _manifest(**extra: object) -> dict[str, object]:
    base: dict[str, object] = {
        "schemaVersion": 2,
        "mediaType": mt.MEDIA_TYPE_OCI_MANIFEST,
        "config": {"mediaType": mt.MEDIA_TYPE_OCI_CONFIG, "digest": D1, "size": 2},
        "layers": [{"mediaType": mt.MEDIA_TYPE_OCI_LAYER_GZIP, "digest": D2, "size": 3}],
    }
    base.update(extra)
    return base


def _roundtrip(obj: object) -> bytes:
    return ImageManifest.from_json(json.dumps(obj).encode()).dumps()


def test_manifest_writes_go_struct_order() -> None:
    # Keys given in a scrambled order come out in Go struct order, annotations sorted.
    text = (
        '{"annotations":{"z":"1","a":"2"},"layers":[{"size":3,"digest":"D2","mediaType":"l"}],'
        '"subject":{"size":1,"digest":"D1","mediaType":"m"},"config":{"size":2,"digest":"D1","mediaType":"c"},'
        '"artifactType":"t","mediaType":"M","schemaVersion":2}'
    )
    expected = (
        '{"schemaVersion":2,"mediaType":"M","artifactType":"t","config":{"mediaType":"c","digest":"D1","size":2},'
        '"layers":[{"mediaType":"l","digest":"D2","size":3}],"subject":{"mediaType":"m","digest":"D1","size":1},'
        '"annotations":{"a":"2","z":"1"}}'
    )
    assert ImageManifest.from_json(text.encode()).dumps() == expected.encode()


def test_unknown_fields_are_dropped_everywhere() -> None:
    obj = _manifest(extra=1, config={"mediaType": "c", "digest": D1, "size": 2, "x": [1, {"y": 2}]})
    obj["layers"] = [{"mediaType": "l", "digest": D2, "size": 3, "platform": {"os": "linux", "architecture":
                      "amd64", "features": ["sse4"]}, "whatever": None}]
    out = json.loads(_roundtrip(obj))
    assert "extra" not in out and "x" not in out["config"] and "whatever" not in out["layers"][0]
    assert out["layers"][0]["platform"] == {"architecture": "amd64", "os": "linux"}


def test_keys_match_fields_case_insensitively() -> None:
    text = (b'{"SCHEMAVERSION":2,"MediaType":"m",'
            b'"config":{"DIGEST":"d","Size":1,"mediatype":"c"},"Layers":null}')
    assert ImageManifest.from_json(text).dumps() == (
        b'{"schemaVersion":2,"mediaType":"m","config":{"mediaType":"c","digest":"d","size":1},"layers":null}'
    )
    # U+017F (long s) folds to "s" in Go, so it names the size field.
    assert ImageManifest.from_json('{"config":{"\u017fize":7}}'.encode()).config.size == 7
    # Both spellings name the same field, so the later one wins.
    assert ImageManifest.from_json(b'{"mediaType":"a","MEDIATYPE":"b"}').media_type == "b"


def test_repeated_keys_update_like_go() -> None:
    text = (b'{"annotations":{"a":"1"},"annotations":{"b":"2"},'
            b'"config":{"digest":"d"},"config":{"size":5},"mediaType":"x","mediaType":null}')
    m = ImageManifest.from_json(text)
    assert m.annotations == {"a": "1", "b": "2"}  # maps merge
    assert (m.config.digest, m.config.size) == ("d", 5)  # structs merge
    assert m.media_type == "x"  # null leaves a string alone


def test_nulls_and_empties() -> None:
    assert b'"layers":null' in _roundtrip(_manifest(layers=None))
    assert b'"layers":[]' in _roundtrip(_manifest(layers=[]))
    out = _roundtrip(_manifest(annotations={}, mediaType=None, artifactType="", subject=None))
    assert b"annotations" not in out and b"mediaType\":\"application/vnd.oci.image.manifest" not in out
    assert b"subject" not in out and b"artifactType" not in out
    # A null annotation value is the empty string in a Go map.
    with_null = json.dumps(_manifest(annotations={"k": None})).encode()
    assert ImageManifest.from_json(with_null).annotations == {"k": ""}
    # A missing config is Go's zero descriptor, not an error.
    assert ImageManifest.from_json(b'{"schemaVersion":2}').dumps() == (
        b'{"schemaVersion":2,"config":{"mediaType":"","digest":"","size":0},"layers":null}'
    )


def test_descriptor_optional_fields() -> None:
    layer = {"mediaType": "l", "digest": D2, "size": 3, "urls": ["https://x/<y>"],
             "annotations": {"b": "1", "a": "2"},
             "data": "QR==", "platform": {"os": "linux", "architecture": "arm64", "variant": "v8",
                                          "os.features": ["f"], "os.version": "1"}, "artifactType": "t"}
    out = _roundtrip(_manifest(layers=[layer]))
    assert (
        b'"layers":[{"mediaType":"l","digest":"%s","size":3,"urls":["https://x/\\u003cy\\u003e"],'
        b'"annotations":{"a":"2","b":"1"},"data":"QQ==","platform":{"architecture":"arm64","os":"linux",'
        b'"os.version":"1","os.features":["f"],"variant":"v8"},"artifactType":"t"}]' % D2.encode()
    ) in out
    assert b'"data"' not in _roundtrip(_manifest(layers=[{"digest": D2, "size": 1, "data": ""}]))
    assert b'"urls"' not in _roundtrip(_manifest(layers=[{"digest": D2, "size": 1, "urls": []}]))


def test_go_string_escaping_and_replacement() -> None:
    text = '{"annotations":{"t":"a <b> & c \u2028 \u2029 é \\ud800"}}'.encode()
    out = ImageManifest.from_json(text).dumps()
    expected = '"annotations":{"t":"a \\u003cb\\u003e \\u0026 c \\u2028 \\u2029 é \ufffd"}}'
    assert out.endswith(expected.encode())
    # Invalid UTF-8 inside a string: one U+FFFD per bad byte, as Go does.
    raw = b'{"annotations":{"t":"x\xe2\x82y\xff"}}'
    assert ImageManifest.from_json(raw).annotations == {"t": "x\ufffd\ufffdy\ufffd"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b"{", "not valid JSON"),
        (b"[1]", "not a JSON object"),
        (b"null", "not a JSON object"),
        (b'{"schemaVersion":NaN}', "not valid JSON"),
        (b'{"schemaVersion":true}', "schemaVersion must be an integer"),
        (b'{"schemaVersion":2.0}', "schemaVersion must be an integer"),
        (b'{"config":{"size":"12"}}', "config.size must be an integer"),
        (b'{"config":{"size":9223372036854775808}}', "does not fit in 64 bits"),
        (b'{"config":[]}', "config must be an object"),
        (b'{"layers":{}}', "layers must be an array"),
        (b'{"layers":[{"digest":5}]}', r"layers\[0\].digest must be a string"),
        (b'{"annotations":{"a":1}}', "must be a string"),
        (b'{"annotations":[]}', "annotations must be an object"),
        (b'{"config":{"data":"@@"}}', "not valid base64"),
        (b'{"config":{"platform":"linux"}}', "platform must be an object"),
        (b'\xef\xbb\xbf{}', "not valid JSON"),
    ],
)
def test_malformed_manifests_raise_format_error(text: bytes, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        ImageManifest.from_json(text)


def test_docker_types_are_kept_as_given() -> None:
    docker = {
        "schemaVersion": 2,
        "mediaType": mt.MEDIA_TYPE_DOCKER_MANIFEST,
        "config": {"mediaType": mt.MEDIA_TYPE_DOCKER_CONFIG, "size": 7, "digest": D1},
        "layers": [{"mediaType": mt.MEDIA_TYPE_DOCKER_LAYER_GZIP, "size": 9, "digest": D2}],
    }
    m = ImageManifest.from_json(json.dumps(docker).encode())
    assert m.media_type == mt.MEDIA_TYPE_DOCKER_MANIFEST
    assert m.config.media_type == mt.MEDIA_TYPE_DOCKER_CONFIG
    assert m.layer_list[0].media_type == mt.MEDIA_TYPE_DOCKER_LAYER_GZIP
    assert m.dumps().index(b'"digest"') < m.dumps().index(b'"size"')  # Go order, not the input's

    manifest_list = {
        "schemaVersion": 2,
        "mediaType": mt.MEDIA_TYPE_DOCKER_MANIFEST_LIST,
        "manifests": [{"mediaType": mt.MEDIA_TYPE_DOCKER_MANIFEST, "size": 5, "digest": D1,
                       "platform": {"architecture": "arm", "os": "linux", "variant": "v7",
                                    "features": ["x"]}}],
    }
    index = ImageIndex.from_json(json.dumps(manifest_list).encode())
    assert index.media_type == mt.MEDIA_TYPE_DOCKER_MANIFEST_LIST
    assert index.entries[0].platform == P("arm", variant="v7")
    assert index.dumps() == (
        f'{{"schemaVersion":2,"mediaType":"{mt.MEDIA_TYPE_DOCKER_MANIFEST_LIST}","manifests":[{{"mediaType":'
        f'"{mt.MEDIA_TYPE_DOCKER_MANIFEST}","digest":"{D1}","size":5,'
        '"platform":{"architecture":"arm","os":"linux","variant":"v7"}}]}'
    ).encode()


def test_index_fields() -> None:
    text = ('{"manifests":null,"subject":{"mediaType":"m","digest":"D1","size":1},"artifactType":"a",'
            '"annotations":{"k":"v"},"schemaVersion":2,"mediaType":"I"}')
    assert ImageIndex.from_json(text.encode()).dumps() == (
        b'{"schemaVersion":2,"mediaType":"I","artifactType":"a","manifests":null,'
        b'"subject":{"mediaType":"m","digest":"D1","size":1},"annotations":{"k":"v"}}'
    )
    assert ImageIndex.from_json({"manifests": []}).entries == ()
    with pytest.raises(FormatError, match="manifests must be an array"):
        ImageIndex.from_json(b'{"manifests":"x"}')


def test_go_written_json_round_trips_byte_for_byte() -> None:
    # Every manifest and index the reference wrote must survive our parse + dump unchanged.
    seen = 0
    for vector in all_vectors():
        for path in sorted((vector.path / "expected-current").glob("*.json")):
            data = path.read_bytes()
            model = ImageIndex if path.name == "converted-index.json" else ImageManifest
            assert model.from_json(data).dumps() == data, path
            seen += 1
    assert seen >= 30


def test_image_config_platform() -> None:
    config = ImageConfig.from_json(
        b'{"architecture":"aarch64","os":"Linux","variant":"v8","os.features":["b","a"],"created":"x",'
        b'"rootfs":{"type":"layers","diff_ids":["sha256:aa","sha256:bb"]},"config":{"Env":["A=1"]}}'
    )
    assert config.platform() == P("arm64", os_features=("a", "b"))
    assert config.diff_ids == ("sha256:aa", "sha256:bb")
    assert ImageConfig.from_json(b'{"architecture":"arm","os":"linux"}').platform() == P("arm", variant="v7")
    with pytest.raises(FormatError, match="architecture must be a string"):
        ImageConfig.from_json(b'{"architecture":1}')
    with pytest.raises(FormatError, match="image config is not valid JSON"):
        ImageConfig.from_json(b"nope")


def test_validate_media_type() -> None:
    manifest = json.dumps(_manifest()).encode()
    validate_media_type(manifest, mt.MEDIA_TYPE_OCI_MANIFEST)
    validate_media_type(manifest, "application/octet-stream")  # other types are not checked
    validate_media_type(b'{"manifests":[]}', mt.MEDIA_TYPE_DOCKER_MANIFEST_LIST)
    with pytest.raises(FormatError, match="expected an index"):
        validate_media_type(manifest, mt.MEDIA_TYPE_OCI_INDEX)
    with pytest.raises(FormatError, match="expected a manifest"):
        validate_media_type(b'{"manifests":[]}', mt.MEDIA_TYPE_OCI_MANIFEST)
    with pytest.raises(FormatError, match="expected a manifest"):
        validate_media_type({"mediaType": mt.MEDIA_TYPE_OCI_INDEX}, mt.MEDIA_TYPE_DOCKER_MANIFEST)
    with pytest.raises(FormatError, match="expected an index"):
        validate_media_type(b'{"Config":null}', mt.MEDIA_TYPE_OCI_INDEX)  # present, even as null
    with pytest.raises(FormatError, match="schema 1"):
        validate_media_type(b'{"fsLayers":[{}]}', mt.MEDIA_TYPE_DOCKER_MANIFEST)

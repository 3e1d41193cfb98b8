"""`--optimizations xattr` (fact sheet §3, §5.1): a ztoc descriptor gets
`com.amazon.soci.disable-xattrs: "true"` exactly when no entry of its layer has a `SCHILY.xattr.`
PAX record and no entry name ends with `.wh..wh..opq`; the SOCI index is otherwise the one the
reference writes (annotation keys sorted, Go bytes). The golden case
conformance/vectors-extra/xattr-optimization has one layer with xattrs, one without (but with other
PAX records and a plain whiteout) and one with an opaque directory."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from socikit.cli import app
from socikit.oci import mediatypes as mt
from socikit.oci.descriptor import Descriptor
from socikit.soci.index import (
    build_soci_index,
    layer_needs_no_xattrs,
    parse_optimization,
    parse_soci_index,
    ztoc_descriptor,
)
from socikit.ztoc.model import CompressionInfo, FileMetadata, Ztoc
from tests.vectors import Vector, extra_vectors

VECTOR = next(v for v in extra_vectors() if v.name == "xattr-optimization")


def _entry(name: str, xattrs: tuple[tuple[bytes, bytes], ...] = ()) -> FileMetadata:
    return FileMetadata(name, "reg", 512, 0, "", 0o644, 0, 0, "", "", "0001-01-01T00:00:00Z", 0, 0, xattrs)


def _ztoc(*entries: FileMetadata) -> Ztoc:
    return Ztoc("0.9", "t", 0, 0, entries, CompressionInfo("gzip", 0, (), b""))


@pytest.mark.parametrize(("entries", "no_xattrs"), [
    ([], True),
    ([_entry("a"), _entry("b/")], True),
    ([_entry("a", ((b"path", b"long/name"), (b"mtime", b"1.5"), (b"LIBARCHIVE.creationtime", b"1")))], True),
    ([_entry("d/.wh.gone")], True),  # a plain whiteout is not an opaque directory
    ([_entry("a"), _entry("b", ((b"SCHILY.xattr.user.k", b"v"),))], False),
    ([_entry("b", ((b"SCHILY.xattr.security.capability", b""),))], False),  # empty values count
    ([_entry("d/.wh..wh..opq")], False),
    ([_entry("./d/e/.wh..wh..opq")], False),
    ([_entry("x.wh..wh..opq")], False),  # the reference tests the name's suffix, nothing more
    ([_entry("a", ((b"SCHILY.xattrs", b"v"),))], True),  # not the prefix
])
def test_the_rule(entries: list[FileMetadata], no_xattrs: bool) -> None:
    assert layer_needs_no_xattrs(_ztoc(*entries)) is no_xattrs


def test_only_xattr_is_an_optimization() -> None:
    assert parse_optimization("xattr") == "xattr"
    with pytest.raises(ValueError, match="not a valid optimization"):
        parse_optimization("xattrs")


def test_the_annotation_sorts_first_and_is_the_string_true() -> None:
    layer = Descriptor(mt.MEDIA_TYPE_OCI_LAYER_GZIP, "sha256:" + "a" * 64, 10)
    desc = ztoc_descriptor("sha256:" + "b" * 64, 5, layer=layer, span_size=4194304, disable_xattrs=True)
    data, _ = build_soci_index([desc], version="v2", subject=None, build_tool_identifier="AWS SOCI CLI v0.2")
    assert (b'"annotations":{"com.amazon.soci.disable-xattrs":"true","com.amazon.soci.image-layer-digest":'
            in data)


# -- the golden case ---------------------------------------------------------------------------


def _layer_tars(vector: Vector) -> dict[str, bytes]:
    manifest = json.loads(vector.blob(_root(vector)).read_bytes())
    return {layer["digest"]: gzip.decompress(vector.blob(layer["digest"]).read_bytes()) for layer in manifest["layers"]}


def _root(vector: Vector) -> str:
    index = json.loads((vector.input_dir / "index.json").read_bytes())
    digest: str = index["manifests"][0]["digest"]
    return digest


def _rule_by_tarfile(tar: bytes) -> bool:
    """The rule applied with Python's tarfile, independently of socikit's tar reader."""
    with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
        for member in archive.getmembers():
            if member.name.endswith(".wh..wh..opq"):
                return False
            if any(key.startswith("SCHILY.xattr.") for key in member.pax_headers):
                return False
    return True


def _indexes(folder: Path) -> list[bytes]:
    return [p.read_bytes() for p in sorted(folder.glob("soci-index-v*.json"))]


def test_the_golden_case_marks_exactly_the_layers_the_rule_allows() -> None:
    tars = _layer_tars(VECTOR)
    expected = {digest: _rule_by_tarfile(tar) for digest, tar in tars.items()}
    assert sorted(expected.values()) == [False, False, True]  # one layer each: xattrs, none, opaque dir
    for data in _indexes(VECTOR.path / "expected-current") + _indexes(VECTOR.path / "expected"):
        for desc in parse_soci_index(data).ztocs:
            layer = desc.annotations[mt.ANNOTATION_IMAGE_LAYER_DIGEST]
            marked = desc.annotations.get(mt.ANNOTATION_DISABLE_XATTRS)
            assert marked == ("true" if expected[layer] else None), layer


def test_the_v0_11_1_form_is_the_current_one_without_span_sizes() -> None:
    """expected/ holds what soci v0.11.1 writes: the ztoc descriptors without the span-size
    annotation (v0.12+); everything else, the disable-xattrs annotations included, is the same."""
    current = {parse_soci_index(d).version: d for d in _indexes(VECTOR.path / "expected-current")}
    for name in ("soci-index-v1.json", "soci-index-v2.json"):
        old = (VECTOR.path / "expected" / name).read_bytes()
        index = parse_soci_index(old)
        assert b"com.amazon.soci.span-size" not in old and index.dumps() == old
        with_span = [
            d.with_changes(annotations={**d.annotations, mt.ANNOTATION_SPAN_SIZE: str(VECTOR.params["span_size"])})
            for d in index.manifest.layer_list
        ]
        data, _ = build_soci_index(with_span, version=index.version, subject=index.subject,
                                   build_tool_identifier=index.build_tool_identifier)
        assert data == current[index.version]
    summary = VECTOR.summary
    assert summary["made_by"].startswith("socikit") and "not the reference" in summary["made_by"]


def test_without_the_option_no_layer_is_marked(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(app, [
        "convert", "--span-size", str(VECTOR.params["span_size"]), "--min-layer-size", "0", "--progress", "none",
        "--no-cache", "--json", f"oci:{VECTOR.input_dir}:latest", f"oci:{out}:latest",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    soci = json.loads(result.stdout)["platforms"][0]["soci_index"]
    data = (out / "blobs" / "sha256" / soci.split(":")[1]).read_bytes()
    assert b"disable-xattrs" not in data
    marked = next(p.read_bytes() for p in (VECTOR.path / "expected-current").glob("soci-index-v2-*.json"))
    assert data == marked.replace(b'"com.amazon.soci.disable-xattrs":"true",', b"")


def test_cached_ztocs_are_marked_too(tmp_path: Path) -> None:
    """The annotation is worked out from the ztoc bytes, so a ztoc from the cache gets it as well."""
    args = ["convert", "--root", str(tmp_path / "root"), "--span-size", str(VECTOR.params["span_size"]),
            "--min-layer-size", "0", "--progress", "none", "--json", "--optimizations", "xattr"]
    expected = next((VECTOR.path / "expected-current").glob("soci-index-v2-*.json")).name
    for run in ("first", "cached"):
        out = tmp_path / run
        result = CliRunner().invoke(app, [*args, f"oci:{VECTOR.input_dir}:latest", f"oci:{out}:latest"])
        assert result.exit_code == 0, result.output
        summary = json.loads(result.stdout)["platforms"][0]
        assert all(layer["cached"] is (run == "cached") for layer in summary["layers"])
        assert "soci-index-v2-" + summary["soci_index"].split(":")[1] + ".json" == expected


def test_an_unknown_optimization_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["convert", "--optimizations", "zstd", f"oci:{VECTOR.input_dir}:latest",
                                      f"oci:{tmp_path / 'out'}:latest"])
    assert result.exit_code == 2
    text = " ".join(result.output.replace("│", " ").split())  # the message as one line, box unwrapped
    assert "optimization 'zstd' is not a valid optimization (valid: xattr)" in text
    assert not (tmp_path / "out").exists()

"""Our ztocs against the golden vectors made by the reference Go `soci` (byte for byte)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from socikit.cli import app
from socikit.oci.mediatypes import compression_of_layer
from socikit.ztoc.builder import build_ztoc
from socikit.ztoc.info import ztoc_info
from socikit.ztoc.serialize import dumps, loads
from tests.vectors import all_vectors

CASES = [
    pytest.param(v, layer, ztoc_digest, id=f"{v.name}-{ztoc_digest[7:19]}")
    for v in all_vectors()
    for layer, ztoc_digest in v.layer_ztoc_pairs()
]


@pytest.mark.parametrize(("vector", "layer", "ztoc_digest"), CASES)
def test_ztoc_is_byte_identical(vector, layer, ztoc_digest) -> None:
    expected = vector.expected_ztocs()[ztoc_digest]
    with open(vector.blob(layer["layer_digest"]), "rb") as blob:
        result = build_ztoc(
            blob,
            algorithm=compression_of_layer(layer["layer_mediaType"]),
            span_size=vector.params["span_size"],
            build_tool_identifier=vector.params["build_tool_id"],
            expected_digest=layer["layer_digest"],
        )
    assert dumps(result.ztoc) == expected


@pytest.mark.parametrize(("vector", "layer", "ztoc_digest"), CASES)
def test_decoded_reference_ztoc_round_trips(vector, layer, ztoc_digest) -> None:
    expected = vector.expected_ztocs()[ztoc_digest]
    assert dumps(loads(expected)) == expected


@pytest.mark.parametrize(("vector", "layer", "ztoc_digest"), CASES)
def test_info_matches_soci_ztoc_info(vector, layer, ztoc_digest) -> None:
    info_file = vector.path / "expected" / f"ztoc-{ztoc_digest[7:]}.info.json"
    expected = json.loads(info_file.read_text())
    data = vector.expected_ztocs()[ztoc_digest]
    assert ztoc_info(loads(data), size=len(data)) == expected


def test_cli_build_reproduces_vector(tmp_path) -> None:
    vector = next(v for v in all_vectors() if v.name == "tricky-pax")
    layer, ztoc_digest = vector.layer_ztoc_pairs()[0]
    out = tmp_path / "out.ztoc"
    result = CliRunner().invoke(
        app,
        ["ztoc", "build", str(vector.blob(layer["layer_digest"])), "-o", str(out),
         "--span-size", str(vector.params["span_size"]), "--build-tool-id", vector.params["build_tool_id"],
         "--media-type", layer["layer_mediaType"], "--json"],
    )
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == vector.expected_ztocs()[ztoc_digest]
    summary = json.loads(result.stdout)
    assert summary["digest"] == ztoc_digest
    assert summary["layer_digest"] == layer["layer_digest"]

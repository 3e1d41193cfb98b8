"""The ztoc cache is keyed on the builder's format version too: a ztoc made by another (older,
possibly buggy) builder is never reused after an upgrade, whether it was written under another
version number or in the unversioned layout of releases before the version was part of the key."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

from typer.testing import CliRunner

from socikit.cli import app
from socikit.oci import mediatypes as mt
from socikit.pipeline.cache import ZtocCache
from socikit.ztoc.builder import BUILDER_FORMAT_VERSION
from socikit.ztoc.serialize import dumps, loads
from tests.vectors import all_vectors

VECTOR = next(v for v in all_vectors() if v.name == "tricky-pax")
SPAN = VECTOR.params["span_size"]
TOOL = mt.REFERENCE_BUILD_TOOL_ID


def _layer() -> tuple[str, int, bytes]:
    """(digest, size, golden ztoc bytes) of the vector's one indexed layer."""
    ((layer, ztoc_digest),) = VECTOR.layer_ztoc_pairs()
    size = VECTOR.blob(layer["layer_digest"]).stat().st_size
    return layer["layer_digest"], size, VECTOR.expected_ztocs()[ztoc_digest]


def _stale_ztoc(golden: bytes) -> bytes:
    """What an older, buggy builder could have made: decodes, right blob size and tool id, wrong TOC."""
    ztoc = loads(golden)
    stale = dumps(dataclasses.replace(ztoc, toc=ztoc.toc[:-1]))
    assert stale != golden and loads(stale).compressed_archive_size == ztoc.compressed_archive_size
    return stale


def _convert(root: Path, out: Path) -> dict[str, object]:
    result = CliRunner().invoke(app, [
        "convert", "--root", str(root), "--span-size", str(SPAN), "--min-layer-size", "0", "--progress", "none",
        "--json", f"oci:{VECTOR.input_dir}:latest", f"oci:{out}:latest",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    layer: dict[str, object] = json.loads(result.stdout)["platforms"][0]["layers"][0]
    return layer


def test_an_entry_of_another_builder_version_is_not_read(tmp_path: Path) -> None:
    digest, size, golden = _layer()
    ZtocCache(tmp_path, builder_version=BUILDER_FORMAT_VERSION + 1).put(digest, SPAN, TOOL, golden)
    assert ZtocCache(tmp_path).get(digest, size, SPAN, TOOL) is None
    assert ZtocCache(tmp_path, builder_version=BUILDER_FORMAT_VERSION + 1).get(digest, size, SPAN, TOOL) == golden
    ZtocCache(tmp_path).put(digest, SPAN, TOOL, golden)
    assert ZtocCache(tmp_path).get(digest, size, SPAN, TOOL) == golden
    assert len(list((tmp_path / "ztoc-cache").iterdir())) == 2


def test_convert_rebuilds_what_an_older_builder_cached(tmp_path: Path) -> None:
    digest, _, golden = _layer()
    golden_digest = "sha256:" + hashlib.sha256(golden).hexdigest()
    stale = _stale_ztoc(golden)
    root = tmp_path / "root"
    # Written by an older builder: once under an older version number, once in the layout of the
    # releases that keyed the cache on (layer digest, span size, build tool id) alone.
    ZtocCache(root, builder_version=BUILDER_FORMAT_VERSION - 1).put(digest, SPAN, TOOL, stale)
    tool_key = hashlib.sha256(TOOL.encode()).hexdigest()[:16]
    (root / "ztoc-cache" / f"{digest.split(':')[1]}.{SPAN}.{tool_key}.ztoc").write_bytes(stale)

    layer = _convert(root, tmp_path / "out")
    assert layer["cached"] is False and layer["ztoc"] == golden_digest
    again = _convert(root, tmp_path / "out2")  # now cached, under this builder's version
    assert again["cached"] is True and again["ztoc"] == golden_digest


def test_an_entry_under_this_builder_version_is_reused_as_it_is(tmp_path: Path) -> None:
    """The control for the test above: the cache is consulted by convert, and what decides reuse is
    the key (a stale entry under the current version would be served)."""
    digest, _, golden = _layer()
    stale = _stale_ztoc(golden)
    root = tmp_path / "root"
    ZtocCache(root).put(digest, SPAN, TOOL, stale)
    layer = _convert(root, tmp_path / "out")
    assert layer["cached"] is True and layer["ztoc"] == "sha256:" + hashlib.sha256(stale).hexdigest()

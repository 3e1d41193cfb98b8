"""validate's steps apart: `collect_image` is the only reader, `check_graph` and `summarize` judge
the graph it returns without touching the store."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conformance.layout import assemble_expected_layout
from socikit.content.layout import LayoutSource
from socikit.oci import mediatypes as mt
from socikit.validate import validate_image
from socikit.validate.collect import collect_image
from socikit.validate.graph import JsonDoc
from socikit.validate.graph_checks import check_graph
from socikit.validate.verdict import summarize
from tests.vectors import VECTORS_DIR


@pytest.fixture
def layout(tmp_path: Path) -> Path:
    return assemble_expected_layout(VECTORS_DIR / "multi-platform", tmp_path / "layout")


def test_the_graph_holds_what_was_read(layout: Path) -> None:
    graph = collect_image(LayoutSource(layout, tag="latest"))
    converted = json.loads((VECTORS_DIR / "multi-platform" / "expected-current" / "converted-index.json").read_bytes())
    images = [m for m in converted["manifests"] if "artifactType" not in m]
    socis = [m for m in converted["manifests"] if m.get("artifactType") == mt.ARTIFACT_TYPE_SOCI_INDEX_V2]
    assert graph.is_index and graph.root is not None and graph.root_doc is not None
    assert [i.entry.digest for i in graph.images] == [m["digest"] for m in images]
    assert all(i.manifest is not None and i.platform is not None for i in graph.images)
    assert [e.digest for e in graph.soci_entries] == [m["digest"] for m in socis]
    assert set(graph.v2_reads) == {m["digest"] for m in socis}
    assert all(isinstance(doc, JsonDoc) for doc in graph.v2_reads.values())
    # The layout lists its v1 indexes in index.json: one listing, no referrers queries.
    assert len(graph.v1_listings) == 1 and graph.v1_listings[0].image is None
    expected = VECTORS_DIR / "multi-platform" / "expected-current"
    v1 = {p.stem.rsplit("-", 1)[1] for p in expected.glob("soci-index-v1-*")}
    assert {i.desc.digest[7:] for i in graph.v1_listings[0].indexes} == v1
    assert graph.ztocs and all(read.ztoc is not None for read in graph.ztocs.values())


def test_the_checks_and_the_verdict_read_nothing(layout: Path, tmp_path: Path) -> None:
    report = validate_image(LayoutSource(layout, tag="latest"))
    graph = collect_image(LayoutSource(layout, tag="latest"))
    shutil.rmtree(layout)  # any read from here on would fail
    findings = check_graph(graph)
    assert tuple(findings.results) == report.checks
    assert summarize(graph.images, findings.v2, findings.v1, findings.results) == report.summary
    assert report.passed and report.summary.lazy
    assert len(findings.layer_jobs) == len(graph.ztocs)

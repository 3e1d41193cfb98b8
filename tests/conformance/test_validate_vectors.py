"""validate against the golden vectors, and the conformance suite run against producers.

Every vector's expected-current artifacts, arranged with its input image as the converted OCI
layout, pass every check; the conformance suite passes socikit's own `convert` and catches a
producer that writes different bytes.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import pytest

from conformance.layout import assemble_expected_layout
from conformance.run import main as run_main
from conformance.suite import compare_output, run_vector, substitutions
from socikit.content.layout import LayoutSource
from socikit.validate import CHECK_NAMES, validate_image
from socikit.validate.report import PREFETCH, SPAN_DIGESTS, TOC_DIGEST, V1_DISCOVERABLE, V1_SUBJECT
from tests.vectors import REPO_ROOT, VECTORS_DIR, all_vectors, extra_vectors

VECTORS = [pytest.param(v, id=v.name) for v in [*all_vectors(), *extra_vectors()]]
SOCIKIT = f"PYTHONPATH={shlex.quote(str(REPO_ROOT))} {shlex.quote(sys.executable)} -m socikit"
CONVERT = (
    SOCIKIT + " convert --span-size {span_size} --min-layer-size {min_layer_size} "
    "--build-tool-id {build_tool_id} {platform_flags} --progress none --no-cache "
    "oci:{input}:latest oci:{out}:latest"
)


@pytest.mark.parametrize("vector", VECTORS)
def test_every_vector_validates(vector, tmp_path: Path) -> None:
    layout = assemble_expected_layout(vector.path, tmp_path / "layout")
    report = validate_image(LayoutSource(layout, tag="latest"), deep=True)
    assert report.passed, [c.to_json() for c in report.failures]
    # Every check ran (the uncompressed layer's span reads are trivially the tar bytes, still reported);
    # the prefetch check only where there are prefetch artifacts, toc-digest only for TOC annotations.
    prefetch = {PREFETCH} if vector.params.get("prefetch_files") else set()
    assert {c.name for c in report.checks} == set(CHECK_NAMES) - {PREFETCH, TOC_DIGEST} | prefetch
    assert report.summary.lazy, report.summary.reason
    assert json.loads(json.dumps(report.to_json()))["passed"] is True


def test_summary_names_the_unindexed_layers(tmp_path: Path) -> None:
    layout = assemble_expected_layout(VECTORS_DIR / "zstd-layer", tmp_path / "layout")
    report = validate_image(LayoutSource(layout, tag="latest"))
    assert report.summary.lazy
    assert "covers 1 of 2 layers" in report.summary.reason


def test_input_images_have_no_soci_index(tmp_path: Path) -> None:
    report = validate_image(LayoutSource(VECTORS_DIR / "tricky-pax" / "input", tag="latest"))
    assert report.passed
    assert not report.summary.lazy
    assert "no SOCI index" in report.summary.reason


def test_v1_only_image_is_not_lazily_loaded_by_default(tmp_path: Path) -> None:
    layout = assemble_expected_layout(VECTORS_DIR / "tricky-pax", tmp_path / "layout")
    index = json.loads((layout / "index.json").read_bytes())
    original = json.loads((VECTORS_DIR / "tricky-pax" / "input" / "index.json").read_bytes())["manifests"][0]
    index["manifests"] = [original] + [m for m in index["manifests"] if m.get("artifactType")]
    (layout / "index.json").write_text(json.dumps(index))
    report = validate_image(LayoutSource(layout, tag="latest"), deep=True)
    assert report.passed, report.failures
    assert {V1_SUBJECT, V1_DISCOVERABLE} <= {c.name for c in report.checks}
    assert not report.summary.lazy
    assert "soci_v1" in report.summary.reason


def test_substitutions_quote_values(tmp_path: Path) -> None:
    fields = substitutions(VECTORS_DIR / "multi-platform", tmp_path / "out dir")
    assert fields["platform_flags"] == "--all-platforms"
    assert fields["out"] == shlex.quote(str(tmp_path / "out dir"))
    assert fields["build_tool_id"] == "'AWS SOCI CLI v0.2'"
    assert substitutions(VECTORS_DIR / "tricky-pax", tmp_path)["platform_flags"] == "--platform linux/amd64"


@pytest.mark.parametrize("name", ["tricky-pax", "multi-platform"])
def test_suite_passes_socikit_convert(name: str, tmp_path: Path) -> None:
    result = run_vector(VECTORS_DIR / name, CONVERT, tmp_path)
    assert result.passed, result.to_json()
    assert result.bytes_identical
    names = {c.name for c in result.comparisons}
    assert "converted-index.json" in names
    assert any(n.startswith("soci-index-v2-") for n in names) and any(n.startswith("ztoc-") for n in names)


def test_suite_v1_mode(tmp_path: Path) -> None:
    result = run_vector(
        VECTORS_DIR / "docker-media-types", CONVERT.replace(" convert ", " convert --v1 "), tmp_path, v1=True
    )
    assert result.passed, result.to_json()
    assert any(c.name.startswith("soci-index-v1-") for c in result.comparisons)


def _fake_producer(tmp_path: Path, broken: bool) -> str:
    """A 'producer' that writes the reference's output itself, optionally with a span digest broken."""
    script = tmp_path / "producer.py"
    script.write_text(
        "import sys\n"
        "from dataclasses import replace\n"
        "from pathlib import Path\n"
        f"sys.path.insert(0, {str(REPO_ROOT)!r})\n"
        "from conformance.layout import assemble_expected_layout, blob_path, replace_blob\n"
        "from socikit.ztoc.serialize import dumps, loads\n"
        "vector, out = Path(sys.argv[1]).parent, Path(sys.argv[2])\n"
        "assemble_expected_layout(vector, out)\n"
        f"if {broken!r}:\n"
        "    ztoc_file = sorted((vector / 'expected-current').glob('ztoc-*.bin'))[0]\n"
        "    digest = 'sha256:' + ztoc_file.stem.split('-', 1)[1]\n"
        "    z = loads(ztoc_file.read_bytes())\n"
        "    info = z.compression_info\n"
        "    bad = ('sha256:' + '0' * 64,) + info.span_digests[1:]\n"
        "    replace_blob(out, digest, dumps(replace(z, compression_info=replace(info, span_digests=bad))))\n"
    )
    return f"{shlex.quote(sys.executable)} {shlex.quote(str(script))} {{input}} {{out}}"


def test_suite_accepts_a_producer_writing_the_reference_bytes(tmp_path: Path) -> None:
    result = run_vector(VECTORS_DIR / "span-zero", _fake_producer(tmp_path, broken=False), tmp_path / "work")
    assert result.passed, result.to_json()


def test_suite_rejects_a_producer_writing_other_bytes(tmp_path: Path) -> None:
    result = run_vector(VECTORS_DIR / "span-zero", _fake_producer(tmp_path, broken=True), tmp_path / "work")
    assert not result.passed
    failed = {c.name.split("-")[0] for c in result.comparisons if not c.passed}
    assert failed == {
        "converted",
        "manifest",
        "soci",
        "ztoc",
    }  # the broken ztoc changes every digest above it
    assert result.validation is not None and result.validation.failed_names() == {SPAN_DIGESTS}


def test_suite_reports_a_failing_command(tmp_path: Path) -> None:
    result = run_vector(VECTORS_DIR / "span-zero", "exit 3", tmp_path)
    assert not result.passed
    assert result.exit_code == 3 and "exited with 3" in result.error


def test_compare_output_names_missing_artifacts(tmp_path: Path) -> None:
    (tmp_path / "index.json").write_text('{"schemaVersion":2,"manifests":[]}')
    comparisons = compare_output(VECTORS_DIR / "span-zero" / "expected-current", tmp_path)
    assert not any(c.passed for c in comparisons)
    assert "no tag 'latest'" in comparisons[0].reason


def test_run_command_line(tmp_path: Path, capsys) -> None:
    report = tmp_path / "report.json"
    status = run_main(
        [
            "--command",
            _fake_producer(tmp_path, broken=False),
            "--vector",
            "empty-layer",
            "--json",
            str(report),
        ]
    )
    assert status == 0
    assert "PASS empty-layer" in capsys.readouterr().out
    assert json.loads(report.read_text())[0]["passed"] is True

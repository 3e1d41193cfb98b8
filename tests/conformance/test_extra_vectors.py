"""The conformance suite with socikit's own cases (conformance/vectors-extra): vectors whose params
ask for `--optimizations` and `--prefetch-file` get those flags through the template fields
`{optimization_flags}` and `{prefetch_flags}`, prefetch artifacts are compared byte for byte, and a
template without the fields a vector needs is refused with a reason."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import pytest

from conformance.layout import assemble_expected_layout, replace_blob
from conformance.run import main as run_main
from conformance.suite import compare_output, missing_fields, run_vector, substitutions
from socikit.oci import mediatypes as mt
from socikit.soci.index import parse_soci_index
from tests.vectors import EXTRA_VECTORS_DIR, REPO_ROOT, VECTORS_DIR, extra_vectors

SOCIKIT = f"PYTHONPATH={shlex.quote(str(REPO_ROOT))} {shlex.quote(sys.executable)} -m socikit"
CONVERT = (
    SOCIKIT + " convert --span-size {span_size} --min-layer-size {min_layer_size} "
    "--build-tool-id {build_tool_id} {platform_flags} {optimization_flags} {prefetch_flags} --progress none "
    "--no-cache oci:{input}:latest oci:{out}:latest"
)
EXTRA = [pytest.param(v, id=v.name) for v in extra_vectors()]


def test_the_extra_cases_are_there() -> None:
    assert {v.name for v in extra_vectors()} == {"xattr-optimization", "prefetch"}
    for vector in extra_vectors():
        assert (vector.path / "expected-current" / "converted-index.json").is_file()
        assert len(list((vector.path / "expected-current").glob("soci-index-v*.json"))) == 2
    prefetch = next(v for v in extra_vectors() if v.name == "prefetch")
    assert len(list((prefetch.path / "expected-current").glob("prefetch-*.json"))) == 2


@pytest.mark.parametrize("vector", EXTRA)
def test_suite_passes_socikit_convert_on_the_extra_cases(vector, tmp_path: Path) -> None:
    for v1, command in ((False, CONVERT), (True, CONVERT.replace(" convert ", " convert --v1 "))):
        result = run_vector(vector.path, command, tmp_path / str(v1), v1=v1)
        assert result.passed, result.to_json()
        names = {c.name for c in result.comparisons}
        assert any(n.startswith("soci-index-v1-" if v1 else "soci-index-v2-") for n in names)
        if vector.params.get("prefetch_files"):
            assert sum(n.startswith("prefetch-") for n in names) == 2


def test_flag_fields(tmp_path: Path) -> None:
    xattr = substitutions(EXTRA_VECTORS_DIR / "xattr-optimization", tmp_path)
    assert xattr["optimization_flags"] == "--optimizations xattr" and xattr["prefetch_flags"] == ""
    prefetch = substitutions(EXTRA_VECTORS_DIR / "prefetch", tmp_path)
    assert prefetch["prefetch_flags"].startswith("--prefetch-file /app/big.bin --prefetch-file lib/a.so ")
    assert "--prefetch-file ./lib/../etc/conf" in prefetch["prefetch_flags"]
    plain = substitutions(VECTORS_DIR / "tricky-pax", tmp_path)
    assert plain["optimization_flags"] == plain["prefetch_flags"] == ""


def test_a_template_without_the_needed_fields_is_refused(tmp_path: Path) -> None:
    bare = CONVERT.replace(" {optimization_flags} {prefetch_flags}", "")
    assert missing_fields(EXTRA_VECTORS_DIR / "xattr-optimization", bare) == ["{optimization_flags}"]
    assert missing_fields(VECTORS_DIR / "tricky-pax", bare) == []
    result = run_vector(EXTRA_VECTORS_DIR / "prefetch", bare, tmp_path)
    assert not result.passed and result.exit_code is None
    assert result.error == "the vector's params need {prefetch_flags} in the command template"
    assert not (tmp_path / "prefetch").exists()  # the producer was not run


def test_a_changed_prefetch_artifact_is_caught(tmp_path: Path) -> None:
    vector = EXTRA_VECTORS_DIR / "prefetch"
    out = assemble_expected_layout(vector, tmp_path / "out")
    assert all(c.passed for c in compare_output(vector / "expected-current", out))
    soci = next(p for p in (vector / "expected-current").glob("soci-index-v2-*.json"))
    first = parse_soci_index(soci.read_bytes()).prefetches[0]
    assert first.media_type == mt.MEDIA_TYPE_SOCI_PREFETCH
    replace_blob(out, first.digest, b'{"version":"1.0","prefetch_spans":[{"start_span":0,"end_span":0}]}')
    failed = {c.name.split("-")[0] for c in compare_output(vector / "expected-current", out) if not c.passed}
    assert failed == {"converted", "manifest", "soci", "prefetch"}


def test_run_command_line_takes_several_vector_directories(tmp_path: Path, capsys) -> None:
    status = run_main(["--vectors", str(VECTORS_DIR), "--vectors", str(EXTRA_VECTORS_DIR), "--vector",
                       "xattr-optimization", "--vector", "span-zero", "--command", CONVERT])
    assert status == 0
    out = capsys.readouterr().out
    assert "PASS xattr-optimization" in out and "PASS span-zero" in out and "2 of 2 vectors passed" in out

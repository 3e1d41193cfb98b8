"""`convert`/`create` with `--prefetch-file`, `--prefetch-files-json` and `--force`: prefetch
artifacts in the SOCI index (after the ztocs, tagged with their layer), a schema-valid result that
`validate --deep` passes, one-line errors for a bad JSON file, and ztocs rebuilt past the cache."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from socikit.cli import app
from socikit.content.layout import LayoutSource
from socikit.oci import mediatypes as mt
from socikit.pipeline.cache import ZtocCache
from socikit.soci.index import parse_soci_index
from socikit.soci.prefetch import PrefetchSpan, loads_prefetch
from socikit.validate import report as r
from socikit.validate import validate_image
from socikit.validate.schemas import schema_errors
from socikit.ztoc.serialize import dumps, loads
from socikit.ztoc.spans import SpanTable
from tests.cli import run_socikit
from tests.vectors import all_vectors, extra_vectors

PREFETCH = next(v for v in extra_vectors() if v.name == "prefetch")
TRICKY = next(v for v in all_vectors() if v.name == "tricky-pax")
BASE = ["--span-size", "65536", "--min-layer-size", "0", "--progress", "none", "--no-cache", "--json"]


def _blob(layout: Path, digest: str) -> bytes:
    return (layout / "blobs" / "sha256" / digest.split(":", 1)[1]).read_bytes()


def _convert(*args: str) -> dict[str, object]:
    result = CliRunner().invoke(app, ["convert", *BASE, *args])
    assert result.exit_code == 0, result.output
    summary: dict[str, object] = json.loads(result.stdout)
    return summary


def test_convert_writes_prefetch_artifacts_that_validate_deep(tmp_path: Path) -> None:
    out = tmp_path / "out"
    paths = tmp_path / "paths.json"
    paths.write_text(json.dumps(["/app/big.bin", " lib/a.so ", ""]))
    summary = _convert("--prefetch-file", "/etc/conf", "--prefetch-file", "app/link", "--prefetch-files-json",
                       str(paths), f"oci:{PREFETCH.input_dir}:latest", f"oci:{out}:latest")
    platform = summary["platforms"][0]  # type: ignore[index]
    index_bytes = _blob(out, platform["soci_index"])
    index = parse_soci_index(index_bytes)
    # The ztocs first (layer order), then one prefetch artifact per layer that holds a listed file.
    kinds = [d.media_type for d in index.manifest.layer_list]
    assert kinds == [mt.MEDIA_TYPE_ZTOC] * 2 + [mt.MEDIA_TYPE_SOCI_PREFETCH] * 2
    layers = [d.annotations[mt.ANNOTATION_IMAGE_LAYER_DIGEST] for d in index.ztocs]
    assert [d.annotations for d in index.prefetches] == [{mt.ANNOTATION_IMAGE_LAYER_DIGEST: d} for d in layers]
    assert platform["prefetch"] == [{"digest": d.digest, "layer": layer}  # type: ignore[index]
                                    for d, layer in zip(index.prefetches, layers, strict=True)]
    for ztoc_desc, prefetch_desc in zip(index.ztocs, index.prefetches, strict=True):
        data = _blob(out, prefetch_desc.digest)
        assert not schema_errors("soci-prefetch", json.loads(data))
        ztoc = loads(_blob(out, ztoc_desc.digest))
        assert max(s.end_span for s in loads_prefetch(data)) < ztoc.compression_info.num_spans
    # The same files as the socikit-made vector (which lists them in other spellings too).
    expected = sorted(p.name for p in (PREFETCH.path / "expected-current").glob("prefetch-*.json"))
    assert sorted(f"prefetch-{d.digest.split(':')[1]}.json" for d in index.prefetches) == expected
    report = validate_image(LayoutSource(out, tag="latest"), deep=True)
    assert report.passed, report.failures
    assert len(report.by_name(r.PREFETCH)) == 2 and all(c.passed for c in report.by_name(r.PREFETCH))
    assert report.stats["layers_scanned"] == 2


def test_each_artifact_covers_exactly_the_spans_of_its_files(tmp_path: Path) -> None:
    out = tmp_path / "out"
    summary = _convert("--prefetch-file", "/app/big.bin", f"oci:{PREFETCH.input_dir}:latest", f"oci:{out}:latest")
    index = parse_soci_index(_blob(out, summary["platforms"][0]["soci_index"]))  # type: ignore[index]
    ((prefetch_desc),) = index.prefetches
    top_ztoc = next(d for d in index.ztocs if d.annotations[mt.ANNOTATION_IMAGE_LAYER_DIGEST]
                    == prefetch_desc.annotations[mt.ANNOTATION_IMAGE_LAYER_DIGEST])
    ztoc = loads(_blob(out, top_ztoc.digest))
    assert top_ztoc == index.ztocs[-1]  # the top layer's copy of app/big.bin, not the base layer's
    entry = next(e for e in ztoc.toc if e.name == "app/big.bin")
    covering = SpanTable(ztoc).spans_covering(entry.uncompressed_offset, entry.uncompressed_size)
    assert loads_prefetch(_blob(out, prefetch_desc.digest)) == [PrefetchSpan(covering[0], covering[-1])]


def test_paths_that_give_no_span_are_reported_not_fatal(tmp_path: Path) -> None:
    result = run_socikit("convert", *BASE, "--prefetch-file", "/data/old.txt", "--prefetch-file", "/nowhere",
                         f"oci:{PREFETCH.input_dir}:latest", f"oci:{tmp_path / 'out'}:latest")
    assert result.returncode == 0, result.stderr
    assert "note: prefetch 'data/old.txt' (linux/amd64): not in the image: deleted by the whiteout" in result.stderr
    assert "note: prefetch 'nowhere' (linux/amd64): not in any indexed layer\n" in result.stderr
    platform = json.loads(result.stdout)["platforms"][0]
    assert [s["path"] for s in platform["prefetch_skipped"]] == ["data/old.txt", "nowhere"]
    index = parse_soci_index(_blob(tmp_path / "out", platform["soci_index"]))
    assert index.prefetches == () and platform["prefetch"] == []


def test_create_stores_them_and_index_info_and_rm_know_them(tmp_path: Path) -> None:
    root = tmp_path / "root"
    result = run_socikit("create", *BASE, "--prefetch-file", "/app/big.bin", f"oci:{PREFETCH.input_dir}:latest",
                         root=root)
    assert result.returncode == 0, result.stderr
    digest = json.loads(result.stdout)["platforms"][0]["soci_index"]
    index = parse_soci_index(_blob(root / "store", digest))
    ((prefetch_desc),) = index.prefetches
    info = run_socikit("index", "info", digest, root=root)
    assert info.returncode == 0 and json.loads(info.stdout) == json.loads(_blob(root / "store", digest))
    layer = prefetch_desc.annotations[mt.ANNOTATION_IMAGE_LAYER_DIGEST]
    assert info.stderr == f"prefetch {prefetch_desc.digest} for layer {layer}: spans 0-1 (2 spans)\n"
    assert run_socikit("index", "rm", digest, root=root).returncode == 0
    assert not (root / "store" / "blobs" / "sha256" / prefetch_desc.digest.split(":")[1]).exists()


@pytest.mark.parametrize(("content", "message"), [
    (b'{"files": ["/a"]}', "must be an array of path strings"),
    (b"[1, 2]", "must be an array of path strings"),
    (b"not json", "is not valid JSON"),
    (None, "cannot read --prefetch-files-json"),
    (b'["/"]', "names the root directory"),
])
def test_a_bad_prefetch_files_json_is_one_line(tmp_path: Path, content: bytes | None, message: str) -> None:
    paths = tmp_path / "paths.json"
    if content is not None:
        paths.write_bytes(content)
    out = tmp_path / "out"
    result = run_socikit("convert", *BASE, "--prefetch-files-json", str(paths), f"oci:{PREFETCH.input_dir}:latest",
                         f"oci:{out}:latest")
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and message in result.stderr and "Traceback" not in result.stderr
    assert not out.exists()


# -- --force ---------------------------------------------------------------------------------------


def _poison(root: Path) -> tuple[str, str]:
    """A decodable ztoc for tricky-pax's layer with one TOC entry fewer, put in the cache under the
    right key. Returns (poisoned digest, true digest)."""
    ((layer, ztoc_digest),) = TRICKY.layer_ztoc_pairs()
    golden = TRICKY.expected_ztocs()[ztoc_digest]
    ztoc = loads(golden)
    poisoned = dumps(dataclasses.replace(ztoc, toc=ztoc.toc[:-1]))
    ZtocCache(root).put(layer["layer_digest"], TRICKY.params["span_size"], mt.REFERENCE_BUILD_TOOL_ID, poisoned)
    return "sha256:" + hashlib.sha256(poisoned).hexdigest(), ztoc_digest


def _tricky(command: str, root: Path, *extra: str, destination: list[str]) -> dict[str, object]:
    args = [command, "--root", str(root), "--span-size", str(TRICKY.params["span_size"]), "--min-layer-size", "0",
            "--progress", "none", "--json", *extra, f"oci:{TRICKY.input_dir}:latest", *destination]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    layer: dict[str, object] = json.loads(result.stdout)["platforms"][0]["layers"][0]
    return layer


@pytest.mark.parametrize("command", ["convert", "create"])
def test_force_rebuilds_past_a_poisoned_cache_entry(tmp_path: Path, command: str) -> None:
    root = tmp_path / "root"
    poisoned, true = _poison(root)

    def run(name: str, *extra: str) -> dict[str, object]:
        out = [f"oci:{tmp_path / name}:latest"] if command == "convert" else []
        return _tricky(command, root, *extra, destination=out)

    used = run("plain")
    assert used["cached"] is True and used["ztoc"] == poisoned  # the control: without --force it is used
    forced = run("forced", "--force")
    assert forced["cached"] is False and forced["ztoc"] == true
    # The rebuilt ztoc replaced the poisoned entry: later runs reuse the right one.
    after = run("after")
    assert after["cached"] is True and after["ztoc"] == true
    short = run("short", "-f")
    assert short["cached"] is False and short["ztoc"] == true

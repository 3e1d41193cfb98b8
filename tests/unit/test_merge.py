"""`socikit merge` between OCI layouts: what the merged index lists, duplicate platforms, what
rides along, and `--soci` in the same run."""

from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path

import pytest
from typer.testing import CliRunner

from socikit.cli import app
from socikit.content.layout import LayoutSink, LayoutSource
from socikit.errors import ImageError
from socikit.oci import gojson
from socikit.oci.descriptor import Descriptor
from socikit.pipeline.cache import ZtocCache
from socikit.pipeline.convert import ConversionResult, ConvertOptions
from socikit.pipeline.events import Event, LayerStarted
from socikit.pipeline.merge import MergedSource, MergeInput, MergePlan, merge_images, plan_merge
from tests.platform_images import LayoutWriter, Written

BASE = ["--progress", "none"]
SOCI = ["--soci", "--min-layer-size", "0", "--span-size", "65536", "--no-cache"]


@pytest.fixture
def images(tmp_path: Path) -> dict[str, Written]:
    """One layout `src` with tags amd64, arm64, amd64-other (a different amd64 build) and multi
    (an index of arm/v7 and s390x with attestations)."""
    writer = LayoutWriter(tmp_path / "src")
    made = {"amd64": writer.image("amd64"), "arm64": writer.image("arm64", variant="v8"),
            "amd64-other": writer.image("amd64", seed="other-amd64")}
    arm = writer.image("arm", variant="v7")
    s390x = writer.image("s390x")
    made["multi"] = writer.index([(arm, "arm", "v7"), (s390x, "s390x", "")], attestations=True)
    made["arm"], made["s390x"] = arm, s390x
    for name in ("amd64", "arm64", "amd64-other", "multi"):
        writer.tag(made[name], name)
    return made


def _src(tmp_path: Path, tag: str) -> str:
    return f"oci:{tmp_path / 'src'}:{tag}"


def _cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def _index(tmp_path: Path, tag: str) -> tuple[dict[str, object], bytes]:
    source = LayoutSource(tmp_path / "out", tag=tag)
    try:
        data = source.read_blob(source.resolve())
    finally:
        source.close()
    return json.loads(data), data


def test_merges_single_and_multi_platform_images(tmp_path: Path, images: dict[str, Written]) -> None:
    code, output = _cli("merge", *BASE, f"oci:{tmp_path / 'out'}:m", _src(tmp_path, "amd64"),
                        _src(tmp_path, "arm64"), _src(tmp_path, "multi"))
    assert code == 0, output
    index, data = _index(tmp_path, "m")
    assert data == gojson.dumps(index)  # Go-canonical bytes
    assert index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    entries = index["manifests"]
    assert [(e["digest"], e["platform"]) for e in entries[:4]] == [
        (images["amd64"].digest, {"architecture": "amd64", "os": "linux"}),
        (images["arm64"].digest, {"architecture": "arm64", "os": "linux", "variant": "v8"}),
        (images["arm"].digest, {"architecture": "arm", "os": "linux", "variant": "v7"}),
        (images["s390x"].digest, {"architecture": "s390x", "os": "linux"}),
    ]
    # The attestations ride along with the manifests they describe.
    assert [e["annotations"]["vnd.docker.reference.digest"] for e in entries[4:]] == [
        images["arm"].digest, images["s390x"].digest]
    # Every blob the merged image needs is in the destination, and the output lists what it did.
    out = tmp_path / "out" / "blobs" / "sha256"
    for entry in entries:
        manifest = json.loads((out / entry["digest"].split(":")[1]).read_bytes())
        for blob in (manifest["config"], *manifest["layers"]):
            data = (out / blob["digest"].split(":")[1]).read_bytes()
            assert "sha256:" + hashlib.sha256(data).hexdigest() == blob["digest"]
    assert f"linux/arm/v7: {images['arm'].digest} from {_src(tmp_path, 'multi')}" in output


def test_same_platform_twice_is_refused_unless_preferred(tmp_path: Path, images: dict[str, Written]) -> None:
    amd, other, arm = (_src(tmp_path, t) for t in ("amd64", "amd64-other", "arm64"))
    code, output = _cli("merge", *BASE, f"oci:{tmp_path / 'out'}:m", amd, arm, other)
    assert code == 1
    assert output.strip() == (f"error: platform linux/amd64 is in more than one image ({amd}, {other}): "
                              f"say which wins with --prefer {amd}")
    assert not (tmp_path / "out").exists()  # nothing written
    code, output = _cli("merge", *BASE, "--prefer", other, f"oci:{tmp_path / 'out'}:m", amd, arm, other)
    assert code == 0, output
    index, _ = _index(tmp_path, "m")
    assert [e["digest"] for e in index["manifests"]] == [images["arm64"].digest, images["amd64-other"].digest]
    assert f"{images['amd64'].digest} from {amd} left out (--prefer {other})" in output


def _plan(tmp_path: Path, tags: list[str], prefer: list[str] | None = None) -> MergePlan:
    inputs = [MergeInput(_src(tmp_path, t), LayoutSource(tmp_path / "src", tag=t)) for t in tags]
    return plan_merge(inputs, prefer=prefer or [])


def test_the_same_manifest_twice_is_merged_once(tmp_path: Path, images: dict[str, Written]) -> None:
    plan = _plan(tmp_path, ["amd64", "amd64", "arm64"])
    assert [e.descriptor.digest for e in plan.entries] == [images["amd64"].digest, images["arm64"].digest]
    assert plan.dropped == ()
    with pytest.raises(ImageError, match="--prefer nope: not one of the images being merged"):
        _plan(tmp_path, ["amd64"], prefer=["nope"])


def test_worker_processes_can_open_every_blob(tmp_path: Path, images: dict[str, Written]) -> None:
    inputs = [MergeInput(t, LayoutSource(tmp_path / "src", tag=t)) for t in ("amd64", "multi")]
    merged = MergedSource(plan_merge(inputs), inputs)
    assert merged.blob_opener is not None
    opener = pickle.loads(pickle.dumps(merged.blob_opener))  # what a worker process receives
    manifest = json.loads(merged.read_blob(next(e.descriptor for e in merged.plan.entries)))
    layer = Descriptor.from_json(manifest["layers"][0])
    with opener(layer) as stream:
        assert "sha256:" + hashlib.sha256(stream.read()).hexdigest() == layer.digest


@pytest.mark.parametrize("v1", [False, True], ids=["v2", "v1"])
def test_merge_and_convert_in_one_run(tmp_path: Path, images: dict[str, Written], v1: bool) -> None:
    dst = f"oci:{tmp_path / 'out'}:s"
    code, output = _cli("merge", *BASE, *SOCI, *(["--v1"] if v1 else []), "--json", dst,
                        _src(tmp_path, "amd64"), _src(tmp_path, "multi"))
    assert code == 0, output
    summary = json.loads(output[: output.rindex("}") + 1])
    conversion = summary["conversion"]
    assert sorted(p["platform"] for p in conversion["platforms"]) == ["linux/amd64", "linux/arm/v7", "linux/s390x"]
    assert all(p["soci_index"] for p in conversion["platforms"])
    index, _ = _index(tmp_path, "s")
    soci_entries = [e for e in index["manifests"] if e.get("artifactType")]
    if v1:
        assert soci_entries == [] and summary["result"]["digest"] == summary["merged_index"]
        assert "AWS Lambda" not in output
    else:
        assert len(soci_entries) == 3 and "AWS Lambda cannot start" in output
    # A v1-only image is not lazily loaded by a default soci-snapshotter: validate accepts it on request.
    code, report = _cli("validate", "--deep", "--json", dst)
    assert code == 0, report
    assert json.loads(report)["passed"] is True


def test_v1_without_soci_is_a_usage_error(tmp_path: Path, images: dict[str, Written]) -> None:
    code, output = _cli("merge", "--v1", f"oci:{tmp_path / 'out'}:m", _src(tmp_path, "amd64"))
    assert code == 2 and "--v1 goes with --soci" in output


def test_layers_shared_between_platforms_are_indexed_once_and_cached_across_runs(tmp_path: Path) -> None:
    writer = LayoutWriter(tmp_path / "src")
    for arch in ("amd64", "arm64"):
        writer.tag(writer.image(arch, shared=["app-files"]), arch)
    inputs = [MergeInput(t, LayoutSource(tmp_path / "src", tag=t)) for t in ("amd64", "arm64")]
    options = ConvertOptions(min_layer_size=0, span_size=65536, jobs=2)
    cache = ZtocCache(tmp_path / "root")

    def run(tag: str) -> tuple[list[str], ConversionResult]:
        started: list[str] = []

        def record(event: Event) -> None:
            if isinstance(event, LayerStarted):
                started.append(event.layer.digest)

        result = merge_images(inputs, LayoutSink(tmp_path / "out", tag=tag), soci=options, cache=cache,
                              on_event=record)
        assert result.conversion is not None
        return started, result.conversion

    started, first = run("first")
    amd, arm = first.platforms
    shared = amd.layers[1].layer.digest
    assert arm.layers[1].layer.digest == shared and amd.layers[0].layer.digest != arm.layers[0].layer.digest
    assert sorted(started) == sorted({o.layer.digest for p in first.platforms for o in p.layers})  # each once
    assert not any(o.cached for p in first.platforms for o in p.layers)
    _, second = run("second")
    assert all(o.cached for p in second.platforms for o in p.layers)
    assert second.result == first.result  # the same bytes from cached ztocs

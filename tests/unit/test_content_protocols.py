"""Sources and sinks declare what they can do: the optional abilities are Protocols in
`content.base`, checked with isinstance (no `getattr`/`hasattr` sniffing in the pipeline or the
validator), and every source and sink is a context manager."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from socikit.content import base
from socikit.content.archive import DockerArchiveSource, OciArchiveSource
from socikit.content.layout import LayoutSink, LayoutSource
from socikit.pipeline.store import LocalStore
from socikit.transports import open_sink, open_source
from tests.vectors import REPO_ROOT, VECTORS_DIR

ABILITIES = (base.OpensBlobsInWorkers, base.ListsManifests, base.HasBlobPaths, base.ReadsManifestsByDigest,
             base.ReadsReferrers, base.WritesReferrers)
TRICKY = VECTORS_DIR / "tricky-pax" / "input"


def _abilities(obj: object) -> set[str]:
    return {p.__name__ for p in ABILITIES if isinstance(obj, p)}


def _archive(tmp_path: Path) -> Path:
    out = tmp_path / "image.tar"
    with open_source(f"oci:{TRICKY}") as source, open_sink(f"oci-archive:{out}") as sink:
        root = source.resolve()
        from socikit.oci.manifest import ImageManifest

        manifest = source.read_blob(root)
        for blob in (ImageManifest.from_json(manifest).config, *ImageManifest.from_json(manifest).layer_list):
            sink.copy_blob(blob, source)
        sink.write_manifest(root, manifest)
        sink.tag(root)
    return out


def test_what_each_local_store_can_do(tmp_path: Path) -> None:
    layout = LayoutSource(TRICKY)
    assert isinstance(layout, base.ImageSource)
    assert _abilities(layout) == {"OpensBlobsInWorkers", "ListsManifests", "HasBlobPaths", "ReadsManifestsByDigest"}
    archive = OciArchiveSource(_archive(tmp_path))
    assert isinstance(archive, base.ImageSource)
    assert _abilities(archive) == {"OpensBlobsInWorkers", "ListsManifests"}
    sink = LayoutSink(tmp_path / "out")
    assert isinstance(sink, base.ImageSink)
    assert _abilities(sink) == {"ListsManifests", "HasBlobPaths", "WritesReferrers"}
    with open_sink(f"oci-archive:{tmp_path / 'x.tar'}") as archive_sink:
        assert isinstance(archive_sink, base.ImageSink)
        assert _abilities(archive_sink) == {"WritesReferrers"}
    store = LocalStore(tmp_path / "root")
    assert isinstance(store, base.ImageSink) and _abilities(store) == {"WritesReferrers"}
    archive.close()


def test_docker_archive(tmp_path: Path) -> None:
    from tests.unit.test_archive import build_docker_save

    path, _, _ = build_docker_save(tmp_path, oci_style=True)
    with DockerArchiveSource(path) as source:
        assert isinstance(source, base.ImageSource)
        assert _abilities(source) == {"OpensBlobsInWorkers"}


def test_a_registry_source_reads_referrers_and_manifests_by_digest() -> None:
    """Structural: the registry package is not imported by `content`, its source qualifies by
    having the methods (no request is made here)."""
    with open_source("127.0.0.1:1/app:latest") as source:
        assert isinstance(source, base.ImageSource)
        assert _abilities(source) == {"OpensBlobsInWorkers", "ReadsManifestsByDigest", "ReadsReferrers"}
    with open_sink("127.0.0.1:1/app:latest") as sink:
        assert isinstance(sink, base.ImageSink)
        assert _abilities(sink) == {"WritesReferrers"}


def test_sources_and_sinks_are_context_managers(tmp_path: Path) -> None:
    with open_source(f"oci:{TRICKY}") as source:
        assert source.resolve().digest
    data = b"{}"
    from socikit.oci.descriptor import descriptor_for

    desc = descriptor_for(data, "application/vnd.oci.image.manifest.v1+json")
    with open_sink(f"oci:{tmp_path / 'kept'}") as sink:
        sink.write_manifest(desc, data)
        sink.tag(desc)
    assert LayoutSource(tmp_path / "kept", tag="latest").resolve().digest == desc.digest
    with pytest.raises(RuntimeError), open_sink(f"oci:{tmp_path / 'undone'}") as sink:
        sink.write_manifest(desc, data)
        raise RuntimeError("the with block fails")
    assert not (tmp_path / "undone").exists()


@pytest.mark.parametrize("path", [*sorted((REPO_ROOT / "socikit" / "pipeline").glob("*.py")),
                                  *(REPO_ROOT / "socikit" / "validate" / f"{name}.py"
                                    for name in ("image", "collect", "graph_checks", "deep")),
                                  REPO_ROOT / "socikit" / "transports.py"],
                         ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_no_attribute_sniffing(path: Path) -> None:
    calls = [node.lineno for node in ast.walk(ast.parse(path.read_text()))
             if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
             and node.func.id in ("getattr", "hasattr")]
    assert calls == [], f"{path.name}: getattr/hasattr at lines {calls}; declare a Protocol in content.base"

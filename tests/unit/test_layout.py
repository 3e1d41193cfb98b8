"""OCI image layouts: reading the golden vectors, resolving references, writing blobs and index.json."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import threading
from pathlib import Path
from typing import BinaryIO

import pytest

from socikit.content.base import ImageSink, ImageSource
from socikit.content.layout import LayoutSink, LayoutSource, remove_blob
from socikit.errors import DigestMismatchError, ImageError
from socikit.oci import gojson
from socikit.oci import mediatypes as mt
from socikit.oci.descriptor import Descriptor, descriptor_for
from socikit.transports import open_sink, open_source
from tests.vectors import all_vectors

VECTORS = all_vectors()
REF = mt.ANNOTATION_REF_NAME


def _snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


def _children(data: bytes) -> list[Descriptor]:
    doc = json.loads(data)
    if "manifests" in doc:
        return [Descriptor.from_json(m) for m in doc["manifests"]]
    return [Descriptor.from_json(doc["config"]), *(Descriptor.from_json(layer) for layer in doc.get("layers") or [])]


def _walk(source: LayoutSource, desc: Descriptor, seen: dict[str, bytes]) -> None:
    """Every blob reachable from `desc`, read through the source (manifests whole, layers streamed)."""
    if desc.digest in seen:
        return
    if desc.media_type in mt.MANIFEST_MEDIA_TYPES | mt.INDEX_MEDIA_TYPES:
        data = source.read_blob(desc)
        seen[desc.digest] = data
        for child in _children(data):
            _walk(source, child, seen)
    else:
        with source.open_blob(desc) as stream:
            seen[desc.digest] = stream.read()


@pytest.mark.parametrize("vector", VECTORS, ids=[v.name for v in VECTORS])
def test_reads_every_vector_without_touching_it(vector) -> None:
    before = _snapshot(vector.input_dir)
    source = open_source(f"oci:{vector.input_dir}:latest")
    assert isinstance(source, ImageSource)
    root = source.resolve()
    index = json.loads((vector.input_dir / "index.json").read_bytes())
    assert root.to_json() == index["manifests"][0]
    assert LayoutSource(vector.input_dir).resolve() == root  # the only image, no tag needed
    blobs: dict[str, bytes] = {}
    _walk(source, root, blobs)
    assert len(blobs) >= 3
    for digest, data in blobs.items():
        assert "sha256:" + hashlib.sha256(data).hexdigest() == digest
        assert data == vector.blob(digest).read_bytes()
    source.close()
    assert _snapshot(vector.input_dir) == before


def test_digest_references_reach_entries_and_nested_manifests() -> None:
    vector = next(v for v in VECTORS if v.name == "multi-platform")
    top = LayoutSource(vector.input_dir).resolve()
    assert LayoutSource(vector.input_dir, digest=top.digest).resolve() == top
    child = _children(vector.blob(top.digest).read_bytes())[0]
    resolved = open_source(f"oci:{vector.input_dir}@{child.digest}").resolve()
    assert (resolved.digest, resolved.size, resolved.media_type) == (child.digest, child.size, child.media_type)
    with pytest.raises(ImageError, match="is not in the layout"):
        LayoutSource(vector.input_dir, digest="sha256:" + "0" * 64).resolve()


def _layout_with_tags(tmp_path: Path, tags: list[str]) -> tuple[Path, list[Descriptor]]:
    root = tmp_path / "layout"
    sink = LayoutSink(root)
    descs = []
    for tag in tags:
        data = gojson.dumps({"schemaVersion": 2, "mediaType": mt.MEDIA_TYPE_OCI_MANIFEST, "tag": tag})
        desc = descriptor_for(data, mt.MEDIA_TYPE_OCI_MANIFEST)
        sink.write_manifest(desc, data)
        LayoutSink(root, tag=tag).tag(desc)
        descs.append(desc)
    return root, descs


def test_missing_tag_lists_the_tags_present(tmp_path: Path) -> None:
    root, _ = _layout_with_tags(tmp_path, ["v2", "v1"])
    with pytest.raises(ImageError) as info:
        LayoutSource(root, tag="v3").resolve()
    assert "tag 'v3' is not in the layout" in str(info.value) and "tags present: v1, v2" in str(info.value)
    with pytest.raises(ImageError, match=r"holds 2 images \(tags: v1, v2\): name one with oci:"):
        LayoutSource(root).resolve()
    assert LayoutSource(root).tags() == ["v1", "v2"]


def test_not_a_layout(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="no such directory"):
        LayoutSource(tmp_path / "absent")
    (tmp_path / "plain").mkdir()
    with pytest.raises(ImageError, match="not an OCI image layout"):
        LayoutSource(tmp_path / "plain")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "index.json").write_text("{not json")
    with pytest.raises(ImageError, match="index.json is not valid JSON"):
        LayoutSource(tmp_path / "bad").resolve()


def _copy_vector(tmp_path: Path, name: str = "tricky-pax") -> tuple[Path, Descriptor]:
    vector = next(v for v in VECTORS if v.name == name)
    root = tmp_path / name
    shutil.copytree(vector.input_dir, root)
    return root, LayoutSource(root).resolve()


def test_read_blob_detects_corruption_and_missing_blobs(tmp_path: Path) -> None:
    root, manifest_desc = _copy_vector(tmp_path)
    source = LayoutSource(root)
    manifest = source.read_blob(manifest_desc)
    config = _children(manifest)[0]
    path = source.blob_path(config.digest)
    data = path.read_bytes()
    path.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))  # same size, other digest
    with pytest.raises(DigestMismatchError, match="has another digest"):
        source.read_blob(config)
    path.write_bytes(data + b" ")
    with pytest.raises(DigestMismatchError, match="bytes, its descriptor says"):
        source.read_blob(config)
    path.unlink()
    with pytest.raises(ImageError, match=f"blob {config.digest} is missing from the layout"):
        source.read_blob(config)
    with pytest.raises(ImageError, match="is missing from the layout"):
        source.open_blob(config)
    with pytest.raises(ImageError, match="unsupported digest"):
        source.read_blob(Descriptor(media_type="x", digest="sha512:" + "a" * 128, size=1))


def _blob(data: bytes) -> tuple[Descriptor, bytes]:
    return descriptor_for(data, "application/octet-stream"), data


def test_sink_writes_a_layout_with_go_style_index(tmp_path: Path) -> None:
    root = tmp_path / "new" / "layout"
    sink = open_sink(f"oci:{root}:v1")
    assert isinstance(sink, ImageSink)
    desc, data = _blob(b'{"schemaVersion":2}')
    manifest = desc.with_changes(media_type=mt.MEDIA_TYPE_OCI_MANIFEST)
    sink.write_manifest(manifest, data)
    assert sink.has_blob(manifest)
    assert json.loads((root / "oci-layout").read_bytes()) == {"imageLayoutVersion": "1.0.0"}
    assert not (root / "index.json").exists()  # write_manifest does not list: index.json comes with the tag
    sink.tag(manifest)
    entry = manifest.with_changes(annotations={REF: "v1"})
    expected = gojson.dumps({"schemaVersion": 2, "mediaType": mt.MEDIA_TYPE_OCI_INDEX, "manifests": [entry.to_json()]})
    assert (root / "index.json").read_bytes() == expected
    assert LayoutSource(root, tag="v1").resolve() == entry


def test_retag_replaces_only_its_entry_and_keeps_the_rest(tmp_path: Path) -> None:
    root, (a, b) = _layout_with_tags(tmp_path, ["a", "b"])
    index_path = root / "index.json"
    raw = json.loads(index_path.read_bytes())
    raw["annotations"] = {"org.example.kept": "yes"}
    raw["manifests"][0]["x-unknown-field"] = 7
    index_path.write_bytes(json.dumps(raw).encode())
    new_desc, data = _blob(b"new manifest")
    sink = LayoutSink(root, tag="b")
    sink.write_manifest(new_desc, data)
    sink.tag(new_desc)
    after = json.loads(index_path.read_bytes())
    assert after["annotations"] == {"org.example.kept": "yes"}
    tags = [(e["digest"], e["annotations"][REF]) for e in after["manifests"]]
    assert tags == [(a.digest, "a"), (new_desc.digest, "b")]
    assert after["manifests"][0]["x-unknown-field"] == 7
    assert LayoutSource(root, tag="a").resolve().digest == a.digest
    assert LayoutSource(root, tag="b").resolve().digest == new_desc.digest
    assert sink.untag("a") and not sink.untag("a")
    assert [e.digest for e in sink.entries()] == [new_desc.digest]


def test_untagged_artifact_entries(tmp_path: Path) -> None:
    root, (image,) = _layout_with_tags(tmp_path, ["latest"])
    sink = LayoutSink(root)
    data = b'{"schemaVersion":2,"artifactType":"x"}'
    soci = descriptor_for(data, mt.MEDIA_TYPE_OCI_MANIFEST, artifact_type=mt.ARTIFACT_TYPE_SOCI_INDEX_V1)
    with pytest.raises(ImageError, match="its blob was not written"):
        sink.add_entry(soci)
    sink.write_referrer(soci, data, image)
    sink.add_entry(soci)  # listed once only
    entries = json.loads((root / "index.json").read_bytes())["manifests"]
    assert entries[1] == {"mediaType": mt.MEDIA_TYPE_OCI_MANIFEST, "digest": soci.digest, "size": soci.size,
                          "artifactType": mt.ARTIFACT_TYPE_SOCI_INDEX_V1}
    assert len(entries) == 2
    # The artifact does not count as a second image when no tag is given.
    assert LayoutSource(root).resolve().digest == image.digest
    sink.remove_entries({soci.digest})
    remove_blob(root, soci.digest)
    assert [e.digest for e in sink.entries()] == [image.digest]
    assert not sink.has_blob(soci)


def test_failed_index_write_leaves_index_json_unchanged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root, _ = _layout_with_tags(tmp_path, ["a"])
    before = (root / "index.json").read_bytes()
    desc, data = _blob(b"another manifest")
    sink = LayoutSink(root, tag="b")
    sink.write_manifest(desc, data)

    def broken_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(ImageError, match="No space left"):
        sink.tag(desc)
    monkeypatch.undo()
    assert (root / "index.json").read_bytes() == before
    assert [p.name for p in root.iterdir() if p.name.startswith(".")] == []  # no temp files left behind


def test_tag_refuses_content_that_was_not_written(tmp_path: Path) -> None:
    root, _ = _layout_with_tags(tmp_path, ["a"])
    before = (root / "index.json").read_bytes()
    desc, _ = _blob(b"never written")
    with pytest.raises(ImageError, match="its blob was not written"):
        LayoutSink(root, tag="a").tag(desc)
    assert (root / "index.json").read_bytes() == before


def test_write_blob_verifies_and_skips_existing(tmp_path: Path) -> None:
    sink = LayoutSink(tmp_path / "l")
    desc, data = _blob(b"hello")
    with pytest.raises(DigestMismatchError):
        sink.write_blob(desc, b"hellO")
    assert not sink.has_blob(desc)
    sink.write_blob(desc, data)
    inode = sink.blob_path(desc.digest).stat().st_ino
    sink.write_blob(desc, data)
    assert sink.blob_path(desc.digest).stat().st_ino == inode  # not rewritten


class _FakeSource:
    def __init__(self, payload: bytes) -> None:
        self.payload = payload

    def resolve(self) -> Descriptor:
        raise NotImplementedError

    def read_blob(self, desc: Descriptor) -> bytes:
        return self.payload

    def open_blob(self, desc: Descriptor) -> BinaryIO:
        return io.BytesIO(self.payload)

    def close(self) -> None:
        pass


def test_copy_blob_streams_and_verifies(tmp_path: Path) -> None:
    sink = LayoutSink(tmp_path / "l")
    payload = os.urandom(3 << 20)
    desc, _ = _blob(payload)
    with pytest.raises(DigestMismatchError, match="expected"):
        sink.copy_blob(desc, _FakeSource(payload[:-1] + b"x"))
    assert not sink.has_blob(desc)
    assert [p.name for p in (tmp_path / "l" / "blobs" / "sha256").iterdir()] == []
    sink.copy_blob(desc, _FakeSource(payload))
    assert sink.blob_path(desc.digest).read_bytes() == payload


def test_copy_between_layouts_links_verified_blobs(tmp_path: Path) -> None:
    src_root, manifest_desc = _copy_vector(tmp_path)
    source = LayoutSource(src_root)
    layer = _children(source.read_blob(manifest_desc))[1]
    sink = LayoutSink(tmp_path / "dst")
    sink.copy_blob(layer, source)
    assert sink.blob_path(layer.digest).stat().st_ino == source.blob_path(layer.digest).stat().st_ino
    config = _children(source.read_blob(manifest_desc))[0]
    path = source.blob_path(config.digest)
    path.write_bytes(b"x" * config.size)
    with pytest.raises(DigestMismatchError):
        sink.copy_blob(config, source)
    assert not sink.has_blob(config)
    # `verified`: the caller read and checked the blob moments ago, so it is linked unread.
    sink.copy_blob(config, source, verified=True)
    assert sink.blob_path(config.digest).stat().st_ino == path.stat().st_ino


class _UnreadableSource(_FakeSource):
    """A source whose blobs must not be read: what the sink takes must come from elsewhere."""

    def open_blob(self, desc: Descriptor) -> BinaryIO:
        raise AssertionError(f"{desc.digest} was read from the source again")


def _staged(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "blobs" / "sha256").iterdir() if ".staged-" in p.name)


def test_a_layer_staged_while_indexed_is_taken_without_reading_the_source(tmp_path: Path) -> None:
    """A layer written from the indexing stream (in a worker) is renamed into place by
    copy_blob: the source is not read a second time, and the blob appears only then."""
    root = tmp_path / "l"
    payload = os.urandom(3 << 20)
    desc, _ = _blob(payload)
    with LayoutSink(root, tag="v1") as sink:
        uploader = sink.stream_uploader(_FakeSource(payload))
        assert uploader is not None
        staged = uploader(desc)
        for start in range(0, len(payload), 1 << 20):
            staged.write(payload[start:start + (1 << 20)])
        assert staged.finish() is False  # not in the layout until copy_blob takes it
        assert not sink.has_blob(desc) and len(_staged(root)) == 1
        sink.copy_blob(desc, _UnreadableSource(payload))
        assert sink.blob_path(desc.digest).read_bytes() == payload
        assert _staged(root) == []
        mode = sink.blob_path(desc.digest).stat().st_mode & 0o777
        assert mode == 0o666 & ~_umask()
        sink.abort()  # nothing committed: the taken blob is undone like any other write
    assert not sink.blob_path(desc.digest).exists()


def test_staged_layers_nobody_took_are_removed_and_a_short_one_is_not_used(tmp_path: Path) -> None:
    root = tmp_path / "l"
    whole = os.urandom(1 << 20)
    desc, _ = _blob(whole)
    other, _ = _blob(b"other layer")
    with LayoutSink(root) as sink:
        uploader = sink.stream_uploader(_FakeSource(whole))
        assert uploader is not None
        short = uploader(desc)
        short.write(whole[:1000])
        short.finish()
        left = uploader(other)
        left.write(b"other layer")
        left.finish()
        sink.copy_blob(desc, _FakeSource(whole))  # the short staged file is ignored: copied whole
        assert sink.blob_path(desc.digest).read_bytes() == whole
        aborted = uploader(_blob(b"failed layer")[0])
        aborted.write(b"failed")
        aborted.abort()
        assert len(_staged(root)) == 2
    assert _staged(root) == []  # leaving the block: what no copy took is gone


def test_no_staging_from_another_layout(tmp_path: Path) -> None:
    src_root, _ = _copy_vector(tmp_path)
    assert LayoutSink(tmp_path / "dst").stream_uploader(LayoutSource(src_root)) is None  # hard links instead
    assert not (tmp_path / "dst").exists()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_sink_refuses_unrelated_directories(tmp_path: Path) -> None:
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "notes.txt").write_text("mine")
    with pytest.raises(ImageError, match="non-empty directory that is not an OCI image layout"):
        LayoutSink(tmp_path / "home")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ImageError, match="not a directory"):
        LayoutSink(tmp_path / "file")
    assert sorted(p.name for p in (tmp_path / "home").iterdir()) == ["notes.txt"]


def test_concurrent_writers_keep_every_entry(tmp_path: Path) -> None:
    root = tmp_path / "l"
    LayoutSink(root)
    descs = []
    for i in range(24):
        desc, data = _blob(f"manifest {i}".encode())
        LayoutSink(root).write_blob(desc, data)
        descs.append(desc)

    def add(chunk: list[Descriptor]) -> None:
        sink = LayoutSink(root)
        for desc in chunk:
            sink.add_entry(desc)

    threads = [threading.Thread(target=add, args=(descs[i::4],)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert {e.digest for e in LayoutSource(root).entries()} == {d.digest for d in descs}


def test_open_sink_rejects_digests_and_read_only_transports(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="needs a tag, not a digest"):
        open_sink(f"oci:{tmp_path}@sha256:" + "a" * 64)
    with pytest.raises(ImageError, match="can only be a source"):
        open_sink("docker-daemon:busybox")
    with pytest.raises(ImageError, match="can only be a source"):
        open_sink(f"docker-archive:{tmp_path}/x.tar")

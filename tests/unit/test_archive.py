"""oci-archive: and docker-archive: read from the tar without extracting it; oci-archive: written atomically."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import tarfile
from pathlib import Path

import pytest

from socikit.content.archive import DockerArchiveSource, OciArchiveSink, OciArchiveSource
from socikit.content.layout import LayoutSource
from socikit.errors import DigestMismatchError, ImageError
from socikit.oci import mediatypes as mt
from socikit.oci.descriptor import Descriptor, descriptor_for
from socikit.transports import open_sink, open_source
from tests.vectors import all_vectors

VECTORS = all_vectors()
TRICKY = next(v for v in VECTORS if v.name == "tricky-pax")


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def tar_directory(directory: Path, out: Path, *, prefix: str = "") -> Path:
    """Tar `directory`'s contents (member names `prefix` + relative path), directories included."""
    with tarfile.open(out, "w") as tar:
        for path in sorted(directory.rglob("*")):
            tar.add(path, arcname=prefix + str(path.relative_to(directory)), recursive=False)
    return out


def _reachable(source, desc: Descriptor, seen: dict[str, bytes]) -> None:
    if desc.digest in seen:
        return
    if desc.media_type in mt.MANIFEST_MEDIA_TYPES | mt.INDEX_MEDIA_TYPES:
        data = source.read_blob(desc)
        seen[desc.digest] = data
        doc = json.loads(data)
        children = doc.get("manifests") or [doc["config"], *(doc.get("layers") or [])]
        for child in children:
            _reachable(source, Descriptor.from_json(child), seen)
    else:
        with source.open_blob(desc) as stream:
            seen[desc.digest] = stream.read()


# --- oci-archive ---------------------------------------------------------------------------------

@pytest.mark.parametrize("vector", VECTORS, ids=[v.name for v in VECTORS])
def test_oci_archive_round_trip(vector, tmp_path: Path) -> None:
    archive = tar_directory(vector.input_dir, tmp_path / "image.tar")
    source = open_source(f"oci-archive:{archive}:latest")
    root = source.resolve()
    assert root == LayoutSource(vector.input_dir, tag="latest").resolve()
    blobs: dict[str, bytes] = {}
    _reachable(source, root, blobs)
    assert len(blobs) >= 3
    for digest, data in blobs.items():
        assert _sha(data) == digest and data == vector.blob(digest).read_bytes()
    source.close()
    assert not any(p.name != "image.tar" for p in tmp_path.iterdir())  # nothing extracted


def test_oci_archive_member_names_with_dot_slash_and_gzip(tmp_path: Path) -> None:
    plain = tar_directory(TRICKY.input_dir, tmp_path / "dot.tar", prefix="./")
    compressed = tmp_path / "image.tar.gz"
    compressed.write_bytes(gzip.compress(plain.read_bytes(), mtime=0))
    expected = LayoutSource(TRICKY.input_dir).resolve()
    for path in (plain, compressed):
        source = OciArchiveSource(path)
        assert source.resolve() == expected
        assert source.read_blob(expected) == TRICKY.blob(expected.digest).read_bytes()
        spool = source._archive.data_path
        source.close()
        assert spool == path or not spool.exists()  # the decompressed copy is removed on close


def test_oci_archive_open_blob_streams_in_chunks(tmp_path: Path) -> None:
    archive = tar_directory(TRICKY.input_dir, tmp_path / "image.tar")
    source = OciArchiveSource(archive)
    manifest = json.loads(source.read_blob(source.resolve()))
    layer = Descriptor.from_json(manifest["layers"][0])
    expected = TRICKY.blob(layer.digest).read_bytes()
    with source.open_blob(layer) as stream:
        first = stream.read(100)
        rest = stream.read()
    assert first + rest == expected and len(first) == 100
    assert source.blob_opener(layer).read() == expected  # the picklable opener for worker processes


def test_oci_archive_digest_mismatch_and_missing_blob(tmp_path: Path) -> None:
    layout = tmp_path / "layout"
    shutil.copytree(TRICKY.input_dir, layout)
    root = LayoutSource(layout).resolve()
    config = Descriptor.from_json(json.loads((layout / "blobs/sha256" / root.digest[7:]).read_bytes())["config"])
    config_path = layout / "blobs/sha256" / config.digest[7:]
    config_path.write_bytes(b"x" * config.size)
    source = OciArchiveSource(tar_directory(layout, tmp_path / "bad.tar"))
    with pytest.raises(DigestMismatchError, match="has another digest"):
        source.read_blob(config)
    with pytest.raises(ImageError, match="is missing from the archive"):
        source.read_blob(Descriptor(media_type="x", digest="sha256:" + "0" * 64, size=1))
    with pytest.raises(ImageError, match="tag 'nope' is not in .*tags present: latest"):
        OciArchiveSource(tmp_path / "bad.tar", tag="nope").resolve()


def test_unreadable_archives_are_clear_errors(tmp_path: Path) -> None:
    good = tar_directory(TRICKY.input_dir, tmp_path / "good.tar")
    data = good.read_bytes()
    cases = {
        "junk.tar": (b"\x00garbage" * 1000, "not a readable tar archive"),
        "empty.tar": (b"", "not a readable tar archive"),
        "truncated.tar": (data[: len(data) // 2], "truncated|not a readable tar archive"),
        "broken.tar.gz": (gzip.compress(data)[:200], "corrupt gzip data"),
        "image.tar.zst": (b"\x28\xb5\x2f\xfd" + b"\x00" * 100, "zstd-compressed: decompress it"),
    }
    for name, (content, message) in cases.items():
        (tmp_path / name).write_bytes(content)
        for kind in ("oci-archive", "docker-archive"):
            with pytest.raises(ImageError, match=message):
                open_source(f"{kind}:{tmp_path / name}")
    with pytest.raises(ImageError, match="does not exist"):
        open_source(f"oci-archive:{tmp_path / 'missing.tar'}")
    with pytest.raises(ImageError, match=r"is a directory, not a tar file \(an OCI layout directory is read with oci:"):
        open_source(f"oci-archive:{TRICKY.input_dir}")
    with pytest.raises(ImageError, match="not an OCI archive"):
        open_source(f"oci-archive:{build_docker_save(tmp_path, oci_style=False)[0]}")
    with pytest.raises(ImageError, match="not a docker-archive"):
        open_source(f"docker-archive:{good}")


def _image_blobs(layout: Path, root: Descriptor) -> list[Descriptor]:
    manifest = json.loads((layout / "blobs/sha256" / root.digest[7:]).read_bytes())
    return [Descriptor.from_json(manifest["config"]), *(Descriptor.from_json(m) for m in manifest["layers"])]


def _write_image(sink, source: LayoutSource) -> Descriptor:
    root = source.resolve()
    for blob in _image_blobs(source.root, root):
        if not sink.has_blob(blob):
            sink.copy_blob(blob, source)
    sink.write_manifest(root, source.read_blob(root))
    sink.tag(root)
    return root


def test_oci_archive_sink_writes_atomically_and_keeps_other_tags(tmp_path: Path) -> None:
    out = tmp_path / "out" / "image.tar"
    vectors = [TRICKY, next(v for v in VECTORS if v.name == "empty-layer")]
    roots = []
    for vector, tag in zip(vectors, ("first", "second"), strict=True):
        sink = open_sink(f"oci-archive:{out}:{tag}")
        roots.append(_write_image(sink, LayoutSource(vector.input_dir)))
        sink.close()
    assert sorted(p.name for p in out.parent.iterdir()) == ["image.tar"]  # temp layouts removed
    with tarfile.open(out) as tar:
        names = tar.getnames()
        assert names[:4] == ["blobs", "blobs/sha256", "oci-layout", "index.json"]
        index = json.loads(tar.extractfile("index.json").read())  # type: ignore[union-attr]
    assert [(e["digest"], e["annotations"][mt.ANNOTATION_REF_NAME]) for e in index["manifests"]] == [
        (roots[0].digest, "first"), (roots[1].digest, "second")]
    for vector, root, tag in zip(vectors, roots, ("first", "second"), strict=True):
        source = OciArchiveSource(out, tag=tag)
        blobs: dict[str, bytes] = {}
        _reachable(source, source.resolve(), blobs)
        assert blobs == {d: vector.blob(d).read_bytes() for d in blobs}
        assert root.digest in blobs


def test_oci_archive_sink_leaves_the_file_alone_until_tag(tmp_path: Path) -> None:
    out = tar_directory(TRICKY.input_dir, tmp_path / "image.tar")
    before = out.read_bytes()
    sink = OciArchiveSink(out, tag="other")
    data = b"a blob written but never tagged"
    sink.write_blob(descriptor_for(data, "application/octet-stream"), data)
    assert sink.has_blob(_image_blobs(TRICKY.input_dir, LayoutSource(TRICKY.input_dir).resolve())[1])
    sink.close()
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["image.tar"]
    (tmp_path / "notes.txt").write_text("not an archive")
    with pytest.raises(ImageError):
        OciArchiveSink(tmp_path / "notes.txt")
    assert (tmp_path / "notes.txt").read_text() == "not an archive"


# --- docker-archive ------------------------------------------------------------------------------

def make_layer(files: dict[str, bytes]) -> bytes:
    """An uncompressed layer tar holding `files` (and their parent directories)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs = sorted({str(Path(name).parent) for name in files} - {"."})
        for name in dirs:
            info = tarfile.TarInfo(name + "/")
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 1_700_000_000
            tar.addfile(info)
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 1_700_000_000
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def make_config(layers: list[bytes]) -> bytes:
    """A minimal Docker image config whose diff_ids are the uncompressed layers' digests."""
    diff_ids = [_sha(gzip.decompress(layer) if layer[:2] == b"\x1f\x8b" else layer) for layer in layers]
    return json.dumps({
        "architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
        "config": {"Cmd": ["/bin/true"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": "2024-01-01T00:00:00Z", "created_by": f"layer {i}"} for i in range(len(layers))],
    }, separators=(",", ":")).encode()


def default_layers() -> list[bytes]:
    return [
        make_layer({"etc/hello.txt": b"hello\n", "usr/bin/tool": os.urandom(70_000)}),
        make_layer({"etc/second.txt": b"second\n" * 1000}),
        make_layer({"etc/hello.txt": b"hello\n", "usr/bin/tool": b"same"}),
    ]


def _add(tar: tarfile.TarFile, name: str, data: bytes | None = None, *, symlink: str = "") -> None:
    info = tarfile.TarInfo(name)
    if symlink:
        info.type, info.linkname = tarfile.SYMTYPE, symlink
        tar.addfile(info)
    elif data is None:
        info.type, info.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(info)
    else:
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))


def build_docker_save(
    tmp_path: Path,
    *,
    oci_style: bool,
    layers: list[bytes] | None = None,
    repo_tags: tuple[str, ...] = ("example.com/app:1",),
    repeat_first_layer: bool = False,
    name: str = "",
) -> tuple[Path, bytes, list[bytes]]:
    """A `docker save`-shaped archive: legacy (Docker < 25: `<id>/layer.tar`, `<id>/json`,
    `<id>/VERSION`, `<config hex>.json`, `repositories`, a repeated layer as a symlink to the
    first copy) or OCI-style (Docker 25+: `blobs/sha256/<hex>`, index.json, oci-layout, and the
    legacy `<id>/layer.tar` names kept as symlinks into blobs/). Returns (path, config, layers)."""
    layers = list(default_layers() if layers is None else layers)
    if repeat_first_layer:
        layers.append(layers[0])
    config = make_config(layers)
    config_hex = hashlib.sha256(config).hexdigest()
    path = tmp_path / (name or ("oci-style.tar" if oci_style else "legacy.tar"))
    layer_names: list[str] = []
    with tarfile.open(path, "w") as tar:
        seen: dict[str, str] = {}
        if oci_style:
            _add(tar, "blobs")
            _add(tar, "blobs/sha256")
        for i, layer in enumerate(layers):
            layer_hex = hashlib.sha256(layer).hexdigest()
            layer_id = hashlib.sha256(f"{i}{layer_hex}".encode()).hexdigest()
            blob = f"blobs/sha256/{layer_hex}"
            if oci_style:
                if layer_hex not in seen:
                    _add(tar, blob, layer)
                    seen[layer_hex] = blob
                _add(tar, layer_id)
                _add(tar, f"{layer_id}/layer.tar", symlink=f"../{blob}")
                layer_names.append(blob)
            else:
                _add(tar, layer_id)
                _add(tar, f"{layer_id}/VERSION", b"1.0")
                _add(tar, f"{layer_id}/json", json.dumps({"id": layer_id}).encode())
                if layer_hex in seen:
                    _add(tar, f"{layer_id}/layer.tar", symlink=f"../{seen[layer_hex]}")
                else:
                    _add(tar, f"{layer_id}/layer.tar", layer)
                    seen[layer_hex] = f"{layer_id}/layer.tar"
                layer_names.append(f"{layer_id}/layer.tar")
        config_name = f"blobs/sha256/{config_hex}" if oci_style else f"{config_hex}.json"
        _add(tar, config_name, config)
        entry = {"Config": config_name, "RepoTags": list(repo_tags) or None, "Layers": layer_names}
        _add(tar, "manifest.json", json.dumps([entry]).encode())
        if oci_style:
            _add(tar, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
            _add(tar, "index.json", b'{"schemaVersion":2,"manifests":[]}')
        else:
            repositories = {t.rsplit(":", 1)[0]: {t.rsplit(":", 1)[1]: "x"} for t in repo_tags}
            _add(tar, "repositories", json.dumps(repositories).encode())
    return path, config, layers


@pytest.mark.parametrize("oci_style", [False, True], ids=["legacy", "oci-style"])
def test_docker_archive_presents_a_docker_manifest(tmp_path: Path, oci_style: bool) -> None:
    path, config, layers = build_docker_save(tmp_path, oci_style=oci_style, repeat_first_layer=True)
    source = open_source(f"docker-archive:{path}:example.com/app:1")
    root = source.resolve()
    assert root.media_type == mt.MEDIA_TYPE_DOCKER_MANIFEST
    manifest_bytes = source.read_blob(root)
    assert _sha(manifest_bytes) == root.digest
    manifest = json.loads(manifest_bytes)
    assert list(manifest) == ["schemaVersion", "mediaType", "config", "layers"]
    assert manifest["config"] == {"mediaType": mt.MEDIA_TYPE_DOCKER_CONFIG, "digest": _sha(config), "size": len(config)}
    assert manifest["layers"] == [
        {"mediaType": mt.MEDIA_TYPE_DOCKER_LAYER, "digest": _sha(layer), "size": len(layer)} for layer in layers
    ]
    assert source.read_blob(Descriptor.from_json(manifest["config"])) == config
    for entry, layer in zip(manifest["layers"], layers, strict=True):
        with source.open_blob(Descriptor.from_json(entry)) as stream:
            assert stream.read() == layer
    source.close()


def test_docker_archive_gzip_layers_and_trusted_digests(tmp_path: Path) -> None:
    plain = default_layers()
    gzipped = [gzip.compress(plain[0], mtime=0), plain[1]]
    path, _, layers = build_docker_save(tmp_path, oci_style=False, layers=gzipped)
    source = DockerArchiveSource(path)
    manifest = json.loads(source.read_blob(source.resolve()))
    assert [m["mediaType"] for m in manifest["layers"]] == [mt.MEDIA_TYPE_DOCKER_LAYER_GZIP, mt.MEDIA_TYPE_DOCKER_LAYER]
    assert [m["digest"] for m in manifest["layers"]] == [_sha(layer) for layer in layers]
    # A plain layer whose bytes do not match its diff_id is caught when it is read.
    bad_layers = [plain[0]]
    bad = build_docker_save(tmp_path, oci_style=False, layers=bad_layers, name="bad.tar")[0]
    data = bad.read_bytes()
    marker = b"hello\n"
    bad.write_bytes(data.replace(marker, b"HELLO\n", 1))
    source = DockerArchiveSource(bad)
    layer = Descriptor.from_json(json.loads(source.read_blob(source.resolve()))["layers"][0])
    with pytest.raises(DigestMismatchError):
        source.read_blob(layer)


def test_docker_archive_picks_images_by_normalized_name(tmp_path: Path) -> None:
    one, _, _ = build_docker_save(tmp_path, oci_style=False, repo_tags=("busybox:latest",), name="one.tar")
    for ref in ("busybox", "busybox:latest", "docker.io/library/busybox:latest", "docker.io/busybox"):
        assert open_source(f"docker-archive:{one}:{ref}").resolve().media_type == mt.MEDIA_TYPE_DOCKER_MANIFEST
    with pytest.raises(ImageError, match="'docker.io/library/busybox:2' is not in .* it holds: busybox:latest"):
        open_source(f"docker-archive:{one}:busybox:2")
    untagged, _, _ = build_docker_save(tmp_path, oci_style=True, repo_tags=(), name="untagged.tar")
    assert DockerArchiveSource(untagged).resolve().size > 0


def test_docker_archive_with_several_images_needs_a_name(tmp_path: Path) -> None:
    path, config, layers = build_docker_save(tmp_path, oci_style=False, repo_tags=("a:1",), name="multi.tar")
    other_layers = [make_layer({"x": b"other"})]
    other_config = make_config(other_layers)
    with tarfile.open(path) as tar:
        members = {m.name: (m, tar.extractfile(m).read() if m.isreg() else None) for m in tar}  # type: ignore[union-attr]
    entries = json.loads(members.pop("manifest.json")[1] or b"")
    entries.append({"Config": "other.json", "RepoTags": ["b:2"], "Layers": ["other/layer.tar"]})
    with tarfile.open(path, "w") as tar:
        for member, data in members.values():
            tar.addfile(member, io.BytesIO(data) if data is not None else None)
        _add(tar, "other.json", other_config)
        _add(tar, "other/layer.tar", other_layers[0])
        _add(tar, "manifest.json", json.dumps(entries).encode())
    with pytest.raises(ImageError, match=r"holds 2 images \(a:1, b:2\): name one with docker-archive:"):
        DockerArchiveSource(path)
    source = DockerArchiveSource(path, ref="b:2")
    manifest = json.loads(source.read_blob(source.resolve()))
    assert manifest["config"]["digest"] == _sha(other_config)
    assert manifest["layers"][0]["digest"] == _sha(other_layers[0])


def test_docker_archive_missing_layer(tmp_path: Path) -> None:
    path, _, _ = build_docker_save(tmp_path, oci_style=True)
    with tarfile.open(path) as tar:
        kept = [(m, tar.extractfile(m).read() if m.isreg() else None) for m in tar  # type: ignore[union-attr]
                if not (m.name.startswith("blobs/sha256/") and m.size > 60_000)]
    with tarfile.open(path, "w") as tar:
        for member, data in kept:
            tar.addfile(member, io.BytesIO(data) if data is not None else None)
    with pytest.raises(ImageError, match="layer blobs/sha256/[0-9a-f]{64} is missing from"):
        DockerArchiveSource(path)

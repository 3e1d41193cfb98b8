"""SociImages: discovery, the index and every ztoc fetched once per manifest and kept on disk,
the layer -> ztoc map, prefetch spans, the first-layer flag, and no registry after a restart."""

from __future__ import annotations

import json
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from socikit.errors import RegistryError
from socikit.lazy.artifacts import ArtifactStore, SociImages
from socikit.oci import gojson
from socikit.oci import mediatypes as mt
from socikit.oci.descriptor import Descriptor
from socikit.oci.digest import sha256_digest
from socikit.soci.discover import PullModes
from socikit.soci.index import build_soci_index, ztoc_descriptor
from socikit.soci.prefetch import PrefetchSpan, dumps_prefetch
from socikit.ztoc.serialize import dumps as dumps_ztoc
from tests.images import TarBuilder
from tests.lazy.layers import Layer, make_layer, noise


class FakeRepository:
    """A repository in memory, counting what is asked of it."""

    host = "registry.example"
    name = "app"
    image_ref = "registry.example/app:1"

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}
        self.referrer_list: list[Descriptor] = []
        self.asked: Counter[str] = Counter()
        self.down = False
        self.lock = threading.Lock()

    def put(self, data: bytes) -> str:
        digest = sha256_digest(data)
        self.blobs[digest] = data
        return digest

    def _get(self, digest: str) -> bytes:
        with self.lock:
            self.asked[digest] += 1
        if self.down:
            raise RegistryError("registry unreachable")
        return self.blobs[digest]

    def read_manifest(self, digest: str) -> bytes:
        return self._get(digest)

    def read_blob(self, desc: Descriptor) -> bytes:
        return self._get(desc.digest)

    def referrers(self, subject: str, artifact_type: str) -> list[Descriptor]:
        self.asked["referrers"] += 1
        return [d for d in self.referrer_list if d.artifact_type == artifact_type]


def _layers() -> list[Layer]:
    out = []
    for n in range(3):
        b = TarBuilder()
        b.file(f"f{n}", noise(100_000, n))
        out.append(make_layer(b))
    return out


@pytest.fixture(scope="module")
def layers() -> list[Layer]:
    return _layers()


def publish(repo: FakeRepository, layers: list[Layer], *, indexed: tuple[int, ...], version: str = "v2",
            prefetch: dict[int, list[PrefetchSpan]] | None = None, disable_xattrs: bool = False) -> dict[str, str]:
    """The image (manifest) and its SOCI index in `repo`; returns digests."""
    layer_descs = [Descriptor(mt.MEDIA_TYPE_OCI_LAYER_GZIP, layer.digest, len(layer.blob)) for layer in layers]
    entries = []
    for n in indexed:
        data = dumps_ztoc(layers[n].ztoc)
        entries.append(ztoc_descriptor(repo.put(data), len(data), layer=layer_descs[n], span_size=65536,
                                       disable_xattrs=disable_xattrs))
    for n, spans in (prefetch or {}).items():
        data = dumps_prefetch(spans)
        entries.append(Descriptor(mt.MEDIA_TYPE_SOCI_PREFETCH, repo.put(data), len(data),
                                  annotations={mt.ANNOTATION_IMAGE_LAYER_DIGEST: layers[n].digest}))
    base_manifest = {"schemaVersion": 2, "mediaType": mt.MEDIA_TYPE_OCI_MANIFEST,
                     "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                "digest": repo.put(b"{}"), "size": 2},
                     "layers": [d.to_json() for d in layer_descs]}
    if version == "v1":
        manifest = gojson.dumps(base_manifest)
        manifest_digest = repo.put(manifest)
        subject = Descriptor(mt.MEDIA_TYPE_OCI_MANIFEST, manifest_digest, len(manifest))
        index, desc = build_soci_index(entries, version="v1", subject=subject, build_tool_identifier="t")
        repo.put(index)
        repo.referrer_list.append(desc)
        return {"manifest": manifest_digest, "index": desc.digest}
    index, desc = build_soci_index(entries, version="v2", subject=None, build_tool_identifier="t")
    repo.put(index)
    manifest = gojson.dumps({**base_manifest, "annotations": {mt.ANNOTATION_INDEX_DIGEST: desc.digest}})
    return {"manifest": repo.put(manifest), "index": desc.digest}


def test_v2_layers_map_to_their_ztocs_fetched_once(layers: list[Layer], tmp_path: Path) -> None:
    repo = FakeRepository()
    digests = publish(repo, layers, indexed=(0, 2), prefetch={2: [PrefetchSpan(0, 1)]}, disable_xattrs=True)
    images = SociImages(ArtifactStore(tmp_path))
    first = images.layer(repo, digests["manifest"], layers[0].digest)  # type: ignore[arg-type]
    assert first is not None and first.bottom and first.disable_xattrs
    assert first.ztoc == layers[0].ztoc and first.prefetch_spans == () and first.index_digest == digests["index"]
    assert images.layer(repo, digests["manifest"], layers[1].digest) is None  # type: ignore[arg-type]
    top = images.layer(repo, digests["manifest"], layers[2].digest)  # type: ignore[arg-type]
    assert top is not None and not top.bottom and top.prefetch_spans == (0, 1)
    # the manifest, the index, both ztocs and the prefetch artifact: each once
    assert set(repo.asked.values()) == {1} and len(repo.asked) == 5


def test_a_restarted_daemon_needs_no_registry(layers: list[Layer], tmp_path: Path) -> None:
    repo = FakeRepository()
    digests = publish(repo, layers, indexed=(0, 1, 2))
    SociImages(ArtifactStore(tmp_path)).layer(repo, digests["manifest"], layers[1].digest)  # type: ignore[arg-type]
    repo.down = True
    again = SociImages(ArtifactStore(tmp_path)).layer(repo, digests["manifest"],  # type: ignore[arg-type]
                                                     layers[2].digest)
    assert again is not None and again.ztoc == layers[2].ztoc


def test_concurrent_layers_of_one_image_share_one_fetch(layers: list[Layer], tmp_path: Path) -> None:
    repo = FakeRepository()
    digests = publish(repo, layers, indexed=(0, 1, 2))
    images = SociImages(ArtifactStore(tmp_path))
    results: list[Any] = []
    threads = [threading.Thread(target=lambda n=n: results.append(
        images.layer(repo, digests["manifest"], layers[n % 3].digest))) for n in range(9)]  # type: ignore[misc]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(results) == 9 and all(r is not None for r in results)
    assert repo.asked[digests["index"]] == 1 and repo.asked[digests["manifest"]] == 1


def test_v1_only_when_enabled(layers: list[Layer], tmp_path: Path) -> None:
    repo = FakeRepository()
    digests = publish(repo, layers, indexed=(1,), version="v1")
    assert SociImages(ArtifactStore(tmp_path / "a")).layer(repo, digests["manifest"],  # type: ignore[arg-type]
                                                          layers[1].digest) is None
    found = SociImages(ArtifactStore(tmp_path / "b"), modes=PullModes(v2=True, v1=True)).layer(
        repo, digests["manifest"], layers[1].digest)  # type: ignore[arg-type]
    assert found is not None and found.ztoc == layers[1].ztoc and repo.asked["referrers"] == 1


def test_explicit_index_digest(layers: list[Layer], tmp_path: Path) -> None:
    repo = FakeRepository()
    digests = publish(repo, layers, indexed=(2,), version="v1")  # the manifest names no index
    found = SociImages(ArtifactStore(tmp_path)).layer(repo, digests["manifest"], layers[2].digest,  # type: ignore[arg-type]
                                                     digests["index"])
    assert found is not None and repo.asked["referrers"] == 0


def test_no_index_is_remembered_for_a_while(layers: list[Layer], tmp_path: Path) -> None:
    repo = FakeRepository()
    manifest = repo.put(json.dumps({"schemaVersion": 2, "layers": []}).encode())
    images = SociImages(ArtifactStore(tmp_path))
    for layer in layers:
        assert images.layer(repo, manifest, layer.digest) is None  # type: ignore[arg-type]
    assert repo.asked[manifest] == 1


def test_a_damaged_stored_artifact_is_fetched_again(layers: list[Layer], tmp_path: Path) -> None:
    repo = FakeRepository()
    digests = publish(repo, layers, indexed=(0,))
    store = ArtifactStore(tmp_path)
    SociImages(store).layer(repo, digests["manifest"], layers[0].digest)  # type: ignore[arg-type]
    (tmp_path / "blobs" / digests["index"].split(":")[1]).write_bytes(b"garbage")
    assert store.get(digests["index"]) is None
    assert SociImages(store).layer(repo, digests["manifest"], layers[0].digest) is not None  # type: ignore[arg-type]
    assert repo.asked[digests["index"]] == 2


def test_not_an_index(layers: list[Layer], tmp_path: Path) -> None:
    repo = FakeRepository()
    fake_index = repo.put(gojson.dumps({"schemaVersion": 2, "mediaType": mt.MEDIA_TYPE_OCI_MANIFEST,
                                        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                                   "digest": mt.EMPTY_JSON_DIGEST, "size": 2}, "layers": []}))
    manifest = repo.put(gojson.dumps({"schemaVersion": 2, "layers": [],
                                      "annotations": {mt.ANNOTATION_INDEX_DIGEST: fake_index}}))
    with pytest.raises(Exception, match="not a SOCI index"):
        SociImages(ArtifactStore(tmp_path)).layer(repo, manifest, layers[0].digest)  # type: ignore[arg-type]

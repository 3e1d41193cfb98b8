"""SOCI index discovery (`socikit.soci.discover`): the pure reading of manifests and index entries on
the reference's own output (the multi-platform golden vector), and the snapshotter's decision
order (fact sheet §6.5: explicit label, then the v2 annotation, then v1 referrers when enabled;
v1 selection = the first referrer)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conformance.layout import assemble_expected_layout
from socikit.content.base import HasBlobPaths, ListsManifests, ReadsManifestsByDigest
from socikit.content.layout import LayoutSource
from socikit.errors import FormatError, ImageError
from socikit.oci import mediatypes as mt
from socikit.oci.descriptor import Descriptor
from socikit.oci.manifest import ImageManifest
from socikit.soci import discover
from tests.vectors import VECTORS_DIR

MULTI = VECTORS_DIR / "multi-platform"
EXPECTED = MULTI / "expected-current"


def _converted_entries() -> list[Descriptor]:
    doc = json.loads((EXPECTED / "converted-index.json").read_bytes())
    return [Descriptor.from_json(m) for m in doc["manifests"]]


def _v1_indexes() -> dict[str, tuple[Descriptor, dict]]:
    """subject manifest digest -> (referrer descriptor, decoded index) of the vector's v1 indexes."""
    out = {}
    for path in sorted(EXPECTED.glob("soci-index-v1-*.json")):
        data = path.read_bytes()
        doc = json.loads(data)
        desc = Descriptor(mt.MEDIA_TYPE_OCI_MANIFEST, "sha256:" + path.stem.rsplit("-", 1)[1], len(data),
                          artifact_type=mt.ARTIFACT_TYPE_SOCI_INDEX_V1)
        out[doc["subject"]["digest"]] = (desc, doc)
    return out


# --- the pure half ---------------------------------------------------------------------------------

def test_entries_of_a_converted_index() -> None:
    entries = _converted_entries()
    images = [e for e in entries if discover.is_image_entry(e)]
    soci = discover.soci_index_entries(entries)
    assert len(images) == 2 and len(soci) == 2 and not set(images) & set(soci)
    assert discover.platform_manifest_entries(entries) == images
    for image in images:
        target = discover.index_digest_annotation(image.annotations)
        (entry,) = discover.v2_entries_of(entries, image.digest)
        assert entry.digest == target
        assert discover.indexed_manifest_digest(entry) == image.digest
        assert discover.index_version(entry.artifact_type) == "v2"
        manifest = (EXPECTED / f"manifest-{image.digest.split(':')[1]}.json").read_bytes()
        assert discover.v2_index_digest(manifest) == target  # the manifest itself names the index too
        assert discover.index_digest_annotation(ImageManifest.from_json(manifest).annotations) == target


def test_an_index_entry_that_lost_its_artifact_type_is_found_through_its_manifest() -> None:
    entries = _converted_entries()
    linked = {discover.index_digest_annotation(e.annotations) for e in entries if discover.is_image_entry(e)}
    linked.discard(None)
    stripped = [e.with_changes(artifact_type="", media_type="application/octet-stream")
                if discover.is_soci_index_entry(e) else e for e in entries]
    assert discover.soci_index_entries(stripped) == []
    assert {e.digest for e in discover.soci_index_entries(stripped, linked)} == linked


def test_manifest_annotation_edge_cases() -> None:
    assert discover.index_digest_annotation({}) is None
    assert discover.index_digest_annotation({mt.ANNOTATION_INDEX_DIGEST: ""}) == ""  # present, as written
    assert discover.v2_index_digest(b'{"annotations":{"com.amazon.soci.index-digest":""}}') is None
    assert discover.v2_index_digest(b'{"annotations":null}') is None
    assert discover.v2_index_digest(b'{"schemaVersion":2}') is None
    with pytest.raises(FormatError):
        discover.v2_index_digest(b"[1]")
    with pytest.raises(FormatError):
        discover.v2_index_digest(b"not json")


def test_config_media_type_says_which_version_an_index_is() -> None:
    for subject, (_, doc) in _v1_indexes().items():
        assert subject and discover.config_index_version(doc) == "v1"
    v2 = json.loads(next(EXPECTED.glob("soci-index-v2-*.json")).read_bytes())
    assert discover.config_index_version(v2) == "v2"
    assert discover.config_index_version({"config": {"mediaType": mt.MEDIA_TYPE_OCI_CONFIG}}) is None
    assert discover.config_index_version({}) is None


def test_v1_selection_is_the_first_referrer() -> None:
    a = Descriptor(mt.MEDIA_TYPE_OCI_MANIFEST, "sha256:" + "a" * 64, 1, artifact_type=discover.V1)
    b = Descriptor(mt.MEDIA_TYPE_OCI_MANIFEST, "sha256:" + "b" * 64, 1, artifact_type=discover.V1)
    other = Descriptor(mt.MEDIA_TYPE_OCI_MANIFEST, "sha256:" + "c" * 64, 1, artifact_type="application/x-sig")
    assert discover.select_v1_index([other, b, a]) == b
    assert discover.v1_indexes([other, b, a]) == [b, a]
    assert discover.select_v1_index([other]) is None
    assert discover.select_v1_index([]) is None


def test_layout_v1_candidates(tmp_path: Path) -> None:
    layout = assemble_expected_layout(MULTI, tmp_path / "layout")
    source = LayoutSource(layout)
    assert isinstance(source, ListsManifests) and isinstance(source, HasBlobPaths)
    entries = source.entries()
    v1 = _v1_indexes()
    candidates = discover.layout_v1_candidates(entries, image_digests=set())
    assert {c.digest for c in candidates} == {d.digest for d, _ in v1.values()}
    # An untyped entry is a candidate too (its config decides); an image manifest of the image is not.
    untyped = candidates[0].with_changes(artifact_type="")
    image = candidates[1]
    picked = discover.layout_v1_candidates([untyped, untyped, image], image_digests={image.digest})
    assert picked == [untyped]
    foreign = candidates[0].with_changes(artifact_type="application/x-sig")
    assert discover.layout_v1_candidates([foreign], image_digests=set()) == []


# --- the snapshotter's decision ------------------------------------------------------------------

class Store:
    """A store as the snapshotter sees it: manifests by digest and referrers, with a call log."""

    def __init__(self, manifests: dict[str, bytes], referrers: dict[str, list[Descriptor]]) -> None:
        self.manifests = manifests
        self.by_subject = referrers
        self.calls: list[str] = []

    def read_manifest(self, digest: str) -> bytes:
        self.calls.append(f"manifest {digest}")
        try:
            return self.manifests[digest]
        except KeyError:
            raise ImageError(f"{digest} not found") from None

    def referrers(self, subject: str, artifact_type: str) -> list[Descriptor]:
        self.calls.append(f"referrers {subject} {artifact_type}")
        return self.by_subject.get(subject, [])


@pytest.fixture
def store() -> Store:
    manifests = {
        "sha256:" + p.stem.split("-", 1)[1]: p.read_bytes() for p in EXPECTED.glob("manifest-*.json")
    }
    input_index = json.loads((MULTI / "input" / "index.json").read_bytes())
    top = input_index["manifests"][0]["digest"].split(":")[1]
    for entry in json.loads((MULTI / "input" / "blobs" / "sha256" / top).read_bytes())["manifests"]:
        digest = entry["digest"]
        manifests[digest] = (MULTI / "input" / "blobs" / "sha256" / digest.split(":")[1]).read_bytes()
    referrers = {subject: [desc] for subject, (desc, _) in _v1_indexes().items()}
    return Store(manifests, referrers)


def _converted_and_original(store: Store) -> tuple[str, str]:
    converted = next(d for d, data in store.manifests.items() if discover.v2_index_digest(data))
    original = next(iter(_v1_indexes()))
    return converted, original


def test_default_modes_find_the_v2_annotation_without_asking_for_referrers(store: Store) -> None:
    converted, _ = _converted_and_original(store)
    found = discover.find_soci_index(converted, read_manifest=store.read_manifest, list_referrers=store.referrers)
    assert found is not None and found.how == "annotation" and found.version == "v2"
    assert found.digest == discover.v2_index_digest(store.manifests[converted])
    assert store.calls == [f"manifest {converted}"]


def test_default_modes_do_not_use_v1(store: Store) -> None:
    _, original = _converted_and_original(store)
    assert discover.find_soci_index(original, read_manifest=store.read_manifest,
                                    list_referrers=store.referrers) is None
    assert store.calls == [f"manifest {original}"]  # v1 is off by default: no referrers query


def test_v1_when_enabled_takes_the_first_referrer(store: Store) -> None:
    _, original = _converted_and_original(store)
    first, _ = _v1_indexes()[original]
    second = Descriptor(mt.MEDIA_TYPE_OCI_MANIFEST, "sha256:" + "e" * 64, 9, artifact_type=discover.V1)
    store.by_subject[original] = [first, second]
    found = discover.find_soci_index(original, read_manifest=store.read_manifest, list_referrers=store.referrers,
                                     modes=discover.PullModes(v2=True, v1=True))
    assert found == discover.FoundIndex(first.digest, "referrers", first) and found.version == "v1"
    assert store.calls == [f"manifest {original}", f"referrers {original} {discover.V1}"]
    only_v1 = Store(store.manifests, store.by_subject)
    found = discover.find_soci_index(original, read_manifest=only_v1.read_manifest,
                                     list_referrers=only_v1.referrers, modes=discover.PullModes(v2=False, v1=True))
    assert found is not None and found.digest == first.digest
    assert only_v1.calls == [f"referrers {original} {discover.V1}"]  # the manifest is not read


def test_the_explicit_label_comes_first(store: Store) -> None:
    converted, _ = _converted_and_original(store)
    explicit = "sha256:" + "f" * 64
    labels = {discover.LABEL_SOCI_INDEX_DIGEST: explicit, discover.LABEL_MANIFEST_DIGEST: converted,
              "containerd.io/snapshot.ref": "chain"}
    label_digest, manifest_digest = discover.discovery_labels(labels)
    found = discover.find_soci_index(manifest_digest, explicit_digest=label_digest,
                                     read_manifest=store.read_manifest, list_referrers=store.referrers)
    assert found == discover.FoundIndex(explicit, "label") and found.version is None
    assert store.calls == []
    # An empty label (containerd sends one) is no label.
    assert discover.discovery_labels({discover.LABEL_SOCI_INDEX_DIGEST: ""}) == ("", "")
    found = discover.find_soci_index(converted, explicit_digest="", read_manifest=store.read_manifest,
                                     list_referrers=None)
    assert found is not None and found.how == "annotation"
    with pytest.raises(ImageError, match="is not a digest"):
        discover.find_soci_index(converted, explicit_digest="latest", read_manifest=store.read_manifest,
                                 list_referrers=None)


def test_modes_and_failures(store: Store) -> None:
    _, original = _converted_and_original(store)
    off = discover.PullModes(v2=False, v1=False)
    with pytest.raises(ImageError, match="both disabled"):
        discover.find_soci_index(original, read_manifest=store.read_manifest, list_referrers=store.referrers,
                                 modes=off)
    with pytest.raises(ImageError, match="cannot list"):
        discover.find_soci_index(original, read_manifest=store.read_manifest, list_referrers=None,
                                 modes=discover.PullModes(v2=False, v1=True))
    with pytest.raises(ImageError, match="not found"):  # an unreadable manifest is an error, not "no index"
        discover.find_soci_index("sha256:" + "0" * 64, read_manifest=store.read_manifest,
                                 list_referrers=store.referrers)


def test_a_layout_reads_manifests_by_digest(tmp_path: Path) -> None:
    layout = assemble_expected_layout(MULTI, tmp_path / "layout")
    source = LayoutSource(layout)
    assert isinstance(source, ReadsManifestsByDigest)
    converted = _converted_entries()[0]
    data, desc = source.read_manifest(converted.digest)
    assert (desc.digest, desc.size, desc.media_type) == (converted.digest, converted.size, converted.media_type)
    found = discover.find_soci_index(converted.digest, read_manifest=lambda d: source.read_manifest(d)[0],
                                     list_referrers=None)
    assert found is not None and found.digest == discover.index_digest_annotation(converted.annotations)
    with pytest.raises(ImageError, match="is not in the layout"):
        source.read_manifest("sha256:" + "0" * 64)

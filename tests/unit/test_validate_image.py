"""validate_image on other shapes of image and discovery paths: a lone v2 manifest, SOCI v1 found
through a registry's referrers, a report's JSON form."""

from __future__ import annotations

import json
from pathlib import Path
from typing import BinaryIO

import pytest

from conformance.layout import assemble_expected_layout, read_json
from socikit.content.layout import LayoutSource
from socikit.errors import ImageError, RegistryError
from socikit.oci import mediatypes as mt
from socikit.oci.descriptor import Descriptor
from socikit.validate import CHECK_DESCRIPTIONS, CHECK_NAMES, validate_image
from socikit.validate.report import V1_DISCOVERABLE, V1_SUBJECT, V2_LINKS
from tests.vectors import VECTORS_DIR


class RegistryLike:
    """An ImageSource over a layout's blobs that, like a registry source, offers no index.json
    listing: SOCI v1 indexes can only be found through its referrers() (the
    `content.base.ReadsReferrers` ability), manifests by digest through read_manifest()."""

    def __init__(self, layout: Path, root: Descriptor, found: dict[str, list[Descriptor]] | None = None,
                 fail: bool = False) -> None:
        self._layout = LayoutSource(layout)
        self._root = root
        self.found = found or {}
        self.fail = fail
        self.calls: list[tuple[str, str]] = []

    def resolve(self) -> Descriptor:
        return self._root

    def read_blob(self, desc: Descriptor) -> bytes:
        return self._layout.read_blob(desc)

    def open_blob(self, desc: Descriptor) -> BinaryIO:
        return self._layout.open_blob(desc)

    def read_manifest(self, digest: str) -> tuple[bytes, Descriptor]:
        data = self._layout.blob_path(digest).read_bytes()
        return data, Descriptor(mt.MEDIA_TYPE_OCI_MANIFEST, digest, len(data))

    def referrers(self, subject_digest: str, artifact_type: str) -> list[Descriptor]:
        self.calls.append((subject_digest, artifact_type))
        if self.fail:
            raise RegistryError("referrers: 500 internal server error")
        return self.found.get(subject_digest, [])

    def close(self) -> None:
        pass


@pytest.fixture
def layout(tmp_path: Path) -> Path:
    return assemble_expected_layout(VECTORS_DIR / "tricky-pax", tmp_path / "layout")


def _original_manifest() -> Descriptor:
    index = json.loads((VECTORS_DIR / "tricky-pax" / "input" / "index.json").read_bytes())
    return Descriptor.from_json(index["manifests"][0])


def _v1_entry(layout: Path) -> Descriptor:
    index = json.loads((layout / "index.json").read_bytes())
    return Descriptor.from_json(next(m for m in index["manifests"] if m.get("artifactType")))


def test_v1_index_found_through_referrers(layout: Path) -> None:
    original = _original_manifest()
    source = RegistryLike(layout, original, {original.digest: [_v1_entry(layout)]})
    report = validate_image(source, deep=True)
    assert report.passed, report.failures
    assert source.calls == [(original.digest, mt.ARTIFACT_TYPE_SOCI_INDEX_V1)]
    discoverable = report.by_name(V1_DISCOVERABLE)
    assert len(discoverable) == 1 and "referrer" in discoverable[0].reason
    assert report.by_name(V1_SUBJECT)[0].passed
    assert not report.summary.lazy and "soci_v1" in report.summary.reason


def test_failing_referrers_query_fails_v1_discoverable(layout: Path) -> None:
    report = validate_image(RegistryLike(layout, _original_manifest(), fail=True))
    assert report.failed_names() == {V1_DISCOVERABLE}
    assert "500" in report.by_name(V1_DISCOVERABLE)[0].reason


def _converted_manifest(layout: Path) -> Descriptor:
    converted = read_json(layout, json.loads((layout / "index.json").read_bytes())["manifests"][0]["digest"])
    return Descriptor.from_json(next(m for m in converted["manifests"] if "artifactType" not in m))


def test_referrer_about_another_manifest_fails_v1_subject(layout: Path) -> None:
    # The registry lists, for the converted manifest, a v1 index whose subject is the original.
    manifest = _converted_manifest(layout)
    report = validate_image(RegistryLike(layout, manifest, {manifest.digest: [_v1_entry(layout)]}))
    assert report.failed_names() == {V1_SUBJECT}
    assert "not the manifest it was listed for" in report.failures[0].reason


def test_lone_converted_manifest_finds_its_index_by_digest(layout: Path) -> None:
    manifest = _converted_manifest(layout)
    report = validate_image(LayoutSource(layout, digest=manifest.digest), deep=True)
    assert report.passed, report.failures
    links = report.by_name(V2_LINKS)
    assert links and "one-way" in links[0].reason
    assert report.summary.lazy


def test_missing_image_is_raised_not_reported(tmp_path: Path, layout: Path) -> None:
    """Not reaching the image is no property of it: the source's error, not a failed check."""
    (tmp_path / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    (tmp_path / "index.json").write_text('{"schemaVersion":2,"manifests":[]}')
    with pytest.raises(ImageError, match="tag 'latest' is not in the layout"):
        validate_image(LayoutSource(tmp_path, tag="latest"))
    root = LayoutSource(layout, tag="latest").resolve()
    (layout / "blobs" / "sha256" / root.digest[7:]).unlink()
    with pytest.raises(ImageError, match=f"blob {root.digest} is missing"):
        validate_image(LayoutSource(layout, tag="latest"))


def test_report_json_shape(layout: Path) -> None:
    report = validate_image(LayoutSource(layout, tag="latest"), sample=2)
    data = json.loads(json.dumps(report.to_json()))
    assert data["passed"] is True and data["sample"] == 2
    assert data["summary"]["lazy"] is True
    assert data["summary"]["text"].startswith("a soci-snapshotter with default settings lazily loads")
    assert {c["name"] for c in data["checks"]} == set(CHECK_NAMES) - {"prefetch", "toc-digest"}  # neither here
    assert all(set(c) == {"name", "passed", "subject", "reason"} for c in data["checks"])
    assert data["stats"]["files_checked"] == 2
    assert set(CHECK_DESCRIPTIONS) == set(CHECK_NAMES)

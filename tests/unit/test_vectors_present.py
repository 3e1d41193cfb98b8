"""The golden vectors are all there: many tests are parametrized over them or loop over their files,
and would pass vacuously (or be skipped as an empty parameter set) if a vector or its files went
missing."""

from __future__ import annotations

from tests.vectors import all_vectors

# vector -> (ztocs the reference made, ztocs in the current expected output, input blobs)
EXPECTED_VECTORS = {
    "docker-media-types": (2, 2, 4),
    "empty-layer": (2, 2, 4),
    "min-layer-size": (2, 2, 5),
    "multi-platform": (3, 3, 8),
    "span-zero": (1, 1, 3),
    "tricky-pax": (1, 1, 3),
    "uncompressed-layer": (1, 1, 3),
    "zstd-layer": (1, 1, 4),
}


def test_every_vector_is_present_with_its_files() -> None:
    vectors = {v.name: v for v in all_vectors()}
    assert set(vectors) == set(EXPECTED_VECTORS)
    for name, (reference_ztocs, current_ztocs, blobs) in EXPECTED_VECTORS.items():
        vector = vectors[name]
        assert len(vector.expected_ztocs()) == reference_ztocs, name
        assert len(list((vector.path / "expected-current").glob("ztoc-*.bin"))) == current_ztocs, name
        assert len(list((vector.path / "decoded").glob("*.decoded.json"))) == reference_ztocs, name
        assert (vector.path / "expected-current" / "converted-index.json").stat().st_size > 0, name
        assert len([p for p in (vector.input_dir / "blobs" / "sha256").iterdir() if p.is_file()]) == blobs, name
        assert (vector.input_dir / "index.json").is_file() and vector.params["span_size"] >= 0
        assert vector.layer_ztoc_pairs(), name

"""The engine's SHA-256 backends (csrc/sha256.c, csrc/sha256_ni.c) against hashlib, and whole ztoc
builds on each: the two-lane SHA-NI pair update must give the layer digest and every span digest
exactly as one stream at a time would."""

from __future__ import annotations

import gzip
import hashlib
import io
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from socikit.ztoc import _engine
from socikit.ztoc.builder import build_ztoc
from socikit.ztoc.serialize import dumps, loads
from tests.layers import gzip_members, seeded_tree, tree_tar
from tests.vectors import all_vectors


def _cpu_flags() -> set[str]:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def _backends_here() -> list[str]:
    """Every backend this machine can run, from /proc/cpuinfo (not from the engine's own probe)."""
    flags = _cpu_flags()
    names = ["portable", "libcrypto"]
    if {"sha_ni", "sse4_1", "ssse3"} <= flags:
        names.append("sha-ni")
        if {"avx512f", "avx512vl"} <= flags:
            names.append("sha-ni-avx512")
    return names


BACKENDS = _backends_here()


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> Iterator[str]:
    name: str = request.param
    _engine.use_sha256_backend(name)
    try:
        assert _engine.sha256_backend() == name
        yield name
    finally:
        _engine.use_sha256_backend(None)


def _hex(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _chunked(rng: random.Random, data: bytes, most: int) -> list[bytes]:
    chunks, pos = [], 0
    while pos < len(data):
        size = rng.randint(0, most)  # empty chunks included
        chunks.append(data[pos : pos + size])
        pos += size
    return chunks


def test_the_automatic_choice_is_the_fastest_backend_measured() -> None:
    """Two AVX-512 lanes where the CPU has them; otherwise libcrypto, which plain SHA-NI lanes did
    not beat (docs/performance.md). The differential tests below run the SHA-NI code wherever the
    CPU has it, whatever the automatic choice."""
    if "sha-ni" not in BACKENDS:
        pytest.skip("this CPU has no SHA extensions: only the libcrypto and portable backends exist")
    best = "sha-ni-avx512" if "sha-ni-avx512" in BACKENDS else "libcrypto"
    assert _engine.sha256_backend() == best


def test_backend_hook_refuses_unknown_names_and_restores_the_automatic_choice() -> None:
    automatic = _engine.sha256_backend()
    with pytest.raises(ValueError, match="sha-9"):
        _engine.use_sha256_backend("sha-9")
    assert _engine.sha256_backend() == automatic
    try:
        _engine.use_sha256_backend("portable")
        assert _engine.sha256_backend() == "portable"
        _engine.use_sha256_backend("libcrypto")
        assert _engine.sha256_backend() == "libcrypto"
    finally:
        _engine.use_sha256_backend(None)
    assert _engine.sha256_backend() == automatic


LENGTHS = [0, 1, 3, 55, 56, 57, 63, 64, 65, 119, 120, 127, 128, 129, 191, 192, 1000, 4097, 65599, (1 << 20) + 13]


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
def test_digests_match_hashlib_in_random_chunkings(backend: str) -> None:
    rng = random.Random(f"chunks-{backend}")
    for length in LENGTHS:
        data = rng.randbytes(length)
        expected = _hex(data)
        assert _engine.sha256(data) == expected, length
        assert _engine.sha256_chunks([data]) == expected, length
        for most in (1, 7, 64, 200, 70_000):
            assert _engine.sha256_chunks(_chunked(rng, data, most)) == expected, (length, most)


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
def test_pair_updates_from_every_fill_level(backend: str) -> None:
    """Lane A pre-fed k bytes (k = 0..64), lane B a different amount, then the same bytes into
    both through the pair update: the two lanes' blocks lie at different offsets of each chunk."""
    rng = random.Random(f"pair-{backend}")
    data = rng.randbytes(5000)
    for k in range(65):
        prefix_a = rng.randbytes(k)
        for other in (0, 1, 63 - k % 64, 64, 65 + k, rng.randint(0, 300)):
            prefix_b = rng.randbytes(other)
            chunks = _chunked(rng, data, rng.choice((3, 100, 1500, 6000)))
            got_a, got_b = _engine.sha256_pair(prefix_a, prefix_b, chunks)
            assert got_a == _hex(prefix_a + data), (k, other)
            assert got_b == _hex(prefix_b + data), (k, other)


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
def test_pair_updates_of_every_length(backend: str) -> None:
    rng = random.Random(f"pair-lengths-{backend}")
    for length in LENGTHS:
        data = rng.randbytes(length)
        for prefix_a, prefix_b in ((b"", b""), (b"a", b""), (bytes(63), bytes(1)), (bytes(17), bytes(40))):
            got = _engine.sha256_pair(prefix_a, prefix_b, [data])
            assert got == (_hex(prefix_a + data), _hex(prefix_b + data)), (length, len(prefix_a), len(prefix_b))


# -- whole builds ---------------------------------------------------------------------------------


def _test_layers() -> dict[str, tuple[bytes, str, int]]:
    tar = tree_tar(seeded_tree(31, total_bytes=3 << 20))
    return {
        "gzip-6 span 64 KiB": (gzip.compress(tar, compresslevel=6, mtime=0), "gzip", 1 << 16),
        "gzip-1 span 4 KiB": (gzip.compress(tar, compresslevel=1, mtime=0), "gzip", 4096),
        "gzip members span 999": (gzip_members(tar, 5), "gzip", 999),
        "uncompressed span 64 KiB": (tar, "uncompressed", 1 << 16),
        "uncompressed span 1000": (tar, "uncompressed", 1000),
    }


def _build_each_backend(blob: bytes, algorithm: str, span: int, tool: str = "t") -> dict[str, tuple[bytes, str]]:
    built = {}
    try:
        for name in BACKENDS:
            _engine.use_sha256_backend(name)
            result = build_ztoc(io.BytesIO(blob), algorithm=algorithm, span_size=span, build_tool_identifier=tool)
            built[name] = (dumps(result.ztoc), result.blob_digest)
    finally:
        _engine.use_sha256_backend(None)
    return built


def test_test_layers_build_byte_identical_ztocs_on_every_backend() -> None:
    for label, (blob, algorithm, span) in _test_layers().items():
        built = _build_each_backend(blob, algorithm, span)
        ztocs = {ztoc for ztoc, _ in built.values()}
        assert len(ztocs) == 1, label
        assert {digest for _, digest in built.values()} == {_hex(blob)}, label
        spans = loads(ztocs.pop()).compression_info
        assert spans.num_spans > 20, label


def test_golden_vectors_on_every_backend() -> None:
    cases = 0
    for vector in all_vectors():
        for layer, ztoc_digest in vector.layer_ztoc_pairs():
            expected = vector.expected_ztocs()[ztoc_digest]
            algorithm = loads(expected).compression_info.compression_algorithm
            blob = vector.blob(layer["layer_digest"]).read_bytes()
            built = _build_each_backend(blob, algorithm, vector.params["span_size"], vector.params["build_tool_id"])
            for name, (ztoc, digest) in built.items():
                assert ztoc == expected, (vector.name, name)
                assert digest == layer["layer_digest"], (vector.name, name)
            cases += 1
    assert cases >= 8

"""Fuzzing the ztoc reader: real ztocs (the golden vectors' and a freshly built one) mutated byte
by byte, in random spans and by truncation. `loads` may only succeed or raise ZtocFormatError;
what is derived from a decoded ztoc (span table, span ranges, TOC index, `ztoc info`, file reads
against the real blob) may only raise socikit's own errors. Never an IndexError, ValueError,
struct.error, MemoryError or a negative read length."""

from __future__ import annotations

import io
import json
import random
from dataclasses import dataclass

import pytest

from socikit.errors import SocikitError, ZtocFormatError
from socikit.ztoc.builder import build_ztoc
from socikit.ztoc.compression.gzip import HEADER_SIZE, RECORD_SIZE, WINDOW_SIZE
from socikit.ztoc.extract import file_range_reader, read_file
from socikit.ztoc.index import TocIndex
from socikit.ztoc.info import ztoc_info
from socikit.ztoc.model import Ztoc
from socikit.ztoc.serialize import dumps, loads, tar_header_offsets
from socikit.ztoc.spans import SpanTable
from tests.vectors import VECTORS_DIR
from tests.ztoc_trees import gzip_member, seeded_tar

SINGLE_BYTE_CASES = 200  # per ztoc (positions outside checkpoint windows)
SPAN_CASES = 60
TRUNCATIONS = 12  # per ztoc, besides every length below 48
SHIFTS = 8
EXTRAS = 0.1  # share of decoded ztocs also re-serialized, indexed and summarized


@dataclass
class Sample:
    name: str
    data: bytes
    blob: bytes | None  # the layer the ztoc indexes, when at hand


def _golden_samples() -> list[Sample]:
    samples = []
    for vector in sorted(VECTORS_DIR.iterdir()):
        current = vector / "expected-current"
        layer_of: dict[str, str] = {}
        for index in current.glob("soci-index-v1-*.json"):
            for layer in json.loads(index.read_text())["layers"]:
                layer_of[layer["digest"]] = layer["annotations"].get("com.amazon.soci.image-layer-digest", "")
        for path in sorted(current.glob("ztoc-*.bin")):
            digest = "sha256:" + path.name[len("ztoc-") : -len(".bin")]
            layer = layer_of.get(digest, "")
            blob_path = vector / "input" / "blobs" / "sha256" / layer.partition(":")[2]
            blob = blob_path.read_bytes() if layer and blob_path.is_file() else None
            samples.append(Sample(f"{vector.name}/{path.name[:17]}", path.read_bytes(), blob))
    return samples


@pytest.fixture(scope="module")
def samples() -> list[Sample]:
    golden = _golden_samples()
    assert len(golden) >= 8, "the golden vectors' ztocs are missing"
    assert sum(s.blob is not None for s in golden) >= 4, "no golden layer blobs found to read through"
    tar = seeded_tar(51, files=40, max_size=60_000)
    blob = gzip_member(tar)
    built = build_ztoc(io.BytesIO(blob), span_size=65536, build_tool_identifier="fuzz").ztoc
    assert built.compression_info.num_spans >= 3
    plain = build_ztoc(io.BytesIO(tar), algorithm="uncompressed", span_size=8192, build_tool_identifier="fuzz").ztoc
    return [*golden, Sample("fresh-gzip", dumps(built), blob), Sample("fresh-tar", dumps(plain), tar)]


def _structural_positions(data: bytes) -> list[int]:
    """Byte positions outside the 32 KiB checkpoint windows (which are opaque payload)."""
    ztoc = loads(data)
    checkpoints = ztoc.compression_info.checkpoints
    windows: list[tuple[int, int]] = []
    if ztoc.compression_info.compression_algorithm == "gzip" and checkpoints:
        base = data.find(checkpoints)
        assert base >= 0
        count = (len(checkpoints) - HEADER_SIZE) // RECORD_SIZE
        for k in range(count):
            start = base + HEADER_SIZE + k * RECORD_SIZE + 17
            windows.append((start, start + WINDOW_SIZE))
    positions: list[int] = []
    at = 0
    for start, end in windows:
        positions += range(at, start)
        at = end
    positions += range(at, len(data))
    return positions


def _exercise(data: bytes, blob: bytes | None, rng: random.Random, outcomes: dict[str, int]) -> None:
    """Decode and use a (possibly corrupt) ztoc; only socikit's errors may come out."""
    try:
        ztoc = loads(data)
    except ZtocFormatError as exc:
        # Refused by an explicit bounds check, not by struct or indexing failing underneath.
        assert "unpack" not in str(exc) and "out of range" not in str(exc), exc
        outcomes["loads refused"] += 1
        return
    outcomes["decoded"] += 1
    if rng.random() < EXTRAS:
        try:
            ztoc_info(ztoc, size=len(data))
        except SocikitError:
            pass
        index = TocIndex(ztoc.toc)
        for entry in ztoc.toc[:3]:
            index.lookup(entry.name)
        try:
            tar_header_offsets(ztoc.toc)
        except ZtocFormatError:
            pass
        try:
            dumps(ztoc)
        except ZtocFormatError:
            pass
    try:
        spans = SpanTable(ztoc)
    except ZtocFormatError:
        outcomes["geometry refused"] += 1
        return
    for span_id in range(spans.count):
        start, end = spans.compressed_range(span_id)
        assert 0 <= start <= end <= spans.compressed_size
        ustart, uend = spans.uncompressed_range(span_id)
        assert 0 <= ustart <= uend
    for entry in ztoc.toc:
        try:
            covering = spans.spans_covering(entry.uncompressed_offset, entry.uncompressed_size)
        except ZtocFormatError:
            continue
        assert all(0 <= s < spans.count for s in covering)
    if blob is not None and rng.random() < 0.2:
        _read_some(ztoc, blob, rng, outcomes)


def _read_some(ztoc: Ztoc, blob: bytes, rng: random.Random, outcomes: dict[str, int]) -> None:
    files = [e for e in ztoc.toc if e.type == "reg"]
    reader = file_range_reader(io.BytesIO(blob))
    for entry in rng.sample(files, min(2, len(files))):
        try:
            read_file(ztoc, reader, entry.name)
            outcomes["file read"] += 1
        except SocikitError:
            outcomes["read refused"] += 1


def test_mutated_ztocs_only_raise_socikit_errors(samples: list[Sample]) -> None:
    rng = random.Random(1234)
    outcomes = {"decoded": 0, "loads refused": 0, "geometry refused": 0, "file read": 0, "read refused": 0}
    cases = 0
    for sample in samples:
        _exercise(sample.data, sample.blob, random.Random(0), outcomes)  # the intact ztoc works
        positions = _structural_positions(sample.data)
        for pos in rng.sample(positions, min(SINGLE_BYTE_CASES, len(positions))):
            mutated = bytearray(sample.data)
            mutated[pos] = rng.choice((0x00, 0xFF, mutated[pos] ^ 0x01, mutated[pos] ^ 0x80, rng.randrange(256)))
            _exercise(bytes(mutated), sample.blob, rng, outcomes)
            cases += 1
        for _ in range(SPAN_CASES):
            mutated = bytearray(sample.data)
            pos = rng.choice(positions)
            length = rng.randint(2, 24)
            mutated[pos : pos + length] = rng.randbytes(length)
            _exercise(bytes(mutated), sample.blob, rng, outcomes)
            cases += 1
        for cut in {*range(48), *(rng.randrange(len(sample.data)) for _ in range(TRUNCATIONS))}:
            _exercise(sample.data[:cut], sample.blob, rng, outcomes)
            cases += 1
        for _ in range(SHIFTS):  # bytes inserted or removed: every offset after them shifts
            pos = rng.randrange(len(sample.data))
            shifted = sample.data[:pos] + rng.randbytes(rng.randint(1, 9)) + sample.data[pos:]
            _exercise(shifted, sample.blob, rng, outcomes)
            _exercise(sample.data[:pos] + sample.data[pos + rng.randint(1, 9) :], sample.blob, rng, outcomes)
            cases += 2
    assert cases > 4000
    # The fuzzing reached every stage: refusals at each level and successful reads.
    assert all(outcomes[k] > 0 for k in outcomes), outcomes


def test_ztoc_with_huge_counts_is_refused_cheaply() -> None:
    """A vector length or string length near 2**32 must be refused from the buffer's size, not
    by trying to allocate or unpack it."""
    tar = seeded_tar(52, files=5, max_size=2000)
    data = bytearray(dumps(build_ztoc(io.BytesIO(gzip_member(tar)), build_tool_identifier="x").ztoc))
    for pos in range(0, min(len(data), 400), 4):
        mutated = bytearray(data)
        mutated[pos : pos + 4] = b"\xff\xff\xff\x7f"
        try:
            loads(bytes(mutated))
        except ZtocFormatError:
            pass


def test_intact_samples_read_every_file(samples: list[Sample]) -> None:
    """The baseline of the fuzz test: unmutated, every ztoc serves every regular file of its blob."""
    read = 0
    for sample in samples:
        if sample.blob is None:
            continue
        ztoc = loads(sample.data)
        reader = file_range_reader(io.BytesIO(sample.blob))
        for entry in ztoc.toc:
            if entry.type == "reg":
                assert len(read_file(ztoc, reader, entry.name)) == entry.uncompressed_size
                read += 1
    assert read > 50

"""Multi-member gzip layers (pigz, mgzip, `cat a.gz b.gz`): checkpoints keep being taken after
each member's header with the reference's rule (fact sheet §2.2, soci v0.14+), spans cross member
boundaries inside them and at their edges, and every file reads back exactly through `get-file`
and through the per-span functions."""

from __future__ import annotations

import gzip
import io
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from socikit.cli import app
from socikit.ztoc.builder import build_ztoc
from socikit.ztoc.compression.gzip import Checkpoint, GzipZinfo
from socikit.ztoc.extract import file_range_reader, read_file
from socikit.ztoc.model import Ztoc
from socikit.ztoc.serialize import dumps
from socikit.ztoc.spans import SpanTable
from tests.ztoc_trees import members_at, regular_files, seeded_tar

GZIP_HEADER = 10  # a member header without optional fields
SPAN = 65536


def _build(blob: bytes, span: int) -> Ztoc:
    return build_ztoc(io.BytesIO(blob), span_size=span, build_tool_identifier="t").ztoc


def _checkpoints(ztoc: Ztoc) -> list[Checkpoint]:
    zinfo = GzipZinfo(ztoc.compression_info.checkpoints)
    return [zinfo.checkpoint(i) for i in range(zinfo.count)]


def _select(candidates: list[Checkpoint], span: int) -> list[tuple[int, int, int]]:
    """The reference's rule over candidate boundaries: keep one when out == 0 or more than
    `span` bytes were produced since the last kept one."""
    kept, last = [], 0
    for cp in candidates:
        if cp.uncompressed_offset == 0 or cp.uncompressed_offset - last > span:
            kept.append(cp[:3])
            last = cp.uncompressed_offset
    return kept


def _every_read_matches(ztoc: Ztoc, blob: bytes, tar: bytes) -> int:
    """Every file through `read_file`, and the whole tar through the per-span functions."""
    files = regular_files(tar)
    reader = file_range_reader(io.BytesIO(blob))
    for name, content in files.items():
        assert read_file(ztoc, reader, name) == content, name
    spans = SpanTable(ztoc)
    rebuilt = bytearray()
    for span_id in range(spans.count):
        start, end = spans.compressed_range(span_id)
        rebuilt += spans.inflate(span_id, blob[start:end])
    assert bytes(rebuilt) == tar[: ztoc.uncompressed_archive_size]
    return len(files)


@pytest.fixture(scope="module")
def tar() -> bytes:
    data = seeded_tar(61, files=80, max_size=150_000)
    assert len(data) > 20 * SPAN
    return data


def test_single_block_members_put_checkpoints_exactly_after_member_headers(tar: bytes) -> None:
    """Members of at most 30,000 bytes at memLevel 9 are one deflate block each, so the only
    places inflate can restart are right after each member's header: the reference's rule then
    says exactly which member starts become span edges (an empty member included)."""
    cuts = list(range(29_000, len(tar), 29_000))
    cuts.insert(5, cuts[4])  # an empty member between members 4 and 5
    blob, starts = members_at(tar, cuts, mem_level=9)
    sizes = [hi - lo for lo, hi in zip([0, *cuts], [*cuts, len(tar)], strict=True)]
    assert gzip.decompress(blob) == tar and len(starts) == len(sizes) > 30 and 0 in sizes
    # With span 0 every member with output before it gets a checkpoint after its header: one block each.
    every = _checkpoints(_build(blob, 0))
    outs = [sum(sizes[:k]) for k in range(len(sizes))]
    expected_all = [
        (start + GZIP_HEADER, out, 0)
        for k, (start, out) in enumerate(zip(starts, outs, strict=True))
        if k == 0 or sizes[k - 1] > 0
    ]
    assert [cp[:3] for cp in every] == expected_all
    for span in (SPAN, 100_000, 3 * SPAN):
        ztoc = _build(blob, span)
        got = [cp[:3] for cp in _checkpoints(ztoc)]
        last, expected = 0, []
        for start, out in zip(starts, outs, strict=True):
            if out == 0 and expected:
                continue  # inflate cannot stop twice at out 0 here: the first member is not empty
            if out == 0 or out - last > span:
                expected.append((start + GZIP_HEADER, out, 0))
                last = out
        assert got == expected, span
        # Spans hold several members: boundaries fall inside spans and exactly on span edges.
        spans = SpanTable(ztoc)
        edges = {spans.compressed_range(i)[0] for i in range(spans.count)}
        inside = [s for s in starts[1:] if s + GZIP_HEADER not in edges]
        assert inside and len(edges) > 3
        assert _every_read_matches(ztoc, blob, tar) > 50


@pytest.mark.parametrize("named", [False, True])
def test_big_members_have_checkpoints_inside_and_spans_across_them(tar: bytes, named: bool) -> None:
    cuts = [len(tar) // 5, len(tar) // 5 + 1000, len(tar) // 2, len(tar) - 70_000]
    blob, starts = members_at(tar, cuts, named=named)
    ends = [*starts[1:], len(blob)]
    sizes = [hi - lo for lo, hi in zip([0, *cuts], [*cuts, len(tar)], strict=True)]
    ztoc = _build(blob, SPAN)
    checkpoints = _checkpoints(ztoc)
    for member, (start, end, size) in enumerate(zip(starts, ends, sizes, strict=True)):
        inside = [cp for cp in checkpoints if start < cp.compressed_offset < end]
        if size > SPAN:
            assert inside, f"member {member} ({size} bytes) has no checkpoint"
    spans = SpanTable(ztoc)
    crossing = [
        i
        for i in range(spans.count)
        if any(spans.compressed_range(i)[0] < s < spans.compressed_range(i)[1] for s in starts[1:])
    ]
    assert crossing, "no span crosses a member boundary"
    # The placement is the rule applied to every possible restart point (span 0 takes them all),
    # and a restart point follows each later member's whole header (FNAME included).
    candidates = _checkpoints(_build(blob, 0))
    assert [cp[:3] for cp in checkpoints] == _select(candidates, SPAN)
    at = {cp.compressed_offset: cp for cp in candidates}
    for member, start in enumerate(starts[1:], 1):
        header = GZIP_HEADER + (len(f"part{member}") + 1 if named else 0)
        assert at[start + header].bits == 0 and at[start + header].uncompressed_offset == sum(sizes[:member])
    assert _every_read_matches(ztoc, blob, tar) > 50


def test_cat_of_gzip_cli_members_and_get_file(tar: bytes, tmp_path: Path) -> None:
    """`cat a.gz b.gz c.gz` from the gzip command (FNAME-less stdin members), read back with
    `socikit ztoc get-file`."""
    exe = shutil.which("gzip")
    if exe is None:
        raise RuntimeError("gzip is not installed (scripts/install.sh installs it)")
    third = len(tar) // 3
    parts = [tar[:third], tar[third : 2 * third], tar[2 * third :]]
    blob = b"".join(
        subprocess.run([exe, "-6", "-c"], input=p, stdout=subprocess.PIPE, check=True).stdout for p in parts
    )
    assert gzip.decompress(blob) == tar
    layer, ztoc_path = tmp_path / "layer.gz", tmp_path / "layer.ztoc"
    layer.write_bytes(blob)
    ztoc = _build(blob, SPAN)
    ztoc_path.write_bytes(dumps(ztoc))
    assert _every_read_matches(ztoc, blob, tar) > 50
    files = regular_files(tar)
    spans = SpanTable(ztoc)
    member_two = len(parts[0])
    across = [
        e
        for e in ztoc.toc
        if e.type == "reg" and e.uncompressed_offset < member_two < e.uncompressed_offset + e.uncompressed_size
    ]
    picked = across[:1] + [e for e in ztoc.toc if e.type == "reg"][::9]
    assert picked
    for entry in picked:
        out = tmp_path / "out"
        result = CliRunner().invoke(app, ["ztoc", "get-file", str(ztoc_path), str(layer), entry.name, "-o", str(out)])
        assert result.exit_code == 0, result.output
        assert out.read_bytes() == files[entry.name], entry.name
    assert spans.count > 5

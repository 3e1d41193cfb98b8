"""The C inflate loop (`_inflate_scan.scan`) on its own, and the builder's use of it: results do
not depend on how input and output are cut into pieces."""

from __future__ import annotations

import ctypes
import io

import pytest

from socikit.ztoc import builder
from socikit.ztoc.builder import build_ztoc
from socikit.ztoc.compression import _inflate_scan, _zran
from tests.layers import gzip_level, gzip_members, seeded_tree, tar_members, tree_tar

WINDOW = _inflate_scan.WINDOW_SIZE


@pytest.fixture(scope="module")
def tar() -> bytes:
    tree = seeded_tree(4, total_bytes=4 << 20)
    data = tree_tar(tree)
    assert tree.file_bytes >= 4 << 20 and len(tree.files) >= 100
    assert tar_members(data) == tree.files
    return data


def _scan_all(blob: bytes, *, area: int, chunk: int, span: int) -> tuple[bytes, list[tuple[int, int, int, bytes]]]:
    """Drive `scan` like the builder does: the whole output and every checkpoint."""
    out = bytearray(WINDOW + area)
    produced = bytearray()
    checkpoints: list[tuple[int, int, int, bytes]] = []
    with _zran.Inflater(_zran.WINDOW_BITS_AUTO) as inflater:
        strm = ctypes.addressof(inflater.strm)
        inflate, reset = inflater.lib.address("inflate"), inflater.lib.address("inflate_reset2")
        pos, totin, totout, last, ended = WINDOW, 0, 0, 0, False
        for start in range(0, len(blob), chunk):
            piece, in_pos = blob[start : start + chunk], 0
            while True:
                stop, ret, in_pos, end, totin, totout, last, ended, found = _inflate_scan.scan(
                    strm, inflate, reset, piece, in_pos, out, pos, span, totin, totout, last, ended
                )
                assert stop != _inflate_scan.FAILED, ret
                checkpoints += found
                produced += out[pos:end]
                pos = end
                if stop == _inflate_scan.NEED_INPUT:
                    assert in_pos == len(piece)
                    break
                assert stop == _inflate_scan.OUTPUT_FULL and pos == len(out)
                out[:WINDOW] = out[pos - WINDOW : pos]
                pos = WINDOW
    assert ended
    return bytes(produced), checkpoints


@pytest.mark.parametrize(("area", "chunk"), [(1 << 20, 1 << 18), (4096, 1000), (300, 7)])
def test_output_and_checkpoints_do_not_depend_on_buffer_sizes(tar: bytes, area: int, chunk: int) -> None:
    blob = gzip_members(tar, 3)
    data, checkpoints = _scan_all(blob, area=area, chunk=chunk, span=8192)
    reference, reference_cps = _scan_all(blob, area=1 << 22, chunk=len(blob), span=8192)
    assert data == reference == tar
    assert checkpoints == reference_cps
    assert len(checkpoints) > 10
    for in_offset, out_offset, bits, window in checkpoints:
        assert 0 <= bits <= 7 and 0 < in_offset <= len(blob)
        # The window is the 32 KiB of output before the checkpoint, zero-filled at the start.
        expected = (bytes(WINDOW) + tar[:out_offset])[-WINDOW:]
        assert window == expected


def test_checkpoint_rule_counts_from_the_last_checkpoint(tar: bytes) -> None:
    _, checkpoints = _scan_all(gzip_level(tar, 6), area=1 << 20, chunk=1 << 16, span=65536)
    outs = [out for _, out, _, _ in checkpoints]
    assert outs[0] == 0
    assert all(b - a > 65536 for a, b in zip(outs, outs[1:], strict=False))


def test_corrupt_data_stops_with_zlibs_code(tar: bytes) -> None:
    blob = bytearray(gzip_level(tar, 6))
    blob[200:260] = b"\xff" * 60
    out = bytearray(WINDOW + (1 << 20))
    with _zran.Inflater(_zran.WINDOW_BITS_AUTO) as inflater:
        strm = ctypes.addressof(inflater.strm)
        result = _inflate_scan.scan(
            strm, inflater.lib.address("inflate"), inflater.lib.address("inflate_reset2"),
            bytes(blob), 0, out, WINDOW, 65536, 0, 0, 0, False,
        )  # fmt: skip
        assert result[0] == _inflate_scan.FAILED
        assert result[1] == _zran.Z_DATA_ERROR
        assert "invalid" in _zran.error_text(result[1], inflater.strm)


@pytest.mark.parametrize(
    ("in_pos", "out_pos"), [(-1, WINDOW), (11, WINDOW), (0, WINDOW - 1), (0, WINDOW + 101)]
)
def test_positions_outside_the_buffers_are_refused(in_pos: int, out_pos: int) -> None:
    out = bytearray(WINDOW + 100)
    with _zran.Inflater(_zran.WINDOW_BITS_AUTO) as inflater:
        strm = ctypes.addressof(inflater.strm)
        with pytest.raises(ValueError, match="outside the buffers"):
            _inflate_scan.scan(
                strm, inflater.lib.address("inflate"), inflater.lib.address("inflate_reset2"),
                b"0123456789", in_pos, out, out_pos, 0, 0, 0, 0, False,
            )  # fmt: skip


def test_builder_output_area_size_does_not_change_the_ztoc(tar: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    blob = gzip_members(tar, 2)
    normal = build_ztoc(io.BytesIO(blob), span_size=16384, build_tool_identifier="t")
    monkeypatch.setattr(builder, "OUTPUT_AREA", 5000)
    monkeypatch.setattr(builder, "INPUT_CHUNK", 777)
    small = build_ztoc(io.BytesIO(blob), span_size=16384, build_tool_identifier="t")
    assert small == normal
    assert normal.ztoc.compression_info.max_span_id > 5

"""The native builder (`_engine.Builder` behind `build_ztoc`): its results do not depend on how
the input is cut or how large the output area is, checkpoint windows and span digests are what
the layer says, and failures are the same errors as before (zlib's reason, the Python tar
parser's message)."""

from __future__ import annotations

import gzip
import hashlib
import io

import pytest

from socikit.errors import CompressedDataError, SocikitError, TarFormatError
from socikit.ztoc import _engine, builder
from socikit.ztoc.builder import build_ztoc
from socikit.ztoc.compression.gzip import WINDOW_SIZE, GzipZinfo
from socikit.ztoc.serialize import dumps
from socikit.ztoc.spans import span_table
from socikit.ztoc.toc import build_toc
from tests.layers import gzip_level, gzip_members, seeded_tree, tar_members, tree_tar


@pytest.fixture(scope="module")
def tar() -> bytes:
    tree = seeded_tree(4, total_bytes=4 << 20)
    data = tree_tar(tree)
    assert tree.file_bytes >= 4 << 20 and len(tree.files) >= 100
    assert tar_members(data) == tree.files
    return data


@pytest.mark.parametrize("span_size", [0, 16384])
def test_input_chunks_and_output_area_do_not_change_the_ztoc(
    tar: bytes, span_size: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    blob = gzip_members(tar, 3)
    normal = build_ztoc(io.BytesIO(blob), span_size=span_size, build_tool_identifier="t")
    reference = dumps(normal.ztoc)
    for chunk, area in ((777, 5000), (1 << 16, 1 << 20), (3 << 20, 70000)):
        monkeypatch.setattr(builder, "INPUT_CHUNK", chunk)
        monkeypatch.setattr(builder, "OUTPUT_AREA", area)
        other = build_ztoc(io.BytesIO(blob), span_size=span_size, build_tool_identifier="t")
        assert dumps(other.ztoc) == reference
        assert other.blob_digest == normal.blob_digest
    assert normal.ztoc.compression_info.max_span_id > (20 if span_size == 0 else 5)


def test_one_byte_feeds(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every checkpoint, shared byte and span cut at a chunk boundary, on a small layer."""
    blob = gzip_members(tree_tar(seeded_tree(9, total_bytes=200_000)), 2)
    normal = build_ztoc(io.BytesIO(blob), span_size=0, build_tool_identifier="t")
    monkeypatch.setattr(builder, "INPUT_CHUNK", 1)
    monkeypatch.setattr(builder, "OUTPUT_AREA", 1024)
    tiny = build_ztoc(io.BytesIO(blob), span_size=0, build_tool_identifier="t")
    assert dumps(tiny.ztoc) == dumps(normal.ztoc)
    assert normal.ztoc.compression_info.max_span_id > 3


def test_checkpoint_windows_and_span_digests(tar: bytes) -> None:
    blob = gzip_level(tar, 9)
    result = build_ztoc(io.BytesIO(blob), span_size=65536, build_tool_identifier="t")
    info = result.ztoc.compression_info
    zinfo = GzipZinfo(info.checkpoints)
    assert zinfo.count == info.max_span_id + 1 > 10
    outs = []
    for index in range(zinfo.count):
        checkpoint = zinfo.checkpoint(index)
        assert checkpoint.window == (bytes(WINDOW_SIZE) + tar[: checkpoint.uncompressed_offset])[-WINDOW_SIZE:]
        outs.append(checkpoint.uncompressed_offset)
    assert outs[0] == 0 and all(b - a > 65536 for a, b in zip(outs, outs[1:], strict=False))
    table = span_table(result.ztoc)
    for span in range(table.count):
        start, end = table.compressed_range(span)
        assert info.span_digests[span] == "sha256:" + hashlib.sha256(blob[start:end]).hexdigest()
    assert result.blob_digest == "sha256:" + hashlib.sha256(blob).hexdigest()


@pytest.mark.parametrize("stream_from", ["engine", "ctypes"])
def test_corrupt_data_is_zlibs_reason(tar: bytes, stream_from: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if stream_from == "ctypes":
        monkeypatch.setattr(builder, "_engine_has_zlib_ng", lambda: False)
    blob = bytearray(gzip_level(tar, 6))
    blob[10] = 0b110  # the first deflate block header: block type 3, which does not exist
    with pytest.raises(CompressedDataError, match=r"corrupt compressed data at byte 1[01]: invalid block type"):
        build_ztoc(io.BytesIO(bytes(blob)), build_tool_identifier="t")


def test_the_engines_own_zlib_ng_stream_and_a_ctypes_stream_build_the_same_ztoc(
    tar: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The engine inflates with zlib-ng's native API it looked up itself; the fallback (a stream
    set up through ctypes, system libz when the wheel lacks the API) gives the same bytes."""
    assert builder._engine_has_zlib_ng()
    blob = gzip_members(tar, 2)
    own = build_ztoc(io.BytesIO(blob), span_size=65536, build_tool_identifier="t")
    monkeypatch.setattr(builder, "_engine_has_zlib_ng", lambda: False)
    lent = build_ztoc(io.BytesIO(blob), span_size=65536, build_tool_identifier="t")
    assert dumps(lent.ztoc) == dumps(own.ztoc) and lent.blob_digest == own.blob_digest
    assert own.ztoc.compression_info.max_span_id > 10


def test_use_zlib_ng_needs_the_native_api() -> None:
    """In a fresh interpreter: a gzip Builder without a stream is refused until use_zlib_ng found
    zlib-ng's entry points; a library without them (libc) or no library is a False, not a crash."""
    import subprocess
    import sys

    from tests.vectors import REPO_ROOT

    probe = """
import ctypes.util
from zlib_ng import zlib_ng
from socikit.ztoc import _engine
try:
    _engine.Builder(gzip=True, span_size=0, hashing=True)
except ValueError as exc:
    print("refused:", exc)
print(_engine.use_zlib_ng("/nonexistent/libz.so"), _engine.use_zlib_ng(ctypes.util.find_library("c")))
_engine.Builder(gzip=True, span_size=0, hashing=True)  # still refused: raises
"""
    before = subprocess.run([sys.executable, "-c", probe], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert "refused: a gzip Builder needs the inflate stream" in before.stdout
    assert "False False" in before.stdout
    assert before.returncode == 1 and "ValueError" in before.stderr
    after = subprocess.run(
        [sys.executable, "-c", "from zlib_ng import zlib_ng\nfrom socikit.ztoc import _engine\n"
         "print(_engine.use_zlib_ng(zlib_ng.__file__))\nb = _engine.Builder(gzip=True, span_size=0, hashing=True)\n"
         "print(b.feed(bytes(64)), b.inflate_ret, b.inflate_msg)"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert after.returncode == 0, after.stderr
    assert after.stdout.splitlines()[0] == "True"
    assert after.stdout.splitlines()[1] == f"{_engine.FEED_INFLATE_FAILED} -3 b'unknown compression method'"


def test_a_broken_tar_inside_gzip_is_the_python_parsers_error(tar: bytes) -> None:
    import tarfile

    with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
        header = archive.getmembers()[40].offset
    broken = bytearray(tar)
    broken[header + 148 : header + 156] = b"9999999\0"  # a checksum that matches no sum
    with pytest.raises(SocikitError) as python_error:
        build_toc(io.BytesIO(bytes(broken)))
    with pytest.raises(TarFormatError) as native_error:
        build_ztoc(io.BytesIO(gzip.compress(bytes(broken), mtime=0)), build_tool_identifier="t")
    assert str(native_error.value) == str(python_error.value)


def test_builder_misuse_is_refused() -> None:
    with pytest.raises(ValueError, match="positive span size"):
        _engine.Builder(gzip=False, span_size=0, hashing=True)
    engine = _engine.Builder(gzip=False, span_size=512, hashing=True)
    assert engine.feed(bytes(1024)) == _engine.FEED_OK
    engine.close()
    with pytest.raises(RuntimeError, match="closed"):
        engine.feed(b"more")

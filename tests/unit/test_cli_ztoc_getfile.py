"""`socikit ztoc get-file` streams with constant memory and refuses a wrong blob before writing;
`ztoc build|get-file -o` and `ztoc info` fail with one line on a bad destination or a corrupt
ztoc."""

from __future__ import annotations

import dataclasses
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from socikit.cli import app
from socikit.ztoc.builder import build_ztoc
from socikit.ztoc.serialize import dumps, loads
from socikit.ztoc.spans import SpanTable
from tests.vectors import REPO_ROOT
from tests.ztoc_trees import gzip_member, regular_files, seeded_tar, write_zero_file_layer

BIG_MIB = 384


def _invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def _one_line_error(result, *needles: str) -> str:
    assert result.exit_code == 1, result.output
    line = result.output.strip()
    assert line.startswith("error: ") and "\n" not in line and "Traceback" not in line, result.output
    for needle in needles:
        assert needle in line, line
    return line


# The child reports its own peak (VmHWM of the process after exec): the rusage of a child also
# counts the memory of the (large) test process it was forked from.
_REPORT_PEAK = """
import atexit, sys

def report():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                sys.stderr.write("PEAK " + line.split()[1] + "\\n")

atexit.register(report)
from socikit.cli import main
sys.argv[0] = "socikit"
main()
"""


def _peak_rss_kib(*args: str) -> int:
    """Run `socikit ARGS` in a fresh interpreter and return its peak resident set (KiB)."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", _REPORT_PEAK, *args],
        env=env,
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    peaks = [int(line.split()[1]) for line in result.stderr.splitlines() if line.startswith("PEAK ")]
    assert len(peaks) == 1, result.stderr
    return peaks[0]


def test_a_big_file_streams_in_constant_memory(tmp_path: Path) -> None:
    blob = tmp_path / "layer.tar.gz"
    write_zero_file_layer(str(blob), name="big/zeros.bin", size_mib=BIG_MIB)
    assert blob.stat().st_size < 1 << 20  # hundreds of MiB of zeros in a small layer
    ztoc = tmp_path / "layer.ztoc"
    ztoc.write_bytes(dumps(build_ztoc(open(blob, "rb"), build_tool_identifier="t").ztoc))
    out = tmp_path / "zeros.bin"
    baseline = _peak_rss_kib("ztoc", "info", str(ztoc))
    peak = _peak_rss_kib("ztoc", "get-file", str(ztoc), str(blob), "big/zeros.bin", "-o", str(out))
    size = BIG_MIB << 20
    assert out.stat().st_size == size
    zero = bytes(1 << 20)
    with open(out, "rb") as handle:
        while chunk := handle.read(1 << 20):
            assert chunk == zero[: len(chunk)]
    # The old get-file held the file twice (768 MiB here); now it is one span plus one piece.
    assert peak * 1024 < size // 4, (peak, baseline)
    assert peak - baseline < 96 * 1024, (peak, baseline)


@pytest.fixture(scope="module")
def layer(tmp_path_factory) -> tuple[Path, Path, bytes]:
    tar = seeded_tar(41, files=60)
    root = tmp_path_factory.mktemp("getfile")
    blob = root / "layer.tar.gz"
    blob.write_bytes(gzip_member(tar))
    ztoc = root / "layer.ztoc"
    ztoc.write_bytes(dumps(build_ztoc(io.BytesIO(blob.read_bytes()), span_size=32768, build_tool_identifier="t").ztoc))
    return blob, ztoc, tar


def _multi_span_file(ztoc_path: Path) -> tuple[str, range]:
    ztoc = loads(ztoc_path.read_bytes())
    spans = SpanTable(ztoc)
    best = max(
        (e for e in ztoc.toc if e.type == "reg"),
        key=lambda e: len(spans.spans_covering(e.uncompressed_offset, e.uncompressed_size)),
    )
    covering = spans.spans_covering(best.uncompressed_offset, best.uncompressed_size)
    assert len(covering) >= 3
    return best.name, covering


def test_every_file_to_stdout_and_to_a_file(layer, tmp_path: Path) -> None:
    blob, ztoc, tar = layer
    for number, (name, content) in enumerate(regular_files(tar).items()):
        if number % 2:
            result = _invoke("ztoc", "get-file", str(ztoc), str(blob), name)
            assert result.exit_code == 0 and result.stdout_bytes == content, name
        else:
            out = tmp_path / f"out{number}"
            assert _invoke("ztoc", "get-file", str(ztoc), str(blob), name, "-o", str(out)).exit_code == 0
            assert out.read_bytes() == content, name


@pytest.mark.parametrize("to_stdout", [True, False])
def test_a_truncated_or_longer_blob_writes_nothing(layer, tmp_path: Path, to_stdout: bool) -> None:
    blob, ztoc, _ = layer
    name, _ = _multi_span_file(ztoc)
    data = blob.read_bytes()
    for label, bad_bytes in (("short", data[:-100]), ("long", data + b"\0")):
        bad = tmp_path / f"{label}.gz"
        bad.write_bytes(bad_bytes)
        out = tmp_path / f"{label}.out"
        args = ["ztoc", "get-file", str(ztoc), str(bad), name] + ([] if to_stdout else ["-o", str(out)])
        result = _invoke(*args)
        _one_line_error(result, str(bad), f"is {len(bad_bytes)} bytes", f"{len(data)}-byte blob")
        assert result.stdout_bytes == b"" and not out.exists()


@pytest.mark.parametrize("to_stdout", [True, False])
def test_a_wrong_byte_in_the_last_span_of_a_file_writes_nothing(layer, tmp_path: Path, to_stdout: bool) -> None:
    blob, ztoc, _ = layer
    name, covering = _multi_span_file(ztoc)
    spans = SpanTable(loads(ztoc.read_bytes()))
    start, end = spans.compressed_range(covering[-1])
    data = bytearray(blob.read_bytes())
    data[(start + end) // 2] ^= 0x10
    bad = tmp_path / "bad.gz"
    bad.write_bytes(bytes(data))
    out = tmp_path / "bad.out"
    args = ["ztoc", "get-file", str(ztoc), str(bad), name] + ([] if to_stdout else ["-o", str(out)])
    result = _invoke(*args)
    _one_line_error(result, f"span {covering[-1]}", spans.digests[covering[-1]])
    assert result.stdout_bytes == b"" and not out.exists()
    assert list(tmp_path.glob(".bad.out*")) == []


def test_bad_destinations_give_one_line_and_create_nothing(layer, tmp_path: Path) -> None:
    blob, ztoc, tar = layer
    name = next(iter(regular_files(tar)))
    missing = tmp_path / "no" / "such" / "dir"
    a_file = tmp_path / "plain"
    a_file.write_bytes(b"x")
    for command in (["ztoc", "build", str(blob)], ["ztoc", "get-file", str(ztoc), str(blob), name]):
        _one_line_error(_invoke(*command, "-o", str(missing / "x")), str(missing), "does not exist")
        assert not (tmp_path / "no").exists()
        _one_line_error(_invoke(*command, "-o", str(tmp_path)), "is a directory")
        _one_line_error(_invoke(*command, "-o", str(a_file / "x")), "is not a directory")
    assert a_file.read_bytes() == b"x"


def test_a_corrupt_ztoc_is_one_line_in_info_and_get_file(layer, tmp_path: Path) -> None:
    blob, ztoc, tar = layer
    name = next(iter(regular_files(tar)))
    data = ztoc.read_bytes()
    value = loads(data)
    # A checkpoint moved past the blob's end: the flatbuffer still decodes.
    checkpoints = bytearray(value.compression_info.checkpoints)
    checkpoints[12 + 32785 + 7] = 0x7F  # high byte of checkpoint 1's `in`
    bad_geometry = dataclasses.replace(
        value, compression_info=dataclasses.replace(value.compression_info, checkpoints=bytes(checkpoints))
    )
    cases = {"truncated": data[: len(data) // 2], "geometry": dumps(bad_geometry), "garbage": b"\xff" * 64}
    for label, bad_bytes in cases.items():
        bad = tmp_path / f"{label}.ztoc"
        bad.write_bytes(bad_bytes)
        _one_line_error(_invoke("ztoc", "info", str(bad)), str(bad))
        _one_line_error(_invoke("ztoc", "info", "--json", str(bad)), str(bad))
        out = tmp_path / f"{label}.out"
        _one_line_error(_invoke("ztoc", "get-file", str(bad), str(blob), name, "-o", str(out)), str(bad))
        assert not out.exists()

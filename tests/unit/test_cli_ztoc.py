"""`socikit ztoc build|info|get-file` from the command line, including its failure modes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from socikit.cli import app
from tests.layers import gzip_level, tar_members, tar_of_directory

STDLIB = Path(sys.prefix) / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}"


@pytest.fixture(scope="module")
def layer(tmp_path_factory) -> tuple[Path, bytes]:
    tar = tar_of_directory(STDLIB / "email", limit_bytes=1 << 20)
    path = tmp_path_factory.mktemp("layer") / "layer.tar.gz"
    path.write_bytes(gzip_level(tar, 6))
    return path, tar


def _invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def test_build_info_and_get_file(layer, tmp_path: Path) -> None:
    blob, tar = layer
    ztoc = tmp_path / "layer.ztoc"
    result = _invoke("ztoc", "build", str(blob), "-o", str(ztoc), "--span-size", "8192")
    assert result.exit_code == 0, result.output
    info = json.loads(_invoke("ztoc", "info", str(ztoc), "--json").stdout)
    assert info["span_size"] == 8192 and info["num_spans"] > 3
    assert info["build_tool"].startswith("socikit ")
    members = tar_members(tar)
    assert info["num_files"] >= len(members)
    table = _invoke("ztoc", "info", str(ztoc))
    assert table.exit_code == 0 and "num_multi_span_files" in table.stdout
    name, content = max(members.items(), key=lambda item: len(item[1]))
    out = tmp_path / "extracted"
    result = _invoke("ztoc", "get-file", str(ztoc), str(blob), name, "-o", str(out))
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == content
    stdout = _invoke("ztoc", "get-file", str(ztoc), str(blob), name)
    assert stdout.stdout_bytes == content


def test_get_file_of_a_missing_path(layer, tmp_path: Path) -> None:
    blob, _ = layer
    ztoc = tmp_path / "z"
    assert _invoke("ztoc", "build", str(blob), "-o", str(ztoc)).exit_code == 0
    result = _invoke("ztoc", "get-file", str(ztoc), str(blob), "no/such/file")
    assert result.exit_code == 1 and "no/such/file" in result.output


def _corrupt(data: bytes) -> bytes:
    out = bytearray(data)
    for i in range(100, 300):
        out[i] ^= 0x5A
    return bytes(out)


@pytest.mark.parametrize(
    ("case", "mutate", "needle"),
    [
        ("corrupt-deflate", _corrupt, ""),
        ("truncated", lambda d: d[: len(d) // 2], "ends early"),
        ("crc", lambda d: d[:-8] + bytes([d[-8] ^ 1]) + d[-7:], "check"),
        ("not-tar", lambda d: gzip_level(b"plain text, not a tar archive\n" * 50, 6), "tar"),
    ],
)
def test_bad_blob_gives_one_line_and_no_output(layer, tmp_path: Path, case: str, mutate, needle: str) -> None:
    blob, _ = layer
    bad = tmp_path / f"{case}.gz"
    bad.write_bytes(mutate(blob.read_bytes()))
    out = tmp_path / "out.ztoc"
    result = _invoke("ztoc", "build", str(bad), "-o", str(out))
    assert result.exit_code == 1
    line = result.output.strip()
    assert line.startswith("error: layer ") and str(bad) in line and "\n" not in line, line
    assert needle in line
    assert not out.exists()
    assert list(tmp_path.glob(".out.ztoc*")) == []


def test_wrong_expected_digest(layer, tmp_path: Path) -> None:
    blob, _ = layer
    out = tmp_path / "out.ztoc"
    result = _invoke("ztoc", "build", str(blob), "-o", str(out), "--digest", "sha256:" + "1" * 64)
    assert result.exit_code == 1 and "expected sha256:1111" in result.output and str(blob) in result.output
    assert not out.exists()


def test_zstd_media_type_is_refused_clearly(layer, tmp_path: Path) -> None:
    blob, _ = layer
    result = _invoke("ztoc", "build", str(blob), "-o", str(tmp_path / "o"),
                     "--media-type", "application/vnd.oci.image.layer.v1.tar+zstd")
    assert result.exit_code == 1 and "zstd" in result.output


def test_usage_error_exit_code(tmp_path: Path) -> None:
    assert _invoke("ztoc", "build").exit_code == 2

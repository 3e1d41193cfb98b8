"""`socikit ztoc build|info|get-file` from the command line, including its failure modes."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from socikit.cli import app
from tests.layers import gzip_level, seeded_tree, tar_members, tree_tar


@pytest.fixture(scope="module")
def layer(tmp_path_factory) -> tuple[Path, bytes]:
    tree = seeded_tree(1, total_bytes=1 << 20)
    tar = tree_tar(tree)
    assert tree.file_bytes >= 1 << 20 and len(tree.files) >= 30 and tar_members(tar) == tree.files
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
    with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
        every_entry = archive.getnames()
    assert info["num_files"] == len(every_entry) > len(members) > 30
    table = _invoke("ztoc", "info", str(ztoc))
    assert table.exit_code == 0 and "num_multi_span_files" in table.stdout
    name, content = max(members.items(), key=lambda item: len(item[1]))
    out = tmp_path / "extracted"
    result = _invoke("ztoc", "get-file", str(ztoc), str(blob), name, "-o", str(out))
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == content
    stdout = _invoke("ztoc", "get-file", str(ztoc), str(blob), name)
    assert stdout.exit_code == 0 and stdout.stdout_bytes == content


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
        ("corrupt-deflate", _corrupt, "corrupt compressed data at byte"),
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

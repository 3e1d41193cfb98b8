"""Notes `convert` prints beside its result: the AWS Lambda hint after a SOCI v2 conversion (the
summary's last line; on stderr beside --json)."""

from __future__ import annotations

import json
from pathlib import Path

from socikit.cli.console import LAMBDA_NOTE
from tests.cli import run_socikit
from tests.vectors import VECTORS_DIR

SOURCE = f"oci:{VECTORS_DIR / 'tricky-pax' / 'input'}:latest"


def test_v2_conversion_tells_lambda_users_about_v1(tmp_path: Path) -> None:
    result = run_socikit("convert", "--min-layer-size", "0", "--json", SOURCE, f"oci:{tmp_path / 'out'}:v2",
                         root=tmp_path / "root")
    assert result.returncode == 0, result.stderr
    assert LAMBDA_NOTE in result.stderr.splitlines()
    assert json.loads(result.stdout)  # the note stays off stdout: --json output is one document


def test_the_note_ends_the_plain_summary(tmp_path: Path) -> None:
    result = run_socikit("convert", "--min-layer-size", "0", SOURCE, f"oci:{tmp_path / 'out'}:v2",
                         root=tmp_path / "root")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == LAMBDA_NOTE


def test_v1_conversion_has_no_lambda_note(tmp_path: Path) -> None:
    result = run_socikit("convert", "--v1", "--min-layer-size", "0", SOURCE, f"oci:{tmp_path / 'out'}:v1",
                         root=tmp_path / "root")
    assert result.returncode == 0, result.stderr
    assert "Lambda" not in result.stdout + result.stderr

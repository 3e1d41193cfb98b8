"""tests/conftest.py keeps the suite off socikit's real root: shown by running small test sessions
under that conftest with the guarded roots pointed at a directory of this test's own."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.vectors import REPO_ROOT, VECTORS_DIR

_CONVERTS_WITH_THE_DEFAULT_ROOT = f"""
import os
from pathlib import Path

from typer.testing import CliRunner

from socikit.cli import app
from socikit.settings import default_root


def test_convert_without_root_uses_the_tests_own(tmp_path):
    assert str(default_root()) == os.environ["SOCIKIT_ROOT"]
    args = ["convert", "--min-layer-size", "0", "--span-size", "65536", "--progress", "none",
            "oci:{VECTORS_DIR / "tricky-pax" / "input"}:latest", f"oci:{{tmp_path / 'out'}}:latest"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert list((Path(os.environ["SOCIKIT_ROOT"]) / "ztoc-cache").iterdir())
"""

_WRITES_IN_PROCESS = """
import os
from pathlib import Path


def test_writes_the_real_cache():
    guarded = Path(os.environ["SOCIKIT_TESTS_GUARDED_ROOTS"])
    (guarded / "ztoc-cache" / "entry.ztoc").write_bytes(b"x")
"""

_WRITES_FROM_A_SUBPROCESS = """
import os
import subprocess


def test_a_child_writes_the_real_cache():
    guarded = os.environ["SOCIKIT_TESTS_GUARDED_ROOTS"]
    subprocess.run(["touch", guarded + "/ztoc-cache/from-a-child"], check=True)
"""


def _session(tmp_path: Path, test_source: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    guarded = tmp_path / "guarded-root"
    (guarded / "ztoc-cache").mkdir(parents=True)
    (guarded / "ztoc-cache" / "old-entry.ztoc").write_bytes(b"old")
    inner = tmp_path / "session"
    inner.mkdir()
    shutil.copy(REPO_ROOT / "tests" / "conftest.py", inner / "conftest.py")
    (inner / "test_inner.py").write_text(test_source)
    env = dict(os.environ, SOCIKIT_TESTS_GUARDED_ROOTS=str(guarded), PYTHONPATH=str(REPO_ROOT))
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(inner), str(inner)],
        cwd=inner, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    return result, guarded


def test_a_convert_without_root_stays_in_the_tests_root(tmp_path: Path) -> None:
    result, guarded = _session(tmp_path, _CONVERTS_WITH_THE_DEFAULT_ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
    assert sorted(p.name for p in (guarded / "ztoc-cache").iterdir()) == ["old-entry.ztoc"]


def test_an_in_process_write_fails_the_test_and_the_session(tmp_path: Path) -> None:
    result, _ = _session(tmp_path, _WRITES_IN_PROCESS)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "the test reached socikit's real root: ['open " in result.stdout
    assert "the test session changed socikit's real root(s)" in result.stdout
    assert "+ ztoc-cache/entry.ztoc" in result.stdout


def test_a_write_by_a_child_process_fails_the_session(tmp_path: Path) -> None:
    result, _ = _session(tmp_path, _WRITES_FROM_A_SUBPROCESS)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "the test reached socikit's real root" not in result.stdout  # the hook sees this process only
    assert "+ ztoc-cache/from-a-child" in result.stdout

"""The code base stays lint-clean (ruff) and type-clean (mypy --strict on socikit/)."""

from __future__ import annotations

import subprocess
import sys

from tests.vectors import REPO_ROOT


def test_ruff() -> None:
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "socikit", "tests", "scripts", "conformance"],
                            cwd=REPO_ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict() -> None:
    result = subprocess.run([sys.executable, "-m", "mypy", "socikit"], cwd=REPO_ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr

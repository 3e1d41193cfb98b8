"""The wheel: every package, the compiled ztoc engine, its type stub and the schemas."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from tests.vectors import REPO_ROOT


def test_pyproject_lists_every_package_of_the_tree() -> None:
    listed = set(tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {
        ".".join(init.parent.relative_to(REPO_ROOT).parts)
        for init in (REPO_ROOT / "socikit").rglob("__init__.py")
    }
    assert listed == on_disk | {"socikit._schemas"}


@pytest.mark.slow
def test_wheel_holds_the_extension_the_stub_and_the_schemas(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO_ROOT / name, source / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.so")
    for name in ("socikit", "schemas"):
        shutil.copytree(REPO_ROOT / name, source / name, ignore=ignore)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--disable-pip-version-check",
         "-w", str(tmp_path / "dist"), str(source)],
        check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    (wheel,) = (tmp_path / "dist").glob("socikit-*.whl")
    assert "-cp311-" in wheel.name or "-cp3" in wheel.name  # a platform wheel, not py3-none-any
    names = set(zipfile.ZipFile(wheel).namelist())
    schemas = {p.name for p in (REPO_ROOT / "schemas").glob("*.json")}
    assert schemas and {f"socikit/_schemas/{n}" for n in schemas} <= names
    assert any(n.startswith("socikit/ztoc/_engine.") and n.endswith(".so") for n in names)
    assert "socikit/ztoc/_engine.pyi" in names
    assert "socikit/py.typed" in names
    modules = {str(p.relative_to(REPO_ROOT)) for p in (REPO_ROOT / "socikit").rglob("*.py")}
    assert modules <= names

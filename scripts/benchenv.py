"""How the benchmarks run the `socikit` command: from byte-compiled modules, as an installed copy.

pip byte-compiles a wheel's modules when it installs it. A source checkout run with
PYTHONDONTWRITEBYTECODE=1 (as these machines are set up) never writes .pyc files, so every
command would first compile socikit's own sources again (~0.1 s per command, measured with
cProfile) - a cost no installed copy has. The package is compiled once, explicitly, into its
usual `__pycache__` directories (git ignores them; a stale one is simply not used).
"""

from __future__ import annotations

import compileall
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

SOCIKIT = [sys.executable, "-m", "socikit"]


def compile_socikit() -> None:
    """Make the timed `python -m socikit` commands start from compiled modules."""
    compileall.compile_dir(REPO / "socikit", quiet=1)

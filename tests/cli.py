"""Run the `socikit` command as a user does: a process of its own, this checkout's code."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.vectors import REPO_ROOT


def run_socikit(
    *args: str, root: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`socikit ARGS [--root ROOT]`; stdout and stderr captured apart (neither is a terminal)."""
    path = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    full_env = {**os.environ, "PYTHONPATH": path, **(env or {})}
    argv = [*args, "--root", str(root)] if root is not None else list(args)
    return subprocess.run([sys.executable, "-m", "socikit", *argv], capture_output=True, text=True, env=full_env,
                          timeout=300)  # fmt: skip

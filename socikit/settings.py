"""Settings shared by every part of socikit, below all of them: the CLI, the pipeline and the
snapshotter read where socikit keeps its state from here, so none of them needs another's
package for it."""

from __future__ import annotations

import os
from pathlib import Path

ROOT_ENV = "SOCIKIT_ROOT"
"""Environment variable naming socikit's state directory (local store and ztoc cache)."""

SYSTEM_ROOT = Path("/var/lib/socikit")


def default_root() -> Path:
    """`$SOCIKIT_ROOT`, else /var/lib/socikit for root, else ~/.local/share/socikit."""
    env = os.environ.get(ROOT_ENV)
    if env:
        return Path(env)
    if os.geteuid() == 0:
        return SYSTEM_ROOT
    return Path.home() / ".local" / "share" / "socikit"


__all__ = ["ROOT_ENV", "SYSTEM_ROOT", "default_root"]

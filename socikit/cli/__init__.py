"""The `socikit` command line: a thin typer layer over the library.

Each command module registers its commands on the apps defined in `socikit.cli.app`.
"""

from __future__ import annotations

from socikit.cli import (  # noqa: F401  (registers commands)
    buildx,
    convert,
    hook,
    image,
    index,
    merge,
    push,
    snapshotter,
    store,
    validate,
    ztoc,
)
from socikit.cli.app import app


def main() -> None:
    app()


__all__ = ["app", "main"]

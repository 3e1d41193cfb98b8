"""The one place that prints: errors as one red line, tables and JSON."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from typing import Any

import typer
from rich.console import Console

from socikit.errors import SocikitError

stdout = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 250)
stderr = Console(stderr=True, highlight=False, soft_wrap=True)


@contextlib.contextmanager
def errors_to_exit() -> Iterator[None]:
    """Turn a SocikitError into `error: <message>` on stderr and exit code 1."""
    try:
        yield
    except SocikitError as exc:
        message = str(exc).replace("\n", " ")
        stderr.print(f"[red]error:[/red] {message}", markup=True, highlight=False)
        raise typer.Exit(code=1) from None


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()

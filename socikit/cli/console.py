"""The one place that prints: errors as one red line, tables and JSON."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import typer

from socikit.errors import SocikitError

if TYPE_CHECKING:
    from rich.console import Console


class _LazyConsole:
    """A rich Console created on first use: importing rich costs ~25 ms at every start, which
    commands that print JSON, plain lines or nothing never need."""

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._console: Console | None = None

    def get(self) -> Console:
        """The Console itself (for rich objects that take one)."""
        if self._console is None:
            from rich.console import Console

            self._console = Console(**self._options)
        return self._console

    def __getattr__(self, name: str) -> Any:
        return getattr(self.get(), name)


stdout = _LazyConsole(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 250)
stderr = _LazyConsole(stderr=True, highlight=False, soft_wrap=True)


def say(text: str) -> None:
    """One line of plain text on stdout (never markup): through rich on a terminal, else written
    directly, so commands whose output goes to a pipe or CI log do not load rich at all."""
    if sys.stdout.isatty():
        stdout.print(text, markup=False)
    else:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()


@contextlib.contextmanager
def errors_to_exit() -> Iterator[None]:
    """Turn a SocikitError into `error: <message>` on stderr and exit code 1."""
    try:
        yield
    except SocikitError as exc:
        from rich.markup import escape

        message = escape(str(exc).replace("\n", " "))  # "[snapshotter]" in a message is text, not markup
        stderr.print(f"[red]error:[/red] {message}", markup=True, highlight=False)
        raise typer.Exit(code=1) from None


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()


# AWS Lambda starts container images from a single manifest or an image index of manifests; an
# index that also lists a SOCI v2 index (an artifact entry) is not something it accepts.
LAMBDA_NOTE = (
    "note: AWS Lambda cannot start a function from an image index that lists a SOCI v2 index; "
    "for Lambda targets use SOCI v1 (--soci v1, or --v1)"
)


def lambda_note(index_version: str, *, json_output: bool) -> None:
    """After a SOCI v2 result: the last line of the summary, or on stderr beside --json output
    (which stays one JSON document)."""
    if index_version != "v2":
        return
    if json_output:
        sys.stderr.write(LAMBDA_NOTE + "\n")
    else:
        say(LAMBDA_NOTE)

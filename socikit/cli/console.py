"""The one place that prints: errors as one red line, tables and JSON, user data always literally."""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
import unicodedata
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import typer

from socikit.errors import SocikitError

if TYPE_CHECKING:
    from rich.console import Console, HighlighterType, JustifyMethod, OverflowMethod
    from rich.style import Style
    from rich.text import Text


def _literal_console(**options: Any) -> Console:
    """A rich Console that renders every string literally (no markup, no emoji codes, no
    highlighting): paths, references, reasons and file names are user data, printed as typed
    ("[red]x[/red]" must not vanish, "sha256:abcd:" must not become an emoji). Styling is given
    as rich `Text` objects."""
    from rich.console import Console

    class LiteralConsole(Console):
        def render_str(self, text: str, *, style: str | Style = "", justify: JustifyMethod | None = None,
                       overflow: OverflowMethod | None = None, emoji: bool | None = None,
                       markup: bool | None = None, highlight: bool | None = None,
                       highlighter: HighlighterType | None = None) -> Text:
            del emoji, markup, highlight, highlighter  # never taken from the caller: data stays data
            return super().render_str(text, style=style, justify=justify, overflow=overflow, emoji=False,
                                      markup=False, highlight=False)

    return LiteralConsole(markup=False, emoji=False, highlight=False, **options)


class _LazyConsole:
    """A rich Console created on first use: importing rich costs ~25 ms at every start, which
    commands that print JSON, plain lines or nothing never need."""

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._console: Console | None = None

    def get(self) -> Console:
        """The Console itself (for rich objects that take one)."""
        if self._console is None:
            self._console = _literal_console(**self._options)
        return self._console

    def __getattr__(self, name: str) -> Any:
        return getattr(self.get(), name)


stdout = _LazyConsole(soft_wrap=True, width=None if sys.stdout.isatty() else 250)
stderr = _LazyConsole(stderr=True, soft_wrap=True)


def say(text: str) -> None:
    """One line of plain text on stdout, literally: through rich on a terminal, else written
    directly, so commands whose output goes to a pipe or CI log do not load rich at all."""
    if sys.stdout.isatty():
        stdout.print(text, markup=False, emoji=False, highlight=False)
    else:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()


def error_line(message: str) -> None:
    """`error: <message>` on stderr as one line, the message literally (red `error:` on a
    terminal)."""
    message = message.replace("\n", " ")
    if sys.stderr.isatty():
        from rich.text import Text

        stderr.print(Text.assemble(("error:", "red"), " ", message))
    else:
        sys.stderr.write(f"error: {message}\n")
        sys.stderr.flush()


@contextlib.contextmanager
def errors_to_exit() -> Iterator[None]:
    """Turn a SocikitError into `error: <message>` on stderr and exit code 1."""
    try:
        yield
    except SocikitError as exc:
        error_line(str(exc))
        raise typer.Exit(code=1) from None


# --- tables ----------------------------------------------------------------------------------------
# Tables are plain text written directly: every value whole (a digest that is cut cannot be pasted
# back), never markup, and control characters in values (a file name holding a newline or an
# escape sequence) shown escaped so one row stays one line and cannot drive the terminal.

_CONTROL = {c: f"\\x{c:02x}" for c in [*range(0x20), 0x7F, *range(0x80, 0xA0)]}
_CONTROL.update({ord("\n"): "\\n", ord("\t"): "\\t", ord("\r"): "\\r"})


def cell(value: object) -> str:
    """A table value as shown: its text, control characters escaped."""
    return str(value).translate(_CONTROL)


def _width(text: str) -> int:
    """Terminal columns `text` takes (East Asian wide and full-width characters take two)."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def table_lines(headers: Sequence[str] | None, rows: Sequence[Sequence[object]]) -> list[str]:
    """Columns padded to their widest value, two spaces apart (no header line without headers)."""
    body = [[cell(v) for v in row] for row in rows]
    table = [list(headers), *body] if headers is not None else body
    if not table:
        return []
    widths = [max(_width(row[i]) for row in table) for i in range(len(table[0]))]
    return ["  ".join(v + " " * (w - _width(v)) for v, w in zip(row, widths, strict=True)).rstrip()
            for row in table]


def block_lines(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    """The table wrapped for a narrow terminal: per row the first value alone on a line, then
    `  header: value` for every other non-empty value, a blank line between rows."""
    lines: list[str] = []
    for row in rows:
        if lines:
            lines.append("")
        first, *rest = [cell(v) for v in row]
        lines.append(first)
        lines.extend(f"  {h.lower()}: {v}" for h, v in zip(headers[1:], rest, strict=True) if v)
    return lines


def print_table(headers: Sequence[str] | None, rows: Sequence[Sequence[object]], *,
                wrap_when_narrow: bool = False) -> None:
    """Print a table on stdout, every value whole. With `wrap_when_narrow`, on a terminal too
    narrow for the table's lines, each row becomes a block (`block_lines`): its first value (a
    digest) alone on a line, still whole and pasteable."""
    lines = table_lines(headers, rows)
    if wrap_when_narrow and headers is not None and rows and sys.stdout.isatty():
        columns = shutil.get_terminal_size().columns
        if max(_width(line) for line in lines) > columns:
            lines = block_lines(headers, rows)
    if lines:
        sys.stdout.write("\n".join(lines) + "\n")
        sys.stdout.flush()


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

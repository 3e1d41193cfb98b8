"""containerd's filter expressions, as List requests carry them.

A request holds several filter strings; a snapshot is listed when any of them matches. One string
is selectors joined by commas, all of which must match. A selector is a dotted field path, alone
(the field is present) or followed by `==`, `!=` or `~=` (regular expression search) and a value.
Path components and values may be double-quoted with Go escapes; `~=` values may also be written
`/.../` or `|...|`. containerd's own unpacker sends, for the remote-snapshot handshake:

    labels."containerd.io/snapshot.ref"==sha256:...,parent=="default/3/sha256:..."

Snapshot fields: `name`, `parent`, `kind` (`active`, `view`, `committed`), `labels.<key>`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from socikit.errors import SnapshotArgumentError

# A field lookup: the value and whether the field exists.
FieldLookup = Callable[[Sequence[str]], tuple[str, bool]]

_FIELD = re.compile(r"[A-Za-z0-9_]+")
_SIMPLE_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
                   "\\": "\\", '"': '"', "'": "'", "/": "/", "|": "|"}


@dataclass(frozen=True)
class Selector:
    path: tuple[str, ...]
    operator: str | None = None  # None: the field is present
    value: str = ""

    def matches(self, lookup: FieldLookup) -> bool:
        value, present = lookup(self.path)
        if self.operator is None:
            return present
        if self.operator == "==":
            return present and value == self.value
        if self.operator == "!=":
            return value != self.value
        return re.search(self.value, value) is not None


@dataclass(frozen=True)
class Filter:
    """Selectors that must all match (one filter string)."""

    selectors: tuple[Selector, ...]

    def matches(self, lookup: FieldLookup) -> bool:
        return all(s.matches(lookup) for s in self.selectors)


def matches_any(filters: Sequence[Filter], lookup: FieldLookup) -> bool:
    """True when there are no filters or any one matches (containerd ORs the strings)."""
    return not filters or any(f.matches(lookup) for f in filters)


def parse_filters(texts: Sequence[str]) -> list[Filter]:
    return [parse_filter(t) for t in texts if t.strip()]


def parse_filter(text: str) -> Filter:
    parser = _Parser(text)
    try:
        selectors = [parser.selector()]
        while parser.take(","):
            selectors.append(parser.selector())
        parser.skip_space()
        if parser.pos != len(text):
            parser.fail("unexpected text")
    except _ParseError as exc:
        raise SnapshotArgumentError(f"filter {text!r}: {exc}") from None
    return Filter(tuple(selectors))


class _ParseError(Exception):
    pass


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, what: str) -> None:
        raise _ParseError(f"{what} at offset {self.pos}")

    def skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def take(self, token: str) -> bool:
        self.skip_space()
        if self.text.startswith(token, self.pos):
            self.pos += len(token)
            return True
        return False

    def selector(self) -> Selector:
        path = [self.field()]
        while self.take("."):
            path.append(self.field())
        for operator in ("==", "!=", "~="):
            if self.take(operator):
                value = self.value(regex=operator == "~=")
                if operator == "~=":
                    try:
                        re.compile(value)
                    except re.error as exc:
                        raise _ParseError(f"bad regular expression {value!r}: {exc}") from None
                return Selector(tuple(path), operator, value)
        return Selector(tuple(path))

    def field(self) -> str:
        self.skip_space()
        if self.text.startswith('"', self.pos):
            return self.quoted('"')
        match = _FIELD.match(self.text, self.pos)
        if match is None:
            self.fail("expected a field name")
            raise AssertionError  # unreachable: fail raises
        self.pos = match.end()
        return match.group()

    def value(self, *, regex: bool) -> str:
        self.skip_space()
        quotes = '"/|' if regex else '"'
        if self.pos < len(self.text) and self.text[self.pos] in quotes:
            return self.quoted(self.text[self.pos])
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] != "," and not self.text[self.pos].isspace():
            self.pos += 1
        if self.pos == start:
            self.fail("expected a value")
        return self.text[start:self.pos]

    def quoted(self, quote: str) -> str:
        self.pos += 1  # the opening quote
        out: list[str] = []
        while self.pos < len(self.text):
            ch = self.text[self.pos]
            self.pos += 1
            if ch == quote:
                return "".join(out)
            if ch != "\\":
                out.append(ch)
                continue
            out.append(self.escape(quote))
        self.fail("unterminated quoted string")
        raise AssertionError  # unreachable: fail raises

    def escape(self, quote: str) -> str:
        if self.pos >= len(self.text):
            self.fail("unterminated escape")
        ch = self.text[self.pos]
        self.pos += 1
        if quote != '"' and ch != quote:
            return "\\" + ch  # inside /.../ a backslash belongs to the regular expression
        if ch in _SIMPLE_ESCAPES:
            return _SIMPLE_ESCAPES[ch]
        width = {"x": 2, "u": 4, "U": 8}.get(ch)
        if width is not None:
            digits = self.text[self.pos:self.pos + width]
            if len(digits) != width or not all(c in "0123456789abcdefABCDEF" for c in digits):
                self.fail(f"bad \\{ch} escape")
            self.pos += width
            return chr(int(digits, 16))
        if ch in "01234567":
            digits = self.text[self.pos - 1:self.pos + 2]
            if len(digits) != 3 or not all(c in "01234567" for c in digits):
                self.fail("bad octal escape")
            self.pos += 2
            return chr(int(digits, 8))
        self.fail(f"unknown escape \\{ch}")
        raise AssertionError  # unreachable: fail raises

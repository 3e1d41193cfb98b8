"""JSON bytes exactly as Go's `encoding/json.Marshal` writes them.

The snapshotter re-marshals SOCI indexes with Go and refuses any whose bytes differ, so every
manifest and index socikit writes goes through `dumps`: compact, keys in the order the caller's
dicts hold them (callers build dicts in Go struct-field order and sort map-typed fields), `<`, `>`,
`&`, U+2028 and U+2029 escaped as `\\u003c`-style sequences, invalid UTF-8 replaced by U+FFFD.
"""

from __future__ import annotations

import json
from typing import Any

_GO_ESCAPES = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}
_NEEDS_ESCAPE = frozenset(_GO_ESCAPES)


def _go_text(text: str) -> str:
    # Go strings are bytes; a str holding lone surrogates (from surrogateescape) is invalid
    # UTF-8, which Go's encoder writes as U+FFFD.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return text


def _sanitize(value: Any) -> Any:
    if isinstance(value, str):
        return _go_text(value)
    if isinstance(value, dict):
        return {_go_text(k): _sanitize(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_sanitize(v) for v in value]
    return value


def dumps(value: Any) -> bytes:
    """Serialize `value` (dicts in the intended key order) to Go-canonical compact JSON bytes."""
    text = json.dumps(_sanitize(value), ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return _escape(text).encode("utf-8")


def dumps_indent(value: Any) -> bytes:
    """Like Go's `json.MarshalIndent(v, "", "  ")` (no trailing newline)."""
    text = json.dumps(_sanitize(value), ensure_ascii=False, indent=2, allow_nan=False)
    return _escape(text).encode("utf-8")


def _escape(text: str) -> str:
    if _NEEDS_ESCAPE.isdisjoint(text):
        return text
    # These characters can only occur inside JSON strings, so a plain replace is exact.
    return "".join(_GO_ESCAPES.get(ch, ch) for ch in text)


def sorted_map(mapping: dict[str, str] | None) -> dict[str, str] | None:
    """A Go `map[string]string` field: keys sorted bytewise (Go sorts map keys when marshalling)."""
    if not mapping:
        return None
    return {k: mapping[k] for k in sorted(mapping, key=lambda k: k.encode("utf-8", "surrogateescape"))}

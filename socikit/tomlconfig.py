"""TOML tables to frozen dataclasses and back: the config files of the snapshotter and the store.

A dataclass field is a key of its table (spelled as the field's `toml` metadata says, else as
the field is named); its type annotation says what the value must be: `bool`, `int`, `float`,
`str`, another dataclass (a sub-table), `tuple[X, ...]` (an array) or `Mapping[str, X]` (a table
of arbitrary keys). Any other key is an error that names it, unless the caller's `unknown`
hook takes it (the snapshotter accepts the reference's keys that have no effect that way).
`dumps` writes what `to_document` gives back as TOML that `tomllib` reads to the same values.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from socikit.errors import ConfigError

T = TypeVar("T")

_KINDS = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}

UnknownKey = Callable[[str, Any], None]
"""(dotted key, value) of a key no field has: raise ConfigError to refuse it, return to skip it."""


def toml_key(name: str) -> dict[str, str]:
    """Field metadata for a key spelled differently in the file (`field(metadata=toml_key("X"))`)."""
    return {"toml": name}


def _key_of(spec: dataclasses.Field[Any]) -> str:
    return str(spec.metadata.get("toml", spec.name))


def _where(path: str, key: str) -> str:
    if "." in key or not key:
        key = f'"{key}"'
    return f"{path}.{key}" if path else key


def _refuse(where: str, value: Any) -> None:
    raise ConfigError(f"unknown key {where!r}")


def from_table(cls: type[T], table: Mapping[str, Any], path: str = "", *, unknown: UnknownKey | None = None) -> T:
    """An instance of the dataclass `cls` from a parsed TOML table; ConfigError names the first
    key that is unknown (and not taken by `unknown`) or has a value of the wrong type."""
    hints = typing.get_type_hints(cls)
    fields = {_key_of(spec): spec for spec in dataclasses.fields(cls)}  # type: ignore[arg-type]
    values: dict[str, Any] = {}
    for key, value in table.items():
        spec = fields.get(key)
        if spec is None:
            (unknown or _refuse)(_where(path, key), value)
            continue
        values[spec.name] = _value(hints[spec.name], value, _where(path, key), unknown)
    return cls(**values)


def check_scalar(kind: type[Any], value: Any, where: str) -> Any:
    """`value` as a `kind` (bool, int, float or str; an integer is taken as a float), or a
    ConfigError naming `where`."""
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(f"{where!r} must be {_KINDS.get(kind, str(kind))}, not {value!r}")
    return value


def _value(hint: Any, value: Any, where: str, unknown: UnknownKey | None) -> Any:
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ConfigError(f"{where!r} must be a table")
        return from_table(typing.cast(type[Any], hint), value, where, unknown=unknown)
    origin = typing.get_origin(hint)
    if origin is tuple:
        item = typing.get_args(hint)[0]
        if not isinstance(value, list):
            raise ConfigError(f"{where!r} must be an array")
        return tuple(_value(item, v, f"{where}[{i}]", unknown) for i, v in enumerate(value))
    if origin is Mapping:
        item = typing.get_args(hint)[1]
        if not isinstance(value, dict):
            raise ConfigError(f"{where!r} must be a table")
        return types.MappingProxyType({k: _value(item, v, _where(where, k), unknown) for k, v in value.items()})
    return check_scalar(hint, value, where)


def to_document(config: Any) -> dict[str, Any]:
    """A dataclass instance as nested dicts and lists, keys spelled as in the file."""
    return {_key_of(spec): _plain(getattr(config, spec.name)) for spec in dataclasses.fields(config)}


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_document(value)
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


# --- writing ------------------------------------------------------------------------------------

_BARE = re.compile(r"[A-Za-z0-9_-]+")
_ESCAPED = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def _string(text: str) -> str:
    body = "".join(_ESCAPED.get(ch) or (f"\\u{ord(ch):04X}" if ord(ch) < 0x20 or ord(ch) == 0x7F else ch)
                   for ch in text)
    return f'"{body}"'


def _key(key: str) -> str:
    return key if _BARE.fullmatch(key) else _string(key)


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{_key(k)} = {_scalar(v)}" for k, v in value.items()) + "}"
    if isinstance(value, Sequence):
        return "[" + ", ".join(_scalar(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def dumps(document: Mapping[str, Any]) -> str:
    """TOML text for nested dicts: a table's plain values first, then its sub-tables, each under
    its `[dotted.header]` (empty tables keep their header)."""
    lines: list[str] = []

    def table(values: Mapping[str, Any], path: tuple[str, ...]) -> None:
        plain = [(k, v) for k, v in values.items() if not isinstance(v, Mapping)]
        nested = [(k, v) for k, v in values.items() if isinstance(v, Mapping)]
        if path and (plain or not nested):
            lines.extend(["", "[" + ".".join(_key(p) for p in path) + "]"])
        lines.extend(f"{_key(k)} = {_scalar(v)}" for k, v in plain)
        for key, value in nested:
            table(value, (*path, key))

    table(document, ())
    return "\n".join(lines).lstrip("\n") + "\n"


__all__ = ["UnknownKey", "check_scalar", "dumps", "from_table", "to_document", "toml_key"]

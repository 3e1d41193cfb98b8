"""Whether a document matches one of socikit's JSON Schemas, decided without jsonschema.

`convert`, `create` and `push --v1` check every index they are about to write
(`validate.prewrite`). The documents they check nearly always match, and importing jsonschema
and compiling the schemas cost ~80 ms of CPU on every run, beside the layer workers on the same
cores (docs/performance.md). So the verdict comes from this evaluator of the draft 2020-12
keywords the shipped schemas use, and jsonschema is imported only to word the errors of a
document that fails. `tests/unit/test_schemacheck.py` holds both to the same verdict on the
golden vectors, the bad inputs and generated mutations of them.

A keyword this evaluator does not know raises `UnknownKeywordError` instead of being ignored:
a schema that starts to use one must get it here (and in the differential test) first.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote, urldefrag, urljoin

from socikit.validate.schemafiles import documents_by_id, load_schema, schema_id

# Keywords that assert nothing in draft 2020-12 as socikit's validators are configured: notes,
# identifiers, and `format` / `contentEncoding`, which are annotations unless a format checker or
# content assertion is asked for (neither is).
_ANNOTATIONS = frozenset(
    {"$schema", "$id", "$defs", "$comment", "title", "description", "examples", "default", "format",
     "contentEncoding", "contentMediaType", "deprecated", "readOnly", "writeOnly"}
)  # fmt: skip


class UnknownKeywordError(ValueError):
    """A schema uses a keyword the quick verdict does not evaluate."""


def conforms(name: str, document: Any) -> bool:
    """True when `document` is valid against schema `name` (as Draft202012Validator decides)."""
    return _Evaluator(schema_id(name)).valid(document, load_schema(name))


@functools.cache
def _pattern(source: str) -> re.Pattern[str]:
    return re.compile(source)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_integer(value: Any) -> bool:
    # JSON Schema counts 1.0 as an integer; bools are never numbers.
    if isinstance(value, float):
        return value.is_integer()
    return isinstance(value, int) and not isinstance(value, bool)


_TYPES: dict[str, Callable[[Any], bool]] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "number": _is_number,
    "integer": _is_integer,
}


def json_equal(a: Any, b: Any) -> bool:
    """Equality as JSON Schema's `const` and `enum` mean it: `true` is not `1`, `1` is `1.0`."""
    if isinstance(a, str) or isinstance(b, str):
        return bool(a == b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (list, dict)) or isinstance(b, (list, dict)):
        return False
    return bool(a == b)


class _Evaluator:
    """Walks one schema over one document; `base` is the `$id` that relative `$ref`s resolve
    against, switched while inside a schema reached through a reference to another document."""

    def __init__(self, base: str) -> None:
        self.base = base

    def valid(self, value: Any, schema: Any) -> bool:
        if schema is True:
            return True
        if schema is False:
            return False
        for keyword, argument in schema.items():
            if keyword in _ANNOTATIONS or keyword in ("then", "else"):
                continue
            check = _KEYWORDS.get(keyword)
            if check is None:
                raise UnknownKeywordError(f"schema keyword {keyword!r} is not evaluated by socikit's quick check")
            if not check(self, value, argument, schema):
                return False
        return True

    def follow(self, value: Any, ref: str) -> bool:
        target = urljoin(self.base, ref)
        document_id, fragment = urldefrag(target)
        document = documents_by_id()[document_id]
        node: Any = document
        for part in fragment.split("/")[1:] if fragment else []:
            node = node[unquote(part).replace("~1", "/").replace("~0", "~")]
        saved, self.base = self.base, document_id
        try:
            return self.valid(value, node)
        finally:
            self.base = saved


def _type(ev: _Evaluator, value: Any, argument: Any, _: Any) -> bool:
    names = argument if isinstance(argument, list) else [argument]
    return any(_TYPES[name](value) for name in names)


def _required(ev: _Evaluator, value: Any, argument: Any, _: Any) -> bool:
    return not isinstance(value, dict) or all(key in value for key in argument)


def _properties(ev: _Evaluator, value: Any, argument: Any, _: Any) -> bool:
    if not isinstance(value, dict):
        return True
    return all(ev.valid(value[key], sub) for key, sub in argument.items() if key in value)


def _additional(ev: _Evaluator, value: Any, argument: Any, schema: Any) -> bool:
    if not isinstance(value, dict):
        return True
    known = schema.get("properties", {})
    patterns = [_pattern(p) for p in schema.get("patternProperties", {})]
    extra = [k for k in value if k not in known and not any(p.search(k) for p in patterns)]
    return all(ev.valid(value[key], argument) for key in extra)


def _pattern_properties(ev: _Evaluator, value: Any, argument: Any, _: Any) -> bool:
    if not isinstance(value, dict):
        return True
    return all(
        ev.valid(item, sub) for source, sub in argument.items() for key, item in value.items()
        if _pattern(source).search(key)
    )  # fmt: skip


def _items(ev: _Evaluator, value: Any, argument: Any, _: Any) -> bool:
    return not isinstance(value, list) or all(ev.valid(item, argument) for item in value)


def _contains(ev: _Evaluator, value: Any, argument: Any, schema: Any) -> bool:
    if not isinstance(value, list):
        return True
    matches = sum(1 for item in value if ev.valid(item, argument))
    return bool(schema.get("minContains", 1) <= matches <= schema.get("maxContains", matches))


def _if(ev: _Evaluator, value: Any, argument: Any, schema: Any) -> bool:
    branch = "then" if ev.valid(value, argument) else "else"
    return branch not in schema or ev.valid(value, schema[branch])


def _sized(kind: type[Any], compare: Callable[[int, int], bool]) -> Callable[[_Evaluator, Any, Any, Any], bool]:
    def check(ev: _Evaluator, value: Any, argument: Any, _: Any) -> bool:
        return not isinstance(value, kind) or compare(len(value), argument)

    return check


def _bound(compare: Callable[[Any, Any], bool]) -> Callable[[_Evaluator, Any, Any, Any], bool]:
    return lambda ev, value, argument, _: not _is_number(value) or compare(value, argument)


_KEYWORDS: dict[str, Callable[[_Evaluator, Any, Any, Any], bool]] = {
    "$ref": lambda ev, value, argument, _: ev.follow(value, argument),
    "type": _type,
    "const": lambda ev, value, argument, _: json_equal(value, argument),
    "enum": lambda ev, value, argument, _: any(json_equal(value, option) for option in argument),
    "required": _required,
    "properties": _properties,
    "additionalProperties": _additional,
    "patternProperties": _pattern_properties,
    "items": _items,
    "contains": _contains,
    "minContains": lambda *_: True,  # read by `contains`
    "maxContains": lambda *_: True,
    "minItems": _sized(list, lambda n, limit: n >= limit),
    "maxItems": _sized(list, lambda n, limit: n <= limit),
    "minLength": _sized(str, lambda n, limit: n >= limit),
    "maxLength": _sized(str, lambda n, limit: n <= limit),
    "minProperties": _sized(dict, lambda n, limit: n >= limit),
    "maxProperties": _sized(dict, lambda n, limit: n <= limit),
    "pattern": lambda ev, value, argument, _: not isinstance(value, str) or bool(_pattern(argument).search(value)),
    "minimum": _bound(lambda v, limit: v >= limit),
    "maximum": _bound(lambda v, limit: v <= limit),
    "exclusiveMinimum": _bound(lambda v, limit: v > limit),
    "exclusiveMaximum": _bound(lambda v, limit: v < limit),
    "allOf": lambda ev, value, argument, _: all(ev.valid(value, sub) for sub in argument),
    "anyOf": lambda ev, value, argument, _: any(ev.valid(value, sub) for sub in argument),
    "oneOf": lambda ev, value, argument, _: sum(1 for sub in argument if ev.valid(value, sub)) == 1,
    "not": lambda ev, value, argument, _: not ev.valid(value, argument),
    "if": _if,
}


__all__ = ["UnknownKeywordError", "conforms", "json_equal"]

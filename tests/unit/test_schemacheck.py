"""The quick schema verdict (`validate.schemacheck`) against jsonschema: the same answer for every
shipped schema on the golden vectors' documents, on documents that break them in every way a
seeded generator finds, and on the corner cases of JSON equality and types."""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from socikit.validate.schemacheck import UnknownKeywordError, _Evaluator, conforms, json_equal
from socikit.validate.schemafiles import SCHEMA_NAMES
from socikit.validate.schemas import validator
from socikit.ztoc.info import ztoc_info
from socikit.ztoc.serialize import loads
from tests.vectors import all_vectors, extra_vectors

PREFETCH_EXAMPLE = {
    "version": "1.0",
    "prefetch_spans": [{"start_span": 0, "end_span": 3}, {"start_span": 5, "end_span": 5, "priority": 1}],
}


def corpus() -> list[tuple[str, Any]]:
    """(label, document) for every JSON document the vectors hold and every ztoc's info view."""
    out: list[tuple[str, Any]] = [("prefetch-example", PREFETCH_EXAMPLE)]
    for vector in [*all_vectors(), *extra_vectors()]:
        for directory in ("expected", "expected-current"):
            for file in sorted((vector.path / directory).glob("*")) if (vector.path / directory).is_dir() else []:
                if file.suffix == ".json":
                    out.append((f"{vector.name}/{directory}/{file.name}", json.loads(file.read_bytes())))
                elif file.suffix == ".bin":
                    data = file.read_bytes()
                    out.append((f"{vector.name}/{file.name}:info", ztoc_info(loads(data), size=len(data))))
    return out


def jsonschema_says(name: str, document: Any) -> bool:
    return bool(validator(name).is_valid(document))


CORPUS = corpus()


def test_the_corpus_has_a_valid_document_for_every_schema() -> None:
    assert len(CORPUS) > 50
    for name in SCHEMA_NAMES:
        assert any(jsonschema_says(name, doc) for _, doc in CORPUS), name


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_same_verdict_on_every_document(name: str) -> None:
    verdicts = {label: conforms(name, doc) for label, doc in CORPUS}
    assert verdicts == {label: jsonschema_says(name, doc) for label, doc in CORPUS}
    assert any(verdicts.values()) and not all(verdicts.values())  # both answers were exercised


# -- mutations ------------------------------------------------------------------------------------

REPLACEMENTS: list[Any] = [
    None, True, False, 0, 1, -1, 1.0, 2.5, 2, 9223372036854775808, "", "x", "1", "true", "sha256:" + "0" * 64,
    "sha256:" + "A" * 64, "application/octet-stream", "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.amazon.soci.index.v2+json", [], [1], {}, {"a": "b"}, {"a": 1},
]  # fmt: skip


def _paths(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield path
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _paths(value, (*path, index))


def _mutate(document: Any, rng: random.Random) -> Any:
    """The document with one to three random edits: a value replaced, a key removed or added, a
    list item dropped or duplicated, a string shortened."""
    doc = copy.deepcopy(document)
    for _ in range(rng.randint(1, 3)):
        path = rng.choice(list(_paths(doc)))
        if not path:
            continue
        parent = doc
        for part in path[:-1]:
            parent = parent[part]
        key = path[-1]
        value = parent[key]
        move = rng.randrange(6)
        if move == 0:
            parent[key] = copy.deepcopy(rng.choice(REPLACEMENTS))
        elif move == 1:
            del parent[key]
        elif move == 2 and isinstance(value, dict):
            value[rng.choice(["extra", "os", "size", "urls", "data", "platform", "subject"])] = copy.deepcopy(
                rng.choice(REPLACEMENTS)
            )
        elif move == 3 and isinstance(value, list) and value:
            value.append(copy.deepcopy(value[0])) if rng.random() < 0.5 else value.pop()
        elif move == 4 and isinstance(value, str):
            parent[key] = value[: rng.randrange(len(value) + 1)]
        elif move == 5 and isinstance(value, int) and not isinstance(value, bool):
            parent[key] = rng.choice([value + 1, -value, float(value), str(value), value > 0])
    return doc


def _own_documents(name: str) -> list[Any]:
    return [doc for _, doc in CORPUS if jsonschema_says(name, doc)]


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_same_verdict_on_generated_breakage(name: str) -> None:
    rng = random.Random(f"schemacheck-{name}")
    documents = _own_documents(name)[:12]
    valid = invalid = 0
    for document in documents:
        for _ in range(60):
            mutated = _mutate(document, rng)
            expected = jsonschema_says(name, mutated)
            assert conforms(name, mutated) == expected, json.dumps(mutated)[:2000]
            valid, invalid = valid + expected, invalid + (not expected)
    # The generator broke documents, and not every edit broke one.
    assert invalid >= 20 * len(documents) and valid > 0, (valid, invalid)


# -- corner cases ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "equal"),
    [(True, 1, False), (False, 0, False), (1, 1.0, True), ("1", 1, False), ([1, True], [1, 1], False),
     ({"a": [1.0]}, {"a": [1]}, True), ({"a": 1}, {"a": 1, "b": 2}, False), (None, False, False), ([], {}, False)],
)  # fmt: skip
def test_json_equality_is_json_schemas(a: Any, b: Any, equal: bool) -> None:
    assert json_equal(a, b) is equal
    schema = {"const": b}
    assert _Evaluator("x").valid(a, schema) is equal


@pytest.mark.parametrize(
    ("schema", "value"),
    [({"type": "integer"}, 1.0), ({"type": "integer"}, True), ({"type": "number"}, False), ({"minimum": 0}, -1),
     ({"minimum": 0}, True), ({"maximum": 1}, "9"), ({"minLength": 2}, "é"), ({"pattern": "^a"}, 7),
     ({"required": ["a"]}, []), ({"items": {"type": "string"}}, {"a": 1}), ({"contains": {"const": 1}}, []),
     ({"oneOf": [{"type": "integer"}, {"minimum": 0}]}, 3), ({"if": {"const": 1}, "then": False}, 1),
     ({"if": {"const": 1}, "then": False}, 2), ({"if": {"const": 1}, "else": False}, 2)],
)  # fmt: skip
def test_keyword_corner_cases_agree_with_jsonschema(schema: dict[str, Any], value: Any) -> None:
    from jsonschema import Draft202012Validator  # type: ignore[import-untyped]

    assert _Evaluator("x").valid(value, schema) == Draft202012Validator(schema).is_valid(value)


def test_an_unknown_keyword_is_refused_not_ignored() -> None:
    with pytest.raises(UnknownKeywordError, match="uniqueItems"):
        _Evaluator("x").valid([1, 1], {"uniqueItems": True})


def test_the_pre_write_check_words_a_failure_with_jsonschema(tmp_path: Path) -> None:
    from socikit.errors import InvalidArtifactError
    from socikit.validate.prewrite import validate_soci_index

    vector = next(v for v in all_vectors() if v.name == "tricky-pax")
    document = json.loads(next((vector.path / "expected-current").glob("soci-index-v2-*.json")).read_bytes())
    document["config"]["size"] = 3
    data = json.dumps(document, separators=(",", ":")).encode()
    wording = r"does not match the soci-index-v2 schema: config/size: 2 was expected"
    with pytest.raises(InvalidArtifactError, match=wording):
        validate_soci_index(data, "v2")

"""docs/ci.md cannot rot: every YAML block of the docs (workflows, GitLab CI, buildspecs) parses,
and every socikit command line in them, in ci.md's shell blocks and its command table — and every
`docker run` of the builder image, through its entrypoint's mapping — is accepted by the CLI's
parser (nothing runs)."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from socikit.cli.container import convert_argv
from tests.cliparse import parse_command_line
from tests.vectors import REPO_ROOT

CI_DOC = REPO_ROOT / "docs" / "ci.md"
DOCS = sorted((REPO_ROOT / "docs").glob("*.md")) + [REPO_ROOT / "README.md"]
_FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
_GITHUB_EXPRESSION = re.compile(r"\$\{\{.*?\}\}")
_SHELL_OPERATORS = {"&&", "||", ";", "|"}


def _blocks(text: str, *languages: str) -> list[str]:
    return [body for lang, body in _FENCE.findall(text) if lang in languages]


def _strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value)


def _commands(script: str) -> Iterator[list[str]]:
    """Shell command lines of a script: continuations joined, GitHub `${{ }}` expressions made one
    word, split at `&&`, `||`, `;` and `|`."""
    joined = re.sub(r"\\\n\s*", " ", script)
    for line in joined.splitlines():
        line = _GITHUB_EXPRESSION.sub("GITHUB_EXPRESSION", line).strip()
        if not line or line.startswith("#"):
            continue
        words: list[str] = []
        for word in shlex.split(line, comments=True):
            if word in _SHELL_OPERATORS:
                if words:
                    yield words
                words = []
            else:
                words.append(word)
        if words:
            yield words


def _socikit_args(words: list[str]) -> list[str] | None:
    """The arguments of `socikit ...` (after any VAR=value prefix), or None for other commands."""
    while words and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]):
        words = words[1:]
    return words[1:] if words and words[0] == "socikit" else None


def _builder_run(words: list[str]) -> tuple[list[str], dict[str, str]] | None:
    """(arguments, environment) of `docker run ... socikit-builder ARGS`, or None."""
    if words[:2] != ["docker", "run"] or "socikit-builder" not in words:
        return None
    image_at = words.index("socikit-builder")
    env = {}
    options = words[2:image_at]
    for i, word in enumerate(options):
        if word in ("-e", "--env"):
            key, _, value = options[i + 1].partition("=")
            env[key] = value
    return words[image_at + 1:], env


def _doc_commands() -> list[tuple[str, list[str]]]:
    found: list[tuple[str, list[str]]] = []
    for doc in DOCS:
        text = doc.read_text()
        scripts = [s for block in _blocks(text, "yaml", "yml") for s in _strings(yaml.safe_load(block))]
        if doc == CI_DOC:
            scripts += _blocks(text, "sh", "bash", "console", "shell")
        for script in scripts:
            for words in _commands(script):
                args = _socikit_args(words)
                if args is not None:
                    found.append((doc.name, args))
                builder = _builder_run(words)
                if builder is not None:
                    found.append((f"{doc.name} (builder)", convert_argv(*builder)))
        if doc == CI_DOC:  # the command mapping table: whole command lines in its cells
            for row in (line for line in text.splitlines() if line.startswith("| `")):
                for span in re.findall(r"`(socikit [^`]+)`", row):
                    found.append((f"{doc.name} (table)", shlex.split(span.replace("\\|", "|"))[1:]))
    return found


def test_every_yaml_block_parses_and_the_blueprints_are_there() -> None:
    loaded = [yaml.safe_load(b) for b in _blocks(CI_DOC.read_text(), "yaml", "yml")]
    assert all(isinstance(b, (dict, list)) for b in loaded)  # a list: workflow steps to add to a job
    blocks = [b for b in loaded if isinstance(b, dict)]
    # YAML 1.1 reads a bare `on` key as true, as GitHub's own parser does not: accept either.
    github = [b for b in blocks if "jobs" in b and ("on" in b or True in b)]
    gitlab = [b for b in blocks if "stages" in b]
    buildspecs = [b for b in blocks if b.get("version") == 0.2 and "phases" in b]
    assert len(github) >= 2 and gitlab and len(buildspecs) >= 2  # incl. the multi-arch workflow
    assert any("strategy" in job for b in github for job in b["jobs"].values())


COMMANDS = _doc_commands()


def test_the_docs_show_every_build_integration() -> None:
    ci = [args for doc, args in COMMANDS if doc.startswith("ci.md")]
    assert len(ci) >= 20
    shown = {tuple(parse_command_line(args)[0]) for args in ci}
    assert {("hook",), ("merge",), ("buildx", "build"), ("convert",), ("create",), ("push",)} <= shown
    assert any(doc == "ci.md (builder)" for doc, _ in COMMANDS)


@pytest.mark.parametrize(("doc", "args"), COMMANDS, ids=[f"{d}: {' '.join(a)[:60]}" for d, a in COMMANDS])
def test_command_line_is_accepted(doc: str, args: list[str]) -> None:
    path, _ = parse_command_line(args)
    assert path, f"{doc}: `socikit {' '.join(args)}` names no command"

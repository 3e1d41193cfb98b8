"""Help texts survive rich: typer renders them as markup, so a `[word]` in one would vanish."""

from __future__ import annotations

import re
from typing import Any

import typer.main

from socikit.cli import app

_MARKUP_TAG = re.compile(r"(?<!\\)\[[a-z/#][^\]]*\]")


def _commands(command: Any, path: str = "socikit") -> list[tuple[str, Any]]:
    found = [(path, command)]
    for name, sub in getattr(command, "commands", {}).items():  # a group (typer's click may be its own copy)
        found += _commands(sub, f"{path} {name}")
    return found


def test_no_help_text_holds_something_rich_would_eat() -> None:
    swallowed = []
    for path, command in _commands(typer.main.get_command(app)):
        texts = [command.help or ""] + [getattr(p, "help", None) or "" for p in command.params]
        swallowed += [f"{path}: {m.group(0)}" for text in texts for m in _MARKUP_TAG.finditer(text)]
    assert swallowed == []
    assert len(_commands(typer.main.get_command(app))) > 20  # every subcommand was looked at


def test_the_check_sees_a_markup_tag() -> None:
    assert _MARKUP_TAG.search("Unix socket [default: /run/x.sock].")
    assert not _MARKUP_TAG.search("Unix socket (default: /run/x.sock); \\[escaped] stays.")

"""Help texts survive rich: typer renders them as markup, so a `[word]` in one would vanish."""

from __future__ import annotations

import re

import click
import typer.main

from socikit.cli import app

_MARKUP_TAG = re.compile(r"(?<!\\)\[[a-z/#][^\]]*\]")


def _commands(command: click.Command, path: str = "socikit") -> list[tuple[str, click.Command]]:
    found = [(path, command)]
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            found += _commands(sub, f"{path} {name}")
    return found


def test_no_help_text_holds_something_rich_would_eat() -> None:
    swallowed = []
    for path, command in _commands(typer.main.get_command(app)):
        texts = [command.help or ""] + [getattr(p, "help", None) or "" for p in command.params]
        swallowed += [f"{path}: {m.group(0)}" for text in texts for m in _MARKUP_TAG.finditer(text)]
    assert swallowed == []


def test_the_check_sees_a_markup_tag() -> None:
    assert _MARKUP_TAG.search("Unix socket [default: /run/x.sock].")
    assert not _MARKUP_TAG.search("Unix socket (default: /run/x.sock); \\[escaped] stays.")

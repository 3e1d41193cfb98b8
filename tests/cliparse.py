"""Parse a `socikit` command line the way the CLI would, down to the command it names, without
running anything: what the docs tests and the buildx tests use to check command lines."""

from __future__ import annotations

from typing import Any

import typer.main

from socikit.cli import app


def _pending(ctx: Any) -> list[str]:
    # The subcommand and its arguments, however this click version names the attribute.
    protected = getattr(ctx, "protected_args", None)
    if protected is None:
        protected = getattr(ctx, "_protected_args", [])
    return [*protected, *ctx.args]


def parse_command_line(argv: list[str]) -> tuple[list[str], dict[str, Any]]:
    """(the command path, e.g. ["buildx", "build"], and its parsed parameters). Raises click's
    usage errors (NoSuchOption, BadParameter, MissingParameter, UsageError) as the CLI would."""
    command: Any = typer.main.get_command(app)
    ctx = command.make_context("socikit", list(argv))
    path: list[str] = []
    while hasattr(command, "resolve_command"):
        name, command, rest = command.resolve_command(ctx, _pending(ctx))
        path.append(name)
        ctx = command.make_context(name, rest, parent=ctx)
    return path, dict(ctx.params)

"""docs/cli.md matches the command line: every command and subcommand has a section (a heading
naming `socikit <command>`), every option its `--help` lists is in that section's flag tables or in
a flag section it links to (`[registry flags](#registry-flags)`), and every flag a section's
tables document is one `--help` lists. The options are read from the real `--help` output, so
a new option fails here until it is documented."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import pytest
import typer.main
from typer.testing import CliRunner

from socikit.cli import app
from tests.vectors import REPO_ROOT

CLI_DOC = REPO_ROOT / "docs" / "cli.md"
_HEADING = re.compile(r"^(#{1,6})\s+(.*)$")
_COMMAND_IN_HEADING = re.compile(r"`socikit((?: [a-z][a-z0-9-]*)*)(?=[ `])")
_FLAG = re.compile(r"(?<![\w-])(--?[a-zA-Z0-9][a-zA-Z0-9-]*)")
_LINK = re.compile(r"\]\(#([a-z0-9-]+)\)")
# An option row of rich's help panel: `│ --name  -n  <metavar>  help…`, or `│ *  --name …` for a
# required option (the panel's other rows are then indented to match); continuation lines of a
# row start further right.
_HELP_ROW = re.compile(r"^│ (?:\*\s{2}|\s{3})?((?:--?[a-zA-Z0-9][a-zA-Z0-9-]*\s+)+)")


def _commands() -> dict[tuple[str, ...], list[str]]:
    """Every command path (the root is `()`) -> the names of its visible options."""
    found: dict[tuple[str, ...], list[str]] = {}

    def walk(command: object, path: tuple[str, ...]) -> None:
        params = getattr(command, "params", [])
        found[path] = [name for p in params if p.param_type_name == "option" and not p.hidden
                       for name in (*p.opts, *p.secondary_opts)]
        for name, sub in (getattr(command, "commands", None) or {}).items():
            if not getattr(sub, "hidden", False):
                walk(sub, (*path, name))

    walk(typer.main.get_command(app), ())
    return found


COMMANDS = _commands()
GROUPS = {path for path in COMMANDS if any(other[: len(path)] == path and other != path for other in COMMANDS)}
# Commands with a section of their own: every leaf, and the root (`--version`).
DOCUMENTED = sorted({p for p in COMMANDS if p not in GROUPS} | {()})


def _help_options(path: tuple[str, ...]) -> set[str]:
    result = CliRunner().invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    names: set[str] = set()
    for line in result.output.splitlines():
        match = _HELP_ROW.match(line)
        if match:
            names.update(match.group(1).split())
    return names - {"--help"}


def _slug(heading: str) -> str:
    """The anchor GitHub gives a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


@dataclass
class Section:
    heading: str
    command: tuple[str, ...] | None
    flags: set[str] = field(default_factory=set)  # first cells of its flag tables
    links: set[str] = field(default_factory=set)


def _sections() -> list[Section]:
    sections: list[Section] = []
    for line in CLI_DOC.read_text().splitlines():
        heading = _HEADING.match(line)
        if heading:
            match = _COMMAND_IN_HEADING.search(heading.group(2))
            command = tuple(match.group(1).split()) if match else None
            sections.append(Section(heading.group(2), command))
            continue
        if not sections:
            continue
        if line.startswith("| `-"):
            first_cell = re.split(r"(?<!\\)\|", line)[1]
            sections[-1].flags.update(_FLAG.findall(first_cell))
        sections[-1].links.update(_LINK.findall(line))
    return sections


SECTIONS = _sections()
BY_ANCHOR = {_slug(s.heading): s for s in SECTIONS}
BY_COMMAND = {s.command: s for s in SECTIONS if s.command is not None}


def test_the_help_output_is_read_right() -> None:
    """The option rows parsed from `--help` are exactly the command's visible options."""
    for path, options in COMMANDS.items():
        assert _help_options(path) == set(options), path


def test_every_command_has_a_section_and_every_section_a_command() -> None:
    missing = [" ".join(p) for p in DOCUMENTED if p not in BY_COMMAND]
    assert not missing, f"commands without a `socikit …` heading in docs/cli.md: {missing}"
    groups = [" ".join(p) for p in GROUPS if not any(c[: len(p)] == p for c in BY_COMMAND)]
    assert not groups, groups
    unknown = [s.heading for s in SECTIONS if s.command is not None and s.command not in COMMANDS]
    assert not unknown, f"docs/cli.md headings naming no command: {unknown}"
    links = {link for s in SECTIONS for link in s.links}
    assert links <= BY_ANCHOR.keys(), links - BY_ANCHOR.keys()


@pytest.mark.parametrize("path", DOCUMENTED, ids=lambda p: " ".join(p) or "socikit")
def test_every_option_is_documented_in_its_section(path: tuple[str, ...]) -> None:
    section = BY_COMMAND[path]
    documented = set(section.flags)
    for anchor in section.links:
        documented |= BY_ANCHOR[anchor].flags
    listed = _help_options(path)
    assert not listed - documented, (
        f"`socikit {' '.join(path)}` options missing from its docs/cli.md section: {sorted(listed - documented)}"
    )
    assert not section.flags - listed, (
        f"docs/cli.md documents options `socikit {' '.join(path)} --help` does not list: "
        f"{sorted(section.flags - listed)}"
    )


def test_the_sections_document_what_users_asked_about() -> None:
    text = CLI_DOC.read_text()
    assert "`oci:DIR` means `oci:DIR:latest`" in text
    assert "no terminal to ask on" in text  # --user without a password
    assert {"--json", "--no-validate"} <= BY_COMMAND[("push",)].flags
    assert "registry-flags" in BY_COMMAND[("validate",)].links
    assert BY_COMMAND[()].flags == {"--version"}

"""The build-integration commands keep the CLI's start-up discipline: their help, and the
failures that need no library, load neither the registry stack nor python-on-whales."""

from __future__ import annotations

import pytest

from tests.unit.test_cli_startup import _heavy, _loaded


@pytest.mark.parametrize("argv", [("merge", "--help"), ("hook", "--help"), ("buildx", "build", "--help"),
                                  ("buildx", "--help")])
def test_help_loads_no_library_stack(argv: tuple[str, ...]) -> None:
    modules = _loaded(*argv)
    assert not {m for m in _heavy(modules) if not m.startswith("rich")}  # help is drawn by rich
    assert not {m for m in modules if m.startswith(("socikit.pipeline", "socikit.integrations"))}


def test_version_does_not_load_the_integrations() -> None:
    assert not {m for m in _loaded("--version") if m.startswith("socikit.integrations")}

"""`socikit image rpull` as a command: help without the gRPC or registry stacks, bad options as
one line."""

from __future__ import annotations

from typer.testing import CliRunner

from socikit.cli import app
from tests.unit.test_cli_startup import _heavy, _loaded


def test_rpull_help_loads_neither_grpc_nor_the_registry_stack() -> None:
    modules = _loaded("image", "rpull", "--help")
    assert not {m for m in _heavy(modules) if not m.startswith("rich")}
    assert not {m for m in modules if m.split(".")[0] in ("grpc", "google") or m.startswith("socikit.containerd")}


def test_rpull_rejects_a_bad_tls_verify_value() -> None:
    result = CliRunner().invoke(app, ["image", "rpull", "--tls-verify", "maybe", "r.example/app:1"])
    assert result.exit_code == 2 and "--tls-verify takes true or false" in result.output

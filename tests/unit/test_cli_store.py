"""`socikit store` as a user runs it: the effective config, one-line errors, a light start-up."""

from __future__ import annotations

import fcntl
import tomllib
from pathlib import Path

from socikit.store.config import StoreConfig, parse_config
from socikit.tomlconfig import to_document
from tests.cli import run_socikit
from tests.unit.test_cli_startup import _heavy, _loaded


def test_print_config_shows_defaults_and_the_file(tmp_path: Path) -> None:
    result = run_socikit("store", "--mountpoint", str(tmp_path / "mnt"), "--root", str(tmp_path / "state"),
                         "--config", str(tmp_path / "missing.toml"), "--print-config")
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.strip() == f"error: config file {tmp_path / 'missing.toml'} does not exist"
    (tmp_path / "store.toml").write_text('[resolver.host."127.0.0.1:5000"]\nplain_http = true\n')
    result = run_socikit("store", "--mountpoint", str(tmp_path / "mnt"), "--root", str(tmp_path / "state"),
                         "--config", str(tmp_path / "store.toml"), "--print-config")
    assert result.returncode == 0, result.stderr
    shown = parse_config(result.stdout)
    assert shown.resolver.host["127.0.0.1:5000"].plain_http
    assert tomllib.loads(result.stdout)["cache"] == to_document(StoreConfig())["cache"]
    assert not (tmp_path / "mnt").exists() and not (tmp_path / "state").exists()


def test_bad_input_is_one_line_and_exit_1(tmp_path: Path) -> None:
    (tmp_path / "store.toml").write_text("[fuse]\nattr_timeout = \"1s\"\n")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("")
    cases = {
        ("--config", str(tmp_path / "store.toml")): "'fuse.attr_timeout' must be an integer",
        ("--mountpoint", str(tmp_path / "busy")): "is not empty",
        ("--mountpoint", str(tmp_path / "m"), "--root", str(tmp_path / "m" / "r")): "lies inside the mountpoint",
        ("--mountpoint", str(tmp_path / "m"), "--log-level", "loud"): "--log-level 'loud'",
    }
    for args, message in cases.items():
        if "--config" not in args:
            args = (*args, "--config", str(tmp_path / "none.toml"))
            (tmp_path / "none.toml").write_text("")
        result = run_socikit("store", *args, "--print-config")
        assert result.returncode == 1, args
        assert len(result.stderr.splitlines()) == 1 and message in result.stderr, result.stderr
        assert "Traceback" not in result.stderr and result.stdout == ""


def test_a_root_another_store_holds_is_refused(tmp_path: Path) -> None:
    (tmp_path / "store.toml").write_text("")
    (tmp_path / "state").mkdir()
    with open(tmp_path / "state" / "lock", "a+b") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        result = run_socikit("store", "--mountpoint", str(tmp_path / "mnt"), "--root", str(tmp_path / "state"),
                             "--config", str(tmp_path / "store.toml"))
    assert result.returncode == 1
    assert result.stderr.strip() == f"error: root {tmp_path / 'state'} is in use by another store"
    assert not (tmp_path / "mnt").exists()  # nothing made before the root was had


def test_print_config_loads_no_registry_stack(tmp_path: Path) -> None:
    (tmp_path / "store.toml").write_text("")
    modules = _loaded("store", "--mountpoint", str(tmp_path / "mnt"), "--root", str(tmp_path / "state"),
                      "--config", str(tmp_path / "store.toml"), "--print-config")
    assert "socikit.store.config" in modules
    assert not _heavy(modules) and "socikit.store.resolve" not in modules

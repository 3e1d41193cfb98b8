# ruff: noqa: F811  (pytest fixtures imported from registry_fixtures are parameters here)
"""Registry errors as a user meets them: `socikit` run as a subprocess (stdin not a terminal)
against Debian's docker-registry fixtures must say what went wrong in one line, and must never
print a password or token, not even with every logger at DEBUG."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from socikit.errors import RegistryError
from socikit.registry import RegistryClient, RetryPolicy
from tests.integration.registry_fixtures import (  # noqa: F401
    RegistryServer,
    registry,
)
from tests.vectors import REPO_ROOT, all_vectors

pytestmark = [pytest.mark.integration, pytest.mark.registry]

MULTI = next(v for v in all_vectors() if v.name == "multi-platform")
FAST_RETRY = RetryPolicy(attempts=2, initial_delay=0.01, max_delay=0.05, deadline=10.0)
PLAIN_HTTP_HINT = "the registry answered in plain HTTP; add --plain-http"


def run_socikit(*args: str, home: Path, debug_logging: bool = False,
                env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`socikit ARGS` from this worktree, stdin from /dev/null (no terminal), an empty HOME and
    Docker config unless `env` says otherwise. With `debug_logging`, every logger (requests,
    urllib3, socikit) writes DEBUG records to stderr."""
    home.mkdir(parents=True, exist_ok=True)
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_", "SOCIKIT_"))}
    environ.update(PYTHONPATH=str(REPO_ROOT), HOME=str(home), DOCKER_CONFIG=str(home / "docker"))
    environ.update(env or {})
    if debug_logging:
        code = ("import logging, sys; logging.basicConfig(level=logging.DEBUG, stream=sys.stderr); "
                "from socikit.cli import main; sys.argv[0] = 'socikit'; main()")
        command = [sys.executable, "-c", code, *args]
    else:
        command = [sys.executable, "-m", "socikit", *args]
    return subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=180, env=environ, cwd=home)


def convert_args(destination: str, root: Path, *extra: str) -> list[str]:
    return ["convert", "--span-size", "65536", "--min-layer-size", "0", "--progress", "none",
            "--root", str(root), *extra, f"oci:{MULTI.input_dir}:latest", destination]


# ---------------------------------------------------------------------------------------------
# an HTTP registry reached over HTTPS


def test_client_names_plain_http_when_tls_meets_an_http_registry(registry: RegistryServer) -> None:
    client = RegistryClient(registry.host, retry=FAST_RETRY)  # https:// to a plain-HTTP registry
    with pytest.raises(RegistryError) as info:
        client.resolve("hint/app", "v1")
    assert str(info.value) == (f"resolve {registry.host}/hint/app:v1 on {registry.host}: "
                               f"TLS error (WRONG_VERSION_NUMBER): {PLAIN_HTTP_HINT}")


def test_convert_without_plain_http_says_to_add_it(registry: RegistryServer, tmp_path: Path) -> None:
    result = run_socikit(*convert_args(f"{registry.host}/hint/app:1", tmp_path / "root"), home=tmp_path)
    assert result.returncode == 1, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert lines[0].endswith(f"TLS error (WRONG_VERSION_NUMBER): {PLAIN_HTTP_HINT}")
    assert registry.host in lines[0]


# ---------------------------------------------------------------------------------------------
# --user without a password and no terminal


NO_PASSWORD = ("error: no password for --user socikit-user and no terminal to ask for it: give "
               "--user USER:PASSWORD, or leave out --user to use the Docker config")


@pytest.mark.parametrize("command", ["convert", "validate", "index-list-remote"])
def test_user_without_password_and_no_terminal_is_one_clear_line(
        registry: RegistryServer, tmp_path: Path, command: str) -> None:
    ref = f"{registry.host}/nopass/app:1"
    args = {
        "convert": convert_args(ref, tmp_path / "root", "--plain-http", "-u", "socikit-user"),
        "validate": ["validate", "--plain-http", "-u", "socikit-user", ref],
        "index-list-remote": ["index", "list", "--remote", ref, "--plain-http", "-u", "socikit-user"],
    }[command]
    result = run_socikit(*args, home=tmp_path)
    assert result.returncode == 1
    assert result.stderr == NO_PASSWORD + "\n"
    assert "Aborted" not in result.stdout + result.stderr

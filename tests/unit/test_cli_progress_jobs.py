"""`--progress` and `--jobs` as a user sees them: the `socikit` command in a process of its own,
stderr a pipe (as in CI) or a terminal."""

from __future__ import annotations

import hashlib
import json
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli import run_socikit
from tests.vectors import REPO_ROOT, all_vectors

MULTI = next(v for v in all_vectors() if v.name == "multi-platform")
GOLDEN_INDEX = (MULTI.path / "expected-current" / "converted-index.json").read_bytes()
LAYERS = {layer["layer_digest"] for layer, _ in MULTI.layer_ztoc_pairs()}
ARGS = ["--span-size", "65536", "--min-layer-size", "0", "--all-platforms", f"oci:{MULTI.input_dir}:latest"]
BUILT = re.compile(r"^layer ([0-9a-f]{12}): ztoc with \d+ spans, \d+ files \(in \d+\.\d\d s\)$")
CACHED = re.compile(r"^layer ([0-9a-f]{12}): ztoc with \d+ spans, \d+ files \(from cache\)$")


def _convert(tmp_path: Path, *flags: str, root: Path, env: dict[str, str] | None = None):
    out = tmp_path / f"out-{len(list(tmp_path.iterdir()))}"
    return run_socikit("convert", *flags, *ARGS, f"oci:{out}:latest", root=root, env=env)


def _layer_lines(stderr: str, pattern: re.Pattern[str]) -> set[str]:
    return {m.group(1) for line in stderr.splitlines() if (m := pattern.match(line))}


def test_plain_progress_is_one_line_per_layer_on_stderr(tmp_path: Path) -> None:
    root = tmp_path / "root"
    first = _convert(tmp_path, "--progress", "plain", root=root)
    assert first.returncode == 0, first.stderr
    assert _layer_lines(first.stderr, BUILT) == {d[7:19] for d in LAYERS}
    assert "writing 3 ztocs and 2 SOCI indexes" in first.stderr.splitlines()
    assert "\x1b" not in first.stderr + first.stdout
    assert first.stdout.splitlines()[-2].startswith("result sha256:" + hashlib.sha256(GOLDEN_INDEX).hexdigest())
    assert len(first.stdout.splitlines()) == 4  # one line per platform, the result and the AWS Lambda note

    again = _convert(tmp_path, "--progress", "plain", root=root)
    assert again.returncode == 0, again.stderr
    assert _layer_lines(again.stderr, CACHED) == {d[7:19] for d in LAYERS}
    assert not _layer_lines(again.stderr, BUILT)


def test_no_progress_is_silent(tmp_path: Path) -> None:
    result = _convert(tmp_path, "--progress", "none", root=tmp_path / "root")
    assert result.returncode == 0 and result.stderr == ""
    lines = result.stdout.splitlines()
    assert len(lines) == 4 and lines[-1].startswith("note: AWS Lambda")


def test_auto_progress_is_plain_off_a_terminal(tmp_path: Path) -> None:
    result = _convert(tmp_path, root=tmp_path / "root")
    assert result.returncode == 0, result.stderr
    assert _layer_lines(result.stderr, BUILT) == {d[7:19] for d in LAYERS}
    assert "\x1b" not in result.stderr


def _on_a_terminal(tmp_path: Path, env: dict[str, str]) -> tuple[int, str]:
    """Run a convert with stderr on a pseudo-terminal; (exit code, what the terminal got)."""
    master, slave = pty.openpty()
    path = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    full_env = {k: v for k, v in os.environ.items() if k != "CI"} | {"PYTHONPATH": path, "TERM": "xterm"} | env
    argv = [sys.executable, "-m", "socikit", "convert", *ARGS, f"oci:{tmp_path / 'out'}:latest",
            "--root", str(tmp_path / "root")]  # fmt: skip
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave, env=full_env)
    os.close(slave)
    received = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: every writer has closed the terminal
            break
        if not chunk:
            break
        received += chunk
    os.close(master)
    assert proc.stdout is not None
    proc.stdout.read()
    proc.stdout.close()
    return proc.wait(timeout=120), received.decode("utf-8", "replace")


def test_auto_progress_on_a_terminal_is_a_live_display_unless_ci(tmp_path: Path) -> None:
    code, shown = _on_a_terminal(tmp_path / "a", {})
    assert code == 0, shown
    assert "\x1b[" in shown  # drawn by rich, not printed line by line
    assert all(f"layer {d[7:19]}" in shown for d in LAYERS)
    code, shown = _on_a_terminal(tmp_path / "b", {"CI": "true"})
    assert code == 0, shown
    assert "\x1b[" not in shown
    assert _layer_lines(shown.replace("\r\n", "\n"), BUILT) == {d[7:19] for d in LAYERS}


def test_unknown_progress_mode_is_a_usage_error(tmp_path: Path) -> None:
    result = _convert(tmp_path, "--progress", "fancy", root=tmp_path / "root")
    assert result.returncode == 2 and "--progress" in result.stderr
    assert not (tmp_path / "root").exists()


@pytest.mark.parametrize("jobs", ["1", "2", "8"])
def test_any_number_of_jobs_gives_the_reference_bytes(tmp_path: Path, jobs: str) -> None:
    result = _convert(tmp_path, "--jobs", jobs, "--no-cache", "--progress", "none", "--json", root=tmp_path / "root")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["result"]["digest"] == "sha256:" + hashlib.sha256(GOLDEN_INDEX).hexdigest()
    layers = {layer["digest"] for p in summary["platforms"] for layer in p["layers"]}
    assert layers == LAYERS
    ztocs = {layer["ztoc"] for p in summary["platforms"] for layer in p["layers"]}
    assert ztocs == set(MULTI.expected_ztocs())
    (out,) = [p for p in tmp_path.iterdir() if p.name.startswith("out-")]
    assert (out / "blobs" / "sha256" / summary["result"]["digest"][7:]).read_bytes() == GOLDEN_INDEX


@pytest.mark.parametrize("jobs", ["0", "-1", "many"])
def test_jobs_must_be_a_positive_number(tmp_path: Path, jobs: str) -> None:
    result = _convert(tmp_path, "--jobs", jobs, root=tmp_path / "root")
    assert result.returncode == 2 and "--jobs" in result.stderr

"""How the benchmarks run the `socikit` command: from byte-compiled modules, as an installed copy.

pip byte-compiles a wheel's modules when it installs it. A source checkout run with
PYTHONDONTWRITEBYTECODE=1 (as these machines are set up) never writes .pyc files, so every
command would first compile socikit's own sources again (~0.1 s per command, measured with
cProfile) - a cost no installed copy has. The package is compiled once, explicitly, into its
usual `__pycache__` directories (git ignores them; a stale one is simply not used).

`--checkout DIR` (see `add_checkout_option`) runs the command from another checkout, e.g. an
export of an older commit with its extension built, to measure before and after in one run.
"""

from __future__ import annotations

import argparse
import compileall
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

SOCIKIT = [sys.executable, "-m", "socikit"]

# The baselines' inflate: the same interpreter, zlib-ng's Python API, nothing but inflate.
INFLATE = """
import sys
from zlib_ng import zlib_ng
d = zlib_ng.decompressobj(47)
with open(sys.argv[1], "rb") as f:
    while chunk := f.read(1 << 18):
        d.decompress(chunk)
d.flush()
"""


def compile_socikit(checkout: Path = REPO) -> None:
    """Make the timed `python -m socikit` commands start from compiled modules. Forced: compileall
    otherwise trusts a `.pyc` whose recorded source mtime matches to the second, and a file
    replaced within that second (a restored edit) keeps stale bytecode that the interpreter
    rejects on size, compiling that module again in every timed run."""
    compileall.compile_dir(checkout / "socikit", quiet=1, force=True)


def add_checkout_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkout", type=Path, default=REPO,
                        help="run `socikit` from this checkout (default: this one)")  # fmt: skip


def socikit_env(checkout: Path) -> dict[str, str]:
    """The environment (and, with `cwd=checkout`, the import path) that runs `checkout`'s socikit."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(checkout)
    return env


@dataclass(frozen=True)
class Run:
    """One whole process: wall seconds, CPU seconds (user + system, its children included) and
    peak RSS in MiB (GNU time's, run in between: a forked child's own rusage would start from
    its parent's high-water mark)."""

    wall: float
    cpu: float
    rss: float


def run(argv: list[str], checkout: Path | None = None) -> Run:
    """Run `argv` (socikit from `checkout` when given) with its output discarded."""
    with tempfile.NamedTemporaryFile("r") as report:
        started = time.perf_counter()
        subprocess.run(["/usr/bin/time", "-f", "%U %S %M", "-o", report.name, *argv], stdout=subprocess.DEVNULL,
                       check=True, cwd=checkout, env=socikit_env(checkout) if checkout else None)  # fmt: skip
        wall = time.perf_counter() - started
        user, system, rss = report.read().split()[-3:]
    return Run(wall, float(user) + float(system), int(rss) / 1024)

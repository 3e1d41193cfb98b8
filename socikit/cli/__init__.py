"""The `socikit` command line: a thin typer layer over the library.

Each command module registers its commands on the apps defined in `socikit.cli.apps`. A run
imports only the module of the command it invokes: typer builds its click command tree from every
registered command on each run (about 30 ms for all of them), which `--help` and a mistyped
command still pay.

Command modules do not use `from __future__ import annotations`: typer would `eval` every
annotation string of every command on each run (about 6 ms for the `ztoc` commands alone),
where evaluated annotations cost it nothing. Names imported only for type checking are quoted.
"""

from __future__ import annotations

import gc
import importlib
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import typer

# Registration order is the order `socikit --help` lists commands in.
_MODULES = ("buildx", "convert", "hook", "image", "index", "merge", "push", "snapshotter", "store", "validate", "ztoc")
# Top-level command or group -> the module that registers it.
_REGISTRAR = {
    "buildx": "buildx", "convert": "convert", "create": "convert", "hook": "hook", "image": "image",
    "index": "index", "merge": "merge", "push": "push", "snapshotter": "snapshotter", "store": "store",
    "validate": "validate", "ztoc": "ztoc",
}  # fmt: skip


def _register(*modules: str) -> None:
    """Import command modules (each registers its commands once)."""
    for module in modules:
        importlib.import_module(f"socikit.cli.{module}")


def main() -> None:
    from socikit.cli.apps import app

    args = sys.argv[1:]
    command = next((arg for arg in args if not arg.startswith("-")), None)
    if command in _REGISTRAR:
        _register(_REGISTRAR[command])
    elif args[:1] != ["--version"]:
        _register(*_MODULES)
    # What is imported by now lives until the process ends. Frozen, the collector no longer walks
    # it in the full collections of the run and of interpreter shutdown: ~20 ms less per command
    # (docs/performance.md, "CLI start-up").
    gc.freeze()
    app()


def run() -> None:
    """The `socikit` executable (`python -m socikit` too): `main`, then, once the command has
    ended, the process exits without tearing the interpreter down. Teardown frees every object
    one by one - the modules, a built ztoc, its TOC - which the kernel does at once when the
    process ends: 10-30 ms per command (docs/performance.md, "CLI start-up"). Exit handlers
    still run and output is flushed; while a non-daemon thread is alive, or when the exit carries
    a message, the interpreter exits as usual."""
    try:
        main()
    except SystemExit as exc:
        if isinstance(exc.code, int | None):
            _exit_without_teardown(exc.code or 0)
        raise


def _exit_without_teardown(code: int) -> None:
    """`os._exit(code)` after what a normal exit does first (joining threads aside): exit handlers
    (multiprocessing reaps its workers, logging flushes) and flushed output. Returns instead when
    that cannot be done the same way, for the caller to exit as usual."""
    import atexit
    import os
    import threading

    main_thread = threading.main_thread()
    if any(t is not main_thread and not t.daemon and t.is_alive() for t in threading.enumerate()):
        return  # the interpreter joins these before exiting
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        return  # a closed pipe: the interpreter reports it as always
    atexit._run_exitfuncs()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        os._exit(code or 120)  # what the interpreter exits with when the final flush fails
    os._exit(code)


def __getattr__(name: str) -> Any:
    # `from socikit.cli import app` (tests, embedding) gets the app with every command.
    if name == "app":
        from socikit.cli.apps import app

        _register(*_MODULES)
        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if TYPE_CHECKING:
    app: typer.Typer


__all__ = ["app", "main", "run"]

"""`socikit snapshotter`: the containerd snapshotter daemon, in the foreground.

Library modules are imported inside the command (start-up is paid on every call).
"""


from pathlib import Path
from typing import Annotated

import typer

from socikit.cli.apps import app
from socikit.cli.console import errors_to_exit


@app.command("snapshotter")
def snapshotter_command(
    address: Annotated[
        Path | None,
        typer.Option("--address", help="Unix socket containerd connects to (default: /run/socikit/snapshotter.sock)."),
    ] = None,
    root: Annotated[
        Path | None,
        typer.Option("--root", help="Snapshots and metadata (default: /var/lib/socikit/snapshotter)."),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", help="TOML config (default: /etc/socikit/snapshotter.toml, which may be missing)."),
    ] = None,
    log_level: Annotated[
        str | None,
        typer.Option("--log-level", help="debug, info, warn or error (default: info, or debug with `debug = true`)."),
    ] = None,
    metrics_address: Annotated[
        str | None,
        typer.Option("--metrics-address", help="Serve Prometheus metrics at HOST:PORT (loopback) under /metrics."),
    ] = None,
    print_config: Annotated[
        bool, typer.Option("--print-config", help="Print the effective config as TOML and exit.")
    ] = False,
) -> None:
    """Serve containerd's Snapshots API (proxy plugin `socikit`) until SIGTERM or SIGINT.

    Logs JSON lines to stderr. See docs/snapshotter.md for containerd's configuration."""
    from socikit.snapshotter.daemon import resolve_options

    with errors_to_exit():
        options = resolve_options(address=address, root=root, config_path=config, log_level=log_level,
                                  metrics_address=metrics_address)
        if print_config:
            import sys

            from socikit.snapshotter.config import dumps_config

            sys.stdout.write(dumps_config(options.config))
            return
        from socikit.snapshotter.daemon import run_daemon

        run_daemon(options)

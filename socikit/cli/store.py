"""`socikit store`: the additional layer store for podman and CRI-O, in the foreground.

Library modules are imported inside the command (start-up is paid on every call).
"""


from pathlib import Path
from typing import Annotated

import typer

from socikit.cli.apps import app
from socikit.cli.console import errors_to_exit


@app.command("store")
def store_command(
    root: Annotated[
        Path | None,
        typer.Option("--root", help="Span cache and state (default: /var/lib/socikit/store-root)."),
    ] = None,
    mountpoint: Annotated[
        Path | None,
        typer.Option("--mountpoint", help="Where the store is mounted; storage.conf names it as "
                     "`additionallayerstores = [\"DIR:ref\"]` (default: /var/lib/socikit/store)."),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", help="TOML config (default: /etc/socikit/store.toml, which may be missing)."),
    ] = None,
    log_level: Annotated[
        str | None,
        typer.Option("--log-level", help="debug, info, warn or error (default: info, or debug with `debug = true`)."),
    ] = None,
    print_config: Annotated[
        bool, typer.Option("--print-config", help="Print the effective config as TOML and exit.")
    ] = False,
) -> None:
    """Serve SOCI-indexed image layers to podman and CRI-O (containers/storage's additional layer
    store) over FUSE until SIGTERM or SIGINT.

    Runs in the foreground and logs JSON lines on stderr; counters in ROOT/status.json. See
    docs/podman.md for storage.conf."""
    from socikit.store.options import resolve_options

    with errors_to_exit():
        options = resolve_options(root=root, mountpoint=mountpoint, config_path=config, log_level=log_level)
        if print_config:
            import sys

            from socikit.store.config import dumps_config

            sys.stdout.write(dumps_config(options.config))
            return
        from socikit.store.daemon import run_store

        run_store(options)

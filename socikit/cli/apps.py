"""The typer apps every command module registers on."""

import typer

from socikit.__about__ import __version__

# Locals in tracebacks could hold credentials: never show them.
app = typer.Typer(
    name="socikit",
    help="Make container images lazy-loadable with SOCI: build ztocs and SOCI indexes, convert, validate.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)
ztoc_app = typer.Typer(help="Build and inspect ztocs (per-layer tables of contents).", no_args_is_help=True)
index_app = typer.Typer(help="Inspect and manage SOCI indexes in the local store.", no_args_is_help=True)
image_app = typer.Typer(help="Pull images into containerd for lazy-loading snapshotters.", no_args_is_help=True)
buildx_app = typer.Typer(help="Build with docker buildx and convert what was built.", no_args_is_help=True)
app.add_typer(ztoc_app, name="ztoc")
app.add_typer(index_app, name="index")
app.add_typer(image_app, name="image")
app.add_typer(buildx_app, name="buildx")


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"socikit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """socikit: SOCI tooling, byte-compatible with the reference `soci` CLI."""

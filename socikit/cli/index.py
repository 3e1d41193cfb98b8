"""`socikit index list|info|rm` over the local store (and `list --remote` over a registry)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from socikit.cli.app import index_app
from socikit.cli.console import errors_to_exit, print_json, say, stdout
from socikit.cli.registry_options import CertDir, PlainHttp, TlsVerify, User, registry_options
from socikit.errors import ImageError

Root = Annotated[
    Path | None, typer.Option("--root", help="Local store root (default: $SOCIKIT_ROOT, /var/lib/socikit "
                                 "for root, else ~/.local/share/socikit).", envvar="SOCIKIT_ROOT"),
]
COLUMNS = ("digest", "size", "image_ref", "platform", "media_type", "manifest", "version", "created")


@index_app.command("list")
def list_command(
    ref: Annotated[str | None, typer.Option("--ref", help="Only indexes built from this image reference.")] = None,
    remote: Annotated[
        str | None, typer.Option("--remote", help="List the SOCI indexes a registry has for this image instead.")
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    root: Root = None,
    plain_http: PlainHttp = False,
    tls_verify: TlsVerify = "true",
    cert_dir: CertDir = None,
    user: User = None,
) -> None:
    """List SOCI indexes in the local store (or, with --remote, in a registry)."""
    from rich.table import Table

    from socikit.pipeline.store import LocalStore, index_summary
    from socikit.settings import default_root

    with errors_to_exit():
        if remote:
            from socikit.pipeline.remote import list_remote_indexes

            rows = list_remote_indexes(remote, registry_options(plain_http, tls_verify, cert_dir, user))
        else:
            rows = [index_summary(s) for s in LocalStore(root or default_root()).indexes(ref=ref)]
        if json_output:
            print_json(rows)
            return
        table = Table(*[c.upper().replace("_", " ") for c in COLUMNS], box=None)
        for row in rows:
            table.add_row(*[str(row.get(c, "")) for c in COLUMNS])
        stdout.print(table)


@index_app.command("info")
def info_command(
    digest: Annotated[str, typer.Argument(help="Digest of a SOCI index in the local store.")],
    root: Root = None,
) -> None:
    """Print a stored SOCI index (indented JSON)."""
    from socikit.oci import gojson
    from socikit.pipeline.store import LocalStore
    from socikit.settings import default_root

    with errors_to_exit():
        store = LocalStore(root or default_root())
        index = store.read_index(digest)
        sys.stdout.write(gojson.dumps_indent(index.to_json()).decode() + "\n")
        from socikit.soci.prefetch import describe_prefetch  # what each prefetch artifact holds, on stderr

        for desc in index.prefetches:
            sys.stderr.write(describe_prefetch(desc, store.read_blob(desc.digest)) + "\n")


@index_app.command("rm")
def remove_command(
    digests: Annotated[list[str] | None, typer.Argument(help="Digests of SOCI indexes to remove.")] = None,
    ref: Annotated[str | None, typer.Option("--ref", help="Remove every index built from this image.")] = None,
    root: Root = None,
) -> None:
    """Remove SOCI indexes (and ztocs no other index uses) from the local store."""
    if bool(digests) == bool(ref):
        raise typer.BadParameter("give either index digests or --ref, not both")
    from socikit.pipeline.store import LocalStore
    from socikit.settings import default_root

    with errors_to_exit():
        store = LocalStore(root or default_root())
        wanted = set(digests or ()) or {s.descriptor.digest for s in store.indexes(ref=ref)}
        if not wanted:
            raise ImageError(f"no SOCI index in the local store was built from {ref}")
        for digest in store.remove(wanted):
            say(f"removed {digest}")

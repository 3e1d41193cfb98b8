"""`socikit index list|info|rm` over the local store (and `list --remote` over a registry)."""

import sys
from pathlib import Path
from typing import Annotated

import typer

from socikit.cli.apps import index_app
from socikit.cli.console import errors_to_exit, print_json, print_table, say
from socikit.cli.registry_options import CertDir, PlainHttp, TlsVerify, User, registry_options

Root = Annotated[
    Path | None, typer.Option("--root", help="Local store root (default: $SOCIKIT_ROOT, /var/lib/socikit "
                                 "for root, else ~/.local/share/socikit).", envvar="SOCIKIT_ROOT"),
]
COLUMNS = ("digest", "size", "image_ref", "platform", "media_type", "manifest", "version", "created")
DIGEST_HELP = "a digest, or a unique prefix of at least 12 hex digits (with or without sha256:)"


@index_app.command("list")
def list_command(
    ref: Annotated[
        str | None,
        typer.Option("--ref", help="Only indexes built from this image reference (normalized, as push matches it)."),
    ] = None,
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
    """List SOCI indexes in the local store (or, with --remote, in a registry): one row per index
    and image reference it was built for, every digest whole."""
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
        print_table([c.upper().replace("_", " ") for c in COLUMNS], [[row.get(c, "") for c in COLUMNS] for row in rows],
                    wrap_when_narrow=True)


@index_app.command("info")
def info_command(
    digest: Annotated[str, typer.Argument(help=f"A SOCI index in the local store: {DIGEST_HELP}.")],
    root: Root = None,
) -> None:
    """Print a stored SOCI index (indented JSON)."""
    from socikit.oci import gojson
    from socikit.pipeline.store import LocalStore
    from socikit.settings import default_root

    with errors_to_exit():
        store = LocalStore(root or default_root())
        index = store.read_index(store.resolve_index(digest))
        sys.stdout.write(gojson.dumps_indent(index.to_json()).decode() + "\n")
        from socikit.soci.prefetch import describe_prefetch  # what each prefetch artifact holds, on stderr

        for desc in index.prefetches:
            sys.stderr.write(describe_prefetch(desc, store.read_blob(desc.digest)) + "\n")


@index_app.command("rm")
def remove_command(
    digests: Annotated[
        list[str] | None, typer.Argument(help=f"SOCI indexes to remove, each {DIGEST_HELP}.", show_default=False)
    ] = None,
    ref: Annotated[
        str | None,
        typer.Option("--ref", help="Remove the indexes built from this image reference (with digests: only theirs)."),
    ] = None,
    root: Root = None,
) -> None:
    """Remove SOCI indexes from the local store: every record of the given digests, or the records
    of one image reference. A blob (index or ztoc) goes once no remaining record needs it."""
    if not digests and not ref:
        raise typer.BadParameter("nothing to remove: give index digests (or unique prefixes) or --ref REFERENCE")
    from socikit.pipeline.store import LocalStore
    from socikit.settings import default_root

    with errors_to_exit():
        store = LocalStore(root or default_root())
        for removal in store.remove(digests=digests or (), ref=ref):
            record = removal.record
            what = ", ".join(filter(None, [record.image_ref, str(record.platform or "")]))
            kept = "" if removal.blob_removed else "; the index stays: another record names it"
            say(f"removed {record.digest}" + (f" for {what}" if what else "") + kept)

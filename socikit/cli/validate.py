"""`socikit validate REF`."""


from typing import Annotated

import typer

from socikit.cli.apps import app
from socikit.cli.console import errors_to_exit, print_json, stdout
from socikit.cli.registry_options import CertDir, PlainHttp, TlsVerify, User, registry_options
from socikit.errors import InvalidArtifactError


@app.command("validate")
def validate_command(
    reference: Annotated[
        str,
        typer.Argument(
            help="Image to check (any reference form): its SOCI indexes, ztocs and, with --deep/--sample, its layers."
        ),
    ],
    deep: Annotated[
        bool,
        typer.Option(
            "--deep",
            help="Stream every indexed layer: span digests, every TOC "
            "entry against its tar header, every file through spans.",
        ),
    ] = False,
    sample: Annotated[
        int | None, typer.Option("--sample", min=1, help="Like --deep but read only N files per layer through spans.")
    ] = None,
    no_reproduce: Annotated[
        bool,
        typer.Option(
            "--no-reproduce",
            help="With --deep/--sample: check every layer item by item (span reads from each "
            "checkpoint) even when its ztoc can be rebuilt identically from the blob.",
        ),
    ] = False,
    allow_unindexed: Annotated[
        bool,
        typer.Option(
            "--allow-unindexed",
            help="Exit 0 when every check passes even if a soci-snapshotter with default settings "
            "would lazily load no platform of the image (no SOCI index, or only SOCI v1 indexes).",
        ),
    ] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Machine-readable report on stdout.")] = False,
    plain_http: PlainHttp = False,
    tls_verify: TlsVerify = "true",
    cert_dir: CertDir = None,
    user: User = None,
) -> None:
    """Check an image's SOCI artifacts the way the soci-snapshotter will use them. Exit 0 when every
    check passes and a soci-snapshotter with default settings lazily loads at least one platform
    of the image (any platform with --allow-unindexed), 1 otherwise."""
    if deep and sample:
        raise typer.BadParameter("--deep and --sample exclude each other")
    from socikit.transports import open_source
    from socikit.validate.image import validate_image

    with errors_to_exit():
        source = open_source(reference, registry_options=registry_options(plain_http, tls_verify, cert_dir, user))
        try:
            report = validate_image(source, deep=deep, sample=sample or 0, reproduce=not no_reproduce)
        finally:
            source.close()
        if json_output:
            print_json(report.to_json())
        else:
            from rich.table import Table
            from rich.text import Text

            # Subjects and reasons quote the image's own strings: the console prints strings as
            # they are; only the result word is styled, as a Text.
            table = Table("check", "result", "artifact", "reason", box=None)
            for check in report.checks:
                table.add_row(
                    check.name,
                    Text("pass", style="green") if check.passed else Text("FAIL", style="red"),
                    check.subject,
                    check.reason,
                )
            stdout.print(table)
            stdout.print(f"soci-snapshotter with default settings: {report.summary}")
            failed = len(report.failures)
            stdout.print(f"{len(report.checks) - failed} passed, {failed} failed")
        if report.passed and not allow_unindexed and not report.summary.any_indexed:
            # Valid artifacts, but a CI gate asking "is this image SOCI-enabled?" must not pass it.
            raise InvalidArtifactError(
                "no platform of this image has a SOCI index a soci-snapshotter would load lazily; "
                "add --allow-unindexed to accept that"
            )
    if not report.passed:
        raise typer.Exit(code=1)

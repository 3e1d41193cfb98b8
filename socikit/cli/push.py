"""`socikit push --v1`."""


from pathlib import Path
from typing import Annotated

import typer

from socikit.cli.apps import app
from socikit.cli.console import errors_to_exit, print_json, say
from socikit.cli.progress import ProgressRenderer
from socikit.cli.registry_options import CertDir, PlainHttp, TlsVerify, User, registry_options


@app.command("push")
def push_command(
    reference: Annotated[
        str,
        typer.Argument(
            help="Registry image the indexes were created for (HOST/REPO:TAG), matched normalized; "
            "HOST/REPO@DIGEST picks the records of that image or platform manifest digest (or a unique "
            "prefix of 12+ hex digits)."
        ),
    ],
    v1: Annotated[
        bool,
        typer.Option(
            "--v1", help="Push SOCI v1 indexes (required: v2 indexes travel with the image through `socikit convert`)."
        ),
    ] = False,
    existing_index: Annotated[
        str,
        typer.Option(
            "--existing-index",
            help="When the registry already has a v1 index for the image: "
            "warn (push anyway, with a warning), skip, or allow.",
        ),
    ] = "warn",
    platform: Annotated[
        list[str] | None, typer.Option("--platform", "-p", help="Platform to push (repeatable).")
    ] = None,
    all_platforms: Annotated[bool, typer.Option("--all-platforms", help="Push the indexes of every platform.")] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Machine-readable summary.")] = False,
    no_validate: Annotated[
        bool, typer.Option("--no-validate", help="Push without validating the indexes first.")
    ] = False,
    root: Annotated[Path | None, typer.Option("--root", envvar="SOCIKIT_ROOT", help="Local store root.")] = None,
    plain_http: PlainHttp = False,
    tls_verify: TlsVerify = "true",
    cert_dir: CertDir = None,
    user: User = None,
) -> None:
    """Push SOCI v1 indexes from the local store (built by `socikit create`) to a registry."""
    if not v1:
        raise typer.BadParameter("only --v1 indexes are pushed; SOCI v2 indexes travel with `socikit convert`")
    from socikit.pipeline.push import EXISTING_INDEX_POLICIES, push_v1
    from socikit.pipeline.store import LocalStore
    from socikit.settings import default_root

    if existing_index not in EXISTING_INDEX_POLICIES:
        raise typer.BadParameter(f"--existing-index takes one of {', '.join(EXISTING_INDEX_POLICIES)}")
    with errors_to_exit():
        reg = registry_options(plain_http, tls_verify, cert_dir, user)
        with ProgressRenderer("plain") as renderer:  # stderr: --json keeps stdout to itself, not warnings
            outcomes = push_v1(
                reference,
                store=LocalStore(root or default_root()),
                registry=reg,
                platforms=tuple(platform or ()),
                all_platforms=all_platforms,
                existing_index=existing_index,
                validate=not no_validate,
                on_event=renderer,
            )
        rows = [
            {
                "digest": o.index.descriptor.digest,
                "platform": str(o.index.platform),
                "pushed": o.pushed,
                "reason": o.reason,
            }
            for o in outcomes
        ]
        if json_output:
            print_json(rows)
        else:
            for row in rows:
                say(f"{row['platform']}: {row['digest']} {'pushed' if row['pushed'] else 'skipped'}")

"""`socikit merge DST SRC...`."""

import contextlib
from typing import Annotated

import typer

from socikit.cli.apps import app
from socikit.cli.console import errors_to_exit, lambda_note, print_json, say
from socikit.cli.convert import (
    BuildToolId,
    Jobs,
    JsonOut,
    MinLayerSize,
    NoCache,
    NoValidate,
    ProgressMode,
    Root,
    SpanSize,
)
from socikit.cli.hook import conversion_line, soci_options, ztoc_cache
from socikit.cli.progress import ProgressRenderer
from socikit.cli.registry_options import CertDir, PlainHttp, TlsVerify, User, registry_options
from socikit.oci import mediatypes as mt


@app.command("merge")
def merge_command(
    destination: Annotated[
        str,
        typer.Argument(help="Where the merged image goes (registry HOST/REPO:TAG, oci:DIR:TAG, oci-archive:FILE:TAG)."),
    ],
    sources: Annotated[
        list[str],
        typer.Argument(help="Images to merge, single- or multi-platform, in any reference form (at least one)."),
    ],
    soci: Annotated[
        bool, typer.Option("--soci", help="Convert the merged image in the same run: a SOCI index per platform.")
    ] = False,
    v1: Annotated[bool, typer.Option("--v1", help="With --soci: SOCI v1 indexes (for AWS Lambda targets).")] = False,
    prefer: Annotated[
        list[str] | None,
        typer.Option("--prefer", help="When images share a platform, take this SRC's manifest (repeatable; "
                     "the first named wins). Without it a shared platform is an error."),
    ] = None,
    span_size: SpanSize = mt.DEFAULT_SPAN_SIZE,
    min_layer_size: MinLayerSize = mt.DEFAULT_MIN_LAYER_SIZE,
    build_tool_id: BuildToolId = mt.REFERENCE_BUILD_TOOL_ID,
    jobs: Jobs = None,
    json_output: JsonOut = False,
    progress: ProgressMode = "auto",
    no_validate: NoValidate = False,
    no_cache: NoCache = False,
    root: Root = None,
    plain_http: PlainHttp = False,
    tls_verify: TlsVerify = "true",
    cert_dir: CertDir = None,
    user: User = None,
) -> None:
    """Combine images built on separate machines into one OCI image index.

    What `docker manifest create` or manifest-tool do in pipelines, from and to any reference form;
    with --soci the merged image is converted in the same run."""
    if v1 and not soci:
        raise typer.BadParameter("--v1 goes with --soci")
    options = soci_options("v1" if v1 else "v2", span_size, min_layer_size, build_tool_id, jobs, progress)
    from socikit.pipeline.merge import MergeInput, plan_merge, write_merge
    from socikit.transports import open_sink, open_source

    with errors_to_exit(), contextlib.ExitStack() as stack:
        reg = registry_options(plain_http, tls_verify, cert_dir, user)
        inputs = []
        for reference in sources:
            source = open_source(reference, registry_options=reg)
            stack.callback(source.close)
            inputs.append(MergeInput(reference, source))
        plan = plan_merge(inputs, prefer=tuple(prefer or ()))  # before the destination is touched
        sink = open_sink(destination, registry_options=reg)
        stack.callback(sink.close)
        with ProgressRenderer(progress) as renderer:
            result = write_merge(plan, inputs, sink, soci=options if soci else None,
                                 cache=ztoc_cache(no_cache, root) if soci else None,
                                 validate=not no_validate, on_event=renderer)
        if json_output:
            print_json(result.to_json())
        else:
            for p in result.platforms:
                say(f"{p.platform}: {p.manifest} from {p.source}")
            for d in result.dropped:
                say(f"{d.platform}: {d.manifest} from {d.source} left out (--prefer {d.winner})")
            say(conversion_line(result.conversion) if result.conversion is not None
                else f"merged index {result.result.digest} -> {destination}")
        if result.conversion is not None:
            lambda_note(result.conversion.index_version, json_output=json_output)

"""`socikit buildx build`: run docker buildx, then convert exactly what it built."""

import tempfile
from pathlib import Path
from typing import Annotated

import typer

from socikit.cli.apps import buildx_app
from socikit.cli.console import errors_to_exit
from socikit.cli.convert import BuildToolId, Jobs, JsonOut, MinLayerSize, NoValidate, Root, SpanSize
from socikit.cli.hook import SociVersion, report_outcomes, soci_options, ztoc_cache
from socikit.cli.progress import ProgressRenderer
from socikit.cli.registry_options import CertDir, PlainHttp, TlsVerify, User, registry_options
from socikit.oci import mediatypes as mt

DEFAULT_LOCAL_DESTINATION = "oci-archive:soci-image.tar"


@buildx_app.command(
    "build",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def buildx_build_command(
    buildx_args: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="[BUILDX ARGS]...",
            help="Arguments for `docker buildx build`, passed as given: the context, --platform, -f, "
            "--build-arg, --cache-from... (write short options with a space before their value: -f FILE).",
        ),
    ] = None,
    tag: Annotated[
        list[str] | None, typer.Option("--tag", "-t", help="Name of the image, HOST/REPO:TAG (repeatable).")
    ] = None,
    push: Annotated[
        bool, typer.Option("--push", help="Push the build, then convert it in place (v2 retags, v1 adds referrers).")
    ] = False,
    destination: Annotated[
        str | None,
        typer.Option(
            "--destination",
            help="Where the converted image goes. Default: with --push, the --tag names; without, "
            f"{DEFAULT_LOCAL_DESTINATION}:TAG in the current directory.",
        ),
    ] = None,
    soci: SociVersion = "v2",
    span_size: SpanSize = mt.DEFAULT_SPAN_SIZE,
    min_layer_size: MinLayerSize = mt.DEFAULT_MIN_LAYER_SIZE,
    build_tool_id: BuildToolId = mt.REFERENCE_BUILD_TOOL_ID,
    jobs: Jobs = None,
    json_output: JsonOut = False,
    no_validate: NoValidate = False,
    root: Root = None,
    plain_http: PlainHttp = False,
    tls_verify: TlsVerify = "true",
    cert_dir: CertDir = None,
    user: User = None,
) -> None:
    """Run `docker buildx build` and convert exactly what it built, by the digest buildx reports:
    every platform of a multi-platform build gets its SOCI index in one converted image. buildx's
    own --progress and --no-cache options pass through to it."""
    options = soci_options(soci, span_size, min_layer_size, build_tool_id, jobs, "auto")
    from socikit.content.reference import parse_docker_reference
    from socikit.integrations.buildx import ensure_buildx, plan_build, run_build
    from socikit.integrations.hook import plan_jobs, run_jobs
    from socikit.integrations.metadata import parse_metadata

    tags = list(tag or ())
    with errors_to_exit(), tempfile.TemporaryDirectory(prefix="socikit-buildx-") as work:
        plan = plan_build(list(buildx_args or ()), tags=tags, push=push, work_dir=Path(work))
        if destination is None and not push:
            destination = f"{DEFAULT_LOCAL_DESTINATION}:{parse_docker_reference(tags[0]).tag or 'latest'}"
        reg = registry_options(plain_http, tls_verify, cert_dir, user)
        ensure_buildx()
        run_build(plan)
        records = parse_metadata(plan.metadata_file.read_bytes(), str(plan.metadata_file))
        jobs_ = plan_jobs(records, oci_archive=plan.oci_archive, destination=destination)
        with ProgressRenderer("auto") as renderer:
            outcomes = run_jobs(jobs_, options, registry=reg, cache=ztoc_cache(False, root),
                                validate=not no_validate, on_event=renderer)
        report_outcomes(outcomes, json_output)

"""`socikit hook`: convert what a build produced (buildx metadata file or OCI archive), and the
pieces `socikit buildx build` and `socikit merge` share with it."""

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

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
from socikit.cli.progress import MODES, ProgressRenderer
from socikit.cli.registry_options import CertDir, PlainHttp, TlsVerify, User, registry_options
from socikit.oci import mediatypes as mt

if TYPE_CHECKING:
    from socikit.integrations.hook import HookOutcome
    from socikit.integrations.metadata import BuildRecord
    from socikit.pipeline.cache import ZtocCache
    from socikit.pipeline.convert import ConversionResult, ConvertOptions

SociVersion = Annotated[
    str,
    typer.Option("--soci", metavar="v2|v1", help="SOCI index version: v2 (bundled with the image, the default) "
                 "or v1 (referrers of the unchanged image; use v1 for AWS Lambda)."),
]


def soci_options(version: str, span_size: int, min_layer_size: int, build_tool_id: str, jobs: int | None,
                 progress: str) -> "ConvertOptions":
    """Conversion options for every platform of a build or merge, the flags checked."""
    if version not in ("v1", "v2"):
        raise typer.BadParameter("--soci takes v2 or v1")
    if progress not in MODES:
        raise typer.BadParameter(f"--progress takes one of {', '.join(MODES)}")
    from socikit.pipeline.convert import ConvertOptions

    return ConvertOptions(index_version=version, all_platforms=True, span_size=span_size,
                          min_layer_size=min_layer_size, build_tool_identifier=build_tool_id,
                          jobs=jobs or os.cpu_count() or 1)


def ztoc_cache(no_cache: bool, root: Path | None) -> "ZtocCache | None":
    from socikit.pipeline.cache import ZtocCache
    from socikit.settings import default_root

    return None if no_cache else ZtocCache(root or default_root())


def conversion_line(result: "ConversionResult") -> str:
    indexed = sum(1 for p in result.platforms for o in p.layers if o.ztoc is not None)
    layers = sum(len(p.layers) for p in result.platforms)
    return (f"SOCI {result.index_version}: {len(result.platforms)} platform(s), {indexed} of {layers} layers "
            f"indexed; result {result.result.digest}")


def report_outcomes(outcomes: "list[HookOutcome]", json_output: bool) -> None:
    if json_output:
        print_json([{"source": o.source, "destination": o.destination, **o.result.to_json()} for o in outcomes])
    else:
        for o in outcomes:
            say(f"{o.source} -> {o.destination}: {conversion_line(o.result)}")
    lambda_note(outcomes[0].result.index_version if outcomes else "", json_output=json_output)


def read_metadata(path: Path) -> "list[BuildRecord]":
    from socikit.errors import ImageError
    from socikit.integrations.metadata import parse_metadata

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImageError(f"cannot read the metadata file {path}: {exc.strerror or exc}") from None
    return list(parse_metadata(data, str(path)))


@app.command("hook")
def hook_command(
    destination: Annotated[
        str | None,
        typer.Argument(help="Where to write the result (registry, oci:DIR:TAG, oci-archive:FILE:TAG). Default: "
                       "back to the names the build was pushed as (v2 retags them, v1 adds referrers)."),
    ] = None,
    metadata_file: Annotated[
        Path | None,
        typer.Option("--metadata-file", help="The file `docker buildx build --metadata-file` wrote: the image is "
                     "read by the digest it reports."),
    ] = None,
    oci_archive: Annotated[
        Path | None,
        typer.Option("--oci-archive", help="The OCI archive `--output type=oci,dest=FILE` wrote (with "
                     "--metadata-file: the image of the reported digest in it)."),
    ] = None,
    soci: SociVersion = "v2",
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
    """Convert exactly what a build produced (every platform) and push or write the result."""
    options = soci_options(soci, span_size, min_layer_size, build_tool_id, jobs, progress)
    if metadata_file is None and oci_archive is None:
        raise typer.BadParameter("give --metadata-file FILE, --oci-archive FILE, or both")
    from socikit.integrations.hook import plan_jobs, run_jobs

    with errors_to_exit():
        records = read_metadata(metadata_file) if metadata_file else []
        jobs_ = plan_jobs(records, oci_archive=oci_archive, destination=destination)
        reg = registry_options(plain_http, tls_verify, cert_dir, user)
        with ProgressRenderer(progress) as renderer:
            outcomes = run_jobs(jobs_, options, registry=reg, cache=ztoc_cache(no_cache, root),
                                validate=not no_validate, on_event=renderer)
        report_outcomes(outcomes, json_output)

"""`socikit convert` and `socikit create`."""

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from socikit.cli.apps import app
from socikit.cli.console import errors_to_exit, lambda_note, print_json, say
from socikit.cli.progress import MODES, ProgressRenderer
from socikit.cli.registry_options import CertDir, PlainHttp, TlsVerify, User, registry_options
from socikit.errors import FormatError, ImageError
from socikit.oci import mediatypes as mt

if TYPE_CHECKING:
    from socikit.pipeline.convert import ConversionResult, ConvertOptions

Platforms = Annotated[
    list[str] | None,
    typer.Option(
        "--platform",
        "-p",
        help="Platform to index, e.g. linux/arm64 (repeatable). Default: the image's "
        "only platform for a single-manifest image, else the host's.",
    ),
]
AllPlatforms = Annotated[bool, typer.Option("--all-platforms", help="Index every platform of the image.")]
SpanSize = Annotated[int, typer.Option("--span-size", min=0, help="Minimum uncompressed bytes per span.")]
MinLayerSize = Annotated[
    int,
    typer.Option(
        "--min-layer-size", min=0, help="Layers whose compressed size is below this get no ztoc (equal is indexed)."
    ),
]
BuildToolId = Annotated[str, typer.Option("--build-tool-id", help="Build tool identifier in ztocs and indexes.")]
Jobs = Annotated[
    int | None,
    typer.Option("--jobs", "-j", min=1, help="Worker processes indexing layers, largest first (default: cores)."),
]
JsonOut = Annotated[bool, typer.Option("--json", help="Print a machine-readable summary on stdout.")]
ProgressMode = Annotated[str, typer.Option("--progress", help="auto (rich on a terminal, plain in CI), plain or none.")]
NoValidate = Annotated[bool, typer.Option("--no-validate", help="Skip validating the result before writing it.")]
NoCache = Annotated[bool, typer.Option("--no-cache", help="Rebuild every ztoc instead of reusing cached ones.")]
Force = Annotated[
    bool,
    typer.Option(
        "--force", "-f", help="Rebuild every ztoc even when the ztoc cache has it, and store the rebuilt one there."
    ),
]
Optimizations = Annotated[
    list[str] | None,
    typer.Option(
        "--optimizations",
        help="Build optimization (repeatable); only 'xattr': mark the ztocs of layers without "
        "xattrs or opaque directories with com.amazon.soci.disable-xattrs.",
    ),
]
PrefetchFile = Annotated[
    list[str] | None,
    typer.Option(
        "--prefetch-file",
        help="A file inside the image (e.g. /app/main.py) whose spans the snapshotter fetches first "
        "(repeatable): one prefetch artifact per layer holding such files.",
    ),
]
PrefetchFilesJson = Annotated[
    Path | None,
    typer.Option("--prefetch-files-json", help="A JSON file holding an array of such paths.", dir_okay=False),
]
TocAnnotations = Annotated[
    bool,
    typer.Option(
        "--toc-annotations",
        help="v2: also annotate each indexed layer with containerd.io/snapshot/stargz/toc.digest "
        "(its ztoc digest), for podman >= 5.1 and CRI-O with socikit store.",
    ),
]
Root = Annotated[
    Path | None,
    typer.Option(
        "--root",
        help="socikit's local store and ztoc cache (default: $SOCIKIT_ROOT, /var/lib/socikit "
        "for root, else ~/.local/share/socikit).",
        envvar="SOCIKIT_ROOT",
    ),
]


def _summary(result: "ConversionResult", json_output: bool) -> None:
    for p in result.platforms:  # on stderr whatever --progress and --json say: the user asked for these files
        for path, why in p.prefetch_skipped:
            sys.stderr.write(f"note: prefetch {path!r} ({p.platform}): {why}\n")
    if json_output:
        print_json(result.to_json())
        return
    for p in result.platforms:
        indexed = sum(1 for o in p.layers if o.ztoc is not None)
        say(
            f"{p.platform}: {indexed} of {len(p.layers)} layers indexed; SOCI index "
            f"{p.soci_index.digest if p.soci_index else '(none)'}"
        )
    say(f"result {result.result.digest} ({result.result.media_type}) in {result.seconds:.2f} s")


def _options(
    version: str,
    platform: list[str] | None,
    all_platforms: bool,
    span_size: int,
    min_layer_size: int,
    build_tool_id: str,
    jobs: int | None,
    progress: str,
    *,
    optimizations: list[str] | None = None,
    force: bool = False,
    prefetch_files: list[str] | None = None,
    prefetch_files_json: Path | None = None,
    toc_annotations: bool = False,
) -> "ConvertOptions":
    """The flags shared by convert and create, checked and turned into pipeline options. Raises
    SocikitError for an unreadable or malformed --prefetch-files-json (call inside errors_to_exit)."""
    if all_platforms and platform:
        raise typer.BadParameter("--all-platforms and --platform exclude each other")
    if progress not in MODES:
        raise typer.BadParameter(f"--progress takes one of {', '.join(MODES)}")
    from socikit.pipeline.convert import ConvertOptions
    from socikit.soci.index import parse_optimization
    from socikit.soci.prefetch import clean_prefetch_path, loads_prefetch_files_json, prefetch_path_list

    try:
        chosen = tuple(dict.fromkeys(parse_optimization(o) for o in optimizations or ()))
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--optimizations") from None
    paths = prefetch_path_list(prefetch_files or ())
    if prefetch_files_json is not None:
        try:
            data = prefetch_files_json.read_bytes()
        except OSError as exc:
            why = exc.strerror or exc
            raise ImageError(f"cannot read --prefetch-files-json {prefetch_files_json}: {why}") from None
        try:
            paths += loads_prefetch_files_json(data)
        except FormatError as exc:
            raise FormatError(f"{prefetch_files_json}: {exc}") from None
    for path in paths:
        clean_prefetch_path(path)  # the root is refused before any layer is read

    return ConvertOptions(
        index_version=version,
        platforms=tuple(platform or ()),
        all_platforms=all_platforms,
        span_size=span_size,
        min_layer_size=min_layer_size,
        build_tool_identifier=build_tool_id,
        jobs=jobs or os.cpu_count() or 1,
        optimizations=chosen,
        prefetch_paths=tuple(paths),
        force=force,
        toc_annotations=toc_annotations,
    )


@app.command("convert")
def convert_command(
    source: Annotated[
        str,
        typer.Argument(
            help="Image to index: oci:DIR[:TAG], oci-archive:FILE[:TAG], "
            "docker-archive:FILE[:REF], docker-daemon:REF or HOST/REPO[:TAG|@DIGEST]."
        ),
    ],
    destination: Annotated[
        str,
        typer.Argument(
            help="Where to write the result: oci:DIR[:TAG], oci-archive:FILE[:TAG] or HOST/REPO[:TAG] "
            "(docker-archive: and docker-daemon: are sources only). Naming the source's own tag "
            "converts in place: the tag moves to the result, the source image is kept."
        ),
    ],
    v1: Annotated[bool, typer.Option("--v1", help="Write SOCI v1 indexes that refer to the unchanged image.")] = False,
    v2: Annotated[
        bool, typer.Option("--v2", help="Bundle SOCI v2 indexes with the image in a new OCI index (the default).")
    ] = False,
    platform: Platforms = None,
    all_platforms: AllPlatforms = False,
    span_size: SpanSize = mt.DEFAULT_SPAN_SIZE,
    min_layer_size: MinLayerSize = mt.DEFAULT_MIN_LAYER_SIZE,
    build_tool_id: BuildToolId = mt.REFERENCE_BUILD_TOOL_ID,
    jobs: Jobs = None,
    json_output: JsonOut = False,
    progress: ProgressMode = "auto",
    no_validate: NoValidate = False,
    no_cache: NoCache = False,
    force: Force = False,
    optimizations: Optimizations = None,
    prefetch_file: PrefetchFile = None,
    prefetch_files_json: PrefetchFilesJson = None,
    toc_annotations: TocAnnotations = False,
    root: Root = None,
    plain_http: PlainHttp = False,
    tls_verify: TlsVerify = "true",
    cert_dir: CertDir = None,
    user: User = None,
) -> None:
    """Index an image's layers and write it with SOCI indexes (v2 by default, v1 with --v1)."""
    if v1 and v2:
        raise typer.BadParameter("--v1 and --v2 exclude each other")
    if v1 and toc_annotations:
        raise typer.BadParameter("--toc-annotations needs a v2 conversion (it rewrites the image's manifests)")
    from socikit.pipeline.cache import ZtocCache
    from socikit.pipeline.run import run_convert
    from socikit.settings import default_root

    with errors_to_exit():
        options = _options(
            "v1" if v1 else "v2", platform, all_platforms, span_size, min_layer_size, build_tool_id, jobs, progress,
            optimizations=optimizations, force=force, prefetch_files=prefetch_file,
            prefetch_files_json=prefetch_files_json, toc_annotations=toc_annotations,
        )
        reg = registry_options(plain_http, tls_verify, cert_dir, user)
        cache = None if no_cache else ZtocCache(root or default_root())
        with ProgressRenderer(progress) as renderer:
            result = run_convert(
                source, destination, options, registry=reg, cache=cache, validate=not no_validate, on_event=renderer
            )
        if result.tag_move is not None:
            sys.stderr.write(f"note: the tag {result.tag_move}\n")
        _summary(result, json_output)
        lambda_note(result.index_version, json_output=json_output)


@app.command("create")
def create_command(
    source: Annotated[str, typer.Argument(help="Image to index (any reference form).")],
    platform: Platforms = None,
    all_platforms: AllPlatforms = False,
    span_size: SpanSize = mt.DEFAULT_SPAN_SIZE,
    min_layer_size: MinLayerSize = mt.DEFAULT_MIN_LAYER_SIZE,
    build_tool_id: BuildToolId = mt.REFERENCE_BUILD_TOOL_ID,
    jobs: Jobs = None,
    json_output: JsonOut = False,
    progress: ProgressMode = "auto",
    no_validate: NoValidate = False,
    no_cache: NoCache = False,
    force: Force = False,
    optimizations: Optimizations = None,
    prefetch_file: PrefetchFile = None,
    prefetch_files_json: PrefetchFilesJson = None,
    root: Root = None,
    plain_http: PlainHttp = False,
    tls_verify: TlsVerify = "true",
    cert_dir: CertDir = None,
    user: User = None,
) -> None:
    """Build SOCI v1 indexes into the local store (push them with `socikit push --v1`)."""
    from socikit.pipeline.cache import ZtocCache
    from socikit.pipeline.run import run_create
    from socikit.settings import default_root

    with errors_to_exit():
        options = _options(
            "v1", platform, all_platforms, span_size, min_layer_size, build_tool_id, jobs, progress,
            optimizations=optimizations, force=force, prefetch_files=prefetch_file,
            prefetch_files_json=prefetch_files_json,
        )
        reg = registry_options(plain_http, tls_verify, cert_dir, user)
        store_root = root or default_root()
        cache = None if no_cache else ZtocCache(store_root)
        with ProgressRenderer(progress) as renderer:
            result = run_create(
                source, options, root=store_root, registry=reg, cache=cache, validate=not no_validate, on_event=renderer
            )
        _summary(result, json_output)

"""`socikit ztoc build|info|get-file|list`.

Library modules are imported inside the commands: start-up is paid on every call, and each
command needs only its own part of the library (docs/performance.md, "CLI start-up").
"""

import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from socikit.__about__ import __version__
from socikit.atomic import atomic_writer, write_atomic
from socikit.cli.apps import ztoc_app
from socikit.cli.console import errors_to_exit, print_json, print_table, say
from socikit.errors import LayerError, SocikitError, UnsupportedLayerError, ZtocFormatError
from socikit.oci.mediatypes import DEFAULT_SPAN_SIZE, MEDIA_TYPE_OCI_LAYER_GZIP, compression_of_layer

if TYPE_CHECKING:
    from socikit.ztoc.model import Ztoc

DEFAULT_BUILD_TOOL_ID = f"socikit {__version__}"


def _relabel(exc: SocikitError, label: str) -> SocikitError:
    """The same error with the layer named first, so every failure line says which layer."""
    return type(exc)(f"layer {label}: {exc}")


@ztoc_app.command("build")
def build_command(
    blob: Annotated[Path, typer.Argument(help="Layer blob file (gzip-compressed or plain tar).", dir_okay=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the ztoc (atomically).")],
    span_size: Annotated[
        int, typer.Option("--span-size", min=0, help="Minimum uncompressed bytes between checkpoints.")
    ] = DEFAULT_SPAN_SIZE,
    media_type: Annotated[
        str,
        typer.Option("--media-type", help="Layer media type; selects gzip or uncompressed tar handling."),
    ] = MEDIA_TYPE_OCI_LAYER_GZIP,
    build_tool_id: Annotated[
        str, typer.Option("--build-tool-id", help="Build tool identifier stored in the ztoc.")
    ] = DEFAULT_BUILD_TOOL_ID,
    expected_digest: Annotated[
        str | None, typer.Option("--digest", help="Expected sha256 digest of the blob; a mismatch fails.")
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print a machine-readable summary.")] = False,
) -> None:
    """Build the ztoc of one layer blob file."""
    from socikit.ztoc._engine import sha256 as ztoc_digest  # the builder's SHA-256: hashlib would load libcrypto
    from socikit.ztoc.builder import build_ztoc
    from socikit.ztoc.serialize import dumps

    with errors_to_exit():
        _check_output(output)
        algorithm = compression_of_layer(media_type)
        if algorithm is None:
            raise LayerError(f"layer {blob}: {media_type!r} is not a layer media type")
        if algorithm not in ("gzip", "uncompressed"):
            raise UnsupportedLayerError(
                f"layer {blob}: compression {algorithm!r} cannot be indexed (only gzip and uncompressed tar)"
            )
        started = time.monotonic()
        try:
            with open(blob, "rb") as stream:
                result = build_ztoc(
                    stream,
                    algorithm=algorithm,
                    span_size=span_size,
                    build_tool_identifier=build_tool_id,
                    expected_digest=expected_digest,
                )
        except OSError as exc:
            raise LayerError(f"layer {blob}: {exc.strerror or exc}") from None
        except SocikitError as exc:
            raise _relabel(exc, str(blob)) from None
        data = dumps(result.ztoc)
        try:
            write_atomic(output, data)
        except OSError as exc:
            raise SocikitError(f"cannot write {output}: {exc.strerror or exc}") from None
        summary = {
            "ztoc": str(output),
            "digest": ztoc_digest(data),
            "size": len(data),
            "layer_digest": result.blob_digest,
            "layer_size": result.blob_size,
            "compression": algorithm,
            "span_size": span_size,
            "num_spans": result.ztoc.compression_info.num_spans,
            "num_files": len(result.ztoc.toc),
            "uncompressed_size": result.ztoc.uncompressed_archive_size,
            "seconds": round(time.monotonic() - started, 3),
        }
        if json_output:
            print_json(summary)
        else:
            say(
                f"layer {result.blob_digest} -> ztoc {summary['digest']} "
                f"({summary['num_spans']} spans, {summary['num_files']} files, {summary['seconds']} s)"
            )


def _check_output(output: Path) -> None:
    """Refuse an `-o` that cannot be written before any work is done (no directories are made)."""
    if output.is_dir():
        raise SocikitError(f"cannot write {output}: it is a directory")
    parent = output.parent
    if not parent.is_dir():
        why = "is not a directory" if parent.exists() else "does not exist"
        raise SocikitError(f"cannot write {output}: {parent} {why}")


def _load_ztoc(path: Path, root: Path | None = None) -> "tuple[bytes, Ztoc]":
    """A ztoc file, or a ztoc digest in the local store, decoded and its span geometry checked:
    a corrupt ztoc is one ZtocFormatError naming it."""
    from socikit.ztoc.serialize import loads
    from socikit.ztoc.spans import span_table

    text = str(path)
    from_store = False
    if not path.exists():
        from socikit.pipeline.store import digest_prefix, looks_like_short_digest

        if looks_like_short_digest(text):
            raise SocikitError(f"{text}: no such file, and a digest prefix needs at least 12 hex digits")
        from_store = digest_prefix(text) is not None
    if from_store:
        from socikit.pipeline.store import LocalStore
        from socikit.settings import default_root

        store = LocalStore(root or default_root())
        try:
            digest = store.resolve_ztoc(text)
        except SocikitError as exc:
            raise type(exc)(f"{exc} (nor is it a file)") from None
        data = store.read_blob(digest)
    else:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise SocikitError(f"cannot read ztoc {path}: {exc.strerror or exc}") from None
    try:
        value = loads(data)
        span_table(value)
    except ZtocFormatError as exc:
        raise ZtocFormatError(f"ztoc {path}: {exc}") from None
    return data, value


Root = Annotated[
    Path | None, typer.Option("--root", envvar="SOCIKIT_ROOT", help="Local store root, for ztoc digests.")
]
ZtocArg = Annotated[
    Path,
    typer.Argument(help="ztoc file, or a ztoc in the local store: its digest or a unique prefix of 12+ hex digits."),
]


@ztoc_app.command("list")
def list_command(
    json_output: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    root: Root = None,
) -> None:
    """List the ztocs of the SOCI indexes in the local store."""
    from socikit.pipeline.store import LocalStore
    from socikit.settings import default_root

    with errors_to_exit():
        rows = [{"digest": d.digest, "size": d.size, "layer_digest": layer}
                for d, layer in LocalStore(root or default_root()).ztocs()]
        if json_output:
            print_json(rows)
            return
        print_table(["DIGEST", "SIZE", "LAYER DIGEST"],
                    [[row["digest"], row["size"], row["layer_digest"]] for row in rows], wrap_when_narrow=True)


@ztoc_app.command("info")
def info_command(
    ztoc: ZtocArg,
    json_output: Annotated[bool, typer.Option("--json", help="Print the reference's JSON document.")] = False,
    root: Root = None,
) -> None:
    """Show a ztoc's fields and the span range of every file."""
    from socikit.oci import gojson
    from socikit.ztoc.info import ztoc_info

    with errors_to_exit():
        data, value = _load_ztoc(ztoc, root)
        info = ztoc_info(value, size=len(data))
        if json_output:
            sys.stdout.write(gojson.dumps_indent(info).decode("utf-8") + "\n")
            return
        keys = ("version", "build_tool", "size", "span_size", "num_spans", "num_files", "num_multi_span_files")
        print_table(None, [[key, info[key]] for key in keys])
        print_table(["filename", "offset", "size", "type", "start_span", "end_span"],
                    [[f["filename"], f["offset"], f["size"], f["type"], f["start_span"], f["end_span"]]
                     for f in info["files"] or []])


@ztoc_app.command("get-file")
def get_file_command(
    ztoc: ZtocArg,
    blob: Annotated[Path, typer.Argument(help="The layer blob the ztoc was built from.", dir_okay=False)],
    path: Annotated[str, typer.Argument(help="Path of the file inside the layer.")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here (atomically) instead of stdout.")
    ] = None,
    root: Root = None,
) -> None:
    """Extract one file from a layer by decompressing only the spans that hold it."""
    # The blob's size must be the one the ztoc was built from and every span used must match its
    # digest before anything is written; the file is then streamed span by span, so memory does
    # not grow with its size.
    from socikit.ztoc.extract import file_range_reader, iter_uncompressed, regular_file, verify_range

    with errors_to_exit():
        if output is not None:
            _check_output(output)
        _, value = _load_ztoc(ztoc, root)
        entry = regular_file(value, path)
        try:
            stream = open(blob, "rb")  # closed by the `with` below; only open's errors are caught here
        except OSError as exc:
            raise LayerError(f"layer {blob}: {exc.strerror or exc}") from None
        with stream:
            size = os.fstat(stream.fileno()).st_size
            if size != value.compressed_archive_size:
                raise LayerError(
                    f"layer {blob} is {size} bytes but the ztoc was built from a "
                    f"{value.compressed_archive_size}-byte blob (wrong or truncated layer?)"
                )
            read_blob = file_range_reader(stream)

            def read_range(start: int, end: int) -> bytes:
                try:
                    return read_blob(start, end)
                except OSError as exc:
                    raise LayerError(f"layer {blob}: {exc.strerror or exc}") from None

            offset, length = entry.uncompressed_offset, entry.uncompressed_size
            verify_range(value, read_range, offset, length)
            pieces = iter_uncompressed(value, read_range, offset, length)
            try:
                if output is None:
                    for piece in pieces:
                        sys.stdout.buffer.write(piece)
                    sys.stdout.buffer.flush()
                else:
                    with atomic_writer(output) as handle:
                        for piece in pieces:
                            handle.write(piece)
            except OSError as exc:
                raise SocikitError(f"cannot write {output or 'to stdout'}: {exc.strerror or exc}") from None

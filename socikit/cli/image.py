"""`socikit image rpull`."""

import sys
from typing import Annotated

import typer

from socikit.cli.apps import image_app
from socikit.cli.console import errors_to_exit, print_json, say
from socikit.cli.registry_options import CertDir, PlainHttp, TlsVerify, User, registry_options

# Literal defaults here (not imported) keep `--help` free of the gRPC stack.
_CONTAINERD_SOCKET = "/run/containerd/containerd.sock"
_SNAPSHOTTER_SOCKET = "/run/socikit/snapshotter.sock"


@image_app.command("rpull")
def rpull_command(
    reference: Annotated[str, typer.Argument(help="Registry image to pull (HOST/REPO[:TAG|@DIGEST]).")],
    snapshotter: Annotated[
        str, typer.Option("--snapshotter", help="containerd snapshotter to unpack for (socikit, soci, overlayfs, ...).")
    ] = "socikit",
    address: Annotated[
        str, typer.Option("--address", "-a", envvar="CONTAINERD_ADDRESS", help="containerd's gRPC socket.")
    ] = _CONTAINERD_SOCKET,
    namespace: Annotated[
        str, typer.Option("--namespace", "-n", envvar="CONTAINERD_NAMESPACE", help="containerd namespace.")
    ] = "default",
    soci_index_digest: Annotated[
        str,
        typer.Option("--soci-index-digest",
                     help="SOCI index to use (passed to the snapshotter; default: it finds one)."),
    ] = "",
    platform: Annotated[
        str | None,
        typer.Option("--platform", "-p",
                     help="Platform to pull (default: this host's; others are stored, not unpacked)."),
    ] = None,
    snapshotter_address: Annotated[
        str,
        typer.Option("--snapshotter-address", envvar="SOCIKIT_SNAPSHOTTER_ADDRESS",
                     help="socikit snapshotter socket that takes --user credentials for this image."),
    ] = _SNAPSHOTTER_SOCKET,
    json_output: Annotated[bool, typer.Option("--json", help="Machine-readable summary on stdout.")] = False,
    plain_http: PlainHttp = False,
    tls_verify: TlsVerify = "true",
    cert_dir: CertDir = None,
    user: User = None,
) -> None:
    """Pull an image through containerd's API, with the labels that let a remote snapshotter
    (socikit's or soci's) serve layers lazily; `ctr run --snapshotter NAME` then runs it."""
    with errors_to_exit():
        from socikit.pipeline.rpull import RpullOptions, rpull

        options = RpullOptions(
            snapshotter=snapshotter,
            address=address,
            namespace=namespace,
            soci_index_digest=soci_index_digest,
            platform=platform,
            registry=registry_options(plain_http, tls_verify, cert_dir, user),
            snapshotter_address=snapshotter_address,
        )

        def progress(text: str) -> None:
            print(text, file=sys.stderr, flush=True)

        result = rpull(reference, options, on_progress=progress)
        if json_output:
            print_json(result.to_json())
            return
        lazy = sum(1 for layer in result.layers if layer.state == "lazy")
        if result.unpacked:
            say(f"{result.name}: {result.target.digest} unpacked for {result.snapshotter} "
                f"({lazy} of {len(result.layers)} layers lazy, {result.downloaded} bytes downloaded)")
        else:
            say(f"{result.name}: {result.target.digest} stored for {result.platform}, not unpacked "
                f"({result.downloaded} bytes downloaded)")

"""Open the ImageSource / ImageSink an image reference names (dispatch on its transport).

This module sits above both `socikit.content` (local stores) and `socikit.registry`, so neither
of those imports the other. Each transport's module is imported only when used: the registry
stack (requests, oras) and python-on-whales cost start-up time and are optional for local work.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from socikit.content.base import ImageSink, ImageSource
from socikit.content.reference import ImageReference, parse_reference
from socikit.errors import ImageError, ImageReferenceError

if TYPE_CHECKING:
    from socikit.registry.options import RegistryOptions

SINK_TRANSPORTS = "oci:DIR[:TAG], oci-archive:FILE[:TAG] or a registry (HOST/REPO:TAG)"
SOURCE_ONLY_TRANSPORTS = ("docker-archive", "docker-daemon")


def _as_reference(ref: ImageReference | str) -> ImageReference:
    return parse_reference(ref) if isinstance(ref, str) else ref


def open_source(ref: ImageReference | str, *, registry_options: RegistryOptions | None = None) -> ImageSource:
    """The ImageSource for `ref` (a context manager; the caller closes it). Raises ImageError (or
    its subclass ImageReferenceError) when the reference is malformed or its image cannot be
    opened."""
    ref = _as_reference(ref)
    if ref.transport == "oci":
        from socikit.content.layout import LayoutSource

        return LayoutSource(ref.path, tag=ref.tag, digest=ref.digest)
    if ref.transport == "oci-archive":
        from socikit.content.archive import OciArchiveSource

        return OciArchiveSource(ref.path, tag=ref.tag, digest=ref.digest)
    if ref.transport == "docker-archive":
        from socikit.content.archive import DockerArchiveSource

        return DockerArchiveSource(ref.path, ref=ref.docker_reference if ref.repository else "")
    if ref.transport == "docker-daemon":
        from socikit.content.docker_daemon import DockerDaemonSource

        return DockerDaemonSource(ref)
    if ref.transport == "docker":
        try:
            from socikit.registry.store import open_registry_source
        except ImportError as exc:
            raise ImageError(f"registry support is not available ({exc})") from None
        return open_registry_source(ref.host, ref.repository, ref.tag or None, ref.digest or None, registry_options)
    raise ImageReferenceError(f"unsupported transport {ref.transport!r}")


def open_sink(ref: ImageReference | str, *, registry_options: RegistryOptions | None = None) -> ImageSink:
    """The ImageSink for `ref` (tag "latest" when none is given; a context manager, the caller
    closes it). Destinations are OCI layouts, OCI archives and registries."""
    ref = _as_reference(ref)
    if ref.transport in SOURCE_ONLY_TRANSPORTS:
        raise ImageReferenceError(f"{ref.transport}: can only be a source; write to {SINK_TRANSPORTS}")
    if ref.digest:
        raise ImageReferenceError(f"a destination needs a tag, not a digest: {ref}")
    if ref.transport == "oci":
        from socikit.content.layout import LayoutSink

        return LayoutSink(ref.path, tag=ref.tag or "latest")
    if ref.transport == "oci-archive":
        from socikit.content.archive import OciArchiveSink

        return OciArchiveSink(ref.path, tag=ref.tag or "latest")
    if ref.transport == "docker":
        try:
            from socikit.registry.store import open_registry_sink
        except ImportError as exc:
            raise ImageError(f"registry support is not available ({exc})") from None
        return open_registry_sink(ref.host, ref.repository, ref.tag, None, registry_options)
    raise ImageReferenceError(f"unsupported transport {ref.transport!r}")


__all__ = ["SINK_TRANSPORTS", "open_sink", "open_source"]

"""Open the ImageSource / ImageSink an image reference names."""

from __future__ import annotations

from typing import TYPE_CHECKING

from socikit.content.base import ImageSink, ImageSource
from socikit.content.reference import ImageReference, parse_reference
from socikit.errors import ImageReferenceError

if TYPE_CHECKING:  # the registry stack (requests, oras) is imported only when a registry is used
    from socikit.registry.options import RegistryOptions


def open_source(ref: ImageReference | str, *, registry_options: RegistryOptions | None = None) -> ImageSource:
    ref = parse_reference(ref) if isinstance(ref, str) else ref
    if ref.transport == "oci":
        from socikit.content.layout import LayoutSource

        return LayoutSource(ref.path, tag=ref.tag, digest=ref.digest)
    if ref.transport == "docker":
        from socikit.registry.store import open_registry_source

        return open_registry_source(ref.host, ref.repository, ref.tag or None, ref.digest or None, registry_options)
    if ref.transport == "oci-archive":
        from socikit.content.archive import OciArchiveSource

        return OciArchiveSource(ref.path, tag=ref.tag)
    if ref.transport == "docker-archive":
        from socikit.content.archive import DockerArchiveSource

        return DockerArchiveSource(ref.path, ref=ref.tag)
    if ref.transport == "docker-daemon":
        from socikit.content.docker_daemon import DockerDaemonSource

        return DockerDaemonSource(f"{ref.name}:{ref.tag}" if ref.tag else ref.name)
    raise ImageReferenceError(f"unsupported transport {ref.transport!r}")


def open_sink(ref: ImageReference | str, *, registry_options: RegistryOptions | None = None) -> ImageSink:
    ref = parse_reference(ref) if isinstance(ref, str) else ref
    if ref.digest:
        raise ImageReferenceError(f"a destination needs a tag, not a digest: {ref}")
    if ref.transport == "oci":
        from socikit.content.layout import LayoutSink

        return LayoutSink(ref.path, tag=ref.tag or "latest")
    if ref.transport == "docker":
        from socikit.registry.store import open_registry_sink

        return open_registry_sink(ref.host, ref.repository, ref.tag, None, registry_options)
    if ref.transport == "oci-archive":
        from socikit.content.archive import OciArchiveSink

        return OciArchiveSink(ref.path, tag=ref.tag or "latest")
    raise ImageReferenceError(f"{ref.transport}: cannot be a destination; use oci:, oci-archive: or a registry")

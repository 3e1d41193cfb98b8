"""Writing manifests to a sink in as few sequential round trips as the order allows.

A registry checks that what a manifest or index lists exists; it does not check annotations or a
`subject`. So the manifests of one write that do not list each other (SOCI indexes, image
manifests, attestations) may go up together, and the index that lists them after; a sink that
can (`content.base.WritesManifestsAtOnce`) also stores and tags the index in one request.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor

from socikit.content.base import ImageSink, WritesManifestsAtOnce
from socikit.oci.descriptor import Descriptor


def write_manifests(sink: ImageSink, manifests: list[tuple[Descriptor, bytes]]) -> None:
    """Write manifests none of which lists another: at once where the sink allows it."""
    if not isinstance(sink, WritesManifestsAtOnce) or sink.manifest_writes_at_once < 2 or len(manifests) < 2:
        for desc, data in manifests:
            sink.write_manifest(desc, data)
        return
    with ThreadPoolExecutor(max_workers=sink.manifest_writes_at_once, thread_name_prefix="socikit-put") as pool:
        wait_in_order([pool.submit(sink.write_manifest, desc, data) for desc, data in manifests])


def wait_in_order(futures: list[Future[None]]) -> None:
    """Wait for writes running on a pool: the first failure in submission order is raised, and
    the writes not started by then are cancelled."""
    try:
        for future in futures:
            future.result()
    except BaseException:
        for future in futures:
            future.cancel()
        raise


def write_tagged(sink: ImageSink, desc: Descriptor, data: bytes) -> None:
    """Write the root manifest or index and point the tag at it, in one request where possible."""
    if isinstance(sink, WritesManifestsAtOnce):
        sink.write_tagged_manifest(desc, data)
    else:
        sink.write_manifest(desc, data)
        sink.tag(desc)


__all__ = ["wait_in_order", "write_manifests", "write_tagged"]

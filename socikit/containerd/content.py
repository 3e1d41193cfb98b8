"""containerd's content store over gRPC: look blobs up, label them, read them, and stream them in.

Writes go through the Content service's bidirectional Write stream: data at increasing offsets,
then a commit carrying the expected size and digest (containerd checks both before the blob
becomes visible) and the blob's labels. A blob that is already stored is reported, not rewritten.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import grpc
from google.protobuf import field_mask_pb2

from socikit.containerd._proto import content_pb2, content_pb2_grpc
from socikit.containerd.client import Containerd, error_from_rpc
from socikit.errors import ContainerdError
from socikit.oci.descriptor import Descriptor
from socikit.oci.digest import verify_blob

WRITE_CHUNK = 1 << 20
# Manifests, indexes and configs are read whole; nothing bigger is held in memory.
MAX_READ_BLOB = 64 << 20


@dataclass(frozen=True, slots=True)
class ContentInfo:
    digest: str
    size: int
    labels: dict[str, str] = field(default_factory=dict)


def ref_key(desc: Descriptor) -> str:
    """The ingest reference containerd's own fetcher uses for a blob (`<kind>-<digest>`), so a
    pull by either tool resumes or replaces the other's unfinished write of the same blob."""
    from socikit.containerd.labels import is_known_config, is_layer_type
    from socikit.oci.manifest import is_index_type, is_manifest_type

    if is_manifest_type(desc.media_type):
        kind = "manifest"
    elif is_index_type(desc.media_type):
        kind = "index"
    elif is_layer_type(desc.media_type):
        kind = "layer"
    elif is_known_config(desc.media_type):
        kind = "config"
    else:
        kind = "unknown"
    return f"{kind}-{desc.digest}"


def chunked(data: bytes, size: int = WRITE_CHUNK) -> Iterator[bytes]:
    view = memoryview(data)
    for start in range(0, len(data), size):
        yield bytes(view[start:start + size])


def stream_chunks(stream: BinaryIO, counter: list[int] | None = None, size: int = WRITE_CHUNK) -> Iterator[bytes]:
    """Chunks of `stream` until EOF; `counter[0]` grows by the bytes read."""
    while True:
        chunk = stream.read(size)
        if not chunk:
            return
        if counter is not None:
            counter[0] += len(chunk)
        yield chunk


class _Requests:
    """The request side of a Write stream. An exception raised while producing data (a registry
    read failing, a digest mismatch) ends the stream without a commit and is kept here, so the
    caller reports it rather than grpc's generic cancellation."""

    def __init__(self, messages: Iterator[content_pb2.WriteContentRequest]) -> None:
        self._messages = messages
        self.error: BaseException | None = None

    def __iter__(self) -> _Requests:
        return self

    def __next__(self) -> content_pb2.WriteContentRequest:
        try:
            return next(self._messages)
        except StopIteration:
            raise
        except BaseException as exc:  # noqa: BLE001 - handed back to the caller's thread
            self.error = exc
            raise StopIteration from None


def _write_messages(ref: str, desc: Descriptor, chunks: Iterable[bytes],
                    labels: Mapping[str, str]) -> Iterator[content_pb2.WriteContentRequest]:
    offset = 0
    first = True
    for chunk in chunks:
        if not chunk:
            continue
        # The expected digest travels on the first message (containerd refuses at once when the
        # blob exists) and on the commit; every message carries its offset, because offset 0 on a
        # later message would tell containerd to start over.
        yield content_pb2.WriteContentRequest(
            action=content_pb2.WRITE, ref=ref, total=desc.size, expected=desc.digest if first else "",
            offset=offset, data=chunk)
        first = False
        offset += len(chunk)
    yield content_pb2.WriteContentRequest(action=content_pb2.COMMIT, ref=ref, total=desc.size,
                                          expected=desc.digest, offset=offset, labels=dict(labels))


class ContentStore:
    """The content store of `client`'s namespace."""

    def __init__(self, client: Containerd) -> None:
        self.client = client
        self._stub: Any = client.stub(content_pb2_grpc.ContentStub)

    def info(self, digest: str) -> ContentInfo | None:
        """The stored blob's size and labels, or None when the namespace does not have it."""
        try:
            response = self.client.call(f"content info {digest}", self._stub.Info,
                                        content_pb2.InfoRequest(digest=digest))
        except ContainerdError as exc:
            if exc.code == "NOT_FOUND":
                return None
            raise
        info = response.info
        return ContentInfo(digest=info.digest, size=int(info.size), labels=dict(info.labels))

    def update_labels(self, digest: str, labels: Mapping[str, str]) -> ContentInfo:
        """Set (or, with an empty value, remove) exactly these labels; others stay as they are."""
        request = content_pb2.UpdateRequest(
            info=content_pb2.Info(digest=digest, labels=dict(labels)),
            update_mask=field_mask_pb2.FieldMask(paths=[f"labels.{key}" for key in sorted(labels)]),
        )
        info = self.client.call(f"label content {digest}", self._stub.Update, request).info
        return ContentInfo(digest=info.digest, size=int(info.size), labels=dict(info.labels))

    def read(self, digest: str, *, offset: int = 0, size: int = 0) -> Iterator[bytes]:
        """The blob's bytes from `offset` (`size` 0: to the end), in the chunks containerd sends."""
        request = content_pb2.ReadContentRequest(digest=digest, offset=offset, size=size)
        for response in self.client.stream(f"read content {digest}", self._stub.Read, request):
            yield bytes(response.data)

    def read_blob(self, desc: Descriptor) -> bytes:
        """A whole (small) blob, checked against its descriptor's size and digest."""
        if desc.size > MAX_READ_BLOB:
            raise ContainerdError(f"content {desc.digest} is {desc.size} bytes; stream it with read()")
        data = b"".join(self.read(desc.digest))
        verify_blob(data, digest=desc.digest, size=desc.size, where=f"content {desc.digest} in {self.client.peer}")
        return data

    def write(self, desc: Descriptor, chunks: Iterable[bytes], *, labels: Mapping[str, str] | None = None,
              ref: str | None = None) -> bool:
        """Stream a blob in and commit it with `labels`. Returns False (nothing written, labels
        not applied) when the store already has the blob. containerd verifies size and digest at
        commit; an exception from `chunks` aborts the write and is re-raised."""
        ref = ref or ref_key(desc)
        what = f"write content {desc.digest}"
        requests = _Requests(_write_messages(ref, desc, chunks, labels or {}))
        last: content_pb2.WriteContentResponse | None = None
        try:
            for response in self._stub.Write(requests, metadata=self.client.metadata()):
                last = response
        except grpc.RpcError as exc:
            error = error_from_rpc(exc, what, self.client.peer)
            if error.code == "ALREADY_EXISTS":
                return False
            if requests.error is None:
                self._abort(ref)
                raise error from None
        if requests.error is not None:
            self._abort(ref)
            raise requests.error
        if last is None or last.action != content_pb2.COMMIT:
            self._abort(ref)
            raise ContainerdError(f"{what} on {self.client.peer}: the stream ended before the commit")
        if last.digest and last.digest != desc.digest:
            raise ContainerdError(f"{what} on {self.client.peer}: committed as {last.digest}")
        return True

    def write_blob(self, desc: Descriptor, data: bytes, *, labels: Mapping[str, str] | None = None) -> bool:
        """`write` for bytes in memory (checked against `desc` before anything is sent)."""
        verify_blob(data, digest=desc.digest, size=desc.size, where=f"blob {desc.digest}")
        return self.write(desc, chunked(data), labels=labels)

    def put(self, desc: Descriptor, data: bytes, *, labels: Mapping[str, str]) -> bool:
        """Store a small blob with `labels` whether or not it was there before (a stored blob
        gets the labels added). Returns True when the blob was written."""
        written = self.write_blob(desc, data, labels=labels)
        if not written and labels:
            self.update_labels(desc.digest, labels)
        return written

    def _abort(self, ref: str) -> None:
        try:
            self.client.call(f"abort write {ref}", self._stub.Abort, content_pb2.AbortRequest(ref=ref))
        except ContainerdError:
            pass  # nothing to clean up, or containerd is gone: the ingest expires on its own


__all__ = ["MAX_READ_BLOB", "WRITE_CHUNK", "ContentInfo", "ContentStore", "chunked", "ref_key", "stream_chunks"]

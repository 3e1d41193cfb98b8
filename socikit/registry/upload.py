"""Uploading a blob from bytes read for something else: the layer stream the ztoc builder indexes
is also what goes up to the destination registry, so a registry-to-registry conversion pulls each
layer once.

`StreamedUpload` takes the bytes in order through `write` (from the thread reading the layer) and
sends them on a thread of its own in one streamed PATCH; a bounded buffer between the two keeps
memory flat, and when the upload falls behind the reader waits for it. The upload never fails the
indexing: a refused or dropped upload is abandoned, `finish()` says so, and the caller sends the
blob the ordinary way later.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Iterator

from socikit.oci.descriptor import Descriptor
from socikit.registry.client import RegistryClient

logger = logging.getLogger(__name__)

BUFFER_BYTES = 16 << 20


class StreamedUpload:
    """One blob's upload to `repo` into the session at `location`, fed with `write`, ended with
    `finish` (True: the registry has the blob) or `abort`."""

    def __init__(self, client: RegistryClient, repo: str, desc: Descriptor, location: str, *,
                 owns_client: bool = False, buffer_bytes: int = BUFFER_BYTES) -> None:
        self._client = client
        self._owns_client = owns_client
        self._repo = repo
        self._desc = desc
        self._location = location
        self._limit = buffer_bytes
        self._chunks: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._closed = False  # no more writes
        self._aborted = False
        self._done = False
        self.error: BaseException | None = None
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="socikit-upload", daemon=True)
        self._thread.start()

    def write(self, chunk: bytes) -> None:
        """Hand over the next bytes of the blob; waits while the buffer is full. Ignored once the
        upload has failed."""
        with self._cond:
            while self._buffered >= self._limit and not self._done:
                self._cond.wait()
            if self._done:
                return
            self._chunks.append(chunk)
            self._buffered += len(chunk)
            self._cond.notify_all()

    def finish(self) -> bool:
        """All bytes were written: wait for the registry; True when it has the blob."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join()
        self._close_client()
        return self.error is None and not self._aborted

    def abort(self) -> None:
        """Give up (the layer could not be read or indexed): the session is cancelled."""
        with self._cond:
            self._aborted = True
            self._closed = True
            self._cond.notify_all()
        self._thread.join()
        self._close_client()

    def _close_client(self) -> None:
        if self._owns_client:
            self._client.close()

    def _chunks_in_order(self) -> Iterator[bytes]:
        while True:
            with self._cond:
                while not self._chunks and not self._closed:
                    self._cond.wait()
                if self._aborted:
                    raise _Aborted()
                if not self._chunks:
                    return
                chunk = self._chunks.popleft()
                self._buffered -= len(chunk)
                self._cond.notify_all()
            yield chunk

    def _run(self) -> None:
        try:
            self._client.upload_blob_stream(self._repo, self._desc, self._chunks_in_order(), location=self._location)
        except BaseException as exc:  # handed to `finish`; the blob is then sent another way
            self.error = exc
            if not self._aborted:
                logger.debug("streamed upload of %s failed: %s", self._desc.digest, exc)
        finally:
            with self._cond:
                self._done = True
                self._chunks.clear()
                self._buffered = 0
                self._cond.notify_all()


class _Aborted(Exception):
    """Raised inside the request body to stop a streamed upload that was given up."""


def open_streamed_upload(client: RegistryClient, repo: str, desc: Descriptor, *, mount_from: str | None = None,
                         owns_client: bool = False) -> StreamedUpload | None:
    """A `StreamedUpload` of `desc` to `repo`, or None when there is nothing to send (the
    repository has the blob, or the registry mounted it from `mount_from`)."""
    location = client.open_blob_upload(repo, desc, mount_from=mount_from)
    if location is None:
        if owns_client:
            client.close()
        return None
    return StreamedUpload(client, repo, desc, location, owns_client=owns_client)


__all__ = ["BUFFER_BYTES", "StreamedUpload", "open_streamed_upload"]

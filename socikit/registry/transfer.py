"""Recovery of interrupted blob transfers, under one `RetryPolicy`: the failure budget, a
reader that resumes a download with `Range` requests where its body ended, the verifying blob
stream over it, and upload content that can be read again from its first byte.

Nothing here sends a request itself: the client hands in a `RangeGet` that sends one GET with
the given headers under its request policy (auth, retries of the request itself, error mapping).
"""

from __future__ import annotations

import hashlib
import http.client
import io
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import IO, Any

import requests
import urllib3.exceptions

from socikit.errors import DigestMismatchError, RegistryError
from socikit.oci.descriptor import Descriptor
from socikit.oci.digest import verify_blob

logger = logging.getLogger(__name__)

STREAM_READ = 1 << 20
# What a body read raises when the connection breaks under it.
BODY_ERRORS = (urllib3.exceptions.HTTPError, http.client.HTTPException, requests.RequestException, OSError)

# Sends one GET of the blob with these headers (`Range`, `Accept-Encoding`); answers 200 or 206.
RangeGet = Callable[[Mapping[str, str]], requests.Response]
# What an upload takes: bytes, a stream, or a callable that opens the stream (and can open it
# again should the registry lose the upload session).
UploadData = bytes | IO[bytes] | Callable[[], IO[bytes]]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how long to retry. Delays are in seconds: attempt n (from 0) waits
    `min(initial_delay * 2**n, max_delay)`, a 429's `Retry-After` (capped by max_delay) wins, and
    no retry starts once `deadline` seconds have passed since the first attempt.

    The same policy bounds the recovery of a blob transfer: a download resumed after its body
    ended early, or an upload chunk re-sent after a dropped connection, may fail `attempts`
    times in a row (counted afresh after every stretch of progress) within `deadline` seconds."""

    attempts: int = 5
    initial_delay: float = 0.5
    max_delay: float = 8.0
    deadline: float = 60.0
    connect_timeout: float = 10.0
    read_timeout: float = 120.0

    def delay(self, attempt: int, retry_after: str | None = None) -> float:
        if retry_after:
            try:
                return max(0.0, min(float(retry_after), self.max_delay))
            except ValueError:
                pass
        return float(min(self.initial_delay * (2 ** attempt), self.max_delay))


class FailureBudget:
    """Failures in a row that one blob transfer may recover from, under a RetryPolicy: each
    `fail` sleeps the policy's delay, or raises one RegistryError once the policy is spent;
    `progress` starts the count afresh."""

    def __init__(self, policy: RetryPolicy, what: str) -> None:
        self._policy = policy
        self._what = what
        self._failures = 0
        self._since = 0.0

    def progress(self) -> None:
        self._failures = 0

    def fail(self, reason: str) -> None:
        now = time.monotonic()
        if not self._failures:
            self._since = now
        self._failures += 1
        delay = self._policy.delay(self._failures - 1)
        if self._failures >= self._policy.attempts or now - self._since + delay > self._policy.deadline:
            raise RegistryError(f"{self._what}: {reason}, gave up after {self._failures} attempt(s)")
        logger.debug("%s: %s, trying again", self._what, reason)
        time.sleep(delay)


class RangeCursor:
    """Reads the body of one blob from byte `start` (up to `stop`, exclusive, when given)
    across as many GETs as it takes: after a body that ends early or a connection that drops,
    the next read asks again with `Range: bytes=<pos>-`, under the client's RetryPolicy.

    `total`, when known, is the blob's size: an answer that says otherwise is a
    DigestMismatchError at once. With `exact`, reaching `stop` is required (an answer of unknown
    length that ends before it is resumed too); otherwise an early end that the headers
    announced (a blob shorter than `stop`) is the end."""

    def __init__(self, send: RangeGet, policy: RetryPolicy, *, start: int, stop: int | None, what: str,
                 where: str, ranged: bool, total: int | None = None, exact: bool = False) -> None:
        self.pos = start
        self._send = send
        self._stop = stop
        self._what = what
        self._where = where
        self._ranged = ranged
        self._total = total
        self._exact = exact
        self._resp: requests.Response | None = None
        self._skip = 0  # bytes of a whole-body (200) answer before `pos`
        self._left: int | None = None  # body bytes the current answer still owes, when it said
        self._ended = False
        self._budget = FailureBudget(policy, what)

    def open(self) -> requests.Response:
        """Send the GET for the bytes from `pos` (done by the first `read` if not called)."""
        headers = {"Accept-Encoding": "identity"}
        if self._ranged or self.pos > 0:
            last = "" if self._stop is None else str(self._stop - 1)
            headers["Range"] = f"bytes={self.pos}-{last}"
        resp = self._send(headers)
        try:
            length = resp.headers.get("Content-Length", "")
            self._left = int(length) if length.isdigit() else None
            if resp.status_code == 206:
                first, total = content_range(resp.headers.get("Content-Range", ""))
                if first != self.pos:
                    raise RegistryError(f"{self._where}: server answered range starting at {first}")
                if resp.headers.get("Content-Type", "").strip().lower().startswith("multipart/"):
                    raise RegistryError(f"{self._where}: multipart range answers are not supported")
                self._skip = 0
            else:
                total = self._left
                self._skip = self.pos
            if self._total is not None and total is not None and total != self._total:
                raise DigestMismatchError(f"{self._where}: {total} bytes, expected {self._total}")
        except BaseException:
            resp.close()
            raise
        self._resp = resp
        return resp

    def _read_body(self, resp: requests.Response, size: int) -> bytes:
        raw = resp.raw
        while self._skip:
            skipped = raw.read(min(STREAM_READ, self._skip), decode_content=False)
            if not skipped:
                return b""
            self._skip -= len(skipped)
            if self._left is not None:
                self._left -= len(skipped)
        want = size if self._stop is None else min(size, self._stop - self.pos)
        data: bytes = raw.read(want, decode_content=False)
        if self._left is not None:
            self._left -= len(data)
        return data

    def read(self, size: int) -> bytes:
        """Up to `size` bytes at `pos` (fewer only at the end); b"" at the end."""
        while not self._ended and (self._stop is None or self.pos < self._stop):
            resp = self._resp if self._resp is not None else self.open()
            try:
                data = self._read_body(resp, size)
            except BODY_ERRORS as exc:
                self._failed(f"connection dropped ({exc.__class__.__name__}) at byte {self.pos}")
                continue
            if data:
                self.pos += len(data)
                self._budget.progress()
                return data
            if self._left or (self._left is None and self._exact and self._stop is not None):
                self._failed(f"body ended early at byte {self.pos}")
                continue
            self._ended = True
        self.close()
        return b""

    def _failed(self, reason: str) -> None:
        self.close()
        self._budget.fail(reason)

    def close(self) -> None:
        if self._resp is not None:
            self._resp.close()
            self._resp = None


class BlobReader(io.RawIOBase):
    """A read-only stream over a blob that resumes after a dropped connection and checks size
    and (optionally) digest at EOF."""

    def __init__(self, cursor: RangeCursor, desc: Descriptor, where: str, verify: bool) -> None:
        super().__init__()
        self._cursor = cursor
        self._desc = desc
        self._where = where
        self._hash = hashlib.sha256() if verify else None
        self._count = 0
        self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._done:
            return 0
        view = memoryview(buffer).cast("B")
        try:
            data = self._cursor.read(len(view))
        except BaseException:
            self.close()
            raise
        n = len(data)
        if n == 0:
            self._finish()
            return 0
        view[:n] = data
        self._count += n
        if self._hash is not None:
            self._hash.update(data)
        return n

    def _finish(self) -> None:
        self._done = True
        got = "sha256:" + self._hash.hexdigest() if self._hash is not None else None
        self._cursor.close()
        verify_streamed(self._count, got, digest=self._desc.digest, size=self._desc.size,
                         where=self._where)

    def close(self) -> None:
        if not self.closed:
            self._cursor.close()
        super().close()


class UploadContent:
    """The bytes of one upload, readable from the start again when the registry loses the session:
    bytes always, a callable by opening it again, a stream when it can seek back."""

    def __init__(self, data: UploadData, desc: Descriptor, what: str) -> None:
        self.data: bytes | None = None
        self._opener: Callable[[], IO[bytes]] | None = None
        self._stream: IO[bytes] | None = None
        self._opened: IO[bytes] | None = None
        self._start = -1
        self._uses = 0
        if isinstance(data, (bytes, bytearray, memoryview)):
            self.data = bytes(data)
            verify_blob(self.data, digest=desc.digest, size=desc.size, where=what)
        elif callable(data):
            self._opener = data
        else:
            self._stream = data
            try:
                self._start = data.tell() if data.seekable() else -1
            except (OSError, ValueError):
                self._start = -1

    def can_reopen(self) -> bool:
        return self.data is not None or self._opener is not None or self._start >= 0

    def open(self) -> IO[bytes]:
        """A stream at the first byte of the content (the caller checks `can_reopen` before
        asking a second time)."""
        self._uses += 1
        if self.data is not None:
            return io.BytesIO(self.data)
        if self._opener is not None:
            self.close()
            self._opened = self._opener()
            return self._opened
        assert self._stream is not None
        if self._uses > 1:
            self._stream.seek(self._start)
        return self._stream

    def close(self) -> None:
        if self._opened is not None:
            self._opened.close()
            self._opened = None


def verify_streamed(count: int, got: str | None, *, digest: str, size: int, where: str) -> None:
    """`verify_blob`'s check and messages for content hashed as it streamed by (`got` is None
    when the digest was not computed)."""
    if count != size:
        raise DigestMismatchError(f"{where}: {count} bytes, expected {size}")
    if got is not None and got != digest:
        raise DigestMismatchError(f"{where}: content has digest {got}, expected {digest}")


def content_range(value: str) -> tuple[int, int | None]:
    """(first byte, complete length or None) of `bytes 10-19/100`; first is -1 when unparsable."""
    match = re.fullmatch(r"bytes (\d+)-\d+/(\d+|\*)", value.strip())
    if match is None:
        return -1, None
    total = match.group(2)
    return int(match.group(1)), (int(total) if total.isdigit() else None)


def read_full(stream: IO[bytes], size: int) -> bytes:
    parts: list[bytes] = []
    want = size
    while want > 0:
        chunk = stream.read(want)
        if not chunk:
            break
        parts.append(chunk)
        want -= len(chunk)
    return b"".join(parts)


__all__ = [
    "BODY_ERRORS",
    "BlobReader",
    "FailureBudget",
    "RangeCursor",
    "RangeGet",
    "RetryPolicy",
    "UploadContent",
    "UploadData",
    "content_range",
    "read_full",
    "verify_streamed",
]

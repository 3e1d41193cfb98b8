"""`RegistryClient`: the one client socikit uses for OCI distribution-spec v1.1 registries
(convert, push and the snapshotter's span fetches).

Built on oras-py's `Registry`: its `requests.Session` (cookies ignored), its auth-backend slot
(filled by `RegistryAuth`) and its `Link`-header pagination. oras's `do_request` is replaced
with socikit's request policy: bounded retries with exponential backoff on 5xx/429/dropped
connections, one re-authentication per request, and every failure mapped to `RegistryError`
(`AuthError` for refused credentials). Manifests and indexes are sent and received as exact bytes.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import ssl
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO
from urllib.parse import urlencode, urljoin, urlsplit

import oras.provider  # type: ignore[import-untyped]
import requests
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict

from socikit.errors import AuthError, DigestMismatchError, RegistryError
from socikit.oci import mediatypes as mt
from socikit.oci.descriptor import Descriptor
from socikit.oci.digest import is_digest, sha256_digest
from socikit.registry.auth import Credentials, RegistryAuth

logger = logging.getLogger(__name__)

MANIFEST_ACCEPT = ", ".join([
    mt.MEDIA_TYPE_OCI_MANIFEST,
    mt.MEDIA_TYPE_OCI_INDEX,
    mt.MEDIA_TYPE_DOCKER_MANIFEST,
    mt.MEDIA_TYPE_DOCKER_MANIFEST_LIST,
])
# Manifests larger than this are refused (the OCI spec lets registries cap them at 4 MiB).
MAX_MANIFEST_SIZE = 4 << 20
DEFAULT_CHUNK_SIZE = 8 << 20
# Blobs up to this size held in memory go up in one POST+PUT; larger ones are PATCHed in chunks.
DEFAULT_MONOLITHIC_LIMIT = 16 << 20
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_STREAM_READ = 1 << 20


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how long to retry. Delays are in seconds: attempt n (from 0) waits
    `min(initial_delay * 2**n, max_delay)`, a 429's `Retry-After` (capped by max_delay) wins, and
    no retry starts once `deadline` seconds have passed since the first attempt."""

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


class RegistryStatusError(RegistryError):
    """A registry answered with an unexpected HTTP status (`status`), e.g. 404 or 405."""

    def __init__(self, message: str, status: int, code: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def _media_type(value: str | None) -> str:
    return (value or "").split(";", 1)[0].strip()


def _error_detail(resp: requests.Response) -> tuple[str, str]:
    """(code, message) of an OCI error body, or ("", "") when there is none."""
    try:
        if int(resp.headers.get("Content-Length", "0") or 0) > 65536:
            return "", ""
        body = resp.json()
        err = body["errors"][0]
        code = str(err.get("code", ""))
        message = " ".join(str(err.get("message", "")).split())[:200]
        return code, message
    except Exception:  # noqa: BLE001 - any non-OCI body just has no detail
        return "", ""


def _build_ssl_context(cert_dir: Path, verify: bool) -> ssl.SSLContext:
    """A client TLS context from a containerd/docker `certs.d`-style directory: every `*.crt`
    is a trusted CA; `client.cert`+`client.key` (or any `<name>.cert`+`<name>.key`) is a client
    certificate."""
    ctx = ssl.create_default_context()
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    try:
        for ca in sorted(cert_dir.glob("*.crt")):
            ctx.load_verify_locations(cafile=str(ca))
        for cert in sorted(cert_dir.glob("*.cert")):
            key = cert.with_suffix(".key")
            if key.exists():
                ctx.load_cert_chain(certfile=str(cert), keyfile=str(key))
    except (OSError, ssl.SSLError) as exc:
        raise RegistryError(f"cannot load certificates from {cert_dir}: {exc.__class__.__name__}") from None
    return ctx


class _ContextAdapter(HTTPAdapter):
    """An HTTPAdapter whose pools use our SSLContext (extra CAs, client certificate)."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self._context = context
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["ssl_context"] = self._context
        super().init_poolmanager(*args, **kwargs)


class _Transport(oras.provider.Registry):  # type: ignore[misc]
    """oras-py's Registry with socikit's request policy in place of its `do_request`.

    oras's own `do_request` retries every exception with sleeps of 2+3**n seconds, never
    retries 503/429, raises ValueError for auth failures and keeps one token per registry."""

    def __init__(self, client: RegistryClient, verify: bool | str) -> None:
        super().__init__(hostname=client.host, insecure=client.plain_http, tls_verify=verify,
                         auth_backend="token")
        self._client = client

    def do_request(self, url: str, method: str = "GET", data: bytes | None = None,
                   headers: dict[str, str] | None = None, json: Any = None,
                   stream: bool = False) -> requests.Response:
        if json is not None:
            raise TypeError("socikit sends exact bytes; pass data=")
        return self._client._request(method, url, what=f"{method} {urlsplit(url).path}",
                                     headers=headers, data=data, stream=stream, ok=None)

    def _check_200_response(self, response: requests.Response) -> None:
        if response.status_code not in (200, 201, 202):
            self._client._raise_status(response, f"GET {urlsplit(response.url).path}")


class _BlobReader(io.RawIOBase):
    """A read-only stream over a blob GET that checks size and (optionally) digest at EOF."""

    def __init__(self, resp: requests.Response, desc: Descriptor, where: str, verify: bool) -> None:
        super().__init__()
        self._resp = resp
        self._raw = resp.raw
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
            data = self._raw.read(len(view), decode_content=False)
        except Exception as exc:  # urllib3 protocol/timeout errors
            self.close()
            raise RegistryError(f"reading {self._where} failed: {exc.__class__.__name__}") from None
        n = len(data)
        if n == 0:
            self._finish()
            return 0
        view[:n] = data
        self._count += n
        if self._hash is not None:
            self._hash.update(data)
        if self._count > self._desc.size:
            self.close()
            raise DigestMismatchError(f"{self._where}: more than the expected {self._desc.size} bytes")
        return n

    def _finish(self) -> None:
        self._done = True
        if self._count != self._desc.size:
            self.close()
            raise RegistryError(
                f"{self._where}: got {self._count} of {self._desc.size} bytes")
        if self._hash is not None and "sha256:" + self._hash.hexdigest() != self._desc.digest:
            self.close()
            raise DigestMismatchError(f"{self._where}: content does not match {self._desc.digest}")

    def close(self) -> None:
        if not self.closed:
            self._resp.close()
        super().close()


class RegistryClient:
    """A client for one registry host (`name[:port]`).

    Every method raises RegistryError (RegistryStatusError for an unexpected status, AuthError
    when credentials are refused) with a one-line message naming host, repository and status."""

    def __init__(self, host: str, *, plain_http: bool = False, tls_verify: bool = True,
                 cert_dir: str | Path | None = None, credentials: Credentials | None = None,
                 retry: RetryPolicy | None = None) -> None:
        self.host = host
        self.plain_http = plain_http
        self.tls_verify = tls_verify
        self.retry = retry or RetryPolicy()
        self.base_url = f"{'http' if plain_http else 'https'}://{host}"
        verify: bool | str = tls_verify
        self._transport = _Transport(self, verify)
        self.session: requests.Session = self._transport.session
        self.session.headers["User-Agent"] = "socikit"
        if cert_dir is not None and not plain_http:
            context = _build_ssl_context(Path(cert_dir), tls_verify)
            self.session.mount(f"https://{host}/", _ContextAdapter(context))
        self._verify = verify
        self.auth = RegistryAuth(host, credentials, self.session, verify=verify)
        self._transport.auth = self.auth

    def __repr__(self) -> str:
        return f"RegistryClient(host={self.host!r}, plain_http={self.plain_http})"

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------------------
    # request machinery

    def url(self, repo: str, endpoint: str) -> str:
        """`<base>/v2/<repo>/<endpoint>`."""
        return f"{self.base_url}/v2/{repo}/{endpoint}"

    def _send_once(self, method: str, url: str, headers: dict[str, str], data: bytes | None,
                   stream: bool) -> requests.Response:
        """One request with authentication: pre-emptive header if known, then at most one
        re-authentication after a 401 (two when a cached token went stale)."""
        timeout = (self.retry.connect_timeout, self.retry.read_timeout)
        hdrs = dict(headers)
        preset = self.auth.authorization(method, url)
        if preset:
            hdrs["Authorization"] = preset
        resp = self.session.request(method, url, data=data, headers=hdrs, stream=stream,
                                    verify=self._verify, timeout=timeout, allow_redirects=True)
        for _ in range(2):
            if resp.status_code != 401:
                return resp
            resp.close()
            hdrs, changed = self.auth.authenticate_request(resp, hdrs)
            if not changed:
                break
            resp = self.session.request(method, url, data=data, headers=hdrs, stream=stream,
                                        verify=self._verify, timeout=timeout)
        if resp.status_code == 401:
            resp.close()
            raise AuthError(f"authentication failed for {self.host}")
        return resp

    def _request(self, method: str, url: str, *, what: str, headers: Mapping[str, str] | None = None,
                 data: bytes | None = None, stream: bool = False, ok: Iterable[int] | None = (200,),
                 retry_dropped: bool = True) -> requests.Response:
        """Send with the retry policy. With `ok`, any other status raises RegistryStatusError;
        with `ok=None` every non-retried response is returned to the caller."""
        policy = self.retry
        start = time.monotonic()
        last = ""
        for attempt in range(max(1, policy.attempts)):
            if attempt:
                logger.debug("retrying %s on %s (%s)", what, self.host, last)
            try:
                resp = self._send_once(method, url, dict(headers or {}), data, stream)
            except requests.exceptions.SSLError as exc:
                raise RegistryError(f"{what} on {self.host}: TLS error ({_ssl_reason(exc)})") from None
            except (requests.ConnectionError, requests.Timeout,
                    requests.exceptions.ChunkedEncodingError) as exc:
                last = f"connection failed ({exc.__class__.__name__})"
                if not retry_dropped:
                    break
                delay = policy.delay(attempt)
            else:
                if resp.status_code not in _RETRY_STATUSES:
                    if ok is not None and resp.status_code not in set(ok):
                        self._raise_status(resp, what)
                    return resp
                last = f"HTTP {resp.status_code}"
                delay = policy.delay(attempt, resp.headers.get("Retry-After"))
                resp.close()
            if attempt + 1 >= policy.attempts or time.monotonic() - start + delay > policy.deadline:
                break
            time.sleep(delay)
        raise RegistryError(f"{what} on {self.host}: {last}, gave up after {attempt + 1} attempt(s)")

    def _raise_status(self, resp: requests.Response, what: str) -> None:
        status = resp.status_code
        code, message = _error_detail(resp)
        resp.close()
        if status == 403:
            raise AuthError(f"authentication failed for {self.host}")
        detail = f" {code}" if code else ""
        if message:
            detail += f": {message}"
        raise RegistryStatusError(f"{what} on {self.host}: HTTP {status}{detail}", status, code)

    def request(self, method: str, repo: str, endpoint: str, *, params: Mapping[str, str] | None = None,
                headers: Mapping[str, str] | None = None, data: bytes | None = None,
                stream: bool = False, ok: Iterable[int] | None = (200,)) -> requests.Response:
        """Low-level request on `/v2/<repo>/<endpoint>` with auth, retries and error mapping
        (used by the referrers module; prefer the typed methods)."""
        url = self.url(repo, endpoint)
        if params:
            url += "?" + urlencode(params)
        return self._request(method, url, what=f"{method} {repo}/{endpoint.split('?')[0]}",
                             headers=headers, data=data, stream=stream, ok=ok)

    # ------------------------------------------------------------------------------------------
    # manifests

    def resolve(self, repo: str, ref: str) -> Descriptor:
        """The descriptor (exact media type, digest, size) of the manifest or index `ref` (a tag
        or a digest) names. Uses HEAD, and GET when the registry omits the digest header."""
        what = f"resolve {self.host}/{repo}:{ref}"
        resp = self._request("HEAD", self.url(repo, f"manifests/{ref}"), what=what,
                             headers={"Accept": MANIFEST_ACCEPT}, ok=None)
        resp.close()
        if resp.status_code == 200:
            digest = resp.headers.get("Docker-Content-Digest", "")
            media_type = _media_type(resp.headers.get("Content-Type"))
            size = resp.headers.get("Content-Length")
            if is_digest(ref) and digest and digest != ref:
                raise RegistryError(f"{what}: registry reports digest {digest}")
            if is_digest(digest) and media_type and size and size.isdigit():
                return Descriptor(media_type=media_type, digest=digest, size=int(size))
        elif resp.status_code != 405:
            self._raise_status(resp, what)
        _, desc = self.get_manifest(repo, ref)
        return desc

    def get_manifest(self, repo: str, ref: str) -> tuple[bytes, Descriptor]:
        """The exact bytes of manifest/index `ref` and its descriptor; the digest is checked
        against `ref` (when a digest) and the registry's `Docker-Content-Digest`."""
        what = f"get manifest {self.host}/{repo}:{ref}"
        resp = self._request("GET", self.url(repo, f"manifests/{ref}"), what=what,
                             headers={"Accept": MANIFEST_ACCEPT}, stream=True)
        with resp:
            data = resp.raw.read(MAX_MANIFEST_SIZE + 1, decode_content=True)
            if len(data) > MAX_MANIFEST_SIZE:
                raise RegistryError(f"{what}: manifest larger than {MAX_MANIFEST_SIZE} bytes")
            media_type = _media_type(resp.headers.get("Content-Type"))
            header_digest = resp.headers.get("Docker-Content-Digest", "")
        digest = sha256_digest(data)
        if is_digest(ref) and digest != ref:
            raise DigestMismatchError(f"{what}: content has digest {digest}")
        if header_digest.startswith("sha256:") and header_digest != digest:
            raise DigestMismatchError(f"{what}: content has digest {digest}, registry says {header_digest}")
        if not media_type or media_type in ("application/json", "text/plain"):
            media_type = _sniff_media_type(data) or media_type
        return data, Descriptor(media_type=media_type, digest=digest, size=len(data))

    def put_manifest(self, repo: str, ref: str, data: bytes, media_type: str) -> CaseInsensitiveDict[str]:
        """PUT `data` byte for byte as manifest `ref` (tag or digest) with `Content-Type:
        media_type` (images and indexes alike). Returns the response headers (`OCI-Subject`,
        `Docker-Content-Digest`)."""
        what = f"put manifest {self.host}/{repo}:{ref}"
        digest = sha256_digest(data)
        if is_digest(ref) and ref != digest:
            raise DigestMismatchError(f"{what}: data has digest {digest}")
        resp = self._request("PUT", self.url(repo, f"manifests/{ref}"), what=what,
                             headers={"Content-Type": media_type}, data=bytes(data), ok=(200, 201))
        resp.close()
        stored = resp.headers.get("Docker-Content-Digest", "")
        if stored.startswith("sha256:") and stored != digest:
            raise RegistryError(f"{what}: registry stored digest {stored}, we sent {digest}")
        return resp.headers

    def delete_manifest(self, repo: str, digest: str) -> None:
        """DELETE manifest `digest`. Raises RegistryStatusError (405 when the registry does not
        allow deletes, 404 when it is gone)."""
        resp = self._request("DELETE", self.url(repo, f"manifests/{digest}"),
                             what=f"delete manifest {self.host}/{repo}@{digest}", ok=(200, 202, 204))
        resp.close()

    def list_tags(self, repo: str) -> list[str]:
        """Every tag of `repo`, following `Link: rel="next"` pages (oras-py's paginator)."""
        tags: list[str] = []

        def collect(resp: requests.Response) -> bool:
            page = resp.json().get("tags") or []
            tags.extend(str(t) for t in page)
            resp.close()
            return bool(page)

        self._transport._do_paginated_request(self.url(repo, "tags/list"), callable=collect)
        return tags

    # ------------------------------------------------------------------------------------------
    # blobs

    def has_blob(self, repo: str, desc: Descriptor | str) -> bool:
        """True when `repo` holds the blob (HEAD 200)."""
        digest = desc if isinstance(desc, str) else desc.digest
        resp = self._request("HEAD", self.url(repo, f"blobs/{digest}"),
                             what=f"head blob {self.host}/{repo}@{digest}", ok=(200, 404))
        resp.close()
        return resp.status_code == 200

    def get_blob_stream(self, repo: str, desc: Descriptor, *, verify: bool = True) -> BinaryIO:
        """A streaming reader of the blob; at EOF it raises if size or (with `verify`) digest
        differ. Close it (or use `with`) to release the connection."""
        where = f"blob {self.host}/{repo}@{desc.digest}"
        resp = self._request("GET", self.url(repo, f"blobs/{desc.digest}"), what=f"get {where}",
                             headers={"Accept-Encoding": "identity"}, stream=True)
        return io.BufferedReader(_BlobReader(resp, desc, where, verify), buffer_size=_STREAM_READ)

    def get_blob(self, repo: str, desc: Descriptor) -> bytes:
        """A whole blob in memory, digest verified."""
        with self.get_blob_stream(repo, desc) as stream:
            return stream.read()

    def get_blob_range(self, repo: str, digest: str, start: int, end: int) -> bytes:
        """Bytes `[start, end)` of a blob (end exclusive; sent as `Range: bytes=start-(end-1)`).

        Accepts 206 with a single part, or 200 with the whole body (sliced here). Returns fewer
        bytes only when the blob ends before `end`."""
        if start < 0 or end <= start:
            raise ValueError(f"bad range [{start}, {end})")
        where = f"blob {self.host}/{repo}@{digest} bytes {start}-{end - 1}"
        resp = self._request("GET", self.url(repo, f"blobs/{digest}"), what=f"get {where}",
                             headers={"Range": f"bytes={start}-{end - 1}", "Accept-Encoding": "identity"},
                             stream=True, ok=(200, 206))
        with resp:
            try:
                if resp.status_code == 206:
                    got = _content_range_start(resp.headers.get("Content-Range", ""))
                    if got != start:
                        raise RegistryError(f"{where}: server answered range starting at {got}")
                    if _media_type(resp.headers.get("Content-Type")).startswith("multipart/"):
                        raise RegistryError(f"{where}: multipart range answers are not supported")
                    return bytes(resp.raw.read(end - start, decode_content=False))
                skipped = 0
                while skipped < start:
                    chunk = resp.raw.read(min(_STREAM_READ, start - skipped), decode_content=False)
                    if not chunk:
                        return b""
                    skipped += len(chunk)
                return bytes(resp.raw.read(end - start, decode_content=False))
            except RegistryError:
                raise
            except Exception as exc:
                raise RegistryError(f"reading {where} failed: {exc.__class__.__name__}") from None

    def push_blob(self, repo: str, desc: Descriptor, data: bytes | IO[bytes], *,
                  chunked: bool | None = None, chunk_size: int = DEFAULT_CHUNK_SIZE) -> bool:
        """Upload a blob unless `repo` already has it (HEAD first). Returns True if uploaded.

        `bytes` up to DEFAULT_MONOLITHIC_LIMIT go up as one POST+PUT; streams (and `chunked=True`)
        as POST, PATCH per `chunk_size` bytes, PUT. The content is hashed on the way and the
        upload is abandoned (DigestMismatchError) if it does not match `desc`."""
        if self.has_blob(repo, desc):
            return False
        self._upload(repo, desc, data, chunked=chunked, chunk_size=chunk_size, location=None)
        return True

    def mount_blob(self, repo: str, desc: Descriptor, from_repo: str) -> bool:
        """Make blob `desc` of `from_repo` available in `repo` on this registry: a cross-repository
        mount, else (the registry opened an upload instead) a streamed copy from `from_repo`.
        Returns True when the registry mounted it (or `repo` already had it)."""
        if self.has_blob(repo, desc):
            return True
        what = f"mount blob {self.host}/{repo}@{desc.digest} from {from_repo}"
        query = urlencode({"mount": desc.digest, "from": from_repo})
        resp = self._request("POST", self.url(repo, f"blobs/uploads/?{query}"), what=what,
                             headers={"Content-Length": "0"}, ok=(201, 202))
        resp.close()
        if resp.status_code == 201:
            return True
        location = self._location(resp, what)
        try:
            with self.get_blob_stream(from_repo, desc, verify=False) as stream:
                self._upload(repo, desc, stream, chunked=True, chunk_size=DEFAULT_CHUNK_SIZE,
                             location=location)
        except RegistryError:
            self._abandon(location)
            raise
        return False

    def _location(self, resp: requests.Response, what: str) -> str:
        location = resp.headers.get("Location", "")
        if not location:
            raise RegistryError(f"{what}: registry sent no upload location")
        return urljoin(resp.url, location)

    def _upload(self, repo: str, desc: Descriptor, data: bytes | IO[bytes], *, chunked: bool | None,
                chunk_size: int, location: str | None) -> None:
        what = f"push blob {self.host}/{repo}@{desc.digest}"
        if isinstance(data, (bytes, bytearray, memoryview)):
            data = bytes(data)
            if len(data) != desc.size or sha256_digest(data) != desc.digest:
                raise DigestMismatchError(f"{what}: data does not match the descriptor")
            if chunked is None:
                chunked = len(data) > DEFAULT_MONOLITHIC_LIMIT
            stream: IO[bytes] = io.BytesIO(data)
        else:
            chunked = True
            stream = data
        if location is None:
            resp = self._request("POST", self.url(repo, "blobs/uploads/"), what=what,
                                 headers={"Content-Length": "0"}, ok=(202,))
            resp.close()
            location = self._location(resp, what)
        if not chunked:
            assert isinstance(data, bytes)
            self._finish_upload(repo, desc, location, data, what)
            return
        hasher = hashlib.sha256()
        offset = 0
        while True:
            chunk = _read_full(stream, chunk_size)
            if not chunk:
                break
            hasher.update(chunk)
            if offset + len(chunk) > desc.size:
                self._abandon(location)
                raise DigestMismatchError(f"{what}: stream is longer than {desc.size} bytes")
            # A PATCH is not idempotent: after a dropped connection the registry may hold part
            # of it, so only HTTP-level refusals (5xx/429) are retried here.
            resp = self._request("PATCH", location, what=what, data=chunk, retry_dropped=False,
                                 headers={"Content-Type": "application/octet-stream",
                                          "Content-Range": f"{offset}-{offset + len(chunk) - 1}",
                                          "Content-Length": str(len(chunk))}, ok=(202, 204))
            resp.close()
            location = self._location(resp, what)
            offset += len(chunk)
        if offset != desc.size or "sha256:" + hasher.hexdigest() != desc.digest:
            self._abandon(location)
            raise DigestMismatchError(f"{what}: streamed content does not match the descriptor")
        self._finish_upload(repo, desc, location, b"", what)

    def _finish_upload(self, repo: str, desc: Descriptor, location: str, body: bytes, what: str) -> None:
        sep = "&" if urlsplit(location).query else "?"
        url = f"{location}{sep}{urlencode({'digest': desc.digest})}"
        try:
            resp = self._request("PUT", url, what=what, data=body, ok=(201, 204),
                                 headers={"Content-Type": "application/octet-stream",
                                          "Content-Length": str(len(body))})
        except RegistryStatusError as exc:
            # A retried PUT whose first attempt did land finds its session gone.
            if exc.status == 404 and self.has_blob(repo, desc):
                return
            raise
        resp.close()

    def _abandon(self, location: str) -> None:
        try:
            self._request("DELETE", location, what="cancel upload", ok=None).close()
        except RegistryError:
            pass

    # ------------------------------------------------------------------------------------------
    # referrers (implemented in socikit.registry.referrers)

    def referrers(self, repo: str, subject_digest: str, artifact_type: str | None = None) -> list[Descriptor]:
        """Manifests in `repo` whose subject is `subject_digest` (Referrers API, else the
        `sha256-<hex>` fallback tag), filtered by `artifact_type` when given."""
        from socikit.registry.referrers import fetch_referrers

        return fetch_referrers(self, repo, subject_digest, artifact_type)

    def push_referrer(self, repo: str, manifest: bytes, desc: Descriptor, subject_digest: str) -> Descriptor:
        """PUT a subject-bearing manifest and, if the registry does not index referrers itself
        (no `OCI-Subject` header), add it to the fallback tag index. Returns the entry listed."""
        from socikit.registry.referrers import push_referrer

        return push_referrer(self, repo, manifest, desc, subject_digest)


def _ssl_reason(exc: BaseException) -> str:
    text = str(exc)
    for marker in ("CERTIFICATE_VERIFY_FAILED", "WRONG_VERSION_NUMBER", "hostname mismatch",
                   "certificate verify failed"):
        if marker.lower() in text.lower():
            return marker
    return exc.__class__.__name__


def _content_range_start(value: str) -> int:
    # "bytes 10-19/100"
    try:
        unit, _, rest = value.partition(" ")
        return int(rest.split("-", 1)[0]) if unit == "bytes" else -1
    except ValueError:
        return -1


def _read_full(stream: IO[bytes], size: int) -> bytes:
    parts: list[bytes] = []
    want = size
    while want > 0:
        chunk = stream.read(want)
        if not chunk:
            break
        parts.append(chunk)
        want -= len(chunk)
    return b"".join(parts)


def _sniff_media_type(data: bytes) -> str:
    try:
        value = json.loads(data)
    except ValueError:
        return ""
    if isinstance(value, dict) and isinstance(value.get("mediaType"), str):
        return str(value["mediaType"])
    return ""


__all__ = ["MANIFEST_ACCEPT", "RegistryClient", "RegistryStatusError", "RetryPolicy"]
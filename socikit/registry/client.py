"""`RegistryClient`: the one client socikit uses for OCI distribution-spec v1.1 registries
(convert, push and the snapshotter's span fetches).

Sends through a `requests.Session` set up as oras-py's `Registry` sets up its own (cookies
ignored), authenticated by `RegistryAuth` (an oras-py auth backend), under socikit's request
policy in place of oras's `do_request`: bounded retries with exponential backoff on
5xx/429/dropped connections, one re-authentication per request, and every failure mapped to
`RegistryError` (`AuthError` for refused credentials, `RegistryStatusError` for an unexpected
status, `BlobNotFoundError` for a missing blob or manifest). Manifests and indexes are sent and
received as exact bytes.

Requests that move blob bytes survive a dropped connection under the same `RetryPolicy`: a
download that ends early resumes with a `Range` request from the bytes already received, and a
chunked upload whose PATCH fails asks the registry how much it holds (`GET` on the upload URL,
`Range: 0-<last>`) and goes on from there, or starts a new upload session when the registry has
dropped the old one.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
import ssl
import time
from collections.abc import Callable, Generator, Iterable, Mapping
from http.cookiejar import DefaultCookiePolicy
from pathlib import Path
from typing import IO, Any, BinaryIO
from urllib.parse import urlencode, urljoin, urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict

from socikit.errors import (
    AuthError,
    BlobNotFoundError,
    DigestMismatchError,
    RegistryError,
    RegistryStatusError,
)
from socikit.oci import mediatypes as mt
from socikit.oci.descriptor import Descriptor
from socikit.oci.digest import is_digest, sha256_digest, verify_blob
from socikit.registry.auth import Credentials, RegistryAuth
from socikit.registry.pages import Page
from socikit.registry.referrers import fetch_referrers, push_referrer
from socikit.registry.transfer import (
    BODY_ERRORS,
    STREAM_READ,
    BlobReader,
    FailureBudget,
    RangeCursor,
    RetryPolicy,
    UploadContent,
    UploadData,
    read_full,
    verify_streamed,
)

logger = logging.getLogger(__name__)

MANIFEST_ACCEPT = ", ".join([
    mt.MEDIA_TYPE_OCI_MANIFEST,
    mt.MEDIA_TYPE_OCI_INDEX,
    mt.MEDIA_TYPE_DOCKER_MANIFEST,
    mt.MEDIA_TYPE_DOCKER_MANIFEST_LIST,
])
# Manifests larger than this are refused (the OCI spec lets registries cap them at 4 MiB).
MAX_MANIFEST_SIZE = 4 << 20
# One page of a listing (tags, referrers) held in memory.
MAX_PAGE_SIZE = 4 << 20
DEFAULT_CHUNK_SIZE = 8 << 20
# Blobs up to this size held in memory go up in one POST+PUT; larger ones are PATCHed in chunks.
DEFAULT_MONOLITHIC_LIMIT = 16 << 20
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# `/v2/<name>/blobs/<digest>` or `/v2/<name>/manifests/<reference>` (not `blobs/uploads/...`).
_BLOB_OR_MANIFEST_PATH = re.compile(r"^/v2/.+/(blobs|manifests)/[^/]+$")
_NOT_FOUND_CODES = frozenset({"BLOB_UNKNOWN", "MANIFEST_UNKNOWN"})
# Codes with which a registry says an upload session no longer exists or cannot go on.
_UPLOAD_GONE_CODES = frozenset({"BLOB_UPLOAD_UNKNOWN", "BLOB_UPLOAD_INVALID"})

class _Dropped(RegistryError):
    """A request whose connection failed, raised (not retried) when the caller must first find
    out what the registry received."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class _SessionLost(Exception):
    """The registry no longer has (or cannot continue) our upload session: start a new one."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


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


def _new_session(verify: bool | str) -> requests.Session:
    """A session as oras-py's `Registry` makes one: cookies ignored (some registries, Harbor among
    them, take a cookie as the sign of a browser and start asking for CSRF tokens) and urllib3's
    insecure-request warning silenced when TLS is not verified. Not `Registry` itself: its module
    imports jsonschema (~50-80 ms) before the first layer could be read, for manifest checks
    socikit does not use."""
    session = requests.Session()
    session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
    if not verify:
        urllib3.disable_warnings()
    return session


class RegistryClient:
    """A client for one registry host (`name[:port]`).

    Every method raises RegistryError (RegistryStatusError for an unexpected status,
    BlobNotFoundError for a missing blob or manifest, AuthError when credentials are refused)
    with a one-line message naming host, repository and status."""

    def __init__(self, host: str, *, plain_http: bool = False, tls_verify: bool = True,
                 cert_dir: str | Path | None = None, credentials: Credentials | None = None,
                 retry: RetryPolicy | None = None) -> None:
        self.host = host
        self.plain_http = plain_http
        self.tls_verify = tls_verify
        self.retry = retry or RetryPolicy()
        self.base_url = f"{'http' if plain_http else 'https'}://{host}"
        verify: bool | str = tls_verify
        self.session: requests.Session = _new_session(verify)
        self.session.headers["User-Agent"] = "socikit"
        if cert_dir is not None and not plain_http:
            context = _build_ssl_context(Path(cert_dir), tls_verify)
            self.session.mount(f"https://{host}/", _ContextAdapter(context))
        self._verify = verify
        self.auth = RegistryAuth(host, credentials, self.session, verify=verify)

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
                 retry_dropped: bool = True, attempts: int | None = None) -> requests.Response:
        """Send with the retry policy (`attempts` overrides its count). With `ok`, any other
        status raises RegistryStatusError; with `ok=None` every non-retried response is returned.
        With `retry_dropped=False` a failed connection raises `_Dropped` at once."""
        policy = self.retry
        tries = max(1, policy.attempts if attempts is None else attempts)
        start = time.monotonic()
        last = ""
        for attempt in range(tries):
            if attempt:
                logger.debug("retrying %s on %s (%s)", what, self.host, last)
            try:
                resp = self._send_once(method, url, dict(headers or {}), data, stream)
            except requests.exceptions.SSLError as exc:
                raise RegistryError(f"{what} on {self.host}: {_tls_failure(exc)}") from None
            except (requests.ConnectionError, requests.Timeout,
                    requests.exceptions.ChunkedEncodingError) as exc:
                last = f"connection failed ({exc.__class__.__name__})"
                if not retry_dropped:
                    raise _Dropped(f"{what} on {self.host}: {last}", last) from None
                delay = policy.delay(attempt)
            except requests.RequestException as exc:
                # Never the exception's text: it can quote a header value (a token).
                raise RegistryError(f"{what} on {self.host}: request failed ({exc.__class__.__name__})") from None
            else:
                if resp.status_code not in _RETRY_STATUSES:
                    if ok is not None and resp.status_code not in set(ok):
                        self._raise_status(resp, what)
                    return resp
                last = f"HTTP {resp.status_code}"
                delay = policy.delay(attempt, resp.headers.get("Retry-After"))
                resp.close()
            if attempt + 1 >= tries or time.monotonic() - start + delay > policy.deadline:
                break
            time.sleep(delay)
        raise RegistryError(f"{what} on {self.host}: {last}, gave up after {attempt + 1} attempt(s)")

    def _raise_status(self, resp: requests.Response, what: str) -> None:
        status = resp.status_code
        code, message = _error_detail(resp)
        message = self.auth.redact(message)  # a registry may echo what it was sent
        resp.close()
        if status == 403:
            raise AuthError(f"authentication failed for {self.host}")
        detail = f" {code}" if code else ""
        if message:
            detail += f": {message}"
        text = f"{what} on {self.host}: HTTP {status}{detail}"
        first_url = resp.history[0].url if resp.history else resp.url
        if code in _NOT_FOUND_CODES or (
                status == 404 and _BLOB_OR_MANIFEST_PATH.match(urlsplit(first_url).path)):
            raise BlobNotFoundError(text, status, code)
        raise RegistryStatusError(text, status, code)

    def request(self, method: str, repo: str, endpoint: str, *, params: Mapping[str, str] | None = None,
                headers: Mapping[str, str] | None = None, data: bytes | None = None,
                stream: bool = False, ok: Iterable[int] | None = (200,)) -> requests.Response:
        """Low-level request on `/v2/<repo>/<endpoint>` with auth, retries and error mapping
        (prefer the typed methods)."""
        url = self.url(repo, endpoint)
        if params:
            url += "?" + urlencode(params)
        return self._request(method, url, what=f"{method} {repo}/{endpoint.split('?')[0]}",
                             headers=headers, data=data, stream=stream, ok=ok)

    def _get_small(self, url: str, *, what: str, headers: Mapping[str, str], ok: Iterable[int],
                   limit: int, too_big: str) -> tuple[requests.Response, bytes]:
        """GET a small body (manifest, listing page) whole; a body cut short is fetched again
        under the retry policy. Returns the (closed) response and its body."""
        budget = FailureBudget(self.retry, what)
        while True:
            resp = self._request("GET", url, what=what, headers=headers, stream=True, ok=ok)
            with resp:
                try:
                    body = resp.raw.read(limit + 1, decode_content=True)
                except BODY_ERRORS as exc:
                    budget.fail(f"connection dropped ({exc.__class__.__name__})")
                    continue
            if len(body) > limit:
                raise RegistryError(f"{what}: {too_big} larger than {limit} bytes")
            return resp, bytes(body)

    def get_pages(self, repo: str, endpoint: str, *, params: Mapping[str, str] | None = None,
                  accept: str | None = None, ok: Iterable[int] = (200,),
                  max_pages: int | None = None) -> Generator[Page, None, None]:
        """GET `/v2/<repo>/<endpoint>` and every page its `Link: <url>; rel="next"` headers lead
        to, one `Page` at a time (whole body, at most MAX_PAGE_SIZE bytes). The first answer may
        have any status in `ok`; only a 200 is followed, and the pages after it must be 200.
        A next link to another host, a link loop, or more than `max_pages` pages is a
        RegistryError."""
        headers = {"Accept": accept} if accept else {}
        url = self.url(repo, endpoint)
        if params:
            url += "?" + urlencode(params)
        what = f"GET {self.host}/{repo}/{endpoint}"
        accepted: Iterable[int] = tuple(ok)
        seen: set[str] = set()
        while True:
            seen.add(url)
            resp, body = self._get_small(url, what=what, headers=headers, ok=accepted,
                                         limit=MAX_PAGE_SIZE, too_big="page")
            yield Page(status=resp.status_code, headers=resp.headers, body=body)
            link = resp.links.get("next", {}).get("url") if resp.status_code == 200 else None
            if not link:
                return
            url = urljoin(resp.url, link)
            base = urlsplit(self.base_url)
            if urlsplit(url)[:2] != base[:2]:
                raise RegistryError(f"{what}: the next page is on another host ({urlsplit(url).netloc})")
            if url in seen:
                raise RegistryError(f"{what}: the next-page links go round in a loop")
            if max_pages is not None and len(seen) >= max_pages:
                raise RegistryError(f"{what}: more than {max_pages} pages")
            accepted = (200,)

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
        resp, data = self._get_small(self.url(repo, f"manifests/{ref}"), what=what,
                                     headers={"Accept": MANIFEST_ACCEPT}, ok=(200,),
                                     limit=MAX_MANIFEST_SIZE, too_big="manifest")
        media_type = _media_type(resp.headers.get("Content-Type"))
        header_digest = resp.headers.get("Docker-Content-Digest", "")
        # The size is whatever arrived: a manifest named by tag or digest has no expected size.
        if is_digest(ref):
            verify_blob(data, digest=ref, size=len(data), where=what)
        if header_digest.startswith("sha256:"):
            verify_blob(data, digest=header_digest, size=len(data), where=f"{what} (Docker-Content-Digest)")
        if not media_type or media_type in ("application/json", "text/plain"):
            media_type = _sniff_media_type(data) or media_type
        return data, Descriptor(media_type=media_type, digest=sha256_digest(data), size=len(data))

    def put_manifest(self, repo: str, ref: str, data: bytes, media_type: str) -> CaseInsensitiveDict[str]:
        """PUT `data` byte for byte as manifest `ref` (tag or digest) with `Content-Type:
        media_type` (images and indexes alike). Returns the response headers (`OCI-Subject`,
        `Docker-Content-Digest`)."""
        what = f"put manifest {self.host}/{repo}:{ref}"
        if is_digest(ref):
            verify_blob(data, digest=ref, size=len(data), where=what)
        digest = sha256_digest(data)
        resp = self._request("PUT", self.url(repo, f"manifests/{ref}"), what=what,
                             headers={"Content-Type": media_type}, data=bytes(data), ok=(200, 201))
        resp.close()
        stored = resp.headers.get("Docker-Content-Digest", "")
        if stored.startswith("sha256:") and stored != digest:
            raise RegistryError(f"{what}: registry stored digest {stored}, we sent {digest}")
        return resp.headers

    def delete_manifest(self, repo: str, digest: str) -> None:
        """DELETE manifest `digest`. Raises RegistryStatusError (405 when the registry does not
        allow deletes; BlobNotFoundError when it is gone)."""
        resp = self._request("DELETE", self.url(repo, f"manifests/{digest}"),
                             what=f"delete manifest {self.host}/{repo}@{digest}", ok=(200, 202, 204))
        resp.close()

    def list_tags(self, repo: str) -> list[str]:
        """Every tag of `repo`, following `Link: rel="next"` pages."""
        tags: list[str] = []
        for page in self.get_pages(repo, "tags/list", accept="application/json"):
            try:
                listed = json.loads(page.body).get("tags") or []
            except (ValueError, AttributeError):
                raise RegistryError(f"list tags {self.host}/{repo}: the answer is not a tag list") from None
            tags.extend(str(t) for t in listed)
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
        differ. A body that ends early is resumed with a Range request (the digest still covers
        the whole). Close it (or use `with`) to release the connection. The first request is
        sent here, so a missing blob raises BlobNotFoundError at once."""
        where = f"blob {self.host}/{repo}@{desc.digest}"
        cursor = RangeCursor(self._range_get(repo, desc.digest, f"get {where}"), self.retry, start=0,
                             stop=desc.size, what=f"get {where}", where=where, ranged=False,
                             total=desc.size, exact=True)
        cursor.open()
        return io.BufferedReader(BlobReader(cursor, desc, where, verify), buffer_size=STREAM_READ)

    def _range_get(self, repo: str, digest: str, what: str) -> Callable[[Mapping[str, str]], requests.Response]:
        url = self.url(repo, f"blobs/{digest}")

        def send(headers: Mapping[str, str]) -> requests.Response:
            return self._request("GET", url, what=what, headers=headers, stream=True, ok=(200, 206))

        return send

    def get_blob(self, repo: str, desc: Descriptor) -> bytes:
        """A whole blob in memory, digest verified."""
        with self.get_blob_stream(repo, desc) as stream:
            return stream.read()

    def get_blob_range(self, repo: str, digest: str, start: int, end: int) -> bytes:
        """Bytes `[start, end)` of a blob (end exclusive; sent as `Range: bytes=start-(end-1)`).

        Accepts 206 with a single part, or 200 with the whole body (sliced here); a body that
        ends before what the answer announced is resumed. Returns fewer bytes only when the
        blob ends before `end`."""
        if start < 0 or end <= start:
            raise ValueError(f"bad range [{start}, {end})")
        where = f"blob {self.host}/{repo}@{digest} bytes {start}-{end - 1}"
        cursor = RangeCursor(self._range_get(repo, digest, f"get {where}"), self.retry, start=start,
                             stop=end, what=f"get {where}", where=where, ranged=True)
        parts: list[bytes] = []
        try:
            while data := cursor.read(end - cursor.pos):
                parts.append(data)
        finally:
            cursor.close()
        return b"".join(parts)

    def push_blob(self, repo: str, desc: Descriptor, data: UploadData, *,
                  chunked: bool | None = None, chunk_size: int = DEFAULT_CHUNK_SIZE) -> bool:
        """Upload a blob unless `repo` already has it (HEAD first). Returns True if uploaded.

        `data` is bytes, a stream, or a callable that opens a stream (called again should the
        registry lose the upload session). `bytes` up to DEFAULT_MONOLITHIC_LIMIT go up as one
        POST+PUT; streams (and `chunked=True`) as POST, PATCH per `chunk_size` bytes, PUT. The
        content is hashed on the way and the upload is abandoned (DigestMismatchError) if it does
        not match `desc`. A dropped connection is recovered from under the RetryPolicy; when the
        registry has dropped the session, a new one starts from the first byte, which a stream
        that cannot seek back cannot do (RegistryError)."""
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
        location = self._try_mount(repo, desc, from_repo,
                                   what=f"mount blob {self.host}/{repo}@{desc.digest} from {from_repo}")
        if location is None:
            return True

        def open_source() -> IO[bytes]:
            return self.get_blob_stream(from_repo, desc, verify=False)

        self._upload(repo, desc, open_source, chunked=True, chunk_size=DEFAULT_CHUNK_SIZE,
                     location=location)
        return False

    def open_blob_upload(self, repo: str, desc: Descriptor, *, mount_from: str | None = None) -> str | None:
        """Begin an upload of `desc` to `repo` whose bytes come later (`upload_blob_stream`).
        None when nothing is left to send: `repo` holds the blob, or the registry mounted it from
        `mount_from` (a repository of this registry that may hold it); otherwise the location of
        the new upload session (the one a refused mount opens, when it opens one)."""
        if self.has_blob(repo, desc):
            return None
        what = f"push blob {self.host}/{repo}@{desc.digest}"
        if mount_from is None:
            return self._start_upload(repo, what)
        return self._try_mount(repo, desc, mount_from, what=what)

    def _try_mount(self, repo: str, desc: Descriptor, from_repo: str, *, what: str) -> str | None:
        """Ask the registry to mount `desc` into `repo` from `from_repo`: None when it did, else
        the location of the upload session it opened instead."""
        query = urlencode({"mount": desc.digest, "from": from_repo})
        resp = self._request("POST", self.url(repo, f"blobs/uploads/?{query}"), what=what,
                             headers={"Content-Length": "0"}, ok=(201, 202))
        resp.close()
        if resp.status_code == 201:
            return None
        return self._location(resp, what)

    def upload_blob_stream(self, repo: str, desc: Descriptor, chunks: Iterable[bytes], *, location: str) -> None:
        """Complete the upload session at `location` with the bytes `chunks` yields, sent as they
        come in one streamed PATCH (chunked transfer encoding, as `docker push` does), then the
        digest. The bytes cannot be read twice, so nothing is retried: any failure abandons the
        session and raises RegistryError, and the caller sends the blob another way."""
        what = f"push blob {self.host}/{repo}@{desc.digest}"
        try:
            resp = self._request("PATCH", location, what=what, data=chunks,  # type: ignore[arg-type]
                                 headers={"Content-Type": "application/octet-stream"}, ok=(202, 204),
                                 retry_dropped=False, attempts=1)
            resp.close()
            location = self._location(resp, what)
            self._finish_upload(repo, desc, location, b"", what)
        except _SessionLost as lost:
            self._abandon(location)
            raise RegistryError(f"{what}: {lost.reason}") from None
        except BaseException:
            self._abandon(location)
            raise

    def _location(self, resp: requests.Response, what: str) -> str:
        location = resp.headers.get("Location", "")
        if not location:
            raise RegistryError(f"{what}: registry sent no upload location")
        return urljoin(resp.url, location)

    def _start_upload(self, repo: str, what: str) -> str:
        resp = self._request("POST", self.url(repo, "blobs/uploads/"), what=what,
                             headers={"Content-Length": "0"}, ok=(202,))
        resp.close()
        return self._location(resp, what)

    def _upload(self, repo: str, desc: Descriptor, data: UploadData, *, chunked: bool | None,
                chunk_size: int, location: str | None) -> None:
        """One blob upload, through as many upload sessions as the registry makes it take."""
        what = f"push blob {self.host}/{repo}@{desc.digest}"
        content = UploadContent(data, desc, what)
        monolithic = content.data is not None and (
            chunked is False or (chunked is None and len(content.data) <= DEFAULT_MONOLITHIC_LIMIT))
        budget = FailureBudget(self.retry, what)
        try:
            while True:
                if location is None:
                    location = self._start_upload(repo, what)
                try:
                    if content.data is not None and monolithic:
                        self._finish_upload(repo, desc, location, content.data, what)
                    else:
                        self._send_chunks(repo, desc, content.open(), location, chunk_size, what, budget)
                    return
                except _SessionLost as lost:
                    self._abandon(location)
                    location = None
                    if not content.can_reopen():
                        raise RegistryError(f"{what}: {lost.reason}, and the stream being uploaded "
                                            "cannot be read again from its start") from None
                    budget.fail(f"{lost.reason}; starting a new upload")
                except Exception:
                    if location is not None:
                        self._abandon(location)
                    raise
        finally:
            content.close()

    def _send_chunks(self, repo: str, desc: Descriptor, stream: IO[bytes], location: str,
                     chunk_size: int, what: str, budget: FailureBudget) -> None:
        hasher = hashlib.sha256()
        offset = 0
        while True:
            chunk = read_full(stream, chunk_size)
            if not chunk:
                break
            hasher.update(chunk)
            if offset + len(chunk) > desc.size:
                raise DigestMismatchError(f"{what}: at least {offset + len(chunk)} bytes, expected {desc.size}")
            location = self._patch_chunk(location, chunk, offset, what, budget)
            offset += len(chunk)
        verify_streamed(offset, "sha256:" + hasher.hexdigest(), digest=desc.digest, size=desc.size,
                         where=what)
        self._finish_upload(repo, desc, location, b"", what)

    def _patch_chunk(self, location: str, chunk: bytes, offset: int, what: str,
                     budget: FailureBudget) -> str:
        """PATCH `chunk` (bytes `offset`… of the blob) into the session at `location`; returns
        the session's next location. After a failure the registry is asked how much it holds
        and the rest of the chunk is sent from there."""
        sent = 0  # bytes of `chunk` the registry is known to hold
        while True:
            first = offset + sent
            part = chunk[sent:]
            try:
                # A PATCH appends: it is never re-sent blindly, since the registry may hold part
                # of it. HTTP-level refusals (5xx/429) are retried as they change nothing.
                resp = self._request("PATCH", location, what=what, data=part, retry_dropped=False,
                                     headers={"Content-Type": "application/octet-stream",
                                              "Content-Range": f"{first}-{first + len(part) - 1}",
                                              "Content-Length": str(len(part))}, ok=(202, 204))
            except _Dropped as exc:
                reason = f"PATCH at byte {first}: {exc.reason}"
            except RegistryStatusError as exc:
                if _upload_gone(exc):
                    raise _SessionLost(f"the registry dropped the upload session ({_status_text(exc)})") from None
                if exc.status != 416:
                    raise
                reason = f"PATCH at byte {first}: HTTP 416"
            else:
                resp.close()
                budget.progress()
                return self._location(resp, what)
            budget.fail(reason)
            location, held = self._upload_status(location, what)
            if held is None and offset == 0:
                # `Range: 0-0` cannot tell no byte from one; nothing is lost by starting again.
                raise _SessionLost("the registry's upload offset is ambiguous")
            held = 1 if held is None else held
            if not offset <= held <= offset + len(chunk):
                raise _SessionLost(f"the registry holds {held} bytes of the upload, expected "
                                   f"{offset} to {offset + len(chunk)}")
            logger.debug("%s: registry holds %d bytes; going on from there", what, held)
            sent = held - offset
            if sent == len(chunk):
                return location

    def _upload_status(self, location: str, what: str) -> tuple[str, int | None]:
        """`GET` on an upload session: (its next location, bytes held). Bytes held is None for
        `Range: 0-0`, which means none or one."""
        try:
            resp = self._request("GET", location, what=f"{what} (upload status)", ok=(200, 204))
        except RegistryStatusError as exc:
            if _upload_gone(exc) or exc.status in (400, 404):
                raise _SessionLost(f"the registry dropped the upload session ({_status_text(exc)})") from None
            raise
        resp.close()
        match = re.fullmatch(r"(?:bytes=)?0-(\d+)", resp.headers.get("Range", "").strip())
        if match is None:
            raise _SessionLost("the registry does not report the upload's offset")
        last = int(match.group(1))
        next_location = urljoin(resp.url, resp.headers["Location"]) if resp.headers.get("Location") else location
        return next_location, (last + 1 if last > 0 else None)

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
            # A retried PUT whose first attempt left part of its body in the session, or chunks
            # the registry put together wrongly: our content is verified, so send it again.
            if _upload_gone(exc) or exc.code == "DIGEST_INVALID":
                raise _SessionLost(f"the registry refused the upload ({_status_text(exc)})") from None
            raise
        resp.close()

    def _abandon(self, location: str) -> None:
        """Cancel an upload session, best effort: one attempt, failures ignored."""
        try:
            self._request("DELETE", location, what="cancel upload", ok=None, attempts=1,
                          retry_dropped=False).close()
        except RegistryError:
            pass

    # ------------------------------------------------------------------------------------------
    # referrers (implemented in socikit.registry.referrers, over this class's public methods)

    def referrers(self, repo: str, subject_digest: str, artifact_type: str | None = None) -> list[Descriptor]:
        """Manifests in `repo` whose subject is `subject_digest` (Referrers API, else the
        `sha256-<hex>` fallback tag), filtered by `artifact_type` when given."""
        return fetch_referrers(self, repo, subject_digest, artifact_type)

    def push_referrer(self, repo: str, manifest: bytes, desc: Descriptor, subject_digest: str) -> Descriptor:
        """PUT a subject-bearing manifest and, if the registry does not index referrers itself
        (no `OCI-Subject` header), add it to the fallback tag index. Returns the entry listed."""
        return push_referrer(self, repo, manifest, desc, subject_digest)


def _upload_gone(exc: RegistryStatusError) -> bool:
    return exc.code in _UPLOAD_GONE_CODES or (exc.status == 404 and not exc.code)


def _status_text(exc: RegistryStatusError) -> str:
    return f"HTTP {exc.status} {exc.code}".rstrip()


def _tls_failure(exc: BaseException) -> str:
    """A TLS failure in one phrase, never the raw OpenSSL text."""
    reason = _ssl_reason(exc)
    if reason == "WRONG_VERSION_NUMBER":
        # What a TLS client sees when the server answers its hello in plain HTTP.
        return f"TLS error ({reason}): the registry answered in plain HTTP; add --plain-http"
    return f"TLS error ({reason})"


def _ssl_reason(exc: BaseException) -> str:
    text = str(exc)
    for marker in ("CERTIFICATE_VERIFY_FAILED", "WRONG_VERSION_NUMBER", "hostname mismatch",
                   "certificate verify failed"):
        if marker.lower() in text.lower():
            return marker
    return exc.__class__.__name__


def _sniff_media_type(data: bytes) -> str:
    try:
        value = json.loads(data)
    except ValueError:
        return ""
    if isinstance(value, dict) and isinstance(value.get("mediaType"), str):
        return str(value["mediaType"])
    return ""


__all__ = [
    "MANIFEST_ACCEPT",
    "BlobNotFoundError",
    "RegistryClient",
    "RegistryStatusError",
    "RetryPolicy",
    "UploadData",
]

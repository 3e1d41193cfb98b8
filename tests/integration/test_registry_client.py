# ruff: noqa: F811  (pytest fixtures imported from registry_fixtures are parameters here)
"""RegistryClient, referrers and the registry ImageSource/ImageSink against Debian's real
docker-registry 2.8 on 127.0.0.1 (plain HTTP, TLS, htpasswd, token auth), plus small in-test
HTTP servers where docker-registry cannot show a behaviour (Referrers API, 503/429, no ranges)."""

from __future__ import annotations

import io
import json
import logging
import os
import pickle
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import requests

from socikit.content.base import ImageSink, ImageSource
from socikit.errors import (
    AuthError,
    BlobNotFoundError,
    DigestMismatchError,
    RegistryError,
    RegistryStatusError,
)
from socikit.oci import gojson
from socikit.oci import mediatypes as mt
from socikit.oci.descriptor import Descriptor, descriptor_for
from socikit.registry import (
    Credentials,
    RegistryClient,
    RegistryOptions,
    RegistrySink,
    RegistrySource,
    RetryPolicy,
    open_registry_sink,
    open_registry_source,
    referrers_tag,
)
from socikit.registry.referrers import build_referrers_index, referrer_entry
from tests.integration.registry_fixtures import (  # noqa: F401
    IDENTITY_TOKEN,
    TEST_PASSWORD,
    TEST_USER,
    FakeReferrersRegistry,
    FlakyProxy,
    RegistryServer,
    fake_referrers_registry,
    flaky_proxy,
    htpasswd_registry,
    registry,
    registry_factory,
    tls_registry,
    token_registry,
)

pytestmark = [pytest.mark.integration, pytest.mark.registry]

FAST_RETRY = RetryPolicy(attempts=4, initial_delay=0.01, max_delay=0.05, deadline=10.0)


def client_for(server: RegistryServer, **kwargs: Any) -> RegistryClient:
    kwargs.setdefault("retry", FAST_RETRY)
    if server.tls is not None:
        kwargs.setdefault("cert_dir", server.tls.cert_dir)
    return RegistryClient(server.host, plain_http=server.plain_http, **kwargs)


def record(client: RegistryClient) -> list[tuple[str, str]]:
    """Every (method, path?query) the client's session sends, in order."""
    seen: list[tuple[str, str]] = []

    def hook(resp: requests.Response, *args: Any, **kwargs: Any) -> None:
        url = requests.utils.urlparse(resp.request.url)
        seen.append((str(resp.request.method), url.path + ("?" + url.query if url.query else "")))

    client.session.hooks["response"].append(hook)
    return seen


def payload(size: int, seed: int = 1) -> bytes:
    block = bytes((i * 31 + seed) & 0xFF for i in range(4096))
    return (block * (size // len(block) + 1))[:size]


def push_image(client: RegistryClient, repo: str, tag: str | None = "v1", *,
               layer: bytes = b"layer-bytes") -> tuple[Descriptor, bytes, list[Descriptor]]:
    """Push a one-layer OCI image (config, layer, manifest); returns (manifest desc, bytes, blobs)."""
    config = gojson.dumps({"architecture": "amd64", "os": "linux",
                           "rootfs": {"type": "layers", "diff_ids": []}})
    cfg = descriptor_for(config, mt.MEDIA_TYPE_OCI_CONFIG)
    lay = descriptor_for(layer, mt.MEDIA_TYPE_OCI_LAYER_GZIP)
    client.push_blob(repo, cfg, config)
    client.push_blob(repo, lay, layer)
    manifest = gojson.dumps({"schemaVersion": 2, "mediaType": mt.MEDIA_TYPE_OCI_MANIFEST,
                             "config": cfg.to_json(), "layers": [lay.to_json()]})
    desc = descriptor_for(manifest, mt.MEDIA_TYPE_OCI_MANIFEST)
    client.put_manifest(repo, desc.digest, manifest, desc.media_type)
    if tag:
        client.put_manifest(repo, tag, manifest, desc.media_type)
    return desc, manifest, [cfg, lay]


def soci_index(subject: Descriptor, ztoc: Descriptor, note: str) -> bytes:
    empty = Descriptor(mt.MEDIA_TYPE_OCI_EMPTY, mt.EMPTY_JSON_DIGEST, 2).with_changes(
        media_type=mt.ARTIFACT_TYPE_SOCI_INDEX_V1)
    return gojson.dumps({
        "schemaVersion": 2, "mediaType": mt.MEDIA_TYPE_OCI_MANIFEST,
        "config": empty.to_json(), "layers": [ztoc.to_json()],
        "subject": {"mediaType": subject.media_type, "digest": subject.digest, "size": subject.size},
        "annotations": {mt.ANNOTATION_BUILD_TOOL_IDENTIFIER: note},
    })


# ---------------------------------------------------------------------------------------------
# blobs and manifests


def test_round_trip_blobs_and_exact_manifest_and_index_bytes(registry: RegistryServer) -> None:
    client = client_for(registry)
    desc, manifest, blobs = push_image(client, "round/trip", tag=None)
    # An index written with unusual whitespace: the registry must get (and give back) these bytes.
    index = json.dumps({"schemaVersion": 2, "mediaType": mt.MEDIA_TYPE_OCI_INDEX,
                        "manifests": [desc.to_json()]}, indent=3).encode() + b"\n"
    index_desc = descriptor_for(index, mt.MEDIA_TYPE_OCI_INDEX)
    headers = client.put_manifest("round/trip", "multi", index, mt.MEDIA_TYPE_OCI_INDEX)
    assert headers["Docker-Content-Digest"] == index_desc.digest

    assert client.resolve("round/trip", "multi") == index_desc
    assert client.resolve("round/trip", desc.digest) == desc
    data, got = client.get_manifest("round/trip", "multi")
    assert data == index and got == index_desc
    assert client.get_manifest("round/trip", desc.digest)[0] == manifest
    raw = requests.get(f"{registry.url}/v2/round/trip/manifests/multi",
                       headers={"Accept": mt.MEDIA_TYPE_OCI_INDEX}, timeout=10)
    assert raw.content == index
    for blob in blobs:
        assert client.get_blob("round/trip", blob) is not None
    assert client.get_blob("round/trip", blobs[1]) == b"layer-bytes"
    assert client.list_tags("round/trip") == ["multi"]

    client.delete_manifest("round/trip", index_desc.digest)
    with pytest.raises(RegistryStatusError) as info:
        client.get_manifest("round/trip", index_desc.digest)
    assert info.value.status == 404
    assert f"{registry.host}" in str(info.value) and "404" in str(info.value)


def test_chunked_upload_from_a_stream(registry: RegistryServer) -> None:
    client = client_for(registry)
    data = payload(200_000, seed=7)
    desc = descriptor_for(data, mt.MEDIA_TYPE_OCI_LAYER_GZIP)
    seen = record(client)
    assert client.push_blob("chunked/repo", desc, io.BytesIO(data), chunk_size=64 * 1024) is True
    methods = [m for m, _ in seen]
    assert methods.count("PATCH") == 4  # 3 full 64 KiB chunks and a partial one
    assert methods[-1] == "PUT" and methods[0] == "HEAD"
    with client.get_blob_stream("chunked/repo", desc) as stream:
        assert stream.read() == data


def test_streamed_upload_that_does_not_match_is_refused(registry: RegistryServer) -> None:
    client = client_for(registry)
    data = payload(10_000)
    desc = descriptor_for(data, mt.MEDIA_TYPE_OCI_LAYER)
    with pytest.raises(DigestMismatchError) as info:
        client.push_blob("chunked/bad", desc, io.BytesIO(data[:-1] + b"x"), chunk_size=4096)
    assert "content has digest sha256:" in str(info.value)
    assert str(info.value).endswith(f"expected {desc.digest}")
    assert not client.has_blob("chunked/bad", desc)


def test_head_skips_existing_blob(registry: RegistryServer) -> None:
    client = client_for(registry)
    data = payload(5000, seed=3)
    desc = descriptor_for(data, mt.MEDIA_TYPE_OCI_LAYER)
    assert client.push_blob("skip/repo", desc, data) is True
    seen = record(client)
    assert client.push_blob("skip/repo", desc, data) is False
    assert client.push_blob("skip/repo", desc, io.BytesIO(data)) is False
    assert seen == [("HEAD", f"/v2/skip/repo/blobs/{desc.digest}")] * 2


def test_cross_repository_mount(registry: RegistryServer) -> None:
    client = client_for(registry)
    data = payload(30_000, seed=5)
    desc = descriptor_for(data, mt.MEDIA_TYPE_OCI_LAYER_GZIP)
    client.push_blob("mount/src", desc, data)
    seen = record(client)
    assert client.mount_blob("mount/dst", desc, "mount/src") is True
    assert [m for m, _ in seen] == ["HEAD", "POST"]
    assert "mount=" in seen[1][1] and "from=mount%2Fsrc" in seen[1][1]
    assert client.get_blob("mount/dst", desc) == data


def test_mount_falls_back_to_a_copy_when_the_registry_opens_an_upload(
        registry: RegistryServer, flaky_proxy: Any) -> None:
    """A proxy renames the `mount` parameter, so docker-registry opens an ordinary upload (202)
    as a registry that cannot mount would; the client then copies the blob from `from_repo`."""
    client = client_for(registry)
    data = payload(9000, seed=11)
    desc = descriptor_for(data, mt.MEDIA_TYPE_OCI_LAYER)
    client.push_blob("fallback/src", desc, data)

    def no_mount(method: str, path: str, headers: dict[str, str]) -> tuple[str, dict[str, str]]:
        return path.replace("mount=", "nomount="), headers

    proxy: FlakyProxy = flaky_proxy(fail=False, rewrite=no_mount)
    via = RegistryClient(proxy.host, plain_http=True, retry=FAST_RETRY)
    seen = record(via)
    assert via.mount_blob("fallback/dst", desc, "fallback/src") is False
    methods = [m for m, _ in seen]
    assert methods[:2] == ["HEAD", "POST"] and "PATCH" in methods and methods[-1] == "PUT"
    assert client.get_blob("fallback/dst", desc) == data


def test_mount_from_a_repository_without_the_blob(registry: RegistryServer) -> None:
    client = client_for(registry)
    data = payload(1000, seed=12)
    desc = descriptor_for(data, mt.MEDIA_TYPE_OCI_LAYER)
    with pytest.raises(RegistryStatusError) as info:
        client.mount_blob("fallback/dst2", desc, "fallback/nowhere")
    assert isinstance(info.value, BlobNotFoundError)
    assert info.value.status == 404 and "fallback/nowhere" in str(info.value)
    assert not client.has_blob("fallback/dst2", desc)


def test_range_reads(registry: RegistryServer) -> None:
    client = client_for(registry)
    data = payload(100_000, seed=9)
    desc = descriptor_for(data, mt.MEDIA_TYPE_OCI_LAYER_GZIP)
    client.push_blob("range/repo", desc, data)
    seen = record(client)
    assert client.get_blob_range("range/repo", desc.digest, 0, 1) == data[:1]
    assert client.get_blob_range("range/repo", desc.digest, 12_345, 54_321) == data[12_345:54_321]
    assert client.get_blob_range("range/repo", desc.digest, 99_990, 100_010) == data[99_990:]
    assert all(m == "GET" for m, _ in seen)


def test_range_read_accepts_a_whole_body_answer(registry: RegistryServer,
                                                flaky_proxy: Any) -> None:
    """Through a proxy that drops the Range header, the registry answers 200 with the whole
    blob; the client slices it."""
    client = client_for(registry)
    data = payload(50_000, seed=2)
    desc = descriptor_for(data, mt.MEDIA_TYPE_OCI_LAYER_GZIP)
    client.push_blob("range/whole", desc, data)
    proxy: FlakyProxy = flaky_proxy(
        fail=False, rewrite=lambda m, p, h: (p, {k: v for k, v in h.items() if k.lower() != "range"}))
    via = RegistryClient(proxy.host, plain_http=True, retry=FAST_RETRY)
    statuses: list[int] = []
    via.session.hooks["response"].append(lambda r, *a, **k: statuses.append(r.status_code))
    assert via.get_blob_range("range/whole", desc.digest, 1000, 2000) == data[1000:2000]
    assert statuses == [200]


def test_missing_blobs_and_manifests_are_blob_not_found(registry: RegistryServer) -> None:
    """404 / BLOB_UNKNOWN / MANIFEST_UNKNOWN on a blob or manifest is BlobNotFoundError (a
    RegistryStatusError, so `except RegistryStatusError` callers still see it); other statuses
    and other endpoints are not."""
    client = client_for(registry)
    push_image(client, "missing/app")
    ghost = descriptor_for(b"never pushed", mt.MEDIA_TYPE_OCI_LAYER)
    cases = {
        "blob GET": lambda: client.get_blob("missing/app", ghost),
        "range GET": lambda: client.get_blob_range("missing/app", ghost.digest, 0, 4),
        "manifest by tag": lambda: client.get_manifest("missing/app", "no-such-tag"),
        "manifest by digest": lambda: client.get_manifest("missing/app", ghost.digest),
        "resolve (HEAD, no body)": lambda: client.resolve("missing/app", "no-such-tag"),
        "unknown repository": lambda: client.get_manifest("missing/nowhere", "v1"),
    }
    codes = {}
    for name, call in cases.items():
        with pytest.raises(BlobNotFoundError) as info:
            call()
        assert info.value.status == 404, name
        assert registry.host in str(info.value) and "\n" not in str(info.value), name
        codes[name] = info.value.code
    assert codes["blob GET"] == "BLOB_UNKNOWN" and codes["manifest by tag"] == "MANIFEST_UNKNOWN"
    assert codes["resolve (HEAD, no body)"] == ""
    # A listing of a repository that does not exist is not a missing blob.
    with pytest.raises(RegistryStatusError) as listing:
        client.list_tags("missing/nowhere")
    assert listing.value.status == 404 and not isinstance(listing.value, BlobNotFoundError)


def test_registry_errors_cross_a_pickle(registry: RegistryServer) -> None:
    """Blob reads run in worker processes; their errors come back pickled."""
    client = client_for(registry)
    with pytest.raises(BlobNotFoundError) as info:
        client.get_blob("missing/pickle", descriptor_for(b"x", mt.MEDIA_TYPE_OCI_LAYER))
    back = pickle.loads(pickle.dumps(info.value))
    assert type(back) is BlobNotFoundError
    assert (str(back), back.status, back.code) == (str(info.value), 404, info.value.code)


def test_old_import_paths_still_name_the_errors() -> None:
    import socikit.registry
    import socikit.registry.client

    assert socikit.registry.client.RegistryStatusError is RegistryStatusError
    assert socikit.registry.RegistryStatusError is RegistryStatusError
    assert socikit.registry.client.BlobNotFoundError is BlobNotFoundError
    assert issubclass(BlobNotFoundError, RegistryStatusError) and issubclass(RegistryStatusError, RegistryError)


# ---------------------------------------------------------------------------------------------
# referrers


def test_referrers_fallback_tag_create_append_and_gc(registry: RegistryServer) -> None:
    """docker-registry 2.8 has no Referrers API: the `sha256-<hex>` tag index is used for real."""
    client = client_for(registry)
    repo = "refs/app"
    subject, _, _ = push_image(client, repo)
    assert client.referrers(repo, subject.digest) == []

    ztoc = descriptor_for(b"ztoc-bytes", mt.MEDIA_TYPE_ZTOC)
    client.push_blob(repo, ztoc, b"ztoc-bytes")
    client.push_blob(repo, Descriptor(mt.MEDIA_TYPE_OCI_EMPTY, mt.EMPTY_JSON_DIGEST, 2), mt.EMPTY_JSON_BLOB)
    first = soci_index(subject, ztoc, "first")
    first_desc = descriptor_for(first, mt.MEDIA_TYPE_OCI_MANIFEST)
    entry1 = client.push_referrer(repo, first, first_desc, subject.digest)
    assert entry1.artifact_type == mt.ARTIFACT_TYPE_SOCI_INDEX_V1
    assert entry1.annotations == {mt.ANNOTATION_BUILD_TOOL_IDENTIFIER: "first"}

    tag = referrers_tag(subject.digest)
    index1, index1_desc = client.get_manifest(repo, tag)
    assert index1 == build_referrers_index([entry1])
    assert index1_desc.media_type == mt.MEDIA_TYPE_OCI_INDEX

    second = soci_index(subject, ztoc, "second")
    second_desc = descriptor_for(second, mt.MEDIA_TYPE_OCI_MANIFEST)
    entry2 = client.push_referrer(repo, second, second_desc, subject.digest)
    index2, index2_desc = client.get_manifest(repo, tag)
    assert index2 == build_referrers_index([entry1, entry2])
    # The superseded tag index was deleted by digest.
    with pytest.raises(RegistryStatusError) as info:
        client.get_manifest(repo, index1_desc.digest)
    assert info.value.status == 404

    # Pushing again changes nothing (an interrupted push can simply be re-run).
    client.push_referrer(repo, first, first_desc, subject.digest)
    assert client.get_manifest(repo, tag)[1] == index2_desc

    assert client.referrers(repo, subject.digest) == [entry1, entry2]
    assert client.referrers(repo, subject.digest, mt.ARTIFACT_TYPE_SOCI_INDEX_V1) == [entry1, entry2]
    assert client.referrers(repo, subject.digest, mt.ARTIFACT_TYPE_SOCI_INDEX_V2) == []
    # The referrer manifests themselves are stored byte for byte.
    assert client.get_manifest(repo, second_desc.digest)[0] == second


def test_referrers_api_path(fake_referrers_registry: FakeReferrersRegistry) -> None:
    """Against a minimal in-test HTTP endpoint that implements the Referrers API (docker-registry
    2.8 does not): client-side filtering, server-side filtering (`OCI-Filters-Applied`), the
    fallback on a non-index answer, and a push answered with `OCI-Subject` (no tag written)."""
    fake = fake_referrers_registry
    client = RegistryClient(fake.host, plain_http=True, retry=FAST_RETRY)
    subject = "sha256:" + "ab" * 32
    v1 = {"mediaType": mt.MEDIA_TYPE_OCI_MANIFEST, "digest": "sha256:" + "01" * 32, "size": 10,
          "artifactType": mt.ARTIFACT_TYPE_SOCI_INDEX_V1}
    other = {"mediaType": mt.MEDIA_TYPE_OCI_MANIFEST, "digest": "sha256:" + "02" * 32, "size": 11,
             "artifactType": "application/vnd.example.sbom"}
    fake.referrers[subject] = [v1, other]

    assert [d.digest for d in client.referrers("app", subject)] == [v1["digest"], other["digest"]]
    soci_only = client.referrers("app", subject, mt.ARTIFACT_TYPE_SOCI_INDEX_V1)
    assert [d.digest for d in soci_only] == [v1["digest"]]
    assert fake.seen[-1] == (f"GET /v2/app/referrers/{subject}?artifactType="
                             "application%2Fvnd.amazon.soci.index.v1%2Bjson")
    fake.filters_applied = True
    sboms = client.referrers("app", subject, "application/vnd.example.sbom")
    assert [d.digest for d in sboms] == [other["digest"]]

    fake.content_type = "application/json"  # not an index: treat as "no Referrers API"
    fake.seen.clear()
    assert client.referrers("app", subject) == []
    assert fake.seen == [f"GET /v2/app/referrers/{subject}",
                         f"GET /v2/app/manifests/{referrers_tag(subject)}"]

    fake.seen.clear()
    subject_desc = Descriptor(mt.MEDIA_TYPE_OCI_MANIFEST, subject, 123)
    index = soci_index(subject_desc, descriptor_for(b"z", mt.MEDIA_TYPE_ZTOC), "api")
    desc = descriptor_for(index, mt.MEDIA_TYPE_OCI_MANIFEST)
    entry = client.push_referrer("app", index, desc, subject)
    assert fake.seen == [f"PUT /v2/app/manifests/{desc.digest}"]
    assert fake.manifests[desc.digest] == index
    assert entry == referrer_entry(desc, index)


# ---------------------------------------------------------------------------------------------
# auth and TLS


@pytest.mark.parametrize("fixture", ["htpasswd_registry", "token_registry"])
def test_credentials_push_and_pull(fixture: str, request: pytest.FixtureRequest) -> None:
    server: RegistryServer = request.getfixturevalue(fixture)
    client = client_for(server, credentials=Credentials(TEST_USER, TEST_PASSWORD))
    desc, manifest, _ = push_image(client, f"auth/{fixture}")
    client.mount_blob("auth/other", descriptor_for(b"layer-bytes", mt.MEDIA_TYPE_OCI_LAYER_GZIP),
                      f"auth/{fixture}")
    assert client.get_manifest(f"auth/{fixture}", "v1")[0] == manifest
    anonymous = client_for(server)
    with pytest.raises(AuthError) as info:
        anonymous.resolve(f"auth/{fixture}", "v1")
    assert str(info.value) == f"authentication failed for {server.host}"


@pytest.mark.parametrize("fixture", ["htpasswd_registry", "token_registry"])
def test_wrong_password_is_an_auth_error_that_shows_no_secret(
        fixture: str, request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture) -> None:
    server: RegistryServer = request.getfixturevalue(fixture)
    wrong = "wrong-" + TEST_PASSWORD
    caplog.set_level(logging.DEBUG)
    client = client_for(server, credentials=Credentials(TEST_USER, wrong))
    with pytest.raises(AuthError) as info:
        client.push_blob("auth/wrong", descriptor_for(b"x", mt.MEDIA_TYPE_OCI_LAYER), b"x")
    assert str(info.value) == f"authentication failed for {server.host}"
    texts = [str(info.value), repr(info.value), repr(client), repr(client.auth),
             repr(client.auth.credentials), caplog.text]
    for text in texts:
        assert wrong not in text and TEST_PASSWORD not in text


def test_identity_token_from_docker_config(token_registry: RegistryServer, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """An `identitytoken` in $DOCKER_CONFIG/config.json is exchanged with the OAuth2
    refresh-token grant; the issuer answers with `access_token` only."""
    (tmp_path / "config.json").write_text(json.dumps(
        {"auths": {token_registry.host: {"auth": "", "identitytoken": IDENTITY_TOKEN}}}))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    sink = open_registry_sink(token_registry.host, "auth/identity", "latest",
                              options=RegistryOptions(plain_http=True))
    with sink:
        assert IDENTITY_TOKEN not in repr(sink.client.auth)
        push_image(sink.client, "auth/identity")
        assert sink.client.list_tags("auth/identity") == ["v1"]
    assert token_registry.token_issuer is not None
    assert any(r["method"] == "POST" for r in token_registry.token_issuer.requests)


def test_docker_config_basic_auth(htpasswd_registry: RegistryServer, tmp_path: Path) -> None:
    import base64

    config = tmp_path / "cfg.json"
    auth = base64.b64encode(f"{TEST_USER}:{TEST_PASSWORD}".encode()).decode()
    config.write_text(json.dumps({"auths": {f"http://{htpasswd_registry.host}": {"auth": auth}}}))
    options = RegistryOptions(plain_http=True, docker_config=str(config))
    with open_registry_sink(htpasswd_registry.host, "cfg/app", "t", options=options) as sink:
        desc, manifest, blobs = push_image(sink.client, "cfg/app", tag=None)
        sink.write_manifest(desc, manifest)
        sink.tag(desc)
    with open_registry_source(htpasswd_registry.host, "cfg/app", "t", options=options) as source:
        assert source.resolve() == desc


def test_tls_with_cert_dir_and_without(tls_registry: RegistryServer) -> None:
    assert tls_registry.tls is not None
    client = client_for(tls_registry)  # trusts the test CA from cert_dir/ca.crt
    desc, manifest, _ = push_image(client, "tls/app")
    assert client.get_manifest("tls/app", "v1")[0] == manifest

    untrusting = RegistryClient(tls_registry.host, retry=FAST_RETRY)
    with pytest.raises(RegistryError) as info:
        untrusting.resolve("tls/app", "v1")
    assert "TLS error" in str(info.value) and tls_registry.host in str(info.value)

    insecure = RegistryClient(tls_registry.host, tls_verify=False, retry=FAST_RETRY)
    assert insecure.resolve("tls/app", "v1") == desc


# ---------------------------------------------------------------------------------------------
# failures and retries


class _KillingStream(io.RawIOBase):
    """A blob stream that kills the registry after handing out its first chunk."""

    def __init__(self, data: bytes, server: RegistryServer, after: int) -> None:
        self._data = io.BytesIO(data)
        self._server = server
        self._after = after

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._data.tell() >= self._after:
            self._server.kill()
        return self._data.readinto(buffer)


def test_registry_killed_mid_push_then_push_again(registry_factory: Any) -> None:
    server: RegistryServer = registry_factory()
    client = client_for(server, retry=RetryPolicy(attempts=2, initial_delay=0.01, deadline=2.0))
    small = b"small-config"
    big = payload(300_000, seed=4)
    small_desc = descriptor_for(small, mt.MEDIA_TYPE_OCI_CONFIG)
    big_desc = descriptor_for(big, mt.MEDIA_TYPE_OCI_LAYER_GZIP)
    manifest = gojson.dumps({"schemaVersion": 2, "mediaType": mt.MEDIA_TYPE_OCI_MANIFEST,
                             "config": small_desc.to_json(), "layers": [big_desc.to_json()]})
    mdesc = descriptor_for(manifest, mt.MEDIA_TYPE_OCI_MANIFEST)

    def push(stream: io.RawIOBase | io.BytesIO) -> None:
        sink = RegistrySink(client, "crash/app", "latest")
        sink.write_blob(small_desc, small)
        client.push_blob("crash/app", big_desc, stream, chunk_size=64 * 1024)
        sink.write_manifest(mdesc, manifest)
        sink.tag(mdesc)

    with pytest.raises(RegistryError) as info:
        push(_KillingStream(big, server, after=100_000))
    assert server.host in str(info.value)

    server.start()  # same storage, same port
    with pytest.raises(RegistryStatusError) as missing:
        client.resolve("crash/app", "latest")  # the tag was never written
    assert missing.value.status == 404
    assert client.has_blob("crash/app", small_desc)
    push(io.BytesIO(big))
    assert client.resolve("crash/app", "latest") == mdesc
    assert client.get_blob("crash/app", big_desc) == big


@pytest.mark.parametrize("drop", [False, True], ids=["503-429", "dropped-connection"])
def test_retries_through_a_flaky_proxy(registry: RegistryServer, flaky_proxy: Any, drop: bool) -> None:
    proxy: FlakyProxy = flaky_proxy(drop=drop)
    client = RegistryClient(proxy.host, plain_http=True, retry=FAST_RETRY)
    repo = f"flaky/{'drop' if drop else 'status'}"
    desc, manifest, blobs = push_image(client, repo)
    assert client.get_manifest(repo, "v1")[0] == manifest
    assert client.get_blob(repo, blobs[1]) == b"layer-bytes"
    assert proxy.failures >= 8  # two refusals per request made
    direct = client_for(registry)
    assert direct.get_manifest(repo, "v1")[0] == manifest


def test_retries_are_bounded(registry: RegistryServer, flaky_proxy: Any) -> None:
    proxy: FlakyProxy = flaky_proxy()
    client = RegistryClient(proxy.host, plain_http=True,
                            retry=RetryPolicy(attempts=1, initial_delay=0.01))
    with pytest.raises(RegistryError) as info:
        client.resolve("flaky/none", "v1")
    message = str(info.value)
    assert "HTTP 503" in message and proxy.host in message and "1 attempt" in message
    assert "\n" not in message


# ---------------------------------------------------------------------------------------------
# ImageSource / ImageSink


def test_source_and_sink_copy_within_and_across_registries(registry: RegistryServer,
                                                           registry_factory: Any) -> None:
    client = client_for(registry)
    layer = payload(70_000, seed=6)
    desc, manifest, blobs = push_image(client, "copy/src", "v1", layer=layer)
    source = RegistrySource(client, "copy/src", "v1")
    assert isinstance(source, ImageSource)
    assert source.resolve() == desc
    assert source.read_blob(desc) == manifest

    def copy(sink: RegistrySink) -> None:
        assert isinstance(sink, ImageSink)
        for blob in blobs:
            sink.copy_blob(blob, source)
        sink.write_manifest(desc, source.read_blob(desc))
        sink.tag(desc)

    same = RegistrySink(client, "copy/dst", "copied")
    seen = record(client)
    copy(same)
    assert not any(m == "PATCH" for m, _ in seen)  # mounted, not streamed
    assert client.resolve("copy/dst", "copied") == desc

    other = registry_factory()
    other_client = client_for(other)
    copy(RegistrySink(other_client, "copy/dst", "copied"))
    assert other_client.get_manifest("copy/dst", "copied")[0] == manifest
    assert other_client.get_blob("copy/dst", blobs[1]) == layer


def test_skopeo_reads_our_exact_manifest_bytes(registry: RegistryServer) -> None:
    skopeo = shutil.which("skopeo")
    assert skopeo, "skopeo is not installed (apt-get install -y skopeo)"
    client = client_for(registry)
    desc, manifest, _ = push_image(client, "skopeo/app", "v1")
    env = dict(os.environ, HOME=str(registry.root))
    out = subprocess.run([skopeo, "inspect", "--raw", "--tls-verify=false",
                          f"docker://{registry.host}/skopeo/app:v1"],
                         capture_output=True, check=True, timeout=60, env=env).stdout
    assert out == manifest

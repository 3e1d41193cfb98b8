# ruff: noqa: F811  (pytest fixtures imported from registry_fixtures are parameters here)
"""Blob transfers that lose their connection, against Debian's real docker-registry through a
fault-injecting proxy (tests/integration/fault_proxy.py): an upload whose PATCH (or PUT) is cut
off goes on where the registry stands, or in a new session when the registry dropped the old
one; a download whose body ends early resumes with a Range request. The data must come out
exact, and a fault that never clears must end in one clear error once the retry budget is spent."""

from __future__ import annotations

import io
import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from socikit.cli import app
from socikit.errors import DigestMismatchError, RegistryError
from socikit.oci import mediatypes as mt
from socikit.oci.descriptor import Descriptor, descriptor_for
from socikit.registry import RegistryClient, RegistrySink, RegistrySource, RetryPolicy
from tests.integration.fault_proxy import Fault, FaultProxy
from tests.integration.registry_fixtures import RegistryServer, registry  # noqa: F401
from tests.vectors import all_vectors

pytestmark = [pytest.mark.integration, pytest.mark.registry]

FAST_RETRY = RetryPolicy(attempts=4, initial_delay=0.01, max_delay=0.05, deadline=10.0)
CHUNK = 64 * 1024
MULTI = next(v for v in all_vectors() if v.name == "multi-platform")


@pytest.fixture
def fault_proxy(registry: RegistryServer) -> Iterator[Callable[..., FaultProxy]]:
    """Start fault proxies in front of the module's registry; all stopped at teardown."""
    proxies: list[FaultProxy] = []

    def start(*faults: Fault) -> FaultProxy:
        proxy = FaultProxy(registry.port, list(faults))
        proxies.append(proxy)
        return proxy

    try:
        yield start
    finally:
        for proxy in proxies:
            proxy.stop()


def payload(size: int, seed: int) -> bytes:
    block = bytes((i * 131 + seed * 7) & 0xFF for i in range(4093))
    return (block * (size // len(block) + 1))[:size]


def direct(registry: RegistryServer) -> RegistryClient:
    return RegistryClient(registry.host, plain_http=True, retry=FAST_RETRY)


def via(proxy: FaultProxy) -> RegistryClient:
    return RegistryClient(proxy.host, plain_http=True, retry=FAST_RETRY)


class _OneWayStream(io.RawIOBase):
    """A stream that cannot seek back (like a blob being read from another registry)."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        return self._data.readinto(buffer)


# ---------------------------------------------------------------------------------------------
# uploads


def test_patch_dropped_before_the_registry_saw_it_resumes_at_the_reported_offset(
        registry: RegistryServer, fault_proxy: Callable[..., FaultProxy]) -> None:
    """The third PATCH is cut off before any of it reaches the registry: the client asks the
    upload URL where it stands (`Range: 0-<last>`) and sends the chunk again from there, in the
    same session."""
    data = payload(5 * CHUNK + 1234, seed=1)
    desc = descriptor_for(data, mt.MEDIA_TYPE_OCI_LAYER_GZIP)
    proxy = fault_proxy(Fault("PATCH", "drop-request", nth=3))
    assert via(proxy).push_blob("faults/resume", desc, io.BytesIO(data), chunk_size=CHUNK) is True

    assert direct(registry).get_blob("faults/resume", desc) == data
    patches = proxy.requests("PATCH")
    assert [p.fault for p in patches].count("drop-request") == 1
    assert [p.headers["content-range"] for p in patches] == [
        "0-65535", "65536-131071", "131072-196607", "131072-196607", "196608-262143",
        "262144-327679", f"327680-{len(data) - 1}"]
    assert len(proxy.requests("POST")) == 1  # one session throughout
    status = [r for r in proxy.requests("GET", "/blobs/uploads/")]
    assert len(status) == 1


@pytest.mark.parametrize("nth", [1, 3], ids=["first-chunk", "third-chunk"])
def test_patch_dropped_while_the_registry_was_receiving_it(
        registry: RegistryServer, fault_proxy: Callable[..., FaultProxy], nth: int) -> None:
    """Half of a PATCH reaches the registry before the connection drops. docker-registry then
    cancels the session on the next request (its recorded offset no longer matches), so the
    client starts a new session and sends the blob from its first byte."""
    data = payload(4 * CHUNK + 99, seed=2 + nth)
    desc = descriptor_for(data, mt.MEDIA_TYPE_OCI_LAYER_GZIP)
    proxy = fault_proxy(Fault("PATCH", "drop-forwarded", nth=nth))
    assert via(proxy).push_blob(f"faults/partial{nth}", desc, io.BytesIO(data), chunk_size=CHUNK) is True

    assert direct(registry).get_blob(f"faults/partial{nth}", desc) == data
    assert [p.fault for p in proxy.requests("PATCH")].count("drop-forwarded") == 1
    assert len(proxy.requests("POST")) == 2  # the lost session and its replacement
    assert len(proxy.requests("DELETE", "/blobs/uploads/")) == 1  # the lost one is cancelled


def test_monolithic_put_dropped_mid_body_starts_a_new_session(
        registry: RegistryServer, fault_proxy: Callable[..., FaultProxy]) -> None:
    data = payload(300_000, seed=5)
    desc = descriptor_for(data, mt.MEDIA_TYPE_OCI_LAYER_GZIP)
    proxy = fault_proxy(Fault("PUT", "drop-forwarded", path="/blobs/uploads/"))
    assert via(proxy).push_blob("faults/put", desc, data) is True
    assert direct(registry).get_blob("faults/put", desc) == data
    assert [p.fault for p in proxy.requests("PUT")][0] == "drop-forwarded"


def test_lost_session_with_a_stream_that_cannot_seek_back_is_one_clear_error(
        registry: RegistryServer, fault_proxy: Callable[..., FaultProxy]) -> None:
    data = payload(3 * CHUNK, seed=6)
    desc = descriptor_for(data, mt.MEDIA_TYPE_OCI_LAYER_GZIP)
    proxy = fault_proxy(Fault("PATCH", "drop-forwarded", nth=2))
    with pytest.raises(RegistryError) as info:
        via(proxy).push_blob("faults/oneway", desc, io.BufferedReader(_OneWayStream(data)),
                             chunk_size=CHUNK)
    message = str(info.value)
    assert "\n" not in message and proxy.host in message
    assert "cannot be read again from its start" in message
    assert not direct(registry).has_blob("faults/oneway", desc)


def test_sink_copy_reopens_its_source_after_a_lost_session(
        registry: RegistryServer, fault_proxy: Callable[..., FaultProxy]) -> None:
    """A registry→registry copy streams the blob (not seekable); when the destination loses the
    upload session the sink opens the source again and the copy completes."""
    data = payload(3 * CHUNK + 7, seed=7)
    desc = descriptor_for(data, mt.MEDIA_TYPE_OCI_LAYER_GZIP)
    direct(registry).push_blob("faults/copy-src", desc, data)
    source = RegistrySource(direct(registry), "faults/copy-src", "latest")
    proxy = fault_proxy(Fault("PATCH", "drop-forwarded"))  # one 8 MiB chunk: the first PATCH
    sink = RegistrySink(via(proxy), "faults/copy-dst", None)
    sink.copy_blob(desc, source)  # the proxy's host differs from the source's: no mount, a stream
    assert direct(registry).get_blob("faults/copy-dst", desc) == data
    assert len(proxy.requests("POST")) == 2


def test_persistent_patch_failure_gives_up_with_one_error(
        registry: RegistryServer, fault_proxy: Callable[..., FaultProxy]) -> None:
    data = payload(3 * CHUNK, seed=8)
    desc = descriptor_for(data, mt.MEDIA_TYPE_OCI_LAYER_GZIP)
    proxy = fault_proxy(Fault("PATCH", "drop-request", nth=2, times=0))
    with pytest.raises(RegistryError) as info:
        via(proxy).push_blob("faults/never", desc, io.BytesIO(data), chunk_size=CHUNK)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"push blob {proxy.host}/faults/never@{desc.digest}: ")
    assert message.endswith(f"gave up after {FAST_RETRY.attempts} attempt(s)")
    assert len(proxy.requests("PATCH")) == 1 + FAST_RETRY.attempts
    assert proxy.requests("DELETE", "/blobs/uploads/")  # the session is cancelled
    assert not direct(registry).has_blob("faults/never", desc)


# ---------------------------------------------------------------------------------------------
# downloads


def test_download_cut_short_resumes_with_a_range_request(
        registry: RegistryServer, fault_proxy: Callable[..., FaultProxy]) -> None:
    data = payload(400_000, seed=9)
    desc = descriptor_for(data, mt.MEDIA_TYPE_OCI_LAYER_GZIP)
    direct(registry).push_blob("faults/pull", desc, data)
    proxy = fault_proxy(Fault("GET", "cut-response", path="/blobs/sha256:", keep=150_000))
    with via(proxy).get_blob_stream("faults/pull", desc) as stream:
        assert stream.read() == data
    gets = proxy.requests("GET", "/blobs/sha256:")
    assert [g.fault for g in gets] == ["cut-response", None]
    assert "range" not in gets[0].headers
    assert gets[1].headers["range"] == f"bytes=150000-{len(data) - 1}"


def test_range_read_cut_short_resumes(registry: RegistryServer,
                                      fault_proxy: Callable[..., FaultProxy]) -> None:
    data = payload(200_000, seed=10)
    desc = descriptor_for(data, mt.MEDIA_TYPE_OCI_LAYER_GZIP)
    direct(registry).push_blob("faults/range", desc, data)
    proxy = fault_proxy(Fault("GET", "cut-response", path="/blobs/sha256:", keep=1000))
    assert via(proxy).get_blob_range("faults/range", desc.digest, 5000, 105_000) == data[5000:105_000]
    assert [g.headers["range"] for g in proxy.requests("GET", "/blobs/sha256:")] == [
        "bytes=5000-104999", "bytes=6000-104999"]


def test_download_that_keeps_failing_gives_up_with_one_error(
        registry: RegistryServer, fault_proxy: Callable[..., FaultProxy]) -> None:
    data = payload(100_000, seed=11)
    desc = descriptor_for(data, mt.MEDIA_TYPE_OCI_LAYER_GZIP)
    direct(registry).push_blob("faults/pull-never", desc, data)
    proxy = fault_proxy(Fault("GET", "cut-response", path="/blobs/sha256:", times=0, keep=0))
    with pytest.raises(RegistryError) as info:
        via(proxy).get_blob("faults/pull-never", desc)
    message = str(info.value)
    assert "\n" not in message and not isinstance(info.value, DigestMismatchError)
    assert message.startswith(f"get blob {proxy.host}/faults/pull-never@{desc.digest}: ")
    assert message.endswith(f"gave up after {FAST_RETRY.attempts} attempt(s)")
    assert len(proxy.requests("GET", "/blobs/sha256:")) == FAST_RETRY.attempts


def test_wrong_sized_answer_is_a_digest_mismatch_not_a_retry(registry: RegistryServer) -> None:
    data = payload(10_000, seed=12)
    desc = descriptor_for(data, mt.MEDIA_TYPE_OCI_LAYER_GZIP)
    client = direct(registry)
    client.push_blob("faults/size", desc, data)
    wrong = Descriptor(desc.media_type, desc.digest, desc.size + 5)
    with pytest.raises(DigestMismatchError) as info:
        client.get_blob("faults/size", wrong)
    assert str(info.value) == f"blob {registry.host}/faults/size@{desc.digest}: 10000 bytes, expected 10005"


# ---------------------------------------------------------------------------------------------
# whole converts


def _convert(*args: str, root: Path) -> Result:
    return CliRunner().invoke(app, ["convert", "--span-size", "65536", "--min-layer-size", "0",
                                    "--progress", "none", "--plain-http", "--root", str(root), *args])


def _raw_manifest(host: str, ref: str) -> bytes:
    return subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{host}/{ref}"],
                          check=True, capture_output=True, timeout=60).stdout


def test_convert_survives_a_dropped_upload(registry: RegistryServer,
                                           fault_proxy: Callable[..., FaultProxy], tmp_path: Path) -> None:
    """The first PATCH and the first PUT of a convert's blob uploads lose their connection
    half-way: the convert still exits 0 and writes the reference's exact bytes."""
    # The proxy cannot relay a chunked body (the layers streamed while they are indexed): those
    # fail at once instead of waiting out its 30 s upstream timeout, and the layers are copied
    # the ordinary way, through the two faults under test.
    proxy = fault_proxy(Fault("PATCH", "drop-forwarded", path="/blobs/uploads/", chunked=False),
                        Fault("PUT", "drop-forwarded", path="/blobs/uploads/", chunked=False),
                        Fault("PATCH", "drop-request", chunked=True, times=0))
    result = _convert("--all-platforms", f"oci:{MULTI.input_dir}:latest", f"{proxy.host}/faults/conv:1",
                      root=tmp_path / "root")
    assert result.exit_code == 0, result.output
    assert [f.applied for f in proxy.faults][:2] == [1, 1]  # one PATCH and one PUT were cut off
    expected = (MULTI.path / "expected-current" / "converted-index.json").read_bytes()
    assert _raw_manifest(registry.host, "faults/conv:1") == expected
    client = direct(registry)
    for entry in json.loads(expected)["manifests"]:
        manifest, _ = client.get_manifest("faults/conv", entry["digest"])
        for blob in [json.loads(manifest)["config"], *json.loads(manifest)["layers"]]:
            client.get_blob("faults/conv", Descriptor.from_json(blob))  # digest-verified read


def test_convert_survives_a_download_cut_short(registry: RegistryServer,
                                               fault_proxy: Callable[..., FaultProxy], tmp_path: Path) -> None:
    """A convert reading its source through a proxy that cuts the first blob download short
    resumes it and writes the reference's exact bytes."""
    setup = _convert("--v1", "--all-platforms", "--no-validate", f"oci:{MULTI.input_dir}:latest",
                     f"{registry.host}/faults/src:1", root=tmp_path / "setup")
    assert setup.exit_code == 0, setup.output
    proxy = fault_proxy(Fault("GET", "cut-response", path="/blobs/sha256:", keep=100))
    result = _convert("--all-platforms", f"{proxy.host}/faults/src:1", f"{registry.host}/faults/dst:1",
                      root=tmp_path / "root")
    assert result.exit_code == 0, result.output
    assert proxy.faults[0].applied == 1
    gets = proxy.requests("GET", "/blobs/sha256:")
    cut = next(g for g in gets if g.fault == "cut-response")
    resumed = [g for g in gets if g.target == cut.target and g.headers.get("range", "").startswith("bytes=100-")]
    assert len(resumed) == 1
    expected = (MULTI.path / "expected-current" / "converted-index.json").read_bytes()
    assert _raw_manifest(registry.host, "faults/dst:1") == expected


def test_manifest_puts_that_never_arrive_leave_no_tag(registry: RegistryServer,
                                                       fault_proxy: Callable[..., FaultProxy], tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The SOCI indexes and image manifests go up at once; when none of them gets through, the
    conversion ends in one error and the tag is never written."""
    import socikit.registry.client

    monkeypatch.setattr(socikit.registry.client, "RetryPolicy", lambda: FAST_RETRY)  # the CLI's clients
    # The proxy cannot relay a chunked body (the layers streamed while they are indexed): those
    # fail at once, and the layers are copied the ordinary way.
    proxy = fault_proxy(Fault("PUT", "drop-request", path="/manifests/sha256:", times=0),
                        Fault("PATCH", "drop-request", chunked=True, times=0))
    result = _convert("--all-platforms", f"oci:{MULTI.input_dir}:latest", f"{proxy.host}/faults/noput:1",
                      root=tmp_path / "root")
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert [line for line in result.output.splitlines() if line.startswith("error:")] != []
    assert proxy.faults[0].applied >= 4  # two SOCI indexes and two image manifests, each tried
    tags = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{registry.host}/faults/noput:1"],
                          capture_output=True, timeout=60)  # fmt: skip
    assert tags.returncode != 0  # no tag
    assert not any(r.method == "PUT" and r.target.endswith("/manifests/1") for r in proxy.log)

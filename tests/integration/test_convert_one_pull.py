# ruff: noqa: F811  (pytest fixtures imported by name)
"""A registry conversion pulls each layer once: the stream that indexes a layer also uploads it
to another registry (read back from both registries' access logs), a conversion within one
repository uploads no layer at all, one to another registry mounts what that registry already
holds, and an upload that fails or a layer that is skipped falls back to the ordinary copy."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.cli import run_socikit as socikit
from tests.integration.fault_proxy import Fault, FaultProxy
from tests.integration.registry_fixtures import RegistryServer, free_port, registry_factory  # noqa: F401
from tests.integration.test_cli_registry import (
    GOLDEN_INDEX,
    MULTI,
    SMALL,
    LoggedRegistry,
    check_write_order,
    push_original,
    raw_manifest,
    skopeo,
)
from tests.vectors import CONFORMANCE

pytestmark = [pytest.mark.integration, pytest.mark.registry]
CONVERT = ["convert", "--plain-http", *SMALL, "--all-platforms", "--progress", "none", "--no-cache"]


def _layers(layout: Path) -> set[str]:
    """Layer digests of every manifest of an OCI layout's image."""
    blobs = layout / "blobs" / "sha256"
    found: set[str] = set()
    index = json.loads((layout / "index.json").read_text())
    pending = [entry["digest"] for entry in index["manifests"]]
    while pending:
        document = json.loads((blobs / pending.pop().split(":")[1]).read_text())
        pending += [entry["digest"] for entry in document.get("manifests", [])]
        found |= {layer["digest"] for layer in document.get("layers", [])}
    return found


LAYERS = _layers(MULTI.input_dir)


@pytest.fixture
def logged_pair(tmp_path: Path) -> Iterator[tuple[LoggedRegistry, LoggedRegistry]]:
    servers = [LoggedRegistry(root=tmp_path / name, port=free_port()) for name in ("src", "dst")]
    try:
        for server in servers:
            server.root.mkdir()
            server.start()
        yield servers[0], servers[1]
    finally:
        for server in servers:
            server.stop()


def _pulls(server: LoggedRegistry, repo: str, digest: str) -> int:
    return sum(1 for r in server.requests(repo)
               if r.method == "GET" and r.path == f"/v2/{repo}/blobs/{digest}" and r.status in (200, 206))


def _verify_copy(server: RegistryServer, ref: str, tmp_path: Path) -> None:
    """skopeo pulls the whole result and checks every digest on the way."""
    skopeo("copy", "--all", "--src-tls-verify=false", f"docker://{ref}", f"oci:{tmp_path / 'copied'}:x")
    assert raw_manifest(server, ref) == GOLDEN_INDEX


def test_registry_to_another_registry_pulls_each_layer_once(logged_pair, tmp_path: Path) -> None:
    src, dst = logged_pair
    assert len(LAYERS) == 3
    result = socikit(*CONVERT, push_original(src, "app"), f"{dst.host}/app:1", root=tmp_path / "r")
    assert result.returncode == 0, result.stderr
    assert {digest: _pulls(src, "app", digest) for digest in LAYERS} == dict.fromkeys(LAYERS, 1)
    writes = check_write_order(dst, "app", "1")
    completed = [r.param.get("digest") for r in writes if r.method == "PUT" and r.status == 201]
    assert {digest: completed.count(digest) for digest in LAYERS} == dict.fromkeys(LAYERS, 1)
    streamed = [r for r in writes if r.method == "PATCH"]
    assert len(streamed) >= len(LAYERS)
    _verify_copy(dst, f"{dst.host}/app:1", tmp_path)


def test_same_repository_convert_uploads_no_layer(logged_pair, tmp_path: Path) -> None:
    src, _ = logged_pair
    ref = push_original(src, "same")
    before = len(src.requests("same"))
    result = socikit(*CONVERT, ref, f"{src.host}/same:1-soci", root=tmp_path / "r")
    assert result.returncode == 0, result.stderr
    check_write_order(src, "same", "1-soci")
    writes = [r for r in src.requests("same")[before:] if r.method not in ("GET", "HEAD")]
    mentioned = {r.param.get("digest") for r in writes} | {r.param.get("mount") for r in writes}
    assert not mentioned & LAYERS
    assert not [r for r in writes if r.method == "PATCH"]  # ztocs go up whole; the configs are there
    assert {digest: _pulls(src, "same", digest) for digest in LAYERS} == dict.fromkeys(LAYERS, 1)
    _verify_copy(src, f"{src.host}/same:1-soci", tmp_path)


def test_another_registry_mounts_what_it_holds(logged_pair, tmp_path: Path) -> None:
    src, dst = logged_pair
    push_original(dst, "app")  # the destination registry already has the image under the same name
    result = socikit(*CONVERT, push_original(src, "app"), f"{dst.host}/other:1", root=tmp_path / "r")
    assert result.returncode == 0, result.stderr
    writes = check_write_order(dst, "other", "1")  # "other" only ever saw this conversion
    mounted = {r.param.get("mount") for r in writes if r.method == "POST" and r.status == 201}
    assert LAYERS <= mounted
    assert not {r.param.get("digest") for r in writes if r.method == "PUT"} & LAYERS
    assert {digest: _pulls(src, "app", digest) for digest in LAYERS} == dict.fromkeys(LAYERS, 1)


def test_a_failed_streamed_upload_falls_back_to_a_copy(registry_factory, logged_pair, tmp_path: Path) -> None:
    src, _ = logged_pair
    dst = registry_factory()
    proxy = FaultProxy(dst.port, [Fault("PATCH", "drop-request", path="/blobs/uploads/", times=0, chunked=True)])
    try:
        result = socikit(*CONVERT, push_original(src, "app"), f"{proxy.host}/app:1", root=tmp_path / "r")
        assert result.returncode == 0, result.stderr
        dropped = [r for r in proxy.log if r.fault == "drop-request"]
        assert len(dropped) >= len(LAYERS)  # every layer's streamed upload was broken
    finally:
        proxy.stop()
    # Each layer was read again by the ordinary copy after indexing, and arrived whole.
    assert {digest: _pulls(src, "app", digest) for digest in LAYERS} == dict.fromkeys(LAYERS, 2)
    _verify_copy(dst, f"{dst.host}/app:1", tmp_path)


def test_a_layer_that_cannot_be_indexed_cancels_its_streamed_upload(logged_pair, tmp_path: Path) -> None:
    src, dst = logged_pair
    bad = CONFORMANCE / "bad-inputs" / "pax-global-header" / "input"
    skopeo("copy", "--dest-tls-verify=false", f"oci:{bad}:latest", f"docker://{src.host}/bad:1")
    result = socikit(*CONVERT, f"{src.host}/bad:1", f"{dst.host}/bad:1", root=tmp_path / "r")
    assert result.returncode == 1 and "no layer was indexed" in result.stderr, result.stderr
    writes = [r for r in dst.requests("bad") if r.method not in ("GET", "HEAD")]
    assert [r for r in writes if r.method == "DELETE" and "/blobs/uploads/" in r.path]  # the session is cancelled
    assert not [r for r in writes if "/manifests/" in r.path]  # no manifest and no tag
    assert requests.get(f"{dst.url}/v2/bad/tags/list", timeout=10).json().get("tags") in (None, [])


def test_registry_to_an_oci_layout_pulls_each_layer_once(logged_pair, tmp_path: Path) -> None:
    """The stream that indexes a layer also writes it into the layout (staged, then renamed into
    place once the conversion writes its blobs)."""
    src, _ = logged_pair
    out = tmp_path / "out"
    result = socikit(*CONVERT, push_original(src, "app"), f"oci:{out}:soci", root=tmp_path / "r")
    assert result.returncode == 0, result.stderr
    assert {digest: _pulls(src, "app", digest) for digest in LAYERS} == dict.fromkeys(LAYERS, 1)
    assert not [p.name for p in (out / "blobs" / "sha256").iterdir() if p.name.startswith(".")]
    assert LAYERS <= _layers(out)  # with the ztocs the SOCI index lists as its layers
    assert all((out / "blobs" / "sha256" / digest.split(":")[1]).is_file() for digest in LAYERS)
    skopeo("copy", "--all", f"oci:{out}:soci", f"oci:{tmp_path / 'copied'}:x")  # checks every digest
    valid = socikit("validate", f"oci:{out}:soci")
    assert valid.returncode == 0, valid.stdout + valid.stderr


def test_registry_to_an_oci_archive_pulls_each_layer_once(logged_pair, tmp_path: Path) -> None:
    src, _ = logged_pair
    out = tmp_path / "out.tar"
    result = socikit(*CONVERT, push_original(src, "app"), f"oci-archive:{out}:soci", root=tmp_path / "r")
    assert result.returncode == 0, result.stderr
    assert {digest: _pulls(src, "app", digest) for digest in LAYERS} == dict.fromkeys(LAYERS, 1)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out.tar")] == []  # temp layout gone
    skopeo("copy", "--all", f"oci-archive:{out}:soci", f"oci:{tmp_path / 'copied'}:x")  # checks every digest
    assert LAYERS <= _layers(tmp_path / "copied")


def test_a_failed_conversion_to_a_layout_leaves_no_staged_layer(logged_pair, tmp_path: Path) -> None:
    src, _ = logged_pair
    bad = CONFORMANCE / "bad-inputs" / "pax-global-header" / "input"
    skopeo("copy", "--dest-tls-verify=false", f"oci:{bad}:latest", f"docker://{src.host}/bad:1")
    out = tmp_path / "out"
    result = socikit(*CONVERT, f"{src.host}/bad:1", f"oci:{out}:soci", root=tmp_path / "r")
    assert result.returncode == 1 and "no layer was indexed" in result.stderr, result.stderr
    assert not out.exists()  # the layout the conversion created (to stage into) is undone

# ruff: noqa: F811  (pytest fixtures imported by name)
"""`socikit store` as Debian 12's podman 4.3.1 uses it (containers/image 5.23, containers/storage
1.43): the additional layer store protocol pinned against the real podman, a loopback registry
and a SOCI image socikit converted, with the store serving over FUSE (`layer_store`) or, for
the tests that change what podman finds, as plain directories (`static_layer_store`); then what
the store itself shows: lazy pulls that fetch only what containers read, use counts back to zero
after `podman rmi`, restarts with the registry down.

podman 4.3.1 only speaks the blob-digest form. No podman >= 5.1 or CRI-O >= 1.31 is available
here, so the TOC-digest form (directories named by ztoc digest, its `info`) is tested against the
facts: `test_the_toc_digest_form` here, tests/unit/test_store_layout.py and
tests/integration/test_store_resolve.py.
"""

from __future__ import annotations

import collections
import errno
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import signal
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from socikit.cli import app
from socikit.oci.descriptor import Descriptor
from socikit.registry.client import RegistryClient
from socikit.store import layout
from tests.integration.podman_fixtures import (  # noqa: F401
    RUN_FLAGS,
    FuseLayerStore,
    PodmanStorage,
    RecordingProxy,
    SociImage,
    StaticLayerStore,
    StoreCall,
    build_soci_image,
    check_listing_is_meaningful,
    fuse_layer_store,
    layer_store,
    podman_storages,
    podman_warnings,
    resolver_for,
    static_layer_store,
    trace_store_calls,
)
from tests.integration.registry_fixtures import RegistryServer, registry, registry_factory  # noqa: F401

pytestmark = [pytest.mark.integration, pytest.mark.registry, pytest.mark.slow]

Storages = Callable[..., PodmanStorage]


@pytest.fixture(scope="module")
def proxy(registry: RegistryServer) -> Iterator[RecordingProxy]:
    recording = RecordingProxy(registry)
    try:
        yield recording
    finally:
        recording.stop()


@pytest.fixture(scope="module")
def image(registry: RegistryServer, tmp_path_factory: pytest.TempPathFactory) -> SociImage:
    return build_soci_image(registry, tmp_path_factory.mktemp("podman-image"), "podman/app")


@pytest.fixture(scope="module")
def expected_listing(image: SociImage, proxy: RecordingProxy, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """What a container of the image lists after a plain pull (no additional layer store)."""
    storage = PodmanStorage(tmp_path_factory.mktemp("podman-plain") / "storage")
    storage.write_config()
    try:
        ref = image.ref(proxy.host, "soci")
        storage.pull(ref)
        listing = storage.listing(ref)
        check_listing_is_meaningful(listing)
        return listing
    finally:
        storage.cleanup()


def _stocked(layer_store: StaticLayerStore | FuseLayerStore, image: SociImage, ref: str,
             proxy: RecordingProxy) -> list[str]:
    """The store made ready for `ref` (every layer of the SOCI image is indexed, so served)."""
    with resolver_for(proxy.host) as resolver:
        served = layer_store.add_image(image, ref, resolver)
    assert served == list(image.layer_digests)
    proxy.clear()
    return served


def _by_layer(calls: list[StoreCall], op: str) -> collections.Counter[str]:
    return collections.Counter(c.digest for c in calls if c.op == op)


def test_podman_info_shows_the_store_only_from_storage_conf(podman_storages: Storages,
                                                            layer_store: FuseLayerStore) -> None:
    storage = podman_storages(layer_store.root)
    options = storage.info()["store"]["graphOptions"]
    assert options == {"overlay.additionallayerstore": f"{layer_store.root}:ref"}
    # podman 4.3.1: --root/--runroot on the command line drop the store of storage.conf (and a
    # --runroot must be shorter than 51 characters)
    short = Path(tempfile.mkdtemp(prefix="sk-podman-", dir="/tmp"))
    try:
        dropped = storage.podman("--root", str(short / "graph"), "--runroot", str(short / "run"),
                                 "info", "--format", "json")
        assert "overlay.additionallayerstore" not in json.loads(dropped.stdout)["store"]["graphOptions"]
    finally:
        PodmanStorage(short).cleanup()


def test_pull_takes_every_layer_from_the_store(podman_storages: Storages, layer_store: FuseLayerStore,
                                               image: SociImage, proxy: RecordingProxy) -> None:
    ref = image.ref(proxy.host, "soci")
    _stocked(layer_store, image, ref, proxy)
    storage = podman_storages(layer_store.root)
    code, text = storage.pull_in_terminal(ref)
    assert code == 0, text
    lines = {m.group(1): m.group(2).strip() for m in re.finditer(r"Copying blob ([0-9a-f]{12}) ([^\r\n\x1b]*)", text)
             if m.group(2).strip() not in ("", ".")}
    assert lines == {d.split(":")[1][:12]: "skipped: already exists" for d in image.layer_digests}
    # no layer blob came from the registry: podman fetched the config only
    gets = proxy.blob_gets()
    assert not set(gets) & set(image.layer_digests) and len(gets) == 1
    # every podman layer is a symlink into the store's layer directory
    records = {r["compressed-diff-digest"]: r for r in storage.layer_records()}
    assert set(records) == set(image.layer_digests)
    for digest in image.layer_digests:
        directory = storage.graphroot / "overlay" / records[digest]["id"]
        store_dir = layer_store.layer_dir(ref, digest)
        assert (directory / "diff").readlink() == store_dir / "diff"
        assert (directory / "additionallayer").read_text() == str(store_dir)


def test_lookup_paths_are_base64_of_the_reference_then_the_blob_digest(
        podman_storages: Storages, layer_store: FuseLayerStore, image: SociImage, proxy: RecordingProxy,
        tmp_path: Path) -> None:
    ref = image.ref(proxy.host, "soci")
    _stocked(layer_store, image, ref, proxy)
    storage = podman_storages(layer_store.root)
    storage.pull(ref, trace=tmp_path / "trace")
    calls = trace_store_calls(tmp_path / "trace", layer_store.root)
    assert {c.reference for c in calls} == {ref}  # one directory level: base64 of the reference
    stats = {(c.digest, c.name) for c in calls if c.op == "stat" and c.result == "ok"}
    assert stats >= {(d, n) for d in image.layer_digests for n in layout.LAYER_FILES}
    assert {c.digest for c in calls} == set(image.layer_digests)  # only blob digests, never TOC digests
    opened = collections.Counter((c.digest, c.name) for c in calls if c.op == "open")
    # `info` is read twice per layer (at lookup and when the layer is created); `blob` not at all
    assert opened == {(d, "info"): 2 for d in image.layer_digests}


def test_a_pull_by_digest_looks_up_the_digest_reference(podman_storages: Storages, layer_store: FuseLayerStore,
                                                        image: SociImage, proxy: RecordingProxy,
                                                        tmp_path: Path) -> None:
    with RegistryClient(proxy.host, plain_http=True) as client:
        index_digest = client.resolve(image.repository, "soci").digest
    ref = f"{proxy.host}/{image.repository}@{index_digest}"
    _stocked(layer_store, image, ref, proxy)
    storage = podman_storages(layer_store.root)
    storage.pull(ref, trace=tmp_path / "trace")
    assert {c.reference for c in trace_store_calls(tmp_path / "trace", layer_store.root)} == {ref}
    assert not set(proxy.blob_gets()) & set(image.layer_digests)
    assert all((d / "diff").is_symlink() for d in storage.layer_dirs().values())


def test_a_container_lists_the_same_files_as_after_a_plain_pull(
        podman_storages: Storages, layer_store: FuseLayerStore, image: SociImage, proxy: RecordingProxy,
        expected_listing: list[str], tmp_path: Path) -> None:
    ref = image.ref(proxy.host, "soci")
    _stocked(layer_store, image, ref, proxy)
    storage = podman_storages(layer_store.root)
    storage.pull(ref)
    assert storage.listing(ref) == expected_listing
    # containers/storage recorded the same layers (IDs, digests, sizes) as when it downloads them
    plain = podman_storages()
    plain.pull(ref)
    keys = ("id", "parent", "compressed-diff-digest", "compressed-size", "diff-digest", "diff-size", "compression")
    assert [{k: r.get(k) for k in keys} for r in storage.layer_records()] == \
        [{k: r.get(k) for k in keys} for r in plain.layer_records()]


def test_use_and_release_as_podman_sends_them(podman_storages: Storages, layer_store: FuseLayerStore,
                                               image: SociImage, proxy: RecordingProxy, tmp_path: Path) -> None:
    ref = image.ref(proxy.host, "soci")
    _stocked(layer_store, image, ref, proxy)
    storage = podman_storages(layer_store.root)
    every = collections.Counter(image.layer_digests)

    pull = storage.pull(ref, trace=tmp_path / "pull")
    calls = trace_store_calls(tmp_path / "pull", layer_store.root)
    # a use at lookup and one when the layer is created from the store; the lookup's release at the end
    assert _by_layer(calls, "use") == every + every
    assert _by_layer(calls, "release") == every
    assert {c.result for c in calls if c.op == "use"} == {layer_store.use_result}
    assert {c.result for c in calls if c.op == "release"} == {layer_store.release_result}
    uses, releases = podman_warnings(pull.stderr)
    assert len(uses) == sum(1 for c in calls if c.op == "use" and c.result != "ENOENT")
    assert len(releases) == sum(1 for c in calls if c.op == "release" and c.result != "ENOENT")

    run = storage.podman("run", "--rm", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024",
                         "--network", "none", ref, "/bin/cat", "/opt/opaque/new", trace=tmp_path / "run")
    assert run.stdout == "new"
    assert not [c for c in trace_store_calls(tmp_path / "run", layer_store.root) if c.op in ("use", "release")]

    storage.podman("rmi", ref, trace=tmp_path / "rmi")
    calls = trace_store_calls(tmp_path / "rmi", layer_store.root)
    assert _by_layer(calls, "release") == every and not _by_layer(calls, "use")
    assert not storage.layer_records()


def test_a_use_answered_enoent_is_taken_silently(podman_storages: Storages, static_layer_store: StaticLayerStore,
                                                 image: SociImage, proxy: RecordingProxy, tmp_path: Path) -> None:
    """A store that counts answers ENOENT: here a dangling `use` symlink gives that answer."""
    ref = image.ref(proxy.host, "soci")
    _stocked(static_layer_store, image, ref, proxy)
    for digest in image.layer_digests:
        (static_layer_store.layer_dir(ref, digest) / "use").symlink_to(tmp_path / "nowhere" / "use")
    storage = podman_storages(static_layer_store.root)
    pull = storage.pull(ref, trace=tmp_path / "pull")
    calls = trace_store_calls(tmp_path / "pull", static_layer_store.root)
    assert {c.result for c in calls if c.op == "use"} == {"ENOENT"}
    assert not [c for c in calls if c.op == "unuse"]
    uses, releases = podman_warnings(pull.stderr)
    assert uses == [] and len(releases) == len(image.layer_digests)


def test_an_unparsable_info_fails_the_pull(podman_storages: Storages, static_layer_store: StaticLayerStore,
                                           image: SociImage, proxy: RecordingProxy) -> None:
    ref = image.ref(proxy.host, "soci")
    _stocked(static_layer_store, image, ref, proxy)
    top = image.layer_digests[-1]
    (static_layer_store.layer_dir(ref, top) / "info").write_text("not json\n")
    result = podman_storages(static_layer_store.root).pull(ref, check=False)
    assert result.returncode == 125
    assert f'looking for compressed layers with digest "{top}" and labels: ' in result.stderr
    # a JSON value of the wrong type fails the same way
    (static_layer_store.layer_dir(ref, top) / "info").write_text('{"compressed-diff-digest": 5}')
    result = podman_storages(static_layer_store.root).pull(ref, check=False)
    assert result.returncode == 125 and "storage.Layer.CompressedDigest" in result.stderr
    # an info without diff-digest crashes podman: the store must always write one
    (static_layer_store.layer_dir(ref, top) / "info").write_text("{}")
    result = podman_storages(static_layer_store.root).pull(ref, check=False)
    assert result.returncode != 0 and "panic: no ':' separator in digest \"\"" in result.stderr


@pytest.mark.parametrize("missing", ["directory", "blob"])
def test_a_missing_layer_is_downloaded_normally(podman_storages: Storages, static_layer_store: StaticLayerStore,
                                                image: SociImage, proxy: RecordingProxy, missing: str) -> None:
    ref = image.ref(proxy.host, "soci")
    _stocked(static_layer_store, image, ref, proxy)
    top = image.layer_digests[-1]
    directory = static_layer_store.layer_dir(ref, top)
    if missing == "directory":
        shutil.rmtree(directory)
    else:
        (directory / "blob").unlink()
    storage = podman_storages(static_layer_store.root)
    storage.pull(ref)
    assert top in proxy.blob_gets()
    assert not set(proxy.blob_gets()) & set(image.layer_digests[:-1])
    records = {r["compressed-diff-digest"]: r for r in storage.layer_records()}
    top_diff = storage.graphroot / "overlay" / records[top]["id"] / "diff"
    assert top_diff.is_dir() and not top_diff.is_symlink()
    assert (storage.graphroot / "overlay" / records[image.layer_digests[0]]["id"] / "diff").is_symlink()


def test_save_reads_the_blob(podman_storages: Storages, layer_store: FuseLayerStore, image: SociImage,
                             proxy: RecordingProxy, tmp_path: Path) -> None:
    ref = image.ref(proxy.host, "soci")
    _stocked(layer_store, image, ref, proxy)
    storage = podman_storages(layer_store.root)
    storage.pull(ref)
    archive = tmp_path / "saved.tar"
    storage.podman("save", "-o", str(archive), ref, trace=tmp_path / "save")
    calls = trace_store_calls(tmp_path / "save", layer_store.root)
    every = collections.Counter(image.layer_digests)
    assert _by_layer(calls, "use") == every and _by_layer(calls, "release") == every
    assert collections.Counter(c.digest for c in calls if c.op == "open" and c.name == "blob") == every
    # the layers in the archive are the blobs decompressed: the original tars, byte for byte
    with tarfile.open(archive) as saved:
        manifest = json.load(saved.extractfile("manifest.json"))  # type: ignore[arg-type]
        layers = [saved.extractfile(name).read() for name in manifest[0]["Layers"]]  # type: ignore[union-attr]
    assert layers == list(image.tars)



def test_a_blob_that_is_not_the_layer_fails_save(podman_storages: Storages, static_layer_store: StaticLayerStore,
                                                 image: SociImage, proxy: RecordingProxy, tmp_path: Path) -> None:
    """What `save` reads from `blob` is checked against the layer's diff_id."""
    ref = image.ref(proxy.host, "soci")
    _stocked(static_layer_store, image, ref, proxy)
    storage = podman_storages(static_layer_store.root)
    storage.pull(ref)
    wrong = io.BytesIO()
    with tarfile.open(fileobj=wrong, mode="w") as tar:
        entry = tarfile.TarInfo("other.txt")
        entry.size = 3
        tar.addfile(entry, io.BytesIO(b"abc"))
    top = image.layer_digests[-1]
    (static_layer_store.layer_dir(ref, top) / "blob").write_bytes(gzip.compress(wrong.getvalue()))
    result = storage.podman("save", "-o", str(tmp_path / "wrong.tar"), ref, check=False)
    got = "sha256:" + hashlib.sha256(wrong.getvalue()).hexdigest()
    assert result.returncode == 125
    assert f"Digest did not match, expected {image.diff_ids[-1]}, got {got}" in result.stderr


def test_push_reads_the_blob(podman_storages: Storages, layer_store: FuseLayerStore, image: SociImage,
                             proxy: RecordingProxy, registry_factory: Callable[..., RegistryServer],
                             tmp_path: Path) -> None:
    ref = image.ref(proxy.host, "soci")
    _stocked(layer_store, image, ref, proxy)
    storage = podman_storages(layer_store.root)
    storage.pull(ref)
    other = registry_factory()  # a registry that has none of the blobs: podman must read them
    target = f"{other.host}/pushed/app:1"
    storage.podman("push", "--tls-verify=false", ref, target, trace=tmp_path / "push")
    calls = trace_store_calls(tmp_path / "push", layer_store.root)
    every = collections.Counter(image.layer_digests)
    assert _by_layer(calls, "use") == every and _by_layer(calls, "release") == every
    assert collections.Counter(c.digest for c in calls if c.op == "open" and c.name == "blob") == every
    # podman recompressed what it read: the pushed layers decompress to the original tars
    with RegistryClient(other.host, plain_http=True) as client:
        manifest = json.loads(client.get_manifest("pushed/app", "1")[0])
        pushed = [client.get_blob("pushed/app", Descriptor.from_json(d)) for d in manifest["layers"]]
    assert [gzip.decompress(blob) for blob in pushed] == list(image.tars)
    assert [d["digest"] for d in manifest["layers"]] != list(image.layer_digests)


def test_an_image_without_a_soci_index_pulls_normally(podman_storages: Storages, layer_store: FuseLayerStore,
                                                      image: SociImage, proxy: RecordingProxy) -> None:
    ref = image.ref(proxy.host, "plain")
    with resolver_for(proxy.host) as resolver:
        assert layer_store.add_image(image, ref, resolver) == []
    proxy.clear()
    storage = podman_storages(layer_store.root)
    storage.pull(ref)
    assert set(image.layer_digests) <= set(proxy.blob_gets())
    assert not any((d / "diff").is_symlink() for d in storage.layer_dirs().values())
    # the store was asked for each layer, said "no such file", and holds nothing for the image
    status = layer_store.wait_status(lambda s: s["lookups"]["not_served"] >= 3, "the declined lookups")
    assert status["lookups"]["served"] == 0 and status["in_use"] == [] and status["attached_layers"] == 0


# --- what `socikit store` itself shows: lazy layers, counts, restarts ----------------------------------

def _spans_by_layer(store: FuseLayerStore) -> dict[str, int]:
    return {layer: counters.get("spans_fetched", 0) for layer, counters in store.status()["layers"].items()}


def test_a_lazy_pull_and_run_fetch_only_what_is_read(
        podman_storages: Storages, layer_store: FuseLayerStore, image: SociImage, proxy: RecordingProxy,
        expected_listing: list[str]) -> None:
    """`podman pull` takes every layer from the store without a byte of the layers: the store read
    the index, the ztocs and each gzip trailer. A container reading one file fetches spans of the
    layers that hold what it runs; one listing every file with its sha256 sees what a plain pull
    gives, each span fetched at most once, never a whole blob."""
    ref = image.ref(proxy.host, "soci")
    _stocked(layer_store, image, ref, proxy)
    storage = podman_storages(layer_store.root)
    storage.pull(ref)
    status = layer_store.wait_status(lambda s: len(s["in_use"]) == 3, "three layers in use")
    assert status["spans"]["fetched"] == 0 and status["blob_reads"]["bytes"] == 0
    assert (status["registry"]["ranges"], status["registry"]["range_bytes"]) == (3, 12)  # gzip trailers
    assert not [d for d in proxy.blob_gets() if d in image.layer_digests]  # podman fetched none

    run = storage.podman("run", "--rm", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024",
                         "--network", "none", ref, "/bin/cat", "/opt/opaque/new")
    assert run.stdout == "new"
    base, middle, top = image.layer_digests
    # The store rewrites its status file a moment after a fetch: wait for the read's last span.
    layer_store.wait_status(lambda s: s["layers"].get(top, {}).get("spans_fetched", 0) > 0, "the top layer's span")
    spans = _spans_by_layer(layer_store)
    assert spans.get(middle, 0) == 0  # nothing of the middle layer was read
    assert spans[top] == 1  # the one span holding /opt/opaque/new
    assert 0 < spans[base]  # /bin/cat and what it loads

    assert storage.listing(ref) == expected_listing
    status = layer_store.wait_status(
        lambda s: all(s["layers"].get(d, {}).get("spans_fetched", 0) > 0 for d in image.layer_digests),
        "spans of every layer (the listing reads every file)")
    for digest, blob in zip(image.layer_digests, image.blobs, strict=True):
        counters = status["layers"][digest]
        # every span at most once: their compressed ranges share at most a byte with the next
        assert counters["bytes"] <= len(blob) + counters["spans_fetched"]
        assert all(r.startswith("bytes=") for r in proxy.store_ranges(digest))
    assert not set(proxy.blob_gets(whole=True)) & set(image.layer_digests)
    assert status["spans"]["verification_failures"] == 0 and not status["fuse_errors"]


def test_rmi_releases_the_layers(podman_storages: Storages, layer_store: FuseLayerStore, image: SociImage,
                                 proxy: RecordingProxy) -> None:
    ref = image.ref(proxy.host, "soci")
    _stocked(layer_store, image, ref, proxy)
    storage = podman_storages(layer_store.root)
    storage.pull(ref)
    status = layer_store.wait_status(lambda s: s["uses"] == 6 and s["releases"] == 3, "the pull's uses and releases")
    assert layer_store.in_use() == {(ref, d): 1 for d in image.layer_digests}
    assert status["attached_layers"] == 3
    storage.podman("rmi", ref)
    status = layer_store.wait_status(lambda s: s["releases"] == 6, "the releases of rmi")
    assert status["in_use"] == [] and status["unmatched_releases"] == 0
    assert status["attached_layers"] == 0  # idle layers are detached
    # pulled again, the layers are served again (from the store's records)
    storage.pull(ref)
    layer_store.wait_status(lambda s: len(s["in_use"]) == 3 and s["attached_layers"] == 3, "the layers in use again")
    assert storage.podman("run", "--rm", *RUN_FLAGS, ref, "/bin/cat", "/opt/opaque/new").stdout == "new"


def test_a_restarted_store_serves_the_layers_with_the_registry_down(
        podman_storages: Storages, fuse_layer_store: FuseLayerStore, image: SociImage, registry: RegistryServer,
        registry_factory: Callable[..., RegistryServer]) -> None:
    """podman's layers are symlinks into the mount: after SIGTERM (a clean unmount) or SIGKILL (a
    dead mount the next start detaches) the restarted store serves the same keys from its records
    and caches, with the registry stopped."""
    own = registry_factory()
    ref = f"{own.host}/{image.repository}:soci"
    _convert(image.ref(registry.host, "plain"), ref)
    store = fuse_layer_store
    storage = podman_storages(store.root)
    storage.pull(ref)
    command = ("run", "--rm", *RUN_FLAGS, ref, "/bin/cat", "/opt/opaque/new")
    assert storage.podman(*command).stdout == "new"
    assert store.stop() == 0
    assert not _mounted(store.root)
    own.stop()
    store.start()
    assert storage.podman(*command).stdout == "new"
    served = [e for e in store.log_entries() if e.get("msg") == "layer served"]
    assert served and all(e["restored"] for e in served[-3:]) and len(served) >= 3
    assert store.status()["registry"]["manifests"] == 0
    store.stop(signal.SIGKILL)
    assert _mounted(store.root)  # dead: the kernel still has it
    store.start()
    assert any(e.get("msg") == "dead mount of an earlier store detached" for e in store.log_entries())
    assert storage.podman(*command).stdout == "new"


def test_a_store_backed_container_is_cleaned_up_when_it_exits(
        podman_storages: Storages, fuse_layer_store: FuseLayerStore, image: SociImage, registry: RegistryServer,
        registry_factory: Callable[..., RegistryServer]) -> None:
    """conmon's exit command (`podman container cleanup`, which gets the runroot on its command
    line) runs when a container whose layers the store serves exits: its state becomes
    "exited". When that command fails, the state stays "stopped" and every `podman run` waits out
    podman's 20 s conmon timer."""
    own = registry_factory()
    ref = f"{own.host}/{image.repository}:soci"
    _convert(image.ref(registry.host, "plain"), ref)
    storage = podman_storages(fuse_layer_store.root)
    storage.pull(ref)
    storage.podman("run", "-d", "--name", "exits", *RUN_FLAGS, ref, "/bin/cat", "/opt/opaque/new")
    assert storage.podman("wait", "exits").stdout.strip() == "0"
    assert storage.podman("logs", "exits").stdout == "new"
    assert storage.podman("inspect", "exits", "--format", "{{.State.Status}}").stdout.strip() == "exited"


def _mounted(path: Path) -> bool:
    with open("/proc/self/mountinfo", encoding="utf-8") as info:
        return any(line.split()[4] == str(path) for line in info)


def _convert(source: str, target: str, *extra: str) -> None:
    result = CliRunner().invoke(app, ["convert", "--span-size", "65536", "--min-layer-size", "0", "--plain-http",
                                      "--no-cache", "--progress", "none", *extra, source, target])
    assert result.exit_code == 0, result.output


def _tree(root: Path) -> list[tuple[str, ...]]:
    """Every path below `root`: type and mode, owner, device, size and sha256 or link target."""
    rows = []
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        row = (str(path.relative_to(root)), oct(st.st_mode), f"{st.st_uid}:{st.st_gid}", str(st.st_rdev))
        if path.is_symlink():
            row += (os.readlink(path),)
        elif path.is_file():
            row += (str(st.st_size), hashlib.sha256(path.read_bytes()).hexdigest())
        rows.append(row)
    return rows


def test_the_toc_digest_form(layer_store: FuseLayerStore, image: SociImage, registry: RegistryServer) -> None:
    """podman >= 5.1 and CRI-O >= 1.31 look a layer up by its TOC digest, and only a layer whose
    descriptor carries `containerd.io/snapshot/stargz/toc.digest` (`convert --toc-annotations`).
    Neither is available here (Debian 12 has podman 4.3.1), so the store is asked the way the
    facts (containers/image >= 5.31, containers/storage) say they ask: a stat of `diff`, `info` and
    `blob` below `<base64(ref)>/<TOC digest>/`, `info` read and decoded, `use` created and the
    directory removed. The layer shows the same tree and blob as in the blob-digest form."""
    ref = f"{registry.host}/podman/toc:soci"
    _convert(image.ref(registry.host, "plain"), ref, "--toc-annotations")
    with RegistryClient(registry.host, plain_http=True) as client:
        index = json.loads(client.get_manifest("podman/toc", "soci")[0])
        entry = next(e for e in index["manifests"] if "artifactType" not in e)
        manifest = json.loads(client.get_manifest("podman/toc", entry["digest"])[0])
    tocs = []
    for layer, blob, diff_id in zip(manifest["layers"], image.blobs, image.diff_ids, strict=True):
        toc = layer["annotations"][layout.ANNOTATION_TOC_DIGEST]
        tocs.append(toc)
        directory = layer_store.layer_dir(ref, toc)
        for name in layout.LAYER_FILES:
            os.stat(directory / name)
        assert json.loads((directory / "info").read_bytes()) == {
            "diff-size": -1, "compression": 2, "toc-digest": toc, "flags": {"expected-layer-diffid": diff_id}}
        assert (directory / "blob").stat().st_size == len(blob) and (directory / "blob").read_bytes() == blob
        assert _tree(directory / "diff") == _tree(layer_store.layer_dir(ref, layer["digest"]) / "diff")
    assert (layer_store.layer_dir(ref, tocs[1]) / "diff" / "opt" / "app" / "owned").read_bytes() == b"mine"
    assert not layer_store.layer_dir(ref, "sha256:" + "0" * 64).exists()  # names no layer of the image
    # use and release, as containers/storage sends them
    key = layer_store.layer_dir(ref, tocs[0])
    with pytest.raises(FileNotFoundError):
        open(key / "use", "w").close()  # noqa: SIM115
    assert layer_store.wait_status(lambda s: s["uses"] == 1, "the use")["in_use"] == \
        [{"reference": ref, "digest": tocs[0], "count": 1}]
    with pytest.raises(FileNotFoundError):
        os.rmdir(key)
    assert layer_store.wait_status(lambda s: s["releases"] == 1, "the release")["in_use"] == []
    with pytest.raises(OSError) as refused:  # anything else is refused
        (key / "other").mkdir()
    assert refused.value.errno == errno.EROFS

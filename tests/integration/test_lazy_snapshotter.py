# ruff: noqa: F811  (pytest fixtures imported by name)
"""Lazy layers end to end: Debian's containerd 1.6 + runc, socikit's snapshotter daemon serving
layers over real FUSE, Debian's docker-registry on 127.0.0.1, `socikit convert` making the SOCI
index, `socikit image rpull` pulling, `ctr` as the independent client. Every process and mount a
test starts is stopped and removed by that test."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import os
import socket
import stat
import subprocess
import sys
import tarfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from conformance.layout import assemble_expected_layout
from socikit.containerd._proto import snapshots_pb2 as pb
from socikit.ztoc.serialize import loads as loads_ztoc
from socikit.ztoc.spans import span_table
from tests import images
from tests.integration.registry_fixtures import (  # noqa: F401  (fixtures)
    TEST_PASSWORD,
    TEST_USER,
    RegistryServer,
    free_port,
    htpasswd_registry,
    registry,
)
from tests.integration.snapshotter_fixtures import SNAPSHOTTER, SnapshotterDaemon, SocikitContainerd, unmount_below
from tests.snapshotter.local_layers import chain_ids
from tests.vectors import REPO_ROOT

pytestmark = [pytest.mark.integration, pytest.mark.registry]

SPAN_SIZE = 65536
MIN_LAYER_SIZE = 1000
WAIT_S = 60.0
# No background fetch while a test looks at what was fetched, unless it asks for it.
QUIET_CONFIG = """
[background_fetch]
silence_period_msec = 3600000
[blob]
fetching_timeout_sec = 6
[http]
ResponseHeaderTimeoutMsec = 1500
"""


# ---------------------------------------------------------------------------------------------
# the stack: daemon (FUSE layers) + containerd


@dataclass
class LazyStack:
    containerd: SocikitContainerd
    metrics_port: int
    home: Path

    @property
    def daemon(self) -> SnapshotterDaemon:
        return self.containerd.daemon

    @property
    def fuse_dir(self) -> Path:
        return self.daemon.root / "fuse"

    def layer_dir(self, digest: str) -> Path:
        """The layer's directory (an image's first layer is `<hex>-bottom`: shown without whiteouts)."""
        plain = self.fuse_dir / digest.split(":", 1)[1]
        bottom = plain.with_name(plain.name + "-bottom")
        return bottom if bottom.exists() else plain

    def ctr(self, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return self.containerd.ctr(*args, **kwargs)

    def rpull(self, ref: str, *args: str, check: bool = True) -> dict[str, Any]:
        env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(REPO_ROOT), "HOME": str(self.home),
               "DOCKER_CONFIG": str(self.home / ".docker")}
        result = subprocess.run([sys.executable, "-m", "socikit", "image", "rpull", "--address",
                                 str(self.containerd.address), "--snapshotter-address", str(self.daemon.address),
                                 "--plain-http", "--json", *args, ref],
                                capture_output=True, text=True, env=env, timeout=300)
        if check:
            assert result.returncode == 0, result.stderr + self.daemon.log_tail()
        summary: dict[str, Any] = json.loads(result.stdout) if result.returncode == 0 else {"stderr": result.stderr}
        return summary

    def metrics(self) -> dict[str, float]:
        """`name{labels}` -> value of every sample the daemon exposes."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10) as answer:
            text = answer.read().decode()
        samples = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                samples[name] = float(value)
        return samples

    def counter(self, name: str, **labels: str) -> float:
        key = f"socikit_snapshotter_{name}" + ("{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"
                                               if labels else "")
        return self.metrics().get(key, 0.0)

    def run(self, ref: str, *command: str, snapshotter: str = SNAPSHOTTER, namespace: str = "default",
            check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.ctr("run", "--rm", "--snapshotter", snapshotter, ref, f"c-{uuid.uuid4().hex[:10]}", *command,
                        namespace=namespace, check=check)

    def listing(self, ref: str, **kwargs: Any) -> list[str]:
        return self.run(ref, "/bin/sh", "-c", images.LIST_FILES_SCRIPT, **kwargs).stdout.splitlines()


def _fuse_mounts() -> list[tuple[str, str]]:
    with open("/proc/self/mountinfo") as info:
        out = []
        for line in info:
            fields = line.split()
            fstype = fields[fields.index("-") + 1]
            out.append((fields[4], fstype))
        return out


@contextlib.contextmanager
def lazy_stack(tmp_path_factory: pytest.TempPathFactory, config: str = QUIET_CONFIG,
               env: dict[str, str] | None = None) -> Iterator[LazyStack]:
    base = tmp_path_factory.mktemp("lazy-stack", numbered=True)
    port = free_port()
    daemon = SnapshotterDaemon(base=base / "snapshotter", env=dict(env or {}),
                               extra_args=("--metrics-address", f"127.0.0.1:{port}"))
    daemon.base.mkdir(parents=True)
    daemon.config.write_text(config)
    containerd = SocikitContainerd(base=base, daemon=daemon)
    home = base / "home"
    home.mkdir()
    try:
        daemon.start()
        containerd.start()
        yield LazyStack(containerd, port, home)
    finally:
        containerd.stop()
        daemon.stop()
        unmount_below(base)
    assert not any(point.startswith(str(base)) for point, _ in _fuse_mounts())


@pytest.fixture
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LazyStack]:
    with lazy_stack(tmp_path_factory) as started:
        yield started


# ---------------------------------------------------------------------------------------------
# the test image


def _pattern(size: int, seed: int) -> bytes:
    """Bytes that compress a little (so a file spans several 64 KiB spans of the gzip stream)."""
    out = bytearray()
    block = hashlib.sha256(str(seed).encode()).digest()
    while len(out) < size:
        block = hashlib.sha256(block).digest()
        out += block + bytes(block[0] % 64)
    return bytes(out[:size])


def _image_layers() -> list[bytes]:
    """The host's listing tools; a tiny layer (below the minimum layer size: never indexed); files
    spanning several spans, hard links (one with its own mode and owner), symlinks, xattrs,
    devices; a layer deleting a file and a directory, making a directory opaque and replacing
    things."""
    base = images.host_rootfs_tar()
    tiny = images.TarBuilder()
    tiny.file("etc/tiny.conf", b"tiny\n")
    b = images.TarBuilder()
    b.dir("opt/app", mode=0o755)
    b.file("opt/app/big.bin", _pattern(400_000, 1), xattrs={"user.note": b"hello", "user.bin": b"\x00\x01\xff"})
    b.file("opt/app/other.bin", _pattern(250_000, 2))
    b.file("opt/app/small.txt", b"one small file\n")
    tar = b.tar
    hard = tarfile.TarInfo("opt/app/hard")
    hard.type, hard.linkname = b"1", "opt/app/big.bin"
    hard.mode, hard.uid, hard.gid, hard.mtime = 0o640, 1000, 1001, 1_700_000_050
    tar.addfile(hard)
    b.file("opt/app/owned", b"mine", mode=0o640, uid=1000, gid=1001)
    b.symlink("opt/app/rel", "big.bin")
    b.symlink("opt/app/abs", "/opt/app/big.bin")
    b.symlink("opt/app/dangling", "../nowhere")
    b.file("opt/app/run.sh", b"#!/bin/sh\necho hi\n", mode=0o4755)
    b.file("opt/app/to-delete", b"going away")
    b.file("opt/app/replaced", b"old")
    b.dir("opt/gone-dir")
    b.file("opt/gone-dir/inner", b"inner")
    b.dir("opt/opaque", mode=0o700, uid=7, gid=8)
    b.file("opt/opaque/a", b"a")
    b.dir("opt/empty", mode=0o1777, xattrs={"user.dir": b"on a dir"})
    for n in range(16):
        b.file(f"opt/many/f{n:02d}", _pattern(30_000 + 977 * n, 100 + n))
    info = tarfile.TarInfo("opt/dev/fifo")
    info.type, info.mode, info.mtime = b"6", 0o644, 1_700_000_000
    tar.addfile(info)
    middle = b.finish()
    t = images.TarBuilder(mtime=1_700_000_500.0)
    t.dir("opt/app", mode=0o750)
    t.whiteout("opt/app/to-delete")
    t.whiteout("opt/gone-dir")
    t.opaque("opt/opaque")
    t.file("opt/opaque/new", b"new", xattrs={"user.later": b"yes"})
    t.file("opt/app/replaced", _pattern(5000, 3))
    t.hardlink("opt/app/hard2", "opt/app/replaced")
    top = t.finish()
    return [base, tiny.finish(), middle, top]


@dataclass
class PushedImage:
    ref: str
    manifest: str  # the converted platform manifest
    layers: list[dict[str, Any]]  # manifest layer descriptors
    tars: list[bytes]
    ztocs: dict[str, str] = field(default_factory=dict)  # layer digest -> ztoc digest (indexed layers)
    chains: list[str] = field(default_factory=list)

    @property
    def indexed(self) -> list[str]:
        return [layer["digest"] for layer in self.layers if layer["digest"] in self.ztocs]

    @property
    def layer_dirs(self) -> list[str]:
        """The FUSE directories of the indexed layers (the first layer's ends in `-bottom`)."""
        return sorted(d.split(":")[1] + ("-bottom" if d == self.layers[0]["digest"] else "") for d in self.indexed)

    def tar_of(self, layer_digest: str) -> bytes:
        return self.tars[[layer["digest"] for layer in self.layers].index(layer_digest)]


def convert_and_push(layout: Path, ref: str, tmp: Path, *extra: str) -> dict[str, Any]:
    result = subprocess.run([sys.executable, "-m", "socikit", "convert", f"oci:{layout}:latest", ref, "--plain-http",
                             "--span-size", str(SPAN_SIZE), "--min-layer-size", str(MIN_LAYER_SIZE), "--json",
                             "--progress", "none", "--root", str(tmp / "socikit-root"), *extra],
                            capture_output=True, text=True, cwd=REPO_ROOT, timeout=600,
                            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    assert result.returncode == 0, result.stderr
    summary: dict[str, Any] = json.loads(result.stdout)
    return summary


def push_image(registry: RegistryServer, tmp: Path, repo: str, tars: list[bytes]) -> PushedImage:
    layout = tmp / f"layout-{uuid.uuid4().hex[:6]}"
    images.write_oci_layout(layout, tars)
    ref = f"{registry.host}/{repo}"
    summary = convert_and_push(layout, ref, tmp)
    (platform,) = summary["platforms"]
    image = PushedImage(ref=ref, manifest=platform["converted_manifest"], layers=platform["layers"], tars=tars)
    image.ztocs = {layer["digest"]: layer["ztoc"] for layer in platform["layers"] if layer["ztoc"]}
    diff_ids = ["sha256:" + hashlib.sha256(tar).hexdigest() for tar in tars]
    image.chains = chain_ids(diff_ids)
    return image


@pytest.fixture(scope="module")
def lazy_image(registry: RegistryServer, tmp_path_factory: pytest.TempPathFactory) -> PushedImage:
    image = push_image(registry, tmp_path_factory.mktemp("lazy-image"), "lazy/app:1", _image_layers())
    # the tiny layer is below the minimum layer size; every other layer has a ztoc
    assert [layer["digest"] in image.ztocs for layer in image.layers] == [True, False, True, True]
    return image


def _blob_path(registry: RegistryServer, digest: str) -> Path:
    hex_digest = digest.split(":", 1)[1]
    return registry.root / "storage/docker/registry/v2/blobs/sha256" / hex_digest[:2] / hex_digest / "data"


def _content_digests(stack: LazyStack, namespace: str = "default") -> set[str]:
    lines = stack.ctr("content", "ls", namespace=namespace).stdout.splitlines()[1:]
    return {line.split()[0] for line in lines}


def _member(tar: bytes, name: str) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
        extracted = archive.extractfile(name)
        assert extracted is not None
        return extracted.read()


def _spans_bytes(image: PushedImage, registry: RegistryServer, layer: str, path: str) -> int:
    """Compressed bytes of the spans holding `path`'s data in `layer` (what reading it fetches)."""
    ztoc_digest = image.ztocs[layer]
    ztoc = loads_ztoc(_blob_path(registry, ztoc_digest).read_bytes())
    entry = next(e for e in ztoc.toc if e.name.lstrip("./") == path)
    table = span_table(ztoc)
    total = 0
    for span in table.spans_covering(entry.uncompressed_offset, entry.uncompressed_size):
        start, end = table.compressed_range(span)
        total += end - start
    return total


# ---------------------------------------------------------------------------------------------
# tests


def test_rpull_serves_indexed_layers_lazily_and_runs_like_overlayfs(stack: LazyStack, lazy_image: PushedImage,
                                                                   registry: RegistryServer) -> None:
    image = lazy_image
    stack.ctr("image", "pull", "--plain-http", image.ref, namespace="reference")
    expected = stack.listing(image.ref, snapshotter="overlayfs", namespace="reference")
    by_path = {line.split(" ", 1)[0]: line for line in expected}
    assert by_path["./opt/app/big.bin"].startswith("./opt/app/big.bin F 640 1000:1001 400000 2 ")
    assert "./opt/app/to-delete" not in by_path and "./opt/opaque/a" not in by_path

    summary = stack.rpull(image.ref)
    states = [layer["state"] for layer in summary["layers"]]
    assert states == ["lazy", "downloaded", "lazy", "lazy"], summary
    assert summary["bytes_downloaded"] == image.layers[1]["size"]

    # the indexed layers are directories of the daemon's one FUSE mount, and never reached the content store
    mounts = dict(_fuse_mounts())
    assert mounts.get(str(stack.fuse_dir)) == "fuse"
    assert sorted(os.listdir(stack.fuse_dir)) == image.layer_dirs
    content = _content_digests(stack)
    assert not content & set(image.indexed) and image.layers[1]["digest"] in content
    for chain, layer in zip(image.chains, image.layers, strict=True):
        info = json.loads(stack.ctr("snapshot", "--snapshotter", SNAPSHOTTER, "info", chain).stdout)
        remote = info["Labels"].get("containerd.io/snapshot/remote") == "remote snapshot"
        assert remote == (layer["digest"] in image.ztocs)
    assert stack.counter("fetched_bytes_total", layer=image.layers[2]["digest"]) == 0

    # a container reading one small file of the middle layer fetches that file's span(s) of it, nothing more
    middle, top = image.layers[2]["digest"], image.layers[3]["digest"]
    out = stack.run(image.ref, "/bin/cat", "/opt/app/small.txt").stdout
    assert out == "one small file\n"
    assert stack.counter("fetched_bytes_total", layer=middle) == _spans_bytes(image, registry, middle,
                                                                              "opt/app/small.txt")
    assert stack.counter("fetched_bytes_total", layer=top) == 0
    base_fetched = stack.counter("fetched_bytes_total", layer=image.layers[0]["digest"])
    assert 0 < base_fetched < image.layers[0]["size"]  # the shell and cat, not the whole base layer

    # every file, as overlayfs shows it after containerd's own pull
    assert stack.listing(image.ref) == expected
    assert stack.counter("span_verification_failures_total", layer=middle) == 0
    assert stack.counter("spans_fetched_total", layer=middle) > 1


def test_sixteen_concurrent_readers_of_one_lazy_layer(stack: LazyStack, lazy_image: PushedImage) -> None:
    stack.rpull(lazy_image.ref)
    middle = lazy_image.layers[2]["digest"]
    tar = lazy_image.tar_of(middle)
    directory = stack.layer_dir(middle)
    results: dict[int, bytes] = {}
    failures: list[BaseException] = []

    def read(n: int) -> None:
        try:
            results[n] = (directory / f"opt/many/f{n:02d}").read_bytes()
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    threads = [threading.Thread(target=read, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not failures and not any(t.is_alive() for t in threads)
    assert results == {n: _member(tar, f"opt/many/f{n:02d}") for n in range(16)}


# ---------------------------------------------------------------------------------------------
# a registry that goes away, stalls, and comes back


class TcpProxy:
    """Relays TCP connections on 127.0.0.1 to a registry. `mode`: "pass"; "down" (connections
    are closed, new ones refused); "stall" (each connection relays `allowance` more answer bytes,
    then holds what follows until the mode changes: a registry that stops in the middle of a
    read). Stopped by `stop()`, which closes every connection and joins every thread."""

    def __init__(self, upstream_port: int, *, allowance: int = 200) -> None:
        self.upstream = ("127.0.0.1", upstream_port)
        self.allowance = allowance
        self._mode = "pass"
        self._changed = threading.Condition()
        self._sockets: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.host = f"127.0.0.1:{self._listener.getsockname()[1]}"
        self._stopping = False
        self._accept_thread = threading.Thread(target=self._accept, daemon=True)
        self._accept_thread.start()

    @property
    def mode(self) -> str:
        return self._mode

    @mode.setter
    def mode(self, value: str) -> None:
        with self._changed:
            self._mode = value
            self._changed.notify_all()
            if value == "down":
                for sock in list(self._sockets):
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)

    def _track(self, sock: socket.socket) -> None:
        with self._changed:
            self._sockets.add(sock)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self._stopping or self._mode == "down":
                client.close()
                continue
            thread = threading.Thread(target=self._serve, args=(client,), daemon=True)
            with self._changed:
                self._threads.append(thread)
            thread.start()

    def _serve(self, client: socket.socket) -> None:
        self._track(client)
        try:
            upstream = socket.create_connection(self.upstream, timeout=30)
        except OSError:
            client.close()
            return
        self._track(upstream)
        forward = threading.Thread(target=self._pump, args=(client, upstream, False), daemon=True)
        forward.start()
        self._pump(upstream, client, True)
        forward.join(30)

    def _pump(self, source: socket.socket, dest: socket.socket, answers: bool) -> None:
        allowance = self.allowance
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if answers:
                    with self._changed:
                        while self._mode == "stall" and allowance <= 0 and not self._stopping:
                            self._changed.wait(0.5)
                        if self._mode == "stall":
                            if allowance < len(data):
                                dest.sendall(data[:allowance])
                                data = data[allowance:]
                                allowance = 0
                                while self._mode == "stall" and not self._stopping:
                                    self._changed.wait(0.5)
                            else:
                                allowance -= len(data)
                        if self._mode == "down" or self._stopping:
                            break
                    if self._mode == "pass":
                        allowance = self.allowance
                dest.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, dest):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        with self._changed:
            self._stopping = True
            self._changed.notify_all()
            sockets = list(self._sockets)
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        self._accept_thread.join(10)
        with self._changed:
            threads = list(self._threads)
        for thread in threads:
            thread.join(10)


@pytest.fixture
def proxy(registry: RegistryServer) -> Iterator[TcpProxy]:
    relay = TcpProxy(registry.port)
    try:
        yield relay
    finally:
        relay.stop()


def _read_in_thread(path: Path, *, offset: int = 0, size: int = -1, limit_s: float = 120) -> bytes | OSError:
    """Read `path` on a thread; the test fails (instead of hanging) if that read never returns."""
    outcome: list[bytes | OSError] = []

    def read() -> None:
        try:
            with open(path, "rb") as handle:
                handle.seek(offset)
                outcome.append(handle.read(size))
        except OSError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    thread.join(limit_s)
    assert outcome, f"reading {path} did not return within {limit_s} s"
    return outcome[0]


def test_killed_daemon_comes_back_and_serves_from_its_disk(stack: LazyStack, lazy_image: PushedImage,
                                                            proxy: TcpProxy) -> None:
    ref = f"{proxy.host}/lazy/app:1"  # the same image, through a relay the test can cut
    stack.rpull(ref)
    before = stack.listing(ref)  # reads every file: their spans are cached
    listed = stack.ctr("snapshot", "--snapshotter", SNAPSHOTTER, "ls").stdout
    # spans reach the disk on the cache's writer thread: wait until every fetched one is there
    fetched = sum(v for k, v in stack.metrics().items() if k.startswith("socikit_snapshotter_spans_fetched_total"))
    spans_dir = stack.daemon.root / "lazy" / "spans"
    deadline = time.monotonic() + WAIT_S
    while sum(1 for p in spans_dir.rglob("*") if p.is_file() and p.name.isdigit()) < fetched:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    stack.daemon.kill()
    with pytest.raises(OSError) as dead:
        os.listdir(stack.fuse_dir)
    assert dead.value.errno == errno.ENOTCONN  # the FUSE mount a crash leaves behind
    proxy.mode = "down"
    stack.daemon.start()
    stack.containerd.wait_for_snapshotter()
    assert stack.ctr("snapshot", "--snapshotter", SNAPSHOTTER, "ls").stdout == listed
    assert sorted(os.listdir(stack.fuse_dir)) == lazy_image.layer_dirs
    restored = [e for e in stack.daemon.log_entries() if e.get("msg") == "remote snapshots mounted again"]
    assert restored and restored[-1]["count"] == len(lazy_image.indexed)
    # the SOCI index and ztocs come from the daemon's disk, the spans from its cache: no registry
    assert stack.listing(ref) == before
    assert not any(k.startswith("socikit_snapshotter_fetched_bytes_total") and v
                   for k, v in stack.metrics().items())
    proxy.mode = "pass"


def test_a_corrupt_span_in_the_registry_is_never_served(stack: LazyStack, registry: RegistryServer,
                                                        tmp_path: Path) -> None:
    b = images.TarBuilder()
    b.file("data/victim.bin", _pattern(300_000, 41))
    b.file("data/bystander.bin", _pattern(200_000, 42))
    image = push_image(registry, tmp_path, f"lazy/corrupt-{uuid.uuid4().hex[:8]}:1", [b.finish()])
    layer = image.layers[0]["digest"]
    ztoc = loads_ztoc(_blob_path(registry, image.ztocs[layer]).read_bytes())
    table = span_table(ztoc)
    victim = next(e for e in ztoc.toc if e.name.endswith("victim.bin"))
    bad_span = table.span_of(victim.uncompressed_offset + 150_000)
    start, end = table.compressed_range(bad_span)
    stored = _blob_path(registry, layer)
    original = stored.read_bytes()
    damaged = bytearray(original)
    damaged[(start + end) // 2] ^= 0x55
    stored.write_bytes(bytes(damaged))
    try:
        stack.rpull(image.ref)
        directory = stack.layer_dir(layer)
        failed = _read_in_thread(directory / "data/victim.bin")
        assert isinstance(failed, OSError) and failed.errno == errno.EIO
        span_start, span_end = table.uncompressed_range(bad_span)
        inside = _read_in_thread(directory / "data/victim.bin", offset=span_start - victim.uncompressed_offset + 10,
                                 size=100)
        assert isinstance(inside, OSError) and inside.errno == errno.EIO  # no byte of that span, ever
        assert stack.counter("span_verification_failures_total", layer=layer) >= 2
        assert stack.counter("fuse_operation_errors_total", operation="read") >= 2
        assert _read_in_thread(directory / "data/bystander.bin") == _member(image.tars[0], "data/bystander.bin")
    finally:
        stored.write_bytes(original)
    # repaired in the registry: the next read fetches the span again and serves the right bytes
    assert _read_in_thread(stack.layer_dir(layer) / "data/victim.bin") == _member(image.tars[0], "data/victim.bin")


def test_a_registry_that_stops_mid_read_gives_eio_then_reads_work_again(stack: LazyStack, lazy_image: PushedImage,
                                                                         proxy: TcpProxy) -> None:
    ref = f"{proxy.host}/lazy/app:1"
    stack.rpull(ref)
    middle = lazy_image.layers[2]["digest"]
    directory = stack.layer_dir(middle)
    proxy.mode = "stall"
    stalled = _read_in_thread(directory / "opt/app/other.bin", limit_s=60)
    assert isinstance(stalled, OSError) and stalled.errno == errno.EIO
    timed_out = [e for e in stack.daemon.log_entries() if e.get("msg") == "span read timed out"]
    assert timed_out and timed_out[-1]["timeout_s"] == 6
    proxy.mode = "pass"
    assert _read_in_thread(directory / "opt/app/other.bin") == _member(lazy_image.tar_of(middle), "opt/app/other.bin")


# ---------------------------------------------------------------------------------------------
# images the reference made (golden vectors), SOCI v1, credentials, background fetch

VECTORS = REPO_ROOT / "conformance" / "vectors"
VECTOR_NAMES = sorted(p.name for p in VECTORS.iterdir() if (p / "expected-current").is_dir())


def tree_listing(root: Path) -> list[str]:
    """Every path below `root`: type, mode, owner, then size, link count and sha256 for files,
    the target for symlinks, device numbers for devices; and user.* xattrs."""
    out = []
    for directory, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted([*dirs, *files]):
            path = Path(directory, name)
            st = os.lstat(path)
            line = f"{path.relative_to(root)} {stat.filemode(st.st_mode)} {st.st_uid}:{st.st_gid}"
            if stat.S_ISREG(st.st_mode):
                line += f" {st.st_size} {st.st_nlink} {hashlib.sha256(path.read_bytes()).hexdigest()}"
            elif stat.S_ISLNK(st.st_mode):
                line += f" -> {os.readlink(path)}"
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                line += f" {os.major(st.st_rdev)},{os.minor(st.st_rdev)}"
            names = sorted(n for n in os.listxattr(path, follow_symlinks=False) if n.startswith("user."))
            for xattr in names:
                line += f" {xattr}={os.getxattr(path, xattr, follow_symlinks=False).hex()}"
            out.append(line)
    return out


def container_listing(stack: LazyStack, snapshotter: str, chain: str, target: Path,
                      namespace: str = "default") -> list[str]:
    """Mount what a container on `chain` gets (an active snapshot: overlay of the layers with an
    upper directory, even for one layer) on the host, and list it."""
    key = f"rootfs-{uuid.uuid4().hex[:8]}"
    stub, channel = stack.containerd.snapshots_stub()
    try:
        answer = stub.Prepare(pb.PrepareSnapshotRequest(snapshotter=snapshotter, key=key, parent=chain,
                                                        labels={"containerd.io/gc.root": "test"}),
                              metadata=(("containerd-namespace", namespace),))
    finally:
        channel.close()
    (mount,) = answer.mounts
    assert mount.type == "overlay"
    target.mkdir(parents=True)
    subprocess.run(["mount", "-t", mount.type, mount.source, "-o", ",".join(mount.options), str(target)],
                   check=True, capture_output=True)
    try:
        return tree_listing(target)
    finally:
        subprocess.run(["umount", str(target)], check=True, capture_output=True)
        stack.ctr("snapshot", "--snapshotter", snapshotter, "rm", key, namespace=namespace)


def push_layout(layout: Path, registry: RegistryServer, repo: str, tag: str) -> None:
    """Push the graph `latest` names in an OCI layout, byte for byte (skopeo refuses to copy an
    image index holding SOCI index entries while preserving digests)."""
    from socikit.oci.descriptor import Descriptor
    from socikit.registry.client import RegistryClient

    def blob(digest: str) -> bytes:
        return (layout / "blobs" / "sha256" / digest.split(":", 1)[1]).read_bytes()

    with RegistryClient(registry.host, plain_http=True) as client:
        def push(desc: dict[str, Any]) -> None:
            data = blob(desc["digest"])
            document = json.loads(data) if desc["mediaType"].endswith("+json") and b'"schemaVersion"' in data else None
            if document is None:
                client.push_blob(repo, Descriptor(desc["mediaType"], desc["digest"], desc["size"]), data)
                return
            for child in [*document.get("manifests", []), *([document["config"]] if "config" in document else []),
                          *document.get("layers", [])]:
                push(child)
            client.put_manifest(repo, desc["digest"], data, desc["mediaType"])

        (root,) = json.loads((layout / "index.json").read_text())["manifests"][:1]
        push(root)
        client.put_manifest(repo, tag, blob(root["digest"]), root["mediaType"])


def _layout_json(layout: Path, digest: str) -> Any:
    return json.loads((layout / "blobs" / "sha256" / digest.split(":", 1)[1]).read_bytes())


def _host_manifest(layout: Path, digest: str) -> tuple[str, Any]:
    document = _layout_json(layout, digest)
    if "manifests" not in document:
        return digest, document
    entry = next(m for m in document["manifests"] if m.get("platform", {}).get("architecture") == "amd64"
                 and not m.get("artifactType"))
    return entry["digest"], _layout_json(layout, entry["digest"])


@pytest.fixture
def v1_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LazyStack]:
    """A stack with SOCI v1 discovery on (the referrers API, else the fallback tag)."""
    with lazy_stack(tmp_path_factory, QUIET_CONFIG + "[pull_modes.soci_v1]\nenable = true\n") as started:
        yield started


def _compare_with_overlayfs(stack: LazyStack, ref: str, chains: list[str], tmp: Path, indexed: list[bool]) -> None:
    """rpull for socikit and `ctr image pull` for overlayfs, then compare what a container of the
    image sees under each."""
    ours_ns, theirs_ns = "default", "reference"
    summary = stack.rpull(ref, "--namespace", ours_ns)
    assert [layer["state"] == "lazy" for layer in summary["layers"]] == indexed, summary
    stack.ctr("image", "pull", "--plain-http", ref, namespace=theirs_ns)
    ours = container_listing(stack, SNAPSHOTTER, chains[-1], tmp / "ours", namespace=ours_ns)
    theirs = container_listing(stack, "overlayfs", chains[-1], tmp / "theirs", namespace=theirs_ns)
    assert ours == theirs
    assert any(" -rw" in line or " -r" in line for line in ours)  # files were compared, not an empty tree


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="the golden vectors are linux/amd64 images")
@pytest.mark.parametrize("vector", VECTOR_NAMES)
def test_reference_made_v2_images_are_served_lazily(stack: LazyStack, registry: RegistryServer,
                                                    tmp_path: Path, vector: str) -> None:
    layout = assemble_expected_layout(VECTORS / vector, tmp_path / "layout")
    ref = f"{registry.host}/vectors/{vector}:v2"
    push_layout(layout, registry, f"vectors/{vector}", "v2")
    index_digest = json.loads((layout / "index.json").read_text())["manifests"][0]["digest"]
    _, manifest = _host_manifest(layout, index_digest)
    soci_index = _layout_json(layout, manifest["annotations"]["com.amazon.soci.index-digest"])
    indexed_layers = {d["annotations"]["com.amazon.soci.image-layer-digest"] for d in soci_index["layers"]}
    diff_ids = _layout_json(layout, manifest["config"]["digest"])["rootfs"]["diff_ids"]
    indexed = [layer["digest"] in indexed_layers for layer in manifest["layers"]]
    assert any(indexed)
    _compare_with_overlayfs(stack, ref, chain_ids(diff_ids), tmp_path, indexed)


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="the golden vectors are linux/amd64 images")
@pytest.mark.parametrize("vector", ["tricky-pax", "uncompressed-layer", "min-layer-size"])
def test_reference_made_v1_indexes_are_found_through_the_fallback_tag(v1_stack: LazyStack,
                                                                      registry: RegistryServer, tmp_path: Path,
                                                                      vector: str) -> None:
    from socikit.oci.descriptor import Descriptor
    from socikit.registry.client import RegistryClient

    source = VECTORS / vector / "input"
    ref = f"{registry.host}/vectors-v1/{vector}:v1"
    push_layout(source, registry, f"vectors-v1/{vector}", "v1")
    (v1_file,) = (VECTORS / vector / "expected-current").glob("soci-index-v1-*.json")
    v1 = v1_file.read_bytes()
    document = json.loads(v1)
    with RegistryClient(registry.host, plain_http=True) as client:
        repo = f"vectors-v1/{vector}"
        client.push_blob(repo, Descriptor.from_json(document["config"]), b"{}")
        for ztoc in document["layers"]:
            blob = (VECTORS / vector / "expected-current" / f"ztoc-{ztoc['digest'].split(':')[1]}.bin").read_bytes()
            client.push_blob(repo, Descriptor.from_json(ztoc), blob)
        digest = "sha256:" + hashlib.sha256(v1).hexdigest()
        client.push_referrer(repo, v1, Descriptor(document["mediaType"], digest, len(v1),
                                                  artifact_type=document["config"]["mediaType"]),
                             document["subject"]["digest"])
    manifest_digest = json.loads((source / "index.json").read_text())["manifests"][0]["digest"]
    manifest = _layout_json(source, manifest_digest)
    indexed_layers = {d["annotations"]["com.amazon.soci.image-layer-digest"] for d in document["layers"]}
    diff_ids = _layout_json(source, manifest["config"]["digest"])["rootfs"]["diff_ids"]
    indexed = [layer["digest"] in indexed_layers for layer in manifest["layers"]]
    _compare_with_overlayfs(v1_stack, ref, chain_ids(diff_ids), tmp_path, indexed)


def test_v1_index_is_used_when_named_or_enabled_only(stack: LazyStack, registry: RegistryServer,
                                                     tmp_path: Path) -> None:
    b = images.TarBuilder()
    b.file("data/file.bin", _pattern(100_000, 51))
    layout = tmp_path / "layout"
    images.write_oci_layout(layout, [b.finish()])
    ref = f"{registry.host}/lazy/v1-only:1"
    (platform,) = convert_and_push(layout, ref, tmp_path, "--v1")["platforms"]
    summary = stack.rpull(ref)  # the default config looks for SOCI v2 only, as the reference's does
    assert [layer["state"] for layer in summary["layers"]] == ["downloaded"]
    # the index named explicitly (containerd.io/snapshot/remote/soci.index.digest) is used whatever its version
    named = stack.rpull(ref, "--namespace", "named", "--soci-index-digest", platform["soci_index"])
    assert [layer["state"] for layer in named["layers"]] == ["lazy"]
    layer = named["layers"][0]["digest"]
    assert _read_in_thread(stack.layer_dir(layer) / "data/file.bin") == _pattern(100_000, 51)


def test_sigterm_unmounts_the_fuse_layers(stack: LazyStack, lazy_image: PushedImage) -> None:
    stack.rpull(lazy_image.ref)
    assert dict(_fuse_mounts()).get(str(stack.fuse_dir)) == "fuse"
    stack.containerd.stop()
    assert stack.daemon.stop() == 0
    assert str(stack.fuse_dir) not in dict(_fuse_mounts())
    assert not stack.daemon.address.exists()


def test_credentials_handed_over_by_rpull_serve_a_private_image(htpasswd_registry: RegistryServer,
                                                                 tmp_path_factory: pytest.TempPathFactory,
                                                                 tmp_path: Path) -> None:
    b = images.TarBuilder()
    b.file("data/secret.bin", _pattern(150_000, 61))
    layout = tmp_path / "layout"
    images.write_oci_layout(layout, [images.host_rootfs_tar(), b.finish()])
    ref = f"{htpasswd_registry.host}/lazy/private:1"
    convert_and_push(layout, ref, tmp_path, "--user", f"{TEST_USER}:{TEST_PASSWORD}")
    empty_config = tmp_path / "no-docker-config"
    empty_config.mkdir()
    with lazy_stack(tmp_path_factory, env={"DOCKER_CONFIG": str(empty_config)}) as private:
        summary = private.rpull(ref, "--user", f"{TEST_USER}:{TEST_PASSWORD}")
        assert [layer["state"] for layer in summary["layers"]] == ["lazy", "lazy"]
        layer = summary["layers"][1]["digest"]
        data = _read_in_thread(private.layer_dir(layer) / "data/secret.bin")
        assert data == _pattern(150_000, 61)
        assert private.run(ref, "/bin/sh", "-c", "sha256sum /data/secret.bin").stdout.split()[0] == \
            hashlib.sha256(_pattern(150_000, 61)).hexdigest()
        log = private.daemon.log_path.read_text()
        assert "registry credentials received for an image" in log and TEST_PASSWORD not in log


def test_background_fetch_fills_the_layer_and_it_serves_offline(tmp_path_factory: pytest.TempPathFactory,
                                                                lazy_image: PushedImage, proxy: TcpProxy) -> None:
    config = ("[background_fetch]\nsilence_period_msec = 200\nfetch_period_msec = 1\nemit_metric_period_sec = 1\n"
              "[blob]\nfetching_timeout_sec = 6\n")
    with lazy_stack(tmp_path_factory, config) as quick:
        ref = f"{proxy.host}/lazy/app:1"
        quick.rpull(ref)
        middle = lazy_image.layers[2]["digest"]
        deadline = time.monotonic() + WAIT_S
        while not any(e.get("msg") == "layer fully cached" and e.get("layer") == middle
                      for e in quick.daemon.log_entries()):
            assert time.monotonic() < deadline, quick.daemon.log_tail()
            time.sleep(0.2)
        assert quick.counter("background_fetch_spans_total", layer=middle) > 0
        assert quick.counter("background_fetch_remaining_spans", layer=middle) == 0
        proxy.mode = "down"
        tar = lazy_image.tar_of(middle)
        for name in ("opt/app/big.bin", "opt/app/other.bin", "opt/many/f07"):
            assert _read_in_thread(quick.layer_dir(middle) / name) == _member(tar, name)
        proxy.mode = "pass"

"""LazyFileSystem on a real FUSE mount (this process serves it from a trio thread): what `stat`,
`readdir`, `readlink`, xattrs and reads show, a corrupt span as EIO, the root provider seam, and
an overlay mount stacked on layer directories (whiteouts and opaque directories as overlayfs
reads them)."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import subprocess
import threading
from collections.abc import Callable, Hashable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import trio

from socikit.lazy.cache import SpanCache
from socikit.lazy.events import NoEvents
from socikit.lazy.fetcher import SpanFetcher
from socikit.lazy.fusefs import (
    FuseOptions,
    LayerDirectory,
    LazyFileSystem,
    MountedLayer,
    Node,
    VirtualDir,
    VirtualFile,
)
from socikit.lazy.tree import LayerTree
from socikit.ztoc.spans import span_table
from tests.images import TarBuilder
from tests.lazy.layers import Layer, every_kind, make_layer, noise
from tests.lazy.test_fetcher import FakeRegistry


class Errors(NoEvents):
    def __init__(self) -> None:
        self.fuse: list[str] = []
        self.failures = 0

    def fuse_error(self, operation: str) -> None:
        self.fuse.append(operation)

    def span_verification_failed(self, layer: str) -> None:
        self.failures += 1


class Served:
    """A LazyFileSystem mounted at `mountpoint`, served by trio on a thread of this process."""

    def __init__(self, fs: LazyFileSystem, mountpoint: Path, cache_dir: Path) -> None:
        self.fs = fs
        self.mountpoint = mountpoint
        self.cache_dir = cache_dir
        self.token: Any = None
        self.limiter: trio.CapacityLimiter | None = None
        self._ready = threading.Event()
        self._cancel: trio.CancelScope | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            trio.run(self._main)
        except BaseException as exc:  # noqa: BLE001 - reported by start/stop
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        self.token = trio.lowlevel.current_trio_token()
        self.limiter = trio.CapacityLimiter(8)
        with trio.CancelScope() as scope:
            self._cancel = scope
            async with trio.open_nursery() as nursery:
                await nursery.start(self.fs.serve, self.mountpoint)
                self._ready.set()

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise self._error

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        return trio.from_thread.run_sync(fn, *args, trio_token=self.token)

    def layer(self, layer: Layer, registry: FakeRegistry, *, events: Any = None) -> MountedLayer:
        def attach() -> MountedLayer:
            assert self.limiter is not None
            cache = SpanCache(self.cache_dir, max_bytes=1 << 30, memory_bytes=1 << 20)
            fetcher = SpanFetcher(layer.digest, span_table(layer.ztoc), registry.read, cache, limiter=self.limiter,
                                  timeout=30, events=events)
            return self.fs.attach(LayerTree(layer.ztoc), fetcher, label=layer.digest)

        result: MountedLayer = self.call(attach)
        return result

    def stop(self) -> None:
        if self._cancel is not None and self._thread.is_alive():
            with contextlib.suppress(RuntimeError):
                self.call(self._cancel.cancel)
        self._thread.join(30)
        subprocess.run(["umount", "-l", str(self.mountpoint)], capture_output=True)
        assert not self._thread.is_alive()


@contextlib.contextmanager
def served(root: Any, tmp_path: Path, **options: Any) -> Iterator[Served]:
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    events = options.pop("events", None)
    server = Served(LazyFileSystem(root, options=FuseOptions(**options), events=events), mountpoint,
                    tmp_path / "cache")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def kinds() -> Layer:
    return make_layer(every_kind())


def test_a_layer_as_the_kernel_sees_it(kinds: Layer, tmp_path: Path) -> None:
    directory = LayerDirectory()
    registry = FakeRegistry(kinds.blob)
    errors = Errors()
    with served(directory, tmp_path, events=errors) as server:
        directory.layers["one"] = server.layer(kinds, registry)
        top = server.mountpoint / "one"
        assert os.listdir(server.mountpoint) == ["one"]
        assert sorted(os.listdir(top)) == ["dev", "etc", "var"]
        assert sorted(os.listdir(top / "etc")) == ["big.bin", "gone", "hard", "link", "small.txt", "suid"]
        big = os.stat(top / "etc/big.bin")
        assert (stat.S_IMODE(big.st_mode), big.st_size, big.st_nlink) == (0o644, 400_000, 1)
        assert big.st_mtime_ns == 1_700_000_000 * 10**9
        small, hard = os.stat(top / "etc/small.txt"), os.stat(top / "etc/hard")
        assert small.st_ino == hard.st_ino and small.st_nlink == 2
        assert (stat.S_IMODE(small.st_mode), small.st_uid, small.st_gid) == (0o600, 7, 8)
        assert os.readlink(top / "etc/link") == "small.txt"
        assert os.lstat(top / "etc/link").st_size == 9
        assert (top / "etc/link").read_bytes() == b"small\n"
        null = os.stat(top / "dev/null")
        assert stat.S_ISCHR(null.st_mode) and null.st_rdev == os.makedev(1, 3)
        assert stat.S_ISFIFO(os.stat(top / "dev/pipe").st_mode)
        gone = os.stat(top / "etc/gone")
        assert stat.S_ISCHR(gone.st_mode) and gone.st_rdev == 0
        assert os.getxattr(top / "etc/big.bin", "user.bin") == b"\x00\xff"
        assert sorted(os.listxattr(top / "etc/big.bin")) == ["user.bin", "user.note"]
        assert os.getxattr(top / "var/opq", "trusted.overlay.opaque") == b"y"
        with pytest.raises(OSError) as no_attr:
            os.getxattr(top / "etc/small.txt", "user.none")
        assert no_attr.value.errno == errno.ENODATA
        assert sorted(os.listdir(top / "var/opq")) == ["kept"]
        assert (top / "etc/big.bin").read_bytes() == kinds.member("etc/big.bin")
        assert (top / "etc/hard").read_bytes() == b"small\n"
        with open(top / "etc/big.bin", "rb") as handle:
            handle.seek(123_456)
            assert handle.read(5000) == kinds.member("etc/big.bin")[123_456:128_456]
        for path, flags in ((top / "etc/small.txt", os.O_WRONLY), (top / "new", os.O_CREAT | os.O_WRONLY)):
            with pytest.raises(OSError) as refused:
                os.open(path, flags)
            assert refused.value.errno == errno.EROFS
        assert not (top / "nothing").exists()
        fs_stat = os.statvfs(top)
        assert fs_stat.f_namemax == 255 and fs_stat.f_bsize == 4096
        device = os.stat(server.mountpoint).st_dev
        bdi = Path(f"/sys/class/bdi/{os.major(device)}:{os.minor(device)}/read_ahead_kb")
        assert bdi.read_text().strip() == "4096"  # 1 MiB requests, several in flight
        assert errors.fuse == []  # the kernel refuses writes to a read-only mount itself


def test_a_corrupt_span_reads_as_eio(kinds: Layer, tmp_path: Path) -> None:
    directory = LayerDirectory()
    registry = FakeRegistry(kinds.blob)
    registry.corrupt = 1000  # every answer
    errors = Errors()
    with served(directory, tmp_path, events=errors) as server:
        directory.layers["one"] = server.layer(kinds, registry, events=errors)
        with pytest.raises(OSError) as failed:
            (server.mountpoint / "one/etc/big.bin").read_bytes()
        assert failed.value.errno == errno.EIO
        assert errors.failures >= 1 and "read" in errors.fuse
        registry.corrupt = 0
        assert (server.mountpoint / "one/etc/big.bin").read_bytes() == kinds.member("etc/big.bin")


def test_concurrent_readers_of_one_layer(tmp_path: Path) -> None:
    b = TarBuilder()
    for n in range(16):
        b.file(f"files/f{n}", noise(120_000 + n * 1000, n + 10))
    layer = make_layer(b)
    directory = LayerDirectory()
    with served(directory, tmp_path) as server:
        directory.layers["l"] = server.layer(layer, FakeRegistry(layer.blob))
        results: dict[int, bytes] = {}

        def read(n: int) -> None:
            results[n] = (server.mountpoint / f"l/files/f{n}").read_bytes()

        threads = [threading.Thread(target=read, args=(n,)) for n in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert results == {n: layer.member(f"files/f{n}") for n in range(16)}


class StoreLikeRoot:
    """A root provider shaped like the podman store's: `<ref>/<digest>/{diff,info}`."""

    def __init__(self, layer: MountedLayer) -> None:
        self.layer = layer
        self.changes: list[tuple[str, Hashable | None, str]] = []

    async def lookup(self, parent: Hashable | None, name: str) -> Node | None:
        if parent is None and name == "ref":
            return VirtualDir(("ref",))
        if parent == ("ref",) and name == "sha256:abc":
            return VirtualDir(("layer",), mode=0o555)
        if parent == ("layer",):
            if name == "diff":
                return self.layer
            if name == "info":
                return VirtualFile.of_bytes(("info",), b'{"compression":2}')
        return None

    async def listdir(self, parent: Hashable | None) -> Sequence[tuple[str, Node]]:
        return []  # lookups only, as containers/storage asks

    async def change(self, operation: str, parent: Hashable | None, name: str) -> None:
        self.changes.append((operation, parent, name))
        raise OSError(errno.ENOENT, "not kept")


def test_the_root_provider_seam(kinds: Layer, tmp_path: Path) -> None:
    holder: dict[str, StoreLikeRoot] = {}

    class Deferred:
        async def lookup(self, parent: Hashable | None, name: str) -> Node | None:
            return await holder["root"].lookup(parent, name)

        async def listdir(self, parent: Hashable | None) -> Sequence[tuple[str, Node]]:
            return await holder["root"].listdir(parent)

        async def change(self, operation: str, parent: Hashable | None, name: str) -> None:
            await holder["root"].change(operation, parent, name)

    with served(Deferred(), tmp_path, read_only=False) as server:
        holder["root"] = StoreLikeRoot(server.layer(kinds, FakeRegistry(kinds.blob)))
        base = server.mountpoint / "ref" / "sha256:abc"
        assert (base / "info").read_bytes() == b'{"compression":2}'
        assert stat.S_IMODE(os.stat(base).st_mode) == 0o555
        assert (base / "diff/etc/small.txt").read_bytes() == b"small\n"
        assert not (base / "blob").exists()
        with pytest.raises(FileNotFoundError):
            os.mknod(base / "use")
        with pytest.raises(FileNotFoundError):
            os.rmdir(base)
        assert holder["root"].changes == [("mknod", ("layer",), "use"), ("rmdir", ("ref",), "sha256:abc")]


def test_overlay_over_layer_directories(tmp_path: Path) -> None:
    lower = TarBuilder()
    lower.file("data/keep.txt", b"kept\n")
    lower.file("data/gone.txt", b"deleted above\n")
    lower.file("data/dir/old.txt", b"hidden by an opaque dir\n")
    upper = TarBuilder()
    upper.whiteout("data/gone.txt")
    upper.opaque("data/dir")
    upper.file("data/dir/new.txt", b"new\n")
    layers = make_layer(lower), make_layer(upper)
    directory = LayerDirectory()
    merged = tmp_path / "merged"
    merged.mkdir()
    with served(directory, tmp_path) as server:
        directory.layers["l0"] = server.layer(layers[0], FakeRegistry(layers[0].blob))
        directory.layers["l1"] = server.layer(layers[1], FakeRegistry(layers[1].blob))
        lowerdir = f"{server.mountpoint / 'l1'}:{server.mountpoint / 'l0'}"
        subprocess.run(["mount", "-t", "overlay", "overlay", "-o", f"lowerdir={lowerdir}", str(merged)],
                       check=True, capture_output=True)
        try:
            assert sorted(os.listdir(merged / "data")) == ["dir", "keep.txt"]
            assert sorted(os.listdir(merged / "data/dir")) == ["new.txt"]
            assert (merged / "data/keep.txt").read_bytes() == b"kept\n"
            assert (merged / "data/dir/new.txt").read_bytes() == b"new\n"
        finally:
            subprocess.run(["umount", str(merged)], check=True, capture_output=True)


def test_a_detached_layer_is_gone(kinds: Layer, tmp_path: Path) -> None:
    directory = LayerDirectory()
    with served(directory, tmp_path, entry_timeout=0, attr_timeout=0) as server:
        layer = server.layer(kinds, FakeRegistry(kinds.blob))
        directory.layers["one"] = layer
        assert (server.mountpoint / "one/etc/small.txt").read_bytes() == b"small\n"

        def remove() -> None:
            del directory.layers["one"]
            server.fs.invalidate(None, "one")
            server.fs.detach(layer)

        server.call(remove)
        assert not (server.mountpoint / "one").exists()
        assert os.listdir(server.mountpoint) == []

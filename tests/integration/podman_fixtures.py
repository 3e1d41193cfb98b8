"""Debian 12's podman 4.3.1 with storages of its own, the additional layer store under test, and a
SOCI image for both in a loopback registry.

* `PodmanStorage`: one containers/storage + libpod state under a tmp dir, configured through its
  own `storage.conf` (`CONTAINERS_STORAGE_CONF`; on this podman `--root`/`--runroot` on the
  command line silently drop `additionallayerstores`) and `containers.conf` (`CONTAINERS_CONF`:
  runc with its state under the tmp dir, cgroupfs, file locks, events in a file, copy temp files
  and CNI configs under the tmp dir). The machine's podman state is not used; only the blob info
  cache in /var/lib/containers/cache is, which skopeo shares. `podman_storages` makes storages
  and, at teardown, removes every container (killing by pid any process still running from the
  storage), unmounts whatever is still mounted below it and deletes it.
* `FuseLayerStore`: `socikit store` itself, a process serving the store over FUSE (its span
  cache, artifacts and status file under a tmp dir; background fetch off, so the bytes it fetches
  are the bytes podman's reads needed). The protocol tests take it from the `layer_store` fixture
  and read what they expect of it from its attributes.
* `StaticLayerStore`: the additional layer store as plain directories the test fills before
  podman looks (a layer's `diff` unpacked, its `info` from `socikit.store`, its `blob`): the tests
  that change what podman finds in a store (a broken `info`, a missing `blob`) use it
  (`static_layer_store`).
* `trace_store_calls`: what podman did in the store, from `strace -ff` of a podman command:
  every stat, open, use, unlink and rmdir below the store, with the result the kernel returned.
"""

from __future__ import annotations

import contextlib
import fcntl
import gzip
import hashlib
import http.client
import io
import json
import os
import pty
import re
import shutil
import signal
import struct
import subprocess
import sys
import tarfile
import tempfile
import termios
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from socikit.cli import app
from socikit.store import layout
from socikit.store.config import parse_config
from socikit.store.resolve import Resolver
from tests import images
from tests.integration.registry_fixtures import RegistryServer
from tests.mounts import mounts_under
from tests.snapshotter.local_layers import unpack_layer
from tests.vectors import REPO_ROOT

PODMAN = "/usr/bin/podman"
STRACE = "/usr/bin/strace"
# What `podman run` needs on these machines: the VM's hard limits make runc fail otherwise, and
# there is no network for containers.
RUN_FLAGS = ("--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024", "--network", "none")
# Files podman bind-mounts into every container, with the container's ID or name in them.
PODMAN_WRITES = frozenset({"./etc/hostname", "./etc/hosts", "./etc/resolv.conf", "./run/.containerenv"})
# containers/storage's warnings when a store answers a use or a release with anything but ENOENT.
WARN_USE = re.compile(r"Unexpected error by Additional Layer Store (.*) during use; GC doesn't seem to be supported")
WARN_RELEASE = re.compile(r"Unexpected error by Additional Layer Store (.*) during release; "
                          r"GC doesn't seem to be supported")


def require_podman() -> None:
    for tool in (PODMAN, STRACE, "/usr/sbin/runc", "/usr/bin/skopeo"):
        if not Path(tool).exists():
            pytest.fail(f"{tool} is missing: apt-get install -y podman runc skopeo strace")


# --- a storage ------------------------------------------------------------------------------------

def _short_runroot() -> Path:
    # podman passes the runroot to conmon's exit command (`podman --runroot … container cleanup`)
    # and refuses one longer than 50 characters there: with pytest's tmp paths every container's
    # cleanup failed, and each `podman run` returned only after its 20 s conmon timeout.
    return Path(tempfile.mkdtemp(prefix="skpr-", dir="/tmp"))


@dataclass
class PodmanStorage:
    """podman with its own graphroot and libpod state under `base` and a runroot of its own (a
    short path under /tmp); `store` is the additional layer store its storage.conf names
    (`<store>:ref`), or None for a plain storage."""

    base: Path
    store: Path | None = None
    runroot: Path = field(default_factory=_short_runroot)

    @property
    def graphroot(self) -> Path:
        return self.base / "graph"

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "CONTAINERS_STORAGE_CONF": str(self.base / "storage.conf"),
                "CONTAINERS_CONF": str(self.base / "containers.conf")}

    def write_config(self) -> None:
        (self.base / "tmp").mkdir(parents=True, exist_ok=True)
        lines = ["[storage]", 'driver = "overlay"', f'graphroot = "{self.graphroot}"',
                 f'runroot = "{self.runroot}"']
        if self.store is not None:
            lines += ["[storage.options]", f'additionallayerstores = ["{self.store}:ref"]']
        (self.base / "storage.conf").write_text("\n".join(lines) + "\n")
        (self.base / "containers.conf").write_text(
            "[engine]\n"
            f'tmp_dir = "{self.base / "tmp"}"\n'
            f'image_copy_tmp_dir = "{self.base / "tmp"}"\n'
            'events_logger = "file"\n'
            'cgroup_manager = "cgroupfs"\n'
            'lock_type = "file"\n'
            'runtime = "runc"\n'
            "[network]\n"
            f'network_config_dir = "{self.base / "cni"}"\n'
        )

    def podman(self, *args: str, check: bool = True, timeout: float = 300,
               trace: Path | None = None) -> subprocess.CompletedProcess[str]:
        """`podman ARGS` in this storage; with `trace`, under `strace -ff -o <trace>/t` (paths in
        full, the syscalls containers/storage uses on a store)."""
        argv = [PODMAN, "--runtime-flag", f"root={self.base / 'runc'}", *args]
        if trace is not None:
            trace.mkdir(parents=True, exist_ok=True)
            argv = [STRACE, "-ff", "-qq", "-s", "4096", "-e", "signal=none",
                    "-e", "trace=openat,unlinkat,rmdir,newfstatat,statx,mkdirat", "-o", str(trace / "t"), *argv]
        result = subprocess.run(argv, capture_output=True, text=True, env=self.env, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)} failed ({result.returncode}):\n{result.stderr[-4000:]}")
        return result

    def pull(self, ref: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return self.podman("pull", "--tls-verify=false", ref, **kwargs)

    def pull_in_terminal(self, ref: str) -> tuple[int, str]:
        """`podman pull` with a terminal (200 columns) for its output: the progress lines only a
        terminal gets ("Copying blob … skipped: already exists"). Returns (exit code, text)."""
        leader, follower = pty.openpty()
        fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
        proc = subprocess.Popen([PODMAN, "pull", "--tls-verify=false", ref], stdin=follower, stdout=follower,
                                stderr=follower, env=self.env, close_fds=True)
        os.close(follower)
        chunks = []
        with contextlib.suppress(OSError):  # EIO once the terminal's last writer is gone
            while data := os.read(leader, 65536):
                chunks.append(data)
        os.close(leader)
        code = proc.wait(timeout=300)
        return code, b"".join(chunks).decode("utf-8", "replace")

    def listing(self, ref: str) -> list[str]:
        """Every path of a container of `ref` with type, mode, owner, size or link target, sha256;
        the files podman writes into every container (they name the container) left out."""
        result = self.podman("run", "--rm", *RUN_FLAGS, ref, "/bin/sh", "-c", images.LIST_FILES_SCRIPT)
        return [line for line in result.stdout.splitlines() if line.split(" ", 1)[0] not in PODMAN_WRITES]

    def info(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.podman("info", "--format", "json").stdout)
        return data

    def layer_records(self) -> list[dict[str, Any]]:
        """containers/storage's records of its layers (overlay-layers/layers.json)."""
        path = self.graphroot / "overlay-layers" / "layers.json"
        records: list[dict[str, Any]] = json.loads(path.read_text()) if path.exists() else []
        return records

    def layer_dirs(self) -> dict[str, Path]:
        """Layer ID -> its overlay directory."""
        return {r["id"]: self.graphroot / "overlay" / r["id"] for r in self.layer_records()}

    def cleanup(self) -> None:
        if (self.base / "containers.conf").exists():
            self.podman("rm", "--all", "--force", "--time", "0", check=False, timeout=120)
        for place in (self.base, self.runroot):
            for pid in _processes_mentioning(place):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            for point in mounts_under(place):
                if subprocess.run(["umount", point], capture_output=True).returncode != 0:
                    subprocess.run(["umount", "-l", point], capture_output=True)
        shutil.rmtree(self.base, ignore_errors=True)
        shutil.rmtree(self.runroot, ignore_errors=True)


def _processes_mentioning(base: Path) -> list[int]:
    """Processes whose command line names a path under `base`: conmon and container processes
    the storage's podman commands started."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if os.fsencode(base) in cmdline:
            found.append(int(entry.name))
    return found


@pytest.fixture
def podman_storages(tmp_path: Path) -> Iterator[Callable[..., PodmanStorage]]:
    """`make(store=None)`: a new storage (with `store` as its additional layer store); all of them
    cleaned up at teardown."""
    require_podman()
    made: list[PodmanStorage] = []

    def make(store: Path | None = None) -> PodmanStorage:
        storage = PodmanStorage(tmp_path / f"podman-{len(made)}", store)
        made.append(storage)
        storage.write_config()
        return storage

    try:
        yield make
    finally:
        for storage in made:
            storage.cleanup()


# --- what podman did in the store ------------------------------------------------------------------

@dataclass(frozen=True)
class StoreCall:
    """One syscall on a path below the store. `op`: "stat", "open" (read), "use" (create `use`),
    "unuse" (unlink `use`), "release" (rmdir a layer directory); `result`: "ok" or the errno name."""

    op: str
    reference: str
    digest: str
    name: str  # "" for the layer directory itself
    result: str


_SYSCALL = re.compile(r'^(?P<call>openat|unlinkat|newfstatat|statx|rmdir)\((?:AT_FDCWD, )?"(?P<path>[^"]*)"'
                      r'(?P<args>.*)\) += (?P<ret>-?\d+)(?: (?P<err>E[A-Z]+))?')


def trace_store_calls(trace: Path, store: Path) -> list[StoreCall]:
    """The calls on layer paths below `store` in an `strace -ff` output directory, in no
    particular order across threads."""
    calls = []
    for path in sorted(trace.iterdir()):
        for line in path.read_text(errors="replace").splitlines():
            match = _SYSCALL.match(line)
            if match is None or not match["path"].startswith(f"{store}/"):
                continue
            parts = match["path"][len(str(store)) + 1:].split("/")
            if len(parts) not in (2, 3) or not layout.is_digest_name(parts[1]):
                continue
            reference = layout.decode_reference(parts[0]) or f"<undecodable {parts[0]}>"
            name = parts[2] if len(parts) == 3 else ""
            call, args = match["call"], match["args"]
            if call == "openat":
                op = "use" if "O_CREAT" in args else "open"
            elif call == "unlinkat":
                op = "release" if "AT_REMOVEDIR" in args else "unuse"
            elif call == "rmdir":
                op = "release"
            else:
                op = "stat"
            result = "ok" if match["err"] is None else match["err"]
            calls.append(StoreCall(op, reference, parts[1], name, result))
    return calls


def podman_warnings(stderr: str) -> tuple[list[str], list[str]]:
    """The errors containers/storage reported for uses and releases (the store's answers that
    were not ENOENT), as it printed them."""
    return WARN_USE.findall(stderr), WARN_RELEASE.findall(stderr)


# --- the store under test --------------------------------------------------------------------------

@dataclass
class StaticLayerStore:
    """The additional layer store as plain directories, made before podman looks.

    What podman sees it answer (the FUSE store answers ENOENT to both): a `use` is created (and
    podman removes it again), a release (`rmdir` of a non-empty directory) fails ENOTEMPTY."""

    root: Path
    use_result: str = "ok"
    release_result: str = "ENOTEMPTY"
    kind: str = "static"
    layers: list[Path] = field(default_factory=list)

    def layer_dir(self, ref: str, digest: str) -> Path:
        return layout.layer_dir(self.root, ref, digest)

    def add_layer(self, ref: str, digest: str, *, tar: bytes, blob: bytes, info: bytes) -> Path:
        directory = self.layer_dir(ref, digest)
        unpack_layer(tar, directory / "diff")
        os.chmod(directory / "diff", layer_root_mode(tar))
        (directory / "info").write_bytes(info)
        (directory / "blob").write_bytes(blob)
        self.layers.append(directory)
        return directory

    def add_image(self, image: SociImage, ref: str, resolver: Resolver) -> list[str]:
        """Every layer `socikit store` would serve for `ref` (the resolver's answer), with the
        `info` it would show. Returns the served layer digests."""
        served = []
        for digest, tar, blob in zip(image.layer_digests, image.tars, image.blobs, strict=True):
            found = resolver.layer(layout.LayerKey(ref, digest))
            if found is not None:
                self.add_layer(ref, digest, tar=tar, blob=blob, info=found.info)
                served.append(digest)
        return served


def layer_root_mode(tar: bytes) -> int:
    """The mode containers/storage gives a layer's root directory: the tar's own entry for it,
    else 0555. A store's `diff` must show the same: the container's upper directory takes its
    mode (and so the container's `/`)."""
    with tarfile.open(fileobj=io.BytesIO(tar), mode="r:") as archive:
        for member in archive:
            if os.path.normpath(member.name).lstrip("/") in ("", ".") and member.isdir():
                return member.mode & 0o7777
    return 0o555


@pytest.fixture
def static_layer_store(tmp_path: Path) -> StaticLayerStore:
    """A store of plain directories, for tests that change what podman finds in it."""
    store = StaticLayerStore(tmp_path / "static-als")
    store.root.mkdir()
    return store


STORE_START_TIMEOUT_S = 60
# No background fetch: what the store fetches is what podman's reads needed.
STORE_CONFIG = "[background_fetch]\ndisable = true\n"


@dataclass
class FuseLayerStore:
    """`socikit store` as a process of its own: mounted at `root` (what storage.conf names), its
    state under `state`, its JSON log in `log_path`. A use is answered ENOENT, so is a release."""

    base: Path
    config_text: str = STORE_CONFIG
    use_result: str = "ENOENT"
    release_result: str = "ENOENT"
    kind: str = "fuse"
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def root(self) -> Path:
        return self.base / "mnt"

    @property
    def state(self) -> Path:
        return self.base / "state"

    @property
    def log_path(self) -> Path:
        return self.base / "store.log"

    def command(self) -> list[str]:
        return [sys.executable, "-m", "socikit", "store", "--root", str(self.state), "--mountpoint", str(self.root),
                "--config", str(self.base / "store.toml"), "--log-level", "debug"]

    def start(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        (self.base / "store.toml").write_text(self.config_text)
        path = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
        self.starts += 1
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         env={**os.environ, "PYTHONPATH": path})
        deadline = time.monotonic() + STORE_START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"socikit store exited with {self.proc.returncode}: {self.log_tail()}")
            if sum(1 for e in self.log_entries() if e.get("msg") == "serving") >= self.starts:
                return
            time.sleep(0.05)
        raise RuntimeError(f"socikit store did not start within {STORE_START_TIMEOUT_S} s: {self.log_tail()}")

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        if self.proc is None:
            return None
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=30)
        return proc.returncode

    def cleanup(self) -> None:
        self.stop()
        if self.root.exists() and _is_mounted(self.root):
            subprocess.run(["umount", "-l", str(self.root)], capture_output=True)

    def log_entries(self) -> list[dict[str, Any]]:
        entries = []
        with contextlib.suppress(FileNotFoundError):
            for line in self.log_path.read_text(errors="replace").splitlines():
                with contextlib.suppress(ValueError):
                    entries.append(json.loads(line))
        return entries

    def log_tail(self) -> str:
        with contextlib.suppress(FileNotFoundError):
            return self.log_path.read_text(errors="replace")[-4000:]
        return ""

    def status(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.state / "status.json").read_text())
        return data

    def wait_status(self, condition: Callable[[dict[str, Any]], bool], what: str,
                    timeout: float = 30) -> dict[str, Any]:
        """The status file once `condition` holds (the store rewrites it a moment after a change)."""
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(FileNotFoundError, ValueError):
                status = self.status()
                if condition(status):
                    return status
            if time.monotonic() > deadline:
                raise AssertionError(f"store status never showed {what}: {self.status()}")
            time.sleep(0.05)

    def in_use(self) -> dict[tuple[str, str], int]:
        return {(e["reference"], e["digest"]): e["count"] for e in self.status()["in_use"]}

    def layer_dir(self, ref: str, digest: str) -> Path:
        return layout.layer_dir(self.root, ref, digest)

    def add_image(self, image: SociImage, ref: str, resolver: Resolver) -> list[str]:
        """The layers the store will serve for `ref` (what socikit's resolver says; the store
        resolves them itself when podman looks)."""
        return [d for d in image.layer_digests if resolver.layer(layout.LayerKey(ref, d)) is not None]


def _is_mounted(path: Path) -> bool:
    return str(path) in mounts_under(path)


@pytest.fixture
def fuse_layer_store(tmp_path: Path) -> Iterator[FuseLayerStore]:
    """`socikit store` serving (stopped and unmounted at teardown)."""
    store = FuseLayerStore(tmp_path / "fuse-als")
    try:
        store.start()
        yield store
    finally:
        store.cleanup()


@pytest.fixture
def layer_store(fuse_layer_store: FuseLayerStore) -> FuseLayerStore:
    """The store the protocol tests run against: `socikit store` over FUSE (same attributes as the
    static store: `root`, `layer_dir`, `add_image`, `use_result`, `release_result`)."""
    return fuse_layer_store


# --- the test image ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class SociImage:
    """A runnable three-layer image in the registry, as pushed (`plain`, no SOCI index) and
    converted to SOCI v2 with every layer indexed (`soci`); `repository` on the registry."""

    repository: str
    tars: tuple[bytes, ...]
    blobs: tuple[bytes, ...]
    layer_digests: tuple[str, ...]
    diff_ids: tuple[str, ...]

    def ref(self, host: str, tag: str) -> str:
        return f"{host}/{self.repository}:{tag}"


def _pattern(size: int, seed: int) -> bytes:
    block = hashlib.sha256(str(seed).encode()).digest()
    return (block * (size // len(block) + 1))[:size]


def layer_tars() -> tuple[bytes, ...]:
    """Host tools; then files with owners, modes, hard and symbolic links and xattrs; then a
    layer deleting a file and a directory, making a directory opaque and replacing a file."""
    base = images.host_rootfs_tar()
    b = images.TarBuilder()
    b.dir("opt/app", mode=0o755)
    b.file("opt/app/data.bin", _pattern(300_000, 1), xattrs={"user.note": b"hello"})
    b.hardlink("opt/app/hard", "opt/app/data.bin")
    b.file("opt/app/owned", b"mine", mode=0o640, uid=1000, gid=1001)
    b.symlink("opt/app/rel", "data.bin")
    b.symlink("opt/app/dangling", "../nowhere")
    b.file("opt/app/run.sh", b"#!/bin/sh\necho hi\n", mode=0o4755)
    b.file("opt/app/to-delete", b"going away")
    b.dir("opt/gone-dir")
    b.file("opt/gone-dir/inner", b"inner")
    b.dir("opt/opaque", mode=0o700, uid=7, gid=8)
    b.file("opt/opaque/a", b"a")
    b.file("opt/app/replaced", b"old")
    middle = b.finish()
    b = images.TarBuilder(mtime=1_700_000_500.0)
    b.whiteout("opt/app/to-delete")
    b.whiteout("opt/gone-dir")
    b.opaque("opt/opaque")
    b.file("opt/opaque/new", b"new")
    b.file("opt/app/replaced", _pattern(5000, 2))
    top = b.finish()
    return base, middle, top


def check_listing_is_meaningful(listing: list[str]) -> None:
    """The listing shows what each layer did (so equal listings compare something)."""
    by_path = {line.split(" ", 1)[0]: line for line in listing}
    assert by_path["./opt/app/data.bin"].startswith("./opt/app/data.bin F 644 0:0 300000 2 ")
    assert by_path["./opt/app/hard"].split()[6] == by_path["./opt/app/data.bin"].split()[6]
    assert by_path["./opt/app/owned"].startswith("./opt/app/owned F 640 1000:1001 4 1 ")
    assert by_path["./opt/app/rel"] == "./opt/app/rel L 777 0:0 -> data.bin"
    assert by_path["./opt/app/run.sh"].startswith("./opt/app/run.sh F 4755 ")
    assert by_path["./opt/app/replaced"].startswith("./opt/app/replaced F 644 0:0 5000 1 ")
    assert "./opt/opaque/new" in by_path
    for gone in ("./opt/app/to-delete", "./opt/gone-dir", "./opt/gone-dir/inner", "./opt/opaque/a"):
        assert gone not in by_path
    assert "./bin/sh" in by_path or "./usr/bin/sh" in by_path


def build_soci_image(registry: RegistryServer, tmp_path: Path, repository: str) -> SociImage:
    """Push the image as it is (`:plain`) and converted to SOCI v2 with socikit (`:soci`)."""
    tars = layer_tars()
    layout_dir = tmp_path / "layout"
    images.write_oci_layout(layout_dir, list(tars))
    images.push(layout_dir, f"{registry.host}/{repository}:plain")
    result = CliRunner().invoke(app, ["convert", "--span-size", "65536", "--min-layer-size", "0", "--plain-http",
                                      "--no-cache", "--progress", "none", f"oci:{layout_dir}:latest",
                                      f"{registry.host}/{repository}:soci"])
    assert result.exit_code == 0, result.output
    index = json.loads((layout_dir / "index.json").read_text())

    def blob(digest: str) -> bytes:
        return (layout_dir / "blobs" / "sha256" / digest.split(":", 1)[1]).read_bytes()

    manifest = json.loads(blob(index["manifests"][0]["digest"]))
    config = json.loads(blob(manifest["config"]["digest"]))
    blobs = tuple(blob(d["digest"]) for d in manifest["layers"])
    assert tuple(gzip.decompress(b) for b in blobs) == tars
    return SociImage(repository=repository, tars=tars, blobs=blobs,
                     layer_digests=tuple(d["digest"] for d in manifest["layers"]),
                     diff_ids=tuple(config["rootfs"]["diff_ids"]))


@dataclass(frozen=True)
class SeenRequest:
    """One request through the proxy: method, path, who sent it (`socikit` for the store and
    socikit's commands, else podman or skopeo), its `Range` header ("" for none)."""

    method: str
    path: str
    agent: str
    range: str

    @property
    def by_socikit(self) -> bool:
        return self.agent.startswith("socikit")

    @property
    def blob(self) -> str | None:
        """The digest of the blob a GET fetches, else None."""
        return self.path.rsplit("/", 1)[1] if self.method == "GET" and "/blobs/" in self.path else None


class RecordingProxy:
    """A forwarding proxy in front of the registry that records every request (`seen`: the
    request lines; `requests`: `SeenRequest`s). Repeated request headers are forwarded as sent
    (podman sends one `Accept` per media type)."""

    def __init__(self, registry: RegistryServer) -> None:
        self.seen: list[str] = []
        self.requests: list[SeenRequest] = []
        self._lock = threading.Lock()
        proxy = self
        upstream_port = registry.port

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _forward(self) -> None:
                with proxy._lock:
                    proxy.seen.append(f"{self.command} {self.path}")
                    proxy.requests.append(SeenRequest(self.command, self.path, self.headers.get("User-Agent", ""),
                                                      self.headers.get("Range", "")))
                length = int(self.headers.get("Content-Length", "0") or 0)
                body = self.rfile.read(length) if length else None
                conn = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=60)
                try:
                    conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                    for key, value in self.headers.items():
                        if key.lower() != "connection":
                            conn.putheader(key, value)
                    conn.endheaders(body)
                    resp = conn.getresponse()
                    data = resp.read()
                finally:
                    conn.close()
                self.send_response(resp.status)
                for key, value in resp.getheaders():
                    if key.lower() not in ("connection", "transfer-encoding", "content-length"):
                        self.send_header(key, value)
                self.send_header("Content-Length", resp.getheader("Content-Length", "0") if self.command == "HEAD"
                                 else str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _forward  # noqa: N815

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def blob_gets(self, *, whole: bool = False) -> list[str]:
        """The digests of the blobs podman (not the store) fetched with GET, in order; `whole`:
        the GETs of anyone without a `Range` header, that is of a whole blob."""
        with self._lock:
            return [r.blob for r in self.requests if r.blob is not None
                    and (not r.range if whole else not r.by_socikit)]

    def store_ranges(self, digest: str) -> list[str]:
        """The `Range` headers of the store's GETs of blob `digest`."""
        with self._lock:
            return [r.range for r in self.requests if r.blob == digest and r.by_socikit]

    def clear(self) -> None:
        with self._lock:
            self.seen.clear()
            self.requests.clear()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


@contextlib.contextmanager
def resolver_for(*hosts: str, v1: bool = False, extra: str = "", **kwargs: Any) -> Iterator[Resolver]:
    """socikit's resolver reaching the given loopback registries over plain HTTP (`extra`: more
    config), with its state in a temporary directory."""
    text = "".join(f'[resolver.host."{h}"]\nplain_http = true\n' for h in hosts) + extra
    if v1:
        text += "[pull_modes.soci_v1]\nenable = true\n"
    with tempfile.TemporaryDirectory(prefix="sk-resolver-") as state:
        resolver = Resolver(parse_config(text), state=Path(state), **kwargs)
        try:
            yield resolver
        finally:
            resolver.close()

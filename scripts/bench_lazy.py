#!/usr/bin/env python3
"""Benchmark lazy pulls (socikit's snapshotter, and `socikit store` for podman) against normal
pulls, in one run.

Builds (and caches under .bench/lazy/) two images from this machine's own files:
  - `startup`: >= 300 MB uncompressed, a Python 3.11 image: the listing tools, the interpreter and
    the shared libraries it loads, /usr/lib/x86_64-linux-gnu and /usr/share/doc up to the size
    (an OS layer), /usr/lib/python3.11 and /usr/lib/python3/dist-packages (a Python layer);
    command `python3 -c 'import json, email; print("ready")'`;
  - `bigfile`: one layer holding a 200 MB file made of real binaries (for read throughput).
Converts both with `socikit convert --span-size S` into a docker-registry on 127.0.0.1 and puts
a throttling relay in front of it (all connections share 100 Mbit/s; every request waits 10 ms
before it is forwarded). Then, per round, with a fresh containerd and snapshotter each time
(nothing cached):
  - normal: `ctr image pull` (overlayfs) + `ctr run`, timed from the start of the pull to the
    container's first output line; bytes = what the relay delivered;
  - lazy: `socikit image rpull --snapshotter socikit` + `ctr run --snapshotter socikit`, same
    clock; bytes = what the relay delivered (index, ztocs, spans, config, manifests).
And the same two with podman (fresh storage each time, its own storage.conf):
  - podman normal: `podman pull` + `podman run`;
  - podman lazy: `socikit store` running (started before the clock, fresh root), the storage's
    `additionallayerstores` naming it, `podman pull` + `podman run`; span bytes from the store's
    status file.
And once: sequential read of the 200 MB file through the FUSE layer (its spans cached) against the
same file under overlayfs, each through an overlay mount of a view, with the page cache of the
file and of what backs it dropped first (`posix_fadvise DONTNEED`), then again warm.

    python3 scripts/bench_lazy.py [--span-size 4194304] [--repeat 3] [--prefetch-on-open BYTES]
                                  [--no-podman | --podman-only]

Needs root, FUSE, containerd + runc, docker-registry, podman. Every process and mount it starts is
stopped and removed at the end. Timings on a shared machine are noisy: compare the ratios.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
from benchenv import SOCIKIT, compile_socikit  # noqa: E402

CACHE = REPO / ".bench" / "lazy"
REGISTRY_BIN = "/usr/bin/docker-registry"
BANDWIDTH = 100_000_000 / 8  # bytes per second
LATENCY = 0.010  # seconds per request
BURST = 128 << 10  # bytes the link may send at once after a pause
CHUNK = 64 << 10
COMMAND = ["python3", "-c", 'import json, email; print("ready")']
TOOLS = ["/bin/sh", "/bin/cat", "/bin/ls", "/usr/bin/python3.11"]
STARTUP_MB = 320
BIG_FILE_MB = 200
ENV = {**os.environ, "PYTHONPATH": str(REPO)}
LOG_LEVEL = "info"


# -------------------------------------------------------------------------------------------------
# images


def _ldd(program: str) -> list[str]:
    out = subprocess.run(["ldd", program], capture_output=True, text=True, check=False).stdout
    return sorted({part for line in out.splitlines() for part in line.split() if part.startswith("/")})


class _Tar:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.raw = open(path, "wb")  # noqa: SIM115 - closed in close()
        self.tar = tarfile.open(fileobj=self.raw, mode="w", format=tarfile.PAX_FORMAT)
        self.names: set[str] = set()
        self.size = 0

    def add(self, path: str, arcname: str | None = None) -> None:
        name = (arcname or path).lstrip("/")
        if name in self.names:
            return
        parent = os.path.dirname(name)
        if parent and parent not in self.names:
            self.add_dir(parent)
        info = self.tar.gettarinfo(path, arcname=name)
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        self.names.add(name)
        if info.isreg():
            with open(path, "rb") as handle:
                self.tar.addfile(info, handle)
            self.size += info.size
        elif info.isdir() or info.issym():
            self.tar.addfile(info)
        if info.issym():
            target = os.path.normpath(os.path.join(os.path.dirname(path), os.readlink(path)))
            if os.path.exists(target):
                self.add(target)

    def add_dir(self, name: str) -> None:
        parent = os.path.dirname(name)
        if parent and parent not in self.names:
            self.add_dir(parent)
        info = tarfile.TarInfo(name)
        info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 1_700_000_000
        self.tar.addfile(info)
        self.names.add(name)

    def add_tree(self, root: str, limit: int | None = None) -> None:
        for directory, dirs, files in os.walk(root):
            dirs.sort()
            for name in sorted(files):
                path = os.path.join(directory, name)
                if limit is not None and self.size >= limit:
                    return
                if os.path.islink(path) or os.path.isfile(path):
                    with contextlib.suppress(OSError):
                        self.add(path)

    def close(self) -> None:
        self.tar.close()
        self.raw.close()


def _gzip(tar: Path) -> Path:
    blob = tar.with_suffix(".tar.gz")
    with open(blob, "wb") as out:
        subprocess.run(["gzip", "-6", "-n", "-c", str(tar)], stdout=out, check=True)
    return blob


def _layout(root: Path, tars: list[Path], cmd: list[str]) -> None:
    blobs = root / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)

    def put_file(path: Path) -> tuple[str, int]:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
        shutil.copyfile(path, blobs / digest.hexdigest())
        return "sha256:" + digest.hexdigest(), path.stat().st_size

    def put(data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        (blobs / digest.split(":")[1]).write_bytes(data)
        return digest

    layers, diff_ids = [], []
    for tar in tars:
        diff_ids.append(put_file(tar)[0])
        (blobs / diff_ids[-1].split(":")[1]).unlink()
        digest, size = put_file(_gzip(tar))
        layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest, "size": size})
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "config": {"Cmd": cmd, "Env": ["PATH=/usr/local/bin:/usr/bin:/bin"]},
                         "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": put(config),
                                      "size": len(config)}, "layers": layers}).encode()
    digest = put(manifest)
    (root / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    (root / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest, "size": len(manifest),
         "annotations": {"org.opencontainers.image.ref.name": "latest"}}]}))


def build_images() -> tuple[Path, Path]:
    startup, bigfile = CACHE / "startup", CACHE / "bigfile"
    if not (startup / "index.json").exists():
        work = CACHE / "work"
        work.mkdir(parents=True, exist_ok=True)
        os_tar = _Tar(work / "os.tar")
        for name in ("tmp", "proc", "dev", "sys", "etc", "run"):
            os_tar.add_dir(name)
        for program in TOOLS:
            os_tar.add(program)
            for lib in _ldd(program):
                os_tar.add(lib)
        os_tar.add("/usr/bin/python3")
        os_tar.add_tree("/usr/lib/x86_64-linux-gnu", limit=130 << 20)
        os_tar.add_tree("/usr/share/doc", limit=175 << 20)
        os_tar.close()
        py_tar = _Tar(work / "python.tar")
        py_tar.add_tree("/usr/lib/python3.11")
        py_tar.add_tree("/usr/lib/python3/dist-packages")
        py_tar.close()
        total = os_tar.size + py_tar.size
        if total < 300 << 20:
            raise SystemExit(f"startup image is only {total >> 20} MB; this machine lacks the files")
        _layout(startup, [work / "os.tar", work / "python.tar"], COMMAND)
        print(f"startup image: {total / 1e6:.0f} MB of files in 2 layers", file=sys.stderr)
    if not (bigfile / "index.json").exists():
        work = CACHE / "work"
        big = work / "big.bin"
        with open(big, "wb") as out:
            left = BIG_FILE_MB << 20
            for source in sorted(Path("/usr/lib/x86_64-linux-gnu").glob("libLLVM-1*.so.1")) + \
                    sorted(Path("/usr/lib/x86_64-linux-gnu").glob("*.so*")):
                if left <= 0:
                    break
                data = source.read_bytes()[:left]
                out.write(data)
                left -= len(data)
        data_tar = _Tar(work / "data.tar")
        data_tar.add(str(big), arcname="data/big.bin")
        data_tar.close()
        _layout(bigfile, [work / "data.tar"], ["/bin/sh"])
    return startup, bigfile


# -------------------------------------------------------------------------------------------------
# services


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_registry(root: Path) -> tuple[subprocess.Popen[bytes], str]:
    """A docker-registry on 127.0.0.1 storing under `root` (access log off, deletes enabled)."""
    port = free_port()
    root.mkdir(parents=True, exist_ok=True)
    config = root / "config.yml"
    config.write_text(
        "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n"
        f"    rootdirectory: {root / 'storage'}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n"
    )
    proc = subprocess.Popen([REGISTRY_BIN, "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1)
            return proc, f"127.0.0.1:{port}"
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("docker-registry did not start")


class ThrottlingRelay:
    """TCP relay on 127.0.0.1: answers share one token bucket of `rate` bytes/s (a burst of
    BURST bytes: a sleep that overshoots is made up, so the average is the nominal rate); every
    chunk a client sends (a request) waits `latency` seconds before it is forwarded. Counts
    answer bytes."""

    def __init__(self, upstream: str, *, rate: float, latency: float) -> None:
        host, port = upstream.rsplit(":", 1)
        self.upstream = (host, int(port))
        self.rate, self.latency = rate, latency
        self.delivered = 0
        self.unlimited = False
        self._lock = threading.Lock()
        self._next_free = time.monotonic()
        self._sockets: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.host = f"127.0.0.1:{self._listener.getsockname()[1]}"
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._accepting.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.upstream)
            with self._lock:
                self._sockets.update((client, upstream))
            for args in ((client, upstream, False), (upstream, client, True)):
                thread = threading.Thread(target=self._pump, args=args, daemon=True)
                self._threads.append(thread)
                thread.start()

    def _wait_for(self, size: int) -> None:
        if self.unlimited:
            return
        with self._lock:
            now = time.monotonic()
            start = max(now - BURST / self.rate, self._next_free)
            self._next_free = start + size / self.rate
            wait = self._next_free - now
        if wait > 0:
            time.sleep(wait)

    def _pump(self, source: socket.socket, dest: socket.socket, answers: bool) -> None:
        try:
            while data := source.recv(CHUNK):
                if answers:
                    self._wait_for(len(data))
                    with self._lock:
                        self.delivered += len(data)
                elif not self.unlimited:
                    time.sleep(self.latency)
                dest.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, dest):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        for thread in self._threads:
            thread.join(5)


@dataclass
class Stack:
    base: Path
    containerd: subprocess.Popen[bytes]
    daemon: subprocess.Popen[bytes]
    metrics_port: int

    @property
    def address(self) -> str:
        return str(self.base / "containerd.sock")

    @property
    def daemon_socket(self) -> str:
        return str(self.base / "snapshotter.sock")

    @property
    def daemon_root(self) -> Path:
        return self.base / "snapshotter"

    def ctr(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(["ctr", "--address", self.address, "-n", "bench", *args], capture_output=True,
                                text=True, timeout=900)
        if check and result.returncode:
            raise SystemExit(f"ctr {' '.join(args)}: {result.stderr.strip()}")
        return result

    def fetched_span_bytes(self) -> int:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10) as answer:
            text = answer.read().decode()
        return int(sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                       if line.startswith("socikit_snapshotter_fetched_bytes_total{")))


def _wait(condition: object, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise SystemExit(f"{what} did not come up")


@contextlib.contextmanager
def stack(base: Path, *, prefetch_on_open: int) -> Iterator[Stack]:
    base.mkdir(parents=True)
    port = free_port()
    (base / "snapshotter.toml").write_text(f"[lazy]\nprefetch_on_open = {prefetch_on_open}\n")
    daemon_log = open(base / "daemon.log", "wb")  # noqa: SIM115 - closed below
    daemon = subprocess.Popen([*SOCIKIT, "snapshotter", "--address", str(base / "snapshotter.sock"), "--root",
                               str(base / "snapshotter"), "--config", str(base / "snapshotter.toml"),
                               "--metrics-address", f"127.0.0.1:{port}", "--log-level", LOG_LEVEL],
                              stdout=daemon_log, stderr=daemon_log,
                              env=ENV, cwd=REPO)
    (base / "containerd.toml").write_text(
        f'version = 2\nroot = "{base / "root"}"\nstate = "{base / "state"}"\n'
        'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
        f'[grpc]\n  address = "{base / "containerd.sock"}"\n[ttrpc]\n  address = "{base / "ttrpc.sock"}"\n'
        '[metrics]\n  address = ""\n'
        f'[proxy_plugins.socikit]\n  type = "snapshot"\n  address = "{base / "snapshotter.sock"}"\n')
    containerd_log = open(base / "containerd.log", "wb")  # noqa: SIM115 - closed below
    containerd = subprocess.Popen(["containerd", "--config", str(base / "containerd.toml")], stdout=containerd_log,
                                  stderr=containerd_log)
    started = Stack(base, containerd, daemon, port)
    try:
        _wait(lambda: (base / "snapshotter.sock").exists() and b'"serving"' in (base / "daemon.log").read_bytes(),
              "the snapshotter")
        _wait(lambda: started.ctr("snapshot", "--snapshotter", "socikit", "ls", check=False).returncode == 0,
              "containerd")
        yield started
    finally:
        for proc in (containerd, daemon):
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        daemon_log.close()
        containerd_log.close()
        with open("/proc/self/mountinfo") as info:
            points = [line.split()[4] for line in info if line.split()[4].startswith(str(base))]
        for point in sorted(points, key=len, reverse=True):
            subprocess.run(["umount", "-l", point], capture_output=True)


# -------------------------------------------------------------------------------------------------
# podman: a storage of its own, optionally with `socikit store` as its additional layer store

PODMAN = "/usr/bin/podman"
# What `podman run` needs on these machines (the VM's hard limits make runc fail otherwise).
PODMAN_RUN_FLAGS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024", "--network", "none"]


@dataclass
class PodmanStack:
    base: Path
    store: subprocess.Popen[bytes] | None = None

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "CONTAINERS_STORAGE_CONF": str(self.base / "storage.conf"),
                "CONTAINERS_CONF": str(self.base / "containers.conf")}

    def podman(self, *args: str) -> list[str]:
        return [PODMAN, "--runtime-flag", f"root={self.base / 'runc'}", *args]

    def run(self, *args: str) -> None:
        result = subprocess.run(self.podman(*args), capture_output=True, text=True, env=self.env, timeout=900)
        if result.returncode:
            raise SystemExit(f"podman {' '.join(args)}: {result.stderr.strip()[-2000:]}")

    def span_bytes(self) -> int:
        """What the store's status file says, once it has caught up (it is rewritten within 0.2 s
        of a change)."""
        path = self.base / "store-root" / "status.json"
        previous = None
        while True:
            status = json.loads(path.read_text())
            if status == previous:
                return int(status["spans"]["bytes"])
            previous = status
            time.sleep(0.5)


@contextlib.contextmanager
def podman_stack(base: Path, *, lazy: bool) -> Iterator[PodmanStack]:
    """A podman storage under `base` (its own storage.conf, containers.conf: runc, cgroupfs); with
    `lazy`, `socikit store` serving at `base/store` and named as its additional layer store.
    Everything is removed at the end."""
    base.mkdir(parents=True)
    (base / "tmp").mkdir()
    conf = ["[storage]", 'driver = "overlay"', f'graphroot = "{base / "graph"}"', f'runroot = "{base / "run"}"']
    if lazy:
        conf += ["[storage.options]", f'additionallayerstores = ["{base / "store"}:ref"]']
    (base / "storage.conf").write_text("\n".join(conf) + "\n")
    (base / "containers.conf").write_text(
        f'[engine]\ntmp_dir = "{base / "tmp"}"\nimage_copy_tmp_dir = "{base / "tmp"}"\nevents_logger = "file"\n'
        'cgroup_manager = "cgroupfs"\nlock_type = "file"\nruntime = "runc"\n'
        f'[network]\nnetwork_config_dir = "{base / "cni"}"\n')
    started = PodmanStack(base)
    store_log = None
    try:
        if lazy:
            (base / "store.toml").touch()
            store_log = open(base / "store.log", "wb")  # noqa: SIM115 - closed below
            started.store = subprocess.Popen([*SOCIKIT, "store", "--root", str(base / "store-root"), "--mountpoint",
                                              str(base / "store"), "--config", str(base / "store.toml"),
                                              "--log-level", LOG_LEVEL], stdout=store_log, stderr=store_log,
                                             env=ENV, cwd=REPO)
            _wait(lambda: b'"serving"' in (base / "store.log").read_bytes(), "socikit store")
        yield started
    finally:
        subprocess.run(started.podman("rm", "--all", "--force", "--time", "0"), capture_output=True,
                       env=started.env, timeout=120)
        if started.store is not None:
            started.store.terminate()
            try:
                started.store.wait(30)
            except subprocess.TimeoutExpired:
                started.store.kill()
                started.store.wait(10)
        if store_log is not None:
            store_log.close()
        with open("/proc/self/mountinfo") as info:
            points = [line.split()[4] for line in info if line.split()[4].startswith(str(base))]
        for point in sorted(points, key=len, reverse=True):
            subprocess.run(["umount", "-l", point], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def podman_first_line(stack_: PodmanStack, ref: str) -> str:
    proc = subprocess.Popen(stack_.podman("run", "--rm", *PODMAN_RUN_FLAGS, ref, *COMMAND), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=stack_.env)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    out, err = proc.communicate(timeout=600)
    if proc.returncode or not line:
        raise SystemExit(f"podman run failed: {err.strip()[-2000:]}")
    return line.strip()


# -------------------------------------------------------------------------------------------------
# measurements


def rpull(stack_: Stack, ref: str, namespace: str) -> None:
    result = subprocess.run([*SOCIKIT, "image", "rpull", "--address", stack_.address, "-n", namespace, "--snapshotter",
                             "socikit", "--snapshotter-address", stack_.daemon_socket, "--plain-http", ref],
                            capture_output=True, text=True, env=ENV, timeout=900)
    if result.returncode:
        raise SystemExit(f"rpull failed: {result.stderr.strip()}")


def first_line(stack_: Stack, *args: str) -> str:
    proc = subprocess.Popen(["ctr", "--address", stack_.address, "-n", "bench", "run", "--rm", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    out, err = proc.communicate(timeout=600)
    if proc.returncode or not line:
        raise SystemExit(f"ctr run failed: {err.strip()}")
    return line.strip()


@dataclass
class Result:
    mode: str
    seconds: float  # pull start to the first output line
    relay_bytes: int
    pull_seconds: float  # of which the pull
    span_bytes: int = 0


def run_normal(base: Path, relay: ThrottlingRelay, ref: str) -> Result:
    with stack(base, prefetch_on_open=0) as s:
        relay.delivered = 0
        start = time.monotonic()
        s.ctr("image", "pull", "--plain-http", ref)
        pulled = time.monotonic()
        assert first_line(s, ref, f"n-{uuid.uuid4().hex[:8]}", *COMMAND) == "ready"
        return Result("normal", time.monotonic() - start, relay.delivered, pulled - start)


def run_lazy(base: Path, relay: ThrottlingRelay, ref: str, prefetch_on_open: int) -> Result:
    with stack(base, prefetch_on_open=prefetch_on_open) as s:
        relay.delivered = 0
        start = time.monotonic()
        rpull(s, ref, "bench")
        pulled = time.monotonic()
        assert first_line(s, "--snapshotter", "socikit", ref, f"l-{uuid.uuid4().hex[:8]}", *COMMAND) == "ready"
        return Result("lazy", time.monotonic() - start, relay.delivered, pulled - start, s.fetched_span_bytes())


def run_podman(base: Path, relay: ThrottlingRelay, ref: str, *, lazy: bool) -> Result:
    with podman_stack(base, lazy=lazy) as s:
        relay.delivered = 0
        start = time.monotonic()
        s.run("pull", "--tls-verify=false", "--quiet", ref)
        pulled = time.monotonic()
        assert podman_first_line(s, ref) == "ready"
        elapsed = time.monotonic() - start
        return Result("podman lazy" if lazy else "podman normal", elapsed, relay.delivered, pulled - start,
                      s.span_bytes() if lazy else 0)


def _report(label: str, results: list[tuple[Result, Result]], compressed: int) -> None:
    speedups = sorted(n.seconds / lazy.seconds for n, lazy in results)
    shares = sorted(100 * lazy.relay_bytes / n.relay_bytes for n, lazy in results)
    print(f"{label}time to first output: lazy is {speedups[len(speedups) // 2]:.2f}x faster (median; all: "
          f"{', '.join(f'{x:.2f}' for x in speedups)})")
    print(f"{label}bytes: lazy fetches {shares[len(shares) // 2]:.1f}% of what the normal pull fetches (median; all: "
          f"{', '.join(f'{x:.1f}' for x in shares)}); "
          f"{100 * results[0][1].relay_bytes / compressed:.1f}% of the compressed layers")


def _round_line(n: int, label: str, normal: Result, lazy: Result) -> str:
    share = 100 * lazy.relay_bytes / normal.relay_bytes
    return (f"round {n + 1}: {label}normal {normal.seconds:.2f} s (pull {normal.pull_seconds:.2f} s) "
            f"{normal.relay_bytes / 1e6:.1f} MB | lazy {lazy.seconds:.2f} s (pull {lazy.pull_seconds:.2f} s) "
            f"{lazy.relay_bytes / 1e6:.1f} MB (spans {lazy.span_bytes / 1e6:.1f} MB) | "
            f"{normal.seconds / lazy.seconds:.2f}x faster, {share:.1f}% of the bytes")


def _drop_cache(paths: list[Path]) -> None:
    """Drop the page cache of `paths` (dirty pages are written back first: DONTNEED keeps them)."""
    os.sync()
    for path in paths:
        with contextlib.suppress(OSError):
            fd = os.open(path, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def _read_rate(path: Path) -> float:
    start = time.monotonic()
    total = 0
    with open(path, "rb", buffering=0) as handle:
        while chunk := handle.read(1 << 20):
            total += len(chunk)
    return total / (time.monotonic() - start) / 1e6


@contextlib.contextmanager
def _rootfs(s: Stack, snapshotter: str, chain: str, target: Path) -> Iterator[Path]:
    """Mount what a container on `chain` gets (an active snapshot: overlay with an upper dir)."""
    key = f"rootfs-{uuid.uuid4().hex[:8]}"
    (mount,) = json.loads(s.ctr("snapshot", "--snapshotter", snapshotter, "prepare", "--mounts", key, chain).stdout)
    target.mkdir(parents=True)
    subprocess.run(["mount", "-t", mount["Type"], mount["Source"], str(target), "-o", ",".join(mount["Options"])],
                   check=True)
    try:
        yield target
    finally:
        subprocess.run(["umount", str(target)], check=True)
        s.ctr("snapshot", "--snapshotter", snapshotter, "rm", key)


def throughput(base: Path, relay: ThrottlingRelay, ref: str, layout: Path) -> dict[str, list[float]]:
    manifest = json.loads((layout / "index.json").read_text())["manifests"][0]["digest"]
    document = json.loads((layout / "blobs/sha256" / manifest.split(":")[1]).read_bytes())
    config = json.loads((layout / "blobs/sha256" / document["config"]["digest"].split(":")[1]).read_bytes())
    (chain,) = config["rootfs"]["diff_ids"]
    rates: dict[str, list[float]] = {"fuse cold": [], "overlayfs cold": [], "fuse warm": [], "overlayfs warm": []}
    relay.unlimited = True
    try:
        with stack(base, prefetch_on_open=0) as s:
            s.ctr("image", "pull", "--plain-http", ref)
            rpull(s, ref, "bench")
            spans = list((s.daemon_root / "lazy" / "spans").rglob("*"))
            with _rootfs(s, "socikit", chain, base / "fuse-view") as fuse_view, \
                    _rootfs(s, "overlayfs", chain, base / "overlay-view") as overlay_view:
                big_fuse, big_overlay = fuse_view / "data/big.bin", overlay_view / "data/big.bin"
                _read_rate(big_fuse)  # fetches every span into the cache
                spans = [p for p in (s.daemon_root / "lazy" / "spans").rglob("*") if p.is_file()]
                for _ in range(3):
                    for name, path, backing in (("fuse", big_fuse, spans), ("overlayfs", big_overlay, [])):
                        _drop_cache([path, *backing])
                        rates[f"{name} cold"].append(_read_rate(path))
                        rates[f"{name} warm"].append(_read_rate(path))
    finally:
        relay.unlimited = False
    return rates


def convert(layout: Path, ref: str, span_size: int, root: Path) -> int:
    out = subprocess.run([*SOCIKIT, "convert", f"oci:{layout}:latest", ref, "--plain-http", "--span-size",
                          str(span_size), "--min-layer-size", "0", "--no-cache", "--json", "--progress", "none",
                          "--root", str(root)], check=True, capture_output=True, text=True, env=ENV, timeout=1800)
    summary = json.loads(out.stdout)
    return int(sum(layer["size"] for platform in summary["platforms"] for layer in platform["layers"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--span-size", type=int, default=4 << 20)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--prefetch-on-open", type=int, default=0)
    parser.add_argument("--no-throughput", action="store_true")
    parser.add_argument("--lazy-only", action="store_true", help="only the lazy pull (for tuning; no ratios)")
    parser.add_argument("--keep", type=Path, help="work in this directory and keep it (logs, caches)")
    parser.add_argument("--log-level", default="info", help="the snapshotter's and the store's log level")
    parser.add_argument("--no-podman", action="store_true", help="containerd only")
    parser.add_argument("--podman-only", action="store_true", help="podman only (and no throughput)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root (containerd, FUSE, mounts)")
    startup, bigfile = build_images()
    compile_socikit()
    global LOG_LEVEL
    LOG_LEVEL = args.log_level
    with (contextlib.nullcontext(str(args.keep)) if args.keep else tempfile.TemporaryDirectory(prefix="bench-lazy-")
          ) as tmp:
        work = Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        (work / "registry").mkdir()
        registry, host = start_registry(work / "registry")
        relay = ThrottlingRelay(host, rate=BANDWIDTH, latency=LATENCY)
        try:
            compressed = convert(startup, f"{host}/bench/startup:1", args.span_size, work / "socikit-root")
            convert(bigfile, f"{host}/bench/bigfile:1", args.span_size, work / "socikit-root")
            ref = f"{relay.host}/bench/startup:1"
            results: list[tuple[Result, Result]] = []
            podman_results: list[tuple[Result, Result]] = []
            for n in range(args.repeat):
                order = ("normal", "lazy") if n % 2 == 0 else ("lazy", "normal")
                if args.lazy_only:
                    lazy = run_lazy(work / f"lazy-{n}", relay, ref, args.prefetch_on_open)
                    print(f"round {n + 1}: lazy {lazy.seconds:.2f} s (pull {lazy.pull_seconds:.2f} s) "
                          f"{lazy.relay_bytes / 1e6:.1f} MB (spans {lazy.span_bytes / 1e6:.1f} MB)", flush=True)
                    continue
                if not args.podman_only:
                    pair: dict[str, Result] = {}
                    for mode in order:
                        base = work / f"{mode}-{n}"
                        pair[mode] = run_normal(base, relay, ref) if mode == "normal" else \
                            run_lazy(base, relay, ref, args.prefetch_on_open)
                    results.append((pair["normal"], pair["lazy"]))
                    print(_round_line(n, "", pair["normal"], pair["lazy"]), flush=True)
                if not args.no_podman:
                    pair = {mode: run_podman(work / f"podman-{mode}-{n}", relay, ref, lazy=mode == "lazy")
                            for mode in order}
                    podman_results.append((pair["normal"], pair["lazy"]))
                    print(_round_line(n, "podman ", pair["normal"], pair["lazy"]), flush=True)
            if args.lazy_only:
                return
            print(f"span size {args.span_size}, prefetch_on_open {args.prefetch_on_open}, compressed layers "
                  f"{compressed / 1e6:.1f} MB, {BANDWIDTH * 8 / 1e6:.0f} Mbit/s, {LATENCY * 1000:.0f} ms per request")
            if results:
                _report("containerd: ", results, compressed)
            if podman_results:
                _report("podman: ", podman_results, compressed)
            if not args.no_throughput and not args.podman_only:
                rates = throughput(work / "throughput", relay, f"{relay.host}/bench/bigfile:1", bigfile)
                for name, values in rates.items():
                    print(f"read {BIG_FILE_MB} MB file, {name}: " + ", ".join(f"{v:.0f} MB/s" for v in values))
                for kind in ("cold", "warm"):
                    ratios = [f / o for f, o in zip(rates[f"fuse {kind}"], rates[f"overlayfs {kind}"], strict=True)]
                    print(f"FUSE / overlayfs, {kind}: " + ", ".join(f"{r:.2f}" for r in ratios))
        finally:
            relay.stop()
            registry.terminate()
            registry.wait(30)


if __name__ == "__main__":
    main()

"""Fixtures for the rpull tests: containerd (Debian's 1.6, own root/state/socket, CRI disabled)
with extra config such as a `[proxy_plugins.*]` block, an in-test Credentials server that
records what `rpull --user` hands over, and test images pushed with skopeo.

Every process and server started here is stopped at teardown."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import empty_pb2

from socikit.containerd._proto import socikit_credentials_pb2_grpc
from tests.images import TarBuilder, host_rootfs_tar, write_oci_layout
from tests.integration.containerd_fixtures import Containerd


def _start(base: Path, extra_config: str) -> tuple[Containerd, subprocess.Popen[bytes]]:
    address = str(base / "c.sock")
    (base / "config.toml").write_text(
        "version = 2\n"
        f'root = "{base / "root"}"\n'
        f'state = "{base / "state"}"\n'
        'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
        "[grpc]\n"
        f'  address = "{address}"\n'
        "[ttrpc]\n"
        f'  address = "{base / "t.sock"}"\n'
        "[metrics]\n"
        '  address = ""\n' + extra_config
    )
    with open(base / "containerd.log", "wb") as log:
        proc = subprocess.Popen(["containerd", "--config", str(base / "config.toml")], stdout=log, stderr=log,
                                stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("containerd exited: " + (base / "containerd.log").read_text()[-2000:])
        if subprocess.run(["ctr", "--address", address, "version"], capture_output=True).returncode == 0:
            return Containerd(address=address, root=base), proc
        time.sleep(0.1)
    _stop(proc, base)
    raise RuntimeError("containerd did not start within 20 s")


def _stop(proc: subprocess.Popen[bytes], base: Path) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
    subprocess.run(["umount", "-R", str(base / "root")], capture_output=True)


@pytest.fixture
def containerd_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Containerd]]:
    """`factory(extra_config="", base=None)` starts a containerd; all are stopped at teardown.
    `base` (a fresh directory) lets a test put sockets its config names next to containerd's."""
    if shutil.which("containerd") is None or shutil.which("ctr") is None:
        pytest.fail("containerd is not installed (apt-get install -y containerd runc; scripts/install.sh does it)")
    started: list[tuple[subprocess.Popen[bytes], Path]] = []

    def start(extra_config: str = "", base: Path | None = None) -> Containerd:
        base = base or Path(tmp_path_factory.mktemp("ctrd", numbered=True))
        ctrd, proc = _start(base, extra_config)
        started.append((proc, base))
        return ctrd

    try:
        yield start
    finally:
        for proc, base in started:
            _stop(proc, base)


def proxy_plugin(name: str, socket: Path) -> str:
    return f'[proxy_plugins.{name}]\n  type = "snapshot"\n  address = "{socket}"\n'


class CredentialsRecorder(socikit_credentials_pb2_grpc.CredentialsServicer):
    """socikit's Credentials side channel, recording each Put (test code)."""

    def __init__(self, socket: Path) -> None:
        self.socket = socket
        self.puts: list[dict[str, str]] = []
        self.lock = threading.Lock()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        socikit_credentials_pb2_grpc.add_CredentialsServicer_to_server(self, self.server)
        self.server.add_insecure_port(f"unix:{socket}")
        self.server.start()

    def Put(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        with self.lock:
            self.puts.append({"image_ref": request.image_ref, "host": request.host, "username": request.username,
                              "secret": request.secret})
        return empty_pb2.Empty()

    def stop(self) -> None:
        self.server.stop(grace=None).wait(10)


# ---------------------------------------------------------------------------------------------
# images


def skopeo_push(layout: Path, reference: str, *, tag: str = "latest",
                args: tuple[str, ...] = ("--dest-tls-verify=false",), all_images: bool = False) -> None:
    """Copy an OCI layout to a registry with skopeo (digests preserved). Credentials go in an
    authfile passed with `args`, never on the command line."""
    subprocess.run(["skopeo", "copy", "--quiet", "--preserve-digests", *(["--all"] if all_images else []), *args,
                    f"oci:{layout}:{tag}", f"docker://{reference}"], check=True, capture_output=True, timeout=300)


def authfile(path: Path, host: str, user: str, password: str) -> Path:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    path.write_text(json.dumps({"auths": {host: {"auth": token}}}))
    path.chmod(0o600)
    return path


def runnable_layers() -> list[bytes]:
    """Three layers: host programs; files, a symlink and a hard link; a layer that deletes a file
    and makes a directory opaque (whiteouts the unpack must apply)."""
    second = TarBuilder()
    second.file("data/keep.txt", b"kept\n")
    second.file("data/gone.txt", b"to be deleted\n")
    second.file("data/dir/old.txt", b"hidden by an opaque dir\n")
    second.symlink("data/link", "keep.txt")
    second.hardlink("data/hard.txt", "data/keep.txt")
    second.file("data/mode.sh", b"#!/bin/sh\n", mode=0o750, uid=1000, gid=1000)
    third = TarBuilder()
    third.whiteout("data/gone.txt")
    third.opaque("data/dir")
    third.file("data/dir/new.txt", b"new\n")
    return [host_rootfs_tar(), second.finish(), third.finish()]


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def add_foreign_platform(layout: Path, arch: str, *, tag: str = "latest") -> dict[str, str]:
    """Turn the single-image layout at `layout` into an image index of two manifests: the host's
    (already there) and one for `arch` (a tiny layer, its config naming `arch`). Returns the
    digests {"index", "host", "foreign", "foreign_config"}."""
    blobs = layout / "blobs" / "sha256"
    index_json = json.loads((layout / "index.json").read_text())
    host_entry = index_json["manifests"][0]
    host_manifest = json.loads((blobs / host_entry["digest"].split(":")[1]).read_bytes())
    host_config = json.loads((blobs / host_manifest["config"]["digest"].split(":")[1]).read_bytes())

    def put(data: bytes) -> str:
        digest = digest_of(data)
        (blobs / digest.split(":")[1]).write_bytes(data)
        return digest

    tar = TarBuilder()
    tar.file("etc/arch", arch.encode() + b"\n")
    layer = tar.finish()
    layer_digest = put(layer)
    config = json.dumps({"architecture": arch, "os": "linux", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": [digest_of(layer)]}}).encode()
    config_digest = put(config)
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      "digest": config_digest, "size": len(config)},
                           "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest,
                                       "size": len(layer)}]}).encode()
    manifest_digest = put(manifest)
    index = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [
        {"mediaType": host_entry["mediaType"], "digest": host_entry["digest"], "size": host_entry["size"],
         "platform": {"architecture": host_config["architecture"], "os": "linux"}},
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest_digest,
         "size": len(manifest), "platform": {"architecture": arch, "os": "linux"}},
    ]}).encode()
    index_digest = put(index)
    (layout / "index.json").write_text(json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": "application/vnd.oci.image.index.v1+json", "digest": index_digest,
                       "size": len(index), "annotations": {"org.opencontainers.image.ref.name": tag}}]}))
    return {"index": index_digest, "host": host_entry["digest"], "foreign": manifest_digest,
            "foreign_config": config_digest}


def build_layout(root: Path, layers: list[bytes] | None = None, **kwargs: Any) -> str:
    """An OCI layout of `layers` (default: `runnable_layers()`); returns the manifest digest."""
    return write_oci_layout(root, layers if layers is not None else runnable_layers(), **kwargs)

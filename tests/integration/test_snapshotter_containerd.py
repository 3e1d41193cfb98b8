"""socikit's snapshotter under real containerd 1.6 (proxy plugin `socikit`), a real registry and
runc: pulls, containers, ctr's snapshot commands, crash and restart, and the remote-snapshot
("already exists") path with the local-directory layer double."""

# ruff: noqa: F811  (pytest fixtures imported by name)
from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from socikit.containerd._proto import snapshots_pb2 as pb
from socikit.containerd._proto import snapshots_pb2_grpc as pb_grpc
from socikit.snapshotter import labels as L
from socikit.snapshotter.mounts import overlay_index_off
from tests import images
from tests.integration.registry_fixtures import RegistryServer, registry  # noqa: F401
from tests.integration.snapshotter_fixtures import (  # noqa: F401
    SNAPSHOTTER,
    SocikitContainerd,
    socikit_containerd,
    socikit_containerd_local_layers,
)
from tests.snapshotter.local_layers import chain_ids, read_calls, unpack_layer

pytestmark = [pytest.mark.integration, pytest.mark.registry]

WAIT_S = 30.0


@dataclass(frozen=True)
class LayeredImage:
    ref: str
    layers: tuple[bytes, ...]  # uncompressed tars
    chain_ids: tuple[str, ...]
    config_digest: str


def _pattern(size: int, seed: int) -> bytes:
    block = hashlib.sha256(str(seed).encode()).digest()
    return (block * (size // len(block) + 1))[:size]


@pytest.fixture(scope="module")
def layered_image(registry: RegistryServer, tmp_path_factory: pytest.TempPathFactory) -> LayeredImage:
    """Host tools, then a layer with owners, modes, hard and symbolic links and xattrs, then a
    layer deleting a file and a directory, making a directory opaque and changing things."""
    base = images.host_rootfs_tar()
    b = images.TarBuilder()
    b.dir("opt/app", mode=0o755)
    # (a hard link entry's own mode and owner apply to the shared inode: these match them)
    b.file("opt/app/data.bin", _pattern(300_000, 1), xattrs={"user.note": b"hello", "user.bin": b"\x00\x01\xff"})
    b.hardlink("opt/app/hard", "opt/app/data.bin")
    b.file("opt/app/owned", b"mine", mode=0o640, uid=1000, gid=1001)
    b.symlink("opt/app/rel", "data.bin")
    b.symlink("opt/app/abs", "/opt/app/data.bin")
    b.symlink("opt/app/dangling", "../nowhere")
    b.file("opt/app/run.sh", b"#!/bin/sh\necho hi\n", mode=0o4755)
    b.file("opt/app/to-delete", b"going away")
    b.file("opt/app/replaced", b"old")
    b.dir("opt/gone-dir")
    b.file("opt/gone-dir/inner", b"inner")
    b.dir("opt/opaque", mode=0o700, uid=7, gid=8)
    b.file("opt/opaque/a", b"a")
    b.file("opt/opaque/b", b"b")
    b.dir("opt/empty", mode=0o1777, xattrs={"user.dir-note": b"on a directory"})
    middle = b.finish()
    b = images.TarBuilder(mtime=1_700_000_500.0)
    b.dir("opt/app", mode=0o750)  # before the entries below, which would add it with 0755
    b.whiteout("opt/app/to-delete")
    b.whiteout("opt/gone-dir")
    b.opaque("opt/opaque")
    b.file("opt/opaque/new", b"new", xattrs={"user.later": b"yes"})
    b.file("opt/app/replaced", _pattern(5000, 2))
    b.file("opt/app/owned", b"changed owner", mode=0o600, uid=1000)
    b.hardlink("opt/app/hard2", "opt/app/replaced")
    top = b.finish()
    layers = (base, middle, top)
    layout = tmp_path_factory.mktemp("layered-image")
    images.write_oci_layout(layout, list(layers))
    ref = f"{registry.host}/socikit-snapshotter/layered:1"
    images.push(layout, ref)
    index = json.loads((layout / "index.json").read_text())

    def blob(digest: str) -> bytes:
        return (layout / "blobs" / "sha256" / digest.split(":", 1)[1]).read_bytes()

    manifest = json.loads(blob(index["manifests"][0]["digest"]))
    config = json.loads(blob(manifest["config"]["digest"]))
    assert [gzip.decompress(blob(d["digest"])) for d in manifest["layers"]] == list(layers)
    return LayeredImage(ref=ref, layers=layers, chain_ids=tuple(chain_ids(config["rootfs"]["diff_ids"])),
                        config_digest=manifest["config"]["digest"])


def _listing(ctrd: SocikitContainerd, image: LayeredImage, *, snapshotter: str | None,
             namespace: str = "default") -> list[str]:
    args = ["run", "--rm", *(["--snapshotter", snapshotter] if snapshotter else []), image.ref,
            f"list-{uuid.uuid4().hex[:12]}", "/bin/sh", "-c", images.LIST_FILES_SCRIPT]
    return ctrd.ctr(*args, namespace=namespace).stdout.splitlines()


def _overlayfs_listing(ctrd: SocikitContainerd, image: LayeredImage) -> list[str]:
    ctrd.ctr("image", "pull", "--plain-http", image.ref, namespace="reference")
    return _listing(ctrd, image, snapshotter=None, namespace="reference")


def _check_listing_is_meaningful(listing: list[str]) -> None:
    by_path = {line.split(" ", 1)[0]: line for line in listing}
    assert by_path["./opt/app/data.bin"].startswith("./opt/app/data.bin F 644 0:0 300000 2 ")
    assert by_path["./opt/app/owned"].startswith("./opt/app/owned F 600 1000:0 13 1 ")
    assert by_path["./opt/app/hard"].split()[6] == by_path["./opt/app/data.bin"].split()[6]
    assert by_path["./opt/app/rel"] == "./opt/app/rel L 777 0:0 -> data.bin"
    assert by_path["./opt/app/run.sh"].startswith("./opt/app/run.sh F 4755 ")
    assert by_path["./opt/app"] == "./opt/app directory 750 0:0 0:0"
    assert by_path["./opt/opaque"] == "./opt/opaque directory 755 0:0 0:0"  # the later layer's entry wins
    assert by_path["./opt/app/replaced"].startswith("./opt/app/replaced F 644 0:0 5000 2 ")
    assert by_path["./opt/app/hard2"].split()[6] == by_path["./opt/app/replaced"].split()[6]
    for gone in ("./opt/app/to-delete", "./opt/gone-dir", "./opt/gone-dir/inner", "./opt/opaque/a", "./opt/opaque/b"):
        assert gone not in by_path
    assert "./opt/opaque/new" in by_path and "./bin/sh" in by_path or "./usr/bin/sh" in by_path


GC_ROOT = {"containerd.io/gc.root": "test"}


def _create_root_snapshot(ctrd: SocikitContainerd, snapshotter: str, key: str, parent: str, *, view: bool,
                          namespace: str = "default") -> list[dict[str, object]]:
    """A snapshot made through containerd's API and labelled a GC root, so containerd's garbage
    collector (which runs after pulls and deletions) cannot take it while the test uses it, as it
    can take one made with `ctr snapshot prepare|view` (no lease, no label). Returns its mounts."""
    stub, channel = ctrd.snapshots_stub()
    metadata = (("containerd-namespace", namespace),)
    try:
        if view:
            response = stub.View(pb.ViewSnapshotRequest(snapshotter=snapshotter, key=key, parent=parent,
                                                        labels=GC_ROOT), metadata=metadata)
        else:
            response = stub.Prepare(pb.PrepareSnapshotRequest(snapshotter=snapshotter, key=key, parent=parent,
                                                              labels=GC_ROOT), metadata=metadata)
    finally:
        channel.close()
    return [{"type": m.type, "source": m.source, "options": list(m.options)} for m in response.mounts]


def _xattrs_of_view(ctrd: SocikitContainerd, snapshotter: str, parent: str, target: Path,
                    namespace: str = "default") -> dict[str, dict[str, bytes]]:
    """Mount a view of `parent` on the host and read every user.* xattr below /opt."""
    key = f"xattr-view-{uuid.uuid4().hex[:8]}"
    (mount,) = _create_root_snapshot(ctrd, snapshotter, key, parent, view=True, namespace=namespace)
    target.mkdir(parents=True)
    options = ",".join(str(o) for o in mount["options"])  # type: ignore[attr-defined]
    subprocess.run(["mount", "-t", str(mount["type"]), str(mount["source"]), "-o", options, str(target)],
                   check=True, capture_output=True)
    try:
        found: dict[str, dict[str, bytes]] = {}
        for directory, dirs, files in os.walk(target / "opt"):
            for name in [*dirs, *files]:
                path = os.path.join(directory, name)
                names = [n for n in os.listxattr(path, follow_symlinks=False) if n.startswith("user.")]
                if names:
                    found[os.path.relpath(path, target)] = {
                        n: os.getxattr(path, n, follow_symlinks=False) for n in names}
        return found
    finally:
        subprocess.run(["umount", str(target)], check=True, capture_output=True)
        ctrd.ctr("snapshot", "--snapshotter", snapshotter, "rm", key, namespace=namespace)


EXPECTED_XATTRS = {
    "opt/empty": {"user.dir-note": b"on a directory"},
    "opt/app/data.bin": {"user.note": b"hello", "user.bin": b"\x00\x01\xff"},
    "opt/app/hard": {"user.note": b"hello", "user.bin": b"\x00\x01\xff"},
    "opt/opaque/new": {"user.later": b"yes"},
}


def test_pulled_image_runs_exactly_as_under_overlayfs(socikit_containerd: SocikitContainerd,
                                                      layered_image: LayeredImage, tmp_path: Path) -> None:
    ctrd = socikit_containerd
    expected = _overlayfs_listing(ctrd, layered_image)
    _check_listing_is_meaningful(expected)
    ctrd.ctr("image", "pull", "--plain-http", "--snapshotter", SNAPSHOTTER, layered_image.ref)
    assert _listing(ctrd, layered_image, snapshotter=SNAPSHOTTER) == expected
    top = layered_image.chain_ids[-1]
    ours = _xattrs_of_view(ctrd, SNAPSHOTTER, top, tmp_path / "ours")
    theirs = _xattrs_of_view(ctrd, "overlayfs", top, tmp_path / "theirs", namespace="reference")
    assert ours == theirs == EXPECTED_XATTRS
    # containerd applied every layer into the daemon's snapshots: no layer filesystem involved
    assert not any(e.get("msg") == "layer served by the layer filesystem" for e in ctrd.daemon.log_entries())


@contextlib.contextmanager
def _daemon_stub(ctrd: SocikitContainerd) -> Iterator[pb_grpc.SnapshotsStub]:
    """A client of the daemon's own socket (not through containerd)."""
    channel = grpc.insecure_channel(f"unix://{ctrd.daemon.address}")
    try:
        yield pb_grpc.SnapshotsStub(channel)
    finally:
        channel.close()


def _daemon_keys(ctrd: SocikitContainerd) -> set[str]:
    with _daemon_stub(ctrd) as stub:
        return {i.name for r in stub.List(pb.ListSnapshotsRequest(snapshotter=SNAPSHOTTER)) for i in r.info}


def _wait_until(condition, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting until {what}")


def test_ctr_snapshot_commands(socikit_containerd: SocikitContainerd, layered_image: LayeredImage) -> None:
    ctrd = socikit_containerd
    ctrd.ctr("image", "pull", "--plain-http", "--snapshotter", SNAPSHOTTER, layered_image.ref)
    chains = layered_image.chain_ids
    sn = ("snapshot", "--snapshotter", SNAPSHOTTER)

    rows = [line.split() for line in ctrd.ctr(*sn, "ls").stdout.splitlines()[1:]]
    assert sorted(rows) == sorted([[chains[0], "Committed"], [chains[1], chains[0], "Committed"],
                                   [chains[2], chains[1], "Committed"]])
    info = json.loads(ctrd.ctr(*sn, "info", chains[2]).stdout)
    assert (info["Kind"], info["Name"], info["Parent"]) == ("Committed", chains[2], chains[1])
    usage = {row.split()[0]: row.split()[1:] for row in ctrd.ctr(*sn, "usage").stdout.splitlines()[1:]}
    assert set(usage) == set(chains)
    # the base layer holds the host's shell and libraries: megabytes, dozens of inodes
    assert usage[chains[0]][1] == "MiB" and int(usage[chains[0]][2]) > 20

    # an active snapshot: label, mounts, remove with ctr
    _create_root_snapshot(ctrd, SNAPSHOTTER, "work", chains[2], view=False)
    assert ["work", chains[2], "Active"] in [line.split() for line in ctrd.ctr(*sn, "ls").stdout.splitlines()]
    backend_key = next(k for k in _daemon_keys(ctrd) if k.endswith("/work"))
    ctrd.ctr(*sn, "label", "work", "containerd.io/snapshot/test=yes")
    with _daemon_stub(ctrd) as stub:
        labels = stub.Stat(pb.StatSnapshotRequest(snapshotter=SNAPSHOTTER, key=backend_key)).info.labels
        assert labels["containerd.io/snapshot/test"] == "yes"  # containerd forwards inheritable labels
    mounts = ctrd.ctr(*sn, "mounts", "/mnt/x", "work").stdout
    index = "index=off," if overlay_index_off() else ""
    assert mounts.startswith(f"mount -t overlay overlay /mnt/x -o {index}workdir=") and "upperdir=" in mounts
    for chain in chains:
        assert chain not in mounts  # lower dirs are the daemon's directories, not names
    ctrd.ctr(*sn, "rm", "work")
    assert "work" not in ctrd.ctr(*sn, "ls").stdout
    _wait_until(lambda: backend_key not in _daemon_keys(ctrd), "containerd's GC removed the snapshot in the daemon")

    # errors as ctr reports them
    _create_root_snapshot(ctrd, SNAPSHOTTER, "twice", chains[2], view=False)
    again = ctrd.ctr(*sn, "prepare", "twice", chains[2], check=False)
    assert again.returncode != 0 and "already exists" in again.stderr
    parent = ctrd.ctr(*sn, "rm", chains[1], check=False)
    assert parent.returncode != 0 and "failed precondition" in parent.stderr
    missing = ctrd.ctr(*sn, "info", "no-such-snapshot", check=False)
    assert missing.returncode != 0 and "not found" in missing.stderr


def test_daemon_killed_and_restarted(socikit_containerd: SocikitContainerd, layered_image: LayeredImage) -> None:
    ctrd = socikit_containerd
    ctrd.ctr("image", "pull", "--plain-http", "--snapshotter", SNAPSHOTTER, layered_image.ref)
    before = _listing(ctrd, layered_image, snapshotter=SNAPSHOTTER)
    listed = ctrd.ctr("snapshot", "--snapshotter", SNAPSHOTTER, "ls").stdout
    ctrd.daemon.kill()
    assert ctrd.daemon.address.exists()  # a crash leaves the socket file behind
    assert ctrd.ctr("snapshot", "--snapshotter", SNAPSHOTTER, "ls", check=False).returncode != 0
    ctrd.daemon.start()
    ctrd.wait_for_snapshotter()
    assert ctrd.ctr("snapshot", "--snapshotter", SNAPSHOTTER, "ls").stdout == listed
    assert _listing(ctrd, layered_image, snapshotter=SNAPSHOTTER) == before


def _unpack_through_containerd(ctrd: SocikitContainerd, image: LayeredImage, lease: str) -> list[grpc.StatusCode]:
    """What an unpacking client (nerdctl, CRI, `socikit image rpull`) does: Prepare each layer's
    snapshot through containerd with the snapshot.ref label, inside a lease."""
    stub, channel = ctrd.snapshots_stub()
    metadata = (("containerd-namespace", "default"), ("containerd-lease", lease))
    codes = []
    try:
        parent = ""
        for chain in image.chain_ids:
            request = pb.PrepareSnapshotRequest(snapshotter=SNAPSHOTTER, key=f"extract-{uuid.uuid4().hex} {chain}",
                                                parent=parent, labels={L.SNAPSHOT_REF: chain})
            try:
                stub.Prepare(request, metadata=metadata)
                codes.append(grpc.StatusCode.OK)
            except grpc.RpcError as exc:
                codes.append(exc.code())
            info = stub.Stat(pb.StatSnapshotRequest(snapshotter=SNAPSHOTTER, key=chain), metadata=metadata).info
            assert info.kind == pb.COMMITTED and info.labels[L.REMOTE] == L.REMOTE_VALUE
            parent = chain
    finally:
        channel.close()
    return codes


def test_remote_snapshots_through_containerd(socikit_containerd_local_layers: SocikitContainerd,
                                             layered_image: LayeredImage, tmp_path: Path) -> None:
    ctrd = socikit_containerd_local_layers
    assert ctrd.layers_table is not None
    expected = _overlayfs_listing(ctrd, layered_image)
    table = {}
    for n, (layer, chain) in enumerate(zip(layered_image.layers, layered_image.chain_ids, strict=True)):
        unpack_layer(layer, tmp_path / f"layer{n}")
        table[chain] = str(tmp_path / f"layer{n}")
    ctrd.layers_table.write_text(json.dumps(table))

    ctrd.ctr("content", "fetch", "--plain-http", layered_image.ref)
    lease = ctrd.ctr("leases", "create").stdout.split()[0]
    assert _unpack_through_containerd(ctrd, layered_image, lease) == [grpc.StatusCode.ALREADY_EXISTS] * 3
    # keep the snapshots once the lease is gone, as unpackers do: the image's config refers to them
    ctrd.ctr("content", "label", layered_image.config_digest,
             f"containerd.io/gc.ref.snapshot.{SNAPSHOTTER}={layered_image.chain_ids[-1]}")
    ctrd.ctr("leases", "rm", lease)

    calls = read_calls(ctrd.layers_table)
    assert calls == [{"op": "mount", "name": c} for c in layered_image.chain_ids]
    entries = ctrd.daemon.log_entries()
    assert not [e for e in entries if e.get("method") == "Commit"]  # containerd applied no layer
    assert _daemon_keys(ctrd) == set(layered_image.chain_ids)
    info = json.loads(ctrd.ctr("snapshot", "--snapshotter", SNAPSHOTTER, "info", layered_image.chain_ids[1]).stdout)
    assert info["Labels"][L.REMOTE] == L.REMOTE_VALUE and info["Parent"] == layered_image.chain_ids[0]

    assert _listing(ctrd, layered_image, snapshotter=SNAPSHOTTER) == expected
    ours = _xattrs_of_view(ctrd, SNAPSHOTTER, layered_image.chain_ids[-1], tmp_path / "view")
    assert ours == EXPECTED_XATTRS

    # crash and restart: every remote snapshot is handed to the layer filesystem again
    ctrd.daemon.kill()
    ctrd.daemon.start()
    ctrd.wait_for_snapshotter()
    assert read_calls(ctrd.layers_table)[3:] == [{"op": "mount", "name": c} for c in layered_image.chain_ids]
    assert _listing(ctrd, layered_image, snapshotter=SNAPSHOTTER) == expected

    # removing the image lets containerd's GC remove the snapshots, child first; each is released
    ctrd.ctr("image", "rm", "--sync", layered_image.ref)
    _wait_until(lambda: not _daemon_keys(ctrd), "the remote snapshots are removed")
    unmounts = [c["name"] for c in read_calls(ctrd.layers_table) if c["op"] == "unmount"]
    assert unmounts == list(reversed(layered_image.chain_ids))

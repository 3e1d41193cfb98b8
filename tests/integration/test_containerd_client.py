# ruff: noqa: F811  (pytest fixtures imported by name)
"""socikit's containerd client modules (content, images, leases, snapshots, diff) against a real
containerd 1.6, with ctr as the independent reader."""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Iterator

import pytest

from socikit.containerd.client import Containerd
from socikit.containerd.content import ContentStore, chunked
from socikit.containerd.diff import apply_layer
from socikit.containerd.images import ImageStore
from socikit.containerd.leases import lease
from socikit.containerd.snapshots import Snapshots
from socikit.errors import ContainerdError, DigestMismatchError
from socikit.oci import mediatypes as mt
from socikit.oci.descriptor import Descriptor, descriptor_for
from tests.images import TarBuilder
from tests.integration.containerd_fixtures import Containerd as CtrdProcess
from tests.integration.containerd_fixtures import containerd  # noqa: F401  (fixture)

pytestmark = [pytest.mark.integration]


@pytest.fixture
def client(containerd: CtrdProcess) -> Iterator[Containerd]:
    with Containerd(containerd.address, namespace="client-test") as c:
        yield c


def active_ingests(ctrd: CtrdProcess) -> list[str]:
    return ctrd.ctr("-n", "client-test", "content", "active").stdout.splitlines()[1:]


def test_content_write_info_labels_read(client: Containerd, containerd: CtrdProcess) -> None:
    store = ContentStore(client)
    data = b"x" * (3 << 20) + b"tail"  # several write messages
    desc = descriptor_for(data, "application/octet-stream")
    assert store.info(desc.digest) is None
    with lease(client):
        assert store.write(desc, chunked(data), labels={"a": "1"}) is True
        assert store.write_blob(desc, data) is False  # already there: nothing rewritten
        store.update_labels(desc.digest, {"containerd.io/gc.root": "now"})  # keep it past the lease
    info = store.info(desc.digest)
    assert info is not None and info.size == len(data)
    assert info.labels == {"a": "1", "containerd.io/gc.root": "now"}
    store.update_labels(desc.digest, {"a": ""})  # an empty value removes a label
    assert store.info(desc.digest).labels == {"containerd.io/gc.root": "now"}  # type: ignore[union-attr]
    assert store.read_blob(desc) == data
    assert b"".join(store.read(desc.digest, offset=len(data) - 4, size=4)) == b"tail"
    assert desc.digest in containerd.ctr("-n", "client-test", "content", "ls").stdout
    assert containerd.ctr("-n", "client-test", "content", "get", desc.digest).stdout == data.decode()
    assert containerd.ctr("-n", "other", "content", "ls").stdout.count("sha256:") == 0  # namespaced


def test_content_write_refusals_leave_no_ingest(client: Containerd, containerd: CtrdProcess) -> None:
    store = ContentStore(client)
    data = b"some bytes"
    desc = descriptor_for(data, mt.MEDIA_TYPE_OCI_LAYER)
    with lease(client):
        with pytest.raises(ContainerdError) as refused:
            store.write(desc, iter([b"other bytes"]))  # containerd checks size and digest at commit
        assert refused.value.code in ("FAILED_PRECONDITION", "INVALID_ARGUMENT")
        assert active_ingests(containerd) == []

        def failing() -> Iterator[bytes]:
            yield data[:4]
            raise DigestMismatchError("source went bad")

        with pytest.raises(DigestMismatchError, match="source went bad"):
            store.write(desc, failing())
        assert active_ingests(containerd) == []
        assert store.info(desc.digest) is None
        with pytest.raises(DigestMismatchError):
            store.write_blob(desc, b"not it")  # checked before anything is sent


def test_lease_keeps_content_until_it_is_gone(client: Containerd) -> None:
    store = ContentStore(client)
    data = b"held by a lease"
    desc = descriptor_for(data, "application/octet-stream")
    with pytest.raises(RuntimeError), lease(client):
        store.write_blob(desc, data)
        assert store.info(desc.digest) is not None
        raise RuntimeError("the pull failed")
    assert client.lease is None
    assert store.info(desc.digest) is None  # collected with the failed block's lease


def test_image_records(client: Containerd, containerd: CtrdProcess) -> None:
    images = ImageStore(client)
    target = Descriptor(media_type=mt.MEDIA_TYPE_OCI_MANIFEST, digest="sha256:" + "a" * 64, size=10)
    assert images.get("r.example/app:1") is None
    made = images.put("r.example/app:1", target)
    assert made.target == target
    moved = images.put("r.example/app:1", target.with_changes(digest="sha256:" + "b" * 64))
    assert moved.target.digest == "sha256:" + "b" * 64
    assert images.get("r.example/app:1") == moved
    assert "sha256:" + "b" * 64 in containerd.ctr("-n", "client-test", "image", "ls").stdout


def test_snapshots_and_diff_apply(client: Containerd, containerd: CtrdProcess) -> None:
    tar = TarBuilder()
    tar.file("hello.txt", b"hello\n")
    raw = tar.finish()
    blob = gzip.compress(raw, mtime=0)
    layer = descriptor_for(blob, mt.MEDIA_TYPE_OCI_LAYER_GZIP)
    diff_id = "sha256:" + hashlib.sha256(raw).hexdigest()
    snapshots = Snapshots(client, "overlayfs")
    with lease(client):
        ContentStore(client).write_blob(layer, blob)
        assert snapshots.stat(diff_id) is None
        mounts = snapshots.prepare("extract-test", "", {"x": "y"})
        assert mounts and mounts == snapshots.mounts("extract-test")
        assert apply_layer(client, layer, mounts).digest == diff_id
        snapshots.commit(diff_id, "extract-test", {"containerd.io/gc.root": "test"})
        info = snapshots.stat(diff_id)
        assert info is not None and info.kind == "committed" and info.labels["containerd.io/gc.root"] == "test"
        with pytest.raises(ContainerdError) as exists:
            snapshots.prepare("extract-test-2", "", {})
            snapshots.prepare("extract-test-2", "", {})
        assert exists.value.code == "ALREADY_EXISTS"
        snapshots.remove("extract-test-2")
    listed = containerd.ctr("-n", "client-test", "snapshots", "--snapshotter", "overlayfs", "ls").stdout
    assert diff_id in listed and "extract-test-2" not in listed
    with pytest.raises(ContainerdError) as missing:
        snapshots.remove("no-such-key")
    assert missing.value.code == "NOT_FOUND"

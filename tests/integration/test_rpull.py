# ruff: noqa: F811  (pytest fixtures imported by name)
"""`socikit image rpull` against real parts: Debian's containerd 1.6 (own root and socket), runc,
docker-registry on 127.0.0.1, skopeo pushing the test images, ctr as the independent client,
and a recording Snapshots server that containerd loads as a proxy plugin."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import platform
import pty
import re
import select
import subprocess
import sys
import termios
import time
from pathlib import Path
from typing import Any

import pytest

from tests.images import LIST_FILES_SCRIPT
from tests.integration.containerd_fixtures import Containerd
from tests.integration.registry_fixtures import (  # noqa: F401  (fixtures)
    TEST_PASSWORD,
    TEST_USER,
    RegistryServer,
    free_port,
    htpasswd_registry,
    registry,
    tls_registry,
)
from tests.integration.rpull_fixtures import (  # noqa: F401  (fixtures)
    CredentialsRecorder,
    add_foreign_platform,
    authfile,
    build_layout,
    containerd_factory,
    proxy_plugin,
    skopeo_push,
)
from tests.integration.snapshot_recorder import SnapshotRecorder
from tests.vectors import REPO_ROOT

pytestmark = [pytest.mark.integration, pytest.mark.registry]

HOST_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
OTHER_ARCH = "arm64" if HOST_ARCH != "arm64" else "amd64"


def rpull(ctrd: Containerd, *args: str, home: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """The CLI as a user runs it (own process: exit code, stdout and stderr as they are)."""
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(REPO_ROOT), "HOME": str(home),
           "DOCKER_CONFIG": str(home / ".docker")}
    return subprocess.run([sys.executable, "-m", "socikit", "image", "rpull", "--address", ctrd.address, *args],
                          capture_output=True, text=True, env=env, input=stdin, timeout=300)


def rpull_at_terminal(ctrd: Containerd, *args: str, home: Path, typed: str) -> subprocess.CompletedProcess[str]:
    """The CLI run with a pseudo-terminal as its controlling terminal and stdin, where `typed` is
    typed (a password prompt reads it from there; output stays on pipes)."""
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(REPO_ROOT), "HOME": str(home),
           "DOCKER_CONFIG": str(home / ".docker")}
    master, slave = pty.openpty()

    def take_terminal() -> None:
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    argv = [sys.executable, "-m", "socikit", "image", "rpull", "--address", ctrd.address, *args]
    try:
        proc = subprocess.Popen(argv, stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=env, preexec_fn=take_terminal)
        os.close(slave)
        # getpass flushes pending input when it turns echo off: type only once echo is off.
        deadline = time.monotonic() + 120
        while termios.tcgetattr(master)[3] & termios.ECHO and proc.poll() is None and time.monotonic() < deadline:
            if select.select([master], [], [], 0.05)[0]:
                os.read(master, 1024)
        os.write(master, (typed + "\n").encode())
        stdout, stderr = proc.communicate(timeout=300)
    finally:
        os.close(master)
    return subprocess.CompletedProcess(argv, proc.returncode, stdout, stderr)


def listing(ctrd: Containerd, image: str, name: str, *, namespace: str = "default", snapshotter: str = "overlayfs"
            ) -> str:
    result = ctrd.ctr("-n", namespace, "run", "--rm", "--snapshotter", snapshotter, image, name,
                      "/bin/sh", "-c", LIST_FILES_SCRIPT)
    return result.stdout


def content_labels(ctrd: Containerd, namespace: str) -> dict[str, dict[str, str]]:
    """digest -> labels of every blob in the namespace, as `ctr content ls` prints them."""
    out: dict[str, dict[str, str]] = {}
    for line in ctrd.ctr("-n", namespace, "content", "ls").stdout.splitlines()[1:]:
        fields = line.split("\t")
        labels = fields[-1].strip()
        out[fields[0]] = dict(item.split("=", 1) for item in labels.split(",")) if labels and labels != "-" else {}
    return out


def snapshot_keys(ctrd: Containerd, namespace: str, snapshotter: str = "overlayfs") -> dict[str, str]:
    lines = ctrd.ctr("-n", namespace, "snapshots", "--snapshotter", snapshotter, "ls").stdout.splitlines()[1:]
    return {parts[0]: (parts[1] if len(parts) == 3 else "") for parts in (line.split() for line in lines)}


def images(ctrd: Containerd, namespace: str = "default") -> dict[str, str]:
    """name -> target digest from `ctr image ls`."""
    lines = ctrd.ctr("-n", namespace, "image", "ls").stdout.splitlines()[1:]
    return {parts[0]: parts[2] for parts in (line.split() for line in lines)}


def one_error_line(result: subprocess.CompletedProcess[str], *, after_progress: bool = False) -> str:
    """The failure's one line (exit 1, no traceback). Failures found before anything was done
    print nothing else; later ones come after the progress lines of what was done."""
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], result.stderr
    assert len(lines) == 1 or after_progress, result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    return errors[0]


def chain_ids(diff_ids: list[str]) -> list[str]:
    out: list[str] = []
    for diff_id in diff_ids:
        out.append(diff_id if not out else "sha256:" + hashlib.sha256(f"{out[-1]} {diff_id}".encode()).hexdigest())
    return out


def _manifest_digest(layout: Path) -> str:
    return str(json.loads((layout / "index.json").read_text())["manifests"][0]["digest"])


def layout_json(layout: Path, digest: str) -> Any:
    return json.loads((layout / "blobs" / "sha256" / digest.split(":")[1]).read_bytes())


# ---------------------------------------------------------------------------------------------


def test_rpull_overlayfs_runs_like_ctr_pull(registry, containerd_factory, tmp_path: Path) -> None:
    manifest_digest = build_layout(tmp_path / "layout")
    ref = f"{registry.host}/rpull/app:v1"
    skopeo_push(tmp_path / "layout", ref)
    ctrd = containerd_factory()

    result = rpull(ctrd, "--plain-http", "--snapshotter", "overlayfs", ref, home=tmp_path)
    assert result.returncode == 0, result.stderr
    total = sum(d["size"] for d in layout_json(tmp_path / "layout", manifest_digest)["layers"])
    assert result.stdout.strip() == (f"{ref}: {manifest_digest} unpacked for overlayfs "
                                     f"(0 of 3 layers lazy, {total} bytes downloaded)")
    assert images(ctrd) == {ref: manifest_digest}

    # The same image pulled by containerd itself into another namespace.
    ctrd.ctr("-n", "byctr", "image", "pull", "--plain-http", ref)
    ours = listing(ctrd, ref, "ours")
    theirs = listing(ctrd, ref, "theirs", namespace="byctr")
    assert ours == theirs
    assert "./data/gone.txt" not in ours and "./data/dir/old.txt" not in ours and "./data/dir/new.txt F" in ours
    assert "./data/link L 777 0:0 -> keep.txt" in ours and "./data/mode.sh F 750 1000:1000" in ours

    # Same snapshots (chain IDs and parents) and the same content labels as containerd's own pull,
    # except the distribution-source label, which rpull does not write.
    assert snapshot_keys(ctrd, "default") == snapshot_keys(ctrd, "byctr")
    config = layout_json(tmp_path / "layout", manifest_digest)["config"]["digest"]
    diff_ids = layout_json(tmp_path / "layout", config)["rootfs"]["diff_ids"]
    assert set(snapshot_keys(ctrd, "default")) == set(chain_ids(diff_ids))
    ctr_labels = {digest: {k: v for k, v in labels.items() if not k.startswith("containerd.io/distribution.source.")}
                  for digest, labels in content_labels(ctrd, "byctr").items()}
    assert content_labels(ctrd, "default") == ctr_labels
    assert ctr_labels[config]["containerd.io/gc.ref.snapshot.overlayfs"] == chain_ids(diff_ids)[-1]

    # A second rpull changes nothing and downloads nothing.
    before = (content_labels(ctrd, "default"), snapshot_keys(ctrd, "default"), images(ctrd))
    again = rpull(ctrd, "--plain-http", "--snapshotter", "overlayfs", "--json", ref, home=tmp_path)
    assert again.returncode == 0, again.stderr
    summary = json.loads(again.stdout)
    assert [layer["state"] for layer in summary["layers"]] == ["present"] * 3
    assert summary["bytes_downloaded"] == 0 and summary["digest"] == manifest_digest and summary["unpacked"] is True
    assert (content_labels(ctrd, "default"), snapshot_keys(ctrd, "default"), images(ctrd)) == before
    assert listing(ctrd, ref, "again") == theirs


def test_rpull_multi_platform_index(registry, containerd_factory, tmp_path: Path) -> None:
    layout = tmp_path / "layout"
    build_layout(layout)
    digests = add_foreign_platform(layout, OTHER_ARCH)
    ref = f"{registry.host}/rpull/multi:v1"
    skopeo_push(layout, ref, all_images=True)
    ctrd = containerd_factory()

    host = rpull(ctrd, "--plain-http", "--snapshotter", "overlayfs", "--json", ref, home=tmp_path)
    assert host.returncode == 0, host.stderr
    summary = json.loads(host.stdout)
    assert (summary["digest"], summary["manifest"], summary["platform"]) == (digests["index"], digests["host"],
                                                                              f"linux/{HOST_ARCH}")
    assert summary["unpacked"] is True and [x["state"] for x in summary["layers"]] == ["downloaded"] * 3
    assert images(ctrd) == {ref: digests["index"]}
    index_labels = content_labels(ctrd, "default")[digests["index"]]
    assert index_labels == {"containerd.io/gc.ref.content.m.0": digests["host"],
                            "containerd.io/gc.ref.content.m.1": digests["foreign"]}
    assert "./data/keep.txt F" in listing(ctrd, ref, "multi")

    other = rpull(ctrd, "--plain-http", "--snapshotter", "overlayfs", "--namespace", "other", "--platform",
                  f"linux/{OTHER_ARCH}", "--json", ref, home=tmp_path)
    assert other.returncode == 0, other.stderr
    summary = json.loads(other.stdout)
    assert (summary["manifest"], summary["platform"], summary["unpacked"]) == (digests["foreign"],
                                                                               f"linux/{OTHER_ARCH}", False)
    assert [x["state"] for x in summary["layers"]] == ["stored"]
    assert images(ctrd, "other") == {ref: digests["index"]}
    stored = content_labels(ctrd, "other")
    assert {digests["index"], digests["foreign"], digests["foreign_config"]} <= set(stored)
    assert digests["host"] not in stored
    assert snapshot_keys(ctrd, "other") == {}  # content only: nothing unpacked
    not_runnable = ctrd.ctr("-n", "other", "run", "--rm", ref, "foreign", "/bin/true", check=False)
    assert not_runnable.returncode != 0


def test_rpull_failures_are_one_line_and_leave_nothing(registry, containerd_factory, tmp_path: Path) -> None:
    build_layout(tmp_path / "layout")
    ref = f"{registry.host}/rpull/fail:v1"
    skopeo_push(tmp_path / "layout", ref)
    ctrd = containerd_factory()

    missing = one_error_line(rpull(ctrd, "--plain-http", "--snapshotter", "overlayfs",
                                   f"{registry.host}/rpull/fail:nope", home=tmp_path))
    assert "MANIFEST_UNKNOWN" in missing or "404" in missing
    dead_registry = one_error_line(rpull(ctrd, "--plain-http", "--snapshotter", "overlayfs",
                                         f"127.0.0.1:{free_port()}/rpull/fail:v1", home=tmp_path))
    assert "connection failed" in dead_registry
    dead_ctrd = one_error_line(rpull(Containerd(str(tmp_path / "no.sock"), tmp_path), "--plain-http", ref,
                                     home=tmp_path))
    assert dead_ctrd == f"error: cannot reach containerd at {tmp_path / 'no.sock'}: No such file or directory"
    bad_digest = one_error_line(rpull(ctrd, "--plain-http", "--soci-index-digest", "sha256:nothex", ref,
                                      home=tmp_path))
    assert "--soci-index-digest" in bad_digest
    not_registry = one_error_line(rpull(ctrd, f"oci:{tmp_path / 'layout'}:latest", home=tmp_path))
    assert "registry" in not_registry
    unknown_snapshotter = one_error_line(rpull(ctrd, "--plain-http", "--snapshotter", "nosuch", ref, home=tmp_path))
    assert unknown_snapshotter == (f"error: containerd at {ctrd.address} has no snapshotter 'nosuch' "
                                   "(see `ctr plugins ls`)")

    # A layer whose bytes in the registry do not match its digest: the first two layers are
    # unpacked and committed, the third is refused while streaming. Nothing of the pull stays:
    # no image record, and the content and snapshots it made went with its lease.
    manifest = layout_json(tmp_path / "layout", images_digest := _manifest_digest(tmp_path / "layout"))
    del images_digest
    last = manifest["layers"][-1]["digest"].split(":")[1]
    blob = next(registry.root.glob(f"storage/docker/registry/v2/blobs/sha256/{last[:2]}/{last}/data"))
    data = bytearray(blob.read_bytes())
    data[-1] ^= 0xFF
    blob.write_bytes(bytes(data))
    corrupt = rpull(ctrd, "--plain-http", "--snapshotter", "overlayfs", ref, home=tmp_path)
    line = one_error_line(corrupt, after_progress=True)
    assert "content has digest" in line and line.endswith(f"expected sha256:{last}")
    assert "downloaded" in corrupt.stderr  # the lower layers were unpacked before
    assert images(ctrd) == {}
    assert content_labels(ctrd, "default") == {}
    assert snapshot_keys(ctrd, "default") == {}


def test_rpull_refuses_layers_containerd_cannot_unpack(registry, containerd_factory, tmp_path: Path) -> None:
    from tests.images import TarBuilder

    tar = TarBuilder()
    tar.file("a.txt", b"a\n")
    layout = tmp_path / "layout"
    manifest_digest = build_layout(layout, [tar.finish()], compress=False)
    manifest = layout_json(layout, manifest_digest)
    manifest["layers"][0]["mediaType"] = "application/vnd.oci.image.layer.v1.tar+encrypted"
    data = json.dumps(manifest).encode()
    new_digest = "sha256:" + hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256" / new_digest.split(":")[1]).write_bytes(data)
    index = json.loads((layout / "index.json").read_text())
    index["manifests"][0].update(digest=new_digest, size=len(data))
    (layout / "index.json").write_text(json.dumps(index))
    ref = f"{registry.host}/rpull/encrypted:v1"
    skopeo_push(layout, ref)
    ctrd = containerd_factory()
    line = one_error_line(rpull(ctrd, "--plain-http", "--snapshotter", "overlayfs", ref, home=tmp_path))
    assert line.endswith("has media type application/vnd.oci.image.layer.v1.tar+encrypted, "
                         "which containerd cannot unpack")
    assert images(ctrd) == {}


def _expected_prepare_labels(manifest: dict[str, Any], index: int, chain_id: str, image: str, manifest_digest: str,
                             soci_index_digest: str) -> dict[str, str]:
    """§7.3 written out for a small image (no truncation applies)."""
    layers = manifest["layers"]
    return {
        "containerd.io/snapshot.ref": chain_id,
        "containerd.io/snapshot/cri.image-ref": image,
        "containerd.io/snapshot/cri.manifest-digest": manifest_digest,
        "containerd.io/snapshot/cri.layer-digest": layers[index]["digest"],
        "containerd.io/snapshot/cri.image-layers": ",".join(x["digest"] for x in layers[index:]),
        "containerd.io/snapshot/remote/soci.size": str(layers[index]["size"]),
        "containerd.io/snapshot/remote/soci.index.digest": soci_index_digest,
        "containerd.io/snapshot/remote/image.layers.size": ",".join(str(x["size"]) for x in layers[index:]),
    }


def test_remote_snapshotter_sees_the_unpack_labels_and_serves_every_layer(registry, containerd_factory,
                                                                        tmp_path: Path) -> None:
    layout = tmp_path / "layout"
    manifest_digest = build_layout(layout)
    manifest = layout_json(layout, manifest_digest)
    diff_ids = layout_json(layout, manifest["config"]["digest"])["rootfs"]["diff_ids"]
    chain = chain_ids(diff_ids)
    ref = f"{registry.host}/rpull/lazy:v1"
    skopeo_push(layout, ref)
    base = tmp_path / "ctrd"
    base.mkdir()
    recorder = SnapshotRecorder(base / "rec.sock")
    try:
        ctrd = containerd_factory(proxy_plugin("recorder", base / "rec.sock"), base=base)
        soci_index = "sha256:" + "ab" * 32
        result = rpull(ctrd, "--plain-http", "--snapshotter", "recorder", "--soci-index-digest", soci_index, "--json",
                       ref, home=tmp_path)
        assert result.returncode == 0, result.stderr
        summary = json.loads(result.stdout)
        assert [x["state"] for x in summary["layers"]] == ["lazy"] * 3
        assert summary["bytes_downloaded"] == 0 and summary["lazy_layers"] == 3

        assert len(recorder.prepares) == 3
        for i, call in enumerate(recorder.prepares):
            assert call.labels == _expected_prepare_labels(manifest, i, chain[i], ref, manifest_digest, soci_index)
            # containerd prefixes the key with its namespace and a sequence number for the backend
            assert re.fullmatch(rf"default/\d+/extract-\d+-[A-Za-z0-9_=-]{{4}} {re.escape(chain[i])}", call.key)
            assert call.parent == (chain[i - 1] if i else "")
        assert recorder.committed() == {c: (chain[i - 1] if i else "") for i, c in enumerate(chain)}

        # Served remotely: the layer blobs never reached containerd's content store.
        stored = content_labels(ctrd, "default")
        assert set(stored) == {manifest_digest, manifest["config"]["digest"]}
        assert stored[manifest["config"]["digest"]] == {"containerd.io/gc.ref.snapshot.recorder": chain[-1]}
        assert images(ctrd) == {ref: manifest_digest}
        assert snapshot_keys(ctrd, "default", "recorder") == {c: (chain[i - 1] if i else "")
                                                              for i, c in enumerate(chain)}

        again = rpull(ctrd, "--plain-http", "--snapshotter", "recorder", "--json", ref, home=tmp_path)
        assert again.returncode == 0, again.stderr
        assert [x["state"] for x in json.loads(again.stdout)["layers"]] == ["present"] * 3
        assert len(recorder.prepares) == 3  # found by Stat, no new Prepare
    finally:
        recorder.stop()


def test_user_credentials_work_and_are_never_printed(htpasswd_registry, containerd_factory, tmp_path: Path) -> None:
    build_layout(tmp_path / "layout")
    ref = f"{htpasswd_registry.host}/rpull/private:v1"
    auth = authfile(tmp_path / "auth.json", htpasswd_registry.host, TEST_USER, TEST_PASSWORD)
    skopeo_push(tmp_path / "layout", ref, args=("--dest-tls-verify=false", f"--dest-authfile={auth}"))
    ctrd = containerd_factory()

    refused = one_error_line(rpull(ctrd, "--plain-http", "--snapshotter", "overlayfs", ref, home=tmp_path))
    assert "authentication" in refused
    wrong = one_error_line(rpull(ctrd, "--plain-http", "--snapshotter", "overlayfs", "--user", f"{TEST_USER}:nope",
                                 ref, home=tmp_path))
    assert "authentication failed" in wrong and "nope" not in wrong

    inline = rpull(ctrd, "--plain-http", "--snapshotter", "overlayfs", "--user", f"{TEST_USER}:{TEST_PASSWORD}", ref,
                   home=tmp_path)
    assert inline.returncode == 0, inline.stderr
    prompted = rpull_at_terminal(ctrd, "--plain-http", "--snapshotter", "overlayfs", "-n", "prompted", "--user",
                                 TEST_USER, ref, home=tmp_path, typed=TEST_PASSWORD)
    no_terminal = one_error_line(rpull(ctrd, "--plain-http", "--snapshotter", "overlayfs", "--user", TEST_USER, ref,
                                       home=tmp_path, stdin=TEST_PASSWORD + "\n"))
    assert "no terminal" in no_terminal and TEST_PASSWORD not in no_terminal
    assert prompted.returncode == 0, prompted.stderr
    assert f"Password for {TEST_USER}" in prompted.stderr and "Password" not in prompted.stdout
    for result in (inline, prompted):
        assert TEST_PASSWORD not in result.stdout + result.stderr
        assert "handed" not in result.stderr  # a built-in snapshotter has no daemon to hand them to
    assert "./data/keep.txt F" in listing(ctrd, ref, "private")
    assert images(ctrd, "prompted") == images(ctrd)


def test_user_credentials_are_handed_to_the_snapshotter_daemon(htpasswd_registry, containerd_factory,
                                                               tmp_path: Path) -> None:
    build_layout(tmp_path / "layout")
    ref = f"{htpasswd_registry.host}/rpull/handoff:v1"
    auth = authfile(tmp_path / "auth.json", htpasswd_registry.host, TEST_USER, TEST_PASSWORD)
    skopeo_push(tmp_path / "layout", ref, args=("--dest-tls-verify=false", f"--dest-authfile={auth}"))
    base = tmp_path / "ctrd"
    base.mkdir()
    recorder = SnapshotRecorder(base / "rec.sock")
    daemon = CredentialsRecorder(base / "creds.sock")
    try:
        ctrd = containerd_factory(proxy_plugin("recorder", base / "rec.sock"), base=base)
        user = ("--user", f"{TEST_USER}:{TEST_PASSWORD}")
        handed = rpull(ctrd, "--plain-http", "--snapshotter", "recorder", *user, "--snapshotter-address",
                       str(base / "creds.sock"), ref, home=tmp_path)
        assert handed.returncode == 0, handed.stderr
        assert daemon.puts == [{"image_ref": ref, "host": htpasswd_registry.host, "username": TEST_USER,
                                "secret": TEST_PASSWORD}]
        assert f"credentials for {ref} handed to the snapshotter daemon at {base / 'creds.sock'}" in handed.stderr

        # A daemon without socikit's Credentials service (here: the Snapshots-only recorder, as
        # the reference soci daemon would be), and no daemon at all: one line each, pull goes on.
        foreign = rpull(ctrd, "--plain-http", "--snapshotter", "recorder", "-n", "foreign", *user,
                        "--snapshotter-address", str(base / "rec.sock"), ref, home=tmp_path)
        assert foreign.returncode == 0, foreign.stderr
        assert "is not socikit's" in foreign.stderr
        absent = rpull(ctrd, "--plain-http", "--snapshotter", "recorder", "-n", "absent", *user,
                       "--snapshotter-address", str(base / "none.sock"), ref, home=tmp_path)
        assert absent.returncode == 0, absent.stderr
        assert f"no snapshotter daemon answers at {base / 'none.sock'}" in absent.stderr
        for result in (handed, foreign, absent):
            assert TEST_PASSWORD not in result.stdout + result.stderr
        assert daemon.puts[1:] == []
    finally:
        daemon.stop()
        recorder.stop()


def test_rpull_over_tls_with_cert_dir(tls_registry, containerd_factory, tmp_path: Path) -> None:
    assert tls_registry.tls is not None
    build_layout(tmp_path / "layout")
    ref = f"{tls_registry.host}/rpull/tls:v1"
    skopeo_push(tmp_path / "layout", ref, args=(f"--dest-cert-dir={tls_registry.tls.cert_dir}",))
    ctrd = containerd_factory()
    untrusted = one_error_line(rpull(ctrd, "--snapshotter", "overlayfs", ref, home=tmp_path))
    assert "TLS" in untrusted
    trusted = rpull(ctrd, "--snapshotter", "overlayfs", "--cert-dir", str(tls_registry.tls.cert_dir), ref,
                    home=tmp_path)
    assert trusted.returncode == 0, trusted.stderr
    unverified = rpull(ctrd, "--snapshotter", "overlayfs", "-n", "insecure", "--tls-verify", "false", ref,
                       home=tmp_path)
    assert unverified.returncode == 0, unverified.stderr
    assert images(ctrd) == images(ctrd, "insecure") == {ref: images(ctrd)[ref]}

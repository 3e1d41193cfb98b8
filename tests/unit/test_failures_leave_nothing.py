"""A failed or interrupted `convert` leaves its destination exactly as it was: an absent OCI layout
or archive stays absent (parent directories included), an existing one stays byte for byte the
same, whether the error is on the source side, on the destination side, or Ctrl-C. Writers racing
to create one new layout all succeed."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from socikit.cli import app
from socikit.content.layout import LayoutSink, LayoutSource
from socikit.errors import DigestMismatchError
from socikit.oci import mediatypes as mt
from socikit.oci.descriptor import descriptor_for
from tests.vectors import REPO_ROOT, VECTORS_DIR

MULTI = VECTORS_DIR / "multi-platform"
BASE = ["--progress", "none", "--no-cache", "--span-size", "65536", "--min-layer-size", "0"]
AMD64_CONFIG = "66e9e79ead303666f918f15e8cfaf2c900ce9e36e17da3f4840c1a69b40b90d6"  # read only when copied
AMD64_SMALL_LAYER = "a24f0f5b8e75e36786ec4a1bfdfbfdb5e0cc763432594fca8ad7e2600ecb1085"  # 53567 bytes


def snapshot(root: Path) -> dict[str, tuple[int, bytes | None]]:
    """Every path under `root` (root included) with its mode and, for files, its bytes."""
    if not root.exists():
        return {}
    out = {".": (root.stat().st_mode, None)}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        out[str(path.relative_to(root))] = (st.st_mode, path.read_bytes() if path.is_file() else None)
    return out


def _convert(*args: str):
    return CliRunner().invoke(app, ["convert", *BASE, *args])


def _failed(result) -> str:
    assert result.exit_code == 1, result.output
    line = result.output.strip()
    assert line.startswith("error:") and "\n" not in line, result.output
    return line


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """A copy of the multi-platform image (an image index: configs are read only when copied)."""
    src = tmp_path / "src"
    shutil.copytree(MULTI / "input", src)
    return src


@pytest.fixture
def existing(tmp_path: Path) -> Path:
    """A layout that already holds another image (none of the multi-platform image's blobs)."""
    dst = tmp_path / "existing"
    result = _convert(f"oci:{VECTORS_DIR / 'tricky-pax' / 'input'}:latest", f"oci:{dst}:kept")
    assert result.exit_code == 0, result.output
    return dst


@pytest.mark.parametrize("version", [[], ["--v1"]], ids=["v2", "v1"])
def test_missing_blob_found_while_copying(source: Path, existing: Path, tmp_path: Path, version: list[str]) -> None:
    (source / "blobs" / "sha256" / AMD64_CONFIG).unlink()
    before = snapshot(existing)
    new = tmp_path / "a" / "b" / "new"
    assert AMD64_CONFIG in _failed(_convert(*version, "--all-platforms", f"oci:{source}:latest", f"oci:{new}:x"))
    assert not (tmp_path / "a").exists()  # parents it made are gone too
    assert AMD64_CONFIG in _failed(_convert(*version, "--all-platforms", f"oci:{source}:latest", f"oci:{existing}:x"))
    assert snapshot(existing) == before


def test_source_without_index_json(tmp_path: Path, existing: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(MULTI / "input", broken)
    (broken / "index.json").unlink()
    before = snapshot(existing)
    assert "no index.json" in _failed(_convert(f"oci:{broken}:latest", f"oci:{tmp_path / 'new'}:x"))
    assert not (tmp_path / "new").exists()
    _failed(_convert("--v1", f"oci:{broken}:latest", f"oci:{existing}:x"))
    assert snapshot(existing) == before


def test_oci_archive_destination(source: Path, tmp_path: Path) -> None:
    archive = tmp_path / "out" / "image.tar"
    result = _convert(f"oci:{VECTORS_DIR / 'tricky-pax' / 'input'}:latest", f"oci-archive:{archive}:kept")
    assert result.exit_code == 0, result.output
    before = snapshot(tmp_path / "out")
    (source / "blobs" / "sha256" / AMD64_CONFIG).unlink()
    _failed(_convert("--all-platforms", f"oci:{source}:latest", f"oci-archive:{archive}:x"))
    assert snapshot(tmp_path / "out") == before  # no temp layout left beside it either
    _failed(_convert("--all-platforms", f"oci:{source}:latest", f"oci-archive:{tmp_path / 'c' / 'd.tar'}"))
    assert not (tmp_path / "c").exists()


def test_an_empty_directory_stays_empty(source: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (source / "blobs" / "sha256" / AMD64_CONFIG).unlink()
    _failed(_convert("--all-platforms", f"oci:{source}:latest", f"oci:{empty}"))
    assert empty.is_dir() and list(empty.iterdir()) == []


def test_undo_leaves_another_writers_files(tmp_path: Path) -> None:
    """A writer that fails while another is writing into the same layout keeps its hands off:
    the other writer may rely on blobs the failed one put there."""
    root = tmp_path / "shared"
    data = b'{"schemaVersion":2}'
    desc = descriptor_for(data, mt.MEDIA_TYPE_OCI_MANIFEST)
    failing = LayoutSink(root, tag="a")
    failing.write_manifest(desc, data)  # creates the layout
    working = LayoutSink(root, tag="b")
    assert working.has_blob(desc)  # so it writes nothing itself
    with pytest.raises(DigestMismatchError), failing:
        failing.write_blob(desc, b"other bytes")
    with working:
        working.tag(desc)
    assert LayoutSource(root, tag="b").resolve().digest == desc.digest
    # Alone, a failing writer removes what it made.
    alone = LayoutSink(tmp_path / "alone", tag="a")
    alone.write_manifest(desc, data)
    alone.close()
    assert not (tmp_path / "alone").exists()


# --- Ctrl-C ------------------------------------------------------------------------------------------

def _cli_process(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "socikit", "convert", *BASE, *args], cwd=REPO_ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(condition, proc: subprocess.Popen[str], what: str) -> None:
    deadline = time.monotonic() + 120  # a bound against hanging, not a timing expectation
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"convert ended before {what}: {proc.communicate()}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"convert never got to {what}")
        time.sleep(0.01)


def _open_writer(fifo: Path) -> int | None:
    try:
        return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:
        return None  # no reader yet


@pytest.mark.parametrize("destination", ["new", "existing"])
def test_ctrl_c_while_copying(source: Path, existing: Path, tmp_path: Path, destination: str) -> None:
    """The source's small amd64 layer (not indexed: under --min-layer-size) is a FIFO, so the
    copy of that blob blocks on it: SIGINT is sent while the destination is being written."""
    fifo = source / "blobs" / "sha256" / AMD64_SMALL_LAYER
    fifo.unlink()
    os.mkfifo(fifo)
    dst = tmp_path / "new" if destination == "new" else existing
    before = snapshot(dst)
    proc = _cli_process("--min-layer-size", "60000", "--platform", "linux/amd64", f"oci:{source}:latest",
                        f"oci:{dst}:x")
    writer: list[int | None] = [None]

    def reading() -> bool:
        writer[0] = _open_writer(fifo)
        return writer[0] is not None

    try:
        _wait_for(reading, proc, "reading the layer")
        _wait_for(lambda: (dst / "oci-layout").exists(), proc, "creating the layout")
        proc.send_signal(signal.SIGINT)
    finally:
        if writer[0] is not None:
            os.close(writer[0])  # the reader sees the end of the blob, too short: its copy fails
    out, err = proc.communicate(timeout=120)
    assert proc.returncode != 0, out + err
    assert "Traceback" not in err, err
    assert snapshot(dst) == before


# --- concurrent writers -------------------------------------------------------------------------------

def test_six_parallel_converts_into_one_new_layout(tmp_path: Path) -> None:
    dst = tmp_path / "shared"
    procs = [_cli_process("-j", "1", f"oci:{MULTI / 'input'}:latest", f"oci:{dst}:t{i}") for i in range(6)]
    results = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0] * 6, results
    tags = {e.annotations[mt.ANNOTATION_REF_NAME]: e.digest for e in LayoutSource(dst).entries()}
    assert sorted(tags) == [f"t{i}" for i in range(6)]
    assert len(set(tags.values())) == 1  # one conversion, six tags
    assert json.loads((dst / "oci-layout").read_bytes()) == {"imageLayoutVersion": "1.0.0"}
    for tag in tags:
        LayoutSource(dst, tag=tag).resolve()
    assert [p.name for p in (dst / "blobs" / "sha256").iterdir() if p.name.startswith(".")] == []


def test_sinks_racing_to_create_one_layout_all_find_a_whole_one(tmp_path: Path) -> None:
    """Sixteen sinks start writing into one new layout at the same moment: every one succeeds (the
    layout is created under a lock, so none sees a half-made directory)."""
    for attempt in range(5):
        root = tmp_path / f"new-{attempt}"
        barrier = threading.Barrier(16)
        errors: list[Exception] = []

        def write(i: int, root: Path = root, barrier: threading.Barrier = barrier, errors: list = errors) -> None:
            data = f"blob {i}".encode()
            desc = descriptor_for(data, mt.MEDIA_TYPE_OCI_MANIFEST)
            barrier.wait()
            try:
                with LayoutSink(root, tag=f"t{i}") as sink:
                    sink.write_manifest(desc, data)
                    sink.tag(desc)
            except Exception as exc:  # collected and asserted below
                errors.append(exc)

        threads = [threading.Thread(target=write, args=(i,)) for i in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert sorted(LayoutSource(root).tags()) == sorted(f"t{i}" for i in range(16))

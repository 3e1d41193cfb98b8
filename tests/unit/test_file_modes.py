"""Files socikit writes get mode `0666 & ~umask`, like any tool's (not mkstemp's 0600): index.json,
oci-layout, manifests, blobs, ztocs, SOCI indexes, archives, cache entries. Another user can read
a converted layout (checked with skopeo run as `nobody`)."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from socikit.atomic import write_atomic
from tests.vectors import REPO_ROOT, VECTORS_DIR

MULTI = VECTORS_DIR / "multi-platform"


@pytest.fixture
def public_dir() -> Iterator[Path]:
    """A directory every user can enter (pytest's own tmp dirs are root-only)."""
    path = Path(tempfile.mkdtemp(prefix="socikit-modes-", dir="/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path)


def _socikit(umask: int, *args: str) -> None:
    result = subprocess.run([sys.executable, "-m", "socikit", *args], cwd=REPO_ROOT, capture_output=True,
                            text=True, preexec_fn=lambda: os.umask(umask), timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def _modes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): stat.S_IMODE(p.stat().st_mode) for p in root.rglob("*")}


@pytest.mark.parametrize("umask", [0o022, 0o077], ids=["umask-022", "umask-077"])
def test_everything_written_follows_the_umask(public_dir: Path, umask: int) -> None:
    # An oci-archive source: every blob of the destination is written, none hard-linked.
    archive = public_dir / "src.tar"
    _socikit(0o022, "convert", "--progress", "none", "--no-cache", "--min-layer-size", "0", "--all-platforms",
             f"oci:{MULTI / 'input'}",
             f"oci-archive:{archive}")
    root = public_dir / "root"
    layout = public_dir / "layout"
    out = public_dir / "out.tar"
    common = ["--progress", "none", "--span-size", "65536", "--min-layer-size", "0", "--all-platforms",
              "--root", str(root)]
    _socikit(umask, "convert", *common, f"oci-archive:{archive}", f"oci:{layout}")
    _socikit(umask, "convert", "--v1", *common, f"oci-archive:{archive}", f"oci-archive:{out}")
    _socikit(umask, "create", *common, f"oci-archive:{archive}")
    ztoc = public_dir / "one.ztoc"
    layer = next(p for p in (MULTI / "input" / "blobs" / "sha256").iterdir() if p.stat().st_size > 10000)
    _socikit(umask, "ztoc", "build", str(layer), "-o", str(ztoc))

    file_mode, dir_mode = 0o666 & ~umask, 0o777 & ~umask
    files = {**{f"layout/{k}": v for k, v in _modes(layout).items()},
             **{f"root/{k}": v for k, v in _modes(root).items()},
             "out.tar": stat.S_IMODE(out.stat().st_mode), "one.ztoc": stat.S_IMODE(ztoc.stat().st_mode)}
    expected = {name: dir_mode if (public_dir / name).is_dir() else file_mode for name in files}
    assert files == expected
    assert any(name.startswith("root/ztoc-cache/") for name in files)  # cache entries were checked
    assert any(name.startswith("root/store/blobs/sha256/") for name in files)  # the local store too
    assert len([n for n in files if n.startswith("layout/blobs/sha256/")]) > 10


@pytest.mark.parametrize(("umask", "readable"), [(0o022, True), (0o077, False)], ids=["umask-022", "umask-077"])
def test_another_user_reads_a_converted_layout(public_dir: Path, umask: int, readable: bool) -> None:
    layout = public_dir / "layout"
    _socikit(umask, "convert", "--progress", "none", "--no-cache", "--min-layer-size", "0", "--all-platforms",
             f"oci:{MULTI / 'input'}", f"oci:{layout}:latest")
    # Blobs hard-linked from the source keep its modes; what socikit wrote follows the umask.
    result = subprocess.run(["su", "nobody", "-s", "/bin/sh", "-c", f"skopeo inspect --raw oci:{layout}:latest"],
                            capture_output=True, text=True, timeout=120)
    if readable:
        assert result.returncode == 0, result.stderr
        assert '"mediaType":"application/vnd.oci.image.index.v1+json"' in result.stdout
    else:
        assert result.returncode != 0 and "permission denied" in result.stderr.lower(), result.stderr


def test_write_atomic_in_process(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        write_atomic(tmp_path / "a", b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o640
    write_atomic(tmp_path / "a", b"y")  # replacing: a new file with the current umask
    assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o666 & ~old
    assert [p.name for p in tmp_path.iterdir()] == ["a"]

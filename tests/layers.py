"""Real layers for tests: tars of system directories, compressed the ways images are."""

from __future__ import annotations

import gzip
import io
import os
import shutil
import subprocess
import tarfile
import zlib
from pathlib import Path


def tar_of_directory(root: Path, *, limit_bytes: int, arc_prefix: str = "") -> bytes:
    """A PAX tar of real files under `root` (sorted walk, stops after ~limit_bytes of file data)."""
    buf = io.BytesIO()
    total = 0
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for name in sorted(filenames):
                path = Path(dirpath) / name
                if path.is_symlink() or not path.is_file():
                    if path.is_symlink():
                        tar.add(path, arcname=arc_prefix + str(path.relative_to(root)), recursive=False)
                    continue
                try:
                    tar.add(path, arcname=arc_prefix + str(path.relative_to(root)), recursive=False)
                except (PermissionError, OSError):
                    continue
                total += path.stat().st_size
                if total >= limit_bytes:
                    return buf.getvalue()
    return buf.getvalue()


def gzip_level(data: bytes, level: int) -> bytes:
    return gzip.compress(data, compresslevel=level, mtime=0)


def gzip_with_cli(data: bytes, *args: str, tool: str = "gzip") -> bytes:
    exe = shutil.which(tool)
    if exe is None:
        raise RuntimeError(f"{tool} is not installed (scripts/install.sh installs it)")
    return subprocess.run([exe, *args, "-c"], input=data, stdout=subprocess.PIPE, check=True).stdout


def gzip_members(data: bytes, pieces: int, level: int = 6) -> bytes:
    """Concatenated gzip members, like `cat a.gz b.gz` or mgzip output."""
    step = max(1, len(data) // pieces)
    parts = [data[i : i + step] for i in range(0, len(data), step)]
    return b"".join(gzip.compress(p, compresslevel=level, mtime=0) for p in parts)


def zlib_raw_stream(data: bytes, level: int = 6) -> bytes:
    return zlib.compress(data, level)


def tar_members(tar_bytes: bytes) -> dict[str, bytes]:
    """name -> content of every regular file in a tar."""
    out = {}
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        for member in tar:
            if member.isreg():
                f = tar.extractfile(member)
                assert f is not None
                out[member.name] = f.read()
    return out

"""Atomic file writes: a temp file in the target's directory, fsync, rename. A failed or interrupted
write leaves the old file (or no file) behind, never a partial one.

New files get mode `0666 & ~umask`, like files any other tool creates: the temp file is opened
with mode 0666 and the kernel applies the umask (`tempfile.mkstemp` would make every file 0600,
unreadable to the other users of an image layout)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

NEW_FILE_MODE = 0o666
_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)


def create_temp_file(directory: Path, name: str) -> tuple[int, Path]:
    """A new, empty file `.<name>.<random>.tmp` in `directory`, opened for writing with mode
    `0666 & ~umask`: (descriptor, path)."""
    while True:
        # os.urandom, as `secrets` would use, without importing it (its hmac loads libcrypto).
        path = directory / f".{name}.{os.urandom(6).hex()}.tmp"
        try:
            return os.open(path, _FLAGS, NEW_FILE_MODE), path
        except FileExistsError:
            continue  # 48 random bits: a clash means another writer, not a loop


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike[str], *, make_parents: bool = True) -> Iterator[BinaryIO]:
    """Yield a binary file; on normal exit it replaces `path`, on error it is deleted. The parent
    directories are created unless `make_parents` is False (then a missing one is an OSError)."""
    target = Path(path)
    if make_parents:
        target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = create_temp_file(target.parent, target.name)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_atomic(path: str | os.PathLike[str], data: bytes, *, make_parents: bool = True) -> None:
    """Replace `path` with `data` atomically."""
    with atomic_writer(path, make_parents=make_parents) as handle:
        handle.write(data)


__all__ = ["NEW_FILE_MODE", "atomic_writer", "create_temp_file", "write_atomic"]

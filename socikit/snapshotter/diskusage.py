"""Disk usage of a directory tree, as `du` counts it: allocated blocks and inodes, each inode once."""

from __future__ import annotations

import os
from pathlib import Path


def disk_usage(root: Path) -> tuple[int, int]:
    """(bytes allocated, inodes) of `root` and everything below it on the same filesystem;
    hard links count once. A tree that changes while it is walked is counted as found."""
    seen: set[tuple[int, int]] = set()
    size = 0
    try:
        top = root.lstat()
    except FileNotFoundError:
        return 0, 0
    pending = [str(root)]
    seen.add((top.st_dev, top.st_ino))
    size += top.st_blocks * 512
    while pending:
        directory = pending.pop()
        try:
            entries = os.scandir(directory)
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            continue
        with entries:
            for entry in entries:
                try:
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                if st.st_dev != top.st_dev:
                    continue  # a mount below the snapshot is not the snapshot's usage
                ident = (st.st_dev, st.st_ino)
                if ident in seen:
                    continue
                seen.add(ident)
                size += st.st_blocks * 512
                if entry.is_dir(follow_symlinks=False):
                    pending.append(entry.path)
    return size, len(seen)

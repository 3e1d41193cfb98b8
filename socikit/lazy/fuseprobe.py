"""Whether this process can serve a FUSE file system, asked before a daemon starts."""

from __future__ import annotations

import os


def fuse_unavailable() -> str | None:
    """Why this process cannot serve a FUSE file system (None when it can)."""
    try:
        fd = os.open("/dev/fuse", os.O_RDWR)
    except OSError as exc:
        return f"/dev/fuse: {exc.strerror}"
    os.close(fd)
    try:
        import pyfuse3  # noqa: F401  (imported here: the probe must not need it to load)
    except ImportError as exc:
        return f"pyfuse3 cannot be loaded: {exc}"
    return None


__all__ = ["fuse_unavailable"]

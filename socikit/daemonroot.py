"""The root directory a daemon (snapshotter or store) owns while it runs."""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path

from socikit.errors import ConfigError


@contextlib.contextmanager
def locked_root(root: Path, *, holder: str) -> Iterator[None]:
    """Create `root` (0700) and hold an exclusive lock on it for the context's lifetime; a second
    daemon on the same root is refused (`holder` names the kind in that error: "snapshotter")."""
    try:
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        handle = open(root / "lock", "a+b")  # noqa: SIM115 - held for the daemon's lifetime
    except FileExistsError:
        raise ConfigError(f"root {root} is not a directory") from None
    except OSError as exc:
        raise ConfigError(f"root {root}: {exc.strerror or exc}") from None
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(f"root {root} is in use by another {holder}") from None
        yield
    finally:
        handle.close()


__all__ = ["locked_root"]

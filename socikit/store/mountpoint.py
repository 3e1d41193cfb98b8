"""The directory the store is mounted on, and the root it keeps its state under.

containers/storage requires the store directory to exist when podman starts (it names it in
`additionallayerstores`), and reads it through the mount: so the mountpoint is an absolute
directory, empty and not mounted yet when the store starts, and the root (span cache, state) must
not lie inside it, where the mount would hide it. The mountpoint may lie inside the root.

A store that died leaves its FUSE mount behind, dead (every access fails with ENOTCONN): the next
start detaches it (`detach_dead_mount`) and mounts afresh. A live mount (another store) is refused.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
from pathlib import Path

from socikit.errors import ConfigError

MNT_DETACH = 2


def _inside(path: Path, directory: Path) -> bool:
    return path == directory or directory in path.parents


def check_paths(*, root: Path, mountpoint: Path) -> None:
    """ConfigError unless both paths are absolute and the root is not the mountpoint or below it."""
    for name, path in (("root", root), ("mountpoint", mountpoint)):
        if not path.is_absolute():
            raise ConfigError(f"the {name} {path} is not an absolute path")
    if _inside(Path(os.path.normpath(root)), Path(os.path.normpath(mountpoint))):
        raise ConfigError(f"the root {root} lies inside the mountpoint {mountpoint}: the mount would hide it")


def check_mountpoint(mountpoint: Path, *, must_exist: bool) -> None:
    """ConfigError unless `mountpoint` can take the store's mount: an empty directory that is not
    a mount point already (another store still mounted there), or, without `must_exist`,
    a path that does not exist yet (it is created when the store starts)."""
    if is_dead_mount(mountpoint):
        return  # a store that died left it: detached when the store starts
    try:
        if not mountpoint.exists():
            if must_exist:
                raise ConfigError(f"the mountpoint {mountpoint} does not exist")
            return
        if not mountpoint.is_dir():
            raise ConfigError(f"the mountpoint {mountpoint} is not a directory")
        if os.path.ismount(mountpoint):
            raise ConfigError(f"the mountpoint {mountpoint} is already a mount point (a store still mounted there? "
                              f"unmount it first)")
        with os.scandir(mountpoint) as entries:
            if any(True for _ in entries):
                raise ConfigError(f"the mountpoint {mountpoint} is not empty")
    except OSError as exc:
        raise ConfigError(f"the mountpoint {mountpoint}: {exc.strerror or exc}") from None


def prepare_mountpoint(mountpoint: Path) -> None:
    """Create the mountpoint (0755 for what is created, so podman's users can reach it) and check it."""
    try:
        mountpoint.mkdir(mode=0o755, parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"the mountpoint {mountpoint}: {exc.strerror or exc}") from None
    check_mountpoint(mountpoint, must_exist=True)


def is_dead_mount(path: Path) -> bool:
    """True when `path` is a FUSE mount whose server is gone.

    Asked with statfs, which always goes to the server: a `stat` of the mount's root is answered
    from the kernel's attribute cache for a while after the server died, so a store restarted at
    once took the dead mount for a live one."""
    try:
        os.statvfs(path)
    except OSError as exc:
        return exc.errno == errno.ENOTCONN
    return False


def detach_dead_mount(path: Path) -> bool:
    """Detach the dead mount at `path` (see the module doc); False when there is none."""
    if not is_dead_mount(path):
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    if libc.umount2(os.fsencode(path), MNT_DETACH) != 0:
        code = ctypes.get_errno()
        raise ConfigError(f"cannot detach the dead mount at {path} an earlier store left: {os.strerror(code)}")
    return True


__all__ = ["check_mountpoint", "check_paths", "detach_dead_mount", "is_dead_mount",
           "prepare_mountpoint"]

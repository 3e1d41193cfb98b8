"""`socikit store`'s effective options: command-line values over the config file over defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from socikit.errors import ConfigError
from socikit.store.config import (
    DEFAULT_CONFIG,
    DEFAULT_MOUNTPOINT,
    DEFAULT_ROOT,
    LOG_LEVELS,
    StoreConfig,
    load_config,
)
from socikit.store.mountpoint import check_mountpoint, check_paths


@dataclass(frozen=True)
class StoreOptions:
    root: Path
    mountpoint: Path
    config: StoreConfig
    log_level: str


def _absolute(path: Path) -> Path:
    return Path(os.path.abspath(path))


def resolve_options(*, root: Path | None = None, mountpoint: Path | None = None, config_path: Path | None = None,
                    log_level: str | None = None) -> StoreOptions:
    """The options a `socikit store` command line gives, checked: the config file (the default one
    may be missing, one named explicitly must exist), the log level, the root and the mountpoint
    (absolute, the root not under the mountpoint, the mountpoint empty and not mounted if it
    exists). Nothing is created. Raises ConfigError."""
    config = load_config(config_path or DEFAULT_CONFIG, missing_ok=config_path is None)
    level = log_level or ("debug" if config.debug else "info")
    if level not in LOG_LEVELS:
        raise ConfigError(f"--log-level {level!r}: expected one of {', '.join(LOG_LEVELS)}")
    root_dir = _absolute(root or DEFAULT_ROOT)
    mount_dir = _absolute(mountpoint or DEFAULT_MOUNTPOINT)
    check_paths(root=root_dir, mountpoint=mount_dir)
    check_mountpoint(mount_dir, must_exist=False)
    return StoreOptions(root=root_dir, mountpoint=mount_dir, config=config, log_level=level)


__all__ = ["StoreOptions", "resolve_options"]

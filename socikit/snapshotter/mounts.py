"""The mounts containerd gets for a snapshot: pure functions over directories.

Same shapes as containerd's overlay snapshotter, so runtimes treat them alike: without parents a
bind mount of the snapshot's own directory (read-write for an active snapshot, read-only for a
view); a view of exactly one layer a read-only bind mount of that layer; everything else an
overlay mount whose `lowerdir` lists the parents nearest first, plus `upperdir`/`workdir` when the
snapshot is active.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

# containerd turns overlay's inode index off where the kernel has it: with it on, a lower
# directory shared by several overlay mounts (every layer is) can refuse a second mount.
OVERLAY_INDEX_PARAMETER = Path("/sys/module/overlay/parameters/index")


@dataclass(frozen=True)
class Mount:
    type: str
    source: str
    options: tuple[str, ...]


def overlay_index_off() -> bool:
    return OVERLAY_INDEX_PARAMETER.exists()


def snapshot_mounts(*, active: bool, upper: Path, work: Path, lowers: Sequence[Path],
                    index_off: bool) -> list[Mount]:
    """Mounts of a snapshot whose own directories are `upper`/`work` and whose parents' layer
    directories are `lowers` (direct parent first). Committed snapshots are mounted like views."""
    if not lowers:
        return [Mount("bind", str(upper), ("rw" if active else "ro", "rbind"))]
    if not active and len(lowers) == 1:
        return [Mount("bind", str(lowers[0]), ("ro", "rbind"))]
    options: list[str] = ["index=off"] if index_off else []
    if active:
        options += [f"workdir={work}", f"upperdir={upper}"]
    options.append("lowerdir=" + ":".join(str(p) for p in lowers))
    return [Mount("overlay", "overlay", tuple(options))]

"""Mount points as the kernel lists them, for fixtures that clean up after daemons."""

from __future__ import annotations

from pathlib import Path


def mounts_under(base: Path) -> list[str]:
    """Mount points at or below `base` (daemons leave overlay, FUSE and netns mounts), deepest
    first."""
    points = []
    with open("/proc/self/mountinfo", encoding="utf-8") as handle:
        for line in handle:
            point = line.split()[4].replace("\\040", " ")
            if point == str(base) or point.startswith(f"{base}/"):
                points.append(point)
    return sorted(points, key=len, reverse=True)
